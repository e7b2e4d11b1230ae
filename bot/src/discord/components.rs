//! Discord's message and interaction JSON, built and read: pure functions
//! for a message body, the 👍 / 👎 buttons under an answer (their
//! `custom_id` carries the inference id) and reading them back, the edit
//! form, and the ephemeral interaction answers. No REST calls and no
//! state: every other part builds what it sends here.

use serde_json::{Value, json};
use uuid::Uuid;

/// Discord's limit on a message's content.
pub const MAX_CHARS: usize = 2000;
/// The longest value a modal's text input may hold.
pub const MODAL_MAX: usize = 4000;
/// The prefix of a feedback button's `custom_id`.
const PREFIX: &str = "sb:fb:";

/// A message body with `content`, mentioning no one.
pub fn message(content: &str) -> Value {
    json!({ "content": content, "allowed_mentions": { "parse": [] } })
}

/// Makes `body` a reply to message `id` (sent even if that one is gone).
pub fn reply_to(body: &mut Value, id: &str) {
    body["message_reference"] = json!({ "message_id": id, "fail_if_not_exists": false });
}

/// The action row with the two feedback buttons for an inference.
pub fn buttons(inference_id: Uuid) -> Value {
    json!([{
        "type": 1,
        "components": [
            { "type": 2, "style": 2, "emoji": { "name": "👍" }, "custom_id": custom_id(inference_id, true) },
            { "type": 2, "style": 2, "emoji": { "name": "👎" }, "custom_id": custom_id(inference_id, false) }
        ]
    }])
}

/// `sb:fb:up:<uuid>` or `sb:fb:down:<uuid>`.
pub fn custom_id(inference_id: Uuid, up: bool) -> String {
    format!("{PREFIX}{}:{inference_id}", if up { "up" } else { "down" })
}

/// The inference and the vote a button's `custom_id` carries.
pub fn parse_custom_id(custom_id: &str) -> Option<(Uuid, bool)> {
    let rest = custom_id.strip_prefix(PREFIX)?;
    let (vote, id) = rest.split_once(':')?;
    let up = match vote {
        "up" => true,
        "down" => false,
        _ => return None,
    };
    Some((Uuid::parse_str(id).ok()?, up))
}

/// The inference a message of the bot answered, read from its buttons.
pub fn inference_of(components: &[Value]) -> Option<Uuid> {
    components
        .iter()
        .flat_map(|row| {
            row.get("components")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|c| c.get("custom_id").and_then(Value::as_str))
        .find_map(|id| parse_custom_id(id).map(|(uuid, _)| uuid))
}

/// The edit form for a prompt, prefilled with its TOML; `None` when the
/// prompt is longer than a form holds.
pub fn edit_modal(name: &str, base: i64, toml: &str) -> Option<Value> {
    if toml.chars().count() > MODAL_MAX {
        return None;
    }
    let title: String = format!("Edit {name} (from v{base})")
        .chars()
        .take(45)
        .collect();
    Some(json!({
        "type": 9,
        "data": {
            "custom_id": format!("sb:edit:{base}:{name}"),
            "title": title,
            "components": [
                { "type": 1, "components": [{ "type": 4, "custom_id": "toml", "label": "Prompt (TOML)",
                    "style": 2, "value": toml, "required": true, "max_length": MODAL_MAX }] },
                { "type": 1, "components": [{ "type": 4, "custom_id": "message", "label": "What changed",
                    "style": 1, "required": false, "max_length": 200 }] }
            ]
        }
    }))
}

/// An interaction answer only the caller sees (flag 64, `EPHEMERAL`).
pub fn ephemeral(kind: u8, content: &str) -> Value {
    json!({ "type": kind, "data": { "content": clip(content), "flags": 64, "allowed_mentions": { "parse": [] } } })
}

/// A button click (an `INTERACTION_CREATE` of type 3), as the parts that
/// answer one read it.
pub struct Click<'a> {
    /// The interaction's id, for its callback.
    pub id: &'a str,
    /// The interaction's token, for its callback.
    pub token: &'a str,
    /// The button's `custom_id`.
    pub custom_id: &'a str,
    /// Who clicked: `member.user` in a server, `user` in a DM.
    pub user: &'a str,
}

