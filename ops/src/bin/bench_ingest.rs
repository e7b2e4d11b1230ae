//! Feedback and inference ingest through the recorder: sustained rows per
//! second into SQLite (and PostgreSQL when `SWITCHBOARD_BENCH_POSTGRES_URL`
//! names a server it may create a database on), and the latency from a
//! feedback click to its acknowledgement (the row fsync'd in the spool).
//!
//! Two loads, each with the spool and then without it (the baseline: rows
//! acknowledged from memory, not crash-safe; the ratio is the price of
//! durability):
//! - *saturated*: 64 clients each send an inference and click on it, again
//!   as soon as the click is acknowledged: the most rows per second the
//!   recorder takes, and the acknowledgement time when it is the
//!   bottleneck;
//! - *paced*: rows offered at a fixed rate (default 20,000 per second, half
//!   of them clicks, each click its own task), as users would send them:
//!   whether the recorder keeps up, and the acknowledgement time at that
//!   rate.
//!
//! Beside each baseline run, a thread times a bare 4 KiB write and
//! `fdatasync` once a millisecond on the same disk: the least any
//! acknowledgement that waits for a sync can take under that load. Each
//! run also prints the share of CPU time the host took from this machine
//! (steal, from `/proc/stat`), which no code here can win back.
//!
//! Before each run the disk is settled: PostgreSQL checkpoints and every
//! file system is synced, so that no run pays for the writeback of the
//! one before it (on a shared disk, a flush waits for everything written
//! before it, a checkpoint's burst included). Then, before each durable
//! run, the bare sync is timed alone for two seconds: its slowest syncs,
//! and the share of that time spent in syncs over 5 ms. While the disk
//! itself stalls for more than 1% of the time, no acknowledgement that
//! waits for a sync can have a p99 under 5 ms; a durable run's figures
//! are read against the line before it.
//!
//! Run it in release mode:
//!
//!     cargo run --release -p switchboard-ops --bin bench_ingest [ROWS] [RATE]

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gateway::store::{Recorder, Store, Table};

use gateway::domain::{FeedbackRecord, InferenceRecord, Status, now_ms};
use gateway::{ChatMessage, Origin, Params, Role};
use tokio::sync::Mutex;
use tokio::time::MissedTickBehavior;
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
    let rate: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
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
    println!(
        "{rows} rows per run (half inferences, half feedback); saturated: {CLIENTS} clients; paced: {rate} rows/s offered"
    );
    println!(
        "{:<12} {:<10} {:<22} {:>10} {:>12} {:>12} {:>8}",
        "database", "load", "recorder", "rows/s", "ack p50 ms", "ack p99 ms", "steal %"
    );
    for (name, url) in targets {
        let store = Store::connect(&url).await?;
        store.migrate().await?;
        for load in [Load::Saturated, Load::Paced(rate)] {
            let mut results = Vec::new();
            let alone = disk_alone(&dir).await?;
            println!(
                "{name:<12} {:<10} disk alone before the run: bare sync p50 {:.3} ms, p99 {:.3} ms, max {:.1} ms; {:.1}% of {:.0} s in syncs over 5 ms",
                load.name(),
                alone.p50,
                alone.p99,
                alone.max,
                alone.stalled * 100.0,
                DISK_ALONE.as_secs_f64(),
            );
            for (label, spool) in [
                (
                    "spool (fsync, durable)",
                    Some(dir.join(format!("spool-{name}"))),
                ),
                ("memory (baseline)", None),
            ] {
                let r = run(&store, spool, &dir, rows, load).await?;
                println!(
                    "{name:<12} {:<10} {label:<22} {:>10.0} {:>12.3} {:>12.3} {:>8}",
                    load.name(),
                    r.rows_per_s,
                    r.ack_p50,
                    r.ack_p99,
                    r.steal.map_or("n/a".to_string(), |s| format!("{s:.1}")),
                );
                results.push(r);
            }
            let (durable, baseline) = (&results[0], &results[1]);
            println!(
                "{name:<12} {:<10} ratio durable / baseline: rows/s {:.2}x, ack p99 {:.2}x",
                load.name(),
                durable.rows_per_s / baseline.rows_per_s,
                durable.ack_p99 / baseline.ack_p99
            );
            if let Some((p50, p99)) = baseline.bare_sync {
                println!(
                    "{name:<12} {:<10} bare 4 KiB fdatasync beside the baseline: p50 {p50:.3} ms, p99 {p99:.3} ms; durable ack p99 / bare sync p99: {:.2}x",
                    load.name(),
                    durable.ack_p99 / p99
                );
            }
        }
        store.close().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// How rows are offered.
#[derive(Clone, Copy)]
enum Load {
    /// [`CLIENTS`] clients, each sending its next pair once its click is
    /// acknowledged.
    Saturated,
    /// This many rows per second, whatever the acknowledgements do.
    Paced(usize),
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::Saturated => "saturated",
            Load::Paced(_) => "paced",
        }
    }
}

