//! The ASFF finding model: one Security Hub finding, parsed tolerantly, raw JSON kept.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::severity::Severity;

mod legacy;
mod ocsf;
mod raw;

pub use legacy::{Standard, StandardControl, standard_controls_for};
pub use ocsf::asff_resource_type;
pub use raw::RawJson;

/// Which Security Hub a finding came from: CSPM's ASFF or the new Security Hub's OCSF.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum FindingSource {
    #[default]
    Asff,
    Ocsf,
}

impl FindingSource {
    pub fn is_asff(&self) -> bool {
        *self == FindingSource::Asff
    }
}

/// A Security Hub control id such as `EC2.19` or `GuardDuty.1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ControlId(String);

impl ControlId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The service part, e.g. `EC2`.
    pub fn service(&self) -> &str {
        self.0.split_once('.').map_or("", |(s, _)| s)
    }

    /// The number part, e.g. `19`.
    pub fn number(&self) -> u32 {
        self.0
            .split_once('.')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0)
    }

    /// Control ids are compared without regard to case (`ec2.19` is `EC2.19`).
    pub fn eq_ignore_case(&self, other: &ControlId) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid control id {given:?}: expected <SERVICE>.<N>, a service name starting with a letter, a dot, then digits (e.g. EC2.19, GuardDuty.1)"
)]
pub struct ParseControlIdError {
    pub given: String,
}

impl FromStr for ControlId {
    type Err = ParseControlIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let err = || ParseControlIdError {
            given: s.to_string(),
        };
        let (service, number) = t.split_once('.').ok_or_else(err)?;
        let service_ok = service
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && service.chars().all(|c| c.is_ascii_alphanumeric());
        let number_ok =
            !number.is_empty() && number.len() <= 4 && number.chars().all(|c| c.is_ascii_digit());
        if service_ok && number_ok {
            Ok(ControlId(t.to_string()))
        } else {
            Err(err())
        }
    }
}

impl TryFrom<String> for ControlId {
    type Error = ParseControlIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ControlId> for String {
    fn from(c: ControlId) -> String {
        c.0
    }
}

impl fmt::Display for ControlId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For compile-time constants known to be valid (tests check each use).
    pub(crate) fn from_static(s: &'static str) -> AccountId {
        debug_assert!(s.parse::<AccountId>().is_ok(), "bad account constant {s}");
        AccountId(s.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("account id must be 12 digits, got {given:?}")]
pub struct ParseAccountIdError {
    pub given: String,
}

impl FromStr for AccountId {
    type Err = ParseAccountIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.len() == 12 && t.chars().all(|c| c.is_ascii_digit()) {
            Ok(AccountId(t.to_string()))
        } else {
            Err(ParseAccountIdError {
                given: s.to_string(),
            })
        }
    }
}

impl TryFrom<String> for AccountId {
    type Error = ParseAccountIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<AccountId> for String {
    fn from(a: AccountId) -> String {
        a.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a user names a finding: its number in the last listing, or its Id/ARN.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingRef {
    /// 1-based position in the last listing.
    Index(usize),
    /// A finding Id (usually an ARN).
    Id(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseFindingRefError {
    #[error("no finding given: expected a number from the last listing (e.g. 1) or a finding id")]
    Empty,
    #[error("finding numbers start at 1, got {0:?}")]
    Zero(String),
    #[error(
        "{0:?} is not a finding number from the last listing nor a finding id (ids have no spaces)"
    )]
    Invalid(String),
}

impl FromStr for FindingRef {
    type Err = ParseFindingRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(ParseFindingRefError::Empty);
        }
        // `#3` reads naturally after a listing that shows `#`.
        let num = t.strip_prefix('#').unwrap_or(t);
        if !num.is_empty() && num.chars().all(|c| c.is_ascii_digit()) {
            return match num.parse::<usize>() {
                Ok(0) => Err(ParseFindingRefError::Zero(s.to_string())),
                Ok(n) => Ok(FindingRef::Index(n)),
                Err(_) => Err(ParseFindingRefError::Invalid(s.to_string())),
            };
        }
        if t.starts_with('#') || t.chars().any(char::is_whitespace) {
            return Err(ParseFindingRefError::Invalid(s.to_string()));
        }
        Ok(FindingRef::Id(t.to_string()))
    }
}

impl fmt::Display for FindingRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FindingRef::Index(n) => write!(f, "{n}"),
            FindingRef::Id(id) => f.write_str(id),
        }
    }
}

/// An upper-case ASFF label that is not one of the accepted values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {given:?}: expected one of {expected} (any case)")]
pub struct ParseLabelError {
    pub kind: &'static str,
    pub given: String,
    pub expected: &'static str,
}

/// Declares an enum of ASFF labels with label(), Display, FromStr (any case, `-` or `_`) and serde.
macro_rules! label_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal, $expected:literal, { $($variant:ident => $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $label)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.label())
            }
        }

        impl FromStr for $name {
            type Err = ParseLabelError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let t = s.trim().replace('-', "_");
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.label().eq_ignore_ascii_case(&t))
                    .ok_or_else(|| ParseLabelError {
                        kind: $kind,
                        given: s.to_string(),
                        expected: $expected,
                    })
            }
        }
    };
}

