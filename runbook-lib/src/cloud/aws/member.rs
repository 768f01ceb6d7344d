//! Acting in member accounts from the security account: the member role assumed
//! in the target's account and region with an inline session policy, a session
//! name and a source identity; sessions cached until shortly before they expire;
//! the organisation's accounts from AWS Organizations.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::Region;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use chrono::{DateTime, Utc};

use super::errors::{cloud_error, denied, error_code};
use super::{AwsCloud, RegionClients};
use crate::cloud::member::{AccountStatus, OrgAccount};
use crate::cloud::{
    Access, Acting, CloudError, MemberSession, Organisation, SessionPolicy, SessionRequest, Target,
};
use crate::finding::AccountId;

/// A member-account session's clients and when its credentials lapse.
#[derive(Clone)]
pub(crate) struct MemberClients {
    clients: RegionClients,
    expires: SystemTime,
}

/// A session is renewed this long before it expires, so no call starts on
/// credentials about to lapse.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// Requested session length: an hour, the most role chaining allows.
const SESSION_SECONDS: i32 = 3600;
/// The most a ListAccounts page may take, retry included.
const ORGANIZATIONS_TIMEOUT: Duration = Duration::from_secs(5);
/// What a read session is for, in its session name.
const READ_PURPOSE: &str = "read";

impl AwsCloud {
    /// The clients of a member-account session for `at`, assumed when there is
    /// none or it is about to expire.
    pub(super) async fn member_clients(&self, at: &Target) -> Result<RegionClients, CloudError> {
        let request = self.request_for(at).await?;
        let now = SystemTime::now();
        let cached = self
            .members
            .lock()
            .ok()
            .and_then(|m| m.get(at).cloned())
            .filter(|m| m.expires > now + RENEW_BEFORE);
        if let Some(member) = cached {
            return Ok(member.clients);
        }
        let (member, _) = self.assume(&request).await?;
        if let Ok(mut members) = self.members.lock() {
            members.insert(at.clone(), member.clone());
        }
        Ok(member.clients)
    }

    /// The session request for acting in `at`: a plan's own (only in its account),
    /// or, outside a plan, a read-only one.
    async fn request_for(&self, at: &Target) -> Result<SessionRequest, CloudError> {
        match &self.scope {
            Some(scope) if scope.target.account == at.account => Ok(SessionRequest {
                target: at.clone(),
                ..(**scope).clone()
            }),
            Some(scope) => Err(CloudError::AccessDenied {
                action: "sts:AssumeRole".to_string(),
                message: format!(
                    "the session for {} acts in account {} only, not in {}",
                    scope.purpose, scope.target.account, at.account
                ),
            }),
            None => Ok(SessionRequest {
                target: at.clone(),
                approver: self.op_caller_identity().await.unwrap_or_default(),
                purpose: READ_PURPOSE.to_string(),
                policy: SessionPolicy::read_only(),
            }),
        }
    }

