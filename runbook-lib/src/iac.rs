//! A plan as infrastructure as code, where its change is a property of a resource
//! Terraform or CloudFormation manages. The resources exist already, so the code
//! imports them (Terraform `import` blocks; a CloudFormation IMPORT change set)
//! and sets only the values the plan sets. Changes that are not a resource's
//! property (revoking one security group rule, running an Automation runbook)
//! have no such form and are refused by name.

use serde_json::{Value, json};

use crate::catalog::{Action, shell_quote};
use crate::plan::RemediationPlan;
use crate::resources::{PasswordPolicy, PublicAccessBlock};

/// Which infrastructure-as-code form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IacFormat {
    Terraform,
    CloudFormation,
}

impl IacFormat {
    fn name(self) -> &'static str {
        match self {
            IacFormat::Terraform => "terraform",
            IacFormat::CloudFormation => "cloudformation",
        }
    }
}

/// Why a plan has no infrastructure-as-code form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "action {index} ({action}) cannot be exported as {format}: {why}; {format} exports take {accepted}"
)]
pub struct IacError {
    pub index: usize,
    pub action: String,
    pub format: &'static str,
    pub why: &'static str,
    pub accepted: String,
}

/// The plan steps each format can express, for the error and the README.
pub fn supported(format: IacFormat) -> &'static [&'static str] {
    match format {
        IacFormat::Terraform => &[
            "EnableEbsEncryptionByDefault",
            "BlockS3PublicAccess",
            "SetPasswordPolicy",
            "EnableGuardDuty",
            "EnableKmsKeyRotation",
        ],
        IacFormat::CloudFormation => &["EnableGuardDuty"],
    }
}

/// One Terraform resource a plan sets: its type, the id it is imported by (None:
/// the plan creates it) and the attributes the plan sets.
struct TfResource {
    kind: &'static str,
    import_id: Option<String>,
    attributes: Vec<(&'static str, Value)>,
}

fn why_not(action: &Action, format: IacFormat) -> &'static str {
    match (action, format) {
        (Action::RevokeIngress(_), _) => {
            "removing one security group rule is not a resource property (the group's other rules would have to be declared too)"
        }
        (Action::RunAutomation(_), _) => {
            "it runs an Automation runbook, which is not a resource property; export it with --format ssm"
        }
        (
            Action::EnableEbsEncryptionByDefault(_) | Action::BlockS3PublicAccess(_),
            IacFormat::CloudFormation,
        )
        | (Action::SetPasswordPolicy(_), IacFormat::CloudFormation) => {
            "CloudFormation has no resource type for this account setting"
        }
        (Action::EnableKmsKeyRotation(_), IacFormat::CloudFormation) => {
            "importing a key into CloudFormation needs its whole key policy, which the plan does not carry (and an update would replace the key's policy)"
        }
        _ => "it only undoes another action",
    }
}

fn password_attributes(p: &PasswordPolicy) -> Vec<(&'static str, Value)> {
    let mut out = vec![
        ("minimum_password_length", json!(p.minimum_password_length)),
        ("require_symbols", json!(p.require_symbols)),
        ("require_numbers", json!(p.require_numbers)),
        (
            "require_uppercase_characters",
            json!(p.require_uppercase_characters),
        ),
        (
            "require_lowercase_characters",
            json!(p.require_lowercase_characters),
        ),
        (
            "allow_users_to_change_password",
            json!(p.allow_users_to_change_password),
        ),
        ("hard_expiry", json!(p.hard_expiry)),
    ];
    if let Some(days) = p.max_password_age {
        out.push(("max_password_age", json!(days)));
    }
    if let Some(n) = p.password_reuse_prevention {
        out.push(("password_reuse_prevention", json!(n)));
    }
    out
}

fn block_attributes(b: &PublicAccessBlock) -> Vec<(&'static str, Value)> {
    vec![
        ("block_public_acls", json!(b.block_public_acls)),
        ("ignore_public_acls", json!(b.ignore_public_acls)),
        ("block_public_policy", json!(b.block_public_policy)),
        ("restrict_public_buckets", json!(b.restrict_public_buckets)),
    ]
}

