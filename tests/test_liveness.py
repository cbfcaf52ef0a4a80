"""Liveness by heartbeat, on any host: recovery, the poll lease and downloads go by it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from studio import jobs, workers
from studio.gateways.request import ImageRequest
from studio.models import Heartbeat, Job, Lease

pytestmark = pytest.mark.django_db

ELSEWHERE = "other-host:4242"  # a cluster on another host: its pid means nothing here


def silence(identity, settings):
    Heartbeat.objects.filter(identity=identity).update(beat=long_ago(settings))


def long_ago(settings):
    return timezone.now() - timedelta(seconds=settings.STUDIO_HEARTBEAT_TIMEOUT + 1)


def poll_lease_held_by(holder):
    expires = timezone.now() + timedelta(minutes=1)
    Lease.objects.create(name=workers.POLL_LEASE, holder=holder, expires=expires)


def make_job(owner):
    request = ImageRequest(gateway="apimart", model="wan2.7-image", mode="text-to-image", prompt="a boat",
                           n=1, size_tier="1K")
    return jobs.create_job(owner, request)


def test_a_beat_writes_one_row_per_identity_with_its_host():
    workers.beat(ELSEWHERE)
    workers.beat(ELSEWHERE)
    row = Heartbeat.objects.get()
    assert (row.identity, row.host, row.kind) == (ELSEWHERE, "other-host", Heartbeat.CLUSTER)
    assert workers.is_alive(ELSEWHERE)


def test_a_lane_beats_with_the_same_api():
    workers.beat("other-host:77", kind=Heartbeat.LANE)
    assert workers.is_alive("other-host:77")
    assert Heartbeat.objects.get().kind == Heartbeat.LANE


def test_a_silent_heartbeat_is_dead_whatever_the_host(settings):
    workers.beat(ELSEWHERE)
    assert not workers.worker_is_dead(f"{ELSEWHERE}/4243")
    silence(ELSEWHERE, settings)
    assert not workers.is_alive(ELSEWHERE)
    assert workers.worker_is_dead(f"{ELSEWHERE}/4243")
    assert workers.worker_is_dead(ELSEWHERE)


def test_a_claim_from_another_host_without_a_heartbeat_waits_for_the_stale_timeout():
    assert not workers.worker_is_dead("other-host:4194305")


def test_a_gone_process_on_this_host_is_dead_at_once():
    assert workers.worker_is_dead(f"{workers.worker_host()}:4194305")  # above any Linux pid_max


def test_the_worker_host_names_this_process(settings):
    settings.STUDIO_WORKER_HOST = "box-7"
    assert workers.worker_id().startswith("box-7:")


def test_the_poll_lease_passes_from_a_silent_holder(settings):
    poll_lease_held_by(f"{ELSEWHERE}/9")
    workers.beat(ELSEWHERE)
    assert workers.poller_is_alive()
    assert not workers.take_lease(workers.POLL_LEASE, 30)
    silence(ELSEWHERE, settings)
    assert not workers.poller_is_alive()
    assert workers.poller_died()
    assert workers.take_lease(workers.POLL_LEASE, 30)
    assert Lease.objects.get().holder == workers.worker_id()


def test_recovery_flags_a_submit_whose_cluster_went_silent(owner, settings):
    job = make_job(owner)
    workers.beat(ELSEWHERE)
    jobs.transition(job, Job.SUBMITTING, claimed_by=f"{ELSEWHERE}/9")
    jobs.recover()
    job.refresh_from_db()
    assert job.status == Job.SUBMITTING  # its cluster lives: never taken over
    silence(ELSEWHERE, settings)
    assert jobs.orphans_waiting()
    jobs.recover()
    job.refresh_from_db()
    assert job.status == Job.FAILED and job.needs_review
    assert job.review_reason == jobs.REVIEW_STALE_SUBMIT  # never resent: it may have reached the gateway


def downloading(owner, claimed_by):
    job = make_job(owner)
    jobs.transition(job, Job.SUBMITTING, claimed_by="")
    results = [{"index": 0, "url": "http://x.invalid/"}]
    jobs.transition(job, Job.DOWNLOADING, claimed_by=claimed_by, results=results)
    return job


def test_a_download_claimed_by_a_live_worker_elsewhere_is_left_to_it(owner):
    workers.beat(ELSEWHERE)
    job = downloading(owner, f"{ELSEWHERE}/9")
    jobs.download(job.pk)
    job.refresh_from_db()
    assert job.claimed_by == f"{ELSEWHERE}/9" and job.status == Job.DOWNLOADING
    assert not jobs.orphans_waiting()


def test_a_download_claimed_by_a_silent_worker_is_taken_over(owner, settings):
    workers.beat(ELSEWHERE)
    job = downloading(owner, f"{ELSEWHERE}/9")
    silence(ELSEWHERE, settings)
    assert jobs.orphans_waiting()
    jobs.recover()
    job.refresh_from_db()
    assert job.claimed_by == ""  # handed over: the download task queued by recover takes it
    jobs.download(job.pk)
    job.refresh_from_db()
    assert job.status == Job.FAILED  # the (unreachable) link gave nothing; nothing charged


def test_a_handed_over_download_nobody_took_is_queued_again(owner, settings):
    job = downloading(owner, "")
    assert not jobs.orphans_waiting()
    Job.objects.filter(pk=job.pk).update(updated=long_ago(settings))
    assert jobs.orphans_waiting()
    assert jobs.recover() == 1


def test_running_jobs_whose_poller_went_silent_are_orphans(owner, settings):
    job = make_job(owner)
    jobs.transition(job, Job.SUBMITTING)
    jobs.transition(job, Job.RUNNING, next_poll=timezone.now() + timedelta(seconds=60))
    poll_lease_held_by(f"{ELSEWHERE}/9")
    workers.beat(ELSEWHERE)
    assert not jobs.orphans_waiting()
    silence(ELSEWHERE, settings)
    assert jobs.orphans_waiting()
    jobs.recover_orphans()
    job.refresh_from_db()
    assert job.next_poll <= timezone.now()  # due at once for the next lane


def test_recovery_forgets_heartbeats_silent_for_a_day():
    workers.beat("old-host:1")
    workers.beat("new-host:2")
    Heartbeat.objects.filter(identity="old-host:1").update(beat=timezone.now() - timedelta(days=2))
    jobs.recover()
    assert list(Heartbeat.objects.values_list("identity", flat=True)) == ["new-host:2"]
