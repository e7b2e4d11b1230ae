//! `/prompt edit NAME` in Discord: the form (a modal prefilled with the
//! prompt's newest version as TOML), its submission as an ordinary
//! interaction (nothing waits in memory for it, so any replica may take
//! it), and `file:`, an attached TOML file for prompts longer than a form
//! holds. Either way a new version is saved through the admin layer, which
//! checks rights when it runs.

use gateway::promptops::admin::{Actor, Command, Rights};
use serde_json::Value;

use super::commands::{self, run_admin};
use super::components::{self, MODAL_MAX, clip, deferred_ephemeral, edit_modal, ephemeral};
use super::state::{Commands, HandleError};

/// The largest prompt file `/prompt edit` takes.
const MAX_PROMPT_FILE: usize = 256 * 1024;
/// The commit message of an edit made here without one.
pub const EDITED_HERE: &str = "edited in Discord";

/// `/prompt edit NAME`: the interaction answer that opens the form with
/// the prompt's newest version, or says why it cannot.
pub(crate) async fn editor(state: &Commands, actor: &Actor, name: &str) -> Value {
    if state.admin.rights(actor) < Rights::Editor {
        let msg = "⛔ you may not edit prompts; ask an admin to add you to [admin] editors";
        return ephemeral(4, msg);
    }
    let versions = state.registry.versions(name).await;
    match versions
        .as_deref()
        .map(|v| v.iter().max_by_key(|v| v.version))
    {
        Ok(Some(latest)) => edit_modal(name, latest.version, &latest.body)
            .unwrap_or_else(|| {
                ephemeral(
                    4,
                    &format!(
                        "`{name}` v{} is longer than a Discord form holds ({} characters); edit it with `switchboard prompts` on the command line",
                        latest.version,
                        MODAL_MAX
                    ),
                )
            }),
        Ok(None) => ephemeral(4, &format!("no prompt named `{name}`; /prompt list shows them")),
        Err(e) => ephemeral(4, &format!("⚠️ {e}")),
    }
}

/// `/prompt edit NAME file:…`: the attached TOML as a new version of the
/// prompt's newest one. The admin layer checks rights when it runs.
pub(crate) async fn from_file(state: &Commands, name: &str, url: &str) -> Result<Command, String> {
    let versions = state
        .registry
        .versions(name)
        .await
        .map_err(|e| e.to_string())?;
    // Newest first from the store; the highest number, whatever the order.
    let base = versions
        .iter()
        .map(|v| v.version)
        .max()
        .ok_or_else(|| format!("no prompt named `{name}`; /prompt list shows them"))?;
    let text = state
        .rest
        .download(url, MAX_PROMPT_FILE)
        .await
        .map_err(|e| format!("cannot read the attached file: {e}"))?;
    Command::edit_from_toml(name, base, &text, None, EDITED_HERE)
}

/// The edit form submitted (an `INTERACTION_CREATE` of type 5): a new
/// version through the admin layer, which checks rights.
pub(crate) async fn on_modal(state: &Commands, data: &Value) -> Result<(), HandleError> {
    let (Some(id), Some(token), Some(actor)) = (
        data.get("id").and_then(Value::as_str),
        data.get("token").and_then(Value::as_str),
        commands::actor(data),
    ) else {
        return Ok(());
    };
    let rest = &state.rest;
    let command = match from_modal(data.get("data").unwrap_or(&Value::Null)) {
        Ok(c) => c,
        Err(message) => {
            rest.interaction_callback(id, token, &ephemeral(4, &message))
                .await?;
            return Ok(());
        }
    };
    match run_admin(state, actor, command).await {
        Ok(text) => {
            rest.interaction_callback(id, token, &ephemeral(4, &text))
                .await?;
        }
        Err(slow) => {
            // The answer follows.
            rest.interaction_callback(id, token, &deferred_ephemeral())
                .await?;
            let body = components::message(&clip(&slow.text().await));
            rest.edit_original(token, &body).await?;
        }
    }
    Ok(())
}

/// A submitted edit form (`INTERACTION_CREATE` type 5) as a [`Command::Edit`].
pub fn from_modal(data: &Value) -> Result<Command, String> {
    let custom = data.get("custom_id").and_then(Value::as_str).unwrap_or("");
    let (base, name) = custom
        .strip_prefix("sb:edit:")
        .and_then(|r| r.split_once(':'))
        .and_then(|(b, n)| Some((b.parse::<i64>().ok()?, n)))
        .ok_or_else(|| "this form is not one of the bot's; run /prompt edit again".to_string())?;
    let field = |id: &str| -> Option<String> {
        data.get("components")?
            .as_array()?
            .iter()
            .flat_map(|row| {
                row.get("components")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .find(|c| c.get("custom_id").and_then(Value::as_str) == Some(id))?
            .get("value")?
            .as_str()
            .map(str::to_string)
    };
    let toml = field("toml").ok_or_else(|| "the form came back without the prompt".to_string())?;
    Command::edit_from_toml(name, base, &toml, field("message").as_deref(), EDITED_HERE)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_modal_submit_becomes_an_edit_of_the_named_prompt() {
        let toml = "name = \"support\"\nmodel = \"default\"\n\n[[messages]]\nrole = \"user\"\ntemplate = \"{{ text }}\"\n";
        let submit = |custom: &str| {
            json!({ "custom_id": custom, "components": [
            { "type": 1, "components": [{ "type": 4, "custom_id": "toml", "value": toml }] },
            { "type": 1, "components": [{ "type": 4, "custom_id": "message", "value": "shorter" }] } ] })
        };
        match from_modal(&submit("sb:edit:2:support")) {
            Ok(Command::Edit {
                prompt,
                base,
                message,
            }) => {
                assert_eq!(
                    (prompt.name.as_str(), base, message.as_str()),
                    ("support", 2, "shorter")
                );
            }
            other => panic!("expected an edit, got {other:?}"),
        }
        let renamed =
            from_modal(&submit("sb:edit:2:billing")).expect_err("a renamed prompt is refused");
        assert!(
            renamed.contains("billing") && renamed.contains("support"),
            "{renamed}"
        );
        assert!(from_modal(&json!({ "custom_id": "x" })).is_err());
    }
}
