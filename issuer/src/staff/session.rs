//! Dashboard sessions: a random 256-bit id in an HttpOnly, SameSite=Strict cookie (Secure when the issuer
//! is served over https), stored only as its SHA-256 with the account, a CSRF token and two expiries: an
//! absolute one ([`TTL_SECS`] after sign-in) and an idle one ([`IDLE_SECS`] without a request).

use axum::http::{header, HeaderMap, HeaderValue};

use super::{staff_row, Staff};
use crate::db::Conn;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::util::{hash_secret, now, random_token};

pub const COOKIE: &str = "tickets_staff_session";
/// The cookie is sent to the admin API only: the pages and the dashboard's files do not need it.
const COOKIE_PATH: &str = "/admin/";
/// A session ends this long after sign-in, whatever happens.
pub const TTL_SECS: i64 = 12 * 3600;
/// ... or this long after its last request.
pub const IDLE_SECS: i64 = 2 * 3600;
/// The last-request time is written at most this often per session, so the dashboard's polling does not
/// turn every read into a write.
const TOUCH_EVERY_SECS: i64 = 60;

/// A signed-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub staff: Staff,
    pub csrf_token: String,
    pub id_hash: String,
    pub expires_at: i64,
}

/// The session id in the request's cookies, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty() && v.len() <= 64)
}

type Row = (i64, String, String, String, i64, i64);

/// The live session the request's cookie names, if any. Expired sessions are deleted when met.
pub async fn from_cookie(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>> {
    let Some(raw) = cookie_value(headers) else { return Ok(None) };
    let id_hash = hash_secret(raw);
    let row: Option<Row> = sqlx::query_as(
        "SELECT a.id, a.email, a.role, s.csrf_token, s.expires_at, s.last_seen_at
         FROM staff_sessions s JOIN staff_accounts a ON a.id = s.account_id
         WHERE s.id_hash = $1 AND a.disabled_at IS NULL",
    )
    .bind(&id_hash)
    .fetch_optional(&state.db.read)
    .await?;
    let Some((account, email, role, csrf_token, expires_at, last_seen)) = row else { return Ok(None) };
    let now = now();
    if expires_at <= now || last_seen + IDLE_SECS <= now {
        sqlx::query("DELETE FROM staff_sessions WHERE id_hash = $1").bind(&id_hash).execute(&state.db.write).await?;
        return Ok(None);
    }
    if now - last_seen >= TOUCH_EVERY_SECS {
        sqlx::query("UPDATE staff_sessions SET last_seen_at = $2 WHERE id_hash = $1")
            .bind(&id_hash)
            .bind(now)
            .execute(&state.db.write)
            .await?;
    }
    Ok(Some(Session { staff: staff_row(account, email, &role)?, csrf_token, id_hash, expires_at }))
}

/// A new session for `account_id` in the caller's transaction: the cookie value (shown to the browser
/// once, stored hashed) and the session.
pub async fn create(tx: &mut Conn, staff: &Staff) -> Result<(String, Session)> {
    let account = staff.account_id.ok_or_else(|| Error::internal("a session needs an account"))?;
    let raw = random_token(32);
    let csrf_token = random_token(32);
    let id_hash = hash_secret(&raw);
    let now = now();
    sqlx::query(
        "INSERT INTO staff_sessions (id_hash, account_id, csrf_token, created_at, expires_at, last_seen_at)
         VALUES ($1, $2, $3, $4, $5, $4)",
    )
    .bind(&id_hash)
    .bind(account)
    .bind(&csrf_token)
    .bind(now)
    .bind(now + TTL_SECS)
    .execute(&mut *tx)
    .await?;
    Ok((raw, Session { staff: staff.clone(), csrf_token, id_hash, expires_at: now + TTL_SECS }))
}

/// Ends every session of an account (disabled, role changed, password set).
pub async fn end_all(tx: &mut Conn, account_id: i64) -> Result<()> {
    sqlx::query("DELETE FROM staff_sessions WHERE account_id = $1").bind(account_id).execute(&mut *tx).await?;
    Ok(())
}

fn secure(state: &AppState) -> &'static str {
    if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

/// The `Set-Cookie` value that stores a session in the browser.
pub fn set_cookie(state: &AppState, raw: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE}={raw}; Path={COOKIE_PATH}; Max-Age={TTL_SECS}; HttpOnly; SameSite=Strict{}",
        secure(state)
    ))
    .map_err(Error::internal)
}

/// The `Set-Cookie` value that removes it.
pub fn clear_cookie(state: &AppState) -> HeaderValue {
    let v = format!("{COOKIE}=; Path={COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict{}", secure(state));
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("tickets_staff_session=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; tickets_staff_session=abc ; b=2"));
        assert_eq!(cookie_value(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("xtickets_staff_session=abc"));
        assert_eq!(cookie_value(&h), None);
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("tickets_staff_session=def"));
        assert_eq!(cookie_value(&h), Some("def"));
    }
}
