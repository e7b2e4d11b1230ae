//! Keeping the snapshot current across processes: a background task reloads it at once on a
//! PostgreSQL NOTIFY, and whenever a periodic check finds the registry's generation moved
//! (the backstop for a lost notification, and the only signal on SQLite).

use std::time::Duration;

use tokio::sync::watch;

use super::Registry;
use crate::store::Backend;

impl Registry {
    /// Reloads when another process changes the registry: at once on a
    /// PostgreSQL NOTIFY, and whenever the generation moved at each poll.
    pub(super) async fn watch(self, poll: Duration, mut stop: watch::Receiver<bool>) {
        let store = self.inner.store.clone();
        let mut listener: Option<sqlx::postgres::PgListener> = None;
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if store.backend() == Backend::Postgres && listener.is_none() {
                match listen(store.url()).await {
                    Ok(l) => {
                        listener = Some(l);
                        // Changes made while not listening.
                        self.reload_logged().await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot LISTEN for prompt registry changes; polling instead");
                    }
                }
            }
            tokio::select! {
                _ = stop.changed() => return,
                n = recv(&mut listener) => match n {
                    Ok(Some(_)) => self.reload_logged().await,
                    // The connection dropped; it reconnects on the next call.
                    Ok(None) => self.reload_logged().await,
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the LISTEN connection for prompt changes; reconnecting");
                        listener = None;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                },
                _ = ticker.tick() => {
                    match store.registry_generation().await {
                        Ok(g) if g != self.generation() => self.reload_logged().await,
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot check the prompt registry for changes"),
                    }
                }
            }
        }
    }

    async fn reload_logged(&self) {
        if let Err(e) = self.reload().await {
            tracing::warn!(error = %e, "cannot reload the prompt registry; serving the last snapshot");
        }
    }
}

async fn listen(url: &str) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut l = sqlx::postgres::PgListener::connect(url).await?;
    l.listen(crate::store::NOTIFY_CHANNEL).await?;
    Ok(l)
}

async fn recv(
    listener: &mut Option<sqlx::postgres::PgListener>,
) -> Result<Option<sqlx::postgres::PgNotification>, sqlx::Error> {
    match listener {
        Some(l) => l.try_recv().await,
        None => std::future::pending().await,
    }
}
