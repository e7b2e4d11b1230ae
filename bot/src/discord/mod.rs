//! The Discord adapter: turns gateway dispatches (messages, reactions,
//! interactions) into pipeline requests and admin commands, and renders
//! the answers back through Discord's REST API. The connection itself
//! lives in [`shard`]; everything here works on the documented JSON, so
//! that it is tested without Discord.
//!
//! Data flow: `MESSAGE_CREATE` → [`normalize::trigger`] → dedupe (shared
//! through Redis) → context (reply chain or thread) → [`gateway::Pipeline`]
//! → [`reply::render`] (throttled edits, split parts, feedback buttons).

pub mod commands;
pub mod config;
pub mod feedback;
pub mod normalize;
pub mod reply;
pub mod rest;
pub mod shard;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway::admin::Admin;
use gateway::dedupe::DedupeError;
use gateway::{Input, Pipeline, PipelineError, Request};
use serde_json::{Value, json};

pub use config::DiscordConfig;
use normalize::{Message, Thread};
use reply::{Target, Throttle};
use rest::{Rest, RestError};

/// How long a message id is remembered against duplicates (a resume
/// replays at most a few minutes).
const DEDUPE_TTL: Duration = Duration::from_secs(15 * 60);
/// The largest prompt file `/prompt edit` takes.
const MAX_PROMPT_FILE: usize = 256 * 1024;
/// Images taken from one message, at most.
const MAX_IMAGES: usize = 4;
/// The largest image sent to a model, in bytes.
const MAX_IMAGE_BYTES: usize = 8 * 1024 * 1024;
/// Commands that take longer than this are deferred (Discord allows 3 s).
const DEFER_AFTER: Duration = Duration::from_millis(2500);

/// Why a dispatch could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// A Discord API call failed.
    #[error(transparent)]
    Rest(#[from] RestError),
    /// The dedupe store could not be asked.
    #[error(transparent)]
    Dedupe(#[from] DedupeError),
    /// The payload is not the documented shape.
    #[error("{event}: the payload is not the documented shape: {message}")]
    Payload {
        /// The dispatch name.
        event: String,
        /// The parse error.
        message: String,
    },
}

/// The adapter. Cheap to clone.
#[derive(Clone)]
pub struct Discord {
    inner: Arc<Inner>,
}

struct Inner {
    config: DiscordConfig,
    rest: Rest,
    pipeline: Pipeline,
    admin: Admin,
    throttle: Throttle,
    threads: Mutex<HashMap<String, Thread>>,
    bot_id: Mutex<Option<String>>,
}

/// Starts the Discord connection when `[discord]` is configured; the task
/// ends when `stop` turns true. Configuration errors stop start-up.
pub fn start(
    app: &gateway::Gateway,
    config: &gateway::Config,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>, config::ConfigError> {
    let Some(table) = &config.discord else {
        return Ok(None);
    };
    let settings = DiscordConfig::parse(table, |var| config.env.get(var).map(str::to_string))?;
    tracing::info!(api_base = %settings.api_base, shards = ?settings.shards, "starting the Discord adapter");
    let discord = Discord::new(settings, app.pipeline.clone(), app.admin.clone());
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = shard::run(discord, stop).await {
            tracing::error!(error = %e, "the Discord adapter stopped");
        }
    })))
}

