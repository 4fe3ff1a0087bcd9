//! One scan as an immutable, fixed-size binary record, and the identifiers it is built from.
//!
//! Record layout (version 1, 32 bytes, integers big-endian):
//!
//! | offset | size | field                                                                 |
//! |--------|------|-----------------------------------------------------------------------|
//! | 0      | 1    | record version = 1                                                    |
//! | 1      | 12   | ticket reference ([`TicketRef`]; all zero when no ticket was readable) |
//! | 13     | 8    | hybrid logical clock of the scanning device ([`Hlc`])                  |
//! | 21     | 4    | wall-clock time, Unix seconds, as the device's clock said              |
//! | 25     | 2    | gate: index into the scanning device's gate table                      |
//! | 27     | 1    | flags: bit0 exit scan, bit1 ticket allows re-entry, bit2 decided by    |
//! |        |      | the edge (online); others zero                                        |
//! | 28     | 1    | outcome: 0 admitted, 1 admitted by operator override, 2 already used,  |
//! |        |      | 3 refused, 4 admitted after payment at the door (entry only),          |
//! |        |      | 5 payment due (not admitted; entry only),                              |
//! |        |      | 6 check-in undone by a supervisor (entry only; see [`Outcome::Undone`]) |
//! | 29     | 1    | refusal code when refused ([`RefusalCode`]), else 0                    |
//! | 30     | 1    | ticket type (index within the event), 0 when unknown                   |
//! | 31     | 1    | what was redeemed: 0 the ticket itself (entry/exit); 1 + i add-on i    |
//! |        |      | redeemed on its own, once (a voucher; entry only)                      |
//!
//! The device is not in the record: records live in their device's own part of the log.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::ticket::TicketId;
use crate::verify::Refusal;

/// Size of one encoded [`ScanRecord`].
pub const RECORD_LEN: usize = 32;
/// The current record layout version.
pub const RECORD_VERSION: u8 = 1;
/// Domain separation for [`TicketRef`].
pub const DOMAIN_SCAN_REF: &[u8] = b"offline-tickets/v1/scan-ref\0";

const FLAG_EXIT: u8 = 1 << 0;
const FLAG_REENTRY: u8 = 1 << 1;
const FLAG_EDGE: u8 = 1 << 2;
const KNOWN_FLAGS: u8 = FLAG_EXIT | FLAG_REENTRY | FLAG_EDGE;

/// Why a byte string is not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordKind {
    #[error("scan record has {0} bytes, expected {RECORD_LEN}")]
    Length(usize),
    #[error("scan record version {0} is not supported")]
    Version(u8),
    #[error("scan record has unknown flag bits {0:#04x}")]
    Flags(u8),
    #[error("scan record has unknown outcome {0}")]
    Outcome(u8),
    #[error("scan record has unknown refusal code {0}")]
    RefusalCode(u8),
    #[error("scan record of a payment at the door is not an entry")]
    PaymentNotEntry,
    #[error("scan record of an undo or an add-on redemption is not an entry")]
    NotEntry,
    #[error("scan record redeems add-on slot {0}, beyond the 16 add-ons a ticket can have")]
    AddonSlot(u8),
}

/// Names a ticket in the redemption log without revealing its id: the first 12 bytes of
/// SHA-256(`DOMAIN_SCAN_REF` ‖ ticket id). Ticket ids are bearer secrets; the log is synced to other
/// devices and the server, so it only ever holds this one-way reference. The issuer, which knows every id,
/// maps references back to tickets for the organizer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TicketRef(pub [u8; 12]);

impl TicketRef {
    /// The reference recorded when a scan carried no readable ticket.
    pub const NONE: TicketRef = TicketRef([0; 12]);

    pub fn of(ticket_id: &TicketId) -> Self {
        let digest = Sha256::new().chain_update(DOMAIN_SCAN_REF).chain_update(ticket_id.as_bytes()).finalize();
        let mut out = [0u8; 12];
        out.copy_from_slice(&digest[..12]);
        Self(out)
    }

    pub fn is_none(&self) -> bool {
        *self == Self::NONE
    }

    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Debug for TicketRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TicketRef({})", self.to_hex())
    }
}

impl Serialize for TicketRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A scanning device. Random 64 bits chosen when the device is set up; it is also the device's automerge
/// actor id, so every change in the device's part of the log can be checked to come from the device.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DeviceId(pub u64);