fn terraform_resource(action: &Action, plan: &RemediationPlan) -> Option<TfResource> {
    Some(match action {
        Action::EnableEbsEncryptionByDefault(_) => TfResource {
            kind: "aws_ebs_encryption_by_default",
            import_id: Some("default".to_string()),
            attributes: vec![("enabled", json!(true))],
        },
        Action::BlockS3PublicAccess(a) => TfResource {
            kind: "aws_s3_account_public_access_block",
            import_id: Some(plan.account.to_string()),
            attributes: block_attributes(&a.block),
        },
        Action::SetPasswordPolicy(a) => TfResource {
            kind: "aws_iam_account_password_policy",
            // With no policy yet there is nothing to import; Terraform creates it.
            import_id: a
                .previous
                .as_ref()
                .map(|_| "iam-account-password-policy".to_string()),
            attributes: password_attributes(&a.policy),
        },
        Action::EnableGuardDuty(a) => TfResource {
            kind: "aws_guardduty_detector",
            import_id: a.existing_detector.clone(),
            attributes: vec![("enable", json!(true))],
        },
        Action::EnableKmsKeyRotation(a) => TfResource {
            kind: "aws_kms_key",
            import_id: Some(a.key_id.clone()),
            attributes: vec![("enable_key_rotation", json!(true))],
        },
        _ => return None,
    })
}

/// A string as an HCL quoted template: quotes, backslashes, control characters
/// and the template sequences `${` and `%{` are escaped, so text from a finding
/// stays text.
fn hcl_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn hcl_value(v: &Value) -> String {
    match v {
        Value::String(s) => hcl_string(s),
        other => other.to_string(),
    }
}

/// A comment line: no line break can end it early. YAML 1.1 readers also break
/// lines at U+0085, U+2028 and U+2029, so every control and separator character
/// becomes a space (text from a finding could otherwise add template keys).
fn comment(prefix: &str, text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect();
    format!("{prefix} {flat}\n")
}

fn refuse(index: usize, action: &Action, format: IacFormat) -> IacError {
    IacError {
        index,
        action: action.name().to_string(),
        format: format.name(),
        why: why_not(action, format),
        accepted: supported(format).join(", "),
    }
}

/// The plan's region, refused unless it is one (it comes from the finding).
fn checked_region(plan: &RemediationPlan, format: IacFormat) -> Result<(), IacError> {
    if crate::settings::is_region(&plan.region) {
        return Ok(());
    }
    Err(IacError {
        index: 0,
        action: "the plan".to_string(),
        format: format.name(),
        why: "its region is not an AWS Region name (such as us-east-1)",
        accepted: supported(format).join(", "),
    })
}

/// The plan as Terraform (HCL, Terraform 1.5 or later for `import` blocks).
pub fn terraform(plan: &RemediationPlan) -> Result<String, IacError> {
    checked_region(plan, IacFormat::Terraform)?;
    let mut body = String::new();
    body.push_str(&comment(
        "#",
        &format!(
            "Remediation plan {} ({}), generated by runbook-kernel for account {} in {}.",
            plan.id, plan.control_id, plan.account, plan.region
        ),
    ));
    body.push_str("# The resources exist: the import blocks adopt them, and `terraform plan` shows the change.\n");
    body.push_str(
        "# Review that plan: attributes not set here keep what Terraform reads on import.\n\n",
    );
    body.push_str("terraform {\n  required_version = \">= 1.5\"\n  required_providers {\n    aws = {\n      source  = \"hashicorp/aws\"\n      version = \">= 5.0\"\n    }\n  }\n}\n\n");
    body.push_str(&format!(
        "provider \"aws\" {{\n  region              = {}\n  allowed_account_ids = [{}]\n}}\n",
        hcl_string(&plan.region),
        hcl_string(plan.account.as_str())
    ));
    for (i, action) in plan.actions.iter().enumerate() {
        let resource = terraform_resource(action, plan)
            .ok_or_else(|| refuse(i + 1, action, IacFormat::Terraform))?;
        let address = format!("{}.action{}", resource.kind, i + 1);
        body.push('\n');
        body.push_str(&comment("#", &format!("{}. {}", i + 1, action.name())));
        if let Some(id) = &resource.import_id {
            body.push_str(&format!(
                "import {{\n  to = {address}\n  id = {}\n}}\n\n",
                hcl_string(id)
            ));
        }
        let width = resource
            .attributes
            .iter()
            .map(|(k, _)| k.len())
            .max()
            .unwrap_or(0);
        body.push_str(&format!(
            "resource \"{}\" \"action{}\" {{\n",
            resource.kind,
            i + 1
        ));
        for (key, value) in &resource.attributes {
            body.push_str(&format!("  {key:<width$} = {}\n", hcl_value(value)));
        }
        body.push_str("}\n");
    }
    Ok(body)
}

