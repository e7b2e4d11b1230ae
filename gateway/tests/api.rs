//! The OpenAI-compatible API end to end: request shapes of the official
//! SDKs, streaming and not, against stand-in providers that speak the real
//! wire formats; retries, fallback, timeouts, broken streams, and the
//! inference rows each case leaves.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::standin::{Reply, StandIn, anthropic_error, openai_error, split};
use testkit::{Harness, one_provider, sse_data};

fn ask(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello"}
        ],
        "stream": stream,
        "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
        "temperature": 0.5,
        "max_tokens": 64
    })
}

#[tokio::test]
async fn non_streaming_answer_has_openai_shape_usage_cost_and_a_row() {
    let provider = StandIn::start().await;
    provider.then([Reply::OpenAiJson("Hello there!".into(), (12, 3))]);
    let h = Harness::start(&one_provider(&provider.url), &[]).await;

    let a = h.chat(ask("default", false)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello there!");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 12);
    assert_eq!(v["usage"]["completion_tokens"], 3);
    assert_eq!(v["usage"]["total_tokens"], 15);
    let overhead: f64 = a.headers["x-switchboard-overhead-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(overhead >= 0.0);

    // The provider got the caller's messages and parameters.
    let sent = &provider.received()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.body["model"], "gpt-test");
    assert_eq!(sent.body["messages"][1]["content"], "Say hello");
    assert_eq!(sent.body["max_tokens"], 64);
    // Asked as a stream (with usage), so that TTFT and TPOT are real for a
    // plain answer too; the caller still gets one JSON answer.
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"]["include_usage"], true);

    let row = h.row(&a.inference_id()).await;
    assert_eq!(row.status, "ok");
    assert_eq!(row.platform, "http");
    assert_eq!((row.input_tokens, row.output_tokens), (Some(12), Some(3)));
    // 12 input tokens at $1/M plus 3 output tokens at $2/M.
    let cost = row.cost_usd.expect("cost");
    assert!((cost - 18e-6).abs() < 1e-12, "{cost}");
    assert_eq!(row.attempts, 1);
    let directions: Vec<&str> = row.messages.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(directions, ["input", "input", "output"]);
    assert_eq!(row.messages[2].2, "Hello there!");
}

#[tokio::test]
async fn streaming_answer_is_openai_sse_with_usage_and_done() {
    let provider = StandIn::start().await;
    let pieces = split("The quick brown fox jumps.");
    provider.then([Reply::OpenAiStream(pieces.clone(), (20, 5))]);
    let h = Harness::start(&one_provider(&provider.url), &[]).await;

    let a = h.chat(ask("default", true)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(a.body.ends_with("data: [DONE]\n\n"), "{}", a.body);
    let data = sse_data(&a.body);
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "The quick brown fox jumps.");
    // Every token arrives as its own chunk, not one lump.
    let content_chunks = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .count();
    assert_eq!(content_chunks, pieces.len());
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 5);
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(
        provider.received()[0].body["stream_options"]["include_usage"],
        true
    );

    let row = h.row(&a.inference_id()).await;
    assert_eq!(row.status, "ok");
    assert_eq!(row.output_tokens, Some(5));
    assert_eq!(row.messages.last().unwrap().2, "The quick brown fox jumps.");
}

#[tokio::test]
async fn anthropic_targets_stream_and_complete() {
    let provider = StandIn::start().await;
    let config = format!(
        r#"
[providers.claude]
kind = "anthropic"
base_url = "{}"
api_key_env = "TEST_ANTHROPIC_KEY"

[models.default]
targets = ["claude/claude-test"]
"#,
        provider.url
    );
    let h = Harness::start(&config, &[("TEST_ANTHROPIC_KEY", "sk-ant-test")]).await;
    provider.then([
        Reply::AnthropicStream(split("Bonjour tout le monde"), (25, 4)),
        Reply::AnthropicJson("Salut".into(), (25, 1)),
    ]);

    let a = h.chat(ask("default", true)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let text: String = sse_data(&a.body)
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "Bonjour tout le monde");
    let row = h.row(&a.inference_id()).await;
    assert_eq!((row.input_tokens, row.output_tokens), (Some(25), Some(4)));

    let b = h.chat(ask("default", false)).await;
    assert_eq!(b.json()["choices"][0]["message"]["content"], "Salut");

    // Anthropic's request shape: system apart, key and version headers.
    let sent = &provider.received()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.body["system"], "You are terse.");
    assert_eq!(
        sent.body["messages"],
        json!([{"role": "user", "content": "Say hello"}])
    );
    assert_eq!(sent.body["max_tokens"], 64);
    assert_eq!(sent.headers["x-api-key"], "sk-ant-test");
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
}

