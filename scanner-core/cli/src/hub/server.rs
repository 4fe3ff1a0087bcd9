//! The hub's HTTP server: the issuer's and the edge's device-facing endpoints, for one event, on the
//! venue's network.
//!
//! - `POST /v1/sync?event=ID&channel=push|pull`: the redemption-log sync (scanner-core's protocol through
//!   [`ServerLog`]); device token (its SHA-256 in the event's device list). A device writes only under
//!   the id bound to its token; at most `MAX_SYNC_MESSAGE_BYTES` per message (413 beyond); a refused
//!   message is 400 and changes nothing; a full disk is 507 and nothing was accepted.
//! - `POST /v1/redeem`: an online verdict, decided once for the venue with scanner-core's
//!   [`decide_online`] against everything the hub holds, recorded durably under the hub's own id before the
//!   answer (the device mirrors it with the same clock value; the report counts the two as one scan).
//!   Device token; the request must name the token's own device id. At most `MAX_REDEEM_BODY` bytes.
//! - `GET /v1/scanner/keyring`, `/v1/scanner/revocations`, `/v1/scanner/events/{id}/manifest`,
//!   `/v1/scanner/events/{id}/gates`, `/v1/events/{id}`: what `scanner init`/`sync` and the PWA fetch, as
//!   the hub holds it (set-up endpoints need a device token, as on the issuer).
//! - `POST /hub/v1/push`: relay with the issuer now; the hub's own token only.
//! - anything else: the PWA's files from `--web DIR`, if given.
//!
//! Who may write: only tokens in the device list (refreshed from the issuer on each upstream relay), each
//! as itself; the hub's own id is never accepted from outside (it is the hub's decisions). Sizes are
//! bounded per request, and each device's requests by its own token bucket ([`super::limit`]: 429 with
//! `Retry-After` beyond, before any other work); every write is one exchange under the event log's lock,
//! so the hub's total rate is bounded by its disk (fsync per accepted change), never by memory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use scanner_core::error::ServerLogKind;
use scanner_core::redemption::document::MAX_SYNC_MESSAGE_BYTES;
use scanner_core::redemption::online::decide_online;
use scanner_core::redemption::{Accept, DecisionPath, DeviceId, Hlc, SyncChannel, TicketRef};
use scanner_core::token::{device_id_for_token_hash, token_hash};
use scanner_core::wire::{bearer, ErrorBody, RedeemRequest, VerdictBody, KEYRING_PATH, MAX_REDEEM_BODY};
use scanner_core::wire::{EVENT_ROUTE, GATE_RULES_ROUTE, MANIFEST_ROUTE, REDEEM_PATH, REVOCATIONS_PATH, SYNC_PATH};
use scanner_core::{SignedTicket, VerifyContext};
use serde::Deserialize;

use super::state::{Hub, Trust};

impl Hub {
    fn trust(&self) -> Result<Arc<Trust>, HubError> {
        self.trust.read().map(|t| t.clone()).map_err(|_| HubError::Internal("trust lock poisoned".into()))
    }

    /// The device a request's bearer token belongs to, if it is one of the event's devices.
    fn device(&self, headers: &HeaderMap) -> Result<DeviceId, HubError> {
        let token =
            bearer(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())).ok_or(HubError::Unauthorized)?;
        let hash = token_hash(token);
        if !self.trust()?.devices.contains(&hash) {
            return Err(HubError::Unauthorized);
        }
        let device = device_id_for_token_hash(&hash);
        if device == self.owner {
            return Err(HubError::Forbidden("the hub's own token is not a door device's".into()));
        }
        // Before any work for the request: a device over its budget costs the hub one hash and one lookup.
        if let Err(wait) = self.limit.take(device, std::time::Instant::now()) {
            tracing::info!(%device, retry_after_s = wait.as_secs(), "device over its request budget");
            return Err(HubError::TooManyRequests(wait.as_secs()));
        }
        Ok(device)
    }
}

