//! Settings: one typed value per key, each remembering where it came from.
//!
//! Precedence: a session override (`%config key=value`) beats the environment
//! (`RUNBOOK_<KEY>`), which beats the built-in default.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Serialize;

/// The model used when nothing else is configured (the workshop's).
pub const DEFAULT_MODEL: &str = "global.anthropic.claude-sonnet-4-6";
/// The `model` value that selects the built-in remediation catalog instead of a model.
pub const CATALOG_MODEL: &str = "catalog";
pub const MAX_TOOL_ROUNDS_LIMIT: u32 = 100;
/// The most tokens a model may be asked to write in one answer.
pub const MAX_TOKENS_LIMIT: u32 = 64_000;
pub const DEFAULT_MAX_TOKENS: u32 = 2048;
const DEFAULT_MAX_TOOL_ROUNDS: u32 = 8;
/// The role the security account assumes in a member account (iam/member-role.yaml).
pub const DEFAULT_MEMBER_ROLE: &str = "SecurityRunbookMember";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingKey {
    Backend,
    Region,
    Profile,
    Model,
    Lang,
    Kb,
    Approval,
    MaxToolRounds,
    MaxTokens,
    AuditLog,
    AuditSink,
    MemberRole,
    ExternalId,
    Identity,
    FindingsApi,
}

