//! The Slack adapter: Slack's Events API, slash commands and
//! interactivity, over HTTP on `switchboard serve` or, when
//! `slack.app_token_env` is set, over a Socket Mode websocket ([`socket`]).
//!
//! Every HTTP request is verified (`inbound::verify`); a Socket Mode
//! envelope needs no signature (the socket itself is authenticated by the
//! app-level token). Either way the delivery is acknowledged at once and
//! its work queued: answers stream into the thread while Slack has long
//! had its ack. Both transports hand a payload to the same function per
//! kind. The parts, each a set of functions over its own state
//! ([`state`], filled in once by [`Slack::new`]):
//!
//! - [`inbound`]: events (mentions, DMs and thread replies) verified,
//!   deduplicated and turned into the gateway's requests ([`model`]: the
//!   payloads read)
//! - [`delivery`]: the answer streamed into the thread, through Slack's
//!   chat streaming methods or posted and edited messages
//! - [`blocks`]: the Block Kit JSON every part sends
//! - [`feedback`]: feedback buttons, reactions and the comment modal
//! - [`commands`]: `/prompt` through the admin layer; [`edit`]:
//!   `/prompt edit NAME`'s form
//! - [`socket`]: Socket Mode: the same three kinds over a websocket
//! - [`knowledge`]: followed channels' threads kept as a knowledge source
//! - [`web`]: the Web API client (slack-morphism's); [`format`](mod@format): Markdown
//!   to mrkdwn; [`signature`]: request signing; [`config`]: `[slack]`
//!
//! This file wires the parts together and dispatches each payload to its
//! part. Payloads are read into slack-morphism's models (`SlackPushEvent`,
//! `SlackPushEventCallback`, `SlackInteractionEvent`, `SlackCommandEvent`);
//! an event type or block it does not model arrives as its `Unknown`
//! variant and is ignored, never refused.

pub mod approval;
pub mod assistant;
pub mod blocks;
pub mod commands;
pub mod config;
pub mod delivery;
pub mod edit;
pub mod feedback;
pub mod format;
pub mod inbound;
pub mod knowledge;
pub mod model;
pub mod shortcuts;
pub mod signature;
pub mod socket;
pub mod state;
pub mod web;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use gateway::Config;
use serde_json::Value;
use slack_morphism::events::{SlackCommandEvent, SlackEventCallbackBody, SlackInteractionEvent};
use tokio::sync::{Semaphore, mpsc};

pub use config::{DEFAULT_API_BASE, Secrets, SlackConfig, SlackError};
pub use state::{Identity, Slack, User};

use state::{
    Answers, Budget, Commands, Delivery, Feedback, Intake, Job, Parts, People, Signing, Socket,
};
use web::Web;

/// How many events are handled at once (mostly waiting on the model).
const WORKERS: usize = 512;
/// How many events may wait for a worker before new ones are refused.
const QUEUE: usize = 1024;

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
            app,
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

    /// The adapter over these parts; `clock` gives Unix seconds. This is
    /// where every part's state is filled in, from the gateway's handles.
    pub fn new(
        app: &gateway::Gateway,
        config: SlackConfig,
        token: &str,
        signing_secret: &str,
        clock: fn() -> i64,
    ) -> Slack {
        gateway::install_crypto();
        let (pipeline, admin) = (app.pipeline.clone(), app.admin.clone());
        let (tx, rx) = mpsc::channel(QUEUE);
        let web = Web::new(&config.api_base, token);
        let people = Arc::new(People::new(web.clone()));
        let answers = Arc::new(Answers::default());
        let harvest = Arc::new(knowledge::Harvest::new(
            web.clone(),
            Arc::clone(&people),
            app.knowledge.clone(),
            config.knowledge_source.clone(),
            &config.knowledge_channels,
        ));
        {
            // Channels synced before (or on another replica) stay followed.
            let harvest = Arc::clone(&harvest);
            tokio::spawn(async move {
                if let Err(e) = harvest.follow_stored().await {
                    tracing::warn!(error = %e, "cannot read which Slack channels are kept as knowledge");
                }
            });
        }
        let delivery = Delivery {
            web: web.clone(),
            budget: Budget::new(Duration::from_secs(60) / config.updates_per_minute.max(1)),
            answers: Arc::clone(&answers),
            no_streaming: Mutex::default(),
        };
        let parts = Arc::new(Parts {
            signing: Signing {
                secret: signing_secret.to_string(),
                clock,
            },
            intake: Intake {
                dedupe: Arc::clone(&app.dedupe),
                queue: tx,
                web: web.clone(),
                people: Arc::clone(&people),
                delivery,
                reply_to_bots: config.reply_to_bots,
                thinking_status: config.thinking_status.clone(),
                history_messages: config.history_messages,
                history_chars: config.history_chars,
                pipeline: pipeline.clone(),
                harvest: Arc::clone(&harvest),
                assistant: Arc::default(),
                shortcuts: state::ShortcutSettings {
                    reply: config.shortcut_reply,
                    chars: config.shortcut_chars,
                },
            },
            feedback: Feedback {
                door: app.feedback.clone(),
                web: web.clone(),
                people: Arc::clone(&people),
                answers,
            },
            commands: Arc::new(Commands {
                registry: admin.registry().clone(),
                admin,
                web: web.clone(),
                people,
                inline: Duration::from_millis(config.command_inline_ms),
                harvest,
            }),
            socket: Socket {
                web,
                watchdog: Duration::from_millis(config.socket_watchdog_ms),
                app_token: Mutex::new(None),
            },
        });
        tokio::spawn(work(
            Arc::downgrade(&parts),
            rx,
            Arc::new(Semaphore::new(WORKERS)),
        ));
        Slack { parts }
    }

    /// The routes to mount on the HTTP server.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/slack/events", post(events))
            .route("/slack/commands", post(slash_commands))
            .route("/slack/interactions", post(interactions))
            .with_state(self.clone())
    }

    /// The adapter reaching Slack over Socket Mode with this app-level
    /// token (`xapp-…`) instead of HTTP endpoints.
    pub fn with_app_token(self, token: &str) -> Slack {
        *self
            .parts
            .socket
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
        let settings = &self.parts.socket;
        let token = settings
            .app_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let opener = settings.web.with_token(&token);
        let watchdog = settings.watchdog;
        Some(tokio::spawn(socket::run(
            self.clone(),
            opener,
            watchdog,
            stop,
        )))
    }
}

/// Handles a POST to `/slack/events`.
async fn events(State(slack): State<Slack>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(status) = inbound::verify(&slack.parts.signing, &headers, &body) {
        return status.into_response();
    }
    inbound::http_event(&slack.parts.intake, &headers, &body).await
}

/// Handles a POST to `/slack/commands`.
async fn slash_commands(State(slack): State<Slack>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(status) = inbound::verify(&slack.parts.signing, &headers, &body) {
        return status.into_response();
    }
    if let Err(status) = inbound::first_delivery(&slack.parts.intake, &headers).await {
        return status.into_response();
    }
    match commands::read_form(&body) {
        Some(command) => {
            axum::Json(commands::run(&slack.parts.commands, &command).await).into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            "a slash command needs team_id, channel_id, user_id, command, response_url and trigger_id\n",
        )
            .into_response(),
    }
}

/// Handles a POST to `/slack/interactions`.
async fn interactions(State(slack): State<Slack>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(status) = inbound::verify(&slack.parts.signing, &headers, &body) {
        return status.into_response();
    }
    if let Err(status) = inbound::first_delivery(&slack.parts.intake, &headers).await {
        return status.into_response();
    }
    let Some(payload) = form_payload(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "expected a form field `payload` holding JSON\n",
        )
            .into_response();
    };
    // The payload is read into slack-morphism's [`SlackInteractionEvent`];
    // one it does not model (another kind, or fields the model does not
    // take) is acknowledged and ignored.
    let answer = match serde_json::from_value::<SlackInteractionEvent>(payload) {
        Ok(event) => interaction(&slack, event).await,
        Err(e) => {
            tracing::debug!(error = %e, "Slack interaction not handled");
            None
        }
    };
    match answer {
        Some(answer) => axum::Json(answer).into_response(),
        None => StatusCode::OK.into_response(),
    }
}

