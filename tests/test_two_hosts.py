"""Two worker clusters on two "hosts" (different STUDIO_WORKER_HOST, one machine): the one holding
jobs at submitting, running and downloading is SIGKILLed, and the other, started as it dies, takes
them over as soon as the dead one's heartbeat is older than the timeout — no pid of another host
is ever looked at. (B starts after A's kill, not before, so that none of A's queued work goes to
B while A lives: which cluster takes a task from a shared queue is chance.)

Runs on every configuration of the suite (SQLite + ORM broker + local disk, PostgreSQL + Redis +
local disk, PostgreSQL + Redis + S3 on moto's server); the hosts share only what real hosts
share: the database, the broker and the media storage. Nothing here calls jobs.recover().
"""

import hashlib
import time

from django.conf import settings
from django.db.models import Count
from django.urls import reverse

from studio import jobs, ledger, workers
from studio import simulator as sim
from studio.models import Heartbeat, Image, Job, Lease, LedgerEntry
from tests.conftest import wait_for
from tests.test_crash_recovery import (  # noqa: F401 (crash_settings: a fixture)
    LATENCY,
    async_batch,
    crash_settings,
    make_watchdog_due,
    request,
    statuses,
)


def host_of(claim):
    return workers.parts(claim)[1] if claim else ""


def poll_lease_host():
    holder = Lease.objects.filter(name=workers.POLL_LEASE).values_list("holder", flat=True).first()
    return host_of(holder or "")


def test_the_other_host_resumes_a_killed_hosts_jobs_within_the_heartbeat_timeout(
    simulator, qcluster, owner, client, crash_settings  # noqa: F811
):
    make_watchdog_due()
    env = {
        "STUDIO_SIMULATOR_URL": simulator.url,
        "STUDIO_PUBLIC_URL": simulator.url,
        "STUDIO_SIMULATOR_LATENCY": str(LATENCY),
    }

    # --- host A takes jobs into submitting, running and downloading ---------------------------
    # Once the async jobs are sent, one of A's two workers runs the lane, whose call thread
    # blocks in anyfast's submit (the simulator keeps it waiting); the other downloads four 2K
    # images a job (the simulator renders them), which lasts seconds.
    crash_settings.STUDIO_SIMULATOR_TIMEOUT_SLEEP = 30  # past the kill; over by the end of the test
    host_a = qcluster(STUDIO_WORKER_HOST="host-a", STUDIO_LANE_SECONDS="90", **env)
    submitted = async_batch(owner)
    wait_for(lambda: not {Job.QUEUED, Job.SUBMITTING} & set(statuses(*submitted)),
             timeout=30, interval=0.05, message="the async jobs to be submitted")
    blocking = jobs.create_job(owner, request("anyfast", "a forest [sim:timeout]", n=2))
    batch = (blocking, *submitted)

    def each_state_held():
        found = statuses(*batch)
        return found[0] == Job.SUBMITTING and Job.DOWNLOADING in found and Job.RUNNING in found

    try:
        wait_for(each_state_held, timeout=60, interval=0.05,
                 message="jobs in each of submitting, downloading and running")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; statuses {statuses(*batch)}") from None
    blocking.refresh_from_db()
    assert host_of(blocking.claimed_by) == "host-a"
    assert poll_lease_host() == "host-a"
    held = dict(zip(batch, statuses(*batch), strict=True))
    downloading = [job for job, status in held.items() if status == Job.DOWNLOADING]
    running = [job for job, status in held.items() if status == Job.RUNNING]

    # --- A dies with everything it held; B, on another host, starts at once --------------------
    # B's own start-up recovery finds A's heartbeat still fresh and must leave A's jobs alone:
    # they are B's only once A's heartbeat is older than the timeout.
    host_a.kill()
    killed = time.monotonic()
    qcluster(STUDIO_WORKER_HOST="host-b", **env)

    # Within the heartbeat timeout plus one poll (and a margin for a loaded machine), B has the
    # submit flagged, the lane and every download.
    within = settings.STUDIO_HEARTBEAT_TIMEOUT + settings.STUDIO_POLL_MAX_SECONDS + 10

    def taken_over():
        blocking.refresh_from_db()
        downloads = Job.objects.filter(pk__in=[job.pk for job in downloading])
        return (
            blocking.status == Job.FAILED
            and all(job.status in jobs.FINAL or host_of(job.claimed_by) == "host-b" for job in downloads)
            and (poll_lease_host() == "host-b" or set(statuses(*running)) <= jobs.FINAL)
        )

    wait_for(taken_over, timeout=within, interval=0.2, message="host B to take over host A's jobs")
    # Not before A's heartbeat aged: nothing is taken from a worker that may still live.
    assert time.monotonic() - killed >= settings.STUDIO_HEARTBEAT_TIMEOUT - 2
    assert Heartbeat.objects.filter(host="host-b").exists()
    wait_for(lambda: set(statuses(*batch)) <= jobs.FINAL, timeout=90, interval=0.2,
             message="every job to reach a final status")

    # The unanswered submit is flagged for a person, never sent again.
    assert blocking.needs_review and blocking.review_reason == jobs.REVIEW_STALE_SUBMIT
    assert blocking.images.count() == 0
    for job in submitted:
        job.refresh_from_db()
        assert job.status == Job.SUCCEEDED, (job.pk, job.status, job.error_message)
        assert sorted(job.images.values_list("index", flat=True)) == list(range(job.n_requested))

    # One upstream task per job; what the async gateways billed is what was received.
    per_gateway = dict(Job.objects.values_list("gateway").annotate(total=Count("id")).order_by())
    for gateway, count in per_gateway.items():
        assert sim.counters(gateway)["submits"] == count, gateway
    for gateway in ("apimart", "gccai", "foxapi"):
        assert sim.counters(gateway)["billed_images"] == Image.objects.filter(job__gateway=gateway).count()

    # Charges = images × price, once per job.
    for job in batch:
        charges = LedgerEntry.objects.filter(job=job, kind=LedgerEntry.CHARGE)
        if job.needs_review:
            assert not charges.exists() and ledger.job_cost(job).state == "unconfirmed"
            continue
        assert [row.amount for row in charges] == [job.unit_price * job.images.count()]

    # Every image, stored by whichever host, is readable through the portal by its owner.
    client.force_login(owner)
    for image in Image.objects.filter(job__in=batch):
        response = client.get(reverse("image_file", args=[image.pk]))
        assert response.status_code == 200
        assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == image.sha256
        assert client.get(reverse("image_thumbnail", args=[image.pk])).status_code == 200
