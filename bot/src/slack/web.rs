//! The Slack Web API, through slack-morphism's [`SlackClient`] over its
//! hyper connector, pointed at `slack.api_base` (Slack's, GovSlack's, a
//! proxy's, or a test's stand-in). Requests and answers are
//! slack-morphism's typed models; its requests go as JSON bodies with the
//! token as a Bearer header.
//!
//! A `429 Too Many Requests` is honoured here rather than by
//! slack-morphism's rate controller: that controller also throttles
//! `chat.postMessage` and `assistant.threads.setStatus` to one call a
//! second across every channel when a token names no workspace, which
//! would serialize every answer of the bot. So the call waits the
//! `Retry-After` seconds that slack-morphism reads from Slack's answer
//! ([`SlackRateLimitError`]) and tries again, and an answer is delayed
//! rather than lost.
//!
//! Two requests stay on plain reqwest, because they are not Web API
//! methods and slack-morphism's connector only decodes JSON: a shared
//! file's bytes (`url_private`) and an answer posted to a slash command's
//! or button's `response_url` (whose body carries `response_type`, which
//! slack-morphism's webhook request has no field for).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;
use slack_morphism::api::{
    SlackApiAppsConnectionOpenRequest, SlackApiAssistantThreadSetTitleRequest,
    SlackApiAssistantThreadsSetStatusRequest, SlackApiAssistantThreadsSetSuggestedPromptsRequest,
    SlackApiAuthTestResponse, SlackApiChatAppendStreamRequest, SlackApiChatGetPermalinkResponse,
    SlackApiChatPostMessageRequest, SlackApiChatPostMessageResponse,
    SlackApiChatStartStreamRequest, SlackApiChatStartStreamResponse, SlackApiChatStopStreamRequest,
    SlackApiChatUpdateRequest, SlackApiConversationsInfoResponse,
    SlackApiConversationsRepliesResponse, SlackApiUsersInfoRequest, SlackApiUsersInfoResponse,
    SlackApiViewsOpenRequest,
};
use slack_morphism::errors::{SlackClientError, SlackRateLimitError};
use slack_morphism::hyper_tokio::{SlackClientHyperConnector, SlackHyperHttpsConnector};
use slack_morphism::{
    SlackApiToken, SlackApiTokenValue, SlackChannelId, SlackChannelInfo, SlackClient,
    SlackHistoryMessage, SlackTs,
};

/// How many times one call is tried when Slack keeps answering 429.
const ATTEMPTS: usize = 5;
/// The longest wait honoured for one 429.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// slack-morphism's hyper connector, over rustls with the ring provider.
pub type Connector = SlackClientHyperConnector<SlackHyperHttpsConnector>;

/// Why a Web API call failed.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The request did not complete.
    #[error("Slack API `{method}`: {message} (check slack.api_base and the network)")]
    Http {
        /// The method.
        method: String,
        /// What went wrong.
        message: String,
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

impl WebError {
    fn from_client(method: &str, e: SlackClientError) -> WebError {
        let method = method.to_string();
        match e {
            SlackClientError::ApiError(e) => WebError::Slack {
                method,
                error: e.code,
            },
            SlackClientError::HttpError(e) => WebError::Status {
                method,
                status: e.status_code.as_u16(),
            },
            SlackClientError::RateLimitError(_) => WebError::Status {
                method,
                status: 429,
            },
            // Not the body: it may hold a Socket Mode ticket or messages.
            SlackClientError::ProtocolError(e) => WebError::Http {
                method,
                message: format!(
                    "the answer does not fit Slack's documented shape ({})",
                    e.json_error
                ),
            },
            // Transport errors.
            other => WebError::Http {
                method,
                message: other.to_string(),
            },
        }
    }
}

/// The Web API client. Cheap to clone.
#[derive(Clone)]
pub struct Web {
    client: Arc<SlackClient<Connector>>,
    token: SlackApiToken,
    base: String,
    /// For `url_private` downloads and `response_url` posts.
    http: reqwest::Client,
    /// File downloads at once, for the whole adapter (each may be
    /// megabytes held in memory).
    downloads: Arc<tokio::sync::Semaphore>,
}

/// File downloads at once.
pub const MAX_DOWNLOADS: usize = 4;

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is never printed.
        f.debug_struct("Web").field("base", &self.base).finish()
    }
}

