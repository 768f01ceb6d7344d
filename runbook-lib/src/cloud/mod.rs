//! The AWS operations the runbook uses, behind one trait. The sandbox and the AWS
//! backend differ only in how [`Cloud`] is implemented.

use std::cmp::Reverse;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::finding::{AccountId, Finding, FindingFilter, FindingIdentifier, WorkflowStatus};

pub mod aws;
pub mod connect;
pub mod sandbox;

pub use connect::{Clouds, Connected};
pub use sandbox::Sandbox;

/// Which implementation is behind a [`Cloud`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Sandbox,
    Aws,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Sandbox => "sandbox",
            BackendKind::Aws => "aws",
        })
    }
}

/// An account the backend can see, with its alias when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    pub id: AccountId,
    pub alias: Option<String>,
}

/// What a backend is and why it was chosen, for `%config` and listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    pub kind: BackendKind,
    /// The account the backend acts as (None if not yet known).
    pub account: Option<AccountId>,
    /// Home region: where Security Hub is read.
    pub region: String,
    /// Why this backend was chosen, in words.
    pub reason: String,
    /// Accounts whose findings it can see (the home account first).
    pub accounts: Vec<AccountInfo>,
    /// Regions whose findings it can see (the home region first).
    pub regions: Vec<String>,
}

/// Progress of a findings fetch, reported after each page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchProgress {
    /// Pages read so far.
    pub pages: usize,
    /// Findings kept so far.
    pub findings: usize,
    /// Findings received that could not be read as ASFF, so far.
    pub unreadable: usize,
    /// True on the last report.
    pub done: bool,
}

/// A finding BatchUpdateFindings could not update, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnprocessedFinding {
    pub finding: FindingIdentifier,
    pub error_code: String,
    pub error_message: String,
}

/// The result of [`Cloud::update_findings`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpdateOutcome {
    pub processed: Vec<FindingIdentifier>,
    pub unprocessed: Vec<UnprocessedFinding>,
}

impl UpdateOutcome {
    pub fn all_processed(&self) -> bool {
        self.unprocessed.is_empty()
    }
}

/// Errors from a cloud backend, each phrased so a user knows what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    #[error(
        "no AWS credentials found ({0}); configure a profile or environment credentials, or use the sandbox backend"
    )]
    NoCredentials(String),
    #[error("access denied for {action}: the caller's IAM policy must allow it ({message})")]
    AccessDenied { action: String, message: String },
    #[error("{service} is not enabled in {region}")]
    NotEnabled { service: String, region: String },
    #[error("{action} was throttled by AWS; wait a moment and try again")]
    Throttled { action: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("{0}")]
    Other(String),
}

impl CloudError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CloudError::Throttled { .. })
    }
}

/// A progress callback; `Send` so the trait's futures stay `Send`.
pub type ProgressFn<'a> = dyn FnMut(FetchProgress) + Send + 'a;

/// The AWS operations the runbook uses. One value acts from one home account and
/// region; each operation takes its target (account, region, finding) from its
/// arguments, so a finding from another account is acted on where it lives.
#[async_trait]
pub trait Cloud: Send + Sync {
    /// What this backend is, for display.
    fn describe(&self) -> BackendInfo;

    /// Findings matching the filter, sorted by [`sort_findings`], at most `filter.limit`.
    async fn get_findings(
        &self,
        filter: &FindingFilter,
        progress: &mut ProgressFn<'_>,
    ) -> Result<Vec<Finding>, CloudError>;

    /// Sets the workflow status (and a note, if not empty) on findings, as BatchUpdateFindings.
    async fn update_findings(
        &self,
        ids: &[FindingIdentifier],
        workflow: WorkflowStatus,
        note: &str,
    ) -> Result<UpdateOutcome, CloudError>;
}

/// Most severe first, then most recently updated, then by Id so the order is stable.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (Reverse(a.severity), Reverse(a.updated_at), &a.id).cmp(&(
            Reverse(b.severity),
            Reverse(b.updated_at),
            &b.id,
        ))
    });
}

/// Applies a filter the way every backend must: match, sort, then limit.
pub fn select(findings: impl IntoIterator<Item = Finding>, filter: &FindingFilter) -> Vec<Finding> {
    let mut out: Vec<Finding> = findings.into_iter().filter(|f| filter.matches(f)).collect();
    sort_findings(&mut out);
    if let Some(n) = filter.limit {
        out.truncate(n);
    }
    out
}

/// Largest note BatchUpdateFindings accepts.
pub const MAX_NOTE_CHARS: usize = 512;

/// Largest batch BatchUpdateFindings accepts.
pub const MAX_UPDATE_BATCH: usize = 100;
