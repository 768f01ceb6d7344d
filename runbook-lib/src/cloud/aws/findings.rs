//! Reading, counting and updating findings in Security Hub CSPM (ASFF:
//! GetFindings, insights, BatchUpdateFindings) or the new Security Hub (OCSF:
//! GetFindingsV2, GetFindingStatisticsV2, BatchUpdateFindingsV2), as
//! `findings_api` says. Pages follow one another through NextToken, so one
//! stream is bound by page latency as much as by the quota; disjoint
//! partitions of the filter are paged at once under the one shared quota.

use std::collections::{BTreeMap, HashSet};

use aws_sdk_securityhub::types::{
    AllowedOperators, AwsSecurityFindingFilters, AwsSecurityFindingIdentifier, CompositeFilter,
    GroupByField, GroupByRule, NoteUpdate, NumberFilter, OcsfFindingFilters, OcsfNumberField,
    OcsfNumberFilter, OcsfStringField, OcsfStringFilter, SortCriterion, SortOrder, StringFilter,
    StringFilterComparison, WorkflowUpdate,
};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{AwsCloud, CaptureBody, UPDATED_BY};
use crate::cloud::{
    CloudError, FetchProgress, FindingCounts, FindingUpdate, ProgressFn, UnprocessedFinding,
    UpdateOutcome, select,
};
use crate::finding::{
    AccountId, ComplianceStatus, Finding, FindingError, FindingFilter, FindingIdentifier,
    FindingSource, WorkflowStatus, standard_controls_for,
};
use crate::settings::FindingsApi;
use crate::severity::Severity;

/// GetFindings' and GetFindingsV2's largest page.
const PAGE_SIZE: i32 = 100;
/// Most values one filter field (or one OCSF composite filter) takes.
const MAX_FILTER_VALUES: usize = 20;
/// Limits this small are served by one stream: its first page usually holds them.
const ONE_STREAM_LIMIT: usize = PAGE_SIZE as usize;

/// Attempts per page when the SDK names none; throttles and transient failures
/// are retried, each attempt paced like any other request.
const PAGE_ATTEMPTS: u32 = 10;

/// Why one attempt at a page failed: worth another attempt or not.
enum Attempt {
    Transient(CloudError),
    Final(CloudError),
}

/// Waits between attempts, on top of the pace: 0.4 s doubling to at most 5 s.
fn backoff(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis((200u64 << attempt.min(5)).min(5_000))
}

/// The API in use and why, for listings and `%config`.
#[derive(Debug, Clone)]
pub(crate) struct ApiChoice {
    pub(crate) source: FindingSource,
    pub(crate) why: String,
}

impl ApiChoice {
    pub(crate) fn label(&self) -> String {
        match self.source {
            FindingSource::Asff => format!("Security Hub CSPM (ASFF, GetFindings): {}", self.why),
            FindingSource::Ocsf => format!("Security Hub (OCSF, GetFindingsV2): {}", self.why),
        }
    }
}

/// One server-side query: a disjoint part of the user's filter.
#[derive(Debug, Clone)]
enum Query {
    Cspm(Box<AwsSecurityFindingFilters>),
    V2(OcsfFindingFilters),
}

struct Page {
    findings: Vec<Finding>,
    unreadable: usize,
    next: Option<String>,
}

/// Disjoint parts of a filter that may be paged at once: one per severity
/// (LOW with INFORMATIONAL), times groups of at most 20 accounts (a filter
/// field's limit). A small limit is one stream: its first page usually holds it.
pub(crate) fn partitions(filter: &FindingFilter) -> Vec<FindingFilter> {
    if filter.limit.is_some_and(|n| n <= ONE_STREAM_LIMIT)
        && filter.accounts.len() <= MAX_FILTER_VALUES
    {
        return vec![filter.clone()];
    }
    // Open findings are seldom informational (a passed control is), so LOW and
    // INFORMATIONAL share a stream rather than spend a request on an empty one.
    let severities: Vec<Vec<Severity>> = if filter.severities.is_empty() {
        vec![
            vec![Severity::Critical],
            vec![Severity::High],
            vec![Severity::Medium],
            vec![Severity::Low, Severity::Informational],
        ]
    } else {
        filter.severities.iter().map(|s| vec![*s]).collect()
    };
    let mut parts = Vec::new();
    for severities in severities {
        for accounts in account_groups(filter) {
            parts.push(FindingFilter {
                severities: severities.clone(),
                accounts,
                ..filter.clone()
            });
        }
    }
    parts
}

