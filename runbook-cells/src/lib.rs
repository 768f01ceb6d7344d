//! What a runbook session's magics left, typed, for Rust cells.
//!
//! The kernel writes a JSON snapshot of its session (the last `%findings`
//! listing and the plans) before each Rust cell that follows a magic, and names
//! it in `RUNBOOK_CELLS_SNAPSHOT`. The audit trail is read from its own file, so
//! it is always current.
//!
//! ```ignore
//! use runbook_cells::findings;
//! use std::collections::BTreeMap;
//! let mut by_owner: BTreeMap<(String, String), usize> = BTreeMap::new();
//! for f in findings() {
//!     *by_owner.entry((f.account.clone(), f.control_id.clone().unwrap_or_default())).or_default() += 1;
//! }
//! ```

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// For cells that print or build JSON without a `:dep` of their own.
pub use serde_json;

/// Names the session snapshot the kernel keeps for its Rust cells.
pub const SNAPSHOT_ENV: &str = "RUNBOOK_CELLS_SNAPSHOT";

/// One finding of the last `%findings` listing, with the fields of the
/// listing's JSON rows (`application/vnd.runbook+json`, `shown`) and the raw
/// finding as Security Hub sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Position in the listing, from 1 (most severe first).
    pub number: usize,
    pub id: String,
    /// CRITICAL, HIGH, MEDIUM, LOW or INFORMATIONAL.
    pub severity: String,
    pub control_id: Option<String>,
    /// The standard's own id when the finding came from a standard-specific
    /// control (CIS, PCI DSS), e.g. "CIS 1.2.0 1.9".
    pub standard_control: Option<String>,
    /// `asff` (Security Hub CSPM) or `ocsf` (the new Security Hub).
    pub source: String,
    pub title: String,
    /// The first resource: its name when tagged, else its id.
    pub resource: String,
    pub account: String,
    pub account_name: Option<String>,
    pub region: String,
    /// NEW, NOTIFIED, RESOLVED or SUPPRESSED.
    pub workflow: String,
    pub updated_at: Option<String>,
    /// The finding exactly as the service returned it (ASFF or OCSF JSON).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub raw: Value,
}

impl Finding {
    /// The value of a resource tag on the finding's first resource, if any.
    pub fn tag(&self, key: &str) -> Option<String> {
        let tags = self
            .raw
            .pointer("/Resources/0/Tags")
            .or_else(|| self.raw.pointer("/resources/0/tags"))?;
        match tags {
            // ASFF: {"Owner": "team-a"}
            Value::Object(map) => map.get(key)?.as_str().map(str::to_string),
            // OCSF: [{"name": "Owner", "value": "team-a"}]
            Value::Array(items) => items.iter().find_map(|t| {
                (t.get("name")?.as_str()? == key)
                    .then(|| t.get("value")?.as_str().map(str::to_string))?
            }),
            _ => None,
        }
    }
}

/// A remediation plan made in this session (`%remediate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub control_id: String,
    pub account: String,
    pub region: String,
    /// Ids of the findings the plan answers.
    pub finding_ids: Vec<String>,
    pub rationale: String,
    /// Who proposed it: `catalog` or the model.
    pub source: String,
    pub created_at: String,
    /// The plan in full, as `%remediate` stored it.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub raw: Value,
}

/// One record of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub at: String,
    /// e.g. plan_proposed, approved, action_finished, run_finished.
    pub event: String,
    pub plan_id: String,
    pub actor: String,
    pub account: String,
    pub region: String,
    pub outcome: Option<String>,
    pub detail: Option<String>,
    /// The kernel session that wrote it; compare with [`session_id`].
    pub kernel_session: Option<String>,
    /// The record in full.
    pub raw: Value,
}

/// The session as the kernel last wrote it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub session_id: String,
    /// The filter of the last listing, as `%findings` showed it.
    pub filter: Option<String>,
    pub findings: Vec<Finding>,
    pub plans: Vec<Plan>,
    /// The audit trail's file.
    pub audit_log: Option<PathBuf>,
}

