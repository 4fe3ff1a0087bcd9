//! Group commit for orders: the one task that writes new orders.
//!
//! SQLite has one writer and, with `synchronous = FULL`, one fsync per transaction. Committing each order
//! in its own transaction caps durable orders per second at the disk's fsync rate, which is exactly the
//! ceiling a sales spike hits. Instead, every handler hands its validated order to one committer task,
//! which takes whatever has queued up (up to [`MAX_BATCH`]) and writes it in ONE transaction, so that a
//! sold-out or failing order rolls back alone while the others commit (see [`write_batch`]), and every
//! handler is answered only after the commit that made its order durable.
//!
//! Under light load a batch is a single order and nothing waits for company: latency stays one commit.
//! The oversell guarantee is unchanged, because each reservation is still the conditional `UPDATE` of
//! [`super::reserve`], executed by the one writer.
//!
//! The event's cap of tickets per email address is checked here too, inside the transaction that writes
//! the order ([`write_one`]): the committer is the only writer of orders and handles one order at a time,
//! and the check reads the earlier orders of the same batch, so two concurrent orders for one address can
//! never both pass a cap that only one of them fits under. With several instances on one PostgreSQL there
//! are several committers: the check first locks the event's row ([`crate::db::lock_event`]), so theirs
//! take turns too.

use tokio::sync::watch;

use super::issue::{sign_and_store, TicketLine};
use super::model::OrderStatus;
use super::queue::{OrderQueueReceiver, OrderRow, Placement};
use super::reserve::{expire_holds, reserve, Reservation};
use crate::db::Tx;
use crate::error::{Error, Result};
use crate::state::AppState;

/// Most orders written by one transaction. Large enough to amortise the fsync, small enough that the
/// writer connection is never held for long.
pub const MAX_BATCH: usize = 128;

/// Runs the committer until shutdown. Orders already queued when shutdown arrives are still written.
pub async fn run(state: AppState, mut queue: OrderQueueReceiver, mut shutdown: watch::Receiver<bool>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let stopping = tokio::select! {
            biased;
            n = queue.rx.recv_many(&mut batch, MAX_BATCH) => {
                if n == 0 {
                    return;
                }
                false
            }
            _ = shutdown.wait_for(|stop| *stop) => true,
        };
        if stopping {
            queue.rx.close();
            while queue.rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                commit_batch(&state, std::mem::take(&mut batch)).await;
            }
            return;
        }
        commit_batch(&state, std::mem::take(&mut batch)).await;
    }
}

/// Writes one batch and answers every handler in it.
async fn commit_batch(state: &AppState, batch: Vec<Placement>) {
    let mut batch = batch;
    loop {
        let results = match write_batch(state, &batch).await {
            Ok(results) => results,
            Err(e) if batch.len() > 1 => {
                // One order's statement failed where no savepoint could isolate it, or the commit failed:
                // nothing of the batch is committed. Write each order alone so only the culprit fails.
                tracing::warn!(error = %e, orders = batch.len(), "order batch rolled back; writing its orders one by one");
                let mut results = Vec::with_capacity(batch.len());
                for p in &batch {
                    results.push(match write_batch(state, std::slice::from_ref(p)).await {
                        Ok(mut one) => one.pop().unwrap_or_else(|| Err(Error::internal("empty batch result"))),
                        Err(e) => Err(e),
                    });
                }
                results
            }
            Err(e) => {
                tracing::error!(error = %e, "order failed to commit");
                vec![Err(e)]
            }
        };
        let mut sold_out = Vec::new();
        for (p, result) in batch.into_iter().zip(results) {
            match result {
                Err(Error::Conflict(reason)) if !p.retried => sold_out.push((p, reason)),
                other => {
                    let _ = p.reply.send(other.map(|()| p.row));
                }
            }
        }
        if sold_out.is_empty() {
            return;
        }
        // Expired holds may not have been swept yet: release them, then try the sold-out orders once more.
        let released = match expire_holds(state).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "releasing expired holds failed");
                0
            }
        };
        if released == 0 {
            for (p, reason) in sold_out {
                let _ = p.reply.send(Err(Error::Conflict(reason)));
            }
            return;
        }
        batch = sold_out.into_iter().map(|(p, _)| Placement { retried: true, ..p }).collect();
    }
}

/// One transaction for the whole batch. The outer `Err` means nothing committed.
///
/// An order that reserves several things (lines, add-ons) gets a savepoint, so that when a later
/// reservation is sold out the earlier ones roll back with it. The common order — one line, no add-ons —
/// reserves with a single conditional `UPDATE` that either applies or changes nothing, so it needs no
/// savepoint (two statements fewer per order); if one of its inserts fails, the whole batch fails and
/// [`commit_batch`] writes its orders one by one.
async fn write_batch(state: &AppState, batch: &[Placement]) -> Result<Vec<Result<()>>> {
    let mut tx = state.db.write.begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    for p in batch {
        if !p.row.reserves_several() && batch.len() > 1 {
            results.push(match write_one(&mut tx, state, &p.row).await? {
                None => Ok(()),
                Some(reason) => Err(Error::Conflict(reason)),
            });
            continue;
        }
        let mut order = sqlx::Acquire::begin(&mut *tx).await?;
        match write_one(&mut order, state, &p.row).await {
            Ok(None) => {
                order.commit().await?;
                results.push(Ok(()));
            }
            Ok(Some(reason)) => {
                order.rollback().await?;
                results.push(Err(Error::Conflict(reason)));
            }
            Err(e) => {
                order.rollback().await?;
                tracing::warn!(order = %p.row.order_id, error = %e, "order rolled back");
                results.push(Err(e));
            }
        }
    }
    tx.commit().await?;
    Ok(results)
}

