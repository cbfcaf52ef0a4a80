"""The operations page (/review/system/, staff only): workers and lanes with their heartbeats,
queue depth, the oldest job under way, and each gateway's last hour. Access is tested with the
rest of the review's URLs in test_views_review.py."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from studio import operations, workers
from studio.models import Heartbeat, Job, Lease
from tests.view_helpers import make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def page(staff_client):
    response = staff_client.get(reverse("review_system"))
    assert response.status_code == 200
    return response.content.decode()


def test_it_lists_each_cluster_and_lane_with_its_last_heartbeat(staff_client, settings):
    workers.beat("host-a:10")
    workers.beat("host-b:20")
    workers.beat("host-a:30", kind=Heartbeat.LANE)
    Heartbeat.objects.filter(identity="host-b:20").update(
        beat=timezone.now() - timedelta(seconds=settings.STUDIO_HEARTBEAT_TIMEOUT + 5))
    Lease.objects.create(name=workers.POLL_LEASE, holder="host-a:10/11",
                         expires=timezone.now() + timedelta(minutes=1))
    rows = {row.identity: row for row in operations.worker_rows()}
    assert rows["host-a:10"].alive and rows["host-a:10"].polls
    assert not rows["host-b:20"].alive and rows["host-b:20"].age > settings.STUDIO_HEARTBEAT_TIMEOUT
    assert rows["host-a:30"].kind == Heartbeat.LANE and not rows["host-a:30"].polls
    html = page(staff_client)
    for identity in rows:
        assert identity in html
    assert "silent" in html and "polls" in html


def test_it_counts_the_queue_and_names_the_oldest_job_under_way(staff_client, owner):
    oldest = make_job(owner, status=Job.RUNNING, images=0)
    Job.objects.filter(pk=oldest.pk).update(created=timezone.now() - timedelta(hours=2),
                                            next_poll=timezone.now() - timedelta(seconds=1))
    make_job(owner, status=Job.QUEUED, images=0)
    make_job(owner, status=Job.QUEUED, images=0)
    make_job(owner, status=Job.SUCCEEDED, images=0)
    assert operations.queue_depth() == {"queued": 2, "due_polls": 1, "active": 3}
    assert operations.oldest_active_job() == oldest
    assert reverse("review_job", args=[oldest.pk]) in page(staff_client)


def test_each_gateway_has_its_last_hour_jobs_errors_and_times_to_result(staff_client, owner):
    now = timezone.now()
    made = now - timedelta(minutes=5)
    for seconds in (10, 20, 30, 40):
        job = make_job(owner, status=Job.SUCCEEDED, images=0)
        Job.objects.filter(pk=job.pk).update(created=made, first_result=made + timedelta(seconds=seconds))
    failed = make_job(owner, status=Job.FAILED, images=0)
    Job.objects.filter(pk=failed.pk).update(error_class="transient")
    refused = make_job(owner, status=Job.FAILED, images=0)
    Job.objects.filter(pk=refused.pk).update(error_class="account", error_message="The balance is empty.",
                                             finished=now)
    old = make_job(owner, status=Job.SUCCEEDED, images=0)
    Job.objects.filter(pk=old.pk).update(created=now - timedelta(hours=3))

    apimart = {row.gateway: row for row in operations.gateway_rows()}["apimart"]
    assert (apimart.jobs, apimart.failed) == (6, 2)  # the one from 3 hours ago is not counted
    assert apimart.errors == {"account": 16.7, "transient": 16.7}
    assert apimart.median_seconds == 25 and apimart.p95_seconds == 40
    assert apimart.last_account_error == refused
    html = page(staff_client)
    assert "The balance is empty." in html and "transient 16.7%" in html


def test_the_cost_review_links_to_it(staff_client):
    assert reverse("review_system") in staff_client.get(reverse("review")).content.decode()
