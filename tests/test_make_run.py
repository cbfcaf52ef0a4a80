"""`make run` as a person runs it: it serves, and Ctrl-C (SIGINT to its process group) or SIGTERM
stops the web server, the worker cluster and everything else it started within 10 seconds, with
no traceback and no process left behind."""

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def session_members(session_id):
    """Pids of every live process in the session (zombies already count as gone)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        state, session = fields[0], int(fields[3])
        if session == session_id and state != "Z":
            members.append(int(entry.name))
    return members


def wait_until_serving(port, process, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "make run ended before serving"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("make run did not serve /healthz in time")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_make_run_serves_and_stops_cleanly(tmp_path, stop_signal):
    port = free_port()
    env = {
        key: value for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "MEDIA_ROOT", "STUDIO_Q_NAME")
    }
    env.update(STUDIO_VAR_DIR=str(tmp_path), PORT=str(port))
    log = (tmp_path / "make-run.log").open("w+")
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"PORT={port}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_until_serving(port, make)
        started = time.monotonic()
        os.killpg(make.pid, stop_signal)  # what the terminal does on Ctrl-C, or a service manager
        make.wait(timeout=10)
        took = time.monotonic() - started
        deadline = time.monotonic() + 1
        while session_members(make.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # the last exits are being reaped
        assert session_members(make.pid) == [], "processes left behind"
        assert took < 10
        log.seek(0)
        output = log.read()
        assert "Traceback" not in output, output[-3000:]
        assert "Image Studio stopped." in output
    finally:
        if make.poll() is None or session_members(make.pid):
            os.killpg(make.pid, signal.SIGKILL)
        log.close()
