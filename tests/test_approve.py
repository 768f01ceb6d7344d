"""%approve end to end: nothing changes without approval; approved plans run,
verify, resolve the finding and leave an audit trail — in the sandbox and on
the AWS path (moto for EC2/STS, the local Security Hub server for the finding)."""

from __future__ import annotations

import re

import json

import pytest

from conftest import (
    RUNBOOK_MIME,
    assert_fails_with,
    audit_path,
    audit_records,
    ec2_19_hostile,
    execute_with_answer,
    last_bundle,
    open_rows,
)
from servers.securityhub import SecurityHubServer

pytestmark = pytest.mark.usefixtures("no_ambient_aws")


def number_of(rows, predicate) -> int:
    return next(r["number"] for r in rows if predicate(r))


def make_plan(kernel, predicate=ec2_19_hostile) -> tuple[str, str]:
    """Lists, remediates the matching finding; returns (plan id, finding id)."""
    rows = open_rows(kernel)
    n = number_of(rows, predicate)
    finding_id = next(r["id"] for r in rows if r["number"] == n)
    plan = last_bundle(kernel.ok(f"%remediate {n}"))[RUNBOOK_MIME]["plan"]
    return plan["id"], finding_id


def still_open(kernel, finding_id) -> bool:
    return any(r["id"] == finding_id for r in open_rows(kernel))


# --- nothing changes without approval ------------------------------------------


def test_without_stdin_and_without_yes_nothing_changes(kernel):
    plan_id, finding_id = make_plan(kernel)
    res = kernel.execute(f"%approve {plan_id}")
    assert res.status == "error" and res.content["ename"] == "NotApproved", res.describe()
    assert "--yes" in res.content["evalue"]
    assert still_open(kernel, finding_id)
    events = [r["event"] for r in audit_records(audit_path(kernel))]
    assert "cancelled" in events and "action_started" not in events


def test_yes_is_refused_under_interactive_approval(kernel):
    plan_id, finding_id = make_plan(kernel)
    kernel.ok("%config approval=interactive")
    res = kernel.execute(f"%approve {plan_id} --yes")
    assert res.content["ename"] == "NotApproved", res.describe()
    assert "interactive" in res.content["evalue"]
    assert still_open(kernel, finding_id)




@pytest.mark.parametrize("answer", ["", "yes", "plan-00000000", "y"])
def test_a_wrong_or_empty_answer_cancels(kernel, answer):
    plan_id, finding_id = make_plan(kernel)
    res, prompt = execute_with_answer(kernel, f"%approve {plan_id}", answer)
    assert plan_id in prompt
    assert res.status == "error" and res.content["ename"] == "NotApproved", res.describe()
    assert "nothing was changed" in res.content["evalue"]
    assert still_open(kernel, finding_id)


def test_typing_the_plan_id_applies_it(kernel):
    plan_id, finding_id = make_plan(kernel)
    res, _ = execute_with_answer(kernel, f"%approve {plan_id}", f"  {plan_id} ")
    assert res.status == "ok", res.describe()
    data = last_bundle(res)
    assert data[RUNBOOK_MIME]["state"] == "succeeded"
    assert "RESOLVED" in data["text/plain"]
    assert not still_open(kernel, finding_id)


# --- the sandbox round trip -------------------------------------------------------


def test_sandbox_round_trip_and_audit_trail(kernel):
    plan_id, finding_id = make_plan(kernel)
    res = kernel.ok("%approve last --yes")
    data = last_bundle(res)
    result = data[RUNBOOK_MIME]
    assert result["state"] == "succeeded"
    assert result["actor"] == "sandbox"
    assert all(s["state"] in ("done", "no_op") for s in result["report"]["steps"])
    assert len(res.of_type("update_display_data")) >= 3, "progress is shown step by step"
    assert not still_open(kernel, finding_id)
    # The finding is RESOLVED, with a note naming the plan.
    shown = kernel.ok(f"%finding '{finding_id}'").single_display()
    detail = shown[RUNBOOK_MIME]
    assert detail["workflow"] == "RESOLVED"
    assert plan_id in (detail.get("note") or {}).get("text", "")
    # ... and the page shows who resolved it, with which plan.
    assert re.search(rf"Note\s+Remediated by {plan_id}", shown["text/plain"]), shown["text/plain"]
    assert re.search(r"Note by\s+runbook-kernel at \d{4}-", shown["text/plain"]), shown["text/plain"]
    assert plan_id in shown["text/html"]
    events = [r["event"] for r in audit_records(audit_path(kernel)) if r["plan_id"] == plan_id]
    for expected in ("approved", "action_started", "action_finished", "finding_updated"):
        assert expected in events, events
    assert events.index("approved") < events.index("action_started") < events.index("action_finished")
    # Approving again changes nothing and says so.
    again = last_bundle(kernel.ok(f"%approve {plan_id} --yes"))
    assert again[RUNBOOK_MIME]["state"] == "already_applied"


