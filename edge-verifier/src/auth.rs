//! Scanner device tokens. Every call carries `Authorization: Bearer <token>`; the Worker holds only
//! SHA-256 hashes of the allowed tokens — the same hash the issuer stores for its device tokens
//! ([`scanner_core::token`]), so a token list moves from one to the other without ever exporting a token.
//! Tokens are never logged.
//!
//! The allowed tokens come from two places, merged by [`TokenSet::merged`]:
//! - the issuer's device list (`GET /v1/edge/devices`, pulled by the shell; [`TokenSet::from_issuer_json`]):
//!   each hash with the one event its device is for. A device revoked at the issuer drops out of the
//!   list, so it is refused here after the next pull;
//! - the secret `SCANNER_TOKEN_HASHES` ([`TokenSet::parse`]) for deployments without an issuer: entries
//!   `<hash>` (any event) or `<hash>:<event>` (that event only), comma- or space-separated. These cannot
//!   be revoked from the issuer: with `ISSUER_URL` set, leave it empty.
//!
//! A request is checked against the token *and* the event it is for ([`TokenSet::authenticate`]): an
//! unknown token is refused with 401, a known token for another event with 403.

use scanner_core::token::{parse_token_hash, token_hash};
use scanner_core::wire::digest_eq;
use serde::Deserialize;

pub use scanner_core::token::token_hash_hex;

use crate::error::{AuthKind, DeviceListKind, Result};

/// The events one allowed token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A statically configured hash without an event (issuer-less deployments, as before scoping).
    AnyEvent,
    /// A device token bound to one event.
    Event(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    hash: [u8; 32],
    scope: Scope,
}

/// Largest device list accepted from the issuer (about 80 bytes an entry: ~100,000 devices).
pub const MAX_DEVICE_LIST_BYTES: usize = 8 << 20;

#[derive(Deserialize)]
struct IssuerList {
    devices: Vec<IssuerDevice>,
}

#[derive(Deserialize)]
struct IssuerDevice {
    token_hash: String,
    event: u32,
}

/// The set of allowed token hashes, each with its scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSet {
    entries: Vec<Entry>,
}

impl TokenSet {
    /// Parses the configured list (`SCANNER_TOKEN_HASHES`): `<hash>` or `<hash>:<event>` entries. Returns
    /// the entries that do not parse as the error (only their first characters), so a typo in the secret
    /// is reported instead of silently locking a device out.
    pub fn parse(list: &str) -> Result<Self, Vec<String>> {
        let mut entries = Vec::new();
        let mut bad = Vec::new();
        for item in crate::api::split_list(list) {
            let parsed = match item.split_once(':') {
                None => parse_token_hash(&item).map(|hash| Entry { hash, scope: Scope::AnyEvent }),
                Some((hash, event)) => parse_token_hash(hash)
                    .zip(event.parse::<u32>().ok())
                    .map(|(hash, event)| Entry { hash, scope: Scope::Event(event) }),
            };
            match parsed {
                Some(e) => entries.push(e),
                None => bad.push(format!("{}…", item.chars().take(8).collect::<String>())),
            }
        }
        if bad.is_empty() {
            Ok(Self { entries })
        } else {
            Err(bad)
        }
    }

