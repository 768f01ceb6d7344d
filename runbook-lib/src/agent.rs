//! The tool-use loop behind `%ask`: the model answers a question, calling tools
//! for live data, until it ends its turn or the round limit is reached.
//!
//! This module knows nothing of Jupyter. The caller supplies a [`ChatModel`]
//! (Claude on Bedrock) and a [`ToolHost`] that runs the tools: reading findings,
//! proposing a plan, asking the human to approve it. Every tool input is checked
//! here first; a malformed or invalid input goes back to the model as a tool
//! error, never as a crash. The model's text is only ever shown, never run.

use serde::Serialize;
use serde_json::{Value, json};

use crate::advisor::bedrock::{BedrockModel, Request, Response, ToolSpec};
use crate::advisor::{AdvisorError, TextSink, ToolCall, ToolResult, Turn, Usage};
use crate::finding::FindingRef;
use crate::severity::Severity;

pub const GET_FINDINGS_BY_SEVERITY: &str = "get_findings_by_severity";
pub const GET_FINDING_DETAILS: &str = "get_finding_details";
pub const PROPOSE_REMEDIATION: &str = "propose_remediation";
pub const SEARCH_POLICIES: &str = "search_policies";

/// Findings a listing tool returns unless the model asks for another number.
pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 100;

/// Sends one request to a model; [`BedrockModel`] in the kernel, a script in tests.
#[async_trait::async_trait]
pub trait ChatModel: Send + Sync {
    async fn converse(
        &self,
        request: &Request,
        on_text: &mut TextSink<'_>,
    ) -> Result<Response, AdvisorError>;
}

#[async_trait::async_trait]
impl ChatModel for BedrockModel {
    async fn converse(
        &self,
        request: &Request,
        on_text: &mut TextSink<'_>,
    ) -> Result<Response, AdvisorError> {
        BedrockModel::converse(self, request, on_text).await
    }
}

/// What the model may use besides the always-present tools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToolOptions {
    /// A knowledge base is configured: offer `search_policies`.
    pub knowledge_base: bool,
}

fn finding_property() -> Value {
    json!({
        "type": ["integer", "string"],
        "description": "A number from the user's last %findings listing (e.g. 3), or a finding Id (ARN)"
    })
}

/// The tools offered to the model, in a stable order.
pub fn tool_specs(options: ToolOptions) -> Vec<ToolSpec> {
    let severities: Vec<&str> = Severity::ALL.iter().rev().map(|s| s.label()).collect();
    let mut tools = vec![
        ToolSpec {
            name: GET_FINDINGS_BY_SEVERITY.to_string(),
            description: "List open (failed, active, NEW or NOTIFIED) AWS Security Hub findings of one severity, most recent first.".to_string(),
            schema: json!({
                "type": "object",
                "properties": {
                    "severity": {
                        "type": "string",
                        "enum": severities,
                        "description": "The severity label"
                    },
                    "limit": {
                        "type": ["integer", "string"],
                        "description": format!("How many findings to return, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}); a number or a string holding one")
                    }
                },
                "required": ["severity"]
            }),
        },
        ToolSpec {
            name: GET_FINDING_DETAILS.to_string(),
            description: "One finding in detail: title, description, resources, compliance, remediation link.".to_string(),
            schema: json!({
                "type": "object",
                "properties": {"finding": finding_property()},
                "required": ["finding"]
            }),
        },
        ToolSpec {
            name: PROPOSE_REMEDIATION.to_string(),
            description: "Propose a remediation plan for one finding. The plan is built from the runbook's catalog and validated against the finding; the user is then asked to approve it, and the result (applied, denied, or kept for later) comes back.".to_string(),
            schema: json!({
                "type": "object",
                "properties": {"finding": finding_property()},
                "required": ["finding"]
            }),
        },
    ];
    // With a knowledge base configured, the model may search the organisation's policies.
    if options.knowledge_base {
        tools.push(ToolSpec {
            name: SEARCH_POLICIES.to_string(),
            description:
                "Search the organisation's security policies; returns passages with their sources."
                    .to_string(),
            schema: json!({
                "type": "object",
                "properties": {"query": {"type": "string", "description": "What to look for"}},
                "required": ["query"]
            }),
        });
    }
    tools
}

