//! The `[discord]` section of the configuration. The gateway keeps it as a
//! raw table so that it stays free of platform types; this module reads and
//! checks it, with errors that name the key (`discord.X`) and the fix.

use std::time::Duration;

use serde::Deserialize;

/// Discord's REST API, version 10.
pub const DEFAULT_API_BASE: &str = "https://discord.com/api/v10";
/// The path every API base ends in: the API version the bot speaks.
const API_PATH: &str = "/api/v10";
/// The origin the Discord client library sends requests to, unless told
/// to send them elsewhere.
const DISCORD_ORIGIN: &str = "https://discord.com";

/// Why `[discord]` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key has the wrong type or is unknown.
    #[error("discord.{key}: {message}")]
    Invalid {
        /// The key, as written under `[discord]`.
        key: String,
        /// What is wrong and what to write instead.
        message: String,
    },
    /// The environment variable named by `token_env` is not set.
    #[error(
        "discord.token_env: the environment variable `{var}` is not set; put the bot token from the Discord developer portal (Bot → Reset Token) in it"
    )]
    MissingToken {
        /// The variable's name.
        var: String,
    },
}

/// `[discord]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default = "default_token_env")]
    token_env: String,
    application_id: String,
    #[serde(default)]
    api_base: Option<String>,
    #[serde(default)]
    shards: Option<RawShards>,
    #[serde(default = "default_edit_interval_ms")]
    edit_interval_ms: u64,
    #[serde(default = "default_history")]
    history: usize,
    #[serde(default = "default_history_chars")]
    history_chars: usize,
    #[serde(default = "default_true")]
    answer_in_bot_threads: bool,
    #[serde(default)]
    message_content: bool,
    #[serde(default)]
    knowledge_channels: Vec<String>,
    #[serde(default = "default_knowledge_source")]
    knowledge_source: String,
}

fn default_knowledge_source() -> String {
    "discord".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShards {
    total: u32,
    #[serde(default)]
    first: Option<u32>,
    #[serde(default)]
    last: Option<u32>,
}

fn default_token_env() -> String {
    "DISCORD_TOKEN".to_string()
}
fn default_edit_interval_ms() -> u64 {
    1000
}
fn default_history() -> usize {
    20
}
fn default_history_chars() -> usize {
    12_000
}
fn default_true() -> bool {
    true
}

/// Which shards this replica runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shards {
    /// How many shards the bot has in all.
    pub total: u32,
    /// The first shard this replica runs.
    pub first: u32,
    /// The last shard this replica runs (inclusive).
    pub last: u32,
}

/// The checked Discord settings. The token is kept out of `Debug`.
#[derive(Clone)]
pub struct DiscordConfig {
    /// The bot token (never printed).
    pub(crate) token: String,
    /// The application (client) id, for commands and interaction edits.
    pub application_id: String,
    /// The REST base URL, without a trailing slash.
    pub api_base: String,
    /// The shards this replica runs.
    pub shards: Shards,
    /// The shortest time between two writes to one channel.
    pub edit_interval: Duration,
    /// How many earlier messages (reply chain or thread) go to the model.
    pub history: usize,
    /// The most characters of earlier messages given to the model (the
    /// oldest are left out first), so that long threads fit its context.
    pub history_chars: usize,
    /// Whether every message in a thread the bot started is answered.
    pub answer_in_bot_threads: bool,
    /// Whether the privileged `MESSAGE_CONTENT` intent is requested.
    pub message_content: bool,
    /// Channels whose messages and threads are kept as knowledge.
    pub knowledge_channels: Vec<String>,
    /// The knowledge source they go into, scoped to the server.
    pub knowledge_source: String,
}

impl std::fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordConfig")
            .field("token", &"<redacted>")
            .field("application_id", &self.application_id)
            .field("api_base", &self.api_base)
            .field("shards", &self.shards)
            .field("edit_interval", &self.edit_interval)
            .field("history", &self.history)
            .field("history_chars", &self.history_chars)
            .field("answer_in_bot_threads", &self.answer_in_bot_threads)
            .field("message_content", &self.message_content)
            .field("knowledge_channels", &self.knowledge_channels)
            .field("knowledge_source", &self.knowledge_source)
            .finish()
    }
}

impl DiscordConfig {
    /// The origin (scheme, host and port) that stands in for
    /// `https://discord.com` when `api_base` points elsewhere (a proxy, a
    /// test double); `None` for Discord itself.
    pub fn api_origin(&self) -> Option<&str> {
        let origin = self.api_base.strip_suffix(API_PATH)?;
        (origin != DISCORD_ORIGIN).then_some(origin)
    }

    /// The application id as a number (checked when the settings were read).
    pub fn application_id(&self) -> u64 {
        self.application_id.parse().unwrap_or_default()
    }

