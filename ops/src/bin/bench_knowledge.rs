//! Retrieval on this machine: ingest, search latency, memory and quality.
//!
//! 1. **Ingest**: the PostgreSQL 15 manual (Debian's `postgresql-doc-15`,
//!    HTML under /usr/share/doc/postgresql-doc-15/html; installed by
//!    `ops/bench_knowledge.sh`) into a fresh SQLite with the embedded
//!    all-MiniLM-L6-v2: documents, chunks and embedded tokens per second.
//! 2. **Quality**: the labelled questions of
//!    `ops/knowledge_eval/postgres15.jsonl`, recall@5 and MRR for lexical,
//!    dense and hybrid search over that ingest.
//! 3. **Latency and memory**: 10,000 and 100,000 chunks (the manual's
//!    chunks, repeated under new documents to reach the count, so the text
//!    and the vectors are real), lexical, dense and hybrid search p50 / p99 with the question's
//!    embedding timed apart, and the process's RSS before and after the
//!    vector index is loaded.
//!
//! Run it with `ops/bench_knowledge.sh [PAGES]`, or with the manual
//! installed:
//!
//! ```text
//! cargo run --release -p switchboard-ops --bin bench_knowledge [PAGES]
//! ```
//!
//! `PAGES` limits the ingest to the first N pages (sorted by name) for a
//! quick run; quality is only meaningful on the whole manual.

use std::path::{Path, PathBuf};
use std::time::Instant;

use gateway::knowledge::{Knowledge, SearchQuery, Viewer};
use gateway::promptops::eval::retrieval::{labelled_from_jsonl, score};
use gateway::store::{ChunkWrite, DocumentWrite, Store};
use prompts::SearchMode;

const MANUAL: &str = "/usr/share/doc/postgresql-doc-15/html";

/// The folder the databases go in.
struct KeptOrTemp(PathBuf);

impl KeptOrTemp {
    fn path(&self) -> &Path {
        &self.0
    }
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn config(dir: &Path) -> anyhow::Result<gateway::Config> {
    let models = dir.join("models-link");
    let cache = std::env::var("SWITCHBOARD_MODEL_CACHE")
        .map(PathBuf::from)
        .or_else(|_| {
            std::env::var("HOME").map(|h| PathBuf::from(h).join(".cache/switchboard/models"))
        })
        .unwrap_or(models);
    let text = format!(
        "data_dir = {:?}\n[knowledge]\nmodels_dir = {:?}\n",
        dir.display().to_string(),
        cache.display().to_string()
    );
    Ok(gateway::Config::from_parts("bench", &text, Vec::new())?)
}

async fn open(dir: &Path, name: &str) -> anyhow::Result<(Knowledge, Store)> {
    let url = format!("sqlite://{}/{name}.db", dir.display());
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    let k = Knowledge::new(&config(dir)?, store.clone())?;
    Ok((k, store))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    gateway::install_crypto();
    let pages: Option<usize> = std::env::args().nth(1).map(|a| a.parse()).transpose()?;
    let manual = Path::new(MANUAL);
    anyhow::ensure!(
        manual.is_dir(),
        "{MANUAL} is missing: install Debian's postgresql-doc-15 (ops/bench_knowledge.sh does)"
    );
    // BENCH_KNOWLEDGE_DIR keeps the databases between runs: the manual is
    // then ingested again incrementally (nothing changed: nothing embedded).
    let kept = std::env::var_os("BENCH_KNOWLEDGE_DIR").map(PathBuf::from);
    let tmp_dir = tempfile::tempdir()?;
    let tmp = match &kept {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            KeptOrTemp(dir.clone())
        }
        None => KeptOrTemp(tmp_dir.path().to_path_buf()),
    };
    let corpus = tmp.path().join("html");
    std::fs::create_dir_all(&corpus)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(manual)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .collect();
    files.sort();
    if let Some(n) = pages {
        files.truncate(n);
    }
    for f in &files {
        if let Some(name) = f.file_name() {
            std::fs::copy(f, corpus.join(name))?;
        }
    }
    let (k, store) = open(tmp.path(), "manual").await?;
    let embedder = k.embedder().await?;
    let rss_start = rss_mib();

