//! The evcxr side of Rust cells.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evcxr::{CommandContext, EvalContext, EvalOutputs};
use jupyter_protocol::Stdio;
use serde_json::{Map, Value};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::{Completion, refuse_nul};
use crate::error::{ErrorKind, MagicError};
use crate::output::{DisplayHandle, Output};
use crate::render::Bundle;
use crate::render::html;
use crate::session::Session;

/// The crate Rust cells read the session with, embedded so that an installed
/// kernel can add it without the source tree.
const CELLS_MANIFEST: &str = include_str!("../../../runbook-cells/Cargo.toml");
const CELLS_LIB: &str = include_str!("../../../runbook-cells/src/lib.rs");
/// A cell that names this gets the crate added first (`:dep`).
const CELLS_CRATE: &str = "runbook_cells";

/// A compile or run shorter than this shows no progress line.
const PROGRESS_AFTER: Duration = Duration::from_secs(2);
/// After the evaluation returns, how long a quiet stream counts as drained.
/// evcxr returns only once stdout is passed on; stderr comes through its own
/// pipe and thread, written before the child reports the end, so it trails by
/// microseconds. Every cell waits this long once: at 30 ms the next-cell
/// latency was 1.12x evcxr_jupyter's, at 5 ms 1.02x (bench_rust_cells.py).
const STREAM_SETTLE: Duration = Duration::from_millis(5);

/// Rust evaluation for one kernel session, started by the first Rust cell.
#[derive(Default)]
pub struct RustCells {
    evaluator: Option<Evaluator>,
    /// Said at the top of the next Rust cell: what a stop or crash lost.
    lost: Option<String>,
    files: Option<Files>,
    /// The session generation (magic cells run) the snapshot was written for.
    written_for: Option<u64>,
    cells_crate_added: bool,
}

struct Evaluator {
    context: Arc<Mutex<CommandContext>>,
    streams: UnboundedReceiver<(Stdio, String)>,
}

/// The per-kernel private directory: the session snapshot and the embedded
/// `runbook-cells` crate. Removed when the kernel ends.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn create() -> std::io::Result<Files> {
        // TempDir is created 0700: the snapshot holds findings.
        let dir = tempfile::Builder::new()
            .prefix("runbook-rust-cells-")
            .tempdir()?;
        let crate_dir = dir.path().join("runbook-cells");
        std::fs::create_dir_all(crate_dir.join("src"))?;
        std::fs::write(crate_dir.join("Cargo.toml"), CELLS_MANIFEST)?;
        std::fs::write(crate_dir.join("src").join("lib.rs"), CELLS_LIB)?;
        Ok(Files { dir })
    }

    fn snapshot(&self) -> PathBuf {
        self.dir.path().join("session.json")
    }

    fn cells_crate(&self) -> PathBuf {
        self.dir.path().join("runbook-cells")
    }
}

fn kernel_error(what: &str, e: impl std::fmt::Display) -> MagicError {
    MagicError::new(ErrorKind::RustError, format!("{what}: {e}"))
}

impl RustCells {
    fn files(&mut self) -> Result<&Files, MagicError> {
        if self.files.is_none() {
            let files = Files::create()
                .map_err(|e| kernel_error("cannot create the Rust cells' private directory", e))?;
            self.files = Some(files);
        }
        self.files
            .as_ref()
            .ok_or_else(|| kernel_error("Rust cells", "no private directory"))
    }

    /// Completions from evcxr (rust-analyzer), once Rust has started; none while
    /// a cell runs.
    pub fn complete(&self, code: &str, cursor: usize) -> Option<Completion> {
        let evaluator = self.evaluator.as_ref()?;
        let mut context = evaluator.context.try_lock().ok()?;
        let position = super::byte_offset(code, cursor);
        let found = context.completions(code, position).ok()?;
        Some(Completion {
            matches: found.completions.into_iter().map(|c| c.code).collect(),
            cursor_start: super::code_points(code, found.start_offset),
            cursor_end: super::code_points(code, found.end_offset),
        })
    }

    /// What rust-analyzer knows of the name at the cursor, as plain text (its
    /// HTML form is left out: documentation may hold images).
    pub fn inspect(&self, code: &str, cursor: usize) -> Option<String> {
        let evaluator = self.evaluator.as_ref()?;
        let mut context = evaluator.context.try_lock().ok()?;
        let (plain, _html) = context
            .hover_at(code, super::byte_offset(code, cursor))
            .ok()?;
        (plain != "No documentation found" && !plain.trim().is_empty()).then_some(plain)
    }
}

