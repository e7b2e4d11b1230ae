//! The state the parts of the Slack adapter run with. Each part gets a
//! small struct holding exactly the handles it uses (`Intake`,
//! `Delivery`, `Feedback`, `Commands`), filled in once, when the
//! adapter is wired ([`Slack::new`]); the caches several parts share sit
//! here too: who the bot and the users are (`People`) and which message
//! answers which inference (`Answers`). Nothing here imports another
//! part of the adapter, so every part may import it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway::Pipeline;
use gateway::guards::dedupe::EventDedupe;
use gateway::promptops::admin::{Actor, Admin};
use gateway::promptops::feedback::FeedbackDoor;
use gateway::registry::Registry;
use slack_morphism::SlackUserId;
use slack_morphism::api::SlackApiUsersInfoRequest;
use slack_morphism::events::SlackEventCallbackBody;
use tokio::sync::{OnceCell, mpsc};
use uuid::Uuid;

use super::web::{Web, WebError};

/// How long a user's name and admin flag are trusted before asking again.
const USER_TTL: Duration = Duration::from_secs(5 * 60);

/// The running adapter. Cheap to clone.
#[derive(Clone)]
pub struct Slack {
    pub(crate) parts: Arc<Parts>,
}

/// Every part's state, as the transports (HTTP routes, Socket Mode, the
/// event workers) hand payloads to the parts.
pub(crate) struct Parts {
    /// Checks HTTP requests.
    pub signing: Signing,
    /// Events: mentions, DMs, thread replies.
    pub intake: Intake,
    /// Votes and comments.
    pub feedback: Feedback,
    /// `/prompt` and its edit form (shared with commands still running).
    pub commands: Arc<Commands>,
    /// The Socket Mode connection, when used.
    pub socket: Socket,
}

/// What verifies an HTTP request from Slack.
pub(crate) struct Signing {
    /// The app's signing secret; empty when only Socket Mode is set up.
    pub secret: String,
    /// Unix seconds now.
    pub clock: fn() -> i64,
}

/// What the Socket Mode connection needs.
pub(crate) struct Socket {
    /// The Web API client, for `apps.connections.open`.
    pub web: Web,
    /// A connection silent for this long is opened again.
    pub watchdog: Duration,
    /// The app-level token (`xapp-…`) when Socket Mode is used.
    pub app_token: Mutex<Option<String>>,
}

/// One queued event callback.
pub(crate) struct Job {
    /// The workspace (`team_id`).
    pub team: String,
    /// The inner event, as slack-morphism reads it.
    pub event: SlackEventCallbackBody,
    /// The inner event as it arrived.
    pub raw: serde_json::Value,
}

/// What turns events into answers ([`super::inbound`]).
pub(crate) struct Intake {
    /// Answers questions.
    pub pipeline: Pipeline,
    /// Which events were taken already (shared by replicas through Redis).
    pub dedupe: Arc<EventDedupe>,
    /// Taken events, waiting for a worker.
    pub queue: mpsc::Sender<Job>,
    /// The Web API client.
    pub web: Web,
    /// The bot's and users' identities.
    pub people: Arc<People>,
    /// Where the answers go.
    pub delivery: Delivery,
    /// `slack.reply_to_bots`.
    pub reply_to_bots: bool,
    /// `slack.thinking_status`.
    pub thinking_status: String,
    /// `slack.history_messages`.
    pub history_messages: usize,
    /// `slack.history_chars`.
    pub history_chars: usize,
    /// Followed channels' threads into knowledge.
    pub harvest: Arc<super::knowledge::Harvest>,
    /// The assistant threads this replica saw start.
    pub assistant: Arc<super::assistant::AssistantThreads>,
    /// How the message shortcuts answer.
    pub shortcuts: ShortcutSettings,
}

/// `[slack] shortcut_reply` and `shortcut_chars`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShortcutSettings {
    /// In the thread, or to the asker only.
    pub reply: super::config::ShortcutReply,
    /// The most characters of a thread given to the model.
    pub chars: usize,
}

