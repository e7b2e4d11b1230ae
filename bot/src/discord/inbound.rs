//! From Discord's payloads to the gateway's [`Inbound`]: which messages the
//! bot answers (triggers), and what it hands the pipeline. The rules are
//! pure functions over the documented JSON shapes, so that every one is
//! tested without a network; `on_message` applies them to a
//! `MESSAGE_CREATE`, deduplicates it across replicas (through Redis),
//! reads its context (reply chain or thread) and hands the request to the
//! pipeline, whose answer [`super::delivery`] writes.

use std::time::Duration;

use gateway::{ChatMessage, Inbound, Input, Origin, PipelineError, Request, Role};
use serde_json::Value;

use super::delivery::{self, Target};
use super::model::{Attachment, Message, Thread};
use super::rest::Rest;
use super::state::{HandleError, Intake, Known};

/// How long a message id is remembered against duplicates (a resume
/// replays at most a few minutes).
const DEDUPE_TTL: Duration = Duration::from_secs(15 * 60);
/// Images taken from one message, at most.
const MAX_IMAGES: usize = 4;
/// The largest image sent to a model, in bytes.
const MAX_IMAGE_BYTES: usize = 8 * 1024 * 1024;
/// How long a message in a guild channel not known as a thread waits for
/// that channel's `THREAD_CREATE` (see [`on_message`]).
const THREAD_GRACE: Duration = Duration::from_millis(300);

/// Why the bot answers a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The bot was mentioned.
    Mention,
    /// A direct message.
    Direct,
    /// A reply to one of the bot's messages.
    ReplyToBot,
    /// A message in a thread the bot started.
    BotThread,
}

/// Decides whether the bot answers `msg`. The bot never answers itself or
/// other bots (two bots would answer each other forever).
pub fn trigger(
    msg: &Message,
    bot_id: &str,
    thread: Option<&Thread>,
    answer_in_bot_threads: bool,
) -> Option<Trigger> {
    if msg.author.id == bot_id || msg.author.bot {
        return None;
    }
    if msg.guild_id.is_none() {
        return Some(Trigger::Direct);
    }
    if msg.mentions.iter().any(|u| u.id == bot_id) || mentions_in_text(&msg.content, bot_id) {
        return Some(Trigger::Mention);
    }
    if msg
        .referenced_message
        .as_ref()
        .is_some_and(|r| r.author.id == bot_id)
    {
        return Some(Trigger::ReplyToBot);
    }
    if answer_in_bot_threads && thread.is_some_and(|t| t.owner_id.as_deref() == Some(bot_id)) {
        return Some(Trigger::BotThread);
    }
    None
}

fn mentions_in_text(text: &str, bot_id: &str) -> bool {
    text.contains(&format!("<@{bot_id}>")) || text.contains(&format!("<@!{bot_id}>"))
}

/// `text` without the bot's mentions, trimmed.
pub fn strip_mention(text: &str, bot_id: &str) -> String {
    text.replace(&format!("<@!{bot_id}>"), "")
        .replace(&format!("<@{bot_id}>"), "")
        .trim()
        .to_string()
}

/// The message as the gateway's [`Inbound`]. `thread` is the thread the
/// message was posted in, if known; `history` the conversation before it,
/// oldest first (see [`history`]).
pub fn to_inbound(
    msg: &Message,
    bot_id: &str,
    thread: Option<&Thread>,
    history: Vec<ChatMessage>,
) -> Inbound {
    let (channel, thread_id) = match thread {
        Some(t) => (
            t.parent_id.clone().unwrap_or_else(|| t.id.clone()),
            Some(t.id.clone()),
        ),
        None => (msg.channel_id.clone(), None),
    };
    let user_name = msg
        .member
        .as_ref()
        .and_then(|m| m.nick.clone())
        .unwrap_or_else(|| msg.author.display().to_string());
    Inbound {
        origin: Origin {
            platform: "discord".to_string(),
            workspace: msg.guild_id.clone(),
            channel: Some(channel),
            thread: thread_id,
            user: Some(gateway::User::new("discord", msg.author.id.clone())),
            // Direct messages carry no guild.
            private: msg.guild_id.is_none(),
            label: None,
        },
        user_name: Some(user_name),
        channel_name: None,
        workspace_name: None,
        text: strip_mention(&msg.content, bot_id),
        history,
        attachments: msg.attachments.iter().map(describe_attachment).collect(),
        images: Vec::new(),
        is_admin: false,
        // Approve / Deny are posted in the channel for tools that ask first.
        confirms: true,
    }
}

/// One attachment as the prompt sees it: name, type and size.
pub fn describe_attachment(a: &Attachment) -> String {
    format!(
        "{} ({}, {} bytes)",
        a.filename,
        a.content_type.as_deref().unwrap_or("unknown type"),
        a.size
    )
}

