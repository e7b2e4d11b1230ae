//! What an operator sees of a running `switchboard serve`: `/metrics` as
//! Prometheus text with the documented series, spans sent to an
//! OpenTelemetry collector with the GenAI attributes, and JSON log lines;
//! and in none of them the API keys or the provider's key.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use testkit::standin::{self, Reply, StandIn};
use tokio::io::AsyncReadExt;

const API_KEY: &str = "sbk-test-3f9a7c21e5d04b8e";
const PROVIDER_KEY: &str = "sk-provider-8d2e61f0b7c94a53";

/// A `switchboard serve` process with a stand-in provider that wants
/// `PROVIDER_KEY`, and clients that must send `API_KEY`.
struct Serve {
    child: tokio::process::Child,
    /// Standard error, read as it comes so the process never blocks on it.
    log: tokio::task::JoinHandle<String>,
    base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
    _provider: StandIn,
}

impl Serve {
    async fn start(provider: StandIn, extra: &str) -> Serve {
        Serve::start_with_prompts(provider, extra, &[]).await
    }

    /// [`Serve::start`], with these prompt files imported (and promoted to
    /// `production`) before the server starts.
    async fn start_with_prompts(provider: StandIn, extra: &str, prompts: &[(&str, &str)]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let config = format!(
            "data_dir = \"{}\"\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\napi_keys_env = \"TEST_SWITCHBOARD_KEYS\"\n\
             [providers.p]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"TEST_PROVIDER_KEY\"\n\
             [models.default]\ntargets = [\"p/m\"]\n\
             [routing]\nretries = 0\n\
             {extra}",
            dir.path().display(),
            provider.url
        );
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, config).unwrap();
        if !prompts.is_empty() {
            let folder = dir.path().join("prompts");
            std::fs::create_dir_all(&folder).unwrap();
            for (name, text) in prompts {
                std::fs::write(folder.join(format!("{name}.toml")), text).unwrap();
            }
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
                .args(["--config", path.to_str().unwrap(), "prompts", "import"])
                .arg(&folder)
                .args(["--promote", "production"])
                .env("TEST_SWITCHBOARD_KEYS", API_KEY)
                .env("TEST_PROVIDER_KEY", PROVIDER_KEY)
                .output()
                .await
                .expect("run switchboard prompts import");
            assert!(
                out.status.success(),
                "import failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["--config", path.to_str().unwrap(), "serve"])
            .env("TEST_SWITCHBOARD_KEYS", API_KEY)
            .env("TEST_PROVIDER_KEY", PROVIDER_KEY)
            .env("RUST_LOG", "debug")
            .env_remove("SWITCHBOARD_LOG_FORMAT")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start switchboard serve");
        let mut stderr = child.stderr.take().unwrap();
        let log = tokio::spawn(async move {
            let mut out = String::new();
            stderr.read_to_string(&mut out).await.unwrap();
            out
        });
        gateway::install_crypto();
        let serve = Serve {
            child,
            log,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            _dir: dir,
            _provider: provider,
        };
        for _ in 0..200 {
            if let Ok(r) = serve.client.get(serve.url("/readyz")).send().await
                && r.status() == 200
            {
                return serve;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("serve did not become ready");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Asks the API; returns the status and body.
    async fn chat(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .client
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Stops the process with SIGTERM, as an operator would, and returns
    /// what it wrote to standard error.
    async fn stop(mut self) -> String {
        let pid = self.child.id().expect("pid");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("serve must stop on SIGTERM")
            .unwrap();
        let stderr = self.log.await.unwrap();
        assert!(exit.success(), "{exit:?}\n{stderr}");
        stderr
    }
}

fn question(text: &str) -> serde_json::Value {
    json!({"model": "prompt:assistant", "messages": [{"role": "user", "content": text}]})
}

// ---------------------------------------------------------------------------
// /metrics

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_documented_series() {
    let provider = StandIn::start().await;
    // Requests 1-2 are answered, 3 fails, 4-6 are answered (5 from the
    // cache), and 6 gets two clicks.
    provider.then([
        Reply::text("First answer."),
        Reply::text("Second answer."),
        Reply::Status(
            500,
            standin::openai_error("upstream broke", "server_error"),
            vec![],
        ),
    ]);
    let serve = Serve::start(provider, "[limits.global]\nrequests_per_minute = 6\n").await;

    assert_eq!(serve.chat(question("What is a runbook?")).await.0, 200);
    assert_eq!(serve.chat(question("And a playbook?")).await.0, 200);
    assert_eq!(serve.chat(question("And a postmortem?")).await.0, 502);
    let cacheable = json!({"model": "default", "temperature": 0,
        "messages": [{"role": "user", "content": "Spell 'cache'."}]});
    assert_eq!(serve.chat(cacheable.clone()).await.0, 200);
    assert_eq!(serve.chat(cacheable).await.0, 200);
    // Two clicks on an answer, each acknowledged once fsync'd in the spool.
    let answered = serve
        .client
        .post(serve.url("/v1/chat/completions"))
        .bearer_auth(API_KEY)
        .json(&json!({"model": "default", "messages": [{"role": "user", "content": "Rate me."}]}))
        .send()
        .await
        .unwrap();
    let inference = answered.headers()["x-switchboard-inference-id"]
        .to_str()
        .unwrap()
        .to_string();
    for (user, score) in [("U1", 1), ("U2", 0)] {
        let click = serve
            .client
            .post(serve.url("/v1/feedback"))
            .bearer_auth(API_KEY)
            .json(
                &json!({"inference_id": inference, "kind": "thumbs", "score": score, "user": user}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(click.status(), 201, "{}", click.text().await.unwrap());
    }
    // The global limit (6 a minute) refuses sooner or later.
    let mut refused = 0;
    for i in 0..20 {
        let (status, _) = serve
            .chat(json!({"model": "default", "messages": [{"role": "user", "content": format!("n{i}")}]}))
            .await;
        if status == 429 {
            refused += 1;
            break;
        }
        assert_eq!(status, 200);
    }
    assert_eq!(refused, 1, "the global limit never refused");

    // With API keys configured, /metrics needs one like the rest of the API.
    let anonymous = reqwest::Client::new()
        .get(serve.url("/metrics"))
        .send()
        .await
        .unwrap();
    let response = serve
        .client
        .get(serve.url("/metrics"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    serve.stop().await;
    assert_eq!(anonymous.status(), 401);
    assert!(!text.contains(API_KEY) && !text.contains(PROVIDER_KEY));

    let families = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n\n{text}"));
    for (name, kind) in [
        ("switchboard_requests_total", "counter"),
        ("switchboard_tokens_total", "counter"),
        ("switchboard_cost_usd_total", "counter"),
        ("switchboard_cache_hits_total", "counter"),
        ("switchboard_limited_total", "counter"),
        ("switchboard_provider_errors_total", "counter"),
        ("switchboard_ttft_seconds", "histogram"),
        ("switchboard_tpot_seconds", "histogram"),
        ("switchboard_request_duration_seconds", "histogram"),
        ("switchboard_overhead_seconds", "histogram"),
        ("switchboard_in_flight_requests", "gauge"),
        ("switchboard_queue_depth", "gauge"),
        ("switchboard_redis_fallbacks_total", "counter"),
        ("switchboard_feedback_ack_seconds", "histogram"),
        ("switchboard_spool_sync_seconds", "histogram"),
    ] {
        let family = families
            .get(name)
            .unwrap_or_else(|| panic!("no family {name} in\n{text}"));
        assert_eq!(family.kind, kind, "{name}");
    }
    let value = |name: &str, want: &[(&str, &str)]| -> f64 {
        families
            .values()
            .flat_map(|f| &f.samples)
            .filter(|s| {
                s.name == name
                    && want
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    };
    let prompt_version = families["switchboard_requests_total"]
        .samples
        .iter()
        .find(|s| s.labels.get("prompt").map(String::as_str) == Some("assistant"))
        .and_then(|s| s.labels.get("version").cloned())
        .expect("requests through the prompt are labelled with it");
    assert!(
        prompt_version.parse::<u32>().is_ok(),
        "version {prompt_version:?}"
    );
    let by_prompt = [
        ("alias", "default"),
        ("provider", "p"),
        ("prompt", "assistant"),
        ("version", prompt_version.as_str()),
    ];
    let ok: Vec<_> = by_prompt
        .iter()
        .copied()
        .chain([("status", "ok")])
        .collect();
    let failed: Vec<_> = by_prompt
        .iter()
        .copied()
        .chain([("status", "error")])
        .collect();
    assert_eq!(value("switchboard_requests_total", &ok), 2.0);
    assert_eq!(value("switchboard_requests_total", &failed), 1.0);
    let output: Vec<_> = by_prompt
        .iter()
        .copied()
        .chain([("direction", "output")])
        .collect();
    // The stand-in reports one output token per word: 2 + 2.
    assert_eq!(value("switchboard_tokens_total", &output), 4.0);
    // Every request through the prompt has a duration, the failed one too.
    assert_eq!(
        value("switchboard_request_duration_seconds_count", &by_prompt),
        3.0
    );
    assert_eq!(value("switchboard_ttft_seconds_count", &by_prompt), 2.0);
    assert_eq!(
        value("switchboard_cache_hits_total", &[("alias", "default")]),
        1.0
    );
    assert_eq!(
        value("switchboard_limited_total", &[("alias", "default")]),
        1.0
    );
    assert_eq!(
        value(
            "switchboard_provider_errors_total",
            &[("alias", "default"), ("provider", "p"), ("target", "p/m")]
        ),
        1.0
    );
    // Both clicks were timed; each waited for at least one spool sync,
    // and the answers' rows were synced too.
    assert_eq!(value("switchboard_feedback_ack_seconds_count", &[]), 2.0);
    assert!(value("switchboard_feedback_ack_seconds_sum", &[]) > 0.0);
    assert!(
        value("switchboard_spool_sync_seconds_count", &[]) >= 2.0,
        "{text}"
    );
    assert!(
        families["switchboard_queue_depth"].samples.iter().any(|s| s
            .labels
            .get("queue")
            .map(String::as_str)
            == Some("recorder")),
        "the recorder's queue depth is reported"
    );
    assert!(
        families["switchboard_in_flight_requests"]
            .samples
            .iter()
            .all(|s| s.labels.is_empty() && s.value >= 0.0)
            && !families["switchboard_in_flight_requests"]
                .samples
                .is_empty()
    );
}

/// One metric family of the exposition.
#[derive(Debug)]
struct Family {
    kind: String,
    samples: Vec<Sample>,
}

/// One sample line.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict reader of the Prometheus text exposition format (0.0.4):
/// every family has one HELP and one TYPE line before its samples, its
/// samples are together, names and labels are well-formed, no sample is
/// repeated, and histograms have ascending `le` buckets whose counts never
/// fall, ending in `+Inf` equal to `_count`, with a `_sum`.
fn parse_exposition(text: &str) -> Result<BTreeMap<String, Family>, String> {
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".into());
    }
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut helps = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut seen = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest
                .split_once(' ')
                .ok_or_else(|| at("HELP without text".into()))?;
            check_name(name).map_err(at)?;
            if help.trim().is_empty() || !helps.insert(name.to_string()) {
                return Err(at("empty or repeated HELP".into()));
            }
            if families.contains_key(name) {
                return Err(at("HELP after the family's TYPE".into()));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| at("TYPE without kind".into()))?;
            check_name(name).map_err(at)?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(at(format!("unknown type {kind}")));
            }
            if !helps.contains(name) {
                return Err(at("TYPE without a HELP before it".into()));
            }
            if families
                .insert(
                    name.to_string(),
                    Family {
                        kind: kind.to_string(),
                        samples: Vec::new(),
                    },
                )
                .is_some()
            {
                return Err(at("repeated TYPE".into()));
            }
            current = Some(name.to_string());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            return Err(at("blank line".into()));
        }
        let sample = parse_sample(line).map_err(at)?;
        let family = current
            .as_ref()
            .ok_or_else(|| at("sample before any TYPE".into()))?;
        let kind = &families[family].kind;
        let belongs = match kind.as_str() {
            "histogram" => [
                format!("{family}_bucket"),
                format!("{family}_sum"),
                format!("{family}_count"),
            ]
            .contains(&sample.name),
            _ => sample.name == *family,
        };
        if !belongs {
            return Err(at(format!("sample outside its family ({family})")));
        }
        if kind == "counter" && (sample.value.is_nan() || sample.value < 0.0) {
            return Err(at("negative counter".into()));
        }
        if !seen.insert((sample.name.clone(), sample.labels.clone())) {
            return Err(at("repeated sample".into()));
        }
        families.get_mut(family).unwrap().samples.push(sample);
    }
    for (name, family) in &families {
        if family.kind == "histogram" {
            check_histogram(name, family)?;
        }
    }
    Ok(families)
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("bad metric name {name:?}"))
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let end: usize;
        loop {
            // A label name, `="`, an escaped value, `"`, then `,` or `}`.
            let Some(&(start, c)) = chars.peek() else {
                return Err("unclosed labels".into());
            };
            if c == '}' {
                end = start;
                break;
            }
            let mut key = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c == '=' {
                    break;
                }
                key.push(c);
                chars.next();
            }
            let mut kc = key.chars();
            if !(kc
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && kc.all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                return Err(format!("bad label name {key:?}"));
            }
            if chars.next().map(|x| x.1) != Some('=') || chars.next().map(|x| x.1) != Some('"') {
                return Err(format!("label {key} needs =\"value\""));
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|x| x.1) {
                    Some('\\') => match chars.next().map(|x| x.1) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some('"') => break,
                    Some('\n') | None => return Err("unterminated label value".into()),
                    Some(c) => value.push(c),
                }
            }
            if labels.insert(key.clone(), value).is_some() {
                return Err(format!("label {key} repeated"));
            }
            match chars.next() {
                Some((_, ',')) => {}
                Some((i, '}')) => {
                    end = i;
                    break;
                }
                _ => return Err("labels must be separated by `,`".into()),
            }
        }
        rest = &body[end + 1..];
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or("a single space must precede the value")?;
    let mut parts = rest.split(' ');
    let value = parts.next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse::<f64>().map_err(|_| format!("bad value {v:?}"))?,
    };
    if let Some(ts) = parts.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if parts.next().is_some() {
        return Err("trailing text after the value".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// A histogram series: its (bound, cumulative count) buckets, `_sum`, `_count`.
type Series = (Vec<(f64, f64)>, Option<f64>, Option<f64>);

fn check_histogram(name: &str, family: &Family) -> Result<(), String> {
    // Group by the labels other than `le`.
    let mut series: BTreeMap<BTreeMap<String, String>, Series> = BTreeMap::new();
    for s in &family.samples {
        let mut labels = s.labels.clone();
        let le = labels.remove("le");
        let entry = series.entry(labels).or_default();
        if s.name.ends_with("_bucket") {
            let le = le.ok_or_else(|| format!("{name}: bucket without le"))?;
            let bound = match le.as_str() {
                "+Inf" => f64::INFINITY,
                v => v
                    .parse::<f64>()
                    .map_err(|_| format!("{name}: bad le {v:?}"))?,
            };
            entry.0.push((bound, s.value));
        } else if le.is_some() {
            return Err(format!("{name}: le on {}", s.name));
        } else if s.name.ends_with("_sum") {
            entry.1 = Some(s.value);
        } else {
            entry.2 = Some(s.value);
        }
    }
    for (labels, (buckets, sum, count)) in series {
        let count = count.ok_or_else(|| format!("{name}{labels:?}: no _count"))?;
        sum.ok_or_else(|| format!("{name}{labels:?}: no _sum"))?;
        if buckets
            .windows(2)
            .any(|w| w[1].0 <= w[0].0 || w[1].1 < w[0].1)
        {
            return Err(format!(
                "{name}{labels:?}: buckets not ascending and cumulative: {buckets:?}"
            ));
        }
        match buckets.last() {
            Some((b, c)) if b.is_infinite() && *c == count => {}
            _ => {
                return Err(format!(
                    "{name}{labels:?}: the +Inf bucket must equal _count ({count})"
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Spans over OTLP, and JSON logs

/// A loopback OTLP/HTTP receiver: keeps every `POST /v1/traces` body.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<bytes::Bytes>>>) {
    let bodies: Arc<Mutex<Vec<bytes::Bytes>>> = Arc::default();
    let kept = bodies.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let kept = kept.clone();
            async move {
                assert_eq!(headers["content-type"], "application/x-protobuf");
                kept.lock().unwrap().push(body);
                // An empty ExportTraceServiceResponse.
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), bodies)
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn attr_str(span: &Span, key: &str) -> Option<String> {
    match attr(span, key)? {
        AnyValue::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn attr_int(span: &Span, key: &str) -> Option<i64> {
    match attr(span, key)? {
        AnyValue::IntValue(n) => Some(*n),
        _ => None,
    }
}

/// Runs one request through a server that exports spans and logs JSON,
/// stops it, and returns the exported spans, the raw bodies and the log.
async fn traced_request(extra: &str) -> (Vec<Span>, Vec<bytes::Bytes>, String) {
    let (endpoint, bodies) = otlp_receiver().await;
    let provider = StandIn::start().await;
    provider.then([Reply::OpenAiStream(
        standin::split("The deploy window is Tuesday."),
        (23, 5),
    )]);
    let serve = Serve::start(
        provider,
        &format!("[telemetry]\notlp_endpoint = \"{endpoint}\"\nlog_format = \"json\"\n{extra}"),
    )
    .await;
    let (status, body) = serve
        .chat(json!({"model": "prompt:assistant", "stream": false,
            "messages": [{"role": "user", "content": "When is the deploy window?"}]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "The deploy window is Tuesday."
    );
    let log = serve.stop().await;
    let bodies = bodies.lock().unwrap().clone();
    assert!(
        !bodies.is_empty(),
        "no spans reached the collector; log:\n{log}"
    );
    let spans = bodies
        .iter()
        .flat_map(|b| {
            ExportTraceServiceRequest::decode(b.as_ref())
                .expect("OTLP protobuf")
                .resource_spans
        })
        .inspect(|rs| {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| v.value.clone());
            assert_eq!(service, Some(AnyValue::StringValue("switchboard".into())));
        })
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .collect();
    (spans, bodies, log)
}

#[tokio::test]
async fn spans_reach_the_collector_with_genai_attributes_and_no_secrets_or_text() {
    let (spans, bodies, log) = traced_request("").await;

    let chat = spans.iter().find(|s| s.name == "chat").unwrap_or_else(|| {
        panic!(
            "no `chat` span among {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    });
    assert_eq!(
        attr_str(chat, "gen_ai.operation.name").as_deref(),
        Some("chat")
    );
    assert_eq!(
        attr_str(chat, "gen_ai.request.model").as_deref(),
        Some("default")
    );
    assert_eq!(attr_str(chat, "gen_ai.provider.name").as_deref(), Some("p"));
    assert_eq!(
        attr_str(chat, "gen_ai.response.model").as_deref(),
        Some("m")
    );
    assert_eq!(attr_int(chat, "gen_ai.usage.input_tokens"), Some(23));
    assert_eq!(attr_int(chat, "gen_ai.usage.output_tokens"), Some(5));
    assert_eq!(
        attr_str(chat, "gen_ai.response.finish_reasons").as_deref(),
        Some("stop")
    );
    assert_eq!(
        attr_str(chat, "switchboard.prompt.name").as_deref(),
        Some("assistant")
    );
    assert!(attr_int(chat, "switchboard.prompt.version").is_some_and(|v| v >= 1));
    assert_eq!(
        attr_str(chat, "switchboard.prompt.label").as_deref(),
        Some("production")
    );
    assert_eq!(
        attr(chat, "switchboard.cache.hit"),
        Some(&AnyValue::BoolValue(false))
    );
    let inference_id = attr_str(chat, "switchboard.inference_id").expect("inference id");
    assert!(uuid::Uuid::parse_str(&inference_id).is_ok());

    // The stages are children of the request's span, in the same trace.
    for stage in [
        "limits.admit",
        "prompt.resolve",
        "prompt.render",
        "chat m",
        "store.record",
    ] {
        let child = spans
            .iter()
            .find(|s| s.name == stage)
            .unwrap_or_else(|| panic!("no `{stage}` span"));
        assert_eq!(child.trace_id, chat.trace_id, "{stage}");
        let mut parent = child.parent_span_id.clone();
        // `chat m` may sit under another stage; walk up to the root.
        while parent != chat.span_id {
            let up = spans
                .iter()
                .find(|s| s.span_id == parent)
                .unwrap_or_else(|| panic!("{stage} is not under the request's span"));
            parent = up.parent_span_id.clone();
        }
    }
    let call = spans.iter().find(|s| s.name == "chat m").unwrap();
    assert_eq!(attr_str(call, "gen_ai.provider.name").as_deref(), Some("p"));
    assert_eq!(attr_str(call, "gen_ai.request.model").as_deref(), Some("m"));
    assert_eq!(
        call.kind,
        opentelemetry_proto::tonic::trace::v1::span::SpanKind::Client as i32
    );

    // No secret, and by default no message text, anywhere in what was sent.
    for body in &bodies {
        for needle in [
            API_KEY,
            PROVIDER_KEY,
            "When is the deploy window?",
            "The deploy window is Tuesday.",
        ] {
            assert!(
                !body.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "the exported spans contain {needle:?}"
            );
        }
    }
    assert!(attr(chat, "gen_ai.input.messages").is_none());

    // Every log line is one JSON object, and no secret is logged.
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("exporting spans over OTLP")),
        "{log}"
    );
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(value.is_object() && value.get("level").is_some(), "{line}");
        assert!(
            !line.contains(API_KEY) && !line.contains(PROVIDER_KEY),
            "secret logged: {line}"
        );
    }
}

#[tokio::test]
async fn message_text_is_on_spans_only_when_capture_is_switched_on() {
    let (spans, _, _) = traced_request("capture_content = true\n").await;
    let chat = spans.iter().find(|s| s.name == "chat").expect("chat span");
    let input: serde_json::Value =
        serde_json::from_str(&attr_str(chat, "gen_ai.input.messages").expect("input messages"))
            .unwrap();
    let last = input.as_array().unwrap().last().unwrap();
    assert_eq!(last["role"], "user");
    assert_eq!(last["parts"][0]["content"], "When is the deploy window?");
    let output: serde_json::Value =
        serde_json::from_str(&attr_str(chat, "gen_ai.output.messages").expect("output messages"))
            .unwrap();
    assert_eq!(
        output[0]["parts"][0]["content"],
        "The deploy window is Tuesday."
    );
}

#[tokio::test]
async fn a_tool_call_is_an_execute_tool_span_under_the_request_with_no_arguments_by_default() {
    let (endpoint, bodies) = otlp_receiver().await;
    let provider = StandIn::start().await;
    provider.then([
        Reply::tool_call(
            "call_tokyo",
            "get_current_time",
            r#"{"timezone":"Asia/Tokyo"}"#,
        ),
        Reply::OpenAiJson("It is morning in Tokyo.".into(), (60, 6)),
    ]);
    let time = testkit::mcp::server_time();
    let clock = "name = \"clock\"\nmodel = \"default\"\ntools = [\"time\"]\n[[messages]]\nrole = \"system\"\ntemplate = \"You tell the time.\"\n[[messages]]\nrole = \"user\"\ntemplate = \"{{ text }}\"\n";
    let serve = Serve::start_with_prompts(
        provider,
        &format!(
            "[tools.time]\ncommand = {:?}\nargs = [\"--local-timezone\", \"UTC\"]\n[telemetry]\notlp_endpoint = \"{endpoint}\"\n",
            time
        ),
        &[("clock", clock)],
    )
    .await;
    let (status, body) = serve
        .chat(json!({"model": "prompt:clock", "messages": [{"role": "user", "content": "What time is it in Tokyo?"}]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let log = serve.stop().await;
    let spans: Vec<Span> = bodies
        .lock()
        .unwrap()
        .iter()
        .flat_map(|b| {
            ExportTraceServiceRequest::decode(b.as_ref())
                .expect("OTLP protobuf")
                .resource_spans
        })
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .collect();
    let tool = spans
        .iter()
        .find(|s| s.name == "execute_tool get_current_time")
        .unwrap_or_else(|| {
            panic!(
                "no execute_tool span among {:?}; log:\n{log}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(
        attr_str(tool, "gen_ai.operation.name").as_deref(),
        Some("execute_tool")
    );
    assert_eq!(
        attr_str(tool, "gen_ai.tool.name").as_deref(),
        Some("get_current_time")
    );
    assert_eq!(
        attr_str(tool, "gen_ai.tool.call.id").as_deref(),
        Some("call_tokyo")
    );
    // Arguments and results stay out of spans unless content is captured.
    assert!(attr(tool, "gen_ai.tool.call.arguments").is_none());
    assert!(attr(tool, "gen_ai.tool.call.result").is_none());
    let chat = spans.iter().find(|s| s.name == "chat").unwrap_or_else(|| {
        panic!(
            "no request span among {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    });
    assert_eq!(tool.trace_id, chat.trace_id, "in the request's trace");
    // Two model calls: one that called the tool, one that answered.
    assert_eq!(spans.iter().filter(|s| s.name == "chat m").count(), 2);
}
