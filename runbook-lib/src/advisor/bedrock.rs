//! Claude on Amazon Bedrock through ConverseStream: text streams to the caller as
//! it arrives; tool calls come back whole, their input parsed as JSON.

use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{Region, SdkConfig};
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ContentBlockDelta, ContentBlockStart, ConversationRole, ConverseStreamOutput,
    InferenceConfiguration, Message, SpecificToolChoice, SystemContentBlock, Tool, ToolChoice,
    ToolConfiguration, ToolInputSchema, ToolResultBlock, ToolResultContentBlock, ToolResultStatus,
    ToolSpecification, ToolUseBlock,
};
use aws_smithy_types::{Document, Number};
use serde_json::Value;

use super::{AdvisorError, TextSink, ToolCall, Turn, Usage};

/// A tool the model may call: its name, what it is for, and its input schema.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub schema: Value,
}

/// One request: system prompt, the conversation so far, tools, and whether a tool call is forced.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub system: String,
    pub turns: Vec<Turn>,
    pub tools: Vec<ToolSpec>,
    pub force_tool: Option<String>,
}

/// What the model answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub stop_reason: String,
    pub usage: Usage,
}

pub struct BedrockModel {
    client: aws_sdk_bedrockruntime::Client,
    model_id: String,
    region: String,
    /// Where requests go, for messages when it cannot be reached.
    endpoint: String,
    max_tokens: i32,
}

/// How long a connection to Bedrock may take: a missing route must fail in seconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts per request, quickly backed off: an unreachable or throttling Bedrock
/// is reported in seconds (with the catalog standing in) rather than after a minute.
const MAX_ATTEMPTS: u32 = 3;
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);

/// The endpoint the SDK will use: the service's own override, the global one, or
/// the regional default.
fn endpoint_of(sdk: &SdkConfig, region: &str) -> String {
    std::env::var("AWS_ENDPOINT_URL_BEDROCK_RUNTIME")
        .ok()
        .filter(|e| !e.is_empty())
        .or_else(|| sdk.endpoint_url().map(str::to_string))
        .unwrap_or_else(|| format!("https://bedrock-runtime.{region}.amazonaws.com"))
}

