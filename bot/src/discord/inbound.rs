//! From Discord's payloads to the gateway's [`Inbound`]: which messages the
//! bot answers (triggers), and what it hands the pipeline. Pure functions
//! over the documented JSON shapes, so that every rule is tested without a
//! network.

use gateway::{ChatMessage, Inbound, Origin, Role};
use serde::Deserialize;

/// A Discord user, as embedded in messages and interactions.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct User {
    /// Snowflake id.
    pub id: String,
    /// The unique user name.
    #[serde(default)]
    pub username: String,
    /// The display name, when set.
    #[serde(default)]
    pub global_name: Option<String>,
    /// Whether the user is a bot.
    #[serde(default)]
    pub bot: bool,
}

impl User {
    /// The name people see.
    pub fn display(&self) -> &str {
        self.global_name.as_deref().unwrap_or(&self.username)
    }
}

/// A guild member (partial, as in `MESSAGE_CREATE`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Member {
    /// The server nickname.
    #[serde(default)]
    pub nick: Option<String>,
}

/// A file attached to a message.
#[derive(Debug, Clone, Deserialize)]
pub struct Attachment {
    /// The file name.
    pub filename: String,
    /// The MIME type, when Discord knows it.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Where the CDN serves it.
    #[serde(default)]
    pub url: Option<String>,
}

impl Attachment {
    /// Whether Discord says it is an image.
    pub fn is_image(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("image/"))
    }
}

/// `message_reference`: what a reply answers.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageReference {
    /// The referenced message.
    #[serde(default)]
    pub message_id: Option<String>,
    /// Its channel.
    #[serde(default)]
    pub channel_id: Option<String>,
}

/// A message (`MESSAGE_CREATE`, or `GET /channels/{id}/messages`).
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    /// Snowflake id.
    pub id: String,
    /// The channel (or thread) it was posted in.
    pub channel_id: String,
    /// The guild; absent in DMs (and in REST responses).
    #[serde(default)]
    pub guild_id: Option<String>,
    /// Who wrote it.
    pub author: User,
    /// The author as a guild member (gateway events in guilds).
    #[serde(default)]
    pub member: Option<Member>,
    /// The text; empty without the `MESSAGE_CONTENT` intent, except for
    /// mentions, DMs and replies to the bot.
    #[serde(default)]
    pub content: String,
    /// Users mentioned.
    #[serde(default)]
    pub mentions: Vec<User>,
    /// Attached files.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// What this message replies to.
    #[serde(default)]
    pub message_reference: Option<MessageReference>,
    /// The replied-to message, when Discord includes it.
    #[serde(default)]
    pub referenced_message: Option<Box<Message>>,
    /// Components (buttons) on the message.
    #[serde(default)]
    pub components: Vec<serde_json::Value>,
}

/// A thread the bot knows of (`THREAD_CREATE`, `GUILD_CREATE` threads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    /// The thread's channel id.
    pub id: String,
    /// The channel it hangs from.
    pub parent_id: Option<String>,
    /// Who started it.
    pub owner_id: Option<String>,
}

/// Why the bot answers a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The bot was mentioned.
    Mention,
    /// A direct message.
    Direct,
    /// A reply to one of the bot's messages.
    ReplyToBot,
    /// A message in a thread the bot started.
    BotThread,
}

/// Decides whether the bot answers `msg`. The bot never answers itself or
/// other bots (two bots would answer each other forever).
pub fn trigger(
    msg: &Message,
    bot_id: &str,
    thread: Option<&Thread>,
    answer_in_bot_threads: bool,
) -> Option<Trigger> {
    if msg.author.id == bot_id || msg.author.bot {
        return None;
    }
    if msg.guild_id.is_none() {
        return Some(Trigger::Direct);
    }
    if msg.mentions.iter().any(|u| u.id == bot_id) || mentions_in_text(&msg.content, bot_id) {
        return Some(Trigger::Mention);
    }
    if msg
        .referenced_message
        .as_ref()
        .is_some_and(|r| r.author.id == bot_id)
    {
        return Some(Trigger::ReplyToBot);
    }
    if answer_in_bot_threads && thread.is_some_and(|t| t.owner_id.as_deref() == Some(bot_id)) {
        return Some(Trigger::BotThread);
    }
    None
}

fn mentions_in_text(text: &str, bot_id: &str) -> bool {
    text.contains(&format!("<@{bot_id}>")) || text.contains(&format!("<@!{bot_id}>"))
}

