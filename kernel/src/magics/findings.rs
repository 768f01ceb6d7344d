//! `%findings`: list Security Hub findings, remembered for later cells.

use clap::Parser;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use runbook::Severity;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use runbook::cloud::{FetchProgress, Organisation, sort_findings};
use runbook::finding::Finding;
use runbook::finding::{AccountId, ComplianceStatus, ControlId, FindingFilter, WorkflowStatus};
use serde_json::json;

use crate::context::{Context, Listing, MagicError};
use crate::output::{DisplayHandle, Output};
use crate::render::text::Text;
use crate::render::{Bundle, findings as render, html};
use runbook::settings::Lang;

pub const DEFAULT_LIMIT: usize = 50;
/// How long a listing waits to learn the caller's account.
const CALLER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
pub const MAX_LIMIT: u32 = 100_000;
/// How often the table is redrawn while pages arrive.
const REDRAW_EVERY: Duration = Duration::from_millis(250);

fn labels<T: Copy>(all: &[T], label: fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|v| label(*v)).collect()
}

/// Any compliance status, and none: findings that are not control checks.
const ANY_STATUS: &str = "ANY";

fn compliance_choices() -> Vec<&'static str> {
    let mut choices = labels(ComplianceStatus::ALL, ComplianceStatus::label);
    choices.push(ANY_STATUS);
    choices
}

fn parse_compliance(raw: &str) -> Result<Option<ComplianceStatus>, String> {
    if raw.eq_ignore_ascii_case(ANY_STATUS) {
        return Ok(None);
    }
    raw.parse::<ComplianceStatus>()
        .map(Some)
        .map_err(|e| e.to_string())
}

fn parse_region(raw: &str) -> Result<String, String> {
    if runbook::settings::is_region(raw) {
        Ok(raw.to_string())
    } else {
        Err(format!(
            "'{raw}' is not an AWS region; accepted: names such as us-east-1 or ap-northeast-1"
        ))
    }
}

/// List Security Hub findings as a numbered table with counts and a chart (default: compliance FAILED, workflow NEW or NOTIFIED, record state ACTIVE, 50 rows)
#[derive(Debug, Parser)]
pub struct FindingsArgs {
    /// Severity labels, comma-separated
    #[arg(long, value_delimiter = ',', ignore_case = true, value_name = "SEVERITY",
          value_parser = PossibleValuesParser::new(labels(&Severity::ALL, Severity::label)).try_map(|s| s.parse::<Severity>()))]
    pub severity: Vec<Severity>,
    /// Control ids, comma-separated, e.g. EC2.19,IAM.7
    #[arg(long, value_delimiter = ',', value_name = "CONTROL", value_parser = |s: &str| s.parse::<ControlId>())]
    pub control: Vec<ControlId>,
    /// Compliance statuses, comma-separated (default FAILED); ANY also lists findings that check no control (GuardDuty threats, Inspector CVEs)
    #[arg(long, value_delimiter = ',', ignore_case = true, value_name = "STATUS",
          value_parser = PossibleValuesParser::new(compliance_choices()).try_map(|s| parse_compliance(&s)))]
    pub status: Vec<Option<ComplianceStatus>>,
    /// Workflow statuses, comma-separated (default NEW,NOTIFIED)
    #[arg(long, value_delimiter = ',', ignore_case = true, value_name = "WORKFLOW",
          value_parser = PossibleValuesParser::new(labels(WorkflowStatus::ALL, WorkflowStatus::label)).try_map(|s| s.parse::<WorkflowStatus>()))]
    pub workflow: Vec<WorkflowStatus>,
    /// AWS account ids (12 digits), comma-separated
    #[arg(long, value_delimiter = ',', value_name = "ID", value_parser = |s: &str| s.parse::<AccountId>())]
    pub account: Vec<AccountId>,
    /// Regions, comma-separated
    #[arg(long, value_delimiter = ',', value_name = "REGION", value_parser = parse_region)]
    pub region: Vec<String>,
    /// ASFF resource types, comma-separated, e.g. AwsEc2SecurityGroup
    #[arg(long = "resource-type", value_delimiter = ',', value_name = "TYPE")]
    pub resource_type: Vec<String>,
    /// Product name contains this text, e.g. GuardDuty
    #[arg(long, value_name = "TEXT")]
    pub product: Option<String>,
    /// Title contains this text (case-insensitive)
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    /// Keep at most N findings (default 50)
    #[arg(long, value_name = "N", conflicts_with = "all",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_LIMIT)))]
    pub limit: Option<u32>,
    /// Keep every matching finding
    #[arg(long)]
    pub all: bool,
    /// Only count the matching findings, by severity and account; read no page
    #[arg(long, conflicts_with_all = ["limit", "all"])]
    pub counts: bool,
}

