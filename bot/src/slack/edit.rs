//! `/prompt edit NAME` in Slack: a modal (`views.open` with the command's
//! `trigger_id`) holding the prompt's newest version as TOML, and its
//! `view_submission`, which saves a new version through the admin layer
//! (the same rights check as every `/prompt` command). A refusal or an
//! invalid prompt is shown in the modal (`response_action: "errors"`);
//! a saved version replaces the form with the diff.

use gateway::promptops::admin::{AdminError, Command, Rights};
use serde_json::Value;
use slack_morphism::events::SlackInteractionViewSubmissionEvent;

use super::blocks::{
    INPUT_MAX, edit_view, ephemeral_text, errors, input_value, modal_field, saved_view,
};
use super::state::Commands;

/// Opens the editor for `name` for `user` of workspace `team`; the answer
/// is the ephemeral reply to the slash command.
pub(crate) async fn open(
    state: &Commands,
    user: &str,
    team: &str,
    name: &str,
    trigger: Option<&str>,
) -> Value {
    let actor = state.people.actor(user, team).await;
    if state.admin.rights(&actor) < Rights::Editor {
        return ephemeral(&format!(
            "✋ {} may not edit prompts: ask an admin to add `{}` to `admin.editors` in the configuration",
            actor.name, actor.id
        ));
    }
    let latest = match state.registry.versions(name).await {
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
    let form = edit_view(name, latest.version, &latest.body);
    match state.web.open_view(trigger, form).await {
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
pub(crate) async fn submit(
    state: &Commands,
    payload: &SlackInteractionViewSubmissionEvent,
) -> Value {
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
    let actor = state
        .people
        .actor(&payload.user.id.0, &payload.team.id.0)
        .await;
    match state.admin.run(&actor, command).await {
        Ok(output) => saved_view(&output),
        Err(e @ AdminError::Forbidden { .. }) => errors(&format!("✋ {e}")),
        Err(e) => errors(&e.to_string()),
    }
}

fn ephemeral(text: &str) -> Value {
    ephemeral_text(text, false)
}
