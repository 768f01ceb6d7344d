"""The AWS backend's operations, through the real Rust code and the AWS SDK for
Rust: resource operations against moto (EC2, GuardDuty, IAM, KMS, S3 Control,
STS), finding updates against the project's Security Hub test server.

The moto test seeds moto with boto3, runs the Rust integration test
runbook-lib/tests/aws_moto.rs (which drives `AwsCloud` through every operation
and asserts the typed results), then checks with boto3 that moto's state really
changed. The Security Hub test runs runbook-lib/tests/aws_securityhub.rs and
checks the BatchUpdateFindings requests the server received.

The test binary is the one `cargo test --locked --workspace` (the Makefile's
rust-checks) already built; without RUNBOOK_MOTO_URL it skips itself there.  It
is located with the same cargo flags plus --no-run, so cargo finds everything
fresh and compiles nothing: selecting only `--test aws_moto` would change
feature unification and build the AWS SDK crates a second time.  The build is
shared through CARGO_TARGET_DIR (the Makefile's default when unset).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

boto3 = pytest.importorskip("boto3")

from aws_seed import moto_client  # noqa: E402
from servers.moto import MOTO_ACCOUNT, MotoServer  # noqa: E402
from servers.securityhub import SecurityHubServer, make_findings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TARGET_DIR = Path.home() / ".cache" / "security-runbook" / "target"
# The cargo invocation of the Makefile's rust-checks: the binary it built is the one run here.
CARGO_TEST = ("test", "--locked", "--workspace")
# Run alone (no earlier `make rust-checks`), the lookup builds what rust-checks
# would have built: minutes on a cold cache.
CARGO_TIMEOUT = 1800
RUST_TEST_TIMEOUT = 300


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def client(moto: MotoServer, service: str) -> Any:
    return moto_client(moto, service)


def seed(moto: MotoServer) -> dict[str, str]:
    ec2 = client(moto, "ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"][0]["SubnetId"]
    group = ec2.create_security_group(
        GroupName="runbook-open",
        Description="open to the world",
        VpcId=vpc,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [{"Key": "Name", "Value": "web"}]}],
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "ssh from anywhere"}],
            },
            {"IpProtocol": "tcp", "FromPort": 3389, "ToPort": 3389, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
        ],
    )
    eni = ec2.create_network_interface(SubnetId=subnet, Groups=[group])["NetworkInterface"]["NetworkInterfaceId"]
    key = client(moto, "kms").create_key(Description="runbook test key")["KeyMetadata"]["KeyId"]
    client(moto, "iam").update_account_password_policy(
        MinimumPasswordLength=8, MaxPasswordAge=90, HardExpiry=True, RequireSymbols=True
    )
    return {
        "RUNBOOK_MOTO_GROUP_ID": group,
        "RUNBOOK_MOTO_ENI_ID": eni,
        "RUNBOOK_MOTO_KEY_ID": key,
    }


def open_rules(ec2: Any, group: str) -> dict[str, str]:
    """{"tcp 22 0.0.0.0/0": "sgr-...", ...} for the group's ingress rules."""
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])
    return {
        f"{r['IpProtocol']} {r.get('FromPort')} {r.get('CidrIpv4') or r.get('CidrIpv6')}": r["SecurityGroupRuleId"]
        for r in rules["SecurityGroupRules"]
        if not r["IsEgress"]
    }


