//! The Worker's fetch handler: routing (`api::Route`, scanner-core's wire paths), device and relay
//! tokens, CORS and body limits. Redemptions go to their shard, syncs and reports to the event's log;
//! nothing is decided here. (For now this file also holds the shard Durable Object.)

use std::cell::Cell;

use worker::js_sys::{Array, Object, Reflect};
use worker::wasm_bindgen::JsValue;
use worker::{
    console_error, durable_object, event, Context, DurableObject, Env, ListOptions, Method, Request, Response, State,
    Storage,
};

use scanner_core::redemption::SyncChannel;

use crate::api::{
    self, check_declared_length, cors_origin, is_json, is_sync_body, parse_redeem, recorded_verdict_json, split_list,
    verdict_json, ApiError, Route, ScannerRoute, ShardRedeem, MAX_REDEEM_BODY, MAX_SYNC_BODY,
};
use crate::history::{redeem, ticket_of, StoredScan, TicketHistory};
use crate::relay::RelayRequest;
use crate::shard::{
    by_ticket, forward_delay_ms, history_key, outbox_key, shard_name, shard_of, Outbox, OUTBOX_BATCH, OUTBOX_PREFIX,
    RETRY_MS,
};

use super::errors::Logged;
use super::http::{
    error_response, header, json_ok, json_request, now_ms, pass_through, query_channel, query_event, query_flag,
    query_value, respond, send_ok, stub, var,
};
use super::log_object;
use super::trust::{device_tokens, load_trust, relay_tokens};

/// Checks the device token, for `event` when the request is about one (`None`: any event the token is
/// valid for); returns the device's identity (its token's hash, never the token). Unknown: 401; valid
/// for another event: 403.
async fn authenticate(req: &Request, env: &Env, event: Option<u32>) -> Result<[u8; 32], ApiError> {
    let tokens = device_tokens(env).await?;
    let authorization = header(req, "Authorization");
    match event {
        Some(event) => Ok(tokens.authenticate(authorization.as_deref(), event)?),
        None => tokens.device_of(authorization.as_deref()).ok_or(ApiError::Unauthorized),
    }
}

/// [`authenticate`] for the event of the request's `?event=` (401 before the query is looked at).
async fn authenticate_query_event(req: &Request, env: &Env) -> Result<([u8; 32], u32), ApiError> {
    authenticate(req, env, None).await?;
    let event = query_event(req)?;
    Ok((authenticate(req, env, Some(event)).await?, event))
}

/// A relay session's peer: another sync server (the issuer) holding a token whose SHA-256 is in
/// `RELAY_TOKEN_HASHES`. Returns the token's hash (the peer's key for its sync state) and the event.
fn authenticate_relay(req: &Request, env: &Env) -> Result<([u8; 32], u32), ApiError> {
    let event = query_event(req)?;
    let relays = relay_tokens(env)?.ok_or(ApiError::Unauthorized)?;
    let hash =
        relays.authenticate(header(req, "Authorization").as_deref(), event).map_err(|_| ApiError::Unauthorized)?;
    Ok((hash, event))
}

/// Reads a body no larger than `limit`, refusing by declared length before reading.
async fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    check_declared_length(header(req, "Content-Length").as_deref(), limit)?;
    let body = req.bytes().await.map_err(|_| ApiError::BadRequest("the body could not be read".into()))?;
    if body.len() > limit {
        return Err(ApiError::TooLarge(limit));
    }
    Ok(body)
}

/// `POST /v1/redeem`: scanner-core's wire `RedeemRequest`, decided by the ticket's shard.
async fn handle_redeem(mut req: Request, env: &Env) -> Result<Response, ApiError> {
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
    let event = redeem_req.event;
    ask_redeem(env, event, shard_of(&ticket), &ShardRedeem { request: redeem_req, now_ms: now_ms() }).await
}

/// `POST /v1/sync?event=ID&channel=push|pull|relay`: one automerge sync message, as the issuer's sync
/// server takes it.
async fn handle_sync(mut req: Request, env: &Env) -> Result<Response, ApiError> {
    if req.method() != Method::Post {
        return Err(ApiError::MethodNotAllowed);
    }
    // Who is asking comes first (a device learns 401/403 before it learns its request is malformed).
    let channel = query_channel(&req);
    let (peer, event) = match channel {
        Ok(SyncChannel::Relay) => authenticate_relay(&req, env)?,
        _ => authenticate_query_event(&req, env).await?,
    };
    let channel = channel?;
    if !is_sync_body(header(&req, "Content-Type").as_deref()) {
        return Err(ApiError::UnsupportedMediaType("application/octet-stream"));
    }
    let body = read_body(&mut req, MAX_SYNC_BODY).await?;
    // The log keeps automerge sync state per token and channel, and takes from a device only what it
    // wrote under the id bound to that token.
    log_object::sync(env, event, channel, &peer, &body).await
}

