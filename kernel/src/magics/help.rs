//! `%help` / `%lsmagic`: every magic with its one-line summary.

use clap::Parser;
use serde_json::json;

use super::{MAGICS, find_magic, show_help, unknown_magic};
use crate::context::{Context, MagicError};
use crate::render::text::Text;
use crate::render::{Bundle, html};

/// List the magics with one-line summaries, or show one magic's help
#[derive(Debug, Parser)]
pub struct HelpArgs {
    /// A magic to show in full, e.g. config or %config
    #[arg(value_name = "MAGIC")]
    pub magic: Option<String>,
}

pub fn run(args: HelpArgs, cx: &Context<'_>) -> Result<(), MagicError> {
    let out = cx.out;
    if let Some(name) = args.magic {
        let name = name.trim_start_matches('%');
        let info = find_magic(name).ok_or_else(|| unknown_magic(name))?;
        show_help(info, name, out);
        return Ok(());
    }
    let lang = cx.settings().lang;
    let mut plain = format!("{}\n", Text::MagicsHeading.get(lang));
    let mut table = html::Table::new(
        "runbook-help",
        &[Text::ColMagic.get(lang), Text::ColWhatItDoes.get(lang)],
    );
    let mut entries = Vec::new();
    for info in MAGICS {
        let mut names = vec![format!("%{}", info.name)];
        if info.cell {
            names.push(format!("%%{}", info.name));
        }
        names.extend(info.aliases.iter().map(|a| format!("%{a}")));
        let summary = info.summary();
        plain.push_str(&format!("  {:<24} {summary}\n", names.join(", ")));
        table.row(vec![
            html::Cell::code(names.join(", ")),
            html::Cell::text(&summary),
        ]);
        entries.push(json!({"name": info.name, "aliases": info.aliases, "cell": info.cell, "summary": summary}));
    }
    let footer =
        "A cell holds line magics, one per line, or one cell magic (%%name) followed by its body.";
    plain.push_str(footer);
    let rich = format!("{}<p>{}</p>", table.render(), html::text(footer));
    out.display(Bundle::html(plain, rich, json!({"magics": entries})));
    Ok(())
}
