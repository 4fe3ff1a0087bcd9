//! The verification material the edge checks tickets against: the issuer's public keyring and signed
//! revocation list, parsed and verified by scanner-core, and the device tokens it accepts
//! ([`DeviceTokens`]: the configured hashes merged with the list pulled from the issuer). Sources (KV,
//! environment, the issuer over HTTP) are the shell's business; this module decides when to pull
//! ([`PullSchedule`]), which pulled text is new ([`PulledList`]), when a parsed trust may be reused
//! ([`TrustCache`]), and turns their text into a ready [`VerifyContext`] or [`TokenSet`].

use std::rc::Rc;

use scanner_core::{Keyring, RevocationList, VerifyContext};

use crate::auth::TokenSet;
use crate::error::{ConfigKind, Result};

/// A parsed keyring and revocation list.
#[derive(Debug, Clone)]
pub struct Trust {
    pub keyring: Keyring,
    pub revocations: RevocationList,
}

impl Trust {
    /// Parses the keyring, then the revocation list against it (its signature is checked; a list that
    /// does not verify is an error, never silently ignored — that would un-revoke tickets).
    pub fn parse(keyring_json: Option<&str>, revocations_json: Option<&str>) -> Result<Self> {
        let keyring_json = keyring_json.filter(|s| !s.trim().is_empty()).ok_or(ConfigKind::NoKeyring)?;
        let keyring = Keyring::from_json(keyring_json).map_err(ConfigKind::Keyring)?;
        if keyring.is_empty() {
            return Err(ConfigKind::EmptyKeyring.into());
        }
        let revocations = match revocations_json.filter(|s| !s.trim().is_empty()) {
            Some(json) => RevocationList::from_json(json, &keyring).map_err(ConfigKind::Revocations)?,
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

/// How long a keyring / revocation list read from KV is reused before KV is read again. KV itself is
/// eventually consistent (~60 s), so a shorter cache would not make revocations land sooner.
pub const KV_CACHE_MS: u64 = 30_000;

/// When to pull one list from the issuer: at once in a fresh isolate, then once per interval. A pull is
/// marked as started before it is sent, so concurrent requests do not all pull at once; a clock that
/// went backwards neither stops pulling for good nor pulls on every request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullSchedule {
    asked_ms: Option<u64>,
}

impl PullSchedule {
    /// Whether a pull is due at `now_ms`.
    pub fn due(&self, now_ms: u64, interval_ms: u64) -> bool {
        self.asked_ms.is_none_or(|asked| now_ms.saturating_sub(asked) >= interval_ms)
    }

    /// Records that a pull started at `now_ms`.
    pub fn asking(&mut self, now_ms: u64) {
        self.asked_ms = Some(now_ms);
    }

    /// Whether a pull is due; if so, marks it started.
    pub fn start(&mut self, now_ms: u64, interval_ms: u64) -> bool {
        let due = self.due(now_ms, interval_ms);
        if due {
            self.asking(now_ms);
        }
        due
    }
}

/// One pulled revocation list: its text and a generation that changes only when the text does, so the
/// trust built from it is reused until then ([`TrustCache`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub generation: u64,
    pub json: Rc<str>,
}

/// The revocation list last pulled from the issuer (`GET /v1/scanner/revocations`), and when to pull
/// again. The text is not checked here: it is signed, and verified against the pinned keyring when the
/// trust is built (the transport can only withhold a list). A failed pull keeps the last one.
#[derive(Debug, Default)]
pub struct PulledList {
    schedule: PullSchedule,
    latest: Option<Pulled>,
}

impl PulledList {
    /// Whether a pull is due at `now_ms`; if so, it is marked started.
    pub fn start(&mut self, now_ms: u64, interval_ms: u64) -> bool {
        self.schedule.start(now_ms, interval_ms)
    }

    /// The list in use (`None` before the first good pull).
    pub fn latest(&self) -> Option<Pulled> {
        self.latest.clone()
    }

