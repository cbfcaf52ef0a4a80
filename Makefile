# Image Studio. `make run` starts everything on http://127.0.0.1:8000; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint fmt migrate install clean bench

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

# Web (gunicorn) and one django-q2 cluster, with the gateway simulator mounted at /sim/ on the
# same server. Ctrl-C (or SIGTERM) stops all of them within seconds (manage.py run_studio).
PORT ?= 8000
run: $(STAMP)
	@mkdir -p var
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py create_demo_users
	@echo "Image Studio on http://127.0.0.1:$(PORT) (simulator on; Ctrl-C stops web and worker)"
	@STUDIO_SIMULATOR=$${STUDIO_SIMULATOR:-1} STUDIO_SIMULATOR_URL=$${STUDIO_SIMULATOR_URL:-http://127.0.0.1:$(PORT)} \
		exec $(PY) manage.py run_studio --bind 127.0.0.1:$(PORT)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix .

# bench/pipeline.py's full run takes about 20 minutes: here it runs its small versions (--quick);
# run it by hand for the figures (docs/bench.md).
bench: $(STAMP)
	@for script in bench/[!_]*.py; do echo "== $$script"; \
		if [ $$script = bench/pipeline.py ]; then args=--quick; else args=; fi; \
		$(PY) $$script $$args || exit 1; done

clean:
	rm -rf $(VENV) var/staticfiles
