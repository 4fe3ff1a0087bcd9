//! The staff HTTP API:
//!
//! - `POST /admin/v1/session {"email","password"}` — sign in: sets the session cookie and answers
//!   `{"email","role","permissions","csrf_token","expires_at"}`. A wrong password and an unknown email get
//!   the same 401; too many failures for the address or from the client's IP address get 429
//!   ([`super::throttle`]).
//! - `GET /admin/v1/session` — who the request is (any way of authenticating), with the session's
//!   `csrf_token` when it is a cookie session. `DELETE /admin/v1/session` — sign out.
//! - `GET /admin/v1/staff`, `POST /admin/v1/staff {"email","role"}` (→ an invitation link),
//!   `PATCH /admin/v1/staff/{id} {"role"?, "disabled"?}`, `POST /admin/v1/staff/{id}/invitation` (a new
//!   link, e.g. for a forgotten password) — owners only (`Staff` permission).
//! - `POST /admin/v1/invitations/accept {"token","password"}` — no sign-in: the invitation token is the proof.
//! - `GET /admin/v1/api-tokens`, `POST /admin/v1/api-tokens {"name"}` (→ the token, shown once),
//!   `POST /admin/v1/api-tokens/{id}/revoke` — the signed-in account's own tokens (an owner may revoke
//!   anyone's). An API token acts with its account's current role.
//! - `GET /admin/v1/audit?action=&actor=&target=&since_ms=&until_ms=&before_id=&limit=` — the audit log
//!   ([`crate::audit`]), owners only.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{invite, password, session, staff_row, throttle, Permission, Role, Staff};
use crate::audit;
use crate::error::{Error, Result};
use crate::extract::{Json, Query};
use crate::limits::ClientIp;
use crate::state::AppState;
use crate::util::{clean_text, hash_secret, now, random_id, random_token};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/session", post(login).get(whoami).delete(logout))
        .route("/admin/v1/staff", get(list_staff).post(create_staff))
        .route("/admin/v1/staff/{id}", patch(update_staff))
        .route("/admin/v1/staff/{id}/invitation", post(reinvite))
        .route("/admin/v1/invitations/accept", post(accept_invitation))
        .route("/admin/v1/api-tokens", get(list_tokens).post(create_token))
        .route("/admin/v1/api-tokens/{id}/revoke", post(revoke_token))
        .route("/admin/v1/audit", get(audit_log))
}

fn target(id: i64) -> String {
    format!("staff:{id}")
}

// ---- sign in / out ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    email: String,
    password: String,
}

/// The one answer to a wrong password and to an unknown address.
fn bad_login() -> Response {
    let body = json!({ "error": { "code": "unauthorized", "message": "wrong email or password" } });
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}

fn session_body(s: &session::Session) -> Value {
    json!({
        "account_id": s.staff.account_id,
        "email": s.staff.email,
        "role": s.staff.role,
        "permissions": s.staff.role.permissions(),
        "csrf_token": s.csrf_token,
        "expires_at": s.expires_at,
    })
}

/// id, email, role, password hash (None until the invitation is accepted), disabled_at.
type LoginRow = (i64, String, String, Option<String>, Option<i64>);

