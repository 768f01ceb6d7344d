//! `%approve PLAN_ID`: nothing changes until a human types the plan id. Then the
//! plan runs — precheck, apply, verify, resolve the finding — with every step in
//! the audit trail before the next one starts.

use clap::Parser;
use runbook::execute;
use runbook::plan::{PlanId, RemediationPlan};

use crate::context::{Context, MagicError, Session, StoredPlan};
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
}

/// The stored plan a `PLAN_ID` or `last` names.
pub fn stored_plan(session: &Session, wanted: &str) -> Result<StoredPlan, MagicError> {
    let known = || {
        if session.plans.is_empty() {
            "there are no plans in this session yet: run %remediate first".to_string()
        } else {
            format!(
                "plans in this session: {}",
                session.plans.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        }
    };
    let id = if wanted == "last" {
        session
            .last_plan
            .clone()
            .ok_or_else(|| MagicError::usage(known()))?
    } else {
        let parsed: PlanId = wanted
            .parse()
            .map_err(|e| MagicError::usage(format!("{e}; or `last` for the most recent plan")))?;
        parsed.to_string()
    };
    session
        .plans
        .get(&id)
        .cloned()
        .ok_or_else(|| MagicError::usage(format!("unknown plan {id}; {}", known())))
}

pub async fn run(args: ApproveArgs, cx: &mut Context<'_>) -> Result<(), MagicError> {
    let stored = stored_plan(cx.session, &args.plan)?;
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
    let pending = workflow::open_approval(cx, plan, cloud.as_ref()).await?;
    let checks = cx
        .cancellable(execute::precheck_all(plan, cloud.as_ref()))
        .await?;
    pending.record_dry_run(&checks).map_err(audit_error)?;
    cx.out
        .update(&handle, render::dry_run(plan, &account, &checks));
    Ok(())
}
