//! `[providers.NAME]`: the model providers, tagged by `kind` — OpenAI-compatible and
//! Anthropic servers over HTTP, and the embedded model run in-process — with their defaults
//! and the rules each kind's settings must follow.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Price, Secret, SensitiveMap};

/// `[providers.NAME]`: one model provider, tagged by `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ProviderConfig {
    /// OpenAI Chat Completions, or any compatible server.
    Openai(HttpProviderConfig),
    /// Anthropic Messages.
    Anthropic(HttpProviderConfig),
    /// A GGUF model run in-process on the CPU.
    Local(LocalConfig),
}

impl ProviderConfig {
    /// The HTTP settings of a hosted provider; `None` for the embedded model.
    pub fn http(&self) -> Option<&HttpProviderConfig> {
        match self {
            ProviderConfig::Openai(c) | ProviderConfig::Anthropic(c) => Some(c),
            ProviderConfig::Local(_) => None,
        }
    }

    /// The HTTP settings of a hosted provider, to fill in its key at load.
    pub(super) fn http_mut(&mut self) -> Option<&mut HttpProviderConfig> {
        match self {
            ProviderConfig::Openai(c) | ProviderConfig::Anthropic(c) => Some(c),
            ProviderConfig::Local(_) => None,
        }
    }

    /// Rules of `[providers.NAME]`, by kind.
    pub(super) fn check(&self, name: &str) -> Result<(), ConfigError> {
        match self {
            ProviderConfig::Local(local) => check_local(name, local),
            ProviderConfig::Openai(http) | ProviderConfig::Anthropic(http) => http.check(name),
        }
    }
}

/// The name of the built-in embedded model.
pub const EMBEDDED_MODEL: &str = "smollm2-135m-instruct";

/// `[providers.NAME]` with `kind = "local"`: the embedded model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// The built-in model to run (fetched on first use).
    #[serde(default = "default_local_model")]
    pub model: String,
    /// Run this GGUF file instead of a built-in model.
    pub path: Option<PathBuf>,
    /// Where models are fetched to; default `data_dir/models`.
    pub models_dir: Option<PathBuf>,
    /// CPU threads per generation; default cores − 1 (at least 1).
    pub threads: Option<usize>,
    /// Context window in tokens (prompt plus answer).
    #[serde(default = "default_context")]
    pub context_tokens: u32,
    /// Generations at once.
    #[serde(default = "default_slots")]
    pub slots: usize,
    /// Requests that may wait for a slot; past that the model answers "busy".
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// What to do with a conversation longer than the context: `trim` the
    /// oldest history, or `refuse` it.
    #[serde(default)]
    pub overflow: OverflowPolicy,
    /// `max_tokens` when neither request nor prompt sets one.
    #[serde(default = "default_local_max_tokens")]
    pub default_max_tokens: u32,
    /// Sample from the `top_k` likeliest tokens (0: all) when not greedy.
    #[serde(default = "default_top_k")]
    pub top_k: i32,
    /// Makes tokens generated in the last `repeat_last_n` less likely, so
    /// the small default model does not loop at temperature 0; 1.0 turns it
    /// off. From 1.0 to 2.0.
    #[serde(default = "default_repeat_penalty")]
    pub repeat_penalty: f32,
    /// How many of the latest generated tokens the penalty looks back on.
    #[serde(default = "default_repeat_last_n")]
    pub repeat_last_n: u32,
    /// Time allowed until the first token, queueing included.
    #[serde(default = "default_local_first_token_ms")]
    pub first_token_timeout_ms: u64,
    /// Time allowed for a whole answer.
    #[serde(default = "default_total_ms")]
    pub total_timeout_ms: u64,
}

fn default_local_model() -> String {
    EMBEDDED_MODEL.to_string()
}
fn default_context() -> u32 {
    2048
}
fn default_slots() -> usize {
    1
}
fn default_queue() -> usize {
    8
}
fn default_local_max_tokens() -> u32 {
    512
}
fn default_top_k() -> i32 {
    40
}
fn default_repeat_penalty() -> f32 {
    switchboard_embedded::DEFAULT_REPEAT_PENALTY
}
fn default_repeat_last_n() -> u32 {
    switchboard_embedded::DEFAULT_REPEAT_LAST_N.unsigned_abs()
}
fn default_local_first_token_ms() -> u64 {
    120_000
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            model: default_local_model(),
            path: None,
            models_dir: None,
            threads: None,
            context_tokens: default_context(),
            slots: default_slots(),
            queue: default_queue(),
            overflow: OverflowPolicy::default(),
            default_max_tokens: default_local_max_tokens(),
            top_k: default_top_k(),
            repeat_penalty: default_repeat_penalty(),
            repeat_last_n: default_repeat_last_n(),
            first_token_timeout_ms: default_local_first_token_ms(),
            total_timeout_ms: default_total_ms(),
        }
    }
}

