//! `%version`: what is running.

use clap::Parser;
use serde_json::json;

use crate::context::{Context, MagicError};
use crate::protocol::PROTOCOL_VERSION;
use crate::render::{Bundle, html};

/// Show the kernel, library and protocol versions and the backend setting
#[derive(Debug, Parser)]
pub struct VersionArgs {}

pub fn run(_args: VersionArgs, cx: &Context<'_>) -> Result<(), MagicError> {
    let kernel = env!("CARGO_PKG_VERSION");
    let library = runbook::VERSION;
    let backend = cx.settings().value(runbook::settings::SettingKey::Backend);
    let rows = [
        ("kernel", format!("runbook-kernel {kernel}")),
        ("library", format!("runbook {library}")),
        ("protocol", format!("Jupyter messaging {PROTOCOL_VERSION}")),
        ("backend", backend.clone()),
    ];
    let plain = rows
        .iter()
        .map(|(k, v)| format!("{k:<9} {v}"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut table = html::Table::new("runbook-version", &["", ""]);
    for (k, v) in &rows {
        table.row(vec![html::Cell::text(k), html::Cell::code(v)]);
    }
    cx.out.display(Bundle::html(
        plain,
        table.render(),
        json!({"kernel": kernel, "library": library, "protocol": PROTOCOL_VERSION, "backend": backend}),
    ));
    Ok(())
}
