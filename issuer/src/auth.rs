//! Bearer-token authentication of machines: scanner device tokens and edge tokens, both issued from the
//! admin API. People (and the legacy admin token) are [`crate::staff::Staff`]; [`Admin`] is "an owner".
//!
//! - A **device token** is bound to one event when the device is created. [`ScannerDevice`] is a public
//!   extractor so that every scanner-facing module (manifest, revocations, redemption sync)
//!   authenticates devices the same way; it also refuses (403) a request whose `?event=` names another
//!   event, so every endpoint that takes the event in its query (`/v1/sync?event=`) is scoped without
//!   repeating the check. Endpoints with the event in their path call [`ScannerDevice::require_event`].
//!   Devices created before tokens were bound to an event (no `event_id`) are refused with 403.
//! - An **edge token** ([`EdgeToken`]) is what the edge Worker presents: it reads the signed revocation
//!   list ([`RevocationReader`]) and the list of active device-token hashes, and nothing else.
//!
//! Tokens are never logged and only their SHA-256 is stored.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use scanner_core::redemption::DeviceId;
use scanner_core::token::{device_id_for_token_hash, parse_token_hash};
use scanner_core::wire;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::staff::{Role, Staff};
use crate::state::AppState;
use crate::util::hash_secret;

/// The request's bearer token (scanner-core's [`wire::bearer`] over the `Authorization` header).
fn bearer(parts: &Parts) -> Option<&str> {
    wire::bearer(parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok())
}

/// Proof that the request is an owner: the legacy admin token, or a staff member ([`Staff`]: session with
/// its CSRF token, or API token) whose role is owner. Admin handlers check roles with [`Staff::require`];
/// one still taking `Admin` is owner-only, the safe default.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let staff = Staff::from_request_parts(parts, state).await?;
        if staff.role == Role::Owner {
            Ok(Admin)
        } else {
            Err(Error::Forbidden(format!("only an owner may do this (your role: {})", staff.role.as_str())))
        }
    }
}

/// A scanner device authenticated by its device token.
#[derive(Debug, Clone)]
pub struct ScannerDevice {
    /// The device's id in the admin API (`dev_...`).
    pub id: String,
    pub name: String,
    /// The one event this device's token is valid for.
    pub event: i64,
    /// The device's id in the redemption log, derived from its stored token hash
    /// ([`scanner_core::token::device_id_for_token_hash`]): the only actor a sync server accepts changes
    /// under from this device.
    pub log_device: DeviceId,
}

impl ScannerDevice {
    /// Refuses (403) the device for any event but its own.
    pub fn require_event(&self, event: i64) -> Result<()> {
        if self.event == event {
            Ok(())
        } else {
            Err(wrong_event(self.event, event))
        }
    }
}

fn wrong_event(own: i64, asked: i64) -> Error {
    Error::Forbidden(format!("this device token is for event {own}, not event {asked}"))
}

/// Looks up an active device by its bearer token.
pub async fn authenticate_device(state: &AppState, token: &str) -> Result<ScannerDevice> {
    let row: Option<(String, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT id, name, token_hash, event_id FROM devices WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash_secret(token))
    .fetch_optional(&state.db.read)
    .await?;
    let (id, name, stored_hash, event) = row.ok_or(Error::Unauthorized)?;
    let event = event.ok_or_else(|| {
        Error::Forbidden(
            "this device token was created before device tokens were bound to an event and is no longer \
             accepted: create a new device for the event"
                .into(),
        )
    })?;
    let hash = parse_token_hash(&stored_hash).ok_or_else(|| Error::internal(format!("device {id}: bad token hash")))?;
    Ok(ScannerDevice { id, name, event, log_device: device_id_for_token_hash(&hash) })
}

#[derive(Debug, Deserialize)]
struct EventParam {
    event: Option<String>,
}

/// The request's `?event=` if it is a number. A malformed value is left to the handler to report.
fn query_event(parts: &Parts) -> Option<i64> {
    let q = axum::extract::Query::<EventParam>::try_from_uri(&parts.uri).ok()?;
    q.0.event?.trim().parse().ok()
}

async fn device_from_parts(parts: &Parts, state: &AppState, token: &str) -> Result<ScannerDevice> {
    let device = authenticate_device(state, token).await?;
    if let Some(event) = query_event(parts) {
        device.require_event(event).inspect_err(|_| {
            tracing::warn!(device = %device.id, own = device.event, asked = event, "device token used for another event");
        })?;
    }
    Ok(device)
}

impl FromRequestParts<AppState> for ScannerDevice {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer(parts).ok_or(Error::Unauthorized)?;
        device_from_parts(parts, state, token).await
    }
}

/// The edge Worker, authenticated by an edge token (admin API `POST /admin/v1/edge-tokens`). It may read
/// the signed revocation list and the device list, nothing else: no other extractor accepts it.
#[derive(Debug, Clone)]
pub struct EdgeToken {
    pub id: String,
}

/// Looks up an active edge token.
pub async fn authenticate_edge(state: &AppState, token: &str) -> Result<EdgeToken> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM edge_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(hash_secret(token))
            .fetch_optional(&state.db.read)
            .await?;
    row.map(|(id,)| EdgeToken { id }).ok_or(Error::Unauthorized)
}

impl FromRequestParts<AppState> for EdgeToken {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer(parts).ok_or(Error::Unauthorized)?;
        authenticate_edge(state, token).await
    }
}

/// Who may read the signed revocation list: a scanner device (scoped to its event like every scanner
/// endpoint) or the edge Worker.
#[derive(Debug, Clone)]
pub enum RevocationReader {
    Device(ScannerDevice),
    Edge(EdgeToken),
}

impl FromRequestParts<AppState> for RevocationReader {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer(parts).ok_or(Error::Unauthorized)?;
        match device_from_parts(parts, state, token).await {
            Ok(device) => Ok(RevocationReader::Device(device)),
            Err(Error::Unauthorized) => authenticate_edge(state, token).await.map(RevocationReader::Edge),
            Err(e) => Err(e),
        }
    }
}

/// A device token when the request carries one (scoped like [`ScannerDevice`]), `None` when it carries
/// no `Authorization` at all: for endpoints that are public but must still refuse a token used for
/// another event or revoked.
#[derive(Debug, Clone)]
pub struct OptionalDevice(pub Option<ScannerDevice>);

impl FromRequestParts<AppState> for OptionalDevice {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        if !parts.headers.contains_key(axum::http::header::AUTHORIZATION) {
            return Ok(OptionalDevice(None));
        }
        let token = bearer(parts).ok_or(Error::Unauthorized)?;
        device_from_parts(parts, state, token).await.map(|d| OptionalDevice(Some(d)))
    }
}
