//! Orders: reservation without oversell, unpaid holds, ticket issuance, the customer's order view, and
//! refund/cancel with revocation.
//!
//! Capacity is never oversold: within one transaction every line is reserved with a conditional
//! `UPDATE ... SET reserved = reserved + n WHERE id = ? AND reserved + n <= capacity`; if any line fails,
//! the whole transaction rolls back. The statement is atomic under SQLite's single writer and under
//! PostgreSQL's row locks alike. Unpaid orders keep their reservation until `hold_expires_at`; the sweeper
//! then releases it. Tickets and the confirmation email job are written in the same transaction that
//! confirms the order.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rand::RngCore;
use scanner_core::{EntryPolicy, RevocationHash, Ticket, TicketId};
use serde::{Deserialize, Serialize};
use sqlx::{Sqlite, Transaction};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::extract::{Json, Query};
use crate::payments::CheckoutRequest;
use crate::state::AppState;
use crate::util::{clean_email, clean_text, hash_secret, html_escape, now, now_ms, random_id};
use scanner_core::wire::constant_time_eq;

/// Most tickets one order may contain.
pub const MAX_TICKETS_PER_ORDER: i64 = 20;
/// Tickets admit until this long after the event's end.
const VALID_AFTER_END_SECS: i64 = 6 * 3600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/orders", post(create_order))
        .route("/v1/orders/{id}", get(order_json))
        .route("/orders/{id}", get(order_html))
        .route("/orders/{id}/tickets/{seq}/qr.png", get(ticket_png))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub event_id: i64,
    pub name: String,
    pub email: String,
    pub items: Vec<NewItem>,
    /// `free`, `at_door` or `stripe`; default: `free` for a zero total, else `stripe`.
    #[serde(default)]
    pub payment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// Index of the ticket type within the event.
    pub ticket_type: i64,
    pub quantity: i64,
    /// Indices of the add-ons each ticket of this line includes.
    #[serde(default)]
    pub addons: Vec<i64>,
}

#[derive(Debug, Serialize)]
pub struct OrderCreated {
    pub order_id: String,
    /// The access token: shown once, stored only as a hash.
    pub token: String,
    pub status: String,
    pub order_url: String,
    pub total_cents: i64,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkout_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_expires_at: Option<i64>,
}

pub(crate) struct Line {
    ticket_type_id: i64,
    /// The ticket type's index within the event (what the ticket carries).
    type_index: i64,
    reentry: bool,
    type_name: String,
    quantity: i64,
    unit_cents: i64,
    addon_mask: i64,
    addon_lines: Vec<(String, i64)>,
}

/// A validated, priced order ready to be written: what the group committer needs.
pub(crate) struct OrderRow {
    pub order_id: String,
    token_hash: String,
    name: String,
    email: String,
    event_id: i64,
    event_ends_at: i64,
    status: &'static str,
    method: &'static str,
    total: i64,
    currency: String,
    hold_expires_at: Option<i64>,
    created: i64,
    /// The order is confirmed at once (free / pay at door): its tickets and email job are written too.
    pub settles: bool,
    lines: Vec<Line>,
    /// The event's cap of tickets per email address, checked by the committer in the order's transaction.
    pub(crate) email_cap: Option<i64>,
}

impl OrderRow {
    /// Whether reserving this order takes more than one conditional `UPDATE` (several lines or add-ons),
    /// so that a sold-out later reservation must roll back earlier ones.
    pub(crate) fn reserves_several(&self) -> bool {
        self.lines.len() > 1 || self.lines.iter().any(|l| l.addon_mask != 0)
    }

    pub(crate) fn event_id(&self) -> i64 {
        self.event_id
    }

    pub(crate) fn email(&self) -> &str {
        &self.email
    }

    /// How many tickets the order contains.
    pub(crate) fn tickets(&self) -> i64 {
        self.lines.iter().map(|l| l.quantity).sum()
    }
}

