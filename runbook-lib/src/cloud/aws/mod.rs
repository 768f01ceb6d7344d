//! The AWS backend: the official AWS SDK for Rust with the default credential chain.

mod capture;
pub(crate) mod errors;
mod findings;
mod member;
mod pace;
mod s3control_endpoint;
pub(crate) mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cloud::{
    Access, Acting, BackendInfo, BackendKind, Cloud, CloudError, FindingCounts, MemberRole,
    Organisation, ProgressFn, SessionRequest, Target, UpdateOutcome,
};
use crate::finding::AccountId;
use crate::finding::{Finding, FindingFilter, FindingIdentifier, WorkflowStatus};
use crate::settings::{FindingsApi, Settings};
use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig};
use aws_credential_types::provider::ProvideCredentials;

pub use capture::CaptureBody;
pub use errors::cloud_error;
pub use findings::{INSIGHT_PREFIX, ocsf_filters, securityhub_filters};

/// GetFindings' documented quota: requests per second, and burst. No quota is
/// published for GetFindingsV2, so it is paced the same. The client keeps one
/// token of the service's burst of 6 in hand: requests sent at exactly the rate
/// arrive with jitter, and a throttle costs far more (adaptive retry slows
/// down) than the third of a second the spare token costs.
const GET_FINDINGS_RATE: f64 = 3.0;
const GET_FINDINGS_BURST: f64 = 5.0;
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
    findings_api_setting: FindingsApi,
    /// The API findings come from, once decided.
    api: Arc<tokio::sync::OnceCell<findings::ApiChoice>>,
    /// The kernel's custom insights (name to ARN), once listed.
    insights: Arc<tokio::sync::Mutex<Option<std::collections::BTreeMap<String, String>>>>,
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
    pub(crate) ssm: aws_sdk_ssm::Client,
    pub(crate) config: aws_sdk_config::Client,
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
            ssm: aws_sdk_ssm::Client::from_conf(
                aws_sdk_ssm::config::Builder::from(sdk)
                    .region(region.clone())
                    .build(),
            ),
            config: aws_sdk_config::Client::from_conf(
                aws_sdk_config::config::Builder::from(sdk)
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
            findings_api_setting: FindingsApi::Auto,
            api: Arc::default(),
            insights: Arc::default(),
        })
    }

    /// Which Security Hub to read findings from (auto until set).
    pub fn with_findings_api(mut self, api: FindingsApi) -> AwsCloud {
        self.findings_api_setting = api;
        self
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
            findings_api: self.findings_api_label(),
        }
    }

    async fn get_findings(
        &self,
        filter: &FindingFilter,
        progress: &mut ProgressFn<'_>,
    ) -> Result<Vec<Finding>, CloudError> {
        self.op_get_findings(filter, progress).await
    }

    async fn count_findings(&self, filter: &FindingFilter) -> Result<FindingCounts, CloudError> {
        self.op_count_findings(filter).await
    }

    async fn update_findings(
        &self,
        ids: &[FindingIdentifier],
        workflow: WorkflowStatus,
        note: &str,
    ) -> Result<UpdateOutcome, CloudError> {
        self.op_update_findings(ids, workflow, note).await
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

    fn member_role(&self) -> MemberRole {
        self.member_role.clone()
    }
}
