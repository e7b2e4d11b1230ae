//! Exports of logged conversations: the fine-tuning file validates against
//! OpenAI's chat format, filters pick the right answers (by feedback,
//! prompt version, date), PII is redacted on request, and CSV quotes what
//! it must.

use gateway::domain::Utc;
use gateway::promptops::export::{Format, export};
use gateway::store::DatasetFilter;
use serde_json::{Value, json};
use testkit::standin::{Reply, StandIn};
use testkit::{Harness, one_provider};

async fn export_to_string(
    h: &Harness,
    filter: &DatasetFilter,
    format: Format,
    redact: bool,
) -> (usize, String) {
    h.gateway.pipeline.recorder().flush().await;
    let mut out = Vec::new();
    let n = export(&h.gateway.store, filter, format, redact, &mut out)
        .await
        .expect("export");
    // Every answer through the stand-in has a real TTFT.
    assert_eq!(n.without_ttft, 0, "{n:?}");
    (n.conversations, String::from_utf8(out).expect("UTF-8"))
}

/// Checks one line against the chat fine-tuning format: a `messages`
/// array of {role, content} with known roles, at least one user turn, and
/// the assistant's answer last.
fn assert_fine_tuning_line(line: &str) {
    let v: Value = serde_json::from_str(line).expect("each line is JSON");
    let obj = v.as_object().expect("an object");
    assert_eq!(obj.keys().collect::<Vec<_>>(), vec!["messages"], "{line}");
    let messages = v["messages"].as_array().expect("messages array");
    assert!(messages.len() >= 2, "{line}");
    for m in messages {
        let m = m.as_object().expect("message object");
        assert_eq!(m.len(), 2, "only role and content: {line}");
        let role = m["role"].as_str().expect("role");
        assert!(["system", "user", "assistant"].contains(&role), "{line}");
        assert!(
            !m["content"].as_str().expect("content is text").is_empty(),
            "{line}"
        );
    }
    assert!(messages.iter().any(|m| m["role"] == "user"));
    assert_eq!(messages.last().unwrap()["role"], "assistant");
}

