"""The job pipeline against the simulator over real HTTP: success, faults, cancel, deadline,
recovery. Tasks are called directly here (the worker tests run a real qcluster)."""

import io
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image as PILImage

from studio import jobs, ledger, media, tasks
from studio import simulator as sim
from studio.gateways.errors import TRANSIENT, GatewayError
from studio.gateways.request import ImageRequest
from studio.models import Image, Job, JobEvent, LedgerEntry, Price, Upload
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PRICES = {"anyfast": Decimal("0.30"), "foxapi": Decimal("0.40")}


@pytest.fixture(autouse=True)
def fast_pipeline(settings):
    settings.STUDIO_POLL_MIN_SECONDS = 0.05
    settings.STUDIO_RETRY_BASE_SECONDS = 0.05
    settings.STUDIO_RETRY_MAX_SECONDS = 0.1
    settings.STUDIO_SIMULATOR_LATENCY = 0.3
    settings.STUDIO_DEFAULT_MONTHLY_BUDGET = "100.00"


@pytest.fixture
def priced(db):
    for model in ("wan2.7-image-pro", "wan2.7-image", "doubao-seedream-4-5-251128"):
        Price.objects.create(gateway="anyfast", model=model, unit_price=PRICES["anyfast"])
    for model in ("wan2.7-image-pro", "wan2.7-image"):
        Price.objects.create(gateway="foxapi", model=model, unit_price=PRICES["foxapi"])


def text_request(gateway="apimart", prompt="a lighthouse at dusk", n=2, model="wan2.7-image", **extra):
    return ImageRequest(
        gateway=gateway, model=model, mode="text-to-image", prompt=prompt, n=n, size_tier="1K", **extra
    )


def make_upload(owner, width=640, height=480, colour=(200, 80, 40)):
    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), colour).save(buffer, "PNG")
    data = buffer.getvalue()
    upload = Upload(
        owner=owner,
        original_name="photo.png",
        mime="image/png",
        width=width,
        height=height,
        bytes=len(data),
        sha256="x" * 64,
    )
    upload.file.save("photo.png", ContentFile(data), save=False)
    upload.save()
    return upload


def run_to_end(job, timeout=30):
    """Drive one job the way the worker does: submit, poll, download."""
    jobs.submit(job.pk)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in jobs.FINAL:
            return job
        if job.status == Job.QUEUED:
            Job.objects.filter(pk=job.pk).update(next_poll=None)
            jobs.submit(job.pk)
        elif job.status == Job.RUNNING:
            Job.objects.filter(pk=job.pk).update(next_poll=timezone.now())
            jobs.poll_once()
        elif job.status == Job.DOWNLOADING:
            jobs.download(job.pk)
        time.sleep(0.05)
    raise AssertionError(f"job stuck in {job.status}")


def money(job):
    return dict(LedgerEntry.objects.filter(job=job).values_list("kind", "amount"))


@pytest.mark.parametrize(
    "gateway, model, price",
    [
        ("anyfast", "wan2.7-image", PRICES["anyfast"]),
        ("anyfast", "doubao-seedream-4-5-251128", PRICES["anyfast"]),
        ("apimart", "wan2.7-image-pro", Decimal("0.50")),
        ("gccai", "wan2.7-image", Decimal("0.20")),
        ("foxapi", "wan2.7-image", PRICES["foxapi"]),
    ],
)
def test_it_makes_downloads_and_charges(simulator, owner, priced, gateway, model, price):
    n = 1 if model.startswith("doubao") else 2
    job = jobs.create_job(owner, text_request(gateway=gateway, model=model, n=n))
    assert job.status == Job.QUEUED
    assert money(job) == {"hold": price * n}

    job = run_to_end(job)
    assert job.status == Job.SUCCEEDED, job.error_message
    # Final (and charged) before the thumbnails: this process's thumbnail thread makes them next.
    media.THUMBNAIL_QUEUE.join()
    images = list(job.images.order_by("index"))
    assert [image.index for image in images] == list(range(n))
    for image in images:
        assert default_storage.exists(image.file.name)
        assert default_storage.exists(image.thumbnail.name)
        assert (
            image.mime == "image/png" and image.width == 1024 and image.bytes > 0 and len(image.sha256) == 64
        )
        with default_storage.open(image.thumbnail.name) as thumb:
            assert max(PILImage.open(thumb).size) <= 512
    assert money(job) == {"hold": price * n, "release": price * n, "charge": price * n}
    assert simulator_counters(gateway) == {"submits": 1, "billed_images": n}
    assert ledger.month_spend(owner) == price * n
    assert list(job.events.values_list("new_status", flat=True))[-1] == Job.SUCCEEDED


