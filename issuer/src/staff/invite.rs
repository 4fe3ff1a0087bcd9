//! Invitations: an owner creates an account with a role, and a one-time link lets the colleague set the
//! password. The token travels in the link's fragment (`/dashboard/#invite=TOKEN`), which browsers never
//! send to a server or put in a Referer; only its SHA-256 is stored. A link works once, for
//! [`VALID_SECS`], and a new link for the same account replaces the old one. The first owner gets one from
//! `issuer create-owner EMAIL`.

use super::{password, session, Role, Staff};
use crate::db::Conn;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::util::{clean_email, hash_secret, now, random_token};

/// How long an invitation link works.
pub const VALID_SECS: i64 = 7 * 24 * 3600;

/// The link a colleague opens to set a password.
pub fn url(public_url: &str, token: &str) -> String {
    format!("{}/dashboard/#invite={token}", public_url.trim_end_matches('/'))
}

/// A new invitation for the account (any earlier unused one stops working). Returns the token and its
/// expiry.
pub async fn create(tx: &mut Conn, account_id: i64) -> Result<(String, i64)> {
    let now = now();
    sqlx::query("DELETE FROM staff_invitations WHERE account_id = $1 AND used_at IS NULL")
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    let token = random_token(32);
    sqlx::query(
        "INSERT INTO staff_invitations (token_hash, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(hash_secret(&token))
    .bind(account_id)
    .bind(now)
    .bind(now + VALID_SECS)
    .execute(&mut *tx)
    .await?;
    Ok((token, now + VALID_SECS))
}

/// Sets the password of the invitation's account and uses the invitation up; every session of the
/// account ends (this is also how a password is reset). Audited as `staff.password_set` by the account.
pub async fn accept(db: &Db, token: &str, new_password: String) -> Result<Staff> {
    password::validate(&new_password)?;
    if token.is_empty() || token.len() > 64 {
        return Err(Error::NotFound("invitation (it may have expired or been used)"));
    }
    let hash = password::hash(new_password).await?;
    let now = now();
    let mut tx = db.write.begin().await?;
    let row: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT a.id, a.email, a.role FROM staff_invitations i JOIN staff_accounts a ON a.id = i.account_id
         WHERE i.token_hash = $1 AND i.used_at IS NULL AND i.expires_at > $2 AND a.disabled_at IS NULL",
    )
    .bind(hash_secret(token))
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let (id, email, role) = row.ok_or(Error::NotFound("invitation (it may have expired or been used)"))?;
    let staff = super::staff_row(id, email, &role)?;
    sqlx::query("UPDATE staff_invitations SET used_at = $2 WHERE token_hash = $1")
        .bind(hash_secret(token))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE staff_accounts SET password_hash = $2 WHERE id = $1")
        .bind(id)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    session::end_all(&mut tx, id).await?;
    crate::audit::record(&mut tx, &staff, "staff.password_set", &format!("staff:{id}"), None, None).await?;
    tx.commit().await?;
    tracing::info!(account = id, "staff password set from an invitation");
    Ok(staff)
}

/// Creates an account in the caller's transaction (the email must be new). Returns its id.
pub async fn create_account(tx: &mut Conn, email: &str, role: Role, created_by: &str) -> Result<i64> {
    let email = clean_email(email)?.to_lowercase();
    let exists: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM staff_accounts WHERE email = $1").bind(&email).fetch_optional(&mut *tx).await?;
    if exists.is_some() {
        return Err(Error::Conflict(format!("an account for {email} already exists")));
    }
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO staff_accounts (email, role, created_at, created_by) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(&email)
    .bind(role.as_str())
    .bind(now())
    .bind(created_by)
    .fetch_one(&mut *tx)
    .await?;
    Ok(id)
}

/// `issuer create-owner EMAIL`: an owner account for EMAIL (or, if it already exists and is an owner, a
/// fresh invitation for it) and the link that sets its password.
pub async fn create_owner(db: &Db, public_url: &str, email: &str) -> Result<String> {
    let email = clean_email(email)?.to_lowercase();
    let who = Staff { account_id: None, email: "issuer create-owner".into(), role: Role::Owner };
    let mut tx = db.write.begin().await?;
    let existing: Option<(i64, String)> = sqlx::query_as("SELECT id, role FROM staff_accounts WHERE email = $1")
        .bind(&email)
        .fetch_optional(&mut *tx)
        .await?;
    let id = match existing {
        Some((id, role)) if role == Role::Owner.as_str() => {
            sqlx::query("UPDATE staff_accounts SET disabled_at = NULL WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            id
        }
        Some(_) => return Err(Error::Conflict(format!("{email} has an account that is not an owner's"))),
        None => {
            let id = create_account(&mut tx, &email, Role::Owner, &who.email).await?;
            let after = serde_json::json!({ "email": email, "role": Role::Owner });
            crate::audit::record(&mut tx, &who, "staff.create", &format!("staff:{id}"), None, Some(after)).await?;
            id
        }
    };
    let (token, _) = create(&mut tx, id).await?;
    crate::audit::record(&mut tx, &who, "staff.invite", &format!("staff:{id}"), None, None).await?;
    tx.commit().await?;
    Ok(url(public_url, &token))
}