impl Web {
    /// A client for the API at `base` (`https://slack.com/api`), with a
    /// bot token. The process-level rustls provider must be installed
    /// (`gateway::install_crypto`).
    pub fn new(base: &str, token: &str) -> Web {
        // HTTP is allowed as well as HTTPS: `api_base` may name a proxy or
        // a stand-in on loopback.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let base = base.trim_end_matches('/').to_string();
        let connector = SlackClientHyperConnector::from(https).with_slack_api_url(&base);
        Web {
            client: Arc::new(SlackClient::new(connector)),
            token: SlackApiToken::new(SlackApiTokenValue(token.to_string())),
            base,
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .unwrap_or_default(),
            downloads: Arc::new(tokio::sync::Semaphore::new(MAX_DOWNLOADS)),
        }
    }

    /// The same client with another token (the app-level `xapp-…` token
    /// that `apps.connections.open` takes).
    pub fn with_token(&self, token: &str) -> Web {
        Web {
            token: SlackApiToken::new(SlackApiTokenValue(token.to_string())),
            ..self.clone()
        }
    }

    /// Runs one call, waiting out 429s as Slack asks.
    async fn retrying<T, F, Fut>(&self, method: &str, call: F) -> Result<T, WebError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SlackClientError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match tokio::time::timeout(TIMEOUT, call()).await {
                Err(_) => {
                    return Err(WebError::Http {
                        method: method.to_string(),
                        message: format!("no answer within {} s", TIMEOUT.as_secs()),
                    });
                }
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(SlackClientError::RateLimitError(limited))) if attempt < ATTEMPTS => {
                    let wait = retry_after(&limited);
                    tracing::warn!(
                        method,
                        wait_ms = wait.as_millis() as u64,
                        "Slack rate-limited a call; waiting as asked"
                    );
                    tokio::time::sleep(wait).await;
                }
                Ok(Err(e)) => return Err(WebError::from_client(method, e)),
            }
        }
    }

    /// Calls a method slack-morphism has no typed call for (or whose
    /// typed call leaves out an argument the adapter needs), with a typed
    /// or JSON body.
    pub async fn post<RQ, RS>(&self, method: &str, body: &RQ) -> Result<RS, WebError>
    where
        RQ: Serialize + Send + Sync,
        RS: DeserializeOwned + Send,
    {
        let (client, token) = (&*self.client, &self.token);
        self.retrying(method, move || async move {
            client
                .open_session(token)
                .http_session_api
                .http_post(method, body, None)
                .await
        })
        .await
    }

    /// `auth.test`: who the token belongs to.
    pub async fn auth_test(&self) -> Result<SlackApiAuthTestResponse, WebError> {
        let (client, token) = (&*self.client, &self.token);
        self.retrying("auth.test", move || async move {
            client.open_session(token).auth_test().await
        })
        .await
    }

    /// `users.info`.
    pub async fn users_info(
        &self,
        req: &SlackApiUsersInfoRequest,
    ) -> Result<SlackApiUsersInfoResponse, WebError> {
        let (client, token) = (&*self.client, &self.token);
        self.retrying("users.info", move || async move {
            client.open_session(token).users_info(req).await
        })
        .await
    }

    /// Calls a read method with its arguments in the query string (how
    /// Slack's `conversations.*` methods take them), decoding the answer.
    pub async fn get<RS>(&self, method: &str, params: &[(&str, &str)]) -> Result<RS, WebError>
    where
        RS: DeserializeOwned + Send,
    {
        let (client, token) = (&*self.client, &self.token);
        let params: Vec<(&str, Option<&str>)> =
            params.iter().map(|(k, v)| (*k, Some(*v))).collect();
        let params = &params;
        self.retrying(method, move || async move {
            client
                .open_session(token)
                .http_session_api
                .http_get(method, params, None)
                .await
        })
        .await
    }

    /// `conversations.replies`: the first page of a thread's messages,
    /// oldest first, with their metadata. slack-morphism's typed request
    /// has no `include_all_metadata`, which the adapter needs to learn
    /// which inference another replica's answer belongs to, so the query
    /// is built here and the answer is its typed model.
    pub async fn replies(
        &self,
        channel: &str,
        ts: &str,
    ) -> Result<Vec<SlackHistoryMessage>, WebError> {
        Ok(self.replies_page(channel, ts, None).await?.messages)
    }

    /// One page of `conversations.replies` (200 messages), from `cursor`.
    pub async fn replies_page(
        &self,
        channel: &str,
        ts: &str,
        cursor: Option<&str>,
    ) -> Result<SlackApiConversationsRepliesResponse, WebError> {
        let mut params = vec![
            ("channel", channel),
            ("ts", ts),
            ("limit", "200"),
            ("include_all_metadata", "true"),
        ];
        if let Some(c) = cursor {
            params.push(("cursor", c));
        }
        self.get("conversations.replies", &params).await
    }

    /// `conversations.info`: a channel's name and whether it is private.
    pub async fn conversation_info(&self, channel: &str) -> Result<SlackChannelInfo, WebError> {
        let answer: SlackApiConversationsInfoResponse = self
            .get("conversations.info", &[("channel", channel)])
            .await?;
        Ok(answer.channel)
    }

    /// `chat.getPermalink`: the link to a message.
    pub async fn permalink(&self, channel: &str, ts: &str) -> Result<String, WebError> {
        let answer: SlackApiChatGetPermalinkResponse = self
            .get(
                "chat.getPermalink",
                &[("channel", channel), ("message_ts", ts)],
            )
            .await?;
        Ok(answer.permalink.to_string())
    }

    /// `chat.postMessage`.
    pub async fn post_message(
        &self,
        req: &SlackApiChatPostMessageRequest,
    ) -> Result<SlackApiChatPostMessageResponse, WebError> {
        let (client, token) = (&*self.client, &self.token);
        self.retrying("chat.postMessage", move || async move {
            client.open_session(token).chat_post_message(req).await
        })
        .await
    }

    /// `chat.update`.
    pub async fn update(&self, req: &SlackApiChatUpdateRequest) -> Result<(), WebError> {
        let (client, token) = (&*self.client, &self.token);
        self.retrying("chat.update", move || async move {
            client.open_session(token).chat_update(req).await
        })
        .await
        .map(|_| ())
    }

    /// `chat.startStream`: the streamed message's `ts`.
    pub async fn start_stream(
        &self,
        req: &SlackApiChatStartStreamRequest,
    ) -> Result<SlackApiChatStartStreamResponse, WebError> {
        let (client, token) = (&*self.client, &self.token);
        self.retrying("chat.startStream", move || async move {
            client.open_session(token).chat_start_stream(req).await
        })
        .await
    }

    /// `chat.appendStream`.
    pub async fn append_stream(
        &self,
        req: &SlackApiChatAppendStreamRequest,
    ) -> Result<(), WebError> {
        let (client, token) = (&*self.client, &self.token);
        self.retrying("chat.appendStream", move || async move {
            client.open_session(token).chat_append_stream(req).await
        })
        .await
        .map(|_| ())
    }

    /// `chat.stopStream`.
    pub async fn stop_stream(&self, req: &SlackApiChatStopStreamRequest) -> Result<(), WebError> {
        let (client, token) = (&*self.client, &self.token);
        self.retrying("chat.stopStream", move || async move {
            client.open_session(token).chat_stop_stream(req).await
        })
        .await
        .map(|_| ())
    }

    /// `assistant.threads.setStatus`.
    pub async fn set_status(
        &self,
        req: &SlackApiAssistantThreadsSetStatusRequest,
    ) -> Result<(), WebError> {
        let (client, token) = (&*self.client, &self.token);
        self.retrying("assistant.threads.setStatus", move || async move {
            client
                .open_session(token)
                .assistant_threads_set_status(req)
                .await
        })
        .await
        .map(|_| ())
    }

    /// `assistant.threads.setSuggestedPrompts`.
    pub async fn set_suggested_prompts(
        &self,
        req: &SlackApiAssistantThreadsSetSuggestedPromptsRequest,
    ) -> Result<(), WebError> {
        let (client, token) = (&*self.client, &self.token);
        self.retrying(
            "assistant.threads.setSuggestedPrompts",
            move || async move {
                client
                    .open_session(token)
                    .assistant_threads_set_suggested_prompts(req)
                    .await
            },
        )
        .await
        .map(|_| ())
    }

    /// `assistant.threads.setTitle`.
    pub async fn set_title(
        &self,
        req: &SlackApiAssistantThreadSetTitleRequest,
    ) -> Result<(), WebError> {
        let (client, token) = (&*self.client, &self.token);
        self.retrying("assistant.threads.setTitle", move || async move {
            client
                .open_session(token)
                .assistant_threads_set_title(req)
                .await
        })
        .await
        .map(|_| ())
    }

    /// `views.open` with a view built as Block Kit JSON; the view must
    /// fit slack-morphism's model. The opened view in the answer is not
    /// read.
    pub async fn open_view(&self, trigger_id: &str, view: Value) -> Result<(), WebError> {
        let req: SlackApiViewsOpenRequest = serde_json::from_value(serde_json::json!({
            "trigger_id": trigger_id,
            "view": view,
        }))
        .map_err(|e| WebError::Http {
            method: "views.open".into(),
            message: format!("the view does not fit Slack's model: {e}"),
        })?;
        self.post::<_, IgnoredAny>("views.open", &req)
            .await
            .map(|_| ())
    }

    /// `apps.connections.open` (with the app-level token): a one-time
    /// Socket Mode URL. The URL carries a ticket: it is not logged.
    pub async fn connections_open(&self) -> Result<String, WebError> {
        let (client, token) = (&*self.client, &self.token);
        let answer = self
            .retrying("apps.connections.open", move || async move {
                client
                    .open_session(token)
                    .apps_connections_open(&SlackApiAppsConnectionOpenRequest::new())
                    .await
            })
            .await?;
        Ok(answer.url.0.to_string())
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
        let http = |source: reqwest::Error| WebError::Http {
            method: method.clone(),
            message: source.to_string(),
        };
        // Held until the bytes are in: at most MAX_DOWNLOADS at once.
        let _slot = self
            .downloads
            .acquire()
            .await
            .map_err(|_| WebError::Slack {
                method: method.clone(),
                error: "the adapter is stopping".into(),
            })?;
        let mut resp = self
            .http
            .get(url)
            .bearer_auth(self.token.token_value.0.as_str())
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

    /// Posts a message to a slash command's or button's `response_url`
    /// (no token: the URL is the credential).
    pub async fn respond(&self, response_url: &str, body: &Value) -> Result<(), WebError> {
        let method = "response_url";
        let response = self
            .http
            .post(response_url)
            .json(body)
            .send()
            .await
            .map_err(|e| WebError::Http {
                method: method.into(),
                message: e.to_string(),
            })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(WebError::Status {
                method: method.into(),
                status: response.status().as_u16(),
            })
        }
    }
}

