//! `%kb [QUERY] [--top N]`: search the organisation's security policies (the
//! `kb` setting); without a query, what the knowledge base holds. Also the one
//! place the other magics get the knowledge base and consult it for a finding.

use std::sync::Arc;

use clap::Parser;
use runbook::finding::Finding;
use runbook::kb::{self, KnowledgeBase, PolicyContext};

use super::{ErrorKind, MagicError};
use crate::output::{Output, cancellable};
use crate::render::kb as render;
use crate::session::{KbSlot, Session};

/// Search the organisation's security policies (%config kb=FOLDER|KB_ID): passages with source, heading and score; without a query, what the knowledge base holds
#[derive(Debug, Parser)]
pub struct KbArgs {
    /// How many passages to show, 1 to 50
    #[arg(long, default_value_t = kb::DEFAULT_TOP as u16, value_parser = clap::value_parser!(u16).range(1..=kb::MAX_TOP as i64))]
    pub top: u16,
    /// What to look for, in English or Japanese (the rest of the line)
    #[arg(value_name = "QUERY", num_args = 0..)]
    pub query: Vec<String>,
}

/// The configured knowledge base, opened again only when the settings naming it change.
pub async fn knowledge_base(
    session: &mut Session,
    out: &dyn Output,
) -> Result<Option<Arc<dyn KnowledgeBase>>, MagicError> {
    let Some(value) = session.settings.kb.clone() else {
        session.kb = None;
        return Ok(None);
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let key = format!(
        "{value}\u{0}{}\u{0}{:?}\u{0}{:?}",
        cwd.display(),
        session.settings.region,
        session.settings.profile
    );
    if let Some(slot) = &session.kb
        && slot.key == key
    {
        return Ok(Some(slot.kb.clone()));
    }
    let opened = cancellable(out, kb::open(&session.settings, &cwd)).await??;
    let Some(opened) = opened else {
        return Ok(None);
    };
    session.kb = Some(KbSlot {
        key,
        kb: opened.clone(),
    });
    Ok(Some(opened))
}

/// What the knowledge base says about a finding; `None` when none is configured.
pub async fn consult(
    session: &mut Session,
    finding: &Finding,
    out: &dyn Output,
) -> Result<Option<PolicyContext>, MagicError> {
    let Some(kb) = knowledge_base(session, out).await? else {
        return Ok(None);
    };
    let context = cancellable(out, kb::consult(kb.as_ref(), finding)).await??;
    Ok(Some(context))
}

pub async fn run(args: KbArgs, session: &mut Session, out: &dyn Output) -> Result<(), MagicError> {
    let Some(kb) = knowledge_base(session, out).await? else {
        return Err(MagicError::new(
            ErrorKind::Config,
            "no knowledge base is configured; set one with %config kb=FOLDER (a folder of Markdown policy files, e.g. kb=policies) or %config kb=KB_ID (a Bedrock Knowledge Base id such as KB12345678)",
        ));
    };
    let query = args.query.join(" ");
    if query.trim().is_empty() {
        let overview = cancellable(out, kb.overview()).await??;
        out.display(render::overview(&overview));
        return Ok(());
    }
    let result = cancellable(out, kb.search(query.trim(), usize::from(args.top))).await??;
    out.display(render::passages(&result, usize::from(args.top)));
    Ok(())
}
