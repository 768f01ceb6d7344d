"""The organisation: the security account reads every member's findings and acts
in the member's own account, through the member role, assumed with a session
policy that allows only the plan's actions.

On the AWS path the kernel's real AWS SDK for Rust talks to moto, whose STS
AssumeRole into another account returns credentials that act in that account,
and to moto's Organizations. STS goes through a recording proxy, so the tests
can read each AssumeRole request (role, session name, source identity, policy)
and make STS or EC2 answer as AWS does when something is wrong: no role or no
trust (AccessDenied), an SCP (explicit deny), a region the account has not
enabled (RegionDisabledException). The sandbox is an organisation too, with a
member without the role and a suspended account.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest

boto3 = pytest.importorskip("boto3")

from aws_seed import aws_kernel_env, ec2_19_finding, moto_client  # noqa: E402
from conftest import (  # noqa: E402
    RUNBOOK_MIME,
    assert_fails_with,
    audit_path,
    audit_records,
    final_displays,
    last_bundle,
)
from servers.moto import MotoServer  # noqa: E402
from servers.recording_proxy import RecordingProxy, ec2_error, sts_error  # noqa: E402
from servers.securityhub import SecurityHubServer  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_ambient_aws")

ROLE = "SecurityRunbookMember"
FAR_REGION = "eu-south-1"


def role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/{ROLE}"


def member_client(moto: MotoServer, account: str, service: str, region: str | None = None) -> Any:
    """boto3 acting in `account`: moto's AssumeRole switches account."""
    creds = moto_client(moto, "sts").assume_role(RoleArn=role_arn(account), RoleSessionName="seed")["Credentials"]
    return boto3.client(
        service,
        endpoint_url=moto.url,
        region_name=region or moto.region,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def open_ssh_group(ec2: Any) -> dict[str, str]:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="ci-runner", Description="ci hosts", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    return {"vpc": vpc, "group": group}


def ssh_open(ec2: Any, group: str) -> bool:
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])
    return any(
        r.get("FromPort") == 22 and r.get("CidrIpv4") == "0.0.0.0/0" and not r["IsEgress"]
        for r in rules["SecurityGroupRules"]
    )


@dataclass
class Org:
    moto: MotoServer
    hub: SecurityHubServer
    sts: RecordingProxy
    ec2: RecordingProxy
    security: str
    accounts: dict[str, str]  # name -> id
    groups: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> ids
    findings: dict[str, dict] = field(default_factory=dict)  # name -> ASFF

    def env(self, **extra: str) -> dict[str, str]:
        return aws_kernel_env(
            self.moto,
            self.hub,
            AWS_ENDPOINT_URL_STS=self.sts.url,
            AWS_ENDPOINT_URL_EC2=self.ec2.url,
            **extra,
        )


@pytest.fixture(scope="module")
def org() -> Iterator[Org]:
    """moto as an organisation: the caller (moto's account) is the management and
    security account; `workload` and `data` have the role and SSH open to the world;
    `legacy` has no role (STS refuses, as AWS would); `closed` is suspended."""
    with (
        MotoServer() as moto,
        SecurityHubServer(rate=None) as hub,
        RecordingProxy(moto.url) as sts,
        RecordingProxy(moto.url) as ec2,
    ):
        orgs = moto_client(moto, "organizations")
        orgs.create_organization(FeatureSet="ALL")
        security = moto_client(moto, "sts").get_caller_identity()["Account"]
        accounts = {
            name: orgs.create_account(Email=f"{name}@example.com", AccountName=name)["CreateAccountStatus"]["AccountId"]
            for name in ("workload", "data", "legacy", "closed")
        }  # fmt: skip
        orgs.close_account(AccountId=accounts["closed"])
        world = Org(moto, hub, sts, ec2, security, accounts)
        for i, name in enumerate(("workload", "data", "legacy", "closed")):
            account = accounts[name]
            if name in ("workload", "data"):
                ids = open_ssh_group(member_client(moto, account, "ec2"))
            else:
                ids = {"vpc": "vpc-0000000000000000" + str(i), "group": f"sg-0000000000000000{i}"}
            world.groups[name] = ids
            world.findings[name] = ec2_19_finding(40 + i, account, moto.region, ids["group"], ids["vpc"])
        # The caller's own group of the same name, which no member plan may touch.
        world.groups["security"] = open_ssh_group(moto_client(moto, "ec2"))
        far = ec2_19_finding(50, accounts["data"], FAR_REGION, "sg-0f00000000000000f", "vpc-0f00000000000000f")
        world.findings["far"] = far
        hub.add_findings(list(world.findings.values()))
        legacy = role_arn(accounts["legacy"]).encode()
        sts.answer(
            lambda r: sts_error(
                "AccessDenied",
                f"User: arn:aws:sts::{security}:user/moto is not authorized to perform: "
                f"sts:AssumeRole on resource: {role_arn(accounts['legacy'])}",
            )
            if legacy.replace(b":", b"%3A").replace(b"/", b"%2F") in r.body
            else sts_error(
                "RegionDisabledException",
                f"STS is not activated in this region for account:{accounts['data']}. "
                "Your account administrator can activate STS in this region using the IAM Console.",
            )
            if r.region == FAR_REGION
            else None
        )
        yield world


