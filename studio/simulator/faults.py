"""Faults chosen per request by a `[sim:<fault>]` marker in the prompt, so each test (or demo
click) picks its own misbehaviour without shared switches. The README lists them all.

Answer faults replace the gateway's answer before anything is created. Task faults shape the
task the request creates. `poll-<answer fault>` answers the first POLL_FAULT_COUNT status
requests with that answer fault, then behaves.
"""

import logging
import re
import socket

from django.http import HttpResponse, JsonResponse

log = logging.getLogger("studio.simulator")

ANSWER_FAULTS = ("rate-limit", "server-error", "bad-gateway-html", "empty-body", "invalid-json")
TASK_FAULTS = (
    "timeout",
    "drop-after-create",
    "task-fails",
    "moderation",
    "partial",
    "lost",
    "slow",
    "cancelled",
)
POLL_FAULTS = tuple(f"poll-{fault}" for fault in ANSWER_FAULTS)
FAULTS = ANSWER_FAULTS + TASK_FAULTS + POLL_FAULTS
POLL_FAULT_COUNT = 2
SLOW_FACTOR = 3

MARKER = re.compile(r"\[sim:([a-z-]+)\]")

BAD_GATEWAY_HTML = """<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


def fault_in(body):
    """The first known fault marker in the body's prompt, or "". Unknown markers are ignored,
    as the real gateway would treat them as prompt text."""
    prompt = body.get("prompt") if isinstance(body, dict) else None
    if not isinstance(prompt, str):
        return ""
    for name in MARKER.findall(prompt):
        if name in FAULTS:
            return name
    return ""


def strip_markers(prompt):
    return " ".join(MARKER.sub(" ", prompt or "").split())


def error_body(protocol, message, type_, code="", param=""):
    """The gateway's error envelope: new-api's for anyfast/apimart/gccai, foxapi's own."""
    if protocol == "fox-async":
        return {"error": {"message": message, "type": type_}}
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(protocol, status, message, type_, code="", param=""):
    return JsonResponse(error_body(protocol, message, type_, code, param), status=status)


def answer_fault(protocol, fault):
    """The HTTP answer an answer fault (or the poll- variant) gives."""
    fault = fault.removeprefix("poll-")
    if fault == "rate-limit":
        # Deliberately no Retry-After: these gateways do not send one.
        return error_response(
            protocol,
            429,
            "Rate limit reached for requests, please try again later",
            "rate_limit_error",
            "rate_limit_exceeded",
        )
    if fault == "server-error":
        return error_response(
            protocol, 500, "Internal server error (simulated)", "server_error", "internal_error"
        )
    if fault == "bad-gateway-html":
        return HttpResponse(BAD_GATEWAY_HTML, status=502, content_type="text/html")
    if fault == "empty-body":
        return HttpResponse(b"", status=503, content_type="application/json")
    if fault == "invalid-json":
        return HttpResponse(
            b'{"created": 17738, "data": [{"url": "htt', status=200, content_type="application/json"
        )
    raise ValueError(f"not an answer fault: {fault}")


def moderation_response(protocol):
    message = "Input data may contain inappropriate content."
    if protocol == "fox-async":
        return error_response(protocol, 400, message, "DataInspectionFailed")
    return error_response(protocol, 400, message, "invalid_request_error", "DataInspectionFailed", "prompt")


def task_error(protocol, fault):
    """The error object a failed (or, on foxapi, cancelled) task reports."""
    if fault == "cancelled":
        return {"code": "task_cancelled", "message": "The task was cancelled upstream", "type": "task_error"}
    message = "InternalError.Algo: the model failed to generate an image (simulated)"
    if protocol == "fox-async":
        return {"code": "generation_failed", "message": message, "type": "task_error"}
    return {"code": "InternalError.Algo", "message": message}


def drop_connection(request):
    """Shut the client's socket down so it sees the connection close with no HTTP answer, as
    when a gateway's load balancer drops a request it already forwarded. The socket sits a few
    attributes deep in wsgi.input on both Django's runserver/live server (LimitedStream._read →
    BufferedReader → SocketIO → socket) and gunicorn (Body → reader → unreader → sock).
    Returns False when no socket was found (another server); the caller then answers 500."""
    sock = find_socket(request.META.get("wsgi.input"))
    if sock is None:
        log.warning("drop-after-create: no socket found under wsgi.input; answering 500 instead")
        return False
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already gone: dropped all the same
    return True


def find_socket(start, depth=5):
    seen = set()
    layer = [start]
    for _ in range(depth):
        next_layer = []
        for obj in layer:
            if obj is None or id(obj) in seen:
                continue
            seen.add(id(obj))
            if isinstance(obj, socket.socket):
                return obj
            for name in (
                "stream",
                "raw",
                "_sock",
                "sock",
                "reader",
                "unreader",
                "buf",
                "_stream",
                "rfile",
                "_read",
            ):
                child = getattr(obj, name, None)
                child = getattr(child, "__self__", child)  # Django's LimitedStream keeps only stream.read
                if child is not None and not isinstance(child, (str, bytes, int, float, bool, dict, list)):
                    next_layer.append(child)
        layer = next_layer
    return None
