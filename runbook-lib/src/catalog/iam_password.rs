//! IAM.7 and IAM.11 to IAM.17: the account password policy. UpdateAccountPasswordPolicy
//! resets every parameter it is not given, so plans send the full merged policy:
//! the current one with only what the control requires changed.

use std::fmt::Write as _;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    About, Action, ApiCall, Applied, AutomationSteps, PropertyCheck, CatalogError, Family, FamilyPlan, PlanRejection, PlanRequest, PolicyCitation,
    PolicyValues, Precheck, Step, ToolSpec, check_fields, py_value, python_call,
    require_account_resource, shell_quote, to_json,
};
use crate::cloud::sandbox::controls::{
    CIS_12, CIS_14, ControlDef, Evaluation, NIST, PCI, account_resource,
};
use crate::cloud::sandbox::{AccountState, OrgState};
use crate::cloud::{Cloud, CloudError, Target};
use crate::finding::{ControlId, Finding};
use crate::resources::PasswordPolicy;
use crate::settings::Lang;

crate::control!(
    IAM_7,
    "IAM.7",
    Medium,
    "iam-password-policy",
    [NIST],
    "Password policies for IAM users should have strong configurations",
    "This control checks whether the account password policy for IAM users uses strong configurations: uppercase letters, lowercase letters, numbers and symbols required, a minimum length of 8, at least 24 remembered passwords and a maximum age of 90 days. The control fails if the password policy doesn't meet all of them."
);

crate::control!(
    IAM_11,
    "IAM.11",
    Medium,
    "iam-password-policy-uppercase-check",
    [CIS_12],
    "Ensure IAM password policy requires at least one uppercase letter",
    "This control checks whether the account password policy for IAM users requires at least one uppercase letter. The control fails if the policy doesn't require it."
);

crate::control!(
    IAM_12,
    "IAM.12",
    Medium,
    "iam-password-policy-lowercase-check",
    [CIS_12],
    "Ensure IAM password policy requires at least one lowercase letter",
    "This control checks whether the account password policy for IAM users requires at least one lowercase letter. The control fails if the policy doesn't require it."
);

crate::control!(
    IAM_13,
    "IAM.13",
    Medium,
    "iam-password-policy-symbol-check",
    [CIS_12],
    "Ensure IAM password policy requires at least one symbol",
    "This control checks whether the account password policy for IAM users requires at least one symbol. The control fails if the policy doesn't require it."
);

crate::control!(
    IAM_14,
    "IAM.14",
    Medium,
    "iam-password-policy-number-check",
    [CIS_12],
    "Ensure IAM password policy requires at least one number",
    "This control checks whether the account password policy for IAM users requires at least one number. The control fails if the policy doesn't require it."
);

crate::control!(
    IAM_15,
    "IAM.15",
    Medium,
    "iam-password-policy-minimum-length-check",
    [CIS_12, CIS_14],
    "Ensure IAM password policy requires minimum password length of 14 or greater",
    "This control checks whether the account password policy for IAM users requires passwords of at least 14 characters. The control fails if the minimum length is less than 14."
);

crate::control!(
    IAM_16,
    "IAM.16",
    Low,
    "iam-password-policy-prevent-reuse-check",
    [CIS_12, CIS_14, PCI],
    "Ensure IAM password policy prevents password reuse",
    "This control checks whether the account password policy for IAM users remembers at least 24 previous passwords. The control fails if password reuse prevention is not set or is less than 24."
);

crate::control!(
    IAM_17,
    "IAM.17",
    Low,
    "iam-password-policy-expiration-check",
    [CIS_12],
    "Ensure IAM password policy expires passwords within 90 days or less",
    "This control checks whether the account password policy for IAM users expires passwords within 90 days or less. The control fails if passwords never expire or expire after more than 90 days."
);


const ABOUT: About = About {
    name: "iam_password_policy",
    controls: &[
            &IAM_7, &IAM_11, &IAM_12, &IAM_13, &IAM_14, &IAM_15, &IAM_16, &IAM_17,
        ],
    title_en: "Weak IAM account password policy",
    title_ja: "IAM アカウントのパスワードポリシーが弱い",
};

/// IAM.7, IAM.11 to IAM.17.
pub struct PasswordPolicyStrength;

