//! The sandbox's SSM Automation and AWS Config: the documents it can run (those
//! whose resources the sandbox models: CloudTrail trails, Config recording), their
//! resources' configuration items, and Config rules answered from the sandbox's
//! own control evaluations.

use serde_json::{Value, json};

use super::controls::{self, fnv1a};
use super::ops::{account, region, region_mut};
use super::state::{OrgState, Trail};
use crate::catalog::automation::OwnDocument;
use crate::cloud::config::{ConfigItem, names_rule};
use crate::cloud::ssm::{AutomationRun, AutomationStart, AutomationStep};
use crate::cloud::{CloudError, Target};

/// What running one simulated document did, as its steps.
pub(crate) fn run(
    state: &mut OrgState,
    at: &Target,
    start: &AutomationStart,
    execution_id: &str,
) -> Result<AutomationRun, CloudError> {
    if !start.target_locations.is_empty() {
        return Err(CloudError::InvalidInput(
            "the sandbox runs Automation in one account and region; TargetLocations needs the AWS backend"
                .to_string(),
        ));
    }
    account(state, at)?;
    let param = |name: &str| -> Result<String, CloudError> {
        start
            .parameters
            .get(name)
            .and_then(|v| v.first())
            .cloned()
            .ok_or_else(|| {
                CloudError::InvalidInput(format!(
                    "InvalidAutomationExecutionParametersException: {} needs the parameter {name}",
                    start.document
                ))
            })
    };
    let step = |name: &str, action: &str, failure: Option<String>| AutomationStep {
        name: name.to_string(),
        action: action.to_string(),
        status: if failure.is_some() {
            "Failed"
        } else {
            "Success"
        }
        .to_string(),
        failure,
        target: None,
        child_execution: None,
    };
    // The project's own documents run by their base name (`Runbook-X-<hash>` -> `Runbook-X`).
    let simulated =
        OwnDocument::deployed(&start.document).map_or(start.document.as_str(), |d| d.base);
    let steps = match simulated {
        "AWSConfigRemediation-EnableCloudTrailLogFileValidation" => {
            let name = trail_name(&param("TrailName")?);
            let result = with_trail(state, at, &name, |t| t.log_file_validation = true);
            vec![
                step("UpdateTrail", "aws:executeAwsApi", result.clone().err()),
                step(
                    "VerifyTrail",
                    "aws:assertAwsResourceProperty",
                    result
                        .err()
                        .map(|_| "skipped: UpdateTrail failed".to_string()),
                ),
            ]
        }
        "AWSConfigRemediation-EnableCloudTrailEncryptionWithKMS" => {
            let name = trail_name(&param("TrailName")?);
            let key = param("KMSKeyId")?;
            let key_id = key
                .rsplit_once(":key/")
                .map_or(key.as_str(), |(_, k)| k)
                .to_string();
            let result = with_trail(state, at, &name, |t| t.kms_key_id = Some(key_id));
            vec![step("UpdateTrail", "aws:executeAwsApi", result.err())]
        }
        "AWSConfigRemediation-CreateCloudTrailMultiRegionTrail" => {
            let bucket = param("BucketName")?;
            let name = param("TrailName")?;
            let reg = region_mut(state, at)?;
            reg.trails.retain(|t| t.name != name);
            reg.trails.push(Trail {
                name,
                is_multi_region: true,
                is_logging: true,
                include_management_events: true,
                s3_bucket: bucket,
                kms_key_id: None,
                log_file_validation: true,
            });
            vec![
                step("CreateTrail", "aws:executeAwsApi", None),
                step("StartLogging", "aws:executeAwsApi", None),
            ]
        }
        "Runbook-EnableConfigRecording" => {
            param("DeliveryBucketName")?;
            region_mut(state, at)?.config_recording = true;
            vec![
                step("EnsureServiceLinkedRole", "aws:executeScript", None),
                step("PutConfigurationRecorder", "aws:executeAwsApi", None),
                step("PutDeliveryChannel", "aws:executeAwsApi", None),
                step("StartRecorder", "aws:executeAwsApi", None),
                step("VerifyRecording", "aws:assertAwsResourceProperty", None),
            ]
        }
        other => {
            return Err(CloudError::InvalidInput(format!(
                "the sandbox does not simulate the document {other}; it simulates {}. Run it against AWS (%config backend=aws)",
                SIMULATED.join(", ")
            )));
        }
    };
    let failed = steps.iter().any(|s| s.failure.is_some());
    Ok(AutomationRun {
        execution_id: execution_id.to_string(),
        document: start.document.clone(),
        status: if failed { "Failed" } else { "Success" }.to_string(),
        failure: None,
        steps,
    })
}