impl BedrockModel {
    pub fn new(sdk: &SdkConfig, model_id: impl Into<String>) -> Result<BedrockModel, AdvisorError> {
        let region = sdk.region().map(Region::to_string).ok_or_else(|| {
            AdvisorError::Config(
                "no AWS region is configured for Bedrock; set one with %config region=us-east-1"
                    .to_string(),
            )
        })?;
        let mut config = aws_sdk_bedrockruntime::config::Builder::from(sdk);
        if std::env::var_os("AWS_RETRY_MODE").is_none()
            && std::env::var_os("AWS_MAX_ATTEMPTS").is_none()
        {
            config = config.retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(INITIAL_BACKOFF),
            );
        }
        let config = config
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .build(),
            )
            .build();
        Ok(BedrockModel {
            client: aws_sdk_bedrockruntime::Client::from_conf(config),
            model_id: model_id.into(),
            endpoint: endpoint_of(sdk, &region),
            region,
            max_tokens: crate::settings::DEFAULT_MAX_TOKENS as i32,
        })
    }

    pub fn with_max_tokens(mut self, max_tokens: i32) -> BedrockModel {
        self.max_tokens = max_tokens;
        self
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Sends the request with ConverseStream (temperature 0), passing text to `on_text` as it arrives.
    pub async fn converse(
        &self,
        request: &Request,
        on_text: &mut TextSink<'_>,
    ) -> Result<Response, AdvisorError> {
        let started = Instant::now();
        let mut call = self
            .client
            .converse_stream()
            .model_id(&self.model_id)
            .system(SystemContentBlock::Text(request.system.clone()))
            .set_messages(Some(
                request
                    .turns
                    .iter()
                    .map(to_message)
                    .collect::<Result<Vec<_>, _>>()?,
            ))
            .inference_config(
                InferenceConfiguration::builder()
                    .temperature(0.0)
                    .max_tokens(self.max_tokens)
                    .build(),
            );
        if !request.tools.is_empty() {
            call = call.tool_config(tool_config(&request.tools, request.force_tool.as_deref())?);
        }
        let mut output = call.send().await.map_err(|e| self.error(e))?;
        let mut response = Response::default();
        // Tool input arrives as JSON text in pieces, per content block.
        let mut pending: Vec<(i32, String, String, String)> = Vec::new();
        loop {
            let event = match output.stream.recv().await {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(e) => {
                    return Err(AdvisorError::Stream {
                        message: stream_message(&e),
                        partial: response.text,
                    });
                }
            };
            match event {
                ConverseStreamOutput::ContentBlockStart(start) => {
                    if let Some(ContentBlockStart::ToolUse(tool)) = start.start() {
                        pending.push((
                            start.content_block_index(),
                            tool.tool_use_id().to_string(),
                            tool.name().to_string(),
                            String::new(),
                        ));
                    }
                }
                ConverseStreamOutput::ContentBlockDelta(delta) => match delta.delta() {
                    Some(ContentBlockDelta::Text(text)) => {
                        if response.usage.first_text_ms.is_none() {
                            response.usage.first_text_ms =
                                Some(started.elapsed().as_millis() as u64);
                        }
                        response.text.push_str(text);
                        on_text(text);
                    }
                    Some(ContentBlockDelta::ToolUse(tool)) => {
                        let index = delta.content_block_index();
                        if let Some(entry) = pending.iter_mut().find(|p| p.0 == index) {
                            entry.3.push_str(tool.input());
                        }
                    }
                    _ => {}
                },
                ConverseStreamOutput::MessageStop(stop) => {
                    response.stop_reason = stop.stop_reason().as_str().to_string();
                }
                ConverseStreamOutput::Metadata(meta) => {
                    if let Some(usage) = meta.usage() {
                        response.usage.input_tokens =
                            u64::try_from(usage.input_tokens()).unwrap_or(0);
                        response.usage.output_tokens =
                            u64::try_from(usage.output_tokens()).unwrap_or(0);
                    }
                    if let Some(metrics) = meta.metrics() {
                        response.usage.model_latency_ms = u64::try_from(metrics.latency_ms()).ok();
                    }
                }
                _ => {}
            }
        }
        for (_, id, name, input) in pending {
            let trimmed = input.trim();
            let (input, input_is_json) = if trimmed.is_empty() {
                (Value::Object(Default::default()), true)
            } else {
                match serde_json::from_str(trimmed) {
                    Ok(value) => (value, true),
                    Err(_) => (Value::String(input.clone()), false),
                }
            };
            response.tool_calls.push(ToolCall {
                id,
                name,
                input,
                input_is_json,
            });
        }
        response.usage.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(response)
    }

    fn error<E, R>(&self, error: SdkError<E, R>) -> AdvisorError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        if matches!(
            error,
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
        ) && !chain(&error).contains("credentials")
        {
            return AdvisorError::Unreachable {
                model: self.model_id.clone(),
                region: self.region.clone(),
                endpoint: self.endpoint.clone(),
                message: chain(&error),
            };
        }
        let (code, message) = match &error {
            SdkError::ServiceError(context) => (
                context.err().code().unwrap_or_default().to_string(),
                context.err().message().unwrap_or_default().to_string(),
            ),
            other => (String::new(), chain(other)),
        };
        let model = self.model_id.clone();
        let region = self.region.clone();
        match code.as_str() {
            "AccessDeniedException" => AdvisorError::AccessDenied {
                model,
                region,
                message,
            },
            "ResourceNotFoundException" => AdvisorError::ModelNotFound {
                model,
                region,
                message,
            },
            "ThrottlingException"
            | "ServiceQuotaExceededException"
            | "TooManyRequestsException" => AdvisorError::Throttled { model, message },
            "ValidationException" => AdvisorError::Validation { model, message },
            "ModelNotReadyException"
            | "ServiceUnavailableException"
            | "ModelTimeoutException"
            | "InternalServerException"
            | "ModelErrorException" => AdvisorError::Unavailable {
                model,
                message: format!("{code}: {message}"),
            },
            _ if message.contains("credentials") => {
                AdvisorError::Config(format!("no AWS credentials for Bedrock: {message}"))
            }
            "" => AdvisorError::Unavailable { model, message },
            _ => AdvisorError::Unavailable {
                model,
                message: format!("{code}: {message}"),
            },
        }
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    parts.join(": ")
}

