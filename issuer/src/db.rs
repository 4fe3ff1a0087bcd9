//! The store: a SQLite file in the data directory, in WAL mode, with migrations run at start.
//!
//! Writes go through a pool of exactly one connection, so write transactions queue in-process instead
//! of contending for SQLite's lock; reads use a separate pool of read-only connections that WAL lets run
//! concurrently with the writer. Capacity checks never rely on this serialisation: reservations are
//! conditional `UPDATE`s that are also correct under PostgreSQL's row locking.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::config::Synchronous;
use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct Db {
    /// The single writer connection.
    pub write: SqlitePool,
    /// Read-only connections.
    pub read: SqlitePool,
}

impl Db {
    pub async fn open(data_dir: &Path, sync: Synchronous) -> Result<Self> {
        let path = data_dir.join("issuer.sqlite3");
        let url = format!("sqlite://{}", path.display());
        let base = SqliteConnectOptions::from_str(&url)
            .map_err(Error::Database)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                Synchronous::Full => SqliteSynchronous::Full,
                Synchronous::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base.clone().create_if_missing(true))
            .await?;
        sqlx::migrate!("./migrations")
            .run(&write)
            .await
            .map_err(|e| Error::Internal(format!("migration failed: {e}")))?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base.read_only(true))
            .await?;
        Ok(Self { write, read })
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}
