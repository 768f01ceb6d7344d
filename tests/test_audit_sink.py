"""`audit_sink=cloudwatch:GROUP`: every audit record also goes to CloudWatch Logs
(moto's, through the real SDK), one log stream per kernel session, before the
next step; when the copy fails the run stops before the next change."""

from __future__ import annotations

import json

import pytest

from conftest import RUNBOOK_MIME, audit_path, last_bundle
from servers.securityhub import SecurityHubServer

pytestmark = pytest.mark.usefixtures("no_ambient_aws")


def aws_setup(moto):
    from aws_seed import ec2_19_finding, moto_client, seed_open_ssh_group

    account = moto_client(moto, "sts").get_caller_identity()["Account"]
    ssh = seed_open_ssh_group(moto)
    finding = ec2_19_finding(0, account, "us-east-1", ssh["group"], ssh["vpc"], ssh["name"])
    return ssh, finding


def test_every_record_is_copied_to_the_sessions_log_stream(kernel_factory, tmp_path):
    pytest.importorskip("boto3")
    from aws_seed import aws_kernel_env, ingress_rules, moto_client
    from servers.moto import MotoServer

    with MotoServer() as moto:
        logs = moto_client(moto, "logs")
        logs.create_log_group(logGroupName="/security/runbook-audit")
        ssh, finding = aws_setup(moto)
        with SecurityHubServer(findings=[finding], rate=None) as hub:
            k = kernel_factory(
                **aws_kernel_env(moto, hub, RUNBOOK_AUDIT_SINK="cloudwatch:/security/runbook-audit")
            )
            k.ok("%findings")
            plan = last_bundle(k.ok("%remediate 1"))[RUNBOOK_MIME]["plan"]
            res = k.ok(f"%approve {plan['id']} --yes", timeout=60)
            assert last_bundle(res)[RUNBOOK_MIME]["state"] == "succeeded", res.describe()
            local = audit_path(k).read_text().splitlines()
        streams = logs.describe_log_streams(logGroupName="/security/runbook-audit")["logStreams"]
        assert len(streams) == 1, streams
        events = logs.get_log_events(
            logGroupName="/security/runbook-audit", logStreamName=streams[0]["logStreamName"], startFromHead=True
        )["events"]
        assert [e["message"] for e in events] == local
        session = json.loads(local[0])["kernel_session"]
        assert session in streams[0]["logStreamName"]
        assert ingress_rules(moto, ssh["group"]) == {"tcp 443 10.0.0.0/8": ssh["rules"]["tcp 443 10.0.0.0/8"]}


def test_a_missing_log_group_stops_the_run_before_any_change(kernel_factory):
    pytest.importorskip("boto3")
    from aws_seed import aws_kernel_env, ingress_rules
    from servers.moto import MotoServer

    with MotoServer() as moto:
        ssh, finding = aws_setup(moto)
        before = ingress_rules(moto, ssh["group"])
        with SecurityHubServer(findings=[finding], rate=None) as hub:
            k = kernel_factory(**aws_kernel_env(moto, hub, RUNBOOK_AUDIT_SINK="cloudwatch:no-such-group"))
            k.ok("%findings")
            res = k.execute("%remediate 1")
            assert res.status == "error", res.describe()
            assert "no-such-group" in res.content["evalue"], res.content
            k.ok("%config audit_sink=none")
            plan = last_bundle(k.ok("%remediate 1"))[RUNBOOK_MIME]["plan"]
            k.ok("%config audit_sink=cloudwatch:no-such-group")
            res = k.execute(f"%approve {plan['id']} --yes")
            assert res.status == "error", res.describe()
            err = res.content
            assert err["ename"] == "AuditError"
            assert "no-such-group" in err["evalue"] and "create-log-group" in err["evalue"], err
        assert ingress_rules(moto, ssh["group"]) == before, "nothing changed"


def test_bad_sink_values_are_refused_with_what_is_accepted(kernel):
    for bad in ("cloudwatch:", "s3:bucket", "cloudwatch:bad group", "cloudwatch"):
        res = kernel.execute(f"%config 'audit_sink={bad}'")
        assert res.status == "error", bad
        assert "cloudwatch:LOG_GROUP" in res.content["evalue"], res.content
    kernel.ok("%config audit_sink=cloudwatch:/ok/group-1")
    kernel.ok("%config audit_sink=none")
