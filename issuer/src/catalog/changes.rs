//! Catalog changes reach every issuer instance's pricing cache at once.
//!
//! Each instance caches the events it prices orders with ([`super::model::PricingCache`]). A catalog write
//! clears the writing instance's cache, but with several instances on one PostgreSQL the others would keep
//! selling at the old price (or in a closed sales window) until their cache entry ages out. So every
//! catalog write commits through [`commit`], which on PostgreSQL also sends a `NOTIFY` on
//! [`CHANNEL`] inside the same transaction: PostgreSQL delivers it exactly when, and only if, the change
//! commits. Every instance runs [`follow`], which `LISTEN`s and clears its cache on each notification.
//!
//! The listener's own connection can drop (a database restart, a network blip). A change committed while
//! it was down is never delivered, so on reconnecting the cache is cleared anyway; until then, the cache's
//! short expiry bounds how stale a price can be. SQLite is one process: [`commit`] just clears the cache.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::db::{Backend, Tx};
use crate::error::Result;
use crate::state::AppState;

/// The notification channel of catalog changes.
pub const CHANNEL: &str = "tickets_catalog_changed";

/// Commits a catalog write and makes every instance forget its cached events.
pub async fn commit(mut tx: Tx<'_>, state: &AppState) -> Result<()> {
    if state.db.backend == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    state.pricing.invalidate();
    Ok(())
}

/// Clears this instance's pricing cache whenever another instance (or this one) commits a catalog change,
/// until shutdown. PostgreSQL only; returns at once on SQLite.
pub async fn follow(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let Some(url) = state.config.database_url.clone().filter(|_| state.db.backend == Backend::Postgres) else {
        return;
    };
    let mut retry = RETRY_FIRST;
    loop {
        tokio::select! {
            e = listen(&state, &url, &mut retry) => {
                tracing::warn!(error = %e, retry_ms = retry.as_millis() as u64, "listening for catalog changes failed");
            }
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// The first wait before listening again after a failure; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Listens on [`CHANNEL`] and clears the cache on each notification; returns only with the error that
/// stopped it. `retry` goes back to its first value once listening has started.
async fn listen(state: &AppState, url: &str, retry: &mut Duration) -> sqlx::Error {
    let mut listener = match PgListener::connect(url).await {
        Ok(l) => l,
        Err(e) => return e,
    };
    if let Err(e) = listener.listen(CHANNEL).await {
        return e;
    }
    *retry = RETRY_FIRST;
    // Changes committed while this instance was not listening were never delivered to it.
    state.pricing.invalidate();
    loop {
        match listener.try_recv().await {
            Ok(Some(_)) => state.pricing.invalidate(),
            // The connection dropped. A new listener is started (and clears the cache once it listens): what
            // was committed before then never reaches this instance.
            Ok(None) => return sqlx::Error::Protocol("the listening connection closed".into()),
            Err(e) => return e,
        }
    }
}
