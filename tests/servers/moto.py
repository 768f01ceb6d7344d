"""moto's server (`moto_server`, from the moto[server] package) for tests.

moto stands in for EC2, IAM, GuardDuty, KMS, S3 Control and STS.  One server
answers for every service: it tells them apart by the request (the SigV4
credential scope, the path, the X-Amz-Target header), so a single endpoint URL
serves all of them, e.g. `AWS_ENDPOINT_URL=http://127.0.0.1:PORT`.

    with MotoServer() as moto:
        boto3.client("ec2", **moto.client_kwargs()).describe_vpcs()

The server binds 127.0.0.1 on a free port, is ready when `start()` returns,
and is stopped by `stop()` (or leaving the `with` block).  Its output goes to a
log file whose tail is shown if it fails to start.

moto's default account is 123456789012; any access key works.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .http import HOST

__all__ = ["MotoServer", "MOTO_ACCOUNT", "MOTO_REGION", "DUMMY_CREDENTIALS"]

MOTO_ACCOUNT = "123456789012"
MOTO_REGION = "us-east-1"
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
STARTUP_TIMEOUT = 30.0
RUNNING_ON = re.compile(r"Running on http://" + re.escape(HOST) + r":(\d+)")


def _moto_command() -> list[str]:
    """`moto_server` from the running Python's environment, else the module."""
    script = Path(sys.executable).with_name("moto_server")
    if script.exists():
        exe = [str(script)]
    elif shutil.which("moto_server"):
        exe = [str(shutil.which("moto_server"))]
    else:
        exe = [sys.executable, "-m", "moto.server"]
    return [*exe, "-H", HOST, "-p", "0"]


class MotoServer:
    """A `moto_server` process on 127.0.0.1."""

    def __init__(self, region: str = MOTO_REGION) -> None:
        self.region = region
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> "MotoServer":
        # Port 0: the server binds a port no other process holds (parallel test
        # workers each start their own), and its log names it.
        self.port = 0
        self._log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)
        env = {**os.environ, **DUMMY_CREDENTIALS, "AWS_DEFAULT_REGION": self.region}
        self.process = subprocess.Popen(
            _moto_command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        if not self._wait_ready():
            log = self.log_tail()
            self.stop()
            raise RuntimeError(f"moto_server did not start on {HOST}:\n{log}")
        return self

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            if not self.port:
                self.port = self._bound_port()
            if self.port:
                try:
                    with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=2) as reply:
                        if reply.status == 200:
                            return True
                except (urllib.error.URLError, ConnectionError, OSError):
                    pass
            time.sleep(0.1)
        return False

    def _bound_port(self) -> int:
        """The port in the server's " * Running on http://127.0.0.1:PORT" line (werkzeug), or 0."""
        try:
            text = Path(self._log.name).read_text(errors="replace")
        except OSError:
            return 0
        found = RUNNING_ON.search(text)
        return int(found.group(1)) if found else 0

    def reset(self) -> None:
        """Forgets every resource (moto's POST /moto-api/reset)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def log_tail(self, lines: int = 40) -> str:
        if self._log is None:
            return ""
        try:
            text = Path(self._log.name).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            try:
                os.unlink(self._log.name)
            except OSError:
                pass
            self._log = None

    def env(self) -> dict[str, str]:
        """Environment variables that point any AWS SDK at this server."""
        return {
            **DUMMY_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for `boto3.client(service, **kwargs)`."""
        return {
            "endpoint_url": self.url,
            "region_name": self.region,
            "aws_access_key_id": DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "aws_session_token": DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
        }

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    with MotoServer() as server:
        print(server.url, flush=True)
        try:
            while server.process is not None and server.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