/// The plan as a CloudFormation template (YAML), with how to import what exists.
pub fn cloudformation(plan: &RemediationPlan) -> Result<String, IacError> {
    checked_region(plan, IacFormat::CloudFormation)?;
    let mut resources = serde_json::Map::new();
    let mut parameters = serde_json::Map::new();
    let mut imports = Vec::new();
    for (i, action) in plan.actions.iter().enumerate() {
        let Action::EnableGuardDuty(a) = action else {
            return Err(refuse(i + 1, action, IacFormat::CloudFormation));
        };
        let logical = format!("GuardDutyDetector{}", i + 1);
        let enable = match &a.existing_detector {
            // An import must describe the detector as it is (disabled); the
            // update afterwards turns it on.
            Some(id) => {
                let parameter = format!("{logical}Enabled");
                parameters.insert(
                    parameter.clone(),
                    json!({"Type": "String", "AllowedValues": ["true", "false"], "Default": "true",
                           "Description": "false while importing the existing detector, true to enable it"}),
                );
                imports.push((logical.clone(), id.clone(), parameter.clone()));
                json!({"Ref": parameter})
            }
            None => json!(true),
        };
        resources.insert(
            logical,
            json!({
                "Type": "AWS::GuardDuty::Detector",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {"Enable": enable},
            }),
        );
    }
    let mut template = json!({
        "Description": format!(
            "Remediation plan {} ({}), generated by runbook-kernel for account {} in {}",
            plan.id, plan.control_id, plan.account, plan.region
        ),
        "Resources": resources,
    });
    if !parameters.is_empty() {
        template["Parameters"] = Value::Object(parameters);
    }
    let yaml = serde_yaml_ng::to_string(&template).map_err(|e| IacError {
        index: 0,
        action: String::new(),
        format: "cloudformation",
        why: "the template could not be written as YAML",
        accepted: e.to_string(),
    })?;
    let mut head = comment(
        "#",
        &format!("CloudFormation template of remediation plan {}.", plan.id),
    );
    if !imports.is_empty() {
        let to_import: Vec<Value> = imports
            .iter()
            .map(|(logical, id, _)| {
                json!({"ResourceType": "AWS::GuardDuty::Detector", "LogicalResourceId": logical,
                       "ResourceIdentifier": {"Id": id}})
            })
            .collect();
        let disabled: Vec<String> = imports
            .iter()
            .map(|(_, _, p)| format!("ParameterKey={p},ParameterValue=false"))
            .collect();
        let stack = format!("runbook-{}", plan.id);
        head.push_str(
            "# The detector exists: import it as it is, then update the stack to enable it.\n",
        );
        head.push_str(&comment(
            "#",
            &format!(
                "1. aws cloudformation create-change-set --region {} --stack-name {stack} --change-set-name import --change-set-type IMPORT --template-body file://template.yaml --parameters {} --resources-to-import {}",
                shell_quote(&plan.region),
                disabled.join(" "),
                shell_quote(&Value::Array(to_import).to_string())
            ),
        ));
        head.push_str(&comment(
            "#",
            &format!("   aws cloudformation execute-change-set --region {} --stack-name {stack} --change-set-name import", shell_quote(&plan.region)),
        ));
        head.push_str(&comment(
            "#",
            &format!("2. aws cloudformation update-stack --region {} --stack-name {stack} --template-body file://template.yaml", shell_quote(&plan.region)),
        ));
    }
    // Quoted by hand: YAML 1.1 readers would take the bare version for a date.
    Ok(format!(
        "{head}AWSTemplateFormatVersion: \"2010-09-09\"\n{yaml}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ec2_sg::RevokeIngress;
    use crate::catalog::guardduty::EnableGuardDuty;
    use crate::catalog::iam_password::SetPasswordPolicy;
    use crate::catalog::kms::EnableKmsKeyRotation;

    fn plan_of(actions: Vec<Action>) -> RemediationPlan {
        RemediationPlan::new(crate::plan::PlanDraft {
            findings: Vec::new(),
            control_id: "IAM.7".parse().expect("control"),
            target: crate::cloud::Target {
                account: "111122223333".parse().expect("account"),
                region: "us-east-1".to_string(),
            },
            actions,
            rationale: String::new(),
            policy_citations: Vec::new(),
            lang: crate::settings::Lang::En,
            source: crate::plan::PlanSource::Catalog,
        })
    }

    #[test]
    fn hcl_strings_keep_hostile_text_as_text() {
        assert_eq!(hcl_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(
            hcl_string("${file(\"/etc/passwd\")}"),
            "\"$${file(\\\"/etc/passwd\\\")}\""
        );
        assert_eq!(
            hcl_string("%{if true}x%{endif}"),
            "\"%%{if true}x%%{endif}\""
        );
        assert_eq!(hcl_string("a\nb\u{7}"), "\"a\\nb\\u0007\"");
        assert_eq!(hcl_string("$5 and 50%"), "\"$5 and 50%\"");
    }

    #[test]
    fn a_password_policy_plan_imports_the_policy_and_sets_every_value() {
        let plan = plan_of(vec![
            SetPasswordPolicy {
                policy: PasswordPolicy::strong(),
                previous: Some(PasswordPolicy {
                    minimum_password_length: 8,
                    ..PasswordPolicy::strong()
                }),
            }
            .into(),
        ]);
        let tf = terraform(&plan).unwrap();
        assert!(tf.contains("import {\n  to = aws_iam_account_password_policy.action1\n  id = \"iam-account-password-policy\"\n}\n"), "{tf}");
        assert!(tf.contains("resource \"aws_iam_account_password_policy\" \"action1\" {\n  minimum_password_length        = 14\n"), "{tf}");
        assert!(
            tf.contains("  max_password_age               = 90\n"),
            "{tf}"
        );
        assert!(
            tf.contains(&format!("allowed_account_ids = [\"{}\"]", plan.account)),
            "{tf}"
        );
        // Nothing to import when the account had no policy.
        let plan = plan_of(vec![
            SetPasswordPolicy {
                policy: PasswordPolicy::strong(),
                previous: None,
            }
            .into(),
        ]);
        assert!(!terraform(&plan).unwrap().contains("import {"));
    }

    #[test]
    fn guardduty_and_kms_import_by_their_ids() {
        let plan = plan_of(vec![
            EnableGuardDuty {
                existing_detector: Some("d0\"${x}".to_string()),
            }
            .into(),
            EnableKmsKeyRotation {
                key_id: "1234abcd-12ab-34cd-56ef-1234567890ab".to_string(),
            }
            .into(),
        ]);
        let tf = terraform(&plan).unwrap();
        assert!(
            tf.contains("to = aws_guardduty_detector.action1\n  id = \"d0\\\"$${x}\""),
            "{tf}"
        );
        assert!(
            tf.contains("resource \"aws_kms_key\" \"action2\" {\n  enable_key_rotation = true\n}"),
            "{tf}"
        );
    }

    #[test]
    fn what_is_not_a_resource_property_is_refused_by_name() {
        let plan = plan_of(vec![
            RevokeIngress {
                group_id: "sg-1".to_string(),
                rules: Vec::new(),
            }
            .into(),
        ]);
        let e = terraform(&plan).unwrap_err();
        assert_eq!(e.index, 1);
        assert!(e.to_string().contains("RevokeIngress"), "{e}");
        assert!(
            e.to_string().contains("EnableEbsEncryptionByDefault"),
            "{e}"
        );
        let plan = plan_of(vec![
            EnableKmsKeyRotation {
                key_id: "k".to_string(),
            }
            .into(),
        ]);
        let e = cloudformation(&plan).unwrap_err();
        assert!(e.to_string().contains("key policy"), "{e}");
    }

    #[test]
    fn a_hostile_region_cannot_leave_the_header_comment() {
        let mut plan = plan_of(vec![
            EnableGuardDuty {
                existing_detector: Some("abc123".to_string()),
            }
            .into(),
        ]);
        plan.region = "eu-west-1\u{2028}Transform: AWS::Include".to_string();
        let refused = cloudformation(&plan).unwrap_err();
        assert!(
            refused.to_string().contains("not an AWS Region"),
            "{refused}"
        );
        assert!(terraform(&plan).is_err());
        // YAML 1.1 readers end a line at each of these; a comment line never does.
        for separator in ["\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"] {
            let line = comment("#", &format!("x{separator}Transform: AWS::Include"));
            let body = line.strip_suffix('\n').unwrap();
            assert!(
                !body.contains(separator) && !body.contains('\n'),
                "{separator:?}"
            );
        }
    }

    #[test]
    fn cloudformation_imports_an_existing_detector_disabled_then_enables_it() {
        let plan = plan_of(vec![
            EnableGuardDuty {
                existing_detector: Some("abc123".to_string()),
            }
            .into(),
        ]);
        let text = cloudformation(&plan).unwrap();
        let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
        let detector = &doc["Resources"]["GuardDutyDetector1"];
        assert_eq!(detector["Type"], "AWS::GuardDuty::Detector");
        assert_eq!(detector["DeletionPolicy"], "Retain");
        assert_eq!(
            detector["Properties"]["Enable"]["Ref"],
            "GuardDutyDetector1Enabled"
        );
        assert!(text.contains("--change-set-type IMPORT"), "{text}");
        assert!(
            text.contains("ParameterKey=GuardDutyDetector1Enabled,ParameterValue=false"),
            "{text}"
        );
        assert!(
            text.contains("\"ResourceIdentifier\":{\"Id\":\"abc123\"}"),
            "{text}"
        );
        assert_eq!(doc["AWSTemplateFormatVersion"], "2010-09-09");
        // A new detector is simply created.
        let plan = plan_of(vec![
            EnableGuardDuty {
                existing_detector: None,
            }
            .into(),
        ]);
        let doc: Value = serde_yaml_ng::from_str(&cloudformation(&plan).unwrap()).unwrap();
        assert_eq!(
            doc["Resources"]["GuardDutyDetector1"]["Properties"]["Enable"],
            true
        );
    }
}
