//! Advisors explain findings and propose remediations: Claude on Amazon Bedrock,
//! or the built-in catalog standing in for a model. Either way, what can run is
//! a typed plan from the catalog, validated against the finding.

pub mod bedrock;
pub mod catalog;
pub mod prompts;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Receives streamed text as it arrives.
pub type TextSink<'a> = dyn FnMut(&str) + Send + 'a;

/// A tool call the model made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The input as JSON; the raw text when the model sent malformed JSON.
    pub input: Value,
    pub input_is_json: bool,
}

/// What a tool returned, sent back to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    pub tool_use_id: String,
    pub content: Value,
    pub is_error: bool,
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Turn {
    User(String),
    Assistant {
        text: String,
        tool_calls: Vec<ToolCall>,
    },
    ToolResults(Vec<ToolResult>),
}

/// Tokens and timings of one model answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The service's own latency figure.
    pub model_latency_ms: Option<u64>,
    /// From sending the request to the first text.
    pub first_text_ms: Option<u64>,
    /// From sending the request to the end of the stream.
    pub elapsed_ms: u64,
}

/// Why an advisor could not answer, phrased so the user knows what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdvisorError {
    #[error(
        "access to model {model} in {region} was denied ({message}); enable the model in the Amazon Bedrock console under Model access for {region}, and allow bedrock:InvokeModelWithResponseStream in the caller's IAM policy"
    )]
    AccessDenied {
        model: String,
        region: String,
        message: String,
    },
    #[error(
        "model {model} is not available in {region} ({message}); check the model id (%config model=...) or use an inference profile available in the region"
    )]
    ModelNotFound {
        model: String,
        region: String,
        message: String,
    },
    #[error(
        "Bedrock throttled requests to {model} even after retries ({message}); wait a moment and try again"
    )]
    Throttled { model: String, message: String },
    #[error("Bedrock rejected the request to {model}: {message}")]
    Validation { model: String, message: String },
    #[error("model {model} failed: {message}")]
    Unavailable { model: String, message: String },
    #[error(
        "cannot reach Amazon Bedrock at {endpoint} (region {region}) for model {model}: {message}. Likely causes: no network path to Bedrock from here (no internet route or no VPC endpoint for bedrock-runtime), Bedrock not offered in {region}, or a proxy or firewall in the way"
    )]
    Unreachable {
        model: String,
        region: String,
        endpoint: String,
        message: String,
    },
    #[error("the model's answer stopped part-way: {message}")]
    Stream { message: String, partial: String },
    #[error("{0}")]
    Config(String),
    #[error("the request to the model was interrupted")]
    Interrupted,
}

/// Which advisor answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AdvisorKind {
    /// The built-in catalog: deterministic texts and plans, no model.
    Catalog,
    Bedrock {
        model_id: String,
        region: String,
    },
}

impl AdvisorKind {
    pub fn label(&self) -> String {
        match self {
            AdvisorKind::Catalog => "the built-in remediation catalog (not a model)".to_string(),
            AdvisorKind::Bedrock { model_id, region } => {
                format!("{model_id} on Amazon Bedrock ({region})")
            }
        }
    }
}

/// An explanation of a finding, as Markdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub markdown: String,
    pub advisor: AdvisorKind,
    pub usage: Option<Usage>,
}

/// What `%remediate` produces: an executable plan, or advice a human must carry out.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Proposal {
    Plan {
        plan: Box<crate::plan::RemediationPlan>,
        usage: Option<Usage>,
    },
    /// For a control the catalog does not cover: not executable, no plan id.
    Advice {
        markdown: String,
        advisor: AdvisorKind,
        usage: Option<Usage>,
    },
}

/// Why `%remediate` produced nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProposalError {
    #[error(transparent)]
    Advisor(#[from] AdvisorError),
    #[error("{0}")]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("the model did not call propose_remediation (it answered: {0})")]
    NoProposal(String),
}

impl AdvisorError {
    /// Whether the model could not be used at all (unreachable, throttled, no
    /// access, no such model), so the built-in catalog may stand in, labelled.
    pub fn catalog_may_stand_in(&self) -> bool {
        matches!(
            self,
            AdvisorError::Unreachable { .. }
                | AdvisorError::Throttled { .. }
                | AdvisorError::AccessDenied { .. }
                | AdvisorError::ModelNotFound { .. }
        )
    }
}

/// Explains findings and proposes remediations.
#[async_trait::async_trait]
pub trait Advisor: Send + Sync {
    fn kind(&self) -> AdvisorKind;

    /// The model behind this advisor, for conversations with tools (`%ask`);
    /// `None` for the catalog, which has no model.
    fn bedrock_model(&self) -> Option<&bedrock::BedrockModel> {
        None
    }

    /// Explains a finding; streamed text goes to `on_text` as it arrives.
    /// `policy`: what the knowledge base holds about the finding, if one is configured.
    async fn summarize(
        &self,
        finding: &crate::finding::Finding,
        lang: crate::settings::Lang,
        policy: Option<&crate::kb::PolicyContext>,
        on_text: &mut TextSink<'_>,
    ) -> Result<Summary, AdvisorError>;

    /// A validated plan for a covered control, advice otherwise.
    async fn remediate(
        &self,
        finding: &crate::finding::Finding,
        lang: crate::settings::Lang,
        instructions: Option<&str>,
        cloud: &dyn crate::cloud::Cloud,
        policy: Option<&crate::kb::PolicyContext>,
        on_text: &mut TextSink<'_>,
    ) -> Result<Proposal, ProposalError>;
}

/// Picks the advisor for the settings: the catalog when `model=catalog`, or on
/// the sandbox unless a model was set explicitly; Claude on Bedrock otherwise.
/// Returns the advisor and why it was chosen.
pub async fn choose(
    settings: &crate::settings::Settings,
    backend: crate::cloud::BackendKind,
) -> Result<(std::sync::Arc<dyn Advisor>, String), AdvisorError> {
    use crate::settings::{CATALOG_MODEL, SettingKey, Source};
    if settings.model == CATALOG_MODEL {
        return Ok((
            std::sync::Arc::new(catalog::CatalogAdvisor),
            "model=catalog".to_string(),
        ));
    }
    if backend == crate::cloud::BackendKind::Sandbox
        && settings.source(SettingKey::Model) == Source::Default
    {
        return Ok((
            std::sync::Arc::new(catalog::CatalogAdvisor),
            "the sandbox uses the built-in catalog; %config model=<Bedrock model id> uses a model instead".to_string(),
        ));
    }
    let sdk = crate::cloud::aws::load_sdk_config(settings).await;
    let max_tokens = i32::try_from(settings.max_tokens).unwrap_or(i32::MAX);
    let model =
        bedrock::BedrockModel::new(&sdk, settings.model.clone())?.with_max_tokens(max_tokens);
    let reason = format!(
        "model={} ({})",
        settings.model,
        settings.source(SettingKey::Model)
    );
    Ok((
        std::sync::Arc::new(bedrock::BedrockAdvisor::new(model)),
        reason,
    ))
}