    /// Reads `[discord]`; `env` looks up the token's variable.
    pub fn parse(
        table: &toml::Table,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<DiscordConfig, ConfigError> {
        let value = toml::Value::Table(table.clone());
        let raw: Raw = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." { String::new() } else { path };
            let message = e.into_inner().to_string();
            let message = message.trim().to_string();
            ConfigError::Invalid {
                key: if key.is_empty() {
                    "(section)".to_string()
                } else {
                    key
                },
                message,
            }
        })?;
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_string(),
            message,
        };
        if raw
            .application_id
            .parse::<u64>()
            .ok()
            .filter(|id| *id != 0)
            .is_none()
        {
            return Err(invalid(
                "application_id",
                format!(
                    "`{}` is not an application id; copy the numeric Application ID from the developer portal (General Information)",
                    raw.application_id
                ),
            ));
        }
        let api_base = raw
            .api_base
            .unwrap_or_else(|| DEFAULT_API_BASE.to_string())
            .trim_end_matches('/')
            .to_string();
        if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
            return Err(invalid(
                "api_base",
                format!(
                    "`{api_base}` is not an http(s) URL; write for example `{DEFAULT_API_BASE}`"
                ),
            ));
        }
        if !api_base.ends_with(API_PATH) {
            return Err(invalid(
                "api_base",
                format!(
                    "`{api_base}` does not end in `{API_PATH}`, the API version the bot speaks; write for example `{DEFAULT_API_BASE}` or `http://proxy:3000{API_PATH}`"
                ),
            ));
        }
        if raw.edit_interval_ms < 200 {
            return Err(invalid(
                "edit_interval_ms",
                format!(
                    "{} ms is below Discord's rate limits; use 200 or more (1000 is the default)",
                    raw.edit_interval_ms
                ),
            ));
        }
        let shards = match raw.shards {
            None => Shards {
                total: 1,
                first: 0,
                last: 0,
            },
            Some(s) => {
                let first = s.first.unwrap_or(0);
                let last = s.last.unwrap_or(s.total.saturating_sub(1));
                if s.total == 0 || first > last || last >= s.total {
                    return Err(invalid(
                        "shards",
                        format!(
                            "total = {}, first = {first}, last = {last}: need total ≥ 1 and first ≤ last < total",
                            s.total
                        ),
                    ));
                }
                Shards {
                    total: s.total,
                    first,
                    last,
                }
            }
        };
        if let Some(bad) = raw
            .knowledge_channels
            .iter()
            .find(|c| c.parse::<u64>().ok().filter(|id| *id != 0).is_none())
        {
            return Err(invalid(
                "knowledge_channels",
                format!(
                    "`{bad}` is not a channel id; give numeric ids (Developer Mode → right-click the channel → Copy Channel ID)"
                ),
            ));
        }
        if !raw.knowledge_channels.is_empty() && !raw.message_content {
            return Err(invalid(
                "knowledge_channels",
                "reading channels into knowledge needs the message text: set `message_content = true` and enable the Message Content intent in the developer portal (Bot → Privileged Gateway Intents)".to_string(),
            ));
        }
        if !prompts::is_source_name(&raw.knowledge_source) {
            return Err(invalid(
                "knowledge_source",
                format!(
                    "`{}` is not a source name: use letters, digits, `-`, `_` and `.`",
                    raw.knowledge_source
                ),
            ));
        }
        let token = env(&raw.token_env)
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| ConfigError::MissingToken {
                var: raw.token_env.clone(),
            })?;
        Ok(DiscordConfig {
            token: token.trim().to_string(),
            application_id: raw.application_id,
            api_base,
            shards,
            edit_interval: Duration::from_millis(raw.edit_interval_ms),
            history: raw.history,
            history_chars: raw.history_chars,
            answer_in_bot_threads: raw.answer_in_bot_threads,
            message_content: raw.message_content,
            knowledge_channels: raw.knowledge_channels,
            knowledge_source: raw.knowledge_source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, token: Option<&str>) -> Result<DiscordConfig, ConfigError> {
        let table: toml::Table = toml::from_str(text).expect("test TOML");
        DiscordConfig::parse(&table, |var| {
            (var == "DISCORD_TOKEN")
                .then(|| token.map(str::to_string))
                .flatten()
        })
    }

    #[test]
    fn defaults_apply_and_the_token_is_never_printed() {
        let c = parse("application_id = \"123\"", Some("secret-token")).expect("valid");
        assert_eq!(c.api_base, DEFAULT_API_BASE);
        assert_eq!(c.edit_interval, Duration::from_secs(1));
        assert_eq!(
            c.shards,
            Shards {
                total: 1,
                first: 0,
                last: 0
            }
        );
        assert!(!format!("{c:?}").contains("secret-token"));
        assert_eq!(
            c.api_origin(),
            None,
            "Discord itself needs no stand-in origin"
        );
        let c = parse(
            "application_id = \"123\"\napi_base = \"http://127.0.0.1:3000/api/v10/\"",
            Some("t"),
        )
        .expect("valid");
        assert_eq!(c.api_origin(), Some("http://127.0.0.1:3000"));
        assert_eq!(c.application_id(), 123);
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let e = parse("application_id = \"123\"\nedit_intervl_ms = 5", Some("t")).unwrap_err();
        assert!(e.to_string().contains("edit_intervl_ms"), "{e}");
        let e = parse("application_id = \"123\"\nhistory = \"ten\"", Some("t")).unwrap_err();
        assert!(e.to_string().starts_with("discord.history"), "{e}");
        let e = parse("application_id = \"abc\"", Some("t")).unwrap_err();
        assert!(e.to_string().contains("discord.application_id"), "{e}");
        let e = parse(
            "application_id = \"1\"\nshards = { total = 2, first = 2 }",
            Some("t"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("discord.shards"), "{e}");
        let e = parse(
            "application_id = \"1\"\napi_base = \"http://127.0.0.1:9/api\"",
            Some("t"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/api/v10"), "{e}");
        let e = parse(
            "application_id = \"1\"\nknowledge_channels = [\"general\"]\nmessage_content = true",
            Some("t"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("Copy Channel ID"), "{e}");
        let e = parse(
            "application_id = \"1\"\nknowledge_channels = [\"12\"]",
            Some("t"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("message_content = true"), "{e}");
        let e = parse("application_id = \"1\"", None).unwrap_err();
        assert!(e.to_string().contains("DISCORD_TOKEN"), "{e}");
    }
}
