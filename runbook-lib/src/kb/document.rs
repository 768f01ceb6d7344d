//! One policy document: its YAML front matter (machine-readable control
//! parameters) and its passages, one per heading section.

use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};
use serde_json::Value;

use crate::catalog::{self, PolicyValue, PolicyValues};

/// One heading section of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The heading path, e.g. "Password policy › Minimum length".
    pub heading: String,
    /// The section's Markdown below its heading.
    pub text: String,
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolicyDocument {
    pub sections: Vec<Section>,
    /// Control parameters from the front matter, cited at the section stating them.
    pub values: PolicyValues,
    /// Front matter entries the catalog does not use (shown, not applied).
    pub ignored: Vec<String>,
}

/// Separates a leading `---` YAML block from the Markdown body.
/// Returns (front matter, body); no front matter gives ("", whole text).
pub fn split_front_matter(text: &str) -> Result<(&str, &str), String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return Ok(("", text));
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" || line.trim_end() == "..." {
            return Ok((&rest[..offset], &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    Err("the front matter starts with --- but has no closing --- line".to_string())
}

fn heading_rank(level: HeadingLevel) -> usize {
    level as usize
}

/// Splits Markdown into heading sections. Text before the first heading belongs
/// to a section named `title`.
pub fn sections(body: &str, title: &str) -> Vec<Section> {
    let mut out = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut current_heading = title.to_string();
    let mut section_start = 0;
    let mut heading: Option<(usize, String, usize)> = None;
    let push = |out: &mut Vec<Section>, heading: &str, text: &str| {
        let text = text.trim();
        if !text.is_empty() || out.is_empty() && !heading.is_empty() {
            out.push(Section {
                heading: heading.to_string(),
                text: text.to_string(),
            });
        }
    };
    for (event, range) in Parser::new(body).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                push(
                    &mut out,
                    &current_heading,
                    &body[section_start..range.start],
                );
                heading = Some((heading_rank(level), String::new(), range.end));
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, h, _)) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((rank, h, end)) = heading.take() {
                    path.retain(|(r, _)| *r < rank);
                    path.push((rank, h.trim().to_string()));
                    current_heading = path
                        .iter()
                        .map(|(_, h)| h.as_str())
                        .collect::<Vec<_>>()
                        .join(" › ");
                    section_start = end;
                }
            }
            _ => {}
        }
    }
    push(
        &mut out,
        &current_heading,
        &body[section_start.min(body.len())..],
    );
    out.retain(|s| !s.text.is_empty());
    out
}

// ASCII only, so "64文字" states 64 but "640" does not.
fn is_word_boundary(c: Option<char>) -> bool {
    c.is_none_or(|c| !c.is_ascii_alphanumeric())
}