def rows_of(res: Any) -> list[dict]:
    for data in final_displays(res):
        rows = (data.get(RUNBOOK_MIME) or {}).get("shown")
        if rows is not None:
            return rows
    raise AssertionError(res.describe())


def number_of(kernel: Any, finding: dict) -> int:
    rows = rows_of(kernel.ok("%findings --all --control EC2.19"))
    return next(r["number"] for r in rows if r["id"] == finding["Id"])


def test_a_member_finding_is_fixed_in_its_own_account_under_a_session_policy_of_the_plans_actions(
    kernel_factory, org
):
    kernel = kernel_factory(**org.env())
    res = kernel.ok("%findings --all --control EC2.19")
    rows = rows_of(res)
    # The listing names the security account it reads from (STS knows it).
    backend = next(d[RUNBOOK_MIME]["backend"] for d in final_displays(res) if "shown" in (d.get(RUNBOOK_MIME) or {}))
    assert backend["account"] == org.security
    names = {r["account"]: r["account_name"] for r in rows}
    assert names[org.accounts["workload"]] == "workload"
    assert names[org.accounts["data"]] == "data"

    res = kernel.ok(f"%remediate {number_of(kernel, org.findings['workload'])}")
    plan = last_bundle(res)[RUNBOOK_MIME]["plan"]
    assert plan["account"] == org.accounts["workload"]
    assert f"{org.accounts['workload']} (workload)" in last_bundle(res)["text/plain"]
    res = kernel.ok(f"%approve {plan['id']} --yes")
    assert f"{org.accounts['workload']} (workload)" in last_bundle(res)["text/plain"]

    # The change happened in the workload account only.
    assert not ssh_open(member_client(org.moto, org.accounts["workload"], "ec2"), org.groups["workload"]["group"])
    assert ssh_open(member_client(org.moto, org.accounts["data"], "ec2"), org.groups["data"]["group"])
    assert ssh_open(moto_client(org.moto, "ec2"), org.groups["security"]["group"])
    # ... and the finding was resolved from the security account.
    assert org.hub.finding(org.findings["workload"]["Id"])["Workflow"]["Status"] == "RESOLVED"

    # The plan's session: the member role, named after the approver and the plan,
    # allowed exactly the plan's actions and the inverse rollback would run.
    (assumed,) = [f for f in org.sts.forms("AssumeRole") if f["RoleSessionName"].endswith("+" + plan["id"])]
    assert assumed["RoleArn"] == role_arn(org.accounts["workload"])
    assert assumed["RoleSessionName"] == f"moto+{plan['id']}"
    assert assumed["SourceIdentity"] == "moto"
    policy = json.loads(assumed["Policy"])
    allowed = {a for s in policy["Statement"] for a in s["Action"]}
    assert allowed == set(plan["permissions"]) | {"ec2:AuthorizeSecurityGroupIngress"}, policy
    group_arn = f"arn:aws:ec2:{org.moto.region}:{org.accounts['workload']}:security-group/{org.groups['workload']['group']}"
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        if "ec2:RevokeSecurityGroupIngress" in statement["Action"]:
            assert statement["Resource"] == [group_arn], policy
    # Reads outside a plan go through a read-only session.
    reads = [f for f in org.sts.forms("AssumeRole") if f["RoleSessionName"] == "moto+read"]
    assert reads and all("Revoke" not in f["Policy"] for f in reads)

    # The audit names the account, the role, the session and the approver.
    steps = [r for r in audit_records(audit_path(kernel)) if r["plan_id"] == plan["id"] and r.get("action")]
    assert steps, "no step records"
    for record in steps:
        session = record["member_session"]
        assert record["account"] == session["account"] == org.accounts["workload"]
        assert session["account_name"] == "workload"
        assert session["role_arn"] == role_arn(org.accounts["workload"])
        assert session["session_name"] == f"moto+{plan['id']}"
        assert len(session["policy_digest"]) == 64
        assert record["actor"].endswith(":user/moto")

    # The rollback runs in the member account too, under the same policy (it
    # allows the inverse), and puts the rule back there.
    res = kernel.ok(f"%rollback {plan['id']} --yes")
    assert last_bundle(res)[RUNBOOK_MIME]["state"] == "succeeded", last_bundle(res)
    assert ssh_open(member_client(org.moto, org.accounts["workload"], "ec2"), org.groups["workload"]["group"])
    sessions = [f for f in org.sts.forms("AssumeRole") if f["RoleSessionName"].endswith("+" + plan["id"])]
    assert len(sessions) == 2 and sessions[0]["Policy"] == sessions[1]["Policy"]


