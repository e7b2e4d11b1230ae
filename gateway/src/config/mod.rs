//! Configuration: one TOML file plus environment overrides, checked as a
//! whole before anything starts.
//!
//! The file is found at `--config FILE`, else `$SWITCHBOARD_CONFIG`, else
//! `./switchboard.toml`, else there is none and the embedded defaults apply.
//! Any key can be overridden by an environment variable named
//! `SWITCHBOARD__` followed by the key's path in capitals with `__` between
//! the parts (`SWITCHBOARD__SERVER__LISTEN`, `SWITCHBOARD__PROVIDERS__OPENAI__BASE_URL`).
//! Secrets never live in the file: keys such as `api_key` are refused, and
//! a provider names the variable (`api_key_env`) or file (`api_key_file`)
//! that holds its key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::types::Params;

/// The prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "SWITCHBOARD__";

/// Keys that would hold a secret; refused anywhere in the file.
const SECRET_KEYS: &[&str] = &[
    "api_key",
    "apikey",
    "token",
    "secret",
    "password",
    "signing_secret",
    "bot_token",
    "app_token",
];

/// Why the configuration could not be used. Every variant names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file `{path}` is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key has a value that is not allowed.
    #[error("config key `{key}`{}: {message}", value.as_ref().map(|v| format!(" = {v}")).unwrap_or_default())]
    Key {
        /// The dotted key path.
        key: String,
        /// The offending value, when there is one.
        value: Option<String>,
        /// What is wrong and what is allowed.
        message: String,
    },
}

impl ConfigError {
    fn key(key: impl Into<String>, value: Option<String>, message: impl Into<String>) -> Self {
        ConfigError::Key {
            key: key.into(),
            value,
            message: message.into(),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the SQLite file, spool and downloaded models live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The HTTP server.
    #[serde(default)]
    pub server: ServerConfig,
    /// The database.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Model providers by name.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Model aliases by name.
    #[serde(default)]
    pub models: BTreeMap<String, AliasConfig>,
    /// Retries and backoff.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// The prompt registry.
    #[serde(default)]
    pub prompts: PromptsConfig,
    /// Who may change prompts.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Shared state for replicas: cache, limits and event dedupe.
    #[serde(default)]
    pub redis: RedisConfig,
    /// The response cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Rate limits and budgets.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The feedback dashboard at `/dashboard`.
    #[serde(default)]
    pub dashboard: DashboardConfig,
    /// Logs, traces and what they may contain.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// `[slack]`, read and checked by the Slack adapter: the gateway knows
    /// nothing of platforms, so the section is kept as TOML here.
    #[serde(default)]
    pub slack: Option<toml::Table>,
    /// `[discord]`, read and checked by the Discord adapter.
    #[serde(default)]
    pub discord: Option<toml::Table>,
    /// The environment the configuration was read with, for secrets named
    /// by `*_env` keys (adapters read their tokens through it).
    #[serde(skip)]
    pub env: Env,
}

/// Environment variables, as given to [`Config::from_parts`]. Never printed.
#[derive(Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    /// The value of a variable, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Env({} variables)", self.0.len())
    }
}

/// `[prompts]`: the prompt registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptsConfig {
    /// How often (milliseconds) each replica checks whether the registry
    /// changed. On PostgreSQL, changes also arrive at once by NOTIFY and
    /// this is only the backstop; on SQLite it is how a `switchboard
    /// prompts` command reaches a running server.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

fn default_poll_ms() -> u64 {
    500
}

impl Default for PromptsConfig {
    fn default() -> Self {
        PromptsConfig {
            poll_ms: default_poll_ms(),
        }
    }
}

