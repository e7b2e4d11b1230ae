//! The adapter end to end: a real gateway (SQLite store, pipeline, admin
//! layer) with a stand-in model provider, the adapter's routes on
//! loopback, and a stand-in Slack Web API that records every call. The
//! requests are Slack's documented payloads, signed as Slack signs them.

mod edit;
mod knowledge;
mod socket;

use testkit as support;
use testkit::slack as fake_api;

use std::time::Duration;

use fake_api::{BOT_USER, FakeSlack, TOKEN};
use serde_json::{Value, json};
use support::Harness;
use support::standin::{Reply, StandIn, split};

use super::signature::sign;
use super::{Slack, SlackConfig};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

struct World {
    harness: Harness,
    provider: StandIn,
    api: FakeSlack,
    url: String,
    client: reqwest::Client,
}

struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn world(extra_toml: &str) -> World {
    world_with(extra_toml, "").await
}

/// [`world`], with more `[slack]` keys.
async fn world_with(extra_toml: &str, slack_toml: &str) -> World {
    let provider = StandIn::start().await;
    let api = FakeSlack::start().await;
    let (harness, url) = replica_with(&provider, &api, extra_toml, slack_toml).await;
    World {
        harness,
        provider,
        api,
        url,
        client: reqwest::Client::new(),
    }
}

/// One Switchboard process with the adapter mounted; its URL.
async fn replica(provider: &StandIn, api: &FakeSlack, extra_toml: &str) -> (Harness, String) {
    replica_with(provider, api, extra_toml, "").await
}

async fn replica_with(
    provider: &StandIn,
    api: &FakeSlack,
    extra_toml: &str,
    slack_toml: &str,
) -> (Harness, String) {
    let toml = format!("{}\n{extra_toml}", support::one_provider(&provider.url));
    replica_toml(api, &toml, slack_toml).await
}

/// One process on a whole gateway configuration, with `[slack]` keys.
async fn replica_toml(api: &FakeSlack, toml: &str, slack_toml: &str) -> (Harness, String) {
    replica_env(api, toml, slack_toml, &[]).await
}

/// [`replica_toml`], with these environment variables.
async fn replica_env(
    api: &FakeSlack,
    toml: &str,
    slack_toml: &str,
    env: &[(&str, &str)],
) -> (Harness, String) {
    let harness = Harness::start(toml, env).await;
    let config: SlackConfig = toml::from_str(&format!(
        "bot_token_env = \"SLACK_BOT_TOKEN\"\nsigning_secret_env = \"SLACK_SIGNING_SECRET\"\n\
         api_base = \"{}\"\nupdates_per_minute = 6000\ncommand_inline_ms = 1500\n{slack_toml}",
        api.url
    ))
    .unwrap();
    let slack = Slack::new(&harness.gateway, config, TOKEN, SECRET, now);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = slack.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (harness, url)
}

impl World {
    /// POSTs a body signed as Slack signs it now.
    async fn signed(&self, path: &str, body: &str, content_type: &str) -> Answer {
        let ts = now().to_string();
        let sig = sign(SECRET.as_bytes(), &ts, body.as_bytes());
        self.post(
            path,
            body,
            &[
                ("content-type", content_type),
                ("x-slack-request-timestamp", &ts),
                ("x-slack-signature", &sig),
            ],
        )
        .await
    }

    async fn event(&self, payload: &Value) -> Answer {
        self.signed("/slack/events", &payload.to_string(), "application/json")
            .await
    }

    async fn interaction(&self, payload: &Value) -> Answer {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        self.signed(
            "/slack/interactions",
            &body,
            "application/x-www-form-urlencoded",
        )
        .await
    }

    async fn command(&self, user: &str, text: &str) -> Answer {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", "xyzz0WbapA4vBCDEFasx0q6G")
            .append_pair("team_id", "T1DC2JH3J")
            .append_pair("team_domain", "testteamnow")
            .append_pair("channel_id", "G8PSS9T3V")
            .append_pair("channel_name", "foobar")
            .append_pair("user_id", user)
            .append_pair("user_name", "roadrunner")
            .append_pair("command", "/prompt")
            .append_pair("text", text)
            .append_pair("response_url", &format!("{}/respond/cmd", self.api.base))
            .append_pair(
                "trigger_id",
                "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
            )
            .finish();
        self.signed(
            "/slack/commands",
            &body,
            "application/x-www-form-urlencoded",
        )
        .await
    }

    async fn post(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
        self.post_to(&self.url, path, body, headers).await
    }

    async fn post_to(
        &self,
        base: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self
            .client
            .post(format!("{base}{path}"))
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        Answer {
            status: resp.status().as_u16(),
            body: resp.text().await.unwrap(),
        }
    }

    /// The feedback rows of an inference: (kind, score, source, user).
    async fn feedback(&self, id: &str) -> Vec<(String, Option<f64>, String, Option<String>)> {
        self.harness.gateway.pipeline.recorder().flush().await;
        self.harness.gateway.store.feedback_for(id).await.unwrap()
    }
}

/// Slack's documented `app_mention` event callback.
fn app_mention(event_id: &str, text: &str) -> Value {
    json!({
        "token": "ZZZZZZWSxiZZZ2yIvs3peJ",
        "team_id": "T123ABC456",
        "api_app_id": "A123ABC456",
        "event": {
            "type": "app_mention",
            "user": "U123ABC456",
            "text": text,
            "ts": "1515449522.000016",
            "channel": "C123ABC456",
            "event_ts": "1515449522.000016"
        },
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1515449522,
        "authed_users": [BOT_USER]
    })
}

/// Slack's documented `message.im` event callback.
fn message_im(event_id: &str) -> Value {
    json!({
        "token": "one-long-verification-token",
        "team_id": "T061EG9R6",
        "api_app_id": "A0PNCHHK2",
        "event": {
            "type": "message",
            "channel": "D024BE91L",
            "user": "U2147483697",
            "text": "Hello hello can you hear me?",
            "ts": "1355517523.000005",
            "event_ts": "1355517523.000005",
            "channel_type": "im"
        },
        "type": "event_callback",
        "authed_teams": ["T061EG9R6"],
        "event_id": event_id,
        "event_time": 1355517523
    })
}

/// Slack's documented `block_actions` payload: `user` clicked our feedback
/// button `action` on the answer `ts` in `channel`, carrying `inference`.
fn block_actions(
    user: &str,
    channel: &str,
    ts: &str,
    action: &str,
    inference: &str,
    response_url: String,
) -> Value {
    json!({
        "type": "block_actions",
        "team": {"id": "T9TK3CUKW", "domain": "example"},
        "user": {"id": user, "username": "jtorrance", "team_id": "T9TK3CUKW"},
        "api_app_id": "AABA1ABCD",
        "token": "9s8d9as89d8as9d8as989",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false},
        "trigger_id": "12321423423.333649436676.d8c1bb837935619ccad0f624c448ffb3",
        "channel": {"id": channel, "name": "review-updates"},
        "response_url": response_url,
        "actions": [{
            "action_id": action,
            "block_id": "switchboard_feedback",
            "text": {"type": "plain_text", "text": "👍", "emoji": true},
            "value": inference,
            "type": "button",
            "action_ts": "1548426417.840180"
        }]
    })
}

/// The final edit of an answer: the `chat.update` (or `chat.postMessage`)
/// carrying the feedback buttons.
fn final_message(calls: &[fake_api::Call]) -> Option<&fake_api::Call> {
    calls.iter().find(|c| {
        (c.method == "chat.update" || c.method == "chat.postMessage")
            && c.args["blocks"]
                .as_array()
                .is_some_and(|b| b.iter().any(|b| b["type"] == "actions"))
    })
}

fn button_value(call: &fake_api::Call, action: &str) -> String {
    let blocks = call.args["blocks"].as_array().unwrap();
    let actions = blocks.iter().find(|b| b["type"] == "actions").unwrap();
    actions["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action_id"] == action)
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_url_verification_handshake_echoes_the_challenge() {
    let w = world("").await;
    let r = w
        .event(&json!({
            "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification"
        }))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
}

#[tokio::test]
async fn wrong_old_or_missing_signatures_get_401_and_nothing_is_queued() {
    let w = world("").await;
    let body = app_mention("Ev0BAD", "<@U0LAN0Z89> hello").to_string();
    let ts = now().to_string();
    let good = sign(SECRET.as_bytes(), &ts, body.as_bytes());
    let wrong = sign(b"not-the-secret", &ts, body.as_bytes());
    let old_ts = (now() - 6 * 60).to_string();
    let old = sign(SECRET.as_bytes(), &old_ts, body.as_bytes());
    let cases: [(&str, Vec<(&str, &str)>); 5] = [
        (
            "wrong secret",
            vec![
                ("x-slack-request-timestamp", &ts),
                ("x-slack-signature", &wrong),
            ],
        ),
        (
            "six minutes old",
            vec![
                ("x-slack-request-timestamp", &old_ts),
                ("x-slack-signature", &old),
            ],
        ),
        ("no signature", vec![("x-slack-request-timestamp", &ts)]),
        ("no timestamp", vec![("x-slack-signature", &good)]),
        ("no headers", vec![]),
    ];
    for (what, headers) in cases {
        let r = w.post("/slack/events", &body, &headers).await;
        assert_eq!(r.status, 401, "{what}");
    }
    // The same body, signed, is then answered: the refused copies were not
    // queued and did not mark the event as seen.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        w.api.calls().is_empty(),
        "{:?}",
        fake_api::summary(&w.api.calls())
    );
    assert!(w.provider.received().is_empty());
    let r = w.signed("/slack/events", &body, "application/json").await;
    assert_eq!(r.status, 200);
    w.api
        .wait_for("the answer", |c| final_message(c).is_some())
        .await;
}

