//! `%config`: show settings with their source, or change them for this session.

use clap::Parser;
use runbook::settings::{SettingEntry, SettingKey};
use serde_json::json;

use crate::context::{Context, MagicError, Output};
use crate::render::text::Text;
use crate::render::{Bundle, html};
use runbook::settings::Lang;

fn keys_help() -> String {
    let mut text = String::from("Settings (environment variable in brackets):\n");
    for key in SettingKey::ALL {
        text.push_str(&format!(
            "  {:<16} {} [{}]; accepted: {}\n",
            key.name(),
            key.description(),
            key.env_var(),
            key.accepted()
        ));
    }
    text.push_str(
        "\nAn empty value (key=) drops the session's value. %%config takes one key=value per line of its body.",
    );
    text
}

/// Show all settings with their source, show one, or set key=value for this session
#[derive(Debug, Parser)]
#[command(after_long_help = keys_help())]
pub struct ConfigArgs {
    /// KEY to show one setting, KEY=VALUE to set it
    #[arg(value_name = "KEY[=VALUE]")]
    pub items: Vec<String>,
}

fn show(
    entries: &[SettingEntry],
    changed: &[SettingKey],
    notes: &[String],
    out: &dyn Output,
    lang: Lang,
) {
    let mut plain = String::new();
    let mut table = html::Table::new(
        "runbook-config",
        &[
            Text::ColSetting.get(lang),
            Text::ColValue.get(lang),
            Text::ColSource.get(lang),
            Text::ColEnvironment.get(lang),
            Text::ColAccepted.get(lang),
        ],
    );
    for e in entries {
        let marker = if changed.contains(&e.key) {
            " (changed)"
        } else {
            ""
        };
        let shown = if e.value.is_empty() {
            "(not set)"
        } else {
            &e.value
        };
        plain.push_str(&format!(
            "{:<16} {:<40} {}{}\n",
            e.key.name(),
            shown,
            e.source,
            marker
        ));
        table.row(vec![
            html::Cell::code(e.key.name()),
            html::Cell::code(shown),
            html::Cell::text(format!("{}{marker}", e.source)),
            html::Cell::code(&e.env_var),
            html::Cell::text(&e.accepted),
        ]);
    }
    let mut rich = table.render();
    for note in notes {
        plain.push_str(note);
        plain.push('\n');
        rich.push_str(&format!("<p>{}</p>", html::text(note)));
    }
    out.display(Bundle::html(
        plain.trim_end().to_string(),
        rich,
        json!({"settings": entries, "changed": changed, "notes": notes}),
    ));
}

pub fn run(args: ConfigArgs, body: Option<&str>, cx: &mut Context<'_>) -> Result<(), MagicError> {
    let (session, out) = (&mut *cx.session, cx.out);
    let body_items = body
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string);
    let items: Vec<String> = args.items.into_iter().chain(body_items).collect();
    let (assignments, lookups): (Vec<&String>, Vec<&String>) =
        items.iter().partition(|i| i.contains('='));
    if !assignments.is_empty() && !lookups.is_empty() {
        return Err(MagicError::usage(
            "give either keys to show or key=value pairs to set, not both",
        ));
    }
    if !lookups.is_empty() {
        let keys = lookups
            .iter()
            .map(|k| k.parse::<SettingKey>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| MagicError::usage(e.to_string()))?;
        let entries: Vec<SettingEntry> = keys.iter().map(|k| session.settings.entry(*k)).collect();
        show(&entries, &[], &[], out, session.settings.lang);
        return Ok(());
    }
    // Validate every assignment on a copy first so a bad one changes nothing.
    let mut updated = session.settings.clone();
    let mut changed = Vec::new();
    for assignment in &assignments {
        let key = updated
            .set_assignment(assignment)
            .map_err(|e| MagicError::usage(e.to_string()))?;
        changed.push(key);
    }
    session.settings = updated;
    let lang = session.settings.lang;
    let mut notes: Vec<String> = session
        .env_problems
        .iter()
        .map(|p| Text::IgnoredFromEnv.fill(lang, &[p]))
        .collect();
    if let Some(connected) = session.clouds.current() {
        notes.push(Text::BackendInUse.fill(lang, &[&connected.reason]));
    }
    show(&session.settings.entries(), &changed, &notes, out, lang);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::context::{ErrorKind, Session};
    use crate::magics::run_cell;
    use crate::output::recording::RecordingOutput;
    use runbook::settings::{Lang, Settings, Source};

    fn session() -> Session {
        Session::new(Settings::default(), Vec::new())
    }

    #[tokio::test]
    async fn sets_and_shows_source() {
        let mut s = session();
        let out = RecordingOutput::new();
        run_cell("%config lang=ja region=ap-northeast-1", &mut s, &out)
            .await
            .unwrap();
        assert_eq!(s.settings.lang, Lang::Ja);
        assert_eq!(s.settings.source(SettingKey::Lang), Source::Session);
        let bundle = &out.last_bundles()[0];
        assert!(bundle.plain.contains("ap-northeast-1"));
        assert_eq!(bundle.json["changed"], json!(["lang", "region"]));
    }

    #[tokio::test]
    async fn one_bad_assignment_changes_nothing() {
        let mut s = session();
        let out = RecordingOutput::new();
        let err = run_cell("%config lang=ja backend=cloud", &mut s, &out)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Usage);
        assert!(
            err.evalue.contains("sandbox, aws or auto"),
            "{}",
            err.evalue
        );
        assert_eq!(s.settings.lang, Lang::En);
    }

    #[tokio::test]
    async fn cell_form_and_lookup() {
        let mut s = session();
        let out = RecordingOutput::new();
        run_cell(
            "%%config\n# team defaults\nlang=ja\nmax_tool_rounds=3",
            &mut s,
            &out,
        )
        .await
        .unwrap();
        assert_eq!(s.settings.max_tool_rounds, 3);
        run_cell("%config lang", &mut s, &out).await.unwrap();
        let last = out.last_bundles().pop().unwrap();
        assert_eq!(last.json["settings"][0]["value"], "ja");
        let err = run_cell("%config colour", &mut s, &out).await.unwrap_err();
        assert!(err.evalue.contains("known settings"), "{}", err.evalue);
    }

    #[tokio::test]
    async fn hostile_values_are_escaped() {
        let mut s = session();
        let out = RecordingOutput::new();
        run_cell("%config kb='<script>alert(1)</script>'", &mut s, &out)
            .await
            .unwrap();
        let bundle = &out.last_bundles()[0];
        match &bundle.rich {
            crate::render::Rich::Html(h) => assert!(!h.contains("<script>")),
            other => panic!("unexpected {other:?}"),
        }
    }
}
