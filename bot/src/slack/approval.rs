//! A tool that asks first (`confirm = true`), answered in Slack: a click on
//! Approve / Deny under the tool's request (`block_actions` on
//! `/slack/interactions`) is handed to the pipeline, which takes it only
//! from the person who asked or a configured admin. The request's message
//! then says who answered; anyone else is told so, privately, and nothing
//! changes.

use gateway::pipeline::ApprovalError;
use gateway::promptops::admin::{Actor, Rights};
use serde_json::json;
use slack_morphism::prelude::SlackInteractionBlockActionsEvent;

use super::blocks::{TOOL_APPROVE, TOOL_DENY, thanks};
use super::state::Commands;

/// Handles the Approve / Deny buttons among `payload`'s actions.
pub(crate) async fn on_actions(
    pipeline: &gateway::Pipeline,
    commands: &Commands,
    payload: &SlackInteractionBlockActionsEvent,
) {
    let Some(user) = payload.user.as_ref().map(|u| u.id.0.clone()) else {
        return;
    };
    let team = payload.team.id.0.clone();
    for action in payload.actions.iter().flatten() {
        let approve = match action.action_id.0.as_str() {
            TOOL_APPROVE => true,
            TOOL_DENY => false,
            _ => continue,
        };
        let Some(id) = action.value.as_deref() else {
            continue;
        };
        let actor = Actor {
            id: format!("slack:{user}"),
            name: user.clone(),
            workspace: Some(format!("slack/{team}")),
            ..Actor::default()
        };
        // Configured admins may answer for anyone; a workspace admin flag
        // is not looked up here.
        let admin = commands.admin.rights(&actor) == Rights::Admin;
        let decided =
            pipeline
                .approvals()
                .decide(id, &gateway::User::new("slack", &user), admin, approve);
        let reply = match decided {
            Ok(()) => json!({
                "replace_original": true,
                "text": format!(
                    "{} by <@{user}>.",
                    if approve { "✅ Approved" } else { "🚫 Denied" }
                ),
            }),
            Err(e @ (ApprovalError::NotYours | ApprovalError::Unknown)) => thanks(&e.to_string()),
        };
        if let Some(url) = payload.response_url.as_ref().map(|u| u.0.as_str())
            && let Err(e) = commands.web.respond(url, &reply).await
        {
            tracing::debug!(error = %e, "cannot answer the approval click");
        }
    }
}
