//! `%ask`: one compact, expandable line per tool call, and the model's answer as
//! Markdown. Tool inputs come from the model and tool results carry finding
//! text, so both are escaped; the model's text goes through [`markdown::to_html`].

use runbook::advisor::{AdvisorKind, Usage};
use runbook::agent::ToolOutcome;
use runbook::settings::Lang;
use serde_json::{Value, json};

use super::{Bundle, html, markdown, plan};

/// Longest input shown on a tool call's one line.
const INPUT_CHARS: usize = 120;
/// Longest tool result shown when the details are opened.
const RESULT_CHARS: usize = 20_000;

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut short: String = s.chars().take(max).collect();
        short.push('…');
        short
    }
}

fn one_line(input: &Value) -> String {
    let raw = match input {
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    };
    cut(&raw.replace(['\n', '\r'], " "), INPUT_CHARS)
}

fn pretty(value: &Value) -> String {
    cut(
        &serde_json::to_string_pretty(value).unwrap_or_default(),
        RESULT_CHARS,
    )
}

/// A tool call, while it runs (`outcome` None) and when it is done.
pub fn tool_call(name: &str, input: &Value, outcome: Option<&ToolOutcome>) -> Bundle {
    let (mark, status, summary) = match outcome {
        None => ("…", "running", "running…".to_string()),
        Some(o) if o.is_error => ("✗", "error", o.summary.clone()),
        Some(o) => ("✓", "ok", o.summary.clone()),
    };
    let summary_line = cut(&summary.replace(['\n', '\r'], " "), 300);
    let input_line = one_line(input);
    let plain = format!("{mark} {name}({input_line}) → {summary_line}");
    let mut body = format!("<p><strong>Input</strong></p>{}", html::pre(&pretty(input)));
    if let Some(o) = outcome {
        body.push_str(&format!(
            "<p><strong>Result</strong></p>{}",
            html::pre(&pretty(&o.content))
        ));
    }
    let rich = format!(
        "<details class=\"runbook-tool\"><summary>{} <code>{}</code> <code>{}</code> → {}</summary>{body}</details>",
        html::text(mark),
        html::text(name),
        html::text(&input_line),
        html::text(&summary_line),
    );
    Bundle::html(
        plain,
        rich,
        json!({
            "tool": name,
            "input": input,
            "status": status,
            "summary": summary,
            "result": outcome.map(|o| o.content.clone()),
        }),
    )
}

/// The model's text: while it streams, and the final answer with its record in `extra`.
pub fn answer(
    text: &str,
    advisor: &AdvisorKind,
    usage: Option<&Usage>,
    status: Option<&str>,
    extra: Value,
) -> Bundle {
    plan::explanation(text, advisor, usage, status, extra)
}

/// Why `%ask` needs a model, how to configure one, and what to use meanwhile.
pub fn needs_model(reason: &str, lang: Lang) -> Bundle {
    let text = match lang {
        Lang::En => format!(
            "**%ask needs a model.** The session uses the built-in remediation catalog ({reason}), which can explain and plan but cannot hold a conversation or call tools.\n\n\
To use Claude on Amazon Bedrock:\n\
1. `%config model=<Bedrock model id or inference profile>` (e.g. `global.anthropic.claude-sonnet-4-6`) and `%config region=us-east-1`;\n\
2. AWS credentials for the kernel (`%config profile=NAME`, or the usual `AWS_*` environment variables / SSO login);\n\
3. model access enabled for that model in the Amazon Bedrock console (Model access), and `bedrock:InvokeModelWithResponseStream` allowed for the caller.\n\n\
Meanwhile, the same work with magics:\n\
- `%findings --severity CRITICAL,HIGH` — list findings (what `get_findings_by_severity` does);\n\
- `%finding N` — one finding in full (`get_finding_details`);\n\
- `%summarize N` — explain it;\n\
- `%remediate N`, then `%approve PLAN_ID` — plan and apply a fix (`propose_remediation`)."
        ),
        Lang::Ja => format!(
            "**%ask にはモデルが必要です。** このセッションは組み込みの修復カタログ ({reason}) を使っています。カタログは説明とプラン作成はできますが、会話やツール呼び出しはできません。\n\n\
Amazon Bedrock の Claude を使うには:\n\
1. `%config model=<Bedrock のモデル ID または推論プロファイル>` (例: `global.anthropic.claude-sonnet-4-6`) と `%config region=us-east-1`\n\
2. カーネル用の AWS 認証情報 (`%config profile=NAME`、または `AWS_*` 環境変数 / SSO ログイン)\n\
3. Amazon Bedrock コンソールの「モデルアクセス」でそのモデルを有効化し、呼び出し元に `bedrock:InvokeModelWithResponseStream` を許可\n\n\
それまでは同じことをマジックで行えます:\n\
- `%findings --severity CRITICAL,HIGH` — 検出結果の一覧\n\
- `%finding N` — 1 件の詳細\n\
- `%summarize N` — 解説\n\
- `%remediate N` のあと `%approve PLAN_ID` — 修復プランの作成と適用"
        ),
    };
    Bundle::html(
        text.clone(),
        format!(
            "<div class=\"runbook-ask\">{}</div>",
            markdown::to_html(&text)
        ),
        json!({
            "needs_model": true,
            "reason": reason,
            "markdown": text,
            "equivalents": ["%findings", "%finding", "%summarize", "%remediate", "%approve"],
        }),
    )
}

/// A short note, e.g. that the conversation was cleared.
pub fn note(text: &str, json: Value) -> Bundle {
    Bundle::html(text, format!("<p><em>{}</em></p>", html::text(text)), json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_lines_are_escaped_and_expandable() {
        let outcome = ToolOutcome::ok(
            "<img src=x onerror=alert(1)>",
            json!({"title": "<script>alert(1)</script>"}),
        );
        let bundle = tool_call(
            "get_finding_details",
            &json!({"finding": "<b>x</b>"}),
            Some(&outcome),
        );
        let super::super::Rich::Html(h) = &bundle.rich else {
            panic!("html")
        };
        assert!(h.contains("<details"));
        assert!(!h.contains("<img") && !h.contains("<script>") && !h.contains("<b>"));
        assert_eq!(bundle.json["status"], "ok");
    }
}
