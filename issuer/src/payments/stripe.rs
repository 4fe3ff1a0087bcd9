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

use super::{BoxFuture, Checkout, CheckoutRequest, PaymentProvider, RefundError};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::state::AppState;
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

/// Stripe accepts a Checkout Session's `expires_at` from 30 minutes to 24 hours after the session's
/// creation (checked against Stripe's clock when the request arrives).
pub const SESSION_MIN_SECS: i64 = 30 * 60;
pub const SESSION_MAX_SECS: i64 = 24 * 3600;
/// Kept clear of both ends of that window, so that clock skew between this server and Stripe and the
/// request's transit time never push `expires_at` outside it.
pub const SESSION_MARGIN_SECS: i64 = 5 * 60;

/// The `expires_at` sent for a session created at `now` for an order whose seats are held until
/// `hold_expires_at`. The session may outlive a short hold (the hold sweeper then expires the session
/// through the API); it never outlives Stripe's 24 hours.
pub fn session_expires_at(hold_expires_at: i64, now: i64) -> i64 {
    hold_expires_at.clamp(now + SESSION_MIN_SECS + SESSION_MARGIN_SECS, now + SESSION_MAX_SECS - SESSION_MARGIN_SECS)
}

/// How a call to Stripe's API failed.
#[derive(Debug, thiserror::Error)]
enum CallError {
    /// No usable answer (connection, timeout, unreadable body): the request may or may not have run.
    #[error("Stripe request failed: {0}")]
    Network(String),
    /// Stripe answered with an error object.
    #[error("Stripe answered {status}: {message}")]
    Api { status: u16, code: Option<String>, message: String },
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        Error::Payment(e.to_string())
    }
}

impl Stripe {
    pub fn from_config(config: &Config) -> Option<Self> {
        let secret_key = config.stripe_secret_key.clone()?;
        Some(Self {
            secret_key,
            webhook_secret: config.stripe_webhook_secret.clone(),
            api_base: config.stripe_api_base.trim_end_matches('/').to_owned(),
            tolerance: config.stripe_webhook_tolerance,
            http: reqwest::Client::builder().timeout(HTTP_TIMEOUT).build().unwrap_or_default(),
        })
    }

    /// POSTs `form` (Stripe's bracket syntax, form-encoded) with the secret key and an idempotency key.
    async fn post_form(
        &self,
        path: &str,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> std::result::Result<serde_json::Value, CallError> {
        let resp = self
            .http
            .post(format!("{}{}", self.api_base, path))
            .bearer_auth(&self.secret_key)
            .header("Idempotency-Key", idempotency_key)
            .form(form)
            .send()
            .await
            .map_err(|e| CallError::Network(e.without_url().to_string()))?;
        let status = resp.status();
        let body: serde_json::Value =
            resp.json().await.map_err(|e| CallError::Network(format!("invalid JSON in the answer: {e}")))?;
        if !status.is_success() {
            return Err(CallError::Api {
                status: status.as_u16(),
                code: body["error"]["code"].as_str().map(str::to_owned),
                message: body["error"]["message"].as_str().unwrap_or("unknown error").to_owned(),
            });
        }
        Ok(body)
    }
}

/// Timeout of one call to Stripe's API. The refund worker's lease is longer (see `refunds`).
pub const HTTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

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
            let expires = session_expires_at(req.hold_expires_at, now());
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
            self.post_form(&path, &[], &format!("expire-{session_id}")).await.map(|_| ()).map_err(Error::from)
        })
    }

    fn refund<'a>(
        &'a self,
        payment_intent: &'a str,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, std::result::Result<Option<String>, RefundError>> {
        Box::pin(async move {
            let form = vec![("payment_intent".to_owned(), payment_intent.to_owned())];
            match self.post_form("/v1/refunds", &form, idempotency_key).await {
                Ok(body) => Ok(body["id"].as_str().map(str::to_owned)),
                Err(e @ CallError::Network(_)) => Err(RefundError::Retry(e.to_string())),
                Err(CallError::Api { code, .. }) if code.as_deref() == Some("charge_already_refunded") => {
                    Err(RefundError::AlreadyRefunded)
                }
                // 409: another request with this key is still running; 429: rate limited. Neither saved
                // a result under the key.
                Err(e @ CallError::Api { status: 409 | 429, .. }) => Err(RefundError::Retry(e.to_string())),
                Err(e @ CallError::Api { status: 500.., .. }) => Err(RefundError::RetryNewKey(e.to_string())),
                Err(e @ CallError::Api { .. }) => Err(RefundError::Permanent(e.to_string())),
            }
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
            // A cancelled order is never confirmed: its payment is recorded as a refund owed instead.
            check_session(&state, &order_id, obj).await?;
            let intent = obj["payment_intent"].as_str();
            let outcome = crate::orders::confirm_paid(&state, &order_id, intent).await?.unwrap_or("already_settled");
            if outcome == "refund_pending" {
                // Stripe wants a quick answer to its webhook: the refund call runs beside it (and, should
                // it never finish, the refund worker takes over).
                let (state, order_id) = (state.clone(), order_id.clone());
                tokio::spawn(async move {
                    if let Err(e) = super::refunds::attempt_for_order(&state, &order_id).await {
                        tracing::warn!(order = %order_id, error = %e, "refund attempt could not be recorded");
                    }
                });
            }
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
        ("charge.refunded", _) if obj["object"].as_str() == Some("charge") => {
            // Also fires for partial refunds (then `refunded` is false): the organizer refunded part of
            // the money by hand, and the tickets stay valid.
            if obj["refunded"].as_bool() == Some(true) {
                money_went_back(&state, &event.id, obj, "refunded").await?
            } else {
                record_event(&state, &event.id).await?;
                "ignored_partial_refund"
            }
        }
        ("charge.dispute.created", _) if obj["object"].as_str() == Some("dispute") => {
            money_went_back(&state, &event.id, obj, "disputed").await?
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
    new_status: &'static str,
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
        Some((order_id,)) => match crate::orders::close_order(state, &order_id, new_status, false).await {
            Ok(_) => new_status,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_expiry_stays_inside_stripes_window() {
        let now = 1_000_000;
        for hold in [now - 10, now + 1, now + 900, now + 3 * 3600, now + 3 * 86_400] {
            let e = session_expires_at(hold, now);
            assert!(
                e >= now + SESSION_MIN_SECS + SESSION_MARGIN_SECS && e <= now + SESSION_MAX_SECS - SESSION_MARGIN_SECS
            );
        }
        assert_eq!(session_expires_at(now + 3 * 3600, now), now + 3 * 3600);
    }

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
