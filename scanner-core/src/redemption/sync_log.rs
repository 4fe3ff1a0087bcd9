//! A sync server's copy of one event's redemption log, without its storage: the decisions of a sync
//! server (what to take from a peer, what to answer, what must be made durable first) for any storage
//! shell. The venue hub keeps it in files ([`super::server_log::ServerLog`]); the issuer in its database,
//! shared by several instances. The protocol itself is [`serve_sync`].
//!
//! ## Persistence contract (what a storage shell must do)
//!
//! The store holds *pieces*: automerge bytes that, loaded in the order they were stored, give back the
//! whole log. A piece is either appended ([`StoreAs::Chunk`]) or replaces every piece stored before it
//! ([`StoreAs::FullSave`], compaction).
//!
//! - **Load** with [`SyncLog::load`] from every stored piece, concatenated in order.
//! - **Shared store**: before each exchange, and under a lock that excludes every other writer of the same
//!   event's pieces, hand the pieces stored since this copy last looked to [`SyncLog::apply_stored`], in
//!   order. Each writer then always appends on top of everything stored.
//! - **Exchange** ([`SyncLog::serve`], [`SyncLog::client_step`], [`SyncLog::append_own`]): when it
//!   returns a [`Write`], store it durably, then call [`SyncLog::stored`] with it, then store the peer's
//!   new sync state, and only then send the reply (or answer for the decision). Nothing this log answers
//!   for is ever lost by a crash.
//! - **A failed write** leaves the document holding changes the store does not: drop this `SyncLog` and
//!   load it again; the peer is refused, sends the same changes later, and loses nothing.
//! - A refused message (a [`crate::Error::Sync`]) changes neither the document nor the peer's state.
//! - Peer states (the heads both sides had at the end of the last exchange) are best effort: a lost one
//!   only makes the next exchange with that peer longer.
//!
//! A log may be *owned* by a device id (a venue hub writes its own decisions into the log it serves, as
//! that device, [`SyncLog::append_own`]); the issuer's logs are owned by no one.

use std::path::PathBuf;

use automerge::ChangeHash;
use thiserror::Error;

use super::decision::ScanIndex;
use super::document::SyncChannel;
use super::document::{
    serve_sync, session_start, Accept, Batch, LogKind, PeerState, Received, RedemptionDoc, ServerReply,
};
use super::record::{DeviceId, Hlc, ScanRecord, TicketRef};
use super::report::{CheckIn, EventReport};

/// How a server log failed: the payload of [`crate::Error::ServerLog`]. A refused peer message (damaged,
/// hostile, too large, another device's records...: nothing changed, a client error) is a
/// [`crate::Error::Sync`], and a local append or report the document refuses a [`crate::Error::Log`], as
/// anywhere else in the library.
#[derive(Debug, Error)]
pub enum ServerLogKind {
    /// The disk refused a write of the file-backed log: nothing was accepted (see the persistence contract
    /// of [`super::server_log`]).
    #[error("redemption log {path}: {source}")]
    Storage { path: PathBuf, source: std::io::Error },
    /// The stored log cannot be read back: it needs an operator, never a silent reset.
    #[error("stored redemption log {path} is damaged: {source}")]
    Damaged { path: PathBuf, source: Box<crate::Error> },
    #[error("this log is owned by no device: it cannot record decisions")]
    NotOwned,
    #[error("another thread panicked while holding the redemption log")]
    Poisoned,
}

/// Chunks stored after which the next write is one full save that replaces them all.
pub const COMPACT_AFTER_CHUNKS: usize = 256;

/// How a [`Write`] goes into the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAs {
    /// Appended after every piece stored so far.
    Chunk,
    /// Replaces every piece stored so far (atomically: the old pieces stay if the write fails).
    FullSave,
}

/// Bytes that must be durable before the reply that produced them is sent. See the module's persistence
/// contract.
#[derive(Debug, Clone)]
#[must_use = "a write must be stored before the reply is sent"]
pub struct Write {
    pub bytes: Vec<u8>,
    pub store_as: StoreAs,
    /// The document's heads these bytes reach (the saved point once stored).
    heads: Vec<ChangeHash>,
}

