//! The `/prompt` command group as poise commands: poise registers it
//! (hidden from members without Manage Server, guilds only), dispatches
//! each subcommand, and answers autocomplete for prompt names and versions.
//! Each subcommand hands its options to the admin layer, which checks the
//! caller's rights on every call; answers are ephemeral, and a command
//! still running after 2.5 s is deferred and answered when it is done.
//!
//! The edit form is answered with Discord's documented modal payload, and
//! its submission arrives as an ordinary interaction ([`super::edit`]):
//! nothing waits in memory for it, so any replica may take it.

use gateway::promptops::admin::Actor;
use poise::serenity_prelude as serenity;
use serde_json::Value;

use super::components::clip;
use super::rest::documented;
use super::state::{Discord, HandleError};
use super::{commands, edit};

/// The context poise gives each command.
type Context<'a> = poise::Context<'a, Discord, HandleError>;

/// poise's settings: the `/prompt` group and errors logged rather than
/// shown. The handler for every other event is the adapter's dispatch,
/// set where the adapter is wired.
pub fn options() -> poise::FrameworkOptions<Discord, HandleError> {
    poise::FrameworkOptions {
        commands: vec![
            prompt(),
            knowledge(),
            super::shortcuts::summarize_thread(),
            super::shortcuts::ask_about(),
            super::shortcuts::ask(),
        ],
        on_error: |error| Box::pin(on_error(error)),
        // The bot never mentions anyone in an answer.
        allowed_mentions: Some(serenity::CreateAllowedMentions::new()),
        // Owners are not used: rights come from the admin layer.
        initialize_owners: false,
        // Slash commands only: a mention is a question for the model, not
        // a prefix command (poise would log each one as unrecognized).
        prefix_options: poise::PrefixFrameworkOptions {
            mention_as_prefix: false,
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn on_error(error: poise::FrameworkError<'_, Discord, HandleError>) {
    match error {
        poise::FrameworkError::Command { error, ctx, .. } => {
            tracing::warn!(command = %ctx.command().qualified_name, %error, "a /prompt command failed");
        }
        poise::FrameworkError::EventHandler { error, event, .. } => {
            tracing::warn!(event = event.snake_case_name(), %error, "Discord event not handled");
        }
        other => {
            if let Err(e) = poise::builtins::on_error(other).await {
                tracing::warn!(error = %e, "cannot report a command error");
            }
        }
    }
}

/// Manage the bot's prompts: versions, labels, bindings
#[poise::command(
    slash_command,
    default_member_permissions = "MANAGE_GUILD",
    interaction_context = "Guild",
    subcommand_required,
    subcommands(
        "list",
        "show",
        "edit",
        "diff",
        "promote",
        "rollback",
        "try_version",
        "bind",
        "unbind",
        "split",
        "history"
    )
)]
pub async fn prompt(_ctx: Context<'_>) -> Result<(), HandleError> {
    Ok(())
}

/// The team's knowledge that answers here read
#[poise::command(
    slash_command,
    default_member_permissions = "MANAGE_GUILD",
    interaction_context = "Guild",
    subcommand_required,
    subcommands("knowledge_list", "knowledge_search", "knowledge_sync")
)]
pub async fn knowledge(_ctx: Context<'_>) -> Result<(), HandleError> {
    Ok(())
}

/// The knowledge sources answers in this channel may read
#[poise::command(slash_command, ephemeral, rename = "list")]
async fn knowledge_list(ctx: Context<'_>) -> Result<(), HandleError> {
    run_knowledge(ctx, "list").await
}

/// What an answer in this channel would retrieve for a question
#[poise::command(slash_command, ephemeral, rename = "search")]
async fn knowledge_search(
    ctx: Context<'_>,
    #[description = "The question"] query: String,
) -> Result<(), HandleError> {
    run_knowledge(ctx, &format!("search {query}")).await
}

/// Read this channel's history and threads into the server's knowledge
#[poise::command(slash_command, ephemeral, rename = "sync")]
async fn knowledge_sync(ctx: Context<'_>) -> Result<(), HandleError> {
    run_knowledge(ctx, "sync").await
}

/// Runs `/knowledge TEXT` asked in the interaction's channel.
async fn run_knowledge(ctx: Context<'_>, text: &str) -> Result<(), HandleError> {
    let Some((actor, interaction)) = caller(ctx)? else {
        return Ok(());
    };
    let command = match commands::here(&interaction) {
        Some(here) => gateway::promptops::admin::parse_knowledge(text, &here),
        None => Err("`/knowledge` is run in a server channel".to_string()),
    };
    answer(ctx, actor, command).await
}

/// Every prompt, its newest version and labels
#[poise::command(slash_command, ephemeral)]
async fn list(ctx: Context<'_>) -> Result<(), HandleError> {
    run(ctx, "list", &[]).await
}

