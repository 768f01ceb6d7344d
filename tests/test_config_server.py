"""Tests of the local AWS Config server (servers/config_service.py), driven by boto3.

boto3's `config` client is generated from the same service model as the AWS SDK
for Rust, so if these pass the kernel can be pointed at the server too.  Every
resource is made in moto with boto3 and every answer is checked against what
moto holds: a configuration item must show moto's live values, and a rule must
turn COMPLIANT only after the real change in moto.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

try:  # tests/ is on sys.path when pytest imports this file (no tests/__init__.py)
    from servers.config_service import MANAGED_RULES, SUPPORTED_RESOURCE_TYPES, ConfigServer, security_hub_rule_name
    from servers.http import standalone
    from servers.moto import DUMMY_CREDENTIALS, MOTO_ACCOUNT, MotoServer
except ImportError:  # run from the repository root as a package
    from tests.servers.config_service import (  # type: ignore[no-redef]
        MANAGED_RULES, SUPPORTED_RESOURCE_TYPES, ConfigServer, security_hub_rule_name,
    )
    from tests.servers.http import standalone  # type: ignore[no-redef]
    from tests.servers.moto import DUMMY_CREDENTIALS, MOTO_ACCOUNT, MotoServer  # type: ignore[no-redef]

REGION = "us-east-1"
OTHER_ACCOUNT = "111111111111"
SESSION = boto3.session.Session()  # clients from one session share the loaded service models
ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=20)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(moto):
    with ConfigServer(moto.url) as s:  # default evaluation_delay (0.2 s)
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


@dataclass
class Aws:
    """boto3 clients for one account: moto's services and the Config server."""

    ec2: Any
    s3: Any
    kms: Any
    config: Any
    ecr: Any


@pytest.fixture(scope="module")
def aws(moto, server) -> Aws:
    return Aws(_client("ec2", moto.url), _client("s3", moto.url), _client("kms", moto.url), _client("config", server.url),
               _client("ecr", moto.url))  # fmt: skip


@pytest.fixture(scope="module")
def cfg(aws):
    return aws.config


# --------------------------------------------------------------------------- helpers

_cidr = iter(range(10, 250))


def new_vpc(ec2) -> str:
    return ec2.create_vpc(CidrBlock=f"10.{next(_cidr)}.0.0/16")["Vpc"]["VpcId"]


def new_subnet(ec2) -> tuple[str, str]:
    """(vpc, subnet) in a VPC of their own."""
    vpc = new_vpc(ec2)
    cidr = ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["CidrBlock"].replace("0.0/16", "1.0/24")
    return vpc, ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]


def new_instance(ec2, **kw) -> str:
    # A filtered DescribeImages: moto lists ~1300 AMIs otherwise, which takes seconds.
    ami = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}])["Images"][0]
    answer = ec2.run_instances(ImageId=ami["ImageId"], MinCount=1, MaxCount=1, InstanceType="t3.micro", **kw)
    return answer["Instances"][0]["InstanceId"]


def new_bucket(s3, region: str = REGION) -> str:
    name = f"cfg-{uuid.uuid4().hex[:12]}"
    extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=name, **extra)
    return name


def default_group(ec2, vpc: str) -> dict:
    return ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"][0]


def get_items(cfg, *keys: tuple[str, str]) -> dict[str, dict]:
    """resourceId -> configuration item, with `configuration` and the supplementary values decoded."""
    answer = cfg.batch_get_resource_config(resourceKeys=[{"resourceType": t, "resourceId": i} for t, i in keys])
    assert answer["unprocessedResourceKeys"] == []
    out = {}
    for item in answer["baseConfigurationItems"]:
        assert isinstance(item["configuration"], str)  # a JSON string on the wire, as Config sends it
        item = {**item, "configuration": json.loads(item["configuration"]),
                "supplementaryConfiguration": {k: json.loads(v) for k, v in item["supplementaryConfiguration"].items()}}
        out[item["resourceId"]] = item
    return out


def get_item(cfg, rtype: str, rid: str) -> dict:
    found = get_items(cfg, (rtype, rid))
    assert list(found) == [rid]
    return found[rid]


def put_rule(cfg, name: str, identifier: str, **extra: Any) -> None:
    cfg.put_config_rule(ConfigRule={"ConfigRuleName": name, "Source": {"Owner": "AWS", "SourceIdentifier": identifier}, **extra})


