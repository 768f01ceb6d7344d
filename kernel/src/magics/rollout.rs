//! `%rollout PLAN_ID --accounts … --regions …`: one approved plan across many
//! accounts and regions, run by SSM Automation (`TargetLocations`), with one live
//! row, one audit record and the findings resolved per target that succeeded.

use std::collections::BTreeSet;

use clap::Parser;
use runbook::audit::AuditRecord;
use runbook::cloud::{Cloud, Target};
use runbook::finding::{ComplianceStatus, FindingFilter, RecordState, WorkflowStatus};
use runbook::plan::RemediationPlan;
use runbook::rollout::{RolloutReport, RolloutRequest, roll_out};
use serde_json::json;

use crate::context::{Context, MagicError};
use crate::error::ErrorKind;
use crate::render::{Bundle, html};
use crate::workflow::{self, Decision, audit_error};

/// A comma-separated list, blanks dropped.
fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Roll an approved plan's account-wide change out to accounts and regions with SSM Automation
#[derive(Debug, Parser)]
pub struct RolloutArgs {
    /// A plan id from %remediate (plan-xxxxxxxx), or `last` for the most recent plan
    #[arg(value_name = "PLAN_ID")]
    pub plan: String,
    /// Account ids and OU ids (ou-xxxx-xxxxxxxx), comma-separated, at most 50
    #[arg(long, value_name = "IDS")]
    pub accounts: String,
    /// Regions, comma-separated, at most 50
    #[arg(long, value_name = "REGIONS")]
    pub regions: String,
    /// How many targets run at once: N or N%
    #[arg(long, value_name = "N|N%", default_value = "10")]
    pub max_concurrency: String,
    /// How many targets may fail before the rest are not started: N or N%
    #[arg(long, value_name = "N|N%", default_value = "0")]
    pub max_errors: String,
    /// The role Automation assumes in each target (default: the member role)
    #[arg(long, value_name = "ROLE")]
    pub execution_role: Option<String>,
    /// Approve without typing the plan id (refused when approval=interactive)
    #[arg(long)]
    pub yes: bool,
}

/// Most values GetFindings takes for one filter field.
const FILTER_VALUES: usize = 20;
/// GetFindings' largest page.
const ONE_PAGE: usize = 100;

fn heading(plan: &RemediationPlan, request: &RolloutRequest) -> String {
    format!(
        "Rollout of {} ({}) to {} target(s): accounts {} × regions {}",
        plan.id,
        plan.control_id,
        request.targets(),
        request.accounts.join(", "),
        request.regions.join(", ")
    )
}

fn render(
    plan: &RemediationPlan,
    request: &RolloutRequest,
    report: &RolloutReport,
    note: &str,
) -> Bundle {
    let title = heading(plan, request);
    let mut plain = format!("{title}\n");
    let mut table = html::Table::new("runbook-rollout", &["Account", "Region", "Status", "Error"]);
    for row in &report.rows {
        plain.push_str(&format!(
            "  {} {} — {}{}\n",
            row.account,
            row.region,
            row.status,
            row.failure
                .as_deref()
                .map(|f| format!(": {f}"))
                .unwrap_or_default()
        ));
        table.row(vec![
            html::Cell::code(&row.account),
            html::Cell::code(&row.region),
            html::Cell::text(&row.status),
            html::Cell::text(row.failure.as_deref().unwrap_or("")),
        ]);
    }
    let status = format!(
        "{} · {} of {} target(s) succeeded{}",
        report.status,
        report.succeeded(),
        report.rows.len().max(request.targets()),
        if note.is_empty() {
            String::new()
        } else {
            format!(" · {note}")
        }
    );
    plain.push_str(&status);
    Bundle::html(
        plain,
        format!(
            "<div class=\"runbook-rollout\"><p><strong>{}</strong></p><p>{}</p>{}<p>{}</p></div>",
            html::text(&title),
            html::text(&format!(
                "Document {} · execution {}",
                report.document,
                report.execution_id.as_deref().unwrap_or("not started")
            )),
            table.render(),
            html::text(&status)
        ),
        json!({"plan_id": plan.id, "state": if report.finished { "finished" } else { "running" }, "rollout": report, "request": request}),
    )
}

/// The caller's own account and the session's region: where the rollout is started.
async fn home(cloud: &dyn Cloud) -> Result<Target, MagicError> {
    let info = cloud.describe();
    let account = match info.account {
        Some(a) => a,
        None => {
            let caller = cloud.caller_identity().await?;
            caller
                .split(':')
                .nth(4)
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| {
                    MagicError::usage(format!("cannot tell the caller's account from {caller}"))
                })?
        }
    };
    Ok(Target {
        account,
        region: info.region,
    })
}

