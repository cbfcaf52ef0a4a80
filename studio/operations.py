"""How the parts are doing: the health /healthz answers with, and the figures of the staff's
operations page (/review/system/)."""

import redis
from django.conf import settings
from django.db import DatabaseError, connection

from studio import workers
from studio.models import Heartbeat

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
