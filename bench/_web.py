"""Shared by the bench scripts that start the portal's web server: logging in as the bench's
user, and stopping a server they started.

The leading underscore keeps `make bench` from running it as a bench of its own.
"""

import signal
import subprocess

import requests


def log_in(base, username, password, timeout=10):
    """A requests.Session logged in through the login form, as a browser would be."""
    page = f"{base}/accounts/login/"
    session = requests.Session()
    session.get(page, timeout=timeout).raise_for_status()
    form = {"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]}
    answer = session.post(page, data=form, headers={"Referer": page}, timeout=timeout, allow_redirects=False)
    if answer.status_code != 302:
        raise SystemExit(f"login refused: HTTP {answer.status_code}")
    return session


def stop(process, seconds=15):
    """SIGTERM, then SIGKILL if it is still there after `seconds`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