/// `[admin]`: who may change prompts. Users are written `platform:id`
/// (`slack:U0123ABC`, `discord:80351110224678912`); roles as the adapter
/// reports them (`discord:role:1234`, `slack:admin`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Users who may do everything: move protected labels, bind, split.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Users who may read prompts, save versions, test them and move
    /// labels that are not protected.
    #[serde(default)]
    pub editors: Vec<String>,
    /// Platform roles whose holders are admins.
    #[serde(default)]
    pub admin_roles: Vec<String>,
    /// Platform roles whose holders are editors.
    #[serde(default)]
    pub editor_roles: Vec<String>,
    /// Whether the platform's own admins (Slack workspace admins and
    /// owners, Discord members with Manage Server) are admins here.
    #[serde(default = "yes")]
    pub platform_admins: bool,
    /// Labels only admins may move.
    #[serde(default = "default_protected")]
    pub protected_labels: Vec<String>,
}

fn yes() -> bool {
    true
}

fn default_protected() -> Vec<String> {
    vec!["production".to_string()]
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            admins: Vec::new(),
            editors: Vec::new(),
            admin_roles: Vec::new(),
            editor_roles: Vec::new(),
            platform_admins: true,
            protected_labels: default_protected(),
        }
    }
}

/// `[dashboard]`: the feedback dashboard served at `/dashboard` by
/// `switchboard serve`. Accounts are made with `switchboard admin add NAME`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// Serve the dashboard.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Mark the session cookie `Secure` (browsers then send it over HTTPS
    /// only). Turn on whenever the dashboard is reached through TLS, such as
    /// behind a TLS-terminating proxy.
    #[serde(default)]
    pub secure_cookies: bool,
    /// How long a sign-in lasts, in hours.
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
}

fn default_session_hours() -> u64 {
    12
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            enabled: true,
            secure_cookies: false,
            session_hours: default_session_hours(),
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

/// `[telemetry]`: how Switchboard logs and where it sends traces.
/// Prometheus metrics are always served at `/metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The OpenTelemetry collector's OTLP/HTTP base URL
    /// (`http://otel-collector:4318`); spans go to `{otlp_endpoint}/v1/traces`
    /// as protobuf. Unset: no traces are exported.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` resource attribute of exported spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// `text` (for people) or `json` (one object per line, for log
    /// collectors). The `--log-format` flag wins over this key.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Put message text (the rendered prompt and the answer) on spans as
    /// `gen_ai.input.messages` and `gen_ai.output.messages`. Off by
    /// default: traces often reach more people than the conversation did.
    #[serde(default)]
    pub capture_content: bool,
}

fn default_service_name() -> String {
    "switchboard".to_string()
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: default_service_name(),
            log_format: LogFormat::default(),
            capture_content: false,
        }
    }
}

impl TelemetryConfig {
    /// The URL spans are posted to, when export is on.
    pub fn traces_url(&self) -> Option<String> {
        let base = self.otlp_endpoint.as_deref()?.trim_end_matches('/');
        Some(if base.ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{base}/v1/traces")
        })
    }
}

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format `{other}`: use `text` or `json`"
            )),
        }
    }
}

/// `[server]`: the HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The environment variable holding comma-separated API keys. When it
    /// is unset or empty, only loopback clients are served.
    #[serde(default)]
    pub api_keys_env: Option<String>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            api_keys_env: None,
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://user:pass@host/db`. Default: a SQLite
    /// file `switchboard.db` in `data_dir`. A password is better given via
    /// `SWITCHBOARD__DATABASE__URL` than written in the file.
    pub url: Option<String>,
}

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

    fn http_mut(&mut self) -> Option<&mut HttpProviderConfig> {
        match self {
            ProviderConfig::Openai(c) | ProviderConfig::Anthropic(c) => Some(c),
            ProviderConfig::Local(_) => None,
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
    /// Extra non-secret headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Extra query parameters (`api-version` for Azure OpenAI).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Connect timeout.
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// Time allowed until the first token (or the whole answer, when not
    /// streaming, counts against `total_timeout_ms` only).
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

/// A secret value whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl Secret {
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(****)")
    }
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

/// A model's price in USD per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// USD per million input tokens.
    pub input: f64,
    /// USD per million output tokens.
    pub output: f64,
}

