//! Prompt-ops: what the people who own the bot's behaviour use to improve
//! it from evidence. Evaluating a candidate prompt version against logged
//! conversations ([`eval`]), exporting datasets ([`export`]) and the one
//! door every vote comes through ([`feedback`]). The admin command layer
//! (`crate::admin`) belongs here too.

pub mod eval;
pub mod export;
pub mod feedback;
