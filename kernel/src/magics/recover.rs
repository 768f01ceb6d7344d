//! `%recover PLAN_ID`: after a run died part-way (a killed kernel), show what each
//! action of the plan looks like now, then finish the rest or roll back what was
//! applied, approved the same way as `%approve`. The logic is `runbook::recover`.

use clap::Parser;
use runbook::audit;
use runbook::execute::{self, ExecutionReport};
use runbook::plan::{PlanId, RemediationPlan};
use runbook::recover::{self, RecoverError};

use crate::context::{Context, ErrorKind, MagicError};
use crate::render::approval as render;
use crate::render::recover as render_recover;
use crate::workflow::{self, Decision, audit_error};

/// After a crash: precheck every action of a plan whose run never finished, then finish it (--finish) or undo what was applied (--rollback)
#[derive(Debug, Parser)]
pub struct RecoverArgs {
    /// The plan id whose run did not finish (see %audit)
    #[arg(value_name = "PLAN_ID", value_parser = |s: &str| s.parse::<PlanId>())]
    pub plan: PlanId,
    /// Apply the actions not applied yet; those already applied are skipped
    #[arg(long, conflicts_with = "rollback")]
    pub finish: bool,
    /// Undo the actions the interrupted run applied, newest first
    #[arg(long)]
    pub rollback: bool,
    /// Approve without typing the plan id, for frontends without input (refused when approval=interactive)
    #[arg(long)]
    pub yes: bool,
}

fn recover_error(e: RecoverError) -> MagicError {
    match e {
        RecoverError::NothingToRecover { .. } => {
            MagicError::new(ErrorKind::NothingToRecover, e.to_string())
        }
        RecoverError::UnknownPlan { .. } => MagicError::usage(e.to_string()),
        RecoverError::Unknown { .. } | RecoverError::Altered { .. } => MagicError::new(
            ErrorKind::RecoveryRefused,
            format!("{e}; nothing was changed"),
        ),
    }
}

pub async fn run(args: RecoverArgs, cx: &mut Context<'_>) -> Result<(), MagicError> {
    let out = cx.out;
    let path = cx.settings().audit_log.clone();
    let trail = audit::read(&path).map_err(audit_error)?;
    let plan: RemediationPlan = match cx.session.plans.get(args.plan.as_str()) {
        Some(stored) => stored.plan.clone(),
        None => recover::plan_from_trail(&trail, &args.plan).map_err(recover_error)?,
    };
    // Said before connecting: no cloud call is needed to know there is nothing to do.
    if let Err(e) = recover::classify(&plan, &trail, Vec::new()) {
        return Err(recover_error(e));
    }
    let connected = cx.cloud().await?;
    let account = cx.account_label(&plan.account).await;
    let cloud = connected.cloud.clone();
    let checks = cx
        .cancellable(execute::precheck_all(&plan, cloud.as_ref()))
        .await?;
    let recovery = recover::classify(&plan, &trail, checks).map_err(recover_error)?;
    let handle = out.display(render_recover::status(&plan, &recovery));
    if !args.finish && !args.rollback {
        return Ok(());
    }
    let choice = if args.finish {
        "recover finish"
    } else {
        "recover rollback"
    };
    if !recovery.unknown().is_empty() {
        return Err(recover_error(RecoverError::Unknown {
            plan_id: plan.id.to_string(),
            detail: "an action drifted or could not be read".to_string(),
        }));
    }
    let pending = workflow::open_approval(cx, &plan).await?;
    let actor = pending.actor().to_string();
    let mut approved = match workflow::decide(cx, pending, args.yes, Some(choice), &handle).await? {
        Decision::Approved(approved) => approved,
        Decision::Refused(why) => return Err(MagicError::new(ErrorKind::NotApproved, why)),
    };
    let cloud = workflow::acting_cloud(cx, &mut approved, &cloud).await?;
    // Like %approve: the cell must not be dropped part-way through an action.
    out.set_critical(true);
    let mut show =
        |r: &ExecutionReport| out.update(&handle, render::progress(&plan, &account, r, &actor));
    let result = {
        let mut journal = approved.journal();
        if args.finish {
            recover::finish(&plan, &recovery, cloud.as_ref(), &mut journal, &mut show).await
        } else {
            recover::roll_back(
                &plan,
                &trail,
                &recovery,
                cloud.as_ref(),
                &mut journal,
                &mut show,
            )
            .await
        }
    };
    out.set_critical(false);
    let report = result.map_err(recover_error)?;
    out.update(&handle, render::progress(&plan, &account, &report, &actor));
    match workflow::outcome_error(&report) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::run_cell;
    use super::*;
    use crate::output::recording::RecordingOutput;
    use crate::session::Session;
    use runbook::settings::Settings;

    async fn error_of(cell: &str) -> MagicError {
        let mut settings = Settings::default();
        settings.audit_log = std::env::temp_dir().join(format!(
            "runbook-recover-magic-{}-missing.jsonl",
            std::process::id()
        ));
        let mut s = Session::new(settings, Vec::new());
        let out = RecordingOutput::new();
        run_cell(cell, &mut s, &out).await.unwrap_err()
    }

    #[tokio::test]
    async fn bad_plan_ids_and_choices_get_clear_errors() {
        let e = error_of("%recover plan-1234abcd").await;
        assert_eq!(e.kind, ErrorKind::Usage);
        assert!(
            e.evalue.contains("plan-1234abcd") && e.evalue.contains("audit trail"),
            "{}",
            e.evalue
        );
        let e = error_of("%recover 42").await;
        assert_eq!(e.kind, ErrorKind::Usage);
        assert!(e.evalue.contains("plan-"), "{}", e.evalue);
        let e = error_of("%recover plan-1234abcd --finish --rollback").await;
        assert_eq!(e.kind, ErrorKind::Usage);
        assert!(e.evalue.contains("--rollback"), "{}", e.evalue);
    }
}