def evaluate(cfg, *names: str, timeout: float = 10.0) -> tuple[float, list[dict]]:
    """StartConfigRulesEvaluation, then wait (as the kernel does) until every rule's
    LastSuccessfulEvaluationTime or LastFailedEvaluationTime is later than the start.
    Returns (start time, statuses)."""
    started = time.time()
    cfg.start_config_rules_evaluation(ConfigRuleNames=list(names))
    deadline = time.monotonic() + timeout
    while True:
        statuses = cfg.describe_config_rule_evaluation_status(ConfigRuleNames=list(names))["ConfigRulesEvaluationStatus"]

        def done(s: dict) -> bool:
            return any(s.get(k) and s[k].timestamp() > started
                       for k in ("LastSuccessfulEvaluationTime", "LastFailedEvaluationTime"))

        if all(done(s) for s in statuses):
            return started, statuses
        assert time.monotonic() < deadline, f"evaluation of {names} did not finish: {statuses}"
        time.sleep(0.05)


def results_by_rule(cfg, name: str, **kw: Any) -> list[dict]:
    pages = cfg.get_paginator("get_compliance_details_by_config_rule").paginate(ConfigRuleName=name, **kw)
    return [r for page in pages for r in page["EvaluationResults"]]


def qualifier(result: dict) -> dict:
    return result["EvaluationResultIdentifier"]["EvaluationResultQualifier"]


def compliance(cfg, name: str, rtype: str, rid: str, started: float) -> tuple[str, str | None]:
    """The rule's verdict on one resource, which GetComplianceDetailsByConfigRule and
    GetComplianceDetailsByResource must agree on and must have recorded after `started`."""
    by_rule = [r for r in results_by_rule(cfg, name)
               if (qualifier(r)["ResourceType"], qualifier(r)["ResourceId"]) == (rtype, rid)]
    by_resource = [r for r in cfg.get_compliance_details_by_resource(ResourceType=rtype, ResourceId=rid)[
        "EvaluationResults"] if qualifier(r)["ConfigRuleName"] == name]
    assert len(by_rule) == 1 and by_rule == by_resource, (by_rule, by_resource)
    result = by_rule[0]
    assert qualifier(result) == {"ConfigRuleName": name, "ResourceType": rtype, "ResourceId": rid, "EvaluationMode": "DETECTIVE"}
    assert result["ResultRecordedTime"].timestamp() > started
    assert result["ConfigRuleInvokedTime"].timestamp() > started
    return result["ComplianceType"], result.get("Annotation")


# --------------------------------------------------------------------------- configuration items


def test_instance_item_has_moto_live_fields(aws, cfg):
    vpc, subnet = new_subnet(aws.ec2)
    iid = new_instance(aws.ec2, SubnetId=subnet)
    moto_instance = aws.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]

    item = get_item(cfg, "AWS::EC2::Instance", iid)
    assert item["version"] == "1.3"
    assert item["accountId"] == MOTO_ACCOUNT
    assert item["configurationItemStatus"] == "OK"
    assert item["arn"] == f"arn:aws:ec2:{REGION}:{MOTO_ACCOUNT}:instance/{iid}"
    assert item["resourceType"] == "AWS::EC2::Instance"
    assert item["awsRegion"] == REGION
    assert item["availabilityZone"] == moto_instance["Placement"]["AvailabilityZone"]
    assert item["resourceCreationTime"] == moto_instance["LaunchTime"]
    assert item["configurationStateId"].isdigit()
    assert abs(item["configurationItemCaptureTime"].timestamp() - time.time()) < 60
    conf = item["configuration"]
    assert conf["instanceId"] == iid
    assert conf["subnetId"] == subnet and conf["vpcId"] == vpc
    assert conf["state"] == {"code": 16, "name": "running"}
    assert conf["metadataOptions"]["httpTokens"] == "optional"
    assert conf["metadataOptions"]["httpEndpoint"] == "enabled"
    assert conf["securityGroups"] == [{"groupName": "default", "groupId": default_group(aws.ec2, vpc)["GroupId"]}]
    assert conf["launchTime"].endswith("Z")  # ISO 8601, as Config writes times inside configuration
    assert item["supplementaryConfiguration"] == {}


def test_subnet_item(aws, cfg):
    vpc, subnet = new_subnet(aws.ec2)
    aws.ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
    moto_subnet = aws.ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]

    item = get_item(cfg, "AWS::EC2::Subnet", subnet)
    assert item["arn"] == f"arn:aws:ec2:{REGION}:{MOTO_ACCOUNT}:subnet/{subnet}"
    assert item["availabilityZone"] == moto_subnet["AvailabilityZone"]
    conf = item["configuration"]
    assert conf["subnetId"] == subnet
    assert conf["vpcId"] == vpc
    assert conf["cidrBlock"] == moto_subnet["CidrBlock"]
    assert conf["mapPublicIpOnLaunch"] is True


