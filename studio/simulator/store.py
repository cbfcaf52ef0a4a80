"""Simulated tasks in the database: creating them, deriving their state from the clock, billing
them once, and the counters tests read.

A task's status is never stored as it moves: it is computed from created + latency and the
fault, so the web server, the worker and a restarted server all see the same task. Only a
status_override (tests, admin) and billing are written after creation.
"""

import math
import os
import secrets
import string
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from studio.simulator import faults
from studio.simulator.models import SimRequest, SimTask
from studio.simulator.rendering import Spec, render_png

RESULT_LIFETIME = 24 * 3600  # result URLs expire like the real ones
PENDING_SHARE = 0.1  # the first tenth of a task's time it reports "pending", then "processing"
KEPT_REQUESTS = 50  # received bodies kept per gateway


def latency():
    # Read at request time so tests can change it with the settings fixture.
    return float(settings.STUDIO_SIMULATOR_LATENCY)


def timeout_sleep():
    return float(settings.STUDIO_SIMULATOR_TIMEOUT_SLEEP)


def record_request(gateway, body):
    received = SimRequest.objects.create(gateway=gateway, body=body)
    stale = (
        SimRequest.objects.filter(gateway=gateway)
        .order_by("-id")
        .values_list("id", flat=True)[KEPT_REQUESTS:]
    )
    SimRequest.objects.filter(id__in=list(stale)).delete()
    return received


def answered(received, status):
    SimRequest.objects.filter(id=received.id).update(status=status)


def last_request(gateway):
    received = SimRequest.objects.filter(gateway=gateway).order_by("-id").first()
    return received.body if received else None


def recent_requests(gateway, limit=20):
    return list(SimRequest.objects.filter(gateway=gateway).order_by("-id")[:limit])


def new_task_id(gateway, created):
    if gateway == "foxapi":
        tail = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
        return f"task-unified-{int(created)}-{tail}"
    # apimart/gccai look like ULIDs ("task_01HX…"); anyfast has no task ids, ours are internal.
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    stamp = int(created * 1000)
    head = "".join(alphabet[(stamp >> (5 * i)) & 31] for i in reversed(range(10)))
    tail = "".join(secrets.choice(alphabet) for _ in range(16))
    return f"{'img' if gateway == 'anyfast' else 'task'}_{head}{tail}"


def create_task(gateway, body, plan, fault):
    seconds = latency() * (faults.SLOW_FACTOR if fault == "slow" else 1)
    if fault == "timeout" and gateway == "anyfast":
        seconds = timeout_sleep()  # the blocking call itself is what takes too long
    count = plan.n
    if fault == "partial":
        count = max(plan.n - 1, 1)  # one image missing; a single image has nothing to drop
    now = timezone.now()
    with transaction.atomic():
        # The number only picks a result shape; a rare duplicate under concurrency is harmless.
        number = SimTask.objects.filter(gateway=gateway).count() + 1
        return SimTask.objects.create(
            gateway=gateway,
            task_id=new_task_id(gateway, now.timestamp()),
            number=number,
            model=plan.model,
            body=body,
            mode=plan.mode,
            n=plan.n,
            result_count=count,
            width=plan.width,
            height=plan.height,
            fault=fault,
            latency=seconds,
            created=now,
            base_image=plan.base_image,
            input_sizes=plan.input_sizes,
        )


@dataclass
class State:
    status: str  # pending | processing | completed | failed | cancelled
    progress: int
    elapsed: float
    remaining: float
    completed_at: float | None  # unix time


def state(task, now=None):
    now = time.time() if now is None else now
    created = task.created.timestamp()
    elapsed = max(0.0, now - created)
    done = elapsed >= task.latency
    progress = 100 if done else min(99, int(100 * elapsed / task.latency)) if task.latency > 0 else 100
    remaining = max(0.0, task.latency - elapsed)
    completed_at = created + task.latency if done else None
    if task.status_override:
        return State(task.status_override, progress, elapsed, remaining, completed_at)
    if not done:
        status = "pending" if elapsed < PENDING_SHARE * task.latency else "processing"
        return State(status, progress, elapsed, remaining, None)
    if task.fault == "task-fails":
        return State("failed", progress, elapsed, 0.0, completed_at)
    if task.fault == "cancelled":
        return State("cancelled", progress, elapsed, 0.0, completed_at)
    return State("completed", 100, elapsed, 0.0, completed_at)