/// `text` without the bot's mentions, trimmed.
pub fn strip_mention(text: &str, bot_id: &str) -> String {
    text.replace(&format!("<@!{bot_id}>"), "")
        .replace(&format!("<@{bot_id}>"), "")
        .trim()
        .to_string()
}

/// The message as the gateway's [`Inbound`]. `thread` is the thread the
/// message was posted in, if known; `history` the conversation before it,
/// oldest first (see [`history`]).
pub fn to_inbound(
    msg: &Message,
    bot_id: &str,
    thread: Option<&Thread>,
    history: Vec<ChatMessage>,
) -> Inbound {
    let (channel, thread_id) = match thread {
        Some(t) => (
            t.parent_id.clone().unwrap_or_else(|| t.id.clone()),
            Some(t.id.clone()),
        ),
        None => (msg.channel_id.clone(), None),
    };
    let user_name = msg
        .member
        .as_ref()
        .and_then(|m| m.nick.clone())
        .unwrap_or_else(|| msg.author.display().to_string());
    Inbound {
        origin: Origin {
            platform: "discord".to_string(),
            workspace: msg.guild_id.clone(),
            channel: Some(channel),
            thread: thread_id,
            user: Some(msg.author.id.clone()),
            // Direct messages carry no guild.
            private: msg.guild_id.is_none(),
        },
        user_name: Some(user_name),
        channel_name: None,
        workspace_name: None,
        text: strip_mention(&msg.content, bot_id),
        history,
        attachments: msg.attachments.iter().map(describe_attachment).collect(),
        images: Vec::new(),
        is_admin: false,
    }
}

/// One attachment as the prompt sees it: name, type and size.
pub fn describe_attachment(a: &Attachment) -> String {
    format!(
        "{} ({}, {} bytes)",
        a.filename,
        a.content_type.as_deref().unwrap_or("unknown type"),
        a.size
    )
}

/// The note an answer ends with when images of the question went unseen:
/// `text_only` because the model reads text only, `unreadable` because they
/// could not be fetched (or are too large or of a type models do not take).
pub fn image_note(text_only: &[String], unreadable: &[String]) -> Option<String> {
    let list = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines = Vec::new();
    if !text_only.is_empty() {
        lines.push(format!(
            "-# I could not look at {}: the model answering here reads text only.",
            list(text_only)
        ));
    }
    if !unreadable.is_empty() {
        lines.push(format!(
            "-# I could not look at {}: the image could not be read (too large, or not PNG, JPEG, GIF or WebP).",
            list(unreadable)
        ));
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Earlier messages as chat turns, oldest first: the bot's own as the
/// assistant's, everyone else's as the user's, prefixed with who said it.
/// Messages without text (content not visible) are left out; at most `max`
/// of the newest are kept, and no more of them than fit in `max_chars`.
pub fn history(
    messages: &[Message],
    bot_id: &str,
    max: usize,
    max_chars: usize,
) -> Vec<ChatMessage> {
    let turns: Vec<ChatMessage> = messages
        .iter()
        .filter_map(|m| {
            let text = strip_mention(&m.content, bot_id);
            if text.is_empty() {
                return None;
            }
            Some(if m.author.id == bot_id {
                ChatMessage::new(Role::Assistant, text)
            } else {
                let name = m
                    .member
                    .as_ref()
                    .and_then(|mm| mm.nick.as_deref())
                    .unwrap_or(m.author.display());
                ChatMessage::new(Role::User, format!("{name}: {text}"))
            })
        })
        .collect();
    let mut kept: Vec<ChatMessage> = Vec::new();
    let mut chars = 0;
    for turn in turns.into_iter().rev().take(max) {
        chars += turn.content.chars().count();
        if chars > max_chars {
            break;
        }
        kept.push(turn);
    }
    kept.reverse();
    kept
}

/// Reads a thread from a `THREAD_CREATE` (or `GUILD_CREATE` `threads[]`)
/// channel object; `None` for channels that are not threads.
pub fn thread_from_channel(channel: &serde_json::Value) -> Option<Thread> {
    // 10 announcement thread, 11 public thread, 12 private thread.
    let kind = channel.get("type")?.as_u64()?;
    if !(10..=12).contains(&kind) {
        return None;
    }
    let text = |k: &str| channel.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Some(Thread {
        id: text("id")?,
        parent_id: text("parent_id"),
        owner_id: text("owner_id"),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!(inbound.origin.user.as_deref(), Some("1400000000000000001"));
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
}
