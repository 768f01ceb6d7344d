"""Plans that run AWS-owned SSM Automation documents (the catalog's table), end to end.

The kernel runs on the AWS path through the real AWS SDK for Rust: Security Hub is
the project's server, SSM is the project's Automation server (which really runs the
documents' steps against moto through boto3, as the member role), AWS Config is the
project's stand-in (configuration items and rule evaluations read from moto's live
state), everything else is moto. So a document that did not really change moto, or
a rule that does not really pass, fails the test.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

boto3 = pytest.importorskip("boto3")

from aws_seed import aws_kernel_env, moto_client  # noqa: E402
from conftest import RUNBOOK_MIME, audit_path, audit_records, final_displays, last_bundle  # noqa: E402
from servers.config_service import ConfigServer  # noqa: E402
from servers.moto import MotoServer  # noqa: E402
from servers.securityhub import SecurityHubServer, make_finding  # noqa: E402
from servers.ssm_automation import SsmAutomationServer  # noqa: E402

pytestmark = [pytest.mark.usefixtures("no_ambient_aws"), pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parent.parent
MEMBER_ROLE = "SecurityRunbookMember"  # settings::DEFAULT_MEMBER_ROLE


class World:
    def __init__(self, moto: MotoServer, hub: SecurityHubServer, ssm: SsmAutomationServer, config: ConfigServer):
        self.moto, self.hub, self.ssm, self.config = moto, hub, ssm, config
        self.account = moto_client(moto, "sts").get_caller_identity()["Account"]
        self.region = moto.region

    def env(self, **extra: str) -> dict[str, str]:
        return aws_kernel_env(
            self.moto,
            self.hub,
            AWS_ENDPOINT_URL_SSM=self.ssm.url,
            AWS_ENDPOINT_URL_CONFIG_SERVICE=self.config.url,
            **extra,
        )

    def instance(self) -> str:
        """A running instance that still allows IMDSv1 (what EC2.8 flags)."""
        ec2 = moto_client(self.moto, "ec2")
        image = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amzn2-ami-*"]}])
        reservation = ec2.run_instances(ImageId=image["Images"][0]["ImageId"], MinCount=1, MaxCount=1)
        instance = reservation["Instances"][0]["InstanceId"]
        ec2.modify_instance_metadata_options(InstanceId=instance, HttpTokens="optional")
        return instance

    def http_tokens(self, instance: str) -> str:
        ec2 = moto_client(self.moto, "ec2")
        described = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
        return described["MetadataOptions"]["HttpTokens"]

    def ec2_8_finding(self, i: int, instance: str) -> dict:
        arn = f"arn:aws:ec2:{self.region}:{self.account}:instance/{instance}"
        finding = make_finding(
            i, account=self.account, region=self.region, control_id="EC2.8", severity="HIGH",
            Title="EC2 instances should use Instance Metadata Service Version 2 (IMDSv2)",
            Resources=[{"Type": "AwsEc2Instance", "Id": arn, "Partition": "aws", "Region": self.region,
                        "Details": {"AwsEc2Instance": {"MetadataOptions": {"HttpTokens": "optional"}}}}],
        )  # fmt: skip
        self.hub.add_findings([finding])
        return finding

    def bucket(self, name: str) -> str:
        moto_client(self.moto, "s3").create_bucket(Bucket=name)
        return name

    def s3_5_finding(self, i: int, bucket: str) -> dict:
        finding = make_finding(
            i, account=self.account, region=self.region, control_id="S3.5", severity="MEDIUM",
            Title="S3 general purpose buckets should require requests to use SSL",
            Resources=[{"Type": "AwsS3Bucket", "Id": f"arn:aws:s3:::{bucket}", "Partition": "aws",
                        "Region": self.region}],
        )  # fmt: skip
        self.hub.add_findings([finding])
        return finding

    def rule(self, name: str, identifier: str) -> None:
        self.config.put_rule(self.account, self.region, name, identifier)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with MotoServer() as moto, SecurityHubServer(rate=None) as hub:
        with SsmAutomationServer(moto.url) as ssm, ConfigServer(moto.url, evaluation_delay=0.3) as config:
            w = World(moto, hub, ssm, config)
            w.rule("securityhub-ec2-imdsv2-check-a1b2c3", "EC2_IMDSV2_CHECK")
            yield w


def rows_of(res: Any) -> list[dict]:
    for data in final_displays(res):
        rows = (data.get(RUNBOOK_MIME) or {}).get("shown")
        if rows is not None:
            return rows
    raise AssertionError(res.describe())


def number_of(kernel: Any, finding: dict, control: str) -> int:
    rows = rows_of(kernel.ok(f"%findings --all --control {control}"))
    return next(r["number"] for r in rows if r["id"] == finding["Id"])


def plan_for(kernel: Any, finding: dict, control: str) -> dict:
    res = kernel.ok(f"%remediate {number_of(kernel, finding, control)}")
    return last_bundle(res)[RUNBOOK_MIME]["plan"]


def failure(res: Any, ename: str) -> str:
    """The cell's one error, which must be `ename`; returns its message."""
    (error,) = res.errors
    assert error["content"]["ename"] == ename, res.describe()
    return error["content"]["evalue"]


