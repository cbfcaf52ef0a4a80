"""A real worker cluster killed with SIGKILL mid-work never loses a job and never bills twice.

One run, three clusters in turn on the test database, the simulator serving every gateway over HTTP:

  cluster A  killed while anyfast blocks in its submit (`submitting`), two slow async tasks are
             being polled (`running`) and two finished ones wait for their download (`downloading`)
  cluster B  takes a new 4-image job and is killed halfway through its download, before its
             scheduler has run once: nothing left by A has been recovered yet
  cluster C  the watchdog schedule recovers everything and every job reaches a final status

Nothing here calls jobs.recover(): only the `studio-watchdog` schedule that migration 0002 creates
does. django-q2's guard loop calls its scheduler for the first time about 30 seconds after a
cluster starts (not at once), so recovery after a restart takes at least that long.
"""

import importlib
from decimal import Decimal

import pytest
from django.apps import apps
from django.db.models import Count
from django_q.models import Schedule, Task

from studio import jobs, ledger, workers
from studio import simulator as sim
from studio.gateways.request import ImageRequest
from studio.models import Image, Job, JobEvent, Lease, LedgerEntry, Price
from tests.conftest import wait_for

LATENCY = 5.0  # seconds a simulated task takes; `[sim:slow]` makes it three times that
PRICES = {"anyfast": Decimal("0.30"), "foxapi": Decimal("0.40")}
# The first scheduler pass of a new cluster (~30 s) and the work after it.
RECOVERY_TIMEOUT = 60


@pytest.fixture
def crash_settings(settings):
    # The live server (this process) and the clusters (the environment) must agree.
    settings.STUDIO_SIMULATOR_LATENCY = LATENCY
    settings.STUDIO_DEFAULT_MONTHLY_BUDGET = "100.00"
    for gateway, price in PRICES.items():
        for model in ("wan2.7-image-pro", "wan2.7-image"):
            Price.objects.create(gateway=gateway, model=model, unit_price=price)
    return settings


def make_watchdog_due():
    """What migration 0002 does; run again because a transactional test before this one
    flushed the row the migration wrote."""
    migration = importlib.import_module("studio.migrations.0002_watchdog_schedule")
    migration.create_watchdog(apps, None)
    assert Schedule.objects.filter(name="studio-watchdog", func="studio.tasks.watchdog").count() == 1


def request(gateway, prompt, n=1, model="wan2.7-image", size_tier="1K"):
    return ImageRequest(gateway=gateway, model=model, mode="text-to-image", prompt=prompt, n=n,
                        size_tier=size_tier)


def async_batch(owner):
    """Two jobs that finish after LATENCY and download for seconds (four 2K images each, which
    the simulator renders), so they are still downloading when a cluster is killed; and two slow
    ones (3 × LATENCY), still running then."""
    big = {"n": 4, "model": "wan2.7-image-pro", "size_tier": "2K"}
    return (
        jobs.create_job(owner, request("apimart", "a harbour at noon", **big)),
        jobs.create_job(owner, request("foxapi", "a single gull", **big)),
        jobs.create_job(owner, request("gccai", "a glacier [sim:slow]", n=2)),
        jobs.create_job(owner, request("foxapi", "a desert [sim:slow]")),
    )


def statuses(*batch):
    found = dict(Job.objects.filter(pk__in=[job.pk for job in batch]).values_list("pk", "status"))
    return [found[job.pk] for job in batch]


