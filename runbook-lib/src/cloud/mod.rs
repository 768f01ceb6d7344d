//! The AWS operations the runbook uses, behind one trait. The sandbox and the AWS
//! backend differ only in how [`Cloud`] is implemented.

use std::cmp::Reverse;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::finding::{AccountId, Finding, FindingFilter, FindingIdentifier, WorkflowStatus};
use crate::severity::Severity;

pub mod aws;
pub mod config;
pub mod connect;
pub mod ec2;
pub mod guardduty;
pub mod iam;
pub mod kms;
pub mod member;
pub mod s3control;
pub mod sandbox;
pub mod ssm;

pub use config::ConfigService;
pub use connect::{Clouds, Connected};
pub use ec2::Ec2;
pub use guardduty::GuardDuty;
pub use iam::Iam;
pub use kms::Kms;
pub use member::{
    Access, Acting, MemberRole, MemberSession, OrgAccount, Organisation, SessionPolicy,
    SessionRequest,
};
pub use s3control::S3Control;
pub use sandbox::Sandbox;
pub use ssm::Ssm;

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
    /// Which Security Hub API findings are read through, once known, e.g.
    /// "Security Hub CSPM (GetFindings)".
    #[serde(default)]
    pub findings_api: Option<String>,
}

/// How many findings match a filter, known before any page is read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FindingCounts {
    pub total: u64,
    /// Every severity label, most severe first.
    pub by_severity: Vec<(Severity, u64)>,
    /// Accounts with findings, most findings first.
    pub by_account: Vec<(AccountId, u64)>,
    /// Where the numbers come from, e.g. "GetFindingStatisticsV2".
    pub method: String,
}

impl FindingCounts {
    /// Counts of findings already in hand (the sandbox, or a test).
    pub fn of<'a>(findings: impl IntoIterator<Item = &'a Finding>, method: &str) -> FindingCounts {
        let mut severities = std::collections::BTreeMap::new();
        let mut accounts = std::collections::BTreeMap::new();
        let mut total = 0;
        for f in findings {
            total += 1;
            *severities.entry(f.severity).or_insert(0) += 1;
            *accounts.entry(f.account.clone()).or_insert(0) += 1;
        }
        FindingCounts::from_groups(total, severities, accounts, method)
    }

    /// Orders grouped counts for display: all severities, most severe first;
    /// accounts with most findings first.
    pub fn from_groups(
        total: u64,
        severities: std::collections::BTreeMap<Severity, u64>,
        accounts: std::collections::BTreeMap<AccountId, u64>,
        method: &str,
    ) -> FindingCounts {
        let by_severity = Severity::ALL
            .iter()
            .rev()
            .map(|s| (*s, severities.get(s).copied().unwrap_or(0)))
            .collect();
        let mut by_account: Vec<(AccountId, u64)> = accounts.into_iter().collect();
        by_account.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        FindingCounts {
            total,
            by_severity,
            by_account,
            method: method.to_string(),
        }
    }
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
    #[error(
        "{action} was refused by an explicit deny in {by}; no Allow can override it, so the organisation's administrators must change {by} or act another way ({message})"
    )]
    ExplicitDeny {
        action: String,
        by: String,
        message: String,
    },
    #[error(
        "cannot assume {role_arn}: the role does not exist in account {account}; deploy iam/member-role.yaml there (CloudFormation StackSets), or set member_role to the role's name"
    )]
    RoleMissing { role_arn: String, account: String },
    #[error(
        "cannot assume {role_arn} in account {account}: STS refused ({message}). AWS answers this way when the role does not exist there (deploy iam/member-role.yaml with StackSets, or set member_role to its name), when its trust policy does not allow {caller} to call sts:AssumeRole and sts:SetSourceIdentity (set the template's SecurityAccountPrincipal to that principal), or when it requires an external id (set external_id)"
    )]
    RoleNotAssumable {
        role_arn: String,
        account: String,
        caller: String,
        message: String,
    },
    #[error(
        "account {account} is {status} in the organisation; nothing can be changed there until it is reactivated"
    )]
    AccountSuspended { account: String, status: String },
    #[error(
        "region {region} is not enabled in account {account}; enable it (Account settings, AWS Regions) or act in an enabled region"
    )]
    RegionNotEnabled { region: String, account: String },
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

