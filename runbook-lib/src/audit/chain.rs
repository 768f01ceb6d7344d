//! Tamper evidence: every record carries `prev`, the SHA-256 of the line before it,
//! and the record that starts a file's chain carries a random `file_id`. Editing,
//! removing or reordering a line breaks a link that [`verify`] reports by line number.
//!
//! What a chain cannot show on its own: a rewrite of the very last record, or the
//! removal of whole records from the end. Only a copy kept elsewhere shows those.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The SHA-256 of one line's bytes (without its newline), in lowercase hex.
pub fn line_hash(line: &[u8]) -> String {
    Sha256::digest(line)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random file id (128 bits, hex). `None` only when the operating system has
/// no randomness to give; the chain then starts without an id.
pub fn new_file_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The chain fields of a line; everything else in the record is ignored here.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Link {
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default)]
    pub prev: Option<String>,
    #[serde(default)]
    pub file_id: Option<String>,
}

impl Link {
    pub(super) fn parse(line: &[u8]) -> Option<Link> {
        serde_json::from_slice(line).ok()
    }

    /// Written after the chain was introduced.
    pub(super) fn is_chained(&self) -> bool {
        self.prev.is_some() || self.file_id.is_some()
    }
}

/// What is wrong at a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// The line before this one was changed after it was written.
    Edited,
    /// Records are missing before this line.
    Removed,
    /// This line is not where it was written.
    Reordered,
    /// An unchained line after the chain began, or a second chain start.
    Inserted,
    /// A line in the middle that is not a readable record.
    Damaged,
    /// The last line is cut off (a crash mid-write leaves this).
    Truncated,
}

/// One broken link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    /// 1-based line number in the file.
    pub line: usize,
    pub kind: BreakKind,
    pub message: String,
}

/// The result of walking a file's chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// The id in the record that starts the chain.
    pub file_id: Option<String>,
    /// Non-empty lines in the file.
    pub lines: usize,
    /// Lines that carry chain fields.
    pub chained: usize,
    /// Lines written before the chain existed (at the start of the file, unprotected).
    pub legacy: usize,
    pub breaks: Vec<ChainBreak>,
}

impl ChainReport {
    pub fn intact(&self) -> bool {
        self.breaks.is_empty()
    }

    /// One line for `%audit`.
    pub fn summary(&self) -> String {
        let legacy = if self.legacy > 0 {
            format!(
                "; {} older record(s) at the start predate the chain and are not protected",
                self.legacy
            )
        } else {
            String::new()
        };
        if self.lines == 0 {
            "Hash chain: empty file, nothing to verify.".to_string()
        } else if self.intact() {
            format!(
                "Hash chain: intact ({} chained record(s){legacy}).",
                self.chained
            )
        } else {
            let lines: Vec<String> = self.breaks.iter().map(|b| b.line.to_string()).collect();
            format!(
                "Hash chain: BROKEN at line(s) {}{legacy}. Run %audit --verify for details.",
                lines.join(", ")
            )
        }
    }
}