/// Runs one Rust cell.
pub async fn run(code: &str, session: &mut Session, out: &dyn Output) -> Result<(), MagicError> {
    refuse_nul(code)?;
    write_snapshot(session)?;
    if let Some(lost) = session.rust.lost.take() {
        out.stream(Stdio::Stderr, &format!("{lost}\n"));
    }
    if session.rust.evaluator.is_none() {
        let snapshot = session.rust.files()?.snapshot();
        let evaluator = start(&snapshot, out).await?;
        session.rust.evaluator = Some(evaluator);
    }
    if code.contains(CELLS_CRATE) && !session.rust.cells_crate_added {
        let path = session.rust.files()?.cells_crate();
        let dep = format!(
            ":dep runbook_cells = {{ package = \"runbook-cells\", path = {} }}",
            Value::String(path.display().to_string())
        );
        evaluate(session, &dep, out, "adding runbook_cells").await?;
        session.rust.cells_crate_added = true;
    }
    evaluate(session, code, out, "compiling").await
}

/// Rewrites the session snapshot when a magic ran since it was last written.
fn write_snapshot(session: &mut Session) -> Result<(), MagicError> {
    let generation = session.magic_cells_run;
    if session.rust.written_for == Some(generation) {
        return Ok(());
    }
    let snapshot = super::snapshot(session);
    let path = session.rust.files()?.snapshot();
    let text = serde_json::to_vec(&snapshot)
        .map_err(|e| kernel_error("cannot write the session snapshot", e))?;
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|e| kernel_error("cannot write the session snapshot", e))?;
    session.rust.written_for = Some(generation);
    Ok(())
}

/// Jupyter servers started outside a login shell (SageMaker, desktop launchers)
/// often lack `~/.cargo/bin` on PATH even where rustup installed there; Rust
/// cells then find cargo there too. Must run before any thread starts.
pub fn put_cargo_on_path() {
    if which::which("cargo").is_ok() {
        return;
    }
    let bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|home| home.join(".cargo")))
        .map(|home| home.join("bin"));
    let Some(bin) = bin.filter(|b| b.join("cargo").is_file()) else {
        return;
    };
    let mut paths: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    paths.push(bin);
    if let Ok(joined) = std::env::join_paths(paths) {
        // SAFETY: main calls this first, before any other thread exists.
        unsafe { std::env::set_var("PATH", joined) };
    }
}

/// What is missing of the toolchain evcxr runs, if anything.
fn missing_toolchain() -> Option<String> {
    // rustc links each cell's crate with the system C compiler.
    let missing: Vec<&str> = ["cargo", "rustc", "cc"]
        .into_iter()
        .filter(|tool| which::which(tool).is_err())
        .collect();
    match missing.as_slice() {
        [] => None,
        [one] => Some(format!("{one} was")),
        _ => Some(format!("{} were", missing.join(" and "))),
    }
}

