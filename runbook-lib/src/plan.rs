//! Remediation plans: typed, allow-listed [`Action`]s bound to one finding, a content
//! digest as the plan id (approval names the content), validation against the finding,
//! and the equivalent AWS CLI and boto3 code.
//!
//! Every action is written once over the [`Cloud`] trait: it can `precheck` the live
//! state, `apply`, `verify`, give its `inverse`, name its IAM permissions, and render
//! itself as CLI and Python.

use std::collections::BTreeSet;
use std::fmt;
use std::fmt::Write as _;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::catalog::{self, Family};
use crate::cloud::{Cloud, CloudError, Target};
use crate::finding::{AccountId, ControlId, Finding, FindingIdentifier};
use crate::resources::{DetectorStatus, IngressRule, PasswordPolicy, PublicAccessBlock};
use crate::settings::Lang;

// ---------------------------------------------------------------------------
// Plan id

/// `plan-` + the first 8 hex digits of SHA-256 over the plan's canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PlanId(String);

impl PlanId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of some content: SHA-256 over its bytes, first 4 bytes in hex.
    fn of_bytes(bytes: &[u8]) -> PlanId {
        let digest = Sha256::digest(bytes);
        let mut s = String::from("plan-");
        for b in digest.iter().take(4) {
            let _ = write!(s, "{b:02x}");
        }
        PlanId(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid plan id {given:?}: expected plan- followed by 8 lowercase hex digits (e.g. plan-3f9a1c2b)"
)]
pub struct ParsePlanIdError {
    pub given: String,
}

impl FromStr for PlanId {
    type Err = ParsePlanIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let ok = t.strip_prefix("plan-").is_some_and(|h| {
            h.len() == 8
                && h.chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        });
        if ok {
            Ok(PlanId(t.to_string()))
        } else {
            Err(ParsePlanIdError {
                given: s.to_string(),
            })
        }
    }
}

impl TryFrom<String> for PlanId {
    type Error = ParsePlanIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PlanId> for String {
    fn from(p: PlanId) -> String {
        p.0
    }
}

impl fmt::Display for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Writes `v` as JSON with object keys sorted and no whitespace.
pub fn canonical_json(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut entries: Vec<(&String, &Value)> = m.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (k, val)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(val, out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, val) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(val, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

// ---------------------------------------------------------------------------
// Actions

/// One typed, allow-listed operation. Variants carry their exact parameters and,
/// where a faithful inverse needs it, the state they were planned from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Revoke these world-open ingress rules (full definitions kept for the inverse).
    RevokeIngress {
        group_id: String,
        rules: Vec<IngressRule>,
    },
    /// Re-authorize ingress rules. Inverse only.
    AuthorizeIngress {
        group_id: String,
        rules: Vec<IngressRule>,
    },
    /// Create a detector (None) or enable the existing, disabled one.
    EnableGuardDuty {
        existing_detector: Option<String>,
    },
    /// Inverse only.
    DisableGuardDuty {
        detector_id: String,
    },
    /// Inverse only.
    DeleteGuardDutyDetector {
        detector_id: String,
    },
    /// The full merged policy (UpdateAccountPasswordPolicy resets what it is not given).
    SetPasswordPolicy {
        policy: PasswordPolicy,
        previous: Option<PasswordPolicy>,
    },
    /// Inverse only (there was no custom policy before).
    DeletePasswordPolicy,
    BlockS3PublicAccess {
        block: PublicAccessBlock,
        previous: Option<PublicAccessBlock>,
    },
    /// Inverse only (there was no configuration before).
    DeleteS3PublicAccessBlock,
    EnableEbsEncryptionByDefault,
    /// Inverse only.
    DisableEbsEncryptionByDefault,
    EnableKmsKeyRotation {
        key_id: String,
    },
    /// Inverse only.
    DisableKmsKeyRotation {
        key_id: String,
    },
}

/// What a precheck found: the live state, what apply will make of it, and drift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Precheck {
    /// What is there now.
    pub current: Value,
    /// What apply will make.
    pub expected: Value,
    /// The intended state already holds: apply would be a no-op.
    pub already_done: bool,
    /// The live state no longer matches what the plan was made from, in words.
    pub drift: Option<String>,
}

/// What an apply changed. Carries the ids only known after apply (a created
/// detector, re-authorized rules) so the exact inverse can be built.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Applied {
    /// False when the intended state already held and nothing was done.
    pub changed: bool,
    /// What was done, in English words (for the audit trail).
    pub summary: String,
    /// GuardDuty: the detector created by this apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_detector: Option<String>,
    /// GuardDuty: the existing detector this apply enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled_detector: Option<String>,
    /// Ingress rules revoked (RevokeIngress) or created, with their new ids (AuthorizeIngress).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<IngressRule>,
}

impl Applied {
    fn unchanged(summary: impl Into<String>) -> Applied {
        Applied {
            changed: false,
            summary: summary.into(),
            ..Applied::default()
        }
    }

    fn changed(summary: impl Into<String>) -> Applied {
        Applied {
            changed: true,
            summary: summary.into(),
            ..Applied::default()
        }
    }
}

/// Every action name, as `Action::name` gives it.
pub const ACTION_NAMES: &[&str] = &[
    "RevokeIngress",
    "AuthorizeIngress",
    "EnableGuardDuty",
    "DisableGuardDuty",
    "DeleteGuardDutyDetector",
    "SetPasswordPolicy",
    "DeletePasswordPolicy",
    "BlockS3PublicAccess",
    "DeleteS3PublicAccessBlock",
    "EnableEbsEncryptionByDefault",
    "DisableEbsEncryptionByDefault",
    "EnableKmsKeyRotation",
    "DisableKmsKeyRotation",
];

/// Actions that exist only to undo another; never accepted as plan actions.
pub const INVERSE_ONLY: &[&str] = &[
    "AuthorizeIngress",
    "DisableGuardDuty",
    "DeleteGuardDutyDetector",
    "DeletePasswordPolicy",
    "DeleteS3PublicAccessBlock",
    "DisableEbsEncryptionByDefault",
    "DisableKmsKeyRotation",
];

fn drift_error(what: &str, drift: &str) -> CloudError {
    CloudError::InvalidInput(format!(
        "{what} refused: the live state drifted from the plan: {drift}"
    ))
}

/// Same traffic (protocol, ports, CIDR), whatever the rule id and description.
fn same_permission(a: &IngressRule, b: &IngressRule) -> bool {
    a.protocol.eq_ignore_ascii_case(&b.protocol)
        && a.from_port == b.from_port
        && a.to_port == b.to_port
        && a.cidr_ipv4 == b.cidr_ipv4
        && a.cidr_ipv6 == b.cidr_ipv6
}

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_else(|e| Value::String(format!("(unserialisable: {e})")))
}

/// A missing public access block is the same as one with every setting off.
fn pab_or_default(p: Option<PublicAccessBlock>) -> PublicAccessBlock {
    p.unwrap_or_default()
}