async fn login(State(state): State<AppState>, ClientIp(client): ClientIp, Json(l): Json<Login>) -> Result<Response> {
    // Bounded before any work: the address as stored (lower-cased), the password's size.
    let email = l.email.trim().to_lowercase();
    if email.is_empty() || email.len() > 254 || email.chars().any(char::is_control) {
        return Err(Error::validation("email", "must be an email address of at most 254 characters"));
    }
    if l.password.len() > password::MAX_BYTES {
        return Err(Error::validation("password", format!("must be at most {} bytes", password::MAX_BYTES)));
    }
    let email_key = throttle::email_key(&email);
    let ip_key = throttle::ip_key(client);
    let now = now();
    {
        let mut conn = state.db.read.acquire().await?;
        if let Some(wait) = throttle::locked(&mut conn, &[&email_key, &ip_key], now).await? {
            return Err(Error::RateLimited {
                message: format!("too many failed sign-ins; try again in {wait} s"),
                retry_after_secs: wait as u64,
            });
        }
    }
    let account: Option<LoginRow> =
        sqlx::query_as("SELECT id, email, role, password_hash, disabled_at FROM staff_accounts WHERE email = $1")
            .bind(&email)
            .fetch_optional(&state.db.read)
            .await?;
    // An unknown address, an account without a password yet and a disabled one are all checked against a
    // dummy hash: same work, same answer as a wrong password.
    let usable = account.as_ref().filter(|a| a.4.is_none()).and_then(|a| a.3.clone());
    let ok = password::verify(l.password, usable).await?;
    let mut tx = state.db.write.begin().await?;
    match (ok, account) {
        (true, Some((id, email, role, _, _))) => {
            let staff = staff_row(id, email, &role)?;
            throttle::clear(&mut tx, &email_key).await?;
            let (raw, s) = session::create(&mut tx, &staff).await?;
            audit::record(&mut tx, &staff, "staff.login", &target(id), None, Some(json!({ "ip": client }))).await?;
            tx.commit().await?;
            tracing::info!(account = id, "staff signed in");
            let mut resp = axum::Json(session_body(&s)).into_response();
            resp.headers_mut().insert(header::SET_COOKIE, session::set_cookie(&state, &raw)?);
            resp.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
            Ok(resp)
        }
        (_, account) => {
            let email_locked = throttle::fail(&mut tx, &email_key, throttle::EMAIL_LIMIT, now).await?;
            let ip_locked = throttle::fail(&mut tx, &ip_key, throttle::IP_LIMIT, now).await?;
            // One row per lock of an existing account (not per failure, not for unknown addresses): see
            // crate::audit on why failures are not logged one by one.
            if email_locked {
                if let Some((id, email, role, _, _)) = account {
                    let staff = staff_row(id, email, &role)?;
                    let after = json!({ "ip": client, "locked_for_secs": throttle::LOCK_SECS });
                    audit::record(&mut tx, &staff, "staff.login_locked", &target(id), None, Some(after)).await?;
                }
            }
            tx.commit().await?;
            if email_locked || ip_locked {
                tracing::warn!(ip = %client, email_locked, ip_locked, "sign-in throttle engaged");
            }
            Ok(bad_login())
        }
    }
}

async fn whoami(staff: Staff, State(state): State<AppState>, headers: HeaderMap) -> Result<axum::Json<Value>> {
    if !headers.contains_key(header::AUTHORIZATION) {
        if let Some(s) = session::from_cookie(&state, &headers).await? {
            return Ok(axum::Json(session_body(&s)));
        }
    }
    Ok(axum::Json(json!({
        "account_id": staff.account_id,
        "email": staff.email,
        "role": staff.role,
        "permissions": staff.role.permissions(),
    })))
}

/// Ends the cookie's session (the CSRF check of [`Staff`] applies: a cross-site page cannot sign you out).
async fn logout(staff: Staff, State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    let s = session::from_cookie(&state, &headers)
        .await?
        .ok_or_else(|| Error::BadRequest("no session to end: this request is not signed in with a cookie".into()))?;
    let mut tx = state.db.write.begin().await?;
    sqlx::query("DELETE FROM staff_sessions WHERE id_hash = $1").bind(&s.id_hash).execute(&mut *tx).await?;
    let id = staff.account_id.unwrap_or_default();
    audit::record(&mut tx, &staff, "staff.logout", &target(id), None, None).await?;
    tx.commit().await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(header::SET_COOKIE, session::clear_cookie(&state));
    Ok(resp)
}

// ---- accounts --------------------------------------------------------------------------------------------

type AccountRow = (i64, String, String, Option<String>, i64, String, Option<i64>);

fn account_json((id, email, role, password_hash, created_at, created_by, disabled_at): AccountRow) -> Value {
    let status = if disabled_at.is_some() {
        "disabled"
    } else if password_hash.is_some() {
        "active"
    } else {
        "invited"
    };
    json!({ "id": id, "email": email, "role": role, "status": status, "created_at": created_at,
            "created_by": created_by, "disabled_at": disabled_at })
}

