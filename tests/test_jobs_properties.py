"""Random interleavings of everything that can happen to jobs, against the real jobs.* and
ledger functions and the real database, with invariants checked after every step.

The gateways are replaced by a scripted adapter (no HTTP): each step draws what the gateway
answers (a task id, images, a failure, a transient error, a lost task) and the real pipeline
handles it. Results come back as base64 images, so downloads work offline. Tasks the pipeline
enqueues are recorded instead of sent to a broker and may be delivered any number of times, in
any order, as django-q2 may do. Workers "die" by leaving a job claimed by a pid that cannot exist.
"""

import base64
import functools
import io
import itertools
import socket
from collections import Counter, defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db.models import Count, F
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from PIL import Image as PILImage

from studio import jobs, ledger, media
from studio.gateways.errors import ACCOUNT, LOST, REJECTED, TRANSIENT, GatewayError
from studio.gateways.request import ImageRequest
from studio.gateways.results import Result, TaskState
from studio.models import Budget, Image, Job, JobEvent, JobInput, Lease, LedgerEntry, Price

pytestmark = pytest.mark.django_db(transaction=True)

BUDGET = Decimal("4.00")
PRICES = {"apimart": Decimal("0.50"), "foxapi": Decimal("0.40"), "anyfast": Decimal("0.30")}
MODEL = "wan2.7-image-pro"
DEAD_WORKER = f"{socket.gethostname()}:4194305"  # above any Linux pid_max: never a live process


def tiny_png(colour):
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8), colour).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


GOOD_B64 = [tiny_png((50 * i, 90, 200 - 40 * i)) for i in range(4)]
BAD_B64 = base64.b64encode(b"this is not an image").decode()


# --- what a gateway may answer --------------------------------------------------------------
# st.one_of picks its branches about evenly, so the common answers are listed more than once.

refused = st.builds(GatewayError, st.just(TRANSIENT), st.sampled_from(["HTTP 429", "HTTP 502"]))
maybe_reached = st.builds(
    GatewayError, st.just(TRANSIENT), st.just("read timeout"), may_have_reached=st.just(True)
)
final_errors = st.builds(GatewayError, st.sampled_from([REJECTED, ACCOUNT]), st.just("refused"))
poll_errors = st.builds(GatewayError, st.sampled_from([TRANSIENT, TRANSIENT, LOST, ACCOUNT]), st.just("poll"))
running_states = st.builds(
    TaskState, st.none(), st.sampled_from(["pending", "running"]),
    progress=st.integers(0, 100), estimated_seconds=st.none() | st.integers(1, 60),
)
failed_states = st.builds(
    TaskState, st.none(), st.just("failed"),
    error=st.builds(GatewayError, st.sampled_from([REJECTED, TRANSIENT]), st.just("upstream failed")),
)


def results(most, least=0):
    """Up to `most` results; now and then one is bytes that are not an image."""
    return st.lists(st.sampled_from([True, True, True, False]), min_size=least, max_size=most).map(
        lambda good: [Result(index=i, b64_json=GOOD_B64[i] if ok else BAD_B64) for i, ok in enumerate(good)]
    )


def completed(found):
    return TaskState(None, "completed", progress=100, results=found)


def weighted(*choices):
    """One of the strategies, each as likely as its weight."""
    return st.sampled_from([strategy for strategy, weight in choices for _ in range(weight)]).flatmap(
        lambda strategy: strategy
    )


@functools.cache
def poll_answers(n):
    """(state, error) as jobs.apply_poll takes them, for a job that asked for n images."""
    return weighted(
        (st.tuples(running_states, st.none()), 2),
        (st.tuples(results(n).map(completed), st.none()), 1),
        (st.tuples(results(n, least=1).map(completed), st.none()), 2),
        (st.tuples(failed_states, st.none()), 1),
        (st.tuples(st.just(TaskState(None, "cancelled")), st.none()), 1),
        (st.tuples(st.none(), poll_errors), 1),
    )


@functools.cache
def submit_answers(is_async, n):
    """A TaskState, or a GatewayError the adapter raises."""
    if is_async:
        first = (running_states, 5)
    else:
        first = (results(n, least=1).map(completed), 5)
    return weighted(
        first,
        (results(n).map(completed), 1 if is_async else 0),
        (failed_states, 1),
        (refused, 2),
        (maybe_reached, 1),
        (final_errors, 1),
    )