#[async_trait]
impl Family for PasswordPolicyStrength {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn tools(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            step: "SetPasswordPolicy",
            description: "IAM.7, IAM.11-IAM.17: change only the password policy settings the control requires; every other setting keeps its current value.",
            properties: json!({
                "minimum_password_length": {"type": "integer", "minimum": 14, "maximum": 128},
                "require_symbols": {"type": "boolean"},
                "require_numbers": {"type": "boolean"},
                "require_uppercase_characters": {"type": "boolean"},
                "require_lowercase_characters": {"type": "boolean"},
                "password_reuse_prevention": {"type": "integer", "minimum": 24, "maximum": 24},
                "max_password_age": {"type": "integer", "minimum": 1, "maximum": 90}
            }),
            required: &[],
        }]
    }

    async fn plan(&self, req: &PlanRequest<'_>) -> Result<FamilyPlan, CatalogError> {
        plan(req.control, req.cloud, &req.at, req.lang, req.policy).await
    }

    async fn step_from_model(
        &self,
        step: &str,
        input: &Map<String, Value>,
        req: &PlanRequest<'_>,
    ) -> Result<(Action, Vec<PolicyCitation>), CatalogError> {
        check_fields(input, step, MODEL_FIELDS)?;
        require_account_resource(req.finding)?;
        let previous = req.cloud.password_policy(&req.at).await?;
        let planned = overlay(previous.as_ref(), input)?;
        let citations =
            check_against_policy(&planned, previous.as_ref(), req.control, req.policy, req.lang)?;
        let action = SetPasswordPolicy {
            policy: planned,
            previous,
        };
        Ok((action.into(), citations))
    }

    fn validate(
        &self,
        action: &Action,
        control: &ControlId,
        finding: &Finding,
    ) -> Result<(), PlanRejection> {
        require_account_resource(finding)?;
        match action {
            Action::SetPasswordPolicy(a) => validate_policy(&a.policy, a.previous.as_ref(), control),
            _ => Ok(()),
        }
    }

    fn explain(
        &self,
        finding: &Finding,
        control: &str,
        lang: Lang,
    ) -> (String, String, Vec<String>) {
        explain(finding, control, lang)
    }

    fn policy_parameters(&self, control: &str) -> Option<Vec<&'static str>> {
        Some(governed(control).iter().map(|f| f.parameter()).collect())
    }

    fn examples(&self) -> Vec<Action> {
        let policy = PasswordPolicy::strong();
        vec![
            SetPasswordPolicy {
                policy,
                previous: None,
            }
            .into(),
            DeletePasswordPolicy {}.into(),
        ]
    }

    fn evaluate(&self, state: &OrgState) -> Vec<Evaluation> {
        let mut out = Vec::new();
        for acct in &state.accounts {
            for (control, passed, reason) in password_checks(acct) {
                out.push(Evaluation::of(
                    control,
                    &acct.id,
                    &state.home_region,
                    account_resource(&acct.id, &state.home_region),
                    passed,
                    reason,
                ));
            }
        }
        out
    }
}

// How the sandbox evaluates the controls on one account's policy.

fn password_checks(acct: &AccountState) -> Vec<(&'static ControlDef, bool, String)> {
    let Some(p) = &acct.password_policy else {
        let why = "the account has no custom password policy".to_string();
        return [
            &IAM_7, &IAM_11, &IAM_12, &IAM_13, &IAM_14, &IAM_15, &IAM_16, &IAM_17,
        ]
        .into_iter()
        .map(|c| (c, false, why.clone()))
        .collect();
    };
    let reuse = p.password_reuse_prevention.unwrap_or(0);
    let age_ok = p.max_password_age.is_some_and(|d| d <= 90);
    let flag = |ok: bool, what: &str| {
        let verb = if ok { "requires" } else { "does not require" };
        (ok, format!("the policy {verb} {what}"))
    };
    let strong = p.require_uppercase_characters
        && p.require_lowercase_characters
        && p.require_numbers
        && p.require_symbols
        && p.minimum_password_length >= 8
        && reuse >= 24
        && age_ok;
    let (u, ur) = flag(p.require_uppercase_characters, "an uppercase letter");
    let (l, lr) = flag(p.require_lowercase_characters, "a lowercase letter");
    let (s, sr) = flag(p.require_symbols, "a symbol");
    let (n, nr) = flag(p.require_numbers, "a number");
    vec![
        (
            &IAM_7,
            strong,
            format!(
                "minimum length {}, symbols {}, numbers {}, uppercase {}, lowercase {}, reuse prevention {}, maximum age {}",
                p.minimum_password_length,
                p.require_symbols,
                p.require_numbers,
                p.require_uppercase_characters,
                p.require_lowercase_characters,
                reuse,
                p.max_password_age
                    .map_or("none".to_string(), |d| format!("{d} days"))
            ),
        ),
        (&IAM_11, u, ur),
        (&IAM_12, l, lr),
        (&IAM_13, s, sr),
        (&IAM_14, n, nr),
        (
            &IAM_15,
            p.minimum_password_length >= 14,
            format!("minimum password length is {}", p.minimum_password_length),
        ),
        (
            &IAM_16,
            reuse >= 24,
            format!("{reuse} previous passwords are remembered"),
        ),
        (
            &IAM_17,
            age_ok,
            p.max_password_age
                .map_or("passwords never expire".to_string(), |d| {
                    format!("passwords expire after {d} days")
                }),
        ),
    ]
}


/// The full merged policy (UpdateAccountPasswordPolicy resets what it is not given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetPasswordPolicy {
    pub policy: PasswordPolicy,
    pub previous: Option<PasswordPolicy>,
}

