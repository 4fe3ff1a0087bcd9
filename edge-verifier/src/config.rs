//! The verification material the edge checks tickets against: the issuer's public keyring and signed
//! revocation list, parsed and verified by scanner-core, and the device tokens it accepts
//! ([`DeviceTokens`]: the configured hashes merged with the list pulled from the issuer). Sources (KV,
//! environment, the issuer over HTTP) are the shell's business; this module only decides when to pull
//! and turns their text into a ready [`VerifyContext`] or [`TokenSet`].

use std::rc::Rc;

use scanner_core::{Keyring, RevocationList, VerifyContext};
use thiserror::Error;

use crate::auth::TokenSet;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("no keyring configured (KV key `keyring` or variable KEYRING_JSON)")]
    NoKeyring,
    #[error("keyring: {0}")]
    Keyring(#[from] scanner_core::keyring::KeyError),
    #[error("keyring has no keys")]
    EmptyKeyring,
    #[error("revocation list: {0}")]
    Revocations(#[from] scanner_core::revocation::RevocationError),
}

/// A parsed keyring and revocation list.
#[derive(Debug, Clone)]
pub struct Trust {
    pub keyring: Keyring,
    pub revocations: RevocationList,
}

impl Trust {
    /// Parses the keyring, then the revocation list against it (its signature is checked; a list that
    /// does not verify is an error, never silently ignored — that would un-revoke tickets).
    pub fn parse(keyring_json: Option<&str>, revocations_json: Option<&str>) -> Result<Self, ConfigError> {
        let keyring_json = keyring_json.filter(|s| !s.trim().is_empty()).ok_or(ConfigError::NoKeyring)?;
        let keyring = Keyring::from_json(keyring_json)?;
        if keyring.is_empty() {
            return Err(ConfigError::EmptyKeyring);
        }
        let revocations = match revocations_json.filter(|s| !s.trim().is_empty()) {
            Some(json) => RevocationList::from_json(json, &keyring)?,
            None => RevocationList::new(),
        };
        Ok(Self { keyring, revocations })
    }

    /// The context for one scan for `event` at `now` (Unix seconds).
    pub fn context(&self, event: u32, now: u64) -> VerifyContext<'_> {
        VerifyContext { keyring: &self.keyring, revocations: Some(&self.revocations), event_id: event, now }
    }
}

/// How often the Worker pulls the issuer's revocation list and device list, unless the variable
/// `REVOCATIONS_REFRESH_MS` says otherwise ([`pull_interval`]).
pub const DEFAULT_PULL_MS: u64 = 30_000;

/// The pull interval from the variable `REVOCATIONS_REFRESH_MS` (milliseconds), or the default.
pub fn pull_interval(var: Option<&str>) -> u64 {
    var.and_then(|v| v.trim().parse().ok()).unwrap_or(DEFAULT_PULL_MS)
}

/// What became of one pull of the issuer's device list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullOutcome {
    /// A new list is in use.
    Changed,
    /// The issuer answered the list already in use.
    Unchanged,
    /// The pull failed or the list did not parse: the last good list (if any) stays in use.
    KeptLastGood(String),
}

/// The device tokens the edge accepts: the configured ones (`SCANNER_TOKEN_HASHES`) merged with the
/// last good list pulled from the issuer (`GET /v1/edge/devices`), and when to pull next. One per isolate;
/// the shell does the fetching.
///
/// A device revoked at the issuer leaves the pulled list, so it is refused once the next pull (at most
/// one interval later) lands. A failed pull keeps the last good list: the issuer being down never locks
/// out the devices it had listed (nor un-revokes one). An isolate that has never reached the issuer
/// knows only the configured tokens.
#[derive(Debug, Default)]
pub struct DeviceTokens {
    asked_ms: Option<u64>,
    /// The last good pulled list and its text (a pull that answers the same text changes nothing).
    pulled: Option<(String, TokenSet)>,
    /// Bumped whenever `pulled` changes.
    generation: u64,
    /// The merged set, with the configured text and generation it was built from.
    merged: Option<(String, u64, Rc<TokenSet>)>,
}

impl DeviceTokens {
    /// Whether the device list should be pulled now.
    pub fn due(&self, now_ms: u64, interval_ms: u64) -> bool {
        self.asked_ms.is_none_or(|asked| now_ms.saturating_sub(asked) >= interval_ms)
    }

    /// Records that a pull started at `now_ms`, before it is sent, so concurrent requests do not all
    /// pull at once.
    pub fn asking(&mut self, now_ms: u64) {
        self.asked_ms = Some(now_ms);
    }

    /// Takes the result of a pull: the body of a 200 answer, or why there is none.
    pub fn apply(&mut self, fetched: Result<&str, String>) -> PullOutcome {
        let text = match fetched {
            Ok(text) => text,
            Err(why) => return PullOutcome::KeptLastGood(why),
        };
        if self.pulled.as_ref().is_some_and(|(last, _)| last == text) {
            return PullOutcome::Unchanged;
        }
        match TokenSet::from_issuer_json(text) {
            Ok(set) => {
                self.pulled = Some((text.to_owned(), set));
                self.generation += 1;
                PullOutcome::Changed
            }
            Err(e) => PullOutcome::KeptLastGood(e.to_string()),
        }
    }

    /// Whether a list from the issuer is in use.
    pub fn has_pulled(&self) -> bool {
        self.pulled.is_some()
    }

