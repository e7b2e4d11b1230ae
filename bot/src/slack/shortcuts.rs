//! Slack's message shortcuts: "Summarize thread" (`switchboard_summarize`)
//! and "Ask Switchboard about this" (`switchboard_ask_about`), from a
//! message's ⋯ menu (`message_action` on `/slack/interactions`). The thread
//! is read in pages as the bot, trimmed to `[slack] shortcut_chars` (the
//! oldest messages first), and answered through the registry prompts
//! `summarize` and `ask_about` (shipped in `prompts/library/`, so edited,
//! split and evaluated like any prompt), in the thread or to the asker only
//! (`[slack] shortcut_reply`). A message the bot cannot read is refused, to
//! the asker only.

use gateway::domain::{ChatMessage, Input, Origin, Request, Role};
use slack_morphism::prelude::SlackInteractionMessageActionEvent;

use super::config::ShortcutReply;
use super::delivery::{self, Place};
use super::knowledge::HarvestError;
use super::state::Parts;

/// `callback_id` of "Summarize thread".
pub const SUMMARIZE: &str = "switchboard_summarize";
/// `callback_id` of "Ask Switchboard about this".
pub const ASK_ABOUT: &str = "switchboard_ask_about";

/// Handles a message shortcut; other callbacks are not its business.
pub(crate) async fn on_message_action(parts: &Parts, event: SlackInteractionMessageActionEvent) {
    let prompt = match event.callback_id.0.as_str() {
        SUMMARIZE => "summarize",
        ASK_ABOUT => "ask_about",
        _ => return,
    };
    let intake = &parts.intake;
    let respond = |text: String| {
        let url = event.response_url.0.to_string();
        async move {
            let body = super::blocks::thanks(&text);
            if let Err(e) = parts.intake.web.respond(&url, &body).await {
                tracing::debug!(error = %e, "cannot answer the shortcut");
            }
        }
    };
    let (Some(channel), Some(message)) = (&event.channel, &event.message) else {
        respond("This shortcut works on a message in a channel.".into()).await;
        return;
    };
    let channel = channel.id.0.as_str();
    let user = event.user.id.0.as_str();
    let team = event.team.id.0.as_str();
    let ts = message.origin.ts.0.as_str();
    let root = message
        .origin
        .thread_ts
        .as_ref()
        .map_or(ts, |t| t.0.as_str());
    // Read as the bot: a message it cannot read is not answered, and a
    // payload naming a message that is not there gets nothing.
    let thread = match intake.harvest.whole_thread(channel, root).await {
        Ok(t) => t,
        Err(HarvestError::NotInChannel(_)) => {
            respond("I cannot read this channel: invite me with `/invite @Switchboard`, then try again.".into()).await;
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the thread for a shortcut");
            respond("I could not read this thread just now; try again in a moment.".into()).await;
            return;
        }
    };
    let Some(pointed) = thread.iter().find(|m| m.ts == ts) else {
        respond("I cannot find that message.".into()).await;
        return;
    };
    let mut lines = Vec::new();
    for m in thread
        .iter()
        .filter(|m| m.subtype.is_none() && !m.text.trim().is_empty())
    {
        let name = match &m.user {
            Some(u) => intake
                .people
                .user(u)
                .await
                .map(|p| p.name)
                .unwrap_or_else(|_| u.clone()),
            None => "a bot".into(),
        };
        lines.push(format!("{name}: {}", m.text.replace('\n', " ")));
    }
    let budget = intake.shortcuts.chars;
    let (mut transcript, left_out) = crate::chunks::newest_within(&lines, budget);
    if left_out > 0 {
        transcript.insert_str(
            0,
            &format!("(the {left_out} oldest messages are left out)\n"),
        );
    }
    let text = if prompt == "ask_about" {
        format!(
            "The thread:\n{transcript}\n\nThe message asked about:\n{}",
            pointed.text
        )
    } else {
        transcript
    };
    let origin = Origin {
        platform: "slack".into(),
        workspace: Some(team.to_string()),
        channel: Some(channel.to_string()),
        thread: Some(root.to_string()),
        user: Some(gateway::User::new("slack", user)),
        private: channel.starts_with('D'),
        label: None,
    };
    let request = Request::new(
        origin,
        Input::Prompt {
            name: prompt.to_string(),
            selector: None,
            messages: vec![ChatMessage::new(Role::User, text)],
        },
    );
    let stream = match intake.pipeline.start(request).await {
        Ok(s) => s,
        Err(e) => {
            respond(format!("Sorry, I could not answer: {e}")).await;
            return;
        }
    };
    match intake.shortcuts.reply {
        ShortcutReply::Thread => {
            let place = Place {
                team,
                channel,
                thread: root,
                user,
                assistant: false,
            };
            delivery::deliver(&intake.delivery, &place, stream, None).await;
        }
        ShortcutReply::Ephemeral => {
            let answer = stream
                .into_text()
                .await
                .unwrap_or_else(|message| format!("Sorry, I could not answer: {message}"));
            respond(super::format::to_mrkdwn(&answer)).await;
        }
    }
}
