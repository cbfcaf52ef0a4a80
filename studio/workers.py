"""Who is working: worker identity, named leases, and whether a worker still lives.

A lease is a row naming one holder until it expires; the poll loop and the start-up recovery
hold one so that only one of them runs at a time across every cluster. A worker is recognised
as dead only on its own host (its pid is gone, or is a zombie); elsewhere the lease's expiry
or the stale timeout speaks for it.
"""

import os
import socket
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from studio.models import Lease

POLL_LEASE = "poller"


def worker_id():
    return f"{socket.gethostname()}:{os.getpid()}"


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
    # A holder killed on this host need not be waited out.
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


def poller_is_alive():
    """Whether a poll loop holds the lease and its worker still runs."""
    holder = (
        Lease.objects.filter(name=POLL_LEASE, expires__gte=timezone.now())
        .values_list("holder", flat=True)
        .first()
    )
    return bool(holder) and not worker_is_dead(holder)


def worker_is_dead(claimed_by):
    """True when the job's worker ran on this host and its process is gone."""
    host, _, pid = claimed_by.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return is_zombie(pid)


def is_zombie(pid):
    """A worker killed with its cluster stays a zombie until init reaps it: dead all the same
    (Linux only; elsewhere we wait for the lease or the stale timeout instead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False
