//! The scanning device as a pure state machine: gate table, scan decision, hybrid clock, pending scans, the
//! automerge [`RedemptionDoc`], the index the decision reads, and the trust material (keyring, revocation
//! list, attendee manifest, event). It touches no file, clock or network, so the CLI (on sled, see
//! [`super::store::RedemptionLog`]) and the browser scanner (wasm32, on IndexedDB) run the same logic;
//! each only persists what [`Device`] tells it to.
//!
//! # Persistence contract
//!
//! Storage holds, per device:
//!
//! - **config**: device id and name (from [`Device::new`]), gate table, event id, keyring JSON,
//!   revocation-list JSON, manifest JSON;
//! - **pending**: scans not yet folded into the document, keyed by sequence number; each value is the
//!   opaque bytes of [`PendingWrite::bytes`] (the 32-byte record, then the override reason if any);
//! - **chunks**: the document as an ordered list of byte chunks, plus `folded`, the last sequence number
//!   already inside the document;
//! - **peer sync states** (opaque bytes from [`encode_peer_state`], one per peer), if the device syncs.
//!
//! What to write, and when:
//!
//! 1. [`Device::scan`] / [`Device::record_edge_verdict`] return a [`ScanOutcome`]. **Before showing its
//!    verdict**, write `outcome.persist` durably in one transaction: `gates` (if `Some`) as the gate
//!    table, and `pending[seq] = bytes`. Only then show the verdict. If that write fails, show an error,
//!    not the verdict, and call [`Device::abandon_scan`] (or reload the device from storage).
//! 2. When [`Device::should_fold`] says so (when idle), and before a sync (so the peer gets the latest
//!    scans), call [`Device::fold`]. If it returns a [`Fold`], append `fold.chunk` as the next chunk **and**
//!    set `folded = fold.folded_seq` (if `Some`) in one transaction; afterwards delete the pending entries
//!    with `seq <= folded`. Optionally, when there are many chunks, replace them all by the one chunk
//!    [`Device::save_full`] returns (in one transaction); later chunks follow it. [`Device::report`] reads
//!    pending scans as they are: no fold needed.
//! 3. Sync: start each session from the peer's stored state, then loop `generate_sync_message` → send →
//!    [`Device::receive_sync_message`] until there is no message, the server answers nothing, or
//!    [`Device::pull_complete`]; each receipt returns a chunk (possibly empty) to append together with the
//!    peer's new sync state (encode it with [`encode_peer_state`]). The index is brought up to date before
//!    the next scan by itself.
//! 4. Config: store the JSON given to [`Device::set_keyring`], [`Device::set_manifest`] and
//!    [`Device::set_gate_rules`] as is, and the JSON that [`Device::set_revocations`] /
//!    [`Device::apply_revocation_delta`] return (the whole list).
//! 5. Supervisor mode: store the pass text given to [`Device::unlock_supervisor`] when it succeeds, and
//!    delete it on [`Device::lock_supervisor`]; restoring re-checks it (an expired pass is dropped).
//!
//! To restore, read everything back into a [`SavedDevice`] and call [`Device::restore`]: the chunks are
//! concatenated in order, pending entries with `seq <= folded` are ignored (a crash between steps 2's
//! two transactions leaves some behind: delete them), and the index and clock are rebuilt.

use thiserror::Error;

use super::decision::{
    decide_at, decide_paid, decide_undo, At, Decision, HolderDirectory, ManifestDirectory, ScanIndex, ScanInput,
    Verdict,
};
use super::document::{Accept, Batch, Received, RedemptionDoc, MAX_TEXT_BYTES};
use super::record::{DecisionPath, DeviceId, Hlc, HybridClock, Outcome, ScanKind, ScanRecord, TicketRef, RECORD_LEN};
use super::report::EventReport;
use crate::gates::GateRules;
use crate::keyring::Keyring;
use crate::manifest::Manifest;
use crate::revocation::{RevocationDelta, RevocationList};
use crate::supervisor::SupervisorPass;
use crate::ticket::{EntryPolicy, SignedTicket};
use crate::verify::VerifyContext;
use crate::wire::{EdgeReplyKind, EdgeVerdict};

/// A peer's sync state (what both sides had at the last exchange); persist it with [`encode_peer_state`].
pub use super::document::{decode_peer_state, encode_peer_state, PeerState};

/// What [`Device::decide_now`] decides.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Decide<'a> {
    Scan(ScanInput<'a>),
    /// The steward confirms the holder of a payment-due ticket paid (the text).
    Paid(&'a str),
    /// A supervisor's undo: text, reason.
    Undo(&'a str, &'a str),
}

/// Pending scans are folded into the document once this many have accumulated.
pub const DEFAULT_FOLD_EVERY: usize = 256;

/// How the scanning device (or its sled store) failed: the payload of [`crate::Error::Device`]. What the
/// device's parts refuse (keyring, revocation list, gate rules, sync, ...) is that part's variant of
/// [`crate::Error`].
#[derive(Debug, Error)]
pub enum DeviceKind {
    #[error("this scanner has no keyring yet (run `scanner init`)")]
    NoKeyring,
    #[error(
        "this scanner has no event: it cannot tell tickets for its event from others (run `scanner init --event ID`)"
    )]
    NoEvent,
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("gate name is empty or longer than {MAX_TEXT_BYTES} bytes")]
    GateName,
    #[error("device name is longer than {MAX_TEXT_BYTES} bytes")]
    DeviceName,
    #[error("a device can have at most 65536 gates")]
    TooManyGates,
    #[error("the gate rules are for event {rules}, this scanner admits to event {device}")]
    GateRulesEvent { rules: u32, device: u32 },
    #[error("only a supervisor may {0}: unlock supervisor mode with a supervisor pass")]
    SupervisorRequired(&'static str),
    /// The durable store (sled) failed.
    #[cfg(feature = "store")]
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("no scanner set up in {0} (run `scanner init` first)")]
    NotInitialized(std::path::PathBuf),
    #[error("sync transport: {0}")]
    Transport(String),
    #[error("sync did not converge after {0} round trips; run it again to resume")]
    SyncStalled(usize),
    #[error("this log belongs to device {stored}, but the token is device {token}'s: use a new data directory")]
    OtherDevice { stored: DeviceId, token: DeviceId },
}

