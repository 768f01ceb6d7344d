//! `%remediate REF` / `%%remediate REF`: a typed remediation plan, validated
//! against the finding, with its live state, rollback, permissions, CLI and Python.

use clap::Parser;
use runbook::advisor::{Proposal, ProposalError};
use runbook::catalog::CatalogError;
use runbook::finding::FindingRef;
use runbook::settings::Lang;
use serde_json::json;

use runbook::audit::AuditRecord;
use runbook::execute;

use super::MagicError;
use super::approve::AUDIT_ERROR;
use super::finding::resolve;
use super::findings::connect;
use super::summarize::{StreamingDisplay, advisor_for, lang_parser};
use crate::output::{Output, cancellable};
use crate::render::plan as render;
use crate::session::{Session, StoredPlan};

pub const PLAN_REJECTED: &str = "PlanRejected";

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

impl From<ProposalError> for MagicError {
    fn from(e: ProposalError) -> MagicError {
        match e {
            ProposalError::Advisor(a) => a.into(),
            ProposalError::Catalog(CatalogError::Cloud(c)) => c.into(),
            ProposalError::Catalog(CatalogError::Rejected(r)) => MagicError::new(
                PLAN_REJECTED,
                format!("the proposed plan was rejected and nothing was stored: {r}"),
            ),
            ProposalError::Catalog(other) => MagicError::new(PLAN_REJECTED, other.to_string()),
            ProposalError::NoProposal(text) => MagicError::new(
                PLAN_REJECTED,
                format!("the model proposed no plan, so nothing was stored ({text})"),
            ),
        }
    }
}

pub async fn run(
    args: RemediateArgs,
    instructions: Option<String>,
    session: &mut Session,
    out: &dyn Output,
) -> Result<(), MagicError> {
    let lang = args.lang.unwrap_or(session.settings.lang);
    let finding = resolve(session, &args.reference, out).await?;
    propose(finding, lang, instructions.as_deref(), session, out).await?;
    Ok(())
}

/// What [`propose`] produced.
#[derive(Debug, Clone)]
pub enum Proposed {
    /// A validated plan, on the audit trail and stored in the session.
    Plan(Box<StoredPlan>),
    /// Advice for a control the catalog does not cover (not executable).
    Advice(String),
    /// The finding needs no change.
    NothingToDo(String),
}

/// The %remediate path, shared with %ask: asks the advisor, validates the plan,
/// records it in the audit trail, stores it in the session and shows it.
pub async fn propose(
    finding: runbook::finding::Finding,
    lang: Lang,
    instructions: Option<&str>,
    session: &mut Session,
    out: &dyn Output,
) -> Result<Proposed, MagicError> {
    let connected = connect(session, out).await?;
    let (advisor, _) = advisor_for(session, out).await?;
    let policy = super::kb::consult(session, &finding, out).await?;
    let kind = advisor.kind();
    let waiting = match lang {
        Lang::En => format!("_Planning with {}…_", kind.label()),
        Lang::Ja => format!("_{} で修復プランを作成しています…_", kind.label()),
    };
    let extra = json!({"finding_id": finding.id, "lang": lang.code()});
    let mut stream = StreamingDisplay::start(out, kind.clone(), extra, &waiting, "planning…");
    let mut on_text = |piece: &str| stream.push(piece);
    let proposal = cancellable(
        out,
        advisor.remediate(
            &finding,
            lang,
            instructions,
            connected.cloud.as_ref(),
            policy.as_ref(),
            &mut on_text,
        ),
    )
    .await?;
    let proposal = match proposal {
        Ok(p) => p,
        Err(ProposalError::Catalog(CatalogError::NothingToDo(why))) => {
            let text = match lang {
                Lang::En => format!("Nothing to do: {why}"),
                Lang::Ja => format!("対応不要: {why}"),
            };
            stream.show(&text, None, None);
            return Ok(Proposed::NothingToDo(why));
        }
        Err(e) => {
            let error: MagicError = e.into();
            stream.show(&stream.text, None, Some(&error.evalue));
            return Err(error);
        }
    };
    match proposal {
        Proposal::Advice {
            markdown,
            advisor,
            usage,
        } => {
            stream.replace(crate::render::kb::with_policy(
                render::advice(&markdown, &advisor, usage.as_ref(), lang),
                policy.as_ref(),
                lang,
            ));
            Ok(Proposed::Advice(markdown))
        }
        Proposal::Plan { plan, usage } => {
            // The proposal is on the record before anyone can approve it.
            let actor = cancellable(out, connected.cloud.caller_identity()).await??;
            let recorded = session.open_audit_log().and_then(|mut log| {
                log.append(AuditRecord::plan_proposed(&plan).by(actor))
                    .map_err(|e| e.to_string())
            });
            if let Err(e) = recorded {
                let error = MagicError::new(
                    AUDIT_ERROR,
                    format!(
                        "{e}; the plan was not stored (set %config audit_log=PATH to a writable file)"
                    ),
                );
                stream.show("", None, Some(&error.evalue));
                return Err(error);
            }
            let checks =
                cancellable(out, execute::precheck_all(&plan, connected.cloud.as_ref())).await?;
            stream.replace(crate::render::kb::with_policy(
                render::plan(&plan, &checks, &kind, usage.as_ref()),
                policy.as_ref(),
                lang,
            ));
            let id = plan.id.to_string();
            let stored = StoredPlan {
                plan: *plan,
                finding,
            };
            session.plans.insert(id.clone(), stored.clone());
            session.last_plan = Some(id);
            Ok(Proposed::Plan(Box::new(stored)))
        }
    }
}
