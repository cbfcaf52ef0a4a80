"""The four gateways' HTTP endpoints, each speaking its own wire protocol (as written down in
`../shared/providers.md`, beside this repository).

No login (@login_not_required on every view) and no CSRF: callers authenticate with a bearer
key, like at the real gateways. Any non-empty key works except two that play account trouble:
"invalid" (401) and "broke" (no balance: 403 on new-api gateways, 402 on foxapi).
"""

import base64
import json
import time

from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from studio.simulator import faults, store, validation
from studio.simulator.faults import error_response
from studio.simulator.validation import PROTOCOLS, SEEDREAM

FOX_CREDITS_PER_IMAGE = 10  # simulator's choice: foxapi's credit prices are not documented


@login_not_required
@csrf_exempt
@require_POST
def generations(request, gateway):
    protocol = PROTOCOLS[gateway]
    body = parse_json(request.body)
    received = store.record_request(gateway, body if body is not None else {"_raw": raw_text(request.body)})
    response = answer_submit(request, gateway, protocol, body)
    store.answered(received, response.status_code if response is not None else None)
    # None means the connection was dropped on purpose; Django still needs something to return.
    return response if response is not None else HttpResponse(status=204)


@login_not_required
@csrf_exempt
@require_GET
def task_status(request, gateway, task_id):
    protocol = PROTOCOLS[gateway]
    _key, denied = check_key(request, protocol)
    if denied:
        return denied
    if protocol == "openai-sync":
        # anyfast has no task endpoint; new-api answers unknown routes like this.
        return error_response(protocol, 404, f"Invalid URL (GET {request.path})", "invalid_request_error")
    task = store.find_task(gateway, task_id)
    if task is None or task.fault == "lost":
        return task_not_found(protocol)
    polls = store.count_poll(task)
    if task.fault in faults.POLL_FAULTS and polls <= faults.POLL_FAULT_COUNT:
        return faults.answer_fault(protocol, task.fault)
    current = store.state(task)
    store.bill(task, current)
    if protocol == "task-async":
        return JsonResponse(task_async_status(request, task, current))
    return JsonResponse(fox_status(request, task, current))


@login_not_required
@require_GET
def result_file(request, gateway, task_id, index):
    """A result image, public like a gateway's CDN URL, for 24 hours after completion."""
    task = store.find_task(gateway, task_id)
    index = int(index)
    if task is None or task.fault == "lost" or index >= task.result_count:
        return HttpResponse("Not Found", status=404, content_type="text/plain")
    current = store.state(task)
    if current.status != "completed":
        return HttpResponse("Not Found", status=404, content_type="text/plain")
    if store.expired(current):
        # What an object store says for a signed URL past its expiry.
        return HttpResponse(
            "<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
            "<Message>Request has expired</Message></Error>",
            status=403,
            content_type="application/xml",
        )
    response = HttpResponse(store.result_png(task, index), content_type="image/png")
    response["Cache-Control"] = "public, max-age=86400"
    return response


@login_not_required  # public like the rest of the simulator; it checks staff itself
@require_GET
def recent_requests(request, gateway):
    """Debug: the last bodies this gateway received, long strings (base64 images) cut short.

    Those bodies are every user's prompts: staff only, and a plain 404 for anyone else.
    """
    if not request.user.is_staff:
        raise Http404
    rows = [
        {"id": row.id, "received": row.received.isoformat(), "status": row.status, "body": shorten(row.body)}
        for row in store.recent_requests(gateway)
    ]
    return JsonResponse({"gateway": gateway, "counters": store.counters(gateway), "requests": rows})


# --- submit -------------------------------------------------------------------------------