/// What storage must write durably before a scan's verdict is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWrite {
    /// Key of the pending entry.
    pub seq: u64,
    /// Value of the pending entry (see [`PendingScan::encode`]).
    pub bytes: Vec<u8>,
    /// The device's new gate table, when this scan added a gate: write it in the same transaction.
    pub gates: Option<Vec<String>>,
}

/// A scan, decided and applied to the device, with what to persist before its verdict is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOutcome {
    pub verdict: Verdict,
    pub record: ScanRecord,
    pub device: DeviceId,
    /// The scan's local sequence number.
    pub seq: u64,
    pub path: DecisionPath,
    pub persist: PendingWrite,
    /// When an edge is configured but this device decided: why the edge was not used ("not asked: …",
    /// a timeout, an error status). Set by [`Device::finish`] / [`Device::plan`].
    pub edge_note: Option<String>,
}

/// A scan recorded on this device and not yet folded into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingScan {
    pub seq: u64,
    pub record: ScanRecord,
    pub override_reason: Option<String>,
}

impl PendingScan {
    /// The stored form: the 32-byte record, then the override reason's UTF-8 bytes, if any.
    pub fn encode(&self) -> Vec<u8> {
        let mut value = self.record.encode().to_vec();
        if let Some(reason) = &self.override_reason {
            value.extend_from_slice(reason.as_bytes());
        }
        value
    }

    pub fn decode(seq: u64, value: &[u8]) -> crate::Result<Self> {
        if value.len() < RECORD_LEN {
            return Err(DeviceKind::Corrupt(format!("pending scan {seq} is truncated")).into());
        }
        let record = ScanRecord::decode(&value[..RECORD_LEN])
            .map_err(|e| DeviceKind::Corrupt(format!("pending scan {seq}: {e}")))?;
        let override_reason = if value.len() > RECORD_LEN {
            Some(
                String::from_utf8(value[RECORD_LEN..].to_vec())
                    .map_err(|_| DeviceKind::Corrupt(format!("pending scan {seq}: override reason is not UTF-8")))?,
            )
        } else {
            None
        };
        Ok(Self { seq, record, override_reason })
    }
}

/// A fold of pending scans into the document: what storage must write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    /// Append as the next document chunk.
    pub chunk: Vec<u8>,
    /// Set `folded` to this in the same transaction (None: only gates or the name changed).
    pub folded_seq: Option<u64>,
    /// How many scans were folded.
    pub scans: usize,
}

/// What a received sync message (or merged log) changed: the chunk to append (empty if nothing) together
/// with the peer's sync state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Receipt {
    pub chunk: Vec<u8>,
    pub changed: bool,
    pub new_records: usize,
}

/// Everything storage keeps for a device, read back to restore it.
#[derive(Debug, Clone, Default)]
pub struct SavedDevice {
    pub device: DeviceId,
    pub name: String,
    pub gates: Vec<String>,
    pub event_id: Option<u32>,
    pub keyring_json: Option<String>,
    pub revocations_json: Option<String>,
    pub manifest_json: Option<String>,
    pub gate_rules_json: Option<String>,
    /// The supervisor pass that unlocked supervisor mode, if it is unlocked.
    pub supervisor_pass: Option<String>,
    /// The document's chunks, concatenated in order (empty for a device that never folded).
    pub doc: Vec<u8>,
    /// The last sequence number inside the document (0 if none).
    pub folded_seq: u64,
    /// The pending entries as stored: (seq, bytes), any order.
    pub pending: Vec<(u64, Vec<u8>)>,
}

/// The scanning device. See the module documentation for the persistence contract.
#[derive(Debug)]
pub struct Device {
    device: DeviceId,
    name: String,
    gates: Vec<String>,
    doc: RedemptionDoc,
    index: ScanIndex,
    /// The index no longer reflects the document (something arrived by sync); rebuilt before the next
    /// decision.
    index_stale: bool,
    clock: HybridClock,
    pending: Vec<PendingScan>,
    next_seq: u64,
    keyring: Option<Keyring>,
    revocations: Option<RevocationList>,
    holders: Option<ManifestDirectory>,
    event_id: Option<u32>,
    fold_every: usize,
    gate_rules: Option<GateRules>,
    /// Supervisor mode: the checked pass (valid until its `not_after`).
    supervisor: Option<SupervisorPass>,
}

fn check_name(name: &str) -> crate::Result<()> {
    if name.len() > MAX_TEXT_BYTES {
        return Err(DeviceKind::DeviceName.into());
    }
    Ok(())
}

