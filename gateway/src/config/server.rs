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
    /// The longest a client may take to send a request's headers, in
    /// milliseconds, counted from when the server waits for a request (so
    /// it also closes a kept-alive connection left idle that long).
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// The longest a request's body may take to arrive, in milliseconds.
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// Open connections at most; past it new ones get `503` at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Keep connections open between requests.
    #[serde(default = "yes")]
    pub keep_alive: bool,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_header_timeout_ms() -> u64 {
    10_000
}

fn default_body_timeout_ms() -> u64 {
    30_000
}

fn default_max_connections() -> usize {
    1024
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            api_keys_env: None,
            header_timeout_ms: default_header_timeout_ms(),
            body_timeout_ms: default_body_timeout_ms(),
            max_connections: default_max_connections(),
            keep_alive: true,
        }
    }
}

impl ServerConfig {
    /// Rules of `[server]`: timeouts long enough to send a request in, and
    /// room for at least one connection.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        for (key, ms) in [
            ("server.header_timeout_ms", self.header_timeout_ms),
            ("server.body_timeout_ms", self.body_timeout_ms),
        ] {
            if !(100..=3_600_000).contains(&ms) {
                return Err(ConfigError::key(
                    key,
                    Some(ms.to_string()),
                    "give milliseconds from 100 to 3600000 (one hour)",
                ));
            }
        }
        if self.max_connections == 0 {
            return Err(ConfigError::key(
                "server.max_connections",
                Some("0".into()),
                "allow at least one connection",
            ));
        }
        Ok(())
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
    /// Mark the dashboard's cookies `Secure` (browsers then keep and send
    /// them over HTTPS only). On by default; `false` drops `Secure` only for
    /// clients on loopback (a browser on the same machine, over plain HTTP),
    /// never for other clients nor behind a proxy that says it served HTTPS
    /// (`X-Forwarded-Proto: https`).
    #[serde(default = "yes")]
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
            secure_cookies: true,
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