/// The `payload` field of a form-encoded Slack request, as JSON.
fn form_payload(body: &[u8]) -> Option<Value> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .and_then(|(_, v)| serde_json::from_str(&v).ok())
}

/// Takes queued events and handles each on its own task, at most as many
/// at once as `limit` allows.
async fn work(shared: Weak<Parts>, mut rx: mpsc::Receiver<Job>, limit: Arc<Semaphore>) {
    while let Some(job) = rx.recv().await {
        let Some(parts) = shared.upgrade() else { break };
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        tokio::spawn(async move {
            on_event(&parts, job).await;
            drop(permit);
        });
    }
}

/// One queued event, to the part that handles its kind.
async fn on_event(parts: &Parts, job: Job) {
    match job.event {
        SlackEventCallbackBody::AppMention(e) => {
            inbound::on_mention(&parts.intake, &job.team, e).await
        }
        SlackEventCallbackBody::Message(e) => {
            // A followed channel's thread is read into knowledge beside the
            // answer, never before it.
            let harvest = Arc::clone(&parts.intake.harvest);
            let (team, raw) = (job.team.clone(), job.raw);
            tokio::spawn(async move { harvest.on_message_event(&team, &raw).await });
            inbound::on_message(&parts.intake, &job.team, e).await
        }
        SlackEventCallbackBody::ReactionAdded(e) => {
            feedback::on_reaction(&parts.feedback, &e).await
        }
        SlackEventCallbackBody::AssistantThreadStarted(e) => {
            assistant::on_started(&parts.intake, &job.team, e).await
        }
        SlackEventCallbackBody::AssistantThreadContextChanged(e) => {
            assistant::on_context_changed(&parts.intake, e)
        }
        SlackEventCallbackBody::Unknown(v) => {
            tracing::debug!(kind = ?v["type"].as_str(), "Slack event not handled")
        }
        _ => tracing::debug!("Slack event not handled"),
    }
}

/// One interaction payload, from either transport; `Some` is a body to
/// answer with (a modal's `response_action`), `None` an empty ack (which,
/// for a `view_submission`, closes the modal).
async fn interaction(slack: &Slack, event: SlackInteractionEvent) -> Option<Value> {
    match event {
        SlackInteractionEvent::BlockActions(actions) => {
            let slack = slack.clone();
            tokio::spawn(async move {
                feedback::on_actions(&slack.parts.feedback, &actions).await;
                approval::on_actions(
                    &slack.parts.intake.pipeline,
                    &slack.parts.commands,
                    &actions,
                )
                .await;
            });
            None
        }
        SlackInteractionEvent::MessageAction(action) => {
            let slack = slack.clone();
            tokio::spawn(async move { shortcuts::on_message_action(&slack.parts, action).await });
            None
        }
        SlackInteractionEvent::ViewSubmission(submitted) => {
            match blocks::modal_field(&submitted.view, |m| {
                m.callback_id.as_ref().map(|c| c.0.as_str())
            }) {
                Some(blocks::EDIT_VIEW) => {
                    Some(edit::submit(&slack.parts.commands, &submitted).await)
                }
                Some(blocks::COMMENT_VIEW) => {
                    feedback::on_comment(&slack.parts.feedback, &submitted).await;
                    None
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Socket Mode hands its payloads to the same functions as the HTTP routes.
impl socket::Handler for Slack {
    async fn event(&self, callback: model::Callback, retry: &str) -> Result<(), inbound::Refused> {
        inbound::accept(&self.parts.intake, callback, retry).await
    }

    async fn command(&self, command: &SlackCommandEvent) -> Value {
        commands::run(&self.parts.commands, command).await
    }

    async fn interaction(&self, event: SlackInteractionEvent) -> Option<Value> {
        interaction(self, event).await
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
