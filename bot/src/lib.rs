//! The switchboard binary as a library: the command line ([`cli`]), the
//! wiring of the front ends ([`wiring`]), and the platform adapters
//! ([`slack`], [`discord`], the terminal's [`console`]). The binary
//! (`src/main.rs`) only parses the arguments and calls [`cli::main`]; the
//! adapters are a library so that they can be tested in-process.

pub mod admin_cli;
pub mod chunks;
pub mod citations;
pub mod cli;
pub mod console;
pub mod discord;
pub mod eval_cli;
pub mod knowledge_cli;
pub mod models;
pub mod prompts_cli;
pub mod slack;
pub mod telemetry;
pub mod tools_cli;
pub mod wiring;
