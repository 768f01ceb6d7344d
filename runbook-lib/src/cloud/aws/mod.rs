//! The AWS backend: the official AWS SDK for Rust with the default credential chain.

mod capture;
pub(crate) mod errors;
mod member;
mod pace;
mod s3control_endpoint;
pub(crate) mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig};
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_securityhub::types::{
    AwsSecurityFindingFilters, AwsSecurityFindingIdentifier, NoteUpdate, SortCriterion, SortOrder,
    StringFilter, StringFilterComparison, WorkflowUpdate,
};

use crate::cloud::{
    Access, Acting, BackendInfo, BackendKind, Cloud, CloudError, FetchProgress, FindingUpdate,
    MemberRole, Organisation, ProgressFn, SessionRequest, Target, UnprocessedFinding,
    UpdateOutcome, select,
};
use crate::finding::AccountId;
use crate::finding::{Finding, FindingFilter, FindingIdentifier, WorkflowStatus};
use crate::settings::Settings;

pub use capture::CaptureBody;
pub use errors::cloud_error;

/// GetFindings' documented quota: requests per second, and burst.
const GET_FINDINGS_RATE: f64 = 3.0;
const GET_FINDINGS_BURST: f64 = 6.0;
/// GetFindings' largest page.
const PAGE_SIZE: i32 = 100;
/// Attempts per request; adaptive retry also paces requests after a throttle.
const MAX_ATTEMPTS: u32 = 10;
/// How long the credential chain may take to answer (IMDS probing is the slow part).
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(10);
/// The name written as `UpdatedBy` on finding notes.
pub const UPDATED_BY: &str = "runbook-kernel";

/// Loads the SDK configuration for the settings' region and profile. Retries are
/// adaptive unless AWS_RETRY_MODE or AWS_MAX_ATTEMPTS says otherwise.
pub async fn load_sdk_config(settings: &Settings) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if std::env::var_os("AWS_RETRY_MODE").is_none()
        && std::env::var_os("AWS_MAX_ATTEMPTS").is_none()
    {
        loader = loader.retry_config(RetryConfig::adaptive().with_max_attempts(MAX_ATTEMPTS));
    }
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    loader.load().await
}

/// Asks the credential chain for credentials; `Err` says why there are none.
pub async fn probe_credentials(sdk: &SdkConfig) -> Result<String, String> {
    let provider = sdk
        .credentials_provider()
        .ok_or_else(|| "no credential provider is configured".to_string())?;
    match tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials()).await {
        Ok(Ok(credentials)) => Ok(match credentials.account_id() {
            Some(account) => format!(
                "the default credential chain has credentials for account {}",
                account.as_str()
            ),
            None => "the default credential chain has credentials".to_string(),
        }),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "the credential chain did not answer within {} s",
            CREDENTIALS_TIMEOUT.as_secs()
        )),
    }
}

/// Cheap to clone: clones share clients, caches and the GetFindings quota. A clone
/// made for one plan ([`Cloud::act_in`]) acts in that plan's member account only.
#[derive(Clone)]
pub struct AwsCloud {
    sdk: SdkConfig,
    securityhub: aws_sdk_securityhub::Client,
    sts: aws_sdk_sts::Client,
    region: String,
    reason: String,
    member_role: MemberRole,
    /// Resource clients by region, in the caller's own account (a finding is acted
    /// on in its own region).
    clients: Arc<Mutex<HashMap<String, RegionClients>>>,
    /// Member-account sessions, by account and region.
    members: Arc<Mutex<HashMap<Target, member::MemberClients>>>,
    /// Set on a clone made for one plan: the session it acts through.
    scope: Option<Arc<SessionRequest>>,
    /// STS GetCallerIdentity, once known.
    caller: Arc<Mutex<Option<Caller>>>,
    /// Organizations ListAccounts, once read.
    organisation: Arc<tokio::sync::Mutex<Option<Organisation>>>,
    /// GetFindings' documented quota, kept client-side.
    get_findings_pace: Arc<pace::Pace>,
}

/// Who the credentials belong to.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    arn: String,
    account: Option<String>,
}

