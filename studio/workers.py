"""Who is working: worker identity, heartbeats, named leases, and whether a worker still lives.

Every long-lived process that can hold work says it lives by writing a heartbeat row every
STUDIO_HEARTBEAT_SECONDS: a worker cluster (each of its worker processes beats for it, as
django-q2 offers no hook in the cluster's own process), or a lane started with keep_beating().
A holder is dead when its heartbeat is older than STUDIO_HEARTBEAT_TIMEOUT, whatever host it
ran on; on its own host a process that is gone is dead at once.

Identities: a cluster is "host:pid" (its sentinel's pid); a worker process in it is
"host:pid/pid" — what jobs' `claimed_by` and leases' `holder` record, so either leads to the
heartbeat that speaks for it. A process outside any cluster (a test, a shell) is "host:pid".
The host is STUDIO_WORKER_HOST (by default the real host name).

A lease is a row naming one holder until it expires; the lane and recovery hold one so
that only one of them runs at a time across every cluster.
"""

import logging
import os
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone

from studio.models import Heartbeat, Lease

log = logging.getLogger(__name__)

POLL_LEASE = "poller"
# The cluster this process works for, once it joined one (join_cluster).
CLUSTER = {"identity": ""}


# --- identity ------------------------------------------------------------------------------


def worker_host():
    return settings.STUDIO_WORKER_HOST


def worker_id():
    """This process's identity, as recorded in claims and leases."""
    if CLUSTER["identity"]:
        return f"{CLUSTER['identity']}/{os.getpid()}"
    return f"{worker_host()}:{os.getpid()}"


def parts(claimed_by):
    """(heartbeat identity, host, pid) of a worker identity; pid is "" when there is none."""
    identity, _, worker_pid = claimed_by.partition("/")
    host, _, pid = identity.rpartition(":")
    return identity, host, worker_pid or pid


# --- heartbeats ----------------------------------------------------------------------------


def beat(identity, kind=Heartbeat.CLUSTER):
    """Say that `identity` lives (a worker cluster or a lane): one row per identity."""
    now = timezone.now()
    if Heartbeat.objects.filter(identity=identity).update(beat=now):
        return
    try:
        with transaction.atomic():
            host = parts(identity)[1]
            Heartbeat.objects.create(identity=identity, kind=kind, host=host, started=now, beat=now)
    except IntegrityError:  # another process of the same cluster wrote it first
        Heartbeat.objects.filter(identity=identity).update(beat=now)


def last_beat(identity):
    return Heartbeat.objects.filter(identity=identity).values_list("beat", flat=True).first()


def fresh_since():
    """Heartbeats at or after this are alive."""
    return timezone.now() - timedelta(seconds=settings.STUDIO_HEARTBEAT_TIMEOUT)


def is_alive(identity):
    """Whether `identity` (a cluster or a lane) has beaten within the timeout."""
    last = last_beat(identity)
    return last is not None and last >= fresh_since()


def keep_beating(identity, kind=Heartbeat.CLUSTER, also=None):
    """Beat for `identity` every STUDIO_HEARTBEAT_SECONDS from a daemon thread of this process,
    then call `also()` (a cluster looks for work that dead workers left). A failed beat (the
    database away) is logged and tried again next time: the process lives on, and others take
    it for dead only if that lasts."""

    def run():
        while True:
            close_old_connections()  # this thread's connection may have broken meanwhile
            try:
                beat(identity, kind)
                if also is not None:
                    also()
            except Exception:
                log.exception("heartbeat %s failed", identity)
            time.sleep(settings.STUDIO_HEARTBEAT_SECONDS)

    thread = threading.Thread(target=run, name=f"heartbeat {identity}", daemon=True)
    thread.start()
    return thread


def join_cluster(also=None):
    """Called in each worker process a cluster spawns: from now on this process's identity is
    "host:cluster/pid", and it beats for its cluster (its parent, the django-q2 sentinel)."""
    CLUSTER["identity"] = f"{worker_host()}:{os.getppid()}"
    beat(CLUSTER["identity"])  # at once, so no claim is ever written before its heartbeat
    keep_beating(CLUSTER["identity"], also=also)


def worker_is_dead(claimed_by):
    """True when the worker that wrote `claimed_by` (a job claim or a lease holder) is dead: its
    heartbeat is older than the timeout, or it ran on this host and its process is gone.

    A claim with no heartbeat row (a process outside any cluster) is judged by its pid alone,
    and only on its own host; elsewhere the stale timeout speaks for it."""
    if not claimed_by:
        return False
    identity, host, pid = parts(claimed_by)
    last = last_beat(identity)
    if last is not None and last < fresh_since():
        return True
    return host == worker_host() and pid.isdigit() and process_is_gone(int(pid))


def process_is_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return is_zombie(pid)


def is_zombie(pid):
    """A worker killed with its cluster stays a zombie until init reaps it: dead all the same
    (Linux only; elsewhere the heartbeat's age tells)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def forget_silent(days=1):
    """Drop heartbeat rows silent for days (a restarted cluster gets a new pid, so a new row): by
    then every job they held has long passed its deadline."""
    Heartbeat.objects.filter(beat__lt=timezone.now() - timedelta(days=days)).delete()


def heartbeats():
    """Every heartbeat row, newest first, for the operations page and /healthz."""
    return list(Heartbeat.objects.order_by("-beat"))


# --- leases --------------------------------------------------------------------------------


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
    # A dead holder (its heartbeat silent, wherever it ran) need not be waited out.
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


def lease_holder(name):
    """The holder of an unexpired lease, or ""."""
    return (
        Lease.objects.filter(name=name, expires__gte=timezone.now()).values_list("holder", flat=True).first()
        or ""
    )


def poller_is_alive():
    """Whether a lane holds the poll lease and its worker still lives."""
    holder = lease_holder(POLL_LEASE)
    return bool(holder) and not worker_is_dead(holder)


def poller_died():
    """Whether the last lane's worker died (rather than handing over as it ends)."""
    holder = Lease.objects.filter(name=POLL_LEASE).values_list("holder", flat=True).first()
    return bool(holder) and worker_is_dead(holder)