    /// Takes the result of a pull (the body of a 200 answer, `None` if there was none) and answers the
    /// list now in use: the same generation for the same text, the next one for a new text.
    pub fn apply(&mut self, fetched: Option<&str>) -> Option<Pulled> {
        if let Some(json) = fetched {
            self.latest = Some(match self.latest.take() {
                Some(last) if *last.json == *json => last,
                last => Pulled { generation: last.map_or(1, |l| l.generation + 1), json: json.into() },
            });
        }
        self.latest()
    }
}

/// The parsed trust of one isolate, and when it must be rebuilt: when the pulled revocation list changes
/// generation, or (KV bound) after [`KV_CACHE_MS`], since KV can change under a running isolate;
/// variables cannot. Parsing a keyring and verifying a revocation list costs far more than a ticket
/// check: this makes it once per isolate and configuration, not once per request.
#[derive(Debug)]
pub struct TrustCache<T> {
    /// The generation of the pulled revocation list it was built with, if any.
    pulled: Option<u64>,
    loaded_ms: u64,
    trust: Rc<T>,
}

impl<T> TrustCache<T> {
    pub fn new(pulled: Option<u64>, loaded_ms: u64, trust: Rc<T>) -> Self {
        Self { pulled, loaded_ms, trust }
    }

    /// The cached trust if it may still be used at `now_ms`.
    pub fn get(&self, pulled: Option<u64>, kv_bound: bool, now_ms: u64) -> Option<Rc<T>> {
        let fresh = !kv_bound || now_ms.saturating_sub(self.loaded_ms) < KV_CACHE_MS;
        (self.pulled == pulled && fresh).then(|| self.trust.clone())
    }
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
    schedule: PullSchedule,
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
        self.schedule.due(now_ms, interval_ms)
    }

    /// Records that a pull started at `now_ms`, before it is sent, so concurrent requests do not all
    /// pull at once.
    pub fn asking(&mut self, now_ms: u64) {
        self.schedule.asking(now_ms);
    }

