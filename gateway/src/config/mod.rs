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
//!
//! This file holds the whole [`Config`], how it is located, read and checked, and what is
//! derived from it. Each section lives in the file named after it (`server`, `providers`,
//! `models`, `routing`, `prompts` with `[admin]`, `redis`, `cache`, `limits`, `telemetry`,
//! `knowledge`, `tools` with `[tool_loop]`)
//! together with its defaults and its rules; `overrides` applies the environment, `secrets`
//! keeps keys out of the file and out of messages, and `error` says what to fix.

mod cache;
mod error;
mod knowledge;
mod limits;
mod models;
mod overrides;
mod prompts;
mod providers;
mod redis;
mod routing;
mod secrets;
mod server;
mod telemetry;
mod tools;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::Params;

pub use cache::{AliasCacheConfig, CacheConfig};
pub use error::ConfigError;
pub use knowledge::{EMBEDDED_EMBEDDINGS, KnowledgeConfig};
pub use limits::{LimitSet, LimitsConfig, WorkspaceLimits};
pub use models::{AliasConfig, Price};
pub use overrides::ENV_PREFIX;
pub use prompts::{AdminConfig, PromptsConfig};
pub use providers::{
    EMBEDDED_MODEL, HttpProviderConfig, LocalConfig, OverflowPolicy, ProviderConfig,
};
pub use redis::{OnFailure, RedisConfig};
pub use routing::RoutingConfig;
pub use secrets::{Secret, SensitiveMap, redact_url};
pub use server::{DashboardConfig, DatabaseConfig, ServerConfig};
pub use telemetry::{LogFormat, TelemetryConfig};
pub use tools::{BUILTIN_TOOLS, ToolLoopConfig, ToolServerConfig, ToolTransport, is_tool_name};

use error::scalar_at;
use overrides::apply_override;
use secrets::refuse_secrets;
use server::check_database_url;

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
    /// Retrieval: how knowledge is embedded and chunked.
    #[serde(default)]
    pub knowledge: KnowledgeConfig,
    /// `[tools.NAME]`: MCP servers whose tools prompts may offer.
    #[serde(default)]
    pub tools: BTreeMap<String, ToolServerConfig>,
    /// `[tool_loop]`: how far one answer's tool calls may go.
    #[serde(default)]
    pub tool_loop: ToolLoopConfig,
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

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

/// The default of switches that are on unless turned off.
pub(super) fn yes() -> bool {
    true
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
        for (name, server) in &config.tools {
            server.check(name, &env)?;
        }
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

    /// Cross-key rules that serde cannot check, section by section.
    fn check(&self) -> Result<(), ConfigError> {
        check_database_url(&self.database_url())?;
        self.server.check()?;
        self.dashboard.check()?;
        self.prompts.check()?;
        self.admin.check()?;
        self.redis.check()?;
        self.cache.check()?;
        self.limits.check()?;
        self.telemetry.check()?;
        self.knowledge.check(&self.providers)?;
        self.tool_loop.check()?;
        for (name, provider) in &self.providers {
            provider.check(name)?;
        }
        for (alias, model) in &self.models {
            model.check(alias, &self.providers)?;
        }
        Ok(())
    }
}
