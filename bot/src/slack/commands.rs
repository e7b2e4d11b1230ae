//! The `/prompt` and `/knowledge` slash commands (`/slack/commands`, or a
//! Socket Mode `slash_commands` envelope). The text is parsed by
//! the platform-neutral admin layer, which also checks the caller's
//! rights (configured admins, plus workspace admins and owners as
//! `users.info` reports them). Answers are ephemeral. A command that
//! takes longer than Slack's 3 seconds (a `test` asks a model) is
//! acknowledged at once and answered through `response_url`.
//! `edit NAME` opens a form instead ([`super::edit`]).

use std::sync::Arc;

use gateway::promptops::admin::{AdminError, Command, parse_command, parse_knowledge};
use gateway::registry::Scope;
use serde_json::Value;
use slack_morphism::events::SlackCommandEvent;
use tokio::sync::oneshot;

use super::blocks::{ephemeral_text, render};
use super::edit;
use super::state::Commands;

/// A slash command posted over HTTP (a form), as slack-morphism reads it;
/// `None` when a field it needs is missing.
pub(crate) fn read_form(body: &[u8]) -> Option<SlackCommandEvent> {
    let form: serde_json::Map<String, Value> = form_urlencoded::parse(body)
        .into_owned()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    serde_json::from_value::<SlackCommandEvent>(Value::Object(form)).ok()
}

/// Runs one slash command, from either transport, and gives the answer to
/// send back at once. A command slower than `slack.command_inline_ms` is
/// answered "working on it" now and through `response_url` when done.
pub(crate) async fn run(state: &Arc<Commands>, command: &SlackCommandEvent) -> Value {
    let user = command.user_id.0.clone();
    let team = command.team_id.0.clone();
    let channel = command.channel_id.0.clone();
    let text = command.text.clone().unwrap_or_default();
    let knowledge = command.command.0 == "/knowledge";
    // `edit NAME` opens a form: Slack has no editor in a message.
    if !knowledge && let ["edit", name] = text.split_whitespace().collect::<Vec<_>>().as_slice() {
        return edit::open(
            state,
            &user,
            &team,
            name,
            Some(command.trigger_id.0.as_str()),
        )
        .await;
    }
    let response_url = command.response_url.0.to_string();
    let here = Scope::Channel {
        platform: "slack".into(),
        workspace: team.clone(),
        channel: channel.clone(),
    };
    let parsed = if knowledge {
        parse_knowledge(&text, &here)
    } else {
        parse_command(&text, Some(&here))
    };
    let command = match parsed {
        Ok(c) => c,
        Err(usage) => return ephemeral_text(&usage, true),
    };
    let (tx, mut rx) = oneshot::channel::<Value>();
    let worker = Arc::clone(state);
    tokio::spawn(async move {
        let actor = worker.people.actor(&user, &team).await;
        let done = match &command {
            Command::KnowledgeSync { .. } => sync(&worker, &actor, &command, &team, &channel).await,
            _ => worker.admin.run(&actor, command).await.map(|o| render(&o)),
        };
        let answer = match done {
            Ok(answer) => answer,
            Err(e @ AdminError::Forbidden { .. }) => ephemeral_text(&format!("✋ {e}"), false),
            Err(e) => ephemeral_text(&format!("⚠️ {e}"), false),
        };
        // Err: the command took too long to answer inline.
        if let Err(answer) = tx.send(answer)
            && let Err(e) = worker.web.respond(&response_url, &answer).await
        {
            tracing::warn!(error = %e, "cannot answer a slash command through response_url");
        }
    });
    if let Ok(Ok(answer)) = tokio::time::timeout(state.inline, &mut rx).await {
        return answer;
    }
    rx.close();
    match rx.try_recv() {
        Ok(answer) => answer,
        Err(_) => ephemeral_text("⏳ Working on it…", false),
    }
}

/// `/knowledge sync`: the rights checked by the admin layer (a workspace
/// admin may sync their own workspace's channels), then the channel's
/// history read into the workspace's chat source, and audited.
async fn sync(
    state: &Commands,
    actor: &gateway::promptops::admin::Actor,
    command: &Command,
    team: &str,
    channel: &str,
) -> Result<Value, AdminError> {
    state.admin.authorize(actor, command).await?;
    match state.harvest.backfill(team, channel).await {
        Ok(done) => {
            let summary = format!(
                "Read into knowledge source `{}`: {}. New messages here are kept current.",
                state.harvest.source(),
                done.summary()
            );
            state.admin.audit_sync(actor, command, Ok(&summary)).await?;
            Ok(ephemeral_text(&format!("✅ {summary}"), false))
        }
        Err(e) => {
            let why = e.to_string();
            state.admin.audit_sync(actor, command, Err(&why)).await?;
            Ok(ephemeral_text(&format!("⚠️ {why}"), false))
        }
    }
}
