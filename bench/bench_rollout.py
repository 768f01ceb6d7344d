#!/usr/bin/env python3
"""Benchmark: `%rollout` of one plan to 50 account-region targets, and the time the
kernel adds beyond the Automation server's own.

The kernel runs on the AWS path (the AWS SDK for Rust) against moto, the project's
Security Hub server and its SSM Automation server, which really runs the rollout
document's steps in each target account (moto's AssumeRole) and region. Per run,
a fresh EC2.7 plan (EBS encryption by default) is rolled out to 25 accounts × 2
regions. Figures:

- cell: `%rollout` sent until the kernel is idle again;
- server: the parent execution's own run, first child started to last child ended;
- added: cell − server: creating and sharing the document, starting the run,
  polling GetAutomationExecution (every 0.2 s, doubling to 3 s), rendering the
  rows, 50 audit records, and the findings update afterwards;
- polls: GetAutomationExecution calls; steps: the children's summed step time.

    .venv/bin/python bench/bench_rollout.py [--runs 3] [--concurrency 50,10] [--json FILE]

The kernelspec is the one installed in the running venv (`make bench` installs
the release build).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from jupyter_client.manager import start_new_kernel  # noqa: E402

from aws_seed import moto_client  # noqa: E402
from servers.config_service import ConfigServer  # noqa: E402
from servers.moto import DUMMY_CREDENTIALS, MotoServer  # noqa: E402
from servers.securityhub import SecurityHubServer, make_finding  # noqa: E402
from servers.ssm_automation import SsmAutomationServer  # noqa: E402

MIME = "application/vnd.runbook+json"
ACCOUNTS = 25
REGIONS = ["us-east-1", "eu-west-1"]


def execute(kc, code: str) -> tuple[dict, list[dict]]:
    messages: list[dict] = []
    reply = kc.execute_interactive(code, timeout=600, allow_stdin=False, output_hook=messages.append)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"{code}: {reply['content'].get('ename')}: {reply['content'].get('evalue')}")
    return reply, messages


def last_data(messages: list[dict]) -> dict:
    for m in reversed(messages):
        data = m["content"].get("data", {}).get(MIME)
        if data is not None:
            return data
    raise RuntimeError("no runbook result")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3, help="rollouts per configuration (default 3)")
    p.add_argument("--concurrency", default="50,10", help="TargetLocationMaxConcurrency values to run")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)

    rows = []
    with MotoServer() as moto, SecurityHubServer(rate=None) as hub:
        with SsmAutomationServer(moto.url) as ssm, ConfigServer(moto.url) as config:
            own = moto_client(moto, "sts").get_caller_identity()["Account"]
            audit_log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-rollout-{os.getpid()}.jsonl"
            env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUNBOOK_"))}
            env.update(
                DUMMY_CREDENTIALS,
                RUNBOOK_BACKEND="aws", RUNBOOK_REGION=moto.region, RUNBOOK_MODEL="catalog",
                RUNBOOK_APPROVAL="allow-yes",
                RUNBOOK_AUDIT_LOG=str(audit_log),
                AWS_REGION=moto.region, AWS_ENDPOINT_URL=moto.url, AWS_ENDPOINT_URL_SECURITYHUB=hub.url,
                AWS_ENDPOINT_URL_SSM=ssm.url, AWS_ENDPOINT_URL_CONFIG_SERVICE=config.url,
                AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            )  # fmt: skip
            km, kc = start_new_kernel(kernel_name="security-runbook", env=env)
            try:
                n = 0
                for concurrency in [int(c) for c in args.concurrency.split(",")]:
                    for _ in range(args.runs):
                        n += 1
                        mine = make_finding(1000 + n, account=own, region=moto.region, control_id="EC2.7")
                        hub.add_findings([mine])
                        accounts = [f"21{n:02d}{i:08d}" for i in range(ACCOUNTS)]
                        hub.add_findings([
                            make_finding(2000 + 100 * n + i, account=a, region=r, control_id="EC2.7")
                            for i, (a, r) in enumerate((a, r) for a in accounts for r in REGIONS)
                        ])  # fmt: skip
                        _, msgs = execute(kc, f"%findings --all --control EC2.7 --account {own}")
                        shown = last_data(msgs)["shown"]
                        number = next(r["number"] for r in shown if r["id"] == mine["Id"])
                        _, msgs = execute(kc, f"%remediate {number}")
                        plan = last_data(msgs)["plan"]["id"]
                        polls_before = ssm.counts["GetAutomationExecution"]
                        code = (
                            f"%rollout {plan} --accounts {','.join(accounts)} --regions {','.join(REGIONS)} "
                            f"--max-concurrency {concurrency} --max-errors 0 --yes"
                        )
                        sent, sent_wall = time.monotonic(), time.time()
                        _, msgs = execute(kc, code)
                        cell, done_wall = time.monotonic() - sent, time.time()
                        rollout = last_data(msgs)["rollout"]
                        parent = ssm.executions[rollout["execution_id"]]
                        children = [e for e in ssm.executions.values() if e.parent is parent]
                        server = max(c.ended for c in children) - min(c.started for c in children)
                        start = next(r for r in ssm.requests if r.operation == "StartAutomationExecution" and r.time >= sent_wall)
                        rows.append({
                            "concurrency": concurrency,
                            "targets": len(rollout["rows"]),
                            "succeeded": sum(r["status"] == "Success" for r in rollout["rows"]),
                            "cell_s": cell,
                            "server_s": server,
                            "added_s": cell - server,
                            "step_s": sum(c.step_seconds for c in children),
                            "to_start_s": start.time - sent_wall,
                            "after_end_s": done_wall - parent.end,
                            "poll_lag_s": max(r.time for r in ssm.requests if r.operation == "GetAutomationExecution") - parent.end,
                            "polls": ssm.counts["GetAutomationExecution"] - polls_before,
                            "updates": sum(m["msg_type"] == "update_display_data" for m in msgs),
                        })  # fmt: skip
            finally:
                kc.stop_channels()
                km.shutdown_kernel(now=True)
                audit_log.unlink(missing_ok=True)

    print(f"%rollout of one plan to {ACCOUNTS} accounts x {len(REGIONS)} regions (AWS SDK for Rust -> SSM server -> moto)")
    head = (
        f"{'conc':>4} {'targets':>7} {'ok':>3} {'cell s':>7} {'server s':>8} {'added s':>7} "
        f"{'to start':>8} {'after end':>9} {'poll lag':>8} {'steps s':>7} {'polls':>5} {'updates':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['concurrency']:>4} {r['targets']:>7} {r['succeeded']:>3} {r['cell_s']:>7.2f} {r['server_s']:>8.2f} "
            f"{r['added_s']:>7.2f} {r['to_start_s']:>8.2f} {r['after_end_s']:>9.2f} {r['poll_lag_s']:>8.2f} "
            f"{r['step_s']:>7.2f} {r['polls']:>5} {r['updates']:>7}"
        )
    for c in sorted({r["concurrency"] for r in rows}, reverse=True):
        mine = [r for r in rows if r["concurrency"] == c]
        print(
            f"concurrency {c}: median cell {statistics.median(r['cell_s'] for r in mine):.2f} s, "
            f"server {statistics.median(r['server_s'] for r in mine):.2f} s, "
            f"kernel added {statistics.median(r['added_s'] for r in mine):.2f} s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
