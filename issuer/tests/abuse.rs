//! Issue 11, selling: each protection tried as an attacker would, over HTTP against a real server and
//! SQLite file — pay at the door only where the organizer allows it (JSON API and order form), order rate
//! limits per client address (429 + Retry-After), the cap of tickets per email address per event under
//! concurrent orders, and request body limits (413). Expected figures are written down here (the demo's
//! prices, the configured limits), never read back from the server's answers.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{start, start_with, App};
use reqwest::redirect::Policy;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The demo event's prices and cap (catalog::seed_demo), written down independently.
const DEMO_EVENT: i64 = 1;
const GA: i64 = 0;
const VIP: i64 = 1;
const VIP_CENTS: i64 = 4_900;
const PARKING: i64 = 1;
const PARKING_CENTS: i64 = 1_000;
const DEMO_CAP: i64 = 10;

async fn count(app: &App, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&app.running.state.db.read).await.unwrap();
    n
}

async fn at_door(app: &App, email: &str, items: Value) -> (u16, Value) {
    app.post(
        "/v1/orders",
        json!({"event_id":DEMO_EVENT,"name":"Mallory","email":email,"items":items,"payment":"at_door"}),
    )
    .await
}

async fn set_at_door(app: &App, event: i64, index: i64, allowed: bool) {
    let (s, v) = app
        .admin(
            Method::PATCH,
            &format!("/admin/v1/events/{event}/ticket-types/{index}"),
            Some(json!({ "at_door_allowed": allowed })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn anonymous_pay_at_the_door_for_paid_tickets_is_refused_unless_the_organizer_allows_it() {
    let app = start_with(|c| c.demo = true).await;
    // The attack of the issue: 20 VIP tickets, anonymously, "paid at the door". Refused, nothing written.
    let (s, v) = at_door(&app, "mallory@example.org", json!([{"ticket_type":VIP,"quantity":20}])).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["code"], "invalid_field");
    assert_eq!(v["error"]["field"], "payment");
    assert!(v["error"]["message"].as_str().unwrap().contains("not offered for VIP"), "{v}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM tickets").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM email_jobs").await, 0);
    let (_, ev) = app.get_json(&format!("/v1/events/{DEMO_EVENT}")).await;
    assert_eq!(ev["ticket_types"][VIP as usize]["available"], 50, "no seat was held");
    assert_eq!(ev["ticket_types"][VIP as usize]["name"], "VIP");
    assert_eq!(ev["ticket_types"][VIP as usize]["at_door_allowed"], false, "off by default in the demo");
    assert_eq!(ev["ticket_types"][GA as usize]["at_door_allowed"], false);
    assert_eq!(ev["max_tickets_per_email"], DEMO_CAP);

    // A free ticket type with a paid add-on is a paid line too; so is a paid line beside a free one.
    let (s, v) = at_door(&app, "m2@example.org", json!([{"ticket_type":GA,"quantity":2,"addons":[PARKING]}])).await;
    assert_eq!((s, v["error"]["field"].clone()), (422, json!("payment")), "{v}");
    let (s, v) =
        at_door(&app, "m3@example.org", json!([{"ticket_type":GA,"quantity":1},{"ticket_type":VIP,"quantity":1}]))
            .await;
    assert_eq!((s, v["error"]["field"].clone()), (422, json!("payment")), "{v}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 0);
    // Nothing to collect: a free order marked at_door is just free.
    let (s, v) = at_door(&app, "free@example.org", json!([{"ticket_type":GA,"quantity":2}])).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["total_cents"], 0);

    // Only the organizer can turn it on.
    let resp = app
        .http
        .patch(app.url(&format!("/admin/v1/events/{DEMO_EVENT}/ticket-types/{VIP}")))
        .json(&json!({"at_door_allowed": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    set_at_door(&app, DEMO_EVENT, VIP, true).await;
    let (_, ev) = app.get_json(&format!("/v1/events/{DEMO_EVENT}")).await;
    assert_eq!(ev["ticket_types"][VIP as usize]["at_door_allowed"], true);

    let (s, v) = at_door(&app, "door@example.org", json!([{"ticket_type":VIP,"quantity":2}])).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["status"], "confirmed");
    assert_eq!(v["total_cents"], 2 * VIP_CENTS);
    let (s, v) = at_door(&app, "door2@example.org", json!([{"ticket_type":VIP,"quantity":2,"addons":[PARKING]}])).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["total_cents"], 2 * (VIP_CENTS + PARKING_CENTS));
    // General admission with paid parking is still not allowed at the door.
    let (s, v) = at_door(&app, "m4@example.org", json!([{"ticket_type":GA,"quantity":1,"addons":[PARKING]}])).await;
    assert_eq!((s, v["error"]["field"].clone()), (422, json!("payment")), "{v}");

    // Turned off again: refused again at once (the pricing cache is cleared by the change).
    set_at_door(&app, DEMO_EVENT, VIP, false).await;
    let (s, v) = at_door(&app, "door3@example.org", json!([{"ticket_type":VIP,"quantity":1}])).await;
    assert_eq!((s, v["error"]["field"].clone()), (422, json!("payment")), "{v}");

    // A ticket type created with it, through the admin API, says so in both catalogs.
    let (s, v) = app
        .admin(
            Method::POST,
            &format!("/admin/v1/events/{DEMO_EVENT}/ticket-types"),
            Some(json!({"name":"Door","price_cents":1500,"currency":"EUR","capacity":5,"at_door_allowed":true})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let door = v["index"].as_i64().unwrap();
    let (_, admin_events) = app.admin(Method::GET, "/admin/v1/events", None).await;
    assert_eq!(admin_events[0]["ticket_types"][door as usize]["at_door_allowed"], true);
    let (s, v) = at_door(&app, "door4@example.org", json!([{"ticket_type":door,"quantity":3}])).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["total_cents"], 3 * 1500);
}

// ---------------------------------------------------------------------------------------------------------
// The order form

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// The CSRF cookie and the form's hidden token of a freshly loaded event page, and the page.
async fn open_form(app: &App, event: i64) -> (String, String, String) {
    let resp = app.http.get(app.url(&format!("/events/{event}"))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let html = resp.text().await.unwrap();
    let token = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    (cookie, token, html)
}

async fn post_form(app: &App, event: i64, fields: &[(&str, &str)]) -> reqwest::Response {
    let (cookie, token, _) = open_form(app, event).await;
    let mut form: Vec<(&str, &str)> = vec![("csrf", &token)];
    form.extend_from_slice(fields);
    no_redirects()
        .post(app.url(&format!("/events/{event}/order")))
        .header("cookie", cookie)
        .header("origin", app.running.url())
        .form(&form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn order_form_offers_pay_at_the_door_only_where_allowed_and_checks_the_post() {
    let app = start_with(|c| c.demo = true).await;
    let (_, _, html) = open_form(&app, DEMO_EVENT).await;
    assert!(!html.contains("value=\"at_door\""), "no at-door choice in the demo: {html}");
    assert!(html.contains("Paid tickets cannot be ordered here"), "{html}");
    assert!(html.contains("data-index=\"1\" data-price=\"4900\" data-at-door=\"false\""), "{html}");

    // A hand-made post asking for it anyway: the form comes back with the reason, nothing is ordered.
    let fields = [("qty_1", "2"), ("name", "Mallory"), ("email", "m@example.org"), ("payment", "at_door")];
    let resp = post_form(&app, DEMO_EVENT, &fields).await;
    assert_eq!(resp.status(), 422);
    let html = resp.text().await.unwrap();
    assert!(html.contains("at the door is not offered for VIP tickets"), "{html}");
    assert!(html.contains("id=\"payment-error\""), "the error is on the payment field: {html}");
    // Without any payment choice: a clear message rather than a checkout that does not exist.
    let resp = post_form(&app, DEMO_EVENT, &[("qty_1", "2"), ("name", "Ada"), ("email", "a@example.org")]).await;
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("Paying online is not available here"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 0);

    // The organizer allows it for VIP: the form offers it, naming what it is for, and it works for VIP.
    set_at_door(&app, DEMO_EVENT, VIP, true).await;
    let (_, _, html) = open_form(&app, DEMO_EVENT).await;
    assert!(html.contains("value=\"at_door\" checked> Pay at the door (only for VIP tickets)"), "{html}");
    let resp = post_form(&app, DEMO_EVENT, &fields).await;
    assert_eq!(resp.status(), 303);
    assert!(resp.headers()["location"].to_str().unwrap().starts_with("/orders/ord_"));
    // ...but not for General admission with the paid parking.
    let ga_parking =
        [("qty_0", "1"), ("addons_0", "1"), ("name", "Mallory"), ("email", "m5@example.org"), ("payment", "at_door")];
    let resp = post_form(&app, DEMO_EVENT, &ga_parking).await;
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("at the door is not offered for General admission tickets"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 1);
}

// ---------------------------------------------------------------------------------------------------------
// Order rate limit per client address

#[tokio::test]
async fn orders_from_one_address_are_limited_with_429_and_a_truthful_retry_after() {
    // 60 a minute: one order back every second, after a burst of 3.
    let app = start_with(|c| {
        c.order_rate_per_minute = 60;
        c.order_rate_burst = 3;
    })
    .await;
    let event = app.event(100, 0).await;
    let (cookie, token, _) = open_form(&app, event).await;
    for i in 0..3 {
        let (s, v) = app.order(event, &format!("Buyer {i}"), 1, "free").await;
        assert_eq!(s, 201, "order {i} of the burst: {v}");
    }
    // The order form shares the budget with the JSON API.
    let form = [("csrf", token.as_str()), ("qty_0", "1"), ("name", "Form"), ("email", "f@example.org")];
    let resp = no_redirects()
        .post(app.url(&format!("/events/{event}/order")))
        .header("cookie", &cookie)
        .header("origin", app.running.url())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let resp = app
        .http
        .post(app.url("/v1/orders"))
        .json(&json!({"event_id":event,"name":"Spam","email":"victim@example.org","items":[{"ticket_type":0,"quantity":1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let retry_after: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "one order comes back within a second: Retry-After {retry_after}");
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("try again"), "{body}");

    // Refused orders wrote nothing and sent no mail; reading and the admin API are not limited.
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 3);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM email_jobs").await, 3);
    for _ in 0..5 {
        assert_eq!(app.get_json(&format!("/v1/events/{event}")).await.0, 200);
    }
    assert!(app.event(10, 0).await > event, "the admin API is not limited");

    // After Retry-After the client may order again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let (s, v) = app.order(event, "Patient", 1, "free").await;
    assert_eq!(s, 201, "{v}");
}

/// The binary with its default configuration, on a random port: the defaults are what production runs.
fn spawn_default_issuer(data: &std::path::Path, port: u16, db: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_issuer"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--admin-token", "abuse-test-token"])
        .arg("--data-dir")
        .arg(data)
        .args(db)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .env_remove("ISSUER_ORDER_RATE_PER_MINUTE")
        .env_remove("ISSUER_ORDER_RATE_BURST")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn issuer")
}

#[tokio::test]
async fn the_default_configuration_limits_orders_per_address() {
    const DEFAULT_BURST: u64 = 20;
    const DEFAULT_PER_MINUTE: u64 = 30;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let db = common::database_args(&common::fresh_database_url().await);
    let mut child = spawn_default_issuer(&dir.path().join("data"), port, &db);
    let http = reqwest::Client::new();
    let up = Instant::now();
    while !http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(up.elapsed() < Duration::from_secs(30), "issuer did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let admin =
        |path: &str, body: Value| http.post(format!("{base}{path}")).bearer_auth("abuse-test-token").json(&body).send();
    let ev: Value = admin(
        "/admin/v1/events",
        json!({"name":"N","venue":"V","starts_at":2_000_000_000i64,"ends_at":2_000_010_000i64,"timezone":"UTC"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let event = ev["id"].as_i64().unwrap();
    let r = admin(
        &format!("/admin/v1/events/{event}/ticket-types"),
        json!({"name":"GA","price_cents":0,"currency":"EUR","capacity":1000}),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let start = Instant::now();
    let (mut ok, mut limited) = (0u64, 0u64);
    for i in 0..30 {
        let body = json!({"event_id":event,"name":format!("B{i}"),"email":format!("b{i}@example.org"),"items":[{"ticket_type":0,"quantity":1}]});
        match http.post(format!("{base}/v1/orders")).json(&body).send().await.unwrap().status().as_u16() {
            201 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    let refilled = (start.elapsed().as_secs_f64() * DEFAULT_PER_MINUTE as f64 / 60.0).ceil() as u64;
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok >= DEFAULT_BURST && ok <= DEFAULT_BURST + refilled, "{ok} orders passed, {limited} limited");
    assert_eq!(ok + limited, 30);
}

// ---------------------------------------------------------------------------------------------------------
// Tickets per email address per event

async fn capped_event(app: &App, cap: i64) -> i64 {
    let (s, v) = app
        .admin(
            Method::POST,
            "/admin/v1/events",
            Some(json!({"name":"Capped","venue":"Hall","starts_at":2_000_000_000i64,"ends_at":2_000_010_000i64,
                        "timezone":"UTC","max_tickets_per_email":cap})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_i64().unwrap();
    let (s, v) = app
        .admin(
            Method::POST,
            &format!("/admin/v1/events/{id}/ticket-types"),
            Some(json!({"name":"GA","price_cents":0,"currency":"EUR","capacity":1000})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    id
}

/// Places `orders` (email, quantity) all at once; returns each one's status and body, in order.
async fn concurrently(app: &App, event: i64, orders: &[(String, i64)]) -> Vec<(u16, Value)> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(orders.len()));
    let mut handles = Vec::new();
    for (email, qty) in orders {
        let (email, qty) = (email.clone(), *qty);
        let (http, url, barrier) = (app.http.clone(), app.url("/v1/orders"), barrier.clone());
        handles.push(tokio::spawn(async move {
            let body =
                json!({"event_id":event,"name":"Hoarder","email":email,"items":[{"ticket_type":0,"quantity":qty}]});
            barrier.wait().await;
            let resp = http.post(url).json(&body).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

async fn tickets_of(app: &App, event: i64, like: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM tickets t JOIN orders o ON o.id = t.order_id
         WHERE o.event_id = $1 AND LOWER(o.customer_email) LIKE $2 AND o.status = 'confirmed'",
    )
    .bind(event)
    .bind(like)
    .fetch_one(&app.running.state.db.read)
    .await
    .unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ticket_cap_per_email_holds_under_concurrent_orders() {
    const CAP: i64 = 5;
    let app = start().await;
    let event = capped_event(&app, CAP).await;
    let (_, ev) = app.get_json(&format!("/v1/events/{event}")).await;
    assert_eq!(ev["max_tickets_per_email"], CAP);

    // Twelve one-ticket orders at the same moment, under spellings of one mailbox: exactly CAP pass.
    let spellings: Vec<(String, i64)> = (0..12)
        .map(|i| {
            let email = match i % 3 {
                0 => "Ada@Example.org".to_owned(),
                1 => format!("ada+{i}@example.org"),
                _ => "ADA@EXAMPLE.ORG".to_owned(),
            };
            (email, 1)
        })
        .collect();
    let results = concurrently(&app, event, &spellings).await;
    let passed = results.iter().filter(|(s, _)| *s == 201).count() as i64;
    let refused: Vec<&Value> = results.iter().filter(|(s, _)| *s == 409).map(|(_, v)| v).collect();
    assert_eq!(passed, CAP, "{results:?}");
    assert_eq!(refused.len() as i64, 12 - CAP, "{results:?}");
    for v in &refused {
        assert!(v["error"]["message"].as_str().unwrap().contains("at most 5 tickets per email address"), "{v}");
    }
    assert_eq!(tickets_of(&app, event, "ada%").await, CAP);

    // Two orders of 3 at once for a cap of 5: only one fits.
    let results = concurrently(&app, event, &[("bob@example.org".into(), 3), ("bob@example.org".into(), 3)]).await;
    let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    assert!(statuses.contains(&201) && statuses.contains(&409), "{statuses:?}");
    assert_eq!(tickets_of(&app, event, "bob%").await, 3);

    // Another address has its own cap; an order larger than the cap is refused outright.
    let (s, v) = app
        .post(
            "/v1/orders",
            json!({"event_id":event,"name":"C","email":"carol@example.org","items":[{"ticket_type":0,"quantity":6}]}),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = app
        .post(
            "/v1/orders",
            json!({"event_id":event,"name":"C","email":"carol@example.org","items":[{"ticket_type":0,"quantity":5}]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");

    // A cancelled order no longer counts: Ada may order one more, then no more.
    let ada_order = results_first_confirmed(&app, event, "ada%").await;
    let (s, v) = app.admin(Method::POST, &format!("/admin/v1/orders/{ada_order}/cancel"), None).await;
    assert!(s == 200 || s == 204, "{s} {v}");
    let ada = json!({"event_id":event,"name":"Ada","email":"ada@example.org","items":[{"ticket_type":0,"quantity":1}]});
    assert_eq!(app.post("/v1/orders", ada.clone()).await.0, 201);
    assert_eq!(app.post("/v1/orders", ada.clone()).await.0, 409);

    // The organizer can change the cap (validated) or lift it.
    let path = format!("/admin/v1/events/{event}");
    let (s, v) = app.admin(Method::PATCH, &path, Some(json!({"max_tickets_per_email": 0}))).await;
    assert_eq!((s, v["error"]["field"].clone()), (422, json!("max_tickets_per_email")), "{v}");
    let (s, v) = app.admin(Method::PATCH, &path, Some(json!({"max_tickets_per_email": null}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["max_tickets_per_email"], Value::Null);
    assert_eq!(app.post("/v1/orders", ada).await.0, 201);
}

async fn results_first_confirmed(app: &App, event: i64, like: &str) -> String {
    let (id,): (String,) = sqlx::query_as(
        "SELECT id FROM orders WHERE event_id = $1 AND LOWER(customer_email) LIKE $2 AND status = 'confirmed' LIMIT 1",
    )
    .bind(event)
    .bind(like)
    .fetch_one(&app.running.state.db.read)
    .await
    .unwrap();
    id
}

// ---------------------------------------------------------------------------------------------------------
// Request body limits

/// The limits as documented: 64 KiB for every JSON and form body, 256 KiB for Stripe's webhook.
const SMALL_LIMIT: usize = 64 * 1024;
const WEBHOOK_LIMIT: usize = 256 * 1024;

fn big_order(bytes: usize) -> String {
    format!(
        r#"{{"event_id":1,"name":"{}","email":"a@example.org","items":[{{"ticket_type":0,"quantity":1}}]}}"#,
        "x".repeat(bytes)
    )
}

/// Sends `body` in chunks without a Content-Length, over a raw connection; returns the status code.
async fn chunked_post(app: &App, path: &str, content_type: &str, body: &[u8]) -> u16 {
    let mut conn = tokio::net::TcpStream::connect(app.running.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n",
        app.running.addr
    );
    // The server may answer and close before all is sent: a failed write is expected then.
    let _ = conn.write_all(head.as_bytes()).await;
    for chunk in body.chunks(8 * 1024) {
        if conn.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_err()
            || conn.write_all(chunk).await.is_err()
            || conn.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = conn.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413_and_only_the_webhook_keeps_a_larger_limit() {
    let stripe = common::fake_stripe().await;
    let app = start_with(|c| {
        c.demo = true;
        c.stripe_secret_key = Some("sk_test_x".into());
        c.stripe_webhook_secret = Some("whsec_x".into());
        c.stripe_api_base = stripe;
    })
    .await;
    let expect_413 = |s: u16, v: &Value| {
        assert_eq!(s, 413, "{v}");
        assert_eq!(v["error"]["code"], "payload_too_large", "the project's JSON error: {v}");
    };
    // Public order endpoint, with a Content-Length over the limit...
    let resp = app
        .http
        .post(app.url("/v1/orders"))
        .header("content-type", "application/json")
        .body(big_order(SMALL_LIMIT + 1))
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    expect_413(s, &resp.json().await.unwrap_or(Value::Null));
    // ...and streamed without one.
    assert_eq!(chunked_post(&app, "/v1/orders", "application/json", big_order(SMALL_LIMIT * 4).as_bytes()).await, 413);
    // Just under the limit is read (and refused for what it says, not for its size).
    let resp = app
        .http
        .post(app.url("/v1/orders"))
        .header("content-type", "application/json")
        .body(big_order(SMALL_LIMIT - 200))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);

    // The order form.
    let (cookie, token, _) = open_form(&app, DEMO_EVENT).await;
    let filler = "y".repeat(SMALL_LIMIT);
    let form = [("csrf", token.as_str()), ("qty_0", "1"), ("name", filler.as_str()), ("email", "a@example.org")];
    let resp = no_redirects()
        .post(app.url(&format!("/events/{DEMO_EVENT}/order")))
        .header("cookie", cookie)
        .header("origin", app.running.url())
        .form(&form)
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    expect_413(s, &resp.json().await.unwrap_or(Value::Null));
    let form_body = format!("csrf=x&qty_0=1&name={}", "z".repeat(SMALL_LIMIT * 2));
    let status = chunked_post(
        &app,
        &format!("/events/{DEMO_EVENT}/order"),
        "application/x-www-form-urlencoded",
        form_body.as_bytes(),
    )
    .await;
    assert_eq!(status, 413);

    // An admin endpoint, authenticated.
    let big_event = json!({"name":"x".repeat(SMALL_LIMIT),"venue":"V","starts_at":2_000_000_000i64,
                           "ends_at":2_000_010_000i64,"timezone":"UTC"});
    let (s, v) = app.admin(Method::POST, "/admin/v1/events", Some(big_event)).await;
    expect_413(s, &v);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM events").await, 1, "only the demo event");

    // Stripe's webhook legitimately takes more: a 100 KiB event is read (and refused for its signature)...
    let webhook = |len: usize| {
        app.http
            .post(app.url("/v1/payments/stripe/webhook"))
            .header("stripe-signature", "t=1,v1=00")
            .header("content-type", "application/json")
            .body(format!(r#"{{"id":"evt_x","pad":"{}"}}"#, "p".repeat(len)))
            .send()
    };
    let resp = webhook(100 * 1024).await.unwrap();
    assert_eq!(resp.status().as_u16(), 400, "read, then refused for its signature");
    // ...but not past its own limit.
    let resp = webhook(WEBHOOK_LIMIT + 1).await.unwrap();
    let s = resp.status().as_u16();
    expect_413(s, &resp.json().await.unwrap_or(Value::Null));
}
