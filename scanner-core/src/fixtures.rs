//! Shared test fixtures for every crate's tests (feature `test-support`): a seeded issuer and its keyring,
//! tickets and their QR texts, scan records, device logs and sync between documents. One set, so every
//! test builds tickets the same way: [`TicketBuilder`] is the one ticket builder (the test vectors, the
//! edge's fixture file and the benches use it too); [`ticket`] and [`plain_ticket`] are its shorthands.

// Fixtures panic on what cannot happen with their fixed inputs; they never see outside input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use automerge::sync;

use crate::redemption::document::{Accept, Batch};
use crate::redemption::{DeviceId, Hlc, Outcome, RedemptionDoc, ScanKind, ScanRecord, TicketRef};
use crate::{EntryPolicy, IssuerKey, KeyId, Keyring, SignedTicket, Ticket, TicketId};

pub const EVENT: u32 = 77;
/// 2026-06-01 18:00:00 UTC.
pub const NOW: u64 = 1_780_336_800;

/// What a receiver a day after `NOW` takes from another server (the clock bound is not in the way).
pub fn relay() -> Accept<'static> {
    Accept::relay((NOW + 86_400) * 1000)
}

pub fn issuer() -> (IssuerKey, Keyring) {
    let key = IssuerKey::from_seed(KeyId(1), [42; 32]);
    let mut ring = Keyring::new();
    ring.insert(key.public_entry(0, None)).expect("fresh keyring");
    (key, ring)
}

pub fn ticket_id(n: u64) -> TicketId {
    let mut id = [0u8; 12];
    id[..8].copy_from_slice(&n.to_be_bytes());
    id[8] = 0xa5;
    TicketId(id)
}

/// Builds a test ticket: a plain one (key 1, ticket type 0, no add-ons, single entry, nothing due at the
/// door, no validity window), changed one field at a time, then built or signed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct TicketBuilder {
    ticket: Ticket,
}

impl TicketBuilder {
    /// A plain ticket with this id for `event`.
    pub fn new(ticket_id: TicketId, event: u32) -> Self {
        Self {
            ticket: Ticket {
                key_id: KeyId(1),
                event_id: event,
                ticket_id,
                ticket_type: 0,
                addons: 0,
                policy: EntryPolicy::SingleEntry,
                payment_due: false,
                valid_from: None,
                valid_until: None,
            },
        }
    }

    /// A plain ticket numbered `n` ([`ticket_id`]) for `event`.
    pub fn numbered(n: u64, event: u32) -> Self {
        Self::new(ticket_id(n), event)
    }

    /// The key the ticket names. [`Self::sign`] names the signing key itself; this is for a ticket
    /// that is only built, or signed by hand with another key (a forgery, a mismatch).
    pub fn key(mut self, key_id: KeyId) -> Self {
        self.ticket.key_id = key_id;
        self
    }

    pub fn event(mut self, event: u32) -> Self {
        self.ticket.event_id = event;
        self
    }

    pub fn ticket_type(mut self, ticket_type: u8) -> Self {
        self.ticket.ticket_type = ticket_type;
        self
    }

    /// The add-on bit set (bit i: add-on i).
    pub fn addons(mut self, addons: u16) -> Self {
        self.ticket.addons = addons;
        self
    }

    pub fn policy(mut self, policy: EntryPolicy) -> Self {
        self.ticket.policy = policy;
        self
    }

    /// The holder pays at the door.
    pub fn payment_due(mut self) -> Self {
        self.ticket.payment_due = true;
        self
    }

    /// Valid from this Unix second on.
    pub fn valid_from(mut self, secs: u32) -> Self {
        self.ticket.valid_from = Some(secs);
        self
    }

    /// Valid until this Unix second.
    pub fn valid_until(mut self, secs: u32) -> Self {
        self.ticket.valid_until = Some(secs);
        self
    }

    pub fn build(self) -> Ticket {
        self.ticket
    }

