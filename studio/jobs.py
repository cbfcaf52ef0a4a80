"""The job state machine and pipeline.

    queued → submitting → running → downloading → succeeded | partial
    any active status → failed; queued / submitting / running → cancelled

Every status change goes through transition(): an UPDATE filtered on the old status, so two
workers (or a worker and a user's cancel) cannot both act; the one that loses logs and stops.
Money moves in the same transaction as the final status (ledger.settle / ledger.release).
No transaction or lock is held across a gateway HTTP call.
"""

import logging
import math
import random
import secrets
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_q.tasks import async_task

from studio import ledger, logs, media, workers
from studio.gateways import adapter_for, catalog
from studio.gateways.errors import ACCOUNT, LOST, REJECTED, TRANSIENT, GatewayError
from studio.gateways.request import ImageRequest, validate
from studio.models import Image, Job, JobEvent, JobInput, Share

log = logging.getLogger(__name__)

QUEUED, SUBMITTING, RUNNING, DOWNLOADING = Job.QUEUED, Job.SUBMITTING, Job.RUNNING, Job.DOWNLOADING
SUCCEEDED, PARTIAL, FAILED, CANCELLED = Job.SUCCEEDED, Job.PARTIAL, Job.FAILED, Job.CANCELLED

TRANSITIONS = {
    # submitting → queued is a retry after a transient error that never reached the gateway.
    QUEUED: {SUBMITTING, CANCELLED, FAILED},
    SUBMITTING: {QUEUED, RUNNING, DOWNLOADING, FAILED, CANCELLED},
    RUNNING: {DOWNLOADING, FAILED, CANCELLED},
    DOWNLOADING: {SUCCEEDED, PARTIAL, FAILED},
    SUCCEEDED: set(),
    PARTIAL: set(),
    FAILED: set(),
    CANCELLED: set(),
}
FINAL = {SUCCEEDED, PARTIAL, FAILED, CANCELLED}

MAY_HAVE_RUN = (
    "The gateway did not answer. It may have made these images and billed up to {amount}; "
    "an admin has been asked to check."
)
REVIEW_MAY_HAVE_RUN = "submit may have reached the gateway"
REVIEW_STALE_SUBMIT = "worker stopped while submitting"
REVIEW_UNEXPECTED = "unexpected error while submitting"


class JobRejected(Exception):
    """The request cannot be made: field -> messages, shown next to the form's fields."""

    def __init__(self, errors):
        super().__init__("; ".join(m for messages in errors.values() for m in messages))
        self.errors = errors


# --- the one way to change a job's status ------------------------------------------------


def transition(job, new_status, note="", **fields):
    """Move `job` to `new_status` if it is still in the status we last saw.

    Returns False (and changes nothing) when someone else moved it first.
    """
    old_status = job.status
    # Staying put records a flag on a job still under way (the person stopped waiting).
    stays = new_status == old_status and old_status not in FINAL
    if new_status not in TRANSITIONS[old_status] and not stays:
        raise ValueError(f"job {job.pk}: {old_status} → {new_status} is not an allowed move")
    now = timezone.now()
    fields.setdefault("updated", now)
    if new_status in FINAL:
        fields.setdefault("finished", now)
        fields.setdefault("next_poll", None)
    with transaction.atomic():
        changed = Job.objects.filter(pk=job.pk, status=old_status).update(status=new_status, **fields)
        if not changed:
            log.info("job %s: %s → %s lost the race; someone else moved it", job.pk, old_status, new_status)
            return False
        JobEvent.objects.create(job=job, old_status=old_status, new_status=new_status, note=note[:2000])
    job.refresh_from_db()
    logs.event("job.transition", job=job.pk, gateway=job.gateway, status=new_status, old_status=old_status,
               seconds=(now - job.created).total_seconds(), error_class=job.error_class)
    return True


def finish(job, new_status, note="", **fields):
    """Move to a final status and settle the money in the same transaction."""
    with transaction.atomic():
        if not transition(job, new_status, note=note, **fields):
            return False
        ledger.settle(job, job.images.count())
    return True


def fail(job, error_class, message):
    return finish(job, FAILED, note=message, error_class=error_class, error_message=message)


def fail_unconfirmed(job, review_reason):
    """The submit may have reached the gateway, which would then bill it: the job fails, and its
    hold stays on record as unconfirmed (counted against the budget) until an admin resolves it
    (resolve_unconfirmed) from the gateway's own records. Never resubmitted on our own."""
    message = MAY_HAVE_RUN.format(amount=ledger.yuan(job.hold_amount))
    return transition(
        job, FAILED, note=review_reason, error_class=TRANSIENT, error_message=message,
        needs_review=True, review_reason=review_reason,
    )


