"""Every runbook in notebooks/ runs top to bottom on the AWS path, headless
through nbclient, and ends with no error output.

The kernel runs with RUNBOOK_BACKEND=aws and its real AWS SDK for Rust pointed
at 127.0.0.1 only: moto for EC2, IAM, GuardDuty, KMS, S3 Control and STS, the
project's Security Hub server for findings, and the project's Bedrock server for
the model.  Each run gets a fresh account from `aws_seed.seed_account`: SSH open
to the world (EC2.19), no GuardDuty detector (GuardDuty.1) and a short password
policy (IAM.15), each with its failing finding in Security Hub.

What a notebook needs beyond that, and what its run must have done, is in
AWS_RUNS below, one entry per notebook: whether Claude answers (scripted, one
reply per Converse/ConverseStream call, in order) or the built-in catalog, extra
seeding or settings, and checks against the outputs and the servers' state.  A
notebook without an entry runs with the catalog and the checks every run gets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from aws_seed import SeededAccount, aws_kernel_env, ingress_rules, moto_client, seed_account
from conftest import audit_records, find_kernelspec, kernel_env
from servers import bedrock as br
from servers.config_service import ConfigServer
from servers.moto import MotoServer
from servers.ssm_automation import SsmAutomationServer
from servers import securityhub_v2 as v2_api
from servers.securityhub import SecurityHubServer, make_finding
from notebook_runs import (
    NOTEBOOKS,
    cells_of,
    check_approvals,
    check_clean_run,
    copy_notebooks,
    outputs_text,
    results,
    run_notebook,
)

pytestmark = pytest.mark.usefixtures("no_ambient_aws")

ASK_TOOLS = ["get_findings_by_severity", "get_finding_details", "propose_remediation"]


@dataclass
class World:
    """One AWS run: the servers, what was seeded, where the notebook ran."""

    moto: MotoServer
    hub: SecurityHubServer
    bedrock: br.BedrockServer
    account: SeededAccount
    workdir: Path
    audit_log: Path
    # Findings are read through the new Security Hub (OCSF), not CSPM.
    v2: bool = False

    def streams(self) -> list[br.RecordedRequest]:
        return self.bedrock.requests_for(br.CONVERSE_STREAM)

    def finding(self, control: str) -> dict:
        return self.hub.finding(self.account.finding_id(control))

    def listed_id(self, control: str) -> str:
        """The control's finding id as the kernel lists it: the ASFF Id, or on v2 its metadata.uid."""
        finding_id = self.account.finding_id(control)
        return v2_api.metadata_uid(self.hub.finding(finding_id)) if self.v2 else finding_id


