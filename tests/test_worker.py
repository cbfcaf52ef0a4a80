"""The worker round-trips a task through the configured broker (ORM or Redis)."""

import io
import uuid

import pytest
from django.conf import settings
from django_q.tasks import async_task, fetch

from tests.conftest import wait_for


def test_a_smoke_task_round_trips_through_a_real_qcluster(qcluster):
    qcluster()
    token = uuid.uuid4().hex
    task_id = async_task("studio.tasks.smoke", token)
    task = wait_for(lambda: fetch(task_id), timeout=60, message="the smoke task's result")
    assert task.success
    assert task.result == f"pong:{token}"


def test_the_broker_matches_the_environment():
    if settings.REDIS_URL:
        assert settings.Q_CLUSTER["redis"] == settings.REDIS_URL
    else:
        assert settings.Q_CLUSTER["orm"] == "default"


def test_check_worker_command_reports_a_live_worker(qcluster):
    from django.core.management import call_command

    qcluster()
    out = io.StringIO()
    call_command("check_worker", timeout=60, stdout=out)
    assert "Worker is running" in out.getvalue()


def test_check_worker_command_fails_without_a_worker(transactional_db):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="No worker answered"):
        call_command("check_worker", timeout=1)


def test_a_starting_cluster_enqueues_one_recovery_pass(transactional_db):
    from django_q.brokers import get_broker

    from studio import tasks

    broker = get_broker()
    broker.purge_queue()
    for _worker in ("Worker-1", "Worker-2", "Worker-3"):
        tasks.recover_at_start()  # what on_worker_start does after joining the cluster
    assert broker.queue_size() == 1
    broker.purge_queue()
