//! The local policy index over 1,000 and 10,000 Markdown files, side by side: time
//! to build it, and the median, p95 and p99 query time (queries compare the folder
//! with the index at most once a second, as in the kernel).
//! Targets: 1,000 files build < 1 s, median query < 5 ms (issue 7);
//! 10,000 files build < 2 s, median query < 1 ms (issue 13).
//! Run: cargo bench -p runbook --bench kb_index

use std::time::{Duration, Instant};

use runbook::kb::KnowledgeBase;
use runbook::kb::local::LocalKnowledgeBase;

const SIZES: &[(usize, usize)] = &[(1_000, 5), (10_000, 3)];
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

struct Figures {
    files: usize,
    /// Queries with the folder compared on every query, as before issue 13.
    query_restat: Vec<Duration>,
    passages: usize,
    found: usize,
    build_median: Duration,
    build_max: Duration,
    query: Vec<Duration>,
}

fn measure(files: usize, builds: usize) -> Result<Figures, Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join(format!("kb-bench-{}-{files}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for i in 0..files {
        let dir = root.join(format!("dept-{:02}", i % 20));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("policy-{i:05}.md")), document(i))?;
    }
    let mut times = Vec::new();
    let mut kb = None;
    for _ in 0..builds {
        let t = Instant::now();
        kb = Some(LocalKnowledgeBase::open(&root)?);
        times.push(t.elapsed());
    }
    times.sort();
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
    let mut query = Vec::new();
    let mut found = 0;
    for q in 0..QUERIES {
        let t = Instant::now();
        let r = rt.block_on(kb.search(queries[q % queries.len()], 5))?;
        query.push(t.elapsed());
        found += r.passages.len();
    }
    query.sort();
    let restat = LocalKnowledgeBase::open_with_recheck(&root, Duration::ZERO)?;
    let mut query_restat = Vec::new();
    for q in 0..QUERIES {
        let t = Instant::now();
        rt.block_on(restat.search(queries[q % queries.len()], 5))?;
        query_restat.push(t.elapsed());
    }
    query_restat.sort();
    let o = rt.block_on(kb.overview())?;
    std::fs::remove_dir_all(&root)?;
    Ok(Figures {
        files,
        passages: o.passages.unwrap_or_default(),
        found,
        build_median: percentile(&times, 0.5),
        build_max: times[times.len() - 1],
        query,
        query_restat,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("kb_index: local policy index, {QUERIES} queries per size");
    println!(
        "  {:>7} {:>9} {:>13} {:>13} {:>12} {:>12} {:>12} {:>20}",
        "files",
        "passages",
        "build median",
        "build max",
        "query p50",
        "query p95",
        "query p99",
        "p50, stat each query"
    );
    for &(files, builds) in SIZES {
        let f = measure(files, builds)?;
        println!(
            "  {:>7} {:>9} {:>10.1} ms {:>10.1} ms {:>9.3} ms {:>9.3} ms {:>9.3} ms {:>17.3} ms   ({} results, {builds} builds)",
            f.files,
            f.passages,
            ms(f.build_median),
            ms(f.build_max),
            ms(percentile(&f.query, 0.5)),
            ms(percentile(&f.query, 0.95)),
            ms(percentile(&f.query, 0.99)),
            ms(percentile(&f.query_restat, 0.5)),
            f.found,
        );
    }
    println!(
        "  targets: 1,000 files build < 1000 ms, p50 < 5 ms; 10,000 files build < 2000 ms, p50 < 1 ms"
    );
    Ok(())
}