/// Where a resource operation acts: a finding's own account and region.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    pub account: AccountId,
    pub region: String,
}

impl Target {
    pub fn of(finding: &Finding) -> Target {
        Target {
            account: finding.account.clone(),
            region: finding.region.clone(),
        }
    }

    /// The ARN partition of the region: `aws-cn` and `aws-us-gov` have their own.
    pub fn partition(&self) -> &'static str {
        if self.region.starts_with("cn-") {
            "aws-cn"
        } else if self.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
    }

    /// The partition's domain for service endpoints and URLs.
    pub fn dns_suffix(&self) -> &'static str {
        match self.partition() {
            "aws-cn" => "amazonaws.com.cn",
            _ => "amazonaws.com",
        }
    }

    /// `arn:<partition>:<service>:<region>:<account>:<resource>`.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition(),
            self.region,
            self.account
        )
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}", self.account, self.region)
    }
}

/// A progress callback, given each page's matching findings as they arrive;
/// `Send` so the trait's futures stay `Send`.
pub type ProgressFn<'a> = dyn FnMut(FetchProgress, &[Finding]) + Send + 'a;

/// A backend: Security Hub and STS here, and every service the catalog acts on
/// through its own trait ([`Ec2`], [`GuardDuty`], [`Iam`], [`S3Control`], [`Kms`],
/// each in its file with both implementations). One value acts from one home account and
/// region; each operation takes its target (account, region, finding) from its
/// arguments, so a finding from another account is acted on where it lives.
#[async_trait]
pub trait Cloud:
    Ec2 + GuardDuty + Iam + S3Control + Kms + Ssm + ConfigService + Send + Sync
{
    /// What this backend is, for display.
    fn describe(&self) -> BackendInfo;

    /// Findings matching the filter, sorted by [`sort_findings`], at most `filter.limit`.
    async fn get_findings(
        &self,
        filter: &FindingFilter,
        progress: &mut ProgressFn<'_>,
    ) -> Result<Vec<Finding>, CloudError>;

    /// How many findings match the filter, by severity and account, without
    /// paging through them (the limit is not applied).
    async fn count_findings(&self, filter: &FindingFilter) -> Result<FindingCounts, CloudError>;

    /// Sets the workflow status (and a note, if not blank) on findings, as
    /// BatchUpdateFindings, after checking them with [`FindingUpdate::new`].
    async fn update_findings(
        &self,
        ids: &[FindingIdentifier],
        workflow: WorkflowStatus,
        note: &str,
    ) -> Result<UpdateOutcome, CloudError>;

    /// Who is acting (an ARN, or "sandbox"), for the audit trail.
    async fn caller_identity(&self) -> Result<String, CloudError>;

    /// The organisation's accounts with names and status, cached for the
    /// backend's life. Without permission to list them, no accounts and why.
    async fn organisation(&self) -> Organisation;

    /// What to act through in the request's target: in the caller's own account,
    /// this backend; in a member account, the member role assumed with the
    /// request's session policy, its session name and source identity.
    async fn act_in(&self, request: &SessionRequest) -> Result<Acting, CloudError>;

    /// The role assumed in member accounts; SSM Automation runs as it there.
    fn member_role(&self) -> MemberRole;

    /// Whether the member role can be assumed in an account (a probe whose
    /// credentials allow nothing), with the exact reason when it cannot.
    async fn access(&self, account: &AccountId) -> Access;
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
    // A listing is kept for the session: give back what growing it reserved.
    out.shrink_to_fit();
    out
}

/// Largest note BatchUpdateFindings accepts, in characters (Note.Text: 1 to 512).
pub const MAX_NOTE_CHARS: usize = 512;