impl DeviceId {
    pub fn to_hex(&self) -> String {
        format!("{:016x}", self.0)
    }

    /// Parses exactly 16 lowercase hex digits (the form used as the device's key in the log).
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        u64::from_str_radix(text, 16).ok().map(Self)
    }

    pub fn actor_bytes(&self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.to_hex())
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for DeviceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for DeviceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_hex(&text).ok_or_else(|| serde::de::Error::custom("device id must be 16 lowercase hex digits"))
    }
}

/// A hybrid logical clock value: milliseconds since the Unix epoch in the high 48 bits, a counter in the
/// low 16. Strictly increasing on each device even when its wall clock jumps back, and never behind any
/// record the device has seen, so it orders a device's scans (and causally related scans across devices)
/// whatever the wall clocks say.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hlc(pub u64);

impl Hlc {
    pub fn millis(&self) -> u64 {
        self.0 >> 16
    }

    pub fn counter(&self) -> u16 {
        (self.0 & 0xffff) as u16
    }
}

/// A device's hybrid logical clock.
#[derive(Debug, Clone, Default)]
pub struct HybridClock {
    last: Hlc,
}

impl HybridClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next timestamp given the wall clock in Unix milliseconds. Never equal to or below a previous one.
    pub fn tick(&mut self, wall_ms: u64) -> Hlc {
        let physical = (wall_ms & 0xffff_ffff_ffff) << 16;
        self.last = Hlc(physical.max(self.last.0.saturating_add(1)));
        self.last
    }

    /// Moves the clock past a timestamp seen in another device's record.
    pub fn observe(&mut self, seen: Hlc) {
        self.last = self.last.max(seen);
    }

    pub fn last(&self) -> Hlc {
        self.last
    }
}

/// Entry or exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanKind {
    Entry,
    Exit,
}

/// A stable one-byte code for each [`Refusal`], plus the refusals that only the log can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    NotATicket = 1,
    Malformed = 2,
    UnsupportedVersion = 3,
    UnknownKey = 4,
    BadSignature = 5,
    KeyNotActive = 6,
    WrongEvent = 7,
    NotYetValid = 8,
    Expired = 9,
    Revoked = 10,
    /// The ticket is genuine but not valid at this gate (its check-in list excludes the ticket type, or
    /// the gate redeems an add-on the ticket does not include). Only the device's gate rules give it.
    WrongGate = 11,
}

impl RefusalCode {
    pub fn of(refusal: &Refusal) -> Self {
        match refusal {
            Refusal::NotATicket => Self::NotATicket,
            Refusal::Malformed(_) => Self::Malformed,
            Refusal::UnsupportedVersion(_) => Self::UnsupportedVersion,
            Refusal::UnknownKey(_) => Self::UnknownKey,
            Refusal::BadSignature => Self::BadSignature,
            Refusal::KeyNotActive(_) => Self::KeyNotActive,
            Refusal::WrongEvent { .. } => Self::WrongEvent,
            Refusal::NotYetValid { .. } => Self::NotYetValid,
            Refusal::Expired { .. } => Self::Expired,
            Refusal::Revoked => Self::Revoked,
            Refusal::WrongGate(_) => Self::WrongGate,
        }
    }

    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::NotATicket,
            2 => Self::Malformed,
            3 => Self::UnsupportedVersion,
            4 => Self::UnknownKey,
            5 => Self::BadSignature,
            6 => Self::KeyNotActive,
            7 => Self::WrongEvent,
            8 => Self::NotYetValid,
            9 => Self::Expired,
            10 => Self::Revoked,
            11 => Self::WrongGate,
            _ => return None,
        })
    }

    /// The same machine-readable code as [`Refusal::code`].
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NotATicket => "not_a_ticket",
            Self::Malformed => "malformed",
            Self::UnsupportedVersion => "unsupported_version",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::KeyNotActive => "key_not_active",
            Self::WrongEvent => "wrong_event",
            Self::NotYetValid => "not_yet_valid",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::WrongGate => "wrong_gate",
        }
    }
}

