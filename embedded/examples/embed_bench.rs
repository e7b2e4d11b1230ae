//! Measures the sentence embedder the way ingest and search use it: throughput for 128-token
//! chunks and for 16-token queries (lengths with `[CLS]` and `[SEP]`), embedded in one call, one
//! call per text, and split over two threads. Each measurement is printed as one JSON line.
//!
//! ```text
//! cargo run --release --example embed_bench -- [--model-dir DIR] [--chunks N] [--queries N]
//! ```
//!
//! Without `--model-dir` the model is pulled into the models directory first.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use switchboard_embedded::{TextEmbedder, default_models_dir, pull_embedding_model};

const WORDS: &str = "the team shipped a new release of the chat bot yesterday and the gateway \
    now routes requests to the local model when the upstream provider is slow or unavailable \
    which keeps answers flowing during outages while operators investigate latency spikes in \
    the retrieval pipeline and tune the index";

/// `n` texts of exactly `tokens` tokens with `[CLS]` and `[SEP]`.
fn texts(e: &TextEmbedder, tokens: usize, n: usize) -> Vec<String> {
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    (0..n)
        .map(|i| {
            let mut text = String::new();
            let mut next = i * 7;
            loop {
                let word = words[next % words.len()];
                let longer = if text.is_empty() {
                    word.to_string()
                } else {
                    format!("{text} {word}")
                };
                if e.count_tokens(&longer) > tokens - 2 {
                    break;
                }
                text = longer;
                next += 3;
            }
            while e.count_tokens(&text) < tokens - 2 {
                text.push_str(" a");
            }
            text
        })
        .collect()
}

fn measure(e: &TextEmbedder, label: &str, texts: &[String], how: &str) {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens: usize = refs.iter().map(|t| e.count_tokens(t) + 2).sum();
    let _ = e.embed(&refs[..refs.len().min(8)]);
    let start = Instant::now();
    match how {
        "one call" => drop(e.embed(&refs)),
        "one call per text" => refs.iter().for_each(|t| drop(e.embed(&[t]))),
        _ => std::thread::scope(|s| {
            for half in refs.chunks(refs.len().div_ceil(2)) {
                s.spawn(move || e.embed(half));
            }
        }),
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"texts\":\"{label}\",\"how\":\"{how}\",\"count\":{},\"seconds\":{secs:.3},\"texts_per_second\":{:.1},\"tokens_per_second\":{:.0}}}",
        refs.len(),
        refs.len() as f64 / secs,
        tokens as f64 / secs
    );
}

fn main() -> ExitCode {
    let mut model_dir: Option<PathBuf> = None;
    let (mut chunks, mut queries) = (200usize, 2000usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        let parsed = match (arg.as_str(), value) {
            ("--model-dir", Some(v)) => {
                model_dir = Some(v.into());
                true
            }
            ("--chunks", Some(v)) => v.parse().map(|n| chunks = n).is_ok(),
            ("--queries", Some(v)) => v.parse().map(|n| queries = n).is_ok(),
            _ => false,
        };
        if !parsed {
            eprintln!("usage: embed_bench [--model-dir DIR] [--chunks N] [--queries N]");
            return ExitCode::from(2);
        }
    }
    let dir = match model_dir {
        Some(dir) => dir,
        None => {
            let Some(models) = default_models_dir() else {
                eprintln!("set SWITCHBOARD_MODEL_CACHE or HOME, or pass --model-dir");
                return ExitCode::FAILURE;
            };
            match pull_embedding_model(&models, &mut |_| {}) {
                Ok(dir) => dir,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let e = match TextEmbedder::load(&dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let chunk_texts = texts(&e, 128, chunks);
    let query_texts = texts(&e, 16, queries);
    for how in ["one call", "one call per text", "two threads"] {
        measure(&e, "128-token chunks", &chunk_texts, how);
        measure(&e, "16-token queries", &query_texts, how);
    }
    ExitCode::SUCCESS
}