/// Most findings one BatchUpdateFindings call accepts ("up to 100 findings at a time").
pub const MAX_UPDATE_BATCH: usize = 100;

/// A finding update checked against Security Hub's limits, the one rule both
/// backends apply before [`Cloud::update_findings`] changes anything: at least one
/// finding, sent in calls of at most [`MAX_UPDATE_BATCH`] (AWS takes any number
/// that way, so more is batched, not refused); a note of at most
/// [`MAX_NOTE_CHARS`] characters, refused rather than cut so no one's words are
/// lost; a blank note is no note (the API's Note.Text must hold a non-space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingUpdate<'a> {
    ids: &'a [FindingIdentifier],
    pub workflow: WorkflowStatus,
    /// The note as given, or None when it was empty or blank.
    pub note: Option<&'a str>,
}

impl<'a> FindingUpdate<'a> {
    pub fn new(
        ids: &'a [FindingIdentifier],
        workflow: WorkflowStatus,
        note: &'a str,
    ) -> Result<FindingUpdate<'a>, CloudError> {
        if ids.is_empty() {
            return Err(CloudError::InvalidInput(
                "no findings given to update; accepted: 1 or more finding identifiers".to_string(),
            ));
        }
        let chars = note.chars().count();
        if chars > MAX_NOTE_CHARS {
            return Err(CloudError::InvalidInput(format!(
                "a finding note holds at most {MAX_NOTE_CHARS} characters; this one has {chars}"
            )));
        }
        let note = Some(note).filter(|n| !n.trim().is_empty());
        Ok(FindingUpdate {
            ids,
            workflow,
            note,
        })
    }

    /// The findings, one slice per BatchUpdateFindings call.
    pub fn batches(&self) -> std::slice::Chunks<'a, FindingIdentifier> {
        self.ids.chunks(MAX_UPDATE_BATCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<FindingIdentifier> {
        (0..n)
            .map(|i| FindingIdentifier {
                id: format!("finding-{i}"),
                product_arn: "arn:aws:securityhub:us-east-1::product/aws/securityhub".into(),
                source: crate::finding::FindingSource::Asff,
            })
            .collect()
    }

    #[test]
    fn finding_updates_are_batched_by_a_hundred() {
        let many = ids(250);
        let update = FindingUpdate::new(&many, WorkflowStatus::Resolved, "done").unwrap();
        let sizes: Vec<usize> = update.batches().map(<[_]>::len).collect();
        assert_eq!(sizes, [100, 100, 50]);
        let one = ids(1);
        let update = FindingUpdate::new(&one, WorkflowStatus::Resolved, "done").unwrap();
        assert_eq!(update.batches().count(), 1);
        let err = FindingUpdate::new(&[], WorkflowStatus::Resolved, "done").unwrap_err();
        assert!(matches!(err, CloudError::InvalidInput(m) if m.contains("1 or more")));
    }

    #[test]
    fn notes_are_counted_in_characters_and_never_cut() {
        let one = ids(1);
        let at_limit = "修".repeat(MAX_NOTE_CHARS);
        let update = FindingUpdate::new(&one, WorkflowStatus::Resolved, &at_limit).unwrap();
        assert_eq!(update.note, Some(at_limit.as_str()), "kept whole");
        let over = "x".repeat(MAX_NOTE_CHARS + 1);
        let err = FindingUpdate::new(&one, WorkflowStatus::Resolved, &over).unwrap_err();
        assert!(
            err.to_string().contains("512") && err.to_string().contains("513"),
            "{err}"
        );
        for blank in ["", "  \n\t"] {
            let update = FindingUpdate::new(&one, WorkflowStatus::Notified, blank).unwrap();
            assert_eq!(update.note, None, "{blank:?} is no note");
        }
        let padded = FindingUpdate::new(&one, WorkflowStatus::Notified, " kept as given ").unwrap();
        assert_eq!(padded.note, Some(" kept as given "));
    }
}