/// What the scan decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "reason")]
pub enum Outcome {
    /// Admitted (entry) or let out (exit).
    Admitted,
    /// Admitted by an operator who overrode the scanner's refusal; the reason is in the log beside it.
    AdmittedOverride,
    /// Refused because the log already shows the ticket inside or used.
    AlreadyUsed,
    Refused(RefusalCode),
    /// Admitted after the steward confirmed the holder paid at the door (a ticket flagged "payment due").
    /// The amount collected is kept beside the record in the log (see docs/ticket-format.md §7).
    PaidAtDoor,
    /// Not admitted: the ticket's payment is due at the door and has not been confirmed yet.
    PaymentDue,
    /// A supervisor undid the ticket's check-in (an append-only compensating record; the reason is kept
    /// beside it in the log). Every earlier pass of the same ticket and slot, in the log's total order
    /// (clock, then device), no longer counts: the ticket admits again.
    Undone,
}

impl Outcome {
    /// Whether the holder went through the gate.
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Admitted | Outcome::AdmittedOverride | Outcome::PaidAtDoor)
    }
}

/// Which path decided a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionPath {
    /// The edge Worker decided, online.
    Edge,
    /// This device decided by itself.
    Offline,
}

impl DecisionPath {
    pub fn of(record: &ScanRecord) -> Self {
        if record.decided_by_edge {
            Self::Edge
        } else {
            Self::Offline
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Edge => "edge",
            Self::Offline => "offline",
        }
    }
}

/// One scan, immutable once recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScanRecord {
    pub ticket: TicketRef,
    pub hlc: Hlc,
    /// Unix seconds by the device's wall clock (for people; ordering uses `hlc`).
    pub wall_time: u32,
    /// Index into the scanning device's gate table.
    pub gate: u16,
    pub kind: ScanKind,
    /// The ticket's policy allows re-entry after an exit.
    pub reentry: bool,
    pub outcome: Outcome,
    pub ticket_type: u8,
    /// The edge Worker decided this scan (online): on the edge's own records, and on the record a device
    /// keeps of an edge verdict it showed (its "mirror" of the edge's record). The report counts an
    /// edge-decided admission once however many of these copies it sees.
    pub decided_by_edge: bool,
    /// What was redeemed: `None` for the ticket itself, `Some(i)` for add-on `i` redeemed on its own
    /// (a voucher, once) at a gate whose rule redeems it.
    pub addon: Option<u8>,
}

/// The largest add-on index (a ticket's add-ons are a 16-bit set).
pub const MAX_ADDON: u8 = 15;

