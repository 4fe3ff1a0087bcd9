//! Refunds owed to customers, recorded before the payment provider is asked.
//!
//! A refund is written as `pending` (with its idempotency key) in the same transaction that closes the
//! order, and only then is the provider called; success marks it `succeeded`. If the process dies in
//! between, or the call fails or hangs, the row is still pending and [`run_worker`] calls again with the
//! *same* idempotency key, so the provider executes the refund at most once. Stripe saves a 5xx under its
//! key and replays it, so only then is the key replaced (stored before use); a second full refund of the
//! same payment is refused by Stripe as `charge_already_refunded`, which counts as done.
//!
//! A single ticket's refund is a partial refund (`amount_cents`, Stripe's `amount`), one per (order,
//! ticket). It has the same idempotency-key protection, but not the second guard: after a Stripe 5xx the
//! retry goes out under a fresh key, and if the first call had in fact executed, Stripe would refund that
//! ticket's share twice (it only refuses once the whole charge is refunded). Stripe does not promise that
//! a call answered with a 5xx did nothing, so this is a known gap (it needs a Stripe server error first);
//! both refunds would show at Stripe for a person to settle.
//!
//! Whoever records a refund makes the first attempt at once ([`attempt_for_order`]); the row is written
//! with `next_attempt_at` one lease ahead, so the worker only takes over if that attempt never finishes.
//! Every attempt claims its row by moving `next_attempt_at` past the HTTP timeout (a lease), so two
//! attempts never call at the same time within one process.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::db::Tx;
use crate::error::{Error, RefundKind, Result};
use crate::state::AppState;
use crate::util::{now, now_ms, random_id};

/// How long an attempt owns its row: longer than the provider call's timeout.
const LEASE_MS: i64 = super::stripe::HTTP_TIMEOUT.as_millis() as i64 + 10_000;
/// Retry delays: 1 s, doubling, at most 10 minutes.
const BACKOFF_FIRST_MS: i64 = 1_000;
const BACKOFF_MAX_MS: i64 = 600_000;
/// How often the worker looks for due refunds when nobody wakes it.
const POLL: Duration = Duration::from_millis(500);

/// What the admin API shows of an order's refund.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, sqlx::FromRow)]
pub struct RefundView {
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// `admin_refund` or `late_payment`.
    pub reason: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The provider's refund id.
    pub provider_ref: Option<String>,
}

fn new_key() -> String {
    random_id("refund")
}

fn backoff_ms(attempts: i64) -> i64 {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    BACKOFF_FIRST_MS.saturating_mul(1i64 << exp).min(BACKOFF_MAX_MS)
}

/// Records, inside `tx`, that `order_id`'s payment is to be refunded (all of what is left of it). `false`
/// if the order already has a refund (a replayed webhook, a second admin click): one refund per order.
pub async fn record(
    tx: &mut Tx<'_>,
    order_id: &str,
    payment_method: &str,
    payment_intent: &str,
    reason: &str,
) -> Result<bool> {
    record_part(tx, order_id, None, payment_method, payment_intent, reason).await
}

/// One ticket's share of a payment to give back: which ticket (its hex id) and how much (minor units).
#[derive(Debug, Clone, Copy)]
pub struct TicketShare<'a> {
    pub ticket_id: &'a str,
    pub amount_cents: i64,
}