#[tokio::test]
async fn malformed_requests_get_400_openai_errors_and_change_nothing() {
    let provider = StandIn::start().await;
    let h = Harness::start(&one_provider(&provider.url), &[]).await;

    let cases = [
        ("{not json", "not valid JSON"),
        (r#"{"model": "default"}"#, "messages"),
        (
            r#"{"messages": [{"role": "user", "content": "hi"}]}"#,
            "model",
        ),
        (
            r#"{"model": "default", "messages": []}"#,
            "must not be empty",
        ),
        (
            r#"{"model": "default", "messages": [{"role": "wizard", "content": "hi"}]}"#,
            "messages[0].role",
        ),
        (
            r#"{"model": "default", "messages": [{"role": "user", "content": 5}]}"#,
            "messages[0].content",
        ),
        (
            r#"{"model": "default", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}"#,
            "temperature",
        ),
    ];
    for (body, needle) in cases {
        let a = h.post_raw("/v1/chat/completions", body, &[]).await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        let v = a.json();
        assert_eq!(v["error"]["type"], "invalid_request_error", "{body}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "{body}: `{message}` should mention `{needle}`"
        );
    }
    assert!(
        provider.received().is_empty(),
        "no request may reach a provider"
    );
    assert_eq!(h.inference_count().await, 0);
}

#[tokio::test]
async fn a_500_then_a_200_gives_one_answer_and_the_retry_is_on_the_row() {
    let provider = StandIn::start().await;
    provider.then([
        Reply::Status(
            500,
            openai_error("The server had an error", "server_error"),
            vec![],
        ),
        Reply::OpenAiStream(split("Recovered fine"), (9, 2)),
    ]);
    let h = Harness::start(&one_provider(&provider.url), &[]).await;
    let a = h.chat(ask("default", false)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json()["choices"][0]["message"]["content"],
        "Recovered fine"
    );
    assert_eq!(provider.received().len(), 2);
    let row = h.row(&a.inference_id()).await;
    assert_eq!(row.status, "ok");
    assert_eq!(row.attempts, 2);
    let log: Value = serde_json::from_str(&row.attempt_log).unwrap();
    assert_eq!(log[0]["status"], 500);
    assert!(
        log[0]["error"]
            .as_str()
            .unwrap()
            .contains("The server had an error")
    );
    assert!(log[1].get("error").is_none());
}

#[tokio::test]
async fn retry_after_is_honoured_before_retrying() {
    let provider = StandIn::start().await;
    provider.then([
        Reply::Status(
            429,
            openai_error("Rate limit reached", "rate_limit_error"),
            vec![("retry-after-ms", "400".into())],
        ),
        Reply::OpenAiStream(split("ok"), (1, 1)),
    ]);
    let h = Harness::start(&one_provider(&provider.url), &[]).await;
    let a = h.chat(ask("default", true)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let r = provider.received();
    assert_eq!(r.len(), 2);
    let gap = r[1].at.duration_since(r[0].at);
    assert!(
        gap >= Duration::from_millis(400),
        "retried after {gap:?}, before the 400 ms asked for"
    );
}

/// Two providers: `primary` at `a`, `backup` at `b`.
fn two_providers(a: &str, b: &str) -> String {
    format!(
        r#"
[providers.primary]
kind = "openai"
base_url = "{a}"
connect_timeout_ms = 500
first_token_timeout_ms = 300
total_timeout_ms = 2000

[providers.backup]
kind = "anthropic"
base_url = "{b}"

[models.default]
targets = ["primary/gpt-test", "backup/claude-test"]

[routing]
retries = 1
backoff_initial_ms = 10
backoff_max_ms = 20
"#
    )
}

/// A loopback URL where nothing listens.
async fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn primary_down_falls_back_to_the_next_target() {
    let backup = StandIn::start().await;
    backup.then([Reply::AnthropicStream(split("From the backup"), (7, 3))]);
    let h = Harness::start(&two_providers(&dead_url().await, &backup.url), &[]).await;
    for stream in [true, false] {
        let a = h.chat(ask("default", stream)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(
            a.body.contains("From") || a.body.contains("Hello from the stand-in"),
            "{}",
            a.body
        );
        let row = h.row(&a.inference_id()).await;
        assert_eq!(row.provider.as_deref(), Some("backup"));
        assert_eq!(row.attempts, 3, "two tries of the primary, then the backup");
    }
}

#[tokio::test]
async fn all_targets_down_is_a_clear_error_and_a_recorded_row() {
    let backup = StandIn::start().await;
    backup.always(Reply::Status(
        529,
        anthropic_error("Overloaded", "overloaded_error"),
        vec![],
    ));
    let h = Harness::start(&two_providers(&dead_url().await, &backup.url), &[]).await;
    let a = h.chat(ask("default", true)).await;
    assert_eq!(a.status, 502, "{}", a.body);
    let message = a.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("every target of model `default` failed"),
        "{message}"
    );
    assert!(message.contains("Overloaded"), "{message}");
    let row = h.row(&a.inference_id()).await;
    assert_eq!(row.status, "error");
    assert!(row.error.unwrap().contains("Overloaded"));
    assert_eq!(row.attempts, 4);
}

#[tokio::test]
async fn a_stream_cut_midway_shows_the_partial_answer_and_an_error() {
    let provider = StandIn::start().await;
    provider.then([Reply::OpenAiCut(split("This answer will be"))]);
    let config = one_provider(&provider.url);
    let h = Harness::start(&config, &[]).await;
    let a = tokio::time::timeout(Duration::from_secs(10), h.chat(ask("default", true)))
        .await
        .expect("a cut stream must not hang");
    assert_eq!(a.status, 200);
    let data = sse_data(&a.body);
    let text: String = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "This answer will be");
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("broke off"),
        "{last}"
    );
    assert!(
        !a.body.contains("[DONE]"),
        "a broken answer must not look complete"
    );
    let row = h.row(&a.inference_id()).await;
    assert_eq!(row.status, "partial");
    assert_eq!(row.messages.last().unwrap().2, "This answer will be");
    assert_eq!(
        provider.received().len(),
        1,
        "after the first token there is no silent retry"
    );
}

#[tokio::test]
async fn a_provider_that_never_answers_times_out_per_config() {
    let provider = StandIn::start().await;
    provider.always(Reply::Hang);
    let config = one_provider(&provider.url)
        .replace(
            "first_token_timeout_ms = 2000",
            "first_token_timeout_ms = 200",
        )
        .replace("total_timeout_ms = 5000", "total_timeout_ms = 300")
        .replace("retries = 2", "retries = 0");
    let h = Harness::start(&config, &[]).await;
    for stream in [true, false] {
        let a = tokio::time::timeout(Duration::from_secs(10), h.chat(ask("default", stream)))
            .await
            .expect("the gateway must give up by itself");
        assert_eq!(a.status, 504, "{}", a.body);
        let message = a.json()["error"]["message"].as_str().unwrap().to_string();
        // The first-token limit holds for plain requests as well.
        assert!(
            message.contains("no first token within 200 ms"),
            "stream {stream}: {message}"
        );
        let row = h.row(&a.inference_id()).await;
        assert_eq!(row.status, "error");
    }
}

