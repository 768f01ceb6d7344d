//! The audit trail: an append-only JSON Lines file with one [`AuditRecord`] per step
//! (plan proposed, approved, action started/finished/failed, rolled back, finding
//! updated, run finished, cancelled, dry run).
//!
//! Writing ([`AuditLog::append`]): each record is serialised to one line and written
//! with one `write` of the whole line and its `'\n'` to a file opened in append mode
//! (`O_APPEND`), then `fsync`ed before `append` returns, so every step is durable
//! before the next one starts. The file is never truncated or rewritten. If a crash
//! left the last line without its newline, the next record starts on a fresh line.
//!
//! Two kernels may append to the same file. Each append takes an advisory exclusive
//! lock on the file (`flock`) while it reads the last `seq`, writes and syncs, so `seq`
//! increases strictly and lines never interleave. Without the lock (a platform or
//! filesystem that does not support it) `O_APPEND` still puts each write at the end
//! of the file; on local filesystems a single write of a small line (records are
//! well under a few KiB, PIPE_BUF-ish sizes) is not interleaved with another
//! writer's, but `seq` may then repeat. Network filesystems (NFS) give neither
//! guarantee reliably.
//!
//! Reading ([`read`]): a damaged last line (a crash mid-write) is reported in
//! [`AuditReport::damaged_tail`], damaged lines in the middle in
//! [`AuditReport::problems`]; neither is fatal. [`AuditReport::unfinished_runs`],
//! [`executed_actions`] and [`plan_status`] interpret the records.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::cloud::MemberSession;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cloud::Target;
use crate::execute::{Journal, JournalEvent};
use crate::finding::{AccountId, FindingIdentifier};
use crate::plan::{Action, Applied, PlanId, RemediationPlan};

mod chain;
mod sink;

pub use chain::{BreakKind, ChainBreak, ChainReport, line_hash, verify};
pub use sink::CloudWatchSink;

/// The actor recorded for runs against the in-memory sandbox.
pub const SANDBOX_ACTOR: &str = "sandbox";

/// The actor recorded when neither the record nor the log names one.
pub const UNKNOWN_ACTOR: &str = "unknown";

// ---------------------------------------------------------------------------
// Records

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEvent {
    PlanProposed,
    Approved,
    Cancelled,
    ActionStarted,
    ActionFinished,
    ActionFailed,
    RolledBack,
    FindingUpdated,
    RunFinished,
    DryRun,
    /// `%recover`: an action found already applied, so not applied again.
    ActionSkipped,
}

impl AuditEvent {
    pub const ALL: [AuditEvent; 11] = [
        AuditEvent::PlanProposed,
        AuditEvent::Approved,
        AuditEvent::Cancelled,
        AuditEvent::ActionStarted,
        AuditEvent::ActionFinished,
        AuditEvent::ActionFailed,
        AuditEvent::RolledBack,
        AuditEvent::FindingUpdated,
        AuditEvent::RunFinished,
        AuditEvent::DryRun,
        AuditEvent::ActionSkipped,
    ];

    /// The snake_case name written in the file, e.g. `action_started`.
    pub fn name(self) -> &'static str {
        match self {
            AuditEvent::PlanProposed => "plan_proposed",
            AuditEvent::Approved => "approved",
            AuditEvent::Cancelled => "cancelled",
            AuditEvent::ActionStarted => "action_started",
            AuditEvent::ActionFinished => "action_finished",
            AuditEvent::ActionFailed => "action_failed",
            AuditEvent::RolledBack => "rolled_back",
            AuditEvent::FindingUpdated => "finding_updated",
            AuditEvent::RunFinished => "run_finished",
            AuditEvent::DryRun => "dry_run",
            AuditEvent::ActionSkipped => "action_skipped",
        }
    }
}

impl fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which action of a plan a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRef {
    /// Zero-based index in `plan.actions`. Rollback records carry the index of the
    /// action being undone.
    pub index: usize,
    /// The plan action's name, e.g. `RevokeIngress`.
    pub name: String,
    /// The plan action with its parameters (what a later `%rollback` inverts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Action>,
    /// On rollback records: the inverse action applied (or attempted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inverse: Option<Action>,
}

impl ActionRef {
    pub fn of(index: usize, action: &Action) -> ActionRef {
        ActionRef {
            index,
            name: action.name().to_string(),
            spec: Some(action.clone()),
            inverse: None,
        }
    }
}

/// What a record is about: a plan, in an account and region. Built from a plan, or
/// from a recorded [`AuditRecord`] when the plan is no longer in memory (`%rollback`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSubject {
    pub plan_id: PlanId,
    pub account: AccountId,
    pub region: String,
}

impl AuditSubject {
    pub fn new(plan_id: PlanId, target: &Target) -> AuditSubject {
        AuditSubject {
            plan_id,
            account: target.account.clone(),
            region: target.region.clone(),
        }
    }
}

impl From<&RemediationPlan> for AuditSubject {
    fn from(plan: &RemediationPlan) -> Self {
        AuditSubject {
            plan_id: plan.id.clone(),
            account: plan.account.clone(),
            region: plan.region.clone(),
        }
    }
}

impl From<&AuditRecord> for AuditSubject {
    fn from(r: &AuditRecord) -> Self {
        AuditSubject {
            plan_id: r.plan_id.clone(),
            account: r.account.clone(),
            region: r.region.clone(),
        }
    }
}

impl From<&AuditSubject> for AuditSubject {
    fn from(s: &AuditSubject) -> Self {
        s.clone()
    }
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the file, from 1, strictly increasing. Set by [`AuditLog::append`].
    #[serde(default)]
    pub seq: u64,
    /// On the record that starts the file's hash chain: a random id for the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// SHA-256 (hex) of the line before this one. Set by [`AuditLog::append`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    /// When the event happened (RFC 3339, UTC, milliseconds).
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
    pub event: AuditEvent,
    pub plan_id: PlanId,
    /// Who: the caller identity ARN from STS, or [`SANDBOX_ACTOR`]. When empty,
    /// [`AuditLog::append`] fills in the log's actor.
    #[serde(default)]
    pub actor: String,
    pub account: AccountId,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionRef>,
    /// State before the step (a precheck's `current`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// State after the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// What an apply changed, with the ids needed for its exact inverse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Applied>,
    /// On `run_finished`: the executor's outcome label (`succeeded`,
    /// `already_in_place`, `failed`, `drifted`, `cancelled`, `rolled_back`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The kernel session that wrote the record. When `None`, [`AuditLog::append`]
    /// fills in the log's session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_session: Option<String>,
    /// In a member account: the assumed role, session name, source identity and
    /// session policy digest the step ran under. [`AuditLog::append`] fills it in
    /// from the log's acting session when the record names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_session: Option<MemberSession>,
}

/// Now, to the millisecond (what the file keeps, so records round-trip exactly).
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

fn to_json<T: Serialize>(v: &T) -> Option<Value> {
    serde_json::to_value(v).ok()
}

impl AuditRecord {
    /// A record of `event` about `subject`, now, with every optional part empty.
    pub fn new(event: AuditEvent, subject: impl Into<AuditSubject>) -> AuditRecord {
        let s = subject.into();
        AuditRecord {
            seq: 0,
            file_id: None,
            prev: None,
            at: now(),
            event,
            plan_id: s.plan_id,
            actor: String::new(),
            account: s.account,
            region: s.region,
            action: None,
            before: None,
            after: None,
            applied: None,
            outcome: None,
            detail: None,
            kernel_session: None,
            member_session: None,
        }
    }

