//! `%ask QUESTION` / `%%ask`: a conversation with Claude on Bedrock that reads
//! live findings through tools and proposes remediations, which run only after
//! the human types the plan id (the same approval as `%approve`).

use std::sync::Arc;

use clap::Parser;
use runbook::advisor::bedrock::{BedrockModel, Request, Response};
use runbook::advisor::{Advisor, AdvisorError, AdvisorKind, TextSink, ToolCall, prompts};
use runbook::agent::{
    self, AgentConfig, AgentError, ChatModel, Ending, ToolHost, ToolInput, ToolOptions, ToolOutcome,
};
use runbook::cloud::FetchProgress;
use runbook::finding::{Finding, FindingFilter, FindingRef};
use runbook::settings::Lang;
use serde_json::{Value, json};

use crate::context::{Context, DisplayHandle, ErrorKind, MagicError, Output, lang_parser};
use crate::render::ask as render;
use crate::workflow::{self, Executed, Proposed, outcome_error};

/// Ask in plain language; the model reads live findings through tools and may propose a remediation, which runs only if you type its plan id (%%ask: the body is the question)
#[derive(Debug, Parser)]
pub struct AskArgs {
    /// Forget the conversation so far and start afresh
    #[arg(long)]
    pub new: bool,
    /// Answer language (default: the lang setting)
    #[arg(long, value_parser = lang_parser())]
    pub lang: Option<Lang>,
    /// The question (the rest of the line)
    #[arg(value_name = "QUESTION", trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub question: Vec<String>,
}

/// Races a model request against the cell's interruption.
struct Interruptible<'a> {
    model: &'a BedrockModel,
    out: &'a dyn Output,
}

#[async_trait::async_trait]
impl ChatModel for Interruptible<'_> {
    async fn converse(
        &self,
        request: &Request,
        on_text: &mut TextSink<'_>,
    ) -> Result<Response, AdvisorError> {
        let token = self.out.cancellation();
        tokio::select! {
            biased;
            _ = token.cancelled() => Err(AdvisorError::Interrupted),
            response = self.model.converse(request, on_text) => response,
        }
    }
}

/// Runs the tools against the session and shows the conversation as it goes.
struct KernelHost<'a> {
    cx: Context<'a>,
    lang: Lang,
    kind: AdvisorKind,
    /// The display of the model call now streaming: (round, handle, text so far).
    current: Option<(u32, DisplayHandle, String)>,
    tools: Vec<(String, DisplayHandle)>,
}

impl KernelHost<'_> {
    fn show_text(&self, status: Option<&str>) {
        if let Some((round, handle, text)) = &self.current {
            self.cx.out.update(
                handle,
                render::answer(text, &self.kind, None, status, json!({"round": round})),
            );
        }
    }
}

/// A tool error for the model, unless the user interrupted (then the whole cell stops).
fn tool_error(error: MagicError) -> Result<ToolOutcome, MagicError> {
    if error.kind == ErrorKind::Interrupted {
        Err(error)
    } else {
        Ok(ToolOutcome::error(format!(
            "{}: {}",
            error.ename(),
            error.evalue
        )))
    }
}

fn finding_brief(f: &Finding, number: Option<usize>) -> Value {
    json!({
        "listing_number": number,
        "id": f.id,
        "title": f.title,
        "severity": f.severity.label(),
        "control_id": f.control_id.as_ref().map(|c| c.as_str()),
        "account": f.account.as_str(),
        "region": f.region,
        "resources": f.resources.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        "workflow": f.workflow.label(),
    })
}

fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