impl SettingKey {
    pub const ALL: [SettingKey; 15] = [
        SettingKey::Backend,
        SettingKey::Region,
        SettingKey::Profile,
        SettingKey::Model,
        SettingKey::Lang,
        SettingKey::Kb,
        SettingKey::Approval,
        SettingKey::MaxToolRounds,
        SettingKey::MaxTokens,
        SettingKey::AuditLog,
        SettingKey::AuditSink,
        SettingKey::MemberRole,
        SettingKey::ExternalId,
        SettingKey::Identity,
        SettingKey::FindingsApi,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SettingKey::Backend => "backend",
            SettingKey::Region => "region",
            SettingKey::Profile => "profile",
            SettingKey::Model => "model",
            SettingKey::Lang => "lang",
            SettingKey::Kb => "kb",
            SettingKey::Approval => "approval",
            SettingKey::MaxToolRounds => "max_tool_rounds",
            SettingKey::MaxTokens => "max_tokens",
            SettingKey::AuditLog => "audit_log",
            SettingKey::AuditSink => "audit_sink",
            SettingKey::MemberRole => "member_role",
            SettingKey::ExternalId => "external_id",
            SettingKey::Identity => "identity",
            SettingKey::FindingsApi => "findings_api",
        }
    }

    /// The environment variable behind this key, e.g. `RUNBOOK_MAX_TOOL_ROUNDS`.
    pub fn env_var(self) -> String {
        format!("RUNBOOK_{}", self.name().to_ascii_uppercase())
    }

    pub fn description(self) -> &'static str {
        match self {
            SettingKey::Backend => "where findings come from and actions go",
            SettingKey::Region => "AWS region (default: the credential chain's region)",
            SettingKey::Profile => "AWS shared-config profile (default: the credential chain's)",
            SettingKey::Model => "Bedrock model id, or `catalog` for the built-in catalog",
            SettingKey::Lang => "language of explanations, plans and finding notes",
            SettingKey::Kb => "knowledge base: a Bedrock Knowledge Base id or a local folder",
            SettingKey::Approval => "whether `--yes` may stand in for typing the plan id",
            SettingKey::MaxToolRounds => "tool rounds allowed per %ask question",
            SettingKey::MaxTokens => "the most tokens a model may write in one answer",
            SettingKey::AuditLog => "path of the append-only JSON Lines audit trail",
            SettingKey::AuditSink => {
                "a second, off-machine copy of every audit record (default: none)"
            }
            SettingKey::MemberRole => {
                "the role assumed in a member account to act there (default: SecurityRunbookMember)"
            }
            SettingKey::ExternalId => {
                "the external id the member role's trust policy requires (default: none)"
            }
            SettingKey::Identity => {
                "who you are in the sandbox, for the audit and the two-person rule (on AWS the STS caller is used)"
            }
            SettingKey::FindingsApi => {
                "which Security Hub findings are read from: CSPM (ASFF, GetFindings), the new Security Hub (OCSF, GetFindingsV2), or auto: v2 where it is enabled"
            }
        }
    }

    /// What the key accepts, in words, for help and error messages.
    pub fn accepted(self) -> String {
        match self {
            SettingKey::Backend => "sandbox, aws or auto".into(),
            SettingKey::Region => "an AWS region such as us-east-1 or ap-northeast-1".into(),
            SettingKey::Profile => "a profile name from ~/.aws/config".into(),
            SettingKey::Model => {
                format!("a Bedrock model or inference profile id, or {CATALOG_MODEL}")
            }
            SettingKey::Lang => "en or ja".into(),
            SettingKey::Kb => {
                "a Bedrock Knowledge Base id (10 upper-case letters or digits) or a folder path"
                    .into()
            }
            SettingKey::Approval => "interactive, allow-yes or two-person".into(),
            SettingKey::MaxToolRounds => {
                format!("a whole number from 1 to {MAX_TOOL_ROUNDS_LIMIT}")
            }
            SettingKey::MaxTokens => format!("a whole number from 1 to {MAX_TOKENS_LIMIT}"),
            SettingKey::AuditLog => "a file path".into(),
            SettingKey::AuditSink => {
                "none, or cloudwatch:LOG_GROUP (a CloudWatch Logs group name: 1-512 of A-Z a-z 0-9 . - _ / #)"
                    .into()
            }
            SettingKey::MemberRole => {
                "an IAM role name: 1-64 of A-Z a-z 0-9 + = , . @ _ - (a path may precede it, as in ops/Runbook)"
                    .into()
            }
            SettingKey::ExternalId => {
                "none, or 2-1224 of A-Z a-z 0-9 + = , . @ : / _ - (STS's ExternalId)".into()
            }
            SettingKey::Identity => "a name: 1-64 of A-Z a-z 0-9 + = , . @ _ -".into(),
            SettingKey::FindingsApi => "cspm, v2 or auto".into(),
        }
    }

    /// The fixed values a key can take, for completion; empty when free-form.
    pub fn choices(self) -> &'static [&'static str] {
        match self {
            SettingKey::Backend => &["sandbox", "aws", "auto"],
            SettingKey::Lang => &["en", "ja"],
            SettingKey::Approval => &["interactive", "allow-yes", "two-person"],
            SettingKey::FindingsApi => &["cspm", "v2", "auto"],
            SettingKey::Model => &[DEFAULT_MODEL, CATALOG_MODEL],
            SettingKey::Region => &[
                "us-east-1",
                "us-east-2",
                "us-west-2",
                "eu-west-1",
                "eu-central-1",
                "ap-northeast-1",
                "ap-southeast-1",
            ],
            _ => &[],
        }
    }
}

impl fmt::Display for SettingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SettingKey {
    type Err = SettingsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        SettingKey::ALL
            .into_iter()
            .find(|k| k.name() == wanted)
            .ok_or_else(|| SettingsError::UnknownKey(s.to_string()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendChoice {
    Sandbox,
    Aws,
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    En,
    Ja,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }
}

impl FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "en" => Ok(Lang::En),
            "ja" => Ok(Lang::Ja),
            other => Err(format!("unknown language '{other}'; accepted: en, ja")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalMode {
    /// The plan id must be typed; `--yes` is refused.
    Interactive,
    /// `--yes` on the line approves when the frontend has no stdin.
    AllowYes,
    /// As interactive, and the approver must not be who proposed the plan.
    TwoPerson,
}

/// Which Security Hub API findings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FindingsApi {
    /// Security Hub CSPM: ASFF through GetFindings and BatchUpdateFindings.
    Cspm,
    /// The new Security Hub: OCSF through GetFindingsV2 and BatchUpdateFindingsV2.
    V2,
    /// v2 where DescribeSecurityHubV2 says it is enabled, else CSPM.
    #[default]
    Auto,
}

impl FindingsApi {
    pub fn name(self) -> &'static str {
        match self {
            FindingsApi::Cspm => "cspm",
            FindingsApi::V2 => "v2",
            FindingsApi::Auto => "auto",
        }
    }
}

/// Where a setting's current value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Default,
    Env,
    Session,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Default => "default",
            Source::Env => "env",
            Source::Session => "session",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("unknown setting '{0}'; known settings: {known}", known = known_keys())]
    UnknownKey(String),
    #[error("invalid value '{value}' for {key}: accepted: {accepted}", accepted = key.accepted())]
    InvalidValue { key: SettingKey, value: String },
    #[error("expected key=value, got '{0}'; example: %config lang=ja")]
    NotAssignment(String),
}

