//! Rights: who is asking ([`Actor`]), what they may do ([`Rights`]) by the `[admin]`
//! configuration and the roles their platform reports, how far those rights reach
//! ([`Grant`]: everywhere, or only inside the actor's own workspace), what each command
//! needs, and the message that says which right is missing and who grants it.
//!
//! The rule this file keeps: rights granted by the configuration (`admin.admins`,
//! `admin.editors`, configured roles) reach the whole registry; rights that come only
//! from the platform (a Slack workspace admin or owner, a Discord member with Manage
//! Server) reach only scopes inside that workspace and prompts no other scope uses.
//! `global`, other workspaces, the default prompt and prompts another scope binds need
//! a configured admin.

use super::{Admin, Command};
use crate::registry::{DEFAULT_PROMPT, Scope};

/// Who is asking, as the front end knows them.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// `platform:id` (`slack:U0123`, `discord:8035…`, `cli:alice`).
    pub id: String,
    /// A display name, for messages.
    pub name: String,
    /// Platform roles, as `platform:role` (`discord:role:1234`).
    pub roles: Vec<String>,
    /// Whether the platform says this user administers the workspace the
    /// request came from (never for guests or users of another
    /// organization in a shared channel).
    pub platform_admin: bool,
    /// The workspace the request came from, as a scope key (`slack/T0123`,
    /// `discord/8035…`): a platform admin's rights reach only inside it.
    /// `None` only for the operator's own front ends (the CLI and the
    /// dashboard), whose users hold the database's credentials; chat
    /// adapters always set it.
    pub workspace: Option<String>,
}

impl Actor {
    /// The operator at the command line. Whoever can run the CLI against
    /// the database already holds its credentials, so the CLI acts as an
    /// admin; it is audited as `cli:<user>`.
    pub fn cli(user: &str) -> Actor {
        Actor {
            id: format!("cli:{user}"),
            name: user.to_string(),
            roles: Vec::new(),
            platform_admin: true,
            workspace: None,
        }
    }
}

/// What an actor may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rights {
    /// Nothing.
    None,
    /// Read, save versions, test, move unprotected labels.
    Editor,
    /// Everything.
    Admin,
}

/// What an actor may do, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Rights over the whole registry (from the configuration, or the
    /// operator's own front ends).
    pub everywhere: Rights,
    /// Rights that reach only one workspace (its scope key), from the
    /// platform's own admin flag.
    pub workspace: Option<(String, Rights)>,
}

impl Admin {
    /// The most this actor may do anywhere (what a front end uses to decide
    /// whether to offer a form at all; every command is checked again).
    pub fn rights(&self, actor: &Actor) -> Rights {
        let grant = self.grant(actor);
        grant
            .workspace
            .map_or(grant.everywhere, |(_, r)| r.max(grant.everywhere))
    }

    /// What this actor may do and how far it reaches, from the
    /// configuration and the roles and flags the platform reported.
    pub fn grant(&self, actor: &Actor) -> Grant {
        let c = &self.config;
        let has_role = |roles: &[String]| actor.roles.iter().any(|r| roles.contains(r));
        let everywhere = if c.admins.contains(&actor.id) || has_role(&c.admin_roles) {
            Rights::Admin
        } else if c.editors.contains(&actor.id) || has_role(&c.editor_roles) {
            Rights::Editor
        } else {
            Rights::None
        };
        if !(c.platform_admins && actor.platform_admin) {
            return Grant {
                everywhere,
                workspace: None,
            };
        }
        match &actor.workspace {
            // The CLI and the dashboard: the operator's own front ends.
            None => Grant {
                everywhere: Rights::Admin,
                workspace: None,
            },
            Some(w) if c.home_workspaces.contains(w) => Grant {
                everywhere: Rights::Admin,
                workspace: None,
            },
            Some(w) => Grant {
                everywhere,
                workspace: Some((w.clone(), Rights::Admin)),
            },
        }
    }

    /// Whether the actor may run `command`: `Err` says why not.
    pub(super) fn allowed(&self, actor: &Actor, command: &Command) -> Result<(), String> {
        let need = self.needed(command);
        let grant = self.grant(actor);
        if grant.everywhere >= need {
            return Ok(());
        }
        match &grant.workspace {
            Some((workspace, have)) if *have >= need => self.within(workspace, command),
            _ => Err(self.missing_right(actor, need)),
        }
    }

    /// The rights a command needs.
    pub(super) fn needed(&self, command: &Command) -> Rights {
        let protected = |label: &str| self.config.protected_labels.iter().any(|l| l == label);
        match command {
            Command::Bind { .. } | Command::Split { .. } | Command::KnowledgeSync { .. } => {
                Rights::Admin
            }
            Command::Promote { label, .. } | Command::Rollback { label, .. }
                if protected(label) =>
            {
                Rights::Admin
            }
            _ => Rights::Editor,
        }
    }

    /// Whether a command stays inside `workspace`, for rights that reach no
    /// further: reads and new prompts always do; a binding does when its scope
    /// is in the workspace; a new version or a label move does when no scope
    /// outside the workspace binds the prompt and it is not the default
    /// prompt (which answers every conversation nothing binds).
    fn within(&self, workspace: &str, command: &Command) -> Result<(), String> {
        let outside = |what: String| {
            Err(format!(
                "{what}; a workspace admin's rights reach only `{workspace}` (its channels, threads and binding, and prompts only it uses). Ask an admin listed in `admin.admins`"
            ))
        };
        let prompt_is_local = |name: &str| {
            if name == DEFAULT_PROMPT {
                return outside(format!(
                    "`{name}` is the default prompt, which answers every conversation nothing binds"
                ));
            }
            let elsewhere = self
                .registry
                .bindings()
                .into_iter()
                .find(|(scope, prompt, _)| prompt == name && !scope_in(scope, workspace));
            match elsewhere {
                Some((scope, _, label)) => outside(format!(
                    "`{name}` is shared: `{scope}` answers with {name}@{label}"
                )),
                None => Ok(()),
            }
        };
        match command {
            Command::List
            | Command::Show { .. }
            | Command::Diff { .. }
            | Command::History { .. }
            | Command::Test { .. }
            | Command::Create { .. }
            | Command::KnowledgeList { .. }
            | Command::KnowledgeSearch { .. } => Ok(()),
            Command::Edit { prompt, .. } => prompt_is_local(&prompt.name),
            Command::Promote { name, .. }
            | Command::Rollback { name, .. }
            | Command::Split { name, .. } => prompt_is_local(name),
            Command::Bind { scope, .. } | Command::KnowledgeSync { scope } => {
                let key = scope.key();
                if matches!(scope, Scope::Global) || !scope_in(&key, workspace) {
                    outside(format!("`{key}` is outside your workspace"))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Why an actor lacking `need` is refused: the right that is missing and who grants it.
    pub(super) fn missing_right(&self, actor: &Actor, need: Rights) -> String {
        match need {
            Rights::Admin => format!(
                "this needs an admin (protected labels: {}); ask an admin, or add `{}` to `admin.admins` in the configuration",
                self.config.protected_labels.join(", "),
                actor.id
            ),
            _ => format!(
                "this needs an editor or admin; add `{}` to `admin.editors` in the configuration",
                actor.id
            ),
        }
    }
}

/// Whether a stored scope key is `workspace` itself or inside it.
fn scope_in(key: &str, workspace: &str) -> bool {
    key == workspace
        || key
            .strip_prefix(workspace)
            .is_some_and(|rest| rest.starts_with('/'))
}