impl KernelHost<'_> {
    fn listing_number(&self, finding: &Finding) -> Option<usize> {
        self.cx
            .session
            .listing
            .as_ref()
            .and_then(|l| l.findings.iter().position(|f| f.id == finding.id))
            .map(|i| i + 1)
    }

    async fn findings_by_severity(
        &mut self,
        severity: runbook::Severity,
        limit: usize,
    ) -> Result<ToolOutcome, MagicError> {
        let connected = match self.cx.cloud().await {
            Ok(c) => c,
            Err(e) => return tool_error(e),
        };
        let filter = FindingFilter {
            severities: vec![severity],
            limit: Some(limit),
            ..FindingFilter::default()
        };
        let mut ignore = |_: FetchProgress, _: &[runbook::finding::Finding]| {};
        let found = self
            .cx
            .cancellable(connected.cloud.get_findings(&filter, &mut ignore))
            .await?;
        let findings = match found {
            Ok(f) => f,
            Err(e) => return tool_error(e.into()),
        };
        let briefs: Vec<Value> = findings
            .iter()
            .map(|f| finding_brief(f, self.listing_number(f)))
            .collect();
        let summary = format!(
            "{} open {} finding{}",
            findings.len(),
            severity.label(),
            if findings.len() == 1 { "" } else { "s" }
        );
        Ok(ToolOutcome::ok(
            summary,
            json!({
                "severity": severity.label(),
                "limit": limit,
                "count": findings.len(),
                "findings": briefs,
            }),
        ))
    }

    async fn finding_details(&mut self, reference: &FindingRef) -> Result<ToolOutcome, MagicError> {
        let finding = match self.cx.resolve(reference).await {
            Ok(f) => f,
            Err(e) => return tool_error(e),
        };
        let mut content = finding_brief(&finding, self.listing_number(&finding));
        if let Some(map) = content.as_object_mut() {
            map.insert("description".into(), json!(cut(&finding.description, 4000)));
            map.insert(
                "compliance_status".into(),
                json!(finding.compliance.status.map(|s| s.label())),
            );
            map.insert("remediation_url".into(), json!(finding.remediation_url));
            map.insert(
                "resource_details".into(),
                json!(
                    finding
                        .resources
                        .iter()
                        .map(|r| json!({"type": r.resource_type, "id": r.id, "region": r.region}))
                        .collect::<Vec<_>>()
                ),
            );
        }
        let summary = format!(
            "{} · {} · {}",
            finding.severity.label(),
            finding
                .control_id
                .as_ref()
                .map_or("no control", |c| c.as_str()),
            cut(&finding.title, 100)
        );
        Ok(ToolOutcome::ok(summary, content))
    }

    async fn search_policies(&mut self, query: &str) -> Result<ToolOutcome, MagicError> {
        let kb = match self.cx.knowledge_base().await {
            Ok(Some(kb)) => kb,
            Ok(None) => {
                return Ok(ToolOutcome::error(
                    "no knowledge base is configured, so policies cannot be searched",
                ));
            }
            Err(e) => return tool_error(e),
        };
        let found = match self
            .cx
            .cancellable(kb.search(query, runbook::kb::DEFAULT_TOP))
            .await?
        {
            Ok(found) => found,
            Err(e) => return tool_error(e.into()),
        };
        let passages: Vec<Value> = found
            .passages
            .iter()
            .map(|p| json!({"source": p.source, "heading": p.heading, "score": p.score, "text": cut(&p.text, 1500)}))
            .collect();
        Ok(ToolOutcome::ok(
            format!(
                "{} policy passage(s) from {}",
                passages.len(),
                found.kb.label()
            ),
            json!({"query": query, "passages": passages}),
        ))
    }

    async fn propose(&mut self, reference: &FindingRef) -> Result<ToolOutcome, MagicError> {
        let finding = match self.cx.resolve(reference).await {
            Ok(f) => f,
            Err(e) => return tool_error(e),
        };
        let proposed = match workflow::propose(&mut self.cx, finding, self.lang, None).await {
            Ok(p) => p,
            Err(e) => return tool_error(e),
        };
        let stored = match proposed {
            Proposed::NothingToDo(why) => {
                return Ok(ToolOutcome::ok(
                    format!("nothing to do: {why}"),
                    json!({"status": "nothing_to_do", "message": why}),
                ));
            }
            Proposed::Advice(markdown) => {
                return Ok(ToolOutcome::ok(
                    "no automated remediation: advice shown to the user",
                    json!({
                        "status": "advice_only",
                        "message": "the runbook has no automated remediation for this control; this advice was shown to the user and nothing was changed",
                        "advice": cut(&markdown, 4000),
                    }),
                ));
            }
            Proposed::Plan(stored) => stored,
        };
        let plan = &stored.plan;
        let id = plan.id.to_string();
        let actions: Vec<String> = plan.actions.iter().map(|a| a.describe(plan.lang)).collect();
        if !self.cx.out.stdin_allowed() {
            return Ok(ToolOutcome::ok(
                format!("{id} kept for a later %approve (this frontend cannot ask)"),
                json!({
                    "status": "pending_approval",
                    "plan_id": id,
                    "actions": actions,
                    "message": format!("nothing was changed: this frontend cannot ask the user, so the plan is kept; the user can apply it later with %approve {id}"),
                }),
            ));
        }
        match workflow::approve_and_execute(&mut self.cx, plan, false).await {
            Ok(Executed::AlreadyDone) => Ok(ToolOutcome::ok(
                format!("{id} had already been applied"),
                json!({"status": "already_applied", "plan_id": id, "message": "the audit trail shows this plan already succeeded; nothing was run again"}),
            )),
            Ok(Executed::Ran(report)) => match outcome_error(&report) {
                None => {
                    let finding_update = match &report.finding_update {
                        Some(Ok(u)) if u.all_processed() => {
                            "the finding was marked RESOLVED with a note"
                        }
                        Some(Ok(_)) => "the finding could not be marked RESOLVED",
                        Some(Err(_)) => "updating the finding failed",
                        None => "the finding was not updated",
                    };
                    Ok(ToolOutcome::ok(
                        format!("approved by the user and {}", report.outcome.label()),
                        json!({
                            "status": report.outcome.label(),
                            "approved": true,
                            "plan_id": id,
                            "actions": actions,
                            "message": format!("approved by the user; the plan ran ({}), and {finding_update}", report.outcome.label()),
                        }),
                    ))
                }
                Some(error) if error.kind == ErrorKind::Interrupted => Err(error),
                Some(error) => Ok(ToolOutcome::error(format!(
                    "approved by the user, but the plan did not complete: {}: {}",
                    error.ename(),
                    error.evalue
                ))),
            },
            Ok(Executed::Refused(why)) => Ok(ToolOutcome::ok(
                format!("{id} denied by the user"),
                json!({
                    "status": "denied",
                    "plan_id": id,
                    "message": format!("denied by the user: nothing was changed ({why})"),
                }),
            )),
            Err(error) => tool_error(error),
        }
    }
}

