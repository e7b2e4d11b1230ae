//! What the HTTP providers share: the client, authentication, turning error
//! responses into [`ProviderError`]s (with `Retry-After`), and reading a
//! server-sent-event body.

use std::collections::BTreeMap;
use std::time::Duration;

use std::collections::VecDeque;

use futures_util::{StreamExt, stream};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::sse::{SseEvent, SseReader};
use super::{EventStream, ProviderError, ProviderEvent, Timeouts};
use crate::config::{HttpProviderConfig, Price};

/// Idle connections kept per provider host, and for how long.
const IDLE_CONNECTIONS: usize = 64;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// One configured HTTP endpoint.
pub(crate) struct HttpBase {
    pub name: String,
    client: reqwest::Client,
    base_url: String,
    query: Vec<(String, String)>,
    pub timeouts: Timeouts,
    pub prices: BTreeMap<String, Price>,
    pub default_max_tokens: u32,
}

impl HttpBase {
    /// Builds the client. `auth` turns the API key into the provider's
    /// default authentication header.
    pub fn new(
        name: &str,
        config: &HttpProviderConfig,
        default_base: &str,
        auth: fn(&str) -> (HeaderName, String),
        extra: &[(&'static str, &'static str)],
    ) -> Result<HttpBase, ProviderError> {
        install_crypto();
        let bad = |message: String| ProviderError::Protocol {
            provider: name.to_string(),
            message,
            retryable: false,
        };
        let mut headers = HeaderMap::new();
        for (k, v) in extra {
            headers.insert(*k, HeaderValue::from_static(v));
        }
        for (k, v) in &config.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| bad(format!("header name `{k}` is not valid")))?;
            let mut value = HeaderValue::from_str(v).map_err(|_| {
                bad(format!(
                    "header `{k}` has a value that is not valid in HTTP"
                ))
            })?;
            // The value may be a secret: keep it out of any printed request.
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if let Some(key) = &config.api_key {
            let (header, value) = match &config.api_key_header {
                Some(h) => (
                    HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                        bad(format!("api_key_header `{h}` is not a valid header name"))
                    })?,
                    key.expose().to_string(),
                ),
                None => auth(key.expose()),
            };
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                bad("the API key holds characters that cannot be sent in a header".into())
            })?;
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        // Sent with every request by the client itself: nothing to copy
        // per request.
        let client = reqwest::Client::builder()
            .default_headers(headers)
            // A burst opens as many connections as it has requests; only
            // a few are kept for the next one, and not for long, so that
            // memory goes back down after the burst.
            .pool_max_idle_per_host(IDLE_CONNECTIONS)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| bad(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpBase {
            name: name.to_string(),
            client,
            base_url: config
                .base_url
                .as_deref()
                .unwrap_or(default_base)
                .trim_end_matches('/')
                .to_string(),
            query: config
                .query
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timeouts: Timeouts {
                first_token: Duration::from_millis(config.first_token_timeout_ms),
                total: Duration::from_millis(config.total_timeout_ms),
            },
            prices: config.prices.clone(),
            default_max_tokens: config.default_max_tokens,
        })
    }

    /// POSTs JSON to `path` under the base URL; non-2xx answers become errors.
    pub async fn post(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<reqwest::Response, ProviderError> {
        let url = format!("{}{}", self.base_url, path);
        let mut request = self.client.post(url);
        if !self.query.is_empty() {
            request = request.query(&self.query);
        }
        let response = request
            .json(body)
            .send()
            .await
            .map_err(|e| self.connect_error(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        Err(ProviderError::Status {
            provider: self.name.clone(),
            status,
            message: error_message(&text),
            retry_after,
        })
    }

    /// A request that got no answer. The message names the URL with its
    /// query values masked: they may be secrets (`query` in the config).
    pub fn connect_error(&self, e: &reqwest::Error) -> ProviderError {
        let mut message = error_chain(e);
        if let Some(url) = e.url() {
            message = message.replace(url.as_str(), &masked_query(url));
        }
        ProviderError::Connect {
            provider: self.name.clone(),
            message,
        }
    }
}

/// What a protocol's parser makes of one event.
pub(crate) enum Step {
    /// More events follow.
    Continue,
    /// The provider said the answer is complete.
    End,
}

/// A wire protocol's reading of its server-sent events.
pub(crate) trait SseProtocol: Send + 'static {
    /// What a complete stream ends with, named when a stream is cut.
    const END: &'static str;

    /// Reads one event, pushing answer pieces onto `out`.
    fn event(
        &mut self,
        provider: &str,
        event: &SseEvent<'_>,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<Step, ProviderError>;

    /// Whether the body may end here without the end marker.
    fn may_end(&self) -> bool {
        false
    }
}

/// The answer in an SSE body, read by `protocol`. A body that breaks or
/// ends before the protocol's end marker is a cut stream.
pub(crate) fn event_stream<P: SseProtocol>(
    provider: &str,
    response: reqwest::Response,
    protocol: P,
) -> EventStream {
    struct State<B, P> {
        body: B,
        reader: SseReader,
        protocol: P,
        pending: VecDeque<ProviderEvent>,
        done: bool,
        name: String,
    }
    let state = State {
        body: Box::pin(response.bytes_stream()),
        reader: SseReader::default(),
        protocol,
        pending: VecDeque::new(),
        done: false,
        name: provider.to_string(),
    };
    stream::unfold(state, |mut st| async move {
        loop {
            if let Some(ev) = st.pending.pop_front() {
                return Some((Ok(ev), st));
            }
            if st.done {
                return None;
            }
            let error = match st.reader.next_event() {
                Ok(Some(event)) => match st.protocol.event(&st.name, &event, &mut st.pending) {
                    Ok(Step::Continue) => continue,
                    Ok(Step::End) => {
                        st.done = true;
                        continue;
                    }
                    Err(e) => e,
                },
                Err(e) => ProviderError::Cut {
                    provider: st.name.clone(),
                    message: e.to_string(),
                },
                Ok(None) => match st.body.next().await {
                    Some(Ok(bytes)) => {
                        st.reader.push(&bytes);
                        continue;
                    }
                    None if st.protocol.may_end() => {
                        st.done = true;
                        continue;
                    }
                    None => ProviderError::Cut {
                        provider: st.name.clone(),
                        message: format!("the stream ended before {}", P::END),
                    },
                    Some(Err(e)) => ProviderError::Cut {
                        provider: st.name.clone(),
                        message: error_chain(&e),
                    },
                },
            };
            st.done = true;
            return Some((Err(error), st));
        }
    })
    .boxed()
}

/// `retry-after-ms` (OpenAI) or `Retry-After` in seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    get("retry-after")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
}

/// The `error.message` of an OpenAI- or Anthropic-style error body, else
/// the start of the body.
pub(crate) fn error_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(m) = v.pointer("/error/message").and_then(|m| m.as_str()) {
            return m.to_string();
        }
        if let Some(m) = v.get("error").and_then(|m| m.as_str()) {
            return m.to_string();
        }
    }
    let mut s: String = body.chars().take(300).collect();
    if s.is_empty() {
        s = "(empty body)".into();
    }
    s
}

