#!/usr/bin/env python3
"""Benchmark: time to the first action in a member account the kernel has not
acted in yet, AssumeRole included, and how much of it is the kernel's own.

The kernel runs on the AWS path (the AWS SDK for Rust) against moto, through a
recording proxy that timestamps every request it forwards. For each of --runs
fresh member accounts, a security group there has SSH open to the world and an
EC2.19 finding in the Security Hub test server. The kernel lists it, plans
(`%remediate 1`), then `%approve last --yes` is timed from the moment the
request is sent until RevokeSecurityGroupIngress reaches moto: approval record,
AssumeRole of the member role with the plan's session policy, prechecks, the
audit's fsyncs, and the calls in between. The calls' own time is what moto and
the proxy took to answer them; the rest is the kernel's overhead (message
handling, SigV4, building clients, audit writes, rendering).

    .venv/bin/python bench/bench_member_session.py [--runs 5] [--json FILE]

The kernelspec is the one installed in the running venv (`make lab` / `make test`
install the dev build; install a release build to measure that instead).
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

import boto3  # noqa: E402
from jupyter_client.manager import start_new_kernel  # noqa: E402

from aws_seed import ec2_19_finding, moto_client  # noqa: E402
from servers.moto import DUMMY_CREDENTIALS, MotoServer  # noqa: E402
from servers.recording_proxy import RecordingProxy  # noqa: E402
from servers.securityhub import SecurityHubServer  # noqa: E402

ROLE = "SecurityRunbookMember"
TARGET_MS = 100.0


def member_ec2(moto: MotoServer, account: str):
    creds = moto_client(moto, "sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{ROLE}", RoleSessionName="seed"
    )["Credentials"]
    return boto3.client(
        "ec2", endpoint_url=moto.url, region_name=moto.region,
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )  # fmt: skip


def seed(moto: MotoServer, hub: SecurityHubServer, account: str, i: int) -> None:
    ec2 = member_ec2(moto, account)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="ci-runner", Description="ci", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    hub.add_findings([ec2_19_finding(100 + i, account, moto.region, group, vpc)])


def run(kc, code: str) -> dict:
    reply = kc.execute_interactive(code, timeout=120, allow_stdin=False, output_hook=lambda _m: None)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"{code}: {reply['content'].get('ename')}: {reply['content'].get('evalue')}")
    return reply


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="member accounts to act in (default 5)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)

    rows = []
    with MotoServer() as moto, SecurityHubServer(rate=None) as hub, RecordingProxy(moto.url) as proxy:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUNBOOK_"))}
        env.update(
            DUMMY_CREDENTIALS,
            RUNBOOK_BACKEND="aws", RUNBOOK_REGION=moto.region, RUNBOOK_MODEL="catalog",
            RUNBOOK_AUDIT_LOG=str(Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-member-{os.getpid()}.jsonl"),
            AWS_REGION=moto.region, AWS_ENDPOINT_URL=proxy.url, AWS_ENDPOINT_URL_SECURITYHUB=hub.url,
            AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        )  # fmt: skip
        km, kc = start_new_kernel(kernel_name="security-runbook", env=env)
        try:
            for i in range(args.runs):
                account = f"7000000000{i:02d}"
                seed(moto, hub, account, i)
                run(kc, f"%findings --control EC2.19 --account {account}")
                run(kc, "%remediate 1")
                mark = len(proxy.requests)
                sent = time.perf_counter()
                run(kc, "%approve last --yes")
                window = proxy.requests[mark:]
                first = next(
                    r for r in window if r.form.get("Action") == "RevokeSecurityGroupIngress"
                )
                before = [r for r in window if r.received < first.received]
                calls = sum(r.answered - r.received for r in before)
                to_first = first.received - sent
                assumed = [r for r in before if r.form.get("Action") == "AssumeRole"]
                rows.append({
                    "account": account,
                    "to_first_action_ms": to_first * 1000,
                    "calls_before": len(before),
                    "assume_role_calls": len(assumed),
                    "calls_ms": calls * 1000,
                    "overhead_ms": (to_first - calls) * 1000,
                })  # fmt: skip
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)

    print(f"First action in a new member account (AWS SDK for Rust -> proxy -> moto), {args.runs} accounts")
    head = f"{'account':<14} {'to action ms':>12} {'calls':>5} {'AssumeRole':>10} {'calls ms':>9} {'overhead ms':>11}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['account']:<14} {r['to_first_action_ms']:>12.1f} {r['calls_before']:>5} "
            f"{r['assume_role_calls']:>10} {r['calls_ms']:>9.1f} {r['overhead_ms']:>11.1f}"
        )
    overhead = statistics.median(r["overhead_ms"] for r in rows)
    print(f"median overhead {overhead:.1f} ms (target < {TARGET_MS:.0f} ms)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
