//! The attendee manifest: what a scanner knows about each ticket beyond its QR code (entitlements, the
//! holder's name, and for a ticket paid at the door the amount to collect), without a lost scanner phone revealing any name to someone who does not hold the QR code.
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
pub enum ManifestKind {
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
    #[error("amount due is not a positive amount in a three-letter ISO 4217 currency")]
    Money,
}

/// An amount of money: minor units (cents for EUR) of an ISO 4217 currency, as the issuer prices tickets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct Money {
    /// Minor units of `currency` (4900 = 49.00 EUR).
    pub minor: u64,
    /// Three upper-case ASCII letters, e.g. `EUR`.
    pub currency: String,
}

/// Currencies whose minor unit is not a hundredth (ISO 4217): `(code, decimals)`. Every other currency
/// has two decimals.
const CURRENCY_DECIMALS: &[(&str, u32)] = &[
    ("BHD", 3),
    ("BIF", 0),
    ("CLP", 0),
    ("DJF", 0),
    ("GNF", 0),
    ("IQD", 3),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KMF", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("LYD", 3),
    ("OMR", 3),
    ("PYG", 0),
    ("RWF", 0),
    ("TND", 3),
    ("UGX", 0),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
];

impl Money {
    /// A valid amount: positive, in a three-letter upper-case currency code.
    pub fn new(minor: u64, currency: &str) -> crate::Result<Self> {
        let money = Self { minor, currency: currency.to_owned() };
        money.check()?;
        Ok(money)
    }

    fn check(&self) -> Result<(), ManifestKind> {
        if self.minor == 0 || self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ManifestKind::Money);
        }
        Ok(())
    }

    /// How many decimals the currency's minor unit has (2 unless ISO 4217 says otherwise).
    pub fn decimals(currency: &str) -> u32 {
        CURRENCY_DECIMALS.iter().find(|(c, _)| *c == currency).map_or(2, |&(_, d)| d)
    }

    /// The amount for people: `49.00 EUR`, `5000 JPY`.
    pub fn format(minor: u64, currency: &str) -> String {
        let decimals = Self::decimals(currency);
        if decimals == 0 {
            return format!("{minor} {currency}");
        }
        let scale = 10u64.pow(decimals);
        format!("{}.{:0width$} {currency}", minor / scale, minor % scale, width = decimals as usize)
    }

    /// The form kept in the redemption log beside a paid admission: `<minor units> <currency>`, e.g.
    /// `4900 EUR` (see docs/ticket-format.md §7).
    pub fn to_note(&self) -> String {
        format!("{} {}", self.minor, self.currency)
    }

    /// Parses [`Self::to_note`]'s form strictly; `None` for anything else.
    pub fn from_note(note: &str) -> Option<Self> {
        let (minor, currency) = note.split_once(' ')?;
        if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) || (minor.len() > 1 && minor.starts_with('0'))
        {
            return None;
        }
        Self::new(minor.parse().ok()?, currency).ok()
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&Self::format(self.minor, &self.currency))
    }
}

// Serialized with its text for people (`"text": "49.00 EUR"`), so no client formats money itself; the text
// is ignored when reading.
impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("Money", 3)?;
        st.serialize_field("minor", &self.minor)?;
        st.serialize_field("currency", &self.currency)?;
        st.serialize_field("text", &self.to_string())?;
        st.end()
    }
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
    /// For a ticket whose payment is due at the door (ticket flag bit 3): the amount to collect, i.e. the
    /// price of the ticket and its add-ons. Absent otherwise (and in manifests from before this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<Money>,
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
) -> crate::Result<SealedEntry> {
    if entry.holder_name.len() > MAX_HOLDER_NAME_LEN {
        return Err(ManifestKind::NameTooLong.into());
    }
    if let Some(due) = &entry.due {
        due.check()?;
    }
    let lookup = lookup_hash(ticket_id);
    let mut key = entry_key(ticket_id, &lookup);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key));
    zeroize::Zeroize::zeroize(&mut key);
    let plaintext = serde_json::to_vec(entry).map_err(|e| ManifestKind::Json(e.to_string()))?;
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: &plaintext, aad: &aad(event_id, &lookup) })
        .map_err(|_| ManifestKind::Entry("encryption failed"))?;
    Ok(SealedEntry { lookup: B64.encode(lookup), nonce: B64.encode(nonce), sealed: B64.encode(sealed) })
}

