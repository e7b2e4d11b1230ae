//! Slack channels as a knowledge source: each thread of a followed channel
//! (a message with no replies is a thread of one) is kept as a document of
//! the source `slack.knowledge_source`, scoped to the workspace.
//!
//! - **ChannelSync** (`switchboard knowledge sync SOURCE`, `/knowledge sync`):
//!   `conversations.history` page by page, and `conversations.replies` for
//!   every message with replies; a 429 waits the `Retry-After` Slack asks
//!   for and the walk resumes from the same cursor. Threads that are gone
//!   from the channel are deleted once the whole history was read.
//! - **Live**: every message event in a followed channel (new, edited,
//!   deleted, a reply) reads its thread again and stores it; a thread that
//!   Slack no longer has is deleted.
//!
//! Permissions: a private channel's (or a DM's) threads carry the audience
//! `slack:CHANNEL`, so only questions asked in that channel see them; a
//! public channel's are visible to the whole workspace and to no other.
//! The bot's own answers are never harvested (a model's words are not the
//! team's knowledge).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway::knowledge::Knowledge;
use gateway::knowledge::{
    ChannelSync, Followed, KnowledgeError, ThreadLine, ThreadWrite, thread_title,
};
use serde_json::Value;

use super::state::{Identity, People};
use super::web::{Web, WebError};

/// The source's kind, as `switchboard knowledge list` shows it.
pub const KIND: &str = "slack";

/// Why a channel could not be read into knowledge.
#[derive(Debug, thiserror::Error)]
pub enum HarvestError {
    /// The Web API failed.
    #[error(transparent)]
    Web(#[from] WebError),
    /// The knowledge store failed.
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
    /// The bot cannot read the channel.
    #[error("Switchboard is not in channel {0}: invite it (`/invite @Switchboard`) and sync again")]
    NotInChannel(String),
}

/// What the harvester knows of a channel.
#[derive(Debug, Clone)]
struct Channel {
    name: String,
    private: bool,
}

/// How long a channel's name and privacy are trusted before they are
/// asked again (a channel made private is harvested as private after this).
const CHANNEL_TTL: Duration = Duration::from_secs(10 * 60);

/// Reads followed channels into the knowledge store.
pub struct Harvest {
    web: Web,
    people: Arc<People>,
    knowledge: Knowledge,
    /// `slack.knowledge_source`.
    source: String,
    /// Channels followed: the configured ones and those synced since.
    followed: Followed,
    channels: Mutex<HashMap<String, (Channel, Instant)>>,
}

impl Harvest {
    /// A harvester into `source`, following `channels`.
    pub(crate) fn new(
        web: Web,
        people: Arc<People>,
        knowledge: Knowledge,
        source: String,
        channels: &[String],
    ) -> Harvest {
        Harvest {
            web,
            people,
            knowledge,
            source,
            followed: Followed::new(channels),
            channels: Mutex::default(),
        }
    }

    /// A harvester for the command line, from `[slack]` and the bot token.
    pub fn for_cli(config: &super::SlackConfig, token: &str, knowledge: &Knowledge) -> Harvest {
        gateway::install_crypto();
        let web = Web::new(&config.api_base, token);
        let people = Arc::new(People::new(web.clone()));
        Harvest::new(
            web,
            people,
            knowledge.clone(),
            config.knowledge_source.clone(),
            &config.knowledge_channels,
        )
    }

    /// The source's name.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Reads every followed channel again (the configured ones and those the
    /// source already holds) in the token's own workspace, as
    /// `switchboard knowledge sync SOURCE` does; `progress` hears of each.
    pub async fn backfill_all(
        &self,
        progress: &mut (dyn FnMut(&ChannelSync) + Send),
    ) -> Result<Vec<ChannelSync>, HarvestError> {
        self.follow_stored().await?;
        let team = self.people.identity().await?.team_id.clone();
        let channels = self.followed.all();
        let mut done = Vec::new();
        for channel in channels {
            let report = self.backfill(&team, &channel).await?;
            progress(&report);
            done.push(report);
        }
        Ok(done)
    }

    /// Whether message events in `channel` are harvested.
    pub fn follows(&self, channel: &str) -> bool {
        self.followed.contains(channel)
    }

    /// Follows the channels whose threads the source already holds (synced
    /// on another replica or before a restart).
    pub async fn follow_stored(&self) -> Result<(), HarvestError> {
        Ok(self
            .followed
            .add_stored(&self.knowledge, &self.source)
            .await?)
    }