fn stream_message<E: std::error::Error + ProvideErrorMetadata + 'static, R: std::fmt::Debug>(
    error: &SdkError<E, R>,
) -> String {
    match error {
        // Mid-stream errors carry their kind in the variant, not in code().
        SdkError::ServiceError(context) => context.err().to_string(),
        other => chain(other),
    }
}

fn tool_config(tools: &[ToolSpec], force: Option<&str>) -> Result<ToolConfiguration, AdvisorError> {
    let specs = tools
        .iter()
        .map(|t| {
            ToolSpecification::builder()
                .name(&t.name)
                .description(&t.description)
                .input_schema(ToolInputSchema::Json(to_document(&t.schema)))
                .build()
                .map(Tool::ToolSpec)
                .map_err(|e| AdvisorError::Config(format!("tool {}: {e}", t.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = ToolConfiguration::builder().set_tools(Some(specs));
    if let Some(name) = force {
        let choice = SpecificToolChoice::builder()
            .name(name)
            .build()
            .map_err(|e| AdvisorError::Config(e.to_string()))?;
        config = config.tool_choice(ToolChoice::Tool(choice));
    }
    config
        .build()
        .map_err(|e| AdvisorError::Config(e.to_string()))
}

fn to_message(turn: &Turn) -> Result<Message, AdvisorError> {
    let (role, content) = match turn {
        Turn::User(text) => (
            ConversationRole::User,
            vec![ContentBlock::Text(text.clone())],
        ),
        Turn::Assistant { text, tool_calls } => {
            let mut blocks = Vec::new();
            if !text.is_empty() {
                blocks.push(ContentBlock::Text(text.clone()));
            }
            for call in tool_calls {
                let block = ToolUseBlock::builder()
                    .tool_use_id(&call.id)
                    .name(&call.name)
                    .input(to_document(&call.input))
                    .build()
                    .map_err(|e| AdvisorError::Config(e.to_string()))?;
                blocks.push(ContentBlock::ToolUse(block));
            }
            (ConversationRole::Assistant, blocks)
        }
        Turn::ToolResults(results) => {
            let blocks = results
                .iter()
                .map(|r| {
                    ToolResultBlock::builder()
                        .tool_use_id(&r.tool_use_id)
                        .content(ToolResultContentBlock::Json(to_document(&r.content)))
                        .status(if r.is_error {
                            ToolResultStatus::Error
                        } else {
                            ToolResultStatus::Success
                        })
                        .build()
                        .map(ContentBlock::ToolResult)
                        .map_err(|e| AdvisorError::Config(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            (ConversationRole::User, blocks)
        }
    };
    Message::builder()
        .role(role)
        .set_content(Some(content))
        .build()
        .map_err(|e| AdvisorError::Config(e.to_string()))
}

/// serde_json to the SDK's document type (tool schemas and tool inputs).
pub fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Document::Number(Number::PosInt(u))
            } else if let Some(i) = n.as_i64() {
                Document::Number(Number::NegInt(i))
            } else {
                Document::Number(Number::Float(n.as_f64().unwrap_or(0.0)))
            }
        }
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_document(v)))
                .collect(),
        ),
    }
}

/// The tool a model must call to propose a plan.
pub const PROPOSE_TOOL: &str = "propose_remediation";

/// Claude on Bedrock as an [`Advisor`](super::Advisor). The model explains and
/// chooses; what can run is a catalog plan validated against the finding.
pub struct BedrockAdvisor {
    model: BedrockModel,
}

impl BedrockAdvisor {
    pub fn new(model: BedrockModel) -> BedrockAdvisor {
        BedrockAdvisor { model }
    }

    pub fn model(&self) -> &BedrockModel {
        &self.model
    }
}

#[async_trait::async_trait]
impl super::Advisor for BedrockAdvisor {
    fn bedrock_model(&self) -> Option<&BedrockModel> {
        Some(&self.model)
    }

    fn kind(&self) -> super::AdvisorKind {
        super::AdvisorKind::Bedrock {
            model_id: self.model.model_id.clone(),
            region: self.model.region.clone(),
        }
    }

    async fn summarize(
        &self,
        finding: &crate::finding::Finding,
        lang: crate::settings::Lang,
        policy: Option<&crate::kb::PolicyContext>,
        on_text: &mut TextSink<'_>,
    ) -> Result<super::Summary, AdvisorError> {
        let request = Request {
            system: super::prompts::summary_system(lang),
            turns: vec![Turn::User(super::prompts::summary_request(
                &finding.raw.value(),
                policy,
            ))],
            ..Request::default()
        };
        let response = self.model.converse(&request, on_text).await?;
        Ok(super::Summary {
            markdown: response.text,
            advisor: self.kind(),
            usage: Some(response.usage),
        })
    }

    async fn remediate(
        &self,
        finding: &crate::finding::Finding,
        lang: crate::settings::Lang,
        instructions: Option<&str>,
        cloud: &dyn crate::cloud::Cloud,
        policy: Option<&crate::kb::PolicyContext>,
        on_text: &mut TextSink<'_>,
    ) -> Result<super::Proposal, super::ProposalError> {
        use super::prompts;
        let covered = finding
            .control_id
            .as_ref()
            .is_some_and(|c| crate::catalog::entry_for(c).is_some());
        if !covered {
            let request = Request {
                system: prompts::advice_system(lang),
                turns: vec![Turn::User(prompts::remediation_request(
                    &finding.raw.value(),
                    instructions,
                    policy,
                ))],
                ..Request::default()
            };
            let response = self.model.converse(&request, on_text).await?;
            return Ok(super::Proposal::Advice {
                markdown: response.text,
                advisor: self.kind(),
                usage: Some(response.usage),
            });
        }
        let request = Request {
            system: prompts::remediation_system(lang),
            turns: vec![Turn::User(prompts::remediation_request(
                &finding.raw.value(),
                instructions,
                policy,
            ))],
            tools: vec![ToolSpec {
                name: PROPOSE_TOOL.to_string(),
                description: "Propose the remediation plan: only catalog actions, only on the resources, account and region of the finding.".to_string(),
                schema: crate::catalog::tool_schema(),
            }],
            force_tool: Some(PROPOSE_TOOL.to_string()),
        };
        let response = self.model.converse(&request, on_text).await?;
        let call = response
            .tool_calls
            .into_iter()
            .find(|c| c.name == PROPOSE_TOOL)
            .ok_or_else(|| {
                super::ProposalError::NoProposal(response.text.chars().take(200).collect())
            })?;
        if !call.input_is_json {
            return Err(super::ProposalError::NoProposal(format!(
                "malformed tool input: {}",
                call.input
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect::<String>()
            )));
        }
        let none = crate::catalog::PolicyValues::new();
        let plan = crate::planner::plan_from_model(
            &call.input,
            finding,
            cloud,
            lang,
            &self.model.model_id,
            policy.map_or(&none, |p| &p.values),
        )
        .await?;
        Ok(super::Proposal::Plan {
            plan: Box::new(plan),
            usage: Some(response.usage),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_structure() {
        let value = serde_json::json!({"a": [1, -2, 1.5, "x", null, true], "b": {"c": "d"}});
        let doc = to_document(&value);
        let Document::Object(map) = doc else {
            panic!("not an object")
        };
        assert!(matches!(map.get("a"), Some(Document::Array(items)) if items.len() == 6));
        assert!(matches!(map.get("b"), Some(Document::Object(_))));
    }
}
