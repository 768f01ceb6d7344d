//! The organisation and acting in its member accounts: account names and status
//! (AWS Organizations), the role assumed in a member account, the session a plan
//! acts through there, and the inline session policy that confines it to the
//! plan's own actions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Cloud, CloudError, Target};
use crate::finding::AccountId;

/// Organizations' account status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccountStatus {
    Active,
    Suspended,
    PendingClosure,
    Closed,
}

impl AccountStatus {
    pub fn label(&self) -> &'static str {
        match self {
            AccountStatus::Active => "ACTIVE",
            AccountStatus::Suspended => "SUSPENDED",
            AccountStatus::PendingClosure => "PENDING_CLOSURE",
            AccountStatus::Closed => "CLOSED",
        }
    }

    /// Organizations' own spelling; an unknown status reads as active, since only
    /// a known suspension stops an action before AWS is asked.
    pub fn parse(value: &str) -> AccountStatus {
        match value {
            "SUSPENDED" => AccountStatus::Suspended,
            "PENDING_CLOSURE" => AccountStatus::PendingClosure,
            "CLOSED" => AccountStatus::Closed,
            _ => AccountStatus::Active,
        }
    }
}

/// One account of the organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgAccount {
    pub id: AccountId,
    pub name: String,
    pub status: AccountStatus,
}

/// The organisation's accounts as Organizations lists them, or why it could not.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Organisation {
    pub accounts: Vec<OrgAccount>,
    /// Why names are not known (no permission to list the organisation, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

impl Organisation {
    pub fn account(&self, id: &AccountId) -> Option<&OrgAccount> {
        self.accounts.iter().find(|a| &a.id == id)
    }

    pub fn name_of(&self, id: &AccountId) -> Option<&str> {
        self.account(id).map(|a| a.name.as_str())
    }

    /// `222222222222 (workload)`, or the id alone when the name is unknown.
    pub fn label(&self, id: &AccountId) -> String {
        match self.name_of(id) {
            Some(name) => format!("{id} ({name})"),
            None => id.to_string(),
        }
    }

    /// Refuses a suspended or closing account before anyone asks AWS.
    pub fn check_active(&self, id: &AccountId) -> Result<(), CloudError> {
        match self.account(id) {
            Some(a) if a.status != AccountStatus::Active => Err(CloudError::AccountSuspended {
                account: self.label(id),
                status: a.status.label().to_string(),
            }),
            _ => Ok(()),
        }
    }
}

/// The role assumed in member accounts (settings `member_role`, `external_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRole {
    /// Role name, with its path if any (`ops/Runbook`).
    pub name: String,
    pub external_id: Option<String>,
}

impl MemberRole {
    /// The default role; the sandbox names it in its errors and sessions.
    pub fn default_for_sandbox() -> MemberRole {
        MemberRole {
            name: crate::settings::DEFAULT_MEMBER_ROLE.to_string(),
            external_id: None,
        }
    }

    pub fn arn(&self, at: &Target) -> String {
        format!(
            "arn:{}:iam::{}:role/{}",
            at.partition(),
            at.account,
            self.name
        )
    }
}

/// One statement of a session policy: actions allowed on resources.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    pub actions: BTreeSet<String>,
    /// Resource ARNs, or `*` for actions without resource-level permissions.
    pub resources: BTreeSet<String>,
}

/// An inline session policy: the most the assumed session may do. The effective
/// permissions are the role's and this policy's intersection.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionPolicy {
    grants: Vec<Grant>,
}

/// The longest plaintext session policy STS accepts, in characters.
pub const MAX_SESSION_POLICY_CHARS: usize = 2048;

/// What a read session may call in a member account: reads of the services the
/// catalog acts on (the `Cloud` supertraits).
const READ_ACTIONS: &[&str] = &[
    "ec2:Describe*",
    "ec2:Get*",
    "guardduty:Get*",
    "guardduty:List*",
    "iam:Get*",
    "iam:List*",
    "kms:Describe*",
    "kms:Get*",
    "kms:List*",
    "s3:GetAccountPublicAccessBlock",
];

