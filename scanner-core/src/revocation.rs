//! The revocation list: refunded or cancelled tickets, signed by the issuer, grow-only and versioned.
//!
//! Entries are 16-byte truncated hashes of ticket ids, never the ids themselves: a lost scanner phone must
//! not hand out valid tickets. Each published version appends one batch to a hash chain
//! (`head_v = SHA-256(DOMAIN_CHAIN ‖ head_{v-1} ‖ v ‖ n ‖ entries)`) and the issuer signs the newest head.
//! A scanner holding version `m` fetches only the batches after `m`, recomputes the chain from its own head
//! and checks one signature: a delta can add entries but can never remove one (grow-only by construction).
//!
//! The signature also covers the signing time (`signed_at`), which must lie inside the signing key's
//! window: after a key rotation, lists signed by the old key while it was valid keep verifying, and a
//! retired key cannot sign new ones. A holder never goes back: a list (or delta) whose version is lower
//! than the one held is a [`RevocationKind::Rollback`], and one at the same version with other content (or
//! a higher version that does not extend the held chain) a [`RevocationKind::Conflict`].

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
pub enum RevocationKind {
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
    #[error("revocation list signature carries no signing time (signed_at)")]
    NoSigningTime,
    #[error("revocation list was signed at {signed_at} by key {kid}, outside that key's validity window")]
    KeyNotActive { kid: KeyId, signed_at: u64 },
    #[error("revocation list version {offered} is older than the version {have} already held: refused (rollback)")]
    Rollback { have: u64, offered: u64 },
    #[error("revocation list version {version} differs from the list already held at that version: refused")]
    Conflict { version: u64 },
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
    /// Unix seconds when `signature` was made; signed with it, and inside the key's window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_at: Option<u64>,
    pub batches: Vec<BatchJson>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchJson {
    pub version: u64,
    pub entries: Vec<String>,
}

impl RevocationDelta {
    pub fn from_json(json: &str) -> crate::Result<Self> {
        let delta: Self = serde_json::from_str(json).map_err(RevocationKind::Json)?;
        if delta.format != REVOCATIONS_FORMAT {
            return Err(RevocationKind::Format(delta.format).into());
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
    /// Key, signature and signing time of the newest head.
    signed: Option<(KeyId, Signature, u64)>,
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

fn head_message(version: u64, head: &[u8; 32], signed_at: u64) -> Vec<u8> {
    let mut msg = Vec::with_capacity(DOMAIN_REVOCATION_HEAD.len() + 48);
    msg.extend_from_slice(DOMAIN_REVOCATION_HEAD);
    msg.extend_from_slice(&version.to_be_bytes());
    msg.extend_from_slice(head);
    msg.extend_from_slice(&signed_at.to_be_bytes());
    msg
}

fn decode_batch(b: &BatchJson) -> Result<RevocationBatch, RevocationKind> {
    let entries = b
        .entries
        .iter()
        .map(|e| B64.decode(e).ok().and_then(|v| <[u8; 16]>::try_from(v).ok()).map(RevocationHash))
        .collect::<Option<Vec<_>>>()
        .ok_or(RevocationKind::Entry)?;
    Ok(RevocationBatch { version: b.version, entries })
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

    /// The chain head at this list's version.
    pub fn head(&self) -> [u8; 32] {
        self.head
    }

    /// The key that signed the newest head and when (None for the unsigned empty list).
    pub fn signer(&self) -> Option<(KeyId, u64)> {
        self.signed.map(|(k, _, at)| (k, at))
    }

    /// The chain head at `version` (≤ this list's version), recomputed from the batches.
    fn head_at(&self, version: u64) -> [u8; 32] {
        self.batches.iter().take(version as usize).fold(genesis(), |h, b| chain(&h, b))
    }

    /// Whether `next` may replace this list on a device that holds this one: never a lower version
    /// ([`RevocationKind::Rollback`]); at the same version only the same chain, and at a higher version
    /// only a chain that extends this one ([`RevocationKind::Conflict`]). `next` must be verified already.
    pub fn check_successor(&self, next: &RevocationList) -> crate::Result<()> {
        let (have, offered) = (self.version(), next.version());
        if offered < have {
            return Err(RevocationKind::Rollback { have, offered }.into());
        }
        if next.head_at(have) != self.head {
            return Err(RevocationKind::Conflict { version: have }.into());
        }
        Ok(())
    }

    /// Issuer side: publishes a new version with `entries` at the current system time. See
    /// [`Self::publish_at`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn publish(&mut self, key: &IssuerKey, entries: impl IntoIterator<Item = RevocationHash>) -> u64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.publish_at(key, now, entries)
    }

    /// Issuer side: publishes a new version with `entries` (already-revoked ones are skipped) and signs it,
    /// with the signing time `now` (Unix seconds; it must lie in the key's window for scanners to accept
    /// the list). Returns the new version.
    pub fn publish_at(&mut self, key: &IssuerKey, now: u64, entries: impl IntoIterator<Item = RevocationHash>) -> u64 {
        let mut fresh = Vec::new();
        for e in entries {
            if self.revoked.insert(e) {
                fresh.push(e);
            }
        }
        let batch = RevocationBatch { version: self.version() + 1, entries: fresh };
        self.head = chain(&self.head, &batch);
        self.batches.push(batch);
        let signature = key.sign_raw(&head_message(self.version(), &self.head, now));
        self.signed = Some((key.key_id(), signature, now));
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
            kid: self.signed.map(|(k, _, _)| k),
            signature: self.signed.map(|(_, s, _)| B64.encode(s.to_bytes())),
            signed_at: self.signed.map(|(_, _, at)| at),
            batches,
        }
    }

    /// Scanner side: verifies a delta against this list's head and the keyring, then applies it. On any
    /// error the list is left exactly as it was. A delta that would take the list back (its `version` is
    /// lower than this list's) is refused as [`RevocationKind::Rollback`]; one at this list's version
    /// must describe the same chain ([`RevocationKind::Conflict`] otherwise).
    pub fn apply(&mut self, delta: &RevocationDelta, keyring: &Keyring) -> crate::Result<()> {
        if delta.format != REVOCATIONS_FORMAT {
            return Err(RevocationKind::Format(delta.format.clone()).into());
        }
        let have = self.version();
        if delta.from_version > have {
            return Err(RevocationKind::Gap { from: delta.from_version, have }.into());
        }
        if delta.version < have {
            return Err(RevocationKind::Rollback { have, offered: delta.version }.into());
        }
        if delta.version == have {
            // Nothing new. Whatever batches it carries must be ours, or it is another chain.
            let mut head = self.head_at(delta.from_version);
            let mut expected = delta.from_version + 1;
            for b in &delta.batches {
                if b.version != expected {
                    return Err(RevocationKind::Sequence.into());
                }
                head = chain(&head, &decode_batch(b)?);
                expected += 1;
            }
            if expected - 1 != have || head != self.head {
                return Err(RevocationKind::Conflict { version: have }.into());
            }
            return Ok(());
        }
        let mut head = self.head;
        let mut fresh = Vec::new();
        let mut expected = have + 1;
        for b in &delta.batches {
            if b.version <= have {
                continue; // already have it: overlapping deltas are harmless.
            }
            if b.version != expected {
                return Err(RevocationKind::Sequence.into());
            }
            let batch = decode_batch(b)?;
            head = chain(&head, &batch);
            fresh.push(batch);
            expected += 1;
        }
        let new_version = expected - 1;
        if new_version != delta.version {
            return Err(RevocationKind::Sequence.into());
        }
        let (kid, sig) = match (delta.kid, &delta.signature) {
            (Some(k), Some(s)) => (k, s),
            _ => return Err(RevocationKind::Unsigned.into()),
        };
        let signed_at = delta.signed_at.ok_or(RevocationKind::NoSigningTime)?;
        let entry = keyring.get(kid).ok_or(RevocationKind::UnknownKey(kid))?;
        let sig: [u8; 64] = B64.decode(sig).ok().and_then(|v| v.try_into().ok()).ok_or(RevocationKind::BadSignature)?;
        let signature = Signature::from_bytes(&sig);
        entry
            .key
            .verify_strict(&head_message(new_version, &head, signed_at), &signature)
            .map_err(|_| RevocationKind::BadSignature)?;
        // Checked after the signature, so the time is the issuer's and not a forger's.
        if !entry.is_active(signed_at) {
            return Err(RevocationKind::KeyNotActive { kid, signed_at }.into());
        }
        for batch in fresh {
            self.revoked.extend(batch.entries.iter().copied());
            self.batches.push(batch);
        }
        self.head = head;
        self.signed = Some((kid, signature, signed_at));
        Ok(())
    }

    /// Issuer side, once: upgrades a complete list stored before heads carried a signing time. Its
    /// signature is verified under the old rule (over `version ‖ head`, key in the keyring), then its head
    /// is signed again with `key` at `now`. A list that already has `signed_at`, or whose old signature
    /// does not verify, is refused.
    pub fn upgrade_legacy(json: &str, keyring: &Keyring, key: &IssuerKey, now: u64) -> crate::Result<Self> {
        let delta = RevocationDelta::from_json(json)?;
        if delta.signed_at.is_some() || delta.from_version != 0 {
            return Err(RevocationKind::Sequence.into());
        }
        let mut list = Self::new();
        for (i, b) in delta.batches.iter().enumerate() {
            if b.version != i as u64 + 1 {
                return Err(RevocationKind::Sequence.into());
            }
            let batch = decode_batch(b)?;
            list.head = chain(&list.head, &batch);
            list.revoked.extend(batch.entries.iter().copied());
            list.batches.push(batch);
        }
        if list.version() != delta.version {
            return Err(RevocationKind::Sequence.into());
        }
        if list.version() == 0 {
            return Ok(list);
        }
        let (kid, sig) = match (delta.kid, &delta.signature) {
            (Some(k), Some(s)) => (k, s),
            _ => return Err(RevocationKind::Unsigned.into()),
        };
        let entry = keyring.get(kid).ok_or(RevocationKind::UnknownKey(kid))?;
        let sig: [u8; 64] = B64.decode(sig).ok().and_then(|v| v.try_into().ok()).ok_or(RevocationKind::BadSignature)?;
        let mut legacy = Vec::with_capacity(DOMAIN_REVOCATION_HEAD.len() + 40);
        legacy.extend_from_slice(DOMAIN_REVOCATION_HEAD);
        legacy.extend_from_slice(&list.version().to_be_bytes());
        legacy.extend_from_slice(&list.head);
        entry.key.verify_strict(&legacy, &Signature::from_bytes(&sig)).map_err(|_| RevocationKind::BadSignature)?;
        let signature = key.sign_raw(&head_message(list.version(), &list.head, now));
        list.signed = Some((key.key_id(), signature, now));
        Ok(list)
    }

    /// Parses and verifies a complete list (a delta since version 0).
    pub fn from_json(json: &str, keyring: &Keyring) -> crate::Result<Self> {
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
        assert!(matches!(
            RevocationList::new().apply(&removed, &ring),
            Err(crate::Error::Revocation(RevocationKind::BadSignature))
        ));

        let mut forged = good.clone();
        forged.batches[0].entries[0] = B64.encode([0u8; 16]);
        assert!(matches!(scanner.apply(&forged, &ring), Err(crate::Error::Revocation(RevocationKind::BadSignature))));

        let mut unknown = good.clone();
        unknown.kid = Some(KeyId(9));
        assert!(matches!(scanner.apply(&unknown, &ring), Err(crate::Error::Revocation(RevocationKind::UnknownKey(_)))));

        let mut gap = good.clone();
        gap.from_version = 5;
        assert!(matches!(scanner.apply(&gap, &ring), Err(crate::Error::Revocation(RevocationKind::Gap { .. }))));

        let mut bad_entry = good.clone();
        bad_entry.batches[0].entries[0] = "short".into();
        assert!(matches!(scanner.apply(&bad_entry, &ring), Err(crate::Error::Revocation(RevocationKind::Entry))));

        assert_eq!(scanner.version(), 2);
        assert!(!scanner.contains(&TicketId([3; 12])));
        scanner.apply(&good, &ring).unwrap();
        assert!(scanner.contains(&TicketId([3; 12])));
    }

    #[test]
    fn older_or_different_lists_are_refused() {
        let (key, ring) = setup();
        let mut issuer = RevocationList::new();
        issuer.publish_at(&key, 10, [RevocationHash::of(&TicketId([1; 12]))]);
        let v1 = issuer.clone();
        issuer.publish_at(&key, 20, [RevocationHash::of(&TicketId([2; 12]))]);
        let mut device = RevocationList::from_json(&issuer.to_json(), &ring).unwrap();
        assert_eq!(device.version(), 2);

        // A delta or a whole list of an older version: rollback, nothing changes.
        assert!(matches!(
            device.apply(&v1.delta_since(0), &ring),
            Err(crate::Error::Revocation(RevocationKind::Rollback { have: 2, offered: 1 }))
        ));
        assert!(matches!(
            device.check_successor(&v1),
            Err(crate::Error::Revocation(RevocationKind::Rollback { have: 2, offered: 1 }))
        ));
        // The same version again, whole or as "nothing new": fine.
        device.apply(&issuer.delta_since(0), &ring).unwrap();
        device.apply(&issuer.delta_since(2), &ring).unwrap();
        device.check_successor(&issuer).unwrap();

        // Another chain at the same version (a second list signed by the same key): conflict.
        let mut other = v1.clone();
        other.publish_at(&key, 30, [RevocationHash::of(&TicketId([3; 12]))]);
        assert!(matches!(
            device.apply(&other.delta_since(0), &ring),
            Err(crate::Error::Revocation(RevocationKind::Conflict { version: 2 }))
        ));
        assert!(matches!(
            device.check_successor(&other),
            Err(crate::Error::Revocation(RevocationKind::Conflict { version: 2 }))
        ));
        // ... or at a higher version that does not extend ours.
        other.publish_at(&key, 40, []);
        assert!(matches!(
            device.check_successor(&other),
            Err(crate::Error::Revocation(RevocationKind::Conflict { version: 2 }))
        ));
        assert_eq!(device.version(), 2);
        assert!(!device.contains(&TicketId([3; 12])));
    }

    #[test]
    fn lists_verify_under_a_key_valid_at_their_signing_time() {
        let old = IssuerKey::from_seed(KeyId(1), [5; 32]);
        let new = IssuerKey::from_seed(KeyId(2), [6; 32]);
        let mut ring = Keyring::new();
        ring.insert(old.public_entry(100, None)).unwrap();
        ring.insert(new.public_entry(1_000, None)).unwrap();
        ring.retire(KeyId(1), 2_000);

        let mut inside = RevocationList::new();
        inside.publish_at(&old, 1_500, [RevocationHash::of(&TicketId([1; 12]))]);
        let list = RevocationList::from_json(&inside.to_json(), &ring).unwrap();
        assert_eq!(list.signer(), Some((KeyId(1), 1_500)));
        // The new key continues the same chain.
        let mut issuer = inside.clone();
        issuer.publish_at(&new, 2_500, [RevocationHash::of(&TicketId([2; 12]))]);
        let mut device = list.clone();
        device.apply(&issuer.delta_since(1), &ring).unwrap();
        assert_eq!(device.signer(), Some((KeyId(2), 2_500)));

        // Signed by the retired key after its window, or before it began: refused.
        for at in [2_001, 99] {
            let mut outside = RevocationList::new();
            outside.publish_at(&old, at, [RevocationHash::of(&TicketId([1; 12]))]);
            assert!(matches!(
                RevocationList::from_json(&outside.to_json(), &ring),
                Err(crate::Error::Revocation(RevocationKind::KeyNotActive { signed_at, .. })) if signed_at == at
            ));
        }
        // Moving the signing time into the window breaks the signature.
        let mut moved = RevocationList::new();
        moved.publish_at(&old, 2_001, [RevocationHash::of(&TicketId([1; 12]))]);
        let mut delta = moved.delta_since(0);
        delta.signed_at = Some(1_500);
        assert!(matches!(
            RevocationList::new().apply(&delta, &ring),
            Err(crate::Error::Revocation(RevocationKind::BadSignature))
        ));
        delta.signed_at = None;
        assert!(matches!(
            RevocationList::new().apply(&delta, &ring),
            Err(crate::Error::Revocation(RevocationKind::NoSigningTime))
        ));
    }

    #[test]
    fn a_legacy_list_is_verified_then_signed_again_with_its_time() {
        let (key, ring) = setup();
        let mut issuer = RevocationList::new();
        issuer.publish_at(&key, 10, [RevocationHash::of(&TicketId([1; 12]))]);
        // What an issuer stored before signing times: the signature over version ‖ head only.
        let mut legacy = issuer.delta_since(0);
        let mut msg = DOMAIN_REVOCATION_HEAD.to_vec();
        msg.extend_from_slice(&1u64.to_be_bytes());
        msg.extend_from_slice(&issuer.head());
        legacy.signature = Some(B64.encode(key.sign_raw(&msg).to_bytes()));
        legacy.signed_at = None;
        assert!(matches!(
            RevocationList::from_json(&legacy.to_json(), &ring),
            Err(crate::Error::Revocation(RevocationKind::NoSigningTime))
        ));
        let upgraded = RevocationList::upgrade_legacy(&legacy.to_json(), &ring, &key, 50).unwrap();
        assert_eq!(upgraded.signer(), Some((KeyId(1), 50)));
        let back = RevocationList::from_json(&upgraded.to_json(), &ring).unwrap();
        assert!(back.contains(&TicketId([1; 12])));
        // A forged legacy list is not upgraded.
        legacy.batches[0].entries.clear();
        assert!(matches!(
            RevocationList::upgrade_legacy(&legacy.to_json(), &ring, &key, 50),
            Err(crate::Error::Revocation(RevocationKind::BadSignature))
        ));
    }

    #[test]
    fn revocation_signature_cannot_pass_as_ticket_signature() {
        // The domains differ, so the same key's signatures are never interchangeable.
        assert_ne!(DOMAIN_REVOCATION_HEAD, crate::ticket::DOMAIN_TICKET);
        assert!(!DOMAIN_REVOCATION_HEAD.starts_with(crate::ticket::DOMAIN_TICKET));
    }
}