/// The click in an `INTERACTION_CREATE`, when it has every part.
pub fn click(data: &Value) -> Option<Click<'_>> {
    Some(Click {
        id: data.get("id")?.as_str()?,
        token: data.get("token")?.as_str()?,
        custom_id: data.pointer("/data/custom_id")?.as_str()?,
        user: data
            .pointer("/member/user/id")
            .or_else(|| data.pointer("/user/id"))?
            .as_str()?,
    })
}

/// The prefix of an Approve / Deny button's `custom_id` (then `ok:` or
/// `no:` and the request's id).
pub const APPROVAL_PREFIX: &str = "sb:tool:";

/// A tool's request to run, with Approve / Deny carrying its id; the
/// tool's name and arguments are shown as code, never as markdown.
pub fn approval(request: &gateway::domain::ApprovalRequest) -> Value {
    let arguments = request.arguments.replace("```", "'''");
    let arguments = if arguments.trim().is_empty() {
        "{}".to_string()
    } else {
        arguments
    };
    let tool = request.tool.replace('`', "'");
    json!({
        "content": clip(&format!(
            "`{tool}` asks to run with:\n```json\n{arguments}\n```\nOnly the person who asked (or an admin) may answer."
        )),
        "allowed_mentions": { "parse": [] },
        "components": [{
            "type": 1,
            "components": [
                { "type": 2, "style": 3, "label": "Approve", "custom_id": format!("{APPROVAL_PREFIX}ok:{}", request.id) },
                { "type": 2, "style": 4, "label": "Deny", "custom_id": format!("{APPROVAL_PREFIX}no:{}", request.id) }
            ]
        }]
    })
}

/// The request and the answer an Approve / Deny button's `custom_id`
/// carries.
pub fn parse_approval(custom_id: &str) -> Option<(&str, bool)> {
    let rest = custom_id.strip_prefix(APPROVAL_PREFIX)?;
    match rest.split_once(':')? {
        ("ok", id) if !id.is_empty() => Some((id, true)),
        ("no", id) if !id.is_empty() => Some((id, false)),
        _ => None,
    }
}

/// The first answer to an interaction whose answer follows
/// (`DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE`, ephemeral).
pub fn deferred_ephemeral() -> Value {
    json!({ "type": 5, "data": { "flags": 64 } })
}

/// Text cut to fit one message, saying so when it was cut.
pub fn clip(text: &str) -> String {
    let parts = crate::chunks::split_message(text, MAX_CHARS - 40);
    match parts.len() {
        0 => String::new(),
        1 => parts.into_iter().next().unwrap_or_default(),
        n => format!(
            "{}\n… ({} more parts not shown; use the command line for the whole text)",
            parts.into_iter().next().unwrap_or_default(),
            n - 1
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_carry_the_inference_and_read_back() {
        let id = Uuid::now_v7();
        let row = buttons(id);
        let ids: Vec<&str> = row[0]["components"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["custom_id"].as_str())
            .collect();
        assert_eq!(ids.len(), 2);
        assert!(
            ids.iter().all(|c| c.len() <= 100),
            "Discord allows 100 characters"
        );
        assert_eq!(parse_custom_id(ids[0]), Some((id, true)));
        assert_eq!(parse_custom_id(ids[1]), Some((id, false)));
        assert_eq!(
            inference_of(row.as_array().map_or(&[][..], |v| v)),
            Some(id)
        );
        assert_eq!(parse_custom_id("sb:fb:maybe:x"), None);
        assert_eq!(parse_custom_id("other:button"), None);
    }
}