async fn load_account(conn: &mut crate::db::Conn, id: i64) -> Result<AccountRow> {
    sqlx::query_as(
        "SELECT id, email, role, password_hash, created_at, created_by, disabled_at FROM staff_accounts WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound("staff account"))
}

async fn list_staff(staff: Staff, State(state): State<AppState>) -> Result<axum::Json<Value>> {
    staff.require(Permission::Staff)?;
    let rows: Vec<AccountRow> = sqlx::query_as(
        "SELECT id, email, role, password_hash, created_at, created_by, disabled_at FROM staff_accounts ORDER BY id",
    )
    .fetch_all(&state.db.read)
    .await?;
    Ok(axum::Json(json!({ "staff": rows.into_iter().map(account_json).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStaff {
    email: String,
    role: Role,
}

async fn create_staff(
    staff: Staff,
    State(state): State<AppState>,
    Json(n): Json<NewStaff>,
) -> Result<(StatusCode, axum::Json<Value>)> {
    staff.require(Permission::Staff)?;
    let mut tx = state.db.write.begin().await?;
    let id = invite::create_account(&mut tx, &n.email, n.role, &staff.email).await?;
    let (token, expires_at) = invite::create(&mut tx, id).await?;
    let account = account_json(load_account(&mut tx, id).await?);
    audit::record(&mut tx, &staff, "staff.create", &target(id), None, Some(account.clone())).await?;
    tx.commit().await?;
    tracing::info!(account = id, role = n.role.as_str(), "staff account created");
    let mut body = account;
    body["invitation_url"] = json!(invite::url(&state.public_url, &token));
    body["invitation_expires_at"] = json!(expires_at);
    Ok((StatusCode::CREATED, axum::Json(body)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StaffChange {
    role: Option<Role>,
    disabled: Option<bool>,
}

/// Changes a role or disables/enables an account. Any change ends the account's sessions (they carry the
/// old role's trust); the last enabled owner can be neither demoted nor disabled.
async fn update_staff(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Json(c): Json<StaffChange>,
) -> Result<axum::Json<Value>> {
    staff.require(Permission::Staff)?;
    if c.role.is_none() && c.disabled.is_none() {
        return Err(Error::BadRequest("nothing to change: send role and/or disabled".into()));
    }
    let mut tx = state.db.write.begin().await?;
    let before_row = load_account(&mut tx, id).await?;
    let was_owner = before_row.2 == Role::Owner.as_str() && before_row.6.is_none();
    let before = account_json(before_row);
    if let Some(role) = c.role {
        sqlx::query("UPDATE staff_accounts SET role = $2 WHERE id = $1")
            .bind(id)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
    }
    match c.disabled {
        Some(true) => {
            sqlx::query("UPDATE staff_accounts SET disabled_at = COALESCE(disabled_at, $2) WHERE id = $1")
                .bind(id)
                .bind(now())
                .execute(&mut *tx)
                .await?;
        }
        Some(false) => {
            sqlx::query("UPDATE staff_accounts SET disabled_at = NULL WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        None => {}
    }
    if was_owner {
        let (owners,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM staff_accounts WHERE role = 'owner' AND disabled_at IS NULL")
                .fetch_one(&mut *tx)
                .await?;
        if owners == 0 {
            return Err(Error::Conflict("this is the last owner: make someone else owner first".into()));
        }
    }
    session::end_all(&mut tx, id).await?;
    let after = account_json(load_account(&mut tx, id).await?);
    audit::record(&mut tx, &staff, "staff.update", &target(id), Some(before), Some(after.clone())).await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

async fn reinvite(staff: Staff, State(state): State<AppState>, Path(id): Path<i64>) -> Result<axum::Json<Value>> {
    staff.require(Permission::Staff)?;
    let mut tx = state.db.write.begin().await?;
    let account = load_account(&mut tx, id).await?;
    if account.6.is_some() {
        return Err(Error::Conflict("the account is disabled: enable it first".into()));
    }
    let (token, expires_at) = invite::create(&mut tx, id).await?;
    audit::record(&mut tx, &staff, "staff.invite", &target(id), None, None).await?;
    tx.commit().await?;
    Ok(axum::Json(json!({
        "id": id,
        "invitation_url": invite::url(&state.public_url, &token),
        "invitation_expires_at": expires_at,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Accept {
    token: String,
    password: String,
}

async fn accept_invitation(State(state): State<AppState>, Json(a): Json<Accept>) -> Result<axum::Json<Value>> {
    let staff = invite::accept(&state.db, a.token.trim(), a.password).await?;
    Ok(axum::Json(json!({ "email": staff.email, "role": staff.role })))
}

// ---- API tokens ------------------------------------------------------------------------------------------

fn own_account(staff: &Staff) -> Result<i64> {
    staff.account_id.ok_or_else(|| {
        Error::Forbidden("the legacy admin token has no account: sign in as a person to manage API tokens".into())
    })
}

async fn list_tokens(staff: Staff, State(state): State<AppState>) -> Result<axum::Json<Value>> {
    let account = own_account(&staff)?;
    let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT id, name, created_at, revoked_at FROM staff_api_tokens WHERE account_id = $1 ORDER BY created_at, id",
    )
    .bind(account)
    .fetch_all(&state.db.read)
    .await?;
    let tokens: Vec<Value> = rows
        .into_iter()
        .map(|(id, name, created_at, revoked_at)| {
            json!({ "id": id, "name": name, "created_at": created_at, "revoked_at": revoked_at })
        })
        .collect();
    Ok(axum::Json(json!({ "api_tokens": tokens })))
}

/// Most active API tokens one account may hold.
pub const MAX_TOKENS_PER_ACCOUNT: i64 = 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
}

async fn create_token(
    staff: Staff,
    State(state): State<AppState>,
    Json(t): Json<NewToken>,
) -> Result<(StatusCode, axum::Json<Value>)> {
    let account = own_account(&staff)?;
    let name = clean_text("name", &t.name, 100)?;
    let mut tx = state.db.write.begin().await?;
    let (active,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM staff_api_tokens WHERE account_id = $1 AND revoked_at IS NULL")
            .bind(account)
            .fetch_one(&mut *tx)
            .await?;
    if active >= MAX_TOKENS_PER_ACCOUNT {
        return Err(Error::Conflict(format!("at most {MAX_TOKENS_PER_ACCOUNT} active API tokens: revoke one first")));
    }
    let id = random_id("tok");
    let token = random_token(32);
    sqlx::query(
        "INSERT INTO staff_api_tokens (id, account_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(account)
    .bind(&name)
    .bind(hash_secret(&token))
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let after = json!({ "id": id, "name": name, "account_id": account });
    audit::record(&mut tx, &staff, "api_token.create", &format!("api_token:{id}"), None, Some(after)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": id, "name": name, "token": token }))))
}

async fn revoke_token(staff: Staff, State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode> {
    let mut tx = state.db.write.begin().await?;
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT account_id, name FROM staff_api_tokens WHERE id = $1 AND revoked_at IS NULL")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?;
    // Someone else's token is "not found" unless the caller may manage staff.
    let (owner, name) = row
        .filter(|(owner, _)| Some(*owner) == staff.account_id || staff.role.allows(Permission::Staff))
        .ok_or(Error::NotFound("active API token"))?;
    sqlx::query("UPDATE staff_api_tokens SET revoked_at = $2 WHERE id = $1")
        .bind(&id)
        .bind(now())
        .execute(&mut *tx)
        .await?;
    let before = json!({ "id": id, "name": name, "account_id": owner });
    audit::record(&mut tx, &staff, "api_token.revoke", &format!("api_token:{id}"), Some(before), None).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- audit log -------------------------------------------------------------------------------------------

async fn audit_log(
    staff: Staff,
    State(state): State<AppState>,
    Query(f): Query<audit::Filter>,
) -> Result<axum::Json<Value>> {
    staff.require(Permission::Staff)?;
    let entries = audit::list(&state, &f).await?;
    Ok(axum::Json(json!({ "entries": entries })))
}

// ---- demo owner ------------------------------------------------------------------------------------------

/// The demo owner's address (`issuer serve --demo`).
pub const DEMO_OWNER_EMAIL: &str = "owner@example.org";

/// `--demo`: when no account exists yet, an owner `owner@example.org` with a random password written
/// (0600) to DATA_DIR/owner-password, like the admin token.
pub async fn seed_demo_owner(state: &AppState) -> Result<()> {
    let (accounts,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM staff_accounts").fetch_one(&state.db.read).await?;
    if accounts > 0 {
        return Ok(());
    }
    let path = state.config.data_dir.join("owner-password");
    let secret = random_token(18);
    let hash = password::hash(secret.clone()).await?;
    let who = Staff { account_id: None, email: "issuer --demo".into(), role: Role::Owner };
    let mut tx = state.db.write.begin().await?;
    let id = invite::create_account(&mut tx, DEMO_OWNER_EMAIL, Role::Owner, &who.email).await?;
    sqlx::query("UPDATE staff_accounts SET password_hash = $2 WHERE id = $1")
        .bind(id)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        &who,
        "staff.create",
        &target(id),
        None,
        Some(json!({ "email": DEMO_OWNER_EMAIL, "role": Role::Owner })),
    )
    .await?;
    let _ = std::fs::remove_file(&path);
    crate::keys::write_secret_new(&path, secret.as_bytes()).map_err(Error::internal)?;
    tx.commit().await?;
    tracing::info!(email = DEMO_OWNER_EMAIL, path = %path.display(), "demo owner created; password written (0600)");
    Ok(())
}
