//! Magics: cell text -> [`split_cell`] -> [`parse_call`] (clap) -> a typed
//! [`MagicCall`] -> its handler, which gets a [`Context`] (session and output).
//! Each magic is one file; they share steps through `context` and `workflow`,
//! never by importing each other (a test below checks).

mod accounts;
mod approve;
mod ask;
pub mod assist;
mod audit;
mod config;
mod export;
mod finding;
mod findings;
mod help;
mod kb;
mod recover;
mod remediate;
mod rollback;
mod rollout;
mod set;
mod sleep;
mod summarize;
mod version;

use clap::{ColorChoice, CommandFactory, FromArgMatches};

use crate::context::Context;
pub use crate::error::{ErrorKind, MagicError};
use crate::output::Output;
use crate::render::{Bundle, html};
use crate::session::Session;

/// What the kernel knows about each magic, for help, completion and inspection.
#[derive(Debug)]
pub struct MagicInfo {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    /// Whether `%%name` (with a body) is accepted.
    pub cell: bool,
    args: fn() -> clap::Command,
}

impl MagicInfo {
    /// The clap command with the settings every magic shares.
    pub fn command(&self) -> clap::Command {
        self.command_as(self.name)
    }

    /// The command as invoked under `name` (the magic's name or an alias), so
    /// usage lines show what the user typed.
    fn command_as(&self, name: &str) -> clap::Command {
        (self.args)()
            .name(format!("%{name}"))
            .bin_name(format!("%{name}"))
            .color(ColorChoice::Never)
            .disable_version_flag(true)
    }

    pub fn summary(&self) -> String {
        self.command()
            .get_about()
            .map(|a| a.to_string())
            .unwrap_or_default()
    }

    pub fn long_help(&self) -> String {
        self.long_help_as(self.name)
    }

    fn long_help_as(&self, name: &str) -> String {
        let mut help = self.command_as(name).render_long_help().to_string();
        if !self.aliases.is_empty() || name != self.name {
            let names: Vec<String> = std::iter::once(self.name)
                .chain(self.aliases.iter().copied())
                .map(|n| format!("%{n}"))
                .collect();
            help.push_str(&format!("\nAlso known as: {}\n", names.join(", ")));
        }
        help
    }

    fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

pub static MAGICS: &[MagicInfo] = &[
    MagicInfo {
        name: "help",
        aliases: &["lsmagic"],
        cell: false,
        args: help::HelpArgs::command,
    },
    MagicInfo {
        name: "findings",
        aliases: &[],
        cell: false,
        args: findings::FindingsArgs::command,
    },
    MagicInfo {
        name: "accounts",
        aliases: &[],
        cell: false,
        args: accounts::AccountsArgs::command,
    },
    MagicInfo {
        name: "finding",
        aliases: &[],
        cell: false,
        args: finding::FindingArgs::command,
    },
    MagicInfo {
        name: "summarize",
        aliases: &[],
        cell: false,
        args: summarize::SummarizeArgs::command,
    },
    MagicInfo {
        name: "remediate",
        aliases: &[],
        cell: true,
        args: remediate::RemediateArgs::command,
    },
    MagicInfo {
        name: "approve",
        aliases: &[],
        cell: false,
        args: approve::ApproveArgs::command,
    },
    MagicInfo {
        name: "ask",
        aliases: &[],
        cell: true,
        args: ask::AskArgs::command,
    },
    MagicInfo {
        name: "kb",
        aliases: &[],
        cell: false,
        args: kb::KbArgs::command,
    },
    MagicInfo {
        name: "export",
        aliases: &[],
        cell: false,
        args: export::ExportArgs::command,
    },
    MagicInfo {
        name: "rollback",
        aliases: &[],
        cell: false,
        args: rollback::RollbackArgs::command,
    },
    MagicInfo {
        name: "rollout",
        aliases: &[],
        cell: false,
        args: rollout::RolloutArgs::command,
    },
    MagicInfo {
        name: "recover",
        aliases: &[],
        cell: false,
        args: recover::RecoverArgs::command,
    },
    MagicInfo {
        name: "audit",
        aliases: &[],
        cell: false,
        args: audit::AuditArgs::command,
    },
    MagicInfo {
        name: "config",
        aliases: &[],
        cell: true,
        args: config::ConfigArgs::command,
    },
    MagicInfo {
        name: "set",
        aliases: &[],
        cell: false,
        args: set::SetArgs::command,
    },
    MagicInfo {
        name: "version",
        aliases: &[],
        cell: false,
        args: version::VersionArgs::command,
    },
    MagicInfo {
        name: "sleep",
        aliases: &[],
        cell: false,
        args: sleep::SleepArgs::command,
    },
];

pub fn find_magic(name: &str) -> Option<&'static MagicInfo> {
    MAGICS.iter().find(|m| m.answers_to(name))
}

