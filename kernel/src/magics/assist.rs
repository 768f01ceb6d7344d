//! Help while typing: completion, inspection (Shift+Tab) and is_complete.
//! Positions are counted in code points, as the Jupyter protocol does.

use runbook::settings::SettingKey;

use super::{MAGICS, MagicInfo, SplitError, find_magic, split_cell};
use crate::session::Session;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub matches: Vec<String>,
    pub cursor_start: usize,
    pub cursor_end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    Complete,
    Incomplete,
    Invalid,
}

/// The line around `cursor` as chars, with the index where it starts.
fn line_at(chars: &[char], cursor: usize) -> (usize, usize) {
    let start = chars[..cursor]
        .iter()
        .rposition(|c| *c == '\n')
        .map_or(0, |i| i + 1);
    let end = chars[cursor..]
        .iter()
        .position(|c| *c == '\n')
        .map_or(chars.len(), |i| cursor + i);
    (start, end)
}

fn magic_of_line(line: &str) -> Option<&'static MagicInfo> {
    let first = line.split_whitespace().next()?;
    let name = first.strip_prefix('%')?.trim_start_matches('%');
    find_magic(name)
}

fn with_prefix(candidates: impl IntoIterator<Item = String>, prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = candidates
        .into_iter()
        .filter(|c| c.starts_with(prefix))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn magic_names(word: &str) -> Vec<String> {
    let cell_only = word.starts_with("%%");
    let sigil = if cell_only { "%%" } else { "%" };
    let names = MAGICS
        .iter()
        .filter(|m| !cell_only || m.cell)
        .flat_map(|m| std::iter::once(m.name).chain(m.aliases.iter().copied()))
        .map(|n| format!("{sigil}{n}"));
    with_prefix(names, word)
}

fn flags(info: &MagicInfo) -> Vec<String> {
    let mut out = vec!["--help".to_string()];
    for arg in info.command().get_arguments() {
        if let Some(long) = arg.get_long() {
            out.push(format!("--{long}"));
        }
        if let Some(short) = arg.get_short() {
            out.push(format!("-{short}"));
        }
    }
    out
}

/// Values a flag (or, with `None`, a positional argument) takes: clap's fixed
/// values first, then what the session knows.
fn values(info: &MagicInfo, flag: Option<&str>, session: &Session) -> Vec<String> {
    let mut known = session_values(info.name, flag, session);
    let command = info.command();
    let arg = command.get_arguments().find(|a| match flag {
        Some(f) => {
            a.get_long().is_some_and(|l| f == format!("--{l}"))
                || a.get_short().is_some_and(|s| f == format!("-{s}"))
        }
        None => a.is_positional(),
    });
    let mut fixed: Vec<String> = arg
        .map(|a| {
            a.get_possible_values()
                .iter()
                .map(|v| v.get_name().to_string())
                .collect()
        })
        .unwrap_or_default();
    fixed.append(&mut known);
    fixed
}

/// Values only the session knows: listing numbers, control ids seen.
fn session_values(magic: &str, flag: Option<&str>, session: &Session) -> Vec<String> {
    let plans = || session.plans.keys().cloned();
    match (magic, flag) {
        ("approve", None) => return std::iter::once("last".to_string()).chain(plans()).collect(),
        ("rollback" | "recover", None) | ("audit", Some("--plan")) => return plans().collect(),
        _ => {}
    }
    let Some(listing) = &session.listing else {
        return Vec::new();
    };
    match (magic, flag) {
        ("findings", Some("--control")) => listing
            .findings
            .iter()
            .filter_map(|f| f.control_id.as_ref().map(|c| c.as_str().to_string()))
            .collect(),
        ("findings", Some("--account")) => listing
            .findings
            .iter()
            .map(|f| f.account.to_string())
            .collect(),
        ("findings", Some("--region")) => {
            listing.findings.iter().map(|f| f.region.clone()).collect()
        }
        ("finding" | "summarize" | "remediate", None) => (1..=listing.findings.len().min(200))
            .map(|n| n.to_string())
            .collect(),
        _ => Vec::new(),
    }
}

fn config_items(word: &str) -> Vec<String> {
    match word.split_once('=') {
        Some((key, _)) => {
            let Ok(key) = key.parse::<SettingKey>() else {
                return Vec::new();
            };
            let candidates = key.choices().iter().map(|v| format!("{}={v}", key.name()));
            with_prefix(candidates, word)
        }
        None => with_prefix(
            SettingKey::ALL.iter().map(|k| format!("{}=", k.name())),
            word,
        ),
    }
}

/// Where a variable reference being typed starts in `word` (byte offset of its
/// `$`) and what follows the `$` so far (`na`, or `{na`).
fn variable_at_end(word: &str) -> Option<(usize, &str)> {
    let at = word.rfind('$')?;
    let rest = &word[at + 1..];
    let name = rest.strip_prefix('{').unwrap_or(rest);
    let is_partial_name = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    // `$$` is a literal dollar, not a reference.
    let escaped = at > 0 && word[..at].ends_with('$');
    (is_partial_name && !escaped).then_some((at, rest))
}

pub fn complete(code: &str, cursor_pos: usize, session: &Session) -> Completion {
    let chars: Vec<char> = code.chars().collect();
    let cursor = cursor_pos.min(chars.len());
    let (line_start, _) = line_at(&chars, cursor);
    let before: String = chars[line_start..cursor].iter().collect();
    let word_start = chars[line_start..cursor]
        .iter()
        .rposition(|c| c.is_whitespace())
        .map_or(line_start, |i| line_start + i + 1);
    let word: String = chars[word_start..cursor].iter().collect();
    let mut start = word_start;

    let matches = if word_start == line_start || before[..].trim_start().len() == word.len() {
        if word.trim_start().starts_with('%') {
            start = cursor - word.trim_start().chars().count();
            magic_names(word.trim_start())
        } else {
            Vec::new()
        }
    } else if let Some((at, prefix)) = variable_at_end(&word) {
        // `$na` or `${na`: the defined variables, from the `$` on.
        start = word_start + word[..at].chars().count();
        let braced = prefix.starts_with('{');
        let partial = prefix.trim_start_matches('{');
        session
            .variables
            .names()
            .filter(|n| n.starts_with(partial))
            .map(|n| {
                if braced {
                    format!("${{{n}}}")
                } else {
                    format!("${n}")
                }
            })
            .collect()
    } else if let Some(info) = magic_of_line(&before) {
        if word.starts_with('-') {
            with_prefix(flags(info), &word)
        } else if info.name == "config" {
            config_items(&word)
        } else {
            // Complete the last item of a comma-separated list, keeping the ones before it.
            let (done, partial) = word
                .rsplit_once(',')
                .map_or(("", word.as_str()), |(d, p)| (d, p));
            let previous = before[..before.len() - word.len()]
                .split_whitespace()
                .last()
                .filter(|t| t.starts_with('-'));
            let candidates = values(info, previous, session);
            with_prefix(candidates, partial)
                .into_iter()
                .map(|v| {
                    if done.is_empty() {
                        v
                    } else {
                        format!("{done},{v}")
                    }
                })
                .collect()
        }
    } else {
        Vec::new()
    };
    Completion {
        matches,
        cursor_start: start,
        cursor_end: cursor,
    }
}

/// The help of the magic on the line under the cursor.
pub fn inspect(code: &str, cursor_pos: usize) -> Option<String> {
    let chars: Vec<char> = code.chars().collect();
    let cursor = cursor_pos.min(chars.len());
    let (start, end) = line_at(&chars, cursor);
    let line: String = chars[start..end].iter().collect();
    let info = magic_of_line(line.trim_start()).or_else(|| {
        // A cell magic's body: the magic is on the first line.
        let first = code.lines().find(|l| !l.trim().is_empty())?;
        first
            .trim_start()
            .starts_with("%%")
            .then(|| magic_of_line(first.trim_start()))
            .flatten()
    })?;
    Some(info.long_help())
}

pub fn is_complete(code: &str) -> Completeness {
    match super::cell_kind(code) {
        // Rust is compiled as sent; rustc says what is missing.
        Ok(super::CellKind::Rust) => return Completeness::Complete,
        Ok(super::CellKind::Magics) => {}
        Err(_mixed) => return Completeness::Invalid,
    }
    match split_cell(code) {
        Ok(invocations) => {
            if invocations.iter().all(|i| find_magic(&i.name).is_some()) {
                Completeness::Complete
            } else {
                Completeness::Invalid
            }
        }
        Err(SplitError::Incomplete(_)) => Completeness::Incomplete,
        Err(SplitError::PlainCode(_) | SplitError::Malformed(_) | SplitError::Mixed { .. }) => {
            Completeness::Invalid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runbook::settings::Settings;

    fn session() -> Session {
        Session::new(Settings::default(), Vec::new())
    }

    fn matches(code: &str) -> Vec<String> {
        complete(code, code.chars().count(), &session()).matches
    }

    #[test]
    fn magic_names_complete() {
        assert_eq!(matches("%con"), vec!["%config"]);
        assert_eq!(matches("%%con"), vec!["%%config"]);
        assert!(matches("%").contains(&"%lsmagic".to_string()));
        assert!(matches("%%").iter().all(|m| m.starts_with("%%")));
    }

    #[test]
    fn cursor_counts_code_points() {
        let code = "# 日本語のメモ\n%ver";
        let c = complete(code, code.chars().count(), &session());
        assert_eq!(c.matches, vec!["%version"]);
        assert_eq!(c.cursor_start, "# 日本語のメモ\n".chars().count());
        assert_eq!(c.cursor_end, code.chars().count());
        // A cursor in the middle of the cell completes the line it is on.
        let code = "%ver\n%config";
        let c = complete(code, 4, &session());
        assert_eq!(c.matches, vec!["%version"]);
        assert_eq!((c.cursor_start, c.cursor_end), (0, 4));
    }

    #[test]
    fn flags_and_config_values() {
        assert_eq!(matches("%sleep --h"), vec!["--help"]);
        assert_eq!(matches("%config ba"), vec!["backend="]);
        assert_eq!(matches("%config backend=s"), vec!["backend=sandbox"]);
        assert_eq!(matches("%config lang="), vec!["lang=en", "lang=ja"]);
        assert!(matches("%config nosuch=").is_empty());
        assert!(matches("%nosuch --").is_empty());
        assert!(matches("plain").is_empty());
    }

    #[test]
    fn out_of_range_cursor_is_clamped() {
        let c = complete("%con", 99, &session());
        assert_eq!(c.matches, vec!["%config"]);
    }

    #[test]
    fn inspect_finds_the_magic_on_the_line() {
        assert!(
            inspect("%config lang=ja", 3)
                .unwrap()
                .contains("Usage: %config")
        );
        assert!(
            inspect("%version\n%sleep 1", 12)
                .unwrap()
                .contains("%sleep")
        );
        assert!(
            inspect("%%config\nlang=ja", 12)
                .unwrap()
                .contains("%config")
        );
        assert!(inspect("hello", 2).is_none());
        assert!(inspect("%nosuch", 2).is_none());
    }

    #[test]
    fn completeness() {
        assert_eq!(is_complete("%config lang=ja"), Completeness::Complete);
        assert_eq!(is_complete(""), Completeness::Complete);
        assert_eq!(is_complete("%config region=\"eu"), Completeness::Incomplete);
        assert_eq!(is_complete("%config \\"), Completeness::Incomplete);
        assert_eq!(is_complete("x = 1"), Completeness::Complete);
        assert_eq!(is_complete("%version\nx = 1"), Completeness::Invalid);
        assert_eq!(is_complete("%nosuch"), Completeness::Invalid);
    }
}
