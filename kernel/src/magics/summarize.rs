//! `%summarize REF`: what was found, why it matters, next steps — streamed from
//! Claude on Bedrock, or from the built-in catalog.

use clap::Parser;
use runbook::advisor::catalog::CatalogAdvisor;
use runbook::advisor::{Advisor, AdvisorError, AdvisorKind};
use runbook::finding::FindingRef;
use runbook::settings::Lang;
use serde_json::json;

use crate::context::{Context, MagicError, StreamingDisplay, lang_parser};
use crate::render::plan as render;
use crate::workflow;

/// Explain a finding: what was found, why it matters, actionable next steps (streamed)
#[derive(Debug, Parser)]
pub struct SummarizeArgs {
    /// A number from the last %findings listing, or a finding Id/ARN
    #[arg(value_name = "REF", value_parser = |s: &str| s.parse::<FindingRef>())]
    pub reference: FindingRef,
    /// Answer language (default: the lang setting)
    #[arg(long, value_parser = lang_parser())]
    pub lang: Option<Lang>,
}

fn waiting_text(kind: &AdvisorKind, lang: Lang) -> String {
    match lang {
        Lang::En => format!("_Asking {}…_", kind.label()),
        Lang::Ja => format!("_{} に問い合わせています…_", kind.label()),
    }
}

pub async fn run(args: SummarizeArgs, cx: &mut Context<'_>) -> Result<(), MagicError> {
    let out = cx.out;
    let lang = args.lang.unwrap_or(cx.settings().lang);
    let finding = cx.resolve(&args.reference).await?;
    let (advisor, _) = cx.advisor().await?;
    let policy = cx.consult(&finding).await?;
    let extra = json!({"finding_id": finding.id, "lang": lang.code()});
    let kind = advisor.kind();
    let waiting = waiting_text(&kind, lang);
    let mut stream = StreamingDisplay::start(out, kind, extra, &waiting, "streaming…");
    let mut on_text = |piece: &str| stream.push(piece);
    let outcome = cx
        .cancellable(advisor.summarize(&finding, lang, policy.as_ref(), &mut on_text))
        .await;
    match outcome {
        Ok(Ok(summary)) => {
            let bundle = render::explanation(
                &summary.markdown,
                &summary.advisor,
                summary.usage.as_ref(),
                None,
                stream.extra.clone(),
            );
            stream.replace(crate::render::kb::with_policy(
                bundle,
                policy.as_ref(),
                lang,
            ));
            Ok(())
        }
        Ok(Err(error)) if error.catalog_may_stand_in() && runbook::catalog::covers(&finding) => {
            stream.show("", None, Some(&format!("stopped: {error}")));
            out.display(workflow::stand_in_notice(
                &error,
                lang,
                workflow::StandIn::Explanation,
            ));
            let summary = CatalogAdvisor
                .summarize(&finding, lang, policy.as_ref(), &mut |_| {})
                .await?;
            out.display(render::explanation(
                &summary.markdown,
                &summary.advisor,
                None,
                None,
                json!({"finding_id": finding.id, "lang": lang.code(), "stand_in": true}),
            ));
            Err(error.into())
        }
        Ok(Err(error)) => {
            let partial = match &error {
                AdvisorError::Stream { partial, .. } => partial.clone(),
                _ => stream.text.clone(),
            };
            stream.show(&partial, None, Some(&format!("stopped: {error}")));
            Err(error.into())
        }
        Err(interrupted) => {
            // Keep what had arrived.
            stream.show(&stream.text, None, Some("interrupted"));
            Err(interrupted)
        }
    }
}