    /// A plan was made (`%remediate`); `after` holds the whole plan.
    pub fn plan_proposed(plan: &RemediationPlan) -> AuditRecord {
        let mut r = AuditRecord::new(AuditEvent::PlanProposed, plan);
        r.after = to_json(plan);
        r.detail = Some(format!(
            "{}: {} action(s): {}",
            plan.control_id,
            plan.actions.len(),
            plan.actions
                .iter()
                .map(Action::name)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        r
    }

    /// A human approved the plan (or its rollback). Name who with [`AuditRecord::by`]
    /// or through the log's actor.
    pub fn approved(subject: impl Into<AuditSubject>) -> AuditRecord {
        AuditRecord::new(AuditEvent::Approved, subject)
    }

    /// Approval refused (wrong or empty answer, no stdin) or a run interrupted.
    pub fn cancelled(subject: impl Into<AuditSubject>, reason: impl Into<String>) -> AuditRecord {
        AuditRecord::new(AuditEvent::Cancelled, subject).with_detail(reason)
    }

    /// A dry run: the live state (`before`) and what apply would make of it (`after`).
    pub fn dry_run(subject: impl Into<AuditSubject>, before: Value, after: Value) -> AuditRecord {
        let mut r = AuditRecord::new(AuditEvent::DryRun, subject);
        r.before = Some(before);
        r.after = Some(after);
        r
    }

    /// Action `index` is about to be applied; `before` is the live state.
    pub fn action_started(
        subject: impl Into<AuditSubject>,
        index: usize,
        action: &Action,
        before: Value,
    ) -> AuditRecord {
        let mut r = AuditRecord::new(AuditEvent::ActionStarted, subject);
        r.action = Some(ActionRef::of(index, action));
        r.before = Some(before);
        r
    }

    /// Action `index` was applied. `after` is the state afterwards; the `before`
    /// state can be added with [`AuditRecord::with_before`] (readers fall back to the
    /// matching `action_started`).
    pub fn action_finished(
        subject: impl Into<AuditSubject>,
        index: usize,
        action: &Action,
        applied: &Applied,
        after: Value,
    ) -> AuditRecord {
        let mut r = AuditRecord::new(AuditEvent::ActionFinished, subject);
        r.action = Some(ActionRef::of(index, action));
        r.after = Some(after);
        r.applied = Some(applied.clone());
        r.detail = (!applied.summary.is_empty()).then(|| applied.summary.clone());
        r
    }

    /// Applying (or verifying) action `index` failed.
    pub fn action_failed(
        subject: impl Into<AuditSubject>,
        index: usize,
        action: &Action,
        error: impl fmt::Display,
    ) -> AuditRecord {
        let mut r = AuditRecord::new(AuditEvent::ActionFailed, subject);
        r.action = Some(ActionRef::of(index, action));
        r.detail = Some(error.to_string());
        r
    }

    /// The inverse of action `index` (`original`) is about to be applied.
    pub fn rollback_started(
        subject: impl Into<AuditSubject>,
        index: usize,
        original: &Action,
        inverse: &Action,
        before: Value,
    ) -> AuditRecord {
        let mut r = AuditRecord::new(AuditEvent::ActionStarted, subject);
        r.action = Some(ActionRef {
            inverse: Some(inverse.clone()),
            ..ActionRef::of(index, original)
        });
        r.before = Some(before);
        r.detail = Some(format!("rolling back with {}", inverse.name()));
        r
    }

    /// The inverse of action `index` (`original`) was applied: its effect is undone.
    pub fn rolled_back(
        subject: impl Into<AuditSubject>,
        index: usize,
        original: &Action,
        inverse: &Action,
    ) -> AuditRecord {
        let mut r = AuditRecord::new(AuditEvent::RolledBack, subject);
        r.action = Some(ActionRef {
            inverse: Some(inverse.clone()),
            ..ActionRef::of(index, original)
        });
        r.detail = Some(format!("rolled back with {}", inverse.name()));
        r
    }

    /// Applying the inverse of action `index` failed: the action's effect stands.
    /// Recorded as `action_failed` with the inverse named.
    pub fn rollback_failed(
        subject: impl Into<AuditSubject>,
        index: usize,
        original: &Action,
        inverse: &Action,
        error: impl fmt::Display,
    ) -> AuditRecord {
        let mut r = AuditRecord::new(AuditEvent::ActionFailed, subject);
        r.action = Some(ActionRef {
            inverse: Some(inverse.clone()),
            ..ActionRef::of(index, original)
        });
        r.detail = Some(format!(
            "rolling back with {} failed: {error}",
            inverse.name()
        ));
        r
    }

    /// The plan's findings were marked RESOLVED with `note` (or the update failed
    /// with `error`). `after` holds the finding ids, the note and whether it worked.
    pub fn finding_updated(plan: &RemediationPlan, note: &str, error: Option<&str>) -> AuditRecord {
        AuditRecord::findings_updated(plan, &plan.findings, note, error)
    }

    /// [`AuditRecord::finding_updated`] for the given findings.
    pub fn findings_updated(
        subject: impl Into<AuditSubject>,
        findings: &[FindingIdentifier],
        note: &str,
        error: Option<&str>,
    ) -> AuditRecord {
        let mut r = AuditRecord::new(AuditEvent::FindingUpdated, subject);
        r.after = Some(json!({
            "findings": findings.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            "workflow_status": "RESOLVED",
            "note": note,
            "updated": error.is_none(),
        }));
        r.detail = error.map(|e| format!("the finding update failed: {e}"));
        r
    }

    /// The run ended with `outcome` (the executor's label, e.g. `succeeded`).
    /// A `%rollback` run should end with `rolled_back`.
    pub fn run_finished(subject: impl Into<AuditSubject>, outcome: &str) -> AuditRecord {
        let mut r = AuditRecord::new(AuditEvent::RunFinished, subject);
        r.outcome = Some(outcome.to_string());
        r
    }

    /// Names who did it (an STS caller identity ARN, or [`SANDBOX_ACTOR`]).
    pub fn by(mut self, actor: impl Into<String>) -> AuditRecord {
        self.actor = actor.into();
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> AuditRecord {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_before(mut self, before: Value) -> AuditRecord {
        self.before = Some(before);
        self
    }

    pub fn with_after(mut self, after: Value) -> AuditRecord {
        self.after = Some(after);
        self
    }

    pub fn with_session(mut self, session: impl Into<String>) -> AuditRecord {
        self.kernel_session = Some(session.into());
        self
    }

    /// The record as its one line in the file (no trailing newline).
    pub fn to_line(&self) -> Result<String, AuditError> {
        serde_json::to_string(self).map_err(AuditError::Serialize)
    }
}

/// RFC 3339 in UTC with milliseconds and `Z`; reads any RFC 3339 offset.
mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| D::Error::custom(format!("`at` is not an RFC 3339 time ({s:?}): {e}")))
    }
}

// ---------------------------------------------------------------------------
// Errors

/// Why the audit log could not be opened, written or read. Each names the path and
/// the operating system's reason.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot create the directory {dir} for the audit log {path}: {source}")]
    CreateDir {
        path: PathBuf,
        dir: PathBuf,
        source: io::Error,
    },
    #[error("cannot open the audit log {path} for appending: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot lock the audit log {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error("cannot write to the audit log {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot flush the audit log {path} to disk (fsync): {source}")]
    Sync { path: PathBuf, source: io::Error },
    #[error("cannot read the audit log {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "the audit record was written to {path}, but its off-machine copy failed, so the run stops here: {message}"
    )]
    Sink { path: PathBuf, message: String },
    #[error("cannot serialise an audit record: {0}")]
    Serialize(serde_json::Error),
}

// ---------------------------------------------------------------------------
// Writing

/// An audit log opened for appending.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    actor: Option<String>,
    session: Option<String>,
    member_session: Option<Box<MemberSession>>,
    last_seq: Option<u64>,
    tightened: Option<String>,
    sink: Option<std::sync::Arc<CloudWatchSink>>,
    #[cfg(test)]
    syncs: u64,
}

/// The trail holds account ids, resource configurations and identities: only its
/// owner may read it.
#[cfg(unix)]
const PRIVATE_FILE_MODE: u32 = 0o600;
#[cfg(unix)]
const PRIVATE_DIR_MODE: u32 = 0o700;

/// Creates `dir` and any missing parents with mode 0700. Folders that already exist
/// keep their mode: the path may be a shared folder the user chose.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, PRIVATE_DIR_MODE);
    builder.create(dir)
}

