//! The redemption log as an automerge document, shared by every device, the sync server and the browser.
//!
//! ## Model
//!
//! ```text
//! ROOT
//!  └─ "<device id, 16 hex digits>": Map          created and only ever written by that device
//!       ├─ "name":      Str                       the device's human name
//!       ├─ "gates":     List<Str>                 gate table; records name a gate by its index
//!       ├─ "batches":   List<Bytes>               each element = N fixed-size ScanRecords back to back
//!       └─ "overrides": Map<hlc hex, Str>         operator override reasons, by the record's clock
//! ```
//!
//! Concurrent writers never touch the same key: each device appends to its own map only, and the root keys
//! are distinct random device ids. So there are no automerge conflicts to resolve or to hide: a ticket
//! admitted on two devices shows up as two records in two devices' lists, and duplicates are computed from
//! the union of all records (see [`crate::redemption::report`]). Merging is automerge's union of change
//! sets, which is commutative, associative and idempotent; the record set is a function of the change set.
//!
//! Scans are folded in batches: one automerge change appends one `Bytes` value holding many 32-byte
//! records, instead of several ops per scan. That is what keeps sync at a few bytes above the record size
//! per scan and merging 50k scans in milliseconds.
//!
//! ## Validation
//!
//! Everything that enters a document from outside (a sync message, another log to merge, a saved file) is
//! applied to a copy first and checked: root keys are device ids, each device's objects and values were
//! written by that device's actor, every batch decodes to valid records, and nothing already in the log
//! was removed or replaced (the log only grows). A message that fails is rejected and the log is left
//! exactly as it was.
//!
//! ## Who may write what (sync)
//!
//! Automerge actor ids are claims, not proofs, so the structural checks above cannot tell a device from
//! someone writing in its name. A sync receiver therefore also knows who is on the other end
//! ([`Peer`], from the transport's authentication):
//!
//! - from a **device** it accepts only changes written under that device's own id (the id bound to its
//!   token, [`crate::token::device_id_for_token_hash`]). Changes of other actors that it already holds
//!   are harmless repeats; those it does not hold are dropped, never applied: a device cannot forge,
//!   freeze (take a sequence number first) or reorder another device's log, and honest devices that
//!   carry what another server sent them lose nothing, since servers relay to each other;
//! - from a **relay** (another sync server, or the server a device syncs with) it accepts any device's
//!   changes, but never one written under its own id that it does not already hold. A relay whose
//!   credential is narrower than the deployment's own servers (a venue hub's token) may be held to a list
//!   of device ids ([`Accept::relay_of`]: the event's registered devices): changes under any other id are
//!   refused and counted, never merged, so a hub token cannot invent devices;
//! - every message: at most [`MAX_SYNC_MESSAGE_BYTES`], only change chunks (whole documents and bundles
//!   are refused; this module's peers never send them, see [`RedemptionDoc::generate_sync_message`]),
//!   compressed changes inflated under a budget *before* automerge sees them
//!   ([`MAX_INFLATED_SYNC_BYTES`]), and no record stamped more than [`MAX_CLOCK_SKEW_MS`] ahead of the
//!   receiver's clock, so no one's hybrid clock can be pushed into the future (a forged far-future exit
//!   would otherwise make a re-entry ticket look outside forever).
//!
//! Each device writes its changes on top of its own previous change only (not on everything it has
//! received), so a server can apply a device's changes without holding what other servers told it.
//!
//! ## Sessions over HTTP
//!
//! Automerge's sync protocol assumes one connection that delivers every message. Here each message is
//! one HTTP request, a reply can be lost, and a device's next request may open a new session. So:
//!
//! - a server never withholds a change as "sent already": only the peer's heads say what it holds
//!   ([`serve_sync`]);
//! - in a device's pull, the server sends its heads when the device may lack one of them even though
//!   its bloom filter says otherwise (a false positive, about 1 in 100 per change); the device then
//!   asks for the missing change by hash;
//! - a client begins every session from its stored state ([`session_start`]), never from the last
//!   session's flight, and a device's pull is complete as soon as it holds every head the server
//!   advertised ([`RedemptionDoc::holds_heads_of`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};

use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, Change, ChangeHash, ObjId, ObjType, ReadDoc, ScalarValue, Value, ROOT};
use thiserror::Error;

use super::record::{DeviceId, Hlc, RecordKind, ScanRecord};

pub const KEY_NAME: &str = "name";
pub const KEY_GATES: &str = "gates";
pub const KEY_BATCHES: &str = "batches";
pub const KEY_OVERRIDES: &str = "overrides";

/// A peer's sync state (automerge's), for servers that do not depend on automerge themselves.
pub use automerge::sync::State as PeerState;

/// Sync messages larger than this are refused unread. Devices sync every few minutes at most a few
/// thousand 32-byte records; a server's first answer to a new device carries the whole event (~33 bytes
/// a scan): 8 MiB is about 250k scans.
pub const MAX_SYNC_MESSAGE_BYTES: usize = 8 << 20;
/// Most bytes the compressed changes of one sync message may inflate to. Checked chunk by chunk before
/// automerge decodes anything, so a deflate bomb costs at most this much memory.
pub const MAX_INFLATED_SYNC_BYTES: usize = 32 << 20;
/// Most missing dependencies a receiver lets changes wait for (see [`SyncKind::MissingHistory`]).
const MAX_MISSING_DEPS: usize = 64;
/// How far ahead of the receiver's clock a record may be stamped (hybrid-clock milliseconds).
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// Who sent a sync message, as the transport authenticated them. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A scanning device: only its own changes are taken.
    Device(DeviceId),
    /// Another sync server (or, for a device, the server it syncs with): any device's changes are taken,
    /// except changes under the receiver's own id that it does not already hold.
    Relay,
}

