//! The payment seam. A [`PaymentProvider`] either settles at order time (free tickets, pay at the door:
//! tickets are issued in the order's own transaction) or sends the customer to a hosted checkout and
//! confirms later through a verified webhook (Stripe Checkout). No card data ever reaches this server.

pub mod provider;
pub mod refunds;
pub mod stripe;
pub mod webhook;

use std::sync::Arc;

use self::provider::{Offline, PaymentProvider};
use crate::config::Config;
use crate::error::{Error, Result};

/// The configured providers.
pub struct Payments {
    free: Arc<dyn PaymentProvider>,
    at_door: Arc<dyn PaymentProvider>,
    stripe: Option<Arc<stripe::Stripe>>,
}

impl Payments {
    pub fn from_config(config: &Config) -> Self {
        Self {
            free: Arc::new(Offline { method: "free" }),
            at_door: Arc::new(Offline { method: "at_door" }),
            stripe: stripe::Stripe::from_config(config).map(Arc::new),
        }
    }

    pub fn stripe(&self) -> Option<&stripe::Stripe> {
        self.stripe.as_deref()
    }

    /// The provider for a new order: `free` only for a zero total; default `stripe` for a paid one.
    pub fn select(&self, requested: Option<&str>, total_cents: i64) -> Result<Arc<dyn PaymentProvider>> {
        match (requested, total_cents) {
            (None | Some("free"), 0) => Ok(self.free.clone()),
            (Some("free"), _) => Err(Error::validation("payment", "this order is not free")),
            (Some("at_door"), _) => Ok(self.at_door.clone()),
            (None | Some("stripe"), _) => match &self.stripe {
                Some(s) => Ok(s.clone()),
                None => Err(Error::validation("payment", "online payment is not configured; choose at_door")),
            },
            (Some(_), _) => Err(Error::validation("payment", "must be one of free, at_door, stripe")),
        }
    }

    pub fn by_method(&self, method: &str) -> Result<Arc<dyn PaymentProvider>> {
        match method {
            "free" => Ok(self.free.clone()),
            "at_door" => Ok(self.at_door.clone()),
            "stripe" => self
                .stripe
                .clone()
                .map(|s| s as Arc<dyn PaymentProvider>)
                .ok_or_else(|| crate::error::PaymentKind::NotConfigured.into()),
            _ => Err(Error::internal("unknown payment method")),
        }
    }
}
