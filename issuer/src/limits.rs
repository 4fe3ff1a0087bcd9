//! The abuse limits: the per-client-address budget for placing orders (the JSON API and the order form
//! share it) and the per-device budget of the supervisors' attendee search. Both answer 429 with
//! `Retry-After` in the project's JSON error.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use scanner_core::wire::ErrorBody;
use tokio::sync::watch;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::PeerIpKeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

use crate::config::Config;
use crate::error::{Error, Result};

/// Searches one device may make per minute (also the burst).
pub const SEARCH_RATE_PER_MINUTE: u32 = 30;

/// tower_governor's limiter keyed by the peer IP address (from `ConnectInfo`, so the server must be served
/// with `into_make_service_with_connect_info`). Behind a reverse proxy every client has the proxy's
/// address: put the limit in the proxy then, or raise this one.
pub type OrderLimit = GovernorConfig<PeerIpKeyExtractor, governor::middleware::NoOpMiddleware>;

/// The order budget per client IP address from the configuration; `None` when it is turned off.
pub fn order_limit(config: &Config) -> Option<Arc<OrderLimit>> {
    if config.order_rate_per_minute == 0 {
        return None;
    }
    // One order's worth of budget comes back every 60 s / rate (at least 1 ms: the limiter refuses zero).
    let period = Duration::from_micros((60_000_000 / u64::from(config.order_rate_per_minute)).max(1_000));
    GovernorConfigBuilder::default()
        .period(period)
        .burst_size(config.order_rate_burst.max(1))
        // Every POST of the routers it wraps places an order (`POST /v1/orders`, `POST /events/{id}/order`);
        // reading events, orders and tickets is not limited.
        .methods(vec![Method::POST])
        .finish()
        .map(Arc::new)
}

/// `routes` behind the order budget, if there is one. Every router wrapped with the same `limit` shares
/// one budget.
pub fn limit_orders<S: Clone + Send + Sync + 'static>(routes: Router<S>, limit: Option<&Arc<OrderLimit>>) -> Router<S> {
    match limit {
        Some(limit) => routes.layer(GovernorLayer::new(limit.clone()).error_handler(rate_limited)),
        None => routes,
    }
}

/// The project's JSON error for a request the limiter refused: 429 with `Retry-After`.
fn rate_limited(e: GovernorError) -> Response {
    match e {
        GovernorError::TooManyRequests { wait_time, .. } => {
            // The limiter rounds the wait down to whole seconds; one more never sends a client back too early.
            let retry_after = wait_time.saturating_add(1);
            let body = ErrorBody::new(
                "rate_limited",
                format!("too many orders from this address; try again in {retry_after} s"),
            );
            let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            resp
        }
        GovernorError::UnableToExtractKey => {
            Error::internal("rate limit: no peer address (serve with into_make_service_with_connect_info)")
                .into_response()
        }
        GovernorError::Other { code, msg, .. } => {
            (code, axum::Json(ErrorBody::new("rate_limited", msg.unwrap_or_default()))).into_response()
        }
    }
}

/// Drops the limiter's state of addresses whose budget is full again, once a minute, so that the memory it
/// takes follows the clients of the last minutes rather than every address ever seen.
pub async fn forget_idle_clients(limit: Arc<OrderLimit>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        limit.limiter().retain_recent();
        limit.limiter().shrink_to_fit();
    }
}

/// The per-device search budget (keyed by the device's id; devices are few, made one by one by the
/// organizer, so the limiter's state stays small).
pub struct SearchLimit {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl Default for SearchLimit {
    fn default() -> Self {
        let per_minute = NonZeroU32::new(SEARCH_RATE_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Self { limiter: DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_minute)) }
    }
}

impl SearchLimit {
    /// Takes one search from `device`'s budget, or says when the next one is allowed.
    pub fn check(&self, device: &str) -> Result<()> {
        match self.limiter.check_key(&device.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                // Rounded up: a client that waits this long is never sent back again.
                let retry_after_secs = not_until.wait_time_from(DefaultClock::default().now()).as_secs() + 1;
                Err(Error::RateLimited {
                    message: format!(
                        "too many searches from this device (at most {SEARCH_RATE_PER_MINUTE} a minute); try again \
                         in {retry_after_secs} s"
                    ),
                    retry_after_secs,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_gets_its_budget_then_429() {
        let limit = SearchLimit::default();
        for _ in 0..SEARCH_RATE_PER_MINUTE {
            assert!(limit.check("dev_a").is_ok());
        }
        assert!(
            matches!(limit.check("dev_a"), Err(Error::RateLimited { retry_after_secs, .. }) if retry_after_secs >= 1)
        );
        assert!(limit.check("dev_b").is_ok(), "each device has its own budget");
    }
}
