//! Staff accounts and roles: who may do what in the back office.
//!
//! People sign in with an email and a password (argon2id, [`password`]) and get a session cookie
//! ([`session`]); scripts use a per-account API token or, for compatibility, the legacy admin token.
//! Every admin handler takes a [`Staff`] and calls [`Staff::require`] with the [`Permission`] it needs:
//!
//! | role             | Catalog | Orders | Door | Reports | Staff |
//! |------------------|---------|--------|------|---------|-------|
//! | owner            | yes     | yes    | yes  | yes     | yes   |
//! | box office       |         | yes    |      | yes     |       |
//! | door supervisor  |         |        | yes  | yes     |       |
//! | viewer           |         |        |      | yes     |       |
//!
//! `Reports` is the read-only permission (figures, lists); every write needs one of the others.
//!
//! How a request proves who it is ([`Staff`]'s extractor), in this order:
//! 1. `Authorization: Bearer <legacy admin token>` (DATA_DIR/admin-token or `--admin-token`): acts as an
//!    owner with the email `admin-token`, so scripts and tests written before accounts existed keep working.
//! 2. `Authorization: Bearer <account API token>` (created in the dashboard): acts as its account, with the
//!    account's current role; refused once revoked or once the account is disabled.
//! 3. The session cookie; for any method but GET/HEAD/OPTIONS also the session's CSRF token in the
//!    `X-CSRF-Token` header (the dashboard echoes it; a cross-site form cannot), else 403. Bearer requests
//!    need no CSRF token: a browser never attaches them on its own.

pub mod invite;
pub mod password;
pub mod routes;
pub mod session;
pub mod throttle;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Method;
use scanner_core::wire::{self, constant_time_eq};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::util::hash_secret;

pub use routes::router;

/// What a staff member is to the organizer. Stored as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    BoxOffice,
    DoorSupervisor,
    Viewer,
}

/// A kind of admin action; each role allows a fixed set of them ([`Role::allows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Create and edit events, ticket types, add-ons.
    Catalog,
    /// Orders: refunds, cancellations, resending tickets, holder names.
    Orders,
    /// The door: scanner devices, supervisor passes, gate rules, edge tokens.
    Door,
    /// Read-only: figures, lists and reports.
    Reports,
    /// Staff accounts, and the audit log.
    Staff,
}

impl Permission {
    pub const ALL: [Permission; 5] =
        [Permission::Catalog, Permission::Orders, Permission::Door, Permission::Reports, Permission::Staff];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Catalog => "catalog",
            Permission::Orders => "orders",
            Permission::Door => "door",
            Permission::Reports => "reports",
            Permission::Staff => "staff",
        }
    }
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::BoxOffice, Role::DoorSupervisor, Role::Viewer];

    /// The permission table of the module documentation: the one place roles are decided.
    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Owner => true,
            Role::BoxOffice => matches!(p, Orders | Reports),
            Role::DoorSupervisor => matches!(p, Door | Reports),
            Role::Viewer => matches!(p, Reports),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::BoxOffice => "box_office",
            Role::DoorSupervisor => "door_supervisor",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn permissions(self) -> Vec<Permission> {
        Permission::ALL.into_iter().filter(|p| self.allows(*p)).collect()
    }
}

/// The email the legacy admin token acts under (it has no account).
pub const ADMIN_TOKEN_ACTOR: &str = "admin-token";

/// An authenticated staff member (see the module documentation for how a request proves it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    /// `None` for the legacy admin token.
    pub account_id: Option<i64>,
    pub email: String,
    pub role: Role,
}

impl Staff {
    /// 403 unless this staff member's role allows `p`.
    pub fn require(&self, p: Permission) -> Result<()> {
        if self.role.allows(p) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "your role ({}) does not allow this ({} permission needed)",
                self.role.as_str(),
                p.as_str()
            )))
        }
    }

    /// The legacy admin token's identity.
    pub fn admin_token() -> Staff {
        Staff { account_id: None, email: ADMIN_TOKEN_ACTOR.to_owned(), role: Role::Owner }
    }
}

/// The request's bearer token, if it has an `Authorization: Bearer` header.
fn bearer(parts: &Parts) -> Option<&str> {
    wire::bearer(parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok())
}

/// Methods a browser may send cross-site without the page's consent; they change nothing here.
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The header unsafe cookie-authenticated requests must carry the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An active account (enabled, password set) by the hash of one of its API tokens.
async fn staff_for_api_token(state: &AppState, token: &str) -> Result<Option<Staff>> {
    let row: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT a.id, a.email, a.role FROM staff_api_tokens t JOIN staff_accounts a ON a.id = t.account_id
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND a.disabled_at IS NULL AND a.password_hash IS NOT NULL",
    )
    .bind(hash_secret(token))
    .fetch_optional(&state.db.read)
    .await?;
    row.map(|(id, email, role)| staff_row(id, email, &role)).transpose()
}

/// A `Staff` from a stored account row.
pub(crate) fn staff_row(id: i64, email: String, role: &str) -> Result<Staff> {
    let role = Role::parse(role).ok_or_else(|| Error::internal(format!("staff account {id}: unknown role {role}")))?;
    Ok(Staff { account_id: Some(id), email, role })
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        if parts.headers.contains_key(axum::http::header::AUTHORIZATION) {
            let token = bearer(parts).ok_or(Error::Unauthorized)?;
            if constant_time_eq(token.as_bytes(), state.admin_token.as_bytes()) {
                return Ok(Staff::admin_token());
            }
            return staff_for_api_token(state, token).await?.ok_or(Error::Unauthorized);
        }
        let session = session::from_cookie(state, &parts.headers).await?.ok_or(Error::Unauthorized)?;
        if !is_safe(&parts.method) {
            let sent = parts.headers.get(CSRF_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
            if !constant_time_eq(sent, session.csrf_token.as_bytes()) {
                tracing::warn!(account = ?session.staff.account_id, method = %parts.method, path = %parts.uri.path(),
                    "cookie request without the session's CSRF token refused");
                return Err(Error::Forbidden(
                    "missing or wrong CSRF token: send the session's csrf_token in the X-CSRF-Token header".into(),
                ));
            }
        }
        Ok(session.staff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), serde_json::json!(r.as_str()));
        }
        assert_eq!(Role::parse("Owner"), None);
        assert_eq!(Role::parse(""), None);
    }
}