#[tokio::test]
async fn unknown_models_and_prompts_name_what_exists() {
    let provider = StandIn::start().await;
    let h = Harness::start(&one_provider(&provider.url), &[]).await;
    let a = h.chat(ask("gpt-5-ultra", false)).await;
    assert_eq!(a.status, 404);
    let m = a.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        m.contains("unknown model `gpt-5-ultra`") && m.contains("default"),
        "{m}"
    );

    let a = h.chat(ask("prompt:nope", false)).await;
    assert_eq!(a.status, 404);
    let m = a.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        m.contains("unknown prompt `nope`") && m.contains("assistant"),
        "{m}"
    );
    assert_eq!(h.inference_count().await, 0);

    let models = h
        .client
        .get(format!("{}/v1/models", h.url))
        .send()
        .await
        .unwrap();
    let v: Value = models.json().await.unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "default",
            "prompt:ask_about",
            "prompt:assistant",
            "prompt:summarize"
        ]
    );
}

#[tokio::test]
async fn prompt_models_render_the_prompt_and_record_its_version() {
    let provider = StandIn::start().await;
    let h = Harness::start(&one_provider(&provider.url), &[]).await;
    let body = json!({
        "model": "prompt:assistant",
        "messages": [
            {"role": "user", "content": "first {{ question }}"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "What is {{ 7 * 7 }}?"}
        ]
    });
    let a = h.chat(body).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let sent = &provider.received()[0].body;
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert!(
        messages[0]["content"]
            .as_str()
            .unwrap()
            .contains("Switchboard")
    );
    assert_eq!(messages[1]["content"], "first {{ question }}");
    assert_eq!(messages[2]["content"], "first answer");
    // User text is a value, never template source.
    assert_eq!(messages[3]["content"], "What is {{ 7 * 7 }}?");
    // The prompt's own parameters apply.
    assert_eq!(sent["max_tokens"], 512);
    let row = h.row(&a.inference_id()).await;
    assert_eq!(row.prompt_name.as_deref(), Some("assistant"));
    assert_eq!(row.prompt_version, Some(1));
}

#[tokio::test]
async fn made_up_model_names_add_no_metric_series_even_when_the_limits_refuse() {
    let provider = StandIn::start().await;
    let config = format!(
        "{}\n[limits.global]\nrequests_per_minute = 1\n",
        one_provider(&provider.url)
    );
    let h = Harness::start(&config, &[]).await;
    let first = h.chat(ask("default", false)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let series = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| l.rsplit_once(' ').map_or(l, |(name, _)| name).to_string())
            .collect()
    };
    let scrape = || async {
        h.gateway.recorder.flush().await;
        let r = h
            .client
            .get(format!("{}/metrics", h.url))
            .send()
            .await
            .unwrap();
        r.text().await.unwrap()
    };
    let before = series(&scrape().await);
    for i in 0..100 {
        let model = format!("made-up-{i}-{}", uuid::Uuid::new_v4());
        let r = h.chat(ask(&model, false)).await;
        assert_eq!(r.status, 404, "{model}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "model_not_found");
    }
    let limited = h.chat(ask("default", false)).await;
    assert_eq!(
        limited.status, 429,
        "the limit still holds: {}",
        limited.body
    );
    let after = scrape().await;
    assert!(
        !after.contains("made-up-"),
        "no series names a made-up model"
    );
    let new: Vec<String> = series(&after)
        .into_iter()
        .filter(|s| !before.contains(s))
        .collect();
    assert!(
        new.iter()
            .all(|s| !s.contains("alias=") || s.contains("alias=\"default\"")),
        "only the known alias's refusal may add series: {new:?}"
    );
}

#[tokio::test]
async fn without_keys_a_request_forwarded_by_a_proxy_on_this_machine_is_refused() {
    let provider = StandIn::start().await;
    let h = Harness::start(&one_provider(&provider.url), &[]).await;
    let body = ask("default", false).to_string();
    for header in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        let value = if header == "forwarded" {
            "for=203.0.113.7"
        } else {
            "203.0.113.7"
        };
        let r = h
            .post_raw("/v1/chat/completions", &body, &[(header, value)])
            .await;
        assert_eq!(r.status, 401, "{header}: {}", r.body);
        assert_eq!(r.json()["error"]["type"], "authentication_error");
        assert!(r.body.contains("server.api_keys_env"), "{}", r.body);
    }
    assert!(
        provider.received().is_empty(),
        "no proxied request reached the model"
    );
    let direct = h.post_raw("/v1/chat/completions", &body, &[]).await;
    assert_eq!(direct.status, 200, "{}", direct.body);
}

