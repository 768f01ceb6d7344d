//! Security Hub controls evaluated over the sandbox state, and the ASFF JSON of
//! their findings. Titles and severities follow the Security Hub controls reference.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::state::{
    AccountState, IngressRule, KmsKey, OrgState, RegionState, SecurityGroup, Trail,
};
use crate::finding::{AccountId, Note, WorkflowStatus};
use crate::severity::Severity;

const FSBP: &str = "standards/aws-foundational-security-best-practices/v/1.0.0";
const CIS_12: &str = "ruleset/cis-aws-foundations-benchmark/v/1.2.0";
const CIS_14: &str = "standards/cis-aws-foundations-benchmark/v/1.4.0";
const NIST: &str = "standards/nist-800-53/v/5.0.0";
const PCI: &str = "standards/pci-dss/v/3.2.1";

/// One Security Hub control as the sandbox knows it.
#[derive(Debug)]
pub struct ControlDef {
    pub id: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub severity: Severity,
    pub standards: &'static [&'static str],
    /// The AWS Config rule behind it (Security Hub names its rules `securityhub-<rule>-<suffix>`).
    pub config_rule: &'static str,
}

macro_rules! control {
    ($name:ident, $id:literal, $sev:ident, $rule:literal, [$($std:expr),*], $title:literal, $desc:literal) => {
        pub const $name: ControlDef = ControlDef {
            id: $id,
            title: $title,
            description: $desc,
            severity: Severity::$sev,
            standards: &[$($std),*],
            config_rule: $rule,
        };
    };
}

