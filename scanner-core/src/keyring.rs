//! Keys: the issuer's private signing key and the public keyring every scanner verifies against.
//!
//! Each public key has a validity window. Rotation = add a new key and give the old one a `not_after`: new
//! tickets are signed with the newest active key, while tickets signed with an older key keep verifying
//! until that key's window ends.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::ticket::{KeyId, SignedTicket, Ticket};

/// Identifies the keyring JSON format.
pub const KEYRING_FORMAT: &str = "offline-tickets/keyring/v1";
/// Identifies the private key file format.
pub const PRIVATE_KEY_FORMAT: &str = "offline-tickets/private-key/v1";

#[derive(Debug, Error)]
pub enum KeyringKind {
    #[error("keyring JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported format {0:?}")]
    Format(String),
    #[error("key {0}: not valid base64url")]
    Base64(KeyId),
    #[error("key {0}: not a valid Ed25519 public key")]
    PublicKey(KeyId),
    #[error("key id {0} appears twice")]
    DuplicateKeyId(KeyId),
    #[error("key {0}: window ends before it starts")]
    Window(KeyId),
    #[error("the keyring has no free key id left")]
    Exhausted,
    #[error("ticket names key {ticket} but is being signed with key {key}")]
    KeyMismatch { ticket: KeyId, key: KeyId },
    #[error("keyring pin must be 64 hex digits (SHA-256), got {0:?}")]
    BadPin(String),
    #[error("the keyring does not match the pinned SHA-256 (expected {expected}, got {actual}): refusing it")]
    PinMismatch { expected: String, actual: String },
}

/// Lower-case hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes.iter().flat_map(|b| [DIGITS[usize::from(b >> 4)] as char, DIGITS[usize::from(b & 15)] as char]).collect()
}

/// Parses a keyring pin: 64 hex digits (either case) → 32 bytes.
pub fn parse_pin(hex: &str) -> crate::Result<[u8; 32]> {
    let hex = hex.trim();
    let bad = || crate::Error::from(KeyringKind::BadPin(hex.chars().take(80).collect()));
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// One public key with its validity window (Unix seconds, inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyEntry {
    pub key_id: KeyId,
    pub key: VerifyingKey,
    pub not_before: u64,
    pub not_after: Option<u64>,
}

impl PublicKeyEntry {
    /// Whether tickets signed with this key are accepted at time `now`.
    pub fn is_active(&self, now: u64) -> bool {
        now >= self.not_before && self.not_after.is_none_or(|end| now <= end)
    }
}

#[derive(Serialize, Deserialize)]
struct KeyringJson {
    format: String,
    keys: Vec<KeyJson>,
}

#[derive(Serialize, Deserialize)]
struct KeyJson {
    kid: KeyId,
    alg: String,
    public_key: String,
    not_before: u64,
    #[serde(default)]
    not_after: Option<u64>,
}

/// The public keys a scanner trusts, by key id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    keys: BTreeMap<KeyId, PublicKeyEntry>,
}

