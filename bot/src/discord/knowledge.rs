//! Discord channels as a knowledge source, in the source
//! `discord.knowledge_source` scoped to the server:
//!
//! - a message in a followed channel is a document of its own; a reply
//!   opens with the line it replies to, so that question and answer stay
//!   one unit;
//! - a public thread under a followed channel is one document, opened by
//!   the message it was started from (its key is that message's, so the
//!   message is not kept twice); private threads are never read (their
//!   members are not the channel's).
//!
//! **ChannelSync** (`/knowledge sync`, `switchboard knowledge sync SOURCE`):
//! the channel's history 100 messages at a time (`before=`), its active
//! threads and its archived public threads; a 429 is waited out and the
//! walk goes on. What the source holds of the channel and Discord no longer
//! has is deleted at the end. **Live**: `MESSAGE_CREATE`, `MESSAGE_UPDATE`
//! and `MESSAGE_DELETE` in a followed channel or one of its threads read
//! that document again (or delete it).
//!
//! Permissions: a channel that `@everyone` cannot view (the server's base
//! permissions with the channel's overwrite for `@everyone`) is private: its
//! documents carry the audience `discord:CHANNEL`, so only questions asked
//! in that channel (or its threads) see them. The bot's own messages are
//! never kept.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway::knowledge::{
    ChannelSync, Followed, Knowledge, KnowledgeError, ThreadLine, ThreadWrite, thread_title,
};
use serde_json::Value;

use super::rest::{Rest, RestError};
use super::state::Known;

/// The source's kind.
pub const KIND: &str = "discord";
/// `VIEW_CHANNEL`.
const VIEW_CHANNEL: u64 = 1 << 10;
/// How long a channel's facts are trusted before they are read again.
const CHANNEL_TTL: Duration = Duration::from_secs(10 * 60);
/// The most history pages one backfill reads (100 messages each).
const MAX_PAGES: usize = 10_000;

/// Why a channel could not be read into knowledge.
#[derive(Debug, thiserror::Error)]
pub enum HarvestError {
    /// The REST API failed.
    #[error(transparent)]
    Rest(#[from] RestError),
    /// The knowledge store failed.
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
    /// Not a channel of a server.
    #[error("channel {0} is not a server's text channel: knowledge is read from server channels")]
    NotGuildChannel(String),
}

/// What the harvester knows of a channel.
#[derive(Debug, Clone)]
struct Facts {
    name: String,
    guild: String,
    /// Threads: the channel they hang from.
    parent: Option<String>,
    /// 12: a private thread.
    kind: u64,
    private: bool,
}

/// Reads followed channels into the knowledge store.
pub struct Harvest {
    rest: Rest,
    known: Arc<Known>,
    knowledge: Knowledge,
    source: String,
    followed: Followed,
    channels: Mutex<HashMap<String, (Facts, Instant)>>,
}

impl Harvest {
    /// A harvester into `source`, following `channels`.
    pub(crate) fn new(
        rest: Rest,
        known: Arc<Known>,
        knowledge: Knowledge,
        source: String,
        channels: &[String],
    ) -> Harvest {
        Harvest {
            rest,
            known,
            knowledge,
            source,
            followed: Followed::new(channels),
            channels: Mutex::default(),
        }
    }

    /// A harvester for the command line, from `[discord]` (the bot's own
    /// id asked of Discord, so that its messages are left out).
    pub async fn for_cli(
        config: &super::DiscordConfig,
        knowledge: &Knowledge,
    ) -> Result<Harvest, HarvestError> {
        let rest = Rest::new(Arc::new(Rest::http_client(config)), config);
        let known = Arc::new(Known::default());
        known.set_bot_id(&rest.own_id().await?);
        Ok(Harvest::new(
            rest,
            known,
            knowledge.clone(),
            config.knowledge_source.clone(),
            &config.knowledge_channels,
        ))
    }

    /// The source's name.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Follows the channels the source already holds documents of.
    pub async fn follow_stored(&self) -> Result<(), HarvestError> {
        Ok(self
            .followed
            .add_stored(&self.knowledge, &self.source)
            .await?)
    }

    /// Reads every followed channel again.
    pub async fn backfill_all(
        &self,
        progress: &mut (dyn FnMut(&ChannelSync) + Send),
    ) -> Result<Vec<ChannelSync>, HarvestError> {
        self.follow_stored().await?;
        let channels = self.followed.all();
        let mut done = Vec::new();
        for channel in channels {
            let report = self.backfill(&channel).await?;
            progress(&report);
            done.push(report);
        }
        Ok(done)
    }

