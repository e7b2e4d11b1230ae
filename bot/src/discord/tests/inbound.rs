//! The rules that decide which messages are answered and what the
//! pipeline is handed ([`crate::discord::inbound`]), on Discord's
//! documented `MESSAGE_CREATE` and channel payloads.

use gateway::{ChatMessage, Role};
use serde_json::json;

use crate::discord::inbound::*;
use crate::discord::model::{Message, Thread};

pub const BOT: &str = "1100000000000000001";

/// `MESSAGE_CREATE` in a guild channel, shaped as Discord documents it.
pub fn guild_message(id: &str, content: &str, mentions_bot: bool) -> serde_json::Value {
    json!({
        "id": id, "type": 0, "channel_id": "1200000000000000001",
        "guild_id": "1300000000000000001",
        "author": { "id": "1400000000000000001", "username": "ada", "global_name": "Ada L",
                    "discriminator": "0", "avatar": null },
        "member": { "roles": ["1500000000000000001"], "nick": "Ada", "joined_at": "2026-01-01T00:00:00.000000+00:00",
                    "deaf": false, "mute": false },
        "content": content, "timestamp": "2026-11-28T08:00:00.000000+00:00",
        "edited_timestamp": null, "tts": false, "mention_everyone": false,
        "mentions": if mentions_bot { json!([{ "id": BOT, "username": "switchboard", "bot": true, "discriminator": "0", "avatar": null }]) } else { json!([]) },
        "mention_roles": [], "attachments": [], "embeds": [], "pinned": false
    })
}

fn parse(v: serde_json::Value) -> Message {
    serde_json::from_value(v).expect("documented payload parses")
}

#[test]
fn a_mention_in_a_channel_is_answered_with_the_mention_removed() {
    let m = parse(guild_message("1", &format!("<@{BOT}> what is Rust?"), true));
    assert_eq!(trigger(&m, BOT, None, true), Some(Trigger::Mention));
    let inbound = to_inbound(&m, BOT, None, vec![]);
    assert_eq!(inbound.text, "what is Rust?");
    assert_eq!(inbound.origin.platform, "discord");
    assert_eq!(
        inbound.origin.workspace.as_deref(),
        Some("1300000000000000001")
    );
    assert_eq!(
        inbound.origin.channel.as_deref(),
        Some("1200000000000000001")
    );
    assert_eq!(inbound.origin.thread, None);
    assert_eq!(inbound.origin.user_id(), "1400000000000000001");
    assert!(!inbound.origin.private, "a guild channel is not private");
    assert_eq!(inbound.user_name.as_deref(), Some("Ada"));
}

#[test]
fn a_plain_channel_message_is_not_answered() {
    let m = parse(guild_message("1", "hello everyone", false));
    assert_eq!(trigger(&m, BOT, None, true), None);
}

#[test]
fn a_dm_is_answered_without_a_guild() {
    let mut v = guild_message("2", "hi there", false);
    v.as_object_mut().map(|o| {
        o.remove("guild_id");
        o.remove("member")
    });
    let m = parse(v);
    assert_eq!(trigger(&m, BOT, None, true), Some(Trigger::Direct));
    let inbound = to_inbound(&m, BOT, None, vec![]);
    assert_eq!(inbound.origin.workspace, None);
    assert!(inbound.origin.private, "only the DM's user may rate it");
    assert_eq!(inbound.text, "hi there");
    assert_eq!(inbound.user_name.as_deref(), Some("Ada L"));
}

#[test]
fn the_bot_ignores_itself_and_other_bots_even_when_mentioned() {
    let mut v = guild_message("3", &format!("<@{BOT}> loop?"), true);
    v["author"] = json!({ "id": BOT, "username": "switchboard", "bot": true });
    assert_eq!(trigger(&parse(v), BOT, None, true), None);
    let mut v = guild_message("4", &format!("<@{BOT}> loop?"), true);
    v["author"] = json!({ "id": "999", "username": "otherbot", "bot": true });
    assert_eq!(trigger(&parse(v), BOT, None, true), None);
}