/// Makes an existing audit file private (0600) and, when it is the default audit
/// folder, that folder too (0700). Returns what it changed, to tell the user once.
pub fn make_private(path: &Path) -> io::Result<Option<String>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut changed = Vec::new();
        let mode = |p: &Path| fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
        match mode(path) {
            Ok(m) if m & 0o077 != 0 => {
                fs::set_permissions(path, fs::Permissions::from_mode(PRIVATE_FILE_MODE))?;
                changed.push(format!(
                    "the audit log {} was mode {m:04o}, readable by other users; it is now 0600",
                    path.display()
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let default_dir = crate::settings::default_audit_log()
            .parent()
            .map(Path::to_path_buf);
        if let Some(dir) = path.parent()
            && default_dir.as_deref() == Some(dir)
            && let Ok(m) = mode(dir)
            && m & 0o077 != 0
        {
            fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_DIR_MODE))?;
            changed.push(format!(
                "its folder {} was mode {m:04o}; it is now 0700",
                dir.display()
            ));
        }
        Ok((!changed.is_empty()).then(|| changed.join("; ")))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(None)
    }
}

/// Releases the advisory lock when dropped.
struct Locked<'a>(Option<&'a File>);

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.0 {
            let _ = f.unlock();
        }
    }
}

impl AuditLog {
    /// Opens (creating it and its parent directories if needed) the log at `path`
    /// for appending. Never truncates.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let path = path.to_path_buf();
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = parent {
            create_private_dir(dir).map_err(|source| AuditError::CreateDir {
                path: path.clone(),
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        let existed = path.exists();
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, PRIVATE_FILE_MODE);
        let file = options.open(&path).map_err(|source| AuditError::Open {
            path: path.clone(),
            source,
        })?;
        if let Ok(m) = file.metadata()
            && m.is_dir()
        {
            return Err(AuditError::Open {
                path,
                source: io::Error::new(io::ErrorKind::IsADirectory, "it is a directory"),
            });
        }
        if !existed {
            sync_dir(parent);
        }
        let tightened = make_private(&path).map_err(|source| AuditError::Open {
            path: path.clone(),
            source,
        })?;
        Ok(AuditLog {
            path,
            file,
            actor: None,
            session: None,
            member_session: None,
            last_seq: None,
            tightened,
            sink: None,
            #[cfg(test)]
            syncs: 0,
        })
    }

    /// What opening changed to make an existing, more open file private.
    pub fn tightened(&self) -> Option<&str> {
        self.tightened.as_deref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The actor written on records that do not name one.
    pub fn set_actor(&mut self, actor: impl Into<String>) {
        self.actor = Some(actor.into());
    }

    pub fn with_actor(mut self, actor: impl Into<String>) -> AuditLog {
        self.set_actor(actor);
        self
    }

    /// The kernel session written on records that do not name one.
    pub fn set_session(&mut self, session: impl Into<String>) {
        self.session = Some(session.into());
    }

    pub fn with_session(mut self, session: impl Into<String>) -> AuditLog {
        self.set_session(session);
        self
    }

    /// The member-account session the next records' steps run under (None: the
    /// caller's own account).
    pub fn set_member_session(&mut self, session: Option<MemberSession>) {
        self.member_session = session.map(Box::new);
    }

    /// Every record is also copied there, after the local fsync, before `append` returns.
    pub fn with_sink(mut self, sink: Option<std::sync::Arc<CloudWatchSink>>) -> AuditLog {
        self.sink = sink;
        self
    }

    /// The `seq` of the last record this log appended.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// Appends `record` as one line and fsyncs it: when this returns `Ok`, the record
    /// is on disk. Fills in `seq` (one more than the file's last), and the actor and
    /// session when the record leaves them empty.
    pub fn append(&mut self, mut record: AuditRecord) -> Result<(), AuditError> {
        if record.actor.is_empty() {
            record.actor = self
                .actor
                .clone()
                .unwrap_or_else(|| UNKNOWN_ACTOR.to_string());
        }
        if record.kernel_session.is_none() {
            record.kernel_session.clone_from(&self.session);
        }
        if record.member_session.is_none() {
            record.member_session = self.member_session.as_deref().cloned();
        }
        let f = &self.file;
        let write_err = |source| AuditError::Write {
            path: self.path.clone(),
            source,
        };
        let _lock = match f.lock() {
            Ok(()) => Locked(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => Locked(None),
            Err(source) => {
                return Err(AuditError::Lock {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let tail = read_tail(f).map_err(|source| AuditError::Read {
            path: self.path.clone(),
            source,
        })?;
        record.seq = tail.last_seq.map_or(1, |s| s + 1);
        record.prev = tail.last_line_hash;
        record.file_id = if tail.chained {
            None
        } else {
            chain::new_file_id()
        };
        let line = record.to_line()?;
        let mut buf = Vec::with_capacity(line.len() + 2);
        if tail.needs_newline {
            buf.push(b'\n');
        }
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        write_once(f, &buf).map_err(write_err)?;
        f.sync_all().map_err(|source| AuditError::Sync {
            path: self.path.clone(),
            source,
        })?;
        #[cfg(test)]
        {
            self.syncs += 1;
        }
        self.last_seq = Some(record.seq);
        drop(_lock);
        if let Some(sink) = &self.sink {
            sink.send(record.at, &line)
                .map_err(|message| AuditError::Sink {
                    path: self.path.clone(),
                    message,
                })?;
        }
        Ok(())
    }

    /// Reads the whole log (see [`read`]).
    pub fn read(&self) -> Result<AuditReport, AuditError> {
        read(&self.path)
    }
}

/// Makes a newly created file's directory entry durable. Best effort: some
/// filesystems refuse to sync a directory, and the record itself is synced anyway.
fn sync_dir(dir: Option<&Path>) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir.unwrap_or(Path::new("."))) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// One `write` of the whole buffer; only a short write (disk full, a signal) makes
/// a second one for the rest.
fn write_once(mut f: &File, buf: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match f.write(&buf[done..]) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

struct Tail {
    /// The file is not empty and does not end with a newline.
    needs_newline: bool,
    /// The `seq` of the last line that has one.
    last_seq: Option<u64>,
    /// The hash of the last non-empty line, whatever it holds.
    last_line_hash: Option<String>,
    /// The last readable record carries chain fields: the chain has begun.
    chained: bool,
}

/// Reads backwards from the end of the file, in growing windows, to the last line
/// with a `seq`.
fn read_tail(mut f: &File) -> io::Result<Tail> {
    let len = f.metadata()?.len();
    let mut tail = Tail {
        needs_newline: false,
        last_seq: None,
        last_line_hash: None,
        chained: false,
    };
    if len == 0 {
        return Ok(tail);
    }
    let mut last = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1))?;
    f.read_exact(&mut last)?;
    tail.needs_newline = last[0] != b'\n';
    let mut window: u64 = 16 * 1024;
    loop {
        let start = len.saturating_sub(window);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        f.take(len - start).read_to_end(&mut buf)?;
        // Lines wholly inside the window: drop the partial first one unless at the start.
        let body: &[u8] = if start == 0 {
            &buf
        } else {
            match buf.iter().position(|b| *b == b'\n') {
                Some(p) => &buf[p + 1..],
                None => &[],
            }
        };
        for line in body.split(|b| *b == b'\n').rev() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if tail.last_line_hash.is_none() {
                tail.last_line_hash = Some(chain::line_hash(line));
            }
            if let Some(link) = chain::Link::parse(line)
                && let Some(seq) = link.seq
            {
                tail.last_seq = Some(seq);
                tail.chained = link.is_chained();
                return Ok(tail);
            }
        }
        if start == 0 {
            return Ok(tail);
        }
        window = window.saturating_mul(4);
    }
}

// ---------------------------------------------------------------------------
// Reading

/// A line that could not be read as a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineProblem {
    /// 1-based line number in the file.
    pub line: usize,
    /// Byte offset of the line's start.
    pub offset: u64,
    pub message: String,
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} (byte {}): {}",
            self.line, self.offset, self.message
        )
    }
}

/// Everything in an audit log file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    pub path: PathBuf,
    /// False when there is no file yet (nothing was ever recorded there).
    pub exists: bool,
    /// The readable records, in file order.
    pub records: Vec<AuditRecord>,
    /// Damaged lines before the last one, skipped.
    pub problems: Vec<LineProblem>,
    /// The last line is damaged (cut off by a crash mid-write, or corrupt): what was
    /// wrong and at which line and byte offset. Earlier records are unaffected.
    pub damaged_tail: Option<String>,
    /// The hash chain, walked over the whole file.
    #[serde(default)]
    pub chain: ChainReport,
}