    /// Reads the whole history of `channel` in workspace `team` into the
    /// source, and follows the channel from now on.
    pub async fn backfill(&self, team: &str, channel: &str) -> Result<ChannelSync, HarvestError> {
        let facts = self.channel(channel).await?;
        self.knowledge
            .chat_source(&self.source, KIND, &format!("slack/{team}"))
            .await?;
        self.followed.insert(channel);
        let me = self.people.identity().await?.clone();
        let mut report = ChannelSync {
            channel: facts.name.clone(),
            ..ChannelSync::default()
        };
        let mut seen = BTreeSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut params = vec![("channel", channel), ("limit", "200")];
            if let Some(c) = cursor.as_deref() {
                params.push(("cursor", c));
            }
            let page: Value = self
                .web
                .get("conversations.history", &params)
                .await
                .map_err(|e| not_in_channel(e, channel))?;
            for m in messages_of(&page) {
                // A reply broadcast to the channel is read with its thread.
                if m.thread_ts.as_ref().is_some_and(|t| *t != m.ts) {
                    continue;
                }
                let root = m.ts.clone();
                let messages = if m.reply_count > 0 {
                    self.whole_thread(channel, &root).await?
                } else {
                    vec![m]
                };
                seen.insert(key(channel, &root));
                let thread = self.thread(channel, &facts, &root, &messages, &me).await;
                if thread.messages.is_empty() {
                    // Only the bot's own words, or a join: nothing to keep.
                    continue;
                }
                report.count(self.knowledge.put_thread(&self.source, &thread).await?);
            }
            cursor = next_cursor(&page);
            if cursor.is_none() {
                break;
            }
        }
        // The whole history was read: what the source holds of this channel
        // and Slack no longer has is deleted.
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

    /// A message event (its JSON as Slack sent it) in workspace `team`:
    /// when its channel is followed, the thread it belongs to is read again
    /// and stored (or deleted, when Slack has it no more). Failures are
    /// logged: an answer never waits on this.
    pub async fn on_message_event(&self, team: &str, event: &Value) {
        let Some(channel) = event["channel"].as_str() else {
            return;
        };
        if !self.follows(channel) {
            return;
        }
        let (ts, thread) = match event["subtype"].as_str() {
            Some("message_changed") => (
                event["message"]["ts"].as_str(),
                event["message"]["thread_ts"].as_str(),
            ),
            Some("message_deleted") => (
                event["deleted_ts"].as_str(),
                event["previous_message"]["thread_ts"].as_str(),
            ),
            None
            | Some(
                "bot_message" | "file_share" | "thread_broadcast" | "me_message"
                | "message_replied",
            ) => (event["ts"].as_str(), event["thread_ts"].as_str()),
            Some(_) => return,
        };
        let Some(root) = thread.or(ts) else {
            return;
        };
        if let Err(e) = self.refresh(team, channel, root).await {
            tracing::warn!(channel, error = %e, "cannot update a Slack thread in knowledge");
        }
    }

    /// Reads the thread at `root` again and stores it, or deletes it when
    /// Slack has it no more.
    async fn refresh(&self, team: &str, channel: &str, root: &str) -> Result<(), HarvestError> {
        self.knowledge
            .chat_source(&self.source, KIND, &format!("slack/{team}"))
            .await?;
        let messages = match self.whole_thread(channel, root).await {
            Ok(m) => m,
            Err(HarvestError::Web(WebError::Slack { error, .. }))
                if error == "thread_not_found" || error == "message_not_found" =>
            {
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        let facts = self.channel(channel).await?;
        let me = self.people.identity().await?.clone();
        let thread = self.thread(channel, &facts, root, &messages, &me).await;
        let outcome = self.knowledge.put_thread(&self.source, &thread).await?;
        tracing::debug!(channel, root, ?outcome, "Slack thread updated in knowledge");
        Ok(())
    }

    /// Every message of the thread at `root`, following the cursor.
    pub(crate) async fn whole_thread(
        &self,
        channel: &str,
        root: &str,
    ) -> Result<Vec<Msg>, HarvestError> {
        let mut out: Vec<Msg> = Vec::new();
        let mut seen = HashSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut params = vec![("channel", channel), ("ts", root), ("limit", "200")];
            if let Some(c) = cursor.as_deref() {
                params.push(("cursor", c));
            }
            let page: Value = self
                .web
                .get("conversations.replies", &params)
                .await
                .map_err(|e| not_in_channel(e, channel))?;
            // Slack repeats the parent at the top of every page.
            for m in messages_of(&page) {
                if seen.insert(m.ts.clone()) {
                    out.push(m);
                }
            }
            cursor = next_cursor(&page);
            if cursor.is_none() {
                return Ok(out);
            }
        }
    }

    /// The thread as a document: the bot's own messages, tombstones and
    /// joins left out, authors by their display names.
    async fn thread(
        &self,
        channel: &str,
        facts: &Channel,
        root: &str,
        messages: &[Msg],
        me: &Identity,
    ) -> ThreadWrite {
        let mut lines = Vec::new();
        for m in messages {
            let mine = m.user.as_deref().is_some_and(|u| u == me.user_id)
                || m.bot_id
                    .as_deref()
                    .is_some_and(|b| !me.bot_id.is_empty() && b == me.bot_id);
            // What people said: not joins, topic changes or tombstones.
            let said = matches!(
                m.subtype.as_deref(),
                None | Some("bot_message" | "file_share" | "thread_broadcast" | "me_message")
            );
            if mine || !said {
                continue;
            }
            let author = match &m.user {
                Some(u) => match self.people.user(u).await {
                    Ok(user) => user.name,
                    Err(_) => u.clone(),
                },
                None => m.username.clone().unwrap_or_else(|| "a bot".to_string()),
            };
            lines.push(ThreadLine {
                author,
                text: plain(&m.text),
                at_ms: ts_ms(&m.ts),
            });
        }
        let link = if lines.is_empty() {
            None
        } else {
            match self.web.permalink(channel, root).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::debug!(channel, error = %e, "no permalink for a thread");
                    None
                }
            }
        };
        ThreadWrite {
            key: key(channel, root),
            title: thread_title(
                &facts.name,
                lines.first().map(|l| l.text.as_str()).unwrap_or_default(),
            ),
            link,
            channel: channel.to_string(),
            audience: facts.private.then(|| format!("slack:{channel}")),
            messages: lines,
        }
    }

