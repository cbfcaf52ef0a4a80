"""Cost review and spend page: milliseconds and SQL queries at about 100,000 ledger rows.

A throwaway SQLite database with 50 users in 5 teams (some in two), 35,000 jobs over 90 days
across every gateway × model of the catalog, and their ledger: a hold per job, then a release
and, when images came back, a charge (about 100,000 rows). The portal's clock is set to the last
evening of a month, so the pages' default range, this month, is a whole month of data.

Staff fetch /review/ grouped by user, team, gateway, model and day (this month), by user and by
day over all 90 days, and the CSV export; the user with the most jobs fetches /spend/ and its
CSV. Each page is timed against /healthz in the same run (median of 15 runs after 2 warm-ups)
with its SQL query count; then 10,000 more jobs are added and every page is counted again: the
number of queries must not grow with the data.

    .venv/bin/python bench/cost_review.py       # -v also prints each page's three slowest queries
"""

import random
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal

from _throwaway_django import setup_django

USERS = 50
TEAMS = 5
IN_TWO_TEAMS = 10  # the first ten users are in two teams, the last five in none
JOBS = 35_000
MORE_JOBS = 10_000
DAYS = 90
HEAVY_SHARE = 0.12  # of the jobs, made by the first user (the one who opens /spend/)
RUNNING = 30  # jobs still running (a hold and nothing else), made in the last hour
WARMUPS = 2
RUNS = 15
RECOUNT_RUNS = 1  # at the larger size, where the point is the query count
SEED = 2026
CENT = Decimal("0.01")
# status: weight (needs_review marks a failed job whose submit went unanswered)
STATUSES = [("succeeded", 85.0), ("failed", 6.0), ("partial", 4.0), ("cancelled", 3.5), ("unconfirmed", 1.5)]


@contextmanager
def clock_at(moment):
    """Run the portal's clock from `moment` on (django.utils.timezone.now, which localdate and
    localtime call too), so the pages' "this month" is a whole month whatever today's date."""
    from django.utils import timezone

    real_now = timezone.now
    offset = moment - real_now()
    timezone.now = lambda: real_now() + offset
    try:
        yield
    finally:
        timezone.now = real_now


def last_evening_of_previous_month():
    from django.utils import timezone

    first = timezone.localdate().replace(day=1)
    last = first - timedelta(days=1)
    zone = timezone.get_current_timezone()
    return datetime.combine(last, datetime.min.time(), tzinfo=zone).replace(hour=22)


@contextmanager
def explicit_created(*models):
    """Let bulk_create keep the `created` we set: auto_now_add would overwrite it with now."""
    fields = [model._meta.get_field("created") for model in models]
    for field in fields:
        field.auto_now_add = False
    try:
        yield
    finally:
        for field in fields:
            field.auto_now_add = True


def make_people():
    """(staff, users, teams): users in teams, a few in two, a few in none; budgets and prices."""
    from django.contrib.auth.models import Group, User

    from studio.gateways import catalog
    from studio.models import Budget, Price

    User.objects.bulk_create(
        [User(username=f"user{i:02d}", password="!") for i in range(USERS)]
        + [User(username="staff", password="!", is_staff=True)]
    )
    users = list(User.objects.filter(is_staff=False).order_by("username"))
    staff = User.objects.get(username="staff")
    Group.objects.bulk_create([Group(name=f"team {chr(65 + i)}") for i in range(TEAMS)])
    teams = list(Group.objects.order_by("name"))
    through = User.groups.through
    memberships = []
    for index, user in enumerate(users[: USERS - 5]):
        memberships.append(through(user_id=user.pk, group_id=teams[index % TEAMS].pk))
        if index < IN_TWO_TEAMS:
            memberships.append(through(user_id=user.pk, group_id=teams[(index + 1) % TEAMS].pk))
    through.objects.bulk_create(memberships)
    Budget.objects.bulk_create(
        [Budget(user=user, monthly_limit=Decimal(20 + 40 * i)) for i, user in enumerate(users[:12])]
        + [Budget(team=team, monthly_limit=Decimal(500 * (i + 1))) for i, team in enumerate(teams[:3])]
    )
    # An admin set a price for each offer whose gateway publishes none, and overrode one.
    Price.objects.bulk_create(
        [Price(gateway=offer.gateway, model=offer.model,
               unit_price=Decimal("0.45" if "pro" in offer.model else "0.25"))
         for offer in catalog.OFFERS if offer.documented_price is None]
        + [Price(gateway="apimart", model="wan2.7-image", unit_price=Decimal("0.22"))]
    )
    return staff, users, teams