/// A channel id, as slack-morphism types it.
pub fn channel(id: &str) -> SlackChannelId {
    SlackChannelId(id.to_string())
}

/// A message timestamp, as slack-morphism types it.
pub fn ts(ts: &str) -> SlackTs {
    SlackTs(ts.to_string())
}

/// The wait a 429 asks for: `Retry-After` seconds (1 when absent), at
/// most [`MAX_RETRY_AFTER`].
fn retry_after(limited: &SlackRateLimitError) -> Duration {
    limited
        .retry_after
        .unwrap_or(Duration::from_secs(1))
        .min(MAX_RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_more_than_the_cap_of_files_are_downloaded_at_once() {
        gateway::install_crypto();
        let (base, most) = testkit::counting_host("files", Duration::from_millis(200)).await;
        // The API base's origin stands in for Slack's file host.
        let web = Web::new(&format!("{base}/api"), "xoxb-test");
        let downloads: Vec<_> = (0..3 * MAX_DOWNLOADS)
            .map(|i| {
                let web = web.clone();
                let url = format!("{base}/files/{i}.png");
                tokio::spawn(async move { web.download(&url, 1024).await })
            })
            .collect();
        for d in downloads {
            assert_eq!(d.await.expect("task").expect("downloaded"), b"png");
        }
        assert_eq!(
            most.load(std::sync::atomic::Ordering::SeqCst),
            MAX_DOWNLOADS
        );
    }
}
