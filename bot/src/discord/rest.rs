//! The Discord REST calls the adapter makes, through serenity's HTTP client,
//! with the bodies and answers kept as Discord's documented JSON so that
//! the rendering and normalizing code stays free of library types.
//!
//! Rate limits: against Discord itself serenity's rate limiter tracks the
//! buckets and waits out 429 answers for their `retry_after`. serenity
//! sends requests to another origin (`discord.api_base`: a proxy, a test
//! double) only with its rate limiter off — such proxies do the limiting
//! themselves — so there a 429 that still comes back is waited out here,
//! [`RATE_LIMIT_WAIT`] and longer each time, before the call is repeated.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use serenity::http::{
    Http, HttpBuilder, HttpError, LightMethod, MessagePagination, Request, Route,
};
use serenity::model::id::{ApplicationId, ChannelId, GuildId, InteractionId, MessageId};

use super::config::DiscordConfig;
use super::model::Message;

/// How many 429 answers one call waits out before giving up.
const MAX_RATE_LIMITED: u32 = 5;
/// The first wait after a 429 that reaches the adapter (doubling after).
pub const RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);
/// How long an attachment download may take.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(20);
/// Where Discord serves attachments from.
pub const DISCORD_CDNS: &[&str] = &["https://cdn.discordapp.com", "https://media.discordapp.net"];
/// How many redirects (within the CDN) a download follows.
const MAX_REDIRECTS: usize = 5;

/// Why a Discord API call failed.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// Discord could not be reached, or refused the call.
    #[error(
        "Discord API call {route} failed: {source} (check discord.api_base, the bot token and the network)"
    )]
    Api {
        /// What was called.
        route: String,
        /// serenity's error.
        source: Box<serenity::Error>,
    },
    /// Discord kept answering 429.
    #[error("Discord kept rate-limiting {route}; try again later")]
    RateLimited {
        /// What was called.
        route: String,
    },
    /// An id is not a Discord snowflake.
    #[error("{route}: `{id}` is not a Discord id")]
    BadId {
        /// What was called.
        route: String,
        /// The id given.
        id: String,
    },
    /// The answer was not the JSON Discord documents.
    #[error("Discord's answer to {route} is not the documented JSON: {message}")]
    Decode {
        /// What was called.
        route: String,
        /// The parse error.
        message: String,
    },
    /// An attachment could not be downloaded.
    #[error("cannot download the attachment: {message}")]
    Download {
        /// What went wrong.
        message: String,
    },
}

/// The REST client. Cheap to clone. Its `Debug` never shows the token.
#[derive(Clone)]
pub struct Rest {
    http: Arc<Http>,
    /// Downloads attachments; `None` if it could not be built.
    cdn: Option<reqwest::Client>,
    /// The origins attachments are downloaded from (see [`cdn_origins`]).
    cdn_origins: Arc<Vec<reqwest::Url>>,
    /// Whether 429 answers reach the adapter (serenity's limiter is off).
    retry_here: bool,
    /// Attachment downloads at once, for the whole process (each may be
    /// megabytes held in memory).
    downloads: Arc<tokio::sync::Semaphore>,
}

/// Attachment downloads at once.
pub const MAX_DOWNLOADS: usize = 4;

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rest")
            .field("retry_here", &self.retry_here)
            .finish()
    }
}

impl Rest {
    /// serenity's HTTP client for the configured API base, with the bot's
    /// token; the gateway connection and the commands share it.
    pub fn http_client(config: &DiscordConfig) -> Http {
        let builder = HttpBuilder::new(&config.token)
            .application_id(ApplicationId::new(config.application_id().max(1)));
        match config.api_origin() {
            // serenity's rate limiter always talks to discord.com; another
            // origin takes its place only with the limiter off.
            Some(origin) => builder.proxy(origin).ratelimiter_disabled(true).build(),
            None => builder.build(),
        }
    }

