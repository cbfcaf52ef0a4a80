"""/healthz: 200 when the database, the broker and a worker cluster live; 503 with the reason."""

from datetime import timedelta

import pytest
from django.utils import timezone

from studio import workers
from studio.models import Heartbeat
from tests.conftest import wait_for


def healthz(client):
    response = client.get("/healthz")
    return response.status_code, response.json()


@pytest.mark.django_db
def test_it_answers_200_with_a_live_worker(client):
    workers.beat("host-a:100")
    assert healthz(client) == (200, {"ok": True, "database": "ok", "broker": "ok", "workers": "ok"})


@pytest.mark.django_db
def test_it_answers_503_without_any_worker_heartbeat(client):
    status, body = healthz(client)
    assert status == 503
    assert body["ok"] is False and body["database"] == "ok"
    assert body["workers"].startswith("no worker cluster has a heartbeat")


@pytest.mark.django_db
def test_it_answers_503_when_the_only_heartbeat_is_old(client, settings):
    workers.beat("host-a:100")
    old = timezone.now() - timedelta(seconds=settings.STUDIO_HEARTBEAT_TIMEOUT + 1)
    Heartbeat.objects.update(beat=old)
    assert healthz(client)[0] == 503


@pytest.mark.django_db
def test_a_lane_alone_is_not_a_worker(client):
    workers.beat("host-a:200", kind=Heartbeat.LANE)
    assert healthz(client)[0] == 503


@pytest.mark.django_db
def test_it_names_an_unreachable_broker(client, settings):
    workers.beat("host-a:100")
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    status, body = healthz(client)
    assert status == 503
    assert body["broker"].startswith("unreachable (") and body["workers"] == "ok"
    assert "127.0.0.1" not in body["broker"]


def test_it_answers_503_when_the_worker_is_stopped_and_200_when_it_runs(qcluster, client, settings):
    assert healthz(client)[0] == 503
    cluster = qcluster(STUDIO_WORKER_HOST="health-host")
    wait_for(lambda: healthz(client)[0] == 200, timeout=60, message="/healthz to answer 200")
    assert Heartbeat.objects.get().host == "health-host"
    cluster.kill()
    wait_for(lambda: healthz(client)[0] == 503, timeout=settings.STUDIO_HEARTBEAT_TIMEOUT + 5,
             message="/healthz to answer 503 once the worker's heartbeat is old")
    assert healthz(client)[1]["workers"].startswith("no worker cluster")