    /// Reads the whole of `channel` (its history and public threads) into
    /// the source, and follows it from now on.
    pub async fn backfill(&self, channel: &str) -> Result<ChannelSync, HarvestError> {
        let facts = self.facts(channel).await?;
        if facts.parent.is_some() {
            return Err(HarvestError::NotGuildChannel(channel.to_string()));
        }
        self.knowledge
            .chat_source(&self.source, KIND, &format!("discord/{}", facts.guild))
            .await?;
        self.followed.insert(channel);
        let mut report = ChannelSync {
            channel: facts.name.clone(),
            ..ChannelSync::default()
        };
        let mut seen = BTreeSet::new();
        // Threads first: their starter messages are read with them.
        let mut threads: Vec<Value> = Vec::new();
        let active = self.rest.active_threads(&facts.guild).await?;
        threads.extend(
            active["threads"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["parent_id"] == channel)
                .cloned(),
        );
        let mut before: Option<String> = None;
        loop {
            let page = self
                .rest
                .archived_threads(channel, before.as_deref())
                .await?;
            let list = page["threads"].as_array().cloned().unwrap_or_default();
            before = list
                .last()
                .and_then(|t| t["thread_metadata"]["archive_timestamp"].as_str())
                .map(str::to_string);
            threads.extend(list);
            if page["has_more"] != true || before.is_none() {
                break;
            }
        }
        let mut starters = HashSet::new();
        for thread in &threads {
            let Some(id) = thread["id"].as_str() else {
                continue;
            };
            // Private threads belong to their members only.
            if thread["type"].as_u64() == Some(12) || !seen.insert(key(channel, id)) {
                continue;
            }
            starters.insert(id.to_string());
            let doc = self.thread_doc(channel, &facts, id).await?;
            self.count(&mut report, &doc).await?;
        }
        let mut before: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self.rest.history_page(channel, before.as_deref()).await?;
            let Some(oldest) = page.last().and_then(|m| m["id"].as_str()) else {
                break;
            };
            before = Some(oldest.to_string());
            for m in &page {
                let Some(id) = m["id"].as_str() else { continue };
                if starters.contains(id) || !seen.insert(key(channel, id)) {
                    continue;
                }
                let doc = self.message_doc(channel, &facts, m).await;
                self.count(&mut report, &doc).await?;
            }
            if page.len() < 100 {
                break;
            }
        }
        let prefix = format!("{channel}/");
        let gone: Vec<String> = self
            .knowledge
            .thread_hashes(&self.source)
            .await?
            .into_keys()
            .filter(|k| k.starts_with(&prefix) && !seen.contains(k))
            .collect();
        report.removed = gone.len();
        self.knowledge.delete_threads(&self.source, &gone).await?;
        Ok(report)
    }

    /// Stores one document of a backfill and counts what it did.
    async fn count(&self, report: &mut ChannelSync, doc: &ThreadWrite) -> Result<(), HarvestError> {
        if doc.messages.is_empty() {
            return Ok(());
        }
        report.count(self.knowledge.put_thread(&self.source, doc).await?);
        Ok(())
    }

    /// `MESSAGE_CREATE` or `MESSAGE_UPDATE` (the event's JSON): the
    /// document it belongs to is read again. Failures are logged.
    pub async fn on_message(&self, event: &Value) {
        let (Some(channel), Some(id)) = (event["channel_id"].as_str(), event["id"].as_str()) else {
            return;
        };
        if let Err(e) = self.refresh(channel, id).await {
            tracing::warn!(channel, error = %e, "cannot update a Discord message in knowledge");
        }
    }

    /// `MESSAGE_DELETE`: the message's document is read again, or deleted.
    pub async fn on_delete(&self, channel: &str, id: &str) {
        if let Err(e) = self.refresh(channel, id).await {
            tracing::warn!(channel, error = %e, "cannot delete a Discord message from knowledge");
        }
    }