label_enum!(
    /// `Compliance.Status` of a control finding.
    ComplianceStatus, "compliance status", "PASSED, FAILED, WARNING, NOT_AVAILABLE", {
        Passed => "PASSED",
        Failed => "FAILED",
        Warning => "WARNING",
        NotAvailable => "NOT_AVAILABLE",
    }
);

label_enum!(
    /// `Workflow.Status`: where the finding is in its investigation.
    WorkflowStatus, "workflow status", "NEW, NOTIFIED, RESOLVED, SUPPRESSED", {
        New => "NEW",
        Notified => "NOTIFIED",
        Resolved => "RESOLVED",
        Suppressed => "SUPPRESSED",
    }
);

label_enum!(
    /// `RecordState`: ARCHIVED once the provider no longer reports it.
    RecordState, "record state", "ACTIVE, ARCHIVED", {
        Active => "ACTIVE",
        Archived => "ARCHIVED",
    }
);

// The enums come from a macro, so their defaults are written out here.
#[allow(clippy::derivable_impls)]
impl Default for WorkflowStatus {
    fn default() -> Self {
        WorkflowStatus::New
    }
}

#[allow(clippy::derivable_impls)]
impl Default for RecordState {
    fn default() -> Self {
        RecordState::Active
    }
}

/// One entry of the finding's `Resources` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// ASFF resource type, e.g. `AwsEc2SecurityGroup`, `AwsAccount`.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Usually an ARN (`AWS::::Account:<id>` for accounts).
    pub id: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub partition: Option<String>,
    /// The `Details` object as sent (Null when absent), kept compact; read it
    /// with [`Resource::details`].
    #[serde(default, rename = "details")]
    pub details_json: RawJson,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl Resource {
    /// The `Details` object as sent (Null when absent).
    pub fn details(&self) -> Value {
        self.details_json.value()
    }

    /// A human name: the `Name` tag, else a name found in the details.
    pub fn name(&self) -> Option<String> {
        if let Some(n) = self.tags.get("Name") {
            return Some(n.clone());
        }
        let details = self.details();
        details.as_object()?.values().find_map(|d| {
            ["GroupName", "Name", "KeyId", "Description"]
                .iter()
                .find_map(|k| d.get(*k).and_then(Value::as_str))
                .map(str::to_string)
        })
    }
}

/// A `Compliance.StatusReasons` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReason {
    pub code: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// The `Compliance` object of a control finding.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Compliance {
    /// None for findings that are not control checks (e.g. GuardDuty threats).
    #[serde(default)]
    pub status: Option<ComplianceStatus>,
    /// `AssociatedStandards[].StandardsId`.
    #[serde(default)]
    pub associated_standards: Vec<String>,
    #[serde(default)]
    pub related_requirements: Vec<String>,
    #[serde(default)]
    pub status_reasons: Vec<StatusReason>,
}

/// The user-defined `Note` on a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub text: String,
    #[serde(default)]
    pub updated_by: Option<String>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// What BatchUpdateFindings needs to name a finding; an OCSF finding is named
/// by its `metadata.uid` alone (BatchUpdateFindingsV2's MetadataUids).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FindingIdentifier {
    pub id: String,
    pub product_arn: String,
    /// Which API updates it; absent (ASFF) in records written before OCSF.
    #[serde(default, skip_serializing_if = "FindingSource::is_asff")]
    pub source: FindingSource,
}

/// One ASFF finding. Serialises in this crate's own snake_case shape; use
/// [`Finding::from_asff`] to read Security Hub's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    pub product_arn: String,
    /// `ProductName`, e.g. "Security Hub", "GuardDuty".
    #[serde(default)]
    pub product_name: Option<String>,
    #[serde(default)]
    pub generator_id: Option<String>,
    /// The account the finding is about: actions on it target this account.
    pub account: AccountId,
    /// The region the finding is about: actions on it target this region.
    pub region: String,
    pub severity: Severity,
    /// The consolidated security control, also for findings that name only
    /// their standard's own control.
    #[serde(default)]
    pub control_id: Option<ControlId>,
    /// The standard-specific control the finding named, e.g. CIS 1.2.0 1.9.
    #[serde(default)]
    pub standard_control: Option<StandardControl>,
    #[serde(default)]
    pub source: FindingSource,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(default)]
    pub compliance: Compliance,
    #[serde(default)]
    pub workflow: WorkflowStatus,
    #[serde(default)]
    pub record_state: RecordState,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// `Remediation.Recommendation.Url`.
    #[serde(default)]
    pub remediation_url: Option<String>,
    #[serde(default)]
    pub note: Option<Note>,
    /// The ASFF object as received.
    #[serde(default)]
    pub raw: RawJson,
}

/// Why an ASFF object could not be read as a finding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindingError {
    #[error("a finding must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("finding is missing its {0} field")]
    Missing(&'static str),
    #[error("finding field {field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Follows a path of object keys; None if any step is missing.
fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(*k))
}

