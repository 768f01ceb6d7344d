//! `%audit`: the audit trail as a table; damaged lines and runs that died part-way are flagged.

use clap::Parser;
use runbook::audit::{self, AuditReport};
use runbook::plan::PlanId;
use serde_json::json;

use crate::context::{Context, ErrorKind, MagicError};
use crate::output::Output;
use crate::render::text::Text;
use crate::render::{Bundle, html};

/// Show the audit trail: who approved what, each action with its before/after state, rollbacks and finding updates
#[derive(Debug, Parser)]
pub struct AuditArgs {
    /// Show the last N records (default 50)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub last: Option<u32>,
    /// Only the records of this plan
    #[arg(long, value_name = "PLAN_ID", value_parser = |s: &str| s.parse::<PlanId>())]
    pub plan: Option<PlanId>,
    /// Walk the whole file's hash chain and report every edited, removed, reordered or inserted record by line number
    #[arg(long)]
    pub verify: bool,
}

const DEFAULT_LAST: usize = 50;

fn warnings(full: &AuditReport) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(tail) = &full.damaged_tail {
        out.push(format!(
            "The last line is damaged (a crash while writing?): {tail}. The records before it are intact."
        ));
    }
    for problem in &full.problems {
        out.push(format!("Unreadable record skipped: {problem}"));
    }
    for open in full.unfinished_runs() {
        let action = open.action.as_ref().map_or_else(String::new, |a| {
            format!(" action {} ({})", a.index + 1, a.name)
        });
        out.push(format!(
            "Run of {}{action} started at {} and never finished: the kernel may have died part-way. Check the live state; %rollback {} undoes what finished.",
            open.plan_id,
            open.at.to_rfc3339(),
            open.plan_id
        ));
    }
    out
}

pub fn run(args: AuditArgs, cx: &Context<'_>) -> Result<(), MagicError> {
    let out = cx.out;
    let path = &cx.settings().audit_log;
    let full = audit::read(path).map_err(|e| MagicError::new(ErrorKind::Audit, e.to_string()))?;
    if args.verify {
        show_verification(path, &full, out);
        return Ok(());
    }
    let mut notes = warnings(&full);
    if full.exists {
        let tightened = audit::make_private(path).map_err(|e| {
            MagicError::new(
                ErrorKind::Audit,
                format!("cannot make the audit log {} private: {e}", path.display()),
            )
        })?;
        notes.extend(tightened);
        if !full.chain.intact() {
            notes.push(full.chain.summary());
        }
    }
    let mut report = full.clone();
    if let Some(plan) = &args.plan {
        report = report.for_plan(plan);
    }
    report = report.last(args.last.map_or(DEFAULT_LAST, |n| n as usize));
    let shown = match cx.settings().lang {
        runbook::settings::Lang::En => None,
        lang => Some(Text::AuditHeading.fill(lang, &[&report.records.len(), &path.display()])),
    };
    let mut plain = format!(
        "Audit trail {} — {} record(s) shown{}\n",
        path.display(),
        report.records.len(),
        if full.exists {
            ""
        } else {
            " (no file yet: nothing has been recorded)"
        }
    );
    if let Some(heading) = shown {
        plain = format!("{heading}\n{plain}");
    }
    let lang = cx.settings().lang;
    let mut table = html::Table::new(
        "runbook-audit",
        &[
            "#",
            Text::ColTime.get(lang),
            Text::ColEvent.get(lang),
            Text::ColPlan.get(lang),
            Text::ColActor.get(lang),
            Text::ColAccountRegion.get(lang),
            Text::ColAction.get(lang),
            Text::ColDetail.get(lang),
        ],
    );
    for r in &report.records {
        let action = r
            .action
            .as_ref()
            .map_or_else(String::new, |a| format!("{} {}", a.index + 1, a.name));
        let detail = r
            .detail
            .clone()
            .or_else(|| r.outcome.clone())
            .unwrap_or_default();
        // A member account's step names the account and the role session it ran in.
        let place = match &r.member_session {
            Some(m) => format!(
                "{} ({}) / {} as {}",
                r.account,
                m.account_name.as_deref().unwrap_or("member"),
                r.region,
                m
            ),
            None => format!("{} / {}", r.account, r.region),
        };
        plain.push_str(&format!(
            "{:>5} {} {:<16} {} {} {} {}\n",
            r.seq,
            r.at.format("%Y-%m-%d %H:%M:%S"),
            r.event.name(),
            r.plan_id,
            r.actor,
            action,
            detail
        ));
        table.row(vec![
            html::Cell::text(r.seq.to_string()),
            html::Cell::text(r.at.format("%Y-%m-%d %H:%M:%S").to_string()),
            html::Cell::code(r.event.name()),
            html::Cell::code(r.plan_id.as_str()),
            html::Cell::text(&r.actor),
            html::Cell::text(&place),
            html::Cell::text(&action),
            html::Cell::text(&detail),
        ]);
    }
    let mut rich = format!(
        "<p><strong>{}</strong></p>",
        html::text(plain.lines().next().unwrap_or_default())
    );
    if full.exists && full.chain.intact() {
        let summary = full.chain.summary();
        plain.push_str(&format!("{summary}\n"));
        rich.push_str(&format!("<p>{}</p>", html::text(&summary)));
    }
    for note in &notes {
        plain.push_str(&format!("WARNING: {note}\n"));
        rich.push_str(&format!(
            "<p style=\"border-left:4px solid #d13212;padding-left:8px\">{}</p>",
            html::text(note)
        ));
    }
    rich.push_str(&table.render());
    let unfinished: Vec<_> = full.unfinished_runs().into_iter().cloned().collect();
    out.display(Bundle::html(
        plain.trim_end().to_string(),
        rich,
        json!({
            "path": path,
            "exists": full.exists,
            "records": report.records,
            "problems": full.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "damaged_tail": full.damaged_tail,
            "unfinished": unfinished,
            "chain": full.chain,
            "warnings": notes,
        }),
    ));
    Ok(())
}

/// `%audit --verify`: every broken link of the hash chain, by line number.
fn show_verification(path: &std::path::Path, full: &AuditReport, out: &dyn Output) {
    let chain = &full.chain;
    let mut plain = format!("Audit trail {}\n{}\n", path.display(), chain.summary());
    let mut rich = format!(
        "<p><strong>Audit trail {}</strong></p><p>{}</p>",
        html::text(&path.display().to_string()),
        html::text(&chain.summary())
    );
    if !full.exists {
        plain.push_str("No file yet: nothing has been recorded.\n");
        rich.push_str("<p>No file yet: nothing has been recorded.</p>");
    }
    if let Some(id) = &chain.file_id {
        plain.push_str(&format!("File id: {id}\n"));
        rich.push_str(&format!("<p>File id: <code>{}</code></p>", html::text(id)));
    }
    if !chain.breaks.is_empty() {
        let mut table = html::Table::new("runbook-audit-verify", &["Line", "Problem", "Detail"]);
        for b in &chain.breaks {
            let kind = serde_json::to_value(b.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            plain.push_str(&format!("{:>6} {:<10} {}\n", b.line, kind, b.message));
            table.row(vec![
                html::Cell::text(b.line.to_string()),
                html::Cell::code(&kind),
                html::Cell::text(&b.message),
            ]);
        }
        rich.push_str(&table.render());
    }
    plain.push_str(
        "A chain cannot show a rewrite of the last record or records cut from the end; only a copy kept elsewhere does.",
    );
    out.display(Bundle::html(
        plain,
        rich,
        json!({
            "path": path,
            "exists": full.exists,
            "intact": chain.intact(),
            "chain": chain,
        }),
    ));
}
