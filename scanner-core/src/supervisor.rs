//! Supervisor passes: what unlocks the supervisor role on a scanning device, offline.
//!
//! A door supervisor may override a refusal, undo a check-in and admit an attendee found by search; a
//! steward may only scan. The organizer makes a pass in the dashboard for a named supervisor, an event and
//! a few hours; the issuer signs it with its ticket-signing key under its own domain, so any device with
//! the event's keyring checks it with no network call, exactly like a ticket. The pass is shown as a QR
//! code (or its text is typed in); the device is then in supervisor mode until the pass expires or the
//! supervisor locks it. The issuer checks the same pass on the online search (`x-supervisor-pass`).
//!
//! Text: `SUP1:` + base64url (no padding) of `payload ‖ signature`, where payload is (big-endian)
//!
//! | size | field                                               |
//! |------|-----------------------------------------------------|
//! | 1    | version = 1                                         |
//! | 4    | event id                                            |
//! | 2    | key id of the signing key                           |
//! | 4    | issued at, Unix seconds                             |
//! | 4    | not after, Unix seconds (at most 7 days later)      |
//! | 1    | length n of the supervisor's name (1..=64)          |
//! | n    | the supervisor's name, UTF-8                        |
//!
//! and the signature is Ed25519 over `DOMAIN_SUPERVISOR_PASS ‖ payload`. The key must be in the keyring
//! and active at "issued at". What a pass cannot do: it proves the organizer made it, not who holds it (a
//! photographed pass unlocks another device until it expires), so passes are short-lived and every
//! supervisor action is recorded under the pass's name.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier};
use serde::Serialize;
use thiserror::Error;

use crate::keyring::{IssuerKey, Keyring};
use crate::ticket::KeyId;

/// Prefix of a supervisor pass's text.
pub const PASS_PREFIX: &str = "SUP1:";
/// Domain separation of the pass signature.
pub const DOMAIN_SUPERVISOR_PASS: &[u8] = b"offline-tickets/v1/supervisor-pass\0";
/// Longest lifetime of a pass.
pub const MAX_PASS_SECONDS: u32 = 7 * 24 * 3600;
/// Longest supervisor name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
const VERSION: u8 = 1;
const FIXED: usize = 1 + 4 + 2 + 4 + 4 + 1;
const SIG: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PassKind {
    #[error("this is not a supervisor pass")]
    NotAPass,
    #[error("this supervisor pass is damaged")]
    Malformed,
    #[error("this supervisor pass has version {0}; this scanner reads version 1")]
    Version(u8),
    #[error("this supervisor pass was signed with key {0}, which this scanner does not know")]
    UnknownKey(KeyId),
    #[error("this supervisor pass is forged (bad signature)")]
    BadSignature,
    #[error("this supervisor pass was signed with key {0} outside that key's validity")]
    KeyNotActive(KeyId),
    #[error("this supervisor pass is for event {pass}, this scanner admits to event {expected}")]
    WrongEvent { pass: u32, expected: u32 },
    #[error("this supervisor pass expired")]
    Expired,
    #[error("this supervisor pass is not valid yet")]
    NotYetValid,
    #[error("a supervisor pass lasts at most 7 days, and its name is 1 to {MAX_NAME_BYTES} bytes")]
    Limits,
}

/// A supervisor pass's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupervisorPass {
    pub event_id: u32,
    pub key_id: KeyId,
    pub issued_at: u32,
    pub not_after: u32,
    /// The supervisor's name, as the organizer wrote it (recorded with each supervisor action).
    pub name: String,
}

