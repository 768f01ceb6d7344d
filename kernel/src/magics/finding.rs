//! `%finding REF`: one finding in full.

use clap::Parser;
use runbook::cloud::FetchProgress;
use runbook::finding::{Finding, FindingFilter, FindingRef};

use super::findings::connect;
use super::{ErrorKind, MagicError};
use crate::output::{Output, cancellable};
use crate::render::findings as render;
use crate::session::Session;

/// Show one finding in full: key facts, resources, remediation link and the raw ASFF JSON
#[derive(Debug, Parser)]
pub struct FindingArgs {
    /// A number from the last %findings listing, or a finding Id/ARN
    #[arg(value_name = "REF", value_parser = |s: &str| s.parse::<FindingRef>())]
    pub reference: FindingRef,
}

/// Finds what a reference names: a number in the last listing, or an Id looked up
/// in the listing first and then in the backend.
pub async fn resolve(
    session: &mut Session,
    reference: &FindingRef,
    out: &dyn Output,
) -> Result<Finding, MagicError> {
    match reference {
        FindingRef::Index(n) => {
            let listing = session.listing.as_ref().ok_or_else(|| {
                MagicError::usage(format!(
                    "there is no listing to take finding {n} from: run %findings first, or give a finding Id"
                ))
            })?;
            let count = listing.findings.len();
            listing.findings.get(n - 1).cloned().ok_or_else(|| {
                MagicError::usage(if count == 0 {
                    format!("the last listing is empty, so it has no finding {n}")
                } else {
                    format!("there is no finding {n} in the last listing; accepted: 1 to {count}, or a finding Id")
                })
            })
        }
        FindingRef::Id(id) => {
            if let Some(found) = session
                .listing
                .as_ref()
                .and_then(|l| l.findings.iter().find(|f| &f.id == id))
            {
                return Ok(found.clone());
            }
            let connected = connect(session, out).await?;
            let filter = FindingFilter::by_ids([id.clone()]);
            let mut ignore = |_: FetchProgress| {};
            let found =
                cancellable(out, connected.cloud.get_findings(&filter, &mut ignore)).await??;
            found.into_iter().next().ok_or_else(|| {
                MagicError::new(
                    ErrorKind::NotFound,
                    format!(
                        "no finding with Id {id} in the {} backend",
                        connected.describe().kind
                    ),
                )
            })
        }
    }
}

pub async fn run(
    args: FindingArgs,
    session: &mut Session,
    out: &dyn Output,
) -> Result<(), MagicError> {
    let finding = resolve(session, &args.reference, out).await?;
    out.display(render::detail(&finding));
    Ok(())
}
