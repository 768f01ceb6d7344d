//! Knowledge bases: the organisation's own security policies, searched for
//! passages and read for control parameters that plans must follow.
//! A local folder of Markdown files (indexed in-process with tantivy), or an
//! Amazon Bedrock Knowledge Base (Retrieve).

pub mod bedrock;
pub mod document;
pub mod local;
pub mod text;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::catalog::{self, PolicyValues};
use crate::finding::Finding;
use crate::settings::Settings;

/// Passages a search returns unless asked for another number.
pub const DEFAULT_TOP: usize = 5;
/// The most passages one search returns.
pub const MAX_TOP: usize = 50;
/// Passages consulted for one finding by %summarize and %remediate.
pub const CONSULTED: usize = 3;

/// One passage of a policy document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Passage {
    /// File (relative to the folder) or URI of the document.
    pub source: String,
    /// The heading path of the section; empty when the source has none.
    pub heading: String,
    pub text: String,
    pub score: f32,
    /// Byte ranges of `text` that match the query.
    pub highlights: Vec<(usize, usize)>,
}

/// Where the passages come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KbInfo {
    Local {
        folder: String,
    },
    Bedrock {
        knowledge_base_id: String,
        region: String,
    },
}

impl KbInfo {
    pub fn label(&self) -> String {
        match self {
            KbInfo::Local { folder } => format!("the local policy folder {folder}"),
            KbInfo::Bedrock {
                knowledge_base_id,
                region,
            } => format!("Bedrock Knowledge Base {knowledge_base_id} ({region})"),
        }
    }
}

/// A document that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub source: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    pub kb: KbInfo,
    pub query: String,
    pub passages: Vec<Passage>,
    /// Documents that could not be read or parsed (searched without them).
    pub problems: Vec<Problem>,
}

/// An overview of a knowledge base, for `%kb` without a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    pub kb: KbInfo,
    /// Documents and passages indexed; `None` where the service does not say.
    pub documents: Option<usize>,
    pub passages: Option<usize>,
    pub values: PolicyValues,
    pub ignored: Vec<String>,
    pub problems: Vec<Problem>,
}

/// Why a knowledge base could not answer, phrased so the user knows what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KbError {
    #[error(
        "kb={given}: {why}; kb accepts a folder of Markdown (.md) files or a Bedrock Knowledge Base id (10 letters and digits, e.g. KB12345678)"
    )]
    BadSetting { given: String, why: String },
    #[error("the knowledge base folder {folder} has no Markdown (.md) files")]
    NoDocuments { folder: String },
    #[error("the knowledge base folder {folder} could not be read: {message}")]
    Unreadable { folder: String, message: String },
    #[error("the query has no words to search for; give words such as: password minimum length")]
    EmptyQuery,
    #[error("top must be from 1 to {MAX_TOP}, not {0}")]
    BadTop(usize),
    #[error(
        "the organisation policy could not be read completely, so no plan was made (a rule could be missed): {}; fix the files or %config kb= to stop consulting it",
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Incomplete(Vec<Problem>),
    #[error("the organisation policy contradicts itself: {0}; make them agree")]
    Conflict(String),
    #[error(
        "Bedrock Knowledge Base {id} was not found in {region} ({message}); check the id (%config kb=...) and the region"
    )]
    NotFound {
        id: String,
        region: String,
        message: String,
    },
    #[error(
        "access to Bedrock Knowledge Base {id} in {region} was denied ({message}); allow bedrock:Retrieve on it in the caller's IAM policy"
    )]
    AccessDenied {
        id: String,
        region: String,
        message: String,
    },
    #[error("Bedrock throttled Retrieve on {id} even after retries ({message}); try again shortly")]
    Throttled { id: String, message: String },
    #[error("Retrieve on Bedrock Knowledge Base {id} failed: {message}")]
    Service { id: String, message: String },
    #[error("{0}")]
    Config(String),
}

/// The organisation's policies.
#[async_trait::async_trait]
pub trait KnowledgeBase: Send + Sync {
    fn info(&self) -> KbInfo;

    /// The passages best matching `query`, at most `top`.
    async fn search(&self, query: &str, top: usize) -> Result<SearchResult, KbError>;

    /// The control parameters the policies set, for `finding`'s control.
    /// `passages` are what a search for the finding returned.
    async fn values(&self, passages: &[Passage]) -> Result<PolicyValues, KbError>;

    async fn overview(&self) -> Result<Overview, KbError>;
}

/// What was consulted for one finding: passages for people and models, values for plans.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyContext {
    pub kb: KbInfo,
    pub query: String,
    pub passages: Vec<Passage>,
    pub values: PolicyValues,
}

/// The search text for a finding: its control, the catalog's titles (English and
/// Japanese, so policies in either language match) and the finding's own title.
pub fn query_for(finding: &Finding) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(control) = &finding.control_id {
        parts.push(control.to_string());
        if let Some(entry) = catalog::entry_for(control) {
            parts.push(entry.title(crate::settings::Lang::En).to_string());
            parts.push(entry.title(crate::settings::Lang::Ja).to_string());
        }
    }
    parts.push(finding.title.chars().take(200).collect());
    parts.join(" ")
}

