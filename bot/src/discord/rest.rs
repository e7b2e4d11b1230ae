//! A small client for the parts of Discord's REST API the bot uses. Every
//! call goes to the configured base URL (proxies and tests set another) and
//! honours 429 answers: it waits `retry_after` and tries again, so that an
//! answer still arrives when Discord asks the bot to slow down.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::normalize::Message;

/// How many 429 answers one call waits out before giving up.
const MAX_RATE_LIMITED: u32 = 5;
/// The longest single wait a 429 may impose before the call gives up.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why a Discord API call failed.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// Discord could not be reached.
    #[error("cannot reach Discord at {route}: {source} (check discord.api_base and the network)")]
    Transport {
        /// Method and path.
        route: String,
        /// The client error.
        source: reqwest::Error,
    },
    /// Discord refused the call.
    #[error("Discord answered {status} to {route}: {body}")]
    Status {
        /// Method and path.
        route: String,
        /// The HTTP status.
        status: u16,
        /// Discord's error body.
        body: String,
    },
    /// Discord kept answering 429.
    #[error(
        "Discord kept rate-limiting {route} (last retry_after {retry_after:.1} s); try again later"
    )]
    RateLimited {
        /// Method and path.
        route: String,
        /// The last wait asked for, in seconds.
        retry_after: f64,
    },
    /// The answer was not the JSON Discord documents.
    #[error("Discord's answer to {route} is not the documented JSON: {message}")]
    Decode {
        /// Method and path.
        route: String,
        /// The parse error.
        message: String,
    },
}

/// The REST client. Cheap to clone. Its `Debug` never shows the token.
#[derive(Clone)]
pub struct Rest {
    http: reqwest::Client,
    base: String,
    authorization: String,
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rest").field("base", &self.base).finish()
    }
}

impl Rest {
    /// A client for `base` (for example `https://discord.com/api/v10`).
    pub fn new(base: &str, token: &str) -> Rest {
        Rest {
            http: reqwest::Client::builder()
                .user_agent(concat!(
                    "DiscordBot (switchboard, ",
                    env!("CARGO_PKG_VERSION"),
                    ")"
                ))
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_string(),
            authorization: format!("Bot {token}"),
        }
    }

