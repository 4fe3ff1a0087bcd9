//! The whole event in one test: an organizer sells 500 tickets and admits their holders.
//!
//! Real parts only: the issuer (temporary SQLite file), a real SMTP server (aiosmtpd, STARTTLS + AUTH),
//! the edge Worker under workerd (Miniflare), and four `scanner` CLI devices — two online (edge first),
//! two offline the whole time. Stripe's API is the one part that cannot run here: a local stand-in takes
//! its place, and its webhooks are signed exactly as Stripe signs them.
//!
//! 1. The organizer creates an event with capacity 500 (200 guest-list places at 0, 300 paid places).
//! 2. 500 customers order at once: 200 free, 260 pay through a signed webhook, 40 abandon their checkout.
//!    Their holds expire, the seats return and 40 later customers buy them; further buyers find it sold out.
//! 3. Every confirmation mail arrives at the SMTP server; each inline QR is extracted and is a ticket.
//! 4. 10 paid orders are refunded: their tickets go on the revocation list.
//! 5. The devices scan every ticket; 2% are also scanned at a second gate; 20 forged or tampered codes.
//! 6. At the door: a VIP entrance (gate rule) refuses a Standard ticket as wrong_gate; a VIP ticket ordered
//!    to pay at the door is UNPAID until the steward collects 90.00 EUR; a supervisor (pass from the admin
//!    API) finds an attendee online and undoes a check-in, and the ticket admits again.
//! 7. The devices sync through the edge and the issuer. The issuer's report must show exactly the valid
//!    distinct tickets admitted, exactly the injected duplicates as conflicts, and every forged or revoked
//!    code refused for the right reason; nothing oversold, no mail lost.

#[path = "../../issuer/tests/common/mod.rs"]
mod common;
#[path = "../../issuer/tests/common/smtp.rs"]
mod smtp;
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use common::{eventually, start_with, FakeStripe};
use mail_parser::{MessageParser, MimeHeaders};
use reqwest::Method;
use scanner_core::ticket::SignedTicket;
use serde_json::{json, Value};
use support::{Device, Edge};

/// The issuer's relay token at the edge (its SHA-256 is the edge's RELAY_TOKEN_HASHES).
const RELAY_TOKEN: &str = "relay-token-of-the-event-day-test";
const WHSEC: &str = "whsec_event_day";
const FREE: usize = 200;
const PAID: usize = 260;
const ABANDONED: usize = 40;
const CAPACITY_PAID: i64 = 300;
const REFUNDED: usize = 10;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Places one order; returns the JSON answer (status must be 201).
async fn order(app: &common::App, event: i64, name: &str, ticket_type: i64, payment: &str) -> (u16, Value) {
    app.post(
        "/v1/orders",
        json!({"event_id": event, "name": name, "email": format!("{}@example.org", name.to_lowercase().replace(' ', ".")),
               "items": [{"ticket_type": ticket_type, "quantity": 1}], "payment": payment}),
    )
    .await
}

/// The customer pays a pending Stripe order at the fake Stripe, which sends the signed
/// `checkout.session.completed` webhook (with a payment intent and charge the fake knows, so refunds work).
async fn pay(app: &common::App, stripe: &FakeStripe, order: &Value) {
    let session = order["checkout_url"].as_str().and_then(|u| u.rsplit('/').next()).expect("checkout session");
    let event = stripe.pay(session);
    let (status, body) = stripe.deliver(&app.url("/v1/payments/stripe/webhook"), WHSEC, &event).await;
    assert_eq!(status, 200, "a correctly signed paid event is accepted: {body}");
}

async fn available(app: &common::App, event: i64, ticket_type: usize) -> i64 {
    let (_, v) = app.get_json(&format!("/v1/events/{event}")).await;
    v["ticket_types"][ticket_type]["available"].as_i64().expect("availability")
}

