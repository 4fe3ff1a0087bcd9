//! Bearer-token authentication: the admin token, and scanner device tokens issued from the admin API.
//!
//! [`ScannerDevice`] is a public extractor so that every scanner-facing module (manifest, revocations,
//! redemption sync) authenticates devices the same way. Tokens are never logged and only their SHA-256 is
//! stored.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::app::AppState;
use crate::error::{Error, Result};
use crate::util::{constant_time_eq, hash_secret};

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Proof that the request carries the admin bearer token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        match bearer(parts) {
            Some(token) if constant_time_eq(token.as_bytes(), state.admin_token.as_bytes()) => Ok(Admin),
            _ => Err(Error::Unauthorized),
        }
    }
}

/// A scanner device authenticated by its device token.
#[derive(Debug, Clone)]
pub struct ScannerDevice {
    pub id: String,
    pub name: String,
}

/// Looks up an active device by its bearer token.
pub async fn authenticate_device(state: &AppState, token: &str) -> Result<ScannerDevice> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT id, name FROM devices WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(hash_secret(token))
            .fetch_optional(&state.db.read)
            .await?;
    row.map(|(id, name)| ScannerDevice { id, name }).ok_or(Error::Unauthorized)
}

impl FromRequestParts<AppState> for ScannerDevice {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer(parts).ok_or(Error::Unauthorized)?;
        authenticate_device(state, token).await
    }
}
