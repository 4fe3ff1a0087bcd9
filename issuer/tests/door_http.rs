//! At the door (issue 12), against a real issuer on a random port: supervisor passes that verify offline
//! with scanner-core and the published keyring, gate rules per event (admin round trip, catalog checks,
//! the device endpoint scoped to the token's event), and the supervisors' online attendee search (device
//! token and supervisor pass, query limits, what it finds and does not, 20 results at most, rate limit).

mod common;

use std::collections::BTreeSet;

use common::{start, start_with, App};
use reqwest::Method;
use scanner_core::error::{Error, PassKind};
use scanner_core::gates::{GateRule, GateRules, GATE_RULES_FORMAT};
use scanner_core::supervisor::SupervisorPass;
use scanner_core::wire::{search_path, SearchResults, MAX_SEARCH_RESULTS, SUPERVISOR_PASS_HEADER};
use scanner_core::{IssuerKey, Keyring};
use serde_json::{json, Value};

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// Status, JSON body and `Retry-After` of a request with an optional bearer token and supervisor pass.
async fn send(
    app: &App,
    method: Method,
    path: &str,
    token: Option<&str>,
    pass: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let mut req = app.http.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(p) = pass {
        req = req.header(SUPERVISOR_PASS_HEADER, p);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), retry)
}

async fn published_keyring(app: &App) -> Keyring {
    let text = app.http.get(app.url("/v1/keyring")).send().await.expect("keyring").text().await.expect("body");
    Keyring::from_json(&text).expect("the published keyring parses")
}

/// The issuer's signing key, read from its data directory (the test plays the organizer's key holder).
fn issuer_key(app: &App, ring: &Keyring) -> IssuerKey {
    let entry = ring.entries().next().expect("one key");
    let path = issuer::keys::private_key_path(&app.data_dir().join("keys"), entry.key_id);
    issuer::keys::load_private_key(&path, entry).expect("the issuer's key file")
}

async fn make_pass(app: &App, event: i64, body: Value) -> (u16, Value) {
    app.admin(Method::POST, &format!("/admin/v1/events/{event}/supervisor-passes"), Some(body)).await
}

