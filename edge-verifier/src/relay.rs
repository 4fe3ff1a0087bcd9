//! An event's redemption log at the edge: the automerge [`RedemptionDoc`] that devices sync with over
//! `/v1/sync` (the same protocol as the issuer's sync server, through scanner-core's [`serve_sync`]), into
//! which the edge writes its own admissions as the records of one device, [`edge_device`].
//!
//! Records flow both ways between this log and the redemption shards (the Durable Object shell moves
//! them; this module decides what moves):
//! - shard → log: every scan a shard let through is appended here as an edge record, under the gate name
//!   the scanner gave. A shard re-sends its outbox until the log acknowledges it, so appending is
//!   idempotent (a record already here is skipped).
//! - log → shards: records that devices synced in (offline admissions) are handed to the shard that owns
//!   their ticket, so a ticket admitted offline is refused online as already used. Per device, the log
//!   remembers how many of its records were relayed (a device's records only ever grow, in order).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use scanner_core::error::LogKind;
use scanner_core::redemption::document::{PeerState, ServerReply};
use scanner_core::redemption::{
    serve_sync, Accept, Batch, DeviceId, EventReport, Hlc, Outcome, RedemptionDoc, SyncChannel, TicketRef,
};

use crate::error::{RequestKind, Result};
use crate::history::StoredScan;
use crate::shard::{edge_device, shard_of};

/// The edge's device name in the log and in reports.
pub const EDGE_DEVICE_NAME: &str = "edge";

/// How long the log buffers forwarded admissions before folding them into the automerge document. Each
/// fold costs a pass over the whole document (scanner-core validates every change against it) and the
/// log is one object per event, so it folds once per interval, not once per shard forward. A sync or a
/// report folds first, so devices always receive every admission the log has acknowledged.
pub const FOLD_DELAY_MS: i64 = 1_000;
/// Largest stored piece of the log (SQLite rows in a Durable Object are limited to 2 MB).
pub const LOG_PART_BYTES: usize = 512 * 1024;
/// Stored pieces after which the log is rewritten as one compressed save (loading stays fast).
pub const COMPACT_AFTER_PARTS: i64 = 256;

/// What to write to storage after the log changed ([`LogRelay::unsaved_write`]), in pieces of at most
/// [`LOG_PART_BYTES`] ([`log_parts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogWrite {
    /// The changes since the last write, stored after the pieces already stored.
    Append(Vec<u8>),
    /// The whole log as one compressed save, replacing every stored piece (compaction).
    Replace(Vec<u8>),
}

/// The pieces (storage rows) of a write.
pub fn log_parts(bytes: &[u8]) -> std::slice::Chunks<'_, u8> {
    bytes.chunks(LOG_PART_BYTES)
}

/// One sync session's peer, as the Worker names it to the log: the hash of the token it authenticated
/// with (64 hex digits) and the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPeer {
    token_hash: [u8; 32],
    hex: String,
    channel: SyncChannel,
}

impl SyncPeer {
    pub fn parse(token_hash_hex: &str, channel: SyncChannel) -> Option<Self> {
        let token_hash = scanner_core::token::parse_token_hash(token_hash_hex)?;
        Some(Self { token_hash, hex: token_hash_hex.to_owned(), channel })
    }

    /// The key of this peer's automerge sync state: one per token and channel. Every device needs its
    /// own token, or two devices would share one state and the log would think one has what only the
    /// other has.
    pub fn state_key(&self) -> String {
        format!("{}.{}", self.hex, self.channel.as_str())
    }

    /// What the log takes from this peer: from a device (push, pull) only what it wrote under the id
    /// bound to its token; from a relay anything but the edge's own records.
    // Elided on purpose: scanner-core's `Accept` may carry a lifetime (a relay held to a device list);
    // this signature compiles with or without one, and borrows nothing from `self` either way.
    #[allow(unknown_lints, mismatched_lifetime_syntaxes)]
    pub fn accept(&self, now_ms: u64) -> Accept {
        match self.channel {
            SyncChannel::Relay => Accept::relay(now_ms),
            SyncChannel::Push | SyncChannel::Pull => {
                Accept::device(scanner_core::token::device_id_for_token_hash(&self.token_hash), now_ms)
            }
        }
    }
}

/// Shard → log: scans the shard let through, to append as edge records. Internal (Durable Object to
/// Durable Object) only.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppendRequest {
    pub event: u32,
    pub scans: Vec<StoredScan>,
}

/// Log → shard: records devices synced in, for the shard's per-ticket history. Internal only.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RelayRequest {
    pub scans: Vec<StoredScan>,
}

