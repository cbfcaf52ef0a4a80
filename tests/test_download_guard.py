"""Result downloads are guarded: a gateway's result URL can't point the worker at the portal's
own network, follow redirects there, carry cookies between hosts, tell open ports from closed
ones in its error message, or keep the worker (and the job) waiting forever.

The gateway (the simulator) lives on 127.0.0.1; a second server on 127.0.0.2, another loopback
address, stands for an internal service the worker must never reach.
"""

import socket
import threading
import time
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection
from django.utils import timezone

from studio import jobs, media
from studio.gateways.request import ImageRequest
from studio.gateways.results import Result, TaskState
from studio.models import Job, LedgerEntry
from tests.view_helpers import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)

PNG = image_bytes(64, 48)
PLAIN = "Image 1 could not be downloaded from the gateway's link"
REFUSED = "^could not be downloaded from the gateway's link$"  # result_bytes' words, before "Image 1"


class Server:
    """A tiny HTTP server on a loopback address; `routes` maps a path to a function that
    answers the request. Every request's path and headers are recorded."""

    def __init__(self, host, routes):
        self.routes = routes
        self.requests = []
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer((host, 0), self.handler_class())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    def url(self, path):
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{path}"

    @property
    def port(self):
        return self.server.server_address[1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, dict(self.headers)))
                route = server.routes.get(self.path.split("?")[0], not_found)
                route(self, server)

        return Handler


def send(handler, status, body=b"", headers=()):
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def png(handler, server):
    send(handler, 200, PNG, [("Content-Type", "image/png")])


def not_found(handler, server):
    send(handler, 404, b"no")


def redirect_to(url):
    return lambda handler, server: send(handler, 302, headers=[("Location", url)])


def trickle(handler, server):
    """Headers at once, then the body one byte every half second."""
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("Content-Length", str(len(PNG)))
    handler.end_headers()
    for byte in PNG:
        if server.stopping.is_set():
            return
        try:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
        except OSError:
            return
        time.sleep(0.5)


@pytest.fixture
def internal():
    """A service on another loopback address (127.0.0.2), holding a perfectly good image."""
    with Server("127.0.0.2", {"/secret.png": png}) as server:
        yield server


@pytest.fixture
def gateway_elsewhere(settings):
    """apimart configured with a key and a base URL on 127.0.0.3, so 127.0.0.1 is not its address."""
    settings.STUDIO_GATEWAYS = {
        **settings.STUDIO_GATEWAYS, "apimart": {"api_key": "key", "base_url": "http://127.0.0.3:9"}
    }


def downloading_job(owner, urls):
    """An apimart job that has reached `downloading` with these result URLs, as a gateway's
    answer would leave it."""
    request = ImageRequest(gateway="apimart", model="wan2.7-image", mode="text-to-image",
                           prompt="a lighthouse", n=len(urls), size_tier="1K")
    job = jobs.create_job(owner, request)
    jobs.transition(job, Job.SUBMITTING)
    state = TaskState(remote_id="t1", status="completed",
                      results=[Result(index=i, url=url) for i, url in enumerate(urls)])
    assert jobs.results_arrived(job, state, Job.SUBMITTING)
    job.refresh_from_db()
    return job


def download(job):
    jobs.download(job.pk)
    job.refresh_from_db()
    return job


def money(job):
    return dict(LedgerEntry.objects.filter(job=job).values_list("kind", "amount"))


def test_another_loopback_address_is_refused(simulator, owner, internal):
    job = download(downloading_job(owner, [internal.url("/secret.png")]))
    assert job.status == Job.FAILED
    assert job.error_message == PLAIN
    assert internal.requests == []
    assert "charge" not in money(job) and "release" in money(job)


def test_the_gateways_own_address_is_fetched_on_any_port(simulator, owner):
    with Server("127.0.0.1", {"/a.png": png}) as cdn:
        job = download(downloading_job(owner, [cdn.url("/a.png")]))
    assert job.status == Job.SUCCEEDED, job.error_message


def test_a_redirect_to_a_refused_host_is_refused(simulator, owner, internal):
    with Server("127.0.0.1", {"/a.png": redirect_to(internal.url("/secret.png"))}) as cdn:
        job = download(downloading_job(owner, [cdn.url("/a.png")]))
    assert job.status == Job.FAILED and job.error_message == PLAIN
    assert internal.requests == []


def test_three_redirects_are_followed_and_a_fourth_is_refused(simulator, owner):
    routes = {"/0": png}
    with Server("127.0.0.1", routes) as cdn:
        for hop in range(1, 5):
            routes[f"/{hop}"] = redirect_to(cdn.url(f"/{hop - 1}"))
        assert media.result_bytes({"index": 0, "url": cdn.url("/3")}, "apimart") == PNG
        with pytest.raises(ValueError, match=REFUSED):
            media.result_bytes({"index": 0, "url": cdn.url("/4")}, "apimart")
        assert [path for path, _ in cdn.requests].count("/0") == 1


@pytest.mark.parametrize("spelling", ["0x7f000001", "2130706433", "0177.0.0.1", "[::ffff:127.0.0.1]"])
def test_numeric_spellings_of_loopback_are_refused(gateway_elsewhere, spelling):
    with Server("127.0.0.1", {"/a.png": png}) as service:
        with pytest.raises(ValueError, match=REFUSED):
            media.result_bytes({"index": 0, "url": f"http://{spelling}:{service.port}/a.png"}, "apimart")
        assert service.requests == []