/// The resource clients for one region (clients are cheap handles to clone).
#[derive(Debug, Clone)]
pub(crate) struct RegionClients {
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) guardduty: aws_sdk_guardduty::Client,
    pub(crate) iam: aws_sdk_iam::Client,
    pub(crate) kms: aws_sdk_kms::Client,
    pub(crate) s3control: aws_sdk_s3control::Client,
}

impl RegionClients {
    fn new(sdk: &SdkConfig, region: &str) -> RegionClients {
        let region = Region::new(region.to_string());
        RegionClients {
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(sdk)
                    .region(region.clone())
                    .build(),
            ),
            guardduty: aws_sdk_guardduty::Client::from_conf(
                aws_sdk_guardduty::config::Builder::from(sdk)
                    .region(region.clone())
                    .build(),
            ),
            // IAM is global; the region only picks the partition's endpoint.
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(sdk)
                    .region(region.clone())
                    .build(),
            ),
            kms: aws_sdk_kms::Client::from_conf(
                aws_sdk_kms::config::Builder::from(sdk)
                    .region(region.clone())
                    .build(),
            ),
            s3control: aws_sdk_s3control::Client::from_conf(
                aws_sdk_s3control::config::Builder::from(sdk)
                    .region(region)
                    .endpoint_resolver(s3control_endpoint::S3ControlEndpoint::default())
                    .build(),
            ),
        }
    }
}

impl AwsCloud {
    /// Builds the backend from a loaded SDK configuration; needs a region. The
    /// member role is the default until [`AwsCloud::with_member_role`].
    pub fn new(sdk: &SdkConfig, reason: impl Into<String>) -> Result<AwsCloud, CloudError> {
        let region = sdk.region().map(|r| r.to_string()).ok_or_else(|| {
            CloudError::InvalidInput(
                "no AWS region is configured; set one with %config region=us-east-1 (or AWS_REGION / the profile's region)".into(),
            )
        })?;
        Ok(AwsCloud {
            sdk: sdk.clone(),
            securityhub: aws_sdk_securityhub::Client::new(sdk),
            sts: aws_sdk_sts::Client::new(sdk),
            region,
            reason: reason.into(),
            member_role: MemberRole {
                name: crate::settings::DEFAULT_MEMBER_ROLE.to_string(),
                external_id: None,
            },
            clients: Arc::default(),
            members: Arc::default(),
            scope: None,
            caller: Arc::default(),
            organisation: Arc::default(),
            get_findings_pace: Arc::new(pace::Pace::new(GET_FINDINGS_RATE, GET_FINDINGS_BURST)),
        })
    }

    /// The role to assume in member accounts.
    pub fn with_member_role(mut self, role: MemberRole) -> AwsCloud {
        self.member_role = role;
        self
    }

    /// The resource clients for acting in `at`: the caller's own, or a member
    /// session's there (assumed on first use, renewed before it expires). Acts
    /// with the caller's own when its account is unknown.
    pub(crate) async fn clients(&self, at: &Target) -> Result<RegionClients, CloudError> {
        let own = self.caller().await.ok().and_then(|c| c.account);
        match own {
            Some(own) if own != at.account.as_str() => self.member_clients(at).await,
            _ => Ok(self.own_clients(at)),
        }
    }

    fn own_clients(&self, at: &Target) -> RegionClients {
        match self.clients.lock() {
            Ok(mut cache) => cache
                .entry(at.region.clone())
                .or_insert_with(|| RegionClients::new(&self.sdk, &at.region))
                .clone(),
            // A poisoned cache only costs a new client.
            Err(_) => RegionClients::new(&self.sdk, &at.region),
        }
    }

    fn sh_error<E, R>(
        &self,
        action: &str,
        error: aws_sdk_securityhub::error::SdkError<E, R>,
    ) -> CloudError
    where
        E: aws_sdk_securityhub::error::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
        R: std::fmt::Debug,
    {
        cloud_error(action, "Security Hub", &self.region, error)
    }
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

/// The filter as GetFindings filters. The results are matched again locally, so
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

fn labels<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

/// Reads one GetFindings response body: the findings (as ASFF JSON) and the next token.
fn parse_page(body: &[u8]) -> Result<(Vec<Finding>, usize, Option<String>), CloudError> {
    let page: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| CloudError::Other(format!("GetFindings returned invalid JSON: {e}")))?;
    let values = page
        .get("Findings")
        .and_then(|f| f.as_array())
        .cloned()
        .unwrap_or_default();
    let (findings, errors) = Finding::from_asff_list(values);
    let next = page
        .get("NextToken")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    Ok((findings, errors.len(), next))
}