def simulator_counters(gateway):
    return sim.counters(gateway)


def test_b64_results_are_stored_like_urls(simulator, owner, priced):
    job = run_to_end(jobs.create_job(owner, text_request(gateway="anyfast", response_format="b64_json")))
    assert job.status == Job.SUCCEEDED
    assert job.images.count() == 2
    assert all("incoming" in entry for entry in job.results)
    assert not default_storage.exists(job.results[0]["incoming"])  # the temporary copy is gone


def test_an_edit_sends_the_stored_upload(simulator, owner):
    upload = make_upload(owner)
    request = ImageRequest(
        gateway="apimart", model="wan2.7-image", mode="edit", prompt="make it blue", n=1, size_tier="1K"
    )
    job = run_to_end(jobs.create_job(owner, request, [upload]))
    assert job.status == Job.SUCCEEDED
    body = sim.last_request("apimart")
    assert len(body["image_urls"]) == 1 and body["image_urls"][0].startswith("data:image/png;base64,")


def test_foxapi_fetches_inputs_from_a_signed_url(simulator, owner, priced):
    upload = make_upload(owner)
    request = ImageRequest(
        gateway="foxapi", model="wan2.7-image", mode="edit", prompt="image 1 as a sketch", n=1
    )
    job = run_to_end(jobs.create_job(owner, request, [upload]))
    assert job.status == Job.SUCCEEDED, job.error_message
    url = sim.last_request("foxapi")["image_urls"][0]
    assert url.startswith(simulator.url + "/public/uploads/")


@pytest.mark.parametrize("fault", ["rate-limit", "server-error", "bad-gateway-html", "empty-body"])
def test_transient_submit_errors_retry_then_fail_without_charge(simulator, owner, settings, fault):
    settings.STUDIO_SUBMIT_ATTEMPTS = 3
    job = run_to_end(jobs.create_job(owner, text_request(prompt=f"a boat [sim:{fault}]")))
    assert job.status == Job.FAILED
    assert job.attempts == 3
    assert job.error_class == "transient"
    assert not job.needs_review
    assert money(job) == {"hold": Decimal("0.40"), "release": Decimal("0.40")}
    assert simulator_counters("apimart")["submits"] == 0
    assert ledger.month_spend(owner) == 0


def test_moderation_fails_at_once_with_the_gateways_message(simulator, owner):
    job = run_to_end(jobs.create_job(owner, text_request(prompt="something [sim:moderation]")))
    assert job.status == Job.FAILED
    assert job.attempts == 1
    assert job.error_class == "rejected"
    assert "inappropriate" in job.error_message
    assert "charge" not in money(job)


@pytest.mark.parametrize("key, words", [("invalid", "API key"), ("broke", "balance")])
def test_account_errors_fail_at_once_and_name_the_key_or_balance(simulator, owner, settings, key, words):
    settings.STUDIO_GATEWAYS = {
        **settings.STUDIO_GATEWAYS,
        "gccai": {"api_key": key, "base_url": simulator.url + "/sim/gccai"},
    }
    job = run_to_end(jobs.create_job(owner, text_request(gateway="gccai")))
    assert job.status == Job.FAILED
    assert job.attempts == 1
    assert job.error_class == "account"
    assert words in job.error_message
    assert key not in job.error_message.split()  # the key itself is never shown


def charged(job):
    return sum(LedgerEntry.objects.filter(job=job, kind="charge").values_list("amount", flat=True))