impl SupervisorPass {
    fn payload(&self) -> Result<Vec<u8>, PassKind> {
        let name = self.name.trim();
        if name.is_empty()
            || name.len() > MAX_NAME_BYTES
            || self.not_after <= self.issued_at
            || self.not_after - self.issued_at > MAX_PASS_SECONDS
        {
            return Err(PassKind::Limits);
        }
        let mut out = Vec::with_capacity(FIXED + name.len());
        out.push(VERSION);
        out.extend_from_slice(&self.event_id.to_be_bytes());
        out.extend_from_slice(&self.key_id.0.to_be_bytes());
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        out.extend_from_slice(&self.not_after.to_be_bytes());
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        Ok(out)
    }

    /// Signs the pass with the issuer's key (whose id it must carry) and returns its text.
    pub fn sign(&self, key: &IssuerKey) -> crate::Result<String> {
        if key.key_id() != self.key_id {
            return Err(PassKind::UnknownKey(self.key_id).into());
        }
        let mut bytes = self.payload()?;
        let mut msg = DOMAIN_SUPERVISOR_PASS.to_vec();
        msg.extend_from_slice(&bytes);
        bytes.extend_from_slice(&key.sign_raw(&msg).to_bytes());
        Ok(format!("{PASS_PREFIX}{}", B64.encode(bytes)))
    }

    /// Parses a pass without checking it (to say what it claims).
    fn parse(text: &str) -> Result<(Self, Vec<u8>, Signature), PassKind> {
        let body = text.trim().strip_prefix(PASS_PREFIX).ok_or(PassKind::NotAPass)?;
        if body.len() > 512 {
            return Err(PassKind::Malformed);
        }
        let bytes = B64.decode(body).map_err(|_| PassKind::Malformed)?;
        if bytes.len() < FIXED + SIG {
            return Err(PassKind::Malformed);
        }
        if bytes[0] != VERSION {
            return Err(PassKind::Version(bytes[0]));
        }
        let n = usize::from(bytes[FIXED - 1]);
        if bytes.len() != FIXED + n + SIG {
            return Err(PassKind::Malformed);
        }
        let be32 = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let name = std::str::from_utf8(&bytes[FIXED..FIXED + n]).map_err(|_| PassKind::Malformed)?;
        let pass = Self {
            event_id: be32(1),
            key_id: KeyId(u16::from_be_bytes([bytes[5], bytes[6]])),
            issued_at: be32(7),
            not_after: be32(11),
            name: name.to_owned(),
        };
        let payload = bytes[..FIXED + n].to_vec();
        let sig = Signature::from_slice(&bytes[FIXED + n..]).map_err(|_| PassKind::Malformed)?;
        Ok((pass, payload, sig))
    }

    /// Checks a pass: signature by a key of `keyring` active when the pass was issued, the event, and
    /// `now` (Unix seconds) within its validity.
    pub fn verify(text: &str, keyring: &Keyring, event_id: u32, now: u64) -> crate::Result<Self> {
        let pass = Self::check_signed(text, keyring, event_id)?;
        if now < u64::from(pass.issued_at).saturating_sub(300) {
            return Err(PassKind::NotYetValid.into());
        }
        if now > u64::from(pass.not_after) {
            return Err(PassKind::Expired.into());
        }
        Ok(pass)
    }

