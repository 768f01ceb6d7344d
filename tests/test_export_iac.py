"""`%export --format terraform|cloudformation`: a sandbox plan as infrastructure as
code, through the real kernel.

The Terraform is checked for the import blocks and values the plan sets (and, where
a `terraform` binary is installed, parsed by `terraform fmt`); the CloudFormation
template is parsed and linted by cfn-lint. Actions that are not a resource's
property are refused by name.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from conftest import RUNBOOK_MIME, last_bundle, listing_number


def plan_of(kernel, control: str, region: str | None = None) -> dict:
    n = listing_number(kernel, lambda r: r["control_id"] == control and (region is None or r["region"] == region))
    return last_bundle(kernel.ok(f"%remediate {n}"))[RUNBOOK_MIME]["plan"]


def exported(kernel, plan_id: str, fmt: str) -> tuple[dict, str]:
    data = last_bundle(kernel.ok(f"%export {plan_id} --format {fmt}"))
    payload = data[RUNBOOK_MIME]
    assert payload["format"] == fmt and payload["plan_id"] == plan_id
    assert "<script" not in data["text/html"].lower() and "<img" not in data["text/html"].lower()
    return payload, payload["document"]


def test_a_password_policy_plan_as_terraform_imports_the_policy_and_sets_the_plans_values(kernel):
    plan = plan_of(kernel, "IAM.7")
    (action,) = plan["actions"]
    _, tf = exported(kernel, plan["id"], "terraform")
    assert 'required_version = ">= 1.5"' in tf
    assert f'allowed_account_ids = ["{plan["account"]}"]' in tf
    assert f'region              = "{plan["region"]}"' in tf
    assert 'to = aws_iam_account_password_policy.action1\n  id = "iam-account-password-policy"' in tf
    block = tf[tf.index('resource "aws_iam_account_password_policy"'):]
    values = dict(re.findall(r"^  (\w+)\s+= (\S+)$", block, re.M))
    policy = action["policy"]
    assert values["minimum_password_length"] == str(policy["minimum_password_length"])
    assert values["require_symbols"] == str(policy["require_symbols"]).lower()
    if shutil.which("terraform"):  # parses the HCL offline, without providers
        fmt = subprocess.run(["terraform", "fmt", "-"], input=tf, capture_output=True, text=True, timeout=60)
        assert fmt.returncode == 0, fmt.stderr


def test_a_guardduty_plan_as_cloudformation_imports_the_detector_then_enables_it(kernel, tmp_path):
    plan = plan_of(kernel, "GuardDuty.1")
    (action,) = plan["actions"]
    detector = action["existing_detector"]
    assert detector, "the sandbox's GuardDuty.1 finding has a disabled detector"
    out = tmp_path / "template.yaml"
    data = last_bundle(kernel.ok(f"%export {plan['id']} --format cloudformation --output {out}"))[RUNBOOK_MIME]
    assert data["written_to"] == str(out) and out.read_text() == data["document"]
    template = yaml.safe_load(out.read_text())
    resource = template["Resources"]["GuardDutyDetector1"]
    assert resource["Type"] == "AWS::GuardDuty::Detector" and resource["DeletionPolicy"] == "Retain"
    assert resource["Properties"]["Enable"] == {"Ref": "GuardDutyDetector1Enabled"}
    assert f'"ResourceIdentifier":{{"Id":"{detector}"}}' in data["document"]
    assert "--change-set-type IMPORT" in data["document"]
    api = pytest.importorskip("cfnlint.api", reason="cfn-lint comes with moto[server]")
    found = [f"{m.rule.id}: {m.message}" for m in api.lint_all(out.read_text()) if m.rule.severity in ("error", "warning")]
    assert not found, found
    # The same plan as Terraform imports the detector by its id.
    _, tf = exported(kernel, plan["id"], "terraform")
    assert f'to = aws_guardduty_detector.action1\n  id = "{detector}"' in tf


@pytest.mark.parametrize(
    "control, fmt, words",
    [
        ("EC2.19", "terraform", ["RevokeIngress", "not a resource property", "EnableEbsEncryptionByDefault"]),
        ("EC2.19", "cloudformation", ["RevokeIngress", "EnableGuardDuty"]),
        ("IAM.7", "cloudformation", ["SetPasswordPolicy", "no resource type"]),
    ],
)
def test_what_is_not_a_resource_property_is_refused_by_name(kernel, control, fmt, words):
    plan = plan_of(kernel, control)
    res = kernel.execute(f"%export {plan['id']} --format {fmt}")
    (error,) = res.errors
    assert error["content"]["ename"] == "UsageError", res.describe()
    for w in words:
        assert w in error["content"]["evalue"], error["content"]["evalue"]