/// `GET /v1/report?event=ID[&format=text]`: scanner-core's report over the edge's log.
async fn handle_report(req: Request, env: &Env) -> Result<Response, ApiError> {
    if req.method() != Method::Get {
        return Err(ApiError::MethodNotAllowed);
    }
    let (_, event) = authenticate_query_event(&req, env).await?;
    log_object::report(env, event, query_flag(&req, "format", "text")?).await
}

/// `GET /v1/scanner/...`: what `scanner init --server` fetches, so a device can be set up against the
/// edge as against the issuer. The keyring is public (as on the issuer); the rest needs a device token.
async fn handle_scanner_config(req: Request, env: &Env, route: ScannerRoute) -> Result<Response, ApiError> {
    if req.method() != Method::Get {
        return Err(ApiError::MethodNotAllowed);
    }
    if route == ScannerRoute::Keyring {
        return json_ok(load_trust(env).await?.keyring.to_json());
    }
    authenticate(&req, env, None).await?;
    match route {
        ScannerRoute::Revocations => {
            // Not about one event; a device that names one (`?event=`) must be valid for it.
            if query_value(&req, "event")?.is_some() {
                authenticate_query_event(&req, env).await?;
            }
            let since = match query_value(&req, "since")? {
                Some(v) => v.parse::<u64>().map_err(|_| ApiError::BadRequest("since must be a number".into()))?,
                None => 0,
            };
            json_ok(load_trust(env).await?.revocations.delta_since(since).to_json())
        }
        ScannerRoute::Manifest(event) => {
            authenticate(&req, env, Some(event)).await?;
            // The issuer publishes each event's manifest to KV; the edge hands it out as it is.
            let kv = env.kv("CONFIG").map_err(|_| ApiError::NotFound)?;
            match kv.get(&format!("manifest:{event}")).text().await? {
                Some(manifest) => json_ok(manifest),
                None => Err(ApiError::NotFound),
            }
        }
        ScannerRoute::Keyring | ScannerRoute::Unknown => Err(ApiError::NotFound),
    }
}

