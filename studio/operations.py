"""How the parts are doing: the health /healthz answers with, and the figures of the staff's
operations page (/review/system/)."""

import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from studio import workers
from studio.gateways import catalog
from studio.gateways.errors import ACCOUNT
from studio.models import Heartbeat, Job

OK = "ok"


def health():
    """{"ok": bool, "database": …, "broker": …, "workers": …}: each part "ok" or why not."""
    found = {"database": database_problem(), "broker": broker_problem()}
    found["workers"] = workers_problem() if not found["database"] else "unknown: the database is unreachable"
    found = {part: problem or OK for part, problem in found.items()}
    return {"ok": all(value == OK for value in found.values()), **found}


def database_problem():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return f"unreachable ({type(exc).__name__})"  # never the message: it may name the host and user
    return ""


def broker_problem():
    """Redis, when it is the broker; the ORM broker is the database, checked already."""
    if not settings.REDIS_URL:
        return ""
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
    except redis.RedisError as exc:
        return f"unreachable ({type(exc).__name__})"
    return ""


def workers_problem():
    live = Heartbeat.objects.filter(kind=Heartbeat.CLUSTER, beat__gte=workers.fresh_since()).count()
    if not live:
        return f"no worker cluster has a heartbeat from the last {settings.STUDIO_HEARTBEAT_TIMEOUT:g} s"
    return ""


# --- the operations page ---------------------------------------------------------------------


ACTIVE = [Job.QUEUED, Job.SUBMITTING, Job.RUNNING, Job.DOWNLOADING]


@dataclass
class WorkerRow:
    identity: str
    kind: str
    host: str
    started: datetime
    beat: datetime
    age: float  # seconds since the last beat
    alive: bool
    polls: bool  # one of its workers holds the poll lease


@dataclass
class GatewayRow:
    gateway: str
    jobs: int
    failed: int
    errors: dict  # error class -> percent of the hour's jobs
    median_seconds: float | None  # created -> first result
    p95_seconds: float | None
    last_account_error: Job | None


def worker_rows():
    now = timezone.now()
    fresh = workers.fresh_since()
    poller = workers.parts(workers.lease_holder(workers.POLL_LEASE))[0]
    return [
        WorkerRow(row.identity, row.kind, row.host, row.started, row.beat, (now - row.beat).total_seconds(),
                  row.beat >= fresh, row.identity == poller)
        for row in workers.heartbeats()
    ]


def queue_depth():
    now = timezone.now()
    return {
        "queued": Job.objects.filter(status=Job.QUEUED).count(),
        "due_polls": Job.objects.filter(status=Job.RUNNING, next_poll__lte=now).count(),
        "active": Job.objects.filter(status__in=ACTIVE).count(),
    }


def oldest_active_job():
    return Job.objects.filter(status__in=ACTIVE).order_by("created").select_related("owner").first()


def percentile(values, share):
    """The nearest-rank percentile of sorted `values`; None when there are none."""
    if not values:
        return None
    rank = max(1, math.ceil(share * len(values)))
    return values[rank - 1]


def gateway_rows(hours=1):
    """Per gateway, the jobs created in the last `hours`: count, error shares by class, median and
    p95 seconds to the first result; and the gateway's last account error at any time."""
    since = timezone.now() - timedelta(hours=hours)
    rows = []
    for gateway in catalog.GATEWAYS:
        recent = list(
            Job.objects.filter(gateway=gateway, created__gte=since).values("status", "error_class", "created",
                                                                              "first_result")
        )
        failed = [job for job in recent if job["status"] == Job.FAILED]
        classes = sorted({job["error_class"] or "unknown" for job in failed})
        counts = {name: sum((job["error_class"] or "unknown") == name for job in failed) for name in classes}
        errors = {name: round(100 * count / len(recent), 1) for name, count in counts.items()}
        waits = sorted((job["first_result"] - job["created"]).total_seconds() for job in recent
                       if job["first_result"])
        last_account = (Job.objects.filter(gateway=gateway, error_class=ACCOUNT)
                        .order_by("-finished", "-pk").first())
        rows.append(GatewayRow(gateway, len(recent), len(failed), errors,
                               statistics.median(waits) if waits else None, percentile(waits, 0.95),
                               last_account))
    return rows


def system():
    """Everything the operations page shows."""
    return {
        "health": health(),
        "workers": worker_rows(),
        "queue": queue_depth(),
        "oldest": oldest_active_job(),
        "gateways": gateway_rows(),
        "heartbeat_timeout": settings.STUDIO_HEARTBEAT_TIMEOUT,
    }
