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
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::catalog;
pub use crate::catalog::{
    Action, Applied, MAX_ACTIONS, PlanRejection, PolicyCitation, Precheck, canonical_json, py_str,
    py_value, shell_quote, validate_action,
};
use crate::cloud::{SessionPolicy, Target};
use crate::finding::{AccountId, ControlId, Finding, FindingIdentifier};
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
    /// The most a session acting for this plan may do: its actions and their
    /// inverses (for rollback), each narrowed to the plan's resources where IAM
    /// allows. In a member account, the assumed role gets exactly this.
    pub fn session_policy(&self) -> SessionPolicy {
        let at = self.target();
        SessionPolicy::from_pairs(
            self.actions
                .iter()
                .chain(&self.rollback)
                .flat_map(|a| a.grants(&at)),
        )
    }

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
        let mut v = catalog::to_json(self);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        use crate::catalog::ebs::{DisableEbsEncryptionByDefault, EnableEbsEncryptionByDefault};
        use crate::catalog::guardduty::{
            DeleteGuardDutyDetector, DisableGuardDuty, EnableGuardDuty,
        };
        use crate::catalog::iam_password::DeletePasswordPolicy;
        let created = Applied {
            created_detector: Some("abc".to_string()),
            ..Applied::changed("created")
        };
        let enable_new: Action = EnableGuardDuty {
            existing_detector: None,
        }
        .into();
        assert_eq!(enable_new.inverse(None), None, "needs apply's id");
        assert_eq!(
            enable_new.inverse(Some(&created)),
            Some(
                DeleteGuardDutyDetector {
                    detector_id: "abc".to_string()
                }
                .into()
            )
        );
        let enable_old: Action = EnableGuardDuty {
            existing_detector: Some("d1".to_string()),
        }
        .into();
        assert_eq!(
            enable_old.inverse(None),
            Some(
                DisableGuardDuty {
                    detector_id: "d1".to_string()
                }
                .into()
            )
        );
        assert_eq!(
            enable_old.inverse(Some(&Applied::unchanged("already on"))),
            None
        );
        assert_eq!(
            Action::from(EnableEbsEncryptionByDefault {}).inverse(None),
            Some(DisableEbsEncryptionByDefault {}.into())
        );
        let delete: Action = DeletePasswordPolicy {}.into();
        assert_eq!(delete.inverse(None), None);
        let json = serde_json::to_value(&delete).unwrap();
        assert_eq!(json, json!({"action": "delete_password_policy"}));
        assert_eq!(serde_json::from_value::<Action>(json).unwrap(), delete);
    }
}
