"""The job state machine and pipeline.

    queued → submitting → running → downloading → succeeded | partial
    any active status → failed; queued / submitting / running → cancelled

Every status change goes through transition(): an UPDATE filtered on the old status, so two
workers (or a worker and a user's cancel) cannot both act; the one that loses logs and stops.
Money moves in the same transaction as the final status (ledger.settle / ledger.release).
No transaction or lock is held across a gateway HTTP call.
"""

import logging
import os
import random
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.tasks import async_task

from studio import ledger, media
from studio.gateways import adapter_for, catalog
from studio.gateways.errors import ACCOUNT, LOST, REJECTED, TRANSIENT, GatewayError
from studio.gateways.request import ImageRequest, validate
from studio.models import Job, JobEvent, JobInput, Lease, Share

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

MAY_HAVE_RUN = "The gateway did not answer; it may still have run. Check before submitting again."
REVIEW_MAY_HAVE_RUN = "submit may have reached the gateway"
REVIEW_CANCELLED = "cancelled after submission (the gateway may still bill it)"
REVIEW_STALE_SUBMIT = "worker stopped while submitting"


def setting(name, default):
    return getattr(settings, name, default)


def worker_id():
    return f"{socket.gethostname()}:{os.getpid()}"


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
    if new_status not in TRANSITIONS[old_status]:
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
    return True


def finish(job, new_status, note="", **fields):
    """Move to a final status and settle the money in the same transaction."""
    with transaction.atomic():
        if not transition(job, new_status, note=note, **fields):
            return False
        ledger.settle(job, job.images.count())
    return True


def fail(job, error_class, message, review_reason=""):
    fields = {"error_class": error_class, "error_message": message}
    if review_reason:
        fields.update(needs_review=True, review_reason=review_reason)
    return finish(job, FAILED, note=message, **fields)


# --- creating ------------------------------------------------------------------------------


