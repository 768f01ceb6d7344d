"""Tests of the local SSM Automation server (servers/ssm_automation.py), driven by boto3.

boto3's `ssm` client is generated from the same service model as the AWS SDK
for Rust, so what passes here is what the kernel will see.  Every run is
checked against moto's state: a runbook that reports Success must really have
changed the instance, subnet, group, bucket, key or account setting, and one
that fails must have failed for moto's own reason.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

try:  # tests/ is on sys.path when pytest imports this file (no tests/__init__.py)
    from servers.http import standalone
    from servers.moto import DUMMY_CREDENTIALS, MOTO_ACCOUNT, MotoServer
    from servers.ssm_automation import DEFAULT_EXECUTION_ROLE, FIXTURES, SsmAutomationServer
except ImportError:  # run from the repository root as a package
    from tests.servers.http import standalone  # type: ignore[no-redef]
    from tests.servers.moto import DUMMY_CREDENTIALS, MOTO_ACCOUNT, MotoServer  # type: ignore[no-redef]
    from tests.servers.ssm_automation import (  # type: ignore[no-redef]
        DEFAULT_EXECUTION_ROLE, FIXTURES, SsmAutomationServer,
    )

REGION = "us-east-1"
OTHER_ACCOUNT = "111111111111"
TARGET_ACCOUNTS = ["222222222222", "333333333333"]
TARGET_REGIONS = ["us-east-2", "us-west-2"]
ROLE = f"arn:aws:iam::{MOTO_ACCOUNT}:role/AutomationRole"
MISSING_INSTANCE = "i-0123456789abcdef0"
# One worker for the whole file under `pytest -n`: one moto and two servers, not one per worker.
pytestmark = pytest.mark.xdist_group("ssm-server")
SESSION = boto3.session.Session()  # clients from one session share the loaded service models
ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=20,
                     s3={"addressing_style": "path"})
DOCS = {
    "imds": "AWSConfigRemediation-EnforceEC2InstanceIMDSv2",
    "subnet": "AWSConfigRemediation-DisableSubnetAutoAssignPublicIP",
    "sg": "AWSConfigRemediation-RemoveVPCDefaultSecurityGroupRules",
    "ssl": "AWSConfigRemediation-RestrictBucketSSLRequestsOnly",
    "versioning": "AWS-ConfigureS3BucketVersioning",
    "encryption": "AWS-EnableS3BucketEncryption",
    "pab": "AWSConfigRemediation-ConfigureS3BucketPublicAccessBlock",
    "cancel": "AWSConfigRemediation-CancelKeyDeletion",
    "rotation": "AWSConfigRemediation-EnableKeyRotation",
    "ebs": "AWSConfigRemediation-EnableEbsEncryptionByDefault",
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(moto):
    with SsmAutomationServer(moto.url) as s:
        yield s


@pytest.fixture(scope="module")
def slow(moto):
    """A server whose steps each take 0.3 s, to watch and stop runs."""
    with SsmAutomationServer(moto.url, step_delay=0.3) as s:
        yield s


def _client(service: str, url: str, region: str = REGION, creds: dict | None = None) -> Any:
    creds = creds or {
        "AccessKeyId": DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "SecretAccessKey": DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "SessionToken": DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
    }
    return SESSION.client(
        service, endpoint_url=url, region_name=region, config=ONE_ATTEMPT,
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds.get("SessionToken"),
    )  # fmt: skip


@pytest.fixture(scope="module")
def ssm(server):
    return _client("ssm", server.url)


@pytest.fixture(scope="module")
def slow_ssm(slow):
    return _client("ssm", slow.url)


@pytest.fixture(scope="module")
def ec2(moto):
    return _client("ec2", moto.url)


@pytest.fixture(scope="module")
def s3(moto):
    return _client("s3", moto.url)


@pytest.fixture(scope="module")
def kms(moto):
    return _client("kms", moto.url)


# --------------------------------------------------------------------------- helpers


def assumed(moto: MotoServer, account: str, role: str = "Tester") -> dict:
    """Credentials of a role in `account` (moto acts in that account with them)."""
    sts = _client("sts", moto.url)
    return sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="test")["Credentials"]


def params(**kw: Any) -> dict[str, list[str]]:
    return {k: v if isinstance(v, list) else [str(v)] for k, v in kw.items()}


def start(ssm: Any, document: str, **kw: Any) -> str:
    return ssm.start_automation_execution(DocumentName=document, Parameters=params(**kw))["AutomationExecutionId"]


def run(server: SsmAutomationServer, ssm: Any, document: str, **kw: Any) -> dict:
    """Start a run and wait for it; returns it as GetAutomationExecution reports it."""
    execution_id = start(ssm, document, **kw)
    server.wait_finished(execution_id, timeout=20)
    return ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]


def steps(execution: dict) -> list[tuple[str, str]]:
    return [(s["StepName"], s["StepStatus"]) for s in execution["StepExecutions"]]


def new_instance(ec2: Any) -> str:
    return ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]


def http_tokens(ec2: Any, instance: str) -> str:
    return ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["MetadataOptions"]["HttpTokens"]


_cidr = iter(range(10, 250))


def new_vpc(ec2: Any) -> str:
    return ec2.create_vpc(CidrBlock=f"10.{next(_cidr)}.0.0/16")["Vpc"]["VpcId"]


def new_subnet(ec2: Any, public: bool = True) -> str:
    vpc = new_vpc(ec2)
    cidr = ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["CidrBlock"].replace("0.0/16", "1.0/24")
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
    ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": public})
    return subnet


def map_public_ip(ec2: Any, subnet: str) -> bool:
    return ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["MapPublicIpOnLaunch"]


def new_bucket(s3: Any) -> str:
    name = f"ssm-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def vpc_tags(ec2: Any, vpc: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0].get("Tags", [])}


def create_document(ssm: Any, content: dict | str) -> str:
    """A custom Automation document, created through the SSM server (which forwards it to moto)."""
    name = f"Test-{uuid.uuid4().hex[:10]}"
    text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
    ssm.create_document(Name=name, Content=text, DocumentType="Automation", DocumentFormat="YAML")
    return name


def error(excinfo: pytest.ExceptionInfo) -> tuple[str, str]:
    e = excinfo.value
    assert isinstance(e, ClientError)
    return e.response["Error"]["Code"], e.response["Error"]["Message"]


def wait_until(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


# --------------------------------------------------------------------------- fixtures on disk


def test_every_fixture_names_its_source_and_is_a_runnable_schema_0_3_document():
    files = sorted(FIXTURES.glob("*.yaml"))
    assert {f.stem for f in files} == set(DOCS.values())
    for f in files:
        lines = f.read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith(
            "# Source: https://docs.aws.amazon.com/systems-manager-automation-runbooks/latest/userguide/"), f.name
        assert lines[1] == "# Steps written from the public reference for tests; not the AWS document itself.", f.name
        doc = yaml.safe_load("\n".join(lines))
        assert doc["schemaVersion"] == "0.3"
        assert doc["assumeRole"] == "{{ AutomationAssumeRole }}"
        assert "AutomationAssumeRole" in doc["parameters"]
        for step in doc["mainSteps"]:
            assert step["action"] in {"aws:executeAwsApi", "aws:assertAwsResourceProperty", "aws:executeScript",
                                      "aws:branch"}


# --------------------------------------------------------------------------- AWS-owned runbooks on moto


def test_enforce_imdsv2_makes_the_instance_require_tokens(server, ssm, ec2):
    instance = new_instance(ec2)
    assert http_tokens(ec2, instance) == "optional"

    before = time.time()
    run_ = run(server, ssm, DOCS["imds"], InstanceId=instance, AutomationAssumeRole=ROLE)

    assert http_tokens(ec2, instance) == "required"
    assert run_["AutomationExecutionStatus"] == "Success"
    assert run_["DocumentName"] == DOCS["imds"] and run_["DocumentVersion"] == "1"
    assert run_["Mode"] == "Auto"
    assert run_["Parameters"] == {"InstanceId": [instance], "AutomationAssumeRole": [ROLE]}
    assert run_["ExecutedBy"].startswith(f"arn:aws:sts::{MOTO_ACCOUNT}:")
    assert "FailureMessage" not in run_ and "CurrentStepName" not in run_
    # botocore parsed the epoch-second timestamps into datetimes
    assert before - 1 <= run_["ExecutionStartTime"].timestamp() <= run_["ExecutionEndTime"].timestamp() <= time.time() + 1
    assert steps(run_) == [("ModifyInstanceMetadataOptions", "Success"), ("VerifyIMDSv2Required", "Success")]
    modify, verify = run_["StepExecutions"]
    assert modify["Action"] == "aws:executeAwsApi" and verify["Action"] == "aws:assertAwsResourceProperty"
    assert modify["Inputs"]["InstanceId"] == json.dumps(instance)  # each input as JSON text
    assert json.loads(modify["Inputs"]["HttpTokens"]) == "required"
    assert modify["OnFailure"] == "Abort" and modify["IsEnd"] is False and verify["IsEnd"] is True
    output = json.loads(run_["Outputs"]["ModifyInstanceMetadataOptions.Output"][0])
    assert output["InstanceId"] == instance and output["InstanceMetadataOptions"]["HttpTokens"] == "required"
    assert modify["Outputs"]["Output"] == run_["Outputs"]["ModifyInstanceMetadataOptions.Output"]


def test_disable_subnet_auto_assign_public_ip(server, ssm, ec2):
    subnet = new_subnet(ec2, public=True)
    run_ = run(server, ssm, DOCS["subnet"], SubnetId=subnet, AutomationAssumeRole=ROLE)
    assert run_["AutomationExecutionStatus"] == "Success", run_.get("FailureMessage")
    assert map_public_ip(ec2, subnet) is False


def test_remove_default_security_group_rules_only_from_a_default_group(server, ssm, ec2):
    vpc = new_vpc(ec2)
    group = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                  {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]
    gid = group["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": gid}]},
    ])  # fmt: skip
    other = ec2.create_security_group(GroupName=f"web-{uuid.uuid4().hex[:6]}", Description="x", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=other, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])

    run_ = run(server, ssm, DOCS["sg"], GroupId=gid, AutomationAssumeRole=ROLE)
    assert run_["AutomationExecutionStatus"] == "Success", run_.get("FailureMessage")
    after = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]
    assert after["IpPermissions"] == [] and after["IpPermissionsEgress"] == []
    script = run_["StepExecutions"][1]
    assert script["Outputs"]["IngressRulesRemoved"] == ["2"] and script["Outputs"]["EgressRulesRemoved"] == ["1"]
    assert json.loads(script["Outputs"]["OutputPayload"][0]) == {"Payload": {"IngressRulesRemoved": 2,
                                                                             "EgressRulesRemoved": 1}}

    refused = run(server, ssm, DOCS["sg"], GroupId=other, AutomationAssumeRole=ROLE)
    assert refused["AutomationExecutionStatus"] == "Failed"
    assert steps(refused) == [("CheckDefaultSecurityGroup", "Failed"), ("RemoveRulesAndVerify", "Pending")]
    assert "not one of the desired values ['default']" in refused["FailureMessage"]
    assert len(ec2.describe_security_groups(GroupIds=[other])["SecurityGroups"][0]["IpPermissions"]) == 1


def test_restrict_bucket_ssl_requests_only_adds_a_deny_and_keeps_the_policy(server, ssm, s3):
    bucket = new_bucket(s3)
    keep = {"Sid": "Keep", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{MOTO_ACCOUNT}:root"},
            "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [keep]}))

    run_ = run(server, ssm, DOCS["ssl"], BucketName=bucket, AutomationAssumeRole=ROLE)
    assert run_["AutomationExecutionStatus"] == "Success", run_.get("FailureMessage")
    statements = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    assert statements[0] == keep
    deny = statements[1]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Resource"] == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}

    fresh = new_bucket(s3)  # no policy yet: one is created
    assert run(server, ssm, DOCS["ssl"], BucketName=fresh, AutomationAssumeRole=ROLE)["AutomationExecutionStatus"] == "Success"
    assert len(json.loads(s3.get_bucket_policy(Bucket=fresh)["Policy"])["Statement"]) == 1


def test_configure_bucket_versioning_default_and_suspended(server, ssm, s3):
    bucket = new_bucket(s3)
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    run_ = run(server, ssm, DOCS["versioning"], BucketName=bucket)  # no role: the caller's own credentials
    assert run_["AutomationExecutionStatus"] == "Success"
    assert run_["Parameters"]["VersioningState"] == ["Enabled"]  # the default
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    run(server, ssm, DOCS["versioning"], BucketName=bucket, VersioningState="Suspended")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"


def test_enable_bucket_encryption_branches_on_the_algorithm(server, ssm, s3, kms):
    bucket = new_bucket(s3)
    aes = run(server, ssm, DOCS["encryption"], BucketName=bucket)
    assert steps(aes) == [("ChooseEncryptionType", "Success"), ("PutBucketEncryption", "Success"),
                          ("PutBucketEncryptionKms", "Pending")]
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}

    key = kms.create_key()["KeyMetadata"]["KeyId"]
    with_kms = run(server, ssm, DOCS["encryption"], BucketName=bucket, SSEAlgorithm="aws:kms", KmsKeyId=key)
    assert steps(with_kms) == [("ChooseEncryptionType", "Success"), ("PutBucketEncryption", "Pending"),
                               ("PutBucketEncryptionKms", "Success")]
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}


def test_bucket_public_access_block_takes_boolean_parameters(server, ssm, s3):
    bucket = new_bucket(s3)
    run_ = run(server, ssm, DOCS["pab"], BucketName=bucket, AutomationAssumeRole=ROLE, IgnorePublicAcls="false")
    assert run_["AutomationExecutionStatus"] == "Success", run_.get("FailureMessage")
    assert run_["Parameters"]["IgnorePublicAcls"] == ["false"] and run_["Parameters"]["BlockPublicAcls"] == ["true"]
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": False, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}


def test_kms_cancel_key_deletion_then_enable_rotation(server, ssm, kms):
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    assert run(server, ssm, DOCS["cancel"], KeyId=key, AutomationAssumeRole=ROLE)["AutomationExecutionStatus"] == "Success"
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Disabled"

    assert kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"] is False
    rotation = run(server, ssm, DOCS["rotation"], KeyId=key, AutomationAssumeRole=ROLE)
    assert rotation["AutomationExecutionStatus"] == "Success", rotation.get("FailureMessage")
    assert kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"] is True


def test_assume_role_in_another_account_acts_in_that_account(server, ssm, ec2, moto):
    other = assumed(moto, OTHER_ACCOUNT)
    other_ec2 = _client("ec2", moto.url, creds=other)
    subnet = new_subnet(other_ec2, public=True)
    other_role = f"arn:aws:iam::{OTHER_ACCOUNT}:role/AutomationRole"

    # As the default account's role the subnet is not there: the run fails on moto's answer.
    wrong = run(server, ssm, DOCS["subnet"], SubnetId=subnet, AutomationAssumeRole=ROLE)
    assert wrong["AutomationExecutionStatus"] == "Failed"
    assert "InvalidSubnetID.NotFound" in wrong["FailureMessage"]
    assert map_public_ip(other_ec2, subnet) is True

    done = run(server, ssm, DOCS["subnet"], SubnetId=subnet, AutomationAssumeRole=other_role)
    assert done["AutomationExecutionStatus"] == "Success", done.get("FailureMessage")
    assert map_public_ip(other_ec2, subnet) is False
    with pytest.raises(ClientError) as missing:
        ec2.describe_subnets(SubnetIds=[subnet])
    assert error(missing)[0] == "InvalidSubnetID.NotFound"

    # An account-wide setting: on in the role's account, untouched in the caller's.
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    ebs = run(server, ssm, DOCS["ebs"], AutomationAssumeRole=other_role)
    assert ebs["AutomationExecutionStatus"] == "Success"
    assert other_ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False


# --------------------------------------------------------------------------- failures


def test_a_failing_step_fails_the_run_with_the_api_error(server, ssm):
    run_ = run(server, ssm, DOCS["imds"], InstanceId=MISSING_INSTANCE, AutomationAssumeRole=ROLE)
    assert run_["AutomationExecutionStatus"] == "Failed"
    assert steps(run_) == [("ModifyInstanceMetadataOptions", "Failed"), ("VerifyIMDSv2Required", "Pending")]
    message = run_["StepExecutions"][0]["FailureMessage"]
    assert "An error occurred (InvalidInstanceID.NotFound) when calling the ModifyInstanceMetadataOptions " \
           f"operation: The instance ID '{MISSING_INSTANCE}' does not exist" in message
    assert run_["FailureMessage"] == message
    assert run_["Outputs"] == {}


ON_FAILURE_DOC = {
    "schemaVersion": "0.3",
    "parameters": {"VpcId": {"type": "String"}},
    "mainSteps": [
        {"name": "DescribeMissing", "action": "aws:executeAwsApi", "onFailure": "Continue", "isCritical": False,
         "inputs": {"Service": "ec2", "Api": "DescribeInstances", "InstanceIds": [MISSING_INSTANCE]}},
        {"name": "TagContinued", "action": "aws:executeAwsApi",
         "inputs": {"Service": "ec2", "Api": "CreateTags", "Resources": ["{{ VpcId }}"],
                    "Tags": [{"Key": "continued", "Value": "yes"}]}},
        {"name": "FailAgain", "action": "aws:executeAwsApi", "onFailure": "step:Rollback",
         "inputs": {"Service": "ec2", "Api": "DescribeInstances", "InstanceIds": [MISSING_INSTANCE]}},
        {"name": "NeverRun", "action": "aws:executeAwsApi", "isEnd": True,
         "inputs": {"Service": "ec2", "Api": "CreateTags", "Resources": ["{{ VpcId }}"],
                    "Tags": [{"Key": "never", "Value": "yes"}]}},
        {"name": "Rollback", "action": "aws:executeAwsApi", "isEnd": True,
         "inputs": {"Service": "ec2", "Api": "CreateTags", "Resources": ["{{VpcId}}"],
                    "Tags": [{"Key": "rolledback", "Value": "yes"}]}},
    ],
}


def test_on_failure_continue_and_step_jump(server, ssm, ec2):
    vpc = new_vpc(ec2)
    run_ = run(server, ssm, create_document(ssm, ON_FAILURE_DOC), VpcId=vpc)
    assert steps(run_) == [("DescribeMissing", "Failed"), ("TagContinued", "Success"), ("FailAgain", "Failed"),
                           ("NeverRun", "Pending"), ("Rollback", "Success")]
    assert vpc_tags(ec2, vpc) == {"continued": "yes", "rolledback": "yes"}
    # FailAgain is critical (the default), so the run is Failed although the rollback ran.
    assert run_["AutomationExecutionStatus"] == "Failed"
    assert "InvalidInstanceID.NotFound" in run_["FailureMessage"]

    lenient = {**ON_FAILURE_DOC, "mainSteps": ON_FAILURE_DOC["mainSteps"][:2]}
    assert run(server, ssm, create_document(ssm, lenient), VpcId=new_vpc(ec2))["AutomationExecutionStatus"] == "Success"


def test_parameters_are_checked_before_anything_runs(server, ssm, ec2):
    instance = new_instance(ec2)
    before = len(server.executions)
    cases = [
        ({"InstanceId": [instance], "AutomationAssumeRole": [ROLE], "Colour": ["blue"]},
         'Parameter "Colour" is not defined in document'),
        ({"AutomationAssumeRole": [ROLE]}, "Missing required parameter: InstanceId in user inputs."),
        ({"InstanceId": ["not-an-instance"], "AutomationAssumeRole": [ROLE]},
         'Parameter "InstanceId" has value "not-an-instance" not matching the allowed pattern ^i-[a-z0-9]{8,17}$'),
        ({"InstanceId": [instance, instance], "AutomationAssumeRole": [ROLE]}, "takes one value, not 2"),
    ]
    for parameters, message in cases:
        with pytest.raises(ssm.exceptions.InvalidAutomationExecutionParametersException) as refused:
            ssm.start_automation_execution(DocumentName=DOCS["imds"], Parameters=parameters)
        assert message in error(refused)[1]
    with pytest.raises(ssm.exceptions.InvalidAutomationExecutionParametersException) as refused:
        start(ssm, DOCS["versioning"], BucketName="some-bucket", VersioningState="On")
    assert error(refused)[1] == 'Parameter "VersioningState" has value "On" not found in [Enabled, Suspended].'
    with pytest.raises(ssm.exceptions.InvalidAutomationExecutionParametersException) as refused:
        start(ssm, DOCS["pab"], BucketName="some-bucket", AutomationAssumeRole=ROLE, BlockPublicAcls="maybe")
    assert "not true or false" in error(refused)[1]
    for missing in ("AWSConfigRemediation-NoSuchDocument", "Test-NoSuchDocument"):
        with pytest.raises(ssm.exceptions.AutomationDefinitionNotFoundException):
            start(ssm, missing)
    assert len(server.executions) == before
    assert http_tokens(ec2, instance) == "optional"


def test_errors_are_awsjson_with_the_code_in_type_and_header(server, ssm):
    with pytest.raises(ssm.exceptions.AutomationExecutionNotFoundException) as missing:
        ssm.get_automation_execution(AutomationExecutionId=str(uuid.uuid4()))
    response = missing.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "AutomationExecutionNotFoundException"
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/x-amz-json-1.1"
    record = server.requests[-1]
    assert record.operation == "GetAutomationExecution" and record.error_type == "AutomationExecutionNotFoundException"
    assert json.loads(record.raw)["AutomationExecutionId"] and record.account == MOTO_ACCOUNT and record.region == REGION

    finished = run(server, ssm, DOCS["versioning"], BucketName="no-such-bucket-here")
    assert finished["AutomationExecutionStatus"] == "Failed" and "NoSuchBucket" in finished["FailureMessage"]
    with pytest.raises(ssm.exceptions.InvalidAutomationStatusUpdateException):
        ssm.stop_automation_execution(AutomationExecutionId=finished["AutomationExecutionId"], Type="Cancel")


def test_fail_next_injects_errors_for_automation_and_proxied_calls(server, ssm, s3):
    server.fail_next("StartAutomationExecution", 400, "AutomationExecutionLimitExceededException", "Too many")
    with pytest.raises(ssm.exceptions.AutomationExecutionLimitExceededException):
        start(ssm, DOCS["versioning"], BucketName=new_bucket(s3))
    name = create_document(ssm, ON_FAILURE_DOC)
    server.fail_next("GetDocument", 400, "InvalidDocument", "injected")
    with pytest.raises(ssm.exceptions.InvalidDocument) as injected:
        ssm.get_document(Name=name)
    assert error(injected)[1] == "injected"
    assert ssm.get_document(Name=name)["Name"] == name


# --------------------------------------------------------------------------- custom documents and actions


def test_custom_document_created_through_the_server_runs_with_typed_substitution(server, ssm, ec2, moto):
    vpc = new_vpc(ec2)
    doc = {
        "schemaVersion": "0.3",
        "description": "Echo and tag",
        "outputs": ["Echo.Names", "Echo.Count"],
        "parameters": {
            "VpcId": {"type": "String"},
            "Names": {"type": "StringList"},
            "Count": {"type": "Integer", "default": 3},
            "Flag": {"type": "Boolean", "default": False},
            "Settings": {"type": "StringMap", "default": {}},
        },
        "mainSteps": [
            {"name": "Echo", "action": "aws:executeScript", "inputs": {
                "Runtime": "python3.11", "Handler": "echo",
                "InputPayload": {"Names": "{{ Names }}", "Count": "{{ Count }}", "Flag": "{{ Flag }}",
                                 "Settings": "{{ Settings }}", "Execution": "{{ automation:EXECUTION_ID }}",
                                 "Text": "{{Count}} names in {{ global:ACCOUNT_ID }}/{{ global:REGION }}"},
                "Script": "import boto3\n\ndef echo(events, context):\n"
                          "    events['Region'] = boto3.client('ec2').meta.region_name\n"
                          "    return events\n"},
             "outputs": [{"Name": "Names", "Selector": "$.Payload.Names", "Type": "StringList"},
                         {"Name": "First", "Selector": "$.Payload.Names[0]", "Type": "String"},
                         {"Name": "Count", "Selector": "$.Payload.Count", "Type": "Integer"},
                         {"Name": "Flag", "Selector": "$.Payload.Flag", "Type": "Boolean"},
                         {"Name": "Absent", "Selector": "$.Payload.Nothing", "Type": "String"}]},
            {"name": "Pause", "action": "aws:sleep", "inputs": {"Duration": "PT0.1S"}},
            {"name": "IsFlagged", "action": "aws:branch", "inputs": {
                "Choices": [{"NextStep": "TagFlagged", "Variable": "{{ Echo.Flag }}", "BooleanEquals": True},
                            {"NextStep": "TagMany", "And": [
                                {"Variable": "{{ Echo.Count }}", "NumericGreater": 2},
                                {"Not": {"Variable": "{{ Echo.First }}", "StringEquals": "nobody"}}]}],
                "Default": "TagFlagged"}},
            {"name": "TagFlagged", "action": "aws:executeAwsApi", "isEnd": True, "inputs": {
                "Service": "ec2", "Api": "CreateTags", "Resources": ["{{ VpcId }}"],
                "Tags": [{"Key": "flagged", "Value": "{{ Echo.First }}"}]}},
            {"name": "TagMany", "action": "aws:executeAwsApi", "isEnd": True, "inputs": {
                "Service": "ec2", "Api": "CreateTags", "Resources": ["{{ VpcId }}"],
                "Tags": [{"Key": "many", "Value": "{{ Echo.First }}-{{ Echo.Count }}"}]}},
        ],
    }
    name = create_document(ssm, doc)
    assert server.counts["CreateDocument"] >= 1  # forwarded to moto, which now holds it
    assert _client("ssm", moto.url).describe_document(Name=name)["Document"]["DocumentType"] == "Automation"

    run_ = run(server, ssm, name, VpcId=vpc, Names=["alice", "bob"], Settings='{"a": "b"}')
    assert run_["AutomationExecutionStatus"] == "Success", run_.get("FailureMessage")
    assert steps(run_) == [("Echo", "Success"), ("Pause", "Success"), ("IsFlagged", "Success"),
                           ("TagFlagged", "Pending"), ("TagMany", "Success")]
    assert vpc_tags(ec2, vpc) == {"many": "alice-3"}
    payload = json.loads(run_["StepExecutions"][0]["Outputs"]["OutputPayload"][0])["Payload"]
    assert payload == {"Names": ["alice", "bob"], "Count": 3, "Flag": False, "Settings": {"a": "b"},
                       "Execution": run_["AutomationExecutionId"], "Text": f"3 names in {MOTO_ACCOUNT}/{REGION}",
                       "Region": REGION}
    echo = run_["StepExecutions"][0]["Outputs"]
    assert echo["Names"] == ["alice", "bob"] and echo["First"] == ["alice"] and echo["Count"] == ["3"]
    assert echo["Flag"] == ["false"] and "Absent" not in echo
    assert run_["Outputs"] == {"Echo.Names": ["alice", "bob"], "Echo.Count": ["3"]}
    assert run_["Parameters"]["Names"] == ["alice", "bob"] and run_["Parameters"]["Flag"] == ["false"]
    assert run_["DocumentVersion"] == "1"


def test_wait_for_property_sleep_unsupported_actions_and_bad_roles(server, ssm, ec2):
    subnet = new_subnet(ec2, public=False)
    waits = {
        "schemaVersion": "0.3",
        "parameters": {"SubnetId": {"type": "String"}},
        "mainSteps": [
            {"name": "AlreadyPrivate", "action": "aws:waitForAwsResourceProperty", "timeoutSeconds": 5,
             "inputs": {"Service": "ec2", "Api": "DescribeSubnets", "SubnetIds": ["{{ SubnetId }}"],
                        "PropertySelector": "$.Subnets[0].MapPublicIpOnLaunch", "DesiredValues": ["False"]}},
            {"name": "NeverPublic", "action": "aws:waitForAwsResourceProperty", "timeoutSeconds": 1,
             "inputs": {"Service": "ec2", "Api": "DescribeSubnets", "SubnetIds": ["{{ SubnetId }}"],
                        "PropertySelector": "$.Subnets[0].MapPublicIpOnLaunch", "DesiredValues": ["True"]}},
        ],
    }
    started = time.monotonic()
    run_ = run(server, ssm, create_document(ssm, waits), SubnetId=subnet)
    assert time.monotonic() - started >= 1.0
    assert run_["AutomationExecutionStatus"] == "TimedOut"
    assert steps(run_) == [("AlreadyPrivate", "Success"), ("NeverPublic", "TimedOut")]
    assert "Current value of property $.Subnets[0].MapPublicIpOnLaunch is False" in run_["FailureMessage"]

    unsupported = {"schemaVersion": "0.3", "mainSteps": [
        {"name": "Nap", "action": "aws:sleep", "inputs": {"Duration": "PT0.2S"}},
        {"name": "Run", "action": "aws:runCommand", "inputs": {"DocumentName": "AWS-RunShellScript"}}]}
    run_ = run(server, ssm, create_document(ssm, unsupported))
    assert steps(run_) == [("Nap", "Success"), ("Run", "Failed")]
    assert "action aws:runCommand is not supported by the test server" in run_["FailureMessage"]
    nap = run_["StepExecutions"][0]
    assert (nap["ExecutionEndTime"] - nap["ExecutionStartTime"]).total_seconds() >= 0.19

    role = {"schemaVersion": "0.3", "assumeRole": "{{ Role }}", "parameters": {"Role": {"type": "String"}},
            "mainSteps": [{"name": "Nap", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}}]}
    run_ = run(server, ssm, create_document(ssm, role), Role="not-a-role")
    assert run_["AutomationExecutionStatus"] == "Failed"
    assert run_["FailureMessage"].startswith("The defined assume role is unable to be assumed.")
    assert steps(run_) == [("Nap", "Pending")]


def test_execute_automation_runs_a_child_and_waits_for_it(server, ssm, s3):
    bucket = new_bucket(s3)
    parent_doc = {"schemaVersion": "0.3", "parameters": {"Bucket": {"type": "String"}}, "mainSteps": [
        {"name": "Versioning", "action": "aws:executeAutomation", "inputs": {
            "DocumentName": DOCS["versioning"],
            "RuntimeParameters": {"BucketName": "{{ Bucket }}", "VersioningState": ["Enabled"]}}}]}
    run_ = run(server, ssm, create_document(ssm, parent_doc), Bucket=bucket)
    assert run_["AutomationExecutionStatus"] == "Success", run_.get("FailureMessage")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    outputs = run_["StepExecutions"][0]["Outputs"]
    assert outputs["Status"] == ["Success"]
    child = ssm.get_automation_execution(AutomationExecutionId=outputs["ExecutionId"][0])["AutomationExecution"]
    assert child["ParentAutomationExecutionId"] == run_["AutomationExecutionId"]
    assert child["DocumentName"] == DOCS["versioning"] and child["AutomationExecutionStatus"] == "Success"


# --------------------------------------------------------------------------- progress and stopping


def test_status_and_steps_progress_while_a_run_goes(slow, slow_ssm, ec2):
    instance = new_instance(ec2)
    execution_id = start(slow_ssm, DOCS["imds"], InstanceId=instance, AutomationAssumeRole=ROLE)
    seen: list[tuple] = []
    while True:
        run_ = slow_ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
        view = (run_["AutomationExecutionStatus"], run_.get("CurrentStepName"), *[s for _, s in steps(run_)])
        if not seen or seen[-1] != view:
            seen.append(view)
        if run_["AutomationExecutionStatus"] in ("Success", "Failed", "Cancelled", "TimedOut"):
            break
        time.sleep(0.03)
    assert seen[0][0] in ("Pending", "InProgress")
    assert ("InProgress", "ModifyInstanceMetadataOptions", "InProgress", "Pending") in seen
    assert ("InProgress", "VerifyIMDSv2Required", "Success", "InProgress") in seen
    assert seen[-1] == ("Success", None, "Success", "Success")
    assert slow.executions[execution_id].step_seconds >= 2 * slow.step_delay

    listed = slow_ssm.describe_automation_step_executions(AutomationExecutionId=execution_id, MaxResults=1)
    assert [s["StepName"] for s in listed["StepExecutions"]] == ["ModifyInstanceMetadataOptions"]
    rest = slow_ssm.describe_automation_step_executions(AutomationExecutionId=execution_id,
                                                        NextToken=listed["NextToken"])
    assert [s["StepName"] for s in rest["StepExecutions"]] == ["VerifyIMDSv2Required"] and "NextToken" not in rest
    backwards = slow_ssm.describe_automation_step_executions(AutomationExecutionId=execution_id, ReverseOrder=True,
                                                             Filters=[{"Key": "StepExecutionStatus", "Values": ["Success"]}])
    assert [s["StepName"] for s in backwards["StepExecutions"]] == ["VerifyIMDSv2Required", "ModifyInstanceMetadataOptions"]
    with pytest.raises(ClientError) as bad:
        slow_ssm.describe_automation_step_executions(AutomationExecutionId=execution_id,
                                                     Filters=[{"Key": "Colour", "Values": ["x"]}])
    assert error(bad)[0] in ("InvalidFilterKey", "ValidationException")  # botocore may refuse the enum first


def test_stop_cancels_the_running_step_and_runs_no_later_step(slow, slow_ssm, ec2):
    instance = new_instance(ec2)
    execution_id = start(slow_ssm, DOCS["imds"], InstanceId=instance, AutomationAssumeRole=ROLE)
    wait_until(lambda: steps(slow_ssm.get_automation_execution(AutomationExecutionId=execution_id)
                             ["AutomationExecution"])[0][1] == "InProgress")
    slow_ssm.stop_automation_execution(AutomationExecutionId=execution_id, Type="Cancel")
    status = slow_ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"][
        "AutomationExecutionStatus"]
    assert status in ("Cancelling", "Cancelled")
    final = slow.wait_finished(execution_id, timeout=5)
    assert final["AutomationExecutionStatus"] == "Cancelled"
    assert steps(final) == [("ModifyInstanceMetadataOptions", "Cancelled"), ("VerifyIMDSv2Required", "Pending")]
    assert http_tokens(ec2, instance) == "optional"  # the step was stopped before its API call
    with pytest.raises(slow_ssm.exceptions.InvalidAutomationStatusUpdateException):
        slow_ssm.stop_automation_execution(AutomationExecutionId=execution_id)


def test_client_token_makes_start_idempotent(server, ssm, s3):
    bucket = new_bucket(s3)
    token = str(uuid.uuid4())
    first = ssm.start_automation_execution(DocumentName=DOCS["versioning"], Parameters=params(BucketName=bucket),
                                           ClientToken=token)["AutomationExecutionId"]
    again = ssm.start_automation_execution(DocumentName=DOCS["versioning"], Parameters=params(BucketName=bucket),
                                           ClientToken=token)["AutomationExecutionId"]
    assert again == first
    with pytest.raises(ssm.exceptions.IdempotentParameterMismatch):
        ssm.start_automation_execution(DocumentName=DOCS["versioning"],
                                       Parameters=params(BucketName=bucket, VersioningState="Suspended"),
                                       ClientToken=token)
    server.wait_finished(first)


def test_describe_automation_executions_filters_and_pages(server, ssm, s3):
    ids = [start(ssm, DOCS["versioning"], BucketName=new_bucket(s3)) for _ in range(3)]
    for i in ids:
        server.wait_finished(i)
    mine = ssm.describe_automation_executions(Filters=[{"Key": "ExecutionId", "Values": ids}])
    listed = mine["AutomationExecutionMetadataList"]
    assert {m["AutomationExecutionId"] for m in listed} == set(ids)
    assert all(m["AutomationType"] == "Local" and m["AutomationExecutionStatus"] == "Success" for m in listed)
    page = ssm.describe_automation_executions(Filters=[{"Key": "ExecutionId", "Values": ids}], MaxResults=2)
    assert len(page["AutomationExecutionMetadataList"]) == 2 and page["NextToken"]
    rest = ssm.describe_automation_executions(Filters=[{"Key": "ExecutionId", "Values": ids}], NextToken=page["NextToken"])
    assert len(rest["AutomationExecutionMetadataList"]) == 1
    by_prefix = ssm.describe_automation_executions(Filters=[{"Key": "DocumentNamePrefix", "Values": ["AWS-Configure"]},
                                                            {"Key": "ExecutionStatus", "Values": ["Success"]}])
    assert set(ids) <= {m["AutomationExecutionId"] for m in by_prefix["AutomationExecutionMetadataList"]}
    assert all(m["DocumentName"].startswith("AWS-Configure") for m in by_prefix["AutomationExecutionMetadataList"])


def test_other_ssm_calls_are_forwarded_to_moto(server, ssm, moto):
    name = create_document(ssm, ON_FAILURE_DOC)
    direct = _client("ssm", moto.url)
    assert name in {d["Name"] for d in direct.list_documents(Filters=[{"Key": "DocumentType", "Values": ["Automation"]}])
                    ["DocumentIdentifiers"]}
    assert yaml.safe_load(ssm.get_document(Name=name)["Content"])["mainSteps"][0]["name"] == "DescribeMissing"
    ssm.modify_document_permission(Name=name, PermissionType="Share", AccountIdsToAdd=[OTHER_ACCOUNT])
    assert OTHER_ACCOUNT in direct.describe_document_permission(Name=name, PermissionType="Share")["AccountIds"]
    with pytest.raises(ssm.exceptions.InvalidDocument):
        ssm.get_document(Name="Test-NoSuchDocument")
    record = server.requests[-1]
    assert record.operation == "GetDocument" and record.status == 400 and record.error_type == "InvalidDocument"


# --------------------------------------------------------------------------- TargetLocations


def ebs_on(moto: MotoServer, account: str, region: str) -> bool:
    return _client("ec2", moto.url, region, assumed(moto, account)).get_ebs_encryption_by_default()["EbsEncryptionByDefault"]


def test_target_locations_fan_out_two_accounts_two_regions_two_at_a_time(slow, slow_ssm, moto):
    execution_id = slow_ssm.start_automation_execution(
        DocumentName=DOCS["ebs"],
        Parameters=params(AutomationAssumeRole=f"arn:aws:iam::{{{{global:ACCOUNT_ID}}}}:role/{DEFAULT_EXECUTION_ROLE}"),
        TargetLocations=[{"Accounts": TARGET_ACCOUNTS, "Regions": TARGET_REGIONS,
                          "TargetLocationMaxConcurrency": "2"}],
    )["AutomationExecutionId"]  # fmt: skip
    parent = slow.wait_finished(execution_id, timeout=20)
    assert parent["AutomationExecutionStatus"] == "Success", parent.get("FailureMessage")

    rows = {s["StepName"]: s for s in parent["StepExecutions"]}
    assert set(rows) == {f"{a}-{r}" for a in TARGET_ACCOUNTS for r in TARGET_REGIONS}
    for account in TARGET_ACCOUNTS:
        for region in TARGET_REGIONS:
            row = rows[f"{account}-{region}"]
            assert row["Action"] == "aws:executeAutomation" and row["StepStatus"] == "Success"
            assert row["TargetLocation"] == {"Accounts": [account], "Regions": [region],
                                             "ExecutionRoleName": DEFAULT_EXECUTION_ROLE,
                                             "TargetLocationMaxConcurrency": "2", "TargetLocationMaxErrors": "0"}
            assert ebs_on(moto, account, region) is True
    assert ebs_on(moto, TARGET_ACCOUNTS[0], "eu-west-1") is False  # a Region not targeted
    assert parent["ProgressCounters"] == {"TotalSteps": 8, "SuccessSteps": 8, "FailedSteps": 0,
                                          "CancelledSteps": 0, "TimedOutSteps": 0}

    children = slow_ssm.describe_automation_executions(
        Filters=[{"Key": "ParentExecutionId", "Values": [execution_id]}])["AutomationExecutionMetadataList"]
    assert len(children) == 4
    assert {c["AutomationExecutionId"] for c in children} == {r["Outputs"]["ExecutionId"][0] for r in rows.values()}
    for c in children:
        assert c["AutomationType"] == "CrossAccount" and c["ParentAutomationExecutionId"] == execution_id
        child = slow_ssm.get_automation_execution(AutomationExecutionId=c["AutomationExecutionId"])["AutomationExecution"]
        account = child["ExecutedBy"].split(":")[4]
        assert account in TARGET_ACCOUNTS and f"assumed-role/{DEFAULT_EXECUTION_ROLE}/" in child["ExecutedBy"]
        assert child["Parameters"]["AutomationAssumeRole"] == [f"arn:aws:iam::{account}:role/{DEFAULT_EXECUTION_ROLE}"]
        assert steps(child) == [("ModifyAccount", "Success"), ("VerifyEbsEncryptionByDefault", "Success")]

    # At most two children ran at once, and two did.
    spans = [(slow.executions[c["AutomationExecutionId"]].started, slow.executions[c["AutomationExecutionId"]].ended)
             for c in children]
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlap == 2
    assert slow.executions[execution_id].step_seconds >= 4 * 2 * slow.step_delay


def test_target_locations_stop_starting_children_after_max_errors(server, ssm):
    execution_id = ssm.start_automation_execution(
        DocumentName=DOCS["imds"],
        Parameters=params(InstanceId=MISSING_INSTANCE, AutomationAssumeRole=ROLE),
        TargetLocations=[{"Accounts": TARGET_ACCOUNTS, "Regions": TARGET_REGIONS, "ExecutionRoleName": "Runner",
                          "TargetLocationMaxConcurrency": "1", "TargetLocationMaxErrors": "1"}],
    )["AutomationExecutionId"]  # fmt: skip
    parent = server.wait_finished(execution_id, timeout=20)
    assert parent["AutomationExecutionStatus"] == "Failed"
    assert [s["StepStatus"] for s in parent["StepExecutions"]] == ["Failed", "Failed", "Cancelled", "Cancelled"]
    started, not_started = parent["StepExecutions"][:2], parent["StepExecutions"][2:]
    assert all("InvalidInstanceID.NotFound" in s["FailureMessage"] for s in started)
    assert all("ExecutionId" in s["Outputs"] for s in started)
    assert all("Outputs" not in s and "TargetLocationMaxErrors" in s["FailureMessage"] for s in not_started)
    children = ssm.describe_automation_executions(
        Filters=[{"Key": "ParentExecutionId", "Values": [execution_id]}])["AutomationExecutionMetadataList"]
    assert sorted(c["AutomationExecutionStatus"] for c in children) == ["Failed", "Failed"]
    assert parent["ProgressCounters"]["FailedSteps"] == 2


def test_target_locations_are_validated(server, ssm):
    def refused(location: dict) -> tuple[str, str]:
        with pytest.raises(ClientError) as e:
            ssm.start_automation_execution(DocumentName=DOCS["ebs"], Parameters=params(AutomationAssumeRole=ROLE),
                                           TargetLocations=[location])
        return error(e)

    accounts = [f"{n:012d}" for n in range(1, 52)]
    assert refused({"Accounts": accounts, "Regions": [REGION]})[0] == "ValidationException"
    assert refused({"Accounts": TARGET_ACCOUNTS, "Regions": [f"us-east-{n}" for n in range(51)]})[0] == "ValidationException"
    assert refused({"Accounts": TARGET_ACCOUNTS, "Regions": [REGION], "TargetLocationMaxConcurrency": "0"})[0] \
        == "ValidationException"
    code, message = refused({"Accounts": ["12345"], "Regions": [REGION]})
    assert code == "InvalidAutomationExecutionParametersException" and "12345" in message


def test_target_locations_resolve_organizational_units(server, ssm, moto):
    org = _client("organizations", moto.url)
    try:
        org.create_organization(FeatureSet="ALL")
    except ClientError as e:
        if e.response["Error"]["Code"] != "AlreadyInOrganizationException":
            raise
    root = org.list_roots()["Roots"][0]["Id"]
    ou = org.create_organizational_unit(ParentId=root, Name=f"ou-{uuid.uuid4().hex[:6]}")["OrganizationalUnit"]["Id"]
    account = org.create_account(Email=f"{uuid.uuid4().hex[:8]}@example.com", AccountName="member")[
        "CreateAccountStatus"]["AccountId"]
    org.move_account(AccountId=account, SourceParentId=root, DestinationParentId=ou)

    execution_id = ssm.start_automation_execution(
        DocumentName=DOCS["ebs"], Parameters=params(AutomationAssumeRole="arn:aws:iam::{{global:ACCOUNT_ID}}:role/R"),
        TargetLocations=[{"Accounts": [ou], "Regions": ["eu-central-1"]}],
    )["AutomationExecutionId"]  # fmt: skip
    parent = server.wait_finished(execution_id, timeout=20)
    assert parent["AutomationExecutionStatus"] == "Success", parent.get("FailureMessage")
    assert [s["StepName"] for s in parent["StepExecutions"]] == [f"{account}-eu-central-1"]
    assert ebs_on(moto, account, "eu-central-1") is True


# --------------------------------------------------------------------------- standalone


def test_standalone_server_answers(moto):
    with standalone("tests.servers.ssm_automation", "--moto-url", moto.url) as url:
        assert url.startswith("http://127.0.0.1:")
        with pytest.raises(ClientError) as missing:
            _client("ssm", url).get_automation_execution(AutomationExecutionId=str(uuid.uuid4()))
        assert error(missing)[0] == "AutomationExecutionNotFoundException"
