//! `%version`: what is running.

use clap::Parser;
use serde_json::json;

use super::MagicError;
use crate::output::Output;
use crate::protocol::PROTOCOL_VERSION;
use crate::render::{Bundle, html};
use crate::session::Session;

/// Show the kernel, library and protocol versions and the backend setting
#[derive(Debug, Parser)]
pub struct VersionArgs {}

pub fn run(_args: VersionArgs, session: &Session, out: &dyn Output) -> Result<(), MagicError> {
    let kernel = env!("CARGO_PKG_VERSION");
    let library = runbook::VERSION;
    let backend = session
        .settings
        .value(runbook::settings::SettingKey::Backend);
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
    out.display(Bundle::html(
        plain,
        table.render(),
        json!({"kernel": kernel, "library": library, "protocol": PROTOCOL_VERSION, "backend": backend}),
    ));
    Ok(())
}
