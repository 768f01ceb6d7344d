"""Crash recovery for real: the kernel is SIGKILLed on the AWS path while its change
is in flight (a proxy in front of moto forwards the revoke, then holds the answer).
The next kernel's %audit flags the run, and %recover finishes it without applying
anything twice, or rolls it back."""

from __future__ import annotations

import os
import signal

import pytest

from conftest import RUNBOOK_MIME, last_bundle
from servers.securityhub import SecurityHubServer

pytestmark = pytest.mark.usefixtures("no_ambient_aws")


def is_revoke(body: bytes) -> bool:
    return b"Action=RevokeSecurityGroupIngress" in body


def killed_mid_change(kernel_factory, moto, hub, proxy, trail):
    """Approves the EC2.19 plan and SIGKILLs the kernel while the revoke is held."""
    from aws_seed import aws_kernel_env

    env = aws_kernel_env(moto, hub, AWS_ENDPOINT_URL_EC2=proxy.url, RUNBOOK_AUDIT_LOG=str(trail))
    k = kernel_factory(**env)
    k.ok("%findings")
    plan = last_bundle(k.ok("%remediate 1"))[RUNBOOK_MIME]["plan"]
    k.start_execute(f"%approve {plan['id']} --yes")
    assert proxy.held.wait(60), "the revoke never reached the proxy" + k.stderr_tail()
    os.kill(k.pid, signal.SIGKILL)
    k.wait_exit(10)
    assert proxy.matching == 1
    again = kernel_factory(**env)
    warnings = last_bundle(again.ok("%audit"))[RUNBOOK_MIME]["warnings"]
    assert any(plan["id"] in w and "never finished" in w for w in warnings), warnings
    return again, plan


@pytest.mark.timeout(180)
def test_finish_after_a_kill_applies_nothing_twice(kernel_factory, tmp_path):
    pytest.importorskip("boto3")
    from aws_seed import ec2_19_finding, ingress_rules, moto_client, seed_open_ssh_group
    from servers.moto import MotoServer
    from servers.proxy import HoldingProxy

    with MotoServer() as moto:
        account = moto_client(moto, "sts").get_caller_identity()["Account"]
        ssh = seed_open_ssh_group(moto)
        finding = ec2_19_finding(0, account, "us-east-1", ssh["group"], ssh["vpc"], ssh["name"])
        with SecurityHubServer(findings=[finding], rate=None) as hub, HoldingProxy(moto.url, is_revoke) as proxy:
            k, plan = killed_mid_change(kernel_factory, moto, hub, proxy, tmp_path / "audit.jsonl")
            # The revoke reached moto before the kill: the live state says applied.
            status = last_bundle(k.ok(f"%recover {plan['id']}"))[RUNBOOK_MIME]["recovery"]
            action = status["actions"][0]
            assert (action["trail"], action["live"]) == ("in_flight", "applied"), status
            res = k.ok(f"%recover {plan['id']} --finish --yes", timeout=60)
            assert last_bundle(res)[RUNBOOK_MIME]["state"] == "succeeded", res.describe()
            assert proxy.matching == 1, "the revoke was sent again"
            assert hub.finding(finding["Id"])["Workflow"]["Status"] == "RESOLVED"
            nothing = k.execute(f"%recover {plan['id']}")
            assert nothing.content["ename"] == "NothingToRecover", nothing.content
        assert ingress_rules(moto, ssh["group"]) == {"tcp 443 10.0.0.0/8": ssh["rules"]["tcp 443 10.0.0.0/8"]}


@pytest.mark.timeout(180)
def test_rollback_after_a_kill_restores_the_rule(kernel_factory, tmp_path):
    pytest.importorskip("boto3")
    from aws_seed import ec2_19_finding, ingress_rules, moto_client, seed_open_ssh_group
    from servers.moto import MotoServer
    from servers.proxy import HoldingProxy

    with MotoServer() as moto:
        account = moto_client(moto, "sts").get_caller_identity()["Account"]
        ssh = seed_open_ssh_group(moto)
        finding = ec2_19_finding(0, account, "us-east-1", ssh["group"], ssh["vpc"], ssh["name"])
        with SecurityHubServer(findings=[finding], rate=None) as hub, HoldingProxy(moto.url, is_revoke) as proxy:
            k, plan = killed_mid_change(kernel_factory, moto, hub, proxy, tmp_path / "audit.jsonl")
            assert "tcp 22 0.0.0.0/0" not in ingress_rules(moto, ssh["group"])
            res = k.ok(f"%recover {plan['id']} --rollback --yes", timeout=60)
            assert last_bundle(res)[RUNBOOK_MIME]["state"] in ("rolled_back", "succeeded"), res.describe()
            assert proxy.matching == 1
        rules = ingress_rules(moto, ssh["group"])
        assert "tcp 22 0.0.0.0/0" in rules and "tcp 443 10.0.0.0/8" in rules, rules
