//! HTML fragments. Every piece of text that reaches HTML goes through [`text`],
//! so attacker-chosen strings (finding titles, tags, user arguments) show as text.

/// Escapes `s` for use as HTML text or a quoted attribute value.
pub fn text(s: &str) -> String {
    html_escape::encode_quoted_attribute(s).into_owned()
}

/// Whether a URL may be a clickable link: http(s) only, in any letter case. Other
/// schemes (`javascript:`, `data:`, `file:`, `mailto:`, scheme-relative `//`) stay text.
pub fn is_web_url(url: &str) -> bool {
    let head = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    head.starts_with("https://") || head.starts_with("http://")
}

/// The opening tag of a link to a web URL; the only attribute the kernel ever
/// writes from outside data. Callers check [`is_web_url`] first.
pub fn anchor_open(url: &str) -> String {
    format!("<a href=\"{}\">", text(url))
}

/// A URL shown in full: a link when it is http(s), text otherwise.
pub fn link(url: &str) -> String {
    if is_web_url(url) {
        format!("{}{}</a>", anchor_open(url), text(url))
    } else {
        text(url)
    }
}

/// A table whose cells are escaped text unless built with [`Cell::markup`].
#[derive(Debug, Default)]
pub struct Table {
    class: &'static str,
    headers: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

#[derive(Debug, Clone)]
pub struct Cell(String);

impl Cell {
    pub fn text(s: impl AsRef<str>) -> Cell {
        Cell(text(s.as_ref()))
    }

    pub fn code(s: impl AsRef<str>) -> Cell {
        Cell(format!("<code>{}</code>", text(s.as_ref())))
    }

    /// Markup produced by this module's own builders; never pass untrusted text here.
    pub fn markup(s: String) -> Cell {
        Cell(s)
    }
}

impl Table {
    pub fn new(class: &'static str, headers: &[&str]) -> Table {
        Table {
            class,
            headers: headers.iter().map(|h| text(h)).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut out = format!("<table class=\"{}\"><thead><tr>", self.class);
        for h in &self.headers {
            out.push_str(&format!("<th style=\"text-align:left\">{h}</th>"));
        }
        out.push_str("</tr></thead><tbody>");
        for row in &self.rows {
            out.push_str("<tr>");
            for cell in row {
                out.push_str(&format!("<td style=\"text-align:left\">{}</td>", cell.0));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
        out
    }
}

/// A `<pre>` block of escaped text.
pub fn pre(s: &str) -> String {
    format!("<pre>{}</pre>", text(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_inert() {
        let hostile = "<img src=x onerror=alert(1)></td><script>alert(1)</script>\"'&";
        let mut t = Table::new("t", &["<b>h</b>"]);
        t.row(vec![Cell::text(hostile)]);
        let html = t.render();
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<img"));
        assert!(!html.contains("<b>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(pre(hostile).contains("&lt;img"));
    }

    #[test]
    fn only_web_urls_become_links() {
        assert_eq!(
            link("https://docs.aws.amazon.com/a?b=1&c=\"2\""),
            "<a href=\"https://docs.aws.amazon.com/a?b=1&amp;c=&quot;2&quot;\">https://docs.aws.amazon.com/a?b=1&amp;c=&quot;2&quot;</a>"
        );
        assert_eq!(link("javascript:alert(1)"), "javascript:alert(1)");
        assert_eq!(link("data:text/html,<b>"), "data:text/html,&lt;b&gt;");
        assert!(is_web_url("HTTPS://x") && is_web_url("http://"));
        for bad in [
            "//x",
            "file:///x",
            "mailto:a@b",
            "",
            "httpx://",
            "ht",
            "\u{e9}http://",
        ] {
            assert!(!is_web_url(bad), "{bad}");
        }
    }
}
