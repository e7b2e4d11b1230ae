//! Moving bytes: a helper program's standard output, or any reader, copied into the partial
//! file with progress reports and a hard cap at the expected size; and a helper's failure
//! turned into an error that says what to install or what went wrong.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{Progress, PullError};

/// Runs `cmd` and writes its standard output into `partial`.
pub(crate) fn stream_from(
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
pub(super) fn copy_into(
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

/// A helper program that could not be run: missing, or failing to start.
pub(super) fn tool_error(tool: &'static str, source_text: &str, e: &io::Error) -> PullError {
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
pub(super) fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(3);
    lines[start..].join(" | ")
}
