//! `%summarize REF`: what was found, why it matters, next steps — streamed from
//! Claude on Bedrock, or from the built-in catalog.

use std::sync::Arc;

use clap::Parser;
use runbook::advisor::{self, Advisor, AdvisorError, AdvisorKind};
use runbook::finding::FindingRef;
use runbook::settings::{Lang, SettingKey};
use serde_json::json;

use super::MagicError;
use super::finding::resolve;
use super::findings::connect;
use crate::output::{DisplayHandle, Output, cancellable};
use crate::render::plan as render;
use crate::session::{ChosenAdvisor, Session};

/// `--lang en|ja`, shared by the magics that write in the session language.
pub fn lang_parser() -> impl clap::builder::TypedValueParser<Value = Lang> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["en", "ja"]).try_map(|s: String| s.parse::<Lang>())
}

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

/// The advisor for the session's settings, chosen again only when they change.
pub async fn advisor_for(
    session: &mut Session,
    out: &dyn Output,
) -> Result<(Arc<dyn Advisor>, String), MagicError> {
    let connected = connect(session, out).await?;
    let backend = connected.describe().kind;
    let settings = &session.settings;
    let key = (
        settings.model.clone(),
        settings.region.clone(),
        settings.profile.clone(),
        format!(
            "{backend}/{}/{}",
            settings.source(SettingKey::Model),
            settings.max_tokens
        ),
    );
    if let Some(chosen) = &session.advisor
        && chosen.key == key
    {
        return Ok((chosen.advisor.clone(), chosen.reason.clone()));
    }
    let (advisor, reason) = cancellable(out, advisor::choose(settings, backend)).await??;
    session.advisor = Some(ChosenAdvisor {
        key,
        advisor: advisor.clone(),
        reason: reason.clone(),
    });
    Ok((advisor, reason))
}

/// One display that shows a model's text as it streams in, then its final form.
pub struct StreamingDisplay<'a> {
    out: &'a dyn Output,
    handle: DisplayHandle,
    kind: AdvisorKind,
    /// JSON fields every bundle of this display carries.
    pub extra: serde_json::Value,
    status: &'static str,
    /// Everything that has arrived so far.
    pub text: String,
}

impl<'a> StreamingDisplay<'a> {
    pub fn start(
        out: &'a dyn Output,
        kind: AdvisorKind,
        extra: serde_json::Value,
        waiting: &str,
        status: &'static str,
    ) -> StreamingDisplay<'a> {
        let handle = out.display(render::explanation(
            waiting,
            &kind,
            None,
            None,
            extra.clone(),
        ));
        StreamingDisplay {
            out,
            handle,
            kind,
            extra,
            status,
            text: String::new(),
        }
    }

    pub fn push(&mut self, piece: &str) {
        self.text.push_str(piece);
        let bundle = render::explanation(
            &self.text,
            &self.kind,
            None,
            Some(self.status),
            self.extra.clone(),
        );
        self.out.update(&self.handle, bundle);
    }

    /// Replaces the display with `text` and an optional status line.
    pub fn show(&self, text: &str, usage: Option<&runbook::advisor::Usage>, status: Option<&str>) {
        let bundle = render::explanation(text, &self.kind, usage, status, self.extra.clone());
        self.out.update(&self.handle, bundle);
    }

    pub fn replace(&self, bundle: crate::render::Bundle) {
        self.out.update(&self.handle, bundle);
    }
}

fn waiting_text(kind: &AdvisorKind, lang: Lang) -> String {
    match lang {
        Lang::En => format!("_Asking {}…_", kind.label()),
        Lang::Ja => format!("_{} に問い合わせています…_", kind.label()),
    }
}

pub async fn run(
    args: SummarizeArgs,
    session: &mut Session,
    out: &dyn Output,
) -> Result<(), MagicError> {
    let lang = args.lang.unwrap_or(session.settings.lang);
    let finding = resolve(session, &args.reference, out).await?;
    let (advisor, _) = advisor_for(session, out).await?;
    let policy = super::kb::consult(session, &finding, out).await?;
    let extra = json!({"finding_id": finding.id, "lang": lang.code()});
    let kind = advisor.kind();
    let waiting = waiting_text(&kind, lang);
    let mut stream = StreamingDisplay::start(out, kind, extra, &waiting, "streaming…");
    let mut on_text = |piece: &str| stream.push(piece);
    let outcome = cancellable(
        out,
        advisor.summarize(&finding, lang, policy.as_ref(), &mut on_text),
    )
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
