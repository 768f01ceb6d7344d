//! Per-kernel state that lives between cells.

use std::collections::BTreeMap;
use std::sync::Arc;

use runbook::advisor::{Advisor, Turn};
use runbook::audit::{AuditLog, CloudWatchSink};
use runbook::cloud::{BackendInfo, Clouds, Organisation};
use runbook::finding::{Finding, FindingFilter};
use runbook::plan::RemediationPlan;
use runbook::settings::{AuditSinkSpec, Settings, SettingsError};

/// The last `%findings` result: later cells refer to its findings by number.
#[derive(Debug, Clone)]
pub struct Listing {
    pub findings: Vec<Finding>,
    pub filter: FindingFilter,
    /// The filter as the listing's heading showed it.
    pub filter_text: String,
    pub backend: BackendInfo,
    /// Account names as the listing showed them.
    pub organisation: Organisation,
}

/// A plan made in this session, with the finding it was made for.
#[derive(Debug, Clone)]
pub struct StoredPlan {
    pub plan: RemediationPlan,
    pub finding: Finding,
    /// Who proposed it (the audit's actor then), for the two-person rule.
    pub proposed_by: Option<String>,
}

/// The advisor in use and the settings it was chosen for.
pub struct ChosenAdvisor {
    pub key: (String, Option<String>, Option<String>, String),
    pub advisor: Arc<dyn Advisor>,
    pub reason: String,
}

/// The knowledge base in use and the settings (and directory) it was opened for.
pub struct KbSlot {
    pub key: String,
    pub kb: Arc<dyn runbook::kb::KnowledgeBase>,
}

/// One stored input, numbered by its execution count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryItem {
    pub line: usize,
    pub code: String,
}

/// The session number used in history replies; this kernel keeps no history across restarts.
pub const HISTORY_SESSION: usize = 1;

pub struct Session {
    /// This kernel session: recorded on audit records, and names its log stream.
    pub id: String,
    pub settings: Settings,
    /// The backends: the sandbox (kept for the whole session) and the one in use.
    pub clouds: Clouds,
    pub listing: Option<Listing>,
    /// Plans by id; only validated plans are stored.
    pub plans: BTreeMap<String, StoredPlan>,
    /// The most recent plan, for `%approve last`.
    pub last_plan: Option<String>,
    pub advisor: Option<ChosenAdvisor>,
    pub kb: Option<KbSlot>,
    /// The `%ask` conversation so far (`%ask --new` clears it).
    pub conversation: Vec<Turn>,
    /// Environment values that were ignored at start-up, shown by `%config`.
    pub env_problems: Vec<SettingsError>,
    pub execution_count: usize,
    pub history: Vec<HistoryItem>,
    /// Runbook variables (`%set`), expanded as `$NAME` in magic arguments.
    pub variables: crate::variables::Variables,
    /// Set when no human is there (`runbook-kernel exec`): how approval works then.
    pub unattended: Option<Unattended>,
    /// Magic cells run so far: Rust cells rewrite their snapshot when it changed.
    pub magic_cells_run: u64,
    /// Rust evaluation, started by the first Rust cell.
    pub rust: crate::rust_cells::RustCells,
    /// The running off-machine audit copy, for the `audit_sink` it was started for.
    audit_sink: Option<(AuditSinkSpec, Arc<CloudWatchSink>)>,
}

/// Approval in a run with no human (`runbook-kernel exec`): `--yes` applies a
/// plan only when the run was started with `-p approval=allow-yes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unattended {
    pub allow_yes: bool,
}

impl Session {
    pub fn new(settings: Settings, env_problems: Vec<SettingsError>) -> Session {
        Session {
            id: uuid::Uuid::new_v4().to_string(),
            settings,
            clouds: Clouds::default(),
            listing: None,
            plans: BTreeMap::new(),
            last_plan: None,
            advisor: None,
            kb: None,
            conversation: Vec::new(),
            env_problems,
            execution_count: 0,
            history: Vec::new(),
            variables: Default::default(),
            unattended: None,
            magic_cells_run: 0,
            rust: Default::default(),
            audit_sink: None,
        }
    }

