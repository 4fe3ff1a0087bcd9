//! The attendee manifest: what a scanner knows about each ticket beyond its QR code (entitlements and the
//! holder's name), without a lost scanner phone revealing any name to someone who does not hold the QR code.
//!
//! Each entry is stored under a lookup hash of the ticket id and sealed with a key derived from the ticket
//! id, so it can only be found and opened by someone who has just scanned that ticket:
//!
//! - lookup  = SHA-256(`DOMAIN_MANIFEST_LOOKUP` ‖ ticket id)\[..16\], base64url in JSON;
//! - key     = HKDF-SHA256(ikm = ticket id, salt = `DOMAIN_MANIFEST_KEY`, info = lookup), 32 bytes;
//! - sealed  = ChaCha20-Poly1305(key, nonce (12 random bytes), plaintext = entry JSON,
//!   aad = `DOMAIN_MANIFEST_AAD` ‖ event id (u32 BE) ‖ lookup).
//!
//! The domains differ from the revocation-entry domain, so a manifest lookup hash cannot be matched against
//! a revocation list entry. Ticket ids are 96 random bits: neither hash nor key can be brute-forced.
//! The issuer chooses the nonce (fresh random bytes per sealing); opening needs no randomness, so this module
//! builds for `wasm32-unknown-unknown`.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::ticket::TicketId;

pub const MANIFEST_FORMAT: &str = "offline-tickets/manifest/v1";
pub const DOMAIN_MANIFEST_LOOKUP: &[u8] = b"offline-tickets/v1/manifest-lookup\0";
pub const DOMAIN_MANIFEST_KEY: &[u8] = b"offline-tickets/v1/manifest-key\0";
pub const DOMAIN_MANIFEST_AAD: &[u8] = b"offline-tickets/v1/manifest-entry\0";
/// Longest holder name a manifest entry carries (in bytes); longer names are refused when sealing.
pub const MAX_HOLDER_NAME_LEN: usize = 200;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest JSON is invalid: {0}")]
    Json(String),
    #[error("unsupported manifest format {0:?}")]
    Format(String),
    #[error("manifest entry is malformed: {0}")]
    Entry(&'static str),
    #[error("manifest entry cannot be opened with this ticket (tampered, or for another ticket)")]
    Open,
    #[error("holder name is longer than {MAX_HOLDER_NAME_LEN} bytes")]
    NameTooLong,
}

/// What a scanner learns about a ticket once it has scanned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Index of the ticket type within the event.
    pub ticket_type: u8,
    /// Bit i set = add-on i of the event.
    pub addons: u16,
    /// The holder's name as given at purchase.
    pub holder_name: String,
}

/// One sealed entry as carried in the manifest JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedEntry {
    /// base64url of the 16-byte lookup hash.
    pub lookup: String,
    /// base64url of the 12-byte nonce.
    pub nonce: String,
    /// base64url of ciphertext ‖ 16-byte tag.
    pub sealed: String,
}

/// The manifest of one event, as served to scanners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub event_id: u32,
    /// Unix seconds when the issuer produced it.
    pub generated_at: u64,
    pub entries: Vec<SealedEntry>,
}

/// The 16-byte lookup hash of a ticket id.
pub fn lookup_hash(ticket_id: &TicketId) -> [u8; 16] {
    let digest = Sha256::new().chain_update(DOMAIN_MANIFEST_LOOKUP).chain_update(ticket_id.as_bytes()).finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

fn entry_key(ticket_id: &TicketId, lookup: &[u8; 16]) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(DOMAIN_MANIFEST_KEY), ticket_id.as_bytes());
    let mut okm = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    let _ = hk.expand(lookup, &mut okm);
    okm
}

fn aad(event_id: u32, lookup: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(DOMAIN_MANIFEST_AAD.len() + 20);
    out.extend_from_slice(DOMAIN_MANIFEST_AAD);
    out.extend_from_slice(&event_id.to_be_bytes());
    out.extend_from_slice(lookup);
    out
}

/// Issuer side: seals one entry. `nonce` must be fresh random bytes for every sealing.
pub fn seal_entry(
    event_id: u32,
    ticket_id: &TicketId,
    entry: &ManifestEntry,
    nonce: [u8; 12],
) -> Result<SealedEntry, ManifestError> {
    if entry.holder_name.len() > MAX_HOLDER_NAME_LEN {
        return Err(ManifestError::NameTooLong);
    }
    let lookup = lookup_hash(ticket_id);
    let mut key = entry_key(ticket_id, &lookup);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key));
    zeroize::Zeroize::zeroize(&mut key);
    let plaintext = serde_json::to_vec(entry).map_err(|e| ManifestError::Json(e.to_string()))?;
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: &plaintext, aad: &aad(event_id, &lookup) })
        .map_err(|_| ManifestError::Entry("encryption failed"))?;
    Ok(SealedEntry { lookup: B64.encode(lookup), nonce: B64.encode(nonce), sealed: B64.encode(sealed) })
}

