//! Redemption log sync: the issuer is the sync server of the embedded deployment, and serves the
//! organizer's report.
//!
//! - `POST /v1/sync?event=ID` — scanner device token for that event. Body: one automerge sync message
//!   (`application/octet-stream`, at most `MAX_SYNC_MESSAGE_BYTES`) from `scanner_core::redemption`.
//!   Answer: 200 with the server's next message, or 204 when it has nothing to say. The server takes
//!   only the device's own records (written under the id bound to its token); a message that is damaged,
//!   stamped far in the future or a compression bomb is refused with 400 and changes nothing; if the
//!   disk refuses the write the answer is 507 and nothing was accepted.
//! - `POST /v1/sync?event=ID&channel=relay` — hub token for that event ([`crate::hub_tokens`]): a venue
//!   hub relays everything it holds, both ways, like the issuer with the edge, but only records of the
//!   event's devices (every device ever created for it, revoked ones included: their scans before the
//!   revocation are real) are taken; changes under any other device id are refused, never merged, and
//!   counted in the answer's `x-refused-changes` header. A device token on this channel is 403, a hub
//!   token on push/pull or for another event 403.
//! - `GET /admin/v1/events/{id}/redemptions[?format=text]` — staff (`Reports`): the report (admitted per
//!   gate and hour, conflicts with devices, gates and times, refusals by reason) as JSON or a readable table.
//!
//! Each event's log lives in the database (tables `sync_chunks` and `sync_peers`), so every issuer
//! instance on one database serves the same log: scanner-core's storage-free [`SyncLog`] decides (its
//! documentation states the persistence contract) and [`store`] keeps it, one transaction per exchange
//! under a per-event lock that every instance takes. An old file log from before
//! (`DATA_DIR/redemptions/event-<id>.log`) is imported once. This module only authenticates and routes.

pub mod logs;
pub mod store;

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use scanner_core::error::SyncKind;
use scanner_core::redemption::document::MAX_SYNC_MESSAGE_BYTES;
use scanner_core::redemption::sync_log::{ClientStep, ClientTurn, Exchange, SyncLog};
use scanner_core::redemption::{Accept, CheckIn, DeviceId, EventReport, SyncChannel};
use scanner_core::wire::{sync_path, REFUSED_CHANGES_HEADER, SYNC_PATH};
use serde::Deserialize;

use crate::auth::ScannerDevice;
use crate::error::{Error, Result};
use crate::extract::{body_bytes, Query};
use crate::hub_tokens::HubToken;
use crate::staff::{Permission, Staff};
use crate::state::AppState;

/// Largest sync request body accepted: scanner-core's limit for one sync message.
pub const MAX_SYNC_BODY_BYTES: usize = MAX_SYNC_MESSAGE_BYTES;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(SYNC_PATH, post(sync))
        .route("/admin/v1/events/{id}/redemptions", get(report))
        .route("/admin/v1/events/{id}/edge-relay", post(edge_relay))
}

/// What a sync request's failure on the event's log answers: a refused message is the device's fault
/// (413 too large, otherwise 400); anything else is internal. (A write the store refuses is a 507 from
/// [`store`].)
fn log_error(e: scanner_core::Error) -> Error {
    match e {
        scanner_core::Error::Sync(SyncKind::TooLarge(_)) => Error::PayloadTooLarge(MAX_SYNC_BODY_BYTES),
        e @ scanner_core::Error::Sync(_) => Error::BadRequest(e.to_string()),
        e => Error::internal(e),
    }
}

/// Reads the event's log (the issuer's logs are owned by no device).
async fn read_log<T: Send + 'static>(
    state: &AppState,
    event: u32,
    f: impl FnOnce(&mut SyncLog) -> scanner_core::Result<T> + Send + 'static,
) -> Result<T> {
    state.sync_logs.read(state, event, |log| f(log).map_err(log_error)).await
}

#[derive(Debug, Deserialize)]
struct SyncQuery {
    event: Option<i64>,
    /// `push` (the device's own records in) or `pull` (everyone's records out): see `SyncChannel`.
    channel: Option<String>,
}

async fn event_id(state: &AppState, id: Option<i64>) -> Result<u32> {
    let id = id.ok_or_else(|| Error::BadRequest("give the event: /v1/sync?event=ID".into()))?;
    crate::catalog::load_event(state, id).await?;
    u32::try_from(id).map_err(|_| Error::NotFound("event"))
}

/// Who is syncing: a scanner device (push/pull, its own records only) or a venue hub (relay, everything
/// it holds for its one event). Each is accepted on its own channels only.
enum SyncClient {
    Device(ScannerDevice),
    Hub(HubToken),
}

