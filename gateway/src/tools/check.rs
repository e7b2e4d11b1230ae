//! The prompts' tools held against the configuration, for `switchboard
//! config`: every `tools` entry must name a `[tools.NAME]` server or a
//! built-in, and a prompt that offers tools must not run on the embedded
//! model alone (its chat template cannot call tools).

use crate::config::{BUILTIN_TOOLS, Config};

/// What is wrong with the tools of the prompts in `registry` under
/// `config`, one line each: an entry naming no `[tools.NAME]` server or
/// built-in, or a prompt that offers tools on a model whose targets are all
/// the embedded model (which cannot call tools). Every label's versions are
/// checked. `switchboard config` refuses to pass with any.
pub async fn check_prompts(config: &Config, registry: &crate::registry::Registry) -> Vec<String> {
    use crate::config::ProviderConfig;
    let mut problems = Vec::new();
    for info in registry.list() {
        // The newest version, and every version a label (or a split's
        // arm) points at.
        let mut versions: Vec<i64> = vec![info.latest];
        versions.extend(info.labels.values().flatten().map(|arm| arm.version));
        versions.sort_unstable();
        versions.dedup();
        for v in versions {
            let Ok((_, prompt)) = registry
                .version(&info.name, &crate::domain::Selector::Version(v))
                .await
            else {
                continue;
            };
            if prompt.tools.is_empty() {
                continue;
            }
            let at = format!("prompt `{}` version {v}", info.name);
            for entry in &prompt.tools {
                let server = entry.split_once('.').map_or(entry.as_str(), |(s, _)| s);
                if !config.tools.contains_key(server) && !BUILTIN_TOOLS.contains(&entry.as_str()) {
                    problems.push(format!(
                        "{at} offers `{entry}`, but there is no [tools.{server}] and no built-in of that name (built-ins: {})",
                        BUILTIN_TOOLS.join(", ")
                    ));
                }
            }
            if let Some(alias) = config.models.get(&prompt.model) {
                let all_local = !alias.targets.is_empty()
                    && alias.targets.iter().all(|t| {
                        t.split_once('/').is_some_and(|(p, _)| {
                            matches!(config.providers.get(p), Some(ProviderConfig::Local(_)))
                        })
                    });
                if all_local {
                    problems.push(format!(
                        "{at} offers tools on model `{}`, which runs only on the embedded model: {}",
                        prompt.model,
                        crate::providers::local::TOOLS_UNSUPPORTED
                    ));
                }
            }
        }
    }
    problems
}
