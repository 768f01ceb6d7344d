//! `%rollback PLAN_ID`: undo what a plan changed, from the audit trail, approved
//! the same way as `%approve`.

use clap::Parser;
use runbook::audit::{self, AuditEvent};
use runbook::execute::Undo;
use runbook::plan::{PlanId, RemediationPlan};

use crate::context::{Context, MagicError, Session};
use crate::workflow::{self, audit_error};

/// Undo an executed plan: apply the recorded inverses, newest first, after you type the plan id
#[derive(Debug, Parser)]
pub struct RollbackArgs {
    /// The plan id to undo
    #[arg(value_name = "PLAN_ID", value_parser = |s: &str| s.parse::<PlanId>())]
    pub plan: PlanId,
    /// Approve without typing the plan id, for frontends without input (refused when approval=interactive)
    #[arg(long)]
    pub yes: bool,
}

/// The plan, from this session or from its `plan_proposed` record.
fn plan_of(
    session: &Session,
    report: &audit::AuditReport,
    id: &PlanId,
) -> Result<RemediationPlan, MagicError> {
    if let Some(stored) = session.plans.get(id.as_str()) {
        return Ok(stored.plan.clone());
    }
    report
        .records
        .iter()
        .rev()
        .filter(|r| r.plan_id == *id && r.event == AuditEvent::PlanProposed)
        .find_map(|r| r.after.clone().and_then(|v| serde_json::from_value(v).ok()))
        .ok_or_else(|| {
            MagicError::usage(format!(
                "{id} is neither in this session nor in the audit trail"
            ))
        })
}

pub async fn run(args: RollbackArgs, cx: &mut Context<'_>) -> Result<(), MagicError> {
    let path = cx.settings().audit_log.clone();
    let report = audit::read(&path).map_err(audit_error)?;
    let plan = plan_of(cx.session, &report, &args.plan)?;
    let undo: Vec<Undo> = audit::executed_actions(&report, &args.plan)
        .into_iter()
        .rev()
        .filter_map(|e| {
            e.inverse().map(|inverse| Undo {
                index: e.index,
                inverse,
            })
        })
        .collect();
    if undo.is_empty() {
        let mut why: Vec<&str> = plan.actions.iter().filter_map(|a| a.no_inverse()).collect();
        why.dedup();
        return Err(MagicError::usage(if why.is_empty() {
            format!(
                "{} has nothing to roll back: the audit trail shows no applied action that is not already undone",
                args.plan
            )
        } else {
            format!("{} has nothing to roll back: {}", args.plan, why.join("; "))
        }));
    }
    match workflow::approve_and_roll_back(cx, &plan, &undo, args.yes)
        .await?
        .error()
    {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
