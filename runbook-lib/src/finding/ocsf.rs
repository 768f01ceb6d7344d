//! The new Security Hub's findings (OCSF, from GetFindingsV2) read into the same
//! [`Finding`] model as ASFF, tolerantly: any OCSF class, missing and unknown
//! fields ignored, the raw object kept.

use serde_json::Value;

use super::{
    AccountId, Compliance, ComplianceStatus, Finding, FindingError, FindingSource, Note, RawJson,
    RecordState, Resource, WorkflowStatus, arn_region, at, json_kind, parse_control, str_at,
    string_list, time_at,
};
use crate::severity::Severity;

/// OCSF `severity_id`: 1 Informational … 5 Critical, 6 Fatal.
fn severity(raw: &Value) -> Severity {
    match raw.get("severity_id").and_then(Value::as_i64) {
        Some(1) => return Severity::Informational,
        Some(2) => return Severity::Low,
        Some(3) => return Severity::Medium,
        Some(4) => return Severity::High,
        Some(5 | 6) => return Severity::Critical,
        _ => {}
    }
    match str_at(raw, &["severity"])
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("low") => Severity::Low,
        Some("medium") => Severity::Medium,
        Some("high") => Severity::High,
        Some("critical" | "fatal") => Severity::Critical,
        _ => Severity::Informational,
    }
}

/// OCSF `status_id` (1 New, 2 In Progress, 3 Suppressed, 4 Resolved, 5 Archived)
/// as ASFF's workflow status and record state; the new Security Hub shows In
/// Progress where CSPM says NOTIFIED.
fn workflow(raw: &Value) -> (WorkflowStatus, RecordState) {
    let by_id = match raw.get("status_id").and_then(Value::as_i64) {
        Some(1) => Some(WorkflowStatus::New),
        Some(2) => Some(WorkflowStatus::Notified),
        Some(3) => Some(WorkflowStatus::Suppressed),
        Some(4) => Some(WorkflowStatus::Resolved),
        Some(5) => return (WorkflowStatus::Resolved, RecordState::Archived),
        _ => None,
    };
    let status = by_id.unwrap_or_else(|| {
        match str_at(raw, &["status"])
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("in progress" | "in_progress" | "notified") => WorkflowStatus::Notified,
            Some("suppressed") => WorkflowStatus::Suppressed,
            Some("resolved") => WorkflowStatus::Resolved,
            _ => WorkflowStatus::New,
        }
    });
    (status, RecordState::Active)
}

/// OCSF `compliance.status_id` (1 Pass, 2 Warning, 3 Fail), else its `status`.
fn compliance_status(c: &Value) -> Option<ComplianceStatus> {
    match c.get("status_id").and_then(Value::as_i64) {
        Some(1) => return Some(ComplianceStatus::Passed),
        Some(2) => return Some(ComplianceStatus::Warning),
        Some(3) => return Some(ComplianceStatus::Failed),
        _ => {}
    }
    match str_at(c, &["status"])?.to_ascii_lowercase().as_str() {
        "pass" | "passed" => Some(ComplianceStatus::Passed),
        "warning" => Some(ComplianceStatus::Warning),
        "fail" | "failed" => Some(ComplianceStatus::Failed),
        "not available" | "not_available" => Some(ComplianceStatus::NotAvailable),
        _ => None,
    }
}

/// `AWS::EC2::SecurityGroup` → `AwsEc2SecurityGroup`, the ASFF spelling the
/// catalog and filters use; ASFF-style names pass through.
pub fn asff_resource_type(ocsf: &str) -> String {
    if !ocsf.contains("::") {
        return ocsf.to_string();
    }
    ocsf.split("::")
        .filter(|part| !part.is_empty())
        .map(|part| {
            if part
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            {
                let mut chars = part.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_string() + &chars.as_str().to_ascii_lowercase()
                })
            } else {
                part.to_string()
            }
        })
        .collect()
}

