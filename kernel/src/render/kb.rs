//! Knowledge-base passages, overviews, and the "organisation policy consulted"
//! section of explanations and plans. Policy text is shown escaped, with the
//! query's words marked.

use runbook::kb::{Overview, Passage, PolicyContext, SearchResult};
use runbook::settings::Lang;
use serde_json::{Value, json};

use super::html::{self, Cell, Table};
use super::{Bundle, Rich};

/// Characters of a passage shown in a listing.
const EXCERPT_CHARS: usize = 600;

/// The largest char boundary at or before `i`.
fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A window of about `max_chars` around the first highlight: (start, end) bytes.
fn window(text: &str, highlights: &[(usize, usize)], max_chars: usize) -> (usize, usize) {
    if text.chars().count() <= max_chars {
        return (0, text.len());
    }
    let first = highlights.first().map_or(0, |(a, _)| *a);
    // Start a little before the first match, on a char boundary.
    let lead: usize = text[..floor_boundary(text, first)]
        .chars()
        .rev()
        .take(max_chars / 4)
        .map(char::len_utf8)
        .sum();
    let start = floor_boundary(text, first.saturating_sub(lead));
    let len: usize = text[start..]
        .chars()
        .take(max_chars)
        .map(char::len_utf8)
        .sum();
    (start, start + len)
}