/// The documents the sandbox can run (the project's own by their base name).
pub const SIMULATED: &[&str] = &[
    "AWSConfigRemediation-CreateCloudTrailMultiRegionTrail",
    "AWSConfigRemediation-EnableCloudTrailEncryptionWithKMS",
    "AWSConfigRemediation-EnableCloudTrailLogFileValidation",
    "Runbook-EnableConfigRecording",
];

/// A trail's name from its name or ARN (`…:trail/<name>`), as CloudTrail accepts both.
fn trail_name(name_or_arn: &str) -> String {
    name_or_arn
        .rsplit_once(":trail/")
        .map_or(name_or_arn, |(_, n)| n)
        .to_string()
}

fn with_trail(
    state: &mut OrgState,
    at: &Target,
    name: &str,
    change: impl FnOnce(&mut Trail),
) -> Result<(), String> {
    let reg = region_mut(state, at).map_err(|e| e.to_string())?;
    match reg.trails.iter_mut().find(|t| t.name == name) {
        Some(t) => {
            change(t);
            Ok(())
        }
        None => Err(format!(
            "TrailNotFoundException: Unknown trail: {name} for the user: {}",
            at.account
        )),
    }
}

/// Config's item for a sandbox resource: trails only; None for anything else.
pub(crate) fn configuration_item(
    state: &OrgState,
    at: &Target,
    resource_type: &str,
    resource_id: &str,
) -> Result<Option<ConfigItem>, CloudError> {
    let reg = region(state, at)?;
    if resource_type != "AWS::CloudTrail::Trail" {
        return Ok(None);
    }
    let name = trail_name(resource_id);
    Ok(reg.trails.iter().find(|t| t.name == name).map(|t| {
        let configuration = json!({
            "configuration": {
                "name": t.name,
                "trailARN": format!("arn:aws:cloudtrail:{}:{}:trail/{}", at.region, at.account, t.name),
                "isMultiRegionTrail": t.is_multi_region,
                "logFileValidationEnabled": t.log_file_validation,
                "kmsKeyId": t.kms_key_id,
                "s3BucketName": t.s3_bucket,
                "homeRegion": at.region,
            },
            "supplementaryConfiguration": {"TrailStatus": {"isLogging": t.is_logging}},
        });
        ConfigItem {
            resource_type: resource_type.to_string(),
            resource_id: name.clone(),
            state_id: format!("{:016x}", fnv1a(0xcbf2_9ce4_8422_2325, &configuration.to_string())),
            captured_at: None,
            configuration,
        }
    }))
}

/// Security Hub's name for a control's rule in the sandbox, if a control uses it.
pub(crate) fn config_rule_name(rule: &str) -> Option<String> {
    let used = crate::catalog::CATALOG
        .iter()
        .flat_map(|e| e.family.controls())
        .chain(controls::EVALUATED_HERE.iter())
        .any(|c| c.config_rule == rule);
    used.then(|| format!("securityhub-{rule}-sandbox"))
}

