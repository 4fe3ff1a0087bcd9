//! The application state every handler and worker gets: the store, the configuration, the signing key,
//! the revocation list and the runtime parts of the order flow and the abuse limits.

use std::sync::Arc;

use scanner_core::{IssuerKey, Keyring, RevocationList};
use tokio::sync::{Mutex, Notify};

use crate::catalog::model::PricingCache;
use crate::config::Config;
use crate::db::Db;
use crate::limits::{OrderLimit, SearchLimit, TrustedProxies};
use crate::orders::queue::OrderQueue;
use crate::payments::Payments;

/// The signing key and the keyring it is published in.
pub struct Signer {
    pub key: IssuerKey,
    pub keyring: Keyring,
}

pub struct Inner {
    pub db: Db,
    pub config: Config,
    pub signer: Signer,
    /// The current revocation list; the lock also serialises publishing new versions.
    pub revocations: Mutex<RevocationList>,
    pub payments: Payments,
    /// Wakes the email worker when a job is enqueued.
    pub mail_wakeup: Notify,
    pub admin_token: String,
    /// Secret that order access tokens are derived from (DATA_DIR/link-secret, 0600).
    pub link_secret: Vec<u8>,
    pub public_url: String,
    /// Hands validated orders to the group committer.
    pub order_queue: OrderQueue,
    pub pricing: PricingCache,
    /// Per-client-IP budget for placing orders, shared by the JSON API and the order form; none when
    /// `--order-rate-per-minute 0`.
    pub order_limit: Option<Arc<OrderLimit>>,
    /// Per-device budget of the supervisors' attendee search.
    pub search_limit: SearchLimit,
    /// The Apple and Google Wallet signers the configuration turns on (keys read at start-up).
    pub wallet: crate::orders::wallet::keys::Wallet,
    /// This instance's copies of the events' redemption logs, kept in the store ([`crate::sync::store`]).
    pub sync_logs: crate::sync::logs::SyncLogs,
}

pub type AppState = Arc<Inner>;

impl axum::extract::FromRef<AppState> for TrustedProxies {
    fn from_ref(state: &AppState) -> Self {
        TrustedProxies(state.config.trusted_proxies.clone().into())
    }
}
