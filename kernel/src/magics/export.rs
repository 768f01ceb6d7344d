//! `%export PLAN_ID --format ssm|terraform|cloudformation [--output FILE]`: a plan
//! as a Systems Manager Automation runbook, or as infrastructure as code where its
//! change is a resource's property, to review, keep in git and run anywhere.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use serde_json::json;

use crate::context::{Context, MagicError};
use crate::render::{Bundle, html};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A Systems Manager Automation document (schema 0.3, YAML)
    Ssm,
    /// A CloudFormation template (YAML): GuardDuty detectors only
    Cloudformation,
    /// Terraform (HCL, 1.5 or later): EBS default encryption, account S3 Block Public Access, password policy, GuardDuty, KMS key rotation
    Terraform,
}

/// Export a plan of this session as an Automation runbook, Terraform or CloudFormation that does what the plan does
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
    let (text, what, format) = match args.format {
        Format::Ssm => (
            runbook::export::ssm_document(plan).map_err(|e| MagicError::usage(e.to_string()))?,
            "Automation runbook (schema 0.3)",
            "ssm",
        ),
        Format::Terraform => (
            runbook::iac::terraform(plan).map_err(|e| MagicError::usage(e.to_string()))?,
            "Terraform configuration",
            "terraform",
        ),
        Format::Cloudformation => (
            runbook::iac::cloudformation(plan).map_err(|e| MagicError::usage(e.to_string()))?,
            "CloudFormation template",
            "cloudformation",
        ),
    };
    let written = match &args.output {
        Some(path) => {
            std::fs::write(path, &text)
                .map_err(|e| MagicError::usage(format!("cannot write {}: {e}", path.display())))?;
            Some(path.display().to_string())
        }
        None => None,
    };
    let heading = match &written {
        Some(path) => format!("{}: {what} written to {path}", plan.id),
        None => format!("{}: {what}", plan.id),
    };
    cx.out.display(Bundle::html(
        format!("{heading}\n\n{text}"),
        format!(
            "<div class=\"runbook-export\"><p><strong>{}</strong></p><pre><code>{}</code></pre></div>",
            html::text(&heading),
            html::text(&text)
        ),
        json!({"plan_id": plan.id, "format": format, "document": text, "written_to": written}),
    ));
    Ok(())
}
