"""A small AWS Config server for tests: configuration items and managed-rule
evaluations computed from moto's live state.

Why our own: moto's AWS Config has no configuration items
(BatchGetResourceConfig) and never evaluates a rule.  The kernel needs both:
before a remediation it reads the resource's current configuration item (to
record it, and to notice drift through `configurationStateId`), and after it
re-runs the control's Config rule and requires COMPLIANT for the resource.  This
server answers those calls by reading moto through boto3 at the moment it is
asked, so a remediation that did not really change moto's state fails
verification here as it would against AWS.

Wire protocol: awsJson1.1, as described by botocore's service model
(botocore/data/config/2014-11-12/service-2.json.gz): POST /, header
`X-Amz-Target: StarlingDoveService.<Operation>`, JSON body, answers with
`Content-Type: application/x-amz-json-1.1`; timestamps are epoch seconds
(numbers).  Member names are exactly the model's, which mixes cases: the
configuration-item shapes are lowerCamelCase (`resourceKeys`,
`baseConfigurationItems`, `configurationStateId`), the rule shapes PascalCase
(`ConfigRuleNames`, `EvaluationResults`).

    BatchGetResourceConfig              {resourceKeys} -> {baseConfigurationItems, unprocessedResourceKeys}
    PutConfigRule                       {ConfigRule} -> {}
    DescribeConfigRules                 {ConfigRuleNames?, NextToken?} -> {ConfigRules, NextToken?}
    StartConfigRulesEvaluation          {ConfigRuleNames} -> {}
    DescribeConfigRuleEvaluationStatus  {ConfigRuleNames?, Limit?, NextToken?} -> {ConfigRulesEvaluationStatus, NextToken?}
    GetComplianceDetailsByConfigRule    {ConfigRuleName, ComplianceTypes?, Limit?, NextToken?}
                                        -> {EvaluationResults, NextToken?}
    GetComplianceDetailsByResource      {ResourceType, ResourceId, ComplianceTypes?} -> {EvaluationResults}

Errors are HTTP 400 with the code in the `x-amzn-ErrorType` header and a body
{"__type": code, "message": ...}, which is where both botocore and the AWS SDK
for Rust read an awsJson error's code.

Whose account: the caller's access key id, taken from the SigV4
`Authorization` header (Credential=AKID/date/REGION/config/aws4_request), is
used, with any secret, for the boto3 clients that read moto.  moto does not
check signatures and maps an assumed-role key to the role's account, so those
clients act in the caller's account; the account id itself comes from moto's
sts:GetCallerIdentity for that key.  The Region is the credential scope's.
Rules, evaluation results and configuration-item history are kept per
(account, Region).

Configuration items (BatchGetResourceConfig) are built like Config's own:
`configuration` is a JSON string of the resource's Describe* answer with
lowerCamelCase keys and ISO 8601 timestamps, `supplementaryConfiguration` maps
names to JSON strings.  Supported types:

    AWS::EC2::Instance       describe_instances (terminated instances are gone)
    AWS::EC2::Subnet         describe_subnets
    AWS::EC2::SecurityGroup  describe_security_groups; permissions as Config writes
                             them: ipRanges (CIDR strings) and ipv4Ranges ({cidrIp})
    AWS::S3::Bucket          configuration {name, owner, creationDate, region};
                             supplementary BucketPolicy {policyText},
                             BucketVersioningConfiguration {status Off|Enabled|Suspended,
                             isMfaDeleteEnabled}, ServerSideEncryptionConfiguration
                             {rules} and PublicAccessBlockConfiguration (each only
                             when configured); only buckets the caller's account
                             owns in the request's Region
    AWS::KMS::Key            describe_key's KeyMetadata; supplementary
                             KeyRotationStatus {keyRotationEnabled} for customer
                             symmetric keys (this stand-in's own addition: it makes
                             enabling rotation change the configurationStateId)

A resource that does not exist is left out of `baseConfigurationItems`, as
Config leaves out deleted resources; another type is a ValidationException.
`configurationStateId` is a millisecond timestamp string, like Config's, that
changes exactly when the item's configuration or supplementary configuration
changes between two observations (reads or evaluations); the item's
`configurationItemCaptureTime` is when that change was first observed.

Rules: PutConfigRule stores any rule (Security Hub names its rules
`securityhub-<rule-name>-<suffix>`; those get CreatedBy
securityhub.amazonaws.com).  Nothing is evaluated until
StartConfigRulesEvaluation (or `evaluate_now`): the evaluation completes
`evaluation_delay` seconds later on a timer, reading moto at completion, and
replaces the rule's results (a resource that no longer exists loses its result).
While one runs, another StartConfigRulesEvaluation for the same rule is a
LimitExceededException, as documented; Config's once-a-minute limit is not
enforced.  The rule's Scope (ComplianceResourceTypes, ComplianceResourceId) is
honoured; TagKey/TagValue and InputParameters are ignored.  Managed rules
evaluated (anything else fails the evaluation: LastFailedEvaluationTime,
LastErrorCode "UnsupportedRule", no results):

    EC2_IMDSV2_CHECK                          instances: COMPLIANT iff httpTokens == required
    SUBNET_AUTO_ASSIGN_PUBLIC_IP_DISABLED     subnets: COMPLIANT iff not mapPublicIpOnLaunch
    VPC_DEFAULT_SECURITY_GROUP_CLOSED         groups named "default": COMPLIANT iff no inbound
                                              and no outbound rule; other groups NOT_APPLICABLE
    S3_BUCKET_SSL_REQUESTS_ONLY               COMPLIANT iff the policy has a Deny for every
                                              principal, s3:* (or *), on the bucket and its
                                              objects, with Bool aws:SecureTransport "false"
    S3_BUCKET_VERSIONING_ENABLED              COMPLIANT iff versioning status Enabled
    S3_BUCKET_SERVER_SIDE_ENCRYPTION_ENABLED  COMPLIANT iff default encryption is configured
    S3_BUCKET_LEVEL_PUBLIC_ACCESS_PROHIBITED  COMPLIANT iff all four bucket-level flags are true
    KMS_CMK_NOT_SCHEDULED_FOR_DELETION        customer keys: COMPLIANT iff not PendingDeletion
    CMK_BACKING_KEY_ROTATION_ENABLED          customer symmetric AWS_KMS keys not pending
                                              deletion: COMPLIANT iff rotation is enabled
    EC2_EBS_ENCRYPTION_BY_DEFAULT             AWS::::Account (resource id = account id):
                                              COMPLIANT iff EBS encryption by default is on

OrderingTimestamp is, as in Config, the configuration item's capture time for
change-triggered rules and the invocation time for the periodic ones (the KMS
and EBS rules); ResultRecordedTime and ConfigRuleInvokedTime are always from
the evaluation itself, so they are later than the StartConfigRulesEvaluation
call.  FirstEvaluationStarted becomes true when an evaluation has finished.

Where moto differs from AWS (checked with moto 5.2.5), and what this server does:
- S3 default encryption: AWS has applied SSE-S3 to every bucket since January
  2023 and GetBucketEncryption reports it; moto reports no configuration
  (ServerSideEncryptionConfigurationNotFoundError) until put_bucket_encryption.
  The item and S3_BUCKET_SERVER_SIDE_ENCRYPTION_ENABLED follow moto, so a new
  bucket is NON_COMPLIANT here although it would be COMPLIANT on AWS.
- A VPC's default security group in moto has the allow-all outbound rule but
  not AWS's inbound rule from the group itself.
- An instance launched without security groups lists none in moto's
  SecurityGroups (its network interface has the VPC's default group); the item
  takes the network interfaces' groups then.
- After modify_instance_metadata_options moto keeps only State, HttpTokens and
  HttpPutResponseHopLimit; the item fills the missing members with EC2's
  defaults (httpEndpoint enabled, httpProtocolIpv6 disabled, instanceMetadataTags
  disabled).
- moto's S3 bucket names are global across accounts (any account's key can read
  any bucket); buckets are matched to the caller through list_buckets.

Test helpers: `put_rule(account, region, name, source_identifier)` stores a
rule directly and `evaluate_now(account, region, name)` evaluates it at once
(reading moto with the access key last seen for that account, or moto's
default key for moto's default account).  `fail_next`, `requests` and `counts`
are LocalServer's; each recorded request also carries `account` and `region`.

Standalone:  python -m tests.servers.config_service --moto-url http://127.0.0.1:PORT --port 0
prints the URL as its first line and serves until killed.

Standard library and boto3 only; binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import json
import re
import secrets
import string
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from .http import Handler, LocalServer, RecordedRequest as _RecordedRequest, ServiceError, parse_json, serve_until_signalled
from .moto import DUMMY_CREDENTIALS, MOTO_ACCOUNT

__all__ = [
    "ConfigServer",
    "RecordedRequest",
    "ServiceError",
    "MANAGED_RULES",
    "SUPPORTED_RESOURCE_TYPES",
    "security_hub_rule_name",
]

TARGET_PREFIX = "StarlingDoveService."
CONTENT_TYPE = "application/x-amz-json-1.1"

BATCH_GET_RESOURCE_CONFIG = "BatchGetResourceConfig"
PUT_CONFIG_RULE = "PutConfigRule"
DESCRIBE_CONFIG_RULES = "DescribeConfigRules"
START_CONFIG_RULES_EVALUATION = "StartConfigRulesEvaluation"
DESCRIBE_CONFIG_RULE_EVALUATION_STATUS = "DescribeConfigRuleEvaluationStatus"
GET_COMPLIANCE_DETAILS_BY_CONFIG_RULE = "GetComplianceDetailsByConfigRule"
GET_COMPLIANCE_DETAILS_BY_RESOURCE = "GetComplianceDetailsByResource"
OPERATIONS = frozenset({
    BATCH_GET_RESOURCE_CONFIG, PUT_CONFIG_RULE, DESCRIBE_CONFIG_RULES, START_CONFIG_RULES_EVALUATION,
    DESCRIBE_CONFIG_RULE_EVALUATION_STATUS, GET_COMPLIANCE_DETAILS_BY_CONFIG_RULE,
    GET_COMPLIANCE_DETAILS_BY_RESOURCE,
})  # fmt: skip

INSTANCE = "AWS::EC2::Instance"
SUBNET = "AWS::EC2::Subnet"
SECURITY_GROUP = "AWS::EC2::SecurityGroup"
BUCKET = "AWS::S3::Bucket"
KMS_KEY = "AWS::KMS::Key"
ECR_REPOSITORY = "AWS::ECR::Repository"
ACCOUNT = "AWS::::Account"  # what account-level rules report; not a Config resource type
SUPPORTED_RESOURCE_TYPES = (INSTANCE, SUBNET, SECURITY_GROUP, BUCKET, KMS_KEY, ECR_REPOSITORY)

ITEM_VERSION = "1.3"
# Model limits: ResourceKeys 1..100, ReevaluateConfigRuleNames 1..25,
# ComplianceTypes 0..3, Limit 0..100 (default 10), RuleLimit 0..50.
MAX_RESOURCE_KEYS = 100
MAX_EVALUATE_RULES = 25
MAX_DETAILS_LIMIT = 100
DEFAULT_DETAILS_LIMIT = 10
MAX_STATUS_LIMIT = 50
DESCRIBE_RULES_PAGE = 25  # DescribeConfigRules answers up to 25 rules a page
COMPLIANCE_TYPES = ("COMPLIANT", "NON_COMPLIANT", "NOT_APPLICABLE", "INSUFFICIENT_DATA")
SECURITY_HUB_PRINCIPAL = "securityhub.amazonaws.com"

# "Credential=AKID/20240101/us-east-1/config/aws4_request"
CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")

# EC2's defaults for members moto drops from MetadataOptions after a modify.
METADATA_DEFAULTS = {
    "state": "applied",
    "httpTokens": "optional",
    "httpPutResponseHopLimit": 1,
    "httpEndpoint": "enabled",
    "httpProtocolIpv6": "disabled",
    "instanceMetadataTags": "disabled",
}


@dataclass
class RecordedRequest(_RecordedRequest):
    """A request as received, with the caller's account and Region (None until known)."""

    account: str | None = None
    region: str | None = None