/// Scanner side: opens an entry with the ticket id just read from a QR code.
pub fn open_entry(event_id: u32, ticket_id: &TicketId, sealed: &SealedEntry) -> crate::Result<ManifestEntry> {
    let lookup = lookup_hash(ticket_id);
    if B64.decode(&sealed.lookup).ok().as_deref() != Some(&lookup[..]) {
        return Err(ManifestKind::Open.into());
    }
    let nonce: [u8; 12] = B64
        .decode(&sealed.nonce)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or(ManifestKind::Entry("nonce is not 12 base64url bytes"))?;
    let ciphertext = B64.decode(&sealed.sealed).map_err(|_| ManifestKind::Entry("sealed is not base64url"))?;
    let mut key = entry_key(ticket_id, &lookup);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key));
    zeroize::Zeroize::zeroize(&mut key);
    let plaintext = cipher
        .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ciphertext, aad: &aad(event_id, &lookup) })
        .map_err(|_| ManifestKind::Open)?;
    let entry: ManifestEntry = serde_json::from_slice(&plaintext).map_err(|e| ManifestKind::Json(e.to_string()))?;
    if let Some(due) = &entry.due {
        due.check()?;
    }
    Ok(entry)
}

impl Manifest {
    pub fn new(event_id: u32, generated_at: u64) -> Self {
        Self { format: MANIFEST_FORMAT.to_owned(), event_id, generated_at, entries: Vec::new() }
    }

    pub fn from_json(json: &str) -> crate::Result<Self> {
        let m: Self = serde_json::from_str(json).map_err(|e| ManifestKind::Json(e.to_string()))?;
        if m.format != MANIFEST_FORMAT {
            return Err(ManifestKind::Format(m.format).into());
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
    pub fn lookup(&self, ticket_id: &TicketId) -> crate::Result<Option<ManifestEntry>> {
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
        ManifestEntry { ticket_type: 1, addons: 0b10, holder_name: "Ada <Lovelace>".to_owned(), due: None }
    }

    #[test]
    fn amount_due_round_trips_and_is_checked() {
        let id = TicketId([3; 12]);
        let due = Money::new(4_900, "EUR").unwrap();
        let e = ManifestEntry { due: Some(due.clone()), ..entry() };
        let sealed = seal_entry(42, &id, &e, [1; 12]).unwrap();
        assert_eq!(open_entry(42, &id, &sealed).unwrap().due, Some(due.clone()));
        // An entry without the field (older issuers) opens with no amount.
        let old = seal_entry(42, &id, &entry(), [2; 12]).unwrap();
        assert_eq!(open_entry(42, &id, &old).unwrap().due, None);
        assert!(matches!(Money::new(0, "EUR"), Err(crate::Error::Manifest(ManifestKind::Money))));
        assert!(matches!(Money::new(1, "eur"), Err(crate::Error::Manifest(ManifestKind::Money))));
        let bad = ManifestEntry { due: Some(Money { minor: 5, currency: "EURO".into() }), ..entry() };
        assert!(matches!(seal_entry(42, &id, &bad, [0; 12]), Err(crate::Error::Manifest(ManifestKind::Money))));
        assert_eq!(due.to_string(), "49.00 EUR");
        assert_eq!(Money::new(5_000, "JPY").unwrap().to_string(), "5000 JPY");
        assert_eq!(Money::new(1_005, "KWD").unwrap().to_string(), "1.005 KWD");
        assert_eq!(Money::new(7, "USD").unwrap().to_string(), "0.07 USD");
        assert_eq!(Money::from_note(&due.to_note()), Some(due));
        for bad in ["", "4900", "4900 eur", "04900 EUR", "-1 EUR", "0 EUR", "4900  EUR", "1e3 EUR"] {
            assert_eq!(Money::from_note(bad), None, "{bad:?}");
        }
        let json = serde_json::to_value(Money::new(4_900, "EUR").unwrap()).unwrap();
        assert_eq!(json["text"], "49.00 EUR");
        assert_eq!(serde_json::from_value::<Money>(json).unwrap(), Money::new(4_900, "EUR").unwrap());
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
        assert!(matches!(open_entry(43, &id, &sealed), Err(crate::Error::Manifest(ManifestKind::Open))));
        assert!(matches!(open_entry(42, &TicketId([9; 12]), &sealed), Err(crate::Error::Manifest(ManifestKind::Open))));
        let mut bytes = B64.decode(&sealed.sealed).unwrap();
        bytes[0] ^= 1;
        let tampered = SealedEntry { sealed: B64.encode(bytes), ..sealed.clone() };
        assert!(matches!(open_entry(42, &id, &tampered), Err(crate::Error::Manifest(ManifestKind::Open))));
        let bad_nonce = SealedEntry { nonce: "x".into(), ..sealed };
        assert!(matches!(open_entry(42, &id, &bad_nonce), Err(crate::Error::Manifest(ManifestKind::Entry(_)))));
        let long = ManifestEntry { holder_name: "x".repeat(MAX_HOLDER_NAME_LEN + 1), ..entry() };
        assert!(matches!(seal_entry(42, &id, &long, [0; 12]), Err(crate::Error::Manifest(ManifestKind::NameTooLong))));
        assert!(matches!(
            Manifest::from_json(r#"{"format":"x","event_id":1,"generated_at":0,"entries":[]}"#),
            Err(crate::Error::Manifest(ManifestKind::Format(_)))
        ));
    }
}
