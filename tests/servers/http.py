"""The HTTP scaffolding every local AWS test server shares.

A service (Security Hub, Bedrock, ...) subclasses `LocalServer` and implements
`serve()`: what to answer one request.  This module owns the rest:

- a threaded HTTP/1.1 server on 127.0.0.1, on port 0 (a free port the OS picks,
  so parallel test workers never collide) unless one is given,
  started by `start()` (or entering a `with` block) and ready when it returns;
- `stop()` (or leaving the block) closes the listening socket and every
  kept-alive client connection, so a pooled SDK connection cannot keep talking
  to a stopped server, and wakes up anything waiting in `wait()`;
- request bodies read with Content-Length or chunked transfer encoding,
  header names lower-cased, JSON bodies parsed;
- every request recorded (`requests`, `counts`) before it is answered;
- errors injected per operation (`fail_next`) and raised as `ServiceError`;
- JSON answers with `x-amzn-RequestId`, as AWS sends them;
- `serve_until_signalled()` for running a server standalone, and
  `standalone()` for starting one that way from a test;
- `unsigned_request()` for what the SDKs would refuse to send.

How an error looks on the wire (status, `x-amzn-ErrorType`, which body members)
differs between services and is left to each of them.

Standard library only; binds 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Iterator

__all__ = [
    "HOST",
    "ServiceError",
    "RecordedRequest",
    "Handler",
    "LocalServer",
    "parse_json",
    "serve_until_signalled",
    "standalone",
    "unsigned_request",
]

HOST = "127.0.0.1"


class ServiceError(Exception):
    """An error answer: HTTP status + AWS error type + message (+ more members)."""

    def __init__(self, status: int, error_type: str, message: str, extra: dict | None = None):
        super().__init__(f"{status} {error_type}: {message}")
        self.status = status
        self.error_type = error_type
        self.message = message
        self.extra = dict(extra or {})  # more members of the error structure

    def as_tuple(self) -> tuple[int, str, str]:
        return (self.status, self.error_type, self.message)


@dataclass
class RecordedRequest:
    """One request as the server received it (headers have lower-case names)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, None when the body was empty or not JSON
    raw: bytes
    operation: str | None
    status: int = 0  # the HTTP status answered
    error_type: str | None = None  # x-amzn-ErrorType answered, if any
    time: float = field(default_factory=time.time)
    served_in: float = 0.0  # seconds the server spent answering, latency excluded


class Handler(BaseHTTPRequestHandler):
    """Reads a request, hands it to the server's `LocalServer.serve`."""

    protocol_version = "HTTP/1.1"  # keep-alive (and chunked streams), as the SDKs expect
    timeout = 120  # an idle keep-alive connection is dropped after this
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's
    # algorithm and the client's delayed ACK add ~40 ms to every answer, and
    # stream frames would not go out one by one.
    disable_nagle_algorithm = True

    @property
    def service(self) -> "LocalServer":
        return self.server.service  # type: ignore[attr-defined]

    def version_string(self) -> str:  # the Server header, as BaseHTTPRequestHandler builds it
        return f"{self.service.server_version} {self.sys_version}"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base-class signature
        pass

    def setup(self) -> None:
        super().setup()
        self.service._track(self.connection)

    def finish(self) -> None:
        self.service._untrack(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status: int, payload: dict, extra: dict[str, str]) -> None:
        """One JSON answer; `extra` are more headers (e.g. x-amzn-ErrorType)."""
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self) -> None:
        raw = self.read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.service.serve(self, self.command, self.path, headers, raw)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class LocalServer:
    """Base of the local AWS test servers: lifecycle, recording, injected errors.

    Subclasses set `name`, `server_version` and `OPERATIONS`, and implement
    `serve()`.  Their state is guarded by `self._lock` (handler threads run
    concurrently); `requests` holds every RecordedRequest (or subclass), in order
    of arrival, and `counts` the requests per operation.
    """

    name: ClassVar[str] = "local"  # names the serving thread
    server_version: ClassVar[str] = "LocalTestServer/1.0"
    OPERATIONS: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, port: int = 0, latency: float = 0.0):
        self._lock = threading.RLock()
        self.port = port
        self.latency = latency
        self.requests: list[RecordedRequest] = []
        self.counts: Counter[str] = Counter()  # operation -> requests received
        self._faults: dict[str, deque] = {op: deque() for op in self.OPERATIONS}
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set = set()  # open client sockets, closed by stop()

    # ---- lifecycle

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://{HOST}:{self.port}"

    def start(self):
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = ThreadingHTTPServer((HOST, self.port), Handler)
        httpd.daemon_threads = True
        httpd.service = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02},  # stop() waits up to one poll
            name=f"{self.name}-server-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends answers that are waiting (latency, stream frames)
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        with self._lock:
            conns, self._connections = list(self._connections), set()
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def wait(self, seconds: float) -> bool:
        """Sleep, but return False at once when the server is stopping."""
        return not self._stopping.wait(seconds) if seconds > 0 else not self._stopping.is_set()

    # ---- test helpers

    def fail_next(self, operation: str, status: int, error_type: str, message: str, *, times: int = 1) -> None:
        """Answer the next `times` calls of `operation` with this error, before the
        service looks at the request (e.g. fail_next("GetFindings", *access_denied()))."""
        if operation not in self.OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; expected one of {sorted(self.OPERATIONS)}")
        with self._lock:
            for _ in range(times):
                self._faults[operation].append((status, error_type, message))

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()
            self.counts.clear()

    # ---- request handling (called from handler threads)

    def serve(self, handler: Handler, method: str, raw_path: str, headers: dict[str, str], raw: bytes) -> None:
        """Answer one request through `handler` (send_json, or write a stream)."""
        raise NotImplementedError

    def record(self, rec: RecordedRequest) -> None:
        """Keep `rec` (and count its operation) before the request is answered."""
        with self._lock:
            self.requests.append(rec)
            if rec.operation:
                self.counts[rec.operation] += 1

    def take_fault(self, operation: str) -> None:
        """Raise the next error injected for `operation`, if any."""
        with self._lock:
            fault = self._faults[operation].popleft() if self._faults[operation] else None
        if fault is not None:
            raise ServiceError(*fault)


def parse_json(raw: bytes) -> tuple[Any, bool]:
    """(parsed body, whether it was invalid JSON); an empty body parses to None."""
    if not raw:
        return None, False
    try:
        return json.loads(raw), False
    except ValueError:
        return None, True


def serve_until_signalled(server: LocalServer) -> int:
    """Run `server` standalone: print its URL as the first line, serve until
    SIGTERM or SIGINT, then stop it."""
    server.start()
    print(server.url, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    server.stop()
    return 0


@contextmanager
def standalone(module: str, *args: str) -> Iterator[str]:
    """`python -m MODULE ARGS` from the repository root, as a user would start a
    server by hand; yields the URL it prints first.  On leaving, the server is
    sent SIGTERM and must exit with status 0 within 10 seconds."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        status = proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    assert status == 0, f"{module} exited with {status}"


def unsigned_request(
    server: LocalServer, method: str, path: str, body: object | bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One unsigned HTTP request (a JSON body unless bytes are given); returns
    (status, lower-case headers, body bytes)."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
    data = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload
