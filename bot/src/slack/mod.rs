//! The Slack adapter: Slack's Events API, slash commands and
//! interactivity, over HTTP on `switchboard serve` or, when
//! `slack.app_token_env` is set, over a Socket Mode websocket ([`socket`]).
//!
//! Every HTTP request is verified ([`signature`]); a Socket Mode envelope
//! needs no signature (the socket itself is authenticated by the app-level
//! token). Either way the delivery is acknowledged at once and its work
//! queued: answers stream into the thread ([`delivery`]) while Slack has long
//! had its ack. Both transports hand a payload to the same function per
//! kind. The parts:
//!
//! - [`inbound`]: `/slack/events`: mentions, DMs and thread replies
//! - [`commands`]: `/slack/commands`: `/prompt` through the admin layer;
//!   [`edit`]: `/prompt edit NAME`'s form
//! - [`feedback`]: `/slack/interactions`: feedback buttons and the
//!   comment modal
//! - [`socket`]: Socket Mode: the same three kinds over a websocket
//! - [`stream`]: answers through Slack's chat streaming methods, and
//!   [`delivery`]: through posted and edited messages where those are missing
//! - [`web`]: the Web API client (slack-morphism's); [`format`]: Markdown
//!   to mrkdwn
//!
//! Payloads are read into slack-morphism's models (`SlackPushEvent`,
//! `SlackPushEventCallback`, `SlackInteractionEvent`, `SlackCommandEvent`);
//! an event type or block it does not model arrives as its `Unknown`
//! variant and is ignored, never refused.

pub mod commands;
pub mod delivery;
pub mod edit;
pub mod feedback;
pub mod format;
pub mod inbound;
pub mod signature;
pub mod socket;
pub mod stream;
pub mod web;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use gateway::admin::Admin;
use gateway::{Config, Pipeline};
use serde::Deserialize;
use slack_morphism::SlackUserId;
use slack_morphism::api::SlackApiUsersInfoRequest;
use tokio::sync::{OnceCell, Semaphore, mpsc};

use delivery::Budget;
use web::{Web, WebError};

/// Slack's Web API.
pub const DEFAULT_API_BASE: &str = "https://slack.com/api";
/// How long a user's name and admin flag are trusted before asking again.
const USER_TTL: Duration = Duration::from_secs(5 * 60);
/// How many events are handled at once (mostly waiting on the model).
const WORKERS: usize = 512;
/// How many events may wait for a worker before new ones are refused.
const QUEUE: usize = 1024;

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

/// The bot's own identity, from `auth.test`.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The bot user (`U…`).
    pub user_id: String,
    /// The bot id (`B…`).
    pub bot_id: String,
}

/// What the adapter knows of a user, from `users.info`.
#[derive(Debug, Clone, Default)]
pub struct User {
    /// The display name.
    pub name: String,
    /// Workspace admin or owner.
    pub admin: bool,
}

/// The running adapter. Cheap to clone.
#[derive(Clone)]
pub struct Slack {
    pub(crate) inner: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) pipeline: Pipeline,
    pub(crate) admin: Admin,
    pub(crate) web: Web,
    signing_secret: String,
    /// The app-level token when Socket Mode is used.
    app_token: Mutex<Option<String>>,
    pub(crate) config: SlackConfig,
    identity: OnceCell<Identity>,
    /// `users.info` answers, with when they were read.
    users: Mutex<HashMap<String, (User, Instant)>>,
    pub(crate) budget: Budget,
    queue: mpsc::Sender<inbound::Job>,
    /// Which bot messages answer which inference (`channel:ts`).
    pub(crate) answers: Mutex<HashMap<String, uuid::Uuid>>,
    /// Workspaces where `chat.startStream` is not available.
    no_streaming: Mutex<std::collections::HashSet<String>>,
    clock: fn() -> i64,
}

impl Slack {
    /// The adapter, if `[slack]` is configured.
    pub fn from_config(
        app: &gateway::Gateway,
        config: &Config,
    ) -> Result<Option<Slack>, SlackError> {
        let Some(slack) = SlackConfig::from_config(config)? else {
            return Ok(None);
        };
        let secrets = slack.secrets(&config.env)?;
        let adapter = Slack::new(
            app.pipeline.clone(),
            app.admin.clone(),
            slack,
            &secrets.bot_token,
            secrets.signing_secret.as_deref().unwrap_or_default(),
            unix_now,
        );
        Ok(Some(match secrets.app_token {
            Some(token) => adapter.with_app_token(&token),
            None => adapter,
        }))
    }

    /// The adapter over these parts; `clock` gives Unix seconds.
    pub fn new(
        pipeline: Pipeline,
        admin: Admin,
        config: SlackConfig,
        token: &str,
        signing_secret: &str,
        clock: fn() -> i64,
    ) -> Slack {
        gateway::install_crypto();
        let (tx, rx) = mpsc::channel(QUEUE);
        let slack = Slack {
            inner: Arc::new(Shared {
                pipeline,
                admin,
                web: Web::new(&config.api_base, token),
                signing_secret: signing_secret.to_string(),
                app_token: Mutex::new(None),
                budget: Budget::new(Duration::from_secs(60) / config.updates_per_minute.max(1)),
                config,
                identity: OnceCell::new(),
                users: Mutex::default(),
                queue: tx,
                answers: Mutex::default(),
                no_streaming: Mutex::default(),
                clock,
            }),
        };
        tokio::spawn(inbound::work(
            Arc::downgrade(&slack.inner),
            rx,
            Arc::new(Semaphore::new(WORKERS)),
        ));
        slack
    }

    /// The routes to mount on the HTTP server.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/slack/events", post(inbound::handle))
            .route("/slack/commands", post(commands::handle))
            .route("/slack/interactions", post(feedback::handle))
            .with_state(self.clone())
    }

    /// The adapter reaching Slack over Socket Mode with this app-level
    /// token (`xapp-…`) instead of HTTP endpoints.
    pub fn with_app_token(self, token: &str) -> Slack {
        *self
            .inner
            .app_token
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(token.to_string());
        self
    }

    /// Starts the Socket Mode connection if an app-level token is set
    /// (it reconnects by itself until `stop` turns true); `None` means the
    /// HTTP endpoints ([`Slack::router`]) are the way in.
    pub fn start_socket(
        &self,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let token = self
            .inner
            .app_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        Some(tokio::spawn(socket::run(self.clone(), token, stop)))
    }

    /// Verifies a request's signature; the error is the response to send.
    pub(crate) fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), StatusCode> {
        if self.inner.signing_secret.is_empty() {
            tracing::warn!(
                "refused an HTTP request from Slack: slack.signing_secret_env is not set (Socket Mode apps are reached over the socket only)"
            );
            return Err(StatusCode::UNAUTHORIZED);
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        signature::verify(
            self.inner.signing_secret.as_str(),
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
            body,
            (self.inner.clock)(),
        )
        .map_err(|e| {
            tracing::warn!(error = %e, "refused a request that is not signed by Slack");
            StatusCode::UNAUTHORIZED
        })
    }

    /// The bot's own identity (`auth.test`, asked once).
    pub(crate) async fn identity(&self) -> Result<&Identity, WebError> {
        self.inner
            .identity
            .get_or_try_init(|| async {
                let me = self.inner.web.auth_test().await?;
                Ok(Identity {
                    user_id: me.user_id.0,
                    bot_id: me.bot_id.map(|b| b.0).unwrap_or_default(),
                })
            })
            .await
    }

    /// A user's name and admin flag (`users.info`, kept for
    /// [`USER_TTL`], so that a change of admins takes effect soon).
    pub(crate) async fn user(&self, id: &str) -> Result<User, WebError> {
        if let Some((u, at)) = self.lock_users().get(id)
            && at.elapsed() < USER_TTL
        {
            return Ok(u.clone());
        }
        let request = SlackApiUsersInfoRequest::new(SlackUserId(id.to_string()));
        let u = self.inner.web.users_info(&request).await?.user;
        let display = u.profile.as_ref().and_then(|p| p.display_name.clone());
        let name = [display, u.real_name.clone(), u.name.clone()]
            .into_iter()
            .flatten()
            .find(|n| !n.is_empty())
            .unwrap_or_else(|| id.to_string());
        let flags = &u.flags;
        let user = User {
            name,
            admin: [flags.is_admin, flags.is_owner, flags.is_primary_owner].contains(&Some(true)),
        };
        let mut users = self.lock_users();
        if users.len() > 50_000 {
            users.clear();
        }
        users.insert(id.to_string(), (user.clone(), Instant::now()));
        Ok(user)
    }

    fn lock_users(&self) -> std::sync::MutexGuard<'_, HashMap<String, (User, Instant)>> {
        self.inner.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers which inference a bot message answers.
    pub(crate) fn remember_answer(&self, channel: &str, ts: &str, id: uuid::Uuid) {
        let mut map = self.inner.answers.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.clear();
        }
        map.insert(format!("{channel}:{ts}"), id);
    }

    /// Whether answers in workspace `team` try Slack's chat streaming.
    pub(crate) fn streams_in(&self, team: &str) -> bool {
        !self
            .inner
            .no_streaming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(team)
    }

    /// Remembers that workspace `team` cannot use chat streaming.
    pub(crate) fn no_streaming(&self, team: &str) {
        self.inner
            .no_streaming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(team.to_string());
    }

    /// The inference a bot message answers, if this process sent it.
    pub(crate) fn answer_of(&self, channel: &str, ts: &str) -> Option<uuid::Uuid> {
        let map = self.inner.answers.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&format!("{channel}:{ts}")).copied()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