def test_dry_run_changes_nothing(kernel):
    plan_id, finding_id = make_plan(kernel)
    data = last_bundle(kernel.ok(f"%approve {plan_id} --dry-run"))
    assert data[RUNBOOK_MIME]["state"] == "dry_run"
    assert data[RUNBOOK_MIME]["prechecks"][0]["already_done"] is False
    assert still_open(kernel, finding_id)


def test_drift_stops_before_any_change(kernel):
    rows = open_rows(kernel)
    # Two password-policy plans for one account: each is made from the same
    # policy, so applying the first makes the second's starting point stale.
    by_account: dict[str, list[dict]] = {}
    for r in rows:
        if r["control_id"] in ("IAM.15", "IAM.16", "IAM.7", "IAM.11", "IAM.12", "IAM.13", "IAM.14", "IAM.17"):
            by_account.setdefault(r["account"], []).append(r)
    pair = next(rs for rs in by_account.values() if len(rs) >= 2)
    first = last_bundle(kernel.ok(f"%remediate {pair[0]['number']}"))[RUNBOOK_MIME]["plan"]["id"]
    second = last_bundle(kernel.ok(f"%remediate {pair[1]['number']}"))[RUNBOOK_MIME]["plan"]["id"]
    kernel.ok(f"%approve {first} --yes")
    res = kernel.execute(f"%approve {second} --yes")
    assert res.status == "error" and res.content["ename"] == "StateDrifted", res.describe()
    assert "nothing was changed" in res.content["evalue"]


@pytest.mark.parametrize(
    "code, ename, words",
    [
        ("%approve", "UsageError", ["PLAN_ID"]),
        ("%approve last --yes", "UsageError", ["%remediate first"]),
        ("%approve plan-12 --yes", "UsageError", ["plan-"]),
        ("%approve plan-deadbeef --yes", "UsageError", ["unknown plan"]),
        ("%approve last --force", "UsageError", ["--force"]),
    ],
)
def test_bad_input(kernel, code, ename, words):
    assert_fails_with(kernel, code, ename, words)


def test_unwritable_audit_log_stops_before_any_change(kernel, tmp_path):
    plan_id, finding_id = make_plan(kernel)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    kernel.ok(f"%config audit_log={blocker}/audit.jsonl")
    res = kernel.execute(f"%approve {plan_id} --yes")
    assert res.status == "error" and res.content["ename"] == "AuditError", res.describe()
    assert still_open(kernel, finding_id)


# --- the AWS path: moto (EC2, STS) and the Security Hub server -------------------


def test_aws_round_trip_changes_moto_and_security_hub(kernel_factory, tmp_path):
    pytest.importorskip("boto3")
    from aws_seed import aws_kernel_env, ec2_19_finding, ingress_rules, moto_client, seed_open_ssh_group
    from servers.moto import MotoServer

    with MotoServer() as moto:
        account = moto_client(moto, "sts").get_caller_identity()["Account"]
        ssh = seed_open_ssh_group(moto)  # SSH from 0.0.0.0/0, HTTPS from 10.0.0.0/8
        group = ssh["group"]
        finding = ec2_19_finding(0, account, "us-east-1", group, ssh["vpc"], ssh["name"])
        with SecurityHubServer(findings=[finding], rate=None) as hub:
            k = kernel_factory(**aws_kernel_env(moto, hub))
            k.ok("%findings")
            plan = last_bundle(k.ok("%remediate 1"))[RUNBOOK_MIME]["plan"]
            assert plan["actions"][0]["action"] == "revoke_ingress"
            res = k.ok(f"%approve {plan['id']} --yes", timeout=60)
            assert last_bundle(res)[RUNBOOK_MIME]["state"] == "succeeded", res.describe()
            assert ingress_rules(moto, group) == {"tcp 443 10.0.0.0/8": ssh["rules"]["tcp 443 10.0.0.0/8"]}
            stored = hub.finding(finding["Id"])
            assert stored["Workflow"]["Status"] == "RESOLVED"
            assert plan["id"] in stored["Note"]["Text"]
            update = hub.requests_for("BatchUpdateFindings")[0].body
            assert update["FindingIdentifiers"] == [{"Id": finding["Id"], "ProductArn": finding["ProductArn"]}]
            actor = last_bundle(res)[RUNBOOK_MIME]["actor"]
            assert account in actor


