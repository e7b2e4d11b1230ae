//! Discord's message commands (a message's Apps menu): "Summarize thread"
//! and "Ask Switchboard about this", like Slack's shortcuts; and `/ask`,
//! which a user may install for themselves (user install) and use in DMs
//! and servers where the bot is not a member. The channel or
//! thread the message is in is read as the bot (the latest messages up to
//! it, within `discord.history_chars`), and answered through the registry
//! prompts `summarize` and `ask_about`. The answer is a reply to the
//! interaction, deferred while the model writes.

use gateway::domain::{ChatMessage, Input, Origin, Request, Role};
use poise::serenity_prelude as serenity;

use super::components::clip;
use super::state::{Discord, HandleError};

type Context<'a> = poise::Context<'a, Discord, HandleError>;

/// The most messages read before the one pointed at.
const CONTEXT_MESSAGES: usize = 100;

/// Summarize this message's thread (or channel) up to it
#[poise::command(
    context_menu_command = "Summarize thread",
    interaction_context = "Guild|BotDm|PrivateChannel"
)]
pub async fn summarize_thread(
    ctx: Context<'_>,
    message: serenity::Message,
) -> Result<(), HandleError> {
    shortcut(ctx, message, "summarize").await
}

/// Explain this message in the context of its conversation
#[poise::command(
    context_menu_command = "Ask Switchboard about this",
    interaction_context = "Guild|BotDm|PrivateChannel"
)]
pub async fn ask_about(ctx: Context<'_>, message: serenity::Message) -> Result<(), HandleError> {
    shortcut(ctx, message, "ask_about").await
}

async fn shortcut(
    ctx: Context<'_>,
    message: serenity::Message,
    prompt: &str,
) -> Result<(), HandleError> {
    ctx.defer().await.map_err(reply_error)?;
    let discord = ctx.data();
    let channel = message.channel_id.to_string();
    let target = message.id.to_string();
    let earlier = match discord
        .intake
        .rest
        .messages_before(&channel, &target, CONTEXT_MESSAGES)
        .await
    {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the channel for a message command");
            ctx.say("I cannot read this channel: check that I may view it and read its history.")
                .await
                .map_err(reply_error)?;
            return Ok(());
        }
    };
    let name = |u: &serenity::User| u.global_name.clone().unwrap_or_else(|| u.name.clone());
    let mut lines: Vec<String> = earlier
        .iter()
        .filter(|m| !m.content.trim().is_empty())
        .map(|m| {
            format!(
                "{}: {}",
                m.author
                    .global_name
                    .clone()
                    .unwrap_or_else(|| m.author.username.clone()),
                m.content.replace('\n', " ")
            )
        })
        .collect();
    lines.push(format!(
        "{}: {}",
        name(&message.author),
        message.content.replace('\n', " ")
    ));
    let (mut transcript, from) = crate::chunks::newest_within(&lines, discord.intake.history_chars);
    if from > 0 {
        transcript.insert_str(0, &format!("(the {from} oldest messages are left out)\n"));
    }
    let text = if prompt == "ask_about" {
        format!(
            "The conversation:\n{transcript}\n\nThe message asked about:\n{}",
            message.content
        )
    } else {
        transcript
    };
    let origin = Origin {
        platform: "discord".into(),
        workspace: ctx.guild_id().map(|g| g.to_string()),
        channel: Some(channel),
        thread: None,
        user: Some(gateway::User::new("discord", ctx.author().id.to_string())),
        private: ctx.guild_id().is_none(),
        label: None,
    };
    let request = Request::new(
        origin,
        Input::Prompt {
            name: prompt.to_string(),
            selector: None,
            messages: vec![ChatMessage::new(Role::User, text)],
        },
    );
    let answer = collect(&discord.intake.pipeline, request).await;
    ctx.send(
        poise::CreateReply::default()
            .content(clip(&answer))
            .allowed_mentions(serenity::CreateAllowedMentions::new()),
    )
    .await
    .map_err(reply_error)?;
    Ok(())
}

/// Ask Switchboard a question
#[poise::command(
    slash_command,
    install_context = "Guild|User",
    interaction_context = "Guild|BotDm|PrivateChannel"
)]
pub async fn ask(
    ctx: Context<'_>,
    #[description = "Your question"] question: String,
) -> Result<(), HandleError> {
    // In a server that has not installed the app (the user installed it
    // for themselves), only the asker sees the answer; in the app's own
    // servers and in DMs, the channel does.
    let guild_installed = match ctx {
        poise::Context::Application(app) => {
            super::rest::documented::<_, serde_json::Value>("ask", app.interaction)
                .ok()
                .is_some_and(|v| v["authorizing_integration_owners"].get("0").is_some())
        }
        poise::Context::Prefix(_) => true,
    };
    let private = ctx.guild_id().is_some() && !guild_installed;
    if private {
        ctx.defer_ephemeral().await.map_err(reply_error)?;
    } else {
        ctx.defer().await.map_err(reply_error)?;
    }
    let origin = Origin {
        platform: "discord".into(),
        workspace: ctx.guild_id().map(|g| g.to_string()),
        channel: Some(ctx.channel_id().to_string()),
        thread: None,
        user: Some(gateway::User::new("discord", ctx.author().id.to_string())),
        private: ctx.guild_id().is_none() || private,
        label: None,
    };
    let inbound = gateway::Inbound {
        origin: origin.clone(),
        user_name: Some(
            ctx.author()
                .global_name
                .clone()
                .unwrap_or_else(|| ctx.author().name.clone()),
        ),
        text: question,
        ..gateway::Inbound::default()
    };
    let answer = collect(
        &ctx.data().intake.pipeline,
        Request::new(origin, Input::Chat(inbound)),
    )
    .await;
    // A user-installed app may send few follow-ups: the first part is the
    // reply, and at most four more follow.
    let parts = crate::chunks::split_message(&answer, super::components::MAX_CHARS);
    for (i, part) in parts.iter().take(5).enumerate() {
        let reply = poise::CreateReply::default()
            .content(part.clone())
            .ephemeral(private)
            .allowed_mentions(serenity::CreateAllowedMentions::new());
        if i == 0 || !part.is_empty() {
            ctx.send(reply).await.map_err(reply_error)?;
        }
    }
    Ok(())
}

/// The whole answer to `request`, or what went wrong.
async fn collect(pipeline: &gateway::Pipeline, request: Request) -> String {
    match pipeline.start(request).await {
        Err(e) => format!("Sorry, I could not answer: {e}"),
        Ok(reply) => match reply.into_text().await {
            Err(message) => format!("Sorry, I could not answer: {message}"),
            Ok(answer) if answer.trim().is_empty() => "(the model gave an empty answer)".into(),
            Ok(answer) => answer,
        },
    }
}

fn reply_error(e: serenity::Error) -> HandleError {
    HandleError::Reply(Box::new(e))
}
