//! `%remediate REF [REF ...]` / `%%remediate REF`: a typed remediation plan per
//! finding, validated against it, with its live state, rollback, permissions,
//! CLI and Python. A plan acts in one account and region: its finding's.

use clap::Parser;
use runbook::finding::FindingRef;
use runbook::settings::Lang;

use crate::context::{Context, ErrorKind, MagicError, lang_parser};
use crate::workflow;

/// Produce a typed, validated remediation plan, shown with its AWS CLI and Python equivalents (%%remediate: the body adds instructions)
#[derive(Debug, Parser)]
pub struct RemediateArgs {
    /// Numbers from the last %findings listing, or finding Ids/ARNs (comma- or space-separated, at most 20); each gets its own plan, in its own account and region
    #[arg(value_name = "REF", required = true, num_args = 1.., value_delimiter = ',',
          value_parser = |s: &str| s.parse::<FindingRef>())]
    pub references: Vec<FindingRef>,
    /// Plan language (default: the lang setting)
    #[arg(long, value_parser = lang_parser())]
    pub lang: Option<Lang>,
}

pub async fn run(
    args: RemediateArgs,
    instructions: Option<String>,
    cx: &mut Context<'_>,
) -> Result<(), MagicError> {
    let lang = args.lang.unwrap_or(cx.settings().lang);
    if args.references.len() > MAX_FINDINGS {
        return Err(MagicError::usage(format!(
            "%remediate takes at most {MAX_FINDINGS} findings at once, got {}; run it again for the rest",
            args.references.len()
        )));
    }
    // One plan per finding, so each stays in its finding's account and region;
    // one that cannot be planned does not stop the others.
    let mut failed = Vec::new();
    let many = args.references.len() > 1;
    for reference in &args.references {
        let proposed = match cx.resolve(reference).await {
            Ok(finding) => workflow::propose(cx, finding, lang, instructions.as_deref())
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        match proposed {
            Ok(()) => {}
            Err(e) if !many || e.kind == ErrorKind::Interrupted => return Err(e),
            Err(e) => failed.push(format!("{reference}: {}: {}", e.ename(), e.evalue)),
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(MagicError::new(
        ErrorKind::PlanRejected,
        format!(
            "{} of {} findings got no plan: {}",
            failed.len(),
            args.references.len(),
            failed.join("; ")
        ),
    ))
}

/// The most findings one %remediate plans for.
const MAX_FINDINGS: usize = 20;
