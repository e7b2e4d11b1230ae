//! Behaviour of the engine with the real default model: deterministic greedy answers, limits,
//! stop sequences, cancellation, back-pressure and long conversations.

use std::time::{Duration, Instant};

use crate::common::{engine, options};
use switchboard_embedded::{
    ChatTurn, EngineOptions, FinishReason, GenEvent, GenerateError, GenerateRequest, Overflow,
};

fn france(max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        max_tokens,
        ..GenerateRequest::new(vec![ChatTurn::user("What is the capital of France?")])
    }
}

/// A conversation long enough to need several prompt chunks.
fn long_prompt(words: usize) -> GenerateRequest {
    let filler = "The quick brown fox jumps over the lazy dog. ".repeat(words / 9 + 1);
    GenerateRequest {
        max_tokens: 200,
        ..GenerateRequest::new(vec![ChatTurn::user(format!(
            "{filler}\nSummarise the text above."
        ))])
    }
}

#[test]
fn greedy_answer_is_deterministic_coherent_and_ends_with_the_end_token() {
    let engine = engine(options());
    let first = engine
        .generate(france(96))
        .expect("start")
        .blocking_collect()
        .expect("finish");
    let second = engine
        .generate(france(96))
        .expect("start")
        .blocking_collect()
        .expect("finish");
    assert_eq!(first, second, "greedy output must not vary between runs");
    assert!(first.text.contains("Paris"), "answer: {:?}", first.text);
    assert_eq!(first.finish_reason, FinishReason::Stop, "{first:?}");
    assert!(first.completion_tokens > 0 && first.completion_tokens < 96);
    assert!(first.prompt_tokens > 5);
}

#[test]
fn max_tokens_limits_the_answer() {
    let engine = engine(options());
    let done = engine
        .generate(france(5))
        .expect("start")
        .blocking_collect()
        .expect("finish");
    assert_eq!(done.finish_reason, FinishReason::Length);
    assert_eq!(done.completion_tokens, 5);
    assert!(!done.text.is_empty());
}

#[test]
fn stop_sequence_ends_the_answer_and_is_not_emitted() {
    let engine = engine(options());
    let full = engine
        .generate(france(96))
        .expect("start")
        .blocking_collect()
        .expect("finish");
    let at = full.text.find("Paris").expect("answer names Paris");

    let mut req = france(96);
    req.stop = vec!["Paris".into()];
    let mut generation = engine.generate(req).expect("start");
    let mut pieces = Vec::new();
    let reason = loop {
        match generation.blocking_next().expect("stream ends with Done") {
            GenEvent::Token(t) => pieces.push(t),
            GenEvent::Done { finish_reason, .. } => break finish_reason,
            GenEvent::Error(e) => panic!("{e}"),
        }
    };
    let text: String = pieces.concat();
    assert_eq!(reason, FinishReason::StopSequence);
    assert_eq!(text, full.text[..at]);
    for piece in &pieces {
        assert!(
            !piece.contains("Par"),
            "a piece leaked the stop: {pieces:?}"
        );
    }
}

#[test]
fn seeded_sampling_is_reproducible() {
    let engine = engine(options());
    let req = GenerateRequest {
        temperature: 0.9,
        top_p: 0.95,
        top_k: 40,
        seed: 7,
        ..france(16)
    };
    let a = engine
        .generate(req.clone())
        .expect("start")
        .blocking_collect();
    let b = engine.generate(req).expect("start").blocking_collect();
    assert_eq!(a.expect("first"), b.expect("second"));
}