    /// Signed by `key`, naming it.
    pub fn sign(self, key: &IssuerKey) -> SignedTicket {
        key.sign_ticket(&self.key(key.key_id()).ticket).expect("the ticket names its signing key")
    }

    /// The QR text of the ticket signed by `key`, naming it.
    pub fn qr(self, key: &IssuerKey) -> String {
        self.sign(key).to_qr_text()
    }
}

/// Ticket `n` for `event` with `policy`; its ticket type (`n` mod 3) and add-ons (`n` mod 4) vary with `n`.
pub fn ticket(n: u64, policy: EntryPolicy, event: u32) -> Ticket {
    TicketBuilder::numbered(n, event).ticket_type((n % 3) as u8).addons((n % 4) as u16).policy(policy).build()
}

/// A plain ticket `n` for `event`: ticket type 0, no add-ons, single entry, no validity window.
pub fn plain_ticket(n: u64, event: u32) -> Ticket {
    TicketBuilder::numbered(n, event).build()
}

pub fn qr(key: &IssuerKey, t: &Ticket) -> String {
    key.sign_ticket(t).expect("key matches").to_qr_text()
}

/// A record that let ticket `n` in (or out) at `secs`.
pub fn record(n: u64, secs: u64, kind: ScanKind, outcome: Outcome) -> ScanRecord {
    ScanRecord {
        ticket: ticket_ref(n),
        hlc: Hlc((secs * 1000) << 16),
        wall_time: secs as u32,
        gate: 0,
        kind,
        reentry: false,
        outcome,
        ticket_type: 0,
        decided_by_edge: false,
        addon: None,
    }
}

pub fn admit(n: u64, secs: u64) -> ScanRecord {
    record(n, secs, ScanKind::Entry, Outcome::Admitted)
}

/// A server's own admission of ticket `n` at `secs`: one the edge or a venue hub decided.
pub fn served(n: u64, secs: u64) -> ScanRecord {
    ScanRecord { decided_by_edge: true, ..admit(n, secs) }
}

/// The reference every record of ticket `n` carries.
pub fn ticket_ref(n: u64) -> TicketRef {
    TicketRef::of(&ticket_id(n))
}

/// A device log holding `batches`, one change per batch.
pub fn device_doc(device: DeviceId, batches: &[Vec<ScanRecord>]) -> RedemptionDoc {
    let mut doc = RedemptionDoc::new_for_device(device);
    let gates = vec!["gate-a".to_owned(), "gate-b".to_owned()];
    for b in batches {
        doc.append_batch(
            device,
            Batch { device_name: &format!("door-{}", device.0), gates: &gates, records: b, overrides: &[], time: 0 },
        )
        .expect("append");
    }
    doc
}

/// Runs the sync protocol between two documents until neither has anything to say. Returns the bytes
/// exchanged (a→b, b→a).
pub fn sync_docs(
    a: &mut RedemptionDoc,
    a_state: &mut sync::State,
    b: &mut RedemptionDoc,
    b_state: &mut sync::State,
) -> (usize, usize) {
    let (mut ab, mut ba) = (0, 0);
    for _ in 0..100 {
        let m1 = a.generate_sync_message(a_state);
        if let Some(m) = &m1 {
            ab += m.len();
            b.receive_sync_message(b_state, m, relay()).expect("valid message");
        }
        let m2 = b.generate_sync_message(b_state);
        if let Some(m) = &m2 {
            ba += m.len();
            a.receive_sync_message(a_state, m, relay()).expect("valid message");
        }
        if m1.is_none() && m2.is_none() {
            return (ab, ba);
        }
    }
    panic!("sync did not converge");
}

/// Syncs a device with a relay (server) from fresh states, the way a device does over HTTP.
pub fn sync_with_relay(device: &mut RedemptionDoc, relay: &mut RedemptionDoc) -> (usize, usize) {
    sync_docs(device, &mut sync::State::new(), relay, &mut sync::State::new())
}
