//! The resource operations of the [`Cloud`](crate::cloud::Cloud) trait over the
//! sandbox state. Errors read like the AWS errors they stand in for.

use super::Sandbox;
use super::controls::fnv1a;
use super::state::{AccountState, OrgState, RegionState};
use crate::cloud::{CloudError, Target};
use crate::resources::{
    DetectorStatus, GuardDutyDetector, IngressRule, KmsKey, PasswordPolicy, PublicAccessBlock,
    SecurityGroup,
};

fn no_account(at: &Target) -> CloudError {
    CloudError::AccessDenied {
        action: "sts:AssumeRole".to_string(),
        message: format!(
            "account {} is not part of the sandbox organisation",
            at.account
        ),
    }
}

fn no_region(at: &Target) -> CloudError {
    CloudError::InvalidInput(format!(
        "the sandbox has no region {} in account {}",
        at.region, at.account
    ))
}

fn account<'a>(state: &'a OrgState, at: &Target) -> Result<&'a AccountState, CloudError> {
    state.account(&at.account).ok_or_else(|| no_account(at))
}

fn account_mut<'a>(
    state: &'a mut OrgState,
    at: &Target,
) -> Result<&'a mut AccountState, CloudError> {
    state.account_mut(&at.account).ok_or_else(|| no_account(at))
}

fn region<'a>(state: &'a OrgState, at: &Target) -> Result<&'a RegionState, CloudError> {
    account(state, at)?;
    state
        .region(&at.account, &at.region)
        .ok_or_else(|| no_region(at))
}

fn region_mut<'a>(state: &'a mut OrgState, at: &Target) -> Result<&'a mut RegionState, CloudError> {
    account(state, at)?;
    state
        .region_mut(&at.account, &at.region)
        .ok_or_else(|| no_region(at))
}

fn group_not_found(group_id: &str) -> CloudError {
    CloudError::NotFound(format!(
        "InvalidGroup.NotFound: the security group '{group_id}' does not exist"
    ))
}

fn key_not_found(key_id: &str) -> CloudError {
    CloudError::NotFound(format!("NotFoundException: key '{key_id}' does not exist"))
}

fn sg_mut<'a>(
    state: &'a mut OrgState,
    at: &Target,
    group_id: &str,
) -> Result<&'a mut SecurityGroup, CloudError> {
    region_mut(state, at)?
        .security_groups
        .iter_mut()
        .find(|g| g.group_id == group_id)
        .ok_or_else(|| group_not_found(group_id))
}

impl Sandbox {
    pub(super) fn op_security_group(
        &self,
        at: &Target,
        group_id: &str,
    ) -> Result<SecurityGroup, CloudError> {
        self.with_state(|s| {
            region(s, at)?
                .security_groups
                .iter()
                .find(|g| g.group_id == group_id)
                .cloned()
                .ok_or_else(|| group_not_found(group_id))
        })
    }

    pub(super) fn op_revoke_ingress(
        &self,
        at: &Target,
        group_id: &str,
        rule_ids: &[String],
    ) -> Result<(), CloudError> {
        self.with_state(|s| {
            let group = region(s, at)?
                .security_groups
                .iter()
                .find(|g| g.group_id == group_id)
                .ok_or_else(|| group_not_found(group_id))?;
            match rule_ids
                .iter()
                .find(|id| !group.ingress.iter().any(|r| &r.rule_id == *id))
            {
                Some(missing) => Err(CloudError::NotFound(format!(
                    "InvalidSecurityGroupRuleId.NotFound: rule {missing} is not in {group_id}"
                ))),
                None => Ok(()),
            }
        })?;
        self.with_state_mut(|s| {
            let group = sg_mut(s, at, group_id)?;
            group.ingress.retain(|r| !rule_ids.contains(&r.rule_id));
            Ok(())
        })
    }

    pub(super) fn op_authorize_ingress(
        &self,
        at: &Target,
        group_id: &str,
        rules: &[IngressRule],
    ) -> Result<Vec<IngressRule>, CloudError> {
        self.op_security_group(at, group_id)?;
        let clock = self.now().to_rfc3339();
        self.with_state_mut(|s| {
            let group = sg_mut(s, at, group_id)?;
            let mut added = Vec::new();
            for rule in rules {
                let duplicate = group.ingress.iter().any(|r| {
                    r.protocol == rule.protocol
                        && r.from_port == rule.from_port
                        && r.to_port == rule.to_port
                        && r.cidr_ipv4 == rule.cidr_ipv4
                        && r.cidr_ipv6 == rule.cidr_ipv6
                });
                if duplicate {
                    return Err(CloudError::InvalidInput(format!(
                        "InvalidPermission.Duplicate: {} from {} already exists in {group_id}",
                        rule.ports(),
                        rule.source()
                    )));
                }
                let seed = format!(
                    "{group_id}/{}/{}/{clock}/{}",
                    rule.ports(),
                    rule.source(),
                    added.len()
                );
                let new = IngressRule {
                    rule_id: format!("sgr-{:016x}a", fnv1a(0x5eed, &seed)),
                    ..rule.clone()
                };
                group.ingress.push(new.clone());
                added.push(new);
            }
            Ok(added)
        })
    }

    pub(super) fn op_guardduty_detector(
        &self,
        at: &Target,
    ) -> Result<Option<GuardDutyDetector>, CloudError> {
        self.with_state(|s| Ok(region(s, at)?.guardduty.clone()))
    }

