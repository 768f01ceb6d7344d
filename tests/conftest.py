"""Shared fixtures: start the real runbook kernel and talk to it as JupyterLab does.

The kernel is found through its installed kernelspec ("security-runbook"), which
`make python-tests` writes into the virtual environment that runs pytest.  Every
kernel started here gets the sandbox backend and its own audit log, and is shut
down when the test ends, whatever the outcome.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any, Callable

import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_client.manager import KernelManager
from jupyter_kernel_test.msgspec_v5 import schema_fragments, validate_message

from servers import bedrock as br

KERNEL_NAME = "security-runbook"
# Seconds to wait for any single reply; pytest-timeout (pytest.ini) bounds a whole test.
TIMEOUT = 20.0
STARTUP_TIMEOUT = 30.0

ERROR_NAMES = {"UsageError", "UnknownMagic", "NotSupported", "Interrupted", "KernelError"}
# Seconds a first Rust cell may take: evcxr starts and compiles its first crate.
RUST_START_TIMEOUT = 180.0
RUNBOOK_MIME = "application/vnd.runbook+json"
SETTINGS_KEYS = (
    "backend",
    "region",
    "profile",
    "model",
    "lang",
    "kb",
    "approval",
    "max_tool_rounds",
    "max_tokens",
    "audit_log",
)
MAGICS = ("%help", "%lsmagic", "%findings", "%finding", "%config", "%version", "%sleep")


def check_message(msg: dict[str, Any], parent_id: str | None = None) -> None:
    """Validate against the community message-spec schemas (types it knows)."""
    if msg["header"]["msg_type"] in schema_fragments:
        validate_message(msg, None, parent_id)


# `make test` lints with clippy-driver as the workspace's rustc wrapper; a Rust
# cell's crate must not be linted (a user's kernel never sees these).
BUILD_ONLY_ENV = {"RUSTC_WORKSPACE_WRAPPER", "CLIPPY_ARGS"}


def kernel_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for a test kernel: the outer RUNBOOK_* settings are dropped so
    that every setting's source is known, then sandbox backend + private audit log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_") and k not in BUILD_ONLY_ENV}
    env["RUNBOOK_BACKEND"] = "sandbox"
    env["RUNBOOK_AUDIT_LOG"] = str(tmp_path / "audit.jsonl")
    env.setdefault("RUST_BACKTRACE", "1")
    # Rust cells: cargo works offline, from the crates the build already fetched.
    env["EVCXR_CONFIG_DIR"] = str(Path(__file__).parent / "fixtures" / "evcxr")
    env.update(extra)
    return env


def find_kernelspec():
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        pytest.fail(
            f"kernelspec {KERNEL_NAME!r} is not installed for {sys.prefix}; "
            "run `make python-tests` (it builds the kernel and installs it into .venv)",
            pytrace=False,
        )
    wanted = os.environ.get("RUNBOOK_KERNEL_BIN")
    if wanted and not os.path.samefile(spec.argv[0], wanted):
        pytest.fail(
            f"kernelspec {spec.resource_dir} runs {spec.argv[0]}, but RUNBOOK_KERNEL_BIN is {wanted}; "
            "another kernelspec of the same name shadows the one in .venv",
            pytrace=False,
        )
    return spec


@dataclass
class ExecResult:
    code: str
    msg_id: str
    reply: dict[str, Any]
    iopub: list[dict[str, Any]]  # every iopub message of this request, busy ... idle
    elapsed: float

    @property
    def content(self) -> dict[str, Any]:
        return self.reply["content"]

    @property
    def status(self) -> str:
        return self.content["status"]

    @property
    def outputs(self) -> list[dict[str, Any]]:
        return [m for m in self.iopub if m["msg_type"] not in ("status", "execute_input")]

    def of_type(self, msg_type: str) -> list[dict[str, Any]]:
        return [m for m in self.iopub if m["msg_type"] == msg_type]

    @property
    def displays(self) -> list[dict[str, Any]]:
        return self.of_type("display_data")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.of_type("error")

    def describe(self) -> str:
        lines = [f"cell {self.code[:200]!r} -> reply {self.content!r}"]
        for m in self.iopub:
            lines.append(f"  iopub {m['msg_type']}: {str(m['content'])[:400]}")
        return "\n".join(lines)

    def single_display(self) -> dict[str, Any]:
        """The one display_data of a successful magic; returns its data bundle."""
        assert self.status == "ok", self.describe()
        assert len(self.displays) == 1, f"expected exactly one display_data\n{self.describe()}"
        return self.displays[0]["content"]["data"]

    def text(self) -> str:
        """All text/plain of display_data and update_display_data, joined."""
        parts = []
        for m in self.iopub:
            if m["msg_type"] in ("display_data", "update_display_data", "execute_result"):
                parts.append(str(m["content"]["data"].get("text/plain", "")))
        return "\n".join(parts)


@dataclass
class Kernel:
    """A running kernel with a blocking client, plus bookkeeping that sorts
    iopub and reply messages by the request they answer."""

    km: KernelManager
    kc: Any
    stderr_path: Path
    _iopub: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _iopub_times: dict[str, list[float]] = field(default_factory=dict)
    _replies: dict[str, dict[str, Any]] = field(default_factory=dict)

    # -- raw message plumbing -------------------------------------------------

    def _pump_iopub(self, timeout: float) -> bool:
        try:
            msg = self.kc.get_iopub_msg(timeout=timeout)
        except Empty:
            return False
        now = time.monotonic()
        check_message(msg)
        parent = msg["parent_header"].get("msg_id", "")
        self._iopub.setdefault(parent, []).append(msg)
        self._iopub_times.setdefault(parent, []).append(now)
        return True

    def iopub_for(self, parent_id: str) -> list[dict[str, Any]]:
        return list(self._iopub.get(parent_id, []))

    def iopub_times(self, parent_id: str) -> list[float]:
        return list(self._iopub_times.get(parent_id, []))

    def wait_iopub(
        self,
        parent_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = TIMEOUT,
    ) -> dict[str, Any]:
        """Wait until an iopub message of `parent_id` satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            msgs = self._iopub.get(parent_id, [])
            for m in msgs[seen:]:
                if predicate(m):
                    return m
            seen = len(msgs)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no matching iopub message for {parent_id} within {timeout}s; got "
                    + ", ".join(m["msg_type"] for m in msgs)
                    + self.stderr_tail()
                )
            self._pump_iopub(min(left, 0.2))

    def wait_any_iopub(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        """Wait until an iopub message of any parent satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        while True:
            for msgs in self._iopub.values():
                for m in msgs:
                    if predicate(m):
                        return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching iopub message within {timeout}s" + self.stderr_tail())
            self._pump_iopub(min(left, 0.2))

    def wait_idle(self, parent_id: str, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        self.wait_iopub(
            parent_id,
            lambda m: m["msg_type"] == "status" and m["content"]["execution_state"] == "idle",
            timeout,
        )
        return self.iopub_for(parent_id)

    def quiet_iopub(self, parent_id: str, seconds: float) -> list[dict[str, Any]]:
        """Read iopub for `seconds`, return what arrived for `parent_id`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._pump_iopub(min(left, 0.1))
        return self.iopub_for(parent_id)

    def reply(self, msg_id: str, channel: str = "shell", timeout: float = TIMEOUT) -> dict[str, Any]:
        """The reply to `msg_id` on shell or control (other replies are kept)."""
        get = self.kc.get_shell_msg if channel == "shell" else self.kc.get_control_msg
        deadline = time.monotonic() + timeout
        while msg_id not in self._replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no {channel} reply to {msg_id} within {timeout}s" + self.stderr_tail()
                )
            try:
                msg = get(timeout=min(left, 0.5))
            except Empty:
                continue
            self._replies[msg["parent_header"].get("msg_id", "")] = msg
        msg = self._replies.pop(msg_id)
        check_message(msg, msg_id)
        return msg

    def send(self, channel: str, msg_type: str, content: dict[str, Any] | None = None) -> str:
        msg = self.kc.session.msg(msg_type, content or {})
        getattr(self.kc, f"{channel}_channel").send(msg)
        return msg["header"]["msg_id"]

    def request(
        self, channel: str, msg_type: str, content: dict[str, Any] | None = None, timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        msg_id = self.send(channel, msg_type, content)
        return self.reply(msg_id, channel, timeout)

    # -- conveniences -----------------------------------------------------------

    def start_execute(self, code: str, *, silent: bool = False, store_history: bool = True) -> str:
        return self.kc.execute(
            code, silent=silent, store_history=store_history, allow_stdin=False, stop_on_error=True
        )

    def finish_execute(self, code: str, msg_id: str, timeout: float = TIMEOUT, t0: float | None = None) -> ExecResult:
        t0 = time.monotonic() if t0 is None else t0
        # iopub first, so that arrival times are taken as messages come in
        iopub = self.wait_idle(msg_id, timeout)
        reply = self.reply(msg_id, "shell", timeout)
        assert reply["msg_type"] == "execute_reply", reply
        return ExecResult(code, msg_id, reply, iopub, time.monotonic() - t0)

    def execute(
        self, code: str, *, silent: bool = False, store_history: bool = True, timeout: float = TIMEOUT
    ) -> ExecResult:
        t0 = time.monotonic()
        msg_id = self.start_execute(code, silent=silent, store_history=store_history)
        return self.finish_execute(code, msg_id, timeout, t0)

    def ok(self, code: str, **kw: Any) -> ExecResult:
        res = self.execute(code, **kw)
        assert res.status == "ok", res.describe() + self.stderr_tail()
        assert not res.errors, res.describe()
        return res

    def complete(self, code: str, cursor_pos: int | None = None) -> dict[str, Any]:
        msg_id = self.kc.complete(code, len(code) if cursor_pos is None else cursor_pos)
        return self.reply(msg_id)["content"]

    def inspect(self, code: str, cursor_pos: int | None = None) -> dict[str, Any]:
        msg_id = self.kc.inspect(code, len(code) if cursor_pos is None else cursor_pos, 0)
        return self.reply(msg_id)["content"]

    def is_complete(self, code: str) -> dict[str, Any]:
        return self.reply(self.kc.is_complete(code))["content"]

    def history(self, **kw: Any) -> dict[str, Any]:
        kw.setdefault("raw", True)
        kw.setdefault("output", False)
        return self.reply(self.kc.history(**kw))["content"]

    @property
    def pid(self) -> int:
        return self.km.provisioner.pid

    def alive(self) -> bool:
        return self.km.is_alive()

    def wait_exit(self, timeout: float = 10.0) -> int:
        return self.km.provisioner.process.wait(timeout=timeout)

    def stderr_tail(self, limit: int = 4000) -> str:
        try:
            data = self.stderr_path.read_bytes()[-limit:]
        except OSError:
            return ""
        if not data:
            return ""
        return "\n--- kernel stderr (tail) ---\n" + data.decode("utf-8", "replace")


# jupyter_client picks the kernel's ports by binding port 0 and closing the socket;
# under `pytest -n`, another worker's process can take one of them before the
# kernel binds it.  The kernel then exits saying so, and is started again on new ports.
PORT_TAKEN = "Address already in use"
START_ATTEMPTS = 3


def start_kernel(tmp_path: Path, **env_extra: str) -> Kernel:
    find_kernelspec()
    attempt = 0
    while True:
        attempt += 1
        km = KernelManager(kernel_name=KERNEL_NAME)
        stderr_path = tmp_path / "kernel-stderr.log"
        with open(stderr_path, "wb") as stderr:
            km.start_kernel(env=kernel_env(tmp_path, **env_extra), stderr=stderr, cwd=str(tmp_path))
        kc = km.client()
        kc.start_channels()
        kernel = Kernel(km, kc, stderr_path)
        try:
            kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
            return kernel
        except Exception:
            stop_kernel(kernel)
            tail = kernel.stderr_tail()
            if PORT_TAKEN not in tail or attempt == START_ATTEMPTS:
                raise RuntimeError(f"kernel did not become ready (start {attempt})" + tail) from None
            sys.stderr.write(f"kernel start {attempt}: another process took one of its ports; starting it again\n")


def stop_kernel(kernel: Kernel) -> None:
    try:
        kernel.kc.stop_channels()
    finally:
        try:
            if kernel.km.has_kernel:
                kernel.km.shutdown_kernel(now=False)
        except Exception:
            kernel.km.shutdown_kernel(now=True)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def kernel_factory(tmp_path, request):
    """Start kernels (with extra RUNBOOK_* env) that are always shut down."""
    started: list[Kernel] = []

    def factory(**env_extra: str) -> Kernel:
        sub = tmp_path / f"kernel{len(started)}"
        sub.mkdir()
        k = start_kernel(sub, **env_extra)
        started.append(k)
        return k

    yield factory
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for k in started:
        if failed:
            sys.stderr.write(k.stderr_tail())
        stop_kernel(k)


@pytest.fixture
def kernel(kernel_factory) -> Kernel:
    return kernel_factory()


# --- helpers shared by the magic tests ------------------------------------------


def final_displays(res: ExecResult) -> list[dict[str, Any]]:
    """The last version of every display of a cell, in order of creation."""
    order: list[str] = []
    latest: dict[str, dict[str, Any]] = {}
    for m in res.iopub:
        if m["msg_type"] not in ("display_data", "update_display_data"):
            continue
        display_id = (m["content"].get("transient") or {}).get("display_id") or m["header"]["msg_id"]
        if m["msg_type"] == "display_data":
            order.append(display_id)
        latest[display_id] = m["content"]["data"]
    return [latest[d] for d in order]


def last_bundle(res: ExecResult) -> dict[str, Any]:
    """The final form of a cell's last display."""
    displays = final_displays(res)
    assert displays, res.describe()
    return displays[-1]


def assert_fails_with(kernel: Kernel, code: str, ename: str, words: list[str]) -> None:
    """`code` fails with error `ename`, and its message and traceback name every one of `words`."""
    res = kernel.execute(code)
    assert res.status == "error" and res.content["ename"] == ename, res.describe()
    text = res.content["evalue"] + "\n".join(res.content["traceback"])
    for w in words:
        assert w in text, text


@pytest.fixture
def no_ambient_aws(monkeypatch):
    """Kernels inherit the test's environment: drop any real AWS settings."""
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)