impl Device {
    /// A new device with no scans and no trust material yet. The caller chooses the id (random, non-zero)
    /// and persists it with the name.
    pub fn new(device: DeviceId, name: &str) -> crate::Result<Self> {
        check_name(name)?;
        let mut new = Self {
            device,
            name: name.to_owned(),
            gates: Vec::new(),
            doc: RedemptionDoc::new_for_device(device),
            index: ScanIndex::new(),
            index_stale: false,
            clock: HybridClock::new(),
            pending: Vec::new(),
            next_seq: 1,
            keyring: None,
            revocations: None,
            holders: None,
            event_id: None,
            fold_every: DEFAULT_FOLD_EVERY,
            gate_rules: None,
            supervisor: None,
        };
        new.rebuild_index()?;
        Ok(new)
    }

    /// Restores a device from what storage kept (see the module documentation).
    pub fn restore(saved: SavedDevice) -> crate::Result<Self> {
        check_name(&saved.name)?;
        let doc = if saved.doc.is_empty() {
            RedemptionDoc::new_for_device(saved.device)
        } else {
            RedemptionDoc::load_for_device(&saved.doc, saved.device)?
        };
        let mut pending = Vec::new();
        for (seq, bytes) in &saved.pending {
            if *seq > saved.folded_seq {
                pending.push(PendingScan::decode(*seq, bytes)?);
            }
        }
        pending.sort_by_key(|p| p.seq);
        let next_seq = pending.last().map_or(saved.folded_seq, |p| p.seq) + 1;
        let mut device = Self {
            device: saved.device,
            name: saved.name,
            gates: saved.gates,
            doc,
            index: ScanIndex::new(),
            index_stale: false,
            clock: HybridClock::new(),
            pending,
            next_seq,
            keyring: None,
            revocations: None,
            holders: None,
            event_id: saved.event_id,
            fold_every: DEFAULT_FOLD_EVERY,
            gate_rules: None,
            supervisor: None,
        };
        if let Some(json) = &saved.keyring_json {
            device.set_keyring(json)?;
        }
        if let Some(json) = &saved.revocations_json {
            if device.keyring.is_some() {
                device.set_revocations(json)?;
            }
        }
        if let Some(json) = &saved.manifest_json {
            device.set_manifest(json)?;
        }
        if let Some(json) = &saved.gate_rules_json {
            device.set_gate_rules(json)?;
        }
        // A pass that no longer checks (expired, or from a key since removed) leaves the device locked;
        // it is re-checked against the clock at every supervisor action anyway.
        if let (Some(pass), Some(ring), Some(event)) = (&saved.supervisor_pass, &device.keyring, device.event_id) {
            device.supervisor = SupervisorPass::check_signed(pass, ring, event).ok();
        }
        device.rebuild_index()?;
        Ok(device)
    }

    /// Rebuilds the index (and moves the clock past every record) from the document and pending scans.
    pub fn rebuild_index(&mut self) -> crate::Result<()> {
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
        self.index_stale = false;
        Ok(())
    }

    fn fresh_index(&mut self) -> crate::Result<()> {
        if self.index_stale {
            self.rebuild_index()?;
        }
        Ok(())
    }