/// Scanner side: opens an entry with the ticket id just read from a QR code.
pub fn open_entry(event_id: u32, ticket_id: &TicketId, sealed: &SealedEntry) -> Result<ManifestEntry, ManifestError> {
    let lookup = lookup_hash(ticket_id);
    if B64.decode(&sealed.lookup).ok().as_deref() != Some(&lookup[..]) {
        return Err(ManifestError::Open);
    }
    let nonce: [u8; 12] = B64
        .decode(&sealed.nonce)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or(ManifestError::Entry("nonce is not 12 base64url bytes"))?;
    let ciphertext = B64.decode(&sealed.sealed).map_err(|_| ManifestError::Entry("sealed is not base64url"))?;
    let mut key = entry_key(ticket_id, &lookup);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key));
    zeroize::Zeroize::zeroize(&mut key);
    let plaintext = cipher
        .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ciphertext, aad: &aad(event_id, &lookup) })
        .map_err(|_| ManifestError::Open)?;
    serde_json::from_slice(&plaintext).map_err(|e| ManifestError::Json(e.to_string()))
}

impl Manifest {
    pub fn new(event_id: u32, generated_at: u64) -> Self {
        Self { format: MANIFEST_FORMAT.to_owned(), event_id, generated_at, entries: Vec::new() }
    }

    pub fn from_json(json: &str) -> Result<Self, ManifestError> {
        let m: Self = serde_json::from_str(json).map_err(|e| ManifestError::Json(e.to_string()))?;
        if m.format != MANIFEST_FORMAT {
            return Err(ManifestError::Format(m.format));
        }
        Ok(m)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// An index from lookup hash to entry position, for scanners that look up many tickets.
    pub fn index(&self) -> HashMap<String, usize> {
        self.entries.iter().enumerate().map(|(i, e)| (e.lookup.clone(), i)).collect()
    }

    /// Finds and opens the entry of `ticket_id`; `Ok(None)` if the manifest has no entry for it.
    pub fn lookup(&self, ticket_id: &TicketId) -> Result<Option<ManifestEntry>, ManifestError> {
        let key = B64.encode(lookup_hash(ticket_id));
        match self.entries.iter().find(|e| e.lookup == key) {
            Some(sealed) => open_entry(self.event_id, ticket_id, sealed).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> ManifestEntry {
        ManifestEntry { ticket_type: 1, addons: 0b10, holder_name: "Ada <Lovelace>".to_owned() }
    }

    #[test]
    fn seal_open_round_trip_through_json() {
        let id = TicketId([3; 12]);
        let mut m = Manifest::new(42, 1_700_000_000);
        m.entries.push(seal_entry(42, &id, &entry(), [7; 12]).unwrap());
        m.entries.push(seal_entry(42, &TicketId([4; 12]), &entry(), [8; 12]).unwrap());
        let back = Manifest::from_json(&m.to_json()).unwrap();
        assert_eq!(back.lookup(&id).unwrap(), Some(entry()));
        assert_eq!(back.lookup(&TicketId([5; 12])).unwrap(), None);
        // Nothing in the JSON reveals the name or the ticket id.
        let json = m.to_json();
        assert!(!json.contains("Ada") && !json.contains(&id.to_hex()));
    }

    #[test]
    fn tampering_and_wrong_tickets_are_refused() {
        let id = TicketId([3; 12]);
        let sealed = seal_entry(42, &id, &entry(), [7; 12]).unwrap();
        assert_eq!(open_entry(43, &id, &sealed), Err(ManifestError::Open));
        assert_eq!(open_entry(42, &TicketId([9; 12]), &sealed), Err(ManifestError::Open));
        let mut bytes = B64.decode(&sealed.sealed).unwrap();
        bytes[0] ^= 1;
        let tampered = SealedEntry { sealed: B64.encode(bytes), ..sealed.clone() };
        assert_eq!(open_entry(42, &id, &tampered), Err(ManifestError::Open));
        let bad_nonce = SealedEntry { nonce: "x".into(), ..sealed };
        assert!(matches!(open_entry(42, &id, &bad_nonce), Err(ManifestError::Entry(_))));
        let long = ManifestEntry { holder_name: "x".repeat(MAX_HOLDER_NAME_LEN + 1), ..entry() };
        assert_eq!(seal_entry(42, &id, &long, [0; 12]), Err(ManifestError::NameTooLong));
        assert!(matches!(
            Manifest::from_json(r#"{"format":"x","event_id":1,"generated_at":0,"entries":[]}"#),
            Err(ManifestError::Format(_))
        ));
    }
}
