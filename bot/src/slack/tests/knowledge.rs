//! Slack channels as knowledge: `/knowledge sync` backfilling a channel
//! page by page through a 429, answers citing its threads by permalink,
//! `/knowledge list` and `search`, a private channel's threads reaching
//! only answers in that channel, and live edits, replies and deletions.

use serde_json::{Value, json};

use super::support::standin::Reply;
use super::{World, final_message, world_with};

const TEAM: &str = "T123ABC456";

/// A world with the embedding model and `[slack]` keys.
async fn knowledge_world(slack_toml: &str) -> World {
    let models = switchboard_embedded::default_models_dir()
        .expect("set SWITCHBOARD_MODEL_CACHE or HOME")
        .display()
        .to_string();
    world_with(&format!("[knowledge]\nmodels_dir = {models:?}"), slack_toml).await
}

/// A prompt answering from the `slack` source, bound everywhere.
async fn bind_retrieval(w: &World) {
    let gw = &w.harness.gateway;
    let prompt = prompts::Prompt::from_toml(
        "team.toml",
        "name = \"team\"\n[retrieval]\nsources = [\"slack\"]\ntop_k = 2\n\
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
            Some(("team", "production")),
        )
        .await
        .unwrap();
}

impl World {
    /// `/knowledge TEXT` by `user` in `channel`; the answer's text, inline
    /// or (when slower than the inline wait) through `response_url`.
    async fn knowledge(&self, user: &str, channel: &str, text: &str) -> String {
        let id = format!("k{}", self.api.calls().len());
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("team_id", TEAM)
            .append_pair("channel_id", channel)
            .append_pair("user_id", user)
            .append_pair("command", "/knowledge")
            .append_pair("text", text)
            .append_pair("response_url", &format!("{}/respond/{id}", self.api.base))
            .append_pair(
                "trigger_id",
                "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
            )
            .finish();
        let inline = self
            .signed(
                "/slack/commands",
                &body,
                "application/x-www-form-urlencoded",
            )
            .await
            .json();
        let text = inline.to_string();
        if !text.contains("Working on it") {
            return text;
        }
        let method = format!("response_url:{id}");
        let calls = self
            .api
            .wait_for("the command's answer", |c| {
                c.iter().any(|c| c.method == method)
            })
            .await;
        calls
            .iter()
            .find(|c| c.method == method)
            .unwrap()
            .args
            .to_string()
    }