# --------------------------------------------------------------------------- errors


def _validation(message: str) -> ServiceError:
    return ServiceError(400, "ValidationException", message)


def _invalid(message: str) -> ServiceError:
    return ServiceError(400, "InvalidParameterValueException", message)


def _no_such_rule(name: str) -> ServiceError:
    # Config's own wording for an unknown rule name.
    return ServiceError(
        400, "NoSuchConfigRuleException",
        f"The ConfigRule '{name}' provided in the request is invalid. Please check the configRule name.",
    )  # fmt: skip


# --------------------------------------------------------------------------- values


def _now() -> float:
    return round(time.time(), 3)


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return round(value.timestamp(), 3)
    return None


def _iso(dt: datetime) -> str:
    """ISO 8601 as Config writes timestamps inside `configuration` (ms, Z)."""
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _camel(value: Any) -> Any:
    """A boto3 answer as Config writes it in `configuration`: keys with a
    lower-case first letter, timestamps as ISO 8601 strings."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _camel(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    if isinstance(value, datetime):
        return _iso(value)
    return value


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=False)


def _digest(configuration: dict, supplementary: dict) -> str:
    text = json.dumps({"c": configuration, "s": supplementary}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _offset(token: Any) -> int:
    if token in (None, ""):
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(str(token).encode()))["offset"]
        if isinstance(offset, int) and offset >= 0:
            return offset
    except (ValueError, KeyError, TypeError):
        pass
    raise ServiceError(400, "InvalidNextTokenException", "The specified next token is invalid.")


def _page(items: list, token: Any, size: int) -> tuple[list, str | None]:
    start = _offset(token)
    page = items[start : start + size]
    return page, (_token(start + size) if start + size < len(items) else None)


def security_hub_rule_name(rule: str, suffix: str | None = None) -> str:
    """A name like Security Hub gives its service-linked rules:
    security_hub_rule_name("ec2-imdsv2-check") -> "securityhub-ec2-imdsv2-check-a1b2c3"."""
    suffix = suffix or "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(6))
    return f"securityhub-{rule}-{suffix}"


# --------------------------------------------------------------------------- resources


@dataclass
class Snapshot:
    """One resource as read from moto: what its configuration item and rule
    evaluations are built from."""

    resource_type: str
    resource_id: str
    arn: str
    configuration: dict
    supplementary: dict[str, Any] = field(default_factory=dict)  # name -> value (JSON-encoded on the wire)
    resource_name: str | None = None
    availability_zone: str | None = None
    created: float | None = None  # epoch seconds


@dataclass(frozen=True)
class Caller:
    account: str
    region: str
    access_key: str


def _error_code(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def _sg_permission(p: dict) -> dict:
    """One IpPermission as Config writes it: both `ipv4Ranges` ({cidrIp}) and the
    older `ipRanges` (bare CIDR strings), and every list present even when empty."""
    out: dict[str, Any] = {"ipProtocol": p.get("IpProtocol")}
    if "FromPort" in p:
        out["fromPort"] = p["FromPort"]
    if "ToPort" in p:
        out["toPort"] = p["ToPort"]
    out["ipv6Ranges"] = _camel(p.get("Ipv6Ranges") or [])
    out["prefixListIds"] = _camel(p.get("PrefixListIds") or [])
    out["userIdGroupPairs"] = _camel(p.get("UserIdGroupPairs") or [])
    out["ipv4Ranges"] = _camel(p.get("IpRanges") or [])
    out["ipRanges"] = [r["CidrIp"] for r in p.get("IpRanges") or [] if "CidrIp" in r]
    return out


class MotoReader:
    """Reads one caller's resources from moto (boto3 clients are cached per key and Region)."""

    def __init__(self, server: "ConfigServer", caller: Caller):
        self.server = server
        self.caller = caller

    def client(self, service: str) -> Any:
        return self.server._moto_client(service, self.caller.access_key, self.caller.region)

    def read(self, resource_type: str, ids: list[str] | None = None) -> list[Snapshot]:
        """Snapshots of the resources of `resource_type` (only `ids` if given) that exist."""
        reader = {
            INSTANCE: self.instances, SUBNET: self.subnets, SECURITY_GROUP: self.security_groups,
            BUCKET: self.buckets, KMS_KEY: self.kms_keys, ECR_REPOSITORY: self.ecr_repositories,
            ACCOUNT: self.account,
        }[resource_type]  # fmt: skip
        if ids is not None and not ids:
            return []
        return reader(ids)

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.caller.region}:{self.caller.account}:{resource}"

    def instances(self, ids: list[str] | None) -> list[Snapshot]:
        kwargs = {"Filters": [{"Name": "instance-id", "Values": ids}]} if ids else {}
        out = []
        for page in self.client("ec2").get_paginator("describe_instances").paginate(**kwargs):
            for reservation in page["Reservations"]:
                for inst in reservation["Instances"]:
                    if inst.get("State", {}).get("Name") == "terminated":
                        continue  # Config has deleted it
                    conf = _camel(inst)
                    conf["metadataOptions"] = {**METADATA_DEFAULTS, **conf.get("metadataOptions", {})}
                    if not conf.get("securityGroups"):
                        groups: dict[str, dict] = {}
                        for eni in inst.get("NetworkInterfaces") or []:
                            for g in eni.get("Groups") or []:
                                group = {"groupName": g.get("GroupName"), "groupId": g["GroupId"]}
                                groups.setdefault(g["GroupId"], group)
                        conf["securityGroups"] = list(groups.values())
                    out.append(Snapshot(
                        INSTANCE, inst["InstanceId"], self._arn("ec2", f"instance/{inst['InstanceId']}"), conf,
                        availability_zone=inst.get("Placement", {}).get("AvailabilityZone"),
                        created=_epoch(inst.get("LaunchTime")),
                    ))  # fmt: skip
        return out

    def subnets(self, ids: list[str] | None) -> list[Snapshot]:
        kwargs = {"Filters": [{"Name": "subnet-id", "Values": ids}]} if ids else {}
        out = []
        for page in self.client("ec2").get_paginator("describe_subnets").paginate(**kwargs):
            for s in page["Subnets"]:
                out.append(Snapshot(
                    SUBNET, s["SubnetId"], s.get("SubnetArn") or self._arn("ec2", f"subnet/{s['SubnetId']}"),
                    _camel(s), availability_zone=s.get("AvailabilityZone"),
                ))  # fmt: skip
        return out

    def security_groups(self, ids: list[str] | None) -> list[Snapshot]:
        kwargs = {"Filters": [{"Name": "group-id", "Values": ids}]} if ids else {}
        out = []
        for page in self.client("ec2").get_paginator("describe_security_groups").paginate(**kwargs):
            for g in page["SecurityGroups"]:
                conf = {
                    "description": g.get("Description"),
                    "groupName": g["GroupName"],
                    "ipPermissions": [_sg_permission(p) for p in g.get("IpPermissions") or []],
                    "ownerId": g.get("OwnerId"),
                    "groupId": g["GroupId"],
                    "ipPermissionsEgress": [_sg_permission(p) for p in g.get("IpPermissionsEgress") or []],
                    "tags": _camel(g.get("Tags") or []),
                    "vpcId": g.get("VpcId"),
                }
                out.append(Snapshot(
                    SECURITY_GROUP, g["GroupId"], self._arn("ec2", f"security-group/{g['GroupId']}"), conf,
                    resource_name=g["GroupName"], availability_zone="Not Applicable",
                ))  # fmt: skip
        return out

    def buckets(self, ids: list[str] | None) -> list[Snapshot]:
        s3 = self.client("s3")
        listing = s3.list_buckets()
        owner = listing.get("Owner") or {}
        wanted = set(ids) if ids is not None else None
        out = []
        for b in listing.get("Buckets") or []:
            name = b["Name"]
            if wanted is not None and name not in wanted:
                continue
            try:
                snap = self._bucket(s3, name, b.get("CreationDate"), owner)
            except ClientError as e:
                if _error_code(e) in ("NoSuchBucket", "404"):
                    continue  # deleted while we read it
                raise
            if snap is not None:
                out.append(snap)
        return out

    def _bucket(self, s3: Any, name: str, created: Any, owner: dict) -> Snapshot | None:
        region = s3.get_bucket_location(Bucket=name).get("LocationConstraint") or "us-east-1"
        if region == "EU":
            region = "eu-west-1"
        if region != self.caller.region:
            return None  # Config records a bucket in its own Region

        def optional(call: Callable[[], dict], *absent: str) -> dict | None:
            try:
                return call()
            except ClientError as e:
                if _error_code(e) in absent:
                    return None
                raise

        policy = optional(lambda: s3.get_bucket_policy(Bucket=name), "NoSuchBucketPolicy")
        versioning = s3.get_bucket_versioning(Bucket=name)
        encryption = optional(lambda: s3.get_bucket_encryption(Bucket=name),
                              "ServerSideEncryptionConfigurationNotFoundError")
        pab = optional(lambda: s3.get_public_access_block(Bucket=name), "NoSuchPublicAccessBlockConfiguration")

        mfa = versioning.get("MFADelete")
        supplementary: dict[str, Any] = {
            "BucketPolicy": {"policyText": policy.get("Policy") if policy else None},
            "BucketVersioningConfiguration": {
                "status": versioning.get("Status") or "Off",
                "isMfaDeleteEnabled": None if mfa is None else mfa == "Enabled",
            },
        }
        if encryption:
            rules = []
            for r in encryption.get("ServerSideEncryptionConfiguration", {}).get("Rules") or []:
                default = r.get("ApplyServerSideEncryptionByDefault") or {}
                rules.append({
                    "applyServerSideEncryptionByDefault": {
                        "sseAlgorithm": default.get("SSEAlgorithm"),
                        "kmsMasterKeyID": default.get("KMSMasterKeyID"),
                    },
                    "bucketKeyEnabled": bool(r.get("BucketKeyEnabled", False)),
                })  # fmt: skip
            supplementary["ServerSideEncryptionConfiguration"] = {"rules": rules}
        if pab:
            supplementary["PublicAccessBlockConfiguration"] = _camel(pab["PublicAccessBlockConfiguration"])
        conf = {
            "name": name,
            "owner": {"displayName": None, "id": owner.get("ID")},
            "creationDate": _iso(created) if isinstance(created, datetime) else None,
            "region": region,
        }
        return Snapshot(
            BUCKET, name, f"arn:aws:s3:::{name}", conf, supplementary,
            resource_name=name, availability_zone="Regional", created=_epoch(created),
        )  # fmt: skip

    def kms_keys(self, ids: list[str] | None) -> list[Snapshot]:
        kms = self.client("kms")
        if ids is None:
            ids = [k["KeyId"] for page in kms.get_paginator("list_keys").paginate() for k in page["Keys"]]
        out = []
        for key_id in ids:
            try:
                meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
            except ClientError as e:
                if _error_code(e) in ("NotFoundException", "InvalidArnException", "ValidationException"):
                    continue
                raise
            if meta["KeyId"] != key_id:
                continue  # Config's resource id is the key id, not an ARN or alias
            conf = _camel({k: v for k, v in meta.items() if k != "AWSAccountId"})
            supplementary: dict[str, Any] = {}
            if meta.get("KeyManager") == "CUSTOMER" and meta.get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT":
                try:
                    status = kms.get_key_rotation_status(KeyId=key_id)
                    supplementary["KeyRotationStatus"] = {"keyRotationEnabled": bool(status.get("KeyRotationEnabled"))}
                except ClientError:
                    pass  # AWS refuses it for keys pending deletion, for example
            out.append(Snapshot(
                KMS_KEY, key_id, meta["Arn"], conf, supplementary,
                availability_zone="Not Applicable", created=_epoch(meta.get("CreationDate")),
            ))  # fmt: skip
        return out

    def ecr_repositories(self, ids: list[str] | None) -> list[Snapshot]:
        """Private repositories, keyed by name as Config keys them."""
        ecr = self.client("ecr")
        kwargs = {"repositoryNames": ids} if ids else {}
        try:
            repos = [r for page in ecr.get_paginator("describe_repositories").paginate(**kwargs)
                     for r in page["repositories"]]  # fmt: skip
        except ClientError as e:
            if _error_code(e) == "RepositoryNotFoundException":
                return []
            raise
        return [Snapshot(
            ECR_REPOSITORY, r["repositoryName"], r["repositoryArn"], _camel(r),
            resource_name=r["repositoryName"], availability_zone="Regional", created=_epoch(r.get("createdAt")),
        ) for r in repos]  # fmt: skip

    def account(self, ids: list[str] | None) -> list[Snapshot]:
        if ids is not None and self.caller.account not in ids:
            return []
        enabled = self.client("ec2").get_ebs_encryption_by_default()["EbsEncryptionByDefault"]
        return [Snapshot(ACCOUNT, self.caller.account, f"arn:aws::::account/{self.caller.account}",
                         {"ebsEncryptionByDefault": bool(enabled)})]


