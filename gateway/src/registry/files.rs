//! Prompts as files: exporting one `NAME.toml` per prompt at a label, and importing a folder
//! of them, all parsed and validated before anything is stored.

use std::path::Path;

use prompts::{Arm, Prompt};

use super::{LATEST, Registry, RegistryError};
use crate::domain::Selector;

impl Registry {
    /// Writes one `NAME.toml` per prompt into `dir`, at `label` (falling
    /// back to the newest version for prompts without that label).
    /// Returns the files written.
    pub async fn export(&self, dir: &Path, label: &str) -> Result<Vec<String>, RegistryError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| RegistryError::Files(format!("cannot create `{}`: {e}", dir.display())))?;
        let mut written = Vec::new();
        for info in self.list() {
            let selector = if info.labels.contains_key(label) {
                Selector::Label(label.to_string())
            } else {
                Selector::Label(LATEST.to_string())
            };
            let (_, prompt) = self.version(&info.name, &selector).await?;
            let file = dir.join(format!("{}.toml", info.name));
            std::fs::write(&file, prompt.to_toml()).map_err(|e| {
                RegistryError::Files(format!("cannot write `{}`: {e}", file.display()))
            })?;
            written.push(file.display().to_string());
        }
        Ok(written)
    }

    /// Reads every `*.toml` in `dir` and stores a new version of each
    /// prompt whose content differs from its newest version; with
    /// `promote`, also points that label at it. Every file is parsed and
    /// validated before anything is stored: one bad file stores nothing.
    /// Returns (prompt, version, changed) per file.
    pub async fn import(
        &self,
        actor: &str,
        dir: &Path,
        promote: Option<&str>,
    ) -> Result<Vec<(String, i64, bool)>, RegistryError> {
        let read = std::fs::read_dir(dir).map_err(|e| {
            RegistryError::Files(format!("cannot read the folder `{}`: {e}", dir.display()))
        })?;
        let mut files: Vec<_> = read
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(RegistryError::Files(format!(
                "no `*.toml` prompt files in `{}`",
                dir.display()
            )));
        }
        let mut parsed = Vec::new();
        let mut problems = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).map_err(|e| {
                RegistryError::Files(format!("cannot read `{}`: {e}", file.display()))
            })?;
            match Prompt::from_toml(&file.display().to_string(), &text) {
                Ok(p) => parsed.push((file.display().to_string(), p)),
                Err(e) => problems.push(e.to_string()),
            }
        }
        self.reload().await?;
        for (_, p) in &parsed {
            // Imported prompts may include each other: check against the
            // registry plus the other files.
            let includes = |n: &str| {
                parsed
                    .iter()
                    .find(|(_, q)| q.name == n)
                    .and_then(|(_, q)| prompts::include_text(q).map(str::to_string))
                    .or_else(|| self.snapshot().includes.get(n).cloned())
            };
            if let Err(e) = prompts::validate(p, &includes) {
                problems.push(e.to_string());
            }
        }
        if !problems.is_empty() {
            return Err(RegistryError::Files(format!(
                "nothing was imported:\n{}",
                problems.join("\n")
            )));
        }
        let mut out = Vec::new();
        for (file, prompt) in parsed {
            let latest = self.snapshot().prompts.get(&prompt.name).map(|e| e.latest);
            let current = match latest {
                Some(v) => Some(self.version(&prompt.name, &Selector::Version(v)).await?.1),
                None => None,
            };
            let same = current.as_ref().is_some_and(|c| {
                let mut c = c.clone();
                c.version = prompt.version;
                c == prompt
            });
            let version = if same {
                latest.unwrap_or(1)
            } else {
                self.save(
                    actor,
                    "import",
                    &prompt,
                    &format!("imported from {file}"),
                    latest,
                    None,
                )
                .await?
            };
            if let Some(label) = promote {
                let points = self
                    .snapshot()
                    .prompts
                    .get(&prompt.name)
                    .and_then(|e| e.labels.get(label).cloned());
                if points.as_deref()
                    != Some(
                        &[Arm {
                            version,
                            weight: 100,
                        }][..],
                    )
                {
                    self.set_label(
                        actor,
                        "promote",
                        &prompt.name,
                        label,
                        Some(vec![Arm {
                            version,
                            weight: 100,
                        }]),
                        Some(format!("imported from {file}")),
                    )
                    .await?;
                }
            }
            out.push((prompt.name.clone(), version, !same));
        }
        Ok(out)
    }
}