def billable(task, current):
    # A lost task vanished upstream: nothing to hand over, nothing billed.
    return current.status == "completed" and task.fault != "lost"


def bill(task, current):
    """Bill a completed task's images once, however many processes look at it."""
    if billable(task, current) and task.billed_at is None:
        SimTask.objects.filter(id=task.id, billed_at__isnull=True).update(
            billed_at=timezone.now(), billed_images=task.result_count
        )


def bill_due(gateway):
    # Billing follows completion, not polling: a task nobody polls still costs its images.
    for task in SimTask.objects.filter(gateway=gateway, billed_at__isnull=True):
        bill(task, state(task))


def all_done():
    """Whether every task taken is over by its clock (and so billed, when it bills)."""
    now = time.time()
    return all(task.created.timestamp() + task.latency <= now for task in SimTask.objects.all())


def counters(gateway):
    bill_due(gateway)
    tasks = SimTask.objects.filter(gateway=gateway)
    return {
        "submits": tasks.count(),
        "billed_images": tasks.aggregate(total=Sum("billed_images"))["total"] or 0,
    }


def count_poll(task):
    SimTask.objects.filter(id=task.id).update(polls=F("polls") + 1)
    task.refresh_from_db(fields=["polls"])
    return task.polls


def find_task(gateway, task_id):
    return SimTask.objects.filter(gateway=gateway, task_id=task_id).first()


def estimated_seconds(task):
    return max(1, math.ceil(task.latency))


def expires_at(current):
    return int(current.completed_at + RESULT_LIFETIME) if current.completed_at else None


def expired(current, now=None):
    now = time.time() if now is None else now
    return current.completed_at is not None and now > current.completed_at + RESULT_LIFETIME


def spec_for(task, index):
    body = task.body
    prompt = faults.strip_markers(body.get("prompt") or "")
    palette = None
    if body.get("color_palette"):
        palette = [(entry["hex"], float(entry["ratio"].rstrip("%"))) for entry in body["color_palette"]]
    return Spec(
        width=task.width,
        height=task.height,
        prompt=prompt,
        seed=body.get("seed"),
        index=index,
        count=task.result_count,
        palette=palette,
        base_image=bytes(task.base_image) if task.base_image else None,
        boxes=output_boxes(task),
        watermark=watermark_on(task),
    )


def watermark_on(task):
    value = task.body.get("watermark")
    if value is None:
        return task.model.startswith("doubao-seedream")  # Seedream's default is on, Wan's off
    return bool(value)


def output_boxes(task):
    """bbox_list boxes, given in each input image's pixels, scaled to the output."""
    boxes = []
    for per_image, (in_w, in_h) in zip(task.body.get("bbox_list") or [], task.input_sizes, strict=False):
        for x1, y1, x2, y2 in per_image:
            sx, sy = task.width / in_w, task.height / in_h
            boxes.append((x1 * sx, y1 * sy, x2 * sx, y2 * sy))
    return boxes


def result_path(task, index):
    return Path(settings.MEDIA_ROOT) / "sim" / task.gateway / task.task_id / f"{index}.png"


def result_png(task, index):
    """The PNG for one result, rendered on first request and kept on disk after that (a 4K
    render takes about two seconds, mostly PNG compression)."""
    path = result_path(task, index)
    if path.exists():
        return path.read_bytes()
    png = render_png(spec_for(task, index))
    keep_result_png(path, png)
    return png


def keep_result_png(path, png):
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    partial.write_bytes(png)
    os.replace(partial, path)  # atomic: a concurrent reader sees the whole file or none