impl FindingsArgs {
    pub fn filter(&self) -> FindingFilter {
        let mut filter = FindingFilter {
            severities: self.severity.clone(),
            control_ids: self.control.clone(),
            accounts: self.account.clone(),
            regions: self.region.clone(),
            resource_types: self.resource_type.clone(),
            product: self.product.clone(),
            title_contains: self.title.clone(),
            limit: if self.all {
                None
            } else {
                Some(self.limit.map_or(DEFAULT_LIMIT, |n| n as usize))
            },
            ..FindingFilter::default()
        };
        if self.status.contains(&None) {
            filter.compliance_statuses = Vec::new();
        } else if !self.status.is_empty() {
            filter.compliance_statuses = self.status.iter().flatten().copied().collect();
        }
        if !self.workflow.is_empty() {
            filter.workflow_statuses = self.workflow.clone();
        }
        filter
    }
}

fn progress_bundle(backend: &str, p: Option<FetchProgress>, lang: Lang) -> Bundle {
    let text = match p {
        None => Text::ReadingFindings.fill(lang, &[&backend]),
        Some(p) => {
            let mut t = Text::ReadingFindingsPage.fill(lang, &[&backend, &p.pages, &p.findings]);
            if p.unreadable > 0 {
                t.push_str(&Text::ReadingUnreadable.fill(lang, &[&p.unreadable]));
            }
            t
        }
    };
    Bundle::html(
        text.clone(),
        format!("<p><em>{}</em></p>", html::text(&text)),
        json!({"progress": p}),
    )
}

/// Shows why reading failed in the cell's display, and gives the error back.
fn failed(out: &dyn Output, handle: &DisplayHandle, error: MagicError, lang: Lang) -> MagicError {
    let text = Text::ReadingFailed.fill(lang, &[&error.evalue]);
    out.update(
        handle,
        Bundle::html(
            text.clone(),
            html::pre(&text),
            json!({"error": error.evalue}),
        ),
    );
    error
}

