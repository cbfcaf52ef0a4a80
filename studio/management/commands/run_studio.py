"""`make run`'s process: the web server and one worker cluster, stopped together and quickly.

Each child runs in a process group of its own, so a Ctrl-C in the terminal reaches only this
supervisor (not every worker at once, each printing its KeyboardInterrupt). On SIGINT or SIGTERM
the supervisor asks every group to stop (SIGTERM), waits a few seconds, and kills what is left
(SIGKILL): a django-q2 cluster's parent can hang in a futex wait after SIGTERM, and nothing may
be left behind.
"""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

GRACE_SECONDS = 6.0  # then SIGKILL: the whole stop stays under 10 s


class Command(BaseCommand):
    help = "Run the web server (gunicorn) and a worker cluster until Ctrl-C or SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:8000")

    def handle(self, *args, bind, **options):
        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        gunicorn = os.path.join(os.path.dirname(python), "gunicorn")
        web = [gunicorn, "studio.wsgi", "-b", bind, *web_processes(), "--timeout", "360",
               "--access-logfile", "-", "--log-level", "warning", "--graceful-timeout", "3"]
        children = {"web": start(web), "worker": start([python, manage, "run_worker"])}
        checker = start([python, manage, "check_worker"])

        stopping = []
        signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        try:
            while not stopping:
                ended = [name for name, child in children.items() if child.poll() is not None]
                if ended:
                    self.stderr.write(f"The {ended[0]} process stopped on its own; stopping the rest.")
                    break
                time.sleep(0.2)
        finally:
            stop([*children.values(), checker])
        self.stdout.write("Image Studio stopped.")


def web_processes():
    """gunicorn's processes and threads. Threaded, so the simulator's blocking gateway does not
    starve pages; several processes, so the threads do not all wait for one GIL."""
    return ["--workers", str(settings.STUDIO_WEB_WORKERS), "--threads", str(settings.STUDIO_WEB_THREADS)]


def start(command):
    # process_group=0: a group of its own, led by the child, in this same session.
    return subprocess.Popen(command, process_group=0)


def stop(processes):
    """SIGTERM every group, wait up to GRACE_SECONDS for all of them, then SIGKILL the rest."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and any(process.poll() is None for process in running):
        time.sleep(0.1)
    for process in processes:
        # Also for a leader that has exited: its workers may still be in the group.
        signal_group(process, signal.SIGKILL)
        process.wait()


def signal_group(process, number):
    try:
        os.killpg(process.pid, number)
    except ProcessLookupError:
        pass  # the whole group is gone already
