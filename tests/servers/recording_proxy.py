"""A pass-through HTTP proxy in front of a local server (moto) that records every
request, and can answer chosen requests itself with an error AWS would send:
AccessDenied from STS, an explicit deny from EC2, RegionDisabledException.

    with RecordingProxy(moto.url) as sts:
        sts.answer(lambda req: ACCESS_DENIED if b"444444444444" in req.body else None)
        env["AWS_ENDPOINT_URL_STS"] = sts.url
        ...
        [r.form for r in sts.requests if r.form.get("Action") == "AssumeRole"]

Standard library only; binds 127.0.0.1 only."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlparse

from .proxy import HOST, send_back, send_upstream



@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    # time.perf_counter() when the request was read, and when its answer was sent.
    received: float = 0.0
    answered: float = 0.0

    @property
    def form(self) -> dict[str, str]:
        """A query-protocol body (STS, EC2) as a dict of its first values."""
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}

    @property
    def region(self) -> str:
        """The region of the SigV4 credential scope (…/REGION/SERVICE/aws4_request)."""
        auth = self.headers.get("authorization", "")
        scope = auth.split("Credential=", 1)[-1].split(",", 1)[0].split("/")
        return scope[2] if len(scope) > 3 else ""


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "text/xml"


def sts_error(code: str, message: str, status: int = 403) -> Answer:
    """An STS (query protocol) error response."""
    xml = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
    )
    return Answer(status, xml.encode())


def ec2_error(code: str, message: str, status: int = 403) -> Answer:
    """An EC2 (ec2 query protocol) error response."""
    xml = (
        f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        "<RequestID>59dbff89-35bd-4eac-99ed-be587EXAMPLE</RequestID></Response>"
    )
    return Answer(status, xml.encode())


class RecordingProxy:
    def __init__(self, target_url: str) -> None:
        self.target = urlparse(target_url)
        self.requests: list[Recorded] = []
        self._answer: Callable[[Recorded], Answer | None] = lambda _r: None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{HOST}:{self._server.server_address[1]}"

    def answer(self, hook: Callable[[Recorded], Answer | None]) -> None:
        """Answer requests for which `hook` gives an Answer; forward the rest."""
        self._answer = hook

    def forms(self, action: str) -> list[dict[str, str]]:
        with self._lock:
            return [r.form for r in self.requests if r.form.get("Action") == action]

    def __enter__(self) -> "RecordingProxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.handle_one()

            def do_GET(self) -> None:
                self.handle_one()

            def do_PUT(self) -> None:
                self.handle_one()

            def do_DELETE(self) -> None:
                self.handle_one()

            def handle_one(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                recorded = Recorded(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                    received=time.perf_counter(),
                )
                with proxy._lock:
                    proxy.requests.append(recorded)
                canned = proxy._answer(recorded)
                if canned is not None:
                    self.send_response(canned.status)
                    self.send_header("Content-Type", canned.content_type)
                    self.send_header("Content-Length", str(len(canned.body)))
                    self.end_headers()
                    self.wfile.write(canned.body)
                    recorded.answered = time.perf_counter()
                    return
                status, headers, data = send_upstream(proxy.target, self, body, timeout=60)
                send_back(self, status, headers, data)
                recorded.answered = time.perf_counter()

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