impl AuditReport {
    /// The report of a file that does not exist.
    pub fn missing(path: &Path) -> AuditReport {
        AuditReport {
            path: path.to_path_buf(),
            exists: false,
            records: Vec::new(),
            problems: Vec::new(),
            damaged_tail: None,
            chain: ChainReport::default(),
        }
    }

    /// Parses the contents of an audit log.
    pub fn parse(path: &Path, bytes: &[u8]) -> AuditReport {
        let mut report = AuditReport {
            exists: true,
            chain: chain::verify(bytes),
            ..AuditReport::missing(path)
        };
        let mut lines = Vec::new();
        let mut offset = 0usize;
        for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
            let start = offset;
            offset += raw.len() + 1;
            let terminated = offset <= bytes.len();
            if !raw.iter().all(u8::is_ascii_whitespace) {
                lines.push((i + 1, start as u64, raw, terminated));
            }
        }
        let count = lines.len();
        for (n, (line, offset, raw, terminated)) in lines.into_iter().enumerate() {
            let message = match std::str::from_utf8(raw) {
                Err(e) => format!("not UTF-8 text ({e})"),
                Ok(text) => match serde_json::from_str::<AuditRecord>(text) {
                    Ok(r) => {
                        report.records.push(r);
                        continue;
                    }
                    Err(e) if e.is_eof() => format!("cut off mid-record ({e})"),
                    Err(e) => format!("not a valid audit record ({e})"),
                },
            };
            if n + 1 == count {
                let newline = if terminated { "" } else { ", no final newline" };
                report.damaged_tail = Some(format!(
                    "the last line, line {line} at byte {offset} ({} bytes{newline}), is damaged: \
                     {message}; a crash during a write leaves this, and the records before it are intact",
                    raw.len()
                ));
            } else {
                report.problems.push(LineProblem {
                    line,
                    offset,
                    message,
                });
            }
        }
        report
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Only the last `n` records (problems and the damaged tail are kept).
    pub fn last(mut self, n: usize) -> AuditReport {
        let cut = self.records.len().saturating_sub(n);
        self.records.drain(..cut);
        self
    }

    /// Only the records of `plan_id` (problems and the damaged tail are kept).
    pub fn for_plan(mut self, plan_id: &PlanId) -> AuditReport {
        self.records.retain(|r| &r.plan_id == plan_id);
        self
    }

    /// The `action_started` records with no `action_finished`, `action_failed` or
    /// `rolled_back` for the same plan and action after them: runs that died
    /// part-way (or are still going, in another kernel). A later `approved` of the
    /// same plan starts a new run and supersedes what the earlier one left open.
    /// Read this on the whole report: `last(n)` may cut the closing records off.
    pub fn unfinished_runs(&self) -> Vec<&AuditRecord> {
        let mut by_plan: Vec<(&PlanId, Vec<&AuditRecord>)> = Vec::new();
        let mut slot: std::collections::HashMap<&PlanId, usize> = std::collections::HashMap::new();
        for r in &self.records {
            let i = *slot.entry(&r.plan_id).or_insert_with(|| {
                by_plan.push((&r.plan_id, Vec::new()));
                by_plan.len() - 1
            });
            by_plan[i].1.push(r);
        }
        let mut open: Vec<&AuditRecord> = by_plan
            .into_iter()
            .flat_map(|(_, records)| scan(records).open.into_values())
            .collect();
        open.sort_by_key(|r| r.seq);
        open
    }
}

/// Reads every record of the audit log at `path`. A missing file is an empty
/// report with `exists: false`; damaged lines are reported, not fatal.
pub fn read(path: &Path) -> Result<AuditReport, AuditError> {
    match fs::read(path) {
        Ok(bytes) => Ok(AuditReport::parse(path, &bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(AuditReport::missing(path)),
        Err(source) => Err(AuditError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

// ---------------------------------------------------------------------------
// Interpretation

/// An action of a plan that finished applying and has not been rolled back since.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutedAction {
    pub subject: AuditSubject,
    pub index: usize,
    pub name: String,
    /// The plan action as recorded.
    pub action: Option<Action>,
    /// State before (from `action_finished`, else its `action_started`).
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub applied: Option<Applied>,
    /// The `seq` and time of the `action_finished` record.
    pub seq: u64,
    pub at: DateTime<Utc>,
}

impl ExecutedAction {
    /// The action that undoes this one, built with what its apply returned. `None`
    /// when there is nothing to undo (the state already held) or no inverse.
    pub fn inverse(&self) -> Option<Action> {
        self.action.as_ref()?.inverse(self.applied.as_ref())
    }
}

/// What the trail says about a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PlanStatus {
    /// Never run (perhaps proposed, dry-run or approved with nothing done after).
    NotRun,
    /// A run started and did not finish: died part-way, or still going. `unfinished`
    /// holds the `action_started` records left open (empty when it stopped between
    /// actions).
    Running { unfinished: Vec<AuditRecord> },
    /// The last run succeeded (or found every action already in place).
    Succeeded,
    /// The last run ended with `outcome` (`failed`, `drifted`, ...).
    Failed { outcome: String },
    /// The plan's applied actions were rolled back (`%rollback`).
    RolledBack,
    /// Approval was refused or the run was interrupted, and it never ran otherwise.
    Cancelled,
}

impl PlanStatus {
    pub fn label(&self) -> &'static str {
        match self {
            PlanStatus::NotRun => "not run",
            PlanStatus::Running { .. } => "running or died part-way",
            PlanStatus::Succeeded => "succeeded",
            PlanStatus::Failed { .. } => "failed",
            PlanStatus::RolledBack => "rolled back",
            PlanStatus::Cancelled => "cancelled",
        }
    }

    /// Whether an approval of the plan should say it already ran and change nothing.
    pub fn already_ran(&self) -> bool {
        matches!(self, PlanStatus::Running { .. } | PlanStatus::Succeeded)
    }
}

impl fmt::Display for PlanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanStatus::Failed { outcome } => write!(f, "failed ({outcome})"),
            other => f.write_str(other.label()),
        }
    }
}

/// One pass over a plan's records, in file order.
struct Scan<'a> {
    /// action_started records not closed yet, by action index.
    open: BTreeMap<usize, &'a AuditRecord>,
    executed: BTreeMap<usize, ExecutedAction>,
    status: PlanStatus,
    /// Inside a run: approved or an action event seen, no run_finished yet.
    in_run: bool,
    run_actions: usize,
    run_finished_actions: usize,
    run_rollbacks: usize,
}

