"""A huge-but-small upload against a web worker: memory of the real server while it reads one.

An 8000×8000 RGBA PNG of a single colour with a few transparent pixels compresses to about
250 KB but decodes to 256 MB (8000 px a side is the largest input the gateways take). The drop
zone's endpoint (/create/upload/) decodes every upload once (media.read_facts) to prove it is
an image and to look for transparency.

The real server runs on 127.0.0.1 as a subprocess: gunicorn with one worker process of 8
threads, a throwaway SQLite database and media folder, the simulator on and no Redis. The
bench logs in as a browser would and posts the file as the drop zone does (htmx). It prints the
worker's resident memory from /proc/<pid>/status: VmRSS (now) and VmHWM (peak), the peak reset
before each phase (/proc/<pid>/clear_refs) so each phase has a peak of its own. The baseline
is eight 640×480 PNGs at once, in the same run. MB are MiB (the kB of /proc divided by 1024).

    .venv/bin/python bench/upload_memory.py
"""

import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from _web import log_in, stop
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HUGE_SIDE = 8000
SMALL_SIZE = (640, 480)
PARALLEL = 8
OFFER = "apimart/wan2.7-image"
USER, PASSWORD = "bench", "bench-pass"
MB = 1024 * 1024


# --- images --------------------------------------------------------------------------------