control!(
    EC2_13,
    "EC2.13",
    High,
    "restricted-ssh",
    [CIS_12, NIST, PCI],
    "Security groups should not allow ingress from 0.0.0.0/0 or ::/0 to port 22",
    "This control checks whether an Amazon EC2 security group allows ingress from 0.0.0.0/0 or ::/0 to port 22. The control fails if the security group allows ingress from 0.0.0.0/0 or ::/0 to port 22."
);
control!(
    EC2_14,
    "EC2.14",
    High,
    "restricted-common-ports",
    [CIS_12],
    "Security groups should not allow ingress from 0.0.0.0/0 or ::/0 to port 3389",
    "This control checks whether an Amazon EC2 security group allows ingress from 0.0.0.0/0 or ::/0 to port 3389. The control fails if the security group allows ingress from 0.0.0.0/0 or ::/0 to port 3389."
);
control!(
    EC2_18,
    "EC2.18",
    High,
    "vpc-sg-open-only-to-authorized-ports",
    [FSBP, NIST],
    "Security groups should only allow unrestricted incoming traffic for authorized ports",
    "This control checks whether an Amazon EC2 security group permits unrestricted incoming traffic from unauthorized ports. The control fails if the security group allows unrestricted incoming traffic (0.0.0.0/0 or ::/0) to any port other than the authorized TCP ports 80 and 443."
);
control!(
    EC2_19,
    "EC2.19",
    Critical,
    "vpc-sg-restricted-common-ports",
    [FSBP, NIST],
    "Security groups should not allow unrestricted access to ports with high risk",
    "This control checks whether unrestricted incoming traffic for an Amazon EC2 security group is accessible to ports that are considered high risk. The control fails if any rule in the security group allows ingress from 0.0.0.0/0 or ::/0 to one of those ports (for example 22, 3389, 3306 or 5432)."
);
control!(
    EC2_7,
    "EC2.7",
    Medium,
    "ec2-ebs-encryption-by-default",
    [FSBP, CIS_14, NIST],
    "EBS default encryption should be enabled",
    "This control checks whether account-level encryption is enabled by default for Amazon Elastic Block Store (Amazon EBS) volumes. The control fails if account-level encryption isn't enabled for EBS volumes in the Region."
);
control!(
    GUARDDUTY_1,
    "GuardDuty.1",
    High,
    "guardduty-enabled-centralized",
    [FSBP, NIST, PCI],
    "GuardDuty should be enabled",
    "This control checks whether Amazon GuardDuty is enabled in your account and Region. The control fails if GuardDuty has no detector in the Region or its detector is disabled."
);
control!(
    IAM_7,
    "IAM.7",
    Medium,
    "iam-password-policy",
    [NIST],
    "Password policies for IAM users should have strong configurations",
    "This control checks whether the account password policy for IAM users uses strong configurations: uppercase letters, lowercase letters, numbers and symbols required, a minimum length of 8, at least 24 remembered passwords and a maximum age of 90 days. The control fails if the password policy doesn't meet all of them."
);
control!(
    IAM_11,
    "IAM.11",
    Medium,
    "iam-password-policy-uppercase-check",
    [CIS_12],
    "Ensure IAM password policy requires at least one uppercase letter",
    "This control checks whether the account password policy for IAM users requires at least one uppercase letter. The control fails if the policy doesn't require it."
);
control!(
    IAM_12,
    "IAM.12",
    Medium,
    "iam-password-policy-lowercase-check",
    [CIS_12],
    "Ensure IAM password policy requires at least one lowercase letter",
    "This control checks whether the account password policy for IAM users requires at least one lowercase letter. The control fails if the policy doesn't require it."
);
control!(
    IAM_13,
    "IAM.13",
    Medium,
    "iam-password-policy-symbol-check",
    [CIS_12],
    "Ensure IAM password policy requires at least one symbol",
    "This control checks whether the account password policy for IAM users requires at least one symbol. The control fails if the policy doesn't require it."
);
control!(
    IAM_14,
    "IAM.14",
    Medium,
    "iam-password-policy-number-check",
    [CIS_12],
    "Ensure IAM password policy requires at least one number",
    "This control checks whether the account password policy for IAM users requires at least one number. The control fails if the policy doesn't require it."
);
control!(
    IAM_15,
    "IAM.15",
    Medium,
    "iam-password-policy-minimum-length-check",
    [CIS_12, CIS_14],
    "Ensure IAM password policy requires minimum password length of 14 or greater",
    "This control checks whether the account password policy for IAM users requires passwords of at least 14 characters. The control fails if the minimum length is less than 14."
);
control!(
    IAM_16,
    "IAM.16",
    Low,
    "iam-password-policy-prevent-reuse-check",
    [CIS_12, CIS_14, PCI],
    "Ensure IAM password policy prevents password reuse",
    "This control checks whether the account password policy for IAM users remembers at least 24 previous passwords. The control fails if password reuse prevention is not set or is less than 24."
);
control!(
    IAM_17,
    "IAM.17",
    Low,
    "iam-password-policy-expiration-check",
    [CIS_12],
    "Ensure IAM password policy expires passwords within 90 days or less",
    "This control checks whether the account password policy for IAM users expires passwords within 90 days or less. The control fails if passwords never expire or expire after more than 90 days."
);
control!(
    S3_1,
    "S3.1",
    Medium,
    "s3-account-level-public-access-blocks-periodic",
    [FSBP, CIS_14, NIST, PCI],
    "S3 general purpose buckets should have block public access settings enabled",
    "This control checks whether the Amazon S3 block public access settings (BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets) are all enabled at the account level. The control fails if one or more of them is set to false."
);
control!(
    KMS_4,
    "KMS.4",
    Medium,
    "cmk-backing-key-rotation-enabled",
    [CIS_14, NIST, PCI],
    "AWS KMS key rotation should be enabled",
    "This control checks whether automatic key rotation is enabled for a symmetric encryption KMS key created by the customer. The control fails if automatic key rotation isn't enabled for the key."
);
control!(
    CLOUDTRAIL_1,
    "CloudTrail.1",
    High,
    "multi-region-cloudtrail-enabled",
    [FSBP, CIS_14, NIST],
    "CloudTrail should be enabled and configured with at least one multi-Region trail that includes read and write management events",
    "This control checks whether there is at least one multi-Region AWS CloudTrail trail that is logging and captures read and write management events. The control fails if there is no such trail in the account."
);
control!(
    CLOUDTRAIL_2,
    "CloudTrail.2",
    Medium,
    "cloud-trail-encryption-enabled",
    [FSBP, CIS_14, NIST, PCI],
    "CloudTrail should have encryption at-rest enabled",
    "This control checks whether a CloudTrail trail is configured to use server-side encryption with an AWS KMS key. The control fails if the trail's KmsKeyId isn't defined."
);
control!(
    CLOUDTRAIL_4,
    "CloudTrail.4",
    Low,
    "cloud-trail-log-file-validation-enabled",
    [FSBP, CIS_14, NIST, PCI],
    "CloudTrail log file validation should be enabled",
    "This control checks whether log file integrity validation is enabled on a CloudTrail trail. The control fails if log file validation isn't enabled."
);
control!(
    CONFIG_1,
    "Config.1",
    Critical,
    "config-enabled",
    [FSBP, CIS_14, NIST, PCI],
    "AWS Config should be enabled and use the service-linked role for resource recording",
    "This control checks whether AWS Config is enabled in your account in the current Region and records all resources. The control fails if AWS Config isn't enabled or doesn't record all resources."
);

