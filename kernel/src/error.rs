//! The error a cell ends with, and how the library's errors map onto it. Code
//! recognises an error by its [`ErrorKind`], never by its name as a string; the
//! name is only what the frontend shows (`ename`).

use runbook::advisor::{AdvisorError, ProposalError};
use runbook::catalog::CatalogError;
use runbook::cloud::CloudError;
use runbook::kb::KbError;

/// What went wrong, in the terms a notebook user sees as the error's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad arguments or a reference to something that is not there.
    Usage,
    UnknownMagic,
    NotSupported,
    /// The user interrupted the cell.
    Interrupted,
    /// A bug in the kernel (a panic, a magic without a handler).
    Kernel,
    NotFound,
    NoCredentials,
    AccessDenied,
    /// An SCP, permissions boundary or other policy denies explicitly.
    ExplicitDeny,
    /// The member role is not deployed in the account.
    MemberRoleMissing,
    /// STS refused to assume the member role.
    CannotAssumeRole,
    AccountSuspended,
    RegionNotEnabled,
    NotEnabled,
    Throttled,
    InvalidInput,
    /// Any other AWS failure.
    Aws,
    ModelNotFound,
    ModelError,
    /// Bedrock could not be reached at all.
    ModelUnreachable,
    Config,
    /// The policy knowledge base could not be read.
    Policy,
    /// The advisor's plan failed validation; nothing was stored.
    PlanRejected,
    /// The human did not approve; nothing was changed.
    NotApproved,
    ExecutionFailed,
    StateDrifted,
    /// The audit trail could not be read or written.
    Audit,
    /// `%recover` found no unfinished run of the plan.
    NothingToRecover,
    /// `%recover` cannot tell what the dead run did, or its plan was altered.
    RecoveryRefused,
    /// A Rust cell did not compile.
    CompileError,
    /// A Rust cell panicked.
    Panic,
    /// Rust cells need cargo and rustc, and they are not there.
    NoRustToolchain,
    /// Rust evaluation itself failed (it could not start, its process ended).
    RustError,
}

impl ErrorKind {
    /// The `ename` of the Jupyter error: part of what users and tests see.
    pub fn ename(self) -> &'static str {
        match self {
            ErrorKind::Usage => "UsageError",
            ErrorKind::UnknownMagic => "UnknownMagic",
            ErrorKind::NotSupported => "NotSupported",
            ErrorKind::Interrupted => "Interrupted",
            ErrorKind::Kernel => "KernelError",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::NoCredentials => "NoCredentials",
            ErrorKind::AccessDenied => "AccessDenied",
            ErrorKind::ExplicitDeny => "ExplicitDeny",
            ErrorKind::MemberRoleMissing => "MemberRoleMissing",
            ErrorKind::CannotAssumeRole => "CannotAssumeRole",
            ErrorKind::AccountSuspended => "AccountSuspended",
            ErrorKind::RegionNotEnabled => "RegionNotEnabled",
            ErrorKind::NotEnabled => "NotEnabled",
            ErrorKind::Throttled => "Throttled",
            ErrorKind::InvalidInput => "InvalidInput",
            ErrorKind::Aws => "AwsError",
            ErrorKind::ModelNotFound => "ModelNotFound",
            ErrorKind::ModelError => "ModelError",
            ErrorKind::ModelUnreachable => "ModelUnreachable",
            ErrorKind::Config => "ConfigError",
            ErrorKind::Policy => "PolicyError",
            ErrorKind::PlanRejected => "PlanRejected",
            ErrorKind::NotApproved => "NotApproved",
            ErrorKind::ExecutionFailed => "ExecutionFailed",
            ErrorKind::StateDrifted => "StateDrifted",
            ErrorKind::Audit => "AuditError",
            ErrorKind::NothingToRecover => "NothingToRecover",
            ErrorKind::RecoveryRefused => "RecoveryRefused",
            ErrorKind::CompileError => "CompileError",
            ErrorKind::Panic => "Panic",
            ErrorKind::NoRustToolchain => "NoRustToolchain",
            ErrorKind::RustError => "RustError",
        }
    }
}

/// The error a cell ends with: one `error` output with these fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MagicError {
    pub kind: ErrorKind,
    pub evalue: String,
    /// Further lines for the traceback (usage, hints).
    pub detail: Vec<String>,
}

impl MagicError {
    pub fn new(kind: ErrorKind, evalue: impl Into<String>) -> MagicError {
        MagicError {
            kind,
            evalue: evalue.into(),
            detail: Vec::new(),
        }
    }

