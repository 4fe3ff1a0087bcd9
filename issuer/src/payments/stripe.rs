//! Stripe Checkout: a hosted payment page, confirmed by a webhook verified exactly as Stripe signs it.
//!
//! `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, where each `v1` is
//! HMAC-SHA256(webhook secret, "<t>.<raw body>"). An event is accepted only if one `v1` matches (compared in
//! constant time) and `t` is within the tolerance of now. Processing is idempotent: the event id is recorded
//! in the same transaction that confirms the order, and confirming an already confirmed order does nothing.

use axum::extract::{Request, State};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::{BoxFuture, Checkout, CheckoutRequest, PaymentProvider};
use crate::app::AppState;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::util::now;

/// Largest webhook body accepted.
pub const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/payments/stripe/webhook", post(webhook))
}

pub struct Stripe {
    secret_key: String,
    webhook_secret: Option<String>,
    api_base: String,
    tolerance: u64,
    http: reqwest::Client,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe").field("api_base", &self.api_base).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Stripe-Signature header")]
    Missing,
    #[error("Stripe-Signature header is malformed")]
    Malformed,
    #[error("timestamp outside the tolerance (replayed or clock skew)")]
    Timestamp,
    #[error("no v1 signature matches")]
    Mismatch,
}

impl SignatureError {
    fn message(self) -> &'static str {
        match self {
            SignatureError::Missing => "missing Stripe-Signature header",
            SignatureError::Malformed => "Stripe-Signature header is malformed",
            SignatureError::Timestamp => "timestamp outside the tolerance (replayed or clock skew)",
            SignatureError::Mismatch => "no v1 signature matches",
        }
    }
}

fn mac(secret: &str, t: i64, payload: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(payload);
    m
}

/// The `Stripe-Signature` header Stripe would send for `payload` at time `t` (for tests and tools).
pub fn sign(payload: &[u8], secret: &str, t: i64) -> String {
    format!("t={t},v1={}", hex::encode(mac(secret, t, payload).finalize().into_bytes()))
}

/// Verifies a `Stripe-Signature` header over the raw payload.
pub fn verify_signature(
    payload: &[u8],
    header: &str,
    secret: &str,
    tolerance: u64,
    now: i64,
) -> Result<(), SignatureError> {
    let mut t: Option<i64> = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or(SignatureError::Malformed)?;
        match k {
            "t" => t = Some(v.parse().map_err(|_| SignatureError::Malformed)?),
            "v1" => {
                if let Ok(bytes) = hex::decode(v) {
                    sigs.push(bytes);
                }
            }
            _ => {} // v0 and future schemes are ignored, as Stripe's libraries do.
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if sigs.is_empty() {
        return Err(SignatureError::Mismatch);
    }
    if now.abs_diff(t) > tolerance {
        return Err(SignatureError::Timestamp);
    }
    if sigs.iter().any(|s| mac(secret, t, payload).verify_slice(s).is_ok()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
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

impl Stripe {
    pub fn from_config(config: &Config) -> Option<Self> {
        let secret_key = config.stripe_secret_key.clone()?;
        Some(Self {
            secret_key,
            webhook_secret: config.stripe_webhook_secret.clone(),
            api_base: config.stripe_api_base.trim_end_matches('/').to_owned(),
            tolerance: config.stripe_webhook_tolerance,
            http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(20)).build().unwrap_or_default(),
        })
    }

    async fn post_form(
        &self,
        path: &str,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<serde_json::Value> {
        let resp = self
            .http
            .post(format!("{}{}", self.api_base, path))
            .bearer_auth(&self.secret_key)
            .header("Idempotency-Key", idempotency_key)
            .form(form)
            .send()
            .await
            .map_err(|e| Error::Payment(format!("Stripe request failed: {e}")))?;
        let status = resp.status();
        let body: serde_json::Value =
            resp.json().await.map_err(|e| Error::Payment(format!("Stripe answered with invalid JSON: {e}")))?;
        if !status.is_success() {
            let msg = body["error"]["message"].as_str().unwrap_or("unknown error");
            return Err(Error::Payment(format!("Stripe answered {status}: {msg}")));
        }
        Ok(body)
    }
}

impl PaymentProvider for Stripe {
    fn method(&self) -> &'static str {
        "stripe"
    }

    fn settles_at_order(&self) -> bool {
        false
    }

    fn checkout<'a>(&'a self, req: &'a CheckoutRequest) -> BoxFuture<'a, Result<Checkout>> {
        Box::pin(async move {
            let cur = req.currency.to_ascii_lowercase();
            // Stripe requires a session to live at least 30 minutes; a payment after the hold expired
            // re-reserves or is flagged for refund.
            let expires = req.hold_expires_at.max(now() + 1800);
            let mut form: Vec<(String, String)> = vec![
                ("mode".into(), "payment".into()),
                ("client_reference_id".into(), req.order_id.clone()),
                ("metadata[order_id]".into(), req.order_id.clone()),
                ("customer_email".into(), req.customer_email.clone()),
                ("success_url".into(), req.success_url.clone()),
                ("cancel_url".into(), req.cancel_url.clone()),
                ("expires_at".into(), expires.to_string()),
            ];
            for (i, (name, unit, qty)) in req.lines.iter().enumerate() {
                form.push((format!("line_items[{i}][quantity]"), qty.to_string()));
                form.push((format!("line_items[{i}][price_data][currency]"), cur.clone()));
                form.push((format!("line_items[{i}][price_data][unit_amount]"), unit.to_string()));
                form.push((format!("line_items[{i}][price_data][product_data][name]"), name.clone()));
            }
            let body = self.post_form("/v1/checkout/sessions", &form, &format!("checkout-{}", req.order_id)).await?;
            match (body["id"].as_str(), body["url"].as_str()) {
                (Some(id), Some(url)) => Ok(Checkout { session_id: id.to_owned(), url: url.to_owned() }),
                _ => Err(Error::Payment("Stripe's checkout session has no id or url".into())),
            }
        })
    }

    fn expire<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let path = format!("/v1/checkout/sessions/{session_id}/expire");
            self.post_form(&path, &[], &format!("expire-{session_id}")).await.map(|_| ())
        })
    }

    fn refund<'a>(&'a self, payment_intent: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let form = vec![("payment_intent".to_owned(), payment_intent.to_owned())];
            self.post_form("/v1/refunds", &form, &format!("refund-{payment_intent}")).await.map(|_| ())
        })
    }
}