def resolve_unconfirmed(job, images, staff, note):
    """An admin's answer for an unanswered submit: the gateway billed `images` images (0: it
    billed nothing). Settles the hold with both rows naming the staff member and the note."""
    note = (note or "").strip()
    if not note:
        raise ValueError("Say how you checked (the gateway's billing page, a support answer…).")
    if isinstance(images, bool) or not isinstance(images, int) or not 0 <= images <= job.n_requested:
        raise ValueError(f"The gateway can have billed 0 to {job.n_requested} images for this job.")
    if not job.needs_review or job.status != FAILED:
        raise ValueError("This job has no unconfirmed charge to resolve.")
    with transaction.atomic():
        if not ledger.settle(job, images, recorded_by=staff, note=note):
            raise ValueError("This job's charge was already resolved.")
        outcome = f"billed {images} image(s)" if images else "not billed"
        Job.objects.filter(pk=job.pk).update(needs_review=False, review_reason=f"resolved: {outcome}"[:200])
        JobEvent.objects.create(
            job=job, old_status=job.status, new_status=job.status,
            note=f"resolved by {staff.get_username()}: {outcome}; {note}"[:2000],
        )
    job.refresh_from_db()
    return True


# --- creating ------------------------------------------------------------------------------


def create_job(user, image_request, uploads=(), boxes=None, upload_problems=()):
    """Validate everything at once, then write the job, its inputs and its hold in one
    transaction; the submit task is queued only once that transaction has committed.

    `upload_problems` are what went wrong with files sent along (unreadable, too big…): they
    are reported with every other problem in one JobRejected, field -> messages.
    """
    uploads = list(uploads)
    errors = validate(image_request, [media.input_meta(upload) for upload in uploads])
    if upload_problems:
        errors.setdefault("images", [])[:0] = list(upload_problems)
    found = catalog.offer(image_request.gateway, image_request.model)
    cost = ledger.quote(user, image_request.gateway, image_request.model, image_request.n)
    if found and cost.price is None:
        errors.setdefault("model", []).append(
            f"No price is set for {found.display_name} on {image_request.gateway}; ask an admin to set one."
        )
    if errors:
        raise JobRejected(errors)

    recorded = image_request.to_dict()
    limits = found.limits(image_request.mode)
    if image_request.seed is None and catalog.SEED in limits.options:
        # Left empty: the portal picks the seed and sends it, so every image's seed is known
        # and "Use this seed" can make it again. Remix picks a new one (seed_picked).
        recorded["seed"] = secrets.randbelow(catalog.SEED_MAX + 1)
        recorded["seed_picked"] = True
    boxes = boxes or image_request.boxes or []
    now = timezone.now()
    try:
        with transaction.atomic():
            job = Job.objects.create(
                owner=user,
                gateway=image_request.gateway,
                model=image_request.model,
                mode=image_request.mode,
                prompt=image_request.prompt,
                request=recorded,
                n_requested=image_request.n,
                unit_price=cost.price,
                hold_amount=cost.total,
                deadline=now + timedelta(seconds=settings.STUDIO_JOB_DEADLINE),
            )
            for position, upload in enumerate(uploads):
                JobInput.objects.create(
                    job=job,
                    upload=upload,
                    position=position,
                    boxes=boxes[position] if position < len(boxes) else [],
                )
            JobEvent.objects.create(job=job, new_status=QUEUED, note="created")
            ledger.hold(job)
            # The lane takes queued jobs itself (within STUDIO_LANE_PICKUP_SECONDS); this only
            # starts one when none is running.
            transaction.on_commit(ensure_poller)
    except ledger.BudgetExceeded as exc:
        raise JobRejected({"n": [exc.message]}) from None
    return job


def retry(job):
    """A new job with the same inputs; the old one stays as it was."""
    image_request = ImageRequest.from_dict(job.request)
    if job.request.get("seed_picked"):
        image_request.seed = None  # the portal's pick, not the person's: pick afresh
    if job.status == PARTIAL:
        # Only what did not arrive: the images that did are paid for and kept.
        image_request.n = max(1, job.n_requested - job.images.count())
    inputs = list(job.inputs.select_related("upload"))
    return create_job(job.owner, image_request, [i.upload for i in inputs], [i.boxes for i in inputs])


# --- submitting ----------------------------------------------------------------------------