    pub fn device(&self) -> DeviceId {
        self.device
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn gates(&self) -> &[String] {
        &self.gates
    }

    pub fn event_id(&self) -> Option<u32> {
        self.event_id
    }

    pub fn keyring(&self) -> Option<&Keyring> {
        self.keyring.as_ref()
    }

    pub fn revocations(&self) -> Option<&RevocationList> {
        self.revocations.as_ref()
    }

    /// The cached revocation list's version (0 if none).
    pub fn revocations_version(&self) -> u64 {
        self.revocations.as_ref().map_or(0, RevocationList::version)
    }

    pub fn manifest(&self) -> Option<&Manifest> {
        self.holders.as_ref().map(ManifestDirectory::manifest)
    }

    /// All records known: the document's plus this device's pending ones.
    pub fn record_count(&self) -> usize {
        self.doc.record_count() + self.pending.len()
    }

    pub fn pending(&self) -> &[PendingScan] {
        &self.pending
    }

    /// The document (pending scans not included until folded).
    pub fn doc(&self) -> &RedemptionDoc {
        &self.doc
    }

    /// The index the decision reads. After a sync, call [`Self::rebuild_index`] first if you read it
    /// directly (scans rebuild it themselves).
    pub fn index(&self) -> &ScanIndex {
        &self.index
    }

    /// Sets how many pending scans make [`Self::should_fold`] true (at least 1).
    pub fn set_fold_every(&mut self, n: usize) {
        self.fold_every = n.max(1);
    }

    /// Whether enough scans are pending that [`Self::fold`] should run (call it when idle).
    pub fn should_fold(&self) -> bool {
        self.pending.len() >= self.fold_every
    }

    /// Sets the keyring (JSON as published by the issuer). Store the same JSON.
    pub fn set_keyring(&mut self, json: &str) -> crate::Result<()> {
        self.keyring = Some(Keyring::from_json(json)?);
        Ok(())
    }

    /// Replaces the revocation list with a complete one (JSON, verified against the keyring). Returns the
    /// JSON to store.
    /// A list older than the one held, or another list at the same version, is refused
    /// ([`RevocationKind::Rollback`] / [`RevocationKind::Conflict`]) and the held one stays.
    pub fn set_revocations(&mut self, json: &str) -> crate::Result<String> {
        let ring = self.keyring.as_ref().ok_or(DeviceKind::NoKeyring)?;
        let list = RevocationList::from_json(json, ring)?;
        if let Some(held) = &self.revocations {
            held.check_successor(&list)?;
        }
        let stored = list.to_json();
        self.revocations = Some(list);
        Ok(stored)
    }

    /// Applies a revocation delta (JSON) to the list. Returns the whole list's JSON to store. A delta
    /// older than the held list is refused ([`RevocationKind::Rollback`]).
    pub fn apply_revocation_delta(&mut self, json: &str) -> crate::Result<String> {
        let ring = self.keyring.as_ref().ok_or(DeviceKind::NoKeyring)?;
        let delta = RevocationDelta::from_json(json)?;
        let mut list = self.revocations.clone().unwrap_or_default();
        list.apply(&delta, ring)?;
        let stored = list.to_json();
        self.revocations = Some(list);
        Ok(stored)
    }

    /// Sets the attendee manifest (JSON as served by the issuer). Store the same JSON.
    pub fn set_manifest(&mut self, json: &str) -> crate::Result<()> {
        self.holders = Some(ManifestDirectory::new(Manifest::from_json(json)?));
        Ok(())
    }

    /// Restricts admission to one event.
    pub fn set_event(&mut self, event_id: u32) {
        self.event_id = Some(event_id);
    }

    /// Sets the event's gate rules (JSON as served by the issuer, see [`crate::gates`]). Store the same JSON.
    pub fn set_gate_rules(&mut self, json: &str) -> crate::Result<()> {
        let rules = GateRules::from_json(json)?;
        if let Some(device) = self.event_id.filter(|&e| e != rules.event_id) {
            return Err(DeviceKind::GateRulesEvent { rules: rules.event_id, device }.into());
        }
        self.gate_rules = Some(rules);
        Ok(())
    }

    pub fn gate_rules(&self) -> Option<&GateRules> {
        self.gate_rules.as_ref()
    }

    /// Unlocks supervisor mode with a supervisor pass (checked offline against the keyring, the event and
    /// `now_secs`). Store the pass text (persistence contract, 5).
    pub fn unlock_supervisor(&mut self, pass: &str, now_secs: u64) -> crate::Result<&SupervisorPass> {
        let ring = self.keyring.as_ref().ok_or(DeviceKind::NoKeyring)?;
        let event = self.event_id.ok_or(DeviceKind::NoEvent)?;
        Ok(self.supervisor.insert(SupervisorPass::verify(pass, ring, event, now_secs)?))
    }

    /// Back to steward mode. Delete the stored pass.
    pub fn lock_supervisor(&mut self) {
        self.supervisor = None;
    }

    /// The supervisor whose pass is unlocked and still valid at `now_secs`, if any.
    pub fn supervisor(&self, now_secs: u64) -> Option<&SupervisorPass> {
        self.supervisor.as_ref().filter(|p| now_secs <= u64::from(p.not_after))
    }

    /// The supervisor's name, or the error naming what a steward may not do.
    pub(crate) fn require_supervisor(&self, now_ms: u64, what: &'static str) -> crate::Result<String> {
        self.supervisor(now_ms / 1000).map(|p| p.name.clone()).ok_or(DeviceKind::SupervisorRequired(what).into())
    }

    /// The gate's index, adding it to the table if new (then the table must be persisted).
    fn gate_index(&mut self, gate: &str) -> crate::Result<(u16, bool)> {
        if gate.is_empty() || gate.len() > MAX_TEXT_BYTES {
            return Err(DeviceKind::GateName.into());
        }
        if let Some(i) = self.gates.iter().position(|g| g == gate) {
            return Ok((u16::try_from(i).map_err(|_| DeviceKind::TooManyGates)?, false));
        }
        let i = u16::try_from(self.gates.len()).map_err(|_| DeviceKind::TooManyGates)?;
        self.gates.push(gate.to_owned());
        self.index.set_device(self.device, &self.name, &self.gates);
        Ok((i, true))
    }

    /// Decides a scan offline and applies it. `now_ms` is the device's wall clock in Unix milliseconds.
    /// Persist `outcome.persist` before showing `outcome.verdict`.
    pub fn scan(&mut self, input: ScanInput<'_>, gate: &str, now_ms: u64) -> crate::Result<ScanOutcome> {
        self.decide_and_apply(input, false, gate, now_ms)
    }

    /// The steward confirms that the holder of a ticket whose payment is due (a [`Verdict::PaymentDue`])
    /// paid at the door: decided offline again and, if still due, admitted and recorded with the amount
    /// collected ([`Outcome::PaidAtDoor`]). Any other ticket gets its ordinary verdict. Persist
    /// `outcome.persist` before showing `outcome.verdict`, as for [`Self::scan`].
    pub fn confirm_paid(&mut self, text: &str, gate: &str, now_ms: u64) -> crate::Result<ScanOutcome> {
        let decision = self.decide_now(Decide::Paid(text), gate, now_ms)?;
        self.apply_decision(decision, gate, now_ms)
    }

    fn decide_and_apply(
        &mut self,
        input: ScanInput<'_>,
        paid: bool,
        gate: &str,
        now_ms: u64,
    ) -> crate::Result<ScanOutcome> {
        let action = if paid { Decide::Paid(input.text) } else { Decide::Scan(input) };
        let decision = self.decide_now(action, gate, now_ms)?;
        self.apply_decision(decision, gate, now_ms)
    }

    /// Decides (without recording) a scan, a paid confirmation or an undo, offline, at `gate` with the
    /// device's gate rules.
    pub(crate) fn decide_now(&mut self, action: Decide<'_>, gate: &str, now_ms: u64) -> crate::Result<Decision> {
        if self.keyring.is_none() {
            return Err(DeviceKind::NoKeyring.into());
        }
        self.fresh_index()?;
        let keyring = self.keyring.as_ref().ok_or(DeviceKind::NoKeyring)?;
        let event_id = self.event_id.ok_or(DeviceKind::NoEvent)?;
        let ctx = VerifyContext { keyring, revocations: self.revocations.as_ref(), event_id, now: now_ms / 1000 };
        let holders = self.holders.as_ref().map(|h| h as &dyn HolderDirectory);
        let at = At { gate, rules: self.gate_rules.as_ref(), redeem: None };
        Ok(match action {
            Decide::Scan(input) => decide_at(input, &ctx, &self.index, holders, self.device, at),
            Decide::Paid(text) => decide_paid(text, &ctx, &self.index, holders, self.device, at),
            Decide::Undo(text, reason) => decide_undo(text, reason, &ctx, &self.index, holders, self.device, at)?,
        })
    }

    /// Records a decision made by [`Self::decide_now`] (its note kept beside the record).
    pub(crate) fn apply_decision(&mut self, decision: Decision, gate: &str, now_ms: u64) -> crate::Result<ScanOutcome> {
        let (gate_index, new_gate) = self.gate_index(gate)?;
        let hlc = self.clock.tick(now_ms);
        let record = decision.record(hlc, wall_secs(now_ms), gate_index);
        Ok(self.apply(decision.verdict, record, decision.note, new_gate))
    }

    /// Whether the latest record of this ticket (at this gate's slot) is an undo by this device.
    pub(crate) fn undone_here(&self, decision: &Decision) -> bool {
        self.index.undone_by(&decision.ticket, decision.addon, self.device)
    }

    /// Records a verdict the edge Worker decided for this scan (the device's "mirror" of the edge's own
    /// record), so that this device's index knows the ticket is used and the report shows the edge decided.
    /// Persist `outcome.persist` before showing `outcome.verdict`.
    ///
    /// The verdict is checked against the scan: an admission or exit needs a text that parses as a ticket
    /// and a matching scan kind; otherwise [`EdgeReplyKind::Mismatch`] (decide offline instead).
    pub fn record_edge_verdict(
        &mut self,
        text: &str,
        kind: ScanKind,
        gate: &str,
        edge: &EdgeVerdict,
        now_ms: u64,
    ) -> crate::Result<ScanOutcome> {
        self.mirror_edge_verdict(text, kind, gate, edge, None, None, now_ms)
    }

    /// [`Self::record_edge_verdict`] of a scan that redeemed `addon` (at a gate that redeems one), with a
    /// note of this device's own to keep beside an admission (e.g. "found by search").
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mirror_edge_verdict(
        &mut self,
        text: &str,
        kind: ScanKind,
        gate: &str,
        edge: &EdgeVerdict,
        addon: Option<u8>,
        note: Option<String>,
        now_ms: u64,
    ) -> crate::Result<ScanOutcome> {
        let parsed = SignedTicket::from_qr_text(text.trim()).ok();
        let (ticket, reentry, ticket_type) = match &parsed {
            Some(s) => {
                (TicketRef::of(&s.ticket.ticket_id), s.ticket.policy == EntryPolicy::ReEntry, s.ticket.ticket_type)
            }
            None => (TicketRef::NONE, false, 0),
        };
        let (outcome, override_reason) = match (&edge.verdict, kind) {
            (Verdict::Admit(a), ScanKind::Entry) => match &a.overridden {
                Some(_) => (Outcome::AdmittedOverride, a.override_reason.clone()),
                None => (Outcome::Admitted, None),
            },
            (Verdict::Exit { .. }, ScanKind::Exit) => (Outcome::Admitted, None),
            (Verdict::AlreadyUsed(_), ScanKind::Entry) => (Outcome::AlreadyUsed, None),
            (Verdict::Refused { code, .. }, _) => (Outcome::Refused(*code), None),
            // The edge only asks for payment; the steward's confirmation is decided on the device.
            (Verdict::PaymentDue(_), ScanKind::Entry) => (Outcome::PaymentDue, None),
            _ => return Err(EdgeReplyKind::Mismatch("verdict is not one for this kind of scan").into()),
        };
        if parsed.is_none() && !matches!(outcome, Outcome::Refused(_)) {
            return Err(EdgeReplyKind::Mismatch("the edge let through a text that is not a ticket").into());
        }
        let event = self.event_id.ok_or(DeviceKind::NoEvent)?;
        if parsed.as_ref().is_some_and(|p| p.ticket.event_id != event) && !matches!(outcome, Outcome::Refused(_)) {
            return Err(EdgeReplyKind::Mismatch("the edge let through a ticket for another event").into());
        }
        self.fresh_index()?;
        let (gate_index, new_gate) = self.gate_index(gate)?;
        // With the edge's clock value the mirror pairs exactly with the edge's record in the report; the
        // device's clock moves past it so its own later records still sort after.
        let hlc = match edge.hlc {
            Some(hlc) if hlc != Hlc::default() => {
                self.clock.observe(hlc);
                hlc
            }
            _ => self.clock.tick(now_ms),
        };
        let record = ScanRecord {
            ticket,
            hlc,
            wall_time: wall_secs(now_ms),
            gate: gate_index,
            kind,
            reentry,
            outcome,
            ticket_type,
            decided_by_edge: true,
            // Only an admission redeems the add-on; the edge's other verdicts are about the ticket too.
            addon: addon.filter(|_| outcome.passed() || outcome == Outcome::AlreadyUsed),
        };
        let mut verdict = edge.verdict.clone();
        // The edge holds no names; this device's attendee manifest does, so the steward sees who it is.
        if let (Verdict::Admit(a), Some(signed)) = (&mut verdict, &parsed) {
            if a.holder.is_none() {
                a.holder = self.holders.as_ref().and_then(|h| h.entry(&signed.ticket.ticket_id)).map(|e| e.holder_name);
            }
        }
        // Nor amounts: the amount due comes from this device's manifest too.
        if let (Verdict::PaymentDue(p), Some(signed)) = (&mut verdict, &parsed) {
            if let Some(entry) = self.holders.as_ref().and_then(|h| h.entry(&signed.ticket.ticket_id)) {
                p.holder = p.holder.take().or(Some(entry.holder_name));
                p.due = p.due.take().or(entry.due);
            }
        }
        let note = override_reason.or(note.filter(|_| outcome.passed()));
        Ok(self.apply(verdict, record, note, new_gate))
    }

    fn apply(
        &mut self,
        verdict: Verdict,
        record: ScanRecord,
        override_reason: Option<String>,
        new_gate: bool,
    ) -> ScanOutcome {
        let seq = self.next_seq;
        self.next_seq += 1;
        let pending = PendingScan { seq, record, override_reason };
        let persist = PendingWrite { seq, bytes: pending.encode(), gates: new_gate.then(|| self.gates.clone()) };
        self.index.add(self.device, &record);
        self.pending.push(pending);
        ScanOutcome {
            verdict,
            record,
            device: self.device,
            seq,
            path: DecisionPath::of(&record),
            persist,
            edge_note: None,
        }
    }

    /// Undoes the latest scan when storage could not persist it (its verdict must not be shown). Returns
    /// whether `seq` was the latest pending scan.
    pub fn abandon_scan(&mut self, seq: u64) -> crate::Result<bool> {
        if self.pending.last().map(|p| p.seq) != Some(seq) {
            return Ok(false);
        }
        self.pending.pop();
        self.next_seq = seq;
        self.rebuild_index()?;
        Ok(true)
    }

    /// Folds the pending scans (and any new gates or name) into the document as one change. `None` when
    /// there is nothing to fold. See the module documentation for what to persist.
    pub fn fold(&mut self, now_secs: i64) -> crate::Result<Option<Fold>> {
        let known_gates = self.doc.gate_count(self.device);
        if self.pending.is_empty() && known_gates >= self.gates.len() {
            return Ok(None);
        }
        let records: Vec<ScanRecord> = self.pending.iter().map(|p| p.record).collect();
        let overrides: Vec<(Hlc, String)> =
            self.pending.iter().filter_map(|p| Some((p.record.hlc, p.override_reason.clone()?))).collect();
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
        let fold = Fold {
            chunk: self.doc.take_unsaved(),
            folded_seq: self.pending.last().map(|p| p.seq),
            scans: records.len(),
        };
        self.pending.clear();
        Ok(Some(fold))
    }

    /// The whole document as one chunk, to replace every stored chunk (compaction). Fold first if the
    /// pending scans should be in it.
    pub fn save_full(&mut self) -> Vec<u8> {
        let full = self.doc.save();
        self.doc.mark_saved();
        full
    }

    /// The next message of the pull session with a server (everyone's records come in; see
    /// [`crate::redemption::SyncChannel`]), if there is anything to say.
    pub fn generate_sync_message(&self, state: &mut PeerState) -> Option<Vec<u8>> {
        self.doc.generate_sync_message(state)
    }

    /// Whether the pull session with `state`'s server is complete: this device holds every head the
    /// server advertised in its last reply, so it has everything the server has. Ask after each reply,
    /// and stop the session when it is (one round trip fewer than waiting for the server to fall silent).
    pub fn pull_complete(&self, state: &PeerState) -> bool {
        self.doc.holds_heads_of(state)
    }

    /// The next message of the push session with a server (this device's own records go out), if there is
    /// anything to say. Fold first so the server gets the latest scans.
    pub fn generate_push_message(&mut self, state: &mut PeerState) -> crate::Result<Option<Vec<u8>>> {
        self.doc.generate_push_message(state)
    }

    /// Receives the server's reply in the push session (it only moves the session's state).
    pub fn receive_push_reply(&mut self, state: &mut PeerState, bytes: &[u8]) -> crate::Result<()> {
        self.doc.receive_push_reply(state, bytes)
    }

    /// Receives a peer's sync message. Persist the returned chunk (if not empty) with the peer's new state.
    /// Hostile messages are rejected and change nothing.
    /// `now_ms` is the device's wall clock: records stamped more than a few minutes after it are refused, so
    /// no message can push this device's clock into the future.
    pub fn receive_sync_message(&mut self, state: &mut PeerState, bytes: &[u8], now_ms: u64) -> crate::Result<Receipt> {
        let received = self.doc.receive_sync_message(state, bytes, Accept::relay(now_ms))?;
        Ok(self.receipt(received))
    }

    /// Merges another saved log (e.g. exported from a device that never reached the network). Invalid
    /// logs are rejected and change nothing. Persist the returned chunk.
    pub fn merge_saved(&mut self, bytes: &[u8]) -> crate::Result<Receipt> {
        let other = RedemptionDoc::load(bytes)?;
        let received = self.doc.merge(&other)?;
        Ok(self.receipt(received))
    }

    fn receipt(&mut self, received: Received) -> Receipt {
        if received.changed {
            self.index_stale = true;
        }
        Receipt { chunk: self.doc.take_unsaved(), changed: received.changed, new_records: received.new_records }
    }

    /// The organizer's report over everything this device knows, pending scans included (without
    /// folding them: the report reads them alongside the document).
    pub fn report(&self) -> crate::Result<EventReport> {
        let mut logs = self.doc.device_logs()?;
        if !self.pending.is_empty() || !logs.iter().any(|l| l.device == self.device) {
            let at = match logs.iter().position(|l| l.device == self.device) {
                Some(at) => at,
                None => {
                    logs.push(super::document::DeviceLog {
                        device: self.device,
                        name: self.name.clone(),
                        gates: Vec::new(),
                        records: Vec::new(),
                        overrides: Default::default(),
                    });
                    logs.len() - 1
                }
            };
            let own = &mut logs[at];
            own.name.clone_from(&self.name);
            own.gates.clone_from(&self.gates);
            for p in &self.pending {
                own.records.push(p.record);
                if let Some(reason) = &p.override_reason {
                    own.overrides.insert(p.record.hlc, reason.clone());
                }
            }
        }
        Ok(EventReport::from_logs(&logs))
    }
}

fn wall_secs(now_ms: u64) -> u32 {
    u32::try_from(now_ms / 1000).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::IssuerKey;
    use crate::ticket::Ticket;

    const NOW_MS: u64 = 1_750_000_000_000;

    use crate::fixtures::{issuer, plain_ticket, qr, EVENT};

    fn key() -> IssuerKey {
        issuer().0
    }

    fn keyring_json() -> String {
        issuer().1.to_json()
    }

    /// Ticket `id` of the fixtures' event (type 0, no add-ons) with this policy.
    fn ticket(id: u8, policy: EntryPolicy) -> String {
        qr(&key(), &Ticket { policy, ..plain_ticket(u64::from(id), EVENT) })
    }

    fn entry(text: &str) -> ScanInput<'_> {
        ScanInput { text, kind: ScanKind::Entry, override_reason: None }
    }

