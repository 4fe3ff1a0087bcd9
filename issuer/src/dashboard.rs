//! Admin JSON the organizer dashboard needs beyond the rest of the admin API:
//!
//! - `GET /admin/v1/orders?event=ID[&status=S][&q=TEXT][&limit=N][&offset=N]` — the newest orders first,
//!   with their ticket counts (no ticket secrets), for the orders list with its refund buttons; `q` finds
//!   orders by part of the customer's name or email, or by order id, and `total` says how many match.
//! - `GET /admin/v1/orders/{id}/detail` — one order for the back office: its tickets (holder, valid or
//!   not), its refunds and the mails sent for it. No ticket secrets (QR texts, ticket ids).
//! - `POST /admin/v1/orders/{id}/tickets/{seq}/refund` and `.../cancel` — one ticket of a confirmed order
//!   refunded (its share of the payment back through the provider) or cancelled (no money moves): revoked,
//!   its seat released ([`crate::orders::refund::close_ticket`]).
//! - `PUT /admin/v1/orders/{id}/tickets/{seq}/holder` `{"holder_name": "..."}` — the name a ticket carries;
//!   scanners get it in the next manifest they fetch (the manifest is sealed per ticket on every fetch).
//! - `POST /admin/v1/orders/{id}/resend` — the tickets mailed again through the outbox, at most
//!   [`MAX_RESENDS_PER_HOUR`] times an hour per order.
//!
//! Every write records its audit row in its own transaction ([`crate::audit::record`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::extract::{Json, Query};
use crate::orders::model::{load_order, OrderStatus};
use crate::orders::refund::{close_ticket, TicketClosed};
use crate::staff::{Permission, Staff};
use crate::state::AppState;
use crate::util::{now, now_ms};

/// Resends of one order's tickets allowed per hour (a box office clicking twice, not a mail cannon).
pub const MAX_RESENDS_PER_HOUR: i64 = 3;

