"""The pipeline at gateway speed: the portal against a plain client, same simulator, same sitting.

The portal runs as `make run` runs it: `manage.py run_studio` (gunicorn, STUDIO_WEB_WORKERS ×
STUDIO_WEB_THREADS, and one django-q2 cluster), all on 127.0.0.1. The simulator, with a fixed latency
(STUDIO_SIMULATOR_LATENCY), is the same Django project served by a gunicorn of its own on the
next port (2 workers × SIMULATOR_THREADS threads), not the portal's /sim/: a blocking anyfast call
holds a server thread for the whole generation, and 20 of them would take every thread of the
portal's gunicorn (pages, polls and downloads would then wait for the gateway's threads, which a
real gateway does not do). The database is a throwaway one: SQLite in a temp folder with the ORM
broker by default; with DATABASE_URL set to PostgreSQL, a database of its own created on that
server and dropped at the end, and with REDIS_URL the Redis broker under a Q cluster name of its
own. The user has no budget limit. Both servers are started afresh for each latency; scenarios
with the same latency share them. See also Prerender (result images made while tasks run).

Each scenario runs twice, one after the other against the same simulator:
- direct: a plain client (this process, one thread per job, as a small script would) posts the
  gateway's own request (the body the portal's adapter sends: model, prompt, size, seed), polls
  GET /v1/tasks/{id} one second after each answer (apimart), or waits for the blocking answer
  (anyfast), then downloads every image and writes it to disk. Its job is done when the last
  file is written.
- portal: logged in as a browser would be, the create form is POSTed (as htmx) by up to
  SUBMIT_THREADS clients at once. Job status is read from the database, not from the pages:
  a job is visible when its row is final, and `Job.finished` (written with its last status, after
  its images are stored) is when its result became visible.

End to end is from the moment the client starts its submit (the form POST, or the gateway POST)
to the result being stored (visible). The visible lag is that moment minus when the simulator
completed the task (its SimTask's created + latency). Status requests are the simulator's own
count per task (SimTask.polls), divided by the time the task was followed (from its creation to
the moment its completion was seen: `Job.first_result` for the portal, the poll that said
"completed" for the direct client), per 2 s, averaged over the jobs. Upstream tasks per job are
the simulator's tasks carrying the job's prompt (each prompt is unique): it must be 1.

The sync scenario submits 20 anyfast jobs, and one second later 5 apimart jobs while those run;
it prints the wall time of the 20 (first submit to last result) and the 5's end to end, against
the async 1-job figure of the same run ("alone").

    .venv/bin/python bench/pipeline.py                     # every scenario (about 20 minutes)
    .venv/bin/python bench/pipeline.py --quick             # small versions at 3 s: a smoke check
    .venv/bin/python bench/pipeline.py --scenario hundred --scenario sync
    DATABASE_URL=postgres://… REDIS_URL=redis://… .venv/bin/python bench/pipeline.py --quick
"""

import argparse
import heapq
import logging
import math
import multiprocessing
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from _throwaway_django import setup_django
from _web import log_in
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

ROOT = Path(__file__).resolve().parent.parent
PORT = 8721  # the portal; the simulator on the next port
SIMULATOR_THREADS = 64  # per gunicorn worker process (2) of the simulator
MODEL, SIZE = "wan2.7-image", "1K"
USER, PASSWORD = "bench", "bench-pass-7391"
PRERENDER_PROCESSES = 2  # bench-side renderers of the simulator's result images (Prerender)
SUBMIT_THREADS = 32  # browsers posting the create form at once
POLL_EVERY = 1.0  # the direct client's pause between an answer and its next status request
DURING_AFTER = 1.0  # seconds after the sync jobs that the async jobs "during" them are submitted
QUICK_LATENCY = 3.0


@dataclass
class Scenario:
    name: str
    label: str
    gateway: str  # apimart (task-async) or anyfast (openai-sync, blocking)
    jobs: int
    latency: float
    during: int = 0  # apimart jobs submitted while these run