/// Why the session's data could not be read.
#[derive(Debug)]
pub enum SnapshotError {
    NotInKernel,
    Unreadable { path: PathBuf, message: String },
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::NotInKernel => write!(
                f,
                "{SNAPSHOT_ENV} is not set: runbook_cells reads the session of the Security Runbook kernel, so use it in a Rust cell of that kernel"
            ),
            SnapshotError::Unreadable { path, message } => {
                write!(f, "cannot read {}: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for SnapshotError {}

/// Reads the session snapshot.
pub fn try_snapshot() -> Result<Snapshot, SnapshotError> {
    let path = std::env::var_os(SNAPSHOT_ENV)
        .map(PathBuf::from)
        .ok_or(SnapshotError::NotInKernel)?;
    let text = std::fs::read_to_string(&path).map_err(|e| SnapshotError::Unreadable {
        path: path.clone(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| SnapshotError::Unreadable {
        path,
        message: e.to_string(),
    })
}

fn snapshot() -> Snapshot {
    try_snapshot().unwrap_or_else(|e| panic!("runbook_cells: {e}"))
}

/// The findings of the last `%findings` listing, most severe first; empty
/// before the first listing.
pub fn findings() -> Vec<Finding> {
    snapshot().findings
}

/// The plans made in this session, oldest first.
pub fn plans() -> Vec<Plan> {
    snapshot().plans
}

/// This kernel session's id, as its audit records carry it.
pub fn session_id() -> String {
    snapshot().session_id
}

/// Every record of the audit trail, oldest first; empty when there is none yet.
pub fn try_audit() -> Result<Vec<AuditRecord>, SnapshotError> {
    let Some(path) = try_snapshot()?.audit_log else {
        return Ok(Vec::new());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(SnapshotError::Unreadable {
                path,
                message: e.to_string(),
            });
        }
    };
    let mut records = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let raw: Value = serde_json::from_str(line).map_err(|e| SnapshotError::Unreadable {
            path: path.clone(),
            message: format!("line {}: {e}", n + 1),
        })?;
        records.push(audit_record(raw));
    }
    Ok(records)
}

/// [`try_audit`], panicking with the reason when the trail cannot be read.
pub fn audit() -> Vec<AuditRecord> {
    try_audit().unwrap_or_else(|e| panic!("runbook_cells: {e}"))
}

fn audit_record(raw: Value) -> AuditRecord {
    let text = |key: &str| raw.get(key).and_then(Value::as_str).map(str::to_string);
    AuditRecord {
        seq: raw.get("seq").and_then(Value::as_u64).unwrap_or_default(),
        at: text("at").unwrap_or_default(),
        event: text("event").unwrap_or_default(),
        plan_id: text("plan_id").unwrap_or_default(),
        actor: text("actor").unwrap_or_default(),
        account: text("account").unwrap_or_default(),
        region: text("region").unwrap_or_default(),
        outcome: text("outcome"),
        detail: text("detail"),
        kernel_session: text("kernel_session"),
        raw,
    }
}

/// Escapes text for HTML a cell prints: finding fields are chosen by whoever
/// created the resource, so never put them into markup unescaped.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Shows HTML as the cell's rich output (evcxr's display convention).
pub fn display_html(html: &str) {
    println!("EVCXR_BEGIN_CONTENT text/html\n{html}\nEVCXR_END_CONTENT");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape_html("<img src=x onerror='a'>&\""),
            "&lt;img src=x onerror=&#39;a&#39;&gt;&amp;&quot;"
        );
    }

    #[test]
    fn reads_tags_in_both_formats() {
        let mut f: Finding = serde_json::from_value(serde_json::json!({
            "number": 1, "id": "x", "severity": "HIGH", "control_id": null,
            "standard_control": null, "source": "asff", "title": "t", "resource": "r",
            "account": "1", "account_name": null, "region": "us-east-1",
            "workflow": "NEW", "updated_at": null,
            "raw": {"Resources": [{"Tags": {"Owner": "team-a"}}]}
        }))
        .unwrap();
        assert_eq!(f.tag("Owner").as_deref(), Some("team-a"));
        f.raw =
            serde_json::json!({"resources": [{"tags": [{"name": "Owner", "value": "team-b"}]}]});
        assert_eq!(f.tag("Owner").as_deref(), Some("team-b"));
        assert_eq!(f.tag("Missing"), None);
    }

    #[test]
    fn audit_records_read_tolerantly() {
        let r = audit_record(serde_json::json!({"seq": 3, "event": "approved", "plan_id": "p"}));
        assert_eq!((r.seq, r.event.as_str(), r.outcome), (3, "approved", None));
    }
}