/// What one exchange with a peer answered.
#[derive(Debug)]
pub struct Exchange {
    /// The reply to send and what the message brought.
    pub served: ServerReply,
    /// What to store before sending the reply.
    pub write: Option<Write>,
}

/// What one step of a session this log runs as the client answered.
#[derive(Debug)]
pub struct ClientStep {
    /// The next message to send (`None`: nothing more to say).
    pub message: Option<Vec<u8>>,
    /// What the server's last reply brought.
    pub received: Received,
    /// What to store before going on.
    pub write: Option<Write>,
}

/// Where a session this log runs as the client is (see [`SyncLog::client_step`]).
#[derive(Debug, Clone, Copy)]
pub enum ClientTurn<'a> {
    /// A new session begins: the peer state goes back to what storage keeps of it
    /// ([`super::document::session_start`]).
    Begin,
    /// The server answered the last message with this one. When it answered nothing (HTTP 204) the
    /// session is over: stop without another step.
    Reply(&'a [u8]),
}

impl<'a> ClientTurn<'a> {
    /// The turn after `sent` messages of the session, the last answered with `reply` (`None`: answered
    /// with nothing); `None` when the session is over.
    pub fn after(sent: usize, reply: Option<&'a [u8]>) -> Option<Self> {
        match (sent, reply) {
            (0, _) => Some(ClientTurn::Begin),
            (_, Some(reply)) => Some(ClientTurn::Reply(reply)),
            (_, None) => None,
        }
    }
}

/// One event's log on a sync server, without storage. See the module documentation.
#[derive(Debug)]
pub struct SyncLog {
    doc: RedemptionDoc,
    owner: Option<DeviceId>,
    /// Chunks in the store since its last full save, as far as this copy knows (at least as many as there
    /// are: other writers' compactions only remove chunks).
    stored_chunks: usize,
    /// The decision index over the whole log, built on first use and dropped when the log changes by sync.
    index: Option<ScanIndex>,
}

impl SyncLog {
    /// Loads the log from every stored piece, in order (`stored` empty: a new, empty log). `pieces` is
    /// how many pieces that was (compaction counts from it). With `owner`, this log's own records
    /// ([`Self::append_own`]) are written as that device. A log that cannot be read back is an error
    /// (it needs an operator, never a silent reset).
    pub fn load(stored: &[u8], pieces: usize, owner: Option<DeviceId>) -> crate::Result<Self> {
        let doc = match (stored.is_empty(), owner) {
            (true, Some(owner)) => RedemptionDoc::new_for_device(owner),
            (true, None) => RedemptionDoc::new_relay(),
            (false, Some(owner)) => RedemptionDoc::load_for_device(stored, owner)?,
            (false, None) => RedemptionDoc::load(stored)?,
        };
        Ok(Self { doc, owner, stored_chunks: pieces, index: None })
    }

    pub fn doc(&self) -> &RedemptionDoc {
        &self.doc
    }

    /// The device this log's own records are written as, if any.
    pub fn owner(&self) -> Option<DeviceId> {
        self.owner
    }

    /// Applies one piece another writer stored since this copy last looked (see the module's persistence
    /// contract); returns how many records it brought.
    pub fn apply_stored(&mut self, piece: &[u8]) -> crate::Result<usize> {
        let received = self.doc.apply_stored(piece)?;
        self.stored_chunks += 1;
        if received.changed {
            self.index = None;
        }
        Ok(received.new_records)
    }

    /// What the store lacks of this log, if anything: the new changes as one chunk, or the whole log as
    /// one full save once [`COMPACT_AFTER_CHUNKS`] chunks piled up.
    pub fn pending_write(&self) -> Option<Write> {
        let (chunk, heads) = self.doc.unsaved();
        if chunk.is_empty() {
            return None;
        }
        if self.stored_chunks >= COMPACT_AFTER_CHUNKS {
            return Some(self.full_save());
        }
        Some(Write { bytes: chunk, store_as: StoreAs::Chunk, heads })
    }

    /// The whole log as one full save that replaces every stored piece (compaction).
    pub fn full_save(&self) -> Write {
        Write { bytes: self.doc.save(), store_as: StoreAs::FullSave, heads: self.doc.heads() }
    }