    /// A stand-in for the browser's or sled's storage: exactly what the contract says to write.
    #[derive(Default, Clone)]
    struct Storage {
        saved: SavedDevice,
        chunks: Vec<Vec<u8>>,
    }

    impl Storage {
        fn persist_scan(&mut self, outcome: &ScanOutcome) {
            if let Some(gates) = &outcome.persist.gates {
                self.saved.gates = gates.clone();
            }
            self.saved.pending.push((outcome.persist.seq, outcome.persist.bytes.clone()));
        }

        fn persist_fold(&mut self, fold: Option<Fold>) {
            if let Some(fold) = fold {
                self.chunks.push(fold.chunk);
                if let Some(seq) = fold.folded_seq {
                    self.saved.folded_seq = seq;
                }
                let folded = self.saved.folded_seq;
                self.saved.pending.retain(|(seq, _)| *seq > folded);
            }
        }

        fn restore(&self) -> Device {
            let mut saved = self.saved.clone();
            saved.doc = self.chunks.concat();
            Device::restore(saved).unwrap()
        }
    }

    fn new_device(storage: &mut Storage) -> Device {
        let mut d = Device::new(DeviceId(0x1234), "door 1").unwrap();
        d.set_keyring(&keyring_json()).unwrap();
        d.set_event(EVENT);
        storage.saved.device = d.device();
        storage.saved.name = d.name().to_owned();
        storage.saved.keyring_json = Some(keyring_json());
        storage.saved.event_id = Some(EVENT);
        d
    }

