//! Slack's assistant threads (the "Agents & AI Apps" split view): when a
//! user opens one (`assistant_thread_started`) the bot greets them and sets
//! the suggested prompts of the prompt version bound there (its
//! `[assistant]` table, so they are versioned like the template); when the
//! user looks at another channel (`assistant_thread_context_changed`) that
//! channel selects the binding and retrieval's scope for the thread's
//! answers. Only these threads get a status while an answer is written,
//! and a title after their first answer.
//!
//! The threads are known to the replica that saw them start (a few
//! thousand at most are kept); an answer in a thread this replica never saw
//! start is answered as any direct-message thread.

use std::collections::HashMap;
use std::sync::Mutex;

use gateway::domain::Origin;
use slack_morphism::api::{
    SlackApiAssistantThreadSetTitleRequest, SlackApiAssistantThreadsSetSuggestedPromptsRequest,
};
use slack_morphism::prelude::{
    SlackAssistantPrompt, SlackAssistantThread, SlackAssistantThreadContextChangedEvent,
    SlackAssistantThreadStartedEvent,
};

use super::state::Intake;
use super::web;

/// The most assistant threads remembered; past it the oldest half go.
const MAX_THREADS: usize = 10_000;

/// The greeting when the prompt version sets none.
const GREETING: &str = "Hi! Ask me anything, or pick a suggestion below.";

/// The longest thread title, in characters.
const TITLE_CHARS: usize = 60;

#[derive(Debug, Clone, Default)]
struct Thread {
    /// The channel the user is looking at, when Slack said.
    context: Option<String>,
    /// Whether the thread got its title.
    titled: bool,
    /// When it was seen, for trimming.
    order: u64,
}

/// The threads, by (channel, thread ts), and a counter that orders them.
#[derive(Default)]
struct Known {
    counter: u64,
    by_place: HashMap<(String, String), Thread>,
}

/// The assistant threads this replica knows.
#[derive(Default)]
pub(crate) struct AssistantThreads {
    threads: Mutex<Known>,
}

impl AssistantThreads {
    fn upsert(&self, channel: &str, thread: &str, context: Option<String>) {
        let mut guard = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        let Known {
            counter,
            by_place: map,
        } = &mut *guard;
        *counter += 1;
        let order = *counter;
        if map.len() >= MAX_THREADS {
            let mut orders: Vec<u64> = map.values().map(|t| t.order).collect();
            orders.sort_unstable();
            let cut = orders[orders.len() / 2];
            map.retain(|_, t| t.order > cut);
        }
        let entry = map
            .entry((channel.to_string(), thread.to_string()))
            .or_default();
        entry.order = order;
        if context.is_some() {
            entry.context = context;
        }
    }

    /// The context channel of an assistant thread: `None` for a thread
    /// that is not one, `Some(None)` when Slack named no channel.
    pub(crate) fn context(&self, channel: &str, thread: &str) -> Option<Option<String>> {
        let guard = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .by_place
            .get(&(channel.to_string(), thread.to_string()))
            .map(|t| t.context.clone())
    }

    /// Whether the thread still needs its title (and marks it titled).
    fn take_untitled(&self, channel: &str, thread: &str) -> bool {
        let mut guard = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        match guard
            .by_place
            .get_mut(&(channel.to_string(), thread.to_string()))
        {
            Some(t) if !t.titled => {
                t.titled = true;
                true
            }
            _ => false,
        }
    }
}

fn context_of(thread: &SlackAssistantThread) -> Option<String> {
    thread.context.channel_id.as_ref().map(|c| c.0.clone())
}

/// `assistant_thread_started`: remembered, greeted, and given the bound
/// prompt version's suggestions.
pub(crate) async fn on_started(
    intake: &Intake,
    team: &str,
    event: SlackAssistantThreadStartedEvent,
) {
    let thread = &event.assistant_thread;
    let (channel, ts) = (thread.channel_id.0.as_str(), thread.thread_ts.0.as_str());
    let context = context_of(thread);
    intake.assistant.upsert(channel, ts, context.clone());
    let origin = Origin {
        platform: "slack".into(),
        workspace: Some(team.to_string()),
        channel: Some(context.unwrap_or_else(|| channel.to_string())),
        thread: Some(ts.to_string()),
        user: Some(gateway::User::new("slack", &thread.user_id.0)),
        private: true,
        label: None,
    };
    let pane = match intake.pipeline.registry().resolve_bound(&origin).await {
        Ok(resolved) => resolved
            .compiled
            .prompt()
            .assistant
            .clone()
            .unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "no prompt for the assistant thread; greeting without suggestions");
            Default::default()
        }
    };
    let greeting = pane.greeting.as_deref().unwrap_or(GREETING);
    super::delivery::post_notice(&intake.delivery, channel, ts, greeting).await;
    if pane.prompts.is_empty() {
        return;
    }
    let prompts = pane
        .prompts
        .iter()
        .map(|p| SlackAssistantPrompt::new(p.title.clone(), p.message.clone()))
        .collect();
    let mut request = SlackApiAssistantThreadsSetSuggestedPromptsRequest::new(
        web::channel(channel),
        web::ts(ts),
        prompts,
    );
    request.title = pane.title.clone();
    if let Err(e) = intake.web.set_suggested_prompts(&request).await {
        tracing::warn!(error = %e, "cannot set the assistant thread's suggested prompts");
    }
}

/// `assistant_thread_context_changed`: the channel the user now looks at.
pub(crate) fn on_context_changed(intake: &Intake, event: SlackAssistantThreadContextChangedEvent) {
    let thread = &event.assistant_thread;
    intake.assistant.upsert(
        &thread.channel_id.0,
        &thread.thread_ts.0,
        context_of(thread),
    );
}

/// After an answer in an assistant thread: its title, once, from the
/// question.
pub(crate) async fn title_after_answer(
    intake: &Intake,
    channel: &str,
    thread: &str,
    question: &str,
) {
    if !intake.assistant.take_untitled(channel, thread) {
        return;
    }
    let mut title: String = question.trim().chars().take(TITLE_CHARS).collect();
    if question.trim().chars().count() > TITLE_CHARS {
        title.push('…');
    }
    if title.is_empty() {
        return;
    }
    let request =
        SlackApiAssistantThreadSetTitleRequest::new(web::channel(channel), web::ts(thread), title);
    if let Err(e) = intake.web.set_title(&request).await {
        tracing::warn!(error = %e, "cannot set the assistant thread's title");
    }
}