/// Records, inside `tx`, a refund of `share` of `order_id`'s payment, or with `None` of all that is left
/// of it. One refund per (order, ticket): `false` if it was recorded before.
pub async fn record_part(
    tx: &mut Tx<'_>,
    order_id: &str,
    share: Option<TicketShare<'_>>,
    payment_method: &str,
    payment_intent: &str,
    reason: &str,
) -> Result<bool> {
    let r = sqlx::query(
        "INSERT INTO refunds (order_id, ticket_id, amount_cents, payment_method, payment_intent, reason, status,
                              idempotency_key, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9) ON CONFLICT (order_id, ticket_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(share.map_or("", |s| s.ticket_id))
    .bind(share.map(|s| s.amount_cents))
    .bind(payment_method)
    .bind(payment_intent)
    .bind(reason)
    .bind(new_key())
    .bind(now_ms() + LEASE_MS)
    .bind(now())
    .execute(&mut **tx)
    .await?;
    if r.rows_affected() == 1 {
        tracing::info!(order = %order_id, ticket = share.map_or("", |s| s.ticket_id), reason, "refund recorded as pending");
    }
    Ok(r.rows_affected() == 1)
}

/// Every refund of an order: the whole order's (`ticket_id` empty) and single tickets', oldest first.
pub async fn all_for_order(state: &AppState, order_id: &str) -> Result<Vec<TicketRefundView>> {
    Ok(sqlx::query_as::<_, TicketRefundView>(
        "SELECT ticket_id, amount_cents, status, reason, attempts, last_error, provider_ref, created_at
         FROM refunds WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(&state.db.read)
    .await?)
}

/// One refund as the order detail shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, sqlx::FromRow)]
pub struct TicketRefundView {
    /// The refunded ticket's id (hex), or empty for the whole order.
    pub ticket_id: String,
    /// What was asked back (minor units); `None`: all that was left of the payment.
    pub amount_cents: Option<i64>,
    pub status: String,
    pub reason: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub provider_ref: Option<String>,
    pub created_at: i64,
}

/// The refund of a whole order, if it has one.
pub async fn for_order(state: &AppState, order_id: &str) -> Result<Option<RefundView>> {
    Ok(sqlx::query_as::<_, RefundView>(
        "SELECT status, reason, attempts, last_error, provider_ref FROM refunds WHERE order_id = $1 AND ticket_id = ''",
    )
    .bind(order_id)
    .fetch_optional(&state.db.write)
    .await?)
}

/// The first attempt at the order's refund, right after it was recorded (a no-op if an attempt was made
/// already); returns the refund's state.
pub async fn attempt_for_order(state: &AppState, order_id: &str) -> Result<Option<RefundView>> {
    attempt_first(state, order_id, "").await?;
    for_order(state, order_id).await
}

/// The first attempt at the refund of one ticket (hex id) of an order, right after it was recorded;
/// returns the refund's state.
pub async fn attempt_for_ticket(state: &AppState, order_id: &str, ticket_id: &str) -> Result<Option<TicketRefundView>> {
    attempt_first(state, order_id, ticket_id).await?;
    Ok(all_for_order(state, order_id).await?.into_iter().find(|r| r.ticket_id == ticket_id))
}

async fn attempt_first(state: &AppState, order_id: &str, ticket_id: &str) -> Result<()> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM refunds WHERE order_id = $1 AND ticket_id = $2 AND status = 'pending'")
            .bind(order_id)
            .bind(ticket_id)
            .fetch_optional(&state.db.write)
            .await?;
    if let Some((id,)) = row {
        attempt(state, id, true).await?;
    }
    Ok(())
}

/// One attempt at refund `id`: the first one (`first`), or a retry that is due.
async fn attempt(state: &AppState, id: i64, first: bool) -> Result<()> {
    let t = now_ms();
    // The claim: only one attempt in this process at a time (see the module comment).
    let claimed: Option<(String, String, String, String, i64, Option<i64>)> = sqlx::query_as(
        "UPDATE refunds SET attempts = attempts + 1, next_attempt_at = $1
         WHERE id = $2 AND status = 'pending' AND (($3 AND attempts = 0) OR next_attempt_at <= $4)
         RETURNING order_id, payment_method, payment_intent, idempotency_key, attempts, amount_cents",
    )
    .bind(t + LEASE_MS)
    .bind(id)
    .bind(first)
    .bind(t)
    .fetch_optional(&state.db.write)
    .await?;
    let Some((order_id, method, intent, key, attempts, amount)) = claimed else {
        return Ok(());
    };
    let result = match state.payments.by_method(&method) {
        Ok(provider) => provider.refund(&intent, amount, &key).await,
        // Stripe was configured when the refund was recorded and is not now: wait for it to come back.
        Err(e) => Err(RefundKind::Retry(e.to_string()).into()),
    };
    match result {
        Ok(provider_ref) => {
            finish(state, id, provider_ref.as_deref(), None).await?;
            tracing::info!(order = %order_id, attempts, "refund succeeded");
        }
        Err(Error::Refund(RefundKind::AlreadyRefunded)) => {
            finish(state, id, None, Some("already refunded at the provider")).await?;
            tracing::info!(order = %order_id, attempts, "refund found already done at the provider");
        }
        Err(Error::Refund(RefundKind::Permanent(msg))) => {
            sqlx::query("UPDATE refunds SET status = 'failed', last_error = $1 WHERE id = $2 AND status = 'pending'")
                .bind(&msg)
                .bind(id)
                .execute(&state.db.write)
                .await?;
            tracing::error!(order = %order_id, error = %msg, "refund refused by the provider; needs a person");
        }
        // Retry and RetryNewKey; and any failure that is not a refund verdict, retried under the same key,
        // which is what cannot refund twice.
        Err(e) => {
            let next = now_ms() + backoff_ms(attempts);
            let key = match &e {
                Error::Refund(RefundKind::RetryNewKey(_)) => new_key(),
                _ => key,
            };
            sqlx::query(
                "UPDATE refunds SET next_attempt_at = $1, last_error = $2, idempotency_key = $3
                 WHERE id = $4 AND status = 'pending'",
            )
            .bind(next)
            .bind(e.to_string())
            .bind(&key)
            .bind(id)
            .execute(&state.db.write)
            .await?;
            tracing::warn!(order = %order_id, attempts, error = %e, "refund attempt failed; will retry");
        }
    }
    Ok(())
}

async fn finish(state: &AppState, id: i64, provider_ref: Option<&str>, note: Option<&str>) -> Result<()> {
    sqlx::query(
        "UPDATE refunds SET status = 'succeeded', provider_ref = $1, last_error = $2, done_at = $3
         WHERE id = $4 AND status = 'pending'",
    )
    .bind(provider_ref)
    .bind(note)
    .bind(now())
    .bind(id)
    .execute(&state.db.write)
    .await?;
    Ok(())
}

/// Retries pending refunds until shutdown (started beside the email worker).
pub async fn run_worker(state: AppState, mut shutdown: watch::Receiver<bool>) {
    // Nothing is in flight right after a start: a lease or backoff left by a process that died mid-call
    // must not delay the retry that makes the refund happen.
    if let Err(e) =
        sqlx::query("UPDATE refunds SET next_attempt_at = $1 WHERE status = 'pending' AND next_attempt_at > $1")
            .bind(now_ms())
            .execute(&state.db.write)
            .await
    {
        tracing::warn!(error = %e, "could not reset the refund retry schedule");
    }
    loop {
        match due(&state).await {
            Ok(ids) => {
                for id in ids {
                    if *shutdown.borrow() {
                        return;
                    }
                    if let Err(e) = attempt(&state, id, false).await {
                        tracing::warn!(error = %e, "refund attempt could not be recorded");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not list pending refunds"),
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

async fn due(state: &AppState) -> Result<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT id FROM refunds WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT 20",
    )
    .bind(now_ms())
    .fetch_all(&state.db.read)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_ms(1), 1_000);
        assert_eq!(backoff_ms(2), 2_000);
        assert_eq!(backoff_ms(5), 16_000);
        assert_eq!(backoff_ms(50), BACKOFF_MAX_MS);
        assert_eq!(backoff_ms(0), 1_000);
    }
}