fn known_keys() -> String {
    SettingKey::ALL
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One row of the settings table.
#[derive(Debug, Clone, Serialize)]
pub struct SettingEntry {
    pub key: SettingKey,
    pub value: String,
    pub source: Source,
    pub env_var: String,
    pub accepted: String,
    pub description: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub backend: BackendChoice,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub model: String,
    pub lang: Lang,
    pub kb: Option<String>,
    pub approval: ApprovalMode,
    pub max_tool_rounds: u32,
    pub max_tokens: u32,
    pub audit_log: PathBuf,
    pub audit_sink: Option<AuditSinkSpec>,
    /// The role, by name (with its path, if any), assumed in a member account.
    pub member_role: String,
    pub external_id: Option<String>,
    /// The sandbox's name for who is acting (the audit's actor).
    pub identity: Option<String>,
    pub findings_api: FindingsApi,
    env: Vec<(SettingKey, String)>,
    sources: Vec<(SettingKey, Source)>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            backend: BackendChoice::Auto,
            region: None,
            profile: None,
            model: DEFAULT_MODEL.to_string(),
            lang: Lang::En,
            kb: None,
            approval: ApprovalMode::AllowYes,
            max_tool_rounds: DEFAULT_MAX_TOOL_ROUNDS,
            max_tokens: DEFAULT_MAX_TOKENS,
            audit_log: default_audit_log(),
            audit_sink: None,
            member_role: DEFAULT_MEMBER_ROLE.to_string(),
            external_id: None,
            identity: None,
            findings_api: FindingsApi::Auto,
            env: Vec::new(),
            sources: Vec::new(),
        }
    }
}

/// Where audit records are copied besides the local file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSinkSpec {
    /// CloudWatch Logs: one log stream per kernel session in this group.
    CloudWatch { log_group: String },
}

impl AuditSinkSpec {
    /// `none` or empty is no sink; `cloudwatch:LOG_GROUP` names a log group.
    pub fn parse(value: &str) -> Result<Option<AuditSinkSpec>, SettingsError> {
        let invalid = |_reason: &str| SettingsError::InvalidValue {
            key: SettingKey::AuditSink,
            value: value.to_string(),
        };
        if value.is_empty() || value.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        let Some((kind, group)) = value.split_once(':') else {
            return Err(invalid("no sink kind before ':'"));
        };
        if !kind.eq_ignore_ascii_case("cloudwatch") {
            return Err(invalid("the only sink kind is cloudwatch"));
        }
        if group.is_empty()
            || group.len() > 512
            || !group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/#".contains(c))
        {
            return Err(invalid("not a CloudWatch Logs group name"));
        }
        Ok(Some(AuditSinkSpec::CloudWatch {
            log_group: group.to_string(),
        }))
    }
}

impl fmt::Display for AuditSinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditSinkSpec::CloudWatch { log_group } => write!(f, "cloudwatch:{log_group}"),
        }
    }
}

/// `<data dir>/security-runbook/audit.jsonl`, or the working directory when there is no data dir.
pub fn default_audit_log() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("security-runbook")
        .join("audit.jsonl")
}

