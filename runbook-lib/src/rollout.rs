//! Rolling an approved plan out across accounts and regions with AWS's own engine:
//! the plan's rollout document ([`crate::export::rollout_document`]) is created
//! in the caller's account, shared with the target accounts, and run once with
//! `StartAutomationExecution` and `TargetLocations`; SSM runs it in each target
//! within the concurrency and error limits. The report has one row per target.

use std::time::Duration;

use serde::Serialize;

use crate::cloud::ssm::{AutomationRun, AutomationStart, TargetLocation};
use crate::cloud::{Cloud, CloudError, Target};
use crate::export::{ExportError, rollout_document, rollout_document_name};
use crate::plan::RemediationPlan;

/// StartAutomationExecution's limits on one target location.
pub const MAX_ACCOUNTS: usize = 50;
pub const MAX_REGIONS: usize = 50;

/// Where and how fast a rollout goes, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloutRequest {
    /// Account ids and organisational unit ids (`ou-…`).
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    /// `N` or `N%`.
    pub max_concurrency: String,
    /// `N` or `N%`.
    pub max_errors: String,
    /// The role Automation assumes in each target account.
    pub execution_role: String,
}

/// Why a rollout request is refused; each says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolloutError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Cloud(#[from] CloudError),
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `ou-` then 4–32 characters, `-`, 8–32 characters (Organizations' pattern).
fn is_ou(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("ou-") else {
        return false;
    };
    let Some((root, unit)) = rest.split_once('-') else {
        return false;
    };
    let ok = |p: &str, min: usize| {
        (min..=32).contains(&p.len())
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    ok(root, 4) && ok(unit, 8)
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// `N` (1 or more) or `N%` (1–100).
fn check_rate(name: &str, value: &str, zero_ok: bool) -> Result<(), RolloutError> {
    let (number, percent) = match value.strip_suffix('%') {
        Some(n) => (n, true),
        None => (value, false),
    };
    let n: u32 = number.parse().map_err(|_| {
        RolloutError::Invalid(format!(
            "--{name} {value:?} is not a number or a percentage; accepted: N or N% (e.g. 10 or 25%)"
        ))
    })?;
    let min = u32::from(!zero_ok);
    if n < min || (percent && n > 100) {
        return Err(RolloutError::Invalid(format!(
            "--{name} {value} is out of range; accepted: {min} or more, or {min}%–100%"
        )));
    }
    Ok(())
}

impl RolloutRequest {
    /// Checks ids, regions and rates as StartAutomationExecution would, before anything is made.
    pub fn checked(self) -> Result<RolloutRequest, RolloutError> {
        if self.accounts.is_empty() || self.accounts.len() > MAX_ACCOUNTS {
            return Err(RolloutError::Invalid(format!(
                "--accounts takes 1 to {MAX_ACCOUNTS} account ids or OU ids, got {}",
                self.accounts.len()
            )));
        }
        if let Some(bad) = self.accounts.iter().find(|a| !is_account(a) && !is_ou(a)) {
            return Err(RolloutError::Invalid(format!(
                "--accounts: {bad:?} is neither a 12-digit account id nor an OU id (ou-xxxx-xxxxxxxx)"
            )));
        }
        if self.regions.is_empty() || self.regions.len() > MAX_REGIONS {
            return Err(RolloutError::Invalid(format!(
                "--regions takes 1 to {MAX_REGIONS} regions, got {}",
                self.regions.len()
            )));
        }
        if let Some(bad) = self.regions.iter().find(|r| !is_region(r)) {
            return Err(RolloutError::Invalid(format!(
                "--regions: {bad:?} is not a region name (e.g. us-east-1, ap-northeast-1)"
            )));
        }
        check_rate("max-concurrency", &self.max_concurrency, false)?;
        check_rate("max-errors", &self.max_errors, true)?;
        if self.execution_role.is_empty()
            || !self
                .execution_role
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
        {
            return Err(RolloutError::Invalid(format!(
                "--execution-role {:?} is not a role name",
                self.execution_role
            )));
        }
        Ok(self)
    }

    /// How many account-region targets, counting an OU as one account.
    pub fn targets(&self) -> usize {
        self.accounts.len() * self.regions.len()
    }

    pub fn has_ous(&self) -> bool {
        self.accounts.iter().any(|a| is_ou(a))
    }
}

/// One target's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetRow {
    pub account: String,
    pub region: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
}

impl TargetRow {
    pub fn succeeded(&self) -> bool {
        self.status == "Success"
    }
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloutReport {
    pub plan_id: String,
    pub document: String,
    pub execution_id: Option<String>,
    /// AWS's status of the parent execution ("Pending" before it starts).
    pub status: String,
    pub rows: Vec<TargetRow>,
    pub finished: bool,
}

impl RolloutReport {
    fn from_run(plan: &RemediationPlan, run: &AutomationRun) -> RolloutReport {
        let rows = run
            .steps
            .iter()
            .filter_map(|s| {
                let target = s.target.as_ref()?;
                Some(TargetRow {
                    account: target.account.to_string(),
                    region: target.region.clone(),
                    status: s.status.clone(),
                    failure: s.failure.clone(),
                    execution_id: s.child_execution.clone(),
                })
            })
            .collect();
        RolloutReport {
            plan_id: plan.id.to_string(),
            document: run.document.clone(),
            execution_id: Some(run.execution_id.clone()),
            status: run.status.clone(),
            rows,
            finished: run.is_finished(),
        }
    }

    pub fn succeeded(&self) -> usize {
        self.rows.iter().filter(|r| r.succeeded()).count()
    }
}

fn next_poll(previous: Duration) -> Duration {
    (previous * 2).clamp(Duration::from_millis(200), Duration::from_secs(3))
}

/// Creates and shares the plan's rollout document in `home` (the caller's own
/// account and region) and runs it across the request's targets, reporting each
/// poll. An interrupt stops the execution (and so every target not yet done).
pub async fn roll_out(
    cloud: &dyn Cloud,
    home: &Target,
    plan: &RemediationPlan,
    request: &RolloutRequest,
    progress: &mut (dyn FnMut(&RolloutReport) + Send),
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<RolloutReport, RolloutError> {
    let content = rollout_document(plan)?;
    let name = rollout_document_name(plan);
    cloud
        .create_automation_document(home, &name, &content)
        .await?;
    let accounts: Vec<String> = request
        .accounts
        .iter()
        .filter(|a| is_account(a) && a.as_str() != home.account.as_str())
        .cloned()
        .collect();
    if !accounts.is_empty() {
        cloud.share_document(home, &name, &accounts).await?;
    }
    let role = format!(
        "arn:{}:iam::{{{{global:ACCOUNT_ID}}}}:role/{}",
        home.partition(),
        request.execution_role
    );
    let start = AutomationStart {
        document: name.clone(),
        parameters: [("AutomationAssumeRole".to_string(), vec![role])]
            .into_iter()
            .collect(),
        target_locations: vec![TargetLocation {
            accounts: request.accounts.clone(),
            regions: request.regions.clone(),
            execution_role_name: request.execution_role.clone(),
            max_concurrency: request.max_concurrency.clone(),
            max_errors: request.max_errors.clone(),
        }],
    };
    let id = cloud.start_automation(home, &start).await?;
    let mut pause = Duration::ZERO;
    loop {
        let run = cloud.automation(home, &id).await?;
        let report = RolloutReport::from_run(plan, &run);
        progress(&report);
        if report.finished {
            return Ok(report);
        }
        if cancelled() {
            cloud.stop_automation(home, &id).await?;
            let run = cloud.automation(home, &id).await?;
            let mut report = RolloutReport::from_run(plan, &run);
            report.finished = true;
            return Ok(report);
        }
        pause = next_poll(pause);
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(accounts: &[&str], regions: &[&str], c: &str, e: &str) -> RolloutRequest {
        RolloutRequest {
            accounts: accounts.iter().map(|s| s.to_string()).collect(),
            regions: regions.iter().map(|s| s.to_string()).collect(),
            max_concurrency: c.to_string(),
            max_errors: e.to_string(),
            execution_role: "SecurityRunbookMember".to_string(),
        }
    }

    #[test]
    fn requests_are_checked_as_ssm_would() {
        assert!(
            request(
                &["111122223333", "ou-ab12-cdef3456"],
                &["us-east-1"],
                "10%",
                "0"
            )
            .checked()
            .is_ok()
        );
        for (bad, words) in [
            (
                request(&[], &["us-east-1"], "1", "0"),
                "--accounts takes 1 to 50",
            ),
            (
                request(&["1234"], &["us-east-1"], "1", "0"),
                "neither a 12-digit",
            ),
            (
                request(&["111122223333"], &["narnia"], "1", "0"),
                "not a region",
            ),
            (
                request(&["111122223333"], &["us-east-1"], "0", "0"),
                "out of range",
            ),
            (
                request(&["111122223333"], &["us-east-1"], "101%", "0"),
                "out of range",
            ),
            (
                request(&["111122223333"], &["us-east-1"], "ten", "0"),
                "not a number",
            ),
            (
                request(&["111122223333"], &["us-east-1"], "1", "-1"),
                "not a number",
            ),
        ] {
            let e = bad.checked().expect_err("refused").to_string();
            assert!(e.contains(words), "{e}");
        }
        let many: Vec<String> = (0..51).map(|i| format!("{:012}", i)).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(request(&refs, &["us-east-1"], "1", "0").checked().is_err());
    }
}