/// Tickets per email address that still count against an event's cap: those of orders holding or having
/// their seats ([`HELD_STATUSES`], bound as $3 to $5), not of expired, cancelled or refunded ones.
const HELD_BY_EMAIL: &str = "SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT)
     FROM order_email_keys k
     JOIN orders o ON o.id = k.order_id
     JOIN order_items i ON i.order_id = k.order_id
     WHERE k.event_id = $1 AND k.email_key = $2 AND o.status IN ($3, $4, $5)";
/// The statuses of orders whose tickets count against their address's cap.
const HELD_STATUSES: [OrderStatus; 3] = [OrderStatus::Pending, OrderStatus::Confirmed, OrderStatus::PaymentConflict];

/// Writes one order inside `tx` like [`write_order`], refusing it first (`Ok(Some(reason))`, nothing
/// written) when it would take its email address over the event's cap, and recording the address it
/// counts against. Writes nothing else before the cap check, so a refused order needs no rollback.
async fn write_one(tx: &mut Tx<'_>, state: &AppState, row: &OrderRow) -> Result<Option<String>> {
    let key = crate::catalog::email_key(&row.email);
    if let Some(cap) = row.email_cap {
        // Several issuer instances on one PostgreSQL each run a committer: the event's row lock makes
        // their checks of one event's cap take turns, so two orders cannot both fit under it.
        crate::db::lock_event(tx, row.event_id).await?;
        let [a, b, c] = HELD_STATUSES;
        let (held,): (i64,) = sqlx::query_as(HELD_BY_EMAIL)
            .bind(row.event_id)
            .bind(&key)
            .bind(a)
            .bind(b)
            .bind(c)
            .fetch_one(&mut **tx)
            .await?;
        if held + row.tickets() > cap {
            return Ok(Some(format!(
                "ticket limit: this event allows at most {cap} tickets per email address and {held} are already \
                 ordered with this one"
            )));
        }
    }
    if let Some(sold_out) = write_order(tx, state, row).await? {
        return Ok(Some(sold_out));
    }
    sqlx::query("INSERT INTO order_email_keys (order_id, event_id, email_key) VALUES ($1, $2, $3)")
        .bind(&row.order_id)
        .bind(row.event_id)
        .bind(&key)
        .execute(&mut **tx)
        .await?;
    Ok(None)
}

/// Writes one order inside `tx`: reserves every line (`Ok(Some(reason))` if sold out: the caller rolls
/// back), inserts the order and its items, and for an order that settles at once its tickets and email job.
async fn write_order(tx: &mut Tx<'_>, state: &AppState, row: &OrderRow) -> Result<Option<String>> {
    if let Some(sold_out) =
        reserve(tx, row.event_id, &row.lines.iter().map(Reservation::of_line).collect::<Vec<_>>()).await?
    {
        return Ok(Some(sold_out));
    }
    let status = if row.settles { OrderStatus::Confirmed } else { OrderStatus::Pending };
    sqlx::query(
        "INSERT INTO orders (id, event_id, token_hash, customer_name, customer_email, status, payment_method, total_cents,
                             currency, hold_expires_at, created_at, updated_at, locale)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12)",
    )
    .bind(&row.order_id)
    .bind(row.event_id)
    .bind(&row.token_hash)
    .bind(&row.name)
    .bind(&row.email)
    .bind(status)
    .bind(row.method)
    .bind(row.total)
    .bind(&row.currency)
    .bind(row.hold_expires_at)
    .bind(row.created)
    .bind(row.locale.tag())
    .execute(&mut **tx)
    .await?;
    for line in &row.lines {
        // The names only when some were given, and each ticket's price as charged (a single ticket's
        // refund gives back exactly that).
        let names = if line.holders.iter().any(|n| !n.is_empty()) {
            Some(serde_json::to_string(&line.holders).map_err(Error::internal)?)
        } else {
            None
        };
        sqlx::query(
            "INSERT INTO order_items (order_id, ticket_type_id, quantity, addon_mask, holder_names, unit_cents)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&row.order_id)
        .bind(line.ticket_type_id)
        .bind(line.quantity)
        .bind(line.addon_mask)
        .bind(names)
        .bind(line.unit_cents + line.addon_lines.iter().map(|a| a.1).sum::<i64>())
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
                holders: l.holders.clone(),
            })
            .collect();
        sign_and_store(tx, state, &row.order_id, row.event_id, row.event_ends_at, &row.name, &lines).await?;
    }
    Ok(None)
}