    /// Opens the audit trail for appending, with this session's id and, when
    /// `audit_sink` is set, its off-machine copy (started once per sink setting).
    pub fn open_audit_log(&mut self) -> Result<AuditLog, String> {
        let sink = match &self.settings.audit_sink {
            None => None,
            Some(spec) => match &self.audit_sink {
                Some((running, sink)) if running == spec => Some(sink.clone()),
                _ => {
                    let AuditSinkSpec::CloudWatch { log_group } = spec;
                    let sink = Arc::new(
                        CloudWatchSink::start(&self.settings, log_group, &self.id).map_err(
                            |e| {
                                format!(
                                    "the audit sink {spec} cannot be used, so nothing runs: {e}"
                                )
                            },
                        )?,
                    );
                    self.audit_sink = Some((spec.clone(), sink.clone()));
                    Some(sink)
                }
            },
        };
        let log = AuditLog::open(&self.settings.audit_log).map_err(|e| e.to_string())?;
        if let Some(note) = log.tightened() {
            tracing::warn!("{note}");
        }
        Ok(log.with_session(self.id.clone()).with_sink(sink))
    }

    pub fn from_process_env() -> Session {
        let (settings, problems) = Settings::from_process_env();
        Session::new(settings, problems)
    }

    /// Counts a stored execution and returns its number.
    pub fn next_execution(&mut self, code: &str) -> usize {
        self.execution_count += 1;
        self.history.push(HistoryItem {
            line: self.execution_count,
            code: code.to_string(),
        });
        self.execution_count
    }

    /// The last `n` inputs.
    pub fn history_tail(&self, n: usize) -> &[HistoryItem] {
        &self.history[self.history.len().saturating_sub(n)..]
    }

    /// Inputs numbered `start..stop`; `stop` 0 or negative counts from the end, as IPython does.
    pub fn history_range(&self, start: i64, stop: i64) -> Vec<&HistoryItem> {
        let len = self.history.len() as i64;
        let stop = if stop <= 0 { len + 1 + stop } else { stop };
        self.history
            .iter()
            .filter(|h| (h.line as i64) >= start && (h.line as i64) < stop.max(start))
            .collect()
    }

    /// Inputs matching a glob (`*` any run, `?` one character), newest last, at most `n` (0 = all).
    pub fn history_search(&self, pattern: &str, n: usize, unique: bool) -> Vec<&HistoryItem> {
        let mut found: Vec<&HistoryItem> = Vec::new();
        for item in self.history.iter().rev() {
            if !glob_match(pattern, &item.code) {
                continue;
            }
            if unique && found.iter().any(|f| f.code == item.code) {
                continue;
            }
            found.push(item);
            if n > 0 && found.len() == n {
                break;
            }
        }
        found.reverse();
        found
    }
}

fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Classic two-pointer wildcard match with backtracking to the last `*`.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session_with(inputs: &[&str]) -> Session {
        let mut s = Session::new(Settings::default(), Vec::new());
        for i in inputs {
            s.next_execution(i);
        }
        s
    }

    #[test]
    fn execution_count_and_tail() {
        let s = session_with(&["%version", "%config", "%help"]);
        assert_eq!(s.execution_count, 3);
        let tail: Vec<_> = s.history_tail(2).iter().map(|h| h.line).collect();
        assert_eq!(tail, vec![2, 3]);
        assert_eq!(s.history_tail(10).len(), 3);
    }

    #[test]
    fn range_follows_ipython() {
        let s = session_with(&["a", "b", "c", "d"]);
        let lines = |v: Vec<&HistoryItem>| v.iter().map(|h| h.line).collect::<Vec<_>>();
        assert_eq!(lines(s.history_range(2, 4)), vec![2, 3]);
        assert_eq!(lines(s.history_range(1, 0)), vec![1, 2, 3, 4]);
        assert_eq!(lines(s.history_range(3, 1)), Vec::<usize>::new());
    }

    #[test]
    fn search_globs() {
        let s = session_with(&["%config lang=ja", "%version", "%config lang=ja", "%help"]);
        let found = s.history_search("%config*", 0, false);
        assert_eq!(found.len(), 2);
        let unique = s.history_search("%config*", 0, true);
        assert_eq!(unique.len(), 1);
        assert_eq!(unique[0].line, 3, "newest kept");
        assert!(glob_match("%v?rsion", "%version"));
        assert!(!glob_match("%v?rsion", "%versions"));
        assert!(glob_match("*", ""));
        assert!(glob_match("日本*", "日本語"));
    }
}
