//! Opening a model file: its GGUF header is checked first (magic, consistency, size), so
//! that a missing, truncated or foreign file fails with an error that says so, and only then
//! does llama.cpp read the weights.

use std::path::Path;

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;

use super::LoadError;
use crate::backend;
use crate::gguf::{self, GgufError};

/// Checks the file's header, then loads its weights with llama.cpp.
pub(super) fn open(path: &Path) -> Result<LlamaModel, LoadError> {
    let info = match gguf::inspect(path) {
        Ok(info) => info,
        Err(GgufError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LoadError::NotFound {
                path: path.to_path_buf(),
            });
        }
        Err(GgufError::Io(source)) => {
            return Err(LoadError::Unreadable {
                path: path.to_path_buf(),
                source,
            });
        }
        Err(GgufError::NotGguf(detail)) => {
            return Err(LoadError::NotGguf {
                path: path.to_path_buf(),
                detail,
            });
        }
        Err(GgufError::Truncated { size, detail }) => {
            return Err(LoadError::Truncated {
                path: path.to_path_buf(),
                size,
                detail,
            });
        }
        Err(GgufError::Corrupt(detail)) => {
            return Err(LoadError::Corrupt {
                path: path.to_path_buf(),
                detail,
            });
        }
    };
    tracing::debug!(
        path = %path.display(),
        version = info.version,
        tensors = info.tensor_count,
        architecture = info.architecture.as_deref().unwrap_or("unknown"),
        bytes = info.file_size,
        needed = info.required_size,
        "GGUF header checked"
    );

    let backend = backend::get().map_err(LoadError::Backend)?;
    let _ = backend::take_last_error();
    let model =
        LlamaModel::load_from_file(backend, path, &LlamaModelParams::default()).map_err(|e| {
            LoadError::Rejected {
                path: path.to_path_buf(),
                detail: backend::take_last_error().unwrap_or_else(|| e.to_string()),
            }
        })?;
    Ok(model)
}
