//! Refunds and cancellations: a closed order's tickets go on the signed revocation list (a new version, in
//! the transaction that closes the order) and its seats back on sale; money owed back is recorded as a
//! pending refund that `payments::refunds` pays out. An unpaid order is cancelled instead (nothing was
//! paid), and its hosted checkout expired.
//!
//! A single ticket of a confirmed order can be refunded or cancelled on its own ([`close_ticket`]): exactly
//! that ticket is revoked and its seat (type and add-ons) released, and for a refund its share of the
//! payment (what was charged for it) is recorded as a pending partial refund. The order stays confirmed
//! while it has valid tickets; closing its last one closes the order too.

use scanner_core::{RevocationHash, RevocationList, TicketId};
use serde::Serialize;
use serde_json::{json, Value};

use super::model::OrderStatus;
use super::reserve::close_unpaid;
use crate::audit;
use crate::db::Tx;
use crate::error::{Error, Result};
use crate::payments::refunds::TicketShare;
use crate::staff::Staff;
use crate::state::AppState;
use crate::util::now;

/// Refunds or cancels an order (admin `who`). Confirmed orders' tickets go on the revocation list, which
/// gets a new version in the same transaction, with the audit row (`order.refund` / `order.cancel`).
/// Returns (new status, revocation version).
pub async fn refund_or_cancel(
    state: &AppState,
    who: &crate::staff::Staff,
    order_id: &str,
    new_status: OrderStatus,
) -> Result<(OrderStatus, u64)> {
    close_order_by(state, Some(who), order_id, new_status, new_status == OrderStatus::Refunded).await
}

/// Closes a paid (or free) order as `new_status` and revokes its tickets, as [`refund_or_cancel`]. With
/// `pay_back`, a refund of the online payment is recorded as pending in the same transaction (the caller
/// or the refund worker then asks the provider, see `payments::refunds`); without it the money already
/// went back, or is disputed, at the provider.
pub async fn close_order(
    state: &AppState,
    order_id: &str,
    new_status: OrderStatus,
    pay_back: bool,
) -> Result<(OrderStatus, u64)> {
    close_order_by(state, None, order_id, new_status, pay_back).await
}

