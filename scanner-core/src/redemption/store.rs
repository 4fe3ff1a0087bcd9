//! The durable device-local redemption log, on sled: a thin persistence wrapper over
//! [`super::device::Device`], which holds all the scanning logic. It follows the persistence contract in
//! the `device` module's documentation.
//!
//! sled holds, in one database directory:
//!
//! - `pending`: every scan this device recorded that is not yet folded into the document, as its 32-byte
//!   record (plus the override reason, if any), keyed by a local sequence number. A scan is inserted here
//!   and the database flushed (fsync) **before** its verdict is returned: a kill -9 right after an admit
//!   finds the scan after restart.
//! - `state`: the automerge document, saved incrementally as chunks (`chunk/<n>`), and `folded`, the last
//!   pending sequence number already in the document. Both change in one atomic batch, so a crash never
//!   folds a scan twice or loses one. Chunks are compacted into one full save now and then.
//! - `config`: device id and name, gate table, event id, cached keyring, revocation list and manifest,
//!   sync server address and device token, edge Worker address.
//! - `peers`: per-peer sync state (the heads both sides had at the last exchange), so that a resumed or
//!   repeated sync only exchanges what is new.
//!
//! Pending scans are folded into the document in batches (every [`DEFAULT_FOLD_EVERY`] scans, before a
//! sync and before a report), one automerge change per batch; on open, any scans not yet in the document
//! are taken from `pending`.

use std::path::{Path, PathBuf};

use super::decision::{ScanIndex, ScanInput};
use super::device::{Device, DeviceKind, Fold, PendingWrite, Receipt, SavedDevice, ScanOutcome};
use super::document::{decode_peer_state, encode_peer_state, RedemptionDoc, SyncChannel};
use super::door::{EdgeAnswer, EdgeQuestion, ScanPlan, ScanRequest};
use super::record::{DeviceId, ScanKind};
use super::report::EventReport;
use crate::keyring::Keyring;
use crate::revocation::RevocationList;
use crate::wire::EdgeVerdict;

pub use super::device::DEFAULT_FOLD_EVERY;

/// Incremental chunks are compacted into one full save beyond this many.
pub const COMPACT_AFTER_CHUNKS: u64 = 64;
/// A sync that has not converged after this many round trips is abandoned (and can be resumed).
pub const MAX_SYNC_ROUNDS: usize = 64;

const CFG_DEVICE: &[u8] = b"device";
const CFG_NAME: &[u8] = b"name";
const CFG_GATES: &[u8] = b"gates";
const CFG_EVENT: &[u8] = b"event";
const CFG_KEYRING: &[u8] = b"keyring";
const CFG_REVOCATIONS: &[u8] = b"revocations";
const CFG_MANIFEST: &[u8] = b"manifest";
const CFG_SERVER: &[u8] = b"server";
const CFG_TOKEN: &[u8] = b"token";
const CFG_EDGE: &[u8] = b"edge";
const CFG_GATE_RULES: &[u8] = b"gate-rules";
const CFG_SUPERVISOR: &[u8] = b"supervisor-pass";
const STATE_FOLDED: &[u8] = b"folded";
const CHUNK_PREFIX: &[u8] = b"chunk/";

/// How a sync went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncSummary {
    pub round_trips: usize,
    pub bytes_sent: usize,
    pub bytes_received: usize,
    pub new_records: usize,
}

/// A scan that was recorded durably, with the verdict to show.
pub type RecordedScan = ScanOutcome;

/// The durable device-local redemption log.
pub struct RedemptionLog {
    path: PathBuf,
    db: sled::Db,
    pending_tree: sled::Tree,
    state: sled::Tree,
    config: sled::Tree,
    peers: sled::Tree,
    scanner: Device,
    next_chunk: u64,
}

impl std::fmt::Debug for RedemptionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedemptionLog")
            .field("path", &self.path)
            .field("device", &self.scanner.device())
            .field("records", &self.record_count())
            .finish_non_exhaustive()
    }
}

fn be_u64(bytes: &[u8]) -> crate::Result<u64> {
    let b: [u8; 8] = bytes.try_into().map_err(|_| DeviceKind::Corrupt("bad integer".into()))?;
    Ok(u64::from_be_bytes(b))
}

