//! The Discord adapter: turns gateway dispatches (messages, reactions,
//! button clicks, submitted forms) into pipeline requests and admin
//! commands, and renders the answers back through Discord's REST API. The
//! connection lives in [`connection`] (serenity), the `/prompt` commands in
//! [`slash`] (poise); the handlers here work on Discord's documented JSON
//! (serenity's models written back as JSON by [`events`]), so that they are
//! tested without Discord.
//!
//! Data flow: `MESSAGE_CREATE` → [`inbound::trigger`] → dedupe (shared
//! through Redis) → context (reply chain or thread) → [`gateway::Pipeline`]
//! → [`delivery::render`] (throttled edits, split parts, feedback buttons).

pub mod commands;
pub mod config;
pub mod connection;
pub mod delivery;
pub mod events;
pub mod feedback;
pub mod inbound;
pub mod rest;
pub mod slash;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway::admin::{Actor, Admin, AdminError, Command, Output};
use gateway::dedupe::DedupeError;
use gateway::{Input, Pipeline, PipelineError, Request};
use serde_json::{Value, json};
use tokio::task::{JoinError, JoinHandle};

pub use config::DiscordConfig;
use delivery::{Target, Throttle};
use inbound::{Message, Thread};
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
/// How long a message in a guild channel not known as a thread waits for
/// that channel's `THREAD_CREATE` (see [`Discord::on_message`]).
const THREAD_GRACE: Duration = Duration::from_millis(300);

/// Why a dispatch could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// A Discord API call failed.
    #[error(transparent)]
    Rest(#[from] RestError),
    /// The dedupe store could not be asked.
    #[error(transparent)]
    Dedupe(#[from] DedupeError),
    /// A poise reply (a command's answer) could not be sent.
    #[error("cannot answer the command: {0} (check discord.api_base and the network)")]
    Reply(#[source] Box<serenity::Error>),
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
    let (pipeline, admin) = (app.pipeline.clone(), app.admin.clone());
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = connection::run(settings, pipeline, admin, stop).await {
            tracing::error!(error = %e, "the Discord adapter stopped");
        }
    })))
}

/// An admin command still running when Discord wants a first answer.
pub struct Slow(JoinHandle<Result<Output, AdminError>>);

impl Slow {
    /// Waits for the command; its answer as text.
    pub async fn text(self) -> String {
        answer_text(self.0.await)
    }
}

fn answer_text(r: Result<Result<Output, AdminError>, JoinError>) -> String {
    match r {
        Ok(Ok(out)) => out.to_text(),
        Ok(Err(e)) => format!("⛔ {e}"),
        Err(e) => format!("⚠️ the command failed: {e}"),
    }
}

impl Discord {
    /// An adapter over these gateway parts, calling Discord through `rest`.
    pub fn new(config: DiscordConfig, rest: Rest, pipeline: Pipeline, admin: Admin) -> Discord {
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

    /// Remembers the bot's own user id (from `READY`).
    pub fn set_bot_id(&self, id: &str) {
        *self.inner.bot_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.to_string());
    }

