"""Security Hub CSPM findings as accounts without consolidated control findings
send them: each standard names the control by its own id (CIS 1.2.0 rule 1.9,
CIS 1.4.0 1.8, PCI.IAM.7), and there is no Compliance.SecurityControlId.

The shapes follow the published ASFF of those standards (Security Hub user guide,
"Consolidated controls"; the sample findings of Automated Security Response on
AWS): the GeneratorId, the finding Id's `subscription/...` form, and
ProductFields.StandardsGuideArn + RuleId (CIS 1.2.0) or StandardsArn + ControlId
(CIS 1.4.0/3.0.0, PCI DSS), with StandardsControlArn. The mapping to consolidated
ids is the project's table, runbook-lib/src/finding/legacy_control_ids.csv.
"""

from __future__ import annotations

import csv
import copy
from pathlib import Path

TABLE = Path(__file__).resolve().parent.parent / "runbook-lib" / "src" / "finding" / "legacy_control_ids.csv"

# The workshop's controls, which the catalog plans for.
WORKSHOP_CONTROLS = (
    "EC2.7", "EC2.13", "EC2.14", "EC2.18", "EC2.19", "GuardDuty.1", "IAM.7", "IAM.11", "IAM.12",
    "IAM.13", "IAM.14", "IAM.15", "IAM.16", "IAM.17", "KMS.4", "S3.1",
)  # fmt: skip

TITLES = {"cis-1.2.0": "CIS 1.2.0", "cis-1.4.0": "CIS 1.4.0", "cis-3.0.0": "CIS 3.0.0", "pci-dss-3.2.1": "PCI DSS 3.2.1"}
_PATHS = {
    "cis-1.2.0": "cis-aws-foundations-benchmark/v/1.2.0",
    "cis-1.4.0": "cis-aws-foundations-benchmark/v/1.4.0",
    "cis-3.0.0": "cis-aws-foundations-benchmark/v/3.0.0",
    "pci-dss-3.2.1": "pci-dss/v/3.2.1",
}


def mapping() -> list[tuple[str, str, str]]:
    """(standard, standard-specific id, consolidated id) rows of the table."""
    lines = [line for line in TABLE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return [(s, i, c) for s, i, c in csv.reader(lines[1:])]


def standard_ids(control: str) -> list[tuple[str, str]]:
    """Every (standard, id) that maps to a consolidated control."""
    return [(s, i) for s, i, c in mapping() if c == control]


def as_legacy(finding: dict, standard: str, standard_id: str) -> dict:
    """A consolidated-view finding rewritten as `standard` would send it without
    consolidated control findings."""
    f = copy.deepcopy(finding)
    account, region = f["AwsAccountId"], f["Region"]
    path = _PATHS[standard]
    uuid_part = f["Id"].rsplit("/", 1)[-1]
    f["Id"] = f"arn:aws:securityhub:{region}:{account}:subscription/{path}/{standard_id}/finding/{uuid_part}"
    control_arn = f"arn:aws:securityhub:{region}:{account}:control/{path}/{standard_id}"
    fields = {k: v for k, v in f["ProductFields"].items() if k.startswith("aws/securityhub/")}
    if standard == "cis-1.2.0":
        f["GeneratorId"] = f"arn:aws:securityhub:::ruleset/{path}/rule/{standard_id}"
        fields.update({
            "StandardsGuideArn": f"arn:aws:securityhub:::ruleset/{path}",
            "StandardsGuideSubscriptionArn": f"arn:aws:securityhub:{region}:{account}:subscription/{path}",
            "RuleId": standard_id,
        })
        standards_id = f"ruleset/{path}"
    else:
        f["GeneratorId"] = f"{path}/{standard_id}"
        fields.update({
            "StandardsArn": f"arn:aws:securityhub:{region}::standards/{path}",
            "StandardsSubscriptionArn": f"arn:aws:securityhub:{region}:{account}:subscription/{path}",
            "ControlId": standard_id,
        })
        standards_id = f"standards/{path}"
    fields["StandardsControlArn"] = control_arn
    f["ProductFields"] = fields
    compliance = {k: v for k, v in f["Compliance"].items() if k != "SecurityControlId"}
    compliance["AssociatedStandards"] = [{"StandardsId": standards_id}]
    f["Compliance"] = compliance
    label = TITLES[standard].split()[0]
    f["Types"] = [f"Software and Configuration Checks/Industry and Regulatory Standards/{label}"]
    # The standard's own id leads the title, as in ASR's sample findings.
    f["Title"] = f"{standard_id} {f['Title']}"
    return f
