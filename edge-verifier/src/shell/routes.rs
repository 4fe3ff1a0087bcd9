//! The Worker's fetch handler: routing (`api::Route`, scanner-core's wire paths), device and relay
//! tokens, CORS and body limits. Redemptions go to their shard, syncs and reports to the event's log;
//! nothing is decided here.

use worker::{console_error, event, Context, Env, Method, Request, Response};

use scanner_core::redemption::SyncChannel;

use crate::api::{
    self, check_declared_length, cors_origin, is_json, is_sync_body, parse_redeem, split_list, verdict_json, ApiError,
    Route, ScannerRoute, ShardRedeem, MAX_REDEEM_BODY, MAX_SYNC_BODY,
};
use crate::history::ticket_of;
use crate::shard::shard_of;

use super::calls;
use super::http::{error_response, header, json_ok, now_ms, query_channel, query_event, query_flag, query_value, var};
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
    calls::ask_redeem(env, event, shard_of(&ticket), &ShardRedeem { request: redeem_req, now_ms: now_ms() }).await
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
    calls::sync(env, event, channel, &peer, &body).await
}

/// `GET /v1/report?event=ID[&format=text]`: scanner-core's report over the edge's log.
async fn handle_report(req: Request, env: &Env) -> Result<Response, ApiError> {
    if req.method() != Method::Get {
        return Err(ApiError::MethodNotAllowed);
    }
    let (_, event) = authenticate_query_event(&req, env).await?;
    calls::report(env, event, query_flag(&req, "format", "text")?).await
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
