import time
import uuid

from django.core.management.base import BaseCommand, CommandError
from django_q.tasks import async_task, fetch


class Command(BaseCommand):
    help = "Send a smoke task through the broker and wait for a worker to answer it."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=60.0)

    def handle(self, *args, timeout, **options):
        token = uuid.uuid4().hex
        task_id = async_task("studio.tasks.smoke", token, task_name=f"smoke-{token[:8]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = fetch(task_id)
            if task is not None:
                if task.success and task.result == f"pong:{token}":
                    self.stdout.write(self.style.SUCCESS("Worker is running: a smoke task round-tripped."))
                    return
                raise CommandError(f"The smoke task failed in the worker: {task.result}")
            time.sleep(0.5)
        raise CommandError(f"No worker answered the smoke task within {timeout:.0f} seconds.")