def started(ssm: SsmAutomationServer) -> list[dict]:
    return [r.body for r in ssm.requests if r.operation == "StartAutomationExecution"]


def test_an_ec2_8_plan_runs_the_aws_runbook_as_the_member_role_and_config_verifies_it(kernel_factory, world):
    instance = world.instance()
    finding = world.ec2_8_finding(80, instance)
    kernel = kernel_factory(**world.env())
    plan = plan_for(kernel, finding, "EC2.8")

    # The plan is the table's row: AWS's document, parameters from the finding, no inverse.
    (action,) = plan["actions"]
    assert action["action"] == "run_automation"
    assert action["document"] == "AWSConfigRemediation-EnforceEC2InstanceIMDSv2"
    # Automation runs as the member role (AWSConfigRemediation documents require a role).
    role = f"arn:aws:iam::{world.account}:role/{MEMBER_ROLE}"
    assert action["parameters"] == {"InstanceId": instance, "AutomationAssumeRole": role}
    assert action["resource"] == {"resource_type": "AWS::EC2::Instance", "resource_id": instance}
    assert action["baseline"], "the plan records Config's state id"
    assert plan["rollback"] == []
    assert "ssm:StartAutomationExecution" in plan["permissions"]
    assert "ec2:ModifyInstanceMetadataOptions" in plan["permissions"]

    before = len(started(world.ssm))
    res = kernel.ok(f"%approve {plan['id']} --yes")
    data = last_bundle(res)[RUNBOOK_MIME]
    assert data["state"] == "succeeded", last_bundle(res)["text/plain"]

    # AWS's runbook really ran in moto, once, with exactly the plan's parameters.
    assert world.http_tokens(instance) == "required"
    (body,) = started(world.ssm)[before:]
    assert body["DocumentName"] == "AWSConfigRemediation-EnforceEC2InstanceIMDSv2"
    assert body["Parameters"] == {"InstanceId": [instance], "AutomationAssumeRole": [role]}
    # Config evaluated the control's rule again, and the finding is resolved.
    evaluations = [r.body for r in world.config.requests if r.operation == "StartConfigRulesEvaluation"]
    assert {"ConfigRuleNames": ["securityhub-ec2-imdsv2-check-a1b2c3"]} in evaluations
    assert world.hub.finding(finding["Id"])["Workflow"]["Status"] == "RESOLVED"

    # The audit keeps Config's item from before the change and the execution id.
    records = [r for r in audit_records(audit_path(kernel)) if r["plan_id"] == plan["id"]]
    started_record = next(r for r in records if r["event"] == "action_started")
    assert started_record["before"]["configuration"]["configuration"]["metadataOptions"]["httpTokens"] == "optional"
    finished = next(r for r in records if r["event"] == "action_finished")
    assert finished["applied"]["automation_execution"]
    assert finished["after"]["configuration"]["configuration"]["metadataOptions"]["httpTokens"] == "required"

    # Nothing to roll back, and the kernel says why.
    res = kernel.execute(f"%rollback {plan['id']} --yes")
    (error,) = res.errors
    assert "nothing to roll back" in error["content"]["evalue"], error
    assert "no automatic inverse" in error["content"]["evalue"], error


