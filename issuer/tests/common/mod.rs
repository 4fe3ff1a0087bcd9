//! Shared helpers of the issuer's integration tests: a real server on a random port over a temporary
//! SQLite file or, with `ISSUER_TEST_POSTGRES=postgres://…` (scripts/postgres.sh run), a fresh database
//! of its own on that PostgreSQL server; an HTTP client, catalog setup and QR decoding.
//!
//! Tests that are SQLite-only by nature (the backup of the SQLite file, SQLite's `synchronous` setting)
//! carry `sqlite_only` in their name: the PostgreSQL pass of scripts/test.sh skips them by that name, so
//! they are not run (and not reported as passing) against PostgreSQL.
#![allow(dead_code)]

mod form;
mod stripe_fake;
pub mod sync;
pub mod twilio_fake;

use std::path::Path;
use std::time::{Duration, Instant};

use issuer::{Config, Running};
use serde_json::{json, Value};
#[allow(unused_imports)] // not every test binary asserts on the recorded calls
pub use stripe_fake::{Call as StripeCall, FakeStripe};

pub struct App {
    pub running: Running,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn,issuer=info").with_test_writer().try_init();
}

/// The PostgreSQL server the tests run against (`ISSUER_TEST_POSTGRES`), or None: SQLite.
pub fn test_postgres() -> Option<String> {
    std::env::var("ISSUER_TEST_POSTGRES").ok().filter(|u| !u.is_empty())
}

/// The store for one issuer under test: None on SQLite (the file in its data directory); on PostgreSQL a
/// new, empty database `t_<random>` on the test server, so that issuers never see each other's rows.
pub async fn fresh_database_url() -> Option<String> {
    use sqlx::Connection as _;
    let server = test_postgres()?;
    let name = format!("t_{:016x}", rand::random::<u64>());
    let mut conn = sqlx::postgres::PgConnection::connect(&server).await.expect("connect to ISSUER_TEST_POSTGRES");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create the test database");
    let _ = conn.close().await;
    let (base, _) = server.split_once('?').unwrap_or((&server, ""));
    let (server_root, _) = base.rsplit_once('/').expect("ISSUER_TEST_POSTGRES names a database");
    Some(format!("{server_root}/{name}"))
}

/// `--database-url URL` for an issuer process under test, or nothing (its data directory's SQLite file).
pub fn database_args(url: &Option<String>) -> Vec<String> {
    url.iter().flat_map(|u| ["--database-url".to_owned(), u.clone()]).collect()
}

pub async fn start_with(edit: impl FnOnce(&mut Config)) -> App {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::for_data_dir(dir.path().join("data"));
    config.database_url = fresh_database_url().await;
    config.email_backoff_ms = 200;
    config.email_backoff_max_ms = 1_000;
    edit(&mut config);
    let running = issuer::start(config).await.expect("issuer starts");
    App { running, dir, http: reqwest::Client::new() }
}

pub async fn start() -> App {
    start_with(|_| {}).await
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.running.url(), path)
    }

    pub fn data_dir(&self) -> &Path {
        &self.running.state.config.data_dir
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(self.running.admin_token());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self.http.post(self.url(path)).json(&body).send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = self.http.get(self.url(path)).send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Creates an event with one ticket type of `capacity` (price in cents) and one add-on. Returns its id.
    pub async fn event(&self, capacity: i64, price_cents: i64) -> i64 {
        let (s, v) = self
            .admin(
                reqwest::Method::POST,
                "/admin/v1/events",
                Some(json!({"name":"Test Night","venue":"Hall","starts_at":2_000_000_000i64,"ends_at":2_000_010_000i64,"timezone":"Europe/Berlin"})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let id = v["id"].as_i64().expect("event id");
        let (s, v) = self
            .admin(
                reqwest::Method::POST,
                &format!("/admin/v1/events/{id}/ticket-types"),
                // Pay at the door allowed: these events test orders, not the organizer's payment choices.
                Some(json!({"name":"Standard","price_cents":price_cents,"currency":"EUR","capacity":capacity,"at_door_allowed":true})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let (s, v) = self
            .admin(
                reqwest::Method::POST,
                &format!("/admin/v1/events/{id}/addons"),
                Some(json!({"name":"Drink","price_cents":0,"capacity":10_000})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        id
    }

    pub async fn order(&self, event: i64, name: &str, qty: i64, payment: &str) -> (u16, Value) {
        self.post(
            "/v1/orders",
            json!({"event_id":event,"name":name,"email":"buyer@example.org","items":[{"ticket_type":0,"quantity":qty,"addons":[0]}],"payment":payment}),
        )
        .await
    }

    /// A new scanner device's token, valid for `event` only.
    pub async fn device_token(&self, event: i64) -> String {
        let (s, v) =
            self.admin(reqwest::Method::POST, "/admin/v1/devices", Some(json!({"name":"Gate 1","event":event}))).await;
        assert_eq!(s, 201, "{v}");
        v["token"].as_str().expect("token").to_owned()
    }
}

/// Waits (at most 30 s) until an issuer process at `base` answers its health check.
/// Serves `app` on a free loopback port for the rest of the test; returns its base URL.
pub async fn serve_on_loopback(app: axum::Router, what: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind {what}: {e}"));
    let addr = listener.local_addr().expect("address");
    let what = what.to_owned();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap_or_else(|e| panic!("serve {what}: {e}")) });
    format!("http://{addr}")
}

pub async fn wait_up(http: &reqwest::Client, base: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("issuer did not come up");
}

/// Polls `f` until it returns Some or the timeout passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Decodes the QR code in a PNG with scanner-core's decoder (which has its own rqrr fallback pass).
pub fn decode_qr_png(png: &[u8]) -> Option<String> {
    let img = image::load_from_memory(png).ok()?.to_luma8();
    scanner_core::qr::decode::decode_luma(img.width() as usize, img.height() as usize, img.as_raw())
}

/// The Stripe fake for tests that only need an API base URL; it accepts the secret key `sk_test_x`. Tests
/// that assert on what Stripe received use [`FakeStripe`] directly.
pub async fn fake_stripe() -> String {
    FakeStripe::start("sk_test_x").await.url()
}

/// Makes a free event with one ticket type of `capacity` seats on the issuer process at `base` (admin
/// `token`), for the tests that run the issuer binary rather than in-process; returns the event's id.
pub async fn process_event(http: &reqwest::Client, base: &str, token: &str, name: &str, capacity: i64) -> i64 {
    let ev: Value = http
        .post(format!("{base}/admin/v1/events"))
        .bearer_auth(token)
        .json(&json!({"name": name, "venue": "V", "starts_at": 2_000_000_000i64, "ends_at": 2_000_010_000i64, "timezone": "UTC"}))
        .send()
        .await
        .expect("create the event")
        .json()
        .await
        .expect("event JSON");
    let event = ev["id"].as_i64().expect("event id");
    let r = http
        .post(format!("{base}/admin/v1/events/{event}/ticket-types"))
        .bearer_auth(token)
        .json(&json!({"name": "GA", "price_cents": 0, "currency": "EUR", "capacity": capacity}))
        .send()
        .await
        .expect("create the ticket type");
    assert_eq!(r.status().as_u16(), 201);
    event
}

/// Waits for racing order tasks and counts their answers: (201 created, 409 sold out). Any other status
/// fails the test.
pub async fn tally_orders(tasks: Vec<tokio::task::JoinHandle<u16>>) -> (usize, usize) {
    let (mut ok, mut sold_out) = (0, 0);
    for t in tasks {
        match t.await.expect("order task") {
            201 => ok += 1,
            409 => sold_out += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    (ok, sold_out)
}
