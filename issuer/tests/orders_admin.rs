//! The back office's order tools over HTTP against a real issuer (SQLite, the Stripe fake, a real SMTP
//! server): single-ticket refunds and cancellations, holder names (per ticket at order time, edited
//! afterwards and re-sealed in the manifest), resending tickets, the "lost your tickets?" mail and the CSV
//! exports.

mod common;

use std::time::Duration;

use common::{eventually, start_with, FakeStripe};
use mail_parser::MessageParser;
use reqwest::Method;
use scanner_core::manifest::{open_entry, Manifest};
use scanner_core::{Keyring, Ticket, VerifyContext};
use serde_json::{json, Value};
use smtp_support as smtp;

#[path = "common/smtp.rs"]
mod smtp_support;

const KEY: &str = "sk_test_orders_admin";
const WHSEC: &str = "whsec_orders_admin";
const TICKET_PRICE: i64 = 2_500;
const ADDON_PRICE: i64 = 700;
/// When the tickets are checked: inside the test events' validity.
const DURING_EVENT: u64 = 2_000_000_100;

async fn event_with(app: &common::App, price: i64, addon_price: i64, capacity: i64) -> i64 {
    let (s, v) = app
        .admin(
            Method::POST,
            "/admin/v1/events",
            Some(json!({"name":"Back Office Night","venue":"Hall","starts_at":2_000_000_000i64,
                        "ends_at":2_000_010_000i64,"timezone":"UTC"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let event = v["id"].as_i64().unwrap();
    let (s, v) = app
        .admin(
            Method::POST,
            &format!("/admin/v1/events/{event}/ticket-types"),
                        // Pay at the door allowed, for orders that need no payment provider.
            Some(json!({"name":"Standard","price_cents":price,"currency":"EUR","capacity":capacity,"at_door_allowed":true})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = app
        .admin(
            Method::POST,
            &format!("/admin/v1/events/{event}/addons"),
            Some(json!({"name":"Parking","price_cents":addon_price,"capacity":100})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    event
}

/// The customer's view of an order (with its QR texts), through the order link's token.
async fn customer_view(app: &common::App, order: &Value) -> Value {
    let id = order["order_id"].as_str().unwrap();
    let token = order["token"].as_str().unwrap();
    let (s, v) = app.get_json(&format!("/v1/orders/{id}?token={token}")).await;
    assert_eq!(s, 200, "{v}");
    v
}

fn tickets_of(view: &Value, ring: &Keyring, event: i64) -> Vec<Ticket> {
    let ctx = VerifyContext { keyring: ring, revocations: None, event_id: event as u32, now: DURING_EVENT };
    view["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| scanner_core::verify_text(t["qr_text"].as_str().unwrap(), &ctx).expect("issued ticket verifies"))
        .collect()
}

async fn reserved(app: &common::App, event: i64) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT reserved FROM ticket_types WHERE event_id = $1 AND idx = 0),
                (SELECT reserved FROM addons WHERE event_id = $1 AND idx = 0)",
    )
    .bind(event)
    .fetch_one(&app.running.state.db.read)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunding_one_ticket_revokes_it_refunds_its_share_and_releases_its_seat() {
    let stripe = FakeStripe::start(KEY).await;
    let api = stripe.url();
    let app = start_with(|c| {
        c.stripe_secret_key = Some(KEY.into());
        c.stripe_webhook_secret = Some(WHSEC.into());
        c.stripe_api_base = api;
    })
    .await;
    let event = event_with(&app, TICKET_PRICE, ADDON_PRICE, 5).await;
    let (s, order) = app
        .post(
            "/v1/orders",
            json!({"event_id":event,"name":"Ada Payer","email":"ada@example.org","payment":"stripe",
                   "items":[{"ticket_type":0,"quantity":2,"addons":[0],"holders":["Ada Payer","Grace Friend"]}]}),
        )
        .await;
    assert_eq!(s, 201, "{order}");
    let order_id = order["order_id"].as_str().unwrap().to_owned();
    let (session,): (Option<String>,) = sqlx::query_as("SELECT payment_ref FROM orders WHERE id = $1")
        .bind(&order_id)
        .fetch_one(&app.running.state.db.read)
        .await
        .unwrap();
    let paid = stripe.pay(&session.unwrap());
    let intent = paid["data"]["object"]["payment_intent"].as_str().unwrap().to_owned();
    let (s, v) = stripe.deliver(&app.url("/v1/payments/stripe/webhook"), WHSEC, &paid).await;
    assert_eq!((s, v["outcome"].as_str()), (200, Some("confirmed")), "{v}");
    assert_eq!(reserved(&app, event).await, (2, 2));

    let ring = Keyring::from_json(&app.running.state.signer.keyring.to_json()).unwrap();
    let view = customer_view(&app, &order).await;
    let tickets = tickets_of(&view, &ring, event);
    assert_eq!(tickets.len(), 2);
    assert_eq!(view["tickets"][1]["holder_name"], "Grace Friend");
    let version_before = app.running.state.revocations.lock().await.version();

    let (s, r) = app.admin(Method::POST, &format!("/admin/v1/orders/{order_id}/tickets/1/refund"), None).await;
    assert_eq!(s, 200, "{r}");
    // One ticket's share: its type's price and its add-on's, as charged.
    assert_eq!(r["refund_cents"], TICKET_PRICE + ADDON_PRICE, "{r}");
    assert_eq!(r["order_status"], "confirmed");
    assert_eq!(r["refund"]["status"], "succeeded", "{r}");
    assert!(r["revocation_version"].as_u64().unwrap() > version_before);

    // At the provider: exactly one partial refund of that amount, of this payment.
    let refunds = stripe.refunds();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0].amount, TICKET_PRICE + ADDON_PRICE);
    assert_eq!(refunds[0].payment_intent, intent);

    // The revocation list refuses exactly the refunded ticket; the other one still verifies.
    let list = app.running.state.revocations.lock().await.clone();
    let ctx = VerifyContext { keyring: &ring, revocations: Some(&list), event_id: event as u32, now: DURING_EVENT };
    let qr = |i: usize| view["tickets"][i]["qr_text"].as_str().unwrap().to_owned();
    assert!(scanner_core::verify_text(&qr(1), &ctx).is_err(), "the refunded ticket is revoked");
    assert_eq!(scanner_core::verify_text(&qr(0), &ctx).expect("the other ticket stays valid"), tickets[0]);
    // Its seat (ticket type and add-on) is back on sale.
    assert_eq!(reserved(&app, event).await, (1, 1));

    // The detail shows it, and a second refund of the same ticket is refused.
    let (s, d) = app.admin(Method::GET, &format!("/admin/v1/orders/{order_id}/detail"), None).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["tickets"][1]["revoked"], true);
    assert_eq!(d["tickets"][0]["revoked"], false);
    assert_eq!(d["refunds"][0]["ticket_seq"], 1);
    assert_eq!(d["refunds"][0]["amount_cents"], TICKET_PRICE + ADDON_PRICE);
    assert!(d["tickets"][0].get("qr_text").is_none(), "no ticket secrets in the detail");
    let (s, _) = app.admin(Method::POST, &format!("/admin/v1/orders/{order_id}/tickets/1/refund"), None).await;
    assert_eq!(s, 409);

    // Refunding the rest of the order afterwards gives back the rest, once, and releases one seat, not two.
    let (s, r) = app.admin(Method::POST, &format!("/admin/v1/orders/{order_id}/refund"), None).await;
    assert_eq!(s, 200, "{r}");
    let refunds = stripe.refunds();
    assert_eq!(refunds.len(), 2, "{refunds:?}");
    assert_eq!(refunds[1].amount, TICKET_PRICE + ADDON_PRICE, "the rest of the payment");
    assert_eq!(reserved(&app, event).await, (0, 0));
    app.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_last_ticket_closes_the_order_and_no_money_moves() {
    let app = common::start().await;
    let event = event_with(&app, 0, 0, 5).await;
    let (s, order) = app.order(event, "Solo", 1, "free").await;
    assert_eq!(s, 201, "{order}");
    let id = order["order_id"].as_str().unwrap();
    let (s, r) = app.admin(Method::POST, &format!("/admin/v1/orders/{id}/tickets/0/cancel"), None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["order_status"], "cancelled");
    assert!(r["refund_cents"].is_null());
    assert_eq!(reserved(&app, event).await, (0, 0));
    // Unknown ticket, unknown order, no token.
    assert_eq!(app.admin(Method::POST, &format!("/admin/v1/orders/{id}/tickets/7/cancel"), None).await.0, 409);
    assert_eq!(app.admin(Method::POST, "/admin/v1/orders/ord_nope/tickets/0/cancel", None).await.0, 404);
    let r = app.http.post(app.url(&format!("/admin/v1/orders/{id}/tickets/0/refund"))).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    app.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_names_per_ticket_and_an_edit_is_resealed_in_the_next_manifest() {
    let app = common::start().await;
    let event = event_with(&app, 0, 0, 10).await;
    let (s, order) = app
        .post(
            "/v1/orders",
            json!({"event_id":event,"name":"Buyer Bee","email":"bee@example.org","payment":"free",
                   "items":[{"ticket_type":0,"quantity":3,"addons":[],"holders":["  Ada Named ", ""]}]}),
        )
        .await;
    assert_eq!(s, 201, "{order}");
    let id = order["order_id"].as_str().unwrap().to_owned();
    let view = customer_view(&app, &order).await;
    let holders: Vec<&str> =
        view["tickets"].as_array().unwrap().iter().map(|t| t["holder_name"].as_str().unwrap()).collect();
    // Trimmed; a blank or missing name is the buyer's.
    assert_eq!(holders, ["Ada Named", "Buyer Bee", "Buyer Bee"]);

    let ring = Keyring::from_json(&app.running.state.signer.keyring.to_json()).unwrap();
    let tickets = tickets_of(&view, &ring, event);
    let token = app.device_token(event).await;
    let manifest = || async {
        let r = app
            .http
            .get(app.url(&format!("/v1/scanner/events/{event}/manifest")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        Manifest::from_json(&r.text().await.unwrap()).unwrap()
    };
    let holder_in = |m: &Manifest, t: &Ticket| {
        m.entries
            .iter()
            .find_map(|e| open_entry(event as u32, &t.ticket_id, e).ok())
            .map(|e| e.holder_name)
            .expect("the ticket's entry opens with its id")
    };
    let before = manifest().await;
    assert_eq!(holder_in(&before, &tickets[1]), "Buyer Bee");

    let hostile = "Grace <img src=x onerror=alert(1)> \"Hopper\"";
    let (s, r) = app
        .admin(Method::PUT, &format!("/admin/v1/orders/{id}/tickets/1/holder"), Some(json!({"holder_name": hostile})))
        .await;
    assert_eq!(s, 200, "{r}");
    let after = manifest().await;
    assert_eq!(holder_in(&after, &tickets[1]), hostile, "re-sealed with the new name");
    assert_eq!(holder_in(&after, &tickets[0]), "Ada Named", "the other tickets keep theirs");
    // The QR code does not carry the name: the same ticket still verifies.
    let ctx = VerifyContext { keyring: &ring, revocations: None, event_id: event as u32, now: DURING_EVENT };
    let view = customer_view(&app, &order).await;
    assert_eq!(scanner_core::verify_text(view["tickets"][1]["qr_text"].as_str().unwrap(), &ctx).unwrap(), tickets[1]);

    // The customer's order page escapes it.
    let page = app
        .http
        .get(app.url(&format!("/orders/{id}?token={}", order["token"].as_str().unwrap())))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Grace &lt;img src=x onerror=alert(1)&gt;"), "{page}");
    assert!(!page.contains("<img src=x"), "{page}");

    // Bad names: too long, control characters, empty; more names than tickets.
    for bad in ["x".repeat(101), "a\u{7}b".into(), "   ".into(), "a\u{202E}b".into()] {
        let (s, v) = app
            .admin(Method::PUT, &format!("/admin/v1/orders/{id}/tickets/1/holder"), Some(json!({"holder_name": bad})))
            .await;
        assert_eq!(s, 422, "{bad:?}: {v}");
    }
    let (s, v) = app
        .post(
            "/v1/orders",
            json!({"event_id":event,"name":"B","email":"b@example.org","payment":"free",
                   "items":[{"ticket_type":0,"quantity":1,"holders":["One","Two"]}]}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = app
        .post(
            "/v1/orders",
            json!({"event_id":event,"name":"B","email":"b@example.org","payment":"free",
                   "items":[{"ticket_type":0,"quantity":1,"holders":["x".repeat(101)]}]}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    app.running.shutdown().await;
}

fn configure_smtp(c: &mut issuer::Config, port: u16, ca: &std::path::Path) {
    c.smtp_host = Some("127.0.0.1".into());
    c.smtp_port = port;
    c.smtp_user = Some(smtp::USER.into());
    c.smtp_password = Some(smtp::PASSWORD.into());
    c.smtp_ca_file = Some(ca.to_owned());
    c.mail_from = "Tickets <tickets@example.org>".into();
}

fn message_ids(out: &std::path::Path) -> Vec<String> {
    smtp::mails(out)
        .iter()
        .filter_map(|p| MessageParser::default().parse(&std::fs::read(p).ok()?)?.message_id().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_mails_the_tickets_again_through_smtp_and_is_rate_limited() {
    let certs = tempfile::tempdir().unwrap();
    let server = smtp::start(certs.path(), 0);
    let app = start_with(|c| configure_smtp(c, server.port, &server.ca)).await;
    let event = event_with(&app, 0, 0, 10).await;
    let (s, order) = app.order(event, "Resend Me", 2, "free").await;
    assert_eq!(s, 201);
    let id = order["order_id"].as_str().unwrap().to_owned();
    let out = server.out.clone();
    let first = eventually(Duration::from_secs(30), || {
        let out = out.clone();
        async move { (!smtp::mails(&out).is_empty()).then_some(()) }
    })
    .await;
    assert!(first.is_some(), "the first ticket mail arrived");

    let (s, v) = app.admin(Method::POST, &format!("/admin/v1/orders/{id}/resend"), None).await;
    assert_eq!(s, 202, "{v}");
    let out2 = server.out.clone();
    let ids = eventually(Duration::from_secs(30), || {
        let out = out2.clone();
        async move {
            let ids = message_ids(&out);
            (ids.len() >= 2).then_some(ids)
        }
    })
    .await
    .expect("the resent mail arrived");
    assert!(ids.contains(&format!("tickets.{id}@example.org")));
    let resent =
        ids.iter().find(|m| m.starts_with(&format!("resend.{id}."))).expect("a resend with its own Message-ID");
    let raw = smtp::mails(&server.out)
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .find(|raw| MessageParser::default().parse(raw).unwrap().message_id() == Some(resent.as_str()))
        .unwrap();
    let msg = MessageParser::default().parse(&raw).unwrap();
    assert!(msg.body_text(0).unwrap().contains(&format!("/orders/{id}?token=")));

    // Three resends an hour per order: the fourth is refused.
    for _ in 0..2 {
        assert_eq!(app.admin(Method::POST, &format!("/admin/v1/orders/{id}/resend"), None).await.0, 202);
    }
    let (s, v) = app.admin(Method::POST, &format!("/admin/v1/orders/{id}/resend"), None).await;
    assert_eq!(s, 429, "{v}");
    let (_, d) = app.admin(Method::GET, &format!("/admin/v1/orders/{id}/detail"), None).await;
    let kinds: Vec<&str> = d["mails"].as_array().unwrap().iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["tickets", "resend", "resend", "resend"]);
    app.running.shutdown().await;
}

async fn lookup(app: &common::App, email: &str) -> (u16, String) {
    let r = app.http.post(app.url("/lost-tickets")).form(&[("email", email)]).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_tickets_answers_the_same_for_unknown_addresses_and_is_rate_limited() {
    let certs = tempfile::tempdir().unwrap();
    let server = smtp::start(certs.path(), 0);
    let app = start_with(|c| configure_smtp(c, server.port, &server.ca)).await;
    let event = event_with(&app, 0, 0, 10).await;
    let (s, order) = app
        .post(
            "/v1/orders",
            json!({"event_id":event,"name":"Lost Larry","email":"Larry@Example.org","payment":"free",
                   "items":[{"ticket_type":0,"quantity":1}]}),
        )
        .await;
    assert_eq!(s, 201, "{order}");
    let id = order["order_id"].as_str().unwrap().to_owned();
    let out = server.out.clone();
    eventually(Duration::from_secs(30), || {
        let out = out.clone();
        async move { (smtp::mails(&out).len() == 1).then_some(()) }
    })
    .await
    .expect("the ticket mail arrived");

    let known = lookup(&app, "larry@example.org").await;
    let unknown = lookup(&app, "nobody@example.org").await;
    assert_eq!(known.0, 200);
    assert_eq!(known, unknown, "the same answer whether or not the address has orders");
    assert!(known.1.contains("If there are orders for this address"));

    let out2 = server.out.clone();
    let ids = eventually(Duration::from_secs(30), || {
        let out = out2.clone();
        async move {
            let ids = message_ids(&out);
            (ids.len() >= 2).then_some(ids)
        }
    })
    .await
    .expect("the order links mail arrived");
    let lookup_id = ids.iter().find(|m| m.starts_with("orders.")).expect("a lookup mail");
    let raw = smtp::mails(&server.out)
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .find(|raw| MessageParser::default().parse(raw).unwrap().message_id() == Some(lookup_id.as_str()))
        .unwrap();
    let msg = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(msg.to().unwrap().first().unwrap().address(), Some("Larry@Example.org"));
    let text = msg.body_text(0).unwrap();
    let link = text.split_whitespace().find(|w| w.contains(&format!("/orders/{id}?token="))).expect("the order link");
    assert_eq!(app.http.get(link).send().await.unwrap().status().as_u16(), 200, "the mailed link opens the order");
    // Nothing was mailed for the unknown address.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(message_ids(&server.out).len(), 2);

    // Per address: three an hour, then 429 — for an unknown address exactly as for a known one.
    assert_eq!(lookup(&app, "nobody@example.org").await.0, 200);
    assert_eq!(lookup(&app, "NOBODY@example.org").await.0, 200);
    assert_eq!(lookup(&app, "nobody@example.org").await.0, 429);
    assert_eq!(lookup(&app, "larry@example.org").await.0, 200);
    assert_eq!(lookup(&app, "larry@example.org").await.0, 200);
    assert_eq!(lookup(&app, "larry@example.org").await.0, 429);
    // Per client IP: ten an hour whatever the address (six accepted so far).
    for i in 0..4 {
        assert_eq!(lookup(&app, &format!("other{i}@example.org")).await.0, 200, "request {i}");
    }
    let (s, body) = lookup(&app, "fresh@example.org").await;
    assert_eq!(s, 429, "{body}");
    // Not an address: a clear error, nothing recorded.
    let (s, body) = lookup(&app, "<script>@x").await;
    assert_eq!(s, 422);
    assert!(!body.contains("<script>@x"), "echoed escaped: {body}");
    app.running.shutdown().await;
}

fn parse_csv(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    let body = text.strip_prefix('\u{feff}').expect("starts with the UTF-8 BOM");
    let mut r = csv::Reader::from_reader(body.as_bytes());
    let header = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r.records().map(|rec| rec.unwrap().iter().map(str::to_owned).collect()).collect();
    (header, rows)
}

async fn download(app: &common::App, path: &str) -> (u16, String, Vec<u8>) {
    let r = app.http.get(app.url(path)).bearer_auth(app.running.admin_token()).send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, ct, r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_exports_parse_back_with_formula_cells_neutralised() {
    let app = common::start().await;
    let event = event_with(&app, 1_250, 0, 10).await;
    let buyer = "=HYPERLINK(\"http://evil.example\",\"click\")";
    let (s, order) = app
        .post(
            "/v1/orders",
            json!({"event_id":event,"name":buyer,"email":"evil@example.org","payment":"at_door",
                   "items":[{"ticket_type":0,"quantity":3,"addons":[0],"holders":["+SUM(A1:A9)","Zoë \"Q\", Jr.","@cmd"]}]}),
        )
        .await;
    assert_eq!(s, 201, "{order}");
    let id = order["order_id"].as_str().unwrap().to_owned();
    // One ticket cancelled: the export says it is no longer valid.
    assert_eq!(app.admin(Method::POST, &format!("/admin/v1/orders/{id}/tickets/2/cancel"), None).await.0, 200);

    let (s, ct, body) = download(&app, &format!("/admin/v1/events/{event}/exports/attendees.csv")).await;
    assert_eq!(s, 200);
    assert_eq!(ct, "text/csv; charset=utf-8");
    let (header, rows) = parse_csv(&body);
    assert_eq!(header, ["order", "ticket", "ticket type", "add-ons", "holder", "buyer", "buyer email", "valid"]);
    assert_eq!(rows.len(), 3);
    let col = |r: &Vec<String>, name: &str| r[header.iter().position(|h| h == name).unwrap()].clone();
    assert_eq!(col(&rows[0], "holder"), "'+SUM(A1:A9)");
    assert_eq!(col(&rows[1], "holder"), "Zoë \"Q\", Jr.");
    assert_eq!(col(&rows[2], "holder"), "'@cmd");
    assert_eq!(col(&rows[0], "buyer"), format!("'{buyer}"));
    assert_eq!(col(&rows[0], "add-ons"), "Parking");
    assert_eq!(col(&rows[0], "ticket"), "1");
    assert_eq!([col(&rows[0], "valid"), col(&rows[2], "valid")], ["yes", "no"]);
    // No cell of the file starts a formula.
    for row in &rows {
        for cell in row {
            assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "{cell:?}");
        }
    }

    let (s, _, body) = download(&app, &format!("/admin/v1/events/{event}/exports/orders.csv")).await;
    assert_eq!(s, 200);
    let (header, rows) = parse_csv(&body);
    assert_eq!(rows.len(), 1);
    let col = |name: &str| rows[0][header.iter().position(|h| h == name).unwrap()].clone();
    assert_eq!(col("order"), id);
    assert_eq!(col("buyer"), format!("'{buyer}"));
    assert_eq!(col("total"), "37.50", "3 × 12.50 EUR");
    assert_eq!(col("currency"), "EUR");
    assert_eq!((col("tickets"), col("valid tickets")), ("3".to_owned(), "2".to_owned()));

    // Only for staff.
    let r = app.http.get(app.url(&format!("/admin/v1/events/{event}/exports/orders.csv"))).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    app.running.shutdown().await;
}

/// A colleague with `role`, invited by the owner (the legacy admin token), signed in: their session cookie
/// and its CSRF token.
async fn colleague(app: &common::App, email: &str, role: &str) -> (String, String) {
    let (s, v) = app.admin(Method::POST, "/admin/v1/staff", Some(json!({"email": email, "role": role}))).await;
    assert_eq!(s, 201, "{v}");
    let token = v["invitation_url"].as_str().unwrap().split("#invite=").nth(1).unwrap().to_owned();
    let password = "correct horse battery staple";
    let (s, v) = app.post("/admin/v1/invitations/accept", json!({"token": token, "password": password})).await;
    assert_eq!(s, 200, "{v}");
    let r = app
        .http
        .post(app.url("/admin/v1/session"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    (cookie, body["csrf_token"].as_str().unwrap().to_owned())
}

async fn as_colleague(
    app: &common::App,
    who: &(String, String),
    method: Method,
    path: &str,
    body: Option<Value>,
) -> u16 {
    let mut req = app.http.request(method, app.url(path)).header("cookie", &who.0).header("x-csrf-token", &who.1);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_decide_who_may_refund_and_every_write_is_in_the_audit_log() {
    let app = common::start().await;
    let event = event_with(&app, 0, 0, 10).await;
    let (s, order) = app.order(event, "Audited", 2, "free").await;
    assert_eq!(s, 201, "{order}");
    let id = order["order_id"].as_str().unwrap().to_owned();
    let viewer = colleague(&app, "viewer@example.org", "viewer").await;
    let door = colleague(&app, "door@example.org", "door_supervisor").await;
    let box_office = colleague(&app, "box@example.org", "box_office").await;

    // A viewer and a door supervisor may look and export, not change orders.
    assert_eq!(as_colleague(&app, &viewer, Method::GET, &format!("/admin/v1/orders/{id}/detail"), None).await, 200);
    assert_eq!(
        as_colleague(&app, &viewer, Method::GET, &format!("/admin/v1/events/{event}/exports/attendees.csv"), None)
            .await,
        200
    );
    for who in [&viewer, &door] {
        assert_eq!(
            as_colleague(&app, who, Method::POST, &format!("/admin/v1/orders/{id}/tickets/0/refund"), None).await,
            403
        );
        assert_eq!(as_colleague(&app, who, Method::POST, &format!("/admin/v1/orders/{id}/resend"), None).await, 403);
        let rename = Some(json!({"holder_name": "Not Allowed"}));
        assert_eq!(
            as_colleague(&app, who, Method::PUT, &format!("/admin/v1/orders/{id}/tickets/0/holder"), rename).await,
            403
        );
    }
    // A cookie request without its CSRF token is refused whatever the role.
    let r = app
        .http
        .post(app.url(&format!("/admin/v1/orders/{id}/tickets/0/refund")))
        .header("cookie", &box_office.0)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // The box office may.
    assert_eq!(
        as_colleague(&app, &box_office, Method::POST, &format!("/admin/v1/orders/{id}/tickets/0/refund"), None).await,
        200
    );
    let rename = Some(json!({"holder_name": "Renamed Holder"}));
    assert_eq!(
        as_colleague(&app, &box_office, Method::PUT, &format!("/admin/v1/orders/{id}/tickets/1/holder"), rename).await,
        200
    );

    // The audit log names who did what to which ticket, with before and after.
    let (s, log) = app.admin(Method::GET, "/admin/v1/audit?action=order.refund_ticket", None).await;
    assert_eq!(s, 200, "{log}");
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{log}");
    assert_eq!(entries[0]["actor_email"], "box@example.org");
    assert_eq!(entries[0]["target"], format!("order:{id}/ticket:0"));
    assert_eq!(entries[0]["before"]["revoked"], false);
    assert_eq!(entries[0]["after"]["revoked"], true);
    let (_, log) = app.admin(Method::GET, "/admin/v1/audit?action=ticket.holder_edit", None).await;
    let entry = &log["entries"][0];
    assert_eq!(
        (entry["before"]["holder_name"].as_str(), entry["after"]["holder_name"].as_str()),
        (Some("Audited"), Some("Renamed Holder"))
    );
    let (_, log) = app.admin(Method::GET, "/admin/v1/audit?action=export.attendees", None).await;
    assert_eq!(log["entries"][0]["actor_email"], "viewer@example.org");
    // The refused attempts changed nothing and recorded nothing.
    let (_, log) = app.admin(Method::GET, "/admin/v1/audit?action=order.", None).await;
    assert_eq!(log["entries"].as_array().unwrap().len(), 1);
    app.running.shutdown().await;
}
