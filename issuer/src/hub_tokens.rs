//! Hub tokens: what a venue hub (`scanner hub`) presents to relay everything it holds to the issuer.
//!
//! - `POST /admin/v1/events/{id}/hub-tokens {"name":...}` (staff with the `Door` permission) → 201
//!   `{"id","event","name","token"}`: the token is shown once and stored hashed (SHA-256).
//! - `GET /admin/v1/events/{id}/hub-tokens` (`Reports`): the event's hub tokens, without secrets.
//! - `POST /admin/v1/events/{id}/hub-tokens/{token_id}/revoke` (`Door`): refused (401) from then on.
//!
//! Why a token of its own rather than a `"hub": true` flag on a device: a device token lets its holder write
//! as ONE device (the server takes only changes under the id bound to it), and every place that accepts a
//! device (manifest, revocations, push/pull, the edge's device list, the hub's own device list) would have
//! to learn to tell the two apart. A hub token is accepted by exactly one endpoint, the relay channel of
//! `/v1/sync` for its own event ([`HubToken`]); nothing else takes it, and a device token is never a relay.
//!
//! A hub is the organizer's own hardware, trusted like the edge relay: a relay session takes records of
//! any device (the log's relay rule, `scanner_core::redemption::Peer::Relay`). The log cannot restrict a
//! relay to a set of device ids today, so a hub token's holder could write records under ids that are not
//! devices of the event; the bound is the event (a hub token is refused for every other event, 403) and
//! revocation.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit;
use crate::error::{Error, Result};
use crate::extract::Json;
use crate::staff::{Permission, Staff};
use crate::state::AppState;
use crate::util::{clean_text, hash_secret, now, random_id, random_token};

/// Most active hub tokens one event may have: bounds what a careless script can create.
pub const MAX_ACTIVE_HUB_TOKENS_PER_EVENT: i64 = 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/events/{id}/hub-tokens", post(create).get(list))
        .route("/admin/v1/events/{id}/hub-tokens/{token_id}/revoke", post(revoke))
}

/// A venue hub authenticated by an active hub token, bound to one event.
#[derive(Debug, Clone)]
pub struct HubToken {
    pub id: String,
    pub event: i64,
}

impl HubToken {
    /// Refuses (403) the hub for any event but its own.
    pub fn require_event(&self, event: i64) -> Result<()> {
        if self.event == event {
            Ok(())
        } else {
            tracing::warn!(hub_token = %self.id, own = self.event, asked = event, "hub token used for another event");
            Err(Error::Forbidden(format!("this hub token is for event {}, not event {event}", self.event)))
        }
    }
}

/// Looks up an active hub token (`None`: no such active token).
pub async fn authenticate_hub(state: &AppState, token: &str) -> Result<Option<HubToken>> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT id, event_id FROM hub_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(hash_secret(token))
            .fetch_optional(&state.db.read)
            .await?;
    Ok(row.map(|(id, event)| HubToken { id, event }))
}

impl FromRequestParts<AppState> for HubToken {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| scanner_core::wire::bearer(v.to_str().ok()))
            .ok_or(Error::Unauthorized)?;
        authenticate_hub(state, token).await?.ok_or(Error::Unauthorized)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewHubToken {
    name: String,
}

async fn create(
    staff: Staff,
    State(state): State<AppState>,
    Path(event): Path<i64>,
    Json(t): Json<NewHubToken>,
) -> Result<(StatusCode, axum::Json<Value>)> {
    staff.require(Permission::Door)?;
    crate::catalog::load_event(&state, event).await?;
    let name = clean_text("name", &t.name, 100)?;
    let id = random_id("hub");
    let token = random_token(32);
    let mut tx = state.db.write.begin().await?;
    let (active,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM hub_tokens WHERE event_id = $1 AND revoked_at IS NULL")
            .bind(event)
            .fetch_one(&mut *tx)
            .await?;
    if active >= MAX_ACTIVE_HUB_TOKENS_PER_EVENT {
        return Err(Error::Conflict(format!("event {event} already has {active} active hub tokens: revoke one first")));
    }
    sqlx::query("INSERT INTO hub_tokens (id, event_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&id)
        .bind(event)
        .bind(&name)
        .bind(hash_secret(&token))
        .bind(now())
        .execute(&mut *tx)
        .await?;
    let after = json!({ "id": id, "event": event, "name": name });
    audit::record(&mut tx, &staff, "hub_token.create", &format!("hub_token:{id}"), None, Some(after)).await?;
    tx.commit().await?;
    tracing::info!(hub_token = %id, event, "hub token created");
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": id, "event": event, "name": name, "token": token }))))
}

async fn list(staff: Staff, State(state): State<AppState>, Path(event): Path<i64>) -> Result<axum::Json<Value>> {
    staff.require(Permission::Reports)?;
    crate::catalog::load_event(&state, event).await?;
    let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT id, name, created_at, revoked_at FROM hub_tokens WHERE event_id = $1 ORDER BY created_at, id",
    )
    .bind(event)
    .fetch_all(&state.db.read)
    .await?;
    let tokens: Vec<Value> = rows
        .into_iter()
        .map(|(id, name, created_at, revoked_at)| {
            json!({ "id": id, "event": event, "name": name, "created_at": created_at, "revoked_at": revoked_at })
        })
        .collect();
    Ok(axum::Json(json!({ "hub_tokens": tokens })))
}

async fn revoke(
    staff: Staff,
    State(state): State<AppState>,
    Path((event, id)): Path<(i64, String)>,
) -> Result<StatusCode> {
    staff.require(Permission::Door)?;
    let mut tx = state.db.write.begin().await?;
    let revoked_at = now();
    let row: Option<(String,)> = sqlx::query_as(
        "UPDATE hub_tokens SET revoked_at = $1 WHERE id = $2 AND event_id = $3 AND revoked_at IS NULL RETURNING name",
    )
    .bind(revoked_at)
    .bind(&id)
    .bind(event)
    .fetch_optional(&mut *tx)
    .await?;
    let (name,) = row.ok_or(Error::NotFound("active hub token"))?;
    let before = json!({ "id": id, "event": event, "name": name, "revoked_at": null });
    let after = json!({ "id": id, "event": event, "name": name, "revoked_at": revoked_at });
    audit::record(&mut tx, &staff, "hub_token.revoke", &format!("hub_token:{id}"), Some(before), Some(after)).await?;
    tx.commit().await?;
    tracing::info!(hub_token = %id, event, "hub token revoked");
    Ok(StatusCode::NO_CONTENT)
}
