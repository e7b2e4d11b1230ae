//! Discord's documented payloads, as the adapter reads them: messages
//! (`MESSAGE_CREATE`, or `GET /channels/{id}/messages`), their authors,
//! attachments and references, and the threads the bot knows of. Plain
//! data: the REST client returns it and every part reads it.

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