impl Price {
    /// The cost of one request in USD.
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input + output_tokens as f64 * self.output) / 1_000_000.0
    }
}

/// `[models.ALIAS]`: a model name that prompts and API callers use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasConfig {
    /// `provider/model` targets in fallback order.
    pub targets: Vec<String>,
    /// Default parameters for this alias.
    #[serde(default)]
    pub params: Params,
    /// The response cache's policy for this alias; unset keys take `[cache]`'s.
    #[serde(default)]
    pub cache: AliasCacheConfig,
    /// The context window of this alias's smallest target, in tokens:
    /// conversation history is trimmed, oldest first, so that the prompt
    /// and the answer fit. Unset: the embedded model's `context_tokens`
    /// when a target is local, else no trimming (hosted models' windows are
    /// large; the adapters cap history by `history_chars`).
    #[serde(default)]
    pub context_tokens: Option<u32>,
    /// Every target of this alias reads images: images attached to a
    /// question are sent with it. Otherwise they are left out and the
    /// answer says they were not read.
    #[serde(default)]
    pub vision: bool,
}

/// `[redis]`: where replicas share the cache, limits and event dedupe.
/// Without `url`, all three live in this process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:pass@]host:port[/db]`. Give a password through
    /// `SWITCHBOARD__REDIS__URL` rather than the file.
    pub url: Option<String>,
    /// What to do while Redis cannot be reached: `open` (in-process limits,
    /// no shared cache) or `closed` (refuse requests whose limits cannot be
    /// checked).
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Longest wait for one Redis command before it counts as a failure.
    #[serde(default = "default_redis_timeout")]
    pub timeout_ms: u64,
    /// Longest wait for a connection to Redis.
    #[serde(default = "default_redis_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Prefix of every key Switchboard writes, so several deployments can
    /// share one Redis.
    #[serde(default = "default_redis_prefix")]
    pub key_prefix: String,
}

fn default_redis_timeout() -> u64 {
    100
}
fn default_redis_connect_timeout() -> u64 {
    250
}
fn default_redis_prefix() -> String {
    "switchboard:".to_string()
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            on_failure: OnFailure::default(),
            timeout_ms: default_redis_timeout(),
            connect_timeout_ms: default_redis_connect_timeout(),
            key_prefix: default_redis_prefix(),
        }
    }
}

/// What Switchboard does while Redis is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Keep answering: limits fall back to this process, the cache is
    /// skipped; a warning is logged and the fallback counter grows.
    #[default]
    Open,
    /// Refuse requests whose limits cannot be checked, with a clear error.
    Closed,
}

/// `[cache]`: the response cache's size and default policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Cache answers at all (per alias: `[models.X.cache] enabled`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long an answer is kept, in seconds.
    #[serde(default = "default_cache_ttl")]
    pub ttl_secs: u64,
    /// Also cache answers sampled with temperature > 0 (or unset, which
    /// providers treat as 1). Off: such answers are meant to vary.
    #[serde(default)]
    pub allow_sampling: bool,
    /// The in-process cache's size in bytes (answers, chunks and keys).
    #[serde(default = "default_cache_bytes")]
    pub max_bytes: u64,
}

fn default_true() -> bool {
    true
}
fn default_cache_ttl() -> u64 {
    3600
}
fn default_cache_bytes() -> u64 {
    64 * 1024 * 1024
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            ttl_secs: default_cache_ttl(),
            allow_sampling: false,
            max_bytes: default_cache_bytes(),
        }
    }
}

/// `[models.ALIAS.cache]`: overrides of `[cache]` for one alias.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasCacheConfig {
    /// Cache this alias's answers.
    pub enabled: Option<bool>,
    /// How long an answer is kept, in seconds.
    pub ttl_secs: Option<u64>,
    /// Also cache sampled answers (temperature > 0 or unset).
    pub allow_sampling: Option<bool>,
}

