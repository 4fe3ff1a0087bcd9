//! Which Durable Object owns a ticket's redemption state, and the edge's identities in the log.
//!
//! Shards are chosen from the ticket's [`TicketRef`] (scanner-core's one-way hash of the ticket id), not
//! the id itself: the log relay only ever sees references, and it must route offline scans it receives by
//! sync to the same shard that decides edge redemptions of that ticket.

use scanner_core::redemption::{DeviceId, TicketRef};
use sha2::{Digest, Sha256};

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

#[cfg(test)]
mod tests {
    use super::*;
    use scanner_core::TicketId;

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