    #[test]
    fn scan_persist_restore_then_second_scan_is_already_used() {
        let mut storage = Storage::default();
        let mut d = new_device(&mut storage);
        let qr = ticket(1, EntryPolicy::SingleEntry);
        let first = d.scan(entry(&qr), "North", NOW_MS).unwrap();
        assert!(first.verdict.is_admit());
        assert_eq!(first.path, DecisionPath::Offline);
        assert_eq!(first.persist.gates, Some(vec!["North".to_owned()]));
        storage.persist_scan(&first);

        let mut restored = storage.restore();
        let second = restored.scan(entry(&qr), "North", NOW_MS + 5).unwrap();
        match &second.verdict {
            Verdict::AlreadyUsed(u) => assert!(u.this_device && u.gate == "North"),
            other => panic!("expected already used, got {other:?}"),
        }
        assert_eq!(second.persist.gates, None, "the gate table was restored");
        assert_eq!(second.seq, first.seq + 1);
        assert!(second.record.hlc > first.record.hlc);
    }

    #[test]
    fn restore_from_chunks_and_pending_gives_the_same_state() {
        let mut storage = Storage::default();
        let mut d = new_device(&mut storage);
        d.set_fold_every(3);
        for i in 0..5u8 {
            let qr = ticket(10 + i, EntryPolicy::SingleEntry);
            let o = d.scan(entry(&qr), if i % 2 == 0 { "North" } else { "South" }, NOW_MS + u64::from(i)).unwrap();
            storage.persist_scan(&o);
            if d.should_fold() {
                storage.persist_fold(d.fold(1_750_000_000).unwrap());
            }
        }
        // A crash between the fold's two writes leaves already-folded pending entries behind.
        storage.saved.pending.push((1, vec![0u8; 3]));
        let restored = storage.restore();
        assert_eq!(restored.pending().len(), 2);
        assert_eq!(restored.pending(), d.pending());
        assert_eq!(restored.record_count(), d.record_count());
        assert_eq!(restored.gates(), d.gates());
        assert_eq!(restored.doc().record_set().unwrap(), d.doc().record_set().unwrap());
        assert_eq!(restored.report().unwrap(), d.report().unwrap());
        assert_eq!(restored.report().unwrap().admitted, 5);
        let mut restored = restored;
        let o = restored.scan(entry(&ticket(10, EntryPolicy::SingleEntry)), "South", NOW_MS).unwrap();
        assert!(matches!(o.verdict, Verdict::AlreadyUsed(ref u) if u.gate == "North"));
        assert!(o.record.hlc > d.pending().last().unwrap().record.hlc, "clock restored past every record");
    }

