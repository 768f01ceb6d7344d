#!/usr/bin/env python3
"""Benchmark: fetching every finding through GetFindings at Security Hub's rate limit.

Each peer fetches N findings (default 10,000) from the local Security Hub test
server (tests/servers/securityhub.py), which enforces GetFindings' documented
limit: a token bucket refilled at --rate requests/second (3) holding --burst (6).
Throttled calls are answered 429 TooManyRequestsException, as the service does,
and the client has to absorb them.

For each peer the table shows the wall time, the pages it took (successful
GetFindings calls), the throttled answers it received, and the time against the
throttle's floor: with P pages, the first `burst` are free and every further one
waits 1/rate s, so no client can finish in less than (P - burst) / rate seconds.
A ratio near 1.0 means the client is limited by the service, not by itself.

Every peer gets a fresh server (a full bucket) with the same findings, all
ACTIVE / FAILED / workflow NEW, so any default "open findings" filter keeps all N.

Peers so far: boto3's paginator with botocore's standard and adaptive retry
modes.  To add one (e.g. the runbook kernel's own fetch), write a function
`fetch(url) -> number of findings fetched` and register it in PEERS, or call
`bench_peer("name", fetch)` before `print_table()`.

    .venv/bin/python bench/bench_findings_fetch.py [--findings N] [--rate R] [--burst B]
        [--accounts N] [--regions N] [--peers boto3-standard,boto3-adaptive] [--json FILE]

The organisation case (a security account reading 20 members in 4 regions):
    .venv/bin/python bench/bench_findings_fetch.py --accounts 20 --regions 4

Slow pages (real GetFindings pages take 0.3-1 s, so one NextToken chain stays
under the quota; the kernel pages one stream per severity side by side):
    .venv/bin/python bench/bench_findings_fetch.py --findings 3000 --latency 0.3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

from tests.servers.securityhub import SecurityHubServer, make_finding  # noqa: E402

PAGE_SIZE = 100  # GetFindings' largest MaxResults
MAX_ATTEMPTS = 10  # total attempts per call, so a run of throttles never fails the fetch


@dataclass
class PeerResult:
    name: str
    findings: int = 0
    seconds: float = 0.0
    pages: int = 0  # GetFindings calls answered 200
    requests: int = 0  # all GetFindings calls, throttled ones included
    throttled: int = 0  # 429 TooManyRequestsException answers
    floor_seconds: float = 0.0  # (pages - burst) / rate
    ratio: float = math.nan  # seconds / floor_seconds
    error: str = ""


@dataclass
class Setup:
    findings: list[dict]
    rate: float
    burst: int
    latency: float = 0.0


SETUP: Setup | None = None
RESULTS: list[PeerResult] = []


def bench_peer(name: str, fn: Callable[[str], int | tuple[int, float]]) -> PeerResult:
    """Time `fn(url)` against a fresh throttled server; record and return the figures.

    `fn` gets the server's endpoint URL (for endpoint_url=..., or
    AWS_ENDPOINT_URL_SECURITYHUB=... for a separate process) and returns how many
    findings it fetched; a count other than N is reported as an error.
    """
    assert SETUP is not None, "call setup() first"
    result = PeerResult(name)
    with SecurityHubServer(findings=SETUP.findings, rate=SETUP.rate, burst=SETUP.burst, latency=SETUP.latency) as server:
        start = time.perf_counter()
        try:
            fetched = fn(server.url)
        except Exception as e:  # noqa: BLE001 - a failing peer is a row in the table, not a crash
            traceback.print_exc()
            result.error = f"{type(e).__name__}: {e}"
            fetched = 0
        result.seconds = time.perf_counter() - start
        # A peer that needs set-up first (a kernel to start) times its own fetch.
        if isinstance(fetched, tuple):
            fetched, result.seconds = fetched
        result.findings = fetched
        calls = server.requests_for("GetFindings")
        result.requests = len(calls)
        result.pages = sum(1 for r in calls if r.status == 200)
        result.throttled = server.throttled
    result.floor_seconds = max(0, result.pages - SETUP.burst) / SETUP.rate
    if result.floor_seconds > 0:
        result.ratio = result.seconds / result.floor_seconds
    if not result.error and result.findings != len(SETUP.findings):
        result.error = f"fetched {result.findings} of {len(SETUP.findings)} findings"
    RESULTS.append(result)
    print(
        f"  {name}: {result.seconds:.2f} s, {result.pages} pages, {result.throttled} throttled"
        + (f"  ERROR {result.error}" if result.error else ""),
        file=sys.stderr, flush=True,
    )
    return result


# ---------------------------------------------------------------- peers


def boto3_fetch(mode: str) -> Callable[[str], int]:
    def fetch(url: str) -> int:
        client = boto3.client(
            "securityhub",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": mode, "total_max_attempts": MAX_ATTEMPTS}),
        )
        pages = client.get_paginator("get_findings").paginate(PaginationConfig={"PageSize": PAGE_SIZE})
        return sum(len(page["Findings"]) for page in pages)

    return fetch


def kernel_env(url: str, findings_api: str) -> dict[str, str]:
    """The kernel's environment: the AWS backend against the local server only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUNBOOK_"))}
    env.update(
        RUNBOOK_BACKEND="aws",
        RUNBOOK_REGION="us-east-1",
        RUNBOOK_FINDINGS_API=findings_api,
        AWS_ENDPOINT_URL_SECURITYHUB=url,
        # Everything else (Organizations' account names) goes to the same local
        # server, which refuses it: nothing leaves the machine.
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return env


def kernel_fetch(url: str) -> tuple[int, float]:
    """The runbook kernel's own `%findings --all` (the AWS SDK for Rust, adaptive retry),
    driven over ZeroMQ like a frontend; the kernelspec comes from the running venv."""
    from jupyter_client.manager import start_new_kernel

    # The peers call GetFindings knowing it is CSPM; so is the kernel told.
    km, kc = start_new_kernel(kernel_name="security-runbook", env=kernel_env(url, "cspm"))
    try:
        total = None

        def hook(msg: dict) -> None:
            nonlocal total
            data = msg["content"].get("data", {}).get("application/vnd.runbook+json")
            if isinstance(data, dict) and "shown" in data:
                total = data["total"]

        # Timed from the cell, not from the kernel's start, as boto3's from its client.
        start = time.perf_counter()
        reply = kc.execute_interactive("%findings --all", output_hook=hook, timeout=600)
        seconds = time.perf_counter() - start
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}")
        return int(total or 0), seconds
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