def ecr_1_finding(world: World, i: int, repository: str) -> dict:
    arn = f"arn:aws:ecr:{world.region}:{world.account}:repository/{repository}"
    finding = make_finding(
        i, account=world.account, region=world.region, control_id="ECR.1", severity="HIGH",
        Title="ECR private repositories should have image scanning configured",
        Resources=[{"Type": "AwsEcrRepository", "Id": arn, "Partition": "aws", "Region": world.region,
                    "Details": {"AwsEcrRepository": {"RepositoryName": repository,
                                                     "ImageScanningConfiguration": {"ScanOnPush": False}}}}],
    )  # fmt: skip
    world.hub.add_findings([finding])
    return finding


def scan_on_push(world: World, repository: str) -> bool:
    ecr = moto_client(world.moto, "ecr")
    return ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]["imageScanningConfiguration"]["scanOnPush"]


def test_the_kernels_own_runbook_is_created_in_the_account_on_first_use_then_reused(kernel_factory, world):
    """ECR.1 has no AWS-owned document: the kernel creates its own (named by its
    content's hash) through the member role, runs it, and Config verifies it."""
    world.rule("securityhub-ecr-private-image-scanning-enabled-e1c2r3", "ECR_PRIVATE_IMAGE_SCANNING_ENABLED")
    ecr, ssm = moto_client(world.moto, "ecr"), moto_client(world.moto, "ssm")
    repositories = ["team-a/api", "team-b/worker"]
    for name in repositories:
        ecr.create_repository(repositoryName=name, imageScanningConfiguration={"scanOnPush": False})
    findings = [ecr_1_finding(world, 90 + i, name) for i, name in enumerate(repositories)]
    kernel = kernel_factory(**world.env())

    plan = plan_for(kernel, findings[0], "ECR.1")
    (action,) = plan["actions"]
    document = action["document"]
    assert document.startswith("Runbook-EnableECRImageScanning-"), document
    assert action["parameters"]["RepositoryName"] == "team-a/api", "the name from the details, not the ARN's tail"
    assert action["resource"] == {"resource_type": "AWS::ECR::Repository", "resource_id": "team-a/api"}
    assert {"ssm:CreateDocument", "ecr:PutImageScanningConfiguration"} <= set(plan["permissions"])
    assert "runbook-kernel's own" in plan["rationale"]
    with pytest.raises(Exception, match="InvalidDocument|does not exist"):
        ssm.describe_document(Name=document)

    res = kernel.ok(f"%approve {plan['id']} --yes")
    assert last_bundle(res)[RUNBOOK_MIME]["state"] == "succeeded", last_bundle(res)["text/plain"]
    shipped = (ROOT / "runbook-lib/src/catalog/documents/Runbook-EnableECRImageScanning.yaml").read_text()
    created = ssm.get_document(Name=document, DocumentFormat="YAML")["Content"]
    assert created.strip() == shipped.strip()
    assert scan_on_push(world, "team-a/api") and not scan_on_push(world, "team-b/worker")
    assert world.hub.finding(findings[0]["Id"])["Workflow"]["Status"] == "RESOLVED"

    # The second repository reuses the document already there.
    plan = plan_for(kernel, findings[1], "ECR.1")
    assert plan["actions"][0]["document"] == document
    res = kernel.ok(f"%approve {plan['id']} --yes")
    assert last_bundle(res)[RUNBOOK_MIME]["state"] == "succeeded", last_bundle(res)["text/plain"]
    assert scan_on_push(world, "team-b/worker")
    assert ssm.describe_document(Name=document)["Document"]["LatestVersion"] == "1"


