//! `[server]`, `[database]` and `[dashboard]`: where the HTTP API listens and who it serves,
//! the database behind it, and the feedback dashboard it serves at `/dashboard`.

use std::net::SocketAddr;

use serde::Deserialize;

use super::{ConfigError, redact_url, yes};

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

/// Rules of `database.url`, given the URL in force.
pub(super) fn check_database_url(url: &str) -> Result<(), ConfigError> {
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        return Err(ConfigError::key(
            "database.url",
            Some(redact_url(url)),
            "must start with sqlite:// or postgres://",
        ));
    }
    Ok(())
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

impl DashboardConfig {
    /// Rules of `[dashboard]`.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if !(1..=24 * 90).contains(&self.session_hours) {
            return Err(ConfigError::key(
                "dashboard.session_hours",
                Some(self.session_hours.to_string()),
                "must be between 1 and 2160 (90 days)",
            ));
        }
        Ok(())
    }
}
