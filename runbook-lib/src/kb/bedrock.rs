//! An Amazon Bedrock Knowledge Base, read with the agent runtime's Retrieve.
//! Passages come back with their source URI and score. Control parameters are
//! read from front matter found in the retrieved text (a Markdown policy file
//! uploaded as it is keeps its front matter in its first chunk).

use aws_config::SdkConfig;
use aws_sdk_bedrockagentruntime::types::{
    KnowledgeBaseQuery, KnowledgeBaseRetrievalConfiguration, KnowledgeBaseRetrievalResult,
    KnowledgeBaseVectorSearchConfiguration,
};

use super::{KbError, KbInfo, KnowledgeBase, Overview, Passage, SearchResult, document, text};
use crate::catalog::PolicyValues;
use crate::cloud::CloudError;

pub struct BedrockKnowledgeBase {
    client: aws_sdk_bedrockagentruntime::Client,
    id: String,
    region: String,
}

impl BedrockKnowledgeBase {
    pub fn new(sdk: &SdkConfig, id: String) -> Result<BedrockKnowledgeBase, KbError> {
        let region = sdk.region().map(ToString::to_string).ok_or_else(|| {
            KbError::Config(
                "no AWS region is configured for the Bedrock Knowledge Base; set one with %config region=us-east-1".to_string(),
            )
        })?;
        Ok(BedrockKnowledgeBase {
            client: aws_sdk_bedrockagentruntime::Client::new(sdk),
            id,
            region,
        })
    }

    fn error(&self, e: CloudError) -> KbError {
        let (id, region) = (self.id.clone(), self.region.clone());
        match e {
            CloudError::AccessDenied { message, .. } => KbError::AccessDenied {
                id,
                region,
                message,
            },
            CloudError::NotFound(message) => KbError::NotFound {
                id,
                region,
                message,
            },
            CloudError::Throttled { action } => KbError::Throttled {
                id,
                message: format!("{action} was throttled"),
            },
            CloudError::NoCredentials(message) => KbError::Config(format!(
                "no AWS credentials for Bedrock Retrieve: {message}"
            )),
            other => KbError::Service {
                id,
                message: other.to_string(),
            },
        }
    }
}

/// The source of a result: its S3 URI, web or Confluence URL, else the document id.
fn source_of(r: &KnowledgeBaseRetrievalResult) -> String {
    let location = r.location();
    location
        .and_then(|l| l.s3_location().and_then(|s| s.uri()))
        .or_else(|| location.and_then(|l| l.web_location().and_then(|w| w.url())))
        .or_else(|| location.and_then(|l| l.confluence_location().and_then(|c| c.url())))
        .or_else(|| r.document_id())
        .unwrap_or("(unknown source)")
        .to_string()
}

/// The first Markdown heading in a chunk, if any.
fn heading_of(chunk: &str) -> String {
    let (_, body) = document::split_front_matter(chunk).unwrap_or(("", chunk));
    document::sections(body, "")
        .into_iter()
        .map(|s| s.heading)
        .find(|h| !h.is_empty())
        .unwrap_or_default()
}

#[async_trait::async_trait]
impl KnowledgeBase for BedrockKnowledgeBase {
    fn info(&self) -> KbInfo {
        KbInfo::Bedrock {
            knowledge_base_id: self.id.clone(),
            region: self.region.clone(),
        }
    }

    async fn search(&self, query: &str, top: usize) -> Result<SearchResult, KbError> {
        let top = super::check_top(top)?;
        let terms = text::query_terms(query);
        if terms.is_empty() {
            return Err(KbError::EmptyQuery);
        }
        let config = KnowledgeBaseRetrievalConfiguration::builder()
            .vector_search_configuration(
                KnowledgeBaseVectorSearchConfiguration::builder()
                    .number_of_results(i32::try_from(top).unwrap_or(super::MAX_TOP as i32))
                    .build(),
            )
            .build();
        let output = self
            .client
            .retrieve()
            .knowledge_base_id(&self.id)
            .retrieval_query(KnowledgeBaseQuery::builder().text(query).build())
            .retrieval_configuration(config)
            .send()
            .await
            .map_err(|e| {
                self.error(crate::cloud::aws::errors::cloud_error(
                    "bedrock:Retrieve",
                    "Amazon Bedrock Knowledge Bases",
                    &self.region,
                    e,
                ))
            })?;
        let passages = output
            .retrieval_results()
            .iter()
            .take(top)
            .map(|r| {
                let text = r
                    .content()
                    .map(|c| c.text())
                    .unwrap_or_default()
                    .to_string();
                Passage {
                    source: source_of(r),
                    heading: heading_of(&text),
                    highlights: text::highlights(&text, &terms),
                    score: r.score().unwrap_or_default() as f32,
                    text,
                }
            })
            .collect();
        Ok(SearchResult {
            kb: self.info(),
            query: query.to_string(),
            passages,
            problems: Vec::new(),
        })
    }

    /// The values stated in the front matter of the retrieved passages.
    async fn values(&self, passages: &[Passage]) -> Result<PolicyValues, KbError> {
        let mut values = PolicyValues::new();
        for p in passages {
            let (yaml, body) = match document::split_front_matter(&p.text) {
                Ok((yaml, body)) if !yaml.trim().is_empty() => (yaml, body),
                _ => continue,
            };
            let sections = document::sections(body, &p.heading);
            let (found, _) =
                document::parse_front_matter(yaml, &p.source, &sections).map_err(|message| {
                    KbError::Incomplete(vec![super::Problem {
                        source: p.source.clone(),
                        message: format!("malformed front matter: {message}"),
                    }])
                })?;
            super::merge_values(&mut values, &found)?;
        }
        Ok(values)
    }

    async fn overview(&self) -> Result<Overview, KbError> {
        Ok(Overview {
            kb: self.info(),
            documents: None,
            passages: None,
            values: PolicyValues::new(),
            ignored: Vec::new(),
            problems: Vec::new(),
        })
    }
}