@dataclass
class AwsRun:
    """How one notebook's AWS run is set up and checked.

    model   True: Claude on Bedrock (the Bedrock server) answers, from `script`;
            False: the built-in catalog (RUNBOOK_MODEL=catalog).
    script  World -> the model's replies, one per Converse/ConverseStream call in
            the order the notebook makes them (br.text, br.tool_use, callables).
    seed    World -> None: more moto resources or findings, before the run.
    env     extra kernel environment (RUNBOOK_* settings).
    check   (World, executed notebook) -> None: asserts what the run must have done.
    """

    model: bool = False
    script: Callable[[World], list] | None = None
    seed: Callable[[World], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    check: Callable[[World, Any], None] | None = None


# --- helpers for the checks ---------------------------------------------------------------


def last_result(cell: Any) -> dict:
    found = list(results(cell))
    assert found, f"{cell.source!r} showed no runbook result"
    return found[-1]


def listings(nb: Any) -> Iterator[dict]:
    """Every %findings result of the notebook, in order."""
    for cell in cells_of(nb, "findings"):
        for r in results(cell):
            if "shown" in r:
                yield r


def listing_after(nb: Any, magic: str) -> dict:
    """The first %findings result in a cell after the first `magic` cell."""
    cells = [c for c in nb.cells if c.cell_type == "code"]
    start = next(i for i, c in enumerate(cells) if c in cells_of(nb, magic))
    for cell in cells[start + 1:]:
        for r in results(cell):
            if "shown" in r:
                return r
    raise AssertionError(f"no %findings after %{magic}")


def the_plan(nb: Any) -> dict:
    (cell,) = cells_of(nb, "remediate")
    return last_result(cell)["plan"]


def tool_json(tool_result: dict) -> dict:
    return tool_result["content"][0]["json"]


def resolved_by(world: World, control: str, plan_id: str) -> dict:
    """The control's finding on the Security Hub server: RESOLVED, with a note naming the plan."""
    stored = world.finding(control)
    assert stored["Workflow"]["Status"] == "RESOLVED", stored["Workflow"]
    assert plan_id in stored["Note"]["Text"], stored["Note"]
    # A v2 Comment has no author of its own; the server names the API instead.
    assert stored["Note"]["UpdatedBy"] == ("securityhub-v2" if world.v2 else "runbook-kernel")
    return stored


def ssh_closed(world: World) -> None:
    """Only the world-open SSH rule was revoked; HTTPS from 10.0.0.0/8 is still there."""
    seeded = world.account.ssh["rules"]
    now = ingress_rules(world.moto, world.account.ssh["group"])
    assert now == {"tcp 443 10.0.0.0/8": seeded["tcp 443 10.0.0.0/8"]}, now


def check_ec2_19_run(world: World, nb: Any, lang: str) -> str:
    """01 and 05: Claude explained and planned EC2.19, the plan ran, the finding is gone."""
    summarize, remediate = world.streams()
    group = world.account.ssh["group"]
    # The finding went to the model as data; the explanation streamed back.
    assert summarize.tool_config is None
    assert summarize.last_user_text.startswith("<finding>") and group in summarize.last_user_text
    assert ("日本語" if lang == "ja" else "English") in summarize.system_text
    (cell,) = cells_of(nb, "summarize")
    explained = last_result(cell)
    assert explained["advisor"]["kind"] == "bedrock" and explained["lang"] == lang
    assert explained["markdown"] == summarize.reply.text
    # The plan is the model's, through the forced catalog tool, validated against the finding.
    assert remediate.tool_config["toolChoice"] == {"tool": {"name": "propose_remediation"}}
    assert ("日本語" if lang == "ja" else "English") in remediate.system_text
    plan = the_plan(nb)
    assert plan["source"]["kind"] == "model" and plan["lang"] == lang
    assert [a["action"] for a in plan["actions"]] == ["revoke_ingress"]
    assert plan["account"] == world.account.account
    # Applied in moto, resolved in Security Hub, gone from the last listing.
    ssh_closed(world)
    resolved_by(world, "EC2.19", plan["id"])
    assert listing_after(nb, "approve")["total"] == 0
    return plan["id"]


# --- per notebook -------------------------------------------------------------------------------


def check_00(world: World, nb: Any) -> None:
    (version,) = cells_of(nb, "version")
    assert last_result(version)["backend"] == "aws"
    (config,) = cells_of(nb, "config")
    settings = {s["key"]: s for s in last_result(config)["settings"]}
    assert settings["backend"]["value"] == "aws" and settings["backend"]["source"] == "env"
    assert settings["region"]["value"] == world.moto.region


def script_01(world: World) -> list:
    return [
        br.text(
            "### What was found\nSecurity group ci-runner lets anyone reach SSH (port 22).\n\n"
            "### Next steps\n1. Revoke the rule open to 0.0.0.0/0.",
            chunks=4,
        ),
        br.tool_use("propose_remediation", {
            "actions": [{"action": "revoke_ingress", "group_id": world.account.ssh["group"],
                         "rule_ids": [world.account.ssh["rules"]["tcp 22 0.0.0.0/0"]]}],
            "rationale": "SSH must not be open to the internet; HTTPS from 10.0.0.0/8 stays.",
        }),
    ]  # fmt: skip


def check_01(world: World, nb: Any) -> None:
    plan_id = check_ec2_19_run(world, nb, "en")
    note = world.finding("EC2.19")["Note"]["Text"]
    assert note.startswith(f"Remediated by {plan_id}"), note


def script_02(world: World) -> list:
    return [
        # "show me some critical findings": the model looks, then answers.
        br.tool_use("get_findings_by_severity", {"severity": "CRITICAL", "limit": 5}, tool_use_id="sev1",
                    text_before="Let me look up the open critical findings."),
        br.text("There are **2** open critical findings: SSH open to the world on *ci-runner* (EC2.19), "
                "and no hardware MFA on the root user (IAM.6)."),
        # The follow-up: the model reads one in full, then answers.
        br.tool_use("get_finding_details", {"finding": world.listed_id("EC2.19")}, tool_use_id="det1"),
        br.text("Fix **EC2.19** first: port 22 is reachable from anywhere, so it is attacked today."),
    ]  # fmt: skip


def check_02(world: World, nb: Any) -> None:
    asked, looked, follow_up, detailed = world.streams()
    # The question went to the model with the workshop's tools, which it chose freely.
    assert asked.last_user_text == "show me some critical findings"
    assert asked.tool_names == ASK_TOOLS and "toolChoice" not in asked.tool_config
    # get_findings_by_severity read the Security Hub server: both critical findings, nothing else.
    (result,) = looked.tool_results
    assert result["toolUseId"] == "sev1" and result["status"] == "success"
    found = tool_json(result)
    assert found["count"] == 2 and {f["severity"] for f in found["findings"]} == {"CRITICAL"}
    assert world.listed_id("EC2.19") in {f["id"] for f in found["findings"]}
    if world.v2:
        assert any(r.body["Filters"]["CompositeFilters"] for r in world.hub.requests_for("GetFindingsV2"))
    else:
        assert any(r.body["Filters"].get("SeverityLabel") for r in world.hub.requests_for("GetFindings"))
    first, follow, _new = cells_of(nb, "ask")
    tools = [r for r in results(first) if "tool" in r]
    assert [(t["tool"], t["status"]) for t in tools] == [("get_findings_by_severity", "ok")]
    answer = last_result(first)
    assert answer["ending"] == "answered" and answer["markdown"] == script_02(world)[1].text
    # The follow-up carried the conversation over and read the finding in full.
    assert [m["role"] for m in follow_up.messages] == ["user", "assistant", "user", "assistant", "user"]
    detail = tool_json(detailed.tool_results[0])
    assert world.account.ssh["group"] in str(detail)
    assert last_result(follow)["markdown"].startswith("Fix **EC2.19** first")
    # The equivalent magic lists the same two findings.
    assert list(listings(nb))[0]["total"] == 2


def script_03(world: World) -> list:
    return [
        br.text("### What was found\nGuardDuty is off in us-east-1.\n\n### Next steps\n1. Create a detector."),
        br.tool_use("propose_remediation", {
            "actions": [{"action": "enable_guard_duty"}],
            "rationale": "No detector watches us-east-1; create one, enabled.",
        }),
    ]  # fmt: skip


def check_03(world: World, nb: Any) -> None:
    summarize, remediate = world.streams()
    assert "GuardDuty.1" in summarize.last_user_text
    assert remediate.tool_config["toolChoice"] == {"tool": {"name": "propose_remediation"}}
    plan = the_plan(nb)
    assert plan["source"]["kind"] == "model" and plan["control_id"] == "GuardDuty.1"
    assert [a["action"] for a in plan["actions"]] == ["enable_guard_duty"]
    # The detector now exists in moto, enabled; the finding is resolved and gone.
    guardduty = moto_client(world.moto, "guardduty")
    (detector,) = guardduty.list_detectors()["DetectorIds"]
    assert guardduty.get_detector(DetectorId=detector)["Status"] == "ENABLED"
    resolved_by(world, "GuardDuty.1", plan["id"])
    assert [r["total"] for r in listings(nb)] == [1, 0]
    # The audit trail names the caller from STS and every step, and %audit shows it.
    events = [e for e in audit_records(world.audit_log) if e.get("plan_id") == plan["id"]]
    kinds = [e["event"] for e in events]
    for kind in ("plan_proposed", "approved", "action_started", "action_finished", "finding_updated", "run_finished"):
        assert kind in kinds, kinds
    assert all(world.account.account in e["actor"] for e in events if e["event"] == "approved")
    (audit,) = cells_of(nb, "audit")
    assert plan["id"] in outputs_text(audit)


def script_05(world: World) -> list:
    return [
        br.text("### 検出内容\nセキュリティグループ ci-runner の SSH (ポート 22) がインターネットに公開されています。\n\n"
                "### 次のステップ\n1. 0.0.0.0/0 に開いたルールを削除します。", chunks=4),
        br.tool_use("propose_remediation", {
            "actions": [{"action": "revoke_ingress", "group_id": world.account.ssh["group"],
                         "rule_ids": [world.account.ssh["rules"]["tcp 22 0.0.0.0/0"]]}],
            "rationale": "SSH をインターネットに公開してはいけません。10.0.0.0/8 からの HTTPS は残します。",
        }),
    ]  # fmt: skip


def check_05(world: World, nb: Any) -> None:
    (config,) = cells_of(nb, "config")
    assert "lang" in last_result(config)["changed"]
    plan_id = check_ec2_19_run(world, nb, "ja")
    (remediate,) = cells_of(nb, "remediate")
    shown = outputs_text(remediate)
    assert "根拠" in shown and "SSH をインターネットに公開してはいけません" in shown
    # The action itself is described in Japanese too (the kernel's text, not the model's).
    assert re.search(r"1\. RevokeIngress — .*インバウンドルール.*を削除します", shown), shown
    # The note on the finding is Japanese, in Security Hub and as the notebook shows it.
    note = world.finding("EC2.19")["Note"]["Text"]
    assert note.startswith(f"{plan_id} により修復しました"), note
    shown_note = [r["note"] for c in cells_of(nb, "findings") for r in results(c) if "note" in r]
    assert shown_note and shown_note[-1]["text"] == note


# The member account 06-organisation.ipynb acts in; moto's AssumeRole switches to it.
MEMBER = "333333333333"


def member_client(world: World, service: str) -> Any:
    import boto3

    creds = moto_client(world.moto, "sts").assume_role(
        RoleArn=f"arn:aws:iam::{MEMBER}:role/SecurityRunbookMember", RoleSessionName="seed"
    )["Credentials"]
    return boto3.client(
        service, endpoint_url=world.moto.url, region_name=world.moto.region,
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )  # fmt: skip


def seed_06(world: World) -> None:
    """A key without rotation in the member account, and its KMS.4 finding."""
    key = member_client(world, "kms").create_key(Description="data lake key")["KeyMetadata"]
    world.hub.add_findings([
        make_finding(
            60, account=MEMBER, region=world.moto.region, control_id="KMS.4", severity="MEDIUM",
            Resources=[{"Type": "AwsKmsKey", "Id": key["Arn"], "Partition": "aws", "Region": world.moto.region}],
        )
    ])  # fmt: skip


def check_06(world: World, nb: Any) -> None:
    keys = member_client(world, "kms")
    (key,) = [k["KeyId"] for k in keys.list_keys()["Keys"]]
    assert keys.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"], "rotated in the member account"
    (approve,) = cells_of(nb, "approve")
    plan_id = last_result(approve)["plan_id"]
    steps = [r for r in audit_records(world.audit_log) if r.get("plan_id") == plan_id and r.get("action")]
    assert steps and all(r["member_session"]["account"] == MEMBER for r in steps), steps
    assert listings(nb).__next__()["shown"][0]["account"] == MEMBER


# The accounts 07-fleet.ipynb plans in (the first) and rolls out to (both).
FLEET = ["222222222222", "333333333333"]


def as_member(world: World, account: str, service: str) -> Any:
    import boto3

    creds = moto_client(world.moto, "sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/SecurityRunbookMember", RoleSessionName="seed"
    )["Credentials"]
    return boto3.client(
        service, endpoint_url=world.moto.url, region_name=world.moto.region,
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )  # fmt: skip


def seed_07(world: World) -> None:
    """EBS encryption by default off (moto's default) in two members, with their EC2.7 findings."""
    world.hub.add_findings([
        make_finding(70 + i, account=account, region=world.moto.region, control_id="EC2.7", severity="MEDIUM")
        for i, account in enumerate(FLEET)
    ])  # fmt: skip


def check_07(world: World, nb: Any) -> None:
    (rollout,) = cells_of(nb, "rollout")
    rows = last_result(rollout)["rollout"]["rows"]
    assert {(r["account"], r["status"]) for r in rows} == {(a, "Success") for a in FLEET}, rows
    for account in FLEET:
        assert as_member(world, account, "ec2").get_ebs_encryption_by_default()["EbsEncryptionByDefault"], account
    (export,) = cells_of(nb, "export")
    assert "schemaVersion: '0.3'" in last_result(export)["document"]
    resolved = [f for f in world.hub.findings if f.get("AwsAccountId") in FLEET and f["Workflow"]["Status"] == "RESOLVED"]
    assert len(resolved) == len(FLEET), [f["Workflow"] for f in world.hub.findings if f.get("AwsAccountId") in FLEET]


AWS_RUNS: dict[str, AwsRun] = {
    "00-start-here.ipynb": AwsRun(check=check_00),
    "01-summarize-and-remediate.ipynb": AwsRun(model=True, script=script_01, check=check_01),
    "02-tool-use.ipynb": AwsRun(model=True, script=script_02, check=check_02),
    "03-human-in-the-loop.ipynb": AwsRun(model=True, script=script_03, check=check_03),
    # 04-knowledge-base: runs with the catalog and the common checks until it has an entry.
    "05-japanese.ipynb": AwsRun(model=True, script=script_05, check=check_05),
    "06-organisation.ipynb": AwsRun(seed=seed_06, check=check_06),
    "07-fleet.ipynb": AwsRun(seed=seed_07, check=check_07),
}


def test_every_entry_names_a_notebook():
    names = {p.name for p in NOTEBOOKS}
    assert set(AWS_RUNS) <= names, set(AWS_RUNS) - names


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.mark.timeout(180)
@pytest.mark.parametrize("findings_api", ["cspm", "v2"])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_the_aws_path(path, findings_api, tmp_path, moto):
    """Each notebook runs against Security Hub CSPM (ASFF) and the new Security Hub
    (OCSF, GetFindingsV2); the test server shows the same findings through both."""
    find_kernelspec()
    spec = AWS_RUNS.get(path.name, AwsRun())
    moto.reset()
    v2 = findings_api == "v2"
    with (
        SecurityHubServer(rate=None, v2_enabled=v2) as hub,
        br.BedrockServer(chunk_delay=0.002) as bedrock,
        SsmAutomationServer(moto.url) as ssm,
        ConfigServer(moto.url) as config,
    ):
        workdir = copy_notebooks(tmp_path)
        world = World(moto, hub, bedrock, seed_account(moto, hub), workdir, tmp_path / "audit.jsonl", v2=v2)
        if spec.seed:
            spec.seed(world)
        if spec.script:
            bedrock.enqueue(*spec.script(world))
        # Without a model the Bedrock server still takes the endpoints: an unscripted
        # call fails loudly there instead of going anywhere else.
        env = kernel_env(
            tmp_path,
            **{
                **aws_kernel_env(moto, hub, bedrock),
                "AWS_ENDPOINT_URL_SSM": ssm.url,
                "AWS_ENDPOINT_URL_CONFIG_SERVICE": config.url,
                **spec.env,
            },
        )
        # auto: v2 because DescribeSecurityHubV2 answers, CSPM because it does not.
        env["RUNBOOK_FINDINGS_API"] = "auto"
        if not spec.model:
            env["RUNBOOK_MODEL"] = "catalog"
        nb = run_notebook(path, workdir, env)

        check_clean_run(nb)
        for listing in listings(nb):
            assert listing["backend"]["kind"] == "aws", listing["backend"]
        # Every scripted answer was asked for, and every model call was answered.
        assert bedrock.pending == 0, f"{bedrock.pending} scripted model answer(s) were never asked for"
        assert all(r.status == 200 for r in bedrock.requests), [(r.operation, r.status, r.error_type) for r in bedrock.requests]
        if not spec.model:
            assert not bedrock.requests_for(), "the catalog run called the model"
        # What %approve applied is resolved on the Security Hub server, with the plan named.
        for plan_id in check_approvals(nb):
            notes = [f.get("Note", {}).get("Text", "") for f in hub.findings if f["Workflow"]["Status"] == "RESOLVED"]
            assert any(plan_id in n for n in notes), (plan_id, notes)
            assert {"approved", "run_finished"} <= {e["event"] for e in audit_records(world.audit_log) if e.get("plan_id") == plan_id}
        read_v2 = hub.requests_for("GetFindingsV2")
        read_cspm = hub.requests_for("GetFindings")
        if listings_seen := list(listings(nb)):
            assert (bool(read_v2), bool(read_cspm)) == (v2, not v2), (len(read_v2), len(read_cspm))
            assert all(("GetFindingsV2" in (l["backend"]["findings_api"] or "")) == v2 for l in listings_seen)
        if v2:
            assert not hub.requests_for("BatchUpdateFindings"), "v2 findings are updated through BatchUpdateFindingsV2"
            for request in hub.requests_for("BatchUpdateFindingsV2"):
                assert request.body["StatusId"] in (2, 4) and len(request.body.get("Comment", "")) <= 512, request.body
        if spec.check:
            spec.check(world, nb)