pub async fn run(args: RolloutArgs, cx: &mut Context<'_>) -> Result<(), MagicError> {
    let plan = workflow::stored_plan(cx.session, &args.plan)?.plan;
    let connected = cx.cloud().await?;
    let cloud = connected.cloud.clone();
    let request = RolloutRequest {
        accounts: list(&args.accounts),
        regions: list(&args.regions),
        max_concurrency: args.max_concurrency,
        max_errors: args.max_errors,
        execution_role: args
            .execution_role
            .unwrap_or_else(|| cloud.member_role().name),
    }
    .checked()
    .map_err(|e| MagicError::usage(e.to_string()))?;
    // Refuse plans that cannot be rolled out before asking anyone.
    runbook::export::rollout_document(&plan).map_err(|e| MagicError::usage(e.to_string()))?;
    let home = home(cloud.as_ref()).await?;

    let out = cx.out;
    let waiting = RolloutReport {
        plan_id: plan.id.to_string(),
        document: runbook::export::rollout_document_name(&plan),
        execution_id: None,
        status: "AwaitingApproval".to_string(),
        rows: Vec::new(),
        finished: false,
    };
    let handle = out.display(render(
        &plan,
        &request,
        &waiting,
        "type the plan id to approve",
    ));
    let pending = workflow::open_approval(cx, &plan).await?;
    let what = format!("rollout to {} target(s)", request.targets());
    let mut approved = match workflow::decide(cx, pending, args.yes, Some(&what), &handle).await? {
        Decision::Approved(approved) => approved,
        Decision::Refused(why) => return Err(MagicError::new(ErrorKind::NotApproved, why)),
    };

    out.set_critical(true);
    let token = out.cancellation();
    let cancelled = move || token.is_cancelled();
    let mut show =
        |report: &RolloutReport| out.update(&handle, render(&plan, &request, report, ""));
    let result = roll_out(
        cloud.as_ref(),
        &home,
        &plan,
        &request,
        &mut show,
        &cancelled,
    )
    .await;
    out.set_critical(false);
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            approved
                .record(
                    AuditRecord::run_finished(&plan, "rollout_failed").with_detail(e.to_string()),
                )
                .map_err(audit_error)?;
            return Err(MagicError::new(
                ErrorKind::ExecutionFailed,
                format!("the rollout did not start: {e}"),
            ));
        }
    };

    // One record per target, in the target's own account and region.
    for row in &report.rows {
        let mut record =
            AuditRecord::run_finished(&plan, &format!("rollout_{}", row.status.to_lowercase()))
                .with_detail(format!(
                    "rollout execution {} in {} {}{}",
                    row.execution_id
                        .as_deref()
                        .or(report.execution_id.as_deref())
                        .unwrap_or("-"),
                    row.account,
                    row.region,
                    row.failure
                        .as_deref()
                        .map(|f| format!(": {f}"))
                        .unwrap_or_default()
                ));
        if let Ok(account) = row.account.parse() {
            record.account = account;
        }
        record.region.clone_from(&row.region);
        approved.record(record).map_err(audit_error)?;
    }

    // Resolve the plan's control's open findings where the target succeeded (its
    // document verified the setting); the others stay as they are.
    let done: BTreeSet<(String, String)> = report
        .rows
        .iter()
        .filter(|r| r.succeeded())
        .map(|r| (r.account.clone(), r.region.clone()))
        .collect();
    let mut note = String::new();
    if !done.is_empty() {
        // Security Hub takes at most 20 values per filter field: ask in batches.
        let accounts: Vec<_> = done
            .iter()
            .filter_map(|(a, _)| a.parse().ok())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let regions: Vec<String> = done
            .iter()
            .map(|(_, r)| r.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut findings = Vec::new();
        for accounts in accounts.chunks(FILTER_VALUES) {
            for regions in regions.chunks(FILTER_VALUES) {
                let filter = FindingFilter {
                    limit: None,
                    control_ids: vec![plan.control_id.clone()],
                    accounts: accounts.to_vec(),
                    regions: regions.to_vec(),
                    compliance_statuses: vec![ComplianceStatus::Failed],
                    workflow_statuses: vec![WorkflowStatus::New, WorkflowStatus::Notified],
                    record_state: Some(RecordState::Active),
                    ..FindingFilter::default()
                };
                // One page usually holds them: a limited listing is one request, not
                // one per severity; only a full page asks again for all.
                let mut quiet = |_: runbook::cloud::FetchProgress, _: &[runbook::Finding]| {};
                let page = FindingFilter {
                    limit: Some(ONE_PAGE),
                    ..filter.clone()
                };
                let mut found = cloud.get_findings(&page, &mut quiet).await?;
                if found.len() >= ONE_PAGE {
                    found = cloud.get_findings(&filter, &mut quiet).await?;
                }
                findings.extend(found);
            }
        }
        let ids: Vec<_> = findings
            .iter()
            .filter(|f| done.contains(&(f.account.to_string(), f.region.clone())))
            .map(|f| f.identifier())
            .collect();
        if !ids.is_empty() {
            let text = format!(
                "Remediated by rollout of {} (SSM Automation {})",
                plan.id,
                report.execution_id.as_deref().unwrap_or("-")
            );
            let updated = cloud
                .update_findings(&ids, WorkflowStatus::Resolved, &text)
                .await;
            let error = updated.as_ref().err().map(ToString::to_string);
            approved
                .record(AuditRecord::findings_updated(
                    &plan,
                    &ids,
                    &text,
                    error.as_deref(),
                ))
                .map_err(audit_error)?;
            note = match error {
                None => format!("{} finding(s) resolved", ids.len()),
                Some(e) => format!("resolving {} finding(s) failed: {e}", ids.len()),
            };
        }
    }
    out.update(&handle, render(&plan, &request, &report, &note));
    let failed: Vec<String> = report
        .rows
        .iter()
        .filter(|r| !r.succeeded())
        .map(|r| format!("{} {} {}", r.account, r.region, r.status))
        .collect();
    if report.status != "Success" || !failed.is_empty() {
        return Err(MagicError::new(
            ErrorKind::ExecutionFailed,
            format!(
                "the rollout ended {}: {} of {} target(s) did not succeed ({})",
                report.status,
                failed.len(),
                report.rows.len(),
                failed.join("; ")
            ),
        ));
    }
    Ok(())
}
