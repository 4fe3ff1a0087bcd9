//! Verification: decides, with no network call, whether a QR text is a valid ticket for this event now.
//!
//! Checks run cheapest-first and each failure has its own [`Refusal`] with a message a door steward can act
//! on: not a ticket → malformed → unknown key → bad signature → key window → wrong event → validity window
//! → revoked.

use serde::Serialize;
use thiserror::Error;

use crate::keyring::Keyring;
use crate::revocation::RevocationList;
use crate::ticket::{FormatKind, KeyId, SignedTicket, Ticket};

/// Why a ticket is refused. `Display` is the steward-facing message.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    #[error("Not a ticket: this QR code is not one of our tickets")]
    NotATicket,
    #[error("Damaged or fake ticket: the code cannot be read as a ticket ({0})")]
    Malformed(String),
    #[error("Ticket from a newer app version (format {0}): update this scanner")]
    UnsupportedVersion(u8),
    #[error("Unknown issuer key {0}: fake ticket, or this scanner's keys are out of date")]
    UnknownKey(KeyId),
    #[error("Fake ticket: the signature does not match")]
    BadSignature,
    #[error("Ticket's signing key {0} is not valid at this time")]
    KeyNotActive(KeyId),
    #[error("Wrong event: this ticket is for event {ticket_event}, not event {expected}")]
    WrongEvent { ticket_event: u32, expected: u32 },
    #[error("Not valid yet: this ticket admits from {from} (Unix time)")]
    NotYetValid { from: u32 },
    #[error("Expired: this ticket stopped admitting at {until} (Unix time)")]
    Expired { until: u32 },
    #[error("Revoked: this ticket was refunded or cancelled")]
    Revoked,
    /// Genuine, but not at this gate (the event's gate rules, see [`crate::gates`]); the steward's sentence.
    #[error("Wrong gate: {0}")]
    WrongGate(String),
}

impl Refusal {
    /// A stable machine-readable code for logs, reports and JSON.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotATicket => "not_a_ticket",
            Refusal::Malformed(_) => "malformed",
            Refusal::UnsupportedVersion(_) => "unsupported_version",
            Refusal::UnknownKey(_) => "unknown_key",
            Refusal::BadSignature => "bad_signature",
            Refusal::KeyNotActive(_) => "key_not_active",
            Refusal::WrongEvent { .. } => "wrong_event",
            Refusal::NotYetValid { .. } => "not_yet_valid",
            Refusal::Expired { .. } => "expired",
            Refusal::Revoked => "revoked",
            Refusal::WrongGate(_) => "wrong_gate",
        }
    }
}

impl From<FormatKind> for Refusal {
    fn from(e: FormatKind) -> Self {
        match e {
            FormatKind::NotATicket => Refusal::NotATicket,
            FormatKind::UnsupportedVersion(v) => Refusal::UnsupportedVersion(v),
            FormatKind::Malformed(_) | FormatKind::Base45(_) => Refusal::Malformed(e.to_string()),
        }
    }
}

/// What a verification is checked against.
#[derive(Debug, Clone, Copy)]
pub struct VerifyContext<'a> {
    pub keyring: &'a Keyring,
    pub revocations: Option<&'a RevocationList>,
    /// The event this scanner admits to: a ticket for any other event is `wrong_event`. There is no
    /// "any event": a verifier that does not know its event must not verify.
    pub event_id: u32,
    /// Unix seconds.
    pub now: u64,
}

/// Verifies an already-parsed ticket.
pub fn verify_signed(signed: &SignedTicket, ctx: &VerifyContext<'_>) -> Result<(), Refusal> {
    let t = &signed.ticket;
    let key = ctx.keyring.get(t.key_id).ok_or(Refusal::UnknownKey(t.key_id))?;
    if !signed.signature_is_valid(&key.key) {
        return Err(Refusal::BadSignature);
    }
    if !key.is_active(ctx.now) {
        return Err(Refusal::KeyNotActive(t.key_id));
    }
    if t.event_id != ctx.event_id {
        return Err(Refusal::WrongEvent { ticket_event: t.event_id, expected: ctx.event_id });
    }
    if let Some(from) = t.valid_from {
        if ctx.now < u64::from(from) {
            return Err(Refusal::NotYetValid { from });
        }
    }
    if let Some(until) = t.valid_until {
        if ctx.now > u64::from(until) {
            return Err(Refusal::Expired { until });
        }
    }
    if ctx.revocations.is_some_and(|r| r.contains(&t.ticket_id)) {
        return Err(Refusal::Revoked);
    }
    Ok(())
}

/// Parses QR text for the door: a text that is not a well-formed ticket is refused with what the steward
/// is shown (the format kind's [`Refusal`]). Does not verify.
pub fn read_ticket(text: &str) -> Result<SignedTicket, Refusal> {
    Ok(SignedTicket::parse_qr_text(text)?)
}

/// Parses and verifies QR text: the whole offline validity decision.
pub fn verify_text(text: &str, ctx: &VerifyContext<'_>) -> Result<Ticket, Refusal> {
    let signed = read_ticket(text)?;
    verify_signed(&signed, ctx)?;
    Ok(signed.ticket)
}