/// The rule's verdict on a resource, from the sandbox's evaluation of the
/// controls that use the rule.
pub(crate) fn compliance(
    state: &OrgState,
    at: &Target,
    rule: &str,
    _resource_type: &str,
    resource_id: &str,
) -> Option<String> {
    controls::evaluate(state)
        .into_iter()
        .filter(|e| names_rule(rule, e.control.config_rule) || e.control.config_rule == rule)
        .filter(|e| e.account == at.account && e.region == at.region)
        .find(|e| {
            e.resource_id == resource_id
                || e.resource_id.ends_with(&format!("/{resource_id}"))
                || e.resource_id.ends_with(&format!(":{resource_id}"))
        })
        .map(|e| {
            if e.passed {
                "COMPLIANT"
            } else {
                "NON_COMPLIANT"
            }
            .to_string()
        })
}

/// A rollout (`TargetLocations`) of a document created in the sandbox: its API
/// steps run in each account and region in turn, as SSM would run them there,
/// through the sandbox's own service operations. Only the account-wide calls a
/// rollout document can hold are simulated.
pub(crate) async fn roll_out(
    sandbox: &super::Sandbox,
    _at: &Target,
    start: &AutomationStart,
) -> Result<String, CloudError> {
    let content = sandbox.document(&start.document).ok_or_else(|| {
        CloudError::NotFound(format!(
            "InvalidDocument: the sandbox has no document named {}",
            start.document
        ))
    })?;
    let document: Value = serde_yaml_ng::from_str(&content)
        .map_err(|e| CloudError::InvalidInput(format!("the document is not YAML: {e}")))?;
    let main = document
        .get("mainSteps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut steps = Vec::new();
    for location in &start.target_locations {
        let total = location.accounts.len() * location.regions.len();
        let max_errors = threshold(&location.max_errors, total);
        let mut failures = 0;
        for account in &location.accounts {
            for region in &location.regions {
                let name = format!("{account}-{region}");
                let target_of = account.parse().ok().map(|account| Target {
                    account,
                    region: region.clone(),
                });
                let failure = if failures > max_errors {
                    Some("Cancelled: the rollout's error threshold was passed".to_string())
                } else {
                    match &target_of {
                        Some(t) => run_steps(sandbox, t, &main).await.err(),
                        None => Some(format!("{account} is not an account id")),
                    }
                };
                let status = match &failure {
                    None => "Success",
                    Some(f) if f.starts_with("Cancelled") => "Cancelled",
                    Some(_) => "Failed",
                };
                if status == "Failed" {
                    failures += 1;
                }
                steps.push(AutomationStep {
                    name,
                    action: "aws:executeAutomation".to_string(),
                    status: status.to_string(),
                    failure,
                    target: target_of,
                    child_execution: None,
                });
            }
        }
    }
    let all_ok = steps.iter().all(|s| s.status == "Success");
    Ok(sandbox.record_automation(AutomationRun {
        execution_id: String::new(),
        document: start.document.clone(),
        status: if all_ok { "Success" } else { "Failed" }.to_string(),
        failure: None,
        steps,
    }))
}

/// `N` or `N%` of `total`, as SSM reads MaxErrors.
fn threshold(value: &str, total: usize) -> usize {
    match value.strip_suffix('%') {
        Some(p) => (p.parse::<usize>().unwrap_or(0) * total).div_ceil(100),
        None => value.parse().unwrap_or(0),
    }
}

/// Runs a document's steps in one target; the first failure stops it.
async fn run_steps(sandbox: &super::Sandbox, at: &Target, main: &[Value]) -> Result<(), String> {
    use crate::cloud::{Ec2, Iam, S3Control};
    for step in main {
        let name = step.get("name").and_then(Value::as_str).unwrap_or("step");
        let inputs = step.get("inputs").cloned().unwrap_or(Value::Null);
        let service = inputs
            .get("Service")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let api = inputs
            .get("Api")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let flag = |key: &str| {
            inputs
                .pointer(key)
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let failed = |e: CloudError| format!("step {name}: {e}");
        match (step.get("action").and_then(Value::as_str), service, api) {
            (Some("aws:executeAwsApi"), "ec2", "EnableEbsEncryptionByDefault") => sandbox
                .set_ebs_encryption_by_default(at, true)
                .await
                .map_err(failed)?,
            (Some("aws:executeAwsApi"), "s3control", "PutPublicAccessBlock") => {
                let block = crate::resources::PublicAccessBlock {
                    block_public_acls: flag("/PublicAccessBlockConfiguration/BlockPublicAcls"),
                    ignore_public_acls: flag("/PublicAccessBlockConfiguration/IgnorePublicAcls"),
                    block_public_policy: flag("/PublicAccessBlockConfiguration/BlockPublicPolicy"),
                    restrict_public_buckets: flag(
                        "/PublicAccessBlockConfiguration/RestrictPublicBuckets",
                    ),
                };
                sandbox
                    .set_public_access_block(at, &block)
                    .await
                    .map_err(failed)?
            }
            (Some("aws:executeAwsApi"), "iam", "UpdateAccountPasswordPolicy") => {
                let number = |key: &str| inputs.get(key).and_then(Value::as_u64);
                let policy = crate::resources::PasswordPolicy {
                    minimum_password_length: number("MinimumPasswordLength")
                        .and_then(|n| u8::try_from(n).ok())
                        .unwrap_or(6),
                    require_symbols: flag("/RequireSymbols"),
                    require_numbers: flag("/RequireNumbers"),
                    require_uppercase_characters: flag("/RequireUppercaseCharacters"),
                    require_lowercase_characters: flag("/RequireLowercaseCharacters"),
                    allow_users_to_change_password: flag("/AllowUsersToChangePassword"),
                    max_password_age: number("MaxPasswordAge").and_then(|n| u16::try_from(n).ok()),
                    password_reuse_prevention: number("PasswordReusePrevention")
                        .and_then(|n| u8::try_from(n).ok()),
                    hard_expiry: flag("/HardExpiry"),
                };
                sandbox
                    .set_password_policy(at, &policy)
                    .await
                    .map_err(failed)?
            }
            (Some("aws:assertAwsResourceProperty"), _, _) => {
                let live = match (service, api) {
                    ("ec2", "GetEbsEncryptionByDefault") => json!({
                        "EbsEncryptionByDefault": sandbox.ebs_encryption_by_default(at).await.map_err(failed)?
                    }),
                    ("s3control", "GetPublicAccessBlock") => {
                        let b = sandbox
                            .public_access_block(at)
                            .await
                            .map_err(failed)?
                            .unwrap_or_default();
                        json!({"PublicAccessBlockConfiguration": {
                            "BlockPublicAcls": b.block_public_acls, "IgnorePublicAcls": b.ignore_public_acls,
                            "BlockPublicPolicy": b.block_public_policy, "RestrictPublicBuckets": b.restrict_public_buckets}})
                    }
                    ("iam", "GetAccountPasswordPolicy") => {
                        let p = sandbox.password_policy(at).await.map_err(failed)?;
                        json!({"PasswordPolicy": {"MinimumPasswordLength": p.map(|p| p.minimum_password_length)}})
                    }
                    _ => {
                        return Err(format!(
                            "step {name}: the sandbox does not simulate {service}:{api}"
                        ));
                    }
                };
                let selector = inputs
                    .get("PropertySelector")
                    .and_then(Value::as_str)
                    .unwrap_or("$");
                let pointer = selector.trim_start_matches('$').replace('.', "/");
                let value = match live.pointer(&pointer) {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                };
                let desired: Vec<String> = inputs
                    .get("DesiredValues")
                    .and_then(Value::as_array)
                    .map(|d| {
                        d.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                if !desired.iter().any(|d| d.eq_ignore_ascii_case(&value)) {
                    return Err(format!(
                        "step {name}: {selector} is {value}, not one of {}",
                        desired.join(", ")
                    ));
                }
            }
            (action, _, _) => {
                return Err(format!(
                    "step {name}: the sandbox does not simulate {} {service}:{api}",
                    action.unwrap_or("(no action)")
                ));
            }
        }
    }
    Ok(())
}
