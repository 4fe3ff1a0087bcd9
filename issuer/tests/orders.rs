//! Orders against a real server on a random port with a temporary SQLite file.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{eventually, start, start_with};
use reqwest::Method;
use scanner_core::{Keyring, RevocationList, VerifyContext};
use serde_json::{json, Value};

fn keyring_of(v: &str) -> Keyring {
    Keyring::from_json(v).expect("keyring parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_order_flow_with_demo_seed() {
    let app = start_with(|c| c.demo = true).await;
    // Public catalog with live availability.
    let (s, events) = app.get_json("/v1/events").await;
    assert_eq!(s, 200);
    let ev = &events[0];
    assert_eq!(ev["ticket_types"].as_array().unwrap().len(), 2);
    assert_eq!(ev["addons"].as_array().unwrap().len(), 2);
    let id = ev["id"].as_i64().unwrap();
    let before = ev["ticket_types"][0]["available"].as_i64().unwrap();

    // Free general admission with the (free) T-shirt add-on.
    let (s, order) = app
        .post(
            "/v1/orders",
            json!({"event_id":id,"name":"Ada Lovelace","email":"ada@example.org","items":[{"ticket_type":0,"quantity":2,"addons":[0]}]}),
        )
        .await;
    assert_eq!(s, 201, "{order}");
    assert_eq!(order["status"], "confirmed");
    let (_, ev) = app.get_json(&format!("/v1/events/{id}")).await;
    assert_eq!(ev["ticket_types"][0]["available"].as_i64().unwrap(), before - 2);

    // The order page (JSON and HTML) with the access token; nothing without it.
    let order_id = order["order_id"].as_str().unwrap();
    let token = order["token"].as_str().unwrap();
    let (s, view) = app.get_json(&format!("/v1/orders/{order_id}?token={token}")).await;
    assert_eq!(s, 200);
    let tickets = view["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 2);
    let (s, _) = app.get_json(&format!("/v1/orders/{order_id}?token=wrong")).await;
    assert_eq!(s, 404);
    let html = app.http.get(order["order_url"].as_str().unwrap()).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<svg") && html.contains("Ada Lovelace"));

    // Each ticket verifies against the published keyring.
    let ring = keyring_of(&app.http.get(app.url("/v1/keyring")).send().await.unwrap().text().await.unwrap());
    let now = issuer::util::now() as u64;
    let ctx = VerifyContext { keyring: &ring, revocations: None, event_id: id as u32, now };
    for t in tickets {
        let ticket = scanner_core::verify_text(t["qr_text"].as_str().unwrap(), &ctx).expect("ticket verifies");
        assert_eq!(ticket.ticket_type, 0);
        assert_eq!(ticket.addons, 0b1);
    }
    // The PNG QR decodes to the same ticket text.
    let png = app
        .http
        .get(app.url(&format!("/orders/{order_id}/tickets/0/qr.png?token={token}")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(common::decode_qr_png(&png).as_deref(), tickets[0]["qr_text"].as_str());

    // With no SMTP configured, the email lands as an .eml file in the data directory.
    let outbox = app.data_dir().join("outbox");
    let eml = eventually(Duration::from_secs(20), || {
        let outbox = outbox.clone();
        async move {
            std::fs::read_dir(&outbox)
                .ok()?
                .filter_map(|e| e.ok())
                .find(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .map(|e| e.path())
        }
    })
    .await
    .expect("an .eml file is written");
    let raw = std::fs::read(eml).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains(&format!("Message-ID: <tickets.{order_id}@localhost>"))
            || text.contains(&format!("Message-Id: <tickets.{order_id}@localhost>")),
        "{text}"
    );

    // Key file is 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = app.data_dir().join("keys/issuer-key-1.json");
        assert_eq!(std::fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    app.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_of_200_buyers_for_the_last_50_seats_sells_exactly_50() {
    let app = Arc::new(start().await);
    let event = app.event(1_000, 0).await;
    // Sell 950 first so that exactly 50 remain.
    for _ in 0..95 {
        let (s, v) = app.order(event, "Early", 10, "free").await;
        assert_eq!(s, 201, "{v}");
    }
    let mut tasks = Vec::new();
    for i in 0..200 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move { app.order(event, &format!("Buyer {i}"), 1, "free").await.0 }));
    }
    assert_eq!(common::tally_orders(tasks).await, (50, 150));
    let (_, ev) = app.get_json(&format!("/v1/events/{event}")).await;
    assert_eq!(ev["ticket_types"][0]["available"], 0);
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tickets WHERE event_id = $1")
        .bind(event)
        .fetch_one(&app.running.state.db.read)
        .await
        .unwrap();
    assert_eq!(count, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_puts_tickets_on_a_new_revocation_list_version() {
    let app = start().await;
    let event = app.event(10, 0).await;
    let (_, order) = app.order(event, "Refund Me", 2, "free").await;
    let order_id = order["order_id"].as_str().unwrap();
    let (_, view) = app.get_json(&format!("/v1/orders/{order_id}?token={}", order["token"].as_str().unwrap())).await;
    let qr: Vec<String> =
        view["tickets"].as_array().unwrap().iter().map(|t| t["qr_text"].as_str().unwrap().to_owned()).collect();

    // Scanner endpoints need a device token.
    let (s, _) = app.get_json("/v1/scanner/revocations").await;
    assert_eq!(s, 401);
    let device = app.device_token(event).await;
    let ring = keyring_of(&app.http.get(app.url("/v1/keyring")).send().await.unwrap().text().await.unwrap());
    let fetch = |since: u64| {
        let req = app.http.get(app.url(&format!("/v1/scanner/revocations?since={since}"))).bearer_auth(&device);
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let mut scanner_list = RevocationList::from_json(&fetch(0).await, &ring).unwrap();
    assert_eq!(scanner_list.version(), 0);

    // The manifest holds both tickets, readable only with their ids.
    let manifest_json = app
        .http
        .get(app.url(&format!("/v1/scanner/events/{event}/manifest")))
        .bearer_auth(&device)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!manifest_json.contains("Refund Me"));
    let manifest = scanner_core::manifest::Manifest::from_json(&manifest_json).unwrap();
    let ticket = scanner_core::SignedTicket::from_qr_text(&qr[0]).unwrap().ticket;
    let entry = manifest.lookup(&ticket.ticket_id).unwrap().expect("entry");
    assert_eq!(entry.holder_name, "Refund Me");
    assert_eq!(entry.addons, 1);

    let (s, r) = app.admin(Method::POST, &format!("/admin/v1/orders/{order_id}/refund"), None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["revocation_version"], 1);
    let (s, _) = app.admin(Method::POST, &format!("/admin/v1/orders/{order_id}/refund"), None).await;
    assert_eq!(s, 409);

    let delta = scanner_core::RevocationDelta::from_json(&fetch(0).await).unwrap();
    scanner_list.apply(&delta, &ring).unwrap();
    assert_eq!(scanner_list.version(), 1);
    let ctx =
        VerifyContext { keyring: &ring, revocations: Some(&scanner_list), event_id: event as u32, now: 2_000_000_000 };
    for q in &qr {
        assert_eq!(scanner_core::verify_text(q, &ctx), Err(scanner_core::Refusal::Revoked));
    }
    // Seats go back on sale, the manifest drops the tickets.
    let (_, ev) = app.get_json(&format!("/v1/events/{event}")).await;
    assert_eq!(ev["ticket_types"][0]["available"], 10);
    let manifest_json = app
        .http
        .get(app.url(&format!("/v1/scanner/events/{event}/manifest")))
        .bearer_auth(&device)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(scanner_core::manifest::Manifest::from_json(&manifest_json).unwrap().entries.len(), 0);

    // The list survives a restart (reloaded and verified at start).
    let dir = app.data_dir().to_owned();
    let tmp = app.dir;
    let mut config = issuer::Config::for_data_dir(&dir);
    config.database_url = app.running.state.config.database_url.clone();
    app.running.shutdown().await;
    config.email_backoff_ms = 200;
    let again = issuer::start(config).await.unwrap();
    assert_eq!(again.state.revocations.lock().await.version(), 1);
    again.shutdown().await;
    drop(tmp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_refused_or_escaped() {
    let app = start().await;
    let event = app.event(100, 0).await;
    for (name, expect) in [
        ("x".repeat(101), 422),
        ("Ada\u{0}".to_owned(), 422),
        ("Ada\r\nBcc: evil@example.org".to_owned(), 422),
        ("\u{202E}evil".to_owned(), 422),
        ("   ".to_owned(), 422),
    ] {
        let (s, v) = app.order(event, &name, 1, "free").await;
        assert_eq!(s, expect, "{name:?}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().starts_with("name:"), "{v}");
    }
    let (s, v) = app
        .post("/v1/orders", json!({"event_id":event,"name":"Ada","email":"ada@example.org>\r\nBcc: x@y.org","items":[{"ticket_type":0,"quantity":1}],"payment":"free"}))
        .await;
    assert_eq!(s, 422, "{v}");

    let evil = "<script>alert(1)</script>\"'&";
    let (s, order) = app.order(event, evil, 1, "free").await;
    assert_eq!(s, 201, "{order}");
    let html = app.http.get(order["order_url"].as_str().unwrap()).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;&amp;"));
    // The email HTML part escapes too.
    let view = issuer::orders::load_order(&app.running.state, order["order_id"].as_str().unwrap(), None).await.unwrap();
    let msg = issuer::email::build_message(&app.running.state.config, "http://x", &view, "http://x/o?a=1&b=2", "<m@x>")
        .unwrap();
    let raw = String::from_utf8(msg.formatted()).unwrap();
    let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes()).unwrap();
    let html_body = parsed.body_html(0).unwrap();
    assert!(!html_body.contains("<script>") && html_body.contains("&lt;script&gt;"));
    assert!(html_body.contains("a=1&amp;b=2"));

    // Hostile catalog names through the admin API too.
    let (s, _) = app
        .admin(
            Method::POST,
            "/admin/v1/events",
            Some(json!({"name":"a\u{7}b","venue":"v","starts_at":1,"ends_at":2,"timezone":"UTC"})),
        )
        .await;
    assert_eq!(s, 422);
    let (s, _) = app
        .admin(
            Method::POST,
            "/admin/v1/events",
            Some(json!({"name":"ok","venue":"v","starts_at":1,"ends_at":2,"timezone":"<b>"})),
        )
        .await;
    assert_eq!(s, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_and_oversized_bodies_get_clear_4xx() {
    let app = start().await;
    let event = app.event(10, 0).await;
    let send = |body: Vec<u8>, ct: &'static str| {
        let req = app.http.post(app.url("/v1/orders")).header("content-type", ct).body(body);
        async move {
            let r = req.send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, v) = send(b"{\"event_id\": 1, ".to_vec(), "application/json").await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("malformed JSON"), "{v}");
    let (s, v) = send(br#"{"event_id":"one"}"#.to_vec(), "application/json").await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("expected shape"), "{v}");
    let (s, _) = send(b"{}".to_vec(), "text/plain").await;
    assert_eq!(s, 415);
    let mut big = format!(r#"{{"event_id":{event},"name":""#).into_bytes();
    big.extend(std::iter::repeat_n(b'a', 200_000));
    big.extend_from_slice(br#"","email":"a@b.org","items":[]}"#);
    let (s, v) = send(big, "application/json").await;
    assert_eq!(s, 413, "{v}");
    assert_eq!(v["error"]["code"], "payload_too_large");
    // Quantities, unknown types, unknown fields.
    let (s, _) = app.post("/v1/orders", json!({"event_id":event,"name":"A","email":"a@b.org","items":[{"ticket_type":0,"quantity":0}],"payment":"free"})).await;
    assert_eq!(s, 422);
    let (s, _) = app.post("/v1/orders", json!({"event_id":event,"name":"A","email":"a@b.org","items":[{"ticket_type":7,"quantity":1}],"payment":"free"})).await;
    assert_eq!(s, 422);
    let (s, _) = app
        .post(
            "/v1/orders",
            json!({"event_id":event,"name":"A","email":"a@b.org","items":[],"payment":"free","admin":true}),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = app.post("/v1/orders", json!({"event_id":9999,"name":"A","email":"a@b.org","items":[{"ticket_type":0,"quantity":1}],"payment":"free"})).await;
    assert_eq!(s, 404);
    // Bad query string.
    let (s, _) = app.get_json("/v1/scanner/revocations?since=abc").await;
    assert!(s == 400 || s == 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_auth_limits_and_device_revocation() {
    let app = start().await;
    let r = app.http.post(app.url("/admin/v1/events")).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = app.http.post(app.url("/admin/v1/events")).bearer_auth("nope").json(&json!({})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let event = app.event(5, 0).await;
    for i in 1..16 {
        let (s, v) = app
            .admin(
                Method::POST,
                &format!("/admin/v1/events/{event}/addons"),
                Some(json!({"name":format!("A{i}"),"price_cents":0,"capacity":1})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["index"], i);
    }
    let (s, v) = app
        .admin(
            Method::POST,
            &format!("/admin/v1/events/{event}/addons"),
            Some(json!({"name":"A16","price_cents":0,"capacity":1})),
        )
        .await;
    assert_eq!(s, 409);
    assert!(v["error"]["message"].as_str().unwrap().contains("at most 16 add-ons"));
    // Paid tickets without Stripe configured: a clear error, or pay at the door.
    let paid = app.event(5, 2_500).await;
    let (s, v) = app
        .post(
            "/v1/orders",
            json!({"event_id":paid,"name":"A","email":"a@b.org","items":[{"ticket_type":0,"quantity":1}]}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = app.order(paid, "Door", 2, "at_door").await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["total_cents"], 5_000);
    // A revoked device loses access.
    let (_, d) = app.admin(Method::POST, "/admin/v1/devices", Some(json!({"name":"Gate","event":paid}))).await;
    let ok = app
        .http
        .get(app.url("/v1/scanner/revocations"))
        .bearer_auth(d["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let (s, _) =
        app.admin(Method::POST, &format!("/admin/v1/devices/{}/revoke", d["id"].as_str().unwrap()), None).await;
    assert_eq!(s, 204);
    let no = app
        .http
        .get(app.url("/v1/scanner/revocations"))
        .bearer_auth(d["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(no.status().as_u16(), 401);
}
