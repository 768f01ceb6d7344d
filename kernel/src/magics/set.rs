//! `%set NAME=VALUE ...`: runbook variables, expanded as `$NAME` / `${NAME}` in
//! every magic line; `%set` alone lists them. papermill's parameters arrive so.

use clap::Parser;
use serde_json::json;

use crate::context::{Context, MagicError};
use crate::render::text::Text;
use crate::render::{Bundle, html};

/// Define runbook variables (NAME=VALUE), expanded as $NAME or ${NAME} in magic lines ($$ is a literal $); alone, list them
#[derive(Debug, Parser)]
pub struct SetArgs {
    /// NAME=VALUE pairs; quote a value with spaces: note="two words"
    #[arg(value_name = "NAME=VALUE")]
    pub assignments: Vec<String>,
    /// Remove variables, comma-separated
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub unset: Vec<String>,
}

pub fn run(args: SetArgs, cx: &mut Context<'_>) -> Result<(), MagicError> {
    // Check every assignment before changing anything, so a bad one sets none.
    let mut next = cx.session.variables.clone();
    let mut changed = Vec::new();
    for assignment in &args.assignments {
        changed.push(
            next.assign(assignment)
                .map_err(|e| MagicError::usage(e.to_string()))?,
        );
    }
    for name in &args.unset {
        if !next.unset(name) {
            return Err(MagicError::usage(format!(
                "{name} is not set, so it cannot be unset; set: {}",
                next.names().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    cx.session.variables = next;
    let lang = cx.session.settings.lang;
    let variables = &cx.session.variables;
    let mut plain = if variables.is_empty() {
        Text::NoVariables.get(lang).to_string()
    } else {
        format!(
            "{}\n",
            Text::VariablesHeading.fill(lang, &[&variables.len()])
        )
    };
    let mut table = html::Table::new(
        "runbook-variables",
        &[Text::ColName.get(lang), Text::ColValue.get(lang)],
    );
    for (name, value) in variables.iter() {
        plain.push_str(&format!("{name} = {value}\n"));
        table.row(vec![html::Cell::code(name), html::Cell::code(value)]);
    }
    let rich = if variables.is_empty() {
        format!("<p>{}</p>", html::text(&plain))
    } else {
        table.render()
    };
    let values: serde_json::Map<String, serde_json::Value> = variables
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    cx.out.display(Bundle::html(
        plain.trim_end().to_string(),
        rich,
        json!({"variables": values, "changed": changed, "unset": args.unset}),
    ));
    Ok(())
}
