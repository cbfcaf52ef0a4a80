"""A stand-in gateway on real loopback HTTP, for adapter tests.

It records every request (method, path, headers, JSON body) and answers with replies queued by
the test, in order; with the queue empty it answers 500 so a missing reply shows up loudly.

    with FakeUpstream() as upstream:
        upstream.reply(200, {"code": "success", "data": [{"task_id": "task_1"}]})
        ... point settings.STUDIO_GATEWAYS[...]["base_url"] at upstream.url ...
        upstream.requests[0].body  # what the adapter sent
"""

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    json_body: object = None
    raw: bytes | None = None  # sent as is instead of json_body
    content_type: str = "application/json"
    delay: float = 0  # seconds to wait before answering (read timeouts)
    drop: bool = False  # read the request, then close the connection without answering


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict
    raw_body: bytes
    body: object = field(default=None)


class FakeUpstream:
    def __init__(self):
        self.requests = []
        self.replies = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    @property
    def url(self):
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def reply(self, status=200, json_body=None, **kwargs):
        self.replies.append(Reply(status=status, json_body=json_body, **kwargs))

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def last(self):
        return self.requests[-1]

    def _next_reply(self):
        with self._lock:
            if self.replies:
                return self.replies.pop(0)
        return Reply(500, {"error": {"message": "FakeUpstream has no reply queued", "type": "server_error"}})

    def _handler_class(self):
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass  # keep test output quiet

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                upstream.requests.append(Recorded(self.command, self.path, dict(self.headers), raw, body))
                reply = upstream._next_reply()
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if reply.raw is not None:
                    payload = reply.raw
                elif reply.json_body is not None:
                    payload = json.dumps(reply.json_body).encode()
                else:
                    payload = b""
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (a read-timeout test)

            do_GET = handle_any
            do_POST = handle_any

        return Handler


def closed_port_url():
    """A loopback URL nobody listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
