//! The embedded crate's integration tests, as one test binary: one link of llama.cpp instead
//! of one per file, and one process in which the model file is fetched and checked once.
//!
//! - `embedding`: the sentence embedder with the real all-MiniLM-L6-v2.
//! - `generation`: the engine with the real default model.
//! - `model_files`: missing, damaged and wrong model files, and fetching.

mod common;
mod embedding;
mod generation;
mod model_files;
