//! `%sleep`: wait in a runbook, e.g. for a change to propagate before verifying it.

use std::time::Duration;

use clap::Parser;
use serde_json::json;

use crate::context::{Context, MagicError};
use crate::render::text::Text;
use crate::render::{Bundle, html};
use runbook::settings::Lang;

const MAX_SECONDS: f64 = 3600.0;
const TICK: Duration = Duration::from_secs(1);

/// Wait a number of seconds, showing progress; interrupt to stop early
#[derive(Debug, Parser)]
pub struct SleepArgs {
    /// Seconds to wait, from 0 to 3600 (fractions allowed)
    #[arg(value_parser = parse_seconds, value_name = "SECONDS")]
    pub seconds: f64,
}

fn parse_seconds(raw: &str) -> Result<f64, String> {
    let value: f64 = raw
        .parse()
        .map_err(|_| format!("'{raw}' is not a number of seconds; accepted: 0 to {MAX_SECONDS}"))?;
    if !(0.0..=MAX_SECONDS).contains(&value) {
        return Err(format!(
            "{value} is out of range; accepted: 0 to {MAX_SECONDS} seconds"
        ));
    }
    Ok(value)
}

fn progress(waited: f64, total: f64, done: bool, lang: Lang) -> Bundle {
    let text = if done {
        Text::Waited.fill(lang, &[&format!("{total:.1}")])
    } else {
        Text::Waiting.fill(lang, &[&format!("{waited:.0}"), &format!("{total:.1}")])
    };
    let percent = if total > 0.0 {
        (waited / total * 100.0).min(100.0)
    } else {
        100.0
    };
    let rich = format!(
        "<div><progress max=\"100\" value=\"{percent:.0}\"></progress> {}</div>",
        html::text(&text)
    );
    Bundle::html(
        text,
        rich,
        json!({"waited_seconds": waited, "total_seconds": total, "done": done}),
    )
}

pub async fn run(args: SleepArgs, cx: &Context<'_>) -> Result<(), MagicError> {
    let out = cx.out;
    let lang = cx.settings().lang;
    let total = Duration::from_secs_f64(args.seconds);
    let started = tokio::time::Instant::now();
    let handle = out.display(progress(0.0, args.seconds, false, lang));
    loop {
        let elapsed = started.elapsed();
        if elapsed >= total {
            break;
        }
        let step = TICK.min(total - elapsed);
        let slept = cx.cancellable(tokio::time::sleep(step)).await;
        if let Err(e) = slept {
            let waited = started.elapsed().as_secs_f64();
            out.update(&handle, progress(waited, args.seconds, false, lang));
            return Err(e);
        }
        out.update(
            &handle,
            progress(started.elapsed().as_secs_f64(), args.seconds, false, lang),
        );
    }
    out.update(&handle, progress(args.seconds, args.seconds, true, lang));
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::context::{ErrorKind, Session};
    use crate::output::recording::RecordingOutput;
    use runbook::settings::Settings;

    async fn sleep(seconds: f64, out: &RecordingOutput) -> Result<(), MagicError> {
        let mut session = Session::new(Settings::default(), Vec::new());
        run(SleepArgs { seconds }, &Context::new(&mut session, out)).await
    }

    #[test]
    fn seconds_range() {
        assert_eq!(parse_seconds("1.5").unwrap(), 1.5);
        assert!(parse_seconds("-1").unwrap_err().contains("0 to 3600"));
        assert!(parse_seconds("soon").unwrap_err().contains("not a number"));
        assert!(parse_seconds("NaN").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn updates_one_display_until_done() {
        let out = RecordingOutput::new();
        sleep(3.0, &out).await.unwrap();
        assert_eq!(out.displays.lock().unwrap().len(), 1);
        assert!(out.updates.lock().unwrap().len() >= 3);
        assert_eq!(out.last_bundles()[0].json["done"], true);
    }

    #[tokio::test(start_paused = true)]
    async fn interrupt_stops_it() {
        let out = RecordingOutput::new();
        out.token.cancel();
        let err = sleep(30.0, &out).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Interrupted);
    }
}
