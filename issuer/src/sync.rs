//! Redemption log sync: the issuer is the sync server of the embedded deployment, and serves the
//! organizer's report.
//!
//! - `POST /v1/sync?event=ID` — scanner device token. Body: one automerge sync message
//!   (`application/octet-stream`) from `scanner_core::redemption`. Answer: 200 with the server's next
//!   message, or 204 when it has nothing to say. A message that is damaged or would do anything but add the
//!   device's own records is refused with 400 and changes nothing.
//! - `GET /admin/v1/events/{id}/redemptions[?format=text]` — admin token: the report (admitted per gate and
//!   hour, conflicts with devices, gates and times, refusals by reason) as JSON or a readable table.
//!
//! The server's copy of each event's log is `DATA_DIR/redemptions/event-<id>.log`: a full save followed by
//! incremental chunks, each appended and fsync'd before the reply. Per-device sync state (the heads both
//! sides had at the end of the last exchange) is kept in memory and in `event-<id>.peers/<device id>`, so
//! a device that reconnects only exchanges what is new. The protocol logic is `scanner_core`'s
//! transport-agnostic [`serve_sync`]; this module only stores and routes.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use scanner_core::redemption::document::{decode_peer_state, encode_peer_state, PeerState};
use scanner_core::redemption::{serve_sync, EventReport, RedemptionDoc, SyncError};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::{Admin, ScannerDevice};
use crate::error::{Error, Result};
use crate::extract::{body_bytes, Query};

/// Largest sync message accepted (a first sync of a large log is sent as one compressed document).
pub const MAX_SYNC_BODY_BYTES: usize = 32 << 20;
/// Appended chunks after which the log file is rewritten as one full save.
const COMPACT_AFTER_CHUNKS: usize = 256;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sync", post(sync)).route("/admin/v1/events/{id}/redemptions", get(report))
}

/// One event's log on the server.
struct EventLog {
    path: PathBuf,
    peers_dir: PathBuf,
    doc: RedemptionDoc,
    peers: HashMap<String, PeerState>,
    chunks: usize,
}

/// Open logs by file path (one process may run several servers, e.g. in tests).
static LOGS: LazyLock<Mutex<HashMap<PathBuf, Arc<Mutex<EventLog>>>>> = LazyLock::new(Default::default);

fn redemptions_dir(state: &AppState) -> PathBuf {
    state.config.data_dir.join("redemptions")
}

fn open_log(dir: &FsPath, event: u32) -> Result<Arc<Mutex<EventLog>>> {
    let path = dir.join(format!("event-{event}.log"));
    let mut logs = LOGS.lock().map_err(|_| Error::internal("redemption log lock poisoned"))?;
    if let Some(log) = logs.get(&path) {
        return Ok(log.clone());
    }
    std::fs::create_dir_all(dir).map_err(Error::internal)?;
    let doc = match std::fs::read(&path) {
        Ok(bytes) if !bytes.is_empty() => RedemptionDoc::load(&bytes)
            .map_err(|e| Error::internal(format!("stored redemption log {} is damaged: {e}", path.display())))?,
        Ok(_) => RedemptionDoc::new_relay(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => RedemptionDoc::new_relay(),
        Err(e) => return Err(Error::internal(e)),
    };
    let log = Arc::new(Mutex::new(EventLog {
        peers_dir: dir.join(format!("event-{event}.peers")),
        path: path.clone(),
        doc,
        peers: HashMap::new(),
        chunks: 0,
    }));
    logs.insert(path, log.clone());
    Ok(log)
}

impl EventLog {
    fn peer_state(&mut self, device: &str) -> PeerState {
        if let Some(state) = self.peers.get(device) {
            return state.clone();
        }
        std::fs::read(self.peers_dir.join(device))
            .ok()
            .and_then(|bytes| decode_peer_state(&bytes).ok())
            .unwrap_or_default()
    }

    /// Appends what changed to the log file and fsyncs it.
    fn persist(&mut self) -> Result<()> {
        let chunk = self.doc.take_unsaved();
        if chunk.is_empty() {
            return Ok(());
        }
        if self.chunks >= COMPACT_AFTER_CHUNKS {
            let tmp = self.path.with_extension("log.tmp");
            let mut file = std::fs::File::create(&tmp).map_err(Error::internal)?;
            file.write_all(&self.doc.save()).map_err(Error::internal)?;
            file.sync_all().map_err(Error::internal)?;
            std::fs::rename(&tmp, &self.path).map_err(Error::internal)?;
            self.chunks = 0;
            return Ok(());
        }
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(Error::internal)?;
        file.write_all(&chunk).map_err(Error::internal)?;
        file.sync_data().map_err(Error::internal)?;
        self.chunks += 1;
        Ok(())
    }

    fn save_peer(&mut self, device: &str, state: PeerState) {
        // Losing a peer state only makes the next sync with that device cost more: best effort.
        let _ = std::fs::create_dir_all(&self.peers_dir);
        let _ = std::fs::write(self.peers_dir.join(device), encode_peer_state(&state));
        self.peers.insert(device.to_owned(), state);
    }

    /// One exchange with one device. On a refused message nothing changes.
    fn serve(&mut self, device: &str, message: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut state = self.peer_state(device);
        let reply = serve_sync(&mut self.doc, &mut state, message).map_err(|e| match e {
            SyncError::TooLarge(_) => Error::PayloadTooLarge(MAX_SYNC_BODY_BYTES),
            other => Error::BadRequest(other.to_string()),
        })?;
        if reply.received.changed {
            self.persist()?;
        }
        self.save_peer(device, state);
        Ok(reply.reply)
    }
}

#[derive(Debug, Deserialize)]
struct SyncQuery {
    event: Option<i64>,
}

async fn event_id(state: &AppState, id: Option<i64>) -> Result<u32> {
    let id = id.ok_or_else(|| Error::BadRequest("give the event: /v1/sync?event=ID".into()))?;
    crate::catalog::load_event(state, id).await?;
    u32::try_from(id).map_err(|_| Error::NotFound("event"))
}

async fn sync(
    device: ScannerDevice,
    State(state): State<AppState>,
    Query(q): Query<SyncQuery>,
    req: Request,
) -> Result<Response> {
    let event = event_id(&state, q.event).await?;
    let body = body_bytes(req, MAX_SYNC_BODY_BYTES).await?;
    let dir = redemptions_dir(&state);
    let device_id = device.id.clone();
    let reply = tokio::task::spawn_blocking(move || -> Result<Option<Vec<u8>>> {
        let log = open_log(&dir, event)?;
        let mut log = log.lock().map_err(|_| Error::internal("redemption log lock poisoned"))?;
        log.serve(&device_id, &body)
    })
    .await
    .map_err(Error::internal)??;
    tracing::debug!(device = %device.id, event, replied = reply.is_some(), "redemption sync");
    Ok(match reply {
        Some(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    #[serde(default)]
    format: Option<String>,
}

async fn report(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<ReportQuery>,
) -> Result<Response> {
    let event = event_id(&state, Some(id)).await?;
    let dir = redemptions_dir(&state);
    let report = tokio::task::spawn_blocking(move || -> Result<EventReport> {
        let log = open_log(&dir, event)?;
        let log = log.lock().map_err(|_| Error::internal("redemption log lock poisoned"))?;
        Ok(EventReport::from_logs(&log.doc.device_logs().map_err(Error::internal)?))
    })
    .await
    .map_err(Error::internal)??;
    Ok(match q.format.as_deref() {
        Some("text") => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], report.to_table()).into_response(),
        _ => axum::Json(report).into_response(),
    })
}
