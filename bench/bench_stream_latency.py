#!/usr/bin/env python3
"""Benchmark (issue 4): the kernel's added latency when streaming `%summarize`.

Measured: from the moment the local Bedrock server has written and flushed an event
frame of a ConverseStream answer to the moment a jupyter_client, reading iopub over
ZeroMQ, has received the update_display_data that carries that frame's text.

    first text   first contentBlockDelta frame -> first update_display_data whose
                 application/vnd.runbook+json "markdown" contains that delta's text
    every delta  each contentBlockDelta frame  -> first update whose markdown starts
                 with the text streamed so far (N x chunks samples)
    last frame   the stream's last frame (metadata) -> the final update (the one
                 with the complete answer, usage and no status)

The server (tests/servers/bedrock.py) runs in this process, in a thread, so its
RecordedRequest.event_times (time.perf_counter() after each frame is written and
flushed) and the client's receipt times (perf_counter() as soon as
get_iopub_msg returns, read in a tight loop) are on the same clock.  The figure
therefore includes the kernel's work (HTTP/1.1 chunk read, event-stream decode in
the AWS SDK, markdown to HTML, JSON, ZeroMQ send) plus loopback TCP, ZeroMQ and
jupyter_client's message decoding on the client side.

Frames are `--chunk-delay` apart (default 50 ms), so each delta's update is clearly
separated from the next frame.  One warm-up `%summarize` is run first and reported
apart (first use of code paths, connection set-up).

Target: the first text's added latency under 5 ms.  Figures only, not a test.

    make release kernel install, then:  .venv/bin/python bench/bench_stream_latency.py
    options: --runs N (30)  --chunks 8  --chunk-delay 0.05  --warmup 1  --json FILE
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

import zmq
from jupyter_client.kernelspec import KernelSpecManager

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test servers, imported as the tests do

from bench_kernel import OURS, Running, drain, wait_reply  # noqa: E402 - same directory
from servers import bedrock as br  # noqa: E402

MODEL = "global.anthropic.claude-sonnet-4-6"
RUNBOOK_MIME = "application/vnd.runbook+json"
TARGET_MS = 5.0
RUN_TIMEOUT = 60.0
POLL_S = 0.005  # get_iopub_msg timeout in the receive loop

ANSWER = (
    "### What was found\n"
    "SSH (TCP port 22) is open to 0.0.0.0/0 on the security group of the CI runners.\n\n"
    "### Why it matters\n"
    "Anyone on the internet can try to log in, and brute-force attempts start within minutes.\n\n"
    "### Next steps\n"
    "1. Revoke the 0.0.0.0/0 rule on port 22.\n"
    "2. Reach the runners through Session Manager instead.\n"
    "3. Add a Config rule so the group stays closed. (run {run})"
)


def bedrock_kernel_env(server: br.BedrockServer, tmp: Path) -> dict[str, str]:
    """The outer environment minus every AWS_* / RUNBOOK_* variable, then the
    settings that make the sandbox use the local Bedrock server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUNBOOK_"))}
    env.update({
        "RUNBOOK_BACKEND": "sandbox",
        "RUNBOOK_MODEL": MODEL,  # an explicit model makes the sandbox use Bedrock
        "RUNBOOK_REGION": "us-east-1",
        "RUNBOOK_AUDIT_LOG": str(tmp / "audit.jsonl"),  # keep the bench out of $HOME
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        **server.env(),
    })
    return env


@dataclass
class RunFigures:
    first_ms: float  # from the start of the first text frame's write
    last_ms: float  # from the start of the last frame's write
    first_after_flush_ms: float  # from the end of the first text frame's write+flush
    last_after_flush_ms: float
    write_us: float  # how long the first text frame's write+flush call took (server thread)
    deltas_ms: list[float] = field(default_factory=list)
    updates: int = 0


def collect(kc, msg_id: str) -> list[tuple[float, dict]]:
    """Every iopub message of one execution, each with its perf_counter() receipt
    time, until the execution's idle status."""
    got: list[tuple[float, dict]] = []
    deadline = time.perf_counter() + RUN_TIMEOUT
    get = kc.get_iopub_msg
    clock = time.perf_counter
    while True:
        try:
            msg = get(timeout=POLL_S)
        except Empty:
            if clock() > deadline:
                raise TimeoutError(f"no idle status for {msg_id}")
            continue
        t = clock()
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        got.append((t, msg))
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return got


