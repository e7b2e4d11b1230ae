//! The Discord adapter end to end: `switchboard serve` connects to a
//! stand-in Discord (REST plus a gateway websocket speaking the documented
//! protocol), answers what users write there, and records their feedback.

use std::convert::Infallible;
use std::process::Stdio;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::{Value, json};
use testkit::discord::{APP, BOT, CHANNEL, Discord, GUILD, USER, interaction, user_message};
use testkit::standin::{Reply, StandIn};

const TOKEN: &str = "stand-in-bot-token-Zm9v";

/// A running `switchboard serve`.
struct Serve {
    child: tokio::process::Child,
    dir: tempfile::TempDir,
}

impl Serve {
    async fn start(discord: &Discord, provider_url: &str, extra: &str) -> Serve {
        let before = discord.sessions();
        let serve = Serve::spawn(discord, provider_url, extra);
        discord
            .until("the bot's gateway connection", |d| d.sessions() > before)
            .await;
        serve
    }

    /// [`Serve::start`] with more `[discord]` keys.
    async fn start_with(
        discord: &Discord,
        provider_url: &str,
        extra: &str,
        discord_extra: &str,
    ) -> Serve {
        let before = discord.sessions();
        let serve = Serve::spawn_with(discord, provider_url, extra, discord_extra);
        discord
            .until("the bot's gateway connection", |d| d.sessions() > before)
            .await;
        serve
    }

    /// Starts the process without waiting for its gateway connection.
    fn spawn(discord: &Discord, provider_url: &str, extra: &str) -> Serve {
        Serve::spawn_with(discord, provider_url, extra, "")
    }

    /// [`Serve::spawn`] with more `[discord]` keys.
    fn spawn_with(
        discord: &Discord,
        provider_url: &str,
        extra: &str,
        discord_extra: &str,
    ) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let config = format!(
            r#"data_dir = "{}"
[server]
listen = "127.0.0.1:{port}"
[providers.p]
kind = "openai"
base_url = "{provider_url}"
[models.default]
targets = ["p/m"]
{extra}
[discord]
token_env = "STANDIN_DISCORD_TOKEN"
application_id = "{APP}"
api_base = "{}"
edit_interval_ms = 500
history = 10
{discord_extra}
"#,
            dir.path().display(),
            discord.api_base
        );
        std::fs::write(dir.path().join("switchboard.toml"), config).unwrap();
        let child = Serve::launch(dir.path());
        Serve { child, dir }
    }

    /// `switchboard serve` on the configuration in `dir`, logging to
    /// `dir/serve.log`.
    fn launch(dir: &std::path::Path) -> tokio::process::Child {
        let path = dir.join("switchboard.toml");
        let log = std::fs::File::create(dir.join("serve.log")).unwrap();
        tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["--config", path.to_str().unwrap(), "serve"])
            .env("STANDIN_DISCORD_TOKEN", TOKEN)
            .env("RUST_LOG", "debug")
            .env_remove("SWITCHBOARD_CONFIG")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start switchboard serve")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    async fn store(&self) -> gateway::store::Store {
        gateway::store::Store::connect(&format!(
            "sqlite://{}/switchboard.db",
            self.dir.path().display()
        ))
        .await
        .unwrap()
    }

    async fn stop(mut self) -> String {
        let pid = self.child.id().expect("pid") as i32;
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("serve stops on SIGTERM")
            .unwrap();
        assert!(exit.success(), "{exit:?}\n{}", self.log());
        self.log()
    }

    /// Stops the process (as [`Serve::stop`]) and starts it again on the
    /// same configuration and database, waiting for its new connection.
    async fn restart(mut self, discord: &Discord) -> Serve {
        let pid = self.child.id().expect("pid") as i32;
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        let before = discord.sessions();
        self.child = Serve::launch(self.dir.path());
        discord
            .until("the bot's new gateway connection", |d| {
                d.sessions() > before
            })
            .await;
        self
    }
}

