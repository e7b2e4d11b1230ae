//! The Discord adapter's latency and edit rate.
//!
//! Runs a built `switchboard serve` against a stand-in Discord (REST and
//! gateway websocket, the same one the end-to-end tests use) and a
//! stand-in model that streams with a fixed time to first token, then
//! reports:
//!
//! 1. time from the gateway dispatch of a mention to the first visible text
//!    (the first message the bot posts), beside the model's own TTFT;
//! 2. writes per channel per second while 20 answers stream at once, all
//!    in one channel and spread over 20 channels, against the configured
//!    edit interval.
//!
//! Build the binary first, in the profile you want measured:
//!
//!     cargo build --release -p switchboard
//!     cargo run --release -p switchboard-ops --bin bench_discord [ROUNDS]
//!
//! `SWITCHBOARD_BIN` points at another binary (default:
//! `target/release/switchboard`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::{Value, json};
use testkit::discord::{self as standin_discord, BOT, Discord, user_message};

/// The model's time to first token.
const TTFT: Duration = Duration::from_millis(200);
/// Time between the model's tokens.
const TOKEN_GAP: Duration = Duration::from_millis(40);
/// Tokens per answer.
const TOKENS: usize = 100;
/// The edit interval configured for the bot.
const EDIT_INTERVAL_MS: u64 = 1000;
/// Concurrent answers in the edit-rate part.
const CONCURRENT: usize = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    gateway::install_crypto();
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let bin =
        std::env::var("SWITCHBOARD_BIN").unwrap_or_else(|_| "target/release/switchboard".into());
    anyhow::ensure!(
        std::path::Path::new(&bin).exists(),
        "`{bin}` does not exist: build it with `cargo build --release -p switchboard`, or set SWITCHBOARD_BIN"
    );
    let provider = start_model().await?;
    let discord = Discord::start().await;
    let dir =
        std::env::temp_dir().join(format!("switchboard-bench-discord-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("create the benchmark's data folder")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = format!(
        r#"data_dir = "{}"
[server]
listen = "127.0.0.1:{port}"
[providers.model]
kind = "openai"
base_url = "{provider}"
[models.default]
targets = ["model/bench"]
[discord]
token_env = "BENCH_DISCORD_TOKEN"
application_id = "{}"
api_base = "{}"
edit_interval_ms = {EDIT_INTERVAL_MS}
"#,
        dir.display(),
        standin_discord::APP,
        discord.api_base
    );
    let path = dir.join("switchboard.toml");
    std::fs::write(&path, config)?;
    let mut child = tokio::process::Command::new(&bin)
        .args(["--config", &path.display().to_string(), "serve"])
        .env("BENCH_DISCORD_TOKEN", "bench-token")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start `{bin} serve`"))?;
    discord
        .until("the bot's gateway connection", |d| d.sessions() > 0)
        .await;

    // 1. Dispatch to first visible text, one mention at a time.
    let mut first_text = Vec::new();
    for round in 0..rounds {
        let id = format!("{}", 1_700_000_000_000_000_000u64 + round as u64);
        let posted_before = posts(&discord).len();
        // A channel of its own, so that the previous answer's last write does
        // not hold this one's first (the edit interval is per channel).
        let mut msg = user_message(&id, &format!("<@{BOT}> go"), true);
        msg["channel_id"] = json!(format!("{}", 1_260_000_000_000_000_000u64 + round as u64));
        let start = Instant::now();
        discord.dispatch("MESSAGE_CREATE", msg).await;
        discord
            .until("the first text", |d| posts(d).len() > posted_before)
            .await;
        let at = posts(&discord)[posted_before];
        first_text.push(at.saturating_duration_since(start));
        discord
            .until("the complete answer", |d| complete(d) > round)
            .await;
    }
    first_text.sort();
    println!(
        "dispatch → first visible text, {rounds} mentions (model TTFT {} ms):",
        TTFT.as_millis()
    );
    println!(
        "  p50 {:>7.1} ms   p90 {:>7.1} ms   max {:>7.1} ms   (adapter and gateway share: p50 {:+.1} ms over the TTFT)",
        ms(pct(&first_text, 0.5)),
        ms(pct(&first_text, 0.9)),
        ms(pct(&first_text, 1.0)),
        ms(pct(&first_text, 0.5)) - ms(TTFT)
    );

    // 2. Writes per channel per second under 20 concurrent answers.
    for (label, spread) in [("one channel", false), ("20 channels", true)] {
        let from = discord.calls().len();
        let done_before = complete(&discord);
        let start = Instant::now();
        for i in 0..CONCURRENT {
            let id = format!(
                "{}",
                1_710_000_000_000_000_000u64 + (i + if spread { 100 } else { 0 }) as u64
            );
            let mut msg = user_message(&id, &format!("<@{BOT}> go {i}"), true);
            if spread {
                msg["channel_id"] = json!(format!("{}", 1_250_000_000_000_000_000u64 + i as u64));
            }
            discord.dispatch("MESSAGE_CREATE", msg).await;
        }
        discord
            .until("every answer", |d| complete(d) >= done_before + CONCURRENT)
            .await;
        let elapsed = start.elapsed();
        let calls = discord.calls();
        let mut per_channel: BTreeMap<String, Vec<Instant>> = BTreeMap::new();
        for c in &calls[from..] {
            if (c.method == "POST" || c.method == "PATCH")
                && c.status == 200
                && c.path.starts_with("/channels/")
                && !c.path.ends_with("/typing")
            {
                let channel = c.path.split('/').nth(2).unwrap_or_default().to_string();
                per_channel.entry(channel).or_default().push(c.at);
            }
        }
        let writes: usize = per_channel.values().map(Vec::len).sum();
        let gaps: Vec<Duration> = per_channel.values().flat_map(|v| gaps(v)).collect();
        let shortest = gaps.iter().min().copied().unwrap_or_default();
        let under = gaps
            .iter()
            .filter(|g| **g < Duration::from_millis(EDIT_INTERVAL_MS - 50))
            .count();
        println!(
            "{CONCURRENT} concurrent answers, {label}: {writes} writes in {:.1} s; busiest channel {:.2} writes/s (limit {:.2}); shortest gap between writes to one channel {:.0} ms; {under} of {} gaps under the interval (a flush writing two parts of one long answer)",
            elapsed.as_secs_f64(),
            per_channel
                .values()
                .map(|v| v.len() as f64 / elapsed.as_secs_f64())
                .fold(0.0, f64::max),
            1000.0 / EDIT_INTERVAL_MS as f64,
            ms(shortest),
            gaps.len(),
        );
    }
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// When each successful message creation happened, in order.
fn posts(d: &Discord) -> Vec<Instant> {
    d.calls()
        .iter()
        .filter(|c| c.method == "POST" && c.status == 200 && c.path.ends_with("/messages"))
        .map(|c| c.at)
        .collect()
}

/// How many answers are complete (their last part carries the buttons).
fn complete(d: &Discord) -> usize {
    d.bot_messages()
        .iter()
        .filter(|m| m["components"].as_array().is_some_and(|c| !c.is_empty()))
        .count()
}

/// The times between consecutive events.
fn gaps(times: &[Instant]) -> Vec<Duration> {
    let mut t = times.to_vec();
    t.sort();
    t.windows(2).map(|w| w[1].duration_since(w[0])).collect()
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A model that answers with `TOKENS` tokens, the first after `TTFT`.
async fn start_model() -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|| async {
            let chunk = |delta: Value, finish: Value| {
                Bytes::from(format!(
                    "data: {}\n\n",
                    json!({ "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1741569952,
                            "model": "bench", "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }] })
                ))
            };
            let mut events: Vec<(Duration, Bytes)> = vec![(Duration::ZERO, chunk(json!({ "role": "assistant", "content": "" }), Value::Null))];
            for i in 0..TOKENS {
                let gap = if i == 0 { TTFT } else { TOKEN_GAP };
                events.push((gap, chunk(json!({ "content": format!("word{i} ") }), Value::Null)));
            }
            events.push((Duration::ZERO, chunk(json!({}), json!("stop"))));
            events.push((Duration::ZERO, Bytes::from("data: [DONE]\n\n")));
            let body = futures_util::stream::iter(events).then(|(gap, e)| async move {
                tokio::time::sleep(gap).await;
                Ok::<_, Infallible>(e)
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(body))
                .unwrap_or_default()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}