/// Inverse only (there was no custom policy before).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletePasswordPolicy {}

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
pub fn policy_changes(
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

#[async_trait]
impl Step for SetPasswordPolicy {
    async fn precheck(&self, cloud: &dyn Cloud, at: &Target) -> Result<Precheck, CloudError> {
        let (policy, previous) = (&self.policy, &self.previous);
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

    async fn apply(&self, cloud: &dyn Cloud, at: &Target) -> Result<Applied, CloudError> {
        cloud.set_password_policy(at, &self.policy).await?;
        Ok(Applied::changed(format!(
            "set the password policy to {}",
            policy_summary(Some(&self.policy))
        )))
    }

    async fn verify(&self, cloud: &dyn Cloud, at: &Target) -> Result<bool, CloudError> {
        Ok(cloud.password_policy(at).await?.as_ref() == Some(&self.policy))
    }

    fn inverse(&self, _applied: Option<&Applied>) -> Option<Action> {
        Some(match &self.previous {
            Some(p) => SetPasswordPolicy {
                policy: p.clone(),
                previous: Some(self.policy.clone()),
            }
            .into(),
            None => DeletePasswordPolicy {}.into(),
        })
    }

    fn permissions(&self) -> Vec<&'static str> {
        vec![
            "iam:GetAccountPasswordPolicy",
            "iam:UpdateAccountPasswordPolicy",
        ]
    }

    fn automation(&self, _at: &Target) -> Option<AutomationSteps> {
        let p = &self.policy;
        let mut inputs = json!({
            "MinimumPasswordLength": p.minimum_password_length,
            "RequireSymbols": p.require_symbols,
            "RequireNumbers": p.require_numbers,
            "RequireUppercaseCharacters": p.require_uppercase_characters,
            "RequireLowercaseCharacters": p.require_lowercase_characters,
            "AllowUsersToChangePassword": p.allow_users_to_change_password,
            "HardExpiry": p.hard_expiry,
        });
        if let Some(age) = p.max_password_age {
            inputs["MaxPasswordAge"] = json!(age);
        }
        if let Some(reuse) = p.password_reuse_prevention {
            inputs["PasswordReusePrevention"] = json!(reuse);
        }
        Some(AutomationSteps {
            apply: vec![ApiCall::new("iam", "UpdateAccountPasswordPolicy", inputs)],
            verify: Some(PropertyCheck {
                call: ApiCall::new("iam", "GetAccountPasswordPolicy", json!({})),
                selector: "$.PasswordPolicy.MinimumPasswordLength".to_string(),
                desired: vec![p.minimum_password_length.to_string()],
            }),
            run_document: None,
        })
    }

    fn cli(&self, at: &Target) -> String {
        let policy = &self.policy;
        let flag = |on: bool, name: &str| {
            if on {
                format!(" --{name}")
            } else {
                format!(" --no-{name}")
            }
        };
        let mut s = format!(
            "aws iam update-account-password-policy --region {} --minimum-password-length {}",
            shell_quote(&at.region),
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

    fn python(&self, at: &Target) -> String {
        let policy = &self.policy;
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
        python_call(at, "iam", "update_account_password_policy", &args)
    }

    fn describe(&self, lang: Lang) -> String {
        let changes = policy_changes(self.previous.as_ref(), &self.policy, lang);
        match (lang, self.previous.is_some()) {
            (Lang::Ja, true) => format!(
                "IAM アカウントのパスワードポリシーを更新します（{changes}）。ほかの設定は変更しません。"
            ),
            (Lang::Ja, false) => {
                format!("IAM アカウントのパスワードポリシーを作成します（{changes}）。")
            }
            (Lang::En, true) => format!(
                "Update the IAM account password policy ({changes}); every other setting is kept"
            ),
            (Lang::En, false) => format!("Create the IAM account password policy ({changes})"),
        }
    }
}

#[async_trait]
impl Step for DeletePasswordPolicy {
    async fn precheck(&self, cloud: &dyn Cloud, at: &Target) -> Result<Precheck, CloudError> {
        let live = cloud.password_policy(at).await?;
        Ok(Precheck {
            already_done: live.is_none(),
            current: to_json(&live),
            expected: Value::Null,
            drift: None,
        })
    }

    async fn apply(&self, cloud: &dyn Cloud, at: &Target) -> Result<Applied, CloudError> {
        cloud.delete_password_policy(at).await?;
        Ok(Applied::changed("deleted the account password policy"))
    }

    async fn verify(&self, cloud: &dyn Cloud, at: &Target) -> Result<bool, CloudError> {
        Ok(cloud.password_policy(at).await?.is_none())
    }

    fn inverse(&self, _applied: Option<&Applied>) -> Option<Action> {
        None
    }

    fn no_inverse(&self) -> Option<&'static str> {
        Some("it only undoes SetPasswordPolicy on an account that had no custom policy")
    }

    fn permissions(&self) -> Vec<&'static str> {
        vec![
            "iam:GetAccountPasswordPolicy",
            "iam:DeleteAccountPasswordPolicy",
        ]
    }

    fn automation(&self, _at: &Target) -> Option<AutomationSteps> {
        Some(AutomationSteps {
            apply: vec![ApiCall::new("iam", "DeleteAccountPasswordPolicy", json!({}))],
            verify: None,
            run_document: None,
        })
    }

    fn cli(&self, at: &Target) -> String {
        format!(
            "aws iam delete-account-password-policy --region {}",
            shell_quote(&at.region)
        )
    }

    fn python(&self, at: &Target) -> String {
        python_call(at, "iam", "delete_account_password_policy", &[])
    }

    fn describe(&self, lang: Lang) -> String {
        match lang {
            Lang::En => "Delete the IAM account password policy (back to the AWS default)",
            Lang::Ja => "IAM アカウントのパスワードポリシーを削除します（AWS の既定に戻ります）。",
        }
        .to_string()
    }
}

/// A password policy setting a control can govern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Uppercase,
    Lowercase,
    Symbols,
    Numbers,
    Length,
    Reuse,
    MaxAge,
}

