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

# Web (gunicorn, threaded so the simulator's blocking gateway does not starve pages),
# one django-q2 cluster, and the gateway simulator mounted at /sim/ on the same server.
# Ctrl-C stops all of them.
run: $(STAMP)
	@mkdir -p var
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py create_demo_users
	@echo "Image Studio on http://127.0.0.1:8000 (simulator on; Ctrl-C stops web and worker)"
	@export STUDIO_SIMULATOR=$${STUDIO_SIMULATOR:-1}; \
	trap 'kill 0' INT TERM EXIT; \
	$(PY) manage.py qcluster & \
	$(VENV)/bin/gunicorn studio.wsgi -b 127.0.0.1:8000 --workers 2 --threads 8 --timeout 360 \
		--access-logfile - --log-level warning & \
	$(PY) manage.py check_worker & \
	wait

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	@for script in bench/[!_]*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) var/staticfiles