#[async_trait::async_trait]
impl ToolHost for KernelHost<'_> {
    type Error = MagicError;

    fn text(&mut self, round: u32, piece: &str) {
        let same_round = matches!(&self.current, Some((r, _, _)) if *r == round);
        if same_round {
            if let Some((_, _, text)) = &mut self.current {
                text.push_str(piece);
            }
        } else {
            let handle = self.cx.out.display(render::answer(
                piece,
                &self.kind,
                None,
                Some("streaming…"),
                json!({"round": round}),
            ));
            self.current = Some((round, handle, piece.to_string()));
        }
        self.show_text(Some("streaming…"));
    }

    fn answered(&mut self, round: u32, response: &Response) {
        if matches!(&self.current, Some((r, _, _)) if *r == round) {
            if !response.tool_calls.is_empty() {
                self.show_text(None);
            }
        } else {
            self.current = None;
        }
    }

    fn tool_started(&mut self, call: &ToolCall) {
        let handle = self
            .cx
            .out
            .display(render::tool_call(&call.name, &call.input, None));
        self.tools.push((call.id.clone(), handle));
    }

    async fn run_tool(
        &mut self,
        _call: &ToolCall,
        input: ToolInput,
    ) -> Result<ToolOutcome, MagicError> {
        match input {
            ToolInput::FindingsBySeverity { severity, limit } => {
                self.findings_by_severity(severity, limit).await
            }
            ToolInput::FindingDetails { finding } => self.finding_details(&finding).await,
            ToolInput::ProposeRemediation { finding } => self.propose(&finding).await,
            ToolInput::SearchPolicies { query } => self.search_policies(&query).await,
        }
    }

    fn tool_finished(&mut self, call: &ToolCall, outcome: &ToolOutcome) {
        if let Some((_, handle)) = self.tools.iter().rev().find(|(id, _)| *id == call.id) {
            self.cx.out.update(
                handle,
                render::tool_call(&call.name, &call.input, Some(outcome)),
            );
        }
    }
}

fn question_of(args: &AskArgs, body: Option<&str>) -> String {
    let mut parts = Vec::new();
    let words = args.question.join(" ");
    if !words.trim().is_empty() {
        parts.push(words.trim().to_string());
    }
    if let Some(body) = body.map(str::trim).filter(|b| !b.is_empty()) {
        parts.push(body.to_string());
    }
    parts.join("\n")
}

