//! Socket Mode end to end: the adapter opens a connection with the
//! app-level token, and the stand-in sends Slack's documented envelopes
//! over the websocket.

use std::time::Duration;

use serde_json::{Value, json};
use support::standin::{Reply, StandIn};
use tokio::sync::watch;

use super::fake_api::{self, APP_TOKEN, FakeSlack, TOKEN};
use super::{Slack, SlackConfig, app_mention, final_message, now, support};

struct Socket {
    _harness: support::Harness,
    provider: StandIn,
    api: FakeSlack,
    _stop: watch::Sender<bool>,
}

/// A replica that reaches the stand-in over Socket Mode only.
async fn socket_world(slack_toml: &str) -> Socket {
    let provider = StandIn::start().await;
    let api = FakeSlack::start().await;
    let harness = support::Harness::start(&support::one_provider(&provider.url), &[]).await;
    let config: SlackConfig = toml::from_str(&format!(
        "bot_token_env = \"SLACK_BOT_TOKEN\"\napp_token_env = \"SLACK_APP_TOKEN\"\n\
         api_base = \"{}\"\nupdates_per_minute = 6000\n{slack_toml}",
        api.url
    ))
    .unwrap();
    let slack = Slack::new(&harness.gateway, config, TOKEN, "", now).with_app_token(APP_TOKEN);
    let (stop, stopped) = watch::channel(false);
    assert!(slack.start_socket(stopped).is_some());
    api.wait_for_connections(1).await;
    Socket {
        _harness: harness,
        provider,
        api,
        _stop: stop,
    }
}

/// Slack's documented `events_api` envelope around an event callback.
fn events_envelope(envelope_id: &str, retry_attempt: u32, payload: Value) -> Value {
    json!({
        "envelope_id": envelope_id,
        "payload": payload,
        "type": "events_api",
        "accepts_response_payload": false,
        "retry_attempt": retry_attempt,
        "retry_reason": if retry_attempt == 0 { "" } else { "timeout" },
    })
}

/// Answers posted: messages, or finished streams.
fn answers(api: &FakeSlack) -> usize {
    api.calls()
        .iter()
        .filter(|c| c.method == "chat.postMessage" || c.method == "chat.stopStream")
        .count()
}

#[tokio::test]
async fn a_mention_over_the_socket_is_acked_and_answered_once_even_when_redelivered() {
    let w = socket_world("").await;
    w.provider.then([Reply::text("Over the socket.")]);
    let open = w.api.calls_of("apps.connections.open");
    assert_eq!(open.len(), 1, "{:?}", fake_api::summary(&w.api.calls()));
    let mention = app_mention("Ev0SOCKET", "<@U0LAN0Z89> are you there?");
    w.api.send(&events_envelope(
        "57d6a792-4d35-4d0b-b6aa-3361493e1caf",
        0,
        mention.clone(),
    ));
    w.api
        .wait_for_ack("the envelope's ack", |acks| {
            acks.iter()
                .any(|a| a["envelope_id"] == "57d6a792-4d35-4d0b-b6aa-3361493e1caf")
        })
        .await;
    let calls = w
        .api
        .wait_for("the answer", |c| final_message(c).is_some())
        .await;
    let last = final_message(&calls).unwrap();
    assert_eq!(last.args["channel"], "C123ABC456");
    assert!(
        last.args["text"]
            .as_str()
            .unwrap()
            .contains("Over the socket."),
        "{:?}",
        last.args
    );

    // Slack redelivers the same event in a new envelope: acked, not answered.
    w.api.send(&events_envelope("1d3a7c4e-retry", 1, mention));
    w.api
        .wait_for_ack("the retry's ack", |acks| {
            acks.iter().any(|a| a["envelope_id"] == "1d3a7c4e-retry")
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        answers(&w.api),
        1,
        "{:?}",
        fake_api::summary(&w.api.calls())
    );
    assert_eq!(w.provider.received().len(), 1);
}

#[tokio::test]
async fn after_a_refresh_requested_disconnect_the_next_event_is_still_answered() {
    let w = socket_world("").await;
    w.provider.then([Reply::text("Still here.")]);
    w.api.send(&json!({
        "type": "disconnect",
        "reason": "refresh_requested",
        "debug_info": {"host": "applink-7fc4fdbb6d-x5qjc"}
    }));
    w.api.wait_for_connections(2).await;
    assert_eq!(
        w.api.calls_of("apps.connections.open").len(),
        2,
        "a fresh URL for the new connection"
    );
    w.api.send(&events_envelope(
        "dbdd0ef3-1543-4f94-bfb4-133d0e6c1545",
        0,
        app_mention("Ev0AFTER", "<@U0LAN0Z89> and now?"),
    ));
    let calls = w
        .api
        .wait_for("the answer after reconnecting", |c| {
            final_message(c).is_some()
        })
        .await;
    assert!(
        final_message(&calls).unwrap().args["text"]
            .as_str()
            .unwrap()
            .contains("Still here.")
    );
}

#[tokio::test]
async fn a_silent_socket_is_dropped_by_the_watchdog_and_the_bot_answers_on_a_new_one() {
    // The stand-in sends no pings: after its hello the socket stays silent.
    let w = socket_world("socket_watchdog_ms = 300\n").await;
    w.provider.then([Reply::text("Back again.")]);
    w.api.wait_for_connections(2).await;
    w.api.send(&events_envelope(
        "e5f1b9a0-watchdog",
        0,
        app_mention("Ev0WATCHDOG", "<@U0LAN0Z89> hello?"),
    ));
    let calls = w
        .api
        .wait_for("the answer on the new connection", |c| {
            final_message(c).is_some()
        })
        .await;
    assert!(
        final_message(&calls).unwrap().args["text"]
            .as_str()
            .unwrap()
            .contains("Back again.")
    );
}

#[tokio::test]
async fn a_slash_command_over_the_socket_is_answered_in_the_ack() {
    let w = socket_world("").await;
    w.api.user("U2147483697", "Steve", true);
    // Slack's documented slash_commands envelope.
    w.api.send(&json!({
        "envelope_id": "9f7c3bd2-slash",
        "payload": {
            "token": "bHKJ2n9AW6Ju3MjciOHfbA1b",
            "team_id": "T123ABC456",
            "team_domain": "example",
            "channel_id": "C123ABC456",
            "channel_name": "general",
            "user_id": "U2147483697",
            "user_name": "steve",
            "command": "/prompt",
            "text": "list",
            "api_app_id": "A123ABC456",
            "response_url": format!("{}/respond/socket", w.api.base),
            "trigger_id": "13345224609.738474920.8088930838d88f008e0"
        },
        "type": "slash_commands",
        "accepts_response_payload": true
    }));
    w.api
        .wait_for_ack("the command's ack", |acks| {
            acks.iter().any(|a| a["envelope_id"] == "9f7c3bd2-slash")
        })
        .await;
    let ack = w
        .api
        .acks()
        .into_iter()
        .find(|a| a["envelope_id"] == "9f7c3bd2-slash")
        .unwrap();
    assert_eq!(ack["payload"]["response_type"], "ephemeral", "{ack}");
    assert!(
        ack["payload"].to_string().contains("assistant"),
        "the prompt list is in the answer: {ack}"
    );
}
