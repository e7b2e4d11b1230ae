//! The embedded model through the whole gateway: the OpenAI-compatible API
//! answering from a real GGUF model on the CPU, streaming and not, with
//! usage recorded; "busy" at once when the pool is full; a client that
//! leaves frees the slot; a missing model file stops the start with the
//! path and the pull command.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::{Harness, sse_data};

/// The model cache shared by test runs (`$SWITCHBOARD_MODEL_CACHE`, default
/// `~/.cache/switchboard/models`); the model is fetched there once.
fn cache() -> String {
    let dir =
        switchboard_embedded::default_models_dir().expect("set SWITCHBOARD_MODEL_CACHE or HOME");
    dir.display().to_string()
}

fn config(extra: &str) -> String {
    format!(
        r#"
[providers.local]
kind = "local"
models_dir = "{}"
threads = 1
context_tokens = 1024
{extra}

[models.default]
targets = ["local/smollm2-135m-instruct"]
"#,
        cache()
    )
}

fn question(stream: bool, max_tokens: u32) -> Value {
    json!({
        "model": "default",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "stream": stream,
        "temperature": 0,
        "max_tokens": max_tokens
    })
}

#[tokio::test]
async fn the_embedded_model_answers_through_the_api() {
    let h = Harness::start(&config(""), &[]).await;

    let a = h.chat(question(false, 48)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("Paris"), "{text}");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 5);
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    let b = h.chat(question(true, 48)).await;
    assert_eq!(b.status, 200, "{}", b.body);
    let chunks: Vec<Value> = sse_data(&b.body)
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    // Greedy decoding: the streamed answer is the same text, in several chunks.
    assert_eq!(streamed, text);
    assert!(chunks.len() > 3, "tokens arrive one by one");

    let row = h.row(&b.inference_id()).await;
    assert_eq!(row.status, "ok");
    assert_eq!(row.provider.as_deref(), Some("local"));
    assert_eq!(row.cost_usd, Some(0.0));
    assert!(row.output_tokens.unwrap() > 0);
}

#[tokio::test]
async fn a_full_pool_answers_busy_at_once_and_a_client_that_leaves_frees_the_slot() {
    let h = Harness::start(&config("slots = 1\nqueue = 0"), &[]).await;
    // Occupy the only slot with a long streamed answer.
    let mut long = question(true, 400);
    long["messages"][0]["content"] = json!("Write a long story about a lighthouse keeper.");
    let mut first = h
        .client
        .post(format!("{}/v1/chat/completions", h.url))
        .json(&long)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let _ = first.chunk().await.unwrap();

    let started = std::time::Instant::now();
    let busy = h.chat(question(false, 8)).await;
    assert_eq!(busy.status, 503, "{}", busy.body);
    assert!(busy.body.contains("busy"), "{}", busy.body);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "busy must not wait for the slot"
    );

    // The first client leaves; its generation stops and the slot is free again.
    drop(first);
    let mut answered = None;
    for _ in 0..50 {
        let a = h.chat(question(false, 8)).await;
        if a.status == 200 {
            answered = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        answered.is_some(),
        "the slot was not freed after the client left"
    );
}

#[tokio::test]
async fn a_missing_model_file_stops_the_start_with_the_path_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.gguf");
    let text = format!(
        "data_dir = \"{}\"\n[providers.local]\nkind = \"local\"\npath = \"{}\"\n[models.default]\ntargets = [\"local/x\"]\n",
        dir.path().display(),
        path.display()
    );
    let config = gateway::Config::from_parts("test", &text, Vec::new()).unwrap();
    let err = match gateway::Gateway::build(&config).await {
        Ok(_) => panic!("a missing model must stop the start"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("switchboard models pull"), "{err}");
}