    pub fn usage(evalue: impl Into<String>) -> MagicError {
        MagicError::new(ErrorKind::Usage, evalue)
    }

    pub fn interrupted() -> MagicError {
        MagicError::new(
            ErrorKind::Interrupted,
            "the cell was interrupted; nothing after the interruption ran",
        )
    }

    pub fn ename(&self) -> &'static str {
        self.kind.ename()
    }

    pub fn with_detail(mut self, lines: impl IntoIterator<Item = String>) -> MagicError {
        self.detail.extend(lines);
        self
    }

    pub fn traceback(&self) -> Vec<String> {
        let mut lines = vec![format!("{}: {}", self.ename(), self.evalue)];
        lines.extend(self.detail.iter().cloned());
        lines
    }
}

impl From<CloudError> for MagicError {
    fn from(e: CloudError) -> MagicError {
        let kind = match &e {
            CloudError::NoCredentials(_) => ErrorKind::NoCredentials,
            CloudError::AccessDenied { .. } => ErrorKind::AccessDenied,
            CloudError::ExplicitDeny { .. } => ErrorKind::ExplicitDeny,
            CloudError::RoleMissing { .. } => ErrorKind::MemberRoleMissing,
            CloudError::RoleNotAssumable { .. } => ErrorKind::CannotAssumeRole,
            CloudError::AccountSuspended { .. } => ErrorKind::AccountSuspended,
            CloudError::RegionNotEnabled { .. } => ErrorKind::RegionNotEnabled,
            CloudError::NotEnabled { .. } => ErrorKind::NotEnabled,
            CloudError::Throttled { .. } => ErrorKind::Throttled,
            CloudError::NotFound(_) => ErrorKind::NotFound,
            CloudError::InvalidInput(_) => ErrorKind::InvalidInput,
            CloudError::Other(_) => ErrorKind::Aws,
        };
        MagicError::new(kind, e.to_string())
    }
}

impl From<AdvisorError> for MagicError {
    fn from(e: AdvisorError) -> MagicError {
        let kind = match &e {
            AdvisorError::AccessDenied { .. } => ErrorKind::AccessDenied,
            AdvisorError::ModelNotFound { .. } => ErrorKind::ModelNotFound,
            AdvisorError::Throttled { .. } => ErrorKind::Throttled,
            AdvisorError::Validation { .. } => ErrorKind::InvalidInput,
            AdvisorError::Unavailable { .. } | AdvisorError::Stream { .. } => ErrorKind::ModelError,
            AdvisorError::Unreachable { .. } => ErrorKind::ModelUnreachable,
            AdvisorError::Config(_) => ErrorKind::Config,
            AdvisorError::Interrupted => return MagicError::interrupted(),
        };
        MagicError::new(kind, e.to_string())
    }
}

impl From<KbError> for MagicError {
    fn from(e: KbError) -> MagicError {
        let kind = match &e {
            KbError::BadSetting { .. } | KbError::Config(_) => ErrorKind::Config,
            KbError::EmptyQuery | KbError::BadTop(_) => ErrorKind::Usage,
            KbError::NoDocuments { .. }
            | KbError::Unreadable { .. }
            | KbError::Incomplete(_)
            | KbError::Conflict(_) => ErrorKind::Policy,
            KbError::NotFound { .. } => ErrorKind::NotFound,
            KbError::AccessDenied { .. } => ErrorKind::AccessDenied,
            KbError::Throttled { .. } => ErrorKind::Throttled,
            KbError::Service { .. } => ErrorKind::Aws,
        };
        MagicError::new(kind, e.to_string())
    }
}

impl From<ProposalError> for MagicError {
    fn from(e: ProposalError) -> MagicError {
        match e {
            ProposalError::Advisor(a) => a.into(),
            ProposalError::Catalog(CatalogError::Cloud(c)) => c.into(),
            ProposalError::Catalog(CatalogError::Rejected(r)) => MagicError::new(
                ErrorKind::PlanRejected,
                format!("the proposed plan was rejected and nothing was stored: {r}"),
            ),
            ProposalError::Catalog(other) => {
                MagicError::new(ErrorKind::PlanRejected, other.to_string())
            }
            ProposalError::NoProposal(text) => MagicError::new(
                ErrorKind::PlanRejected,
                format!("the model proposed no plan, so nothing was stored ({text})"),
            ),
        }
    }
}
