#!/usr/bin/env python3
"""Benchmark: what the off-machine audit copy (audit_sink=cloudwatch:GROUP) adds to
an audit append. Starts moto for CloudWatch Logs, creates the group, and runs the
Rust bench `audit_append` with RUNBOOK_BENCH_LOG_GROUP set, so it prints the
unchained, chained and chained + CloudWatch figures side by side in one run.
Against moto this measures a local round trip; in a real region, add the
PutLogEvents latency from the notebook instance.

    .venv/bin/python bench/bench_audit_sink.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from aws_seed import moto_client  # noqa: E402
from servers.moto import DUMMY_CREDENTIALS, MotoServer  # noqa: E402

GROUP = "/security-runbook/bench"


def main() -> int:
    with MotoServer() as moto:
        moto_client(moto, "logs").create_log_group(logGroupName=GROUP)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUNBOOK_"))}
        env.update(
            DUMMY_CREDENTIALS,
            AWS_REGION=moto.region,
            AWS_ENDPOINT_URL=moto.url,
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            RUNBOOK_REGION=moto.region,
            RUNBOOK_BENCH_LOG_GROUP=GROUP,
        )
        done = subprocess.run(
            ["cargo", "bench", "--locked", "-p", "runbook", "--bench", "audit_append"], cwd=ROOT, env=env
        )
        return done.returncode


if __name__ == "__main__":
    sys.exit(main())
