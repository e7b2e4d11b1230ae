//! Chat sources: a Slack or Discord channel's threads kept as documents, one
//! document per thread (a message with no replies is a thread of one). The
//! adapters read the platform (history backfill, message events) and hand
//! each thread here whole; it is hashed like a file, so a thread that did
//! not change costs a lookup, and one that did is chunked with
//! [`chunk_thread`] (the question carried into every later chunk), embedded
//! and replaced in one transaction. A thread deleted on the platform is
//! deleted here.

use sha2::{Digest, Sha256};

use super::chunk::{ThreadMessage, chunk_thread};
use super::ingest::{embed_chunks, hex};
use super::{Knowledge, KnowledgeError, check_scope};
use crate::store::{ChunkWrite, DocumentWrite, SourceRow};

/// One thread of a chat channel, as the adapter read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadWrite {
    /// Its key in the source: `CHANNEL/ROOT` (the root message's id).
    pub key: String,
    /// What a citation shows: the channel and the start of the question.
    pub title: String,
    /// The platform's link to the thread (a Slack permalink, a Discord
    /// jump link).
    pub link: Option<String>,
    /// The channel, as the platform names it (`C0123`, a Discord id).
    pub channel: String,
    /// `None`: everyone in the source's workspace may read the channel;
    /// otherwise only this audience (`slack:C0123` for a private channel).
    pub audience: Option<String>,
    /// Its messages, oldest first.
    pub messages: Vec<ThreadLine>,
}

/// One message of a [`ThreadWrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadLine {
    /// Who wrote it, as the chunk should read (a display name).
    pub author: String,
    /// What they wrote.
    pub text: String,
    /// When, Unix ms.
    pub at_ms: i64,
}

/// What storing a thread did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadOutcome {
    /// Stored for the first time.
    Added,
    /// Stored again: it changed.
    Changed,
    /// Not touched: it had not changed.
    Unchanged,
    /// It has no text left (every message deleted or empty): deleted.
    Emptied,
}

/// What reading one channel into a chat source did: counted by
/// [`ChannelSync::count`] as each thread is stored, and said by
/// [`ChannelSync::summary`] the same way in chat and on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelSync {
    /// The channel's name.
    pub channel: String,
    /// Threads read (those with something people said).
    pub threads: usize,
    /// Stored for the first time.
    pub added: usize,
    /// Stored again: they changed.
    pub changed: usize,
    /// Not touched.
    pub unchanged: usize,
    /// Gone from the channel, deleted.
    pub removed: usize,
}

impl ChannelSync {
    /// Counts one stored thread.
    pub fn count(&mut self, outcome: ThreadOutcome) {
        self.threads += 1;
        match outcome {
            ThreadOutcome::Added => self.added += 1,
            ThreadOutcome::Changed => self.changed += 1,
            ThreadOutcome::Unchanged | ThreadOutcome::Emptied => self.unchanged += 1,
        }
    }

    /// `#channel: N threads: …`, for a person.
    pub fn summary(&self) -> String {
        format!(
            "#{}: {} threads: {} added, {} changed, {} unchanged, {} removed",
            self.channel, self.threads, self.added, self.changed, self.unchanged, self.removed
        )
    }
}

/// The channels an adapter keeps in a chat source: the configured ones,
/// those synced since, and (after [`Followed::add_stored`]) those the source
/// already holds threads of — synced before a restart or on another replica.
#[derive(Debug, Default)]
pub struct Followed(std::sync::Mutex<std::collections::BTreeSet<String>>);

