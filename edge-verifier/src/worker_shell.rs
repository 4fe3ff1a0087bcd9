//! The Workers runtime shell (wasm32 only): HTTP routing, bindings and Durable Object storage. Every
//! decision is delegated to the plain modules of this crate and, through them, to scanner-core.
//!
//! Bindings (see wrangler.toml):
//! - `REDEMPTIONS`: Durable Object namespace of [`RedemptionShard`] (ticket redemption state, sharded by
//!   event and ticket reference);
//! - `REDEMPTION_LOG`: Durable Object namespace of [`RedemptionLogObject`] (one per event: the automerge
//!   redemption log that `/v1/sync` serves, and the edge's admissions in it);
//! - `TRUST`: Durable Object namespace of [`TrustStore`] (one object: the newest verified revocation list,
//!   so that no instance ever falls back to an older one);
//! - `CONFIG` (optional KV): keys `keyring` and `revocations`, which override the variables below, and
//!   `manifest:<event id>` (the issuer's attendee manifest, served to scanners at setup);
//! - variables `KEYRING_JSON`, `REVOCATIONS_JSON` (optional), `ALLOWED_ORIGINS`, `LOG_FORWARD_DELAY_MS`
//!   (optional);
//! - secret `SCANNER_TOKEN_HASHES`: SHA-256 hex of each allowed scanner device token (`<hash>` for any
//!   event or `<hash>:<event>`), for deployments without an issuer; with `ISSUER_URL` (and the edge
//!   token `ISSUER_TOKEN`) the Worker pulls the issuer's device list, each token bound to its event,
//!   merged with these (see `config::DeviceTokens`).
//!
//! Record flow: a shard decides a redemption and, in the same storage write, puts the record in its
//! outbox; an alarm drains the outbox into the event's log object (retried until acknowledged), so the
//! redeem path never waits for the log. Records devices sync into the log are relayed to the owning
//! shards before the sync reply goes out (and by an alarm if that fails), so a ticket admitted offline is
//! refused online as soon as the device has synced.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use worker::js_sys::{Object, Reflect, Uint8Array};
use worker::wasm_bindgen::JsValue;
use worker::{
    console_error, durable_object, event, Context, Date, DurableObject, Env, Headers, ListOptions, Method, Request,
    RequestInit, Response, Result, SqlStorage, SqlStorageValue, State, Stub,
};

use scanner_core::redemption::document::{decode_peer_state, encode_peer_state, MAX_SYNC_MESSAGE_BYTES};
use scanner_core::redemption::{Accept, DeviceId, SyncChannel, SyncError, TicketRef};

use crate::api::{
    self, check_declared_length, cors_origin, event_param, is_json, is_sync_body, parse_redeem, recorded_verdict_json,
    split_list, verdict_json, ApiError, ShardRedeem, MAX_REDEEM_BODY, MAX_SYNC_BODY,
};
use crate::auth::TokenSet;
use crate::config::{pull_interval, DeviceTokens, PullOutcome, Trust};
use crate::history::{redeem, ticket_of, StoredScan, TicketHistory};
use crate::relay::{AppendRequest, LogRelay, RelayError, RelayRequest};
use crate::revocations::{FloorDecision, FloorRequest};
use crate::shard::{log_name, shard_name, shard_of};

/// How long a keyring / revocation list read from KV is reused before KV is read again. KV itself is
/// eventually consistent (~60 s), so a shorter cache would not make revocations land sooner.
const KV_CACHE_MS: u64 = 30_000;
/// Delay before a failed outbox drain or shard relay is tried again. Alarms the runtime retries itself
/// give up after a few attempts; these are re-armed by hand, so records are never stranded.
const RETRY_MS: i64 = 5_000;
/// Outbox records sent to the log object per request.
const OUTBOX_BATCH: usize = 512;
/// How long a shard collects admissions before forwarding them to the log (variable
/// `LOG_FORWARD_DELAY_MS` overrides it). No admission decision waits for the log: the shards decide from
/// their own state, and devices sync every few tens of seconds at best, so a few seconds cost nothing.
/// Much shorter is costly: every forward is one more Durable Object call on the shard and on the log
/// (measured under workerd: a 500 ms delay halved redemption throughput at concurrency 16; 5 s did not).
const OUTBOX_DELAY_MS: i64 = 5_000;
/// How long the log buffers forwarded admissions before folding them into the automerge document. Each
/// fold costs a pass over the whole document (scanner-core validates every change against it) and the
/// log is one object per event, so it folds once per interval, not once per shard forward. A sync or a
/// report folds first, so devices always receive every admission the log has acknowledged.
const FOLD_DELAY_MS: i64 = 1_000;
/// Largest stored piece of the log (SQLite rows in a Durable Object are limited to 2 MB).
const LOG_PART_BYTES: usize = 512 * 1024;
/// Stored pieces after which the log is rewritten as one compressed save (loading stays fast).
const COMPACT_AFTER_PARTS: i64 = 256;
/// Request header carrying the syncing device's identity (its token hash) from the Worker to the log.
const PEER_HEADER: &str = "X-Peer";

/// The parsed trust. With KV bound it is re-read every `KV_CACHE_MS`; the variables are fixed for the
/// isolate's life.
struct CachedTrust {
    /// The generation of the pulled revocation list it was built with, if any.
    pulled: Option<u64>,
    loaded_ms: u64,
    trust: Rc<Trust>,
}