    /// Reads again the document that message `id` in `channel` (a followed
    /// channel, or a thread under one) belongs to.
    async fn refresh(&self, channel: &str, id: &str) -> Result<(), HarvestError> {
        // Threads the adapter already knows save a REST call; others are
        // asked for only when their channel could be followed at all.
        let (followed, thread) = if self.follows(channel) {
            (channel.to_string(), None)
        } else {
            let parent = match self.known.thread(channel) {
                Some(t) => t.parent_id,
                None if self.followed.is_empty() => return Ok(()),
                None => self.facts(channel).await?.parent,
            };
            match parent {
                Some(p) if self.follows(&p) => (p, Some(channel.to_string())),
                _ => return Ok(()),
            }
        };
        let facts = self.facts(&followed).await?;
        self.knowledge
            .chat_source(&self.source, KIND, &format!("discord/{}", facts.guild))
            .await?;
        let doc = match thread {
            Some(t) => {
                if self.facts(&t).await?.kind == 12 {
                    return Ok(());
                }
                self.thread_doc(&followed, &facts, &t).await?
            }
            None => match self.rest.channel(id).await {
                // A message that started a thread stands for the thread.
                Ok(t) if t["parent_id"] == followed.as_str() && t["type"] != 12 => {
                    self.thread_doc(&followed, &facts, id).await?
                }
                _ => match self.rest.message_json(&followed, id).await {
                    Ok(Some(m)) => self.message_doc(&followed, &facts, &m).await,
                    Ok(None) => self.empty(&followed, id),
                    Err(e) => return Err(e.into()),
                },
            },
        };
        let outcome = self.knowledge.put_thread(&self.source, &doc).await?;
        tracing::debug!(
            channel,
            id,
            ?outcome,
            "Discord message updated in knowledge"
        );
        Ok(())
    }

    /// Whether `channel` is followed.
    pub fn follows(&self, channel: &str) -> bool {
        self.followed.contains(channel)
    }

    /// A document with nothing left: storing it deletes what was there.
    fn empty(&self, channel: &str, id: &str) -> ThreadWrite {
        ThreadWrite {
            key: key(channel, id),
            title: String::new(),
            link: None,
            channel: channel.to_string(),
            audience: None,
            messages: Vec::new(),
        }
    }

    /// One message of the channel as its own document (a reply opens with
    /// the line it answers).
    async fn message_doc(&self, channel: &str, facts: &Facts, m: &Value) -> ThreadWrite {
        let id = m["id"].as_str().unwrap_or_default();
        let mut lines = Vec::new();
        if m["type"] == 19 {
            let parent = match m.get("referenced_message").filter(|r| r.is_object()) {
                Some(r) => Some(r.clone()),
                None => match m["message_reference"]["message_id"].as_str() {
                    Some(pid) => self.rest.message_json(channel, pid).await.ok().flatten(),
                    None => None,
                },
            };
            if let Some(line) = parent.as_ref().and_then(|p| self.line(p)) {
                lines.push(line);
            }
        }
        let own = self.line(m);
        let has_own = own.is_some();
        lines.extend(own);
        if !has_own {
            lines.clear();
        }
        self.doc(
            channel,
            facts,
            id,
            lines,
            format!(
                "https://discord.com/channels/{}/{channel}/{id}",
                facts.guild
            ),
        )
    }