def create_job(user, request, uploads=(), boxes=None):
    """Validate, then write the job, its inputs and its hold in one transaction; the submit
    task is queued only once that transaction has committed."""
    uploads = list(uploads)
    errors = validate(request, [media.input_meta(upload) for upload in uploads])
    found = catalog.offer(request.gateway, request.model)
    price = ledger.unit_price(request.gateway, request.model) if found else None
    if found and price is None:
        errors.setdefault("model", []).append(
            f"No price is set for {found.display_name} on {request.gateway}; ask an admin to set one."
        )
    if errors:
        raise JobRejected(errors)

    boxes = boxes or request.boxes or []
    now = timezone.now()
    try:
        with transaction.atomic():
            job = Job.objects.create(
                owner=user,
                gateway=request.gateway,
                model=request.model,
                mode=request.mode,
                prompt=request.prompt,
                request=request.to_dict(),
                n_requested=request.n,
                unit_price=price,
                hold_amount=price * request.n,
                deadline=now + timedelta(seconds=setting("STUDIO_JOB_DEADLINE", 900)),
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
            transaction.on_commit(lambda: enqueue_submit(job.pk))
    except ledger.BudgetExceeded as exc:
        raise JobRejected({"n": [exc.message]}) from None
    return job


def enqueue_submit(job_id):
    async_task("studio.tasks.submit_job", job_id, task_name=f"submit-job-{job_id}")


def retry(job):
    """A new job with the same inputs; the old one stays as it was."""
    request = ImageRequest.from_dict(job.request)
    inputs = list(job.inputs.select_related("upload"))
    return create_job(job.owner, request, [i.upload for i in inputs], [i.boxes for i in inputs])


# --- submitting ----------------------------------------------------------------------------


def submit(job_id):
    """Send a queued job to its gateway. Safe to run twice: only one run wins queued → submitting."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.status != QUEUED:
        return
    now = timezone.now()
    if job.next_poll and job.next_poll > now:
        return  # a retry that is not due yet; the sweeper brings it back
    if job.deadline and job.deadline < now:
        fail(job, TRANSIENT, "The gateway could not take the job before its deadline.")
        return
    try:
        request = ImageRequest.from_dict(job.request)
        inputs = media.input_images(job)
    except OSError:
        log.exception("job %s: input images could not be read", job.pk)
        fail(job, REJECTED, "An input image of this job could not be read from storage. Upload it again.")
        return
    adapter = adapter_for(job.gateway)

    # Committed before the HTTP call: from here on a crash leaves a visible `submitting` job.
    if not transition(job, SUBMITTING, attempts=F("attempts") + 1, submitted=now, claimed_by=worker_id()):
        return
    try:
        state = adapter.submit(request, inputs)
    except GatewayError as error:
        submit_failed(job, error)
        return
    except Exception:
        # A bug of ours, not the gateway's: it may have sent the request, so treat it as unknown.
        log.exception("job %s: unexpected error while submitting", job.pk)
        fail(job, TRANSIENT, MAY_HAVE_RUN, review_reason="unexpected error while submitting")
        return

    if state.status == "failed":
        fail(
            job,
            REJECTED,
            plain_message(state.error) if state.error else "The gateway could not make the images.",
        )
        return
    if adapter.is_async and state.status != "completed":
        transition(
            job,
            RUNNING,
            note=f"task {state.remote_id}",
            remote_task_id=state.remote_id or "",
            progress=state.progress,
            estimated_seconds=state.estimated_seconds,
            next_poll=now + poll_delay(state),
        )
        ensure_poller()
        return
    if not results_arrived(job, state, SUBMITTING):
        return
    download(job.pk)


def submit_failed(job, error):
    message = plain_message(error)
    if error.error_class == TRANSIENT and error.may_have_reached:
        # Never resubmit on our own: the first request may have created a paid task upstream.
        fail(job, TRANSIENT, MAY_HAVE_RUN, review_reason=REVIEW_MAY_HAVE_RUN)
    elif error.error_class == TRANSIENT and job.attempts < setting("STUDIO_SUBMIT_ATTEMPTS", 4):
        delay = backoff(job.attempts)
        if transition(
            job,
            QUEUED,
            note=f"retry in {delay:.1f}s: {message}",
            error_class=TRANSIENT,
            error_message=f"Retrying: {message}",
            next_poll=timezone.now() + timedelta(seconds=delay),
        ):
            ensure_poller()  # the poll loop requeues it once next_poll is due
    else:
        fail(job, error.error_class, message)


def backoff(attempts):
    """Exponential backoff with full jitter, in seconds."""
    base = setting("STUDIO_RETRY_BASE_SECONDS", 2.0)
    cap = setting("STUDIO_RETRY_MAX_SECONDS", 60.0)
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


def results_arrived(job, state, from_status):
    """Record what the gateway returned (so a crash can resume the download) and move on."""
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
        usage=state.usage,
        first_result=timezone.now(),
        claimed_by=worker_id(),
        error_message="; ".join(state.partial_failures)[:2000],
    )


def download(job_id):
    """Fetch every result not yet stored, then finish. Safe to run twice."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.status != DOWNLOADING:
        return
    Job.objects.filter(pk=job.pk).update(claimed_by=worker_id())
    problems = media.download_results(job)
    stored = job.images.count()
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
        return
    finish(job, SUCCEEDED, note=f"{stored} image(s) stored")


# --- polling -------------------------------------------------------------------------------

POLL_LEASE = "poller"


def poll_delay(state):
    """When to ask again: a fraction of the gateway's remaining estimate, within bounds."""
    low = setting("STUDIO_POLL_MIN_SECONDS", 2.0)
    high = setting("STUDIO_POLL_MAX_SECONDS", 10.0)
    # No estimate (apimart and gccai give none): the upstream advice is every 5–10 s.
    delay = setting("STUDIO_POLL_DEFAULT_SECONDS", 5.0)
    if state.estimated_seconds:
        done = (state.progress or 0) / 100
        remaining = state.estimated_seconds * (1 - done)
        delay = remaining / 3
    return timedelta(seconds=max(low, min(high, delay)))


def take_lease(name, seconds, renew=True):
    """Hold the named lease for `seconds`; False when another live worker has it (or, with
    renew=False, when anyone, this process included, holds it now)."""
    now = timezone.now()
    me = worker_id()
    expires = now + timedelta(seconds=seconds)
    free = Q(expires__lt=now) | Q(holder=me) if renew else Q(expires__lt=now)
    taken = Lease.objects.filter(free, name=name).update(holder=me, expires=expires)
    if taken:
        return True
    # A holder killed on this host need not be waited out.
    current = Lease.objects.filter(name=name).values_list("holder", flat=True).first()
    if current and worker_is_dead(current):
        return bool(Lease.objects.filter(name=name, holder=current).update(holder=me, expires=expires))
    try:
        with transaction.atomic():
            Lease.objects.create(name=name, holder=me, expires=expires)
        return True
    except IntegrityError:
        return False


def drop_lease(name):
    Lease.objects.filter(name=name, holder=worker_id()).update(expires=timezone.now() - timedelta(seconds=1))


def poller_is_alive():
    """Whether a poll loop holds the lease and its worker still runs."""
    holder = (
        Lease.objects.filter(name=POLL_LEASE, expires__gte=timezone.now())
        .values_list("holder", flat=True)
        .first()
    )
    return bool(holder) and not worker_is_dead(holder)


def ensure_poller():
    """Start the poll loop unless a live one is already running."""
    if not poller_is_alive():
        async_task("studio.tasks.poll_loop", task_name="poll-loop")


def poll_loop():
    """One worker polls every running job, then hands over to a fresh task.

    django-q2 schedules tick only every ~30 s, so the loop keeps its own cadence and
    continues itself; the watchdog schedule only restarts it if it died.
    """
    seconds = setting("STUDIO_POLL_LOOP_SECONDS", 20.0)
    tick = setting("STUDIO_POLL_TICK_SECONDS", 0.5)
    if not take_lease(POLL_LEASE, seconds + 30):
        return "another poller is running"
    started = timezone.now()
    try:
        while (timezone.now() - started).total_seconds() < seconds:
            take_lease(POLL_LEASE, seconds + 30)
            poll_once()
            expire_overdue()
            if not Job.objects.filter(status__in=[RUNNING, QUEUED]).exists():
                break
            pause(tick)
    finally:
        drop_lease(POLL_LEASE)
    # A job may have started running while we were leaving: keep going if so.
    if Job.objects.filter(status__in=[RUNNING, QUEUED]).exists():
        async_task("studio.tasks.poll_loop", task_name="poll-loop")
        return "continued"
    return "idle"


def pause(seconds):
    time.sleep(seconds)


def poll_once(limit=50):
    """Poll every due running job concurrently; requeue due retries. Returns jobs polled."""
    now = timezone.now()
    for job_id in Job.objects.filter(status=QUEUED, next_poll__lte=now).values_list("pk", flat=True)[:limit]:
        Job.objects.filter(pk=job_id, status=QUEUED).update(next_poll=None)
        enqueue_submit(job_id)

    due = list(Job.objects.filter(status=RUNNING, next_poll__lte=now).order_by("next_poll")[:limit])
    claimed = []
    for job in due:
        # Claim by compare-and-set on next_poll so two pollers never ask twice.
        lease = now + timedelta(seconds=60)
        if Job.objects.filter(pk=job.pk, status=RUNNING, next_poll=job.next_poll).update(next_poll=lease):
            job.next_poll = lease
            claimed.append(job)
    if not claimed:
        return 0

    def ask(job):
        try:
            return job, adapter_for(job.gateway).poll(job.remote_task_id), None
        except GatewayError as error:
            return job, None, error
        except Exception as exc:
            # Unknown trouble with one job must not stop the others: ask again later.
            log.exception("job %s: unexpected error while polling", job.pk)
            return job, None, GatewayError(TRANSIENT, f"unexpected error: {type(exc).__name__}")

    with ThreadPoolExecutor(max_workers=min(8, len(claimed))) as pool:
        answers = list(pool.map(ask, claimed))
    for job, state, error in answers:
        apply_poll(job, state, error)
    return len(claimed)


def apply_poll(job, state, error):
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
        Job.objects.filter(pk=job.pk, status=RUNNING).update(
            progress=state.progress if state.progress is not None else job.progress,
            estimated_seconds=state.estimated_seconds or job.estimated_seconds,
            next_poll=now + poll_delay(state),
            updated=now,
        )
    elif state.status == "completed":
        if results_arrived(job, state, RUNNING):
            async_task("studio.tasks.download_job", job.pk, task_name=f"download-job-{job.pk}")
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


def expire_overdue():
    """Jobs past their deadline fail and their holds are released."""
    now = timezone.now()
    minutes = setting("STUDIO_JOB_DEADLINE", 900) // 60
    for job in Job.objects.filter(status__in=[QUEUED, RUNNING], deadline__lt=now):
        fail(
            job,
            LOST,
            f"The job did not finish within {minutes} minutes, so it was stopped. Nothing was charged.",
        )


# --- cancel --------------------------------------------------------------------------------


def cancel(job):
    """Cancel a job. Returns False when it is too late (downloading or finished)."""
    job.refresh_from_db()
    if job.status == QUEUED:
        return finish(
            job, CANCELLED, note="cancelled by the user", error_message="Cancelled before it was sent."
        )
    if job.status in (SUBMITTING, RUNNING):
        return finish(
            job,
            CANCELLED,
            note="cancelled by the user after submission",
            error_message="Cancelled after it was sent to the gateway.",
            needs_review=True,
            review_reason=REVIEW_CANCELLED,
        )
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


def worker_is_dead(claimed_by):
    """True when the job's worker ran on this host and its process is gone."""
    host, _, pid = claimed_by.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return is_zombie(pid)


def is_zombie(pid):
    """A worker killed with its cluster stays a zombie until init reaps it: dead all the same
    (Linux only; elsewhere we wait for the lease or the stale timeout instead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def recover():
    """Resume what a killed worker left behind. Safe to run any time, any number of times."""
    now = timezone.now()
    stale = now - timedelta(seconds=setting("STUDIO_STALE_SECONDS", settings.Q_CLUSTER["timeout"] + 30))
    resumed = 0
    for job in Job.objects.filter(status=SUBMITTING):
        if worker_is_dead(job.claimed_by) or job.updated < stale:
            # We cannot know whether the request reached the gateway: never resubmit blindly.
            fail(job, TRANSIENT, MAY_HAVE_RUN, review_reason=REVIEW_STALE_SUBMIT)
    for job in Job.objects.filter(status=DOWNLOADING):
        if worker_is_dead(job.claimed_by) or job.updated < stale:
            Job.objects.filter(pk=job.pk, status=DOWNLOADING).update(claimed_by="", updated=now)
            async_task("studio.tasks.download_job", job.pk, task_name=f"download-job-{job.pk}")
            resumed += 1
    # Running jobs only need the poller; make sure each has a next poll time.
    Job.objects.filter(status=RUNNING, next_poll__isnull=True).update(next_poll=now)
    # A poller killed mid-poll_once leaves the jobs it claimed 60 s ahead; with no live poller
    # they are due now (an extra status poll is harmless).
    if not poller_is_alive():
        Job.objects.filter(status=RUNNING, next_poll__gt=now).update(next_poll=now)
    # With the Redis broker a queued task can be lost with its worker: submit again (guarded).
    for job_id in Job.objects.filter(
        Q(next_poll__isnull=True) | Q(next_poll__lte=now),
        status=QUEUED,
        created__lt=now - timedelta(seconds=20),
    ).values_list("pk", flat=True):
        enqueue_submit(job_id)
        resumed += 1
    expire_overdue()
    if Job.objects.filter(status__in=[RUNNING, QUEUED]).exists():
        ensure_poller()
    return resumed