impl Settings {
    /// Defaults overridden by `RUNBOOK_<KEY>` variables read through `lookup`.
    /// Invalid environment values are skipped and reported, so a typo in the
    /// environment cannot stop the kernel from starting.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> (Settings, Vec<SettingsError>) {
        let mut settings = Settings::default();
        let mut problems = Vec::new();
        for key in SettingKey::ALL {
            let Some(value) = lookup(&key.env_var()) else {
                continue;
            };
            if value.trim().is_empty() {
                continue;
            }
            match settings.apply(key, &value) {
                Ok(()) => {
                    settings.env.push((key, value));
                    settings.set_source(key, Source::Env);
                }
                Err(e) => problems.push(e),
            }
        }
        (settings, problems)
    }

    pub fn from_process_env() -> (Settings, Vec<SettingsError>) {
        Settings::from_env(|name| std::env::var(name).ok())
    }

    pub fn source(&self, key: SettingKey) -> Source {
        self.sources
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(Source::Default, |(_, s)| *s)
    }

    fn set_source(&mut self, key: SettingKey, source: Source) {
        self.sources.retain(|(k, _)| *k != key);
        if source != Source::Default {
            self.sources.push((key, source));
        }
    }

    /// Sets `key` for this session. An empty value drops the session override,
    /// going back to the environment's value or the default.
    pub fn set(&mut self, key: SettingKey, value: &str) -> Result<(), SettingsError> {
        if value.trim().is_empty() {
            self.reset(key);
            return Ok(());
        }
        self.apply(key, value)?;
        self.set_source(key, Source::Session);
        Ok(())
    }

    /// Parses `key=value` and sets it.
    pub fn set_assignment(&mut self, assignment: &str) -> Result<SettingKey, SettingsError> {
        let (key, value) = assignment
            .split_once('=')
            .ok_or_else(|| SettingsError::NotAssignment(assignment.to_string()))?;
        let key: SettingKey = key.parse()?;
        self.set(key, value)?;
        Ok(key)
    }

    fn reset(&mut self, key: SettingKey) {
        let defaults = Settings::default();
        let env_value = self
            .env
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone());
        self.copy_from(&defaults, key);
        self.set_source(key, Source::Default);
        if let Some(value) = env_value
            && self.apply(key, &value).is_ok()
        {
            self.set_source(key, Source::Env);
        }
    }

    fn copy_from(&mut self, other: &Settings, key: SettingKey) {
        match key {
            SettingKey::Backend => self.backend = other.backend,
            SettingKey::Region => self.region.clone_from(&other.region),
            SettingKey::Profile => self.profile.clone_from(&other.profile),
            SettingKey::Model => self.model.clone_from(&other.model),
            SettingKey::Lang => self.lang = other.lang,
            SettingKey::Kb => self.kb.clone_from(&other.kb),
            SettingKey::Approval => self.approval = other.approval,
            SettingKey::MaxToolRounds => self.max_tool_rounds = other.max_tool_rounds,
            SettingKey::MaxTokens => self.max_tokens = other.max_tokens,
            SettingKey::AuditLog => self.audit_log.clone_from(&other.audit_log),
            SettingKey::AuditSink => self.audit_sink.clone_from(&other.audit_sink),
            SettingKey::MemberRole => self.member_role.clone_from(&other.member_role),
            SettingKey::ExternalId => self.external_id.clone_from(&other.external_id),
            SettingKey::Identity => self.identity.clone_from(&other.identity),
            SettingKey::FindingsApi => self.findings_api = other.findings_api,
        }
    }

    fn apply(&mut self, key: SettingKey, raw: &str) -> Result<(), SettingsError> {
        let value = raw.trim();
        let invalid = || SettingsError::InvalidValue {
            key,
            value: raw.to_string(),
        };
        match key {
            SettingKey::Backend => {
                self.backend = match value.to_ascii_lowercase().as_str() {
                    "sandbox" => BackendChoice::Sandbox,
                    "aws" => BackendChoice::Aws,
                    "auto" => BackendChoice::Auto,
                    _ => return Err(invalid()),
                }
            }
            SettingKey::Region => {
                if !is_region(value) {
                    return Err(invalid());
                }
                self.region = Some(value.to_string());
            }
            SettingKey::Profile => {
                if !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.@+".contains(c))
                    || value.len() > 128
                {
                    return Err(invalid());
                }
                self.profile = Some(value.to_string());
            }
            SettingKey::Model => {
                if value.len() > 256
                    || !value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
                {
                    return Err(invalid());
                }
                self.model = value.to_string();
            }
            SettingKey::Lang => self.lang = value.parse().map_err(|_| invalid())?,
            SettingKey::Kb => {
                if value.contains('\0') {
                    return Err(invalid());
                }
                self.kb = Some(value.to_string());
            }
            SettingKey::Approval => {
                self.approval = match value.to_ascii_lowercase().as_str() {
                    "interactive" => ApprovalMode::Interactive,
                    "allow-yes" | "allow_yes" => ApprovalMode::AllowYes,
                    "two-person" | "two_person" => ApprovalMode::TwoPerson,
                    _ => return Err(invalid()),
                }
            }
            SettingKey::MaxToolRounds => {
                let n: u32 = value.parse().map_err(|_| invalid())?;
                if !(1..=MAX_TOOL_ROUNDS_LIMIT).contains(&n) {
                    return Err(invalid());
                }
                self.max_tool_rounds = n;
            }
            SettingKey::MaxTokens => {
                let n: u32 = value.parse().map_err(|_| invalid())?;
                if !(1..=MAX_TOKENS_LIMIT).contains(&n) {
                    return Err(invalid());
                }
                self.max_tokens = n;
            }
            SettingKey::AuditLog => {
                if value.contains('\0') {
                    return Err(invalid());
                }
                self.audit_log = PathBuf::from(value);
            }
            SettingKey::AuditSink => self.audit_sink = AuditSinkSpec::parse(value)?,
            SettingKey::MemberRole => {
                if !is_role_name(value) {
                    return Err(invalid());
                }
                self.member_role = value.trim_matches('/').to_string();
            }
            SettingKey::ExternalId => {
                if value.eq_ignore_ascii_case("none") {
                    self.external_id = None;
                } else if (2..=1224).contains(&value.len())
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/_-".contains(c))
                {
                    self.external_id = Some(value.to_string());
                } else {
                    return Err(invalid());
                }
            }
            SettingKey::Identity => {
                if value.is_empty()
                    || value.len() > 64
                    || !value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
                {
                    return Err(invalid());
                }
                self.identity = Some(value.to_string());
            }
            SettingKey::FindingsApi => {
                self.findings_api = match value.to_ascii_lowercase().as_str() {
                    "cspm" => FindingsApi::Cspm,
                    "v2" => FindingsApi::V2,
                    "auto" => FindingsApi::Auto,
                    _ => return Err(invalid()),
                }
            }
        }
        Ok(())
    }

    /// The current value of `key` as text.
    pub fn value(&self, key: SettingKey) -> String {
        match key {
            SettingKey::Backend => match self.backend {
                BackendChoice::Sandbox => "sandbox",
                BackendChoice::Aws => "aws",
                BackendChoice::Auto => "auto",
            }
            .to_string(),
            SettingKey::Region => self.region.clone().unwrap_or_default(),
            SettingKey::Profile => self.profile.clone().unwrap_or_default(),
            SettingKey::Model => self.model.clone(),
            SettingKey::Lang => self.lang.code().to_string(),
            SettingKey::Kb => self.kb.clone().unwrap_or_default(),
            SettingKey::Approval => match self.approval {
                ApprovalMode::Interactive => "interactive",
                ApprovalMode::AllowYes => "allow-yes",
                ApprovalMode::TwoPerson => "two-person",
            }
            .to_string(),
            SettingKey::MaxToolRounds => self.max_tool_rounds.to_string(),
            SettingKey::MaxTokens => self.max_tokens.to_string(),
            SettingKey::AuditLog => self.audit_log.display().to_string(),
            SettingKey::AuditSink => self
                .audit_sink
                .as_ref()
                .map_or_else(|| "none".to_string(), ToString::to_string),
            SettingKey::MemberRole => self.member_role.clone(),
            SettingKey::ExternalId => self
                .external_id
                .clone()
                .unwrap_or_else(|| "none".to_string()),
            SettingKey::Identity => self.identity.clone().unwrap_or_default(),
            SettingKey::FindingsApi => self.findings_api.name().to_string(),
        }
    }

    pub fn entry(&self, key: SettingKey) -> SettingEntry {
        SettingEntry {
            key,
            value: self.value(key),
            source: self.source(key),
            env_var: key.env_var(),
            accepted: key.accepted(),
            description: key.description(),
        }
    }

    pub fn entries(&self) -> Vec<SettingEntry> {
        SettingKey::ALL.iter().map(|k| self.entry(*k)).collect()
    }
}