def answer_submit(request, gateway, protocol, body):
    key, denied = check_key(request, protocol)
    if denied:
        return denied
    if body is None:
        return error_response(
            protocol,
            400,
            "Invalid request: the body is not valid JSON",
            "invalid_request_error",
            "invalid_request",
        )
    fault = faults.fault_in(body)
    if fault in faults.ANSWER_FAULTS:
        return faults.answer_fault(protocol, fault)
    try:
        plan = validation.check(gateway, body)
    except validation.Invalid as exc:
        return error_response(protocol, 400, exc.message, "invalid_request_error", exc.code, exc.param)
    if fault == "moderation":
        return faults.moderation_response(protocol)
    if key == "broke":
        return no_balance(protocol)
    task = store.create_task(gateway, body, plan, fault)
    if protocol == "openai-sync":
        return sync_answer(request, task, plan)
    if fault == "drop-after-create":
        return None if faults.drop_connection(request) else dropped_fallback(protocol)
    if fault == "timeout":
        time.sleep(store.timeout_sleep())  # the task exists; only the answer is late
    if protocol == "task-async":
        return JsonResponse(
            {"code": "success", "message": "", "data": [{"task_id": task.task_id, "status": "processing"}]}
        )
    return JsonResponse(
        {
            "created": int(task.created.timestamp()),
            "id": task.task_id,
            "model": task.model,
            "object": "image.generation.task",
            "progress": 0,
            "status": "pending",
            "task_info": {"can_cancel": True, "estimated_time": store.estimated_seconds(task)},
            "type": "image",
        }
    )


def sync_answer(request, task, plan):
    """anyfast blocks for the whole generation, then answers with the images (or an error)."""
    if plan.stream:
        return StreamingHttpResponse(seedream_events(request, task), content_type="text/event-stream")
    time.sleep(task.latency)
    current = store.state(task)
    store.bill(task, current)
    if task.fault == "drop-after-create":
        # The images were made and billed; the answer is lost on the way back.
        return None if faults.drop_connection(request) else dropped_fallback("openai-sync")
    if current.status != "completed":
        error = faults.task_error("openai-sync", task.fault)
        return error_response("openai-sync", 500, error["message"], "upstream_error", error["code"])
    data = [sync_entry(request, task, index, plan.response_format) for index in range(task.result_count)]
    if task.model == SEEDREAM and task.result_count < task.n:
        # Ark lists an image it could not make as an entry with an error instead of a URL.
        data.append(
            {
                "error": {
                    "code": "OutputImageSensitiveContentDetected",
                    "message": "The output image may contain sensitive information.",
                }
            }
        )
    answer = {"created": int(time.time()), "data": data}
    if task.model == SEEDREAM:
        answer["usage"] = seedream_usage(task)
    return JsonResponse(answer)


def sync_entry(request, task, index, response_format):
    entry = {}
    if response_format == "b64_json":
        entry["b64_json"] = base64.b64encode(store.result_png(task, index)).decode()
    else:
        entry["url"] = file_url(request, task, index)
    if task.model == SEEDREAM:
        entry["size"] = f"{task.width}x{task.height}"
    else:
        entry["revised_prompt"] = faults.strip_markers(task.body.get("prompt", ""))
    return entry


