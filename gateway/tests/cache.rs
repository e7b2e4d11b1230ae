//! The response cache through the HTTP API, in this process and in a real
//! Redis: the same question is not paid twice, a cached stream replays as
//! a stream, hits are recorded with what they saved, the per-request
//! headers bypass it or set a TTL, entries expire, and failures are never
//! cached.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::redis::{redis_section, shared_url};
use testkit::standin::{Reply, StandIn, split};
use testkit::{Harness, one_provider, sse_data};

fn ask(question: &str, stream: bool, temperature: f64) -> Value {
    json!({
        "model": "default",
        "messages": [{"role": "user", "content": question}],
        "stream": stream,
        "temperature": temperature,
    })
}

/// The text and the number of content chunks of an SSE answer.
fn stream_text(body: &str) -> (String, usize) {
    let data = sse_data(body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{body}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk JSON"))
        .collect();
    let pieces: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .filter(|s| !s.is_empty())
        .collect();
    (pieces.concat(), pieces.len())
}

async fn gateway(provider: &StandIn, redis: Option<&str>, extra: &str) -> Harness {
    let redis = redis
        .map(|url| redis_section(url, "open"))
        .unwrap_or_default();
    Harness::start(
        &format!("{}\n{redis}\n{extra}", one_provider(&provider.url)),
        &[],
    )
    .await
}

async fn repeated_question_is_answered_once(redis: Option<&str>) {
    let provider = StandIn::start().await;
    provider.then([Reply::OpenAiJson("Paris.".into(), (12, 3))]);
    let h = gateway(&provider, redis, "").await;

    let first = h.chat(ask("Capital of France?", false, 0.0)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let second = h.chat(ask("Capital of France?", false, 0.0)).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.json()["choices"][0]["message"]["content"], "Paris.");
    assert_eq!(second.json()["usage"]["total_tokens"], 15);
    assert_eq!(
        provider.received().len(),
        1,
        "the second answer came from the cache"
    );

    let miss = h.row(&first.inference_id()).await;
    assert!(!miss.cache_hit);
    let hit = h.row(&second.inference_id()).await;
    assert!(hit.cache_hit);
    assert_eq!(hit.status, "ok");
    assert_eq!(hit.tokens_saved, Some(15));
    // 12 input tokens at $1/M and 3 output at $2/M were not paid again.
    let saved = hit.cost_saved_usd.expect("cost saved");
    assert!((saved - 18e-6).abs() < 1e-12, "{saved}");
    assert_eq!(hit.cost_usd, Some(0.0));
    assert_eq!(hit.messages.last().map(|m| m.2.as_str()), Some("Paris."));

    // A different question is asked of the model.
    let other = h.chat(ask("Capital of Spain?", false, 0.0)).await;
    assert_eq!(other.status, 200);
    assert_eq!(provider.received().len(), 2);
}

#[tokio::test]
async fn a_repeated_question_is_answered_from_the_in_process_cache() {
    repeated_question_is_answered_once(None).await;
}

#[tokio::test]
async fn a_repeated_question_is_answered_from_the_redis_cache() {
    repeated_question_is_answered_once(Some(&shared_url())).await;
}

async fn cached_stream_replays_as_a_stream(redis: Option<&str>) {
    let provider = StandIn::start().await;
    let text = "The quick brown fox jumps over the lazy dog, twice over.";
    provider.then([Reply::OpenAiStream(split(text), (20, 12))]);
    let h = gateway(&provider, redis, "").await;

    let original = h.chat(ask("Tell me about foxes", true, 0.0)).await;
    assert_eq!(original.status, 200, "{}", original.body);
    let replayed = h.chat(ask("Tell me about foxes", true, 0.0)).await;
    assert_eq!(replayed.status, 200, "{}", replayed.body);
    assert_eq!(
        provider.received().len(),
        1,
        "the replay came from the cache"
    );

    let (text_a, chunks_a) = stream_text(&original.body);
    let (text_b, chunks_b) = stream_text(&replayed.body);
    assert_eq!(text_a, text);
    assert_eq!(text_b, text);
    assert!(chunks_a > 5, "the original streamed in pieces: {chunks_a}");
    assert!(
        chunks_a.abs_diff(chunks_b) <= 1,
        "original {chunks_a} chunks, replay {chunks_b}"
    );
    let row = h.row(&replayed.inference_id()).await;
    assert!(row.cache_hit && row.streamed);

    // A streamed and a whole answer are separate entries: asking for the
    // whole answer goes to the model once.
    provider.then([Reply::OpenAiJson(text.into(), (20, 12))]);
    let whole = h.chat(ask("Tell me about foxes", false, 0.0)).await;
    assert_eq!(whole.json()["choices"][0]["message"]["content"], text);
    assert_eq!(provider.received().len(), 2);
}

#[tokio::test]
async fn a_cached_stream_replays_its_chunks_in_process() {
    cached_stream_replays_as_a_stream(None).await;
}

#[tokio::test]
async fn a_cached_stream_replays_its_chunks_from_redis() {
    cached_stream_replays_as_a_stream(Some(&shared_url())).await;
}

#[tokio::test]
async fn no_cache_bypasses_no_store_skips_and_a_ttl_header_sets_the_lifetime() {
    let url = shared_url();
    let provider = StandIn::start().await;
    provider.always(Reply::OpenAiJson("Fresh.".into(), (5, 1)));
    let h = gateway(&provider, Some(&url), "").await;
    let q = || ask("Anything new?", false, 0.0);

    assert_eq!(h.chat(q()).await.status, 200);
    assert_eq!(provider.received().len(), 1);
    // no-cache: a fresh answer even though one is cached.
    let fresh = h.chat_with(q(), &[("cache-control", "no-cache")]).await;
    assert_eq!(fresh.status, 200);
    assert_eq!(provider.received().len(), 2);
    assert!(!h.row(&fresh.inference_id()).await.cache_hit);
    // Without it, the cache answers again.
    let cached = h.chat(q()).await;
    assert!(h.row(&cached.inference_id()).await.cache_hit);
    assert_eq!(provider.received().len(), 2);

    // no-store: nothing is kept.
    let other = || ask("Not for keeping", false, 0.0);
    h.chat_with(other(), &[("cache-control", "no-store")]).await;
    h.chat(other()).await;
    assert_eq!(provider.received().len(), 4);

    // A sampled answer is not cached by default...
    let warm = || ask("Write a haiku", false, 0.9);
    h.chat(warm()).await;
    h.chat(warm()).await;
    assert_eq!(provider.received().len(), 6);
    // ...unless the request gives it a TTL; the entry then expires.
    let ttl = [("x-switchboard-cache-ttl", "1")];
    h.chat_with(warm(), &ttl).await;
    let hit = h.chat_with(warm(), &ttl).await;
    assert!(h.row(&hit.inference_id()).await.cache_hit);
    assert_eq!(provider.received().len(), 7);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let expired = h.chat_with(warm(), &ttl).await;
    assert!(!h.row(&expired.inference_id()).await.cache_hit);
    assert_eq!(provider.received().len(), 8);

    // A TTL that is not a number is refused with what to send.
    let bad = h
        .chat_with(q(), &[("x-switchboard-cache-ttl", "soon")])
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("whole seconds"), "{}", bad.body);
}