    pub(super) fn op_create_detector(&self, at: &Target) -> Result<String, CloudError> {
        self.with_state_mut(|s| {
            let region = region_mut(s, at)?;
            if region.guardduty.is_some() {
                return Err(CloudError::InvalidInput(
                    "BadRequestException: the request is rejected because a detector already exists for the current account".to_string(),
                ));
            }
            let detector_id = format!("{:016x}{:016x}", fnv1a(1, at.account.as_str()), fnv1a(2, &at.region));
            region.guardduty = Some(GuardDutyDetector {
                detector_id: detector_id.clone(),
                status: DetectorStatus::Enabled,
                finding_publishing_frequency: "SIX_HOURS".to_string(),
            });
            Ok(detector_id)
        })
    }

    fn detector_mut<'a>(
        state: &'a mut OrgState,
        at: &Target,
        detector_id: &str,
    ) -> Result<&'a mut Option<GuardDutyDetector>, CloudError> {
        let slot = &mut region_mut(state, at)?.guardduty;
        match slot {
            Some(d) if d.detector_id == detector_id => Ok(slot),
            _ => Err(CloudError::NotFound(format!(
                "BadRequestException: the detector '{detector_id}' does not exist in {at}"
            ))),
        }
    }

    pub(super) fn op_set_detector_enabled(
        &self,
        at: &Target,
        detector_id: &str,
        enabled: bool,
    ) -> Result<(), CloudError> {
        self.with_state_mut(|s| {
            if let Some(d) = Self::detector_mut(s, at, detector_id)? {
                d.status = if enabled {
                    DetectorStatus::Enabled
                } else {
                    DetectorStatus::Disabled
                };
            }
            Ok(())
        })
    }

    pub(super) fn op_delete_detector(
        &self,
        at: &Target,
        detector_id: &str,
    ) -> Result<(), CloudError> {
        self.with_state_mut(|s| {
            *Self::detector_mut(s, at, detector_id)? = None;
            Ok(())
        })
    }

    pub(super) fn op_password_policy(
        &self,
        at: &Target,
    ) -> Result<Option<PasswordPolicy>, CloudError> {
        self.with_state(|s| Ok(account(s, at)?.password_policy.clone()))
    }

    pub(super) fn op_set_password_policy(
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

    pub(super) fn op_delete_password_policy(&self, at: &Target) -> Result<(), CloudError> {
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

    pub(super) fn op_public_access_block(
        &self,
        at: &Target,
    ) -> Result<Option<PublicAccessBlock>, CloudError> {
        self.with_state(|s| {
            let block = account(s, at)?.s3_public_access_block;
            Ok((block != PublicAccessBlock::default()).then_some(block))
        })
    }

    pub(super) fn op_set_public_access_block(
        &self,
        at: &Target,
        block: &PublicAccessBlock,
    ) -> Result<(), CloudError> {
        self.with_state_mut(|s| {
            account_mut(s, at)?.s3_public_access_block = *block;
            Ok(())
        })
    }

    pub(super) fn op_delete_public_access_block(&self, at: &Target) -> Result<(), CloudError> {
        self.with_state_mut(|s| {
            account_mut(s, at)?.s3_public_access_block = PublicAccessBlock::default();
            Ok(())
        })
    }

    pub(super) fn op_ebs_encryption_by_default(&self, at: &Target) -> Result<bool, CloudError> {
        self.with_state(|s| Ok(region(s, at)?.ebs_encryption_by_default))
    }

    pub(super) fn op_set_ebs_encryption_by_default(
        &self,
        at: &Target,
        enabled: bool,
    ) -> Result<(), CloudError> {
        self.with_state_mut(|s| {
            region_mut(s, at)?.ebs_encryption_by_default = enabled;
            Ok(())
        })
    }

    pub(super) fn op_kms_key(&self, at: &Target, key_id: &str) -> Result<KmsKey, CloudError> {
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

    pub(super) fn op_set_key_rotation(
        &self,
        at: &Target,
        key_id: &str,
        enabled: bool,
    ) -> Result<(), CloudError> {
        let key = self.op_kms_key(at, key_id)?;
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

/// `arn:aws:kms:...:key/<id>` or a bare key id -> the key id.
fn key_id_of(key: &str) -> &str {
    key.rsplit_once(":key/").map_or(key, |(_, id)| id)
}

/// The ranges IAM enforces on UpdateAccountPasswordPolicy.
pub fn validate_password_policy(policy: &PasswordPolicy) -> Result<(), CloudError> {
    let invalid = |what: String| Err(CloudError::InvalidInput(format!("ValidationError: {what}")));
    if !(6..=128).contains(&policy.minimum_password_length) {
        return invalid(format!(
            "MinimumPasswordLength must be 6 to 128, got {}",
            policy.minimum_password_length
        ));
    }
    if let Some(age) = policy.max_password_age
        && !(1..=1095).contains(&age)
    {
        return invalid(format!("MaxPasswordAge must be 1 to 1095, got {age}"));
    }
    if let Some(reuse) = policy.password_reuse_prevention
        && !(1..=24).contains(&reuse)
    {
        return invalid(format!(
            "PasswordReusePrevention must be 1 to 24, got {reuse}"
        ));
    }
    Ok(())
}
