//! `runbook-kernel exec NOTEBOOK`: runs a runbook in-process, with no Jupyter or
//! Python, as a container on a schedule would. Parameters become a `%set` cell
//! after the notebook's `parameters` cell (papermill's convention); outputs go
//! into the notebook in nbformat 4; a JSON report says what was read, planned,
//! applied unattended, refused or failed. The first failing cell stops the run.
//!
//! Nobody can type a plan id here, so `%approve` applies a plan only when the
//! run was given `-p approval=allow-yes` and the line says `--yes`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use std::panic::AssertUnwindSafe;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::error::MagicError;
use crate::magics;
use crate::output::{AskError, DisplayHandle, Output};
use crate::render::Bundle;
use crate::session::Session;

/// What `exec` was asked to do.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub notebook: PathBuf,
    /// NAME=VALUE, in order.
    pub parameters: Vec<(String, String)>,
    pub output: PathBuf,
    pub report: Option<PathBuf>,
}

/// Why a notebook could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error(
        "{path} is not a Jupyter notebook in nbformat 4 ({message}); accepted: an .ipynb file as JupyterLab saves it"
    )]
    NotANotebook { path: PathBuf, message: String },
    #[error("{0}")]
    Parameter(String),
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// One executed cell, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CellReport {
    pub index: usize,
    pub source: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evalue: Option<String>,
}

/// The run's JSON report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExecReport {
    pub notebook: String,
    pub output: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub parameters: serde_json::Map<String, Value>,
    pub succeeded: bool,
    /// Findings the listings read, summed over every %findings.
    pub findings_read: usize,
    pub plans_made: Vec<String>,
    /// Plans applied without a human typing the id (every apply here is).
    pub plans_applied_unattended: Vec<String>,
    pub plans_refused: Vec<String>,
    pub plans_failed: Vec<String>,
    pub errors: Vec<String>,
    pub cells: Vec<CellReport>,
}

/// One output of a cell, in order.
#[derive(Debug, Clone)]
enum Shown {
    Display(DisplayHandle, Bundle),
    Stream(&'static str, String),
    Result(serde_json::Map<String, Value>),
}

/// Collects a cell's outputs as nbformat outputs; an update replaces its display.
#[derive(Default)]
struct CellOutput {
    outputs: Mutex<Vec<Shown>>,
    token: CancellationToken,
}

impl CellOutput {
    fn shown(&self) -> Vec<Shown> {
        self.outputs.lock().map(|o| o.clone()).unwrap_or_default()
    }

    fn push(&self, shown: Shown) {
        let mut outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        // Consecutive text to one stream is one output, as Jupyter saves it.
        if let (Shown::Stream(name, text), Some(Shown::Stream(last, so_far))) =
            (&shown, outputs.last_mut())
            && name == last
        {
            so_far.push_str(text);
            return;
        }
        outputs.push(shown);
    }
}

#[async_trait]
impl Output for CellOutput {
    fn display(&self, bundle: Bundle) -> DisplayHandle {
        let mut outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        let handle = DisplayHandle(format!("exec-{}", outputs.len()));
        outputs.push(Shown::Display(handle.clone(), bundle));
        handle
    }

    fn update(&self, handle: &DisplayHandle, bundle: Bundle) {
        let mut outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        for shown in outputs.iter_mut() {
            if let Shown::Display(h, slot) = shown
                && h == handle
            {
                *slot = bundle;
                return;
            }
        }
    }

    fn stream(&self, name: jupyter_protocol::Stdio, text: &str) {
        let name = match name {
            jupyter_protocol::Stdio::Stdout => "stdout",
            jupyter_protocol::Stdio::Stderr => "stderr",
        };
        self.push(Shown::Stream(name, text.to_string()));
    }

    fn result(&self, data: serde_json::Map<String, Value>) {
        self.push(Shown::Result(data));
    }

    fn stdin_allowed(&self) -> bool {
        false
    }

    async fn ask(&self, _prompt: &str, _password: bool) -> Result<String, AskError> {
        Err(AskError::NoStdin)
    }

    fn cancellation(&self) -> CancellationToken {
        self.token.clone()
    }