/// Every ticket in the store: QR text → order id.
async fn tickets(app: &common::App) -> HashMap<String, String> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT qr_text, order_id FROM tickets")
        .fetch_all(&app.running.state.db.read)
        .await
        .expect("tickets");
    rows.into_iter().collect()
}

/// Tampered and forged codes, each with the refusal code a scanner must give.
fn forgeries(genuine: &[String]) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for (i, text) in genuine.iter().take(10).enumerate() {
        let signed = SignedTicket::from_qr_text(text).expect("genuine ticket parses");
        let mut bytes = signed.to_bytes();
        if i < 5 {
            // A flipped bit in the signature.
            let last = bytes.len() - 1;
            bytes[last] ^= 0x01;
        } else {
            // A tampered payload: another ticket type, signature unchanged.
            bytes[10] ^= 0x01;
        }
        let forged = SignedTicket::from_bytes(&bytes).map(|s| s.to_qr_text());
        out.push((forged.expect("a tampered ticket still parses"), "bad_signature"));
    }
    // Signed by a key the issuer never published.
    let rogue = scanner_core::IssuerKey::from_seed(scanner_core::KeyId(999), [42; 32]);
    for text in genuine.iter().skip(10).take(4) {
        let mut ticket = SignedTicket::from_qr_text(text).expect("genuine").ticket;
        ticket.key_id = scanner_core::KeyId(999);
        out.push((rogue.sign_ticket(&ticket).expect("sign").to_qr_text(), "unknown_key"));
    }
    // Truncated codes and codes that are not tickets at all.
    for text in genuine.iter().skip(14).take(3) {
        out.push((text[..text.len() - 9].to_owned(), "malformed"));
    }
    for junk in ["https://example.org/not-a-ticket", "hello", "TK9:1234"] {
        out.push((junk.to_owned(), "not_a_ticket"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_event_day() {
    let work = tempfile::tempdir().expect("tempdir");
    // --- the issuer, with real SMTP and the Stripe stand-in ---
    let certs = work.path().join("certs");
    std::fs::create_dir_all(&certs).expect("certs dir");
    let mail_server = smtp::start(&certs, 0);
    let stripe = FakeStripe::start("sk_test_event_day").await;
    let stripe_url = stripe.url();
    let (smtp_port, smtp_ca) = (mail_server.port, mail_server.ca.clone());
    // The edge's port is chosen now: the issuer relays redemption logs with it (devices hand each server
    // only their own records).
    let edge_port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let app = start_with(move |c| {
        c.edge_url = Some(format!("http://127.0.0.1:{edge_port}"));
        c.edge_relay_token = Some(RELAY_TOKEN.into());
        c.edge_relay_seconds = 0; // on request below, so the test decides when
        c.smtp_host = Some("127.0.0.1".into());
        c.smtp_port = smtp_port;
        c.smtp_user = Some(smtp::USER.into());
        c.smtp_password = Some(smtp::PASSWORD.into());
        c.smtp_ca_file = Some(smtp_ca);
        c.mail_from = "Tickets <tickets@example.org>".into();
        c.stripe_secret_key = Some("sk_test_event_day".into());
        c.stripe_webhook_secret = Some(WHSEC.into());
        c.stripe_api_base = stripe_url;
        c.hold_seconds = 10; // long enough for 500 concurrent orders on a loaded machine
    })
    .await;

    // --- 1. the organizer's event: capacity 500 ---
    let t0 = now();
    let (s, v) = app
        .admin(
            Method::POST,
            "/admin/v1/events",
            Some(
                json!({"name": "Event Day", "venue": "Harbour Hall", "starts_at": t0 - 3600, "ends_at": t0 + 6 * 3600,
                        "timezone": "Europe/Berlin"}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let event = v["id"].as_i64().expect("event id");
    for (name, price, capacity) in [("Guest list", 0, FREE as i64), ("Standard", 2_500, CAPACITY_PAID)] {
        let (s, v) = app
            .admin(
                Method::POST,
                &format!("/admin/v1/events/{event}/ticket-types"),
                Some(json!({"name": name, "price_cents": price, "currency": "EUR", "capacity": capacity})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }

    // --- 2. 500 customers at once ---
    let mut buyers = Vec::new();
    for i in 0..FREE + PAID + ABANDONED {
        let app_http = app.http.clone();
        let url = app.url("/v1/orders");
        let (ticket_type, payment) = if i < FREE { (0, "free") } else { (1, "stripe") };
        buyers.push(tokio::spawn(async move {
            let name = format!("Customer {i}");
            let r = app_http
                .post(url)
                .json(&json!({"event_id": event, "name": name, "email": format!("customer{i}@example.org"),
                              "items": [{"ticket_type": ticket_type, "quantity": 1}], "payment": payment}))
                .send()
                .await
                .expect("order request");
            (i, r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut placed = Vec::new();
    for b in buyers {
        let (i, status, v) = b.await.expect("buyer task");
        assert_eq!(status, 201, "customer {i}: {v}");
        placed.push((i, v));
    }
    assert_eq!(available(&app, event, 0).await, 0, "the guest list is full");
    assert_eq!(available(&app, event, 1).await, 0, "every paid seat is held");
    let (s, v) = order(&app, event, "Too Early", 1, "stripe").await;
    assert_eq!(s, 409, "held seats are not sold twice: {v}");
    // 260 pay; 40 abandon their checkout.
    for (_, v) in &placed[FREE..FREE + PAID] {
        pay(&app, &stripe, v).await;
    }
    // The abandoned holds expire and their seats return.
    let returned = eventually(Duration::from_secs(40), || async {
        (available(&app, event, 1).await == ABANDONED as i64).then_some(())
    })
    .await;
    assert!(returned.is_some(), "expired holds give their seats back");
    let mut late = Vec::new();
    for i in 0..ABANDONED {
        let (s, v) = order(&app, event, &format!("Late Customer {i}"), 1, "stripe").await;
        assert_eq!(s, 201, "{v}");
        pay(&app, &stripe, &v).await;
        late.push(v);
    }
    for (i, (ticket_type, payment)) in [(0, "free"), (1, "stripe"), (0, "free"), (1, "stripe")].iter().enumerate() {
        let (s, v) = order(&app, event, &format!("Unlucky {i}"), *ticket_type, payment).await;
        assert_eq!(s, 409, "sold out: {v}");
    }
    let issued = tickets(&app).await;
    assert_eq!(issued.len(), 500, "exactly the capacity was sold: 0 oversold");

    // --- 3. every mail arrives, with a scannable ticket inline ---
    let mail_dir = mail_server.out.clone();
    let arrived = eventually(Duration::from_secs(120), || {
        let dir = mail_dir.clone();
        async move { (smtp::mails(&dir).len() >= 500).then_some(()) }
    })
    .await;
    assert!(arrived.is_some(), "500 mails arrive (got {})", smtp::mails(&mail_dir).len());
    let mut mailed = BTreeSet::new();
    let mut message_ids = BTreeSet::new();
    for path in smtp::mails(&mail_dir) {
        let raw = std::fs::read(&path).expect("mail file");
        let msg = MessageParser::default().parse(&raw).expect("mail parses");
        message_ids.insert(msg.message_id().expect("Message-ID").to_owned());
        for part in msg.attachments() {
            if part.content_type().is_some_and(|c| c.ctype() == "image") {
                let qr = common::decode_qr_png(part.contents()).expect("the inline QR decodes");
                mailed.insert(qr);
            }
        }
    }
    assert_eq!(message_ids.len(), 500, "one mail per order, none lost");
    let all: BTreeSet<String> = issued.keys().cloned().collect();
    assert_eq!(mailed, all, "every ticket was mailed, and every mailed QR is a ticket");

    // --- the edge goes live before the refunds: they must reach it without anyone publishing anything ---
    let mut tokens = Vec::new();
    for name in ["North A", "North B", "South C", "South D"] {
        let (s, v) = app.admin(Method::POST, "/admin/v1/devices", Some(json!({"name": name, "event": event}))).await;
        assert_eq!(s, 201, "{v}");
        tokens.push(v["token"].as_str().expect("token").to_owned());
    }
    // The edge's own read-only token: the revocation list and the device list, nothing else.
    let (s, v) = app.admin(Method::POST, "/admin/v1/edge-tokens", Some(json!({"name": "Edge"}))).await;
    assert_eq!(s, 201, "{v}");
    let edge_token = v["token"].as_str().expect("edge token").to_owned();
    let (_, keyring) = app.get_json("/v1/keyring").await;
    let revocations = app
        .http
        .get(app.url("/v1/scanner/revocations"))
        .bearer_auth(&tokens[0])
        .send()
        .await
        .expect("revocations")
        .text()
        .await
        .expect("revocations body");
    // No device token is configured at the edge: it learns them (each bound to this event) from the
    // issuer's device list, as in production.
    let edge =
        Edge::start(&keyring.to_string(), &revocations, &[], &app.running.url(), &edge_token, edge_port, RELAY_TOKEN)
            .await;

    // --- 4. refunds ---
    let mut revoked = BTreeSet::new();
    let mut last_version = 0;
    for v in placed[FREE..FREE + REFUNDED].iter().map(|(_, v)| v) {
        let id = v["order_id"].as_str().expect("order id");
        let (s, r) = app.admin(Method::POST, &format!("/admin/v1/orders/{id}/refund"), None).await;
        assert_eq!(s, 200, "{r}");
        let version = r["revocation_version"].as_u64().expect("version");
        assert!(version > last_version, "each refund publishes a new revocation list");
        last_version = version;
        revoked.extend(issued.iter().filter(|(_, o)| o.as_str() == id).map(|(t, _)| t.clone()));
    }
    assert_eq!(revoked.len(), REFUNDED);
    // Each refund reached Stripe once, for the Standard price (2,500 cents: one ticket an order).
    let refunds = eventually(Duration::from_secs(20), || async {
        let r = stripe.refunds();
        (r.len() >= REFUNDED).then_some(r)
    })
    .await
    .expect("every refund reaches Stripe");
    assert_eq!(refunds.len(), REFUNDED);
    assert!(refunds.iter().all(|r| r.amount == 2_500 && r.idempotency_key.is_some()), "{refunds:?}");
    let valid: Vec<String> = all.iter().filter(|t| !revoked.contains(*t)).cloned().collect();

    // --- 5b's setup: a VIP entrance for a VIP ticket type, one VIP ticket ordered to pay at the door ---
    let (s, v) = app
        .admin(
            Method::POST,
            &format!("/admin/v1/events/{event}/ticket-types"),
            Some(
                json!({"name": "VIP", "price_cents": 9_000, "currency": "EUR", "capacity": 5, "at_door_allowed": true}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = app
        .admin(
            Method::PUT,
            &format!("/admin/v1/events/{event}/gates"),
            Some(json!({"gates": [{"gate": "VIP entrance", "ticket_types": [2]}]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, vip_order) = order(&app, event, "Vera Door", 2, "at_door").await;
    assert_eq!(s, 201, "{vip_order}");
    let vip_order_id = vip_order["order_id"].as_str().expect("order id").to_owned();
    let vip = tickets(&app).await.into_iter().find(|(_, o)| *o == vip_order_id).expect("the VIP ticket").0;

    // --- 5. the doors open: four devices ---
    let mut devices = Vec::new();
    for (i, name) in ["North A", "North B", "South C", "South D"].iter().enumerate() {
        let online = i < 2;
        devices.push(Device::init(
            work.path(),
            name,
            &app.running.url(),
            &tokens[i],
            event,
            online.then(|| edge.url()),
        ));
    }

    // Every ticket at one device; 2% (10) also at a second device and gate. A duplicate involving an
    // offline device is admitted twice (nobody can know) and must be a conflict; one between the two
    // online devices is refused at the door by the edge and must not be.
    let mut plan: Vec<Vec<String>> = vec![Vec::new(); 4];
    for (i, t) in all.iter().enumerate() {
        plan[i % 4].push(t.clone());
    }
    let valid_set: BTreeSet<&String> = valid.iter().collect();
    let mut duplicates_expected = BTreeSet::new();
    let mut online_pairs = BTreeSet::new();
    let pairs = [(0, 2), (2, 0), (1, 3), (3, 1), (2, 3), (3, 2), (0, 3), (1, 2), (0, 1), (1, 0)];
    for (k, (first, second)) in pairs.iter().enumerate() {
        let t = plan[*first].iter().filter(|t| valid_set.contains(t)).nth(20 + k).expect("enough tickets").clone();
        plan[*second].push(t.clone());
        if *first < 2 && *second < 2 {
            online_pairs.insert(t);
        } else {
            duplicates_expected.insert(t);
        }
    }
    let forged = forgeries(&valid);
    assert_eq!(forged.len(), 20);
    for (i, (code, _)) in forged.iter().enumerate() {
        plan[i % 4].push(code.clone());
    }

    let mut verdicts: Vec<BTreeMap<String, Value>> = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        let gate = if i < 2 { "North" } else { "South" };
        verdicts.push(d.scan_all(gate, &plan[i]));
    }
    // Door-side checks: forged and revoked codes are refused with the right reason on every path.
    for (code, reason) in &forged {
        let v = verdicts.iter().find_map(|m| m.get(code)).expect("forged code scanned");
        assert_eq!(v["verdict"], "refused", "{code}: {v}");
        assert_eq!(v["code"], *reason, "{code}: {v}");
    }
    for t in &revoked {
        let v = verdicts.iter().find_map(|m| m.get(t)).expect("revoked ticket scanned");
        assert_eq!(v["verdict"], "refused", "{v}");
        assert_eq!(v["code"], "revoked", "{v}");
    }
    // The devices refuse refunded tickets themselves (their revocation list is current, so the door policy
    // does not ask the edge); the edge must refuse them too: it pulled the new list from the issuer.
    let some_revoked = revoked.iter().next().expect("a refunded ticket");
    let request = scanner_core::wire::RedeemRequest {
        qr_text: some_revoked.clone(),
        event: event as u32,
        device: scanner_core::token::device_id_for_token(&tokens[0]),
        device_name: "North A".into(),
        gate: "North".into(),
        kind: scanner_core::redemption::ScanKind::Entry,
        addon: None,
    };
    let at_edge: Value = app
        .http
        .post(format!("{}{}", edge.url(), scanner_core::wire::REDEEM_PATH))
        .bearer_auth(&tokens[0])
        .header("content-type", "application/json")
        .body(request.to_json())
        .send()
        .await
        .expect("edge redeem")
        .json()
        .await
        .expect("edge verdict");
    assert_eq!(
        (at_edge["verdict"].as_str(), at_edge["code"].as_str(), at_edge["decided_by"].as_str()),
        (Some("refused"), Some("revoked"), Some("edge")),
        "the edge itself refuses refunded tickets: it pulled the new revocation list: {at_edge}"
    );
    for t in &online_pairs {
        let seen: Vec<&Value> = verdicts.iter().filter_map(|m| m.get(t)).collect();
        assert!(seen.iter().any(|v| v["verdict"] == "already_used"), "the edge refuses an online duplicate: {seen:?}");
    }
    for (i, m) in verdicts.iter().enumerate().take(2) {
        assert!(m.values().any(|v| v["path"] == "edge"), "online device {i} asked the edge");
        // The edge holds no names: the device names the holder from its own attendee manifest.
        for v in m.values().filter(|v| v["path"] == "edge" && v["verdict"] == "admit") {
            assert!(v["holder"].as_str().is_some_and(|h| h.contains("Customer ")), "holder shown: {v}");
        }
    }

    // --- 5b. at the door: wrong gate, paid at the door, a supervisor's undo (offline devices) ---
    let (south_c, south_d) = (&devices[2], &devices[3]);
    let standard = valid.iter().find(|t| issued[*t] != vip_order_id && plan[2].contains(t)).expect("a Standard ticket");
    let json_of = |out: &str| -> Value { serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}")) };
    let (code, out, err) = south_c.scanner(&["scan", "--json", "--gate", "VIP entrance", standard]);
    let v = json_of(&out);
    assert_eq!(
        (code, v["verdict"].as_str(), v["code"].as_str()),
        (Some(1), Some("refused"), Some("wrong_gate")),
        "{err}"
    );
    assert!(v["message"].as_str().is_some_and(|m| m.contains("VIP entrance admits VIP only")), "{v}");
    let (code, out, err) = south_c.scanner(&["scan", "--json", "--gate", "VIP entrance", &vip]);
    let v = json_of(&out);
    assert_eq!((code, v["verdict"].as_str()), (Some(3), Some("payment_due")), "{err}");
    assert_eq!((v["due"]["minor"].as_u64(), v["holder"].as_str()), (Some(9_000), Some("Vera Door")), "{v}");
    let (code, out, err) = south_c.scanner(&["scan", "--json", "--gate", "VIP entrance", "--paid", &vip]);
    let v = json_of(&out);
    assert_eq!(
        (code, v["verdict"].as_str(), v["collected"]["minor"].as_u64()),
        (Some(0), Some("admit"), Some(9_000)),
        "{err}"
    );
    // A supervisor pass from the organizer unlocks South D; a steward could not undo.
    let undone = plan[3]
        .iter()
        .find(|t| valid_set.contains(t) && !duplicates_expected.contains(*t) && !online_pairs.contains(*t))
        .expect("a ticket South D admitted")
        .clone();
    let (code, _, err) = south_d.scanner(&["undo", &undone, "--reason", "scanned the wrong phone", "--gate", "South"]);
    assert_eq!(code, Some(2), "a steward cannot undo");
    assert!(err.contains("only a supervisor may undo"), "{err}");
    let (s, v) = app
        .admin(
            Method::POST,
            &format!("/admin/v1/events/{event}/supervisor-passes"),
            Some(json!({"name": "Sam", "hours": 2})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (code, _, err) = south_d.scanner(&["search", "Vera Door"]);
    assert_eq!(code, Some(2), "a steward cannot search");
    assert!(err.contains("only a supervisor may search"), "{err}");
    let (code, _, err) = south_d.scanner(&["supervisor", "unlock", v["pass"].as_str().expect("pass")]);
    assert_eq!(code, Some(0), "{err}");
    // The supervisor finds the attendee who ordered at the door by name, online, with the ticket's code.
    let (code, out, err) = south_d.scanner(&["search", "--json", "vera door"]);
    assert_eq!(code, Some(0), "{err}");
    let found = json_of(&out);
    let orders = found["orders"].as_array().expect("orders");
    assert_eq!(orders.len(), 1, "{found}");
    assert_eq!(orders[0]["order_id"], vip_order_id.as_str());
    assert_eq!(orders[0]["tickets"][0]["qr_text"], vip.as_str());
    let (code, out, err) =
        south_d.scanner(&["undo", "--json", &undone, "--reason", "scanned the wrong phone", "--gate", "South"]);
    assert_eq!((code, json_of(&out)["verdict"].as_str()), (Some(0), Some("undone")), "{err}");
    let (code, out, _) = south_d.scanner(&["scan", "--json", "--gate", "South", &undone]);
    assert_eq!((code, json_of(&out)["verdict"].as_str()), (Some(0), Some("admit")), "the undone ticket admits again");

    // --- 6. sync: the online devices through the edge and the issuer, the offline ones through the issuer ---
    let edge_admits = verdicts[..2]
        .iter()
        .flat_map(|m| m.values())
        .filter(|v| v["path"] == "edge" && v["verdict"] == "admit")
        .count() as u64;
    assert!(edge_admits > 200, "the online devices' admissions were decided by the edge ({edge_admits})");
    edge.wait_for_log(event, &tokens[0], edge_admits).await;
    for d in &devices[..2] {
        d.sync_edge(&edge);
    }
    for d in &devices {
        d.sync_issuer();
    }
    // Devices hand each server only their own records: the edge's own log reaches the issuer through the
    // issuer's relay session with the edge (and the offline devices' records reach the edge the same way).
    let (s, relay) = app.admin(Method::POST, &format!("/admin/v1/events/{event}/edge-relay"), None).await;
    assert_eq!(s, 200, "{relay}");
    assert!(relay["new_records"].as_u64().unwrap_or(0) >= edge_admits, "the edge's admissions arrived: {relay}");
    let (s, report) = app.admin(Method::GET, &format!("/admin/v1/events/{event}/redemptions"), None).await;
    assert_eq!(s, 200, "{report}");

    // Each edge admission is there twice (the edge's record and the device's mirror), counted once.
    assert_eq!(report["devices"].as_array().map(Vec::len), Some(5), "four devices and the edge: {}", report["devices"]);
    assert_eq!(report["edge_copies"].as_u64(), Some(edge_admits), "{}", report["edge_copies"]);
    let admitted_tickets = support::admitted_tickets(&report);
    // The valid tickets, plus the VIP ticket paid at the door; the undone admission no longer counts and
    // the one after it does.
    assert_eq!(admitted_tickets, valid.len() + 1, "admitted = valid distinct tickets scanned: {}", report["admitted"]);
    assert_eq!(report["paid_at_door"].as_u64(), Some(1), "{}", report["paid_at_door"]);
    let vip_cash = &report["collected_by_gate"]["VIP entrance"][0];
    assert_eq!((vip_cash["minor"].as_u64(), vip_cash["currency"].as_str()), (Some(9_000), Some("EUR")), "{vip_cash}");
    assert_eq!(report["refused_by_reason"]["wrong_gate"].as_u64(), Some(1));
    let undos = report["undos"].as_array().expect("undos");
    assert_eq!(undos.len(), 1, "{undos:?}");
    assert_eq!(undos[0]["override_reason"], "scanned the wrong phone (supervisor Sam)");
    assert_eq!(report["undone"].as_array().map(Vec::len), Some(1));
    let conflicts = support::conflict_refs(&report);
    let expected_refs: BTreeSet<String> = duplicates_expected.iter().map(|t| support::ticket_ref_hex(t)).collect();
    assert_eq!(conflicts, expected_refs, "every injected duplicate is a conflict, and nothing else is");
    let by_reason = &report["refused_by_reason"];
    assert!(by_reason["revoked"].as_u64().unwrap_or(0) >= REFUNDED as u64, "{by_reason}");
    assert!(by_reason["bad_signature"].as_u64().unwrap_or(0) >= 10, "{by_reason}");

    // Nothing oversold, no mail lost: the store agrees after everything.
    let (s, jobs) = app.admin(Method::GET, "/admin/v1/email-jobs?status=sent", None).await;
    assert_eq!(s, 200);
    let sent: BTreeSet<&str> =
        jobs["jobs"].as_array().expect("jobs").iter().filter_map(|j| j["order_id"].as_str()).collect();
    assert!(sent.len() >= 500, "every order's mail is marked sent ({})", sent.len());
    drop(edge);
    app.running.shutdown().await;
}