PEERS: dict[str, Callable[[str], int | tuple[int, float]]] = {
    "boto3-standard": boto3_fetch("standard"),
    "boto3-adaptive": boto3_fetch("adaptive"),
    "runbook-kernel": kernel_fetch,
}


# ---------------------------------------------------------------- report


def print_table(results: list[PeerResult] | None = None) -> None:
    results = RESULTS if results is None else results
    assert SETUP is not None
    spread = {(f["AwsAccountId"], f["Region"]) for f in SETUP.findings}
    print(
        f"GetFindings: {len(SETUP.findings)} findings in {len({a for a, _ in spread})} accounts x "
        f"{len({r for _, r in spread})} regions, {PAGE_SIZE} per page, "
        f"throttle {SETUP.rate:g} req/s burst {SETUP.burst}, {SETUP.latency * 1000:.0f} ms per answer"
    )
    least = math.ceil(len(SETUP.findings) / PAGE_SIZE)
    print(f"quota floor for the fewest pages ({least}): {max(0, least - SETUP.burst) / SETUP.rate:.2f} s")
    head = ("peer", "time s", "pages", "requests", "throttled", "floor s", "time/floor", "findings/s")
    rows = [
        (
            r.name,
            f"{r.seconds:.2f}",
            str(r.pages),
            str(r.requests),
            str(r.throttled),
            f"{r.floor_seconds:.2f}",
            "-" if math.isnan(r.ratio) else f"{r.ratio:.3f}",
            f"{r.findings / r.seconds:.0f}" if r.seconds else "-",
        )
        for r in results
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    print(line(head))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))
    for r in results:
        if r.error:
            print(f"ERROR {r.name}: {r.error}")


def setup(findings: int, rate: float, burst: int, accounts: int = 1, regions: int = 1, latency: float = 0.0) -> Setup:
    """N open findings, spread round-robin over `accounts` accounts and `regions`
    regions, as a security account's aggregation region returns them."""
    global SETUP
    region_names = ["us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1", "eu-central-1", "ap-southeast-2"]
    if regions > len(region_names):
        raise SystemExit(f"--regions: at most {len(region_names)}")
    items = [
        make_finding(
            i,
            account=f"{100000000000 + i % accounts:012d}",
            region=region_names[(i // accounts) % regions],
            record_state="ACTIVE",
            workflow_status="NEW",
            compliance_status="FAILED",
        )
        for i in range(findings)
    ]
    SETUP = Setup(items, rate, burst, latency)
    return SETUP


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--findings", type=int, default=10_000, help="findings to fetch (default 10000)")
    p.add_argument("--rate", type=float, default=3.0, help="GetFindings requests/second (default 3)")
    p.add_argument("--burst", type=int, default=6, help="GetFindings burst (default 6)")
    p.add_argument("--accounts", type=int, default=1, help="accounts the findings are spread over (default 1)")
    p.add_argument("--regions", type=int, default=1, help="regions the findings are spread over (default 1, at most 6)")
    p.add_argument("--latency", type=float, default=0.0,
                   help="seconds the server takes to answer each call (real GetFindings pages: 0.3-1 s)")
    p.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, from: {', '.join(PEERS)}")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)

    names = [n for n in args.peers.split(",") if n]
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        p.error(f"unknown peer(s) {unknown}; known: {', '.join(PEERS)}")
    setup(args.findings, args.rate, args.burst, args.accounts, args.regions, args.latency)
    for name in names:
        bench_peer(name, PEERS[name])
    print_table()
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in RESULTS], indent=2) + "\n")
    return 1 if any(r.error for r in RESULTS) else 0


if __name__ == "__main__":
    sys.exit(main())