/// A tool call whose input was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolInput {
    FindingsBySeverity { severity: Severity, limit: usize },
    FindingDetails { finding: FindingRef },
    ProposeRemediation { finding: FindingRef },
    SearchPolicies { query: String },
}

fn object(call: &ToolCall) -> Result<&serde_json::Map<String, Value>, String> {
    if !call.input_is_json {
        return Err(format!(
            "the input of {} was not valid JSON; send a JSON object",
            call.name
        ));
    }
    call.input
        .as_object()
        .ok_or_else(|| format!("the input of {} must be a JSON object", call.name))
}

fn finding_ref(input: &serde_json::Map<String, Value>) -> Result<FindingRef, String> {
    let raw = match input.get("finding") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err("finding must be a listing number or a finding Id (a string)".to_string());
        }
        None => return Err("finding is required: a listing number or a finding Id".to_string()),
    };
    raw.parse::<FindingRef>().map_err(|e| e.to_string())
}

fn limit(value: Option<&Value>) -> Result<usize, String> {
    let parsed = match value {
        None | Some(Value::Null) => return Ok(DEFAULT_LIMIT),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(DEFAULT_LIMIT),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    match parsed {
        Some(n) if n >= 1 && n <= MAX_LIMIT as i64 => Ok(n as usize),
        _ => Err(format!(
            "limit must be a whole number from 1 to {MAX_LIMIT} (or a string holding one)"
        )),
    }
}

/// Checks a tool call against the offered tools; the error goes back to the model.
pub fn parse_input(call: &ToolCall, tools: &[ToolSpec]) -> Result<ToolInput, String> {
    if !tools.iter().any(|t| t.name == call.name) {
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        return Err(format!(
            "there is no tool named {:?}; the tools are: {}",
            call.name.chars().take(80).collect::<String>(),
            names.join(", ")
        ));
    }
    let input = object(call)?;
    match call.name.as_str() {
        GET_FINDINGS_BY_SEVERITY => {
            let severity = match input.get("severity") {
                Some(Value::String(s)) => s.parse::<Severity>().map_err(|e| e.to_string())?,
                _ => {
                    return Err(
                        "severity is required: one of CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL"
                            .to_string(),
                    );
                }
            };
            Ok(ToolInput::FindingsBySeverity {
                severity,
                limit: limit(input.get("limit"))?,
            })
        }
        GET_FINDING_DETAILS => Ok(ToolInput::FindingDetails {
            finding: finding_ref(input)?,
        }),
        PROPOSE_REMEDIATION => Ok(ToolInput::ProposeRemediation {
            finding: finding_ref(input)?,
        }),
        SEARCH_POLICIES => match input.get("query") {
            Some(Value::String(q)) if !q.trim().is_empty() => Ok(ToolInput::SearchPolicies {
                query: q.trim().to_string(),
            }),
            _ => Err("query is required: the text to search the policies for".to_string()),
        },
        other => Err(format!("tool {other} is offered but has no handler")),
    }
}

/// What a tool returned: the content for the model and a one-line summary for people.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolOutcome {
    pub content: Value,
    pub is_error: bool,
    pub summary: String,
}

impl ToolOutcome {
    pub fn ok(summary: impl Into<String>, content: Value) -> ToolOutcome {
        ToolOutcome {
            content,
            is_error: false,
            summary: summary.into(),
        }
    }

    pub fn error(message: impl Into<String>) -> ToolOutcome {
        let message = message.into();
        ToolOutcome {
            content: json!({"error": message}),
            is_error: true,
            summary: message,
        }
    }
}

/// Runs the tools and sees the conversation as it happens.
#[async_trait::async_trait]
pub trait ToolHost: Send {
    /// Why the host stopped the whole conversation (e.g. the user interrupted).
    type Error: Send;

    /// Text from the model as it streams; `round` counts model calls from 0.
    fn text(&mut self, round: u32, piece: &str);
    /// A model call finished (its text is complete).
    fn answered(&mut self, round: u32, response: &Response);
    /// The model asked for a tool; called before its input is checked.
    fn tool_started(&mut self, call: &ToolCall);
    /// Runs one checked tool call.
    async fn run_tool(
        &mut self,
        call: &ToolCall,
        input: ToolInput,
    ) -> Result<ToolOutcome, Self::Error>;
    /// A tool call's outcome, including input errors found here.
    fn tool_finished(&mut self, call: &ToolCall, outcome: &ToolOutcome);
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// The model ended its turn.
    Answered,
    /// The model still wanted tools after `max_tool_rounds` rounds.
    RoundLimit,
    /// The model's answer was cut by its token limit.
    MaxTokens,
}

