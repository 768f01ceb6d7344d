//! A plan as a Systems Manager Automation runbook (schema 0.3, YAML): the same
//! actions the human approved, so the plan can be reviewed, kept in git and run
//! by SSM in any account. Each action's calls become `aws:executeAwsApi` steps,
//! its check an `aws:assertAwsResourceProperty` step, and a failure runs the
//! inverses of what had been applied, newest first.

use serde_json::{Map, Value, json};

use crate::plan::{Action, RemediationPlan};

/// Why a plan cannot be exported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error(
        "action {index} ({action}) has no Automation equivalent, so the plan cannot be exported"
    )]
    NoEquivalent { index: usize, action: String },
    #[error("the document could not be written as YAML: {0}")]
    Yaml(String),
}

/// Automation step names: letters, digits and underscores (at most 128).
fn step_name(prefix: &str, index: usize, action: &Action, part: usize) -> String {
    let mut name = format!("{prefix}{index}_{}", action.name());
    if part > 0 {
        name.push_str(&format!("_{part}"));
    }
    name
}

fn execute_api(name: String, call: &crate::catalog::ApiCall) -> Map<String, Value> {
    let mut inputs = Map::new();
    inputs.insert("Service".into(), json!(call.service));
    inputs.insert("Api".into(), json!(call.api));
    inputs.extend(call.inputs.clone());
    let mut step = Map::new();
    step.insert("name".into(), json!(name));
    step.insert("action".into(), json!("aws:executeAwsApi"));
    step.insert("inputs".into(), Value::Object(inputs));
    step
}

/// Where a failed step goes: its apply calls to the undo of the actions before
/// (nothing of this one was applied), its verification to the undo of this one too.
struct OnFailure {
    apply: String,
    verify: String,
}

/// The steps of one action under `prefix`; with `on_failure`, its verification too.
fn action_steps(
    prefix: &str,
    index: usize,
    action: &Action,
    at: &crate::cloud::Target,
    on_failure: Option<&OnFailure>,
) -> Result<Vec<Map<String, Value>>, ExportError> {
    let with_verify = on_failure.is_some();
    let no_equivalent = || ExportError::NoEquivalent {
        index,
        action: action.name().to_string(),
    };
    let automation = action.automation(at).ok_or_else(no_equivalent)?;
    let mut steps = Vec::new();
    if let Some((document, parameters)) = &automation.run_document {
        let mut step = Map::new();
        step.insert("name".into(), json!(step_name(prefix, index, action, 0)));
        step.insert("action".into(), json!("aws:executeAutomation"));
        step.insert(
            "inputs".into(),
            json!({"DocumentName": document, "RuntimeParameters": parameters}),
        );
        steps.push(step);
    }
    for (part, call) in automation.apply.iter().enumerate() {
        steps.push(execute_api(step_name(prefix, index, action, part), call));
    }
    if with_verify && let Some(check) = &automation.verify {
        let mut inputs = Map::new();
        inputs.insert("Service".into(), json!(check.call.service));
        inputs.insert("Api".into(), json!(check.call.api));
        inputs.extend(check.call.inputs.clone());
        inputs.insert("PropertySelector".into(), json!(check.selector));
        inputs.insert("DesiredValues".into(), json!(check.desired));
        let mut step = Map::new();
        step.insert(
            "name".into(),
            json!(format!("Verify{index}_{}", action.name())),
        );
        step.insert("action".into(), json!("aws:assertAwsResourceProperty"));
        step.insert("inputs".into(), Value::Object(inputs));
        steps.push(step);
    }
    if steps.is_empty() {
        return Err(no_equivalent());
    }
    for step in &mut steps {
        let is_verify = step.get("action") == Some(&json!("aws:assertAwsResourceProperty"));
        let target = match on_failure {
            Some(f) if is_verify => f.verify.as_str(),
            Some(f) => f.apply.as_str(),
            None => "Continue",
        };
        step.insert("onFailure".into(), json!(target));
    }
    Ok(steps)
}

