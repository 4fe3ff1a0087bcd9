//! The durable device-local redemption log, on sled.
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
//!   sync server address and device token.
//! - `peers`: per-peer sync state (the heads both sides had at the last exchange), so that a resumed or
//!   repeated sync only exchanges what is new.
//!
//! Pending scans are folded into the document in batches (every [`DEFAULT_FOLD_EVERY`] scans, before a
//! sync and before a report), one automerge change per batch; on open, any scans not yet in the document
//! are taken from `pending`.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::decision::{decide, HolderDirectory, ManifestDirectory, ScanIndex, ScanInput, Verdict};
use super::document::{decode_peer_state, encode_peer_state, Batch, LogError, RedemptionDoc, SyncError};
use super::record::{DeviceId, Hlc, HybridClock, ScanRecord, RECORD_LEN};
use super::report::EventReport;
use crate::keyring::{KeyError, Keyring};
use crate::manifest::{Manifest, ManifestError};
use crate::revocation::{RevocationDelta, RevocationError, RevocationList};
use crate::verify::VerifyContext;

/// Pending scans are folded into the document once this many have accumulated.
pub const DEFAULT_FOLD_EVERY: usize = 256;
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
const STATE_FOLDED: &[u8] = b"folded";
const CHUNK_PREFIX: &[u8] = b"chunk/";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("redemption log: {0}")]
    Log(#[from] LogError),
    #[error("sync: {0}")]
    Sync(#[from] SyncError),
    #[error("no scanner set up in {0} (run `scanner init` first)")]
    NotInitialized(PathBuf),
    #[error("this scanner has no keyring yet (run `scanner init`)")]
    NoKeyring,
    #[error("keyring: {0}")]
    Keyring(#[from] KeyError),
    #[error("revocation list: {0}")]
    Revocations(#[from] RevocationError),
    #[error("manifest: {0}")]
    Manifest(#[from] ManifestError),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("sync transport: {0}")]
    Transport(String),
    #[error("sync did not converge after {0} round trips; run it again to resume")]
    SyncStalled(usize),
    #[error("gate name is empty or longer than {max} bytes", max = super::document::MAX_TEXT_BYTES)]
    GateName,
    #[error("device name is longer than {max} bytes", max = super::document::MAX_TEXT_BYTES)]
    DeviceName,
    #[error("a device can have at most 65536 gates")]
    TooManyGates,
}

/// How a sync went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncSummary {
    pub round_trips: usize,
    pub bytes_sent: usize,
    pub bytes_received: usize,
    pub new_records: usize,
}

/// A scan that was recorded, with the verdict to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedScan {
    pub verdict: Verdict,
    pub record: ScanRecord,
    pub device: DeviceId,
    /// The scan's local sequence number.
    pub seq: u64,
}

#[derive(Debug, Clone)]
struct PendingScan {
    seq: u64,
    record: ScanRecord,
    override_reason: Option<String>,
}

/// The durable device-local redemption log.
pub struct RedemptionLog {
    path: PathBuf,
    db: sled::Db,
    pending_tree: sled::Tree,
    state: sled::Tree,
    config: sled::Tree,
    peers: sled::Tree,
    device: DeviceId,
    name: String,
    gates: Vec<String>,
    doc: RedemptionDoc,
    index: ScanIndex,
    clock: HybridClock,
    pending: Vec<PendingScan>,
    next_seq: u64,
    next_chunk: u64,
    keyring: Option<Keyring>,
    revocations: Option<RevocationList>,
    holders: Option<ManifestDirectory>,
    event_id: Option<u32>,
    fold_every: usize,
}

impl std::fmt::Debug for RedemptionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedemptionLog")
            .field("path", &self.path)
            .field("device", &self.device)
            .field("records", &self.record_count())
            .finish_non_exhaustive()
    }
}

fn be_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    let b: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt("bad integer".into()))?;
    Ok(u64::from_be_bytes(b))
}

fn text(bytes: &[u8], what: &str) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| StoreError::Corrupt(format!("{what} is not UTF-8")))
}