async fn route(req: Request, env: &Env) -> Result<Response, ApiError> {
    match Route::of(&req.path()).ok_or(ApiError::NotFound)? {
        Route::Redeem => handle_redeem(req, env).await,
        Route::Sync => handle_sync(req, env).await,
        Route::Report => handle_report(req, env).await,
        Route::Health => json_ok(r#"{"ok":true}"#.to_owned()),
        Route::Scanner(scanner) => handle_scanner_config(req, env, scanner).await,
    }
}

fn add_cors(mut resp: Response, origin: Option<&str>) -> worker::Result<Response> {
    let Some(origin) = origin else { return Ok(resp) };
    let headers = resp.headers_mut();
    headers.set("Access-Control-Allow-Origin", origin)?;
    headers.set("Vary", "Origin")?;
    Ok(resp)
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
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

/// Asks a shard to decide a redemption; its answer (the verdict JSON, or an error) is passed through.
pub(super) async fn ask_redeem(env: &Env, event: u32, shard: u16, redeem: &ShardRedeem) -> Result<Response, ApiError> {
    let target = stub(env, "REDEMPTIONS", &shard_name(event, shard))?;
    let req = json_request("https://shard/redeem", &serde_json::to_string(redeem)?)?;
    pass_through(&target, req, "redemption shard").await
}

/// Hands a shard records devices synced into the log; answers whether the shard took them.
pub(super) async fn send_relayed(env: &Env, event: u32, shard: u16, scans: Vec<StoredScan>) -> Result<(), ApiError> {
    let target = stub(env, "REDEMPTIONS", &shard_name(event, shard))?;
    let req = json_request("https://shard/relay", &serde_json::to_string(&RelayRequest { scans })?)?;
    send_ok(&target, req, "shard for relayed records").await.map(drop)
}

#[durable_object]
pub struct RedemptionShard {
    state: State,
    env: Env,
    /// An alarm is known to be set (saves a storage call per redemption while one is pending).
    alarm_pending: Cell<bool>,
}

async fn load_history(storage: &Storage, key: &str) -> Result<TicketHistory, ApiError> {
    match storage.get::<String>(key).await.logged("shard storage read failed")? {
        Some(json) => serde_json::from_str(&json).logged(&format!("shard history {key} unreadable")),
        None => Ok(TicketHistory::default()),
    }
}

impl RedemptionShard {
    async fn ensure_alarm(&self) -> Result<(), ApiError> {
        if !self.alarm_pending.get() {
            let delay = forward_delay_ms(var(&self.env, "LOG_FORWARD_DELAY_MS").as_deref());
            self.state.storage().set_alarm(delay).await.logged("shard alarm")?;
            self.alarm_pending.set(true);
        }
        Ok(())
    }

    async fn redeem(&self, mut req: Request) -> Result<Response, ApiError> {
        let ShardRedeem { request: valid, now_ms: now } = serde_json::from_slice(&req.bytes().await?)?;
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
        let outcome = redeem(&history, &valid, &trust.context(valid.event, now / 1000), now)
            .logged("shard history unreadable")?;
        if let Some(scan) = outcome.recorded {
            // The history and the outbox entry in one write: an admission is never decided without
            // also being on its way to the log.
            let entries = Object::new();
            let outbox = serde_json::to_string(&scan)?;
            Reflect::set(&entries, &JsValue::from_str(&outbox_key(valid.event, &scan)), &JsValue::from_str(&outbox))?;
            history.insert(scan);
            let json = serde_json::to_string(&history)?;
            Reflect::set(&entries, &JsValue::from_str(&key), &JsValue::from_str(&json))?;
            storage.put_multiple_raw(entries).await.logged("shard storage write failed")?;
        }
        json_ok(recorded_verdict_json(&outcome.verdict, outcome.hlc))
    }

    /// Records devices synced into the log: added to their tickets' histories (idempotently).
    async fn relay(&self, mut req: Request) -> Result<Response, ApiError> {
        let relayed: RelayRequest = serde_json::from_slice(&req.bytes().await?)?;
        let by_ticket = by_ticket(relayed.scans).map_err(|_| ApiError::BadRequest("relayed record".into()))?;
        let storage = self.state.storage();
        let mut added = 0usize;
        for (ticket, scans) in by_ticket {
            // Read and write with no other await between (as in redeem): atomic against redemptions.
            let key = history_key(&ticket);
            let mut history = load_history(&storage, &key).await?;
            let new = scans.into_iter().map(|scan| history.insert(scan)).filter(|&added| added).count();
            if new > 0 {
                added += new;
                let json = serde_json::to_string(&history)?;
                storage.put(&key, json).await.logged("shard storage write failed")?;
            }
        }
        json_ok(format!(r#"{{"added":{added}}}"#))
    }

    /// Sends the outbox to the event's log until it is empty.
    async fn drain_outbox(&self) -> Result<(), ApiError> {
        let storage = self.state.storage();
        loop {
            let listed = storage
                .list_with_options(ListOptions::new().prefix(OUTBOX_PREFIX).limit(OUTBOX_BATCH))
                .await
                .logged("shard outbox read failed")?;
            let mut entries = Vec::new();
            for entry in listed.entries() {
                let pair = Array::from(&entry?);
                entries
                    .push((pair.get(0).as_string().unwrap_or_default(), pair.get(1).as_string().unwrap_or_default()));
            }
            let outbox = Outbox::from_entries(entries);
            for key in &outbox.unreadable {
                // Unreadable entries cannot be delivered; kept for inspection, not looped on.
                console_error!("shard outbox entry {key} is unreadable; skipped");
            }
            if outbox.is_empty() {
                return Ok(());
            }
            for (event, scans) in outbox.by_event {
                log_object::append(&self.env, event, scans).await?;
            }
            storage.delete_multiple(outbox.keys).await.logged("shard outbox delete failed")?;
        }
    }
}

impl DurableObject for RedemptionShard {
    fn new(state: State, env: Env) -> Self {
        Self { state, env, alarm_pending: Cell::new(false) }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        respond(match req.path().as_str() {
            "/redeem" => self.redeem(req).await,
            "/relay" => self.relay(req).await,
            _ => Err(ApiError::NotFound),
        })
    }

    async fn alarm(&self) -> worker::Result<Response> {
        self.alarm_pending.set(false);
        if let Err(e) = self.drain_outbox().await {
            console_error!("shard outbox not drained ({e}); retrying in {RETRY_MS} ms");
            self.state.storage().set_alarm(RETRY_MS).await?;
            self.alarm_pending.set(true);
        }
        Response::ok("")
    }
}
