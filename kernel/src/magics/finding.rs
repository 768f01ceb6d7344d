//! `%finding REF`: one finding in full.

use clap::Parser;
use runbook::finding::FindingRef;

use crate::context::{Context, MagicError};
use crate::render::findings as render;

/// Show one finding in full: key facts, resources, remediation link and the raw ASFF JSON
#[derive(Debug, Parser)]
pub struct FindingArgs {
    /// A number from the last %findings listing, or a finding Id/ARN
    #[arg(value_name = "REF", value_parser = |s: &str| s.parse::<FindingRef>())]
    pub reference: FindingRef,
}

pub async fn run(args: FindingArgs, cx: &mut Context<'_>) -> Result<(), MagicError> {
    let finding = cx.resolve(&args.reference).await?;
    cx.out.display(render::detail(&finding, cx.settings().lang));
    Ok(())
}
