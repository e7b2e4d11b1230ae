//! The connection loop of `switchboard serve`. `axum::serve` keeps a
//! connection for as long as the client likes: a client sending one header
//! line every few seconds (slowloris), or a body a byte at a time, holds a
//! connection and its task forever, and `/slack/*` has to be public. This
//! loop runs the same router on hyper directly, with what a public server
//! needs, all set in `[server]`:
//!
//! - a header-read timeout (`header_timeout_ms`), counted from the moment
//!   the server waits for a request: on a new connection, and on a kept-alive
//!   one after the previous answer, so it also closes idle keep-alive
//!   connections;
//! - a body-read timeout (`body_timeout_ms`): the whole request body must
//!   arrive within it, or the request fails (the answer itself may stream
//!   for as long as it takes);
//! - a cap on open connections (`max_connections`): past it a new
//!   connection is answered `503` with `Retry-After` at once and closed;
//! - keep-alive on or off (`keep_alive`).
//!
//! Shutdown is graceful, as before: no new connections, requests in flight
//! finish.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower_service::Service;

use crate::config::ServerConfig;

/// How long connections may take, and how many may be open.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// The longest wait for a request's headers (also the idle limit of a
    /// kept-alive connection).
    pub header_timeout: Duration,
    /// The longest a request's body may take to arrive.
    pub body_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// Whether connections are kept alive between requests.
    pub keep_alive: bool,
}

impl From<&ServerConfig> for ConnectionLimits {
    fn from(c: &ServerConfig) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_millis(c.header_timeout_ms),
            body_timeout: Duration::from_millis(c.body_timeout_ms),
            max_connections: c.max_connections,
            keep_alive: c.keep_alive,
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits::from(&ServerConfig::default())
    }
}

/// The body a connection past the cap is answered with before it is closed.
const BUSY: &str = r#"{"error":{"message":"the server has too many open connections (server.max_connections); try again shortly","type":"server_error","code":"too_many_connections"}}"#;

/// Serves `router` on `listener` until `shutdown` resolves; requests in
/// flight are finished first.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let busy_logged = AtomicU64::new(0);
    let started = Instant::now();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a moment rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            // Log at most once a minute while the cap is reached.
            let minute = started.elapsed().as_secs() / 60 + 1;
            if busy_logged.swap(minute, Ordering::Relaxed) != minute {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "too many open connections: new ones are answered 503 (server.max_connections)"
                );
            }
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let body_timeout = limits.body_timeout;
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut router = router.clone();
            let mut request = request.map(|body| Body::new(Deadline::new(body, body_timeout)));
            request.extensions_mut().insert(ConnectInfo(peer));
            router.call(request)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .keep_alive(limits.keep_alive);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Answers a connection past the cap and closes it.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BUSY}",
            BUSY.len()
        );
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Why a request body failed: it did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} (server.body_timeout_ms); send it at once")]
pub struct BodyTimeout(Duration);

/// A request body that fails once its time is up. The timer is only made
/// when the body is not all there at the first read, so a request whose body
/// came with its headers costs no timer.
struct Deadline<B> {
    inner: B,
    deadline: Instant,
    limit: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> Deadline<B> {
    fn new(inner: B, limit: Duration) -> Deadline<B> {
        Deadline {
            inner,
            deadline: Instant::now() + limit,
            limit,
            sleep: None,
        }
    }
}

impl<B> http_body::Body for Deadline<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimeout(this.limit).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
