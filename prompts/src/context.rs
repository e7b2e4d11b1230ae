//! The variables every template can use, in one place. The pipeline fills
//! them for each request; validation accepts them without a declaration;
//! `switchboard prompts variables` prints this table.

/// Context variables: (name, what it holds). Every value is text except
/// `history`, a list of turns with `role`, `name` and `content`.
pub const CONTEXT_VARIABLES: &[(&str, &str)] = &[
    (
        "text",
        "The user's current message, with the bot's mention removed.",
    ),
    (
        "history",
        "The conversation before this message, oldest first: a list of {role, name, content}. Most prompts place it with a `history` message instead of reading it.",
    ),
    ("user_name", "The display name of the person asking."),
    (
        "user_id",
        "The platform's id of the person asking (empty if unknown).",
    ),
    (
        "channel_name",
        "The channel's name (empty in DMs and on the HTTP API).",
    ),
    ("channel_id", "The channel's id (empty if unknown)."),
    (
        "workspace_name",
        "The Slack workspace or Discord server's name (empty if unknown).",
    ),
    (
        "workspace_id",
        "The Slack workspace or Discord server's id (empty if unknown).",
    ),
    (
        "platform",
        "Where the conversation happens: console, http, slack or discord.",
    ),
    (
        "bot_name",
        "The bot's display name (`bot_name` in the configuration).",
    ),
    (
        "now",
        "The current date and time in UTC, to the minute: `2026-11-28 14:05 UTC`.",
    ),
    ("today", "The current date in UTC: `2026-11-28`."),
    (
        "attachments",
        "Descriptions of files attached to the message, one per line (empty if none).",
    ),
];

/// Whether `name` is a context variable.
pub fn is_context_variable(name: &str) -> bool {
    CONTEXT_VARIABLES.iter().any(|(n, _)| *n == name)
}
