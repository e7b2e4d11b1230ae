//! Shared helpers for the integration tests: the real model file, fetched once per machine
//! into the model cache and reused by later runs.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use switchboard_embedded::{Engine, EngineOptions, default_model, default_models_dir, pull};

/// The models directory the tests use (`$SWITCHBOARD_MODEL_CACHE`, default
/// `~/.cache/switchboard/models`).
pub fn cache_dir() -> PathBuf {
    default_models_dir().expect("set SWITCHBOARD_MODEL_CACHE or HOME for the model cache")
}

/// Path of the verified default model, pulling it into the cache on first use.
pub fn model_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = cache_dir();
        pull(&default_model(), &dir, &mut |p| {
            eprintln!("model cache: {p:?}")
        })
        .unwrap_or_else(|e| panic!("cannot provide the test model: {e}"))
    })
}

/// Options for tests: one thread, so tests running side by side on a small machine do not
/// starve each other.
pub fn options() -> EngineOptions {
    EngineOptions {
        threads: 1,
        context_tokens: 1024,
        ..EngineOptions::default()
    }
}

/// The default model loaded with `opts`.
pub fn engine(opts: EngineOptions) -> Engine {
    Engine::load(model_path(), opts).unwrap_or_else(|e| panic!("model should load: {e}"))
}

/// A fresh scratch directory for one test, removed when dropped.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Creates a fresh scratch directory for one test.
pub fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!(
        "switchboard-embedded-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    Scratch(dir)
}