# Grouped by latency, so the portal starts three times for all of them.
SCENARIOS = [
    Scenario("one", "async, 1 job", "apimart", 1, 6),
    Scenario("hundred", "async, 100 jobs", "apimart", 100, 6),
    Scenario("sync", "sync (anyfast), 20 jobs", "anyfast", 20, 6, during=5),
    Scenario("hundred-60s", "async, 100 jobs", "apimart", 100, 60),
    Scenario("thousand", "async, 1,000 jobs", "apimart", 1000, 120),
]
QUICK_JOBS = {"one": (1, 0), "hundred": (10, 0), "sync": (4, 2), "hundred-60s": (10, 0), "thousand": (40, 0)}


def quick(scenario):
    jobs, during = QUICK_JOBS[scenario.name]
    label = scenario.label.split(",")[0] + (", 1 job" if jobs == 1 else f", {jobs} jobs")
    return Scenario(scenario.name, label, scenario.gateway, jobs, QUICK_LATENCY, during)


# --- the database --------------------------------------------------------------------------


def throwaway_database(var_dir):
    """(database URL, drop function): PostgreSQL when DATABASE_URL names it, else SQLite."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return f"sqlite:///{var_dir}/bench.sqlite3", lambda: None
    import psycopg

    parts = urlsplit(url)
    name = f"{parts.path.strip('/') or 'studio'}_pipeline_{os.getpid()}"
    server = urlunsplit(parts._replace(path="/postgres", scheme="postgresql"))
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')

    def drop():
        from django.conf import settings
        from django.db import connections

        if settings.configured:
            connections.close_all()
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit(parts._replace(path=f"/{name}")), drop


def forget_redis_keys(q_name):
    """The broker's keys of this run's cluster name (Redis only)."""
    if not os.environ.get("REDIS_URL"):
        return
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    for key in client.scan_iter(f"*{q_name}*"):
        client.delete(key)


def prepare_data():
    """The user (no budget limit: STUDIO_DEFAULT_MONTHLY_BUDGET is empty) and anyfast's price."""
    from django.contrib.auth.models import User

    from studio.models import Price

    User.objects.create_user(USER, "", PASSWORD)
    Price.objects.get_or_create(gateway="anyfast", model=MODEL, defaults={"unit_price": Decimal("0.20")})


# --- the portal ----------------------------------------------------------------------------


