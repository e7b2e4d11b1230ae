//! A tool that asks first (`confirm = true`), answered in Discord: a click
//! on Approve / Deny under the tool's request (an `INTERACTION_CREATE` of
//! type 3 whose `custom_id` starts `sb:tool:`) is handed to the pipeline,
//! which takes it only from the person who asked or a configured admin
//! (by user or role). The request's message then says who answered; anyone
//! else is told so, privately, and nothing changes.

use gateway::pipeline::ApprovalError;
use gateway::promptops::admin::{Actor, Rights};
use serde_json::{Value, json};

use super::HandleError;
use super::components::{self, parse_approval};
use super::state::Commands;

/// Handles a click on Approve / Deny; other clicks are not its business.
pub(crate) async fn on_button(
    pipeline: &gateway::Pipeline,
    commands: &Commands,
    data: &Value,
) -> Result<(), HandleError> {
    let Some(components::Click {
        id,
        token,
        custom_id,
        user,
    }) = components::click(data)
    else {
        return Ok(());
    };
    let Some((request, approve)) = parse_approval(custom_id) else {
        return Ok(());
    };
    let actor = Actor {
        id: format!("discord:{user}"),
        name: user.to_string(),
        roles: data
            .pointer("/member/roles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|r| format!("discord:role:{r}"))
            .collect(),
        workspace: data
            .get("guild_id")
            .and_then(Value::as_str)
            .map(|g| format!("discord/{g}")),
        ..Actor::default()
    };
    let admin = commands.admin.rights(&actor) == Rights::Admin;
    let decided = pipeline.approvals().decide(
        request,
        &gateway::User::new("discord", user),
        admin,
        approve,
    );
    let reply = match decided {
        // The request's message says who answered, without its buttons.
        Ok(()) => json!({
            "type": 7,
            "data": {
                "content": format!("{} by <@{user}>.", if approve { "✅ Approved" } else { "🚫 Denied" }),
                "components": [],
                "allowed_mentions": { "parse": [] }
            }
        }),
        Err(e @ (ApprovalError::NotYours | ApprovalError::Unknown)) => {
            components::ephemeral(4, &e.to_string())
        }
    };
    commands
        .rest
        .interaction_callback(id, token, &reply)
        .await?;
    Ok(())
}
