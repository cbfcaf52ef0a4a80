"""The batch poller: jobs.poll_once() polling 200 running apimart jobs concurrently, against a
baseline that polls the same jobs one by one with the same adapter and applies each answer the
same way (jobs.apply_poll).

The simulator runs behind a threaded WSGI server on 127.0.0.1, in a forked process of its own
(sharing one GIL with the poller would measure the GIL), with a throwaway SQLite database.
Loopback answers in a few milliseconds, which hides what concurrency is for, so each figure is
also given with a simulated round trip to a distant gateway (a sleep in front of the simulator).
Prints seconds per sweep and the speed-up.

    .venv/bin/python bench/poller.py
"""

import logging
import multiprocessing
import os
import tempfile
import time
from datetime import timedelta

from _throwaway_django import setup_django

JOBS = 200
ROUND_TRIPS_MS = (0, 50)


def setup_django_for_poller(var_dir):
    for key in ("APIMART",):  # a real key in the environment would send the bench upstream
        os.environ.pop(f"STUDIO_{key}_API_KEY", None)
    os.makedirs(f"{var_dir}/staticfiles")  # whitenoise warns when STATIC_ROOT is missing
    setup_django(
        var_dir,
        STUDIO_SIMULATOR="1",
        STUDIO_SIMULATOR_LATENCY="3600",  # every task stays running for the whole bench
        STUDIO_DEFAULT_MONTHLY_BUDGET="",
    )
    logging.getLogger("django.server").setLevel(logging.ERROR)


class RoundTrip:
    """WSGI middleware: waits before answering, like a gateway on the other side of the world."""

    def __init__(self, app, seconds):
        self.app = app
        self.seconds = seconds  # a multiprocessing.Value the bench sets from the other process

    def __call__(self, environ, start_response):
        if self.seconds.value:
            time.sleep(self.seconds.value)
        return self.app(environ, start_response)


def start_server(round_trip):
    """The simulator on 127.0.0.1 in a forked process; returns (base URL, process)."""
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application
    from django.db import connections

    class QuietHandler(WSGIRequestHandler):
        # Headers and body go out in separate writes: with Nagle on, each answer waits ~40 ms
        # for a delayed ACK, which would swamp what is being measured.
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=True)
    server.daemon_threads = True
    server.set_app(RoundTrip(get_wsgi_application(), round_trip))
    connections.close_all()  # the child must not share the parent's database connection
    process = multiprocessing.get_context("fork").Process(target=server.serve_forever, daemon=True)
    process.start()
    server.socket.close()  # the parent's copy; the child keeps listening
    return f"http://127.0.0.1:{server.server_address[1]}", process


def make_due():
    from django.utils import timezone

    from studio.models import Job

    Job.objects.filter(status=Job.RUNNING).update(next_poll=timezone.now() - timedelta(seconds=1))


def sequential_sweep(limit=None):
    """The baseline: the same adapter, one job after the other."""
    from studio import jobs
    from studio.gateways import adapter_for
    from studio.gateways.errors import GatewayError
    from studio.models import Job

    adapter = adapter_for("apimart")
    count = 0
    for job in Job.objects.filter(status=Job.RUNNING).order_by("next_poll")[:limit]:
        try:
            state, error = adapter.poll(job.remote_task_id), None
        except GatewayError as exc:
            state, error = None, exc
        jobs.apply_poll(job, state, error)
        count += 1
    return count


def timed(sweep):
    make_due()
    started = time.perf_counter()
    polled = sweep()
    return time.perf_counter() - started, polled


def main():
    with tempfile.TemporaryDirectory(prefix="studio-bench-") as var_dir:
        setup_django_for_poller(var_dir)
        from django.conf import settings

        round_trip = multiprocessing.Value("d", 0.0)
        settings.STUDIO_SIMULATOR_URL, server = start_server(round_trip)
        try:
            run(round_trip)
        finally:
            server.terminate()
            server.join()


def run(round_trip):
    from django.contrib.auth.models import User

    from studio import jobs
    from studio.gateways.request import ImageRequest
    from studio.models import Job

    jobs.async_task = lambda *args, **kwargs: None  # no broker: the bench drives the pipeline itself
    user = User.objects.create_user("bench")
    for i in range(JOBS):
        request = ImageRequest(gateway="apimart", model="wan2.7-image", mode="text-to-image",
                               prompt=f"a lighthouse, take {i}", n=1, size_tier="1K")
        jobs.submit(jobs.create_job(user, request).pk)
    running = Job.objects.filter(status=Job.RUNNING).count()
    assert running == JOBS, f"only {running} of {JOBS} jobs are running"

    print(f"{JOBS} running apimart jobs; the simulator on 127.0.0.1 "
          "(threaded WSGI in a process of its own, SQLite)")
    print(f"{'round trip':>10} {'sequential s':>13} {'poll_once s':>12} {'speed-up':>9}")
    for round_trip_ms in ROUND_TRIPS_MS:
        round_trip.value = round_trip_ms / 1000
        timed(lambda: sequential_sweep(limit=10))  # warm the connections for both
        sequential, polled_one_by_one = timed(sequential_sweep)
        batch, polled_at_once = timed(lambda: jobs.poll_once(limit=JOBS))
        assert polled_one_by_one == polled_at_once == JOBS, (polled_one_by_one, polled_at_once)
        print(f"{round_trip_ms:>8}ms {sequential:13.2f} {batch:12.2f} {sequential / batch:8.1f}×")
    assert Job.objects.filter(status=Job.RUNNING).count() == JOBS  # nothing finished or failed

if __name__ == "__main__":
    main()
