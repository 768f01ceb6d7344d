"""The IAM policies shipped in iam/ for users of the kernel.

- All three are well-formed IAM policy documents, and every action (and every
  scoped resource) exists in the AWS service authorization reference that
  cfn-lint ships (cfn-lint comes with moto[server], pinned in requirements.txt).
- runbook-read-only.json grants none of the writes the kernel can make.
- runbook-remediation.json grants every IAM permission the kernel's plans name,
  taken from the real kernel: a plan for every sandbox finding of every control
  family the catalog covers, and the inverse actions `%rollback` really runs.
  It also grants every `service:Action` the library's AWS code names.
- Across an organisation: security-account.json lets the security account assume
  the member role, read and resolve findings and list the organisation's
  accounts, and grants no write in an account. member-role.yaml, the member
  role's CloudFormation template, passes cfn-lint, trusts only the security
  account's principal and Systems Manager (which runs Automation runbooks as the
  role, for its own account only), and grants what runbook-remediation.json
  grants less the security account's own services.
- Both grant every permission the Automation runbooks of
  runbook-lib/src/catalog/automation_controls.yaml call, and what the kernel
  calls to run them.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest

from conftest import RUNBOOK_MIME, final_displays, last_bundle

pytestmark = pytest.mark.usefixtures("no_ambient_aws")

ROOT = Path(__file__).resolve().parent.parent
READ_ONLY = ROOT / "iam" / "runbook-read-only.json"
REMEDIATION = ROOT / "iam" / "runbook-remediation.json"
SECURITY_ACCOUNT = ROOT / "iam" / "security-account.json"
MEMBER_ROLE = ROOT / "iam" / "member-role.yaml"
POLICIES = {"read-only": READ_ONLY, "remediation": REMEDIATION, "security-account": SECURITY_ACCOUNT}

# What only the security account does: read and resolve findings (Security Hub),
# ask a model (Bedrock), assume the member role and say who it is (STS). The
# member role grants none of these services.
SECURITY_ACCOUNT_SERVICES = ("securityhub", "bedrock", "sts")

# The member role's statements for what the Automation runbooks' steps call.
# The steps always run as the member role (AutomationAssumeRole), so the
# security account's principal (runbook-remediation.json) does not hold these.
RUNBOOK_STEP_SIDS = ("AutomationRunbookStepReads", "AutomationRunbookSteps", "PassRolesToCloudTrailAndConfig",
                     "ConfigServiceLinkedRole")  # fmt: skip

# What RunAutomation itself calls besides the reads: start, stop, pass the
# member role to SSM, re-evaluate the Config rule, create the kernel's own
# documents.
AUTOMATION_CALLS = (
    "ssm:StartAutomationExecution",
    "ssm:StopAutomationExecution",
    "iam:PassRole",
    "config:StartConfigRulesEvaluation",
    "ssm:CreateDocument",
    "ssm:ModifyDocumentPermission",  # %rollout shares its document
)

# Every write the Automation runbooks' steps make (automation_controls.yaml's
# `permissions`, less the reads; test_every_automation_runbook_permission_is_granted
# keeps the two in step).
RUNBOOK_STEP_WRITES = (
    "apigateway:PATCH",
    "autoscaling:UpdateAutoScalingGroup",
    "cloudfront:UpdateDistribution",
    "cloudtrail:CreateTrail",
    "cloudtrail:StartLogging",
    "cloudtrail:UpdateTrail",
    "config:PutConfigurationRecorder",
    "config:PutDeliveryChannel",
    "config:StartConfigurationRecorder",
    "dynamodb:UpdateContinuousBackups",
    "ec2:CreateFlowLogs",
    "ec2:DeleteSecurityGroup",
    "ec2:ModifyInstanceMetadataOptions",
    "ec2:ModifySubnetAttribute",
    "ec2:ReleaseAddress",
    "ec2:RevokeSecurityGroupEgress",
    "ec2:TerminateInstances",
    "ecr:PutImageScanningConfiguration",
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "iam:DeleteAccessKey",
    "iam:DeleteLoginProfile",
    "iam:UpdateAccessKey",
    "kms:CancelKeyDeletion",
    "lambda:InvokeFunction",
    "lambda:RemovePermission",
    "logs:CreateLogDelivery",
    "logs:CreateLogGroup",
    "logs:DeleteLogDelivery",
    "rds:ModifyDBCluster",
    "rds:ModifyDBInstance",
    "redshift:EnableLogging",
    "redshift:ModifyCluster",
    "redshift:ModifyClusterParameterGroup",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketLogging",
    "s3:PutBucketPolicy",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketVersioning",
    "s3:PutEncryptionConfiguration",
    "s3:PutObject",
    "secretsmanager:RotateSecret",
    "sns:SetTopicAttributes",
    "sqs:SetQueueAttributes",
    "wafv2:PutLoggingConfiguration",
)
AUTOMATION_WRITES = AUTOMATION_CALLS + RUNBOOK_STEP_WRITES

# What RunAutomation reads (RunAutomation::permissions): the execution's progress,
# the resource's Config item, and the Config rule's evaluation and result.
AUTOMATION_READS = (
    "ssm:GetAutomationExecution",
    "config:BatchGetResourceConfig",
    "config:DescribeConfigRules",
    "config:DescribeConfigRuleEvaluationStatus",
    "config:GetComplianceDetailsByResource",
)

# Every change the kernel can make in an account: the catalog's actions, their
# inverses (rollback), resolving the finding after %approve, and Automation runs.
WRITE_ACTIONS = (
    "ec2:RevokeSecurityGroupIngress",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:EnableEbsEncryptionByDefault",
    "ec2:DisableEbsEncryptionByDefault",
    "guardduty:CreateDetector",
    "guardduty:UpdateDetector",
    "guardduty:DeleteDetector",
    "iam:CreateServiceLinkedRole",
    "iam:UpdateAccountPasswordPolicy",
    "iam:DeleteAccountPasswordPolicy",
    "s3:PutAccountPublicAccessBlock",
    "kms:EnableKeyRotation",
    "kms:DisableKeyRotation",
    "securityhub:BatchUpdateFindings",
) + AUTOMATION_WRITES

# What read-only use needs besides the prechecks' reads (which the plans name):
# %findings, the caller identity, Bedrock Converse/ConverseStream, and Retrieve
# from a Bedrock knowledge base.
READS_OUTSIDE_PLANS = (
    "securityhub:GetFindings",
    "sts:GetCallerIdentity",
    "bedrock:InvokeModel",
    "bedrock:InvokeModelWithResponseStream",
    "bedrock:Retrieve",
)

# %approve resolves the finding and records who approved (README, "The sandbox and AWS").
APPROVE_PERMISSIONS = ("securityhub:BatchUpdateFindings", "sts:GetCallerIdentity")

# The inverse actions rollback can run, with the write each needs (their reads
# are those of the forward action). A kind missing here fails the test: add it
# with its permission, and grant that in runbook-remediation.json.
INVERSE_WRITES = {
    "authorize_ingress": "ec2:AuthorizeSecurityGroupIngress",
    "revoke_ingress": "ec2:RevokeSecurityGroupIngress",
    "disable_guard_duty": "guardduty:UpdateDetector",
    "enable_guard_duty": "guardduty:UpdateDetector",
    "delete_guard_duty_detector": "guardduty:DeleteDetector",
    "set_password_policy": "iam:UpdateAccountPasswordPolicy",
    "delete_password_policy": "iam:DeleteAccountPasswordPolicy",
    "block_s3_public_access": "s3:PutAccountPublicAccessBlock",
    # The account-level DeletePublicAccessBlock is authorised by s3:PutAccountPublicAccessBlock.
    "delete_s3_public_access_block": "s3:PutAccountPublicAccessBlock",
    "enable_ebs_encryption_by_default": "ec2:EnableEbsEncryptionByDefault",
    "disable_ebs_encryption_by_default": "ec2:DisableEbsEncryptionByDefault",
    "enable_kms_key_rotation": "kms:EnableKeyRotation",
    "disable_kms_key_rotation": "kms:DisableKeyRotation",
}

# The control families of the remediation catalog (README, "%summarize and %remediate").
def catalog_table() -> dict[str, tuple[str, ...]]:
    """The README's catalog table (family -> controls). A Rust test
    (catalog::completeness) keeps it equal to the catalog's registry, so the plans
    below cover every registered family without a list kept by hand here."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("| Family | Controls |", 1)[1].split("\n\n", 1)[0]
    out = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.split("|")]
        out[cells[1].strip("`")] = tuple(c.strip() for c in cells[2].split(","))
    return out


