//! Gateway overhead on `/v1/chat/completions`.
//!
//! Starts a zero-latency stand-in provider and a Switchboard gateway (store
//! on SQLite in a temporary folder) in this process, then sends open-loop
//! load at constant arrival rates, alternating between the stand-in
//! directly and the same requests through Switchboard. Latency is measured
//! from each request's scheduled start (so queueing counts), and the table
//! shows p50 / p99 for both paths and their difference: Switchboard's
//! overhead. Run it in release mode:
//!
//!     cargo run --release -p switchboard-ops --bin bench_gateway [SECONDS]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use switchboard_ops::{instant_openai, pct};
use tokio::sync::Mutex;

const RATES: &[u32] = &[500, 1000, 2000];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    gateway::install_crypto();
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let standin = instant_openai("Hello!", (9, 2)).await?;
    let dir = tempfile_dir()?;
    let config = format!(
        r#"data_dir = "{dir}"
[providers.standin]
kind = "openai"
base_url = "{standin}/v1"
[models.default]
targets = ["standin/bench-model"]
"#
    );
    let config = gateway::Config::from_parts("bench", &config, Vec::new())?;
    let app = gateway::Gateway::build(&config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway_url = format!("http://{}", listener.local_addr()?);
    let state = app.http_state(&config, |_| None);
    tokio::spawn(gateway::http::api::serve(
        listener,
        state,
        gateway::http::server::ConnectionLimits::from(&config.server),
        std::future::pending(),
    ));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .build()?;
    let body = json!({"model": "default", "messages": [{"role": "user", "content": "Say hello"}]})
        .to_string();
    // Warm up both paths (connections, SQLite, allocator).
    for url in [&standin, &gateway_url] {
        run(&client, url, &body, 500, 1).await;
    }
    println!(
        "Gateway overhead, non-streaming /v1/chat/completions, zero-latency stand-in, store on SQLite"
    );
    println!(
        "{seconds} s per run, open-loop constant arrival, latency from scheduled start, milliseconds\n"
    );
    println!(
        "| rate/s | direct p50 | direct p99 | switchboard p50 | switchboard p99 | overhead p50 | overhead p99 | self-reported overhead p50 / p99 | errors (direct / switchboard) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &rate in RATES {
        let direct = run(&client, &standin, &body, rate, seconds).await;
        let through = run(&client, &gateway_url, &body, rate, seconds).await;
        let (d50, d99) = (pct(&direct.latencies, 50.0), pct(&direct.latencies, 99.0));
        let (s50, s99) = (pct(&through.latencies, 50.0), pct(&through.latencies, 99.0));
        println!(
            "| {rate} | {d50:.3} | {d99:.3} | {s50:.3} | {s99:.3} | {:.3} | {:.3} | {:.3} / {:.3} | {} / {} |",
            s50 - d50,
            s99 - d99,
            pct(&through.reported, 50.0),
            pct(&through.reported, 99.0),
            direct.errors,
            through.errors
        );
    }
    app.pipeline.recorder().flush().await;
    let rows = app.store.count(gateway::store::Table::Inferences).await?;
    println!("\ninference rows written: {rows}");
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<String> {
    let dir = std::env::temp_dir().join(format!("switchboard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("create the benchmark's data folder")?;
    Ok(dir.display().to_string())
}

struct Outcome {
    latencies: Vec<f64>,
    reported: Vec<f64>,
    errors: usize,
}

/// Sends `rate` requests a second for `seconds` to `base`.
async fn run(client: &reqwest::Client, base: &str, body: &str, rate: u32, seconds: u64) -> Outcome {
    let url = format!("{base}/v1/chat/completions");
    let total = rate as u64 * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let results = Arc::new(Mutex::new(Outcome {
        latencies: Vec::with_capacity(total as usize),
        reported: Vec::new(),
        errors: 0,
    }));
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let (client, url, body, results) = (
            client.clone(),
            url.clone(),
            body.to_string(),
            results.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let ok = match response {
                Ok(r) if r.status().is_success() => {
                    let reported = r
                        .headers()
                        .get("x-switchboard-overhead-ms")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<f64>().ok());
                    let complete = r.bytes().await.is_ok();
                    if let Some(v) = reported {
                        results.lock().await.reported.push(v);
                    }
                    complete
                }
                _ => false,
            };
            let ms = scheduled.elapsed().as_secs_f64() * 1000.0;
            let mut r = results.lock().await;
            if ok {
                r.latencies.push(ms);
            } else {
                r.errors += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut out = Arc::try_unwrap(results)
        .map(Mutex::into_inner)
        .unwrap_or_else(|_| Outcome {
            latencies: Vec::new(),
            reported: Vec::new(),
            errors: 0,
        });
    out.latencies.sort_by(f64::total_cmp);
    out.reported.sort_by(f64::total_cmp);
    out
}
