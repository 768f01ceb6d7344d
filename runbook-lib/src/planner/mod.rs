//! Making plans from the catalog: the deterministic fix for a finding ([`plan`]),
//! or a model's tool call checked against the catalog ([`plan_from_model`]). Each
//! family does the control-specific part; this module binds the result to the
//! finding and validates it. It sits above both `catalog` and `plan`, so neither
//! imports the other back.

use serde_json::Value;

use crate::catalog::{
    CatalogError, FamilyPlan, PlanRequest, PolicyValues, control_of, malformed, tool_actions,
};
use crate::cloud::{Cloud, Target};
use crate::finding::Finding;
use crate::plan::{self, PlanDraft, PlanRejection, PlanSource, RemediationPlan};
use crate::settings::Lang;

/// Most characters of a model's rationale kept in a plan.
const MAX_RATIONALE_CHARS: usize = 4000;

fn build(
    finding: &Finding,
    family_plan: FamilyPlan,
    lang: Lang,
    source: PlanSource,
) -> Result<RemediationPlan, CatalogError> {
    let control = finding.control_id.clone().ok_or(CatalogError::NoControl)?;
    let plan = RemediationPlan::new(PlanDraft {
        findings: vec![finding.identifier()],
        control_id: control,
        target: Target::of(finding),
        actions: family_plan.actions,
        rationale: family_plan.rationale,
        policy_citations: family_plan.citations,
        lang,
        source,
    });
    plan::validate(&plan, finding)?;
    Ok(plan)
}

/// Plans the catalog's fix for a finding: reads the current state and builds a
/// deterministic plan (the same state gives the same plan id).
pub async fn plan(
    finding: &Finding,
    cloud: &dyn Cloud,
    lang: Lang,
    policy: &PolicyValues,
) -> Result<RemediationPlan, CatalogError> {
    let (entry, control) = control_of(finding)?;
    let req = PlanRequest {
        finding,
        control,
        cloud,
        at: Target::of(finding),
        lang,
        policy,
    };
    let fp = entry.family.plan(&req).await?;
    build(finding, fp, lang, PlanSource::Catalog)
}

/// Turns a `propose_remediation` tool input into a plan for `finding`: the family
/// reads the current state where a step needs its prior state, then
/// [`plan::validate`] checks the whole plan. Any other resource, account or region,
/// a non-catalog action or an out-of-range parameter is rejected and no plan is
/// returned.
pub async fn plan_from_model(
    input: &Value,
    finding: &Finding,
    cloud: &dyn Cloud,
    lang: Lang,
    model_id: &str,
    policy: &PolicyValues,
) -> Result<RemediationPlan, CatalogError> {
    let (entry, control) = control_of(finding)?;
    let finding_control = finding.control_id.clone().ok_or(CatalogError::NoControl)?;
    let obj = input
        .as_object()
        .ok_or_else(|| malformed("the tool input must be a JSON object"))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["account_id", "region", "actions", "rationale"].contains(&k.as_str()))
    {
        return Err(malformed(format!(
            "unexpected field {k:?}; accepted: account_id, region, actions, rationale"
        )));
    }
    if let Some(a) = obj.get("account_id") {
        let a = a.as_str().unwrap_or_default();
        if a != finding.account.as_str() {
            return Err(PlanRejection::AccountMismatch {
                plan: a.to_string(),
                finding: finding.account.to_string(),
            }
            .into());
        }
    }
    if let Some(r) = obj.get("region") {
        let r = r.as_str().unwrap_or_default();
        if r != finding.region {
            return Err(PlanRejection::RegionMismatch {
                plan: r.to_string(),
                finding: finding.region.clone(),
            }
            .into());
        }
    }
    let items = obj
        .get("actions")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("actions must be an array of catalog actions"))?;
    if items.is_empty() {
        return Err(PlanRejection::NoActions.into());
    }
    if items.len() > plan::MAX_ACTIONS {
        return Err(PlanRejection::TooManyActions {
            count: items.len(),
            max: plan::MAX_ACTIONS,
        }
        .into());
    }
    let req = PlanRequest {
        finding,
        control,
        cloud,
        at: Target::of(finding),
        lang,
        policy,
    };
    let tools = tool_actions();
    let mut actions = Vec::new();
    let mut citations = Vec::new();
    for item in items {
        let a = item
            .as_object()
            .ok_or_else(|| malformed("each action must be a JSON object"))?;
        let name = a
            .get("action")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("each action needs an \"action\" name"))?;
        let Some((_, step, _)) = tools.iter().find(|(t, _, _)| t == name) else {
            return Err(PlanRejection::UnknownAction {
                action: name.to_string(),
                accepted: tools
                    .iter()
                    .map(|(t, _, _)| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into());
        };
        // Refuse steps of other families before reading anything.
        if !entry.actions.contains(step) {
            return Err(PlanRejection::ActionNotAllowed {
                action: (*step).to_string(),
                control: finding_control.to_string(),
                accepted: entry.actions.join(", "),
            }
            .into());
        }
        let (action, cited) = entry.family.step_from_model(name, a, &req).await?;
        actions.push(action);
        citations.extend(cited);
    }
    let rationale: String = obj
        .get("rationale")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .chars()
        .take(MAX_RATIONALE_CHARS)
        .collect();
    build(
        finding,
        FamilyPlan {
            actions,
            rationale,
            citations,
        },
        lang,
        PlanSource::Model {
            model_id: model_id.to_string(),
        },
    )
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod hostile_input;
