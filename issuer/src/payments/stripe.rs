//! Stripe Checkout: a hosted payment page, confirmed by a webhook ([`super::webhook`]) verified exactly as
//! Stripe signs it.
//!
//! `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, where each `v1` is
//! HMAC-SHA256(webhook secret, "<t>.<raw body>"). An event is accepted only if one `v1` matches (compared in
//! constant time) and `t` is within the tolerance of now. Processing is idempotent: the event id is recorded
//! in the same transaction that confirms the order, and confirming an already confirmed order does nothing.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::provider::{BoxFuture, Checkout, CheckoutRequest, PaymentProvider};
use crate::config::Config;
use crate::error::{Error, PaymentKind, RefundKind, Result, SignatureKind};
use crate::util::now;

pub struct Stripe {
    secret_key: String,
    pub(super) webhook_secret: Option<String>,
    api_base: String,
    pub(super) tolerance: u64,
    http: reqwest::Client,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe").field("api_base", &self.api_base).finish_non_exhaustive()
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
pub fn verify_signature(payload: &[u8], header: &str, secret: &str, tolerance: u64, now: i64) -> Result<()> {
    let mut t: Option<i64> = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or(SignatureKind::Malformed)?;
        match k {
            "t" => t = Some(v.parse().map_err(|_| SignatureKind::Malformed)?),
            "v1" => {
                if let Ok(bytes) = hex::decode(v) {
                    sigs.push(bytes);
                }
            }
            _ => {} // v0 and future schemes are ignored, as Stripe's libraries do.
        }
    }
    let t = t.ok_or(SignatureKind::Malformed)?;
    if sigs.is_empty() {
        return Err(SignatureKind::Mismatch.into());
    }
    if now.abs_diff(t) > tolerance {
        return Err(SignatureKind::Timestamp.into());
    }
    if sigs.iter().any(|s| mac(secret, t, payload).verify_slice(s).is_ok()) {
        Ok(())
    } else {
        Err(SignatureKind::Mismatch.into())
    }
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
    ) -> std::result::Result<serde_json::Value, PaymentKind> {
        let resp = self
            .http
            .post(format!("{}{}", self.api_base, path))
            .bearer_auth(&self.secret_key)
            .header("Idempotency-Key", idempotency_key)
            .form(form)
            .send()
            .await
            .map_err(|e| PaymentKind::Network(e.without_url().to_string()))?;
        let status = resp.status();
        let body: serde_json::Value =
            resp.json().await.map_err(|e| PaymentKind::Network(format!("invalid JSON in the answer: {e}")))?;
        if !status.is_success() {
            return Err(PaymentKind::Api {
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
                _ => Err(PaymentKind::NoCheckoutSession.into()),
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
        amount: Option<i64>,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let mut form = vec![("payment_intent".to_owned(), payment_intent.to_owned())];
            // Stripe's partial refund: `amount` in the charge's smallest currency unit; without it, Stripe
            // refunds whatever of the charge is not refunded yet.
            if let Some(amount) = amount {
                form.push(("amount".to_owned(), amount.to_string()));
            }
            let refused = match self.post_form("/v1/refunds", &form, idempotency_key).await {
                Ok(body) => return Ok(body["id"].as_str().map(str::to_owned)),
                Err(e @ PaymentKind::Network(_)) => RefundKind::Retry(e.to_string()),
                Err(PaymentKind::Api { code, .. }) if code.as_deref() == Some("charge_already_refunded") => {
                    RefundKind::AlreadyRefunded
                }
                // 409: another request with this key is still running; 429: rate limited. Neither saved
                // a result under the key.
                Err(e @ PaymentKind::Api { status: 409 | 429, .. }) => RefundKind::Retry(e.to_string()),
                Err(e @ PaymentKind::Api { status: 500.., .. }) => RefundKind::RetryNewKey(e.to_string()),
                // Refused for good (bad request, unknown payment, disputed charge): a person has to look.
                Err(e @ PaymentKind::Api { .. }) => RefundKind::Permanent(e.to_string()),
                // post_form makes neither; should it, retrying under the same key is what cannot refund twice.
                Err(e @ (PaymentKind::NotConfigured | PaymentKind::NoCheckoutSession)) => {
                    RefundKind::Retry(e.to_string())
                }
            };
            Err(refused.into())
        })
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
        // The refusal's kind, `None` for an accepted signature.
        let refusal = |payload: &[u8], header: &str, secret: &str, now: i64| match verify_signature(
            payload, header, secret, 300, now,
        ) {
            Ok(()) => None,
            Err(Error::Signature(kind)) => Some(kind),
            Err(other) => panic!("not a signature refusal: {other}"),
        };
        assert_eq!(refusal(body, &h, "whsec_x", 1100), None);
        assert_eq!(refusal(body, &h, "whsec_y", 1100), Some(SignatureKind::Mismatch));
        assert_eq!(refusal(b"{}", &h, "whsec_x", 1100), Some(SignatureKind::Mismatch));
        assert_eq!(refusal(body, &h, "whsec_x", 1301), Some(SignatureKind::Timestamp));
        assert_eq!(refusal(body, "garbage", "whsec_x", 1000), Some(SignatureKind::Malformed));
        // Several v1 entries (secret rotation): any match is enough.
        let two = format!("t=1000,v1=00,{}", h.split(',').nth(1).unwrap());
        assert_eq!(refusal(body, &two, "whsec_x", 1000), None);
    }
}