pub async fn run(
    args: AskArgs,
    body: Option<String>,
    cx: &mut Context<'_>,
) -> Result<(), MagicError> {
    let out = cx.out;
    let lang = args.lang.unwrap_or(cx.settings().lang);
    let question = question_of(&args, body.as_deref());
    if args.new {
        cx.session.conversation.clear();
    }
    if question.is_empty() {
        if args.new {
            out.display(render::note(
                "The conversation was cleared; the next %ask starts afresh.",
                json!({"cleared": true, "turns": 0}),
            ));
            return Ok(());
        }
        return Err(MagicError::usage(
            "a question is required: %ask QUESTION, or %%ask with the question in the cell body",
        ));
    }
    let (advisor, reason): (Arc<dyn Advisor>, String) = cx.advisor().await?;
    let Some(model) = advisor.bedrock_model() else {
        out.display(render::needs_model(&reason, lang));
        return Ok(());
    };
    let kind = advisor.kind();
    let config = AgentConfig {
        system: prompts::agent_system(lang, cx.settings().max_tool_rounds),
        tools: agent::tool_specs(ToolOptions {
            knowledge_base: cx.settings().kb.is_some(),
        }),
        max_tool_rounds: cx.settings().max_tool_rounds,
    };
    let history = cx.session.conversation.clone();
    let model = Interruptible { model, out };
    let mut host = KernelHost {
        cx: cx.reborrow(),
        lang,
        kind: kind.clone(),
        current: None,
        tools: Vec::new(),
    };
    let result = agent::ask(&model, &history, &question, &config, &mut host).await;
    match result {
        Ok(answer) => {
            let status = match answer.ending {
                Ending::Answered => None,
                Ending::RoundLimit => Some(match lang {
                    Lang::En => format!(
                        "stopped: the limit of {} tool rounds per question was reached (%config max_tool_rounds=N)",
                        config.max_tool_rounds
                    ),
                    Lang::Ja => format!(
                        "停止: 1 つの質問あたりのツール呼び出しの上限 ({} 回) に達しました (%config max_tool_rounds=N)",
                        config.max_tool_rounds
                    ),
                }),
                Ending::MaxTokens => {
                    Some("the answer was cut by the model's token limit".to_string())
                }
            };
            let extra = json!({
                "question": question,
                "lang": lang.code(),
                "ending": answer.ending,
                "rounds": answer.rounds,
                "tools": answer.tools,
                "conversation_turns": history.len() + answer.turns.len(),
            });
            let bundle = render::answer(
                &answer.text,
                &kind,
                Some(&answer.usage),
                status.as_deref(),
                extra,
            );
            // The last model call's display becomes the answer; a new one when it
            // showed no text (or tool calls came after it).
            match host.current.take() {
                Some((_, handle, _)) if answer.ending != Ending::RoundLimit => {
                    out.update(&handle, bundle)
                }
                _ => {
                    out.display(bundle);
                }
            }
            host.cx.session.conversation.extend(answer.turns);
            Ok(())
        }
        Err(AgentError::Model { error, .. }) => {
            let magic: MagicError = error.clone().into();
            host.show_text(Some(&format!("stopped: {error}")));
            Err(magic)
        }
        Err(AgentError::Host(error)) => {
            host.show_text(Some(&error.evalue));
            Err(error)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::context::Session;
    use crate::magics::run_cell;
    use crate::output::recording::RecordingOutput;
    use runbook::settings::{BackendChoice, Settings};

    fn sandbox_session() -> Session {
        let mut settings = Settings::default();
        settings.backend = BackendChoice::Sandbox;
        Session::new(settings, Vec::new())
    }

    #[tokio::test]
    async fn the_catalog_explains_that_a_model_is_needed() {
        let mut s = sandbox_session();
        let out = RecordingOutput::new();
        run_cell("%ask What's critical right now?", &mut s, &out)
            .await
            .unwrap();
        let bundles = out.last_bundles();
        assert_eq!(bundles.len(), 1);
        assert_eq!(bundles[0].json["needs_model"], true);
        assert!(bundles[0].plain.contains("%config model="));
        assert!(bundles[0].plain.contains("%findings"));
        assert!(s.conversation.is_empty());
    }

    #[tokio::test]
    async fn a_question_is_required_unless_starting_afresh() {
        let mut s = sandbox_session();
        let out = RecordingOutput::new();
        let err = run_cell("%ask", &mut s, &out).await.unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::Usage);
        run_cell("%ask --new", &mut s, &out).await.unwrap();
        assert_eq!(out.last_bundles()[0].json["cleared"], true);
    }

    #[test]
    fn body_and_words_make_the_question() {
        let args =
            AskArgs::try_parse_from(["%ask", "--lang", "ja", "What", "is", "open?"]).unwrap();
        assert_eq!(args.lang, Some(Lang::Ja));
        assert_eq!(question_of(&args, None), "What is open?");
        let args = AskArgs::try_parse_from(["%ask"]).unwrap();
        assert_eq!(
            question_of(&args, Some("\nList the critical ones.\n")),
            "List the critical ones."
        );
    }
}
