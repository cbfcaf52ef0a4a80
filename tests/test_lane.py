"""The lane (studio/lane.py) against the simulator over real HTTP: it takes queued jobs by
itself, keeps a gateway's calls within its limit, polls when the result is due, downloads a
batch's images at once, and lets a sync generation hold a thread, not a worker process.

The lane runs in a real qcluster here (two worker processes, tests/settings.py): one holds the
lane, the other takes the download tasks. The simulator serves from this process, so its
latency is set here; the cluster's own settings come through its environment."""

import pytest
from django_q.models import Task

from studio import jobs
from studio import simulator as sim
from studio.gateways.results import Result, TaskState
from studio.lane import Lane
from studio.models import Job, LedgerEntry, Price
from studio.simulator.models import SimTask
from tests.conftest import wait_for
from tests.test_jobs import text_request

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def lane_settings(settings):
    settings.STUDIO_SIMULATOR_LATENCY = 0.5
    settings.STUDIO_DEFAULT_MONTHLY_BUDGET = "100.00"
    return settings


@pytest.fixture
def priced(db):
    Price.objects.create(gateway="anyfast", model="wan2.7-image", unit_price="0.30")
    Price.objects.create(gateway="foxapi", model="wan2.7-image", unit_price="0.40")


def cluster(qcluster, simulator, **env):
    """A real qcluster on the test database: its lane sends and polls, its other worker
    downloads."""
    return qcluster(STUDIO_SIMULATOR_URL=simulator.url, STUDIO_PUBLIC_URL=simulator.url,
                    STUDIO_POLL_DEFAULT_SECONDS="0.5", **env)


def finished(*found):
    def check():
        statuses = [Job.objects.get(pk=job.pk).status for job in found]
        return all(status in jobs.FINAL for status in statuses)
    return check


def test_the_lane_takes_queued_jobs_by_itself_and_sees_them_through(simulator, qcluster, owner, priced):
    cluster(qcluster, simulator)
    made = [jobs.create_job(owner, text_request(gateway=gateway, n=2)) for gateway in ("apimart", "gccai")]
    wait_for(finished(*made), message="both jobs finished")
    # No submit task: the lane took both from the queue itself.
    assert not Task.objects.filter(func="studio.tasks.submit_job").exists()
    for job in made:
        job.refresh_from_db()
        assert job.status == Job.SUCCEEDED, job.error_message
        assert job.images.count() == 2
        charge = LedgerEntry.objects.get(job=job, kind="charge")
        assert charge.amount == job.unit_price * 2 and charge.images == 2
    assert sim.counters("apimart")["submits"] == 1 and sim.counters("gccai")["submits"] == 1


def test_a_poll_comes_when_the_result_is_expected_not_on_a_tick(simulator, qcluster, owner, priced, settings):
    settings.STUDIO_SIMULATOR_LATENCY = 1.0  # foxapi says estimated_time=1, so one poll will do
    cluster(qcluster, simulator)
    job = jobs.create_job(owner, text_request(gateway="foxapi", n=1))
    wait_for(finished(job), message="the job finished")
    job.refresh_from_db()
    assert job.status == Job.SUCCEEDED, job.error_message
    task = SimTask.objects.get(gateway="foxapi")
    # Asked once the estimate ran out (plus the margin), not every half second while it ran.
    assert task.polls == 1
    assert job.expected_result is not None and job.expected_result >= job.submitted


def test_a_gateway_never_gets_more_calls_at_once_than_its_limit(simulator, qcluster, owner, priced):
    cluster(qcluster, simulator, STUDIO_GATEWAY_CONCURRENCY="2")
    made = [jobs.create_job(owner, text_request(gateway="anyfast", n=1)) for _ in range(5)]
    wait_for(finished(*made), message="every sync job finished")
    assert all(Job.objects.get(pk=job.pk).status == Job.SUCCEEDED for job in made)
    # The simulator holds each sync request from its task's creation for its latency: count how
    # many of those spans overlap at most.
    edges = []
    for task in SimTask.objects.filter(gateway="anyfast"):
        start = task.created.timestamp()
        edges += [(start, 1), (start + task.latency, -1)]
    at_once = most = 0
    for _, step in sorted(edges, key=lambda edge: (edge[0], edge[1])):
        at_once += step
        most = max(most, at_once)
    assert most == 2
    assert sim.counters("anyfast")["submits"] == 5


