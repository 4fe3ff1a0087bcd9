//! Application state, startup (data directory, store, keys, demo seed, background workers) and the router.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use scanner_core::{IssuerKey, Keyring, RevocationList};
use tokio::sync::{watch, Mutex, Notify};
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::PeerIpKeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::ServeDir;

use crate::config::Config;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::payments::Payments;
use crate::{admin, catalog, email, keys, orders, payments, scanner, sync, util};

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
    pub order_queue: crate::order_queue::OrderQueue,
    pub pricing: crate::catalog::PricingCache,
    /// Per-client-IP budget for placing orders, shared by the JSON API and the order form; none when
    /// `--order-rate-per-minute 0`.
    pub order_limit: Option<Arc<OrderLimit>>,
    /// Per-device budget of the supervisors' attendee search.
    pub search_limit: crate::door::SearchLimit,
}

/// tower_governor's limiter keyed by the peer IP address (from `ConnectInfo`, so the server must be served
/// with `into_make_service_with_connect_info`). Behind a reverse proxy every client has the proxy's
/// address: put the limit in the proxy then, or raise this one.
pub type OrderLimit = GovernorConfig<PeerIpKeyExtractor, governor::middleware::NoOpMiddleware>;

pub type AppState = Arc<Inner>;

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir { path: std::path::PathBuf, source: std::io::Error },
    #[error(transparent)]
    Keys(#[from] keys::KeyFileError),
    #[error("store: {0}")]
    Store(#[from] Error),
    #[error("stored revocation list does not verify against the keyring: {0}")]
    Revocations(String),
    #[error("listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("email transport: {0}")]
    Mail(String),
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// `http://ADDR`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn admin_token(&self) -> &str {
        &self.state.admin_token
    }

    /// Stops accepting requests, lets the workers finish their current step and closes the store.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.state.db.close().await;
    }

    /// Waits until the server stops (after a shutdown signal on `shutdown_rx` of [`start`]).
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
        self.state.db.close().await;
    }

    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

fn admin_token(config: &Config) -> Result<String, StartError> {
    if let Some(t) = &config.admin_token {
        return Ok(t.clone());
    }
    let path = config.data_dir.join("admin-token");
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_owned()),
        _ => {
            let token = util::random_token(32);
            let _ = std::fs::remove_file(&path);
            keys::write_secret_new(&path, token.as_bytes())?;
            tracing::info!(path = %path.display(), "generated admin token (0600)");
            Ok(token)
        }
    }
}

fn link_secret(config: &Config) -> Result<Vec<u8>, StartError> {
    let path = config.data_dir.join("link-secret");
    match std::fs::read(&path) {
        Ok(s) if s.len() >= 32 => Ok(s),
        _ => {
            let secret = util::random_token(32).into_bytes();
            let _ = std::fs::remove_file(&path);
            keys::write_secret_new(&path, &secret)?;
            Ok(secret)
        }
    }
}

