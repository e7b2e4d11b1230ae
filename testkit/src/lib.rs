//! Stand-ins and throwaway servers shared by Switchboard's tests and
//! benchmarks, one module per thing stood in for. They speak the real wire
//! formats (the documented JSON, SSE events and websocket frames), so that
//! the code under test runs as it does against the real services:
//!
//! - [`standin`]: hosted model APIs, OpenAI Chat Completions
//!   ([`standin::openai`]) and Anthropic Messages ([`standin::anthropic`]);
//! - [`slack`]: the Slack Web API and Socket Mode;
//! - [`discord`]: Discord's REST API and gateway websocket;
//! - [`harness`]: a real gateway on loopback, wired to stand-ins;
//! - [`postgres`]: a fresh database on the test PostgreSQL server;
//! - [`redis`]: the test Redis, or a private `redis-server`.
//!
//! Dev-only: never published, never a dependency of the `switchboard` binary.

#![warn(missing_docs)]

pub mod discord;
pub mod harness;
pub mod postgres;
pub mod redis;
pub mod slack;
pub mod standin;

pub use harness::{Answer, Harness, one_provider, sse_data};
pub use postgres::fresh_postgres;
