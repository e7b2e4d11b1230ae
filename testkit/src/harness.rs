//! Stands in for a deployed Switchboard: a real gateway (config, SQLite
//! store, pipeline, HTTP server on loopback) that a test starts, calls over
//! HTTP (OpenAI-compatible `/v1/chat/completions`) and drops, usually wired
//! to the model-API [`StandIn`](crate::standin::StandIn).

use std::net::SocketAddr;
use std::sync::Arc;

use gateway::guards::limits::{Clock, SystemClock};

use gateway::store::InferenceRow;
use gateway::{Config, Gateway};
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::sync::oneshot;

/// A running gateway.
pub struct Harness {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The gateway's parts.
    pub gateway: Gateway,
    /// An HTTP client.
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

/// A response: status, headers and body.
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, as text.
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The inference id header.
    pub fn inference_id(&self) -> String {
        self.headers
            .get("x-switchboard-inference-id")
            .and_then(|v| v.to_str().ok())
            .expect("x-switchboard-inference-id header")
            .to_string()
    }
}

impl Harness {
    /// Starts Switchboard with this configuration (`data_dir` is set to a
    /// temporary folder) and these environment variables.
    pub async fn start(toml: &str, env: &[(&str, &str)]) -> Harness {
        Harness::start_with_clock(toml, env, Arc::new(SystemClock)).await
    }

    /// [`Harness::start`], with limits reading `clock`.
    pub async fn start_with_clock(
        toml: &str,
        env: &[(&str, &str)],
        clock: Arc<dyn Clock>,
    ) -> Harness {
        gateway::install_crypto();
        let dir = tempfile::tempdir().expect("temp dir");
        let text = format!("data_dir = {:?}\n{toml}", dir.path().display().to_string());
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = Config::from_parts("test", &text, env.clone()).expect("valid test config");
        let gateway = Gateway::build_with_clock(&config, clock)
            .await
            .expect("gateway starts");
        let state = gateway.http_state(&config, |var| {
            env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let limits = gateway::http::server::ConnectionLimits::from(&config.server);
        tokio::spawn(gateway::http::api::serve(
            listener,
            state,
            limits,
            async move {
                let _ = stopped.await;
            },
        ));
        Harness {
            url: format!("http://{addr}"),
            gateway,
            client: reqwest::Client::new(),
            stop: Some(stop),
            _dir: dir,
        }
    }

    /// POSTs a raw body to a path.
    pub async fn post_raw(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request reaches the gateway");
        Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.expect("body"),
        }
    }

    /// POSTs a chat completion with extra headers.
    pub async fn chat_with(&self, body: Value, headers: &[(&str, &str)]) -> Answer {
        self.post_raw("/v1/chat/completions", &body.to_string(), headers)
            .await
    }

    /// POSTs a chat completion.
    pub async fn chat(&self, body: Value) -> Answer {
        self.post_raw("/v1/chat/completions", &body.to_string(), &[])
            .await
    }

    /// The lines of `/metrics` that start with `prefix`.
    pub async fn metric_lines(&self, prefix: &str) -> Vec<String> {
        let text = self
            .client
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics body");
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }

    /// The stored inference with this id, after writing what is queued.
    pub async fn row(&self, id: &str) -> InferenceRow {
        self.gateway.pipeline.recorder().flush().await;
        self.gateway
            .store
            .inference(id)
            .await
            .expect("query")
            .unwrap_or_else(|| panic!("no inference row {id}"))
    }

    /// How many inference rows exist.
    pub async fn inference_count(&self) -> i64 {
        self.gateway.pipeline.recorder().flush().await;
        self.gateway
            .store
            .count(gateway::store::Table::Inferences)
            .await
            .expect("count")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Parses an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            event
                .lines()
                .find_map(|l| l.strip_prefix("data: ").map(str::to_string))
        })
        .collect()
}

/// A configuration with one OpenAI-compatible provider `primary` at `url`
/// behind the `default` alias, and fast retries.
pub fn one_provider(url: &str) -> String {
    format!(
        r#"
[providers.primary]
kind = "openai"
base_url = "{url}"
first_token_timeout_ms = 2000
total_timeout_ms = 5000
prices = {{ "gpt-test" = {{ input = 1.0, output = 2.0 }} }}

[models.default]
targets = ["primary/gpt-test"]

[routing]
retries = 2
backoff_initial_ms = 10
backoff_max_ms = 50
"#
    )
}