/// Which sync session a message belongs to. A device runs two one-way sessions with each server: it
/// *pushes* its own changes from a document holding nothing else (the server sends it none), and *pulls*
/// everyone's changes into its full log (the server takes none from it). So a device never hands a server
/// changes of other devices, which the server could not tell from forgeries. Servers sync with each other
/// both ways in a *relay* session ([`Peer::Relay`]), authenticated by the transport as a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncChannel {
    Push,
    Pull,
    Relay,
}

impl SyncChannel {
    pub fn as_str(&self) -> &'static str {
        match self {
            SyncChannel::Push => "push",
            SyncChannel::Pull => "pull",
            SyncChannel::Relay => "relay",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "push" => Some(SyncChannel::Push),
            "pull" => Some(SyncChannel::Pull),
            "relay" => Some(SyncChannel::Relay),
            _ => None,
        }
    }
}

/// What a receiver takes from one sync message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept<'a> {
    pub from: Peer,
    /// The receiver's wall clock, Unix milliseconds: records stamped after `now_ms + MAX_CLOCK_SKEW_MS`
    /// are refused.
    pub now_ms: u64,
    /// From a relay: the only device ids whose changes are taken (e.g. an event's registered devices,
    /// the hub's own among them). A relay credential is trusted to carry what it holds, not to invent
    /// devices: changes under any other id are refused, not merged, and counted
    /// ([`Received::refused_changes`]). `None`: every device's changes (a relay between servers of the
    /// same deployment).
    pub writers: Option<&'a BTreeSet<DeviceId>>,
}

impl Accept<'static> {
    pub fn device(device: DeviceId, now_ms: u64) -> Self {
        Self { from: Peer::Device(device), now_ms, writers: None }
    }

    pub fn relay(now_ms: u64) -> Self {
        Self { from: Peer::Relay, now_ms, writers: None }
    }
}

impl<'a> Accept<'a> {
    /// A relay that may carry the changes of `writers` only (see [`Accept::writers`]).
    pub fn relay_of(writers: &'a BTreeSet<DeviceId>, now_ms: u64) -> Self {
        Self { from: Peer::Relay, now_ms, writers: Some(writers) }
    }

    fn latest_ms(&self) -> u64 {
        self.now_ms.saturating_add(MAX_CLOCK_SKEW_MS)
    }
}
/// Longest device name, gate name or override reason accepted into the log, in bytes.
pub const MAX_TEXT_BYTES: usize = 200;

