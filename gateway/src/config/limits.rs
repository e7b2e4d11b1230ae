//! `[limits]`: requests and tokens per minute and a daily budget, per user, channel,
//! workspace and for everything, with per-workspace overrides; and the rule that a limit
//! written down is positive (leaving it out means no limit).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ConfigError;

/// `[limits]`: requests and tokens per minute and a daily budget, for each
/// user, channel, workspace (Slack team, Discord guild) and for everything
/// together. A limit left out does not apply.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Each user (per platform and workspace).
    #[serde(default)]
    pub user: LimitSet,
    /// Each channel.
    #[serde(default)]
    pub channel: LimitSet,
    /// Each workspace or guild.
    #[serde(default)]
    pub workspace: LimitSet,
    /// Every request together.
    #[serde(default)]
    pub global: LimitSet,
    /// Overrides for one workspace, by its id (`[limits.workspaces.T0123.user]`).
    #[serde(default)]
    pub workspaces: BTreeMap<String, WorkspaceLimits>,
    /// Output tokens reserved for a request that sets no `max_tokens`,
    /// until its real usage is known.
    #[serde(default = "default_estimate_output")]
    pub estimate_output_tokens: u32,
}

fn default_estimate_output() -> u32 {
    256
}

/// One scope's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSet {
    /// Requests per minute; a full minute's worth may come at once.
    pub requests_per_minute: Option<u64>,
    /// Tokens (input plus output) per minute.
    pub tokens_per_minute: Option<u64>,
    /// Spend per UTC day, in USD (priced models only).
    pub daily_budget_usd: Option<f64>,
}

impl LimitSet {
    /// `self`, with every unset limit taken from `base`.
    pub fn or(self, base: &LimitSet) -> LimitSet {
        LimitSet {
            requests_per_minute: self.requests_per_minute.or(base.requests_per_minute),
            tokens_per_minute: self.tokens_per_minute.or(base.tokens_per_minute),
            daily_budget_usd: self.daily_budget_usd.or(base.daily_budget_usd),
        }
    }
}

/// `[limits.workspaces.ID]`: one workspace's own limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceLimits {
    /// Each user in this workspace.
    #[serde(default)]
    pub user: LimitSet,
    /// Each channel in this workspace.
    #[serde(default)]
    pub channel: LimitSet,
    /// This workspace as a whole.
    #[serde(default)]
    pub workspace: LimitSet,
}

impl LimitsConfig {
    /// Rules of `[limits]`: limits are positive; leaving one out means no limit.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let mut sets = vec![
            ("limits.user".to_string(), &self.user),
            ("limits.channel".to_string(), &self.channel),
            ("limits.workspace".to_string(), &self.workspace),
            ("limits.global".to_string(), &self.global),
        ];
        for (id, w) in &self.workspaces {
            sets.push((format!("limits.workspaces.{id}.user"), &w.user));
            sets.push((format!("limits.workspaces.{id}.channel"), &w.channel));
            sets.push((format!("limits.workspaces.{id}.workspace"), &w.workspace));
        }
        for (key, set) in sets {
            for (name, value) in [
                ("requests_per_minute", set.requests_per_minute),
                ("tokens_per_minute", set.tokens_per_minute),
            ] {
                if value == Some(0) {
                    return Err(ConfigError::key(
                        format!("{key}.{name}"),
                        Some("0".into()),
                        "must be at least 1; leave the key out for no limit",
                    ));
                }
            }
            if let Some(b) = set.daily_budget_usd
                && !(b.is_finite() && b >= 0.0)
            {
                return Err(ConfigError::key(
                    format!("{key}.daily_budget_usd"),
                    Some(b.to_string()),
                    "must be a number of USD, zero or more; leave the key out for no budget",
                ));
            }
        }
        Ok(())
    }
}
