"""django-q2 entry points. Each takes ids, is safe to run twice, and hands over to jobs.*."""

from studio import jobs


def smoke(token):
    """Round-trips through the broker and a worker; the tests use it to prove the worker is alive."""
    return f"pong:{token}"


def submit_job(job_id):
    jobs.submit(job_id)


def download_job(job_id):
    jobs.download(job_id)


def poll_loop():
    return jobs.poll_loop()


def watchdog():
    """Every minute (and at once when a cluster starts after downtime): resume what a dead
    worker left, requeue lost submits, and restart the poll loop if it died."""
    return jobs.recover()