impl FromRequestParts<AppState> for SyncClient {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        match ScannerDevice::from_request_parts(parts, state).await {
            Ok(device) => Ok(SyncClient::Device(device)),
            // Not a device token: maybe a hub's (a device token for another event stays 403).
            Err(Error::Unauthorized) => HubToken::from_request_parts(parts, state).await.map(SyncClient::Hub),
            Err(e) => Err(e),
        }
    }
}

async fn sync(
    client: SyncClient,
    State(state): State<AppState>,
    Query(q): Query<SyncQuery>,
    req: Request,
) -> Result<Response> {
    let event = event_id(&state, q.event).await?;
    let channel = q.channel.as_deref().and_then(SyncChannel::parse).ok_or_else(|| {
        Error::BadRequest("give the sync channel: &channel=push, &channel=pull or &channel=relay".into())
    })?;
    // Who may write what: a device only its own records (push/pull), a hub its event's devices' (relay).
    let (from, peer_key, who) = match (&client, channel) {
        (SyncClient::Device(device), SyncChannel::Push | SyncChannel::Pull) => {
            device.require_event(i64::from(event))?;
            let log_device: DeviceId = device.log_device;
            (Some(log_device), format!("{}.{}", log_device.to_hex(), channel.as_str()), &device.id)
        }
        (SyncClient::Device(device), SyncChannel::Relay) => {
            tracing::warn!(device = %device.id, event, "device token refused on the relay channel");
            return Err(Error::Forbidden("a device token cannot relay: use channel=push or channel=pull".into()));
        }
        (SyncClient::Hub(hub), SyncChannel::Relay) => {
            hub.require_event(i64::from(event))?;
            (None, format!("hub.{}.relay", hub.id), &hub.id)
        }
        (SyncClient::Hub(_), _) => {
            return Err(Error::Forbidden("a hub token only relays: use channel=relay".into()));
        }
    };
    let body = body_bytes(req, MAX_SYNC_BODY_BYTES).await?;
    let writers = match from {
        Some(_) => None,
        None => Some(event_devices(&state, event).await?),
    };
    let served = state
        .sync_logs
        .exchange(&state, event, &peer_key, move |log, peer| {
            let accept = match (from, &writers) {
                (Some(device), _) => Accept::device(device, now_ms()),
                (None, Some(writers)) => Accept::relay_of(writers, now_ms()),
                (None, None) => return Err(Error::internal("a relay without its device list")),
            };
            let Exchange { served, write } = log.serve(peer, &body, accept, channel).map_err(log_error)?;
            Ok((served, write))
        })
        .await?;
    let refused = served.received.refused_changes;
    if refused > 0 {
        tracing::warn!(client = %who, event, refused, "relay sent changes under device ids not of this event; refused");
    }
    tracing::debug!(client = %who, event, channel = channel.as_str(), replied = served.reply.is_some(), "redemption sync");
    let mut response = match served.reply {
        Some(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    };
    if refused > 0 {
        response.headers_mut().insert(REFUSED_CHANGES_HEADER, header::HeaderValue::from(refused));
    }
    Ok(response)
}

/// The log ids of every device created for the event (revoked ones too: what they scanned before their
/// revocation counts), the only ones a hub may relay records of.
async fn event_devices(state: &AppState, event: u32) -> Result<std::collections::BTreeSet<DeviceId>> {
    let hashes: Vec<(String,)> = sqlx::query_as("SELECT token_hash FROM devices WHERE event_id = $1")
        .bind(i64::from(event))
        .fetch_all(&state.db.read)
        .await?;
    Ok(hashes
        .iter()
        .filter_map(|(hash,)| scanner_core::token::parse_token_hash(hash))
        .map(|hash| scanner_core::token::device_id_for_token_hash(&hash))
        .collect())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The relay session's sync state key among an event's peers.
const EDGE_RELAY_PEER: &str = "relay.edge";
/// Round trips after which one relay session gives up (it resumes from there next time).
const MAX_RELAY_ROUNDS: usize = 64;

/// One step of this issuer's relay session with the edge, as the client, after `sent` messages of the
/// session, the last answered with `reply`: returns the next message to send (`None`: the session is
/// over) and the new records taken.
async fn relay_step(
    state: &AppState,
    event: u32,
    sent: usize,
    reply: Option<Vec<u8>>,
) -> Result<(Option<Vec<u8>>, usize)> {
    state
        .sync_logs
        .exchange(state, event, EDGE_RELAY_PEER, move |log, peer| {
            let Some(turn) = ClientTurn::after(sent, reply.as_deref()) else { return Ok(((None, 0), None)) };
            match log.client_step(peer, SyncChannel::Relay, turn, now_ms()) {
                Ok(ClientStep { message, received, write }) => Ok(((message, received.new_records), write)),
                Err(e @ scanner_core::Error::Sync(_)) => {
                    Err(Error::Upstream(format!("the edge's relay reply was refused: {e}")))
                }
                Err(e) => Err(log_error(e)),
            }
        })
        .await
}

/// What one relay session with the edge did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RelaySummary {
    pub round_trips: usize,
    pub new_records: usize,
}

/// Syncs one event's log with the edge's, both ways (the issuer's device records reach the edge's
/// shards, the edge's own admissions reach the organizer's report here).
pub async fn relay_with_edge(state: &AppState, event: u32) -> Result<RelaySummary> {
    let (Some(edge), Some(token)) = (&state.config.edge_url, &state.config.edge_relay_token) else {
        return Err(Error::Conflict("no edge relay is configured (--edge-url and --edge-relay-token)".into()));
    };
    let url = format!("{}{}", edge.trim_end_matches('/'), sync_path(Some(event), SyncChannel::Relay));
    let client =
        reqwest::Client::builder().timeout(std::time::Duration::from_secs(20)).build().map_err(Error::internal)?;
    let mut summary = RelaySummary::default();
    let mut reply: Option<Vec<u8>> = None;
    loop {
        let (message, new_records) = relay_step(state, event, summary.round_trips, reply.take()).await?;
        summary.new_records += new_records;
        let Some(message) = message else { return Ok(summary) };
        if summary.round_trips == MAX_RELAY_ROUNDS {
            return Err(Error::Upstream(format!(
                "relay with the edge did not finish in {MAX_RELAY_ROUNDS} round trips"
            )));
        }
        summary.round_trips += 1;
        let resp = client
            .post(&url)
            .bearer_auth(token)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(message)
            .send()
            .await
            .map_err(|e| Error::Upstream(format!("edge relay: {e}")))?;
        match resp.status().as_u16() {
            204 => {}
            200 => {
                let bytes = resp.bytes().await.map_err(|e| Error::Upstream(format!("edge relay: {e}")))?;
                if bytes.len() > MAX_SYNC_MESSAGE_BYTES {
                    return Err(Error::Upstream("edge relay reply too large".into()));
                }
                reply = Some(bytes.to_vec());
            }
            status => return Err(Error::Upstream(format!("edge relay answered {status}"))),
        }
    }
}

/// Relays every event's log with the edge every `edge_relay_seconds` until shutdown.
pub async fn run_edge_relay(state: AppState, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let every = std::time::Duration::from_secs(state.config.edge_relay_seconds.max(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let events: Vec<(i64,)> = match sqlx::query_as("SELECT id FROM events").fetch_all(&state.db.read).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "edge relay: cannot list events");
                continue;
            }
        };
        for (id,) in events {
            let Ok(event) = u32::try_from(id) else { continue };
            match relay_with_edge(&state, event).await {
                Ok(s) if s.new_records > 0 => tracing::info!(event, new = s.new_records, "edge relay"),
                Ok(_) => {}
                Err(e) => tracing::warn!(event, error = %e, "edge relay failed; next try in the next interval"),
            }
        }
    }
}

