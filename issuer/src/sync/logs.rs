//! The copies of the events' redemption logs this instance holds in memory: the part of the sync store
//! the application state holds. How they are loaded from and written to the database is
//! [`super::store`].

use std::collections::HashMap;
use std::sync::Arc;

use scanner_core::redemption::document::{decode_peer_state, PeerState};
use scanner_core::redemption::sync_log::SyncLog;

use crate::error::{Error, Result};

/// The copies of every event's log this instance holds; one async lock per event serialises this
/// instance's use of it (the event's row lock in the store serialises all instances' writes).
#[derive(Debug, Default)]
pub struct SyncLogs {
    pub(super) events: std::sync::Mutex<HashMap<u32, Arc<tokio::sync::Mutex<Option<Held>>>>>,
}

/// One event's log as this instance holds it.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) log: SyncLog,
    /// The highest `seq` of the event's pieces this copy holds.
    pub(super) seq: i64,
    /// Peer states as this instance last stored them, with their stored bytes: the in-memory state (which
    /// knows more than its encoding, e.g. what was sent in this session) is used only while the store
    /// still holds those bytes, i.e. while no other instance served the peer since.
    pub(super) peers: HashMap<String, (PeerState, Vec<u8>)>,
}

impl Held {
    pub(super) fn peer_state(&self, key: &str, stored: Option<&[u8]>) -> PeerState {
        match (self.peers.get(key), stored) {
            (Some((state, bytes)), Some(stored)) if bytes == stored => state.clone(),
            // Best effort: a damaged state only makes this exchange longer.
            (_, Some(stored)) => decode_peer_state(stored).unwrap_or_default(),
            (_, None) => PeerState::new(),
        }
    }

    /// Applies pieces read from the store, in order.
    pub(super) fn catch_up(&mut self, event: u32, pieces: Vec<(i64, Vec<u8>)>) -> Result<()> {
        for (seq, bytes) in pieces {
            self.log.apply_stored(&bytes).map_err(|e| damaged(event, e))?;
            self.seq = seq;
        }
        Ok(())
    }
}

pub(super) fn damaged(event: u32, e: scanner_core::Error) -> Error {
    Error::Internal(format!("the stored redemption log of event {event} is damaged: {e}"))
}
