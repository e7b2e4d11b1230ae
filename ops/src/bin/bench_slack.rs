//! Slack ack latency while the model is slow.
//!
//! Runs a built `switchboard serve` (a real process) with `[slack]`
//! pointed at a stand-in Slack Web API and a stand-in model whose first
//! token takes `MODEL_TTFT`, then sends signed `app_mention` events to
//! `/slack/events` at 200 events/s, open loop. It prints the ack latency
//! (from each event's scheduled send to Slack's 200, so queueing counts),
//! p50 and p99, and the time from event to the first visible text in the
//! thread (`chat.postMessage` or `chat.startStream`) beside the model's own TTFT. Build the
//! binary in release mode first:
//!
//!     cargo build --release -p switchboard
//!     cargo run --release -p switchboard-ops --bin bench_slack [SECONDS] [BINARY]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{Path, State};
use axum::routing::{any, post};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

const RATE: u32 = 200;
const MODEL_TTFT: Duration = Duration::from_millis(1500);
const SECRET: &str = "bench-signing-secret";
const TOKEN: &str = "xoxb-bench";

type Posts = Arc<Mutex<HashMap<String, Instant>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    gateway::install_crypto();
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let binary = args
        .next()
        .unwrap_or_else(|| "target/release/switchboard".to_string());
    anyhow::ensure!(
        std::path::Path::new(&binary).exists(),
        "`{binary}` not found: run `cargo build --release -p switchboard` first, or pass the binary's path"
    );
    let model = start_model().await?;
    let posts: Posts = Arc::default();
    let slack = start_slack(posts.clone()).await?;
    let dir = std::env::temp_dir().join(format!("switchboard-bench-slack-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("create the benchmark's data folder")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = format!(
        r#"data_dir = "{}"
[server]
listen = "127.0.0.1:{port}"
[providers.slow]
kind = "openai"
base_url = "{model}/v1"
first_token_timeout_ms = 30000
total_timeout_ms = 60000
[models.default]
targets = ["slow/bench-model"]
[slack]
bot_token_env = "BENCH_SLACK_BOT_TOKEN"
signing_secret_env = "BENCH_SLACK_SIGNING_SECRET"
api_base = "{slack}/api"
# One workspace at 200 answers/s would wait on Slack's real chat.update
# budget; this measures Switchboard, not that budget.
updates_per_minute = 1000000
"#,
        dir.display()
    );
    let path = dir.join("switchboard.toml");
    std::fs::write(&path, config)?;
    let mut child = tokio::process::Command::new(&binary)
        .args(["--config", &path.display().to_string(), "serve"])
        .env("BENCH_SLACK_BOT_TOKEN", TOKEN)
        .env("BENCH_SLACK_SIGNING_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {binary}"))?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .build()?;
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(ready, "switchboard serve did not become ready");

    let total = RATE as u64 * seconds;
    let interval = Duration::from_secs_f64(1.0 / RATE as f64);
    let start = Instant::now() + Duration::from_millis(50);
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let acks: Arc<Mutex<Vec<f64>>> = Arc::default();
    let errors = Arc::new(Mutex::new(0usize));
    let mut tasks = Vec::new();
    for i in 0..total {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let ts = format!("1700000000.{i:06}");
        let body = json!({
            "token": "bench", "team_id": "TBENCH", "api_app_id": "ABENCH",
            "type": "event_callback", "event_id": format!("EvBENCH{i}"), "event_time": 1700000000,
            "event": {"type": "app_mention", "user": "UBENCH", "text": "<@UBOT> hello?",
                      "ts": ts, "channel": "CBENCH", "event_ts": ts}
        })
        .to_string();
        let (client, url, sent, acks, errors) = (
            client.clone(),
            format!("{base}/slack/events"),
            sent.clone(),
            acks.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .to_string();
            let signature = sign(&now, &body);
            lock(&sent).insert(ts, scheduled);
            let r = client
                .post(url)
                .header("content-type", "application/json")
                .header("x-slack-request-timestamp", now)
                .header("x-slack-signature", signature)
                .body(body)
                .send()
                .await;
            let ms = scheduled.elapsed().as_secs_f64() * 1000.0;
            match r {
                Ok(r) if r.status().is_success() => lock(&acks).push(ms),
                _ => *lock(&errors) += 1,
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    // Wait for the answers' first text.
    let deadline = Instant::now() + MODEL_TTFT + Duration::from_secs(60);
    while lock(&posts).len() < total as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.start_kill();

    let mut acks = lock(&acks).clone();
    acks.sort_by(f64::total_cmp);
    let sent = lock(&sent).clone();
    let mut visible: Vec<f64> = lock(&posts)
        .iter()
        .filter_map(|(ts, at)| {
            sent.get(ts)
                .map(|s| at.duration_since(*s).as_secs_f64() * 1000.0)
        })
        .collect();
    visible.sort_by(f64::total_cmp);
    println!(
        "Slack /slack/events ack latency at {RATE} events/s for {seconds} s, model TTFT {} ms",
        MODEL_TTFT.as_millis()
    );
    println!("open loop, latency from scheduled send, milliseconds\n");
    println!(
        "| events | ack p50 | ack p99 | ack errors | answers seen | first text p50 | first text p99 | model TTFT |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {total} | {:.2} | {:.2} | {} | {} | {:.0} | {:.0} | {} |",
        pct(&acks, 50.0),
        pct(&acks, 99.0),
        *lock(&errors),
        visible.len(),
        pct(&visible, 50.0),
        pct(&visible, 99.0),
        MODEL_TTFT.as_millis()
    );
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn sign(ts: &str, body: &str) -> String {
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("v0={hex}")
}

/// A stand-in OpenAI endpoint whose first token takes `MODEL_TTFT`.
async fn start_model() -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            tokio::time::sleep(MODEL_TTFT).await;
            let chunk = |content: &str| {
                json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1741570283,
                       "model": "bench-model", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
            };
            let done = json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1741570283,
                              "model": "bench-model", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                              "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}});
            let body = format!(
                "data: {}\n\ndata: {}\n\ndata: {done}\n\ndata: [DONE]\n\n",
                chunk("Hello"),
                chunk(" there!")
            );
            ([("content-type", "text/event-stream")], body)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// A stand-in Slack Web API that notes when each thread got its first post.
async fn start_slack(posts: Posts) -> anyhow::Result<String> {
    async fn api(
        State(posts): State<Posts>,
        Path(method): Path<String>,
        body: axum::body::Bytes,
    ) -> axum::Json<Value> {
        let args: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        axum::Json(match method.as_str() {
            "auth.test" => json!({"ok": true, "url": "https://bench.slack.com/", "team": "Bench",
                "user": "switchboard", "team_id": "TBENCH", "user_id": "UBOT", "bot_id": "BBOT"}),
            // The first visible text: a posted message, or a started stream.
            "chat.postMessage" | "chat.startStream" => {
                let thread = args["thread_ts"].as_str().unwrap_or_default().to_string();
                lock(&posts)
                    .entry(thread.clone())
                    .or_insert_with(Instant::now);
                let ts = format!("{thread}9");
                json!({"ok": true, "channel": args["channel"], "ts": ts,
                       "message": {"type": "message", "user": "UBOT", "ts": ts, "text": args["text"]}})
            }
            "chat.update" => json!({"ok": true, "channel": args["channel"], "ts": args["ts"],
                "text": args["text"], "message": {"user": "UBOT", "text": args["text"]}}),
            "chat.appendStream" | "chat.stopStream" => {
                json!({"ok": true, "channel": args["channel"], "ts": args["ts"]})
            }
            "users.info" => {
                json!({"ok": true, "user": {"id": "UBENCH", "name": "bench", "is_admin": false}})
            }
            _ => json!({"ok": true}),
        })
    }
    let app = axum::Router::new()
        .route("/api/{method}", any(api))
        .with_state(posts);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}