impl Keyring {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, key_id: KeyId) -> Option<&PublicKeyEntry> {
        self.keys.get(&key_id)
    }

    pub fn entries(&self) -> impl Iterator<Item = &PublicKeyEntry> {
        self.keys.values()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds a key; a key id can never be reused for a different key.
    pub fn insert(&mut self, entry: PublicKeyEntry) -> crate::Result<()> {
        if entry.not_after.is_some_and(|end| end < entry.not_before) {
            return Err(KeyringKind::Window(entry.key_id).into());
        }
        if self.keys.contains_key(&entry.key_id) {
            return Err(KeyringKind::DuplicateKeyId(entry.key_id).into());
        }
        self.keys.insert(entry.key_id, entry);
        Ok(())
    }

    /// Ends a key's window at `not_after` (used when rotating it out). Returns false if the key is unknown.
    pub fn retire(&mut self, key_id: KeyId, not_after: u64) -> bool {
        match self.keys.get_mut(&key_id) {
            Some(entry) => {
                entry.not_after = Some(not_after.max(entry.not_before));
                true
            }
            None => false,
        }
    }

    /// The key new tickets should be signed with: the active key with the latest `not_before`.
    pub fn newest_active(&self, now: u64) -> Option<&PublicKeyEntry> {
        self.keys.values().filter(|k| k.is_active(now)).max_by_key(|k| (k.not_before, k.key_id))
    }

    /// The next unused key id.
    pub fn next_key_id(&self) -> crate::Result<KeyId> {
        match self.keys.keys().next_back() {
            None => Ok(KeyId(1)),
            Some(KeyId(n)) => n.checked_add(1).map(KeyId).ok_or(KeyringKind::Exhausted.into()),
        }
    }

    pub fn from_json(json: &str) -> crate::Result<Self> {
        let parsed: KeyringJson = serde_json::from_str(json).map_err(KeyringKind::Json)?;
        if parsed.format != KEYRING_FORMAT {
            return Err(KeyringKind::Format(parsed.format).into());
        }
        let mut ring = Keyring::new();
        for k in parsed.keys {
            if k.alg != "Ed25519" {
                return Err(KeyringKind::Format(k.alg).into());
            }
            let bytes: [u8; 32] =
                B64.decode(&k.public_key).ok().and_then(|b| b.try_into().ok()).ok_or(KeyringKind::Base64(k.kid))?;
            let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyringKind::PublicKey(k.kid))?;
            // A weak (small-order) key would let anyone forge signatures that verify under it.
            if key.is_weak() {
                return Err(KeyringKind::PublicKey(k.kid).into());
            }
            ring.insert(PublicKeyEntry { key_id: k.kid, key, not_before: k.not_before, not_after: k.not_after })?;
        }
        Ok(ring)
    }

    /// The keyring's pin: SHA-256 of its canonical JSON ([`Self::to_json`], exactly the bytes the issuer
    /// serves at `/v1/scanner/keyring`, so `sha256sum` of that response gives the same value). Setup links
    /// carry it; a device refuses a fetched keyring whose pin differs.
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(self.to_json().as_bytes()).into()
    }

    /// [`Self::sha256`] as 64 lower-case hex digits.
    pub fn sha256_hex(&self) -> String {
        to_hex(&self.sha256())
    }

    /// Parses a fetched keyring and checks it against a pin (64 hex digits, from a setup link or
    /// `scanner init --keyring-sha256`): the keyring's canonical form must hash to it.
    pub fn from_json_pinned(json: &str, pin_hex: &str) -> crate::Result<Self> {
        let expected = parse_pin(pin_hex)?;
        let ring = Self::from_json(json)?;
        let actual = ring.sha256();
        if actual != expected {
            return Err(KeyringKind::PinMismatch { expected: to_hex(&expected), actual: to_hex(&actual) }.into());
        }
        Ok(ring)
    }

    pub fn to_json(&self) -> String {
        let json = KeyringJson {
            format: KEYRING_FORMAT.to_owned(),
            keys: self
                .keys
                .values()
                .map(|k| KeyJson {
                    kid: k.key_id,
                    alg: "Ed25519".to_owned(),
                    public_key: B64.encode(k.key.as_bytes()),
                    not_before: k.not_before,
                    not_after: k.not_after,
                })
                .collect(),
        };
        serde_json::to_string_pretty(&json).unwrap_or_default()
    }
}

/// The issuer's private signing key. Its `Debug` never prints the secret.
pub struct IssuerKey {
    key_id: KeyId,
    signing: SigningKey,
}

#[derive(Serialize, Deserialize)]
struct PrivateKeyJson {
    format: String,
    kid: KeyId,
    seed: String,
}

impl std::fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl IssuerKey {
    /// A new key from the operating system's CSPRNG.
    pub fn generate(key_id: KeyId) -> Self {
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        let key = Self::from_seed(key_id, seed);
        zeroize::Zeroize::zeroize(&mut seed);
        key
    }

