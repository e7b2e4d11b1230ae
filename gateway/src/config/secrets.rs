//! Secrets: they never live in the file (keys such as `api_key` are refused anywhere in it);
//! a provider names the variable or file that holds its key, read once at load into a
//! [`Secret`] that never prints; and URLs are shown with their password and secret query
//! values masked ([`redact_url`]).

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

/// Named values that may hold secrets the key check cannot see, such as a
/// provider's extra `headers` and `query` parameters. The names show; the
/// values never do (`Debug` prints each as `****`). A number or boolean is
/// taken as its text, so that no parse error ever quotes a value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SensitiveMap(pub BTreeMap<String, String>);

impl SensitiveMap {
    /// The names and values, in name order.
    pub fn iter(&self) -> std::collections::btree_map::Iter<'_, String, String> {
        self.0.iter()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a SensitiveMap {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl std::fmt::Debug for SensitiveMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        struct Masked;
        impl std::fmt::Debug for Masked {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(MASK)
            }
        }
        f.debug_map()
            .entries(self.0.keys().map(|name| (name, Masked)))
            .finish()
    }
}

impl<'de> serde::Deserialize<'de> for SensitiveMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, toml::Value>::deserialize(deserializer)?;
        let mut values = BTreeMap::new();
        for (name, value) in raw {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(_)
                | toml::Value::Float(_)
                | toml::Value::Boolean(_)
                | toml::Value::Datetime(_) => value.to_string(),
                toml::Value::Array(_) | toml::Value::Table(_) => {
                    return Err(serde::de::Error::custom(format!(
                        "the value of `{name}` must be a string"
                    )));
                }
            };
            values.insert(name, text);
        }
        Ok(SensitiveMap(values))
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

/// Query parameters whose values are secrets, matched without regard to case.
const SECRET_PARAMS: &[&str] = &[
    "password",
    "sslpassword",
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
];

/// What stands in for a hidden value.
const MASK: &str = "****";

/// A URL with its secrets replaced, for messages and logs: the password of
/// `user:password@host` and the values of query parameters such as
/// `password` or `token` become `****`. A URL that does not parse (often a
/// password holding `/` or `#` that was not percent-encoded) shows only its
/// scheme, as `scheme://****`, since any other part of it may be the secret.
pub fn redact_url(url: &str) -> String {
    // SQLite URLs name a file and never hold a password, but their query may
    // (an encryption key).
    if url.starts_with("sqlite:") {
        return match url.split_once('?') {
            Some((path, query)) => format!("{path}?{}", mask_query(query).0),
            None => url.to_string(),
        };
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return MASK.to_string();
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return MASK.to_string();
    }
    let hidden = || format!("{scheme}://{MASK}");
    // An `@` after the host means the user information was cut short by a
    // `/`, `?` or `#` in the password, and parsing would show the rest of it
    // as a port, path or query.
    let authority_end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    if rest[authority_end..].contains('@') {
        return hidden();
    }
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return hidden();
    };
    let mut changed = false;
    if parsed.password().is_some() {
        if parsed.set_password(Some(MASK)).is_err() {
            return hidden();
        }
        changed = true;
    }
    if let Some(query) = parsed.query() {
        let (masked, masked_any) = mask_query(query);
        if masked_any {
            parsed.set_query(Some(&masked));
            changed = true;
        }
    }
    if changed {
        parsed.to_string()
    } else {
        url.to_string()
    }
}

/// `query` with the values of [`SECRET_PARAMS`] replaced by `****`, other
/// pairs kept as written; and whether any value was replaced.
fn mask_query(query: &str) -> (String, bool) {
    let mut masked_any = false;
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_param(name) => {
                masked_any = true;
                format!("{name}={MASK}")
            }
            _ => pair.to_string(),
        })
        .collect();
    (pairs.join("&"), masked_any)
}

/// Whether a query parameter's (percent-encoded) name is one of [`SECRET_PARAMS`].
fn is_secret_param(name: &str) -> bool {
    let Some((decoded, _)) = form_urlencoded::parse(name.as_bytes()).next() else {
        return false;
    };
    SECRET_PARAMS
        .iter()
        .any(|secret| decoded.trim().eq_ignore_ascii_case(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// URLs, each beside a part of its secret that must not be shown.
    const LEAKY: &[(&str, &str)] = &[
        ("postgres://u:pa/ss@db/x", "pa"),
        ("postgres://u:pa/ss@db/x", "ss@db"),
        ("postgres://u:pa#ss@db/x", "pa"),
        ("postgres://u:pa#ss@db/x", "ss@db"),
        ("postgres://u:pa?ss@db/x", "ss@db"),
        ("postgres://u:12/ss@db/x", "12"),
        ("postgres://u:12/ss@db/x", "ss@db"),
        ("postgres://u@db/x?password=s3cr3t", "s3cr3t"),
        (
            "postgres://u@db/x?sslmode=require&sslpassword=s3cr3t",
            "s3cr3t",
        ),
        ("postgres://u@db/x?PassWord=s3cr3t", "s3cr3t"),
        ("redis://db:6379/0?token=s3cr3t&x=1", "s3cr3t"),
        ("sqlite:///var/lib/sb.db?key=s3cr3t", "s3cr3t"),
        ("u:s3cr3t@db/x", "s3cr3t"),
    ];

    #[test]
    fn sensitive_values_never_print_but_their_names_do() {
        let map: SensitiveMap =
            toml::from_str("X-Api-Token = \"s3cr3t\"\nX-Build = 12345678").expect("valid");
        assert_eq!(
            map.0["X-Build"], "12345678",
            "a number is taken as its text"
        );
        let shown = format!("{map:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("12345678"),
            "{shown}"
        );
        assert!(shown.contains("\"X-Api-Token\": ****"), "{shown}");
        let e = toml::from_str::<SensitiveMap>("X-Api-Token = [\"s3cr3t\"]").unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }

    #[test]
    fn no_part_of_a_password_is_shown_even_when_the_url_does_not_parse() {
        for (url, secret) in LEAKY {
            let shown = redact_url(url);
            assert!(
                !shown.contains(secret),
                "`{url}` is shown as `{shown}`, which holds `{secret}`"
            );
        }
        assert_eq!(redact_url("postgres://u:pa/ss@db/x"), "postgres://****");
        assert_eq!(redact_url("postgres://u:pa#ss@db/x"), "postgres://****");
        assert_eq!(redact_url("u:s3cr3t@db/x"), "****");
    }

    #[test]
    fn what_is_not_secret_stays_readable() {
        assert_eq!(
            redact_url("postgres://u:s3cr3t@db:5432/x"),
            "postgres://u:****@db:5432/x"
        );
        assert_eq!(
            redact_url("postgres://u@db/x?sslmode=require&password=s3cr3t"),
            "postgres://u@db/x?sslmode=require&password=****"
        );
        assert_eq!(
            redact_url("postgres://u@db/x?sslmode=require"),
            "postgres://u@db/x?sslmode=require"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(redact_url("sqlite://data/sb.db"), "sqlite://data/sb.db");
        assert_eq!(
            redact_url("sqlite:///my data/sb.db?mode=rwc"),
            "sqlite:///my data/sb.db?mode=rwc"
        );
    }
}
