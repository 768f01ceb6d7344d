//! Builders for what a magic shows: plain text, HTML or Markdown, and the JSON
//! result. All escaping of untrusted text lives here.

pub mod accounts;
pub mod approval;
pub mod ask;
pub mod findings;
pub mod html;
pub mod kb;
pub mod markdown;
pub mod plan;
pub mod recover;
pub mod text;

use serde_json::Value;

pub use markdown::SafeMarkdown;

/// The MIME type that carries a magic's result struct as JSON.
pub const RUNBOOK_MIME: &str = "application/vnd.runbook+json";
pub const VEGA_LITE_MIME: &str = "application/vnd.vegalite.v5+json";

/// The human-readable rich form of a result. Markdown is only ever [`SafeMarkdown`]:
/// JupyterLab renders `text/markdown` itself and would load images from it.
#[derive(Debug, Clone, PartialEq)]
pub enum Rich {
    Html(String),
    Markdown(SafeMarkdown),
}

/// One display: text/plain, a rich form and the result as JSON, plus optional extras
/// such as a Vega-Lite chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    pub plain: String,
    pub rich: Rich,
    pub json: Value,
    pub extra: Vec<(&'static str, Value)>,
}

impl Bundle {
    pub fn html(plain: impl Into<String>, html: impl Into<String>, json: Value) -> Bundle {
        Bundle {
            plain: plain.into(),
            rich: Rich::Html(html.into()),
            json,
            extra: Vec::new(),
        }
    }

    pub fn markdown(plain: impl Into<String>, markdown: SafeMarkdown, json: Value) -> Bundle {
        Bundle {
            plain: plain.into(),
            rich: Rich::Markdown(markdown),
            json,
            extra: Vec::new(),
        }
    }

    pub fn with_extra(mut self, mime: &'static str, value: Value) -> Bundle {
        self.extra.push((mime, value));
        self
    }

    /// The bundle as a MIME map, the shape display_data carries.
    pub fn to_mime_map(&self) -> serde_json::Map<String, Value> {
        let mut map = serde_json::Map::new();
        map.insert("text/plain".into(), Value::String(self.plain.clone()));
        match &self.rich {
            Rich::Html(h) => map.insert("text/html".into(), Value::String(h.clone())),
            Rich::Markdown(m) => map.insert("text/markdown".into(), Value::String(m.to_string())),
        };
        map.insert(RUNBOOK_MIME.into(), self.json.clone());
        for (mime, value) in &self.extra {
            map.insert((*mime).into(), value.clone());
        }
        map
    }
}
