//! Stripe's webhook, `POST /v1/payments/stripe/webhook`: `Stripe-Signature` verified ([`verify_signature`]),
//! idempotent per event id. A paid checkout confirms its order and issues the tickets
//! ([`crate::orders::issue::confirm_paid`]); an expired one releases the hold; a refund made at Stripe or a
//! dispute closes the order and revokes its tickets ([`crate::orders::refund::close_order`]).

use axum::extract::{Request, State};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

use super::refunds;
use super::stripe::verify_signature;
use crate::error::SignatureKind;
use crate::error::{Error, Result};
use crate::orders::issue::{confirm_paid, Paid};
use crate::orders::model::OrderStatus;
use crate::orders::refund::close_order;
use crate::orders::reserve::close_unpaid;
use crate::state::AppState;
use crate::util::now;

/// Largest webhook body accepted.
pub const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/payments/stripe/webhook", post(webhook))
}

#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: serde_json::Value,
}

async fn webhook(State(state): State<AppState>, req: Request) -> Result<axum::Json<serde_json::Value>> {
    let stripe = state.payments.stripe().ok_or(Error::NotFound("Stripe webhook (Stripe is not configured)"))?;
    let secret =
        stripe.webhook_secret.as_deref().ok_or(Error::NotFound("Stripe webhook (no webhook secret configured)"))?;
    let header = req
        .headers()
        .get("stripe-signature")
        .map(|v| v.to_str().map(str::to_owned).map_err(|_| SignatureKind::Malformed))
        .transpose()?
        .ok_or(SignatureKind::Missing)?;
    let body = crate::extract::body_bytes(req, MAX_WEBHOOK_BYTES).await?;
    verify_signature(&body, &header, secret, stripe.tolerance, now()).inspect_err(|e| {
        // The reason alone (the kind), as this line has always logged it.
        let reason: &dyn std::fmt::Display = match e {
            Error::Signature(kind) => kind,
            other => other,
        };
        tracing::warn!(reason = %reason, "rejected Stripe webhook");
    })?;
    let event: Event =
        serde_json::from_slice(&body).map_err(|e| Error::BadRequest(format!("webhook is not a Stripe event: {e}")))?;
    let obj = &event.data.object;
    let order_id =
        obj["client_reference_id"].as_str().or_else(|| obj["metadata"]["order_id"].as_str()).map(str::to_owned);
    let outcome = match (event.kind.as_str(), order_id) {
        ("checkout.session.completed" | "checkout.session.async_payment_succeeded", Some(order_id))
            if obj["payment_status"].as_str() == Some("paid") =>
        {
            // Confirming is itself idempotent (only a pending/expired order moves), so a crash between
            // confirming and recording the event id is harmless: Stripe's retry confirms nothing twice.
            // A cancelled order is never confirmed: its payment is recorded as a refund owed instead.
            check_session(&state, &order_id, obj).await?;
            let intent = obj["payment_intent"].as_str();
            let paid = confirm_paid(&state, &order_id, intent).await?;
            if paid == Some(Paid::RefundPending) {
                // Stripe wants a quick answer to its webhook: the refund call runs beside it (and, should
                // it never finish, the refund worker takes over).
                let (state, order_id) = (state.clone(), order_id.clone());
                tokio::spawn(async move {
                    if let Err(e) = refunds::attempt_for_order(&state, &order_id).await {
                        tracing::warn!(order = %order_id, error = %e, "refund attempt could not be recorded");
                    }
                });
            }
            if !record_event(&state, &event.id).await? {
                "duplicate"
            } else {
                paid.map_or("already_settled", Paid::as_str)
            }
        }
        ("checkout.session.expired" | "checkout.session.async_payment_failed", Some(order_id)) => {
            record_event(&state, &event.id).await?;
            if close_unpaid(&state, &order_id, OrderStatus::Expired).await? {
                "expired"
            } else {
                "ignored"
            }
        }
        ("charge.refunded", _) if obj["object"].as_str() == Some("charge") => {
            // Also fires for partial refunds (then `refunded` is false): the organizer refunded part of
            // the money by hand, and the tickets stay valid.
            if obj["refunded"].as_bool() == Some(true) {
                money_went_back(&state, &event.id, obj, OrderStatus::Refunded).await?
            } else {
                record_event(&state, &event.id).await?;
                "ignored_partial_refund"
            }
        }
        ("charge.dispute.created", _) if obj["object"].as_str() == Some("dispute") => {
            money_went_back(&state, &event.id, obj, OrderStatus::Disputed).await?
        }
        _ => "ignored",
    };
    tracing::info!(kind = %event.kind, outcome, "Stripe webhook processed");
    Ok(axum::Json(serde_json::json!({ "received": true, "outcome": outcome })))
}

/// The payment of an order was refunded in Stripe's dashboard, or the customer disputed it with their
/// bank: the order is closed as `new_status` and its tickets revoked exactly as an admin refund revokes
/// them (a new revocation list version), without asking Stripe for a refund. Idempotent: a replayed event
/// id is reported as a duplicate, and a closed order does not move again.
async fn money_went_back(
    state: &AppState,
    event_id: &str,
    obj: &serde_json::Value,
    new_status: OrderStatus,
) -> Result<&'static str> {
    if event_seen(state, event_id).await? {
        return Ok("duplicate");
    }
    let Some(intent) = obj["payment_intent"].as_str() else {
        record_event(state, event_id).await?;
        return Ok("ignored");
    };
    let order: Option<(String,)> =
        sqlx::query_as("SELECT id FROM orders WHERE payment_intent = $1 AND payment_method = 'stripe'")
            .bind(intent)
            .fetch_optional(&state.db.write)
            .await?;
    let outcome = match order {
        // Not one of ours (another integration on the same Stripe account).
        None => "ignored",
        Some((order_id,)) => match close_order(state, &order_id, new_status, false).await {
            Ok(_) => new_status.as_str(),
            // Already refunded or cancelled (for example our own refund coming back as charge.refunded).
            Err(Error::Conflict(_)) => "already_closed",
            Err(e) => return Err(e),
        },
    };
    // Recorded after the work: a crash in between makes Stripe retry, and closing is idempotent.
    record_event(state, event_id).await?;
    Ok(outcome)
}

async fn event_seen(state: &AppState, id: &str) -> Result<bool> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM stripe_events WHERE id = $1").bind(id).fetch_optional(&state.db.write).await?;
    Ok(row.is_some())
}

/// Records a processed event id; `false` if it was seen before.
async fn record_event(state: &AppState, id: &str) -> Result<bool> {
    let r = sqlx::query("INSERT INTO stripe_events (id, received_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
        .bind(id)
        .bind(now())
        .execute(&state.db.write)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// The session must be the one created for the order, for the order's amount and currency.
async fn check_session(state: &AppState, order_id: &str, obj: &serde_json::Value) -> Result<()> {
    let row: Option<(Option<String>, i64, String)> = sqlx::query_as(
        "SELECT payment_ref, total_cents, currency FROM orders WHERE id = $1 AND payment_method = 'stripe'",
    )
    .bind(order_id)
    .fetch_optional(&state.db.write)
    .await?;
    let (session, total, currency) = row.ok_or(Error::NotFound("order"))?;
    let matches = session.as_deref() == obj["id"].as_str()
        && obj["amount_total"].as_i64() == Some(total)
        && obj["currency"].as_str().map(str::to_ascii_uppercase) == Some(currency);
    if matches {
        Ok(())
    } else {
        Err(Error::Conflict("the paid session does not match the order (session, amount or currency)".into()))
    }
}