/// Walks the chain of a whole audit file.
pub fn verify(bytes: &[u8]) -> ChainReport {
    struct Line<'a> {
        number: usize,
        raw: &'a [u8],
        terminated: bool,
    }
    let mut lines = Vec::new();
    let mut offset = 0usize;
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        offset += raw.len() + 1;
        if !raw.iter().all(u8::is_ascii_whitespace) {
            lines.push(Line {
                number: i + 1,
                raw,
                terminated: offset <= bytes.len(),
            });
        }
    }
    let hashes: Vec<String> = lines.iter().map(|l| line_hash(l.raw)).collect();
    let links: Vec<Option<Link>> = lines.iter().map(|l| Link::parse(l.raw)).collect();
    let mut report = ChainReport {
        lines: lines.len(),
        ..ChainReport::default()
    };
    let mut started = false;
    let mut add = |line: usize, kind: BreakKind, message: String| {
        report.breaks.push(ChainBreak {
            line,
            kind,
            message,
        });
    };
    let mut chained = 0;
    let mut legacy = 0;
    let mut file_id = None;
    for (i, line) in lines.iter().enumerate() {
        let n = line.number;
        let Some(link) = &links[i] else {
            if i + 1 == lines.len() && !line.terminated {
                add(
                    n,
                    BreakKind::Truncated,
                    format!(
                        "line {n} is cut off (no final newline): a crash mid-write, or the file was truncated"
                    ),
                );
            } else {
                add(
                    n,
                    BreakKind::Damaged,
                    format!("line {n} is not a readable record: it was corrupted or edited"),
                );
            }
            continue;
        };
        if !link.is_chained() {
            if started {
                add(
                    n,
                    BreakKind::Inserted,
                    format!(
                        "line {n} carries no link to the line before it although the chain began earlier: it was inserted"
                    ),
                );
            } else {
                legacy += 1;
            }
            continue;
        }
        chained += 1;
        if let Some(id) = &link.file_id {
            if started {
                add(
                    n,
                    BreakKind::Inserted,
                    format!(
                        "line {n} starts a second chain (file id {id}): lines from another file were put here"
                    ),
                );
            }
            file_id.get_or_insert_with(|| id.clone());
        } else if !started && i == 0 {
            add(
                n,
                BreakKind::Removed,
                format!(
                    "line {n} links to a line that is not in the file: the records before it were removed"
                ),
            );
            started = true;
            continue;
        } else if !started {
            add(
                n,
                BreakKind::Removed,
                format!(
                    "the record that started the chain (with the file id) is missing before line {n}"
                ),
            );
        }
        started = true;
        let Some(before) = i.checked_sub(1) else {
            if link.prev.is_some() {
                add(
                    n,
                    BreakKind::Removed,
                    format!(
                        "line {n} links to a line that is not in the file: the records before it were removed"
                    ),
                );
            }
            continue;
        };
        let Some(prev) = &link.prev else {
            add(
                n,
                BreakKind::Inserted,
                format!("line {n} carries no hash of line {}", lines[before].number),
            );
            continue;
        };
        if *prev == hashes[before] {
            continue;
        }
        let before_n = lines[before].number;
        let seq_before = links[before].as_ref().and_then(|l| l.seq);
        if let (Some(s), Some(b)) = (link.seq, seq_before)
            && s <= b
        {
            add(
                n,
                BreakKind::Reordered,
                format!(
                    "line {n} (seq {s}) comes after line {before_n} (seq {b}): records were reordered"
                ),
            );
            continue;
        }
        if let Some(j) = hashes.iter().position(|h| h == prev) {
            add(
                n,
                BreakKind::Reordered,
                format!(
                    "line {n} was written after line {}, not after line {before_n}: records were reordered or moved",
                    lines[j].number
                ),
            );
            continue;
        }
        match (link.seq, seq_before) {
            (Some(s), Some(b)) if s > b + 1 => add(
                n,
                BreakKind::Removed,
                format!(
                    "{} record(s) (seq {}..{}) were removed between line {before_n} and line {n}",
                    s - b - 1,
                    b + 1,
                    s - 1
                ),
            ),
            _ => add(
                before_n,
                BreakKind::Edited,
                format!(
                    "line {before_n} was changed after it was written: line {n} holds a different hash of it"
                ),
            ),
        }
    }
    report.chained = chained;
    report.legacy = legacy;
    report.file_id = file_id;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, AuditLog, AuditRecord, AuditSubject};
    use crate::cloud::Target;
    use proptest::prelude::*;
    use std::path::PathBuf;

    /// A trail of `n` records written by the real writer; returns its lines.
    fn written(name: &str, n: usize) -> (PathBuf, Vec<String>) {
        let dir = std::env::temp_dir().join(format!(
            "runbook-chain-{}-{name}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap().with_actor("tester");
        let subject = AuditSubject::new(
            "plan-0123abcd".parse().unwrap(),
            &Target {
                account: "123456789012".parse().unwrap(),
                region: "us-east-1".to_string(),
            },
        );
        for i in 0..n {
            log.append(
                AuditRecord::new(AuditEvent::Approved, &subject).with_detail(format!("step {i}")),
            )
            .unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        (path, text.lines().map(str::to_string).collect())
    }

    fn joined(lines: &[String]) -> Vec<u8> {
        let mut s = lines.join("\n");
        s.push('\n');
        s.into_bytes()
    }

    fn kinds(r: &ChainReport) -> Vec<(usize, BreakKind)> {
        r.breaks.iter().map(|b| (b.line, b.kind)).collect()
    }

    #[test]
    fn a_written_trail_is_intact_and_starts_with_a_file_id() {
        let (_, lines) = written("intact", 5);
        let r = verify(&joined(&lines));
        assert!(r.intact(), "{r:?}");
        assert_eq!((r.lines, r.chained, r.legacy), (5, 5, 0));
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["file_id"].as_str().map(str::len), Some(32));
        assert!(first.get("prev").is_none());
        let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert!(second.get("file_id").is_none());
        assert_eq!(second["prev"], line_hash(lines[0].as_bytes()));
        assert!(r.summary().contains("intact"));
    }

    #[test]
    fn an_edited_record_is_named_by_its_line() {
        let (_, mut lines) = written("edited", 5);
        lines[2] = lines[2].replace("step 2", "step X");
        let r = verify(&joined(&lines));
        assert_eq!(kinds(&r), vec![(3, BreakKind::Edited)]);
        assert!(r.summary().contains("BROKEN at line(s) 3"));
    }

    #[test]
    fn a_removed_record_is_named_with_the_missing_seq() {
        let (_, mut lines) = written("removed", 5);
        lines.remove(2);
        let r = verify(&joined(&lines));
        assert_eq!(kinds(&r), vec![(3, BreakKind::Removed)]);
        assert!(r.breaks[0].message.contains("seq 3..3"), "{r:?}");
    }

    #[test]
    fn removing_the_first_records_is_seen() {
        let (_, lines) = written("head", 4);
        let r = verify(&joined(&lines[2..]));
        assert_eq!(kinds(&r), vec![(1, BreakKind::Removed)]);
    }

    #[test]
    fn reordered_records_are_seen() {
        let (_, mut lines) = written("reordered", 5);
        lines.swap(1, 2);
        let r = verify(&joined(&lines));
        assert!(!r.intact());
        assert!(
            r.breaks.iter().all(|b| b.kind == BreakKind::Reordered),
            "{r:?}"
        );
        assert_eq!(r.breaks[0].line, 2);
    }

    #[test]
    fn a_cut_off_tail_is_truncated_and_a_damaged_middle_line_is_named() {
        let (_, lines) = written("tail", 3);
        let mut bytes = joined(&lines);
        bytes.truncate(bytes.len() - 20);
        assert_eq!(kinds(&verify(&bytes)), vec![(3, BreakKind::Truncated)]);

        let mut damaged = lines.clone();
        damaged[1] = "{not json".to_string();
        let r = verify(&joined(&damaged));
        assert_eq!(
            kinds(&r),
            vec![(2, BreakKind::Damaged), (2, BreakKind::Edited)]
        );
    }

    #[test]
    fn the_writer_continues_the_chain_after_a_crash_left_half_a_line() {
        let (path, lines) = written("crash", 2);
        let mut bytes = joined(&lines);
        bytes.extend_from_slice(b"{\"seq\":3,\"half");
        std::fs::write(&path, &bytes).unwrap();
        let mut log = AuditLog::open(&path).unwrap();
        let subject = AuditSubject::new(
            "plan-0123abcd".parse().unwrap(),
            &Target {
                account: "123456789012".parse().unwrap(),
                region: "us-east-1".to_string(),
            },
        );
        log.append(AuditRecord::new(AuditEvent::Approved, &subject))
            .unwrap();
        let r = verify(&std::fs::read(&path).unwrap());
        // The half line is reported; the chain runs through it.
        assert_eq!(kinds(&r), vec![(3, BreakKind::Damaged)]);
    }

    #[test]
    fn records_from_before_the_chain_are_legacy_and_the_chain_links_to_them() {
        let legacy = r#"{"seq":1,"at":"2026-01-01T00:00:00.000Z","event":"approved","plan_id":"plan-0123abcd","actor":"a","account":"123456789012","region":"us-east-1"}"#;
        let (path, _) = written("legacy", 0);
        std::fs::write(&path, format!("{legacy}\n")).unwrap();
        let mut log = AuditLog::open(&path).unwrap();
        let subject = AuditSubject::new(
            "plan-0123abcd".parse().unwrap(),
            &Target {
                account: "123456789012".parse().unwrap(),
                region: "us-east-1".to_string(),
            },
        );
        log.append(AuditRecord::new(AuditEvent::Approved, &subject))
            .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let r = verify(&bytes);
        assert!(r.intact(), "{r:?}");
        assert_eq!((r.legacy, r.chained), (1, 1));
        assert!(r.file_id.is_some());
        // A legacy-looking line after the chain began was inserted.
        let mut more = bytes.clone();
        more.extend_from_slice(format!("{legacy}\n").as_bytes());
        assert_eq!(kinds(&verify(&more)), vec![(3, BreakKind::Inserted)]);
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private_and_an_open_one_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let (path, _) = written("mode", 1);
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        let nested = path.parent().unwrap().join("a/b/audit.jsonl");
        AuditLog::open(&nested).unwrap();
        assert_eq!(mode(nested.parent().unwrap()), 0o700);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let log = AuditLog::open(&path).unwrap();
        assert!(log.tightened().unwrap_or_default().contains("0644"));
        assert_eq!(mode(&path), 0o600);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn reading_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let r = verify(&bytes);
            prop_assert!(r.chained + r.legacy <= r.lines);
            let report = crate::audit::AuditReport::parse(std::path::Path::new("x"), &bytes);
            prop_assert!(report.records.len() <= r.lines);
        }

        #[test]
        fn any_single_edit_of_a_middle_record_is_caught(at in 0usize..4, byte in any::<u8>()) {
            static TRAIL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
            let mut lines = TRAIL.get_or_init(|| written("prop", 5).1).clone();
            let mut line = lines[at].clone().into_bytes();
            let i = line.len() / 2;
            prop_assume!(line[i] != byte && byte != b'\n');
            line[i] = byte;
            lines[at] = String::from_utf8_lossy(&line).into_owned();
            prop_assert!(!verify(&joined(&lines)).intact());
        }
    }
}
