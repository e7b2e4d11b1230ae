//! Environment overrides: a variable `SWITCHBOARD__SERVER__LISTEN` sets the key
//! `server.listen` in the configuration table before it is read, as a number, boolean or
//! array when it reads as TOML and the key is not already a string.

use super::ConfigError;

/// The prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "SWITCHBOARD__";

/// Sets the key named by an override variable's `path` (`SERVER__LISTEN`).
pub(super) fn apply_override(
    table: &mut toml::Table,
    var: &str,
    path: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let parts: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
    if parts.iter().any(String::is_empty) {
        return Err(ConfigError::key(
            var,
            None,
            "an override variable is SWITCHBOARD__ then key parts joined by `__`, e.g. SWITCHBOARD__SERVER__LISTEN",
        ));
    }
    let (last, parents) = parts.split_last().expect("split always yields one part");
    let mut current = table;
    for part in parents {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::key(
                    var,
                    None,
                    format!("`{part}` is not a table in the configuration, so it has no sub-keys"),
                ));
            }
        };
    }
    // Keep strings strings; otherwise read the value as TOML (numbers,
    // booleans, arrays), falling back to a plain string.
    let parsed = match current.get(last) {
        Some(toml::Value::String(_)) => toml::Value::String(value.to_string()),
        _ => format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string())),
    };
    current.insert(last.clone(), parsed);
    Ok(())
}