    // 1. Ingest.
    println!(
        "== ingest: {} pages of the PostgreSQL 15 manual, embedded all-MiniLM-L6-v2",
        files.len()
    );
    let started = Instant::now();
    let report = k
        .ingest_files("pg", "global", std::slice::from_ref(&corpus), &mut |_| {})
        .await?;
    let secs = started.elapsed().as_secs_f64();
    let docs = report.added + report.changed;
    println!(
        "{docs} documents, {} chunks in {secs:.1} s: {:.1} documents/s, {:.1} chunks/s ({} skipped: {})",
        report.chunks,
        docs as f64 / secs,
        report.chunks as f64 / secs,
        report.skipped.len(),
        report
            .skipped
            .iter()
            .take(3)
            .map(|s| format!("{} ({})", s.path.display(), s.reason))
            .collect::<Vec<_>>()
            .join("; ")
    );
    // Embedding alone, on 256 of the chunks just stored.
    let sample: Vec<String> = store
        .knowledge_chunks(&(1..=256).collect::<Vec<i64>>())
        .await?
        .into_iter()
        .map(|c| gateway::store::embedding_text(&c.title, &c.heading, &c.body))
        .collect();
    let tokens: usize = sample
        .iter()
        .map(|t| embedder.count_tokens(t).min(254))
        .sum();
    let t = Instant::now();
    embedder
        .embed(sample.clone())
        .await
        .map_err(anyhow::Error::msg)?;
    let e = t.elapsed().as_secs_f64();
    println!(
        "embedding alone: {} chunks ({tokens} tokens) in {e:.2} s: {:.1} chunks/s, {:.0} tokens/s",
        sample.len(),
        sample.len() as f64 / e,
        tokens as f64 / e
    );

