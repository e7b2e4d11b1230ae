//! `/slack/commands`: the `/prompt` slash command. The text is parsed by
//! the platform-neutral admin layer, which also checks the caller's
//! rights (configured admins, plus workspace admins and owners as
//! `users.info` reports them). Answers are ephemeral. A command that
//! takes longer than Slack's 3 seconds (a `test` asks a model) is
//! acknowledged at once and answered through `response_url`.
//! `edit NAME` opens a form instead ([`super::edit`]).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use gateway::admin::{Actor, AdminError, Output, Section, parse_command};
use gateway::registry::Scope;
use serde_json::{Value, json};
use slack_morphism::events::SlackCommandEvent;
use tokio::sync::oneshot;

use super::Slack;
use super::format::escape;

/// The most blocks in one Slack message.
const MAX_BLOCKS: usize = 50;

/// Handles a POST to `/slack/commands`.
pub async fn handle(State(slack): State<Slack>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(status) = slack.verify(&headers, &body) {
        return status.into_response();
    }
    let form: serde_json::Map<String, Value> = form_urlencoded::parse(&body)
        .into_owned()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    match serde_json::from_value::<SlackCommandEvent>(Value::Object(form)) {
        Ok(command) => Json(run(&slack, &command).await).into_response(),
        Err(_) => (
            StatusCode::BAD_REQUEST,
            "a slash command needs team_id, channel_id, user_id, command, response_url and trigger_id\n",
        )
            .into_response(),
    }
}

/// Runs one slash command, from either transport, and gives the answer to
/// send back at once. A command slower than `slack.command_inline_ms` is
/// answered "working on it" now and through `response_url` when done.
pub(crate) async fn run(slack: &Slack, command: &SlackCommandEvent) -> Value {
    let user = command.user_id.0.clone();
    let team = command.team_id.0.clone();
    let channel = command.channel_id.0.clone();
    let text = command.text.clone().unwrap_or_default();
    // `edit NAME` opens a form: Slack has no editor in a message.
    if let ["edit", name] = text.split_whitespace().collect::<Vec<_>>().as_slice() {
        return super::edit::open(slack, &user, name, Some(command.trigger_id.0.as_str())).await;
    }
    let response_url = command.response_url.0.to_string();
    let here = Scope::Channel {
        platform: "slack".into(),
        workspace: team,
        channel,
    };
    let command = match parse_command(&text, Some(&here)) {
        Ok(c) => c,
        Err(usage) => return ephemeral_text(&usage, true),
    };
    let (tx, mut rx) = oneshot::channel::<Value>();
    let worker = slack.clone();
    tokio::spawn(async move {
        let actor = worker.actor(&user).await;
        let answer = match worker.inner.admin.run(&actor, command).await {
            Ok(output) => render(&output),
            Err(e @ AdminError::Forbidden { .. }) => ephemeral_text(&format!("✋ {e}"), false),
            Err(e) => ephemeral_text(&format!("⚠️ {e}"), false),
        };
        // Err: the command took too long to answer inline.
        if let Err(answer) = tx.send(answer)
            && let Err(e) = worker.inner.web.respond(&response_url, &answer).await
        {
            tracing::warn!(error = %e, "cannot answer a slash command through response_url");
        }
    });
    let wait = Duration::from_millis(slack.inner.config.command_inline_ms);
    if let Ok(Ok(answer)) = tokio::time::timeout(wait, &mut rx).await {
        return answer;
    }
    rx.close();
    match rx.try_recv() {
        Ok(answer) => answer,
        Err(_) => ephemeral_text("⏳ Working on it…", false),
    }
}

impl Slack {
    /// The caller as the admin layer sees them.
    pub(crate) async fn actor(&self, user: &str) -> Actor {
        let (name, admin) = match self.user(user).await {
            Ok(u) => (u.name, u.admin),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the caller's profile (users.info); treating them as a member");
                (user.to_string(), false)
            }
        };
        Actor {
            id: format!("slack:{user}"),
            name,
            roles: if admin {
                vec!["slack:admin".into()]
            } else {
                Vec::new()
            },
            platform_admin: admin,
        }
    }
}

/// A one-message ephemeral answer; `code` shows it preformatted.
fn ephemeral_text(text: &str, code: bool) -> Value {
    let shown = if code {
        format!("```\n{}\n```", escape(text.trim_end_matches('\n')))
    } else {
        escape(text)
    };
    json!({ "response_type": "ephemeral", "text": shown })
}

/// An admin layer output as Slack blocks.
pub fn render(output: &Output) -> Value {
    let mut blocks = vec![section(&format!("*{}*", escape(&output.summary)))];
    for s in &output.sections {
        let text = match s {
            Section::Text(t) => escape(t),
            Section::Code { text, .. } => {
                format!("```\n{}\n```", escape(text.trim_end_matches('\n')))
            }
            Section::Table { .. } => {
                let table = Output {
                    summary: String::new(),
                    sections: vec![s.clone()],
                }
                .to_text();
                format!("```\n{}\n```", escape(table.trim_matches('\n')))
            }
        };
        for chunk in gateway::chunks::split_message(&text, 2_900) {
            blocks.push(section(&chunk));
        }
    }
    if blocks.len() > MAX_BLOCKS {
        blocks.truncate(MAX_BLOCKS - 1);
        blocks.push(section(
            "_(cut: too long for one Slack message; use `switchboard prompts` for the rest)_",
        ));
    }
    json!({
        "response_type": "ephemeral",
        "text": output.summary,
        "blocks": blocks,
    })
}

fn section(text: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}
