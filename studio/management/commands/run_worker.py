"""The worker cluster as `make run` starts it: django-q2's qcluster, but a stop that arrives while
the cluster is still starting is a stop, not a crash.

A SIGTERM or SIGINT that reaches the cluster's processes before its sentinel has installed its
signal handlers kills the sentinel by that signal, and django-q2 reports it as a failed start
with a traceback; one that reaches the cluster's own process before the sentinel exists finds
nothing to stop (StudioCluster). Any other failure to start is still raised.
"""

import signal

from django.conf import settings
from django.core.management.base import BaseCommand
from django_q.cluster import Cluster

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StoppedWhileStarting(Exception):
    pass


class StudioCluster(Cluster):
    """django-q2's cluster, but a stop signal that arrives before its sentinel process runs ends
    the start (its own handler would find no sentinel to stop, and crash or lose the signal)."""

    def sig_handler(self, signum, frame):
        if self.sentinel is None or self.sentinel.pid is None:
            raise StoppedWhileStarting
        super().sig_handler(signum, frame)


class Command(BaseCommand):
    help = "Run a django-q2 worker cluster (make run's worker)."

    def handle(self, *args, **options):
        settings.SECRET_KEY  # noqa: B018 - as qcluster does: signing needs it, fail early without it
        cluster = StudioCluster()
        try:
            cluster.start()
        except StoppedWhileStarting:
            self.stdout.write("The worker was stopped while it was starting.")
        except RuntimeError:
            if cluster.sentinel is not None and -cluster.sentinel.exitcode in STOP_SIGNALS:
                self.stdout.write("The worker was stopped while it was starting.")
                return
            raise