/// Most orders one list call returns.
const MAX_LIST: i64 = 1000;
/// Longest search text.
const MAX_QUERY: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/orders", get(list_orders))
        .route("/admin/v1/orders/{id}/detail", get(order_detail))
        .route("/admin/v1/orders/{id}/tickets/{seq}/refund", post(refund_ticket))
        .route("/admin/v1/orders/{id}/tickets/{seq}/cancel", post(cancel_ticket))
        .route("/admin/v1/orders/{id}/tickets/{seq}/holder", put(edit_holder))
        .route("/admin/v1/orders/{id}/resend", post(resend))
        .merge(crate::exports::router())
        .merge(crate::selfservice::router())
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
    who: Staff,
    State(state): State<AppState>,
    Query(f): Query<OrderFilter>,
) -> Result<axum::Json<OrderList>> {
    who.require(Permission::Reports)?;
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

/// One mail of the outbox as the order detail shows it.
#[derive(Debug, Serialize, sqlx::FromRow)]
struct MailSent {
    kind: String,
    /// `email` or `sms`.
    channel: String,
    status: String,
    attempts: i64,
    /// Unix milliseconds.
    created_at: i64,
    sent_at: Option<i64>,
    last_error: Option<String>,
}

async fn order_detail(who: Staff, State(state): State<AppState>, Path(id): Path<String>) -> Result<axum::Json<Value>> {
    who.require(Permission::Reports)?;
    let order = load_order(&state, &id, None).await?;
    let tickets: Vec<Value> = order
        .tickets
        .iter()
        .map(|t| {
            json!({ "seq": t.seq, "ticket_type": t.ticket_type, "ticket_type_name": t.ticket_type_name,
                    "addons": t.addons, "holder_name": t.holder_name, "revoked": t.revoked })
        })
        .collect();
    let refunds = crate::payments::refunds::all_for_order(&state, &id).await?;
    // The ticket a refund was for, by its position (the ticket's id stays with the issuer).
    let ids: Vec<(String, i64)> = sqlx::query_as("SELECT ticket_id, seq FROM tickets WHERE order_id = $1")
        .bind(&id)
        .fetch_all(&state.db.read)
        .await?;
    let refunds: Vec<Value> = refunds
        .into_iter()
        .map(|r| {
            let seq = ids.iter().find(|(t, _)| !r.ticket_id.is_empty() && *t == r.ticket_id).map(|(_, s)| *s);
            json!({ "ticket_seq": seq, "whole_order": r.ticket_id.is_empty(), "amount_cents": r.amount_cents,
                    "status": r.status, "reason": r.reason, "attempts": r.attempts, "last_error": r.last_error,
                    "created_at": r.created_at })
        })
        .collect();
    let mails: Vec<MailSent> = sqlx::query_as(
        "SELECT kind, channel, status, attempts, created_at, sent_at, last_error FROM email_jobs WHERE order_id = $1 ORDER BY id",
    )
    .bind(&id)
    .fetch_all(&state.db.read)
    .await?;
    Ok(axum::Json(json!({
        "id": order.id, "status": order.status, "event": { "id": order.event.id, "name": order.event.name },
        "customer_name": order.customer_name, "customer_email": order.customer_email,
        "total_cents": order.total_cents, "currency": order.currency, "payment_method": order.payment_method,
        "created_at": order.created_at, "tickets": tickets, "refunds": refunds, "mails": mails,
    })))
}

fn closed_json(c: &TicketClosed, refund: Option<Value>) -> Value {
    json!({ "order_id": c.order_id, "seq": c.seq, "order_status": c.order_status, "refund_cents": c.refund_cents,
            "revocation_version": c.revocation_version, "refund": refund })
}

/// Refunds one ticket: revoked and its share recorded in one transaction, then the provider asked once
/// (the refund worker retries if that fails; `refund.status` says which).
async fn refund_ticket(
    who: Staff,
    State(state): State<AppState>,
    Path((id, seq)): Path<(String, i64)>,
) -> Result<axum::Json<Value>> {
    who.require(Permission::Orders)?;
    let closed = close_ticket(&state, &who, &id, seq, true).await?;
    let refund = match closed.refund_cents {
        Some(_) => crate::payments::refunds::attempt_for_ticket(&state, &id, &closed.ticket_id).await?,
        None => None,
    };
    let refund =
        refund.map(|r| json!({ "status": r.status, "amount_cents": r.amount_cents, "last_error": r.last_error }));
    Ok(axum::Json(closed_json(&closed, refund)))
}

async fn cancel_ticket(
    who: Staff,
    State(state): State<AppState>,
    Path((id, seq)): Path<(String, i64)>,
) -> Result<axum::Json<Value>> {
    who.require(Permission::Orders)?;
    let closed = close_ticket(&state, &who, &id, seq, false).await?;
    Ok(axum::Json(closed_json(&closed, None)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HolderEdit {
    holder_name: String,
}

/// Renames a ticket's holder. The manifest is sealed per ticket each time a scanner fetches it, so the next
/// fetch carries the new name; the QR code does not carry the name and stays valid.
async fn edit_holder(
    who: Staff,
    State(state): State<AppState>,
    Path((id, seq)): Path<(String, i64)>,
    Json(edit): Json<HolderEdit>,
) -> Result<axum::Json<Value>> {
    who.require(Permission::Orders)?;
    let name = crate::orders::model::clean_holder_name(&edit.holder_name)?;
    let mut tx = state.db.write.begin().await?;
    let row: Option<(String, crate::db::Flag)> =
        sqlx::query_as("SELECT holder_name, CAST(revoked AS INTEGER) FROM tickets WHERE order_id = $1 AND seq = $2")
            .bind(&id)
            .bind(seq)
            .fetch_optional(&mut *tx)
            .await?;
    let (before, revoked) = row.ok_or(Error::NotFound("ticket"))?;
    if revoked.0 {
        return Err(Error::Conflict("ticket is refunded or cancelled".into()));
    }
    sqlx::query("UPDATE tickets SET holder_name = $1 WHERE order_id = $2 AND seq = $3")
        .bind(&name)
        .bind(&id)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE orders SET updated_at = $1 WHERE id = $2").bind(now()).bind(&id).execute(&mut *tx).await?;
    crate::audit::record(
        &mut tx,
        &who,
        "ticket.holder_edit",
        &format!("order:{id}/ticket:{seq}"),
        Some(json!({ "holder_name": before })),
        Some(json!({ "holder_name": name })),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(json!({ "order_id": id, "seq": seq, "holder_name": name })))
}

/// Mails the order's tickets again through the outbox (the same durable, retried delivery as the first
/// mail). Refused with 429 after [`MAX_RESENDS_PER_HOUR`] resends of this order within the hour.
async fn resend(
    who: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<Value>)> {
    who.require(Permission::Orders)?;
    let mut tx = state.db.write.begin().await?;
    let row: Option<(OrderStatus,)> =
        sqlx::query_as("SELECT status FROM orders WHERE id = $1").bind(&id).fetch_optional(&mut *tx).await?;
    let (status,) = row.ok_or(Error::NotFound("order"))?;
    let (live,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tickets WHERE order_id = $1 AND revoked = FALSE")
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
    if status != OrderStatus::Confirmed || live == 0 {
        return Err(Error::Conflict(format!("order is {status} with {live} valid tickets: nothing to resend")));
    }
    let hour_ago = now_ms() - 3_600_000;
    // Resent mails: the SMS that goes with a resend is not a resend of its own.
    let (recent,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM email_jobs WHERE order_id = $1 AND kind = 'resend' AND channel = 'email' AND created_at > $2",
    )
    .bind(&id)
    .bind(hour_ago)
    .fetch_one(&mut *tx)
    .await?;
    if recent >= MAX_RESENDS_PER_HOUR {
        return Err(Error::RateLimited {
            message: format!("this order's tickets were resent {recent} times in the last hour; try again later"),
            retry_after_secs: 3600,
        });
    }
    crate::email::enqueue_resend(&mut tx, &state, &id).await?;
    crate::audit::record(
        &mut tx,
        &who,
        "order.resend",
        &format!("order:{id}"),
        None,
        Some(json!({ "resends_last_hour": recent + 1 })),
    )
    .await?;
    tx.commit().await?;
    state.mail_wakeup.notify_one();
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "order_id": id, "queued": true }))))
}
