//! The sandbox's SSM Automation and AWS Config: the AWS-owned documents it can
//! run (those whose resources the sandbox models: CloudTrail trails), their
//! resources' configuration items, and Config rules answered from the sandbox's
//! own control evaluations.

use serde_json::json;

use super::controls::{self, fnv1a};
use super::ops::{account, region, region_mut};
use super::state::{OrgState, Trail};
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
    let steps = match start.document.as_str() {
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

/// The AWS-owned documents the sandbox can run.
pub const SIMULATED: &[&str] = &[
    "AWSConfigRemediation-CreateCloudTrailMultiRegionTrail",
    "AWSConfigRemediation-EnableCloudTrailEncryptionWithKMS",
    "AWSConfigRemediation-EnableCloudTrailLogFileValidation",
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
        .chain(controls::UNCOVERED.iter())
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