@pytest.mark.parametrize("url", ["file:///etc/hostname", "ftp://127.0.0.1/a.png", "gopher://127.0.0.1/"])
def test_other_schemes_are_refused(simulator, url):
    with pytest.raises(ValueError, match=REFUSED):
        media.result_bytes({"index": 0, "url": url}, "apimart")


def test_no_cookie_is_kept_or_sent(simulator, owner):
    def set_cookie(handler, server):
        send(handler, 200, PNG, [("Content-Type", "image/png"), ("Set-Cookie", "track=1; Path=/")])

    def set_cookie_and_redirect(handler, server):
        headers = [("Location", server.url("/checked.png")), ("Set-Cookie", "hop=1; Path=/")]
        send(handler, 302, headers=headers)

    routes = {"/first.png": set_cookie, "/second.png": set_cookie_and_redirect, "/checked.png": png}
    with Server("127.0.0.1", routes) as cdn:
        job = download(downloading_job(owner, [cdn.url("/first.png"), cdn.url("/second.png")]))
    assert job.status == Job.SUCCEEDED, job.error_message
    # The two results download at once, so only the redirect's own order is fixed.
    paths = [path for path, _ in cdn.requests]
    assert sorted(paths) == ["/checked.png", "/first.png", "/second.png"]
    assert paths.index("/second.png") < paths.index("/checked.png")
    assert [headers.get("Cookie") for _, headers in cdn.requests] == [None, None, None]


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe is closed


def server_error(handler, server):
    send(handler, 500, b"internal details")


@pytest.mark.parametrize("kind", ["closed port", "server error", "internal address", "scheme", "redirects"])
def test_every_failure_reads_the_same(simulator, owner, internal, kind):
    routes = {"/0": png, "/500": server_error, "/internal": redirect_to(internal.url("/secret.png"))}
    with Server("127.0.0.1", routes) as cdn:
        for hop in range(1, 5):
            routes[f"/{hop}"] = redirect_to(cdn.url(f"/{hop - 1}"))
        url = {
            "closed port": f"http://127.0.0.1:{closed_port()}/a.png",
            "server error": cdn.url("/500"),
            "internal address": cdn.url("/internal"),
            "scheme": "ftp://127.0.0.1/a.png",
            "redirects": cdn.url("/4"),
        }[kind]
        job = download(downloading_job(owner, [url]))
    assert job.status == Job.FAILED
    assert job.error_message == PLAIN


def test_an_expired_link_still_says_so(simulator, owner):
    with Server("127.0.0.1", {}) as cdn:
        job = download(downloading_job(owner, [cdn.url("/gone.png")]))
    assert job.status == Job.FAILED
    assert job.error_message == "Image 1 could not be downloaded: the gateway's link has expired"


def test_a_trickling_body_ends_the_job_within_its_deadline(simulator, owner, settings):
    settings.STUDIO_DOWNLOAD_SECONDS = 1
    with Server("127.0.0.1", {"/slow.png": trickle}) as cdn:
        job = downloading_job(owner, [cdn.url("/slow.png")])

        def run():
            try:
                jobs.download(job.pk)
            finally:
                connection.close()

        worker = threading.Thread(target=run, daemon=True)
        started = time.monotonic()
        worker.start()
        worker.join(timeout=8)
        elapsed = time.monotonic() - started
        assert not worker.is_alive(), "the download did not stop at its deadline"
    assert elapsed < 4
    job.refresh_from_db()
    assert job.status == Job.FAILED and job.error_message == PLAIN
    assert money(job) == {"hold": Decimal("0.20"), "release": Decimal("0.20")}


def test_the_host_is_looked_up_once_and_connected_to_as_checked(simulator, monkeypatch):
    """A name that answers differently the second time (DNS rebinding) gets no second look-up:
    the connection goes to the address that was checked, with the name as Host."""
    real = socket.getaddrinfo
    lookups = []

    def rebinding(host, port, *args, **kwargs):
        if host == "cdn.rebind.test":
            lookups.append(host)
            host = "127.0.0.1" if len(lookups) == 1 else "127.0.0.2"
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with Server("127.0.0.1", {"/a.png": png}) as cdn:
        data = media.result_bytes({"index": 0, "url": f"http://cdn.rebind.test:{cdn.port}/a.png"}, "apimart")
    assert data == PNG
    assert lookups == ["cdn.rebind.test"]
    assert cdn.requests[0][1]["Host"] == f"cdn.rebind.test:{cdn.port}"


@pytest.mark.parametrize("stored, status", [(1, Job.PARTIAL), (0, Job.FAILED)])
def test_a_download_past_the_job_deadline_ends_the_job(simulator, owner, stored, status):
    job = downloading_job(owner, ["http://127.0.0.1:9/a.png", "http://127.0.0.1:9/b.png"])
    for entry in job.results[:stored]:
        media.store_result(job, entry, PNG)
    Job.objects.filter(pk=job.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    jobs.expire_overdue()
    job.refresh_from_db()
    assert job.status == status
    assert money(job).get("charge") == (Decimal("0.20") if stored else None)
    assert money(job)["release"] == Decimal("0.40")