def execute_with_answer(kernel: Kernel, code: str, answer, timeout: float = 30.0):
    """Runs `code` with stdin allowed and answers its input request with `answer`
    (a string, or a function of the prompt). Returns (result, prompt)."""
    msg_id = kernel.kc.execute(code, allow_stdin=True, stop_on_error=True)
    deadline = time.monotonic() + timeout
    prompt = None
    while time.monotonic() < deadline:
        try:
            msg = kernel.kc.get_stdin_msg(timeout=0.5)
        except Empty:
            continue
        if msg["msg_type"] == "input_request":
            prompt = msg["content"]["prompt"]
            kernel.kc.input(answer(prompt) if callable(answer) else answer)
            break
    assert prompt is not None, "the kernel never asked" + kernel.stderr_tail()
    return kernel.finish_execute(code, msg_id, timeout), prompt


# --- findings, plans and the audit trail, as the magic tests read them -------------

# The sandbox security group whose name carries attacker-chosen HTML (EC2.19).
HOSTILE_GROUP = "sg-0c0ffee0ddba11000"


def ec2_19_hostile(row) -> bool:
    """EC2.19 on the security group whose name carries attacker-chosen HTML."""
    return row["control_id"] == "EC2.19" and "<img" in row["resource"]


def open_rows(kernel: Kernel, *flags: str) -> list[dict]:
    """The rows `%findings --all FLAGS` shows."""
    res = kernel.ok("%findings --all " + " ".join(flags))
    for data in final_displays(res):
        rows = (data.get(RUNBOOK_MIME) or {}).get("shown")
        if rows is not None:
            return rows
    raise AssertionError(res.describe())