#[tokio::test]
async fn exports_are_valid_filtered_and_redacted() {
    let provider = StandIn::start().await;
    provider.then([
        Reply::OpenAiJson(
            "Write to ada@example.com, or call +1 415 555 0100.".into(),
            (10, 9),
        ),
        Reply::OpenAiJson("Paris, \"the\" capital.".into(), (10, 4)),
        Reply::OpenAiJson("I do not know.".into(), (10, 4)),
    ]);
    let h = Harness::start(&one_provider(&provider.url), &[]).await;
    let mut ids = Vec::new();
    for q in [
        "How do I reach support?",
        "Capital of France?",
        "Meaning of life?",
    ] {
        let a = h
            .chat(json!({"model": "prompt:assistant", "messages": [{"role": "user", "content": q}], "user": "U1"}))
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        ids.push(a.inference_id());
    }
    for (id, score) in [(&ids[0], 1), (&ids[1], 1), (&ids[2], 0)] {
        let r = h
            .post_raw(
                "/v1/feedback",
                &json!({"inference_id": id, "kind": "thumbs", "score": score, "user": "U9"})
                    .to_string(),
                &[],
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }

    let (n, text) = export_to_string(&h, &DatasetFilter::default(), Format::OpenAi, false).await;
    assert_eq!(n, 3);
    text.lines().for_each(assert_fine_tuning_line);
    assert!(text.contains("ada@example.com"));
    assert!(text.contains("Answer U1 concisely"), "{text}");

    // Only 👍 answers, with PII redacted.
    let up = DatasetFilter {
        thumbs: Some(true),
        ..DatasetFilter::default()
    };
    let (n, text) = export_to_string(&h, &up, Format::OpenAi, true).await;
    assert_eq!(n, 2);
    text.lines().for_each(assert_fine_tuning_line);
    assert!(
        text.contains("Write to [email], or call [phone]."),
        "{text}"
    );
    assert!(!text.contains("Meaning of life"));
    // The prompt named the asker by id; that goes too.
    assert!(
        text.contains("Answer [user] concisely") && !text.contains("U1"),
        "{text}"
    );

    let down = DatasetFilter {
        thumbs: Some(false),
        prompt: Some("assistant".into()),
        version: Some(1),
        ..DatasetFilter::default()
    };
    let (n, text) = export_to_string(&h, &down, Format::Eval, false).await;
    assert_eq!(n, 1);
    let line: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(line["id"], ids[2].as_str());
    assert_eq!(
        (line["prompt"].as_str(), line["version"].as_i64()),
        (Some("assistant"), Some(1))
    );
    assert_eq!(line["thumbs"], 0.0);
    assert_eq!(line["output"], "I do not know.");

    // Dates: nothing before today, nothing from tomorrow.
    let today = Utc::parse_date(&Utc::from_ms(gateway::domain::now_ms()).date()).unwrap();
    let tomorrow = DatasetFilter {
        since_ms: Some(today + 86_400_000),
        ..DatasetFilter::default()
    };
    assert_eq!(
        export_to_string(&h, &tomorrow, Format::Eval, false).await.0,
        0
    );
    let since_today = DatasetFilter {
        since_ms: Some(today),
        limit: Some(2),
        ..DatasetFilter::default()
    };
    assert_eq!(
        export_to_string(&h, &since_today, Format::Eval, false)
            .await
            .0,
        2
    );

    let (n, csv) = export_to_string(&h, &DatasetFilter::default(), Format::Csv, true).await;
    assert_eq!(n, 3);
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("id,created_at,platform,"));
    assert!(csv.contains("\"Paris, \"\"the\"\" capital.\""), "{csv}");
    assert!(
        csv.contains(",[user],"),
        "the user id is redacted too: {csv}"
    );

    // A chat platform's display name, rendered into the prompt, is kept
    // with the conversation and redacted with it.
    let origin = gateway::Origin {
        platform: "slack".into(),
        channel: Some("C-ada".into()),
        user: Some(gateway::User::new("slack", "U2")),
        ..gateway::Origin::default()
    };
    let question = gateway::domain::Request::new(
        origin.clone(),
        gateway::domain::Input::Chat(gateway::Inbound {
            origin,
            text: "Any news?".into(),
            user_name: Some("Ada Lovelace".into()),
            ..gateway::Inbound::default()
        }),
    );
    let mut reply = h.gateway.pipeline.start(question).await.expect("answer");
    while let Some(event) = reply.next_event().await {
        assert!(
            !matches!(event, gateway::ReplyEvent::Failed { .. }),
            "{event:?}"
        );
    }
    let ada = DatasetFilter {
        channel: Some("C-ada".into()),
        ..DatasetFilter::default()
    };
    let (n, plain) = export_to_string(&h, &ada, Format::OpenAi, false).await;
    assert_eq!(n, 1);
    assert!(plain.contains("Answer Ada Lovelace concisely"), "{plain}");
    let (_, redacted) = export_to_string(&h, &ada, Format::OpenAi, true).await;
    assert!(
        redacted.contains("Answer [user] concisely") && !redacted.contains("Ada"),
        "{redacted}"
    );
}

#[tokio::test]
async fn an_export_counts_the_answers_without_a_ttft_figure() {
    let provider = StandIn::start().await;
    let h = Harness::start(&one_provider(&provider.url), &[]).await;
    let mut unmeasured = crate::store::record(1);
    unmeasured.ttft_ms = None;
    unmeasured.tpot_ms = None;
    let measured = crate::store::record(2);
    h.gateway
        .store
        .insert_inferences(&[unmeasured, measured])
        .await
        .unwrap();
    let mut out = Vec::new();
    let n = export(
        &h.gateway.store,
        &DatasetFilter::default(),
        Format::Csv,
        false,
        &mut out,
    )
    .await
    .expect("export");
    assert_eq!((n.conversations, n.without_ttft), (2, 1));
    let csv = String::from_utf8(out).unwrap();
    let ttft: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(10).unwrap_or("?"))
        .collect();
    assert!(ttft.contains(&"") && ttft.contains(&"120.5"), "{ttft:?}");
}
