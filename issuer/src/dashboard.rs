//! Admin JSON the organizer dashboard needs beyond the rest of the admin API:
//!
//! - `GET /admin/v1/orders?event=ID[&status=S][&q=TEXT][&limit=N][&offset=N]` — the newest orders first,
//!   with their ticket counts (no ticket secrets), for the orders list with its refund buttons; `q` finds
//!   orders by part of the customer's name or email, or by order id, and `total` says how many match.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::extract::Query;
use crate::orders::model::OrderStatus;
use crate::state::AppState;

/// Most orders one list call returns.
const MAX_LIST: i64 = 1000;
/// Longest search text.
const MAX_QUERY: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/v1/orders", get(list_orders))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderFilter {
    event: Option<i64>,
    status: Option<String>,
    /// Part of a name or email, or an order id.
    q: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct OrderSummary {
    id: String,
    event_id: i64,
    status: OrderStatus,
    customer_name: String,
    customer_email: String,
    payment_method: String,
    total_cents: i64,
    currency: String,
    created_at: i64,
    tickets: i64,
    revoked_tickets: i64,
}

#[derive(Debug, Serialize)]
struct OrderList {
    orders: Vec<OrderSummary>,
    /// How many orders match the filters (the list holds at most `limit` of them).
    total: i64,
}

/// A `LIKE` pattern matching `text` anywhere, with the pattern characters in it taken literally.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

async fn list_orders(
    _: Admin,
    State(state): State<AppState>,
    Query(f): Query<OrderFilter>,
) -> Result<axum::Json<OrderList>> {
    let limit = f.limit.unwrap_or(200);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(Error::validation("limit", format!("must be between 1 and {MAX_LIST}")));
    }
    let offset = f.offset.unwrap_or(0);
    if offset < 0 {
        return Err(Error::validation("offset", "must not be negative"));
    }
    let q = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if q.is_some_and(|q| q.chars().count() > MAX_QUERY || q.chars().any(char::is_control)) {
        return Err(Error::validation("q", format!("must be at most {MAX_QUERY} printable characters")));
    }
    let pattern = q.map(contains_pattern);
    // NULL filters match everything, so one condition serves every combination. LOWER(..) LIKE rather
    // than ILIKE: the same statement works on SQLite and PostgreSQL.
    const FILTER: &str = "($1 IS NULL OR o.event_id = $1) AND ($2 IS NULL OR o.status = $2)
         AND ($3 IS NULL OR LOWER(o.customer_name) LIKE $3 ESCAPE '\\' OR LOWER(o.customer_email) LIKE $3 ESCAPE '\\'
              OR o.id = $4)";
    let orders = sqlx::query_as::<_, OrderSummary>(&format!(
        "SELECT o.id, o.event_id, o.status, o.customer_name, o.customer_email, o.payment_method, o.total_cents,
                o.currency, o.created_at,
                (SELECT COUNT(*) FROM tickets t WHERE t.order_id = o.id) AS tickets,
                (SELECT COUNT(*) FROM tickets t WHERE t.order_id = o.id AND t.revoked) AS revoked_tickets
         FROM orders o WHERE {FILTER}
         ORDER BY o.created_at DESC, o.id DESC LIMIT $5 OFFSET $6"
    ))
    .bind(f.event)
    .bind(f.status.as_deref())
    .bind(pattern.as_deref())
    .bind(q)
    .bind(limit)
    .bind(offset)
    .fetch_all(&state.db.read)
    .await?;
    let (total,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM orders o WHERE {FILTER}"))
        .bind(f.event)
        .bind(f.status.as_deref())
        .bind(pattern.as_deref())
        .bind(q)
        .fetch_one(&state.db.read)
        .await?;
    Ok(axum::Json(OrderList { orders, total }))
}
