//! The connection to Discord. serenity's client runs this replica's range
//! of gateway shards (IDENTIFY, RESUME after a dropped connection,
//! heartbeats, one IDENTIFY per five seconds) and hands every dispatch to
//! the framework it is given (poise, which runs the `/prompt` commands and
//! passes everything else to the adapter's dispatch). A close code that
//! reconnecting cannot fix (a refused token, say) stops the adapter with
//! the fix rather than a reconnect loop.

use serenity::all::{ClientBuilder, GatewayError, GatewayIntents};
use serenity::framework::Framework;
use tokio::sync::watch;

use super::config::DiscordConfig;
use super::rest::Rest;

/// Why the Discord connection stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The client could not be set up or the shards could not start.
    #[error("cannot connect to Discord: {0} (check discord.api_base and the network)")]
    Client(#[source] Box<serenity::Error>),
    /// Discord closed the connection with a code that retrying cannot fix.
    #[error("Discord closed the connection: {code} {reason}; {fix}")]
    Fatal {
        /// The close code.
        code: u16,
        /// What it means.
        reason: String,
        /// What to do.
        fix: &'static str,
    },
}

/// The intents the bot asks for.
pub fn intents(message_content: bool) -> GatewayIntents {
    let base = GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::GUILD_MESSAGE_REACTIONS
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::DIRECT_MESSAGE_REACTIONS;
    if message_content {
        base | GatewayIntents::MESSAGE_CONTENT
    } else {
        base
    }
}

/// The close code behind a gateway error that reconnecting cannot fix,
/// and the fix; `None` for the others.
fn fatal(error: &GatewayError) -> Option<(u16, &'static str)> {
    Some(match error {
        GatewayError::InvalidAuthentication => (
            4004,
            "the token was refused: put a valid bot token in the variable named by discord.token_env",
        ),
        GatewayError::InvalidShardData | GatewayError::OverloadedShard => (
            4010,
            "the shard settings are wrong: check discord.shards (Discord asks for more shards when the bot is in many servers)",
        ),
        GatewayError::InvalidGatewayIntents => {
            (4013, "the intents are invalid: upgrade Switchboard")
        }
        GatewayError::DisallowedGatewayIntents => (
            4014,
            "an intent is not enabled: enable Message Content Intent in the developer portal (Bot → Privileged Gateway Intents), or set discord.message_content = false",
        ),
        _ => return None,
    })
}

/// Connects this replica's shards and runs until `stop` turns true (or
/// Discord refuses the connection for good), handing every dispatch to
/// `framework`.
pub async fn run(
    config: &DiscordConfig,
    framework: impl Framework + 'static,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let shards = config.shards;
    let intents = intents(config.message_content);
    let http = Rest::http_client(config);
    let mut client = ClientBuilder::new_with_http(http, intents)
        .framework(framework)
        .await
        .map_err(|e| ConnectionError::Client(Box::new(e)))?;
    let manager = client.shard_manager.clone();
    // serenity counts the range's end as included.
    let started = tokio::select! {
        r = client.start_shard_range(shards.first..shards.last, shards.total) => r,
        _ = stop.wait_for(|stopped| *stopped) => Ok(()),
    };
    manager.shutdown_all().await;
    match started {
        Ok(()) => Ok(()),
        Err(serenity::Error::Gateway(e)) if fatal(&e).is_some() => {
            let (code, fix) = fatal(&e).unwrap_or((0, ""));
            Err(ConnectionError::Fatal {
                code,
                reason: e.to_string(),
                fix,
            })
        }
        Err(e) => Err(ConnectionError::Client(Box::new(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_content_is_asked_for_only_when_configured() {
        assert!(!intents(false).contains(GatewayIntents::MESSAGE_CONTENT));
        assert!(intents(true).contains(GatewayIntents::MESSAGE_CONTENT));
        assert!(intents(false).contains(GatewayIntents::GUILD_MESSAGES));
        assert!(intents(false).contains(GatewayIntents::DIRECT_MESSAGES));
    }

    #[test]
    fn a_refused_token_stops_with_the_fix() {
        let refused = fatal(&GatewayError::InvalidAuthentication);
        assert!(refused.is_some_and(|(code, fix)| code == 4004 && fix.contains("token_env")));
        let intents = fatal(&GatewayError::DisallowedGatewayIntents);
        assert!(intents.is_some_and(|(_, fix)| fix.contains("message_content")));
        assert_eq!(fatal(&GatewayError::HeartbeatFailed), None);
    }
}
