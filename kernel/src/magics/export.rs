//! `%export PLAN_ID --format ssm [--output FILE]`: a plan as a Systems Manager
//! Automation runbook, to review, keep in git and run with SSM anywhere.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use serde_json::json;

use crate::context::{Context, MagicError};
use crate::render::{Bundle, html};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A Systems Manager Automation document (schema 0.3, YAML)
    Ssm,
    /// Not available: no family's change is exported as a CloudFormation resource yet
    Cloudformation,
    /// Not available: no family's change is exported as Terraform yet
    Terraform,
}

/// Export a plan of this session as an Automation runbook (YAML) that does what the plan does
#[derive(Debug, Parser)]
pub struct ExportArgs {
    /// A plan id from %remediate (plan-xxxxxxxx), or `last` for the most recent plan
    #[arg(value_name = "PLAN_ID")]
    pub plan: String,
    /// The format
    #[arg(long, value_enum, default_value = "ssm")]
    pub format: Format,
    /// Also write the document to this file (relative to the notebook's folder)
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(args: ExportArgs, cx: &Context<'_>) -> Result<(), MagicError> {
    let stored = crate::workflow::stored_plan(cx.session, &args.plan)?;
    let plan = &stored.plan;
    if args.format != Format::Ssm {
        return Err(MagicError::usage(format!(
            "--format {:?} is not available yet; accepted: ssm (a Systems Manager Automation document that every family's plan can be exported as)",
            args.format
        )
        .to_lowercase()));
    }
    let yaml = runbook::export::ssm_document(plan).map_err(|e| MagicError::usage(e.to_string()))?;
    let written = match &args.output {
        Some(path) => {
            std::fs::write(path, &yaml)
                .map_err(|e| MagicError::usage(format!("cannot write {}: {e}", path.display())))?;
            Some(path.display().to_string())
        }
        None => None,
    };
    let heading = match &written {
        Some(path) => format!("{}: Automation runbook written to {path}", plan.id),
        None => format!("{}: Automation runbook (schema 0.3)", plan.id),
    };
    cx.out.display(Bundle::html(
        format!("{heading}\n\n{yaml}"),
        format!(
            "<div class=\"runbook-export\"><p><strong>{}</strong></p><pre><code>{}</code></pre></div>",
            html::text(&heading),
            html::text(&yaml)
        ),
        json!({"plan_id": plan.id, "format": "ssm", "document": yaml, "written_to": written}),
    ));
    Ok(())
}
