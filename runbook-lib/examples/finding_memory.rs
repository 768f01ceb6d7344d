//! How much memory a listing of findings takes, and how much of it is the JSON
//! each finding keeps as Security Hub sent it (deflated, see finding/raw.rs).
//!
//!     cargo run --release -p runbook --example finding_memory -- FILE.jsonl asff|ocsf
//!
//! FILE.jsonl holds one finding per line (bench/bench_findings_counts.py's
//! findings, for example). Set DROP_RAW=1 to measure without the kept JSON.
use std::io::BufRead;

use runbook::finding::{Finding, RawJson};

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(kind)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: finding_memory FILE.jsonl asff|ocsf");
        std::process::exit(2);
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => std::io::BufReader::new(f),
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    let drop_raw = std::env::var_os("DROP_RAW").is_some();
    let before = rss_mib();
    let (mut findings, mut text_bytes, mut kept_bytes) = (Vec::new(), 0, 0);
    for line in file.lines().map_while(Result::ok) {
        text_bytes += line.len();
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let parsed = if kind == "ocsf" {
            Finding::from_ocsf(value)
        } else {
            Finding::from_asff(value)
        };
        let Ok(mut f) = parsed else { continue };
        if drop_raw {
            f.raw = RawJson::default();
        }
        kept_bytes += f.raw.stored_len();
        findings.push(f);
    }
    println!(
        "{} findings from {:.1} MiB of JSON text: RSS {:.1} -> {:.1} MiB, of which the kept (deflated) JSON is {:.1} MiB",
        findings.len(),
        text_bytes as f64 / 1048576.0,
        before,
        rss_mib(),
        kept_bytes as f64 / 1048576.0,
    );
}