async fn start(snapshot: &Path, out: &dyn Output) -> Result<Evaluator, MagicError> {
    if let Some(missing) = missing_toolchain() {
        return Err(MagicError::new(
            ErrorKind::NoRustToolchain,
            format!("Rust cells need cargo, rustc and a C linker (cc) on the kernel's PATH, and {missing} not found"),
        )
        .with_detail([
            "Install Rust with rustup (https://rustup.rs) and a C compiler (Debian: apt install gcc; Amazon Linux: yum install gcc), make sure ~/.cargo/bin is on PATH, then restart the kernel.".to_string(),
            "Magics work without it.".to_string(),
        ]));
    }
    let mut command = std::process::Command::new(
        std::env::current_exe().map_err(|e| kernel_error("cannot find the kernel binary", e))?,
    );
    command.env(runbook_cells::SNAPSHOT_ENV, snapshot);
    // A panic's message is the error; its backtrace would be the child's internals.
    if std::env::var_os("RUST_BACKTRACE").is_none_or(|v| v == "1") {
        command.env("RUST_BACKTRACE", "0");
    }
    let started = Instant::now();
    let mut job = tokio::task::spawn_blocking(move || {
        let (eval, outputs) = EvalContext::with_subprocess_command(command)?;
        let mut context = CommandContext::with_eval_context(eval);
        // The user's own evcxr settings (init.evcxr, prelude.rs), as evcxr_jupyter does.
        context.execute(":load_config --quiet")?;
        Ok::<_, evcxr::Error>((context, outputs))
    });
    let handle = out.display(progress(
        "Starting Rust (evcxr): compiling the first crate",
        0,
    ));
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let joined = loop {
        tokio::select! {
            joined = &mut job => break joined,
            _ = ticker.tick() => out.update(&handle, progress(
                "Starting Rust (evcxr): compiling the first crate",
                started.elapsed().as_secs(),
            )),
        }
    };
    let (context, outputs) = match joined {
        Ok(Ok(started)) => started,
        Ok(Err(e)) => {
            out.update(&handle, progress_done(""));
            return Err(MagicError::new(
                ErrorKind::RustError,
                format!(
                    "Rust evaluation could not start: {}",
                    strip_ansi(&e.to_string())
                ),
            ));
        }
        Err(e) => {
            out.update(&handle, progress_done(""));
            return Err(kernel_error("Rust evaluation could not start", e));
        }
    };
    out.update(
        &handle,
        progress_done(&format!(
            "Rust (evcxr) started in {:.1} s",
            started.elapsed().as_secs_f64()
        )),
    );
    let (sender, streams) = unbounded_channel();
    forward(outputs.stdout, Stdio::Stdout, sender.clone());
    forward(outputs.stderr, Stdio::Stderr, sender);
    Ok(Evaluator {
        context: Arc::new(Mutex::new(context)),
        streams,
    })
}

/// Moves evcxr's lines (a crossbeam channel, filled by its threads) to the
/// kernel's async side. Ends when evcxr drops its end.
fn forward(
    lines: crossbeam_channel::Receiver<String>,
    name: Stdio,
    to: UnboundedSender<(Stdio, String)>,
) {
    std::thread::spawn(move || {
        for line in lines.iter() {
            if to.send((name.clone(), line)).is_err() {
                break;
            }
        }
    });
}

fn progress(what: &str, seconds: u64) -> Bundle {
    let text = format!("{what}… {seconds} s");
    Bundle::html(
        text.clone(),
        format!("<p><em>{}</em></p>", html::text(&text)),
        serde_json::json!({"progress": text}),
    )
}

fn progress_done(text: &str) -> Bundle {
    let rich = if text.is_empty() {
        String::new()
    } else {
        format!("<p><small>{}</small></p>", html::text(text))
    };
    Bundle::html(
        text,
        rich,
        serde_json::json!({"progress": text, "done": true}),
    )
}

fn same_stream(a: &Stdio, b: &Stdio) -> bool {
    matches!(
        (a, b),
        (Stdio::Stdout, Stdio::Stdout) | (Stdio::Stderr, Stdio::Stderr)
    )
}

/// Sends what arrived, one stream message per run of lines of one name.
fn flush_lines(batch: &mut Vec<(Stdio, String)>, out: &dyn Output) {
    let mut run: Option<(Stdio, String)> = None;
    for (name, line) in batch.drain(..) {
        match &mut run {
            Some((current, text)) if same_stream(current, &name) => {
                text.push_str(&line);
                text.push('\n');
            }
            _ => {
                if let Some((current, text)) = run.take() {
                    out.stream(current, &text);
                }
                run = Some((name, format!("{line}\n")));
            }
        }
    }
    if let Some((name, text)) = run {
        out.stream(name, &text);
    }
}

/// What a cell printed to stderr, kept to recognise a panic.
#[derive(Default)]
struct Stderr(Vec<String>);

impl Stderr {
    /// The panic message, if the user's code panicked: the runtime prints
    /// "thread '…' panicked at src/lib.rs:L:C:" and then the message.
    fn panic_message(&self) -> Option<String> {
        let start = self
            .0
            .iter()
            .position(|l| l.starts_with("thread '") && l.contains("panicked at"))?;
        let message: Vec<&str> = self.0[start + 1..]
            .iter()
            .map(String::as_str)
            .take_while(|l| !l.starts_with("note: ") && !l.starts_with("stack backtrace:"))
            .collect();
        let message = message.join("\n");
        Some(if message.trim().is_empty() {
            "explicit panic".to_string()
        } else {
            message
        })
    }
}