@pytest.mark.parametrize("fault", ["timeout", "drop-after-create"])
def test_a_submit_that_may_have_reached_the_gateway_is_never_resent(simulator, owner, settings, fault):
    settings.STUDIO_GATEWAY_READ_TIMEOUT = 1
    settings.STUDIO_SYNC_READ_TIMEOUT = 1
    settings.STUDIO_SIMULATOR_TIMEOUT_SLEEP = 3
    job = run_to_end(jobs.create_job(owner, text_request(prompt=f"a harbour [sim:{fault}]")))
    assert job.status == Job.FAILED
    assert job.attempts == 1
    assert job.needs_review and job.review_reason == jobs.REVIEW_MAY_HAVE_RUN
    assert job.error_message == jobs.MAY_HAVE_RUN.format(amount="¥0.40")
    assert "may have made these images and billed up to ¥0.40" in job.error_message
    assert "charge" not in money(job)
    assert simulator_counters("apimart")["submits"] <= 1


@pytest.mark.parametrize("fault", ["timeout", "drop-after-create"])
def test_an_unanswered_submit_keeps_its_exposure_until_an_admin_resolves_it(
        simulator, owner, settings, django_user_model, fault):
    settings.STUDIO_GATEWAY_READ_TIMEOUT = 0.5
    settings.STUDIO_SIMULATOR_TIMEOUT_SLEEP = 1
    job = run_to_end(jobs.create_job(owner, text_request(prompt=f"a harbour [sim:{fault}]")))
    assert job.status == Job.FAILED
    # The hold stays on record as unconfirmed, and the budget counts it.
    assert money(job) == {"hold": Decimal("0.40")}
    assert ledger.job_cost(job).state == "unconfirmed"
    assert ledger.month_spend(owner) == Decimal("0.40")
    assert ledger.spend_summary(owner)["unconfirmed"] == Decimal("0.40")
    assert ledger.remaining(owner) == Decimal("99.60")

    wait_for(sim.all_done, message="the upstream task to finish and bill")
    billed = simulator_counters("apimart")["billed_images"]
    staff = django_user_model.objects.create_user("lead", password="x", is_staff=True)
    with pytest.raises(ValueError):
        jobs.resolve_unconfirmed(job, billed, staff, "")  # a note is required
    assert jobs.resolve_unconfirmed(job, billed, staff, "the gateway's billing page lists it")
    job.refresh_from_db()
    assert not job.needs_review
    assert charged(job) == Decimal("0.20") * billed
    settled_by = LedgerEntry.objects.filter(job=job).exclude(kind="hold").values_list("recorded_by", flat=1)
    assert set(settled_by) == {staff.pk}
    assert ledger.spend_summary(owner)["unconfirmed"] == 0
    assert ledger.month_spend(owner) == Decimal("0.20") * billed
    with pytest.raises(ValueError):
        jobs.resolve_unconfirmed(job, billed, staff, "again")  # once only


def test_a_task_that_fails_upstream_fails_the_job(simulator, owner):
    job = run_to_end(jobs.create_job(owner, text_request(prompt="a tree [sim:task-fails]")))
    assert job.status == Job.FAILED
    assert job.error_message
    assert "charge" not in money(job)


@pytest.mark.parametrize(
    "gateway, model", [("apimart", "wan2.7-image"), ("anyfast", "doubao-seedream-4-5-251128")]
)
def test_partial_results_are_charged_per_image_received(simulator, owner, priced, gateway, model):
    request = ImageRequest(
        gateway=gateway,
        model=model,
        mode="storyboard",
        prompt="four seasons [sim:partial]",
        n=4,
        size_tier="2K",
    )
    job = run_to_end(jobs.create_job(owner, request))
    assert job.status == Job.PARTIAL, job.error_message
    assert job.images.count() == 3
    price = ledger.unit_price(gateway, model)
    assert money(job)["charge"] == price * 3
    assert simulator_counters(gateway)["billed_images"] == 3


def test_a_lost_task_fails_and_refunds(simulator, owner):
    job = run_to_end(jobs.create_job(owner, text_request(prompt="a fox [sim:lost]")))
    assert job.status == Job.FAILED
    assert job.error_class == "lost"
    assert "charge" not in money(job)