#[async_trait]
impl Cloud for AwsCloud {
    fn describe(&self) -> BackendInfo {
        let account = self
            .caller
            .lock()
            .ok()
            .and_then(|c| c.as_ref().and_then(|c| c.account.clone()))
            .and_then(|a| a.parse().ok());
        BackendInfo {
            kind: BackendKind::Aws,
            account,
            region: self.region.clone(),
            reason: self.reason.clone(),
            accounts: Vec::new(),
            regions: vec![self.region.clone()],
        }
    }

    async fn get_findings(
        &self,
        filter: &FindingFilter,
        progress: &mut ProgressFn<'_>,
    ) -> Result<Vec<Finding>, CloudError> {
        let filters = securityhub_filters(filter);
        let mut found: Vec<Finding> = Vec::new();
        let mut next_token: Option<String> = None;
        let mut pages = 0;
        let mut unreadable = 0;
        loop {
            let capture = CaptureBody::default();
            self.get_findings_pace.wait().await;
            let output = self
                .securityhub
                .get_findings()
                .filters(filters.clone())
                .sort_criteria(
                    SortCriterion::builder()
                        .field("SeverityNormalized")
                        .sort_order(SortOrder::Descending)
                        .build(),
                )
                .sort_criteria(
                    SortCriterion::builder()
                        .field("UpdatedAt")
                        .sort_order(SortOrder::Descending)
                        .build(),
                )
                .max_results(PAGE_SIZE)
                .set_next_token(next_token.clone())
                .customize()
                .interceptor(capture.clone())
                .send()
                .await
                .map_err(|e| self.sh_error("securityhub:GetFindings", e))?;
            pages += 1;
            let body = capture.take().ok_or_else(|| {
                CloudError::Other("GetFindings returned no readable body".to_string())
            })?;
            let (page, bad, token) = parse_page(&body)?;
            unreadable += bad;
            found.extend(page.into_iter().filter(|f| filter.matches(f)));
            // Pages come most severe first, so a limit can stop the paging early.
            let enough = filter.limit.is_some_and(|n| found.len() >= n);
            next_token = token.or_else(|| output.next_token().map(str::to_string));
            let done = enough || next_token.is_none();
            progress(FetchProgress {
                pages,
                findings: found.len(),
                unreadable,
                done,
            });
            if done {
                break;
            }
        }
        if unreadable > 0 && found.is_empty() {
            return Err(CloudError::Other(format!(
                "Security Hub returned {unreadable} findings this kernel could not read"
            )));
        }
        Ok(select(found, filter))
    }

    async fn update_findings(
        &self,
        ids: &[FindingIdentifier],
        workflow: WorkflowStatus,
        note: &str,
    ) -> Result<UpdateOutcome, CloudError> {
        let update = FindingUpdate::new(ids, workflow, note)?;
        let mut outcome = UpdateOutcome::default();
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
                let note = NoteUpdate::builder()
                    .text(note)
                    .updated_by(UPDATED_BY)
                    .build();
                request = request.note(note);
            }
            let output = request
                .send()
                .await
                .map_err(|e| self.sh_error("securityhub:BatchUpdateFindings", e))?;
            for processed in output.processed_findings() {
                outcome.processed.push(FindingIdentifier {
                    id: processed.id().unwrap_or_default().to_string(),
                    product_arn: processed.product_arn().unwrap_or_default().to_string(),
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
                    },
                    error_code: failed.error_code().unwrap_or_default().to_string(),
                    error_message: failed.error_message().unwrap_or_default().to_string(),
                });
            }
        }
        Ok(outcome)
    }

    async fn caller_identity(&self) -> Result<String, CloudError> {
        self.op_caller_identity().await
    }

    async fn organisation(&self) -> Organisation {
        self.op_organisation().await
    }

    async fn act_in(&self, request: &SessionRequest) -> Result<Acting, CloudError> {
        self.op_act_in(request).await
    }

    async fn access(&self, account: &AccountId) -> Access {
        self.op_access(account).await
    }
}