# --------------------------------------------------------------------------- managed rules

Check = Callable[[Snapshot], "tuple[str, str | None]"]


@dataclass(frozen=True)
class ManagedRule:
    identifier: str
    resource_type: str
    periodic: bool  # periodic rules order results by invocation time, the others by capture time
    check: Check


def _imdsv2(s: Snapshot) -> tuple[str, str | None]:
    tokens = s.configuration.get("metadataOptions", {}).get("httpTokens")
    if tokens == "required":
        return "COMPLIANT", None
    return "NON_COMPLIANT", f"HttpTokens is {tokens!r}; IMDSv2 requires 'required'."


def _subnet_public_ip(s: Snapshot) -> tuple[str, str | None]:
    if s.configuration.get("mapPublicIpOnLaunch"):
        return "NON_COMPLIANT", "MapPublicIpOnLaunch is true: instances launched here get a public IPv4 address."
    return "COMPLIANT", None


def _default_sg_closed(s: Snapshot) -> tuple[str, str | None]:
    if s.configuration.get("groupName") != "default":
        return "NOT_APPLICABLE", None
    inbound = len(s.configuration.get("ipPermissions") or [])
    outbound = len(s.configuration.get("ipPermissionsEgress") or [])
    if inbound or outbound:
        return "NON_COMPLIANT", f"The default security group has {inbound} inbound and {outbound} outbound rule(s)."
    return "COMPLIANT", None


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _matches(patterns: Any, value: str) -> bool:
    return any(isinstance(p, str) and fnmatch.fnmatchcase(value, p) for p in _as_list(patterns))


