//! `[prompts]` and `[admin]`: how the prompt registry notices changes, and who may change
//! prompts — admins, editors, the roles that make them, and the labels only admins may move.

use serde::Deserialize;

use super::{ConfigError, yes};

/// `[prompts]`: the prompt registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptsConfig {
    /// How often (milliseconds) each replica checks whether the registry
    /// changed. On PostgreSQL, changes also arrive at once by NOTIFY and
    /// this is only the backstop; on SQLite it is how a `switchboard
    /// prompts` command reaches a running server.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

fn default_poll_ms() -> u64 {
    500
}

impl Default for PromptsConfig {
    fn default() -> Self {
        PromptsConfig {
            poll_ms: default_poll_ms(),
        }
    }
}

impl PromptsConfig {
    /// Rules of `[prompts]`.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.poll_ms < 50 {
            return Err(ConfigError::key(
                "prompts.poll_ms",
                Some(self.poll_ms.to_string()),
                "must be at least 50 (milliseconds)",
            ));
        }
        Ok(())
    }
}

/// `[admin]`: who may change prompts. Users are written `platform:id`
/// (`slack:U0123ABC`, `discord:80351110224678912`); roles as the adapter
/// reports them (`discord:role:1234`, `slack:admin`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Users who may do everything: move protected labels, bind, split.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Users who may read prompts, save versions, test them and move
    /// labels that are not protected.
    #[serde(default)]
    pub editors: Vec<String>,
    /// Platform roles whose holders are admins.
    #[serde(default)]
    pub admin_roles: Vec<String>,
    /// Platform roles whose holders are editors.
    #[serde(default)]
    pub editor_roles: Vec<String>,
    /// Whether the platform's own admins (Slack workspace admins and
    /// owners, Discord members with Manage Server) are admins here.
    #[serde(default = "yes")]
    pub platform_admins: bool,
    /// Workspaces (`slack/T0123`, `discord/8035…`) whose platform admins
    /// are admins of the whole registry. Elsewhere a platform admin's
    /// rights reach only their own workspace.
    #[serde(default)]
    pub home_workspaces: Vec<String>,
    /// Labels only admins may move.
    #[serde(default = "default_protected")]
    pub protected_labels: Vec<String>,
}

fn default_protected() -> Vec<String> {
    vec!["production".to_string()]
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            admins: Vec::new(),
            editors: Vec::new(),
            admin_roles: Vec::new(),
            editor_roles: Vec::new(),
            platform_admins: true,
            home_workspaces: Vec::new(),
            protected_labels: default_protected(),
        }
    }
}

impl AdminConfig {
    /// Rules of `[admin]`: users are written `platform:id`.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        for (key, list) in [
            ("admin.admins", &self.admins),
            ("admin.editors", &self.editors),
        ] {
            if let Some(bad) = list.iter().find(|u| !u.contains(':')) {
                return Err(ConfigError::key(
                    key,
                    Some(bad.clone()),
                    "write users as `platform:id`, for example `slack:U0123ABC` or `discord:80351110224678912`",
                ));
            }
        }
        if let Some(bad) = self.home_workspaces.iter().find(|w| {
            let parts: Vec<&str> = w.split('/').collect();
            parts.len() != 2 || parts.iter().any(|p| p.is_empty())
        }) {
            return Err(ConfigError::key(
                "admin.home_workspaces",
                Some(bad.clone()),
                "write workspaces as `platform/id`, for example `slack/T0123ABC` or `discord/80351110224678912`",
            ));
        }
        Ok(())
    }
}
