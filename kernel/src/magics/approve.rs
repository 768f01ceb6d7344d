//! `%approve PLAN_ID`: nothing changes until a human types the plan id. Then the
//! plan runs — precheck, apply, verify, resolve the finding — with every step in
//! the audit trail before the next one starts.

use clap::Parser;
use runbook::execute;
use runbook::plan::{PlanId, RemediationPlan};

use runbook::finding::FindingRef;
use serde_json::Value;

use crate::context::{Context, ErrorKind, MagicError, StoredPlan};
use crate::render::RUNBOOK_MIME;
use crate::render::approval as render;
use crate::workflow::{self, audit_error};

/// Approve a plan by typing its id; then it is prechecked, applied, verified, the finding resolved, and every step audited
#[derive(Debug, Parser)]
pub struct ApproveArgs {
    /// A plan id from %remediate (plan-xxxxxxxx), or `last` for the most recent plan
    #[arg(value_name = "PLAN_ID")]
    pub plan: String,
    /// Run the prechecks and show what would change; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Approve without typing the plan id, for frontends without input (refused when approval=interactive)
    #[arg(long)]
    pub yes: bool,
    /// Take the plan from a saved notebook's %remediate output (a teammate's runbook); it is checked against its id, the finding and the live state first
    #[arg(long, value_name = "NOTEBOOK.ipynb")]
    pub from: Option<std::path::PathBuf>,
}

/// The plan `id` as a saved notebook's %remediate output holds it, with who
/// proposed it; refused unless its content still hashes to its id and it still
/// validates against its finding, looked up again.
async fn plan_from_notebook(
    cx: &mut Context<'_>,
    path: &std::path::Path,
    id: &str,
) -> Result<StoredPlan, MagicError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| MagicError::usage(format!("cannot read {}: {e}", path.display())))?;
    let notebook: Value = serde_json::from_str(&text).map_err(|e| {
        MagicError::usage(format!(
            "{} is not a Jupyter notebook ({e}); accepted: an .ipynb file",
            path.display()
        ))
    })?;
    let results = notebook
        .get("cells")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("outputs").and_then(Value::as_array))
        .flatten()
        .filter_map(|o| o.pointer("/data").and_then(|d| d.get(RUNBOOK_MIME)))
        .map(|r| match r {
            // Some frontends save a JSON output as text.
            Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
            other => other.clone(),
        });
    let mut found = None;
    for result in results {
        if result.pointer("/plan/id").and_then(Value::as_str) == Some(id) {
            found = Some(result);
        }
    }
    let result = found.ok_or_else(|| {
        MagicError::usage(format!(
            "{} holds no %remediate output for {id}; run the notebook's %remediate cell and save it, or check the plan id",
            path.display()
        ))
    })?;
    let plan: RemediationPlan = serde_json::from_value(result["plan"].clone()).map_err(|e| {
        MagicError::new(
            ErrorKind::PlanRejected,
            format!("the saved plan {id} cannot be read ({e}); nothing was changed"),
        )
    })?;
    let computed = plan.digest();
    if plan.id.as_str() != id || computed.as_str() != id {
        return Err(MagicError::new(
            ErrorKind::PlanRejected,
            format!(
                "the saved plan {id} does not match its id (its content hashes to {computed}): it was changed after it was made; nothing was changed"
            ),
        ));
    }
    let finding_id = plan.findings.first().map(|f| f.id.clone()).ok_or_else(|| {
        MagicError::new(
            ErrorKind::PlanRejected,
            format!("the saved plan {id} names no finding"),
        )
    })?;
    let finding = cx.resolve(&FindingRef::Id(finding_id)).await?;
    runbook::plan::validate(&plan, &finding).map_err(|e| {
        MagicError::new(
            ErrorKind::PlanRejected,
            format!("the saved plan {id} no longer fits its finding: {e}; nothing was changed"),
        )
    })?;
    let proposed_by = result
        .get("proposed_by")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(StoredPlan {
        plan,
        finding,
        proposed_by,
    })
}

pub async fn run(args: ApproveArgs, cx: &mut Context<'_>) -> Result<(), MagicError> {
    if let Some(path) = &args.from {
        let id: PlanId = args.plan.parse().map_err(|e| {
            MagicError::usage(format!("{e}; --from needs the plan's id, not `last`"))
        })?;
        let loaded = plan_from_notebook(cx, path, id.as_str()).await?;
        cx.session.plans.insert(id.to_string(), loaded);
        cx.session.last_plan = Some(id.to_string());
    }
    let stored = workflow::stored_plan(cx.session, &args.plan)?;
    let plan = &stored.plan;
    if args.dry_run {
        return dry_run(cx, plan).await;
    }
    match workflow::approve_and_execute(cx, plan, args.yes)
        .await?
        .error()
    {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

async fn dry_run(cx: &mut Context<'_>, plan: &RemediationPlan) -> Result<(), MagicError> {
    let connected = cx.cloud().await?;
    let cloud = connected.cloud.clone();
    runbook::audit::read(&cx.settings().audit_log).map_err(audit_error)?;
    let account = cx.account_label(&plan.account).await;
    let handle = cx.out.display(render::request(plan, &account, true));
    let pending = workflow::open_approval(cx, plan).await?;
    let checks = cx
        .cancellable(execute::precheck_all(plan, cloud.as_ref()))
        .await?;
    pending.record_dry_run(&checks).map_err(audit_error)?;
    cx.out
        .update(&handle, render::dry_run(plan, &account, &checks));
    Ok(())
}