/// Writes one order inside `tx`: reserves every line (`Ok(Some(reason))` if sold out: the caller rolls
/// back), inserts the order and its items, and for an order that settles at once its tickets and email job.
pub(crate) async fn write_order(
    tx: &mut Transaction<'_, Sqlite>,
    state: &AppState,
    row: &OrderRow,
) -> Result<Option<String>> {
    if let Some(sold_out) =
        reserve(tx, row.event_id, &row.lines.iter().map(Line::reservation).collect::<Vec<_>>()).await?
    {
        return Ok(Some(sold_out));
    }
    sqlx::query(
        "INSERT INTO orders (id, event_id, token_hash, customer_name, customer_email, status, payment_method, total_cents,
                             currency, hold_expires_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(&row.order_id)
    .bind(row.event_id)
    .bind(&row.token_hash)
    .bind(&row.name)
    .bind(&row.email)
    .bind(row.status)
    .bind(row.method)
    .bind(row.total)
    .bind(&row.currency)
    .bind(row.hold_expires_at)
    .bind(row.created)
    .execute(&mut **tx)
    .await?;
    for line in &row.lines {
        sqlx::query("INSERT INTO order_items (order_id, ticket_type_id, quantity, addon_mask) VALUES ($1, $2, $3, $4)")
            .bind(&row.order_id)
            .bind(line.ticket_type_id)
            .bind(line.quantity)
            .bind(line.addon_mask)
            .execute(&mut **tx)
            .await?;
    }
    if row.settles {
        // Everything the tickets need is in hand: no need to read back what was just written.
        let lines: Vec<TicketLine> = row
            .lines
            .iter()
            .map(|l| TicketLine {
                quantity: l.quantity,
                addon_mask: l.addon_mask,
                type_index: l.type_index,
                reentry: l.reentry,
                // Pay at the door: a ticket with a price is unpaid until the steward confirms payment.
                payment_due: row.method == "at_door"
                    && l.unit_cents + l.addon_lines.iter().map(|a| a.1).sum::<i64>() > 0,
            })
            .collect();
        sign_and_store(tx, state, &row.order_id, row.event_id, row.event_ends_at, &row.name, &lines).await?;
    }
    Ok(None)
}

/// Validates the request against the catalog and prices it.
async fn plan(state: &AppState, req: &NewOrder) -> Result<(Vec<Line>, i64, String, i64)> {
    if req.items.is_empty() || req.items.len() > 16 {
        return Err(Error::validation("items", "must contain between 1 and 16 lines"));
    }
    let event = crate::catalog::event_for_pricing(state, req.event_id).await?;
    let t = now();
    let mut total_qty = 0;
    let mut lines = Vec::new();
    let mut currency: Option<String> = None;
    let mut total = 0i64;
    for item in &req.items {
        if !(1..=MAX_TICKETS_PER_ORDER).contains(&item.quantity) {
            return Err(Error::validation("quantity", format!("must be between 1 and {MAX_TICKETS_PER_ORDER}")));
        }
        total_qty += item.quantity;
        let tt = event.ticket_types.iter().find(|t| t.index == item.ticket_type).ok_or_else(|| {
            Error::validation("ticket_type", format!("event has no ticket type {}", item.ticket_type))
        })?;
        if !tt.on_sale_at(t) {
            return Err(Error::validation("ticket_type", format!("{} is not on sale now", tt.name)));
        }
        if currency.get_or_insert_with(|| tt.currency.clone()) != &tt.currency {
            return Err(Error::validation("items", "all tickets of one order must be in the same currency"));
        }
        let mut mask = 0i64;
        let mut addon_lines = Vec::new();
        let mut unit = tt.price_cents;
        for &a in &item.addons {
            let addon = event
                .addons
                .iter()
                .find(|x| x.index == a)
                .ok_or_else(|| Error::validation("addons", format!("event has no add-on {a}")))?;
            if mask & (1 << addon.index) != 0 {
                return Err(Error::validation("addons", "an add-on is listed twice"));
            }
            mask |= 1 << addon.index;
            unit += addon.price_cents;
            addon_lines.push((addon.name.clone(), addon.price_cents));
        }
        total += unit * item.quantity;
        lines.push(Line {
            ticket_type_id: tt.id,
            type_index: tt.index,
            reentry: tt.reentry,
            type_name: tt.name.clone(),
            quantity: item.quantity,
            unit_cents: tt.price_cents,
            addon_mask: mask,
            addon_lines,
        });
    }
    if total_qty > MAX_TICKETS_PER_ORDER {
        return Err(Error::validation(
            "items",
            format!("an order may contain at most {MAX_TICKETS_PER_ORDER} tickets"),
        ));
    }
    Ok((lines, total, currency.unwrap_or_else(|| "EUR".into()), event.ends_at))
}

/// Reserves every line; `Ok(false)` if any is sold out (the caller rolls back).
/// What reserving one line takes: the order's lines, or an order's stored items when an expired hold is
/// paid after all.
struct Reservation<'a> {
    ticket_type_id: i64,
    quantity: i64,
    addon_mask: i64,
    /// For the sold-out message.
    type_name: &'a str,
}

impl Line {
    fn reservation(&self) -> Reservation<'_> {
        Reservation {
            ticket_type_id: self.ticket_type_id,
            quantity: self.quantity,
            addon_mask: self.addon_mask,
            type_name: &self.type_name,
        }
    }
}