    #[test]
    fn abandoned_scan_is_forgotten() {
        let mut storage = Storage::default();
        let mut d = new_device(&mut storage);
        let qr = ticket(3, EntryPolicy::SingleEntry);
        let o = d.scan(entry(&qr), "North", NOW_MS).unwrap();
        assert!(d.abandon_scan(o.seq).unwrap());
        assert!(!d.abandon_scan(o.seq).unwrap());
        let again = d.scan(entry(&qr), "North", NOW_MS).unwrap();
        assert!(again.verdict.is_admit());
        assert_eq!(again.seq, o.seq);
    }

    #[test]
    fn edge_verdict_is_mirrored_and_blocks_a_later_offline_scan() {
        let mut storage = Storage::default();
        let mut d = new_device(&mut storage);
        let qr = ticket(4, EntryPolicy::SingleEntry);
        let body = format!(
            r#"{{"verdict":"admit","holder":null,"ticket_type":2,"addons":[],"policy":"single_entry","gate":"North",
            "override_reason":null,"overridden":null,"summary":"ADMIT","decided_by":"edge","hlc":{}}}"#,
            (NOW_MS - 3) << 16
        );
        let edge = EdgeVerdict::from_reply(200, body.as_bytes()).unwrap();
        let o = d.record_edge_verdict(&qr, ScanKind::Entry, "North", &edge, NOW_MS).unwrap();
        assert_eq!(o.path, DecisionPath::Edge);
        assert!(o.record.decided_by_edge && o.record.outcome == Outcome::Admitted);
        assert_eq!(o.record.hlc, Hlc((NOW_MS - 3) << 16), "the mirror carries the edge's clock value");
        storage.persist_scan(&o);
        let mut restored = storage.restore();
        let later = restored.scan(entry(&qr), "South", NOW_MS + 1).unwrap();
        assert!(matches!(later.verdict, Verdict::AlreadyUsed(_)), "{:?}", later.verdict);
        assert!(later.record.hlc > o.record.hlc);
        assert_eq!(restored.report().unwrap().decided_by_edge, 1);

        // The door policy: what this log already stops, or refuses, is answered here without the edge.
        let request = |text: &str, kind| super::super::door::ScanRequest {
            text: text.to_owned(),
            kind,
            gate: "South".into(),
            action: super::super::door::DoorAction::Scan,
        };
        use super::super::door::ScanPlan;
        match restored.plan(request(&qr, ScanKind::Entry), true, NOW_MS + 2).unwrap() {
            ScanPlan::Decided(o) => {
                assert!(matches!(o.verdict, Verdict::AlreadyUsed(_)));
                assert_eq!(o.edge_note.as_deref(), Some("not asked: this device's log already shows the ticket used"));
            }
            other => panic!("asked the edge about a ticket this device knows is used: {other:?}"),
        }
        assert!(matches!(restored.plan(request(&qr, ScanKind::Exit), true, NOW_MS + 3), Ok(ScanPlan::AskEdge(_))));
        let fresh = ticket(99, EntryPolicy::SingleEntry);
        assert!(matches!(restored.plan(request(&fresh, ScanKind::Entry), true, NOW_MS + 4), Ok(ScanPlan::AskEdge(_))));
        match restored.plan(request("not a ticket", ScanKind::Entry), true, NOW_MS + 5).unwrap() {
            ScanPlan::Decided(o) => assert!(matches!(o.verdict, Verdict::Refused { .. })),
            other => panic!("asked the edge about a non-ticket: {other:?}"),
        }

        // An edge that admits a non-ticket, or answers an exit with an admission, is not believed.
        let err = d.record_edge_verdict("hello", ScanKind::Entry, "North", &edge, NOW_MS).unwrap_err();
        assert!(matches!(err, crate::Error::EdgeReply(EdgeReplyKind::Mismatch(_))));
        let err = d.record_edge_verdict(&qr, ScanKind::Exit, "North", &edge, NOW_MS).unwrap_err();
        assert!(matches!(err, crate::Error::EdgeReply(EdgeReplyKind::Mismatch(_))));
    }

    #[test]
    fn sync_between_two_devices_rebuilds_the_index() {
        let mut storage = Storage::default();
        let mut a = new_device(&mut storage);
        let mut b = Device::new(DeviceId(0x5678), "door 2").unwrap();
        b.set_keyring(&keyring_json()).unwrap();
        b.set_event(EVENT);
        let qr = ticket(5, EntryPolicy::SingleEntry);
        assert!(a.scan(entry(&qr), "North", NOW_MS).unwrap().verdict.is_admit());
        a.fold(1).unwrap();
        let (mut sa, mut sb) = (automerge::sync::State::new(), automerge::sync::State::new());
        let mut chunks = 0;
        for _ in 0..10 {
            let ma = a.generate_sync_message(&mut sa);
            if let Some(m) = &ma {
                if !b.receive_sync_message(&mut sb, m, NOW_MS).unwrap().chunk.is_empty() {
                    chunks += 1;
                }
            }
            let mb = b.generate_sync_message(&mut sb);
            if let Some(m) = &mb {
                a.receive_sync_message(&mut sa, m, NOW_MS).unwrap();
            }
            if ma.is_none() && mb.is_none() {
                break;
            }
        }
        assert!(chunks > 0);
        let o = b.scan(entry(&qr), "East", NOW_MS + 10).unwrap();
        assert!(matches!(o.verdict, Verdict::AlreadyUsed(ref u) if !u.this_device && u.gate == "North"));
    }
}