def huge_png():
    """8000² RGBA, one colour and a few transparent pixels: about 250 KB of PNG."""
    image = Image.new("RGBA", (HUGE_SIDE, HUGE_SIDE), (200, 120, 40, 255))
    for xy in ((0, 0), (HUGE_SIDE // 2, HUGE_SIDE // 3), (HUGE_SIDE - 1, HUGE_SIDE - 1)):
        image.putpixel(xy, (0, 0, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def small_png():
    image = Image.new("RGB", SMALL_SIZE)
    image.putdata([((x * 7) % 256, (y * 5) % 256, (x * y) % 256)
                   for y in range(SMALL_SIZE[1]) for x in range(SMALL_SIZE[0])])
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


# --- the server ----------------------------------------------------------------------------


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(var_dir):
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT")
           and not (key.startswith("STUDIO_") and key.endswith("_API_KEY"))}  # never upstream
    env.update(
        STUDIO_VAR_DIR=var_dir,
        DJANGO_SETTINGS_MODULE="studio.settings",
        STUDIO_SIMULATOR="1",
        STUDIO_TESTING="1",  # static files from the finders: no collectstatic in a temp folder
        STUDIO_LOG_LEVEL="WARNING",
    )
    return env


def prepare(env):
    """Migrate the throwaway database and create the user the bench logs in as."""
    manage = [str(BIN / "python"), str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--verbosity", "0"], env=env, cwd=ROOT, check=True)
    create = ("from django.contrib.auth.models import User; "
              f"User.objects.create_user({USER!r}, '', {PASSWORD!r})")
    subprocess.run([*manage, "shell", "-c", create], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def start_gunicorn(env, port, log):
    command = [str(BIN / "gunicorn"), "studio.wsgi", "-b", f"127.0.0.1:{port}",
               "--workers", "1", "--threads", str(PARALLEL), "--timeout", "120"]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def wait_until_up(base, master):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if master.poll() is not None:
            raise SystemExit(f"gunicorn exited with {master.returncode}")
        try:
            requests.get(f"{base}/accounts/login/", timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not answer within 30 s")


def worker_pid(master_pid):
    """The one worker: the master's child process."""
    children = []
    for children_file in Path(f"/proc/{master_pid}/task").glob("*/children"):
        children += [int(pid) for pid in children_file.read_text().split()]
    if not children:  # kernels without the children file: scan /proc for the parent id
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                lines = status.read_text().splitlines()
                fields = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
            except OSError:
                continue
            if int(fields.get("PPid", "0")) == master_pid:
                children.append(int(status.parent.name))
    if len(children) != 1:
        raise SystemExit(f"expected one gunicorn worker, found {children}")
    return children[0]


def memory(pid):
    """(VmRSS, VmHWM) of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024  # kB
    return fields["VmRSS"], fields["VmHWM"]


def reset_peak(pid):
    """VmHWM back to the current VmRSS (Linux ≥ 4.0). False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# --- the browser ---------------------------------------------------------------------------


def upload(base, cookies, name, data):
    """One drop-zone upload; returns (HTTP status, what the answer says)."""
    session = requests.Session()  # one per thread: a Session is not thread-safe
    session.cookies.update(cookies)
    answer = session.post(
        f"{base}/create/upload/",
        data={"offer": OFFER, "mode": "edit"},
        files={"file": (name, data, "image/png")},
        headers={"X-CSRFToken": cookies["csrftoken"], "HX-Request": "true", "Referer": f"{base}/create/"},
        timeout=120,
    )
    if "data-upload-id=" in answer.text:
        said = "chip"
    elif "data-problem" in answer.text:
        said = "refused: " + " ".join(line.strip() for line in answer.text.split("field-error")[1:])[:200]
    else:
        said = answer.text[:200]
    return answer.status_code, said


def phase(base, cookies, pid, name, data, count):
    """Upload `count` copies at once; returns (RSS before, RSS after, peak, seconds, answers)."""
    reset_peak(pid)
    before, _ = memory(pid)
    started = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(lambda i: upload(base, cookies, f"{name}-{i}.png", data), range(count)))
    seconds = time.perf_counter() - started
    after, peak = memory(pid)
    return before, after, peak, seconds, answers


def main():
    huge, small = huge_png(), small_png()
    var_dir = tempfile.mkdtemp(prefix="studio-bench-")
    master = None
    try:
        env = server_env(var_dir)
        prepare(env)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with open(f"{var_dir}/gunicorn.log", "wb") as log:
            master = start_gunicorn(env, port, log)
            wait_until_up(base, master)
            pid = worker_pid(master.pid)
            session = log_in(base, USER, PASSWORD)
            session.get(f"{base}/create/", timeout=30).raise_for_status()  # templates, catalog: warm
            cookies = session.cookies.get_dict()
            started_rss, _ = memory(pid)
            peak_resettable = reset_peak(pid)

            small_label = f"{PARALLEL} × {SMALL_SIZE[0]}×{SMALL_SIZE[1]} at once (baseline)"
            phases = [
                (small_label, "small", small, PARALLEL),
                (f"1 × {HUGE_SIDE}×{HUGE_SIDE}", "huge", huge, 1),
                (f"{PARALLEL} × {HUGE_SIDE}×{HUGE_SIDE} at once", "huge", huge, PARALLEL),
            ]
            results = [(label, *phase(base, cookies, pid, name, data, count))
                       for label, name, data, count in phases]

        print(f"gunicorn, 1 worker × {PARALLEL} threads, on 127.0.0.1; POST /create/upload/ "
              f"(offer {OFFER}, mode edit) as htmx")
        print(f"files: {HUGE_SIDE}×{HUGE_SIDE} RGBA PNG {len(huge) / 1024:.0f} KB "
              f"(decodes to {HUGE_SIDE * HUGE_SIDE * 4 / MB:.0f} MB), "
              f"{SMALL_SIZE[0]}×{SMALL_SIZE[1]} RGB PNG {len(small) / 1024:.0f} KB")
        print(f"worker RSS after login and one page: {started_rss:.0f} MB"
              + ("" if peak_resettable else " (VmHWM could not be reset: peaks are since start)"))
        print(f"{'phase':<32} {'RSS before':>10} {'peak':>7} {'RSS after':>10} {'peak added':>11} "
              f"{'seconds':>8}  answers")
        for label, before, after, peak, seconds, answers in results:
            said = sorted({f"{status} {text}" for status, text in answers})
            print(f"{label:<32} {before:7.0f} MB {peak:4.0f} MB {after:7.0f} MB {peak - before:+8.0f} MB "
                  f"{seconds:8.1f}  {len(answers)}× {', '.join(said)}")
        print(f"worker peak over its start: {max(r[3] for r in results) - started_rss:+.0f} MB")
    finally:
        if master is not None:
            stop(master)
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