fn text(bytes: &[u8], what: &str) -> crate::Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| DeviceKind::Corrupt(format!("{what} is not UTF-8")).into())
}

fn chunk_key(n: u64) -> Vec<u8> {
    let mut key = CHUNK_PREFIX.to_vec();
    key.extend_from_slice(&n.to_be_bytes());
    key
}

/// How long [`open_db_file`] waits for sled's file lock before giving up.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens the sled database, waiting briefly if its file lock is still held. sled 0.34 releases the lock
/// from its background threads some time after the last handle is dropped, so reopening a log right
/// after closing it (a restart in the same process, a test) can find it still locked for a moment. A
/// lock held for longer (another scanner process using the same directory) is still an error.
fn open_db_file(path: &Path) -> crate::Result<sled::Db> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match sled::open(path) {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return Ok(other?),
        }
    }
}

fn random_device_id() -> DeviceId {
    loop {
        let id = rand_core::RngCore::next_u64(&mut rand_core::OsRng);
        if id != 0 {
            return DeviceId(id);
        }
    }
}

impl RedemptionLog {
    /// Opens the log in `path`, creating a new device (random id, named `name`) if there is none yet.
    pub fn open_or_create(path: &Path, name: &str) -> crate::Result<Self> {
        Self::open_or_create_as(path, name, None)
    }

    /// Opens the log in `path`, creating a new device named `name` if there is none yet. With `id` (the
    /// id bound to the device's token, [`crate::token::device_id_for_token`]) the device gets that id, and
    /// an existing log written under another id is refused: sync servers take from a device only what
    /// it wrote under its token's id.
    pub fn open_or_create_as(path: &Path, name: &str, id: Option<DeviceId>) -> crate::Result<Self> {
        let db = open_db_file(path)?;
        let config = db.open_tree("config")?;
        match config.get(CFG_DEVICE)? {
            None => {
                // Validates the name before anything is written.
                let device = Device::new(id.unwrap_or_else(random_device_id), name)?;
                config.insert(CFG_NAME, name.as_bytes())?;
                config.insert(CFG_DEVICE, &device.device().0.to_be_bytes())?;
                db.flush()?;
            }
            Some(stored) => {
                let stored = DeviceId(be_u64(&stored)?);
                if let Some(id) = id.filter(|id| *id != stored) {
                    return Err(DeviceKind::OtherDevice { stored, token: id }.into());
                }
            }
        }
        drop(config);
        Self::open_db(path, db)
    }

    /// Opens an existing log.
    pub fn open(path: &Path) -> crate::Result<Self> {
        if !path.exists() {
            return Err(DeviceKind::NotInitialized(path.to_owned()).into());
        }
        let db = open_db_file(path)?;
        Self::open_db(path, db)
    }

    fn open_db(path: &Path, db: sled::Db) -> crate::Result<Self> {
        let config = db.open_tree("config")?;
        let state = db.open_tree("state")?;
        let pending_tree = db.open_tree("pending")?;
        let peers = db.open_tree("peers")?;
        let device = match config.get(CFG_DEVICE)? {
            Some(v) => DeviceId(be_u64(&v)?),
            None => return Err(DeviceKind::NotInitialized(path.to_owned()).into()),
        };
        let get_text = |key: &[u8], what: &str| -> crate::Result<Option<String>> {
            config.get(key)?.map(|v| text(&v, what)).transpose()
        };
        let name = get_text(CFG_NAME, "device name")?.unwrap_or_default();
        let gates: Vec<String> = match config.get(CFG_GATES)? {
            Some(v) => serde_json::from_slice(&v).map_err(|e| DeviceKind::Corrupt(format!("gate table: {e}")))?,
            None => Vec::new(),
        };
        let event_id = match config.get(CFG_EVENT)? {
            Some(v) => Some(u32::try_from(be_u64(&v)?).map_err(|_| DeviceKind::Corrupt("event id".into()))?),
            None => None,
        };
        // The document: every chunk, in order.
        let mut doc = Vec::new();
        let mut next_chunk = 0;
        for item in state.scan_prefix(CHUNK_PREFIX) {
            let (key, value) = item?;
            next_chunk = be_u64(&key[CHUNK_PREFIX.len()..])? + 1;
            doc.extend_from_slice(&value);
        }
        let folded_seq = match state.get(STATE_FOLDED)? {
            Some(v) => be_u64(&v)?,
            None => 0,
        };
        let mut pending = Vec::new();
        for item in pending_tree.range(&(folded_seq + 1).to_be_bytes()[..]..) {
            let (key, value) = item?;
            pending.push((be_u64(&key)?, value.to_vec()));
        }
        let saved = SavedDevice {
            device,
            name,
            gates,
            event_id,
            keyring_json: get_text(CFG_KEYRING, "keyring")?,
            revocations_json: get_text(CFG_REVOCATIONS, "revocation list")?,
            manifest_json: get_text(CFG_MANIFEST, "manifest")?,
            gate_rules_json: get_text(CFG_GATE_RULES, "gate rules")?,
            supervisor_pass: get_text(CFG_SUPERVISOR, "supervisor pass")?,
            doc,
            folded_seq,
            pending,
        };
        let scanner = Device::restore(saved)?;
        // Scans already folded before a crash may still sit in `pending`: drop them now.
        for item in pending_tree.range(..&(folded_seq + 1).to_be_bytes()[..]) {
            let (key, _) = item?;
            pending_tree.remove(key)?;
        }
        Ok(Self { path: path.to_owned(), db, pending_tree, state, config, peers, scanner, next_chunk })
    }

