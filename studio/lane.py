"""The lane: one long-lived task that sends every queued job and polls each running job when its
result is due, with every gateway call on a thread of its own, so no worker process waits out a
generation and no job waits for another; finished results go to download tasks.

Three kinds of thread, so that a database connection is never held across a gateway call:

    the lane's own   reads and writes the database: takes queued jobs (`submitting` committed
                     for each pass's batch before its calls go out), claims due polls, applies
                     every answer that came back in one transaction
    call threads     the HTTP calls alone (a sync generation blocks one of these, not a process);
                     at most STUDIO_GATEWAY_CONCURRENCY at once per gateway
    work threads     a submit answer with images in it (b64_json), which are written to
                     storage; a few at once

Downloads (fetching, checking, thumbnails: CPU and I/O for seconds) are handed to download
tasks, so they run in the cluster's other worker processes side by side and never hold up
the next polls.

One lane runs across every cluster (the poll lease). It sleeps until the earliest due poll,
an answer, or STUDIO_LANE_PICKUP_SECONDS (how soon a new job is taken). After
STUDIO_LANE_SECONDS it hands over to a fresh task and lets its last calls end; with nothing
active for STUDIO_LANE_IDLE_SECONDS it stops. Killed, it leaves `submitting` jobs that recovery
fails for review (never resent) and downloads that recovery requeues, as any worker would.
"""

import logging
import queue
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Min, Q
from django.utils import timezone

from studio import jobs, workers
from studio.gateways import catalog
from studio.models import Job

log = logging.getLogger(__name__)

LEASE_RENEW_SECONDS = 5
SWEEP_SECONDS = 5  # how often overdue jobs are expired
TAKE_AT_ONCE = 200  # queued jobs or due polls looked at in one pass
WORK_THREADS = 8


def run():
    """The lane's task: serve while this worker holds the poll lease, then hand over."""
    if not workers.take_lease(workers.POLL_LEASE, lease_seconds()):
        return "another lane is running"
    lane = Lane()
    try:
        outcome = lane.serve(settings.STUDIO_LANE_SECONDS)
    finally:
        workers.drop_lease(workers.POLL_LEASE)
    # Continue (or restart for a job that arrived while this one was leaving) before the last
    # calls end: the next lane must not wait for a generation still under way here.
    if jobs.lane_has_work():
        jobs.ensure_poller()
        outcome = "continued"
    lane.drain()
    return outcome


def lease_seconds():
    return settings.STUDIO_LANE_SECONDS + 30