/// The filter's accounts in groups a filter field accepts (one empty group: any account).
fn account_groups(filter: &FindingFilter) -> Vec<Vec<AccountId>> {
    if filter.accounts.is_empty() {
        return vec![Vec::new()];
    }
    filter
        .accounts
        .chunks(MAX_FILTER_VALUES)
        .map(<[AccountId]>::to_vec)
        .collect()
}

fn equals(values: impl IntoIterator<Item = String>) -> Option<Vec<StringFilter>> {
    let filters: Vec<StringFilter> = values
        .into_iter()
        .map(|v| {
            StringFilter::builder()
                .value(v)
                .comparison(StringFilterComparison::Equals)
                .build()
        })
        .collect();
    (!filters.is_empty()).then_some(filters)
}

fn contains(value: &Option<String>) -> Option<Vec<StringFilter>> {
    value.as_ref().map(|v| {
        vec![
            StringFilter::builder()
                .value(v.clone())
                .comparison(StringFilterComparison::Contains)
                .build(),
        ]
    })
}

fn labels<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

/// The filter as GetFindings filters. Results are matched again locally, so
/// both backends agree exactly on what a filter means.
pub fn securityhub_filters(filter: &FindingFilter) -> AwsSecurityFindingFilters {
    AwsSecurityFindingFilters::builder()
        .set_id(equals(filter.ids.clone()))
        .set_severity_label(equals(labels(&filter.severities)))
        .set_compliance_security_control_id(equals(
            filter.control_ids.iter().map(|c| c.as_str().to_string()),
        ))
        .set_compliance_status(equals(labels(&filter.compliance_statuses)))
        .set_workflow_status(equals(labels(&filter.workflow_statuses)))
        .set_record_state(equals(filter.record_state.iter().map(ToString::to_string)))
        .set_aws_account_id(equals(
            filter.accounts.iter().map(|a| a.as_str().to_string()),
        ))
        .set_region(equals(filter.regions.clone()))
        .set_resource_type(equals(filter.resource_types.clone()))
        .set_product_name(contains(&filter.product))
        .set_title(contains(&filter.title_contains))
        .build()
}

/// The CSPM queries for one part: its filters, and, when it names controls,
/// the same filters by the GeneratorIds of their standard-specific controls,
/// for findings from accounts without consolidated control findings.
fn cspm_queries(part: &FindingFilter) -> Vec<AwsSecurityFindingFilters> {
    let consolidated = securityhub_filters(part);
    let generators: Vec<String> = part
        .control_ids
        .iter()
        .flat_map(standard_controls_for)
        .map(|sc| sc.standard.generator_id(&sc.id))
        .collect();
    let mut queries = vec![consolidated.clone()];
    for chunk in generators.chunks(MAX_FILTER_VALUES) {
        let mut legacy = consolidated.clone();
        legacy.compliance_security_control_id = None;
        legacy.generator_id = equals(chunk.to_vec());
        queries.push(legacy);
    }
    queries
}

fn ocsf_strings(
    field: &str,
    values: Vec<String>,
    comparison: StringFilterComparison,
) -> Option<CompositeFilter> {
    if values.is_empty() || values.len() > MAX_FILTER_VALUES {
        return None;
    }
    let filters = values
        .into_iter()
        .map(|v| {
            OcsfStringFilter::builder()
                .field_name(OcsfStringField::from(field))
                .filter(
                    StringFilter::builder()
                        .value(v)
                        .comparison(comparison.clone())
                        .build(),
                )
                .build()
        })
        .collect();
    Some(
        CompositeFilter::builder()
            .set_string_filters(Some(filters))
            .operator(AllowedOperators::Or)
            .build(),
    )
}

fn ocsf_numbers(field: &str, values: Vec<f64>) -> Option<CompositeFilter> {
    if values.is_empty() {
        return None;
    }
    let filters = values
        .into_iter()
        .map(|v| {
            OcsfNumberFilter::builder()
                .field_name(OcsfNumberField::from(field))
                .filter(NumberFilter::builder().eq(v).build())
                .build()
        })
        .collect();
    Some(
        CompositeFilter::builder()
            .set_number_filters(Some(filters))
            .operator(AllowedOperators::Or)
            .build(),
    )
}

/// OCSF `severity_id` values of a label (Critical includes 6 Fatal; unknown
/// and other read as Informational).
fn severity_ids(severity: Severity) -> &'static [f64] {
    match severity {
        Severity::Informational => &[0.0, 1.0, 99.0],
        Severity::Low => &[2.0],
        Severity::Medium => &[3.0],
        Severity::High => &[4.0],
        Severity::Critical => &[5.0, 6.0],
    }
}

