//! `%kb [QUERY] [--top N]`: search the organisation's security policies (the
//! `kb` setting); without a query, what the knowledge base holds.

use clap::Parser;
use runbook::kb;

use crate::context::{Context, ErrorKind, MagicError};
use crate::render::kb as render;

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

pub async fn run(args: KbArgs, cx: &mut Context<'_>) -> Result<(), MagicError> {
    let Some(kb) = cx.knowledge_base().await? else {
        return Err(MagicError::new(
            ErrorKind::Config,
            "no knowledge base is configured; set one with %config kb=FOLDER (a folder of Markdown policy files, e.g. kb=policies) or %config kb=KB_ID (a Bedrock Knowledge Base id such as KB12345678)",
        ));
    };
    let query = args.query.join(" ");
    if query.trim().is_empty() {
        let overview = cx.cancellable(kb.overview()).await??;
        cx.out.display(render::overview(&overview));
        return Ok(());
    }
    let result = cx
        .cancellable(kb.search(query.trim(), usize::from(args.top)))
        .await??;
    cx.out
        .display(render::passages(&result, usize::from(args.top)));
    Ok(())
}
