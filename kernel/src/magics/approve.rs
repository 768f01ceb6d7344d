//! `%approve PLAN_ID`: nothing changes until a human types the plan id. Then the
//! plan runs — precheck, apply, verify, resolve the finding — with every step in
//! the audit trail before the next one starts.

use clap::Parser;
use runbook::audit::{self, AuditJournal, AuditRecord, PlanStatus};
use runbook::execute::{self, ExecutionReport, Outcome};
use runbook::plan::PlanId;
use runbook::settings::{ApprovalMode, Lang};
use serde_json::json;

use super::MagicError;
use super::findings::connect;
use crate::output::{AskError, Output, cancellable};
use crate::render::approval as render;
use crate::session::{Session, StoredPlan};

pub const NOT_APPROVED: &str = "NotApproved";
pub const EXECUTION_FAILED: &str = "ExecutionFailed";
pub const STATE_DRIFTED: &str = "StateDrifted";
pub const AUDIT_ERROR: &str = "AuditError";

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

fn audit_error(e: impl std::fmt::Display) -> MagicError {
    MagicError::new(
        AUDIT_ERROR,
        format!("{e}; nothing was changed (set %config audit_log=PATH to a writable file)"),
    )
}

fn prompt(id: &str, lang: Lang) -> String {
    match lang {
        Lang::En => format!("Type the plan id ({id}) to apply it; anything else cancels: "),
        Lang::Ja => format!(
            "適用するにはプラン ID ({id}) を入力してください。それ以外の入力で取り消します: "
        ),
    }
}

/// How the human approved, or why it was refused. Shared with `%rollback`.
pub async fn approval(
    yes: bool,
    id: &str,
    session: &Session,
    out: &dyn Output,
) -> Result<String, MagicError> {
    let lang = session.settings.lang;
    if out.stdin_allowed() {
        return match out.ask(&prompt(id, lang), false).await {
            Ok(answer) if answer.trim() == id => Ok("typed the plan id".to_string()),
            Ok(answer) if answer.trim().is_empty() => Err(MagicError::new(
                NOT_APPROVED,
                "cancelled: the answer was empty, so nothing was changed",
            )),
            Ok(_) => Err(MagicError::new(
                NOT_APPROVED,
                format!("cancelled: the answer was not {id}, so nothing was changed"),
            )),
            Err(AskError::Interrupted) => Err(MagicError::interrupted()),
            Err(e) => Err(MagicError::new(
                NOT_APPROVED,
                format!("{e}; nothing was changed"),
            )),
        };
    }
    match (yes, session.settings.approval) {
        (true, ApprovalMode::AllowYes) => Ok("--yes (the frontend cannot ask)".to_string()),
        (true, ApprovalMode::Interactive) => Err(MagicError::new(
            NOT_APPROVED,
            "approval=interactive refuses --yes: run the cell in JupyterLab and type the plan id; nothing was changed",
        )),
        (false, _) => Err(MagicError::new(
            NOT_APPROVED,
            "this frontend cannot ask for the plan id (no stdin); add --yes to approve without typing it (allowed unless approval=interactive); nothing was changed",
        )),
    }
}

pub fn outcome_error(report: &ExecutionReport) -> Option<MagicError> {
    match &report.outcome {
        Outcome::Succeeded | Outcome::AlreadyInPlace | Outcome::Running => None,
        Outcome::Drifted { detail } => Some(MagicError::new(
            STATE_DRIFTED,
            format!(
                "the live state changed since the plan was made, so nothing was changed: {detail}; run %remediate again"
            ),
        )),
        Outcome::Failed {
            index,
            error,
            rollback_errors,
        } => Some(MagicError::new(
            EXECUTION_FAILED,
            if rollback_errors.is_empty() {
                format!(
                    "action {} failed: {error}; the actions before it were rolled back",
                    index + 1
                )
            } else {
                format!(
                    "action {} failed: {error}; rolling back also failed: {}",
                    index + 1,
                    rollback_errors.join("; ")
                )
            },
        )),
        Outcome::Cancelled { rollback_errors } => Some(MagicError::new(
            MagicError::INTERRUPTED,
            if rollback_errors.is_empty() {
                "interrupted between actions; what had been applied was rolled back".to_string()
            } else {
                format!(
                    "interrupted; rolling back failed: {}",
                    rollback_errors.join("; ")
                )
            },
        )),
        Outcome::JournalFailed { error } => Some(audit_error(error)),
    }
}