/// One version in full
#[poise::command(slash_command, ephemeral)]
async fn show(
    ctx: Context<'_>,
    #[description = "The prompt"]
    #[autocomplete = "names"]
    name: String,
    #[description = "A version number or label"]
    #[autocomplete = "versions"]
    version: Option<String>,
) -> Result<(), HandleError> {
    run(ctx, "show", &[("name", Some(name)), ("version", version)]).await
}

/// Edit a prompt in a form, or from an attached .toml file; saves a new version
#[poise::command(slash_command, ephemeral)]
async fn edit(
    ctx: Context<'_>,
    #[description = "The prompt"]
    #[autocomplete = "names"]
    name: String,
    #[description = "The prompt as TOML, for prompts longer than a form holds"] file: Option<
        serenity::Attachment,
    >,
) -> Result<(), HandleError> {
    let Some((actor, _)) = caller(ctx)? else {
        return Ok(());
    };
    let state = &ctx.data().commands;
    match file {
        Some(file) => {
            let command = edit::from_file(state, &name, &file.url).await;
            answer(ctx, actor, command).await
        }
        None => {
            let poise::Context::Application(app) = ctx else {
                return Ok(());
            };
            let form = edit::editor(state, &actor, &name).await;
            let interaction = app.interaction;
            state
                .rest
                .interaction_callback(&interaction.id.to_string(), &interaction.token, &form)
                .await?;
            app.has_sent_initial_response
                .store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
    }
}

/// Differences between two versions
#[poise::command(slash_command, ephemeral)]
async fn diff(
    ctx: Context<'_>,
    #[description = "The prompt"]
    #[autocomplete = "names"]
    name: String,
    #[description = "From version"]
    #[autocomplete = "versions"]
    from: String,
    #[description = "To version (latest when not given)"]
    #[autocomplete = "versions"]
    to: Option<String>,
) -> Result<(), HandleError> {
    run(
        ctx,
        "diff",
        &[("name", Some(name)), ("from", Some(from)), ("to", to)],
    )
    .await
}

/// Point a label at a version
#[poise::command(slash_command, ephemeral)]
async fn promote(
    ctx: Context<'_>,
    #[description = "The prompt"]
    #[autocomplete = "names"]
    name: String,
    #[description = "A version number or label"]
    #[autocomplete = "versions"]
    version: String,
    #[description = "The label (production when not given)"] label: Option<String>,
) -> Result<(), HandleError> {
    run(
        ctx,
        "promote",
        &[
            ("name", Some(name)),
            ("version", Some(version)),
            ("label", label),
        ],
    )
    .await
}

/// Move a label back
#[poise::command(slash_command, ephemeral)]
async fn rollback(
    ctx: Context<'_>,
    #[description = "The prompt"]
    #[autocomplete = "names"]
    name: String,
    #[description = "The label (production when not given)"] label: Option<String>,
    #[description = "A version number or label"]
    #[autocomplete = "versions"]
    version: Option<String>,
) -> Result<(), HandleError> {
    run(
        ctx,
        "rollback",
        &[("name", Some(name)), ("label", label), ("version", version)],
    )
    .await
}

/// Answer a sample question with a version, recorded as a test
#[poise::command(slash_command, ephemeral, rename = "test")]
async fn try_version(
    ctx: Context<'_>,
    #[description = "The prompt"]
    #[autocomplete = "names"]
    name: String,
    #[description = "The sample question"] question: String,
    #[description = "A version number or label"]
    #[autocomplete = "versions"]
    version: Option<String>,
) -> Result<(), HandleError> {
    run(
        ctx,
        "test",
        &[
            ("name", Some(name)),
            ("question", Some(question)),
            ("version", version),
        ],
    )
    .await
}

/// Bind a channel or server to a prompt
#[poise::command(slash_command, ephemeral)]
async fn bind(
    ctx: Context<'_>,
    #[description = "here, or a scope key"] scope: String,
    #[description = "The prompt"]
    #[autocomplete = "names"]
    name: String,
    #[description = "The label (production when not given)"] label: Option<String>,
) -> Result<(), HandleError> {
    run(
        ctx,
        "bind",
        &[
            ("scope", Some(scope)),
            ("name", Some(name)),
            ("label", label),
        ],
    )
    .await
}

/// Remove a binding
#[poise::command(slash_command, ephemeral)]
async fn unbind(
    ctx: Context<'_>,
    #[description = "here, or a scope key"] scope: String,
) -> Result<(), HandleError> {
    run(ctx, "unbind", &[("scope", Some(scope))]).await
}

/// Split a label's traffic over versions
#[poise::command(slash_command, ephemeral)]
async fn split(
    ctx: Context<'_>,
    #[description = "The prompt"]
    #[autocomplete = "names"]
    name: String,
    #[description = "The label"] label: String,
    #[description = "version:weight pairs, e.g. 2:90,3:10"] arms: String,
) -> Result<(), HandleError> {
    run(
        ctx,
        "split",
        &[
            ("name", Some(name)),
            ("label", Some(label)),
            ("arms", Some(arms)),
        ],
    )
    .await
}

/// The audit log
#[poise::command(slash_command, ephemeral)]
async fn history(
    ctx: Context<'_>,
    #[description = "The prompt (all when not given)"]
    #[autocomplete = "names"]
    name: Option<String>,
) -> Result<(), HandleError> {
    run(ctx, "history", &[("name", name)]).await
}

/// The interaction as Discord documents it, and who made it; `None` when
/// the invocation is not an interaction.
fn caller(ctx: Context<'_>) -> Result<Option<(Actor, Value)>, HandleError> {
    let poise::Context::Application(app) = ctx else {
        return Ok(None);
    };
    let interaction: Value = documented("INTERACTION_CREATE", app.interaction)?;
    Ok(commands::actor(&interaction).map(|actor| (actor, interaction)))
}

/// Runs subcommand `sub` with the options given (unset ones left out).
async fn run(
    ctx: Context<'_>,
    sub: &str,
    options: &[(&str, Option<String>)],
) -> Result<(), HandleError> {
    let Some((actor, interaction)) = caller(ctx)? else {
        return Ok(());
    };
    let options: Vec<(String, String)> = options
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.clone()?)))
        .collect();
    let here = commands::here(&interaction);
    let command = commands::to_command(sub, &options, here.as_ref());
    answer(ctx, actor, command).await
}

