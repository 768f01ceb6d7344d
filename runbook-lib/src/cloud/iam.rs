//! IAM: the account password policy. The operations the catalog's steps use, with the AWS
//! implementation and the sandbox's side by side.

use async_trait::async_trait;

use super::aws::AwsCloud;
use super::aws::support::*;
use super::sandbox::Sandbox;
use super::sandbox::ops::*;
use super::{CloudError, Target};
use crate::resources::PasswordPolicy;

/// IAM: the account password policy.
#[async_trait]
pub trait Iam: Send + Sync {
    /// IAM GetAccountPasswordPolicy; None when the account has no custom policy.
    async fn password_policy(&self, at: &Target) -> Result<Option<PasswordPolicy>, CloudError>;

    /// IAM UpdateAccountPasswordPolicy with every field (the API resets omitted ones).
    async fn set_password_policy(
        &self,
        at: &Target,
        policy: &PasswordPolicy,
    ) -> Result<(), CloudError>;

    /// IAM DeleteAccountPasswordPolicy.
    async fn delete_password_policy(&self, at: &Target) -> Result<(), CloudError>;
}

#[async_trait]
impl Iam for AwsCloud {
    async fn password_policy(&self, at: &Target) -> Result<Option<PasswordPolicy>, CloudError> {
        const ACTION: &str = "iam:GetAccountPasswordPolicy";
        let output = match self
            .clients(at)
            .await?
            .iam
            .get_account_password_policy()
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if is_code(&e, &["NoSuchEntity"]) => return Ok(None),
            Err(e) => return Err(fail(ACTION, "IAM", at, e)),
        };
        let Some(p) = output.password_policy() else {
            return Ok(None);
        };
        let positive = |v: Option<i32>| v.filter(|n| *n > 0);
        Ok(Some(PasswordPolicy {
            minimum_password_length: match p.minimum_password_length() {
                Some(n) => fit("MinimumPasswordLength", n)?,
                None => IAM_DEFAULT_MIN_PASSWORD_LENGTH,
            },
            require_symbols: p.require_symbols(),
            require_numbers: p.require_numbers(),
            require_uppercase_characters: p.require_uppercase_characters(),
            require_lowercase_characters: p.require_lowercase_characters(),
            allow_users_to_change_password: p.allow_users_to_change_password(),
            // moto reports 0 for "never expires"; AWS leaves the field out.
            max_password_age: positive(p.max_password_age())
                .map(|n| fit("MaxPasswordAge", n))
                .transpose()?,
            password_reuse_prevention: positive(p.password_reuse_prevention())
                .map(|n| fit("PasswordReusePrevention", n))
                .transpose()?,
            hard_expiry: p.hard_expiry().unwrap_or(false),
        }))
    }

    async fn set_password_policy(
        &self,
        at: &Target,
        policy: &PasswordPolicy,
    ) -> Result<(), CloudError> {
        const ACTION: &str = "iam:UpdateAccountPasswordPolicy";
        // Every field is sent: IAM resets the ones a request leaves out, and the
        // plan passes the whole merged policy.
        self.clients(at)
            .await?
            .iam
            .update_account_password_policy()
            .minimum_password_length(i32::from(policy.minimum_password_length))
            .require_symbols(policy.require_symbols)
            .require_numbers(policy.require_numbers)
            .require_uppercase_characters(policy.require_uppercase_characters)
            .require_lowercase_characters(policy.require_lowercase_characters)
            .allow_users_to_change_password(policy.allow_users_to_change_password)
            .set_max_password_age(policy.max_password_age.map(i32::from))
            .set_password_reuse_prevention(policy.password_reuse_prevention.map(i32::from))
            .hard_expiry(policy.hard_expiry)
            .send()
            .await
            .map_err(|e| fail(ACTION, "IAM", at, e))?;
        Ok(())
    }

    async fn delete_password_policy(&self, at: &Target) -> Result<(), CloudError> {
        const ACTION: &str = "iam:DeleteAccountPasswordPolicy";
        self.clients(at)
            .await?
            .iam
            .delete_account_password_policy()
            .send()
            .await
            .map_err(|e| {
                if is_code(&e, &["NoSuchEntity"]) {
                    CloudError::NotFound(
                        "NoSuchEntity: the account has no password policy".to_string(),
                    )
                } else {
                    fail(ACTION, "IAM", at, e)
                }
            })?;
        Ok(())
    }
}

#[async_trait]
impl Iam for Sandbox {
    async fn password_policy(&self, at: &Target) -> Result<Option<PasswordPolicy>, CloudError> {
        self.with_state(|s| Ok(account(s, at)?.password_policy.clone()))
    }

    async fn set_password_policy(
        &self,
        at: &Target,
        policy: &PasswordPolicy,
    ) -> Result<(), CloudError> {
        validate_password_policy(policy)?;
        self.with_state_mut(|s| {
            account_mut(s, at)?.password_policy = Some(policy.clone());
            Ok(())
        })
    }

    async fn delete_password_policy(&self, at: &Target) -> Result<(), CloudError> {
        self.with_state_mut(|s| {
            let account = account_mut(s, at)?;
            if account.password_policy.take().is_none() {
                return Err(CloudError::NotFound(
                    "NoSuchEntity: the account has no password policy".to_string(),
                ));
            }
            Ok(())
        })
    }
}