def markdown_of(msg: dict) -> str | None:
    data = (msg["content"].get("data") or {}).get(RUNBOOK_MIME)
    return data.get("markdown") if isinstance(data, dict) else None


def one_run(k: Running, server: br.BedrockServer, run: int, chunks: int, delay: float) -> RunFigures:
    answer = ANSWER.format(run=run)
    pieces = br._split_text(answer, chunks)  # the deltas the server will send, in order
    server.clear_requests()
    server.enqueue(br.text(answer, chunks=chunks, delay=delay))

    msg_id = k.kc.execute("%summarize 1", allow_stdin=False)
    messages = collect(k.kc, msg_id)
    reply = wait_reply(k.kc, msg_id)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"run {run}: %summarize failed: {reply['content']}")

    streams = server.requests_for(br.CONVERSE_STREAM)
    if len(streams) != 1:
        raise RuntimeError(f"run {run}: expected one ConverseStream call, got {len(streams)}")
    # The kernel can be idle before the server thread has written the closing chunk.
    deadline = time.perf_counter() + 5.0
    while not streams[0].stream_complete and time.perf_counter() < deadline:
        time.sleep(0.001)
    if not streams[0].stream_complete:
        raise RuntimeError(f"run {run}: the stream did not complete: {streams[0].events_sent}")
    rec = streams[0]
    frames = rec.event_times  # (name, after write+flush)
    started = rec.event_write_started  # before the write, index for index
    text_idx = [i for i, (name, _) in enumerate(frames) if name == "contentBlockDelta"]
    text_frames = [started[i] for i in text_idx]
    if len(text_frames) != len(pieces):
        raise RuntimeError(f"run {run}: {len(text_frames)} text frames sent, expected {len(pieces)}")

    displays = [m for _, m in messages if m["msg_type"] == "display_data" and markdown_of(m) is not None]
    if len(displays) != 1:
        raise RuntimeError(f"run {run}: expected one explanation display, got {len(displays)}")
    display_id = displays[0]["content"]["transient"]["display_id"]
    updates = [
        (t, markdown_of(m), m) for t, m in messages
        if m["msg_type"] == "update_display_data"
        and m["content"]["transient"]["display_id"] == display_id
        and markdown_of(m) is not None
    ]

    def first_update(pred) -> float:
        for t, md, _ in updates:
            if pred(md):
                return t
        raise RuntimeError(f"run {run}: no update matched")

    first_t = first_update(lambda md: pieces[0] in md)
    deltas = []
    so_far = ""
    for piece, sent in zip(pieces, text_frames):
        so_far += piece
        prefix = so_far
        deltas.append((first_update(lambda md, p=prefix: md.startswith(p)) - sent) * 1000)

    t_final, md_final, m_final = updates[-1]
    final_json = m_final["content"]["data"][RUNBOOK_MIME]
    if md_final != answer or final_json.get("status") is not None or not final_json.get("usage"):
        raise RuntimeError(f"run {run}: the last update is not the final answer: {final_json}")
    last_name, last_flushed = frames[-1]
    if last_name != "metadata":
        raise RuntimeError(f"run {run}: the stream's last frame is {last_name}, expected metadata")

    first_flushed = frames[text_idx[0]][1]
    return RunFigures(
        first_ms=(first_t - text_frames[0]) * 1000,
        last_ms=(t_final - started[-1]) * 1000,
        first_after_flush_ms=(first_t - first_flushed) * 1000,
        last_after_flush_ms=(t_final - last_flushed) * 1000,
        write_us=(first_flushed - text_frames[0]) * 1e6,
        deltas_ms=deltas,
        updates=len(updates),
    )


