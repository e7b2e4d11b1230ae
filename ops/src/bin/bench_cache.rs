//! Response cache and rate limiter speed.
//!
//! 1. A cache hit's latency through `/v1/chat/completions` at a constant
//!    1,000 requests/s (open loop, measured from each request's scheduled
//!    start), with the in-process cache and with Redis, beside the same
//!    load with `Cache-Control: no-store` (every request asks a zero-latency
//!    stand-in provider: the miss path, this run's baseline). Both the
//!    client-side latency and Switchboard's own time (`x-switchboard-overhead-ms`,
//!    all of a hit's time) are shown.
//! 2. Rate-limit checks per second (four rules per check, as a chat request
//!    from a user in a channel of a workspace has), in-process and in Redis
//!    (64 checks in flight), beside Redis `PING`s at the same concurrency:
//!    the round-trip ceiling.
//!
//! It starts its own redis-server on a loopback port (it must be on PATH).
//! Run it in release mode:
//!
//!     cargo run --release -p switchboard-ops --bin bench_cache [SECONDS]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use gateway::config::RedisConfig;
use gateway::guards::limits::{Check, Limiter, Rule};
use gateway::guards::redis_link::RedisLink;
use serde_json::json;
use switchboard_ops::{instant_openai, pct};
use tokio::sync::Mutex;

const RATE: u32 = 1000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    gateway::install_crypto();
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let redis = RedisProcess::start()?;
    let standin = instant_openai("Paris.", (14, 2)).await?;
    let memory_url = start_gateway(&standin, None).await?;
    let redis_url = start_gateway(&standin, Some(&redis.url())).await?;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .build()?;
    let body = json!({
        "model": "default",
        "temperature": 0,
        "messages": [{"role": "user", "content": "What is the capital of France?"}]
    })
    .to_string();
    // Warm up: connections, the cache entry, the allocator.
    for url in [&memory_url, &redis_url] {
        run(&client, url, &body, &[], 500, 1).await;
        run(
            &client,
            url,
            &body,
            &[("cache-control", "no-store")],
            500,
            1,
        )
        .await;
    }

    println!(
        "Cache hits through /v1/chat/completions, non-streaming, {RATE} requests/s open loop, {seconds} s per run, milliseconds"
    );
    println!(
        "(baseline: the same requests with Cache-Control: no-store, each answered by a zero-latency stand-in provider)\n"
    );
    println!(
        "| cache | hit p50 | hit p99 | hit in Switchboard p50 / p99 | miss p50 | miss p99 | hit/miss p50 | hit/miss p99 | errors (hit / miss) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, url) in [("in-process", &memory_url), ("Redis", &redis_url)] {
        let hit = run(&client, url, &body, &[], RATE, seconds).await;
        let miss = run(
            &client,
            url,
            &body,
            &[("cache-control", "no-store")],
            RATE,
            seconds,
        )
        .await;
        let (h50, h99) = (pct(&hit.latencies, 50.0), pct(&hit.latencies, 99.0));
        let (m50, m99) = (pct(&miss.latencies, 50.0), pct(&miss.latencies, 99.0));
        println!(
            "| {name} | {h50:.3} | {h99:.3} | {:.3} / {:.3} | {m50:.3} | {m99:.3} | {:.2} | {:.2} | {} / {} |",
            pct(&hit.reported, 50.0),
            pct(&hit.reported, 99.0),
            h50 / m50,
            h99 / m99,
            hit.errors,
            miss.errors
        );
    }

    println!(
        "\nRate-limit checks (4 rules each: user, channel, workspace, global), {seconds} s each\n"
    );
    println!("| backend | checks/s | baseline | ratio |");
    println!("|---|---|---|---|");
    let memory = Limiter::default();
    let duration = Duration::from_secs(seconds);
    let memory_rate = limiter_rate(&memory, 1, duration).await;
    println!("| in-process, 1 task | {memory_rate:.0} | - | - |");
    let link = RedisLink::from_config(&RedisConfig {
        url: Some(redis.url()),
        timeout_ms: 1000,
        ..RedisConfig::default()
    })?
    .context("a Redis link")?;
    let shared = Limiter::new(
        Default::default(),
        Some(link.clone()),
        Arc::new(gateway::guards::limits::SystemClock),
    );
    let redis_rate = limiter_rate(&shared, 64, duration).await;
    let ping_rate = ping_rate(&link, 64, duration).await;
    println!(
        "| Redis (Lua script), 64 in flight | {redis_rate:.0} | {ping_rate:.0} PING/s | {:.2} of PING |",
        redis_rate / ping_rate
    );
    println!(
        "\nin-process checks are {:.0}x Redis checks",
        memory_rate / redis_rate
    );
    Ok(())
}

