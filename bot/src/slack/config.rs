//! `[slack]` in switchboard.toml: the adapter's settings, checked with
//! errors that name the key and the fix, and the secrets read from the
//! variables the settings name.

use gateway::Config;
use serde::Deserialize;

/// Slack's Web API.
pub const DEFAULT_API_BASE: &str = "https://slack.com/api";
/// Why the Slack adapter could not start.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    /// `[slack]` does not parse.
    #[error("invalid [slack] section: {0} (see the [slack] section of switchboard.example.toml)")]
    Config(String),
    /// A secret's variable is not set.
    #[error(
        "slack.{key} names the environment variable `{var}`, which is not set: export it with the value from the Slack app's settings"
    )]
    MissingSecret {
        /// The key naming the variable.
        key: &'static str,
        /// The variable.
        var: String,
    },
}

/// `[slack]` in switchboard.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The variable holding the bot token (`xoxb-…`).
    pub bot_token_env: String,
    /// The variable holding the app's signing secret (needed for the
    /// HTTP endpoints; Socket Mode does without).
    #[serde(default)]
    pub signing_secret_env: Option<String>,
    /// The variable holding an app-level token (`xapp-…`, scope
    /// `connections:write`): set, Slack is reached over Socket Mode
    /// instead of the HTTP endpoints.
    #[serde(default)]
    pub app_token_env: Option<String>,
    /// Socket Mode: a connection on which nothing (not even a ping)
    /// arrived for this long is dropped and opened again (milliseconds).
    #[serde(default = "default_socket_watchdog_ms")]
    pub socket_watchdog_ms: u64,
    /// The Web API's base URL.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// Answer messages from other bots too.
    #[serde(default)]
    pub reply_to_bots: bool,
    /// `chat.update` calls per minute shared by all answers in one
    /// workspace while they stream (Slack's Tier 3 allows about 50).
    #[serde(default = "default_updates_per_minute")]
    pub updates_per_minute: u32,
    /// The most earlier thread messages given to the model.
    #[serde(default = "default_history_messages")]
    pub history_messages: usize,
    /// The most characters of earlier thread messages given to the model
    /// (about four per token); the oldest are left out first.
    #[serde(default = "default_history_chars")]
    pub history_chars: usize,
    /// The status shown under the thread while the model has not started.
    #[serde(default = "default_status")]
    pub thinking_status: String,
    /// How long a `/prompt` command may take before its answer goes
    /// through `response_url` instead (milliseconds; Slack waits 3 s).
    #[serde(default = "default_inline_ms")]
    pub command_inline_ms: u64,
    /// Channels (`C0123…`) whose threads are kept as knowledge: backfilled
    /// by `switchboard knowledge sync SOURCE` (or `/knowledge sync` in the
    /// channel) and kept current from message events.
    #[serde(default)]
    pub knowledge_channels: Vec<String>,
    /// The knowledge source the channels' threads go into, scoped to the
    /// workspace; a prompt's `[retrieval] sources` names it.
    #[serde(default = "default_knowledge_source")]
    pub knowledge_source: String,
    /// Where the message shortcuts ("Summarize thread", "Ask Switchboard
    /// about this") answer: `thread` (in the message's thread, for
    /// everyone) or `ephemeral` (to the user who asked, only).
    #[serde(default)]
    pub shortcut_reply: ShortcutReply,
    /// The most characters of a thread a shortcut gives the model; the
    /// oldest messages are left out first (and the model is told).
    #[serde(default = "default_shortcut_chars")]
    pub shortcut_chars: usize,
}

/// Where a message shortcut answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShortcutReply {
    /// In the message's thread.
    #[default]
    Thread,
    /// To the user who asked, only.
    Ephemeral,
}

fn default_shortcut_chars() -> usize {
    32_000
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.to_string()
}
fn default_updates_per_minute() -> u32 {
    50
}
fn default_history_messages() -> usize {
    50
}
fn default_history_chars() -> usize {
    16_000
}
fn default_status() -> String {
    "is thinking…".to_string()
}
fn default_inline_ms() -> u64 {
    2_000
}
fn default_knowledge_source() -> String {
    "slack".to_string()
}
fn default_socket_watchdog_ms() -> u64 {
    60_000
}

/// The secrets the adapter runs with.
pub struct Secrets {
    /// The bot token (`xoxb-…`).
    pub bot_token: String,
    /// The signing secret, for the HTTP endpoints.
    pub signing_secret: Option<String>,
    /// The app-level token (`xapp-…`), for Socket Mode.
    pub app_token: Option<String>,
}

impl SlackConfig {
    /// Reads `[slack]` from the configuration, if present.
    pub fn from_config(config: &Config) -> Result<Option<SlackConfig>, SlackError> {
        let Some(table) = &config.slack else {
            return Ok(None);
        };
        let parsed: SlackConfig = table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| SlackError::Config(e.message().to_string()))?;
        if parsed.updates_per_minute == 0 {
            return Err(SlackError::Config(
                "slack.updates_per_minute must be at least 1".into(),
            ));
        }
        if !(parsed.api_base.starts_with("https://") || parsed.api_base.starts_with("http://")) {
            return Err(SlackError::Config(format!(
                "slack.api_base `{}` must be an http(s) URL such as {DEFAULT_API_BASE}",
                parsed.api_base
            )));
        }
        if parsed.app_token_env.is_none() && parsed.signing_secret_env.is_none() {
            return Err(SlackError::Config(
                "slack.signing_secret_env is missing: the HTTP endpoints need the signing secret (or set slack.app_token_env to use Socket Mode)".into(),
            ));
        }
        if parsed.socket_watchdog_ms < 100 {
            return Err(SlackError::Config(
                "slack.socket_watchdog_ms must be at least 100 (Slack pings every few seconds; 60000 is a good value)".into(),
            ));
        }
        if !prompts::is_source_name(&parsed.knowledge_source) {
            return Err(SlackError::Config(format!(
                "slack.knowledge_source `{}` is not a source name: use letters, digits, `-`, `_` and `.`",
                parsed.knowledge_source
            )));
        }
        if let Some(bad) = parsed.knowledge_channels.iter().find(|c| !is_channel_id(c)) {
            return Err(SlackError::Config(format!(
                "slack.knowledge_channels: `{bad}` is not a channel id: give ids such as C0123ABCD (the channel's details in Slack show it), not names"
            )));
        }
        Ok(Some(parsed))
    }

    /// The secrets, from the variables that `bot_token_env`,
    /// `signing_secret_env` and `app_token_env` name.
    pub fn secrets(&self, env: &gateway::config::Env) -> Result<Secrets, SlackError> {
        let secret = |key: &'static str, var: &str| {
            env.get(var)
                .map(str::to_string)
                .ok_or_else(|| SlackError::MissingSecret {
                    key,
                    var: var.to_string(),
                })
        };
        Ok(Secrets {
            bot_token: secret("bot_token_env", &self.bot_token_env)?,
            signing_secret: self
                .signing_secret_env
                .as_deref()
                .map(|var| secret("signing_secret_env", var))
                .transpose()?,
            app_token: self
                .app_token_env
                .as_deref()
                .map(|var| secret("app_token_env", var))
                .transpose()?,
        })
    }
}

/// A Slack conversation id: `C`, `G` or `D`, then capitals and digits.
pub fn is_channel_id(id: &str) -> bool {
    id.len() >= 3
        && id.starts_with(['C', 'G', 'D'])
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}
