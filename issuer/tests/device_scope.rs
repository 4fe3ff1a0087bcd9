//! Device tokens are bound to one event and revocable; the edge's token reads the revocation list and the
//! device list, nothing else. Against a real server on a random port (HTTP, as an attacker would).

mod common;

use common::start;
use reqwest::Method;
use scanner_core::{Keyring, RevocationList};
use serde_json::{json, Value};

/// Status and JSON body of a request with `token` as bearer (none when `None`).
async fn call(
    app: &common::App,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let mut req = app.http.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/octet-stream").body(b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn get(app: &common::App, path: &str, token: &str) -> (u16, Value) {
    call(app, Method::GET, path, Some(token), None).await
}

async fn device(app: &common::App, name: &str, event: i64) -> (String, String) {
    let (s, v) = app.admin(Method::POST, "/admin/v1/devices", Some(json!({"name": name, "event": event}))).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["event"], event);
    (v["id"].as_str().expect("id").to_owned(), v["token"].as_str().expect("token").to_owned())
}

fn assert_forbidden(what: &str, (status, body): (u16, Value)) {
    assert_eq!(status, 403, "{what}: {body}");
    assert_eq!(body["error"]["code"], "forbidden", "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_token_works_for_its_own_event_only_and_stops_when_revoked() {
    let app = start().await;
    let one = app.event(10, 0).await;
    let two = app.event(10, 0).await;
    let (id, token) = device(&app, "North", one).await;

    // Its own event: every scanner endpoint answers.
    assert_eq!(get(&app, &format!("/v1/scanner/events/{one}/manifest"), &token).await.0, 200);
    assert_eq!(get(&app, &format!("/v1/scanner/revocations?since=0&event={one}"), &token).await.0, 200);
    assert_eq!(get(&app, "/v1/scanner/revocations?since=0", &token).await.0, 200);
    assert_eq!(get(&app, &format!("/v1/scanner/keyring?event={one}"), &token).await.0, 200);
    // A sync message that is not one: past authentication, refused as a bad message.
    let (s, v) = call(&app, Method::POST, &format!("/v1/sync?event={one}"), Some(&token), Some(vec![0x42; 8])).await;
    assert_eq!(s, 400, "{v}");

    // Another event: 403 with a clear error, whatever the endpoint.
    let (s, v) = get(&app, &format!("/v1/scanner/events/{two}/manifest"), &token).await;
    assert_forbidden("manifest of another event", (s, v.clone()));
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("event {one}")) && message.contains(&format!("event {two}")), "{v}");
    assert_forbidden(
        "revocations for another event",
        get(&app, &format!("/v1/scanner/revocations?since=0&event={two}"), &token).await,
    );
    assert_forbidden("keyring for another event", get(&app, &format!("/v1/scanner/keyring?event={two}"), &token).await);
    assert_forbidden(
        "sync into another event's log",
        call(&app, Method::POST, &format!("/v1/sync?event={two}"), Some(&token), Some(vec![0x42; 8])).await,
    );
    // The keyring stays public without a token.
    assert_eq!(app.get_json(&format!("/v1/scanner/keyring?event={two}")).await.0, 200);

    // The admin API lists the device with its event.
    let (_, list) = app.admin(Method::GET, "/admin/v1/devices", None).await;
    let listed = list["devices"].as_array().unwrap().iter().find(|d| d["id"] == id.as_str()).cloned().unwrap();
    assert_eq!(listed["event"], one, "{listed}");

    // Revoked: refused at once (401) by every scanner endpoint.
    let (s, _) = app.admin(Method::POST, &format!("/admin/v1/devices/{id}/revoke"), None).await;
    assert_eq!(s, 204);
    assert_eq!(get(&app, &format!("/v1/scanner/events/{one}/manifest"), &token).await.0, 401);
    assert_eq!(get(&app, "/v1/scanner/revocations?since=0", &token).await.0, 401);
    assert_eq!(get(&app, "/v1/scanner/keyring", &token).await.0, 401);
    let (s, _) = call(&app, Method::POST, &format!("/v1/sync?event={one}"), Some(&token), Some(vec![0x42; 8])).await;
    assert_eq!(s, 401);
    // Revoking twice is a 404 (no active device), not a silent success.
    assert_eq!(app.admin(Method::POST, &format!("/admin/v1/devices/{id}/revoke"), None).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_need_an_event_and_old_devices_without_one_are_refused() {
    let app = start().await;
    let one = app.event(10, 0).await;
    let (s, v) = app.admin(Method::POST, "/admin/v1/devices", Some(json!({"name": "No event"}))).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["field"], "event");

    // A device created before tokens were bound to an event (the migration leaves its event NULL).
    let legacy = "legacy-device-token-from-before-event-scoping";
    sqlx::query("INSERT INTO devices (id, name, token_hash, created_at) VALUES ('dev_legacy', 'Old', $1, 0)")
        .bind(scanner_core::token::token_hash_hex(legacy))
        .execute(&app.running.state.db.write)
        .await
        .unwrap();
    let (s, v) = get(&app, &format!("/v1/scanner/events/{one}/manifest"), legacy).await;
    assert_forbidden("device without an event", (s, v.clone()));
    assert!(v["error"]["message"].as_str().unwrap_or_default().contains("create a new device"), "{v}");
    assert_forbidden("device without an event", get(&app, "/v1/scanner/revocations", legacy).await);
    let (_, list) = app.admin(Method::GET, "/admin/v1/devices", None).await;
    let old = list["devices"].as_array().unwrap().iter().find(|d| d["id"] == "dev_legacy").cloned().unwrap();
    assert_eq!(old["event"], Value::Null, "{old}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_token_reads_the_revocation_list_and_the_device_list_and_nothing_else() {
    let app = start().await;
    let one = app.event(10, 0).await;
    let two = app.event(10, 0).await;
    let (north_id, north) = device(&app, "North", one).await;
    let (_, south) = device(&app, "South", two).await;
    let (_, order) = app.order(one, "Ada", 1, "free").await;
    let order_id = order["order_id"].as_str().expect("order id").to_owned();

    let (s, created) = app.admin(Method::POST, "/admin/v1/edge-tokens", Some(json!({"name": "Worker"}))).await;
    assert_eq!(s, 201, "{created}");
    let edge = created["token"].as_str().expect("edge token").to_owned();
    let edge_id = created["id"].as_str().expect("edge token id").to_owned();

    // The device list: exactly the active devices' token hashes, each with its event.
    let (s, list) = get(&app, "/v1/edge/devices", &edge).await;
    assert_eq!(s, 200, "{list}");
    let entries = |list: &Value| -> Vec<(String, i64)> {
        let mut v: Vec<(String, i64)> = list["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .map(|d| (d["token_hash"].as_str().expect("hash").to_owned(), d["event"].as_i64().expect("event")))
            .collect();
        v.sort();
        v
    };
    let mut expected =
        vec![(scanner_core::token::token_hash_hex(&north), one), (scanner_core::token::token_hash_hex(&south), two)];
    expected.sort();
    assert_eq!(entries(&list), expected);
    assert!(!list.to_string().contains(&north), "the list carries hashes, never tokens");

    // The signed revocation list, verifiable against the public keyring.
    let resp = app.http.get(app.url("/v1/scanner/revocations?since=0")).bearer_auth(&edge).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let revocations = resp.text().await.unwrap();
    let keyring = app.http.get(app.url("/v1/keyring")).send().await.unwrap().text().await.unwrap();
    RevocationList::from_json(&revocations, &Keyring::from_json(&keyring).unwrap()).expect("a signed list");

    // Nothing else: orders, admin, sync, manifests, reports all refuse it.
    for (method, path) in [
        (Method::GET, "/admin/v1/orders".to_owned()),
        (Method::GET, format!("/admin/v1/orders/{order_id}")),
        (Method::POST, format!("/admin/v1/orders/{order_id}/refund")),
        (Method::POST, format!("/admin/v1/orders/{order_id}/cancel")),
        (Method::GET, "/admin/v1/devices".to_owned()),
        (Method::POST, "/admin/v1/devices".to_owned()),
        (Method::POST, format!("/admin/v1/devices/{north_id}/revoke")),
        (Method::GET, "/admin/v1/edge-tokens".to_owned()),
        (Method::POST, "/admin/v1/edge-tokens".to_owned()),
        (Method::GET, format!("/admin/v1/events/{one}/redemptions")),
        (Method::POST, "/admin/v1/events".to_owned()),
        (Method::GET, format!("/v1/scanner/events/{one}/manifest")),
        (Method::POST, format!("/v1/sync?event={one}")),
    ] {
        let (s, v) = call(&app, method.clone(), &path, Some(&edge), Some(vec![0x42; 8])).await;
        assert!(s == 401 || s == 403, "{method} {path} with the edge token: {s} {v}");
    }
    // ...and the order it tried to refund is untouched.
    let (_, o) = app.admin(Method::GET, &format!("/admin/v1/orders/{order_id}"), None).await;
    assert_eq!(o["status"], "confirmed", "{o}");

    // The device list is the edge's alone: a device token, the admin token or none are refused.
    assert_eq!(get(&app, "/v1/edge/devices", &north).await.0, 401);
    assert_eq!(get(&app, "/v1/edge/devices", app.running.admin_token()).await.0, 401);
    assert_eq!(call(&app, Method::GET, "/v1/edge/devices", None, None).await.0, 401);

    // A revoked device leaves the list.
    assert_eq!(app.admin(Method::POST, &format!("/admin/v1/devices/{north_id}/revoke"), None).await.0, 204);
    let (_, list) = get(&app, "/v1/edge/devices", &edge).await;
    assert_eq!(entries(&list), vec![(scanner_core::token::token_hash_hex(&south), two)]);

    // A revoked edge token reads nothing.
    let (_, tokens) = app.admin(Method::GET, "/admin/v1/edge-tokens", None).await;
    assert_eq!(tokens["edge_tokens"][0]["id"], edge_id.as_str(), "{tokens}");
    assert!(!tokens.to_string().contains(&edge), "the token is shown once, at creation");
    assert_eq!(app.admin(Method::POST, &format!("/admin/v1/edge-tokens/{edge_id}/revoke"), None).await.0, 204);
    assert_eq!(get(&app, "/v1/edge/devices", &edge).await.0, 401);
    assert_eq!(get(&app, "/v1/scanner/revocations", &edge).await.0, 401);
}
