//! A sync server's durable copy of one event's redemption log in plain files: the storage of a venue hub
//! (`scanner hub`). The decisions (what to take from a peer, what to answer, what to store first) are
//! [`SyncLog`]'s, which this module only stores; the issuer keeps the same log in its database instead.
//!
//! ## Files
//!
//! In the directory given to [`ServerLog::open`]:
//!
//! - `event-<id>.log`: a full automerge save, followed by incremental chunks, each appended and fsync'd.
//!   After [`COMPACT_AFTER_CHUNKS`] chunks the file is rewritten as one full save (written to
//!   `event-<id>.log.tmp`, fsync'd, then renamed over the log).
//! - `event-<id>.peers/<peer key>`: the sync state of each peer (the heads both sides had at the end of the
//!   last exchange), so that a peer that reconnects only exchanges what is new. Best effort: a lost or
//!   damaged peer state only makes the next exchange with that peer longer.
//!
//! ## Persistence contract
//!
//! - Whatever this log answers for is on disk first: when an exchange (or [`ServerLog::append_own`]) changes
//!   the document, the new chunk is appended and fsync'd *before* the reply is returned, and the peer's
//!   state is stored only after that.
//! - A failed write (full disk, I/O error) leaves the file as it was (a partial append is cut back) and
//!   returns [`ServerLogKind::Storage`]; the in-memory document then holds changes the file does not, so
//!   the caller must drop this `ServerLog` ([`ServerLogs::with`] does) and reopen it: the peer is refused,
//!   sends the same changes again later, and nothing it was told is lost by a restart.
//! - A refused message (a [`crate::Error::Sync`]) changes neither the document nor the peer's state.
//!
//! A log may be *owned* by a device id (a venue hub writes its own decisions into the log it serves, as
//! that device, [`ServerLog::append_own`]); the issuer's logs are owned by no one.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::decision::ScanIndex;
use super::document::{decode_peer_state, encode_peer_state, Accept, PeerState, Received};
use super::document::{RedemptionDoc, ServerReply, SyncChannel};
use super::record::{DeviceId, Hlc, ScanRecord, TicketRef};
use super::report::{CheckIn, EventReport};
pub use super::sync_log::ServerLogKind;
use super::sync_log::{ClientStep, ClientTurn, Exchange, StoreAs, SyncLog, Write};

pub use super::sync_log::COMPACT_AFTER_CHUNKS;

/// The log file of `event` in `dir`.
pub fn log_path(dir: &Path, event: u32) -> PathBuf {
    dir.join(format!("event-{event}.log"))
}

/// The directory of `event`'s peer states in `dir`.
pub fn peers_dir(dir: &Path, event: u32) -> PathBuf {
    dir.join(format!("event-{event}.peers"))
}

/// One event's log on a sync server, in files: [`SyncLog`] and its storage. See the module documentation.
#[derive(Debug)]
pub struct ServerLog {
    path: PathBuf,
    peers_dir: PathBuf,
    log: SyncLog,
    peers: HashMap<String, PeerState>,
}