#[tokio::test]
async fn a_mention_is_answered_in_its_thread_streamed_formatted_and_with_feedback_buttons() {
    let w = world("").await;
    w.provider.then([Reply::OpenAiStream(
        split("The **pearl** hour is `6 & 7`. See [docs](https://example.com)."),
        (20, 12),
    )]);
    let r = w
        .event(&app_mention(
            "Ev0MENTION",
            "What is the hour of the pearl, <@U0LAN0Z89>?",
        ))
        .await;
    assert_eq!(r.status, 200);
    let calls = w
        .api
        .wait_for("the finished answer", |c| final_message(c).is_some())
        .await;

    // A channel thread is no assistant thread: no status is set there.
    assert!(
        !calls
            .iter()
            .any(|c| c.method == "assistant.threads.setStatus"),
        "{:?}",
        fake_api::summary(&calls)
    );

    // The answer is posted once, in the mention's thread, then edited.
    let posts = w.api.calls_of("chat.postMessage");
    assert_eq!(posts.len(), 1, "{:?}", fake_api::summary(&calls));
    assert_eq!(posts[0].args["channel"], "C123ABC456");
    assert_eq!(posts[0].args["thread_ts"], "1515449522.000016");
    let last = final_message(&calls).unwrap();
    let text = "The *pearl* hour is `6 &amp; 7`. See <https://example.com|docs>.";
    assert_eq!(last.args["blocks"][0]["text"]["type"], "mrkdwn");
    assert_eq!(last.args["blocks"][0]["text"]["text"], text);
    assert_eq!(last.args["text"], text);

    // The question reached the model without the mention.
    let asked = &w.provider.received()[0].body["messages"];
    let user = asked.as_array().unwrap().last().unwrap();
    assert_eq!(user["content"], "What is the hour of the pearl,?");

    // The buttons carry the recorded inference id.
    let id = button_value(last, "switchboard_thumbs_up");
    assert_eq!(button_value(last, "switchboard_thumbs_down"), id);
    let row = w.harness.row(&id).await;
    assert_eq!(row.platform, "slack");
}

/// Whatever the model writes, an answer pings no one (Slack's `<!channel>`,
/// `<@U…>` and links to them arrive as text) and its links unfurl no
/// previews, neither pages nor media.
#[tokio::test]
async fn model_output_pings_no_one_and_answers_unfurl_nothing() {
    let w = world("").await;
    w.provider.then([Reply::text(
        "Hey <!channel> and <@U0LAN0Z89>, see [this](!here), [him](@U0LAN0Z89) or [docs](https://example.com).",
    )]);
    w.event(&app_mention("Ev0PING", "<@U0LAN0Z89> wake everyone"))
        .await;
    let calls = w
        .api
        .wait_for("the finished answer", |c| final_message(c).is_some())
        .await;
    let last = final_message(&calls).unwrap();
    let text = "Hey &lt;!channel&gt; and &lt;@U0LAN0Z89&gt;, see this (!here), him (@U0LAN0Z89) or <https://example.com|docs>.";
    assert_eq!(last.args["text"], text);
    assert_eq!(last.args["blocks"][0]["text"]["text"], text);
    let written: Vec<_> = calls
        .iter()
        .filter(|c| c.method == "chat.postMessage" || c.method == "chat.update")
        .collect();
    for call in &written {
        let shown = format!("{} {}", call.args["text"], call.args["blocks"]);
        assert!(
            !shown.contains("<!") && !shown.contains("<@"),
            "{}: {shown}",
            call.method
        );
    }
    let posts = w.api.calls_of("chat.postMessage");
    assert!(!posts.is_empty());
    for post in &posts {
        assert_eq!(post.args["unfurl_links"], false, "{}", post.args);
        assert_eq!(post.args["unfurl_media"], false, "{}", post.args);
    }
}

#[tokio::test]
async fn the_same_event_delivered_three_times_gets_one_reply() {
    let w = world("").await;
    let payload = app_mention("Ev0RETRIED", "<@U0LAN0Z89> hi");
    let first = w.event(&payload).await;
    assert_eq!(first.status, 200);
    for retry in ["1", "2"] {
        let body = payload.to_string();
        let ts = now().to_string();
        let sig = sign(SECRET.as_bytes(), &ts, body.as_bytes());
        let r = w
            .post(
                "/slack/events",
                &body,
                &[
                    ("x-slack-request-timestamp", &ts),
                    ("x-slack-signature", &sig),
                    ("x-slack-retry-num", retry),
                    ("x-slack-retry-reason", "http_timeout"),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "a retry is acknowledged");
    }
    w.api
        .wait_for("the answer", |c| final_message(c).is_some())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.api.calls_of("chat.postMessage").len(), 1);
    assert_eq!(w.provider.received().len(), 1);
}

#[tokio::test]
async fn a_direct_message_is_answered() {
    let w = world("").await;
    w.provider.then([Reply::text("Loud and clear.")]);
    assert_eq!(w.event(&message_im("Ev0DM")).await.status, 200);
    let calls = w
        .api
        .wait_for("the answer", |c| final_message(c).is_some())
        .await;
    let last = final_message(&calls).unwrap();
    assert_eq!(last.args["channel"], "D024BE91L");
    assert_eq!(last.args["blocks"][0]["text"]["text"], "Loud and clear.");
    let post = &w.api.calls_of("chat.postMessage")[0];
    assert_eq!(post.args["thread_ts"], "1355517523.000005");
    // A direct message's answer takes feedback from its user only.
    let id = button_value(last, "switchboard_thumbs_up");
    w.harness.gateway.pipeline.recorder().flush().await;
    let audience = w
        .harness
        .gateway
        .store
        .inference_audience(&id)
        .await
        .unwrap();
    let user = message_im("Ev0DM")["event"]["user"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        audience,
        Some(gateway::domain::Audience::Only(gateway::User::new(
            "slack", user
        )))
    );
}

/// In a direct message, the asker's own 👍 / 👎 (button and reaction) is
/// stored under the same user as the answer's asker; anyone else's is
/// refused, stores nothing, and the clicker is told so privately instead of
/// being thanked.
#[tokio::test]
async fn in_a_direct_message_the_askers_votes_are_stored_and_anyone_elses_refused_and_told() {
    let w = world("").await;
    w.provider.then([Reply::text("Loud and clear.")]);
    assert_eq!(w.event(&message_im("Ev0DMV")).await.status, 200);
    let calls = w
        .api
        .wait_for("the answer", |c| final_message(c).is_some())
        .await;
    let last = final_message(&calls).unwrap();
    let id = button_value(last, "switchboard_thumbs_up");
    let bot_ts = calls
        .iter()
        .find(|c| c.method == "chat.update")
        .map(|c| c.args["ts"].as_str().unwrap().to_string())
        .unwrap();
    let asker = "U2147483697";
    let click = |user: &str, action: &str, n: &str| {
        let url = format!("{}/respond/{n}", w.api.base);
        block_actions(user, "D024BE91L", &bot_ts, action, &id, url)
    };
    let answer_to = |n: &'static str| {
        let api = &w.api;
        async move {
            let calls = api
                .wait_for("the answer to the click", |c| {
                    c.iter().any(|c| c.method == format!("response_url:{n}"))
                })
                .await;
            let reply = calls
                .iter()
                .find(|c| c.method == format!("response_url:{n}"))
                .unwrap();
            assert_eq!(reply.args["response_type"], "ephemeral");
            reply.args["text"].as_str().unwrap().to_string()
        }
    };
    let own = (
        "thumbs".to_string(),
        Some(1.0),
        "button".to_string(),
        Some(format!("slack:{asker}")),
    );

    // The asker's own button.
    w.interaction(&click(asker, "switchboard_thumbs_up", "a"))
        .await;
    assert!(answer_to("a").await.starts_with("Thanks"));
    assert_eq!(w.feedback(&id).await, std::slice::from_ref(&own));

    // Someone else's button: refused, told, nothing stored, no modal.
    w.interaction(&click("UINTRUDER", "switchboard_thumbs_down", "b"))
        .await;
    let told = answer_to("b").await;
    assert!(
        told.contains("Not recorded") && told.contains("direct message"),
        "{told}"
    );
    assert_eq!(w.feedback(&id).await, [own]);
    assert!(w.api.calls_of("views.open").is_empty());

    // Reactions: the asker's 👎 replaces their vote; someone else's is
    // refused and told in private.
    let reaction = |event_id: &str, user: &str, emoji: &str| {
        json!({
            "token": "one-long-verification-token",
            "team_id": "T061EG9R6",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": 1360782804,
            "event": {
                "type": "reaction_added",
                "user": user,
                "reaction": emoji,
                "item_user": BOT_USER,
                "item": {"type": "message", "channel": "D024BE91L", "ts": bot_ts},
                "event_ts": "1360782804.083113"
            }
        })
    };
    assert_eq!(
        w.event(&reaction("Ev0DMR1", asker, "thumbsdown"))
            .await
            .status,
        200
    );
    let start = std::time::Instant::now();
    while !w.feedback(&id).await.iter().any(|r| r.2 == "reaction") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no reaction vote"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        w.feedback(&id).await,
        [(
            "thumbs".to_string(),
            Some(0.0),
            "reaction".to_string(),
            Some(format!("slack:{asker}"))
        )]
    );
    assert_eq!(
        w.event(&reaction("Ev0DMR2", "UINTRUDER", "thumbsup"))
            .await
            .status,
        200
    );
    let calls = w
        .api
        .wait_for("the private note", |c| {
            c.iter().any(|c| c.method == "chat.postEphemeral")
        })
        .await;
    let note = calls
        .iter()
        .find(|c| c.method == "chat.postEphemeral")
        .unwrap();
    assert_eq!(note.args["user"], "UINTRUDER");
    assert_eq!(note.args["channel"], "D024BE91L");
    assert!(note.args["text"].as_str().unwrap().contains("Not recorded"));
    assert_eq!(
        w.feedback(&id).await.len(),
        1,
        "the intruder's reaction stored nothing"
    );
}

