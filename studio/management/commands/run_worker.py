"""The worker cluster as `make run` starts it: django-q2's qcluster, but a stop that arrives while
the cluster is still starting is a stop, not a crash.

A SIGTERM or SIGINT that reaches the cluster's processes before its sentinel has installed its
signal handlers kills the sentinel by that signal, and django-q2 reports it as a failed start
with a traceback. Any other failure to start is still raised.
"""

import signal

from django.conf import settings
from django.core.management.base import BaseCommand
from django_q.cluster import Cluster

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Command(BaseCommand):
    help = "Run a django-q2 worker cluster (make run's worker)."

    def handle(self, *args, **options):
        settings.SECRET_KEY  # noqa: B018 - as qcluster does: signing needs it, fail early without it
        cluster = Cluster()
        try:
            cluster.start()
        except RuntimeError:
            if cluster.sentinel is not None and -cluster.sentinel.exitcode in STOP_SIGNALS:
                self.stdout.write("The worker was stopped while it was starting.")
                return
            raise