pub async fn run(
    args: ApproveArgs,
    session: &mut Session,
    out: &dyn Output,
) -> Result<(), MagicError> {
    let stored = stored_plan(session, &args.plan)?;
    let plan = &stored.plan;
    if args.dry_run {
        return dry_run(plan, session, out).await;
    }
    match approve_and_execute(plan, args.yes, session, out).await? {
        Executed::AlreadyDone => Ok(()),
        Executed::Ran(report) => match outcome_error(&report) {
            Some(error) => Err(error),
            None => Ok(()),
        },
    }
}

async fn dry_run(
    plan: &runbook::plan::RemediationPlan,
    session: &mut Session,
    out: &dyn Output,
) -> Result<(), MagicError> {
    let connected = connect(session, out).await?;
    let cloud = connected.cloud.clone();
    let path = session.settings.audit_log.clone();
    audit::read(&path).map_err(audit_error)?;
    let handle = out.display(render::request(plan, true));
    let mut log = session.open_audit_log().map_err(audit_error)?;
    let actor = cancellable(out, cloud.caller_identity()).await??;
    log.set_actor(actor);
    let checks = cancellable(out, execute::precheck_all(plan, cloud.as_ref())).await?;
    let before = json!(
        checks
            .iter()
            .map(|c| c.as_ref().map(|p| p.current.clone()).unwrap_or_default())
            .collect::<Vec<_>>()
    );
    let after = json!(
        checks
            .iter()
            .map(|c| c.as_ref().map(|p| p.expected.clone()).unwrap_or_default())
            .collect::<Vec<_>>()
    );
    log.append(AuditRecord::dry_run(plan, before, after))
        .map_err(audit_error)?;
    out.update(&handle, render::dry_run(plan, &checks));
    Ok(())
}

/// What [`approve_and_execute`] did.
#[derive(Debug, Clone)]
pub enum Executed {
    /// The audit trail shows the plan already succeeded; nothing ran.
    AlreadyDone,
    /// The plan ran; its outcome may still be a failure (see [`outcome_error`]).
    Ran(ExecutionReport),
}

/// The approval and execution of %approve, shared with %ask: shows the request,
/// asks the human (the plan id through stdin), and on yes runs precheck, apply,
/// verify and the finding update, every step in the audit trail. A refusal is
/// recorded and returned as a `NotApproved` error.
pub async fn approve_and_execute(
    plan: &runbook::plan::RemediationPlan,
    yes: bool,
    session: &mut Session,
    out: &dyn Output,
) -> Result<Executed, MagicError> {
    let id = plan.id.to_string();
    let connected = connect(session, out).await?;
    let cloud = connected.cloud.clone();
    let path = session.settings.audit_log.clone();
    let trail = audit::read(&path).map_err(audit_error)?;
    if matches!(audit::plan_status(&trail, &plan.id), PlanStatus::Succeeded) {
        out.display(render::already_done(plan, &path));
        return Ok(Executed::AlreadyDone);
    }
    let handle = out.display(render::request(plan, false));
    let mut log = session.open_audit_log().map_err(audit_error)?;
    let actor = cancellable(out, cloud.caller_identity()).await??;
    log.set_actor(actor.clone());

    match approval(yes, &id, session, out).await {
        Ok(how) => log
            .append(AuditRecord::approved(plan).with_detail(how))
            .map_err(audit_error)?,
        Err(refused) => {
            log.append(AuditRecord::cancelled(plan, refused.evalue.clone()))
                .map_err(audit_error)?;
            out.update(&handle, render::refused(plan, &refused.evalue));
            return Err(refused);
        }
    }

    // From here an interrupt is honoured between actions, with rollback; the
    // kernel must not drop the cell part-way through an action.
    out.set_critical(true);
    let token = out.cancellation();
    let cancelled = move || token.is_cancelled();
    let mut show =
        |report: &ExecutionReport| out.update(&handle, render::progress(plan, report, &actor));
    let report = {
        let mut journal = AuditJournal::new(&mut log, plan);
        execute::execute(plan, cloud.as_ref(), &mut journal, &mut show, &cancelled).await
    };
    out.set_critical(false);
    out.update(&handle, render::progress(plan, &report, &actor));
    Ok(Executed::Ran(report))
}