/// What the embedded model does with a conversation longer than its context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverflowPolicy {
    /// Drop the oldest history until it fits.
    #[default]
    Trim,
    /// Refuse with an error.
    Refuse,
}

/// Settings shared by the HTTP providers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProviderConfig {
    /// Base URL; default is the vendor's (`https://api.openai.com/v1`,
    /// `https://api.anthropic.com/v1`).
    pub base_url: Option<String>,
    /// The environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// A file holding the API key (for secret mounts).
    pub api_key_file: Option<PathBuf>,
    /// Send the key in this header instead of the usual one (`api-key` for
    /// Azure OpenAI).
    pub api_key_header: Option<String>,
    /// Extra headers sent with every request. Their values may be secrets
    /// (a gateway's token): they never print.
    #[serde(default)]
    pub headers: SensitiveMap,
    /// Extra query parameters (`api-version` for Azure OpenAI). Their values
    /// may be secrets (a signature): they never print.
    #[serde(default)]
    pub query: SensitiveMap,
    /// Connect timeout.
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// Time allowed until the first token. Every answer is streamed from
    /// the provider, plain requests included, so it holds for both.
    #[serde(default = "default_first_token_ms")]
    pub first_token_timeout_ms: u64,
    /// Time allowed for a whole answer.
    #[serde(default = "default_total_ms")]
    pub total_timeout_ms: u64,
    /// `max_tokens` sent when the request sets none (Anthropic requires one).
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u32,
    /// Prices in USD per million tokens, by model name.
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
    /// The key itself, read from `api_key_env` or `api_key_file` at load.
    #[serde(skip)]
    pub api_key: Option<Secret>,
}

fn default_connect_ms() -> u64 {
    5_000
}
fn default_first_token_ms() -> u64 {
    60_000
}
fn default_total_ms() -> u64 {
    600_000
}
fn default_max_tokens() -> u32 {
    1024
}

impl HttpProviderConfig {
    /// Rules of `[providers.NAME]` with `kind = "openai"` or `"anthropic"`.
    fn check(&self, name: &str) -> Result<(), ConfigError> {
        if let Some(base) = &self.base_url
            && reqwest::Url::parse(base).is_err()
        {
            return Err(ConfigError::key(
                format!("providers.{name}.base_url"),
                Some(base.clone()),
                "is not a URL; write it like https://api.openai.com/v1",
            ));
        }
        if self.total_timeout_ms == 0
            || self.first_token_timeout_ms == 0
            || self.connect_timeout_ms == 0
        {
            return Err(ConfigError::key(
                format!("providers.{name}"),
                None,
                "timeouts must be greater than zero milliseconds",
            ));
        }
        Ok(())
    }
}

/// Rules of `[providers.NAME]` with `kind = "local"`.
fn check_local(name: &str, local: &LocalConfig) -> Result<(), ConfigError> {
    let key = |k: &str| format!("providers.{name}.{k}");
    if local.path.is_none() && local.model != EMBEDDED_MODEL {
        return Err(ConfigError::key(
            key("model"),
            Some(format!("{:?}", local.model)),
            format!(
                "is not a built-in model; built-in: {EMBEDDED_MODEL}, or set `path` to a GGUF file"
            ),
        ));
    }
    if local.threads == Some(0) || local.slots == 0 {
        return Err(ConfigError::key(
            format!("providers.{name}"),
            None,
            "`threads` and `slots` must be at least 1",
        ));
    }
    if let Err(e) = switchboard_embedded::check_repeat_penalty(local.repeat_penalty) {
        return Err(ConfigError::key(
            key("repeat_penalty"),
            Some(local.repeat_penalty.to_string()),
            e.trim_start_matches("repeat_penalty "),
        ));
    }
    if local.context_tokens < 128 {
        return Err(ConfigError::key(
            key("context_tokens"),
            Some(local.context_tokens.to_string()),
            "must be at least 128",
        ));
    }
    if local.first_token_timeout_ms == 0 || local.total_timeout_ms == 0 {
        return Err(ConfigError::key(
            format!("providers.{name}"),
            None,
            "timeouts must be greater than zero milliseconds",
        ));
    }
    Ok(())
}