/// The plan as an Automation document (schema 0.3, YAML).
pub fn ssm_document(plan: &RemediationPlan) -> Result<String, ExportError> {
    let at = plan.target();
    // The undo chain: inverses of actions 1..=n, newest first; "undo from i"
    // starts at the newest action applied before a failure in action i+1.
    let mut undo: Vec<(usize, Vec<Map<String, Value>>)> = Vec::new();
    for (i, action) in plan.actions.iter().enumerate().rev() {
        let index = i + 1;
        if let Some(inverse) = action.inverse(None) {
            let steps = action_steps("Undo", index, &inverse, &at, None)?;
            undo.push((index, steps));
        }
    }
    let first_undo_at_or_before = |index: usize| -> Option<String> {
        undo.iter()
            .find(|(i, _)| *i <= index)
            .and_then(|(_, steps)| steps.first())
            .and_then(|s| s.get("name").and_then(Value::as_str).map(str::to_string))
    };
    let mut main: Vec<Map<String, Value>> = Vec::new();
    for (i, action) in plan.actions.iter().enumerate() {
        let index = i + 1;
        let target = |at_or_before: usize| match first_undo_at_or_before(at_or_before) {
            Some(name) => format!("step:{name}"),
            None => "Abort".to_string(),
        };
        let on_failure = OnFailure {
            apply: target(index - 1),
            verify: target(index),
        };
        main.extend(action_steps(
            "Apply",
            index,
            action,
            &at,
            Some(&on_failure),
        )?);
    }
    if let Some(last) = main.last_mut() {
        last.insert("isEnd".into(), json!(true));
    }
    let mut undo_steps: Vec<Map<String, Value>> =
        undo.into_iter().flat_map(|(_, steps)| steps).collect();
    let count = undo_steps.len();
    for (i, step) in undo_steps.iter_mut().enumerate() {
        if i + 1 == count {
            step.insert("isEnd".into(), json!(true));
        }
    }
    // Undo steps run in order after one another; a failed one does not stop the rest.
    let names: Vec<String> = undo_steps
        .iter()
        .filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    for (i, step) in undo_steps.iter_mut().enumerate() {
        if let Some(next) = names.get(i + 1) {
            step.insert("onFailure".into(), json!(format!("step:{next}")));
            step.insert("nextStep".into(), json!(next));
        }
    }
    main.extend(undo_steps);
    let description = format!(
        "Remediation plan {} for {} in account {} region {}, generated by runbook-kernel from the plan a human approved. \
         If a step fails, the inverses of the steps before it run, newest first, and the execution ends Failed.",
        plan.id, plan.control_id, plan.account, plan.region
    );
    let document = json!({
        "schemaVersion": "0.3",
        "description": description,
        "assumeRole": "{{ AutomationAssumeRole }}",
        "parameters": {
            "AutomationAssumeRole": {
                "type": "String",
                "description": "(Optional) The ARN of the role Automation acts as; it needs the plan's permissions.",
                "default": ""
            }
        },
        "mainSteps": main.into_iter().map(Value::Object).collect::<Vec<_>>(),
    });
    serde_yaml_ng::to_string(&document).map_err(|e| ExportError::Yaml(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ebs::EnableEbsEncryptionByDefault;
    use crate::catalog::kms::EnableKmsKeyRotation;
    use crate::cloud::Target;
    use crate::plan::{PlanDraft, PlanSource};
    use crate::settings::Lang;

    fn steps(doc: &str) -> Vec<Value> {
        let v: Value = serde_yaml_ng::from_str(doc).expect("YAML");
        assert_eq!(v["schemaVersion"], "0.3");
        v["mainSteps"].as_array().expect("mainSteps").clone()
    }

    #[test]
    fn a_failure_runs_the_inverses_of_what_was_applied_newest_first() {
        let plan = RemediationPlan::new(PlanDraft {
            findings: Vec::new(),
            control_id: "KMS.4".parse().expect("control"),
            target: Target {
                account: "111122223333".parse().expect("account"),
                region: "us-east-1".to_string(),
            },
            actions: vec![
                EnableEbsEncryptionByDefault {}.into(),
                EnableKmsKeyRotation {
                    key_id: "k-1".to_string(),
                }
                .into(),
            ],
            rationale: String::new(),
            policy_citations: Vec::new(),
            lang: Lang::En,
            source: PlanSource::Catalog,
        });
        let steps = steps(&ssm_document(&plan).expect("export"));
        let by_name = |n: &str| {
            steps
                .iter()
                .find(|s| s["name"] == n)
                .unwrap_or_else(|| panic!("no step {n}: {steps:?}"))
                .clone()
        };
        // Action 1's call fails before anything was applied: stop.
        assert_eq!(
            by_name("Apply1_EnableEbsEncryptionByDefault")["onFailure"],
            "Abort"
        );
        // Its check fails: undo it.
        assert_eq!(
            by_name("Verify1_EnableEbsEncryptionByDefault")["onFailure"],
            "step:Undo1_DisableEbsEncryptionByDefault"
        );
        // Action 2's call fails: undo action 1 only; its check fails: undo 2, then 1.
        assert_eq!(
            by_name("Apply2_EnableKmsKeyRotation")["onFailure"],
            "step:Undo1_DisableEbsEncryptionByDefault"
        );
        assert_eq!(
            by_name("Verify2_EnableKmsKeyRotation")["onFailure"],
            "step:Undo2_DisableKmsKeyRotation"
        );
        assert_eq!(by_name("Verify2_EnableKmsKeyRotation")["isEnd"], true);
        let undo2 = by_name("Undo2_DisableKmsKeyRotation");
        assert_eq!(undo2["nextStep"], "Undo1_DisableEbsEncryptionByDefault");
        assert_eq!(undo2["inputs"]["Api"], "DisableKeyRotation");
        assert_eq!(undo2["inputs"]["KeyId"], "k-1");
        assert_eq!(
            by_name("Undo1_DisableEbsEncryptionByDefault")["isEnd"],
            true
        );
        assert_eq!(
            steps.last().expect("steps")["name"],
            "Undo1_DisableEbsEncryptionByDefault"
        );
    }
}
