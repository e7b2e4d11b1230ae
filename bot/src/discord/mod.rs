//! The Discord adapter: turns gateway dispatches (messages, reactions,
//! button clicks, submitted forms) into pipeline requests and admin
//! commands, and renders the answers back through Discord's REST API. The
//! connection lives in [`connection`] (serenity), the `/prompt` commands in
//! [`slash`] (poise); the handlers work on Discord's documented JSON
//! (serenity's models written back as JSON by [`dispatch`]), so that they
//! are tested without Discord. The parts, each a set of functions over its
//! own state ([`state`], filled in once by [`start`]):
//!
//! - [`inbound`]: which messages are answered, deduplicated and turned
//!   into the gateway's requests ([`model`]: the payloads read)
//! - [`delivery`]: the answer streamed into the channel (throttled edits,
//!   split parts, feedback buttons)
//! - [`components`]: the message and interaction JSON every part sends
//! - [`feedback`]: feedback buttons and reactions
//! - [`commands`]: `/prompt` through the admin layer; [`edit`]: its form
//! - [`knowledge`]: followed channels' messages and threads kept as a
//!   knowledge source
//! - [`rest`]: the REST client; [`config`]: `[discord]`
//!
//! Data flow: `MESSAGE_CREATE` → [`inbound::trigger`] → dedupe (shared
//! through Redis) → context (reply chain or thread) → [`gateway::Pipeline`]
//! → `delivery::render` (throttled edits, split parts, feedback buttons).
//! This file wires the parts together and dispatches each event to its
//! part.

pub mod approval;
pub mod commands;
pub mod components;
pub mod config;
pub mod connection;
pub mod delivery;
pub mod edit;
pub mod feedback;
pub mod inbound;
pub mod knowledge;
pub mod model;
pub mod rest;
pub mod shortcuts;
pub mod slash;
pub mod state;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use gateway::Pipeline;
use gateway::guards::dedupe::EventDedupe;
use gateway::promptops::admin::Admin;
use gateway::promptops::feedback::FeedbackDoor;
use gateway::registry::Registry;
use gateway::store::{Recorder, Store};
use serde_json::Value;
use serenity::all::{FullEvent, Interaction};

pub use config::DiscordConfig;
pub use state::{Discord, HandleError};

use rest::{Rest, documented};
use state::{Commands, Delivery, Feedback, Intake, Known, Throttle};

