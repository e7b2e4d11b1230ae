//! `/slack/commands`: the `/prompt` slash command. The text is parsed by
//! the platform-neutral admin layer, which also checks the caller's
//! rights (configured admins, plus workspace admins and owners as
//! `users.info` reports them). Answers are ephemeral. A command that
//! takes longer than Slack's 3 seconds (a `test` asks a model) is
//! acknowledged at once and answered through `response_url`.
//! `edit NAME` opens a form instead ([`super::edit`]).

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use gateway::admin::{Actor, AdminError, Output, Section, parse_command};
use gateway::registry::Scope;
use serde_json::{Value, json};
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
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    match run(&slack, &form).await {
        Ok(answer) => Json(answer).into_response(),
        Err(message) => (StatusCode::BAD_REQUEST, message).into_response(),
    }
}

/// Runs one slash command, from either transport (`form` holds Slack's
/// fields: `user_id`, `team_id`, `channel_id`, `text`, `response_url`, …)
/// and gives the answer to send back at once; the error is a malformed
/// payload. A command slower than `slack.command_inline_ms` is answered
/// "working on it" now and through `response_url` when done.
pub(crate) async fn run(
    slack: &Slack,
    form: &HashMap<String, String>,
) -> Result<Value, &'static str> {
    let field = |name: &str| form.get(name).cloned();
    let (Some(user), Some(team), Some(channel)) =
        (field("user_id"), field("team_id"), field("channel_id"))
    else {
        return Err("a slash command needs user_id, team_id and channel_id\n");
    };
    let text = field("text").unwrap_or_default();
    // `edit NAME` opens a form: Slack has no editor in a message.
    if let ["edit", name] = text.split_whitespace().collect::<Vec<_>>().as_slice() {
        return Ok(super::edit::open(slack, &user, name, field("trigger_id").as_deref()).await);
    }
    let here = Scope::Channel {
        platform: "slack".into(),
        workspace: team,
        channel,
    };
    let command = match parse_command(&text, Some(&here)) {
        Ok(c) => c,
        Err(usage) => return Ok(ephemeral_text(&usage, true)),
    };
    let (tx, mut rx) = oneshot::channel::<Value>();
    let response_url = field("response_url");
    let worker = slack.clone();
    tokio::spawn(async move {
        let actor = worker.actor(&user).await;
        let answer = match worker.inner.admin.run(&actor, command).await {
            Ok(output) => render(&output),
            Err(e @ AdminError::Forbidden { .. }) => ephemeral_text(&format!("✋ {e}"), false),
            Err(e) => ephemeral_text(&format!("⚠️ {e}"), false),
        };
        if let Err(answer) = tx.send(answer) {
            // The command took too long to answer inline.
            match response_url {
                Some(url) => {
                    if let Err(e) = worker.inner.web.respond(&url, &answer).await {
                        tracing::warn!(error = %e, "cannot answer a slash command through response_url");
                    }
                }
                None => {
                    tracing::warn!("a slow slash command had no response_url to answer through")
                }
            }
        }
    });
    let wait = Duration::from_millis(slack.inner.config.command_inline_ms);
    if let Ok(Ok(answer)) = tokio::time::timeout(wait, &mut rx).await {
        return Ok(answer);
    }
    rx.close();
    match rx.try_recv() {
        Ok(answer) => Ok(answer),
        Err(_) => Ok(ephemeral_text("⏳ Working on it…", false)),
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
