//! Who asked, and from where: one identity for a person on a platform
//! ([`User`], with one text form, `slack:U123`), the [`Origin`] of a request
//! (platform, workspace, channel, thread, user) and the normalized chat
//! message an adapter hands the gateway ([`Inbound`]).
//!
//! Every layer that names a person uses [`User`] and its text form: the
//! stored asker of an answer, the voter of a piece of feedback (and so the
//! direct-message rule between them), admin actors, per-user rate limits and
//! A/B assignment. A platform's bare id (`U123`) is only ever the `id` part.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ChatMessage, Image};

/// A person on a platform. Its text form, `platform:id` (`slack:U0123`,
/// `discord:80351110224678912`, `http:alice`), is what the store, limits,
/// admin lists and A/B assignment compare; two users are the same person
/// exactly when their text forms are equal.
///
/// The workspace is not part of it: Slack and Discord user ids are unique
/// across workspaces and guilds, so a person who appears in two is one
/// person; where the workspace matters (limits, bindings) the [`Origin`]
/// carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct User {
    /// `slack`, `discord`, `console`, `http`, `cli`, `dashboard`, …
    pub platform: String,
    /// The platform's own id of the person (`U0123`), or the HTTP API
    /// caller's `user` field.
    pub id: String,
}

impl User {
    /// The user `id` on `platform`.
    pub fn new(platform: impl Into<String>, id: impl Into<String>) -> User {
        User {
            platform: platform.into(),
            id: id.into(),
        }
    }

    /// Reads the text form `platform:id`; `None` without a platform part
    /// or with an empty side.
    pub fn parse(text: &str) -> Option<User> {
        let (platform, id) = text.split_once(':')?;
        (!platform.is_empty() && !id.is_empty()).then(|| User::new(platform, id))
    }

    /// The text form, `platform:id`.
    pub fn key(&self) -> String {
        self.to_string()
    }
}

impl std::fmt::Display for User {
    /// `platform:id`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.platform, self.id)
    }
}

impl Serialize for User {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for User {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<User, D::Error> {
        let text = String::deserialize(d)?;
        User::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a user: write it as platform:id, e.g. slack:U0123"
            ))
        })
    }
}

/// Where a request comes from. Every field is optional except the platform,
/// so the HTTP API and the console fill only what they know.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "OriginWire")]
pub struct Origin {
    /// `console`, `http`, `slack`, `discord`.
    pub platform: String,
    /// Slack workspace (team) or Discord guild.
    pub workspace: Option<String>,
    /// Channel id.
    pub channel: Option<String>,
    /// Thread id (Slack `thread_ts`, Discord thread channel).
    pub thread: Option<String>,
    /// The person who asked.
    pub user: Option<User>,
    /// A direct message: only `user` may leave feedback on its answers.
    #[serde(default)]
    pub private: bool,
    /// A name the caller gave the person it asks for (the HTTP API's own
    /// `user` field), under the caller's authority: recorded as the asker's
    /// name and used to keep each such person on one A/B arm, never for
    /// limits, feedback or the direct-message rule, which go by `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl Origin {
    /// An origin on `platform` that names nothing else yet.
    pub fn on(platform: impl Into<String>) -> Origin {
        Origin {
            platform: platform.into(),
            ..Origin::default()
        }
    }

    /// The asker's id on their platform (`U0123`), for prompts that mention
    /// them; empty when no user is known.
    pub fn user_id(&self) -> &str {
        self.user.as_ref().map_or("", |u| u.id.as_str())
    }

    /// Whom an A/B split assigns: the user, and under it the caller's own
    /// label for the person when there is one (`http:crm/alice`).
    pub fn assignment_key(&self) -> String {
        let user = self
            .user
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        match &self.label {
            Some(label) => format!("{user}/{label}"),
            None => user,
        }
    }
}

/// An [`Origin`] as spooled rows hold it. Rows spooled before users had
/// one text form hold the platform's bare id (`U0123`, never with a colon
/// on Slack or Discord); it is read as a user of the origin's own platform.
#[derive(Deserialize)]
struct OriginWire {
    platform: String,
    workspace: Option<String>,
    channel: Option<String>,
    thread: Option<String>,
    user: Option<String>,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    label: Option<String>,
}

impl From<OriginWire> for Origin {
    fn from(w: OriginWire) -> Origin {
        let user = w
            .user
            .map(|text| User::parse(&text).unwrap_or_else(|| User::new(w.platform.clone(), text)));
        Origin {
            platform: w.platform,
            workspace: w.workspace,
            channel: w.channel,
            thread: w.thread,
            user,
            private: w.private,
            label: w.label,
        }
    }
}

/// One normalized user message from any adapter.
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    /// Where it came from.
    pub origin: Origin,
    /// The user's display name, for the prompt.
    pub user_name: Option<String>,
    /// The channel's name, for the prompt.
    pub channel_name: Option<String>,
    /// The workspace's or server's name, for the prompt.
    pub workspace_name: Option<String>,
    /// What the user wrote, with the bot's mention removed.
    pub text: String,
    /// The conversation before this message, oldest first.
    pub history: Vec<ChatMessage>,
    /// Descriptions of attached files, for prompts that mention them.
    pub attachments: Vec<String>,
    /// Images attached to the message: sent with the question to aliases
    /// with `vision = true`; for others the reply lists them as unread.
    pub images: Vec<Image>,
    /// Whether the platform says this user is an admin.
    pub is_admin: bool,
    /// Whether the front end shows Approve / Deny for a tool that asks
    /// first (`ReplyEvent::Approval`); where it cannot, such a tool is not
    /// run.
    pub confirms: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_has_one_text_form_that_reads_back() {
        let alice = User::new("slack", "UALICE");
        assert_eq!(alice.to_string(), "slack:UALICE");
        assert_eq!(User::parse("slack:UALICE"), Some(alice.clone()));
        // An API caller's own id may hold colons: only the first one splits.
        assert_eq!(
            User::parse("http:team:alice"),
            Some(User::new("http", "team:alice"))
        );
        assert_eq!(User::parse("UALICE"), None);
        assert_eq!(User::parse(":x"), None);
        assert_eq!(serde_json::to_string(&alice).unwrap(), "\"slack:UALICE\"");
    }

    #[test]
    fn origins_spooled_with_a_bare_user_id_read_as_that_platforms_user() {
        let old: Origin =
            serde_json::from_str(r#"{"platform":"slack","workspace":"T1","channel":"D1","thread":null,"user":"UALICE","private":true}"#)
                .unwrap();
        assert_eq!(old.user, Some(User::new("slack", "UALICE")));
        let new = Origin {
            user: Some(User::new("http", "team:alice")),
            ..Origin::on("http")
        };
        let back: Origin = serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
        assert_eq!(back, new);
    }
}