#[test]
fn a_reply_to_the_bot_is_answered_and_carries_the_reference() {
    let mut v = guild_message("5", "and in Go?", false);
    v["type"] = json!(19);
    v["message_reference"] = json!({ "message_id": "4", "channel_id": "1200000000000000001", "guild_id": "1300000000000000001" });
    let mut earlier = guild_message("4", "Rust is a systems language.", false);
    earlier["author"] = json!({ "id": BOT, "username": "switchboard", "bot": true });
    v["referenced_message"] = earlier;
    let m = parse(v);
    assert_eq!(trigger(&m, BOT, None, true), Some(Trigger::ReplyToBot));
    assert_eq!(
        m.message_reference.and_then(|r| r.message_id).as_deref(),
        Some("4")
    );
    // A reply to someone else is not for the bot.
    let mut v = guild_message("6", "agreed", false);
    v["referenced_message"] = guild_message("5", "x", false);
    assert_eq!(trigger(&parse(v), BOT, None, true), None);
}

#[test]
fn a_thread_message_is_answered_in_threads_the_bot_started_and_keeps_its_parent() {
    let thread = thread_from_channel(&json!({
        "id": "1600000000000000001", "type": 11, "guild_id": "1300000000000000001",
        "parent_id": "1200000000000000001", "owner_id": BOT, "name": "Rust questions"
    }))
    .expect("a public thread");
    let mut v = guild_message("7", "more please", false);
    v["channel_id"] = json!("1600000000000000001");
    let m = parse(v);
    assert_eq!(
        trigger(&m, BOT, Some(&thread), true),
        Some(Trigger::BotThread)
    );
    assert_eq!(trigger(&m, BOT, Some(&thread), false), None);
    let inbound = to_inbound(&m, BOT, Some(&thread), vec![]);
    assert_eq!(
        inbound.origin.channel.as_deref(),
        Some("1200000000000000001")
    );
    assert_eq!(
        inbound.origin.thread.as_deref(),
        Some("1600000000000000001")
    );
    // Someone else's thread: only mentions count.
    let other = Thread {
        owner_id: Some("42".into()),
        ..thread
    };
    assert_eq!(trigger(&m, BOT, Some(&other), true), None);
    assert_eq!(thread_from_channel(&json!({"id": "1", "type": 0})), None);
}

#[test]
fn history_says_who_said_what_and_keeps_the_newest() {
    let mut bot = guild_message("2", "Rust is a systems language.", false);
    bot["author"] = json!({ "id": BOT, "username": "switchboard", "bot": true });
    let msgs = vec![
        parse(guild_message("1", &format!("<@{BOT}> what is Rust?"), true)),
        parse(bot),
        parse(guild_message("3", "", false)),
    ];
    let h = history(&msgs, BOT, 10, 10_000);
    assert_eq!(
        h,
        vec![
            ChatMessage::new(Role::User, "Ada: what is Rust?"),
            ChatMessage::new(Role::Assistant, "Rust is a systems language."),
        ]
    );
    assert_eq!(history(&msgs, BOT, 1, 10_000).len(), 1);
    assert_eq!(history(&msgs, BOT, 1, 10_000)[0].role, Role::Assistant);
    // A budget that holds only the newest message drops the older one.
    let newest = "Rust is a systems language.".chars().count();
    assert_eq!(
        history(&msgs, BOT, 10, newest + 5),
        vec![ChatMessage::new(
            Role::Assistant,
            "Rust is a systems language."
        )]
    );
}

#[test]
fn attachments_are_described_for_the_prompt() {
    let mut v = guild_message("8", &format!("<@{BOT}> what is this?"), true);
    v["attachments"] = json!([{ "id": "9", "filename": "chart.png", "size": 2048,
        "url": "https://cdn.example/chart.png", "proxy_url": "https://media.example/chart.png",
        "content_type": "image/png" }]);
    let inbound = to_inbound(&parse(v), BOT, None, vec![]);
    assert_eq!(
        inbound.attachments,
        vec!["chart.png (image/png, 2048 bytes)"]
    );
}
