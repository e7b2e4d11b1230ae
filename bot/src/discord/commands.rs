//! `/prompt` interactions (the command's options) as Discord documents
//! them, turned into the platform-neutral admin layer's [`Command`]s and
//! [`Actor`]s, run there, and their answers as text; autocomplete for
//! prompt names and versions. Rights are checked by the admin layer on
//! every call: Discord's `default_member_permissions` only hides the
//! command, and server admins can change that in the client. The edit
//! form is [`super::edit`]'s; poise's command definitions are
//! [`super::slash`]'s.

use std::time::Duration;

use gateway::promptops::admin::{Actor, AdminError, Command, Output, parse_command};
use gateway::registry::Scope;
use serde_json::Value;
use tokio::task::{JoinError, JoinHandle};

use super::model::User;
use super::state::Commands;

/// Commands that take longer than this are deferred (Discord allows 3 s).
const DEFER_AFTER: Duration = Duration::from_millis(2500);

/// Discord's `ADMINISTRATOR` permission bit.
const ADMINISTRATOR: u64 = 1 << 3;
/// Discord's `MANAGE_GUILD` (Manage Server) permission bit.
const MANAGE_GUILD: u64 = 1 << 5;

/// Who runs an interaction, for the admin layer: the user id, the member's
/// roles, whether Discord says they manage the server, and which server
/// that is (their platform rights reach no further).
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
    // The server the interaction came from: Manage Server there reaches
    // only that server (a DM has none, and no member permissions either).
    let guild = interaction
        .get("guild_id")
        .and_then(Value::as_str)
        .unwrap_or("-");
    Some(Actor {
        id: format!("discord:{}", user.id),
        name: user.display().to_string(),
        roles,
        platform_admin: member.is_some() && permissions & (ADMINISTRATOR | MANAGE_GUILD) != 0,
        workspace: Some(format!("discord/{guild}")),
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

/// An admin command still running when Discord wants a first answer.
pub struct Slow(JoinHandle<Result<Output, AdminError>>);

impl Slow {
    /// Waits for the command; its answer as text.
    pub async fn text(self) -> String {
        answer_text(self.0.await)
    }
}

fn answer_text(r: Result<Result<Output, AdminError>, JoinError>) -> String {
    match r {
        Ok(Ok(out)) => out.to_text(),
        Ok(Err(e)) => format!("⛔ {e}"),
        Err(e) => format!("⚠️ the command failed: {e}"),
    }
}

/// Runs an admin command for `actor` (the admin layer checks rights on
/// every call); `Err` with the running command when it takes longer
/// than Discord waits for a first answer, so that the caller defers.
pub(crate) async fn run_admin(
    state: &Commands,
    actor: Actor,
    command: Command,
) -> Result<String, Slow> {
    let admin = state.admin.clone();
    let harvest = std::sync::Arc::clone(&state.harvest);
    let mut run = tokio::spawn(async move {
        match command {
            Command::KnowledgeSync { .. } => sync(&admin, &harvest, &actor, &command).await,
            command => admin.run(&actor, command).await,
        }
    });
    match tokio::time::timeout(DEFER_AFTER, &mut run).await {
        Ok(result) => Ok(answer_text(result)),
        Err(_) => Err(Slow(run)),
    }
}

/// Autocomplete choices: prompt names for `name`, otherwise the labels
/// and versions (newest first) of prompt `name`; those starting with
/// what was typed, at most 25 (Discord's limit).
pub(crate) async fn choices(
    state: &Commands,
    option: &str,
    name: &str,
    typed: &str,
) -> Vec<String> {
    let registry = &state.registry;
    let mut values: Vec<String> = if option == "name" {
        registry.list().into_iter().map(|p| p.name).collect()
    } else {
        let info = registry.list().into_iter().find(|p| p.name == name);
        let mut v: Vec<String> = match registry.versions(name).await {
            Ok(rows) => rows.iter().rev().map(|r| r.version.to_string()).collect(),
            Err(_) => Vec::new(),
        };
        if let Some(info) = info {
            v.splice(0..0, info.labels.keys().cloned());
        }
        v
    };
    values.retain(|v| v.starts_with(typed.trim()));
    values.truncate(25);
    values
}

/// `/knowledge sync`: the admin layer checks the rights (a server manager
/// may sync their own server's channels), then the channel is read into
/// the server's chat source, and the sync is audited.
async fn sync(
    admin: &gateway::promptops::admin::Admin,
    harvest: &super::knowledge::Harvest,
    actor: &Actor,
    command: &Command,
) -> Result<Output, AdminError> {
    admin.authorize(actor, command).await?;
    let Command::KnowledgeSync {
        scope: Scope::Channel { channel, .. },
    } = command
    else {
        return Err(AdminError::Unavailable(
            "`/knowledge sync` is run in the channel to read".into(),
        ));
    };
    match harvest.backfill(channel).await {
        Ok(done) => {
            let summary = format!(
                "Read into knowledge source `{}`: {}. New messages here are kept current.",
                harvest.source(),
                done.summary()
            );
            admin.audit_sync(actor, command, Ok(&summary)).await?;
            Ok(Output {
                summary: format!("✅ {summary}"),
                sections: Vec::new(),
            })
        }
        Err(e) => {
            let why = e.to_string();
            admin.audit_sync(actor, command, Err(&why)).await?;
            Err(AdminError::Unavailable(why))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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
        // Manage Server reaches only the server the interaction came from.
        assert_eq!(
            actor.workspace.as_deref(),
            Some("discord/1300000000000000001")
        );
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
}
