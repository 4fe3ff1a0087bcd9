//! The revocation list: refunded or cancelled tickets, signed by the issuer, grow-only and versioned.
//!
//! Entries are 16-byte truncated hashes of ticket ids, never the ids themselves: a lost scanner phone must
//! not hand out valid tickets. Each published version appends one batch to a hash chain
//! (`head_v = SHA-256(DOMAIN_CHAIN ‖ head_{v-1} ‖ v ‖ n ‖ entries)`) and the issuer signs the newest head.
//! A scanner holding version `m` fetches only the batches after `m`, recomputes the chain from its own head
//! and checks one signature: a delta can add entries but can never remove one (grow-only by construction).

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::keyring::{IssuerKey, Keyring};
use crate::ticket::{KeyId, TicketId};

pub const REVOCATIONS_FORMAT: &str = "offline-tickets/revocations/v1";
pub const DOMAIN_REVOCATION_ENTRY: &[u8] = b"offline-tickets/v1/revocation-entry\0";
pub const DOMAIN_REVOCATION_CHAIN: &[u8] = b"offline-tickets/v1/revocation-chain\0";
pub const DOMAIN_REVOCATION_HEAD: &[u8] = b"offline-tickets/v1/revocation-head\0";

#[derive(Debug, Error)]
pub enum RevocationError {
    #[error("revocation list JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported format {0:?}")]
    Format(String),
    #[error("revocation update starts at version {from} but this list is at version {have}: fetch since {have}")]
    Gap { from: u64, have: u64 },
    #[error("revocation batches are not consecutive versions")]
    Sequence,
    #[error("revocation entry is not a 16-byte base64url hash")]
    Entry,
    #[error("revocation list is signed by key {0}, which is not in the keyring")]
    UnknownKey(KeyId),
    #[error("revocation list signature is invalid")]
    BadSignature,
    #[error("revocation update has batches but no signature")]
    Unsigned,
}

/// The 16-byte hash that stands for a revoked ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevocationHash(pub [u8; 16]);

impl RevocationHash {
    pub fn of(ticket_id: &TicketId) -> Self {
        let digest = Sha256::new().chain_update(DOMAIN_REVOCATION_ENTRY).chain_update(ticket_id.as_bytes()).finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        Self(out)
    }
}

/// One published version's new entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationBatch {
    pub version: u64,
    pub entries: Vec<RevocationHash>,
}

/// What a scanner fetches: the batches after `from_version`, and the issuer's signature on the newest head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationDelta {
    pub format: String,
    pub from_version: u64,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<KeyId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    pub batches: Vec<BatchJson>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchJson {
    pub version: u64,
    pub entries: Vec<String>,
}

impl RevocationDelta {
    pub fn from_json(json: &str) -> Result<Self, RevocationError> {
        let delta: Self = serde_json::from_str(json)?;
        if delta.format != REVOCATIONS_FORMAT {
            return Err(RevocationError::Format(delta.format));
        }
        Ok(delta)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A verified, append-only revocation list.
#[derive(Debug, Clone)]
pub struct RevocationList {
    batches: Vec<RevocationBatch>,
    head: [u8; 32],
    signed: Option<(KeyId, Signature)>,
    revoked: HashSet<RevocationHash>,
}

impl Default for RevocationList {
    fn default() -> Self {
        Self::new()
    }
}

fn genesis() -> [u8; 32] {
    Sha256::digest(DOMAIN_REVOCATION_CHAIN).into()
}

fn chain(prev: &[u8; 32], batch: &RevocationBatch) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN_REVOCATION_CHAIN);
    h.update(prev);
    h.update(batch.version.to_be_bytes());
    h.update((batch.entries.len() as u64).to_be_bytes());
    for e in &batch.entries {
        h.update(e.0);
    }
    h.finalize().into()
}

fn head_message(version: u64, head: &[u8; 32]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(DOMAIN_REVOCATION_HEAD.len() + 40);
    msg.extend_from_slice(DOMAIN_REVOCATION_HEAD);
    msg.extend_from_slice(&version.to_be_bytes());
    msg.extend_from_slice(head);
    msg
}