    /// A thread (the message it started from, then its messages, oldest
    /// first) as one document.
    async fn thread_doc(
        &self,
        channel: &str,
        facts: &Facts,
        thread: &str,
    ) -> Result<ThreadWrite, HarvestError> {
        let mut lines = Vec::new();
        if let Some(starter) = self.rest.message_json(channel, thread).await? {
            lines.extend(self.line(&starter));
        }
        let mut messages: Vec<Value> = Vec::new();
        let mut before: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self.rest.history_page(thread, before.as_deref()).await?;
            let Some(oldest) = page.last().and_then(|m| m["id"].as_str()) else {
                break;
            };
            before = Some(oldest.to_string());
            let full = page.len() == 100;
            messages.extend(page);
            if !full {
                break;
            }
        }
        messages.reverse();
        lines.extend(messages.iter().filter_map(|m| self.line(m)));
        Ok(self.doc(
            channel,
            facts,
            thread,
            lines,
            format!("https://discord.com/channels/{}/{thread}", facts.guild),
        ))
    }

    fn doc(
        &self,
        channel: &str,
        facts: &Facts,
        id: &str,
        lines: Vec<ThreadLine>,
        link: String,
    ) -> ThreadWrite {
        ThreadWrite {
            key: key(channel, id),
            title: thread_title(
                &facts.name,
                lines.first().map(|l| l.text.as_str()).unwrap_or_default(),
            ),
            link: (!lines.is_empty()).then_some(link),
            channel: channel.to_string(),
            audience: facts.private.then(|| format!("discord:{channel}")),
            messages: lines,
        }
    }

    /// A message as a line: what people wrote (default messages and
    /// replies), never the bot's own.
    fn line(&self, m: &Value) -> Option<ThreadLine> {
        if !matches!(m["type"].as_u64(), Some(0 | 19)) {
            return None;
        }
        let author = &m["author"];
        if self.known.bot_id().as_deref() == author["id"].as_str() {
            return None;
        }
        let name = m["member"]["nick"]
            .as_str()
            .or(author["global_name"].as_str())
            .or(author["username"].as_str())
            .unwrap_or("someone");
        let text = m["content"].as_str().unwrap_or_default().trim();
        if text.is_empty() {
            return None;
        }
        Some(ThreadLine {
            author: name.to_string(),
            text: text.to_string(),
            at_ms: snowflake_ms(m["id"].as_str().unwrap_or_default()),
        })
    }

    /// A channel's name, server, parent and privacy (read once per
    /// [`CHANNEL_TTL`]).
    async fn facts(&self, id: &str) -> Result<Facts, HarvestError> {
        if let Some((f, at)) = lock(&self.channels).get(id)
            && at.elapsed() < CHANNEL_TTL
        {
            return Ok(f.clone());
        }
        let c = self.rest.channel(id).await?;
        let Some(guild) = c["guild_id"].as_str().map(str::to_string) else {
            return Err(HarvestError::NotGuildChannel(id.to_string()));
        };
        let roles = self.rest.guild_roles(&guild).await?;
        let base = roles
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["id"] == guild.as_str())
            .and_then(|r| r["permissions"].as_str())
            .and_then(|p| p.parse::<u64>().ok())
            .unwrap_or(0);
        let facts = Facts {
            name: c["name"].as_str().unwrap_or(id).to_string(),
            parent: c["parent_id"]
                .as_str()
                .filter(|_| matches!(c["type"].as_u64(), Some(10..=12)))
                .map(str::to_string),
            kind: c["type"].as_u64().unwrap_or(0),
            private: !everyone_sees(base, &c["permission_overwrites"], &guild),
            guild,
        };
        lock(&self.channels).insert(id.to_string(), (facts.clone(), Instant::now()));
        Ok(facts)
    }
}

/// Whether `@everyone` (role id = the guild's id) may view a channel: the
/// server's base permissions with the channel's overwrite for it.
fn everyone_sees(base: u64, overwrites: &Value, guild: &str) -> bool {
    let mut allowed = base & VIEW_CHANNEL != 0;
    for o in overwrites.as_array().into_iter().flatten() {
        if o["id"] == guild && o["type"].as_u64() == Some(0) {
            let bits = |k: &str| {
                o[k].as_str()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if bits("deny") & VIEW_CHANNEL != 0 {
                allowed = false;
            }
            if bits("allow") & VIEW_CHANNEL != 0 {
                allowed = true;
            }
        }
    }
    allowed
}

fn key(channel: &str, id: &str) -> String {
    format!("{channel}/{id}")
}

/// When a snowflake was made, Unix ms (its top 42 bits count from the
/// Discord epoch, 2015-01-01); 0 for what is not one.
fn snowflake_ms(id: &str) -> i64 {
    id.parse::<u64>()
        .map_or(0, |v| ((v >> 22) + 1_420_070_400_000) as i64)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn everyone_sees_a_channel_unless_its_overwrite_or_the_base_says_otherwise() {
        let g = "1";
        let view = VIEW_CHANNEL.to_string();
        assert!(everyone_sees(VIEW_CHANNEL, &json!([]), g));
        assert!(!everyone_sees(
            VIEW_CHANNEL,
            &json!([{"id": g, "type": 0, "allow": "0", "deny": view}]),
            g
        ));
        assert!(everyone_sees(
            0,
            &json!([{"id": g, "type": 0, "allow": view, "deny": "0"}]),
            g
        ));
        assert!(!everyone_sees(0, &json!([]), g));
        assert_eq!(snowflake_ms("175928847299117063"), 1_462_015_105_796);
        // Another role's overwrite says nothing about @everyone.
        assert!(everyone_sees(
            VIEW_CHANNEL,
            &json!([{"id": "2", "type": 0, "allow": "0", "deny": view}]),
            g
        ));
    }
}
