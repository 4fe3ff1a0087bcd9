//! The abuse limits: the per-client-address budget for placing orders (the JSON API and the order form
//! share it) and the per-device budget of the supervisors' attendee search. Both answer 429 with
//! `Retry-After` in the project's JSON error.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use scanner_core::wire::ErrorBody;
use tokio::sync::watch;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

use crate::config::Config;
use crate::error::{Error, Result};

/// Searches one device may make per minute (also the burst).
pub const SEARCH_RATE_PER_MINUTE: u32 = 30;

/// tower_governor's limiter keyed by the client's IP address ([`client_ip`]: the peer address from
/// `ConnectInfo`, so the server must be served with `into_make_service_with_connect_info`, or the address a
/// trusted reverse proxy forwarded).
pub type OrderLimit = GovernorConfig<ClientIpKeyExtractor, governor::middleware::NoOpMiddleware>;

/// Most `X-Forwarded-For` entries looked at (a bound on work for a hostile header).
const MAX_FORWARDED_HOPS: usize = 16;

/// The address a per-client limit is keyed by: the TCP peer, unless the peer is one of the configured
/// trusted reverse proxies (`--trusted-proxies`); then the right-most `X-Forwarded-For` address that is
/// not itself a trusted proxy. Right-most, because each proxy appends the address it received the
/// connection from: entries to the left of the last untrusted one were written by the client and prove
/// nothing. A missing or unparsable header from a trusted proxy keys by the proxy (one shared budget, never
/// a client-chosen one).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    hops.reverse();
    for hop in hops.into_iter().take(MAX_FORWARDED_HOPS) {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return ip,
            Err(_) => return peer,
        }
    }
    peer
}

/// The configured trusted proxies (`--trusted-proxies`), taken from the application state by
/// [`ClientIp`] (the state provides it with `FromRef`, so this module needs nothing else of the state).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Arc<[IpAddr]>);

/// [`client_ip`] as an axum extractor, for handlers that keep their own per-address budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S> FromRequestParts<S> for ClientIp
where
    S: Send + Sync,
    TrustedProxies: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .ok_or_else(|| Error::internal("no peer address (serve with into_make_service_with_connect_info)"))?
            .0
            .ip();
        let trusted = TrustedProxies::from_ref(state);
        Ok(ClientIp(client_ip(peer, &parts.headers, &trusted.0)))
    }
}

/// tower_governor's key: [`client_ip`].
#[derive(Debug, Clone)]
pub struct ClientIpKeyExtractor {
    trusted: Arc<[IpAddr]>,
}

impl KeyExtractor for ClientIpKeyExtractor {
    type Key = IpAddr;

    fn extract<T>(&self, req: &axum::http::Request<T>) -> std::result::Result<IpAddr, GovernorError> {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or(GovernorError::UnableToExtractKey)?;
        Ok(client_ip(peer, req.headers(), &self.trusted))
    }
}

/// The order budget per client IP address from the configuration; `None` when it is turned off.
pub fn order_limit(config: &Config) -> Option<Arc<OrderLimit>> {
    if config.order_rate_per_minute == 0 {
        return None;
    }
    // One order's worth of budget comes back every 60 s / rate (at least 1 ms: the limiter refuses zero).
    let period = Duration::from_micros((60_000_000 / u64::from(config.order_rate_per_minute)).max(1_000));
    GovernorConfigBuilder::default()
        .key_extractor(ClientIpKeyExtractor { trusted: config.trusted_proxies.clone().into() })
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
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let mut headers = HeaderMap::new();
        // The client wrote the left entry itself; the proxy appended the address it saw.
        headers.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.1, 203.0.113.7"));
        assert_eq!(client_ip(proxy, &headers, &[proxy]), client);
        // The same header from anyone but a trusted proxy is ignored.
        let stranger: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(client_ip(stranger, &headers, &[proxy]), stranger);
        assert_eq!(client_ip(proxy, &headers, &[]), proxy, "no proxies configured: the peer");
        // Two proxies in a row: the right-most untrusted address.
        let inner: IpAddr = "10.0.0.2".parse().unwrap();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7, 10.0.0.2"));
        assert_eq!(client_ip(proxy, &headers, &[proxy, inner]), client);
        // Garbage or no header from the proxy: the proxy's own address, never a client-chosen one.
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7, not-an-ip"));
        assert_eq!(client_ip(proxy, &headers, &[proxy]), proxy);
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &[proxy]), proxy);
    }

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