impl SessionPolicy {
    /// A policy from `(IAM action, resource)` pairs, grouped so that actions on the
    /// same resources share a statement.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> SessionPolicy {
        let mut by_action: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (action, resource) in pairs {
            by_action
                .entry(action.to_string())
                .or_default()
                .insert(resource);
        }
        let mut by_resources: BTreeMap<BTreeSet<String>, BTreeSet<String>> = BTreeMap::new();
        for (action, mut resources) in by_action {
            // `*` already covers any narrower resource of the same action.
            if resources.contains("*") {
                resources = BTreeSet::from(["*".to_string()]);
            }
            by_resources.entry(resources).or_default().insert(action);
        }
        SessionPolicy {
            grants: by_resources
                .into_iter()
                .map(|(resources, actions)| Grant { actions, resources })
                .collect(),
        }
    }

    /// Reads only, for looking at a member account (planning, dry runs, %finding).
    pub fn read_only() -> SessionPolicy {
        SessionPolicy::from_pairs(READ_ACTIONS.iter().map(|a| (*a, "*".to_string())))
    }

    /// Allows nothing: a probe that the role can be assumed yields useless credentials.
    pub fn deny_all() -> SessionPolicy {
        SessionPolicy::default()
    }

    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// Every IAM action the policy allows, sorted.
    pub fn actions(&self) -> BTreeSet<&str> {
        self.grants
            .iter()
            .flat_map(|g| g.actions.iter().map(String::as_str))
            .collect()
    }

    /// The policy document, compact, as AssumeRole's `Policy` takes it.
    pub fn to_json(&self) -> String {
        let statements: Vec<serde_json::Value> = if self.grants.is_empty() {
            vec![serde_json::json!({"Effect": "Deny", "Action": "*", "Resource": "*"})]
        } else {
            self.grants
                .iter()
                .map(|g| {
                    serde_json::json!({
                        "Effect": "Allow",
                        "Action": g.actions,
                        "Resource": g.resources,
                    })
                })
                .collect()
        };
        serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    }

    /// SHA-256 of [`SessionPolicy::to_json`], hex: what the audit records.
    pub fn digest(&self) -> String {
        Sha256::digest(self.to_json().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Refuses a policy STS would refuse, saying how large it is.
    pub fn check_size(&self) -> Result<(), CloudError> {
        let chars = self.to_json().chars().count();
        if chars > MAX_SESSION_POLICY_CHARS {
            return Err(CloudError::InvalidInput(format!(
                "the plan's session policy is {chars} characters; STS accepts at most \
                 {MAX_SESSION_POLICY_CHARS}; split the plan into smaller plans"
            )));
        }
        Ok(())
    }
}

/// What to act with in a target: who acts, for what, and the most they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    pub target: Target,
    /// The approver's identity (an ARN, or a name); its last part names the session.
    pub approver: String,
    /// What the session is for, such as a plan id; part of the session name.
    pub purpose: String,
    pub policy: SessionPolicy,
}

impl SessionRequest {
    /// STS RoleSessionName: `approver+purpose`, 2-64 of `[\w+=,.@-]`, the purpose
    /// kept whole so CloudTrail ties the session to its plan.
    pub fn session_name(&self) -> String {
        let purpose = sts_safe(&self.purpose, 32);
        let room = 64 - purpose.len() - 1;
        let who = sts_safe(principal_name(&self.approver), room);
        pad(format!("{who}+{purpose}"))
    }

    /// STS SourceIdentity: the approver's name, 2-64 of `[\w+=,.@-]`. It stays on
    /// the session, so the member account's CloudTrail shows who approved.
    pub fn source_identity(&self) -> String {
        pad(sts_safe(principal_name(&self.approver), 64))
    }
}

/// The last part of an ARN (`.../alice@example.com`), or the text itself.
pub fn principal_name(identity: &str) -> &str {
    identity
        .rsplit(['/', ':'])
        .find(|part| !part.is_empty())
        .unwrap_or(identity)
}

/// Keeps `[\w+=,.@-]`, replacing anything else with `-`, at most `max` characters.
fn sts_safe(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(max)
        .collect()
}

/// STS names need at least two characters.
fn pad(mut name: String) -> String {
    while name.chars().count() < 2 {
        name.push('-');
    }
    name
}

/// The session a plan acts through in a member account, as the audit records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSession {
    pub account: AccountId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    pub region: String,
    pub role_arn: String,
    pub session_name: String,
    pub source_identity: String,
    /// SHA-256 of the inline session policy ([`SessionPolicy::digest`]).
    pub policy_digest: String,
    /// The IAM actions the session policy allows.
    pub allowed_actions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl MemberSession {
    pub fn new(
        request: &SessionRequest,
        role_arn: String,
        account_name: Option<String>,
        expires_at: Option<DateTime<Utc>>,
    ) -> MemberSession {
        MemberSession {
            account: request.target.account.clone(),
            account_name,
            region: request.target.region.clone(),
            role_arn,
            session_name: request.session_name(),
            source_identity: request.source_identity(),
            policy_digest: request.policy.digest(),
            allowed_actions: request
                .policy
                .actions()
                .into_iter()
                .map(str::to_string)
                .collect(),
            expires_at,
        }
    }
}

