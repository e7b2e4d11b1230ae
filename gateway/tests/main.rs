//! The gateway's integration tests, in one binary: each file of this folder
//! is a module of it, so the gateway and the test kit are linked once
//! rather than once per file. The tests run in parallel threads of one
//! process; none of them changes process-wide state (environment, current
//! directory, a global subscriber), and the one rustls crypto provider is
//! installed once (`gateway::install_crypto`).

mod api;
mod cache;
mod config;
mod dashboard_store;
mod export;
mod knowledge;
mod limits;
mod local;
mod registry;
mod sdk;
mod store;
mod tools;