/// `records` are one plan's, in file order.
fn scan<'a>(records: impl IntoIterator<Item = &'a AuditRecord>) -> Scan<'a> {
    let mut s = Scan {
        open: BTreeMap::new(),
        executed: BTreeMap::new(),
        status: PlanStatus::NotRun,
        in_run: false,
        run_actions: 0,
        run_finished_actions: 0,
        run_rollbacks: 0,
    };
    let mut started_before: BTreeMap<usize, &Value> = BTreeMap::new();
    for r in records {
        let index = r.action.as_ref().map(|a| a.index);
        match r.event {
            AuditEvent::PlanProposed | AuditEvent::DryRun | AuditEvent::FindingUpdated => {}
            AuditEvent::Approved => {
                s.open.clear();
                s.in_run = true;
                s.run_actions = 0;
                s.run_finished_actions = 0;
                s.run_rollbacks = 0;
            }
            AuditEvent::Cancelled => {
                // An interrupt mid-run is followed by the rollback and run_finished.
                if !s.in_run || s.run_actions == 0 {
                    s.in_run = false;
                    if matches!(s.status, PlanStatus::NotRun | PlanStatus::Cancelled) {
                        s.status = PlanStatus::Cancelled;
                    }
                }
            }
            AuditEvent::ActionStarted
            | AuditEvent::ActionFinished
            | AuditEvent::ActionFailed
            | AuditEvent::ActionSkipped
            | AuditEvent::RolledBack => {
                if !s.in_run {
                    s.in_run = true;
                    s.run_actions = 0;
                    s.run_finished_actions = 0;
                    s.run_rollbacks = 0;
                }
                s.run_actions += 1;
                let Some(i) = index else { continue };
                match r.event {
                    AuditEvent::ActionStarted => {
                        s.open.insert(i, r);
                        if let Some(b) = &r.before
                            && r.action.as_ref().is_some_and(|a| a.inverse.is_none())
                        {
                            started_before.insert(i, b);
                        }
                    }
                    AuditEvent::ActionFinished => {
                        s.open.remove(&i);
                        s.run_finished_actions += 1;
                        let a = r.action.as_ref();
                        let applied = r.applied.clone().or_else(|| {
                            r.after
                                .as_ref()
                                .and_then(|v| v.get("applied"))
                                .and_then(|v| serde_json::from_value(v.clone()).ok())
                        });
                        s.executed.insert(
                            i,
                            ExecutedAction {
                                subject: AuditSubject::from(r),
                                index: i,
                                name: a.map(|a| a.name.clone()).unwrap_or_default(),
                                action: a.and_then(|a| a.spec.clone()),
                                before: r
                                    .before
                                    .clone()
                                    .or_else(|| started_before.get(&i).map(|v| (*v).clone())),
                                after: r.after.clone(),
                                applied,
                                seq: r.seq,
                                at: r.at,
                            },
                        );
                    }
                    AuditEvent::ActionFailed => {
                        s.open.remove(&i);
                    }
                    AuditEvent::ActionSkipped => {
                        s.open.remove(&i);
                        s.run_finished_actions += 1;
                    }
                    _ => {
                        s.open.remove(&i);
                        s.executed.remove(&i);
                        s.run_rollbacks += 1;
                    }
                }
            }
            AuditEvent::RunFinished => {
                let outcome = r.outcome.as_deref().unwrap_or("");
                let rollback_only = s.run_rollbacks > 0 && s.run_finished_actions == 0;
                s.status = match outcome {
                    "succeeded" if rollback_only => PlanStatus::RolledBack,
                    "succeeded" | "already_in_place" => PlanStatus::Succeeded,
                    "rolled_back" => PlanStatus::RolledBack,
                    "cancelled" => PlanStatus::Cancelled,
                    other => PlanStatus::Failed {
                        outcome: if other.is_empty() {
                            "unknown".to_string()
                        } else {
                            other.to_string()
                        },
                    },
                };
                s.in_run = false;
            }
        }
    }
    s
}

/// The actions of `plan_id` that finished applying and have not been rolled back
/// since, in the order they finished: what `%rollback` undoes, newest first.
pub fn executed_actions(report: &AuditReport, plan_id: &PlanId) -> Vec<ExecutedAction> {
    let mut out: Vec<ExecutedAction> =
        scan(report.records.iter().filter(|r| &r.plan_id == plan_id))
            .executed
            .into_values()
            .collect();
    out.sort_by_key(|e| e.seq);
    out
}

/// What the trail says about `plan_id`. Use the whole report, not `last(n)`.
pub fn plan_status(report: &AuditReport, plan_id: &PlanId) -> PlanStatus {
    let s = scan(report.records.iter().filter(|r| &r.plan_id == plan_id));
    if !s.open.is_empty() || (s.in_run && s.run_actions > 0) {
        let mut unfinished: Vec<AuditRecord> = s.open.into_values().cloned().collect();
        unfinished.sort_by_key(|r| r.seq);
        return PlanStatus::Running { unfinished };
    }
    s.status
}

// ---------------------------------------------------------------------------
// The executor's journal

/// Writes the executor's steps ([`JournalEvent`]) to an audit log, each fsynced
/// before the executor takes the next step. Adds to `action_finished` the `before`
/// state its `action_started` recorded.
pub struct AuditJournal<'a> {
    log: &'a mut AuditLog,
    plan: &'a RemediationPlan,
    before: BTreeMap<usize, Value>,
}

impl<'a> AuditJournal<'a> {
    pub fn new(log: &'a mut AuditLog, plan: &'a RemediationPlan) -> AuditJournal<'a> {
        AuditJournal {
            log,
            plan,
            before: BTreeMap::new(),
        }
    }

    /// The record an executor step becomes.
    pub fn record_of(&mut self, event: JournalEvent<'_>) -> AuditRecord {
        let plan = self.plan;
        match event {
            JournalEvent::ActionStarted {
                index,
                action,
                before,
            } => {
                self.before.insert(index, before.clone());
                AuditRecord::action_started(plan, index, action, before.clone())
            }
            JournalEvent::ActionFinished {
                index,
                action,
                applied,
                after,
                verified,
            } => {
                let mut r = AuditRecord::action_finished(plan, index, action, applied, after);
                r.before = self.before.get(&index).cloned();
                let check = if verified { "verified" } else { "not verified" };
                r.detail = Some(match r.detail {
                    Some(d) => format!("{d}; {check}"),
                    None => check.to_string(),
                });
                r
            }
            JournalEvent::ActionFailed {
                index,
                action,
                error,
            } => AuditRecord::action_failed(plan, index, action, error),
            JournalEvent::RolledBack {
                index,
                inverse,
                error,
            } => match (plan.actions.get(index), error) {
                (Some(original), None) => AuditRecord::rolled_back(plan, index, original, inverse),
                (Some(original), Some(e)) => {
                    AuditRecord::rollback_failed(plan, index, original, inverse, e)
                }
                (None, error) => {
                    let event = if error.is_some() {
                        AuditEvent::ActionFailed
                    } else {
                        AuditEvent::RolledBack
                    };
                    let mut r = AuditRecord::new(event, plan);
                    r.action = Some(ActionRef {
                        index,
                        name: String::new(),
                        spec: None,
                        inverse: Some(inverse.clone()),
                    });
                    r.detail = error;
                    r
                }
            },
            JournalEvent::FindingUpdated {
                findings,
                note,
                error,
            } => AuditRecord::findings_updated(plan, findings, note, error.as_deref()),
            JournalEvent::RunFinished { outcome } => AuditRecord::run_finished(plan, outcome),
            JournalEvent::ActionSkipped {
                index,
                action,
                reason,
            } => {
                let mut r = AuditRecord::new(AuditEvent::ActionSkipped, plan);
                r.action = Some(ActionRef::of(index, action));
                r.detail = Some(reason.to_string());
                r
            }
        }
    }
}