/// `POST /admin/v1/events/{id}/edge-relay`: one relay session with the edge now.
async fn edge_relay(staff: Staff, State(state): State<AppState>, Path(id): Path<i64>) -> Result<Response> {
    staff.require(Permission::Door)?;
    let event = event_id(&state, Some(id)).await?;
    Ok(axum::Json(relay_with_edge(&state, event).await?).into_response())
}

/// The event's report and its check-in list (every pass the report counts), for the check-ins export.
pub async fn check_ins(state: &AppState, event: u32) -> Result<(EventReport, Vec<CheckIn>)> {
    read_log(state, event, |log| log.check_ins()).await
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    #[serde(default)]
    format: Option<String>,
}

async fn report(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<ReportQuery>,
) -> Result<Response> {
    staff.require(Permission::Reports)?;
    let event = event_id(&state, Some(id)).await?;
    let report = read_log(&state, event, |log| log.report()).await?;
    Ok(match q.format.as_deref() {
        Some("text") => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], report.to_table()).into_response(),
        _ => axum::Json(report).into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_is_the_wire_path() {
        assert_eq!(sync_path(Some(3), SyncChannel::Push), format!("{SYNC_PATH}?event=3&channel=push"));
        assert_eq!(sync_path(Some(3), SyncChannel::Relay), format!("{SYNC_PATH}?event=3&channel=relay"));
    }
}