/// The baseline minimum length (IAM.15, and IAM.7 here).
pub const MIN_LENGTH: u8 = 14;
/// IAM's largest minimum length.
pub const MAX_LENGTH: u8 = 128;
/// Remembered passwords IAM.16 requires (also IAM's maximum).
pub const REUSE: u8 = 24;
/// Longest password age IAM.17 allows, in days.
pub const MAX_AGE_DAYS: u16 = 90;
/// IAM's longest password age, in days.
pub const IAM_MAX_AGE_DAYS: u16 = 1095;

/// The starting point when the account has no custom policy: AWS's default
/// behaviour (minimum length 8, users may change their own password).
pub const DEFAULT_POLICY: PasswordPolicy = PasswordPolicy {
    minimum_password_length: 8,
    require_symbols: false,
    require_numbers: false,
    require_uppercase_characters: false,
    require_lowercase_characters: false,
    allow_users_to_change_password: true,
    max_password_age: None,
    password_reuse_prevention: None,
    hard_expiry: false,
};

/// The settings a model may name in `set_password_policy`.
pub const MODEL_FIELDS: &[&str] = &[
    "minimum_password_length",
    "require_symbols",
    "require_numbers",
    "require_uppercase_characters",
    "require_lowercase_characters",
    "password_reuse_prevention",
    "max_password_age",
];

const ALL: &[Field] = &[
    Field::Uppercase,
    Field::Lowercase,
    Field::Symbols,
    Field::Numbers,
    Field::Length,
    Field::Reuse,
    Field::MaxAge,
];

/// The settings a control governs; all others must keep their values.
pub fn governed(control: &str) -> &'static [Field] {
    match control.to_ascii_uppercase().as_str() {
        "IAM.7" => ALL,
        "IAM.11" => &[Field::Uppercase],
        "IAM.12" => &[Field::Lowercase],
        "IAM.13" => &[Field::Symbols],
        "IAM.14" => &[Field::Numbers],
        "IAM.15" => &[Field::Length],
        "IAM.16" => &[Field::Reuse],
        "IAM.17" => &[Field::MaxAge],
        _ => &[],
    }
}

impl Field {
    /// The parameter name, as UpdateAccountPasswordPolicy and policy documents spell it.
    pub fn parameter(self) -> &'static str {
        match self {
            Field::Uppercase => "RequireUppercaseCharacters",
            Field::Lowercase => "RequireLowercaseCharacters",
            Field::Symbols => "RequireSymbols",
            Field::Numbers => "RequireNumbers",
            Field::Length => "MinimumPasswordLength",
            Field::Reuse => "PasswordReusePrevention",
            Field::MaxAge => "MaxPasswordAge",
        }
    }

    fn requirement(self, lang: Lang) -> String {
        match (self, lang) {
            (Field::Uppercase, Lang::En) => "at least one uppercase letter".into(),
            (Field::Uppercase, Lang::Ja) => "大文字を 1 文字以上含めること".into(),
            (Field::Lowercase, Lang::En) => "at least one lowercase letter".into(),
            (Field::Lowercase, Lang::Ja) => "小文字を 1 文字以上含めること".into(),
            (Field::Symbols, Lang::En) => "at least one symbol".into(),
            (Field::Symbols, Lang::Ja) => "記号を 1 文字以上含めること".into(),
            (Field::Numbers, Lang::En) => "at least one number".into(),
            (Field::Numbers, Lang::Ja) => "数字を 1 文字以上含めること".into(),
            (Field::Length, Lang::En) => format!("a minimum length of {MIN_LENGTH} or more"),
            (Field::Length, Lang::Ja) => format!("{MIN_LENGTH} 文字以上の長さ"),
            (Field::Reuse, Lang::En) => format!("that the last {REUSE} passwords cannot be reused"),
            (Field::Reuse, Lang::Ja) => format!("直近 {REUSE} 個のパスワードを再利用できないこと"),
            (Field::MaxAge, Lang::En) => {
                format!("that passwords expire within {MAX_AGE_DAYS} days")
            }
            (Field::MaxAge, Lang::Ja) => format!("{MAX_AGE_DAYS} 日以内にパスワードが失効すること"),
        }
    }
}

