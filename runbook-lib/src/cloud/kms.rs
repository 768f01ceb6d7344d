//! KMS: keys and their automatic rotation. The operations the catalog's steps use, with the AWS
//! implementation and the sandbox's side by side.

use async_trait::async_trait;

use super::aws::AwsCloud;
use super::aws::support::*;
use super::sandbox::Sandbox;
use super::sandbox::ops::*;
use super::{CloudError, Target};
use crate::resources::{KeyManager, KmsKey};

/// `arn:aws:kms:...:key/<id>` or a bare key id -> the key id.
pub(crate) fn key_id_of(key: &str) -> &str {
    key.rsplit_once(":key/").map_or(key, |(_, id)| id)
}

/// KMS: keys and their automatic rotation.
#[async_trait]
pub trait Kms: Send + Sync {
    /// KMS DescribeKey + GetKeyRotationStatus.
    async fn kms_key(&self, at: &Target, key_id: &str) -> Result<KmsKey, CloudError>;

    /// KMS EnableKeyRotation / DisableKeyRotation.
    async fn set_key_rotation(
        &self,
        at: &Target,
        key_id: &str,
        enabled: bool,
    ) -> Result<(), CloudError>;
}

#[async_trait]
impl Kms for AwsCloud {
    async fn kms_key(&self, at: &Target, key_id: &str) -> Result<KmsKey, CloudError> {
        let kms = self.clients(at).await?.kms;
        let described = kms
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| {
                if is_code(&e, &["NotFoundException"]) {
                    CloudError::NotFound(format!(
                        "NotFoundException: key '{}' does not exist in {at}",
                        key_id_of(key_id)
                    ))
                } else {
                    fail("kms:DescribeKey", "KMS", at, e)
                }
            })?;
        let meta = described.key_metadata().ok_or_else(|| {
            CloudError::Other(format!("kms:DescribeKey returned no metadata for {key_id}"))
        })?;
        let key_manager = match meta.key_manager() {
            Some(KeyManagerType::Customer) => KeyManager::Customer,
            // Unknown managers are treated as AWS's: their rotation is not ours to change.
            _ => KeyManager::Aws,
        };
        let rotation_enabled = match kms
            .get_key_rotation_status()
            .key_id(meta.key_id())
            .send()
            .await
        {
            Ok(status) => status.key_rotation_enabled(),
            // Keys that cannot rotate (asymmetric, pending deletion, ...) are not rotating.
            Err(e)
                if is_code(
                    &e,
                    &[
                        "UnsupportedOperationException",
                        "KMSInvalidStateException",
                        "DisabledException",
                    ],
                ) =>
            {
                false
            }
            Err(e) => return Err(fail("kms:GetKeyRotationStatus", "KMS", at, e)),
        };
        Ok(KmsKey {
            key_id: meta.key_id().to_string(),
            description: meta.description().unwrap_or_default().to_string(),
            key_manager,
            key_spec: meta
                .key_spec()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            key_state: meta
                .key_state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            rotation_enabled,
            creation_date: meta
                .creation_date()
                .and_then(|d| d.fmt(Format::DateTime).ok())
                .unwrap_or_default(),
        })
    }

    async fn set_key_rotation(
        &self,
        at: &Target,
        key_id: &str,
        enabled: bool,
    ) -> Result<(), CloudError> {
        // As in the sandbox: only enabled, customer-managed symmetric keys rotate.
        let key = Kms::kms_key(self, at, key_id).await?;
        if !key.rotation_applies() {
            return Err(CloudError::InvalidInput(format!(
                "UnsupportedOperationException: rotation cannot be changed on key {} ({:?}, {}, {})",
                key.key_id, key.key_manager, key.key_spec, key.key_state
            )));
        }
        let kms = self.clients(at).await?.kms;
        if enabled {
            kms.enable_key_rotation()
                .key_id(&key.key_id)
                .send()
                .await
                .map_err(|e| fail("kms:EnableKeyRotation", "KMS", at, e))?;
        } else {
            kms.disable_key_rotation()
                .key_id(&key.key_id)
                .send()
                .await
                .map_err(|e| fail("kms:DisableKeyRotation", "KMS", at, e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Kms for Sandbox {
    async fn kms_key(&self, at: &Target, key_id: &str) -> Result<KmsKey, CloudError> {
        let key_id = key_id_of(key_id);
        self.with_state(|s| {
            region(s, at)?
                .kms_keys
                .iter()
                .find(|k| k.key_id == key_id)
                .cloned()
                .ok_or_else(|| key_not_found(key_id))
        })
    }

    async fn set_key_rotation(
        &self,
        at: &Target,
        key_id: &str,
        enabled: bool,
    ) -> Result<(), CloudError> {
        let key = Kms::kms_key(self, at, key_id).await?;
        if !key.rotation_applies() {
            return Err(CloudError::InvalidInput(format!(
                "UnsupportedOperationException: rotation cannot be changed on key {} ({:?}, {}, {})",
                key.key_id, key.key_manager, key.key_spec, key.key_state
            )));
        }
        self.with_state_mut(|s| {
            if let Some(k) = region_mut(s, at)?
                .kms_keys
                .iter_mut()
                .find(|k| k.key_id == key.key_id)
            {
                k.rotation_enabled = enabled;
            }
            Ok(())
        })
    }
}
