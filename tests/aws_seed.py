"""Shared set-up for tests that run the kernel on the AWS path against local servers.

The kernel uses the real AWS SDK for Rust; these helpers point it at moto
(EC2, IAM, GuardDuty, KMS, S3 Control, STS), at the project's Security Hub
server and at the project's Bedrock server, and seed an account whose state and
findings agree with each other:

    with MotoServer() as moto, SecurityHubServer(rate=None) as hub, BedrockServer() as bedrock:
        account = seed_account(moto, hub)          # EC2.19, GuardDuty.1 and IAM.15, failing
        env = aws_kernel_env(moto, hub, bedrock)   # RUNBOOK_BACKEND=aws + endpoints

Every endpoint the kernel can reach is a 127.0.0.1 server: AWS_ENDPOINT_URL
sends any service not named otherwise to moto, so nothing leaves the machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from servers.moto import DUMMY_CREDENTIALS, MOTO_ACCOUNT, MOTO_REGION, MotoServer
from servers.securityhub import SecurityHubServer, make_finding

__all__ = [
    "SeededAccount",
    "aws_kernel_env",
    "ec2_19_finding",
    "guardduty_1_finding",
    "ingress_rules",
    "moto_client",
    "password_policy_finding",
    "seed_account",
    "seed_open_ssh_group",
]


def moto_client(moto: MotoServer, service: str) -> Any:
    """A boto3 client for `service` on moto (S3 Control requests are sent to moto as is)."""
    import boto3

    c = boto3.client(service, **moto.client_kwargs())
    if service == "s3control":
        # botocore, like the Rust SDK, puts the account id in front of the host
        # (123456789012.127.0.0.1), which does not resolve: send it to moto as is.
        def to_moto(request: Any, **_: Any) -> None:
            request.url = request.url.replace(f"://{MOTO_ACCOUNT}.", "://", 1)

        c.meta.events.register("before-sign.s3-control.*", to_moto)
    return c


def aws_kernel_env(
    moto: MotoServer, hub: SecurityHubServer, bedrock: Any = None, **extra: str
) -> dict[str, str]:
    """Kernel environment for `backend=aws`: moto for every service, the Security Hub
    server for Security Hub, the Bedrock server (if given) for Bedrock, dummy
    credentials, and no ambient AWS configuration. Without `bedrock` the advisor is
    the built-in catalog (RUNBOOK_MODEL=catalog)."""
    env = {
        "RUNBOOK_BACKEND": "aws",
        "RUNBOOK_REGION": moto.region,
        **DUMMY_CREDENTIALS,
        "AWS_REGION": moto.region,
        "AWS_DEFAULT_REGION": moto.region,
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_ENDPOINT_URL_SECURITYHUB": hub.url,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    if bedrock is not None:
        env.update(bedrock.env())
    else:
        env["RUNBOOK_MODEL"] = "catalog"
    env.update(extra)
    return env


# --- moto resources ------------------------------------------------------------------


def seed_open_ssh_group(moto: MotoServer, name: str = "ci-runner") -> dict[str, Any]:
    """A VPC and a security group with SSH open to the world (what EC2.19 flags) and
    HTTPS from 10.0.0.0/8 (which must survive the fix). Returns the ids, with
    `rules` mapping "tcp 22 0.0.0.0/0" style keys to security group rule ids."""
    ec2 = moto_client(moto, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName=name, Description=f"{name} hosts", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
             "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "ssh from anywhere"}]},
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        ],
    )  # fmt: skip
    return {"vpc": vpc, "group": group, "name": name, "rules": ingress_rules(moto, group)}


def ingress_rules(moto: MotoServer, group: str) -> dict[str, str]:
    """{"tcp 22 0.0.0.0/0": "sgr-...", ...}: the group's ingress rules in moto."""
    rules = moto_client(moto, "ec2").describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group]}]
    )["SecurityGroupRules"]
    return {
        f"{r['IpProtocol']} {r.get('FromPort')} {r.get('CidrIpv4') or r.get('CidrIpv6')}": r["SecurityGroupRuleId"]
        for r in rules
        if not r["IsEgress"]
    }


# --- Security Hub findings that match them ---------------------------------------------


def ec2_19_finding(i: int, account: str, region: str, group: str, vpc: str, name: str = "ci-runner") -> dict:
    arn = f"arn:aws:ec2:{region}:{account}:security-group/{group}"
    return make_finding(
        i, account=account, region=region, control_id="EC2.19", severity="CRITICAL",
        Description="This control checks whether an Amazon EC2 security group allows unrestricted incoming "
        f"traffic to high-risk ports. Security group {group} ({name}) allows 0.0.0.0/0 on port 22.",
        Resources=[{"Type": "AwsEc2SecurityGroup", "Id": arn, "Partition": "aws", "Region": region,
                    "Details": {"AwsEc2SecurityGroup": {"GroupId": group, "GroupName": name, "VpcId": vpc}}}],
    )  # fmt: skip


def guardduty_1_finding(i: int, account: str, region: str) -> dict:
    return make_finding(i, account=account, region=region, control_id="GuardDuty.1", severity="HIGH")


def password_policy_finding(i: int, account: str, region: str, control: str = "IAM.15") -> dict:
    titles = {
        "IAM.7": "Password policies for IAM users should have strong configurations",
        "IAM.15": "Ensure IAM password policy requires minimum password length of 14 or greater",
    }
    extra = {"Title": titles[control]} if control in titles else {}
    return make_finding(i, account=account, region=region, control_id=control, severity="MEDIUM", **extra)


@dataclass
class SeededAccount:
    """What `seed_account` made: ids in moto, and the findings in the Security Hub server."""

    account: str
    region: str
    ssh: dict[str, Any]  # seed_open_ssh_group's answer
    findings: dict[str, dict] = field(default_factory=dict)  # control id -> ASFF finding

    def finding_id(self, control: str) -> str:
        return self.findings[control]["Id"]


def seed_account(moto: MotoServer, hub: SecurityHubServer, region: str = MOTO_REGION) -> SeededAccount:
    """moto's account as Security Hub would see it: SSH open to the world on one group
    (EC2.19, CRITICAL), no GuardDuty detector (GuardDuty.1, HIGH), a password policy of
    minimum length 8 (IAM.15, MEDIUM), each failing with exactly one finding, plus a few
    findings of other controls so listings have more than one severity."""
    account = moto_client(moto, "sts").get_caller_identity()["Account"]
    ssh = seed_open_ssh_group(moto)
    moto_client(moto, "iam").update_account_password_policy(
        MinimumPasswordLength=8, RequireSymbols=True, MaxPasswordAge=90
    )
    findings = {
        "EC2.19": ec2_19_finding(0, account, region, ssh["group"], ssh["vpc"], ssh["name"]),
        "GuardDuty.1": guardduty_1_finding(3, account, region),
        "IAM.15": password_policy_finding(1, account, region, "IAM.15"),
    }
    # Other controls, not acted on here: EC2.2 HIGH, S3.8 HIGH, CloudTrail.5 LOW, IAM.6 CRITICAL.
    others = [make_finding(i, account=account, region=region) for i in (16, 17, 18)]
    others.append(make_finding(9, account=account, region=region, compliance_status="FAILED"))
    hub.add_findings([*findings.values(), *others])
    return SeededAccount(account=account, region=region, ssh=ssh, findings=findings)