/// OCSF tags and labels: `[{"name": k, "value": v}]` or a plain object.
fn tags(v: Option<&Value>) -> std::collections::BTreeMap<String, String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|t| {
                let name = str_at(t, &["name"]).or_else(|| str_at(t, &["key"]))?;
                let value = t.get("value").map_or_else(String::new, |v| {
                    v.as_str().map_or_else(|| v.to_string(), str::to_string)
                });
                Some((name.to_string(), value))
            })
            .collect(),
        other => super::string_map(other),
    }
}

fn resource(v: &Value) -> Option<Resource> {
    // The new Security Hub puts the bare id (sg-…) in uid and the ARN, when
    // known, in uid_alt; the catalog names resources by ARN as ASFF does.
    let id = str_at(v, &["uid_alt"])
        .filter(|a| a.starts_with("arn:"))
        .or_else(|| str_at(v, &["uid"]))?;
    let mut tags = tags(v.get("tags"));
    if let Some(name) = str_at(v, &["name"]) {
        tags.entry("Name".to_string())
            .or_insert_with(|| name.to_string());
    }
    Some(Resource {
        resource_type: asff_resource_type(str_at(v, &["type"]).unwrap_or("Other")),
        id: id.to_string(),
        region: str_at(v, &["region"]).map(str::to_string),
        partition: str_at(v, &["cloud_partition"]).map(str::to_string),
        details_json: v.get("data").map(RawJson::new).unwrap_or_default(),
        tags,
    })
}

fn compliance(raw: &Value) -> Compliance {
    let Some(c) = raw.get("compliance") else {
        return Compliance::default();
    };
    Compliance {
        status: compliance_status(c),
        associated_standards: string_list(c.get("standards")),
        related_requirements: string_list(c.get("requirements")),
        status_reasons: Vec::new(),
    }
}

