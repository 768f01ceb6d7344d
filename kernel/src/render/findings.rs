//! Findings as tables, detail pages and a severity chart.

use std::collections::BTreeMap;

use runbook::Severity;
use runbook::cloud::{BackendInfo, FindingCounts, Organisation};
use runbook::finding::Finding;
use serde_json::{Value, json};

use super::html::{self, Cell, Table};
use super::text::Text;
use super::{Bundle, SafeMarkdown, VEGA_LITE_MIME};
use runbook::settings::Lang;

/// Rows shown at most; the rest stay in the listing, reachable by number or filters.
pub const MAX_ROWS: usize = 200;

fn severity_colour(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "#7d0a0a",
        Severity::High => "#d13212",
        Severity::Medium => "#e07700",
        Severity::Low => "#a38b00",
        Severity::Informational => "#5f6b7a",
    }
}

pub fn severity_badge(severity: Severity) -> String {
    format!(
        "<span style=\"background:{};color:#fff;padding:1px 6px;border-radius:3px;font-weight:600;font-size:0.85em\">{}</span>",
        severity_colour(severity),
        severity.label()
    )
}

fn updated(f: &Finding) -> String {
    f.updated_at
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

fn resource_label(f: &Finding) -> String {
    f.primary_resource()
        .map(|r| r.name().unwrap_or_else(|| r.id.clone()))
        .unwrap_or_default()
}

/// A value as its JSON string (enums and times as the listing's JSON spells them).
pub fn wire<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// One finding as the listing's JSON row and as Rust cells see it; `raw` is left
/// empty here (the session snapshot fills it).
pub fn finding_row(
    number: usize,
    f: &Finding,
    organisation: &Organisation,
) -> runbook_cells::Finding {
    runbook_cells::Finding {
        number,
        id: f.id.clone(),
        severity: wire(&f.severity),
        control_id: f.control_id.as_ref().map(|c| c.as_str().to_string()),
        standard_control: f.standard_control.as_ref().map(ToString::to_string),
        source: wire(&f.source),
        title: f.title.clone(),
        resource: resource_label(f),
        account: f.account.as_str().to_string(),
        account_name: organisation.name_of(&f.account).map(str::to_string),
        region: f.region.clone(),
        workflow: wire(&f.workflow),
        updated_at: f.updated_at.as_ref().map(wire),
        raw: Value::Null,
    }
}

/// The consolidated control, with the standard's own id beside it when the
/// finding named only that (e.g. "IAM.15 (CIS 1.2.0 1.9)").
fn control(f: &Finding) -> String {
    let consolidated = f
        .control_id
        .as_ref()
        .map_or_else(String::new, |c| c.as_str().to_string());
    match &f.standard_control {
        Some(sc) if !consolidated.is_empty() => format!("{consolidated} ({sc})"),
        Some(sc) => sc.to_string(),
        None => consolidated,
    }
}

/// Cuts `s` to `max` characters for plain-text tables.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut short: String = s.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// Findings per severity, most severe first; every severity is present.
pub fn counts(findings: &[Finding]) -> BTreeMap<Severity, usize> {
    let mut counts: BTreeMap<Severity, usize> = Severity::ALL.iter().map(|s| (*s, 0)).collect();
    for f in findings {
        *counts.entry(f.severity).or_default() += 1;
    }
    counts
}

/// What the service counted, as [`counts`] gives it for rows in hand.
pub fn severity_counts(counts: &FindingCounts) -> BTreeMap<Severity, usize> {
    counts
        .by_severity
        .iter()
        .map(|(s, n)| (*s, usize::try_from(*n).unwrap_or(usize::MAX)))
        .collect()
}

/// Counts keyed by severity label, as the JSON part carries them.
fn counts_by_label(counts: &BTreeMap<Severity, usize>) -> serde_json::Map<String, Value> {
    counts
        .iter()
        .map(|(s, n)| (s.label().to_string(), json!(n)))
        .collect()
}

/// A coloured badge and count per severity, most severe first.
fn badges(counts: &BTreeMap<Severity, usize>) -> String {
    counts
        .iter()
        .rev()
        .map(|(s, n)| format!("{} {n}", severity_badge(*s)))
        .collect::<Vec<_>>()
        .join(" &nbsp; ")
}

fn counts_text(counts: &BTreeMap<Severity, usize>) -> String {
    counts
        .iter()
        .rev()
        .map(|(s, n)| format!("{} {n}", s.label()))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The listing: a numbered table (first [`MAX_ROWS`] rows), counts, the filter in words.
pub fn listing(
    findings: &[Finding],
    filter_text: &str,
    backend: &BackendInfo,
    organisation: &Organisation,
    limited: bool,
    lang: Lang,
) -> Bundle {
    listing_with(
        findings,
        filter_text,
        backend,
        organisation,
        limited,
        None,
        lang,
    )
}

/// The listing while pages arrive: the most severe rows so far, and how many
/// of the counted total have been read.
pub fn partial_listing(
    findings: &[Finding],
    read: usize,
    expected: Option<u64>,
    filter_text: &str,
    backend: &BackendInfo,
    organisation: &Organisation,
    lang: Lang,
) -> Bundle {
    let status = match expected {
        Some(total) => Text::FindingsReadOfTotal.fill(lang, &[&read, &total]),
        None => Text::FindingsReadSoFar.fill(lang, &[&read]),
    };
    listing_with(
        findings,
        filter_text,
        backend,
        organisation,
        false,
        Some(status),
        lang,
    )
}

fn listing_with(
    findings: &[Finding],
    filter_text: &str,
    backend: &BackendInfo,
    organisation: &Organisation,
    limited: bool,
    reading: Option<String>,
    lang: Lang,
) -> Bundle {
    let counts = counts(findings);
    let shown = &findings[..findings.len().min(MAX_ROWS)];
    let source = format!("{} · {}", backend.kind, backend.region);
    let mut heading = Text::FindingsHeading.fill(lang, &[&findings.len(), &source, &filter_text]);
    if limited {
        heading.push_str(Text::FindingsLimited.get(lang));
    }
    if let Some(status) = &reading {
        heading = format!("{status} {heading}");
    }
    let mut plain = format!("{heading}\n{}\n", counts_text(&counts));
    if let Some(api) = &backend.findings_api {
        plain.push_str(&format!("{}\n", Text::FindingsSource.fill(lang, &[api])));
    }
    let mut table = Table::new(
        "runbook-findings",
        &[
            "#",
            Text::ColSeverity.get(lang),
            Text::ColControl.get(lang),
            Text::ColTitle.get(lang),
            Text::ColResource.get(lang),
            Text::ColAccount.get(lang),
            Text::ColRegion.get(lang),
            Text::ColWorkflow.get(lang),
            Text::ColUpdated.get(lang),
        ],
    );
    let mut rows = Vec::with_capacity(shown.len());
    for (i, f) in shown.iter().enumerate() {
        let number = i + 1;
        let resource = resource_label(f);
        plain.push_str(&format!(
            "{number:>4}  {:<13} {:<12} {:<60} {:<30} {} {:<14} {:<9} {}\n",
            f.severity.label(),
            control(f),
            cut(&f.title, 60),
            cut(&resource, 30),
            organisation.label(&f.account),
            f.region,
            f.workflow.label(),
            updated(f)
        ));
        table.row(vec![
            Cell::text(number.to_string()),
            Cell::markup(severity_badge(f.severity)),
            Cell::code(control(f)),
            Cell::text(&f.title),
            Cell::text(&resource),
            Cell::code(organisation.label(&f.account)),
            Cell::text(&f.region),
            Cell::text(f.workflow.label()),
            Cell::text(updated(f)),
        ]);
        rows.push(serde_json::to_value(finding_row(number, f, organisation)).unwrap_or_default());
    }
    let mut rich = format!(
        "<div class=\"runbook-listing\"><p><strong>{}</strong></p><p>{}</p>",
        html::text(&heading),
        badges(&counts)
    );
    if let Some(api) = &backend.findings_api {
        rich.push_str(&format!(
            "<p><small>{}</small></p>",
            html::text(&Text::FindingsSource.fill(lang, &[api]))
        ));
    }
    if let Some(why) = &organisation.unavailable {
        plain.push_str(&format!("{why}\n"));
        rich.push_str(&format!("<p>{}</p>", html::text(why)));
    }
    if findings.is_empty() {
        let none = Text::FindingsNoneMatch.get(lang);
        rich.push_str(&format!("<p>{}</p>", html::text(none)));
        plain.push_str(&format!("{none}\n"));
    } else {
        rich.push_str(&table.render());
    }
    if findings.len() > shown.len() {
        let more = Text::FindingsShowingFirst.fill(lang, &[&shown.len(), &findings.len()]);
        plain.push_str(&more);
        rich.push_str(&format!("<p>{}</p>", html::text(&more)));
    } else if !findings.is_empty() {
        let hint = Text::FindingsHint.get(lang);
        plain.push_str(hint);
        rich.push_str(&format!("<p><em>{}</em></p>", html::text(hint)));
    }
    rich.push_str("</div>");
    let counts_json = counts_by_label(&counts);
    Bundle::html(
        plain.trim_end().to_string(),
        rich,
        json!({
            "backend": backend,
            "filter": filter_text,
            "total": findings.len(),
            "limited": limited,
            "reading": reading.is_some(),
            "counts": counts_json,
            "names_unavailable": organisation.unavailable,
            "shown": rows,
        }),
    )
}

/// What the service counted before any page was read: by severity, by account.
pub fn counted(counts: &FindingCounts, organisation: &Organisation, lang: Lang) -> Bundle {
    let by_severity = severity_counts(counts);
    let heading = Text::FindingsCounted.fill(lang, &[&counts.total, &counts.method]);
    let mut plain = format!("{heading}\n{}\n", counts_text(&by_severity));
    let mut rich = format!(
        "<div class=\"runbook-counts\"><p><strong>{}</strong></p><p>{}</p>",
        html::text(&heading),
        badges(&by_severity)
    );
    if !counts.by_account.is_empty() {
        let mut table = Table::new(
            "runbook-counts-by-account",
            &[Text::ColAccount.get(lang), Text::ChartAxisCount.get(lang)],
        );
        for (account, n) in &counts.by_account {
            let label = organisation.label(account);
            plain.push_str(&format!("  {label:<40} {n}\n"));
            table.row(vec![Cell::code(label), Cell::text(n.to_string())]);
        }
        rich.push_str(&table.render());
    }
    rich.push_str("</div>");
    let accounts: Vec<Value> = counts
        .by_account
        .iter()
        .map(|(a, n)| json!({"account": a, "account_name": organisation.name_of(a), "count": n}))
        .collect();
    let severities = counts_by_label(&by_severity);
    Bundle::html(
        plain.trim_end().to_string(),
        rich,
        json!({"total": counts.total, "counts": severities, "by_account": accounts, "method": counts.method}),
    )
}

/// A Vega-Lite bar chart of the counts, in severity order and colours.
pub fn severity_chart(counts: &BTreeMap<Severity, usize>, lang: Lang) -> Bundle {
    let values: Vec<Value> = counts
        .iter()
        .rev()
        .map(|(s, n)| json!({"severity": s.label(), "count": n}))
        .collect();
    let order: Vec<&str> = Severity::ALL.iter().rev().map(|s| s.label()).collect();
    let colours: Vec<&str> = Severity::ALL
        .iter()
        .rev()
        .map(|s| severity_colour(*s))
        .collect();
    let spec = json!({
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "description": Text::ChartTitle.get(lang),
        "data": {"values": values},
        "mark": {"type": "bar"},
        "encoding": {
            "x": {"field": "severity", "type": "nominal", "sort": order, "title": Text::ColSeverity.get(lang)},
            "y": {"field": "count", "type": "quantitative", "title": Text::ChartAxisCount.get(lang)},
            "color": {"field": "severity", "type": "nominal", "scale": {"domain": order, "range": colours}, "legend": null}
        },
        "width": 320,
        "height": 160
    });
    let plain = Text::ChartCounts.fill(lang, &[&counts_text(counts)]);
    // Markdown, not HTML, as the fallback: JupyterLab prefers HTML to Vega-Lite but
    // Vega-Lite to Markdown, so the chart is what shows where it can be drawn.
    let mut markdown = SafeMarkdown::new();
    for (i, (s, n)) in counts.iter().rev().enumerate() {
        if i > 0 {
            markdown.push_text(" · ");
        }
        markdown.push_strong(s.label()).push_text(&format!(" {n}"));
    }
    Bundle::markdown(plain, markdown, json!({"counts": values})).with_extra(VEGA_LITE_MIME, spec)
}

/// One finding in full: key facts, resources, remediation link, and the raw JSON.
pub fn detail(f: &Finding, lang: Lang) -> Bundle {
    let mut facts = Table::new("runbook-finding", &["", ""]);
    let mut plain = format!("{} {} {}\n", f.severity.label(), control(f), f.title);
    let mut rows: Vec<(&str, String)> = vec![
        (Text::ColSeverity.get(lang), f.severity.label().to_string()),
        (Text::ColControl.get(lang), control(f)),
        (Text::ColTitle.get(lang), f.title.clone()),
        (Text::ColAccount.get(lang), f.account.to_string()),
        (Text::ColRegion.get(lang), f.region.clone()),
        (Text::ColWorkflow.get(lang), f.workflow.label().to_string()),
        (
            Text::ColCompliance.get(lang),
            f.compliance
                .status
                .map_or_else(String::new, |s| s.label().to_string()),
        ),
        (
            Text::ColRecordState.get(lang),
            f.record_state.label().to_string(),
        ),
        (
            Text::ColProduct.get(lang),
            f.product_name.clone().unwrap_or_default(),
        ),
        (Text::ColUpdated.get(lang), updated(f)),
        ("Id", f.id.clone()),
    ];
    // Who last changed the workflow and why: the plan that resolved it, say.
    if let Some(note) = &f.note {
        let mut by = note.updated_by.clone().unwrap_or_default();
        if let Some(at) = note.updated_at {
            by = Text::NoteAt.fill(lang, &[&by, &at.format("%Y-%m-%d %H:%M UTC")]);
        }
        rows.push((Text::ColFindingNote.get(lang), note.text.clone()));
        rows.push((Text::ColNoteBy.get(lang), by.trim().to_string()));
    }
    for (k, v) in &rows {
        plain.push_str(&format!("{k:<13} {v}\n"));
        let cell = if *k == Text::ColSeverity.get(lang) {
            Cell::markup(severity_badge(f.severity))
        } else {
            Cell::text(v)
        };
        facts.row(vec![Cell::text(k), cell]);
    }
    plain.push_str(&format!("\n{}\n", f.description));
    let mut resources = Table::new(
        "runbook-resources",
        &[
            Text::ColType.get(lang),
            "Id",
            Text::ColRegion.get(lang),
            Text::ColName.get(lang),
            Text::ColTags.get(lang),
        ],
    );
    for r in &f.resources {
        let tags = r
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        plain.push_str(&format!(
            "{}\n",
            Text::ResourceLine.fill(lang, &[&r.resource_type, &r.id])
        ));
        resources.row(vec![
            Cell::code(&r.resource_type),
            Cell::code(&r.id),
            Cell::text(r.region.as_deref().unwrap_or("")),
            Cell::text(r.name().unwrap_or_default()),
            Cell::text(tags),
        ]);
    }
    let mut rich = format!(
        "<div class=\"runbook-finding\">{}<p>{}</p><h4>{}</h4>{}",
        facts.render(),
        html::text(&f.description),
        html::text(Text::ResourcesHeading.get(lang)),
        resources.render()
    );
    if let Some(url) = &f.remediation_url {
        plain.push_str(&format!("{}\n", Text::RemediationLink.fill(lang, &[url])));
        // The link is built by html::link (https only); the label is ours.
        let label = Text::RemediationLink.fill(lang, &[&"\u{0}"]);
        let (before, after) = label.split_once('\u{0}').unwrap_or((label.as_str(), ""));
        rich.push_str(&format!(
            "<p>{}{}{}</p>",
            html::text(before),
            html::link(url),
            html::text(after)
        ));
    }
    let raw = serde_json::to_string_pretty(&f.raw).unwrap_or_default();
    rich.push_str(&format!(
        "<details><summary>{}</summary>{}</details></div>",
        html::text(Text::FullFinding.get(lang)),
        html::pre(&raw)
    ));
    Bundle::html(
        plain.trim_end().to_string(),
        rich,
        serde_json::to_value(f).unwrap_or(Value::Null),
    )
}