/// A non-empty string at a path.
fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn required<'a>(obj: &'a Value, field: &'static str) -> Result<&'a str, FindingError> {
    str_at(obj, &[field]).ok_or(FindingError::Missing(field))
}

fn time_at(v: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    str_at(v, path)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let s = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (k.clone(), s)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The region field of an ARN (`arn:partition:service:region:...`).
fn arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(5, ':');
    match (parts.next(), parts.nth(2)) {
        (Some("arn"), Some(r)) if !r.is_empty() => Some(r),
        _ => None,
    }
}

fn parse_severity(obj: &Value) -> Severity {
    for base in [
        &["Severity"][..],
        &["FindingProviderFields", "Severity"][..],
    ] {
        let Some(sev) = at(obj, base) else { continue };
        if let Some(label) = str_at(sev, &["Label"]).and_then(|l| l.parse().ok()) {
            return label;
        }
        if let Some(n) = sev.get("Normalized").and_then(Value::as_f64) {
            return Severity::from_normalized(n.round() as i64);
        }
    }
    Severity::Informational
}

fn is_security_hub_product(obj: &Value, product_arn: &str) -> bool {
    product_arn.ends_with("/aws/securityhub")
        || str_at(obj, &["ProductName"]) == Some("Security Hub")
        || str_at(obj, &["ProductFields", "aws/securityhub/ProductName"]) == Some("Security Hub")
}

/// The consolidated control id and the standard-specific control among
/// candidate texts, in order: a control id itself, or a GeneratorId or
/// StandardsControlArn whose last segment is one (e.g. "security-control/EC2.19").
/// A finding that names only its standard's own control, as accounts without
/// consolidated control findings send (CIS 1.2.0 rule 1.9), gets the
/// consolidated id AWS maps it to.
fn parse_control<'a>(
    candidates: impl IntoIterator<Item = Option<&'a str>>,
) -> (Option<ControlId>, Option<StandardControl>) {
    let mut control: Option<ControlId> = None;
    let mut standard = None;
    for text in candidates.into_iter().flatten() {
        if standard.is_none() {
            standard = legacy::standard_control_in(text);
        }
        if control.is_none() {
            control = text.parse().ok().or_else(|| {
                text.contains('/')
                    .then(|| text.rsplit('/').next().and_then(|last| last.parse().ok()))
                    .flatten()
            });
        }
    }
    if control.is_none() {
        control = standard.as_ref().and_then(legacy::consolidated);
    }
    (control, standard)
}

fn parse_asff_control(
    obj: &Value,
    product_arn: &str,
) -> (Option<ControlId>, Option<StandardControl>) {
    let security_hub = is_security_hub_product(obj, product_arn);
    let from_security_hub = |path: &[&str]| security_hub.then(|| str_at(obj, path)).flatten();
    parse_control([
        str_at(obj, &["Compliance", "SecurityControlId"]),
        str_at(obj, &["ProductFields", "ControlId"]),
        from_security_hub(&["GeneratorId"]),
        from_security_hub(&["ProductFields", "StandardsControlArn"]),
    ])
}

fn parse_resource(v: &Value) -> Option<Resource> {
    let id = str_at(v, &["Id"])?.to_string();
    Some(Resource {
        resource_type: str_at(v, &["Type"]).unwrap_or("Other").to_string(),
        id,
        region: str_at(v, &["Region"]).map(str::to_string),
        partition: str_at(v, &["Partition"]).map(str::to_string),
        details_json: v.get("Details").map(RawJson::new).unwrap_or_default(),
        tags: string_map(v.get("Tags")),
    })
}

