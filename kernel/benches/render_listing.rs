//! Prints how long rendering a %findings listing of 10,000 held findings takes,
//! and how large the output is. Run: cargo bench -p runbook-kernel --bench render_listing

use std::time::Instant;

use runbook::cloud::{BackendInfo, Organisation, Sandbox};
use runbook_kernel::render::findings::{counts, listing, severity_chart};

const HELD: usize = 10_000;
const RUNS: usize = 21;

fn main() {
    let sandbox = Sandbox::new();
    let Ok(base) = sandbox.all_findings() else {
        eprintln!("the sandbox did not produce findings");
        return;
    };
    let mut findings = Vec::with_capacity(HELD);
    for i in 0..HELD {
        let mut f = base[i % base.len()].clone();
        f.id = format!("{}-{i}", f.id);
        f.title = format!("{} #{i}", f.title);
        findings.push(f);
    }
    let info: BackendInfo = runbook::cloud::Cloud::describe(&sandbox);
    let organisation: Organisation = sandbox.with_state(|s| s.organisation());
    let mut times = Vec::with_capacity(RUNS);
    let mut bytes = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        let table = listing(
            &findings,
            "any severity",
            &info,
            &organisation,
            false,
            runbook::settings::Lang::En,
        );
        let chart = severity_chart(&counts(&findings), runbook::settings::Lang::En);
        let wire = serde_json::to_vec(&serde_json::Value::Object(table.to_mime_map()))
            .unwrap_or_default()
            .len()
            + serde_json::to_vec(&serde_json::Value::Object(chart.to_mime_map()))
                .unwrap_or_default()
                .len();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        bytes = wire;
    }
    times.sort_by(f64::total_cmp);
    println!("render listing of {HELD} held findings ({RUNS} runs)");
    println!(
        "  median {:.2} ms, max {:.2} ms (target < 50 ms)",
        times[RUNS / 2],
        times[RUNS - 1]
    );
    println!(
        "  output {:.1} KiB as JSON on the wire (target < 1 MiB)",
        bytes as f64 / 1024.0
    );
}