impl Action {
    /// The variant name, e.g. `RevokeIngress`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::RevokeIngress { .. } => "RevokeIngress",
            Action::AuthorizeIngress { .. } => "AuthorizeIngress",
            Action::EnableGuardDuty { .. } => "EnableGuardDuty",
            Action::DisableGuardDuty { .. } => "DisableGuardDuty",
            Action::DeleteGuardDutyDetector { .. } => "DeleteGuardDutyDetector",
            Action::SetPasswordPolicy { .. } => "SetPasswordPolicy",
            Action::DeletePasswordPolicy => "DeletePasswordPolicy",
            Action::BlockS3PublicAccess { .. } => "BlockS3PublicAccess",
            Action::DeleteS3PublicAccessBlock => "DeleteS3PublicAccessBlock",
            Action::EnableEbsEncryptionByDefault => "EnableEbsEncryptionByDefault",
            Action::DisableEbsEncryptionByDefault => "DisableEbsEncryptionByDefault",
            Action::EnableKmsKeyRotation { .. } => "EnableKmsKeyRotation",
            Action::DisableKmsKeyRotation { .. } => "DisableKmsKeyRotation",
        }
    }

    /// Whether this action only exists as the inverse of another.
    pub fn is_inverse_only(&self) -> bool {
        INVERSE_ONLY.contains(&self.name())
    }

    /// Reads the live state: what is there, what apply will make, and any drift
    /// from the state the plan was made from.
    pub async fn precheck(&self, cloud: &dyn Cloud, at: &Target) -> Result<Precheck, CloudError> {
        match self {
            Action::RevokeIngress { group_id, rules } => {
                let g = cloud.security_group(at, group_id).await?;
                let mut gone = Vec::new();
                let mut changed = Vec::new();
                for planned in rules {
                    match g.ingress.iter().find(|r| r.rule_id == planned.rule_id) {
                        None => gone.push(planned),
                        Some(live) if live != planned => changed.push((planned, live)),
                        Some(_) => {}
                    }
                }
                let remaining: Vec<&IngressRule> = g
                    .ingress
                    .iter()
                    .filter(|r| !rules.iter().any(|p| p.rule_id == r.rule_id))
                    .collect();
                let already_done = gone.len() == rules.len();
                let mut drift = Vec::new();
                if !already_done {
                    drift.extend(gone.iter().map(|r| {
                        format!(
                            "rule {} ({} from {}) is gone",
                            r.rule_id,
                            r.ports(),
                            r.source()
                        )
                    }));
                }
                drift.extend(changed.iter().map(|(p, l)| {
                    format!(
                        "rule {} changed: planned {} from {}, now {} from {}",
                        p.rule_id,
                        p.ports(),
                        p.source(),
                        l.ports(),
                        l.source()
                    )
                }));
                Ok(Precheck {
                    current: json!({"group_id": g.group_id, "ingress": g.ingress,
                        "network_interfaces": g.network_interfaces}),
                    expected: json!({"group_id": g.group_id, "ingress": remaining}),
                    already_done: already_done && changed.is_empty(),
                    drift: (!drift.is_empty()).then(|| drift.join("; ")),
                })
            }
            Action::AuthorizeIngress { group_id, rules } => {
                let g = cloud.security_group(at, group_id).await?;
                let missing: Vec<&IngressRule> = rules
                    .iter()
                    .filter(|p| !g.ingress.iter().any(|r| same_permission(r, p)))
                    .collect();
                let mut expected = g.ingress.clone();
                expected.extend(missing.iter().map(|r| (*r).clone()));
                Ok(Precheck {
                    current: json!({"group_id": g.group_id, "ingress": g.ingress}),
                    expected: json!({"group_id": g.group_id, "ingress": expected}),
                    already_done: missing.is_empty(),
                    drift: None,
                })
            }
            Action::EnableGuardDuty { existing_detector } => {
                let live = cloud.guardduty_detector(at).await?;
                let enabled = live
                    .as_ref()
                    .is_some_and(|d| d.status == DetectorStatus::Enabled);
                let drift = match (existing_detector, &live) {
                    (_, Some(_)) if enabled => None,
                    (None, Some(d)) => Some(format!(
                        "a disabled detector {} now exists in {}; the plan was to create one",
                        d.detector_id, at.region
                    )),
                    (Some(x), None) => Some(format!("detector {x} no longer exists")),
                    (Some(x), Some(d)) if *x != d.detector_id => Some(format!(
                        "the region's detector is now {}, not {x}",
                        d.detector_id
                    )),
                    _ => None,
                };
                let id = live
                    .as_ref()
                    .map(|d| d.detector_id.clone())
                    .or_else(|| existing_detector.clone());
                Ok(Precheck {
                    current: to_json(&live),
                    expected: json!({"detector_id": id.unwrap_or_else(|| "(new)".to_string()),
                        "status": "ENABLED"}),
                    already_done: enabled,
                    drift,
                })
            }
            Action::DisableGuardDuty { detector_id }
            | Action::DeleteGuardDutyDetector { detector_id } => {
                let delete = matches!(self, Action::DeleteGuardDutyDetector { .. });
                let live = cloud.guardduty_detector(at).await?;
                let (already_done, drift) = match &live {
                    None if delete => (true, None),
                    None => (
                        false,
                        Some(format!("detector {detector_id} no longer exists")),
                    ),
                    Some(d) if d.detector_id != *detector_id => (
                        false,
                        Some(format!(
                            "the region's detector is now {}, not {detector_id}",
                            d.detector_id
                        )),
                    ),
                    Some(d) => (!delete && d.status == DetectorStatus::Disabled, None),
                };
                let expected = if delete {
                    Value::Null
                } else {
                    json!({"detector_id": detector_id, "status": "DISABLED"})
                };
                Ok(Precheck {
                    current: to_json(&live),
                    expected,
                    already_done,
                    drift,
                })
            }
            Action::SetPasswordPolicy { policy, previous } => {
                let live = cloud.password_policy(at).await?;
                let already_done = live.as_ref() == Some(policy);
                let drift = (!already_done && live != *previous).then(|| {
                    format!(
                        "the password policy changed since the plan was made (planned from {}, now {})",
                        policy_summary(previous.as_ref()),
                        policy_summary(live.as_ref())
                    )
                });
                Ok(Precheck {
                    current: to_json(&live),
                    expected: to_json(policy),
                    already_done,
                    drift,
                })
            }
            Action::DeletePasswordPolicy => {
                let live = cloud.password_policy(at).await?;
                Ok(Precheck {
                    already_done: live.is_none(),
                    current: to_json(&live),
                    expected: Value::Null,
                    drift: None,
                })
            }
            Action::BlockS3PublicAccess { block, previous } => {
                let live = cloud.public_access_block(at).await?;
                let already_done = pab_or_default(live) == *block;
                let drift = (!already_done && pab_or_default(live) != pab_or_default(*previous))
                    .then(|| {
                        format!(
                            "the account's S3 Block Public Access settings changed since the plan was made (planned from {}, now {})",
                            to_json(&pab_or_default(*previous)),
                            to_json(&pab_or_default(live))
                        )
                    });
                Ok(Precheck {
                    current: to_json(&live),
                    expected: to_json(block),
                    already_done,
                    drift,
                })
            }
            Action::DeleteS3PublicAccessBlock => {
                let live = cloud.public_access_block(at).await?;
                Ok(Precheck {
                    already_done: pab_or_default(live) == PublicAccessBlock::default(),
                    current: to_json(&live),
                    expected: Value::Null,
                    drift: None,
                })
            }
            Action::EnableEbsEncryptionByDefault | Action::DisableEbsEncryptionByDefault => {
                let want = matches!(self, Action::EnableEbsEncryptionByDefault);
                let live = cloud.ebs_encryption_by_default(at).await?;
                Ok(Precheck {
                    current: json!({"ebs_encryption_by_default": live}),
                    expected: json!({"ebs_encryption_by_default": want}),
                    already_done: live == want,
                    drift: None,
                })
            }
            Action::EnableKmsKeyRotation { key_id } | Action::DisableKmsKeyRotation { key_id } => {
                let want = matches!(self, Action::EnableKmsKeyRotation { .. });
                let key = cloud.kms_key(at, key_id).await?;
                let drift = (!key.rotation_applies()).then(|| {
                    format!(
                        "key {} can no longer be rotated (state {}, spec {}, manager {:?})",
                        key.key_id, key.key_state, key.key_spec, key.key_manager
                    )
                });
                Ok(Precheck {
                    current: json!({"key_id": key.key_id, "key_state": key.key_state,
                        "rotation_enabled": key.rotation_enabled}),
                    expected: json!({"key_id": key.key_id, "rotation_enabled": want}),
                    already_done: key.rotation_enabled == want,
                    drift,
                })
            }
        }
    }

    /// Applies the action. Re-reads the state first: a no-op when the intended state
    /// already holds, an error (nothing changed) when the state drifted from the plan.
    pub async fn apply(&self, cloud: &dyn Cloud, at: &Target) -> Result<Applied, CloudError> {
        let pre = self.precheck(cloud, at).await?;
        if let Some(d) = &pre.drift {
            return Err(drift_error(self.name(), d));
        }
        if pre.already_done {
            return Ok(Applied::unchanged(
                "already in the intended state; nothing done",
            ));
        }
        match self {
            Action::RevokeIngress { group_id, rules } => {
                let g = cloud.security_group(at, group_id).await?;
                let present: Vec<IngressRule> = rules
                    .iter()
                    .filter(|p| g.ingress.iter().any(|r| r == *p))
                    .cloned()
                    .collect();
                let ids: Vec<String> = present.iter().map(|r| r.rule_id.clone()).collect();
                cloud.revoke_ingress(at, group_id, &ids).await?;
                Ok(Applied {
                    rules: present,
                    ..Applied::changed(format!(
                        "revoked {} rule(s) from {group_id}: {}",
                        ids.len(),
                        ids.join(", ")
                    ))
                })
            }
            Action::AuthorizeIngress { group_id, rules } => {
                let g = cloud.security_group(at, group_id).await?;
                let missing: Vec<IngressRule> = rules
                    .iter()
                    .filter(|p| !g.ingress.iter().any(|r| same_permission(r, p)))
                    .cloned()
                    .collect();
                let created = cloud.authorize_ingress(at, group_id, &missing).await?;
                Ok(Applied {
                    summary: format!(
                        "authorized {} rule(s) on {group_id}: {}",
                        created.len(),
                        created
                            .iter()
                            .map(|r| r.rule_id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    changed: true,
                    rules: created,
                    ..Applied::default()
                })
            }
            Action::EnableGuardDuty { .. } => match cloud.guardduty_detector(at).await? {
                None => {
                    let id = cloud.create_detector(at).await?;
                    Ok(Applied {
                        created_detector: Some(id.clone()),
                        ..Applied::changed(format!("created detector {id}"))
                    })
                }
                Some(d) => {
                    cloud.set_detector_enabled(at, &d.detector_id, true).await?;
                    Ok(Applied {
                        enabled_detector: Some(d.detector_id.clone()),
                        ..Applied::changed(format!("enabled detector {}", d.detector_id))
                    })
                }
            },
            Action::DisableGuardDuty { detector_id } => {
                cloud.set_detector_enabled(at, detector_id, false).await?;
                Ok(Applied::changed(format!("disabled detector {detector_id}")))
            }
            Action::DeleteGuardDutyDetector { detector_id } => {
                cloud.delete_detector(at, detector_id).await?;
                Ok(Applied::changed(format!("deleted detector {detector_id}")))
            }
            Action::SetPasswordPolicy { policy, .. } => {
                cloud.set_password_policy(at, policy).await?;
                Ok(Applied::changed(format!(
                    "set the password policy to {}",
                    policy_summary(Some(policy))
                )))
            }
            Action::DeletePasswordPolicy => {
                cloud.delete_password_policy(at).await?;
                Ok(Applied::changed("deleted the account password policy"))
            }
            Action::BlockS3PublicAccess { block, .. } => {
                cloud.set_public_access_block(at, block).await?;
                Ok(Applied::changed(format!(
                    "set account-level S3 Block Public Access to {}",
                    to_json(block)
                )))
            }
            Action::DeleteS3PublicAccessBlock => {
                cloud.delete_public_access_block(at).await?;
                Ok(Applied::changed(
                    "deleted the account-level S3 Block Public Access configuration",
                ))
            }
            Action::EnableEbsEncryptionByDefault => {
                cloud.set_ebs_encryption_by_default(at, true).await?;
                Ok(Applied::changed("enabled EBS encryption by default"))
            }
            Action::DisableEbsEncryptionByDefault => {
                cloud.set_ebs_encryption_by_default(at, false).await?;
                Ok(Applied::changed("disabled EBS encryption by default"))
            }
            Action::EnableKmsKeyRotation { key_id } => {
                cloud.set_key_rotation(at, key_id, true).await?;
                Ok(Applied::changed(format!(
                    "enabled rotation of key {key_id}"
                )))
            }
            Action::DisableKmsKeyRotation { key_id } => {
                cloud.set_key_rotation(at, key_id, false).await?;
                Ok(Applied::changed(format!(
                    "disabled rotation of key {key_id}"
                )))
            }
        }
    }

    /// Re-reads the live state and checks that the intended state holds.
    pub async fn verify(&self, cloud: &dyn Cloud, at: &Target) -> Result<bool, CloudError> {
        Ok(match self {
            Action::RevokeIngress { group_id, rules } => {
                let g = cloud.security_group(at, group_id).await?;
                !rules.iter().any(|p| {
                    g.ingress
                        .iter()
                        .any(|r| r.rule_id == p.rule_id || same_permission(r, p))
                })
            }
            Action::AuthorizeIngress { group_id, rules } => {
                let g = cloud.security_group(at, group_id).await?;
                rules
                    .iter()
                    .all(|p| g.ingress.iter().any(|r| same_permission(r, p)))
            }
            Action::EnableGuardDuty { .. } => cloud
                .guardduty_detector(at)
                .await?
                .is_some_and(|d| d.status == DetectorStatus::Enabled),
            Action::DisableGuardDuty { detector_id } => {
                cloud.guardduty_detector(at).await?.is_some_and(|d| {
                    d.detector_id == *detector_id && d.status == DetectorStatus::Disabled
                })
            }
            Action::DeleteGuardDutyDetector { detector_id } => cloud
                .guardduty_detector(at)
                .await?
                .is_none_or(|d| d.detector_id != *detector_id),
            Action::SetPasswordPolicy { policy, .. } => {
                cloud.password_policy(at).await?.as_ref() == Some(policy)
            }
            Action::DeletePasswordPolicy => cloud.password_policy(at).await?.is_none(),
            Action::BlockS3PublicAccess { block, .. } => {
                pab_or_default(cloud.public_access_block(at).await?) == *block
            }
            Action::DeleteS3PublicAccessBlock => {
                pab_or_default(cloud.public_access_block(at).await?) == PublicAccessBlock::default()
            }
            Action::EnableEbsEncryptionByDefault => cloud.ebs_encryption_by_default(at).await?,
            Action::DisableEbsEncryptionByDefault => !cloud.ebs_encryption_by_default(at).await?,
            Action::EnableKmsKeyRotation { key_id } => {
                cloud.kms_key(at, key_id).await?.rotation_enabled
            }
            Action::DisableKmsKeyRotation { key_id } => {
                !cloud.kms_key(at, key_id).await?.rotation_enabled
            }
        })
    }

    /// The action that undoes this one. With `applied` (after apply) the inverse is
    /// exact, using ids only known then, and None when apply changed nothing; without
    /// it, the inverse computable from the plan alone (None if that needs apply's ids).
    pub fn inverse(&self, applied: Option<&Applied>) -> Option<Action> {
        if applied.is_some_and(|a| !a.changed) {
            return None;
        }
        match self {
            Action::RevokeIngress { group_id, rules } => {
                let rules = match applied {
                    Some(a) => a.rules.clone(),
                    None => rules.clone(),
                };
                (!rules.is_empty()).then(|| Action::AuthorizeIngress {
                    group_id: group_id.clone(),
                    rules,
                })
            }
            Action::AuthorizeIngress { group_id, .. } => {
                let created = applied.map(|a| a.rules.clone()).unwrap_or_default();
                (!created.is_empty()).then(|| Action::RevokeIngress {
                    group_id: group_id.clone(),
                    rules: created,
                })
            }
            Action::EnableGuardDuty { existing_detector } => match applied {
                Some(a) => {
                    if let Some(id) = &a.created_detector {
                        Some(Action::DeleteGuardDutyDetector {
                            detector_id: id.clone(),
                        })
                    } else {
                        a.enabled_detector
                            .as_ref()
                            .map(|id| Action::DisableGuardDuty {
                                detector_id: id.clone(),
                            })
                    }
                }
                None => existing_detector
                    .as_ref()
                    .map(|id| Action::DisableGuardDuty {
                        detector_id: id.clone(),
                    }),
            },
            Action::DisableGuardDuty { detector_id } => Some(Action::EnableGuardDuty {
                existing_detector: Some(detector_id.clone()),
            }),
            Action::DeleteGuardDutyDetector { .. } => None,
            Action::SetPasswordPolicy { policy, previous } => Some(match previous {
                Some(p) => Action::SetPasswordPolicy {
                    policy: p.clone(),
                    previous: Some(policy.clone()),
                },
                None => Action::DeletePasswordPolicy,
            }),
            Action::DeletePasswordPolicy => None,
            Action::BlockS3PublicAccess { block, previous } => Some(match previous {
                Some(p) if *p != PublicAccessBlock::default() => Action::BlockS3PublicAccess {
                    block: *p,
                    previous: Some(*block),
                },
                _ => Action::DeleteS3PublicAccessBlock,
            }),
            Action::DeleteS3PublicAccessBlock => None,
            Action::EnableEbsEncryptionByDefault => Some(Action::DisableEbsEncryptionByDefault),
            Action::DisableEbsEncryptionByDefault => Some(Action::EnableEbsEncryptionByDefault),
            Action::EnableKmsKeyRotation { key_id } => Some(Action::DisableKmsKeyRotation {
                key_id: key_id.clone(),
            }),
            Action::DisableKmsKeyRotation { key_id } => Some(Action::EnableKmsKeyRotation {
                key_id: key_id.clone(),
            }),
        }
    }

    /// The IAM actions precheck, apply and verify need.
    pub fn permissions(&self) -> Vec<&'static str> {
        match self {
            Action::RevokeIngress { .. } => vec![
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSecurityGroupRules",
                "ec2:DescribeNetworkInterfaces",
                "ec2:RevokeSecurityGroupIngress",
            ],
            Action::AuthorizeIngress { .. } => vec![
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSecurityGroupRules",
                "ec2:DescribeNetworkInterfaces",
                "ec2:AuthorizeSecurityGroupIngress",
            ],
            Action::EnableGuardDuty { existing_detector } => {
                let mut p = vec!["guardduty:ListDetectors", "guardduty:GetDetector"];
                if existing_detector.is_none() {
                    // The first detector creates GuardDuty's service-linked role.
                    p.extend(["guardduty:CreateDetector", "iam:CreateServiceLinkedRole"]);
                }
                p.push("guardduty:UpdateDetector");
                p
            }
            Action::DisableGuardDuty { .. } => vec![
                "guardduty:ListDetectors",
                "guardduty:GetDetector",
                "guardduty:UpdateDetector",
            ],
            Action::DeleteGuardDutyDetector { .. } => vec![
                "guardduty:ListDetectors",
                "guardduty:GetDetector",
                "guardduty:DeleteDetector",
            ],
            Action::SetPasswordPolicy { .. } => vec![
                "iam:GetAccountPasswordPolicy",
                "iam:UpdateAccountPasswordPolicy",
            ],
            Action::DeletePasswordPolicy => vec![
                "iam:GetAccountPasswordPolicy",
                "iam:DeleteAccountPasswordPolicy",
            ],
            // DeletePublicAccessBlock on the account is authorised by s3:PutAccountPublicAccessBlock.
            Action::BlockS3PublicAccess { .. } | Action::DeleteS3PublicAccessBlock => vec![
                "s3:GetAccountPublicAccessBlock",
                "s3:PutAccountPublicAccessBlock",
            ],
            Action::EnableEbsEncryptionByDefault => vec![
                "ec2:GetEbsEncryptionByDefault",
                "ec2:EnableEbsEncryptionByDefault",
            ],
            Action::DisableEbsEncryptionByDefault => vec![
                "ec2:GetEbsEncryptionByDefault",
                "ec2:DisableEbsEncryptionByDefault",
            ],
            Action::EnableKmsKeyRotation { .. } => vec![
                "kms:DescribeKey",
                "kms:GetKeyRotationStatus",
                "kms:EnableKeyRotation",
            ],
            Action::DisableKmsKeyRotation { .. } => vec![
                "kms:DescribeKey",
                "kms:GetKeyRotationStatus",
                "kms:DisableKeyRotation",
            ],
        }
    }

    /// The equivalent AWS CLI command(s), one per line, values shell-quoted.
    pub fn cli(&self, at: &Target) -> String {
        let r = shell_quote(&at.region);
        match self {
            Action::RevokeIngress { group_id, rules } => format!(
                "aws ec2 revoke-security-group-ingress --region {r} --group-id {} --security-group-rule-ids {}",
                shell_quote(group_id),
                rules
                    .iter()
                    .map(|x| shell_quote(&x.rule_id))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Action::AuthorizeIngress { group_id, rules } => rules
                .iter()
                .map(|x| {
                    format!(
                        "aws ec2 authorize-security-group-ingress --region {r} --group-id {} --ip-permissions {}",
                        shell_quote(group_id),
                        shell_quote(&canonical_json(&Value::Array(vec![ip_permission(x)])))
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Action::EnableGuardDuty {
                existing_detector: None,
            } => format!("aws guardduty create-detector --region {r} --enable"),
            Action::EnableGuardDuty {
                existing_detector: Some(id),
            } => format!(
                "aws guardduty update-detector --region {r} --detector-id {} --enable",
                shell_quote(id)
            ),
            Action::DisableGuardDuty { detector_id } => format!(
                "aws guardduty update-detector --region {r} --detector-id {} --no-enable",
                shell_quote(detector_id)
            ),
            Action::DeleteGuardDutyDetector { detector_id } => format!(
                "aws guardduty delete-detector --region {r} --detector-id {}",
                shell_quote(detector_id)
            ),
            Action::SetPasswordPolicy { policy, .. } => {
                let flag = |on: bool, name: &str| {
                    if on {
                        format!(" --{name}")
                    } else {
                        format!(" --no-{name}")
                    }
                };
                let mut s = format!(
                    "aws iam update-account-password-policy --region {r} --minimum-password-length {}",
                    policy.minimum_password_length
                );
                s += &flag(policy.require_symbols, "require-symbols");
                s += &flag(policy.require_numbers, "require-numbers");
                s += &flag(policy.require_uppercase_characters, "require-uppercase-characters");
                s += &flag(policy.require_lowercase_characters, "require-lowercase-characters");
                s += &flag(policy.allow_users_to_change_password, "allow-users-to-change-password");
                if let Some(age) = policy.max_password_age {
                    let _ = write!(s, " --max-password-age {age}");
                }
                if let Some(n) = policy.password_reuse_prevention {
                    let _ = write!(s, " --password-reuse-prevention {n}");
                }
                s += &flag(policy.hard_expiry, "hard-expiry");
                s
            }
            Action::DeletePasswordPolicy => {
                format!("aws iam delete-account-password-policy --region {r}")
            }
            Action::BlockS3PublicAccess { block, .. } => format!(
                "aws s3control put-public-access-block --region {r} --account-id {} --public-access-block-configuration {}",
                shell_quote(at.account.as_str()),
                shell_quote(&format!(
                    "BlockPublicAcls={},IgnorePublicAcls={},BlockPublicPolicy={},RestrictPublicBuckets={}",
                    block.block_public_acls,
                    block.ignore_public_acls,
                    block.block_public_policy,
                    block.restrict_public_buckets
                ))
            ),
            Action::DeleteS3PublicAccessBlock => format!(
                "aws s3control delete-public-access-block --region {r} --account-id {}",
                shell_quote(at.account.as_str())
            ),
            Action::EnableEbsEncryptionByDefault => {
                format!("aws ec2 enable-ebs-encryption-by-default --region {r}")
            }
            Action::DisableEbsEncryptionByDefault => {
                format!("aws ec2 disable-ebs-encryption-by-default --region {r}")
            }
            Action::EnableKmsKeyRotation { key_id } => format!(
                "aws kms enable-key-rotation --region {r} --key-id {}",
                shell_quote(key_id)
            ),
            Action::DisableKmsKeyRotation { key_id } => format!(
                "aws kms disable-key-rotation --region {r} --key-id {}",
                shell_quote(key_id)
            ),
        }
    }

    /// Equivalent, self-contained boto3 code (valid Python 3).
    pub fn python(&self, at: &Target) -> String {
        let client = |service: &str| {
            format!(
                "import boto3\n\n{service} = boto3.client({}, region_name={})\n",
                py_str(service),
                py_str(&at.region)
            )
        };
        let call = |service: &str, method: &str, args: &[(&str, String)]| {
            let mut s = client(service);
            if args.is_empty() {
                let _ = writeln!(s, "{service}.{method}()");
            } else {
                let _ = writeln!(s, "{service}.{method}(");
                for (k, v) in args {
                    let _ = writeln!(s, "    {k}={v},");
                }
                s.push_str(")\n");
            }
            s
        };
        match self {
            Action::RevokeIngress { group_id, rules } => call(
                "ec2",
                "revoke_security_group_ingress",
                &[
                    ("GroupId", py_str(group_id)),
                    (
                        "SecurityGroupRuleIds",
                        py_value(&json!(rules.iter().map(|r| &r.rule_id).collect::<Vec<_>>())),
                    ),
                ],
            ),
            Action::AuthorizeIngress { group_id, rules } => call(
                "ec2",
                "authorize_security_group_ingress",
                &[
                    ("GroupId", py_str(group_id)),
                    (
                        "IpPermissions",
                        py_value(&Value::Array(rules.iter().map(ip_permission).collect())),
                    ),
                ],
            ),
            Action::EnableGuardDuty {
                existing_detector: None,
            } => call("guardduty", "create_detector", &[("Enable", "True".into())]),
            Action::EnableGuardDuty {
                existing_detector: Some(id),
            } => call(
                "guardduty",
                "update_detector",
                &[("DetectorId", py_str(id)), ("Enable", "True".into())],
            ),
            Action::DisableGuardDuty { detector_id } => call(
                "guardduty",
                "update_detector",
                &[
                    ("DetectorId", py_str(detector_id)),
                    ("Enable", "False".into()),
                ],
            ),
            Action::DeleteGuardDutyDetector { detector_id } => call(
                "guardduty",
                "delete_detector",
                &[("DetectorId", py_str(detector_id))],
            ),
            Action::SetPasswordPolicy { policy, .. } => {
                let b = |v: bool| py_value(&Value::Bool(v));
                let mut args = vec![
                    (
                        "MinimumPasswordLength",
                        policy.minimum_password_length.to_string(),
                    ),
                    ("RequireSymbols", b(policy.require_symbols)),
                    ("RequireNumbers", b(policy.require_numbers)),
                    (
                        "RequireUppercaseCharacters",
                        b(policy.require_uppercase_characters),
                    ),
                    (
                        "RequireLowercaseCharacters",
                        b(policy.require_lowercase_characters),
                    ),
                    (
                        "AllowUsersToChangePassword",
                        b(policy.allow_users_to_change_password),
                    ),
                ];
                if let Some(age) = policy.max_password_age {
                    args.push(("MaxPasswordAge", age.to_string()));
                }
                if let Some(n) = policy.password_reuse_prevention {
                    args.push(("PasswordReusePrevention", n.to_string()));
                }
                args.push(("HardExpiry", b(policy.hard_expiry)));
                call("iam", "update_account_password_policy", &args)
            }
            Action::DeletePasswordPolicy => call("iam", "delete_account_password_policy", &[]),
            Action::BlockS3PublicAccess { block, .. } => call(
                "s3control",
                "put_public_access_block",
                &[
                    ("AccountId", py_str(at.account.as_str())),
                    (
                        "PublicAccessBlockConfiguration",
                        py_value(&json!({
                            "BlockPublicAcls": block.block_public_acls,
                            "IgnorePublicAcls": block.ignore_public_acls,
                            "BlockPublicPolicy": block.block_public_policy,
                            "RestrictPublicBuckets": block.restrict_public_buckets,
                        })),
                    ),
                ],
            ),
            Action::DeleteS3PublicAccessBlock => call(
                "s3control",
                "delete_public_access_block",
                &[("AccountId", py_str(at.account.as_str()))],
            ),
            Action::EnableEbsEncryptionByDefault => {
                call("ec2", "enable_ebs_encryption_by_default", &[])
            }
            Action::DisableEbsEncryptionByDefault => {
                call("ec2", "disable_ebs_encryption_by_default", &[])
            }
            Action::EnableKmsKeyRotation { key_id } => {
                call("kms", "enable_key_rotation", &[("KeyId", py_str(key_id))])
            }
            Action::DisableKmsKeyRotation { key_id } => {
                call("kms", "disable_key_rotation", &[("KeyId", py_str(key_id))])
            }
        }
    }

    /// One line saying what the action does.
    pub fn describe(&self, lang: Lang) -> String {
        let ja = lang == Lang::Ja;
        match self {
            Action::RevokeIngress { group_id, rules } => {
                let list = rules_text(rules, lang);
                if ja {
                    format!(
                        "セキュリティグループ {group_id} から、インターネット ({}) に開いている {} 件のインバウンドルール ({list}) を削除します。",
                        sources(rules),
                        rules.len()
                    )
                } else {
                    format!(
                        "Revoke {} ingress rule{} open to the internet ({list}) on {group_id}",
                        rules.len(),
                        plural(rules.len())
                    )
                }
            }
            Action::AuthorizeIngress { group_id, rules } => {
                let list = rules_text(rules, lang);
                if ja {
                    format!(
                        "セキュリティグループ {group_id} に {} 件のインバウンドルール ({list}) を再び追加します。",
                        rules.len()
                    )
                } else {
                    format!(
                        "Re-authorize {} ingress rule{} ({list}) on {group_id}",
                        rules.len(),
                        plural(rules.len())
                    )
                }
            }
            Action::EnableGuardDuty {
                existing_detector: None,
            } => if ja {
                "このリージョンに GuardDuty のディテクターを作成し、有効にします。"
            } else {
                "Create an enabled GuardDuty detector in this region"
            }
            .to_string(),
            Action::EnableGuardDuty {
                existing_detector: Some(id),
            } => {
                if ja {
                    format!("無効になっている既存の GuardDuty ディテクター {id} を有効にします。")
                } else {
                    format!("Enable the existing, disabled GuardDuty detector {id}")
                }
            }
            Action::DisableGuardDuty { detector_id } => {
                if ja {
                    format!("GuardDuty ディテクター {detector_id} を無効にします。")
                } else {
                    format!("Disable GuardDuty detector {detector_id}")
                }
            }
            Action::DeleteGuardDutyDetector { detector_id } => {
                if ja {
                    format!("GuardDuty ディテクター {detector_id} を削除します。")
                } else {
                    format!("Delete GuardDuty detector {detector_id}")
                }
            }
            Action::SetPasswordPolicy { policy, previous } => {
                let changes = policy_changes(previous.as_ref(), policy, lang);
                match (ja, previous.is_some()) {
                    (true, true) => format!(
                        "IAM アカウントのパスワードポリシーを更新します（{changes}）。ほかの設定は変更しません。"
                    ),
                    (true, false) => {
                        format!("IAM アカウントのパスワードポリシーを作成します（{changes}）。")
                    }
                    (false, true) => format!(
                        "Update the IAM account password policy ({changes}); every other setting is kept"
                    ),
                    (false, false) => {
                        format!("Create the IAM account password policy ({changes})")
                    }
                }
            }
            Action::DeletePasswordPolicy => if ja {
                "IAM アカウントのパスワードポリシーを削除します（AWS の既定に戻ります）。"
            } else {
                "Delete the IAM account password policy (back to the AWS default)"
            }
            .to_string(),
            Action::BlockS3PublicAccess { block, .. } => {
                let flags = pab_text(block, lang);
                if ja {
                    format!(
                        "アカウントレベルの S3 ブロックパブリックアクセスを設定します（{flags}）。"
                    )
                } else {
                    format!("Set account-level S3 Block Public Access ({flags})")
                }
            }
            Action::DeleteS3PublicAccessBlock => if ja {
                "アカウントレベルの S3 ブロックパブリックアクセスの設定を削除します。"
            } else {
                "Delete the account-level S3 Block Public Access configuration"
            }
            .to_string(),
            Action::EnableEbsEncryptionByDefault => if ja {
                "このリージョンで EBS ボリュームのデフォルト暗号化を有効にします。"
            } else {
                "Turn on EBS encryption by default in this region"
            }
            .to_string(),
            Action::DisableEbsEncryptionByDefault => if ja {
                "このリージョンで EBS ボリュームのデフォルト暗号化を無効にします。"
            } else {
                "Turn off EBS encryption by default in this region"
            }
            .to_string(),
            Action::EnableKmsKeyRotation { key_id } => {
                if ja {
                    format!("KMS キー {key_id} の自動ローテーションを有効にします。")
                } else {
                    format!("Turn on automatic rotation of KMS key {key_id}")
                }
            }
            Action::DisableKmsKeyRotation { key_id } => {
                if ja {
                    format!("KMS キー {key_id} の自動ローテーションを無効にします。")
                } else {
                    format!("Turn off automatic rotation of KMS key {key_id}")
                }
            }
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// "tcp 22" / "all traffic" / "全トラフィック".
fn ports_text(r: &IngressRule, lang: Lang) -> String {
    if r.is_all_traffic() && lang == Lang::Ja {
        "全トラフィック".to_string()
    } else {
        r.ports()
    }
}

fn rules_text(rules: &[IngressRule], lang: Lang) -> String {
    rules
        .iter()
        .map(|r| match lang {
            Lang::En => format!("{} from {}", ports_text(r, lang), r.source()),
            Lang::Ja => format!("{} からの {}", r.source(), ports_text(r, lang)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn sources(rules: &[IngressRule]) -> String {
    let set: BTreeSet<&str> = rules.iter().map(IngressRule::source).collect();
    set.into_iter().collect::<Vec<_>>().join(", ")
}

fn pab_text(b: &PublicAccessBlock, lang: Lang) -> String {
    let v = |on: bool| match (lang, on) {
        (Lang::En, true) => "on",
        (Lang::En, false) => "off",
        (Lang::Ja, true) => "有効",
        (Lang::Ja, false) => "無効",
    };
    format!(
        "BlockPublicAcls: {}, IgnorePublicAcls: {}, BlockPublicPolicy: {}, RestrictPublicBuckets: {}",
        v(b.block_public_acls),
        v(b.ignore_public_acls),
        v(b.block_public_policy),
        v(b.restrict_public_buckets)
    )
}

/// The fields of a password policy as (English name, Japanese name, value text en, ja).
fn policy_fields(p: &PasswordPolicy) -> Vec<(&'static str, &'static str, String, String)> {
    let yes_no = |b: bool| {
        (
            if b { "required" } else { "not required" }.to_string(),
            if b { "必須" } else { "不要" }.to_string(),
        )
    };
    let on_off = |b: bool| {
        (
            if b { "on" } else { "off" }.to_string(),
            if b { "有効" } else { "無効" }.to_string(),
        )
    };
    let mut out = Vec::new();
    let mut push = |en: &'static str, ja: &'static str, (ve, vj): (String, String)| {
        out.push((en, ja, ve, vj));
    };
    push(
        "minimum length",
        "最小文字数",
        (
            p.minimum_password_length.to_string(),
            format!("{} 文字", p.minimum_password_length),
        ),
    );
    push("symbols", "記号", yes_no(p.require_symbols));
    push("numbers", "数字", yes_no(p.require_numbers));
    push(
        "uppercase",
        "大文字",
        yes_no(p.require_uppercase_characters),
    );
    push(
        "lowercase",
        "小文字",
        yes_no(p.require_lowercase_characters),
    );
    push(
        "users may change their password",
        "ユーザーによるパスワード変更",
        on_off(p.allow_users_to_change_password),
    );
    push(
        "maximum age",
        "有効期間",
        match p.max_password_age {
            Some(d) => (format!("{d} days"), format!("{d} 日")),
            None => ("none".to_string(), "無期限".to_string()),
        },
    );
    push(
        "reuse prevention",
        "再利用禁止",
        match p.password_reuse_prevention {
            Some(n) => (format!("last {n}"), format!("直近 {n} 個")),
            None => ("none".to_string(), "なし".to_string()),
        },
    );
    push(
        "hard expiry",
        "期限切れ後の変更に管理者が必要",
        on_off(p.hard_expiry),
    );
    out
}

/// "minimum length 8 → 14, symbols not required → required" (or every field when new).
pub(crate) fn policy_changes(
    prev: Option<&PasswordPolicy>,
    new: &PasswordPolicy,
    lang: Lang,
) -> String {
    let new_fields = policy_fields(new);
    let parts: Vec<String> = match prev {
        Some(p) => policy_fields(p)
            .into_iter()
            .zip(new_fields)
            .filter(|(a, b)| a.2 != b.2)
            .map(|(a, b)| match lang {
                Lang::En => format!("{} {} → {}", a.0, a.2, b.2),
                Lang::Ja => format!("{}: {} → {}", a.1, a.3, b.3),
            })
            .collect(),
        None => new_fields
            .into_iter()
            .map(|f| match lang {
                Lang::En => format!("{} {}", f.0, f.2),
                Lang::Ja => format!("{}: {}", f.1, f.3),
            })
            .collect(),
    };
    if parts.is_empty() {
        match lang {
            Lang::En => "no change".to_string(),
            Lang::Ja => "変更なし".to_string(),
        }
    } else {
        parts.join(", ")
    }
}

fn policy_summary(p: Option<&PasswordPolicy>) -> String {
    match p {
        None => "no custom policy".to_string(),
        Some(p) => policy_changes(None, p, Lang::En),
    }
}

/// The EC2 `IpPermissions` entry of one rule.
fn ip_permission(r: &IngressRule) -> Value {
    let mut p = json!({"IpProtocol": r.protocol});
    if !r.is_all_traffic() {
        p["FromPort"] = json!(r.from_port);
        p["ToPort"] = json!(r.to_port);
    }
    let mut range = |list: &str, key: &str, cidr: &str| {
        let mut entry = json!({ key: cidr });
        if let Some(d) = &r.description {
            entry["Description"] = json!(d);
        }
        p[list] = json!([entry]);
    };
    if let Some(c) = &r.cidr_ipv4 {
        range("IpRanges", "CidrIp", c);
    }
    if let Some(c) = &r.cidr_ipv6 {
        range("Ipv6Ranges", "CidrIpv6", c);
    }
    p
}

/// Quotes a word for a POSIX shell: left bare when only safe characters, else
/// single-quoted with embedded quotes spliced as `'"'"'`.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\"'\"'"))
    }
}

/// A Python string literal (JSON string escaping is valid Python).
pub fn py_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// A Python literal for a JSON value.
pub fn py_value(v: &Value) -> String {
    match v {
        Value::Null => "None".to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => py_str(s),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(py_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", py_str(k), py_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

// ---------------------------------------------------------------------------
// Plans

/// Where a plan came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanSource {
    /// The built-in catalog (deterministic, no model).
    Catalog,
    /// A model's forced tool call, validated against the catalog.
    Model { model_id: String },
}

/// An organisation policy value the plan consulted, and whether the plan uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyCitation {
    /// File or URI of the policy document.
    pub source: String,
    pub heading: String,
    pub parameter: String,
    /// The value the policy states.
    pub value: Value,
    /// The plan sets exactly this value.
    #[serde(default = "yes")]
    pub applied: bool,
    /// Why the plan uses another value (e.g. the policy is weaker than the control), for the human.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn yes() -> bool {
    true
}

mod lang_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::settings::Lang;

    pub fn serialize<S: Serializer>(lang: &Lang, s: S) -> Result<S::Ok, S::Error> {
        lang.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Lang, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A typed remediation plan for one finding. Its id is a digest of its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationPlan {
    pub id: PlanId,
    pub findings: Vec<FindingIdentifier>,
    pub control_id: ControlId,
    pub account: AccountId,
    pub region: String,
    pub actions: Vec<Action>,
    pub rationale: String,
    pub policy_citations: Vec<PolicyCitation>,
    /// Inverses computable before apply, last action's first. Inverses that need
    /// ids only known after apply (a created detector, re-authorized rule ids) are
    /// recomputed by the executor with `Action::inverse(Some(&applied))`.
    pub rollback: Vec<Action>,
    /// IAM actions needed, sorted and deduplicated.
    pub permissions: Vec<String>,
    #[serde(with = "lang_serde")]
    pub lang: Lang,
    pub source: PlanSource,
    pub created_at: DateTime<Utc>,
}

/// What [`RemediationPlan::new`] needs; id, rollback and permissions are derived.
#[derive(Debug, Clone)]
pub struct PlanDraft {
    pub findings: Vec<FindingIdentifier>,
    pub control_id: ControlId,
    pub target: Target,
    pub actions: Vec<Action>,
    pub rationale: String,
    pub policy_citations: Vec<PolicyCitation>,
    pub lang: Lang,
    pub source: PlanSource,
}

/// The rollback of a list of actions: pre-apply inverses, in reverse order.
pub fn rollback_of(actions: &[Action]) -> Vec<Action> {
    actions
        .iter()
        .rev()
        .filter_map(|a| a.inverse(None))
        .collect()
}

/// The union of the actions' permissions, sorted and deduplicated.
pub fn permissions_of(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .flat_map(Action::permissions)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(str::to_string)
        .collect()
}

impl RemediationPlan {
    pub fn new(d: PlanDraft) -> RemediationPlan {
        let mut plan = RemediationPlan {
            id: PlanId(String::new()),
            findings: d.findings,
            control_id: d.control_id,
            account: d.target.account,
            region: d.target.region,
            rollback: rollback_of(&d.actions),
            permissions: permissions_of(&d.actions),
            actions: d.actions,
            rationale: d.rationale,
            policy_citations: d.policy_citations,
            lang: d.lang,
            source: d.source,
            created_at: Utc::now(),
        };
        plan.id = plan.digest();
        plan
    }

    /// The canonical JSON the id is computed over: every field but `id` and `created_at`.
    pub fn canonical_content(&self) -> String {
        let mut v = to_json(self);
        if let Value::Object(m) = &mut v {
            m.remove("id");
            m.remove("created_at");
        }
        canonical_json(&v)
    }

    /// The id this plan's content has (equal to `id` unless the plan was altered).
    pub fn digest(&self) -> PlanId {
        PlanId::of_bytes(self.canonical_content().as_bytes())
    }

    pub fn target(&self) -> Target {
        Target {
            account: self.account.clone(),
            region: self.region.clone(),
        }
    }

    /// Every action's CLI, each under a comment saying what it does.
    pub fn cli(&self) -> String {
        let at = self.target();
        let mut s = format!(
            "# {}: {} in account {}, region {}\n# Run with credentials for account {}.\n",
            self.id, self.control_id, self.account, self.region, self.account
        );
        for (i, a) in self.actions.iter().enumerate() {
            let _ = write!(
                s,
                "\n# {}. {}\n{}\n",
                i + 1,
                one_line(&a.describe(self.lang)),
                a.cli(&at)
            );
        }
        s
    }

    /// Every action's boto3 code, each under a comment saying what it does.
    pub fn python(&self) -> String {
        let at = self.target();
        let mut s = format!(
            "# {}: {} in account {}, region {}\n# Run with credentials for account {}.\n",
            self.id, self.control_id, self.account, self.region, self.account
        );
        for (i, a) in self.actions.iter().enumerate() {
            let _ = write!(
                s,
                "\n# {}. {}\n{}",
                i + 1,
                one_line(&a.describe(self.lang)),
                a.python(&at)
            );
        }
        s
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

// ---------------------------------------------------------------------------
// Validation

/// Why a plan was refused. Each message says what was wrong and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanRejection {
    #[error("the plan has no actions: a plan needs at least one catalog action")]
    NoActions,
    #[error("the plan has {count} actions; at most {max} are accepted")]
    TooManyActions { count: usize, max: usize },
    #[error("the plan repeats the action {action}; each action may appear once")]
    DuplicateAction { action: String },
    #[error("the finding has no control id, so no catalog action applies to it")]
    NoControl,
    #[error("control {control} is not covered by the catalog; covered: {covered}")]
    NotCovered { control: String, covered: String },
    #[error("the plan is for control {plan} but the finding is for {finding}")]
    ControlMismatch { plan: String, finding: String },
    #[error("the plan must name exactly the finding it remediates ({expected}), got {got}")]
    FindingMismatch { expected: String, got: String },
    #[error(
        "the plan targets account {plan} but the finding is in account {finding}; only the finding's account is accepted"
    )]
    AccountMismatch { plan: String, finding: String },
    #[error(
        "the plan targets region {plan} but the finding is in region {finding}; only the finding's region is accepted"
    )]
    RegionMismatch { plan: String, finding: String },
    #[error("{action} is not a catalog action; accepted actions: {accepted}")]
    UnknownAction { action: String, accepted: String },
    #[error(
        "{action} only undoes another action and is never accepted in a plan; accepted for {control}: {accepted}"
    )]
    InverseOnly {
        action: String,
        control: String,
        accepted: String,
    },
    #[error("{action} is not allowed for control {control}; accepted: {accepted}")]
    ActionNotAllowed {
        action: String,
        control: String,
        accepted: String,
    },
    #[error(
        "{kind} {id} is not among the finding's resources ({resources}); only those may be changed"
    )]
    ResourceNotInFinding {
        kind: &'static str,
        id: String,
        resources: String,
    },
    #[error(
        "{action} names no rules; name at least one rule open to 0.0.0.0/0 or ::/0 on a port {control} flags"
    )]
    NoRules { action: String, control: String },
    #[error(
        "rule {rule_id} ({ports} from {source_cidr}) is not open to the internet; only rules from 0.0.0.0/0 or ::/0 may be revoked"
    )]
    RuleNotWorldOpen {
        rule_id: String,
        ports: String,
        source_cidr: String,
    },
    #[error(
        "rule {rule_id} ({ports}) is not on a port {control} flags ({flagged}); only those rules may be revoked"
    )]
    RuleNotFlagged {
        rule_id: String,
        ports: String,
        control: String,
        flagged: String,
    },
    #[error("rule {rule_id} is not in security group {group_id}")]
    UnknownRule { rule_id: String, group_id: String },
    #[error("{parameter} = {value} is out of range; accepted: {accepted}")]
    OutOfRange {
        parameter: String,
        value: String,
        accepted: String,
    },
    #[error(
        "{parameter} would change from {from} to {to}, but {control} does not govern it; settings a control does not name must keep their values"
    )]
    UnrelatedChange {
        parameter: String,
        from: String,
        to: String,
        control: String,
    },
    #[error(
        "{parameter} would be weakened from {from} to {to}; a remediation may only strengthen it"
    )]
    Weakened {
        parameter: String,
        from: String,
        to: String,
    },
    #[error(
        "{parameter} = {planned} contradicts the organisation policy, which requires {policy} ({document}, {heading})"
    )]
    ContradictsPolicy {
        parameter: String,
        planned: String,
        policy: String,
        document: String,
        heading: String,
    },
    #[error(
        "the plan's {what} do not match its actions (expected {expected}); plans are not edited by hand"
    )]
    Inconsistent {
        what: &'static str,
        expected: String,
    },
    #[error(
        "the plan id {stated} does not match its content (digest {computed}); the plan was altered after it was made"
    )]
    IdMismatch { stated: String, computed: String },
    #[error("the model's answer is malformed: {0}")]
    Malformed(String),
}