/// `[limits]`: requests and tokens per minute and a daily budget, for each
/// user, channel, workspace (Slack team, Discord guild) and for everything
/// together. A limit left out does not apply.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Each user (per platform and workspace).
    #[serde(default)]
    pub user: LimitSet,
    /// Each channel.
    #[serde(default)]
    pub channel: LimitSet,
    /// Each workspace or guild.
    #[serde(default)]
    pub workspace: LimitSet,
    /// Every request together.
    #[serde(default)]
    pub global: LimitSet,
    /// Overrides for one workspace, by its id (`[limits.workspaces.T0123.user]`).
    #[serde(default)]
    pub workspaces: BTreeMap<String, WorkspaceLimits>,
    /// Output tokens reserved for a request that sets no `max_tokens`,
    /// until its real usage is known.
    #[serde(default = "default_estimate_output")]
    pub estimate_output_tokens: u32,
}

fn default_estimate_output() -> u32 {
    256
}

/// One scope's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSet {
    /// Requests per minute; a full minute's worth may come at once.
    pub requests_per_minute: Option<u64>,
    /// Tokens (input plus output) per minute.
    pub tokens_per_minute: Option<u64>,
    /// Spend per UTC day, in USD (priced models only).
    pub daily_budget_usd: Option<f64>,
}

impl LimitSet {
    /// `self`, with every unset limit taken from `base`.
    pub fn or(self, base: &LimitSet) -> LimitSet {
        LimitSet {
            requests_per_minute: self.requests_per_minute.or(base.requests_per_minute),
            tokens_per_minute: self.tokens_per_minute.or(base.tokens_per_minute),
            daily_budget_usd: self.daily_budget_usd.or(base.daily_budget_usd),
        }
    }
}

/// `[limits.workspaces.ID]`: one workspace's own limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceLimits {
    /// Each user in this workspace.
    #[serde(default)]
    pub user: LimitSet,
    /// Each channel in this workspace.
    #[serde(default)]
    pub channel: LimitSet,
    /// This workspace as a whole.
    #[serde(default)]
    pub workspace: LimitSet,
}

/// `[routing]`: retries and backoff for every target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Retries of one target before falling back to the next.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The first backoff; it doubles each retry, with jitter.
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_ms: u64,
    /// The longest backoff.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
    /// The longest `Retry-After` honoured; a longer one falls back at once.
    #[serde(default = "default_retry_after_max")]
    pub retry_after_max_ms: u64,
}

fn default_retries() -> u32 {
    2
}
fn default_backoff_initial() -> u64 {
    200
}
fn default_backoff_max() -> u64 {
    5_000
}
fn default_retry_after_max() -> u64 {
    20_000
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            retries: default_retries(),
            backoff_initial_ms: default_backoff_initial(),
            backoff_max_ms: default_backoff_max(),
            retry_after_max_ms: default_retry_after_max(),
        }
    }
}

