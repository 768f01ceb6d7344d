"""A pass-through HTTP proxy in front of a local server that can hold one kind of
request: it forwards the request (so the change reaches the server), then keeps
the caller waiting for the answer until released. A test kills the kernel while
it waits, which makes "killed with a change in flight" deterministic.

Standard library only; binds 127.0.0.1 only."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlparse

HOST = "127.0.0.1"


def send_upstream(target, handler: BaseHTTPRequestHandler, body: bytes, timeout: float = 30):
    """Forwards the handler's request to `target` (a parsed URL); its answer as
    (status, headers, body)."""
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout)
    headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
    headers["Host"] = f"{target.hostname}:{target.port}"
    conn.request(handler.command, handler.path, body=body, headers=headers)
    answer = conn.getresponse()
    return answer.status, answer.getheaders(), answer.read()


def send_back(handler: BaseHTTPRequestHandler, status: int, headers, data: bytes) -> None:
    """Answers the handler's client with an upstream answer (length recomputed)."""
    handler.send_response(status)
    for k, v in headers:
        if k.lower() not in ("transfer-encoding", "connection", "content-length"):
            handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class HoldingProxy:
    def __init__(self, target_url: str, hold: Callable[[bytes], bool]) -> None:
        self.target = urlparse(target_url)
        self.hold = hold
        self.held = threading.Event()  # set when a matching request is being held
        self.release = threading.Event()
        self.matching = 0  # matching requests forwarded to the target
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{HOST}:{self._server.server_address[1]}"

    def __enter__(self) -> "HoldingProxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.forward()

            def do_GET(self) -> None:
                self.forward()

            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, headers, data = send_upstream(proxy.target, self, body)
                if proxy.hold(body):
                    with proxy._lock:
                        proxy.matching += 1
                        first = proxy.matching == 1
                    if first:
                        proxy.held.set()
                        proxy.release.wait(120)
                        self.close_connection = True
                        return
                send_back(self, status, headers, data)

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