def test_a_document_of_the_same_name_with_other_content_is_refused_not_run(kernel_factory, world):
    world.rule("securityhub-ecr-private-image-scanning-enabled-e1c2r3", "ECR_PRIVATE_IMAGE_SCANNING_ENABLED")
    ecr, ssm = moto_client(world.moto, "ecr"), moto_client(world.moto, "ssm")
    ecr.create_repository(repositoryName="team-c/batch", imageScanningConfiguration={"scanOnPush": False})
    finding = ecr_1_finding(world, 95, "team-c/batch")
    kernel = kernel_factory(**world.env())
    plan = plan_for(kernel, finding, "ECR.1")
    document = plan["actions"][0]["document"]
    try:
        ssm.delete_document(Name=document)  # left by the test before, if it ran first
    except Exception:
        pass
    # Someone in the account put other steps under the kernel's document name.
    impostor = ("schemaVersion: '0.3'\nassumeRole: '{{ AutomationAssumeRole }}'\nparameters:\n"
                "  AutomationAssumeRole: {type: String}\n  RepositoryName: {type: String}\n"
                "mainSteps:\n  - name: Nothing\n    action: aws:sleep\n    inputs: {Duration: PT0S}\n")
    ssm.create_document(Name=document, Content=impostor, DocumentType="Automation", DocumentFormat="YAML")
    before = len(started(world.ssm))
    res = kernel.execute(f"%approve {plan['id']} --yes")
    message = failure(res, "ExecutionFailed")
    assert "a different Automation document named" in message and document in message, message
    assert len(started(world.ssm)) == before, "nothing was started"
    assert not scan_on_push(world, "team-c/batch")
    assert world.hub.finding(finding["Id"])["Workflow"]["Status"] == "NEW"
    ssm.delete_document(Name=document)


def test_a_change_after_the_plan_stops_the_run_before_automation_starts(kernel_factory, world):
    instance = world.instance()
    finding = world.ec2_8_finding(81, instance)
    kernel = kernel_factory(**world.env())
    plan = plan_for(kernel, finding, "EC2.8")
    # Someone changes the instance between plan and approval: Config's state id moves.
    moto_client(world.moto, "ec2").modify_instance_metadata_options(
        InstanceId=instance, HttpTokens="optional", HttpPutResponseHopLimit=3
    )
    before = len(started(world.ssm))
    res = kernel.execute(f"%approve {plan['id']} --yes")
    assert failure(res, "StateDrifted")
    assert last_bundle(res)[RUNBOOK_MIME]["state"] == "drifted"
    assert "configurationStateId" in failure(res, "StateDrifted")
    assert len(started(world.ssm)) == before
    assert world.http_tokens(instance) == "optional"