impl RevocationList {
    /// The empty list, version 0 (needs no signature).
    pub fn new() -> Self {
        Self { batches: Vec::new(), head: genesis(), signed: None, revoked: HashSet::new() }
    }

    pub fn version(&self) -> u64 {
        self.batches.len() as u64
    }

    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }

    pub fn contains(&self, ticket_id: &TicketId) -> bool {
        self.revoked.contains(&RevocationHash::of(ticket_id))
    }

    /// Issuer side: publishes a new version with `entries` (already-revoked ones are skipped) and signs it.
    /// Returns the new version.
    pub fn publish(&mut self, key: &IssuerKey, entries: impl IntoIterator<Item = RevocationHash>) -> u64 {
        let mut fresh = Vec::new();
        for e in entries {
            if self.revoked.insert(e) {
                fresh.push(e);
            }
        }
        let batch = RevocationBatch { version: self.version() + 1, entries: fresh };
        self.head = chain(&self.head, &batch);
        self.batches.push(batch);
        let signature = key.sign_raw(&head_message(self.version(), &self.head));
        self.signed = Some((key.key_id(), signature));
        self.version()
    }

    /// Everything after `since` (clamped to the current version), with the signature on the newest head.
    pub fn delta_since(&self, since: u64) -> RevocationDelta {
        let from = since.min(self.version());
        let batches = self.batches[from as usize..]
            .iter()
            .map(|b| BatchJson { version: b.version, entries: b.entries.iter().map(|e| B64.encode(e.0)).collect() })
            .collect();
        RevocationDelta {
            format: REVOCATIONS_FORMAT.to_owned(),
            from_version: from,
            version: self.version(),
            kid: self.signed.map(|(k, _)| k),
            signature: self.signed.map(|(_, s)| B64.encode(s.to_bytes())),
            batches,
        }
    }

    /// Scanner side: verifies a delta against this list's head and the keyring, then applies it. On any
    /// error the list is left exactly as it was.
    pub fn apply(&mut self, delta: &RevocationDelta, keyring: &Keyring) -> Result<(), RevocationError> {
        if delta.format != REVOCATIONS_FORMAT {
            return Err(RevocationError::Format(delta.format.clone()));
        }
        if delta.from_version > self.version() {
            return Err(RevocationError::Gap { from: delta.from_version, have: self.version() });
        }
        let mut head = self.head;
        let mut fresh = Vec::new();
        let mut expected = self.version() + 1;
        for b in &delta.batches {
            if b.version <= self.version() {
                continue; // already have it: overlapping deltas are harmless.
            }
            if b.version != expected {
                return Err(RevocationError::Sequence);
            }
            let entries = b
                .entries
                .iter()
                .map(|e| B64.decode(e).ok().and_then(|v| <[u8; 16]>::try_from(v).ok()).map(RevocationHash))
                .collect::<Option<Vec<_>>>()
                .ok_or(RevocationError::Entry)?;
            let batch = RevocationBatch { version: b.version, entries };
            head = chain(&head, &batch);
            fresh.push(batch);
            expected += 1;
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let new_version = expected - 1;
        if new_version != delta.version {
            return Err(RevocationError::Sequence);
        }
        let (kid, sig) = match (delta.kid, &delta.signature) {
            (Some(k), Some(s)) => (k, s),
            _ => return Err(RevocationError::Unsigned),
        };
        let entry = keyring.get(kid).ok_or(RevocationError::UnknownKey(kid))?;
        let sig: [u8; 64] =
            B64.decode(sig).ok().and_then(|v| v.try_into().ok()).ok_or(RevocationError::BadSignature)?;
        let signature = Signature::from_bytes(&sig);
        entry
            .key
            .verify_strict(&head_message(new_version, &head), &signature)
            .map_err(|_| RevocationError::BadSignature)?;
        for batch in fresh {
            self.revoked.extend(batch.entries.iter().copied());
            self.batches.push(batch);
        }
        self.head = head;
        self.signed = Some((kid, signature));
        Ok(())
    }

    /// Parses and verifies a complete list (a delta since version 0).
    pub fn from_json(json: &str, keyring: &Keyring) -> Result<Self, RevocationError> {
        let mut list = Self::new();
        list.apply(&RevocationDelta::from_json(json)?, keyring)?;
        Ok(list)
    }

    pub fn to_json(&self) -> String {
        self.delta_since(0).to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (IssuerKey, Keyring) {
        let key = IssuerKey::from_seed(KeyId(1), [5; 32]);
        let mut ring = Keyring::new();
        ring.insert(key.public_entry(0, None)).unwrap();
        (key, ring)
    }

    #[test]
    fn deltas_bring_a_scanner_up_to_date() {
        let (key, ring) = setup();
        let ids: Vec<TicketId> = (0..5u8).map(|i| TicketId([i; 12])).collect();
        let mut issuer = RevocationList::new();
        issuer.publish(&key, [RevocationHash::of(&ids[0]), RevocationHash::of(&ids[1])]);
        let mut scanner = RevocationList::from_json(&issuer.to_json(), &ring).unwrap();
        assert_eq!(scanner.version(), 1);
        assert!(scanner.contains(&ids[1]) && !scanner.contains(&ids[2]));
        issuer.publish(&key, [RevocationHash::of(&ids[2])]);
        issuer.publish(&key, [RevocationHash::of(&ids[3]), RevocationHash::of(&ids[0])]);
        let delta = issuer.delta_since(scanner.version());
        assert_eq!(delta.batches.len(), 2);
        scanner.apply(&delta, &ring).unwrap();
        assert_eq!(scanner.version(), 3);
        assert_eq!(scanner.len(), 4);
        assert!(scanner.contains(&ids[3]) && !scanner.contains(&ids[4]));
        // Applying the same or an overlapping delta again changes nothing.
        scanner.apply(&issuer.delta_since(1), &ring).unwrap();
        assert_eq!(scanner.version(), 3);
    }

    #[test]
    fn tampered_deltas_leave_the_list_unchanged() {
        let (key, ring) = setup();
        let mut issuer = RevocationList::new();
        issuer.publish(&key, [RevocationHash::of(&TicketId([1; 12]))]);
        issuer.publish(&key, [RevocationHash::of(&TicketId([2; 12]))]);
        let mut scanner = RevocationList::new();
        scanner.apply(&issuer.delta_since(0), &ring).unwrap();
        issuer.publish(&key, [RevocationHash::of(&TicketId([3; 12]))]);
        let good = issuer.delta_since(2);

        // Dropping an entry from the chain (an attempt to un-revoke) breaks the signature.
        let mut removed = issuer.delta_since(0);
        removed.batches[0].entries.clear();
        assert!(matches!(RevocationList::new().apply(&removed, &ring), Err(RevocationError::BadSignature)));

        let mut forged = good.clone();
        forged.batches[0].entries[0] = B64.encode([0u8; 16]);
        assert!(matches!(scanner.apply(&forged, &ring), Err(RevocationError::BadSignature)));

        let mut unknown = good.clone();
        unknown.kid = Some(KeyId(9));
        assert!(matches!(scanner.apply(&unknown, &ring), Err(RevocationError::UnknownKey(_))));

        let mut gap = good.clone();
        gap.from_version = 5;
        assert!(matches!(scanner.apply(&gap, &ring), Err(RevocationError::Gap { .. })));

        let mut bad_entry = good.clone();
        bad_entry.batches[0].entries[0] = "short".into();
        assert!(matches!(scanner.apply(&bad_entry, &ring), Err(RevocationError::Entry)));

        assert_eq!(scanner.version(), 2);
        assert!(!scanner.contains(&TicketId([3; 12])));
        scanner.apply(&good, &ring).unwrap();
        assert!(scanner.contains(&TicketId([3; 12])));
    }

    #[test]
    fn revocation_signature_cannot_pass_as_ticket_signature() {
        // The domains differ, so the same key's signatures are never interchangeable.
        assert_ne!(DOMAIN_REVOCATION_HEAD, crate::ticket::DOMAIN_TICKET);
        assert!(!DOMAIN_REVOCATION_HEAD.starts_with(crate::ticket::DOMAIN_TICKET));
    }
}
