//! What the sandbox side of every service file (`cloud/ec2.rs`, ...) shares:
//! finding the target account, region and resources in the state. Errors read
//! like the AWS errors they stand in for.

use super::Sandbox;
pub(crate) use super::controls::fnv1a;
pub(crate) use super::state::{AccountState, OrgState, RegionState};
use crate::cloud::{CloudError, MemberRole, Target};
use crate::resources::{GuardDutyDetector, PasswordPolicy, SecurityGroup};

/// Why the security account cannot act in `at.account`, as AWS would answer:
/// suspended, no member role there, or not in the organisation at all.
pub(crate) fn cannot_act(state: &OrgState, at: &Target) -> Option<CloudError> {
    if at.account == state.security_account {
        return None;
    }
    let organisation = state.organisation();
    if let Err(e) = organisation.check_active(&at.account) {
        return Some(e);
    }
    let role = MemberRole {
        name: state.member_role.clone(),
        external_id: None,
    };
    let role_arn = role.arn(at);
    let deployed = role == MemberRole::default_for_sandbox();
    match state.account(&at.account) {
        Some(a) if a.member_role && deployed => None,
        Some(_) => Some(CloudError::RoleMissing {
            role_arn,
            account: organisation.label(&at.account),
        }),
        None if organisation.account(&at.account).is_some() => Some(CloudError::RoleMissing {
            role_arn,
            account: organisation.label(&at.account),
        }),
        None => Some(CloudError::RoleNotAssumable {
            role_arn,
            account: at.account.to_string(),
            caller: crate::audit::SANDBOX_ACTOR.to_string(),
            message: "AccessDenied: the account is not part of the sandbox organisation"
                .to_string(),
        }),
    }
}

pub(crate) fn no_region(at: &Target) -> CloudError {
    CloudError::RegionNotEnabled {
        region: at.region.clone(),
        account: at.account.to_string(),
    }
}

pub(crate) fn account<'a>(
    state: &'a OrgState,
    at: &Target,
) -> Result<&'a AccountState, CloudError> {
    if let Some(e) = cannot_act(state, at) {
        return Err(e);
    }
    state.account(&at.account).ok_or_else(|| no_region(at))
}

pub(crate) fn account_mut<'a>(
    state: &'a mut OrgState,
    at: &Target,
) -> Result<&'a mut AccountState, CloudError> {
    if let Some(e) = cannot_act(state, at) {
        return Err(e);
    }
    state.account_mut(&at.account).ok_or_else(|| no_region(at))
}

pub(crate) fn region<'a>(state: &'a OrgState, at: &Target) -> Result<&'a RegionState, CloudError> {
    account(state, at)?;
    state
        .region(&at.account, &at.region)
        .ok_or_else(|| no_region(at))
}

pub(crate) fn region_mut<'a>(
    state: &'a mut OrgState,
    at: &Target,
) -> Result<&'a mut RegionState, CloudError> {
    account(state, at)?;
    state
        .region_mut(&at.account, &at.region)
        .ok_or_else(|| no_region(at))
}

pub(crate) fn key_not_found(key_id: &str) -> CloudError {
    CloudError::NotFound(format!("NotFoundException: key '{key_id}' does not exist"))
}

pub(crate) fn sg_mut<'a>(
    state: &'a mut OrgState,
    at: &Target,
    group_id: &str,
) -> Result<&'a mut SecurityGroup, CloudError> {
    region_mut(state, at)?
        .security_groups
        .iter_mut()
        .find(|g| g.group_id == group_id)
        .ok_or_else(|| crate::cloud::ec2::group_not_found(group_id, at))
}

impl Sandbox {
    pub(crate) fn detector_mut<'a>(
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
