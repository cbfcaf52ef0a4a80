"""Searchable logs: one line per job transition and per gateway call, JSON with STUDIO_LOG_JSON=1,
never a secret."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio import jobs, logs
from studio.gateways.request import ImageRequest
from tests.test_jobs import run_to_end

SECRET = "sk-apimart-LOGS-SECRET-9999"


def formatted(caplog):
    formatter = logs.JsonFormatter()
    found = [record for record in caplog.records if record.name == "studio.events"]
    return [json.loads(formatter.format(record)) for record in found]


@pytest.mark.django_db(transaction=True)
def test_each_transition_and_gateway_call_is_one_line_with_its_fields(simulator, owner, settings, caplog):
    settings.STUDIO_GATEWAYS = {
        **settings.STUDIO_GATEWAYS,
        "apimart": {"api_key": SECRET, "base_url": simulator.url + "/sim/apimart"},
    }
    caplog.set_level(logging.INFO, logger="studio.events")
    request = ImageRequest(gateway="apimart", model="wan2.7-image", mode="text-to-image", prompt="a log",
                           n=1, size_tier="1K")
    job = run_to_end(jobs.create_job(owner, request))
    lines = formatted(caplog)
    moves = [(line["old_status"], line["status"]) for line in lines if line["event"] == "job.transition"]
    assert moves == [("queued", "submitting"), ("submitting", "running"), ("running", "downloading"),
                     ("downloading", "succeeded")]
    calls = [line for line in lines if line["event"].startswith("gateway.")]
    assert calls[0]["event"] == "gateway.submit" and calls[0]["status"] in ("pending", "running")
    assert {line["event"] for line in calls[1:]} == {"gateway.poll"} and calls[-1]["status"] == "completed"
    for line in lines:
        assert line["job"] == job.pk and line["gateway"] == "apimart"
        assert line["seconds"] >= 0 and "error_class" in line and line["level"] == "INFO"
    text = "\n".join(json.dumps(line) for line in lines) + caplog.text
    assert SECRET not in text and settings.SECRET_KEY not in text


@pytest.mark.django_db(transaction=True)
def test_a_failed_call_names_its_error_class(simulator, owner, caplog):
    caplog.set_level(logging.INFO, logger="studio.events")
    request = ImageRequest(gateway="apimart", model="wan2.7-image", mode="text-to-image",
                           prompt="[sim:moderation] a log", n=1, size_tier="1K")
    run_to_end(jobs.create_job(owner, request))
    lines = formatted(caplog)
    submit = next(line for line in lines if line["event"] == "gateway.submit")
    assert (submit["status"], submit["error_class"]) == ("error", "rejected")
    assert lines[-1]["status"] == "failed" and lines[-1]["error_class"] == "rejected"


def test_the_setting_makes_every_studio_line_json(tmp_path):
    script = "import django; django.setup(); from studio import logs; logs.event('job.transition', job=7, " \
             "gateway='foxapi', status='running', seconds=1.5)"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("STUDIO_", "DATABASE_URL"))}
    env.update(DJANGO_SETTINGS_MODULE="studio.settings", STUDIO_VAR_DIR=str(tmp_path), STUDIO_LOG_JSON="1")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent, timeout=60)
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["event"] == "job.transition" and line["job"] == 7 and line["seconds"] == 1.5
    assert line["logger"] == "studio.events" and line["status"] == "running"
