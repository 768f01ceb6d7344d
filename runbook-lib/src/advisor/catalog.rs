//! The advisor without a model: explanations and plans from the built-in catalog.

use async_trait::async_trait;

use super::{Advisor, AdvisorError, AdvisorKind, Proposal, ProposalError, Summary, TextSink};
use crate::catalog::{self, Explanation, PolicyValues};
use crate::cloud::Cloud;
use crate::finding::Finding;
use crate::kb::PolicyContext;
use crate::settings::Lang;

pub struct CatalogAdvisor;

fn headings(lang: Lang) -> [&'static str; 4] {
    match lang {
        Lang::En => [
            "What was found",
            "Why it matters",
            "Next steps",
            "Source: the built-in remediation catalog (not a model).",
        ],
        Lang::Ja => [
            "検出内容",
            "リスク",
            "次のステップ",
            "出典: 組み込みの修復カタログ (モデルではありません)。",
        ],
    }
}

/// The explanation as Markdown; its text comes from the catalog, not from the finding.
pub fn explanation_markdown(explanation: &Explanation, lang: Lang) -> String {
    let [what, why, next, source] = headings(lang);
    let steps: String = explanation
        .next_steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{}. {s}\n", i + 1))
        .collect();
    format!(
        "### {what}\n{}\n\n### {why}\n{}\n\n### {next}\n{steps}\n_{source}_\n",
        explanation.what, explanation.why
    )
}

#[async_trait]
impl Advisor for CatalogAdvisor {
    fn kind(&self) -> AdvisorKind {
        AdvisorKind::Catalog
    }

    async fn summarize(
        &self,
        finding: &Finding,
        lang: Lang,
        _policy: Option<&PolicyContext>,
        on_text: &mut TextSink<'_>,
    ) -> Result<Summary, AdvisorError> {
        let markdown = explanation_markdown(&catalog::explain(finding, lang), lang);
        on_text(&markdown);
        Ok(Summary {
            markdown,
            advisor: AdvisorKind::Catalog,
            usage: None,
        })
    }

    async fn remediate(
        &self,
        finding: &Finding,
        lang: Lang,
        _instructions: Option<&str>,
        cloud: &dyn Cloud,
        policy: Option<&PolicyContext>,
        on_text: &mut TextSink<'_>,
    ) -> Result<Proposal, ProposalError> {
        let explanation = catalog::explain(finding, lang);
        if !explanation.covered {
            let markdown = explanation_markdown(&explanation, lang);
            on_text(&markdown);
            return Ok(Proposal::Advice {
                markdown,
                advisor: AdvisorKind::Catalog,
                usage: None,
            });
        }
        let none = PolicyValues::new();
        let values = policy.map_or(&none, |p| &p.values);
        let plan = crate::planner::plan(finding, cloud, lang, values).await?;
        Ok(Proposal::Plan {
            plan: Box::new(plan),
            usage: None,
        })
    }
}
