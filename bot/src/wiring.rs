//! Wiring for the front ends: runs the HTTP server (with the Slack routes
//! when `[slack]` is configured, or its Socket Mode connection when
//! `slack.app_token_env` is set, and the Discord connection when
//! `[discord]` is, and the dashboard unless `dashboard.enabled = false`)
//! with a graceful shutdown on Ctrl-C or SIGTERM.

use anyhow::Context;
use gateway::{Config, Gateway};

/// Runs the HTTP server until Ctrl-C or SIGTERM.
pub async fn serve(app: &Gateway, config: &Config) -> anyhow::Result<()> {
    let state = app.http_state(config, |var| std::env::var(var).ok());
    if state.keys.is_empty() && !config.server.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %config.server.listen,
            "no API keys are configured (server.api_keys_env): only loopback clients will be served"
        );
    }
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {} (server.listen)", config.server.listen))?;
    tracing::info!(listen = %config.server.listen, "serving the OpenAI-compatible API at /v1/chat/completions");
    let mut router = gateway::http::api::app(state);
    if config.dashboard.enabled {
        tracing::info!(
            "serving the dashboard at /dashboard (accounts: `switchboard admin add NAME`)"
        );
        let dashboard = gateway::http::dashboard::Dashboard::new(
            app.store.clone(),
            app.admin.clone(),
            app.pipeline.clone(),
            config.dashboard.clone(),
        );
        router = router.merge(dashboard.router());
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut slack_socket = None;
    if let Some(slack) = crate::slack::Slack::from_config(app, config)? {
        slack_socket = slack.start_socket(stopped.clone());
        if slack_socket.is_some() {
            tracing::info!("Slack: connecting over Socket Mode (slack.app_token_env)");
        } else {
            tracing::info!("Slack: serving /slack/events, /slack/commands and /slack/interactions");
            router = router.merge(slack.router());
        }
    }
    let discord = crate::discord::start(app, config, stopped)?;
    let limits = gateway::http::server::ConnectionLimits::from(&config.server);
    gateway::http::server::serve(listener, router, limits, async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    })
    .await?;
    if let Some(task) = discord {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
    }
    if let Some(task) = slack_socket {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
    }
    tracing::info!("stopped; writing the last rows");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