impl Finding {
    /// Reads one OCSF finding as GetFindingsV2 returns it. Only `metadata.uid`
    /// (or `finding_info.uid`) and `cloud.account.uid` are required.
    pub fn from_ocsf(raw: Value) -> Result<Finding, FindingError> {
        if !raw.is_object() {
            return Err(FindingError::NotAnObject(json_kind(&raw)));
        }
        let id = str_at(&raw, &["metadata", "uid"])
            .or_else(|| str_at(&raw, &["finding_info", "uid"]))
            .ok_or(FindingError::Missing("metadata.uid"))?
            .to_string();
        let account = str_at(&raw, &["cloud", "account", "uid"])
            .ok_or(FindingError::Missing("cloud.account.uid"))?
            .parse::<AccountId>()
            .map_err(|e| FindingError::Invalid {
                field: "cloud.account.uid",
                reason: e.to_string(),
            })?;
        let resources: Vec<Resource> = raw
            .get("resources")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(resource).collect())
            .unwrap_or_default();
        let region = str_at(&raw, &["cloud", "region"])
            .map(str::to_string)
            .or_else(|| resources.iter().find_map(|r| r.region.clone()))
            .or_else(|| arn_region(&id).map(str::to_string))
            .unwrap_or_default();
        let product_arn = str_at(&raw, &["metadata", "product", "uid"])
            .unwrap_or_default()
            .to_string();
        let generator_id = str_at(&raw, &["finding_info", "analytic", "uid"])
            .or_else(|| str_at(&raw, &["finding_info", "analytic", "name"]))
            .map(str::to_string);
        let (control_id, standard_control) = parse_control([
            str_at(&raw, &["compliance", "control"]),
            generator_id.as_deref(),
        ]);
        let (workflow, record_state) = workflow(&raw);
        let remediation_url = at(&raw, &["remediation", "references"])
            .and_then(Value::as_array)
            .and_then(|refs| {
                refs.iter()
                    .filter_map(Value::as_str)
                    .find(|r| r.starts_with("https://"))
            })
            .map(str::to_string);
        let note = str_at(&raw, &["comment"]).map(|text| Note {
            text: text.to_string(),
            updated_by: None,
            updated_at: None,
        });
        Ok(Finding {
            severity: severity(&raw),
            title: str_at(&raw, &["finding_info", "title"])
                .unwrap_or_default()
                .to_string(),
            description: str_at(&raw, &["finding_info", "desc"])
                .unwrap_or_default()
                .to_string(),
            product_name: str_at(&raw, &["metadata", "product", "name"]).map(str::to_string),
            compliance: compliance(&raw),
            created_at: time_at(&raw, &["finding_info", "created_time_dt"]),
            updated_at: time_at(&raw, &["finding_info", "modified_time_dt"])
                .or_else(|| time_at(&raw, &["time_dt"])),
            source: FindingSource::Ocsf,
            control_id,
            standard_control,
            generator_id,
            workflow,
            record_state,
            remediation_url,
            note,
            id,
            product_arn,
            account,
            region,
            resources,
            raw: RawJson::new(&raw),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resource_types_take_the_asff_spelling() {
        assert_eq!(
            asff_resource_type("AWS::EC2::SecurityGroup"),
            "AwsEc2SecurityGroup"
        );
        assert_eq!(asff_resource_type("AWS::IAM::AccessKey"), "AwsIamAccessKey");
        assert_eq!(asff_resource_type("AWS::::Account"), "AwsAccount");
        assert_eq!(asff_resource_type("AwsS3Bucket"), "AwsS3Bucket");
    }

    #[test]
    fn minimal_ocsf_finding_needs_uid_and_account() {
        let f = Finding::from_ocsf(json!({
            "metadata": {"uid": "u-1"},
            "cloud": {"account": {"uid": "123456789012"}, "region": "eu-west-1"},
            "unknown": {"deep": [1]},
        }))
        .unwrap();
        assert_eq!(f.id, "u-1");
        assert_eq!(f.region, "eu-west-1");
        assert_eq!(f.severity, Severity::Informational);
        assert_eq!(f.source, FindingSource::Ocsf);
        let missing = Finding::from_ocsf(json!({"metadata": {"uid": "u"}})).unwrap_err();
        assert_eq!(missing, FindingError::Missing("cloud.account.uid"));
        assert!(Finding::from_ocsf(json!("x")).is_err());
    }

    #[test]
    fn control_finding_fields_map() {
        let f = Finding::from_ocsf(json!({
            "metadata": {"uid": "arn:aws:securityhub:us-east-1:222222222222:security-control/EC2.19/finding/1",
                         "product": {"name": "Security Hub", "uid": "arn:aws:securityhub:us-east-1::productv2/aws/securityhub"}},
            "cloud": {"account": {"uid": "222222222222"}, "region": "us-east-1"},
            "severity_id": 5, "severity": "Critical", "status_id": 2, "status": "In Progress",
            "comment": "ticket 7",
            "finding_info": {"title": "t", "desc": "d", "uid": "x", "modified_time_dt": "2025-06-01T00:00:00Z"},
            "compliance": {"control": "EC2.19", "status": "Fail", "standards": ["standards/aws-foundational-security-best-practices/v/1.0.0"]},
            "resources": [{"uid": "arn:aws:ec2:us-east-1:222222222222:security-group/sg-1", "type": "AWS::EC2::SecurityGroup",
                           "name": "bastion", "tags": [{"name": "Owner", "value": "ops"}], "region": "us-east-1"}],
            "remediation": {"references": ["https://docs.aws.amazon.com/securityhub/latest/userguide/ec2-controls.html"]}
        }))
        .unwrap();
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.workflow, WorkflowStatus::Notified);
        assert_eq!(f.control_id.unwrap().as_str(), "EC2.19");
        assert_eq!(f.compliance.status, Some(ComplianceStatus::Failed));
        assert_eq!(f.resources[0].resource_type, "AwsEc2SecurityGroup");
        assert_eq!(f.resources[0].name().as_deref(), Some("bastion"));
        assert_eq!(f.resources[0].tags["Owner"], "ops");
        assert_eq!(f.note.unwrap().text, "ticket 7");
        assert!(f.remediation_url.is_some());
    }
}