impl ServerLog {
    /// Opens (or creates, empty) the log of `event` in `dir`. With `owner`, this log's own records
    /// ([`Self::append_own`]) are written as that device.
    pub fn open(dir: &Path, event: u32, owner: Option<DeviceId>) -> crate::Result<Self> {
        let path = log_path(dir, event);
        let storage = |source| crate::Error::from(ServerLogKind::Storage { path: path.clone(), source });
        std::fs::create_dir_all(dir).map_err(storage)?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(storage(e)),
        };
        let damaged =
            |source| crate::Error::from(ServerLogKind::Damaged { path: path.clone(), source: Box::new(source) });
        // Chunks are counted from this process's first append on, as they always were for the file.
        let log = SyncLog::load(&bytes, 0, owner).map_err(damaged)?;
        Ok(Self { peers_dir: peers_dir(dir, event), path, log, peers: HashMap::new() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn doc(&self) -> &RedemptionDoc {
        self.log.doc()
    }

    /// The device this log's own records are written as, if any.
    pub fn owner(&self) -> Option<DeviceId> {
        self.log.owner()
    }

    fn storage(&self, source: std::io::Error) -> crate::Error {
        ServerLogKind::Storage { path: self.path.clone(), source }.into()
    }

    fn peer_state(&self, peer_key: &str) -> PeerState {
        if let Some(state) = self.peers.get(peer_key) {
            return state.clone();
        }
        std::fs::read(self.peers_dir.join(peer_file(peer_key)))
            .ok()
            .and_then(|bytes| decode_peer_state(&bytes).ok())
            .unwrap_or_default()
    }

    fn save_peer(&mut self, peer_key: &str, state: PeerState) {
        // Losing a peer state only makes the next sync with that peer cost more: best effort.
        let _ = std::fs::create_dir_all(&self.peers_dir);
        let _ = std::fs::write(self.peers_dir.join(peer_file(peer_key)), encode_peer_state(&state));
        self.peers.insert(peer_key.to_owned(), state);
    }

    /// Stores what the log hands back: a chunk is appended to the file and fsync'd, a full save is
    /// written beside it and renamed over it. The saved point moves only after the write is durable.
    fn persist(&mut self, write: Option<Write>) -> crate::Result<()> {
        let Some(write) = write else { return Ok(()) };
        match write.store_as {
            StoreAs::Chunk => self.append(&write.bytes)?,
            StoreAs::FullSave => self.replace(&write.bytes)?,
        }
        self.log.stored(write);
        Ok(())
    }

    fn append(&self, chunk: &[u8]) -> crate::Result<()> {
        let appended = (|| {
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
            let len = file.metadata()?.len();
            if let Err(e) = file.write_all(chunk).and_then(|()| file.sync_data()) {
                // A partial append would make the whole file unreadable: cut it back to what it was.
                let _ = file.set_len(len).and_then(|()| file.sync_data());
                return Err(e);
            }
            Ok(())
        })();
        appended.map_err(|e| self.storage(e))
    }

    /// Rewrites the log file atomically: a temporary file renamed over it.
    fn replace(&self, full: &[u8]) -> crate::Result<()> {
        let tmp = self.path.with_extension("log.tmp");
        let written = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(full)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // The rename itself is durable once the directory is.
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.storage(e));
        }
        Ok(())
    }

    /// Rewrites the log file as one full save.
    pub fn compact(&mut self) -> crate::Result<()> {
        let full = self.log.full_save();
        self.persist(Some(full))
    }

    /// One exchange with one peer (the server's side): takes what `accept` allows from `message`, stores
    /// it durably, and returns the reply to send back (`None`: nothing to say). `peer_key` names the peer's
    /// sync state (e.g. its device id and channel); it must identify the authenticated peer.
    pub fn serve(
        &mut self,
        peer_key: &str,
        message: &[u8],
        accept: Accept<'_>,
        channel: SyncChannel,
    ) -> crate::Result<Option<Vec<u8>>> {
        Ok(self.serve_exchange(peer_key, message, accept, channel)?.reply)
    }

    /// [`Self::serve`], also saying what the message brought (new records, and changes refused because a
    /// relay may not carry their device, [`Accept::writers`]).
    pub fn serve_exchange(
        &mut self,
        peer_key: &str,
        message: &[u8],
        accept: Accept<'_>,
        channel: SyncChannel,
    ) -> crate::Result<ServerReply> {
        let mut state = self.peer_state(peer_key);
        let Exchange { served, write } = self.log.serve(&mut state, message, accept, channel)?;
        self.persist(write)?;
        self.save_peer(peer_key, state);
        Ok(served)
    }

    /// One step of a session this log runs as the *client* with another server: see
    /// [`SyncLog::client_step`]. What the reply brought is durable when this returns.
    pub fn client_step(
        &mut self,
        peer_key: &str,
        channel: SyncChannel,
        turn: ClientTurn<'_>,
        now_ms: u64,
    ) -> crate::Result<(Option<Vec<u8>>, Received)> {
        let mut state = self.peer_state(peer_key);
        let ClientStep { message, received, write } = self.log.client_step(&mut state, channel, turn, now_ms)?;
        self.persist(write)?;
        self.save_peer(peer_key, state);
        Ok((message, received))
    }

    /// The decision index over everything this log holds (every device's scans and this log's own).
    pub fn index(&mut self) -> crate::Result<&ScanIndex> {
        self.log.index()
    }

    /// Records one of this log's own decisions (as its owner, at `gate`, named `name`) durably, before the
    /// caller answers for it.
    pub fn append_own(&mut self, name: &str, gate: &str, record: ScanRecord, now_secs: i64) -> crate::Result<()> {
        let write = self.log.append_own(name, gate, record, now_secs)?;
        self.persist(Some(write))
    }

