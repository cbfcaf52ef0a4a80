"""The one error type the gateways raise, and how a gateway's answer is classified.

Four classes (`../shared/providers.md` §5, beside this repository), each with its own handling in jobs.py:
  transient  connection error, timeout, 429, 5xx: retry with backoff
  rejected   400, 422, moderation: fail the job with the gateway's words, no retry, no charge
  account    401, 402, 403 (bad key, no balance): fail the job and tell the admin
  lost       404 on a task's status: fail the job and refund
"""

import json
import re
from http import HTTPStatus

from django.conf import settings

TRANSIENT, REJECTED, ACCOUNT, LOST = "transient", "rejected", "account", "lost"
ERROR_CLASSES = (TRANSIENT, REJECTED, ACCOUNT, LOST)

# Error codes that decide the class whatever the HTTP status says.
REJECTED_CODES = {
    "InvalidParameter",
    "DataInspectionFailed",
    "invalid_request_error",
    "unsupported_advanced_options",
}
REJECTED_CODE_SUFFIX = "SensitiveContentDetected"  # InputImageSensitiveContentDetected, ...
ACCOUNT_CODES = {
    "invalid_api_key",
    "authentication_error",
    "insufficient_quota",
    "insufficient_user_quota",
    "pre_consume_token_quota_failed",
}
# A failed task whose code says the upstream itself broke is worth another try.
TRANSIENT_TASK_CODE_WORDS = (
    "InternalError",
    "ServiceUnavailable",
    "Throttling",
    "Timeout",
    "server_error",
    "rate_limit",
)

# Gateways echo parts of the request in their errors ("Invalid token: Bearer sk-…"); these
# shapes are cut out of every message, besides each configured key, before anyone stores it.
BEARER_TOKEN = re.compile(r"\bBearer\s+[^\s\"',;]+", re.IGNORECASE)
SK_KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{4,}")
REDACTED = "[redacted]"

TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}
ACCOUNT_STATUSES = {401, 402, 403}


class GatewayError(Exception):
    def __init__(self, error_class, message, status=None, may_have_reached=False, code=""):
        if error_class not in ERROR_CLASSES:
            raise ValueError(f"unknown gateway error class {error_class!r}")
        # Redacted here, where every message taken from a gateway's answer passes, so no caller
        # can store, log or show a key the gateway echoed back.
        message = redact(message)
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.status = status  # HTTP status; None for connection errors and failed tasks
        # True when the request body may have reached the gateway (read timeout, connection
        # dropped after sending): a task may exist upstream, so the job must not be resubmitted
        # blindly.
        self.may_have_reached = may_have_reached
        self.code = code  # the gateway's error code where it gave one

    def __repr__(self):
        return (
            f"GatewayError({self.error_class!r}, {self.message!r}, status={self.status!r}, "
            f"may_have_reached={self.may_have_reached!r})"
        )


def redact(text):
    """`text` with every configured API key, bearer token and sk-… key replaced by [redacted]."""
    if not isinstance(text, str) or not text:
        return text
    keys = [config.get("api_key") or "" for config in settings.STUDIO_GATEWAYS.values()]
    # Longest first, so a key that contains another is cut out whole.
    for key in sorted({key for key in keys if key}, key=len, reverse=True):
        text = text.replace(key, REDACTED)
    text = BEARER_TOKEN.sub(f"Bearer {REDACTED}", text)
    return SK_KEY.sub(REDACTED, text)


def class_for_code(code):
    """The class an error code forces, or None when the code says nothing we know."""
    if not code:
        return None
    if code in REJECTED_CODES or code.endswith(REJECTED_CODE_SUFFIX):
        return REJECTED
    if code in ACCOUNT_CODES:
        return ACCOUNT
    return None