/// A magic with its arguments parsed into its own type.
#[derive(Debug)]
pub enum MagicCall {
    Help(help::HelpArgs),
    Findings(findings::FindingsArgs),
    Finding(finding::FindingArgs),
    Accounts(accounts::AccountsArgs),
    Summarize(summarize::SummarizeArgs),
    Remediate(remediate::RemediateArgs, Option<String>),
    Approve(approve::ApproveArgs),
    Ask(ask::AskArgs, Option<String>),
    Kb(kb::KbArgs),
    Export(export::ExportArgs),
    Rollback(rollback::RollbackArgs),
    Rollout(rollout::RolloutArgs),
    Recover(recover::RecoverArgs),
    Audit(audit::AuditArgs),
    Config(config::ConfigArgs, Option<String>),
    Set(set::SetArgs),
    Version(version::VersionArgs),
    Sleep(sleep::SleepArgs),
}

/// One magic as written in the cell, before its arguments are parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub name: String,
    pub args: Vec<String>,
    /// The body of a cell magic (`%%name`), if this is one.
    pub body: Option<String>,
}

/// Why a cell could not be split into magics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    /// More input would complete it (an open quote, a trailing backslash).
    Incomplete(String),
    /// A line that is not a magic.
    PlainCode(String),
    /// A malformed magic line.
    Malformed(String),
    /// Magic lines and Rust lines in one cell: (line index, line) of the first of each.
    Mixed {
        magic: (usize, String),
        rust: (usize, String),
    },
}

/// What a cell holds: magics, or Rust for evcxr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    Magics,
    Rust,
}

/// Neither magic nor Rust: blank lines and `#` comments (but not Rust's `#[` and
/// `#![` attributes).
fn is_neutral(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || (t.starts_with('#') && !t.starts_with("#[") && !t.starts_with("#!["))
}

/// A cell with no magic line is Rust; one with both is an error. A cell magic's
/// body and a magic's continuation lines belong to the magic.
pub fn cell_kind(code: &str) -> Result<CellKind, SplitError> {
    let mut magic = None;
    let mut rust = None;
    let mut continued = false;
    for (index, line) in code.lines().enumerate() {
        let continues = line.trim_end().ends_with('\\');
        if std::mem::replace(&mut continued, false) {
            continued = continues;
            continue;
        }
        if is_neutral(line) {
            continue;
        }
        if line.trim_start().starts_with('%') {
            if magic.is_none() && rust.is_none() && line.trim_start().starts_with("%%") {
                return Ok(CellKind::Magics);
            }
            magic.get_or_insert((index, line.to_string()));
            continued = continues;
        } else {
            rust.get_or_insert((index, line.to_string()));
        }
    }
    match (magic, rust) {
        (Some(magic), Some(rust)) => Err(SplitError::Mixed { magic, rust }),
        (None, Some(_)) => Ok(CellKind::Rust),
        _ => Ok(CellKind::Magics),
    }
}

/// Whether the cell is Rust (for completion and inspection).
pub fn is_rust_cell(code: &str) -> bool {
    matches!(cell_kind(code), Ok(CellKind::Rust))
}

