//! Where a binding applies: a [`Scope`] is global, a workspace, a channel or a thread, stored
//! as a key such as `slack/T1/C1`; a conversation is answered by the most specific scope
//! that is bound.

use super::RegistryError;
use crate::domain::Origin;

/// Where a binding applies. A thread inherits its channel's binding, a
/// channel its workspace's, a workspace the global one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere nothing more specific is bound.
    Global,
    /// A Slack workspace or Discord server.
    Workspace {
        /// `slack`, `discord`, …
        platform: String,
        /// The workspace or guild id.
        workspace: String,
    },
    /// A channel.
    Channel {
        /// The platform.
        platform: String,
        /// The workspace (`-` when the platform has none, as in DMs).
        workspace: String,
        /// The channel id.
        channel: String,
    },
    /// A thread.
    Thread {
        /// The platform.
        platform: String,
        /// The workspace.
        workspace: String,
        /// The channel.
        channel: String,
        /// The thread id.
        thread: String,
    },
}

impl Scope {
    /// The stored key: `global` or `platform/workspace[/channel[/thread]]`.
    pub fn key(&self) -> String {
        match self {
            Scope::Global => "global".to_string(),
            Scope::Workspace {
                platform,
                workspace,
            } => format!("{platform}/{workspace}"),
            Scope::Channel {
                platform,
                workspace,
                channel,
            } => format!("{platform}/{workspace}/{channel}"),
            Scope::Thread {
                platform,
                workspace,
                channel,
                thread,
            } => format!("{platform}/{workspace}/{channel}/{thread}"),
        }
    }

    /// Parses a key as [`Scope::key`] writes it.
    pub fn parse(key: &str) -> Result<Scope, RegistryError> {
        if key == "global" {
            return Ok(Scope::Global);
        }
        let parts: Vec<&str> = key.split('/').collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || p.chars().any(char::is_whitespace))
        {
            return Err(RegistryError::BadScope(key.to_string()));
        }
        let s = |i: usize| parts[i].to_string();
        match parts.len() {
            2 => Ok(Scope::Workspace {
                platform: s(0),
                workspace: s(1),
            }),
            3 => Ok(Scope::Channel {
                platform: s(0),
                workspace: s(1),
                channel: s(2),
            }),
            4 => Ok(Scope::Thread {
                platform: s(0),
                workspace: s(1),
                channel: s(2),
                thread: s(3),
            }),
            _ => Err(RegistryError::BadScope(key.to_string())),
        }
    }

    /// The scopes that apply to a conversation, most specific first.
    pub fn chain(origin: &Origin) -> Vec<String> {
        let platform = origin.platform.as_str();
        let workspace = origin.workspace.as_deref().unwrap_or("-");
        let mut keys = Vec::with_capacity(4);
        if let Some(channel) = origin.channel.as_deref() {
            if let Some(thread) = origin.thread.as_deref() {
                keys.push(format!("{platform}/{workspace}/{channel}/{thread}"));
            }
            keys.push(format!("{platform}/{workspace}/{channel}"));
        }
        if origin.workspace.is_some() {
            keys.push(format!("{platform}/{workspace}"));
        }
        keys.push("global".to_string());
        keys
    }
}
