//! `switchboard models pull|list`, and the first-run fetch of the embedded
//! model with a progress bar on stderr.

use std::io::Write;

use anyhow::bail;
use gateway::Config;
use gateway::config::ProviderConfig;
use gateway::providers::local;
use switchboard_embedded::Progress;

/// Fetches the model of every local provider that lacks it (or only the one
/// named), showing progress.
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
    if locals.is_empty() {
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
}

impl Bar {
    fn show(&mut self, p: &Progress) {
        let mut err = std::io::stderr();
        match p {
            Progress::AlreadyPresent { .. } => {}
            Progress::Trying { source } => {
                let _ = writeln!(
                    err,
                    "Fetching the embedded model from {source} (first run only)"
                );
            }
            Progress::Transferred { bytes, total } => {
                let percent = if *total > 0 { bytes * 100 / total } else { 0 };
                if self.last_percent != Some(percent) {
                    self.last_percent = Some(percent);
                    let filled = (percent / 5) as usize;
                    let _ = write!(
                        err,
                        "\r  [{}{}] {percent:>3}%  {:.1} / {:.1} MB",
                        "#".repeat(filled),
                        " ".repeat(20 - filled.min(20)),
                        *bytes as f64 / 1e6,
                        *total as f64 / 1e6
                    );
                    let _ = err.flush();
                }
            }
            Progress::SourceFailed { source, reason } => {
                let _ = writeln!(err, "\n  {source} failed: {reason}; trying the next source");
            }
            Progress::Done { path } => {
                let _ = writeln!(err, "\n  verified and saved to {}", path.display());
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