def submit(job_id):
    """Send a queued job to its gateway and wait for the answer. Safe to run twice: only one run
    wins queued → submitting. The lane does the same in three steps, the HTTP call on a thread."""
    sending = start_submit(job_id)
    if sending is None:
        return
    job, adapter, image_request, inputs = sending
    state, error = send_submit(job, adapter, image_request, inputs)
    if finish_submit(job, adapter, state, error):
        download(job.pk)


def start_submit(job_id):
    """Everything before the HTTP call: (job, adapter, request, inputs), with `submitting`
    committed; or None when there is nothing to send (taken, not due, failed here)."""
    sending = prepare_submit(job_id)
    if sending is None or not mark_submitting(sending[0]):
        return None
    return sending


def prepare_submit(job_id):
    """What the call needs, read: (job, adapter, request, inputs); or None when there is
    nothing to send (taken, not due, failed here). mark_submitting() comes next."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.status != QUEUED:
        return None
    now = timezone.now()
    if job.next_poll and job.next_poll > now:
        return None  # a retry that is not due yet; the lane brings it back
    if job.deadline and job.deadline < now:
        fail(job, TRANSIENT, "The gateway could not take the job before its deadline.")
        return None
    try:
        image_request = ImageRequest.from_dict(job.request)
        inputs = media.input_images(job)
    except OSError:
        log.exception("job %s: input images could not be read", job.pk)
        fail(job, REJECTED, "An input image of this job could not be read from storage. Upload it again.")
        return None
    return job, adapter_for(job.gateway), image_request, inputs


def mark_submitting(job):
    """queued → submitting, which must be committed before the HTTP call: from then on a crash
    leaves a visible `submitting` job, never resent. False when someone else took it first."""
    # A retry's "Retrying: …" is cleared as it goes out: it is no longer what is happening.
    return transition(
        job, SUBMITTING, attempts=F("attempts") + 1, submitted=timezone.now(), claimed_by=workers.worker_id(),
        error_class="", error_message="",
    )


def send_submit(job, adapter, image_request, inputs):
    """The HTTP call alone (no database): (TaskState, None) or (None, GatewayError)."""
    sent = time.monotonic()
    try:
        state = adapter.submit(image_request, inputs)
    except GatewayError as error:
        gateway_call("gateway.submit", job, sent, error=error)
        return None, error
    except Exception:
        # A bug of ours, not the gateway's: it may have sent the request, so treat it as unknown.
        log.exception("job %s: unexpected error while submitting", job.pk)
        gateway_call("gateway.submit", job, sent, error=GatewayError(TRANSIENT, "unexpected error"))
        return None, None
    gateway_call("gateway.submit", job, sent, state=state)
    return state, None


def finish_submit(job, adapter, state, error, claimed_by=None, start_poller=True):
    """Record the gateway's answer to a submit. True when the results are in and the job waits
    for its download (claimed by this worker, or by `claimed_by`: "" hands it to a task). A job
    left running gets the lane started, unless the caller is the lane (`start_poller`)."""
    if state is None and error is None:
        fail_unconfirmed(job, REVIEW_UNEXPECTED)
        return False
    if error is not None:
        submit_failed(job, error)
        return False
    if state.status == "failed":
        fail(
            job,
            REJECTED,
            plain_message(state.error) if state.error else "The gateway could not make the images.",
        )
        return False
    if adapter.is_async and state.status != "completed":
        now = timezone.now()
        expected = expected_result(job, state, now)
        transition(
            job,
            RUNNING,
            note=f"task {state.remote_id}",
            remote_task_id=state.remote_id or "",
            progress=state.progress,
            estimated_seconds=state.estimated_seconds,
            expected_result=expected,
            next_poll=next_poll_at(expected, now),
        )
        if start_poller:
            ensure_poller()
        return False
    return results_arrived(job, state, SUBMITTING, claimed_by=claimed_by)


def gateway_call(name, job, started, state=None, error=None):
    """The one log line of a gateway call: what it answered, or its error's class."""
    error = error or (state.error if state is not None else None)
    logs.event(name, job=job.pk, gateway=job.gateway, status=state.status if state is not None else "error",
               seconds=time.monotonic() - started, error_class=error.error_class if error else "")


def submit_failed(job, error):
    message = plain_message(error)
    if error.error_class == TRANSIENT and error.may_have_reached:
        # Never resubmit on our own: the first request may have created a paid task upstream.
        fail_unconfirmed(job, REVIEW_MAY_HAVE_RUN)
    elif error.error_class == TRANSIENT and job.attempts < settings.STUDIO_SUBMIT_ATTEMPTS:
        delay = backoff(job.attempts)
        if transition(
            job,
            QUEUED,
            note=f"retry in {delay:.1f}s: {message}",
            error_class=TRANSIENT,
            error_message=f"Retrying: {message}",
            next_poll=timezone.now() + timedelta(seconds=delay),
        ):
            ensure_poller()  # the lane sends it again once next_poll is due
    else:
        fail(job, error.error_class, message)


