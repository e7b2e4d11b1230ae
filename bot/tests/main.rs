//! The `switchboard` binary's integration tests, in one binary: each file
//! of this folder is a module of it, so the gateway and the test kit are
//! linked once rather than once per file. Most tests run the built
//! `switchboard` as a child process; the tests themselves run in parallel
//! threads of one process, and none of them changes process-wide state
//! (environment, current directory, a global subscriber); the one rustls
//! crypto provider is installed once (`gateway::install_crypto`).

mod browser;
mod chat;
mod dashboard;
mod discord;
mod durability;
mod eval;
mod knowledge;
mod prompts;
mod serve;
mod slack_serve;
mod telemetry;
mod tools;
