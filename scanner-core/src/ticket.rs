//! The ticket: a compact binary payload signed with Ed25519, carried in a QR code as `TK1:` + base45.
//!
//! Byte layout (version 1, all integers big-endian; docs/ticket-format.md is the normative spec):
//!
//! | offset | size | field                                                        |
//! |--------|------|--------------------------------------------------------------|
//! | 0      | 1    | format version = 1                                           |
//! | 1      | 1    | flags: bit0 valid_from present, bit1 valid_until present,    |
//! |        |      | bit2 re-entry allowed, bit3 payment due at the door;         |
//! |        |      | bits 4–7 must be zero                                        |
//! | 2      | 2    | key id                                                       |
//! | 4      | 4    | event id                                                     |
//! | 8      | 12   | ticket id (96 random bits)                                   |
//! | 20     | 1    | ticket type (index within the event)                         |
//! | 21     | 2    | add-ons bitmask (bit i = add-on i of the event)              |
//! | 23     | 0/4  | valid_from, Unix seconds (if flag bit0)                      |
//! | ..     | 0/4  | valid_until, Unix seconds (if flag bit1)                     |
//! | ..     | 64   | Ed25519 signature over `DOMAIN_TICKET` ‖ all bytes before it |

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::base45;

/// The current (and only) payload format version.
pub const FORMAT_VERSION: u8 = 1;
/// Prefix of a ticket's QR text. All characters are in the QR alphanumeric set, so the whole text encodes in
/// alphanumeric mode; the digit is the format version so a future format gets its own prefix.
pub const QR_PREFIX: &str = "TK1:";
/// Domain separation for ticket signatures: a signature over a ticket can never be replayed as a signature
/// over a revocation list (or anything else signed with the same key), whose domain string differs.
pub const DOMAIN_TICKET: &[u8] = b"offline-tickets/v1/ticket\0";

const FLAG_VALID_FROM: u8 = 1 << 0;
const FLAG_VALID_UNTIL: u8 = 1 << 1;
const FLAG_REENTRY: u8 = 1 << 2;
const FLAG_PAYMENT_DUE: u8 = 1 << 3;
const KNOWN_FLAGS: u8 = FLAG_VALID_FROM | FLAG_VALID_UNTIL | FLAG_REENTRY | FLAG_PAYMENT_DUE;

const FIXED_LEN: usize = 23;
const SIGNATURE_LEN: usize = 64;
/// The longest possible signed ticket in bytes.
pub const MAX_SIGNED_LEN: usize = FIXED_LEN + 8 + SIGNATURE_LEN;
/// The longest QR text that can possibly be a ticket; longer input is refused before any work is done, which
/// bounds memory and time on hostile input.
pub const MAX_QR_TEXT_LEN: usize = QR_PREFIX.len() + MAX_SIGNED_LEN.div_ceil(2) * 3;

/// Identifies a signing key within an issuer's keyring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub u16);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// 96 random bits naming one ticket. Knowing it is what lets someone present the ticket, so it is treated as
/// a secret: revocation lists and manifests only ever carry hashes of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TicketId(pub [u8; 12]);

impl TicketId {
    /// A fresh id from the operating system's CSPRNG.
    pub fn random() -> Self {
        let mut bytes = [0u8; 12];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 24 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 12];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(bytes))
    }
}

// Debug shows only a short prefix: ticket ids are bearer secrets and must not end up whole in logs.
impl fmt::Debug for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TicketId({}…)", &self.to_hex()[..6])
    }
}

/// How often a ticket admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryPolicy {
    /// Admits once.
    SingleEntry,
    /// May re-enter after an exit scan.
    ReEntry,
}

/// The signed content of a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ticket {
    pub key_id: KeyId,
    pub event_id: u32,
    pub ticket_id: TicketId,
    /// Index of the ticket type within the event's catalog.
    pub ticket_type: u8,
    /// Bit i set = add-on i of the event's catalog is included.
    pub addons: u16,
    pub policy: EntryPolicy,
    /// The ticket is not paid yet: its price is collected at the door before its first entry (flag bit 3).
    /// Signed, so a holder cannot strip it; the amount comes from the attendee manifest.
    pub payment_due: bool,
    /// Unix seconds before which the ticket does not admit.
    pub valid_from: Option<u32>,
    /// Unix seconds after which the ticket no longer admits.
    pub valid_until: Option<u32>,
}

