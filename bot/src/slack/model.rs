//! Slack's payloads as the adapter reads them: an event callback (from
//! `/slack/events` or a Socket Mode envelope) and the message an
//! `app_mention` or `message` event carries. Plain data over
//! slack-morphism's models: [`super::inbound`] decides what to do with it.

use serde_json::Value;
use slack_morphism::SlackFile;
use slack_morphism::events::{
    SlackAppMentionEvent, SlackEventCallbackBody, SlackMessageEvent, SlackMessageEventType,
    SlackPushEventCallback,
};

/// One event callback: its id, workspace and event.
pub(crate) struct Callback {
    /// Slack's id of the delivery, the same on every retry.
    pub event_id: String,
    /// The workspace (`team_id`).
    pub team: String,
    /// The inner event, as slack-morphism reads it.
    pub event: SlackEventCallbackBody,
    /// The inner event as it arrived, for what slack-morphism's models
    /// leave out (an edited or deleted message's `thread_ts`).
    pub raw: Value,
}

impl Callback {
    /// Reads an `event_callback` payload (the HTTP body, or a Socket Mode
    /// envelope's `payload`). slack-morphism's [`SlackPushEventCallback`]
    /// wants every documented field; a callback that lacks one it does not
    /// need here (`api_app_id`, `event_time`) is still taken when it has
    /// an `event_id` and an `event` object. An event whose type or shape
    /// slack-morphism does not model is `SlackEventCallbackBody::Unknown`.
    pub(crate) fn read(payload: &Value) -> Option<Callback> {
        if let Ok(cb) = serde_json::from_value::<SlackPushEventCallback>(payload.clone()) {
            return Some(Callback {
                event_id: cb.event_id.0,
                team: cb.team_id.0,
                event: cb.event,
                raw: payload["event"].clone(),
            });
        }
        let event_id = payload["event_id"].as_str()?;
        let event = payload.get("event").filter(|e| e.is_object())?;
        Some(Callback {
            event_id: event_id.to_string(),
            team: payload["team_id"].as_str().unwrap_or_default().to_string(),
            event: serde_json::from_value(event.clone())
                .unwrap_or_else(|_| SlackEventCallbackBody::Unknown(event.clone())),
            raw: event.clone(),
        })
    }
}

/// One message as the adapter reads it, from an `app_mention` or a
/// `message` event.
pub(crate) struct Said {
    /// The channel.
    pub channel: String,
    /// The message's timestamp (its id).
    pub ts: String,
    /// The thread it is in, if any.
    pub thread: Option<String>,
    /// The user who wrote it.
    pub user: Option<String>,
    /// The bot that sent it, if a bot did.
    pub bot_id: Option<String>,
    /// A `bot_message`.
    pub bot_message: bool,
    /// The text (mrkdwn).
    pub text: String,
    /// A direct message.
    pub im: bool,
    /// Attached files.
    pub files: Vec<SlackFile>,
}

impl Said {
    /// An `app_mention` event.
    pub fn mention(e: SlackAppMentionEvent) -> Said {
        let content = e.content;
        Said {
            channel: e.channel.0,
            ts: e.origin.ts.0,
            thread: e.origin.thread_ts.map(|t| t.0),
            user: Some(e.user.0),
            bot_id: None,
            bot_message: false,
            text: content.text.unwrap_or_default(),
            im: false,
            files: content.files.unwrap_or_default(),
        }
    }

    /// A `message` event; `None` for edits, deletions, joins and the
    /// like: not questions.
    pub fn message(e: SlackMessageEvent) -> Option<Said> {
        let bot_message = match &e.subtype {
            None => false,
            Some(SlackMessageEventType::BotMessage) => true,
            Some(SlackMessageEventType::FileShare | SlackMessageEventType::ThreadBroadcast) => {
                false
            }
            Some(_) => return None,
        };
        let content = e
            .content
            .unwrap_or_else(slack_morphism::SlackMessageContent::new);
        Some(Said {
            channel: e.origin.channel?.0,
            ts: e.origin.ts.0,
            thread: e.origin.thread_ts.map(|t| t.0),
            user: e.sender.user.map(|u| u.0),
            bot_id: e.sender.bot_id.map(|b| b.0),
            bot_message,
            text: content.text.unwrap_or_default(),
            im: e.origin.channel_type.is_some_and(|t| t.0 == "im"),
            files: content.files.unwrap_or_default(),
        })
    }
}
