"""HTTP shared by the adapters: gateway configuration, pooled sessions, sending and reading.

Every request goes through send(), which turns every way a request can go wrong into a
GatewayError with the right class and may_have_reached flag.
"""

import logging
import threading

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from studio.gateways import catalog
from studio.gateways.errors import (
    ACCOUNT,
    REJECTED,
    TRANSIENT,
    GatewayError,
    decode_json,
    error_from_body,
    error_from_unreadable,
)

logger = logging.getLogger("studio.gateways")

USER_AGENT = "ImageStudio/0.1 (+self-hosted)"

CONFIGURED, SIMULATOR, NOT_CONFIGURED = "configured", "simulator", "not configured"
SIMULATOR_API_KEY = "simulator"


def timeouts(sync=False):
    """(connect, read) seconds; the sync gateway (anyfast) holds the connection while it generates."""
    if sync:
        return settings.STUDIO_GATEWAY_CONNECT_TIMEOUT, settings.STUDIO_SYNC_READ_TIMEOUT
    return settings.STUDIO_GATEWAY_CONNECT_TIMEOUT, settings.STUDIO_GATEWAY_READ_TIMEOUT


# --- Configuration (read at call time so settings overrides apply) ----------------------------


def gateway_state(gateway):
    """ "configured" with an API key; else "simulator" when the simulator is on; else "not configured"."""
    config = settings.STUDIO_GATEWAYS.get(gateway) or {}
    if config.get("api_key"):
        return CONFIGURED
    if settings.STUDIO_SIMULATOR:
        return SIMULATOR
    return NOT_CONFIGURED


def gateway_endpoint(gateway):
    """(base_url, api_key) to talk to, or a GatewayError(account) when there is none."""
    state = gateway_state(gateway)
    if state == CONFIGURED:
        config = settings.STUDIO_GATEWAYS[gateway]
        return config["base_url"].rstrip("/"), config["api_key"]
    if state == SIMULATOR:
        return f"{settings.STUDIO_SIMULATOR_URL.rstrip('/')}/sim/{gateway}", SIMULATOR_API_KEY
    raise GatewayError(
        ACCOUNT,
        f"{gateway} has no API key set (and the simulator is off); "
        f"an admin must set STUDIO_{gateway.upper()}_API_KEY.",
    )


# --- Sessions ---------------------------------------------------------------------------------
# One session per gateway so its connections are pooled; a changed base URL or key replaces it.
_sessions = {}
_sessions_lock = threading.Lock()


def session_for(gateway, base_url, api_key):
    key = (gateway, base_url, api_key)
    with _sessions_lock:
        found = _sessions.get(key)
        if found is not None:
            return found
        for old_key in [old for old in _sessions if old[0] == gateway]:
            _sessions.pop(old_key).close()
        session = requests.Session()
        # max_retries=0: requests must never resend a POST by itself; a resent submit could
        # create (and bill) a second task. Retrying is jobs.py's decision.
        adapter = HTTPAdapter(max_retries=0, pool_maxsize=10)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update(
            {
                "Authorization": f"Bearer {api_key}",
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            }
        )
        _sessions[key] = session
        return session


# --- Sending ----------------------------------------------------------------------------------


def sent_before_failing(exc):
    """Whether a ConnectionError may have happened after the request went out.

    Only a failure to open the connection (refused, DNS, connect timeout, TLS handshake) proves
    the gateway never saw the body. Anything else, e.g. the connection dropped while we waited
    for the answer, may have come after the gateway read it, so we assume it did.
    """
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    seen = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, NewConnectionError | NameResolutionError | ConnectTimeoutError):
            return False
        pending.extend([getattr(current, "reason", None), current.__cause__, current.__context__])
        pending.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
    return True


def send(session, method, url, gateway, body=None, timeout=None, is_submit=False):
    """Send one request and return the JSON object the gateway answered with.

    Raises GatewayError for every failure. may_have_reached is only ever True for a submit:
    a poll that may have arrived has no consequence.
    """
    timeout = timeout or timeouts()
    try:
        response = session.request(method, url, json=body, timeout=timeout)
    except requests.exceptions.ConnectTimeout:
        raise GatewayError(
            TRANSIENT, f"Could not connect to {gateway} within {timeout[0]} seconds."
        ) from None
    except requests.exceptions.ReadTimeout:
        raise GatewayError(
            TRANSIENT, f"{gateway} did not answer within {timeout[1]} seconds.", may_have_reached=is_submit
        ) from None
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
        raise GatewayError(
            TRANSIENT,
            f"The connection to {gateway} broke while reading its answer.",
            may_have_reached=is_submit,
        ) from None
    except requests.exceptions.ConnectionError as exc:
        if sent_before_failing(exc):
            raise GatewayError(
                TRANSIENT,
                f"The connection to {gateway} dropped before it answered.",
                may_have_reached=is_submit,
            ) from None
        raise GatewayError(TRANSIENT, f"Could not connect to {gateway}.") from None
    except (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
    ):
        raise GatewayError(ACCOUNT, f"The base URL set for {gateway} is not a valid URL.") from None
    logger.info(
        "%s %s %s -> %s in %.1fs",
        gateway,
        method,
        url,
        response.status_code,
        response.elapsed.total_seconds(),
    )
    return read_answer(response, is_submit=is_submit, on_poll=method == "GET")


def read_answer(response, is_submit=False, on_poll=False):
    status = response.status_code
    text = response.text
    data = decode_json(text)
    content_type = response.headers.get("Content-Type", "")
    if 200 <= status < 300:
        if isinstance(data, dict):
            return data
        raise error_from_unreadable(status, text, content_type, on_poll=on_poll, may_have_reached=is_submit)
    if isinstance(data, dict):
        raise error_from_body(status, data, on_poll=on_poll)
    raise error_from_unreadable(status, text, content_type, on_poll=on_poll)


class Adapter:
    """What the three protocol adapters share: where to send and how."""

    is_async = True
    SUBMIT_PATH = "/v1/images/generations"
    TASK_PATH = "/v1/tasks/{id}"

    def __init__(self, gateway):
        self.gateway = gateway

    @property
    def session(self):
        base_url, api_key = gateway_endpoint(self.gateway)
        return session_for(self.gateway, base_url, api_key)

    def url(self, path):
        base_url, _ = gateway_endpoint(self.gateway)
        return base_url + path

    def offer_for(self, request):
        found = catalog.offer(self.gateway, request.model)
        if found is None:
            raise GatewayError(REJECTED, f"{self.gateway} does not offer {request.model!r}.")
        return found

    def post(self, path, body, timeout=None):
        return send(
            self.session, "POST", self.url(path), self.gateway, body=body, timeout=timeout, is_submit=True
        )

    def get(self, path, timeout=None):
        return send(self.session, "GET", self.url(path), self.gateway, timeout=timeout)