def test_accounts_shows_names_status_findings_and_where_the_runbook_can_act(kernel_factory, org):
    kernel = kernel_factory(**org.env())
    data = last_bundle(kernel.ok("%accounts"))[RUNBOOK_MIME]
    by_id = {a["id"]: a for a in data["accounts"]}
    assert by_id[org.security]["access"]["kind"] == "own"
    for name in ("workload", "data"):
        row = by_id[org.accounts[name]]
        assert row["name"] == name and row["status"] == "ACTIVE"
        assert row["access"] == {"kind": "role", "role_arn": role_arn(org.accounts[name])}
    assert by_id[org.accounts["data"]]["open_findings"].get("CRITICAL", 0) >= 1
    legacy = by_id[org.accounts["legacy"]]
    assert not legacy["can_act"] and "trust policy" in legacy["access"]["reason"]
    closed = by_id[org.accounts["closed"]]
    assert closed["status"] == "SUSPENDED" and not closed["can_act"]
    # The probe's credentials allow nothing.
    probes = [f for f in org.sts.forms("AssumeRole") if f["RoleSessionName"].endswith("+access-check")]
    assert probes and all('"Deny"' in f["Policy"] for f in probes)


def test_each_reason_a_member_cannot_be_acted_in_says_what_to_fix(kernel_factory, org):
    kernel = kernel_factory(**org.env())
    assert_fails_with(
        kernel,
        f"%remediate {number_of(kernel, org.findings['legacy'])}",
        "CannotAssumeRole",
        [role_arn(org.accounts["legacy"]), "does not exist", "trust policy", "member-role.yaml", "external_id"],
    )
    assert_fails_with(
        kernel,
        f"%remediate {number_of(kernel, org.findings['closed'])}",
        "AccountSuspended",
        [org.accounts["closed"], "SUSPENDED"],
    )
    assert_fails_with(
        kernel,
        f"%remediate {number_of(kernel, org.findings['far'])}",
        "RegionNotEnabled",
        [FAR_REGION, org.accounts["data"], "not enabled"],
    )


def test_an_explicit_deny_names_the_policy_and_the_action(kernel_factory, org):
    kernel = kernel_factory(**org.env())
    res = kernel.ok(f"%remediate {number_of(kernel, org.findings['data'])}")
    plan = last_bundle(res)[RUNBOOK_MIME]["plan"]
    scp = (
        "You are not authorized to perform this operation. User: "
        f"arn:aws:sts::{org.accounts['data']}:assumed-role/{ROLE}/moto+{plan['id']} is not authorized to perform: "
        f"ec2:RevokeSecurityGroupIngress on resource: {org.groups['data']['group']} "
        "with an explicit deny in a service control policy"
    )
    org.ec2.answer(
        lambda r: ec2_error("UnauthorizedOperation", scp) if r.form.get("Action") == "RevokeSecurityGroupIngress" else None
    )
    try:
        res = kernel.execute(f"%approve {plan['id']} --yes")
    finally:
        org.ec2.answer(lambda _r: None)
    assert res.status == "error", res.describe()
    text = res.content["evalue"] + "\n".join(res.content["traceback"]) + json.dumps(final_displays(res))
    for words in ("explicit deny", "service control policy", "ec2:RevokeSecurityGroupIngress"):
        assert words in text, text
    assert ssh_open(member_client(org.moto, org.accounts["data"], "ec2"), org.groups["data"]["group"])


# --- the sandbox organisation -------------------------------------------------------


