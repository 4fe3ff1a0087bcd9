//! Refunds and cancellations: a closed order's tickets go on the signed revocation list (a new version, in
//! the transaction that closes the order) and its seats back on sale; money owed back is recorded as a
//! pending refund that `payments::refunds` pays out. An unpaid order is cancelled instead (nothing was
//! paid), and its hosted checkout expired.

use scanner_core::{RevocationHash, TicketId};
use serde_json::{json, Value};

use super::model::OrderStatus;
use super::reserve::{close_unpaid, release};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::util::now;

/// Refunds or cancels an order (admin). Confirmed orders' tickets go on the revocation list, which gets a
/// new version in the same transaction. Returns (new status, revocation version).
pub async fn refund_or_cancel(state: &AppState, order_id: &str, new_status: OrderStatus) -> Result<(OrderStatus, u64)> {
    close_order(state, order_id, new_status, new_status == OrderStatus::Refunded).await
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
    sqlx::query("UPDATE tickets SET revoked = TRUE WHERE order_id = $1").bind(order_id).execute(&mut *tx).await?;
    if status == OrderStatus::Confirmed {
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
    tracing::info!(order = %order_id, status = %new_status, revocation_version = version, tickets = ids.len(), "order closed");
    Ok((new_status, version))
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