def fill(users, count, seed):
    """`count` jobs over the last DAYS days and their ledger rows; (jobs, ledger rows, charged)."""
    from django.db import transaction
    from django.utils import timezone

    from studio import ledger
    from studio.gateways import catalog
    from studio.models import Job, LedgerEntry

    rng = random.Random(seed)
    prices = ledger.price_table()
    offers = [offer for offer in catalog.OFFERS if prices[(offer.gateway, offer.model)] is not None]
    assert len(offers) == len(catalog.OFFERS), "every offer needs a price for the bench"
    now = timezone.now()
    outcomes, weights = zip(*STATUSES, strict=True)
    heavy, others = users[0], users[1:]
    jobs = []
    for index in range(count):
        offer = offers[index % len(offers)]  # every gateway × model, evenly
        owner = heavy if rng.random() < HEAVY_SHARE else rng.choice(others)
        price = prices[(offer.gateway, offer.model)]
        if index < RUNNING:
            created, outcome = now - timedelta(minutes=rng.uniform(1, 60)), "running"
        else:
            created = now - timedelta(seconds=rng.uniform(0, DAYS * 86_400))
            outcome = rng.choices(outcomes, weights)[0]
        status = "failed" if outcome == "unconfirmed" else outcome
        n = rng.randint(2 if outcome == "partial" else 1, 4)
        got = n if outcome == "succeeded" else rng.randint(1, n - 1) if outcome == "partial" else 0
        job = Job(
            owner=owner, gateway=offer.gateway, model=offer.model, mode=offer.mode_keys[0],
            prompt=f"a bench prompt {index}", request={}, n_requested=n, status=status,
            unit_price=price, hold_amount=price * n, created=created,
            day=timezone.localtime(created).date(),
            finished=None if outcome == "running" else created + timedelta(seconds=rng.uniform(5, 90)),
            needs_review=outcome == "unconfirmed",
            review_reason="submit unanswered" if outcome == "unconfirmed" else "",
            error_class=("account" if rng.random() < 0.1 else "upstream") if status == "failed" else "",
            stopped_by_user=outcome == "succeeded" and rng.random() < 0.01,
        )
        job.bench_images = got
        jobs.append(job)

    charged = Decimal("0")
    with transaction.atomic(), explicit_created(Job, LedgerEntry):
        Job.objects.bulk_create(jobs, batch_size=2000)
        entries = []
        for job in jobs:
            month = ledger.month_of(job)
            entries.append(LedgerEntry(
                user=job.owner, job=job, kind=LedgerEntry.HOLD, amount=job.hold_amount,
                images=job.n_requested, note=f"{job.n_requested} × {ledger.yuan(job.unit_price)}",
                month=month, created=job.created,
            ))
            if job.status in Job.ACTIVE_STATUSES or job.needs_review:
                continue  # a hold and nothing else: running, or unconfirmed until an admin looks
            entries.append(LedgerEntry(
                user=job.owner, job=job, kind=LedgerEntry.RELEASE, amount=job.hold_amount,
                images=job.n_requested, note="hold released", month=month, created=job.finished,
            ))
            if job.bench_images:
                amount = job.unit_price * job.bench_images
                charged += amount
                entries.append(LedgerEntry(
                    user=job.owner, job=job, kind=LedgerEntry.CHARGE, amount=amount,
                    images=job.bench_images, note=f"{job.bench_images} × {ledger.yuan(job.unit_price)}",
                    month=month, created=job.finished,
                ))
        LedgerEntry.objects.bulk_create(entries, batch_size=5000)
    return len(jobs), len(entries), charged


def fetch(client, url):
    response = client.get(url)
    if response.status_code != 200:
        body = response.content[:3000].decode(errors="replace")
        sys.exit(f"GET {url} answered {response.status_code}:\n{body}")
    return response