/// `url` with each query value replaced by `****`.
fn masked_query(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    if url.query().is_some() {
        let names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        shown
            .query_pairs_mut()
            .clear()
            .extend_pairs(names.iter().map(|name| (name, "****")));
    }
    shown.to_string()
}

/// An error with its sources, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// Installs ring as the process's TLS crypto provider (once; later calls
/// do nothing). Every HTTP client in Switchboard uses it.
pub fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error means another provider was installed first; that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::AUTHORIZATION;

    #[tokio::test]
    async fn an_unreachable_provider_is_reported_without_its_query_values() {
        // Nothing listens on port 1 of the loopback.
        let config: HttpProviderConfig = toml::from_str(
            "base_url = \"http://127.0.0.1:1/v1\"\n[query]\nsig = \"s3cr3t\"\n[headers]\nX-Api-Token = \"t0k3n\"",
        )
        .expect("valid");
        let base = HttpBase::new("p", &config, "", |k| (AUTHORIZATION, k.to_string()), &[])
            .expect("client");
        let Err(e) = base.post("/chat/completions", &serde_json::json!({})).await else {
            panic!("nothing listens on port 1");
        };
        let message = e.to_string();
        assert!(!message.contains("s3cr3t"), "{message}");
        assert!(!message.contains("t0k3n"), "{message}");
        assert!(
            message.contains("127.0.0.1:1/v1/chat/completions?sig=****"),
            "the URL is still named: {message}"
        );
    }
}