/// The note an answer ends with when images of the question went unseen:
/// `text_only` because the model reads text only, `unreadable` because they
/// could not be fetched (or are too large or of a type models do not take).
pub fn image_note(text_only: &[String], unreadable: &[String]) -> Option<String> {
    let list = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines = Vec::new();
    if !text_only.is_empty() {
        lines.push(format!(
            "-# I could not look at {}: the model answering here reads text only.",
            list(text_only)
        ));
    }
    if !unreadable.is_empty() {
        lines.push(format!(
            "-# I could not look at {}: the image could not be read (too large, or not PNG, JPEG, GIF or WebP).",
            list(unreadable)
        ));
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Earlier messages as chat turns, oldest first: the bot's own as the
/// assistant's, everyone else's as the user's, prefixed with who said it.
/// Messages without text (content not visible) are left out; at most `max`
/// of the newest are kept, and no more of them than fit in `max_chars`.
pub fn history(
    messages: &[Message],
    bot_id: &str,
    max: usize,
    max_chars: usize,
) -> Vec<ChatMessage> {
    let turns: Vec<ChatMessage> = messages
        .iter()
        .filter_map(|m| {
            let text = strip_mention(&m.content, bot_id);
            if text.is_empty() {
                return None;
            }
            Some(if m.author.id == bot_id {
                ChatMessage::new(Role::Assistant, text)
            } else {
                let name = m
                    .member
                    .as_ref()
                    .and_then(|mm| mm.nick.as_deref())
                    .unwrap_or(m.author.display());
                ChatMessage::new(Role::User, format!("{name}: {text}"))
            })
        })
        .collect();
    let mut kept: Vec<ChatMessage> = Vec::new();
    let mut chars = 0;
    for turn in turns.into_iter().rev().take(max) {
        chars += turn.content.chars().count();
        if chars > max_chars {
            break;
        }
        kept.push(turn);
    }
    kept.reverse();
    kept
}

/// Reads a thread from a `THREAD_CREATE` (or `GUILD_CREATE` `threads[]`)
/// channel object; `None` for channels that are not threads.
pub fn thread_from_channel(channel: &Value) -> Option<Thread> {
    // 10 announcement thread, 11 public thread, 12 private thread.
    let kind = channel.get("type")?.as_u64()?;
    if !(10..=12).contains(&kind) {
        return None;
    }
    let text = |k: &str| channel.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Some(Thread {
        id: text("id")?,
        parent_id: text("parent_id"),
        owner_id: text("owner_id"),
    })
}

/// A message posted where the bot can read it (`MESSAGE_CREATE`):
/// answered when it is for the bot, once across replicas.
pub(crate) async fn on_message(intake: &Intake, msg: Message) -> Result<(), HandleError> {
    let Some(bot_id) = intake.known.bot_id() else {
        return Ok(());
    };
    let mut thread = intake.known.thread(&msg.channel_id);
    let triggers = |thread: Option<&Thread>| {
        trigger(&msg, &bot_id, thread, intake.answer_in_bot_threads).is_some()
    };
    if !triggers(thread.as_ref()) {
        // serenity handles each event in a task of its own, so the first
        // message in a brand-new thread can overtake the thread's
        // `THREAD_CREATE` by a moment: a message that would be ignored
        // in a channel not known as a thread gets that moment.
        if !(intake.answer_in_bot_threads && thread.is_none() && msg.guild_id.is_some()) {
            return Ok(());
        }
        tokio::time::sleep(THREAD_GRACE).await;
        thread = intake.known.thread(&msg.channel_id);
        if !triggers(thread.as_ref()) {
            return Ok(());
        }
    }
    if !intake
        .dedupe
        .first_seen(&format!("discord:message:{}", msg.id), DEDUPE_TTL)
        .await?
    {
        tracing::debug!(message = %msg.id, "message already answered");
        return Ok(());
    }
    let history = context(intake, &msg, thread.as_ref(), &bot_id).await;
    let inbound = to_inbound(&msg, &bot_id, thread.as_ref(), history);
    let origin = inbound.origin.clone();
    let target = Target {
        channel: &msg.channel_id,
        reply_to: Some(&msg.id),
        note: None,
    };
    let delivery = &intake.delivery;
    // The limits first: a refused request downloads nothing.
    let request = Request::new(origin, Input::Chat(inbound));
    let started = intake
        .pipeline
        .start_with_images(request, || images(&intake.rest, &msg))
        .await;
    match started {
        Ok((stream, unreadable)) => {
            let note = image_note(&stream.images_unread, &unreadable);
            let target = Target {
                note: note.as_deref(),
                ..target
            };
            delivery::render(delivery, &target, stream).await?;
        }
        Err(PipelineError::Limited { source, .. }) => {
            delivery::notice(delivery, &target, &format!("⏳ {source}")).await?;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot answer a Discord message");
            delivery::notice(delivery, &target, &format!("⚠️ I cannot answer this: {e}")).await?;
        }
    }
    Ok(())
}

/// Remembers a thread (`THREAD_CREATE`, `GUILD_CREATE`), so that the bot
/// knows the threads it started.
pub(crate) fn remember_thread(known: &Known, channel: &Value) {
    if let Some(t) = thread_from_channel(channel) {
        known.remember(t);
    }
}

/// The images attached to `msg`, fetched from the CDN (at most
/// [`MAX_IMAGES`] of at most [`MAX_IMAGE_BYTES`] each), and the names
/// of those that could not be used.
async fn images(rest: &Rest, msg: &Message) -> (Vec<gateway::Image>, Vec<String>) {
    let mut images = Vec::new();
    let mut unreadable = Vec::new();
    for a in msg.attachments.iter().filter(|a| a.is_image()) {
        let fetched = match &a.url {
            Some(url) if images.len() < MAX_IMAGES && a.size <= MAX_IMAGE_BYTES as u64 => {
                rest.download_bytes(url, MAX_IMAGE_BYTES).await.ok()
            }
            _ => None,
        };
        let image = fetched.and_then(|bytes| {
            gateway::Image::from_bytes(a.content_type.as_deref().unwrap_or(""), &a.filename, &bytes)
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
    intake: &Intake,
    msg: &Message,
    thread: Option<&Thread>,
    bot_id: &str,
) -> Vec<ChatMessage> {
    let max = intake.history;
    if max == 0 {
        return Vec::new();
    }
    let rest = &intake.rest;
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
    history(&earlier, bot_id, max, intake.history_chars)
}
