//! What every typed step of a plan can do ([`Step`]), what its precheck and apply
//! report, why a plan is refused, and the quoting its CLI and Python renderings use.
//! A family file implements [`Step`] once per step; `Action` is built from them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Action;
use crate::cloud::{Cloud, CloudError, Target};
use crate::settings::Lang;

/// One typed, allow-listed operation, written once over the [`Cloud`] trait.
#[async_trait]
pub trait Step: Send + Sync {
    /// Reads the live state: what is there, what apply will make of it, and any
    /// drift from the state the plan was made from.
    async fn precheck(&self, cloud: &dyn Cloud, at: &Target) -> Result<Precheck, CloudError>;

    /// Makes the change. Only called after a precheck found work to do and no drift.
    async fn apply(&self, cloud: &dyn Cloud, at: &Target) -> Result<Applied, CloudError>;

    /// Re-reads the live state and checks that the intended state holds.
    async fn verify(&self, cloud: &dyn Cloud, at: &Target) -> Result<bool, CloudError>;

    /// [`Step::apply`] for a step that takes a while (an Automation run): it
    /// reports progress and stops its work when the cell is interrupted.
    async fn apply_watched(
        &self,
        cloud: &dyn Cloud,
        at: &Target,
        _watch: &mut Watch<'_>,
    ) -> Result<Applied, CloudError> {
        self.apply(cloud, at).await
    }

    /// [`Step::verify`], watched the same way (a Config rule evaluation).
    async fn verify_watched(
        &self,
        cloud: &dyn Cloud,
        at: &Target,
        _watch: &mut Watch<'_>,
    ) -> Result<bool, CloudError> {
        self.verify(cloud, at).await
    }

    /// The action that undoes this one. With `applied` (after an apply that changed
    /// something) the inverse is exact, using ids only known then; without it, the
    /// inverse computable from the plan alone (None if that needs apply's ids).
    fn inverse(&self, applied: Option<&Applied>) -> Option<Action>;

    /// Why this step can never be undone, for a step whose `inverse` is always None.
    fn no_inverse(&self) -> Option<&'static str> {
        None
    }

    /// The IAM actions precheck, apply and verify need.
    fn permissions(&self) -> Vec<&'static str>;

    /// Those of [`Step::permissions`] that IAM lets a policy narrow to a resource,
    /// with the resource's ARN; a session policy allows the others on `*`.
    fn resources(&self, _at: &Target) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// What undoing this step may need beyond the inverse computable before
    /// apply (one that needs ids only apply learns), with resources as above.
    fn rollback_grants(&self, _at: &Target) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// The step as Automation document steps (`%export --format ssm`); None
    /// when no AWS API call expresses it.
    fn automation(&self, _at: &Target) -> Option<AutomationSteps> {
        None
    }

    /// The equivalent AWS CLI command(s), one per line, values shell-quoted.
    fn cli(&self, at: &Target) -> String;

    /// Equivalent, self-contained boto3 code (valid Python 3).
    fn python(&self, at: &Target) -> String;

    /// One line saying what the step does.
    fn describe(&self, lang: Lang) -> String;
}

/// One AWS API call as an Automation `aws:executeAwsApi` step takes it:
/// botocore's service name, the operation, and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    pub service: &'static str,
    pub api: &'static str,
    pub inputs: serde_json::Map<String, Value>,
}

impl ApiCall {
    pub fn new(service: &'static str, api: &'static str, inputs: Value) -> ApiCall {
        ApiCall {
            service,
            api,
            inputs: match inputs {
                Value::Object(m) => m,
                _ => serde_json::Map::new(),
            },
        }
    }
}

/// A property a read call must return afterwards (`aws:assertAwsResourceProperty`).
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyCheck {
    pub call: ApiCall,
    /// JSONPath into the response, e.g. `$.KeyRotationEnabled`.
    pub selector: String,
    pub desired: Vec<String>,
}

/// A plan step as Automation runs it: the calls that apply it, and how to verify.
#[derive(Debug, Clone, PartialEq)]
pub struct AutomationSteps {
    pub apply: Vec<ApiCall>,
    pub verify: Option<PropertyCheck>,
    /// An Automation document to run instead of API calls (`aws:executeAutomation`).
    pub run_document: Option<(String, BTreeMap<String, Vec<String>>)>,
}

/// What a long step reports to and asks of the cell running it.
pub struct Watch<'a> {
    /// Whether the cell was interrupted.
    pub cancelled: &'a (dyn Fn() -> bool + Sync),
    /// One line saying where the step is.
    pub progress: &'a mut (dyn FnMut(&str) + Send),
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
    pub rules: Vec<crate::resources::IngressRule>,
    /// RunAutomation: the SSM Automation execution that made the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automation_execution: Option<String>,
}

impl Applied {
    pub fn unchanged(summary: impl Into<String>) -> Applied {
        Applied {
            changed: false,
            summary: summary.into(),
            ..Applied::default()
        }
    }

    pub fn changed(summary: impl Into<String>) -> Applied {
        Applied {
            changed: true,
            summary: summary.into(),
            ..Applied::default()
        }
    }
}

/// Largest number of actions a plan may hold.
pub const MAX_ACTIONS: usize = 8;

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

/// Apply refused because the live state is no longer what the plan was made from.
pub fn drift_error(what: &str, drift: &str) -> CloudError {
    CloudError::InvalidInput(format!(
        "{what} refused: the live state drifted from the plan: {drift}"
    ))
}

pub fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_else(|e| Value::String(format!("(unserialisable: {e})")))
}

pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
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

/// A self-contained boto3 call: `service.method(Arg=value, ...)` in `at`'s region.
pub fn python_call(at: &Target, service: &str, method: &str, args: &[(&str, String)]) -> String {
    let mut s = format!(
        "import boto3\n\n{service} = boto3.client({}, region_name={})\n",
        py_str(service),
        py_str(&at.region)
    );
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
}