fn error_message(body: &Value) -> String {
    body["error"]["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_passes_are_signed_for_the_asked_name_event_and_hours() {
    let app = start().await;
    let event = app.event(10, 0).await;
    let other = app.event(10, 0).await;
    let path = format!("/admin/v1/events/{event}/supervisor-passes");

    // Without the admin token, or with a device token: 401.
    let (s, _, _) = send(&app, Method::POST, &path, None, None, Some(json!({"name": "Ana", "hours": 8}))).await;
    assert_eq!(s, 401);
    let device = app.device_token(event).await;
    let (s, _, _) = send(&app, Method::POST, &path, Some(&device), None, Some(json!({"name": "Ana"}))).await;
    assert_eq!(s, 401);

    let before = now();
    let (s, v) = make_pass(&app, event, json!({"name": "Ana", "hours": 8})).await;
    assert_eq!(s, 201, "{v}");
    let text = v["pass"].as_str().expect("pass text");
    assert!(text.starts_with("SUP1:"), "{text}");
    assert!(v["qr_svg"].as_str().expect("qr_svg").starts_with("<svg"), "{v}");
    // Verified offline with scanner-core and the published keyring, for the name and event asked for.
    let ring = published_keyring(&app).await;
    let pass = SupervisorPass::verify(text, &ring, event as u32, now()).expect("the pass verifies");
    assert_eq!(pass.name, "Ana");
    assert_eq!(pass.event_id, event as u32);
    assert!(u64::from(pass.issued_at) >= before && u64::from(pass.issued_at) <= now());
    assert_eq!(pass.not_after - pass.issued_at, 8 * 3600);
    assert_eq!(v["not_after"], pass.not_after);
    assert_eq!(v["name"], "Ana");
    assert_eq!(v["event_id"], event);
    // Not for another event, and not after its 8 hours.
    match SupervisorPass::verify(text, &ring, other as u32, now()) {
        Err(Error::Pass(PassKind::WrongEvent { pass, expected })) => {
            assert_eq!((pass, expected), (event as u32, other as u32))
        }
        refused => panic!("expected a wrong-event refusal, got {refused:?}"),
    }
    assert!(matches!(
        SupervisorPass::verify(text, &ring, event as u32, u64::from(pass.issued_at) + 8 * 3600 + 1),
        Err(Error::Pass(PassKind::Expired))
    ));

    // Default: 12 hours; the name is trimmed.
    let (s, v) = make_pass(&app, event, json!({"name": "  Bo Lindqvist "})).await;
    assert_eq!(s, 201, "{v}");
    let pass = SupervisorPass::verify(v["pass"].as_str().expect("pass"), &ring, event as u32, now()).expect("verifies");
    assert_eq!(pass.name, "Bo Lindqvist");
    assert_eq!(pass.not_after - pass.issued_at, 12 * 3600);
    // 168 hours (7 days) is the longest.
    let (s, v) = make_pass(&app, event, json!({"name": "Week", "hours": 168})).await;
    assert_eq!(s, 201, "{v}");

    // Refused with the field named.
    for (body, field) in [
        (json!({"name": "Ana", "hours": 0}), "hours"),
        (json!({"name": "Ana", "hours": 169}), "hours"),
        (json!({"name": "Ana", "hours": -3}), "hours"),
        (json!({"name": "   "}), "name"),
        (json!({"name": "x".repeat(65)}), "name"),
        // 33 characters, 66 bytes: the pass holds at most 64 bytes of name.
        (json!({"name": "é".repeat(33)}), "name"),
        (json!({"name": "Ana\u{0}"}), "name"),
        (json!({"name": "Ana", "hours": 8.5}), "hours"),
        (json!({"name": "Ana", "hours": "8"}), "hours"),
        (json!({"hours": 8}), "name"),
        (json!({"name": 7}), "name"),
    ] {
        let (s, v) = make_pass(&app, event, body.clone()).await;
        assert_eq!(s, 422, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }
    let (s, v) = make_pass(&app, 999_999, json!({"name": "Ana"})).await;
    assert_eq!(s, 404, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_rules_round_trip_with_catalog_names_and_refuse_what_the_event_does_not_have() {
    let app = start().await;
    let event = app.event(10, 0).await; // ticket type 0 "Standard", add-on 0 "Drink"
    let other = app.event(10, 0).await;
    let (s, v) = app
        .admin(
            Method::POST,
            &format!("/admin/v1/events/{event}/ticket-types"),
            Some(json!({"name": "VIP", "price_cents": 0, "currency": "EUR", "capacity": 5})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let admin_path = format!("/admin/v1/events/{event}/gates");
    let device_path = scanner_core::wire::gate_rules_path(event as u32);
    let device = app.device_token(event).await;
    let other_device = app.device_token(other).await;

    let names = |gates: Vec<GateRule>| GateRules {
        format: GATE_RULES_FORMAT.to_owned(),
        event_id: event as u32,
        ticket_type_names: vec!["Standard".into(), "VIP".into()],
        addon_names: vec!["Drink".into()],
        gates,
    };
    let rules_of = |v: &Value| GateRules::from_json(&v.to_string()).expect("gate rules JSON");

    // Nothing set: no gates, with the catalog's names, for the admin and the device alike.
    let (s, v) = app.admin(Method::GET, &admin_path, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(rules_of(&v), names(vec![]));
    let (s, v, _) = send(&app, Method::GET, &device_path, Some(&device), None, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(rules_of(&v), names(vec![]));

    // Only the admin sets them.
    let body = json!({"gates": [{"gate": "VIP entrance", "ticket_types": [1]}, {"gate": "Bar", "redeems_addon": 0}]});
    let (s, _, _) = send(&app, Method::PUT, &admin_path, None, None, Some(body.clone())).await;
    assert_eq!(s, 401);
    let (s, _, _) = send(&app, Method::PUT, &admin_path, Some(&device), None, Some(body.clone())).await;
    assert_eq!(s, 401);

    let expected = names(vec![
        GateRule { gate: "VIP entrance".into(), ticket_types: Some(vec![1]), addons: None, redeems_addon: None },
        GateRule { gate: "Bar".into(), ticket_types: None, addons: None, redeems_addon: Some(0) },
    ]);
    let (s, v) = app.admin(Method::PUT, &admin_path, Some(body)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(rules_of(&v), expected);
    let (s, v) = app.admin(Method::GET, &admin_path, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(rules_of(&v), expected);
    let (s, v, _) = send(&app, Method::GET, &device_path, Some(&device), None, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(rules_of(&v), expected);
    // What a scanner then decides with them (scanner-core's own check).
    assert_eq!(
        rules_of(&v).check_entry("VIP entrance", 0, 0),
        scanner_core::gates::GateCheck::Wrong("VIP entrance admits VIP only — this is a Standard".into())
    );

    // Another event's device: 403 like the manifest; no token: 401. The other event has no rules.
    let (s, v, _) = send(&app, Method::GET, &device_path, Some(&other_device), None, None).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "forbidden");
    let (s, _, _) = send(&app, Method::GET, &device_path, None, None, None).await;
    assert_eq!(s, 401);
    let other_path = scanner_core::wire::gate_rules_path(other as u32);
    let (s, v, _) = send(&app, Method::GET, &other_path, Some(&other_device), None, None).await;
    assert_eq!(s, 200, "{v}");
    assert!(rules_of(&v).gates.is_empty());

    // Refused (422, nothing stored): what the catalog does not have, and scanner-core's limits.
    for (gates, says) in [
        (json!([{"gate": "X", "ticket_types": [2]}]), "ticket type 2"),
        (json!([{"gate": "X", "ticket_types": [-1]}]), "ticket type -1"),
        (json!([{"gate": "X", "addons": [1]}]), "add-on 1"),
        (json!([{"gate": "X", "redeems_addon": 3}]), "add-on 3"),
        (json!([{"gate": "X", "redeems_addon": 300}]), "add-on 300"),
        (json!([{"gate": "X"}, {"gate": "X"}]), "more than one rule"),
        (json!([{"gate": "X", "ticket_types": []}]), "empty list"),
        (json!([{"gate": "  "}]), "gate 1"),
        (json!([{"gate": "y".repeat(201)}]), "gate 1"),
    ] {
        let (s, v) = app.admin(Method::PUT, &admin_path, Some(json!({ "gates": gates }))).await;
        assert_eq!(s, 422, "{gates}: {v}");
        assert!(error_message(&v).contains(says), "{gates}: {v}");
    }
    let (s, v) = app.admin(Method::GET, &admin_path, None).await;
    assert_eq!(s, 200);
    assert_eq!(rules_of(&v), expected, "refused rules leave the stored ones");
    let (s, _) = app.admin(Method::PUT, "/admin/v1/events/999999/gates", Some(json!({"gates": []}))).await;
    assert_eq!(s, 404);

    // Saving an empty list clears them.
    let (s, v) = app.admin(Method::PUT, &admin_path, Some(json!({"gates": []}))).await;
    assert_eq!(s, 200, "{v}");
    let (_, v, _) = send(&app, Method::GET, &device_path, Some(&device), None, None).await;
    assert_eq!(rules_of(&v), names(vec![]));
}

/// Places a free order of `qty` tickets for `name` / `email` and returns (order id, the QR texts the order
/// API gave the buyer).
async fn buy(app: &App, event: i64, name: &str, email: &str, qty: i64) -> (String, Vec<String>) {
    let (s, v) = app
        .post(
            "/v1/orders",
            json!({"event_id": event, "name": name, "email": email, "items": [{"ticket_type": 0, "quantity": qty}], "payment": "free"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["order_id"].as_str().expect("order id").to_owned();
    let token = v["token"].as_str().expect("token").to_owned();
    let (s, order) = app.get_json(&format!("/v1/orders/{id}?token={token}")).await;
    assert_eq!(s, 200, "{order}");
    let texts = order["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .map(|t| t["qr_text"].as_str().expect("qr_text").to_owned())
        .collect();
    (id, texts)
}

async fn search(app: &App, event: i64, q: &str, device: &str, pass: Option<&str>) -> (u16, Value, Option<String>) {
    send(app, Method::GET, &search_path(event as u32, q), Some(device), pass, None).await
}

fn results(v: &Value) -> SearchResults {
    serde_json::from_value(v.clone()).expect("SearchResults")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisors_search_their_event_with_a_pass_and_get_the_buyers_qr_texts() {
    // 25 orders from one address in a moment: the per-address order limit would stop them.
    let app = start_with(|c| c.order_rate_per_minute = 0).await;
    let event = app.event(100, 0).await;
    let other = app.event(100, 0).await;
    let (zoe, zoe_texts) = buy(&app, event, "Zoë Quartermaine", "zq.tickets@example.org", 2).await;
    let (elsewhere, _) = buy(&app, other, "Zoë Quartermaine", "zq.tickets@example.org", 1).await;
    let (refunded, refunded_texts) = buy(&app, event, "Rufus Refundson", "rufus@example.org", 1).await;
    let (s, v) = app.admin(Method::POST, &format!("/admin/v1/orders/{refunded}/refund"), None).await;
    assert_eq!(s, 200, "{v}");

    let device = app.device_token(event).await;
    let other_device = app.device_token(other).await;
    let (s, v) = make_pass(&app, event, json!({"name": "Ana", "hours": 2})).await;
    assert_eq!(s, 201, "{v}");
    let pass = v["pass"].as_str().expect("pass").to_owned();
    let (_, v) = make_pass(&app, other, json!({"name": "Ana", "hours": 2})).await;
    let other_pass = v["pass"].as_str().expect("pass").to_owned();

    // A steward (device token, no pass): 403 saying a pass is needed. No device token: 401.
    let (s, v, _) = search(&app, event, "quartermaine", &device, None).await;
    assert_eq!(s, 403, "{v}");
    assert!(error_message(&v).contains("a supervisor pass is required"), "{v}");
    let (s, _, _) = send(&app, Method::GET, &search_path(event as u32, "quartermaine"), None, Some(&pass), None).await;
    assert_eq!(s, 401);
    // Another event's pass, another event's device, a pass not signed by the issuer, an expired one,
    // one that is not a pass at all: 403 with the reason.
    let (s, v, _) = search(&app, event, "quartermaine", &device, Some(&other_pass)).await;
    assert_eq!(s, 403, "{v}");
    assert!(error_message(&v).contains(&format!("event {other}")), "{v}");
    let (s, v, _) = search(&app, other, "quartermaine", &device, Some(&pass)).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "forbidden");
    let ring = published_keyring(&app).await;
    let key = issuer_key(&app, &ring);
    // The key is valid from the issuer's first start (moments ago), so a pass that has expired already is
    // one made now for a second: wait until that second is over.
    let t = now() as u32;
    let expired = SupervisorPass {
        event_id: event as u32,
        key_id: key.key_id(),
        issued_at: t,
        not_after: t + 1,
        name: "Ana".into(),
    };
    let expired = expired.sign(&key).expect("sign");
    while now() <= u64::from(t) + 1 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (s, v, _) = search(&app, event, "quartermaine", &device, Some(&expired)).await;
    assert_eq!(s, 403, "{v}");
    assert!(error_message(&v).contains("expired"), "{v}");
    let forger = IssuerKey::from_seed(key.key_id(), [7; 32]);
    let forged = SupervisorPass {
        event_id: event as u32,
        key_id: key.key_id(),
        issued_at: t,
        not_after: t + 3600,
        name: "Ana".into(),
    };
    let (s, v, _) = search(&app, event, "quartermaine", &device, Some(&forged.sign(&forger).expect("sign"))).await;
    assert_eq!(s, 403, "{v}");
    assert!(error_message(&v).contains("forged"), "{v}");
    let (s, _, _) = search(&app, event, "quartermaine", &device, Some("TK1:nope")).await;
    assert_eq!(s, 403);
    // A pass the test signs with the issuer's key for now is as good as the dashboard's.
    let (s, v, _) = search(&app, event, "quartermaine", &device, Some(&forged.sign(&key).expect("sign"))).await;
    assert_eq!(s, 200, "{v}");

    // Query length: 3 to 100 characters.
    for q in ["zq", "  z  ", &"q".repeat(101)] {
        let (s, v, _) = search(&app, event, q, &device, Some(&pass)).await;
        assert_eq!(s, 422, "{q:?}: {v}");
        assert_eq!(v["error"]["field"], "q");
    }

    // By buyer name (any case), by email, by order id prefix: the one order of this event, with the QR
    // texts the buyer got.
    for q in ["QUARTERmaine", "zoë quart", "zq.tickets@EXAMPLE", &zoe[..10]] {
        let (s, v, _) = search(&app, event, q, &device, Some(&pass)).await;
        assert_eq!(s, 200, "{q}: {v}");
        let r = results(&v);
        assert!(!r.truncated);
        assert_eq!(r.orders.len(), 1, "{q}: {v}");
        let o = &r.orders[0];
        assert_eq!(o.order_id, zoe, "{q}");
        assert_ne!(o.order_id, elsewhere);
        assert_eq!(o.buyer_name, "Zoë Quartermaine");
        assert_eq!(o.email, "zq.tickets@example.org");
        assert_eq!(o.status, "paid");
        assert_eq!(o.tickets.iter().map(|t| t.qr_text.clone()).collect::<Vec<_>>(), zoe_texts);
        for t in &o.tickets {
            assert_eq!(t.holder, "Zoë Quartermaine");
            assert_eq!((t.ticket_type, t.ticket_type_name.as_str()), (0, "Standard"));
            assert!(t.addons.is_empty());
            assert!(!t.revoked);
        }
    }
    // The other event's device and pass find the other event's order only.
    let (s, v, _) = search(&app, other, "quartermaine", &other_device, Some(&other_pass)).await;
    assert_eq!(s, 200, "{v}");
    let ids: Vec<String> = results(&v).orders.into_iter().map(|o| o.order_id).collect();
    assert_eq!(ids, vec![elsewhere.clone()]);
    // Wildcards are literal; nothing matches.
    let (s, v, _) = search(&app, event, "%%%", &device, Some(&pass)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(results(&v), SearchResults { orders: vec![], truncated: false });

    // Capital letters outside ASCII: found by any case of the query.
    let (elodie, _) = buy(&app, event, "Élodie Ørsted", "e.orsted@example.org", 1).await;
    for q in ["élodie", "ÉLODIE", "ørsted", "Ørsted", "die ør"] {
        let (s, v, _) = search(&app, event, q, &device, Some(&pass)).await;
        assert_eq!(s, 200, "{q}: {v}");
        let ids: Vec<String> = results(&v).orders.into_iter().map(|o| o.order_id).collect();
        assert_eq!(ids, vec![elodie.clone()], "{q}");
    }

    // A refunded order is found with its tickets marked revoked.
    let (s, v, _) = search(&app, event, "refundson", &device, Some(&pass)).await;
    assert_eq!(s, 200, "{v}");
    let r = results(&v);
    assert_eq!(r.orders.len(), 1);
    assert_eq!(r.orders[0].order_id, refunded);
    assert_eq!(r.orders[0].status, "refunded");
    assert_eq!(r.orders[0].tickets.len(), 1);
    assert!(r.orders[0].tickets[0].revoked);
    assert_eq!(r.orders[0].tickets[0].qr_text, refunded_texts[0]);

    // 25 matching orders: 20 of them, and `truncated`.
    let mut crowd = BTreeSet::new();
    for i in 1..=25 {
        crowd.insert(buy(&app, event, &format!("Crowd Person {i}"), &format!("crowd{i}@example.org"), 1).await.0);
    }
    let (s, v, _) = search(&app, event, "crowd", &device, Some(&pass)).await;
    assert_eq!(s, 200, "{v}");
    let r = results(&v);
    assert_eq!(MAX_SEARCH_RESULTS, 20);
    assert_eq!(r.orders.len(), 20);
    assert!(r.truncated);
    assert!(r.orders.iter().all(|o| crowd.contains(&o.order_id)), "only matching orders");
    assert_eq!(r.orders.iter().map(|o| &o.order_id).collect::<BTreeSet<_>>().len(), 20, "no order twice");
    let (s, v, _) = search(&app, event, "crowd person 25", &device, Some(&pass)).await;
    assert_eq!(s, 200, "{v}");
    let r = results(&v);
    assert_eq!((r.orders.len(), r.truncated), (1, false));
    assert_eq!(r.orders[0].email, "crowd25@example.org");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_are_limited_per_device() {
    let app = start().await;
    let event = app.event(10, 0).await;
    let busy = app.device_token(event).await;
    let calm = app.device_token(event).await;
    let (_, v) = make_pass(&app, event, json!({"name": "Ana"})).await;
    let pass = v["pass"].as_str().expect("pass").to_owned();
    for i in 0..30 {
        let (s, v, _) = search(&app, event, "nobody here", &busy, Some(&pass)).await;
        assert_eq!(s, 200, "search {i}: {v}");
    }
    let (s, v, retry) = search(&app, event, "nobody here", &busy, Some(&pass)).await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"]["code"], "rate_limited");
    let retry: u64 = retry.expect("Retry-After").parse().expect("seconds");
    assert!((1..=3).contains(&retry), "one search comes back every 2 s: {retry}");
    // Another device of the same event has its own budget.
    let (s, v, _) = search(&app, event, "nobody here", &calm, Some(&pass)).await;
    assert_eq!(s, 200, "{v}");
}