/// What writes answers into threads ([`super::delivery`]).
pub(crate) struct Delivery {
    /// The Web API client.
    pub web: Web,
    /// The shared `chat.update` budget.
    pub budget: Budget,
    /// Which messages answer which inference.
    pub answers: Arc<Answers>,
    /// Workspaces where `chat.startStream` is not available.
    pub no_streaming: Mutex<HashSet<String>>,
}

impl Delivery {
    /// Whether answers in workspace `team` try Slack's chat streaming.
    pub fn streams_in(&self, team: &str) -> bool {
        !self
            .no_streaming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(team)
    }

    /// Remembers that workspace `team` cannot use chat streaming.
    pub fn no_streaming(&self, team: &str) {
        self.no_streaming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(team.to_string());
    }
}

/// What records votes and comments ([`super::feedback`]).
pub(crate) struct Feedback {
    /// Where every vote goes.
    pub door: FeedbackDoor,
    /// The Web API client.
    pub web: Web,
    /// The bot's identity.
    pub people: Arc<People>,
    /// Which messages answer which inference.
    pub answers: Arc<Answers>,
}

/// What runs `/prompt` ([`super::commands`], [`super::edit`]).
pub(crate) struct Commands {
    /// The admin command layer (it checks rights).
    pub admin: Admin,
    /// The prompts, for the edit form.
    pub registry: Registry,
    /// The Web API client.
    pub web: Web,
    /// The callers' names and admin flags.
    pub people: Arc<People>,
    /// How long a command may take before it is answered through
    /// `response_url` (`slack.command_inline_ms`).
    pub inline: Duration,
    /// `/knowledge sync`'s backfill.
    pub harvest: Arc<super::knowledge::Harvest>,
}

/// The bot's own identity, from `auth.test`.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The bot user (`U…`).
    pub user_id: String,
    /// The workspace the token belongs to (`T…`).
    pub team_id: String,
    /// The bot id (`B…`).
    pub bot_id: String,
}

/// What the adapter knows of a user, from `users.info`.
#[derive(Debug, Clone, Default)]
pub struct User {
    /// The display name.
    pub name: String,
    /// Workspace admin or owner (never a guest or a stranger from another
    /// organization).
    pub admin: bool,
    /// The workspace the user belongs to (`users.info` `team_id`), and for
    /// Enterprise Grid users every workspace of theirs.
    pub teams: Vec<String>,
}

/// Who is who: the bot's identity (`auth.test`, asked once) and users'
/// names and admin flags (`users.info`, kept for [`USER_TTL`]).
pub(crate) struct People {
    web: Web,
    identity: OnceCell<Identity>,
    /// `users.info` answers, with when they were read.
    users: Mutex<HashMap<String, (User, Instant)>>,
}

impl People {
    /// Asks Slack through `web`.
    pub fn new(web: Web) -> People {
        People {
            web,
            identity: OnceCell::new(),
            users: Mutex::default(),
        }
    }

    /// The bot's own identity (`auth.test`, asked once).
    pub async fn identity(&self) -> Result<&Identity, WebError> {
        self.identity
            .get_or_try_init(|| async {
                let me = self.web.auth_test().await?;
                Ok(Identity {
                    user_id: me.user_id.0,
                    team_id: me.team_id.0,
                    bot_id: me.bot_id.map(|b| b.0).unwrap_or_default(),
                })
            })
            .await
    }