/// Records not yet relayed to the shards, and how far each device's cursor moves once they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Scans by owning shard.
    pub by_shard: BTreeMap<u16, Vec<StoredScan>>,
    /// Each device's record count once this backlog is delivered.
    pub cursors: BTreeMap<DeviceId, usize>,
}

impl Backlog {
    pub fn is_empty(&self) -> bool {
        self.cursors.is_empty()
    }
}

/// One event's log at the edge.
#[derive(Debug, Clone)]
pub struct LogRelay {
    event: u32,
    edge: DeviceId,
    doc: RedemptionDoc,
    /// The edge device's gate table, as in the log (records name a gate by index into it).
    edge_gates: Vec<String>,
    /// Every edge record already in the log, by (ticket, clock): unique per record because a shard gives
    /// each record of a ticket a strictly later clock.
    edge_seen: HashSet<(TicketRef, Hlc)>,
}

impl LogRelay {
    /// An empty log for `event`.
    pub fn new(event: u32) -> Self {
        let edge = edge_device(event);
        Self {
            event,
            edge,
            doc: RedemptionDoc::new_for_device(edge),
            edge_gates: Vec::new(),
            edge_seen: HashSet::new(),
        }
    }

    /// The log from its stored bytes (a full save and incremental chunks, concatenated; empty = new).
    pub fn load(event: u32, saved: &[u8]) -> Result<Self> {
        if saved.is_empty() {
            return Ok(Self::new(event));
        }
        let edge = edge_device(event);
        let doc = RedemptionDoc::load_for_device(saved, edge)?;
        let mut relay = Self { event, edge, doc, edge_gates: Vec::new(), edge_seen: HashSet::new() };
        if let Some(log) = relay.doc.device_log(edge)? {
            relay.edge_seen = log.records.iter().map(|r| (r.ticket, r.hlc)).collect();
            relay.edge_gates = log.gates;
        }
        Ok(relay)
    }

    pub fn event(&self) -> u32 {
        self.event
    }

    pub fn doc(&self) -> &RedemptionDoc {
        &self.doc
    }

    /// What changed since the last call, to append to storage (empty if nothing did).
    pub fn take_unsaved(&mut self) -> Vec<u8> {
        self.doc.take_unsaved()
    }

    /// The whole log as one compressed save (to compact storage); marks everything saved.
    pub fn save_all(&mut self) -> Vec<u8> {
        let bytes = self.doc.save();
        self.doc.mark_saved();
        bytes
    }

    /// What to store of the changes since the last write, given how many pieces are stored already:
    /// nothing, the changes, or (once [`COMPACT_AFTER_PARTS`] pieces are stored) the whole log compacted.
    pub fn unsaved_write(&mut self, stored_parts: i64) -> Option<LogWrite> {
        let chunk = self.take_unsaved();
        if chunk.is_empty() {
            return None;
        }
        Some(if stored_parts >= COMPACT_AFTER_PARTS {
            LogWrite::Replace(self.save_all())
        } else {
            LogWrite::Append(chunk)
        })
    }

    /// Appends the edge's admissions (from a shard's outbox) as one change. Scans already in the log are
    /// skipped. Returns how many were added.
    pub fn append_edge(&mut self, scans: &[StoredScan], now_secs: i64) -> Result<usize> {
        let mut gates = self.edge_gates.clone();
        let mut records = Vec::with_capacity(scans.len());
        let mut keys = Vec::with_capacity(scans.len());
        for scan in scans {
            let mut record = scan.scan_record()?;
            let key = (record.ticket, record.hlc);
            if self.edge_seen.contains(&key) || keys.contains(&key) {
                continue;
            }
            let gate = match gates.iter().position(|g| *g == scan.gate) {
                Some(at) => at,
                None => {
                    gates.push(scan.gate.clone());
                    gates.len() - 1
                }
            };
            // More gates than a record can index: scanner-core's own refusal for a device's log.
            record.gate = u16::try_from(gate).map_err(|_| scanner_core::Error::from(LogKind::TooManyGates))?;
            records.push(record);
            keys.push(key);
        }
        if records.is_empty() {
            return Ok(0);
        }
        let batch =
            Batch { device_name: EDGE_DEVICE_NAME, gates: &gates, records: &records, overrides: &[], time: now_secs };
        self.doc.append_batch(self.edge, batch)?;
        self.edge_gates = gates;
        self.edge_seen.extend(keys);
        Ok(records.len())
    }

