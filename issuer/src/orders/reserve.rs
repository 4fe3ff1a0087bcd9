//! Placing an order: the request is validated and priced against the catalog ([`plan`]), handed to the
//! group committer ([`super::commit`]) that reserves its seats and writes it, and then, for an online
//! payment, sent to the provider's checkout. Unpaid orders hold their seats until `hold_expires_at`; the
//! sweeper ([`run_hold_sweeper`]) then releases them.
//!
//! Capacity is never oversold: within one transaction every line is reserved with a conditional
//! `UPDATE ... SET reserved = reserved + n WHERE id = ? AND reserved + n <= capacity` ([`reserve`]); if any
//! line fails, the order's reservations roll back. A ticket type in a shared quota is reserved only while
//! the quota has room as well, in the same statement (see [`reserve`]). The statement is atomic under
//! SQLite's single writer and under PostgreSQL's row locks alike.

use std::time::Duration;

use tokio::sync::watch;

use super::model::{order_link, order_token, NewItem, NewOrder, OrderCreated, OrderStatus, MAX_TICKETS_PER_ORDER};
use super::queue::{Line, OrderRow};
use crate::catalog::EventView;
use crate::db::Tx;
use crate::error::{Error, Result};
use crate::payments::provider::CheckoutRequest;
use crate::state::AppState;
use crate::util::{clean_email, clean_text, hash_secret, now, random_id};

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
            if !addon.on_sale() {
                return Err(Error::validation("addons", format!("{} is not on sale now", addon.name)));
            }
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
            holders: super::model::clean_holder_names(&item.holders, item.quantity)?,
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

/// Refuses pay-at-the-door for an order (`items` already validated and priced against `event`) unless
/// every line that costs money is of a ticket type whose organizer allows it.
fn check_at_door(event: &EventView, items: &[NewItem]) -> Result<()> {
    for item in items {
        if !event.ticket_types.iter().any(|t| t.index == item.ticket_type) {
            return Err(Error::validation("ticket_type", format!("event has no ticket type {}", item.ticket_type)));
        }
    }
    match at_door_refused_for(event, items).first() {
        Some(name) => Err(Error::validation("payment", format!("at the door is not offered for {name} tickets"))),
        None => Ok(()),
    }
}

/// The names of the ticket types in `items` that cost money and whose organizer does not take payment at
/// the door: what stops an at-door order. One rule for the API's refusal and the order form's message.
pub fn at_door_refused_for<'a>(event: &'a EventView, items: &[NewItem]) -> Vec<&'a str> {
    let mut names: Vec<&str> = Vec::new();
    for item in items {
        let Some(tt) = event.ticket_types.iter().find(|t| t.index == item.ticket_type) else { continue };
        let addons: i64 = event.addons.iter().filter(|a| item.addons.contains(&a.index)).map(|a| a.price_cents).sum();
        let paid = (tt.price_cents + addons).saturating_mul(item.quantity) > 0;
        if paid && !tt.at_door_allowed && !names.contains(&tt.name.as_str()) {
            names.push(&tt.name);
        }
    }
    names
}

/// What reserving one line takes: the order's lines, or an order's stored items when an expired hold is
/// paid after all.
pub(super) struct Reservation<'a> {
    ticket_type_id: i64,
    quantity: i64,
    addon_mask: i64,
    /// For the sold-out message.
    type_name: &'a str,
}

impl<'a> Reservation<'a> {
    pub(super) fn of_line(line: &'a Line) -> Self {
        Reservation {
            ticket_type_id: line.ticket_type_id,
            quantity: line.quantity,
            addon_mask: line.addon_mask,
            type_name: &line.type_name,
        }
    }
}