/// What one run measured.
struct Figures {
    /// Rows per second until all are in the database.
    rows_per_s: f64,
    ack_p50: f64,
    ack_p99: f64,
    /// Percent of CPU time taken by the host, when `/proc/stat` tells.
    steal: Option<f64>,
    /// p50 and p99 (ms) of a bare sync beside a run without a spool.
    bare_sync: Option<(f64, f64)>,
}

/// Sends `rows` rows, with a spool or (the baseline) without one, and then
/// with a bare sync timed in `dir` beside the load.
async fn run(
    store: &Store,
    spool: Option<std::path::PathBuf>,
    dir: &Path,
    rows: usize,
    load: Load,
) -> anyhow::Result<Figures> {
    settle(store).await;
    let before = store.count(Table::Feedback).await? + store.count(Table::Inferences).await?;
    let prober = match spool {
        Some(_) => None,
        None => Some(Prober::start(dir)),
    };
    let cpu_before = cpu_times();
    let (recorder, task) = Recorder::start_with_spool(store.clone(), spool);
    let acks = Arc::new(Mutex::new(Vec::with_capacity(rows / 2)));
    let started = Instant::now();
    let mut clients = Vec::new();
    match load {
        Load::Saturated => {
            let per_client = rows / 2 / CLIENTS;
            for c in 0..CLIENTS {
                let recorder = recorder.clone();
                let acks = acks.clone();
                clients.push(tokio::spawn(async move {
                    let mut mine = Vec::with_capacity(per_client);
                    for i in 0..per_client {
                        mine.push(pair(&recorder, c, i).await);
                    }
                    acks.lock().await.extend(mine);
                }));
            }
        }
        Load::Paced(rate) => {
            // One tick a millisecond, each offering its share of pairs; a
            // late tick is caught up at once, so the offered rate holds.
            let per_tick = (rate / 2 / 1000).max(1);
            let mut ticks = tokio::time::interval(Duration::from_millis(1));
            ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
            for i in 0..rows / 2 / per_tick {
                ticks.tick().await;
                for c in 0..per_tick {
                    let recorder = recorder.clone();
                    let acks = acks.clone();
                    clients.push(tokio::spawn(async move {
                        let took = pair(&recorder, c, i).await;
                        acks.lock().await.push(took);
                    }));
                }
            }
        }
    }
    for c in clients {
        c.await?;
    }
    recorder.flush().await;
    let elapsed = started.elapsed();
    let steal = cpu_before.zip(cpu_times()).and_then(|(a, b)| {
        let total = b.0.checked_sub(a.0)?;
        let steal = b.1.checked_sub(a.1)?;
        (total > 0).then(|| steal as f64 * 100.0 / total as f64)
    });
    let bare_sync = match prober {
        Some(prober) => {
            let took = prober.stop()?;
            Some((quantile(&took, 0.5), quantile(&took, 0.99)))
        }
        None => None,
    };
    drop(recorder);
    task.await?;
    let after = store.count(Table::Feedback).await? + store.count(Table::Inferences).await?;
    let written = (after - before) as f64;
    let mut acks = Arc::try_unwrap(acks)
        .map_err(|_| anyhow::anyhow!("clients still hold the latency list"))?
        .into_inner();
    acks.sort();
    Ok(Figures {
        rows_per_s: written / elapsed.as_secs_f64(),
        ack_p50: quantile(&acks, 0.5),
        ack_p99: quantile(&acks, 0.99),
        steal,
        bare_sync,
    })
}