/// Why a document, a merge or a local append was refused.
#[derive(Debug, Error)]
pub enum LogKind {
    #[error("automerge: {0}")]
    /// Boxed: automerge's error is large, and every `Result` of the library carries room for it.
    Automerge(Box<automerge::AutomergeError>),
    #[error("the log's root key {0:?} is not a device id")]
    RootKey(String),
    #[error("device {device}: {what}")]
    Structure { device: DeviceId, what: String },
    #[error("device {device}: bad scan record: {source}")]
    Record { device: DeviceId, source: RecordKind },
    #[error("device {device}: {what} written by another actor ({actor})")]
    ForeignWrite { device: DeviceId, what: &'static str, actor: String },
    #[error("device {device}: the update removes or rewrites {what} already in the log")]
    NotGrowOnly { device: DeviceId, what: &'static str },
    #[error("this document belongs to actor {actor}, not device {device}")]
    WrongActor { device: DeviceId, actor: String },
    #[error("{0} is longer than {MAX_TEXT_BYTES} bytes")]
    TextTooLong(&'static str),
    #[error("the device has more than 65536 gates")]
    TooManyGates,
    #[error("automerge panicked on this input")]
    Panicked,
    #[error(
        "device {device}: a record is stamped {ahead_ms} ms ahead of this clock (at most {MAX_CLOCK_SKEW_MS} allowed)"
    )]
    FutureRecord { device: DeviceId, ahead_ms: u64 },
}

impl From<automerge::AutomergeError> for LogKind {
    fn from(e: automerge::AutomergeError) -> Self {
        LogKind::Automerge(Box::new(e))
    }
}

/// Why a sync message was refused. The log and the sync state are unchanged after any of these.
#[derive(Debug, Error)]
pub enum SyncKind {
    #[error("sync message is {0} bytes, more than the {MAX_SYNC_MESSAGE_BYTES} allowed")]
    TooLarge(usize),
    #[error("sync message cannot be decoded: {0}")]
    Decode(String),
    #[error("sync message rejected: {0}")]
    Rejected(#[from] LogKind),
    #[error("sync state cannot be decoded: {0}")]
    State(String),
    #[error("sync message holds a {0}; only changes are accepted")]
    ChunkKind(&'static str),
    #[error("sync message's compressed changes inflate to more than {MAX_INFLATED_SYNC_BYTES} bytes")]
    Inflation,
    #[error("a change under this receiver's own id ({0}) that it never made")]
    ForgedOwnActor(String),
    #[error("the relay session is for sync servers, not devices")]
    RelayOnly,
    #[error("too many changes wait for history this receiver does not hold; sync from the start")]
    MissingHistory,
}

/// What is known about one device's objects, kept to check that updates only grow the log.
#[derive(Debug, Clone, PartialEq)]
struct DeviceShape {
    map: ObjId,
    batches: ObjId,
    gates: ObjId,
    overrides: ObjId,
    /// Op ids of the batch values, in list order.
    batch_ids: Vec<ObjId>,
    gate_ids: Vec<ObjId>,
    override_ids: BTreeMap<String, ObjId>,
    records: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Shape {
    devices: BTreeMap<DeviceId, DeviceShape>,
}

/// One device's part of the log, read out of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLog {
    pub device: DeviceId,
    pub name: String,
    pub gates: Vec<String>,
    pub records: Vec<ScanRecord>,
    pub overrides: BTreeMap<Hlc, String>,
}

impl DeviceLog {
    /// The gate's name, or `#i` if the table does not have it.
    pub fn gate_name(&self, gate: u16) -> String {
        self.gates.get(usize::from(gate)).cloned().unwrap_or_else(|| format!("#{gate}"))
    }
}

/// What a device folds into the log in one change.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub device_name: &'a str,
    /// The device's whole gate table; names beyond those already in the log are appended.
    pub gates: &'a [String],
    pub records: &'a [ScanRecord],
    pub overrides: &'a [(Hlc, String)],
    /// Unix seconds, stored as the change's advisory time.
    pub time: i64,
}

/// The result of receiving a sync message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Received {
    /// The document changed (new records, names or gates arrived).
    pub changed: bool,
    /// How many more records the log holds than before.
    pub new_records: usize,
    /// Changes a relay sent under a device id it may not carry ([`Accept::writers`]): refused, not merged.
    pub refused_changes: usize,
}

/// The redemption log document. See the module documentation for the model.
#[derive(Debug, Clone)]
pub struct RedemptionDoc {
    doc: Automerge,
    shape: Shape,
    saved_heads: Vec<ChangeHash>,
    /// The writing device's own changes only (built on first append): new changes are made here so they
    /// depend on nothing but the device's previous change, then applied to `doc`.
    own: Option<Automerge>,
    /// Changes a relay offered under device ids it may not carry ([`Accept::writers`]), in memory only:
    /// a server does not ask for them again, so the relay's session ends instead of offering them each
    /// round (after a restart the first session learns them again). At most [`MAX_REFUSED_REMEMBERED`].
    refused: BTreeSet<ChangeHash>,
}

/// Most refused change hashes a log remembers (32 bytes each). Beyond, a relay's session with refused
/// changes may run to its round limit; nothing is merged either way.
const MAX_REFUSED_REMEMBERED: usize = 65_536;

fn actor_of(id: &ObjId) -> Option<&ActorId> {
    match id {
        ObjId::Root => None,
        ObjId::Id(_, actor, _) => Some(actor),
    }
}

fn check_actor(device: DeviceId, id: &ObjId, what: &'static str) -> Result<(), LogKind> {
    match actor_of(id) {
        Some(actor) if actor.to_bytes() == device.actor_bytes() => Ok(()),
        other => Err(LogKind::ForeignWrite {
            device,
            what,
            actor: other.map(|a| a.to_hex_string()).unwrap_or_else(|| "root".into()),
        }),
    }
}

fn structure(device: DeviceId, what: impl Into<String>) -> LogKind {
    LogKind::Structure { device, what: what.into() }
}

/// The single object at `key` of `obj`, which must be of type `ty` and created by the device.
fn child_object(
    doc: &Automerge,
    device: DeviceId,
    obj: &ObjId,
    key: &str,
    ty: ObjType,
    what: &'static str,
) -> Result<ObjId, LogKind> {
    let all = doc.get_all(obj, key)?;
    let [(value, id)] = all.as_slice() else {
        return Err(structure(device, format!("{what} has {} values", all.len())));
    };
    if !matches!(value, Value::Object(t) if *t == ty) {
        return Err(structure(device, format!("{what} is not a {ty:?}")));
    }
    check_actor(device, id, what)?;
    Ok(id.clone())
}

fn single_str(doc: &Automerge, device: DeviceId, obj: &ObjId, key: &str) -> Result<Option<String>, LogKind> {
    let all = doc.get_all(obj, key)?;
    match all.as_slice() {
        [] => Ok(None),
        [(Value::Scalar(s), id)] => {
            check_actor(device, id, "name")?;
            match s.as_ref() {
                ScalarValue::Str(text) => Ok(Some(text.to_string())),
                _ => Err(structure(device, "name is not text")),
            }
        }
        _ => Err(structure(device, "name is not a single text value")),
    }
}

/// Reads and checks the whole document. Batches already known in `previous` (same op id at the same
/// position) are not decoded again; everything else is. Fails if the document is not a valid log or if
/// it does not extend `previous`.
///
/// `latest_ms`: newly decoded records stamped after it are refused ([`LogKind::FutureRecord`]).
fn read_shape(doc: &Automerge, previous: Option<&Shape>, latest_ms: Option<u64>) -> Result<Shape, LogKind> {
    let mut shape = Shape::default();
    for key in doc.keys(ROOT) {
        let device = DeviceId::from_hex(&key).ok_or_else(|| LogKind::RootKey(key.clone()))?;
        let map = child_object(doc, device, &ROOT, &key, ObjType::Map, "device map")?;
        let old = previous.and_then(|p| p.devices.get(&device));
        if let Some(old) = old {
            if old.map != map {
                return Err(LogKind::NotGrowOnly { device, what: "the device map" });
            }
        }
        let batches = child_object(doc, device, &map, KEY_BATCHES, ObjType::List, "batch list")?;
        let gates = child_object(doc, device, &map, KEY_GATES, ObjType::List, "gate table")?;
        let overrides = child_object(doc, device, &map, KEY_OVERRIDES, ObjType::Map, "override map")?;
        single_str(doc, device, &map, KEY_NAME)?;
        for k in doc.keys(&map) {
            if ![KEY_NAME, KEY_GATES, KEY_BATCHES, KEY_OVERRIDES].contains(&k.as_str()) {
                return Err(structure(device, format!("unknown key {k:?}")));
            }
        }

        let mut batch_ids = Vec::new();
        let mut records = 0;
        for (i, (value, id)) in doc.values(&batches).enumerate() {
            check_actor(device, &id, "a batch")?;
            let known = old.and_then(|o| o.batch_ids.get(i)).is_some_and(|old_id| *old_id == id);
            let bytes = value.as_bytes().ok_or_else(|| structure(device, "a batch is not bytes"))?;
            if !known {
                let batch = ScanRecord::parse_batch(bytes).map_err(|source| LogKind::Record { device, source })?;
                if let Some(latest) = latest_ms {
                    if let Some(newest) = batch.iter().map(|r| r.hlc.millis()).max().filter(|&ms| ms > latest) {
                        return Err(LogKind::FutureRecord { device, ahead_ms: newest - latest + MAX_CLOCK_SKEW_MS });
                    }
                }
            }
            records += bytes.len() / super::record::RECORD_LEN;
            batch_ids.push(id);
        }
        let mut gate_ids = Vec::new();
        for (value, id) in doc.values(&gates) {
            check_actor(device, &id, "a gate name")?;
            if !matches!(value, Value::Scalar(ref s) if matches!(s.as_ref(), ScalarValue::Str(_))) {
                return Err(structure(device, "a gate name is not text"));
            }
            gate_ids.push(id);
        }
        if gate_ids.len() > usize::from(u16::MAX) + 1 {
            return Err(LogKind::TooManyGates);
        }
        let mut override_ids = BTreeMap::new();
        for key in doc.keys(&overrides) {
            let all = doc.get_all(&overrides, key.as_str())?;
            let [(Value::Scalar(s), id)] = all.as_slice() else {
                return Err(structure(device, "an override reason is not a single value"));
            };
            if !matches!(s.as_ref(), ScalarValue::Str(_)) || parse_hlc_key(&key).is_none() {
                return Err(structure(device, "bad override entry"));
            }
            check_actor(device, id, "an override reason")?;
            override_ids.insert(key, id.clone());
        }

        if let Some(old) = old {
            if !batch_ids.starts_with(&old.batch_ids) {
                return Err(LogKind::NotGrowOnly { device, what: "scan records" });
            }
            if !gate_ids.starts_with(&old.gate_ids) {
                return Err(LogKind::NotGrowOnly { device, what: "gate names" });
            }
            if old.override_ids.iter().any(|(k, id)| override_ids.get(k) != Some(id)) {
                return Err(LogKind::NotGrowOnly { device, what: "override reasons" });
            }
        }
        shape
            .devices
            .insert(device, DeviceShape { map, batches, gates, overrides, batch_ids, gate_ids, override_ids, records });
    }
    if let Some(previous) = previous {
        if let Some(device) = previous.devices.keys().find(|d| !shape.devices.contains_key(d)) {
            return Err(LogKind::NotGrowOnly { device: *device, what: "the device map" });
        }
    }
    Ok(shape)
}

fn hlc_key(hlc: Hlc) -> String {
    format!("{:016x}", hlc.0)
}

fn parse_hlc_key(key: &str) -> Option<Hlc> {
    DeviceId::from_hex(key).map(|d| Hlc(d.0))
}

fn check_text(text: &str, what: &'static str) -> Result<(), LogKind> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(LogKind::TextTooLong(what));
    }
    Ok(())
}

