"""The jobs page's poll with 20 active cards against /healthz, under the same gunicorn, in one run.

A throwaway SQLite database, one user with 20 running apimart jobs (each with a hold, the
gateway's progress, no expected time, so nothing on a card moves with the clock alone). gunicorn
runs as `make run` starts it (studio.wsgi, STUDIO_WEB_WORKERS × STUDIO_WEB_THREADS) on 127.0.0.1; no worker
cluster, so only the bench writes to the jobs. The bench logs in, reads the 20 cards' tokens from
/jobs/ as the browser does, and locust (headless, FastHttpUser, 8 users asking back to back)
drives each phase for DURATION seconds, a /healthz phase before and after each poll phase:

  healthz      GET /healthz without a session (one query), the trivial view the others are divided by
  nothing      the poll with the 20 tokens, nothing changed: 204
  progress     every job's progress written since the tokens: 20 progress parts
  cards        every job moved to downloading with its first image stored: 20 whole cards

Each poll phase is divided by the mean of the two /healthz runs around it: on a shared machine a
neighbour's load comes and goes within a run.

Each poll phase checks its answer once before the load (status, parts) and counts its SQL
queries for 1 card and for 20 (Django's test client in this process, same database).

    .venv/bin/python bench/poll_fragment.py            # --duration 10 --users 8 --port 8711
"""

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from _throwaway_django import setup_django
from _web import log_in, stop

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
USER, PASSWORD = "bench", "bench-pass"
CARDS = 20
SEEN = re.compile(r'name="seen" value="([^"]+)" data-poll-seen')


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load a phase")
    parser.add_argument("--users", type=int, default=8, help="locust users asking back to back")
    parser.add_argument("--port", type=int, default=8711)
    return parser.parse_args()


# --- the data ------------------------------------------------------------------------------


def make_jobs():
    from django.contrib.auth.models import User
    from django.db import transaction
    from django.utils import timezone

    from studio import ledger
    from studio.gateways.request import ImageRequest
    from studio.models import Job

    user = User.objects.create_user(USER, "", PASSWORD)
    request = ImageRequest(gateway="apimart", model="wan2.7-image", mode="text-to-image",
                           prompt="A lighthouse at dusk", n=2)
    quote = ledger.quote(user, "apimart", "wan2.7-image", 2)
    made = []
    for number in range(CARDS):
        with transaction.atomic():
            job = Job.objects.create(
                owner=user, gateway="apimart", model="wan2.7-image", mode="text-to-image",
                prompt=f"A lighthouse at dusk, take {number + 1}", request=request.to_dict(), n_requested=2,
                status=Job.RUNNING, progress=40, submitted=timezone.now(), remote_task_id=f"bench-{number}",
                unit_price=quote.price, hold_amount=quote.total,
            )
            ledger.hold(job)
        made.append(job)
    return user, made


def every_job_progressed(jobs):
    from django.utils import timezone

    from studio.models import Job

    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(progress=41, updated=timezone.now())


def every_job_downloading(jobs):
    """As a download leaves it: downloading, its first image stored (thumbnail and all)."""
    import io

    from django.utils import timezone
    from PIL import Image

    from studio import media
    from studio.models import Job

    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(
        status=Job.DOWNLOADING, progress=100, updated=timezone.now())
    for job in jobs:
        out = io.BytesIO()
        Image.new("RGB", (640, 480), (30, 90, 200)).save(out, "PNG")
        media.store_result(job, {"index": 0, "revised_prompt": ""}, out.getvalue())