    /// Everything [`Self::verify`] checks but the current time (a device restoring its supervisor mode
    /// re-checks the time at every use).
    pub fn check_signed(text: &str, keyring: &Keyring, event_id: u32) -> crate::Result<Self> {
        let (pass, payload, sig) = Self::parse(text)?;
        if pass.payload().as_deref() != Ok(payload.as_slice()) {
            // Limits broken, or a name with surrounding spaces: not something the issuer signs.
            return Err(PassKind::Limits.into());
        }
        let key = keyring.get(pass.key_id).ok_or(PassKind::UnknownKey(pass.key_id))?;
        let mut msg = DOMAIN_SUPERVISOR_PASS.to_vec();
        msg.extend_from_slice(&payload);
        key.key.verify(&msg, &sig).map_err(|_| PassKind::BadSignature)?;
        if !key.is_active(u64::from(pass.issued_at)) {
            return Err(PassKind::KeyNotActive(pass.key_id).into());
        }
        if pass.event_id != event_id {
            return Err(PassKind::WrongEvent { pass: pass.event_id, expected: event_id }.into());
        }
        Ok(pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (IssuerKey, Keyring) {
        let key = IssuerKey::from_seed(KeyId(3), [9; 32]);
        let mut ring = Keyring::new();
        ring.insert(key.public_entry(1_000, None)).unwrap();
        (key, ring)
    }

    fn pass() -> SupervisorPass {
        SupervisorPass {
            event_id: 7,
            key_id: KeyId(3),
            issued_at: 10_000,
            not_after: 10_000 + 3600,
            name: "Ana".into(),
        }
    }

    #[test]
    fn a_signed_pass_verifies_offline_and_only_for_its_event_and_time() {
        let (key, ring) = setup();
        let text = pass().sign(&key).unwrap();
        assert!(text.starts_with(PASS_PREFIX));
        assert_eq!(SupervisorPass::verify(&text, &ring, 7, 10_500).ok(), Some(pass()));
        assert!(matches!(
            SupervisorPass::verify(&text, &ring, 8, 10_500),
            Err(crate::Error::Pass(PassKind::WrongEvent { pass: 7, expected: 8 }))
        ));
        assert!(matches!(
            SupervisorPass::verify(&text, &ring, 7, 10_000 + 3601),
            Err(crate::Error::Pass(PassKind::Expired))
        ));
        assert!(matches!(
            SupervisorPass::verify(&text, &ring, 7, 9_000),
            Err(crate::Error::Pass(PassKind::NotYetValid))
        ));
    }

    #[test]
    fn forged_and_damaged_passes_are_refused() {
        let (key, ring) = setup();
        let other = IssuerKey::from_seed(KeyId(3), [1; 32]);
        let forged = pass().sign(&other).unwrap();
        assert!(matches!(
            SupervisorPass::verify(&forged, &ring, 7, 10_500),
            Err(crate::Error::Pass(PassKind::BadSignature))
        ));
        // Changing the name (or anything signed) breaks the signature.
        let text = pass().sign(&key).unwrap();
        let mut bytes = B64.decode(&text[PASS_PREFIX.len()..]).unwrap();
        bytes[FIXED] = b'B';
        let edited = format!("{PASS_PREFIX}{}", B64.encode(&bytes));
        assert!(matches!(
            SupervisorPass::verify(&edited, &ring, 7, 10_500),
            Err(crate::Error::Pass(PassKind::BadSignature))
        ));
        assert!(matches!(
            SupervisorPass::verify("TK1:ABC", &ring, 7, 10_500),
            Err(crate::Error::Pass(PassKind::NotAPass))
        ));
        assert!(matches!(
            SupervisorPass::verify("SUP1:!!", &ring, 7, 10_500),
            Err(crate::Error::Pass(PassKind::Malformed))
        ));
        assert!(matches!(
            SupervisorPass::verify(&text[..text.len() - 4], &ring, 7, 10_500),
            Err(crate::Error::Pass(PassKind::Malformed))
        ));
        let unknown = SupervisorPass { key_id: KeyId(4), ..pass() };
        let k4 = IssuerKey::from_seed(KeyId(4), [9; 32]);
        assert!(matches!(
            SupervisorPass::verify(&unknown.sign(&k4).unwrap(), &ring, 7, 10_500),
            Err(crate::Error::Pass(PassKind::UnknownKey(KeyId(4))))
        ));
        let long = SupervisorPass { not_after: 10_000 + MAX_PASS_SECONDS + 1, ..pass() };
        assert!(matches!(long.sign(&key), Err(crate::Error::Pass(PassKind::Limits))));
        let unnamed = SupervisorPass { name: " ".into(), ..pass() };
        assert!(matches!(unnamed.sign(&key), Err(crate::Error::Pass(PassKind::Limits))));
    }
}