def test_the_sandbox_is_an_organisation(kernel_factory):
    kernel = kernel_factory(RUNBOOK_BACKEND="sandbox")
    data = last_bundle(kernel.ok("%accounts"))[RUNBOOK_MIME]
    rows = {a["name"]: a for a in data["accounts"]}
    assert set(rows) == {"management", "security", "workload", "data-platform", "legacy-analytics", "closed-project"}
    assert rows["security"]["access"]["kind"] == "own"
    assert rows["workload"]["can_act"] and rows["data-platform"]["can_act"]
    assert not rows["legacy-analytics"]["can_act"]
    assert "does not exist" in rows["legacy-analytics"]["access"]["reason"]
    assert rows["closed-project"]["status"] == "SUSPENDED" and not rows["closed-project"]["can_act"]
    assert sum(rows["legacy-analytics"]["open_findings"].values()) >= 1

    listing = rows_of(kernel.ok("%findings --all"))
    assert {r["account_name"] for r in listing} >= {"security", "workload", "data-platform", "legacy-analytics"}

    # The members have only the default role: asking for another is refused there, naming it.
    kernel.ok("%config member_role=ops/OtherRunbook")
    rows = {a["name"]: a for a in last_bundle(kernel.ok("%accounts"))[RUNBOOK_MIME]["accounts"]}
    assert rows["security"]["can_act"] and not rows["workload"]["can_act"]
    assert "arn:aws:iam::222222222222:role/ops/OtherRunbook" in rows["workload"]["access"]["reason"]
    kernel.ok("%config member_role=")
    rows = {a["name"]: a for a in last_bundle(kernel.ok("%accounts"))[RUNBOOK_MIME]["accounts"]}
    assert rows["workload"]["can_act"]


def test_a_sandbox_member_plan_is_audited_with_its_session_and_a_roleless_member_is_refused(kernel_factory):
    kernel = kernel_factory(RUNBOOK_BACKEND="sandbox")
    rows = rows_of(kernel.ok("%findings --all --control KMS.4"))
    (data,) = [r for r in rows if r["account_name"] == "data-platform"]
    plan = last_bundle(kernel.ok(f"%remediate {data['number']}"))[RUNBOOK_MIME]["plan"]
    kernel.ok(f"%approve {plan['id']} --yes")
    steps = [r for r in audit_records(audit_path(kernel)) if r["plan_id"] == plan["id"] and r.get("action")]
    assert steps
    for record in steps:
        assert record["member_session"]["role_arn"] == f"arn:aws:iam::333333333333:role/{ROLE}"
        assert record["member_session"]["session_name"] == f"sandbox+{plan['id']}"
        assert "kms:EnableKeyRotation" in record["member_session"]["allowed_actions"]

    rows = rows_of(kernel.ok("%findings --all --control EC2.7"))
    (legacy,) = [r for r in rows if r["account_name"] == "legacy-analytics"]
    assert_fails_with(
        kernel,
        f"%remediate {legacy['number']}",
        "MemberRoleMissing",
        ["444444444444 (legacy-analytics)", ROLE, "member-role.yaml"],
    )


def test_findings_from_several_accounts_get_one_plan_each(kernel_factory):
    kernel = kernel_factory(RUNBOOK_BACKEND="sandbox")
    rows = rows_of(kernel.ok("%findings --all --control KMS.4"))
    numbers = ",".join(str(r["number"]) for r in rows)
    res = kernel.ok(f"%remediate {numbers}")
    plans = [
        d[RUNBOOK_MIME]["plan"] for d in final_displays(res) if "plan" in (d.get(RUNBOOK_MIME) or {})
    ]
    assert len(plans) == len(rows) >= 2
    assert {(p["account"], p["region"]) for p in plans} == {(r["account"], r["region"]) for r in rows}
    assert len({p["id"] for p in plans}) == len(plans)

    # A finding that cannot be planned is named; the others still get theirs.
    rows = rows_of(kernel.ok("%findings --all --control EC2.7"))
    legacy = next(r["number"] for r in rows if r["account_name"] == "legacy-analytics")
    other = next(r["number"] for r in rows if r["account_name"] == "data-platform")
    res = kernel.execute(f"%remediate {other} {legacy}")
    assert res.status == "error" and res.content["ename"] == "PlanRejected", res.describe()
    assert f"1 of 2 findings got no plan: {legacy}: MemberRoleMissing" in res.content["evalue"]
    assert any("plan" in (d.get(RUNBOOK_MIME) or {}) for d in final_displays(res))


def test_without_the_organisations_list_ids_stand_alone_with_the_reason(kernel_factory):
    with MotoServer() as moto, SecurityHubServer(rate=None) as hub:
        hub.add_findings([ec2_19_finding(70, "210987654321", moto.region, "sg-0123456789abcdef0", "vpc-01234567")])
        kernel = kernel_factory(**aws_kernel_env(moto, hub))
        data = None
        for d in final_displays(kernel.ok("%findings --all")):
            if "shown" in (d.get(RUNBOOK_MIME) or {}):
                data = d
        assert data is not None
        listing = data[RUNBOOK_MIME]
        assert "not in an AWS Organization" in listing["names_unavailable"]
        assert listing["shown"][0]["account_name"] is None
        assert "account names are not shown" in data["text/plain"]