def backoff(attempts):
    """Exponential backoff with full jitter, in seconds."""
    base = settings.STUDIO_RETRY_BASE_SECONDS
    cap = settings.STUDIO_RETRY_MAX_SECONDS
    return random.uniform(base / 2, min(cap, base * 2 ** max(0, attempts - 1)))


def plain_message(error):
    if error is None:
        return "The gateway reported an error without saying why."
    if error.error_class == ACCOUNT:
        return (
            f"The gateway refused the account ({error.message}). The API key or the balance needs an "
            "admin's attention."
        )
    if error.error_class == LOST:
        return f"The gateway no longer knows this task ({error.message})."
    return error.message


# --- results -----------------------------------------------------------------------------


def results_arrived(job, state, from_status, claimed_by=None):
    """Record what the gateway returned (so a crash can resume the download) and move on.

    The download is claimed by this worker (`claimed_by` None: a sync submit downloads at once),
    or handed over unclaimed ("") to whichever worker takes the download task."""
    if not Job.objects.filter(pk=job.pk, status=from_status).exists():
        return False  # a duplicate delivery: the first one already moved the job on
    # Never more than asked for: the hold covers n images, and so does the charge.
    extra = len(state.results) - job.n_requested
    if extra > 0:
        log.warning("job %s: the gateway returned %s more image(s) than asked; ignored", job.pk, extra)
    results = []
    for result in state.results[: job.n_requested]:
        entry = {"index": result.index, "revised_prompt": result.revised_prompt or ""}
        if result.b64_json:
            entry["incoming"] = media.store_incoming(job, result.index, result.b64_json)
        else:
            entry["url"] = result.url
        results.append(entry)
    note = f"{len(results)} result(s)"
    if state.partial_failures:
        note += "; failed: " + "; ".join(state.partial_failures)
    return transition(
        job,
        DOWNLOADING,
        note=note,
        results=results,
        progress=100,
        estimated_seconds=state.estimated_seconds or job.estimated_seconds,
        usage=state.usage,
        first_result=timezone.now(),
        claimed_by=workers.worker_id() if claimed_by is None else claimed_by,
        error_message="; ".join(state.partial_failures)[:2000],
    )


