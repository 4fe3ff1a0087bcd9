//! Scanner support: the public keyring, the signed revocation list (with `since` deltas) and the
//! per-event attendee manifest. Revocations and manifests require a scanner device token (revocations
//! also accept the edge Worker's edge token). A device token is valid for its own event only: the
//! manifest of another event, or any request whose `?event=` names another event, is refused with 403
//! (see [`crate::auth`]). The edge's device list and the edge-token admin API are in [`crate::edge`].

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use rand::RngCore;
use scanner_core::manifest::{seal_entry, Manifest, ManifestEntry, Money};
use scanner_core::wire::{KEYRING_PATH, MANIFEST_ROUTE, REVOCATIONS_PATH};
use scanner_core::TicketId;
use serde::Deserialize;

use crate::auth::{OptionalDevice, RevocationReader, ScannerDevice};
use crate::error::{Error, Result};
use crate::extract::Query;
use crate::orders::model::OrderStatus;
use crate::state::AppState;
use crate::util::now;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/keyring", get(keyring))
        .route(KEYRING_PATH, get(scanner_keyring))
        .route(REVOCATIONS_PATH, get(revocations))
        .route(MANIFEST_ROUTE, get(manifest))
}

fn json_response(body: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-cache")], body)
}

async fn keyring(State(state): State<AppState>) -> impl IntoResponse {
    json_response(state.signer.keyring.to_json())
}

/// The same public keyring; a device token, if one is sent, must be valid (and for `?event=`).
async fn scanner_keyring(_device: OptionalDevice, State(state): State<AppState>) -> impl IntoResponse {
    json_response(state.signer.keyring.to_json())
}

#[derive(Debug, Deserialize)]
struct Since {
    #[serde(default)]
    since: u64,
}

async fn revocations(
    _reader: RevocationReader,
    State(state): State<AppState>,
    Query(q): Query<Since>,
) -> impl IntoResponse {
    if let Err(e) = crate::orders::refund::refresh_revocations(&state).await {
        // The list this process has is still valid and signed: serve it.
        tracing::warn!(error = %e, "could not check for a newer revocation list");
    }
    let delta = state.revocations.lock().await.delta_since(q.since);
    json_response(delta.to_json())
}

async fn manifest(
    device: ScannerDevice,
    State(state): State<AppState>,
    Path(event_id): Path<i64>,
) -> Result<impl IntoResponse> {
    device.require_event(event_id)?;
    let event = u32::try_from(event_id).map_err(|_| Error::NotFound("event"))?;
    crate::catalog::load_event(&state, event_id).await?;
    // For a ticket of a pay-at-the-door order, the amount to collect: its type's and add-ons' prices, which
    // is what the order was priced at (catalog prices never change once set).
    let rows: Vec<(String, i64, i64, String, i64, String)> = sqlx::query_as(
        "SELECT t.ticket_id, t.ticket_type, t.addon_mask, t.holder_name,
                CASE WHEN o.payment_method = 'at_door' THEN tt.price_cents + COALESCE((SELECT CAST(SUM(a.price_cents) AS BIGINT)
                     FROM addons a WHERE a.event_id = t.event_id AND ((t.addon_mask >> a.idx) & 1) = 1), 0)
                ELSE 0 END,
                o.currency
         FROM tickets t JOIN orders o ON o.id = t.order_id
         JOIN ticket_types tt ON tt.event_id = t.event_id AND tt.idx = t.ticket_type
         WHERE t.event_id = $1 AND t.revoked = FALSE AND o.status = $2 ORDER BY t.created_at, t.ticket_id",
    )
    .bind(event_id)
    .bind(OrderStatus::Confirmed)
    .fetch_all(&state.db.read)
    .await?;
    let mut m = Manifest::new(event, now() as u64);
    for (id_hex, tt, mask, holder, due_cents, currency) in rows {
        let Some(id) = TicketId::from_hex(&id_hex) else { continue };
        let entry = ManifestEntry {
            ticket_type: u8::try_from(tt).map_err(Error::internal)?,
            addons: u16::try_from(mask).map_err(Error::internal)?,
            holder_name: holder.chars().take(scanner_core::manifest::MAX_HOLDER_NAME_LEN / 4).collect(),
            due: match u64::try_from(due_cents) {
                Ok(minor) if minor > 0 => Some(Money::new(minor, &currency).map_err(Error::internal)?),
                _ => None,
            },
        };
        m.entries.push(seal_entry(event, &id, &entry, random_nonce()).map_err(Error::internal)?);
    }
    tracing::info!(device = %device.id, event = event_id, entries = m.entries.len(), "manifest served");
    Ok(json_response(m.to_json()))
}

/// Fresh random nonce for manifest sealing.
fn random_nonce() -> [u8; 12] {
    let mut n = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

#[cfg(test)]
mod tests {
    use scanner_core::wire::revocations_path;

    use super::*;

    #[test]
    fn routes_are_the_wire_paths() {
        assert_eq!(revocations_path(5), format!("{REVOCATIONS_PATH}?since=5"));
    }
}
