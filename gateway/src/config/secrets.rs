//! Secrets: they never live in the file (keys such as `api_key` are refused anywhere in it);
//! a provider names the variable or file that holds its key, read once at load into a
//! [`Secret`] that never prints; and URLs are shown with their password masked
//! ([`redact_url`]).

use std::collections::BTreeMap;

use super::{Config, ConfigError};

/// Keys that would hold a secret; refused anywhere in the file.
const SECRET_KEYS: &[&str] = &[
    "api_key",
    "apikey",
    "token",
    "secret",
    "password",
    "signing_secret",
    "bot_token",
    "app_token",
];

/// Refuses keys that would put a secret in the file.
pub(super) fn refuse_secrets(table: &toml::Table, prefix: &str) -> Result<(), ConfigError> {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if SECRET_KEYS.contains(&key.as_str()) {
            return Err(ConfigError::key(
                path,
                None,
                format!(
                    "secrets are never read from the config file; put it in an environment variable and name that with `{key}_env` (or a file, with `{key}_file`)"
                ),
            ));
        }
        if let toml::Value::Table(t) = value {
            refuse_secrets(t, &path)?;
        }
    }
    Ok(())
}

/// A secret value whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl Secret {
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl Config {
    /// Reads each provider's API key from the variable or file it names.
    pub(super) fn resolve_secrets(
        &mut self,
        env: &BTreeMap<String, String>,
    ) -> Result<(), ConfigError> {
        for (name, provider) in self.providers.iter_mut() {
            let Some(http) = provider.http_mut() else {
                continue;
            };
            let key = match (&http.api_key_env, &http.api_key_file) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::key(
                        format!("providers.{name}"),
                        None,
                        "set either `api_key_env` or `api_key_file`, not both",
                    ));
                }
                (Some(var), None) => match env.get(var).map(|v| v.trim()) {
                    Some(v) if !v.is_empty() => Some(v.to_string()),
                    _ => {
                        return Err(ConfigError::key(
                            format!("providers.{name}.api_key_env"),
                            Some(var.clone()),
                            format!(
                                "the environment variable `{var}` is not set; export it with the provider's API key"
                            ),
                        ));
                    }
                },
                (None, Some(path)) => match std::fs::read_to_string(path) {
                    Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                    Ok(_) => {
                        return Err(ConfigError::key(
                            format!("providers.{name}.api_key_file"),
                            Some(path.display().to_string()),
                            "the file is empty; write the provider's API key in it",
                        ));
                    }
                    Err(e) => {
                        return Err(ConfigError::key(
                            format!("providers.{name}.api_key_file"),
                            Some(path.display().to_string()),
                            format!("cannot read it: {e}"),
                        ));
                    }
                },
                (None, None) => None,
            };
            http.api_key = key.map(Secret);
        }
        Ok(())
    }
}

/// A database URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