thread_local! {
    // Parsing a keyring and verifying a revocation list costs far more than a ticket check: do it once per
    // isolate and configuration, not once per request.
    static TRUST: RefCell<Option<CachedTrust>> = const { RefCell::new(None) };
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// How often revocations are pulled from the issuer (variable `REVOCATIONS_REFRESH_MS` overrides it).
const REVOCATIONS_REFRESH_MS: u64 = 30_000;

/// The revocation list last pulled from the issuer, and when it was asked.
struct PulledRevocations {
    asked_ms: u64,
    latest: Option<Pulled>,
}

/// One pulled list; `generation` changes only when the list's text does, so the cached trust built from
/// it is reused until then.
#[derive(Clone)]
struct Pulled {
    generation: u64,
    json: Rc<str>,
}

thread_local! {
    static PULLED: RefCell<Option<PulledRevocations>> = const { RefCell::new(None) };
}

/// The issuer's current revocation list, when the Worker is told where the issuer is (variable
/// `ISSUER_URL`, secret `ISSUER_TOKEN`: an edge token from the issuer's admin API). A refund then
/// reaches the edge within `REVOCATIONS_REFRESH_MS` with no one publishing anything. The list is signed
/// and verified against the pinned keyring, so the transport need not be trusted: it can only withhold a
/// list, and then the last good one stays in use. The issuer being down never stops redemption.
async fn pull_revocations(env: &Env, now: u64) -> Option<Pulled> {
    let base = var(env, "ISSUER_URL").filter(|u| !u.is_empty())?;
    let refresh = var(env, "REVOCATIONS_REFRESH_MS").and_then(|v| v.parse().ok()).unwrap_or(REVOCATIONS_REFRESH_MS);
    let (last, due) = PULLED.with(|p| {
        let p = p.borrow();
        let last = p.as_ref().and_then(|p| p.latest.clone());
        (last, p.as_ref().is_none_or(|p| now.saturating_sub(p.asked_ms) >= refresh))
    });
    if !due {
        return last;
    }
    // Marked as asked before the request, so concurrent requests do not all ask at once.
    PULLED.with(|p| *p.borrow_mut() = Some(PulledRevocations { asked_ms: now, latest: last.clone() }));
    let url = format!("{}/v1/scanner/revocations", base.trim_end_matches('/'));
    let token = var(env, "ISSUER_TOKEN").unwrap_or_default();
    let fetched = async {
        let req = internal_request(&url, Method::Get, None, &[("Authorization", &format!("Bearer {token}"))]).ok()?;
        let mut resp = worker::Fetch::Request(req).send().await.ok()?;
        if resp.status_code() != 200 {
            console_error!("revocations from the issuer: HTTP {}", resp.status_code());
            return None;
        }
        resp.text().await.ok()
    }
    .await;
    let Some(json) = fetched else {
        console_error!("revocations from the issuer unavailable; keeping the last good list");
        return last;
    };
    let latest = match last {
        Some(last) if *last.json == *json => last,
        last => Pulled { generation: last.map_or(1, |l| l.generation + 1), json: json.into() },
    };
    PULLED.with(|p| *p.borrow_mut() = Some(PulledRevocations { asked_ms: now, latest: Some(latest.clone()) }));
    Some(latest)
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string()).or_else(|| env.secret(name).ok().map(|v| v.to_string()))
}

/// The keyring and revocation list: from KV `CONFIG` if bound and populated, else from the variables;
/// the revocation list pulled from the issuer instead when `ISSUER_URL` is set (see [`pull_revocations`]).
///
/// On the redemption path this is one thread-local look-up: the parsed trust is reused until the pulled
/// list changes or, with KV bound, `KV_CACHE_MS` passes. Variables cannot change within an isolate.
async fn load_trust(env: &Env) -> std::result::Result<Rc<Trust>, ApiError> {
    let now = now_ms();
    let pulled = pull_revocations(env, now).await;
    let generation = pulled.as_ref().map(|p| p.generation);
    let kv = env.kv("CONFIG").ok();
    let cached = TRUST.with(|t| {
        t.borrow()
            .as_ref()
            .filter(|c| c.pulled == generation && (kv.is_none() || now.saturating_sub(c.loaded_ms) < KV_CACHE_MS))
            .map(|c| c.trust.clone())
    });
    if let Some(trust) = cached {
        return Ok(trust);
    }
    let mut from_kv = None;
    if let Some(kv) = kv {
        let keyring = kv.get("keyring").text().await.map_err(|_| ApiError::Internal)?;
        if let Some(keyring) = keyring {
            let revocations = kv.get("revocations").text().await.map_err(|_| ApiError::Internal)?;
            from_kv = Some((keyring, revocations));
        }
    }
    let (keyring, configured) = match from_kv {
        Some((k, r)) => (Some(k), r),
        None => (var(env, "KEYRING_JSON"), var(env, "REVOCATIONS_JSON")),
    };
    // The keyring and the configured list must verify: a configured list that does not is a
    // misconfiguration, never silently ignored (that would un-revoke tickets).
    let configured_trust =
        Trust::parse(keyring.as_deref(), configured.as_deref()).map_err(|e| ApiError::Misconfigured(e.to_string()))?;
    // The list in use is the newest verified one among the durably stored, the pulled and the configured
    // (`revocations::choose`, run by the trust store): never older than one this edge has seen before.
    let candidates: Vec<String> = pulled.iter().map(|p| p.json.to_string()).chain(configured).collect();
    let keyring_json = configured_trust.keyring.to_json();
    let trust = match revocation_floor(env, &keyring_json, candidates).await? {
        Some(list) => {
            Trust::parse(Some(&keyring_json), Some(&list)).map_err(|e| ApiError::Misconfigured(e.to_string()))?
        }
        None => configured_trust,
    };
    let trust = Rc::new(trust);
    TRUST.with(|t| *t.borrow_mut() = Some(CachedTrust { pulled: generation, loaded_ms: now, trust: trust.clone() }));
    Ok(trust)
}

/// The name of the one [`TrustStore`] object.
const TRUST_STORE_NAME: &str = "revocations";

/// Asks the trust store which revocation list to use, given the lists this isolate has (see
/// [`TrustStore`]); `None` when there is none at all (version 0).
async fn revocation_floor(
    env: &Env,
    keyring: &str,
    candidates: Vec<String>,
) -> std::result::Result<Option<String>, ApiError> {
    let body = serde_json::to_string(&FloorRequest { keyring: keyring.to_owned(), candidates })
        .map_err(|_| ApiError::Internal)?;
    let store = stub(env, "TRUST", TRUST_STORE_NAME)?;
    let req = internal_request("https://trust/revocations", Method::Post, Some(JsValue::from_str(&body)), &[])?;
    let mut resp = store.fetch_with_request(req).await.map_err(|e| {
        console_error!("trust store unavailable: {e}");
        ApiError::Internal
    })?;
    if resp.status_code() != 200 {
        console_error!("trust store answered HTTP {}", resp.status_code());
        return Err(ApiError::Internal);
    }
    let text = resp.text().await.map_err(|_| ApiError::Internal)?;
    let decision: FloorDecision = serde_json::from_str(&text).map_err(|_| ApiError::Internal)?;
    Ok(decision.list)
}

/// Durable memory of the newest revocation list this edge has verified (one object, named
/// [`TRUST_STORE_NAME`]; storage key `revocations`). Every isolate asks it whenever it rebuilds its trust,
/// with the lists it has (pulled, configured): the store keeps the newest verified one
/// ([`crate::revocations::choose`]) and answers it. So a fresh instance that cannot reach the issuer uses
/// the newest list ever seen, never the older one pinned in the configuration.
#[durable_object]
pub struct TrustStore {
    state: State,
    #[allow(dead_code)]
    env: Env,
}

impl TrustStore {
    async fn revocations(&self, mut req: Request) -> std::result::Result<Response, ApiError> {
        let body = req.bytes().await.map_err(|_| ApiError::Internal)?;
        let ask: FloorRequest =
            serde_json::from_slice(&body).map_err(|_| ApiError::BadRequest("trust request".into()))?;
        let keyring =
            scanner_core::Keyring::from_json(&ask.keyring).map_err(|e| ApiError::Misconfigured(e.to_string()))?;
        let storage = self.state.storage();
        let stored = storage.get::<String>("revocations").await.map_err(storage_error("trust store read failed"))?;
        let candidates: Vec<&str> = ask.candidates.iter().map(String::as_str).collect();
        let decision = crate::revocations::choose(&keyring, stored.as_deref(), &candidates);
        for why in &decision.refused {
            console_error!("revocation list not used: {why}");
        }
        if let (true, Some(list)) = (decision.store, &decision.list) {
            // A list too large for one value is still used, only not remembered: logged, not fatal.
            if let Err(e) = storage.put("revocations", list.as_str()).await {
                console_error!("trust store write failed: {e}");
            }
        }
        json_ok(serde_json::to_string(&decision).map_err(|_| ApiError::Internal)?)
    }
}