/// [`close_order`], audited as `who`'s action when it is one (the payment provider's events are not).
async fn close_order_by(
    state: &AppState,
    who: Option<&crate::staff::Staff>,
    order_id: &str,
    new_status: OrderStatus,
    pay_back: bool,
) -> Result<(OrderStatus, u64)> {
    let row: Option<(OrderStatus, String, Option<String>)> =
        sqlx::query_as("SELECT status, payment_method, payment_intent FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_optional(&state.db.write)
            .await?;
    let (status, method, intent) = row.ok_or(Error::NotFound("order"))?;
    match status {
        OrderStatus::Pending => {
            close_unpaid(state, order_id, OrderStatus::Cancelled).await?;
            let v = state.revocations.lock().await.version();
            return Ok((OrderStatus::Cancelled, v));
        }
        OrderStatus::Confirmed | OrderStatus::PaymentConflict => {}
        other => return Err(Error::Conflict(format!("order is already {other}"))),
    }
    let mut list = state.revocations.lock().await;
    let mut tx = state.db.write.begin().await?;
    let r = sqlx::query("UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4")
        .bind(new_status)
        .bind(now())
        .bind(order_id)
        .bind(status)
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
    if status == OrderStatus::Confirmed {
        // Only the seats of tickets still valid: a ticket refunded on its own gave its seat back then.
        for (id,) in &ids {
            release_ticket_seat(&mut tx, id).await?;
        }
    }
    sqlx::query("UPDATE tickets SET revoked = TRUE WHERE order_id = $1").bind(order_id).execute(&mut *tx).await?;
    let ids: Vec<&str> = ids.iter().map(|(h,)| h.as_str()).collect();
    let (next, version) = publish_revocations(&mut tx, state, &list, &ids).await?;
    if let Some(who) = who {
        let action = if new_status == OrderStatus::Refunded { "order.refund" } else { "order.cancel" };
        crate::audit::record(
            &mut tx,
            who,
            action,
            &format!("order:{order_id}"),
            Some(json!({ "status": status })),
            Some(json!({ "status": new_status, "revoked_tickets": ids, "revocation_version": version })),
        )
        .await?;
    }
    tx.commit().await?;
    *list = next;
    tracing::info!(order = %order_id, status = %new_status, revocation_version = version, tickets = ids.len(), "order closed");
    Ok((new_status, version))
}

/// Puts the tickets `ids` (hex) on a new version of the revocation list, stored inside `tx`; returns the
/// new list (to install once `tx` commits) and its version. No ids: the list is unchanged.
async fn publish_revocations(
    tx: &mut Tx<'_>,
    state: &AppState,
    list: &RevocationList,
    ids: &[&str],
) -> Result<(RevocationList, u64)> {
    let hashes: Vec<RevocationHash> =
        ids.iter().filter_map(|h| TicketId::from_hex(h)).map(|id| RevocationHash::of(&id)).collect();
    if hashes.is_empty() {
        let v = list.version();
        return Ok((list.clone(), v));
    }
    // Several issuer instances on one PostgreSQL each keep the list in memory. Lock the stored row
    // (inserted first if this is the first list; a placeholder this transaction overwrites below) so
    // publishers take turns, and publish on top of the newest stored list rather than this process's copy:
    // a version is never published twice and no revocation is lost. (SQLite: one writer, a no-op.)
    sqlx::query("INSERT INTO revocation_state (id, version, list_json) VALUES (1, 0, '') ON CONFLICT (id) DO NOTHING")
        .execute(&mut **tx)
        .await?;
    sqlx::query("UPDATE revocation_state SET version = version WHERE id = 1").execute(&mut **tx).await?;
    let mut next = match newer_stored_list(tx, state, list.version()).await? {
        Some(stored) => stored,
        None => list.clone(),
    };
    let v = next.publish(&state.signer.key, hashes);
    sqlx::query(
        "INSERT INTO revocation_state (id, version, list_json) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, list_json = excluded.list_json",
    )
    .bind(v as i64)
    .bind(next.to_json())
    .execute(&mut **tx)
    .await?;
    Ok((next, v))
}

/// The stored revocation list, when another instance published a newer version than `known`.
async fn newer_stored_list(conn: &mut crate::db::Conn, state: &AppState, known: u64) -> Result<Option<RevocationList>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT list_json FROM revocation_state WHERE id = 1 AND version > $1")
        .bind(known as i64)
        .fetch_optional(conn)
        .await?;
    match row {
        None => Ok(None),
        Some((json,)) => RevocationList::from_json(&json, &state.signer.keyring)
            .map(Some)
            .map_err(|e| Error::internal(format!("stored revocation list: {e}"))),
    }
}

/// On PostgreSQL, takes a newer list another instance published into this process's copy, so that every
/// instance serves the newest list (one query per request). SQLite has one process: nothing to do.
pub async fn refresh_revocations(state: &AppState) -> Result<()> {
    if state.db.backend != crate::db::Backend::Postgres {
        return Ok(());
    }
    let mut list = state.revocations.lock().await;
    let mut conn = state.db.read.acquire().await?;
    if let Some(stored) = newer_stored_list(&mut conn, state, list.version()).await? {
        *list = stored;
    }
    Ok(())
}

