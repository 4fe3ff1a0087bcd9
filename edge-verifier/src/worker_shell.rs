//! The Workers runtime shell (wasm32 only): HTTP routing, bindings and Durable Object storage. Every
//! decision is delegated to the plain modules of this crate and, through them, to scanner-core.
//!
//! Bindings (see wrangler.toml):
//! - `REDEMPTIONS`: Durable Object namespace of [`RedemptionShard`] (ticket redemption state, sharded by
//!   event and ticket reference);
//! - `CONFIG` (optional KV): keys `keyring` and `revocations`, which override the variables below;
//! - variables `KEYRING_JSON`, `REVOCATIONS_JSON` (optional), `ALLOWED_ORIGINS`;
//! - secret `SCANNER_TOKEN_HASHES`: SHA-256 hex of each allowed scanner device token.

use std::cell::RefCell;
use std::rc::Rc;

use worker::wasm_bindgen::JsValue;
use worker::{
    console_error, durable_object, event, Context, Date, DurableObject, Env, Headers, Method, Request, RequestInit,
    Response, Result, State,
};

use crate::api::{
    self, check_declared_length, cors_origin, is_json, parse_redeem, split_list, verdict_json, ApiError, ShardRedeem,
    MAX_REDEEM_BODY,
};
use crate::auth::TokenSet;
use crate::config::Trust;
use crate::history::{redeem, ticket_of, TicketHistory};
use crate::shard::{shard_name, shard_of};

/// How long a keyring / revocation list read from KV is reused before KV is read again. KV itself is
/// eventually consistent (~60 s), so a shorter cache would not make revocations land sooner.
const KV_CACHE_MS: u64 = 30_000;

struct CachedTrust {
    source: String,
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

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string()).or_else(|| env.secret(name).ok().map(|v| v.to_string()))
}

/// The keyring and revocation list: from KV `CONFIG` if bound and populated, else from the variables.
async fn load_trust(env: &Env) -> std::result::Result<Rc<Trust>, ApiError> {
    let now = now_ms();
    let kv = env.kv("CONFIG").ok();
    if kv.is_some() {
        let fresh = TRUST.with(|t| {
            t.borrow()
                .as_ref()
                .filter(|c| c.source == "kv" && now.saturating_sub(c.loaded_ms) < KV_CACHE_MS)
                .map(|c| c.trust.clone())
        });
        if let Some(trust) = fresh {
            return Ok(trust);
        }
    }
    let mut from_kv = None;
    if let Some(kv) = kv {
        let keyring = kv.get("keyring").text().await.map_err(|_| ApiError::Internal)?;
        if let Some(keyring) = keyring {
            let revocations = kv.get("revocations").text().await.map_err(|_| ApiError::Internal)?;
            from_kv = Some((keyring, revocations));
        }
    }
    let (source, keyring, revocations) = match from_kv {
        Some((k, r)) => ("kv".to_owned(), Some(k), r),
        None => {
            let k = var(env, "KEYRING_JSON");
            let r = var(env, "REVOCATIONS_JSON");
            // The variables themselves are the cache key: a redeploy with new ones re-parses.
            (format!("env:{}:{}", k.as_deref().unwrap_or(""), r.as_deref().unwrap_or("")), k, r)
        }
    };
    let cached =
        TRUST.with(|t| t.borrow().as_ref().filter(|c| c.source == source && source != "kv").map(|c| c.trust.clone()));
    if let Some(trust) = cached {
        return Ok(trust);
    }
    let trust = Rc::new(
        Trust::parse(keyring.as_deref(), revocations.as_deref()).map_err(|e| ApiError::Misconfigured(e.to_string()))?,
    );
    TRUST.with(|t| *t.borrow_mut() = Some(CachedTrust { source, loaded_ms: now, trust: trust.clone() }));
    Ok(trust)
}

fn json_response(body: String, status: u16) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    headers.set("Cache-Control", "no-store")?;
    Ok(Response::from_bytes(body.into_bytes())?.with_status(status).with_headers(headers))
}