    /// A user's name and admin flag (`users.info`, kept for
    /// [`USER_TTL`], so that a change of admins takes effect soon).
    pub async fn user(&self, id: &str) -> Result<User, WebError> {
        if let Some((u, at)) = self.lock_users().get(id)
            && at.elapsed() < USER_TTL
        {
            return Ok(u.clone());
        }
        let request = SlackApiUsersInfoRequest::new(SlackUserId(id.to_string()));
        let u = self.web.users_info(&request).await?.user;
        let display = u.profile.as_ref().and_then(|p| p.display_name.clone());
        let name = [display, u.real_name.clone(), u.name.clone()]
            .into_iter()
            .flatten()
            .find(|n| !n.is_empty())
            .unwrap_or_else(|| id.to_string());
        let flags = &u.flags;
        // A guest, or a user of another organization seen through a shared
        // (Slack Connect) channel, carries no admin rights here.
        let outsider = [
            flags.is_stranger,
            flags.is_restricted,
            flags.is_ultra_restricted,
        ]
        .contains(&Some(true));
        let mut teams: Vec<String> = u.team_id.iter().map(|t| t.0.clone()).collect();
        if let Some(enterprise) = &u.enterprise_user {
            teams.extend(enterprise.teams.iter().flatten().map(|t| t.0.clone()));
        }
        let user = User {
            name,
            admin: !outsider
                && [flags.is_admin, flags.is_owner, flags.is_primary_owner].contains(&Some(true)),
            teams,
        };
        let mut users = self.lock_users();
        if users.len() > 50_000 {
            users.clear();
        }
        users.insert(id.to_string(), (user.clone(), Instant::now()));
        Ok(user)
    }

    /// The caller as the admin layer sees them, in the workspace `team`
    /// the request came from. Their admin flag counts only when they
    /// belong to that workspace: an admin of another organization in a
    /// shared channel is a member here.
    pub async fn actor(&self, user: &str, team: &str) -> Actor {
        let (name, admin) = match self.user(user).await {
            Ok(u) => {
                let member_here = u.teams.is_empty() || u.teams.iter().any(|t| t == team);
                (u.name, u.admin && member_here)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the caller's profile (users.info); treating them as a member");
                (user.to_string(), false)
            }
        };
        Actor {
            id: format!("slack:{user}"),
            name,
            roles: if admin {
                vec!["slack:admin".into()]
            } else {
                Vec::new()
            },
            platform_admin: admin,
            workspace: Some(format!("slack/{team}")),
        }
    }

    fn lock_users(&self) -> std::sync::MutexGuard<'_, HashMap<String, (User, Instant)>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Which bot messages answer which inference (`channel:ts`), for the
/// messages this process sent.
#[derive(Default)]
pub(crate) struct Answers {
    map: Mutex<HashMap<String, Uuid>>,
}

impl Answers {
    /// Remembers which inference a bot message answers.
    pub fn remember(&self, channel: &str, ts: &str, id: Uuid) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.clear();
        }
        map.insert(format!("{channel}:{ts}"), id);
    }

    /// The inference a bot message answers, if this process sent it.
    pub fn of(&self, channel: &str, ts: &str) -> Option<Uuid> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&format!("{channel}:{ts}")).copied()
    }
}

/// A shared `chat.update` budget: one edit per `interval` per workspace.
pub struct Budget {
    interval: Duration,
    next: Mutex<HashMap<String, Instant>>,
}

impl Budget {
    /// One edit per `interval` in each workspace.
    pub fn new(interval: Duration) -> Budget {
        Budget {
            interval,
            next: Mutex::default(),
        }
    }

    /// Takes a slot now if one is free (for edits that may be skipped).
    pub fn try_take(&self, team: &str) -> bool {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let slot = next.entry(team.to_string()).or_insert(now);
        if *slot <= now {
            *slot = now + self.interval;
            true
        } else {
            false
        }
    }

    /// Reserves the next slot and says how long to wait for it (for
    /// edits that must happen).
    pub fn reserve(&self, team: &str) -> Duration {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let slot = next.entry(team.to_string()).or_insert(now);
        let at = (*slot).max(now);
        *slot = at + self.interval;
        at - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_shared_within_a_workspace_only() {
        let budget = Budget::new(Duration::from_secs(60));
        assert!(budget.try_take("T1"));
        assert!(
            !budget.try_take("T1"),
            "a second edit in the same workspace waits"
        );
        assert!(
            budget.try_take("T2"),
            "another workspace has its own budget"
        );
        let wait = budget.reserve("T1");
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        let later = budget.reserve("T1");
        assert!(later > wait + Duration::from_secs(50), "{later:?}");
    }
}
