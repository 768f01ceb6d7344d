#!/usr/bin/env python3
"""Benchmark: the runbook kernel side by side with ipykernel, same driver, same run.

Measured for each kernel, through jupyter_client exactly as a frontend would:
  (a) start: time from launching the kernel process to its kernel_info_reply
      (median of N starts, after one discarded warm-up start);
  (b) round trip: 1,000 execute requests one after another (`%version` for ours,
      `pass` for ipykernel), each timed from sending execute_request to having both
      the execute_reply and the closing `idle` status; total and per request;
  (c) resident memory (RSS of the kernel process and its children, via psutil)
      when idle after start and after the 1,000 requests.

Targets (ours / ipykernel): start <= 1/10, round trip <= 1/2, memory <= 1/2.

Run with `make bench` (it builds the release kernel and installs it into .venv,
then sets RUNBOOK_KERNEL_BIN).  `--check` makes the exit status 1 when a target
is missed; `--json FILE` also writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Empty

import psutil
import zmq
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

OURS = "security-runbook"
IPYKERNEL = "python3"
REPLY_TIMEOUT = 30.0


@dataclass
class KernelFigures:
    name: str
    argv0: str
    starts_s: list[float] = field(default_factory=list)
    start_median_s: float = 0.0
    requests: int = 0
    round_trip_total_s: float = 0.0
    round_trip_mean_ms: float = 0.0
    round_trip_median_ms: float = 0.0
    round_trip_p95_ms: float = 0.0
    rss_idle_mib: float = 0.0
    rss_after_mib: float = 0.0


def kernel_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    env["RUNBOOK_BACKEND"] = "sandbox"
    env["RUNBOOK_AUDIT_LOG"] = str(tmp / "audit.jsonl")
    env["IPYTHONDIR"] = str(tmp / "ipython")  # keep ipykernel's history db out of $HOME
    return env


def rss_mib(pid: int) -> float:
    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / (1024 * 1024)


def wait_reply(kc, msg_id: str) -> dict:
    deadline = time.monotonic() + REPLY_TIMEOUT
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no shell reply to {msg_id}")
        msg = kc.get_shell_msg(timeout=left)
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


def wait_idle(kc, msg_id: str) -> None:
    deadline = time.monotonic() + REPLY_TIMEOUT
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no idle status for {msg_id}")
        msg = kc.get_iopub_msg(timeout=left)
        if (
            msg["msg_type"] == "status"
            and msg["parent_header"].get("msg_id") == msg_id
            and msg["content"]["execution_state"] == "idle"
        ):
            return


def drain(kc) -> None:
    for get in (kc.get_iopub_msg, kc.get_shell_msg):
        while True:
            try:
                get(timeout=0.05)
            except Empty:
                break


class Running:
    """One kernel started and timed to its first kernel_info_reply."""

    def __init__(self, name: str, env: dict[str, str], cwd: Path):
        self.km = KernelManager(kernel_name=name)
        t0 = time.perf_counter()
        with open(cwd / f"{name}.stderr", "ab") as stderr:
            self.km.start_kernel(env=env, cwd=str(cwd), stderr=stderr)
        self.kc = self.km.client()
        self.kc.start_channels()
        msg_id = self.kc.kernel_info()  # queued by ZeroMQ until the kernel binds
        reply = wait_reply(self.kc, msg_id)
        self.start_s = time.perf_counter() - t0
        assert reply["msg_type"] == "kernel_info_reply", reply["msg_type"]
        self.info = reply["content"]

    def ensure_iopub(self) -> None:
        """Wait until our iopub subscription is live (a SUB socket misses what is
        published before its subscription reaches the kernel)."""
        deadline = time.monotonic() + REPLY_TIMEOUT
        while time.monotonic() < deadline:
            wait_reply(self.kc, self.kc.kernel_info())
            try:
                self.kc.get_iopub_msg(timeout=0.5)
            except Empty:
                continue
            drain(self.kc)
            return
        raise TimeoutError("iopub never delivered a message")

    @property
    def pid(self) -> int:
        return self.km.provisioner.pid

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


def bench_kernel(name: str, code: str, n_starts: int, n_requests: int, tmp: Path) -> KernelFigures:
    spec = KernelSpecManager().get_kernel_spec(name)
    argv0 = spec.argv[0]
    if argv0 in ("python", f"python{sys.version_info[0]}"):
        argv0 = sys.executable  # jupyter_client runs a spec's bare "python" as sys.executable
    fig = KernelFigures(name=name, argv0=argv0)
    env = kernel_env(tmp)

    Running(name, env, tmp).stop()  # warm-up: page cache, imports; not counted
    for i in range(n_starts):
        k = Running(name, env, tmp)
        fig.starts_s.append(k.start_s)
        k.stop()
        print(f"  {name}: start {i + 1}/{n_starts}: {k.start_s * 1000:.1f} ms", file=sys.stderr)
    fig.start_median_s = statistics.median(fig.starts_s)

    k = Running(name, env, tmp)
    try:
        k.ensure_iopub()
        # a first execution outside the timing, then let the kernel settle
        first = k.kc.execute(code, allow_stdin=False)
        status = wait_reply(k.kc, first)["content"]["status"]
        if status != "ok":
            raise RuntimeError(f"{name}: {code!r} failed: {status}")
        wait_idle(k.kc, first)
        time.sleep(1.0)
        drain(k.kc)
        fig.rss_idle_mib = rss_mib(k.pid)

        latencies = []
        t_total = time.perf_counter()
        for _ in range(n_requests):
            t0 = time.perf_counter()
            msg_id = k.kc.execute(code, allow_stdin=False)
            reply = wait_reply(k.kc, msg_id)
            wait_idle(k.kc, msg_id)
            latencies.append(time.perf_counter() - t0)
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"{name}: {code!r} failed during the run")
        fig.round_trip_total_s = time.perf_counter() - t_total
        fig.requests = n_requests
        latencies.sort()
        fig.round_trip_mean_ms = statistics.fmean(latencies) * 1000
        fig.round_trip_median_ms = statistics.median(latencies) * 1000
        fig.round_trip_p95_ms = latencies[int(0.95 * (len(latencies) - 1))] * 1000

        time.sleep(1.0)
        drain(k.kc)
        fig.rss_after_mib = rss_mib(k.pid)
    finally:
        k.stop()
    return fig


def check_ours_is_the_built_one() -> None:
    wanted = os.environ.get("RUNBOOK_KERNEL_BIN")
    spec = KernelSpecManager().get_kernel_spec(OURS)
    if wanted and not os.path.samefile(spec.argv[0], wanted):
        sys.exit(f"kernelspec {OURS} runs {spec.argv[0]}, not RUNBOOK_KERNEL_BIN={wanted}")
    if not wanted:
        print(f"note: RUNBOOK_KERNEL_BIN unset; benchmarking {spec.argv[0]}", file=sys.stderr)


def table(ours: KernelFigures, ipy: KernelFigures) -> tuple[str, bool]:
    rows = [
        # label, ours, ipykernel, unit, target ratio (ours/ipykernel must be <=)
        ("start to kernel_info_reply (median)", ours.start_median_s * 1000, ipy.start_median_s * 1000, "ms", 1 / 10),
        (f"round trip, {ours.requests} executes (total)", ours.round_trip_total_s, ipy.round_trip_total_s, "s", 1 / 2),
        ("round trip per request (mean)", ours.round_trip_mean_ms, ipy.round_trip_mean_ms, "ms", 1 / 2),
        ("round trip per request (median)", ours.round_trip_median_ms, ipy.round_trip_median_ms, "ms", None),
        ("round trip per request (p95)", ours.round_trip_p95_ms, ipy.round_trip_p95_ms, "ms", None),
        ("RSS idle after start", ours.rss_idle_mib, ipy.rss_idle_mib, "MiB", 1 / 2),
        (f"RSS after {ours.requests} executes", ours.rss_after_mib, ipy.rss_after_mib, "MiB", 1 / 2),
    ]
    head = f"{'metric':<38} {'runbook-kernel':>15} {'ipykernel':>12} {'ratio':>8} {'target':>8}  verdict"
    lines = [head, "-" * len(head)]
    all_met = True
    for label, a, b, unit, target in rows:
        ratio = a / b if b else float("inf")
        if target is None:
            tgt, verdict = "", ""
        else:
            met = ratio <= target
            all_met &= met
            tgt, verdict = f"<= {target:.2f}", "met" if met else "MISSED"
        lines.append(f"{label:<38} {a:>11.2f} {unit:<3} {b:>8.2f} {unit:<3} {ratio:>8.3f} {tgt:>8}  {verdict}")
    return "\n".join(lines), all_met


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--starts", type=int, default=10, help="kernel starts per kernel (median taken)")
    ap.add_argument("--requests", type=int, default=1000, help="execute requests per kernel")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args()

    # ZeroMQ retries a refused connection every 100 ms by default, which would round
    # a fast kernel's start up to the next retry; 5 ms keeps the clock honest for both.
    zmq.Context.instance().setsockopt(zmq.RECONNECT_IVL, 5)

    check_ours_is_the_built_one()
    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        tmp_path = Path(tmp)
        ours = bench_kernel(OURS, "%version", args.starts, args.requests, tmp_path)
        ipy = bench_kernel(IPYKERNEL, "pass", args.starts, args.requests, tmp_path)

    print(f"runbook-kernel: {ours.argv0}")
    print(f"ipykernel:      {ipy.argv0} (python {sys.version.split()[0]})")
    print(f"machine:        {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.1f} GiB")
    print()
    text, all_met = table(ours, ipy)
    print(text)
    print()
    print("all targets met" if all_met else "some targets MISSED")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"ours": asdict(ours), "ipykernel": asdict(ipy), "all_met": all_met}, indent=2))
    return 1 if (args.check and not all_met) else 0


if __name__ == "__main__":
    sys.exit(main())