/// Where the configuration file is, by the documented precedence.
pub fn locate(cli: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = cli {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("SWITCHBOARD_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let local = PathBuf::from("switchboard.toml");
    local.exists().then_some(local)
}

impl Config {
    /// Loads the file at `path` (or none), applies the process's
    /// environment overrides and checks the result.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.to_path_buf(),
                source,
            })?,
            None => String::new(),
        };
        let name = path.map_or("(none)".to_string(), |p| p.display().to_string());
        Config::from_parts(&name, &text, std::env::vars())
    }

    /// Builds a configuration from TOML text and `(name, value)` environment
    /// pairs; `origin` names the text in errors.
    pub fn from_parts(
        origin: &str,
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: origin.to_string(),
                    message: e.to_string(),
                })?;
        let env: BTreeMap<String, String> = env.into_iter().collect();
        for (name, value) in &env {
            if let Some(path) = name.strip_prefix(ENV_PREFIX) {
                apply_override(&mut table, name, path, value)?;
            }
        }
        refuse_secrets(&table, "")?;
        let root = toml::Value::Table(table);
        let mut config: Config = serde_path_to_error::deserialize(root.clone()).map_err(|e| {
            let value = scalar_at(&root, e.path());
            ConfigError::key(e.path().to_string(), value, e.into_inner().to_string())
        })?;
        if config.providers.is_empty() && config.models.is_empty() {
            config.use_embedded_model();
        }
        config.check()?;
        config.resolve_secrets(&env)?;
        config.env = Env(env);
        Ok(config)
    }

    /// With no provider configured, the embedded model answers as the
    /// `default` alias.
    fn use_embedded_model(&mut self) {
        self.providers.insert(
            "local".into(),
            ProviderConfig::Local(LocalConfig::default()),
        );
        self.models.insert(
            "default".into(),
            AliasConfig {
                targets: vec![format!("local/{EMBEDDED_MODEL}")],
                params: Params::default(),
                cache: AliasCacheConfig::default(),
                context_tokens: None,
                vision: false,
            },
        );
    }

    /// The context window each alias's history is trimmed to, in tokens:
    /// its `context_tokens`, else the smallest window of its local targets.
    pub fn context_windows(&self) -> BTreeMap<String, u32> {
        self.models
            .iter()
            .filter_map(|(alias, config)| {
                let local = config
                    .targets
                    .iter()
                    .filter_map(|t| t.split_once('/').map(|(p, _)| p))
                    .filter_map(|p| match self.providers.get(p) {
                        Some(ProviderConfig::Local(l)) => Some(l.context_tokens),
                        _ => None,
                    })
                    .min();
                config.context_tokens.or(local).map(|w| (alias.clone(), w))
            })
            .collect()
    }

    /// The aliases whose targets read images.
    pub fn vision_aliases(&self) -> std::collections::BTreeSet<String> {
        self.models
            .iter()
            .filter(|(_, config)| config.vision)
            .map(|(alias, _)| alias.clone())
            .collect()
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.data_dir.join("switchboard.db").display()
            ),
        }
    }

    /// Reads each provider's API key from the variable or file it names.
    fn resolve_secrets(&mut self, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        for (name, provider) in self.providers.iter_mut() {
            let Some(http) = provider.http_mut() else {
                continue;
            };
            let key = match (&http.api_key_env, &http.api_key_file) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::key(
                        format!("providers.{name}"),
                        None,
                        "set either `api_key_env` or `api_key_file`, not both",
                    ));
                }
                (Some(var), None) => match env.get(var).map(|v| v.trim()) {
                    Some(v) if !v.is_empty() => Some(v.to_string()),
                    _ => {
                        return Err(ConfigError::key(
                            format!("providers.{name}.api_key_env"),
                            Some(var.clone()),
                            format!(
                                "the environment variable `{var}` is not set; export it with the provider's API key"
                            ),
                        ));
                    }
                },
                (None, Some(path)) => match std::fs::read_to_string(path) {
                    Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                    Ok(_) => {
                        return Err(ConfigError::key(
                            format!("providers.{name}.api_key_file"),
                            Some(path.display().to_string()),
                            "the file is empty; write the provider's API key in it",
                        ));
                    }
                    Err(e) => {
                        return Err(ConfigError::key(
                            format!("providers.{name}.api_key_file"),
                            Some(path.display().to_string()),
                            format!("cannot read it: {e}"),
                        ));
                    }
                },
                (None, None) => None,
            };
            http.api_key = key.map(Secret);
        }
        Ok(())
    }

    /// Cross-key rules that serde cannot check.
    fn check(&self) -> Result<(), ConfigError> {
        let url = self.database_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::key(
                "database.url",
                Some(redact_url(&url)),
                "must start with sqlite:// or postgres://",
            ));
        }
        if !(1..=24 * 90).contains(&self.dashboard.session_hours) {
            return Err(ConfigError::key(
                "dashboard.session_hours",
                Some(self.dashboard.session_hours.to_string()),
                "must be between 1 and 2160 (90 days)",
            ));
        }
        if self.prompts.poll_ms < 50 {
            return Err(ConfigError::key(
                "prompts.poll_ms",
                Some(self.prompts.poll_ms.to_string()),
                "must be at least 50 (milliseconds)",
            ));
        }
        for (key, list) in [
            ("admin.admins", &self.admin.admins),
            ("admin.editors", &self.admin.editors),
        ] {
            if let Some(bad) = list.iter().find(|u| !u.contains(':')) {
                return Err(ConfigError::key(
                    key,
                    Some(bad.clone()),
                    "write users as `platform:id`, for example `slack:U0123ABC` or `discord:80351110224678912`",
                ));
            }
        }
        self.check_redis()?;
        self.check_limits()?;
        self.check_telemetry()?;
        for (name, provider) in &self.providers {
            if let ProviderConfig::Local(local) = provider {
                check_local(name, local)?;
                continue;
            }
            let Some(http) = provider.http() else {
                continue;
            };
            if let Some(base) = &http.base_url
                && reqwest::Url::parse(base).is_err()
            {
                return Err(ConfigError::key(
                    format!("providers.{name}.base_url"),
                    Some(base.clone()),
                    "is not a URL; write it like https://api.openai.com/v1",
                ));
            }
            if http.total_timeout_ms == 0
                || http.first_token_timeout_ms == 0
                || http.connect_timeout_ms == 0
            {
                return Err(ConfigError::key(
                    format!("providers.{name}"),
                    None,
                    "timeouts must be greater than zero milliseconds",
                ));
            }
        }
        for (alias, model) in &self.models {
            if model.targets.is_empty() {
                return Err(ConfigError::key(
                    format!("models.{alias}.targets"),
                    None,
                    "needs at least one `provider/model` target",
                ));
            }
            for (i, target) in model.targets.iter().enumerate() {
                let key = format!("models.{alias}.targets[{i}]");
                let Some((provider, model)) = target.split_once('/') else {
                    return Err(ConfigError::key(
                        key,
                        Some(target.clone()),
                        "must be `provider/model`, e.g. `openai/gpt-4o-mini`",
                    ));
                };
                if model.is_empty() {
                    return Err(ConfigError::key(
                        key,
                        Some(target.clone()),
                        "names no model after the `/`",
                    ));
                }
                if !self.providers.contains_key(provider) {
                    let known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
                    return Err(ConfigError::key(
                        key,
                        Some(target.clone()),
                        format!(
                            "provider `{provider}` is not defined; defined providers: {}",
                            if known.is_empty() {
                                "(none)".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Config {
    /// Rules of `[redis]` and `[cache]`.
    fn check_telemetry(&self) -> Result<(), ConfigError> {
        if let Some(endpoint) = &self.telemetry.otlp_endpoint {
            let ok = reqwest::Url::parse(endpoint)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(ConfigError::key(
                    "telemetry.otlp_endpoint",
                    Some(format!("{:?}", redact_url(endpoint))),
                    "must be the collector's OTLP/HTTP URL, e.g. http://otel-collector:4318",
                ));
            }
        }
        if self.telemetry.service_name.trim().is_empty() {
            return Err(ConfigError::key(
                "telemetry.service_name",
                None,
                "must not be empty (default: switchboard)",
            ));
        }
        Ok(())
    }

    fn check_redis(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.redis.url
            && !url.starts_with("redis://")
        {
            return Err(ConfigError::key(
                "redis.url",
                Some(redact_url(url)),
                "must start with redis://, e.g. redis://127.0.0.1:6379/0",
            ));
        }
        if self.redis.timeout_ms == 0 || self.redis.connect_timeout_ms == 0 {
            return Err(ConfigError::key(
                "redis",
                None,
                "`timeout_ms` and `connect_timeout_ms` must be greater than zero",
            ));
        }
        if self.cache.max_bytes < 1024 {
            return Err(ConfigError::key(
                "cache.max_bytes",
                Some(self.cache.max_bytes.to_string()),
                "must be at least 1024; set `cache.enabled = false` to turn the cache off",
            ));
        }
        Ok(())
    }

    /// Rules of `[limits]`: limits are positive; leaving one out means no limit.
    fn check_limits(&self) -> Result<(), ConfigError> {
        let mut sets = vec![
            ("limits.user".to_string(), &self.limits.user),
            ("limits.channel".to_string(), &self.limits.channel),
            ("limits.workspace".to_string(), &self.limits.workspace),
            ("limits.global".to_string(), &self.limits.global),
        ];
        for (id, w) in &self.limits.workspaces {
            sets.push((format!("limits.workspaces.{id}.user"), &w.user));
            sets.push((format!("limits.workspaces.{id}.channel"), &w.channel));
            sets.push((format!("limits.workspaces.{id}.workspace"), &w.workspace));
        }
        for (key, set) in sets {
            for (name, value) in [
                ("requests_per_minute", set.requests_per_minute),
                ("tokens_per_minute", set.tokens_per_minute),
            ] {
                if value == Some(0) {
                    return Err(ConfigError::key(
                        format!("{key}.{name}"),
                        Some("0".into()),
                        "must be at least 1; leave the key out for no limit",
                    ));
                }
            }
            if let Some(b) = set.daily_budget_usd
                && !(b.is_finite() && b >= 0.0)
            {
                return Err(ConfigError::key(
                    format!("{key}.daily_budget_usd"),
                    Some(b.to_string()),
                    "must be a number of USD, zero or more; leave the key out for no budget",
                ));
            }
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

/// A database URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Sets the key named by an override variable's `path` (`SERVER__LISTEN`).
fn apply_override(
    table: &mut toml::Table,
    var: &str,
    path: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let parts: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
    if parts.iter().any(String::is_empty) {
        return Err(ConfigError::key(
            var,
            None,
            "an override variable is SWITCHBOARD__ then key parts joined by `__`, e.g. SWITCHBOARD__SERVER__LISTEN",
        ));
    }
    let (last, parents) = parts.split_last().expect("split always yields one part");
    let mut current = table;
    for part in parents {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::key(
                    var,
                    None,
                    format!("`{part}` is not a table in the configuration, so it has no sub-keys"),
                ));
            }
        };
    }
    // Keep strings strings; otherwise read the value as TOML (numbers,
    // booleans, arrays), falling back to a plain string.
    let parsed = match current.get(last) {
        Some(toml::Value::String(_)) => toml::Value::String(value.to_string()),
        _ => format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string())),
    };
    current.insert(last.clone(), parsed);
    Ok(())
}

/// The value at a serde path, if it is a scalar worth quoting in an error.
fn scalar_at(root: &toml::Value, path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut current = root;
    for segment in path.iter() {
        current = match segment {
            Segment::Map { key } => current.get(key.as_str())?,
            Segment::Seq { index } => current.get(*index)?,
            _ => return None,
        };
    }
    match current {
        toml::Value::Table(_) | toml::Value::Array(_) => None,
        toml::Value::String(s) => Some(format!("{s:?}")),
        other => Some(other.to_string()),
    }
}

/// Refuses keys that would put a secret in the file.
fn refuse_secrets(table: &toml::Table, prefix: &str) -> Result<(), ConfigError> {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if SECRET_KEYS.contains(&key.as_str()) {
            return Err(ConfigError::key(
                path,
                None,
                format!(
                    "secrets are never read from the config file; put it in an environment variable and name that with `{key}_env` (or a file, with `{key}_file`)"
                ),
            ));
        }
        if let toml::Value::Table(t) = value {
            refuse_secrets(t, &path)?;
        }
    }
    Ok(())
}