def rust_test_binary(name: str) -> str:
    """The `name` integration test executable of `cargo test --locked --workspace`."""
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not installed")
    env = {**os.environ, "CARGO_TARGET_DIR": os.environ.get("CARGO_TARGET_DIR", str(DEFAULT_TARGET_DIR))}
    done = subprocess.run(
        [cargo, *CARGO_TEST, "--no-run", "--message-format=json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=CARGO_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, f"cargo test --no-run failed ({done.returncode}):\n{done.stderr[-8000:]}"
    for line in done.stdout.splitlines():
        if not line.startswith("{"):
            continue
        message = json.loads(line)
        target = message.get("target") or {}
        if (
            message.get("reason") == "compiler-artifact"
            and target.get("name") == name
            and target.get("kind") == ["test"]
            and message.get("executable")
        ):
            return message["executable"]
    raise AssertionError(f"cargo built no {name} test executable:\n" + done.stderr[-4000:])


def run_rust_test(env: dict[str, str], name: str = "aws_moto", skipped: str = "RUNBOOK_MOTO_URL") -> str:
    binary = rust_test_binary(name)
    done = subprocess.run(
        [binary, "--nocapture", "--test-threads=1"],
        cwd=ROOT / "runbook-lib",  # where cargo runs an integration test
        env={**os.environ, **env}, capture_output=True, text=True, timeout=RUST_TEST_TIMEOUT,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{binary} failed ({done.returncode}):\n{output[-8000:]}"
    assert f"skipped: {skipped} not set" not in output
    assert "test result: ok. 1 passed" in output, output[-4000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(CARGO_TIMEOUT + RUST_TEST_TIMEOUT + 60)
def test_aws_resource_operations_change_moto(moto: MotoServer) -> None:
    ids = seed(moto)
    ec2 = client(moto, "ec2")
    group = ids["RUNBOOK_MOTO_GROUP_ID"]
    seeded_rules = open_rules(ec2, group)
    assert set(seeded_rules) == {"tcp 22 0.0.0.0/0", "tcp 3389 ::/0"}

    stdout = run_rust_test({**moto.env(), "RUNBOOK_MOTO_URL": moto.url, **ids})
    results = dict(re.findall(r"moto-result: (\w+)=(\S*)", stdout))

    # Security group: the seeded rules were revoked by id and authorized anew.
    assert sorted(results["revoked"].split(",")) == sorted(seeded_rules.values())
    rules_now = open_rules(ec2, group)
    assert set(rules_now) == set(seeded_rules)
    assert set(rules_now.values()) == set(results["authorized"].split(","))
    assert not set(rules_now.values()) & set(seeded_rules.values())
    ssh = [
        r for r in ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group]}]
        )["SecurityGroupRules"]
        if r.get("FromPort") == 22 and not r["IsEgress"]
    ]  # fmt: skip
    assert ssh and ssh[0].get("Description") == "ssh from anywhere"

    # GuardDuty: the first detector was created, disabled, enabled and deleted;
    # the second is left enabled.
    guardduty = client(moto, "guardduty")
    detectors = guardduty.list_detectors()["DetectorIds"]
    assert detectors == [results["detector"]]
    assert results["deleted_detector"] not in detectors
    assert guardduty.get_detector(DetectorId=results["detector"])["Status"] == "ENABLED"

    # IAM: the length changed; MaxPasswordAge, HardExpiry and the rest were kept.
    policy = client(moto, "iam").get_account_password_policy()["PasswordPolicy"]
    assert policy["MinimumPasswordLength"] == int(results["password_length"]) == 14
    assert policy["MaxPasswordAge"] == 90
    assert policy["HardExpiry"] is True
    assert policy["RequireSymbols"] is True

    # S3 Control: the account-level block was put, deleted, and put again.
    block = client(moto, "s3control").get_public_access_block(AccountId=MOTO_ACCOUNT)
    assert block["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }

    # EC2: EBS encryption by default turned on (after an off/on round trip).
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True

    # KMS: rotation turned on (after an on/off round trip).
    kms = client(moto, "kms")
    assert kms.get_key_rotation_status(KeyId=ids["RUNBOOK_MOTO_KEY_ID"])["KeyRotationEnabled"] is True


@pytest.mark.slow
@pytest.mark.timeout(CARGO_TIMEOUT + RUST_TEST_TIMEOUT + 60)
def test_aws_finding_updates_go_in_calls_of_a_hundred(tmp_path: Path) -> None:
    """One rule for both backends (runbook::cloud::FindingUpdate): more than 100
    findings are batched, a note of 512 characters goes whole, a longer one and an
    empty list are refused before any request, a blank note is left out."""
    findings = make_findings(250)
    ids = [{"id": f["Id"], "product_arn": f["ProductArn"]} for f in findings]
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps(ids), encoding="utf-8")
    with SecurityHubServer(findings=findings, rate=None) as hub:
        env = {"RUNBOOK_SECURITYHUB_URL": hub.url, "RUNBOOK_SECURITYHUB_IDS": str(ids_file)}
        stdout = run_rust_test(env, name="aws_securityhub", skipped="RUNBOOK_SECURITYHUB_URL")
        assert "securityhub-result: done" in stdout
        updates = hub.requests_for("BatchUpdateFindings")
        stored = {f["Id"]: f for f in hub.findings}
    assert [r.status for r in updates] == [200] * 4, [(r.status, r.error_type) for r in updates]
    assert [len(r.body["FindingIdentifiers"]) for r in updates] == [100, 100, 50, 1]
    sent = [i["Id"] for r in updates[:3] for i in r.body["FindingIdentifiers"]]
    assert sent == [i["id"] for i in ids], "every finding once, in order"
    note = "対" * 512
    assert all(r.body["Note"]["Text"] == note for r in updates[:3])
    assert all(r.body["Workflow"] == {"Status": "NOTIFIED"} for r in updates[:3])
    assert "Note" not in updates[3].body, "a blank note is no note"
    assert updates[3].body["Workflow"] == {"Status": "RESOLVED"}
    assert all(stored[i["id"]]["Note"]["Text"] == note for i in ids)
    assert stored[ids[0]["id"]]["Workflow"]["Status"] == "RESOLVED"
    assert stored[ids[-1]["id"]]["Workflow"]["Status"] == "NOTIFIED"