/// Starts the Discord connection when `[discord]` is configured; the task
/// ends when `stop` turns true. Configuration errors stop start-up.
pub fn start(
    app: &gateway::Gateway,
    config: &gateway::Config,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>, config::ConfigError> {
    let Some(table) = &config.discord else {
        return Ok(None);
    };
    let settings = DiscordConfig::parse(table, |var| config.env.get(var).map(str::to_string))?;
    tracing::info!(api_base = %settings.api_base, shards = ?settings.shards, "starting the Discord adapter");
    let handles = Handles {
        pipeline: app.pipeline.clone(),
        dedupe: Arc::clone(&app.dedupe),
        recorder: app.recorder.clone(),
        door: app.feedback.clone(),
        store: app.store.clone(),
        registry: app.admin.registry().clone(),
        admin: app.admin.clone(),
        knowledge: app.knowledge.clone(),
    };
    Ok(Some(tokio::spawn(async move {
        let framework = framework(settings.clone(), handles);
        if let Err(e) = connection::run(&settings, framework, stop).await {
            tracing::error!(error = %e, "the Discord adapter stopped");
        }
    })))
}

/// The gateway's handles the parts use, taken when the adapter starts.
struct Handles {
    pipeline: Pipeline,
    dedupe: Arc<EventDedupe>,
    recorder: Recorder,
    door: FeedbackDoor,
    store: Store,
    registry: Registry,
    admin: Admin,
    knowledge: gateway::knowledge::Knowledge,
}

/// poise with the `/prompt` group and this adapter's dispatch for every
/// other event. Once the first shard is ready it wires the parts (the REST
/// client needs serenity's) and registers the commands.
fn framework(settings: DiscordConfig, handles: Handles) -> poise::Framework<Discord, HandleError> {
    let mut options = slash::options();
    options.event_handler = |framework, event| Box::pin(dispatch(framework.user_data, event));
    poise::Framework::builder()
        .options(options)
        .setup(move |ctx, ready, framework| {
            Box::pin(async move {
                let rest = Rest::new(ctx.http.clone(), &settings);
                let store = handles.store.clone();
                let discord = wire(&settings, rest, handles);
                discord.known.set_bot_id(&ready.user.id.to_string());
                register(ctx, &store, &settings, &framework.options().commands).await;
                Ok(discord)
            })
        })
        .build()
}

/// Registers the application commands, unless the same definitions were
/// registered before for this application (their hash is kept in the
/// database, for every replica): a restart costs Discord nothing.
async fn register(
    ctx: &serenity::all::Context,
    store: &Store,
    settings: &DiscordConfig,
    commands: &[poise::Command<Discord, HandleError>],
) {
    let created = poise::builtins::create_application_commands(commands);
    let hash = match serde_json::to_vec(&created) {
        Ok(bytes) => {
            use sha2::Digest;
            sha2::Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        }
        Err(_) => String::new(),
    };
    let key = format!("discord_commands:{}", settings.application_id);
    match store.deployment_value(&key).await {
        Ok(Some(stored)) if !hash.is_empty() && stored == hash => {
            tracing::info!("the application commands are unchanged; not registered again");
            return;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot read which commands were registered; registering them")
        }
    }
    match serenity::all::Command::set_global_commands(&ctx.http, created).await {
        Ok(_) => {
            tracing::info!("application commands registered");
            if let Err(e) = store.set_deployment_value(&key, &hash).await {
                tracing::warn!(error = %e, "cannot remember the registered commands; they are registered again on the next start");
            }
        }
        Err(e) => tracing::warn!(error = %e, "the application commands were not registered"),
    }
}

/// Every part's state, from the settings, the REST client and the
/// gateway's handles.
fn wire(settings: &DiscordConfig, rest: Rest, handles: Handles) -> Discord {
    let known = Arc::new(Known::default());
    let harvest = Arc::new(knowledge::Harvest::new(
        rest.clone(),
        Arc::clone(&known),
        handles.knowledge,
        settings.knowledge_source.clone(),
        &settings.knowledge_channels,
    ));
    {
        // Channels synced before (or on another replica) stay followed.
        let harvest = Arc::clone(&harvest);
        tokio::spawn(async move {
            if let Err(e) = harvest.follow_stored().await {
                tracing::warn!(error = %e, "cannot read which Discord channels are kept as knowledge");
            }
        });
    }
    Discord {
        intake: Intake {
            pipeline: handles.pipeline,
            dedupe: handles.dedupe,
            rest: rest.clone(),
            known: Arc::clone(&known),
            delivery: Delivery {
                rest: rest.clone(),
                throttle: Throttle::new(settings.edit_interval),
            },
            answer_in_bot_threads: settings.answer_in_bot_threads,
            history: settings.history,
            history_chars: settings.history_chars,
        },
        feedback: Feedback {
            recorder: handles.recorder,
            door: handles.door,
            store: handles.store,
            rest: rest.clone(),
            known: Arc::clone(&known),
        },
        commands: Commands {
            admin: handles.admin,
            registry: handles.registry,
            rest,
            harvest: Arc::clone(&harvest),
        },
        known,
        harvest,
    }
}

/// Handles one event that is not a `/prompt` command or its autocomplete
/// (poise runs those): each serenity model is written back as Discord's
/// documented JSON and handed to its part, which reads only that JSON (the
/// same shapes the tests and the documentation use).
pub async fn dispatch(discord: &Discord, event: &FullEvent) -> Result<(), HandleError> {
    match event {
        FullEvent::Ready { data_about_bot } => {
            discord
                .known
                .set_bot_id(&data_about_bot.user.id.to_string());
            tracing::info!(shard = ?data_about_bot.shard, "connected to Discord");
        }
        FullEvent::GuildCreate { guild, .. } => {
            for thread in &guild.threads {
                inbound::remember_thread(&discord.known, &json("GUILD_CREATE", thread)?);
            }
        }
        FullEvent::ThreadCreate { thread } => {
            inbound::remember_thread(&discord.known, &json("THREAD_CREATE", thread)?);
        }
        FullEvent::ThreadUpdate { new, .. } => {
            inbound::remember_thread(&discord.known, &json("THREAD_UPDATE", new)?);
        }
        FullEvent::Message { new_message } => {
            harvest(discord, json("MESSAGE_CREATE", new_message)?);
            let message = documented("MESSAGE_CREATE", new_message)?;
            inbound::on_message(&discord.intake, message).await?;
        }
        FullEvent::MessageUpdate { event, .. } => {
            harvest(discord, json("MESSAGE_UPDATE", event)?);
        }
        FullEvent::MessageDelete {
            channel_id,
            deleted_message_id,
            ..
        } => {
            let harvest = Arc::clone(&discord.harvest);
            let (channel, id) = (channel_id.to_string(), deleted_message_id.to_string());
            tokio::spawn(async move { harvest.on_delete(&channel, &id).await });
        }
        FullEvent::ReactionAdd { add_reaction } => {
            let reaction = json("MESSAGE_REACTION_ADD", add_reaction)?;
            feedback::on_reaction(&discord.feedback, &reaction, true).await?;
        }
        FullEvent::ReactionRemove { removed_reaction } => {
            let reaction = json("MESSAGE_REACTION_REMOVE", removed_reaction)?;
            feedback::on_reaction(&discord.feedback, &reaction, false).await?;
        }
        FullEvent::InteractionCreate {
            interaction: Interaction::Component(click),
        } => {
            let click = json("INTERACTION_CREATE", click)?;
            let custom = click.pointer("/data/custom_id").and_then(Value::as_str);
            if custom.is_some_and(|c| c.starts_with(components::APPROVAL_PREFIX)) {
                approval::on_button(&discord.intake.pipeline, &discord.commands, &click).await?;
            } else {
                feedback::on_button(&discord.feedback, &click).await?;
            }
        }
        FullEvent::InteractionCreate {
            interaction: Interaction::Modal(form),
        } => {
            edit::on_modal(&discord.commands, &json("INTERACTION_CREATE", form)?).await?;
        }
        _ => {}
    }
    Ok(())
}

/// A message event read into knowledge beside the answer, never before it.
fn harvest(discord: &Discord, event: Value) {
    let harvest = Arc::clone(&discord.harvest);
    tokio::spawn(async move { harvest.on_message(&event).await });
}

/// A serenity model as Discord's documented JSON.
fn json<M: serde::Serialize>(event: &str, model: &M) -> Result<Value, HandleError> {
    serde_json::to_value(model).map_err(|e| HandleError::Payload {
        event: event.to_string(),
        message: e.to_string(),
    })
}