impl ScanRecord {
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        out[0] = RECORD_VERSION;
        out[1..13].copy_from_slice(&self.ticket.0);
        out[13..21].copy_from_slice(&self.hlc.0.to_be_bytes());
        out[21..25].copy_from_slice(&self.wall_time.to_be_bytes());
        out[25..27].copy_from_slice(&self.gate.to_be_bytes());
        let mut flags = 0;
        if self.kind == ScanKind::Exit {
            flags |= FLAG_EXIT;
        }
        if self.reentry {
            flags |= FLAG_REENTRY;
        }
        if self.decided_by_edge {
            flags |= FLAG_EDGE;
        }
        out[27] = flags;
        let (outcome, code) = match self.outcome {
            Outcome::Admitted => (0, 0),
            Outcome::AdmittedOverride => (1, 0),
            Outcome::AlreadyUsed => (2, 0),
            Outcome::Refused(code) => (3, code as u8),
            Outcome::PaidAtDoor => (4, 0),
            Outcome::PaymentDue => (5, 0),
            Outcome::Undone => (6, 0),
        };
        out[28] = outcome;
        out[29] = code;
        out[30] = self.ticket_type;
        out[31] = self.addon.map_or(0, |i| i.saturating_add(1));
        out
    }

    /// Parses one record strictly: every valid byte string decodes to one record that re-encodes to it.
    pub fn decode(bytes: &[u8]) -> crate::Result<Self> {
        Ok(Self::parse(bytes)?)
    }

    /// [`Self::decode`], failing with the bare record kind (the log names the device it came from).
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, RecordKind> {
        let b: &[u8; RECORD_LEN] = bytes.try_into().map_err(|_| RecordKind::Length(bytes.len()))?;
        if b[0] != RECORD_VERSION {
            return Err(RecordKind::Version(b[0]));
        }
        let flags = b[27];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(RecordKind::Flags(flags));
        }
        let outcome = match (b[28], b[29]) {
            (0, 0) => Outcome::Admitted,
            (1, 0) => Outcome::AdmittedOverride,
            (2, 0) => Outcome::AlreadyUsed,
            (3, code) => Outcome::Refused(RefusalCode::from_byte(code).ok_or(RecordKind::RefusalCode(code))?),
            (4, 0) => Outcome::PaidAtDoor,
            (5, 0) => Outcome::PaymentDue,
            (6, 0) => Outcome::Undone,
            (o, _) => return Err(RecordKind::Outcome(o)),
        };
        // Payment is taken on the way in; an exit never collects or asks for it.
        if matches!(outcome, Outcome::PaidAtDoor | Outcome::PaymentDue) && flags & FLAG_EXIT != 0 {
            return Err(RecordKind::PaymentNotEntry);
        }
        let addon = match b[31] {
            0 => None,
            slot if slot - 1 > MAX_ADDON => return Err(RecordKind::AddonSlot(slot - 1)),
            slot => Some(slot - 1),
        };
        // An undo compensates entries; a voucher is redeemed once, never "left".
        if (outcome == Outcome::Undone || addon.is_some()) && flags & FLAG_EXIT != 0 {
            return Err(RecordKind::NotEntry);
        }
        let mut ticket = [0u8; 12];
        ticket.copy_from_slice(&b[1..13]);
        let mut hlc = [0u8; 8];
        hlc.copy_from_slice(&b[13..21]);
        Ok(Self {
            ticket: TicketRef(ticket),
            hlc: Hlc(u64::from_be_bytes(hlc)),
            wall_time: u32::from_be_bytes([b[21], b[22], b[23], b[24]]),
            gate: u16::from_be_bytes([b[25], b[26]]),
            kind: if flags & FLAG_EXIT != 0 { ScanKind::Exit } else { ScanKind::Entry },
            reentry: flags & FLAG_REENTRY != 0,
            outcome,
            ticket_type: b[30],
            decided_by_edge: flags & FLAG_EDGE != 0,
            addon,
        })
    }

    /// Decodes a batch: a whole number of records back to back.
    pub fn decode_batch(bytes: &[u8]) -> crate::Result<Vec<Self>> {
        Ok(Self::parse_batch(bytes)?)
    }

    pub(crate) fn parse_batch(bytes: &[u8]) -> Result<Vec<Self>, RecordKind> {
        if !bytes.len().is_multiple_of(RECORD_LEN) {
            return Err(RecordKind::Length(bytes.len() % RECORD_LEN));
        }
        bytes.chunks_exact(RECORD_LEN).map(Self::parse).collect()
    }
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SSZ` (UTC), without a date library.
pub fn format_utc(secs: u64) -> String {
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z", s / 3600, (s / 60) % 60, s % 60)
}

/// The UTC hour a time falls in, as `YYYY-MM-DDTHH:00Z`.
pub fn utc_hour(secs: u64) -> String {
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:00Z", (secs % 86_400) / 3600)
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ScanRecord {
        ScanRecord {
            ticket: TicketRef::of(&TicketId([3; 12])),
            hlc: Hlc(0x0123_4567_89ab_cdef),
            wall_time: 1_750_000_000,
            gate: 7,
            kind: ScanKind::Exit,
            reentry: true,
            outcome: Outcome::Refused(RefusalCode::Expired),
            ticket_type: 2,
            decided_by_edge: false,
            addon: None,
        }
    }

    #[test]
    fn undo_and_voucher_records() {
        let undo = ScanRecord { outcome: Outcome::Undone, kind: ScanKind::Entry, ..sample() };
        let bytes = undo.encode();
        assert_eq!((bytes[28], bytes[29], bytes[31]), (6, 0, 0));
        assert_eq!(ScanRecord::decode(&bytes).ok(), Some(undo));
        assert!(!Outcome::Undone.passed());
        let mut exit = bytes;
        exit[27] |= FLAG_EXIT;
        assert!(matches!(ScanRecord::decode(&exit), Err(crate::Error::Record(RecordKind::NotEntry))));
        // Add-on i is stored as 1 + i: slot 0 stays "the ticket itself".
        let voucher = ScanRecord { outcome: Outcome::Admitted, kind: ScanKind::Entry, addon: Some(0), ..sample() };
        assert_eq!(voucher.encode()[31], 1);
        assert_eq!(ScanRecord::decode(&voucher.encode()).ok(), Some(voucher));
        let last = ScanRecord { addon: Some(MAX_ADDON), ..voucher };
        assert_eq!(last.encode()[31], 16);
        assert_eq!(ScanRecord::decode(&last.encode()).ok(), Some(last));
        let refused = ScanRecord { outcome: Outcome::Refused(RefusalCode::WrongGate), ..voucher };
        assert_eq!((refused.encode()[28], refused.encode()[29]), (3, 11));
        assert_eq!(ScanRecord::decode(&refused.encode()).ok(), Some(refused));
    }

    #[test]
    fn record_round_trip_and_strictness() {
        let r = sample();
        let bytes = r.encode();
        assert_eq!(ScanRecord::decode(&bytes).ok(), Some(r));
        for outcome in [
            Outcome::Admitted,
            Outcome::AdmittedOverride,
            Outcome::AlreadyUsed,
            Outcome::PaidAtDoor,
            Outcome::PaymentDue,
        ] {
            let r = ScanRecord { outcome, kind: ScanKind::Entry, ..r };
            assert_eq!(ScanRecord::decode(&r.encode()).ok(), Some(r));
        }
        let edge = ScanRecord { decided_by_edge: true, ..r };
        assert_eq!(edge.encode()[27], 0b111);
        assert_eq!(ScanRecord::decode(&edge.encode()).ok(), Some(edge));
        let mut bad = bytes;
        bad[27] |= 1 << 3;
        assert!(matches!(ScanRecord::decode(&bad), Err(crate::Error::Record(RecordKind::Flags(0b1011)))));
        assert!(matches!(ScanRecord::decode(&bytes[..31]), Err(crate::Error::Record(RecordKind::Length(31)))));
        let mut bad = bytes;
        bad[31] = 17;
        assert!(matches!(ScanRecord::decode(&bad), Err(crate::Error::Record(RecordKind::AddonSlot(16)))));
        let mut bad = bytes;
        bad[31] = 1;
        assert!(
            matches!(ScanRecord::decode(&bad), Err(crate::Error::Record(RecordKind::NotEntry))),
            "a voucher is never an exit"
        );
        let mut bad = bytes;
        bad[29] = 0;
        assert!(matches!(ScanRecord::decode(&bad), Err(crate::Error::Record(RecordKind::RefusalCode(0)))));
        let mut bad = bytes;
        bad[28] = 0;
        assert!(matches!(ScanRecord::decode(&bad), Err(crate::Error::Record(RecordKind::Outcome(0)))));
        let mut bad = bytes;
        bad[0] = 2;
        assert!(matches!(ScanRecord::decode(&bad), Err(crate::Error::Record(RecordKind::Version(2)))));
        assert!(ScanRecord::decode_batch(&[0u8; 33]).is_err());
    }

    #[test]
    fn payment_outcomes_are_entries_with_no_refusal_code() {
        let paid = ScanRecord { outcome: Outcome::PaidAtDoor, kind: ScanKind::Entry, ..sample() };
        let bytes = paid.encode();
        assert_eq!((bytes[28], bytes[29]), (4, 0));
        assert!(paid.outcome.passed() && !Outcome::PaymentDue.passed());
        let due = ScanRecord { outcome: Outcome::PaymentDue, ..paid };
        assert_eq!(due.encode()[28], 5);
        for r in [paid, due] {
            let mut exit = r.encode();
            exit[27] |= FLAG_EXIT;
            assert!(matches!(ScanRecord::decode(&exit), Err(crate::Error::Record(RecordKind::PaymentNotEntry))));
            let mut coded = r.encode();
            coded[29] = 1;
            assert!(matches!(ScanRecord::decode(&coded), Err(crate::Error::Record(RecordKind::Outcome(_)))));
        }
        let mut unknown = paid.encode();
        unknown[28] = 7;
        assert!(matches!(ScanRecord::decode(&unknown), Err(crate::Error::Record(RecordKind::Outcome(7)))));
    }

    #[test]
    fn clock_is_strictly_increasing_when_the_wall_clock_goes_back() {
        let mut c = HybridClock::new();
        let a = c.tick(10_000);
        let b = c.tick(9_000);
        let d = c.tick(10_000);
        assert!(a < b && b < d);
        assert_eq!(a.millis(), 10_000);
        c.observe(Hlc(50_000 << 16));
        assert!(c.tick(10_001).millis() == 50_000);
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20Z");
        assert_eq!(utc_hour(1_700_000_000), "2023-11-14T22:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00Z");
    }

    #[test]
    fn device_id_hex() {
        let d = DeviceId(0xdead_beef_0000_0001);
        assert_eq!(DeviceId::from_hex(&d.to_hex()), Some(d));
        assert_eq!(DeviceId::from_hex("DEADBEEF00000001"), None);
        assert_eq!(DeviceId::from_hex("123"), None);
    }
}