async fn webhook(State(state): State<AppState>, req: Request) -> Result<axum::Json<serde_json::Value>> {
    let stripe = state.payments.stripe().ok_or(Error::NotFound("Stripe webhook (Stripe is not configured)"))?;
    let secret =
        stripe.webhook_secret.as_deref().ok_or(Error::NotFound("Stripe webhook (no webhook secret configured)"))?;
    let header = req
        .headers()
        .get("stripe-signature")
        .map(|v| v.to_str().map(str::to_owned).map_err(|_| Error::Signature(SignatureError::Malformed.message())))
        .transpose()?
        .ok_or(Error::Signature(SignatureError::Missing.message()))?;
    let body = crate::extract::body_bytes(req, MAX_WEBHOOK_BYTES).await?;
    verify_signature(&body, &header, secret, stripe.tolerance, now()).map_err(|e| {
        tracing::warn!(reason = %e, "rejected Stripe webhook");
        Error::Signature(e.message())
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
            check_session(&state, &order_id, obj).await?;
            let intent = obj["payment_intent"].as_str();
            let outcome = crate::orders::confirm_paid(&state, &order_id, intent).await?.unwrap_or("already_settled");
            if !record_event(&state, &event.id).await? {
                "duplicate"
            } else {
                outcome
            }
        }
        ("checkout.session.expired" | "checkout.session.async_payment_failed", Some(order_id)) => {
            record_event(&state, &event.id).await?;
            if crate::orders::close_unpaid(&state, &order_id, "expired").await? {
                "expired"
            } else {
                "ignored"
            }
        }
        _ => "ignored",
    };
    tracing::info!(kind = %event.kind, outcome, "Stripe webhook processed");
    Ok(axum::Json(serde_json::json!({ "received": true, "outcome": outcome })))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_good_bad_old() {
        let body = br#"{"id":"evt_1"}"#;
        let h = sign(body, "whsec_x", 1000);
        assert_eq!(verify_signature(body, &h, "whsec_x", 300, 1100), Ok(()));
        assert_eq!(verify_signature(body, &h, "whsec_y", 300, 1100), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(b"{}", &h, "whsec_x", 300, 1100), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(body, &h, "whsec_x", 300, 1301), Err(SignatureError::Timestamp));
        assert_eq!(verify_signature(body, "garbage", "whsec_x", 300, 1000), Err(SignatureError::Malformed));
        // Several v1 entries (secret rotation): any match is enough.
        let two = format!("t=1000,v1=00,{}", h.split(',').nth(1).unwrap());
        assert_eq!(verify_signature(body, &two, "whsec_x", 300, 1000), Ok(()));
    }
}