def test_rate_limits_while_polling_leave_the_task_running(simulator, owner):
    job = run_to_end(jobs.create_job(owner, text_request(prompt="a kite [sim:poll-rate-limit]")))
    assert job.status == Job.SUCCEEDED
    assert simulator_counters("apimart") == {"submits": 1, "billed_images": 2}


def test_cancel_a_queued_job_releases_at_once(simulator, owner):
    job = jobs.create_job(owner, text_request())
    assert jobs.cancel(job) is True
    job.refresh_from_db()
    assert job.status == Job.CANCELLED and not job.needs_review
    assert money(job) == {"hold": Decimal("0.40"), "release": Decimal("0.40")}
    jobs.submit(job.pk)  # a late delivery of the submit task does nothing
    assert simulator_counters("apimart")["submits"] == 0


def test_stopping_a_running_job_still_stores_and_charges_what_the_gateway_made(simulator, owner):
    job = jobs.create_job(owner, text_request())
    jobs.submit(job.pk)
    job.refresh_from_db()
    assert job.status == Job.RUNNING
    assert jobs.cancel(job) is True
    job.refresh_from_db()
    assert job.status == Job.RUNNING and job.stopped_by_user  # still followed
    assert jobs.cancel(job) is False  # once
    job = run_to_end(job)
    assert job.status == Job.SUCCEEDED and job.images.count() == 2
    assert charged(job) == Decimal("0.40") == Decimal("0.20") * simulator_counters("apimart")["billed_images"]


def test_stopping_a_submitting_job_flags_it_and_keeps_it_followed(simulator, owner):
    job = jobs.create_job(owner, text_request())
    jobs.transition(job, Job.SUBMITTING)
    assert jobs.cancel(job) is True
    job.refresh_from_db()
    assert job.status == Job.SUBMITTING and job.stopped_by_user
    assert JobEvent.objects.filter(job=job, note__startswith="stopped by the user").exists()


def test_a_finished_job_cannot_be_cancelled(simulator, owner):
    done = run_to_end(jobs.create_job(owner, text_request()))
    assert jobs.cancel(done) is False
    assert done.status == Job.SUCCEEDED


def poll_until(job, status):
    def poll():
        Job.objects.filter(pk=job.pk, status=Job.RUNNING).update(next_poll=timezone.now())
        jobs.poll_once()
        return Job.objects.get(pk=job.pk).status == status

    wait_for(poll, message=f"job {job.pk} to be {status}")


def submit_in_background(job):
    worker = threading.Thread(target=jobs.submit, args=(job.pk,))
    worker.start()
    return worker


@pytest.mark.parametrize("moment", ["queued", "retry pending", "submitting", "running", "downloading"])
def test_cancel_at_every_status_matches_what_the_gateway_bills(simulator, owner, priced, settings, moment):
    """Whenever the person cancels, the ledger ends equal to what the gateway billed."""
    gateway, price, prompt = "apimart", Decimal("0.20"), "a lighthouse"
    if moment == "retry pending":
        prompt += " [sim:rate-limit]"
    if moment == "submitting":
        gateway, price = "anyfast", PRICES["anyfast"]  # sync: the submit lasts the whole generation
        settings.STUDIO_SIMULATOR_LATENCY = 1.0
    job = jobs.create_job(owner, text_request(gateway=gateway, prompt=prompt))
    if moment == "retry pending":
        jobs.submit(job.pk)
    elif moment == "submitting":
        worker = submit_in_background(job)
        wait_for(lambda: Job.objects.get(pk=job.pk).status == Job.SUBMITTING)
    elif moment in ("running", "downloading"):
        jobs.submit(job.pk)
        if moment == "downloading":
            poll_until(job, Job.DOWNLOADING)
    job.refresh_from_db()
    assert job.status == {"retry pending": Job.QUEUED}.get(moment, moment)

    assert jobs.cancel(job) is True
    if moment == "submitting":
        worker.join()
    job = run_to_end(job) if Job.objects.get(pk=job.pk).status not in jobs.FINAL else job
    job.refresh_from_db()
    billed = simulator_counters(gateway)["billed_images"]
    assert charged(job) == price * billed
    if moment in ("queued", "retry pending"):
        assert job.status == Job.CANCELLED and billed == 0
        assert money(job) == {"hold": Decimal("0.40") if gateway == "apimart" else price * 2,
                              "release": Decimal("0.40") if gateway == "apimart" else price * 2}
    else:
        assert job.stopped_by_user and job.status == Job.SUCCEEDED and billed == 2
        assert job.images.count() == 2