fn chunk_key(n: u64) -> Vec<u8> {
    let mut key = CHUNK_PREFIX.to_vec();
    key.extend_from_slice(&n.to_be_bytes());
    key
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
    pub fn open_or_create(path: &Path, name: &str) -> Result<Self, StoreError> {
        let db = sled::open(path)?;
        let config = db.open_tree("config")?;
        if config.get(CFG_DEVICE)?.is_none() {
            if name.len() > super::document::MAX_TEXT_BYTES {
                return Err(StoreError::DeviceName);
            }
            config.insert(CFG_NAME, name.as_bytes())?;
            config.insert(CFG_DEVICE, &random_device_id().0.to_be_bytes())?;
            db.flush()?;
        }
        drop(config);
        Self::open_db(path, db)
    }

    /// Opens an existing log.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if !path.exists() {
            return Err(StoreError::NotInitialized(path.to_owned()));
        }
        let db = sled::open(path)?;
        Self::open_db(path, db)
    }

    fn open_db(path: &Path, db: sled::Db) -> Result<Self, StoreError> {
        let config = db.open_tree("config")?;
        let state = db.open_tree("state")?;
        let pending_tree = db.open_tree("pending")?;
        let peers = db.open_tree("peers")?;
        let device = match config.get(CFG_DEVICE)? {
            Some(v) => DeviceId(be_u64(&v)?),
            None => return Err(StoreError::NotInitialized(path.to_owned())),
        };
        let name = match config.get(CFG_NAME)? {
            Some(v) => text(&v, "device name")?,
            None => String::new(),
        };
        let gates: Vec<String> = match config.get(CFG_GATES)? {
            Some(v) => serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt(format!("gate table: {e}")))?,
            None => Vec::new(),
        };
        let event_id = match config.get(CFG_EVENT)? {
            Some(v) => Some(u32::try_from(be_u64(&v)?).map_err(|_| StoreError::Corrupt("event id".into()))?),
            None => None,
        };

        // The document: every chunk, in order.
        let mut bytes = Vec::new();
        let mut next_chunk = 0;
        for item in state.scan_prefix(CHUNK_PREFIX) {
            let (key, value) = item?;
            next_chunk = be_u64(&key[CHUNK_PREFIX.len()..])? + 1;
            bytes.extend_from_slice(&value);
        }
        let doc = if bytes.is_empty() {
            RedemptionDoc::new_for_device(device)
        } else {
            RedemptionDoc::load_for_device(&bytes, device)?
        };
        let folded = match state.get(STATE_FOLDED)? {
            Some(v) => be_u64(&v)?,
            None => 0,
        };
        let mut pending = Vec::new();
        let mut next_seq = folded + 1;
        for item in pending_tree.range(&(folded + 1).to_be_bytes()[..]..) {
            let (key, value) = item?;
            let seq = be_u64(&key)?;
            if value.len() < RECORD_LEN {
                return Err(StoreError::Corrupt(format!("pending scan {seq} is truncated")));
            }
            let record = ScanRecord::decode(&value[..RECORD_LEN])
                .map_err(|e| StoreError::Corrupt(format!("pending scan {seq}: {e}")))?;
            let override_reason =
                if value.len() > RECORD_LEN { Some(text(&value[RECORD_LEN..], "override reason")?) } else { None };
            pending.push(PendingScan { seq, record, override_reason });
            next_seq = seq + 1;
        }

        let mut log = Self {
            path: path.to_owned(),
            db,
            pending_tree,
            state,
            config,
            peers,
            device,
            name,
            gates,
            doc,
            index: ScanIndex::new(),
            clock: HybridClock::new(),
            pending,
            next_seq,
            next_chunk,
            keyring: None,
            revocations: None,
            holders: None,
            event_id,
            fold_every: DEFAULT_FOLD_EVERY,
        };
        log.load_trust()?;
        log.rebuild_index()?;
        // Scans already folded before a crash may still sit in `pending`: drop them now.
        for item in log.pending_tree.range(..&(folded + 1).to_be_bytes()[..]) {
            let (key, _) = item?;
            log.pending_tree.remove(key)?;
        }
        Ok(log)
    }

    fn load_trust(&mut self) -> Result<(), StoreError> {
        self.keyring = match self.config.get(CFG_KEYRING)? {
            Some(v) => Some(Keyring::from_json(&text(&v, "keyring")?)?),
            None => None,
        };
        self.revocations = match (&self.keyring, self.config.get(CFG_REVOCATIONS)?) {
            (Some(ring), Some(v)) => Some(RevocationList::from_json(&text(&v, "revocation list")?, ring)?),
            _ => None,
        };
        self.holders = match self.config.get(CFG_MANIFEST)? {
            Some(v) => Some(ManifestDirectory::new(Manifest::from_json(&text(&v, "manifest")?)?)),
            None => None,
        };
        Ok(())
    }

    /// Rebuilds the in-memory index (and moves the clock past every record) from the document and the
    /// pending scans.
    fn rebuild_index(&mut self) -> Result<(), StoreError> {
        let logs = self.doc.device_logs()?;
        let mut index = ScanIndex::from_logs(&logs);
        let mut max = Hlc::default();
        for log in &logs {
            if let Some(last) = log.records.iter().map(|r| r.hlc).max() {
                max = max.max(last);
            }
        }
        index.set_device(self.device, &self.name, &self.gates);
        for p in &self.pending {
            index.add(self.device, &p.record);
            max = max.max(p.record.hlc);
        }
        self.clock.observe(max);
        self.index = index;
        Ok(())
    }

    pub fn device(&self) -> DeviceId {
        self.device
    }

    pub fn device_name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn event_id(&self) -> Option<u32> {
        self.event_id
    }

    /// All records known: the document's plus this device's pending ones.
    pub fn record_count(&self) -> usize {
        self.doc.record_count() + self.pending.len()
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// The document (pending scans not included until folded).
    pub fn doc(&self) -> &RedemptionDoc {
        &self.doc
    }

    pub fn index(&self) -> &ScanIndex {
        &self.index
    }

    /// Sets how many pending scans trigger a fold (at least 1).
    pub fn set_fold_every(&mut self, n: usize) {
        self.fold_every = n.max(1);
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    pub fn keyring(&self) -> Option<&Keyring> {
        self.keyring.as_ref()
    }

    pub fn revocations(&self) -> Option<&RevocationList> {
        self.revocations.as_ref()
    }

    /// Stores a new keyring (JSON as published by the issuer).
    pub fn set_keyring(&mut self, json: &str) -> Result<(), StoreError> {
        let ring = Keyring::from_json(json)?;
        self.config.insert(CFG_KEYRING, json.as_bytes())?;
        self.keyring = Some(ring);
        self.db.flush()?;
        Ok(())
    }

    /// Replaces the revocation list with a complete one (JSON, verified against the keyring).
    pub fn set_revocations(&mut self, json: &str) -> Result<(), StoreError> {
        let ring = self.keyring.as_ref().ok_or(StoreError::NoKeyring)?;
        let list = RevocationList::from_json(json, ring)?;
        self.config.insert(CFG_REVOCATIONS, list.to_json().as_bytes())?;
        self.revocations = Some(list);
        self.db.flush()?;
        Ok(())
    }

    /// Applies a revocation delta (JSON) to the cached list.
    pub fn apply_revocation_delta(&mut self, json: &str) -> Result<(), StoreError> {
        let ring = self.keyring.as_ref().ok_or(StoreError::NoKeyring)?;
        let delta = RevocationDelta::from_json(json)?;
        let mut list = self.revocations.clone().unwrap_or_default();
        list.apply(&delta, ring)?;
        self.config.insert(CFG_REVOCATIONS, list.to_json().as_bytes())?;
        self.revocations = Some(list);
        self.db.flush()?;
        Ok(())
    }

    /// The cached revocation list's version (0 if none).
    pub fn revocations_version(&self) -> u64 {
        self.revocations.as_ref().map_or(0, RevocationList::version)
    }

    /// Stores the attendee manifest (JSON as served by the issuer).
    pub fn set_manifest(&mut self, json: &str) -> Result<(), StoreError> {
        let manifest = Manifest::from_json(json)?;
        self.config.insert(CFG_MANIFEST, json.as_bytes())?;
        self.holders = Some(ManifestDirectory::new(manifest));
        self.db.flush()?;
        Ok(())
    }

    /// Restricts admission to one event.
    pub fn set_event(&mut self, event_id: u32) -> Result<(), StoreError> {
        self.config.insert(CFG_EVENT, &u64::from(event_id).to_be_bytes())?;
        self.event_id = Some(event_id);
        self.db.flush()?;
        Ok(())
    }

    /// Stores the sync server's address and this device's token.
    pub fn set_server(&mut self, url: &str, token: &str) -> Result<(), StoreError> {
        self.config.insert(CFG_SERVER, url.as_bytes())?;
        self.config.insert(CFG_TOKEN, token.as_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// The stored sync server address and device token.
    pub fn server(&self) -> Result<Option<(String, String)>, StoreError> {
        match (self.config.get(CFG_SERVER)?, self.config.get(CFG_TOKEN)?) {
            (Some(url), Some(token)) => Ok(Some((text(&url, "server")?, text(&token, "token")?))),
            _ => Ok(None),
        }
    }

    fn gate_index(&mut self, gate: &str) -> Result<u16, StoreError> {
        if gate.is_empty() || gate.len() > super::document::MAX_TEXT_BYTES {
            return Err(StoreError::GateName);
        }
        if let Some(i) = self.gates.iter().position(|g| g == gate) {
            return u16::try_from(i).map_err(|_| StoreError::TooManyGates);
        }
        let i = u16::try_from(self.gates.len()).map_err(|_| StoreError::TooManyGates)?;
        self.gates.push(gate.to_owned());
        let json = serde_json::to_vec(&self.gates).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // Written before the record that uses it and flushed with it.
        self.config.insert(CFG_GATES, json)?;
        self.index.set_device(self.device, &self.name, &self.gates);
        Ok(i)
    }

    /// Decides a scan, records it durably, and only then returns the verdict. `now_ms` is the device's
    /// wall clock in Unix milliseconds.
    pub fn scan(&mut self, input: ScanInput<'_>, gate: &str, now_ms: u64) -> Result<RecordedScan, StoreError> {
        if self.keyring.is_none() {
            return Err(StoreError::NoKeyring);
        }
        let gate_index = self.gate_index(gate)?;
        let keyring = self.keyring.as_ref().ok_or(StoreError::NoKeyring)?;
        let ctx = VerifyContext {
            keyring,
            revocations: self.revocations.as_ref(),
            event_id: self.event_id,
            now: now_ms / 1000,
        };
        let holders = self.holders.as_ref().map(|h| h as &dyn HolderDirectory);
        let decision = decide(input, &ctx, &self.index, holders, self.device, gate);
        let hlc = self.clock.tick(now_ms);
        let wall = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
        let record = decision.record(hlc, wall, gate_index);
        let override_reason = match &decision.verdict {
            Verdict::Admit(a) => a.override_reason.clone(),
            _ => None,
        };
        let seq = self.record_durably(record, override_reason.clone())?;
        self.index.add(self.device, &record);
        self.pending.push(PendingScan { seq, record, override_reason });
        Ok(RecordedScan { verdict: decision.verdict, record, device: self.device, seq })
    }

    /// Writes one record to `pending` and flushes it to disk.
    fn record_durably(&mut self, record: ScanRecord, override_reason: Option<String>) -> Result<u64, StoreError> {
        let seq = self.next_seq;
        let mut value = record.encode().to_vec();
        if let Some(reason) = &override_reason {
            value.extend_from_slice(reason.as_bytes());
        }
        self.pending_tree.insert(seq.to_be_bytes(), value)?;
        self.db.flush()?;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Whether enough scans are pending that [`Self::fold_pending`] should run (call it when idle).
    pub fn should_fold(&self) -> bool {
        self.pending.len() >= self.fold_every
    }

    /// Folds pending scans into the document as one change and saves it. Returns how many were folded.
    pub fn fold_pending(&mut self, now_secs: i64) -> Result<usize, StoreError> {
        let known_gates = self.doc.gate_count(self.device);
        if self.pending.is_empty() && known_gates >= self.gates.len() {
            return Ok(0);
        }
        let records: Vec<ScanRecord> = self.pending.iter().map(|p| p.record).collect();
        let overrides: Vec<(Hlc, String)> =
            self.pending.iter().filter_map(|p| Some((p.record.hlc, p.override_reason.clone()?))).collect();
        let last_seq = self.pending.last().map(|p| p.seq);
        self.doc.append_batch(
            self.device,
            Batch {
                device_name: &self.name,
                gates: &self.gates,
                records: &records,
                overrides: &overrides,
                time: now_secs,
            },
        )?;
        let chunk = self.doc.take_unsaved();
        let mut batch = sled::Batch::default();
        batch.insert(chunk_key(self.next_chunk), chunk);
        if let Some(seq) = last_seq {
            batch.insert(STATE_FOLDED, &seq.to_be_bytes());
        }
        self.state.apply_batch(batch)?;
        self.next_chunk += 1;
        self.db.flush()?;
        for p in &self.pending {
            self.pending_tree.remove(p.seq.to_be_bytes())?;
        }
        let folded = self.pending.len();
        self.pending.clear();
        if self.next_chunk > COMPACT_AFTER_CHUNKS {
            self.compact()?;
        }
        Ok(folded)
    }

    /// Replaces the incremental chunks with one full save.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        let full = self.doc.save();
        self.doc.mark_saved();
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

    /// Saves whatever changed in the document (after a sync message) together with the peer's sync state.
    fn persist_sync(&mut self, peer: &str, state: &automerge::sync::State) -> Result<(), StoreError> {
        let chunk = self.doc.take_unsaved();
        let mut batch = sled::Batch::default();
        if !chunk.is_empty() {
            batch.insert(chunk_key(self.next_chunk), chunk);
            self.next_chunk += 1;
        }
        self.state.apply_batch(batch)?;
        self.peers.insert(peer.as_bytes(), encode_peer_state(state))?;
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
        mut exchange: impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<SyncSummary, StoreError> {
        self.fold_pending(now_secs)?;
        let mut state = match self.peers.get(peer.as_bytes())? {
            Some(bytes) => decode_peer_state(&bytes)?,
            None => automerge::sync::State::new(),
        };
        let mut summary = SyncSummary::default();
        let mut changed = false;
        while let Some(message) = self.doc.generate_sync_message(&mut state) {
            if summary.round_trips == MAX_SYNC_ROUNDS {
                self.persist_sync(peer, &state)?;
                return Err(StoreError::SyncStalled(MAX_SYNC_ROUNDS));
            }
            summary.round_trips += 1;
            summary.bytes_sent += message.len();
            let reply = exchange(&message).map_err(|e| StoreError::Transport(e.to_string()))?;
            if let Some(reply) = reply {
                summary.bytes_received += reply.len();
                let received = self.doc.receive_sync_message(&mut state, &reply)?;
                summary.new_records += received.new_records;
                changed |= received.changed;
                self.persist_sync(peer, &state)?;
            }
        }
        self.persist_sync(peer, &state)?;
        if changed {
            self.rebuild_index()?;
        }
        Ok(summary)
    }

    /// Merges another saved log (e.g. exported from a device that never reached the network) into this
    /// one. Invalid logs are rejected and change nothing.
    pub fn merge_saved(&mut self, bytes: &[u8]) -> Result<usize, StoreError> {
        let other = RedemptionDoc::load(bytes)?;
        let received = self.doc.merge(&other)?;
        let chunk = self.doc.take_unsaved();
        if !chunk.is_empty() {
            self.state.insert(chunk_key(self.next_chunk), chunk)?;
            self.next_chunk += 1;
            self.db.flush()?;
        }
        if received.changed {
            self.rebuild_index()?;
        }
        Ok(received.new_records)
    }

    /// The whole log (pending scans folded first) as one saved automerge document.
    pub fn export(&mut self, now_secs: i64) -> Result<Vec<u8>, StoreError> {
        self.fold_pending(now_secs)?;
        Ok(self.doc.save())
    }

    /// The organizer's report over everything this device knows (pending scans folded first).
    pub fn report(&mut self, now_secs: i64) -> Result<EventReport, StoreError> {
        self.fold_pending(now_secs)?;
        Ok(EventReport::from_logs(&self.doc.device_logs()?))
    }
}