/// An error answer (`wire::ErrorBody`, as the issuer and the edge send it).
#[derive(Debug)]
pub enum HubError {
    Unauthorized,
    Forbidden(String),
    BadRequest(String),
    NotFound,
    Storage(String),
    Upstream(String),
    Internal(String),
    /// Over the device's request budget: retry after this many seconds.
    TooManyRequests(u64),
}

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        let retry_after = match self {
            HubError::TooManyRequests(secs) => Some(secs),
            _ => None,
        };
        let (status, code, message) = match self {
            HubError::Unauthorized => {
                (StatusCode::UNAUTHORIZED, "unauthorized", "missing or unknown scanner token".into())
            }
            HubError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m),
            HubError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            HubError::NotFound => (StatusCode::NOT_FOUND, "not_found", "no such endpoint on this hub".into()),
            HubError::Storage(m) => (StatusCode::INSUFFICIENT_STORAGE, "storage", m),
            HubError::Upstream(m) => (StatusCode::BAD_GATEWAY, "upstream", m),
            HubError::Internal(m) => {
                tracing::error!(error = %m, "hub internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".into())
            }
            HubError::TooManyRequests(secs) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests from this device; retry after {secs} s"),
            ),
        };
        let mut response =
            (status, [(header::CONTENT_TYPE, "application/json")], ErrorBody::new(code, message).to_json())
                .into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<scanner_core::Error> for HubError {
    fn from(e: scanner_core::Error) -> Self {
        match e {
            e @ scanner_core::Error::Sync(_) => HubError::BadRequest(e.to_string()),
            e @ scanner_core::Error::ServerLog(ServerLogKind::Storage { .. }) => HubError::Storage(e.to_string()),
            e => HubError::Internal(e.to_string()),
        }
    }
}

type Shared = Arc<Hub>;

pub fn router(hub: Shared, web: Option<PathBuf>) -> Router {
    let cors = axum::middleware::from_fn_with_state(hub.clone(), cors);
    let router = Router::new()
        .route(SYNC_PATH, post(sync).layer(DefaultBodyLimit::max(MAX_SYNC_MESSAGE_BYTES)))
        .route(REDEEM_PATH, post(redeem).layer(DefaultBodyLimit::max(MAX_REDEEM_BODY)))
        .route(KEYRING_PATH, get(keyring))
        .route(REVOCATIONS_PATH, get(revocations))
        .route(MANIFEST_ROUTE, get(manifest))
        .route(GATE_RULES_ROUTE, get(gate_rules))
        .route(EVENT_ROUTE, get(event_info))
        .route(super::PUSH_PATH, post(push))
        .with_state(hub);
    match web {
        Some(dir) => router.fallback_service(tower_http::services::ServeDir::new(dir)),
        None => router.fallback(|| async { HubError::NotFound }),
    }
    .layer(cors)
}

/// CORS, by scanner-core's rule (`wire::cors_origin`, the edge's): a PWA opened from the issuer's
/// `/scanner/` (another origin than the hub's) may call the hub; the issuer's origin is the one allowed.
/// A preflight needs no token (browsers never send one with it); every other answer to that origin
/// carries `Access-Control-Allow-Origin`. The endpoints still check the device token themselves.
async fn cors(State(hub): State<Shared>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::http::HeaderValue;
    use scanner_core::wire::{
        cors_origin, url_origin, CORS_ALLOW_HEADERS, CORS_ALLOW_METHODS, CORS_EXPOSE_HEADERS, CORS_MAX_AGE_SECS,
    };
    let allowed: Vec<String> = url_origin(&hub.config.server).map(str::to_owned).into_iter().collect();
    let origin = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let allow = cors_origin(origin, &allowed).and_then(|o| HeaderValue::from_str(o).ok());
    let preflight = request.method() == axum::http::Method::OPTIONS;
    // Chrome asks before a public page calls a private address (the hub on the venue's network).
    let private_network = request.headers().get("access-control-request-private-network").is_some();
    let mut response = if preflight { StatusCode::NO_CONTENT.into_response() } else { next.run(request).await };
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = allow {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(CORS_EXPOSE_HEADERS));
        if preflight {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(CORS_ALLOW_METHODS));
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(CORS_ALLOW_HEADERS));
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(CORS_MAX_AGE_SECS));
            if private_network {
                headers.insert("access-control-allow-private-network", HeaderValue::from_static("true"));
            }
        }
    }
    response
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body).into_response()
}