impl Default for RedemptionDoc {
    fn default() -> Self {
        Self::new_relay()
    }
}

impl RedemptionDoc {
    /// An empty log that `device` will write to.
    pub fn new_for_device(device: DeviceId) -> Self {
        Self {
            doc: Automerge::new().with_actor(ActorId::from(device.actor_bytes())),
            shape: Shape::default(),
            saved_heads: Vec::new(),
            own: None,
            refused: BTreeSet::new(),
        }
    }

    /// An empty log that only receives and relays (the sync server, the organizer's report).
    pub fn new_relay() -> Self {
        Self {
            doc: Automerge::new(),
            shape: Shape::default(),
            saved_heads: Vec::new(),
            own: None,
            refused: BTreeSet::new(),
        }
    }

    /// Loads and validates a saved log (a full save, incremental chunks, or both concatenated).
    pub fn load(bytes: &[u8]) -> crate::Result<Self> {
        let doc = catch_unwind(|| Automerge::load(bytes)).map_err(|_| LogKind::Panicked)??;
        let shape = read_shape(&doc, None, None)?;
        let saved_heads = doc.get_heads();
        Ok(Self { doc, shape, saved_heads, own: None, refused: BTreeSet::new() })
    }

    /// Loads a log that `device` will write to.
    pub fn load_for_device(bytes: &[u8], device: DeviceId) -> crate::Result<Self> {
        let mut log = Self::load(bytes)?;
        log.doc.set_actor(ActorId::from(device.actor_bytes()));
        log.own = None;
        Ok(log)
    }