def start_servers(port, latency, log):
    """The simulator on port + 1 and the portal on port, both with this latency; returns
    [simulator, portal] once both answer and the worker cluster has run a task."""
    env = dict(os.environ, STUDIO_SIMULATOR_LATENCY=str(latency))
    # Plenty of threads: each blocking anyfast call holds one for the whole generation, as a
    # real gateway's would hold a connection, and the gateway must not be what runs out. Its
    # threads open a database connection per request: kept, 128 of them would take PostgreSQL's
    # max_connections (100) from the portal, which a real gateway's servers never touch.
    simulator_env = dict(env, STUDIO_DB_CONN_MAX_AGE="0")
    simulator = [str(Path(sys.executable).parent / "gunicorn"), "studio.wsgi", "-b", f"127.0.0.1:{port + 1}",
                 "--workers", "2", "--threads", str(SIMULATOR_THREADS), "--timeout", "360",
                 "--log-level", "warning"]
    portal = [sys.executable, str(ROOT / "manage.py"), "run_studio", "--bind", f"127.0.0.1:{port}"]
    servers = [subprocess.Popen(command, env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
               for command, environment in ((simulator, simulator_env), (portal, env))]
    for server, where in zip(servers, (port + 1, port), strict=True):
        wait_until_up(server, f"http://127.0.0.1:{where}/healthz", log)
    wait_for_worker()
    return servers


def wait_until_up(server, url, log):
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            raise SystemExit(f"{server.args[1]} exited with {server.returncode}; see {log.name}")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass  # not listening yet, or its workers still booting
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer within 60 s; see {log.name}")
        time.sleep(0.2)


def wait_for_worker():
    """Eight smoke tasks round-trip through the broker: the cluster is up and its workers warm."""
    from django_q.tasks import async_task, fetch

    ids = [async_task("studio.tasks.smoke", f"warm-{i}") for i in range(8)]
    deadline = time.monotonic() + 60
    while any(fetch(task_id) is None for task_id in ids):
        if time.monotonic() > deadline:
            raise SystemExit("the worker cluster did not answer within 60 s")
        time.sleep(0.2)


def stop_servers(servers):
    """SIGTERM: run_studio stops its web and worker within 10 s (it kills what is left itself),
    gunicorn its workers."""
    for server in servers:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
    for server in servers:
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            print(f"{server.args[1]} (pid {server.pid}) did not stop in 20 s: killed (children may be left)")
            server.kill()
            server.wait()


def logged_in(base):
    """Cookies of a browser logged in as USER, after a few pages to warm both web workers."""
    session = log_in(base, USER, PASSWORD, timeout=30)
    for _ in range(4):
        session.get(f"{base}/create/", timeout=30).raise_for_status()
        session.get(f"{base}/jobs/", timeout=30).raise_for_status()
    return session.cookies.get_dict()


_local = threading.local()


def portal_submit(base, cookies, gateway, prompt):
    """The create form's POST, as htmx sends it; returns when the POST started (unix time)."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()  # one per thread: a Session is not thread-safe
        _local.session.cookies.update(cookies)
    form = {"offer": f"{gateway}/{MODEL}", "mode": "text-to-image", "prompt": prompt, "n": "1",
            "size_kind": "tier", "size_tier": SIZE, "csrfmiddlewaretoken": cookies["csrftoken"]}
    headers = {"HX-Request": "true", "X-CSRFToken": cookies["csrftoken"], "Referer": f"{base}/create/"}
    started = time.time()
    answer = _local.session.post(f"{base}/create/", data=form, headers=headers, timeout=120)
    if answer.status_code != 200 or "HX-Retarget" in answer.headers:  # retargeted: the form's errors
        raise SystemExit(f"the create form refused {prompt!r}: HTTP {answer.status_code} {answer.text[:300]}")
    return started


def run_portal(base, cookies, scenario, prefix):
    """Submit the scenario's jobs through the create form, wait for them; {prompt: record}."""
    with ThreadPoolExecutor(SUBMIT_THREADS) as pool:
        submitted = in_two_waves(pool, lambda gateway, prompt: portal_submit(base, cookies, gateway, prompt),
                                 scenario, prefix)
    wait_for_jobs(prefix, len(submitted), scenario.latency)
    return portal_records(prefix, submitted)


def in_two_waves(pool, work, scenario, prefix):
    """work(gateway, prompt) for each of the scenario's jobs, then, DURING_AFTER later, for the
    async jobs during them; {prompt: what work returned}."""
    main = [(scenario.gateway, f"{prefix} main {i}") for i in range(scenario.jobs)]
    during = [("apimart", f"{prefix} during {i}") for i in range(scenario.during)]
    futures = {prompt: pool.submit(work, gateway, prompt) for gateway, prompt in main}
    if during:
        time.sleep(DURING_AFTER)
        futures |= {prompt: pool.submit(work, gateway, prompt) for gateway, prompt in during}
    return {prompt: future.result() for prompt, future in futures.items()}


def wait_for_jobs(prefix, count, latency):
    from studio.models import Job

    jobs = Job.objects.filter(prompt__startswith=prefix)
    deadline = time.monotonic() + 2 * latency + 120 + count
    active = jobs.filter(status__in=Job.ACTIVE_STATUSES)
    while jobs.count() < count or active.exists():
        if time.monotonic() > deadline:
            print(f"  gave up waiting: {active.count()} jobs still active")
            return
        time.sleep(0.5)


def portal_records(prefix, submitted):
    from django.db.models import Min

    from studio.models import Job

    records = {}
    rows = Job.objects.filter(prompt__startswith=prefix).annotate(stored=Min("images__created")).values(
        "prompt", "status", "error_message", "created", "submitted", "first_result", "stored", "finished"
    )
    for row in rows.iterator():
        succeeded = row["status"] == "succeeded"
        done = row["finished"].timestamp() if row["finished"] and succeeded else None
        seen = row["first_result"] or row["finished"]
        records[row["prompt"]] = {
            "submitted": submitted[row["prompt"]],
            "done": done,
            "seen": seen.timestamp() if seen else None,
            # A job that did not succeed is counted with its reason, so a failed run says why.
            "status": row["status"] if succeeded else f"{row['status']} ({row['error_message'][:100]})",
            # The portal's own stages, for where the time goes.
            "stages": [stamp and stamp.timestamp() for stamp in
                       (row["created"], row["submitted"], seen, row["stored"], row["finished"])],
        }
    return records


STAGES = ("form → job row", "job row → sent", "seen → first image stored", "stored → finished")


def stages(records):
    """p50/p95 of each stage of the portal's jobs that succeeded: [(stage, p50, p95)]."""
    spans = {stage: [] for stage in STAGES}
    for record in records.values():
        if record["done"] is None or None in record["stages"]:
            continue
        created, sent, seen, stored, finished = record["stages"]
        for stage, (start, end) in zip(STAGES, [(record["submitted"], created), (created, sent),
                                               (seen, stored), (stored, finished)], strict=True):
            spans[stage].append(end - start)
    return [(stage, percentile(values, 0.5), percentile(values, 0.95))
            for stage, values in spans.items() if values]


# --- the direct client ---------------------------------------------------------------------


def direct_job(sim, gateway, prompt, folder):
    """The plain script for one job: submit, poll every second, download every image to disk."""
    session = requests.Session()
    # A status request or download that meets a dropped keep-alive connection (the server closed
    # it as the request left) is sent again, as any client library would; the submit is not.
    retries = Retry(total=3, allowed_methods={"GET"}, backoff_factor=0)
    session.mount("http://", HTTPAdapter(max_retries=retries))
    headers = {"Authorization": "Bearer bench"}
    body = {"model": MODEL, "prompt": prompt, "size": SIZE, "seed": random.randrange(2**31)}
    record = {"submitted": time.time(), "done": None, "seen": None, "status": "failed"}
    try:
        answer = session.post(f"{sim}/{gateway}/v1/images/generations", json=body, headers=headers,
                              timeout=600)
        answer.raise_for_status()
        if gateway == "anyfast":
            urls = [entry["url"] for entry in answer.json()["data"]]
        else:
            task_id = answer.json()["data"][0]["task_id"]
            while True:
                time.sleep(POLL_EVERY)
                answer = session.get(f"{sim}/{gateway}/v1/tasks/{task_id}?language=en", headers=headers,
                                     timeout=60)
                data = answer.json()["data"] if answer.status_code == 200 else {}
                if data.get("status") == "completed":
                    break
                if data.get("status") in ("failed", "cancelled"):
                    return record
            urls = []
            for image in data["result"]["images"]:
                urls += image["url"] if isinstance(image["url"], list) else [image["url"]]
        record["seen"] = time.time()
        for index, url in enumerate(urls):
            image = session.get(url, timeout=120)
            image.raise_for_status()
            (folder / f"{prompt.replace(' ', '-')}-{index}.png").write_bytes(image.content)
        record.update(done=time.time(), status="succeeded")
    except (requests.RequestException, ValueError, KeyError) as exc:
        record["status"] = f"failed: {type(exc).__name__}"
    finally:
        session.close()
    return record


def run_direct(sim, scenario, prefix, folder):
    """The same jobs as run_portal, through the direct client: {prompt: record}."""
    with ThreadPoolExecutor(scenario.jobs + scenario.during) as pool:
        return in_two_waves(pool, lambda gateway, prompt: direct_job(sim, gateway, prompt, folder),
                            scenario, prefix)


# --- the simulator's side ------------------------------------------------------------------


def add_upstream(records, prefix):
    """Add each job's simulator tasks: how many, when the first completed, its status requests."""
    from studio.simulator.models import SimTask

    tasks = {}
    rows = SimTask.objects.filter(body__prompt__startswith=prefix).values(
        "gateway", "body", "created", "latency", "polls"
    )
    for row in rows.iterator():
        tasks.setdefault(row["body"].get("prompt"), []).append(row)
    for prompt, record in records.items():
        found = sorted(tasks.get(prompt, []), key=lambda row: row["created"])
        record["upstream"] = len(found)
        if found:
            created = found[0]["created"].timestamp()
            record["created"] = created
            record["completed"] = created + found[0]["latency"]
            record["polls"] = sum(row["polls"] for row in found)
            record["polled"] = found[0]["gateway"] != "anyfast"  # a blocking call has no status requests


class Prerender:
    """The simulator renders a result PNG on its first download (about 0.1 s of CPU for 1K, more
    on a busy machine), so a burst of completions queues behind the renderer in both runs; a real
    gateway's CDN has the file when the task completes. This thread has each task's images
    rendered into the simulator's cache (store.result_path) while the task runs, earliest
    completion first, in PRERENDER_PROCESSES processes at the lowest priority (one process could
    not keep up with 100 tasks at 6 s), skipping tasks due within a second (the simulator then
    renders on demand, as without it)."""

    def __init__(self, enabled=True):
        self.enabled = enabled
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def __enter__(self):
        if self.enabled:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.enabled:
            self.thread.join()

    def loop(self):
        from django.db import connection

        from studio.simulator import rendering, store
        from studio.simulator.models import SimTask

        pending = []  # (completes at, task id), a heap: the earliest completion first
        rendering_now = {}  # future -> the path its PNG goes to
        last_id = 0
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        # At the lowest priority: a real gateway renders on its own machines, so here the
        # renderers take only CPU that the portal (or the direct client) leaves idle.
        with ProcessPoolExecutor(PRERENDER_PROCESSES, mp_context=context,
                                 initializer=os.nice, initargs=(19,)) as pool:
            while not self.stop.is_set():
                new = SimTask.objects.filter(id__gt=last_id).only("id", "created", "latency").order_by("id")
                for task in new:
                    heapq.heappush(pending, (task.created.timestamp() + task.latency, task.id))
                    last_id = task.id
                while pending and len(rendering_now) < 2 * PRERENDER_PROCESSES:
                    completes, task_id = heapq.heappop(pending)
                    if completes < time.time() + 1:
                        continue  # too late: the simulator renders it on demand
                    task = SimTask.objects.get(id=task_id)
                    for index in range(task.result_count):
                        path = store.result_path(task, index)
                        rendering_now[pool.submit(rendering.render_png, store.spec_for(task, index))] = path
                if not rendering_now:
                    self.stop.wait(0.2)
                    continue
                done, _ = wait(rendering_now, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    path = rendering_now.pop(future)
                    if not path.exists():
                        store.keep_result_png(path, future.result())
            for future in rendering_now:
                future.cancel()
        connection.close()


# --- figures -------------------------------------------------------------------------------


def percentile(values, share):
    """Nearest rank: the smallest value with at least `share` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def figures(records):
    """p50/p95 of end to end and lag, status requests per job per 2 s, upstream tasks, outcomes."""
    done = [r for r in records.values() if r["done"] is not None and "completed" in r]
    if not done:
        return None
    ends = [r["done"] - r["submitted"] for r in done]
    lags = [r["done"] - r["completed"] for r in done]
    # Of the lag, how much passed before the portal (or the client) saw the task complete.
    seen_lags = [r["seen"] - r["completed"] for r in done if r["seen"]]
    cadence = [2 * r["polls"] / (r["seen"] - r["created"])
               for r in done if r["polled"] and r["seen"] and r["seen"] > r["created"]]
    statuses = {}
    for record in records.values():
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
    return {
        "n": len(records),
        "end": (percentile(ends, 0.5), percentile(ends, 0.95)),
        "lag": (percentile(lags, 0.5), percentile(lags, 0.95)),
        "seen_lag": (percentile(seen_lags, 0.5), percentile(seen_lags, 0.95)) if seen_lags else None,
        "wall": max(r["done"] for r in done) - min(r["submitted"] for r in records.values()),
        "cadence": sum(cadence) / len(cadence) if cadence else None,
        "upstream": sorted({r.get("upstream", 0) for r in records.values()}),
        "statuses": statuses,
    }


def split(records, group):
    return {prompt: record for prompt, record in records.items() if f" {group} " in prompt}


def pair(a, b, unit="s", digits=1):
    return f"{a:.{digits}f} / {b:.{digits}f}{unit and ' ' + unit}"


def describe(side, found):
    if found is None:
        return f"  {side:<7} no job finished"
    cadence = "—" if found["cadence"] is None else f"{found['cadence']:.2f}"
    upstream = "–".join(str(n) for n in found["upstream"])
    outcomes = ", ".join(f"{count} {status}" for status, count in sorted(found["statuses"].items()))
    seen = f" (seen after {pair(*found['seen_lag'])})" if found["seen_lag"] else ""
    return (f"  {side:<7} end to end p50/p95 {pair(*found['end'])}   "
            f"lag p50/p95 {pair(*found['lag'])}{seen}   "
            f"wall {found['wall']:.1f} s   status req/job/2 s {cadence}   upstream tasks/job {upstream}   "
            f"({outcomes})")


def ratios(portal, direct):
    if portal is None or direct is None:
        return "—"
    return pair(portal["end"][0] / direct["end"][0], portal["end"][1] / direct["end"][1], unit="", digits=2)


def report(scenario, portal, direct, alone):
    """Print the scenario's figures; returns its rows for the summary."""
    rows = []
    groups = [("main", f"{scenario.label}, {scenario.latency:g} s")]
    if scenario.during:
        groups.append(("during", f"async, {scenario.during} jobs during them"))
    for group, label in groups:
        mine, theirs = figures(split(portal, group)), figures(split(direct, group))
        print(f"{label} ({'apimart' if group == 'during' else scenario.gateway})")
        print(describe("portal", mine))
        print(describe("direct", theirs))
        print(f"  portal ÷ direct, end to end p50/p95: {ratios(mine, theirs)}")
        found = stages(split(portal, group))
        if found:
            parts = [f"{stage} {pair(a, b, digits=2)}" for stage, a, b in found]
            print("  portal stages p50/p95: " + ";  ".join(parts))
        if scenario.gateway == "anyfast" and group == "main" and mine and theirs:
            print(f"  wall: portal {mine['wall']:.1f} s, direct {theirs['wall']:.1f} s, "
                  f"{mine['wall'] / theirs['wall']:.2f}× direct")
        if group == "during" and alone:
            print(f"  alone (async, 1 job, this run): portal {alone['end'][0]:.1f} s")
        rows.append((label, mine, theirs))
    return rows


def summary(rows):
    print()
    print("| scenario | portal p50 / p95 | direct p50 / p95 | portal ÷ direct | portal lag p50 / p95 "
          "| status req/job/2 s portal (direct) | upstream tasks/job | wall portal ÷ direct |")
    print("|---|---|---|---|---|---|---|---|")
    for label, mine, theirs in rows:
        if mine is None or theirs is None:
            print(f"| {label} | — | — | — | — | — | — | — |")
            continue
        cadence = "—" if mine["cadence"] is None else f"{mine['cadence']:.2f} ({theirs['cadence'] or 0:.2f})"
        upstream = "–".join(str(n) for n in mine["upstream"])
        print(f"| {label} | {pair(*mine['end'])} | {pair(*theirs['end'])} | {ratios(mine, theirs)} "
              f"| {pair(*mine['lag'])} | {cadence} | {upstream} | {mine['wall'] / theirs['wall']:.2f} |")


def peak_memory_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- the run -------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=[s.name for s in SCENARIOS],
                        help="run only this scenario (repeatable); all by default")
    parser.add_argument("--quick", action="store_true", help=f"small versions, all at {QUICK_LATENCY:g} s")
    parser.add_argument("--port", type=int, default=PORT, help="the portal's (the simulator's is the next)")
    parser.add_argument("--no-prerender", action="store_true",
                        help="leave result images to be rendered on their first download (see Prerender)")
    args = parser.parse_args()
    chosen = [s for s in SCENARIOS if not args.scenario or s.name in args.scenario]
    if args.quick:
        chosen = [quick(s) for s in chosen]

    # Stopped from outside (SIGTERM, or SIGINT even when started with nohup), the servers are
    # still stopped and the throwaway database dropped: both end in an exception here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))
    for key in list(os.environ):
        if key.startswith("STUDIO_") and key.endswith("_API_KEY"):
            del os.environ[key]  # a real key would send the bench upstream
    var_dir = tempfile.mkdtemp(prefix="studio-bench-pipeline-")
    q_name = f"bench-pipeline-{uuid.uuid4().hex[:8]}"
    database_url, drop_database = throwaway_database(var_dir)
    try:
        os.makedirs(f"{var_dir}/staticfiles")  # whitenoise warns when STATIC_ROOT is missing
        setup_django(
            var_dir,
            database_url=database_url,
            STUDIO_SIMULATOR="1",
            STUDIO_SIMULATOR_URL=f"http://127.0.0.1:{args.port + 1}",
            STUDIO_DEFAULT_MONTHLY_BUDGET="",
            STUDIO_TESTING="1",  # static files from the finders: no collectstatic in a temp folder
            STUDIO_Q_NAME=q_name,
        )
        logging.getLogger("django-q").setLevel(logging.WARNING)  # no line per smoke task enqueued
        prepare_data()
        run(args.port, chosen, var_dir, prerender=not args.no_prerender)
    finally:
        try:
            drop_database()
            forget_redis_keys(q_name)
        finally:
            shutil.rmtree(var_dir, ignore_errors=True)


def run(port, chosen, var_dir, prerender):
    from django.conf import settings
    from django.db import connection

    base, sim = f"http://127.0.0.1:{port}", f"{settings.STUDIO_SIMULATOR_URL}/sim"
    folder = Path(var_dir) / "direct"
    folder.mkdir()
    broker = "Redis" if settings.REDIS_URL else "ORM"
    print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; Python {platform.python_version()}; "
          f"{connection.vendor} + {broker} broker; "
          f"manage.py run_studio on {base}, the simulator on {settings.STUDIO_SIMULATOR_URL}/sim/ "
          f"(gunicorn, 2 × {SIMULATOR_THREADS} threads); {MODEL} {SIZE}, n=1; "
          f"result images {'rendered while tasks run' if prerender else 'rendered on first download'}")
    rows, alone, servers, latency = [], None, [], None
    log = open(Path(var_dir) / "run_studio.log", "wb")  # noqa: SIM115 - kept open across portal restarts
    try:
        for scenario in chosen:
            if scenario.latency != latency:
                stop_servers(servers)
                latency = scenario.latency
                servers = start_servers(port, latency, log)
                cookies = logged_in(base)
            run_id = uuid.uuid4().hex[:6]
            print(f"\n== {scenario.name}: {scenario.label}, {scenario.latency:g} s generation", flush=True)
            with Prerender(enabled=prerender):
                direct = run_direct(sim, scenario, f"bench {run_id} direct", folder)
                mine = run_portal(base, cookies, scenario, f"bench {run_id} portal")
            add_upstream(direct, f"bench {run_id} direct")
            add_upstream(mine, f"bench {run_id} portal")
            rows += report(scenario, mine, direct, alone)
            if scenario.name == "one":
                alone = figures(mine)
            shutil.rmtree(folder)  # the direct client's files: checked, not kept
            folder.mkdir()
    except BaseException:
        log.flush()
        tail = (Path(var_dir) / "run_studio.log").read_text(errors="replace").splitlines()[-30:]
        print("run_studio's last lines:\n" + "\n".join(tail))
        raise
    finally:
        stop_servers(servers)
        log.close()
    summary(rows)
    print(f"\nthis process's peak memory (direct client, bookkeeping): {peak_memory_mb():.0f} MB")


if __name__ == "__main__":
    main()
