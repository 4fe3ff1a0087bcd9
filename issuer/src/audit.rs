//! The audit log: every admin action — who, what, when, and the target's state before and after as JSON.
//!
//! [`record`] takes the connection of the transaction that makes the change, so the row exists exactly
//! when the change does (a rolled-back change leaves no row, a committed one always has its row).
//! `GET /admin/v1/audit` lists it, newest first, with filters ([`list`]); only the `Staff` permission
//! (owners) may read it, because before/after values hold customers' names and addresses.
//!
//! Action names are `<thing>.<verb>`: `staff.login`, `staff.logout`, `staff.login_locked`,
//! `staff.create`, `staff.update`, `staff.invite`, `staff.password_set`, `api_token.create`,
//! `api_token.revoke`, `device.create`, `device.revoke`, `edge_token.create`, `edge_token.revoke`,
//! `order.refund`, `order.cancel`, `email.retry`, `supervisor_pass.create`, `gates.update`,
//! `edge.relay`, and those of the catalog and order modules (`event.create`, `ticket_type.update`, ...).
//!
//! Failed sign-ins are not written one by one: anyone can fail to sign in, as often as the throttle lets
//! them, and a row each would let an attacker bury the real actions. One `staff.login_locked` row is
//! written when an existing account gets locked by the throttle (at most one per lock period).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::staff::Staff;
use crate::state::AppState;

/// Largest before/after value stored (serialised JSON). Larger ones are replaced by a marker saying so:
/// the action is still recorded, a huge body cannot grow the log without bound.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Longest action and target names.
const MAX_NAME: usize = 200;

fn bounded(v: Option<Value>) -> Result<Option<String>> {
    let Some(v) = v else { return Ok(None) };
    let text = serde_json::to_string(&v).map_err(Error::internal)?;
    if text.len() > MAX_VALUE_BYTES {
        return Ok(Some(serde_json::json!({ "truncated": true, "bytes": text.len() }).to_string()));
    }
    Ok(Some(text))
}

fn bounded_name(s: &str) -> String {
    s.chars().take(MAX_NAME).collect()
}

/// Writes one audit row in the caller's transaction (`tx` is `&mut *transaction`).
pub async fn record(
    tx: &mut crate::db::Conn,
    who: &Staff,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at_ms, actor_account_id, actor_email, actor_role, action, target, before_json, after_json)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(crate::util::now_ms())
    .bind(who.account_id)
    .bind(&who.email)
    .bind(who.role.as_str())
    .bind(bounded_name(action))
    .bind(bounded_name(target))
    .bind(bounded(before)?)
    .bind(bounded(after)?)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One row of the log as the API shows it.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub id: i64,
    pub at_ms: i64,
    pub actor_account_id: Option<i64>,
    pub actor_email: String,
    pub actor_role: String,
    pub action: String,
    pub target: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Filters of `GET /admin/v1/audit`; every one is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Exact action name, or a prefix ending in `.` (`event.` finds every event action).
    pub action: Option<String>,
    /// Part of the actor's email.
    pub actor: Option<String>,
    /// Part of the target.
    pub target: Option<String>,
    /// Unix milliseconds, inclusive.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Rows with a smaller id only (the next page: the last id of the previous one).
    pub before_id: Option<i64>,
    pub limit: Option<i64>,
}

/// Most rows one call returns.
pub const MAX_LIST: i64 = 500;

/// A `LIKE` pattern matching `text` literally: anywhere (`%text%`) or, with `prefix`, at the start.
fn like_pattern(text: &str, prefix: bool) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    if !prefix {
        p.push('%');
    }
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

fn filter_text(field: &'static str, v: &Option<String>) -> Result<Option<String>> {
    match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if s.chars().count() > MAX_NAME || s.chars().any(char::is_control) => {
            Err(Error::validation(field, format!("must be at most {MAX_NAME} printable characters")))
        }
        Some(s) => Ok(Some(s.to_owned())),
    }
}

type Row = (i64, i64, Option<i64>, String, String, String, String, Option<String>, Option<String>);

/// The newest rows matching `f`.
pub async fn list(state: &AppState, f: &Filter) -> Result<Vec<Entry>> {
    let limit = f.limit.unwrap_or(100);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(Error::validation("limit", format!("must be between 1 and {MAX_LIST}")));
    }
    let action = filter_text("action", &f.action)?;
    let (action_exact, action_prefix) = match action {
        Some(a) if a.ends_with('.') => (None, Some(like_pattern(&a, true))),
        other => (other, None),
    };
    let actor = filter_text("actor", &f.actor)?.map(|a| like_pattern(&a.to_lowercase(), false));
    let target = filter_text("target", &f.target)?.map(|t| like_pattern(&t, false));
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, at_ms, actor_account_id, actor_email, actor_role, action, target, before_json, after_json
         FROM audit_log
         WHERE ($1 IS NULL OR action = $1) AND ($2 IS NULL OR action LIKE $2 ESCAPE '\\')
           AND ($3 IS NULL OR LOWER(actor_email) LIKE $3 ESCAPE '\\') AND ($4 IS NULL OR target LIKE $4 ESCAPE '\\')
           AND ($5 IS NULL OR at_ms >= $5) AND ($6 IS NULL OR at_ms <= $6) AND ($7 IS NULL OR id < $7)
         ORDER BY id DESC LIMIT $8",
    )
    .bind(action_exact)
    .bind(action_prefix)
    .bind(actor)
    .bind(target)
    .bind(f.since_ms)
    .bind(f.until_ms)
    .bind(f.before_id)
    .bind(limit)
    .fetch_all(&state.db.read)
    .await?;
    rows.into_iter()
        .map(|(id, at_ms, actor_account_id, actor_email, actor_role, action, target, before, after)| {
            let parse = |s: Option<String>| -> Result<Option<Value>> {
                s.map(|s| serde_json::from_str(&s).map_err(Error::internal)).transpose()
            };
            Ok(Entry {
                id,
                at_ms,
                actor_account_id,
                actor_email,
                actor_role,
                action,
                target,
                before: parse(before)?,
                after: parse(after)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_take_wildcards_literally() {
        assert_eq!(like_pattern("a%b_c", false), "%a\\%b\\_c%");
        assert_eq!(like_pattern("event.", true), "event.%");
    }

    #[test]
    fn oversized_values_become_a_marker() {
        let big = Value::String("x".repeat(MAX_VALUE_BYTES + 1));
        let stored = bounded(Some(big)).unwrap().unwrap();
        let v: Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(v["truncated"], Value::Bool(true));
        assert_eq!(v["bytes"], serde_json::json!(MAX_VALUE_BYTES + 3));
    }
}
