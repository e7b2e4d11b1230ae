//! `/prompt` interactions (the command's options, the edit form and its
//! submission) as Discord documents them, turned into the platform-neutral
//! admin layer's [`Command`]s and [`Actor`]s. Rights are checked by the
//! admin layer on every call: Discord's `default_member_permissions` only
//! hides the command, and server admins can change that in the client.

use gateway::admin::{Actor, Command, parse_command};
use gateway::registry::Scope;
use serde_json::{Value, json};

use super::inbound::User;

/// Discord's `ADMINISTRATOR` permission bit.
const ADMINISTRATOR: u64 = 1 << 3;
/// Discord's `MANAGE_GUILD` (Manage Server) permission bit.
const MANAGE_GUILD: u64 = 1 << 5;
/// The longest value a modal's text input may hold.
pub const MODAL_MAX: usize = 4000;

/// Who runs an interaction, for the admin layer: the user id, the member's
/// roles and whether Discord says they manage the server.
pub fn actor(interaction: &Value) -> Option<Actor> {
    let member = interaction.get("member");
    let user: User = serde_json::from_value(
        member
            .and_then(|m| m.get("user"))
            .or_else(|| interaction.get("user"))?
            .clone(),
    )
    .ok()?;
    let roles = member
        .and_then(|m| m.get("roles"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|r| format!("discord:role:{r}"))
        .collect();
    let permissions = member
        .and_then(|m| m.get("permissions"))
        .and_then(Value::as_str)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0);
    Some(Actor {
        id: format!("discord:{}", user.id),
        name: user.display().to_string(),
        roles,
        platform_admin: permissions & (ADMINISTRATOR | MANAGE_GUILD) != 0,
    })
}

/// The scope `here` means for an interaction: its channel in its guild.
pub fn here(interaction: &Value) -> Option<Scope> {
    let channel = interaction.get("channel_id")?.as_str()?.to_string();
    let workspace = interaction
        .get("guild_id")
        .and_then(Value::as_str)
        .unwrap_or("-")
        .to_string();
    Some(Scope::Channel {
        platform: "discord".to_string(),
        workspace,
        channel,
    })
}

/// The chosen subcommand and its options (name → value, as text).
pub fn subcommand(data: &Value) -> Option<(String, Vec<(String, String)>)> {
    let sub = data.get("options")?.as_array()?.first()?;
    let name = sub.get("name")?.as_str()?.to_string();
    let options = sub
        .get("options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| {
            let value = match o.get("value")? {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((o.get("name")?.as_str()?.to_string(), value))
        })
        .collect();
    Some((name, options))
}

/// A `/prompt` subcommand (other than `edit`) as an admin [`Command`];
/// the error is a message for the user.
pub fn to_command(
    sub: &str,
    options: &[(String, String)],
    here: Option<&Scope>,
) -> Result<Command, String> {
    let get = |k: &str| {
        options
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
    };
    let has_space = options
        .iter()
        .any(|(n, v)| n != "question" && v.split_whitespace().count() > 1);
    if has_space {
        return Err("names, versions, labels and scopes are single words".to_string());
    }
    let keys: &[&str] = match sub {
        "show" | "promote" => &["name", "version", "label"],
        "diff" => &["name", "from", "to"],
        "rollback" => &["name", "label", "version"],
        "test" => &["name", "version"],
        "bind" => &["scope", "name", "label"],
        "unbind" => &["scope"],
        "split" => &["name", "label", "arms"],
        "history" => &["name"],
        _ => &[],
    };
    let mut words = vec![sub.to_string()];
    for key in keys {
        match get(key) {
            Some(v) => words.push(v),
            // `rollback NAME VERSION` needs the label before the version.
            None if sub == "rollback" && *key == "label" && get("version").is_some() => {
                words.push("production".to_string())
            }
            None => {}
        }
    }
    let mut text = words.join(" ");
    if sub == "test" {
        text.push_str(" -- ");
        text.push_str(&get("question").unwrap_or_default());
    }
    parse_command(&text, here)
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

/// The commit message of an edit made here without one.
pub const EDITED_HERE: &str = "edited in Discord";

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

/// An interaction answer only the caller sees (flag 64, `EPHEMERAL`).
pub fn ephemeral(kind: u8, content: &str) -> Value {
    json!({ "type": kind, "data": { "content": clip(content), "flags": 64, "allowed_mentions": { "parse": [] } } })
}

/// Text cut to fit one message, saying so when it was cut.
pub fn clip(text: &str) -> String {
    let parts = gateway::chunks::split_message(text, super::delivery::MAX_CHARS - 40);
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

    /// A documented `INTERACTION_CREATE` for `/prompt promote support 3`.
    pub fn promote_interaction(permissions: &str) -> Value {
        json!({
            "id": "1700000000000000001", "application_id": "1000", "type": 2,
            "token": "interaction-token", "version": 1,
            "guild_id": "1300000000000000001", "channel_id": "1200000000000000001",
            "member": { "user": { "id": "1400000000000000001", "username": "ada", "global_name": "Ada L" },
                        "roles": ["1500000000000000001"], "permissions": permissions,
                        "joined_at": "2026-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false },
            "data": { "id": "1800000000000000001", "name": "prompt", "type": 1,
                      "options": [{ "type": 1, "name": "promote", "options": [
                          { "type": 3, "name": "name", "value": "support" },
                          { "type": 3, "name": "version", "value": "3" } ] }] }
        })
    }

    #[test]
    fn the_command_payload_becomes_an_admin_command_and_actor() {
        let i = promote_interaction("0");
        let (sub, options) = subcommand(&i["data"]).expect("a subcommand");
        let cmd = to_command(&sub, &options, here(&i).as_ref()).expect("valid");
        assert!(
            matches!(cmd, Command::Promote { ref name, version: 3, ref label } if name == "support" && label == "production"),
            "{cmd:?}"
        );
        let actor = actor(&i).expect("an actor");
        assert_eq!(actor.id, "discord:1400000000000000001");
        assert_eq!(actor.roles, vec!["discord:role:1500000000000000001"]);
        assert!(!actor.platform_admin);
        assert!(super::actor(&promote_interaction("32")).is_some_and(|a| a.platform_admin));
        assert!(super::actor(&promote_interaction("8")).is_some_and(|a| a.platform_admin));
    }

    #[test]
    fn test_and_bind_here_read_their_options() {
        let opts = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let cmd = to_command(
            "test",
            &opts(&[("name", "support"), ("question", "why is the sky blue?")]),
            None,
        )
        .expect("valid");
        assert!(
            matches!(cmd, Command::Test { ref text, .. } if text == "why is the sky blue?"),
            "{cmd:?}"
        );
        let here = Scope::Channel {
            platform: "discord".into(),
            workspace: "1".into(),
            channel: "2".into(),
        };
        let cmd = to_command(
            "bind",
            &opts(&[("scope", "here"), ("name", "support")]),
            Some(&here),
        )
        .expect("valid");
        assert!(
            matches!(cmd, Command::Bind { ref scope, .. } if *scope == here),
            "{cmd:?}"
        );
        assert!(to_command("promote", &opts(&[("name", "a b"), ("version", "1")]), None).is_err());
    }

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
