//! Model-written Markdown to HTML. A model's text can echo attacker-chosen
//! finding text, so raw HTML in it is shown as text, never passed through.

use pulldown_cmark::{Event, Options, Parser, html};

pub fn to_html(markdown: &str) -> String {
    let parser = Parser::new_ext(
        markdown,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    )
    .map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        // Links keep their text; only http(s) targets stay links.
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, parser);
    neutralise_links(&out)
}

/// pulldown-cmark escapes text but keeps link and image targets as written; drop
/// any target that is not http(s) so `javascript:` URLs cannot ride along.
fn neutralise_links(html: &str) -> String {
    neutralise_attr(&neutralise_attr(html, "href=\""), "src=\"")
}

fn neutralise_attr(html: &str, attr: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find(attr) {
        let (before, after) = rest.split_at(start + attr.len());
        out.push_str(before);
        let end = after.find('"').unwrap_or(after.len());
        let target = &after[..end];
        if target.starts_with("https://") || target.starts_with("http://") {
            out.push_str(target);
        } else {
            out.push('#');
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_becomes_text() {
        let html =
            to_html("Hello <img src=x onerror=alert(1)> and <script>alert(1)</script>\n\n**bold**");
        assert!(!html.contains("<img"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;img"));
        assert!(html.contains("<strong>bold</strong>"));
    }

    #[test]
    fn only_web_links_survive() {
        let html = to_html(
            "[a](javascript:alert(1)) [b](https://docs.aws.amazon.com/x) ![c](javascript:x)",
        );
        assert!(!html.contains("javascript:"));
        assert!(html.contains("href=\"https://docs.aws.amazon.com/x\""));
    }
}