/// Answers with the command's outcome (or why it is not one), only to the
/// caller; deferred first when the command is slow.
async fn answer(
    ctx: Context<'_>,
    actor: Actor,
    command: Result<gateway::promptops::admin::Command, String>,
) -> Result<(), HandleError> {
    let text = match command {
        Err(message) => message,
        Ok(command) => match commands::run_admin(&ctx.data().commands, actor, command).await {
            Ok(text) => text,
            Err(slow) => {
                ctx.defer_ephemeral().await.map_err(reply_error)?;
                slow.text().await
            }
        },
    };
    let reply = poise::CreateReply::default()
        .content(clip(&text))
        .ephemeral(true);
    ctx.send(reply).await.map_err(reply_error)?;
    Ok(())
}

fn reply_error(e: serenity::Error) -> HandleError {
    HandleError::Reply(Box::new(e))
}

/// Autocomplete for a prompt name.
async fn names(ctx: Context<'_>, partial: &str) -> serenity::CreateAutocompleteResponse {
    respond(commands::choices(&ctx.data().commands, "name", "", partial).await)
}

/// Autocomplete for a version or label of the prompt named in the
/// command so far.
async fn versions(ctx: Context<'_>, partial: &str) -> serenity::CreateAutocompleteResponse {
    let name = match ctx {
        poise::Context::Application(app) => {
            documented::<_, Value>("autocomplete", &app.interaction.data)
                .ok()
                .and_then(|data| commands::subcommand(&data))
                .and_then(|(_, options)| options.into_iter().find(|(n, _)| n == "name"))
                .map(|(_, v)| v)
                .unwrap_or_default()
        }
        poise::Context::Prefix(_) => String::new(),
    };
    respond(commands::choices(&ctx.data().commands, "version", &name, partial).await)
}

fn respond(values: Vec<String>) -> serenity::CreateAutocompleteResponse {
    let choices = values
        .into_iter()
        .map(|v| serenity::AutocompleteChoice::new(v.clone(), v))
        .collect();
    serenity::CreateAutocompleteResponse::new().set_choices(choices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mention_is_not_taken_as_a_prefix_command() {
        assert!(!options().prefix_options.mention_as_prefix);
        assert!(options().prefix_options.prefix.is_none());
    }

    #[test]
    fn the_group_asks_for_manage_server_and_autocompletes_names() {
        let commands = poise::builtins::create_application_commands(&[prompt()]);
        let json = serde_json::to_value(&commands).expect("serializable");
        let prompt = &json[0];
        assert_eq!(prompt["name"], "prompt");
        assert_eq!(prompt["default_member_permissions"], "32");
        let subs: Vec<&str> = prompt["options"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["name"].as_str())
            .collect();
        assert_eq!(
            subs,
            [
                "list", "show", "edit", "diff", "promote", "rollback", "test", "bind", "unbind",
                "split", "history"
            ]
        );
        let show = &prompt["options"][1];
        assert_eq!(show["options"][0]["name"], "name");
        assert_eq!(show["options"][0]["autocomplete"], true);
        let edit = &prompt["options"][2];
        assert_eq!(edit["options"][1]["type"], 11, "the file is an attachment");
    }
}
