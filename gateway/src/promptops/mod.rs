//! Prompt-ops: what the people who own the bot's behaviour use to improve
//! it from evidence. Evaluating a candidate prompt version against logged
//! conversations ([`eval`]), exporting datasets ([`export`]) and the one
//! door every vote comes through ([`feedback`]), and the admin command
//! layer that edits, tests, promotes and binds prompts ([`admin`]).

pub mod admin;
pub mod eval;
pub mod export;
pub mod feedback;