    /// A channel's name and privacy (`conversations.info`, asked once).
    async fn channel(&self, id: &str) -> Result<Channel, HarvestError> {
        if let Some((c, at)) = lock(&self.channels).get(id)
            && at.elapsed() < CHANNEL_TTL
        {
            return Ok(c.clone());
        }
        let info = self
            .web
            .conversation_info(id)
            .await
            .map_err(|e| not_in_channel(e, id))?;
        let f = &info.flags;
        let channel = Channel {
            name: info
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| id.to_string()),
            // Anything but a public channel is private: its members only.
            private: [f.is_private, f.is_im, f.is_mpim, f.is_group].contains(&Some(true))
                || f.is_channel != Some(true),
        };
        lock(&self.channels).insert(id.to_string(), (channel.clone(), Instant::now()));
        Ok(channel)
    }
}

/// One message of a history or replies page, read leniently: a subtype
/// or field slack-morphism does not model never fails a whole page.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub(crate) ts: String,
    thread_ts: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) bot_id: Option<String>,
    username: Option<String>,
    pub(crate) subtype: Option<String>,
    pub(crate) text: String,
    reply_count: u64,
}

/// The messages of a page; ones without a `ts` are left out.
fn messages_of(page: &Value) -> Vec<Msg> {
    let s = |m: &Value, k: &str| m[k].as_str().map(str::to_string);
    page["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            Some(Msg {
                ts: s(m, "ts")?,
                thread_ts: s(m, "thread_ts"),
                user: s(m, "user"),
                bot_id: s(m, "bot_id"),
                username: s(m, "username"),
                subtype: s(m, "subtype"),
                text: s(m, "text").unwrap_or_default(),
                reply_count: m["reply_count"].as_u64().unwrap_or(0),
            })
        })
        .collect()
}

/// A page's `response_metadata.next_cursor`, if there is a next page.
fn next_cursor(page: &Value) -> Option<String> {
    page["response_metadata"]["next_cursor"]
        .as_str()
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

/// A thread's key in the source.
fn key(channel: &str, root: &str) -> String {
    format!("{channel}/{root}")
}

/// `not_in_channel` and `channel_not_found` as the error that says to
/// invite the bot.
fn not_in_channel(e: WebError, channel: &str) -> HarvestError {
    match &e {
        WebError::Slack { error, .. }
            if error == "not_in_channel" || error == "channel_not_found" =>
        {
            HarvestError::NotInChannel(channel.to_string())
        }
        _ => HarvestError::Web(e),
    }
}

/// A Slack `ts` (`1700000000.000100`) as Unix ms.
fn ts_ms(ts: &str) -> i64 {
    let (s, frac) = ts.split_once('.').unwrap_or((ts, ""));
    let s: i64 = s.parse().unwrap_or(0);
    let ms: i64 = frac.get(..3).and_then(|f| f.parse().ok()).unwrap_or(0);
    s * 1000 + ms
}

/// Slack's mrkdwn as plain text: `<url|label>` as `label (url)`, `<url>`
/// as the URL, `<#C1|name>` as `#name`, `<@U1>` kept, and the three
/// escaped characters unescaped.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let inner = &rest[open + 1..open + close];
        let (target, label) = inner.split_once('|').unwrap_or((inner, ""));
        if let Some(channel) = target.strip_prefix('#') {
            out.push('#');
            out.push_str(if label.is_empty() { channel } else { label });
        } else if target.starts_with('@') || target.starts_with('!') {
            out.push('<');
            out.push_str(target);
            out.push('>');
        } else if label.is_empty() {
            out.push_str(target);
        } else {
            out.push_str(&format!("{label} ({target})"));
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrkdwn_reads_as_plain_text() {
        assert_eq!(
            plain(
                "see <https://x.io/a|the runbook> and <https://y.io> in <#C1|ops> &amp; ask <@U1> &lt;now&gt;"
            ),
            "see the runbook (https://x.io/a) and https://y.io in #ops & ask <@U1> <now>"
        );
        assert_eq!(plain("a < b"), "a < b");
    }

    #[test]
    fn a_ts_is_read_to_the_millisecond() {
        assert_eq!(ts_ms("1700000000.123456"), 1_700_000_000_123);
        assert_eq!(ts_ms("17"), 17_000);
    }
}