impl fmt::Display for MemberSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} as {}", self.role_arn, self.session_name)
    }
}

/// What a plan acts through.
#[derive(Clone, Default)]
pub struct Acting {
    /// The backend for the plan's steps; None: the one asked (its own account).
    pub cloud: Option<Arc<dyn Cloud>>,
    /// The assumed-role session in a member account; None in the caller's own.
    pub session: Option<MemberSession>,
}

impl fmt::Debug for Acting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acting")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// Whether the runbook can act in an account, as `%accounts` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Access {
    /// The caller's own account: no role to assume.
    Own,
    /// The member role could be assumed.
    Role { role_arn: String },
    /// It cannot, and why, in words that say what to fix.
    Denied { reason: String },
}

impl Access {
    pub fn can_act(&self) -> bool {
        !matches!(self, Access::Denied { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(approver: &str, purpose: &str) -> SessionRequest {
        SessionRequest {
            target: Target {
                account: "222222222222".parse().unwrap(),
                region: "us-east-1".into(),
            },
            approver: approver.into(),
            purpose: purpose.into(),
            policy: SessionPolicy::read_only(),
        }
    }

    fn sts_name_ok(name: &str) -> bool {
        (2..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    }

    #[test]
    fn session_names_fit_sts_and_keep_the_plan_id() {
        for approver in [
            "arn:aws:sts::111111111111:assumed-role/Admin/alice@example.com",
            "arn:aws:iam::111111111111:user/bob",
            "sandbox",
            "",
            "名前 with spaces/and<tags>",
            &"x".repeat(300),
        ] {
            let r = request(approver, "plan-3f9a1c2b");
            let name = r.session_name();
            assert!(sts_name_ok(&name), "{name:?}");
            assert!(name.ends_with("+plan-3f9a1c2b"), "{name}");
            assert!(
                sts_name_ok(&r.source_identity()),
                "{:?}",
                r.source_identity()
            );
        }
        let r = request(
            "arn:aws:sts::111111111111:assumed-role/Admin/alice@example.com",
            "plan-3f9a1c2b",
        );
        assert_eq!(r.session_name(), "alice@example.com+plan-3f9a1c2b");
        assert_eq!(r.source_identity(), "alice@example.com");
    }

    #[test]
    fn a_policy_groups_actions_by_resource_and_star_covers_narrower() {
        let sg = "arn:aws:ec2:us-east-1:222222222222:security-group/sg-1".to_string();
        let p = SessionPolicy::from_pairs([
            ("ec2:DescribeSecurityGroups", "*".to_string()),
            ("ec2:RevokeSecurityGroupIngress", sg.clone()),
            ("ec2:AuthorizeSecurityGroupIngress", sg.clone()),
            ("ec2:DescribeSecurityGroupRules", sg.clone()),
            ("ec2:DescribeSecurityGroupRules", "*".to_string()),
        ]);
        assert_eq!(p.grants().len(), 2, "{p:?}");
        let json: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(json["Statement"][0]["Effect"], "Allow");
        assert_eq!(
            p.actions().into_iter().collect::<Vec<_>>(),
            [
                "ec2:AuthorizeSecurityGroupIngress",
                "ec2:DescribeSecurityGroupRules",
                "ec2:DescribeSecurityGroups",
                "ec2:RevokeSecurityGroupIngress"
            ]
        );
        assert_eq!(p.digest().len(), 64);
        assert!(p.check_size().is_ok());
        let deny = SessionPolicy::deny_all().to_json();
        assert!(deny.contains("\"Deny\""), "{deny}");
    }

    #[test]
    fn a_suspended_account_is_refused_by_name() {
        let org = Organisation {
            accounts: vec![OrgAccount {
                id: "555555555555".parse().unwrap(),
                name: "closed-project".into(),
                status: AccountStatus::Suspended,
            }],
            unavailable: None,
        };
        let err = org
            .check_active(&"555555555555".parse().unwrap())
            .unwrap_err();
        assert!(
            err.to_string().contains("555555555555 (closed-project)"),
            "{err}"
        );
        assert!(err.to_string().contains("SUSPENDED"), "{err}");
        assert!(org.check_active(&"222222222222".parse().unwrap()).is_ok());
    }
}