    /// A key from a fixed 32-byte seed: for test vectors and tests only.
    pub fn from_seed(key_id: KeyId, seed: [u8; 32]) -> Self {
        Self { key_id, signing: SigningKey::from_bytes(&seed) }
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The public half, ready for the keyring.
    pub fn public_entry(&self, not_before: u64, not_after: Option<u64>) -> PublicKeyEntry {
        PublicKeyEntry { key_id: self.key_id, key: self.verifying_key(), not_before, not_after }
    }

    /// Signs a ticket, refusing one that names another key (it could never verify).
    pub fn sign_ticket(&self, ticket: &Ticket) -> crate::Result<SignedTicket> {
        if ticket.key_id != self.key_id {
            return Err(KeyringKind::KeyMismatch { ticket: ticket.key_id, key: self.key_id }.into());
        }
        Ok(ticket.sign_with(&self.signing))
    }

    /// Signs a domain-separated message. Crate-internal so that nothing outside can sign raw bytes that
    /// might collide with another message type.
    pub(crate) fn sign_raw(&self, msg: &[u8]) -> ed25519_dalek::Signature {
        use ed25519_dalek::Signer;
        self.signing.sign(msg)
    }

    /// The private key file's content. Write it with mode 0600 and keep it out of git.
    pub fn to_private_json(&self) -> String {
        let json = PrivateKeyJson {
            format: PRIVATE_KEY_FORMAT.to_owned(),
            kid: self.key_id,
            seed: B64.encode(self.signing.to_bytes()),
        };
        serde_json::to_string(&json).unwrap_or_default()
    }

    pub fn from_private_json(json: &str) -> crate::Result<Self> {
        let parsed: PrivateKeyJson = serde_json::from_str(json).map_err(KeyringKind::Json)?;
        if parsed.format != PRIVATE_KEY_FORMAT {
            return Err(KeyringKind::Format(parsed.format).into());
        }
        let seed: [u8; 32] =
            B64.decode(&parsed.seed).ok().and_then(|b| b.try_into().ok()).ok_or(KeyringKind::Base64(parsed.kid))?;
        Ok(Self::from_seed(parsed.kid, seed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyring_json_round_trip_and_rotation() {
        let old = IssuerKey::from_seed(KeyId(1), [1; 32]);
        let new = IssuerKey::from_seed(KeyId(2), [2; 32]);
        let mut ring = Keyring::new();
        ring.insert(old.public_entry(100, None)).unwrap();
        assert_eq!(ring.next_key_id().unwrap(), KeyId(2));
        ring.insert(new.public_entry(200, None)).unwrap();
        assert!(ring.retire(KeyId(1), 300));
        let back = Keyring::from_json(&ring.to_json()).unwrap();
        assert_eq!(back, ring);
        assert_eq!(back.newest_active(250).unwrap().key_id, KeyId(2));
        assert_eq!(back.newest_active(150).unwrap().key_id, KeyId(1));
        assert!(back.get(KeyId(1)).unwrap().is_active(300));
        assert!(!back.get(KeyId(1)).unwrap().is_active(301));
        assert!(matches!(
            ring.insert(old.public_entry(0, None)),
            Err(crate::Error::Keyring(KeyringKind::DuplicateKeyId(_)))
        ));
    }

    #[test]
    fn private_key_round_trip_and_debug_hides_secret() {
        let key = IssuerKey::generate(KeyId(3));
        let json = key.to_private_json();
        let back = IssuerKey::from_private_json(&json).unwrap();
        assert_eq!(back.verifying_key(), key.verifying_key());
        assert_eq!(back.key_id(), KeyId(3));
        let seed = B64.encode(key.signing.to_bytes());
        assert!(!format!("{key:?}").contains(&seed));
    }

    #[test]
    fn keyring_pin_is_the_sha256_of_the_canonical_json() {
        let mut ring = Keyring::new();
        ring.insert(IssuerKey::from_seed(KeyId(1), [1; 32]).public_entry(100, None)).unwrap();
        let json = ring.to_json();
        let pin = ring.sha256_hex();
        assert_eq!(pin, to_hex(&Sha256::digest(json.as_bytes())));
        assert_eq!(Keyring::from_json_pinned(&json, &pin).unwrap(), ring);
        assert_eq!(Keyring::from_json_pinned(&json, &pin.to_uppercase()).unwrap(), ring);
        // Another key, or the same key with another window, is another keyring.
        let mut other = ring.clone();
        other.retire(KeyId(1), 200);
        assert!(matches!(
            Keyring::from_json_pinned(&other.to_json(), &pin),
            Err(crate::Error::Keyring(KeyringKind::PinMismatch { .. }))
        ));
        assert!(matches!(Keyring::from_json_pinned(&json, "abc"), Err(crate::Error::Keyring(KeyringKind::BadPin(_)))));
        assert!(matches!(
            Keyring::from_json_pinned(&json, &"g".repeat(64)),
            Err(crate::Error::Keyring(KeyringKind::BadPin(_)))
        ));
    }

    #[test]
    fn bad_keyrings_are_rejected() {
        assert!(Keyring::from_json("{").is_err());
        assert!(matches!(
            Keyring::from_json(r#"{"format":"other","keys":[]}"#),
            Err(crate::Error::Keyring(KeyringKind::Format(_)))
        ));
        let short = format!(
            r#"{{"format":"{KEYRING_FORMAT}","keys":[{{"kid":1,"alg":"Ed25519","public_key":"AAAA","not_before":0}}]}}"#
        );
        assert!(matches!(Keyring::from_json(&short), Err(crate::Error::Keyring(KeyringKind::Base64(_)))));
        // The identity point is a weak key: it must never be accepted.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = format!(
            r#"{{"format":"{KEYRING_FORMAT}","keys":[{{"kid":1,"alg":"Ed25519","public_key":"{}","not_before":0}}]}}"#,
            B64.encode(identity)
        );
        assert!(matches!(Keyring::from_json(&weak), Err(crate::Error::Keyring(KeyringKind::PublicKey(_)))));
    }
}
