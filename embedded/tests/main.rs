//! The embedded crate's integration tests, as one test binary: one link of llama.cpp instead
//! of one per file, and one process in which the model file is fetched and checked once.
//!
//! - `generation`: the engine with the real default model.
//! - `model_files`: missing, damaged and wrong model files, and fetching.

mod common;
mod generation;
mod model_files;
