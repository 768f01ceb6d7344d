//! `%remediate REF` / `%%remediate REF`: a typed remediation plan, validated
//! against the finding, with its live state, rollback, permissions, CLI and Python.

use clap::Parser;
use runbook::finding::FindingRef;
use runbook::settings::Lang;

use crate::context::{Context, MagicError, lang_parser};
use crate::workflow;

/// Produce a typed, validated remediation plan, shown with its AWS CLI and Python equivalents (%%remediate: the body adds instructions)
#[derive(Debug, Parser)]
pub struct RemediateArgs {
    /// A number from the last %findings listing, or a finding Id/ARN
    #[arg(value_name = "REF", value_parser = |s: &str| s.parse::<FindingRef>())]
    pub reference: FindingRef,
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
    let finding = cx.resolve(&args.reference).await?;
    workflow::propose(cx, finding, lang, instructions.as_deref()).await?;
    Ok(())
}
