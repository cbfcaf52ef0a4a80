"""django-q2 entry points. Each takes ids, is safe to run twice, and hands over to jobs.*."""

from django_q.tasks import async_task

from studio import jobs, media, workers
from studio import lane as lane_module


def smoke(token):
    """Round-trips through the broker and a worker; the tests use it to prove the worker is alive."""
    return f"pong:{token}"


def submit_job(job_id):
    # The lane sends queued jobs now; kept for submit tasks queued before an upgrade.
    jobs.submit(job_id)


def download_jobs(job_ids):
    jobs.download_all(job_ids)


def download_job(job_id):
    # One job a task, as queued before an upgrade.
    jobs.download(job_id)


def make_thumbnails(image_ids):
    media.make_thumbnails(image_ids)


def lane():
    return lane_module.run()


def poll_loop():
    # The lane replaced the poll loop; kept for poll-loop tasks queued before an upgrade.
    return lane_module.run()


def watchdog():
    """Every minute (and at once when a cluster starts after downtime): resume what a dead
    worker left, requeue lost submits, and restart the lane if it died."""
    return jobs.recover()


def on_worker_start(sender, proc_name=None, **kwargs):
    """A cluster (re)started: recover at once rather than at the scheduler's first pass, which
    django-q2 makes about 30 s after start. The lease keeps it to one run for all workers.

    Each worker process also beats for its cluster from now on, and looks for work that dead
    workers left (jobs.recover_orphans) with every beat."""
    workers.join_cluster(also=jobs.recover_orphans)
    recover_at_start()


def recover_at_start():
    if workers.take_lease("startup-recovery", 30, renew=False):
        async_task("studio.tasks.watchdog", task_name="watchdog-at-start")