def test_without_the_controls_config_rule_verification_is_manual_and_the_finding_stays_open(kernel_factory, world):
    bucket = world.bucket("runbook-no-rule-bucket")
    finding = world.s3_5_finding(82, bucket)
    kernel = kernel_factory(**world.env())
    plan = plan_for(kernel, finding, "S3.5")
    (action,) = plan["actions"]
    assert action["document"] == "AWSConfigRemediation-RestrictBucketSSLRequestsOnly"
    res = kernel.execute(f"%approve {plan['id']} --yes")
    assert "verification is manual" in failure(res, "ExecutionFailed")
    assert last_bundle(res)[RUNBOOK_MIME]["state"] == "failed"
    # The runbook did run: the bucket now refuses plain HTTP ...
    policy = json.loads(moto_client(world.moto, "s3").get_bucket_policy(Bucket=bucket)["Policy"])
    assert any(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false" for s in policy["Statement"])
    # ... but nothing verified it, so the finding is not resolved.
    assert world.hub.finding(finding["Id"])["Workflow"]["Status"] == "NEW"


def test_a_runbook_that_fails_leaves_the_finding_open_with_aws_s_reason(kernel_factory, world):
    world.rule("securityhub-s3-bucket-ssl-requests-only-d4e5f6", "S3_BUCKET_SSL_REQUESTS_ONLY")
    bucket = world.bucket("runbook-failing-bucket")
    finding = world.s3_5_finding(83, bucket)
    kernel = kernel_factory(**world.env())
    plan = plan_for(kernel, finding, "S3.5")
    world.ssm.fail_next("StartAutomationExecution", 400, "AutomationDefinitionNotFoundException", "Document is throttled for the test")
    res = kernel.execute(f"%approve {plan['id']} --yes")
    assert "AutomationDefinitionNotFoundException" in failure(res, "ExecutionFailed")
    assert world.hub.finding(finding["Id"])["Workflow"]["Status"] == "NEW"
    # Approved again, it runs and the rule passes.
    res = kernel.ok(f"%approve {plan['id']} --yes")
    assert last_bundle(res)[RUNBOOK_MIME]["state"] == "succeeded", last_bundle(res)["text/plain"]
    assert world.hub.finding(finding["Id"])["Workflow"]["Status"] == "RESOLVED"


def test_an_interrupt_stops_the_automation_execution(kernel_factory, world):
    instance = world.instance()
    finding = world.ec2_8_finding(84, instance)
    kernel = kernel_factory(**world.env())
    plan = plan_for(kernel, finding, "EC2.8")
    world.ssm.step_delay = 3.0
    try:
        code = f"%approve {plan['id']} --yes"
        msg_id = kernel.start_execute(code)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not started(world.ssm)[-1:]:
            time.sleep(0.1)
        while time.monotonic() < deadline and not any(
            "started execution" in json.dumps(m["content"]) for m in kernel.iopub_for(msg_id)
        ):
            kernel._pump_iopub(0.2)
        kernel.km.interrupt_kernel()
        res = kernel.finish_execute(code, msg_id, timeout=60)
    finally:
        world.ssm.step_delay = 0.0
    text = res.text()
    assert "interrupted" in text and "StopAutomationExecution" in text, text
    stops = [r.body for r in world.ssm.requests if r.operation == "StopAutomationExecution"]
    assert stops, "the kernel never stopped the execution"
    world.ssm.wait_finished(stops[-1]["AutomationExecutionId"], 30)
    assert world.ssm.executions[stops[-1]["AutomationExecutionId"]].status == "Cancelled"
    assert world.http_tokens(instance) == "optional"
    assert world.hub.finding(finding["Id"])["Workflow"]["Status"] == "NEW"


def test_an_exported_plan_runs_as_an_automation_runbook_and_does_what_the_plan_does(kernel_factory, world, tmp_path):
    """%export --format ssm: the approved plan as a schema 0.3 document, created in
    SSM and run by the Automation server against moto, changes what the plan would."""
    kms = moto_client(world.moto, "kms")
    key = kms.create_key(Description="orders")["KeyMetadata"]["KeyId"]
    finding = make_finding(
        85, account=world.account, region=world.region, control_id="KMS.4", severity="MEDIUM",
        Resources=[{"Type": "AwsKmsKey", "Id": f"arn:aws:kms:{world.region}:{world.account}:key/{key}",
                    "Partition": "aws", "Region": world.region}],
    )  # fmt: skip
    world.hub.add_findings([finding])
    kernel = kernel_factory(**world.env())
    plan = plan_for(kernel, finding, "KMS.4")
    path = tmp_path / "kms4.yaml"
    data = last_bundle(kernel.ok(f"%export {plan['id']} --format ssm --output {path}"))[RUNBOOK_MIME]
    document = path.read_text()
    assert data["document"] == document and data["written_to"] == str(path)
    assert plan["id"] in document and "aws:assertAwsResourceProperty" in document

    ssm = boto3.client("ssm", **{**world.moto.client_kwargs(), "endpoint_url": world.ssm.url})
    name = f"Runbook-{plan['id']}"
    ssm.create_document(Content=document, Name=name, DocumentType="Automation", DocumentFormat="YAML")
    run = ssm.start_automation_execution(DocumentName=name)["AutomationExecutionId"]
    world.ssm.wait_finished(run, 60)
    execution = ssm.get_automation_execution(AutomationExecutionId=run)["AutomationExecution"]
    assert execution["AutomationExecutionStatus"] == "Success", execution
    steps = [s["StepName"] for s in execution["StepExecutions"] if s["StepStatus"] == "Success"]
    assert steps == ["Apply1_EnableKmsKeyRotation", "Verify1_EnableKmsKeyRotation"], execution["StepExecutions"]
    assert kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"] is True


def test_export_refuses_what_it_cannot_write(kernel_factory, world):
    kernel = kernel_factory(**world.env())
    res = kernel.execute("%export plan-00000000 --format ssm")
    assert "no plans in this session" in failure(res, "UsageError")
    res = kernel.execute("%export plan-00000000 --format yaml")
    assert "ssm" in failure(res, "UsageError")


def as_account(world: World, account: str, service: str, region: str) -> Any:
    """boto3 acting in `account` (moto's AssumeRole switches account)."""
    creds = moto_client(world.moto, "sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{MEMBER_ROLE}", RoleSessionName="check"
    )["Credentials"]
    return boto3.client(
        service, endpoint_url=world.moto.url, region_name=region,
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )  # fmt: skip


def ec2_7_finding(world: World, i: int, account: str, region: str) -> dict:
    finding = make_finding(i, account=account, region=region, control_id="EC2.7", severity="MEDIUM")
    world.hub.add_findings([finding])
    return finding


ROLLOUT_ACCOUNTS = ["210987654321", "321098765432"]
ROLLOUT_REGIONS = ["us-east-1", "eu-west-1"]


def test_a_rollout_runs_the_plan_in_every_account_and_region_through_target_locations(kernel_factory, world):
    own = ec2_7_finding(world, 86, world.account, world.region)
    targets = [(a, r) for a in ROLLOUT_ACCOUNTS for r in ROLLOUT_REGIONS]
    fleet = {t: ec2_7_finding(world, 500 + 10 * i, *t) for i, t in enumerate(targets)}
    kernel = kernel_factory(**world.env())
    plan = plan_for(kernel, own, "EC2.7")
    assert [a["action"] for a in plan["actions"]] == ["enable_ebs_encryption_by_default"]

    before = len(started(world.ssm))
    res = kernel.ok(
        f"%rollout {plan['id']} --accounts {','.join(ROLLOUT_ACCOUNTS)} --regions {','.join(ROLLOUT_REGIONS)} "
        "--max-concurrency 2 --max-errors 0 --yes"
    )
    data = last_bundle(res)[RUNBOOK_MIME]
    rows = {(r["account"], r["region"]): r["status"] for r in data["rollout"]["rows"]}
    assert rows == {t: "Success" for t in targets}, data
    # One StartAutomationExecution, with AWS's own fleet parameters.
    (body,) = started(world.ssm)[before:]
    assert body["DocumentName"] == f"Runbook-{plan['id']}-rollout"
    (location,) = body["TargetLocations"]
    assert location["Accounts"] == ROLLOUT_ACCOUNTS and location["Regions"] == ROLLOUT_REGIONS
    assert location["TargetLocationMaxConcurrency"] == "2" and location["TargetLocationMaxErrors"] == "0"
    assert location["ExecutionRoleName"] == MEMBER_ROLE
    assert body["Parameters"]["AutomationAssumeRole"] == [f"arn:aws:iam::{{{{global:ACCOUNT_ID}}}}:role/{MEMBER_ROLE}"]
    # The change really happened in each target, and not in the plan's own account.
    for account, region in targets:
        assert as_account(world, account, "ec2", region).get_ebs_encryption_by_default()["EbsEncryptionByDefault"]
    assert not moto_client(world.moto, "ec2").get_ebs_encryption_by_default()["EbsEncryptionByDefault"]
    # Findings resolved where the target succeeded; the plan's own stays open.
    for t, finding in fleet.items():
        assert world.hub.finding(finding["Id"])["Workflow"]["Status"] == "RESOLVED", t
    assert world.hub.finding(own["Id"])["Workflow"]["Status"] == "NEW"
    # One audit record per target, in that target's account and region.
    records = [r for r in audit_records(audit_path(kernel)) if r["plan_id"] == plan["id"]]
    per_target = {(r["account"], r["region"]) for r in records if r.get("outcome") == "rollout_success"}
    assert per_target == set(targets)


def test_a_rollout_refuses_plans_of_one_resource_and_bad_targets(kernel_factory, world):
    instance = world.instance()
    finding = world.ec2_8_finding(95, instance)
    kernel = kernel_factory(**world.env())
    plan = plan_for(kernel, finding, "EC2.8")
    res = kernel.execute(f"%rollout {plan['id']} --accounts {ROLLOUT_ACCOUNTS[0]} --regions us-east-1 --yes")
    assert "cannot be rolled out" in failure(res, "UsageError")
    own = ec2_7_finding(world, 96, world.account, "us-west-2")
    plan = plan_for(kernel, own, "EC2.7")
    for args, words in [
        ("--accounts 12345 --regions us-east-1", "neither a 12-digit"),
        (f"--accounts {ROLLOUT_ACCOUNTS[0]} --regions mars-1", "not a region"),
        (f"--accounts {ROLLOUT_ACCOUNTS[0]} --regions us-east-1 --max-concurrency 0", "out of range"),
        (f"--accounts {ROLLOUT_ACCOUNTS[0]} --regions us-east-1 --max-errors lots", "not a number"),
    ]:
        res = kernel.execute(f"%rollout {plan['id']} {args} --yes")
        assert words in failure(res, "UsageError"), args


def test_the_sandbox_rolls_a_plan_out_across_its_organisation(kernel):
    """In the sandbox the same magic runs the rollout document in each sandbox
    account and region; the account without the member role fails its row."""
    rows = rows_of(kernel.ok("%findings --all --control EC2.7"))
    first = next(r for r in rows if r["account"] == "222222222222")
    plan = last_bundle(kernel.ok(f"%remediate {first['number']}"))[RUNBOOK_MIME]["plan"]
    open_before = {(r["account"], r["region"]) for r in rows if r["workflow"] == "NEW"}
    res = kernel.execute(
        f"%rollout {plan['id']} --accounts 222222222222,333333333333,444444444444 "
        "--regions us-east-1,ap-northeast-1 --max-errors 2 --yes"
    )
    message = failure(res, "ExecutionFailed")
    assert "3 of 6 target(s) did not succeed" in message, message
    rollout = last_bundle(res)[RUNBOOK_MIME]["rollout"]
    outcome = {(r["account"], r["region"]): (r["status"], r.get("failure") or "") for r in rollout["rows"]}
    assert outcome[("222222222222", "us-east-1")][0] == outcome[("222222222222", "ap-northeast-1")][0] == "Success"
    assert outcome[("333333333333", "us-east-1")][0] == "Success"
    # The data account has not enabled ap-northeast-1; the legacy one has no member role.
    assert "not enabled" in outcome[("333333333333", "ap-northeast-1")][1], outcome
    assert all("SecurityRunbookMember" in outcome[("444444444444", r)][1] for r in ("us-east-1", "ap-northeast-1")), outcome
    after = {(r["account"], r["region"]): r["workflow"] for r in rows_of(kernel.ok("%findings --all --control EC2.7"))}
    for target in open_before:
        if target[0] in ("222222222222", "333333333333"):
            assert after.get(target, "RESOLVED") == "RESOLVED", target


def test_a_rollout_past_security_hubs_twenty_filter_values_resolves_every_target(kernel_factory, world):
    """GetFindings takes at most 20 values per filter field: 21 accounts are asked in batches."""
    own = ec2_7_finding(world, 97, world.account, "eu-west-1")
    accounts = [f"4321000000{i:02d}" for i in range(21)]
    # make_finding: i % 10 == 9 is PASSED and i % 20 == 13 ARCHIVED; these are open and FAILED.
    fleet = [ec2_7_finding(world, 200 + 10 * i, a, "us-east-1") for i, a in enumerate(accounts)]
    kernel = kernel_factory(**world.env())
    plan = plan_for(kernel, own, "EC2.7")
    res = kernel.ok(f"%rollout {plan['id']} --accounts {','.join(accounts)} --regions us-east-1 --max-concurrency 21 --yes")
    assert last_bundle(res)[RUNBOOK_MIME]["rollout"]["status"] == "Success"
    statuses = [world.hub.finding(f["Id"])["Workflow"]["Status"] for f in fleet]
    assert statuses == ["RESOLVED"] * len(fleet), (statuses, last_bundle(res)["text/plain"][-300:])