/// An OpenAI-compatible provider that streams `pieces` one every `gap`.
async fn slow_provider(pieces: Vec<String>, gap: Duration) -> String {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let pieces = pieces.clone();
            async move {
                let chunk = |delta: Value, finish: Value| {
                    Bytes::from(format!(
                        "data: {}\n\n",
                        json!({ "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1741569952,
                                "model": "m", "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }] })
                    ))
                };
                let mut events = vec![chunk(json!({ "role": "assistant", "content": "" }), Value::Null)];
                events.extend(pieces.iter().map(|p| chunk(json!({ "content": p }), Value::Null)));
                events.push(chunk(json!({}), json!("stop")));
                events.push(Bytes::from("data: [DONE]\n\n"));
                let body = futures_util::stream::iter(events).then(move |e| async move {
                    tokio::time::sleep(gap).await;
                    Ok::<_, Infallible>(e)
                });
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(body))
                    .unwrap()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    url
}

async fn feedback(
    serve: &Serve,
    inference: &str,
    count: usize,
) -> Vec<(String, Option<f64>, String, Option<String>)> {
    let store = serve.store().await;
    for _ in 0..100 {
        let rows = store.feedback_for(inference).await.unwrap();
        if rows.len() >= count {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.feedback_for(inference).await.unwrap()
}

/// `/prompt edit assistant` by an admin, with the prompt as an attached
/// file served at `url`.
fn edit_from_file(id: &str, attachment: &str, url: &str, size: usize) -> Value {
    interaction(
        id,
        2,
        "32",
        json!({ "id": "1", "name": "prompt", "type": 1, "options": [{ "type": 1, "name": "edit",
            "options": [{ "type": 3, "name": "name", "value": "assistant" }, { "type": 11, "name": "file", "value": attachment }] }],
            "resolved": { "attachments": { attachment: { "id": attachment,
                "filename": "assistant.toml", "size": size, "url": url, "proxy_url": url, "content_type": "text/plain; charset=utf-8" } } } }),
    )
}

/// The bot token in an IDENTIFY or RESUME payload. Discord takes it with
/// or without the `Bot ` prefix that the HTTP header uses.
fn token_in(payload: &Value) -> &str {
    let token = payload["d"]["token"].as_str().expect("a token");
    token.strip_prefix("Bot ").unwrap_or(token)
}

fn inference_in(message: &Value) -> String {
    let id = message["components"][0]["components"][0]["custom_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no buttons on {message}"));
    id.rsplit(':').next().unwrap().to_string()
}

#[tokio::test]
async fn a_mention_gets_one_streamed_split_reply_with_buttons_and_feedback_is_recorded() {
    gateway::install_crypto();
    // A long answer (over Discord's 2,000 characters) with a code block, streamed slowly.
    let mut answer = String::from("Here is how:\n```rust\n");
    for i in 0..100 {
        answer.push_str(&format!("let step_{i} = compute({i});\n"));
    }
    answer.push_str("```\nThat is all.");
    assert!(answer.chars().count() > 2000);
    let pieces: Vec<String> = answer.split_inclusive('\n').map(str::to_string).collect();
    let provider = slow_provider(pieces, Duration::from_millis(40)).await;
    let discord = Discord::start().await;
    let serve = Serve::start(&discord, &provider, "").await;
    let identify = discord.identify().unwrap();
    assert_eq!(token_in(&identify), TOKEN);
    let intents = identify["d"]["intents"].as_u64().unwrap();
    assert_eq!(
        intents & (1 << 15),
        0,
        "MESSAGE_CONTENT is not asked for unless configured"
    );
    assert_ne!(intents & (1 << 9), 0, "guild messages");
    discord
        .until("the /prompt commands", |d| {
            d.calls().iter().any(|c| c.method == "PUT")
        })
        .await;

    // Discord asks the bot to slow down on its first message.
    discord.rate_limit_next_creates(1);
    let mention = user_message(
        "1700000000000000001",
        &format!("<@{BOT}> show me the steps"),
        true,
    );
    discord.dispatch("MESSAGE_CREATE", mention.clone()).await;
    // The same event again, as after a resume: still one reply.
    discord.dispatch("MESSAGE_CREATE", mention).await;
    discord
        .until("the buttons", |d| {
            d.bot_messages()
                .iter()
                .any(|m| m["components"].as_array().is_some_and(|c| !c.is_empty()))
        })
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    let messages = discord.bot_messages();
    assert_eq!(messages.len(), 2, "one answer in two parts: {messages:#?}");
    let shown: String = messages
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    for m in &messages {
        let text = m["content"].as_str().unwrap();
        assert!(text.chars().count() <= 2000);
        assert_eq!(
            text.matches("```").count() % 2,
            0,
            "fences balanced in each part"
        );
    }
    assert!(
        shown.contains("let step_0 = compute(0);") && shown.contains("let step_99 = compute(99);")
    );
    assert!(shown.ends_with("That is all."), "{shown}");
    assert!(
        !shown.contains('▌'),
        "the cursor is gone when the answer is complete"
    );
    assert_eq!(
        messages[0]["message_reference"]["message_id"], "1700000000000000001",
        "the answer replies to the question"
    );
    assert_eq!(
        messages[0]["components"],
        json!([]),
        "buttons only under the last part"
    );

    let calls = discord.calls();
    let writes: Vec<_> = calls
        .iter()
        .filter(|c| {
            (c.method == "POST" || c.method == "PATCH")
                && c.path.starts_with(&format!("/channels/{CHANNEL}/messages"))
        })
        .collect();
    assert_eq!(writes[0].status, 429);
    assert_eq!(writes[1].status, 200, "retried after retry_after");
    assert!(
        writes[1].at - writes[0].at >= Duration::from_millis(390),
        "the bot waited before trying again"
    );
    let edits_of_first = writes
        .iter()
        .filter(|c| c.method == "PATCH" && c.path.ends_with(messages[0]["id"].as_str().unwrap()))
        .count();
    assert!(edits_of_first >= 2, "the answer grew by edits: {writes:#?}");
    assert!(
        writes[1].body["content"].as_str().unwrap().ends_with('▌'),
        "text shows while the answer is still coming"
    );
    // Edits of one message are at least the configured interval apart.
    let mut last_edit: std::collections::HashMap<&str, std::time::Instant> = Default::default();
    for c in writes.iter().filter(|c| c.method == "PATCH") {
        if let Some(prev) = last_edit.insert(c.path.as_str(), c.at) {
            assert!(
                c.at - prev >= Duration::from_millis(450),
                "two edits of {} within {:?}",
                c.path,
                c.at - prev
            );
        }
    }
    let typing = calls
        .iter()
        .position(|c| c.path.ends_with("/typing"))
        .expect("typing indicator");
    let first_write = calls
        .iter()
        .position(|c| c.method == "POST" && c.path.ends_with("/messages"))
        .unwrap();
    assert!(typing < first_write, "typing shows before the first text");

    // A 👎 click records a thumbs-down for that inference and thanks the user quietly.
    let last = messages.last().unwrap();
    let inference = inference_in(last);
    let custom_id = format!("sb:fb:down:{inference}");
    let click = interaction(
        "1800000000000000001",
        3,
        "0",
        json!({ "custom_id": custom_id, "component_type": 2 }),
    );
    let mut click = click;
    click["message"] = last.clone();
    discord.dispatch("INTERACTION_CREATE", click).await;
    let rows = feedback(&serve, &inference, 1).await;
    assert_eq!(
        rows,
        vec![(
            "thumbs".to_string(),
            Some(0.0),
            "button".to_string(),
            Some(format!("discord:{USER}"))
        )]
    );
    let answer_call = discord
        .calls()
        .into_iter()
        .find(|c| c.path.starts_with("/interactions/1800000000000000001/"))
        .expect("the click is answered");
    assert_eq!(
        answer_call.body["data"]["flags"], 64,
        "only the clicker sees the thanks"
    );

    // Changing one's mind with a 👍 reaction replaces the vote.
    discord
        .dispatch(
            "MESSAGE_REACTION_ADD",
            json!({ "user_id": USER, "channel_id": CHANNEL, "message_id": messages[0]["id"],
                    "guild_id": GUILD, "emoji": { "id": null, "name": "👍" }, "burst": false, "type": 0 }),
        )
        .await;
    let store = serve.store().await;
    let mut rows = reaction_vote(&serve, &inference).await;
    assert_eq!(
        rows,
        vec![(
            "thumbs".to_string(),
            Some(1.0),
            "reaction".to_string(),
            Some(format!("discord:{USER}"))
        )]
    );

    // Taking the 👍 back withdraws the vote: the answer counts as neither.
    discord
        .dispatch(
            "MESSAGE_REACTION_REMOVE",
            json!({ "user_id": USER, "channel_id": CHANNEL, "message_id": messages[0]["id"],
                    "guild_id": GUILD, "emoji": { "id": null, "name": "👍" }, "burst": false, "type": 0 }),
        )
        .await;
    for _ in 0..100 {
        rows = store.feedback_for(&inference).await.unwrap();
        if rows.iter().any(|r| r.1.is_none()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        rows,
        vec![(
            "thumbs".to_string(),
            None,
            "reaction".to_string(),
            Some(format!("discord:{USER}"))
        )],
        "a withdrawn vote"
    );

    let log = serve.stop().await;
    assert!(!log.contains(TOKEN), "the token never appears in the logs");
}

/// The current feedback on `inference` once a reaction's vote is among it.
async fn reaction_vote(
    serve: &Serve,
    inference: &str,
) -> Vec<(String, Option<f64>, String, Option<String>)> {
    let store = serve.store().await;
    for _ in 0..100 {
        let rows = store.feedback_for(inference).await.unwrap();
        if rows.iter().any(|r| r.2 == "reaction") {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.feedback_for(inference).await.unwrap()
}

/// The ephemeral answer to the button click `id`.
async fn answer_to_click(discord: &Discord, id: &str) -> String {
    let path = format!("/interactions/{id}/");
    for _ in 0..100 {
        if let Some(c) = discord
            .calls()
            .into_iter()
            .find(|c| c.path.starts_with(&path))
        {
            assert_eq!(c.body["data"]["flags"], 64, "only the clicker sees it");
            return c.body["data"]["content"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the click {id} was not answered");
}

/// In a DM, the asker's own 👍 / 👎 (button and reaction) is stored under
/// the same user as the answer's asker; anyone else's click is refused,
/// stores nothing, and the clicker is told so instead of being thanked.
#[tokio::test]
async fn in_a_dm_the_askers_votes_are_stored_and_anyone_elses_refused_and_told() {
    gateway::install_crypto();
    let provider = StandIn::start().await;
    provider.always(Reply::text("Sure thing."));
    let discord = Discord::start().await;
    let serve = Serve::start(&discord, &provider.url, "").await;
    const DM: &str = "1210000000000000009";
    let mut dm = user_message("1700000000000000090", "hello in private", false);
    dm["channel_id"] = json!(DM);
    dm.as_object_mut().unwrap().remove("guild_id");
    dm.as_object_mut().unwrap().remove("member");
    discord.dispatch("MESSAGE_CREATE", dm).await;
    discord
        .until("the DM's answer", |d| {
            d.bot_messages()
                .iter()
                .any(|m| m["channel_id"] == DM && m["components"] != json!([]))
        })
        .await;
    let answer = discord
        .bot_messages()
        .into_iter()
        .find(|m| m["channel_id"] == DM)
        .unwrap();
    let inference = inference_in(&answer);
    // A button click in a DM carries `user`, not `member`, and no guild.
    let click = |id: &str, user: &str, vote: &str| {
        let mut click = interaction(
            id,
            3,
            "0",
            json!({ "custom_id": format!("sb:fb:{vote}:{inference}"), "component_type": 2 }),
        );
        let object = click.as_object_mut().unwrap();
        object.remove("guild_id");
        object.remove("member");
        object.insert("channel_id".into(), json!(DM));
        object.insert("context".into(), json!(1));
        object.insert(
            "user".into(),
            json!({ "id": user, "username": "someone", "discriminator": "0", "avatar": null }),
        );
        click["message"] = answer.clone();
        click
    };
    let own = |score: f64, source: &str| {
        (
            "thumbs".to_string(),
            Some(score),
            source.to_string(),
            Some(format!("discord:{USER}")),
        )
    };

    discord
        .dispatch(
            "INTERACTION_CREATE",
            click("1800000000000000091", USER, "up"),
        )
        .await;
    assert!(
        answer_to_click(&discord, "1800000000000000091")
            .await
            .starts_with("Recorded")
    );
    assert_eq!(
        feedback(&serve, &inference, 1).await,
        vec![own(1.0, "button")]
    );

    const OTHER: &str = "1400000000000000099";
    discord
        .dispatch(
            "INTERACTION_CREATE",
            click("1800000000000000092", OTHER, "down"),
        )
        .await;
    let told = answer_to_click(&discord, "1800000000000000092").await;
    assert!(
        told.contains("Not recorded") && told.contains("direct message"),
        "{told}"
    );
    assert_eq!(
        feedback(&serve, &inference, 1).await,
        vec![own(1.0, "button")]
    );

    // The asker's 👎 reaction replaces their vote.
    discord
        .dispatch(
            "MESSAGE_REACTION_ADD",
            json!({ "user_id": USER, "channel_id": DM, "message_id": answer["id"],
                    "emoji": { "id": null, "name": "👎" }, "burst": false, "type": 0 }),
        )
        .await;
    let rows = reaction_vote(&serve, &inference).await;
    assert_eq!(rows, vec![own(0.0, "reaction")]);
    serve.stop().await;
}

#[tokio::test]
async fn replies_dms_and_threads_the_bot_started_are_answered_with_their_context() {
    gateway::install_crypto();
    let provider = StandIn::start().await;
    provider.always(Reply::text("Sure thing."));
    let discord = Discord::start().await;
    let serve = Serve::start(&discord, &provider.url, "").await;

    // An earlier exchange: the user asked, the bot answered.
    discord.seed(user_message(
        "1700000000000000010",
        &format!("<@{BOT}> what is Rust?"),
        true,
    ));
    let mut earlier = user_message("1700000000000000011", "Rust is a systems language.", false);
    earlier["author"] = json!({ "id": BOT, "username": "switchboard", "bot": true });
    earlier["message_reference"] =
        json!({ "message_id": "1700000000000000010", "channel_id": CHANNEL });
    discord.seed(earlier.clone());
    let mut reply = user_message("1700000000000000012", "and is it fast?", false);
    reply["type"] = json!(19);
    reply["message_reference"] =
        json!({ "message_id": "1700000000000000011", "channel_id": CHANNEL });
    reply["referenced_message"] = earlier;
    discord.dispatch("MESSAGE_CREATE", reply).await;
    discord
        .until("the reply's answer", |d| {
            d.bot_messages().len() > 1
                && d.bot_messages().last().unwrap()["components"] != json!([])
        })
        .await;
    let answered = discord.bot_messages();
    assert_eq!(
        answered.last().unwrap()["content"],
        "Sure thing.",
        "{}",
        serve.log()
    );

    let asked = &provider.received()[0].body["messages"];
    let contents: Vec<String> = asked
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}: {}",
                m["role"].as_str().unwrap(),
                m["content"].as_str().unwrap()
            )
        })
        .collect();
    let joined = contents.join("\n");
    assert!(joined.contains("user: Ada L: what is Rust?"), "{joined}");
    assert!(
        joined.contains("assistant: Rust is a systems language."),
        "{joined}"
    );
    assert!(joined.contains("user: and is it fast?"), "{joined}");

    // A DM, without a guild.
    let mut dm = user_message("1700000000000000020", "hello in private", false);
    dm["channel_id"] = json!("1210000000000000001");
    dm.as_object_mut().unwrap().remove("guild_id");
    dm.as_object_mut().unwrap().remove("member");
    let photo = discord.seed_file("photo.jpg", "stand-in jpeg bytes");
    dm["attachments"] = json!([{ "id": "1", "filename": "photo.jpg", "size": 19,
        "url": photo, "proxy_url": photo,
        "content_type": "image/jpeg", "width": 640, "height": 480 }]);
    discord.dispatch("MESSAGE_CREATE", dm).await;
    discord
        .until("the DM's answer", |d| {
            d.bot_messages()
                .iter()
                .any(|m| m["channel_id"] == "1210000000000000001" && m["components"] != json!([]))
        })
        .await;
    let dm_answer = discord
        .bot_messages()
        .into_iter()
        .find(|m| m["channel_id"] == "1210000000000000001")
        .unwrap();
    let text = dm_answer["content"].as_str().unwrap();
    assert!(
        text.starts_with("Sure thing.") && text.contains("could not look at `photo.jpg`"),
        "the answer says the image was not read: {text}"
    );

    // A plain message in the channel is left alone.
    discord
        .dispatch(
            "MESSAGE_CREATE",
            user_message("1700000000000000030", "lunch anyone?", false),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        provider.received().len(),
        2,
        "only the reply and the DM were answered"
    );

    // In a thread the bot started, every message is answered, with the
    // thread's earlier messages as context.
    const THREAD: &str = "1600000000000000001";
    discord
        .dispatch(
            "THREAD_CREATE",
            json!({ "id": THREAD, "type": 11, "guild_id": GUILD, "parent_id": CHANNEL,
                    "owner_id": BOT, "name": "Rust questions", "newly_created": true,
                    "thread_metadata": { "archived": false, "auto_archive_duration": 1440, "locked": false } }),
        )
        .await;
    let mut before = user_message("1700000000000000050", "we use tokio everywhere", false);
    before["channel_id"] = json!(THREAD);
    discord.seed(before);
    let mut in_thread = user_message("1700000000000000051", "which runtime should I pick?", false);
    in_thread["channel_id"] = json!(THREAD);
    discord.dispatch("MESSAGE_CREATE", in_thread).await;
    discord
        .until("the thread's answer", |d| {
            d.bot_messages()
                .iter()
                .any(|m| m["channel_id"] == THREAD && m["components"] != json!([]))
        })
        .await;
    let asked = &provider.received()[2].body["messages"];
    let joined = asked.to_string();
    assert!(
        joined.contains("Ada L: we use tokio everywhere"),
        "{joined}"
    );
    assert!(joined.contains("which runtime should I pick?"), "{joined}");

    // A new thread's first message may reach the handler a moment before
    // the thread's own THREAD_CREATE: it is answered all the same.
    const LATE: &str = "1600000000000000002";
    let mut first = user_message("1700000000000000060", "anyone around?", false);
    first["channel_id"] = json!(LATE);
    discord.dispatch("MESSAGE_CREATE", first).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    discord
        .dispatch(
            "THREAD_CREATE",
            json!({ "id": LATE, "type": 11, "guild_id": GUILD, "parent_id": CHANNEL,
                    "owner_id": BOT, "name": "Late thread", "newly_created": true,
                    "thread_metadata": { "archived": false, "auto_archive_duration": 1440, "locked": false } }),
        )
        .await;
    discord
        .until("the answer in the late thread", |d| {
            d.bot_messages()
                .iter()
                .any(|m| m["channel_id"] == LATE && m["components"] != json!([]))
        })
        .await;
    serve.stop().await;
}

#[tokio::test]
async fn prompt_commands_answer_admins_ephemerally_and_refuse_others_changing_nothing() {
    gateway::install_crypto();
    // A model slower than Discord's three seconds, for `/prompt test`.
    let pieces: Vec<String> = (0..40).map(|i| format!("w{i} ")).collect();
    let provider = slow_provider(pieces, Duration::from_millis(100)).await;
    let discord = Discord::start().await;
    // This server's managers administer the whole registry (the default
    // prompt is shared, so elsewhere they could not change it).
    let home = format!("[admin]\nhome_workspaces = [\"discord/{GUILD}\"]");
    let serve = Serve::start(&discord, &provider, &home).await;
    let store = serve.store().await;
    let labels = |rows: gateway::store::RegistryRows| -> Vec<(String, String)> {
        rows.labels.into_iter().map(|l| (l.name, l.label)).collect()
    };
    let before = labels(store.registry_rows().await.unwrap());

    let promote = json!({ "id": "1", "name": "prompt", "type": 1, "options": [{ "type": 1, "name": "promote",
        "options": [{ "type": 3, "name": "name", "value": "assistant" }, { "type": 3, "name": "version", "value": "1" },
                    { "type": 3, "name": "label", "value": "staging" }] }] });
    discord
        .dispatch(
            "INTERACTION_CREATE",
            interaction("1900000000000000001", 2, "0", promote.clone()),
        )
        .await;
    let answer = |d: &Discord, id: &str| {
        d.calls()
            .into_iter()
            .find(|c| c.path.starts_with(&format!("/interactions/{id}/")))
    };
    discord
        .until("the refusal", |d| {
            answer(d, "1900000000000000001").is_some()
        })
        .await;
    let refusal = answer(&discord, "1900000000000000001").unwrap().body;
    assert_eq!(refusal["data"]["flags"], 64);
    let text = refusal["data"]["content"].as_str().unwrap();
    assert!(text.starts_with('⛔'), "{text}");
    assert_eq!(
        labels(store.registry_rows().await.unwrap()),
        before,
        "nothing changed"
    );

    // Someone with Manage Server may.
    discord
        .dispatch(
            "INTERACTION_CREATE",
            interaction("1900000000000000002", 2, "32", promote),
        )
        .await;
    discord
        .until("the promotion", |d| {
            answer(d, "1900000000000000002").is_some()
        })
        .await;
    let done = answer(&discord, "1900000000000000002").unwrap().body;
    assert_eq!(done["data"]["flags"], 64);
    assert!(
        !done["data"]["content"].as_str().unwrap().starts_with('⛔'),
        "{done}"
    );
    let after = labels(store.registry_rows().await.unwrap());
    assert!(
        after.contains(&("assistant".to_string(), "staging".to_string())),
        "{after:?}"
    );

    // A slow command is deferred (only the caller sees it), then answered.
    let test = json!({ "id": "1", "name": "prompt", "type": 1, "options": [{ "type": 1, "name": "test",
        "options": [{ "type": 3, "name": "name", "value": "assistant" }, { "type": 3, "name": "question", "value": "say words" }] }] });
    discord
        .dispatch(
            "INTERACTION_CREATE",
            interaction("1900000000000000004", 2, "32", test),
        )
        .await;
    let original = |d: &Discord| {
        d.calls()
            .into_iter()
            .find(|c| c.path.contains("/webhooks/") && c.path.contains("token-1900000000000000004"))
    };
    discord
        .until("the deferred answer", |d| original(d).is_some())
        .await;
    let deferral = answer(&discord, "1900000000000000004").unwrap().body;
    assert_eq!(
        (&deferral["type"], &deferral["data"]["flags"]),
        (&json!(5), &json!(64)),
        "DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE, ephemeral: {deferral}"
    );
    assert!(
        deferral["data"].get("content").is_none(),
        "no answer yet: {deferral}"
    );
    let text = original(&discord).unwrap().body["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("w0 w1") && text.contains("w39"), "{text}");

    // A prompt edited from an attached file becomes its next version.
    let library = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../prompts/library/assistant.toml"
    ))
    .unwrap();
    let edited = library.replace(
        "Answer {{ user_name }} concisely",
        "Answer {{ user_name }} very concisely",
    );
    assert_ne!(edited, library);
    let url = discord.seed_file("assistant.toml", &edited);
    let edit = edit_from_file(
        "1900000000000000005",
        "1950000000000000001",
        &url,
        edited.len(),
    );
    discord.dispatch("INTERACTION_CREATE", edit).await;
    discord
        .until("the edit", |d| answer(d, "1900000000000000005").is_some())
        .await;
    let saved = answer(&discord, "1900000000000000005").unwrap().body;
    assert!(
        !saved["data"]["content"].as_str().unwrap().starts_with('⛔'),
        "{saved}"
    );
    let versions = store.prompt_versions("assistant").await.unwrap();
    assert_eq!(versions.len(), 2, "a second version was saved: {saved}");
    let newest = versions.iter().max_by_key(|v| v.version).unwrap();
    assert_eq!(newest.version, 2);
    assert!(newest.body.contains("very concisely"), "{}", newest.body);

    // A second edit builds on the newest version, not the first.
    let again = edited.replace("very concisely", "very, very concisely");
    let url = discord.seed_file("assistant-2.toml", &again);
    let edit = edit_from_file(
        "1900000000000000015",
        "1950000000000000002",
        &url,
        again.len(),
    );
    discord.dispatch("INTERACTION_CREATE", edit).await;
    discord
        .until("the second edit", |d| {
            answer(d, "1900000000000000015").is_some()
        })
        .await;
    let saved = answer(&discord, "1900000000000000015").unwrap().body;
    let versions = store.prompt_versions("assistant").await.unwrap();
    assert_eq!(versions.len(), 3, "a third version was saved: {saved}");
    let download = discord
        .calls()
        .into_iter()
        .find(|c| c.path == "/attachments/assistant.toml")
        .unwrap();
    assert_eq!(
        download.body["authorization"], false,
        "the bot token never goes to the CDN"
    );

    // Autocomplete offers prompt names.
    let auto = json!({ "id": "1", "name": "prompt", "type": 1, "options": [{ "type": 1, "name": "show",
        "options": [{ "type": 3, "name": "name", "value": "ass", "focused": true }] }] });
    discord
        .dispatch(
            "INTERACTION_CREATE",
            interaction("1900000000000000003", 4, "0", auto),
        )
        .await;
    discord
        .until("the choices", |d| {
            answer(d, "1900000000000000003").is_some()
        })
        .await;
    let choices = answer(&discord, "1900000000000000003").unwrap().body;
    assert_eq!(choices["type"], 8);
    assert_eq!(choices["data"]["choices"][0]["value"], "assistant");
    serve.stop().await;
}

/// A `/prompt` subcommand interaction with string options.
fn prompt_command(sub: &str, options: &[(&str, &str)]) -> Value {
    let options: Vec<Value> = options
        .iter()
        .map(|(k, v)| json!({ "type": 3, "name": k, "value": v }))
        .collect();
    json!({ "id": "1", "name": "prompt", "type": 1,
            "options": [{ "type": 1, "name": sub, "options": options }] })
}

#[tokio::test]
async fn a_server_managers_rights_reach_only_their_own_server() {
    gateway::install_crypto();
    let provider = slow_provider(vec!["ok".into()], Duration::from_millis(1)).await;
    let discord = Discord::start().await;
    let serve = Serve::start(&discord, &provider, "").await;
    let store = serve.store().await;
    let answer = |d: &Discord, id: &str| {
        d.calls()
            .into_iter()
            .find(|c| c.path.starts_with(&format!("/interactions/{id}/")))
            .map(|c| {
                c.body["data"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
    };
    let run = async |id: &str, data: Value| -> String {
        // Manage Server (0x20) in this guild.
        discord
            .dispatch("INTERACTION_CREATE", interaction(id, 2, "32", data))
            .await;
        discord
            .until("the answer", |d| answer(d, id).is_some())
            .await;
        answer(&discord, id).unwrap_or_default()
    };
    let bindings = |rows: gateway::store::RegistryRows| -> Vec<(String, String, String)> {
        rows.bindings
            .into_iter()
            .map(|b| (b.scope, b.prompt, b.label))
            .collect()
    };
    let before = bindings(store.registry_rows().await.unwrap());

    // The whole registry and the shared default prompt are out of reach.
    let global = run(
        "1900000000000000101",
        prompt_command("bind", &[("scope", "global"), ("name", "assistant")]),
    )
    .await;
    assert!(global.starts_with('⛔'), "{global}");
    assert!(
        global.contains(&format!("reach only `discord/{GUILD}`")),
        "{global}"
    );
    let other = run(
        "1900000000000000102",
        prompt_command(
            "bind",
            &[
                ("scope", "discord/1300000000000000999/1"),
                ("name", "assistant"),
            ],
        ),
    )
    .await;
    assert!(other.starts_with('⛔'), "{other}");
    let shared = run(
        "1900000000000000103",
        prompt_command(
            "promote",
            &[
                ("name", "assistant"),
                ("version", "1"),
                ("label", "staging"),
            ],
        ),
    )
    .await;
    assert!(
        shared.starts_with('⛔') && shared.contains("default prompt"),
        "{shared}"
    );
    assert_eq!(
        bindings(store.registry_rows().await.unwrap()),
        before,
        "nothing moved"
    );
    let refused: Vec<_> = store
        .audit_rows(None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.outcome == "refused")
        .collect();
    assert_eq!(refused.len(), 3, "each refusal is audited: {refused:?}");
    assert!(
        refused.iter().all(|a| a.actor == format!("discord:{USER}")),
        "{refused:?}"
    );
    assert!(refused.iter().any(|a| a.target == "binding:global"));

    // Their own channel is theirs to bind.
    let here = run(
        "1900000000000000104",
        prompt_command("bind", &[("scope", "here"), ("name", "assistant")]),
    )
    .await;
    assert!(!here.starts_with('⛔'), "{here}");
    let after = bindings(store.registry_rows().await.unwrap());
    assert!(
        after
            .iter()
            .any(|b| b.0 == format!("discord/{GUILD}/{CHANNEL}")),
        "{after:?}"
    );
    serve.stop().await;
}

/// The `/prompt` group is registered once the bot is connected, hidden
/// from members without Manage Server and offered in servers only; while
/// typing, Discord is offered prompt names, then the chosen prompt's
/// labels and versions.
#[tokio::test]
async fn the_prompt_group_is_registered_for_managers_and_autocompletes_names_and_versions() {
    gateway::install_crypto();
    let provider = StandIn::start().await;
    let discord = Discord::start().await;
    let serve = Serve::start(&discord, &provider.url, "").await;
    discord
        .until("the /prompt commands", |d| {
            d.calls().iter().any(|c| c.method == "PUT")
        })
        .await;
    let put = discord
        .calls()
        .into_iter()
        .find(|c| c.method == "PUT")
        .unwrap();
    assert_eq!(put.path, format!("/applications/{APP}/commands"));
    let commands = put.body.as_array().expect("a list of commands");
    // /prompt, /knowledge, the two message commands and /ask.
    assert_eq!(commands.len(), 5, "{commands:#?}");
    let prompt = &commands[0];
    assert_eq!(prompt["name"], "prompt");
    let knowledge = &commands[1];
    assert_eq!(knowledge["name"], "knowledge");
    assert_eq!(knowledge["default_member_permissions"], "32");
    assert_eq!(knowledge["contexts"], json!([0]), "servers only");
    let knowledge_subs: Vec<&str> = knowledge["options"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(knowledge_subs, ["list", "search", "sync"]);
    assert!(
        prompt.get("type").is_none_or(|t| t == 1),
        "a slash command (type 1, the default): {prompt}"
    );
    assert_eq!(
        prompt["default_member_permissions"], "32",
        "Manage Server (0x20)"
    );
    assert_eq!(prompt["contexts"], json!([0]), "servers only");
    let subs: Vec<&str> = prompt["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            assert_eq!(o["type"], 1, "a subcommand: {o}");
            o["name"].as_str().unwrap()
        })
        .collect();
    for sub in [
        "list", "show", "edit", "diff", "promote", "rollback", "test", "bind",
    ] {
        assert!(subs.contains(&sub), "{sub} missing from {subs:?}");
    }
    let option = |sub: &str, name: &str| -> Value {
        let sub = prompt["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == sub)
            .unwrap();
        sub["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{sub} has no option {name}"))
    };
    assert_eq!(option("show", "name")["autocomplete"], true);
    assert_eq!(option("show", "name")["required"], true);
    assert_eq!(option("promote", "version")["autocomplete"], true);
    assert_eq!(option("edit", "file")["type"], 11, "an attachment");

    let answer = |d: &Discord, id: &str| {
        d.calls()
            .into_iter()
            .find(|c| c.path.starts_with(&format!("/interactions/{id}/")))
    };
    // Names first (anyone who sees the command may be offered them)…
    let typing_name = json!({ "id": "1", "name": "prompt", "type": 1, "options": [{ "type": 1, "name": "show",
        "options": [{ "type": 3, "name": "name", "value": "", "focused": true }] }] });
    discord
        .dispatch(
            "INTERACTION_CREATE",
            interaction("1900000000000000031", 4, "0", typing_name),
        )
        .await;
    discord
        .until("the names", |d| answer(d, "1900000000000000031").is_some())
        .await;
    let names = answer(&discord, "1900000000000000031").unwrap().body;
    assert_eq!(names["type"], 8, "APPLICATION_COMMAND_AUTOCOMPLETE_RESULT");
    let offered: Vec<&str> = names["data"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert!(offered.contains(&"assistant"), "{names}");
    // …then the chosen prompt's labels and versions.
    let typing_version = json!({ "id": "1", "name": "prompt", "type": 1, "options": [{ "type": 1, "name": "promote",
        "options": [{ "type": 3, "name": "name", "value": "assistant" },
                    { "type": 3, "name": "version", "value": "", "focused": true }] }] });
    discord
        .dispatch(
            "INTERACTION_CREATE",
            interaction("1900000000000000032", 4, "32", typing_version),
        )
        .await;
    discord
        .until("the versions", |d| {
            answer(d, "1900000000000000032").is_some()
        })
        .await;
    let versions = answer(&discord, "1900000000000000032").unwrap().body;
    let offered: Vec<&str> = versions["data"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert!(
        offered.contains(&"production") && offered.contains(&"1"),
        "{versions}"
    );
    serve.stop().await;
}

/// `/prompt edit NAME` opens a form holding the prompt's newest version;
/// submitting it saves the next version, answered only to the editor.
#[tokio::test]
async fn the_edit_form_opens_with_the_prompt_and_its_submission_saves_a_version() {
    gateway::install_crypto();
    let provider = StandIn::start().await;
    let discord = Discord::start().await;
    // The default prompt is shared: a server's managers edit it only where
    // their server is a home workspace.
    let home = format!("[admin]\nhome_workspaces = [\"discord/{GUILD}\"]");
    let serve = Serve::start(&discord, &provider.url, &home).await;
    let answer = |d: &Discord, id: &str| {
        d.calls()
            .into_iter()
            .find(|c| c.path.starts_with(&format!("/interactions/{id}/")))
    };
    let open = json!({ "id": "1", "name": "prompt", "type": 1, "options": [{ "type": 1, "name": "edit",
        "options": [{ "type": 3, "name": "name", "value": "assistant" }] }] });
    discord
        .dispatch(
            "INTERACTION_CREATE",
            interaction("1900000000000000041", 2, "32", open),
        )
        .await;
    discord
        .until("the form", |d| answer(d, "1900000000000000041").is_some())
        .await;
    let form = answer(&discord, "1900000000000000041").unwrap().body;
    assert_eq!(form["type"], 9, "MODAL: {form}");
    let custom_id = form["data"]["custom_id"].as_str().unwrap().to_string();
    let toml = form["data"]["components"][0]["components"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(toml.contains("name = \"assistant\""), "{toml}");

    let edited = toml.replace(
        "Answer {{ user_name }} concisely",
        "Answer {{ user_name }} briefly",
    );
    assert_ne!(edited, toml);
    let submit = json!({ "custom_id": custom_id, "components": [
        { "type": 1, "components": [{ "type": 4, "custom_id": "toml", "value": edited }] },
        { "type": 1, "components": [{ "type": 4, "custom_id": "message", "value": "briefer" }] } ] });
    discord
        .dispatch(
            "INTERACTION_CREATE",
            interaction("1900000000000000042", 5, "32", submit),
        )
        .await;
    discord
        .until("the saved form", |d| {
            answer(d, "1900000000000000042").is_some()
        })
        .await;
    let saved = answer(&discord, "1900000000000000042").unwrap().body;
    assert_eq!(saved["data"]["flags"], 64, "{saved}");
    let store = serve.store().await;
    let versions = store.prompt_versions("assistant").await.unwrap();
    let newest = versions.iter().max_by_key(|v| v.version).unwrap();
    assert_eq!(newest.version, 2, "{saved}");
    assert!(newest.body.contains("briefly"), "{}", newest.body);
    serve.stop().await;
}

#[tokio::test]
async fn an_event_delivered_to_two_replicas_sharing_redis_is_answered_once() {
    gateway::install_crypto();
    let provider = StandIn::start().await;
    provider.always(Reply::text("Once only."));
    let discord = Discord::start().await;
    let redis = testkit::redis::redis_section(&testkit::redis::shared_url(), "closed");
    let first = Serve::start(&discord, &provider.url, &redis).await;
    let second = Serve::start(&discord, &provider.url, &redis).await;
    assert_eq!(
        discord.sessions(),
        2,
        "{}\n---\n{}",
        first.log(),
        second.log()
    );

    let mention = user_message("1700000000000000040", &format!("<@{BOT}> hello"), true);
    discord.dispatch("MESSAGE_CREATE", mention).await;
    discord
        .until("the answer", |d| {
            d.bot_messages()
                .iter()
                .any(|m| m["content"] == "Once only.")
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        discord.bot_messages().len(),
        1,
        "{:#?}",
        discord.bot_messages()
    );
    assert_eq!(provider.received().len(), 1, "one model call for one event");
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn after_a_dropped_connection_the_bot_resumes_and_a_replayed_event_gets_no_second_reply() {
    gateway::install_crypto();
    let provider = StandIn::start().await;
    provider.always(Reply::text("Answered."));
    let discord = Discord::start().await;
    let serve = Serve::start(&discord, &provider.url, "").await;
    let answers = |d: &Discord| {
        d.bot_messages()
            .iter()
            .filter(|m| m["components"] != json!([]))
            .count()
    };
    let mention = user_message("1700000000000000060", &format!("<@{BOT}> hi"), true);
    discord.dispatch("MESSAGE_CREATE", mention.clone()).await;
    discord.until("the answer", |d| answers(d) == 1).await;

    discord.disconnect().await;
    discord.until("a RESUME", |d| !d.resumes().is_empty()).await;
    let resume = &discord.resumes()[0];
    assert_eq!(resume["d"]["session_id"], "stand-in-session");
    assert_eq!(token_in(resume), TOKEN);
    assert!(
        resume["d"]["seq"].as_u64().is_some_and(|s| s >= 2),
        "{resume}"
    );
    assert_eq!(discord.identify().into_iter().count(), 1);
    discord
        .until("the resumed session", |d| d.sessions() == 1)
        .await;

    // Discord replays what the bot may have missed: the same message again.
    discord.dispatch("MESSAGE_CREATE", mention).await;
    // And something new, answered on the resumed session.
    discord
        .dispatch(
            "MESSAGE_CREATE",
            user_message("1700000000000000061", &format!("<@{BOT}> again"), true),
        )
        .await;
    discord.until("the new answer", |d| answers(d) == 2).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        answers(&discord),
        2,
        "the replayed message was not answered twice"
    );
    assert_eq!(provider.received().len(), 2);
    serve.stop().await;
}

#[tokio::test]
async fn a_user_over_the_rate_limit_is_told_when_to_retry_instead_of_answered() {
    gateway::install_crypto();
    let provider = StandIn::start().await;
    provider.always(Reply::text("First answer."));
    let discord = Discord::start().await;
    let serve = Serve::start(
        &discord,
        &provider.url,
        "[limits.user]\nrequests_per_minute = 1\n",
    )
    .await;
    for (i, id) in ["1700000000000000070", "1700000000000000071"]
        .into_iter()
        .enumerate()
    {
        // Each with an image: a refused question must not fetch it.
        let name = format!("q{i}.png");
        let url = discord.seed_file(&name, "stand-in png bytes");
        let mut message = user_message(id, &format!("<@{BOT}> q{i}"), true);
        message["attachments"] = json!([
            { "id": format!("11000000000000000{i}1"), "filename": name, "size": 18, "url": url, "proxy_url": url,
              "content_type": "image/png", "width": 640, "height": 480 }
        ]);
        discord.dispatch("MESSAGE_CREATE", message).await;
        discord
            .until("an answer", |d| {
                d.bot_messages().iter().any(|m| {
                    m["message_reference"]["message_id"] == id
                        && !m["content"].as_str().unwrap_or("").ends_with('▌')
                })
            })
            .await;
    }
    let refusal = discord
        .bot_messages()
        .into_iter()
        .find(|m| m["message_reference"]["message_id"] == "1700000000000000071")
        .unwrap();
    let text = refusal["content"].as_str().unwrap();
    assert!(text.starts_with('⏳'), "{text}");
    assert_eq!(
        refusal["components"],
        json!([]),
        "no feedback buttons on a refusal"
    );
    assert_eq!(
        provider.received().len(),
        1,
        "the refused question never reached the model"
    );
    let downloads: Vec<String> = discord
        .calls()
        .into_iter()
        .filter(|c| c.path.starts_with("/attachments/"))
        .map(|c| c.path)
        .collect();
    assert_eq!(
        downloads,
        ["/attachments/q0.png"],
        "the refused question's image was not downloaded"
    );
    serve.stop().await;
}

/// A replica given a range of shards identifies each of them, with the
/// total, so that several replicas split the guilds between them.
#[tokio::test]
async fn a_replica_runs_exactly_the_shard_range_it_is_given() {
    gateway::install_crypto();
    let provider = StandIn::start().await;
    let discord = Discord::start().await;
    let serve = Serve::start(
        &discord,
        &provider.url,
        "[discord.shards]\ntotal = 4\nfirst = 1\nlast = 2\n",
    )
    .await;
    // Discord allows one IDENTIFY per five seconds: the second comes later.
    discord
        .until("both shards' IDENTIFY", |d| d.identifies().len() == 2)
        .await;
    let mut shards: Vec<Value> = discord
        .identifies()
        .iter()
        .map(|i| i["d"]["shard"].clone())
        .collect();
    shards.sort_by_key(|s| s[0].as_u64());
    assert_eq!(shards, vec![json!([1, 4]), json!([2, 4])]);
    serve.stop().await;
}

/// Discord closing the connection with a code that retrying cannot fix (a
/// bad token, here) stops the adapter with the reason and the fix in the
/// log, instead of hammering Discord with reconnects; the rest of the
/// server keeps running.
#[tokio::test]
async fn a_fatal_close_code_stops_the_adapter_with_the_fix_instead_of_reconnecting() {
    gateway::install_crypto();
    let provider = StandIn::start().await;
    let discord = Discord::start().await;
    discord.close_identify_with(4004, "Authentication failed.");
    let serve = Serve::spawn(&discord, &provider.url, "");
    let started = std::time::Instant::now();
    while !serve.log().contains("the Discord adapter stopped") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no fatal error logged:\n{}",
            serve.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = serve.log();
    assert!(log.contains("4004"), "{log}");
    assert!(
        log.contains("token_env"),
        "the fix names the setting: {log}"
    );
    // Reconnects would come within a few seconds; none come.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(discord.identifies().len(), 1, "no reconnect after 4004");
    assert_eq!(discord.sessions(), 0);
    let log = serve.stop().await;
    assert!(!log.contains("reconnecting"), "{log}");
}

/// An image attached to a mention reaches a vision model beside the
/// question, fetched from the CDN without the bot's token; an image that
/// cannot be fetched is named as unread in the answer.
#[tokio::test]
async fn an_attached_image_reaches_a_vision_model() {
    gateway::install_crypto();
    let provider = StandIn::start().await;
    provider.always(Reply::text("A bar chart."));
    let discord = Discord::start().await;
    let serve = Serve::start(&discord, &provider.url, "vision = true\n").await;
    let chart = discord.seed_file("chart.png", "stand-in png bytes");
    let mut mention = user_message(
        "1700000000000000090",
        &format!("<@{BOT}> what is this?"),
        true,
    );
    mention["attachments"] = json!([
        { "id": "1", "filename": "chart.png", "size": 18, "url": chart, "proxy_url": chart,
          "content_type": "image/png", "width": 640, "height": 480 },
        { "id": "2", "filename": "gone.png", "size": 18, "url": format!("{chart}-missing"),
          "proxy_url": format!("{chart}-missing"), "content_type": "image/png", "width": 1, "height": 1 }
    ]);
    discord.dispatch("MESSAGE_CREATE", mention).await;
    discord
        .until("the answer", |d| {
            d.bot_messages()
                .iter()
                .any(|m| m["components"] != json!([]))
        })
        .await;
    let question = provider.received()[0].question();
    let parts = question["content"]
        .as_array()
        .expect("text and image parts");
    assert!(parts[0]["text"].as_str().unwrap().contains("what is this?"));
    let url = parts[1]["image_url"]["url"].as_str().unwrap();
    let expected = gateway::Image::from_bytes("image/png", "chart.png", b"stand-in png bytes")
        .unwrap()
        .data_url();
    assert_eq!(url, expected, "the CDN's bytes, as a data URL");
    assert_eq!(parts.len(), 2, "only the image that could be fetched");
    let answer = discord
        .bot_messages()
        .into_iter()
        .find(|m| m["components"] != json!([]))
        .unwrap();
    let text = answer["content"].as_str().unwrap();
    assert!(text.starts_with("A bar chart."), "{text}");
    assert!(
        text.contains("`gone.png`"),
        "the unread image is named: {text}"
    );
    assert!(!text.contains("`chart.png`"), "{text}");
    let fetches: Vec<_> = discord
        .calls()
        .into_iter()
        .filter(|c| c.path == "/attachments/chart.png")
        .collect();
    assert_eq!(fetches.len(), 1);
    assert_eq!(
        fetches[0].body["authorization"], false,
        "no token to the CDN"
    );
    serve.stop().await;
}

/// A server that is not Discord's CDN; counts the requests it gets.
async fn elsewhere() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            "stand-in png bytes"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, hits)
}

/// Attachments are fetched from Discord's CDN only: an attachment whose URL
/// names another host, or that the CDN redirects to another host, is not
/// fetched from there (that host sees no request) and is named as unread,
/// while the image on the CDN still reaches the model.
#[tokio::test]
async fn attachments_off_discords_cdn_are_not_fetched() {
    gateway::install_crypto();
    let provider = StandIn::start().await;
    provider.always(Reply::text("A bar chart."));
    let discord = Discord::start().await;
    let (other, hits) = elsewhere().await;
    let serve = Serve::start(&discord, &provider.url, "vision = true\n").await;
    let chart = discord.seed_file("chart.png", "stand-in png bytes");
    let moved = discord.seed_redirect("moved.png", &format!("{other}/moved.png"));
    let foreign = format!("{other}/foreign.png");
    let image = |id: &str, name: &str, url: &str| {
        json!({ "id": id, "filename": name, "size": 18, "url": url, "proxy_url": url,
                "content_type": "image/png", "width": 640, "height": 480 })
    };
    let mut mention = user_message(
        "1700000000000000091",
        &format!("<@{BOT}> what is this?"),
        true,
    );
    mention["attachments"] = json!([
        image("1", "chart.png", &chart),
        image("2", "foreign.png", &foreign),
        image("3", "moved.png", &moved),
    ]);
    discord.dispatch("MESSAGE_CREATE", mention).await;
    discord
        .until("the answer", |d| {
            d.bot_messages()
                .iter()
                .any(|m| m["components"] != json!([]))
        })
        .await;
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the other host was never asked"
    );
    let question = provider.received()[0].question();
    let parts = question["content"]
        .as_array()
        .expect("text and image parts");
    assert_eq!(parts.len(), 2, "only the image on the CDN: {parts:?}");
    let expected = gateway::Image::from_bytes("image/png", "chart.png", b"stand-in png bytes")
        .unwrap()
        .data_url();
    assert_eq!(parts[1]["image_url"]["url"], expected.as_str());
    let answer = discord
        .bot_messages()
        .into_iter()
        .find(|m| m["components"] != json!([]))
        .unwrap();
    let text = answer["content"].as_str().unwrap();
    assert!(text.starts_with("A bar chart."), "{text}");
    assert!(text.contains("`foreign.png`"), "{text}");
    assert!(text.contains("`moved.png`"), "{text}");
    assert!(!text.contains("`chart.png`"), "{text}");
    serve.stop().await;
}

/// A message in `channel` by `author` (`USER` when `None`), as Discord
/// lists it.
fn said(id: &str, channel: &str, content: &str) -> Value {
    let mut m = user_message(id, content, false);
    m["channel_id"] = json!(channel);
    m
}

/// The text the bot answered interaction `id` with: the first response's,
/// or (when it was deferred) the follow-up's.
fn interaction_answer(d: &Discord, id: &str) -> Option<String> {
    let calls = d.calls();
    let token = format!("token-{id}");
    let first = calls
        .iter()
        .find(|c| c.path.starts_with(&format!("/interactions/{id}/")))?;
    if first.body["type"] == 4 {
        return first.body["data"]["content"].as_str().map(str::to_string);
    }
    calls
        .iter()
        .find(|c| c.path.starts_with("/webhooks/") && c.path.contains(&token))
        .and_then(|c| c.body["content"].as_str().map(str::to_string))
}

/// Discord channels as knowledge: `/knowledge sync` (refused to members,
/// audited for managers) reads a channel's history page by page through a
/// 429 with its threads, answers cite the thread by its jump link, a
/// private channel's messages reach only answers there, and live edits
/// and deletions follow.
#[tokio::test]
async fn a_synced_channel_is_read_with_its_threads_and_private_channels_stay_private() {
    gateway::install_crypto();
    let provider = StandIn::start().await;
    provider.always(Reply::text("From the channel [1]."));
    let discord = Discord::start().await;
    const ENG: &str = "1200000000000000009";
    const LAUNCH: &str = "1200000000000000008";
    discord.seed_channel(ENG, "eng", false);
    discord.seed_channel(LAUNCH, "launch", true);
    discord.seed_channel(CHANNEL, "general", false);
    // More than a page (100) of history, a reply, and a thread started
    // from a message.
    for n in 0..130u64 {
        discord.seed(said(
            &(1700000000000001000 + n).to_string(),
            ENG,
            &format!("standup note {n}"),
        ));
    }
    discord.seed(said(
        "1700000000000002000",
        ENG,
        "How do we rotate the API keys?",
    ));
    let mut reply = said(
        "1700000000000002001",
        ENG,
        "Run ops/rotate.sh, then restart the gateway.",
    );
    reply["type"] = json!(19);
    reply["message_reference"] = json!({ "message_id": "1700000000000002000", "channel_id": ENG });
    discord.seed(reply);
    discord.seed(said(
        "1700000000000003000",
        ENG,
        "Where does the staging database live?",
    ));
    discord.seed_thread("1700000000000003000", ENG, "staging db", true);
    discord.seed(said(
        "1700000000000003001",
        "1700000000000003000",
        "At db.staging.internal, port 5433.",
    ));
    let mut own = said("1700000000000004000", ENG, "an answer of the bot's own");
    own["author"] = json!({ "id": BOT, "username": "switchboard", "bot": true });
    discord.seed(own);
    discord.rate_limit_next_lists(1);

    let models = switchboard_embedded::default_models_dir()
        .expect("set SWITCHBOARD_MODEL_CACHE or HOME")
        .display()
        .to_string();
    let serve = Serve::start_with(
        &discord,
        &provider.url,
        &format!("[knowledge]\nmodels_dir = {models:?}"),
        &format!("message_content = true\nknowledge_channels = [\"{LAUNCH}\"]"),
    )
    .await;
    let sync = json!({ "id": "2", "name": "knowledge", "type": 1,
        "options": [{ "type": 1, "name": "sync", "options": [] }] });
    let mut refused = interaction("1900000000000000101", 2, "0", sync.clone());
    refused["channel_id"] = json!(ENG);
    discord.dispatch("INTERACTION_CREATE", refused).await;
    discord
        .until("the refusal", |d| {
            interaction_answer(d, "1900000000000000101").is_some()
        })
        .await;
    let text = interaction_answer(&discord, "1900000000000000101").unwrap();
    assert!(text.starts_with('⛔'), "{text}");
    assert!(
        !discord
            .calls()
            .iter()
            .any(|c| c.path == format!("/channels/{ENG}/messages")),
        "a refused sync reads nothing"
    );
    let mut allowed = interaction("1900000000000000102", 2, "32", sync);
    allowed["channel_id"] = json!(ENG);
    discord.dispatch("INTERACTION_CREATE", allowed).await;
    discord
        .until("the sync", |d| {
            interaction_answer(d, "1900000000000000102").is_some()
        })
        .await;
    let text = interaction_answer(&discord, "1900000000000000102").unwrap();
    // 130 notes, the question, its reply and the thread; not the bot's own.
    assert!(
        text.contains("Read into knowledge source `discord`: #eng: 133 threads: 133 added"),
        "{text}"
    );
    let lists: Vec<_> = discord
        .calls()
        .into_iter()
        .filter(|c| c.method == "GET" && c.path.ends_with("/messages"))
        .collect();
    assert!(
        lists.iter().any(|c| c.status == 429),
        "a 429 was waited out: {lists:?}"
    );
    let eng_pages: Vec<_> = lists
        .iter()
        .filter(|c| c.path == format!("/channels/{ENG}/messages") && c.status == 200)
        .collect();
    assert_eq!(eng_pages.len(), 2, "two pages of history: {eng_pages:?}");
    assert!(eng_pages[1].body["before"].is_string(), "{eng_pages:?}");

    // A prompt answering from the source, bound everywhere.
    let dir = serve.dir.path();
    let config = dir.join("switchboard.toml");
    let file = dir.join("team.toml");
    std::fs::write(
        &file,
        "name = \"team\"\n[retrieval]\nsources = [\"discord\"]\ntop_k = 2\n\
         [[messages]]\nrole = \"system\"\ntemplate = \"Cite as [n]:\\n{{ documents }}\"\n\
         [[messages]]\nrole = \"user\"\ntemplate = \"{{ text }}\"\n",
    )
    .unwrap();
    for args in [
        vec![
            "prompts",
            "create",
            "team",
            "--file",
            file.to_str().unwrap(),
            "-m",
            "team",
        ],
        vec!["prompts", "promote", "team", "1"],
        vec!["prompts", "bind", "global", "team"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--config")
            .arg(&config)
            .args(&args)
            .env_remove("SWITCHBOARD_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let ask = |id: &str, channel: &str, text: &str| {
        let mut m = user_message(id, &format!("<@{BOT}> {text}"), true);
        m["channel_id"] = json!(channel);
        m
    };
    let system_of = |n: usize| {
        provider.received()[n].body["messages"][0]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    discord
        .dispatch(
            "MESSAGE_CREATE",
            ask(
                "1700000000000009001",
                CHANNEL,
                "where is the staging database?",
            ),
        )
        .await;
    discord
        .until("the answer", |d| {
            d.bot_messages().iter().any(|m| {
                m["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("**Sources**"))
            })
        })
        .await;
    let system = system_of(provider.received().len() - 1);
    assert!(system.contains("db.staging.internal"), "{system}");
    let answer = discord
        .bot_messages()
        .into_iter()
        .find_map(|m| {
            m["content"]
                .as_str()
                .filter(|c| c.contains("**Sources**"))
                .map(str::to_string)
        })
        .unwrap();
    assert!(
        answer.contains(&format!(
            "(https://discord.com/channels/{GUILD}/1700000000000003000)"
        )),
        "{answer}"
    );
    assert!(
        answer.contains("#eng: Where does the staging database live?"),
        "{answer}"
    );

    // A private channel, followed from the configuration: a new message is
    // kept, reaches answers there and no other channel's.
    let secret = said(
        "1700000000000005000",
        LAUNCH,
        "The launch codename is BLUEBIRD.",
    );
    discord.seed(secret.clone());
    discord.dispatch("MESSAGE_CREATE", secret).await;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("SWITCHBOARD_CONFIG")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let stored = |q: &str| cli(&["knowledge", "search", q, "--source", "discord"]);
    for _ in 0..100 {
        if stored("launch codename").contains("BLUEBIRD") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stored("launch codename").contains("BLUEBIRD"));
    let n = provider.received().len();
    discord
        .dispatch(
            "MESSAGE_CREATE",
            ask(
                "1700000000000009002",
                CHANNEL,
                "what is the launch codename?",
            ),
        )
        .await;
    provider_waits(&provider, n + 1).await;
    assert!(!system_of(n).contains("BLUEBIRD"), "{}", system_of(n));
    discord
        .dispatch(
            "MESSAGE_CREATE",
            ask(
                "1700000000000009003",
                LAUNCH,
                "what is the launch codename?",
            ),
        )
        .await;
    provider_waits(&provider, n + 2).await;
    assert!(
        system_of(n + 1).contains("BLUEBIRD"),
        "{}",
        system_of(n + 1)
    );

    // An edit is followed; a deletion removes the message.
    let mut edited = said(
        "1700000000000005000",
        LAUNCH,
        "The launch codename is PELICAN.",
    );
    edited["edited_timestamp"] = json!("2026-11-28T09:00:00.000000+00:00");
    discord.seed(edited.clone());
    discord.dispatch("MESSAGE_UPDATE", edited).await;
    for _ in 0..100 {
        if stored("launch codename").contains("PELICAN") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = stored("launch codename");
    assert!(
        now.contains("PELICAN") && !now.contains("BLUEBIRD"),
        "{now}"
    );
    discord.remove("1700000000000005000");
    discord
        .dispatch(
            "MESSAGE_DELETE",
            json!({ "id": "1700000000000005000", "channel_id": LAUNCH, "guild_id": GUILD }),
        )
        .await;
    for _ in 0..100 {
        if !stored("launch codename").contains("PELICAN") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!stored("launch codename").contains("PELICAN"));
    assert!(!stored("answer of the bot's own").contains("bot's own"));
    serve.stop().await;
}

/// Waits until the provider has had `n` requests.
async fn provider_waits(provider: &StandIn, n: usize) {
    for _ in 0..200 {
        if provider.received().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the provider had {} requests, not {n}",
        provider.received().len()
    );
}

/// A tool that asks first, in Discord: the request is posted with Approve /
/// Deny, a stranger's click is refused privately, the asker's runs the tool
/// (its real result reaches the model) and the answer follows.
#[tokio::test]
async fn a_tool_that_asks_first_runs_once_the_asker_approves_in_the_channel() {
    gateway::install_crypto();
    let (python, script) = (testkit::mcp::python(), testkit::mcp::test_server());
    let provider = StandIn::start().await;
    provider.then([
        Reply::tool_call("call_echo", "echo", r#"{"text":"it ran"}"#),
        Reply::text("Done."),
    ]);
    let discord = Discord::start().await;
    let serve = Serve::start(
        &discord,
        &provider.url,
        &format!("[tools.careful]\ncommand = {python:?}\nargs = [{script:?}]\nconfirm = true\n"),
    )
    .await;
    // The assistant prompt offers the tool, imported beside the running server.
    let prompts = serve.dir.path().join("prompts");
    std::fs::create_dir_all(&prompts).unwrap();
    std::fs::write(
        prompts.join("assistant.toml"),
        "name = \"assistant\"\nmodel = \"default\"\ntools = [\"careful.echo\"]\n[[messages]]\nrole = \"system\"\ntemplate = \"You use tools.\"\n[[messages]]\nrole = \"history\"\n[[messages]]\nrole = \"user\"\ntemplate = \"{{ text }}\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(serve.dir.path().join("switchboard.toml"))
        .args(["prompts", "import"])
        .arg(&prompts)
        .args(["--promote", "production"])
        .env("STANDIN_DISCORD_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The registry reads the change within its poll interval.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    discord
        .dispatch(
            "MESSAGE_CREATE",
            user_message("1700000000000000071", &format!("<@{BOT}> echo it"), true),
        )
        .await;
    discord
        .until("the approval request", |d| {
            d.bot_messages()
                .iter()
                .any(|m| m["components"].to_string().contains("sb:tool:ok:"))
        })
        .await;
    let asked = discord
        .bot_messages()
        .into_iter()
        .find(|m| m["components"].to_string().contains("sb:tool:ok:"))
        .unwrap();
    assert!(
        asked["content"]
            .as_str()
            .unwrap()
            .contains("`echo` asks to run with:"),
        "{asked}"
    );
    let approve = asked["components"][0]["components"][0]["custom_id"]
        .as_str()
        .unwrap()
        .to_string();
    let click = |id: &str, user: &str| {
        let mut click = interaction(
            id,
            3,
            "0",
            json!({ "custom_id": approve, "component_type": 2 }),
        );
        click["member"]["user"]["id"] = json!(user);
        click["message"] = asked.clone();
        click
    };
    // Someone else: refused, privately; the tool does not run.
    discord
        .dispatch(
            "INTERACTION_CREATE",
            click("1800000000000000071", "1400000000000000099"),
        )
        .await;
    let refused = answer_to_click(&discord, "1800000000000000071").await;
    assert!(refused.contains("only the person who asked"), "{refused}");
    assert_eq!(
        provider.received().len(),
        1,
        "nothing more until the asker answers"
    );
    // The asker approves: the message says so, the tool runs.
    discord
        .dispatch("INTERACTION_CREATE", click("1800000000000000072", USER))
        .await;
    discord
        .until("the approval's answer", |d| {
            d.calls()
                .iter()
                .any(|c| c.path.starts_with("/interactions/1800000000000000072/"))
        })
        .await;
    let updated = discord
        .calls()
        .into_iter()
        .find(|c| c.path.starts_with("/interactions/1800000000000000072/"))
        .unwrap();
    assert_eq!(
        updated.body["type"], 7,
        "the request's own message is updated"
    );
    assert_eq!(
        updated.body["data"]["content"],
        format!("✅ Approved by <@{USER}>.")
    );
    assert_eq!(updated.body["data"]["components"], json!([]));
    discord
        .until("the answer's buttons", |d| {
            d.bot_messages()
                .iter()
                .any(|m| m["components"].to_string().contains("sb:fb:"))
        })
        .await;
    let result = provider.received()[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .cloned()
        .expect("the tool's result");
    assert_eq!(result["content"], "it ran", "the approved tool ran");
    serve.stop().await;
}

/// The application commands are registered once per definition: a restart
/// with the same commands puts nothing to Discord; a changed definition (here,
/// a stored hash that no longer matches) is registered again.
#[tokio::test]
async fn commands_are_registered_again_only_when_their_definition_changed() {
    gateway::install_crypto();
    let provider = StandIn::start().await;
    let discord = Discord::start().await;
    let puts = |d: &Discord| {
        d.calls()
            .iter()
            .filter(|c| c.method == "PUT" && c.path.contains("/commands"))
            .count()
    };
    let serve = Serve::start(&discord, &provider.url, "").await;
    discord.until("the commands", |d| puts(d) == 1).await;
    let serve = serve.restart(&discord).await;
    // Registration happens right after the connection is ready: give it
    // the time it takes, then count.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        puts(&discord),
        1,
        "unchanged commands are not registered again:\n{}",
        serve.log()
    );
    assert!(
        serve.log().contains("unchanged; not registered again"),
        "{}",
        serve.log()
    );
    // Another definition than the one registered: registered again.
    let store = serve.store().await;
    store
        .set_deployment_value(&format!("discord_commands:{APP}"), "an older definition")
        .await
        .unwrap();
    store.close().await;
    let serve = serve.restart(&discord).await;
    discord
        .until("the changed commands", |d| puts(d) == 2)
        .await;
    serve.stop().await;
}

/// Discord's message commands: registered beside `/prompt` as type 3, and
/// "Summarize thread" answers through the library's `summarize` prompt
/// with the conversation up to the message, deferred, then as the reply.
#[tokio::test]
async fn summarize_thread_from_a_messages_apps_menu_answers_with_the_conversation() {
    gateway::install_crypto();
    let provider = StandIn::start().await;
    provider.then([Reply::text("They agreed to ship on Friday.")]);
    let discord = Discord::start().await;
    let serve = Serve::start(&discord, &provider.url, "").await;
    discord
        .until("the commands", |d| {
            d.calls().iter().any(|c| c.method == "PUT")
        })
        .await;
    let put = discord
        .calls()
        .into_iter()
        .find(|c| c.method == "PUT")
        .unwrap();
    let menus: Vec<(String, Value)> = put
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["type"].clone(),
            )
        })
        .collect();
    assert!(
        menus.contains(&("Summarize thread".to_string(), json!(3))),
        "{menus:?}"
    );
    assert!(
        menus.contains(&("Ask Switchboard about this".to_string(), json!(3))),
        "{menus:?}"
    );

    for (id, text) in [
        ("1700000000000000081", "shall we ship on Friday?"),
        ("1700000000000000082", "yes, Friday it is"),
    ] {
        discord.seed(user_message(id, text, false));
    }
    let target = user_message(
        "1700000000000000083",
        "I will tell the release channel",
        false,
    );
    discord.seed(target.clone());
    let command = json!({ "id": "2", "name": "Summarize thread", "type": 3, "target_id": "1700000000000000083",
        "resolved": { "messages": { "1700000000000000083": target } } });
    discord
        .dispatch(
            "INTERACTION_CREATE",
            interaction("1900000000000000081", 2, "0", command),
        )
        .await;
    let original = |d: &Discord| {
        d.calls()
            .into_iter()
            .find(|c| c.path.contains("/webhooks/") && c.path.contains("token-1900000000000000081"))
    };
    discord
        .until("the deferred answer", |d| original(d).is_some())
        .await;
    let text = original(&discord).unwrap().body["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(text, "They agreed to ship on Friday.");
    let sent = &provider.received()[0].body;
    assert!(
        sent["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("summarizing a thread")
    );
    let transcript = sent["messages"][1]["content"].as_str().unwrap();
    assert!(
        transcript.contains("Ada L: shall we ship on Friday?")
            && transcript.contains("Ada L: I will tell the release channel"),
        "{transcript}"
    );
    serve.stop().await;
}

/// `/ask` may be installed by a user for themselves: it is registered for
/// guild and user installs in servers, the bot's DMs and group DMs, and in
/// a server that has not installed the app, only the asker sees the answer.
#[tokio::test]
async fn a_user_installed_ask_answers_only_the_asker_in_a_server_without_the_app() {
    gateway::install_crypto();
    let provider = StandIn::start().await;
    provider.then([Reply::text("Deploys go out on Tuesdays.")]);
    let discord = Discord::start().await;
    let serve = Serve::start(&discord, &provider.url, "").await;
    discord
        .until("the commands", |d| {
            d.calls().iter().any(|c| c.method == "PUT")
        })
        .await;
    let put = discord
        .calls()
        .into_iter()
        .find(|c| c.method == "PUT")
        .unwrap();
    let ask = put
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ask")
        .cloned()
        .expect("/ask");
    assert_eq!(ask["integration_types"], json!([0, 1]), "{ask}");
    assert_eq!(ask["contexts"], json!([0, 1, 2]), "{ask}");

    let mut command = interaction(
        "1900000000000000091",
        2,
        "0",
        json!({ "id": "3", "name": "ask", "type": 1, "options": [{ "type": 3, "name": "question", "value": "when do we deploy?" }] }),
    );
    // Installed by the user, not by the server.
    command["authorizing_integration_owners"] = json!({ "1": USER });
    discord.dispatch("INTERACTION_CREATE", command).await;
    let original = |d: &Discord| {
        d.calls()
            .into_iter()
            .find(|c| c.path.contains("/webhooks/") && c.path.contains("token-1900000000000000091"))
    };
    discord.until("the answer", |d| original(d).is_some()).await;
    let deferral = discord
        .calls()
        .into_iter()
        .find(|c| c.path.starts_with("/interactions/1900000000000000091/"))
        .unwrap();
    assert_eq!(deferral.body["type"], 5);
    assert_eq!(
        deferral.body["data"]["flags"], 64,
        "only the asker sees it: {}",
        deferral.body
    );
    assert_eq!(
        original(&discord).unwrap().body["content"],
        "Deploys go out on Tuesdays."
    );
    let sent = &provider.received()[0].body;
    assert_eq!(
        sent["messages"].as_array().unwrap().last().unwrap()["content"],
        "when do we deploy?"
    );
    serve.stop().await;
}