    /// The scanning state machine this log persists.
    pub fn scanner(&self) -> &Device {
        &self.scanner
    }

    pub fn device(&self) -> DeviceId {
        self.scanner.device()
    }

    pub fn device_name(&self) -> &str {
        self.scanner.name()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn event_id(&self) -> Option<u32> {
        self.scanner.event_id()
    }

    /// All records known: the document's plus this device's pending ones.
    pub fn record_count(&self) -> usize {
        self.scanner.record_count()
    }

    pub fn pending_count(&self) -> usize {
        self.scanner.pending().len()
    }

    /// The document (pending scans not included until folded).
    pub fn doc(&self) -> &RedemptionDoc {
        self.scanner.doc()
    }

    pub fn index(&self) -> &ScanIndex {
        self.scanner.index()
    }

    /// Sets how many pending scans trigger a fold (at least 1).
    pub fn set_fold_every(&mut self, n: usize) {
        self.scanner.set_fold_every(n);
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> crate::Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    pub fn keyring(&self) -> Option<&Keyring> {
        self.scanner.keyring()
    }

    pub fn revocations(&self) -> Option<&RevocationList> {
        self.scanner.revocations()
    }

    fn put_config(&self, key: &[u8], value: &[u8]) -> crate::Result<()> {
        self.config.insert(key, value)?;
        self.db.flush()?;
        Ok(())
    }

    /// Stores a new keyring (JSON as published by the issuer).
    pub fn set_keyring(&mut self, json: &str) -> crate::Result<()> {
        self.scanner.set_keyring(json)?;
        self.put_config(CFG_KEYRING, json.as_bytes())
    }

    /// Replaces the revocation list with a complete one (JSON, verified against the keyring).
    pub fn set_revocations(&mut self, json: &str) -> crate::Result<()> {
        let stored = self.scanner.set_revocations(json)?;
        self.put_config(CFG_REVOCATIONS, stored.as_bytes())
    }

    /// Applies a revocation delta (JSON) to the cached list.
    pub fn apply_revocation_delta(&mut self, json: &str) -> crate::Result<()> {
        let stored = self.scanner.apply_revocation_delta(json)?;
        self.put_config(CFG_REVOCATIONS, stored.as_bytes())
    }

    /// The cached revocation list's version (0 if none).
    pub fn revocations_version(&self) -> u64 {
        self.scanner.revocations_version()
    }

    /// Stores the attendee manifest (JSON as served by the issuer).
    pub fn set_manifest(&mut self, json: &str) -> crate::Result<()> {
        self.scanner.set_manifest(json)?;
        self.put_config(CFG_MANIFEST, json.as_bytes())
    }

    /// Stores the event's gate rules (JSON as served by the issuer).
    pub fn set_gate_rules(&mut self, json: &str) -> crate::Result<()> {
        self.scanner.set_gate_rules(json)?;
        self.put_config(CFG_GATE_RULES, json.as_bytes())
    }

    /// Unlocks supervisor mode with a supervisor pass and keeps it until it expires or is locked; returns
    /// the supervisor's name and the pass's end (Unix seconds).
    pub fn unlock_supervisor(&mut self, pass: &str, now_secs: u64) -> crate::Result<(String, u32)> {
        let (name, until) = {
            let p = self.scanner.unlock_supervisor(pass, now_secs)?;
            (p.name.clone(), p.not_after)
        };
        self.put_config(CFG_SUPERVISOR, pass.trim().as_bytes())?;
        Ok((name, until))
    }

    /// The stored supervisor pass (whether or not it is still valid).
    pub fn supervisor_pass(&self) -> crate::Result<Option<String>> {
        self.config.get(CFG_SUPERVISOR)?.map(|v| text(&v, "supervisor pass")).transpose()
    }

    /// Back to steward mode.
    pub fn lock_supervisor(&mut self) -> crate::Result<()> {
        self.scanner.lock_supervisor();
        self.config.remove(CFG_SUPERVISOR)?;
        self.db.flush()?;
        Ok(())
    }

    /// Plans a request at the door (see [`crate::redemption::door`]); a decided outcome is already durable
    /// when this returns.
    pub fn plan(&mut self, request: ScanRequest, edge: bool, now_ms: u64) -> crate::Result<ScanPlan> {
        match self.scanner.plan(request, edge, now_ms)? {
            ScanPlan::Decided(outcome) => Ok(ScanPlan::Decided(self.persist(outcome)?)),
            ask => Ok(ask),
        }
    }

    /// Completes a scan the plan sent to the edge, durably (see [`Device::finish`]).
    pub fn finish(&mut self, question: EdgeQuestion, answer: EdgeAnswer, now_ms: u64) -> crate::Result<RecordedScan> {
        let outcome = self.scanner.finish(question, answer, now_ms)?;
        self.persist(outcome)
    }

    /// Restricts admission to one event.
    pub fn set_event(&mut self, event_id: u32) -> crate::Result<()> {
        self.scanner.set_event(event_id);
        self.put_config(CFG_EVENT, &u64::from(event_id).to_be_bytes())
    }

    /// Stores the sync server's address and this device's token.
    pub fn set_server(&mut self, url: &str, token: &str) -> crate::Result<()> {
        self.config.insert(CFG_SERVER, url.as_bytes())?;
        self.put_config(CFG_TOKEN, token.as_bytes())
    }

    /// The stored sync server address and device token.
    pub fn server(&self) -> crate::Result<Option<(String, String)>> {
        match (self.config.get(CFG_SERVER)?, self.config.get(CFG_TOKEN)?) {
            (Some(url), Some(token)) => Ok(Some((text(&url, "server")?, text(&token, "token")?))),
            _ => Ok(None),
        }
    }

    /// Stores this device's token alone (an offline setup that still talks to the edge Worker).
    pub fn set_token(&mut self, token: &str) -> crate::Result<()> {
        self.put_config(CFG_TOKEN, token.as_bytes())
    }

    /// This device's token, if it has one (with or without a sync server).
    pub fn token(&self) -> crate::Result<Option<String>> {
        self.config.get(CFG_TOKEN)?.map(|v| text(&v, "token")).transpose()
    }

    /// Stores (or, with `None`, forgets) the edge Worker's base URL; scans ask it first when set.
    pub fn set_edge(&mut self, url: Option<&str>) -> crate::Result<()> {
        match url {
            Some(url) => self.put_config(CFG_EDGE, url.as_bytes()),
            None => {
                self.config.remove(CFG_EDGE)?;
                self.db.flush()?;
                Ok(())
            }
        }
    }

    /// The stored edge Worker base URL.
    pub fn edge(&self) -> crate::Result<Option<String>> {
        self.config.get(CFG_EDGE)?.map(|v| text(&v, "edge")).transpose()
    }

    /// Writes one scan's pending entry (and gate table) and flushes it to disk: after this returns, a
    /// kill -9 cannot lose the scan.
    fn persist(&mut self, outcome: ScanOutcome) -> crate::Result<ScanOutcome> {
        let PendingWrite { seq, bytes, gates } = &outcome.persist;
        let write = || -> crate::Result<()> {
            if let Some(gates) = gates {
                let json = serde_json::to_vec(gates).map_err(|e| DeviceKind::Corrupt(e.to_string()))?;
                // Written before the record that uses it and flushed with it.
                self.config.insert(CFG_GATES, json)?;
            }
            self.pending_tree.insert(seq.to_be_bytes(), bytes.as_slice())?;
            self.db.flush()?;
            Ok(())
        };
        if let Err(e) = write() {
            self.scanner.abandon_scan(*seq)?;
            return Err(e);
        }
        Ok(outcome)
    }

    /// Decides a scan offline, records it durably, and only then returns the verdict. `now_ms` is the
    /// device's wall clock in Unix milliseconds.
    pub fn scan(&mut self, input: ScanInput<'_>, gate: &str, now_ms: u64) -> crate::Result<RecordedScan> {
        let outcome = self.scanner.scan(input, gate, now_ms)?;
        self.persist(outcome)
    }

    /// Records durably the steward's confirmation that an unpaid ticket was paid at the door (see
    /// [`Device::confirm_paid`]), and only then returns the verdict.
    pub fn confirm_paid(&mut self, text: &str, gate: &str, now_ms: u64) -> crate::Result<RecordedScan> {
        let outcome = self.scanner.confirm_paid(text, gate, now_ms)?;
        self.persist(outcome)
    }

    /// Records durably a verdict the edge Worker decided for this scan, and only then returns it.
    pub fn record_edge_verdict(
        &mut self,
        text: &str,
        kind: ScanKind,
        gate: &str,
        edge: &EdgeVerdict,
        now_ms: u64,
    ) -> crate::Result<RecordedScan> {
        let outcome = self.scanner.record_edge_verdict(text, kind, gate, edge, now_ms)?;
        self.persist(outcome)
    }

    /// Whether enough scans are pending that [`Self::fold_pending`] should run (call it when idle).
    pub fn should_fold(&self) -> bool {
        self.scanner.should_fold()
    }

    /// Folds pending scans into the document as one change and saves it. Returns how many were folded.
    pub fn fold_pending(&mut self, now_secs: i64) -> crate::Result<usize> {
        let folded: Vec<u64> = self.scanner.pending().iter().map(|p| p.seq).collect();
        let Some(Fold { chunk, folded_seq, scans }) = self.scanner.fold(now_secs)? else {
            return Ok(0);
        };
        let mut batch = sled::Batch::default();
        batch.insert(chunk_key(self.next_chunk), chunk);
        if let Some(seq) = folded_seq {
            batch.insert(STATE_FOLDED, &seq.to_be_bytes());
        }
        self.state.apply_batch(batch)?;
        self.next_chunk += 1;
        self.db.flush()?;
        for seq in folded {
            self.pending_tree.remove(seq.to_be_bytes())?;
        }
        if self.next_chunk > COMPACT_AFTER_CHUNKS {
            self.compact()?;
        }
        Ok(scans)
    }

    /// Replaces the incremental chunks with one full save.
    pub fn compact(&mut self) -> crate::Result<()> {
        let full = self.scanner.save_full();
        let mut batch = sled::Batch::default();
        for item in self.state.scan_prefix(CHUNK_PREFIX) {
            let (key, _) = item?;
            batch.remove(key);
        }
        batch.insert(chunk_key(0), full);
        self.state.apply_batch(batch)?;
        self.db.flush()?;
        self.next_chunk = 1;
        Ok(())
    }

    /// Saves a receipt's chunk (after a sync message or a merge), with the peer's sync state if any.
    fn persist_receipt(
        &mut self,
        receipt: &Receipt,
        peer: Option<(&str, &automerge::sync::State)>,
    ) -> crate::Result<()> {
        let mut batch = sled::Batch::default();
        if !receipt.chunk.is_empty() {
            batch.insert(chunk_key(self.next_chunk), receipt.chunk.as_slice());
            self.next_chunk += 1;
        }
        self.state.apply_batch(batch)?;
        if let Some((peer, state)) = peer {
            self.peers.insert(peer.as_bytes(), encode_peer_state(state))?;
        }
        self.db.flush()?;
        Ok(())
    }

    /// Runs the automerge sync protocol with one peer over any request/response transport: `exchange`
    /// sends a message and returns the peer's reply (`None` if it had nothing to say). Everything
    /// received is saved as it arrives, with the peer's sync state, so an interrupted sync loses nothing
    /// and a retry only exchanges what is still missing.
    pub fn sync_with<E: std::fmt::Display>(
        &mut self,
        peer: &str,
        now_secs: i64,
        mut exchange: impl FnMut(SyncChannel, &[u8]) -> Result<Option<Vec<u8>>, E>,
    ) -> crate::Result<SyncSummary> {
        self.fold_pending(now_secs)?;
        let mut summary = SyncSummary::default();
        let stalled = |summary: &SyncSummary| summary.round_trips >= MAX_SYNC_ROUNDS;

        // Push: this device's own records, from a document holding nothing else.
        let push_key = format!("{peer}#push");
        let mut state = self.peer_state(&push_key)?;
        while let Some(message) = self.scanner.generate_push_message(&mut state)? {
            if stalled(&summary) {
                self.persist_receipt(&Receipt::default(), Some((&push_key, &state)))?;
                return Err(DeviceKind::SyncStalled(MAX_SYNC_ROUNDS).into());
            }
            summary.round_trips += 1;
            summary.bytes_sent += message.len();
            let reply = exchange(SyncChannel::Push, &message).map_err(|e| DeviceKind::Transport(e.to_string()))?;
            if let Some(reply) = reply {
                summary.bytes_received += reply.len();
                self.scanner.receive_push_reply(&mut state, &reply)?;
            }
        }
        self.persist_receipt(&Receipt::default(), Some((&push_key, &state)))?;

        // Pull: everyone's records, into the full log.
        let pull_key = format!("{peer}#pull");
        let mut state = self.peer_state(&pull_key)?;
        let mut changed = false;
        let now_ms = u64::try_from(now_secs).unwrap_or(0).saturating_mul(1000);
        while let Some(message) = self.scanner.generate_sync_message(&mut state) {
            if stalled(&summary) {
                self.persist_receipt(&Receipt::default(), Some((&pull_key, &state)))?;
                return Err(DeviceKind::SyncStalled(MAX_SYNC_ROUNDS).into());
            }
            summary.round_trips += 1;
            summary.bytes_sent += message.len();
            let reply = exchange(SyncChannel::Pull, &message).map_err(|e| DeviceKind::Transport(e.to_string()))?;
            if let Some(reply) = reply {
                summary.bytes_received += reply.len();
                let receipt = self.scanner.receive_sync_message(&mut state, &reply, now_ms)?;
                summary.new_records += receipt.new_records;
                changed |= receipt.changed;
                self.persist_receipt(&receipt, Some((&pull_key, &state)))?;
                if self.scanner.pull_complete(&state) {
                    break;
                }
            }
        }
        self.persist_receipt(&Receipt::default(), Some((&pull_key, &state)))?;
        if changed {
            self.scanner.rebuild_index()?;
        }
        Ok(summary)
    }

    fn peer_state(&self, key: &str) -> crate::Result<automerge::sync::State> {
        Ok(match self.peers.get(key.as_bytes())? {
            Some(bytes) => decode_peer_state(&bytes)?,
            None => automerge::sync::State::new(),
        })
    }

    /// Merges another saved log (e.g. exported from a device that never reached the network) into this
    /// one. Invalid logs are rejected and change nothing.
    pub fn merge_saved(&mut self, bytes: &[u8]) -> crate::Result<usize> {
        let receipt = self.scanner.merge_saved(bytes)?;
        self.persist_receipt(&receipt, None)?;
        if receipt.changed {
            self.scanner.rebuild_index()?;
        }
        Ok(receipt.new_records)
    }

    /// The whole log (pending scans folded first) as one saved automerge document.
    pub fn export(&mut self, now_secs: i64) -> crate::Result<Vec<u8>> {
        self.fold_pending(now_secs)?;
        Ok(self.scanner.doc().save())
    }

    /// The organizer's report over everything this device knows (pending scans folded first).
    pub fn report(&mut self, now_secs: i64) -> crate::Result<EventReport> {
        self.fold_pending(now_secs)?;
        self.scanner.report()
    }
}