    /// Records that `write` is durable: the saved point moves to it.
    pub fn stored(&mut self, write: Write) {
        self.stored_chunks = match write.store_as {
            StoreAs::Chunk => self.stored_chunks + 1,
            StoreAs::FullSave => 1,
        };
        self.doc.mark_saved_at(write.heads);
    }

    /// One exchange with one peer (the server's side): takes what `accept` allows from `message` and
    /// returns the reply with what must be stored first. `peer` is the server's sync state for the
    /// authenticated peer; it moves only if the exchange succeeds (store it after the write).
    pub fn serve(
        &mut self,
        peer: &mut PeerState,
        message: &[u8],
        accept: Accept<'_>,
        channel: SyncChannel,
    ) -> crate::Result<Exchange> {
        let served = serve_sync(&mut self.doc, peer, message, accept, channel)?;
        let write = if served.received.changed {
            self.index = None;
            self.pending_write()
        } else {
            None
        };
        Ok(Exchange { served, write })
    }

    /// One step of a session this log runs as the *client* with another server (the issuer's relay with
    /// the edge; a hub's upstream sync): takes the server's reply (or begins the session) and returns the
    /// next message to send (`None`: nothing more to say) with what the reply brought.
    ///
    /// - [`SyncChannel::Relay`]: both ways, everything (the server must authenticate this side as a relay).
    /// - [`SyncChannel::Push`]: this log's own records out, nothing in (needs an owner).
    /// - [`SyncChannel::Pull`]: everyone's records in, as a device takes them from its server; complete as
    ///   soon as this log holds every head the server advertised.
    pub fn client_step(
        &mut self,
        peer: &mut PeerState,
        channel: SyncChannel,
        turn: ClientTurn<'_>,
        now_ms: u64,
    ) -> crate::Result<ClientStep> {
        let reply = match turn {
            ClientTurn::Begin => {
                *peer = session_start(peer);
                None
            }
            ClientTurn::Reply(reply) => Some(reply),
        };
        let mut received = Received::default();
        if channel == SyncChannel::Push {
            if self.owner.is_none() {
                return Err(ServerLogKind::NotOwned.into());
            }
            if let Some(reply) = reply {
                self.doc.receive_push_reply(peer, reply)?;
            }
            let message = self.doc.generate_push_message(peer)?;
            return Ok(ClientStep { message, received, write: None });
        }
        let mut write = None;
        if let Some(reply) = reply {
            received = self.doc.receive_sync_message(peer, reply, Accept::relay(now_ms))?;
            if received.changed {
                self.index = None;
                write = self.pending_write();
            }
            if channel == SyncChannel::Pull && self.doc.holds_heads_of(peer) {
                return Ok(ClientStep { message: None, received, write });
            }
        }
        let message = self.doc.generate_sync_message(peer);
        Ok(ClientStep { message, received, write })
    }

    /// The decision index over everything this log holds (every device's scans and this log's own).
    pub fn index(&mut self) -> crate::Result<&ScanIndex> {
        let index = match self.index.take() {
            Some(index) => index,
            None => ScanIndex::from_logs(&self.doc.device_logs()?),
        };
        Ok(self.index.insert(index))
    }

    /// Records one of this log's own decisions (as its owner, at `gate`, named `name`); the returned write
    /// must be stored before the caller answers for it.
    pub fn append_own(&mut self, name: &str, gate: &str, record: ScanRecord, now_secs: i64) -> crate::Result<Write> {
        let owner = self.owner.ok_or(ServerLogKind::NotOwned)?;
        let own = self.doc.device_log(owner)?;
        let mut gates = own.map(|l| l.gates).unwrap_or_default();
        let gate_index = match gates.iter().position(|g| g == gate) {
            Some(i) => i,
            None => {
                gates.push(gate.to_owned());
                gates.len() - 1
            }
        };
        let gate = u16::try_from(gate_index).map_err(|_| LogKind::TooManyGates)?;
        let record = ScanRecord { gate, ..record };
        let batch = Batch { device_name: name, gates: &gates, records: &[record], overrides: &[], time: now_secs };
        self.doc.append_batch(owner, batch)?;
        if let Some(index) = &mut self.index {
            index.set_device(owner, name, &gates);
            index.add(owner, &record);
        }
        // The batch just appended is unsaved, so there is always something to write.
        Ok(self.pending_write().unwrap_or_else(|| self.full_save()))
    }