/// A redis-server of the benchmark's own, stopped when dropped.
struct RedisProcess {
    port: u16,
    child: Child,
}

impl RedisProcess {
    fn start() -> anyhow::Result<RedisProcess> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start redis-server (install it with apt-get install redis-server)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(RedisProcess { port, child })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gateway on a loopback port (SQLite in a temporary folder), with the
/// cache in Redis when `redis` is given.
async fn start_gateway(standin: &str, redis: Option<&str>) -> anyhow::Result<String> {
    let dir = std::env::temp_dir().join(format!(
        "switchboard-bench-cache-{}-{}",
        std::process::id(),
        redis.is_some()
    ));
    std::fs::create_dir_all(&dir).context("create the benchmark's data folder")?;
    let redis = redis.map_or(String::new(), |url| {
        format!("[redis]\nurl = \"{url}\"\ntimeout_ms = 1000\n")
    });
    let config = format!(
        r#"data_dir = "{}"
[providers.standin]
kind = "openai"
base_url = "{standin}/v1"
[models.default]
targets = ["standin/bench-model"]
{redis}"#,
        dir.display()
    );
    let config = gateway::Config::from_parts("bench", &config, Vec::new())?;
    let app = gateway::Gateway::build(&config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let state = app.http_state(&config, |_| None);
    tokio::spawn(gateway::http::api::serve(
        listener,
        state,
        gateway::http::server::ConnectionLimits::from(&config.server),
        std::future::pending(),
    ));
    // The gateway lives as long as the benchmark.
    std::mem::forget(app);
    Ok(url)
}

/// The four rules of a chat request, for one of 1,000 users.
fn checks(i: u64) -> Vec<Check> {
    let rate = |key: String| Check {
        key,
        rule: Rule::Rate {
            interval_us: 1.0,
            period_us: 60_000_000.0,
            cost: 1.0,
        },
    };
    vec![
        rate(format!("rl:u:bench:T1:U{}:rpm", i % 1000)),
        rate(format!("rl:c:bench:T1:C{}:rpm", i % 50)),
        rate("rl:w:bench:T1:rpm".to_string()),
        rate("rl:g:rpm".to_string()),
    ]
}

async fn limiter_rate(limiter: &Limiter, in_flight: u64, duration: Duration) -> f64 {
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..in_flight {
        let (limiter, done) = (limiter.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while start.elapsed() < duration {
                let rules = checks(i);
                if limiter.check_raw(&rules).await.is_ok() {
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                i += in_flight;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(std::sync::atomic::Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

async fn ping_rate(link: &RedisLink, in_flight: u64, duration: Duration) -> f64 {
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let (link, done) = (link.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < duration {
                let pong: Result<String, _> = link.query(&redis::cmd("PING")).await;
                if pong.is_ok() {
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(std::sync::atomic::Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

struct Outcome {
    latencies: Vec<f64>,
    reported: Vec<f64>,
    errors: usize,
}

/// Sends `rate` requests a second for `seconds` to `base`.
async fn run(
    client: &reqwest::Client,
    base: &str,
    body: &str,
    headers: &[(&'static str, &'static str)],
    rate: u32,
    seconds: u64,
) -> Outcome {
    let url = format!("{base}/v1/chat/completions");
    let total = rate as u64 * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let results = Arc::new(Mutex::new(Outcome {
        latencies: Vec::with_capacity(total as usize),
        reported: Vec::with_capacity(total as usize),
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
        let headers = headers.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut request = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body);
            for (k, v) in headers {
                request = request.header(k, v);
            }
            let reported = match request.send().await {
                Ok(r) if r.status().is_success() => {
                    let reported = r
                        .headers()
                        .get("x-switchboard-overhead-ms")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<f64>().ok());
                    r.bytes().await.ok().map(|_| reported)
                }
                _ => None,
            };
            let ms = scheduled.elapsed().as_secs_f64() * 1000.0;
            let mut r = results.lock().await;
            match reported {
                Some(reported) => {
                    r.latencies.push(ms);
                    r.reported.extend(reported);
                }
                None => r.errors += 1,
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
