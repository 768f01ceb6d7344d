"""The project's own Automation documents (runbook-lib/src/catalog/documents/), run by
the SSM Automation server against moto.

These are the documents the catalog deploys for controls AWS ships no runbook for.
Each test creates the shipped file as a document, runs it as AWS would (as its
AutomationAssumeRole, through boto3 onto moto) and checks moto's state afterwards,
so a document whose steps do not do what its description says fails here.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config

try:  # tests/ is on sys.path when pytest imports this file (no tests/__init__.py)
    from servers.moto import DUMMY_CREDENTIALS, MOTO_ACCOUNT, MotoServer
    from servers.ssm_automation import SsmAutomationServer
except ImportError:  # run from the repository root as a package
    from tests.servers.moto import DUMMY_CREDENTIALS, MOTO_ACCOUNT, MotoServer  # type: ignore[no-redef]
    from tests.servers.ssm_automation import SsmAutomationServer  # type: ignore[no-redef]

DOCUMENTS = Path(__file__).resolve().parent.parent / "runbook-lib" / "src" / "catalog" / "documents"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{MOTO_ACCOUNT}:role/AutomationRole"
pytestmark = pytest.mark.xdist_group("runbook-documents")
ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=20)


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(moto):
    with SsmAutomationServer(moto.url) as s:
        yield s


@pytest.fixture(scope="module")
def aws(moto, server):
    def client(service: str) -> Any:
        return boto3.session.Session().client(
            service, endpoint_url=server.url if service == "ssm" else moto.url, region_name=REGION,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"], config=ONE_ATTEMPT,
        )  # fmt: skip

    return client


def deploy(aws: Any, name: str) -> str:
    """The shipped document, created under a fresh name (as the kernel does, by content)."""
    deployed = f"{name}-{uuid.uuid4().hex[:8]}"
    content = (DOCUMENTS / f"{name}.yaml").read_text()
    aws("ssm").create_document(Name=deployed, Content=content, DocumentType="Automation", DocumentFormat="YAML")
    return deployed


def run(server: SsmAutomationServer, aws: Any, name: str, **parameters: Any) -> dict:
    ssm = aws("ssm")
    document = deploy(aws, name)
    given = {k: [str(v)] for k, v in {"AutomationAssumeRole": ROLE, **parameters}.items()}
    execution_id = ssm.start_automation_execution(DocumentName=document, Parameters=given)["AutomationExecutionId"]
    server.wait_finished(execution_id, timeout=30)
    return ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]


def succeeded(execution: dict) -> dict:
    steps = [(s["StepName"], s["StepStatus"], s.get("FailureMessage")) for s in execution["StepExecutions"]]
    assert execution["AutomationExecutionStatus"] == "Success", steps
    return {s["StepName"]: s.get("Outputs", {}) for s in execution["StepExecutions"]}


def test_every_shipped_document_is_schema_0_3_and_runs_as_its_assume_role():
    names = sorted(p.stem for p in DOCUMENTS.glob("*.yaml"))
    assert len(names) == 8, names
    for name in names:
        doc = yaml.safe_load((DOCUMENTS / f"{name}.yaml").read_text())
        assert name.startswith("Runbook-"), name
        assert doc["schemaVersion"] == "0.3" and doc["assumeRole"] == "{{ AutomationAssumeRole }}", name
        assert "AutomationAssumeRole" in doc["parameters"], name
        assert doc["mainSteps"][-1].get("isEnd") is True, name


def test_ec2_6_vpc_flow_logs_to_the_log_bucket(server, aws):
    ec2, s3 = aws("ec2"), aws("s3")
    vpc = ec2.create_vpc(CidrBlock="10.61.0.0/16")["Vpc"]["VpcId"]
    bucket = f"flow-logs-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    assert not ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc]}])["FlowLogs"]
    succeeded(run(server, aws, "Runbook-EnableVPCFlowLogs", VpcId=vpc, LogDestinationArn=f"arn:aws:s3:::{bucket}"))
    (flow_log,) = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc]}])["FlowLogs"]
    assert flow_log["TrafficType"] == "REJECT" and flow_log["LogDestinationType"] == "s3"
    assert flow_log["LogDestination"] == f"arn:aws:s3:::{bucket}"


def test_ec2_6_refuses_a_destination_that_is_not_a_bucket_before_anything_runs(server, aws):
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.62.0.0/16")["Vpc"]["VpcId"]
    with pytest.raises(Exception, match="LogDestinationArn"):
        run(server, aws, "Runbook-EnableVPCFlowLogs", VpcId=vpc, LogDestinationArn="https://evil.example/x")
    assert not ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc]}])["FlowLogs"]


def test_cloudtrail_5_sends_the_trail_to_a_log_group_it_creates(server, aws):
    s3, trail_client, logs, iam = aws("s3"), aws("cloudtrail"), aws("logs"), aws("iam")
    bucket = f"trail-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    trail = trail_client.create_trail(Name=f"org-{uuid.uuid4().hex[:6]}", S3BucketName=bucket)["TrailARN"]
    group = f"cloudtrail/{uuid.uuid4().hex[:6]}"
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "cloudtrail.amazonaws.com"}}]}
    role = iam.create_role(RoleName=f"ct-logs-{uuid.uuid4().hex[:6]}", AssumeRolePolicyDocument=json.dumps(trust))
    outputs = succeeded(run(server, aws, "Runbook-EnableCloudTrailCloudWatchLogs", TrailName=trail,
                            LogGroupName=group, RoleName=role["Role"]["RoleName"]))  # fmt: skip
    assert outputs["EnsureLogGroup"]["Created"] == ["true"]
    assert [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]] == [group]
    described = trail_client.get_trail(Name=trail)["Trail"]
    assert described["CloudWatchLogsLogGroupArn"] == f"arn:aws:logs:{REGION}:{MOTO_ACCOUNT}:log-group:{group}:*"
    assert described["CloudWatchLogsRoleArn"] == role["Role"]["Arn"]
    # Again, with the log group there: it is kept.
    outputs = succeeded(run(server, aws, "Runbook-EnableCloudTrailCloudWatchLogs", TrailName=trail,
                            LogGroupName=group, RoleName=role["Role"]["RoleName"]))  # fmt: skip
    assert outputs["EnsureLogGroup"]["Created"] == ["false"]


def test_config_1_records_everything_with_the_service_linked_role(server, aws):
    config, s3 = aws("config"), aws("s3")
    bucket = f"config-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    assert not config.describe_configuration_recorder_status()["ConfigurationRecordersStatus"]
    outputs = succeeded(run(server, aws, "Runbook-EnableConfigRecording", DeliveryBucketName=bucket))
    (recorder,) = config.describe_configuration_recorders()["ConfigurationRecorders"]
    assert recorder["roleARN"].endswith(":role/aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig")
    assert recorder["recordingGroup"]["allSupported"] and recorder["recordingGroup"]["includeGlobalResourceTypes"]
    (channel,) = config.describe_delivery_channels()["DeliveryChannels"]
    assert channel["s3BucketName"] == bucket
    assert config.describe_configuration_recorder_status()["ConfigurationRecordersStatus"][0]["recording"] is True
    assert outputs["EnsureServiceLinkedRole"]["Created"] == ["true"]
    # Run again: the role is kept, the recorder stays on.
    outputs = succeeded(run(server, aws, "Runbook-EnableConfigRecording", DeliveryBucketName=bucket))
    assert outputs["EnsureServiceLinkedRole"]["Created"] == ["false"]


def test_sqs_1_turns_on_sse_sqs(server, aws):
    sqs = aws("sqs")
    url = sqs.create_queue(QueueName=f"orders-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    name = url.rsplit("/", 1)[1]
    succeeded(run(server, aws, "Runbook-EncryptSQSQueue", QueueName=name))
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["SqsManagedSseEnabled"] == "true"


def lambda_function(aws: Any) -> str:
    iam, lam = aws("iam"), aws("lambda")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "lambda.amazonaws.com"}}]}
    role = iam.create_role(RoleName=f"fn-{uuid.uuid4().hex[:6]}", AssumeRolePolicyDocument=json.dumps(trust))
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("index.py", "def handler(event, context):\n    return 1\n")
    name = f"fn-{uuid.uuid4().hex[:8]}"
    lam.create_function(FunctionName=name, Runtime="python3.11", Role=role["Role"]["Arn"], Handler="index.handler",
                        Code={"ZipFile": code.getvalue()})  # fmt: skip
    return name


def test_lambda_1_removes_only_the_public_statements(server, aws):
    lam = aws("lambda")
    name = lambda_function(aws)
    lam.add_permission(FunctionName=name, StatementId="public", Action="lambda:InvokeFunction", Principal="*")
    lam.add_permission(FunctionName=name, StatementId="from-bucket", Action="lambda:InvokeFunction",
                       Principal="s3.amazonaws.com", SourceAccount=MOTO_ACCOUNT)  # fmt: skip
    lam.add_permission(FunctionName=name, StatementId="partner", Action="lambda:InvokeFunction",
                       Principal="111122223333")  # fmt: skip
    outputs = succeeded(run(server, aws, "Runbook-RemoveLambdaPublicAccess", FunctionName=name))
    assert outputs["RemovePublicStatements"]["RemovedStatements"] == ["public"]
    left = {s["Sid"] for s in json.loads(lam.get_policy(FunctionName=name)["Policy"])["Statement"]}
    assert left == {"from-bucket", "partner"}


def test_iam_3_deactivates_only_keys_older_than_the_limit(server, aws):
    iam = aws("iam")
    user = f"deploy-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    # moto dates a new key now: a limit of 30 days keeps it, 0 days deactivates it.
    outputs = succeeded(run(server, aws, "Runbook-DeactivateUnrotatedAccessKeys", UserName=user, MaxKeyAgeDays=30))
    assert outputs["DeactivateOldKeys"]["DeactivatedKeys"] == []
    assert iam.list_access_keys(UserName=user)["AccessKeyMetadata"][0]["Status"] == "Active"
    outputs = succeeded(run(server, aws, "Runbook-DeactivateUnrotatedAccessKeys", UserName=user, MaxKeyAgeDays=0))
    assert outputs["DeactivateOldKeys"]["DeactivatedKeys"] == [key]
    (metadata,) = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert metadata["Status"] == "Inactive", "deactivated, not deleted"
    assert metadata["CreateDate"] <= datetime.now(timezone.utc) + timedelta(seconds=5)


def test_ssm_4_stops_public_sharing_and_keeps_named_accounts(server, aws):
    ssm = aws("ssm")
    shared = f"Shared-{uuid.uuid4().hex[:8]}"
    ssm.create_document(Name=shared, DocumentType="Command", Content=json.dumps({
        "schemaVersion": "2.2", "description": "x",
        "mainSteps": [{"action": "aws:runShellScript", "name": "run", "inputs": {"runCommand": ["true"]}}]}))
    ssm.modify_document_permission(Name=shared, PermissionType="Share", AccountIdsToAdd=["All"])
    ssm.modify_document_permission(Name=shared, PermissionType="Share", AccountIdsToAdd=["111122223333"])
    succeeded(run(server, aws, "Runbook-BlockSSMDocumentPublicSharing", DocumentName=shared))
    accounts = ssm.describe_document_permission(Name=shared, PermissionType="Share")["AccountIds"]
    assert accounts == ["111122223333"]


def test_ecr_1_turns_on_scan_on_push(server, aws):
    ecr = aws("ecr")
    name = f"app/{uuid.uuid4().hex[:8]}"
    ecr.create_repository(repositoryName=name, imageScanningConfiguration={"scanOnPush": False})
    succeeded(run(server, aws, "Runbook-EnableECRImageScanning", RepositoryName=name))
    (repo,) = ecr.describe_repositories(repositoryNames=[name])["repositories"]
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