async fn evaluate(
    session: &mut Session,
    code: &str,
    out: &dyn Output,
    doing: &str,
) -> Result<(), MagicError> {
    let Some(evaluator) = session.rust.evaluator.as_mut() else {
        return Err(kernel_error("Rust cells", "evaluation has not started"));
    };
    let (child, variables_before) = {
        let context = evaluator
            .context
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (context.process_handle(), variables(&context))
    };
    let context = evaluator.context.clone();
    let source = code.to_string();
    let mut job = tokio::task::spawn_blocking(move || {
        let mut context = context
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        context.execute(&source)
    });
    // The interrupt is ours to handle: stopping the child ends the evaluation
    // cleanly; dropping it would leave evcxr running with the context locked.
    out.set_critical(true);
    let token = out.cancellation();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    let mut progress_handle: Option<DisplayHandle> = None;
    let mut stderr = Stderr::default();
    let mut interrupted = false;
    let mut batch = Vec::new();
    let joined = loop {
        tokio::select! {
            joined = &mut job => break joined,
            Some(line) = evaluator.streams.recv() => {
                take_line(line, &mut stderr, &mut batch);
                while let Ok(line) = evaluator.streams.try_recv() {
                    take_line(line, &mut stderr, &mut batch);
                }
                flush_lines(&mut batch, out);
            }
            _ = token.cancelled(), if !interrupted => {
                interrupted = true;
                let killed = child.lock().map(|mut c| c.kill());
                if let Ok(Err(e)) = killed {
                    tracing::warn!("interrupt: could not stop the Rust child process: {e}");
                }
            }
            _ = ticker.tick() => {
                if started.elapsed() >= PROGRESS_AFTER {
                    let what = if interrupted { "stopping" } else { doing };
                    let bundle = progress(what, started.elapsed().as_secs());
                    match &progress_handle {
                        Some(handle) => out.update(handle, bundle),
                        None => progress_handle = Some(out.display(bundle)),
                    }
                }
            }
        }
    };
    // stderr comes through its own pipe: wait until the streams fall quiet.
    while let Ok(Some(line)) = tokio::time::timeout(STREAM_SETTLE, evaluator.streams.recv()).await {
        take_line(line, &mut stderr, &mut batch);
    }
    flush_lines(&mut batch, out);
    if let Some(handle) = &progress_handle {
        out.update(handle, progress_done(""));
    }
    out.set_critical(false);
    let variables_after = evaluator
        .context
        .lock()
        .map(|c| variables(&c))
        .unwrap_or_default();
    let outcome = match joined {
        Ok(outcome) => outcome,
        Err(e) => {
            return Err(kernel_error(
                "the Rust evaluation failed inside the kernel",
                e,
            ));
        }
    };
    match outcome {
        Ok(outputs) => {
            if let Some(message) = stderr.panic_message() {
                return Err(MagicError::new(
                    ErrorKind::Panic,
                    format!("the cell panicked: {message}"),
                )
                .with_detail([survivors(&variables_after)]));
            }
            show_result(outputs, out);
            Ok(())
        }
        Err(evcxr::Error::CompilationErrors(errors)) => Err(compile_error(code, &errors)),
        Err(evcxr::Error::SubprocessTerminated(why)) => {
            let lost = lost_state(&variables_before);
            session.rust.lost = Some(format!(
                "Note: the previous Rust cell {}, so the Rust process restarted. {lost}",
                if interrupted {
                    "was interrupted"
                } else {
                    "ended its process"
                }
            ));
            if interrupted {
                Err(MagicError::new(
                    ErrorKind::Interrupted,
                    "the Rust cell was interrupted: its process was stopped",
                )
                .with_detail([lost]))
            } else {
                Err(MagicError::new(
                    ErrorKind::RustError,
                    format!(
                        "the Rust process ended while running the cell: {}",
                        strip_ansi(why.trim())
                    ),
                )
                .with_detail([lost]))
            }
        }
        Err(other) => Err(MagicError::new(
            ErrorKind::RustError,
            strip_ansi(other.to_string().trim()),
        )),
    }
}

fn take_line(line: (Stdio, String), stderr: &mut Stderr, batch: &mut Vec<(Stdio, String)>) {
    if same_stream(&line.0, &Stdio::Stderr) {
        stderr.0.push(line.1.clone());
    }
    batch.push(line);
}