/// One tool call as it went, for the record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolRecord {
    pub name: String,
    pub input: Value,
    pub is_error: bool,
    pub summary: String,
}

/// The answer to one question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// The text of the model's last call.
    pub text: String,
    pub ending: Ending,
    /// Tool rounds run.
    pub rounds: u32,
    pub tools: Vec<ToolRecord>,
    pub usage: Usage,
    /// The turns this question added, to append to the conversation.
    #[serde(skip)]
    pub turns: Vec<Turn>,
}

/// Why the loop failed; the conversation so far should not be kept.
#[derive(Debug)]
pub enum AgentError<E> {
    Model {
        error: AdvisorError,
        /// The tool rounds that ran before the failure.
        tools: Vec<ToolRecord>,
    },
    Host(E),
}

/// The loop's fixed inputs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub system: String,
    pub tools: Vec<ToolSpec>,
    pub max_tool_rounds: u32,
}

/// What the model is told when the round limit cuts it off.
pub fn round_limit_message(max: u32) -> String {
    format!("not run: the limit of {max} tool rounds per question was reached")
}

/// The tool call as kept in the history: Bedrock wants every tool input to be a
/// JSON object, so malformed or non-object input is kept as text inside one.
fn history_call(call: &ToolCall) -> ToolCall {
    let mut kept = call.clone();
    if !call.input_is_json || !call.input.is_object() {
        let raw = match &call.input {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        kept.input = json!({ "unparsed_input": raw });
        kept.input_is_json = true;
    }
    kept
}

/// Asks `question` after `history`: calls the model, runs the tools it asks for
/// and sends their results back, until it ends its turn or `max_tool_rounds`
/// rounds have run. The turns added are in [`Answer::turns`]; the history stays
/// valid for the next question (every tool use has its result, roles alternate).
pub async fn ask<H: ToolHost>(
    model: &dyn ChatModel,
    history: &[Turn],
    question: &str,
    config: &AgentConfig,
    host: &mut H,
) -> Result<Answer, AgentError<H::Error>> {
    let mut turns: Vec<Turn> = history.to_vec();
    let start = turns.len();
    turns.push(Turn::User(question.to_string()));
    let mut records: Vec<ToolRecord> = Vec::new();
    let mut usage = Usage::default();
    let mut rounds: u32 = 0;
    let mut model_calls: u32 = 0;
    loop {
        let request = Request {
            system: config.system.clone(),
            turns: turns.clone(),
            tools: config.tools.clone(),
            force_tool: None,
        };
        let round = model_calls;
        let response = {
            let mut on_text = |piece: &str| host.text(round, piece);
            model.converse(&request, &mut on_text).await
        };
        let response = match response {
            Ok(r) => r,
            Err(error) => {
                return Err(AgentError::Model {
                    error,
                    tools: records,
                });
            }
        };
        model_calls += 1;
        usage.input_tokens += response.usage.input_tokens;
        usage.output_tokens += response.usage.output_tokens;
        usage.elapsed_ms += response.usage.elapsed_ms;
        if usage.first_text_ms.is_none() {
            usage.first_text_ms = response.usage.first_text_ms;
        }
        host.answered(round, &response);
        let text = response.text.clone();
        let calls = response.tool_calls.clone();
        if calls.is_empty() {
            // An empty assistant message would make the history invalid.
            let kept = if text.trim().is_empty() {
                "(no answer)".to_string()
            } else {
                text.clone()
            };
            turns.push(Turn::Assistant {
                text: kept,
                tool_calls: Vec::new(),
            });
            let ending = if response.stop_reason == "max_tokens" {
                Ending::MaxTokens
            } else {
                Ending::Answered
            };
            return Ok(Answer {
                text,
                ending,
                rounds,
                tools: records,
                usage,
                turns: turns.split_off(start),
            });
        }
        turns.push(Turn::Assistant {
            text: text.clone(),
            tool_calls: calls.iter().map(history_call).collect(),
        });
        if rounds >= config.max_tool_rounds {
            // Every tool use needs a result, and the roles must alternate, so the
            // unrun calls are answered with an error and the stop is noted.
            let message = round_limit_message(config.max_tool_rounds);
            let mut results = Vec::new();
            for call in &calls {
                host.tool_started(call);
                let outcome = ToolOutcome::error(message.clone());
                host.tool_finished(call, &outcome);
                records.push(ToolRecord {
                    name: call.name.clone(),
                    input: call.input.clone(),
                    is_error: true,
                    summary: outcome.summary.clone(),
                });
                results.push(ToolResult {
                    tool_use_id: call.id.clone(),
                    content: outcome.content,
                    is_error: true,
                });
            }
            turns.push(Turn::ToolResults(results));
            turns.push(Turn::Assistant {
                text: format!(
                    "(The runbook stopped this answer: the limit of {} tool rounds per question was reached.)",
                    config.max_tool_rounds
                ),
                tool_calls: Vec::new(),
            });
            return Ok(Answer {
                text,
                ending: Ending::RoundLimit,
                rounds,
                tools: records,
                usage,
                turns: turns.split_off(start),
            });
        }
        rounds += 1;
        let mut results = Vec::new();
        for call in &calls {
            host.tool_started(call);
            let outcome = match parse_input(call, &config.tools) {
                Ok(input) => match host.run_tool(call, input).await {
                    Ok(outcome) => outcome,
                    Err(e) => return Err(AgentError::Host(e)),
                },
                Err(message) => ToolOutcome::error(message),
            };
            host.tool_finished(call, &outcome);
            records.push(ToolRecord {
                name: call.name.clone(),
                input: call.input.clone(),
                is_error: outcome.is_error,
                summary: outcome.summary.clone(),
            });
            results.push(ToolResult {
                tool_use_id: call.id.clone(),
                content: outcome.content,
                is_error: outcome.is_error,
            });
        }
        turns.push(Turn::ToolResults(results));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Scripted {
        replies: Mutex<Vec<Response>>,
        requests: Mutex<Vec<Request>>,
    }

    impl Scripted {
        fn new(mut replies: Vec<Response>) -> Scripted {
            replies.reverse();
            Scripted {
                replies: Mutex::new(replies),
                requests: Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait::async_trait]
    impl ChatModel for Scripted {
        async fn converse(
            &self,
            request: &Request,
            on_text: &mut TextSink<'_>,
        ) -> Result<Response, AdvisorError> {
            self.requests.lock().unwrap().push(request.clone());
            let reply = self.replies.lock().unwrap().pop();
            let reply = reply.ok_or_else(|| AdvisorError::Config("no script".into()))?;
            on_text(&reply.text);
            Ok(reply)
        }
    }

    fn text(s: &str) -> Response {
        Response {
            text: s.to_string(),
            stop_reason: "end_turn".into(),
            ..Response::default()
        }
    }

    fn tool(id: &str, name: &str, input: Value) -> Response {
        Response {
            tool_calls: vec![ToolCall {
                id: id.into(),
                name: name.into(),
                input,
                input_is_json: true,
            }],
            stop_reason: "tool_use".into(),
            ..Response::default()
        }
    }

    #[derive(Default)]
    struct Host {
        ran: Vec<ToolInput>,
        finished: Vec<ToolOutcome>,
    }

    #[async_trait::async_trait]
    impl ToolHost for Host {
        type Error = String;
        fn text(&mut self, _round: u32, _piece: &str) {}
        fn answered(&mut self, _round: u32, _response: &Response) {}
        fn tool_started(&mut self, _call: &ToolCall) {}
        async fn run_tool(
            &mut self,
            _call: &ToolCall,
            input: ToolInput,
        ) -> Result<ToolOutcome, String> {
            self.ran.push(input);
            Ok(ToolOutcome::ok("2 findings", json!({"count": 2})))
        }
        fn tool_finished(&mut self, _call: &ToolCall, outcome: &ToolOutcome) {
            self.finished.push(outcome.clone());
        }
    }

    fn config(max: u32) -> AgentConfig {
        AgentConfig {
            system: "s".into(),
            tools: tool_specs(ToolOptions::default()),
            max_tool_rounds: max,
        }
    }

    fn call(name: &str, input: Value) -> ToolCall {
        ToolCall {
            id: "t".into(),
            name: name.into(),
            input,
            input_is_json: true,
        }
    }

    #[test]
    fn inputs_are_checked() {
        let tools = tool_specs(ToolOptions::default());
        let ok = parse_input(
            &call(
                GET_FINDINGS_BY_SEVERITY,
                json!({"severity": "critical", "limit": "5"}),
            ),
            &tools,
        );
        assert_eq!(
            ok,
            Ok(ToolInput::FindingsBySeverity {
                severity: Severity::Critical,
                limit: 5
            })
        );
        let ok = parse_input(
            &call(GET_FINDINGS_BY_SEVERITY, json!({"severity": "HIGH"})),
            &tools,
        );
        assert!(matches!(
            ok,
            Ok(ToolInput::FindingsBySeverity {
                limit: DEFAULT_LIMIT,
                ..
            })
        ));
        for bad in [
            json!({"severity": "SEVERE"}),
            json!({"limit": 3}),
            json!({"severity": "HIGH", "limit": "many"}),
            json!({"severity": "HIGH", "limit": 0}),
            json!({"severity": "HIGH", "limit": 1000}),
            json!(["HIGH"]),
        ] {
            assert!(
                parse_input(&call(GET_FINDINGS_BY_SEVERITY, bad.clone()), &tools).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            parse_input(&call(PROPOSE_REMEDIATION, json!({"finding": 3})), &tools),
            Ok(ToolInput::ProposeRemediation {
                finding: FindingRef::Index(3)
            })
        );
        assert!(parse_input(&call(PROPOSE_REMEDIATION, json!({"finding": 0})), &tools).is_err());
        assert!(parse_input(&call(SEARCH_POLICIES, json!({"query": "x"})), &tools).is_err());
        let mut malformed = call(GET_FINDING_DETAILS, json!("{\"finding\": "));
        malformed.input_is_json = false;
        assert!(
            parse_input(&malformed, &tools)
                .unwrap_err()
                .contains("not valid JSON")
        );
    }

    #[test]
    fn search_policies_only_with_a_knowledge_base() {
        let names = |o| {
            tool_specs(o)
                .into_iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
        };
        assert!(!names(ToolOptions::default()).contains(&SEARCH_POLICIES.to_string()));
        assert!(
            names(ToolOptions {
                knowledge_base: true
            })
            .contains(&SEARCH_POLICIES.to_string())
        );
    }

    #[tokio::test]
    async fn tool_results_go_back_and_the_history_alternates() {
        let model = Scripted::new(vec![
            tool(
                "a",
                GET_FINDINGS_BY_SEVERITY,
                json!({"severity": "CRITICAL", "limit": 3}),
            ),
            text("Two critical findings."),
        ]);
        let mut host = Host::default();
        let answer = ask(&model, &[], "What is critical?", &config(8), &mut host)
            .await
            .unwrap();
        assert_eq!(answer.ending, Ending::Answered);
        assert_eq!(answer.rounds, 1);
        assert_eq!(answer.text, "Two critical findings.");
        assert_eq!(answer.turns.len(), 4);
        let requests = model.requests.lock().unwrap();
        assert!(
            matches!(&requests[1].turns[2], Turn::ToolResults(r) if r[0].tool_use_id == "a" && !r[0].is_error)
        );
    }

    #[tokio::test]
    async fn bad_input_is_a_tool_error_and_the_limit_stops_the_loop() {
        let model = Scripted::new(vec![
            tool("a", GET_FINDINGS_BY_SEVERITY, json!({"severity": "SEVERE"})),
            tool("b", GET_FINDINGS_BY_SEVERITY, json!({"severity": "LOW"})),
            tool("c", GET_FINDINGS_BY_SEVERITY, json!({"severity": "LOW"})),
            text("never asked"),
        ]);
        let mut host = Host::default();
        let answer = ask(&model, &[], "q", &config(2), &mut host).await.unwrap();
        assert_eq!(answer.ending, Ending::RoundLimit);
        assert_eq!(answer.rounds, 2);
        assert!(host.finished[0].is_error);
        assert_eq!(host.ran.len(), 1, "only the valid call ran");
        assert_eq!(model.requests.lock().unwrap().len(), 3);
        // The added turns end with an assistant message, so the next question can follow.
        assert!(
            matches!(answer.turns.last(), Some(Turn::Assistant { tool_calls, .. }) if tool_calls.is_empty())
        );
    }
}
