//! Startup (data directory, store, keys, demo seed, background workers) and the router that merges every
//! module's routes.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use scanner_core::{IssuerKey, Keyring, RevocationList};
use tokio::sync::{watch, Mutex, Notify};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::ServeDir;

use crate::config::Config;
use crate::db::Db;
use crate::error::{Error, Result, StartKind};
use crate::payments::Payments;
use crate::state::{AppState, Inner, Signer};
use crate::{
    admin, catalog, dashboard, door, edge, email, hub_tokens, keys, limits, orders, pages, payments, scanner, staff,
    sync, util,
};

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

fn admin_token(config: &Config) -> Result<String> {
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

fn link_secret(config: &Config) -> Result<Vec<u8>> {
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

async fn load_revocations(db: &Db, keyring: &Keyring, key: &IssuerKey) -> Result<RevocationList> {
    let row: Option<(String,)> = sqlx::query_as("SELECT list_json FROM revocation_state WHERE id = 1")
        .fetch_optional(&db.read)
        .await
        .map_err(|e| StartKind::Store(e.into()))?;
    match row {
        None => Ok(RevocationList::new()),
        Some((json,)) => match RevocationList::from_json(&json, keyring) {
            Ok(list) => Ok(list),
            // Stored before revocation heads carried their signing time: verified the old way, signed again.
            Err(scanner_core::Error::Revocation(scanner_core::error::RevocationKind::NoSigningTime)) => {
                let list = RevocationList::upgrade_legacy(&json, keyring, key, util::now() as u64)
                    .map_err(StartKind::Revocations)?;
                sqlx::query("UPDATE revocation_state SET list_json = $1 WHERE id = 1")
                    .bind(list.to_json())
                    .execute(&db.write)
                    .await
                    .map_err(|e| StartKind::Store(e.into()))?;
                tracing::info!(version = list.version(), "revocation list signed again with its signing time");
                Ok(list)
            }
            Err(e) => Err(StartKind::Revocations(e).into()),
        },
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

/// Builds the router over `state`: every module's routes, merged here and nowhere else.
pub fn router(state: AppState) -> Router {
    // Placing an order, through the JSON API or the order form, takes from one budget (the same limiter).
    let order_limit = state.order_limit.as_ref();
    // Every route gets the small default body limit but the two whose bodies legitimately run larger, which
    // keep their own: Stripe's webhook events and the scanners' redemption-log sync messages.
    let small = Router::new()
        .merge(catalog::router())
        .merge(limits::limit_orders(orders::router(), order_limit))
        .merge(limits::limit_orders(pages::router(), order_limit))
        .merge(dashboard::router())
        .merge(admin::router())
        .merge(scanner::router())
        .merge(edge::router())
        .merge(hub_tokens::router())
        .merge(door::router())
        .merge(staff::router())
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    let mut api = body_limit(small, crate::extract::MAX_BODY_BYTES)
        .merge(body_limit(payments::webhook::router(), payments::webhook::MAX_WEBHOOK_BYTES))
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

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|source| StartKind::DataDir { path: path.to_owned(), source }.into())
}

/// Starts the server: opens the store (running migrations), loads or creates the signing key, seeds the
/// demo event if asked, binds the listener and spawns the HTTP server, the email worker and the hold sweeper.
pub async fn start(config: Config) -> Result<Running> {
    create_dir(&config.data_dir)?;
    let key_dir = config.data_dir.join("keys");
    create_dir(&key_dir)?;
    let db = Db::open(config.database_url.as_deref(), &config.data_dir, config.sqlite_synchronous)
        .await
        .map_err(StartKind::Store)?;
    let (key, keyring) = keys::load_or_generate(&config.keyring_path(), &key_dir, util::now() as u64)?;
    tracing::info!(kid = key.key_id().0, "signing key loaded");
    // Already a start error (store or revocations).
    let revocations = load_revocations(&db, &keyring, &key).await?;
    let admin_token = admin_token(&config)?;
    let link_secret = link_secret(&config)?;
    let wallet = orders::wallet::keys::Wallet::from_config(&config)?;
    let mailer = email::Mailer::from_config(&config).map_err(StartKind::Mail)?;
    let sms = crate::sms::Twilio::from_config(&config).map_err(StartKind::Sms)?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| StartKind::Bind { addr: config.bind, source })?;
    let addr = listener.local_addr().map_err(|source| StartKind::Bind { addr: config.bind, source })?;
    let public_url =
        config.public_url.clone().unwrap_or_else(|| format!("http://{addr}")).trim_end_matches('/').to_owned();
    let payments = Payments::from_config(&config);
    let (order_queue, order_queue_rx) = orders::queue::channel();
    let order_limit = limits::order_limit(&config);
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
        wallet,
        sync_logs: Default::default(),
        config,
    });
    if state.config.demo {
        catalog::seed_demo(&state).await.map_err(StartKind::Store)?;
        staff::routes::seed_demo_owner(&state).await.map_err(StartKind::Store)?;
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
    tasks.push(tokio::spawn(orders::commit::run(state.clone(), order_queue_rx, shutdown_rx.clone())));
    tasks.push(tokio::spawn(email::run_worker(state.clone(), mailer, sms, shutdown_rx.clone())));
    tasks.push(tokio::spawn(catalog::changes::follow(state.clone(), shutdown_rx.clone())));
    tasks.push(tokio::spawn(payments::refunds::run_worker(state.clone(), shutdown_rx.clone())));
    if let Some(limit) = state.order_limit.clone() {
        tasks.push(tokio::spawn(limits::forget_idle_clients(limit, shutdown_rx.clone())));
    }
    if state.config.edge_url.is_some() && state.config.edge_relay_token.is_some() && state.config.edge_relay_seconds > 0
    {
        tasks.push(tokio::spawn(sync::run_edge_relay(state.clone(), shutdown_rx.clone())));
    }
    tasks.push(tokio::spawn(orders::reserve::run_hold_sweeper(
        state.clone(),
        shutdown_rx.clone(),
        Duration::from_millis(500),
    )));
    tracing::info!(%addr, "issuer listening");
    Ok(Running { addr, state, shutdown, tasks })
}