def listing_number(kernel: Kernel, predicate) -> int:
    """The listing number of the first finding of `%findings --all` matching `predicate`."""
    res = kernel.ok("%findings --all")
    for data in final_displays(res):
        rows = (data.get(RUNBOOK_MIME) or {}).get("shown")
        if rows:
            for row in rows:
                if predicate(row):
                    return row["number"]
    raise AssertionError("no such finding\n" + res.describe())


def audit_records(path: Path) -> list[dict]:
    """Every record of an audit log (none when it does not exist yet)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def audit_path(kernel: Kernel) -> Path:
    """The audit log the kernel writes, as `%config` shows it."""
    config = last_bundle(kernel.ok("%config audit_log"))[RUNBOOK_MIME]
    return Path(config["settings"][0]["value"])


# --- Claude on Bedrock, through the real SDK, against the local Bedrock server ------

BEDROCK_MODEL = "global.anthropic.claude-sonnet-4-6"


def model_env(**extra: str) -> dict[str, str]:
    """A sandbox kernel whose model is Claude on Bedrock (no real AWS settings);
    `extra` says where Bedrock is."""
    env = {
        "RUNBOOK_BACKEND": "sandbox",
        "RUNBOOK_MODEL": BEDROCK_MODEL,  # an explicit model makes the sandbox use Bedrock
        "RUNBOOK_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    env.update(extra)
    return env


def bedrock_env(server: br.BedrockServer, **extra: str) -> dict[str, str]:
    """A sandbox kernel whose model is Claude on `server`."""
    return model_env(AWS_MAX_ATTEMPTS="2", **{**server.env(), **extra})


@pytest.fixture
def bedrock():
    """A Bedrock server for one test (a test module may override the frame delay)."""
    with br.BedrockServer(chunk_delay=0.01) as server:
        yield server


@pytest.fixture
def bk(kernel_factory, bedrock):
    """A sandbox kernel whose model is the `bedrock` fixture's server."""
    return kernel_factory(**bedrock_env(bedrock))


def revoke_input(group_id: str, rule_ids: list[str], **extra) -> dict:
    """A propose_remediation tool input that revokes `rule_ids` of `group_id`."""
    return {
        "actions": [{"action": "revoke_ingress", "group_id": group_id, "rule_ids": rule_ids}],
        "rationale": "SSH must not be open to the internet.",
        **extra,
    }


def hostile_rule_ids(kernel: Kernel, n) -> list[str]:
    """The rule ids the catalog would revoke (the catalog is the reference)."""
    kernel.ok("%config model=catalog")
    plan = last_bundle(kernel.ok(f"%remediate {n}"))[RUNBOOK_MIME]["plan"]
    kernel.ok("%config model=")  # back to the model from the environment
    return [r["rule_id"] for r in plan["actions"][0]["rules"]]
