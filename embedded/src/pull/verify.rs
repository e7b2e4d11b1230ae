//! Proving a file is the expected bytes: its size first (cheap, and it catches interrupted
//! transfers), then its SHA-256.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{ModelSpec, PullError};

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
pub(crate) fn verify_as(path: &Path, spec: &ModelSpec, shown: &Path) -> Result<(), PullError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_known_input() {
        let h = sha256_of(&b"abc"[..]).expect("hash");
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
