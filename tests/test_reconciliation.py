"""The ledger against what the gateways bill: 200 jobs over every gateway, with every fault
marker and cancels at random moments, driven through the real pipeline against the simulator
over HTTP. To the fen, per gateway: charges ≤ billed × price ≤ charges + unconfirmed exposure,
and once every unconfirmed job is resolved from the simulator's own records, charges = billed ×
price."""

import random
import threading
import time
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db.models import Sum
from django.utils import timezone

from studio import jobs, ledger
from studio import simulator as sim
from studio.gateways.request import ImageRequest
from studio.models import Job, LedgerEntry, Price
from studio.simulator.faults import FAULTS
from studio.simulator.models import SimTask
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

JOBS = 200
MODELS = {gateway: "wan2.7-image" for gateway in ("anyfast", "apimart", "gccai", "foxapi")}
MOMENTS = [None, None, None, Job.QUEUED, Job.SUBMITTING, Job.RUNNING, Job.DOWNLOADING]


@pytest.fixture
def fast(settings):
    settings.STUDIO_SIMULATOR_LATENCY = 0.2
    settings.STUDIO_SIMULATOR_TIMEOUT_SLEEP = 0.8
    settings.STUDIO_GATEWAY_READ_TIMEOUT = 0.4
    settings.STUDIO_SYNC_READ_TIMEOUT = 0.6
    settings.STUDIO_POLL_MIN_SECONDS = 0.05
    settings.STUDIO_RETRY_BASE_SECONDS = 0.05
    settings.STUDIO_RETRY_MAX_SECONDS = 0.1
    settings.STUDIO_DEFAULT_MONTHLY_BUDGET = ""
    Price.objects.create(gateway="anyfast", model="wan2.7-image", unit_price=Decimal("0.30"))
    Price.objects.create(gateway="foxapi", model="wan2.7-image", unit_price=Decimal("0.40"))


def tag(job_number):
    return f"(reconcile {job_number:03d})"


def step(job, cancel_at):
    """One move of the pipeline for this job, as the workers would make it; cancels when the
    job reaches its chosen moment."""
    job.refresh_from_db()
    if cancel_at == job.status and not job.stopped_by_user:
        jobs.cancel(job)
        job.refresh_from_db()
    if job.status == Job.QUEUED:
        Job.objects.filter(pk=job.pk).update(next_poll=None)
        if cancel_at != Job.SUBMITTING:
            jobs.submit(job.pk)
            return
        # Cancel while the submit is under way: it runs in a thread, as in a worker.
        sender = threading.Thread(target=jobs.submit, args=(job.pk,))
        sender.start()
        while sender.is_alive() and Job.objects.get(pk=job.pk).status == Job.QUEUED:
            time.sleep(0.005)
        jobs.cancel(job)
        sender.join()
    elif job.status == Job.RUNNING:
        Job.objects.filter(pk=job.pk, status=Job.RUNNING).update(next_poll=timezone.now())
        jobs.poll_once()
    elif job.status == Job.DOWNLOADING:
        jobs.download(job.pk)


def test_the_ledger_matches_what_every_gateway_bills(simulator, owner, fast):
    chance = random.Random(20261202)
    plan = []
    for number in range(JOBS):
        gateway = chance.choice(sorted(MODELS))
        fault = chance.choice(["", *FAULTS])
        marker = f" [sim:{fault}]" if fault else ""
        request = ImageRequest(
            gateway=gateway, model=MODELS[gateway], mode="text-to-image", n=chance.choice([1, 2]),
            prompt=f"a lighthouse {tag(number)}{marker}", size_tier="1K",
        )
        plan.append((jobs.create_job(owner, request), chance.choice(MOMENTS)))

    deadline = time.monotonic() + 240
    while any(job.status not in jobs.FINAL for job, _ in plan):
        assert time.monotonic() < deadline, [job.status for job, _ in plan if job.status not in jobs.FINAL]
        for job, cancel_at in plan:
            if job.status not in jobs.FINAL:
                step(job, cancel_at)
        time.sleep(0.05)

    # The simulator bills a task when its clock says it is done: wait for the last one to be.
    wait_for(sim.all_done, message="every upstream task to be over")
    unconfirmed = [job for job, _ in plan if ledger.job_cost(job).state == "unconfirmed"]
    assert any(job.stopped_by_user for job, _ in plan) and unconfirmed  # both cases were exercised
    for gateway in MODELS:
        price = ledger.unit_price(gateway, MODELS[gateway])
        billed = sim.counters(gateway)["billed_images"] * price
        charges = charged(gateway)
        exposure = sum((job.hold_amount for job in unconfirmed if job.gateway == gateway), Decimal(0))
        assert charges <= billed <= charges + exposure, (gateway, charges, billed, exposure)

    staff = User.objects.create_user("lead", password="x", is_staff=True)
    for job in unconfirmed:
        found = SimTask.objects.filter(gateway=job.gateway, body__prompt__icontains=prompt_tag(job)).first()
        images = found.billed_images if found else 0
        jobs.resolve_unconfirmed(job, images, staff, "checked against the gateway's billing records")
    for gateway in MODELS:
        price = ledger.unit_price(gateway, MODELS[gateway])
        assert charged(gateway) == sim.counters(gateway)["billed_images"] * price, gateway


def prompt_tag(job):
    return job.prompt[job.prompt.index("(reconcile"):][: len(tag(0))]


def charged(gateway):
    rows = LedgerEntry.objects.filter(job__gateway=gateway, kind=LedgerEntry.CHARGE)
    return rows.aggregate(total=Sum("amount"))["total"] or Decimal(0)
