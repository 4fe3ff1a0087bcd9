//! Sign-in throttling: failed attempts are counted per email address (whether or not an account has it,
//! so the answers do not tell which addresses exist) and per client IP address, in a window of
//! [`WINDOW_SECS`]. A key at its limit is locked for [`LOCK_SECS`]: every attempt under it, with the right
//! password or not, is answered 429 with `Retry-After` without checking the password.
//!
//! The counters live in the store (`login_throttle`), so a restart does not reset them. The table is
//! bounded: stale rows are deleted whenever a failure is counted, and new rows only come from failures,
//! which the per-IP limit bounds.

use crate::db::Conn;
use crate::error::Result;

/// Failures per email address in a window before it is locked.
pub const EMAIL_LIMIT: i64 = 5;
/// Failures per client IP address in a window before it is locked (an office behind one address has
/// several people mistyping).
pub const IP_LIMIT: i64 = 20;
pub const WINDOW_SECS: i64 = 15 * 60;
pub const LOCK_SECS: i64 = 15 * 60;

pub fn email_key(email: &str) -> String {
    format!("email:{email}")
}

pub fn ip_key(ip: std::net::IpAddr) -> String {
    format!("ip:{ip}")
}

/// Seconds until the longest lock among `keys` ends, if any of them is locked.
pub async fn locked(conn: &mut Conn, keys: &[&str], now: i64) -> Result<Option<i64>> {
    let mut wait = None;
    for key in keys {
        let row: Option<(i64,)> = sqlx::query_as("SELECT locked_until FROM login_throttle WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some((until,)) = row {
            if until > now {
                wait = Some(wait.unwrap_or(0).max(until - now));
            }
        }
    }
    Ok(wait)
}

/// Counts a failure under `key`; true when this failure reached `limit` and locked the key.
pub async fn fail(conn: &mut Conn, key: &str, limit: i64, now: i64) -> Result<bool> {
    sqlx::query("DELETE FROM login_throttle WHERE window_start <= $1 AND locked_until <= $2")
        .bind(now - WINDOW_SECS)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    // A window that ended starts over at this failure.
    let (failures,): (i64,) = sqlx::query_as(
        "INSERT INTO login_throttle (key, failures, window_start, locked_until) VALUES ($1, 1, $2, 0)
         ON CONFLICT (key) DO UPDATE SET
           failures = CASE WHEN login_throttle.window_start <= $2 - $3 THEN 1 ELSE login_throttle.failures + 1 END,
           window_start = CASE WHEN login_throttle.window_start <= $2 - $3 THEN $2 ELSE login_throttle.window_start END
         RETURNING failures",
    )
    .bind(key)
    .bind(now)
    .bind(WINDOW_SECS)
    .fetch_one(&mut *conn)
    .await?;
    if failures >= limit {
        sqlx::query("UPDATE login_throttle SET locked_until = $2, failures = 0, window_start = $2 WHERE key = $1")
            .bind(key)
            .bind(now + LOCK_SECS)
            .execute(&mut *conn)
            .await?;
        return Ok(true);
    }
    Ok(false)
}

/// Forgets the failures under `key` (after a successful sign-in for that address).
pub async fn clear(conn: &mut Conn, key: &str) -> Result<()> {
    sqlx::query("DELETE FROM login_throttle WHERE key = $1").bind(key).execute(&mut *conn).await?;
    Ok(())
}