/// The session's variables as `name: type`.
fn variables(context: &CommandContext) -> Vec<String> {
    context
        .variables_and_types()
        .map(|(name, ty)| format!("{name}: {ty}"))
        .collect()
}

fn lost_state(variables: &[String]) -> String {
    if variables.is_empty() {
        "No variables were defined, so none were lost; functions, types, `use` and `:dep` are kept."
            .to_string()
    } else {
        format!(
            "Variables lost: {}. Functions, types, `use` and `:dep` are kept.",
            variables.join(", ")
        )
    }
}

fn survivors(variables: &[String]) -> String {
    if variables.is_empty() {
        "No variables survive; the ones this cell defined were dropped.".to_string()
    } else {
        format!(
            "Variables kept: {}. The ones this cell defined were dropped.",
            variables.join(", ")
        )
    }
}

/// The cell's value as `execute_result`; JSON types are sent as JSON.
fn show_result(outputs: EvalOutputs, out: &dyn Output) {
    if outputs.content_by_mime_type.is_empty() {
        return;
    }
    let mut data = Map::new();
    for (mime, content) in outputs.content_by_mime_type {
        let value = if mime.contains("json") {
            serde_json::from_str(&content).unwrap_or(Value::String(content))
        } else {
            Value::String(content)
        };
        data.insert(mime, value);
    }
    out.result(data);
}

/// All compile errors as one error: rustc's message and the cell's offending
/// line marked; never the temporary crate's paths or line numbers.
fn compile_error(code: &str, errors: &[evcxr::CompilationError]) -> MagicError {
    let Some(first) = errors.first() else {
        return MagicError::new(ErrorKind::CompileError, "the cell did not compile");
    };
    let mut evalue = first.message();
    if errors.len() > 1 {
        evalue.push_str(&format!(" (and {} more)", errors.len() - 1));
    }
    let mut detail = Vec::new();
    for error in errors {
        let report = error
            .build_report("cell".to_string(), code.to_string(), evcxr::Theme::Light)
            .and_then(|report| {
                let mut text = Vec::new();
                report
                    .write(
                        ariadne::sources([("cell".to_string(), code.to_string())]),
                        &mut text,
                    )
                    .ok()
                    .map(|()| String::from_utf8_lossy(&text).into_owned())
            });
        match report {
            Some(text) => detail.extend(text.lines().map(str::to_string)),
            // ariadne reports only ASCII cells; others get the line and a caret.
            None => {
                detail.push(format!("error: {}", error.message()));
                for spanned in error.spanned_messages() {
                    detail.extend(spanned.lines.iter().cloned());
                    match &spanned.span {
                        Some(span) => detail.push(format!(
                            "{}{} {}",
                            " ".repeat(span.start_column.saturating_sub(1)),
                            "^".repeat(span.end_column.saturating_sub(span.start_column).max(1)),
                            spanned.label
                        )),
                        None if !spanned.label.is_empty() => detail.push(spanned.label.clone()),
                        None => {}
                    }
                }
                detail.extend(error.help().into_iter().map(|h| format!("help: {h}")));
            }
        }
    }
    MagicError::new(ErrorKind::CompileError, evalue).with_detail(detail)
}

/// Text without terminal colour codes (evcxr colours some of its messages).
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, ended by a letter.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_crate_is_the_workspace_one() {
        assert!(CELLS_MANIFEST.contains("name = \"runbook-cells\""));
        assert!(CELLS_LIB.contains("pub fn findings()"));
        assert!(CELLS_CRATE.replace('_', "-") == "runbook-cells");
    }

    #[test]
    fn strips_colour_codes() {
        assert_eq!(strip_ansi("\u{1b}[31merror\u{1b}[0m: x"), "error: x");
        assert_eq!(strip_ansi("plain 日本"), "plain 日本");
    }

    #[test]
    fn recognises_a_panic_and_its_message() {
        let lines = |l: &[&str]| Stderr(l.iter().map(|s| s.to_string()).collect());
        let panicked = lines(&[
            "",
            "thread '<unnamed>' (6323) panicked at src/lib.rs:114:1:",
            "boom",
            "note: run with `RUST_BACKTRACE=1`",
        ]);
        assert_eq!(panicked.panic_message().as_deref(), Some("boom"));
        assert_eq!(lines(&["warning: x", "all fine"]).panic_message(), None);
    }
}
