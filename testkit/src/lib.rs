//! Stand-ins and throwaway servers shared by Switchboard's tests and
//! benchmarks, one module per thing stood in for. They speak the real wire
//! formats (the documented JSON, SSE events and websocket frames), so that
//! the code under test runs as it does against the real services:
//!
//! - [`standin`]: hosted model APIs, OpenAI Chat Completions
//!   ([`standin::openai`]) and Anthropic Messages ([`standin::anthropic`]);
//! - [`slack`]: the Slack Web API and Socket Mode;
//! - [`discord`]: Discord's REST API and gateway websocket;
//! - [`harness`]: a real gateway on loopback, wired to stand-ins;
//! - [`mcp`]: the MCP servers the tool tests run (installed by `ops/test.sh`);
//! - [`postgres`]: a fresh database on the test PostgreSQL server;
//! - [`redis`]: the test Redis, or a private `redis-server`.
//!
//! Dev-only: never published, never a dependency of the `switchboard` binary.

#![warn(missing_docs)]

pub mod discord;
pub mod harness;
pub mod mcp;
pub mod postgres;
pub mod redis;
pub mod slack;
pub mod standin;

pub use harness::{Answer, Harness, one_provider, sse_data};
pub use postgres::fresh_postgres;

/// A slow file host on loopback that counts the downloads in flight:
/// `GET /{folder}/{name}` answers `png` after `delay`. Returns its base URL
/// and the most downloads it ever served at once.
pub async fn counting_host(
    folder: &str,
    delay: std::time::Duration,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let peak = Arc::clone(&most);
    let app = axum::Router::new().route(
        &format!("/{folder}/{{name}}"),
        axum::routing::get(move || {
            let (n, m) = (Arc::clone(&now), Arc::clone(&peak));
            async move {
                let inflight = n.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(inflight, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                n.fetch_sub(1, Ordering::SeqCst);
                "png"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, most)
}