def _denies_insecure_transport(statement: Any, bucket: str) -> bool:
    if not isinstance(statement, dict) or statement.get("Effect") != "Deny":
        return False
    principal = statement.get("Principal")
    if not (principal == "*" or (isinstance(principal, dict) and "*" in _as_list(principal.get("AWS")))):
        return False
    if not _matches(statement.get("Action"), "s3:*"):  # "*" or "s3:*"
        return False
    arn = f"arn:aws:s3:::{bucket}"
    if not (_matches(statement.get("Resource"), arn) and _matches(statement.get("Resource"), f"{arn}/any-object")):
        return False
    # Condition operators and keys are case-insensitive in IAM.
    for operator, conditions in (statement.get("Condition") or {}).items():
        if operator.lower() != "bool" or not isinstance(conditions, dict):
            continue
        for key, value in conditions.items():
            if key.lower() == "aws:securetransport" and any(str(v).lower() == "false" for v in _as_list(value)):
                return True
    return False


def _ssl_only(s: Snapshot) -> tuple[str, str | None]:
    text = s.supplementary.get("BucketPolicy", {}).get("policyText")
    if not text:
        return "NON_COMPLIANT", "The bucket has no policy, so it allows requests over HTTP."
    try:
        policy = json.loads(text)
    except ValueError:
        return "NON_COMPLIANT", "The bucket policy is not valid JSON."
    if any(_denies_insecure_transport(st, s.resource_id) for st in _as_list(policy.get("Statement") or [])):
        return "COMPLIANT", None
    return "NON_COMPLIANT", "No Deny statement with Bool aws:SecureTransport false covers the bucket and its objects."