FAMILIES = catalog_table()

# Granted to the security account (iam/security-account.json), not by the remediation
# policy: assuming the member role, and naming the organisation's accounts.
SECURITY_ACCOUNT_ONLY = {
    "sts:AssumeRole",
    "sts:SetSourceIdentity",
    "organizations:ListAccounts",
    "organizations:DescribeOrganization",
}

ACTION_NAME = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9*]+$")
READ_VERBS = ("Get", "BatchGet", "List", "Describe", "Retrieve", "InvokeModel")


# --- policy documents ------------------------------------------------------------


def load(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def statements(doc: dict) -> list[dict]:
    return as_list(doc["Statement"])


def _matches(pattern: str, action: str) -> bool:
    # IAM action names are case-insensitive; `*` and `?` are IAM's wildcards too.
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


def allows(doc: dict, action: str) -> bool:
    """Whether some Allow statement grants `action` (resources and conditions
    aside) and no Deny statement takes it away."""
    granted = False
    for st in statements(doc):
        if any(_matches(p, action) for p in as_list(st.get("Action", []))):
            if st["Effect"] == "Deny":
                return False
            granted = True
    return granted


def actions_of(doc: dict) -> list[str]:
    return [a for st in statements(doc) if st["Effect"] == "Allow" for a in as_list(st["Action"])]


def missing(doc: dict, wanted) -> list[str]:
    return sorted({a for a in wanted if not allows(doc, a)})


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_is_a_valid_iam_policy_document(name):
    doc = load(POLICIES[name])
    assert set(doc) == {"Version", "Statement"}, doc.keys()
    assert doc["Version"] == "2012-10-17"
    assert isinstance(doc["Statement"], list) and doc["Statement"]
    sids = []
    for st in doc["Statement"]:
        assert isinstance(st, dict), st
        assert set(st) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, st
        assert st["Effect"] in ("Allow", "Deny"), st
        assert "Action" in st and "Resource" in st, st
        acts = as_list(st["Action"])
        assert acts and all(isinstance(a, str) and ACTION_NAME.match(a) for a in acts), st
        assert len(acts) == len(set(acts)), f"duplicate actions in {st}"
        resources = as_list(st["Resource"])
        assert resources and all(r == "*" or r.startswith("arn:aws:") for r in resources), st
        if "Sid" in st:
            assert re.fullmatch(r"[A-Za-z0-9]+", st["Sid"]), f"Sid must be alphanumeric: {st['Sid']}"
            sids.append(st["Sid"])
        if "Condition" in st:
            assert isinstance(st["Condition"], dict) and st["Condition"], st
    assert len(sids) == len(set(sids)), f"duplicate Sids: {sids}"
    # A customer managed policy holds at most 6,144 characters, whitespace not counted.
    text = POLICIES[name].read_text(encoding="utf-8")
    assert len(re.sub(r"\s", "", text)) <= 6144


def _service_reference() -> dict:
    cfnlint = pytest.importorskip("cfnlint", reason="cfn-lint (installed with moto[server]) holds the IAM action data")
    path = Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs" / "Policies.json"
    if not path.is_file():
        pytest.skip(f"cfn-lint has no {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def _arn_pattern(arn_format: str) -> re.Pattern:
    """An ARN format of the service reference (`arn:${Partition}:kms:${Region}:...`) as a regex."""
    out, pos = [], 0
    for m in re.finditer(r"\$\{([^}]+)\}|\.\*", arn_format):
        out.append(re.escape(arn_format[pos : m.start()]))
        name = m.group(1)
        if name == "Partition":
            out.append("aws")
        elif name in ("Region", "Account"):
            out.append("[^:]*")
        else:
            out.append(".*")
        pos = m.end()
    out.append(re.escape(arn_format[pos:]))
    return re.compile("".join(out))


def reference_problems(sts: list[dict]) -> list[str]:
    """Actions that do not exist, and scoped resources that are not among an
    action's resource types, in the service reference."""
    reference = _service_reference()
    problems = []
    for st in sts:
        resources = as_list(st["Resource"])
        for action in as_list(st["Action"]):
            service, _, verb = action.partition(":")
            spec = reference.get(service, {}).get("Actions", {}).get(verb.lower())
            if spec is None:
                problems.append(f"{action}: no such IAM action")
                continue
            if resources == ["*"]:
                continue
            types = spec.get("Resources", [])
            if not types:
                problems.append(f"{action} takes no resource ARN, so statement {st.get('Sid')} must use Resource \"*\"")
                continue
            formats = [
                f for t in types for f in reference[service].get("Resources", {}).get(t, {}).get("ARNFormats", [])
            ]
            for resource in resources:
                sample = resource.replace("*", "x")
                if not any(_arn_pattern(f).fullmatch(sample) for f in formats):
                    problems.append(f"{action}: {resource} is not one of its resource types {types}")
    return problems


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_actions_and_resources_exist_in_the_service_reference(name):
    problems = reference_problems(statements(load(POLICIES[name])))
    assert not problems, "\n".join(problems)


def test_read_only_grants_no_write():
    doc = load(READ_ONLY)
    granted_writes = [a for a in WRITE_ACTIONS if allows(doc, a)]
    assert not granted_writes, f"the read-only policy grants writes: {granted_writes}"
    for action in actions_of(doc):
        assert "*" not in action, f"{action}: no wildcards in the read-only policy"
        assert action.partition(":")[2].startswith(READ_VERBS), f"{action} is not a read"
    assert not missing(doc, READS_OUTSIDE_PLANS)


def test_remediation_grants_everything_read_only_does_and_every_write():
    remediation = load(REMEDIATION)
    assert not missing(remediation, actions_of(load(READ_ONLY)))
    assert not missing(remediation, set(WRITE_ACTIONS) - set(RUNBOOK_STEP_WRITES))
    assert not missing(remediation, APPROVE_PERMISSIONS)
    # The runbooks' steps run as the member role, never as this principal.
    assert not [a for a in RUNBOOK_STEP_WRITES if allows(remediation, a)]


AUTOMATION_TABLE = ROOT / "runbook-lib" / "src" / "catalog" / "automation_controls.yaml"


def automation_rows() -> list[dict]:
    """runbook-lib/src/catalog/automation_controls.yaml: a control's AWS-owned
    Automation runbook and the IAM actions its steps call."""
    yaml = pytest.importorskip("yaml", reason="PyYAML (installed with cfn-lint) reads the table")
    return yaml.safe_load(AUTOMATION_TABLE.read_text(encoding="utf-8"))


def is_read(action: str) -> bool:
    # Case aside: apigateway:GET is API Gateway's read.
    return action.partition(":")[2].lower().startswith(tuple(v.lower() for v in READ_VERBS))


def test_every_automation_runbook_permission_is_granted():
    """SSM runs a row's runbook as the member role (its AutomationAssumeRole, in
    the caller's own account too): the member role's step statements grant what
    every row's steps call; the remediation policy (and so the member role) grants
    what the kernel calls to run a runbook and verify it."""
    rows = automation_rows()
    assert len(rows) >= 40, len(rows)
    named = set()
    for row in rows:
        assert row["permissions"] and all(ACTION_NAME.match(p) for p in row["permissions"]), row["control"]
        named |= set(row["permissions"])
    writes = sorted(p for p in named if not is_read(p) and p not in WRITE_ACTIONS)
    assert not writes, f"the table names writes that AUTOMATION_WRITES lacks: {writes}"
    assert not [p for p in AUTOMATION_READS if p in WRITE_ACTIONS or not is_read(p)], AUTOMATION_READS

    remediation = load(REMEDIATION)
    lacking = missing(remediation, set(AUTOMATION_READS) | set(AUTOMATION_CALLS))
    assert not lacking, f"runbook-remediation.json lacks what Automation runs need: {lacking}"
    member = member_role_policy(member_role_template())
    lacking = missing(member, named)
    assert not lacking, f"the member role lacks what the runbooks call: {lacking}"
    steps = {"Statement": [st for st in statements(member) if st["Sid"] in RUNBOOK_STEP_SIDS]}
    assert not missing(steps, RUNBOOK_STEP_WRITES)
    # Only AWS-owned runbooks (customers cannot name a document AWS*) and the
    # kernel's own (Runbook-*), and the member role passed only to SSM.
    for row in rows:
        definition = f"arn:aws:ssm:us-east-1::automation-definition/{row['document']}:$DEFAULT"
        assert allows_on(remediation, "ssm:StartAutomationExecution", definition), row["control"]
    customers = f"arn:aws:ssm:us-east-1:{SAMPLE_ACCOUNT}:automation-definition/MyRunbook:$DEFAULT"
    assert not allows_on(remediation, "ssm:StartAutomationExecution", customers), "only AWS-owned runbooks may run"
    # ... and the documents %rollout makes of approved plans (Runbook-PLAN_ID-rollout).
    rollout = f"arn:aws:ssm:us-east-1:{SAMPLE_ACCOUNT}:automation-definition/Runbook-plan-0a1b2c3d-rollout:$DEFAULT"
    assert allows_on(remediation, "ssm:StartAutomationExecution", rollout)
    assert allows_on(remediation, "iam:PassRole", OWN_ROLE_ARN)
    assert not allows_on(remediation, "iam:PassRole", f"arn:aws:iam::{SAMPLE_ACCOUNT}:role/Admin")
    for st in statements(remediation):
        if allows({"Statement": [st]}, "iam:PassRole"):
            assert st.get("Condition") == {"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}}, st
    # The steps pass roles only to CloudTrail and Config (CloudTrail.5, Config.1).
    passed_to = [st.get("Condition") for st in statements(steps) if allows({"Statement": [st]}, "iam:PassRole")]
    assert passed_to == [
        {"StringEquals": {"iam:PassedToService": ["cloudtrail.amazonaws.com", "config.amazonaws.com"]}},
    ], passed_to


def test_the_catalog_table_is_read():
    assert len(FAMILIES) >= 6, FAMILIES
    for family, controls in FAMILIES.items():
        assert controls and all(re.fullmatch(r"[A-Za-z0-9]+\.\d+", c) for c in controls), (family, controls)


# --- across an organisation: the security account and the member role -------------


def allows_on(doc: dict, action: str, resource: str) -> bool:
    """`allows`, for one resource ARN: some Allow statement grants `action` on it
    (conditions aside) and no Deny statement naming it takes it away."""
    granted = False
    for st in statements(doc):
        acts, resources = as_list(st.get("Action", [])), as_list(st.get("Resource", []))
        if any(_matches(p, action) for p in acts) and any(fnmatch.fnmatchcase(resource, r) for r in resources):
            if st["Effect"] == "Deny":
                return False
            granted = True
    return granted


def test_security_account_assumes_the_member_role_and_resolves_findings():
    doc = load(SECURITY_ACCOUNT)
    member_role = "arn:aws:iam::123456789012:role/SecurityRunbookMember"
    assert allows_on(doc, "sts:AssumeRole", member_role)
    # The session carries the approver as its SourceIdentity.
    assert allows_on(doc, "sts:SetSourceIdentity", member_role)
    assert not allows_on(doc, "sts:AssumeRole", "arn:aws:iam::123456789012:role/OrganizationAccountAccessRole")
    assert not missing(doc, ("securityhub:GetFindings", "securityhub:BatchUpdateFindings"))
    assert not missing(doc, ("organizations:ListAccounts", "organizations:DescribeOrganization"))
    assert not missing(doc, APPROVE_PERMISSIONS)
    # %summarize, %remediate with a model, %ask and %kb run in the security account.
    assert not missing(doc, READS_OUTSIDE_PLANS)
    bedrock = [st for st in statements(doc) if any(a.startswith("bedrock:") for a in as_list(st["Action"]))]
    assert bedrock == [st for st in statements(load(REMEDIATION)) if any(a.startswith("bedrock:") for a in as_list(st["Action"]))]


def test_security_account_grants_no_write_in_an_account():
    """Changes in an account are made through the member role's session, never
    with the security account's own permissions."""
    doc = load(SECURITY_ACCOUNT)
    writes = [a for a in WRITE_ACTIONS if a.partition(":")[0] != "securityhub" and allows(doc, a)]
    assert not writes, f"the security account's policy grants writes: {writes}"
    services = {a.partition(":")[0] for a in actions_of(doc)}
    assert not services & {"ec2", "iam", "kms", "guardduty", "s3"}, services


def member_role_template() -> dict:
    """iam/member-role.yaml, read as plain YAML: it uses the long forms of
    intrinsic functions (`Ref:`, `Fn::If:`), so it needs no CloudFormation tags."""
    yaml = pytest.importorskip("yaml", reason="PyYAML (installed with cfn-lint) reads the template")
    return yaml.safe_load(MEMBER_ROLE.read_text(encoding="utf-8"))


# The member role's own ARN as the template spells it (it passes itself to SSM),
# and as in_partition_aws makes it: a sample account, the default role name.
OWN_ROLE_SUB = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${MemberRoleName}"
SAMPLE_ACCOUNT = "123456789012"
OWN_ROLE_ARN = f"arn:aws:iam::{SAMPLE_ACCOUNT}:role/SecurityRunbookMember"


def in_partition_aws(value):
    """A template value with each `Fn::Sub` of `${AWS::Partition}` made the
    literal `arn:aws:...` that iam/*.json spell. The role's own ARN (only that
    spelling may name the account or the role) becomes OWN_ROLE_ARN."""
    if isinstance(value, dict):
        if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            if value["Fn::Sub"] == OWN_ROLE_SUB:
                return OWN_ROLE_ARN
            text = value["Fn::Sub"].replace("${AWS::Partition}", "aws")
            assert "${" not in text, f"Fn::Sub substitutes more than the partition: {value}"
            return text
        return {k: in_partition_aws(v) for k, v in value.items()}
    if isinstance(value, list):
        return [in_partition_aws(v) for v in value]
    return value


def member_role(template: dict) -> dict:
    role = template["Resources"]["MemberRole"]
    assert role["Type"] == "AWS::IAM::Role", role
    return role["Properties"]


def member_role_policy(template: dict) -> dict:
    policies = member_role(template)["Policies"]
    assert len(policies) == 1, "the member role has one inline policy"
    return in_partition_aws(policies[0]["PolicyDocument"])


def grants_by_action(doc: dict) -> dict[str, list[tuple]]:
    """Each allowed action with the resources and condition it is granted on."""
    out: dict[str, list[tuple]] = {}
    for st in statements(doc):
        if st["Effect"] == "Allow":
            for action in as_list(st["Action"]):
                grant = (sorted(as_list(st["Resource"])), json.dumps(st.get("Condition"), sort_keys=True))
                out.setdefault(action, []).append(grant)
    return out


def test_member_role_template_passes_cfn_lint():
    api = pytest.importorskip("cfnlint.api", reason="cfn-lint comes with moto[server]")
    matches = api.lint_all(MEMBER_ROLE.read_text(encoding="utf-8"))
    # Informational matches (I...) are suggestions; errors and warnings are not.
    found = [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches if m.rule.severity in ("error", "warning")]
    assert not found, "\n".join(found)


def test_member_role_grants_the_remediation_policy_less_the_security_accounts_services():
    """The member role's inline policy stays in step with runbook-remediation.json:
    the same actions, on the same resources under the same conditions, less
    Security Hub, Bedrock and STS (the security account's)."""
    policy = member_role_policy(member_role_template())
    assert policy["Version"] == "2012-10-17"
    sids = [st["Sid"] for st in statements(policy)]
    assert len(sids) == len(set(sids)) and all(re.fullmatch(r"[A-Za-z0-9]+", s) for s in sids), sids
    assert all(ACTION_NAME.match(a) for a in actions_of(policy)), actions_of(policy)

    def in_member(action: str) -> bool:
        return action.partition(":")[0] not in SECURITY_ACCOUNT_SERVICES

    # The runbooks' steps (only the member role runs them) apart, the same as runbook-remediation.json.
    shared = {"Statement": [st for st in statements(policy) if st["Sid"] not in RUNBOOK_STEP_SIDS]}
    assert len(statements(shared)) == len(statements(policy)) - len(RUNBOOK_STEP_SIDS)
    wanted = {a for a in actions_of(load(REMEDIATION)) if in_member(a)}
    granted = set(actions_of(shared))
    assert granted == wanted, f"missing {sorted(wanted - granted)}, extra {sorted(granted - wanted)}"
    remediation = grants_by_action(load(REMEDIATION))
    for action, grants in grants_by_action(shared).items():
        if action == "iam:PassRole":
            # To SSM the role passes only itself (as AutomationAssumeRole): the
            # remediation policy's grant, narrowed to this role in this account.
            [(remediation_resources, condition)] = remediation[action]
            assert grants == [([OWN_ROLE_ARN], condition)], f"{action}: {grants}"
            assert any(fnmatch.fnmatchcase(OWN_ROLE_ARN, r) for r in remediation_resources), remediation_resources
            continue
        assert grants == remediation[action], f"{action} is scoped differently from runbook-remediation.json"
    assert not [st for st in statements(policy) if st["Effect"] != "Allow"]

    problems = reference_problems(statements(policy))
    assert not problems, "\n".join(problems)


SECURITY_ACCOUNT_PRINCIPAL = {"AWS": {"Ref": "SecurityAccountPrincipal"}}
SSM_PRINCIPAL = {"Service": "ssm.amazonaws.com"}


def test_member_role_trusts_only_the_security_account_principal_and_ssm():
    template = member_role_template()
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    role = member_role(template)
    assert role["RoleName"] == {"Ref": "MemberRoleName"}
    assert role["MaxSessionDuration"] == 3600

    trust = role["AssumeRolePolicyDocument"]
    assert trust["Version"] == "2012-10-17"
    trusted = statements(trust)
    assert len(trusted) == 2, trusted
    for st in trusted:
        assert set(st) <= {"Sid", "Effect", "Principal", "Action", "Condition"}, st
        assert st["Effect"] == "Allow", st
    principals = [st["Principal"] for st in trusted]
    assert sorted(map(json.dumps, principals)) == sorted(map(json.dumps, [SECURITY_ACCOUNT_PRINCIPAL, SSM_PRINCIPAL])), principals
    [statement] = [st for st in trusted if st["Principal"] == SECURITY_ACCOUNT_PRINCIPAL]
    [ssm] = [st for st in trusted if st["Principal"] == SSM_PRINCIPAL]

    # Systems Manager runs Automation runbooks as the role (AutomationAssumeRole),
    # only on behalf of this account (no confused deputy).
    assert as_list(ssm["Action"]) == ["sts:AssumeRole"], ssm
    assert ssm.get("Condition") == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}, ssm

    # SourceIdentity on the session needs sts:SetSourceIdentity in the trust policy.
    assert sorted(as_list(statement["Action"])) == ["sts:AssumeRole", "sts:SetSourceIdentity"]
    assert statement["Condition"] == {
        "Fn::If": [
            "HasExternalId",
            {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert template["Conditions"]["HasExternalId"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ExternalId"}, ""]}]}
    assert template["Outputs"]["MemberRoleArn"]["Value"] == {"Fn::GetAtt": ["MemberRole", "Arn"]}


def test_member_role_parameters():
    parameters = member_role_template()["Parameters"]
    assert set(parameters) == {"SecurityAccountPrincipal", "MemberRoleName", "ExternalId"}
    assert "Default" not in parameters["SecurityAccountPrincipal"]
    assert parameters["MemberRoleName"]["Default"] == "SecurityRunbookMember"
    assert parameters["ExternalId"]["Default"] == ""

    def accepts(name: str, value: str) -> bool:
        return re.fullmatch(parameters[name]["AllowedPattern"], value) is not None

    for arn in (
        "arn:aws:iam::111111111111:role/SecurityRunbook",
        "arn:aws:iam::111111111111:role/service-role/AmazonSageMaker-ExecutionRole-20250101T000000",
        "arn:aws:iam::111111111111:user/alice@example.com",
        "arn:aws:iam::111111111111:root",
        "arn:aws-cn:iam::111111111111:role/SecurityRunbook",
        "arn:aws-us-gov:iam::111111111111:role/SecurityRunbook",
    ):
        assert accepts("SecurityAccountPrincipal", arn), arn
    for arn in (
        "",
        "*",
        "111111111111",
        "arn:aws:iam::*:role/SecurityRunbook",
        "arn:aws:iam::111111111111:group/Security",
        "arn:aws:sts::111111111111:assumed-role/SecurityRunbook/alice",
        "arn:aws:iam::111111111111:role/SecurityRunbook extra",
    ):
        assert not accepts("SecurityAccountPrincipal", arn), arn
    assert accepts("MemberRoleName", "SecurityRunbookMember")
    assert not accepts("MemberRoleName", "ops/SecurityRunbookMember")
    assert accepts("ExternalId", "") and accepts("ExternalId", "runbook-2026")
    assert not accepts("ExternalId", "x") and not accepts("ExternalId", "has space")


# --- permissions from the real kernel ----------------------------------------------


# The sandbox member where the runbook's role was never deployed: no plan can be made there.
ROLELESS_ACCOUNT = "444444444444"


def listing(kernel, control: str) -> list[dict]:
    """The control's open findings in accounts the runbook can act in."""
    res = kernel.ok(f"%findings --all --control {control}")
    for data in final_displays(res):
        rows = (data.get(RUNBOOK_MIME) or {}).get("shown")
        if rows is not None:
            return [r for r in rows if r["account"] != ROLELESS_ACCOUNT]
    raise AssertionError(res.describe())


def plans_by_family(kernel) -> dict[str, list[dict]]:
    """A plan for every open sandbox finding of every covered control, with the
    example organisation's policies (they name the values only it can choose,
    such as the CloudTrail log bucket)."""
    kernel.ok(f"%config kb={ROOT / 'notebooks' / 'policies' / 'en'}")
    out: dict[str, list[dict]] = {}
    for family, controls in FAMILIES.items():
        for control in controls:
            for row in listing(kernel, control):
                data = last_bundle(kernel.ok(f"%remediate {row['id']}"))[RUNBOOK_MIME]
                assert data.get("executable") is True and "plan" in data, (control, data)
                out.setdefault(family, []).append(data["plan"])
    return out


def test_every_permission_a_plan_names_is_granted(kernel):
    plans = plans_by_family(kernel)
    assert set(plans) == set(FAMILIES), f"no sandbox finding gave a plan for {sorted(set(FAMILIES) - set(plans))}"
    named = {p for ps in plans.values() for plan in ps for p in plan["permissions"]}
    assert named, "plans name no permissions"
    for family, ps in plans.items():
        assert all(plan["permissions"] for plan in ps), f"a {family} plan names no permissions"

    remediation, read_only = load(REMEDIATION), load(READ_ONLY)
    # What the runbooks' steps call is the member role's (they run as it).
    step_permissions = {p for row in automation_rows() for p in row["permissions"]}
    kernel_calls = named - step_permissions
    assert not missing(remediation, kernel_calls), "runbook-remediation.json lacks permissions plans name"
    member = member_role_policy(member_role_template())
    assert not missing(member, named & step_permissions), "the member role lacks what the plans' runbooks call"
    # Every permission the kernel calls splits into a write (listed above, denied to
    # read-only) or a read that read-only grants, so prechecks and --dry-run work read-only.
    reads = {p for p in kernel_calls if p not in WRITE_ACTIONS}
    assert not missing(read_only, reads), "runbook-read-only.json lacks reads the prechecks make (or WRITE_ACTIONS lacks a write)"

    # The rollback a plan records up front uses inverse actions: their writes too.
    kinds = {a["action"] for ps in plans.values() for plan in ps for a in plan["rollback"]}
    unknown = sorted(kinds - set(INVERSE_WRITES))
    assert not unknown, f"rollback uses actions this test does not know: {unknown}; add them to INVERSE_WRITES"
    assert not missing(remediation, {INVERSE_WRITES[k] for k in kinds})


def audit_inverses(kernel, plan_id: str) -> set[str]:
    """The inverse actions rollback ran for one plan, from its audit records."""
    data = last_bundle(kernel.ok(f"%audit --plan {plan_id}"))[RUNBOOK_MIME]
    out = set()
    for record in data["records"]:
        inverse = (record.get("action") or {}).get("inverse")
        if record["event"] == "rolled_back" and inverse:
            out.add(inverse["action"])
    return out


@pytest.mark.timeout(180)
def test_every_inverse_rollback_runs_is_granted(kernel):
    """Approve and roll back one plan per finding in the sandbox; the inverses
    recorded in the audit trail (e.g. deleting a detector the plan created, which
    no plan lists up front) must be granted too."""
    seen_families, kinds = set(), set()
    kernel.ok(f"%config kb={ROOT / 'notebooks' / 'policies' / 'en'}")
    for family, controls in FAMILIES.items():
        for control in controls:
            for row in listing(kernel, control):
                plan = last_bundle(kernel.ok(f"%remediate {row['id']}"))[RUNBOOK_MIME]["plan"]
                approved = last_bundle(kernel.ok(f"%approve {plan['id']} --yes"))[RUNBOOK_MIME]
                assert approved["state"] == "succeeded", approved
                if not plan["rollback"] and all(a["action"] == "run_automation" for a in plan["actions"]):
                    # AWS-owned runbooks have no inverse, so there is nothing to roll back.
                    seen_families.add(family)
                    continue
                rolled = last_bundle(kernel.ok(f"%rollback {plan['id']} --yes"))[RUNBOOK_MIME]
                assert rolled["state"] == "succeeded", rolled
                kinds |= audit_inverses(kernel, plan["id"])
                seen_families.add(family)
    assert seen_families == set(FAMILIES)
    assert "delete_guard_duty_detector" in kinds, kinds  # the sandbox has a region without a detector
    unknown = sorted(kinds - set(INVERSE_WRITES))
    assert not unknown, f"rollback ran actions this test does not know: {unknown}; add them to INVERSE_WRITES"
    assert not missing(load(REMEDIATION), {INVERSE_WRITES[k] for k in kinds})


def test_every_action_the_library_code_names_is_granted():
    """A second net under the kernel-driven tests: every `service:Action` literal in
    the library: the catalog's steps (inverse-only ones included), the service files
    and the rest of the AWS code."""
    lib = ROOT / "runbook-lib" / "src"
    files = sorted(lib.rglob("*.rs"))
    literal = re.compile(r'"((?:ec2|guardduty|iam|s3|kms|securityhub|sts|bedrock|organizations|ssm|config):[A-Z][A-Za-z]+)"')
    named = {m.group(1) for f in files if f.is_file() for m in literal.finditer(f.read_text(encoding="utf-8"))}
    assert {"ec2:RevokeSecurityGroupIngress", "iam:UpdateAccountPasswordPolicy"} <= named, "scan found nothing"
    assert not missing(load(REMEDIATION), named - SECURITY_ACCOUNT_ONLY)
    assert not missing(load(SECURITY_ACCOUNT), named & SECURITY_ACCOUNT_ONLY)
