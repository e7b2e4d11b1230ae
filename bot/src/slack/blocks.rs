//! Block Kit, built and read: pure functions from the adapter's values to
//! the JSON Slack takes (an answer's sections and 👍 / 👎 buttons, the
//! metadata naming its inference, the comment and edit modals, a
//! `/prompt` answer) and back from a submitted modal to the values typed
//! in. No Web API calls and no state: every other part builds its
//! messages here.

use gateway::promptops::admin::{Output, Section};
use serde_json::{Value, json};
use slack_morphism::SlackActionId;
use slack_morphism::SlackMessageMetadata;
use slack_morphism::blocks::{
    SlackBlock, SlackBlockId, SlackModalView, SlackStatefulView, SlackView,
};
use uuid::Uuid;

use super::format::escape;

/// The most characters in one message's section (Slack allows 3,000).
pub const SECTION_MAX: usize = 3_000;
/// `action_id` of the 👍 button.
pub const THUMBS_UP: &str = "switchboard_thumbs_up";
/// `action_id` of the 👎 button.
pub const THUMBS_DOWN: &str = "switchboard_thumbs_down";
/// `action_id` of the Approve button of a tool that asks first.
pub const TOOL_APPROVE: &str = "switchboard_tool_approve";
/// `action_id` of its Deny button.
pub const TOOL_DENY: &str = "switchboard_tool_deny";
/// The metadata event type that marks the bot's answers.
pub const METADATA_TYPE: &str = "switchboard_answer";
/// `callback_id` of the comment modal.
pub const COMMENT_VIEW: &str = "switchboard_feedback_comment";
/// `callback_id` of the edit modal.
pub const EDIT_VIEW: &str = "switchboard_prompt_edit";
/// Slack's limit on a `plain_text_input`.
pub const INPUT_MAX: usize = 3_000;
/// The most blocks in one Slack message.
const MAX_BLOCKS: usize = 50;

/// Block Kit JSON as slack-morphism's blocks; a block its model does not
/// take is kept as it is (`SlackBlock::Unknown`), so nothing is lost.
pub fn blocks(json: Vec<Value>) -> Vec<SlackBlock> {
    json.into_iter()
        .map(|b| serde_json::from_value(b.clone()).unwrap_or(SlackBlock::Unknown(b)))
        .collect()
}

/// One message of an answer of inference `id`: its mrkdwn `text`, and the
/// feedback buttons when `buttons`.
pub fn answer(text: &str, buttons: bool, id: Uuid) -> Vec<SlackBlock> {
    let mut all = vec![json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": text },
    })];
    if buttons {
        all.push(feedback_block(id));
    }
    blocks(all)
}

/// The metadata that marks a message as the answer of inference `id`.
pub fn answer_metadata(id: Uuid) -> SlackMessageMetadata {
    SlackMessageMetadata::new(METADATA_TYPE.to_string()).with_event_payload(
        [("inference_id".to_string(), id.to_string())]
            .into_iter()
            .collect(),
    )
}

/// The 👍 / 👎 buttons under an answer, carrying its inference id.
pub fn feedback_block(id: Uuid) -> Value {
    let id = id.to_string();
    json!({
        "type": "actions",
        "block_id": "switchboard_feedback",
        "elements": [
            {
                "type": "button",
                "action_id": THUMBS_UP,
                "text": { "type": "plain_text", "text": "👍", "emoji": true },
                "value": id,
            },
            {
                "type": "button",
                "action_id": THUMBS_DOWN,
                "text": { "type": "plain_text", "text": "👎", "emoji": true },
                "value": id,
            },
        ],
    })
}

/// A tool's request to run, with Approve / Deny carrying its id; the
/// tool's name and arguments are shown as text, never as mrkdwn.
pub fn approval(request: &gateway::domain::ApprovalRequest) -> Vec<Value> {
    let arguments = escape(&request.arguments).replace("```", "'''");
    vec![
        json!({
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": format!("*{}* asks to run with:\n```{}```\nOnly the person who asked (or an admin) may answer.", escape(&request.tool), if arguments.trim().is_empty() { "{}".to_string() } else { arguments }),
            },
        }),
        json!({
            "type": "actions",
            "block_id": "switchboard_tool_approval",
            "elements": [
                {
                    "type": "button",
                    "action_id": TOOL_APPROVE,
                    "style": "primary",
                    "text": { "type": "plain_text", "text": "Approve" },
                    "value": request.id,
                },
                {
                    "type": "button",
                    "action_id": TOOL_DENY,
                    "style": "danger",
                    "text": { "type": "plain_text", "text": "Deny" },
                    "value": request.id,
                },
            ],
        }),
    ]
}

/// An ephemeral answer through a `response_url`, seen only by the user
/// who clicked or asked (the thanks for a vote, or why something was not
/// done), leaving the original message as it is.
pub fn thanks(text: &str) -> Value {
    json!({
        "response_type": "ephemeral",
        "replace_original": false,
        "text": text,
    })
}

/// The modal a 👎 opens: an optional comment on the answer.
pub fn comment_view(id: Uuid) -> Value {
    json!({
        "type": "modal",
        "callback_id": COMMENT_VIEW,
        "private_metadata": id.to_string(),
        "title": { "type": "plain_text", "text": "Feedback" },
        "submit": { "type": "plain_text", "text": "Send" },
        "close": { "type": "plain_text", "text": "Skip" },
        "blocks": [{
            "type": "input",
            "block_id": "comment",
            "optional": true,
            "label": { "type": "plain_text", "text": "What was wrong with the answer?" },
            "element": {
                "type": "plain_text_input",
                "action_id": "comment",
                "multiline": true,
                "max_length": 2000,
            },
        }],
    })
}

/// The editor for `name`, from version `base`.
pub fn edit_view(name: &str, base: i64, toml: &str) -> Value {
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

/// The edit modal's answer once a version is saved: the form replaced by
/// the admin layer's output (the diff).
pub fn saved_view(output: &Output) -> Value {
    let mut blocks = vec![json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": format!("*{}*", escape(&output.summary)) },
    })];
    let rendered = render(output);
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

/// The edit modal stays open with `text` under the TOML field.
pub fn errors(text: &str) -> Value {
    let text: String = text.chars().take(1_000).collect();
    json!({ "response_action": "errors", "errors": { "toml": text } })
}

/// A one-message ephemeral answer; `code` shows it preformatted.
pub fn ephemeral_text(text: &str, code: bool) -> Value {
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
        for chunk in crate::chunks::split_message(&text, 2_900) {
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

/// A field of a submitted modal.
pub fn modal_field<'v>(
    view: &'v SlackStatefulView,
    field: impl Fn(&'v SlackModalView) -> Option<&'v str>,
) -> Option<&'v str> {
    match &view.view {
        SlackView::Modal(modal) => field(modal),
        _ => None,
    }
}

/// The value typed into input `block`/`action` of a submitted view.
pub fn input_value<'v>(view: &'v SlackStatefulView, block: &str, action: &str) -> Option<&'v str> {
    view.state_params
        .state
        .as_ref()?
        .values
        .get(&SlackBlockId(block.to_string()))?
        .get(&SlackActionId(action.to_string()))?
        .value
        .as_deref()
}
