//! Which Durable Object owns a ticket's redemption state, what a shard keeps and when it forwards its
//! admissions to the log, and the edge's identities in the log.
//!
//! Shards are chosen from the ticket's [`TicketRef`] (scanner-core's one-way hash of the ticket id), not
//! the id itself: the log relay only ever sees references, and it must route offline scans it receives by
//! sync to the same shard that decides edge redemptions of that ticket.
//!
//! A shard's storage: `t:<ticket ref>` → the ticket's [`TicketHistory`](crate::history::TicketHistory)
//! (JSON, [`history_key`]); `o:<event>:<record>` → an admission not yet acknowledged by the event's log
//! (the outbox, JSON [`StoredScan`], [`outbox_key`]), drained in batches of [`OUTBOX_BATCH`] by an alarm
//! [`forward_delay_ms`] after the first admission ([`Outbox`]).

use std::collections::BTreeMap;

use scanner_core::redemption::{DeviceId, TicketRef};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::history::StoredScan;

/// Redemption shards per event. One hot event is spread over this many Durable Objects (each handles
/// hundreds of redemptions per second). NEVER change it for an event already being scanned: tickets would
/// move to a shard that has not seen their earlier admission.
pub const SHARDS_PER_EVENT: u16 = 32;

/// Domain separation for the edge's device ids in the redemption log.
pub const DOMAIN_EDGE_DEVICE: &[u8] = b"offline-tickets/v1/edge-device\0";

/// The shard (0..SHARDS_PER_EVENT) that owns a ticket.
pub fn shard_of(ticket: &TicketRef) -> u16 {
    u16::from_be_bytes([ticket.0[0], ticket.0[1]]) % SHARDS_PER_EVENT
}

/// The Durable Object name of a redemption shard.
pub fn shard_name(event: u32, shard: u16) -> String {
    format!("redeem:{event}:{shard}")
}

/// The Durable Object name of an event's redemption log relay (the `/v1/sync` server).
pub fn log_name(event: u32) -> String {
    format!("log:{event}")
}

/// The device id under which the edge's redemptions for `event` appear in the redemption log. Derived,
/// not random, so every deployment and every restart of the relay writes as the same automerge actor.
pub fn edge_device(event: u32) -> DeviceId {
    let digest = Sha256::new().chain_update(DOMAIN_EDGE_DEVICE).chain_update(event.to_be_bytes()).finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    DeviceId(u64::from_be_bytes(id))
}

/// Delay before a failed outbox drain (shard) or relay to the shards (log) is tried again. Alarms the
/// runtime retries itself give up after a few attempts; these are re-armed by hand, so records are never
/// stranded.
pub const RETRY_MS: i64 = 5_000;

/// Outbox records sent to the log object per request.
pub const OUTBOX_BATCH: usize = 512;

/// How long a shard collects admissions before forwarding them to the log (variable
/// `LOG_FORWARD_DELAY_MS` overrides it: [`forward_delay_ms`]). No admission decision waits for the log:
/// the shards decide from their own state, and devices sync every few tens of seconds at best, so a few
/// seconds cost nothing. Much shorter is costly: every forward is one more Durable Object call on the
/// shard and on the log (measured under workerd: a 500 ms delay halved redemption throughput at
/// concurrency 16; 5 s did not).
pub const OUTBOX_DELAY_MS: i64 = 5_000;

/// The forwarding delay from the variable `LOG_FORWARD_DELAY_MS` (milliseconds), or the default.
pub fn forward_delay_ms(var: Option<&str>) -> i64 {
    var.and_then(|v| v.trim().parse().ok()).unwrap_or(OUTBOX_DELAY_MS)
}

/// The storage key of a ticket's history in its shard.
pub fn history_key(ticket: &TicketRef) -> String {
    format!("t:{}", ticket.to_hex())
}

/// The prefix of every outbox key.
pub const OUTBOX_PREFIX: &str = "o:";

/// The storage key of an outbox entry: one per record, so an admission is queued once.
pub fn outbox_key(event: u32, scan: &StoredScan) -> String {
    format!("{OUTBOX_PREFIX}{event}:{}", scan.record)
}

/// The event of an outbox key.
pub fn outbox_event(key: &str) -> Option<u32> {
    key.strip_prefix(OUTBOX_PREFIX)?.split(':').next()?.parse().ok()
}

/// One batch read from a shard's outbox, ready to forward: the scans by event, and the keys to delete
/// once the log has acknowledged them. Entries that cannot be read are neither sent nor deleted (kept
/// for inspection, and not looped on).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbox {
    pub by_event: BTreeMap<u32, Vec<StoredScan>>,
    pub keys: Vec<String>,
    pub unreadable: Vec<String>,
}

impl Outbox {
    /// Sorts listed `(key, value)` storage entries.
    pub fn from_entries(entries: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut outbox = Self::default();
        for (key, value) in entries {
            match (outbox_event(&key), serde_json::from_str::<StoredScan>(&value)) {
                (Some(event), Ok(scan)) => {
                    outbox.by_event.entry(event).or_default().push(scan);
                    outbox.keys.push(key);
                }
                _ => outbox.unreadable.push(key),
            }
        }
        outbox
    }