impl Ticket {
    /// The unsigned payload bytes (the layout in the module docs, without the signature).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut flags = 0;
        if self.valid_from.is_some() {
            flags |= FLAG_VALID_FROM;
        }
        if self.valid_until.is_some() {
            flags |= FLAG_VALID_UNTIL;
        }
        if self.policy == EntryPolicy::ReEntry {
            flags |= FLAG_REENTRY;
        }
        if self.payment_due {
            flags |= FLAG_PAYMENT_DUE;
        }
        let mut out = Vec::with_capacity(MAX_SIGNED_LEN);
        out.push(FORMAT_VERSION);
        out.push(flags);
        out.extend_from_slice(&self.key_id.0.to_be_bytes());
        out.extend_from_slice(&self.event_id.to_be_bytes());
        out.extend_from_slice(&self.ticket_id.0);
        out.push(self.ticket_type);
        out.extend_from_slice(&self.addons.to_be_bytes());
        for t in [self.valid_from, self.valid_until].into_iter().flatten() {
            out.extend_from_slice(&t.to_be_bytes());
        }
        out
    }

    /// Parses unsigned payload bytes, strictly: every byte string parses to at most one ticket, and
    /// re-encoding the result gives back the same bytes.
    pub fn from_bytes(bytes: &[u8]) -> crate::Result<Self> {
        Ok(Self::parse(bytes)?)
    }

    fn parse(bytes: &[u8]) -> Result<Self, FormatKind> {
        let malformed = FormatKind::Malformed;
        let (&version, rest) = bytes.split_first().ok_or(malformed("empty payload"))?;
        if version != FORMAT_VERSION {
            return Err(FormatKind::UnsupportedVersion(version));
        }
        if rest.len() < FIXED_LEN - 1 {
            return Err(malformed("payload too short"));
        }
        let flags = rest[0];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(malformed("unknown flag bits set"));
        }
        let mut expected = FIXED_LEN;
        for flag in [FLAG_VALID_FROM, FLAG_VALID_UNTIL] {
            if flags & flag != 0 {
                expected += 4;
            }
        }
        if bytes.len() != expected {
            return Err(malformed("payload length does not match its flags"));
        }
        let u16_at = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let mut ticket_id = [0u8; 12];
        ticket_id.copy_from_slice(&bytes[8..20]);
        let mut at = FIXED_LEN;
        let mut optional_time = |flag: u8| {
            (flags & flag != 0).then(|| {
                let t = u32_at(at);
                at += 4;
                t
            })
        };
        let valid_from = optional_time(FLAG_VALID_FROM);
        let valid_until = optional_time(FLAG_VALID_UNTIL);
        Ok(Ticket {
            key_id: KeyId(u16_at(2)),
            event_id: u32_at(4),
            ticket_id: TicketId(ticket_id),
            ticket_type: bytes[20],
            addons: u16_at(21),
            policy: if flags & FLAG_REENTRY != 0 { EntryPolicy::ReEntry } else { EntryPolicy::SingleEntry },
            payment_due: flags & FLAG_PAYMENT_DUE != 0,
            valid_from,
            valid_until,
        })
    }

    /// The exact message that is signed: the domain string followed by the payload bytes.
    pub fn signing_input(payload: &[u8]) -> Vec<u8> {
        let mut msg = Vec::with_capacity(DOMAIN_TICKET.len() + payload.len());
        msg.extend_from_slice(DOMAIN_TICKET);
        msg.extend_from_slice(payload);
        msg
    }

    /// Signs the ticket. The caller is responsible for `self.key_id` naming `key` in the keyring
    /// ([`crate::keyring::IssuerKey::sign_ticket`] checks that).
    pub fn sign_with(&self, key: &SigningKey) -> SignedTicket {
        let signature = key.sign(&Self::signing_input(&self.to_bytes()));
        SignedTicket { ticket: self.clone(), signature }
    }
}

/// Why bytes or a text are not a well-formed ticket (parsing only; `verify::Refusal` is what a steward is
/// told, and `From` turns one into the other).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatKind {
    #[error("the text does not start with {QR_PREFIX}")]
    NotATicket,
    #[error("{0}")]
    Malformed(&'static str),
    #[error("{0}")]
    Base45(crate::base45::Base45Kind),
    #[error("format version {0} is not supported")]
    UnsupportedVersion(u8),
}

/// A ticket with its signature, exactly as carried in the QR code. Holding one says nothing about validity:
/// only [`crate::verify`] decides that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTicket {
    pub ticket: Ticket,
    pub signature: Signature,
}