impl Followed {
    /// Following `channels`.
    pub fn new(channels: &[String]) -> Followed {
        Followed(std::sync::Mutex::new(channels.iter().cloned().collect()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `channel` is followed.
    pub fn contains(&self, channel: &str) -> bool {
        self.lock().contains(channel)
    }

    /// Follows `channel` from now on.
    pub fn insert(&self, channel: &str) {
        self.lock().insert(channel.to_string());
    }

    /// Whether no channel is followed.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Every followed channel, in order.
    pub fn all(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    /// Also follows the channels whose threads `source` holds (keys are
    /// `CHANNEL/ROOT`).
    pub async fn add_stored(
        &self,
        knowledge: &Knowledge,
        source: &str,
    ) -> Result<(), KnowledgeError> {
        let keys = knowledge.thread_hashes(source).await?;
        let mut followed = self.lock();
        for key in keys.keys() {
            if let Some((channel, _)) = key.split_once('/') {
                followed.insert(channel.to_string());
            }
        }
        Ok(())
    }
}

impl Knowledge {
    /// The chat source `name` of `kind` (`slack`, `discord`) for `scope`,
    /// created if it is not there yet. A source of that name with another
    /// kind or scope is an error, never merged into.
    pub async fn chat_source(
        &self,
        name: &str,
        kind: &str,
        scope: &str,
    ) -> Result<SourceRow, KnowledgeError> {
        if !prompts::is_source_name(name) {
            return Err(KnowledgeError::BadName(name.to_string()));
        }
        check_scope(scope).map_err(KnowledgeError::BadScope)?;
        let source = self
            .inner
            .store
            .ensure_knowledge_source(name, kind, scope, &self.inner.embedder.name())
            .await?;
        if source.kind != kind {
            return Err(KnowledgeError::WrongKind {
                name: name.to_string(),
                kind: source.kind,
            });
        }
        if source.scope != scope {
            return Err(KnowledgeError::ScopeMismatch {
                name: name.to_string(),
                stored: source.scope,
                asked: scope.to_string(),
            });
        }
        Ok(source)
    }

    /// The stored threads' keys and content hashes in `source`.
    pub async fn thread_hashes(
        &self,
        source: &str,
    ) -> Result<std::collections::HashMap<String, String>, KnowledgeError> {
        Ok(self.inner.store.knowledge_hashes(source).await?)
    }

    /// Stores `thread` in `source` (made with [`Knowledge::chat_source`]),
    /// unless it is unchanged. When the embedding model is down the chunks
    /// are stored without vectors (lexical search finds them at once, and
    /// `switchboard knowledge sync` embeds them later) and a warning is
    /// logged: a thread is never lost for want of a vector.
    pub async fn put_thread(
        &self,
        source: &str,
        thread: &ThreadWrite,
    ) -> Result<ThreadOutcome, KnowledgeError> {
        let store = &self.inner.store;
        let lines: Vec<&ThreadLine> = thread
            .messages
            .iter()
            .filter(|m| !m.text.trim().is_empty())
            .collect();
        let previous = store.knowledge_hash(source, &thread.key).await?;
        let previous = previous.as_ref();
        if lines.is_empty() {
            if previous.is_none() {
                return Ok(ThreadOutcome::Unchanged);
            }
            store
                .delete_knowledge_documents(source, std::slice::from_ref(&thread.key))
                .await?;
            return Ok(ThreadOutcome::Emptied);
        }
        let hash = thread_hash(thread);
        if previous == Some(&hash) {
            return Ok(ThreadOutcome::Unchanged);
        }
        let embedder = match self.inner.embedder.get().await {
            Ok(e) => Some(e),
            Err(why) => {
                tracing::warn!(source, thread = %thread.key, error = %why,
                    "the embedding model is down; the thread is stored without vectors (lexical search finds it)");
                None
            }
        };
        let messages: Vec<ThreadMessage<'_>> = lines
            .iter()
            .map(|m| ThreadMessage {
                author: &m.author,
                text: &m.text,
            })
            .collect();
        let budget = self.inner.config.chunk_tokens;
        let drafts = match &embedder {
            Some(e) => chunk_thread(&messages, budget, &|t: &str| e.count_tokens(t)),
            None => chunk_thread(&messages, budget, &|t: &str| t.chars().count().div_ceil(4)),
        };
        let mut chunks: Vec<ChunkWrite> = drafts
            .into_iter()
            .map(|d| ChunkWrite {
                heading: String::new(),
                anchor: None,
                body: d.text,
                tokens: d.tokens as i64,
                vector: None,
            })
            .collect();
        if let Some(e) = &embedder
            && let Err(why) = embed_chunks(e, &thread.title, &mut chunks).await
        {
            tracing::warn!(source, thread = %thread.key, error = %why,
                "the embedding model failed; the thread is stored without vectors");
        }
        let doc = DocumentWrite {
            key: thread.key.clone(),
            title: thread.title.clone(),
            link: thread.link.clone(),
            content_hash: hash,
            channel: Some(thread.channel.clone()),
            audience: thread.audience.clone(),
            author: lines.first().map(|m| m.author.clone()),
            at_ms: lines.first().map(|m| m.at_ms),
            chunks,
        };
        store.put_knowledge_document(source, &doc).await?;
        Ok(if previous.is_some() {
            ThreadOutcome::Changed
        } else {
            ThreadOutcome::Added
        })
    }

    /// Deletes threads of `source` by key; a key not stored is no error.
    pub async fn delete_threads(
        &self,
        source: &str,
        keys: &[String],
    ) -> Result<(), KnowledgeError> {
        Ok(self
            .inner
            .store
            .delete_knowledge_documents(source, keys)
            .await?)
    }
}

/// A thread's content hash: everything that a chunk or a citation shows,
/// so that an edit, a rename or a new permission is stored again.
fn thread_hash(thread: &ThreadWrite) -> String {
    let mut h = Sha256::new();
    for part in [
        thread.title.as_str(),
        thread.link.as_deref().unwrap_or_default(),
        thread.audience.as_deref().unwrap_or_default(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for m in &thread.messages {
        h.update(m.author.as_bytes());
        h.update([0]);
        h.update(m.text.as_bytes());
        h.update([0]);
        h.update(m.at_ms.to_le_bytes());
    }
    hex(&h.finalize())
}

/// A citation's title for a thread: `#channel: ` and the start of the
/// question, cut by words at about 60 characters.
pub fn thread_title(channel: &str, question: &str) -> String {
    let flat: String = question.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut title = String::new();
    for word in flat.split(' ') {
        if !title.is_empty() && title.chars().count() + word.chars().count() > 60 {
            title.push('…');
            break;
        }
        if !title.is_empty() {
            title.push(' ');
        }
        title.push_str(word);
    }
    if title.chars().count() > 80 {
        title = title.chars().take(79).collect::<String>() + "…";
    }
    if title.is_empty() {
        format!("#{channel}")
    } else {
        format!("#{channel}: {title}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_is_the_channel_and_the_start_of_the_question() {
        assert_eq!(
            thread_title("ops", "  How do   we\nretry?"),
            "#ops: How do we retry?"
        );
        let long = "word ".repeat(40);
        let t = thread_title("ops", &long);
        assert!(t.ends_with('…') && t.chars().count() < 75, "{t}");
        assert_eq!(thread_title("ops", ""), "#ops");
    }

    #[test]
    fn an_edit_a_new_link_or_a_new_audience_changes_the_hash() {
        let base = ThreadWrite {
            key: "C1/1".into(),
            title: "#ops: q".into(),
            link: Some("https://x/1".into()),
            channel: "C1".into(),
            audience: None,
            messages: vec![ThreadLine {
                author: "Ann".into(),
                text: "q".into(),
                at_ms: 1,
            }],
        };
        let h = thread_hash(&base);
        assert_eq!(h, thread_hash(&base.clone()));
        let mut edited = base.clone();
        edited.messages[0].text = "q!".into();
        let mut private = base.clone();
        private.audience = Some("slack:C1".into());
        let mut moved = base.clone();
        moved.link = Some("https://x/2".into());
        for other in [edited, private, moved] {
            assert_ne!(h, thread_hash(&other));
        }
    }
}