fn parse_compliance(obj: &Value) -> Compliance {
    let Some(c) = obj.get("Compliance") else {
        return Compliance::default();
    };
    let associated_standards = c
        .get("AssociatedStandards")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| str_at(s, &["StandardsId"]).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let status_reasons = c
        .get("StatusReasons")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    Some(StatusReason {
                        code: str_at(r, &["ReasonCode"])?.to_string(),
                        description: str_at(r, &["Description"]).map(str::to_string),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Compliance {
        status: str_at(c, &["Status"]).and_then(|s| s.parse().ok()),
        associated_standards,
        related_requirements: string_list(c.get("RelatedRequirements")),
        status_reasons,
    }
}

fn parse_workflow(obj: &Value) -> WorkflowStatus {
    if let Some(s) = str_at(obj, &["Workflow", "Status"]).and_then(|s| s.parse().ok()) {
        return s;
    }
    // The deprecated WorkflowState only maps cleanly for RESOLVED.
    match str_at(obj, &["WorkflowState"]) {
        Some("RESOLVED") => WorkflowStatus::Resolved,
        _ => WorkflowStatus::New,
    }
}

impl Finding {
    /// Reads one ASFF finding as returned by Security Hub's GetFindings.
    /// Only `Id`, `ProductArn` and `AwsAccountId` are required; unknown fields are ignored.
    pub fn from_asff(raw: Value) -> Result<Finding, FindingError> {
        if !raw.is_object() {
            return Err(FindingError::NotAnObject(json_kind(&raw)));
        }
        let id = required(&raw, "Id")?.to_string();
        let product_arn = required(&raw, "ProductArn")?.to_string();
        let account = required(&raw, "AwsAccountId")?
            .parse::<AccountId>()
            .map_err(|e| FindingError::Invalid {
                field: "AwsAccountId",
                reason: e.to_string(),
            })?;
        let region = str_at(&raw, &["Region"])
            .or_else(|| arn_region(&id))
            .or_else(|| arn_region(&product_arn))
            .unwrap_or_default()
            .to_string();
        let resources = raw
            .get("Resources")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(parse_resource).collect())
            .unwrap_or_default();
        let note = str_at(&raw, &["Note", "Text"]).map(|text| Note {
            text: text.to_string(),
            updated_by: str_at(&raw, &["Note", "UpdatedBy"]).map(str::to_string),
            updated_at: time_at(&raw, &["Note", "UpdatedAt"]),
        });
        let product_name = str_at(&raw, &["ProductName"])
            .or_else(|| str_at(&raw, &["ProductFields", "aws/securityhub/ProductName"]))
            .map(str::to_string);
        let (control_id, standard_control) = parse_asff_control(&raw, &product_arn);
        Ok(Finding {
            source: FindingSource::Asff,
            control_id,
            standard_control,
            severity: parse_severity(&raw),
            generator_id: str_at(&raw, &["GeneratorId"]).map(str::to_string),
            title: str_at(&raw, &["Title"]).unwrap_or_default().to_string(),
            description: str_at(&raw, &["Description"])
                .unwrap_or_default()
                .to_string(),
            compliance: parse_compliance(&raw),
            workflow: parse_workflow(&raw),
            record_state: str_at(&raw, &["RecordState"])
                .and_then(|s| s.parse().ok())
                .unwrap_or_default(),
            created_at: time_at(&raw, &["CreatedAt"]),
            updated_at: time_at(&raw, &["UpdatedAt"]),
            remediation_url: str_at(&raw, &["Remediation", "Recommendation", "Url"])
                .map(str::to_string),
            id,
            product_arn,
            product_name,
            account,
            region,
            resources,
            note,
            raw: RawJson::new(&raw),
        })
    }

    /// Reads a list of ASFF findings, e.g. the `Findings` array of a GetFindings page.
    /// Returns the findings that parsed and the errors of those that did not.
    pub fn from_asff_list(values: Vec<Value>) -> (Vec<Finding>, Vec<FindingError>) {
        let mut ok = Vec::new();
        let mut errors = Vec::new();
        for v in values {
            match Finding::from_asff(v) {
                Ok(f) => ok.push(f),
                Err(e) => errors.push(e),
            }
        }
        (ok, errors)
    }

    /// The Id + ProductArn pair BatchUpdateFindings wants.
    pub fn identifier(&self) -> FindingIdentifier {
        FindingIdentifier {
            id: self.id.clone(),
            product_arn: self.product_arn.clone(),
            source: self.source,
        }
    }

    /// The first resource, which for control findings is the evaluated one.
    pub fn primary_resource(&self) -> Option<&Resource> {
        self.resources.first()
    }

    /// Whether `r` names this finding by Id (an index needs the listing, so never matches here).
    pub fn is_named_by(&self, r: &FindingRef) -> bool {
        matches!(r, FindingRef::Id(id) if *id == self.id)
    }
}

/// Which findings to list. `Default` is what a user means by "open findings":
/// compliance FAILED, workflow NEW or NOTIFIED, record state ACTIVE.
/// Empty lists mean "any".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FindingFilter {
    /// Exact finding Ids; when set, usually with the other fields relaxed (see [`FindingFilter::by_ids`]).
    pub ids: Vec<String>,
    pub severities: Vec<Severity>,
    pub control_ids: Vec<ControlId>,
    pub compliance_statuses: Vec<ComplianceStatus>,
    pub workflow_statuses: Vec<WorkflowStatus>,
    pub record_state: Option<RecordState>,
    pub accounts: Vec<AccountId>,
    pub regions: Vec<String>,
    /// ASFF resource types, e.g. `AwsEc2SecurityGroup` (any resource of the finding may match).
    pub resource_types: Vec<String>,
    /// Case-insensitive substring of the product name or product ARN.
    pub product: Option<String>,
    /// Case-insensitive substring of the title.
    pub title_contains: Option<String>,
    /// At most this many findings, after sorting.
    pub limit: Option<usize>,
}

impl Default for FindingFilter {
    fn default() -> Self {
        FindingFilter {
            ids: Vec::new(),
            severities: Vec::new(),
            control_ids: Vec::new(),
            compliance_statuses: Self::DEFAULT_COMPLIANCE.to_vec(),
            workflow_statuses: Self::DEFAULT_WORKFLOW.to_vec(),
            record_state: Some(Self::DEFAULT_RECORD_STATE),
            accounts: Vec::new(),
            regions: Vec::new(),
            resource_types: Vec::new(),
            product: None,
            title_contains: None,
            limit: None,
        }
    }
}

fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

fn join_or<T: fmt::Display>(items: &[T]) -> String {
    let words: Vec<String> = items.iter().map(ToString::to_string).collect();
    match words.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

impl FindingFilter {
    pub const DEFAULT_COMPLIANCE: [ComplianceStatus; 1] = [ComplianceStatus::Failed];
    pub const DEFAULT_WORKFLOW: [WorkflowStatus; 2] =
        [WorkflowStatus::New, WorkflowStatus::Notified];
    pub const DEFAULT_RECORD_STATE: RecordState = RecordState::Active;

    /// No restriction at all: every finding, any status, archived too.
    pub fn everything() -> Self {
        FindingFilter {
            compliance_statuses: Vec::new(),
            workflow_statuses: Vec::new(),
            record_state: None,
            ..FindingFilter::default()
        }
    }

    /// Exactly these finding Ids, whatever their status.
    pub fn by_ids(ids: impl IntoIterator<Item = String>) -> Self {
        FindingFilter {
            ids: ids.into_iter().collect(),
            ..FindingFilter::everything()
        }
    }

    /// Whether the finding passes every criterion (the limit is not applied here).
    pub fn matches(&self, f: &Finding) -> bool {
        let any = |empty: bool, hit: bool| empty || hit;
        any(self.ids.is_empty(), self.ids.contains(&f.id))
            && any(
                self.severities.is_empty(),
                self.severities.contains(&f.severity),
            )
            && any(
                self.control_ids.is_empty(),
                f.control_id
                    .as_ref()
                    .is_some_and(|c| self.control_ids.iter().any(|w| w.eq_ignore_case(c))),
            )
            && any(
                self.compliance_statuses.is_empty(),
                f.compliance
                    .status
                    .is_some_and(|s| self.compliance_statuses.contains(&s)),
            )
            && any(
                self.workflow_statuses.is_empty(),
                self.workflow_statuses.contains(&f.workflow),
            )
            && self.record_state.is_none_or(|r| r == f.record_state)
            && any(self.accounts.is_empty(), self.accounts.contains(&f.account))
            && any(
                self.regions.is_empty(),
                self.regions
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(&f.region)),
            )
            && any(
                self.resource_types.is_empty(),
                f.resources.iter().any(|res| {
                    self.resource_types
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case(&res.resource_type))
                }),
            )
            && self.product.as_deref().is_none_or(|p| {
                contains_ignore_case(&f.product_arn, p)
                    || f.product_name
                        .as_deref()
                        .is_some_and(|n| contains_ignore_case(n, p))
            })
            && self
                .title_contains
                .as_deref()
                .is_none_or(|t| contains_ignore_case(&f.title, t))
    }

    /// The filter in words, saying which parts are defaults, e.g.
    /// "severity CRITICAL or HIGH; compliance FAILED (default); ...".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.ids.is_empty() {
            parts.push(format!("finding id {}", join_or(&self.ids)));
        }
        parts.push(if self.severities.is_empty() {
            "any severity".to_string()
        } else {
            format!("severity {}", join_or(&self.severities))
        });
        if !self.control_ids.is_empty() {
            parts.push(format!("control {}", join_or(&self.control_ids)));
        }
        let mark = |is_default: bool| if is_default { " (default)" } else { "" };
        parts.push(if self.compliance_statuses.is_empty() {
            "any compliance status".to_string()
        } else {
            format!(
                "compliance {}{}",
                join_or(&self.compliance_statuses),
                mark(self.compliance_statuses == Self::DEFAULT_COMPLIANCE)
            )
        });
        parts.push(if self.workflow_statuses.is_empty() {
            "any workflow status".to_string()
        } else {
            format!(
                "workflow {}{}",
                join_or(&self.workflow_statuses),
                mark(self.workflow_statuses == Self::DEFAULT_WORKFLOW)
            )
        });
        parts.push(match self.record_state {
            None => "active or archived".to_string(),
            Some(r) => format!("record state {r}{}", mark(r == Self::DEFAULT_RECORD_STATE)),
        });
        parts.push(if self.accounts.is_empty() {
            "all accounts".to_string()
        } else {
            format!("account {}", join_or(&self.accounts))
        });
        parts.push(if self.regions.is_empty() {
            "all regions".to_string()
        } else {
            format!("region {}", join_or(&self.regions))
        });
        if !self.resource_types.is_empty() {
            parts.push(format!("resource type {}", join_or(&self.resource_types)));
        }
        if let Some(p) = &self.product {
            parts.push(format!("product containing {p:?}"));
        }
        if let Some(t) = &self.title_contains {
            parts.push(format!("title containing {t:?}"));
        }
        if let Some(n) = self.limit {
            parts.push(format!("at most {n}"));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "Id": "arn:aws:securityhub:eu-west-1:123456789012:security-control/S3.1/finding/abc",
            "ProductArn": "arn:aws:securityhub:eu-west-1::product/aws/securityhub",
            "AwsAccountId": "123456789012"
        })
    }

    #[test]
    fn minimal_finding_parses_with_defaults() {
        let f = Finding::from_asff(minimal()).unwrap();
        assert_eq!(f.account.as_str(), "123456789012");
        assert_eq!(f.region, "eu-west-1", "region falls back to the Id ARN");
        assert_eq!(f.severity, Severity::Informational);
        assert_eq!(f.workflow, WorkflowStatus::New);
        assert_eq!(f.record_state, RecordState::Active);
        assert_eq!(f.compliance.status, None);
        assert!(f.resources.is_empty());
        assert!(f.control_id.is_none());
        assert_eq!(f.raw.value(), minimal());
    }

    #[test]
    fn full_finding_parses_and_ignores_unknown_fields() {
        let v = json!({
            "SchemaVersion": "2018-10-08",
            "Id": "arn:aws:securityhub:us-east-1:222222222222:security-control/EC2.19/finding/1",
            "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/securityhub",
            "ProductName": "Security Hub",
            "GeneratorId": "security-control/EC2.19",
            "AwsAccountId": "222222222222",
            "Region": "us-east-1",
            "SomethingNew": {"Nested": [1, 2, 3]},
            "Severity": {"Label": "CRITICAL", "Original": "CRITICAL"},
            "Title": "Security groups should not allow unrestricted access to ports with high risk",
            "Description": "desc",
            "Remediation": {"Recommendation": {"Text": "see", "Url": "https://example.invalid/r"}},
            "Compliance": {
                "Status": "FAILED",
                "SecurityControlId": "EC2.19",
                "AssociatedStandards": [{"StandardsId": "standards/aws-foundational-security-best-practices/v/1.0.0"}],
                "StatusReasons": [{"ReasonCode": "CONFIG_EVALUATIONS_EMPTY", "Description": "x"}]
            },
            "Workflow": {"Status": "NOTIFIED"},
            "RecordState": "ARCHIVED",
            "CreatedAt": "2025-05-01T10:00:00.000Z",
            "UpdatedAt": "2025-05-02T11:30:00Z",
            "Note": {"Text": "ticket 1", "UpdatedBy": "me", "UpdatedAt": "2025-05-03T00:00:00Z"},
            "Resources": [{
                "Type": "AwsEc2SecurityGroup",
                "Id": "arn:aws:ec2:us-east-1:222222222222:security-group/sg-1",
                "Partition": "aws",
                "Region": "us-east-1",
                "Tags": {"Name": "bastion", "Count": 3},
                "Details": {"AwsEc2SecurityGroup": {"GroupName": "bastion-sg"}},
                "Future": true
            }, {"Type": "NoId"}]
        });
        let f = Finding::from_asff(v).unwrap();
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.control_id.unwrap().as_str(), "EC2.19");
        assert_eq!(f.compliance.status, Some(ComplianceStatus::Failed));
        assert_eq!(f.compliance.associated_standards.len(), 1);
        assert_eq!(
            f.compliance.status_reasons[0].code,
            "CONFIG_EVALUATIONS_EMPTY"
        );
        assert_eq!(f.workflow, WorkflowStatus::Notified);
        assert_eq!(f.record_state, RecordState::Archived);
        assert_eq!(
            f.remediation_url.as_deref(),
            Some("https://example.invalid/r")
        );
        assert_eq!(f.product_name.as_deref(), Some("Security Hub"));
        assert_eq!(f.note.as_ref().unwrap().text, "ticket 1");
        assert_eq!(
            f.updated_at.unwrap().to_rfc3339(),
            "2025-05-02T11:30:00+00:00"
        );
        assert_eq!(f.resources.len(), 1, "a resource without Id is skipped");
        let r = &f.resources[0];
        assert_eq!(r.resource_type, "AwsEc2SecurityGroup");
        assert_eq!(r.tags.get("Count").map(String::as_str), Some("3"));
        assert_eq!(r.name().as_deref(), Some("bastion"));
    }

    #[test]
    fn missing_required_fields_are_named() {
        for field in ["Id", "ProductArn", "AwsAccountId"] {
            let mut v = minimal();
            v.as_object_mut().unwrap().remove(field);
            let err = Finding::from_asff(v).unwrap_err();
            assert_eq!(err, FindingError::Missing(field));
            assert!(err.to_string().contains(field), "{err}");
        }
        let err = Finding::from_asff(json!([1])).unwrap_err();
        assert!(err.to_string().contains("an array"), "{err}");
    }

    #[test]
    fn bad_account_is_an_error() {
        let mut v = minimal();
        v["AwsAccountId"] = json!("12345");
        let err = Finding::from_asff(v).unwrap_err();
        assert!(err.to_string().contains("12 digits"), "{err}");
    }

    #[test]
    fn severity_falls_back_to_normalized() {
        let mut v = minimal();
        v["Severity"] = json!({"Normalized": 75});
        assert_eq!(Finding::from_asff(v).unwrap().severity, Severity::High);
        let mut v = minimal();
        v["Severity"] = json!({"Label": "bogus", "Normalized": 40});
        assert_eq!(Finding::from_asff(v).unwrap().severity, Severity::Medium);
    }

    #[test]
    fn control_id_fallbacks() {
        let mut v = minimal();
        v["ProductFields"] = json!({"ControlId": "IAM.7"});
        assert_eq!(
            Finding::from_asff(v).unwrap().control_id.unwrap().as_str(),
            "IAM.7"
        );

        let mut v = minimal();
        v["GeneratorId"] = json!("aws-foundational-security-best-practices/v/1.0.0/EC2.19");
        assert_eq!(
            Finding::from_asff(v).unwrap().control_id.unwrap().as_str(),
            "EC2.19"
        );

        let mut v = minimal();
        v["GeneratorId"] = json!("security-control/GuardDuty.1");
        assert_eq!(
            Finding::from_asff(v).unwrap().control_id.unwrap().as_str(),
            "GuardDuty.1"
        );

        // A CIS rule number is mapped to its consolidated control, and kept.
        let mut v = minimal();
        v["GeneratorId"] =
            json!("arn:aws:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0/rule/1.9");
        let f = Finding::from_asff(v).unwrap();
        assert_eq!(f.control_id.unwrap().as_str(), "IAM.15");
        assert_eq!(f.standard_control.unwrap().to_string(), "CIS 1.2.0 1.9");

        // A standard-specific id AWS does not map stays without a control.
        let mut v = minimal();
        v["GeneratorId"] =
            json!("arn:aws:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0/rule/9.99");
        assert!(Finding::from_asff(v).unwrap().control_id.is_none());

        // Other products' generator ids are not read as control ids.
        let v = json!({
            "Id": "x", "AwsAccountId": "123456789012",
            "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/guardduty",
            "GeneratorId": "arn:aws:guardduty:us-east-1:123456789012:detector/abc/S3.1"
        });
        assert!(Finding::from_asff(v).unwrap().control_id.is_none());

        // Old findings name the product only in ProductFields.
        let v = json!({
            "Id": "x", "AwsAccountId": "123456789012",
            "ProductArn": "arn:aws:securityhub:us-east-1::product/other/thing",
            "ProductFields": {"aws/securityhub/ProductName": "Security Hub"},
            "GeneratorId": "pci-dss/v/3.2.1/PCI.AutoScaling.1"
        });
        let f = Finding::from_asff(v).unwrap();
        assert_eq!(f.control_id.unwrap().as_str(), "AutoScaling.1");
        assert_eq!(
            f.standard_control.unwrap().to_string(),
            "PCI DSS 3.2.1 PCI.AutoScaling.1"
        );
        assert_eq!(f.product_name.as_deref(), Some("Security Hub"));
    }

    #[test]
    fn control_id_validation() {
        for ok in ["EC2.19", "GuardDuty.1", "S3.1", "ec2.7"] {
            assert!(ok.parse::<ControlId>().is_ok(), "{ok}");
        }
        for bad in [
            "", "EC2", "EC2.", ".19", "1.1", "EC2.x", "EC2.1.2", "PCI.S3.1", "E C2.1",
        ] {
            let err = bad.parse::<ControlId>().unwrap_err();
            assert!(err.to_string().contains("<SERVICE>.<N>"), "{err}");
        }
        let c: ControlId = "EC2.19".parse().unwrap();
        assert_eq!((c.service(), c.number()), ("EC2", 19));
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"EC2.19\"");
        assert!(serde_json::from_str::<ControlId>("\"nope\"").is_err());
    }

    #[test]
    fn account_id_validation() {
        assert!("111111111111".parse::<AccountId>().is_ok());
        let err = "11111111111a".parse::<AccountId>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "account id must be 12 digits, got \"11111111111a\""
        );
        assert!("1234567890123".parse::<AccountId>().is_err());
    }

    #[test]
    fn finding_ref_parsing() {
        assert_eq!("3".parse::<FindingRef>().unwrap(), FindingRef::Index(3));
        assert_eq!("#12".parse::<FindingRef>().unwrap(), FindingRef::Index(12));
        let arn = "arn:aws:securityhub:us-east-1:1:security-control/EC2.19/finding/x";
        assert_eq!(
            arn.parse::<FindingRef>().unwrap(),
            FindingRef::Id(arn.to_string())
        );
        assert_eq!(
            "0".parse::<FindingRef>().unwrap_err(),
            ParseFindingRefError::Zero("0".into())
        );
        assert!("".parse::<FindingRef>().is_err());
        assert!("two words".parse::<FindingRef>().is_err());
    }

    #[test]
    fn label_enums_parse_any_case() {
        assert_eq!(
            "not-available".parse::<ComplianceStatus>().unwrap(),
            ComplianceStatus::NotAvailable
        );
        assert_eq!(
            "resolved".parse::<WorkflowStatus>().unwrap(),
            WorkflowStatus::Resolved
        );
        let err = "done".parse::<WorkflowStatus>().unwrap_err().to_string();
        assert!(err.contains("NEW, NOTIFIED, RESOLVED, SUPPRESSED"), "{err}");
        assert_eq!(
            serde_json::to_string(&ComplianceStatus::NotAvailable).unwrap(),
            "\"NOT_AVAILABLE\""
        );
    }

    fn finding(
        sev: Severity,
        control: &str,
        compliance: &str,
        workflow: &str,
        account: &str,
        region: &str,
    ) -> Finding {
        Finding::from_asff(json!({
            "Id": format!("id-{control}-{account}-{region}-{compliance}-{workflow}"),
            "ProductArn": format!("arn:aws:securityhub:{region}::product/aws/securityhub"),
            "ProductName": "Security Hub",
            "AwsAccountId": account,
            "Region": region,
            "Severity": {"Label": sev.label()},
            "Title": format!("Title of {control}"),
            "Compliance": {"Status": compliance, "SecurityControlId": control},
            "Workflow": {"Status": workflow},
            "RecordState": "ACTIVE",
            "Resources": [{"Type": "AwsEc2SecurityGroup", "Id": "sg"}]
        }))
        .unwrap()
    }

    #[test]
    fn default_filter_shows_open_failed_findings_only() {
        let filter = FindingFilter::default();
        let a = "111111111111";
        let r = "us-east-1";
        assert!(filter.matches(&finding(Severity::High, "EC2.13", "FAILED", "NEW", a, r)));
        assert!(filter.matches(&finding(
            Severity::High,
            "EC2.13",
            "FAILED",
            "NOTIFIED",
            a,
            r
        )));
        assert!(!filter.matches(&finding(
            Severity::High,
            "EC2.13",
            "PASSED",
            "RESOLVED",
            a,
            r
        )));
        assert!(!filter.matches(&finding(
            Severity::High,
            "EC2.13",
            "FAILED",
            "RESOLVED",
            a,
            r
        )));
        assert!(!filter.matches(&finding(
            Severity::High,
            "EC2.13",
            "FAILED",
            "SUPPRESSED",
            a,
            r
        )));
        let mut archived = finding(Severity::High, "EC2.13", "FAILED", "NEW", a, r);
        archived.record_state = RecordState::Archived;
        assert!(!filter.matches(&archived));
        assert!(FindingFilter::everything().matches(&archived));
    }

    #[test]
    fn filter_criteria() {
        let f = finding(
            Severity::Critical,
            "EC2.19",
            "FAILED",
            "NEW",
            "222222222222",
            "ap-northeast-1",
        );
        let base = FindingFilter::default();
        let with = |g: fn(&mut FindingFilter)| {
            let mut x = base.clone();
            g(&mut x);
            x.matches(&f)
        };
        assert!(with(
            |x| x.severities = vec![Severity::Critical, Severity::High]
        ));
        assert!(!with(|x| x.severities = vec![Severity::High]));
        assert!(with(|x| x.control_ids = vec!["ec2.19".parse().unwrap()]));
        assert!(!with(|x| x.control_ids = vec!["EC2.13".parse().unwrap()]));
        assert!(with(|x| x.accounts = vec!["222222222222".parse().unwrap()]));
        assert!(!with(|x| x.accounts = vec!["111111111111".parse().unwrap()]));
        assert!(with(|x| x.regions = vec!["AP-NORTHEAST-1".into()]));
        assert!(!with(|x| x.regions = vec!["us-east-1".into()]));
        assert!(with(
            |x| x.resource_types = vec!["awsec2securitygroup".into()]
        ));
        assert!(!with(|x| x.resource_types = vec!["AwsAccount".into()]));
        assert!(with(|x| x.title_contains = Some("title OF ec2".into())));
        assert!(!with(|x| x.title_contains = Some("kms".into())));
        assert!(with(|x| x.product = Some("security hub".into())));
        assert!(!with(|x| x.product = Some("guardduty".into())));
        assert!(with(
            |x| x.ids = vec!["id-EC2.19-222222222222-ap-northeast-1-FAILED-NEW".into()]
        ));
        assert!(!with(|x| x.ids = vec!["other".into()]));
    }

    #[test]
    fn describe_says_the_defaults() {
        let d = FindingFilter::default().describe();
        assert_eq!(
            d,
            "any severity; compliance FAILED (default); workflow NEW or NOTIFIED (default); \
             record state ACTIVE (default); all accounts; all regions"
        );
        let f = FindingFilter {
            severities: vec![Severity::Critical, Severity::High],
            limit: Some(5),
            ..FindingFilter::default()
        };
        assert!(f.describe().starts_with("severity CRITICAL or HIGH;"));
        assert!(f.describe().ends_with("at most 5"));
        assert!(
            FindingFilter::everything()
                .describe()
                .contains("any workflow status")
        );
    }

    #[test]
    fn finding_serde_round_trip() {
        let f = finding(
            Severity::Low,
            "IAM.16",
            "FAILED",
            "NEW",
            "111111111111",
            "us-east-1",
        );
        let s = serde_json::to_string(&f).unwrap();
        let back: Finding = serde_json::from_str(&s).unwrap();
        assert_eq!(back, f);
    }
}
