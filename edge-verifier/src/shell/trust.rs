//! The trust cache of one isolate: the keyring and revocation list tickets are checked against, and the
//! device tokens requests are checked against. This file does the I/O (KV, variables, the issuer over
//! HTTP, the trust store); when to pull, what is new and what may be reused are `config`'s decisions
//! ([`PulledList`], [`TrustCache`], [`DeviceTokens`]), which list wins is `revocations::choose`'s.

use std::cell::RefCell;
use std::rc::Rc;

use worker::{console_error, Env, Method};

use scanner_core::wire::{EDGE_DEVICES_PATH, REVOCATIONS_PATH};

use crate::auth::TokenSet;
use crate::config::{pull_interval, DeviceTokens, PullOutcome, Pulled, PulledList, Trust, TrustCache};
use crate::error::{ConfigKind, Error};

use super::http::{internal_request, now_ms, var};
use super::trust_store;

thread_local! {
    static TRUST: RefCell<Option<TrustCache<Trust>>> = const { RefCell::new(None) };
    static PULLED: RefCell<PulledList> = RefCell::new(PulledList::default());
    static DEVICES: RefCell<DeviceTokens> = RefCell::new(DeviceTokens::default());
}

/// The issuer's base URL (variable `ISSUER_URL`), if the edge pulls from it.
fn issuer_url(env: &Env) -> Option<String> {
    var(env, "ISSUER_URL").filter(|u| !u.is_empty())
}

/// How often both lists are pulled (variable `REVOCATIONS_REFRESH_MS`, else `config::DEFAULT_PULL_MS`).
fn interval(env: &Env) -> u64 {
    pull_interval(var(env, "REVOCATIONS_REFRESH_MS").as_deref())
}

/// `GET {ISSUER_URL}{path}` with the edge token (`ISSUER_TOKEN`, from `POST /admin/v1/edge-tokens`: it
/// can read the revocation and device lists and nothing else): the body of a 200 answer, or why not.
async fn get_from_issuer(env: &Env, base: &str, path: &str) -> Result<String, String> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let authorization = format!("Bearer {}", var(env, "ISSUER_TOKEN").unwrap_or_default());
    let req =
        internal_request(&url, Method::Get, None, &[("Authorization", &authorization)]).map_err(|e| e.to_string())?;
    let mut resp = worker::Fetch::Request(req).send().await.map_err(|e| e.to_string())?;
    if resp.status_code() != 200 {
        return Err(format!("HTTP {}", resp.status_code()));
    }
    resp.text().await.map_err(|e| e.to_string())
}

/// The issuer's current revocation list, when the Worker is told where the issuer is (`ISSUER_URL`). A
/// refund then reaches the edge within one pull interval with no one publishing anything. The list is
/// signed and verified against the pinned keyring, so the transport need not be trusted: it can only
/// withhold a list, and then the last good one stays in use. The issuer being down never stops
/// redemption.
async fn pull_revocations(env: &Env, now: u64) -> Option<Pulled> {
    let base = issuer_url(env)?;
    if !PULLED.with(|p| p.borrow_mut().start(now, interval(env))) {
        return PULLED.with(|p| p.borrow().latest());
    }
    let fetched = get_from_issuer(env, &base, REVOCATIONS_PATH).await;
    if let Err(why) = &fetched {
        console_error!("revocations from the issuer unavailable ({why}); keeping the last good list");
    }
    PULLED.with(|p| p.borrow_mut().apply(fetched.ok().as_deref()))
}

/// The keyring and revocation list: from KV `CONFIG` if bound and populated, else from the variables;
/// the revocation list pulled from the issuer instead when `ISSUER_URL` is set (see [`pull_revocations`]).
///
/// On the redemption path this is one thread-local look-up: the parsed trust is reused until the pulled
/// list changes or, with KV bound, `config::KV_CACHE_MS` passes ([`TrustCache`]).
pub(super) async fn load_trust(env: &Env) -> Result<Rc<Trust>, Error> {
    let now = now_ms();
    let pulled = pull_revocations(env, now).await;
    let generation = pulled.as_ref().map(|p| p.generation);
    let kv = env.kv("CONFIG").ok();
    let cached = TRUST.with(|t| t.borrow().as_ref().and_then(|c| c.get(generation, kv.is_some(), now)));
    if let Some(trust) = cached {
        return Ok(trust);
    }
    let mut from_kv = None;
    if let Some(kv) = kv {
        if let Some(keyring) = kv.get("keyring").text().await? {
            from_kv = Some((keyring, kv.get("revocations").text().await?));
        }
    }
    let (keyring, configured) = match from_kv {
        Some((k, r)) => (Some(k), r),
        None => (var(env, "KEYRING_JSON"), var(env, "REVOCATIONS_JSON")),
    };
    // The keyring and the configured list must verify: a configured list that does not is a
    // misconfiguration, never silently ignored (that would un-revoke tickets).
    let configured_trust = Trust::parse(keyring.as_deref(), configured.as_deref())?;
    // The list in use is the newest verified one among the durably stored, the pulled and the configured
    // (`revocations::choose`, run by the trust store): never older than one this edge has seen before.
    let candidates: Vec<String> = pulled.iter().map(|p| p.json.to_string()).chain(configured).collect();
    let keyring_json = configured_trust.keyring.to_json();
    let trust = match trust_store::revocation_floor(env, &keyring_json, candidates).await? {
        Some(list) => Trust::parse(Some(&keyring_json), Some(&list))?,
        None => configured_trust,
    };
    let trust = Rc::new(trust);
    TRUST.with(|t| *t.borrow_mut() = Some(TrustCache::new(generation, now, trust.clone())));
    Ok(trust)
}

/// Pulls the issuer's device list (`GET /v1/edge/devices`: each active device token's hash with its
/// event) when `ISSUER_URL` is set, on the revocation list's interval and with the same edge token. A
/// device revoked at the issuer is then refused here within one interval. A failed pull keeps the last
/// good list.
async fn pull_devices(env: &Env, now: u64) {
    let Some(base) = issuer_url(env) else { return };
    if !DEVICES.with(|d| d.borrow_mut().start(now, interval(env))) {
        return;
    }
    let fetched = get_from_issuer(env, &base, EDGE_DEVICES_PATH).await;
    let outcome = DEVICES.with(|d| d.borrow_mut().apply(fetched.as_deref().map_err(Clone::clone)));
    if let PullOutcome::KeptLastGood(why) = outcome {
        console_error!("device list from the issuer unavailable ({why}); keeping the last good list");
    }
}

/// The device tokens requests are checked against: the configured ones (`SCANNER_TOKEN_HASHES`) merged
/// with the issuer's list (one thread-local look-up once pulled).
pub(super) async fn device_tokens(env: &Env) -> Result<Rc<TokenSet>, Error> {
    pull_devices(env, now_ms()).await;
    let configured = var(env, "SCANNER_TOKEN_HASHES").unwrap_or_default();
    // A malformed list names only the first characters of each bad entry (`TokenSet::parse`).
    DEVICES.with(|d| d.borrow_mut().tokens(&configured))
}

/// The sync servers allowed to relay (secret `RELAY_TOKEN_HASHES`); `None` if there are none.
pub(super) fn relay_tokens(env: &Env) -> Result<Option<TokenSet>, Error> {
    let Some(list) = var(env, "RELAY_TOKEN_HASHES").filter(|l| !l.trim().is_empty()) else { return Ok(None) };
    Ok(TokenSet::parse(&list).map(Some).map_err(ConfigKind::RelayTokenHashes)?)
}