#[tokio::test]
async fn alias_policy_turns_the_cache_off_or_sets_its_ttl_and_entries_expire() {
    let provider = StandIn::start().await;
    provider.always(Reply::OpenAiJson("Short-lived.".into(), (5, 1)));
    let extra = "[models.default.cache]\nttl_secs = 1\n";
    let h = gateway(&provider, Some(&shared_url()), extra).await;
    let q = || ask("How long do you last?", false, 0.0);
    h.chat(q()).await;
    h.chat(q()).await;
    assert_eq!(provider.received().len(), 1);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    h.chat(q()).await;
    assert_eq!(provider.received().len(), 2, "the entry expired after 1 s");

    let provider = StandIn::start().await;
    provider.always(Reply::OpenAiJson("Never kept.".into(), (5, 1)));
    let h = gateway(&provider, None, "[models.default.cache]\nenabled = false\n").await;
    h.chat(q()).await;
    h.chat(q()).await;
    assert_eq!(provider.received().len(), 2);
}

#[tokio::test]
async fn errors_and_broken_streams_are_never_cached() {
    let provider = StandIn::start().await;
    provider.then([Reply::OpenAiCut(split("This answer breaks"))]);
    provider.always(Reply::OpenAiStream(split("A whole answer."), (5, 3)));
    let h = gateway(&provider, None, "").await;
    let q = || ask("Will it break?", true, 0.0);
    let broken = h.chat(q()).await;
    assert!(broken.body.contains("\"error\""), "{}", broken.body);
    let whole = h.chat(q()).await;
    assert_eq!(stream_text(&whole.body).0, "A whole answer.");
    assert!(!h.row(&whole.inference_id()).await.cache_hit);
    let again = h.chat(q()).await;
    assert_eq!(stream_text(&again.body).0, "A whole answer.");
    assert!(h.row(&again.inference_id()).await.cache_hit);
}

/// A prompt's own `[cache]` overrides its alias's: one prompt turns the
/// cache off, another caches sampled answers the alias would not.
#[tokio::test]
async fn a_prompts_cache_policy_overrides_the_alias() {
    use gateway::promptops::admin::{Actor, Command};
    let provider = StandIn::start().await;
    let h = gateway(&provider, None, "").await;
    let operator = Actor::cli("test");
    for (name, cache, temperature) in [
        ("fresh", "[cache]\nenabled = false\n", "0.0"),
        (
            "sampled",
            "[cache]\nallow_sampling = true\nttl_secs = 60\n",
            "0.9",
        ),
    ] {
        let text = format!(
            "name = \"{name}\"\n[params]\ntemperature = {temperature}\n{cache}[[messages]]\nrole = \"user\"\ntemplate = \"{{{{ text }}}}\"\n"
        );
        let prompt = prompts::Prompt::from_toml("p.toml", &text).expect("prompt");
        h.gateway
            .admin
            .run(
                &operator,
                Command::Create {
                    prompt,
                    message: "cache policy".into(),
                },
            )
            .await
            .expect("create");
        h.gateway
            .admin
            .run(
                &operator,
                Command::Promote {
                    name: name.into(),
                    version: 1,
                    label: "production".into(),
                },
            )
            .await
            .expect("promote");
    }
    let ask_prompt = |name: &str| json!({"model": format!("prompt:{name}"), "messages": [{"role": "user", "content": "Same question"}]});
    for _ in 0..2 {
        assert_eq!(h.chat(ask_prompt("fresh")).await.status, 200);
    }
    assert_eq!(
        provider.received().len(),
        2,
        "`enabled = false` on the prompt: both asked the model"
    );
    let first = h.chat(ask_prompt("sampled")).await;
    let second = h.chat(ask_prompt("sampled")).await;
    assert_eq!(
        provider.received().len(),
        3,
        "`allow_sampling` on the prompt: the repeat was cached"
    );
    assert!(!h.row(&first.inference_id()).await.cache_hit);
    assert!(h.row(&second.inference_id()).await.cache_hit);
}
