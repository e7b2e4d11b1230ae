//! `/prompt edit NAME` in Slack: a modal (`views.open` with the command's
//! `trigger_id`) holding the prompt's newest version as TOML, and its
//! `view_submission`, which saves a new version through the admin layer
//! (the same rights check as every `/prompt` command). A refusal or an
//! invalid prompt is shown in the modal (`response_action: "errors"`);
//! a saved version replaces the form with the diff.

use gateway::admin::{AdminError, Command, Rights};
use serde_json::{Value, json};
use slack_morphism::events::SlackInteractionViewSubmissionEvent;

use super::Slack;
use super::feedback::{input_value, modal_field};
use super::format::escape;

/// `callback_id` of the edit modal.
pub const EDIT_VIEW: &str = "switchboard_prompt_edit";
/// Slack's limit on a `plain_text_input`.
pub const INPUT_MAX: usize = 3_000;

/// Opens the editor for `name` for `user`; the answer is the ephemeral
/// reply to the slash command.
pub(crate) async fn open(slack: &Slack, user: &str, name: &str, trigger: Option<&str>) -> Value {
    let actor = slack.actor(user).await;
    let admin = &slack.inner.admin;
    if admin.rights(&actor) < Rights::Editor {
        return ephemeral(&format!(
            "✋ {} may not edit prompts: ask an admin to add `{}` to `admin.editors` in the configuration",
            actor.name, actor.id
        ));
    }
    let latest = match admin.registry().versions(name).await {
        Ok(versions) => versions.into_iter().max_by_key(|v| v.version),
        Err(e) => return ephemeral(&format!("⚠️ {e}")),
    };
    let Some(latest) = latest else {
        return ephemeral(&format!(
            "⚠️ no prompt named `{name}`; `/prompt list` shows them"
        ));
    };
    if latest.body.chars().count() > INPUT_MAX {
        return ephemeral(&format!(
            "`{name}` v{} is {} characters, more than a Slack form holds ({INPUT_MAX}). Edit it from the command line: `switchboard prompts edit {name} -m \"what changed\"` (opens $EDITOR), or with `--file {name}.toml`.",
            latest.version,
            latest.body.chars().count()
        ));
    }
    let Some(trigger) = trigger else {
        return ephemeral(
            "⚠️ Slack sent no trigger_id, so no form can open; try the command again",
        );
    };
    let form = view(name, latest.version, &latest.body);
    match slack.inner.web.open_view(trigger, form).await {
        Ok(_) => ephemeral(&format!(
            "✏️ Editing `{name}` v{} in the form.",
            latest.version
        )),
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the prompt editor");
            ephemeral(&format!("⚠️ cannot open the form: {e}"))
        }
    }
}

/// Handles the editor's `view_submission`: the body to answer with.
pub(crate) async fn submit(slack: &Slack, payload: &SlackInteractionViewSubmissionEvent) -> Value {
    let view = &payload.view;
    let meta: Value = modal_field(view, |m| m.private_metadata.as_deref())
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or(Value::Null);
    let (Some(name), Some(base)) = (meta["name"].as_str(), meta["base"].as_i64()) else {
        return errors("this form is not one of the bot's; run /prompt edit again");
    };
    let toml = input_value(view, "toml", "toml").unwrap_or_default();
    let message = input_value(view, "message", "message");
    let command = match Command::edit_from_toml(name, base, toml, message, "edited in Slack") {
        Ok(c) => c,
        Err(e) => return errors(&e),
    };
    let actor = slack.actor(&payload.user.id.0).await;
    match slack.inner.admin.run(&actor, command).await {
        Ok(output) => {
            let mut blocks = vec![json!({
                "type": "section",
                "text": { "type": "mrkdwn", "text": format!("*{}*", escape(&output.summary)) },
            })];
            let rendered = super::commands::render(&output);
            if let Some(more) = rendered["blocks"].as_array() {
                blocks.extend(more.iter().skip(1).take(20).cloned());
            }
            json!({
                "response_action": "update",
                "view": {
                    "type": "modal",
                    "callback_id": EDIT_VIEW,
                    "title": { "type": "plain_text", "text": "Prompt saved" },
                    "close": { "type": "plain_text", "text": "Done" },
                    "blocks": blocks,
                },
            })
        }
        Err(e @ AdminError::Forbidden { .. }) => errors(&format!("✋ {e}")),
        Err(e) => errors(&e.to_string()),
    }
}

/// The editor for `name`, from version `base`.
fn view(name: &str, base: i64, toml: &str) -> Value {
    json!({
        "type": "modal",
        "callback_id": EDIT_VIEW,
        "private_metadata": json!({ "name": name, "base": base }).to_string(),
        "title": { "type": "plain_text", "text": "Edit prompt" },
        "submit": { "type": "plain_text", "text": "Save version" },
        "close": { "type": "plain_text", "text": "Cancel" },
        "blocks": [
            {
                "type": "input",
                "block_id": "toml",
                "label": { "type": "plain_text", "text": format!("{name}, from v{base} (TOML)") },
                "element": {
                    "type": "plain_text_input",
                    "action_id": "toml",
                    "multiline": true,
                    "initial_value": toml,
                    "max_length": INPUT_MAX,
                },
            },
            {
                "type": "input",
                "block_id": "message",
                "optional": true,
                "label": { "type": "plain_text", "text": "What changed" },
                "element": {
                    "type": "plain_text_input",
                    "action_id": "message",
                    "max_length": 200,
                },
            },
        ],
    })
}

/// The modal stays open with `text` under the TOML field.
fn errors(text: &str) -> Value {
    let text: String = text.chars().take(1_000).collect();
    json!({ "response_action": "errors", "errors": { "toml": text } })
}

fn ephemeral(text: &str) -> Value {
    json!({ "response_type": "ephemeral", "text": escape(text) })
}