    /// Calls `method path` with an optional JSON body; 429s are waited out.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, RestError> {
        let route = format!("{method} {path}");
        let mut limited = 0;
        loop {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .header("authorization", &self.authorization);
            if let Some(body) = body {
                req = req.json(body);
            }
            let resp = req.send().await.map_err(|source| RestError::Transport {
                route: route.clone(),
                source,
            })?;
            let status = resp.status().as_u16();
            let header_wait = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<f64>().ok());
            let text = resp.text().await.map_err(|source| RestError::Transport {
                route: route.clone(),
                source,
            })?;
            if status == 429 {
                let retry_after = retry_after(&text).or(header_wait).unwrap_or(1.0);
                limited += 1;
                if limited > MAX_RATE_LIMITED
                    || Duration::from_secs_f64(retry_after.max(0.0)) > MAX_RETRY_AFTER
                {
                    return Err(RestError::RateLimited { route, retry_after });
                }
                tracing::debug!(%route, retry_after, "Discord rate limit: waiting");
                tokio::time::sleep(Duration::from_secs_f64(retry_after.max(0.0))).await;
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(RestError::Status {
                    route,
                    status,
                    body: text.chars().take(500).collect(),
                });
            }
            if text.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).map_err(|e| RestError::Decode {
                route,
                message: e.to_string(),
            });
        }
    }

    /// `POST /channels/{channel}/messages`: the new message's id.
    pub async fn create_message(&self, channel: &str, body: &Value) -> Result<String, RestError> {
        let path = format!("/channels/{channel}/messages");
        let v = self.call(Method::POST, &path, Some(body)).await?;
        v.get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| RestError::Decode {
                route: format!("POST {path}"),
                message: "no message id".to_string(),
            })
    }

    /// `PATCH /channels/{channel}/messages/{id}`.
    pub async fn edit_message(
        &self,
        channel: &str,
        id: &str,
        body: &Value,
    ) -> Result<(), RestError> {
        let path = format!("/channels/{channel}/messages/{id}");
        self.call(Method::PATCH, &path, Some(body)).await.map(drop)
    }

    /// `POST /channels/{channel}/typing`: "is typing…" for ten seconds.
    pub async fn typing(&self, channel: &str) -> Result<(), RestError> {
        let path = format!("/channels/{channel}/typing");
        self.call(Method::POST, &path, None).await.map(drop)
    }

    /// `GET /channels/{channel}/messages/{id}`.
    pub async fn message(&self, channel: &str, id: &str) -> Result<Message, RestError> {
        let path = format!("/channels/{channel}/messages/{id}");
        let v = self.call(Method::GET, &path, None).await?;
        serde_json::from_value(v).map_err(|e| RestError::Decode {
            route: format!("GET {path}"),
            message: e.to_string(),
        })
    }

    /// `GET /channels/{channel}/messages?before=…&limit=…`, oldest first.
    pub async fn messages_before(
        &self,
        channel: &str,
        before: &str,
        limit: usize,
    ) -> Result<Vec<Message>, RestError> {
        let path = format!(
            "/channels/{channel}/messages?before={before}&limit={}",
            limit.clamp(1, 100)
        );
        let v = self.call(Method::GET, &path, None).await?;
        let mut msgs: Vec<Message> = serde_json::from_value(v).map_err(|e| RestError::Decode {
            route: format!("GET {path}"),
            message: e.to_string(),
        })?;
        // Discord lists the newest first.
        msgs.reverse();
        Ok(msgs)
    }

    /// `POST /interactions/{id}/{token}/callback`.
    pub async fn interaction_callback(
        &self,
        id: &str,
        token: &str,
        body: &Value,
    ) -> Result<(), RestError> {
        let path = format!("/interactions/{id}/{token}/callback");
        self.call(Method::POST, &path, Some(body)).await.map(drop)
    }

    /// `PATCH /webhooks/{application}/{token}/messages/@original`: the
    /// answer to a deferred interaction.
    pub async fn edit_original(
        &self,
        application: &str,
        token: &str,
        body: &Value,
    ) -> Result<(), RestError> {
        let path = format!("/webhooks/{application}/{token}/messages/@original");
        self.call(Method::PATCH, &path, Some(body)).await.map(drop)
    }
}

impl Rest {
    /// Downloads an attachment's text (at most `max` bytes) from its CDN
    /// URL. The bot's token is not sent: the URL carries its own signature.
    pub async fn download(&self, url: &str, max: usize) -> Result<String, RestError> {
        let bytes = self.download_bytes(url, max).await?;
        String::from_utf8(bytes).map_err(|_| RestError::Decode {
            route: "GET attachment".to_string(),
            message: "the file is not UTF-8 text".to_string(),
        })
    }

    /// Downloads an attachment (at most `max` bytes) from its CDN URL,
    /// giving up after [`DOWNLOAD_TIMEOUT`].
    pub async fn download_bytes(&self, url: &str, max: usize) -> Result<Vec<u8>, RestError> {
        let route = "GET attachment".to_string();
        let transport = |source| RestError::Transport {
            route: route.clone(),
            source,
        };
        let mut resp = self
            .http
            .get(url)
            .timeout(DOWNLOAD_TIMEOUT)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(RestError::Status {
                route,
                status,
                body: String::new(),
            });
        }
        let too_big = |len: usize| RestError::Decode {
            route: route.clone(),
            message: format!("the file is over {max} bytes ({len} read)"),
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > max {
                return Err(too_big(bytes.len()));
            }
        }
        Ok(bytes)
    }
}

/// How long an attachment download may take.
pub const DOWNLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// `retry_after` (seconds) from a 429 body, as Discord documents it.
pub fn retry_after(body: &str) -> Option<f64> {
    serde_json::from_str::<Value>(body)
        .ok()?
        .get("retry_after")?
        .as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_from_the_documented_body() {
        let body =
            r#"{"message": "You are being rate limited.", "retry_after": 0.25, "global": false}"#;
        assert_eq!(retry_after(body), Some(0.25));
        assert_eq!(retry_after("not json"), None);
    }
}