/// Whether `text` states `value` as a whole word ("64", "true").
fn states(text: &str, value: &str) -> bool {
    text.match_indices(value).any(|(i, _)| {
        is_word_boundary(text[..i].chars().next_back())
            && is_word_boundary(text[i + value.len()..].chars().next())
    })
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Parses the `controls` entry of a front matter block into policy values,
/// citing for each the first section whose text states the value (else the first section).
pub fn parse_front_matter(
    yaml: &str,
    source: &str,
    sections: &[Section],
) -> Result<(PolicyValues, Vec<String>), String> {
    let mut values = PolicyValues::new();
    let mut ignored = Vec::new();
    if yaml.trim().is_empty() {
        return Ok((values, ignored));
    }
    let doc: Value = serde_yaml_ng::from_str(yaml).map_err(|e| format!("invalid YAML: {e}"))?;
    let top = match &doc {
        Value::Object(m) => m,
        Value::Null => return Ok((values, ignored)),
        _ => return Err("the front matter must be a mapping (key: value lines)".to_string()),
    };
    let Some(controls) = top.get("controls") else {
        return Ok((values, ignored));
    };
    let controls = controls.as_object().ok_or_else(|| {
        "controls must map control ids to parameters, e.g. controls: {IAM.7: {MinimumPasswordLength: 64}}".to_string()
    })?;
    let fallback = sections
        .first()
        .map(|s| s.heading.clone())
        .unwrap_or_default();
    for (control, params) in controls {
        let params = params.as_object().ok_or_else(|| {
            format!("controls.{control} must map parameter names to values, e.g. MinimumPasswordLength: 64")
        })?;
        let Some(accepted) = catalog::policy_parameters(control) else {
            ignored.push(format!(
                "{control}: the catalog takes no organisation parameters for this control (it takes them for {})",
                catalog::controls_with_policy_parameters().join(", ")
            ));
            continue;
        };
        for (param, value) in params {
            if !accepted.contains(&param.as_str()) {
                return Err(format!(
                    "controls.{control}.{param} is not a parameter of {control}; accepted: {}",
                    accepted.join(", ")
                ));
            }
            let text = scalar_text(value).ok_or_else(|| {
                format!("controls.{control}.{param} must be a number or true/false, not {value}")
            })?;
            let heading = sections
                .iter()
                .find(|s| states(&s.text, &text))
                .map_or_else(|| fallback.clone(), |s| s.heading.clone());
            values.insert(
                control,
                param,
                PolicyValue {
                    value: value.clone(),
                    source: source.to_string(),
                    heading,
                },
            );
        }
    }
    Ok((values, ignored))
}

/// The title of a document: the front matter's `title`, else its first heading, else `fallback`.
fn title_of(yaml: &str, body: &str, fallback: &str) -> String {
    let from_yaml = serde_yaml_ng::from_str::<Value>(yaml)
        .ok()
        .and_then(|v| v.get("title").and_then(Value::as_str).map(str::to_string));
    from_yaml
        .or_else(|| {
            sections(body, "")
                .first()
                .map(|s| s.heading.clone())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| fallback.to_string())
}

/// Parses a whole document. A malformed front matter is an error; its body is
/// still returned as sections so the passages stay searchable.
pub fn parse(text: &str, source: &str, fallback_title: &str) -> (PolicyDocument, Option<String>) {
    let (yaml, body) = match split_front_matter(text) {
        Ok(parts) => parts,
        Err(e) => {
            let doc = PolicyDocument {
                sections: sections(text, fallback_title),
                ..PolicyDocument::default()
            };
            return (doc, Some(e));
        }
    };
    let title = title_of(yaml, body, fallback_title);
    let sections = sections(body, &title);
    match parse_front_matter(yaml, source, &sections) {
        Ok((values, ignored)) => (
            PolicyDocument {
                sections,
                values,
                ignored,
            },
            None,
        ),
        Err(e) => (
            PolicyDocument {
                sections,
                ..PolicyDocument::default()
            },
            Some(format!("malformed front matter: {e}")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POLICY: &str = "---\ntitle: Password policy\ncontrols:\n  IAM.7:\n    MinimumPasswordLength: 64\n    RequireSymbols: true\n---\n# Password policy\n\nIntro text.\n\n## Length\n\nPasswords have at least 64 characters.\n\n## Characters\n\nSymbols are required: true.\n\n### Code blocks\n\n```\n# not a heading\n```\n";

    #[test]
    fn sections_follow_headings_and_code_blocks_are_not_headings() {
        let (doc, problem) = parse(POLICY, "password.md", "password");
        assert_eq!(problem, None);
        let headings: Vec<&str> = doc.sections.iter().map(|s| s.heading.as_str()).collect();
        assert_eq!(
            headings,
            [
                "Password policy",
                "Password policy › Length",
                "Password policy › Characters",
                "Password policy › Characters › Code blocks"
            ]
        );
        assert!(doc.sections[3].text.contains("# not a heading"));
    }

    #[test]
    fn values_cite_the_section_stating_them() {
        let (doc, _) = parse(POLICY, "password.md", "password");
        let v = doc.values.get("IAM.7", "MinimumPasswordLength").unwrap();
        assert_eq!(v.value, json!(64));
        assert_eq!(v.source, "password.md");
        assert_eq!(v.heading, "Password policy › Length");
        let s = doc.values.get("IAM.7", "RequireSymbols").unwrap();
        assert_eq!(s.heading, "Password policy › Characters");
    }

    #[test]
    fn malformed_front_matter_is_reported_and_the_body_kept() {
        for (text, wanted) in [
            ("---\ncontrols: [\n---\n# A\n\nx\n", "invalid YAML"),
            ("---\n- a\n- b\n---\n# A\n\nx\n", "must be a mapping"),
            ("---\ncontrols: 5\n---\n# A\n\nx\n", "controls must map"),
            (
                "---\ncontrols:\n  IAM.7: 64\n---\n# A\n\nx\n",
                "controls.IAM.7 must map",
            ),
            (
                "---\ncontrols:\n  IAM.7:\n    MinLength: 64\n---\n# A\n\nx\n",
                "not a parameter of IAM.7; accepted: RequireUppercaseCharacters",
            ),
            (
                "---\ncontrols:\n  IAM.7:\n    MinimumPasswordLength: [64]\n---\n# A\n\nx\n",
                "must be a number or true/false",
            ),
            ("---\ntitle: x\n# A\n\nx\n", "no closing ---"),
        ] {
            let (doc, problem) = parse(text, "p.md", "p");
            let problem = problem.unwrap_or_default();
            assert!(problem.contains(wanted), "{text:?}: {problem}");
            assert!(doc.values.is_empty());
            assert!(!doc.sections.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn controls_without_parameters_are_ignored_with_a_note() {
        let (doc, problem) = parse(
            "---\ncontrols:\n  EC2.19:\n    AllowedCidr: 10.0.0.0/8\n---\n# Network\n\ntext\n",
            "n.md",
            "n",
        );
        assert_eq!(problem, None);
        assert!(doc.values.is_empty());
        assert!(doc.ignored[0].starts_with("EC2.19"));
    }

    #[test]
    fn no_front_matter_and_untitled_text() {
        let (doc, problem) = parse("plain words, no heading", "x.md", "x");
        assert_eq!(problem, None);
        assert_eq!(doc.sections[0].heading, "x");
        assert!(states("at least 64 characters", "64"));
        assert!(!states("at least 640 characters", "64"));
        assert!(states("64 文字以上", "64"));
        assert!(states("64文字以上", "64"));
    }
}