/// A window of the passage split into (text, is_match) pieces, and whether
/// text was cut before and after it.
fn pieces<'t>(
    text: &'t str,
    highlights: &[(usize, usize)],
    max_chars: usize,
) -> (bool, Vec<(&'t str, bool)>, bool) {
    let (start, end) = window(text, highlights, max_chars);
    let mut out = Vec::new();
    let mut at = start;
    for &(a, b) in highlights {
        // Highlights come from the same text; clamp anyway so bad ranges cannot panic.
        let (a, b) = (
            floor_boundary(text, a).max(at),
            floor_boundary(text, b).min(end),
        );
        if b <= a {
            continue;
        }
        out.push((&text[at..a], false));
        out.push((&text[a..b], true));
        at = b;
    }
    out.push((&text[at..end], false));
    (start > 0, out, end < text.len())
}

/// The passage text (or a window of it) as escaped HTML with `<mark>` on matches.
pub fn marked_html(text: &str, highlights: &[(usize, usize)], max_chars: usize) -> String {
    let (cut_before, parts, cut_after) = pieces(text, highlights, max_chars);
    let mut out = String::from(if cut_before { "…" } else { "" });
    for (piece, is_match) in parts {
        if is_match {
            out.push_str(&format!("<mark>{}</mark>", html::text(piece)));
        } else {
            out.push_str(&html::text(piece));
        }
    }
    if cut_after {
        out.push('…');
    }
    out
}

/// The passage text (or a window of it) as plain text with matches in «».
fn marked_plain(text: &str, highlights: &[(usize, usize)], max_chars: usize) -> String {
    let (_, parts, _) = pieces(text, highlights, max_chars);
    let joined: String = parts
        .into_iter()
        .map(|(piece, is_match)| {
            if is_match {
                format!("«{piece}»")
            } else {
                piece.to_string()
            }
        })
        .collect();
    joined.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn passage_json(p: &Passage) -> Value {
    json!({
        "source": p.source,
        "heading": p.heading,
        "score": p.score,
        "text": p.text,
        "highlights": p.highlights,
    })
}

fn problems_html(problems: &[String]) -> String {
    if problems.is_empty() {
        return String::new();
    }
    format!(
        "<p style=\"border-left:4px solid #e07700;padding-left:8px\"><strong>Not indexed or not trusted:</strong></p><ul>{}</ul>",
        problems
            .iter()
            .map(|p| format!("<li>{}</li>", html::text(p)))
            .collect::<String>()
    )
}

/// `%kb QUERY`: the passages with source, heading and score, query words marked.
pub fn passages(result: &SearchResult, top: usize) -> Bundle {
    let problems: Vec<String> = result.problems.iter().map(ToString::to_string).collect();
    let mut plain = format!(
        "{} passage{} for \"{}\" from {}\n",
        result.passages.len(),
        if result.passages.len() == 1 { "" } else { "s" },
        result.query,
        result.kb.label()
    );
    let mut rich = format!(
        "<div class=\"runbook-kb\"><p><strong>{}</strong> passage(s) for <q>{}</q> from {}</p>",
        result.passages.len(),
        html::text(&result.query),
        html::text(&result.kb.label())
    );
    if result.passages.is_empty() {
        plain.push_str("No passage matches; try other words.\n");
        rich.push_str("<p>No passage matches; try other words.</p>");
    }
    let mut table = Table::new(
        "runbook-kb-passages",
        &["#", "Source", "Heading", "Score", "Passage"],
    );
    for (i, p) in result.passages.iter().enumerate() {
        plain.push_str(&format!(
            "{}. {} — {} (score {:.2})\n   {}\n",
            i + 1,
            p.source,
            p.heading,
            p.score,
            marked_plain(&p.text, &p.highlights, 240)
        ));
        table.row(vec![
            Cell::text((i + 1).to_string()),
            Cell::code(&p.source),
            Cell::text(&p.heading),
            Cell::text(format!("{:.2}", p.score)),
            Cell::markup(marked_html(&p.text, &p.highlights, EXCERPT_CHARS)),
        ]);
    }
    if !result.passages.is_empty() {
        rich.push_str(&table.render());
    }
    for p in &problems {
        plain.push_str(&format!("warning: {p}\n"));
    }
    rich.push_str(&problems_html(&problems));
    rich.push_str("</div>");
    Bundle::html(
        plain.trim_end().to_string(),
        rich,
        json!({
            "kb": result.kb,
            "query": result.query,
            "top": top,
            "passages": result.passages.iter().map(passage_json).collect::<Vec<_>>(),
            "problems": result.problems,
        }),
    )
}

/// `%kb` alone: what the knowledge base holds and which control parameters it sets.
pub fn overview(o: &Overview) -> Bundle {
    let mut plain = format!("Knowledge base: {}\n", o.kb.label());
    let mut rich = format!(
        "<div class=\"runbook-kb\"><p><strong>Knowledge base:</strong> {}</p>",
        html::text(&o.kb.label())
    );
    if let (Some(d), Some(p)) = (o.documents, o.passages) {
        plain.push_str(&format!(
            "{d} documents, {p} passages (one per heading section)\n"
        ));
        rich.push_str(&format!(
            "<p>{d} documents, {p} passages (one per heading section)</p>"
        ));
    } else {
        plain.push_str("Search it with %kb QUERY.\n");
        rich.push_str("<p>Search it with <code>%kb QUERY</code>.</p>");
    }
    let mut values = Table::new(
        "runbook-kb-values",
        &["Control", "Parameter", "Value", "Source", "Heading"],
    );
    let mut any = false;
    for (control, params) in &o.values.values {
        for (parameter, v) in params {
            any = true;
            plain.push_str(&format!(
                "  {control} {parameter} = {} ({}, {})\n",
                v.value, v.source, v.heading
            ));
            values.row(vec![
                Cell::code(control),
                Cell::code(parameter),
                Cell::code(v.value.to_string()),
                Cell::code(&v.source),
                Cell::text(&v.heading),
            ]);
        }
    }
    if any {
        rich.push_str("<h4>Control parameters plans will follow</h4>");
        rich.push_str(&values.render());
    } else {
        plain.push_str("No control parameters are set in front matter.\n");
        rich.push_str("<p>No control parameters are set in front matter.</p>");
    }
    if !o.ignored.is_empty() {
        rich.push_str(&format!(
            "<details><summary>Front matter not used ({})</summary><ul>{}</ul></details>",
            o.ignored.len(),
            o.ignored
                .iter()
                .map(|i| format!("<li>{}</li>", html::text(i)))
                .collect::<String>()
        ));
        for i in &o.ignored {
            plain.push_str(&format!("not used: {i}\n"));
        }
    }
    let problems: Vec<String> = o.problems.iter().map(ToString::to_string).collect();
    for p in &problems {
        plain.push_str(&format!("warning: {p}\n"));
    }
    rich.push_str(&problems_html(&problems));
    rich.push_str("</div>");
    Bundle::html(plain.trim_end().to_string(), rich, json!(o))
}

fn consulted_labels(lang: Lang) -> [&'static str; 3] {
    match lang {
        Lang::En => [
            "Organisation policy consulted",
            "No knowledge base is configured, so the organisation's policies were not consulted (%config kb=FOLDER or a Bedrock Knowledge Base id).",
            "No policy passage matched this finding.",
        ],
        Lang::Ja => [
            "参照した組織のポリシー",
            "ナレッジベースが設定されていないため、組織のポリシーは参照していません (%config kb=フォルダー または Bedrock ナレッジベース ID)。",
            "この検出結果に該当するポリシーの記述はありませんでした。",
        ],
    }
}

/// Adds what the knowledge base said about the finding (or that none was
/// consulted) to an explanation's or a plan's bundle.
pub fn with_policy(mut bundle: Bundle, policy: Option<&PolicyContext>, lang: Lang) -> Bundle {
    let [title, none, nothing] = consulted_labels(lang);
    let (plain, rich) = match policy {
        None => (
            none.to_string(),
            format!("<p><em>{}</em></p>", html::text(none)),
        ),
        Some(ctx) if ctx.passages.is_empty() => (
            format!("{title} ({}): {nothing}", ctx.kb.label()),
            format!(
                "<p><strong>{}</strong> ({}): {}</p>",
                html::text(title),
                html::text(&ctx.kb.label()),
                html::text(nothing)
            ),
        ),
        Some(ctx) => {
            let mut plain = format!("{title} ({}):\n", ctx.kb.label());
            let mut items = String::new();
            for p in &ctx.passages {
                plain.push_str(&format!(
                    "  - {} — {} (score {:.2})\n",
                    p.source, p.heading, p.score
                ));
                items.push_str(&format!(
                    "<li><code>{}</code> — {} <small>(score {:.2})</small><br><small>{}</small></li>",
                    html::text(&p.source),
                    html::text(&p.heading),
                    p.score,
                    marked_html(&p.text, &p.highlights, 240)
                ));
            }
            (
                plain.trim_end().to_string(),
                format!(
                    "<details><summary><strong>{}</strong> ({}, {} passages)</summary><ul>{items}</ul></details>",
                    html::text(title),
                    html::text(&ctx.kb.label()),
                    ctx.passages.len()
                ),
            )
        }
    };
    bundle.plain = format!("{}\n\n{plain}", bundle.plain);
    match &mut bundle.rich {
        Rich::Html(h) => h.push_str(&rich),
        // Markdown carries the plain form: it cannot hold the HTML above.
        Rich::Markdown(m) => {
            m.push_paragraph_break().push_text(&plain);
        }
    }
    if let Value::Object(map) = &mut bundle.json {
        map.insert(
            "policy".into(),
            match policy {
                None => json!({"consulted": false}),
                Some(ctx) => json!({
                    "consulted": true,
                    "kb": ctx.kb,
                    "query": ctx.query,
                    "passages": ctx.passages.iter().map(|p| json!({"source": p.source, "heading": p.heading, "score": p.score})).collect::<Vec<_>>(),
                    "values": ctx.values,
                }),
            },
        );
    }
    bundle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_escaped_and_windows_stay_on_char_boundaries() {
        let text = "<script>x</script> パスワードは 64 文字以上";
        let hl = runbook::kb::text::highlights(text, &runbook::kb::text::query_terms("パスワード"));
        let html = marked_html(text, &hl, 600);
        assert!(html.contains("<mark>パスワード</mark>"), "{html}");
        assert!(!html.contains("<script>"));
        let long = format!("{}パスワード{}", "語".repeat(500), "字".repeat(500));
        let hl =
            runbook::kb::text::highlights(&long, &runbook::kb::text::query_terms("パスワード"));
        let html = marked_html(&long, &hl, 100);
        assert!(html.starts_with('…') && html.ends_with('…'));
        assert!(html.contains("<mark>パスワード</mark>"));
        // Out-of-range or mid-character ranges do not panic.
        let _ = marked_html("abc", &[(1, 99), (2, 1)], 10);
        let _ = marked_html("日本", &[(1, 2)], 10);
    }
}