    /// The tokens to check requests against: `configured` (the `SCANNER_TOKEN_HASHES` text) merged with
    /// the pulled list. Built once per change, so a request costs a comparison, not a parse. A malformed
    /// configured list is an error (the entries that are not hashes, shortened).
    pub fn tokens(&mut self, configured: &str) -> Result<Rc<TokenSet>, Vec<String>> {
        if let Some((text, generation, set)) = &self.merged {
            if text == configured && *generation == self.generation {
                return Ok(set.clone());
            }
        }
        let configured_set = TokenSet::parse(configured)?;
        let set = Rc::new(TokenSet::merged(&configured_set, self.pulled.as_ref().map(|(_, s)| s)));
        self.merged = Some((configured.to_owned(), self.generation, set.clone()));
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{token_hash_hex, Denied};
    use scanner_core::token::token_hash;
    use scanner_core::{IssuerKey, KeyId, RevocationHash, TicketId};

    fn issuer_list(entries: &[(&str, u32)]) -> String {
        let devices: Vec<_> = entries
            .iter()
            .map(|(token, event)| serde_json::json!({ "token_hash": token_hash_hex(token), "event": event }))
            .collect();
        serde_json::json!({ "devices": devices, "generated_at": 1 }).to_string()
    }

    #[test]
    fn the_device_list_is_pulled_once_per_interval() {
        let mut d = DeviceTokens::default();
        assert!(d.due(0, 30_000), "a fresh isolate pulls at once");
        d.asking(1_000);
        assert!(!d.due(1_000, 30_000));
        assert!(!d.due(30_999, 30_000));
        assert!(d.due(31_000, 30_000));
        // A clock that went backwards does not stop pulling forever (saturating), nor pull every request.
        assert!(!d.due(500, 30_000));
        assert_eq!(pull_interval(Some("100")), 100);
        assert_eq!(pull_interval(Some("soon")), DEFAULT_PULL_MS);
        assert_eq!(pull_interval(None), DEFAULT_PULL_MS);
    }

    #[test]
    fn a_revoked_device_is_refused_after_the_next_pull_and_failures_keep_the_last_good_list() {
        let mut d = DeviceTokens::default();
        let configured = token_hash_hex("static");
        // Before any pull only the configured tokens are known.
        let t = d.tokens(&configured).unwrap();
        assert_eq!(t.authenticate(Some("Bearer door-1"), 1), Err(Denied::Unknown));
        assert_eq!(t.authenticate(Some("Bearer static"), 1), Ok(token_hash("static")));

        assert_eq!(d.apply(Ok(&issuer_list(&[("door-1", 1), ("door-2", 1)]))), PullOutcome::Changed);
        let t = d.tokens(&configured).unwrap();
        assert_eq!(t.authenticate(Some("Bearer door-1"), 1), Ok(token_hash("door-1")));
        assert_eq!(t.authenticate(Some("Bearer door-1"), 2), Err(Denied::WrongEvent(2)));
        assert_eq!(t.authenticate(Some("Bearer static"), 2), Ok(token_hash("static")));
        // Same text again: the merged set is reused, not rebuilt.
        assert_eq!(d.apply(Ok(&issuer_list(&[("door-1", 1), ("door-2", 1)]))), PullOutcome::Unchanged);
        assert!(Rc::ptr_eq(&t, &d.tokens(&configured).unwrap()));

        // The issuer is down, or answers garbage: the last good list stays.
        assert!(matches!(d.apply(Err("HTTP 503".into())), PullOutcome::KeptLastGood(_)));
        assert!(matches!(d.apply(Ok("<html>")), PullOutcome::KeptLastGood(_)));
        let t = d.tokens(&configured).unwrap();
        assert_eq!(t.authenticate(Some("Bearer door-1"), 1), Ok(token_hash("door-1")));

        // door-1 is revoked at the issuer: the next pull drops it.
        assert_eq!(d.apply(Ok(&issuer_list(&[("door-2", 1)]))), PullOutcome::Changed);
        let t = d.tokens(&configured).unwrap();
        assert_eq!(t.authenticate(Some("Bearer door-1"), 1), Err(Denied::Unknown));
        assert_eq!(t.authenticate(Some("Bearer door-2"), 1), Ok(token_hash("door-2")));
        assert!(d.has_pulled());

        // A malformed configured list is reported, not ignored.
        assert!(d.tokens("nonsense").is_err());
    }

    #[test]
    fn parses_keyring_and_signed_revocations() {
        let key = IssuerKey::from_seed(KeyId(1), [1; 32]);
        let mut ring = Keyring::new();
        ring.insert(key.public_entry(0, None)).unwrap();
        let mut list = RevocationList::new();
        list.publish(&key, [RevocationHash::of(&TicketId([4; 12]))]);
        let trust = Trust::parse(Some(&ring.to_json()), Some(&list.to_json())).unwrap();
        assert!(trust.revocations.contains(&TicketId([4; 12])));
        assert!(Trust::parse(Some(&ring.to_json()), None).unwrap().revocations.is_empty());
        assert!(matches!(Trust::parse(None, None), Err(ConfigError::NoKeyring)));
        assert!(matches!(Trust::parse(Some("{}"), None), Err(ConfigError::Keyring(_))));
        // A list signed by a key the keyring does not have is refused, not ignored.
        let other = IssuerKey::from_seed(KeyId(2), [2; 32]);
        let mut forged = RevocationList::new();
        forged.publish(&other, [RevocationHash::of(&TicketId([5; 12]))]);
        assert!(matches!(
            Trust::parse(Some(&ring.to_json()), Some(&forged.to_json())),
            Err(ConfigError::Revocations(_))
        ));
    }
}