class ScriptedAdapter:
    """Stands in for a gateway adapter: answers what the current step scripted."""

    def __init__(self, machine, gateway):
        self.machine = machine
        self.is_async = gateway != "anyfast"

    def submit(self, request, inputs):
        return self.machine.gateway_submit(request)

    def poll(self, remote_id):
        state, error = self.machine.poll_script.get(remote_id, (TaskState(remote_id, "running"), None))
        if error is not None:
            raise error
        return state


def has_jobs(machine):
    return bool(machine.job_ids)


class JobMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        # A clean slate for every example (the test database is only flushed after the test).
        for model in (LedgerEntry, Image, JobEvent, JobInput, Job, Lease, Budget, Price):
            model.objects.all().delete()
        self.user, _ = User.objects.get_or_create(username="prop")
        Budget.objects.create(user=self.user, monthly_limit=BUDGET)
        for gateway in ("anyfast", "foxapi"):
            Price.objects.create(gateway=gateway, model=MODEL, unit_price=PRICES[gateway])
        self.counter = itertools.count()
        self.job_ids = []
        self.by_prompt = {}
        self.submit_script = None
        self.poll_script = {}
        self.upstream = defaultdict(list)  # job id -> what each submit that reached the gateway did
        self.enqueued = []  # (task function, args), recorded instead of sent to a broker
        # jobs.submit turns any exception into a failed job, so a broken rule is reported here.
        self.violations = []

    # --- the fakes ---------------------------------------------------------------------

    def gateway_submit(self, request):
        job_id = self.by_prompt[request.prompt]
        calls = self.upstream[job_id]
        answer, self.submit_script = self.submit_script, None
        if answer is None:
            self.violations.append(f"job {job_id}: submit called without a scripted answer")
        if any(outcome != "refused" for outcome in calls):
            # Never a second submit once one may have created a task upstream.
            self.violations.append(f"job {job_id} submitted again after {calls}")
        if self.violations:
            raise AssertionError(self.violations[-1])
        if isinstance(answer, GatewayError):
            calls.append("maybe" if answer.may_have_reached else "refused")
            raise answer
        calls.append("task")
        if answer.status in ("pending", "running"):
            answer = TaskState(f"remote-{job_id}", answer.status, answer.progress, answer.estimated_seconds)
        return answer

    def record_task(self, func, *args, **kwargs):
        self.enqueued.append((func, args))

    def pick(self, data, statuses=None):
        """A job id drawn among those in `statuses` (any job when None), or None."""
        found = Job.objects.filter(pk__in=self.job_ids)
        if statuses is not None:
            found = found.filter(status__in=statuses)
        ids = sorted(found.values_list("pk", flat=True))
        return data.draw(st.sampled_from(ids)) if ids else None

    def submit_with(self, job_id, data):
        """Deliver the submit task; the gateway answers as drawn if it is asked."""
        job = Job.objects.get(pk=job_id)
        self.submit_script = data.draw(submit_answers(job.gateway != "anyfast", job.n_requested))
        try:
            jobs.submit(job_id)
        finally:
            self.submit_script = None

    # --- rules -------------------------------------------------------------------------

    @initialize()
    def patch(self):
        self.patches = pytest.MonkeyPatch()
        self.patches.setattr(jobs, "adapter_for", lambda gateway: ScriptedAdapter(self, gateway))
        self.patches.setattr(jobs, "async_task", self.record_task)

    def teardown(self):
        if not hasattr(self, "patches"):
            return
        try:
            self.drain()
        finally:
            self.patches.undo()

    @rule(wanted=st.lists(
        st.tuples(st.sampled_from(list(PRICES)), st.integers(1, 4)), min_size=1, max_size=3
    ))
    def create(self, wanted):
        """People ask for images; a job that would overspend the budget is refused."""
        for gateway, n in wanted:
            prompt = f"job {next(self.counter)}"
            request = ImageRequest(gateway=gateway, model=MODEL, mode="text-to-image", prompt=prompt, n=n,
                                   size_tier="1K")
            if PRICES[gateway] * n > ledger.remaining(self.user):
                with pytest.raises(jobs.JobRejected):
                    jobs.create_job(self.user, request)
                continue
            job = jobs.create_job(self.user, request)
            self.by_prompt[prompt] = job.pk
            self.job_ids.append(job.pk)

    def advance_one(self, job_id, data):
        """What normally happens next to an active job, with the gateway's answer drawn."""
        job = Job.objects.get(pk=job_id)
        if job.status == Job.QUEUED:
            Job.objects.filter(pk=job_id).update(next_poll=None)  # a retry's wait is over
            self.submit_with(job_id, data)
        elif job.status == Job.RUNNING:
            self.apply_poll(job, data.draw(poll_answers(job.n_requested)))
        elif job.status == Job.DOWNLOADING:
            jobs.download(job_id)
        elif job.status == Job.SUBMITTING:  # only a dead worker leaves a job here
            self.time_passes()
            jobs.recover()

    @precondition(has_jobs)
    @rule(data=st.data())
    def advance(self, data):
        job_id = self.pick(data, Job.ACTIVE_STATUSES)
        if job_id is not None:
            self.advance_one(job_id, data)

    @precondition(has_jobs)
    @rule(data=st.data())
    def advance_all(self, data):
        active = Job.objects.filter(status__in=Job.ACTIVE_STATUSES).order_by("pk")
        for job_id in active.values_list("pk", flat=True):
            self.advance_one(job_id, data)

    @precondition(has_jobs)
    @rule(data=st.data())
    def deliver_submit(self, data):
        """The submit task arrives for any job: perhaps again, perhaps far too late."""
        self.submit_with(self.pick(data), data)

    @precondition(has_jobs)
    @rule(data=st.data())
    def crash_mid_submit(self, data):
        """A worker took a queued job and died during the HTTP call."""
        job_id = self.pick(data, [Job.QUEUED])
        if job_id is None:
            return
        job = Job.objects.get(pk=job_id)
        if jobs.transition(job, Job.SUBMITTING, attempts=F("attempts") + 1, claimed_by=DEAD_WORKER):
            self.upstream[job_id].append("maybe")

    def apply_poll(self, job, answer):
        """A status answer as the lane applies it: a job whose results arrived goes to a download task."""
        if jobs.apply_poll(job, *answer):
            jobs.enqueue_downloads([job])

    @precondition(has_jobs)
    @rule(data=st.data(), twice=st.booleans())
    def poll_answer(self, data, twice):
        """One poll of a running job; `twice` delivers the same answer again to a stale copy."""
        job_id = self.pick(data, [Job.RUNNING])
        if job_id is None:
            return
        job, stale = Job.objects.get(pk=job_id), Job.objects.get(pk=job_id)
        answer = data.draw(poll_answers(job.n_requested))
        self.apply_poll(job, answer)
        if twice:
            self.apply_poll(stale, answer)

    @precondition(has_jobs)
    @rule(data=st.data())
    def poll_once(self, data):
        """The lane's batch of polls: every running job is due; the gateway answers each as drawn."""
        running = Job.objects.filter(status=Job.RUNNING).values_list("pk", "n_requested")
        self.poll_script = {f"remote-{pk}": data.draw(poll_answers(n)) for pk, n in running}
        Job.objects.filter(status=Job.RUNNING).update(next_poll=timezone.now() - timedelta(seconds=1))
        jobs.poll_once()
        self.poll_script = {}

    @precondition(has_jobs)
    @rule(data=st.data())
    def deliver_download(self, data):
        """The download task arrives for any job, perhaps again."""
        jobs.download(self.pick(data))

    @precondition(has_jobs)
    @rule(data=st.data())
    def crash_mid_download(self, data):
        """A worker stored the first image of a download, then died."""
        job_id = self.pick(data, [Job.DOWNLOADING])
        job = Job.objects.get(pk=job_id) if job_id else None
        if job is None or not job.results or job.images.filter(index=job.results[0]["index"]).exists():
            return
        Job.objects.filter(pk=job_id).update(claimed_by=DEAD_WORKER)
        entry = job.results[0]
        try:
            media.store_result(job, entry, media.result_bytes(entry))
        except (ValueError, OSError, media.NotAnImage):
            pass

    @precondition(lambda self: self.enqueued)
    @rule(data=st.data())
    def deliver_recorded_task(self, data):
        """Deliver a task the pipeline enqueued; it stays deliverable (at-least-once)."""
        func, args = data.draw(st.sampled_from(self.enqueued))
        if func == "studio.tasks.download_jobs":
            jobs.download_all(*args)
        elif func == "studio.tasks.submit_job":
            self.submit_with(args[0], data)

    @precondition(has_jobs)
    @rule(data=st.data())
    def cancel(self, data):
        job = Job.objects.get(pk=self.pick(data))
        before, stopped = job.status, job.stopped_by_user
        # Queued: cancelled. Sent: the person stops waiting, once. Finished: nothing to do.
        assert jobs.cancel(job) == (before in Job.ACTIVE_STATUSES and not stopped)

    @precondition(has_jobs)
    @rule(data=st.data())
    def deadline_passes(self, data):
        job_id = self.pick(data, Job.ACTIVE_STATUSES)
        Job.objects.filter(pk=job_id).update(deadline=timezone.now() - timedelta(seconds=1))
        jobs.expire_overdue()

    @rule()
    def time_passes(self):
        """An hour goes by: workers' claims go stale and retries fall due."""
        hour = timedelta(hours=1)
        Job.objects.update(created=F("created") - hour, updated=F("updated") - hour)
        Job.objects.filter(next_poll__isnull=False).update(next_poll=F("next_poll") - hour)

    @rule()
    def recover(self):
        jobs.recover()

    # --- invariants --------------------------------------------------------------------

    @invariant()
    def money_is_settled_once_and_right(self):
        entries = defaultdict(list)
        for job_id, kind, amount in LedgerEntry.objects.values_list("job_id", "kind", "amount"):
            entries[job_id].append((kind, amount))
        for job in Job.objects.annotate(stored=Count("images")):
            rows = entries[job.pk]
            kinds = Counter(kind for kind, _ in rows)
            amounts = dict(rows)
            assert kinds["hold"] == 1 and amounts["hold"] == job.unit_price * job.n_requested, (job.pk, rows)
            assert kinds["release"] <= 1 and kinds["charge"] <= 1, (job.pk, rows)
            if job.status == Job.FAILED and job.needs_review:
                # An unanswered submit: the hold stays as unconfirmed exposure for an admin.
                assert set(kinds) == {"hold"}, (job.pk, job.status, rows)
            elif job.status in jobs.FINAL:
                assert kinds["release"] == 1, (job.pk, job.status, rows)
                assert amounts["release"] == amounts["hold"], (job.pk, rows)
                if job.stored:
                    assert amounts.get("charge") == job.unit_price * job.stored, (job.pk, job.stored, rows)
                else:
                    assert "charge" not in amounts, (job.pk, rows)
            else:
                assert set(kinds) == {"hold"}, (job.pk, job.status, rows)
            if job.status == Job.CANCELLED:
                assert job.stored == 0, job.pk

    @invariant()
    def the_gateway_saw_nothing_wrong(self):
        assert not self.violations, self.violations

    @invariant()
    def spend_stays_within_the_budget(self):
        assert ledger.month_spend(self.user) <= BUDGET

    @invariant()
    def history_only_has_allowed_moves(self):
        moves = defaultdict(list)
        events = JobEvent.objects.order_by("id").values_list("job_id", "old_status", "new_status")
        for job_id, old, new in events:
            moves[job_id].append((old, new))
        for job_id, status in Job.objects.values_list("pk", "status"):
            history = moves[job_id]
            assert history[0] == ("", Job.QUEUED), (job_id, history)
            for (_, previous), (old, new) in itertools.pairwise(history):
                # Staying put records that the person stopped waiting; every other move is allowed.
                stays = new == old and old not in jobs.FINAL
                assert old == previous and (new in jobs.TRANSITIONS[old] or stays), (job_id, history)
            assert history[-1][1] == status, (job_id, history, status)

    @invariant()
    def doubt_is_flagged_for_review(self):
        for job_id, status, needs_review in Job.objects.filter(status__in=jobs.FINAL).values_list(
            "pk", "status", "needs_review"
        ):
            if needs_review:
                assert status in (Job.FAILED, Job.CANCELLED), job_id
            calls = self.upstream.get(job_id, [])
            if status == Job.FAILED and calls and calls[-1] == "maybe":
                assert needs_review, (job_id, calls)

    # --- the end of an example ---------------------------------------------------------

    def drain(self):
        """Every job can still be brought to a final status, with its money settled."""
        self.time_passes()
        jobs.recover()  # dead workers' submits fail for review; their downloads are requeued
        for job_id in Job.objects.filter(status=Job.DOWNLOADING).values_list("pk", flat=True):
            jobs.download(job_id)
        Job.objects.update(deadline=timezone.now() - timedelta(seconds=1))
        jobs.expire_overdue()
        assert not Job.objects.exclude(status__in=jobs.FINAL).exists()
        self.money_is_settled_once_and_right()
        self.spend_stays_within_the_budget()
        self.history_only_has_allowed_moves()


def test_random_interleavings_keep_the_ledger_and_the_history_right():
    run_state_machine_as_test(
        JobMachine,
        settings=hypothesis_settings(
            max_examples=50,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