impl Journal for AuditJournal<'_> {
    fn record(&mut self, event: JournalEvent<'_>) -> Result<(), String> {
        let r = self.record_of(event);
        self.log.append(r).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::FindingIdentifier;
    use crate::plan::{PlanDraft, PlanSource};
    use crate::settings::Lang;

    /// A fresh, empty directory for one test.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "runbook-audit-{}-{name}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn plan(finding: &str, actions: Vec<Action>) -> RemediationPlan {
        RemediationPlan::new(PlanDraft {
            findings: vec![FindingIdentifier {
                id: finding.to_string(),
                product_arn: "arn:aws:securityhub:us-east-1::product/aws/securityhub".to_string(),
                source: crate::finding::FindingSource::Asff,
            }],
            control_id: "EC2.7".parse().unwrap(),
            target: Target {
                account: "123456789012".parse().unwrap(),
                region: "us-east-1".to_string(),
            },
            actions,
            rationale: "test".to_string(),
            policy_citations: Vec::new(),
            lang: Lang::En,
            source: PlanSource::Catalog,
        })
    }

    fn two_actions() -> RemediationPlan {
        plan(
            "f-1",
            vec![
                Action::EnableEbsEncryptionByDefault(
                    crate::catalog::ebs::EnableEbsEncryptionByDefault {},
                ),
                Action::EnableKmsKeyRotation(crate::catalog::kms::EnableKmsKeyRotation {
                    key_id: "k-1".to_string(),
                }),
            ],
        )
    }

    fn applied() -> Applied {
        Applied {
            changed: true,
            summary: "enabled".to_string(),
            ..Applied::default()
        }
    }

    fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn append_raw(path: &Path, bytes: &[u8]) {
        let mut f = OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(bytes).unwrap();
    }

    /// A successful two-action run, as the executor records it.
    fn write_success(log: &mut AuditLog, p: &RemediationPlan) {
        log.append(AuditRecord::plan_proposed(p)).unwrap();
        log.append(AuditRecord::approved(p)).unwrap();
        for (i, a) in p.actions.iter().enumerate() {
            log.append(AuditRecord::action_started(p, i, a, json!({"on": false})))
                .unwrap();
            log.append(AuditRecord::action_finished(
                p,
                i,
                a,
                &applied(),
                json!({"on": true}),
            ))
            .unwrap();
        }
        log.append(AuditRecord::finding_updated(p, "resolved by plan", None))
            .unwrap();
        log.append(AuditRecord::run_finished(p, "succeeded"))
            .unwrap();
    }

    #[test]
    fn append_and_read_round_trip() {
        let dir = temp_dir("round-trip");
        let path = dir.join("nested/deeper/audit.jsonl");
        let p = two_actions();
        let mut log = AuditLog::open(&path)
            .unwrap()
            .with_actor(SANDBOX_ACTOR)
            .with_session("kernel-1");
        let records = vec![
            AuditRecord::plan_proposed(&p),
            AuditRecord::approved(&p).by("arn:aws:iam::123456789012:user/alice"),
            AuditRecord::action_started(&p, 0, &p.actions[0], json!({"enabled": false})),
            AuditRecord::action_finished(
                &p,
                0,
                &p.actions[0],
                &applied(),
                json!({"enabled": true}),
            )
            .with_before(json!({"enabled": false})),
            AuditRecord::run_finished(&p, "succeeded"),
        ];
        for r in &records {
            log.append(r.clone()).unwrap();
        }
        assert_eq!(log.syncs, 5, "every append is fsynced");
        assert_eq!(log.last_seq(), Some(5));

        let text = lines(&path);
        assert_eq!(text.len(), 5);
        let first: Value = serde_json::from_str(&text[0]).unwrap();
        assert_eq!(first["event"], "plan_proposed");
        assert_eq!(first["plan_id"], p.id.as_str());
        assert_eq!(first["account"], "123456789012");
        assert!(first["at"].as_str().unwrap().ends_with('Z'));
        assert!(DateTime::parse_from_rfc3339(first["at"].as_str().unwrap()).is_ok());

        let report = read(&path).unwrap();
        assert!(report.exists);
        assert!(report.problems.is_empty());
        assert_eq!(report.damaged_tail, None);
        assert_eq!(report.records.len(), 5);
        for (i, (got, want)) in report.records.iter().zip(&records).enumerate() {
            assert_eq!(got.seq, i as u64 + 1);
            let mut want = want.clone();
            want.seq = got.seq;
            if want.actor.is_empty() {
                want.actor = SANDBOX_ACTOR.to_string();
            }
            want.kernel_session = Some("kernel-1".to_string());
            // The writer adds the chain links.
            assert_eq!(got.file_id.is_some(), i == 0);
            assert_eq!(got.prev.is_some(), i > 0);
            want.file_id.clone_from(&got.file_id);
            want.prev.clone_from(&got.prev);
            assert_eq!(got, &want);
        }
        assert_eq!(
            report.records[1].actor,
            "arn:aws:iam::123456789012:user/alice"
        );
        let started = report.records[2].action.as_ref().unwrap();
        assert_eq!(started.index, 0);
        assert_eq!(started.name, "EnableEbsEncryptionByDefault");
        assert_eq!(report.records[4].outcome.as_deref(), Some("succeeded"));
        assert_eq!(log.read().unwrap(), report);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn reopening_continues_the_sequence_and_never_truncates() {
        let dir = temp_dir("reopen");
        let path = dir.join("audit.jsonl");
        let p = two_actions();
        {
            let mut log = AuditLog::open(&path).unwrap();
            log.append(AuditRecord::plan_proposed(&p)).unwrap();
            log.append(AuditRecord::approved(&p)).unwrap();
            assert_eq!(log.syncs, 2);
        }
        let before = fs::read(&path).unwrap();
        let mut log = AuditLog::open(&path).unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            before,
            "open leaves the file alone"
        );
        log.append(AuditRecord::cancelled(&p, "wrong answer"))
            .unwrap();
        let after = fs::read(&path).unwrap();
        assert!(after.starts_with(&before), "only appended");
        let report = read(&path).unwrap();
        let seqs: Vec<u64> = report.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert_eq!(report.records[2].actor, UNKNOWN_ACTOR);
        assert_eq!(report.records[2].kernel_session, None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_line_cut_mid_write_is_a_damaged_tail_not_an_error() {
        let dir = temp_dir("cut");
        let path = dir.join("audit.jsonl");
        let p = two_actions();
        let mut log = AuditLog::open(&path).unwrap();
        log.append(AuditRecord::approved(&p)).unwrap();
        log.append(AuditRecord::action_started(&p, 0, &p.actions[0], json!({})))
            .unwrap();
        let full = AuditRecord::action_finished(&p, 0, &p.actions[0], &applied(), json!({}))
            .to_line()
            .unwrap();
        let offset = fs::metadata(&path).unwrap().len();
        append_raw(&path, &full.as_bytes()[..full.len() / 2]);

        let report = read(&path).unwrap();
        assert_eq!(report.records.len(), 2, "earlier records intact");
        assert!(report.problems.is_empty());
        let tail = report.damaged_tail.as_deref().unwrap();
        assert!(tail.contains("line 3"), "{tail}");
        assert!(tail.contains(&format!("byte {offset}")), "{tail}");
        assert!(tail.contains("cut off"), "{tail}");
        assert!(tail.contains("no final newline"), "{tail}");
        // The run died in action 0.
        let open = report.unfinished_runs();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].action.as_ref().unwrap().index, 0);

        // Appending after the cut line starts a fresh line.
        log.append(AuditRecord::action_failed(
            &p,
            0,
            &p.actions[0],
            "kernel restarted",
        ))
        .unwrap();
        let text = lines(&path);
        assert_eq!(text.len(), 4);
        assert_eq!(text[2], &full[..full.len() / 2]);
        let report = read(&path).unwrap();
        assert_eq!(report.damaged_tail, None);
        assert_eq!(report.records.len(), 3);
        assert_eq!(report.records[2].event, AuditEvent::ActionFailed);
        assert_eq!(
            report.records[2].seq, 3,
            "one after the last readable record"
        );
        assert_eq!(report.problems.len(), 1);
        assert_eq!(report.problems[0].line, 3);
        assert_eq!(report.problems[0].offset, offset);
        assert!(report.problems[0].message.contains("cut off"));
        assert!(report.unfinished_runs().is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_last_line_with_its_newline_is_also_a_damaged_tail() {
        let dir = temp_dir("corrupt-tail");
        let path = dir.join("audit.jsonl");
        let p = two_actions();
        AuditLog::open(&path)
            .unwrap()
            .append(AuditRecord::approved(&p))
            .unwrap();
        append_raw(&path, b"{\"seq\": \"x\"}\n\n");
        let report = read(&path).unwrap();
        assert_eq!(report.records.len(), 1);
        assert!(report.problems.is_empty());
        let tail = report.damaged_tail.unwrap();
        assert!(tail.contains("line 2"), "{tail}");
        assert!(tail.contains("not a valid audit record"), "{tail}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn corrupt_middle_lines_are_reported_with_their_numbers_and_skipped() {
        let dir = temp_dir("middle");
        let path = dir.join("audit.jsonl");
        let p = two_actions();
        let mut log = AuditLog::open(&path).unwrap();
        log.append(AuditRecord::plan_proposed(&p)).unwrap();
        append_raw(&path, b"this is not json\n\xff\xfe\n");
        log.append(AuditRecord::approved(&p)).unwrap();
        let report = read(&path).unwrap();
        assert_eq!(report.records.len(), 2);
        assert_eq!(report.records[1].seq, 2);
        assert_eq!(report.damaged_tail, None);
        let lines: Vec<usize> = report.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![2, 3]);
        assert!(
            report.problems[0]
                .message
                .contains("not a valid audit record")
        );
        assert!(report.problems[1].message.contains("not UTF-8"));
        assert!(report.problems[0].to_string().starts_with("line 2 (byte "));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_run_that_died_part_way_is_unfinished() {
        let dir = temp_dir("unfinished");
        let path = dir.join("audit.jsonl");
        let p = two_actions();
        let mut log = AuditLog::open(&path).unwrap();
        log.append(AuditRecord::approved(&p)).unwrap();
        log.append(AuditRecord::action_started(
            &p,
            0,
            &p.actions[0],
            json!({"on": false}),
        ))
        .unwrap();
        log.append(AuditRecord::action_finished(
            &p,
            0,
            &p.actions[0],
            &applied(),
            json!({"on": true}),
        ))
        .unwrap();
        log.append(AuditRecord::action_started(
            &p,
            1,
            &p.actions[1],
            json!({"rot": false}),
        ))
        .unwrap();
        let report = read(&path).unwrap();
        let open = report.unfinished_runs();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].plan_id, p.id);
        assert_eq!(open[0].event, AuditEvent::ActionStarted);
        assert_eq!(open[0].action.as_ref().unwrap().index, 1);
        match plan_status(&report, &p.id) {
            PlanStatus::Running { unfinished } => assert_eq!(unfinished.len(), 1),
            other => panic!("{other:?}"),
        }
        assert!(plan_status(&report, &p.id).already_ran());
        // Action 0 is applied and can be rolled back.
        let done = executed_actions(&report, &p.id);
        assert_eq!(done.len(), 1);
        assert_eq!(
            done[0].before,
            Some(json!({"on": false})),
            "from action_started"
        );
        assert_eq!(
            done[0].inverse(),
            Some(Action::DisableEbsEncryptionByDefault(
                crate::catalog::ebs::DisableEbsEncryptionByDefault {}
            ))
        );

        // Died between actions: nothing open, but the run never finished.
        let dir2 = temp_dir("between");
        let path2 = dir2.join("audit.jsonl");
        let mut log2 = AuditLog::open(&path2).unwrap();
        log2.append(AuditRecord::approved(&p)).unwrap();
        log2.append(AuditRecord::action_started(&p, 0, &p.actions[0], json!({})))
            .unwrap();
        log2.append(AuditRecord::action_finished(
            &p,
            0,
            &p.actions[0],
            &applied(),
            json!({}),
        ))
        .unwrap();
        let report2 = read(&path2).unwrap();
        assert!(report2.unfinished_runs().is_empty());
        assert_eq!(
            plan_status(&report2, &p.id),
            PlanStatus::Running {
                unfinished: Vec::new()
            }
        );
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&dir2);
    }

    #[test]
    fn statuses_and_executed_actions_follow_the_runs() {
        let dir = temp_dir("status");
        let path = dir.join("audit.jsonl");
        let ok = two_actions();
        let failed = plan(
            "f-2",
            vec![
                Action::EnableEbsEncryptionByDefault(
                    crate::catalog::ebs::EnableEbsEncryptionByDefault {},
                ),
                Action::EnableKmsKeyRotation(crate::catalog::kms::EnableKmsKeyRotation {
                    key_id: "k-2".to_string(),
                }),
            ],
        );
        let refused = plan(
            "f-3",
            vec![Action::EnableEbsEncryptionByDefault(
                crate::catalog::ebs::EnableEbsEncryptionByDefault {},
            )],
        );
        let proposed = plan(
            "f-4",
            vec![Action::EnableEbsEncryptionByDefault(
                crate::catalog::ebs::EnableEbsEncryptionByDefault {},
            )],
        );
        let mut log = AuditLog::open(&path).unwrap().with_actor(SANDBOX_ACTOR);

        write_success(&mut log, &ok);
        // Action 2 of `failed` fails; action 1 is rolled back.
        log.append(AuditRecord::approved(&failed)).unwrap();
        log.append(AuditRecord::action_started(
            &failed,
            0,
            &failed.actions[0],
            json!({}),
        ))
        .unwrap();
        log.append(AuditRecord::action_finished(
            &failed,
            0,
            &failed.actions[0],
            &applied(),
            json!({}),
        ))
        .unwrap();
        log.append(AuditRecord::action_started(
            &failed,
            1,
            &failed.actions[1],
            json!({}),
        ))
        .unwrap();
        log.append(AuditRecord::action_failed(
            &failed,
            1,
            &failed.actions[1],
            "AccessDenied",
        ))
        .unwrap();
        log.append(AuditRecord::rolled_back(
            &failed,
            0,
            &failed.actions[0],
            &Action::DisableEbsEncryptionByDefault(
                crate::catalog::ebs::DisableEbsEncryptionByDefault {},
            ),
        ))
        .unwrap();
        log.append(AuditRecord::run_finished(&failed, "failed"))
            .unwrap();
        log.append(AuditRecord::plan_proposed(&refused)).unwrap();
        log.append(AuditRecord::cancelled(
            &refused,
            "the answer did not match the plan id",
        ))
        .unwrap();
        log.append(AuditRecord::plan_proposed(&proposed)).unwrap();
        log.append(AuditRecord::dry_run(&proposed, json!({}), json!({})))
            .unwrap();

        let report = read(&path).unwrap();
        assert!(report.unfinished_runs().is_empty());
        assert_eq!(plan_status(&report, &ok.id), PlanStatus::Succeeded);
        assert!(plan_status(&report, &ok.id).already_ran());
        assert_eq!(
            plan_status(&report, &failed.id),
            PlanStatus::Failed {
                outcome: "failed".to_string()
            }
        );
        assert_eq!(plan_status(&report, &refused.id), PlanStatus::Cancelled);
        assert_eq!(plan_status(&report, &proposed.id), PlanStatus::NotRun);
        assert!(
            executed_actions(&report, &failed.id).is_empty(),
            "rolled back"
        );
        assert!(executed_actions(&report, &refused.id).is_empty());

        let done = executed_actions(&report, &ok.id);
        let names: Vec<&str> = done.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["EnableEbsEncryptionByDefault", "EnableKmsKeyRotation"]
        );
        assert!(done[0].seq < done[1].seq);
        assert_eq!(done[1].after, Some(json!({"on": true})));
        assert_eq!(done[1].applied, Some(applied()));
        assert_eq!(done[1].subject, AuditSubject::from(&ok));
        assert_eq!(
            done[1].inverse(),
            Some(Action::DisableKmsKeyRotation(
                crate::catalog::kms::DisableKmsKeyRotation {
                    key_id: "k-1".to_string()
                }
            ))
        );

        // %rollback, from the trail alone, newest first.
        log.append(AuditRecord::approved(&done[0].subject)).unwrap();
        for e in done.iter().rev() {
            let inverse = e.inverse().unwrap();
            let original = e.action.as_ref().unwrap();
            log.append(AuditRecord::rollback_started(
                &e.subject,
                e.index,
                original,
                &inverse,
                json!({}),
            ))
            .unwrap();
            log.append(AuditRecord::rolled_back(
                &e.subject, e.index, original, &inverse,
            ))
            .unwrap();
        }
        log.append(AuditRecord::run_finished(&done[0].subject, "rolled_back"))
            .unwrap();
        let report = read(&path).unwrap();
        assert_eq!(plan_status(&report, &ok.id), PlanStatus::RolledBack);
        assert!(executed_actions(&report, &ok.id).is_empty());
        assert!(report.unfinished_runs().is_empty());
        // A cancelled approval afterwards does not change what happened.
        log.append(AuditRecord::cancelled(&ok, "empty answer"))
            .unwrap();
        assert_eq!(
            plan_status(&read(&path).unwrap(), &ok.id),
            PlanStatus::RolledBack
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_rollback_leaves_the_action_applied() {
        let dir = temp_dir("rollback-failed");
        let path = dir.join("audit.jsonl");
        let p = two_actions();
        let mut log = AuditLog::open(&path).unwrap();
        write_success(&mut log, &p);
        let inverse = Action::DisableKmsKeyRotation(crate::catalog::kms::DisableKmsKeyRotation {
            key_id: "k-1".to_string(),
        });
        log.append(AuditRecord::approved(&p)).unwrap();
        log.append(AuditRecord::rollback_started(
            &p,
            1,
            &p.actions[1],
            &inverse,
            json!({}),
        ))
        .unwrap();
        log.append(AuditRecord::rollback_failed(
            &p,
            1,
            &p.actions[1],
            &inverse,
            "throttled",
        ))
        .unwrap();
        log.append(AuditRecord::run_finished(&p, "failed")).unwrap();
        let report = read(&path).unwrap();
        assert_eq!(executed_actions(&report, &p.id).len(), 2);
        assert!(report.unfinished_runs().is_empty());
        let failed = report.records.iter().rev().nth(1).unwrap();
        assert_eq!(failed.event, AuditEvent::ActionFailed);
        assert!(failed.detail.as_deref().unwrap().contains("throttled"));
        assert_eq!(failed.action.as_ref().unwrap().inverse, Some(inverse));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn last_and_for_plan_filter_records() {
        let dir = temp_dir("filters");
        let path = dir.join("audit.jsonl");
        let a = two_actions();
        let b = plan(
            "f-9",
            vec![Action::EnableEbsEncryptionByDefault(
                crate::catalog::ebs::EnableEbsEncryptionByDefault {},
            )],
        );
        let mut log = AuditLog::open(&path).unwrap();
        for i in 0..3 {
            log.append(AuditRecord::plan_proposed(&a).with_detail(format!("a{i}")))
                .unwrap();
            log.append(AuditRecord::plan_proposed(&b).with_detail(format!("b{i}")))
                .unwrap();
        }
        append_raw(&path, b"{\"cut");
        let report = read(&path).unwrap();
        assert_eq!(report.records.len(), 6);

        let last = report.clone().last(2);
        let seqs: Vec<u64> = last.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![5, 6]);
        assert!(last.damaged_tail.is_some(), "kept");
        assert_eq!(report.clone().last(100).records.len(), 6);
        assert!(report.clone().last(0).is_empty());

        let only_b = report.clone().for_plan(&b.id);
        assert_eq!(only_b.records.len(), 3);
        assert!(only_b.records.iter().all(|r| r.plan_id == b.id));
        let last_b = report.for_plan(&b.id).last(1);
        assert_eq!(last_b.records.len(), 1);
        assert_eq!(last_b.records[0].detail.as_deref(), Some("b2"));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_file_is_an_empty_report() {
        let dir = temp_dir("missing");
        let path = dir.join("never/written.jsonl");
        let report = read(&path).unwrap();
        assert!(!report.exists);
        assert!(report.is_empty());
        assert!(report.problems.is_empty());
        assert_eq!(report.damaged_tail, None);
        assert!(report.unfinished_runs().is_empty());
        assert_eq!(plan_status(&report, &two_actions().id), PlanStatus::NotRun);
        assert!(!path.exists(), "reading creates nothing");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn unwritable_paths_give_clear_errors() {
        let dir = temp_dir("unwritable");
        let file = dir.join("plain-file");
        fs::write(&file, "x").unwrap();

        let under_file = file.join("sub/audit.jsonl");
        let e = AuditLog::open(&under_file).unwrap_err();
        assert!(matches!(e, AuditError::CreateDir { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&under_file.display().to_string()), "{msg}");
        assert!(msg.contains("cannot create the directory"), "{msg}");
        assert!(msg.contains("os error"), "{msg}");

        let e = AuditLog::open(&dir).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("cannot open the audit log"), "{msg}");
        assert!(msg.contains(&dir.display().to_string()), "{msg}");
        assert!(msg.to_lowercase().contains("directory"), "{msg}");

        let e = read(&file.join("audit.jsonl")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("cannot read the audit log"), "{msg}");
        assert!(msg.contains("os error"), "{msg}");
        assert_eq!(fs::read_to_string(&file).unwrap(), "x", "untouched");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn japanese_text_round_trips() {
        let dir = temp_dir("japanese");
        let path = dir.join("監査ログ.jsonl");
        let p = two_actions();
        let detail = "承認されませんでした：入力がプラン ID と一致しません 🙅";
        let mut log = AuditLog::open(&path).unwrap();
        log.append(AuditRecord::cancelled(&p, detail)).unwrap();
        log.append(AuditRecord::finding_updated(
            &p,
            "plan により修復しました",
            None,
        ))
        .unwrap();
        let report = read(&path).unwrap();
        assert_eq!(report.records[0].detail.as_deref(), Some(detail));
        assert_eq!(
            report.records[1].after.as_ref().unwrap()["note"],
            "plan により修復しました"
        );
        assert!(
            fs::read_to_string(&path).unwrap().contains(detail),
            "kept as UTF-8, not escaped"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn two_writers_never_merge_lines_or_repeat_seq() {
        let dir = temp_dir("writers");
        let path = dir.join("audit.jsonl");
        let p = two_actions();
        let threads: Vec<_> = (0..2)
            .map(|w| {
                let path = path.clone();
                let p = p.clone();
                std::thread::spawn(move || {
                    let mut log = AuditLog::open(&path).unwrap().with_session(format!("k{w}"));
                    for i in 0..25 {
                        log.append(AuditRecord::cancelled(&p, format!("{w}-{i}")))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let report = read(&path).unwrap();
        assert!(report.problems.is_empty());
        assert_eq!(report.damaged_tail, None);
        let seqs: Vec<u64> = report.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=50).collect::<Vec<u64>>());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn records_tolerate_unknown_fields_and_other_offsets() {
        let p = two_actions();
        let line = format!(
            r#"{{"seq":7,"at":"2025-01-02T12:00:00+09:00","event":"approved","plan_id":"{}","actor":"sandbox","account":"123456789012","region":"us-east-1","future":1}}"#,
            p.id
        );
        let report = AuditReport::parse(Path::new("x"), line.as_bytes());
        assert!(report.damaged_tail.is_none(), "{:?}", report.damaged_tail);
        let r = &report.records[0];
        assert_eq!(r.at.to_rfc3339(), "2025-01-02T03:00:00+00:00");
        let back = r.to_line().unwrap();
        assert!(
            back.contains(r#""at":"2025-01-02T03:00:00.000Z""#),
            "{back}"
        );
        for e in AuditEvent::ALL {
            assert_eq!(serde_json::to_value(e).unwrap(), json!(e.name()));
        }
    }

    #[test]
    fn the_executor_journal_becomes_audit_records() {
        let dir = temp_dir("journal");
        let path = dir.join("audit.jsonl");
        let p = two_actions();
        let mut log = AuditLog::open(&path).unwrap().with_actor(SANDBOX_ACTOR);
        {
            let mut j = AuditJournal::new(&mut log, &p);
            let before = json!({"on": false});
            j.record(JournalEvent::ActionStarted {
                index: 0,
                action: &p.actions[0],
                before: &before,
            })
            .unwrap();
            j.record(JournalEvent::ActionFinished {
                index: 0,
                action: &p.actions[0],
                applied: &applied(),
                after: json!({"on": true}),
                verified: true,
            })
            .unwrap();
            j.record(JournalEvent::ActionStarted {
                index: 1,
                action: &p.actions[1],
                before: &before,
            })
            .unwrap();
            j.record(JournalEvent::ActionFailed {
                index: 1,
                action: &p.actions[1],
                error: "AccessDenied".to_string(),
            })
            .unwrap();
            j.record(JournalEvent::RolledBack {
                index: 0,
                inverse: &Action::DisableEbsEncryptionByDefault(
                    crate::catalog::ebs::DisableEbsEncryptionByDefault {},
                ),
                error: None,
            })
            .unwrap();
            j.record(JournalEvent::FindingUpdated {
                findings: &p.findings,
                note: "n",
                error: Some("throttled".to_string()),
            })
            .unwrap();
            j.record(JournalEvent::RunFinished { outcome: "failed" })
                .unwrap();
        }
        let report = read(&path).unwrap();
        let events: Vec<AuditEvent> = report.records.iter().map(|r| r.event).collect();
        assert_eq!(
            events,
            vec![
                AuditEvent::ActionStarted,
                AuditEvent::ActionFinished,
                AuditEvent::ActionStarted,
                AuditEvent::ActionFailed,
                AuditEvent::RolledBack,
                AuditEvent::FindingUpdated,
                AuditEvent::RunFinished,
            ]
        );
        let finished = &report.records[1];
        assert_eq!(finished.before, Some(json!({"on": false})));
        assert_eq!(finished.detail.as_deref(), Some("enabled; verified"));
        assert_eq!(report.records[5].after.as_ref().unwrap()["updated"], false);
        assert!(report.unfinished_runs().is_empty());
        assert!(executed_actions(&report, &p.id).is_empty());
        assert_eq!(
            plan_status(&report, &p.id),
            PlanStatus::Failed {
                outcome: "failed".to_string()
            }
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