async fn reserve(tx: &mut Transaction<'_, Sqlite>, event_id: i64, lines: &[Reservation<'_>]) -> Result<Option<String>> {
    for line in lines {
        let r =
            sqlx::query("UPDATE ticket_types SET reserved = reserved + $1 WHERE id = $2 AND reserved + $1 <= capacity")
                .bind(line.quantity)
                .bind(line.ticket_type_id)
                .execute(&mut **tx)
                .await?;
        if r.rows_affected() != 1 {
            return Ok(Some(format!("sold out: not enough {} tickets left", line.type_name)));
        }
        for bit in 0..16 {
            if line.addon_mask & (1 << bit) != 0 {
                let r = sqlx::query(
                    "UPDATE addons SET reserved = reserved + $1 WHERE event_id = $2 AND idx = $3 AND reserved + $1 <= capacity",
                )
                .bind(line.quantity)
                .bind(event_id)
                .bind(bit)
                .execute(&mut **tx)
                .await?;
                if r.rows_affected() != 1 {
                    return Ok(Some("sold out: not enough of an add-on left".to_owned()));
                }
            }
        }
    }
    Ok(None)
}

/// An order's items as (ticket type id, quantity, add-on mask, event id).
async fn order_items(tx: &mut Transaction<'_, Sqlite>, order_id: &str) -> Result<Vec<(i64, i64, i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT i.ticket_type_id, i.quantity, i.addon_mask, o.event_id FROM order_items i JOIN orders o ON o.id = i.order_id
         WHERE i.order_id = $1",
    )
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?)
}

