//! Approval and execution: what is about to change, progress step by step, and the outcome.

use std::path::Path;

use runbook::execute::{ExecutionReport, Outcome, StepState};
use runbook::plan::{Precheck, RemediationPlan};
use serde_json::{Value, json};

use super::Bundle;
use super::html::{self, Cell, Table};
use super::text::Text;
use runbook::settings::Lang;

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// `plan-… — EC2.19 · 222222222222 (workload) in us-east-1`; `account` is the
/// account's label with its name, when known.
fn heading(plan: &RemediationPlan, account: &str) -> String {
    Text::PlanHeading.fill(
        plan.lang,
        &[&plan.id, &plan.control_id, &account, &plan.region],
    )
}

fn actions_table(plan: &RemediationPlan) -> (String, String) {
    let mut plain = String::new();
    let lang = plan.lang;
    let mut table = Table::new(
        "runbook-approve",
        &[
            "#",
            Text::ColAction.get(lang),
            Text::ColWhatItDoes.get(lang),
        ],
    );
    for (i, a) in plan.actions.iter().enumerate() {
        let describe = a.describe(plan.lang);
        plain.push_str(&format!("  {}. {} — {describe}\n", i + 1, a.name()));
        table.row(vec![
            Cell::text((i + 1).to_string()),
            Cell::code(a.name()),
            Cell::text(describe),
        ]);
    }
    (plain, table.render())
}

/// The plan as the approver sees it before answering.
pub fn request(plan: &RemediationPlan, account: &str, dry_run: bool) -> Bundle {
    let what = if dry_run {
        Text::DryRunAhead.get(plan.lang)
    } else {
        Text::ApprovalNeeded.get(plan.lang)
    };
    let (rows, table) = actions_table(plan);
    let plain = format!("{what}: {}\n{rows}", heading(plan, account));
    let rich = format!(
        "<div class=\"runbook-approval\"><p><strong>{}</strong>: <code>{}</code></p>{table}</div>",
        html::text(what),
        html::text(&heading(plan, account))
    );
    Bundle::html(
        plain.trim_end().to_string(),
        rich,
        json!({"plan_id": plan.id, "state": if dry_run { "dry_run" } else { "awaiting_approval" }}),
    )
}

pub fn refused(plan: &RemediationPlan, reason: &str) -> Bundle {
    let plain = Text::NotApproved.fill(plan.lang, &[&plan.id, &reason]);
    Bundle::html(
        plain.clone(),
        format!("<p><strong>{}</strong></p>", html::text(&plain)),
        json!({"plan_id": plan.id, "state": "not_approved", "reason": reason}),
    )
}

pub fn already_done(plan: &RemediationPlan, audit: &Path) -> Bundle {
    let plain = Text::AlreadyRan.fill(plan.lang, &[&plan.id, &audit.display()]);
    Bundle::html(
        plain.clone(),
        format!("<p>{}</p>", html::text(&plain)),
        json!({"plan_id": plan.id, "state": "already_applied"}),
    )
}

pub fn dry_run(
    plan: &RemediationPlan,
    account: &str,
    checks: &[Result<Precheck, String>],
) -> Bundle {
    let lang = plan.lang;
    let mut plain = format!(
        "{}\n",
        Text::DryRunOf.fill(lang, &[&heading(plan, account)])
    );
    let mut table = Table::new(
        "runbook-dry-run",
        &[
            "#",
            Text::ColAction.get(lang),
            Text::ColNow.get(lang),
            Text::ColWouldBecome.get(lang),
            Text::ColNote.get(lang),
        ],
    );
    for (i, (a, check)) in plan.actions.iter().zip(checks).enumerate() {
        let (now, after, note) = match check {
            Ok(p) => (
                compact(&p.current),
                compact(&p.expected),
                match (&p.drift, p.already_done) {
                    (Some(d), _) => Text::NoteDrift.fill(lang, &[d]),
                    (None, true) => Text::NoteAlreadyInPlace.get(lang).to_string(),
                    (None, false) => Text::NoteWouldChange.get(lang).to_string(),
                },
            ),
            Err(e) => (
                Text::NoteUnreadable.fill(lang, &[e]),
                String::new(),
                String::new(),
            ),
        };
        plain.push_str(&format!(
            "  {}. {} — {note}\n     now: {now}\n     after: {after}\n",
            i + 1,
            a.name()
        ));
        table.row(vec![
            Cell::text((i + 1).to_string()),
            Cell::code(a.name()),
            Cell::code(&now),
            Cell::code(&after),
            Cell::text(&note),
        ]);
    }
    let rich = format!(
        "<div class=\"runbook-dry-run\"><p><strong>{}</strong></p>{}</div>",
        html::text(&Text::DryRunOf.fill(lang, &[&heading(plan, account)])),
        table.render()
    );
    let checks_json = super::plan::prechecks_json(checks);
    Bundle::html(
        plain.trim_end().to_string(),
        rich,
        json!({"plan_id": plan.id, "state": "dry_run", "prechecks": checks_json}),
    )
}

fn state_label(state: &StepState, lang: Lang) -> &'static str {
    match state {
        StepState::Pending => Text::StatePending,
        StepState::Running => Text::StateRunning,
        StepState::Done => Text::StateDone,
        StepState::NoOp => Text::StateNoOp,
        StepState::Failed => Text::StateFailed,
        StepState::RolledBack => Text::StateRolledBack,
    }
    .get(lang)
}