def test_security_group_item_writes_permissions_as_config_does(aws, cfg):
    vpc = new_vpc(aws.ec2)
    group = aws.ec2.create_security_group(GroupName="web", Description="web hosts", VpcId=vpc)["GroupId"]
    aws.ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
    ])  # fmt: skip

    item = get_item(cfg, "AWS::EC2::SecurityGroup", group)
    assert item["resourceName"] == "web"
    assert item["arn"] == f"arn:aws:ec2:{REGION}:{MOTO_ACCOUNT}:security-group/{group}"
    conf = item["configuration"]
    assert (conf["groupId"], conf["groupName"], conf["vpcId"], conf["description"]) == (group, "web", vpc, "web hosts")
    assert conf["ipPermissions"] == [{
        "ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipv6Ranges": [], "prefixListIds": [],
        "userIdGroupPairs": [], "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}], "ipRanges": ["0.0.0.0/0"],
    }]  # fmt: skip
    assert [(p["ipProtocol"], p["ipRanges"]) for p in conf["ipPermissionsEgress"]] == [("-1", ["0.0.0.0/0"])]


def test_bucket_item_and_supplementary_configuration(aws, cfg):
    bucket = new_bucket(aws.s3)
    item = get_item(cfg, "AWS::S3::Bucket", bucket)
    assert item["arn"] == f"arn:aws:s3:::{bucket}"
    assert item["resourceName"] == bucket
    assert item["availabilityZone"] == "Regional"
    conf = item["configuration"]
    assert conf["name"] == bucket and conf["region"] == REGION
    assert conf["owner"]["id"]
    assert conf["creationDate"].endswith("Z")
    supp = item["supplementaryConfiguration"]
    assert supp["BucketPolicy"] == {"policyText": None}
    assert supp["BucketVersioningConfiguration"] == {"status": "Off", "isMfaDeleteEnabled": None}
    # moto reports no default encryption for a new bucket (AWS would report SSE-S3).
    assert "ServerSideEncryptionConfiguration" not in supp
    assert "PublicAccessBlockConfiguration" not in supp

    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{bucket}/*"]}]})
    aws.s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    aws.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    aws.s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    aws.s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": False})

    after = get_item(cfg, "AWS::S3::Bucket", bucket)
    supp = after["supplementaryConfiguration"]
    assert json.loads(supp["BucketPolicy"]["policyText"]) == json.loads(policy)
    assert supp["BucketVersioningConfiguration"]["status"] == "Enabled"
    assert supp["ServerSideEncryptionConfiguration"] == {"rules": [
        {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256", "kmsMasterKeyID": None}, "bucketKeyEnabled": False}]}
    assert supp["PublicAccessBlockConfiguration"] == {
        "blockPublicAcls": True, "ignorePublicAcls": True, "blockPublicPolicy": True, "restrictPublicBuckets": False}
    assert after["configurationStateId"] != item["configurationStateId"]


def test_kms_key_item(aws, cfg):
    key = aws.kms.create_key(Description="runbook test key")["KeyMetadata"]
    item = get_item(cfg, "AWS::KMS::Key", key["KeyId"])
    assert item["arn"] == key["Arn"]
    conf = item["configuration"]
    assert (conf["keyId"], conf["arn"], conf["keyState"], conf["keyManager"], conf["enabled"]) == (
        key["KeyId"], key["Arn"], "Enabled", "CUSTOMER", True)
    assert conf["description"] == "runbook test key"
    assert "deletionDate" not in conf
    assert item["supplementaryConfiguration"] == {"KeyRotationStatus": {"keyRotationEnabled": False}}

    aws.kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    after = get_item(cfg, "AWS::KMS::Key", key["KeyId"])
    assert after["configuration"]["keyState"] == "PendingDeletion"
    assert after["configuration"]["deletionDate"].endswith("Z")
    assert after["configurationStateId"] != item["configurationStateId"]


def test_configuration_state_id_changes_exactly_when_configuration_changes(aws, cfg):
    iid = new_instance(aws.ec2)
    first = get_item(cfg, "AWS::EC2::Instance", iid)
    again = get_item(cfg, "AWS::EC2::Instance", iid)
    assert again["configurationStateId"] == first["configurationStateId"]
    assert again["configurationItemCaptureTime"] == first["configurationItemCaptureTime"]

    aws.ec2.modify_instance_metadata_options(InstanceId=iid, HttpTokens="required")
    changed = get_item(cfg, "AWS::EC2::Instance", iid)
    assert changed["configuration"]["metadataOptions"]["httpTokens"] == "required"
    assert int(changed["configurationStateId"]) > int(first["configurationStateId"])
    assert changed["configurationItemCaptureTime"] > first["configurationItemCaptureTime"]
    assert get_item(cfg, "AWS::EC2::Instance", iid)["configurationStateId"] == changed["configurationStateId"]


def test_missing_and_deleted_resources_are_absent(aws, cfg):
    iid = new_instance(aws.ec2)
    gone = new_instance(aws.ec2)
    aws.ec2.terminate_instances(InstanceIds=[gone])
    found = get_items(
        cfg,
        ("AWS::EC2::Instance", iid),
        ("AWS::EC2::Instance", gone),
        ("AWS::EC2::Instance", "i-0123456789abcdef0"),
        ("AWS::EC2::Subnet", "subnet-0123456789abcdef0"),
        ("AWS::EC2::SecurityGroup", "sg-0123456789abcdef0"),
        ("AWS::S3::Bucket", f"no-such-bucket-{uuid.uuid4().hex[:8]}"),
        ("AWS::KMS::Key", str(uuid.uuid4())),
    )
    assert list(found) == [iid]


def test_bucket_is_recorded_in_its_own_region(moto, server, aws):
    west = new_bucket(aws.s3, "us-west-2")
    assert get_items(aws.config, ("AWS::S3::Bucket", west)) == {}
    west_config = _client("config", server.url, region="us-west-2")
    item = get_item(west_config, "AWS::S3::Bucket", west)
    assert item["awsRegion"] == "us-west-2"
    assert item["configuration"]["region"] == "us-west-2"


# --------------------------------------------------------------------------- rules


@dataclass
class Case:
    """A managed rule, a resource that breaks it (setup) and the real fix."""

    identifier: str
    setup: Callable[[Aws], tuple[str, str]]  # -> (resource type, resource id)
    fix: Callable[[Aws, str], None]
    cleanup: Callable[[Aws, str], None] | None = None


def _imds_setup(aws: Aws) -> tuple[str, str]:
    return "AWS::EC2::Instance", new_instance(aws.ec2)


def _subnet_setup(aws: Aws) -> tuple[str, str]:
    _, subnet = new_subnet(aws.ec2)
    aws.ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
    return "AWS::EC2::Subnet", subnet


def _default_sg_setup(aws: Aws) -> tuple[str, str]:
    return "AWS::EC2::SecurityGroup", default_group(aws.ec2, new_vpc(aws.ec2))["GroupId"]


def _close_group(aws: Aws, group: str) -> None:
    g = aws.ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]
    if g["IpPermissions"]:
        aws.ec2.revoke_security_group_ingress(GroupId=group, IpPermissions=g["IpPermissions"])
    if g["IpPermissionsEgress"]:
        aws.ec2.revoke_security_group_egress(GroupId=group, IpPermissions=g["IpPermissionsEgress"])


def _ssl_policy(bucket: str, resources: list[str]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "AllowRead", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{MOTO_ACCOUNT}:root"},
         "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Sid": "AllowSSLRequestsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": resources,
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ]})  # fmt: skip


def _ssl_setup(aws: Aws) -> tuple[str, str]:
    bucket = new_bucket(aws.s3)
    # Denies HTTP for the objects only, not for the bucket itself: still NON_COMPLIANT.
    aws.s3.put_bucket_policy(Bucket=bucket, Policy=_ssl_policy(bucket, [f"arn:aws:s3:::{bucket}/*"]))
    return "AWS::S3::Bucket", bucket


def _ssl_fix(aws: Aws, bucket: str) -> None:
    both = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    aws.s3.put_bucket_policy(Bucket=bucket, Policy=_ssl_policy(bucket, both))


def _bucket_setup(aws: Aws) -> tuple[str, str]:
    return "AWS::S3::Bucket", new_bucket(aws.s3)


def _pab_setup(aws: Aws) -> tuple[str, str]:
    bucket = new_bucket(aws.s3)
    aws.s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": False})
    return "AWS::S3::Bucket", bucket


def _pab_fix(aws: Aws, bucket: str) -> None:
    aws.s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})


def _deleting_key_setup(aws: Aws) -> tuple[str, str]:
    key = aws.kms.create_key()["KeyMetadata"]["KeyId"]
    aws.kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    return "AWS::KMS::Key", key


def _key_setup(aws: Aws) -> tuple[str, str]:
    return "AWS::KMS::Key", aws.kms.create_key()["KeyMetadata"]["KeyId"]


def _ebs_setup(aws: Aws) -> tuple[str, str]:
    aws.ec2.disable_ebs_encryption_by_default()
    return "AWS::::Account", MOTO_ACCOUNT


def _repository_setup(aws: Aws) -> tuple[str, str]:
    name = f"team/{uuid.uuid4().hex[:8]}"  # Config keys a repository by its name, slash and all
    aws.ecr.create_repository(repositoryName=name, imageScanningConfiguration={"scanOnPush": False})
    return "AWS::ECR::Repository", name


CASES = [
    Case("EC2_IMDSV2_CHECK", _imds_setup,
         lambda aws, i: aws.ec2.modify_instance_metadata_options(InstanceId=i, HttpTokens="required")),
    Case("SUBNET_AUTO_ASSIGN_PUBLIC_IP_DISABLED", _subnet_setup,
         lambda aws, s: aws.ec2.modify_subnet_attribute(SubnetId=s, MapPublicIpOnLaunch={"Value": False})),
    Case("VPC_DEFAULT_SECURITY_GROUP_CLOSED", _default_sg_setup, _close_group),
    Case("S3_BUCKET_SSL_REQUESTS_ONLY", _ssl_setup, _ssl_fix),
    Case("S3_BUCKET_VERSIONING_ENABLED", _bucket_setup,
         lambda aws, b: aws.s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})),
    Case("S3_BUCKET_SERVER_SIDE_ENCRYPTION_ENABLED", _bucket_setup,
         lambda aws, b: aws.s3.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration={
             "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})),
    Case("S3_BUCKET_LEVEL_PUBLIC_ACCESS_PROHIBITED", _pab_setup, _pab_fix),
    Case("KMS_CMK_NOT_SCHEDULED_FOR_DELETION", _deleting_key_setup,
         lambda aws, k: aws.kms.cancel_key_deletion(KeyId=k)),
    Case("CMK_BACKING_KEY_ROTATION_ENABLED", _key_setup, lambda aws, k: aws.kms.enable_key_rotation(KeyId=k)),
    Case("EC2_EBS_ENCRYPTION_BY_DEFAULT", _ebs_setup, lambda aws, _: aws.ec2.enable_ebs_encryption_by_default(),
         cleanup=lambda aws, _: aws.ec2.disable_ebs_encryption_by_default()),
    Case("ECR_PRIVATE_IMAGE_SCANNING_ENABLED", _repository_setup,
         lambda aws, r: aws.ecr.put_image_scanning_configuration(
             repositoryName=r, imageScanningConfiguration={"scanOnPush": True})),
]  # fmt: skip


def test_every_managed_rule_has_a_case():
    assert sorted(c.identifier for c in CASES) == sorted(MANAGED_RULES)


@pytest.mark.parametrize("case", CASES, ids=[c.identifier for c in CASES])
def test_rule_is_non_compliant_until_the_real_fix(case: Case, aws, cfg):
    name = security_hub_rule_name(case.identifier.lower().replace("_", "-"))
    put_rule(cfg, name, case.identifier)
    rtype, rid = case.setup(aws)
    try:
        started, statuses = evaluate(cfg, name)
        assert "LastErrorCode" not in statuses[0]
        verdict, annotation = compliance(cfg, name, rtype, rid, started)
        assert verdict == "NON_COMPLIANT"
        assert annotation

        case.fix(aws, rid)
        started, _ = evaluate(cfg, name)
        assert compliance(cfg, name, rtype, rid, started) == ("COMPLIANT", None)
    finally:
        if case.cleanup:
            case.cleanup(aws, rid)


def test_default_security_group_rule_ignores_other_groups(aws, cfg):
    vpc = new_vpc(aws.ec2)
    other = aws.ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    name = security_hub_rule_name("vpc-default-security-group-closed")
    put_rule(cfg, name, "VPC_DEFAULT_SECURITY_GROUP_CLOSED")
    started, _ = evaluate(cfg, name)
    assert compliance(cfg, name, "AWS::EC2::SecurityGroup", other, started)[0] == "NOT_APPLICABLE"
    default = default_group(aws.ec2, vpc)["GroupId"]
    assert compliance(cfg, name, "AWS::EC2::SecurityGroup", default, started)[0] == "NON_COMPLIANT"
    # Filtering by compliance, and paging through every group one at a time.
    everything = results_by_rule(cfg, name)
    assert len(everything) >= 3
    assert results_by_rule(cfg, name, PaginationConfig={"PageSize": 1}) == everything
    failing = results_by_rule(cfg, name, ComplianceTypes=["NON_COMPLIANT"])
    assert failing and {r["ComplianceType"] for r in failing} == {"NON_COMPLIANT"}
    assert len(failing) < len(everything)


def test_evaluation_reads_moto_when_it_completes(moto, aws):
    iid = new_instance(aws.ec2)
    with ConfigServer(moto.url, evaluation_delay=1.0) as slow:
        config = _client("config", slow.url)
        name = security_hub_rule_name("ec2-imdsv2-check")
        put_rule(config, name, "EC2_IMDSV2_CHECK")
        started = time.time()
        config.start_config_rules_evaluation(ConfigRuleNames=[name])
        aws.ec2.modify_instance_metadata_options(InstanceId=iid, HttpTokens="required")  # fixed while it runs
        fixed = time.time()
        assert time.time() - started < 1.0, "the fix must land before the evaluation completes"
        while not (s := config.describe_config_rule_evaluation_status(ConfigRuleNames=[name])
                   ["ConfigRulesEvaluationStatus"][0]).get("LastSuccessfulEvaluationTime"):
            time.sleep(0.05)
        assert s["LastSuccessfulEvaluationTime"].timestamp() >= started + 1.0
        result = config.get_compliance_details_by_resource(
            ResourceType="AWS::EC2::Instance", ResourceId=iid)["EvaluationResults"]
        assert [r["ComplianceType"] for r in result] == ["COMPLIANT"]
        assert result[0]["ResultRecordedTime"].timestamp() > fixed


def test_rule_has_no_results_before_any_evaluation(cfg):
    name = security_hub_rule_name("s3-bucket-versioning-enabled")
    put_rule(cfg, name, "S3_BUCKET_VERSIONING_ENABLED")
    assert cfg.get_compliance_details_by_config_rule(ConfigRuleName=name)["EvaluationResults"] == []
    status = cfg.describe_config_rule_evaluation_status(ConfigRuleNames=[name])["ConfigRulesEvaluationStatus"]
    assert len(status) == 1
    assert status[0]["FirstEvaluationStarted"] is False
    assert "LastSuccessfulEvaluationTime" not in status[0] and "LastFailedEvaluationTime" not in status[0]


def test_describe_config_rules(cfg, server):
    name = security_hub_rule_name("ec2-imdsv2-check", "a1b2c3")
    put_rule(cfg, name, "EC2_IMDSV2_CHECK", Scope={"ComplianceResourceTypes": ["AWS::EC2::Instance"]})
    [rule] = cfg.describe_config_rules(ConfigRuleNames=[name])["ConfigRules"]
    assert rule["ConfigRuleName"] == name
    assert rule["ConfigRuleId"].startswith("config-rule-")
    assert rule["ConfigRuleArn"] == f"arn:aws:config:{REGION}:{MOTO_ACCOUNT}:config-rule/{rule['ConfigRuleId']}"
    assert rule["Source"] == {"Owner": "AWS", "SourceIdentifier": "EC2_IMDSV2_CHECK"}
    assert rule["Scope"] == {"ComplianceResourceTypes": ["AWS::EC2::Instance"]}
    assert rule["ConfigRuleState"] == "ACTIVE"
    assert rule["CreatedBy"] == "securityhub.amazonaws.com"
    # Putting it again updates it in place: same id and ARN.
    put_rule(cfg, name, "EC2_IMDSV2_CHECK")
    [again] = cfg.describe_config_rules(ConfigRuleNames=[name])["ConfigRules"]
    assert (again["ConfigRuleId"], again["ConfigRuleArn"]) == (rule["ConfigRuleId"], rule["ConfigRuleArn"])
    assert "Scope" not in again
    assert server.rules(MOTO_ACCOUNT, REGION)[name] == again


def test_describe_config_rules_pages(server):
    # Another Region of the same account: its own set of rules.
    config = _client("config", server.url, region="eu-west-1")
    names = sorted(f"rule-{i:02d}" for i in range(30))
    for n in names:
        put_rule(config, n, "EC2_IMDSV2_CHECK")
    first = config.describe_config_rules()
    assert len(first["ConfigRules"]) == 25 and first["NextToken"]
    pages = config.get_paginator("describe_config_rules").paginate()
    assert [r["ConfigRuleName"] for p in pages for r in p["ConfigRules"]] == names


def test_scope_limits_the_evaluation_to_one_resource(aws, cfg):
    inside, outside = new_instance(aws.ec2), new_instance(aws.ec2)
    name = security_hub_rule_name("ec2-imdsv2-check")
    put_rule(cfg, name, "EC2_IMDSV2_CHECK",
             Scope={"ComplianceResourceTypes": ["AWS::EC2::Instance"], "ComplianceResourceId": inside})
    evaluate(cfg, name)
    results = results_by_rule(cfg, name)
    assert [(qualifier(r)["ResourceId"], r["ComplianceType"]) for r in results] == [(inside, "NON_COMPLIANT")]
    assert all(qualifier(r)["ConfigRuleName"] != name for r in cfg.get_compliance_details_by_resource(
        ResourceType="AWS::EC2::Instance", ResourceId=outside)["EvaluationResults"])


def test_unsupported_managed_rule_fails_its_evaluation(cfg):
    name = security_hub_rule_name("iam-password-policy")
    put_rule(cfg, name, "IAM_PASSWORD_POLICY")
    started, [status] = evaluate(cfg, name)
    assert status["LastFailedEvaluationTime"].timestamp() > started
    assert "LastSuccessfulEvaluationTime" not in status
    assert status["LastErrorCode"] == "UnsupportedRule"
    assert "IAM_PASSWORD_POLICY" in status["LastErrorMessage"]
    assert cfg.get_compliance_details_by_config_rule(ConfigRuleName=name)["EvaluationResults"] == []


def test_server_helpers_put_rule_and_evaluate_now(aws, cfg, server):
    iid = new_instance(aws.ec2, MetadataOptions={"HttpTokens": "required"})
    name = security_hub_rule_name("ec2-imdsv2-check")
    described = server.put_rule(MOTO_ACCOUNT, REGION, name, "EC2_IMDSV2_CHECK")
    assert cfg.describe_config_rules(ConfigRuleNames=[name])["ConfigRules"] == [described]
    results = server.evaluate_now(MOTO_ACCOUNT, REGION, name)
    mine = [r for r in results if qualifier(r)["ResourceId"] == iid]
    assert [r["ComplianceType"] for r in mine] == ["COMPLIANT"]
    # The API answers the same results, with the same timestamps.
    api = [r for r in results_by_rule(cfg, name) if qualifier(r)["ResourceId"] == iid]
    assert api[0]["ResultRecordedTime"].timestamp() == pytest.approx(mine[0]["ResultRecordedTime"], abs=0.001)


# --------------------------------------------------------------------------- accounts


@pytest.fixture(scope="module")
def other(moto, server) -> Aws:
    """Clients acting in account 111111111111 through an assumed role's credentials."""
    creds = _client("sts", moto.url).assume_role(
        RoleArn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/SecurityAudit", RoleSessionName="config-tests")["Credentials"]
    return Aws(_client("ec2", moto.url, creds=creds), _client("s3", moto.url, creds=creds),
               _client("kms", moto.url, creds=creds), _client("config", server.url, creds=creds),
               _client("ecr", moto.url, creds=creds))


def test_accounts_are_isolated(aws, other, server):
    theirs = new_instance(other.ec2)
    their_bucket = new_bucket(other.s3)
    mine = new_instance(aws.ec2)

    assert get_items(aws.config, ("AWS::EC2::Instance", theirs), ("AWS::S3::Bucket", their_bucket)) == {}
    item = get_item(other.config, "AWS::EC2::Instance", theirs)
    assert item["accountId"] == OTHER_ACCOUNT
    assert item["arn"] == f"arn:aws:ec2:{REGION}:{OTHER_ACCOUNT}:instance/{theirs}"
    assert get_item(other.config, "AWS::S3::Bucket", their_bucket)["accountId"] == OTHER_ACCOUNT
    assert server.requests[-1].account == OTHER_ACCOUNT and server.requests[-1].region == REGION

    name = security_hub_rule_name("ec2-imdsv2-check")
    put_rule(other.config, name, "EC2_IMDSV2_CHECK")
    with pytest.raises(ClientError) as e:
        aws.config.describe_config_rules(ConfigRuleNames=[name])
    assert e.value.response["Error"]["Code"] == "NoSuchConfigRuleException"
    started, _ = evaluate(other.config, name)
    evaluated = {qualifier(r)["ResourceId"] for r in results_by_rule(other.config, name)}
    assert theirs in evaluated and mine not in evaluated
    assert compliance(other.config, name, "AWS::EC2::Instance", theirs, started)[0] == "NON_COMPLIANT"
    assert aws.config.get_compliance_details_by_resource(
        ResourceType="AWS::EC2::Instance", ResourceId=theirs)["EvaluationResults"] == []
    # evaluate_now finds the account's key from its requests.
    assert {qualifier(r)["ResourceId"] for r in server.evaluate_now(OTHER_ACCOUNT, REGION, name)} == evaluated


# --------------------------------------------------------------------------- errors and wire


def error_of(excinfo) -> tuple[str, int, str]:
    r = excinfo.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Message"]


def test_unknown_rule_is_no_such_config_rule(cfg):
    calls = [
        lambda: cfg.start_config_rules_evaluation(ConfigRuleNames=["no-such-rule"]),
        lambda: cfg.describe_config_rules(ConfigRuleNames=["no-such-rule"]),
        lambda: cfg.describe_config_rule_evaluation_status(ConfigRuleNames=["no-such-rule"]),
        lambda: cfg.get_compliance_details_by_config_rule(ConfigRuleName="no-such-rule"),
    ]
    for call in calls:
        with pytest.raises(ClientError) as e:
            call()
        code, status, message = error_of(e)
        assert (code, status) == ("NoSuchConfigRuleException", 400)
        assert "no-such-rule" in message


def test_unsupported_type_and_too_many_keys_are_validation_errors(cfg):
    with pytest.raises(ClientError) as e:
        cfg.batch_get_resource_config(resourceKeys=[{"resourceType": "AWS::IAM::Role", "resourceId": "AROAEXAMPLE"}])
    code, status, message = error_of(e)
    assert (code, status) == ("ValidationException", 400)
    assert "AWS::IAM::Role" in message and all(t in message for t in SUPPORTED_RESOURCE_TYPES)

    keys = [{"resourceType": "AWS::EC2::Instance", "resourceId": f"i-{n:017x}"} for n in range(101)]
    with pytest.raises(ClientError) as e:
        cfg.batch_get_resource_config(resourceKeys=keys)
    code, status, message = error_of(e)
    assert (code, status) == ("ValidationException", 400)
    assert "100" in message
    assert cfg.batch_get_resource_config(resourceKeys=keys[:100])["baseConfigurationItems"] == []


def test_second_start_while_evaluating_is_limit_exceeded(cfg):
    name = security_hub_rule_name("subnet-auto-assign-public-ip-disabled")
    put_rule(cfg, name, "SUBNET_AUTO_ASSIGN_PUBLIC_IP_DISABLED")
    cfg.start_config_rules_evaluation(ConfigRuleNames=[name])
    with pytest.raises(ClientError) as e:
        cfg.start_config_rules_evaluation(ConfigRuleNames=[name])
    assert error_of(e)[:2] == ("LimitExceededException", 400)
    deadline = time.monotonic() + 10
    while not cfg.describe_config_rule_evaluation_status(ConfigRuleNames=[name])["ConfigRulesEvaluationStatus"][0].get(
            "LastSuccessfulEvaluationTime"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    evaluate(cfg, name)  # and once it has finished, it can be started again


def test_injected_fault_is_answered_once_and_recorded(cfg, server):
    server.fail_next("BatchGetResourceConfig", 400, "ThrottlingException", "Rate exceeded")
    keys = [{"resourceType": "AWS::EC2::Instance", "resourceId": "i-0123456789abcdef0"}]
    with pytest.raises(ClientError) as e:
        cfg.batch_get_resource_config(resourceKeys=keys)
    assert error_of(e) == ("ThrottlingException", 400, "Rate exceeded")
    failed = server.requests[-1]
    assert (failed.operation, failed.status, failed.error_type) == ("BatchGetResourceConfig", 400, "ThrottlingException")
    assert failed.body == {"resourceKeys": keys}
    assert cfg.batch_get_resource_config(resourceKeys=keys)["baseConfigurationItems"] == []


def raw_request(server: ConfigServer, target: str | None, body: object, *, signed: bool = True):
    """One hand-made request: (status, lower-case headers, JSON body)."""
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    if target:
        headers["X-Amz-Target"] = target
    if signed:  # moto does not check signatures; the server reads only the key id and scope
        headers["Authorization"] = ("AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/config/aws4_request, "
                                    "SignedHeaders=host;x-amz-date, Signature=0")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("POST", "/", body=json.dumps(body).encode(), headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def test_wire_format(server):
    status, headers, body = raw_request(server, "StarlingDoveService.DescribeConfigRules", {})
    assert status == 200
    assert headers["content-type"] == "application/x-amz-json-1.1"
    assert headers["x-amzn-requestid"]
    assert isinstance(body["ConfigRules"], list)

    status, headers, body = raw_request(server, "StarlingDoveService.GetComplianceDetailsByConfigRule",
                                        {"ConfigRuleName": "missing"})
    assert status == 400
    assert headers["x-amzn-errortype"] == "NoSuchConfigRuleException"
    assert body["__type"] == "NoSuchConfigRuleException" and "missing" in body["message"]

    status, headers, body = raw_request(server, "StarlingDoveService.DescribeDeliveryChannels", {})
    assert (status, body["__type"]) == (400, "UnknownOperationException")

    status, headers, body = raw_request(server, "StarlingDoveService.DescribeConfigRules", {}, signed=False)
    assert (status, body["__type"]) == (400, "MissingAuthenticationTokenException")


def test_standalone(moto):
    with standalone("tests.servers.config_service", "--moto-url", moto.url, "--port", "0") as url:
        assert url.startswith("http://127.0.0.1:")
        config = _client("config", url)
        put_rule(config, "standalone-rule", "EC2_EBS_ENCRYPTION_BY_DEFAULT")
        assert [r["ConfigRuleName"] for r in config.describe_config_rules()["ConfigRules"]] == ["standalone-rule"]
