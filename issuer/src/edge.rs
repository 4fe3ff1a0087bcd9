//! What the edge Worker reads from the issuer, and the edge tokens it reads it with.
//!
//! - `GET /v1/edge/devices` — edge token: the active device tokens as the edge checks them, their SHA-256
//!   hashes with the event each is for: `{"devices":[{"token_hash":"<64 hex>","event":1},...],
//!   "generated_at":<unix s>}`. Revoked devices, and devices created before tokens were bound to an event,
//!   are absent. The Worker pulls this list on the interval it pulls revocations, so a device revoked
//!   here is refused at the edge within that interval.
//! - `POST /admin/v1/edge-tokens {"name":...}` (staff with the `Door` permission; listing: `Reports`) → `{"id","name","token"}` (the token is shown once, stored
//!   hashed), `GET /admin/v1/edge-tokens`, `POST /admin/v1/edge-tokens/{id}/revoke`.
//!
//! An edge token is read-only: only this list and the signed revocation list
//! (`GET /v1/scanner/revocations`) accept it ([`crate::auth::EdgeToken`]).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use scanner_core::wire::EDGE_DEVICES_PATH;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::audit;
use crate::auth::EdgeToken;
use crate::error::{Error, Result};
use crate::extract::Json;
use crate::staff::{Permission, Staff};
use crate::state::AppState;
use crate::util::{clean_text, hash_secret, now, random_id, random_token};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(EDGE_DEVICES_PATH, get(devices))
        .route("/admin/v1/edge-tokens", post(create).get(list))
        .route("/admin/v1/edge-tokens/{id}/revoke", post(revoke))
}

/// One entry of the edge's device list.
#[derive(Debug, Serialize)]
struct EdgeDevice {
    token_hash: String,
    event: i64,
}

async fn devices(edge: EdgeToken, State(state): State<AppState>) -> Result<impl IntoResponse> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT token_hash, event_id FROM devices WHERE revoked_at IS NULL AND event_id IS NOT NULL ORDER BY token_hash",
    )
    .fetch_all(&state.db.read)
    .await?;
    let devices: Vec<EdgeDevice> =
        rows.into_iter().map(|(token_hash, event)| EdgeDevice { token_hash, event }).collect();
    tracing::debug!(edge = %edge.id, devices = devices.len(), "device list served to the edge");
    let body = serde_json::to_string(&json!({ "devices": devices, "generated_at": now() })).map_err(Error::internal)?;
    Ok(([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEdgeToken {
    name: String,
}

async fn create(
    staff: Staff,
    State(state): State<AppState>,
    Json(t): Json<NewEdgeToken>,
) -> Result<(StatusCode, axum::Json<Value>)> {
    staff.require(Permission::Door)?;
    let name = clean_text("name", &t.name, 100)?;
    let id = random_id("edge");
    let token = random_token(32);
    let mut tx = state.db.write.begin().await?;
    sqlx::query("INSERT INTO edge_tokens (id, name, token_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(&name)
        .bind(hash_secret(&token))
        .bind(now())
        .execute(&mut *tx)
        .await?;
    let after = json!({ "id": id, "name": name });
    audit::record(&mut tx, &staff, "edge_token.create", &format!("edge_token:{id}"), None, Some(after)).await?;
    tx.commit().await?;
    tracing::info!(edge_token = %id, "edge token created");
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": id, "name": name, "token": token }))))
}

async fn list(staff: Staff, State(state): State<AppState>) -> Result<axum::Json<Value>> {
    staff.require(Permission::Reports)?;
    let rows: Vec<(String, String, i64, Option<i64>)> =
        sqlx::query_as("SELECT id, name, created_at, revoked_at FROM edge_tokens ORDER BY created_at, id")
            .fetch_all(&state.db.read)
            .await?;
    let tokens: Vec<Value> = rows
        .into_iter()
        .map(|(id, name, created_at, revoked_at)| {
            json!({ "id": id, "name": name, "created_at": created_at, "revoked_at": revoked_at })
        })
        .collect();
    Ok(axum::Json(json!({ "edge_tokens": tokens })))
}

async fn revoke(staff: Staff, State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode> {
    staff.require(Permission::Door)?;
    let mut tx = state.db.write.begin().await?;
    let revoked_at = now();
    let row: Option<(String,)> =
        sqlx::query_as("UPDATE edge_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING name")
            .bind(revoked_at)
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?;
    let (name,) = row.ok_or(Error::NotFound("active edge token"))?;
    let before = json!({ "id": id, "name": name, "revoked_at": null });
    let after = json!({ "id": id, "name": name, "revoked_at": revoked_at });
    audit::record(&mut tx, &staff, "edge_token.revoke", &format!("edge_token:{id}"), Some(before), Some(after)).await?;
    tx.commit().await?;
    tracing::info!(edge_token = %id, "edge token revoked");
    Ok(StatusCode::NO_CONTENT)
}
