"""Sharing runbooks: a teammate approves a plan from a saved notebook
(`%approve PLAN_ID --from NOTEBOOK.ipynb`) after its content is checked against
its id and its finding, and `approval=two-person` makes the approver someone
other than the proposer. Identities are the `identity` setting in the sandbox;
both go into the audit."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from conftest import (
    RUNBOOK_MIME,
    assert_fails_with,
    audit_records,
    execute_with_answer,
    final_displays,
    last_bundle,
)

pytestmark = pytest.mark.usefixtures("no_ambient_aws")


def save_remediation(kernel, path: Path) -> dict:
    """Runs %findings and %remediate for EC2.13 and saves the cell as JupyterLab would."""
    kernel.ok("%findings --control EC2.13")
    res = kernel.ok("%remediate 1")
    outputs = [new_output("display_data", data=d) for d in final_displays(res)]
    nbformat.write(new_notebook(cells=[new_code_cell("%remediate 1", outputs=outputs)]), path)
    return last_bundle(res)[RUNBOOK_MIME]


def test_a_teammate_approves_a_plan_from_a_saved_notebook(kernel_factory, tmp_path):
    audit = tmp_path / "shared-audit.jsonl"
    alice = kernel_factory(RUNBOOK_IDENTITY="alice", RUNBOOK_AUDIT_LOG=str(audit))
    saved = tmp_path / "runbook.ipynb"
    result = save_remediation(alice, saved)
    plan_id = result["plan"]["id"]
    assert result["proposed_by"] == "alice"

    bob = kernel_factory(RUNBOOK_IDENTITY="bob", RUNBOOK_AUDIT_LOG=str(audit))
    res = bob.ok(f"%approve {plan_id} --from '{saved}' --yes")
    assert last_bundle(res)[RUNBOOK_MIME]["state"] == "succeeded"
    (approved,) = [r for r in audit_records(audit) if r["plan_id"] == plan_id and r["event"] == "approved"]
    assert approved["actor"] == "bob" and "proposed by alice" in approved["detail"]


def test_a_changed_or_missing_saved_plan_is_refused(kernel_factory, tmp_path):
    kernel = kernel_factory()
    saved = tmp_path / "runbook.ipynb"
    plan_id = save_remediation(kernel, saved)["plan"]["id"]
    nb = json.loads(saved.read_text())
    for output in nb["cells"][0]["outputs"]:
        plan = output["data"].get(RUNBOOK_MIME, {}).get("plan")
        if plan:
            plan["rationale"] = "quietly changed"
    tampered = tmp_path / "tampered.ipynb"
    tampered.write_text(json.dumps(nb))
    assert_fails_with(kernel, f"%approve {plan_id} --from '{tampered}' --yes", "PlanRejected", ["does not match its id", "nothing was changed"])
    assert_fails_with(kernel, f"%approve plan-00000000 --from '{saved}' --yes", "UsageError", ["holds no %remediate output"])
    assert_fails_with(kernel, f"%approve last --from '{saved}'", "UsageError", ["not `last`"])
    assert_fails_with(kernel, f"%approve {plan_id} --from '{tmp_path / 'none.ipynb'}'", "UsageError", ["cannot read"])


def test_two_person_rule(kernel_factory, tmp_path):
    audit = tmp_path / "shared-audit.jsonl"
    env = {"RUNBOOK_APPROVAL": "two-person", "RUNBOOK_AUDIT_LOG": str(audit)}
    alice = kernel_factory(RUNBOOK_IDENTITY="alice", **env)
    saved = tmp_path / "runbook.ipynb"
    plan_id = save_remediation(alice, saved)["plan"]["id"]
    # The proposer cannot approve (refused before being asked), and --yes is
    # refused as under interactive.
    res = alice.execute(f"%approve {plan_id}")
    assert res.status == "error" and res.content["ename"] == "NotApproved", res.describe()
    assert "alice proposed" in res.content["evalue"] and "someone else" in res.content["evalue"]

    bob = kernel_factory(RUNBOOK_IDENTITY="bob", **env)
    assert_fails_with(bob, f"%approve {plan_id} --from '{saved}' --yes", "NotApproved", ["approval=two-person refuses --yes"])
    res, _ = execute_with_answer(bob, f"%approve {plan_id} --from '{saved}'", plan_id)
    assert res.status == "ok", res.describe()
    records = [r for r in audit_records(audit) if r["plan_id"] == plan_id]
    refused = [r for r in records if r["event"] == "cancelled" and r["actor"] == "alice"]
    assert refused and "cannot also approve" in refused[0]["detail"]
    (approved,) = [r for r in records if r["event"] == "approved"]
    assert approved["actor"] == "bob" and "proposed by alice" in approved["detail"]