    /// Nothing to forward: the drain is done.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Scans relayed from the log, by ticket (each ticket's history is read and written once).
pub fn by_ticket(scans: Vec<StoredScan>) -> Result<BTreeMap<TicketRef, Vec<StoredScan>>> {
    let mut by_ticket: BTreeMap<TicketRef, Vec<StoredScan>> = BTreeMap::new();
    for scan in scans {
        by_ticket.entry(scan.scan_record()?.ticket).or_default().push(scan);
    }
    Ok(by_ticket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanner_core::redemption::{Hlc, Outcome, ScanKind, ScanRecord};
    use scanner_core::TicketId;

    fn scan(ticket: u8, hlc: u64) -> StoredScan {
        let record = ScanRecord {
            ticket: TicketRef([ticket; 12]),
            hlc: Hlc(hlc),
            wall_time: 1_750_000_000,
            gate: 0,
            kind: ScanKind::Entry,
            reentry: false,
            outcome: Outcome::Admitted,
            ticket_type: 0,
            decided_by_edge: true,
            addon: None,
        };
        StoredScan::new(DeviceId(7), "phone", "North", &record, true)
    }

    #[test]
    fn outbox_keys_name_their_event_and_record() {
        let s = scan(1, 10);
        let key = outbox_key(42, &s);
        assert_eq!(key, format!("o:42:{}", s.record));
        assert_eq!(outbox_event(&key), Some(42));
        assert_eq!(outbox_event("t:0102"), None);
        assert_eq!(outbox_event("o:x:00"), None);
        assert_eq!(history_key(&TicketRef([0xab; 12])), format!("t:{}", "ab".repeat(12)));
        assert!(!history_key(&TicketRef([0; 12])).starts_with(OUTBOX_PREFIX), "histories are not listed as outbox");
    }

    #[test]
    fn an_outbox_batch_is_grouped_by_event_and_unreadable_entries_are_kept() {
        let (a, b, c) = (scan(1, 10), scan(2, 11), scan(3, 12));
        let entries = [
            (outbox_key(1, &a), serde_json::to_string(&a).unwrap()),
            (outbox_key(2, &b), serde_json::to_string(&b).unwrap()),
            ("o:1:garbage".to_owned(), "{".to_owned()),
            ("o:bad".to_owned(), serde_json::to_string(&c).unwrap()),
            (outbox_key(1, &c), serde_json::to_string(&c).unwrap()),
        ];
        let outbox = Outbox::from_entries(entries);
        assert_eq!(outbox.by_event, BTreeMap::from([(1, vec![a.clone(), c.clone()]), (2, vec![b.clone()])]));
        assert_eq!(outbox.keys, [outbox_key(1, &a), outbox_key(2, &b), outbox_key(1, &c)]);
        assert_eq!(outbox.unreadable, ["o:1:garbage", "o:bad"]);
        // Only unreadable entries left: the drain stops instead of looping on them.
        assert!(Outbox::from_entries([("o:1:x".to_owned(), "nope".to_owned())]).is_empty());
    }

    #[test]
    fn relayed_scans_are_grouped_by_ticket_and_the_delay_is_configurable() {
        let grouped = by_ticket(vec![scan(1, 10), scan(2, 11), scan(1, 12)]).unwrap();
        assert_eq!(grouped[&TicketRef([1; 12])].len(), 2);
        assert_eq!(grouped[&TicketRef([2; 12])].len(), 1);
        let mut bad = scan(1, 1);
        bad.record = "zz".into();
        assert!(matches!(
            by_ticket(vec![bad]),
            Err(crate::error::Error::StoredScan(crate::error::StoredScanKind::NotHex))
        ));
        assert_eq!(forward_delay_ms(None), OUTBOX_DELAY_MS);
        assert_eq!(forward_delay_ms(Some(" 250 ")), 250);
        assert_eq!(forward_delay_ms(Some("soon")), OUTBOX_DELAY_MS);
    }

    #[test]
    fn shards_are_stable_and_spread() {
        let mut seen = [0u32; SHARDS_PER_EVENT as usize];
        for i in 0..3200u32 {
            let mut id = [0u8; 12];
            id[..4].copy_from_slice(&i.to_be_bytes());
            let s = shard_of(&TicketRef::of(&TicketId(id)));
            seen[usize::from(s)] += 1;
        }
        // Every shard gets a share, none gets a multiple of its fair share (100).
        assert!(seen.iter().all(|&n| n > 40 && n < 200), "{seen:?}");
        assert_eq!(shard_name(42, 7), "redeem:42:7");
        assert_eq!(log_name(42), "log:42");
    }

    #[test]
    fn edge_device_is_per_event_and_deterministic() {
        assert_eq!(edge_device(1), edge_device(1));
        assert_ne!(edge_device(1), edge_device(2));
    }
}