#[tokio::test]
async fn a_reply_in_a_thread_the_bot_answers_continues_with_the_threads_history() {
    let w = world("").await;
    w.api.user("U111", "alice", false);
    w.api.user("U222", "bob", false);
    w.api.thread(
        "1700000000.000100",
        vec![
            json!({"type": "message", "user": "U111", "text": "<@U0LAN0Z89> what is our SLA?", "ts": "1700000000.000100", "thread_ts": "1700000000.000100"}),
            json!({"type": "message", "user": BOT_USER, "bot_id": "B0LAN0Z89", "text": "99.9% uptime.", "ts": "1700000000.000200", "thread_ts": "1700000000.000100"}),
            json!({"type": "message", "user": "U222", "text": "and for support?", "ts": "1700000000.000300", "thread_ts": "1700000000.000100", "parent_user_id": "U111"}),
        ],
    );
    w.provider
        .then([Reply::text("Support answers within a day.")]);
    let reply = json!({
        "token": "one-long-verification-token",
        "team_id": "T123ABC456",
        "api_app_id": "A123ABC456",
        "event": {
            "type": "message",
            "channel": "C123ABC456",
            "user": "U222",
            "text": "and for support?",
            "ts": "1700000000.000300",
            "thread_ts": "1700000000.000100",
            "parent_user_id": "U111",
            "channel_type": "channel",
            "event_ts": "1700000000.000300"
        },
        "type": "event_callback",
        "event_id": "Ev0THREAD",
        "event_time": 1700000000
    });
    assert_eq!(w.event(&reply).await.status, 200);
    let calls = w
        .api
        .wait_for("the answer", |c| final_message(c).is_some())
        .await;
    let post = calls
        .iter()
        .find(|c| c.method == "chat.postMessage")
        .unwrap();
    assert_eq!(post.args["thread_ts"], "1700000000.000100");

    let messages = w.provider.received()[0].body["messages"].clone();
    let turns: Vec<(String, String)> = messages
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        turns,
        [
            ("user".to_string(), "alice: what is our SLA?".to_string()),
            ("assistant".to_string(), "99.9% uptime.".to_string()),
            ("user".to_string(), "and for support?".to_string()),
        ]
    );
}

#[tokio::test]
async fn thread_replies_elsewhere_own_and_other_bots_messages_and_edits_are_not_answered() {
    let w = world("").await;
    w.api.thread(
        "1700000000.000100",
        vec![
            json!({"type": "message", "user": "U111", "text": "lunch?", "ts": "1700000000.000100"}),
        ],
    );
    let event = |id: &str, event: Value| json!({"team_id": "T123ABC456", "type": "event_callback", "event_id": id, "event": event});
    let ignored = [
        // A thread the bot is not in.
        event(
            "Ev1",
            json!({"type": "message", "channel": "C1", "user": "U222", "text": "yes", "ts": "1700000000.000300", "thread_ts": "1700000000.000100", "channel_type": "channel"}),
        ),
        // The bot's own DM message.
        event(
            "Ev2",
            json!({"type": "message", "channel": "D1", "user": BOT_USER, "bot_id": "B0LAN0Z89", "text": "hi", "ts": "1700000001.000100", "channel_type": "im"}),
        ),
        // Another bot.
        event(
            "Ev3",
            json!({"type": "message", "subtype": "bot_message", "channel": "D1", "bot_id": "B999", "username": "other", "text": "beep", "ts": "1700000002.000100", "channel_type": "im"}),
        ),
        // An edit.
        event(
            "Ev4",
            json!({"type": "message", "subtype": "message_changed", "channel": "D1", "hidden": true, "message": {"type": "message", "user": "U111", "text": "edited"}, "ts": "1700000003.000100", "channel_type": "im"}),
        ),
        // A top-level channel message without a mention.
        event(
            "Ev5",
            json!({"type": "message", "channel": "C1", "user": "U111", "text": "hello all", "ts": "1700000004.000100", "channel_type": "channel"}),
        ),
    ];
    for e in &ignored {
        assert_eq!(w.event(e).await.status, 200);
    }
    // Then a mention: it is the only thing answered.
    w.event(&app_mention("Ev6", "<@U0LAN0Z89> hi")).await;
    w.api
        .wait_for("the answer", |c| final_message(c).is_some())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let posts = w.api.calls_of("chat.postMessage");
    assert_eq!(posts.len(), 1, "{:?}", fake_api::summary(&w.api.calls()));
    assert_eq!(posts[0].args["channel"], "C123ABC456");
    assert_eq!(w.provider.received().len(), 1);
}