def test_killed_clusters_lose_no_job_and_bill_nothing_twice(simulator, qcluster, owner, crash_settings):
    make_watchdog_due()
    env = {
        "STUDIO_SIMULATOR_URL": simulator.url,
        "STUDIO_PUBLIC_URL": simulator.url,
        "STUDIO_SIMULATOR_LATENCY": str(LATENCY),
    }

    # --- cluster A: killed with jobs in submitting, running and downloading ------------------
    cluster = qcluster(**env)
    apimart, foxapi, slow_gccai, slow_foxapi = submitted = async_batch(owner)
    wait_for(lambda: not {Job.QUEUED, Job.SUBMITTING} & set(statuses(*submitted)),
             timeout=30, message="the async jobs to be submitted")
    # The lane holds one of the two workers; anyfast's submit blocks one of its call threads for
    # 3 × LATENCY, so killing the cluster kills the lane mid-generation.
    blocking = jobs.create_job(owner, request("anyfast", "a forest [sim:slow]", n=2))
    batch = (blocking, *submitted)
    wanted = [Job.SUBMITTING, Job.DOWNLOADING, Job.DOWNLOADING, Job.RUNNING, Job.RUNNING]
    wait_for(lambda: statuses(*batch) == wanted, timeout=30, interval=0.05,
             message="jobs in each of submitting, downloading and running")
    lane_worker = Lease.objects.get(name=workers.POLL_LEASE).holder
    cluster.kill()
    assert statuses(*batch) == wanted
    assert Job.objects.get(pk=blocking.pk).claimed_by == lane_worker  # the lane sent it

    # --- cluster B: killed halfway through a download, before its scheduler first runs -------
    cluster = qcluster(**env)
    # Four images at 2K take several seconds to render and store: a download we can interrupt.
    big = jobs.create_job(owner, request("apimart", "a harbour at dusk", n=4, model="wan2.7-image-pro",
                                         size_tier="2K"))

    def big_download_half_done():
        big.refresh_from_db()
        return big.status == Job.DOWNLOADING and 1 <= big.images.count() < 4

    wait_for(big_download_half_done, timeout=40, interval=0.05, message="the big download to be under way")
    cluster.kill()
    assert big_download_half_done()

    # --- cluster C: the watchdog schedule recovers everything --------------------------------
    everything = [*batch, big]
    cluster = qcluster(**env)
    wait_for(lambda: all(status in jobs.FINAL for status in statuses(*everything)),
             timeout=RECOVERY_TIMEOUT, interval=0.2, message="every job to reach a final status")
    cluster.kill()  # all work is done; a graceful stop only costs time

    # The watchdog schedule did the recovering.
    assert Task.objects.filter(func="studio.tasks.watchdog", success=True).exists()

    # The blocking submit may have reached anyfast: failed, flagged for a person, not charged.
    blocking.refresh_from_db()
    assert blocking.status == Job.FAILED
    assert blocking.needs_review and blocking.review_reason == jobs.REVIEW_STALE_SUBMIT
    assert blocking.images.count() == 0
    assert sim.counters("anyfast")["billed_images"] == 2  # why a person must look: it did run

    for job in (apimart, foxapi, slow_gccai, slow_foxapi, big):
        job.refresh_from_db()
        assert job.status == Job.SUCCEEDED, (job.pk, job.status, job.error_message)
        assert sorted(job.images.values_list("index", flat=True)) == list(range(job.n_requested))
        assert not job.needs_review

    # One upstream task per job, never a second one.
    per_gateway = dict(Job.objects.values_list("gateway").annotate(total=Count("id")).order_by())
    for gateway in ("anyfast", "apimart", "gccai", "foxapi"):
        assert sim.counters(gateway)["submits"] == per_gateway[gateway], gateway
    # What the async gateways billed is exactly what we received and charged.
    for gateway in ("apimart", "gccai", "foxapi"):
        received = Image.objects.filter(job__gateway=gateway).count()
        assert sim.counters(gateway)["billed_images"] == received, gateway

    # Money: one hold and one release per job; a charge of images × unit price, only for images.
    for job in everything:
        rows = list(LedgerEntry.objects.filter(job=job).values_list("kind", "amount", "images"))
        kinds = sorted(kind for kind, _amount, _images in rows)
        images = job.images.count()
        if job.needs_review:
            # Its submit may have reached the gateway (it did: see above): the hold stays as
            # unconfirmed exposure, counted against the budget, until an admin resolves it.
            assert kinds == ["hold"], (job.pk, rows)
            assert ledger.job_cost(job).state == "unconfirmed"
            continue
        expected = ["charge", "hold", "release"] if images else ["hold", "release"]
        assert kinds == expected, (job.pk, rows)
        amounts = {kind: amount for kind, amount, _images in rows}
        assert amounts["release"] == amounts["hold"] == job.unit_price * job.n_requested
        if images:
            assert amounts["charge"] == job.unit_price * images

    # Every recorded move was an allowed one.
    for old, new in JobEvent.objects.exclude(old_status="").values_list("old_status", "new_status"):
        assert new in jobs.TRANSITIONS[old] or (new == old and old not in jobs.FINAL), (old, new)
