//! Feedback and inference ingest through the recorder: sustained rows per
//! second into SQLite (and PostgreSQL when `SWITCHBOARD_BENCH_POSTGRES_URL`
//! names a server it may create a database on), and the latency from a
//! feedback click to its acknowledgement (the row fsync'd in the spool).
//! The baseline, in the same run, is the same load with no spool (rows
//! acknowledged from memory, not crash-safe), so the ratio is the price of
//! durability. Run it in release mode:
//!
//!     cargo run --release -p switchboard-ops --bin bench_ingest [ROWS]

use std::sync::Arc;
use std::time::Instant;

use gateway::store::{FeedbackRecord, InferenceRecord, Recorder, Status, Store, Table, now_ms};
use gateway::{ChatMessage, Origin, Params, Role};
use tokio::sync::Mutex;
use uuid::Uuid;

/// Concurrent clients clicking.
const CLIENTS: usize = 64;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    gateway::install_crypto();
    let rows: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(40_000);
    let dir = std::env::temp_dir().join(format!("switchboard-bench-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut targets = vec![(
        "SQLite".to_string(),
        format!("sqlite://{}/bench.db", dir.display()),
    )];
    if let Ok(admin) = std::env::var("SWITCHBOARD_BENCH_POSTGRES_URL") {
        let name = format!("bench_{}", Uuid::now_v7().simple());
        let store = Store::connect(&admin).await?;
        store
            .execute_admin(&format!("CREATE DATABASE {name}"))
            .await?;
        store.close().await;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        targets.push(("PostgreSQL".to_string(), format!("{base}/{name}")));
    }
    println!("{rows} rows (half inferences, half feedback), {CLIENTS} concurrent clients");
    println!(
        "{:<12} {:<22} {:>10} {:>12} {:>12}",
        "database", "recorder", "rows/s", "ack p50 ms", "ack p99 ms"
    );
    for (name, url) in targets {
        let store = Store::connect(&url).await?;
        store.migrate().await?;
        let mut results = Vec::new();
        for (label, spool) in [
            (
                "spool (fsync, durable)",
                Some(dir.join(format!("spool-{name}"))),
            ),
            ("memory (baseline)", None),
        ] {
            let r = run(&store, spool, rows).await?;
            println!(
                "{name:<12} {label:<22} {:>10.0} {:>12.3} {:>12.3}",
                r.0, r.1, r.2
            );
            results.push(r);
        }
        println!(
            "{name:<12} ratio durable / baseline: rows/s {:.2}x, ack p99 {:.2}x",
            results[0].0 / results[1].0,
            results[0].2 / results[1].2
        );
        store.close().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Sends `rows` rows from many clients; returns (rows/s until all are in
/// the database, ack p50 ms, ack p99 ms).
async fn run(
    store: &Store,
    spool: Option<std::path::PathBuf>,
    rows: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    let before = store.count(Table::Feedback).await? + store.count(Table::Inferences).await?;
    let (recorder, task) = Recorder::start_with_spool(store.clone(), spool);
    let acks = Arc::new(Mutex::new(Vec::with_capacity(rows / 2)));
    let started = Instant::now();
    let per_client = rows / 2 / CLIENTS;
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let recorder = recorder.clone();
        let acks = acks.clone();
        clients.push(tokio::spawn(async move {
            let mut mine = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let inference = inference(c, i);
                let id = inference.id;
                recorder.inference(inference).await;
                let click = Instant::now();
                recorder
                    .feedback(FeedbackRecord {
                        id: Uuid::now_v7(),
                        inference_id: id,
                        created_at_ms: now_ms(),
                        kind: "thumbs".into(),
                        score: Some(1.0),
                        comment: None,
                        user_id: Some(format!("U{c}")),
                        source: "button".into(),
                    })
                    .await;
                mine.push(click.elapsed());
            }
            acks.lock().await.extend(mine);
        }));
    }
    for c in clients {
        c.await?;
    }
    recorder.flush().await;
    let elapsed = started.elapsed();
    drop(recorder);
    task.await?;
    let after = store.count(Table::Feedback).await? + store.count(Table::Inferences).await?;
    let written = (after - before) as f64;
    let mut acks = Arc::try_unwrap(acks)
        .map_err(|_| anyhow::anyhow!("clients still hold the latency list"))?
        .into_inner();
    acks.sort();
    let q = |p: f64| acks[((acks.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1000.0;
    Ok((written / elapsed.as_secs_f64(), q(0.5), q(0.99)))
}

fn inference(client: usize, i: usize) -> InferenceRecord {
    InferenceRecord {
        id: Uuid::now_v7(),
        created_at_ms: now_ms(),
        origin: Origin {
            platform: "slack".into(),
            workspace: Some("T1".into()),
            channel: Some(format!("C{}", client % 8)),
            thread: None,
            user: Some(format!("U{client}")),
            private: false,
        },
        prompt: Some(("assistant".into(), 1)),
        prompt_label: Some("production".into()),
        purpose: gateway::pipeline::Purpose::Live,
        alias: "default".into(),
        provider: Some("openai".into()),
        model: Some("gpt-4o-mini".into()),
        input_tokens: Some(120),
        output_tokens: Some(40),
        ttft_ms: Some(210.0),
        tpot_ms: Some(11.0),
        total_ms: 650.0,
        provider_ms: 640.0,
        cost_usd: Some(0.00004),
        cache_hit: false,
        tokens_saved: None,
        cost_saved_usd: None,
        streamed: true,
        status: Status::Ok,
        error: None,
        finish_reason: Some("stop".into()),
        attempts: Vec::new(),
        params: Params::default(),
        input: vec![
            ChatMessage::new(Role::System, "You are a helpful assistant."),
            ChatMessage::new(Role::User, format!("Question {i} from client {client}")),
        ],
        output: Some("An answer of a typical length for a chat reply.".into()),
    }
}
