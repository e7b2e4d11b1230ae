//! Implicit feedback: what users do says something about an answer even
//! when they press no button. Three conservative signals are recorded, as
//! feedback rows of their own kinds (score 0, source `implicit`) on the
//! earlier answer:
//!
//! - `asked_again`: the same user asks the same question again in the same
//!   conversation within ten minutes (the same words, ignoring case and
//!   punctuation, or at least 80% of the words shared);
//! - `correction`: the user's next message in the conversation, within ten
//!   minutes, opens by correcting the answer ("no,", "that's wrong",
//!   "that is not right", "incorrect", "actually,", "wrong");
//! - `stopped`: the user stopped the answer before it finished.
//!
//! Only chat conversations (with a user) are tracked, in this process.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use uuid::Uuid;

use crate::domain::Origin;

/// How long an answer stays open to implicit signals.
const WINDOW_MS: i64 = 10 * 60 * 1000;
/// Conversations remembered at most (the oldest are forgotten).
const MAX_TRACKED: usize = 50_000;

/// The last answer in each conversation.
#[derive(Default)]
pub struct Signals {
    last: Mutex<HashMap<String, Last>>,
}

#[derive(Clone)]
struct Last {
    inference: Uuid,
    question: String,
    at_ms: i64,
}

/// A signal about an earlier answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// The answer it is about.
    pub inference: Uuid,
    /// `asked_again` or `correction`.
    pub kind: &'static str,
}

impl Signals {
    /// Looks at a new message; returns a signal about the previous answer
    /// in the same conversation, if the message gives one.
    pub fn on_message(&self, origin: &Origin, text: &str, now_ms: i64) -> Option<Signal> {
        let key = key(origin)?;
        let last = self.last.lock().ok()?.get(&key).cloned()?;
        if now_ms - last.at_ms > WINDOW_MS {
            return None;
        }
        let kind = if same_question(&last.question, text) {
            "asked_again"
        } else if is_correction(text) {
            "correction"
        } else {
            return None;
        };
        Some(Signal {
            inference: last.inference,
            kind,
        })
    }

    /// Remembers the answer given to `question` in this conversation.
    pub fn on_answer(&self, origin: &Origin, question: &str, inference: Uuid, now_ms: i64) {
        let Some(key) = key(origin) else { return };
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.len() >= MAX_TRACKED {
            last.retain(|_, l| now_ms - l.at_ms <= WINDOW_MS);
            if last.len() >= MAX_TRACKED {
                last.clear();
            }
        }
        last.insert(
            key,
            Last {
                inference,
                question: question.to_string(),
                at_ms: now_ms,
            },
        );
    }
}

/// One conversation of one user: platform, workspace, channel, thread, user.
fn key(origin: &Origin) -> Option<String> {
    let user = origin.user.as_ref()?;
    Some(format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{user}",
        origin.platform,
        origin.workspace.as_deref().unwrap_or(""),
        origin.channel.as_deref().unwrap_or(""),
        origin.thread.as_deref().unwrap_or("")
    ))
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The same question: equal words, or ≥ 80% shared (Jaccard) for
/// questions of at least four words.
fn same_question(a: &str, b: &str) -> bool {
    let (wa, wb) = (words(a), words(b));
    if wa.is_empty() || wb.is_empty() {
        return false;
    }
    if wa == wb {
        return true;
    }
    let (sa, sb): (BTreeSet<_>, BTreeSet<_>) = (wa.iter().collect(), wb.iter().collect());
    if sa.len() < 4 || sb.len() < 4 {
        return false;
    }
    let shared = sa.intersection(&sb).count() as f64;
    shared / sa.union(&sb).count() as f64 >= 0.8
}

/// The message opens by saying the answer was wrong.
fn is_correction(text: &str) -> bool {
    let t = text.trim_start().to_lowercase();
    [
        "no,",
        "no.",
        "nope",
        "that's wrong",
        "that’s wrong",
        "that is wrong",
        "that's not right",
        "that is not right",
        "that's incorrect",
        "that is incorrect",
        "incorrect",
        "wrong",
        "actually,",
    ]
    .iter()
    .any(|p| t.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(user: &str, thread: &str) -> Origin {
        Origin {
            platform: "slack".into(),
            workspace: Some("T1".into()),
            channel: Some("C1".into()),
            thread: Some(thread.into()),
            user: Some(crate::domain::User::new("slack", user)),
            private: false,
            label: None,
        }
    }

    #[test]
    fn repeats_and_corrections_in_the_same_conversation_are_signals() {
        let s = Signals::default();
        let id = Uuid::now_v7();
        s.on_answer(&origin("U1", "t1"), "What is our VPN address?", id, 0);
        let again = s.on_message(&origin("U1", "t1"), "what is our vpn address", 1_000);
        assert_eq!(
            again,
            Some(Signal {
                inference: id,
                kind: "asked_again"
            })
        );
        let fix = s.on_message(&origin("U1", "t1"), "No, that's the old one.", 1_000);
        assert_eq!(fix.map(|f| f.kind), Some("correction"));
        // Another user, another thread, a new question, or too late: nothing.
        assert_eq!(
            s.on_message(&origin("U2", "t1"), "What is our VPN address?", 1_000),
            None
        );
        assert_eq!(
            s.on_message(&origin("U1", "t2"), "What is our VPN address?", 1_000),
            None
        );
        assert_eq!(
            s.on_message(&origin("U1", "t1"), "Thanks! And the wiki?", 1_000),
            None
        );
        assert_eq!(
            s.on_message(
                &origin("U1", "t1"),
                "What is our VPN address?",
                WINDOW_MS + 1
            ),
            None
        );
        // "Nothing" is not a correction; "know" is not "no,".
        assert!(!is_correction("Nothing else, thanks") && !is_correction("know what?"));
    }

    #[test]
    fn near_repeats_need_most_words_shared() {
        assert!(same_question(
            "How do I reset my password on the portal",
            "how do i reset my password on the portal please"
        ));
        assert!(!same_question(
            "How do I reset my password",
            "How do I change my avatar"
        ));
        assert!(!same_question("hi", "hi there"));
    }
}