impl From<SplitError> for MagicError {
    fn from(e: SplitError) -> MagicError {
        match e {
            SplitError::Incomplete(why) | SplitError::Malformed(why) => MagicError::usage(why),
            SplitError::PlainCode(line) => MagicError::usage(format!(
                "this line of a magic cell is not a magic: {}",
                excerpt(&line)
            ))
            .with_detail(["Start each line with a magic such as %findings; %help lists them all.".to_string()]),
            SplitError::Mixed { magic, rust } => MagicError::usage(format!(
                "this cell mixes magics and Rust: line {} is the magic {}, line {} is Rust ({}); a cell is either magics or Rust",
                magic.0 + 1,
                excerpt(&magic.1),
                rust.0 + 1,
                excerpt(&rust.1)
            ))
            .with_detail(["Put the magics and the Rust code in separate cells.".to_string()]),
        }
    }
}

fn excerpt(line: &str) -> String {
    let trimmed = line.trim();
    let mut short: String = trimmed.chars().take(60).collect();
    if trimmed.chars().count() > 60 {
        short.push('…');
    }
    format!("'{short}'")
}

fn is_ignorable(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// Joins lines that end with a backslash to the next one.
fn join_continuations(code: &str) -> Result<Vec<String>, SplitError> {
    let mut lines = Vec::new();
    let mut pending = String::new();
    for line in code.lines() {
        if let Some(stripped) = line.trim_end().strip_suffix('\\') {
            pending.push_str(stripped);
            pending.push(' ');
        } else {
            pending.push_str(line);
            lines.push(std::mem::take(&mut pending));
        }
    }
    if !pending.is_empty() {
        return Err(SplitError::Incomplete(
            "the last line ends with a backslash, so it continues on a line that is not there"
                .into(),
        ));
    }
    Ok(lines)
}

fn split_magic_line(line: &str, prefix: &str) -> Result<(String, Vec<String>), SplitError> {
    let rest = line.trim_start().trim_start_matches(prefix);
    let (name, args) = rest
        .split_once(char::is_whitespace)
        .map_or((rest, ""), |(n, a)| (n, a));
    if name.is_empty() {
        return Err(SplitError::Malformed(format!(
            "a magic name must follow {prefix}, e.g. {prefix}help"
        )));
    }
    if args.contains('\0') {
        return Err(SplitError::Malformed(
            "arguments contain a NUL character, which no magic accepts".into(),
        ));
    }
    // A question is prose: `%ask What's open?` must not be read as an open quote,
    // so the words of %ask and %kb are split on whitespace only.
    if name == "ask" || name == "kb" {
        return Ok((
            name.to_string(),
            args.split_whitespace().map(str::to_string).collect(),
        ));
    }
    let args = shlex::split(args).ok_or_else(|| {
        SplitError::Incomplete(format!(
            "unterminated quote in the arguments of {prefix}{name}; close the quote"
        ))
    })?;
    Ok((name.to_string(), args))
}

/// Splits a cell into magic invocations: either one cell magic (`%%name args` then a
/// body) or line magics, one per line. Blank lines and `#` comments are skipped.
pub fn split_cell(code: &str) -> Result<Vec<Invocation>, SplitError> {
    let mut lines = code
        .lines()
        .enumerate()
        .skip_while(|(_, l)| is_ignorable(l));
    let Some((first_index, first)) = lines.next() else {
        return Ok(Vec::new());
    };
    if first.trim_start().starts_with("%%") {
        let (name, args) = split_magic_line(first, "%%")?;
        let body: Vec<&str> = code.lines().skip(first_index + 1).collect();
        return Ok(vec![Invocation {
            name,
            args,
            body: Some(body.join("\n")),
        }]);
    }
    let mut invocations = Vec::new();
    for line in join_continuations(code)? {
        if is_ignorable(&line) {
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with("%%") {
            return Err(SplitError::Malformed(
                "a cell magic (%%name) must be on the first line of the cell".into(),
            ));
        }
        if !trimmed.starts_with('%') {
            return Err(SplitError::PlainCode(line));
        }
        let (name, args) = split_magic_line(&line, "%")?;
        invocations.push(Invocation {
            name,
            args,
            body: None,
        });
    }
    Ok(invocations)
}

/// The outcome of parsing an invocation's arguments.
#[derive(Debug)]
pub enum Parsed {
    Call(Box<MagicCall>),
    /// `--help` was asked for: show the magic's help, under the name used.
    Help(&'static MagicInfo, String),
}

fn unknown_magic(name: &str) -> MagicError {
    let known: Vec<String> = MAGICS
        .iter()
        .flat_map(|m| std::iter::once(m.name).chain(m.aliases.iter().copied()))
        .map(|n| format!("%{n}"))
        .collect();
    let nearest = MAGICS
        .iter()
        .flat_map(|m| std::iter::once(m.name).chain(m.aliases.iter().copied()))
        .map(|candidate| (strsim::damerau_levenshtein(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= 3)
        .min();
    let hint = nearest.map_or(String::new(), |(_, n)| format!(" Did you mean %{n}?"));
    MagicError::new(
        ErrorKind::UnknownMagic,
        format!(
            "unknown magic %{}.{hint} Known magics: {}",
            shorten_name(name),
            known.join(", ")
        ),
    )
}

/// Shortens an unknown name for messages so a huge argument cannot flood the output.
fn shorten_name(name: &str) -> String {
    name.chars().take(40).collect()
}

fn parse_args<T: FromArgMatches>(
    info: &MagicInfo,
    invoked: &str,
    args: &[String],
) -> Result<Option<T>, MagicError> {
    let argv = std::iter::once(format!("%{invoked}")).chain(args.iter().cloned());
    let matches = match info.command_as(invoked).try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => return Ok(None),
        Err(e) => return Err(clap_error(e)),
    };
    T::from_arg_matches(&matches).map(Some).map_err(clap_error)
}

fn clap_error(e: clap::Error) -> MagicError {
    let rendered = e.render().to_string();
    let lines: Vec<&str> = rendered.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut evalue = lines
        .first()
        .unwrap_or(&"invalid arguments")
        .trim_start_matches("error: ")
        .to_string();
    // Keep what is accepted next to the complaint, not only in the traceback.
    if let Some(accepted) = lines
        .iter()
        .find(|l| l.trim_start().starts_with("[possible values"))
    {
        evalue.push(' ');
        evalue.push_str(accepted.trim());
    }
    MagicError::usage(evalue).with_detail(lines.iter().skip(1).map(|l| l.to_string()))
}

/// Parses one invocation's arguments with clap into its typed call.
pub fn parse_call(inv: &Invocation) -> Result<Parsed, MagicError> {
    let info = find_magic(&inv.name).ok_or_else(|| unknown_magic(&inv.name))?;
    if inv.body.is_some() && !info.cell {
        return Err(MagicError::usage(format!(
            "%%{0} is not a cell magic; write %{0} on its own line",
            info.name
        )));
    }
    macro_rules! parsed {
        ($variant:expr) => {
            match parse_args(info, &inv.name, &inv.args)? {
                Some(args) => Parsed::Call(Box::new($variant(args))),
                None => Parsed::Help(info, inv.name.clone()),
            }
        };
    }
    Ok(match info.name {
        "help" => parsed!(MagicCall::Help),
        "findings" => parsed!(MagicCall::Findings),
        "finding" => parsed!(MagicCall::Finding),
        "accounts" => parsed!(MagicCall::Accounts),
        "summarize" => parsed!(MagicCall::Summarize),
        "remediate" => parsed!(|a| MagicCall::Remediate(a, inv.body.clone())),
        "approve" => parsed!(MagicCall::Approve),
        "ask" => parsed!(|a| MagicCall::Ask(a, inv.body.clone())),
        "kb" => parsed!(MagicCall::Kb),
        "export" => parsed!(MagicCall::Export),
        "rollback" => parsed!(MagicCall::Rollback),
        "rollout" => parsed!(MagicCall::Rollout),
        "recover" => parsed!(MagicCall::Recover),
        "audit" => parsed!(MagicCall::Audit),
        "config" => parsed!(|a| MagicCall::Config(a, inv.body.clone())),
        "set" => parsed!(MagicCall::Set),
        "version" => parsed!(MagicCall::Version),
        "sleep" => parsed!(MagicCall::Sleep),
        other => {
            return Err(MagicError::new(
                ErrorKind::Kernel,
                format!("%{other} is listed but has no handler"),
            ));
        }
    })
}

async fn run_call(call: MagicCall, cx: &mut Context<'_>) -> Result<(), MagicError> {
    match call {
        MagicCall::Help(args) => help::run(args, cx),
        MagicCall::Findings(args) => findings::run(args, cx).await,
        MagicCall::Finding(args) => finding::run(args, cx).await,
        MagicCall::Accounts(args) => accounts::run(args, cx).await,
        MagicCall::Summarize(args) => summarize::run(args, cx).await,
        MagicCall::Remediate(args, body) => remediate::run(args, body, cx).await,
        MagicCall::Approve(args) => approve::run(args, cx).await,
        MagicCall::Ask(args, body) => ask::run(args, body, cx).await,
        MagicCall::Kb(args) => kb::run(args, cx).await,
        MagicCall::Export(args) => export::run(args, cx),
        MagicCall::Rollback(args) => rollback::run(args, cx).await,
        MagicCall::Rollout(args) => rollout::run(args, cx).await,
        MagicCall::Recover(args) => recover::run(args, cx).await,
        MagicCall::Audit(args) => audit::run(args, cx),
        MagicCall::Config(args, body) => config::run(args, body.as_deref(), cx),
        MagicCall::Set(args) => set::run(args, cx),
        MagicCall::Version(args) => version::run(args, cx),
        MagicCall::Sleep(args) => sleep::run(args, cx).await,
    }
}

fn show_help(info: &MagicInfo, invoked: &str, out: &dyn Output) {
    let text = info.long_help_as(invoked);
    out.display(Bundle::html(
        text.clone(),
        html::pre(&text),
        serde_json::json!({"magic": info.name, "help": text}),
    ));
}

/// Runs every magic in a cell, in order. All lines are parsed before any runs,
/// so a typo on a later line stops the cell before an earlier line acts.
pub async fn run_cell(
    code: &str,
    session: &mut Session,
    out: &dyn Output,
) -> Result<(), MagicError> {
    let code = code.strip_prefix('\u{feff}').unwrap_or(code);
    if cell_kind(code)? == CellKind::Rust {
        return crate::rust_cells::run(code, session, out).await;
    }
    // Rust cells rewrite their session snapshot when this has moved.
    session.magic_cells_run += 1;
    let invocations = split_cell(code)?;
    // Every line is checked before any runs; a line using variables is checked
    // once the lines before it (which may %set them) have run.
    for inv in invocations.iter().filter(|i| !uses_variables(i)) {
        parse_call(inv)?;
    }
    let mut cx = Context::new(session, out);
    for inv in &invocations {
        if out.cancellation().is_cancelled() {
            return Err(MagicError::interrupted());
        }
        let expanded = expand(inv, &cx.session.variables)?;
        match parse_call(&expanded)? {
            Parsed::Help(info, invoked) => show_help(info, &invoked, out),
            Parsed::Call(call) => run_call(*call, &mut cx).await?,
        }
    }
    Ok(())
}

fn uses_variables(inv: &Invocation) -> bool {
    inv.args
        .iter()
        .any(|a| crate::variables::refers_to_variables(a))
}

/// The invocation with `$NAME` expanded in each argument. Expanding after the
/// line is split keeps a value one argument, whatever it holds.
fn expand(
    inv: &Invocation,
    variables: &crate::variables::Variables,
) -> Result<Invocation, MagicError> {
    let args = inv
        .args
        .iter()
        .map(|a| variables.expand(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MagicError::usage(format!("%{}: {e}", inv.name)))?;
    Ok(Invocation {
        args,
        ..inv.clone()
    })
}

#[cfg(test)]
mod hostile_input;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::output::recording::RecordingOutput;
    use runbook::settings::{Lang, Settings};

    fn session() -> Session {
        Session::new(Settings::default(), Vec::new())
    }

    #[test]
    fn splits_line_magics_and_skips_comments() {
        let cell = "# set up\n\n%config lang=ja\n  %version\n";
        let inv = split_cell(cell).unwrap();
        assert_eq!(inv.len(), 2);
        assert_eq!(inv[0].name, "config");
        assert_eq!(inv[0].args, vec!["lang=ja"]);
        assert_eq!(inv[1].name, "version");
    }

    #[test]
    fn shell_quoting_and_continuations() {
        let inv = split_cell("%config region='us-east-1' \\\n  lang=\"ja\"").unwrap();
        assert_eq!(inv[0].args, vec!["region=us-east-1", "lang=ja"]);
        assert!(matches!(
            split_cell("%config region=\"eu"),
            Err(SplitError::Incomplete(_))
        ));
        assert!(matches!(
            split_cell("%version \\"),
            Err(SplitError::Incomplete(_))
        ));
    }

    #[test]
    fn cell_magic_keeps_body() {
        let inv = split_cell("%%config\nlang=ja\n# c\nregion=us-east-1").unwrap();
        assert_eq!(inv.len(), 1);
        assert_eq!(
            inv[0].body.as_deref(),
            Some("lang=ja\n# c\nregion=us-east-1")
        );
    }

    #[test]
    fn plain_code_and_malformed_lines() {
        assert!(matches!(
            split_cell("let x = 1;"),
            Err(SplitError::PlainCode(_))
        ));
        assert!(matches!(split_cell("%"), Err(SplitError::Malformed(_))));
        assert!(matches!(split_cell("%%"), Err(SplitError::Malformed(_))));
        assert!(matches!(
            split_cell("%version\n%%config"),
            Err(SplitError::Malformed(_))
        ));
        assert!(split_cell("   \n# only a comment").unwrap().is_empty());
        let e: MagicError = split_cell("print(1)").unwrap_err().into();
        assert_eq!(e.kind, ErrorKind::Usage);
    }

    #[test]
    fn cells_are_magics_or_rust() {
        use CellKind::*;
        for (code, kind) in [
            ("%findings", Magics),
            ("# a comment\n\n%help", Magics),
            ("", Magics),
            ("%%config\nlang=ja", Magics),
            ("%config lang=ja \\\n  region=eu-west-1", Magics),
            ("let x = 1;", Rust),
            ("#[derive(Debug)]\nstruct A;", Rust),
            (":dep serde", Rust),
            ("// a comment\nx + 1", Rust),
        ] {
            assert_eq!(cell_kind(code).unwrap(), kind, "{code:?}");
        }
        let mixed = cell_kind("%version\nlet x = 1;").unwrap_err();
        let e: MagicError = mixed.into();
        assert_eq!(e.kind, ErrorKind::Usage);
        assert!(
            e.evalue.contains("line 1 is the magic '%version'"),
            "{}",
            e.evalue
        );
        assert!(
            e.evalue.contains("line 2 is Rust ('let x = 1;')"),
            "{}",
            e.evalue
        );
    }

    #[test]
    fn unknown_magic_suggests_nearest() {
        let inv = split_cell("%confg").unwrap();
        let err = parse_call(&inv[0]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::UnknownMagic);
        assert!(
            err.evalue.contains("Did you mean %config?"),
            "{}",
            err.evalue
        );
        assert!(err.evalue.contains("%version"));
    }

    #[test]
    fn every_magic_has_help_and_parses_help_flag() {
        for info in MAGICS {
            info.command().debug_assert();
            assert!(
                !info.summary().is_empty(),
                "{} needs an about line",
                info.name
            );
            let inv = Invocation {
                name: info.name.into(),
                args: vec!["--help".into()],
                body: None,
            };
            assert!(
                matches!(parse_call(&inv), Ok(Parsed::Help(..))),
                "{}",
                info.name
            );
        }
    }

    #[test]
    fn bad_flag_names_it() {
        let inv = split_cell("%sleep --fast 1").unwrap();
        let err = parse_call(&inv[0]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Usage);
        assert!(err.evalue.contains("--fast"), "{}", err.evalue);
        assert!(!err.evalue.contains('\u{1b}'), "no ANSI colour codes");
    }

    #[test]
    fn not_a_cell_magic() {
        let inv = split_cell("%%version\nbody").unwrap();
        let err = parse_call(&inv[0]).unwrap_err();
        assert!(err.evalue.contains("not a cell magic"));
    }

    #[tokio::test]
    async fn a_bad_later_line_stops_the_cell_before_anything_runs() {
        let mut s = session();
        let out = RecordingOutput::new();
        let err = run_cell("%config lang=ja\n%nosuch", &mut s, &out)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::UnknownMagic);
        assert_eq!(s.settings.lang, Lang::En, "the first line did not run");
        assert!(out.last_bundles().is_empty());
    }

    /// The sibling modules of `magics/` a source file imports (through `super::`,
    /// `super::super::` or `crate::magics::`, alone or in a `{...}` group).
    fn imported_siblings(source: &str, siblings: &[String]) -> Vec<String> {
        let mut found = Vec::new();
        for prefix in ["crate::magics::", "super::"] {
            for (at, _) in source.match_indices(prefix) {
                let mut rest = &source[at + prefix.len()..];
                while let Some(r) = rest.strip_prefix("super::") {
                    rest = r;
                }
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => group
                        .split('}')
                        .next()
                        .unwrap_or_default()
                        .split(',')
                        .collect(),
                    None => vec![rest],
                };
                for name in names {
                    let head: String = name
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if siblings.contains(&head) && !found.contains(&head) {
                        found.push(head);
                    }
                }
            }
        }
        found
    }

    #[test]
    fn no_magic_imports_another() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/magics");
        let files: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .map(|p| {
                let stem = p.file_stem().unwrap().to_string_lossy().to_string();
                (stem, std::fs::read_to_string(&p).unwrap())
            })
            .filter(|(stem, _)| stem != "mod")
            .collect();
        let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
        assert!(names.len() >= 10, "the magic files were found: {names:?}");
        for (name, source) in &files {
            let others: Vec<String> = names.iter().filter(|n| *n != name).cloned().collect();
            let imported = imported_siblings(source, &others);
            assert!(
                imported.is_empty(),
                "magics/{name}.rs imports {imported:?}: shared steps belong in context.rs or workflow.rs"
            );
        }
        // The check itself finds each form of import.
        let names = ["approve".to_string(), "findings".to_string()];
        for source in [
            "use super::approve::approval;",
            "use super::{MagicError, approve};",
            "use crate::magics::{findings::connect, MagicError};",
            "let x = super::super::approve::stored_plan(s, p);",
        ] {
            assert_eq!(imported_siblings(source, &names).len(), 1, "{source}");
        }
        assert!(imported_siblings("use super::{MagicError, run_cell};", &names).is_empty());
    }

    #[tokio::test]
    async fn help_flag_shows_usage() {
        let mut s = session();
        let out = RecordingOutput::new();
        run_cell("%config --help", &mut s, &out).await.unwrap();
        let bundles = out.last_bundles();
        assert_eq!(bundles.len(), 1);
        assert!(
            bundles[0].plain.contains("Usage: %config"),
            "{}",
            bundles[0].plain
        );
    }
}
