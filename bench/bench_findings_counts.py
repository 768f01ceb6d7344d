#!/usr/bin/env python3
"""Benchmark: counts first on a large listing, and the kernel's memory holding it.

The kernel reads N findings (default 100,000) with `%findings --all` from the
local Security Hub test server, throttled at GetFindings' documented 3
requests/second, burst 6, through the new Security Hub's API (v2: counts from
GetFindingStatisticsV2) or Security Hub CSPM (counts from the kernel's own
insights). For each it prints:

- the time from sending the cell to the severity chart (the counts), and to the
  finished table (the last row);
- how long the test server itself (Python, one process) spent computing those
  counts, so the kernel's own share of the time to the chart is the difference;
- the kernel's resident memory (VmRSS) before the cell and holding the listing,
  and the size of the findings' raw JSON as Security Hub sent it (the kernel
  keeps it deflated; `cargo run --release -p runbook --example finding_memory`
  gives the split between the parsed fields and the kept JSON).

    .venv/bin/python bench/bench_findings_counts.py [--findings N] [--apis v2,cspm]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_findings_fetch import kernel_env  # noqa: E402
from tests.servers import securityhub_v2 as v2  # noqa: E402
from tests.servers.securityhub import SecurityHubServer, make_finding  # noqa: E402

RUNBOOK = "application/vnd.runbook+json"
VEGA_LITE = "application/vnd.vegalite.v5+json"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(findings: list[dict], api: str) -> dict:
    from jupyter_client.manager import start_new_kernel

    with SecurityHubServer(findings=findings, rate=3.0, burst=6, v2_enabled=api == "v2") as server:
        km, kc = start_new_kernel(kernel_name="security-runbook", env=kernel_env(server.url, api))
        try:
            pid = km.provisioner.process.pid
            kc.execute_interactive("%config lang=en", timeout=60)
            before = rss_mib(pid)
            start = time.perf_counter()
            seen: dict[str, float] = {}
            total = 0

            def hook(msg: dict) -> None:
                nonlocal total
                data = msg["content"].get("data", {})
                now = time.perf_counter() - start
                if VEGA_LITE in data:
                    seen.setdefault("counts", now)
                runbook = data.get(RUNBOOK)
                if isinstance(runbook, dict) and "shown" in runbook:
                    seen.setdefault("first rows", now)
                    if not runbook.get("reading"):
                        seen["last row"] = now
                        total = runbook["total"]

            reply = kc.execute_interactive("%findings --all", output_hook=hook, timeout=3600)
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}")
            holding = rss_mib(pid)
            pages = len(server.requests_for("GetFindingsV2" if api == "v2" else "GetFindings"))
            # What the (Python) server itself spent computing the counts.
            counting_ops = ("GetFindingStatisticsV2",) if api == "v2" else ("GetInsights", "CreateInsight", "GetInsightResults")
            served = sum(r.served_in for op in counting_ops for r in server.requests_for(op))
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    return {"api": api, "total": total, "pages": pages, "rss_before": before, "rss_holding": holding,
            "served": served, **seen}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--findings", type=int, default=100_000)
    p.add_argument("--apis", default="v2,cspm", help="comma-separated: v2, cspm")
    args = p.parse_args(argv)
    findings = [
        make_finding(i, account=f"{100000000000 + i % 20:012d}", record_state="ACTIVE", workflow_status="NEW",
                     compliance_status="FAILED")
        for i in range(args.findings)
    ]  # fmt: skip
    asff_bytes = sum(len(json.dumps(f, separators=(",", ":"))) for f in findings)
    ocsf_bytes = sum(len(json.dumps(v2.asff_to_ocsf(f), separators=(",", ":"))) for f in findings)
    print(f"{args.findings} open findings in 20 accounts, GetFindings throttle 3 req/s burst 6, 100 per page")
    print(f"raw JSON as sent: ASFF {asff_bytes / 2**20:.1f} MiB, OCSF {ocsf_bytes / 2**20:.1f} MiB")
    head = ("api", "counts s", "server counting s", "first rows s", "last row s", "pages", "RSS before MiB",
            "RSS holding MiB")
    print("  ".join(head))
    for api in [a for a in args.apis.split(",") if a]:
        r = run(findings, api)
        print("  ".join([
            r["api"], f"{r.get('counts', float('nan')):.2f}", f"{r['served']:.2f}", f"{r.get('first rows', float('nan')):.2f}",
            f"{r.get('last row', float('nan')):.2f}", str(r["pages"]), f"{r['rss_before']:.1f}", f"{r['rss_holding']:.1f}",
        ]), flush=True)  # fmt: skip
        if r["total"] != args.findings:
            print(f"ERROR {api}: listed {r['total']} of {args.findings}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
