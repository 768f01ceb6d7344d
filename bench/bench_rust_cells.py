#!/usr/bin/env python3
"""Benchmark: Rust cells in the runbook kernel side by side with evcxr_jupyter,
same driver (jupyter_client), same run, same cells.

For each kernel, over --runs fresh kernels (median reported):
  (a) first cell: from launching the kernel process to the reply of its first
      cell, `1+1`, split into launch -> ready (kernel_info_reply) and ready ->
      first reply. evcxr_jupyter compiles its first crate before it answers
      kernel_info; ours compiles it on the first Rust cell, so only the total
      compares like with like;
  (b) next cell: `1+1` again, --cells times, median and p95 of send -> reply+idle;
  (c) resident memory (the kernel and its children, psutil): idle after start,
      and idle after the cells (evcxr's child process included).

Target: ours no worse than evcxr_jupyter on each.

evcxr_jupyter is not a dependency of the project: install it once, from
crates.io, into a directory of its own, and pass its binary:

    cargo install evcxr_jupyter --version 0.22.0 --locked --root /tmp/evj
    RUNBOOK_KERNEL_BIN=... .venv/bin/python bench/bench_rust_cells.py --evcxr /tmp/evj/bin/evcxr_jupyter

`make bench` does both with the release kernel when --evcxr's binary exists.
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

from bench_kernel import rss_mib
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

OURS = "security-runbook"
FIRST_CELL_TIMEOUT = 300.0
CELL_TIMEOUT = 60.0


@dataclass
class Figures:
    name: str
    argv0: str
    launch_to_ready_s: list[float] = field(default_factory=list)
    ready_to_first_s: list[float] = field(default_factory=list)
    first_cell_total_s: list[float] = field(default_factory=list)
    next_cell_ms: list[float] = field(default_factory=list)
    rss_start_mib: list[float] = field(default_factory=list)
    rss_after_mib: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        med = statistics.median
        cells = sorted(self.next_cell_ms)
        return {
            "first_cell_total_s": med(self.first_cell_total_s),
            "launch_to_ready_s": med(self.launch_to_ready_s),
            "ready_to_first_s": med(self.ready_to_first_s),
            "next_cell_median_ms": med(cells),
            "next_cell_p95_ms": cells[int(0.95 * (len(cells) - 1))],
            "rss_start_mib": med(self.rss_start_mib),
            "rss_after_mib": med(self.rss_after_mib),
        }


def run_cell(kc, code: str, timeout: float) -> float:
    """Seconds from execute_request to both the reply and the closing idle."""
    t0 = time.monotonic()
    msg_id = kc.execute(code, store_history=False)
    deadline = t0 + timeout
    replied = idle = False
    while not (replied and idle):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{code!r}: no reply within {timeout} s")
        try:
            if not replied:
                msg = kc.get_shell_msg(timeout=min(left, 0.05))
                if msg["parent_header"].get("msg_id") == msg_id:
                    if msg["content"]["status"] != "ok":
                        raise RuntimeError(f"{code!r} failed: {msg['content']}")
                    replied = True
        except Empty:
            pass
        try:
            while True:
                msg = kc.get_iopub_msg(timeout=0.001 if not replied else min(left, 0.05))
                if (
                    msg["parent_header"].get("msg_id") == msg_id
                    and msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "idle"
                ):
                    idle = True
                    break
        except Empty:
            pass
    return time.monotonic() - t0


def measure(name: str, kernel_name: str, ksm: KernelSpecManager, env: dict, cwd: str, cells: int, fig: Figures):
    km = KernelManager(kernel_name=kernel_name, kernel_spec_manager=ksm)
    t0 = time.monotonic()
    km.start_kernel(env=env, cwd=cwd)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=FIRST_CELL_TIMEOUT)
        ready = time.monotonic()
        time.sleep(1.0)
        fig.rss_start_mib.append(rss_mib(km.provisioner.pid))
        first = run_cell(kc, "1+1", FIRST_CELL_TIMEOUT)
        fig.launch_to_ready_s.append(ready - t0)
        fig.ready_to_first_s.append(first)
        fig.first_cell_total_s.append(ready - t0 + first)
        for _ in range(cells):
            fig.next_cell_ms.append(1000 * run_cell(kc, "1+1", CELL_TIMEOUT))
        time.sleep(1.0)
        fig.rss_after_mib.append(rss_mib(km.provisioner.pid))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    print(f"  {name}: first cell {fig.first_cell_total_s[-1]:.1f} s, next {statistics.median(fig.next_cell_ms[-cells:]):.0f} ms", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evcxr", required=True, help="the evcxr_jupyter binary")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-rust-cells-") as tmp:
        tmpdir = Path(tmp)
        # evcxr_jupyter's kernelspec, private to this run
        spec_dir = tmpdir / "kernels" / "evcxr-bench"
        spec_dir.mkdir(parents=True)
        (spec_dir / "kernel.json").write_text(
            json.dumps({"argv": [args.evcxr, "--control_file", "{connection_file}"], "display_name": "evcxr", "language": "rust"})
        )
        ksm = KernelSpecManager()
        ksm.kernel_dirs = [str(tmpdir / "kernels")] + ksm.kernel_dirs
        ours_argv0 = ksm.get_kernel_spec(OURS).argv[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
        env["RUNBOOK_BACKEND"] = "sandbox"
        env["RUNBOOK_AUDIT_LOG"] = str(tmpdir / "audit.jsonl")
        # Same evcxr settings for both: none (an empty config directory).
        (tmpdir / "evcxr-config").mkdir()
        env["EVCXR_CONFIG_DIR"] = str(tmpdir / "evcxr-config")
        figures = {
            "runbook-kernel": Figures("runbook-kernel", ours_argv0),
            "evcxr_jupyter": Figures("evcxr_jupyter", args.evcxr),
        }
        for run in range(args.runs):
            print(f"run {run + 1} of {args.runs}", flush=True)
            # alternate who goes first, so neither always meets a cold page cache
            order = [("runbook-kernel", OURS), ("evcxr_jupyter", "evcxr-bench")]
            if run % 2:
                order.reverse()
            for name, kernel_name in order:
                measure(name, kernel_name, ksm, env, str(tmpdir), args.cells, figures[name])

    summary = {name: fig.summary() for name, fig in figures.items()}
    print()
    print(f"{'':28}{'runbook-kernel':>16}{'evcxr_jupyter':>16}{'ratio':>8}")
    rows = [
        ("first cell, launch->reply s", "first_cell_total_s"),
        ("  launch->ready s", "launch_to_ready_s"),
        ("  ready->first reply s", "ready_to_first_s"),
        ("next cell 1+1 median ms", "next_cell_median_ms"),
        ("next cell 1+1 p95 ms", "next_cell_p95_ms"),
        ("RSS idle after start MiB", "rss_start_mib"),
        ("RSS idle after cells MiB", "rss_after_mib"),
    ]
    for label, key in rows:
        ours, theirs = summary["runbook-kernel"][key], summary["evcxr_jupyter"][key]
        print(f"{label:28}{ours:16.2f}{theirs:16.2f}{ours / theirs if theirs else float('nan'):8.2f}")
    print(f"\nours: {figures['runbook-kernel'].argv0}\nevcxr_jupyter: {args.evcxr}")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "raw": {k: asdict(v) for k, v in figures.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