#[tokio::test]
async fn malformed_and_unknown_payloads_are_refused_or_ignored_and_events_keep_flowing() {
    let w = world("").await;
    let bad_json = w
        .signed("/slack/events", "{not json", "application/json")
        .await;
    assert_eq!(bad_json.status, 400);
    let no_event = w
        .event(&json!({"type": "event_callback", "event_id": "Ev7"}))
        .await;
    assert_eq!(no_event.status, 400);
    let unknown_envelope = w
        .event(&json!({"type": "app_rate_limited", "minute_rate_limited": 1518467820}))
        .await;
    assert_eq!(unknown_envelope.status, 200);
    let unknown_event = w
        .event(
            &json!({"type": "event_callback", "event_id": "Ev8", "team_id": "T1",
            "event": {"type": "pin_added", "user": "U1", "channel_id": "C1", "item": {}}}),
        )
        .await;
    assert_eq!(unknown_event.status, 200);
    let odd_fields = w
        .event(
            &json!({"type": "event_callback", "event_id": "Ev9", "team_id": "T1",
            "event": {"type": "app_mention", "user": 7, "text": ["x"], "channel": null}}),
        )
        .await;
    assert_eq!(odd_fields.status, 200);
    let bad_form = w
        .signed(
            "/slack/interactions",
            "payload=%7Bnope",
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(bad_form.status, 400);
    let unknown_interaction = w
        .interaction(&json!({"type": "block_actions", "user": {"id": "U1"},
            "actions": [{"type": "datepicker", "action_id": "other", "selected_date": "2024-01-01"}]}))
        .await;
    assert_eq!(unknown_interaction.status, 200);
    let no_fields = w
        .signed(
            "/slack/commands",
            "command=%2Fprompt",
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(no_fields.status, 400);

    w.event(&app_mention("Ev10", "<@U0LAN0Z89> still there?"))
        .await;
    w.api
        .wait_for("the answer", |c| final_message(c).is_some())
        .await;
    assert_eq!(w.api.calls_of("chat.postMessage").len(), 1);
}

#[tokio::test]
async fn slack_answering_429_is_waited_out_and_the_answer_still_arrives() {
    let w = world("").await;
    w.api.rate_limit("chat.postMessage", 1);
    w.event(&app_mention("Ev0LIMITED", "<@U0LAN0Z89> hi")).await;
    let calls = w
        .api
        .wait_for("the answer", |c| final_message(c).is_some())
        .await;
    let posts: Vec<_> = calls
        .iter()
        .filter(|c| c.method == "chat.postMessage")
        .collect();
    assert_eq!(posts.len(), 2, "one refused, one accepted");
    let waited = posts[1].at - posts[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured: {waited:?}"
    );
    let last = final_message(&calls).unwrap();
    assert_eq!(
        last.args["blocks"][0]["text"]["text"],
        "Hello from the stand-in."
    );
}

#[tokio::test]
async fn a_long_answer_is_split_into_messages_with_code_blocks_closed_and_reopened() {
    let w = world("").await;
    let code: String = (0..200).map(|i| format!("let x{i} = {i};\n")).collect();
    let answer = format!("Here:\n\n```rust\n{code}```\n\nDone.");
    w.provider
        .then([Reply::OpenAiStream(vec![answer.clone()], (10, 10))]);
    w.event(&app_mention("Ev0LONG", "<@U0LAN0Z89> code please"))
        .await;
    let calls = w
        .api
        .wait_for("the answer", |c| final_message(c).is_some())
        .await;
    let posts: Vec<_> = calls
        .iter()
        .filter(|c| c.method == "chat.postMessage")
        .collect();
    assert!(posts.len() >= 2, "{:?}", fake_api::summary(&calls));
    let mut texts = Vec::new();
    for p in &posts {
        assert_eq!(p.args["thread_ts"], "1515449522.000016");
        let t = p.args["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(t.chars().count() <= 3000, "{}", t.len());
        assert_eq!(
            t.matches("```").count() % 2,
            0,
            "every message closes its code block: {t}"
        );
        texts.push(t);
    }
    assert!(texts[0].starts_with("Here:"));
    assert!(texts.last().unwrap().ends_with("Done."));
    // Only the last message carries the buttons.
    assert!(
        posts[..posts.len() - 1]
            .iter()
            .all(|p| p.args["blocks"].as_array().unwrap().len() == 1)
    );
}

#[tokio::test]
async fn feedback_buttons_a_changed_vote_reactions_and_the_comment_modal_are_recorded() {
    let w = world("").await;
    w.event(&app_mention("Ev0FB", "<@U0LAN0Z89> hi")).await;
    let calls = w
        .api
        .wait_for("the answer", |c| final_message(c).is_some())
        .await;
    let id = button_value(final_message(&calls).unwrap(), "switchboard_thumbs_up");
    let bot_ts = calls
        .iter()
        .find(|c| c.method == "chat.update")
        .map(|c| c.args["ts"].as_str().unwrap().to_string())
        .unwrap();

    // Slack's documented block_actions payload, with our button.
    let click = |action: &str, n: &str| {
        let url = format!("{}/respond/{n}", w.api.base);
        block_actions("UA8RXUSPL", "C123ABC456", &bot_ts, action, &id, url)
    };
    assert_eq!(
        w.interaction(&click("switchboard_thumbs_up", "a"))
            .await
            .status,
        200
    );
    w.api
        .wait_for("the thanks", |c| {
            c.iter().any(|c| c.method == "response_url:a")
        })
        .await;
    assert_eq!(
        w.feedback(&id).await,
        [(
            "thumbs".to_string(),
            Some(1.0),
            "button".to_string(),
            Some("slack:UA8RXUSPL".to_string())
        )]
    );

    // A 👎 replaces the vote and opens the comment modal.
    assert_eq!(
        w.interaction(&click("switchboard_thumbs_down", "b"))
            .await
            .status,
        200
    );
    let calls = w
        .api
        .wait_for("the thanks", |c| {
            c.iter().any(|c| c.method == "response_url:b")
        })
        .await;
    let thanks = calls.iter().find(|c| c.method == "response_url:b").unwrap();
    assert_eq!(thanks.args["response_type"], "ephemeral");
    assert_eq!(
        w.feedback(&id).await,
        [(
            "thumbs".to_string(),
            Some(0.0),
            "button".to_string(),
            Some("slack:UA8RXUSPL".to_string())
        )]
    );
    let open = calls
        .iter()
        .find(|c| c.method == "views.open")
        .expect("comment modal");
    assert_eq!(
        open.args["trigger_id"],
        "12321423423.333649436676.d8c1bb837935619ccad0f624c448ffb3"
    );
    let view = &open.args["view"];
    assert_eq!(view["private_metadata"], id.as_str());

    // Slack's documented view_submission: the modal as opened (title and
    // all), with its input filled in.
    let submit = json!({
        "type": "view_submission",
        "team": {"id": "T123ABC456", "domain": "example"},
        "user": {"id": "UA8RXUSPL", "username": "jtorrance", "name": "jtorrance", "team_id": "T123ABC456"},
        "api_app_id": "AAD3351BQ",
        "token": "9s8d9as89d8as9d8as989",
        "trigger_id": "12466734323.1395872398.c1bdb8e5a4a8d9a8d4f4d1e6f0d8c8a6",
        "view": {
            "id": "VMHU10V25",
            "team_id": "T123ABC456",
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "title": view["title"],
            "submit": view["submit"],
            "close": view["close"],
            "blocks": view["blocks"],
            "state": {"values": {"comment": {"comment": {"type": "plain_text_input", "value": "It ignored the question."}}}},
            "hash": "156663117.cd33ad1f",
            "root_view_id": "VMHU10V25",
            "app_id": "AAD3351BQ",
            "bot_id": "BA13894H"
        },
        "response_urls": []
    });
    let r = w.interaction(&submit).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.is_empty(),
        "an empty 200 closes the modal: {}",
        r.body
    );
    let rows = w.feedback(&id).await;
    assert!(
        rows.contains(&(
            "comment".to_string(),
            None,
            "modal".to_string(),
            Some("slack:UA8RXUSPL".to_string())
        )),
        "{rows:?}"
    );

    // Slack's documented reaction_added, on the bot's answer, by someone else.
    let reaction = json!({
        "token": "ZZZZZZWSxiZZZ2yIvs3peJ",
        "team_id": "T123ABC456",
        "type": "event_callback",
        "event_id": "Ev0REACT",
        "event_time": 1360782804,
        "event": {
            "type": "reaction_added",
            "user": "U123ABC456",
            "reaction": "thumbsup",
            "item_user": BOT_USER,
            "item": {"type": "message", "channel": "C123ABC456", "ts": bot_ts},
            "event_ts": "1360782804.083113"
        }
    });
    assert_eq!(w.event(&reaction).await.status, 200);
    let start = std::time::Instant::now();
    loop {
        let rows = w.feedback(&id).await;
        if rows.iter().any(|r| r.2 == "reaction") {
            assert!(
                rows.contains(&(
                    "thumbs".to_string(),
                    Some(1.0),
                    "reaction".to_string(),
                    Some("slack:U123ABC456".to_string())
                )),
                "{rows:?}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no reaction feedback: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_signed_command_or_click_replayed_within_the_signing_window_is_refused() {
    let w = world("[admin]\nhome_workspaces = [\"slack/T1DC2JH3J\"]").await;
    w.api.user("UADMIN", "ada", true);
    let registry = &w.harness.gateway.registry;
    // One signed `/prompt promote`, as captured off the wire.
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("team_id", "T1DC2JH3J")
        .append_pair("channel_id", "G8PSS9T3V")
        .append_pair("user_id", "UADMIN")
        .append_pair("command", "/prompt")
        .append_pair("text", "promote assistant 1 canary")
        .append_pair("response_url", &format!("{}/respond/cmd", w.api.base))
        .append_pair(
            "trigger_id",
            "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
        )
        .finish();
    let ts = now().to_string();
    let sig = sign(SECRET.as_bytes(), &ts, body.as_bytes());
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("x-slack-request-timestamp", ts.as_str()),
        ("x-slack-signature", sig.as_str()),
    ];
    let first = w.post("/slack/commands", &body, &headers).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json()["response_type"], "ephemeral");
    let changes = registry
        .history(Some("assistant"), 100)
        .await
        .unwrap()
        .len();
    let replay = w.post("/slack/commands", &body, &headers).await;
    assert_eq!(
        replay.status, 401,
        "a replayed command is refused: {}",
        replay.body
    );
    assert_eq!(
        registry
            .history(Some("assistant"), 100)
            .await
            .unwrap()
            .len(),
        changes,
        "the replay ran nothing"
    );
    // An interaction replayed the same way is refused too.
    let payload = block_actions(
        "UADMIN",
        "C123ABC456",
        "1700000000.000100",
        "switchboard_thumbs_up",
        &uuid::Uuid::now_v7().to_string(),
        format!("{}/respond/click", w.api.base),
    );
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish();
    let sig = sign(SECRET.as_bytes(), &ts, body.as_bytes());
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("x-slack-request-timestamp", ts.as_str()),
        ("x-slack-signature", sig.as_str()),
    ];
    assert_eq!(
        w.post("/slack/interactions", &body, &headers).await.status,
        200
    );
    assert_eq!(
        w.post("/slack/interactions", &body, &headers).await.status,
        401
    );
}

#[tokio::test]
async fn prompt_commands_answer_admins_ephemerally_and_refuse_others_with_nothing_changed() {
    // This workspace's admins administer the whole registry.
    let w = world("[admin]\nhome_workspaces = [\"slack/T1DC2JH3J\"]").await;
    w.api.user("UADMIN", "ada", true);
    w.api.user("UMEMBER", "mel", false);
    let registry = &w.harness.gateway.registry;
    let origin = gateway::Origin {
        platform: "slack".into(),
        ..Default::default()
    };
    let canary = gateway::domain::Selector::Label("canary".into());

    let list = w.command("UADMIN", "list").await;
    assert_eq!(list.status, 200);
    let list = list.json();
    assert_eq!(list["response_type"], "ephemeral");
    let shown = list["blocks"].to_string();
    assert!(shown.contains("assistant"), "{shown}");

    let refused = w
        .command("UMEMBER", "promote assistant 1 canary")
        .await
        .json();
    assert_eq!(refused["response_type"], "ephemeral");
    let text = refused["text"].as_str().unwrap();
    assert!(text.contains("slack:UMEMBER may not promote"), "{text}");
    assert!(
        registry
            .resolve("assistant", &canary, &origin)
            .await
            .is_err(),
        "a refused promote must change nothing"
    );

    let done = w
        .command("UADMIN", "promote assistant 1 canary")
        .await
        .json();
    assert_eq!(done["response_type"], "ephemeral", "{done}");
    let resolved = registry
        .resolve("assistant", &canary, &origin)
        .await
        .unwrap();
    assert_eq!(resolved.version(), 1);

    let usage = w.command("UADMIN", "frobnicate").await.json();
    assert!(
        usage["text"].as_str().unwrap().contains("/prompt list"),
        "{usage}"
    );
}

/// A minimal prompt named `name`.
fn named_prompt(name: &str) -> prompts::Prompt {
    prompts::Prompt::from_toml(
        &format!("{name}.toml"),
        &format!(
            "name = \"{name}\"\nmodel = \"default\"\n[[messages]]\nrole = \"system\"\ntemplate = \"{name}\"\n\
             [[messages]]\nrole = \"user\"\ntemplate = \"{{{{ text }}}}\"\n"
        ),
    )
    .expect("test prompt parses")
}

#[tokio::test]
async fn a_workspace_admins_rights_reach_only_their_workspace_and_strangers_carry_none() {
    let w = world("").await;
    // UADMIN administers T1DC2JH3J, where the commands are typed; UGUEST
    // administers another organization and is here through a shared channel.
    w.api.user("UADMIN", "ada", true);
    w.api.stranger("UGUEST", "gus", "T0OTHERORG", true);
    let registry = &w.harness.gateway.registry;
    // `shared` answers in another workspace; `ours` is bound nowhere.
    for name in ["shared", "ours"] {
        registry
            .save(
                "cli:ops",
                "create",
                &named_prompt(name),
                "made",
                None,
                Some("production"),
            )
            .await
            .unwrap();
    }
    registry
        .bind(
            "cli:ops",
            &gateway::registry::Scope::parse("slack/T0OTHERORG/C9").unwrap(),
            Some(("shared", "production")),
        )
        .await
        .unwrap();
    let bindings = registry.bindings();

    for (user, text, why) in [
        (
            "UADMIN",
            "bind global ours",
            "`global` is outside your workspace",
        ),
        (
            "UADMIN",
            "bind slack/T0OTHERORG ours",
            "outside your workspace",
        ),
        (
            "UADMIN",
            "unbind slack/T0OTHERORG/C9",
            "outside your workspace",
        ),
        ("UADMIN", "promote shared 1 canary", "`shared` is shared"),
        ("UADMIN", "promote assistant 1 canary", "default prompt"),
        ("UGUEST", "bind here ours", "slack:UGUEST may not bind"),
    ] {
        let r = w.command(user, text).await.json();
        assert_eq!(r["response_type"], "ephemeral", "{r}");
        let answer = r["text"].as_str().unwrap_or_default();
        assert!(answer.starts_with('✋'), "{text}: {answer}");
        assert!(answer.contains(why), "{text}: {answer}");
    }
    assert_eq!(registry.bindings(), bindings, "nothing moved");
    let canary = gateway::domain::Selector::Label("canary".into());
    let origin = gateway::Origin {
        platform: "slack".into(),
        ..Default::default()
    };
    assert!(
        registry
            .resolve("assistant", &canary, &origin)
            .await
            .is_err()
    );
    let history = registry.history(None, 100).await.unwrap();
    let refused: Vec<_> = history.iter().filter(|a| a.outcome == "refused").collect();
    assert_eq!(refused.len(), 6, "every refusal is audited: {refused:?}");
    assert!(refused.iter().any(|a| a.actor == "slack:UGUEST"));

    // Inside their own workspace the admin binds, and moves labels only it uses.
    for text in [
        "bind here ours",
        "bind slack/T1DC2JH3J shared",
        "promote ours 1 canary",
    ] {
        let r = w.command("UADMIN", text).await.json();
        let answer = r["text"].as_str().unwrap_or_default();
        assert!(!answer.starts_with('✋'), "{text}: {r}");
    }
    let here = gateway::Origin {
        platform: "slack".into(),
        workspace: Some("T1DC2JH3J".into()),
        channel: Some("G8PSS9T3V".into()),
        ..Default::default()
    };
    let resolved = registry.resolve_bound(&here).await.unwrap();
    assert_eq!(resolved.name(), "ours");
}

#[tokio::test]
async fn a_slow_prompt_command_is_acknowledged_then_answered_through_response_url() {
    let w = world("").await;
    w.api.user("UADMIN", "ada", true);
    // The model takes longer than the inline wait (1.5 s here).
    w.provider.then([Reply::Hang]);
    w.provider.always(Reply::text("A tested answer."));
    let r = w
        .command("UADMIN", "test assistant -- what is 2+2?")
        .await
        .json();
    assert_eq!(r["response_type"], "ephemeral");
    assert!(
        r["text"].as_str().unwrap().contains("Working on it"),
        "the slow command was answered inline: {r}"
    );
    let calls = w
        .api
        .wait_for("the answer through response_url", |c| {
            c.iter().any(|c| c.method == "response_url:cmd")
        })
        .await;
    let answer = calls
        .iter()
        .find(|c| c.method == "response_url:cmd")
        .unwrap();
    assert_eq!(answer.args["response_type"], "ephemeral");
    assert!(
        answer.args.to_string().contains("A tested answer."),
        "{}",
        answer.args
    );
}

/// Signing headers for `body`, as Slack sends them, with a retry number.
fn signed_headers(body: &str, retry: Option<&'static str>) -> Vec<(&'static str, String)> {
    let ts = now().to_string();
    let sig = sign(SECRET.as_bytes(), &ts, body.as_bytes());
    let mut h = vec![
        ("content-type", "application/json".to_string()),
        ("x-slack-request-timestamp", ts),
        ("x-slack-signature", sig),
    ];
    if let Some(n) = retry {
        h.push(("x-slack-retry-num", n.to_string()));
        h.push(("x-slack-retry-reason", "http_timeout".to_string()));
    }
    h
}

#[tokio::test]
async fn an_event_delivered_to_two_replicas_sharing_redis_gets_one_reply() {
    let redis = support::redis::redis_section(&support::redis::shared_url(), "closed");
    let w = world(&redis).await;
    let (_other, other_url) = replica(&w.provider, &w.api, &redis).await;
    let body = app_mention("Ev0REPLICAS", "<@U0LAN0Z89> hi").to_string();
    for (base, retry) in [
        (&w.url, None),
        (&other_url, Some("1")),
        (&other_url, Some("2")),
    ] {
        let headers = signed_headers(&body, retry);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = w.post_to(base, "/slack/events", &body, &headers).await;
        assert_eq!(r.status, 200);
    }
    w.api
        .wait_for("the answer", |c| final_message(c).is_some())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.api.calls_of("chat.postMessage").len(), 1);
    assert_eq!(w.provider.received().len(), 1);
}

/// The config and its secrets: (bot token, signing secret, app token).
type Parsed = Option<(SlackConfig, (String, Option<String>, Option<String>))>;

fn slack_config(section: &str, env: &[(&str, &str)]) -> Result<Parsed, String> {
    let config = gateway::Config::from_parts(
        "test",
        section,
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .map_err(|e| e.to_string())?;
    match SlackConfig::from_config(&config).map_err(|e| e.to_string())? {
        Some(c) => {
            let s = c.secrets(&config.env).map_err(|e| e.to_string())?;
            Ok(Some((c, (s.bot_token, s.signing_secret, s.app_token))))
        }
        None => Ok(None),
    }
}

#[test]
fn the_example_files_slack_section_is_valid_once_uncommented() {
    let example = include_str!("../../../../switchboard.example.toml");
    let section = &example[example.find("#[slack]").expect("a [slack] section")..];
    let text: String = section
        .lines()
        .filter(|l| !l.starts_with("##"))
        .map(|l| l.strip_prefix('#').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let env = [
        ("SLACK_BOT_TOKEN", "xoxb-1"),
        ("SLACK_SIGNING_SECRET", "s3"),
    ];
    let (config, secrets) = slack_config(&text, &env).unwrap().expect("[slack] is read");
    assert_eq!(config.api_base, super::DEFAULT_API_BASE);
    assert_eq!(config.updates_per_minute, 50);
    assert_eq!(
        secrets,
        ("xoxb-1".to_string(), Some("s3".to_string()), None)
    );
    assert!(
        slack_config("", &[]).unwrap().is_none(),
        "no [slack], no adapter"
    );
}

#[test]
fn slack_config_errors_name_the_key_and_the_fix() {
    let base = "[slack]\nbot_token_env = \"T\"\nsigning_secret_env = \"S\"\n";
    let e = slack_config(&format!("{base}tokn_env = \"X\"\n"), &[]).unwrap_err();
    assert!(
        e.contains("unknown field `tokn_env`") && e.contains("switchboard.example.toml"),
        "{e}"
    );
    let e = slack_config(base, &[("T", "xoxb")]).unwrap_err();
    assert!(
        e.contains("slack.signing_secret_env") && e.contains("`S`"),
        "{e}"
    );
    let e = slack_config(
        &format!("{base}app_token_env = \"A\"\n"),
        &[("T", "xoxb"), ("S", "s")],
    )
    .unwrap_err();
    assert!(
        e.contains("slack.app_token_env") && e.contains("`A`"),
        "{e}"
    );
    let e = slack_config("[slack]\nbot_token_env = \"T\"\n", &[]).unwrap_err();
    assert!(
        e.contains("slack.signing_secret_env") && e.contains("Socket Mode"),
        "{e}"
    );
    // Socket Mode needs no signing secret.
    let (_, secrets) = slack_config(
        "[slack]\nbot_token_env = \"T\"\napp_token_env = \"A\"\n",
        &[("T", "xoxb-1"), ("A", "xapp-1")],
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        secrets,
        ("xoxb-1".to_string(), None, Some("xapp-1".to_string()))
    );
    let e = slack_config(&format!("{base}api_base = \"slack.com\"\n"), &[]).unwrap_err();
    assert!(e.contains("slack.api_base"), "{e}");
    let e = slack_config("[slack]\nsigning_secret_env = \"S\"\n", &[]).unwrap_err();
    assert!(e.contains("bot_token_env"), "{e}");
}

#[tokio::test]
async fn a_rate_limited_user_is_told_in_the_thread_and_a_failed_model_is_reported_without_buttons()
{
    let w = world("[limits.user]\nrequests_per_minute = 1\n").await;
    w.event(&app_mention("Ev0FIRST", "<@U0LAN0Z89> one")).await;
    w.api
        .wait_for("the first answer", |c| final_message(c).is_some())
        .await;
    let mut second = app_mention("Ev0SECOND", "<@U0LAN0Z89> two");
    second["event"]["ts"] = json!("1515449600.000001");
    // With an image: a refused question must not download it.
    let png = w.api.file("refused.png", b"stand-in png bytes");
    second["event"]["files"] = json!([
        { "id": "F0S43PZDH", "name": "refused.png", "title": "refused.png",
          "mimetype": "image/png", "filetype": "png", "size": 18, "url_private": png }
    ]);
    w.event(&second).await;
    let calls = w
        .api
        .wait_for("the refusal", |c| {
            c.iter().any(|c| {
                c.method == "chat.postMessage" && c.args["thread_ts"] == "1515449600.000001"
            })
        })
        .await;
    let refusal = calls
        .iter()
        .find(|c| c.method == "chat.postMessage" && c.args["thread_ts"] == "1515449600.000001")
        .unwrap();
    let text = refusal.args["text"].as_str().unwrap();
    assert!(
        text.contains("requests per minute") || text.contains("rate limit"),
        "{text}"
    );
    assert_eq!(
        w.provider.received().len(),
        1,
        "the refused question never reached the model"
    );
    assert!(
        w.api.file_auth().is_empty(),
        "the refused question's image was not downloaded"
    );

    // A model that keeps failing: the thread says so, and offers no buttons.
    let w = world("").await;
    w.provider.always(Reply::Status(
        500,
        support::standin::openai_error("The server had an error", "server_error"),
        vec![],
    ));
    w.event(&app_mention("Ev0FAIL", "<@U0LAN0Z89> hi")).await;
    let calls = w
        .api
        .wait_for("the failure notice", |c| {
            c.iter()
                .any(|c| c.args.to_string().contains("Sorry, I could not answer"))
        })
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        final_message(&calls).is_none(),
        "{:?}",
        fake_api::summary(&calls)
    );
}

/// A message with an image and a PDF: for a text-only alias the answer
/// says neither was read; for an alias with `vision = true` the image,
/// fetched with the bot token, goes to the model and only the PDF is
/// named as unread.
#[tokio::test]
async fn attached_images_reach_vision_models_and_other_files_are_named_unread() {
    for vision in [false, true] {
        let provider = StandIn::start().await;
        let api = FakeSlack::start().await;
        let mut toml = support::one_provider(&provider.url);
        if vision {
            toml = toml.replace(
                "targets = [\"primary/gpt-test\"]",
                "targets = [\"primary/gpt-test\"]\nvision = true",
            );
        }
        let (harness, url) = replica_toml(&api, &toml, "").await;
        let w = World {
            harness,
            provider,
            api,
            url,
            client: reqwest::Client::new(),
        };
        let png = w.api.file("diagram.png", b"stand-in png bytes");
        let pdf = w.api.file("notes.pdf", b"%PDF-1.7");
        let mut mention = app_mention("Ev0FILES", "<@U0LAN0Z89> what is in this?");
        mention["event"]["files"] = json!([
            { "id": "F0S43PZDF", "name": "diagram.png", "title": "diagram.png",
              "mimetype": "image/png", "filetype": "png", "size": 18, "url_private": png },
            { "id": "F0S43PZDG", "name": "notes.pdf", "title": "notes.pdf",
              "mimetype": "application/pdf", "filetype": "pdf", "size": 8, "url_private": pdf }
        ]);
        w.event(&mention).await;
        let calls = w
            .api
            .wait_for("the answer", |c| final_message(c).is_some())
            .await;
        let text = final_message(&calls).unwrap().args["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .to_string();
        let question = w.provider.received()[0].question();
        if vision {
            assert_eq!(
                text,
                "Hello from the stand-in.\n\n_(the attached file was not read: answering from the text only)_",
                "only the PDF went unread"
            );
            let expected =
                gateway::Image::from_bytes("image/png", "diagram.png", b"stand-in png bytes")
                    .unwrap()
                    .data_url();
            assert_eq!(question["content"][1]["image_url"]["url"], json!(expected));
            assert_eq!(w.api.file_auth(), vec![format!("Bearer {TOKEN}")]);
        } else {
            assert_eq!(
                text,
                "Hello from the stand-in.\n\n_(the 2 attached files were not read: answering from the text only)_"
            );
            assert!(question["content"].is_string(), "{question}");
        }
    }
}

#[tokio::test]
async fn a_long_thread_is_trimmed_to_the_newest_messages_within_the_configured_budget() {
    // (limits, the earlier messages the model is given)
    let cases: [(&str, &[&str]); 2] = [
        (
            "history_messages = 3\n",
            &["message 3", "al: message 4", "message 5"],
        ),
        ("history_chars = 30\n", &["al: message 4", "message 5"]),
    ];
    for (limits, expected) in cases {
        let w = world_with("", limits).await;
        w.api.user("U111", "al", false);
        let parent = "1700000000.000100";
        let mut messages = Vec::new();
        for i in 0..6 {
            let ts = format!("1700000000.{:06}", 100 + i * 100);
            let user = if i % 2 == 1 { BOT_USER } else { "U111" };
            messages.push(json!({"type": "message", "user": user, "text": format!("message {i}"), "ts": ts, "thread_ts": parent}));
        }
        w.api.thread(parent, messages);
        let mut mention = app_mention("Ev0TRIM", "<@U0LAN0Z89> and now?");
        mention["event"]["ts"] = json!("1700000000.000700");
        mention["event"]["thread_ts"] = json!(parent);
        w.event(&mention).await;
        w.api
            .wait_for("the answer", |c| final_message(c).is_some())
            .await;
        let sent = w.provider.received()[0].body["messages"].clone();
        let contents: Vec<&str> = sent
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] != "system")
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        let mut want = expected.to_vec();
        want.push("and now?");
        assert_eq!(contents, want, "{limits}");
    }
}

#[tokio::test]
async fn where_chat_streaming_exists_the_answer_streams_into_one_message_with_buttons_at_the_stop()
{
    let w = world("").await;
    w.api.enable_streaming();
    let answer = "The **pearl** hour is `6 & 7`.\n\n".repeat(40);
    w.provider
        .then([Reply::OpenAiStream(split(&answer), (20, 400))]);
    w.event(&app_mention("Ev0STREAM", "<@U0LAN0Z89> when?"))
        .await;
    let calls = w
        .api
        .wait_for("the stopped stream", |c| {
            c.iter().any(|c| c.method == "chat.stopStream")
        })
        .await;
    let start = &w.api.calls_of("chat.startStream")[0];
    assert_eq!(start.args["channel"], "C123ABC456");
    assert_eq!(start.args["thread_ts"], "1515449522.000016");
    assert_eq!(start.args["recipient_user_id"], "U123ABC456");
    assert!(
        !w.api.calls_of("chat.appendStream").is_empty(),
        "a long answer is appended as it comes: {:?}",
        fake_api::summary(&calls)
    );
    assert!(
        w.api.calls_of("chat.postMessage").is_empty() && w.api.calls_of("chat.update").is_empty(),
        "{:?}",
        fake_api::summary(&calls)
    );
    // The thread shows the whole answer, as Markdown (Slack renders it).
    let ts = start_ts(&w).await;
    assert_eq!(w.api.message_text(&ts).unwrap(), answer);
    // The buttons come with the stop and carry the recorded inference.
    let stop = &w.api.calls_of("chat.stopStream")[0];
    let id = button_value(stop, "switchboard_thumbs_up");
    assert_eq!(w.harness.row(&id).await.platform, "slack");
    assert_eq!(stop.args["metadata"]["event_payload"]["inference_id"], id);
}

#[tokio::test]
async fn a_streamed_answer_pings_no_one_even_across_pieces() {
    let w = world("").await;
    w.api.enable_streaming();
    let pieces: Vec<String> = ["Tell <", "!channel> and <", "@U0LAN0Z89> in <#C1|x>."]
        .map(String::from)
        .to_vec();
    w.provider.then([Reply::OpenAiStream(pieces, (5, 10))]);
    w.event(&app_mention("Ev0PINGS", "<@U0LAN0Z89> announce"))
        .await;
    w.api
        .wait_for("the stopped stream", |c| {
            c.iter().any(|c| c.method == "chat.stopStream")
        })
        .await;
    let text = w.api.message_text(&start_ts(&w).await).unwrap();
    for mention in ["<!", "<@", "<#"] {
        assert!(!text.contains(mention), "{mention} reached Slack: {text:?}");
    }
    assert_eq!(
        text.replace('\u{200B}', ""),
        "Tell <!channel> and <@U0LAN0Z89> in <#C1|x>.",
        "the text reads the same"
    );
}

/// The `ts` of the streamed message.
async fn start_ts(w: &World) -> String {
    let stop = &w.api.calls_of("chat.stopStream")[0];
    stop.args["ts"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn where_chat_streaming_is_refused_answers_are_edited_and_the_workspace_is_remembered() {
    let w = world("").await;
    w.api.refuse_streaming("not_allowed_token_type");
    w.provider
        .then([Reply::text("First answer."), Reply::text("Second answer.")]);
    w.event(&app_mention("Ev0NOSTREAM1", "<@U0LAN0Z89> one"))
        .await;
    w.api
        .wait_for("the first answer", |c| final_message(c).is_some())
        .await;
    let first = final_message(&w.api.calls()).unwrap().args["text"].clone();
    assert_eq!(first, "First answer.");
    let mut second = app_mention("Ev0NOSTREAM2", "<@U0LAN0Z89> two");
    second["event"]["ts"] = json!("1515449600.000001");
    w.event(&second).await;
    w.api
        .wait_for("the second answer", |c| {
            c.iter()
                .filter(|c| final_message(std::slice::from_ref(c)).is_some())
                .count()
                == 2
        })
        .await;
    assert_eq!(
        w.api.calls_of("chat.startStream").len(),
        1,
        "a refused workspace is not asked again"
    );
    assert_eq!(w.api.calls_of("chat.postMessage").len(), 2);
}

/// The "done when" of retrieval, in Slack: a folder ingested, a prompt with
/// `[retrieval]` bound globally, and a mention answered from the document
/// with the cited source listed under the answer.
#[tokio::test]
async fn an_answer_from_the_teams_documents_lists_its_sources() {
    let models = switchboard_embedded::default_models_dir()
        .expect("set SWITCHBOARD_MODEL_CACHE or HOME")
        .display()
        .to_string();
    let w = world(&format!("[knowledge]\nmodels_dir = {models:?}")).await;
    let docs = tempfile::tempdir().unwrap();
    let root = docs.path().join("handbook");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("retry.md"),
        "# Retry policy\n\n## Attempts\n\nA failed call is retried three times, with exponential backoff.\n",
    )
    .unwrap();
    std::fs::write(
        root.join("lunch.md"),
        "# Lunch\n\nLunch is at noon in the kitchen.\n",
    )
    .unwrap();
    let gw = &w.harness.gateway;
    gw.knowledge
        .ingest_files("handbook", "global", &[root], &mut |_| {})
        .await
        .unwrap();
    let prompt = prompts::Prompt::from_toml(
        "handbook.toml",
        "name = \"handbook\"\n[retrieval]\nsources = [\"handbook\"]\ntop_k = 2\n\
         [[messages]]\nrole = \"system\"\ntemplate = \"Cite as [n]:\\n{{ documents }}\"\n\
         [[messages]]\nrole = \"user\"\ntemplate = \"{{ text }}\"\n",
    )
    .unwrap();
    gw.registry
        .save("test", "create", &prompt, "m", None, Some("production"))
        .await
        .unwrap();
    gw.registry
        .bind(
            "test",
            &gateway::registry::Scope::parse("global").unwrap(),
            Some(("handbook", "production")),
        )
        .await
        .unwrap();
    w.provider.then([Reply::text("We retry three times [1].")]);
    let r = w
        .event(&app_mention(
            "Ev0RAG",
            "<@U0LAN0Z89> what does our retry policy say?",
        ))
        .await;
    assert_eq!(r.status, 200);
    let calls = w
        .api
        .wait_for("the finished answer", |c| final_message(c).is_some())
        .await;
    let text = final_message(&calls).unwrap().args["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.starts_with("We retry three times [1]."), "{text}");
    assert!(
        text.contains("*Sources*\n[1] Retry policy › Attempts · `"),
        "{text}"
    );
    assert!(text.contains("retry.md#attempts`"), "{text}");
    assert!(!text.contains("Lunch"), "{text}");
    // The model was given the document.
    let system = w.provider.received()[0].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(system.contains("retried three times"), "{system}");
}

/// Saves the assistant prompt's production version changed by `change`
/// as its new production version; its number.
async fn edit_assistant(harness: &Harness, change: impl FnOnce(&mut prompts::Prompt)) -> i64 {
    let registry = &harness.gateway.registry;
    let (_, mut assistant) = registry
        .version(
            "assistant",
            &gateway::domain::Selector::Label("production".into()),
        )
        .await
        .expect("the assistant prompt");
    change(&mut assistant);
    registry
        .save(
            "test",
            "edit",
            &assistant,
            "edited in a test",
            Some(assistant.version),
            Some("production"),
        )
        .await
        .expect("saved")
}

#[tokio::test]
async fn a_mention_asking_the_time_in_tokyo_is_answered_through_the_mcp_time_server() {
    let w = world(&format!(
        "[tools.time]\ncommand = \"{}\"\nargs = [\"--local-timezone\", \"UTC\"]\n",
        testkit::mcp::server_time()
    ))
    .await;
    // The assistant prompt, with the time tool, in production.
    edit_assistant(&w.harness, |p| p.tools = vec!["time".into()]).await;
    w.provider.then([
        Reply::tool_call(
            "call_tokyo",
            "get_current_time",
            r#"{"timezone":"Asia/Tokyo"}"#,
        ),
        Reply::OpenAiStream(split("It is morning in Tokyo."), (90, 6)),
    ]);
    let r = w
        .event(&app_mention(
            "Ev0TOKYO",
            "<@U0LAN0Z89> what time is it in Tokyo?",
        ))
        .await;
    assert_eq!(r.status, 200);
    let calls = w
        .api
        .wait_for("the finished answer", |c| final_message(c).is_some())
        .await;
    let last = final_message(&calls).expect("the answer");
    assert!(
        last.args["text"]
            .as_str()
            .is_some_and(|t| t.contains("It is morning in Tokyo.")),
        "{:?}",
        last.args
    );
    // The model got the real server's answer for its call.
    let second = &w.provider.received()[1].body;
    let result = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("the tool's result");
    assert_eq!(result["tool_call_id"], "call_tokyo");
    let time: Value = serde_json::from_str(result["content"].as_str().unwrap()).expect("JSON");
    assert_eq!(time["timezone"], "Asia/Tokyo", "{result}");
    // And the call is recorded with the answer.
    let id = button_value(last, "switchboard_thumbs_up");
    let row = w.harness.row(&id).await;
    let runs: Value =
        serde_json::from_str(row.tool_calls.as_deref().expect("tool calls recorded")).unwrap();
    assert_eq!(runs[0]["name"], "get_current_time");
    assert_eq!(runs[0]["arguments"], r#"{"timezone":"Asia/Tokyo"}"#);
}

/// The answer's last message: the one with the feedback buttons (the
/// approval request has buttons of its own).
fn answered(calls: &[fake_api::Call]) -> Option<&fake_api::Call> {
    calls.iter().find(|c| {
        (c.method == "chat.update"
            || c.method == "chat.postMessage"
            || c.method == "chat.stopStream")
            && c.args.to_string().contains("switchboard_feedback")
    })
}

/// A world whose assistant prompt offers the test server's `touch`, a tool
/// that asks first; `mark` is the file it creates when it runs.
async fn careful_world(mark: &std::path::Path, confirm_timeout_ms: u64) -> World {
    let (python, script) = (testkit::mcp::python(), testkit::mcp::test_server());
    let provider = StandIn::start().await;
    let api = FakeSlack::start().await;
    let toml = format!(
        "{}\n[tools.careful]\ncommand = {python:?}\nargs = [{script:?}]\nenv = [\"MARK_FILE\"]\nconfirm = true\n[tool_loop]\nconfirm_timeout_ms = {confirm_timeout_ms}\n",
        support::one_provider(&provider.url)
    );
    let mark = mark.display().to_string();
    let (harness, url) = replica_env(&api, &toml, "", &[("MARK_FILE", &mark)]).await;
    edit_assistant(&harness, |p| p.tools = vec!["careful.touch".into()]).await;
    provider.then([
        Reply::tool_call("call_touch", "touch", "{}"),
        Reply::OpenAiStream(split("Done."), (60, 2)),
    ]);
    World {
        harness,
        provider,
        api,
        url,
        client: reqwest::Client::new(),
    }
}

/// `user` clicks `action` on approval request `id`; what the click's
/// `response_url` (number `n`) was answered with.
async fn click(w: &World, user: &str, action: &str, id: &str, n: u32) -> Value {
    let payload = block_actions(
        user,
        "C123ABC456",
        "1.2",
        action,
        id,
        format!("{}/respond/{n}", w.api.base),
    );
    assert_eq!(w.interaction(&payload).await.status, 200);
    let method = format!("response_url:{n}");
    w.api
        .wait_for("the click's answer", |c| {
            c.iter().any(|c| c.method == method)
        })
        .await
        .into_iter()
        .find(|c| c.method == method)
        .map(|c| c.args)
        .expect("answered")
}

/// The Approve / Deny message of a tool's request, once posted.
async fn approval_request(w: &World) -> fake_api::Call {
    w.api
        .wait_for("the tool's approval request", |calls| {
            calls.iter().any(|c| {
                c.method == "chat.postMessage"
                    && c.args.to_string().contains(super::blocks::TOOL_APPROVE)
            })
        })
        .await
        .into_iter()
        .find(|c| {
            c.method == "chat.postMessage"
                && c.args.to_string().contains(super::blocks::TOOL_APPROVE)
        })
        .expect("posted")
}

#[tokio::test]
async fn a_tool_that_asks_first_runs_only_once_the_asker_approves_in_the_thread() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("ran");
    let w = careful_world(&mark, 5000).await;
    let r = w
        .event(&app_mention("Ev0CAREFUL", "<@U0LAN0Z89> touch the file"))
        .await;
    assert_eq!(r.status, 200);
    let request = approval_request(&w).await;
    assert_eq!(request.args["thread_ts"], "1515449522.000016");
    let shown = request.args["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(shown.contains("*touch* asks to run with:"), "{shown}");
    let id = request.args["blocks"][1]["elements"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();

    // Someone else's click is refused, privately, and nothing runs.
    let told = click(&w, "U0STRANGER", super::blocks::TOOL_APPROVE, &id, 1).await;
    assert!(
        told["text"]
            .as_str()
            .unwrap()
            .contains("only the person who asked"),
        "{told}"
    );
    assert_eq!(told["response_type"], "ephemeral");
    assert!(!mark.exists());

    // The asker approves: the tool runs, and the answer comes.
    let approved = click(&w, "U123ABC456", super::blocks::TOOL_APPROVE, &id, 2).await;
    assert_eq!(approved["text"], "✅ Approved by <@U123ABC456>.");
    let calls = w
        .api
        .wait_for("the finished answer", |c| answered(c).is_some())
        .await;
    let last = answered(&calls).unwrap();
    let row = w
        .harness
        .row(&button_value(last, "switchboard_thumbs_up"))
        .await;
    assert!(mark.exists(), "the approved tool ran: {:?}", row.tool_calls);
    let runs: Value = serde_json::from_str(row.tool_calls.as_deref().unwrap()).unwrap();
    assert_eq!(runs[0]["approval"], "approved");
}

#[tokio::test]
async fn a_denied_tool_is_never_run_and_the_model_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("ran");
    let w = careful_world(&mark, 5000).await;
    w.event(&app_mention("Ev0DENY", "<@U0LAN0Z89> touch the file"))
        .await;
    let request = approval_request(&w).await;
    let id = request.args["blocks"][1]["elements"][1]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let denied = click(&w, "U123ABC456", super::blocks::TOOL_DENY, &id, 3).await;
    assert_eq!(denied["text"], "🚫 Denied by <@U123ABC456>.");
    w.api
        .wait_for("the finished answer", |c| answered(c).is_some())
        .await;
    assert!(!mark.exists(), "a denied tool never runs");
    let told = &w.provider.received()[1].body;
    let result = told["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap();
    assert!(
        result["content"]
            .as_str()
            .unwrap()
            .contains("the asker denied it"),
        "{result}"
    );
    // A second click changes nothing.
    let late = click(&w, "U123ABC456", super::blocks::TOOL_APPROVE, &id, 4).await;
    assert!(
        late["text"].as_str().unwrap().contains("no longer waiting"),
        "{late}"
    );
    assert!(!mark.exists());
}

#[tokio::test]
async fn an_unanswered_approval_times_out_as_denied() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("ran");
    let w = careful_world(&mark, 300).await;
    w.event(&app_mention("Ev0SILENT", "<@U0LAN0Z89> touch the file"))
        .await;
    approval_request(&w).await;
    w.api
        .wait_for("the finished answer", |c| answered(c).is_some())
        .await;
    assert!(!mark.exists(), "no answer is no approval");
    let told = &w.provider.received()[1].body;
    let result = told["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap();
    assert!(
        result["content"]
            .as_str()
            .unwrap()
            .contains("did not approve it in time"),
        "{result}"
    );
}

/// The stop that carries the answer's buttons, once there is one.
async fn stopped_with_buttons(w: &World) -> fake_api::Call {
    let has_buttons = |c: &fake_api::Call| {
        c.method == "chat.stopStream"
            && c.args["blocks"]
                .to_string()
                .contains("switchboard_thumbs_up")
    };
    w.api
        .wait_for("the answer's last stop", |calls| {
            calls.iter().any(has_buttons)
        })
        .await
        .into_iter()
        .find(has_buttons)
        .expect("stopped")
}

#[tokio::test]
async fn a_streamed_answer_longer_than_a_message_goes_on_in_follow_up_messages() {
    let w = world("").await;
    w.api.enable_streaming();
    w.api.limit_streamed_chars(500);
    let answer = "The **pearl** hour is `6 & 7`.\n\n".repeat(40);
    w.provider
        .then([Reply::OpenAiStream(split(&answer), (20, 400))]);
    w.event(&app_mention("Ev0LONGSTREAM", "<@U0LAN0Z89> when?"))
        .await;
    let stop = stopped_with_buttons(&w).await;
    let starts = w.api.calls_of("chat.startStream");
    assert!(
        starts.len() >= 3,
        "{} characters in messages of at most 500: {:?}",
        answer.len(),
        fake_api::summary(&w.api.calls())
    );
    // No text is lost: the messages read as the whole answer, in order.
    let texts = w.api.bot_texts("1515449522.000016");
    assert_eq!(texts.concat(), answer);
    assert!(texts.iter().all(|t| t.chars().count() <= 500), "{texts:?}");
    // Every part is the same answer's, and the last carries the buttons.
    let id = button_value(&stop, "switchboard_thumbs_up");
    assert_eq!(w.harness.row(&id).await.platform, "slack");
}

#[tokio::test]
async fn a_stream_slack_closed_midway_goes_on_in_a_new_message() {
    let w = world("").await;
    w.api.enable_streaming();
    let pieces: Vec<String> = (0..12).map(|i| format!("part {i}. ")).collect();
    w.provider.then([Reply::OpenAiSlow(
        pieces.clone(),
        Duration::from_millis(120),
    )]);
    w.event(&app_mention("Ev0CLOSED", "<@U0LAN0Z89> go slowly"))
        .await;
    w.api
        .wait_for("the stream", |c| {
            c.iter().any(|c| c.method == "chat.startStream")
        })
        .await;
    // Slack ends the stream a few minutes in: here, at once.
    w.api.close_open_streams();
    let stop = stopped_with_buttons(&w).await;
    assert!(
        w.api.calls_of("chat.startStream").len() >= 2,
        "{:?}",
        fake_api::summary(&w.api.calls())
    );
    assert_eq!(
        w.api.bot_texts("1515449522.000016").concat(),
        pieces.concat()
    );
    let id = button_value(&stop, "switchboard_thumbs_up");
    assert_eq!(w.harness.row(&id).await.platform, "slack");
}

/// Slack's documented `assistant_thread_started` (or `_context_changed`)
/// event: the user opened the assistant pane in their DM with the bot
/// while looking at channel `context`.
fn assistant_thread(event_id: &str, kind: &str, context: &str) -> Value {
    json!({
        "token": "ZZZZZZWSxiZZZ2yIvs3peJ",
        "team_id": "T123ABC456",
        "api_app_id": "A123ABC456",
        "event": {
            "type": kind,
            "assistant_thread": {
                "user_id": "U123ABC456",
                "context": {"channel_id": context, "team_id": "T123ABC456", "enterprise_id": "E480293PS82"},
                "channel_id": "D1234567890",
                "thread_ts": "1729999327.187299"
            },
            "event_ts": "1715873754.429808"
        },
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1715873754
    })
}

/// A user's message in the assistant thread (`message.im` with its
/// `thread_ts`).
fn assistant_message(event_id: &str, text: &str) -> Value {
    json!({
        "token": "ZZZZZZWSxiZZZ2yIvs3peJ",
        "team_id": "T123ABC456",
        "api_app_id": "A123ABC456",
        "event": {
            "type": "message",
            "channel": "D1234567890",
            "user": "U123ABC456",
            "text": text,
            "ts": "1729999400.000100",
            "thread_ts": "1729999327.187299",
            "event_ts": "1729999400.000100",
            "channel_type": "im"
        },
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1729999400
    })
}

#[tokio::test]
async fn an_assistant_thread_gets_its_versions_suggestions_a_status_an_answer_and_a_title() {
    let w = world("").await;
    // The bound version's [assistant] table: greeting and suggestions.
    let v = edit_assistant(&w.harness, |p| {
        p.assistant = Some(prompts::AssistantPane {
            greeting: Some("Hello from version two.".into()),
            title: Some("Try one of these".into()),
            prompts: vec![
                prompts::SuggestedPrompt {
                    title: "Summarize this channel".into(),
                    message: "Summarize what happened here today.".into(),
                },
                prompts::SuggestedPrompt {
                    title: "Our retry policy".into(),
                    message: "What does our retry policy say?".into(),
                },
            ],
        });
    })
    .await;
    // A binding on the channel the user looks at gives another prompt.
    w.harness
        .gateway
        .registry
        .save(
            "test",
            "create",
            &named_prompt("engineering"),
            "for #eng",
            None,
            Some("production"),
        )
        .await
        .expect("saved");
    w.harness
        .gateway
        .registry
        .bind(
            "test",
            &gateway::registry::Scope::Channel {
                platform: "slack".into(),
                workspace: "T123ABC456".into(),
                channel: "C0ENG".into(),
            },
            Some(("engineering", "production")),
        )
        .await
        .expect("bound");
    assert!(v >= 2);

    let r = w
        .event(&assistant_thread(
            "Ev0STARTED",
            "assistant_thread_started",
            "C0GENERAL",
        ))
        .await;
    assert_eq!(r.status, 200);
    let calls = w
        .api
        .wait_for("the suggestions", |c| {
            c.iter()
                .any(|c| c.method == "assistant.threads.setSuggestedPrompts")
        })
        .await;
    let set = calls
        .iter()
        .find(|c| c.method == "assistant.threads.setSuggestedPrompts")
        .unwrap();
    assert_eq!(set.args["channel_id"], "D1234567890");
    assert_eq!(set.args["thread_ts"], "1729999327.187299");
    assert_eq!(set.args["title"], "Try one of these");
    assert_eq!(
        set.args["prompts"],
        json!([
            {"title": "Summarize this channel", "message": "Summarize what happened here today."},
            {"title": "Our retry policy", "message": "What does our retry policy say?"}
        ])
    );
    let greeting = calls
        .iter()
        .find(|c| c.method == "chat.postMessage" && c.args["thread_ts"] == "1729999327.187299")
        .expect("a greeting");
    assert_eq!(greeting.args["text"], "Hello from version two.");

    // The user switches to #eng, then asks: the status shows, #eng's
    // binding answers, and the thread gets a title.
    w.event(&assistant_thread(
        "Ev0CONTEXT",
        "assistant_thread_context_changed",
        "C0ENG",
    ))
    .await;
    w.provider
        .then([Reply::OpenAiStream(split("Three retries."), (20, 3))]);
    w.event(&assistant_message(
        "Ev0ASK",
        "What does our retry policy say about backoff?",
    ))
    .await;
    let calls = w
        .api
        .wait_for("the title", |c| {
            c.iter().any(|c| c.method == "assistant.threads.setTitle")
        })
        .await;
    let status = calls
        .iter()
        .find(|c| c.method == "assistant.threads.setStatus")
        .expect("a status in the assistant thread");
    assert_eq!(status.args["thread_ts"], "1729999327.187299");
    let title = calls
        .iter()
        .find(|c| c.method == "assistant.threads.setTitle")
        .unwrap();
    assert_eq!(
        title.args["title"],
        "What does our retry policy say about backoff?"
    );
    let asked = &w.provider.received()[0].body["messages"];
    assert_eq!(
        asked[0]["content"], "engineering",
        "the context channel's binding answered"
    );
    // A second answer keeps the title.
    w.provider
        .then([Reply::OpenAiStream(split("Yes."), (20, 1))]);
    let mut again = assistant_message("Ev0ASK2", "And jitter?");
    again["event"]["ts"] = json!("1729999500.000100");
    w.event(&again).await;
    w.api
        .wait_for("the second answer", |c| {
            c.iter()
                .filter(|c| c.method == "assistant.threads.setStatus")
                .count()
                >= 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.api.calls_of("assistant.threads.setTitle").len(), 1);
}

/// Slack's documented `message_action` payload: `user` chose the shortcut
/// `callback_id` on message `ts` (in thread `thread_ts`) of `channel`.
fn message_action(
    callback_id: &str,
    channel: &str,
    ts: &str,
    thread_ts: &str,
    response_url: String,
) -> Value {
    json!({
        "type": "message_action",
        "token": "Nj2rfC2hU8mAfgaJLemZgO7H",
        "action_ts": "1581106241.371594",
        "team": {"id": "T123ABC456", "domain": "example"},
        "user": {"id": "U123ABC456", "username": "ada", "team_id": "T123ABC456", "name": "ada"},
        "channel": {"id": channel, "name": "general"},
        "is_enterprise_install": false,
        "callback_id": callback_id,
        "trigger_id": "944799105734.773906753841.38b5894552bdd4a780554ee59d1f3638",
        "response_url": response_url,
        "message_ts": ts,
        "message": {"type": "message", "user": "U0BOB", "text": "the message", "ts": ts, "thread_ts": thread_ts}
    })
}

/// A thread of `n` messages by Bob and Ada, its parent first.
fn long_thread(parent: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let ts = if i == 0 {
                parent.to_string()
            } else {
                format!("1700000100.{i:06}")
            };
            json!({"type": "message", "user": if i % 2 == 0 { "U0BOB" } else { "U0ADA" },
                   "text": format!("message {i} about the release"), "ts": ts, "thread_ts": parent})
        })
        .collect()
}

#[tokio::test]
async fn summarize_thread_reads_a_long_thread_in_pages_and_answers_in_it() {
    let w = world_with("", "shortcut_chars = 2000\n").await;
    w.api.user("U0BOB", "Bob", false);
    w.api.user("U0ADA", "Ada", false);
    let parent = "1700000100.000000";
    // Over 200 messages: more than one page of `conversations.replies`.
    w.api.thread(parent, long_thread(parent, 260));
    w.provider.then([Reply::OpenAiStream(
        split("The release ships Friday."),
        (900, 6),
    )]);
    let action = message_action(
        "switchboard_summarize",
        "C123ABC456",
        "1700000100.000150",
        parent,
        format!("{}/respond/9", w.api.base),
    );
    assert_eq!(w.interaction(&action).await.status, 200);
    let calls = w
        .api
        .wait_for("the summary", |c| final_message(c).is_some())
        .await;
    // Read in pages (Slack gives at most 200 per page; the parent repeats).
    let pages = w.api.calls_of("conversations.replies");
    assert!(pages.len() >= 2, "{:?}", fake_api::summary(&calls));
    // The summarize prompt from the library answered, in the thread.
    let sent = &w.provider.received()[0].body;
    let system = sent["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("summarizing a thread"), "{system}");
    let transcript = sent["messages"][1]["content"].as_str().unwrap();
    assert!(
        transcript.contains("Bob: message 258 about the release"),
        "{transcript}"
    );
    assert!(transcript.contains("Ada: message 259 about the release"));
    assert!(
        transcript.contains("oldest messages are left out"),
        "trimmed to the budget"
    );
    assert!(
        !transcript.contains("message 0 about"),
        "the oldest go first"
    );
    assert!(transcript.chars().count() <= 2100);
    let last = final_message(&calls).unwrap();
    let posted = w.api.calls_of("chat.postMessage");
    assert_eq!(
        posted[0].args["thread_ts"], parent,
        "answered in the message's thread"
    );
    let row = w
        .harness
        .row(&button_value(last, "switchboard_thumbs_up"))
        .await;
    assert_eq!(row.prompt_name.as_deref(), Some("summarize"));
}

#[tokio::test]
async fn ask_about_answers_only_the_asker_when_so_configured_and_a_channel_it_cannot_read_is_refused()
 {
    let w = world_with("", "shortcut_reply = \"ephemeral\"\n").await;
    let parent = "1700000200.000000";
    w.api.thread(parent, long_thread(parent, 3));
    w.provider.then([Reply::OpenAiStream(
        split("It asks about the **release**."),
        (90, 6),
    )]);
    let action = message_action(
        "switchboard_ask_about",
        "C123ABC456",
        "1700000100.000002",
        parent,
        format!("{}/respond/7", w.api.base),
    );
    w.interaction(&action).await;
    let calls = w
        .api
        .wait_for("the private answer", |c| {
            c.iter().any(|c| c.method == "response_url:7")
        })
        .await;
    let answer = calls.iter().find(|c| c.method == "response_url:7").unwrap();
    assert_eq!(answer.args["response_type"], "ephemeral");
    assert_eq!(answer.args["text"], "It asks about the *release*.");
    assert!(
        w.api.calls_of("chat.postMessage").is_empty(),
        "nothing in the thread"
    );
    let asked = w.provider.received()[0].body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        asked.ends_with("The message asked about:\nmessage 2 about the release"),
        "{asked}"
    );

    // A channel the bot is not in: refused, to the asker only; no model call.
    w.api.channel("C0SECRET", "secret", true, false);
    let action = message_action(
        "switchboard_ask_about",
        "C0SECRET",
        "1700000300.000001",
        "1700000300.000000",
        format!("{}/respond/8", w.api.base),
    );
    w.interaction(&action).await;
    let calls = w
        .api
        .wait_for("the refusal", |c| {
            c.iter().any(|c| c.method == "response_url:8")
        })
        .await;
    let refusal = calls.iter().find(|c| c.method == "response_url:8").unwrap();
    assert!(
        refusal.args["text"]
            .as_str()
            .unwrap()
            .contains("cannot read this channel"),
        "{}",
        refusal.args
    );
    assert_eq!(w.provider.received().len(), 1);
}