    /// Parses the issuer's `GET /v1/edge/devices` answer: `{"devices":[{"token_hash":"<hex>","event":N}]}`
    /// (other fields are ignored). One bad entry refuses the whole list: the caller keeps its last good
    /// one rather than guess which devices a damaged list meant.
    pub fn from_issuer_json(json: &str) -> Result<Self> {
        if json.len() > MAX_DEVICE_LIST_BYTES {
            return Err(DeviceListKind::TooLarge(MAX_DEVICE_LIST_BYTES).into());
        }
        let list: IssuerList = serde_json::from_str(json).map_err(DeviceListKind::Json)?;
        let entries = list
            .devices
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                parse_token_hash(&d.token_hash)
                    .map(|hash| Entry { hash, scope: Scope::Event(d.event) })
                    .ok_or(DeviceListKind::BadHash(i))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { entries })
    }

    /// Every entry of both sets.
    pub fn merged(configured: &TokenSet, pulled: Option<&TokenSet>) -> TokenSet {
        let mut entries = configured.entries.clone();
        if let Some(pulled) = pulled {
            entries.extend(pulled.entries.iter().cloned());
        }
        TokenSet { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether an `Authorization` header value carries an allowed bearer token (for any event).
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        self.device_of(authorization).is_some()
    }

    /// The allowed token's hash if an `Authorization` header value carries a token allowed for some
    /// event: for endpoints that are not about one event (the revocation list). Never the token itself.
    pub fn device_of(&self, authorization: Option<&str>) -> Option<[u8; 32]> {
        let digest = token_hash(bearer(authorization)?);
        let (known, _) = self.check(&digest, None);
        known.then_some(digest)
    }

    /// The token's hash (the device's identity for per-device state, never the token) if the header
    /// carries a token allowed for `event`; otherwise why not.
    pub fn authenticate(&self, authorization: Option<&str>, event: u32) -> Result<[u8; 32]> {
        Ok(self.authenticate_kind(authorization, event)?)
    }

    /// [`authenticate`](Self::authenticate)'s refusal as the bare kind (comparable: the tests' form).
    pub(crate) fn authenticate_kind(&self, authorization: Option<&str>, event: u32) -> Result<[u8; 32], AuthKind> {
        let digest = token_hash(bearer(authorization).ok_or(AuthKind::Unknown)?);
        match self.check(&digest, Some(event)) {
            (_, true) => Ok(digest),
            (true, false) => Err(AuthKind::WrongEvent(event)),
            (false, _) => Err(AuthKind::Unknown),
        }
    }

    /// (known for some event, allowed for `event`). Compares the hash in constant time (scanner-core's
    /// `wire::digest_eq`) against every entry, and computes each entry's scope whether or not it matched, so timing reveals neither which
    /// entry matched nor how much of it.
    fn check(&self, digest: &[u8; 32], event: Option<u32>) -> (bool, bool) {
        self.entries.iter().fold((false, false), |(known, allowed), e| {
            let eq = digest_eq(&e.hash, digest);
            let in_scope = match (e.scope, event) {
                (Scope::AnyEvent, _) | (_, None) => true,
                (Scope::Event(own), Some(asked)) => own == asked,
            };
            (known | eq, allowed | (eq & in_scope))
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header value (scanner-core's wire rule).
pub use scanner_core::wire::bearer;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn tokens_are_checked_by_hash() {
        let set = TokenSet::parse(&format!("{}, {}", token_hash_hex("alpha"), token_hash_hex("beta"))).unwrap();
        assert!(set.allows(Some("Bearer alpha")));
        assert!(set.allows(Some("bearer beta")));
        assert!(!set.allows(Some("Bearer gamma")));
        assert!(!set.allows(Some("Basic alpha")));
        assert!(!set.allows(Some("Bearer ")));
        assert!(!set.allows(None));
        assert!(!TokenSet::default().allows(Some("Bearer alpha")));
        assert_eq!(set.device_of(Some("Bearer alpha")), Some(scanner_core::token::token_hash("alpha")));
        assert_eq!(set.device_of(Some("Bearer gamma")), None);
        // Unscoped static entries are valid for every event (issuer-less deployments, as before).
        assert_eq!(set.authenticate_kind(Some("Bearer alpha"), 7), Ok(token_hash("alpha")));
    }

    #[test]
    fn malformed_hash_list_is_reported_without_echoing_it_whole() {
        let err = TokenSet::parse("abcd, 0123456789abcdef0123456789abcdef").unwrap_err();
        assert_eq!(err.len(), 2);
        assert!(err.iter().all(|e| e.chars().count() <= 9));
        assert!(TokenSet::parse("").unwrap().is_empty());
        // A scoped entry needs a number after the colon.
        assert_eq!(TokenSet::parse(&format!("{}:x", token_hash_hex("a"))).unwrap_err().len(), 1);
        assert_eq!(TokenSet::parse(&format!("{}:", token_hash_hex("a"))).unwrap_err().len(), 1);
    }

    #[test]
    fn static_entries_may_be_scoped_to_an_event() {
        let set = TokenSet::parse(&format!("{}:1 {}", token_hash_hex("one"), token_hash_hex("any"))).unwrap();
        assert_eq!(set.authenticate_kind(Some("Bearer one"), 1), Ok(token_hash("one")));
        assert_eq!(set.authenticate_kind(Some("Bearer one"), 2), Err(AuthKind::WrongEvent(2)));
        assert_eq!(set.authenticate_kind(Some("Bearer any"), 2), Ok(token_hash("any")));
        assert_eq!(set.authenticate_kind(Some("Bearer other"), 1), Err(AuthKind::Unknown));
        assert_eq!(set.authenticate_kind(None, 1), Err(AuthKind::Unknown));
    }

    /// What the issuer's `GET /v1/edge/devices` answers (issuer/src/edge.rs; the issuer's own HTTP test
    /// checks it produces this shape).
    fn issuer_list(entries: &[(&str, u32)]) -> String {
        let devices: Vec<_> = entries
            .iter()
            .map(|(token, event)| serde_json::json!({ "token_hash": token_hash_hex(token), "event": event }))
            .collect();
        serde_json::json!({ "devices": devices, "generated_at": 1_700_000_000 }).to_string()
    }

    #[test]
    fn the_issuers_list_binds_each_token_to_its_event() {
        let pulled = TokenSet::from_issuer_json(&issuer_list(&[("door-1", 1), ("door-2", 2)])).unwrap();
        assert_eq!(pulled.len(), 2);
        assert_eq!(pulled.authenticate_kind(Some("Bearer door-1"), 1), Ok(token_hash("door-1")));
        assert_eq!(pulled.authenticate_kind(Some("Bearer door-1"), 2), Err(AuthKind::WrongEvent(2)));
        assert_eq!(pulled.authenticate_kind(Some("Bearer door-2"), 2), Ok(token_hash("door-2")));
        assert_eq!(pulled.authenticate_kind(Some("Bearer door-3"), 1), Err(AuthKind::Unknown));
        // Known for some event: enough for the event-less endpoints (revocation list).
        assert!(pulled.allows(Some("Bearer door-2")));
        assert_eq!(pulled.authenticate(Some("Bearer door-1"), 2).unwrap_err().status(), 403);
        assert_eq!(pulled.authenticate(Some("Bearer door-3"), 1).unwrap_err().status(), 401);
    }

    #[test]
    fn configured_and_pulled_tokens_are_merged() {
        let configured = TokenSet::parse(&token_hash_hex("static")).unwrap();
        let pulled = TokenSet::from_issuer_json(&issuer_list(&[("door-1", 1)])).unwrap();
        let merged = TokenSet::merged(&configured, Some(&pulled));
        assert_eq!(merged.authenticate_kind(Some("Bearer static"), 9), Ok(token_hash("static")));
        assert_eq!(merged.authenticate_kind(Some("Bearer door-1"), 1), Ok(token_hash("door-1")));
        assert_eq!(merged.authenticate_kind(Some("Bearer door-1"), 9), Err(AuthKind::WrongEvent(9)));
        assert_eq!(TokenSet::merged(&configured, None), configured);
    }

    #[test]
    fn a_damaged_issuer_list_is_refused_whole() {
        assert!(matches!(TokenSet::from_issuer_json("not json"), Err(Error::DeviceList(DeviceListKind::Json(_)))));
        assert!(matches!(
            TokenSet::from_issuer_json(r#"{"devices":[{"token_hash":"ab","event":1}]}"#),
            Err(Error::DeviceList(DeviceListKind::BadHash(0)))
        ));
        // An event that is not a u32 (negative, missing) is a damaged list, not "any event".
        let h = token_hash_hex("x");
        assert!(TokenSet::from_issuer_json(&format!(r#"{{"devices":[{{"token_hash":"{h}","event":-1}}]}}"#)).is_err());
        assert!(TokenSet::from_issuer_json(&format!(r#"{{"devices":[{{"token_hash":"{h}"}}]}}"#)).is_err());
        assert!(matches!(
            TokenSet::from_issuer_json(&" ".repeat(MAX_DEVICE_LIST_BYTES + 1)),
            Err(Error::DeviceList(DeviceListKind::TooLarge(MAX_DEVICE_LIST_BYTES)))
        ));
        // Everyone revoked is a valid list.
        assert!(TokenSet::from_issuer_json(r#"{"devices":[]}"#).unwrap().is_empty());
    }
}