#[test]
fn dropping_a_generation_while_decoding_frees_the_slot() {
    let engine = engine(EngineOptions {
        slots: 1,
        ..options()
    });
    let mut running = engine.generate(france(200)).expect("start");
    for _ in 0..3 {
        assert!(matches!(running.blocking_next(), Some(GenEvent::Token(_))));
    }
    drop(running);
    let started = Instant::now();
    let mut next = engine
        .generate(france(1))
        .expect("queued behind the cancelled one");
    assert!(matches!(next.blocking_next(), Some(GenEvent::Token(_))));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn dropping_a_generation_during_a_long_prompt_frees_the_slot_quickly() {
    let engine = engine(EngineOptions {
        slots: 1,
        context_tokens: 2048,
        ..options()
    });
    // How long the whole prompt pass takes here, for comparison.
    let started = Instant::now();
    let mut full = engine.generate(long_prompt(800)).expect("start");
    assert!(full.prompt_tokens() > 900, "{}", full.prompt_tokens());
    assert!(matches!(full.blocking_next(), Some(GenEvent::Token(_))));
    let full_prompt = started.elapsed();
    drop(full);

    let running = engine.generate(long_prompt(800)).expect("start");
    std::thread::sleep(full_prompt / 4);
    drop(running);
    let started = Instant::now();
    let mut next = engine.generate(france(1)).expect("start");
    assert!(matches!(next.blocking_next(), Some(GenEvent::Token(_))));
    let waited = started.elapsed();
    assert!(
        waited < full_prompt / 2,
        "new generation waited {waited:?}; a full prompt pass takes {full_prompt:?}"
    );
}

#[test]
fn busy_when_every_slot_and_queue_place_is_taken() {
    let engine = engine(EngineOptions {
        slots: 1,
        queue: 0,
        ..options()
    });
    let mut running = engine.generate(france(200)).expect("start");
    assert!(matches!(running.blocking_next(), Some(GenEvent::Token(_))));
    let started = Instant::now();
    let err = engine.generate(france(5)).expect_err("no room");
    assert!(started.elapsed() < Duration::from_millis(100));
    assert!(
        matches!(err, GenerateError::Busy { slots: 1, queue: 0 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("busy"));

    // Once the running generation finishes, there is room again.
    while running.blocking_next().is_some() {}
    engine
        .generate(france(2))
        .expect("room after the first ended")
        .blocking_collect()
        .expect("finish");
}

fn long_history() -> Vec<ChatTurn> {
    let mut turns = vec![ChatTurn::system("You are a concise geography assistant.")];
    for i in 0..12 {
        turns.push(ChatTurn::user(format!(
            "Question {i}: tell me something about rivers, mountains and lakes in region {i}."
        )));
        turns.push(ChatTurn::assistant(format!(
            "Region {i} has long rivers, tall mountains and many deep, cold lakes that \
             freeze in winter and attract visitors in summer."
        )));
    }
    turns.push(ChatTurn::user("What is the capital of France?"));
    turns
}

#[test]
fn long_history_is_trimmed_to_fit_the_context() {
    let engine = engine(EngineOptions {
        context_tokens: 256,
        overflow: Overflow::TrimOldest,
        ..options()
    });
    let history = long_history();
    let full = engine.count_prompt_tokens(&history).expect("count");
    assert!(full > 256, "history should overflow: {full}");

    let req = GenerateRequest {
        max_tokens: 48,
        ..GenerateRequest::new(history.clone())
    };
    let generation = engine.generate(req).expect("trimmed to fit");
    let dropped = generation.dropped_turns();
    assert!(dropped > 0);
    assert!(generation.prompt_tokens() + 48 <= 256);
    // Only as many of the oldest turns as needed went: keeping one more would not fit.
    let mut one_more = history;
    one_more.drain(1..dropped);
    let longer = engine.count_prompt_tokens(&one_more).expect("count");
    assert!(longer + 48 > 256, "{longer} tokens would have fitted");
    let done = generation.blocking_collect().expect("answers");
    assert!(!done.text.is_empty());
    assert!(done.text.contains("Paris"), "{:?}", done.text);
}

#[test]
fn long_history_is_refused_when_trimming_is_off() {
    let engine = engine(EngineOptions {
        context_tokens: 256,
        overflow: Overflow::Refuse,
        ..options()
    });
    let req = GenerateRequest {
        max_tokens: 48,
        ..GenerateRequest::new(long_history())
    };
    match engine.generate(req) {
        Err(GenerateError::ContextOverflow {
            prompt_tokens,
            max_tokens: 48,
            context: 256,
        }) => assert!(prompt_tokens > 256 - 48),
        other => panic!("expected ContextOverflow, got {other:?}"),
    }
}

#[test]
fn a_single_turn_longer_than_the_context_is_an_error_even_when_trimming() {
    let engine = engine(EngineOptions {
        context_tokens: 256,
        ..options()
    });
    let err = engine.generate(long_prompt(400)).expect_err("cannot fit");
    assert!(
        matches!(err, GenerateError::ContextOverflow { .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn two_slots_stream_concurrently_to_async_callers() {
    let engine = engine(EngineOptions {
        slots: 2,
        queue: 0,
        ..options()
    });
    let a = engine.generate(france(4)).expect("first slot");
    let b = engine.generate(france(4)).expect("second slot");
    assert!(matches!(
        engine.generate(france(8)),
        Err(GenerateError::Busy { .. })
    ));
    let (a, b) = tokio::join!(a.collect(), b.collect());
    let (a, b) = (a.expect("first"), b.expect("second"));
    assert_eq!(a, b);
    assert_eq!(a.completion_tokens, 4);
}

#[test]
fn engine_and_generation_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<switchboard_embedded::Engine>();
    send::<switchboard_embedded::Generation>();
}

/// How often the most frequent run of `n` words occurs in `text`.
fn most_repeated_run(text: &str, n: usize) -> usize {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let mut counts = std::collections::HashMap::new();
    for run in words.windows(n) {
        *counts.entry(run.to_vec()).or_insert(0usize) += 1;
    }
    counts.into_values().max().unwrap_or(0)
}

#[test]
fn the_default_repetition_penalty_keeps_a_greedy_answer_from_looping() {
    let engine = engine(options());
    let ask = |repeat_penalty| GenerateRequest {
        max_tokens: 160,
        repeat_penalty,
        ..GenerateRequest::new(vec![ChatTurn::user(
            "Describe the colour of the sky at dusk.",
        )])
    };
    let plain = engine
        .generate(ask(1.0))
        .expect("start")
        .blocking_collect()
        .expect("finish");
    let penalized = engine
        .generate(GenerateRequest {
            max_tokens: 160,
            ..GenerateRequest::new(ask(1.0).messages)
        })
        .expect("start")
        .blocking_collect()
        .expect("finish");
    eprintln!("plain: {:?}\npenalized: {:?}", plain.text, penalized.text);
    let (before, after) = (
        most_repeated_run(&plain.text, 4),
        most_repeated_run(&penalized.text, 4),
    );
    assert!(
        before >= 3,
        "without the penalty this prompt should loop: {plain:?}"
    );
    assert!(
        after < 3,
        "with the default penalty it must not: {penalized:?}"
    );
    assert!(!penalized.text.trim().is_empty());
}
