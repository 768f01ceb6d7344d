//! The simulated organisation's resource state. Findings are derived from it, so
//! changing it (as a remediation would) changes the findings.

use serde::{Deserialize, Serialize};

use crate::cloud::OrgAccount;
use crate::finding::AccountId;

pub use crate::resources::{
    ANY_IPV4, ANY_IPV6, DetectorStatus, GuardDutyDetector, IngressRule, KeyManager, KmsKey,
    PasswordPolicy, PublicAccessBlock, SecurityGroup,
};

/// Every account of the organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgState {
    /// The account the sandbox acts as: the security account, Security Hub's
    /// delegated administrator.
    pub security_account: AccountId,
    /// The region that aggregates findings and holds global (IAM) checks.
    pub home_region: String,
    /// The Security Hub member accounts, with their resources.
    pub accounts: Vec<AccountState>,
    /// Every account as AWS Organizations lists it: names and status, including
    /// accounts with no resources here (the management account, a suspended one).
    #[serde(default)]
    pub organisation: Vec<OrgAccount>,
    /// The role name the runbook asks for in members (setting `member_role`);
    /// the members have only the default one deployed.
    #[serde(default = "default_member_role")]
    pub member_role: String,
}

fn default_member_role() -> String {
    crate::settings::DEFAULT_MEMBER_ROLE.to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    pub id: AccountId,
    pub alias: String,
    /// Whether the runbook's member role is deployed here (the security account
    /// acts in its own account without one).
    #[serde(default = "deployed")]
    pub member_role: bool,
    /// None: the account has no custom password policy.
    pub password_policy: Option<PasswordPolicy>,
    /// The account-level S3 Block Public Access settings.
    pub s3_public_access_block: PublicAccessBlock,
    /// Whether a security alternate contact is set (Account.1).
    #[serde(default = "deployed")]
    pub security_contact: bool,
    pub regions: Vec<RegionState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionState {
    pub region: String,
    pub security_groups: Vec<SecurityGroup>,
    /// None: no detector in this region.
    pub guardduty: Option<GuardDutyDetector>,
    pub ebs_encryption_by_default: bool,
    pub kms_keys: Vec<KmsKey>,
    /// Trails whose home region is this one.
    pub trails: Vec<Trail>,
    /// Whether an AWS Config recorder is recording all resources here.
    pub config_recording: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trail {
    pub name: String,
    pub is_multi_region: bool,
    pub is_logging: bool,
    pub include_management_events: bool,
    pub s3_bucket: String,
    pub kms_key_id: Option<String>,
    pub log_file_validation: bool,
}

fn deployed() -> bool {
    true
}

impl OrgState {
    /// The organisation as Organizations would list it.
    pub fn organisation(&self) -> crate::cloud::Organisation {
        crate::cloud::Organisation {
            accounts: self.organisation.clone(),
            unavailable: None,
        }
    }

    pub fn account(&self, id: &AccountId) -> Option<&AccountState> {
        self.accounts.iter().find(|a| a.id == *id)
    }

    pub fn account_mut(&mut self, id: &AccountId) -> Option<&mut AccountState> {
        self.accounts.iter_mut().find(|a| a.id == *id)
    }

    pub fn region(&self, account: &AccountId, region: &str) -> Option<&RegionState> {
        self.account(account)?
            .regions
            .iter()
            .find(|r| r.region == region)
    }

    pub fn region_mut(&mut self, account: &AccountId, region: &str) -> Option<&mut RegionState> {
        self.account_mut(account)?
            .regions
            .iter_mut()
            .find(|r| r.region == region)
    }

    pub fn security_group(
        &self,
        account: &AccountId,
        region: &str,
        group_id: &str,
    ) -> Option<&SecurityGroup> {
        self.region(account, region)?
            .security_groups
            .iter()
            .find(|g| g.group_id == group_id)
    }

    pub fn security_group_mut(
        &mut self,
        account: &AccountId,
        region: &str,
        group_id: &str,
    ) -> Option<&mut SecurityGroup> {
        self.region_mut(account, region)?
            .security_groups
            .iter_mut()
            .find(|g| g.group_id == group_id)
    }

    pub fn kms_key_mut(
        &mut self,
        account: &AccountId,
        region: &str,
        key_id: &str,
    ) -> Option<&mut KmsKey> {
        self.region_mut(account, region)?
            .kms_keys
            .iter_mut()
            .find(|k| k.key_id == key_id)
    }

    /// Every region name used by any account, home region first.
    pub fn region_names(&self) -> Vec<String> {
        let mut names = vec![self.home_region.clone()];
        for r in self.accounts.iter().flat_map(|a| &a.regions) {
            if !names.contains(&r.region) {
                names.push(r.region.clone());
            }
        }
        names
    }
}

impl SecurityGroup {
    /// Removes the ingress rules for which `pred` holds; returns how many were removed.
    pub fn revoke_ingress_where(&mut self, pred: impl Fn(&IngressRule) -> bool) -> usize {
        let before = self.ingress.len();
        self.ingress.retain(|r| !pred(r));
        before - self.ingress.len()
    }
}