/// What a control requires, in words.
pub fn requirement(control: &str, lang: Lang) -> String {
    let sep = match lang {
        Lang::En => ", ",
        Lang::Ja => "、",
    };
    governed(control)
        .iter()
        .map(|f| f.requirement(lang))
        .collect::<Vec<_>>()
        .join(sep)
}

fn policy_value_error(parameter: &str, value: &Value, reason: &str) -> CatalogError {
    CatalogError::PolicyValue {
        parameter: parameter.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Why a policy value is not what the plan sets, in the plan's language.
fn weaker_note(control: &str, used: &Value, lang: Lang) -> String {
    match lang {
        Lang::En => format!(
            "weaker than {control} requires, so {used} is used instead; review the organisation policy"
        ),
        Lang::Ja => format!(
            "{control} の要件より弱いため、代わりに {used} を使います。組織のポリシーを見直してください"
        ),
    }
}

fn stricter_note(used: &Value, lang: Lang) -> String {
    match lang {
        Lang::En => format!("the plan keeps {used}, which is stricter"),
        Lang::Ja => format!("より厳しい {used} を維持します"),
    }
}

/// The policy for a control: `base` (or the AWS default) with only the governed
/// settings made to meet the control, never weakened, taking stricter values from
/// the organisation policy (looked up under the control, then IAM.7). Every policy
/// value consulted is cited; one weaker than the control is flagged, not applied.
pub fn merge(
    base: Option<&PasswordPolicy>,
    control: &str,
    policy: &PolicyValues,
    lang: Lang,
) -> Result<(PasswordPolicy, Vec<PolicyCitation>), CatalogError> {
    let mut p = base.cloned().unwrap_or(DEFAULT_POLICY);
    let mut citations = Vec::new();
    let lookup = |param: &str| {
        policy
            .get(control, param)
            .map(|v| (control, v))
            .or_else(|| policy.get("IAM.7", param).map(|v| ("IAM.7", v)))
    };
    for f in governed(control) {
        let param = f.parameter();
        let found = lookup(param);
        let number = |lo: u64, hi: u64| -> Result<Option<u64>, CatalogError> {
            match found {
                None => Ok(None),
                Some((_, v)) => match v.value.as_u64() {
                    Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
                    _ => Err(policy_value_error(
                        param,
                        &v.value,
                        &format!("expected a whole number from {lo} to {hi}"),
                    )),
                },
            }
        };
        // Whether the policy's own value is weaker than the control requires.
        let weaker = match f {
            Field::Uppercase | Field::Lowercase | Field::Symbols | Field::Numbers => {
                let slot = match f {
                    Field::Uppercase => &mut p.require_uppercase_characters,
                    Field::Lowercase => &mut p.require_lowercase_characters,
                    Field::Symbols => &mut p.require_symbols,
                    _ => &mut p.require_numbers,
                };
                *slot = true;
                match found.map(|(_, v)| &v.value) {
                    None => false,
                    Some(Value::Bool(b)) => !b,
                    Some(other) => {
                        return Err(policy_value_error(param, other, "expected true or false"));
                    }
                }
            }
            Field::Length => {
                let stated = number(6, u64::from(MAX_LENGTH))?.and_then(|n| u8::try_from(n).ok());
                let wanted = stated.map_or(MIN_LENGTH, |n| n.max(MIN_LENGTH));
                p.minimum_password_length = p.minimum_password_length.max(wanted);
                stated.is_some_and(|n| n < MIN_LENGTH)
            }
            Field::Reuse => {
                let stated = number(1, u64::from(REUSE))?;
                p.password_reuse_prevention = Some(REUSE);
                stated.is_some_and(|n| n < u64::from(REUSE))
            }
            Field::MaxAge => {
                let stated =
                    number(1, u64::from(IAM_MAX_AGE_DAYS))?.and_then(|n| u16::try_from(n).ok());
                let wanted = stated.map_or(MAX_AGE_DAYS, |n| n.min(MAX_AGE_DAYS));
                let age = p.max_password_age.map_or(wanted, |a| a.min(wanted));
                p.max_password_age = Some(age);
                stated.is_some_and(|n| n > MAX_AGE_DAYS)
            }
        };
        if let Some((under, v)) = found {
            let used = value_of(&p, *f);
            let note = if weaker {
                Some(weaker_note(control, &used, lang))
            } else if used != v.value {
                Some(stricter_note(&used, lang))
            } else {
                None
            };
            citations.extend(policy.citation(under, param, note));
        }
    }
    Ok((p, citations))
}

/// A governed setting's value in `p`, as a policy document would state it.
fn value_of(p: &PasswordPolicy, f: Field) -> Value {
    match f {
        Field::Uppercase => Value::Bool(p.require_uppercase_characters),
        Field::Lowercase => Value::Bool(p.require_lowercase_characters),
        Field::Symbols => Value::Bool(p.require_symbols),
        Field::Numbers => Value::Bool(p.require_numbers),
        Field::Length => Value::from(p.minimum_password_length),
        Field::Reuse => p.password_reuse_prevention.map_or(Value::Null, Value::from),
        Field::MaxAge => p.max_password_age.map_or(Value::Null, Value::from),
    }
}

/// Checks a model's policy against the organisation policy: every governed setting
/// the policy states must be at least as strict as the catalog would make it from
/// that policy. Returns the citations, marked by whether the plan uses each value.
pub fn check_against_policy(
    planned: &PasswordPolicy,
    previous: Option<&PasswordPolicy>,
    control: &str,
    policy: &PolicyValues,
    lang: Lang,
) -> Result<Vec<PolicyCitation>, CatalogError> {
    let (floor, citations) = merge(previous, control, policy, lang)?;
    let mut out = Vec::new();
    for mut c in citations {
        let Some(f) = governed(control)
            .iter()
            .copied()
            .find(|f| f.parameter() == c.parameter)
        else {
            continue;
        };
        let (want, got) = (value_of(&floor, f), value_of(planned, f));
        let strict_enough = match f {
            Field::Length => planned.minimum_password_length >= floor.minimum_password_length,
            Field::MaxAge => match (planned.max_password_age, floor.max_password_age) {
                (Some(a), Some(b)) => a <= b,
                (_, None) => true,
                (None, Some(_)) => false,
            },
            _ => got == want,
        };
        if !strict_enough {
            return Err(CatalogError::Rejected(PlanRejection::ContradictsPolicy {
                parameter: c.parameter.clone(),
                planned: got.to_string(),
                policy: want.to_string(),
                document: c.source.clone(),
                heading: c.heading.clone(),
            }));
        }
        if got == c.value {
            c.applied = true;
            c.note = None;
        } else if c.note.is_none() || got != want {
            c.applied = false;
            c.note = Some(stricter_note(&got, lang));
        }
        out.push(c);
    }
    Ok(out)
}

fn out_of_range(parameter: &str, value: impl ToString, accepted: String) -> PlanRejection {
    PlanRejection::OutOfRange {
        parameter: parameter.to_string(),
        value: value.to_string(),
        accepted,
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "none".to_string(), |x| x.to_string())
}

/// Checks a planned policy: IAM's limits, the control's requirements on the
/// settings it governs (never weaker than before), and every other setting unchanged.
pub fn validate_policy(
    policy: &PasswordPolicy,
    previous: Option<&PasswordPolicy>,
    control: &ControlId,
) -> Result<(), PlanRejection> {
    let c = control.as_str();
    let len = policy.minimum_password_length;
    if !(6..=MAX_LENGTH).contains(&len) {
        return Err(out_of_range(
            "MinimumPasswordLength",
            len,
            format!("IAM accepts 6 to {MAX_LENGTH}"),
        ));
    }
    if let Some(n) = policy.password_reuse_prevention
        && !(1..=REUSE).contains(&n)
    {
        return Err(out_of_range(
            "PasswordReusePrevention",
            n,
            format!("IAM accepts 1 to {REUSE}"),
        ));
    }
    if let Some(d) = policy.max_password_age
        && !(1..=IAM_MAX_AGE_DAYS).contains(&d)
    {
        return Err(out_of_range(
            "MaxPasswordAge",
            d,
            format!("IAM accepts 1 to {IAM_MAX_AGE_DAYS} days"),
        ));
    }
    let gov = governed(c);
    for f in gov {
        let param = f.parameter();
        let required = |on: bool| {
            if on {
                Ok(())
            } else {
                Err(out_of_range(
                    param,
                    false,
                    format!("true ({c} requires it)"),
                ))
            }
        };
        match f {
            Field::Uppercase => required(policy.require_uppercase_characters)?,
            Field::Lowercase => required(policy.require_lowercase_characters)?,
            Field::Symbols => required(policy.require_symbols)?,
            Field::Numbers => required(policy.require_numbers)?,
            Field::Length => {
                if len < MIN_LENGTH {
                    return Err(out_of_range(
                        param,
                        len,
                        format!(
                            "{MIN_LENGTH} to {MAX_LENGTH} ({c} requires at least {MIN_LENGTH}; IAM allows at most {MAX_LENGTH})"
                        ),
                    ));
                }
                if let Some(prev) = previous
                    && len < prev.minimum_password_length
                {
                    return Err(PlanRejection::Weakened {
                        parameter: param.to_string(),
                        from: prev.minimum_password_length.to_string(),
                        to: len.to_string(),
                    });
                }
            }
            Field::Reuse => {
                if policy.password_reuse_prevention != Some(REUSE) {
                    return Err(out_of_range(
                        param,
                        opt(policy.password_reuse_prevention),
                        format!(
                            "{REUSE} ({c} requires at least {REUSE}; IAM allows at most {REUSE})"
                        ),
                    ));
                }
            }
            Field::MaxAge => {
                let ok = policy
                    .max_password_age
                    .is_some_and(|d| (1..=MAX_AGE_DAYS).contains(&d));
                if !ok {
                    return Err(out_of_range(
                        param,
                        opt(policy.max_password_age),
                        format!(
                            "1 to {MAX_AGE_DAYS} days ({c} requires expiry within {MAX_AGE_DAYS} days)"
                        ),
                    ));
                }
                if let (Some(prev), Some(now)) = (
                    previous.and_then(|p| p.max_password_age),
                    policy.max_password_age,
                ) && now > prev
                {
                    return Err(PlanRejection::Weakened {
                        parameter: param.to_string(),
                        from: format!("{prev} days"),
                        to: format!("{now} days"),
                    });
                }
            }
        }
    }
    let base = previous.cloned().unwrap_or(DEFAULT_POLICY);
    let g = |f: Field| gov.contains(&f);
    let checks: [(bool, &str, String, String); 9] = [
        (
            g(Field::Uppercase),
            "RequireUppercaseCharacters",
            base.require_uppercase_characters.to_string(),
            policy.require_uppercase_characters.to_string(),
        ),
        (
            g(Field::Lowercase),
            "RequireLowercaseCharacters",
            base.require_lowercase_characters.to_string(),
            policy.require_lowercase_characters.to_string(),
        ),
        (
            g(Field::Symbols),
            "RequireSymbols",
            base.require_symbols.to_string(),
            policy.require_symbols.to_string(),
        ),
        (
            g(Field::Numbers),
            "RequireNumbers",
            base.require_numbers.to_string(),
            policy.require_numbers.to_string(),
        ),
        (
            g(Field::Length),
            "MinimumPasswordLength",
            base.minimum_password_length.to_string(),
            len.to_string(),
        ),
        (
            g(Field::Reuse),
            "PasswordReusePrevention",
            opt(base.password_reuse_prevention),
            opt(policy.password_reuse_prevention),
        ),
        (
            g(Field::MaxAge),
            "MaxPasswordAge",
            opt(base.max_password_age),
            opt(policy.max_password_age),
        ),
        (
            false,
            "AllowUsersToChangePassword",
            base.allow_users_to_change_password.to_string(),
            policy.allow_users_to_change_password.to_string(),
        ),
        (
            false,
            "HardExpiry",
            base.hard_expiry.to_string(),
            policy.hard_expiry.to_string(),
        ),
    ];
    for (is_governed, param, from, to) in checks {
        if !is_governed && from != to {
            return Err(PlanRejection::UnrelatedChange {
                parameter: param.to_string(),
                from,
                to,
                control: c.to_string(),
            });
        }
    }
    Ok(())
}

/// The policy a model asked for: the current one (or the AWS default) with the
/// settings it named overlaid. `validate_policy` then decides whether that is allowed.
pub fn overlay(
    previous: Option<&PasswordPolicy>,
    fields: &Map<String, Value>,
) -> Result<PasswordPolicy, CatalogError> {
    let mut p = previous.cloned().unwrap_or(DEFAULT_POLICY);
    let bad = |k: &str, v: &Value, accepted: &str| {
        CatalogError::Rejected(out_of_range(k, v, accepted.to_string()))
    };
    for (k, v) in fields {
        match k.as_str() {
            "action" => {}
            "minimum_password_length" => {
                p.minimum_password_length = v
                    .as_u64()
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or_else(|| bad(k, v, "a whole number from 14 to 128"))?;
            }
            "password_reuse_prevention" => {
                p.password_reuse_prevention = Some(
                    v.as_u64()
                        .and_then(|n| u8::try_from(n).ok())
                        .ok_or_else(|| bad(k, v, "24"))?,
                );
            }
            "max_password_age" => {
                p.max_password_age = Some(
                    v.as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or_else(|| bad(k, v, "a whole number of days from 1 to 90"))?,
                );
            }
            "require_symbols"
            | "require_numbers"
            | "require_uppercase_characters"
            | "require_lowercase_characters" => {
                let b = v.as_bool().ok_or_else(|| bad(k, v, "true or false"))?;
                match k.as_str() {
                    "require_symbols" => p.require_symbols = b,
                    "require_numbers" => p.require_numbers = b,
                    "require_uppercase_characters" => p.require_uppercase_characters = b,
                    _ => p.require_lowercase_characters = b,
                }
            }
            other => {
                return Err(CatalogError::Rejected(PlanRejection::Malformed(format!(
                    "set_password_policy has no parameter {other:?}; accepted: {}",
                    MODEL_FIELDS.join(", ")
                ))));
            }
        }
    }
    Ok(p)
}

pub(crate) async fn plan(
    control: &str,
    cloud: &dyn Cloud,
    at: &Target,
    lang: Lang,
    policy: &PolicyValues,
) -> Result<FamilyPlan, CatalogError> {
    let previous = cloud.password_policy(at).await?;
    let (merged, citations) = merge(previous.as_ref(), control, policy, lang)?;
    if previous.as_ref() == Some(&merged) {
        return Err(CatalogError::NothingToDo(format!(
            "the password policy of account {} already meets {control}",
            at.account
        )));
    }
    let changes = policy_changes(previous.as_ref(), &merged, lang);
    let req = requirement(control, lang);
    let cited: Vec<String> = citations
        .iter()
        .filter(|c| c.applied)
        .map(|c| {
            format!(
                "{} = {} ({}, {})",
                c.parameter, c.value, c.source, c.heading
            )
        })
        .collect();
    let flagged: Vec<String> = citations
        .iter()
        .filter_map(|c| {
            let note = c.note.as_ref()?;
            Some(format!(
                "{} = {} ({}, {}): {note}",
                c.parameter, c.value, c.source, c.heading
            ))
        })
        .collect();
    let rationale = match lang {
        Lang::En => {
            let mut s = format!(
                "{control} requires {req}. UpdateAccountPasswordPolicy resets every setting it is not given, so the plan sends the full policy; it changes only: {changes}. Every other setting keeps its current value."
            );
            if !cited.is_empty() {
                s += &format!(" Taken from the organisation policy: {}.", cited.join("; "));
            }
            if !flagged.is_empty() {
                s += &format!(" Organisation policy not applied: {}.", flagged.join("; "));
            }
            s += if previous.is_some() {
                " Existing passwords stay valid until they are next changed. Rollback restores the current policy."
            } else {
                " The account has no custom password policy yet; settings the control does not name start from AWS's defaults (minimum length 8, users may change their own password). Rollback deletes the policy."
            };
            s
        }
        Lang::Ja => {
            let mut s = format!(
                "{control} では、パスワードポリシーについて次のことが求められます: {req}。UpdateAccountPasswordPolicy は指定しなかった設定をすべて初期値に戻すため、プランではポリシー全体を送ります。変更するのは次の点だけです: {changes}。ほかの設定は現在の値のまま残ります。"
            );
            if !cited.is_empty() {
                s += &format!("組織のポリシーから採用した値: {}。", cited.join("; "));
            }
            if !flagged.is_empty() {
                s += &format!("適用しなかった組織のポリシー: {}。", flagged.join("; "));
            }
            s += if previous.is_some() {
                "既存のパスワードは次に変更されるまで有効です。ロールバックでは現在のポリシーに戻します。"
            } else {
                "このアカウントにはまだカスタムのパスワードポリシーがありません。コントロールが指定しない設定は AWS の既定値（最小 8 文字、ユーザー自身によるパスワード変更を許可）から始めます。ロールバックではポリシーを削除します。"
            };
            s
        }
    };
    Ok(FamilyPlan {
        actions: vec![
            SetPasswordPolicy {
                policy: merged,
                previous,
            }
            .into(),
        ],
        rationale,
        citations,
    })
}

pub(crate) fn explain(
    finding: &Finding,
    control: &str,
    lang: Lang,
) -> (String, String, Vec<String>) {
    let req = requirement(control, lang);
    match lang {
        Lang::En => (
            format!(
                "The IAM account password policy of account {} does not meet {control}, which requires {req}.",
                finding.account
            ),
            "IAM users' console passwords are a favourite target of password spraying and credential stuffing. Short passwords, passwords without mixed characters, and passwords that never expire or can be reused fall much faster, and one guessed password can open the console.".to_string(),
            vec![
                "Run %remediate: the plan changes only what this control requires and sends every other setting unchanged (the API resets what it is not given).".to_string(),
                "Prefer IAM Identity Center (single sign-on) with MFA for people; keep IAM users with passwords to a minimum and require MFA for them.".to_string(),
                "A new policy applies when passwords are next changed: ask users with old passwords to change them.".to_string(),
            ],
        ),
        Lang::Ja => (
            format!(
                "アカウント {} の IAM パスワードポリシーが {control} を満たしていません。{control} では次のことが求められます: {req}。",
                finding.account
            ),
            "IAM ユーザーのコンソールパスワードは、パスワードスプレーやリスト型攻撃の主な標的です。短いパスワード、文字種の少ないパスワード、期限のないパスワードや使い回されたパスワードは破られやすく、一つ推測されるだけでコンソールに入られるおそれがあります。".to_string(),
            vec![
                "%remediate を実行すると、このコントロールが求める設定だけを変更し、ほかの設定はそのまま送るプランを作成します（API は指定しなかった設定を初期値に戻すためです）。".to_string(),
                "人の利用には MFA 付きの IAM Identity Center（シングルサインオン）を使い、パスワードを持つ IAM ユーザーは最小限にして MFA を必須にしてください。".to_string(),
                "新しいポリシーは次回のパスワード変更から適用されます。古いパスワードを使っているユーザーには変更を依頼してください。".to_string(),
            ],
        ),
    }
}