/// Gives back the seat one issued ticket holds: one of its ticket type and one of each of its add-ons.
async fn release_ticket_seat(tx: &mut Tx<'_>, ticket_id: &str) -> Result<()> {
    let (event_id, type_index, mask): (i64, i64, i64) =
        sqlx::query_as("SELECT event_id, ticket_type, addon_mask FROM tickets WHERE ticket_id = $1")
            .bind(ticket_id)
            .fetch_one(&mut **tx)
            .await?;
    sqlx::query("UPDATE ticket_types SET reserved = reserved - 1 WHERE event_id = $1 AND idx = $2")
        .bind(event_id)
        .bind(type_index)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE addons SET reserved = reserved - 1 WHERE event_id = $1 AND idx >= 0 AND idx < 16 AND (($2 >> idx) & 1) = 1",
    )
    .bind(event_id)
    .bind(mask)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What closing one ticket did ([`close_ticket`]).
#[derive(Debug, Clone, Serialize)]
pub struct TicketClosed {
    pub order_id: String,
    pub seq: i64,
    /// The revoked ticket's id (hex): what the revocation list now carries (as its hash).
    pub ticket_id: String,
    /// The order's status afterwards: still `confirmed` unless this was its last valid ticket.
    pub order_status: OrderStatus,
    /// The amount recorded to go back to the customer (minor units), for a refund of an online payment.
    pub refund_cents: Option<i64>,
    pub revocation_version: u64,
}

/// What one ticket was charged: its line's stored unit price, or for orders from before it was stored,
/// the catalog's prices of its type and add-ons.
async fn ticket_share(tx: &mut Tx<'_>, ticket_id: &str) -> Result<i64> {
    let (cents,): (Option<i64>,) = sqlx::query_as(
        "SELECT COALESCE(
            (SELECT i.unit_cents FROM order_items i JOIN ticket_types tt ON tt.id = i.ticket_type_id
             WHERE i.order_id = t.order_id AND tt.idx = t.ticket_type AND i.addon_mask = t.addon_mask
               AND i.unit_cents IS NOT NULL LIMIT 1),
            (SELECT tt.price_cents FROM ticket_types tt WHERE tt.event_id = t.event_id AND tt.idx = t.ticket_type)
              + COALESCE((SELECT CAST(SUM(a.price_cents) AS BIGINT) FROM addons a
                          WHERE a.event_id = t.event_id AND ((t.addon_mask >> a.idx) & 1) = 1), 0))
         FROM tickets t WHERE t.ticket_id = $1",
    )
    .bind(ticket_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(cents.unwrap_or(0))
}

