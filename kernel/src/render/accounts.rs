//! `%accounts`: the organisation's accounts, their open findings and whether the
//! runbook can act in each.

use std::collections::BTreeMap;

use runbook::Severity;
use runbook::cloud::{Access, OrgAccount};
use serde_json::json;

use super::Bundle;
use super::findings::severity_badge;
use super::html::{self, Cell, Table};
use super::text::Text;
use runbook::settings::Lang;

/// One account as `%accounts` shows it.
#[derive(Debug, Clone)]
pub struct AccountRow {
    pub account: OrgAccount,
    /// Open findings by severity.
    pub open: BTreeMap<Severity, usize>,
    pub access: Access,
}

fn access_text(access: &Access, lang: Lang) -> String {
    match access {
        Access::Own => Text::AccessOwn.get(lang).to_string(),
        Access::Role { role_arn } => Text::AccessRole.fill(lang, &[role_arn]),
        Access::Denied { reason } => Text::AccessDenied.fill(lang, &[reason]),
    }
}

fn counts_text(open: &BTreeMap<Severity, usize>, lang: Lang) -> String {
    let shown: Vec<String> = Severity::ALL
        .iter()
        .rev()
        .filter_map(|s| open.get(s).map(|n| format!("{} {n}", s.label())))
        .collect();
    if shown.is_empty() {
        Text::CountsNone.get(lang).to_string()
    } else {
        shown.join(", ")
    }
}

pub fn progress(text: &str) -> Bundle {
    Bundle::html(
        text.to_string(),
        format!("<p><em>{}</em></p>", html::text(text)),
        json!({"progress": text}),
    )
}

/// The accounts table; `unavailable` says why names are missing, if they are.
pub fn accounts(
    rows: &[AccountRow],
    unavailable: Option<&str>,
    member_role: &str,
    lang: Lang,
) -> Bundle {
    let actionable = rows.iter().filter(|r| r.access.can_act()).count();
    let heading = Text::AccountsHeading.fill(lang, &[&rows.len(), &actionable, &member_role]);
    let mut plain = format!("{heading}\n");
    if let Some(why) = unavailable {
        plain.push_str(&format!("{why}\n"));
    }
    let mut table = Table::new(
        "runbook-accounts",
        &[
            Text::ColAccount.get(lang),
            Text::ColName.get(lang),
            Text::ColStatus.get(lang),
            Text::ColOpenFindings.get(lang),
            Text::ColCanAct.get(lang),
        ],
    );
    let mut json_rows = Vec::with_capacity(rows.len());
    for row in rows {
        let a = &row.account;
        plain.push_str(&format!(
            "{}  {:<24} {:<10} {:<40} {}\n",
            a.id,
            a.name,
            a.status.label(),
            counts_text(&row.open, lang),
            access_text(&row.access, lang)
        ));
        let badges: Vec<String> = Severity::ALL
            .iter()
            .rev()
            .filter_map(|s| {
                row.open
                    .get(s)
                    .map(|n| format!("{} {n}", severity_badge(*s)))
            })
            .collect();
        table.row(vec![
            Cell::code(a.id.as_str()),
            Cell::text(&a.name),
            Cell::text(a.status.label()),
            if badges.is_empty() {
                Cell::text(Text::CountsNone.get(lang))
            } else {
                Cell::markup(badges.join(" "))
            },
            Cell::text(access_text(&row.access, lang)),
        ]);
        let open: BTreeMap<&str, usize> = row.open.iter().map(|(s, n)| (s.label(), *n)).collect();
        json_rows.push(json!({
            "id": a.id,
            "name": a.name,
            "status": a.status,
            "open_findings": open,
            "can_act": row.access.can_act(),
            "access": row.access,
        }));
    }
    let mut rich = format!("<p><strong>{}</strong></p>", html::text(&heading));
    if let Some(why) = unavailable {
        rich.push_str(&format!("<p>{}</p>", html::text(why)));
    }
    rich.push_str(&table.render());
    Bundle::html(
        plain,
        rich,
        json!({
            "accounts": json_rows,
            "member_role": member_role,
            "names_unavailable": unavailable,
        }),
    )
}