#[tokio::test]
async fn api_keys_are_required_when_configured() {
    let provider = StandIn::start().await;
    let config = one_provider(&provider.url).replace(
        "[providers.primary]",
        "[server]\napi_keys_env = \"TEST_KEYS\"\n\n[providers.primary]",
    );
    let h = Harness::start(&config, &[("TEST_KEYS", "key-one, key-two")]).await;
    let body = ask("default", false).to_string();
    let none = h.post_raw("/v1/chat/completions", &body, &[]).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"]["type"], "authentication_error");
    let wrong = h
        .post_raw(
            "/v1/chat/completions",
            &body,
            &[("authorization", "Bearer key-three")],
        )
        .await;
    assert_eq!(wrong.status, 401);
    let right = h
        .post_raw(
            "/v1/chat/completions",
            &body,
            &[("authorization", "Bearer key-two")],
        )
        .await;
    assert_eq!(right.status, 200, "{}", right.body);
    // Feedback needs a key too, and nothing is stored without one.
    let id = right.inference_id();
    let vote = json!({"inference_id": id, "kind": "thumbs", "score": 1, "user": "U1"}).to_string();
    for headers in [&[][..], &[("authorization", "Bearer key-three")][..]] {
        let r = h.post_raw("/v1/feedback", &vote, headers).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    h.gateway.pipeline.recorder().flush().await;
    assert!(h.gateway.store.feedback_for(&id).await.unwrap().is_empty());
    let r = h
        .post_raw(
            "/v1/feedback",
            &vote,
            &[("authorization", "Bearer key-one")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The voter is the key (a bare secret is named by its place in the
    // list), not whoever the body's `user` names.
    h.gateway.pipeline.recorder().flush().await;
    let stored = h.gateway.store.feedback_for(&id).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].3.as_deref(), Some("http:key1"));
    let asked = h.row(&id).await;
    assert_eq!(
        asked.user_id.as_deref(),
        Some("http:key2"),
        "the asker is the key"
    );
    // Health checks need no key.
    let health = h
        .client
        .get(format!("{}/healthz", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = h
        .client
        .get(format!("{}/readyz", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn without_keys_only_loopback_clients_are_served() {
    use axum::extract::ConnectInfo;
    use tower::ServiceExt;

    let provider = StandIn::start().await;
    let h = Harness::start(&one_provider(&provider.url), &[]).await;
    let config =
        gateway::Config::from_parts("test", &one_provider(&provider.url), Vec::new()).unwrap();
    let app = gateway::http::api::app(h.gateway.http_state(&config, |_| None));
    for (peer, want) in [("203.0.113.9:5000", 401), ("127.0.0.1:5000", 200)] {
        let mut request = axum::http::Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(ask("default", false).to_string()))
            .unwrap();
        let addr: std::net::SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(addr));
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status().as_u16(), want, "peer {peer}");
    }
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_answer() {
    let provider = StandIn::start().await;
    // A long answer, so the client can leave in the middle of it.
    let long: Vec<String> = (0..20_000).map(|i| format!("word{i} ")).collect();
    provider.then([Reply::OpenAiStream(long, (5, 20_000))]);
    let h = Harness::start(&one_provider(&provider.url), &[]).await;
    let mut resp = h
        .client
        .post(format!("{}/v1/chat/completions", h.url))
        .json(&ask("default", true))
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-switchboard-inference-id"]
        .to_str()
        .unwrap()
        .to_string();
    let _first = resp.chunk().await.unwrap();
    drop(resp);
    // The row says cancelled once the pipeline notices.
    let mut status = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.gateway.pipeline.recorder().flush().await;
        if let Some(row) = h.gateway.store.inference(&id).await.unwrap() {
            status = row.status;
            break;
        }
    }
    assert_eq!(status, "cancelled");
}

#[tokio::test]
async fn feedback_on_an_answer_is_stored_typed_and_bad_feedback_is_refused() {
    let provider = StandIn::start().await;
    let h = Harness::start(&one_provider(&provider.url), &[]).await;
    let answer = h
        .chat(json!({"model": "default", "messages": [{"role": "user", "content": "Hi"}]}))
        .await;
    let id = answer.inference_id();
    let post = |body: serde_json::Value| {
        let h = &h;
        async move { h.post_raw("/v1/feedback", &body.to_string(), &[]).await }
    };
    for body in [
        json!({"inference_id": id, "kind": "thumbs", "score": 1, "user": "U1"}),
        json!({"inference_id": id, "kind": "thumbs", "score": 0, "user": "U1"}),
        json!({"inference_id": id, "kind": "rating", "score": 4, "user": "U1"}),
        json!({"inference_id": id, "kind": "comment", "comment": "The link is dead.", "user": "U1"}),
        json!({"inference_id": id, "kind": "tag", "tag": "too-long", "user": "U1"}),
    ] {
        let r = post(body).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let refused = [
        (
            json!({"inference_id": uuid::Uuid::now_v7().to_string(), "kind": "thumbs", "score": 1}),
            404,
            "no inference",
        ),
        (
            json!({"inference_id": id, "kind": "rating", "score": 9}),
            400,
            "1 to 5",
        ),
        (
            json!({"inference_id": id, "kind": "stars", "score": 1}),
            400,
            "not a feedback kind",
        ),
        (
            json!({"inference_id": "abc", "kind": "thumbs", "score": 1}),
            400,
            "not an inference id",
        ),
        (
            json!({"inference_id": id, "kind": "tag", "tag": "too long!"}),
            400,
            "`tag`",
        ),
        (
            json!({"inference_id": id, "kind": "thumbs", "score": 1, "extra": true}),
            400,
            "unknown field",
        ),
    ];
    for (body, status, says) in refused {
        let r = post(body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.body.contains(says), "{body}: {}", r.body);
    }
    h.gateway.pipeline.recorder().flush().await;
    let stored = h.gateway.store.feedback_for(&id).await.unwrap();
    let kinds: Vec<(&str, Option<f64>)> = stored.iter().map(|f| (f.0.as_str(), f.1)).collect();
    // The changed thumbs vote replaced the first; nothing refused was stored.
    assert_eq!(
        kinds,
        vec![
            ("thumbs", Some(0.0)),
            ("rating", Some(4.0)),
            ("comment", None),
            ("tag", None)
        ]
    );
    assert!(stored.iter().all(|f| f.2 == "api"));
    // The five accepted rows (the replaced vote kept as history), and not
    // one refused row anywhere else.
    assert_eq!(
        h.gateway
            .store
            .count(gateway::store::Table::Feedback)
            .await
            .unwrap(),
        5
    );
}

/// A chat question from an adapter, as the pipeline receives it.
fn chat(origin: gateway::Origin, inbound: gateway::Inbound) -> gateway::domain::Request {
    gateway::domain::Request::new(
        origin.clone(),
        gateway::domain::Input::Chat(gateway::Inbound { origin, ..inbound }),
    )
}

/// Reads a reply to its end, failing the test on an error.
async fn finish(mut reply: gateway::domain::ReplyStream) {
    while let Some(e) = reply.next_event().await {
        if let gateway::ReplyEvent::Failed { message, .. } = e {
            panic!("{message}");
        }
    }
}

/// A channel question's origin on `platform`.
fn channel_origin(platform: &str) -> gateway::Origin {
    gateway::Origin {
        platform: platform.into(),
        channel: Some("C1".into()),
        user: Some(gateway::User::new("slack", "U1")),
        ..gateway::Origin::default()
    }
}

/// A long conversation sent to a model with a small context window: the
/// oldest turns are dropped so that the prompt and the answer fit, the
/// newest turns and the question are kept. Without a window, all of it goes.
#[tokio::test]
async fn history_is_trimmed_to_the_models_context_window_oldest_first() {
    use gateway::{ChatMessage, Inbound, Role};
    let history: Vec<ChatMessage> = (0..30)
        .map(|i| {
            let role = if i % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            };
            ChatMessage::new(role, format!("turn {i:02}: {}", "words ".repeat(40)))
        })
        .collect();
    let window = 800usize;
    let mut sent = Vec::new();
    for limit in [Some(window), None] {
        let provider = StandIn::start().await;
        let mut toml = one_provider(&provider.url);
        if let Some(w) = limit {
            toml = toml.replace(
                "targets = [\"primary/gpt-test\"]",
                &format!("targets = [\"primary/gpt-test\"]\ncontext_tokens = {w}"),
            );
        }
        let h = Harness::start(&toml, &[]).await;
        let request = chat(
            channel_origin("discord"),
            Inbound {
                text: "and the last question?".into(),
                history: history.clone(),
                ..Inbound::default()
            },
        );
        finish(h.gateway.pipeline.start(request).await.expect("starts")).await;
        let received = provider.received();
        let body = received.last().expect("the model was asked").body.clone();
        let messages: Vec<String> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap_or("").to_string())
            .collect();
        sent.push(messages);
    }
    let has = |messages: &[String], turn: usize| {
        messages
            .iter()
            .any(|m| m.contains(&format!("turn {turn:02}:")))
    };
    let (trimmed, full) = (&sent[0], &sent[1]);
    assert!(
        (0..30).all(|t| has(full, t)),
        "no window: every turn is sent"
    );
    assert!(
        has(trimmed, 29) && has(trimmed, 28),
        "the newest turns stay"
    );
    assert!(!has(trimmed, 0), "the oldest turn goes first");
    let kept: Vec<usize> = (0..30).filter(|t| has(trimmed, *t)).collect();
    assert_eq!(
        kept,
        (kept[0]..30).collect::<Vec<_>>(),
        "what is kept is the newest run of turns"
    );
    assert!(trimmed.iter().any(|m| m.contains("and the last question?")));
    let chars: usize = trimmed.iter().map(|m| m.chars().count()).sum();
    assert!(
        chars / 4 < window,
        "the prompt fits the window with room to answer: {chars} chars"
    );
}

/// Images attached to a chat question go to an alias with `vision = true`
/// as OpenAI `image_url` parts beside the text; an alias without it gets
/// the text alone and the reply names the images it did not see. The
/// stored conversation names the image instead of holding its bytes.
#[tokio::test]
async fn images_go_to_vision_aliases_and_are_named_unread_for_others() {
    use gateway::{Image, Inbound};
    let png = b"\x89PNG\r\n\x1a\n-stand-in-pixels";
    let image = Image::from_bytes("image/png", "chart.png", png).expect("a PNG is taken");
    assert!(
        Image::from_bytes("image/tiff", "scan.tiff", png).is_none(),
        "types models do not read are refused"
    );
    for vision in [true, false] {
        let provider = StandIn::start().await;
        let mut toml = one_provider(&provider.url);
        if vision {
            toml = toml.replace(
                "targets = [\"primary/gpt-test\"]",
                "targets = [\"primary/gpt-test\"]\nvision = true",
            );
        }
        let h = Harness::start(&toml, &[]).await;
        let request = chat(
            channel_origin("discord"),
            Inbound {
                text: "what does this chart show?".into(),
                images: vec![image.clone()],
                ..Inbound::default()
            },
        );
        let reply = h.gateway.pipeline.start(request).await.expect("starts");
        let id = reply.inference_id.to_string();
        let unread = reply.images_unread.clone();
        finish(reply).await;
        let question = provider.received().last().expect("asked").question();
        if vision {
            assert!(unread.is_empty());
            let parts = question["content"].as_array().expect("content parts");
            assert_eq!(parts[0]["type"], "text");
            assert!(
                parts[0]["text"]
                    .as_str()
                    .unwrap()
                    .contains("what does this chart show?")
            );
            assert_eq!(parts[1]["type"], "image_url");
            assert_eq!(parts[1]["image_url"]["url"], json!(image.data_url()));
            assert!(
                image
                    .data_url()
                    .starts_with("data:image/png;base64,iVBORw0KGgo")
            );
        } else {
            assert_eq!(unread, vec!["chart.png".to_string()]);
            assert!(question["content"].is_string(), "text only: {question}");
        }
        h.gateway.pipeline.recorder().flush().await;
        let row = h.gateway.store.inference(&id).await.unwrap().expect("row");
        let stored = serde_json::to_string(&row.messages).unwrap();
        assert_eq!(
            stored.contains("[image: chart.png]"),
            vision,
            "the stored question names the image it carried: {stored}"
        );
        assert!(
            !stored.contains(&image.base64),
            "no image bytes in the store"
        );
    }
}

/// An answer given in a direct message takes feedback only from the person
/// the bot was talking to: anyone else (or an anonymous vote) is refused
/// and nothing is stored.
#[tokio::test]
async fn feedback_on_someone_elses_direct_message_is_refused() {
    use gateway::Inbound;
    let provider = StandIn::start().await;
    let h = Harness::start(&one_provider(&provider.url), &[]).await;
    let origin = gateway::Origin {
        channel: Some("D1".into()),
        private: true,
        ..channel_origin("slack")
    };
    let request = chat(
        origin,
        Inbound {
            text: "A private question".into(),
            ..Inbound::default()
        },
    );
    let reply = h.gateway.pipeline.start(request).await.expect("starts");
    let id = reply.inference_id.to_string();
    finish(reply).await;
    for body in [
        json!({"inference_id": id, "kind": "thumbs", "score": 0, "user": "U2"}),
        json!({"inference_id": id, "kind": "rating", "score": 1}),
    ] {
        let r = h.post_raw("/v1/feedback", &body.to_string(), &[]).await;
        assert_eq!(r.status, 403, "{body}: {}", r.body);
        assert!(r.body.contains("direct message"), "{}", r.body);
    }
    // The API's `user` is an API user, never the Slack user of the same
    // bare id: the asker's own id sent over the API does not pass as them.
    let r = h
        .post_raw(
            "/v1/feedback",
            &json!({"inference_id": id, "kind": "thumbs", "score": 1, "user": "U1"}).to_string(),
            &[],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // The asker themselves, through the feedback door as the adapters call it.
    let mut own = gateway::domain::FeedbackRecord {
        id: uuid::Uuid::now_v7(),
        inference_id: uuid::Uuid::parse_str(&id).unwrap(),
        created_at_ms: gateway::domain::now_ms(),
        kind: "thumbs".into(),
        score: Some(1.0),
        comment: None,
        user: Some(gateway::User::new("slack", "U1")),
        source: "button".into(),
    };
    assert_eq!(
        h.gateway.feedback.submit(own.clone()).await,
        gateway::promptops::feedback::Verdict::Stored
    );
    own.id = uuid::Uuid::now_v7();
    own.user = Some(gateway::User::new("slack", "U2"));
    assert_eq!(
        h.gateway.feedback.submit(own).await,
        gateway::promptops::feedback::Verdict::Refused
    );
    h.gateway.pipeline.recorder().flush().await;
    let stored = h.gateway.store.feedback_for(&id).await.unwrap();
    assert_eq!(stored.len(), 1, "only the owner's vote: {stored:?}");
    assert_eq!(stored[0].1, Some(1.0));
    assert_eq!(stored[0].3.as_deref(), Some("slack:U1"));
}

/// Behind a load balancer a vote can reach another replica before the one
/// that answered has written the answer: it is taken (unchecked) and stored
/// once the answer is written; a made-up id is still unknown.
#[tokio::test]
async fn a_vote_sent_to_another_replica_right_after_the_answer_is_stored() {
    let provider = StandIn::start().await;
    let config = format!(
        "[database]\nurl = {:?}\n{}",
        testkit::fresh_postgres().await,
        one_provider(&provider.url)
    );
    let a = Harness::start(&config, &[]).await;
    let b = Harness::start(&config, &[]).await;
    for round in 0..5 {
        let answer = a
            .chat(json!({"model": "default", "user": "alice", "messages": [{"role": "user", "content": format!("Hi {round}")}]}))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let id = answer.inference_id();
        let vote = json!({"inference_id": id, "kind": "thumbs", "score": 1, "user": "alice"});
        let r = b.post_raw("/v1/feedback", &vote.to_string(), &[]).await;
        assert!(r.status == 202 || r.status == 201, "{}", r.body);
        assert_eq!(r.json()["checked"], r.status == 201, "{}", r.body);
        a.gateway.recorder.flush().await;
        b.gateway.recorder.flush().await;
        let mut stored = Vec::new();
        for _ in 0..100 {
            stored = a.gateway.store.feedback_for(&id).await.unwrap();
            if !stored.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            stored,
            vec![(
                "thumbs".to_string(),
                Some(1.0),
                "api".to_string(),
                // Without keys, callers on this machine vote as one caller.
                Some("http:local".to_string())
            )],
            "round {round}"
        );
    }
    let made_up =
        json!({"inference_id": uuid::Uuid::now_v7().to_string(), "kind": "thumbs", "score": 1});
    let r = b.post_raw("/v1/feedback", &made_up.to_string(), &[]).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let error = &r.json()["error"];
    assert_eq!(error["code"], "inference_not_found", "{}", r.body);
    assert_eq!(error["param"], "inference_id", "{}", r.body);
}

/// Every error of the API is the OpenAI error JSON that SDKs parse, also
/// those axum answers before a handler runs.
#[tokio::test]
async fn every_api_error_is_openai_error_json() {
    let provider = StandIn::start().await;
    let h = Harness::start(&one_provider(&provider.url), &[]).await;
    let error_of = |r: &testkit::Answer| -> Value {
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{:?}: {}",
            r.headers,
            r.body
        );
        let v = r.json();
        let error = v["error"].clone();
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        assert!(error["type"].is_string(), "{v}");
        assert!(
            error.get("param").is_some() && error.get("code").is_some(),
            "{v}"
        );
        error
    };
    // A body over the limit.
    let huge = format!(
        r#"{{"model": "default", "messages": [{{"role": "user", "content": "{}"}}]}}"#,
        "x".repeat(3 * 1024 * 1024)
    );
    for path in ["/v1/chat/completions", "/v1/feedback"] {
        let r = h.post_raw(path, &huge, &[]).await;
        assert_eq!(r.status, 413, "{path}");
        assert_eq!(error_of(&r)["type"], "invalid_request_error");
    }
    // A route asked with the wrong method, and a route that does not exist.
    let r = h
        .client
        .get(format!("{}/v1/chat/completions", h.url))
        .send()
        .await
        .unwrap();
    let r = testkit::Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    };
    assert_eq!(r.status, 405);
    assert_eq!(error_of(&r)["code"], "method_not_allowed");
    let r = h.post_raw("/v1/embeddingz", "{}", &[]).await;
    assert_eq!(r.status, 404);
    let error = error_of(&r);
    assert_eq!(error["code"], "unknown_url");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("/v1/embeddingz")
    );
    // An unknown model keeps its own code; feedback on no answer has its own.
    let r = h.chat(ask("nope", false)).await;
    assert_eq!(r.status, 404);
    assert_eq!(error_of(&r)["code"], "model_not_found");
    let r = h
        .post_raw(
            "/v1/feedback",
            &json!({"inference_id": uuid::Uuid::now_v7().to_string(), "kind": "thumbs", "score": 1}).to_string(),
            &[],
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(error_of(&r)["code"], "inference_not_found");
    assert_eq!(h.inference_count().await, 0, "no error stored anything");
}

/// Implicit feedback from what users do: asking the same question again,
/// correcting the answer, stopping it midway.
#[tokio::test]
async fn asking_again_correcting_and_stopping_are_recorded_as_implicit_feedback() {
    use gateway::domain::{Input, Request};
    use gateway::{Inbound, Origin, ReplyEvent};
    let provider = StandIn::start().await;
    let h = Harness::start(&one_provider(&provider.url), &[]).await;
    let origin = Origin {
        platform: "slack".into(),
        workspace: Some("T1".into()),
        channel: Some("C1".into()),
        thread: Some("1700.1".into()),
        user: Some(gateway::User::new("slack", "U1")),
        private: false,
        label: None,
    };
    let ask = |text: &str| {
        Request::new(
            origin.clone(),
            Input::Chat(Inbound {
                origin: origin.clone(),
                text: text.into(),
                ..Inbound::default()
            }),
        )
    };
    let answer = |text: &'static str| {
        let pipeline = h.gateway.pipeline.clone();
        let request = ask(text);
        async move {
            let mut reply = pipeline.start(request).await.expect("starts");
            let id = reply.inference_id;
            while let Some(e) = reply.next_event().await {
                if let ReplyEvent::Failed { message, .. } = e {
                    panic!("{message}");
                }
            }
            id.to_string()
        }
    };
    let first = answer("Where is the VPN guide?").await;
    let second = answer("where is the vpn guide").await;
    let _third = answer("No, that's the old guide.").await;
    provider.then([Reply::OpenAiSlow(
        split("one two three four five six seven eight"),
        Duration::from_millis(150),
    )]);
    let mut reply = h
        .gateway
        .pipeline
        .start(ask("Tell me a long story"))
        .await
        .unwrap();
    let stopped = reply.inference_id.to_string();
    while let Some(e) = reply.next_event().await {
        if let ReplyEvent::Token(_) = e {
            break;
        }
    }
    drop(reply);
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.gateway.pipeline.recorder().flush().await;
    let kinds = |id: String| {
        let store = h.gateway.store.clone();
        async move {
            store
                .feedback_for(&id)
                .await
                .unwrap()
                .into_iter()
                .map(|f| (f.0, f.2))
                .collect::<Vec<_>>()
        }
    };
    let implicit = |k: &str| vec![(k.to_string(), "implicit".to_string())];
    assert_eq!(kinds(first).await, implicit("asked_again"));
    assert_eq!(kinds(second).await, implicit("correction"));
    assert_eq!(kinds(stopped).await, implicit("stopped"));
}

/// `/metrics` parses as Prometheus text and counts what happened.
#[tokio::test]
async fn metrics_are_prometheus_text_with_the_named_series() {
    let provider = StandIn::start().await;
    provider.then([Reply::OpenAiStream(split("Hello there."), (30, 2))]);
    let h = Harness::start(&one_provider(&provider.url), &[]).await;
    let a = h
        .chat(json!({"model": "default", "messages": [{"role": "user", "content": "Hi"}]}))
        .await;
    assert_eq!(a.status, 200);
    let resp = h
        .client
        .get(format!("{}/metrics", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = resp.text().await.unwrap();
    // Every line is a comment or `name{labels} number`.
    let mut series = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = key.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        if let Some(labels) = key.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
        series.insert(key.to_string(), value);
    }
    let get = |k: &str| {
        *series
            .get(k)
            .unwrap_or_else(|| panic!("no series {k} in\n{text}"))
    };
    assert_eq!(
        get(
            "switchboard_requests_total{alias=\"default\",provider=\"primary\",prompt=\"\",version=\"\",status=\"ok\"}"
        ),
        1.0
    );
    assert_eq!(
        get(
            "switchboard_tokens_total{alias=\"default\",provider=\"primary\",prompt=\"\",version=\"\",direction=\"input\"}"
        ),
        30.0
    );
    assert_eq!(
        get(
            "switchboard_tokens_total{alias=\"default\",provider=\"primary\",prompt=\"\",version=\"\",direction=\"output\"}"
        ),
        2.0
    );
    assert_eq!(
        get(
            "switchboard_request_duration_seconds_count{alias=\"default\",provider=\"primary\",prompt=\"\",version=\"\"}"
        ),
        1.0
    );
    assert_eq!(
        get(
            "switchboard_overhead_seconds_bucket{alias=\"default\",provider=\"primary\",prompt=\"\",version=\"\",le=\"+Inf\"}"
        ),
        1.0
    );
    assert!(
        get(
            "switchboard_cost_usd_total{alias=\"default\",provider=\"primary\",prompt=\"\",version=\"\"}"
        ) > 0.0
    );
    assert_eq!(get("switchboard_redis_fallbacks_total"), 0.0);
    assert!(text.contains("# TYPE switchboard_ttft_seconds histogram"));
}

/// A raw connection to the harness, for clients that misbehave on purpose.
async fn raw(h: &Harness) -> tokio::net::TcpStream {
    let addr = h.url.trim_start_matches("http://");
    tokio::net::TcpStream::connect(addr).await.expect("connect")
}

/// Writes `first`, then `piece` every 200 ms, until the server closes the
/// connection or `pieces` were sent; what the server answered, and whether
/// it closed the connection before the client was done.
async fn trickle(
    stream: &mut tokio::net::TcpStream,
    first: &str,
    piece: &str,
    pieces: usize,
) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(first.as_bytes())
        .await
        .expect("first bytes");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..pieces {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return (String::from_utf8_lossy(&answer).into(), true),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if stream.write_all(piece.as_bytes()).await.is_err() {
                    return (String::from_utf8_lossy(&answer).into(), true);
                }
            }
        }
    }
    (String::from_utf8_lossy(&answer).into(), false)
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_connections_past_the_cap_are_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let provider = StandIn::start().await;
    let config = one_provider(&provider.url).replace(
        "[providers.primary]",
        "[server]\nheader_timeout_ms = 1000\nbody_timeout_ms = 1000\nmax_connections = 3\n\n[providers.primary]",
    );
    let h = Harness::start(&config, &[]).await;

    // Slowloris: one header line every 200 ms, for 20 s if let.
    let mut s = raw(&h).await;
    let (_, closed) = trickle(
        &mut s,
        "GET /healthz HTTP/1.1\r\nhost: x\r\n",
        "x-a: b\r\n",
        100,
    )
    .await;
    assert!(closed, "a client trickling headers kept its connection");
    drop(s);

    // A body sent a byte at a time fails instead of holding the request.
    let mut s = raw(&h).await;
    let head = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n{";
    let (answer, closed) = trickle(&mut s, head, " ", 100).await;
    assert!(
        closed || answer.starts_with("HTTP/1.1 4"),
        "a trickled body held the request: {answer:?}"
    );
    assert!(provider.received().is_empty(), "nothing reached the model");
    drop(s);

    // A kept-alive connection left idle is closed.
    let mut s = raw(&h).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let idle = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await;
    assert!(
        matches!(idle, Ok(Ok(0)) | Ok(Err(_))),
        "an idle kept-alive connection stayed open"
    );
    drop(s);

    // With three connections open, a fourth is answered 503 and closed.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = raw(&h).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = raw(&h).await;
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), extra.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("server.max_connections"), "{answer}");
    // Once they are gone, the server answers again.
    drop(held);
    let mut ok = false;
    for _ in 0..50 {
        let r = h.client.get(format!("{}/healthz", h.url)).send().await;
        if r.is_ok_and(|r| r.status() == 200) {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the server did not recover once the connections closed");
}

#[tokio::test]
async fn a_failing_target_is_skipped_while_its_circuit_is_open_then_probed() {
    let metric = async |h: &Harness| -> String {
        h.metric_lines("switchboard_circuit_state{target=\"primary/gpt-test\"}")
            .await
            .concat()
    };
    let primary = StandIn::start().await;
    primary.always(Reply::Status(
        500,
        openai_error("The server had an error", "server_error"),
        vec![],
    ));
    let backup = StandIn::start().await;
    let config = two_providers(&primary.url, &backup.url).replace(
        "retries = 1",
        "retries = 0\nbreaker_failures = 2\nbreaker_cooldown_ms = 800",
    );
    let h = Harness::start(&config, &[]).await;
    for _ in 0..2 {
        assert_eq!(h.chat(ask("default", false)).await.status, 200);
    }
    assert_eq!(primary.received().len(), 2);
    assert!(
        metric(&h).await.ends_with(" 1"),
        "open: {}",
        metric(&h).await
    );
    // While open, the primary is not tried: the backup answers at once.
    for _ in 0..3 {
        let a = h.chat(ask("default", false)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let row = h.row(&a.inference_id()).await;
        assert_eq!(row.provider.as_deref(), Some("backup"));
        assert!(
            row.attempt_log.contains("circuit is open"),
            "{}",
            row.attempt_log
        );
    }
    assert_eq!(primary.received().len(), 2, "skipped while open");
    // After the cool-down one request probes it; it answers, and the circuit closes.
    primary.always(Reply::text("The primary is back."));
    tokio::time::sleep(Duration::from_millis(900)).await;
    let a = h.chat(ask("default", false)).await;
    assert_eq!(
        h.row(&a.inference_id()).await.provider.as_deref(),
        Some("primary")
    );
    assert_eq!(primary.received().len(), 3);
    assert!(
        metric(&h).await.ends_with(" 0"),
        "closed: {}",
        metric(&h).await
    );

    // A hung target trips it too.
    let hung = StandIn::start().await;
    hung.always(Reply::Hang);
    let backup = StandIn::start().await;
    let config = two_providers(&hung.url, &backup.url).replace(
        "retries = 1",
        "retries = 0\nbreaker_failures = 2\nbreaker_cooldown_ms = 60000",
    );
    let h = Harness::start(&config, &[]).await;
    for _ in 0..4 {
        assert_eq!(h.chat(ask("default", true)).await.status, 200);
    }
    assert_eq!(hung.received().len(), 2, "not waited on once open");
}

#[tokio::test]
async fn a_plain_answer_records_real_time_to_first_token_and_per_token() {
    let provider = StandIn::start().await;
    // Each SSE event 150 ms after the one before: the first text comes after
    // the role chunk (~300 ms), then one token every 150 ms.
    let pieces: Vec<String> = ["One", " two", " three", " four", " five", " six"]
        .map(String::from)
        .to_vec();
    provider.then([Reply::OpenAiSlow(pieces, Duration::from_millis(150))]);
    let h = Harness::start(&one_provider(&provider.url), &[]).await;
    let a = h.chat(ask("default", false)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json()["choices"][0]["message"]["content"],
        "One two three four five six"
    );
    assert_eq!(
        provider.received()[0].body["stream"],
        true,
        "asked as a stream"
    );
    let row = h.row(&a.inference_id()).await;
    let (ttft, tpot) = (row.ttft_ms.expect("TTFT"), row.tpot_ms.expect("TPOT"));
    assert!((250.0..700.0).contains(&ttft), "TTFT {ttft} ms");
    assert!((100.0..400.0).contains(&tpot), "TPOT {tpot} ms");
    assert!(tpot > 0.0 && ttft < 1000.0, "not the total");

    // A one-token answer has no TPOT: stored as unknown, left out of the
    // histogram and counted as such.
    provider.then([Reply::OpenAiStream(vec!["Yes".into()], (3, 1))]);
    let a = h.chat(ask("default", false)).await;
    assert_eq!(h.row(&a.inference_id()).await.tpot_ms, None);
    let unknown = h.metric_lines("switchboard_figures_unknown_total{").await;
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(
        unknown[0].contains("figure=\"tpot\"") && unknown[0].ends_with(" 1"),
        "{unknown:?}"
    );
}