    /// The adapter's calls over `http` (made by [`Rest::http_client`]).
    /// Attachments are downloaded from [`cdn_origins`] only, redirects
    /// included.
    pub fn new(http: Arc<Http>, config: &DiscordConfig) -> Rest {
        gateway::install_crypto();
        let cdn_origins = Arc::new(cdn_origins(config));
        let allowed = Arc::clone(&cdn_origins);
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if on_cdn(&allowed, attempt.url()) {
                attempt.follow()
            } else {
                attempt.error("redirected away from Discord's CDN")
            }
        });
        let cdn = reqwest::Client::builder()
            .user_agent(concat!(
                "DiscordBot (switchboard, ",
                env!("CARGO_PKG_VERSION"),
                ")"
            ))
            .redirect(redirects)
            .build()
            .inspect_err(|e| {
                tracing::warn!(error = %e, "cannot build the client for Discord's CDN; attachments will not be read");
            })
            .ok();
        Rest {
            http,
            cdn,
            cdn_origins,
            retry_here: config.api_origin().is_some(),
            downloads: Arc::new(tokio::sync::Semaphore::new(MAX_DOWNLOADS)),
        }
    }

    /// serenity's client, shared with the gateway connection and commands.
    pub fn http(&self) -> Arc<Http> {
        Arc::clone(&self.http)
    }

    /// Runs `call`, waiting out 429 answers that reach the adapter.
    async fn call<T, F, Fut>(&self, route: String, call: F) -> Result<T, RestError>
    where
        F: Fn(Arc<Http>) -> Fut,
        Fut: std::future::Future<Output = serenity::Result<T>>,
    {
        let mut wait = RATE_LIMIT_WAIT;
        let mut limited = 0;
        loop {
            match call(self.http()).await {
                Ok(v) => return Ok(v),
                Err(serenity::Error::Http(HttpError::UnsuccessfulRequest(r)))
                    if self.retry_here && r.status_code.as_u16() == 429 =>
                {
                    limited += 1;
                    if limited > MAX_RATE_LIMITED {
                        return Err(RestError::RateLimited { route });
                    }
                    tracing::debug!(%route, ?wait, "Discord rate limit: waiting");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => {
                    return Err(RestError::Api {
                        route,
                        source: Box::new(e),
                    });
                }
            }
        }
    }

    /// `POST /channels/{channel}/messages`: the new message's id.
    pub async fn create_message(&self, channel: &str, body: &Value) -> Result<String, RestError> {
        let route = format!("POST /channels/{channel}/messages");
        let channel = ChannelId::new(snowflake(&route, channel)?);
        let m = self
            .call(route, |h| async move {
                h.send_message(channel, Vec::new(), body).await
            })
            .await?;
        Ok(m.id.to_string())
    }

    /// `PATCH /channels/{channel}/messages/{id}`.
    pub async fn edit_message(
        &self,
        channel: &str,
        id: &str,
        body: &Value,
    ) -> Result<(), RestError> {
        let route = format!("PATCH /channels/{channel}/messages/{id}");
        let channel = ChannelId::new(snowflake(&route, channel)?);
        let id = MessageId::new(snowflake(&route, id)?);
        self.call(route, |h| async move {
            h.edit_message(channel, id, body, Vec::new()).await
        })
        .await
        .map(drop)
    }

    /// `POST /channels/{channel}/typing`: "is typing…" for ten seconds.
    pub async fn typing(&self, channel: &str) -> Result<(), RestError> {
        let route = format!("POST /channels/{channel}/typing");
        let channel = ChannelId::new(snowflake(&route, channel)?);
        self.call(route, |h| async move { h.broadcast_typing(channel).await })
            .await
    }

    /// `GET /channels/{channel}/messages/{id}`.
    pub async fn message(&self, channel: &str, id: &str) -> Result<Message, RestError> {
        let route = format!("GET /channels/{channel}/messages/{id}");
        let channel = ChannelId::new(snowflake(&route, channel)?);
        let id = MessageId::new(snowflake(&route, id)?);
        let m = self
            .call(route.clone(), |h| async move {
                h.get_message(channel, id).await
            })
            .await?;
        documented(&route, &m)
    }

    /// `GET /channels/{channel}/messages?before=…&limit=…`, oldest first.
    pub async fn messages_before(
        &self,
        channel: &str,
        before: &str,
        limit: usize,
    ) -> Result<Vec<Message>, RestError> {
        let mut msgs = self.messages(channel, Page::Before(before), limit).await?;
        // Discord lists the newest first.
        msgs.reverse();
        Ok(msgs)
    }

    /// `GET /channels/{channel}/messages?after=…&limit=…`, as Discord
    /// lists them (newest first).
    pub async fn messages_after(
        &self,
        channel: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Message>, RestError> {
        self.messages(channel, Page::After(after), limit).await
    }

    async fn messages(
        &self,
        channel: &str,
        page: Page<'_>,
        limit: usize,
    ) -> Result<Vec<Message>, RestError> {
        let route = format!("GET /channels/{channel}/messages");
        let channel = ChannelId::new(snowflake(&route, channel)?);
        let target = match page {
            Page::Before(id) => MessagePagination::Before(MessageId::new(snowflake(&route, id)?)),
            Page::After(id) => MessagePagination::After(MessageId::new(snowflake(&route, id)?)),
        };
        let limit = limit.clamp(1, 100) as u8;
        let msgs = self
            .call(route.clone(), |h| async move {
                h.get_messages(channel, Some(target), Some(limit)).await
            })
            .await?;
        documented(&route, &msgs)
    }

    /// `GET /channels/{channel}/messages?limit=100[&before=…]` as JSON,
    /// newest first: one page of a channel's (or thread's) history, read
    /// leniently for knowledge (a message type the typed model lacks never
    /// fails the page).
    pub async fn history_page(
        &self,
        channel: &str,
        before: Option<&str>,
    ) -> Result<Vec<Value>, RestError> {
        let route = format!("GET /channels/{channel}/messages");
        let channel_id = ChannelId::new(snowflake(&route, channel)?);
        let mut params = vec![("limit", "100".to_string())];
        if let Some(b) = before {
            params.push(("before", snowflake(&route, b)?.to_string()));
        }
        let page: Value = self
            .json(
                route.clone(),
                Route::ChannelMessages { channel_id },
                Some(params),
            )
            .await?;
        Ok(page.as_array().cloned().unwrap_or_default())
    }

    /// `GET /channels/{channel}/messages/{id}` as JSON; `None` when
    /// Discord has no such message (deleted).
    pub async fn message_json(&self, channel: &str, id: &str) -> Result<Option<Value>, RestError> {
        let route = format!("GET /channels/{channel}/messages/{id}");
        let channel_id = ChannelId::new(snowflake(&route, channel)?);
        let message_id = MessageId::new(snowflake(&route, id)?);
        match self
            .json(
                route,
                Route::ChannelMessage {
                    channel_id,
                    message_id,
                },
                None,
            )
            .await
        {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /channels/{channel}`: a channel (or thread) object as JSON.
    pub async fn channel(&self, channel: &str) -> Result<Value, RestError> {
        let route = format!("GET /channels/{channel}");
        let channel_id = ChannelId::new(snowflake(&route, channel)?);
        self.json(route, Route::Channel { channel_id }, None).await
    }

    /// `GET /users/@me`: the bot's own user id.
    pub async fn own_id(&self) -> Result<String, RestError> {
        let me = self
            .json("GET /users/@me".to_string(), Route::UserMe, None)
            .await?;
        Ok(me["id"].as_str().unwrap_or_default().to_string())
    }

    /// `GET /guilds/{guild}/roles`.
    pub async fn guild_roles(&self, guild: &str) -> Result<Value, RestError> {
        let route = format!("GET /guilds/{guild}/roles");
        let guild_id = GuildId::new(snowflake(&route, guild)?);
        self.json(route, Route::GuildRoles { guild_id }, None).await
    }

    /// `GET /guilds/{guild}/threads/active`: the server's active threads.
    pub async fn active_threads(&self, guild: &str) -> Result<Value, RestError> {
        let route = format!("GET /guilds/{guild}/threads/active");
        let guild_id = GuildId::new(snowflake(&route, guild)?);
        self.json(route, Route::GuildThreadsActive { guild_id }, None)
            .await
    }

    /// `GET /channels/{channel}/threads/archived/public[?before=ISO8601]`:
    /// one page of a channel's archived public threads.
    pub async fn archived_threads(
        &self,
        channel: &str,
        before: Option<&str>,
    ) -> Result<Value, RestError> {
        let route = format!("GET /channels/{channel}/threads/archived/public");
        let channel_id = ChannelId::new(snowflake(&route, channel)?);
        let mut params = vec![("limit", "100".to_string())];
        if let Some(b) = before {
            params.push(("before", b.to_string()));
        }
        self.json(
            route,
            Route::ChannelArchivedPublicThreads { channel_id },
            Some(params),
        )
        .await
    }

    /// A `GET` whose answer is kept as JSON.
    async fn json(
        &self,
        route: String,
        path: Route<'_>,
        params: Option<Vec<(&'static str, String)>>,
    ) -> Result<Value, RestError> {
        self.call(route, |h| {
            let request = Request::new(path, LightMethod::Get).params(params.clone());
            async move { h.fire::<Value>(request).await }
        })
        .await
    }

    /// `POST /interactions/{id}/{token}/callback`.
    pub async fn interaction_callback(
        &self,
        id: &str,
        token: &str,
        body: &Value,
    ) -> Result<(), RestError> {
        let route = format!("POST /interactions/{id}/…/callback");
        let id = InteractionId::new(snowflake(&route, id)?);
        self.call(route, |h| async move {
            h.create_interaction_response(id, token, body, Vec::new())
                .await
        })
        .await
    }

    /// `PATCH /webhooks/{application}/{token}/messages/@original`: the
    /// answer to a deferred interaction.
    pub async fn edit_original(&self, token: &str, body: &Value) -> Result<(), RestError> {
        let route = "PATCH /webhooks/…/messages/@original".to_string();
        self.call(route, |h| async move {
            h.edit_original_interaction_response(token, body, Vec::new())
                .await
        })
        .await
        .map(drop)
    }

    /// Downloads an attachment's text (at most `max` bytes) from its CDN
    /// URL. The bot's token is not sent: the URL carries its own signature.
    pub async fn download(&self, url: &str, max: usize) -> Result<String, RestError> {
        let bytes = self.download_bytes(url, max).await?;
        String::from_utf8(bytes).map_err(|_| RestError::Download {
            message: "the file is not UTF-8 text".to_string(),
        })
    }

    /// Downloads an attachment (at most `max` bytes) from its CDN URL,
    /// giving up after [`DOWNLOAD_TIMEOUT`]. A URL, or a redirect, to
    /// anywhere but Discord's CDN is refused without a request.
    pub async fn download_bytes(&self, url: &str, max: usize) -> Result<Vec<u8>, RestError> {
        let failed = |e: reqwest::Error| RestError::Download {
            message: if e.is_redirect() {
                "the CDN redirected it away from Discord's CDN".to_string()
            } else {
                e.to_string()
            },
        };
        let parsed = reqwest::Url::parse(url).map_err(|_| RestError::Download {
            message: "its URL does not parse".to_string(),
        })?;
        if !on_cdn(&self.cdn_origins, &parsed) {
            return Err(RestError::Download {
                message: format!("it is not on Discord's CDN ({})", DISCORD_CDNS.join(", ")),
            });
        }
        let Some(cdn) = &self.cdn else {
            return Err(RestError::Download {
                message: "the HTTP client for the CDN could not be built".to_string(),
            });
        };
        // Held until the bytes are in: at most MAX_DOWNLOADS at once.
        let _slot = self
            .downloads
            .acquire()
            .await
            .map_err(|_| RestError::Download {
                message: "the adapter is stopping".to_string(),
            })?;
        let mut resp = cdn
            .get(parsed)
            .timeout(DOWNLOAD_TIMEOUT)
            .send()
            .await
            .map_err(failed)?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(RestError::Download {
                message: format!("the CDN answered {status}"),
            });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(failed)? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > max {
                return Err(RestError::Download {
                    message: format!("the file is over {max} bytes ({} read)", bytes.len()),
                });
            }
        }
        Ok(bytes)
    }
}

/// The origins attachments may be downloaded from: Discord's CDN
/// ([`DISCORD_CDNS`], over HTTPS), and the origin standing in for Discord
/// when `discord.api_base` points elsewhere (a proxy, a test double).
fn cdn_origins(config: &DiscordConfig) -> Vec<reqwest::Url> {
    DISCORD_CDNS
        .iter()
        .copied()
        .chain(config.api_origin())
        .filter_map(|origin| reqwest::Url::parse(origin).ok())
        .collect()
}

/// Whether `url` has the scheme, host and port of one of `origins`.
fn on_cdn(origins: &[reqwest::Url], url: &reqwest::Url) -> bool {
    origins.iter().any(|o| o.origin() == url.origin())
}

/// Which page of a channel's messages.
enum Page<'a> {
    Before(&'a str),
    After(&'a str),
}

impl RestError {
    /// Whether Discord answered 404 (an unknown message or channel).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RestError::Api { source, .. }
            if matches!(&**source, serenity::Error::Http(HttpError::UnsuccessfulRequest(r))
                if r.status_code.as_u16() == 404))
    }
}

/// A snowflake id from its text.
fn snowflake(route: &str, id: &str) -> Result<u64, RestError> {
    id.parse::<u64>()
        .ok()
        .filter(|v| *v != 0)
        .ok_or_else(|| RestError::BadId {
            route: route.to_string(),
            id: id.to_string(),
        })
}

/// A serenity model as the documented JSON, read into the adapter's type.
pub fn documented<M: serde::Serialize, T: DeserializeOwned>(
    route: &str,
    model: &M,
) -> Result<T, RestError> {
    serde_json::to_value(model)
        .and_then(serde_json::from_value)
        .map_err(|e| RestError::Decode {
            route: route.to_string(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_snowflakes() {
        assert_eq!(
            snowflake("r", "1200000000000000001").ok(),
            Some(1200000000000000001)
        );
        assert!(snowflake("r", "general").is_err());
        assert!(snowflake("r", "0").is_err());
    }

    #[test]
    fn a_message_read_by_serenity_keeps_its_documented_shape() {
        let json = crate::discord::tests::inbound::guild_message("1700000000000000001", "hi", true);
        let model: serenity::model::channel::Message =
            serde_json::from_value(json).expect("serenity reads the documented message");
        let m: Message = documented("test", &model).expect("and writes it back");
        assert_eq!(m.id, "1700000000000000001");
        assert_eq!(m.author.id, "1400000000000000001");
        assert!(!m.mentions.is_empty());
    }

    fn config(extra: &str) -> DiscordConfig {
        let table: toml::Table =
            toml::from_str(&format!("application_id = \"1\"\n{extra}")).expect("test TOML");
        DiscordConfig::parse(&table, |_| Some("t".to_string())).expect("valid")
    }

    fn allowed(origins: &[reqwest::Url], url: &str) -> bool {
        on_cdn(origins, &reqwest::Url::parse(url).expect("test URL"))
    }

    #[test]
    fn attachments_come_from_discords_cdn_over_https_only() {
        let origins = cdn_origins(&config(""));
        assert!(allowed(
            &origins,
            "https://cdn.discordapp.com/attachments/1/2/a.png?ex=1"
        ));
        assert!(allowed(
            &origins,
            "https://media.discordapp.net/attachments/1/2/a.png"
        ));
        assert!(!allowed(
            &origins,
            "http://cdn.discordapp.com/attachments/1/2/a.png"
        ));
        assert!(!allowed(&origins, "https://cdn.discordapp.com:8443/a.png"));
        assert!(!allowed(
            &origins,
            "https://cdn.discordapp.com.example.net/a.png"
        ));
        assert!(!allowed(&origins, "https://example.net/a.png"));
        assert!(!allowed(
            &origins,
            "http://127.0.0.1:3000/attachments/a.png"
        ));

        // A stand-in for Discord serves its attachments too; nothing else does.
        let origins = cdn_origins(&config("api_base = \"http://127.0.0.1:3000/api/v10\""));
        assert!(allowed(&origins, "http://127.0.0.1:3000/attachments/a.png"));
        assert!(allowed(
            &origins,
            "https://cdn.discordapp.com/attachments/1/2/a.png"
        ));
        assert!(!allowed(
            &origins,
            "http://127.0.0.1:3001/attachments/a.png"
        ));
        assert!(!allowed(
            &origins,
            "https://127.0.0.1:3000/attachments/a.png"
        ));
    }

    #[tokio::test]
    async fn no_more_than_the_cap_of_attachments_are_downloaded_at_once() {
        gateway::install_crypto();
        let (base, most) = testkit::counting_host("attachments", Duration::from_millis(200)).await;
        let config = config(&format!("api_base = \"{base}/api/v10\""));
        let rest = Rest::new(Arc::new(Rest::http_client(&config)), &config);
        let downloads = (0..3 * MAX_DOWNLOADS).map(|i| {
            let rest = rest.clone();
            let url = format!("{base}/attachments/{i}.png");
            tokio::spawn(async move { rest.download_bytes(&url, 1024).await })
        });
        for d in downloads.collect::<Vec<_>>() {
            assert_eq!(d.await.expect("task").expect("downloaded"), b"png");
        }
        assert_eq!(
            most.load(std::sync::atomic::Ordering::SeqCst),
            MAX_DOWNLOADS
        );
    }
}