    /// The latest clock value of any scan of this ticket slot the log knows (a new online decision sorts
    /// after it).
    pub fn last_hlc(&mut self, ticket: &TicketRef, addon: Option<u8>) -> crate::Result<Hlc> {
        self.log.last_hlc(ticket, addon)
    }

    /// The organizer's report over everything this log holds.
    pub fn report(&self) -> crate::Result<EventReport> {
        self.log.report()
    }

    /// The report and its check-in list ([`EventReport::with_check_ins`]).
    pub fn check_ins(&self) -> crate::Result<(EventReport, Vec<CheckIn>)> {
        self.log.check_ins()
    }

    pub fn record_count(&self) -> usize {
        self.log.record_count()
    }
}

/// A peer key as a file name: anything but ASCII letters, digits, `.`, `-` and `_` is replaced, so no key
/// can name a path outside the peers directory.
fn peer_file(peer_key: &str) -> String {
    let name: String = peer_key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    if name.starts_with('.') {
        format!("_{name}")
    } else {
        name
    }
}

/// The open logs of one server process, by file: each event's log is loaded once and shared by every
/// request (one `Mutex` per log serialises its exchanges).
#[derive(Debug, Default)]
pub struct ServerLogs {
    open: Mutex<HashMap<PathBuf, Arc<Mutex<ServerLog>>>>,
}

impl ServerLogs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` on the log of `event` in `dir` (opened on first use). If `f` fails with a storage error,
    /// the in-memory copy (which may hold what could not be stored) is dropped, so the next call reloads
    /// what is on disk.
    pub fn with<T>(
        &self,
        dir: &Path,
        event: u32,
        owner: Option<DeviceId>,
        f: impl FnOnce(&mut ServerLog) -> crate::Result<T>,
    ) -> crate::Result<T> {
        let path = log_path(dir, event);
        let log = {
            let mut open = self.open.lock().map_err(|_| ServerLogKind::Poisoned)?;
            match open.get(&path) {
                Some(log) => log.clone(),
                None => {
                    let log = Arc::new(Mutex::new(ServerLog::open(dir, event, owner)?));
                    open.insert(path.clone(), log.clone());
                    log
                }
            }
        };
        let mut guard = log.lock().map_err(|_| ServerLogKind::Poisoned)?;
        let result = f(&mut guard);
        if matches!(result, Err(crate::Error::ServerLog(ServerLogKind::Storage { .. }))) {
            drop(guard);
            if let Ok(mut open) = self.open.lock() {
                open.remove(&path);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{served, ticket_ref};

    #[test]
    fn own_records_survive_a_reopen_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let hub = DeviceId(0x4242);
        {
            let mut log = ServerLog::open(dir.path(), 7, Some(hub)).unwrap();
            log.append_own("hub", "North", served(1, 10), 0).unwrap();
            log.append_own("hub", "South", served(2, 11), 0).unwrap();
            assert_eq!(log.last_hlc(&ticket_ref(1), None).unwrap(), Hlc(10_000 << 16));
        }
        let mut log = ServerLog::open(dir.path(), 7, Some(hub)).unwrap();
        assert_eq!(log.record_count(), 2);
        let own = log.doc().device_log(hub).unwrap().unwrap();
        assert_eq!(own.gates, ["North", "South"]);
        assert_eq!(own.records.iter().map(|r| r.gate).collect::<Vec<_>>(), [0, 1]);
        log.compact().unwrap();
        log.append_own("hub", "North", served(3, 12), 0).unwrap();
        let log = ServerLog::open(dir.path(), 7, Some(hub)).unwrap();
        assert_eq!(log.record_count(), 3);
        assert_eq!(log.report().unwrap().admitted, 3);
    }

    #[test]
    fn a_log_owned_by_no_one_records_nothing_and_peer_keys_stay_in_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ServerLog::open(dir.path(), 1, None).unwrap();
        assert!(matches!(
            log.append_own("x", "g", served(1, 1), 0),
            Err(crate::Error::ServerLog(ServerLogKind::NotOwned))
        ));
        assert_eq!(peer_file("../../etc/passwd"), "_.._.._etc_passwd");
        assert_eq!(peer_file("00ab.push"), "00ab.push");
    }
}