pub async fn run(args: FindingsArgs, cx: &mut Context<'_>) -> Result<(), MagicError> {
    let out = cx.out;
    let filter = args.filter();
    let lang = cx.settings().lang;
    let connected = cx.cloud().await?;
    let info = connected.describe();
    let source = format!("{} ({})", info.kind, info.region);
    let handle = out.display(progress_bundle(&source, None, lang));
    // Who is asking, so the listing names the account (cached after the first
    // time); a slow or failing STS only leaves the account out. It is asked
    // beside the counts and pages, not before them.
    let asking = async {
        let _ = tokio::time::timeout(CALLER_TIMEOUT, connected.cloud.caller_identity()).await;
    };
    if args.counts {
        let (counted, organisation, ()) = cx
            .cancellable(async {
                tokio::join!(
                    connected.cloud.count_findings(&filter),
                    connected.cloud.organisation(),
                    asking
                )
            })
            .await?;
        return match counted {
            Ok(counts) => {
                if counts.total > 0 {
                    out.display(render::severity_chart(
                        &render::severity_counts(&counts),
                        lang,
                    ));
                }
                out.update(&handle, render::counted(&counts, &organisation, lang));
                Ok(())
            }
            Err(error) => Err(failed(out, &handle, error.into(), lang)),
        };
    }
    // Counts come from one aggregate call, so the chart shows while the pages
    // are still being read; counts, account names and pages run side by side.
    let names: Mutex<Option<Organisation>> = Mutex::new(None);
    let naming = async {
        let organisation = connected.cloud.organisation().await;
        if let Ok(mut n) = names.lock() {
            *n = Some(organisation);
        }
    };
    let expected: Mutex<Option<u64>> = Mutex::new(None);
    let charted = Mutex::new(false);
    let counting = async {
        let counted = connected.cloud.count_findings(&filter).await;
        match &counted {
            Ok(counts) => {
                if let Ok(mut e) = expected.lock() {
                    *e = Some(counts.total);
                }
                if counts.total > 0 {
                    out.display(render::severity_chart(
                        &render::severity_counts(counts),
                        lang,
                    ));
                    if let Ok(mut c) = charted.lock() {
                        *c = true;
                    }
                }
            }
            Err(why) => {
                let text = Text::FindingsCountsUnavailable.fill(lang, &[why]);
                out.display(Bundle::html(
                    text.clone(),
                    format!("<p><em>{}</em></p>", html::text(&text)),
                    json!({"counts_unavailable": why.to_string()}),
                ));
            }
        }
    };
    let filter_text = filter.describe();
    let rows = filter.limit.unwrap_or(usize::MAX).min(render::MAX_ROWS);
    let mut last = None;
    let mut most_severe: Vec<Finding> = Vec::new();
    let mut shown_at: Option<Instant> = None;
    let mut report = |p: FetchProgress, page: &[Finding]| {
        last = Some(p);
        if page.is_empty() {
            return;
        }
        most_severe.extend_from_slice(page);
        sort_findings(&mut most_severe);
        most_severe.truncate(rows);
        // Pages can come many a second; redrawing a few times a second is enough.
        if shown_at.is_some_and(|t| t.elapsed() < REDRAW_EVERY) {
            return;
        }
        shown_at = Some(Instant::now());
        let total = expected.lock().ok().and_then(|e| *e);
        let organisation = names
            .lock()
            .ok()
            .and_then(|n| n.clone())
            .unwrap_or_default();
        out.update(
            &handle,
            render::partial_listing(
                &most_severe,
                p.findings,
                total,
                &filter_text,
                &info,
                &organisation,
                lang,
            ),
        );
    };
    let fetching = connected.cloud.get_findings(&filter, &mut report);
    let fetched = cx
        .cancellable(async { tokio::join!(counting, naming, asking, fetching).3 })
        .await;
    let findings = match fetched.and_then(|r| r.map_err(MagicError::from)) {
        Ok(findings) => findings,
        Err(error) => return Err(failed(out, &handle, error, lang)),
    };
    let chart = charted.into_inner().unwrap_or(false);
    let organisation = names.into_inner().ok().flatten().unwrap_or_default();
    let limited = filter.limit.is_some_and(|n| findings.len() >= n);
    let mut filter_text = filter_text;
    if let Some(p) = last
        && p.unreadable > 0
    {
        filter_text.push_str(&format!(
            "; {} findings could not be read and are left out",
            p.unreadable
        ));
    }
    // Described again: the API in use is known once the first page was read.
    let info = connected.describe();
    out.update(
        &handle,
        render::listing(&findings, &filter_text, &info, &organisation, limited, lang),
    );
    if !chart && !findings.is_empty() {
        out.display(render::severity_chart(&render::counts(&findings), lang));
    }
    cx.session.listing = Some(Listing {
        findings,
        filter,
        filter_text,
        backend: info,
        organisation,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Session;
    use crate::magics::run_cell;
    use crate::output::recording::RecordingOutput;
    use crate::render::Rich;
    use runbook::settings::{BackendChoice, Settings};

    fn sandbox_session() -> Session {
        let mut settings = Settings::default();
        settings.backend = BackendChoice::Sandbox;
        Session::new(settings, Vec::new())
    }

    async fn run_ok(session: &mut Session, code: &str) -> RecordingOutput {
        let out = RecordingOutput::new();
        if let Err(e) = run_cell(code, session, &out).await {
            panic!("{code}: {e:?}");
        }
        out
    }

    fn html_of(bundle: &Bundle) -> &str {
        match &bundle.rich {
            Rich::Html(h) => h,
            Rich::Markdown(m) => m,
        }
    }

    #[tokio::test]
    async fn default_listing_is_open_failed_findings_most_severe_first() {
        let mut s = sandbox_session();
        let out = run_ok(&mut s, "%findings").await;
        let listing = s.listing.as_ref().expect("listing remembered");
        assert!(!listing.findings.is_empty());
        assert!(listing.findings.len() <= DEFAULT_LIMIT);
        for pair in listing.findings.windows(2) {
            assert!(pair[0].severity >= pair[1].severity, "sorted by severity");
        }
        for f in &listing.findings {
            assert_eq!(f.compliance.status, Some(ComplianceStatus::Failed));
            assert!(matches!(
                f.workflow,
                WorkflowStatus::New | WorkflowStatus::Notified
            ));
        }
        let bundles = out.last_bundles();
        assert_eq!(bundles.len(), 2, "the listing and the chart");
        let table = &bundles[0];
        assert_eq!(table.json["total"], listing.findings.len());
        assert_eq!(table.json["shown"][0]["number"], 1);
        assert_eq!(
            table.json["shown"][0]["id"],
            listing.findings[0].id.as_str()
        );
        assert!(
            table.plain.contains("(default)"),
            "the defaults are said: {}",
            table.plain
        );
        assert!(
            bundles[1]
                .extra
                .iter()
                .any(|(mime, _)| *mime == crate::render::VEGA_LITE_MIME)
        );
    }

    #[tokio::test]
    async fn filters_narrow_the_listing() {
        let mut s = sandbox_session();
        run_ok(
            &mut s,
            "%findings --severity critical,high --region us-east-1",
        )
        .await;
        let listing = s.listing.take().unwrap();
        assert!(!listing.findings.is_empty());
        assert!(
            listing
                .findings
                .iter()
                .all(|f| f.severity >= Severity::High && f.region == "us-east-1")
        );

        run_ok(&mut s, "%findings --control EC2.19 --account 222222222222").await;
        let listing = s.listing.take().unwrap();
        assert!(!listing.findings.is_empty());
        assert!(
            listing
                .findings
                .iter()
                .all(
                    |f| f.control_id.as_ref().map(|c| c.as_str()) == Some("EC2.19")
                        && f.account.as_str() == "222222222222"
                )
        );

        run_ok(
            &mut s,
            "%findings --resource-type AwsAccount --title password",
        )
        .await;
        let listing = s.listing.take().unwrap();
        assert!(
            listing
                .findings
                .iter()
                .all(|f| f.title.to_lowercase().contains("password"))
        );

        run_ok(&mut s, "%findings --limit 3").await;
        assert_eq!(s.listing.take().unwrap().findings.len(), 3);

        run_ok(
            &mut s,
            "%findings --status PASSED --workflow RESOLVED --all",
        )
        .await;
        let listing = s.listing.take().unwrap();
        assert!(!listing.findings.is_empty());
        assert!(
            listing
                .findings
                .iter()
                .all(|f| f.workflow == WorkflowStatus::Resolved)
        );
    }

    #[tokio::test]
    async fn attacker_text_is_escaped() {
        let mut s = sandbox_session();
        let out = run_ok(&mut s, "%findings --all").await;
        let listing_html = html_of(&out.last_bundles()[0]).to_string();
        let hostile = s
            .listing
            .as_ref()
            .unwrap()
            .findings
            .iter()
            .position(|f| {
                serde_json::to_string(&f.raw)
                    .unwrap_or_default()
                    .contains("onerror")
            })
            .expect("the sandbox carries a hostile finding");
        let out = run_ok(&mut s, &format!("%finding {}", hostile + 1)).await;
        let detail_html = html_of(&out.last_bundles()[0]).to_string();
        for html in [&listing_html, &detail_html] {
            assert!(!html.contains("<img"), "raw tag in output");
            assert!(!html.contains("<script>"), "raw script in output");
        }
        assert!(detail_html.contains("&lt;img") || listing_html.contains("&lt;img"));
    }

    #[tokio::test]
    async fn references_need_a_listing_and_a_valid_number() {
        let mut s = sandbox_session();
        let out = RecordingOutput::new();
        let err = run_cell("%finding 1", &mut s, &out).await.unwrap_err();
        assert!(err.evalue.contains("run %findings first"), "{}", err.evalue);
        run_ok(&mut s, "%findings --limit 2").await;
        let err = run_cell("%finding 3", &mut s, &out).await.unwrap_err();
        assert!(err.evalue.contains("1 to 2"), "{}", err.evalue);
        let err = run_cell("%finding 0", &mut s, &out).await.unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::Usage);
        let err = run_cell(
            "%finding arn:aws:securityhub:us-east-1:111111111111:nope",
            &mut s,
            &out,
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn a_finding_id_works_without_a_listing() {
        let mut s = sandbox_session();
        run_ok(&mut s, "%findings --limit 1").await;
        let id = s.listing.take().unwrap().findings[0].id.clone();
        let out = run_ok(&mut s, &format!("%finding '{id}'")).await;
        assert_eq!(out.last_bundles()[0].json["id"], id.as_str());
    }

    #[test]
    fn bad_values_say_what_is_accepted() {
        for (code, expected) in [
            ("%findings --severity severe", "possible values"),
            ("%findings --account 12345", "12 digits"),
            ("%findings --control port22", "EC2.19"),
            ("%findings --region mars", "us-east-1"),
            ("%findings --limit 10 --all", "cannot be used with"),
        ] {
            let inv = crate::magics::split_cell(code).unwrap();
            let err = crate::magics::parse_call(&inv[0]).unwrap_err();
            let all = err.traceback().join("\n");
            assert!(all.contains(expected), "{code}: {all}");
        }
    }
}
