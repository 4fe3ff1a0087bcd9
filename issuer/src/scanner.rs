//! Scanner support: the public keyring, the signed revocation list (with `since` deltas) and the
//! per-event attendee manifest. Revocations and manifests require a scanner device token.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use scanner_core::manifest::{seal_entry, Manifest, ManifestEntry};
use scanner_core::TicketId;
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::ScannerDevice;
use crate::error::{Error, Result};
use crate::extract::Query;
use crate::orders::random_nonce;
use crate::util::now;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/keyring", get(keyring))
        .route("/v1/scanner/keyring", get(keyring))
        .route("/v1/scanner/revocations", get(revocations))
        .route("/v1/scanner/events/{id}/manifest", get(manifest))
}

fn json_response(body: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-cache")], body)
}

async fn keyring(State(state): State<AppState>) -> impl IntoResponse {
    json_response(state.signer.keyring.to_json())
}

#[derive(Debug, Deserialize)]
struct Since {
    #[serde(default)]
    since: u64,
}

async fn revocations(
    _device: ScannerDevice,
    State(state): State<AppState>,
    Query(q): Query<Since>,
) -> impl IntoResponse {
    let delta = state.revocations.lock().await.delta_since(q.since);
    json_response(delta.to_json())
}

async fn manifest(
    device: ScannerDevice,
    State(state): State<AppState>,
    Path(event_id): Path<i64>,
) -> Result<impl IntoResponse> {
    let event = u32::try_from(event_id).map_err(|_| Error::NotFound("event"))?;
    crate::catalog::load_event(&state, event_id).await?;
    let rows: Vec<(String, i64, i64, String)> = sqlx::query_as(
        "SELECT t.ticket_id, t.ticket_type, t.addon_mask, t.holder_name FROM tickets t JOIN orders o ON o.id = t.order_id
         WHERE t.event_id = $1 AND t.revoked = FALSE AND o.status = 'confirmed' ORDER BY t.created_at, t.ticket_id",
    )
    .bind(event_id)
    .fetch_all(&state.db.read)
    .await?;
    let mut m = Manifest::new(event, now() as u64);
    for (id_hex, tt, mask, holder) in rows {
        let Some(id) = TicketId::from_hex(&id_hex) else { continue };
        let entry = ManifestEntry {
            ticket_type: u8::try_from(tt).map_err(Error::internal)?,
            addons: u16::try_from(mask).map_err(Error::internal)?,
            holder_name: holder.chars().take(scanner_core::manifest::MAX_HOLDER_NAME_LEN / 4).collect(),
        };
        m.entries.push(seal_entry(event, &id, &entry, random_nonce()).map_err(Error::internal)?);
    }
    tracing::info!(device = %device.id, event = event_id, entries = m.entries.len(), "manifest served");
    Ok(json_response(m.to_json()))
}