def class_for_status(status, on_poll=False):
    if status in TRANSIENT_STATUSES or status >= 500:
        return TRANSIENT
    if status in ACCOUNT_STATUSES:
        return ACCOUNT
    if status == 404:
        # On a task's status a 404 means the gateway forgot the task. On submit it means the
        # endpoint isn't there: a wrong base URL, which only the admin can fix.
        return LOST if on_poll else ACCOUNT
    if 400 <= status < 500:
        return REJECTED
    return TRANSIENT


def message_in(body):
    """The gateway's own words in an error body, wherever this gateway put them."""
    if not isinstance(body, dict):
        return ""
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    candidates = [
        body.get("error"),
        body.get("message"),
        body.get("msg"),
        data.get("message"),
        data.get("error"),
    ]
    for found in candidates:
        if isinstance(found, dict):
            found = found.get("message") or found.get("msg")
        if isinstance(found, str) and found.strip():
            return found.strip()
    return ""


def code_in(body):
    """The error code in a body: error.code, then error.type, then a string top-level code."""
    if not isinstance(body, dict):
        return ""
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    for error in (body.get("error"), data.get("error")):
        if isinstance(error, dict):
            for key in ("code", "type"):
                if isinstance(error.get(key), str) and error[key]:
                    return error[key]
    if isinstance(body.get("code"), str) and body["code"] not in ("", "success"):
        return body["code"]
    return ""


def error_from_body(status, body, on_poll=False):
    """A GatewayError for an HTTP error answer whose body was JSON."""
    code = code_in(body)
    error_class = class_for_code(code) or class_for_status(status, on_poll)
    message = message_in(body) or status_words(status)
    return GatewayError(error_class, message, status=status, code=code)


def error_from_unreadable(status, text, content_type, on_poll=False, may_have_reached=False):
    """A GatewayError for an answer that isn't JSON: an HTML page, an empty body, garbage."""
    if 200 <= status < 300:
        # The gateway said yes but we can't read what it made: the request did arrive, so it
        # counts as transient with the task possibly created.
        error_class = TRANSIENT
    else:
        error_class = class_for_status(status, on_poll)
    return GatewayError(
        error_class,
        describe_unreadable(status, text, content_type),
        status=status,
        may_have_reached=may_have_reached,
    )


def describe_unreadable(status, text, content_type):
    stripped = (text or "").strip()
    if not stripped:
        return f"The gateway answered with an empty body (HTTP {status})."
    if "html" in (content_type or "").lower() or stripped[:1] == "<":
        title = re.search(r"<title[^>]*>(.*?)</title>", stripped, re.IGNORECASE | re.DOTALL)
        words = f": {' '.join(title.group(1).split())}" if title and title.group(1).strip() else ""
        return f"The gateway answered with an HTML error page (HTTP {status}){words}."
    return f"The gateway answered with something that is not JSON (HTTP {status}): {stripped[:200]}"


def status_words(status):
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return f"The gateway answered HTTP {status}."
    return f"The gateway answered HTTP {status} ({phrase})."


def decode_json(text):
    """The parsed body, or None when it is empty or not JSON."""
    if not text or not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def task_error(error, fallback="The gateway reported the task as failed without saying why."):
    """A GatewayError for a task the gateway reports as failed (HTTP 200, status "failed").

    The fields inside a task's error are undocumented on task-async; foxapi sends
    {"code", "message", "type"}. Moderation and bad input are rejected; an upstream fault
    that names itself (InternalError, Throttling, timeouts) is transient; anything else is
    rejected so a job is never retried (and perhaps billed) for a reason we can't read.
    """
    if isinstance(error, dict):
        code = error.get("code") if isinstance(error.get("code"), str) else ""
        message = message_in({"error": error}) or fallback
    elif isinstance(error, str) and error.strip():
        code, message = "", error.strip()
    else:
        code, message = "", fallback
    error_class = class_for_code(code)
    if error_class is None:
        transient = any(word.lower() in code.lower() for word in TRANSIENT_TASK_CODE_WORDS if code)
        error_class = TRANSIENT if transient else REJECTED
    return GatewayError(error_class, message, status=None, code=code)