async fn load_revocations(db: &Db, keyring: &Keyring, key: &IssuerKey) -> Result<RevocationList, StartError> {
    let row: Option<(String,)> = sqlx::query_as("SELECT list_json FROM revocation_state WHERE id = 1")
        .fetch_optional(&db.read)
        .await
        .map_err(Error::from)?;
    match row {
        None => Ok(RevocationList::new()),
        Some((json,)) => match RevocationList::from_json(&json, keyring) {
            Ok(list) => Ok(list),
            // Stored before revocation heads carried their signing time: verified the old way, signed again.
            Err(scanner_core::revocation::RevocationError::NoSigningTime) => {
                let list = RevocationList::upgrade_legacy(&json, keyring, key, util::now() as u64)
                    .map_err(|e| StartError::Revocations(e.to_string()))?;
                sqlx::query("UPDATE revocation_state SET list_json = $1 WHERE id = 1")
                    .bind(list.to_json())
                    .execute(&db.write)
                    .await
                    .map_err(Error::from)?;
                tracing::info!(version = list.version(), "revocation list signed again with its signing time");
                Ok(list)
            }
            Err(e) => Err(StartError::Revocations(e.to_string())),
        },
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
        .period(period)
        .burst_size(config.order_rate_burst.max(1))
        // Every POST of the routers it wraps places an order (`POST /v1/orders`, `POST /events/{id}/order`);
        // reading events, orders and tickets is not limited.
        .methods(vec![Method::POST])
        .finish()
        .map(Arc::new)
}

/// The project's JSON error for a request the limiter refused: 429 with `Retry-After`.
fn rate_limited(e: GovernorError) -> Response {
    match e {
        GovernorError::TooManyRequests { wait_time, .. } => {
            // The limiter rounds the wait down to whole seconds; one more never sends a client back too early.
            let retry_after = wait_time.saturating_add(1);
            let body = serde_json::json!({"error": {
                "code": "rate_limited",
                "message": format!("too many orders from this address; try again in {retry_after} s"),
            }});
            let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            resp
        }
        GovernorError::UnableToExtractKey => {
            Error::internal("rate limit: no peer address (serve with into_make_service_with_connect_info)")
                .into_response()
        }
        GovernorError::Other { code, msg, .. } => {
            let body = serde_json::json!({"error": {"code": "rate_limited", "message": msg.unwrap_or_default()}});
            (code, axum::Json(body)).into_response()
        }
    }
}

/// A request body limit for a group of routes: axum's extractors (JSON, forms) and every raw body read
/// alike stop at `max` bytes, and a `Content-Length` over it is refused before the body is read. The
/// answer is the project's JSON error (413).
fn body_limit(routes: Router<AppState>, max: usize) -> Router<AppState> {
    routes.layer(DefaultBodyLimit::max(max)).layer(RequestBodyLimitLayer::new(max)).layer(
        axum::middleware::map_response(move |resp: Response| async move {
            // tower-http answers an oversized Content-Length itself, in plain text.
            let json =
                resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            if resp.status() == StatusCode::PAYLOAD_TOO_LARGE && !json {
                Error::PayloadTooLarge(max).into_response()
            } else {
                resp
            }
        }),
    )
}

/// Builds the router over `state`.
pub fn router(state: AppState) -> Router {
    let mut order_routes = orders::router();
    let mut page_routes = crate::pages::router();
    if let Some(limit) = &state.order_limit {
        // One budget (the same limiter) for both ways of placing an order.
        order_routes = order_routes.layer(GovernorLayer::new(limit.clone()).error_handler(rate_limited));
        page_routes = page_routes.layer(GovernorLayer::new(limit.clone()).error_handler(rate_limited));
    }
    // Every route gets the small default body limit but the two whose bodies legitimately run larger, which
    // keep their own: Stripe's webhook events and the scanners' redemption-log sync messages.
    let small = Router::new()
        .merge(catalog::router())
        .merge(order_routes)
        .merge(scanner::router())
        .merge(admin::router())
        .merge(crate::door::router())
        .merge(page_routes)
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    let mut api = body_limit(small, crate::extract::MAX_BODY_BYTES)
        .merge(body_limit(payments::router(), payments::stripe::MAX_WEBHOOK_BYTES))
        .merge(body_limit(sync::router(), sync::MAX_SYNC_BODY_BYTES))
        .with_state(state.clone());
    // Only the scanner PWA is served from files (the order pages and the dashboard are compiled in):
    // never the rest of web/, which holds tests and their node_modules.
    let scanner_dir = state.config.web_dir.join("scanner");
    if scanner_dir.is_dir() {
        api = api.nest_service("/scanner", ServeDir::new(scanner_dir));
    }
    api = api.fallback(|| async { Error::NotFound("page") });
    api
}

fn create_dir(path: &Path) -> Result<(), StartError> {
    std::fs::create_dir_all(path).map_err(|source| StartError::DataDir { path: path.to_owned(), source })
}

/// Starts the server: opens the store (running migrations), loads or creates the signing key, seeds the
/// demo event if asked, binds the listener and spawns the HTTP server, the email worker and the hold sweeper.
pub async fn start(config: Config) -> Result<Running, StartError> {
    create_dir(&config.data_dir)?;
    let key_dir = config.data_dir.join("keys");
    create_dir(&key_dir)?;
    let db = Db::open(&config.data_dir, config.sqlite_synchronous).await?;
    let (key, keyring) = keys::load_or_generate(&config.keyring_path(), &key_dir, util::now() as u64)?;
    tracing::info!(kid = key.key_id().0, "signing key loaded");
    let revocations = load_revocations(&db, &keyring, &key).await?;
    let admin_token = admin_token(&config)?;
    let link_secret = link_secret(&config)?;
    let mailer = email::Mailer::from_config(&config).map_err(|e| StartError::Mail(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| StartError::Bind { addr: config.bind, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.bind, source })?;
    let public_url =
        config.public_url.clone().unwrap_or_else(|| format!("http://{addr}")).trim_end_matches('/').to_owned();
    let payments = Payments::from_config(&config);
    let (order_queue, order_queue_rx) = crate::order_queue::channel();
    let order_limit = order_limit(&config);
    let state: AppState = Arc::new(Inner {
        db,
        signer: Signer { key, keyring },
        revocations: Mutex::new(revocations),
        payments,
        mail_wakeup: Notify::new(),
        admin_token,
        link_secret,
        public_url,
        order_queue,
        pricing: Default::default(),
        order_limit,
        search_limit: Default::default(),
        config,
    });
    if state.config.demo {
        catalog::seed_demo(&state).await?;
    }

    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let app = router(state.clone());
    let mut rx = shutdown_rx.clone();
    tasks.push(tokio::spawn(async move {
        let signal = async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        // The order rate limit is keyed by the peer address, which only ConnectInfo carries.
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(signal).await {
            tracing::error!(error = %e, "http server failed");
        }
    }));
    tasks.push(tokio::spawn(crate::order_queue::run(state.clone(), order_queue_rx, shutdown_rx.clone())));
    tasks.push(tokio::spawn(email::run_worker(state.clone(), mailer, shutdown_rx.clone())));
    tasks.push(tokio::spawn(payments::refunds::run_worker(state.clone(), shutdown_rx.clone())));
    if let Some(limit) = state.order_limit.clone() {
        tasks.push(tokio::spawn(forget_idle_clients(limit, shutdown_rx.clone())));
    }
    if state.config.edge_url.is_some() && state.config.edge_relay_token.is_some() && state.config.edge_relay_seconds > 0
    {
        tasks.push(tokio::spawn(crate::sync::run_edge_relay(state.clone(), shutdown_rx.clone())));
    }
    tasks.push(tokio::spawn(orders::run_hold_sweeper(state.clone(), shutdown_rx.clone(), Duration::from_millis(500))));
    tracing::info!(%addr, "issuer listening");
    Ok(Running { addr, state, shutdown, tasks })
}

/// Drops the limiter's state of addresses whose budget is full again, once a minute, so that the memory it
/// takes follows the clients of the last minutes rather than every address ever seen.
async fn forget_idle_clients(limit: Arc<OrderLimit>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        limit.limiter().retain_recent();
        limit.limiter().shrink_to_fit();
    }
}
