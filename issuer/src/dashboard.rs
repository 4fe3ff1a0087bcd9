//! Admin JSON the organizer dashboard needs beyond the rest of the admin API:
//!
//! - `GET /admin/v1/orders?event=ID[&status=S][&limit=N]` — the newest orders first, with their ticket
//!   counts (no ticket secrets), for the orders list with its refund buttons.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::extract::Query;

/// Most orders one list call returns.
const MAX_LIST: i64 = 1000;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/v1/orders", get(list_orders))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderFilter {
    event: Option<i64>,
    status: Option<String>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct OrderSummary {
    id: String,
    event_id: i64,
    status: String,
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
    // NULL filters match everything, so one statement serves every combination.
    let orders = sqlx::query_as::<_, OrderSummary>(
        "SELECT o.id, o.event_id, o.status, o.customer_name, o.customer_email, o.payment_method, o.total_cents,
                o.currency, o.created_at,
                (SELECT COUNT(*) FROM tickets t WHERE t.order_id = o.id) AS tickets,
                (SELECT COUNT(*) FROM tickets t WHERE t.order_id = o.id AND t.revoked) AS revoked_tickets
         FROM orders o
         WHERE ($1 IS NULL OR o.event_id = $1) AND ($2 IS NULL OR o.status = $2)
         ORDER BY o.created_at DESC, o.id DESC LIMIT $3",
    )
    .bind(f.event)
    .bind(f.status)
    .bind(limit)
    .fetch_all(&state.db.read)
    .await?;
    Ok(axum::Json(OrderList { orders }))
}