class Lane:
    def __init__(self):
        limit = settings.STUDIO_GATEWAY_CONCURRENCY
        self.calls = ThreadPoolExecutor(limit * len(catalog.GATEWAYS), thread_name_prefix="lane-call")
        self.work = ThreadPoolExecutor(WORK_THREADS, thread_name_prefix="lane-work")
        self.answers = queue.Queue()  # what the call and work threads hand back
        self.in_flight = Counter()  # gateway -> calls under way
        self.working = 0  # work items under way

    # --- the loop --------------------------------------------------------------------------

    def serve(self, seconds):
        started = renewed = swept = time.monotonic()
        idle_since = None
        while time.monotonic() - started < seconds:
            if time.monotonic() - renewed > LEASE_RENEW_SECONDS:
                if not workers.take_lease(workers.POLL_LEASE, lease_seconds()):
                    return "lost the lease"
                renewed = time.monotonic()
            if time.monotonic() - swept > SWEEP_SECONDS:
                jobs.expire_overdue()
                swept = time.monotonic()
            now = timezone.now()
            self.take_queued(now)
            room = self.poll_due(now)
            if self.busy() or jobs.lane_has_work():
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > settings.STUDIO_LANE_IDLE_SECONDS:
                return "idle"
            # Due polls with no room for them wait for an answer, not a spin.
            self.wait(self.seconds_to_next_poll(now) if room else settings.STUDIO_LANE_PICKUP_SECONDS)
        return "handed over"

    def busy(self):
        return bool(sum(self.in_flight.values()) or self.working)

    def wait(self, seconds):
        """Until an answer comes back or `seconds` pass; then every answer waiting is applied."""
        try:
            answers = [self.answers.get(timeout=max(0.0, seconds))]
        except queue.Empty:
            return
        while True:
            try:
                answers.append(self.answers.get_nowait())
            except queue.Empty:
                break
        self.apply_all(answers)

    def seconds_to_next_poll(self, now):
        pickup = settings.STUDIO_LANE_PICKUP_SECONDS
        due = Job.objects.filter(status=Job.RUNNING).aggregate(first=Min("next_poll"))["first"]
        if due is None:
            return pickup
        return min(pickup, (due - now).total_seconds())

    def drain(self):
        """Apply the answers of the calls still under way, then stop the threads."""
        while self.busy():
            self.wait(1.0)
        self.calls.shutdown()
        self.work.shutdown()

    # --- sending ---------------------------------------------------------------------------

    def room(self, gateway):
        """How many more calls `gateway` can take now."""
        return settings.STUDIO_GATEWAY_CONCURRENCY - self.in_flight[gateway]

    def has_room(self, gateway, planned=0):
        """Whether `gateway` can take another call, with `planned` more about to go out."""
        return self.room(gateway) > planned

    def take_queued(self, now):
        """Send every due queued job whose gateway has room for another call."""
        found = (
            Job.objects.filter(Q(next_poll__isnull=True) | Q(next_poll__lte=now), status=Job.QUEUED)
            .order_by("id")
            .values_list("pk", "gateway")[:TAKE_AT_ONCE]
        )
        planned = Counter()
        ready = []
        for job_id, gateway in found:
            if not self.has_room(gateway, planned[gateway]):
                continue
            sending = jobs.prepare_submit(job_id)
            if sending is not None:
                planned[gateway] += 1
                ready.append(sending)
        if not ready:
            return
        # `submitting` for the whole batch in one transaction (on SQLite one wait for the write
        # lock, not one per job), committed before any call goes out.
        with transaction.atomic():
            marked = [sending for sending in ready if jobs.mark_submitting(sending[0])]
        for sending in marked:
            self.in_flight[sending[0].gateway] += 1
            self.calls.submit(self.call_submit, sending)

    def call_submit(self, sending):
        job, adapter, image_request, inputs = sending
        state, error = jobs.send_submit(job, adapter, image_request, inputs)
        self.answers.put(("submitted", job, adapter, state, error))

    # --- polling ---------------------------------------------------------------------------

    def poll_due(self, now):
        """Ask about every running job whose poll is due, as many at once as there is room.
        Returns whether any gateway had room."""
        rooms = {key: min(TAKE_AT_ONCE, self.room(key)) for key in catalog.GATEWAYS}
        if not any(room > 0 for room in rooms.values()):
            return False
        for job in jobs.claim_due_polls(now, rooms):
            self.in_flight[job.gateway] += 1
            self.calls.submit(self.call_poll, job)
        return True

    def call_poll(self, job):
        self.answers.put(("polled", *jobs.ask_gateway(job)))

    # --- answers ---------------------------------------------------------------------------

    def apply_all(self, answers):
        """Every answer that came back, in one transaction (on SQLite one wait for the write lock
        for a burst of completions, not one per job), each in a savepoint of its own; the jobs
        whose results arrived go to download tasks together (jobs.enqueue_downloads)."""
        try:
            with transaction.atomic():
                downloads = []
                for answer in answers:
                    downloads += self.apply(answer)
                jobs.enqueue_downloads(downloads)
        except Exception:
            # Not committed: those jobs are asked again when their claim runs out (polls), or
            # recovery finds them `submitting` (never resent), as after a crash.
            log.exception("lane: committing %s answers failed", len(answers))

    def apply(self, answer):
        """apply_one() in a savepoint: the jobs to download, none if it failed."""
        try:
            with transaction.atomic():
                return self.apply_one(answer)
        except Exception:
            # One job's trouble must not stop every other job's lane.
            log.exception("lane: applying %s failed", answer[0])
            return []

    def apply_one(self, answer):
        kind = answer[0]
        if kind == "submitted":
            _, job, adapter, state, error = answer
            self.in_flight[job.gateway] -= 1
            if state is not None and any(result.b64_json for result in state.results):
                # Images in the answer itself are written to storage: not on the lane's thread.
                self.start_work(finish_submit, job, adapter, state, error)
            elif submit_answered(job, adapter, state, error):
                return [job]
        elif kind == "polled":
            _, job, state, error = answer
            self.in_flight[job.gateway] -= 1
            if jobs.apply_poll(job, state, error):
                return [job]
        elif kind == "worked":
            self.working -= 1
        return []

    def start_work(self, func, *args):
        self.working += 1
        self.work.submit(self.do_work, func, *args)

    def do_work(self, func, *args):
        try:
            func(*args)
        except Exception:
            log.exception("lane: %s%s failed", func.__name__, args[:1])
        finally:
            # Kept for the next item while young (CONN_MAX_AGE), as a request's is; a work
            # thread's connection goes with the thread when the lane hands over.
            connection.close_if_unusable_or_obsolete()
            self.answers.put(("worked",))


def submit_answered(job, adapter, state, error):
    """A submit's answer recorded; True when a sync gateway's images wait for a download task,
    handed over unclaimed (""). A running job needs no poller started: this lane polls it."""
    return jobs.finish_submit(job, adapter, state, error, claimed_by="", start_poller=False)


def finish_submit(job, adapter, state, error):
    """A submit's answer with images in it, on a work thread; they go to a download task."""
    if submit_answered(job, adapter, state, error):
        jobs.enqueue_downloads([job])
