//! The Worker's fetch handler: routing (`api::Route`, scanner-core's wire paths), device and relay
//! tokens, CORS and body limits. Redemptions go to their shard, syncs and reports to the event's log;
//! nothing is decided here.

use worker::{console_error, event, Context, Env, Method, Request, Response};

use scanner_core::redemption::SyncChannel;

use crate::api::{
    self, check_declared_length, cors_origin, is_json, is_sync_body, parse_redeem, split_list, verdict_json, Route,
    ScannerRoute, ShardRedeem, MAX_REDEEM_BODY, MAX_SYNC_BODY,
};
use crate::error::{AuthKind, Error, RequestKind};
use crate::history::ticket_of;
use crate::shard::shard_of;

use super::calls;
use super::http::{error_response, header, json_ok, now_ms, query_channel, query_event, query_flag, query_value, var};
use super::trust::{device_tokens, load_trust, relay_tokens};

/// Checks the device token, for `event` when the request is about one (`None`: any event the token is
/// valid for); returns the device's identity (its token's hash, never the token). Unknown: 401; valid
/// for another event: 403.
async fn authenticate(req: &Request, env: &Env, event: Option<u32>) -> Result<[u8; 32], Error> {
    let tokens = device_tokens(env).await?;
    let authorization = header(req, "Authorization");
    match event {
        Some(event) => Ok(tokens.authenticate(authorization.as_deref(), event)?),
        None => Ok(tokens.device_of(authorization.as_deref()).ok_or(AuthKind::Unknown)?),
    }
}

/// [`authenticate`] for the event of the request's `?event=` (401 before the query is looked at).
async fn authenticate_query_event(req: &Request, env: &Env) -> Result<([u8; 32], u32), Error> {
    authenticate(req, env, None).await?;
    let event = query_event(req)?;
    Ok((authenticate(req, env, Some(event)).await?, event))
}

/// A relay session's peer: another sync server (the issuer) holding a token whose SHA-256 is in
/// `RELAY_TOKEN_HASHES`. Returns the token's hash (the peer's key for its sync state) and the event.
fn authenticate_relay(req: &Request, env: &Env) -> Result<([u8; 32], u32), Error> {
    let event = query_event(req)?;
    let relays = relay_tokens(env)?.ok_or(AuthKind::Unknown)?;
    // A relay token scoped to another event is answered as unknown (401), never 403: a relay is not told
    // which events its token is good for.
    let hash = match relays.authenticate(header(req, "Authorization").as_deref(), event) {
        Err(Error::Auth(AuthKind::WrongEvent(_))) => Err(AuthKind::Unknown.into()),
        other => other,
    }?;
    Ok((hash, event))
}

/// Reads a body no larger than `limit`, refusing by declared length before reading.
async fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, Error> {
    check_declared_length(header(req, "Content-Length").as_deref(), limit)?;
    // A body that breaks off while it is read is the client's (an aborted upload), not the edge's.
    let body = req.bytes().await.map_err(|e| {
        console_error!("request body: {e}");
        RequestKind::UnreadableBody
    })?;
    if body.len() > limit {
        return Err(RequestKind::TooLarge(limit).into());
    }
    Ok(body)
}

/// `POST /v1/redeem`: scanner-core's wire `RedeemRequest`, decided by the ticket's shard.
async fn handle_redeem(mut req: Request, env: &Env) -> Result<Response, Error> {
    if req.method() != Method::Post {
        return Err(RequestKind::MethodNotAllowed.into());
    }
    authenticate(&req, env, None).await?;
    if !is_json(header(&req, "Content-Type").as_deref()) {
        return Err(RequestKind::UnsupportedMediaType("application/json").into());
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
async fn handle_sync(mut req: Request, env: &Env) -> Result<Response, Error> {
    if req.method() != Method::Post {
        return Err(RequestKind::MethodNotAllowed.into());
    }
    // Who is asking comes first (a device learns 401/403 before it learns its request is malformed).
    let channel = query_channel(&req);
    let (peer, event) = match channel {
        Ok(SyncChannel::Relay) => authenticate_relay(&req, env)?,
        _ => authenticate_query_event(&req, env).await?,
    };
    let channel = channel?;
    if !is_sync_body(header(&req, "Content-Type").as_deref()) {
        return Err(RequestKind::UnsupportedMediaType("application/octet-stream").into());
    }
    let body = read_body(&mut req, MAX_SYNC_BODY).await?;
    // The log keeps automerge sync state per token and channel, and takes from a device only what it
    // wrote under the id bound to that token.
    calls::sync(env, event, channel, &peer, &body).await
}

/// `GET /v1/report?event=ID[&format=text]`: scanner-core's report over the edge's log.
async fn handle_report(req: Request, env: &Env) -> Result<Response, Error> {
    if req.method() != Method::Get {
        return Err(RequestKind::MethodNotAllowed.into());
    }
    let (_, event) = authenticate_query_event(&req, env).await?;
    calls::report(env, event, query_flag(&req, "format", "text")?).await
}

/// `GET /v1/scanner/...`: what `scanner init --server` fetches, so a device can be set up against the
/// edge as against the issuer. The keyring is public (as on the issuer); the rest needs a device token.
async fn handle_scanner_config(req: Request, env: &Env, route: ScannerRoute) -> Result<Response, Error> {
    if req.method() != Method::Get {
        return Err(RequestKind::MethodNotAllowed.into());
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
                Some(v) => v.parse::<u64>().map_err(RequestKind::Since)?,
                None => 0,
            };
            json_ok(load_trust(env).await?.revocations.delta_since(since).to_json())
        }
        ScannerRoute::Manifest(event) => {
            authenticate(&req, env, Some(event)).await?;
            // The issuer publishes each event's manifest to KV; the edge hands it out as it is.
            // No KV bound: no manifest was ever published here, so there is none to find (404).
            let Ok(kv) = env.kv("CONFIG") else { return Err(RequestKind::NotFound.into()) };
            match kv.get(&format!("manifest:{event}")).text().await? {
                Some(manifest) => json_ok(manifest),
                None => Err(RequestKind::NotFound.into()),
            }
        }
        ScannerRoute::Keyring | ScannerRoute::Unknown => Err(RequestKind::NotFound.into()),
    }
}

async fn route(req: Request, env: &Env) -> Result<Response, Error> {
    match Route::of(&req.path()).ok_or(RequestKind::NotFound)? {
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
    headers.set("Access-Control-Expose-Headers", api::CORS_EXPOSE_HEADERS)?;
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
            h.set("Access-Control-Allow-Methods", api::CORS_ALLOW_METHODS)?;
            h.set("Access-Control-Allow-Headers", api::CORS_ALLOW_HEADERS)?;
            h.set("Access-Control-Max-Age", &api::CORS_MAX_AGE_SECS.to_string())?;
        }
        return add_cors(resp, cors.as_deref());
    }
    let resp = match route(req, &env).await {
        Ok(resp) => resp,
        Err(e) => error_response(&e)?,
    };
    add_cors(resp, cors.as_deref())
}