fn check_event(hub: &Hub, event: Option<u32>) -> Result<u32, HubError> {
    match event {
        Some(e) if e == hub.config.event => Ok(e),
        Some(e) => Err(HubError::Forbidden(format!("this hub serves event {}, not {e}", hub.config.event))),
        None => Err(HubError::BadRequest("give the event: ?event=ID".into())),
    }
}

#[derive(Debug, Deserialize)]
struct SyncQuery {
    event: Option<u32>,
    channel: Option<String>,
}

async fn sync(
    State(hub): State<Shared>,
    Query(q): Query<SyncQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HubError> {
    let device = hub.device(&headers)?;
    let event = check_event(&hub, q.event)?;
    let channel = q
        .channel
        .as_deref()
        .and_then(SyncChannel::parse)
        .ok_or_else(|| HubError::BadRequest("give the sync channel: &channel=push or &channel=pull".into()))?;
    let peer_key = format!("{}.{}", device.to_hex(), channel.as_str());
    let accept = Accept::device(device, now_ms());
    let hub2 = hub.clone();
    let reply = tokio::task::spawn_blocking(move || {
        hub2.logs
            .with(&hub2.redemptions_dir(), event, Some(hub2.owner), |log| log.serve(&peer_key, &body, accept, channel))
    })
    .await
    .map_err(|e| HubError::Internal(e.to_string()))??;
    tracing::debug!(%device, replied = reply.is_some(), "hub sync");
    Ok(match reply {
        Some(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

async fn redeem(State(hub): State<Shared>, headers: HeaderMap, body: Bytes) -> Result<Response, HubError> {
    let device = hub.device(&headers)?;
    let req = RedeemRequest::parse(&body).map_err(|e| HubError::BadRequest(e.to_string()))?;
    let event = check_event(&hub, Some(req.event))?;
    if req.device != device {
        return Err(HubError::Forbidden("the request names another device than the token's".into()));
    }
    let trust = hub.trust()?;
    let hub2 = hub.clone();
    let decided = tokio::task::spawn_blocking(move || {
        let now = now_ms();
        let ctx = VerifyContext {
            keyring: &trust.keyring,
            revocations: Some(&trust.revocations),
            event_id: event,
            now: now / 1000,
        };
        hub2.logs.with(&hub2.redemptions_dir(), event, Some(hub2.owner), |log| {
            // Every scan of this ticket the hub holds, its own decisions included: decided once per venue.
            // The new record sorts after all of them.
            let after = match SignedTicket::from_qr_text(req.qr_text.trim()) {
                Ok(signed) => log.last_hlc(&TicketRef::of(&signed.ticket.ticket_id), req.addon)?,
                Err(_) => Hlc::default(),
            };
            let decision = decide_online(log.index()?, &req, &ctx, now, after);
            if let Some(record) = decision.record {
                // On disk before the answer: a restarted hub still knows the ticket is used.
                log.append_own(&hub2.config.name, &req.gate, record, i64::try_from(now / 1000).unwrap_or(0))?;
            }
            Ok(decision)
        })
    })
    .await
    .map_err(|e| HubError::Internal(e.to_string()))??;
    let body = VerdictBody::new(decided.verdict.clone(), DecisionPath::Edge, decided.hlc()).to_json();
    tracing::debug!(%device, verdict = %decided.verdict.message(), "hub redeem");
    Ok(json(body))
}

async fn keyring(State(hub): State<Shared>) -> Result<Response, HubError> {
    Ok(json(hub.trust()?.files.keyring_json.clone()))
}

/// The whole list whatever `since` asks: overlapping deltas are harmless to a device (it skips the
/// batches it has), and the hub keeps only the latest list it fetched.
async fn revocations(State(hub): State<Shared>, headers: HeaderMap) -> Result<Response, HubError> {
    hub.device(&headers)?;
    Ok(json(hub.trust()?.files.revocations_json.clone()))
}

async fn manifest(State(hub): State<Shared>, Path(event): Path<u32>, headers: HeaderMap) -> Result<Response, HubError> {
    hub.device(&headers)?;
    check_event(&hub, Some(event))?;
    Ok(json(hub.trust()?.files.manifest_json.clone()))
}

async fn gate_rules(
    State(hub): State<Shared>,
    Path(event): Path<u32>,
    headers: HeaderMap,
) -> Result<Response, HubError> {
    hub.device(&headers)?;
    check_event(&hub, Some(event))?;
    match hub.trust()?.files.gate_rules_json.clone() {
        Some(rules) => Ok(json(rules)),
        None => Err(HubError::NotFound),
    }
}

/// Public on the issuer too (the order page shows it): no token needed, but only this hub's event.
async fn event_info(State(hub): State<Shared>, Path(event): Path<u32>) -> Result<Response, HubError> {
    check_event(&hub, Some(event))?;
    match hub.trust()?.files.event_json.clone() {
        Some(body) => Ok(json(body)),
        None => Err(HubError::NotFound),
    }
}

async fn push(State(hub): State<Shared>, headers: HeaderMap) -> Result<Response, HubError> {
    let token =
        bearer(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())).ok_or(HubError::Unauthorized)?;
    if !scanner_core::wire::digest_eq(&token_hash(token), &token_hash(&hub.config.token)) {
        return Err(HubError::Unauthorized);
    }
    let hub2 = hub.clone();
    let summary = tokio::task::spawn_blocking(move || super::upstream::relay(&hub2))
        .await
        .map_err(|e| HubError::Internal(e.to_string()))?
        .map_err(|e| HubError::Upstream(format!("{e:#}")))?;
    Ok(json(serde_json::to_string(&summary).map_err(|e| HubError::Internal(e.to_string()))?))
}

/// How the hub is reached: plain http (loopback only, for devices) or TLS.
pub enum Transport {
    Plain,
    Tls(crate::tls::ServerIdentity),
}

/// A TLS handshake that has not finished after this long is dropped: a client that stalls cannot hold a
/// slot for long.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many handshakes at once; beyond, new connections wait in the kernel's accept queue. A venue
/// has tens of doors, not hundreds.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// A listener that hands axum only connections whose TLS handshake completed. Handshakes run in their own
/// tasks, so one slow client does not hold up the others' accepts.
struct TlsListener {
    local: SocketAddr,
    handshaken: tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<tokio::net::TcpStream>, SocketAddr)>,
}

impl TlsListener {
    fn new(listener: tokio::net::TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, handshaken) = tokio::sync::mpsc::channel(MAX_PENDING_HANDSHAKES);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        // Plain http to the TLS port, a device with a wrong pin, a port scanner: not ours.
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { local, handshaken })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(accepted) => accepted,
            // The accept task only ends with the runtime; until then, nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Serves until Ctrl-C / SIGTERM, relaying with the issuer every `upstream_every` (if not zero).
pub fn serve(
    hub: Hub,
    listen: SocketAddr,
    transport: Transport,
    web: Option<PathBuf>,
    upstream_every: Duration,
) -> Result<()> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    let hub = Arc::new(hub);
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let scheme = match &transport {
            Transport::Plain => "http",
            Transport::Tls(_) => "https",
        };
        super::write_file(&hub.dir.join("listen"), format!("{scheme}://{addr}").as_bytes(), false)?;
        println!("hub for event {} listening on {scheme}://{addr}", hub.config.event);
        if let Transport::Tls(identity) = &transport {
            super::write_file(&hub.dir.join("listen-cert-sha256"), identity.pin.to_hex().as_bytes(), false)?;
            println!("hub certificate SHA-256: {}", identity.pin.to_hex());
        }
        if !upstream_every.is_zero() {
            let hub = hub.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(upstream_every).await;
                    let h = hub.clone();
                    match tokio::task::spawn_blocking(move || super::upstream::relay(&h)).await {
                        Ok(Ok(s)) => {
                            tracing::info!(pushed = s.pushed_rounds, pulled = s.new_records, "relayed with the issuer")
                        }
                        Ok(Err(e)) => tracing::info!(error = %format!("{e:#}"), "issuer not reachable; next try later"),
                        Err(e) => tracing::warn!(error = %e, "relay task failed"),
                    }
                }
            });
        }
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let app = router(hub, web);
        match transport {
            Transport::Plain => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
            Transport::Tls(identity) => {
                let listener = TlsListener::new(listener, identity.config)?;
                axum::serve(listener, app).with_graceful_shutdown(shutdown).await
            }
        }
        .context("the hub's server failed")
    })
}
