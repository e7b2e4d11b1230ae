//! Rights: who is asking ([`Actor`]), what they may do ([`Rights`]) by the `[admin]`
//! configuration and the roles their platform reports, what each command needs, and the
//! message that says which right is missing and who grants it.

use super::{Admin, Command};

/// Who is asking, as the front end knows them.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// `platform:id` (`slack:U0123`, `discord:8035…`, `cli:alice`).
    pub id: String,
    /// A display name, for messages.
    pub name: String,
    /// Platform roles, as `platform:role` (`discord:role:1234`).
    pub roles: Vec<String>,
    /// Whether the platform says this user administers the workspace.
    pub platform_admin: bool,
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

impl Admin {
    /// What this actor may do, from the configuration and the roles the
    /// platform reported.
    pub fn rights(&self, actor: &Actor) -> Rights {
        let c = &self.config;
        let has_role = |roles: &[String]| actor.roles.iter().any(|r| roles.contains(r));
        if c.admins.contains(&actor.id)
            || has_role(&c.admin_roles)
            || (c.platform_admins && actor.platform_admin)
        {
            Rights::Admin
        } else if c.editors.contains(&actor.id) || has_role(&c.editor_roles) {
            Rights::Editor
        } else {
            Rights::None
        }
    }

    /// The rights a command needs.
    pub(super) fn needed(&self, command: &Command) -> Rights {
        let protected = |label: &str| self.config.protected_labels.iter().any(|l| l == label);
        match command {
            Command::Bind { .. } | Command::Split { .. } => Rights::Admin,
            Command::Promote { label, .. } | Command::Rollback { label, .. }
                if protected(label) =>
            {
                Rights::Admin
            }
            _ => Rights::Editor,
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
