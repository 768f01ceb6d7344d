//! The cost of one audit append: a record written, fsynced and (since issue 13)
//! chained to the line before it. "unchained" writes the same line with the same
//! write + fsync but without reading the tail to hash it, as before the chain.
//! Run: cargo bench -p runbook --bench audit_append

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use runbook::audit::{AuditEvent, AuditLog, AuditRecord, AuditSubject};
use runbook::cloud::Target;

const RECORDS: usize = 2_000;

fn subject() -> Result<AuditSubject, Box<dyn std::error::Error>> {
    Ok(AuditSubject::new(
        "plan-0123abcd".parse()?,
        &Target {
            account: "123456789012".parse()?,
            region: "us-east-1".to_string(),
        },
    ))
}

fn record(s: &AuditSubject, i: usize) -> AuditRecord {
    AuditRecord::new(AuditEvent::ActionFinished, s)
        .by("arn:aws:iam::123456789012:user/alice")
        .with_detail(format!(
            "step {i}: revoked 2 ingress rules of sg-0123456789abcdef0"
        ))
        .with_before(serde_json::json!({"ingress": [{"cidr": "0.0.0.0/0", "from": 22, "to": 22}]}))
        .with_after(serde_json::json!({"ingress": []}))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "  {name:<10} median {:>8.1} µs   p95 {:>8.1} µs   p99 {:>8.1} µs   ({} records)",
        us(percentile(&times, 0.5)),
        us(percentile(&times, 0.95)),
        us(percentile(&times, 0.99)),
        times.len(),
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("audit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let s = subject()?;
    println!(
        "audit_append: one record appended and fsynced, on {}",
        dir.display()
    );

    let plain = dir.join("unchained.jsonl");
    let mut file = OpenOptions::new().append(true).create(true).open(&plain)?;
    let mut times = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let t = Instant::now();
        let mut line = record(&s, i).to_line()?;
        line.push('\n');
        file.write_all(line.as_bytes())?;
        file.sync_all()?;
        times.push(t.elapsed());
    }
    report("unchained", times);

    let chained = dir.join("chained.jsonl");
    let mut log = AuditLog::open(&chained)?;
    let mut times = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let t = Instant::now();
        log.append(record(&s, i))?;
        times.push(t.elapsed());
    }
    report("chained", times);
    let intact = runbook::audit::read(&chained)?.chain.intact();
    println!("  chain intact after {RECORDS} appends: {intact}");

    // With the off-machine copy: each append also waits for PutLogEvents. Run
    // against a CloudWatch Logs endpoint (bench/bench_audit_sink.py starts moto
    // and sets these); on AWS it measures the round trip to the region.
    if let Ok(group) = std::env::var("RUNBOOK_BENCH_LOG_GROUP") {
        let (settings, _) = runbook::settings::Settings::from_process_env();
        let sink = runbook::audit::CloudWatchSink::start(&settings, &group, "bench")?;
        let copied = dir.join("copied.jsonl");
        let mut log = AuditLog::open(&copied)?.with_sink(Some(std::sync::Arc::new(sink)));
        let n = RECORDS / 4;
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            log.append(record(&s, i))?;
            times.push(t.elapsed());
        }
        report("cloudwatch", times);
        println!("  (cloudwatch: chained, plus PutLogEvents to {group} before append returns)");
    }

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
