//! Remediation plans, prechecks and advice.

use runbook::advisor::{AdvisorKind, Usage};
use runbook::plan::{Precheck, RemediationPlan};
use runbook::settings::Lang;
use serde_json::{Value, json};

use super::html::{self, Cell, Table};
use super::text::Text;
use super::{Bundle, markdown};

/// One action's precheck, or why it could not be read.
pub type PrecheckOutcome = Result<Precheck, String>;

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Prechecks as JSON: each one's state, or `{"error": ...}` when it could not be read.
pub fn prechecks_json(prechecks: &[PrecheckOutcome]) -> Vec<Value> {
    prechecks
        .iter()
        .map(|p| match p {
            Ok(p) => json!(p),
            Err(e) => json!({"error": e}),
        })
        .collect()
}

pub fn usage_line(advisor: &AdvisorKind, usage: Option<&Usage>) -> String {
    match usage {
        Some(u) => format!(
            "{} · {} tokens in, {} out · {:.1} s",
            advisor.label(),
            u.input_tokens,
            u.output_tokens,
            u.elapsed_ms as f64 / 1000.0
        ),
        None => advisor.label(),
    }
}

fn labels(lang: Lang) -> [&'static str; 9] {
    match lang {
        Lang::En => [
            "Plan",
            "Actions",
            "Current state (precheck)",
            "Rollback",
            "Required IAM permissions",
            "AWS CLI",
            "Python (boto3)",
            "Rationale",
            "Approve with",
        ],
        Lang::Ja => [
            "修復プラン",
            "アクション",
            "現在の状態 (事前チェック)",
            "ロールバック",
            "必要な IAM 権限",
            "AWS CLI",
            "Python (boto3)",
            "根拠",
            "承認するには",
        ],
    }
}