fn error_response(e: &ApiError) -> Result<Response> {
    json_response(e.to_json(), e.status())
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

fn authenticate(req: &Request, env: &Env) -> std::result::Result<(), ApiError> {
    let list = var(env, "SCANNER_TOKEN_HASHES").unwrap_or_default();
    let tokens = TokenSet::parse(&list).map_err(|bad| {
        // Only the first characters of each bad entry are shown: they are hashes, but keep logs short.
        ApiError::Misconfigured(format!("SCANNER_TOKEN_HASHES has entries that are not SHA-256 hex: {bad:?}"))
    })?;
    if tokens.allows(header(req, "Authorization").as_deref()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
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

async fn handle_redeem(mut req: Request, env: &Env) -> std::result::Result<Response, ApiError> {
    if req.method() != Method::Post {
        return Err(ApiError::MethodNotAllowed);
    }
    authenticate(&req, env)?;
    if !is_json(header(&req, "Content-Type").as_deref()) {
        return Err(ApiError::UnsupportedMediaType("application/json"));
    }
    let body = read_body(&mut req, MAX_REDEEM_BODY).await?;
    let redeem_req = parse_redeem(&body)?;
    let trust = load_trust(env).await?;
    let now = now_ms();
    // Verify here, statelessly, so forged, revoked and wrong-event tickets never reach a Durable Object.
    let ticket =
        match scanner_core::verify_text(redeem_req.qr_text.trim(), &trust.context(redeem_req.event, now / 1000)) {
            // The verified ticket also names the shard: no second parse of the QR text.
            Ok(t) => scanner_core::redemption::TicketRef::of(&t.ticket_id),
            Err(refusal) => {
                return json_response(verdict_json(&api::refused(&refusal)), 200).map_err(|_| ApiError::Internal)
            }
        };
    let name = shard_name(redeem_req.event, shard_of(&ticket));
    let stub = env
        .durable_object("REDEMPTIONS")
        .and_then(|ns| ns.id_from_name(&name)?.get_stub())
        .map_err(|_| ApiError::Misconfigured("Durable Object binding REDEMPTIONS is missing".into()))?;
    let payload = serde_json::to_string(&ShardRedeem::new(&redeem_req, now)).map_err(|_| ApiError::Internal)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(JsValue::from_str(&payload)));
    let inner = Request::new_with_init("https://shard/redeem", &init).map_err(|_| ApiError::Internal)?;
    let mut resp = stub.fetch_with_request(inner).await.map_err(|e| {
        console_error!("redemption shard unavailable: {e}");
        ApiError::Internal
    })?;
    let status = resp.status_code();
    let text = resp.text().await.map_err(|_| ApiError::Internal)?;
    json_response(text, status).map_err(|_| ApiError::Internal)
}

async fn route(req: Request, env: &Env) -> std::result::Result<Response, ApiError> {
    match req.path().as_str() {
        "/v1/redeem" => handle_redeem(req, env).await,
        // Redemption-log sync is not implemented at the edge yet: say so clearly (scanners handle 501).
        "/v1/sync" => Err(ApiError::NotImplemented("redemption sync is not available on this edge yet")),
        "/v1/health" => json_response(r#"{"ok":true}"#.to_owned(), 200).map_err(|_| ApiError::Internal),
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

/// One redemption shard: owns the redemption state of the tickets of one event that hash to it.
#[durable_object]
pub struct RedemptionShard {
    state: State,
    env: Env,
}

fn history_key(ticket: &scanner_core::redemption::TicketRef) -> String {
    format!("t:{}", ticket.to_hex())
}

impl RedemptionShard {
    async fn redeem(&self, mut req: Request) -> std::result::Result<Response, ApiError> {
        let body = req.bytes().await.map_err(|_| ApiError::Internal)?;
        let shard_req: ShardRedeem = serde_json::from_slice(&body).map_err(|_| ApiError::Internal)?;
        let (valid, now) = shard_req.into_valid()?;
        let (ticket, _) = match ticket_of(&valid.qr_text) {
            Ok(t) => t,
            Err(refusal) => {
                return json_response(verdict_json(&api::refused(&refusal)), 200).map_err(|_| ApiError::Internal)
            }
        };
        // Everything that may wait on something other than this object's storage happens before the
        // read: between the read and the write below there is no other await, so the input/output
        // gates make read-decide-write atomic against every other request to this shard.
        let trust = load_trust(&self.env).await?;
        let storage = self.state.storage();
        let key = history_key(&ticket);
        let mut history: TicketHistory = storage
            .get(&key)
            .await
            .map_err(|e| {
                console_error!("shard storage read failed: {e}");
                ApiError::Internal
            })?
            .unwrap_or_default();
        let outcome = redeem(&history, &valid, &trust.context(valid.event, now / 1000), now).map_err(|e| {
            console_error!("shard history unreadable: {e}");
            ApiError::Internal
        })?;
        if let Some(scan) = outcome.recorded {
            history.insert(scan);
            storage.put(&key, &history).await.map_err(|e| {
                console_error!("shard storage write failed: {e}");
                ApiError::Internal
            })?;
        }
        json_response(verdict_json(&outcome.verdict), 200).map_err(|_| ApiError::Internal)
    }
}

impl DurableObject for RedemptionShard {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let result = match req.path().as_str() {
            "/redeem" => self.redeem(req).await,
            _ => Err(ApiError::NotFound),
        };
        match result {
            Ok(resp) => Ok(resp),
            Err(e) => error_response(&e),
        }
    }
}
