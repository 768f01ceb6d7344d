//! IAM.7 and IAM.11 to IAM.17: the account password policy. UpdateAccountPasswordPolicy
//! resets every parameter it is not given, so plans send the full merged policy:
//! the current one with only what the control requires changed.

use serde_json::{Map, Value};

use super::{CatalogError, FamilyPlan, PolicyValues};
use crate::cloud::{Cloud, Target};
use crate::finding::{ControlId, Finding};
use crate::plan::{Action, PlanRejection, PolicyCitation, policy_changes};
use crate::resources::PasswordPolicy;
use crate::settings::Lang;

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
        actions: vec![Action::SetPasswordPolicy {
            policy: merged,
            previous,
        }],
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