    /// Merges saved logs (from any number of devices, in any order) into one validated log.
    pub fn merge_saved<'a>(logs: impl IntoIterator<Item = &'a [u8]>) -> crate::Result<Self> {
        let doc = catch_unwind(AssertUnwindSafe(|| -> crate::Result<Automerge> {
            let mut doc = Automerge::new();
            for bytes in logs {
                doc.load_incremental(bytes)?;
            }
            Ok(doc)
        }))
        .map_err(|_| LogKind::Panicked)??;
        let shape = read_shape(&doc, None, None)?;
        Ok(Self { doc, shape, saved_heads: Vec::new(), own: None, refused: BTreeSet::new() })
    }

    /// The full document, compressed.
    pub fn save(&self) -> Vec<u8> {
        self.doc.save()
    }

    /// The changes since the previous call (or load), to append to durable storage. Loading the first
    /// save followed by every chunk returned here gives back the whole log.
    pub fn take_unsaved(&mut self) -> Vec<u8> {
        let bytes = self.doc.save_after(&self.saved_heads);
        self.saved_heads = self.doc.get_heads();
        bytes
    }

    /// The changes since the last saved point and the heads they reach, without moving the saved point:
    /// write the bytes durably, then [`Self::mark_saved_at`] the heads. A failed write loses nothing.
    pub fn unsaved(&self) -> (Vec<u8>, Vec<ChangeHash>) {
        (self.doc.save_after(&self.saved_heads), self.doc.get_heads())
    }

    /// Moves the saved point to `heads` (from [`Self::unsaved`]) once those bytes are durable.
    pub fn mark_saved_at(&mut self, heads: Vec<ChangeHash>) {
        self.saved_heads = heads;
    }

    /// Marks everything as saved (after writing [`Self::save`] somewhere).
    pub fn mark_saved(&mut self) {
        self.saved_heads = self.doc.get_heads();
    }

    pub fn heads(&self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// The devices in the log.
    pub fn devices(&self) -> impl Iterator<Item = DeviceId> + '_ {
        self.shape.devices.keys().copied()
    }

    /// How many records the log holds.
    pub fn record_count(&self) -> usize {
        self.shape.devices.values().map(|d| d.records).sum()
    }

    /// How many records one device has in the log.
    pub fn device_record_count(&self, device: DeviceId) -> usize {
        self.shape.devices.get(&device).map_or(0, |d| d.records)
    }

    /// How many gate names one device has in the log.
    pub fn gate_count(&self, device: DeviceId) -> usize {
        self.shape.devices.get(&device).map_or(0, |d| d.gate_ids.len())
    }

    /// Reads one device's part of the log.
    pub fn device_log(&self, device: DeviceId) -> crate::Result<Option<DeviceLog>> {
        let Some(shape) = self.shape.devices.get(&device) else { return Ok(None) };
        let name = single_str(&self.doc, device, &shape.map, KEY_NAME)?.unwrap_or_default();
        let gates =
            self.doc.values(&shape.gates).map(|(v, _)| v.as_str().map(str::to_owned).unwrap_or_default()).collect();
        let mut records = Vec::with_capacity(shape.records);
        for (value, _) in self.doc.values(&shape.batches) {
            let bytes = value.as_bytes().ok_or_else(|| structure(device, "a batch is not bytes"))?;
            for chunk in bytes.chunks_exact(super::record::RECORD_LEN) {
                records.push(ScanRecord::parse(chunk).map_err(|source| LogKind::Record { device, source })?);
            }
        }
        let mut overrides = BTreeMap::new();
        for key in shape.override_ids.keys() {
            if let (Some(hlc), Some((value, _))) = (parse_hlc_key(key), self.doc.get(&shape.overrides, key.as_str())?) {
                overrides.insert(hlc, value.as_str().unwrap_or_default().to_owned());
            }
        }
        Ok(Some(DeviceLog { device, name, gates, records, overrides }))
    }

    /// Reads every device's part of the log.
    pub fn device_logs(&self) -> crate::Result<Vec<DeviceLog>> {
        let mut out = Vec::with_capacity(self.shape.devices.len());
        for device in self.shape.devices.keys() {
            if let Some(log) = self.device_log(*device)? {
                out.push(log);
            }
        }
        Ok(out)
    }

    /// Appends one batch of `device`'s records (and any new gate names, overrides, a changed name) as one
    /// change. The document must belong to `device`.
    pub fn append_batch(&mut self, device: DeviceId, batch: Batch<'_>) -> crate::Result<()> {
        if self.doc.get_actor().to_bytes() != device.actor_bytes() {
            return Err(LogKind::WrongActor { device, actor: self.doc.get_actor().to_hex_string() }.into());
        }
        check_text(batch.device_name, "device name")?;
        for gate in batch.gates {
            check_text(gate, "gate name")?;
        }
        for (_, reason) in batch.overrides {
            check_text(reason, "override reason")?;
        }
        if batch.gates.len() > usize::from(u16::MAX) + 1 {
            return Err(LogKind::TooManyGates.into());
        }
        let existing = self.shape.devices.get(&device).cloned();
        let old_name = match &existing {
            Some(shape) => single_str(&self.doc, device, &shape.map, KEY_NAME)?,
            None => None,
        };
        let own = self.own_mut()?;
        let mut tx = own.transaction();
        let (map, batches, gates, overrides, known_gates) = match &existing {
            Some(s) => (s.map.clone(), s.batches.clone(), s.gates.clone(), s.overrides.clone(), s.gate_ids.len()),
            None => {
                let map = tx.put_object(ROOT, device.to_hex(), ObjType::Map)?;
                let batches = tx.put_object(&map, KEY_BATCHES, ObjType::List)?;
                let gates = tx.put_object(&map, KEY_GATES, ObjType::List)?;
                let overrides = tx.put_object(&map, KEY_OVERRIDES, ObjType::Map)?;
                (map, batches, gates, overrides, 0)
            }
        };
        if old_name.as_deref() != Some(batch.device_name) {
            tx.put(&map, KEY_NAME, batch.device_name)?;
        }
        for (i, gate) in batch.gates.iter().enumerate().skip(known_gates) {
            tx.insert(&gates, i, gate.as_str())?;
        }
        for (hlc, reason) in batch.overrides {
            tx.put(&overrides, hlc_key(*hlc), reason.as_str())?;
        }
        if !batch.records.is_empty() {
            let mut bytes = Vec::with_capacity(batch.records.len() * super::record::RECORD_LEN);
            for r in batch.records {
                bytes.extend_from_slice(&r.encode());
            }
            let at = existing.as_ref().map_or(0, |s| s.batch_ids.len());
            tx.insert(&batches, at, ScalarValue::Bytes(bytes))?;
        }
        tx.commit_with(CommitOptions::default().with_time(batch.time));
        if let Some(change) = own.get_last_local_change() {
            let mut candidate = self.doc.clone();
            candidate.apply_changes([change])?;
            let shape = read_shape(&candidate, Some(&self.shape), None);
            match shape {
                Ok(shape) => {
                    self.doc = candidate;
                    self.shape = shape;
                }
                Err(e) => {
                    // The fork holds a change the log refused: drop it so the next append starts clean.
                    self.own = None;
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// The device's own-changes document, built on first use.
    fn own_mut(&mut self) -> Result<&mut Automerge, LogKind> {
        if self.own.is_none() {
            self.own = Some(self.own_history()?);
        }
        self.own.as_mut().ok_or(LogKind::Panicked)
    }

    /// This device's own changes and nothing else: the document at the device's last change (whose
    /// history is its earlier changes only, see the module documentation), with the device's actor.
    fn own_history(&self) -> Result<Automerge, LogKind> {
        let heads: Vec<ChangeHash> = self.doc.get_last_local_change().map(|c| vec![c.hash()]).unwrap_or_default();
        let mut own = self.doc.fork_at(&heads)?;
        own.set_actor(self.doc.get_actor().clone());
        Ok(own)
    }

    /// The next sync message for a peer, if there is anything to say. Always a version-1 message of single
    /// changes: the peer's advertised support for whole-document messages is forgotten first, because
    /// receivers here refuse documents (their compressed columns could not be bounded before inflation).
    pub fn generate_sync_message(&self, state: &mut sync::State) -> Option<Vec<u8>> {
        state.their_capabilities = None;
        self.doc.generate_sync_message(state).map(sync::Message::encode)
    }

    /// The next message of this device's push session (its own changes only; see [`SyncChannel`]).
    pub fn generate_push_message(&mut self, state: &mut sync::State) -> crate::Result<Option<Vec<u8>>> {
        let own = self.own_mut()?;
        state.read_only = true;
        state.their_capabilities = None;
        Ok(own.generate_sync_message(state).map(sync::Message::encode))
    }

    /// Receives the server's reply in this device's push session: it only moves the session's state (the
    /// server sends no changes there, and any it sent would be ignored).
    pub fn receive_push_reply(&mut self, state: &mut sync::State, bytes: &[u8]) -> crate::Result<()> {
        Ok(self.take_push_reply(state, bytes)?)
    }

    /// [`Self::receive_push_reply`]; whatever the log refuses is a refused sync message
    /// ([`SyncKind::Rejected`]).
    fn take_push_reply(&mut self, state: &mut sync::State, bytes: &[u8]) -> Result<(), SyncKind> {
        let mut message = decode_message(bytes)?;
        message.changes = sync::ChunkList::empty();
        let own = self.own_mut()?;
        let mut candidate = state.clone();
        candidate.read_only = true;
        catch_unwind(AssertUnwindSafe(|| own.receive_sync_message(&mut candidate, message)))
            .map_err(|_| LogKind::Panicked)?
            .map_err(LogKind::from)?;
        *state = candidate;
        Ok(())
    }

    /// Receives a sync message from a peer, taking only what `accept` allows (see the module
    /// documentation). Hostile or damaged messages are rejected and leave both the log and `state` exactly
    /// as they were; changes a device sent under another device's id are dropped.
    pub fn receive_sync_message(
        &mut self,
        state: &mut sync::State,
        bytes: &[u8],
        accept: Accept<'_>,
    ) -> crate::Result<Received> {
        Ok(self.take_sync_message(state, bytes, accept)?)
    }

    /// [`Self::receive_sync_message`]; whatever the log refuses is a refused sync message
    /// ([`SyncKind::Rejected`]).
    fn take_sync_message(
        &mut self,
        state: &mut sync::State,
        bytes: &[u8],
        accept: Accept<'_>,
    ) -> Result<Received, SyncKind> {
        let mut message = decode_message(bytes)?;
        let changes = decode_changes(&message.changes)?;
        // A read-only session (a server's side of a device's pull) takes nothing.
        let (kept, refused_changes) = if state.read_only { (Vec::new(), 0) } else { self.admissible(changes, accept)? };
        message.changes = sync::ChunkList::from(kept.iter().map(|c| c.raw_bytes().to_vec()).collect::<Vec<_>>());
        let mut candidate_state = state.clone();
        if message.changes.is_empty() {
            // No changes: only the sync state can move.
            self.doc.receive_sync_message(&mut candidate_state, message).map_err(LogKind::from)?;
            *state = candidate_state;
            return Ok(Received { refused_changes, ..Received::default() });
        }
        let before = self.doc.get_heads();
        let mut candidate = self.doc.clone();
        catch_unwind(AssertUnwindSafe(|| candidate.receive_sync_message(&mut candidate_state, message)))
            .map_err(|_| LogKind::Panicked)?
            .map_err(LogKind::from)?;
        // Changes whose history has not arrived yet wait in automerge's queue until the protocol asks for
        // it (a bloom-filter false positive does that); a peer may not park more than a few there.
        if candidate.get_missing_deps(&[]).len() > MAX_MISSING_DEPS {
            return Err(SyncKind::MissingHistory);
        }
        let received = self.adopt(candidate, &before, Some(accept.latest_ms()))?;
        *state = candidate_state;
        Ok(Received { refused_changes, ..received })
    }

    /// The changes of a message this log may take, in order, and how many a relay sent under ids it may
    /// not carry. See the module documentation.
    fn admissible(&mut self, changes: Vec<Change>, accept: Accept<'_>) -> Result<(Vec<Change>, usize), SyncKind> {
        let own = self.doc.get_actor().clone();
        let mut kept: Vec<Change> = Vec::with_capacity(changes.len());
        let mut refused = 0;
        for change in changes {
            if self.doc.get_change_by_hash(&change.hash()).is_some() {
                continue; // a repeat: nothing to take
            }
            let author = change.actor_id();
            let allowed = match accept.from {
                Peer::Device(device) => author.to_bytes() == device.actor_bytes(),
                Peer::Relay if *author == own => return Err(SyncKind::ForgedOwnActor(own.to_hex_string())),
                Peer::Relay => match accept.writers {
                    None => true,
                    Some(writers) => {
                        let device =
                            <[u8; 8]>::try_from(author.to_bytes()).ok().map(|b| DeviceId(u64::from_be_bytes(b)));
                        let listed = device.is_some_and(|d| writers.contains(&d));
                        if !listed {
                            refused += 1;
                            if self.refused.len() < MAX_REFUSED_REMEMBERED {
                                self.refused.insert(change.hash());
                            }
                        }
                        listed
                    }
                },
            };
            if allowed {
                kept.push(change);
            }
        }
        Ok((kept, refused))
    }

    /// Applies bytes from this log's own durable storage that another writer put there (a chunk a second
    /// server wrote to a shared store, or the full save that replaced the chunks), validated like a load.
    /// They are stored already, so the saved point moves with them when nothing else was unsaved. If the
    /// result would not be a valid log, this one is unchanged.
    pub fn apply_stored(&mut self, bytes: &[u8]) -> crate::Result<Received> {
        let before = self.doc.get_heads();
        let mut candidate = self.doc.clone();
        catch_unwind(AssertUnwindSafe(|| candidate.load_incremental(bytes))).map_err(|_| LogKind::Panicked)??;
        let received = self.adopt(candidate, &before, None)?;
        if self.saved_heads == before {
            self.saved_heads = self.doc.get_heads();
        }
        Ok(received)
    }

    /// Merges another log into this one. If the result would not be a valid log, this one is unchanged.
    pub fn merge(&mut self, other: &RedemptionDoc) -> crate::Result<Received> {
        let before = self.doc.get_heads();
        let mut candidate = self.doc.clone();
        let mut other_doc = other.doc.clone();
        catch_unwind(AssertUnwindSafe(|| candidate.merge(&mut other_doc))).map_err(|_| LogKind::Panicked)??;
        Ok(self.adopt(candidate, &before, None)?)
    }

    /// Replaces this log with `candidate` if it is a valid log that only grew; otherwise changes nothing.
    fn adopt(
        &mut self,
        candidate: Automerge,
        before: &[ChangeHash],
        latest_ms: Option<u64>,
    ) -> Result<Received, LogKind> {
        let shape = read_shape(&candidate, Some(&self.shape), latest_ms)?;
        let old_count = self.record_count();
        self.doc = candidate;
        self.shape = shape;
        Ok(Received {
            changed: self.doc.get_heads() != before,
            new_records: self.record_count().saturating_sub(old_count),
            refused_changes: 0,
        })
    }

    /// The set of all records in the log with their devices, in a canonical order: two logs holding the
    /// same scans give equal vectors whatever order they were merged in.
    pub fn record_set(&self) -> crate::Result<BTreeSet<(DeviceId, [u8; super::record::RECORD_LEN])>> {
        let mut out = BTreeSet::new();
        for log in self.device_logs()? {
            for r in &log.records {
                out.insert((log.device, r.encode()));
            }
        }
        Ok(out)
    }

    /// Whether this log holds every head the peer of `state` last advertised, i.e. everything the peer
    /// has. A device's pull session is complete as soon as this holds after a reply.
    pub fn holds_heads_of(&self, state: &sync::State) -> bool {
        state
            .their_heads
            .as_ref()
            .is_some_and(|heads| heads.iter().all(|h| self.doc.get_change_meta_by_hash(h).is_some()))
    }

    /// Whether a peer whose heads are `their_heads` provably holds every change of this log: each of
    /// this log's heads is one of theirs or an ancestor of one of theirs that this log knows. (A peer
    /// whose heads this log does not know may hold everything and still fail this: records from
    /// elsewhere.)
    fn peer_holds_heads(&self, their_heads: &[ChangeHash]) -> bool {
        let ours = self.doc.get_heads();
        if ours.iter().all(|h| their_heads.contains(h)) {
            return true;
        }
        let known: Vec<ChangeHash> =
            their_heads.iter().filter(|h| self.doc.get_change_meta_by_hash(h).is_some()).copied().collect();
        !known.is_empty() && self.doc.get_changes_meta(&known).is_empty()
    }

    /// The underlying automerge document (read-only).
    pub fn automerge(&self) -> &Automerge {
        &self.doc
    }
}

/// Encodes a peer's sync state for storage. Only what survives a reconnect is kept (the shared heads),
/// so a resumed sync starts from where the last one got to instead of from nothing.
pub fn encode_peer_state(state: &sync::State) -> Vec<u8> {
    state.encode()
}

/// The state a new session with a peer starts from: what storage keeps of `state` (the shared heads),
/// nothing of the last session's flight. A client over HTTP cannot tell whether its last message was
/// answered; carrying "in flight" or the peer's old heads into a new session would make it believe it
/// has nothing to say, and a quiet client would never hear of the server's news.
pub fn session_start(state: &sync::State) -> sync::State {
    sync::State::decode(&state.encode()).unwrap_or_default()
}

pub fn decode_peer_state(bytes: &[u8]) -> crate::Result<sync::State> {
    catch_unwind(|| sync::State::decode(bytes))
        .map_err(|_| SyncKind::State("decoder panicked".into()))?
        .map_err(|e| SyncKind::State(e.to_string()).into())
}

/// The sync server's side of one exchange, independent of transport (the issuer, the edge and any other
/// server call this, never automerge directly): receives a peer's message into the server's copy of the
/// log, taking only what `accept` allows, and returns the reply to send back (`None` = nothing to say).
/// `peer` is the server's sync state for that peer (decode it with [`decode_peer_state`], store it back
/// with [`encode_peer_state`]). On error, `doc` and `peer` are unchanged and the request should be
/// refused.
///
/// Persistence contract: when `received.changed`, append [`RedemptionDoc::take_unsaved`] durably
/// *before* sending the reply, and store `peer` only after that.
pub fn serve_sync(
    doc: &mut RedemptionDoc,
    peer: &mut sync::State,
    incoming: &[u8],
    accept: Accept<'_>,
    channel: SyncChannel,
) -> crate::Result<ServerReply> {
    // A device's pull session: this side takes nothing and says so (automerge's read-only flag), so the
    // device sends no changes in it. Its push session and relays are read-write. The relay session is for
    // servers: the transport must have authenticated the peer as one (`accept.from` = `Peer::Relay`).
    if matches!((accept.from, channel), (Peer::Device(_), SyncChannel::Relay)) {
        return Err(SyncKind::RelayOnly.into());
    }
    peer.read_only = matches!((accept.from, channel), (Peer::Device(_), SyncChannel::Pull));
    let their_heads_before = peer.their_heads.clone();
    let received = doc.receive_sync_message(peer, incoming, accept)?;
    if accept.writers.is_some() && !doc.refused.is_empty() {
        // Not asked for again: what was refused stays refused (see `RedemptionDoc::refused`).
        peer.their_heads =
            peer.their_heads.take().map(|heads| heads.into_iter().filter(|h| !doc.refused.contains(h)).collect());
    }
    let pull = peer.read_only;
    let news = received.changed || peer.their_heads != their_heads_before;
    peer.their_capabilities = None;
    // Over HTTP a reply may be lost, and the peer's next request may open a new session: what this side
    // sent before proves nothing. Only the peer's heads say what it holds, so nothing is withheld as
    // "sent already" (automerge's `sent_hashes` assumes a connection that delivers everything).
    peer.sent_hashes.clear();
    // In a pull, a message is always built (automerge would stay quiet towards a peer it already sent
    // these heads to, which a lost reply makes wrong); whether it goes is decided below.
    if pull {
        peer.last_sent_heads.clear();
    }
    let message = doc.doc.generate_sync_message(peer);
    // A device holds records this server never takes (other servers' and devices'), so the two never
    // reach the same heads and automerge alone would answer forever. So the server speaks only when it
    // has something to say:
    // - changes, always;
    // - in a pull, otherwise, its heads when the device may lack one of them: its bloom filter can claim
    //   a change it does not hold (about 1 in 100 for each), the change is then left out, and only the
    //   heads let the device see the gap and ask for it by hash. Not when the device's message says it
    //   has synced up to these heads already (its `have`: no server state needed, so a server that
    //   keeps none, like the edge, does not answer a device forever), nor when its heads cover them;
    // - in the other sessions, when the exchange taught either side something or the peer must be asked
    //   for changes.
    let send = match &message {
        None => false,
        Some(m) if !m.changes.is_empty() => true,
        Some(m) if pull => {
            !peer_synced_up_to(peer, &m.heads) && !doc.peer_holds_heads(peer.their_heads.as_deref().unwrap_or_default())
        }
        Some(m) => news || !m.need.is_empty(),
    };
    let reply = message.filter(|_| send).map(sync::Message::encode);
    Ok(ServerReply { reply, received })
}

/// Whether the peer's last message said it had synced up to `heads` (each of them in its `have`'s last
/// sync point): it holds them, by its own account, which only it could get wrong, to its own loss.
fn peer_synced_up_to(peer: &sync::State, heads: &[ChangeHash]) -> bool {
    let Some(haves) = &peer.their_have else { return false };
    heads.iter().all(|h| haves.iter().any(|have| have.last_sync.contains(h)))
}

/// Decodes a sync message no larger than [`MAX_SYNC_MESSAGE_BYTES`] (its changes are checked separately).
fn decode_message(bytes: &[u8]) -> Result<sync::Message, SyncKind> {
    if bytes.len() > MAX_SYNC_MESSAGE_BYTES {
        return Err(SyncKind::TooLarge(bytes.len()));
    }
    catch_unwind(|| sync::Message::decode(bytes))
        .map_err(|_| SyncKind::Decode("decoder panicked".into()))?
        .map_err(|e| SyncKind::Decode(e.to_string()))
}

/// Automerge's chunk header: magic bytes, then a 4-byte checksum, the chunk type and a LEB128 length.
const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHUNK_DOCUMENT: u8 = 0;
const CHUNK_CHANGE: u8 = 1;
const CHUNK_COMPRESSED_CHANGE: u8 = 2;

fn read_uleb(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Splits a message's chunks into single changes, refusing anything that is not a change and inflating
/// compressed changes under [`MAX_INFLATED_SYNC_BYTES`] before automerge decodes them.
fn decode_changes(chunks: &sync::ChunkList) -> Result<Vec<Change>, SyncKind> {
    let mut budget = MAX_INFLATED_SYNC_BYTES;
    let mut out = Vec::new();
    for entry in chunks.iter() {
        let mut rest = entry;
        while !rest.is_empty() {
            let bad = || SyncKind::Decode("bad chunk header".into());
            if rest.len() < 9 || rest[..4] != CHUNK_MAGIC {
                return Err(bad());
            }
            let kind = rest[8];
            let (len, len_size) = read_uleb(&rest[9..]).ok_or_else(bad)?;
            let start = 9 + len_size;
            let end = usize::try_from(len).ok().and_then(|l| start.checked_add(l)).filter(|&e| e <= rest.len());
            let end = end.ok_or_else(bad)?;
            let (chunk, data) = (&rest[..end], &rest[start..end]);
            match kind {
                CHUNK_CHANGE => budget = budget.checked_sub(data.len()).ok_or(SyncKind::Inflation)?,
                CHUNK_COMPRESSED_CHANGE => {
                    // Inflate into a sink, counting: the bytes are thrown away, only the size matters.
                    let mut decoder = flate2::read::DeflateDecoder::new(data).take(budget as u64 + 1);
                    let inflated = std::io::copy(&mut decoder, &mut std::io::sink())
                        .map_err(|e| SyncKind::Decode(format!("compressed change: {e}")))?;
                    budget = usize::try_from(inflated)
                        .ok()
                        .and_then(|n| budget.checked_sub(n))
                        .ok_or(SyncKind::Inflation)?;
                }
                CHUNK_DOCUMENT => return Err(SyncKind::ChunkKind("whole document")),
                _ => return Err(SyncKind::ChunkKind("bundle or unknown chunk")),
            }
            let change = catch_unwind(|| Change::from_bytes(chunk.to_vec()))
                .map_err(|_| SyncKind::Decode("change decoder panicked".into()))?
                .map_err(|e| SyncKind::Decode(e.to_string()))?;
            out.push(change);
            rest = &rest[end..];
        }
    }
    Ok(out)
}

/// What [`serve_sync`] answers.
#[derive(Debug, Clone)]
pub struct ServerReply {
    pub reply: Option<Vec<u8>>,
    pub received: Received,
}