/// OCSF `status_id` of a workflow status.
pub(crate) fn status_id(workflow: WorkflowStatus) -> i32 {
    match workflow {
        WorkflowStatus::New => 1,
        WorkflowStatus::Notified => 2,
        WorkflowStatus::Suppressed => 3,
        WorkflowStatus::Resolved => 4,
    }
}

/// OCSF `compliance.status_id` values of a compliance status.
fn compliance_status_ids(status: ComplianceStatus) -> &'static [f64] {
    match status {
        ComplianceStatus::Passed => &[1.0],
        ComplianceStatus::Warning => &[2.0],
        ComplianceStatus::Failed => &[3.0],
        ComplianceStatus::NotAvailable => &[0.0, 99.0],
    }
}

/// The filter as GetFindingsV2's OCSF composite filters: one composite per
/// field, its values ORed, the composites ANDed (at most 10, as the API
/// allows). A field with more than 20 values is left to the local match.
pub fn ocsf_filters(filter: &FindingFilter) -> OcsfFindingFilters {
    let strings = |items: &[String]| items.to_vec();
    let composites: Vec<CompositeFilter> = [
        ocsf_strings(
            "metadata.uid",
            strings(&filter.ids),
            StringFilterComparison::Equals,
        ),
        ocsf_numbers(
            "severity_id",
            filter
                .severities
                .iter()
                .flat_map(|s| severity_ids(*s).iter().copied())
                .collect(),
        ),
        ocsf_strings(
            "compliance.control",
            filter
                .control_ids
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
            StringFilterComparison::Equals,
        ),
        ocsf_numbers(
            "compliance.status_id",
            filter
                .compliance_statuses
                .iter()
                .flat_map(|s| compliance_status_ids(*s).iter().copied())
                .collect(),
        ),
        ocsf_numbers(
            "status_id",
            filter
                .workflow_statuses
                .iter()
                .map(|w| f64::from(status_id(*w)))
                .collect(),
        ),
        ocsf_strings(
            "cloud.account.uid",
            filter
                .accounts
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
            StringFilterComparison::Equals,
        ),
        ocsf_strings(
            "cloud.region",
            strings(&filter.regions),
            StringFilterComparison::Equals,
        ),
        ocsf_strings(
            "resources.type",
            filter
                .resource_types
                .iter()
                .flat_map(|t| [t.clone(), ocsf_resource_type(t)])
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            StringFilterComparison::Equals,
        ),
        ocsf_strings(
            "finding_info.title",
            filter.title_contains.iter().cloned().collect(),
            StringFilterComparison::Contains,
        ),
        ocsf_strings(
            "metadata.product.name",
            filter.product.iter().cloned().collect(),
            StringFilterComparison::Contains,
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    OcsfFindingFilters::builder()
        .set_composite_filters((!composites.is_empty()).then_some(composites))
        .composite_operator(AllowedOperators::And)
        .build()
}

/// `AwsEc2SecurityGroup` → `AWS::EC2::SecurityGroup`, for the few resource types
/// the catalog acts on (OCSF may carry either spelling).
fn ocsf_resource_type(asff: &str) -> String {
    match asff {
        "AwsEc2SecurityGroup" => "AWS::EC2::SecurityGroup",
        "AwsAccount" => "AWS::::Account",
        "AwsS3Bucket" => "AWS::S3::Bucket",
        "AwsKmsKey" => "AWS::KMS::Key",
        "AwsIamUser" => "AWS::IAM::User",
        "AwsIamAccessKey" => "AWS::IAM::AccessKey",
        "AwsEc2Instance" => "AWS::EC2::Instance",
        "AwsEc2Vpc" => "AWS::EC2::VPC",
        "AwsGuardDutyDetector" => "AWS::GuardDuty::Detector",
        other => other,
    }
    .to_string()
}

/// Reads a GetFindings or GetFindingsV2 body: the findings, how many could not
/// be read, and the next token.
fn parse_page(body: &[u8], source: FindingSource) -> Result<Page, CloudError> {
    let operation = match source {
        FindingSource::Asff => "GetFindings",
        FindingSource::Ocsf => "GetFindingsV2",
    };
    let page: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| CloudError::Other(format!("{operation} returned invalid JSON: {e}")))?;
    let next = page
        .get("NextToken")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let values = match page {
        serde_json::Value::Object(mut map) => match map.remove("Findings") {
            Some(serde_json::Value::Array(values)) => values,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let read: fn(serde_json::Value) -> Result<Finding, FindingError> = match source {
        FindingSource::Asff => Finding::from_asff,
        FindingSource::Ocsf => Finding::from_ocsf,
    };
    let mut findings = Vec::with_capacity(values.len());
    let mut unreadable = 0;
    for value in values {
        match read(value) {
            Ok(f) => findings.push(f),
            Err(_) => unreadable += 1,
        }
    }
    Ok(Page {
        findings,
        unreadable,
        next,
    })
}

fn sorted_by_severity(field: &str) -> SortCriterion {
    SortCriterion::builder()
        .field(field)
        .sort_order(SortOrder::Descending)
        .build()
}

/// A severity label as the statistics and insights spell it ("Critical",
/// "CRITICAL", "Fatal").
fn severity_of(value: &str) -> Severity {
    match value.to_ascii_lowercase().as_str() {
        "critical" | "fatal" => Severity::Critical,
        "high" => Severity::High,
        "medium" => Severity::Medium,
        "low" => Severity::Low,
        _ => Severity::Informational,
    }
}

#[derive(Default)]
struct Tally {
    severities: BTreeMap<Severity, u64>,
    accounts: BTreeMap<AccountId, u64>,
}

impl Tally {
    fn add_severity(&mut self, value: &str, count: i32) {
        *self.severities.entry(severity_of(value)).or_insert(0) +=
            u64::try_from(count).unwrap_or(0);
    }

    fn add_account(&mut self, value: &str, count: i32) {
        if let Ok(account) = value.parse::<AccountId>() {
            *self.accounts.entry(account).or_insert(0) += u64::try_from(count).unwrap_or(0);
        }
    }

    fn counts(self, method: &str) -> FindingCounts {
        let total = self.severities.values().sum();
        FindingCounts::from_groups(total, self.severities, self.accounts, method)
    }
}

/// The insight attributes counts are grouped by on CSPM.
const BY_SEVERITY: &str = "SeverityLabel";
const BY_ACCOUNT: &str = "AwsAccountId";
/// Custom insights the kernel creates carry this prefix, then the grouping and a
/// digest of the filters, so one filter's insight is made once and reused.
pub const INSIGHT_PREFIX: &str = "runbook-kernel";

fn insight_name(filters: &AwsSecurityFindingFilters, group_by: &str) -> String {
    let digest = Sha256::digest(format!("{filters:?}").as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{INSIGHT_PREFIX} {group_by} {hex}")
}

impl AwsCloud {
    /// Which API findings come from: the setting, or for auto, v2 where
    /// DescribeSecurityHubV2 answers (asked once per backend).
    pub(crate) async fn findings_api(&self) -> ApiChoice {
        let choice = self
            .api
            .get_or_init(|| async {
                match self.findings_api_setting {
                    FindingsApi::Cspm => ApiChoice {
                        source: FindingSource::Asff,
                        why: "findings_api=cspm".to_string(),
                    },
                    FindingsApi::V2 => ApiChoice {
                        source: FindingSource::Ocsf,
                        why: "findings_api=v2".to_string(),
                    },
                    FindingsApi::Auto => match self.securityhub.describe_security_hub_v2().send().await {
                        Ok(_) => ApiChoice {
                            source: FindingSource::Ocsf,
                            why: format!(
                                "findings_api=auto, and the new Security Hub is enabled in {}",
                                self.region
                            ),
                        },
                        Err(e) => {
                            let error = self.sh_error("securityhub:DescribeSecurityHubV2", e);
                            ApiChoice {
                                source: FindingSource::Asff,
                                why: format!(
                                    "findings_api=auto, and the new Security Hub is not in use in {} ({error})",
                                    self.region
                                ),
                            }
                        }
                    },
                }
            })
            .await;
        choice.clone()
    }

    /// The API's label once known, for [`crate::cloud::BackendInfo`].
    pub(crate) fn findings_api_label(&self) -> Option<String> {
        self.api.get().map(ApiChoice::label)
    }

    /// One page, retried here rather than in the SDK: every attempt, retries
    /// included, waits its turn at the shared pace, so streams paged side by side
    /// never send faster than the quota, even while some are being throttled.
    async fn fetch_page(&self, query: &Query, token: Option<String>) -> Result<Page, CloudError> {
        // As many attempts as the SDK is configured for (AWS_MAX_ATTEMPTS, or 10).
        let attempts = self
            .sdk
            .retry_config()
            .map_or(PAGE_ATTEMPTS, |r| r.max_attempts().max(1));
        let mut attempt = 1;
        loop {
            match self.fetch_page_once(query, token.clone()).await {
                Ok(page) => return Ok(page),
                Err(Attempt::Transient(_)) if attempt < attempts => {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(Attempt::Transient(e) | Attempt::Final(e)) => return Err(e),
            }
        }
    }

    async fn fetch_page_once(&self, query: &Query, token: Option<String>) -> Result<Page, Attempt> {
        let capture = CaptureBody::default();
        self.get_findings_pace.wait().await;
        let once = || {
            aws_sdk_securityhub::config::Builder::default()
                .retry_config(aws_config::retry::RetryConfig::disabled())
        };
        let (next, source) = match query {
            Query::Cspm(filters) => {
                let output = self
                    .securityhub
                    .get_findings()
                    .filters(filters.as_ref().clone())
                    .sort_criteria(sorted_by_severity("SeverityNormalized"))
                    .sort_criteria(sorted_by_severity("UpdatedAt"))
                    .max_results(PAGE_SIZE)
                    .set_next_token(token)
                    .customize()
                    .config_override(once())
                    .interceptor(capture.clone())
                    .send()
                    .await
                    .map_err(|e| self.attempt_error("securityhub:GetFindings", e))?;
                (output.next_token().map(str::to_string), FindingSource::Asff)
            }
            Query::V2(filters) => {
                let output = self
                    .securityhub
                    .get_findings_v2()
                    .filters(filters.clone())
                    .sort_criteria(sorted_by_severity("severity_id"))
                    .sort_criteria(sorted_by_severity("finding_info.modified_time_dt"))
                    .max_results(PAGE_SIZE)
                    .set_next_token(token)
                    .customize()
                    .config_override(once())
                    .interceptor(capture.clone())
                    .send()
                    .await
                    .map_err(|e| self.attempt_error("securityhub:GetFindingsV2", e))?;
                (output.next_token().map(str::to_string), FindingSource::Ocsf)
            }
        };
        let body = capture.take().ok_or_else(|| {
            Attempt::Final(CloudError::Other(
                "Security Hub returned no readable body".to_string(),
            ))
        })?;
        let mut page = parse_page(&body, source).map_err(Attempt::Final)?;
        page.next = page.next.or(next);
        Ok(page)
    }

    /// A failed attempt, and whether another may succeed: throttles, 5xx
    /// answers, timeouts and dropped connections may.
    fn attempt_error<E>(
        &self,
        action: &str,
        error: aws_sdk_securityhub::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> Attempt
    where
        E: aws_sdk_securityhub::error::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        use aws_sdk_securityhub::error::SdkError;
        let transient = match &error {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(context) => context.raw().status().is_server_error(),
            _ => false,
        };
        let error = self.sh_error(action, error);
        if transient || error.is_retryable() {
            Attempt::Transient(error)
        } else {
            Attempt::Final(error)
        }
    }

    fn queries(&self, api: FindingSource, filter: &FindingFilter) -> Vec<Query> {
        partitions(filter)
            .iter()
            .flat_map(|part| match api {
                FindingSource::Asff => cspm_queries(part)
                    .into_iter()
                    .map(|q| Query::Cspm(Box::new(q)))
                    .collect(),
                FindingSource::Ocsf => vec![Query::V2(ocsf_filters(part))],
            })
            .collect()
    }

    pub(crate) async fn op_get_findings(
        &self,
        filter: &FindingFilter,
        progress: &mut ProgressFn<'_>,
    ) -> Result<Vec<Finding>, CloudError> {
        let api = self.findings_api().await.source;
        let queries = self.queries(api, filter);
        // Each stream may stop once it alone could fill the limit.
        let stop_after = filter.limit;
        let (sender, mut pages) =
            mpsc::channel::<Result<Page, CloudError>>(queries.len().max(1) * 2);
        // Dropping the set (an interrupt drops this future) aborts every stream.
        let mut streams = JoinSet::new();
        for query in queries {
            let cloud = self.clone();
            let sender = sender.clone();
            streams.spawn(async move {
                let mut token = None;
                let mut delivered = 0;
                loop {
                    match cloud.fetch_page(&query, token.take()).await {
                        Ok(page) => {
                            delivered += page.findings.len();
                            token.clone_from(&page.next);
                            let last =
                                token.is_none() || stop_after.is_some_and(|n| delivered >= n);
                            if sender.send(Ok(page)).await.is_err() || last {
                                break;
                            }
                        }
                        Err(e) => {
                            let _ = sender.send(Err(e)).await;
                            break;
                        }
                    }
                }
            });
        }
        drop(sender);
        let mut found: Vec<Finding> = Vec::new();
        // Only a control filter's second query (standard-specific ids) can
        // return a finding twice; other parts are disjoint.
        let overlapping = api == FindingSource::Asff && !filter.control_ids.is_empty();
        let mut seen: HashSet<String> = HashSet::new();
        let (mut read, mut unreadable) = (0, 0);
        while let Some(page) = pages.recv().await {
            let page = page?;
            read += 1;
            unreadable += page.unreadable;
            let fresh: Vec<Finding> = page
                .findings
                .into_iter()
                .filter(|f| filter.matches(f) && (!overlapping || seen.insert(f.id.clone())))
                .collect();
            progress(
                FetchProgress {
                    pages: read,
                    findings: found.len() + fresh.len(),
                    unreadable,
                    done: false,
                },
                &fresh,
            );
            found.extend(fresh);
        }
        progress(
            FetchProgress {
                pages: read,
                findings: found.len(),
                unreadable,
                done: true,
            },
            &[],
        );
        if unreadable > 0 && found.is_empty() {
            return Err(CloudError::Other(format!(
                "Security Hub returned {unreadable} findings this kernel could not read"
            )));
        }
        Ok(select(found, filter))
    }

    pub(crate) async fn op_count_findings(
        &self,
        filter: &FindingFilter,
    ) -> Result<FindingCounts, CloudError> {
        let api = self.findings_api().await.source;
        let mut tally = Tally::default();
        let parts: Vec<FindingFilter> = account_groups(filter)
            .into_iter()
            .map(|accounts| FindingFilter {
                accounts,
                ..filter.clone()
            })
            .collect();
        match api {
            FindingSource::Ocsf => {
                for part in &parts {
                    self.statistics_v2(&ocsf_filters(part), &mut tally).await?;
                }
                Ok(tally.counts("GetFindingStatisticsV2"))
            }
            FindingSource::Asff => {
                for filters in parts.iter().flat_map(cspm_queries) {
                    for (group_by, value_count) in self.insight_results(&filters).await? {
                        match group_by {
                            BY_SEVERITY => value_count
                                .iter()
                                .for_each(|(v, n)| tally.add_severity(v, *n)),
                            _ => value_count
                                .iter()
                                .for_each(|(v, n)| tally.add_account(v, *n)),
                        }
                    }
                }
                Ok(tally.counts("Security Hub insights (GetInsightResults)"))
            }
        }
    }

    async fn statistics_v2(
        &self,
        filters: &OcsfFindingFilters,
        tally: &mut Tally,
    ) -> Result<(), CloudError> {
        let rule = |field: &str| {
            GroupByRule::builder()
                .filters(filters.clone())
                .group_by_field(GroupByField::from(field))
                .build()
        };
        let output = self
            .securityhub
            .get_finding_statistics_v2()
            .group_by_rules(rule("severity"))
            .group_by_rules(rule("cloud.account.uid"))
            .send()
            .await
            .map_err(|e| self.sh_error("securityhub:GetFindingStatisticsV2", e))?;
        for result in output.group_by_results() {
            let by_account = result.group_by_field() == Some("cloud.account.uid");
            for value in result.group_by_values() {
                let (Some(v), Some(n)) = (value.field_value(), value.count()) else {
                    continue;
                };
                if by_account {
                    tally.add_account(v, n);
                } else {
                    tally.add_severity(v, n);
                }
            }
        }
        Ok(())
    }

    /// Counts by severity and by account from two custom insights on these
    /// filters, made once (named by a digest of the filters) and reused.
    async fn insight_results(
        &self,
        filters: &AwsSecurityFindingFilters,
    ) -> Result<Vec<(&'static str, Vec<(String, i32)>)>, CloudError> {
        let mut out = Vec::new();
        for group_by in [BY_SEVERITY, BY_ACCOUNT] {
            let arn = self.insight(filters, group_by).await?;
            let output = self
                .securityhub
                .get_insight_results()
                .insight_arn(&arn)
                .send()
                .await
                .map_err(|e| self.sh_error("securityhub:GetInsightResults", e))?;
            let values = output
                .insight_results()
                .map(|r| {
                    r.result_values()
                        .iter()
                        .filter_map(|v| {
                            Some((v.group_by_attribute_value()?.to_string(), v.count()?))
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((group_by, values));
        }
        Ok(out)
    }

    async fn insight(
        &self,
        filters: &AwsSecurityFindingFilters,
        group_by: &str,
    ) -> Result<String, CloudError> {
        let name = insight_name(filters, group_by);
        let mut known = self.insights.lock().await;
        if known.is_none() {
            let mut found = BTreeMap::new();
            let mut token = None;
            loop {
                let page = self
                    .securityhub
                    .get_insights()
                    .max_results(100)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| self.sh_error("securityhub:GetInsights", e))?;
                for insight in page.insights() {
                    if let (Some(n), Some(a)) = (insight.name(), insight.insight_arn())
                        && n.starts_with(INSIGHT_PREFIX)
                    {
                        found.insert(n.to_string(), a.to_string());
                    }
                }
                token = page
                    .next_token()
                    .filter(|t| !t.is_empty())
                    .map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
            *known = Some(found);
        }
        if let Some(arn) = known.as_ref().and_then(|k| k.get(&name)) {
            return Ok(arn.clone());
        }
        let created = self
            .securityhub
            .create_insight()
            .name(&name)
            .filters(filters.clone())
            .group_by_attribute(group_by)
            .send()
            .await
            .map_err(|e| self.sh_error("securityhub:CreateInsight", e))?;
        let arn = created.insight_arn().unwrap_or_default().to_string();
        if let Some(k) = known.as_mut() {
            k.insert(name, arn.clone());
        }
        Ok(arn)
    }

    pub(crate) async fn op_update_findings(
        &self,
        ids: &[FindingIdentifier],
        workflow: WorkflowStatus,
        note: &str,
    ) -> Result<UpdateOutcome, CloudError> {
        FindingUpdate::new(ids, workflow, note)?;
        let (ocsf, asff): (Vec<FindingIdentifier>, Vec<FindingIdentifier>) = ids
            .iter()
            .cloned()
            .partition(|f| f.source == FindingSource::Ocsf);
        let mut outcome = UpdateOutcome::default();
        if !asff.is_empty() {
            self.update_cspm(&FindingUpdate::new(&asff, workflow, note)?, &mut outcome)
                .await?;
        }
        if !ocsf.is_empty() {
            self.update_v2(&FindingUpdate::new(&ocsf, workflow, note)?, &mut outcome)
                .await?;
        }
        Ok(outcome)
    }

    async fn update_cspm(
        &self,
        update: &FindingUpdate<'_>,
        outcome: &mut UpdateOutcome,
    ) -> Result<(), CloudError> {
        for batch in update.batches() {
            let identifiers = batch
                .iter()
                .map(|f| {
                    AwsSecurityFindingIdentifier::builder()
                        .id(&f.id)
                        .product_arn(&f.product_arn)
                        .build()
                })
                .collect::<Vec<_>>();
            let mut request = self
                .securityhub
                .batch_update_findings()
                .set_finding_identifiers(Some(identifiers))
                .workflow(
                    WorkflowUpdate::builder()
                        .status(update.workflow.label().into())
                        .build(),
                );
            if let Some(note) = update.note {
                request = request.note(
                    NoteUpdate::builder()
                        .text(note)
                        .updated_by(UPDATED_BY)
                        .build(),
                );
            }
            let output = request
                .send()
                .await
                .map_err(|e| self.sh_error("securityhub:BatchUpdateFindings", e))?;
            for processed in output.processed_findings() {
                outcome.processed.push(FindingIdentifier {
                    id: processed.id().unwrap_or_default().to_string(),
                    product_arn: processed.product_arn().unwrap_or_default().to_string(),
                    source: FindingSource::Asff,
                });
            }
            for failed in output.unprocessed_findings() {
                let finding = failed.finding_identifier();
                outcome.unprocessed.push(UnprocessedFinding {
                    finding: FindingIdentifier {
                        id: finding.and_then(|f| f.id()).unwrap_or_default().to_string(),
                        product_arn: finding
                            .and_then(|f| f.product_arn())
                            .unwrap_or_default()
                            .to_string(),
                        source: FindingSource::Asff,
                    },
                    error_code: failed.error_code().unwrap_or_default().to_string(),
                    error_message: failed.error_message().unwrap_or_default().to_string(),
                });
            }
        }
        Ok(())
    }

    /// BatchUpdateFindingsV2 by MetadataUids: StatusId, and the note as Comment.
    async fn update_v2(
        &self,
        update: &FindingUpdate<'_>,
        outcome: &mut UpdateOutcome,
    ) -> Result<(), CloudError> {
        for batch in update.batches() {
            let product_of = |uid: &str| {
                batch
                    .iter()
                    .find(|f| f.id == uid)
                    .map(|f| f.product_arn.clone())
                    .unwrap_or_default()
            };
            let output = self
                .securityhub
                .batch_update_findings_v2()
                .set_metadata_uids(Some(batch.iter().map(|f| f.id.clone()).collect()))
                .status_id(status_id(update.workflow))
                .set_comment(update.note.map(str::to_string))
                .send()
                .await
                .map_err(|e| self.sh_error("securityhub:BatchUpdateFindingsV2", e))?;
            for processed in output.processed_findings() {
                let uid = processed.metadata_uid().unwrap_or_default();
                outcome.processed.push(FindingIdentifier {
                    id: uid.to_string(),
                    product_arn: product_of(uid),
                    source: FindingSource::Ocsf,
                });
            }
            for failed in output.unprocessed_findings() {
                let uid = failed.metadata_uid().unwrap_or_default();
                outcome.unprocessed.push(UnprocessedFinding {
                    finding: FindingIdentifier {
                        id: uid.to_string(),
                        product_arn: product_of(uid),
                        source: FindingSource::Ocsf,
                    },
                    error_code: failed
                        .error_code()
                        .map(|c| c.as_str().to_string())
                        .unwrap_or_default(),
                    error_message: failed.error_message().unwrap_or_default().to_string(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_small_limit_is_one_stream_and_a_listing_splits_by_severity() {
        let small = FindingFilter {
            limit: Some(50),
            ..FindingFilter::default()
        };
        assert_eq!(partitions(&small).len(), 1);
        let all = FindingFilter {
            limit: None,
            ..FindingFilter::default()
        };
        let parts = partitions(&all);
        assert_eq!(parts.len(), 4, "LOW and INFORMATIONAL share one");
        let covered: Vec<Severity> = parts.iter().flat_map(|p| p.severities.clone()).collect();
        assert_eq!(covered.len(), 5);
        let many_accounts = FindingFilter {
            accounts: (0..45)
                .map(|i| format!("{:012}", 100_000_000_000u64 + i).parse().unwrap())
                .collect(),
            severities: vec![Severity::High],
            ..all
        };
        let parts = partitions(&many_accounts);
        assert_eq!(parts.len(), 3, "45 accounts in groups of 20");
        assert!(parts.iter().all(|p| p.accounts.len() <= MAX_FILTER_VALUES));
    }

    #[test]
    fn a_control_filter_also_asks_for_its_standard_specific_generator_ids() {
        let filter = FindingFilter {
            control_ids: vec!["IAM.15".parse().unwrap()],
            ..FindingFilter::default()
        };
        let queries = cspm_queries(&filter);
        assert!(queries.len() >= 2);
        let legacy = &queries[1];
        assert!(legacy.compliance_security_control_id.is_none());
        let generators: Vec<&str> = legacy
            .generator_id()
            .iter()
            .filter_map(|f| f.value())
            .collect();
        assert!(
            generators.contains(
                &"arn:aws:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0/rule/1.9"
            ),
            "{generators:?}"
        );
    }

    #[test]
    fn ocsf_filters_or_within_a_field_and_and_across() {
        let filter = FindingFilter {
            severities: vec![Severity::Critical, Severity::High],
            control_ids: vec!["EC2.19".parse().unwrap()],
            ..FindingFilter::default()
        };
        let f = ocsf_filters(&filter);
        assert_eq!(f.composite_operator(), Some(&AllowedOperators::And));
        let composites = f.composite_filters();
        assert!(composites.len() <= 10);
        let severity = &composites[0];
        assert_eq!(severity.operator(), Some(&AllowedOperators::Or));
        assert_eq!(
            severity.number_filters().len(),
            3,
            "Critical is 5 or 6, High 4"
        );
    }

    #[test]
    fn insight_names_are_stable_per_filter() {
        let a = securityhub_filters(&FindingFilter::default());
        assert_eq!(insight_name(&a, BY_SEVERITY), insight_name(&a, BY_SEVERITY));
        assert_ne!(insight_name(&a, BY_SEVERITY), insight_name(&a, BY_ACCOUNT));
        assert!(insight_name(&a, BY_ACCOUNT).starts_with(INSIGHT_PREFIX));
    }
}