    fn set_critical(&self, _critical: bool) {}
}

fn source_of(cell: &Value) -> String {
    match cell.get("source") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

fn tags_of(cell: &Value) -> Vec<&str> {
    cell.pointer("/metadata/tags")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `NAME=VALUE` split and checked; the value is kept exactly.
pub fn parse_parameter(raw: &str) -> Result<(String, String), String> {
    let (name, value) = raw
        .split_once('=')
        .ok_or_else(|| format!("-p takes NAME=VALUE, got '{raw}'; example: -p control=EC2.13"))?;
    if !crate::variables::is_name(name) {
        return Err(format!(
            "-p {raw}: '{name}' is not a variable name; accepted: a letter or _ then letters, digits or _"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

/// The injected cell's `%set` lines: each value one quoted word, `$` doubled so
/// it is never expanded again (as papermill-runbook writes them).
fn injected_source(parameters: &[(String, String)]) -> Result<String, ExecError> {
    let mut lines = vec!["# Parameters".to_string()];
    for (name, value) in parameters {
        let word = format!("{name}={}", value.replace('$', "$$"));
        // Quoted only when needed, as Python's shlex.quote does for papermill.
        let plain = !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_alphanumeric() || "_@%+=:,./-".contains(c));
        if plain {
            lines.push(format!("%set {word}"));
            continue;
        }
        let quoted = shlex::try_quote(&word).map_err(|_| {
            ExecError::Parameter(format!(
                "-p {name}: the value contains a NUL character, which no magic accepts"
            ))
        })?;
        lines.push(format!("%set {quoted}"));
    }
    Ok(lines.join("\n"))
}

fn cell_id(n: usize) -> String {
    format!("injected-parameters-{n}")
}

/// The nbformat outputs of a finished cell: what it showed, then its error.
fn nb_outputs(shown: &[Shown], execution_count: usize, error: Option<&MagicError>) -> Vec<Value> {
    let mut outputs: Vec<Value> = shown
        .iter()
        .map(|s| match s {
            Shown::Display(_, b) => json!({
                "output_type": "display_data",
                "data": Value::Object(b.to_mime_map()),
                "metadata": {},
            }),
            Shown::Stream(name, text) => json!({
                "output_type": "stream",
                "name": name,
                "text": text,
            }),
            Shown::Result(data) => json!({
                "output_type": "execute_result",
                "execution_count": execution_count,
                "data": data,
                "metadata": {},
            }),
        })
        .collect();
    if let Some(e) = error {
        outputs.push(json!({
            "output_type": "error",
            "ename": e.ename(),
            "evalue": e.evalue,
            "traceback": e.traceback(),
        }));
    }
    outputs
}

/// Reads what a cell's results say into the report.
fn tally(report: &mut ExecReport, bundles: &[Bundle]) {
    for b in bundles {
        let data = &b.json;
        if data.get("shown").is_some()
            && let Some(total) = data.get("total").and_then(Value::as_u64)
        {
            report.findings_read += total as usize;
        }
        if let Some(id) = data.pointer("/plan/id").and_then(Value::as_str) {
            report.plans_made.push(id.to_string());
        }
        let plan_id = data.get("plan_id").and_then(Value::as_str);
        match (plan_id, data.get("state").and_then(Value::as_str)) {
            (Some(id), Some("succeeded")) => report.plans_applied_unattended.push(id.to_string()),
            (Some(id), Some("not_approved")) => report.plans_refused.push(id.to_string()),
            (Some(id), Some("failed" | "drifted" | "cancelled")) => {
                report.plans_failed.push(id.to_string())
            }
            _ => {}
        }
    }
}

/// Runs the notebook and writes the executed copy (and the report, if asked).
pub async fn exec(options: &ExecOptions, mut session: Session) -> Result<ExecReport, ExecError> {
    let path = &options.notebook;
    let text = std::fs::read_to_string(path).map_err(|e| ExecError::Read {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let mut notebook: Value = serde_json::from_str(&text).map_err(|e| ExecError::NotANotebook {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if notebook.get("nbformat").and_then(Value::as_u64) != Some(4)
        || !notebook.get("cells").is_some_and(Value::is_array)
    {
        return Err(ExecError::NotANotebook {
            path: path.clone(),
            message: "no nbformat 4 \"cells\" list".to_string(),
        });
    }
    let mut report = ExecReport {
        notebook: path.display().to_string(),
        output: options.output.display().to_string(),
        started_at: Some(Utc::now()),
        parameters: options
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect(),
        ..ExecReport::default()
    };
    session.unattended = Some(crate::session::Unattended {
        allow_yes: options
            .parameters
            .iter()
            .any(|(k, v)| k == "approval" && v == "allow-yes"),
    });

    let cells = notebook
        .get_mut("cells")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| ExecError::NotANotebook {
            path: path.clone(),
            message: "no cells".to_string(),
        })?;
    if !options.parameters.is_empty() {
        let at = cells
            .iter()
            .position(|c| tags_of(c).contains(&"parameters"))
            .map_or(0, |i| i + 1);
        let cell = json!({
            "cell_type": "code",
            "id": cell_id(at),
            "metadata": {"tags": ["injected-parameters"]},
            "execution_count": null,
            "outputs": [],
            "source": injected_source(&options.parameters)?,
        });
        cells.insert(at, cell);
    }

    let mut failed = false;
    let mut count = 0;
    for (index, cell) in cells.iter_mut().enumerate() {
        if cell.get("cell_type").and_then(Value::as_str) != Some("code") {
            continue;
        }
        let source = source_of(cell);
        if failed {
            cell["outputs"] = json!([]);
            cell["execution_count"] = Value::Null;
            continue;
        }
        count += 1;
        let out = Arc::new(CellOutput::default());
        let result = if source.trim().is_empty() {
            Ok(())
        } else {
            session.next_execution(&source);
            // A bug in one magic ends that cell, not the run's report.
            AssertUnwindSafe(magics::run_cell(&source, &mut session, out.as_ref()))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Err(MagicError::new(
                        crate::error::ErrorKind::Kernel,
                        "internal error: the cell panicked; please report it with the cell",
                    ))
                })
        };
        let shown = out.shown();
        let bundles: Vec<Bundle> = shown
            .iter()
            .filter_map(|s| match s {
                Shown::Display(_, b) => Some(b.clone()),
                _ => None,
            })
            .collect();
        tally(&mut report, &bundles);
        let error = result.err();
        cell["outputs"] = Value::Array(nb_outputs(&shown, count, error.as_ref()));
        cell["execution_count"] = json!(count);
        let first_line = source.lines().next().unwrap_or_default().to_string();
        report.cells.push(CellReport {
            index,
            source: first_line.clone(),
            status: if error.is_some() { "error" } else { "ok" },
            ename: error.as_ref().map(|e| e.ename().to_string()),
            evalue: error.as_ref().map(|e| e.evalue.clone()),
        });
        if let Some(e) = error {
            report.errors.push(format!(
                "cell {index} ({first_line}): {}: {}",
                e.ename(),
                e.evalue
            ));
            failed = true;
        }
    }
    report.succeeded = !failed;
    report.finished_at = Some(Utc::now());
    if let Some(meta) = notebook.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "runbook_exec".to_string(),
            json!({"parameters": report.parameters, "succeeded": report.succeeded,
                   "started_at": report.started_at, "finished_at": report.finished_at}),
        );
    }
    write_json(&options.output, &notebook)?;
    if let Some(path) = &options.report {
        write_json(path, &report)?;
    }
    Ok(report)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ExecError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ExecError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    std::fs::write(path, text + "\n").map_err(|e| ExecError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The default place for the executed copy: beside the notebook, `NAME.exec.ipynb`.
pub fn default_output(notebook: &Path) -> PathBuf {
    let stem = notebook
        .file_stem()
        .map_or_else(|| "notebook".into(), |s| s.to_string_lossy().to_string());
    notebook.with_file_name(format!("{stem}.exec.ipynb"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_and_quoted_like_papermills() {
        assert_eq!(
            parse_parameter("control=EC2.13").unwrap(),
            ("control".into(), "EC2.13".into())
        );
        assert!(
            parse_parameter("control")
                .unwrap_err()
                .contains("NAME=VALUE")
        );
        assert!(
            parse_parameter("9x=1")
                .unwrap_err()
                .contains("not a variable name")
        );
        let source = injected_source(&[
            ("control".into(), "EC2.13".into()),
            ("note".into(), "it's $5 \"each\"".into()),
        ])
        .unwrap();
        let lines: Vec<&str> = source.lines().collect();
        assert_eq!(lines[..2], ["# Parameters", "%set control=EC2.13"]);
        // The kernel splits the line back into the one word, `$` doubled.
        let words = shlex::split(lines[2].trim_start_matches("%set ")).unwrap();
        assert_eq!(words, ["note=it's $$5 \"each\""]);
    }
}