/// Leaves no writeback from earlier runs pending: a PostgreSQL checkpoint
/// (where the role may run one), then `sync` of every file system.
async fn settle(store: &Store) {
    if store.backend() == gateway::store::Backend::Postgres
        && let Err(e) = store.execute_admin("CHECKPOINT").await
    {
        eprintln!("no checkpoint before the run ({e}); its writeback may fall in the run");
    }
    if let Err(e) = tokio::process::Command::new("sync").status().await {
        eprintln!("cannot run `sync` ({e}); earlier runs' writeback may fall in this one");
    }
}

/// The `p` quantile of sorted durations, in milliseconds.
fn quantile(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p) as usize)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

/// How long the disk is timed alone before each durable run.
const DISK_ALONE: Duration = Duration::from_secs(2);

/// The bare sync timed with nothing else running.
struct Disk {
    p50: f64,
    p99: f64,
    max: f64,
    /// The share of the time spent in syncs slower than 5 ms.
    stalled: f64,
}

/// Times the bare sync in `dir` alone for [`DISK_ALONE`].
async fn disk_alone(dir: &Path) -> anyhow::Result<Disk> {
    let prober = Prober::start(dir);
    tokio::time::sleep(DISK_ALONE).await;
    let took = prober.stop()?;
    let stalled: Duration = took.iter().filter(|d| **d > Duration::from_millis(5)).sum();
    Ok(Disk {
        p50: quantile(&took, 0.5),
        p99: quantile(&took, 0.99),
        max: took.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
        stalled: stalled.as_secs_f64() / DISK_ALONE.as_secs_f64(),
    })
}

/// A thread timing bare syncs (see [`time_bare_syncs`]) until stopped.
struct Prober {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<std::io::Result<Vec<Duration>>>,
}

impl Prober {
    /// Starts timing syncs in `dir`.
    fn start(dir: &Path) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let (dir, flag) = (dir.to_path_buf(), stop.clone());
        let thread = std::thread::spawn(move || time_bare_syncs(&dir, &flag));
        Prober { stop, thread }
    }

    /// Stops, and returns the syncs' times, sorted.
    fn stop(self) -> anyhow::Result<Vec<Duration>> {
        self.stop.store(true, Ordering::Relaxed);
        let mut took = self
            .thread
            .join()
            .map_err(|_| anyhow::anyhow!("the sync timer panicked"))??;
        took.sort();
        Ok(took)
    }
}

/// Times a bare 4 KiB write and `fdatasync` into a zero-filled file in
/// `dir`, once a millisecond, until `stop`.
fn time_bare_syncs(dir: &Path, stop: &AtomicBool) -> std::io::Result<Vec<Duration>> {
    const SIZE: u64 = 1 << 20;
    let path = dir.join("bare-sync");
    let file = std::fs::File::create(&path)?;
    file.write_all_at(&vec![0; SIZE as usize], 0)?;
    file.sync_all()?;
    let block = [b'x'; 4096];
    let (mut took, mut at) = (Vec::new(), 0);
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        file.write_all_at(&block, at)?;
        file.sync_data()?;
        took.push(started.elapsed());
        at = (at + block.len() as u64) % SIZE;
        std::thread::sleep(Duration::from_millis(1));
    }
    std::fs::remove_file(&path)?;
    Ok(took)
}

/// (all, steal) CPU time in ticks since boot, from `/proc/stat` (Linux).
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        // user nice system idle iowait irq softirq steal (guest time is
        // counted in user already)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    Some((fields.iter().sum(), *fields.get(7)?))
}

/// Records an inference and a click on it; returns the click's time to
/// acknowledgement.
async fn pair(recorder: &Recorder, client: usize, i: usize) -> Duration {
    let inference = inference(client, i);
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
            user: Some(gateway::User::new("slack", format!("U{client}"))),
            source: "button".into(),
        })
        .await;
    click.elapsed()
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
            user: Some(gateway::User::new("slack", format!("U{client}"))),
            private: false,
            label: None,
        },
        user_name: None,
        prompt: Some(("assistant".into(), 1)),
        prompt_label: Some("production".into()),
        purpose: gateway::domain::Purpose::Live,
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
        retrieval: None,
        tool_calls: Vec::new(),
        tool_runs: Vec::new(),
    }
}
