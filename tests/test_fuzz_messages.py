"""10,000 random but correctly signed messages of every type, on shell, control
and stdin, must leave the kernel alive and answering kernel_info."""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

import pytest
import zmq
from jupyter_client.session import Session

from conftest import Kernel

pytestmark = pytest.mark.usefixtures("no_ambient_aws")

MESSAGES = 10_000

REQUESTS = [
    "kernel_info_request",
    "execute_request",
    "complete_request",
    "inspect_request",
    "is_complete_request",
    "history_request",
    "comm_info_request",
    "comm_open",
    "comm_msg",
    "comm_close",
    "interrupt_request",
    "debug_request",
    "input_reply",
    "execute_reply",
    "status",
    "not_a_message_type",
    "",
]

# Magics that change nothing outside the session and return at once. Excluded on
# purpose: %approve and %rollback (they change accounts), %sleep (it waits), and
# shutdown_request (it ends the kernel, which is its job).
SAFE_CODE = [
    "%version",
    "%help",
    "%config",
    "%config lang=ja",
    "%config lang=xx",
    "%findings --severity CRITICAL",
    "%findings --severity",
    "%finding 999999",
    "%kb",
    "%audit --last 1",
    "%remediate",
    "%nosuchmagic",
    "fn main() {}",
    "",
    "%%",
    "%findings --limit -1",
]


def garbage(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**63, -(2**63), 10**30, 1.5, float(rng.random())])
    if kind == 3:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(0, 40)))
    if kind == 4:
        return rng.choice(["", "%", "$", "\x00", "a" * 70_000])
    if kind == 5:
        return [garbage(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {str(garbage(rng, 3))[:20]: garbage(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def content_for(msg_type: str, rng: random.Random) -> Any:
    """Plausible content with wrong types mixed in, or outright garbage."""
    if rng.random() < 0.3:
        return garbage(rng)
    code = rng.choice(SAFE_CODE) if rng.random() < 0.7 else garbage(rng)
    plausible: dict[str, Any] = {
        "code": code,
        "cursor_pos": rng.choice([0, -5, 3, 10**9, "x", None]),
        "detail_level": rng.choice([0, 1, 7, None]),
        "silent": rng.choice([True, False, "no"]),
        "store_history": rng.choice([True, False, 1]),
        "user_expressions": rng.choice([{}, [], {"a": "b"}]),
        "allow_stdin": rng.choice([False, True, None]),
        "stop_on_error": rng.choice([True, False, "yes"]),
        "hist_access_type": rng.choice(["tail", "range", "search", "bogus", 3]),
        "n": rng.choice([1, -1, 10**12, "ten"]),
        "pattern": garbage(rng),
        "comm_id": garbage(rng),
        "target_name": garbage(rng),
        "value": garbage(rng),
        "data": garbage(rng),
    }
    keys = rng.sample(sorted(plausible), rng.randrange(0, len(plausible) + 1))
    return {k: plausible[k] for k in keys}


def socket(kernel: Kernel, port: int) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.sndhwm = 0
    sock.connect(f"tcp://{kernel.km.ip}:{port}")
    return sock


@pytest.mark.timeout(240)
def test_random_signed_messages_leave_the_kernel_answering(kernel: Kernel):
    seed = int(os.environ.get("FUZZ_SEED", random.randrange(2**32)))
    print(f"FUZZ_SEED={seed}")
    rng = random.Random(seed)
    session = Session(key=kernel.km.session.key, signature_scheme="hmac-sha256")
    sockets = {
        "shell": socket(kernel, kernel.km.shell_port),
        "control": socket(kernel, kernel.km.control_port),
        "stdin": socket(kernel, kernel.km.stdin_port),
    }
    try:
        for i in range(MESSAGES):
            msg_type = rng.choice(REQUESTS)
            msg = session.msg(msg_type, content_for(msg_type, rng))
            if rng.random() < 0.1:
                # A correctly signed header with odd fields.
                field = rng.choice(["msg_id", "username", "session", "date", "version", "msg_type"])
                msg["header"][field] = garbage(rng)
            if rng.random() < 0.1:
                msg["parent_header"] = garbage(rng)
            if rng.random() < 0.1:
                msg["metadata"] = garbage(rng)
            if not isinstance(msg["content"], dict):
                msg["content"] = json.dumps(msg["content"]).encode()
            channel = rng.choice(["shell", "shell", "control", "stdin"])
            frames = session.serialize(msg)
            sockets[channel].send_multipart(frames)
            if i % 500 == 0:
                # Drain what came back so the kernel's sends never back up.
                for s in sockets.values():
                    while s.poll(0):
                        s.recv_multipart()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            for s in sockets.values():
                while s.poll(0):
                    s.recv_multipart()
            try:
                reply = kernel.request("shell", "kernel_info_request", timeout=20)
                break
            except AssertionError:
                assert kernel.alive(), f"kernel died (FUZZ_SEED={seed})" + kernel.stderr_tail()
        else:
            pytest.fail(f"no kernel_info_reply after the burst (FUZZ_SEED={seed})")
    finally:
        for s in sockets.values():
            s.close()
    assert reply["content"]["status"] == "ok"
    assert kernel.alive()
    assert kernel.ok("%version").text()