/// Every control the sandbox evaluates.
pub const CONTROLS: &[&ControlDef] = &[
    &EC2_19,
    &EC2_13,
    &EC2_14,
    &EC2_18,
    &EC2_7,
    &GUARDDUTY_1,
    &IAM_7,
    &IAM_11,
    &IAM_12,
    &IAM_13,
    &IAM_14,
    &IAM_15,
    &IAM_16,
    &IAM_17,
    &S3_1,
    &KMS_4,
    &CLOUDTRAIL_1,
    &CLOUDTRAIL_2,
    &CLOUDTRAIL_4,
    &CONFIG_1,
];

/// Ports EC2.19 treats as high risk.
pub const HIGH_RISK_PORTS: &[i32] = &[
    20, 21, 22, 23, 25, 110, 135, 143, 445, 1433, 1434, 3000, 3306, 3389, 4333, 5000, 5432, 5500,
    5601, 8080, 8088, 8888, 9200, 9300,
];

/// TCP ports EC2.18 allows to be open to the world.
pub const AUTHORIZED_TCP_PORTS: &[i32] = &[80, 443];

/// The result of one control on one resource.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub control: &'static ControlDef,
    pub account: AccountId,
    pub region: String,
    /// The ASFF `Resources[0]` object.
    pub resource: Value,
    pub resource_id: String,
    pub passed: bool,
    /// Why, in words (kept in ProductFields for people reading the raw JSON).
    pub reason: String,
}

impl Evaluation {
    /// Stable finding Id: Security Hub's form with a UUID-shaped digest of what was evaluated.
    pub fn finding_id(&self) -> String {
        let key = format!(
            "{}|{}|{}|{}",
            self.control.id, self.account, self.region, self.resource_id
        );
        format!(
            "arn:aws:securityhub:{}:{}:security-control/{}/finding/{}",
            self.region,
            self.account,
            self.control.id,
            uuid_like(&key)
        )
    }

    pub fn product_arn(&self) -> String {
        format!(
            "arn:aws:securityhub:{}::product/aws/securityhub",
            self.region
        )
    }
}