def measure(client, url, runs=RUNS, warmups=WARMUPS):
    """(median ms, the queries of one fetch: [{"sql", "time"}]) of one page."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(warmups):
        fetch(client, url)
    with CaptureQueriesContext(connection) as capture:
        fetch(client, url)
    # Read now: the next request's request_started signal empties the connection's query log.
    queries = list(capture.captured_queries)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fetch(client, url)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), queries


def sql_ms(queries):
    """(all, slowest) milliseconds of SQL (Django logs each query's time to the millisecond)."""
    times = [float(query["time"]) * 1000 for query in queries]
    return sum(times), max(times, default=0.0)


def pages(staff_client, heavy_client, today):
    """{label: (client, url)}; the first is the baseline."""
    whole = f"start={today - timedelta(days=DAYS)}&end={today}"
    found = {"/healthz (baseline)": (heavy_client, "/healthz"),
             "/spend/badge/": (heavy_client, "/spend/badge/")}
    for by in ("user", "team", "gateway", "model", "day"):
        found[f"/review/?by={by}"] = (staff_client, f"/review/?by={by}")
    found[f"/review/ all {DAYS} days, by=user"] = (staff_client, f"/review/?{whole}&by=user")
    found[f"/review/ all {DAYS} days, by=day"] = (staff_client, f"/review/?{whole}&by=day")
    found[f"/review/export.csv {DAYS} days, team"] = (staff_client, f"/review/export.csv?{whole}&by=team")
    found["/spend/ (heavy user)"] = (heavy_client, "/spend/")
    found["/spend/export.csv (heavy user)"] = (heavy_client, "/spend/export.csv")
    return found


def run_all(found, runs=RUNS, warmups=WARMUPS):
    return {label: measure(client, url, runs, warmups) for label, (client, url) in found.items()}


def main():
    verbose = "-v" in sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="studio-bench-") as var_dir:
        setup_django(var_dir, STUDIO_TESTING="1")
        with clock_at(last_evening_of_previous_month()):
            bench(verbose)


def bench(verbose):
    from django.test import Client
    from django.utils import timezone

    from studio import review
    from studio.models import Heartbeat, Job, LedgerEntry

    started = time.perf_counter()
    # /healthz, the baseline, answers 200 only with a live worker cluster: one whose heartbeat
    # stays fresh for the whole run.
    Heartbeat.objects.create(identity="bench:1", host="bench", beat=timezone.now() + timedelta(days=1))
    staff, users, _ = make_people()
    jobs, rows, charged = fill(users, JOBS, SEED)
    built = time.perf_counter() - started
    today = timezone.localdate()
    # The review's total over every day is the money the bench wrote (to the cent: SQLite sums
    # decimals as floats, so an aggregate carries noise past the fourth decimal place).
    summed = review.totals(review.Range(today - timedelta(days=DAYS), today, "custom")).charged
    assert summed.quantize(CENT) == charged.quantize(CENT), (summed, charged)

    staff_client, heavy_client = Client(SERVER_NAME="localhost"), Client(SERVER_NAME="localhost")
    staff_client.force_login(staff)
    heavy_client.force_login(users[0])
    found = pages(staff_client, heavy_client, today)
    month = today.replace(day=1)
    this_month = Job.objects.filter(created__date__gte=month).count()
    heavy_month = Job.objects.filter(created__date__gte=month, owner=users[0]).count()
    print(f"{USERS} users in {TEAMS} teams ({IN_TWO_TEAMS} in two), {jobs:,} jobs over {DAYS} days, "
          f"{rows:,} ledger rows (¥{charged:,.2f} charged); built in {built:.1f} s.")
    print(f"Clock set to {timezone.localtime():%Y-%m-%d %H:%M}, so \"this month\" is a whole month: "
          f"{this_month:,} jobs, {heavy_month:,} of them the heavy user's (the /spend/ viewer, "
          f"{LedgerEntry.objects.filter(user=users[0]).count():,} ledger rows in all).")
    print(f"Median of {RUNS} runs after {WARMUPS} warm-ups, SQLite, in-process test Client; "
          f"SQL ms: the queries of one fetch, summed, and the slowest of them.\n")

    first = run_all(found)
    baseline = first["/healthz (baseline)"][0]
    print(f"{'page':<38} {'median ms':>10} {'× healthz':>10} {'queries':>8} {'SQL ms':>7} {'slowest':>8}")
    for label, (ms, queries) in first.items():
        total, slowest = sql_ms(queries)
        print(f"{label:<38} {ms:10.1f} {ms / baseline:9.0f}× {len(queries):8d} {total:7.0f} {slowest:8.0f}")
        if verbose:
            for query in sorted(queries, key=lambda query: -float(query["time"]))[:3]:
                print(f"    {float(query['time']) * 1000:5.0f} ms  {query['sql'][:1200]}")

    more_jobs, more_rows, _ = fill(users, MORE_JOBS, SEED + 1)
    print(f"\nAfter {more_jobs:,} more jobs over the same days ({more_rows:,} more ledger rows, "
          f"{LedgerEntry.objects.count():,} in all): queries at both sizes, and ms (one fetch)")
    second = run_all(found, runs=RECOUNT_RUNS, warmups=0)
    print(f"{'page':<38} {'queries':>12} {'ms':>16}")
    for label, (ms, queries) in second.items():
        before_ms, before_queries = first[label]
        counts = f"{len(before_queries)} → {len(queries)}"
        times = f"{before_ms:.1f} → {ms:.1f}"
        print(f"{label:<38} {counts:>12} {times:>16}")


if __name__ == "__main__":
    main()