impl Discord {
    /// An adapter over these gateway parts.
    pub fn new(config: DiscordConfig, pipeline: Pipeline, admin: Admin) -> Discord {
        let rest = Rest::new(&config.api_base, &config.token);
        Discord {
            inner: Arc::new(Inner {
                throttle: Throttle::new(config.edit_interval),
                config,
                rest,
                pipeline,
                admin,
                threads: Mutex::default(),
                bot_id: Mutex::default(),
            }),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &DiscordConfig {
        &self.inner.config
    }

    /// The REST client.
    pub fn rest(&self) -> &Rest {
        &self.inner.rest
    }

    /// The bot's own user id, once `READY` has told it.
    pub fn bot_id(&self) -> Option<String> {
        self.inner
            .bot_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_bot_id(&self, id: &str) {
        *self.inner.bot_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.to_string());
    }

    fn remember_thread(&self, channel: &Value) {
        if let Some(t) = normalize::thread_from_channel(channel) {
            self.inner
                .threads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(t.id.clone(), t);
        }
    }

    fn thread(&self, channel: &str) -> Option<Thread> {
        self.inner
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(channel)
            .cloned()
    }

    /// Registers the `/prompt` command group (global commands).
    pub async fn register_commands(&self) -> Result<(), RestError> {
        let path = format!(
            "/applications/{}/commands",
            self.inner.config.application_id
        );
        let body = json!([commands::definition()]);
        self.inner
            .rest
            .call(reqwest::Method::PUT, &path, Some(&body))
            .await
            .map(drop)
    }

    /// Handles one gateway dispatch (`t` and `d` of an op 0 payload).
    pub async fn handle(&self, event: &str, data: Value) -> Result<(), HandleError> {
        let payload = |e: serde_json::Error| HandleError::Payload {
            event: event.to_string(),
            message: e.to_string(),
        };
        match event {
            "READY" => {
                if let Some(id) = data.pointer("/user/id").and_then(Value::as_str) {
                    self.set_bot_id(id);
                }
                Ok(())
            }
            "GUILD_CREATE" => {
                for t in data
                    .get("threads")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    self.remember_thread(t);
                }
                Ok(())
            }
            "THREAD_CREATE" | "THREAD_UPDATE" => {
                self.remember_thread(&data);
                Ok(())
            }
            "MESSAGE_CREATE" => {
                let msg: Message = serde_json::from_value(data).map_err(payload)?;
                self.on_message(msg).await
            }
            "MESSAGE_REACTION_ADD" => self.on_reaction(&data, true).await,
            "MESSAGE_REACTION_REMOVE" => self.on_reaction(&data, false).await,
            "INTERACTION_CREATE" => self.on_interaction(&data).await,
            _ => Ok(()),
        }
    }

    async fn on_message(&self, msg: Message) -> Result<(), HandleError> {
        let Some(bot_id) = self.bot_id() else {
            return Ok(());
        };
        let thread = self.thread(&msg.channel_id);
        let cfg = &self.inner.config;
        if normalize::trigger(&msg, &bot_id, thread.as_ref(), cfg.answer_in_bot_threads).is_none() {
            return Ok(());
        }
        let dedupe = &self.inner.pipeline.guards().dedupe;
        if !dedupe
            .first_seen(&format!("discord:message:{}", msg.id), DEDUPE_TTL)
            .await?
        {
            tracing::debug!(message = %msg.id, "message already answered");
            return Ok(());
        }
        let history = self.context(&msg, thread.as_ref(), &bot_id).await;
        let mut inbound = normalize::to_inbound(&msg, &bot_id, thread.as_ref(), history);
        let (images, unreadable) = self.images(&msg).await;
        inbound.images = images;
        let origin = inbound.origin.clone();
        let target = Target {
            channel: &msg.channel_id,
            reply_to: Some(&msg.id),
            note: None,
        };
        let rest = &self.inner.rest;
        match self
            .inner
            .pipeline
            .start(Request::new(origin, Input::Chat(inbound)))
            .await
        {
            Ok(stream) => {
                let note = normalize::image_note(&stream.images_unread, &unreadable);
                let target = Target {
                    note: note.as_deref(),
                    ..target
                };
                reply::render(rest, &self.inner.throttle, &target, stream).await?;
            }
            Err(PipelineError::Limited { source, .. }) => {
                reply::notice(rest, &target, &format!("⏳ {source}")).await?;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot answer a Discord message");
                reply::notice(rest, &target, &format!("⚠️ I cannot answer this: {e}")).await?;
            }
        }
        Ok(())
    }

    /// The images attached to `msg`, fetched from the CDN (at most
    /// [`MAX_IMAGES`] of at most [`MAX_IMAGE_BYTES`] each), and the names
    /// of those that could not be used.
    async fn images(&self, msg: &Message) -> (Vec<gateway::Image>, Vec<String>) {
        let mut images = Vec::new();
        let mut unreadable = Vec::new();
        for a in msg.attachments.iter().filter(|a| a.is_image()) {
            let fetched = match &a.url {
                Some(url) if images.len() < MAX_IMAGES && a.size <= MAX_IMAGE_BYTES as u64 => self
                    .inner
                    .rest
                    .download_bytes(url, MAX_IMAGE_BYTES)
                    .await
                    .ok(),
                _ => None,
            };
            let image = fetched.and_then(|bytes| {
                gateway::Image::from_bytes(
                    a.content_type.as_deref().unwrap_or(""),
                    &a.filename,
                    &bytes,
                )
            });
            match image {
                Some(image) => images.push(image),
                None => {
                    tracing::info!(file = %a.filename, "an attached image was not used");
                    unreadable.push(a.filename.clone());
                }
            }
        }
        (images, unreadable)
    }

    /// The conversation before `msg`: the thread's messages, or the reply
    /// chain, up to `discord.history` of them. A failed read leaves the
    /// context shorter rather than the question unanswered.
    async fn context(
        &self,
        msg: &Message,
        thread: Option<&Thread>,
        bot_id: &str,
    ) -> Vec<gateway::ChatMessage> {
        let max = self.inner.config.history;
        if max == 0 {
            return Vec::new();
        }
        let rest = &self.inner.rest;
        let earlier = if thread.is_some() {
            match rest.messages_before(&msg.channel_id, &msg.id, max).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "thread history not read");
                    Vec::new()
                }
            }
        } else {
            let mut chain = Vec::new();
            let mut next = msg.referenced_message.as_deref().cloned();
            let mut reference = msg.message_reference.clone();
            while chain.len() < max {
                let m = match next.take() {
                    Some(m) => m,
                    None => {
                        let Some(id) = reference.as_ref().and_then(|r| r.message_id.clone()) else {
                            break;
                        };
                        let channel = reference
                            .as_ref()
                            .and_then(|r| r.channel_id.clone())
                            .unwrap_or_else(|| msg.channel_id.clone());
                        match rest.message(&channel, &id).await {
                            Ok(m) => m,
                            Err(e) => {
                                tracing::warn!(error = %e, "reply chain cut short");
                                break;
                            }
                        }
                    }
                };
                reference = m.message_reference.clone();
                next = m.referenced_message.as_deref().cloned();
                chain.push(m);
            }
            chain.reverse();
            chain
        };
        normalize::history(&earlier, bot_id, max, self.inner.config.history_chars)
    }

    /// A 👍 / 👎 reaction added to (or removed from) one of the bot's
    /// answers.
    async fn on_reaction(&self, data: &Value, added: bool) -> Result<(), HandleError> {
        let text = |k: &str| data.get(k).and_then(Value::as_str);
        let (Some(user), Some(channel), Some(message), Some(emoji)) = (
            text("user_id"),
            text("channel_id"),
            text("message_id"),
            data.pointer("/emoji/name").and_then(Value::as_str),
        ) else {
            return Ok(());
        };
        let Some(up) = feedback::reaction_vote(emoji) else {
            return Ok(());
        };
        let Some(bot_id) = self.bot_id() else {
            return Ok(());
        };
        if user == bot_id {
            return Ok(());
        }
        let msg = self.inner.rest.message(channel, message).await?;
        if msg.author.id != bot_id {
            return Ok(());
        }
        // Only the last part of an answer carries the buttons; earlier parts
        // are found by the parts after them in the channel.
        let mut inference = feedback::inference_of(&msg.components);
        if inference.is_none() {
            let after = self
                .inner
                .rest
                .call(
                    reqwest::Method::GET,
                    &format!("/channels/{channel}/messages?after={message}&limit=5"),
                    None,
                )
                .await?;
            let later: Vec<Message> = serde_json::from_value(after).unwrap_or_default();
            inference = later
                .iter()
                .rev()
                .filter(|m| m.author.id == bot_id)
                .find_map(|m| feedback::inference_of(&m.components));
        }
        let Some(id) = inference else {
            return Ok(());
        };
        let recorder = self.inner.pipeline.recorder();
        if added {
            recorder
                .feedback(feedback::record(id, up, user, "reaction"))
                .await;
            return Ok(());
        }
        // Withdrawn only if this reaction cast the vote that stands: taking
        // back a 👍 leaves a later 👎 (or button click) alone.
        recorder.flush().await;
        let current = self
            .inner
            .pipeline
            .registry()
            .store()
            .current_vote(&id.to_string(), &feedback::voter(user))
            .await;
        match current {
            Ok(Some(Some(score))) if (score == 1.0) == up => {
                recorder.feedback(feedback::withdrawal(id, user)).await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the vote a removed reaction would withdraw")
            }
        }
        Ok(())
    }

    async fn on_interaction(&self, data: &Value) -> Result<(), HandleError> {
        let (Some(id), Some(token)) = (
            data.get("id").and_then(Value::as_str),
            data.get("token").and_then(Value::as_str),
        ) else {
            return Ok(());
        };
        let rest = &self.inner.rest;
        let kind = data.get("type").and_then(Value::as_u64).unwrap_or(0);
        let inner = data.get("data").cloned().unwrap_or(Value::Null);
        match kind {
            // MESSAGE_COMPONENT: a feedback button.
            3 => {
                let custom = inner.get("custom_id").and_then(Value::as_str).unwrap_or("");
                let user = data
                    .pointer("/member/user/id")
                    .or_else(|| data.pointer("/user/id"))
                    .and_then(Value::as_str);
                let (Some((inference, up)), Some(user)) = (feedback::parse_custom_id(custom), user)
                else {
                    return Ok(());
                };
                self.inner
                    .pipeline
                    .recorder()
                    .feedback(feedback::record(inference, up, user, "button"))
                    .await;
                let thanks = if up {
                    "Recorded 👍, thank you."
                } else {
                    "Recorded 👎, thank you: it helps us improve the answers."
                };
                rest.interaction_callback(id, token, &commands::ephemeral(4, thanks))
                    .await?;
            }
            // APPLICATION_COMMAND_AUTOCOMPLETE.
            4 => {
                let choices = self.autocomplete(&inner).await;
                rest.interaction_callback(
                    id,
                    token,
                    &json!({ "type": 8, "data": { "choices": choices } }),
                )
                .await?;
            }
            // APPLICATION_COMMAND and MODAL_SUBMIT.
            2 | 5 => self.on_command(data, id, token, kind, &inner).await?,
            _ => {}
        }
        Ok(())
    }

    async fn autocomplete(&self, data: &Value) -> Vec<Value> {
        let Some((option, typed)) = commands::focused(data) else {
            return Vec::new();
        };
        let registry = self.inner.admin.registry();
        let mut values: Vec<String> = if option == "name" {
            registry.list().into_iter().map(|p| p.name).collect()
        } else {
            let name = commands::subcommand(data)
                .and_then(|(_, opts)| opts.into_iter().find(|(n, _)| n == "name"))
                .map(|(_, v)| v)
                .unwrap_or_default();
            let info = registry.list().into_iter().find(|p| p.name == name);
            let mut v: Vec<String> = match registry.versions(&name).await {
                Ok(rows) => rows.iter().rev().map(|r| r.version.to_string()).collect(),
                Err(_) => Vec::new(),
            };
            if let Some(info) = info {
                v.splice(0..0, info.labels.keys().cloned());
            }
            v
        };
        values.retain(|v| v.starts_with(typed.trim()));
        values.truncate(25);
        values
            .into_iter()
            .map(|v| json!({ "name": v, "value": v }))
            .collect()
    }

    async fn on_command(
        &self,
        data: &Value,
        id: &str,
        token: &str,
        kind: u64,
        inner: &Value,
    ) -> Result<(), HandleError> {
        let rest = &self.inner.rest;
        let Some(actor) = commands::actor(data) else {
            return Ok(());
        };
        let command = if kind == 5 {
            commands::from_modal(inner)
        } else {
            let Some((sub, options)) = commands::subcommand(inner) else {
                return Ok(());
            };
            if sub == "edit" {
                let name = options
                    .iter()
                    .find(|(n, _)| n == "name")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                match commands::attachment_url(data, &options, "file") {
                    None => return self.open_editor(&actor, id, token, &name).await,
                    Some(url) => self.edit_from_file(&name, &url).await,
                }
            } else {
                commands::to_command(&sub, &options, commands::here(data).as_ref())
            }
        };
        let command = match command {
            Ok(c) => c,
            Err(message) => {
                rest.interaction_callback(id, token, &commands::ephemeral(4, &message))
                    .await?;
                return Ok(());
            }
        };
        let admin = self.inner.admin.clone();
        let mut run = tokio::spawn(async move { admin.run(&actor, command).await });
        let text = |r: Result<
            Result<gateway::admin::Output, gateway::admin::AdminError>,
            tokio::task::JoinError,
        >| match r {
            Ok(Ok(out)) => out.to_text(),
            Ok(Err(e)) => format!("⛔ {e}"),
            Err(e) => format!("⚠️ the command failed: {e}"),
        };
        match tokio::time::timeout(DEFER_AFTER, &mut run).await {
            Ok(result) => {
                rest.interaction_callback(id, token, &commands::ephemeral(4, &text(result)))
                    .await?;
            }
            Err(_) => {
                // DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE, ephemeral; the answer follows.
                rest.interaction_callback(
                    id,
                    token,
                    &json!({ "type": 5, "data": { "flags": 64 } }),
                )
                .await?;
                let body = json!({ "content": commands::clip(&text(run.await)), "allowed_mentions": { "parse": [] } });
                rest.edit_original(&self.inner.config.application_id, token, &body)
                    .await?;
            }
        }
        Ok(())
    }

    /// `/prompt edit NAME file:…`: the attached TOML as a new version of the
    /// prompt's newest one. The admin layer checks rights when it runs.
    async fn edit_from_file(
        &self,
        name: &str,
        url: &str,
    ) -> Result<gateway::admin::Command, String> {
        let versions = self
            .inner
            .admin
            .registry()
            .versions(name)
            .await
            .map_err(|e| e.to_string())?;
        // Newest first from the store; the highest number, whatever the order.
        let base = versions
            .iter()
            .map(|v| v.version)
            .max()
            .ok_or_else(|| format!("no prompt named `{name}`; /prompt list shows them"))?;
        let text = self
            .inner
            .rest
            .download(url, MAX_PROMPT_FILE)
            .await
            .map_err(|e| format!("cannot read the attached file: {e}"))?;
        gateway::admin::Command::edit_from_toml(name, base, &text, None, commands::EDITED_HERE)
    }

    /// `/prompt edit NAME`: the form with the prompt's newest version.
    async fn open_editor(
        &self,
        actor: &gateway::admin::Actor,
        id: &str,
        token: &str,
        name: &str,
    ) -> Result<(), HandleError> {
        let rest = &self.inner.rest;
        if self.inner.admin.rights(actor) < gateway::admin::Rights::Editor {
            let msg = "⛔ you may not edit prompts; ask an admin to add you to [admin] editors";
            rest.interaction_callback(id, token, &commands::ephemeral(4, msg))
                .await?;
            return Ok(());
        }
        let versions = self.inner.admin.registry().versions(name).await;
        let answer = match versions
            .as_deref()
            .map(|v| v.iter().max_by_key(|v| v.version))
        {
            Ok(Some(latest)) => commands::edit_modal(name, latest.version, &latest.body)
                .unwrap_or_else(|| {
                    commands::ephemeral(
                        4,
                        &format!(
                            "`{name}` v{} is longer than a Discord form holds ({} characters); edit it with `switchboard prompts` on the command line",
                            latest.version,
                            commands::MODAL_MAX
                        ),
                    )
                }),
            Ok(None) => commands::ephemeral(4, &format!("no prompt named `{name}`; /prompt list shows them")),
            Err(e) => commands::ephemeral(4, &format!("⚠️ {e}")),
        };
        rest.interaction_callback(id, token, &answer).await?;
        Ok(())
    }
}
