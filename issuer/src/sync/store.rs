//! The redemption logs in the issuer's database, so that every issuer instance on one database serves
//! the same log for an event (a device syncing with instance A sees what another synced with B).
//!
//! scanner-core's [`SyncLog`] decides; this module stores, following its persistence contract:
//!
//! - `sync_chunks(event_id, seq, bytes)`: the log's pieces, loaded in `seq` order. An exchange appends one
//!   chunk; after `COMPACT_AFTER_CHUNKS` of them a full save replaces them all (with a higher `seq`, so a
//!   reader that is behind simply reads it as its next piece).
//! - `sync_peers(event_id, peer_key, state)`: each peer's sync state (best effort).
//!
//! Each instance keeps a copy of each event's log in memory with the `seq` it has read up to. An exchange
//! runs in one transaction: lock the event's row in `sync_log_locks` (every instance's exchanges on the
//! event take turns; the event's own row, which order commits lock, stays free), read the pieces other instances stored since this copy's `seq`, apply them,
//! run the exchange, insert the new piece and the peer's state, commit, and only then reply. If anything
//! of that write fails the copy is dropped (it holds what the store does not) and the answer is 507:
//! nothing was accepted, and the next request loads the log again from the store. Reading the report
//! catches up the same way without the lock (a committed piece is never half visible).
//!
//! Upgrade: an event whose log is not in the database yet but still in the issuer's old log file
//! (`DATA_DIR/redemptions/event-<id>.log`, the file storage a venue hub still uses) gets that file
//! imported, validated, as its first piece on first use; the file is left as it was.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use scanner_core::redemption::document::{encode_peer_state, PeerState};
use scanner_core::redemption::server_log::log_path;
use scanner_core::redemption::sync_log::{StoreAs, SyncLog, Write};
use sqlx::Any;

use super::logs::{damaged, Held, SyncLogs};
use crate::error::{Error, Result};
use crate::state::AppState;

/// A write the store refused: 507, nothing accepted.
fn refused_write(e: sqlx::Error) -> Error {
    Error::Storage(format!("redemption log: {e}"))
}

/// Locks the event's log until the transaction on `conn` ends (one upsert both dialects run: on
/// PostgreSQL it takes the row lock another instance's writer waits for; SQLite's single writer
/// serialises anyway).
async fn lock_log(conn: &mut crate::db::Conn, event: u32) -> Result<()> {
    sqlx::query(
        "INSERT INTO sync_log_locks (event_id) VALUES ($1) \
         ON CONFLICT (event_id) DO UPDATE SET event_id = excluded.event_id",
    )
    .bind(i64::from(event))
    .execute(conn)
    .await
    .map_err(refused_write)?;
    Ok(())
}

/// The event's pieces after `seq`, in order.
async fn pieces_after<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    event: u32,
    seq: i64,
) -> Result<Vec<(i64, Vec<u8>)>> {
    Ok(sqlx::query_as("SELECT seq, bytes FROM sync_chunks WHERE event_id = $1 AND seq > $2 ORDER BY seq")
        .bind(i64::from(event))
        .bind(seq)
        .fetch_all(db)
        .await?)
}

/// Runs CPU-bound log work off the async workers; the copy comes back with the result (a panic loses the
/// copy, which is then loaded again from the store).
async fn blocking<T: Send + 'static>(
    mut held: Held,
    f: impl FnOnce(&mut Held) -> T + Send + 'static,
) -> Result<(Held, T)> {
    tokio::task::spawn_blocking(move || {
        let out = f(&mut held);
        (held, out)
    })
    .await
    .map_err(Error::internal)
}

/// The directory of the issuer's old file logs.
pub fn file_logs_dir(state: &AppState) -> PathBuf {
    state.config.data_dir.join("redemptions")
}

impl SyncLogs {
    fn slot(&self, event: u32) -> Result<Arc<tokio::sync::Mutex<Option<Held>>>> {
        let mut events = self.events.lock().map_err(|_| Error::internal("sync log table poisoned"))?;
        Ok(events.entry(event).or_default().clone())
    }

