//! Approval and execution: what is about to change, progress step by step, and the outcome.

use std::path::Path;

use runbook::execute::{ExecutionReport, Outcome, StepState};
use runbook::plan::{Precheck, RemediationPlan};
use serde_json::{Value, json};

use super::Bundle;
use super::html::{self, Cell, Table};

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// `plan-… — EC2.19 · 222222222222 (workload) in us-east-1`; `account` is the
/// account's label with its name, when known.
fn heading(plan: &RemediationPlan, account: &str) -> String {
    format!(
        "{} — {} · {account} in {}",
        plan.id, plan.control_id, plan.region
    )
}

fn actions_table(plan: &RemediationPlan) -> (String, String) {
    let mut plain = String::new();
    let mut table = Table::new("runbook-approve", &["#", "Action", "What it does"]);
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
        "Dry run (nothing will change)"
    } else {
        "Approval needed"
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
    let plain = format!("Not approved: {} — {reason}", plan.id);
    Bundle::html(
        plain.clone(),
        format!("<p><strong>{}</strong></p>", html::text(&plain)),
        json!({"plan_id": plan.id, "state": "not_approved", "reason": reason}),
    )
}

pub fn already_done(plan: &RemediationPlan, audit: &Path) -> Bundle {
    let plain = format!(
        "{} already ran successfully (see the audit trail in {}); nothing was changed.",
        plan.id,
        audit.display()
    );
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
    let mut plain = format!(
        "Dry run of {} — nothing was changed.\n",
        heading(plan, account)
    );
    let mut table = Table::new(
        "runbook-dry-run",
        &["#", "Action", "Now", "Would become", "Note"],
    );
    for (i, (a, check)) in plan.actions.iter().zip(checks).enumerate() {
        let (now, after, note) = match check {
            Ok(p) => (
                compact(&p.current),
                compact(&p.expected),
                match (&p.drift, p.already_done) {
                    (Some(d), _) => format!("drift: {d}"),
                    (None, true) => "already in place: no-op".to_string(),
                    (None, false) => "would change".to_string(),
                },
            ),
            Err(e) => (format!("could not read: {e}"), String::new(), String::new()),
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
        html::text(&format!(
            "Dry run of {} — nothing was changed.",
            heading(plan, account)
        )),
        table.render()
    );
    let checks_json = super::plan::prechecks_json(checks);
    Bundle::html(
        plain.trim_end().to_string(),
        rich,
        json!({"plan_id": plan.id, "state": "dry_run", "prechecks": checks_json}),
    )
}

fn state_label(state: &StepState) -> &'static str {
    match state {
        StepState::Pending => "pending",
        StepState::Running => "running…",
        StepState::Done => "applied and verified",
        StepState::NoOp => "already in place (no-op)",
        StepState::Failed => "failed",
        StepState::RolledBack => "rolled back",
    }
}

fn outcome_text(report: &ExecutionReport) -> String {
    match &report.outcome {
        Outcome::Running => "Running…".to_string(),
        Outcome::Succeeded => {
            let finding = match &report.finding_update {
                Some(Ok(u)) if u.unprocessed.is_empty() => {
                    "the finding is marked RESOLVED with a note naming the plan".to_string()
                }
                Some(Ok(u)) => format!(
                    "the finding update was refused for {} finding(s): {}",
                    u.unprocessed.len(),
                    u.unprocessed
                        .iter()
                        .map(|x| format!("{} ({})", x.error_code, x.error_message))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                Some(Err(e)) => format!("the change holds, but updating the finding failed: {e}"),
                None => String::new(),
            };
            format!("Done: every action applied and verified; {finding}.")
        }
        Outcome::AlreadyInPlace => {
            "Nothing to do: every action's intended state already holds; nothing was changed."
                .to_string()
        }
        Outcome::Drifted { detail } => format!(
            "Stopped before any change: the live state drifted since the plan was made ({detail})."
        ),
        Outcome::Failed {
            index,
            error,
            rollback_errors,
        } => {
            let mut t = format!("Action {} failed: {error}. ", index + 1);
            if rollback_errors.is_empty() {
                t.push_str("Everything applied before it was rolled back.");
            } else {
                t.push_str(&format!(
                    "Rollback problems: {}",
                    rollback_errors.join("; ")
                ));
            }
            t
        }
        Outcome::Cancelled { rollback_errors } => {
            if rollback_errors.is_empty() {
                "Interrupted between actions: what had been applied was rolled back.".to_string()
            } else {
                format!(
                    "Interrupted; rollback problems: {}",
                    rollback_errors.join("; ")
                )
            }
        }
        Outcome::JournalFailed { error } => {
            format!("Stopped: the audit trail could not be written ({error}).")
        }
    }
}

/// Step-by-step progress, then the outcome, in one display.
pub fn progress(
    plan: &RemediationPlan,
    account: &str,
    report: &ExecutionReport,
    actor: &str,
) -> Bundle {
    let outcome = outcome_text(report);
    let mut plain = format!("{}\nApproved by {actor}\n", heading(plan, account));
    let mut table = Table::new(
        "runbook-run",
        &["#", "Action", "What it does", "State", "Error"],
    );
    for step in &report.steps {
        let state = state_label(&step.state);
        plain.push_str(&format!(
            "  {}. {} — {state}\n",
            step.index + 1,
            step.action
        ));
        table.row(vec![
            Cell::text((step.index + 1).to_string()),
            Cell::code(&step.action),
            Cell::text(&step.description),
            Cell::text(state),
            Cell::text(step.error.as_deref().unwrap_or("")),
        ]);
    }
    plain.push_str(&outcome);
    let rich = format!(
        "<div class=\"runbook-run\"><p><strong>{}</strong> · {}</p>{}<p><strong>{}</strong></p></div>",
        html::text(&heading(plan, account)),
        html::text(&format!("approved by {actor}")),
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
    let mut plain = format!("Rollback needs approval: {}\n", heading(plan, account));
    let mut table = Table::new(
        "runbook-rollback",
        &["Undoes action", "Inverse", "What it does"],
    );
    for u in undo {
        let describe = u.inverse.describe(plan.lang);
        plain.push_str(&format!(
            "  action {}: {} — {describe}\n",
            u.index + 1,
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
        html::text("Rollback needs approval"),
        html::text(&heading(plan, account)),
        table.render()
    );
    Bundle::html(
        plain.trim_end().to_string(),
        rich,
        json!({"plan_id": plan.id, "state": "awaiting_approval", "rollback": true}),
    )
}
