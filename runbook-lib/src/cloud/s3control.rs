//! S3 Control: the account-level Block Public Access configuration. The operations the catalog's steps use, with the AWS
//! implementation and the sandbox's side by side.

use async_trait::async_trait;

use super::aws::AwsCloud;
use super::aws::support::*;
use super::sandbox::Sandbox;
use super::sandbox::ops::*;
use super::{CloudError, Target};
use crate::resources::PublicAccessBlock;

/// S3 Control: the account-level Block Public Access configuration.
#[async_trait]
pub trait S3Control: Send + Sync {
    /// S3 Control GetPublicAccessBlock for the account; None when none is configured.
    async fn public_access_block(
        &self,
        at: &Target,
    ) -> Result<Option<PublicAccessBlock>, CloudError>;

    /// S3 Control PutPublicAccessBlock.
    async fn set_public_access_block(
        &self,
        at: &Target,
        block: &PublicAccessBlock,
    ) -> Result<(), CloudError>;

    /// S3 Control DeletePublicAccessBlock.
    async fn delete_public_access_block(&self, at: &Target) -> Result<(), CloudError>;
}

#[async_trait]
impl S3Control for AwsCloud {
    async fn public_access_block(
        &self,
        at: &Target,
    ) -> Result<Option<PublicAccessBlock>, CloudError> {
        const ACTION: &str = "s3:GetAccountPublicAccessBlock";
        let output = match self
            .clients(at)
            .await?
            .s3control
            .get_public_access_block()
            .account_id(at.account.as_str())
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if is_code(&e, &["NoSuchPublicAccessBlockConfiguration"]) => return Ok(None),
            Err(e) => return Err(fail(ACTION, "S3", at, e)),
        };
        Ok(output
            .public_access_block_configuration()
            .map(|c| PublicAccessBlock {
                block_public_acls: c.block_public_acls().unwrap_or(false),
                ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
                block_public_policy: c.block_public_policy().unwrap_or(false),
                restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
            }))
    }

    async fn set_public_access_block(
        &self,
        at: &Target,
        block: &PublicAccessBlock,
    ) -> Result<(), CloudError> {
        const ACTION: &str = "s3:PutAccountPublicAccessBlock";
        let configuration = PublicAccessBlockConfiguration::builder()
            .block_public_acls(block.block_public_acls)
            .ignore_public_acls(block.ignore_public_acls)
            .block_public_policy(block.block_public_policy)
            .restrict_public_buckets(block.restrict_public_buckets)
            .build();
        self.clients(at)
            .await?
            .s3control
            .put_public_access_block()
            .account_id(at.account.as_str())
            .public_access_block_configuration(configuration)
            .send()
            .await
            .map_err(|e| fail(ACTION, "S3", at, e))?;
        Ok(())
    }

    async fn delete_public_access_block(&self, at: &Target) -> Result<(), CloudError> {
        const ACTION: &str = "s3:PutAccountPublicAccessBlock";
        match self
            .clients(at)
            .await?
            .s3control
            .delete_public_access_block()
            .account_id(at.account.as_str())
            .send()
            .await
        {
            // Deleting what is not there leaves the account as asked, as in the sandbox.
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, &["NoSuchPublicAccessBlockConfiguration"]) => Ok(()),
            Err(e) => Err(fail(ACTION, "S3", at, e)),
        }
    }
}

#[async_trait]
impl S3Control for Sandbox {
    async fn public_access_block(
        &self,
        at: &Target,
    ) -> Result<Option<PublicAccessBlock>, CloudError> {
        self.with_state(|s| {
            let block = account(s, at)?.s3_public_access_block;
            Ok((block != PublicAccessBlock::default()).then_some(block))
        })
    }

    async fn set_public_access_block(
        &self,
        at: &Target,
        block: &PublicAccessBlock,
    ) -> Result<(), CloudError> {
        self.with_state_mut(|s| {
            account_mut(s, at)?.s3_public_access_block = *block;
            Ok(())
        })
    }

    async fn delete_public_access_block(&self, at: &Target) -> Result<(), CloudError> {
        self.with_state_mut(|s| {
            account_mut(s, at)?.s3_public_access_block = PublicAccessBlock::default();
            Ok(())
        })
    }
}