    /// One exchange on the event's log: `f` gets the log caught up with the store and the peer's sync
    /// state (`peer_key`), and returns its answer with what must be stored. The write and the peer's new
    /// state are committed before this returns the answer. An error of `f` changes nothing.
    pub async fn exchange<T: Send + 'static>(
        &self,
        state: &AppState,
        event: u32,
        peer_key: &str,
        f: impl FnOnce(&mut SyncLog, &mut PeerState) -> Result<(T, Option<Write>)> + Send + 'static,
    ) -> Result<T> {
        let slot = self.slot(event)?;
        let mut guard = slot.lock().await;
        let held = match guard.take() {
            Some(held) => held,
            None => load(state, event).await?,
        };
        let id = i64::from(event);
        let mut tx = state.db.write.begin().await?;
        lock_log(&mut tx, event).await?;
        let pieces = pieces_after(&mut *tx, event, held.seq).await?;
        let stored_peer: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT state FROM sync_peers WHERE event_id = $1 AND peer_key = $2")
                .bind(id)
                .bind(peer_key)
                .fetch_optional(&mut *tx)
                .await?;
        let stored_peer = stored_peer.map(|(bytes,)| bytes);
        let (key, stored) = (peer_key.to_owned(), stored_peer.clone());
        let (mut held, ran) = blocking(held, move |held| -> Result<_> {
            held.catch_up(event, pieces)?;
            let mut peer = held.peer_state(&key, stored.as_deref());
            let (answer, write) = f(&mut held.log, &mut peer)?;
            Ok((answer, write, peer))
        })
        .await?;
        let (answer, write, peer) = match ran {
            Ok(ran) => ran,
            Err(e) => {
                // Refused: the log and the peer's state are as they were (the rollback drops the lock).
                *guard = Some(held);
                return Err(e);
            }
        };
        let peer_bytes = encode_peer_state(&peer);
        let next_seq = held.seq + 1;
        // On any failure from here `held` is dropped with the guard left empty: the copy may hold changes
        // the store refused.
        if let Some(write) = &write {
            if write.store_as == StoreAs::FullSave {
                sqlx::query("DELETE FROM sync_chunks WHERE event_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(refused_write)?;
            }
            sqlx::query("INSERT INTO sync_chunks (event_id, seq, bytes) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(next_seq)
                .bind(write.bytes.as_slice())
                .execute(&mut *tx)
                .await
                .map_err(refused_write)?;
        }
        if stored_peer.as_ref() != Some(&peer_bytes) {
            sqlx::query(
                "INSERT INTO sync_peers (event_id, peer_key, state) VALUES ($1, $2, $3) \
                 ON CONFLICT (event_id, peer_key) DO UPDATE SET state = excluded.state",
            )
            .bind(id)
            .bind(peer_key)
            .bind(peer_bytes.as_slice())
            .execute(&mut *tx)
            .await
            .map_err(refused_write)?;
        }
        tx.commit().await.map_err(refused_write)?;
        if let Some(write) = write {
            held.log.stored(write);
            held.seq = next_seq;
        }
        held.peers.insert(peer_key.to_owned(), (peer, peer_bytes));
        *guard = Some(held);
        Ok(answer)
    }

    /// Reads the event's log (caught up with the store) without writing: the report, the check-ins.
    pub async fn read<T: Send + 'static>(
        &self,
        state: &AppState,
        event: u32,
        f: impl FnOnce(&mut SyncLog) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let slot = self.slot(event)?;
        let mut guard = slot.lock().await;
        let held = match guard.take() {
            Some(held) => held,
            None => load(state, event).await?,
        };
        let pieces = pieces_after(&state.db.read, event, held.seq).await?;
        let (held, out) = blocking(held, move |held| {
            held.catch_up(event, pieces)?;
            f(&mut held.log)
        })
        .await?;
        *guard = Some(held);
        out
    }
}

/// Loads the event's log from the store, importing the old log file first if the store has none.
async fn load(state: &AppState, event: u32) -> Result<Held> {
    let mut pieces = pieces_after(&state.db.read, event, 0).await?;
    if pieces.is_empty() && import_file_log(state, event).await? {
        pieces = pieces_after(&state.db.read, event, 0).await?;
    }
    let count = pieces.len();
    let seq = pieces.last().map_or(0, |(seq, _)| *seq);
    let bytes: Vec<u8> = pieces.into_iter().flat_map(|(_, bytes)| bytes).collect();
    let log = tokio::task::spawn_blocking(move || SyncLog::load(&bytes, count, None))
        .await
        .map_err(Error::internal)?
        .map_err(|e| damaged(event, e))?;
    Ok(Held { log, seq, peers: HashMap::new() })
}

/// Imports the event's old log file (from before the log moved into the database) as its first piece,
/// if there is one and the store holds no piece of the event yet. Returns whether it did.
async fn import_file_log(state: &AppState, event: u32) -> Result<bool> {
    let path = log_path(&file_logs_dir(state), event);
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) if !bytes.is_empty() => bytes,
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::Internal(format!("reading {}: {e}", path.display()))),
    };
    // Validated before it goes in: a damaged file needs an operator, never a silent reset.
    let (check, shown) = (bytes.clone(), path.display().to_string());
    let records = tokio::task::spawn_blocking(move || SyncLog::load(&check, 1, None).map(|log| log.record_count()))
        .await
        .map_err(Error::internal)?
        .map_err(|e| Error::Internal(format!("the redemption log file {shown} cannot be imported: {e}")))?;
    let id = i64::from(event);
    let mut tx = state.db.write.begin().await?;
    lock_log(&mut tx, event).await?;
    // Another instance (or an earlier start) may have imported it or written the log already.
    let stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sync_chunks WHERE event_id = $1").bind(id).fetch_one(&mut *tx).await?;
    if stored > 0 {
        return Ok(false);
    }
    sqlx::query("INSERT INTO sync_chunks (event_id, seq, bytes) VALUES ($1, 1, $2)")
        .bind(id)
        .bind(bytes.as_slice())
        .execute(&mut *tx)
        .await
        .map_err(refused_write)?;
    tx.commit().await.map_err(refused_write)?;
    tracing::info!(event, records, file = %path.display(), "imported the redemption log file into the database");
    Ok(true)
}