fn outcome_text(report: &ExecutionReport, lang: Lang) -> String {
    match &report.outcome {
        Outcome::Running => Text::OutcomeRunning.get(lang).to_string(),
        Outcome::Succeeded => {
            let finding = match &report.finding_update {
                Some(Ok(u)) if u.unprocessed.is_empty() => {
                    Text::FindingResolved.get(lang).to_string()
                }
                Some(Ok(u)) => Text::FindingUpdateRefused.fill(
                    lang,
                    &[
                        &u.unprocessed.len(),
                        &u.unprocessed
                            .iter()
                            .map(|x| format!("{} ({})", x.error_code, x.error_message))
                            .collect::<Vec<_>>()
                            .join("; "),
                    ],
                ),
                Some(Err(e)) => Text::FindingUpdateFailed.fill(lang, &[e]),
                None => String::new(),
            };
            Text::OutcomeDone.fill(lang, &[&finding])
        }
        Outcome::AlreadyInPlace => Text::OutcomeNothingToDo.get(lang).to_string(),
        Outcome::Drifted { detail } => Text::OutcomeDrifted.fill(lang, &[detail]),
        Outcome::Failed {
            index,
            error,
            rollback_errors,
        } => {
            let failed = Text::OutcomeActionFailed.fill(lang, &[&(index + 1), error]);
            let after = if rollback_errors.is_empty() {
                Text::RolledBackBefore.get(lang).to_string()
            } else {
                Text::RollbackProblems.fill(lang, &[&rollback_errors.join("; ")])
            };
            format!("{failed} {after}")
        }
        Outcome::Cancelled { rollback_errors } => {
            if rollback_errors.is_empty() {
                Text::OutcomeInterrupted.get(lang).to_string()
            } else {
                Text::OutcomeInterruptedProblems.fill(lang, &[&rollback_errors.join("; ")])
            }
        }
        Outcome::JournalFailed { error } => Text::OutcomeJournalFailed.fill(lang, &[error]),
    }
}

/// Step-by-step progress, then the outcome, in one display.
pub fn progress(
    plan: &RemediationPlan,
    account: &str,
    report: &ExecutionReport,
    actor: &str,
) -> Bundle {
    let lang = plan.lang;
    let outcome = outcome_text(report, lang);
    let approved_by = Text::ApprovedBy.fill(lang, &[&actor]);
    let mut plain = format!("{}\n{approved_by}\n", heading(plan, account));
    let mut table = Table::new(
        "runbook-run",
        &[
            "#",
            Text::ColAction.get(lang),
            Text::ColWhatItDoes.get(lang),
            Text::ColState.get(lang),
            Text::ColError.get(lang),
        ],
    );
    for step in &report.steps {
        let label = state_label(&step.state, lang);
        // A long step (an Automation run) says where it is while it runs.
        let state = match &step.detail {
            Some(detail) => format!("{label}: {detail}"),
            None => label.to_string(),
        };
        plain.push_str(&format!(
            "  {}. {} — {state}\n",
            step.index + 1,
            step.action
        ));
        table.row(vec![
            Cell::text((step.index + 1).to_string()),
            Cell::code(&step.action),
            Cell::text(&step.description),
            Cell::text(&state),
            Cell::text(step.error.as_deref().unwrap_or("")),
        ]);
    }
    plain.push_str(&outcome);
    let rich = format!(
        "<div class=\"runbook-run\"><p><strong>{}</strong> · {}</p>{}<p><strong>{}</strong></p></div>",
        html::text(&heading(plan, account)),
        html::text(&approved_by),
        table.render(),
        html::text(&outcome)
    );
    Bundle::html(
        plain,
        rich,
        json!({"plan_id": plan.id, "state": report.outcome.label(), "actor": actor, "report": report}),
    )
}

/// What `%rollback` is about to undo.
pub fn rollback_request(
    plan: &RemediationPlan,
    account: &str,
    undo: &[runbook::execute::Undo],
) -> Bundle {
    let lang = plan.lang;
    let title = Text::RollbackNeedsApproval.get(lang);
    let mut plain = format!("{title}: {}\n", heading(plan, account));
    let mut table = Table::new(
        "runbook-rollback",
        &[
            Text::ColUndoes.get(lang),
            Text::ColInverse.get(lang),
            Text::ColWhatItDoes.get(lang),
        ],
    );
    for u in undo {
        let describe = u.inverse.describe(plan.lang);
        plain.push_str(&format!(
            "  {}: {} — {describe}\n",
            Text::UndoesActionN.fill(lang, &[&(u.index + 1)]),
            u.inverse.name()
        ));
        table.row(vec![
            Cell::text((u.index + 1).to_string()),
            Cell::code(u.inverse.name()),
            Cell::text(describe),
        ]);
    }
    let rich = format!(
        "<div class=\"runbook-rollback\"><p><strong>{}</strong>: <code>{}</code></p>{}</div>",
        html::text(title),
        html::text(&heading(plan, account)),
        table.render()
    );
    Bundle::html(
        plain.trim_end().to_string(),
        rich,
        json!({"plan_id": plan.id, "state": "awaiting_approval", "rollback": true}),
    )
}