    // 2. Quality.
    let labels_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/knowledge_eval/postgres15.jsonl"
    );
    match std::fs::read_to_string(labels_path) {
        Ok(text) => {
            let labelled = labelled_from_jsonl(labels_path, &text).map_err(anyhow::Error::msg)?;
            println!(
                "\n== quality: {} labelled questions, recall@5 and MRR",
                labelled.len()
            );
            println!("| search | recall@5 | MRR | missed |");
            println!("|---|---|---|---|");
            for mode in [SearchMode::Lexical, SearchMode::Dense, SearchMode::Hybrid] {
                let q = SearchQuery {
                    mode,
                    ..SearchQuery::new("", vec!["pg".into()], 5)
                };
                let s = score(&k, &q, &labelled).await?;
                println!(
                    "| {} | {:.3} | {:.3} | {} |",
                    mode.as_str(),
                    s.recall,
                    s.mrr,
                    s.missed.len()
                );
                if std::env::var_os("BENCH_SHOW_MISSES").is_some() {
                    for m in &s.missed {
                        println!("    missed: {m}");
                    }
                }
            }
        }
        Err(e) => println!("\n== quality: skipped ({labels_path}: {e})"),
    }

    // 3. Latency and memory at 10,000 and 100,000 chunks.
    let base = store.knowledge_vectors(&embedder.name()).await?;
    let rows = store
        .knowledge_chunks(&base.iter().map(|v| v.chunk_id).collect::<Vec<_>>())
        .await?;
    anyhow::ensure!(!rows.is_empty(), "nothing was ingested");
    let questions: Vec<String> = match std::fs::read_to_string(labels_path) {
        Ok(text) => labelled_from_jsonl(labels_path, &text)
            .map_err(anyhow::Error::msg)?
            .into_iter()
            .map(|l| l.question)
            .collect(),
        Err(_) => vec!["how do I change the WAL size".into(); 20],
    };
    println!("\n== search latency, top 5 (the question's embedding apart)");
    println!(
        "| chunks | search | p50 ms | p99 ms | embed p50 ms | whole search p50 ms | p99 ms | RSS before index | after | MiB per 100k chunks |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut refreshes = Vec::new();
    for target in [10_000usize, 100_000] {
        let _ = std::fs::remove_file(tmp.path().join(format!("scale{target}.db")));
        let (k2, store2) = open(tmp.path(), &format!("scale{target}")).await?;
        store2
            .ensure_knowledge_source("pg", "files", "global", &embedder.name())
            .await?;
        let mut written = 0usize;
        let mut doc = 0usize;
        let by_id: std::collections::HashMap<i64, &gateway::store::ChunkRow> =
            rows.iter().map(|r| (r.id, r)).collect();
        while written < target {
            let mut chunks = Vec::new();
            for v in base.iter().skip(written % base.len()).take(50) {
                if written + chunks.len() >= target {
                    break;
                }
                let Some(r) = by_id.get(&v.chunk_id) else {
                    continue;
                };
                chunks.push(ChunkWrite {
                    heading: r.heading.clone(),
                    anchor: None,
                    body: r.body.clone(),
                    tokens: 0,
                    vector: Some(v.vector.clone()),
                });
            }
            if chunks.is_empty() {
                break;
            }
            written += chunks.len();
            store2
                .put_knowledge_document(
                    "pg",
                    &DocumentWrite {
                        key: format!("copy/{doc}"),
                        title: format!("page {doc}"),
                        link: None,
                        content_hash: doc.to_string(),
                        channel: None,
                        audience: None,
                        author: None,
                        at_ms: None,
                        chunks,
                    },
                )
                .await?;
            doc += 1;
        }
        let before = rss_mib();
        // The first search loads the index.
        let loaded = k2
            .search(
                &SearchQuery::new("warm up", vec!["pg".into()], 5),
                &Viewer::operator(),
            )
            .await?;
        let after = rss_mib();
        // One document changed (as a chat message edits a thread): the next
        // search takes in only that document.
        let changed = base
            .iter()
            .take(3)
            .filter_map(|v| by_id.get(&v.chunk_id).map(|r| (v, r)));
        store2
            .put_knowledge_document(
                "pg",
                &DocumentWrite {
                    key: "copy/0".into(),
                    title: "page 0, edited".into(),
                    link: None,
                    content_hash: "edited".into(),
                    channel: None,
                    audience: None,
                    author: None,
                    at_ms: None,
                    chunks: changed
                        .map(|(v, r)| ChunkWrite {
                            heading: r.heading.clone(),
                            anchor: None,
                            body: r.body.clone(),
                            tokens: 0,
                            vector: Some(v.vector.clone()),
                        })
                        .collect(),
                },
            )
            .await?;
        let refreshed = k2
            .search(
                &SearchQuery::new("warm up", vec!["pg".into()], 5),
                &Viewer::operator(),
            )
            .await?;
        refreshes.push(format!(
            "| {written} | {} | {} |",
            loaded
                .refreshed
                .map_or("-".into(), |(how, ms)| format!("{ms:.0} ms ({how})")),
            refreshed
                .refreshed
                .map_or("-".into(), |(how, ms)| format!("{ms:.0} ms ({how})")),
        ));
        let mut shown = false;
        for mode in [SearchMode::Lexical, SearchMode::Dense, SearchMode::Hybrid] {
            let (mut search, mut embed, mut wall) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..5 {
                for q in &questions {
                    let query = SearchQuery {
                        mode,
                        ..SearchQuery::new(q, vec!["pg".into()], 5)
                    };
                    let started = Instant::now();
                    let r = k2.search(&query, &Viewer::operator()).await?;
                    if round > 0 {
                        wall.push(started.elapsed().as_secs_f64() * 1000.0);
                        search.push(r.search_ms);
                        embed.push(r.embed_ms.unwrap_or(0.0));
                    }
                }
            }
            search.sort_by(f64::total_cmp);
            embed.sort_by(f64::total_cmp);
            wall.sort_by(f64::total_cmp);
            let memory = if shown {
                "| | |".to_string()
            } else {
                format!(
                    "{before:.0} MiB | {after:.0} MiB | {:.0}",
                    (after - before) * 100_000.0 / written as f64
                )
            };
            shown = true;
            println!(
                "| {written} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {memory} |",
                mode.as_str(),
                percentile(&search, 0.5),
                percentile(&search, 0.99),
                percentile(&embed, 0.5),
                percentile(&wall, 0.5),
                percentile(&wall, 0.99),
            );
        }
        store2.close().await;
    }
    println!("\n== the vector index brought up to date, by the next search");
    println!("| chunks | loaded whole | after one document changed |");
    println!("|---|---|---|");
    for line in &refreshes {
        println!("{line}");
    }
    println!(
        "\nprocess RSS at start {rss_start:.0} MiB, now {:.0} MiB",
        rss_mib()
    );
    store.close().await;
    Ok(())
}