def _versioning(s: Snapshot) -> tuple[str, str | None]:
    status = s.supplementary.get("BucketVersioningConfiguration", {}).get("status")
    if status == "Enabled":
        return "COMPLIANT", None
    return "NON_COMPLIANT", f"Versioning is {status}."


def _encryption(s: Snapshot) -> tuple[str, str | None]:
    rules = s.supplementary.get("ServerSideEncryptionConfiguration", {}).get("rules") or []
    if any((r.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm") for r in rules):
        return "COMPLIANT", None
    return "NON_COMPLIANT", "The bucket has no default server-side encryption configured."


PAB_FLAGS = ("blockPublicAcls", "ignorePublicAcls", "blockPublicPolicy", "restrictPublicBuckets")


def _public_access(s: Snapshot) -> tuple[str, str | None]:
    pab = s.supplementary.get("PublicAccessBlockConfiguration")
    if not pab:
        return "NON_COMPLIANT", "The bucket has no public access block configuration."
    off = [f for f in PAB_FLAGS if not pab.get(f)]
    if off:
        return "NON_COMPLIANT", f"Bucket-level public access block settings off: {', '.join(off)}."
    return "COMPLIANT", None


def _kms_not_deleting(s: Snapshot) -> tuple[str, str | None]:
    if s.configuration.get("keyManager") != "CUSTOMER":
        return "NOT_APPLICABLE", None
    state = s.configuration.get("keyState")
    if state in ("PendingDeletion", "PendingReplicaDeletion"):
        return "NON_COMPLIANT", f"The key is scheduled for deletion on {s.configuration.get('deletionDate')}."
    return "COMPLIANT", None


def _kms_rotation(s: Snapshot) -> tuple[str, str | None]:
    c = s.configuration
    if (c.get("keyManager") != "CUSTOMER" or c.get("keySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT"
            or c.get("origin") != "AWS_KMS" or c.get("keyState") in ("PendingDeletion", "PendingReplicaDeletion")):
        return "NOT_APPLICABLE", None
    rotation = s.supplementary.get("KeyRotationStatus", {}).get("keyRotationEnabled")
    if rotation:
        return "COMPLIANT", None
    return "NON_COMPLIANT", "Automatic key rotation is not enabled."


def _ebs_default(s: Snapshot) -> tuple[str, str | None]:
    if s.configuration.get("ebsEncryptionByDefault"):
        return "COMPLIANT", None
    return "NON_COMPLIANT", "EBS encryption by default is disabled in this Region."


def _ecr_scanning(s: Snapshot) -> tuple[str, str | None]:
    if s.configuration.get("imageScanningConfiguration", {}).get("scanOnPush"):
        return "COMPLIANT", None
    return "NON_COMPLIANT", "Image scanning on push is not configured for the repository."


MANAGED_RULES: dict[str, ManagedRule] = {
    r.identifier: r
    for r in (
        ManagedRule("EC2_IMDSV2_CHECK", INSTANCE, False, _imdsv2),
        ManagedRule("SUBNET_AUTO_ASSIGN_PUBLIC_IP_DISABLED", SUBNET, False, _subnet_public_ip),
        ManagedRule("VPC_DEFAULT_SECURITY_GROUP_CLOSED", SECURITY_GROUP, False, _default_sg_closed),
        ManagedRule("S3_BUCKET_SSL_REQUESTS_ONLY", BUCKET, False, _ssl_only),
        ManagedRule("S3_BUCKET_VERSIONING_ENABLED", BUCKET, False, _versioning),
        ManagedRule("S3_BUCKET_SERVER_SIDE_ENCRYPTION_ENABLED", BUCKET, False, _encryption),
        ManagedRule("S3_BUCKET_LEVEL_PUBLIC_ACCESS_PROHIBITED", BUCKET, False, _public_access),
        ManagedRule("KMS_CMK_NOT_SCHEDULED_FOR_DELETION", KMS_KEY, True, _kms_not_deleting),
        ManagedRule("CMK_BACKING_KEY_ROTATION_ENABLED", KMS_KEY, True, _kms_rotation),
        ManagedRule("EC2_EBS_ENCRYPTION_BY_DEFAULT", ACCOUNT, True, _ebs_default),
        ManagedRule("ECR_PRIVATE_IMAGE_SCANNING_ENABLED", ECR_REPOSITORY, True, _ecr_scanning),
    )
}


# --------------------------------------------------------------------------- rules


@dataclass
class Rule:
    """A Config rule and its evaluation state in one account and Region."""

    name: str
    arn: str
    rule_id: str
    source: dict
    scope: dict | None
    input_parameters: str | None
    description: str | None
    created_by: str | None
    first_activated: float
    results: dict[tuple[str, str], dict] = field(default_factory=dict)  # (type, id) -> EvaluationResult
    running: bool = False
    first_evaluation_started: bool = False
    last_successful_invocation: float | None = None
    last_failed_invocation: float | None = None
    last_successful_evaluation: float | None = None
    last_failed_evaluation: float | None = None
    last_error_code: str | None = None
    last_error_message: str | None = None

    def describe(self) -> dict:
        out: dict[str, Any] = {
            "ConfigRuleName": self.name,
            "ConfigRuleArn": self.arn,
            "ConfigRuleId": self.rule_id,
            "Source": self.source,
            "ConfigRuleState": "ACTIVE",
            "EvaluationModes": [{"Mode": "DETECTIVE"}],
        }
        for key, value in (("Description", self.description), ("Scope", self.scope),
                           ("InputParameters", self.input_parameters), ("CreatedBy", self.created_by)):
            if value is not None:
                out[key] = value
        return out

    def status(self) -> dict:
        out: dict[str, Any] = {
            "ConfigRuleName": self.name,
            "ConfigRuleArn": self.arn,
            "ConfigRuleId": self.rule_id,
            "FirstActivatedTime": self.first_activated,
            "FirstEvaluationStarted": self.first_evaluation_started,
        }
        for key, value in (
            ("LastSuccessfulInvocationTime", self.last_successful_invocation),
            ("LastFailedInvocationTime", self.last_failed_invocation),
            ("LastSuccessfulEvaluationTime", self.last_successful_evaluation),
            ("LastFailedEvaluationTime", self.last_failed_evaluation),
            ("LastErrorCode", self.last_error_code),
            ("LastErrorMessage", self.last_error_message),
        ):
            if value is not None:
                out[key] = value
        return out


class _EvaluationFailed(Exception):
    """An evaluation that cannot be done: reported in the rule's status, not to the caller."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def _new_rule_id() -> str:
    return "config-rule-" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(6))


# --------------------------------------------------------------------------- the server


class ConfigServer(LocalServer):
    """AWS Config (awsJson1.1) answering from moto's live state at `moto_url`."""

    name = "config"
    server_version = "LocalConfig/1.0"
    OPERATIONS = OPERATIONS

    def __init__(self, moto_url: str, *, evaluation_delay: float = 0.2, port: int = 0, latency: float = 0.0):
        super().__init__(port=port, latency=latency)
        self.moto_url = moto_url.rstrip("/")
        self.evaluation_delay = evaluation_delay
        self._rules: dict[tuple[str, str], dict[str, Rule]] = {}  # (account, region) -> name -> rule
        # (account, region, type, id) -> (digest, configurationStateId, capture time)
        self._items: dict[tuple[str, str, str, str], tuple[str, str, float]] = {}
        self._last_state_ms = 0
        self._key_accounts: dict[str, str] = {}  # access key id -> account (moto's answer)
        # account -> an access key for it (the last one seen), for evaluate_now
        self._account_keys: dict[str, str] = {MOTO_ACCOUNT: DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"]}
        self._timers: set[threading.Timer] = set()
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._clients_lock = threading.Lock()
        self._session = boto3.session.Session()

    # ---- lifecycle

    def stop(self) -> None:
        with self._lock:
            timers, self._timers = list(self._timers), set()
        for t in timers:
            t.cancel()
        super().stop()

    # ---- test helpers

    def put_rule(self, account: str, region: str, name: str, source_identifier: str, *,
                 scope: dict | None = None, input_parameters: str | None = None) -> dict:
        """Store a managed rule (as PutConfigRule would); returns its DescribeConfigRules entry."""
        rule: dict[str, Any] = {"ConfigRuleName": name, "Source": {"Owner": "AWS", "SourceIdentifier": source_identifier}}
        if scope is not None:
            rule["Scope"] = scope
        if input_parameters is not None:
            rule["InputParameters"] = input_parameters
        return self._store_rule(account, region, rule).describe()

    def evaluate_now(self, account: str, region: str, name: str, *, access_key: str | None = None) -> list[dict]:
        """Evaluate rule `name` at once; returns its EvaluationResults (timestamps as
        epoch seconds).  Raises ServiceError if the rule is unknown or its evaluation failed."""
        key = access_key or self._account_keys.get(account)
        if key is None:
            raise ValueError(f"no access key known for account {account}: pass access_key=")
        with self._lock:
            if name not in self._rules.get((account, region), {}):
                raise _no_such_rule(name)
        failure = self._evaluate(Caller(account, region, key), name)
        if failure is not None:
            raise ServiceError(500, *failure)
        with self._lock:
            rule = self._rules[(account, region)][name]
            return [json.loads(json.dumps(rule.results[k])) for k in sorted(rule.results)]

    def rules(self, account: str, region: str) -> dict[str, dict]:
        """name -> DescribeConfigRules entry, for assertions."""
        with self._lock:
            return {n: r.describe() for n, r in self._rules.get((account, region), {}).items()}

    # ---- moto access

    def _moto_client(self, service: str, access_key: str, region: str) -> Any:
        with self._clients_lock:  # boto3 client creation is not thread-safe
            client = self._clients.get((service, access_key, region))
            if client is None:
                client = self._session.client(
                    service, endpoint_url=self.moto_url, region_name=region,
                    aws_access_key_id=access_key, aws_secret_access_key="config-stand-in",
                    config=BotoConfig(retries={"mode": "standard", "total_max_attempts": 2},
                                      connect_timeout=5, read_timeout=30, s3={"addressing_style": "path"}),
                )  # fmt: skip
                self._clients[(service, access_key, region)] = client
            return client

    def _caller(self, headers: dict[str, str]) -> Caller:
        found = CREDENTIAL.search(headers.get("authorization", ""))
        if not found:
            raise ServiceError(400, "MissingAuthenticationTokenException", "Missing Authentication Token")
        access_key, region = found.group(1), found.group(3)
        with self._lock:
            account = self._key_accounts.get(access_key)
        if account is None:
            account = self._moto_client("sts", access_key, region).get_caller_identity()["Account"]
            with self._lock:
                self._key_accounts[access_key] = account
        with self._lock:
            self._account_keys[account] = access_key
        return Caller(account, region, access_key)

    def _observe(self, caller: Caller, snap: Snapshot) -> tuple[str, float]:
        """(configurationStateId, capture time) of the item, new iff its content changed."""
        digest = _digest(snap.configuration, snap.supplementary)
        key = (caller.account, caller.region, snap.resource_type, snap.resource_id)
        with self._lock:
            known = self._items.get(key)
            if known is not None and known[0] == digest:
                return known[1], known[2]
            now = time.time()
            state_ms = max(int(now * 1000), self._last_state_ms + 1)  # strictly increasing, like Config's
            self._last_state_ms = state_ms
            self._items[key] = (digest, str(state_ms), round(now, 3))
            return str(state_ms), round(now, 3)

    # ---- HTTP

    def serve(self, handler: Handler, method: str, raw_path: str, headers: dict[str, str], raw: bytes) -> None:
        status, payload, extra = self.handle(method, raw_path, headers, raw)
        if self.latency and not self.wait(self.latency):
            handler.close_connection = True
            return
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            # Written here rather than with handler.send_json: awsJson1.1 answers
            # carry their own content type.
            handler.send_response(status)
            handler.send_header("Content-Type", CONTENT_TYPE)
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            for k, v in extra.items():
                handler.send_header(k, v)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict, dict]:
        """(status, JSON body, extra headers) answering one request."""
        target = headers.get("x-amz-target", "")
        operation = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else None
        if operation not in OPERATIONS:
            operation = None
        body, bad_json = parse_json(raw)
        rec = RecordedRequest(method, raw_path, headers, body, raw, operation)
        self.record(rec)
        try:
            if method != "POST" or raw_path.split("?")[0] != "/" or operation is None:
                what = target or f"{method} {raw_path}"
                raise ServiceError(400, "UnknownOperationException", f"Unknown operation {what}")
            self.take_fault(operation)
            caller = self._caller(headers)
            rec.account, rec.region = caller.account, caller.region
            if bad_json:
                raise ServiceError(400, "SerializationException", "The request body is not valid JSON")
            if body is None:
                body = {}
            if not isinstance(body, dict):
                raise ServiceError(400, "SerializationException", "The request body must be a JSON object")
            answer = {
                BATCH_GET_RESOURCE_CONFIG: self._batch_get_resource_config,
                PUT_CONFIG_RULE: self._put_config_rule,
                DESCRIBE_CONFIG_RULES: self._describe_config_rules,
                START_CONFIG_RULES_EVALUATION: self._start_config_rules_evaluation,
                DESCRIBE_CONFIG_RULE_EVALUATION_STATUS: self._describe_config_rule_evaluation_status,
                GET_COMPLIANCE_DETAILS_BY_CONFIG_RULE: self._get_compliance_details_by_config_rule,
                GET_COMPLIANCE_DETAILS_BY_RESOURCE: self._get_compliance_details_by_resource,
            }[operation](caller, body)
            status, payload, extra = 200, answer, {}
        except ServiceError as e:
            status, payload = e.status, {"__type": e.error_type, "message": e.message, **e.extra}
            extra = {"x-amzn-ErrorType": e.error_type}
            rec.error_type = e.error_type
        except Exception as e:  # noqa: BLE001 - a bug (or moto failing) must reach the test as a 500, not a hang
            traceback.print_exc()
            status, payload = 500, {"__type": "InternalFailure", "message": f"config test server: {e!r}"}
            extra = {"x-amzn-ErrorType": "InternalFailure"}
            rec.error_type = "InternalFailure"
        rec.status = status
        rec.served_in = time.time() - rec.time
        return status, payload, extra

    # ---- operations

    def _batch_get_resource_config(self, caller: Caller, body: dict) -> dict:
        keys = body.get("resourceKeys")
        if not isinstance(keys, list) or not keys:
            raise _validation("1 validation error detected: Value null at 'resourceKeys' failed to satisfy "
                              "constraint: Member must not be null and must have length greater than or equal to 1")
        if len(keys) > MAX_RESOURCE_KEYS:
            raise _validation(f"1 validation error detected: Value at 'resourceKeys' failed to satisfy constraint: "
                              f"Member must have length less than or equal to {MAX_RESOURCE_KEYS}")
        wanted: list[tuple[str, str]] = []
        for k in keys:
            if not isinstance(k, dict) or not isinstance(k.get("resourceType"), str) or not k.get("resourceId"):
                raise _validation("Each resource key needs resourceType and resourceId")
            if k["resourceType"] not in SUPPORTED_RESOURCE_TYPES:
                raise _validation(f"Resource type {k['resourceType']} is not supported by this test server; "
                                  f"supported types: {', '.join(SUPPORTED_RESOURCE_TYPES)}")
            if (k["resourceType"], str(k["resourceId"])) not in wanted:
                wanted.append((k["resourceType"], str(k["resourceId"])))
        reader = MotoReader(self, caller)
        found: dict[tuple[str, str], Snapshot] = {}
        for rtype in SUPPORTED_RESOURCE_TYPES:
            ids = [rid for t, rid in wanted if t == rtype]
            for snap in reader.read(rtype, ids):
                found[(snap.resource_type, snap.resource_id)] = snap
        items = [self._item(caller, found[k]) for k in wanted if k in found]
        return {"baseConfigurationItems": items, "unprocessedResourceKeys": []}

    def _item(self, caller: Caller, snap: Snapshot) -> dict:
        state_id, captured = self._observe(caller, snap)
        item: dict[str, Any] = {
            "version": ITEM_VERSION,
            "accountId": caller.account,
            "configurationItemCaptureTime": captured,
            "configurationItemStatus": "OK",
            "configurationStateId": state_id,
            "arn": snap.arn,
            "resourceType": snap.resource_type,
            "resourceId": snap.resource_id,
            "awsRegion": caller.region,
            "configuration": _json(snap.configuration),
            "supplementaryConfiguration": {k: _json(v) for k, v in snap.supplementary.items()},
        }
        if snap.resource_name is not None:
            item["resourceName"] = snap.resource_name
        if snap.availability_zone is not None:
            item["availabilityZone"] = snap.availability_zone
        if snap.created is not None:
            item["resourceCreationTime"] = snap.created
        return item

    def _store_rule(self, account: str, region: str, spec: Any) -> Rule:
        if not isinstance(spec, dict):
            raise _invalid("ConfigRule is required")
        name = spec.get("ConfigRuleName")
        if not isinstance(name, str) or not name.strip() or len(name) > 128:
            raise _invalid("ConfigRuleName must be 1 to 128 characters")
        source = spec.get("Source")
        if not isinstance(source, dict) or source.get("Owner") not in ("AWS", "CUSTOM_LAMBDA", "CUSTOM_POLICY"):
            raise _invalid("Source.Owner must be AWS, CUSTOM_LAMBDA or CUSTOM_POLICY")
        if source["Owner"] == "AWS" and not source.get("SourceIdentifier"):
            raise _invalid("Source.SourceIdentifier is required for an AWS managed rule")
        scope = spec.get("Scope")
        if scope is not None and not isinstance(scope, dict):
            raise _invalid("Scope must be an object")
        with self._lock:
            rules = self._rules.setdefault((account, region), {})
            old = rules.get(name)
            rule_id = old.rule_id if old else _new_rule_id()
            rule = Rule(
                name=name,
                arn=f"arn:aws:config:{region}:{account}:config-rule/{rule_id}",
                rule_id=rule_id,
                source=dict(source), scope=dict(scope) if scope else None,
                input_parameters=spec.get("InputParameters"), description=spec.get("Description"),
                created_by=SECURITY_HUB_PRINCIPAL if name.startswith("securityhub-") else None,
                first_activated=old.first_activated if old else _now(),
            )  # fmt: skip
            if old:  # an update keeps the rule's identity, results and status
                for attr in ("results", "running", "first_evaluation_started", "last_successful_invocation",
                             "last_failed_invocation", "last_successful_evaluation", "last_failed_evaluation",
                             "last_error_code", "last_error_message"):
                    setattr(rule, attr, getattr(old, attr))
            rules[name] = rule
            return rule

    def _put_config_rule(self, caller: Caller, body: dict) -> dict:
        self._store_rule(caller.account, caller.region, body.get("ConfigRule"))
        return {}

    def _names(self, body: dict, member: str, maximum: int) -> list[str] | None:
        names = body.get(member)
        if names is None:
            return None
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise _invalid(f"{member} must be a list of rule names")
        if len(names) > maximum:
            raise _invalid(f"{member} can name at most {maximum} rules")
        return names

    def _lookup(self, caller: Caller, names: Iterable[str]) -> list[Rule]:
        rules = self._rules.get((caller.account, caller.region), {})
        out = []
        for n in names:
            if n not in rules:
                raise _no_such_rule(n)
            out.append(rules[n])
        return out

    def _describe_config_rules(self, caller: Caller, body: dict) -> dict:
        names = self._names(body, "ConfigRuleNames", 25)
        with self._lock:
            if names:
                rules = self._lookup(caller, names)
            else:
                rules = sorted(self._rules.get((caller.account, caller.region), {}).values(), key=lambda r: r.name)
            described = [r.describe() for r in rules]
        page, token = _page(described, body.get("NextToken"), DESCRIBE_RULES_PAGE)
        out: dict[str, Any] = {"ConfigRules": page}
        if token:
            out["NextToken"] = token
        return out

    def _start_config_rules_evaluation(self, caller: Caller, body: dict) -> dict:
        names = self._names(body, "ConfigRuleNames", MAX_EVALUATE_RULES)
        if not names:
            raise _invalid("ConfigRuleNames must name 1 to 25 rules")
        with self._lock:
            rules = self._lookup(caller, names)
            busy = [r.name for r in rules if r.running]
            if busy:
                raise ServiceError(400, "LimitExceededException",
                                   f"An evaluation is already in progress for rule(s) {', '.join(busy)}")
            for r in rules:
                r.running = True
            timer = threading.Timer(self.evaluation_delay, self._run, args=(caller, list(dict.fromkeys(names))))
            timer.daemon = True
            self._timers.add(timer)
        timer.start()
        return {}

    def _run(self, caller: Caller, names: list[str]) -> None:
        """A timer's evaluation: every named rule, from moto's state now."""
        with self._lock:  # this timer (the current thread) and finished ones are done with
            self._timers = {t for t in self._timers if t.is_alive() and t is not threading.current_thread()}
        for name in names:
            if self._stopping.is_set():
                return
            self._evaluate(caller, name)

    def _evaluate(self, caller: Caller, name: str) -> tuple[str, str] | None:
        """Evaluate one rule from moto's state now and record the outcome on the
        rule; returns None, or (error code, message) when the evaluation failed."""
        with self._lock:
            rule = self._rules[(caller.account, caller.region)][name]
            source, scope = dict(rule.source), dict(rule.scope or {})
            rule.running = True
        invoked = _now()
        try:
            managed = MANAGED_RULES.get(source.get("SourceIdentifier", "")) if source.get("Owner") == "AWS" else None
            if managed is None:
                what = source.get("SourceIdentifier") or source.get("Owner")
                raise _EvaluationFailed("UnsupportedRule", f"The Config test server does not evaluate {what}; "
                                                           f"it evaluates {', '.join(MANAGED_RULES)}")
            results: dict[tuple[str, str], dict] = {}
            types = scope.get("ComplianceResourceTypes")
            if not types or managed.resource_type in types:
                snaps = MotoReader(self, caller).read(managed.resource_type)
                if scope.get("ComplianceResourceId"):
                    snaps = [s for s in snaps if s.resource_id == scope["ComplianceResourceId"]]
                for snap in snaps:
                    results[(snap.resource_type, snap.resource_id)] = self._result(caller, name, managed, snap, invoked)
            recorded = max(_now(), invoked)
            for result in results.values():
                result["ResultRecordedTime"] = recorded
            with self._lock:
                rule = self._rules[(caller.account, caller.region)].get(name, rule)
                rule.results = results
                rule.last_successful_invocation = invoked
                rule.last_successful_evaluation = recorded
                rule.first_evaluation_started = True
            return None
        except Exception as e:  # noqa: BLE001 - recorded on the rule, as Config reports a failed evaluation
            if isinstance(e, _EvaluationFailed):
                failure = (e.code, e.message)
            else:
                failure = ("InternalError", f"evaluation failed: {e!r}")
            with self._lock:
                rule = self._rules[(caller.account, caller.region)].get(name, rule)
                rule.last_failed_invocation = invoked
                rule.last_failed_evaluation = max(_now(), invoked)
                rule.last_error_code, rule.last_error_message = failure
                rule.first_evaluation_started = True
            return failure
        finally:
            with self._lock:
                rule.running = False

    def _result(self, caller: Caller, name: str, managed: ManagedRule, snap: Snapshot, invoked: float) -> dict:
        compliance, annotation = managed.check(snap)
        result: dict[str, Any] = {
            "EvaluationResultIdentifier": {
                "EvaluationResultQualifier": {
                    "ConfigRuleName": name,
                    "ResourceType": snap.resource_type,
                    "ResourceId": snap.resource_id,
                    "EvaluationMode": "DETECTIVE",
                },
                # Config orders change-triggered results by the configuration item's
                # capture time, periodic ones by when the rule was invoked.
                "OrderingTimestamp": invoked if managed.periodic else self._observe(caller, snap)[1],
            },
            "ComplianceType": compliance,
            "ConfigRuleInvokedTime": invoked,
        }
        if annotation:
            result["Annotation"] = annotation[:256]  # the model's limit
        return result

    def _describe_config_rule_evaluation_status(self, caller: Caller, body: dict) -> dict:
        names = self._names(body, "ConfigRuleNames", 25)
        limit = body.get("Limit", 0)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_STATUS_LIMIT:
            raise _invalid(f"Limit must be between 0 and {MAX_STATUS_LIMIT}")
        with self._lock:
            if names:
                rules = self._lookup(caller, names)
            else:
                rules = sorted(self._rules.get((caller.account, caller.region), {}).values(), key=lambda r: r.name)
            statuses = [r.status() for r in rules]
        page, token = _page(statuses, body.get("NextToken"), limit or 1000)
        out: dict[str, Any] = {"ConfigRulesEvaluationStatus": page}
        if token:
            out["NextToken"] = token
        return out

    def _compliance_filter(self, body: dict) -> set[str] | None:
        types = body.get("ComplianceTypes")
        if types in (None, []):
            return None
        if not isinstance(types, list) or len(types) > 3 or any(t not in COMPLIANCE_TYPES for t in types):
            raise _invalid("ComplianceTypes must list up to 3 of COMPLIANT, NON_COMPLIANT, NOT_APPLICABLE")
        if "INSUFFICIENT_DATA" in types:
            raise _invalid("INSUFFICIENT_DATA cannot be used as a ComplianceType for filtering results")
        return set(types)

    def _get_compliance_details_by_config_rule(self, caller: Caller, body: dict) -> dict:
        name = body.get("ConfigRuleName")
        if not isinstance(name, str) or not name:
            raise _invalid("ConfigRuleName is required")
        wanted = self._compliance_filter(body)
        limit = body.get("Limit", 0)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_DETAILS_LIMIT:
            raise _invalid(f"Limit must be between 0 and {MAX_DETAILS_LIMIT}")
        with self._lock:
            rule = self._lookup(caller, [name])[0]
            results = [json.loads(json.dumps(rule.results[k])) for k in sorted(rule.results)]
        results = [r for r in results if wanted is None or r["ComplianceType"] in wanted]
        page, token = _page(results, body.get("NextToken"), limit or DEFAULT_DETAILS_LIMIT)
        out: dict[str, Any] = {"EvaluationResults": page}
        if token:
            out["NextToken"] = token
        return out

    def _get_compliance_details_by_resource(self, caller: Caller, body: dict) -> dict:
        if body.get("ResourceEvaluationId"):
            raise _invalid("ResourceEvaluationId (proactive evaluations) is not supported by this test server")
        rtype, rid = body.get("ResourceType"), body.get("ResourceId")
        if not isinstance(rtype, str) or not rtype or not isinstance(rid, str) or not rid:
            raise _invalid("ResourceType and ResourceId are required")
        wanted = self._compliance_filter(body)
        with self._lock:
            rules = sorted(self._rules.get((caller.account, caller.region), {}).values(), key=lambda r: r.name)
            results = [json.loads(json.dumps(r.results[(rtype, rid)])) for r in rules if (rtype, rid) in r.results]
        results = [r for r in results if wanted is None or r["ComplianceType"] in wanted]
        page, token = _page(results, body.get("NextToken"), 100)
        out: dict[str, Any] = {"EvaluationResults": page}
        if token:
            out["NextToken"] = token
        return out


# --------------------------------------------------------------------------- standalone


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Local AWS Config test server reading moto (127.0.0.1 only).")
    p.add_argument("--moto-url", required=True, help="moto server URL, e.g. http://127.0.0.1:5000")
    p.add_argument("--port", type=int, default=0, help="port to bind on 127.0.0.1 (0 = a free port)")
    p.add_argument("--evaluation-delay", type=float, default=0.2, help="seconds an evaluation takes")
    args = p.parse_args(argv)
    return serve_until_signalled(ConfigServer(args.moto_url, evaluation_delay=args.evaluation_delay, port=args.port))


if __name__ == "__main__":
    sys.exit(main())
