//! Rust cells: a cell with no magic is evaluated as Rust by evcxr's
//! `CommandContext`, in this process. The user's code runs in a child process
//! (this binary again: `main` calls `evcxr::runtime_hook` first), so a panic,
//! `loop {}` or an abort never takes the kernel down.
//!
//! Rust cells read what the magics left through the `runbook-cells` crate and a
//! JSON snapshot of the session, rewritten before a Rust cell whenever a magic
//! ran since the last one.

use crate::error::MagicError;
use crate::magics::assist::Completion;
use crate::render::findings::{finding_row, wire};
use crate::session::Session;

/// The session as Rust cells see it.
pub fn snapshot(session: &Session) -> runbook_cells::Snapshot {
    let (filter, findings) = match &session.listing {
        None => (None, Vec::new()),
        Some(listing) => (
            Some(listing.filter_text.clone()),
            listing
                .findings
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let mut row = finding_row(i + 1, f, &listing.organisation);
                    row.raw = f.raw.value();
                    row
                })
                .collect(),
        ),
    };
    let mut plans: Vec<runbook_cells::Plan> = session
        .plans
        .values()
        .map(|stored| {
            let plan = &stored.plan;
            runbook_cells::Plan {
                id: plan.id.as_str().to_string(),
                control_id: plan.control_id.as_str().to_string(),
                account: plan.account.as_str().to_string(),
                region: plan.region.clone(),
                finding_ids: plan.findings.iter().map(|f| f.id.clone()).collect(),
                rationale: plan.rationale.clone(),
                source: wire(&plan.source),
                created_at: wire(&plan.created_at),
                raw: serde_json::to_value(plan).unwrap_or_default(),
            }
        })
        .collect();
    plans.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    runbook_cells::Snapshot {
        session_id: session.id.clone(),
        filter,
        findings,
        plans,
        audit_log: Some(session.settings.audit_log.clone()),
    }
}

fn refuse_nul(code: &str) -> Result<(), MagicError> {
    if code.contains('\0') {
        return Err(MagicError::usage(
            "this Rust cell contains a NUL character, which Rust source cannot hold; remove it",
        ));
    }
    Ok(())
}

#[cfg(not(feature = "rust-cells"))]
mod engine {
    use super::*;
    use crate::error::ErrorKind;
    use crate::output::Output;

    /// Rust cells in a kernel built without them: every plain cell says so.
    #[derive(Default)]
    pub struct RustCells;

    impl RustCells {
        pub fn complete(&self, _code: &str, _cursor: usize) -> Option<Completion> {
            None
        }

        pub fn inspect(&self, _code: &str, _cursor: usize) -> Option<String> {
            None
        }
    }

    pub async fn run(
        code: &str,
        _session: &mut Session,
        _out: &dyn Output,
    ) -> Result<(), MagicError> {
        refuse_nul(code)?;
        Err(MagicError::new(
            ErrorKind::NotSupported,
            "this kernel was built without Rust cells (the cargo feature rust-cells is off), so plain code cannot run",
        )
        .with_detail(["Rebuild with the default features (make kernel), or start each line with a magic; %help lists them.".to_string()]))
    }
}

#[cfg(feature = "rust-cells")]
mod engine;

#[cfg(feature = "rust-cells")]
pub use engine::put_cargo_on_path;
pub use engine::{RustCells, run};

/// The byte offset of the `n`th code point (Jupyter's cursor unit).
pub fn byte_offset(code: &str, code_points: usize) -> usize {
    code.char_indices()
        .nth(code_points)
        .map_or(code.len(), |(i, _)| i)
}

/// The code point index of a byte offset.
pub fn code_points(code: &str, byte_offset: usize) -> usize {
    code.get(..byte_offset)
        .map_or_else(|| code.chars().count(), |prefix| prefix.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_units_round_trip() {
        let code = "let 日本 = 1; x";
        let byte = byte_offset(code, 5);
        assert_eq!(&code[byte..byte + 3], "本");
        assert_eq!(code_points(code, byte), 5);
        assert_eq!(byte_offset(code, 99), code.len());
        assert_eq!(code_points(code, 999), code.chars().count());
    }
}