/// Largest number of actions a plan may hold.
pub const MAX_ACTIONS: usize = 8;

/// Checks a plan against the finding it claims to remediate: catalog actions allowed
/// for the finding's control, resources named in the finding, the finding's account
/// and region, parameters in range, and an id matching the content.
pub fn validate(plan: &RemediationPlan, finding: &Finding) -> Result<(), PlanRejection> {
    let control = finding
        .control_id
        .as_ref()
        .ok_or(PlanRejection::NoControl)?;
    let entry = catalog::entry_for(control).ok_or_else(|| PlanRejection::NotCovered {
        control: control.to_string(),
        covered: catalog::covered_controls().join(", "),
    })?;
    if !plan.control_id.eq_ignore_case(control) {
        return Err(PlanRejection::ControlMismatch {
            plan: plan.control_id.to_string(),
            finding: control.to_string(),
        });
    }
    if plan.findings != [finding.identifier()] {
        return Err(PlanRejection::FindingMismatch {
            expected: finding.id.clone(),
            got: plan
                .findings
                .iter()
                .map(|f| f.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if plan.account != finding.account {
        return Err(PlanRejection::AccountMismatch {
            plan: plan.account.to_string(),
            finding: finding.account.to_string(),
        });
    }
    if plan.region != finding.region {
        return Err(PlanRejection::RegionMismatch {
            plan: plan.region.clone(),
            finding: finding.region.clone(),
        });
    }
    if plan.actions.is_empty() {
        return Err(PlanRejection::NoActions);
    }
    if plan.actions.len() > MAX_ACTIONS {
        return Err(PlanRejection::TooManyActions {
            count: plan.actions.len(),
            max: MAX_ACTIONS,
        });
    }
    for (i, a) in plan.actions.iter().enumerate() {
        if plan.actions[..i].contains(a) {
            return Err(PlanRejection::DuplicateAction {
                action: a.name().to_string(),
            });
        }
        validate_action(a, entry, control, finding)?;
    }
    let rollback = rollback_of(&plan.actions);
    if plan.rollback != rollback {
        return Err(PlanRejection::Inconsistent {
            what: "rollback actions",
            expected: rollback
                .iter()
                .map(Action::name)
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let permissions = permissions_of(&plan.actions);
    if plan.permissions != permissions {
        return Err(PlanRejection::Inconsistent {
            what: "permissions",
            expected: permissions.join(", "),
        });
    }
    let computed = plan.digest();
    if plan.id != computed {
        return Err(PlanRejection::IdMismatch {
            stated: plan.id.to_string(),
            computed: computed.to_string(),
        });
    }
    Ok(())
}

/// Checks one action against the catalog entry of the finding's control.
pub fn validate_action(
    action: &Action,
    entry: &catalog::CatalogEntry,
    control: &ControlId,
    finding: &Finding,
) -> Result<(), PlanRejection> {
    let accepted = entry.actions.join(", ");
    if action.is_inverse_only() {
        return Err(PlanRejection::InverseOnly {
            action: action.name().to_string(),
            control: control.to_string(),
            accepted,
        });
    }
    if !entry.actions.contains(&action.name()) {
        return Err(PlanRejection::ActionNotAllowed {
            action: action.name().to_string(),
            control: control.to_string(),
            accepted,
        });
    }
    match (action, entry.family) {
        (Action::RevokeIngress { group_id, rules }, Family::Ec2SecurityGroup) => {
            catalog::ec2_sg::validate_revoke(group_id, rules, control, finding)
        }
        (Action::EnableGuardDuty { existing_detector }, Family::GuardDuty) => {
            catalog::require_account_resource(finding)?;
            if let Some(id) = existing_detector {
                catalog::guardduty::validate_detector_id(id)?;
            }
            Ok(())
        }
        (Action::SetPasswordPolicy { policy, previous }, Family::IamPasswordPolicy) => {
            catalog::require_account_resource(finding)?;
            catalog::iam_password::validate_policy(policy, previous.as_ref(), control)
        }
        (Action::BlockS3PublicAccess { block, .. }, Family::S3AccountPublicAccess) => {
            catalog::require_account_resource(finding)?;
            if block.all_on() {
                Ok(())
            } else {
                Err(PlanRejection::OutOfRange {
                    parameter: "PublicAccessBlockConfiguration".to_string(),
                    value: to_json(block).to_string(),
                    accepted: "all four settings true (S3.1 requires every one)".to_string(),
                })
            }
        }
        (Action::EnableEbsEncryptionByDefault, Family::EbsDefaultEncryption) => {
            catalog::require_account_resource(finding).map(|_| ())
        }
        (Action::EnableKmsKeyRotation { key_id }, Family::KmsKeyRotation) => {
            catalog::kms::key_in_finding(key_id, finding).map(|_| ())
        }
        (a, _) => Err(PlanRejection::ActionNotAllowed {
            action: a.name().to_string(),
            control: control.to_string(),
            accepted,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_ids_parse_display_and_serde() {
        let id: PlanId = "plan-3f9a1c2b".parse().unwrap();
        assert_eq!(id.to_string(), "plan-3f9a1c2b");
        assert_eq!(serde_json::to_value(&id).unwrap(), json!("plan-3f9a1c2b"));
        let back: PlanId = serde_json::from_value(json!("plan-3f9a1c2b")).unwrap();
        assert_eq!(back, id);
        for bad in [
            "",
            "plan-",
            "plan-3F9A1C2B",
            "plan-3f9a1c2",
            "plan-3f9a1c2bb",
            "3f9a1c2b",
            "plan-3f9a1c2g",
        ] {
            let e = bad.parse::<PlanId>().unwrap_err();
            assert!(e.to_string().contains("8 lowercase hex"), "{bad}: {e}");
        }
        assert!(serde_json::from_value::<PlanId>(json!("plan-XYZ")).is_err());
        let a = PlanId::of_bytes(b"x");
        assert_eq!(a, PlanId::of_bytes(b"x"));
        assert_ne!(a, PlanId::of_bytes(b"y"));
        assert!(a.as_str().parse::<PlanId>().is_ok());
    }

    #[test]
    fn canonical_json_sorts_keys_without_whitespace() {
        let v = json!({"b": [1, {"z": true, "a": null}], "a": "é\"x"});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":"é\"x","b":[1,{"a":null,"z":true}]}"#
        );
    }

    #[test]
    fn shell_and_python_quoting() {
        assert_eq!(shell_quote("sg-0123"), "sg-0123");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\"'\"'s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(py_str("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(
            py_value(&json!({"k": [true, false, null, 3]})),
            r#"{"k": [True, False, None, 3]}"#
        );
    }

    #[test]
    fn inverses_are_exact() {
        let created = Applied {
            created_detector: Some("abc".to_string()),
            ..Applied::changed("created")
        };
        let enable_new = Action::EnableGuardDuty {
            existing_detector: None,
        };
        assert_eq!(enable_new.inverse(None), None, "needs apply's id");
        assert_eq!(
            enable_new.inverse(Some(&created)),
            Some(Action::DeleteGuardDutyDetector {
                detector_id: "abc".to_string()
            })
        );
        let enable_old = Action::EnableGuardDuty {
            existing_detector: Some("d1".to_string()),
        };
        assert_eq!(
            enable_old.inverse(None),
            Some(Action::DisableGuardDuty {
                detector_id: "d1".to_string()
            })
        );
        assert_eq!(
            enable_old.inverse(Some(&Applied::unchanged("already on"))),
            None
        );
        assert_eq!(
            Action::EnableEbsEncryptionByDefault.inverse(None),
            Some(Action::DisableEbsEncryptionByDefault)
        );
        assert_eq!(Action::DeletePasswordPolicy.inverse(None), None);
        let json = serde_json::to_value(Action::DeletePasswordPolicy).unwrap();
        assert_eq!(json, json!({"action": "delete_password_policy"}));
        for name in INVERSE_ONLY {
            assert!(ACTION_NAMES.contains(name));
        }
    }
}
