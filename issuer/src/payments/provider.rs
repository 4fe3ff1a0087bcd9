//! What a payment provider is: settle at order time, or a hosted checkout confirmed later, with expiry and
//! refunds ([`PaymentProvider`]), and the offline one (free tickets, pay at the door).

use std::future::Future;
use std::pin::Pin;

use crate::error::{Error, Result};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a hosted checkout needs to know about an order.
#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    pub order_id: String,
    pub currency: String,
    pub total_cents: i64,
    pub customer_email: String,
    /// (name, unit price in minor units, quantity)
    pub lines: Vec<(String, i64, i64)>,
    pub success_url: String,
    pub cancel_url: String,
    pub hold_expires_at: i64,
}

/// A started hosted checkout.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub session_id: String,
    pub url: String,
}

pub trait PaymentProvider: Send + Sync {
    /// Stored in `orders.payment_method`.
    fn method(&self) -> &'static str;
    /// Whether the order is confirmed (and its tickets issued) when it is placed.
    fn settles_at_order(&self) -> bool;
    /// Starts a hosted checkout (only called when `settles_at_order` is false).
    fn checkout<'a>(&'a self, req: &'a CheckoutRequest) -> BoxFuture<'a, Result<Checkout>>;
    /// Expires a checkout whose hold ran out, so it can no longer be paid.
    fn expire<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Pays back a settled payment (`payment_ref` as recorded by the webhook): `amount` minor units of it
    /// (one ticket's share), or with `None` everything not refunded yet. The same `idempotency_key` is
    /// sent on every retry, so the provider executes the refund at most once per key. `Ok` carries the
    /// provider's refund id, if it has one; a failure is an [`Error::Refund`] whose kind tells the refund
    /// worker what to do next.
    fn refund<'a>(
        &'a self,
        payment_ref: &'a str,
        amount: Option<i64>,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>>>;
}

/// Free tickets and pay-at-the-door: settle at once; nothing to refund online.
pub struct Offline {
    pub(super) method: &'static str,
}

impl PaymentProvider for Offline {
    fn method(&self) -> &'static str {
        self.method
    }
    fn settles_at_order(&self) -> bool {
        true
    }
    fn checkout<'a>(&'a self, _req: &'a CheckoutRequest) -> BoxFuture<'a, Result<Checkout>> {
        Box::pin(async { Err(Error::internal("offline payments have no checkout")) })
    }
    fn expire<'a>(&'a self, _session_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn refund<'a>(
        &'a self,
        _payment_ref: &'a str,
        _amount: Option<i64>,
        _idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async { Ok(None) })
    }
}