def p90(values: list[float]) -> float:
    """Nearest-rank 90th percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def row(label: str, values: list[float], target: float | None) -> str:
    tgt = f"< {target:.1f}" if target is not None else ""
    return (f"{label:<44} {len(values):>4} {statistics.median(values):>9.3f} {p90(values):>9.3f} "
            f"{max(values):>9.3f} {min(values):>9.3f} {tgt:>8}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30, help="measured %%summarize runs")
    ap.add_argument("--warmup", type=int, default=1, help="runs before the measured ones, reported apart")
    ap.add_argument("--chunks", type=int, default=8, help="text deltas per answer")
    ap.add_argument("--chunk-delay", type=float, default=0.05, help="seconds between stream frames")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = ap.parse_args()

    # The server thread and this reader share the GIL; a short switch interval keeps a
    # waiting thread from being held up to the default 5 ms by the other one.
    sys.setswitchinterval(0.0005)
    zmq.Context.instance().setsockopt(zmq.RECONNECT_IVL, 5)

    spec = KernelSpecManager().get_kernel_spec(OURS)
    argv0 = spec.argv[0]
    wanted = os.environ.get("RUNBOOK_KERNEL_BIN")
    if wanted and not os.path.samefile(argv0, wanted):
        sys.exit(f"kernelspec {OURS} runs {argv0}, not RUNBOOK_KERNEL_BIN={wanted}")

    warm: list[RunFigures] = []
    runs: list[RunFigures] = []
    with tempfile.TemporaryDirectory(prefix="runbook-bench-stream-") as tmp, \
            br.BedrockServer(chunk_delay=args.chunk_delay) as server:
        tmp_path = Path(tmp)
        k = Running(OURS, bedrock_kernel_env(server, tmp_path), tmp_path)
        try:
            k.ensure_iopub()
            listing = k.kc.execute("%findings --limit 5", allow_stdin=False)
            if wait_reply(k.kc, listing)["content"]["status"] != "ok":
                raise RuntimeError("%findings --limit 5 failed")
            time.sleep(0.5)
            drain(k.kc)
            for i in range(args.warmup + args.runs):
                fig = one_run(k, server, i, args.chunks, args.chunk_delay)
                (warm if i < args.warmup else runs).append(fig)
                what = "warm-up" if i < args.warmup else f"run {i - args.warmup + 1}/{args.runs}"
                print(f"  {what}: first text {fig.first_ms:.3f} ms, last frame {fig.last_ms:.3f} ms, "
                      f"{fig.updates} updates", file=sys.stderr)
        finally:
            k.stop()

    release = "/release/" in argv0
    print(f"runbook-kernel: {argv0} ({'release' if release else 'NOT a release build path'})")
    print(f"machine:        {os.cpu_count()} cores (os.cpu_count); python {sys.version.split()[0]}; "
          f"pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}")
    print(f"stream:         {args.chunks} text deltas, {args.chunk_delay * 1000:.0f} ms between frames; "
          f"{args.runs} runs after {args.warmup} warm-up")
    print("clock:          server perf_counter() just before the frame's write (the first byte can reach "
          "the kernel during that call) -> client perf_counter() when get_iopub_msg returns")
    print()
    head = f"{'latency (ms)':<44} {'N':>4} {'median':>9} {'p90':>9} {'max':>9} {'min':>9} {'target':>8}"
    print(head)
    print("-" * len(head))
    firsts = [r.first_ms for r in runs]
    lasts = [r.last_ms for r in runs]
    every = [d for r in runs for d in r.deltas_ms]
    print(row("first text frame -> first update", firsts, TARGET_MS))
    print(row("every text frame -> its update", every, None))
    print(row("last frame (metadata) -> final update", lasts, None))
    print(row("  same, from after write+flush: first text", [r.first_after_flush_ms for r in runs], None))
    print(row("  same, from after write+flush: last frame", [r.last_after_flush_ms for r in runs], None))
    print(row("  server write+flush of first text (us)", [r.write_us for r in runs], None))
    if warm:
        print(row("warm-up: first text frame -> first update", [r.first_ms for r in warm], None))
        print(row("warm-up: last frame -> final update", [r.last_ms for r in warm], None))
    print()
    med = statistics.median(firsts)
    print(f"first-text median {med:.3f} ms vs target < {TARGET_MS:.0f} ms: "
          f"{'under' if med < TARGET_MS else 'OVER'} (p90 {p90(firsts):.3f}, max {max(firsts):.3f})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "kernel": argv0, "cores": os.cpu_count(), "runs": args.runs, "chunks": args.chunks,
            "chunk_delay_s": args.chunk_delay, "first_ms": firsts, "last_ms": lasts, "every_ms": every,
            "first_after_flush_ms": [r.first_after_flush_ms for r in runs],
            "last_after_flush_ms": [r.last_after_flush_ms for r in runs],
            "write_us": [r.write_us for r in runs],
            "warmup_first_ms": [r.first_ms for r in warm], "warmup_last_ms": [r.last_ms for r in warm],
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