    /// The latest clock value of any scan of this ticket slot the log knows (a new online decision sorts
    /// after it).
    pub fn last_hlc(&mut self, ticket: &TicketRef, addon: Option<u8>) -> crate::Result<Hlc> {
        let index = self.index()?;
        let latest = |slot| index.history_of(ticket, slot).iter().map(|s| s.hlc).max().unwrap_or_default();
        Ok(latest(None).max(latest(addon)))
    }

    /// The organizer's report over everything this log holds.
    pub fn report(&self) -> crate::Result<EventReport> {
        Ok(EventReport::from_logs(&self.doc.device_logs()?))
    }

    /// The report and its check-in list ([`EventReport::with_check_ins`]).
    pub fn check_ins(&self) -> crate::Result<(EventReport, Vec<CheckIn>)> {
        Ok(EventReport::with_check_ins(&self.doc.device_logs()?))
    }

    pub fn record_count(&self) -> usize {
        self.doc.record_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{served, ticket_ref};

    /// Two copies over one shared store of pieces (as two issuer instances over one database): each
    /// catches up on the other's pieces before writing, and both end with every record.
    #[test]
    fn two_copies_of_one_store_see_each_others_writes_and_compaction_replaces_the_pieces() {
        let (one, two) = (DeviceId(0x11), DeviceId(0x22));
        let mut store: Vec<Vec<u8>> = Vec::new();
        let mut a = SyncLog::load(&[], 0, Some(one)).unwrap();
        let mut b = SyncLog::load(&[], 0, Some(two)).unwrap();
        let mut seen = (0, 0);

        let write = a.append_own("a", "North", served(1, 10), 0).unwrap();
        assert_eq!(write.store_as, StoreAs::Chunk);
        store.push(write.bytes.clone());
        a.stored(write);
        seen.0 = store.len();
        assert!(a.pending_write().is_none(), "everything is stored");

        for piece in &store[seen.1..] {
            assert_eq!(b.apply_stored(piece).unwrap(), 1);
        }
        seen.1 = store.len();
        assert!(b.pending_write().is_none(), "what was read from the store is not written again");
        let write = b.append_own("b", "South", served(2, 11), 0).unwrap();
        store.push(write.bytes.clone());
        b.stored(write);

        for piece in &store[seen.0..] {
            a.apply_stored(piece).unwrap();
        }
        assert_eq!((a.record_count(), b.record_count()), (2, 2));
        assert_eq!(a.last_hlc(&ticket_ref(2), None).unwrap(), Hlc(11_000 << 16));

        // A compaction by `a` replaces both pieces; the full save alone loads the whole log.
        let full = a.full_save();
        assert_eq!(full.store_as, StoreAs::FullSave);
        store = vec![full.bytes.clone()];
        a.stored(full);
        let fresh = SyncLog::load(&store.concat(), store.len(), None).unwrap();
        assert_eq!(fresh.record_count(), 2);
        assert_eq!(fresh.report().unwrap().admitted, 2);
        // `b`, behind, reads the full save as its next piece: nothing new, nothing to write.
        assert_eq!(b.apply_stored(&store[0]).unwrap(), 0);
        assert!(b.pending_write().is_none());
    }

    #[test]
    fn chunks_pile_up_to_a_full_save() {
        let one = DeviceId(0x11);
        let mut log = SyncLog::load(&[], COMPACT_AFTER_CHUNKS - 1, Some(one)).unwrap();
        let write = log.append_own("a", "North", served(1, 10), 0).unwrap();
        assert_eq!(write.store_as, StoreAs::Chunk);
        log.stored(write);
        let write = log.append_own("a", "North", served(2, 11), 0).unwrap();
        assert_eq!(write.store_as, StoreAs::FullSave);
        log.stored(write);
        let write = log.append_own("a", "North", served(3, 12), 0).unwrap();
        assert_eq!(write.store_as, StoreAs::Chunk);
    }

    #[test]
    fn a_log_owned_by_no_one_records_nothing() {
        let mut log = SyncLog::load(&[], 0, None).unwrap();
        assert!(matches!(
            log.append_own("x", "g", served(1, 1), 0),
            Err(crate::Error::ServerLog(ServerLogKind::NotOwned))
        ));
    }
}