/// FNV-1a 64-bit; stable across Rust versions, unlike the std hasher.
pub fn fnv1a(seed: u64, s: &str) -> u64 {
    s.bytes().fold(seed, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn uuid_like(key: &str) -> String {
    let a = fnv1a(0xcbf2_9ce4_8422_2325, key);
    let b = fnv1a(0x8422_2325_cbf2_9ce4, key);
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn account_resource(account: &AccountId, region: &str) -> (String, Value) {
    let id = format!("AWS::::Account:{account}");
    let v = json!({"Type": "AwsAccount", "Id": id, "Partition": "aws", "Region": region});
    (id, v)
}

fn permission(r: &IngressRule) -> Value {
    let mut p = json!({"IpProtocol": r.protocol});
    if !r.is_all_traffic() {
        p["FromPort"] = json!(r.from_port);
        p["ToPort"] = json!(r.to_port);
    }
    if let Some(c) = &r.cidr_ipv4 {
        p["IpRanges"] = json!([{"CidrIp": c}]);
    }
    if let Some(c) = &r.cidr_ipv6 {
        p["Ipv6Ranges"] = json!([{"CidrIpv6": c}]);
    }
    p
}

fn sg_resource(account: &AccountId, region: &str, g: &SecurityGroup) -> (String, Value) {
    let id = format!(
        "arn:aws:ec2:{region}:{account}:security-group/{}",
        g.group_id
    );
    let v = json!({
        "Type": "AwsEc2SecurityGroup",
        "Id": id,
        "Partition": "aws",
        "Region": region,
        "Tags": g.tags,
        "Details": {"AwsEc2SecurityGroup": {
            "GroupName": g.group_name,
            "GroupId": g.group_id,
            "OwnerId": account.as_str(),
            "VpcId": g.vpc_id,
            "IpPermissions": g.ingress.iter().map(permission).collect::<Vec<_>>(),
            "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
        }}
    });
    (id, v)
}

fn kms_resource(account: &AccountId, region: &str, k: &KmsKey) -> (String, Value) {
    let id = format!("arn:aws:kms:{region}:{account}:key/{}", k.key_id);
    let created = DateTime::parse_from_rfc3339(&k.creation_date)
        .map(|t| t.timestamp())
        .unwrap_or_default();
    let v = json!({
        "Type": "AwsKmsKey",
        "Id": id,
        "Partition": "aws",
        "Region": region,
        "Details": {"AwsKmsKey": {
            "AWSAccountId": account.as_str(),
            "KeyId": k.key_id,
            "Description": k.description,
            "KeyManager": if k.key_manager == super::state::KeyManager::Customer { "CUSTOMER" } else { "AWS" },
            "KeyState": k.key_state,
            "Origin": "AWS_KMS",
            "CreationDate": created,
            "KeyRotationStatus": k.rotation_enabled
        }}
    });
    (id, v)
}

fn trail_resource(account: &AccountId, region: &str, t: &Trail) -> (String, Value) {
    let id = format!("arn:aws:cloudtrail:{region}:{account}:trail/{}", t.name);
    let mut details = json!({
        "Name": t.name,
        "TrailArn": id,
        "HomeRegion": region,
        "IsMultiRegionTrail": t.is_multi_region,
        "IncludeGlobalServiceEvents": t.is_multi_region,
        "LogFileValidationEnabled": t.log_file_validation,
        "S3BucketName": t.s3_bucket
    });
    if let Some(k) = &t.kms_key_id {
        details["KmsKeyId"] = json!(format!("arn:aws:kms:{region}:{account}:key/{k}"));
    }
    let v = json!({
        "Type": "AwsCloudTrailTrail",
        "Id": id,
        "Partition": "aws",
        "Region": region,
        "Details": {"AwsCloudTrailTrail": details}
    });
    (id, v)
}

fn world_rules(g: &SecurityGroup) -> impl Iterator<Item = &IngressRule> {
    g.ingress.iter().filter(|r| r.is_open_to_world())
}

fn describe_rules(rules: &[&IngressRule]) -> String {
    rules
        .iter()
        .map(|r| format!("{} from {} ({})", r.ports(), r.source(), r.rule_id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pass if no offending rule; the reason lists them otherwise.
fn rule_check(offending: Vec<&IngressRule>, what: &str) -> (bool, String) {
    if offending.is_empty() {
        (
            true,
            format!("no rule allows {what} from 0.0.0.0/0 or ::/0"),
        )
    } else {
        (
            false,
            format!("open to the world: {}", describe_rules(&offending)),
        )
    }
}

fn evaluate_security_group(g: &SecurityGroup) -> Vec<(&'static ControlDef, bool, String)> {
    let port_check = |port: i32| {
        rule_check(
            world_rules(g).filter(|r| r.allows_tcp_port(port)).collect(),
            &format!("port {port}"),
        )
    };
    let high_risk = rule_check(
        world_rules(g)
            .filter(|r| {
                r.is_all_traffic()
                    || HIGH_RISK_PORTS
                        .iter()
                        .any(|p| r.from_port <= *p && *p <= r.to_port)
            })
            .collect(),
        "high-risk ports",
    );
    let unauthorized = rule_check(
        world_rules(g)
            .filter(|r| {
                let authorized = r.protocol.eq_ignore_ascii_case("tcp")
                    && AUTHORIZED_TCP_PORTS
                        .iter()
                        .any(|p| r.from_port == *p && r.to_port == *p);
                !authorized
            })
            .collect(),
        "unauthorized ports",
    );
    let (p22, r22) = port_check(22);
    let (p3389, r3389) = port_check(3389);
    vec![
        (&EC2_19, high_risk.0, high_risk.1),
        (&EC2_13, p22, r22),
        (&EC2_14, p3389, r3389),
        (&EC2_18, unauthorized.0, unauthorized.1),
    ]
}

fn password_checks(acct: &AccountState) -> Vec<(&'static ControlDef, bool, String)> {
    let Some(p) = &acct.password_policy else {
        let why = "the account has no custom password policy".to_string();
        return [
            &IAM_7, &IAM_11, &IAM_12, &IAM_13, &IAM_14, &IAM_15, &IAM_16, &IAM_17,
        ]
        .into_iter()
        .map(|c| (c, false, why.clone()))
        .collect();
    };
    let reuse = p.password_reuse_prevention.unwrap_or(0);
    let age_ok = p.max_password_age.is_some_and(|d| d <= 90);
    let flag = |ok: bool, what: &str| {
        let verb = if ok { "requires" } else { "does not require" };
        (ok, format!("the policy {verb} {what}"))
    };
    let strong = p.require_uppercase_characters
        && p.require_lowercase_characters
        && p.require_numbers
        && p.require_symbols
        && p.minimum_password_length >= 8
        && reuse >= 24
        && age_ok;
    let (u, ur) = flag(p.require_uppercase_characters, "an uppercase letter");
    let (l, lr) = flag(p.require_lowercase_characters, "a lowercase letter");
    let (s, sr) = flag(p.require_symbols, "a symbol");
    let (n, nr) = flag(p.require_numbers, "a number");
    vec![
        (
            &IAM_7,
            strong,
            format!(
                "minimum length {}, symbols {}, numbers {}, uppercase {}, lowercase {}, reuse prevention {}, maximum age {}",
                p.minimum_password_length,
                p.require_symbols,
                p.require_numbers,
                p.require_uppercase_characters,
                p.require_lowercase_characters,
                reuse,
                p.max_password_age
                    .map_or("none".to_string(), |d| format!("{d} days"))
            ),
        ),
        (&IAM_11, u, ur),
        (&IAM_12, l, lr),
        (&IAM_13, s, sr),
        (&IAM_14, n, nr),
        (
            &IAM_15,
            p.minimum_password_length >= 14,
            format!("minimum password length is {}", p.minimum_password_length),
        ),
        (
            &IAM_16,
            reuse >= 24,
            format!("{reuse} previous passwords are remembered"),
        ),
        (
            &IAM_17,
            age_ok,
            p.max_password_age
                .map_or("passwords never expire".to_string(), |d| {
                    format!("passwords expire after {d} days")
                }),
        ),
    ]
}

fn region_checks(
    acct: &AccountState,
    reg: &RegionState,
) -> Vec<(&'static ControlDef, bool, String)> {
    let gd = match &reg.guardduty {
        None => (false, "no GuardDuty detector in this Region".to_string()),
        Some(d) if d.status == super::state::DetectorStatus::Disabled => (
            false,
            format!("GuardDuty detector {} is disabled", d.detector_id),
        ),
        Some(d) => (
            true,
            format!("GuardDuty detector {} is enabled", d.detector_id),
        ),
    };
    let pab = &acct.s3_public_access_block;
    let trail_ok = acct
        .regions
        .iter()
        .flat_map(|r| &r.trails)
        .any(|t| t.is_multi_region && t.is_logging && t.include_management_events);
    vec![
        (&GUARDDUTY_1, gd.0, gd.1),
        (
            &EC2_7,
            reg.ebs_encryption_by_default,
            format!(
                "EBS encryption by default is {}",
                on_off(reg.ebs_encryption_by_default)
            ),
        ),
        (
            &S3_1,
            pab.all_on(),
            format!(
                "BlockPublicAcls {}, IgnorePublicAcls {}, BlockPublicPolicy {}, RestrictPublicBuckets {}",
                pab.block_public_acls,
                pab.ignore_public_acls,
                pab.block_public_policy,
                pab.restrict_public_buckets
            ),
        ),
        (
            &CLOUDTRAIL_1,
            trail_ok,
            if trail_ok {
                "a multi-Region trail logs management events".to_string()
            } else {
                "no logging multi-Region trail with management events".to_string()
            },
        ),
        (
            &CONFIG_1,
            reg.config_recording,
            format!("AWS Config recording is {}", on_off(reg.config_recording)),
        ),
    ]
}

fn on_off(b: bool) -> &'static str {
    if b { "enabled" } else { "disabled" }
}

/// Evaluates every control over the organisation, in a stable order.
pub fn evaluate(state: &OrgState) -> Vec<Evaluation> {
    let mut out = Vec::new();
    for acct in &state.accounts {
        let a = &acct.id;
        for (ctrl, passed, reason) in password_checks(acct) {
            let (rid, res) = account_resource(a, &state.home_region);
            out.push(Evaluation {
                control: ctrl,
                account: a.clone(),
                region: state.home_region.clone(),
                resource: res,
                resource_id: rid,
                passed,
                reason,
            });
        }
        for reg in &acct.regions {
            let r = reg.region.as_str();
            let mut push = |ctrl: &'static ControlDef,
                            passed: bool,
                            reason: String,
                            (rid, res): (String, Value)| {
                out.push(Evaluation {
                    control: ctrl,
                    account: a.clone(),
                    region: r.to_string(),
                    resource: res,
                    resource_id: rid,
                    passed,
                    reason,
                });
            };
            for (ctrl, passed, reason) in region_checks(acct, reg) {
                push(ctrl, passed, reason, account_resource(a, r));
            }
            for g in &reg.security_groups {
                for (ctrl, passed, reason) in evaluate_security_group(g) {
                    push(ctrl, passed, reason, sg_resource(a, r, g));
                }
            }
            for k in reg.kms_keys.iter().filter(|k| k.rotation_applies()) {
                let reason = format!("automatic rotation is {}", on_off(k.rotation_enabled));
                push(&KMS_4, k.rotation_enabled, reason, kms_resource(a, r, k));
            }
            for t in &reg.trails {
                let enc = t.kms_key_id.is_some();
                let reason = format!("KMS encryption is {}", on_off(enc));
                push(&CLOUDTRAIL_2, enc, reason, trail_resource(a, r, t));
                let reason = format!("log file validation is {}", on_off(t.log_file_validation));
                push(
                    &CLOUDTRAIL_4,
                    t.log_file_validation,
                    reason,
                    trail_resource(a, r, t),
                );
            }
        }
    }
    out
}

/// Timestamps and workflow for one finding, decided by the sandbox.
pub struct Render<'a> {
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub workflow: WorkflowStatus,
    pub note: Option<&'a Note>,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The ASFF JSON Security Hub would return for this evaluation.
pub fn to_asff(e: &Evaluation, r: &Render<'_>) -> Value {
    let c = e.control;
    let id = e.finding_id();
    // Passed control findings carry INFORMATIONAL; Original keeps the control's severity.
    let label = if e.passed {
        Severity::Informational
    } else {
        c.severity
    };
    let status = if e.passed { "PASSED" } else { "FAILED" };
    let resource_id = e.resource_id.clone();
    let mut v = json!({
        "SchemaVersion": "2018-10-08",
        "Id": id,
        "ProductArn": e.product_arn(),
        "ProductName": "Security Hub",
        "CompanyName": "AWS",
        "Region": e.region,
        "GeneratorId": format!("security-control/{}", c.id),
        "AwsAccountId": e.account.as_str(),
        "Types": ["Software and Configuration Checks/Industry and Regulatory Standards"],
        "FirstObservedAt": ts(r.created_at),
        "LastObservedAt": ts(r.updated_at),
        "CreatedAt": ts(r.created_at),
        "UpdatedAt": ts(r.updated_at),
        "Severity": {"Label": label.label(), "Normalized": label.normalized(), "Original": c.severity.label()},
        "Title": c.title,
        "Description": c.description,
        "Remediation": {"Recommendation": {
            "Text": "For information on how to correct this issue, consult the AWS Security Hub controls documentation.",
            "Url": format!("https://docs.aws.amazon.com/console/securityhub/{}/remediation", c.id)
        }},
        "ProductFields": {
            "RelatedAWSResources:0/name": format!("securityhub-{}-{:08x}", c.config_rule, fnv1a(7, &resource_id) as u32),
            "RelatedAWSResources:0/type": "AWS::Config::ConfigRule",
            "aws/securityhub/ProductName": "Security Hub",
            "aws/securityhub/CompanyName": "AWS",
            "Resources:0/Id": resource_id,
            "aws/securityhub/FindingId": format!("{}/{}", e.product_arn(), id),
            "RunbookSandbox/EvaluationReason": e.reason
        },
        "Resources": [e.resource],
        "Compliance": {
            "Status": status,
            "SecurityControlId": c.id,
            "AssociatedStandards": c.standards.iter().map(|s| json!({"StandardsId": s})).collect::<Vec<_>>()
        },
        "WorkflowState": if r.workflow == WorkflowStatus::Resolved { "RESOLVED" } else { "NEW" },
        "Workflow": {"Status": r.workflow.label()},
        "RecordState": "ACTIVE",
        "FindingProviderFields": {
            "Severity": {"Label": label.label(), "Original": c.severity.label()},
            "Types": ["Software and Configuration Checks/Industry and Regulatory Standards"]
        }
    });
    if let Some(n) = r.note {
        v["Note"] = json!({
            "Text": n.text,
            "UpdatedBy": n.updated_by,
            "UpdatedAt": n.updated_at.map(ts)
        });
    }
    v
}