def test_a_job_past_its_deadline_fails_and_is_not_charged(simulator, owner):
    job = jobs.create_job(owner, text_request(prompt="a slow one [sim:slow]"))
    jobs.submit(job.pk)
    Job.objects.filter(pk=job.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    jobs.expire_overdue()
    job.refresh_from_db()
    assert job.status == Job.FAILED
    assert "did not finish within" in job.error_message
    assert "charge" not in money(job)


def test_transitions_are_guarded(simulator, owner):
    job = jobs.create_job(owner, text_request())
    stale = Job.objects.get(pk=job.pk)
    assert jobs.transition(job, Job.SUBMITTING) is True
    assert jobs.transition(stale, Job.SUBMITTING) is False  # lost the race: nothing happens
    with pytest.raises(ValueError):
        jobs.transition(job, Job.SUCCEEDED)
    assert job.events.count() == 2


def test_submitting_twice_makes_one_upstream_task(simulator, owner):
    job = jobs.create_job(owner, text_request())
    jobs.submit(job.pk)
    jobs.submit(job.pk)
    assert simulator_counters("apimart")["submits"] == 1


def test_over_budget_is_refused_before_anything_is_queued(simulator, owner, settings):
    settings.STUDIO_DEFAULT_MONTHLY_BUDGET = "0.50"
    with pytest.raises(jobs.JobRejected) as caught:
        jobs.create_job(owner, text_request(n=4))
    assert "only ¥0.50 is left" in caught.value.errors["n"][0]
    assert not Job.objects.exists() and not LedgerEntry.objects.exists()


def test_invalid_requests_are_refused_with_field_messages(simulator, owner):
    with pytest.raises(jobs.JobRejected) as caught:
        jobs.create_job(owner, text_request(n=9, prompt=""))
    assert set(caught.value.errors) >= {"n", "prompt"}
    assert not Job.objects.exists()


def test_a_gateway_without_a_price_is_refused(simulator, owner):
    with pytest.raises(jobs.JobRejected) as caught:
        jobs.create_job(owner, text_request(gateway="anyfast"))
    assert "No price is set" in caught.value.errors["model"][0]


def test_recovery_flags_a_job_whose_worker_died_while_submitting(simulator, owner):
    job = jobs.create_job(owner, text_request())
    jobs.transition(job, Job.SUBMITTING, claimed_by="nowhere:1")
    Job.objects.filter(pk=job.pk).update(updated=timezone.now() - timedelta(hours=1))
    jobs.recover()
    job.refresh_from_db()
    assert job.status == Job.FAILED and job.needs_review
    assert job.review_reason == jobs.REVIEW_STALE_SUBMIT
    assert "charge" not in money(job)


def test_recovery_resumes_an_interrupted_download(simulator, owner):
    job = jobs.create_job(owner, text_request(n=2))
    jobs.submit(job.pk)
    job.refresh_from_db()
    while job.status == Job.RUNNING:
        Job.objects.filter(pk=job.pk).update(next_poll=timezone.now())
        jobs.poll_once()
        job.refresh_from_db()
        time.sleep(0.05)
    assert job.status == Job.DOWNLOADING
    # The worker "died" after storing one image.
    from studio import media

    media.store_result(job, job.results[0], media.result_bytes(job.results[0], job.gateway))
    Job.objects.filter(pk=job.pk).update(updated=timezone.now() - timedelta(hours=1))
    jobs.recover()  # enqueues the download again; run it as the worker would
    jobs.download(job.pk)
    job.refresh_from_db()
    assert job.status == Job.SUCCEEDED
    assert job.images.count() == 2
    assert money(job)["charge"] == Decimal("0.40")
    assert simulator_counters("apimart") == {"submits": 1, "billed_images": 2}


def test_retry_makes_a_new_job_with_the_same_inputs(simulator, owner):
    upload = make_upload(owner)
    request = ImageRequest(
        gateway="apimart", model="wan2.7-image", mode="edit", prompt="warmer", n=1, size_tier="1K", seed=7
    )
    first = jobs.create_job(owner, request, [upload])
    second = jobs.retry(first)
    assert second.pk != first.pk
    assert second.request == first.request
    assert [i.upload_id for i in second.inputs.all()] == [upload.pk]


def test_an_empty_seed_is_picked_sent_recorded_and_shown(simulator, owner):
    job = run_to_end(jobs.create_job(owner, text_request()))
    seed = job.request["seed"]
    assert isinstance(seed, int) and 0 <= seed <= 2147483647
    assert sim.last_request("apimart")["seed"] == seed
    assert {image.seed for image in job.images.all()} == {seed}
    again = jobs.retry(job)  # the portal's pick is not kept: the retry gets its own
    assert again.request["seed_picked"] is True and isinstance(again.request["seed"], int)


def test_a_gateway_without_seeds_gets_none(simulator, owner, priced):
    job = jobs.create_job(owner, text_request(gateway="anyfast", model="doubao-seedream-4-5-251128", n=1))
    assert job.request["seed"] is None and "seed_picked" not in job.request


def test_retrying_a_partial_job_asks_only_for_the_missing_images(simulator, owner):
    job = run_to_end(jobs.create_job(owner, text_request(n=4, model="wan2.7-image")))
    assert job.status == Job.SUCCEEDED
    Job.objects.filter(pk=job.pk).update(status=Job.PARTIAL)
    job.images.filter(index__in=[2, 3]).delete()
    job.refresh_from_db()
    again = jobs.retry(job)
    assert again.n_requested == 2
    assert money(again) == {"hold": Decimal("0.40")}


def test_more_results_than_asked_are_not_stored_or_charged(simulator, owner):
    from studio.gateways.results import Result, TaskState

    job = jobs.create_job(owner, text_request(n=1))
    jobs.transition(job, Job.SUBMITTING)
    sent = run_to_end(jobs.create_job(owner, text_request(n=2)))  # real result URLs to reuse
    urls = [entry["url"] for entry in sent.results]
    state = TaskState(
        remote_id="x", status="completed", results=[Result(index=i, url=u) for i, u in enumerate(urls)]
    )
    assert jobs.results_arrived(job, state, Job.SUBMITTING) is True
    assert jobs.results_arrived(job, state, Job.SUBMITTING) is False  # a duplicate delivery
    jobs.download(job.pk)
    job.refresh_from_db()
    assert job.status == Job.SUCCEEDED and job.images.count() == 1
    assert money(job)["charge"] == Decimal("0.20")


def test_a_retried_submit_that_then_goes_through_clears_its_retrying_note(simulator, owner):
    job = jobs.create_job(owner, text_request(prompt="a quiet harbour"))
    assert jobs.transition(job, Job.SUBMITTING)
    jobs.submit_failed(job, GatewayError(TRANSIENT, "Rate limit reached"))
    job.refresh_from_db()
    assert job.status == Job.QUEUED
    assert (job.error_class, job.error_message) == ("transient", "Retrying: Rate limit reached")

    Job.objects.filter(pk=job.pk).update(next_poll=None)
    jobs.submit(job.pk)
    job.refresh_from_db()
    assert job.status == Job.RUNNING
    assert (job.error_class, job.error_message) == ("", "")
    job = run_to_end(job)
    assert job.status == Job.SUCCEEDED
    assert (job.error_class, job.error_message) == ("", "")


def running(owner, model="wan2.7-image", submitted_ago=1.0, next_poll_in=4.0, **fields):
    now = timezone.now()
    return Job.objects.create(
        owner=owner, gateway="apimart", model=model, mode="text-to-image", prompt="a fox", n_requested=1,
        request=text_request(model=model, n=1).to_dict(), status=Job.RUNNING, remote_task_id="task",
        submitted=now - timedelta(seconds=submitted_ago), next_poll=now + timedelta(seconds=next_poll_in),
        unit_price=Decimal("0.20"), hold_amount=Decimal("0.20"), **fields,
    )


def test_a_first_estimate_moves_the_first_polls_of_the_jobs_sent_with_it(owner, settings):
    from studio.gateways.results import TaskState

    settings.STUDIO_POLL_MARGIN_SECONDS = 0.25
    asked = running(owner)
    burst = [running(owner, submitted_ago=0.5), running(owner, submitted_ago=0.2)]
    claimed = running(owner, next_poll_in=60)  # a poller holds it: left as it is
    told = running(owner, estimated_seconds=3)  # its gateway has spoken for it already
    other_model = running(owner, model="wan2.7-image-pro")
    later = running(owner, next_poll_in=30)  # only ever later, not sooner

    jobs.apply_poll(asked, TaskState("task", "running", progress=20, estimated_seconds=12), None)

    for job in burst:
        job.refresh_from_db()
        assert job.next_poll == job.submitted + timedelta(seconds=12.25)
    for job in (claimed, told, other_model, later):
        before = job.next_poll
        job.refresh_from_db()
        assert job.next_poll == before
    asked.refresh_from_db()
    assert asked.estimated_seconds == 12
    assert asked.next_poll == asked.submitted + timedelta(seconds=12.25)

    # A second answer for the same job moves nothing again.
    Job.objects.filter(pk=burst[0].pk).update(next_poll=timezone.now())
    asked.refresh_from_db()
    jobs.apply_poll(asked, TaskState("task", "running", progress=60, estimated_seconds=12), None)
    assert Job.objects.get(pk=burst[0].pk).next_poll <= timezone.now()


def test_the_watchdog_has_lost_thumbnails_made(owner):
    from tests.view_helpers import image_bytes, make_job

    job = make_job(owner, images=0, n=4)
    made = [media.store_result(job, {"index": index}, image_bytes(64, 48), thumbnail_later=True)
            for index in range(4)]
    lost, fresh, given_up, done = made
    now = timezone.now()
    ago = now - timedelta(seconds=jobs.settings.STUDIO_STALE_SECONDS + 60)
    Image.objects.filter(pk__in=[lost.pk, done.pk]).update(created=ago)
    Image.objects.filter(pk=given_up.pk).update(created=now - timedelta(days=2))
    media.make_thumbnail(done)

    stale = now - timedelta(seconds=jobs.settings.STUDIO_STALE_SECONDS)
    assert jobs.make_lost_thumbnails(now, stale) == [lost.pk]
    assert not Image.objects.get(pk=fresh.pk).thumbnail  # its thread may still be at it

    tasks.make_thumbnails([lost.pk])
    assert Image.objects.get(pk=lost.pk).thumbnail.name.endswith(".webp")
    assert jobs.make_lost_thumbnails(now, stale) == []


def downloading(owner, prompts, n=1):
    """Jobs of `n` images each, sent and polled until their results are in (`downloading`)."""
    made = [jobs.create_job(owner, text_request(n=n, prompt=prompt)) for prompt in prompts]
    for job in made:
        jobs.submit(job.pk)
    running = Job.objects.filter(pk__in=[job.pk for job in made], status=Job.RUNNING)

    def all_arrived():
        running.update(next_poll=timezone.now())  # every one asked on each pass
        jobs.poll_once()
        return not running.exists()

    wait_for(all_arrived, timeout=30, message="the results to arrive")
    made = list(Job.objects.filter(pk__in=[job.pk for job in made]).order_by("pk"))
    assert {job.status for job in made} == {Job.DOWNLOADING}
    return made


def test_single_image_jobs_are_downloaded_together_and_charged_once(simulator, owner):
    singles = downloading(owner, [f"burst {i}" for i in range(5)])
    (several,) = downloading(owner, ["a storyboard"], n=2)
    ids = [job.pk for job in singles] + [several.pk]

    tasks.download_jobs(ids)
    tasks.download_jobs(ids)  # delivered twice: nothing more is stored or charged

    for job in singles:
        job.refresh_from_db()
        assert job.status == Job.SUCCEEDED and job.images.count() == 1
        assert money(job) == {"hold": Decimal("0.20"), "release": Decimal("0.20"), "charge": Decimal("0.20")}
        assert job.events.filter(new_status=Job.SUCCEEDED).count() == 1
    several.refresh_from_db()
    assert several.status == Job.SUCCEEDED and several.images.count() == 2
    assert money(several)["charge"] == Decimal("0.40")
    assert LedgerEntry.objects.filter(kind=LedgerEntry.CHARGE).count() == 6
    assert simulator_counters("apimart") == {"submits": 6, "billed_images": 7}
    media.THUMBNAIL_QUEUE.join()  # left for later, then made
    assert Image.objects.filter(thumbnail="").count() == 0


def test_a_download_that_fails_fails_its_job_alone_and_a_live_claim_is_left_alone(simulator, owner):
    broken, fine, taken = downloading(owner, ["broken link", "fine", "taken by another worker"])
    entry = dict(broken.results[0], url=broken.results[0]["url"] + "-gone")  # a 404: the link is gone
    Job.objects.filter(pk=broken.pk).update(results=[entry])
    import os

    from studio import workers

    alive = f"{workers.worker_host()}:{os.getppid()}"  # a live process of this host, not this one
    Job.objects.filter(pk=taken.pk).update(claimed_by=alive)

    jobs.download_all([broken.pk, fine.pk, taken.pk])

    broken.refresh_from_db()
    assert broken.status == Job.FAILED and broken.error_class == "lost"
    assert broken.error_message == f"Image 1 {media.LINK_EXPIRED}"
    assert money(broken) == {"hold": Decimal("0.20"), "release": Decimal("0.20")}
    assert Job.objects.get(pk=fine.pk).status == Job.SUCCEEDED
    taken.refresh_from_db()
    assert taken.status == Job.DOWNLOADING and taken.claimed_by == alive and not taken.images.exists()


def test_downloads_go_to_tasks_in_batches_spread_over_the_workers(owner, settings, monkeypatch):
    from types import SimpleNamespace

    sent = []
    monkeypatch.setattr(jobs, "async_task", lambda func, *args, **options: sent.append((func, *args)))
    settings.Q_CLUSTER = dict(settings.Q_CLUSTER, workers=4)
    settings.STUDIO_DOWNLOAD_JOBS_PER_TASK = 8

    def batches(*sizes):
        sent.clear()
        done = [SimpleNamespace(pk=pk, n_requested=n) for pk, n in enumerate(sizes, start=1)]
        jobs.enqueue_downloads(done)
        assert {func for func, _ in sent} <= {"studio.tasks.download_jobs"}
        return [batch for _, batch in sent]

    assert batches() == []
    assert batches(1) == [[1]]
    assert batches(1, 1, 1) == [[1], [2], [3]]  # as many workers as there are jobs
    assert [len(batch) for batch in batches(*[1] * 20)] == [5, 5, 5, 5]
    assert [len(batch) for batch in batches(*[1] * 100)] == [8] * 12 + [4]
    assert batches(1, 4, 1, 2) == [[1], [3], [2], [4]]  # a job of several images has a task of its own


def test_due_polls_are_claimed_only_as_far_as_each_gateway_has_room(owner):
    due = [running(owner, next_poll_in=-5 + i) for i in range(4)]  # the most overdue first
    elsewhere = running(owner, next_poll_in=-5)
    Job.objects.filter(pk=elsewhere.pk).update(gateway="gccai")  # a gateway with no room left
    not_yet = running(owner, next_poll_in=3)
    now = timezone.now()

    first = jobs.claim_due_polls(now, {"apimart": 3, "gccai": 0})
    assert [job.pk for job in first] == [job.pk for job in due[:3]]
    assert {job.next_poll for job in first} == {now + timedelta(seconds=60)}
    left = Job.objects.get(pk=due[3].pk)
    assert left.next_poll == due[3].next_poll  # not claimed, so nothing to give back
    assert jobs.claim_due_polls(now, {"apimart": 0}) == []
    assert [job.pk for job in jobs.claim_due_polls(now, {"apimart": 5})] == [due[3].pk]
    assert jobs.claim_due_polls(now, {"apimart": 5}) == []  # claimed once, by one poller
    assert Job.objects.get(pk=not_yet.pk).next_poll == not_yet.next_poll
    assert Job.objects.get(pk=elsewhere.pk).next_poll == elsewhere.next_poll