def test_async_jobs_do_not_wait_for_sync_generations(simulator, qcluster, owner, priced, settings):
    # Five sync generations, each far longer than an async job, at once on one lane.
    settings.STUDIO_SIMULATOR_LATENCY = 2.0
    cluster(qcluster, simulator)
    slow = [jobs.create_job(owner, text_request(gateway="anyfast", n=1, prompt="[sim:slow] a fox"))
            for _ in range(5)]
    wait_for(lambda: Job.objects.filter(status=Job.SUBMITTING).count() == 5, message="all five sent")
    quick = jobs.create_job(owner, text_request(gateway="foxapi", n=1))
    wait_for(finished(quick), message="the async job finished")
    # It went through while every sync generation was still under way.
    assert Job.objects.filter(pk__in=[job.pk for job in slow], status=Job.SUBMITTING).count() == 5
    wait_for(finished(*slow), message="the sync jobs finished")
    assert Job.objects.get(pk=quick.pk).status == Job.SUCCEEDED


def test_a_batch_downloads_its_images_at_once(simulator, qcluster, owner, priced):
    cluster(qcluster, simulator)
    job = jobs.create_job(owner, text_request(gateway="apimart", n=4))
    wait_for(finished(job), message="the job finished")
    job.refresh_from_db()
    assert job.status == Job.SUCCEEDED, job.error_message
    assert sorted(job.images.values_list("index", flat=True)) == [0, 1, 2, 3]
    # The job is final first; its worker's thumbnail thread makes the thumbnails after.
    wait_for(lambda: all(image.thumbnail.name for image in job.images.all()), message="the thumbnails")
    assert LedgerEntry.objects.get(job=job, kind="charge").amount == job.unit_price * 4


def test_a_handed_over_lane_lets_its_last_generation_end(simulator, qcluster, owner, priced):
    # Each lane hands over after half a second, long before the generation (1.5 s) ends.
    cluster(qcluster, simulator, STUDIO_LANE_SECONDS="0.5")
    job = jobs.create_job(owner, text_request(gateway="anyfast", n=1, prompt="[sim:slow] a heron"))
    wait_for(finished(job), message="the job finished")
    # The lane handed over while the generation was under way, and still saw its answer in.
    wait_for(lambda: "handed over" in [task.result for task in Task.objects.filter(func="studio.tasks.lane")],
             message="the lane's task to end, handed over")
    job.refresh_from_db()
    assert job.status == Job.SUCCEEDED, job.error_message
    assert sim.counters("anyfast")["submits"] == 1


def test_twenty_sync_jobs_share_one_worker_process_in_a_real_cluster(
    simulator, qcluster, owner, priced, settings
):
    # Two worker processes (tests/settings.py): twenty sync generations at once could never
    # run side by side if each held a process.
    settings.STUDIO_SIMULATOR_LATENCY = 2.0
    cluster(qcluster, simulator)
    made = [jobs.create_job(owner, text_request(gateway="anyfast", n=1)) for _ in range(20)]
    wait_for(lambda: Job.objects.filter(status=Job.SUBMITTING).count() == 20, timeout=60,
             interval=0.05, message="all twenty under way at once")
    wait_for(finished(*made), timeout=60, message="all twenty finished")
    assert set(Job.objects.filter(pk__in=[job.pk for job in made]).values_list("status", flat=True)) == {
        Job.SUCCEEDED
    }
    assert sim.counters("anyfast")["submits"] == 20


def test_an_answer_that_fails_to_apply_leaves_the_rest_of_its_batch_applied(owner):
    """The lane applies every answer that came back in one transaction (one wait for SQLite's
    write lock), each in a savepoint: one that raises is rolled back and logged alone, and the
    gateway's call counts are given back for all of them."""
    made = [jobs.create_job(owner, text_request(n=1, prompt=prompt)) for prompt in ("one", "two")]
    for job in made:
        job.refresh_from_db()
        jobs.transition(job, Job.SUBMITTING)
        jobs.transition(job, Job.RUNNING, remote_task_id=f"task-{job.pk}")
    completed = TaskState(remote_id="task", status="completed",
                          results=[Result(index=0, url="http://127.0.0.1:9/result.png")])
    lane = Lane()
    lane.in_flight["apimart"] = 2
    try:
        lane.apply_all([("polled", made[0], completed, None), ("polled", made[1], "not an answer", None)])
    finally:
        lane.drain()
    assert Job.objects.get(pk=made[0].pk).status == Job.DOWNLOADING
    assert Job.objects.get(pk=made[1].pk).status == Job.RUNNING
    assert lane.in_flight["apimart"] == 0