/// Consults the knowledge base for a finding.
pub async fn consult(kb: &dyn KnowledgeBase, finding: &Finding) -> Result<PolicyContext, KbError> {
    let query = query_for(finding);
    let found = kb.search(&query, CONSULTED).await?;
    let values = kb.values(&found.passages).await?;
    Ok(PolicyContext {
        kb: found.kb,
        query,
        passages: found.passages,
        values,
    })
}

/// Adds `more` to `values`; the same parameter with another value is a conflict.
pub fn merge_values(values: &mut PolicyValues, more: &PolicyValues) -> Result<(), KbError> {
    for (control, params) in &more.values {
        for (parameter, value) in params {
            match values.get(control, parameter) {
                Some(existing) if existing.value != value.value => {
                    return Err(KbError::Conflict(format!(
                        "{control} {parameter} is {} in {} but {} in {}",
                        existing.value, existing.source, value.value, value.source
                    )));
                }
                Some(_) => {}
                None => values.insert(control, parameter, value.clone()),
            }
        }
    }
    Ok(())
}

/// A Bedrock Knowledge Base id: 10 letters and digits.
pub fn is_knowledge_base_id(value: &str) -> bool {
    value.len() == 10 && value.chars().all(|c| c.is_ascii_alphanumeric())
}

fn expand_home(value: &str) -> PathBuf {
    match value.strip_prefix("~/") {
        Some(rest) => dirs::home_dir().map_or_else(|| PathBuf::from(value), |h| h.join(rest)),
        None => PathBuf::from(value),
    }
}

/// What the `kb` setting names: a folder (relative to `cwd`) or a Bedrock id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KbLocation {
    Folder(PathBuf),
    Bedrock(String),
}

/// Reads the `kb` setting. An existing folder wins over an id-shaped name.
pub fn locate(value: &str, cwd: &Path) -> Result<KbLocation, KbError> {
    let given = value.trim();
    if given.is_empty() {
        return Err(KbError::BadSetting {
            given: value.to_string(),
            why: "it is empty".to_string(),
        });
    }
    let path = expand_home(given);
    let path = if path.is_absolute() {
        path
    } else {
        cwd.join(path)
    };
    if path.is_dir() {
        return Ok(KbLocation::Folder(path));
    }
    if path.exists() {
        return Err(KbError::BadSetting {
            given: given.to_string(),
            why: format!("{} is a file, not a folder", path.display()),
        });
    }
    if is_knowledge_base_id(given) {
        return Ok(KbLocation::Bedrock(given.to_string()));
    }
    Err(KbError::BadSetting {
        given: given.to_string(),
        why: format!("there is no folder {}", path.display()),
    })
}

/// Opens the knowledge base the settings name (`None` when `kb` is not set).
pub async fn open(
    settings: &Settings,
    cwd: &Path,
) -> Result<Option<Arc<dyn KnowledgeBase>>, KbError> {
    let Some(value) = settings.kb.as_deref() else {
        return Ok(None);
    };
    Ok(Some(match locate(value, cwd)? {
        KbLocation::Folder(path) => Arc::new(local::LocalKnowledgeBase::open(&path)?),
        KbLocation::Bedrock(id) => {
            let sdk = crate::cloud::aws::load_sdk_config(settings).await;
            Arc::new(bedrock::BedrockKnowledgeBase::new(&sdk, id)?)
        }
    }))
}

/// Checks `top` against the accepted range.
pub fn check_top(top: usize) -> Result<usize, KbError> {
    if (1..=MAX_TOP).contains(&top) {
        Ok(top)
    } else {
        Err(KbError::BadTop(top))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_names_a_folder_or_an_id() {
        let dir = std::env::temp_dir().join(format!("kb-locate-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("policies")).unwrap();
        std::fs::write(dir.join("file.md"), "x").unwrap();
        assert_eq!(
            locate("policies", &dir).unwrap(),
            KbLocation::Folder(dir.join("policies"))
        );
        assert_eq!(
            locate("KB12345678", &dir).unwrap(),
            KbLocation::Bedrock("KB12345678".into())
        );
        let missing = locate("no-such-folder", &dir).unwrap_err().to_string();
        assert!(missing.contains("there is no folder"), "{missing}");
        assert!(missing.contains("KB12345678"), "{missing}");
        let file = locate("file.md", &dir).unwrap_err().to_string();
        assert!(file.contains("is a file, not a folder"), "{file}");
        assert!(locate("  ", &dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn conflicting_values_are_refused() {
        use crate::catalog::PolicyValue;
        let value = |v: u64, source: &str| PolicyValue {
            value: v.into(),
            source: source.into(),
            heading: "h".into(),
        };
        let mut a = PolicyValues::new();
        a.insert("IAM.7", "MinimumPasswordLength", value(64, "en/p.md"));
        let mut same = PolicyValues::new();
        same.insert("IAM.7", "MinimumPasswordLength", value(64, "ja/p.md"));
        merge_values(&mut a, &same).unwrap();
        assert_eq!(
            a.get("IAM.7", "MinimumPasswordLength").unwrap().source,
            "en/p.md"
        );
        let mut other = PolicyValues::new();
        other.insert("IAM.7", "MinimumPasswordLength", value(32, "old.md"));
        let e = merge_values(&mut a, &other).unwrap_err().to_string();
        assert!(e.contains("64 in en/p.md but 32 in old.md"), "{e}");
    }
}
