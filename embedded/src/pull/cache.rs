//! The models directory on disk: where it is by default, which model files it holds, and the
//! scratch space and directory sync that fetching into it needs.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::PullError;

/// A model file on disk, as listed by [`list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFile {
    /// File name without the `.gguf` extension.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
}

/// The models directory: `$SWITCHBOARD_MODEL_CACHE` if set, else
/// `$XDG_CACHE_HOME/switchboard/models`, else `~/.cache/switchboard/models`.
pub fn default_models_dir() -> Option<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty("SWITCHBOARD_MODEL_CACHE") {
        return Some(PathBuf::from(dir));
    }
    let cache = non_empty("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("switchboard").join("models"))
}

/// Lists the `.gguf` files in `models_dir` (none if it does not exist), sorted by name.
///
/// # Errors
///
/// [`PullError::Io`] if the directory exists but cannot be read.
pub fn list(models_dir: &Path) -> Result<Vec<ModelFile>, PullError> {
    let io_err = |source| PullError::Io {
        action: "cannot list",
        path: models_dir.to_path_buf(),
        source,
    };
    let entries = match fs::read_dir(models_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err)?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("gguf") {
            continue;
        }
        let meta = entry.metadata().map_err(io_err)?;
        if !meta.is_file() {
            continue;
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.push(ModelFile {
            name,
            path,
            size: meta.len(),
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Makes a rename in `dir` durable (best effort: not every file system supports it).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A scratch directory beside the models, removed when dropped.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new(parent: &Path, file_name: &str) -> Result<Self, PullError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = parent.join(format!(".{file_name}.{}-{nanos}.tmp", std::process::id()));
        fs::create_dir_all(&path).map_err(|source| PullError::Io {
            action: "cannot create",
            path: path.clone(),
            source,
        })?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
