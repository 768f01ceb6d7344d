//! `%rollback PLAN_ID`: undo what a plan changed, from the audit trail, approved
//! the same way as `%approve`.

use clap::Parser;
use runbook::audit::{self, AuditEvent, AuditJournal, AuditRecord};
use runbook::execute::{self, Undo};
use runbook::plan::{PlanId, RemediationPlan};

use super::MagicError;
use super::approve::{AUDIT_ERROR, approval, outcome_error};
use super::findings::connect;
use crate::output::{Output, cancellable};
use crate::render::approval as render;
use crate::session::Session;

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

fn audit_error(e: impl std::fmt::Display) -> MagicError {
    MagicError::new(AUDIT_ERROR, format!("{e}; nothing was changed"))
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

pub async fn run(
    args: RollbackArgs,
    session: &mut Session,
    out: &dyn Output,
) -> Result<(), MagicError> {
    let path = session.settings.audit_log.clone();
    let report = audit::read(&path).map_err(audit_error)?;
    let plan = plan_of(session, &report, &args.plan)?;
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
        return Err(MagicError::usage(format!(
            "{} has nothing to roll back: the audit trail shows no applied action that is not already undone",
            args.plan
        )));
    }
    let connected = connect(session, out).await?;
    let cloud = connected.cloud.clone();
    let handle = out.display(render::rollback_request(&plan, &undo));
    let mut log = session.open_audit_log().map_err(audit_error)?;
    let actor = cancellable(out, cloud.caller_identity()).await??;
    log.set_actor(actor.clone());
    match approval(args.yes, plan.id.as_str(), session, out).await {
        Ok(how) => log
            .append(AuditRecord::approved(&plan).with_detail(format!("rollback: {how}")))
            .map_err(audit_error)?,
        Err(refused) => {
            log.append(AuditRecord::cancelled(
                &plan,
                format!("rollback: {}", refused.evalue),
            ))
            .map_err(audit_error)?;
            out.update(&handle, render::refused(&plan, &refused.evalue));
            return Err(refused);
        }
    }
    out.set_critical(true);
    let mut show =
        |r: &execute::ExecutionReport| out.update(&handle, render::progress(&plan, r, &actor));
    let result = {
        let mut journal = AuditJournal::new(&mut log, &plan);
        execute::rollback(&plan, &undo, cloud.as_ref(), &mut journal, &mut show).await
    };
    out.set_critical(false);
    out.update(&handle, render::progress(&plan, &result, &actor));
    match outcome_error(&result) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