    /// One sync exchange (`peer` is the log's sync state for that peer and channel), through scanner-core's
    /// sync server: from a device only its own records are taken (so nothing under the edge's own actor,
    /// whose next sequence number a forgery would take), from a relay anything but the edge's own
    /// records. A refused message changes neither the log nor `peer`, and is the peer's mistake
    /// ([`RequestKind::refused`]: too large, or invalid in scanner-core's words).
    pub fn serve(
        &mut self,
        peer: &mut PeerState,
        message: &[u8],
        accept: Accept,
        channel: SyncChannel,
    ) -> Result<ServerReply> {
        Ok(serve_sync(&mut self.doc, peer, message, accept, channel).map_err(RequestKind::refused)?)
    }

    /// The organizer's report over everything the edge's log holds.
    pub fn report(&self) -> Result<EventReport> {
        Ok(EventReport::from_logs(&self.doc.device_logs()?))
    }

    /// The device records beyond `relayed` (records already relayed, per device) that the shards must
    /// know: those that let a ticket through, by owning shard. The edge's own records, and devices'
    /// mirrors of them, are never relayed (the shards decided them). Undos are relayed like passes.
    pub fn backlog(&self, relayed: &BTreeMap<DeviceId, usize>) -> Result<Backlog> {
        let mut backlog = Backlog::default();
        for device in self.doc.devices().filter(|d| *d != self.edge).collect::<Vec<_>>() {
            let done = relayed.get(&device).copied().unwrap_or(0);
            let total = self.doc.device_record_count(device);
            if total <= done {
                continue;
            }
            let Some(log) = self.doc.device_log(device)? else { continue };
            for record in log.records.iter().skip(done) {
                // A device's mirror of a verdict the edge gave it adds nothing the shard does not know
                // (the shard decided it), and its clock is the device's: left out, it cannot reorder the
                // shard's history of a re-entry ticket.
                // A supervisor's undo travels too: the shard must let the ticket in again.
                let counts = record.outcome.passed() || record.outcome == Outcome::Undone;
                if record.ticket.is_none() || !counts || record.decided_by_edge {
                    continue;
                }
                let scan = StoredScan::new(device, &log.name, &log.gate_name(record.gate), record, false);
                backlog.by_shard.entry(shard_of(&record.ticket)).or_default().push(scan);
            }
            backlog.cursors.insert(device, log.records.len());
        }
        Ok(backlog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use scanner_core::error::{Error as CoreError, SyncKind};
    use scanner_core::fixtures;
    use scanner_core::redemption::document::encode_peer_state;
    use scanner_core::redemption::{Outcome, ScanRecord};

    const EVENT: u32 = 4242;

    /// A device's admission of ticket `n` at `secs`, at its gate number `gate`.
    fn record(n: u64, secs: u64, gate: u16) -> ScanRecord {
        ScanRecord { gate, ..fixtures::admit(n, secs) }
    }

    fn edge_scan(n: u64, secs: u64, gate: &str) -> StoredScan {
        StoredScan::new(DeviceId(7), "phone", gate, &record(n, secs, 0), true)
    }

    const NOW_MS: u64 = 1_750_000_000_000;

    /// A device's log with the given records, and a full sync of it into `relay` (push, then pull).
    fn sync_device(relay: &mut LogRelay, device: &mut RedemptionDoc, id: DeviceId) -> usize {
        let accept = Accept::device(id, NOW_MS);
        let (mut device_state, mut relay_state) = (PeerState::new(), PeerState::new());
        let mut new_records = 0;
        for _ in 0..10 {
            let Some(message) = device.generate_push_message(&mut device_state).unwrap() else { break };
            let reply = relay.serve(&mut relay_state, &message, accept, SyncChannel::Push).unwrap();
            new_records += reply.received.new_records;
            if let Some(reply) = reply.reply {
                device.receive_push_reply(&mut device_state, &reply).unwrap();
            }
        }
        let (mut device_state, mut relay_state) = (PeerState::new(), PeerState::new());
        for _ in 0..10 {
            let Some(message) = device.generate_sync_message(&mut device_state) else { break };
            let reply = relay.serve(&mut relay_state, &message, accept, SyncChannel::Pull).unwrap();
            if let Some(reply) = reply.reply {
                device.receive_sync_message(&mut device_state, &reply, Accept::relay(NOW_MS)).unwrap();
            }
        }
        new_records
    }

    #[test]
    fn the_log_is_stored_in_pieces_and_compacted_after_enough_of_them() {
        let mut relay = LogRelay::new(EVENT);
        assert_eq!(relay.unsaved_write(0), None, "nothing changed, nothing to write");
        relay.append_edge(&[edge_scan(1, 10, "North")], 1).unwrap();
        let Some(LogWrite::Append(first)) = relay.unsaved_write(0) else { panic!("an append") };
        relay.append_edge(&[edge_scan(2, 11, "South")], 2).unwrap();
        let Some(LogWrite::Append(second)) = relay.unsaved_write(COMPACT_AFTER_PARTS - 1) else { panic!("an append") };
        // The stored pieces, concatenated, load back to the same log.
        let stored: Vec<u8> = log_parts(&first).chain(log_parts(&second)).flatten().copied().collect();
        assert_eq!(LogRelay::load(EVENT, &stored).unwrap().doc().record_count(), 2);
        // Enough pieces stored: the next write replaces them all with one save.
        relay.append_edge(&[edge_scan(3, 12, "East")], 3).unwrap();
        let Some(LogWrite::Replace(full)) = relay.unsaved_write(COMPACT_AFTER_PARTS) else { panic!("a compaction") };
        assert_eq!(LogRelay::load(EVENT, &full).unwrap().doc().record_count(), 3);
        assert_eq!(relay.unsaved_write(0), None, "the compaction saved everything");
        let big = vec![0u8; 2 * LOG_PART_BYTES + 1];
        assert_eq!(log_parts(&big).map(<[u8]>::len).collect::<Vec<_>>(), [LOG_PART_BYTES, LOG_PART_BYTES, 1]);
    }

    #[test]
    fn sync_peers_are_keyed_by_token_and_channel_and_devices_write_only_as_themselves() {
        let hex = scanner_core::token::token_hash_hex("door-1");
        let push = SyncPeer::parse(&hex, SyncChannel::Push).unwrap();
        let pull = SyncPeer::parse(&hex, SyncChannel::Pull).unwrap();
        assert_eq!(push.state_key(), format!("{hex}.push"));
        assert_ne!(push.state_key(), pull.state_key());
        let own = scanner_core::token::device_id_for_token("door-1");
        assert_eq!(push.accept(5), Accept::device(own, 5));
        assert_eq!(pull.accept(5), Accept::device(own, 5));
        assert_eq!(SyncPeer::parse(&hex, SyncChannel::Relay).unwrap().accept(5), Accept::relay(5));
        assert_eq!(SyncPeer::parse("abc", SyncChannel::Push), None);
    }

    #[test]
    fn edge_appends_are_idempotent_and_name_their_gates() {
        let mut relay = LogRelay::new(EVENT);
        let scans = [edge_scan(1, 10, "North"), edge_scan(2, 11, "South"), edge_scan(3, 12, "North")];
        assert_eq!(relay.append_edge(&scans, 1).unwrap(), 3);
        // A shard that lost the acknowledgement sends the same outbox again.
        assert_eq!(relay.append_edge(&scans, 2).unwrap(), 0);
        let log = relay.doc().device_log(edge_device(EVENT)).unwrap().unwrap();
        assert_eq!(log.name, EDGE_DEVICE_NAME);
        assert_eq!(log.records.len(), 3);
        let gates: Vec<_> = log.records.iter().map(|r| log.gate_name(r.gate)).collect();
        assert_eq!(gates, ["North", "South", "North"]);

        // Reloaded from storage (full save + a later chunk), it still knows what it has.
        let mut saved = relay.save_all();
        relay.append_edge(&[edge_scan(4, 13, "East")], 3).unwrap();
        saved.extend(relay.take_unsaved());
        let mut reloaded = LogRelay::load(EVENT, &saved).unwrap();
        assert_eq!(reloaded.append_edge(&scans, 4).unwrap(), 0);
        assert_eq!(reloaded.append_edge(&[edge_scan(5, 14, "East")], 4).unwrap(), 1);
        let log = reloaded.doc().device_log(edge_device(EVENT)).unwrap().unwrap();
        assert_eq!(log.gates, ["North", "South", "East"]);
        assert_eq!(log.records.len(), 5);
    }

    #[test]
    fn synced_device_records_are_relayed_once_to_their_shards() {
        let mut relay = LogRelay::new(EVENT);
        relay.append_edge(&[edge_scan(9, 5, "North")], 1).unwrap();
        let phone = DeviceId(0xabc);
        let mut device = RedemptionDoc::new_for_device(phone);
        let mut refused = record(2, 21, 0);
        refused.outcome = Outcome::AlreadyUsed;
        let mut mirror = record(4, 23, 0);
        mirror.decided_by_edge = true;
        let records = [record(1, 20, 0), refused, record(3, 22, 1), mirror];
        let gates = ["East".to_owned(), "West".to_owned()];
        let batch = Batch { device_name: "Phone", gates: &gates, records: &records, overrides: &[], time: 0 };
        device.append_batch(phone, batch).unwrap();
        assert_eq!(sync_device(&mut relay, &mut device, phone), 4);
        // The device received the edge's record in the same exchange.
        assert_eq!(device.device_record_count(edge_device(EVENT)), 1);

        let backlog = relay.backlog(&BTreeMap::new()).unwrap();
        assert_eq!(backlog.cursors, BTreeMap::from([(phone, 4)]));
        let relayed: Vec<_> = backlog.by_shard.values().flatten().collect();
        // Only scans that let a ticket through, named by device and gate; not the mirror of an edge verdict.
        assert_eq!(relayed.len(), 2);
        for scan in &relayed {
            let r = scan.scan_record().unwrap();
            assert_eq!(backlog.by_shard[&shard_of(&r.ticket)].iter().filter(|s| s == scan).count(), 1);
            assert_eq!(scan.device_id().unwrap(), phone);
            assert_eq!(scan.device_name, "Phone");
            assert!(!scan.edge);
        }
        let gate_names: BTreeMap<_, _> =
            relayed.iter().map(|s| (s.scan_record().unwrap().ticket, s.gate.clone())).collect();
        assert_eq!(gate_names[&fixtures::ticket_ref(1)], "East");
        assert_eq!(gate_names[&fixtures::ticket_ref(3)], "West");
        assert!(relay.backlog(&backlog.cursors).unwrap().is_empty());
    }

    #[test]
    fn forged_edge_changes_and_garbage_are_refused_and_change_nothing() {
        // Before the edge has written anything, a forged edge map would pass the log's own checks.
        let mut relay = LogRelay::new(EVENT);
        let heads = relay.doc().heads();

        // A device token holder that writes as the edge's actor: its changes are not the device's own.
        let edge = edge_device(EVENT);
        let mut forger = RedemptionDoc::new_for_device(edge);
        let records = [record(2, 2, 0)];
        let gates = ["Fake".to_owned()];
        let batch = Batch { device_name: "edge", gates: &gates, records: &records, overrides: &[], time: 0 };
        forger.append_batch(edge, batch).unwrap();
        let accept = Accept::device(DeviceId(0xbad), NOW_MS);
        let (mut forger_state, mut relay_state) = (PeerState::new(), PeerState::new());
        for _ in 0..10 {
            let Some(message) = forger.generate_sync_message(&mut forger_state) else { break };
            let reply = relay.serve(&mut relay_state, &message, accept, SyncChannel::Push).unwrap();
            match reply.reply {
                Some(reply) => forger.receive_sync_message(&mut forger_state, &reply, Accept::relay(NOW_MS)).unwrap(),
                None => break,
            };
        }
        assert_eq!(relay.doc().heads(), heads);
        assert_eq!(relay.doc().record_count(), 0);
        // A relay peer may not write as the edge either.
        let (mut forger_state, mut relay_state) = (PeerState::new(), PeerState::new());
        let message = forger.generate_sync_message(&mut forger_state).unwrap();
        let hello = relay.serve(&mut relay_state, &message, Accept::relay(NOW_MS), SyncChannel::Push).unwrap();
        forger.receive_sync_message(&mut forger_state, &hello.reply.unwrap(), Accept::relay(NOW_MS)).unwrap();
        let message = forger.generate_sync_message(&mut forger_state).unwrap();
        let err = relay.serve(&mut relay_state, &message, Accept::relay(NOW_MS), SyncChannel::Push).unwrap_err();
        assert!(
            matches!(err, Error::Request(RequestKind::Refused(CoreError::Sync(SyncKind::ForgedOwnActor(_))))),
            "{err}"
        );
        assert_eq!((err.status(), err.code()), (400, "bad_request"), "the peer's mistake");
        assert_eq!(relay.doc().record_count(), 0);
        // The edge's own next change still goes in.
        assert_eq!(relay.append_edge(&[edge_scan(1, 1, "North")], 1).unwrap(), 1);
        let heads = relay.doc().heads();

        let mut state = PeerState::new();
        let before_state = encode_peer_state(&state);
        let garbage = relay.serve(&mut state, b"\x42garbage", Accept::relay(NOW_MS), SyncChannel::Push);
        assert!(matches!(garbage, Err(Error::Request(RequestKind::Refused(CoreError::Sync(_))))));
        assert_eq!(encode_peer_state(&state), before_state);
        assert_eq!(relay.doc().heads(), heads);
    }
}