    /// Remembers a thread (`THREAD_CREATE`, `GUILD_CREATE`), so that the
    /// bot knows the threads it started.
    pub fn remember_thread(&self, channel: &Value) {
        if let Some(t) = inbound::thread_from_channel(channel) {
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

    /// A message posted where the bot can read it (`MESSAGE_CREATE`).
    pub async fn on_message(&self, msg: Message) -> Result<(), HandleError> {
        let Some(bot_id) = self.bot_id() else {
            return Ok(());
        };
        let mut thread = self.thread(&msg.channel_id);
        let cfg = &self.inner.config;
        let triggers = |thread: Option<&Thread>| {
            inbound::trigger(&msg, &bot_id, thread, cfg.answer_in_bot_threads).is_some()
        };
        if !triggers(thread.as_ref()) {
            // serenity handles each event in a task of its own, so the first
            // message in a brand-new thread can overtake the thread's
            // `THREAD_CREATE` by a moment: a message that would be ignored
            // in a channel not known as a thread gets that moment.
            if !(cfg.answer_in_bot_threads && thread.is_none() && msg.guild_id.is_some()) {
                return Ok(());
            }
            tokio::time::sleep(THREAD_GRACE).await;
            thread = self.thread(&msg.channel_id);
            if !triggers(thread.as_ref()) {
                return Ok(());
            }
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
        let mut inbound = inbound::to_inbound(&msg, &bot_id, thread.as_ref(), history);
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
                let note = inbound::image_note(&stream.images_unread, &unreadable);
                let target = Target {
                    note: note.as_deref(),
                    ..target
                };
                delivery::render(rest, &self.inner.throttle, &target, stream).await?;
            }
            Err(PipelineError::Limited { source, .. }) => {
                delivery::notice(rest, &target, &format!("⏳ {source}")).await?;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot answer a Discord message");
                delivery::notice(rest, &target, &format!("⚠️ I cannot answer this: {e}")).await?;
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
        inbound::history(&earlier, bot_id, max, self.inner.config.history_chars)
    }

    /// A 👍 / 👎 reaction added to (or removed from) one of the bot's
    /// answers (`MESSAGE_REACTION_ADD` / `_REMOVE`).
    pub async fn on_reaction(&self, data: &Value, added: bool) -> Result<(), HandleError> {
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
            let later = self
                .inner
                .rest
                .messages_after(channel, message, 5)
                .await
                .unwrap_or_default();
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

    /// A click on a feedback button (an `INTERACTION_CREATE` of type 3).
    pub async fn on_button(&self, data: &Value) -> Result<(), HandleError> {
        let (Some(id), Some(token)) = (
            data.get("id").and_then(Value::as_str),
            data.get("token").and_then(Value::as_str),
        ) else {
            return Ok(());
        };
        let custom = data
            .pointer("/data/custom_id")
            .and_then(Value::as_str)
            .unwrap_or("");
        let user = data
            .pointer("/member/user/id")
            .or_else(|| data.pointer("/user/id"))
            .and_then(Value::as_str);
        let (Some((inference, up)), Some(user)) = (feedback::parse_custom_id(custom), user) else {
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
        self.inner
            .rest
            .interaction_callback(id, token, &commands::ephemeral(4, thanks))
            .await?;
        Ok(())
    }

    /// The edit form submitted (an `INTERACTION_CREATE` of type 5): a new
    /// version through the admin layer, which checks rights.
    pub async fn on_modal(&self, data: &Value) -> Result<(), HandleError> {
        let (Some(id), Some(token), Some(actor)) = (
            data.get("id").and_then(Value::as_str),
            data.get("token").and_then(Value::as_str),
            commands::actor(data),
        ) else {
            return Ok(());
        };
        let rest = &self.inner.rest;
        let command = match commands::from_modal(data.get("data").unwrap_or(&Value::Null)) {
            Ok(c) => c,
            Err(message) => {
                rest.interaction_callback(id, token, &commands::ephemeral(4, &message))
                    .await?;
                return Ok(());
            }
        };
        match self.run_admin(actor, command).await {
            Ok(text) => {
                rest.interaction_callback(id, token, &commands::ephemeral(4, &text))
                    .await?;
            }
            Err(slow) => {
                // DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE, ephemeral; the answer follows.
                rest.interaction_callback(
                    id,
                    token,
                    &json!({ "type": 5, "data": { "flags": 64 } }),
                )
                .await?;
                let body = json!({ "content": commands::clip(&slow.text().await), "allowed_mentions": { "parse": [] } });
                rest.edit_original(token, &body).await?;
            }
        }
        Ok(())
    }

    /// Runs an admin command for `actor` (the admin layer checks rights on
    /// every call); `Err` with the running command when it takes longer
    /// than Discord waits for a first answer, so that the caller defers.
    pub async fn run_admin(&self, actor: Actor, command: Command) -> Result<String, Slow> {
        let admin = self.inner.admin.clone();
        let mut run = tokio::spawn(async move { admin.run(&actor, command).await });
        match tokio::time::timeout(DEFER_AFTER, &mut run).await {
            Ok(result) => Ok(answer_text(result)),
            Err(_) => Err(Slow(run)),
        }
    }

    /// Autocomplete choices: prompt names for `name`, otherwise the labels
    /// and versions (newest first) of prompt `name`; those starting with
    /// what was typed, at most 25 (Discord's limit).
    pub async fn choices(&self, option: &str, name: &str, typed: &str) -> Vec<String> {
        let registry = self.inner.admin.registry();
        let mut values: Vec<String> = if option == "name" {
            registry.list().into_iter().map(|p| p.name).collect()
        } else {
            let info = registry.list().into_iter().find(|p| p.name == name);
            let mut v: Vec<String> = match registry.versions(name).await {
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
    }

    /// `/prompt edit NAME file:…`: the attached TOML as a new version of the
    /// prompt's newest one. The admin layer checks rights when it runs.
    pub async fn edit_from_file(&self, name: &str, url: &str) -> Result<Command, String> {
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
        Command::edit_from_toml(name, base, &text, None, commands::EDITED_HERE)
    }

    /// `/prompt edit NAME`: the interaction answer that opens the form with
    /// the prompt's newest version, or says why it cannot.
    pub async fn editor(&self, actor: &Actor, name: &str) -> Value {
        if self.inner.admin.rights(actor) < gateway::admin::Rights::Editor {
            let msg = "⛔ you may not edit prompts; ask an admin to add you to [admin] editors";
            return commands::ephemeral(4, msg);
        }
        let versions = self.inner.admin.registry().versions(name).await;
        match versions
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
        }
    }
}