    /// AssumeRole of the member role in the request's account, through STS in
    /// the request's region (so a region the account has not enabled says so).
    async fn assume(
        &self,
        request: &SessionRequest,
    ) -> Result<(MemberClients, MemberSession), CloudError> {
        let organisation = self.op_organisation().await;
        organisation.check_active(&request.target.account)?;
        request.policy.check_size()?;
        let role_arn = self.member_role.arn(&request.target);
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&self.sdk)
                .region(Region::new(request.target.region.clone()))
                .build(),
        );
        let output = sts
            .assume_role()
            .role_arn(&role_arn)
            .role_session_name(request.session_name())
            .source_identity(request.source_identity())
            .policy(request.policy.to_json())
            .set_external_id(self.member_role.external_id.clone())
            .duration_seconds(SESSION_SECONDS)
            .send()
            .await
            .map_err(|e| self.assume_role_error(&role_arn, request, &organisation, e))?;
        let credentials = output.credentials().ok_or_else(|| {
            CloudError::Other(format!(
                "sts:AssumeRole of {role_arn} returned no credentials"
            ))
        })?;
        let expires = SystemTime::try_from(*credentials.expiration())
            .unwrap_or_else(|_| SystemTime::now() + Duration::from_secs(SESSION_SECONDS as u64));
        let provider = Credentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            Some(credentials.session_token().to_string()),
            Some(expires),
            "runbook-member-role",
        );
        let sdk = self
            .sdk
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build();
        let session = MemberSession::new(
            request,
            role_arn,
            organisation
                .name_of(&request.target.account)
                .map(str::to_string),
            Some(DateTime::<Utc>::from(expires)),
        );
        let clients = RegionClients::new(&sdk, &request.target.region);
        Ok((MemberClients { clients, expires }, session))
    }

    fn assume_role_error<E, R>(
        &self,
        role_arn: &str,
        request: &SessionRequest,
        organisation: &Organisation,
        error: SdkError<E, R>,
    ) -> CloudError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        let account = organisation.label(&request.target.account);
        let message = error.message().unwrap_or_default().to_string();
        match error_code(&error) {
            Some("AccessDenied") if message.to_ascii_lowercase().contains("explicit deny") => {
                denied("sts:AssumeRole", message)
            }
            Some("AccessDenied") => CloudError::RoleNotAssumable {
                role_arn: role_arn.to_string(),
                account,
                caller: trust_principal(&request.approver),
                message: format!("AccessDenied: {message}"),
            },
            Some("RegionDisabledException") => CloudError::RegionNotEnabled {
                region: request.target.region.clone(),
                account,
            },
            _ => cloud_error("sts:AssumeRole", "STS", &request.target.region, error),
        }
    }

    pub(super) async fn op_act_in(&self, request: &SessionRequest) -> Result<Acting, CloudError> {
        let own = self.caller().await?.account;
        if own.is_none_or(|own| own == request.target.account.as_str()) {
            return Ok(Acting::default());
        }
        let scoped = AwsCloud {
            members: Arc::default(),
            scope: Some(Arc::new(request.clone())),
            ..self.clone()
        };
        let (member, session) = scoped.assume(request).await?;
        if let Ok(mut members) = scoped.members.lock() {
            members.insert(request.target.clone(), member);
        }
        Ok(Acting {
            cloud: Some(Arc::new(scoped)),
            session: Some(session),
        })
    }

    pub(super) async fn op_access(&self, account: &AccountId) -> Access {
        let own = self.caller().await.ok().and_then(|c| c.account);
        if own.as_deref() == Some(account.as_str()) {
            return Access::Own;
        }
        let request = SessionRequest {
            target: Target {
                account: account.clone(),
                region: self.region.clone(),
            },
            approver: self.op_caller_identity().await.unwrap_or_default(),
            purpose: "access-check".to_string(),
            policy: SessionPolicy::deny_all(),
        };
        match self.assume(&request).await {
            Ok((_, session)) => Access::Role {
                role_arn: session.role_arn,
            },
            Err(e) => Access::Denied {
                reason: e.to_string(),
            },
        }
    }

    pub(super) async fn op_organisation(&self) -> Organisation {
        let mut slot = self.organisation.lock().await;
        if let Some(known) = slot.as_ref() {
            return known.clone();
        }
        let listed = self.list_accounts().await;
        *slot = Some(listed.clone());
        listed
    }

    /// Names are a nicety: a listing must not wait on them, so Organizations gets
    /// one retry and a few seconds before the ids are shown alone.
    async fn list_accounts(&self) -> Organisation {
        let client = aws_sdk_organizations::Client::from_conf(
            aws_sdk_organizations::config::Builder::from(&self.sdk)
                .retry_config(RetryConfig::standard().with_max_attempts(2))
                .timeout_config(
                    TimeoutConfig::builder()
                        .operation_timeout(ORGANIZATIONS_TIMEOUT)
                        .build(),
                )
                .build(),
        );
        let mut accounts = Vec::new();
        let mut pages = client.list_accounts().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    return Organisation {
                        accounts: Vec::new(),
                        unavailable: Some(organisation_unavailable(e)),
                    };
                }
            };
            for account in page.accounts() {
                let Some(id) = account.id().and_then(|id| id.parse::<AccountId>().ok()) else {
                    continue;
                };
                let status = account
                    .state()
                    .map(|s| s.as_str().to_string())
                    .or_else(|| account.status().map(|s| s.as_str().to_string()))
                    .unwrap_or_default();
                accounts.push(OrgAccount {
                    id,
                    name: account.name().unwrap_or_default().to_string(),
                    status: AccountStatus::parse(&status),
                });
            }
        }
        // An account outside any organisation may be answered with an empty list.
        let unavailable = accounts.is_empty().then(|| {
            "account names are not shown: Organizations listed no accounts (this account is not in an AWS Organization)".to_string()
        });
        Organisation {
            accounts,
            unavailable,
        }
    }
}

/// Why the organisation's accounts cannot be listed, in one line.
fn organisation_unavailable<E, R>(error: SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match error_code(&error) {
        Some("AccessDeniedException" | "AccessDenied") => {
            "account names are not shown: organizations:ListAccounts was denied (only the management account or an Organizations delegated administrator may list accounts)".to_string()
        }
        Some("AWSOrganizationsNotInUseException") => {
            "account names are not shown: this account is not in an AWS Organization".to_string()
        }
        _ => format!(
            "account names are not shown: {}",
            cloud_error("organizations:ListAccounts", "Organizations", "", error)
        ),
    }
}

/// The principal a member role's trust policy names for this caller: an
/// assumed-role session is trusted through its role.
fn trust_principal(caller: &str) -> String {
    let Some(rest) = caller.strip_prefix("arn:") else {
        return caller.to_string();
    };
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    match parts.as_slice() {
        [partition, "sts", _, account, resource] => {
            match resource
                .strip_prefix("assumed-role/")
                .and_then(|r| r.split('/').next())
            {
                Some(role) => format!("arn:{partition}:iam::{account}:role/{role}"),
                None => caller.to_string(),
            }
        }
        _ => caller.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::trust_principal;

    #[test]
    fn an_assumed_role_is_trusted_through_its_role() {
        assert_eq!(
            trust_principal("arn:aws:sts::111111111111:assumed-role/SecOps/alice"),
            "arn:aws:iam::111111111111:role/SecOps"
        );
        assert_eq!(
            trust_principal("arn:aws:iam::111111111111:user/bob"),
            "arn:aws:iam::111111111111:user/bob"
        );
        assert_eq!(trust_principal("sandbox"), "sandbox");
    }
}
