//! The state the parts of the Discord adapter run with. Each part gets a
//! small struct holding exactly the handles it uses (`Intake`,
//! `Delivery`, `Feedback`, `Commands`), filled in once, when the
//! adapter is wired (`super::start`); what several parts share sits here
//! too: what the bot knows of itself and its threads (`Known`), and the
//! error every handler returns ([`HandleError`]). Nothing here imports
//! another part of the adapter, so every part may import it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway::Pipeline;
use gateway::guards::dedupe::{DedupeError, EventDedupe};
use gateway::promptops::admin::Admin;
use gateway::promptops::feedback::FeedbackDoor;
use gateway::registry::Registry;
use gateway::store::{Recorder, Store};
use tokio::time::Instant;

use super::model::Thread;
use super::rest::{Rest, RestError};

/// Why a dispatch could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// A Discord API call failed.
    #[error(transparent)]
    Rest(#[from] RestError),
    /// The dedupe store could not be asked.
    #[error(transparent)]
    Dedupe(#[from] DedupeError),
    /// A poise reply (a command's answer) could not be sent.
    #[error("cannot answer the command: {0} (check discord.api_base and the network)")]
    Reply(#[source] Box<serenity::Error>),
    /// The payload is not the documented shape.
    #[error("{event}: the payload is not the documented shape: {message}")]
    Payload {
        /// The dispatch name.
        event: String,
        /// The parse error.
        message: String,
    },
}

/// The running adapter: every part's state, as poise hands it to the
/// `/prompt` commands and to the dispatch of every other event.
pub struct Discord {
    /// Messages: which are answered, and how.
    pub(crate) intake: Intake,
    /// Votes: buttons and reactions.
    pub(crate) feedback: Feedback,
    /// `/prompt` and its edit form.
    pub(crate) commands: Commands,
    /// The bot's own id and the threads it knows.
    pub(crate) known: Arc<Known>,
    /// Followed channels into knowledge.
    pub(crate) harvest: Arc<super::knowledge::Harvest>,
}

/// What turns messages into answers ([`super::inbound`]).
pub(crate) struct Intake {
    /// Answers questions.
    pub pipeline: Pipeline,
    /// Which messages were taken already (shared by replicas through Redis).
    pub dedupe: Arc<EventDedupe>,
    /// The REST client.
    pub rest: Rest,
    /// The bot's own id and the threads it knows.
    pub known: Arc<Known>,
    /// Where the answers go.
    pub delivery: Delivery,
    /// `discord.answer_in_bot_threads`.
    pub answer_in_bot_threads: bool,
    /// `discord.history`.
    pub history: usize,
    /// `discord.history_chars`.
    pub history_chars: usize,
}

/// What writes answers into channels ([`super::delivery`]).
pub(crate) struct Delivery {
    /// The REST client.
    pub rest: Rest,
    /// Spaces the writes to each channel.
    pub throttle: Throttle,
}

/// What records votes ([`super::feedback`]).
pub(crate) struct Feedback {
    /// Where every vote goes.
    pub door: FeedbackDoor,
    /// Written to before the vote that stands is read.
    pub recorder: Recorder,
    /// Reads the vote that stands, when a reaction is taken back.
    pub store: Store,
    /// The REST client.
    pub rest: Rest,
    /// The bot's own id.
    pub known: Arc<Known>,
}

/// What runs `/prompt` ([`super::commands`], [`super::edit`]).
pub(crate) struct Commands {
    /// The admin command layer (it checks rights).
    pub admin: Admin,
    /// The prompts, for autocomplete and the edit form.
    pub registry: Registry,
    /// The REST client.
    pub rest: Rest,
    /// `/knowledge sync`'s backfill.
    pub harvest: Arc<super::knowledge::Harvest>,
}

/// What the bot has learnt from the gateway: its own user id (`READY`)
/// and the threads it can see (`THREAD_CREATE`, `GUILD_CREATE`).
#[derive(Default)]
pub(crate) struct Known {
    bot_id: Mutex<Option<String>>,
    threads: Mutex<HashMap<String, Thread>>,
}

impl Known {
    /// The bot's own user id, once `READY` has told it.
    pub fn bot_id(&self) -> Option<String> {
        self.bot_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Remembers the bot's own user id (from `READY`).
    pub fn set_bot_id(&self, id: &str) {
        *self.bot_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.to_string());
    }

    /// Remembers a thread, so that the bot knows the threads it started.
    pub fn remember(&self, thread: Thread) {
        self.threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(thread.id.clone(), thread);
    }

    /// The thread with this channel id, if known.
    pub fn thread(&self, channel: &str) -> Option<Thread> {
        self.threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(channel)
            .cloned()
    }
}

/// Spaces writes to each channel at least `interval` apart, across every
/// answer in this process.
pub struct Throttle {
    interval: Duration,
    next: Mutex<HashMap<String, Instant>>,
}

impl Throttle {
    /// A throttle with this interval.
    pub fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            next: Mutex::default(),
        }
    }

    /// Takes the channel's next slot if it is due: `Ok` when the caller may
    /// write now, else `Err(when)` the slot frees up.
    pub fn try_take(&self, channel: &str) -> Result<(), Instant> {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        match next.get(channel) {
            Some(&at) if at > now => Err(at),
            _ => {
                next.insert(channel.to_string(), now + self.interval);
                if next.len() > 10_000 {
                    next.retain(|_, at| *at > now);
                }
                Ok(())
            }
        }
    }

    /// Waits for the channel's next slot and takes it.
    pub async fn take(&self, channel: &str) {
        while let Err(at) = self.try_take(channel) {
            tokio::time::sleep_until(at).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_throttle_spaces_writes_per_channel() {
        let t = Throttle::new(Duration::from_millis(300));
        assert!(t.try_take("a").is_ok());
        assert!(
            t.try_take("a").is_err(),
            "a second write within the interval waits"
        );
        assert!(t.try_take("b").is_ok(), "other channels are not held up");
        tokio::time::sleep(Duration::from_millis(310)).await;
        assert!(t.try_take("a").is_ok());
    }
}