impl DurableObject for TrustStore {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let result = match req.path().as_str() {
            "/revocations" => self.revocations(req).await,
            _ => Err(ApiError::NotFound),
        };
        match result {
            Ok(resp) => Ok(resp),
            Err(e) => error_response(&e),
        }
    }
}

fn json_response(body: String, status: u16) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    headers.set("Cache-Control", "no-store")?;
    Ok(Response::from_bytes(body.into_bytes())?.with_status(status).with_headers(headers))
}

fn json_ok(body: String) -> std::result::Result<Response, ApiError> {
    json_response(body, 200).map_err(|_| ApiError::Internal)
}

fn error_response(e: &ApiError) -> Result<Response> {
    json_response(e.to_json(), e.status())
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

thread_local! {
    // The device tokens: configured ones merged with the issuer's list (see `DeviceTokens` for the policy).
    static DEVICES: RefCell<DeviceTokens> = RefCell::new(DeviceTokens::default());
}

/// Pulls the issuer's device list (`GET /v1/edge/devices`: each active device token's hash with its
/// event) when `ISSUER_URL` is set, on the revocation list's interval and with the same edge token
/// (`ISSUER_TOKEN`, from `POST /admin/v1/edge-tokens`: it can read these two lists and nothing else). A
/// device revoked at the issuer is then refused here within one interval. A failed pull keeps the last
/// good list; the decisions are `config::DeviceTokens`'s, this only fetches.
async fn pull_devices(env: &Env, now: u64) {
    let Some(base) = var(env, "ISSUER_URL").filter(|u| !u.is_empty()) else { return };
    let interval = pull_interval(var(env, "REVOCATIONS_REFRESH_MS").as_deref());
    let due = DEVICES.with(|d| {
        let mut d = d.borrow_mut();
        let due = d.due(now, interval);
        if due {
            // Marked before the request, so concurrent requests do not all ask at once.
            d.asking(now);
        }
        due
    });
    if !due {
        return;
    }
    let url = format!("{}/v1/edge/devices", base.trim_end_matches('/'));
    let token = var(env, "ISSUER_TOKEN").unwrap_or_default();
    let fetched: std::result::Result<String, String> = async {
        let req = internal_request(&url, Method::Get, None, &[("Authorization", &format!("Bearer {token}"))])
            .map_err(|e| e.to_string())?;
        let mut resp = worker::Fetch::Request(req).send().await.map_err(|e| e.to_string())?;
        if resp.status_code() != 200 {
            return Err(format!("HTTP {}", resp.status_code()));
        }
        resp.text().await.map_err(|e| e.to_string())
    }
    .await;
    let outcome = DEVICES.with(|d| d.borrow_mut().apply(fetched.as_deref().map_err(Clone::clone)));
    if let PullOutcome::KeptLastGood(why) = outcome {
        console_error!("device list from the issuer unavailable ({why}); keeping the last good list");
    }
}

/// The device tokens this request is checked against (one thread-local look-up once pulled).
async fn device_tokens(env: &Env) -> std::result::Result<Rc<TokenSet>, ApiError> {
    pull_devices(env, now_ms()).await;
    let configured = var(env, "SCANNER_TOKEN_HASHES").unwrap_or_default();
    DEVICES.with(|d| d.borrow_mut().tokens(&configured)).map_err(|bad| {
        // Only the first characters of each bad entry are shown: they are hashes, but keep logs short.
        ApiError::Misconfigured(format!("SCANNER_TOKEN_HASHES has entries that are not SHA-256 hex[:event]: {bad:?}"))
    })
}

/// Checks the device token, for `event` when the request is about one (`None`: any event the token is
/// valid for); returns the device's identity (its token's hash, never the token). Unknown: 401; valid
/// for another event: 403.
async fn authenticate(req: &Request, env: &Env, event: Option<u32>) -> std::result::Result<[u8; 32], ApiError> {
    let tokens = device_tokens(env).await?;
    let authorization = header(req, "Authorization");
    match event {
        Some(event) => Ok(tokens.authenticate(authorization.as_deref(), event)?),
        None => tokens.device_of(authorization.as_deref()).ok_or(ApiError::Unauthorized),
    }
}

/// [`authenticate`] for the event of the request's `?event=` (401 before the query is looked at).
async fn authenticate_query_event(req: &Request, env: &Env) -> std::result::Result<([u8; 32], u32), ApiError> {
    authenticate(req, env, None).await?;
    let event = query_event(req)?;
    Ok((authenticate(req, env, Some(event)).await?, event))
}

/// A relay session's peer: another sync server (the issuer) holding a token whose SHA-256 is in
/// `RELAY_TOKEN_HASHES`. Returns the token's hash (the peer's key for its sync state) and the event.
fn authenticate_relay(req: &Request, env: &Env) -> std::result::Result<([u8; 32], u32), ApiError> {
    let event = query_event(req)?;
    let Some(list) = var(env, "RELAY_TOKEN_HASHES").filter(|l| !l.trim().is_empty()) else {
        return Err(ApiError::Unauthorized);
    };
    let relays = TokenSet::parse(&list).map_err(|bad| {
        ApiError::Misconfigured(format!("RELAY_TOKEN_HASHES has {} entries that are not SHA-256 hex", bad.len()))
    })?;
    let hash =
        relays.authenticate(header(req, "Authorization").as_deref(), event).map_err(|_| ApiError::Unauthorized)?;
    Ok((hash, event))
}

/// Reads a body no larger than `limit`, refusing by declared length before reading.
async fn read_body(req: &mut Request, limit: usize) -> std::result::Result<Vec<u8>, ApiError> {
    check_declared_length(header(req, "Content-Length").as_deref(), limit)?;
    let body = req.bytes().await.map_err(|_| ApiError::BadRequest("the body could not be read".into()))?;
    if body.len() > limit {
        return Err(ApiError::TooLarge(limit));
    }
    Ok(body)
}

fn stub(env: &Env, binding: &str, name: &str) -> std::result::Result<Stub, ApiError> {
    env.durable_object(binding)
        .and_then(|ns| ns.id_from_name(name)?.get_stub())
        .map_err(|_| ApiError::Misconfigured(format!("Durable Object binding {binding} is missing")))
}

/// An internal request to a Durable Object.
fn internal_request(
    url: &str,
    method: Method,
    body: Option<JsValue>,
    headers: &[(&str, &str)],
) -> std::result::Result<Request, ApiError> {
    let h = Headers::new();
    for (name, value) in headers {
        h.set(name, value).map_err(|_| ApiError::Internal)?;
    }
    let mut init = RequestInit::new();
    init.with_method(method).with_body(body).with_headers(h);
    Request::new_with_init(url, &init).map_err(|_| ApiError::Internal)
}

/// Sends an internal request and passes the answer (status, type, body) through unchanged.
async fn pass_through(stub: &Stub, req: Request, what: &str) -> std::result::Result<Response, ApiError> {
    let mut resp = stub.fetch_with_request(req).await.map_err(|e| {
        console_error!("{what} unavailable: {e}");
        ApiError::Internal
    })?;
    let status = resp.status_code();
    let content_type = resp.headers().get("Content-Type").ok().flatten();
    let body = resp.bytes().await.map_err(|_| ApiError::Internal)?;
    let headers = Headers::new();
    if let Some(ct) = content_type {
        headers.set("Content-Type", &ct).map_err(|_| ApiError::Internal)?;
    }
    headers.set("Cache-Control", "no-store").map_err(|_| ApiError::Internal)?;
    Ok(Response::from_bytes(body).map_err(|_| ApiError::Internal)?.with_status(status).with_headers(headers))
}

async fn handle_redeem(mut req: Request, env: &Env) -> std::result::Result<Response, ApiError> {
    if req.method() != Method::Post {
        return Err(ApiError::MethodNotAllowed);
    }
    authenticate(&req, env, None).await?;
    if !is_json(header(&req, "Content-Type").as_deref()) {
        return Err(ApiError::UnsupportedMediaType("application/json"));
    }
    let body = read_body(&mut req, MAX_REDEEM_BODY).await?;
    let redeem_req = parse_redeem(&body)?;
    // The token must be valid for the event being scanned (403 otherwise).
    authenticate(&req, env, Some(redeem_req.event)).await?;
    // Parse only, to route: the shard verifies and decides in one step (scanner-core's `decide`), so the
    // signature is checked exactly once per redemption. Texts that are not tickets never reach a shard.
    let ticket = match ticket_of(&redeem_req.qr_text) {
        Ok((ticket, _)) => ticket,
        Err(refusal) => return json_ok(verdict_json(&api::refused(&refusal))),
    };
    // The shard of the event being scanned: a ticket for another event is refused there as wrong_event.
    let shard = stub(env, "REDEMPTIONS", &shard_name(redeem_req.event, shard_of(&ticket)))?;
    let payload = serde_json::to_string(&ShardRedeem { request: redeem_req, now_ms: now_ms() })
        .map_err(|_| ApiError::Internal)?;
    let inner = internal_request("https://shard/redeem", Method::Post, Some(JsValue::from_str(&payload)), &[])?;
    pass_through(&shard, inner, "redemption shard").await
}

/// The `channel` query parameter of a device's sync request: `push` or `pull` (see `SyncChannel`).
fn query_channel(req: &Request) -> std::result::Result<SyncChannel, ApiError> {
    let url = req.url().map_err(|_| ApiError::BadRequest("bad URL".into()))?;
    let channel = url.query_pairs().find(|(k, _)| k == "channel").map(|(_, v)| v.into_owned());
    channel
        .as_deref()
        .and_then(SyncChannel::parse)
        .ok_or_else(|| ApiError::BadRequest("give the sync channel: &channel=push or &channel=pull".into()))
}

fn query_event(req: &Request) -> std::result::Result<u32, ApiError> {
    let url = req.url().map_err(|_| ApiError::BadRequest("bad URL".into()))?;
    let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    event_param(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// `POST /v1/sync?event=ID`: one automerge sync message, as the issuer's sync server takes it.
async fn handle_sync(mut req: Request, env: &Env) -> std::result::Result<Response, ApiError> {
    if req.method() != Method::Post {
        return Err(ApiError::MethodNotAllowed);
    }
    // Who is asking comes first (a device learns 401/403 before it learns its request is malformed).
    let channel = query_channel(&req);
    let (device, event) = match channel {
        Ok(SyncChannel::Relay) => authenticate_relay(&req, env)?,
        _ => authenticate_query_event(&req, env).await?,
    };
    let channel = channel?;
    if !is_sync_body(header(&req, "Content-Type").as_deref()) {
        return Err(ApiError::UnsupportedMediaType("application/octet-stream"));
    }
    let body = read_body(&mut req, MAX_SYNC_BODY).await?;
    // The log keeps automerge sync state per device and channel, keyed by the device's token hash: every
    // device needs its own token, or two devices would share one state and the log would think one has
    // what only the other has. The log takes from the device only what it wrote under the id bound to
    // that token.
    let peer: String = device.iter().map(|b| format!("{b:02x}")).collect();
    let log = stub(env, "REDEMPTION_LOG", &log_name(event))?;
    let inner = internal_request(
        &format!("https://log/sync?event={event}&channel={}", channel.as_str()),
        Method::Post,
        Some(Uint8Array::from(body.as_slice()).into()),
        &[(PEER_HEADER, &peer)],
    )?;
    pass_through(&log, inner, "redemption log").await
}

/// `GET /v1/report?event=ID[&format=text]`: scanner-core's report over the edge's log.
async fn handle_report(req: Request, env: &Env) -> std::result::Result<Response, ApiError> {
    if req.method() != Method::Get {
        return Err(ApiError::MethodNotAllowed);
    }
    let (_, event) = authenticate_query_event(&req, env).await?;
    let text = req.url().map_err(|_| ApiError::Internal)?.query_pairs().any(|(k, v)| k == "format" && v == "text");
    let log = stub(env, "REDEMPTION_LOG", &log_name(event))?;
    let format = if text { "&format=text" } else { "" };
    let inner = internal_request(&format!("https://log/report?event={event}{format}"), Method::Get, None, &[])?;
    pass_through(&log, inner, "redemption log").await
}

/// `GET /v1/scanner/...`: what `scanner init --server` fetches, so a device can be set up against the
/// edge as against the issuer. The keyring is public (as on the issuer); the rest needs a device token.
async fn handle_scanner_config(req: Request, env: &Env, path: &str) -> std::result::Result<Response, ApiError> {
    if req.method() != Method::Get {
        return Err(ApiError::MethodNotAllowed);
    }
    if path == "/v1/scanner/keyring" {
        return json_ok(load_trust(env).await?.keyring.to_json());
    }
    authenticate(&req, env, None).await?;
    if path == "/v1/scanner/revocations" {
        // Not about one event; a device that names one (`?event=`) must be valid for it.
        if req.url().map_err(|_| ApiError::Internal)?.query_pairs().any(|(k, _)| k == "event") {
            authenticate_query_event(&req, env).await?;
        }
        let url = req.url().map_err(|_| ApiError::Internal)?;
        let since = match url.query_pairs().find(|(k, _)| k == "since") {
            Some((_, v)) => v.parse::<u64>().map_err(|_| ApiError::BadRequest("since must be a number".into()))?,
            None => 0,
        };
        return json_ok(load_trust(env).await?.revocations.delta_since(since).to_json());
    }
    let event = path
        .strip_prefix("/v1/scanner/events/")
        .and_then(|rest| rest.strip_suffix("/manifest"))
        .and_then(|id| id.parse::<u32>().ok())
        .ok_or(ApiError::NotFound)?;
    authenticate(&req, env, Some(event)).await?;
    // The issuer publishes each event's manifest to KV; the edge hands it out as it is.
    let kv = env.kv("CONFIG").map_err(|_| ApiError::NotFound)?;
    match kv.get(&format!("manifest:{event}")).text().await.map_err(|_| ApiError::Internal)? {
        Some(manifest) => json_ok(manifest),
        None => Err(ApiError::NotFound),
    }
}

async fn route(req: Request, env: &Env) -> std::result::Result<Response, ApiError> {
    let path = req.path();
    match path.as_str() {
        "/v1/redeem" => handle_redeem(req, env).await,
        "/v1/sync" => handle_sync(req, env).await,
        "/v1/report" => handle_report(req, env).await,
        "/v1/health" => json_ok(r#"{"ok":true}"#.to_owned()),
        p if p.starts_with("/v1/scanner/") => handle_scanner_config(req, env, p).await,
        _ => Err(ApiError::NotFound),
    }
}

fn add_cors(resp: Response, origin: Option<&str>) -> Result<Response> {
    let Some(origin) = origin else { return Ok(resp) };
    let mut resp = resp;
    let headers = resp.headers_mut();
    headers.set("Access-Control-Allow-Origin", origin)?;
    headers.set("Vary", "Origin")?;
    Ok(resp)
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let origin = header(&req, "Origin");
    let allowed = var(&env, "ALLOWED_ORIGINS").map(|v| split_list(&v)).unwrap_or_default();
    let cors = cors_origin(origin.as_deref(), &allowed).map(str::to_owned);
    if req.method() == Method::Options {
        // Preflight needs no token: browsers never send credentials with it.
        let mut resp = Response::empty()?.with_status(204);
        if cors.is_some() {
            let h = resp.headers_mut();
            h.set("Access-Control-Allow-Methods", "POST, GET, OPTIONS")?;
            h.set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Device-Id")?;
            h.set("Access-Control-Max-Age", "600")?;
        }
        return add_cors(resp, cors.as_deref());
    }
    let resp = match route(req, &env).await {
        Ok(resp) => resp,
        Err(e) => {
            if e.status() >= 500 {
                console_error!("edge error: {e}");
            }
            error_response(&e)?
        }
    };
    add_cors(resp, cors.as_deref())
}

fn storage_error(what: &'static str) -> impl Fn(worker::Error) -> ApiError {
    move |e| {
        console_error!("{what}: {e}");
        ApiError::Internal
    }
}

/// One redemption shard: owns the redemption state of the tickets of one event that hash to it.
///
/// Storage: `t:<ticket ref>` → the ticket's [`TicketHistory`] (JSON); `o:<event>:<ticket ref>:<clock>` →
/// an admission not yet acknowledged by the event's log (the outbox, JSON [`StoredScan`]).
#[durable_object]
pub struct RedemptionShard {
    state: State,
    env: Env,
    /// An alarm is known to be set (saves a storage call per redemption while one is pending).
    alarm_pending: Cell<bool>,
}

fn history_key(ticket: &TicketRef) -> String {
    format!("t:{}", ticket.to_hex())
}

fn outbox_key(event: u32, scan: &StoredScan) -> String {
    format!("o:{event}:{}", scan.record)
}

/// The event of an outbox key.
fn outbox_event(key: &str) -> Option<u32> {
    key.strip_prefix("o:")?.split(':').next()?.parse().ok()
}

async fn load_history(storage: &worker::Storage, key: &str) -> std::result::Result<TicketHistory, ApiError> {
    match storage.get::<String>(key).await.map_err(storage_error("shard storage read failed"))? {
        Some(json) => serde_json::from_str(&json).map_err(|e| {
            console_error!("shard history {key} unreadable: {e}");
            ApiError::Internal
        }),
        None => Ok(TicketHistory::default()),
    }
}

impl RedemptionShard {
    async fn ensure_alarm(&self) -> std::result::Result<(), ApiError> {
        if !self.alarm_pending.get() {
            let delay =
                var(&self.env, "LOG_FORWARD_DELAY_MS").and_then(|v| v.trim().parse().ok()).unwrap_or(OUTBOX_DELAY_MS);
            self.state.storage().set_alarm(delay).await.map_err(storage_error("shard alarm"))?;
            self.alarm_pending.set(true);
        }
        Ok(())
    }

    async fn redeem(&self, mut req: Request) -> std::result::Result<Response, ApiError> {
        let body = req.bytes().await.map_err(|_| ApiError::Internal)?;
        let shard_req: ShardRedeem = serde_json::from_slice(&body).map_err(|_| ApiError::Internal)?;
        let ShardRedeem { request: valid, now_ms: now } = shard_req;
        let (ticket, _) = match ticket_of(&valid.qr_text) {
            Ok(t) => t,
            Err(refusal) => return json_ok(verdict_json(&api::refused(&refusal))),
        };
        // Everything that may wait on something other than this object's storage happens before the
        // read: between the read and the write below there is no other await, so the input/output
        // gates make read-decide-write atomic against every other request to this shard.
        let trust = load_trust(&self.env).await?;
        // Armed before the write (a spurious alarm finds an empty outbox; a missing one would strand it).
        self.ensure_alarm().await?;
        let storage = self.state.storage();
        let key = history_key(&ticket);
        let mut history = load_history(&storage, &key).await?;
        let outcome = redeem(&history, &valid, &trust.context(valid.event, now / 1000), now).map_err(|e| {
            console_error!("shard history unreadable: {e}");
            ApiError::Internal
        })?;
        if let Some(scan) = outcome.recorded {
            // The history and the outbox entry in one write: an admission is never decided without
            // also being on its way to the log.
            let entries = Object::new();
            let outbox = serde_json::to_string(&scan).map_err(|_| ApiError::Internal)?;
            Reflect::set(&entries, &JsValue::from_str(&outbox_key(valid.event, &scan)), &JsValue::from_str(&outbox))
                .map_err(|_| ApiError::Internal)?;
            history.insert(scan);
            let json = serde_json::to_string(&history).map_err(|_| ApiError::Internal)?;
            Reflect::set(&entries, &JsValue::from_str(&key), &JsValue::from_str(&json))
                .map_err(|_| ApiError::Internal)?;
            storage.put_multiple_raw(entries).await.map_err(storage_error("shard storage write failed"))?;
        }
        json_ok(recorded_verdict_json(&outcome.verdict, outcome.hlc))
    }

    /// Records devices synced into the log: added to their tickets' histories (idempotently).
    async fn relay(&self, mut req: Request) -> std::result::Result<Response, ApiError> {
        let body = req.bytes().await.map_err(|_| ApiError::Internal)?;
        let relayed: RelayRequest = serde_json::from_slice(&body).map_err(|_| ApiError::Internal)?;
        let mut by_ticket: BTreeMap<TicketRef, Vec<StoredScan>> = BTreeMap::new();
        for scan in relayed.scans {
            let ticket = scan.scan_record().map_err(|_| ApiError::BadRequest("relayed record".into()))?.ticket;
            by_ticket.entry(ticket).or_default().push(scan);
        }
        let storage = self.state.storage();
        let mut added = 0usize;
        for (ticket, scans) in by_ticket {
            // Read and write with no other await between (as in redeem): atomic against redemptions.
            let key = history_key(&ticket);
            let mut history = load_history(&storage, &key).await?;
            let before = history.scans.len();
            for scan in scans {
                history.insert(scan);
            }
            if history.scans.len() != before {
                added += history.scans.len() - before;
                let json = serde_json::to_string(&history).map_err(|_| ApiError::Internal)?;
                storage.put(&key, json).await.map_err(storage_error("shard storage write failed"))?;
            }
        }
        json_ok(format!(r#"{{"added":{added}}}"#))
    }

    /// Sends the outbox to the event's log until it is empty.
    async fn drain_outbox(&self) -> std::result::Result<(), ApiError> {
        let storage = self.state.storage();
        loop {
            let listed = storage
                .list_with_options(ListOptions::new().prefix("o:").limit(OUTBOX_BATCH))
                .await
                .map_err(storage_error("shard outbox read failed"))?;
            let mut keys = Vec::new();
            let mut by_event: BTreeMap<u32, Vec<StoredScan>> = BTreeMap::new();
            for entry in listed.entries() {
                let pair = worker::js_sys::Array::from(&entry.map_err(|_| ApiError::Internal)?);
                let key = pair.get(0).as_string().unwrap_or_default();
                let value = pair.get(1).as_string().unwrap_or_default();
                let (Some(event), Ok(scan)) = (outbox_event(&key), serde_json::from_str::<StoredScan>(&value)) else {
                    // Unreadable entries cannot be delivered; keep them for inspection, do not loop on them.
                    console_error!("shard outbox entry {key} is unreadable; skipped");
                    continue;
                };
                by_event.entry(event).or_default().push(scan);
                keys.push(key);
            }
            if keys.is_empty() {
                return Ok(());
            }
            for (event, scans) in by_event {
                let body = serde_json::to_string(&AppendRequest { event, scans }).map_err(|_| ApiError::Internal)?;
                let log = stub(&self.env, "REDEMPTION_LOG", &log_name(event))?;
                let req = internal_request("https://log/append", Method::Post, Some(JsValue::from_str(&body)), &[])?;
                let resp = log.fetch_with_request(req).await.map_err(|e| {
                    console_error!("redemption log unavailable: {e}");
                    ApiError::Internal
                })?;
                if resp.status_code() != 200 {
                    console_error!("redemption log refused the outbox: HTTP {}", resp.status_code());
                    return Err(ApiError::Internal);
                }
            }
            storage.delete_multiple(keys).await.map_err(storage_error("shard outbox delete failed"))?;
        }
    }
}

impl DurableObject for RedemptionShard {
    fn new(state: State, env: Env) -> Self {
        Self { state, env, alarm_pending: Cell::new(false) }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let result = match req.path().as_str() {
            "/redeem" => self.redeem(req).await,
            "/relay" => self.relay(req).await,
            _ => Err(ApiError::NotFound),
        };
        match result {
            Ok(resp) => Ok(resp),
            Err(e) => error_response(&e),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarm_pending.set(false);
        if let Err(e) = self.drain_outbox().await {
            console_error!("shard outbox not drained ({e}); retrying in {RETRY_MS} ms");
            self.state.storage().set_alarm(RETRY_MS).await?;
            self.alarm_pending.set(true);
        }
        Response::ok("")
    }
}

/// An event's log in memory, with its storage bookkeeping.
struct LoadedLog {
    relay: LogRelay,
    /// Stored pieces of the log.
    parts: i64,
    /// Records per device already relayed to the shards.
    relayed: BTreeMap<DeviceId, usize>,
}

/// One event's redemption log: serves `/v1/sync` to devices, takes the shards' admissions, relays
/// devices' records to the shards and answers the report.
///
/// Storage (SQLite): `log_part(seq, bytes)` — the automerge log as a full save followed by incremental
/// chunks, each at most [`LOG_PART_BYTES`]; `pending(record, scan)` — edge admissions acknowledged to
/// their shard but not yet folded into the document; `peer(device, state)` — automerge sync state per
/// device token; `relayed(device, records)` — the relay cursor; `meta(key, value)` — the event id (for
/// alarms).
#[durable_object]
pub struct RedemptionLogObject {
    state: State,
    env: Env,
    log: RefCell<Option<LoadedLog>>,
    relaying: Cell<bool>,
    /// An alarm is known to be set (saves a storage call per forwarded batch while one is pending).
    alarm_pending: Cell<bool>,
}

fn sql_err(e: worker::Error) -> ApiError {
    console_error!("log storage: {e}");
    ApiError::Internal
}

fn sql_int(value: Option<&SqlStorageValue>) -> Option<i64> {
    match value {
        Some(SqlStorageValue::Integer(n)) => Some(*n),
        Some(SqlStorageValue::Float(f)) => Some(*f as i64),
        _ => None,
    }
}

fn sql_rows(sql: &SqlStorage, query: &str, bindings: Vec<SqlStorageValue>) -> Result<Vec<Vec<SqlStorageValue>>> {
    sql.exec(query, bindings)?.raw().collect()
}

fn store_parts(sql: &SqlStorage, first_seq: i64, bytes: &[u8]) -> std::result::Result<i64, ApiError> {
    let mut seq = first_seq;
    for part in bytes.chunks(LOG_PART_BYTES) {
        sql.exec(
            "INSERT INTO log_part (seq, bytes) VALUES (?, ?)",
            vec![seq.into(), SqlStorageValue::Blob(part.to_vec())],
        )
        .map_err(sql_err)?;
        seq += 1;
    }
    Ok(seq - first_seq)
}

impl RedemptionLogObject {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    /// Loads the log on first use (synchronous: SQLite calls do not wait, so nothing interleaves).
    fn ensure_loaded(&self, event: u32) -> std::result::Result<(), ApiError> {
        if let Some(loaded) = self.log.borrow().as_ref() {
            if loaded.relay.event() != event {
                console_error!("log object of event {} asked about event {event}", loaded.relay.event());
                return Err(ApiError::Internal);
            }
            return Ok(());
        }
        let sql = self.sql();
        for ddl in [
            "CREATE TABLE IF NOT EXISTS log_part (seq INTEGER PRIMARY KEY, bytes BLOB NOT NULL)",
            "CREATE TABLE IF NOT EXISTS pending (record TEXT PRIMARY KEY, scan TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS peer (device TEXT PRIMARY KEY, state BLOB NOT NULL)",
            "CREATE TABLE IF NOT EXISTS relayed (device TEXT PRIMARY KEY, records INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        ] {
            sql.exec(ddl, None).map_err(sql_err)?;
        }
        sql.exec("INSERT OR IGNORE INTO meta (key, value) VALUES ('event', ?)", vec![i64::from(event).into()])
            .map_err(sql_err)?;
        let mut saved = Vec::new();
        let mut parts = 0;
        for row in sql_rows(&sql, "SELECT bytes FROM log_part ORDER BY seq", vec![]).map_err(sql_err)? {
            if let Some(SqlStorageValue::Blob(bytes)) = row.into_iter().next() {
                saved.extend_from_slice(&bytes);
                parts += 1;
            }
        }
        let relay = LogRelay::load(event, &saved).map_err(|e| {
            console_error!("stored redemption log of event {event} is damaged: {e}");
            ApiError::Internal
        })?;
        let mut relayed = BTreeMap::new();
        for row in sql_rows(&sql, "SELECT device, records FROM relayed", vec![]).map_err(sql_err)? {
            if let (Some(SqlStorageValue::String(device)), Some(n)) = (row.first(), sql_int(row.get(1))) {
                if let Some(device) = DeviceId::from_hex(device) {
                    relayed.insert(device, usize::try_from(n).unwrap_or(0));
                }
            }
        }
        *self.log.borrow_mut() = Some(LoadedLog { relay, parts, relayed });
        Ok(())
    }

    /// Writes what changed in the log (or, every so often, the whole log compacted).
    fn persist(&self, loaded: &mut LoadedLog) -> std::result::Result<(), ApiError> {
        let chunk = loaded.relay.take_unsaved();
        if chunk.is_empty() {
            return Ok(());
        }
        let sql = self.sql();
        if loaded.parts >= COMPACT_AFTER_PARTS {
            // No await between the delete and the inserts: the runtime commits them together.
            let full = loaded.relay.save_all();
            sql.exec("DELETE FROM log_part", None).map_err(sql_err)?;
            loaded.parts = store_parts(&sql, 0, &full)?;
            return Ok(());
        }
        let next = sql_rows(&sql, "SELECT COALESCE(MAX(seq) + 1, 0) FROM log_part", vec![])
            .map_err(sql_err)?
            .first()
            .and_then(|row| sql_int(row.first()))
            .unwrap_or(0);
        loaded.parts += store_parts(&sql, next, &chunk)?;
        Ok(())
    }

    /// Folds the buffered edge admissions into the document: appended, stored, and removed from the
    /// buffer with no await in between, so the runtime commits the three together.
    fn fold(&self) -> std::result::Result<(), ApiError> {
        let sql = self.sql();
        let mut scans = Vec::new();
        for row in sql_rows(&sql, "SELECT scan FROM pending", vec![]).map_err(sql_err)? {
            match row.first() {
                Some(SqlStorageValue::String(json)) => match serde_json::from_str::<StoredScan>(json) {
                    Ok(scan) => scans.push(scan),
                    Err(e) => console_error!("pending edge admission unreadable, dropped: {e}"),
                },
                _ => console_error!("pending edge admission is not text, dropped"),
            }
        }
        if scans.is_empty() {
            return Ok(());
        }
        let mut guard = self.log.borrow_mut();
        let loaded = guard.as_mut().ok_or(ApiError::Internal)?;
        let now_secs = i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX);
        if let Err(e) = loaded.relay.append_edge(&scans, now_secs) {
            // Left in the buffer: the edge's records are ours, so this is a bug to see, not to hide.
            console_error!("edge admissions refused by the log: {e}");
            *guard = None;
            return Err(ApiError::Internal);
        }
        if let Err(e) = self.persist(loaded) {
            // Memory must not run ahead of storage: reload from what was stored.
            *guard = None;
            return Err(e);
        }
        sql.exec("DELETE FROM pending", None).map_err(sql_err)?;
        Ok(())
    }

    fn sync(
        &self,
        event: u32,
        peer: &str,
        channel: SyncChannel,
        message: &[u8],
    ) -> std::result::Result<(Response, bool), ApiError> {
        let token_hash = scanner_core::token::parse_token_hash(peer).ok_or(ApiError::Internal)?;
        let accept = match channel {
            SyncChannel::Relay => Accept::relay(now_ms()),
            SyncChannel::Push | SyncChannel::Pull => {
                Accept::device(scanner_core::token::device_id_for_token_hash(&token_hash), now_ms())
            }
        };
        let peer = &format!("{peer}.{}", channel.as_str());
        if message.len() > MAX_SYNC_MESSAGE_BYTES {
            return Err(ApiError::TooLarge(MAX_SYNC_MESSAGE_BYTES));
        }
        self.ensure_loaded(event)?;
        self.fold()?;
        let sql = self.sql();
        let mut state = sql_rows(&sql, "SELECT state FROM peer WHERE device = ?", vec![peer.to_owned().into()])
            .map_err(sql_err)?
            .into_iter()
            .next()
            .and_then(|row| match row.into_iter().next() {
                Some(SqlStorageValue::Blob(bytes)) => decode_peer_state(&bytes).ok(),
                _ => None,
            })
            // Losing a peer state only makes the next exchange with that device longer.
            .unwrap_or_default();
        let mut guard = self.log.borrow_mut();
        let loaded = guard.as_mut().ok_or(ApiError::Internal)?;
        let reply = loaded.relay.serve(&mut state, message, accept, channel).map_err(|e| match e {
            RelayError::Sync(SyncError::TooLarge(_)) => ApiError::TooLarge(MAX_SYNC_MESSAGE_BYTES),
            other => ApiError::BadRequest(other.to_string()),
        })?;
        if reply.received.changed {
            if let Err(e) = self.persist(loaded) {
                // Memory must not run ahead of storage: reload from what was stored.
                *guard = None;
                return Err(e);
            }
        }
        sql.exec(
            "INSERT OR REPLACE INTO peer (device, state) VALUES (?, ?)",
            vec![peer.to_owned().into(), SqlStorageValue::Blob(encode_peer_state(&state))],
        )
        .map_err(sql_err)?;
        let resp = match reply.reply {
            Some(bytes) => {
                let headers = Headers::new();
                headers.set("Content-Type", "application/octet-stream").map_err(|_| ApiError::Internal)?;
                Response::from_bytes(bytes).map_err(|_| ApiError::Internal)?.with_headers(headers)
            }
            None => Response::empty().map_err(|_| ApiError::Internal)?.with_status(204),
        };
        Ok((resp, reply.received.new_records > 0))
    }

    /// A shard's forwarded admissions: buffered durably (acknowledged once stored), folded in later.
    /// Keyed by record, so a batch re-sent after a lost acknowledgement is stored once.
    fn append(&self, body: &[u8]) -> std::result::Result<Response, ApiError> {
        let append: AppendRequest = serde_json::from_slice(body).map_err(|_| ApiError::Internal)?;
        self.ensure_loaded(append.event)?;
        let sql = self.sql();
        for scan in &append.scans {
            let json = serde_json::to_string(scan).map_err(|_| ApiError::Internal)?;
            sql.exec(
                "INSERT OR IGNORE INTO pending (record, scan) VALUES (?, ?)",
                vec![scan.record.clone().into(), json.into()],
            )
            .map_err(sql_err)?;
        }
        json_ok(format!(r#"{{"buffered":{}}}"#, append.scans.len()))
    }

    async fn ensure_alarm(&self, delay_ms: i64) -> std::result::Result<(), ApiError> {
        if !self.alarm_pending.get() {
            self.state.storage().set_alarm(delay_ms).await.map_err(storage_error("log alarm"))?;
            self.alarm_pending.set(true);
        }
        Ok(())
    }

    fn report(&self, event: u32, text: bool) -> std::result::Result<Response, ApiError> {
        self.ensure_loaded(event)?;
        self.fold()?;
        let guard = self.log.borrow();
        let loaded = guard.as_ref().ok_or(ApiError::Internal)?;
        let report = loaded.relay.report().map_err(|e| {
            console_error!("report: {e}");
            ApiError::Internal
        })?;
        if text {
            let headers = Headers::new();
            headers.set("Content-Type", "text/plain; charset=utf-8").map_err(|_| ApiError::Internal)?;
            return Ok(Response::ok(report.to_table()).map_err(|_| ApiError::Internal)?.with_headers(headers));
        }
        json_ok(serde_json::to_string(&report).map_err(|_| ApiError::Internal)?)
    }

    /// Hands devices' new records to their shards, then moves the relay cursors. A failure leaves the
    /// cursors where they were (re-sending is harmless: shards skip scans they have) and re-arms the alarm.
    async fn relay_backlog(&self) -> std::result::Result<(), ApiError> {
        if self.relaying.replace(true) {
            // Another request is relaying; it loops until the backlog is empty.
            return Ok(());
        }
        let result = self.relay_until_empty().await;
        self.relaying.set(false);
        result
    }

    async fn relay_until_empty(&self) -> std::result::Result<(), ApiError> {
        loop {
            let (event, backlog) = {
                let guard = self.log.borrow();
                let loaded = guard.as_ref().ok_or(ApiError::Internal)?;
                let backlog = loaded.relay.backlog(&loaded.relayed).map_err(|e| {
                    console_error!("relay backlog: {e}");
                    ApiError::Internal
                })?;
                (loaded.relay.event(), backlog)
            };
            if backlog.is_empty() {
                return Ok(());
            }
            let mut sends = Vec::new();
            for (shard, scans) in backlog.by_shard {
                let body = serde_json::to_string(&RelayRequest { scans }).map_err(|_| ApiError::Internal)?;
                let target = stub(&self.env, "REDEMPTIONS", &shard_name(event, shard))?;
                let req = internal_request("https://shard/relay", Method::Post, Some(JsValue::from_str(&body)), &[])?;
                sends.push(async move { target.fetch_with_request(req).await.map(|r| r.status_code()) });
            }
            for result in futures_util::future::join_all(sends).await {
                match result {
                    Ok(200) => {}
                    Ok(status) => {
                        console_error!("shard refused relayed records: HTTP {status}");
                        return Err(ApiError::Internal);
                    }
                    Err(e) => {
                        console_error!("shard unavailable for relayed records: {e}");
                        return Err(ApiError::Internal);
                    }
                }
            }
            let sql = self.sql();
            let mut guard = self.log.borrow_mut();
            let loaded = guard.as_mut().ok_or(ApiError::Internal)?;
            for (device, records) in backlog.cursors {
                let cursor = loaded.relayed.entry(device).or_default();
                *cursor = (*cursor).max(records);
                sql.exec(
                    "INSERT OR REPLACE INTO relayed (device, records) VALUES (?, ?)",
                    vec![device.to_hex().into(), i64::try_from(*cursor).unwrap_or(i64::MAX).into()],
                )
                .map_err(sql_err)?;
            }
        }
    }

    async fn relay_or_retry(&self) {
        if let Err(e) = self.relay_backlog().await {
            console_error!("relay to shards failed ({e}); retrying in {RETRY_MS} ms");
            match self.state.storage().set_alarm(RETRY_MS).await {
                Ok(()) => self.alarm_pending.set(true),
                Err(e) => console_error!("cannot arm the relay alarm: {e}"),
            }
        }
    }

    async fn handle(&self, mut req: Request) -> std::result::Result<Response, ApiError> {
        let path = req.path();
        match path.as_str() {
            "/sync" => {
                let event = query_event(&req)?;
                let channel = query_channel(&req)?;
                let peer = header(&req, PEER_HEADER).ok_or(ApiError::Internal)?;
                let body = req.bytes().await.map_err(|_| ApiError::BadRequest("the body could not be read".into()))?;
                let (resp, new_records) = self.sync(event, &peer, channel, &body)?;
                if new_records {
                    // Before the reply: once a device has synced, its admissions hold at every gate.
                    // The alarm is the backstop if this object stops before the relay completes.
                    self.ensure_alarm(RETRY_MS).await?;
                    self.relay_or_retry().await;
                }
                Ok(resp)
            }
            "/append" => {
                let body = req.bytes().await.map_err(|_| ApiError::Internal)?;
                // Armed before the write (a spurious alarm finds nothing to fold).
                self.ensure_alarm(FOLD_DELAY_MS).await?;
                self.append(&body)
            }
            "/report" => {
                let event = query_event(&req)?;
                let text =
                    req.url().map_err(|_| ApiError::Internal)?.query_pairs().any(|(k, v)| k == "format" && v == "text");
                self.report(event, text)
            }
            _ => Err(ApiError::NotFound),
        }
    }
}

impl DurableObject for RedemptionLogObject {
    fn new(state: State, env: Env) -> Self {
        Self { state, env, log: RefCell::new(None), relaying: Cell::new(false), alarm_pending: Cell::new(false) }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match self.handle(req).await {
            Ok(resp) => Ok(resp),
            Err(e) => error_response(&e),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let event = {
            let sql = self.sql();
            sql_rows(&sql, "SELECT value FROM meta WHERE key = 'event'", vec![])
                .ok()
                .and_then(|rows| rows.first().and_then(|row| sql_int(row.first())))
                .and_then(|n| u32::try_from(n).ok())
        };
        self.alarm_pending.set(false);
        let Some(event) = event else { return Response::ok("") };
        if let Err(e) = self.ensure_loaded(event).and_then(|()| self.fold()) {
            console_error!("log alarm: buffered admissions not folded ({e}); retrying in {RETRY_MS} ms");
            self.state.storage().set_alarm(RETRY_MS).await?;
            self.alarm_pending.set(true);
            return Response::ok("");
        }
        self.relay_or_retry().await;
        Response::ok("")
    }
}