/// Gives back the capacity an order reserved.
pub async fn release(tx: &mut Transaction<'_, Sqlite>, order_id: &str) -> Result<()> {
    let items = order_items(tx, order_id).await?;
    for (tt, qty, mask, event_id) in items {
        sqlx::query("UPDATE ticket_types SET reserved = reserved - $1 WHERE id = $2")
            .bind(qty)
            .bind(tt)
            .execute(&mut **tx)
            .await?;
        for bit in 0..16 {
            if mask & (1 << bit) != 0 {
                sqlx::query("UPDATE addons SET reserved = reserved - $1 WHERE event_id = $2 AND idx = $3")
                    .bind(qty)
                    .bind(event_id)
                    .bind(bit)
                    .execute(&mut **tx)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Re-reserves the capacity of an order whose hold expired before its payment arrived. `false` if sold out.
async fn re_reserve(tx: &mut Transaction<'_, Sqlite>, order_id: &str) -> Result<bool> {
    let items = order_items(tx, order_id).await?;
    let event_id = items.first().map(|i| i.3).unwrap_or_default();
    let lines: Vec<Reservation> = items
        .iter()
        .map(|&(ticket_type_id, quantity, addon_mask, _)| Reservation {
            ticket_type_id,
            quantity,
            addon_mask,
            type_name: "",
        })
        .collect();
    Ok(reserve(tx, event_id, &lines).await?.is_none())
}

/// What one line of tickets is signed with.
pub(crate) struct TicketLine {
    quantity: i64,
    addon_mask: i64,
    /// The ticket type's index within the event.
    type_index: i64,
    reentry: bool,
    /// Each ticket's price (type and add-ons) is due at the door: signed into the ticket (flag bit 3).
    payment_due: bool,
}

/// Signs and stores the tickets of an order and enqueues its confirmation email, inside `tx`.
pub async fn issue_tickets(tx: &mut Transaction<'_, Sqlite>, state: &AppState, order_id: &str) -> Result<usize> {
    let rows: Vec<(i64, i64, i64, bool, i64, String, i64)> = sqlx::query_as(
        "SELECT i.quantity, i.addon_mask, t.idx, t.reentry, e.ends_at, o.customer_name, o.event_id
         FROM order_items i JOIN ticket_types t ON t.id = i.ticket_type_id JOIN orders o ON o.id = i.order_id
         JOIN events e ON e.id = o.event_id WHERE i.order_id = $1 ORDER BY i.id",
    )
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?;
    let Some((_, _, _, _, ends_at, holder, event_id)) = rows.first().cloned() else {
        return Err(Error::internal(format!("order {order_id} has no items")));
    };
    let lines: Vec<TicketLine> = rows
        .into_iter()
        // Orders issued here were paid online (or are free): nothing is due at the door.
        .map(|(quantity, addon_mask, type_index, reentry, ..)| TicketLine {
            quantity,
            addon_mask,
            type_index,
            reentry,
            payment_due: false,
        })
        .collect();
    sign_and_store(tx, state, order_id, event_id, ends_at, &holder, &lines).await
}

/// Signs each ticket of `lines`, stores it, and enqueues the order's confirmation email, inside `tx`.
async fn sign_and_store(
    tx: &mut Transaction<'_, Sqlite>,
    state: &AppState,
    order_id: &str,
    event_id: i64,
    event_ends_at: i64,
    holder: &str,
    lines: &[TicketLine],
) -> Result<usize> {
    let key = &state.signer.key;
    let created = now();
    let mut seq = 0i64;
    for line in lines {
        for _ in 0..line.quantity {
            let ticket = Ticket {
                key_id: key.key_id(),
                event_id: u32::try_from(event_id).map_err(Error::internal)?,
                ticket_id: TicketId::random(),
                ticket_type: u8::try_from(line.type_index).map_err(Error::internal)?,
                addons: u16::try_from(line.addon_mask).map_err(Error::internal)?,
                policy: if line.reentry { EntryPolicy::ReEntry } else { EntryPolicy::SingleEntry },
                payment_due: line.payment_due,
                valid_from: None,
                valid_until: u32::try_from(event_ends_at + VALID_AFTER_END_SECS).ok(),
            };
            let signed = key.sign_ticket(&ticket).map_err(Error::internal)?;
            sqlx::query(
                "INSERT INTO tickets (ticket_id, order_id, seq, event_id, ticket_type, addon_mask, holder_name, key_id, qr_text, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(ticket.ticket_id.to_hex())
            .bind(order_id)
            .bind(seq)
            .bind(event_id)
            .bind(line.type_index)
            .bind(line.addon_mask)
            .bind(holder)
            .bind(i64::from(key.key_id().0))
            .bind(signed.to_qr_text())
            .bind(created)
            .execute(&mut **tx)
            .await?;
            seq += 1;
        }
    }
    crate::email::enqueue(tx, state, order_id).await?;
    Ok(seq as usize)
}

async fn create_order(
    State(state): State<AppState>,
    Json(req): Json<NewOrder>,
) -> Result<(StatusCode, axum::Json<OrderCreated>)> {
    let created = place_order(&state, req).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Validates, prices and places an order: the seats are reserved and the order (with its tickets and
/// email job when it settles at once) committed in one transaction. Shared by the JSON API and the
/// order page's form post.
pub async fn place_order(state: &AppState, req: NewOrder) -> Result<OrderCreated> {
    let name = clean_text("name", &req.name, 100)?;
    let email = clean_email(&req.email)?;
    let (lines, total, currency, event_ends_at) = plan(state, &req).await?;
    // From the cache `plan` just filled: the organizer's at-door choices and the event's email cap.
    let event = crate::catalog::event_for_pricing(state, req.event_id).await?;
    if req.payment.as_deref() == Some("at_door") && total > 0 {
        // At the door confirms the order before anyone paid: only where the organizer allows it.
        crate::catalog::check_at_door(&event, &req.items)?;
    }
    let provider = state.payments.select(req.payment.as_deref(), total)?;
    let order_id = random_id("ord");
    let token = order_token(state, &order_id);
    let created = now();
    let settles = provider.settles_at_order();
    let hold_expires_at = (!settles).then(|| created + state.config.hold_seconds as i64);
    let status = if settles { "confirmed" } else { "pending" };

    let row = OrderRow {
        order_id: order_id.clone(),
        token_hash: hash_secret(&token),
        name,
        email: email.clone(),
        event_id: req.event_id,
        event_ends_at,
        status,
        method: provider.method(),
        total,
        currency: currency.clone(),
        hold_expires_at,
        created,
        settles,
        lines,
        email_cap: event.max_tickets_per_email,
    };
    // The group committer writes it together with other orders arriving at the same moment: one fsync
    // for the batch instead of one per order (see order_queue).
    let row = state.order_queue.place(row).await?;
    let lines = row.lines;
    if settles {
        state.mail_wakeup.notify_one();
    }
    let order_url = order_link(state, &order_id);
    let mut created_resp = OrderCreated {
        order_id: order_id.clone(),
        token,
        status: status.to_owned(),
        order_url,
        total_cents: total,
        currency: currency.clone(),
        checkout_url: None,
        hold_expires_at,
    };
    tracing::info!(order = %order_id, method = provider.method(), total, "order created");
    if !settles {
        let mut checkout_lines = Vec::new();
        for l in &lines {
            checkout_lines.push((l.type_name.clone(), l.unit_cents, l.quantity));
            for (n, p) in &l.addon_lines {
                checkout_lines.push((n.clone(), *p, l.quantity));
            }
        }
        let request = CheckoutRequest {
            order_id: order_id.clone(),
            currency,
            total_cents: total,
            customer_email: email,
            lines: checkout_lines,
            success_url: format!("{}&paid=1", created_resp.order_url),
            cancel_url: format!("{}&cancelled=1", created_resp.order_url),
            hold_expires_at: hold_expires_at.unwrap_or(created),
        };
        match provider.checkout(&request).await {
            Ok(checkout) => {
                sqlx::query("UPDATE orders SET payment_ref = $1, updated_at = $2 WHERE id = $3")
                    .bind(&checkout.session_id)
                    .bind(now())
                    .bind(&order_id)
                    .execute(&state.db.write)
                    .await?;
                created_resp.checkout_url = Some(checkout.url);
            }
            Err(e) => {
                // Nothing was paid: give the seats back at once.
                let _ = close_unpaid(state, &order_id, "cancelled").await;
                return Err(e);
            }
        }
    }
    Ok(created_resp)
}

/// Moves a pending order to `status` (expired / cancelled) and releases its seats. `true` if it was pending.
pub async fn close_unpaid(state: &AppState, order_id: &str, status: &str) -> Result<bool> {
    let mut tx = state.db.write.begin().await?;
    let r = sqlx::query("UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = 'pending'")
        .bind(status)
        .bind(now())
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
    if r.rows_affected() == 1 {
        release(&mut tx, order_id).await?;
    }
    tx.commit().await?;
    Ok(r.rows_affected() == 1)
}

/// Releases every expired hold. Returns how many orders expired.
pub async fn expire_holds(state: &AppState) -> Result<usize> {
    let due: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT id, payment_ref, payment_method FROM orders WHERE status = 'pending' AND hold_expires_at <= $1 LIMIT 200",
    )
    .bind(now())
    .fetch_all(&state.db.write)
    .await?;
    let mut n = 0;
    for (id, payment_ref, method) in due {
        if close_unpaid(state, &id, "expired").await? {
            n += 1;
            tracing::info!(order = %id, "hold expired; seats released");
            if let (Some(session), Ok(provider)) = (payment_ref, state.payments.by_method(&method)) {
                let state = state.clone();
                tokio::spawn(async move {
                    if let Err(e) = provider_expire(&state, &method, &session).await {
                        tracing::warn!(error = %e, "could not expire the payment session");
                    }
                    let _ = provider;
                });
            }
        }
    }
    Ok(n)
}

async fn provider_expire(state: &AppState, method: &str, session: &str) -> Result<()> {
    state.payments.by_method(method)?.expire(session).await
}

/// Releases expired holds periodically until shutdown.
pub async fn run_hold_sweeper(state: AppState, mut shutdown: watch::Receiver<bool>, every: Duration) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if let Err(e) = expire_holds(&state).await {
            tracing::warn!(error = %e, "hold sweep failed");
        }
    }
}

/// Marks a paid order confirmed and issues its tickets, once. Used by payment webhooks.
/// Returns the new status, or `None` if the order was already settled (idempotent repeat).
pub async fn confirm_paid(
    state: &AppState,
    order_id: &str,
    payment_intent: Option<&str>,
) -> Result<Option<&'static str>> {
    let mut tx = state.db.write.begin().await?;
    let row: Option<(String, String, Option<String>)> =
        sqlx::query_as("SELECT status, payment_method, payment_intent FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?;
    let (status, method, paid_intent) = row.ok_or(Error::NotFound("order"))?;
    let new_status = match status.as_str() {
        "pending" => "confirmed",
        // Cancelled by the organizer before it was paid: the payment that still arrived goes back (a
        // refund recorded as pending, see payments::refunds); the order is never re-confirmed.
        "cancelled" => {
            let (None, Some(intent)) = (paid_intent, payment_intent) else { return Ok(None) };
            sqlx::query("UPDATE orders SET payment_intent = $1, updated_at = $2 WHERE id = $3")
                .bind(intent)
                .bind(now())
                .bind(order_id)
                .execute(&mut *tx)
                .await?;
            crate::payments::refunds::record(&mut tx, order_id, &method, intent, "late_payment").await?;
            tx.commit().await?;
            tracing::warn!(order = %order_id, "payment arrived for a cancelled order: refund recorded");
            return Ok(Some("refund_pending"));
        }
        "expired" => {
            if re_reserve(&mut tx, order_id).await? {
                "confirmed"
            } else {
                drop(tx);
                let mut tx = state.db.write.begin().await?;
                sqlx::query(
                    "UPDATE orders SET status = 'payment_conflict', payment_intent = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(payment_intent)
                .bind(now())
                .bind(order_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                tracing::warn!(order = %order_id, "paid after its hold expired and the seats are gone: refund needed");
                return Ok(Some("payment_conflict"));
            }
        }
        _ => return Ok(None),
    };
    sqlx::query(
        "UPDATE orders SET status = $1, payment_intent = $2, hold_expires_at = NULL, updated_at = $3 WHERE id = $4",
    )
    .bind(new_status)
    .bind(payment_intent)
    .bind(now())
    .bind(order_id)
    .execute(&mut *tx)
    .await?;
    issue_tickets(&mut tx, state, order_id).await?;
    tx.commit().await?;
    state.mail_wakeup.notify_one();
    tracing::info!(order = %order_id, "payment confirmed; tickets issued");
    Ok(Some(new_status))
}

/// Refunds or cancels an order (admin). Confirmed orders' tickets go on the revocation list, which gets a
/// new version in the same transaction. Returns (new status, revocation version).
pub async fn refund_or_cancel(state: &AppState, order_id: &str, new_status: &'static str) -> Result<(String, u64)> {
    close_order(state, order_id, new_status, new_status == "refunded").await
}

/// Closes a paid (or free) order as `new_status` and revokes its tickets, as [`refund_or_cancel`]. With
/// `pay_back`, a refund of the online payment is recorded as pending in the same transaction (the caller
/// or the refund worker then asks the provider, see `payments::refunds`); without it the money already
/// went back, or is disputed, at the provider.
pub async fn close_order(
    state: &AppState,
    order_id: &str,
    new_status: &'static str,
    pay_back: bool,
) -> Result<(String, u64)> {
    let row: Option<(String, String, Option<String>)> =
        sqlx::query_as("SELECT status, payment_method, payment_intent FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_optional(&state.db.write)
            .await?;
    let (status, method, intent) = row.ok_or(Error::NotFound("order"))?;
    match status.as_str() {
        "pending" => {
            close_unpaid(state, order_id, "cancelled").await?;
            let v = state.revocations.lock().await.version();
            return Ok(("cancelled".into(), v));
        }
        "confirmed" | "payment_conflict" => {}
        other => return Err(Error::Conflict(format!("order is already {other}"))),
    }
    let mut list = state.revocations.lock().await;
    let mut tx = state.db.write.begin().await?;
    let r = sqlx::query("UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4")
        .bind(new_status)
        .bind(now())
        .bind(order_id)
        .bind(&status)
        .execute(&mut *tx)
        .await?;
    if r.rows_affected() != 1 {
        return Err(Error::Conflict("order changed concurrently; try again".into()));
    }
    if let (true, Some(intent)) = (pay_back, intent.as_deref()) {
        crate::payments::refunds::record(&mut tx, order_id, &method, intent, "admin_refund").await?;
    }
    let ids: Vec<(String,)> = sqlx::query_as("SELECT ticket_id FROM tickets WHERE order_id = $1 AND revoked = FALSE")
        .bind(order_id)
        .fetch_all(&mut *tx)
        .await?;
    sqlx::query("UPDATE tickets SET revoked = TRUE WHERE order_id = $1").bind(order_id).execute(&mut *tx).await?;
    if status == "confirmed" {
        release(&mut tx, order_id).await?;
    }
    let hashes: Vec<RevocationHash> =
        ids.iter().filter_map(|(h,)| TicketId::from_hex(h)).map(|id| RevocationHash::of(&id)).collect();
    let mut next = list.clone();
    let version = if hashes.is_empty() {
        next.version()
    } else {
        let v = next.publish(&state.signer.key, hashes);
        sqlx::query(
            "INSERT INTO revocation_state (id, version, list_json) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, list_json = excluded.list_json",
        )
        .bind(v as i64)
        .bind(next.to_json())
        .execute(&mut *tx)
        .await?;
        v
    };
    tx.commit().await?;
    *list = next;
    tracing::info!(order = %order_id, status = new_status, revocation_version = version, tickets = ids.len(), "order closed");
    Ok((new_status.to_owned(), version))
}

// ---------------------------------------------------------------------------------------------------------
// The customer's view of an order.

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    pub token: String,
}

#[derive(Debug, Serialize)]
pub struct TicketView {
    pub seq: i64,
    pub ticket_type: i64,
    pub ticket_type_name: String,
    pub addons: Vec<String>,
    pub holder_name: String,
    pub revoked: bool,
    pub qr_text: String,
}

#[derive(Debug, Serialize)]
pub struct OrderView {
    pub id: String,
    pub status: String,
    pub event: crate::catalog::EventView,
    pub customer_name: String,
    pub customer_email: String,
    pub total_cents: i64,
    pub currency: String,
    pub payment_method: String,
    pub hold_expires_at: Option<i64>,
    pub created_at: i64,
    pub tickets: Vec<TicketView>,
}

/// Loads an order for display. With `token`, the token must match (else: not found, revealing nothing).
pub async fn load_order(state: &AppState, id: &str, token: Option<&str>) -> Result<OrderView> {
    type Row = (String, i64, String, String, String, String, i64, String, Option<i64>, i64, String);
    let row: Option<Row> = sqlx::query_as(
        "SELECT status, event_id, customer_name, customer_email, payment_method, token_hash, total_cents, currency,
                hold_expires_at, created_at, id FROM orders WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&state.db.read)
    .await?;
    let (
        status,
        event_id,
        customer_name,
        customer_email,
        payment_method,
        token_hash,
        total_cents,
        currency,
        hold,
        created_at,
        id,
    ) = row.ok_or(Error::NotFound("order"))?;
    if let Some(token) = token {
        if !constant_time_eq(hash_secret(token).as_bytes(), token_hash.as_bytes()) {
            return Err(Error::NotFound("order"));
        }
    }
    let event = crate::catalog::load_event(state, event_id).await?;
    let rows: Vec<(i64, i64, i64, String, bool, String)> = sqlx::query_as(
        "SELECT seq, ticket_type, addon_mask, holder_name, revoked, qr_text FROM tickets WHERE order_id = $1 ORDER BY seq",
    )
    .bind(&id)
    .fetch_all(&state.db.read)
    .await?;
    let tickets = rows
        .into_iter()
        .map(|(seq, tt, mask, holder_name, revoked, qr_text)| TicketView {
            seq,
            ticket_type: tt,
            ticket_type_name: event
                .ticket_types
                .iter()
                .find(|t| t.index == tt)
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            addons: event.addons.iter().filter(|a| mask & (1 << a.index) != 0).map(|a| a.name.clone()).collect(),
            holder_name,
            revoked,
            qr_text,
        })
        .collect();
    Ok(OrderView {
        id,
        status,
        event,
        customer_name,
        customer_email,
        total_cents,
        currency,
        payment_method,
        hold_expires_at: hold,
        created_at,
        tickets,
    })
}

async fn order_json(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<axum::Json<OrderView>> {
    Ok(axum::Json(load_order(&state, &id, Some(&q.token)).await?))
}

/// Formats minor units as `12.34 EUR`.
pub fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02} {}", cents / 100, cents % 100, currency)
}

fn inline_svg(text: &str) -> String {
    match scanner_core::qr::render::svg(text) {
        Ok(svg) => match svg.find("<svg") {
            Some(i) => svg[i..].to_owned(),
            None => String::new(),
        },
        Err(_) => String::new(),
    }
}

/// The query of the customer's order page: the access token, and the flag the payment provider's return
/// links add.
#[derive(Debug, Deserialize)]
pub struct OrderPageQuery {
    #[serde(default)]
    pub token: String,
    /// Back from a completed checkout (the webhook may not have arrived yet).
    #[serde(default)]
    pub paid: Option<String>,
    /// Back from a checkout the customer left.
    #[serde(default)]
    pub cancelled: Option<String>,
}

/// The customer's order page: status, and each ticket's QR large enough to scan from a phone screen. Every
/// customer-supplied string is escaped. `token` is the order's access token (for the PNG download links).
pub fn render_order_html(o: &OrderView, token: &str, query: &OrderPageQuery) -> String {
    let id = html_escape(&o.id);
    let token_q = html_escape(&urlencode_token(token));
    let mut main = format!(
        "<h1>{event}</h1><p class=\"meta\">{venue}</p>",
        event = html_escape(&o.event.name),
        venue = html_escape(&o.event.venue)
    );
    let status_line = match o.status.as_str() {
        "confirmed" => format!(
            "<div class=\"notice\" role=\"status\"><p><strong>Your order is confirmed.</strong> Your tickets are on \
their way to <strong>{}</strong>. You can also show them from this page at the door.</p></div>",
            html_escape(&o.customer_email)
        ),
        "pending" if query.paid.is_some() => {
            "<div class=\"notice\" role=\"status\"><p><strong>Thank you!</strong> We are confirming your payment; \
this page refreshes by itself in a few seconds.</p></div>"
                .to_owned()
        }
        "pending" if query.cancelled.is_some() => format!(
            "<div class=\"error-summary\" role=\"alert\"><p>You left the payment page, so nothing was charged. Your \
tickets stay reserved for a short while: <a href=\"/events/{}\">order again</a>.</p></div>",
            o.event.id
        ),
        "pending" => "<div class=\"notice\" role=\"status\"><p>This order is waiting for payment.</p></div>".to_owned(),
        "expired" | "cancelled" => format!(
            "<div class=\"error-summary\" role=\"alert\"><p>This order is <strong>{}</strong>: the reservation ran \
out before a payment arrived, and nothing was charged. <a href=\"/events/{}\">Order again</a>.</p></div>",
            html_escape(&o.status),
            o.event.id
        ),
        "refunded" => "<div class=\"error-summary\" role=\"alert\"><p>This order was refunded; its tickets are no \
longer valid.</p></div>"
            .to_owned(),
        other => format!("<p>Status: <strong>{}</strong></p>", html_escape(other)),
    };
    main.push_str(&status_line);
    if o.payment_method == "at_door" && o.status == "confirmed" && o.total_cents > 0 {
        main.push_str(&format!(
            "<p><strong>Please pay {} at the door.</strong></p>",
            html_escape(&money(o.total_cents, &o.currency))
        ));
    }
    main.push_str(&format!(
        "<p>Order <code>{id}</code> for {name} · total {total}</p>",
        name = html_escape(&o.customer_name),
        total = html_escape(&money(o.total_cents, &o.currency))
    ));
    for t in &o.tickets {
        let addons =
            if t.addons.is_empty() { String::new() } else { format!(" + {}", html_escape(&t.addons.join(", "))) };
        let body = if t.revoked {
            "<p class=\"revoked\">This ticket was revoked (refunded or cancelled).</p>".to_owned()
        } else {
            format!(
                "<div class=\"qr\" role=\"img\" aria-label=\"QR code of ticket {n}\">{svg}</div>\
<p><a href=\"/orders/{id}/tickets/{seq}/qr.png?token={token_q}\" download=\"ticket-{n}.png\">Download ticket {n} as \
an image</a></p>",
                n = t.seq + 1,
                seq = t.seq,
                svg = inline_svg(&t.qr_text)
            )
        };
        main.push_str(&format!(
            "<section class=\"ticket\" data-seq=\"{seq}\"><h2>Ticket {n} — {ty}{addons}</h2><p>Holder: {holder}</p>{body}\
</section>\n",
            seq = t.seq,
            n = t.seq + 1,
            ty = html_escape(&t.ticket_type_name),
            holder = html_escape(&t.holder_name),
        ));
    }
    let mut html = crate::pages::layout(&format!("Order {id}"), &main, None);
    if o.status == "pending" && query.paid.is_some() {
        // Works without JavaScript: the browser reloads until the webhook has confirmed the order.
        html = html.replacen("<head>", "<head><meta http-equiv=\"refresh\" content=\"3\">", 1);
    }
    html
}

/// Order tokens are base64url already; anything else is percent-encoded so it stays one query value.
fn urlencode_token(token: &str) -> String {
    token
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn order_html(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<OrderPageQuery>,
) -> Result<Response> {
    let order = load_order(&state, &id, Some(&q.token)).await?;
    let html = render_order_html(&order, &q.token, &q);
    let mut resp = crate::pages::html_response(StatusCode::OK, html);
    // The URL holds the order's access token: never send it to another site.
    resp.headers_mut().insert("referrer-policy", header::HeaderValue::from_static("no-referrer"));
    Ok(resp)
}

async fn ticket_png(
    State(state): State<AppState>,
    Path((id, seq)): Path<(String, i64)>,
    Query(q): Query<TokenQuery>,
) -> Result<Response> {
    let order = load_order(&state, &id, Some(&q.token)).await?;
    let t = order.tickets.iter().find(|t| t.seq == seq && !t.revoked).ok_or(Error::NotFound("ticket"))?;
    let png = scanner_core::qr::render::png(&t.qr_text, 8).map_err(Error::internal)?;
    Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "no-store")], png).into_response())
}

/// The access token of an order: HMAC-SHA256(link secret, order id), so the server can put the order link
/// in the email without storing the token (the database keeps only its hash).
pub fn order_token(state: &AppState, order_id: &str) -> String {
    use base64::Engine as _;
    use hmac::Mac;
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&state.link_secret).unwrap_or_else(|_| unreachable!());
    mac.update(b"order-token\0");
    mac.update(order_id.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..24])
}

/// The customer's order page URL, with its access token.
pub fn order_link(state: &AppState, order_id: &str) -> String {
    format!("{}/orders/{}?token={}", state.public_url, order_id, order_token(state, order_id))
}

/// Fresh random nonce for manifest sealing.
pub fn random_nonce() -> [u8; 12] {
    let mut n = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

/// Current Unix milliseconds (re-exported for the email module's scheduling).
pub fn now_millis() -> i64 {
    now_ms()
}