def download(job_id):
    """Fetch every result not yet stored, then finish. Safe to run twice."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.status != DOWNLOADING:
        return
    # One live worker downloads a job at a time: the claim is taken by compare-and-set, and only
    # when it is free (handed over, ""), ours, or its worker's heartbeat says it is dead.
    me = workers.worker_id()
    if not claim_is_free(job, me) or not take_claim(job, me):
        return
    problems = media.download_results(job)
    finish_download(job, problems)


def claim_is_free(job, me):
    if job.claimed_by in ("", me) or workers.worker_is_dead(job.claimed_by):
        return True
    log.info("job %s: %s is downloading it already", job.pk, job.claimed_by)
    return False


def take_claim(job, me):
    """The download's claim, by compare-and-set on the claim we read: False when another worker
    took it first."""
    if Job.objects.filter(pk=job.pk, status=DOWNLOADING, claimed_by=job.claimed_by).update(
        claimed_by=me, updated=timezone.now()
    ):
        return True
    log.info("job %s: another worker claimed its download first", job.pk)
    return False


def finish_download(job, problems):
    """Final status and charge for the images stored (a job of several may keep some)."""
    thumbnails = dict(job.images.values_list("pk", "thumbnail"))  # this run's images and earlier runs'
    stored = len(thumbnails)
    if stored == 0:
        fail(job, LOST, problems[0] if problems else "The gateway returned no images.")
        return
    if stored < job.n_requested or problems:
        reason = (
            "; ".join(problems)
            or job.error_message
            or (f"The gateway returned {stored} of the {job.n_requested} images asked for.")
        )
        finish(job, PARTIAL, note=reason, error_message=reason)
    else:
        finish(job, SUCCEEDED, note=f"{stored} image(s) stored")
    # The job is final (and charged): now the thumbnails left for later, off its critical path.
    later = [pk for pk, thumbnail in thumbnails.items() if not thumbnail]
    if later:
        transaction.on_commit(lambda: media.thumbnails_later(later))  # the thread reads committed rows


def download_all(job_ids):
    """The downloads of one task. A job of several images goes as download() takes it, each image
    stored as it arrives. Single-image jobs are fetched side by side on threads (HTTP and the
    checksums only), and whatever has arrived is recorded in one transaction: claim, image, final
    status and charge. In a burst of results that is one wait for SQLite's write lock for several
    jobs, not three for each; a job whose result comes late is recorded when it comes."""
    me = workers.worker_id()
    found = Job.objects.filter(pk__in=job_ids, status=DOWNLOADING)
    begun = set(Image.objects.filter(job_id__in=job_ids).values_list("job_id", flat=True))
    singles = []
    for job in found:
        if job.n_requested > 1 or job.pk in begun:
            download(job.pk)  # images stored one by one (or an earlier run's first ones kept)
        elif claim_is_free(job, me):
            singles.append(job)
    if not singles:
        return
    arrived = [(job, None, "The gateway returned no images.") for job in singles if not job.results]
    with ThreadPoolExecutor(min(len(singles), settings.STUDIO_DOWNLOAD_JOBS_PER_TASK)) as pool:
        fetching = {pool.submit(media.fetch_result, job.results[0], job.gateway): job
                    for job in singles if job.results}
        while fetching or arrived:
            if not arrived:
                wait(fetching, return_when=FIRST_COMPLETED)
            for future in [future for future in fetching if future.done()]:
                arrived.append(fetched(fetching.pop(future), future))
            record_downloads([item for item in arrived if item is not None], me)
            arrived = []


def fetched(job, future):
    """(job, (data, facts, thumbnail) or None, problem or None) of a finished fetch; None for a
    bug of ours, which leaves the job to recovery (unclaimed, it is handed out again)."""
    entry = job.results[0]
    try:
        return job, future.result(), None
    except (ValueError, media.NotAnImage, OSError) as exc:
        return job, None, media.result_problem(job, entry, exc)
    except Exception:
        log.exception("job %s: unexpected error while downloading", job.pk)
        return None


def record_downloads(arrived, me):
    """Each arrived result stored and its job finished, all in one transaction, each job in a
    savepoint of its own (one job's trouble is not every job's)."""
    if not arrived:
        return
    done = []
    with transaction.atomic():
        for job, result, problem in arrived:
            try:
                with transaction.atomic():
                    if record_download(job, result, problem, me):
                        done.append(job)
            except Exception:
                log.exception("job %s: recording its download failed", job.pk)
    for job in done:
        if "incoming" in job.results[0]:
            default_storage.delete(job.results[0]["incoming"])


def record_download(job, result, problem, me):
    """Claim (as download() does), store and finish one single-image job."""
    if not take_claim(job, me):
        return False
    if result is not None:
        media.store_read_result(job, job.results[0], *result)
    finish_download(job, [problem] if problem else [])
    return True


# --- polling -------------------------------------------------------------------------------

def expected_result(job, state, now):
    """When the gateway's result should be there, from what it said: its estimate of the whole
    task, else its progress so far, else how long this gateway × model took lately."""
    started = job.submitted or now
    if state.estimated_seconds:
        expected = started + timedelta(seconds=state.estimated_seconds)
        if expected > now or not state.progress:
            return expected
    if state.progress and 0 < state.progress < 100:
        elapsed = (now - started).total_seconds()
        return started + timedelta(seconds=elapsed * 100 / state.progress)
    return started + timedelta(seconds=typical_seconds(job.gateway, job.model))


def next_poll_at(expected, now):
    """Ask the moment the result is expected (a little after, so it is there), then every
    STUDIO_POLL_AFTER_SECONDS; never sooner than STUDIO_POLL_MIN_SECONDS from now, never
    later than STUDIO_POLL_MAX_SECONDS (an estimate can be wrong)."""
    due = expected + timedelta(seconds=settings.STUDIO_POLL_MARGIN_SECONDS)
    if due <= now:
        due = now + timedelta(seconds=settings.STUDIO_POLL_AFTER_SECONDS)
    low = now + timedelta(seconds=settings.STUDIO_POLL_MIN_SECONDS)
    high = now + timedelta(seconds=settings.STUDIO_POLL_MAX_SECONDS)
    return min(high, max(low, due))


TYPICAL = {}  # (gateway, model) -> (seconds, when learned), per process
TYPICAL_JOBS = 20  # the latest jobs it is learned from
TYPICAL_FOR = 10  # seconds before it is learned again


def typical_seconds(gateway, model):
    """How long a task takes on this gateway × model, for a job its gateway has said nothing
    about yet: the median of the latest jobs' own estimates (what the gateway said while they
    ran), else of how long they took to come back; STUDIO_POLL_DEFAULT_SECONDS with no history."""
    now = time.monotonic()
    known = TYPICAL.get((gateway, model))
    if known and now - known[1] < TYPICAL_FOR:
        return known[0]
    latest = Job.objects.filter(gateway=gateway, model=model).order_by("-id")
    # What the gateway said of jobs still running counts too: the first poll teaches the rest.
    said = latest.filter(estimated_seconds__isnull=False).values_list("estimated_seconds", flat=True)
    came = latest.filter(submitted__isnull=False, first_result__isnull=False)
    said = sorted(said[:TYPICAL_JOBS])
    took = sorted((first - sent).total_seconds()
                  for sent, first in came.values_list("submitted", "first_result")[:TYPICAL_JOBS])
    if not (said or took):
        return settings.STUDIO_POLL_DEFAULT_SECONDS  # nothing learned: not remembered either
    seconds = said[len(said) // 2] if said else took[len(took) // 2]
    TYPICAL[(gateway, model)] = (seconds, now)
    return seconds


def lane_has_work():
    """Whether any job waits to be sent or polled."""
    return Job.objects.filter(status__in=[RUNNING, QUEUED]).exists()


def ensure_poller():
    """Start the lane unless a live one is already running."""
    if not workers.poller_is_alive():
        async_task("studio.tasks.lane", task_name="lane", timeout=lane_task_timeout())


def lane_task_timeout():
    """The lane's task runs for STUDIO_LANE_SECONDS, then lets its last calls end: a sync
    generation can take the whole read timeout. (Below the ORM broker's redelivery, `retry`.)"""
    return int(settings.STUDIO_LANE_SECONDS + settings.STUDIO_SYNC_READ_TIMEOUT + 30)


def claim_due_polls(now, rooms):
    """Running jobs whose poll is due, at most rooms[gateway] of each gateway (the calls it has
    room for, so none is claimed only to be given back), claimed by pushing next_poll a minute
    ahead in one UPDATE, so two pollers never ask twice; a crashed poller's claims fall due again."""
    taking = []
    for gateway, room in rooms.items():
        if room > 0:
            due = Job.objects.filter(status=RUNNING, gateway=gateway, next_poll__lte=now)
            taking += due.order_by("next_poll").values_list("pk", flat=True)[:room]
    if not taking:
        return []
    lease = now + timedelta(seconds=60)
    with transaction.atomic():
        # Only the rows still due: one another poller claimed meanwhile has its lease already.
        Job.objects.filter(pk__in=taking, status=RUNNING, next_poll__lte=now).update(next_poll=lease)
        return list(Job.objects.filter(pk__in=taking, status=RUNNING, next_poll=lease).order_by("pk"))


def ask_gateway(job):
    """One status request (no database): (job, TaskState or None, GatewayError or None)."""
    asked = time.monotonic()
    try:
        state = adapter_for(job.gateway).poll(job.remote_task_id)
    except GatewayError as error:
        gateway_call("gateway.poll", job, asked, error=error)
        return job, None, error
    except Exception as exc:
        # Unknown trouble with one job must not stop the others: ask again later.
        log.exception("job %s: unexpected error while polling", job.pk)
        return job, None, GatewayError(TRANSIENT, f"unexpected error: {type(exc).__name__}")
    gateway_call("gateway.poll", job, asked, state=state)
    return job, state, None


def poll_once(limit=200):
    """Poll every due running job at once and apply the answers; downloads go to tasks. The
    lane does this continuously; this one-shot form serves the tests and the bench."""
    claimed = claim_due_polls(timezone.now(), dict.fromkeys(catalog.GATEWAYS, limit))
    if not claimed:
        return 0
    with ThreadPoolExecutor(max_workers=min(32, len(claimed))) as pool:
        answers = list(pool.map(ask_gateway, claimed))
    enqueue_downloads([job for job, state, error in answers if apply_poll(job, state, error)])
    return len(claimed)


def enqueue_downloads(jobs_done):
    """Hand these jobs' downloads to tasks (download_all): a job of several images to a task of
    its own, single-image jobs up to STUDIO_DOWNLOAD_JOBS_PER_TASK a task, spread over the
    cluster's workers. On the ORM broker the tasks are written in the caller's transaction, if
    any (they commit with the jobs' `downloading`); a Redis worker could take one before that
    commit, so there they are sent once the transaction has committed. A success is not saved
    as a task result: the job is its own record (and django-q2 prunes saved results with a scan
    of all of them)."""
    if not jobs_done:
        return  # most lane passes: nothing to hand over, not even an on_commit hook
    singles = [job.pk for job in jobs_done if job.n_requested == 1]
    spread = math.ceil(len(singles) / settings.Q_CLUSTER["workers"])
    size = max(1, min(settings.STUDIO_DOWNLOAD_JOBS_PER_TASK, spread))
    batches = [singles[at:at + size] for at in range(0, len(singles), size)]
    batches += [[job.pk] for job in jobs_done if job.n_requested > 1]

    def send():
        for batch in batches:
            async_task("studio.tasks.download_jobs", batch, task_name=f"download-jobs-{batch[0]}", save=False)

    if settings.REDIS_URL:
        transaction.on_commit(send)
    else:
        send()


def apply_poll(job, state, error):
    """Record a status answer. True when the task's results arrived: the caller hands the job to
    a download task (enqueue_downloads), with the others of its pass."""
    now = timezone.now()
    if error is not None:
        if error.error_class == TRANSIENT:
            # A 429 or a blip while polling leaves the task as it was: ask again later.
            Job.objects.filter(pk=job.pk, status=RUNNING).update(
                next_poll=now + timedelta(seconds=backoff(2)), updated=now
            )
        else:
            fail(job, error.error_class, plain_message(error))
        return
    if state.status in ("pending", "running"):
        if state.estimated_seconds and not job.estimated_seconds:
            first_polls_after(job, state.estimated_seconds)
        expected = expected_result(job, state, now)
        Job.objects.filter(pk=job.pk, status=RUNNING).update(
            progress=state.progress if state.progress is not None else job.progress,
            estimated_seconds=state.estimated_seconds or job.estimated_seconds,
            expected_result=expected,
            next_poll=next_poll_at(expected, now),
            updated=now,
        )
    elif state.status == "completed":
        # Handed over unclaimed: whichever worker takes the download task claims it.
        return results_arrived(job, state, RUNNING, claimed_by="")
    elif state.status == "cancelled":
        finish(
            job, CANCELLED, note="cancelled by the gateway", error_message="The gateway cancelled the task."
        )
    else:
        fail(
            job,
            REJECTED,
            plain_message(state.error) if state.error else "The gateway could not make the images.",
        )


def first_polls_after(job, seconds):
    """The gateway's first estimate for a job holds for the jobs of its gateway × model that the
    gateway has said nothing about yet: their polls, made from STUDIO_POLL_DEFAULT_SECONDS or
    an older history, move later, to when their result is expected. A burst of jobs is then
    asked once each, when done, not early and again. (Only later: a claimed poll's next_poll is
    a minute ahead and stays as its poller left it.)"""
    due = F("submitted") + timedelta(seconds=seconds + settings.STUDIO_POLL_MARGIN_SECONDS)
    Job.objects.filter(
        gateway=job.gateway, model=job.model, status=RUNNING, estimated_seconds__isnull=True,
        submitted__isnull=False, next_poll__lt=due,
    ).exclude(pk=job.pk).update(next_poll=due)


def expire_overdue():
    """Jobs past their deadline fail and their holds are released."""
    now = timezone.now()
    minutes = settings.STUDIO_JOB_DEADLINE // 60
    for job in Job.objects.filter(status__in=[QUEUED, RUNNING], deadline__lt=now):
        fail(
            job,
            LOST,
            f"The job did not finish within {minutes} minutes, so it was stopped. Nothing was charged.",
        )
    # A download that never ends (its worker gone, a link that trickles) still ends the job:
    # the images already stored are charged, as download() would; none stored, nothing is.
    for job in Job.objects.filter(status=DOWNLOADING, deadline__lt=now):
        stored = job.images.count()
        if stored == 0:
            fail(job, LOST, f"The job did not finish within {minutes} minutes: its images could not be "
                            "downloaded. Nothing was charged.")
            continue
        reason = (f"The job did not finish within {minutes} minutes: {stored} of the {job.n_requested} "
                  "images were downloaded; those are kept and charged.")
        finish(job, PARTIAL, note=reason, error_message=reason)


# --- cancel --------------------------------------------------------------------------------


def cancel(job):
    """What the person's Cancel can do. Before the job is sent (queued, or a retry waiting): a
    real cancel, the hold released. Once sent, no gateway can be told to stop, and it will bill:
    the person stops waiting, and the job is still followed so its images are stored and charged.
    Returns False when there is nothing left to do (finished, or already stopped)."""
    for _ in range(2):  # once more if a worker sent it while we looked
        job.refresh_from_db()
        if job.status == QUEUED:
            if finish(job, CANCELLED, note="cancelled by the user",
                      error_message="Cancelled before it was sent. Nothing was charged."):
                return True
            continue
        if job.status in (SUBMITTING, RUNNING, DOWNLOADING) and not job.stopped_by_user:
            if transition(job, job.status, note="stopped by the user; the gateway still runs it",
                          stopped_by_user=True):
                return True
            continue
        return False
    return False


# --- hiding --------------------------------------------------------------------------------


def hide(job, delete_files=False):
    """Take a finished job out of its owner's history; with delete_files its images go too.

    Ledger rows stay whatever happens: the money was spent. Its share links stop working:
    the only place to revoke them is the job's card, which its owner no longer sees.
    """
    if job.status not in FINAL:
        return False
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(hidden=True)
        Share.objects.filter(job=job).update(revoked=True)
        if delete_files:
            media.delete_images(job.images.all())
    return True


# --- recovery ------------------------------------------------------------------------------


def recover():
    """Resume what a killed worker left behind. Safe to run any time, any number of times."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.STUDIO_STALE_SECONDS)
    for job in Job.objects.filter(status=SUBMITTING):
        if workers.worker_is_dead(job.claimed_by) or job.updated < stale:
            # We cannot know whether the request reached the gateway: never resubmit blindly.
            fail_unconfirmed(job, REVIEW_STALE_SUBMIT)
    quiet = workers.fresh_since()
    resuming = []
    for job in Job.objects.filter(status=DOWNLOADING):
        # Unclaimed for a heartbeat timeout: its download task was lost with a cluster (Redis
        # hands a task to one cluster) or waits in a long queue; a second task is harmless.
        lost = not job.claimed_by and job.updated < quiet
        if lost or workers.worker_is_dead(job.claimed_by) or job.updated < stale:
            Job.objects.filter(pk=job.pk, status=DOWNLOADING).update(claimed_by="", updated=now)
            resuming.append(job)
    enqueue_downloads(resuming)
    # Running jobs only need the poller; make sure each has a next poll time.
    Job.objects.filter(status=RUNNING, next_poll__isnull=True).update(next_poll=now)
    # A poller killed mid-poll_once leaves the jobs it claimed 60 s ahead; with no live poller
    # they are due now (an extra status poll is harmless).
    if not workers.poller_is_alive():
        Job.objects.filter(status=RUNNING, next_poll__gt=now).update(next_poll=now)
    # Queued jobs need nothing but a lane: it takes every due one itself.
    expire_overdue()
    make_lost_thumbnails(now, stale)
    if lane_has_work():
        ensure_poller()
    workers.forget_silent()
    return len(resuming)


# Thumbnails are asked for again for a day; an original that can't be decoded is not tried forever.
THUMBNAILS_RETRIED_FOR = timedelta(days=1)
THUMBNAILS_AT_ONCE = 200


def make_lost_thumbnails(now, stale):
    """Images still without a thumbnail after the stale timeout: the process that was to make it
    (media.thumbnails_later, at the lowest priority) was recycled or killed first."""
    lost = Image.objects.filter(thumbnail="", created__lt=stale, created__gt=now - THUMBNAILS_RETRIED_FOR)
    ids = list(lost.order_by("created").values_list("pk", flat=True)[:THUMBNAILS_AT_ONCE])
    if ids:
        async_task("studio.tasks.make_thumbnails", ids, task_name="make-thumbnails", save=False)
    return ids


RECOVERY_LEASE = "recovery"


def orphans_waiting():
    """Whether a dead worker left work behind: reads only, cheap enough for every heartbeat."""
    quiet = workers.fresh_since()
    claims = set(
        Job.objects.filter(status__in=[SUBMITTING, DOWNLOADING]).exclude(claimed_by="")
        .values_list("claimed_by", flat=True)
    )
    if any(workers.worker_is_dead(claim) for claim in claims):
        return True
    if Job.objects.filter(status=DOWNLOADING, claimed_by="", updated__lt=quiet).exists():
        return True
    running = Job.objects.filter(status=RUNNING)
    # Polls overdue by a heartbeat timeout: no lane is running at all.
    return running.filter(next_poll__lt=quiet).exists() or (running.exists() and workers.poller_died())


def recover_orphans():
    """Run with each cluster's heartbeat: a dead worker's jobs are resumed within the heartbeat
    timeout, not at the watchdog's next pass (a minute on), and by whichever cluster sees it
    first (the lease keeps it to one at a time)."""
    seconds = settings.STUDIO_HEARTBEAT_SECONDS
    if orphans_waiting() and workers.take_lease(RECOVERY_LEASE, seconds, renew=False):
        log.info("a dead worker left work behind: recovering")
        recover()