    /// A signed `message` event callback carrying `event`.
    async fn message_event(&self, id: &str, event: Value) {
        let r = self
            .event(&json!({
                "token": "z", "team_id": TEAM, "api_app_id": "A1", "type": "event_callback",
                "event_id": id, "event_time": 1_700_000_000, "event": event,
            }))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    /// A mention by `user` in `channel`; the model's system message and the
    /// answer's final text.
    async fn ask(&self, id: &str, channel: &str, text: &str) -> (String, String) {
        let before = self.provider.received().len();
        let posted_before = self.api.calls().len();
        self.provider.then([Reply::text("From the channel [1].")]);
        let r = self
            .event(&json!({
                "token": "z", "team_id": TEAM, "api_app_id": "A1", "type": "event_callback",
                "event_id": id, "event_time": 1_700_000_000,
                "event": {"type": "app_mention", "user": "UASKER", "text": format!("<@U0LAN0Z89> {text}"),
                          "ts": format!("1700009999.{:06}", before), "channel": channel,
                          "event_ts": "1700009999.000000"},
            }))
            .await;
        assert_eq!(r.status, 200);
        let calls = self
            .api
            .wait_for("the answer", |c| {
                final_message(&c[posted_before..]).is_some()
            })
            .await;
        let answer = final_message(&calls[posted_before..]).unwrap().args["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let system = self.provider.received()[before].body["messages"][0]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (system, answer)
    }

    /// The operator's search of the store, as text.
    async fn stored(&self, query: &str) -> String {
        let k = &self.harness.gateway.knowledge;
        let found = k
            .search(
                &gateway::knowledge::SearchQuery::new(query, vec!["slack".into()], 5),
                &gateway::knowledge::Viewer::operator(),
            )
            .await
            .unwrap();
        found
            .hits
            .iter()
            .map(|h| h.chunk.body.clone())
            .collect::<Vec<_>>()
            .join("\n---\n")
    }

    /// Waits until the operator's search for `query` satisfies `done`.
    async fn wait_stored(&self, query: &str, what: &str, done: impl Fn(&str) -> bool) {
        for _ in 0..200 {
            if done(&self.stored(query).await) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{what}: the store holds {:?}", self.stored(query).await);
    }
}

#[tokio::test]
async fn a_channel_synced_from_chat_is_read_page_by_page_through_a_429_and_answers_cite_it() {
    let w = knowledge_world("").await;
    w.api.user("UADMIN", "ada", true);
    w.api.user("UMEMBER", "mel", false);
    w.api.user("UANN", "ann", false);
    w.api.user("UBOB", "bob", false);
    w.api.channel("C0ENG", "eng", false, true);
    w.api.say(
        "C0ENG",
        "UANN",
        "1700000001.000100",
        None,
        "How do we roll back a bad deploy?",
    );
    w.api.say(
        "C0ENG",
        "UBOB",
        "1700000001.000200",
        Some("1700000001.000100"),
        "Run ops/rollback.sh with the previous release tag, then page the on-call.",
    );
    // More than a page of history (200), and a thread longer than a page.
    for n in 0..205 {
        w.api.say(
            "C0ENG",
            "UANN",
            &format!("1700000002.{n:06}"),
            None,
            &format!("standup note {n}"),
        );
    }
    w.api.say(
        "C0ENG",
        "UANN",
        "1700000003.000100",
        None,
        "Who owns the billing service?",
    );
    for n in 0..210 {
        w.api.say(
            "C0ENG",
            "UBOB",
            &format!("1700000003.{:06}", 200 + n),
            Some("1700000003.000100"),
            &format!("reply {n}"),
        );
    }
    w.api.say(
        "C0ENG",
        "UBOB",
        "1700000003.999999",
        Some("1700000003.000100"),
        "The payments team owns billing.",
    );
    w.api.say(
        "C0ENG",
        "U0LAN0Z89",
        "1700000004.000100",
        None,
        "an answer of the bot's own",
    );
    w.api.rate_limit("conversations.history", 1);

    // A member may not sync; nothing is read.
    let refused = w.knowledge("UMEMBER", "C0ENG", "sync").await;
    assert!(refused.contains("may not knowledge sync"), "{refused}");
    assert!(w.api.calls_of("conversations.history").is_empty());

    let done = w.knowledge("UADMIN", "C0ENG", "sync").await;
    assert!(
        done.contains("Read into knowledge source `slack`: #eng: 207 threads: 207 added"),
        "{done}"
    );
    let history = w.api.calls_of("conversations.history");
    assert_eq!(history.len(), 3, "a 429, then two pages: {history:?}");
    assert_eq!(history[2].args["cursor"], "page:200");
    let replies: Vec<_> = w
        .api
        .calls_of("conversations.replies")
        .into_iter()
        .filter(|c| c.args["ts"] == "1700000003.000100")
        .collect();
    assert_eq!(replies.len(), 2, "the long thread is read in two pages");
    // The long thread's last reply, past the first page, was kept.
    assert!(
        w.stored("who owns billing")
            .await
            .contains("payments team owns billing")
    );
    assert!(
        !w.stored("an answer of the bot's own")
            .await
            .contains("bot's own")
    );

    // Synced again: nothing changed, nothing written.
    let again = w.knowledge("UADMIN", "C0ENG", "sync").await;
    assert!(
        again.contains("0 added, 0 changed, 207 unchanged, 0 removed"),
        "{again}"
    );

    bind_retrieval(&w).await;
    let (system, answer) = w
        .ask("EvK1", "C0OTHER", "how do we roll back a deploy?")
        .await;
    assert!(system.contains("ops/rollback.sh"), "{system}");
    assert!(system.contains("ann: How do we roll back"), "{system}");
    assert!(answer.contains("*Sources*\n[1] "), "{answer}");
    assert!(
        answer.contains("#eng: How do we roll back a bad deploy?"),
        "{answer}"
    );
    assert!(
        answer.contains("https://example.slack.com/archives/C0ENG/p1700000001000100"),
        "{answer}"
    );

    let list = w.knowledge("UADMIN", "C0ENG", "list").await;
    assert!(list.contains("slack") && list.contains("207"), "{list}");
    let search = w
        .knowledge("UADMIN", "C0ENG", "search roll back a deploy")
        .await;
    assert!(search.contains("[1] #eng: How do we roll back"), "{search}");
    assert!(search.contains("p1700000001000100"), "{search}");
    let usage = w.knowledge("UADMIN", "C0ENG", "frobnicate").await;
    assert!(usage.contains("/knowledge search QUERY"), "{usage}");
}

#[tokio::test]
async fn a_private_channels_threads_reach_only_answers_there_and_follow_edits_replies_and_deletions()
 {
    let w = knowledge_world("knowledge_channels = [\"C0PRIV\"]").await;
    w.api.user("UANN", "ann", false);
    w.api.user("UBOB", "bob", false);
    w.api.channel("C0PRIV", "launch", true, true);
    w.api.channel("C0PUB", "general", false, true);
    bind_retrieval(&w).await;

    // A new message in the followed channel is stored.
    w.api.say(
        "C0PRIV",
        "UANN",
        "1700000100.000100",
        None,
        "The launch codename is BLUEBIRD.",
    );
    w.message_event(
        "EvP1",
        json!({"type": "message", "channel": "C0PRIV", "user": "UANN", "channel_type": "group",
               "text": "The launch codename is BLUEBIRD.", "ts": "1700000100.000100"}),
    )
    .await;
    w.wait_stored("launch codename", "the new message", |s| {
        s.contains("BLUEBIRD")
    })
    .await;

    // Asked elsewhere, the private thread is not retrieved; asked in the
    // channel, it is.
    let (system, answer) = w.ask("EvP2", "C0PUB", "what is the launch codename?").await;
    assert!(!system.contains("BLUEBIRD"), "{system}");
    assert!(!answer.contains("Sources"), "{answer}");
    let (system, _) = w
        .ask("EvP3", "C0PRIV", "what is the launch codename?")
        .await;
    assert!(system.contains("BLUEBIRD"), "{system}");
    // Another workspace's question never sees this workspace's source.
    let k = &w.harness.gateway.knowledge;
    let stranger = gateway::Origin {
        platform: "slack".into(),
        workspace: Some("T999OTHER".into()),
        channel: Some("C0PRIV".into()),
        ..Default::default()
    };
    let found = k
        .search(
            &gateway::knowledge::SearchQuery::new("launch codename", Vec::new(), 5),
            &gateway::knowledge::Viewer::of(&stranger),
        )
        .await
        .unwrap();
    assert!(found.hits.is_empty(), "{:?}", found.hits);

    // A reply joins the thread's document.
    w.api.say(
        "C0PRIV",
        "UBOB",
        "1700000100.000200",
        Some("1700000100.000100"),
        "It ships on Tuesday.",
    );
    w.message_event(
        "EvP4",
        json!({"type": "message", "channel": "C0PRIV", "user": "UBOB", "text": "It ships on Tuesday.",
               "ts": "1700000100.000200", "thread_ts": "1700000100.000100"}),
    )
    .await;
    w.wait_stored("launch codename", "the reply", |s| {
        s.contains("BLUEBIRD") && s.contains("bob: It ships on Tuesday.")
    })
    .await;

    // An edit replaces the text.
    w.api.edit(
        "C0PRIV",
        "1700000100.000100",
        "The launch codename is PELICAN.",
    );
    w.message_event(
        "EvP5",
        json!({"type": "message", "subtype": "message_changed", "channel": "C0PRIV", "hidden": true,
               "ts": "1700000101.000000", "event_ts": "1700000101.000000",
               "message": {"type": "message", "user": "UANN", "text": "The launch codename is PELICAN.",
                           "ts": "1700000100.000100", "thread_ts": "1700000100.000100",
                           "edited": {"user": "UANN", "ts": "1700000101.000000"}},
               "previous_message": {"type": "message", "user": "UANN",
                           "text": "The launch codename is BLUEBIRD.", "ts": "1700000100.000100"}}),
    )
    .await;
    w.wait_stored("launch codename", "the edit", |s| {
        s.contains("PELICAN") && !s.contains("BLUEBIRD")
    })
    .await;

    // A deleted reply leaves the thread; a deleted question with no
    // replies left takes the thread with it.
    w.api.delete("C0PRIV", "1700000100.000200");
    w.message_event(
        "EvP6",
        json!({"type": "message", "subtype": "message_deleted", "channel": "C0PRIV", "hidden": true,
               "ts": "1700000102.000000", "deleted_ts": "1700000100.000200",
               "previous_message": {"type": "message", "user": "UBOB", "text": "It ships on Tuesday.",
                           "ts": "1700000100.000200", "thread_ts": "1700000100.000100"}}),
    )
    .await;
    w.wait_stored("launch codename", "the deleted reply", |s| {
        s.contains("PELICAN") && !s.contains("Tuesday")
    })
    .await;
    w.api.delete("C0PRIV", "1700000100.000100");
    w.message_event(
        "EvP7",
        json!({"type": "message", "subtype": "message_deleted", "channel": "C0PRIV", "hidden": true,
               "ts": "1700000103.000000", "deleted_ts": "1700000100.000100",
               "previous_message": {"type": "message", "user": "UANN",
                           "text": "The launch codename is PELICAN.", "ts": "1700000100.000100"}}),
    )
    .await;
    w.wait_stored("launch codename", "the deleted thread", |s| s.is_empty())
        .await;

    // Messages in a channel that is not followed are not stored.
    w.api.say(
        "C0PUB",
        "UANN",
        "1700000200.000100",
        None,
        "The wifi password is hunter2.",
    );
    w.message_event(
        "EvP8",
        json!({"type": "message", "channel": "C0PUB", "user": "UANN", "channel_type": "channel",
               "text": "The wifi password is hunter2.", "ts": "1700000200.000100"}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(w.stored("wifi password").await.is_empty());
    assert!(
        !w.api
            .calls_of("conversations.replies")
            .iter()
            .any(|c| c.args["channel"] == "C0PUB"),
        "an unfollowed channel is not read"
    );
}