def query_counts(user, seen):
    """SQL queries of one poll with the first card's token and with all of them (of /healthz
    without `seen`)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1", HTTP_HX_REQUEST="true")
    if seen:
        client.force_login(user)
    counts = []
    for tokens in (seen[:1], seen) if seen else ((),):
        with CaptureQueriesContext(connection) as queries:
            client.get("/jobs/poll/", {"seen": tokens}) if seen else client.get("/healthz")
        counts.append(len(queries))
    return counts


# --- the server ----------------------------------------------------------------------------


def server_env(var_dir):
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "STUDIO_TESTING", "DEBUG")
           and not (key.startswith("STUDIO_") and key.endswith("_API_KEY"))}  # never upstream
    env.update(
        STUDIO_VAR_DIR=var_dir,
        DATABASE_URL=f"sqlite:///{var_dir}/bench.sqlite3",
        MEDIA_ROOT=f"{var_dir}/media",
        DJANGO_SETTINGS_MODULE="studio.settings",
        STUDIO_SIMULATOR="1",
        STUDIO_LOG_LEVEL="WARNING",
    )
    return env


def start_gunicorn(env, port, log):
    # The web half of `make run` (studio/management/commands/run_studio.py), without its log.
    from studio.management.commands.run_studio import web_processes

    command = [str(BIN / "gunicorn"), "studio.wsgi", "-b", f"127.0.0.1:{port}", *web_processes(),
               "--timeout", "360", "--log-level", "warning", "--graceful-timeout", "3"]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def wait_until_up(base, master):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if master.poll() is not None:
            raise SystemExit(f"gunicorn exited with {master.returncode}")
        try:
            requests.get(f"{base}/healthz", timeout=5)
            return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still booting
            time.sleep(0.2)
    raise SystemExit("gunicorn did not answer within 60 s")


# --- the load ------------------------------------------------------------------------------


def poll_path(seen):
    from urllib.parse import urlencode

    return "/jobs/poll/?" + urlencode([("seen", token) for token in seen])


def check(session, base, path, status, parts):
    """The answer a phase is meant to measure, once, before the load: its status and parts."""
    answer = session.get(base + path, headers={"HX-Request": "true"}, timeout=10, allow_redirects=False)
    html = answer.text
    found = {"cards": len(re.findall(r'<article class="job-card', html)),
             "progress parts": len(re.findall(r'id="job-progress-\d+" hx-swap-oob', html))}
    if answer.status_code != status or any(found[name] != count for name, count in parts.items()):
        raise SystemExit(f"{path[:40]}…: HTTP {answer.status_code}, {found}; expected {status}, {parts}")
    return len(answer.content)


def load(base, path, status, cookie, args, var_dir, name):
    """Run locust on `path`; (requests per second, p99 ms, failures)."""
    prefix = f"{var_dir}/locust-{name}"
    env = {**os.environ, "BENCH_PATH": path, "BENCH_COOKIE": cookie, "BENCH_STATUS": str(status)}
    command = [str(BIN / "locust"), "-f", str(ROOT / "bench" / "_poll_locust.py"), "--headless",
               "--host", base, "-u", str(args.users), "-r", str(args.users), "-t", f"{args.duration}s",
               "--csv", prefix, "--only-summary", "--loglevel", "ERROR", "--exit-code-on-error", "0"]
    with open(f"{prefix}.log", "w") as log:
        subprocess.run(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    with open(f"{prefix}_stats.csv") as stats:
        row = next(row for row in csv.DictReader(stats) if row["Name"] == "Aggregated")
    return float(row["Requests/s"]), float(row["99%"]), int(row["Failure Count"]), int(row["Request Count"])


def main():
    args = arguments()
    var_dir = tempfile.mkdtemp(prefix="studio-poll-bench-")
    master = None
    try:
        env = server_env(var_dir)
        setup_django(var_dir, STUDIO_SIMULATOR="1")
        from django.core.management import call_command

        call_command("collectstatic", "--noinput", verbosity=0)
        # /healthz, the baseline, answers 200 only with a live worker cluster: one whose heartbeat
        # stays fresh for the whole run (no cluster runs here; the poll needs none).
        from datetime import timedelta

        from django.utils import timezone

        from studio.models import Heartbeat

        Heartbeat.objects.create(identity="bench:1", host="bench", beat=timezone.now() + timedelta(days=1))
        user, jobs = make_jobs()
        base = f"http://127.0.0.1:{args.port}"
        log = open(f"{var_dir}/gunicorn.log", "w")
        master = start_gunicorn(env, args.port, log)
        wait_until_up(base, master)
        session = log_in(base, USER, PASSWORD)
        cookie = "; ".join(f"{name}={value}" for name, value in session.cookies.items())
        seen = SEEN.findall(session.get(f"{base}/jobs/", timeout=10).text)
        if len(seen) != CARDS:
            raise SystemExit(f"the jobs page shows {len(seen)} active cards, not {CARDS}")
        path = poll_path(seen)

        healthz = ("healthz", "/healthz", 200, None, None)
        phases = [
            healthz,
            ("nothing", path, 204, {"cards": 0, "progress parts": 0}, None),
            healthz,
            ("progress", path, 200, {"cards": 0, "progress parts": CARDS}, every_job_progressed),
            healthz,
            ("cards", path, 200, {"cards": CARDS, "progress parts": 0}, every_job_downloading),
            healthz,
        ]
        results = []
        for name, target, status, parts, change in phases:
            if change:
                change(jobs)
            size = check(session, base, target, status, parts) if parts is not None else None
            queries = query_counts(user, seen if parts is not None else None)
            # /healthz as a load balancer asks it: no session (so no session or user query).
            session_cookie = cookie if parts is not None else ""
            rate, p99, failures, count = load(base, target, status, session_cookie, args, var_dir, name)
            results.append((name, rate, p99, failures, count, queries, size))
            print(f"  {name:9} {rate:8.1f} req/s  p99 {p99:6.0f} ms  ({count} requests, {failures} failed)",
                  flush=True)
        print(f"\n{CARDS} active cards, {args.users} locust users, {args.duration} s a phase; each poll "
              "phase is divided by the mean of the /healthz runs just before and after it\n")
        print("| phase | req/s | p99 ms | /healthz around it, req/s | ÷ /healthz | queries, 1 card / 20 cards"
              " | answer bytes | failed |")
        print("|---|---|---|---|---|---|---|---|")
        for index in range(1, len(results), 2):
            name, rate, p99, failures, count, queries, size = results[index]
            before, after = results[index - 1][1], results[index + 1][1]
            ratio = rate / ((before + after) / 2)
            print(f"| {name} | {rate:.1f} | {p99:.0f} | {before:.0f}, {after:.0f} | {ratio:.2f} | "
                  f"{queries[0]} / {queries[1]} | {size} | {failures} of {count} |")
        healthz_p99 = [result[2] for result in results[::2]]
        print(f"\n/healthz: p99 {min(healthz_p99):.0f}–{max(healthz_p99):.0f} ms")
    finally:
        if master is not None:
            stop(master)
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