# --- %audit and %rollback --------------------------------------------------------


def test_rollback_restores_the_state_and_the_trail_shows_it(kernel):
    plan_id, finding_id = make_plan(kernel)
    kernel.ok(f"%approve {plan_id} --yes")
    assert not still_open(kernel, finding_id)
    trail = last_bundle(kernel.ok(f"%audit --plan {plan_id}"))[RUNBOOK_MIME]
    events = [r["event"] for r in trail["records"]]
    assert events[0] == "plan_proposed" and "approved" in events and "finding_updated" in events
    assert not trail["warnings"]
    res = kernel.ok(f"%rollback {plan_id} --yes")
    assert last_bundle(res)[RUNBOOK_MIME]["state"] == "succeeded"
    assert still_open(kernel, finding_id), "the rule is back, so the finding fails again"
    events = [r["event"] for r in last_bundle(kernel.ok(f"%audit --plan {plan_id}"))[RUNBOOK_MIME]["records"]]
    assert "rolled_back" in events
    again = kernel.execute(f"%rollback {plan_id} --yes")
    assert again.content["ename"] == "UsageError" and "nothing to roll back" in again.content["evalue"]


def test_rollback_needs_approval_too(kernel):
    plan_id, finding_id = make_plan(kernel)
    kernel.ok(f"%approve {plan_id} --yes")
    res = kernel.execute(f"%rollback {plan_id}")
    assert res.content["ename"] == "NotApproved", res.describe()
    assert not still_open(kernel, finding_id), "nothing was undone"


def test_audit_flags_a_run_that_died_and_a_cut_last_line(kernel):
    plan_id, _ = make_plan(kernel)
    kernel.ok(f"%approve {plan_id} --dry-run")
    path = audit_path(kernel)
    records = audit_records(path)
    proposed = next(r for r in records if r["event"] == "plan_proposed")
    # What a kernel killed mid-run leaves: an action started and never finished,
    # then a record cut off in the middle of being written.
    started = {
        "seq": records[-1]["seq"] + 1, "at": "2026-11-28T10:00:00.000Z", "event": "action_started",
        "plan_id": plan_id, "actor": "sandbox", "account": proposed["account"], "region": proposed["region"],
        "action": {"index": 0, "name": "RevokeIngress"}, "before": {},
    }
    with path.open("a") as f:
        f.write(json.dumps(started) + "\n")
        f.write('{"seq": 999, "at": "2026-11-28T10:00:01.000Z", "event": "action_fin')
    trail = last_bundle(kernel.ok("%audit"))
    warnings = trail[RUNBOOK_MIME]["warnings"]
    assert any("damaged" in w for w in warnings), warnings
    assert any("never finished" in w and plan_id in w for w in warnings), warnings
    assert "WARNING" in trail["text/plain"]
    # The kernel carries on writing after the damaged line.
    kernel.ok(f"%approve {plan_id} --dry-run")
    assert json.loads(path.read_text().splitlines()[-1])["event"] == "dry_run"


def test_audit_before_anything_was_recorded(kernel, tmp_path):
    kernel.ok(f"%config audit_log={tmp_path}/fresh/audit.jsonl")
    data = last_bundle(kernel.ok("%audit --last 5"))
    assert data[RUNBOOK_MIME]["exists"] is False
    assert "nothing has been recorded" in data["text/plain"]
    res = kernel.execute("%audit --plan nope")
    assert res.content["ename"] == "UsageError"