    /// Whether the device list should be pulled now; if so, marks the pull started.
    pub fn start(&mut self, now_ms: u64, interval_ms: u64) -> bool {
        self.schedule.start(now_ms, interval_ms)
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
    /// configured list is a configuration error naming the entries that are not hashes, shortened.
    pub fn tokens(&mut self, configured: &str) -> Result<Rc<TokenSet>> {
        if let Some((text, generation, set)) = &self.merged {
            if text == configured && *generation == self.generation {
                return Ok(set.clone());
            }
        }
        let configured_set = TokenSet::parse(configured).map_err(ConfigKind::ScannerTokenHashes)?;
        let set = Rc::new(TokenSet::merged(&configured_set, self.pulled.as_ref().map(|(_, s)| s)));
        self.merged = Some((configured.to_owned(), self.generation, set.clone()));
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token_hash_hex;
    use crate::error::{AuthKind, Error};
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
    fn the_revocation_list_keeps_its_generation_until_its_text_changes() {
        let mut p = PulledList::default();
        assert!(p.start(5_000, 30_000), "a fresh isolate pulls at once");
        assert!(!p.start(6_000, 30_000), "marked started: a concurrent request does not pull too");
        // The first pull fails: nothing to use yet.
        assert_eq!(p.apply(None), None);
        let first = p.apply(Some("list v1")).unwrap();
        assert_eq!((first.generation, &*first.json), (1, "list v1"));
        // Same text: same generation (the trust built from it is reused). A failure keeps it.
        assert_eq!(p.apply(Some("list v1")), Some(first.clone()));
        assert_eq!(p.apply(None), Some(first.clone()));
        assert_eq!(p.latest(), Some(first));
        let second = p.apply(Some("list v2")).unwrap();
        assert_eq!((second.generation, &*second.json), (2, "list v2"));
        assert!(p.start(35_000, 30_000));
        let mut s = PullSchedule::default();
        assert!(s.start(0, 10) && !s.start(9, 10) && s.start(10, 10));
    }

    #[test]
    fn the_trust_is_rebuilt_when_the_pulled_list_changes_or_kv_may_have() {
        let cache = TrustCache::new(Some(1), 1_000, Rc::new("trust"));
        // Variables only: reused for the isolate's life, until the pulled list changes.
        assert_eq!(cache.get(Some(1), false, u64::MAX).as_deref(), Some(&"trust"));
        assert!(cache.get(Some(2), false, 1_000).is_none());
        assert!(cache.get(None, false, 1_000).is_none());
        // KV bound: re-read after KV_CACHE_MS.
        assert!(cache.get(Some(1), true, 1_000 + KV_CACHE_MS - 1).is_some());
        assert!(cache.get(Some(1), true, 1_000 + KV_CACHE_MS).is_none());
        // A clock that went backwards does not expire it.
        assert!(cache.get(Some(1), true, 0).is_some());
    }

    #[test]
    fn a_revoked_device_is_refused_after_the_next_pull_and_failures_keep_the_last_good_list() {
        let mut d = DeviceTokens::default();
        let configured = token_hash_hex("static");
        // Before any pull only the configured tokens are known.
        let t = d.tokens(&configured).unwrap();
        assert_eq!(t.authenticate_kind(Some("Bearer door-1"), 1), Err(AuthKind::Unknown));
        assert_eq!(t.authenticate_kind(Some("Bearer static"), 1), Ok(token_hash("static")));

        assert_eq!(d.apply(Ok(&issuer_list(&[("door-1", 1), ("door-2", 1)]))), PullOutcome::Changed);
        let t = d.tokens(&configured).unwrap();
        assert_eq!(t.authenticate_kind(Some("Bearer door-1"), 1), Ok(token_hash("door-1")));
        assert_eq!(t.authenticate_kind(Some("Bearer door-1"), 2), Err(AuthKind::WrongEvent(2)));
        assert_eq!(t.authenticate_kind(Some("Bearer static"), 2), Ok(token_hash("static")));
        // Same text again: the merged set is reused, not rebuilt.
        assert_eq!(d.apply(Ok(&issuer_list(&[("door-1", 1), ("door-2", 1)]))), PullOutcome::Unchanged);
        assert!(Rc::ptr_eq(&t, &d.tokens(&configured).unwrap()));

        // The issuer is down, or answers garbage: the last good list stays.
        assert!(matches!(d.apply(Err("HTTP 503".into())), PullOutcome::KeptLastGood(_)));
        assert!(matches!(d.apply(Ok("<html>")), PullOutcome::KeptLastGood(_)));
        let t = d.tokens(&configured).unwrap();
        assert_eq!(t.authenticate_kind(Some("Bearer door-1"), 1), Ok(token_hash("door-1")));

        // door-1 is revoked at the issuer: the next pull drops it.
        assert_eq!(d.apply(Ok(&issuer_list(&[("door-2", 1)]))), PullOutcome::Changed);
        let t = d.tokens(&configured).unwrap();
        assert_eq!(t.authenticate_kind(Some("Bearer door-1"), 1), Err(AuthKind::Unknown));
        assert_eq!(t.authenticate_kind(Some("Bearer door-2"), 1), Ok(token_hash("door-2")));
        assert!(d.has_pulled());

        // A malformed configured list is reported, not ignored.
        assert!(matches!(
            d.tokens("nonsense"),
            Err(Error::Config(ConfigKind::ScannerTokenHashes(bad))) if bad == ["nonsense…"]
        ));
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
        assert!(matches!(Trust::parse(None, None), Err(Error::Config(ConfigKind::NoKeyring))));
        assert!(matches!(Trust::parse(Some("{}"), None), Err(Error::Config(ConfigKind::Keyring(_)))));
        // A list signed by a key the keyring does not have is refused, not ignored.
        let other = IssuerKey::from_seed(KeyId(2), [2; 32]);
        let mut forged = RevocationList::new();
        forged.publish(&other, [RevocationHash::of(&TicketId([5; 12]))]);
        assert!(matches!(
            Trust::parse(Some(&ring.to_json()), Some(&forged.to_json())),
            Err(Error::Config(ConfigKind::Revocations(_)))
        ));
    }
}
