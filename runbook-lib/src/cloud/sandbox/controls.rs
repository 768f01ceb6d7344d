//! Security Hub controls evaluated over the sandbox state, and the ASFF JSON of
//! their findings. Titles and severities follow the Security Hub controls reference.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::state::{
    AccountState, IngressRule, KmsKey, OrgState, RegionState, SecurityGroup, Trail,
};
use crate::finding::{AccountId, Note, WorkflowStatus};
use crate::severity::Severity;

pub const FSBP: &str = "standards/aws-foundational-security-best-practices/v/1.0.0";
pub const CIS_12: &str = "ruleset/cis-aws-foundations-benchmark/v/1.2.0";
pub const CIS_14: &str = "standards/cis-aws-foundations-benchmark/v/1.4.0";
pub const NIST: &str = "standards/nist-800-53/v/5.0.0";
pub const PCI: &str = "standards/pci-dss/v/3.2.1";

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

/// Declares a [`ControlDef`] constant (used by the catalog's family files too).
#[macro_export]
macro_rules! control {
    ($name:ident, $id:literal, $sev:ident, $rule:literal, [$($std:expr),*], $title:literal, $desc:literal) => {
        pub const $name: $crate::cloud::sandbox::controls::ControlDef =
            $crate::cloud::sandbox::controls::ControlDef {
                id: $id,
                title: $title,
                description: $desc,
                severity: $crate::severity::Severity::$sev,
                standards: &[$($std),*],
                config_rule: $rule,
            };
    };
}

crate::control!(
    CLOUDTRAIL_1,
    "CloudTrail.1",
    High,
    "multi-region-cloudtrail-enabled",
    [FSBP, CIS_14, NIST],
    "CloudTrail should be enabled and configured with at least one multi-Region trail that includes read and write management events",
    "This control checks whether there is at least one multi-Region AWS CloudTrail trail that is logging and captures read and write management events. The control fails if there is no such trail in the account."
);
crate::control!(
    CLOUDTRAIL_2,
    "CloudTrail.2",
    Medium,
    "cloud-trail-encryption-enabled",
    [FSBP, CIS_14, NIST, PCI],
    "CloudTrail should have encryption at-rest enabled",
    "This control checks whether a CloudTrail trail is configured to use server-side encryption with an AWS KMS key. The control fails if the trail's KmsKeyId isn't defined."
);
crate::control!(
    CLOUDTRAIL_4,
    "CloudTrail.4",
    Low,
    "cloud-trail-log-file-validation-enabled",
    [FSBP, CIS_14, NIST, PCI],
    "CloudTrail log file validation should be enabled",
    "This control checks whether log file integrity validation is enabled on a CloudTrail trail. The control fails if log file validation isn't enabled."
);
crate::control!(
    CONFIG_1,
    "Config.1",
    Critical,
    "config-enabled",
    [FSBP, CIS_14, NIST, PCI],
    "AWS Config should be enabled and use the service-linked role for resource recording",
    "This control checks whether AWS Config is enabled in your account in the current Region and records all resources. The control fails if AWS Config isn't enabled or doesn't record all resources."
);

crate::control!(
    ACCOUNT_1,
    "Account.1",
    Medium,
    "security-account-information-provided",
    [FSBP, NIST],
    "Security contact information should be provided for an AWS account",
    "This control checks if an Amazon Web Services (AWS) account has security contact information. The control fails if security contact information is not provided for the account."
);

/// The controls the sandbox evaluates itself: the table's controls whose
/// resources it models (trails, Config recording), and Account.1, which no
/// runbook covers (a finding to explain but not fix). Typed families evaluate
/// their own.
pub const EVALUATED_HERE: &[&ControlDef] = &[
    &CLOUDTRAIL_1,
    &CLOUDTRAIL_2,
    &CLOUDTRAIL_4,
    &CONFIG_1,
    &ACCOUNT_1,
];

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
    pub fn of(
        control: &'static ControlDef,
        account: &AccountId,
        region: &str,
        (resource_id, resource): (String, Value),
        passed: bool,
        reason: String,
    ) -> Evaluation {
        Evaluation {
            control,
            account: account.clone(),
            region: region.to_string(),
            resource,
            resource_id,
            passed,
            reason,
        }
    }

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

pub fn account_resource(account: &AccountId, region: &str) -> (String, Value) {
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

pub fn sg_resource(account: &AccountId, region: &str, g: &SecurityGroup) -> (String, Value) {
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

pub fn kms_resource(account: &AccountId, region: &str, k: &KmsKey) -> (String, Value) {
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

pub fn on_off(b: bool) -> &'static str {
    if b { "enabled" } else { "disabled" }
}

/// One evaluation of an account-wide, per-region `control` in every account and
/// region, on the account resource: `check` says whether it passes and why.
pub fn per_region(
    state: &OrgState,
    control: &'static ControlDef,
    check: impl Fn(&AccountState, &RegionState) -> (bool, String),
) -> Vec<Evaluation> {
    let mut out = Vec::new();
    for acct in &state.accounts {
        for reg in &acct.regions {
            let (passed, reason) = check(acct, reg);
            out.push(Evaluation::of(
                control,
                &acct.id,
                &reg.region,
                account_resource(&acct.id, &reg.region),
                passed,
                reason,
            ));
        }
    }
    out
}

/// Evaluates every control over the organisation: each catalog family's, then the
/// uncovered ones.
pub fn evaluate(state: &OrgState) -> Vec<Evaluation> {
    let mut out: Vec<Evaluation> = crate::catalog::CATALOG
        .iter()
        .flat_map(|e| e.family.evaluate(state))
        .collect();
    out.extend(per_region(state, &CLOUDTRAIL_1, |acct, _| {
        let logging = acct
            .regions
            .iter()
            .flat_map(|r| &r.trails)
            .any(|t| t.is_multi_region && t.is_logging && t.include_management_events);
        let reason = if logging {
            "a multi-Region trail logs management events"
        } else {
            "no logging multi-Region trail with management events"
        };
        (logging, reason.to_string())
    }));
    // A global control: Security Hub reports it once, in the account's home Region.
    out.extend(state.accounts.iter().filter_map(|acct| {
        let home = acct.regions.first()?;
        let (passed, reason) = if acct.security_contact {
            (true, "a security alternate contact is set")
        } else {
            (false, "no security alternate contact is set")
        };
        Some(Evaluation::of(
            &ACCOUNT_1,
            &acct.id,
            &home.region,
            account_resource(&acct.id, &home.region),
            passed,
            reason.to_string(),
        ))
    }));
    out.extend(per_region(state, &CONFIG_1, |_, reg| {
        let on = reg.config_recording;
        (on, format!("AWS Config recording is {}", on_off(on)))
    }));
    for acct in &state.accounts {
        let a = &acct.id;
        for reg in &acct.regions {
            let r = reg.region.as_str();
            for t in &reg.trails {
                let enc = t.kms_key_id.is_some();
                out.push(Evaluation::of(
                    &CLOUDTRAIL_2,
                    a,
                    r,
                    trail_resource(a, r, t),
                    enc,
                    format!("KMS encryption is {}", on_off(enc)),
                ));
                out.push(Evaluation::of(
                    &CLOUDTRAIL_4,
                    a,
                    r,
                    trail_resource(a, r, t),
                    t.log_file_validation,
                    format!("log file validation is {}", on_off(t.log_file_validation)),
                ));
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
