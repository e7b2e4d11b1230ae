//! A thin client for the Slack Web API: the dozen methods the adapter
//! calls are plain HTTPS requests with JSON answers, so they are sent with
//! the reqwest client the gateway already uses, against a configurable
//! base URL (Slack's, GovSlack's, a proxy's, or a test's stand-in).
//!
//! A `429 Too Many Requests` is honoured: the call waits the
//! `Retry-After` seconds Slack asks for and tries again, so an answer is
//! delayed rather than lost.

use std::time::Duration;

use serde_json::Value;

/// How many times one call is tried when Slack keeps answering 429.
const ATTEMPTS: usize = 5;
/// The longest wait honoured for one 429.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why a Web API call failed.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The request did not complete.
    #[error("Slack API `{method}`: {source} (check slack.api_base and the network)")]
    Http {
        /// The method.
        method: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// Slack answered with an HTTP error.
    #[error("Slack API `{method}` answered HTTP {status}")]
    Status {
        /// The method.
        method: String,
        /// The status.
        status: u16,
    },
    /// Slack answered `ok: false`.
    #[error("Slack API `{method}` refused: {error}")]
    Slack {
        /// The method.
        method: String,
        /// Slack's error code (`channel_not_found`, `not_in_channel`, …).
        error: String,
    },
}

/// The Web API client. Cheap to clone.
#[derive(Clone)]
pub struct Web {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is never printed.
        f.debug_struct("Web").field("base", &self.base).finish()
    }
}

impl Web {
    /// A client for the API at `base` (`https://slack.com/api`), with a
    /// bot token.
    pub fn new(base: &str, token: &str) -> Web {
        Web {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    /// The same client with another token (the app-level `xapp-…` token
    /// that `apps.connections.open` takes).
    pub fn with_token(&self, token: &str) -> Web {
        Web {
            token: token.to_string(),
            ..self.clone()
        }
    }

    /// Calls a write method with a JSON body.
    pub async fn call(&self, method: &str, args: &Value) -> Result<Value, WebError> {
        let url = format!("{}/{method}", self.base);
        self.send(method, || {
            self.http.post(&url).bearer_auth(&self.token).json(args)
        })
        .await
    }

    /// Calls a read method with query arguments (the methods that do not
    /// take JSON bodies, such as `conversations.replies`).
    pub async fn get(&self, method: &str, args: &[(&str, &str)]) -> Result<Value, WebError> {
        let url = format!("{}/{method}", self.base);
        self.send(method, || {
            self.http.get(&url).bearer_auth(&self.token).query(args)
        })
        .await
    }

    /// Downloads a file a user shared (`url_private`), at most `max` bytes.
    /// The bot token goes only to Slack's file host or to `api_base`'s own
    /// origin, never to another host an event might name.
    pub async fn download(&self, url: &str, max: usize) -> Result<Vec<u8>, WebError> {
        let method = "files (url_private)".to_string();
        let origin = |u: &str| {
            reqwest::Url::parse(u).ok().map(|u| {
                (
                    u.scheme().to_string(),
                    u.host_str().map(str::to_string),
                    u.port_or_known_default(),
                )
            })
        };
        let trusted = url.starts_with("https://files.slack.com/")
            || (origin(url).is_some() && origin(url) == origin(&self.base));
        if !trusted {
            return Err(WebError::Slack {
                method,
                error: "the file is not on Slack's file host".into(),
            });
        }
        let http = |source| WebError::Http {
            method: method.clone(),
            source,
        };
        let mut resp = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .map_err(http)?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(WebError::Status {
                method,
                status: resp.status().as_u16(),
            });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(http)? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > max {
                return Err(WebError::Slack {
                    method,
                    error: format!("the file is over {max} bytes"),
                });
            }
        }
        Ok(bytes)
    }

    /// Posts a message to a slash command's `response_url` (no token:
    /// the URL is the credential).
    pub async fn respond(&self, response_url: &str, body: &Value) -> Result<(), WebError> {
        self.send_raw("response_url", || self.http.post(response_url).json(body))
            .await
            .map(|_| ())
    }

    async fn send(
        &self,
        method: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Value, WebError> {
        let text = self.send_raw(method, request).await?;
        let value: Value = serde_json::from_str(&text).map_err(|_| WebError::Slack {
            method: method.to_string(),
            error: "the answer is not JSON".into(),
        })?;
        if value["ok"].as_bool() == Some(true) {
            Ok(value)
        } else {
            Err(WebError::Slack {
                method: method.to_string(),
                error: value["error"]
                    .as_str()
                    .unwrap_or("unknown_error")
                    .to_string(),
            })
        }
    }

    async fn send_raw(
        &self,
        method: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<String, WebError> {
        let http = |source| WebError::Http {
            method: method.to_string(),
            source,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = request().send().await.map_err(http)?;
            let status = response.status().as_u16();
            if status == 429 && attempt < ATTEMPTS {
                let wait = retry_after(response.headers());
                tracing::warn!(
                    method,
                    wait_ms = wait.as_millis() as u64,
                    "Slack rate-limited a call; waiting as asked"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(WebError::Status {
                    method: method.to_string(),
                    status,
                });
            }
            return response.text().await.map_err(http);
        }
    }
}

/// The wait a 429 asks for: `Retry-After` seconds (1 when absent or
/// unreadable), at most [`MAX_RETRY_AFTER`].
fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(Duration::from_secs(1), Duration::from_secs_f64)
        .min(MAX_RETRY_AFTER)
}