/// The plan: actions, live state, rollback, permissions, and the CLI and Python equivalents.
pub fn plan(
    plan: &RemediationPlan,
    account: &str,
    prechecks: &[PrecheckOutcome],
    advisor: &AdvisorKind,
    usage: Option<&Usage>,
) -> Bundle {
    let [
        title,
        actions_h,
        state_h,
        rollback_h,
        perms_h,
        cli_h,
        py_h,
        why_h,
        approve_h,
    ] = labels(plan.lang);
    let target = format!("{account} in {}", plan.region);
    let id = plan.id.as_str();
    let mut plain = format!(
        "{title} {id} — {} · {}\n{}\n",
        plan.control_id,
        target,
        usage_line(advisor, usage)
    );
    let mut actions = Table::new(
        "runbook-plan-actions",
        &[
            "#",
            Text::ColAction.get(plan.lang),
            Text::ColWhatItDoes.get(plan.lang),
            state_h,
            Text::ColAfter.get(plan.lang),
            Text::ColNote.get(plan.lang),
        ],
    );
    for (i, action) in plan.actions.iter().enumerate() {
        let (now, after, note) = match prechecks.get(i) {
            Some(Ok(p)) => (
                compact(&p.current),
                compact(&p.expected),
                match (&p.drift, p.already_done) {
                    (Some(d), _) => format!("drift: {d}"),
                    (None, true) => "already in place: no-op".to_string(),
                    (None, false) => String::new(),
                },
            ),
            Some(Err(e)) => (format!("could not read: {e}"), String::new(), String::new()),
            None => (String::new(), String::new(), String::new()),
        };
        let describe = action.describe(plan.lang);
        plain.push_str(&format!("  {}. {} — {describe}\n", i + 1, action.name()));
        if !note.is_empty() {
            plain.push_str(&format!("     {note}\n"));
        }
        actions.row(vec![
            Cell::text((i + 1).to_string()),
            Cell::code(action.name()),
            Cell::text(&describe),
            Cell::code(&now),
            Cell::code(&after),
            Cell::text(&note),
        ]);
    }
    let rollback: Vec<String> = plan
        .rollback
        .iter()
        .map(|a| a.describe(plan.lang))
        .collect();
    let cli = plan.cli();
    let python = plan.python();
    plain.push_str(&format!("{why_h}: {}\n", plan.rationale));
    plain.push_str(&format!("{perms_h}: {}\n", plan.permissions.join(", ")));
    plain.push_str(&format!("{approve_h}: %approve {id}\n\n{cli_h}:\n{cli}\n"));
    let mut rich = format!(
        "<div class=\"runbook-plan\"><p><strong>{} <code>{}</code></strong> — <code>{}</code> · {}</p><p><em>{}</em></p>",
        html::text(title),
        html::text(id),
        html::text(plan.control_id.as_str()),
        html::text(&target.to_string()),
        html::text(&usage_line(advisor, usage)),
    );
    rich.push_str(&format!(
        "<h4>{}</h4>{}",
        html::text(actions_h),
        actions.render()
    ));
    rich.push_str(&format!(
        "<p><strong>{}:</strong> {}</p>",
        html::text(why_h),
        html::text(&plan.rationale)
    ));
    if !plan.policy_citations.is_empty() {
        let mut cites = Table::new(
            "runbook-citations",
            &[
                Text::ColParameter.get(plan.lang),
                Text::ColPolicyValue.get(plan.lang),
                Text::ColApplied.get(plan.lang),
                Text::ColSource.get(plan.lang),
                Text::ColHeading.get(plan.lang),
                Text::ColNote.get(plan.lang),
            ],
        );
        for c in &plan.policy_citations {
            cites.row(vec![
                Cell::code(&c.parameter),
                Cell::code(compact(&c.value)),
                Cell::text(if c.applied { Text::Yes } else { Text::No }.get(plan.lang)),
                Cell::code(&c.source),
                Cell::text(&c.heading),
                Cell::text(c.note.as_deref().unwrap_or_default()),
            ]);
            plain.push_str(&format!(
                "policy: {} = {} ({}, {}){}\n",
                c.parameter,
                compact(&c.value),
                c.source,
                c.heading,
                c.note
                    .as_ref()
                    .map_or(String::new(), |n| format!(" — not applied: {n}"))
            ));
        }
        rich.push_str(&cites.render());
    }
    rich.push_str(&format!(
        "<h4>{}</h4><ul>{}</ul>",
        html::text(rollback_h),
        rollback
            .iter()
            .map(|r| format!("<li>{}</li>", html::text(r)))
            .collect::<String>()
    ));
    rich.push_str(&format!(
        "<p><strong>{}:</strong> {}</p>",
        html::text(perms_h),
        plan.permissions
            .iter()
            .map(|p| format!("<code>{}</code>", html::text(p)))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    rich.push_str(&format!(
        "<details><summary>{}</summary>{}</details><details><summary>{}</summary>{}</details>",
        html::text(cli_h),
        html::pre(&cli),
        html::text(py_h),
        html::pre(&python)
    ));
    rich.push_str(&format!(
        "<p>{}: <code>%approve {}</code></p></div>",
        html::text(approve_h),
        html::text(id)
    ));
    let prechecks_json = prechecks_json(prechecks);
    Bundle::html(
        plain.trim_end().to_string(),
        rich,
        json!({
            "plan": plan,
            "prechecks": prechecks_json,
            "cli": cli,
            "python": python,
            "advisor": advisor,
            "usage": usage,
            "executable": true,
        }),
    )
}

/// A model's or the catalog's explanation while it streams, and when done.
pub fn explanation(
    text: &str,
    advisor: &AdvisorKind,
    usage: Option<&Usage>,
    status: Option<&str>,
    extra: Value,
) -> Bundle {
    let mut footer = usage_line(advisor, usage);
    if let Some(status) = status {
        footer = format!("{footer} · {status}");
    }
    let rich = format!(
        "<div class=\"runbook-explanation\">{}<p><em>{}</em></p></div>",
        markdown::to_html(text),
        html::text(&footer)
    );
    let mut json = json!({"markdown": text, "advisor": advisor, "usage": usage, "status": status});
    if let (Some(target), Value::Object(more)) = (json.as_object_mut(), extra) {
        target.extend(more);
    }
    Bundle::html(format!("{text}\n\n— {footer}"), rich, json)
}

/// Advice for a control the catalog cannot act on: not executable, no plan id.
pub fn advice(text: &str, advisor: &AdvisorKind, usage: Option<&Usage>, lang: Lang) -> Bundle {
    let banner = match lang {
        Lang::En => {
            "Not executable: the catalog has no automated remediation for this control, so there is no plan id. Carry out the steps by hand."
        }
        Lang::Ja => {
            "実行不可: このコントロールには自動修復がないため、プラン ID はありません。手順を手作業で実施してください。"
        }
    };
    let mut bundle = explanation(text, advisor, usage, None, json!({"executable": false}));
    bundle.plain = format!("{banner}\n\n{}", bundle.plain);
    if let super::Rich::Html(h) = &mut bundle.rich {
        *h = format!(
            "<p style=\"border-left:4px solid #e07700;padding-left:8px\"><strong>{}</strong></p>{h}",
            html::text(banner)
        );
    }
    bundle
}
