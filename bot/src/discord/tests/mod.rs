//! In-crate tests of the Discord adapter's rules, on Discord's documented
//! payloads.

mod events;
pub(super) mod inbound;