/// Reserves every line; `Ok(Some(reason))` if any is sold out (the caller rolls back).
///
/// A ticket type in a shared quota is reserved only while the quota has room too, in the same conditional
/// `UPDATE`; the store's trigger `ticket_types_quota_reserved` (migration 0140) then moves the quota's
/// count with the type's, here and on every release. So a refused line still changes nothing, and the
/// group committer may run single-line orders without a savepoint (see `write_batch`).
pub(super) async fn reserve(tx: &mut Tx<'_>, event_id: i64, lines: &[Reservation<'_>]) -> Result<Option<String>> {
    for line in lines {
        let r = sqlx::query(
            "UPDATE ticket_types SET reserved = reserved + $1
             WHERE id = $2 AND reserved + $1 <= capacity
               AND (quota_id IS NULL
                    OR EXISTS (SELECT 1 FROM quotas q WHERE q.id = ticket_types.quota_id AND q.reserved + $1 <= q.capacity))",
        )
        .bind(line.quantity)
        .bind(line.ticket_type_id)
        .execute(&mut **tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(Some(sold_out(line.type_name)));
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

/// Why an order is refused when its ticket type (or the type's quota) has too little room left.
pub(super) fn sold_out(type_name: &str) -> String {
    format!("sold out: not enough {type_name} tickets left")
}

/// An order's items as (ticket type id, quantity, add-on mask, event id).
async fn order_items(tx: &mut Tx<'_>, order_id: &str) -> Result<Vec<(i64, i64, i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT i.ticket_type_id, i.quantity, i.addon_mask, o.event_id FROM order_items i JOIN orders o ON o.id = i.order_id
         WHERE i.order_id = $1",
    )
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?)
}

/// Gives back the capacity an order reserved.
pub async fn release(tx: &mut Tx<'_>, order_id: &str) -> Result<()> {
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
pub(super) async fn re_reserve(tx: &mut Tx<'_>, order_id: &str) -> Result<bool> {
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

/// Orders with one phone number in the last hour after which that number gets no more: the cap that
/// keeps anyone able to order free tickets from making the organizer's SMS account text a number again
/// and again (SMS pumping costs the organizer money per message). Checked before the order is queued,
/// so concurrent orders for one number can pass it by the few in flight at once.
pub const MAX_SMS_ORDERS_PER_PHONE_PER_HOUR: i64 = 5;

async fn check_sms_budget(state: &AppState, phone: &str) -> Result<()> {
    let since = now() - 3600;
    let (recent,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders WHERE phone = $1 AND created_at > $2")
        .bind(phone)
        .bind(since)
        .fetch_one(&state.db.read)
        .await?;
    if recent >= MAX_SMS_ORDERS_PER_PHONE_PER_HOUR {
        return Err(Error::RateLimited {
            message: format!(
                "phone: {MAX_SMS_ORDERS_PER_PHONE_PER_HOUR} orders in the last hour already send their tickets to \
                 this number; leave the phone number out (the tickets still come by email) or try again later"
            ),
            retry_after_secs: 3600,
        });
    }
    Ok(())
}

/// Validates, prices and places an order: the seats are reserved and the order (with its tickets and
/// email job when it settles at once) committed in one transaction. Shared by the JSON API and the
/// order page's form post.
pub async fn place_order(state: &AppState, req: NewOrder) -> Result<OrderCreated> {
    let name = clean_text("name", &req.name, 100)?;
    let email = clean_email(&req.email)?;
    let phone = match req.phone.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(_) if !crate::sms::offered(&state.config) => {
            return Err(Error::validation("phone", "cannot be used: tickets are not sent by SMS here"))
        }
        Some(number) => Some(crate::sms::normalize_phone(number)?),
    };
    if let Some(number) = &phone {
        check_sms_budget(state, number).await?;
    }
    let (lines, total, currency, event_ends_at) = plan(state, &req).await?;
    // From the cache `plan` just filled: the organizer's at-door choices and the event's email cap.
    let event = crate::catalog::event_for_pricing(state, req.event_id).await?;
    if req.payment.as_deref() == Some("at_door") && total > 0 {
        // At the door confirms the order before anyone paid: only where the organizer allows it.
        check_at_door(&event, &req.items)?;
    }
    let provider = state.payments.select(req.payment.as_deref(), total)?;
    let order_id = random_id("ord");
    let token = order_token(state, &order_id);
    let created = now();
    let settles = provider.settles_at_order();
    let hold_expires_at = (!settles).then(|| created + state.config.hold_seconds as i64);
    let status = if settles { OrderStatus::Confirmed } else { OrderStatus::Pending };

    let row = OrderRow {
        order_id: order_id.clone(),
        token_hash: hash_secret(&token),
        name,
        email: email.clone(),
        phone,
        locale: crate::i18n::Locale::stored(req.locale.as_deref().unwrap_or_default()),
        event_id: req.event_id,
        event_ends_at,
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
        status,
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
                let _ = close_unpaid(state, &order_id, OrderStatus::Cancelled).await;
                return Err(e);
            }
        }
    }
    Ok(created_resp)
}

/// Moves a pending order to `status` (expired / cancelled) and releases its seats. `true` if it was pending.
pub async fn close_unpaid(state: &AppState, order_id: &str, status: OrderStatus) -> Result<bool> {
    let mut tx = state.db.write.begin().await?;
    let r = sqlx::query("UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4")
        .bind(status)
        .bind(now())
        .bind(order_id)
        .bind(OrderStatus::Pending)
        .execute(&mut *tx)
        .await?;
    if r.rows_affected() == 1 {
        release(&mut tx, order_id).await?;
    }
    tx.commit().await?;
    Ok(r.rows_affected() == 1)
}

/// The PostgreSQL advisory lock key a periodic hold sweep holds for its round (the ASCII bytes of
/// "HOLDSWEP": any constant no other part of the issuer uses would do).
pub const HOLD_SWEEP_LOCK_KEY: i64 = 0x484F_4C44_5357_4550;

/// One round of the periodic hold sweeper: `Some(expired orders)`, or `None` if another instance on the
/// same PostgreSQL is sweeping right now and this round was skipped.
///
/// Several issuer instances on one PostgreSQL each run a sweeper; only one of them sweeps per round: the
/// round first takes a transaction-scoped advisory lock without waiting, so the instances do not all read
/// the same due orders and race to close them. That saves work only: correctness stays with
/// `close_unpaid`'s conditional UPDATE (`AND status = pending`), which closes each order once whoever runs
/// it (the order path's own `expire_holds` on a sold-out answer takes no lock for that reason). The lock
/// goes when the round's transaction ends: at commit, or when the connection drops because this instance
/// died mid-sweep. SQLite has one process and no advisory locks: the round always runs.
pub async fn sweep_holds_once(state: &AppState) -> Result<Option<usize>> {
    let round = match state.db.backend {
        crate::db::Backend::Postgres => {
            let mut tx = state.db.write.begin().await?;
            let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
                .bind(HOLD_SWEEP_LOCK_KEY)
                .fetch_one(&mut *tx)
                .await?;
            if !locked {
                tracing::debug!("another instance is sweeping holds; skipping this round");
                return Ok(None);
            }
            Some(tx)
        }
        crate::db::Backend::Sqlite => None,
    };
    let n = expire_holds(state).await?;
    if let Some(tx) = round {
        tx.commit().await?;
    }
    Ok(Some(n))
}

/// Releases every expired hold. Returns how many orders expired.
pub async fn expire_holds(state: &AppState) -> Result<usize> {
    let due: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT id, payment_ref, payment_method FROM orders WHERE status = $1 AND hold_expires_at <= $2 LIMIT 200",
    )
    .bind(OrderStatus::Pending)
    .bind(now())
    .fetch_all(&state.db.write)
    .await?;
    let mut n = 0;
    for (id, payment_ref, method) in due {
        if close_unpaid(state, &id, OrderStatus::Expired).await? {
            n += 1;
            tracing::info!(order = %id, "hold expired; seats released");
            if let (Some(session), Ok(provider)) = (payment_ref, state.payments.by_method(&method)) {
                tokio::spawn(async move {
                    if let Err(e) = provider.expire(&session).await {
                        tracing::warn!(error = %e, "could not expire the payment session");
                    }
                });
            }
        }
    }
    Ok(n)
}

/// Releases expired holds periodically until shutdown.
pub async fn run_hold_sweeper(state: AppState, mut shutdown: watch::Receiver<bool>, every: Duration) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if let Err(e) = sweep_holds_once(&state).await {
            tracing::warn!(error = %e, "hold sweep failed");
        }
    }
}