/// `us-east-1`, `ap-northeast-1`, `us-gov-west-1`, `cn-north-1`, ...
pub fn is_region(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 4
        && parts[0].len() == 2
        && parts.iter().all(|p| !p.is_empty())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
}

/// An IAM role name (1-64 of `[\w+=,.@-]`), optionally after a path of such
/// segments (`ops/Runbook`), as it goes into a role ARN.
pub fn is_role_name(value: &str) -> bool {
    let value = value.trim_matches('/');
    let mut segments = value.split('/');
    let name = segments.next_back().unwrap_or_default();
    let fits = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
    };
    fits(name, 64) && segments.all(|s| fits(s, 512)) && value.len() <= 512
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn defaults_have_default_source() {
        let (s, problems) = Settings::from_env(env(&[]));
        assert!(problems.is_empty());
        assert_eq!(s.backend, BackendChoice::Auto);
        assert_eq!(s.source(SettingKey::Backend), Source::Default);
        assert_eq!(s.max_tool_rounds, 8);
        assert_eq!(s.model, DEFAULT_MODEL);
    }

    #[test]
    fn env_overrides_default_and_session_overrides_env() {
        let (mut s, _) = Settings::from_env(env(&[("RUNBOOK_LANG", "ja")]));
        assert_eq!(s.lang, Lang::Ja);
        assert_eq!(s.source(SettingKey::Lang), Source::Env);
        s.set(SettingKey::Lang, "en").unwrap();
        assert_eq!(s.lang, Lang::En);
        assert_eq!(s.source(SettingKey::Lang), Source::Session);
        // An empty value drops the session override and the env value returns.
        s.set(SettingKey::Lang, "").unwrap();
        assert_eq!(s.lang, Lang::Ja);
        assert_eq!(s.source(SettingKey::Lang), Source::Env);
    }

    #[test]
    fn invalid_env_is_reported_not_fatal() {
        let (s, problems) = Settings::from_env(env(&[("RUNBOOK_BACKEND", "cloud")]));
        assert_eq!(s.backend, BackendChoice::Auto);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].to_string().contains("sandbox, aws or auto"));
    }

    #[test]
    fn bad_values_name_what_is_accepted() {
        let mut s = Settings::default();
        let err = s.set_assignment("max_tool_rounds=0").unwrap_err();
        assert!(err.to_string().contains("1 to 100"), "{err}");
        let err = s.set_assignment("region=<script>").unwrap_err();
        assert!(err.to_string().contains("us-east-1"), "{err}");
        let err = s.set_assignment("colour=blue").unwrap_err();
        assert!(err.to_string().contains("backend, region"), "{err}");
        let err = s.set_assignment("lang").unwrap_err();
        assert!(matches!(err, SettingsError::NotAssignment(_)));
        assert_eq!(s, Settings::default(), "failed sets change nothing");
    }

    #[test]
    fn regions() {
        for ok in ["us-east-1", "ap-northeast-1", "us-gov-west-1", "cn-north-1"] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us-east-1a",
            "useast1",
            "u-east-1",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn key_names_round_trip() {
        for key in SettingKey::ALL {
            assert_eq!(key.name().parse::<SettingKey>().unwrap(), key);
        }
        assert_eq!(
            "max-tool-rounds".parse::<SettingKey>().unwrap(),
            SettingKey::MaxToolRounds
        );
    }
}