def seedream_usage(task):
    tokens = task.result_count * (task.width * task.height // 256)
    return {"prompt_tokens": 0, "completion_tokens": tokens, "total_tokens": tokens, "output_tokens": tokens}


def seedream_events(request, task):
    """Seedream's streaming answer (Ark's server-sent events): one event per image as it is
    made, a partial_failed event for a missing one, then completed with usage and [DONE]."""
    step = task.latency / max(1, task.n)
    for index in range(task.n):
        time.sleep(step)
        if index < task.result_count:
            event = {
                "type": "image_generation.partial_succeeded",
                "image_index": index,
                **sync_entry(request, task, index, task.body.get("response_format") or "url"),
            }
        else:
            event = {
                "type": "image_generation.partial_failed",
                "image_index": index,
                "error": {
                    "code": "OutputImageSensitiveContentDetected",
                    "message": "The output image may contain sensitive information.",
                },
            }
        yield sse(event)
    store.bill(task, store.state(task))
    yield sse({"type": "image_generation.completed", "usage": seedream_usage(task)})
    yield "data: [DONE]\n\n"


def sse(event):
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"


# --- status -------------------------------------------------------------------------------


def task_async_status(request, task, current):
    urls = [file_url(request, task, index) for index in range(task.result_count)]
    data = {
        "id": task.task_id,
        "status": current.status,
        "progress": current.progress,
        "created": int(task.created.timestamp()),
        "estimated_time": store.estimated_seconds(task),
        "result": None,
        "completed": None,
        "actual_time": None,
        "error": None,
    }
    if current.completed_at is not None:
        data["completed"] = int(current.completed_at)
        data["actual_time"] = round(task.latency, 1)
    if current.status == "completed":
        expires_at = store.expires_at(current)
        if task.number % 2:
            images = [{"url": url, "expires_at": expires_at} for url in urls]
        else:
            images = [{"url": urls, "expires_at": expires_at}]  # the documented list-of-URLs shape
        data["result"] = {"images": images}
    elif current.status == "failed":
        data["error"] = faults.task_error("task-async", task.fault)
    return {"code": 200, "data": data}


def fox_status(request, task, current):
    status = current.status
    answer = {
        "id": task.task_id,
        "object": "image.generation.task",
        "type": "image",
        "model": task.model,
        "status": status,
        "progress": current.progress,
        "created": int(task.created.timestamp()),
        "results": [],
        "error": None,
        "usage": {"credits_reserved": task.n * FOX_CREDITS_PER_IMAGE, "user_group": "default"},
    }
    if status == "cancelled":
        answer["status"] = "failed"  # foxapi documents no "cancelled" status
    if status in ("failed", "cancelled"):
        answer["error"] = faults.task_error("fox-async", task.fault)
    if status == "completed":
        urls = [file_url(request, task, index) for index in range(task.result_count)]
        if task.number % 2:
            answer["results"] = [{"url": url} for url in urls]
        else:
            # The older documented shape: no results, an output object instead.
            del answer["results"]
            output = {"url": urls[0]} if len(urls) == 1 else {"urls": urls}
            answer["output"] = {**output, "width": task.width, "height": task.height}
    return answer


# --- helpers ------------------------------------------------------------------------------


def check_key(request, protocol):
    """(key, None) for an acceptable bearer key, else (None, the 401 answer)."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        message = "No API key provided: send Authorization: Bearer <key>"
    elif key == "invalid":
        message = "Invalid API key"
    else:
        return key, None
    return None, error_response(protocol, 401, message, "authentication_error", "invalid_api_key")


def no_balance(protocol):
    if protocol == "fox-async":
        return error_response(
            protocol, 402, "Insufficient credits: please top up your account", "insufficient_quota"
        )
    return error_response(
        protocol, 403, "User quota is not enough", "new_api_error", "insufficient_user_quota"
    )


def task_not_found(protocol):
    if protocol == "fox-async":
        return error_response(protocol, 404, "Task not found", "not_found")
    return error_response(protocol, 404, "task not found", "invalid_request_error", "task_not_found")


def dropped_fallback(protocol):
    return error_response(
        protocol,
        500,
        "connection dropped (simulated; this server could not drop it)",
        "server_error",
        "internal_error",
    )


def file_url(request, task, index):
    return request.build_absolute_uri(reverse("simulator:file", args=[task.gateway, task.task_id, index]))


def parse_json(raw):
    try:
        return json.loads(raw)
    except ValueError:
        return None


def raw_text(raw):
    return raw[:2000].decode("utf-8", "replace")


def shorten(value, most=200):
    if isinstance(value, str) and len(value) > most:
        return f"{value[:most]}… ({len(value)} characters)"
    if isinstance(value, dict):
        return {key: shorten(item, most) for key, item in value.items()}
    if isinstance(value, list):
        return [shorten(item, most) for item in value]
    return value
