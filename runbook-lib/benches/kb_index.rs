//! The local policy index over 1,000 Markdown files: time to build it, and the
//! median and p99 query time (each query also re-checks the folder for changes).
//! Targets (issue 7): build under 1 s, median query under 5 ms.
//! Run: cargo bench -p runbook --bench kb_index

use std::time::{Duration, Instant};

use runbook::kb::KnowledgeBase;
use runbook::kb::local::LocalKnowledgeBase;

const FILES: usize = 1_000;
const BUILDS: usize = 5;
const QUERIES: usize = 400;

const TOPICS: &[(&str, &str)] = &[
    ("Password policy", "パスワードポリシー"),
    ("Network access", "ネットワークアクセス"),
    ("Logging and retention", "ログの保存期間"),
    ("Threat detection", "脅威検出"),
    ("Encryption at rest", "保存時の暗号化"),
];

fn document(i: usize) -> String {
    let (en, ja) = TOPICS[i % TOPICS.len()];
    let mut s = format!(
        "---\ntitle: {en} {i}\nowner: team {}\n---\n# {en} {i}\n\n",
        i % 17
    );
    for section in 0..6 {
        s.push_str(&format!(
            "## Rule {section} of document {i}\n\n{en}: every account must follow rule {section}. \
             Passwords, security groups, CloudTrail, GuardDuty and KMS keys are reviewed every {} days \
             by team {}. {ja}について、規則 {section} を守ること。最小文字数、暗号化、ログの保存を確認する。\n\n",
            30 + section * 10,
            i % 23
        ));
    }
    s
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join(format!("kb-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for i in 0..FILES {
        let dir = root.join(format!("dept-{:02}", i % 20));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("policy-{i:04}.md")), document(i))?;
    }
    let mut builds = Vec::new();
    let mut kb = None;
    for _ in 0..BUILDS {
        let t = Instant::now();
        kb = Some(LocalKnowledgeBase::open(&root)?);
        builds.push(t.elapsed());
    }
    builds.sort();
    let kb = kb.ok_or("no build")?;
    let queries = [
        "password minimum length",
        "SSH security group internet",
        "CloudTrail log retention",
        "パスワードの最小文字数",
        "暗号化 KMS",
        "GuardDuty threat detection every region",
    ];
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let mut times = Vec::new();
    let mut found = 0;
    for q in 0..QUERIES {
        let t = Instant::now();
        let r = rt.block_on(kb.search(queries[q % queries.len()], 5))?;
        times.push(t.elapsed());
        found += r.passages.len();
    }
    times.sort();
    let o = rt.block_on(kb.overview())?;
    println!(
        "kb_index: {FILES} files, {} passages ({found} results over {QUERIES} queries)",
        o.passages.unwrap_or_default()
    );
    println!(
        "  build: median {:.1} ms, max {:.1} ms over {BUILDS} builds (target < 1000 ms)",
        ms(percentile(&builds, 0.5)),
        ms(builds[builds.len() - 1])
    );
    println!(
        "  query: median {:.3} ms, p99 {:.3} ms, max {:.3} ms over {QUERIES} queries (target median < 5 ms)",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times[times.len() - 1])
    );
    std::fs::remove_dir_all(&root)?;
    Ok(())
}