/// Refunds (`refund`) or cancels one valid ticket (`seq`, its position in the order) of a confirmed
/// order: the ticket goes on a new revocation list version, its seat goes back on sale, for a refund of
/// an online payment its share is recorded as a pending partial refund (the caller then asks the provider
/// once, see `payments::refunds::attempt_for_ticket`), and the audit row is written, all in one
/// transaction. Closing the order's last valid ticket closes the order (`refunded` / `cancelled`).
pub async fn close_ticket(
    state: &AppState,
    who: &Staff,
    order_id: &str,
    seq: i64,
    refund: bool,
) -> Result<TicketClosed> {
    let mut list = state.revocations.lock().await;
    let mut tx = state.db.write.begin().await?;
    let row: Option<(OrderStatus, String, Option<String>)> =
        sqlx::query_as("SELECT status, payment_method, payment_intent FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?;
    let (status, method, intent) = row.ok_or(Error::NotFound("order"))?;
    if status != OrderStatus::Confirmed {
        return Err(Error::Conflict(format!(
            "order is {status}: only a confirmed order's tickets are closed one by one"
        )));
    }
    let ticket: Option<(String, crate::db::Flag, String)> = sqlx::query_as(
        "SELECT ticket_id, CAST(revoked AS INTEGER), holder_name FROM tickets WHERE order_id = $1 AND seq = $2",
    )
    .bind(order_id)
    .bind(seq)
    .fetch_optional(&mut *tx)
    .await?;
    let (ticket_id, revoked, holder) = ticket.ok_or(Error::NotFound("ticket"))?;
    if revoked.0 {
        return Err(Error::Conflict("ticket is already refunded or cancelled".into()));
    }
    let r = sqlx::query("UPDATE tickets SET revoked = TRUE WHERE ticket_id = $1 AND revoked = FALSE")
        .bind(&ticket_id)
        .execute(&mut *tx)
        .await?;
    if r.rows_affected() != 1 {
        return Err(Error::Conflict("ticket changed concurrently; try again".into()));
    }
    release_ticket_seat(&mut tx, &ticket_id).await?;
    let mut refund_cents = None;
    if let (true, Some(intent)) = (refund, intent.as_deref()) {
        let amount = ticket_share(&mut tx, &ticket_id).await?;
        // A free ticket (or one whose add-ons made up the whole price, refunded before): nothing to send.
        if amount > 0 {
            let share = TicketShare { ticket_id: &ticket_id, amount_cents: amount };
            crate::payments::refunds::record_part(&mut tx, order_id, Some(share), &method, intent, "ticket_refund")
                .await?;
            refund_cents = Some(amount);
        }
    }
    let (live,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tickets WHERE order_id = $1 AND revoked = FALSE")
        .bind(order_id)
        .fetch_one(&mut *tx)
        .await?;
    let order_status = if live == 0 {
        let closed = if refund { OrderStatus::Refunded } else { OrderStatus::Cancelled };
        sqlx::query("UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(closed)
            .bind(now())
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
        closed
    } else {
        sqlx::query("UPDATE orders SET updated_at = $1 WHERE id = $2")
            .bind(now())
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
        OrderStatus::Confirmed
    };
    let (next, version) = publish_revocations(&mut tx, state, &list, &[ticket_id.as_str()]).await?;
    let action = if refund { "order.refund_ticket" } else { "order.cancel_ticket" };
    audit::record(
        &mut tx,
        who,
        action,
        &format!("order:{order_id}/ticket:{seq}"),
        Some(json!({ "revoked": false, "holder_name": holder, "order_status": status })),
        Some(json!({ "revoked": true, "order_status": order_status, "refund_cents": refund_cents,
                     "revocation_version": version })),
    )
    .await?;
    tx.commit().await?;
    *list = next;
    tracing::info!(order = %order_id, seq, refund, revocation_version = version, "ticket closed");
    Ok(TicketClosed {
        order_id: order_id.to_owned(),
        seq,
        ticket_id,
        order_status,
        refund_cents,
        revocation_version: version,
    })
}

/// Cancels a pending (unpaid) order and expires its hosted checkout, so the customer can no longer pay
/// for seats that went back on sale: the admin API's answer, or `None` if the order is not pending. If the
/// session cannot be expired (the customer paid a moment ago, or Stripe is unreachable), the payment that
/// arrives for the cancelled order is refunded by the webhook, never confirmed.
pub async fn cancel_if_pending(state: &AppState, id: &str) -> Result<Option<Value>> {
    let row: Option<(OrderStatus, String, Option<String>)> =
        sqlx::query_as("SELECT status, payment_method, payment_ref FROM orders WHERE id = $1")
            .bind(id)
            .fetch_optional(&state.db.write)
            .await?;
    let (status, method, session) = row.ok_or(Error::NotFound("order"))?;
    if status != OrderStatus::Pending {
        return Ok(None);
    }
    if !close_unpaid(state, id, OrderStatus::Cancelled).await? {
        return Err(Error::Conflict("order changed concurrently; try again".into()));
    }
    let checkout_expired = match session {
        Some(session) => match state.payments.by_method(&method)?.expire(&session).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(order = %id, error = %e, "could not expire the checkout of a cancelled order");
                false
            }
        },
        None => false,
    };
    let version = state.revocations.lock().await.version();
    let body = json!({
        "order_id": id, "status": OrderStatus::Cancelled, "revocation_version": version,
        "checkout_expired": checkout_expired,
    });
    Ok(Some(body))
}