impl SignedTicket {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.ticket.to_bytes();
        out.extend_from_slice(&self.signature.to_bytes());
        out
    }

    /// Splits signed bytes into ticket and signature, parsing the ticket strictly. Does not verify.
    pub fn from_bytes(bytes: &[u8]) -> crate::Result<Self> {
        Ok(Self::parse(bytes)?)
    }

    fn parse(bytes: &[u8]) -> Result<Self, FormatKind> {
        if bytes.len() > MAX_SIGNED_LEN {
            return Err(FormatKind::Malformed("ticket too long"));
        }
        let split = bytes.len().checked_sub(SIGNATURE_LEN).ok_or(FormatKind::Malformed("ticket too short"))?;
        let (payload, sig) = bytes.split_at(split);
        let ticket = Ticket::parse(payload)?;
        let sig: [u8; SIGNATURE_LEN] =
            sig.try_into().map_err(|_| FormatKind::Malformed("signature has the wrong length"))?;
        Ok(Self { ticket, signature: Signature::from_bytes(&sig) })
    }

    /// The text to put in the QR code.
    pub fn to_qr_text(&self) -> String {
        format!("{QR_PREFIX}{}", base45::encode(&self.to_bytes()))
    }

    /// Parses QR text. Refuses anything that is not a well-formed ticket before doing any expensive work.
    pub fn from_qr_text(text: &str) -> crate::Result<Self> {
        Ok(Self::parse_qr_text(text)?)
    }

    /// [`Self::from_qr_text`], failing with the bare format kind: what `verify::Refusal` is made from.
    pub(crate) fn parse_qr_text(text: &str) -> Result<Self, FormatKind> {
        if text.len() > MAX_QR_TEXT_LEN {
            return Err(FormatKind::Malformed("text is too long to be a ticket"));
        }
        let body = text.strip_prefix(QR_PREFIX).ok_or(FormatKind::NotATicket)?;
        let bytes = base45::decode_kind(body).map_err(FormatKind::Base45)?;
        Self::parse(&bytes)
    }

    /// Checks the signature with `verify_strict`, which also rejects non-canonical and small-order
    /// encodings, so there is exactly one valid signature encoding per ticket and key.
    pub fn signature_is_valid(&self, key: &VerifyingKey) -> bool {
        key.verify_strict(&Ticket::signing_input(&self.ticket.to_bytes()), &self.signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(valid: bool) -> Ticket {
        Ticket {
            key_id: KeyId(7),
            event_id: 42,
            ticket_id: TicketId([9; 12]),
            ticket_type: 1,
            addons: 0b101,
            policy: EntryPolicy::SingleEntry,
            payment_due: false,
            valid_from: valid.then_some(1_700_000_000),
            valid_until: valid.then_some(1_800_000_000),
        }
    }

    #[test]
    fn payload_round_trip_and_length() {
        for valid in [false, true] {
            let t = sample(valid);
            let bytes = t.to_bytes();
            assert_eq!(bytes.len(), if valid { 31 } else { 23 });
            assert_eq!(Ticket::from_bytes(&bytes).unwrap(), t);
        }
    }

    #[test]
    fn unknown_flags_and_versions_are_refused() {
        let mut bytes = sample(false).to_bytes();
        for bit in 4..8 {
            bytes[1] = 1 << bit;
            assert!(
                matches!(Ticket::from_bytes(&bytes), Err(crate::Error::Format(FormatKind::Malformed(_)))),
                "flag bit {bit}"
            );
        }
        bytes[1] = 0;
        bytes[1] = 0;
        bytes[0] = 2;
        assert!(matches!(Ticket::from_bytes(&bytes), Err(crate::Error::Format(FormatKind::UnsupportedVersion(2)))));
    }

    #[test]
    fn payment_due_is_flag_bit_3_and_round_trips() {
        let t = Ticket { payment_due: true, ..sample(true) };
        let bytes = t.to_bytes();
        assert_eq!(bytes[1], 0b1011);
        assert_eq!(Ticket::from_bytes(&bytes).unwrap(), t);
        assert!(!Ticket::from_bytes(&sample(true).to_bytes()).unwrap().payment_due);
    }

    #[test]
    fn ticket_id_hex_round_trip_and_debug_hides_it() {
        let id = TicketId::random();
        assert_eq!(TicketId::from_hex(&id.to_hex()), Some(id));
        assert!(!format!("{id:?}").contains(&id.to_hex()));
        assert_eq!(TicketId::from_hex("zz"), None);
        assert_eq!(TicketId::from_hex("é0000000000000000000000"), None);
    }
}
