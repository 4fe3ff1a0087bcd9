//! Hub tokens over real HTTP against a real issuer and SQLite file: who may create and revoke them, that
//! they are stored hashed and audited, and what the sync endpoint accepts from them (the relay channel of
//! their own event, nothing else). Expected statuses are written out here from the rules.

mod common;

use common::App;
use reqwest::Method;
use scanner_core::redemption::document::{Accept, Batch, PeerState};
use scanner_core::redemption::server_log::ServerLogs;
use scanner_core::redemption::sync_log::ClientTurn;
use scanner_core::redemption::{Hlc, Outcome, RedemptionDoc, ScanKind, ScanRecord, SyncChannel, TicketRef};
use scanner_core::token::device_id_for_token;
use scanner_core::wire::REFUSED_CHANGES_HEADER;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";

struct Session {
    cookie: String,
    csrf: String,
}

/// An account with `role` (invited with the admin token, invitation accepted), signed in.
async fn signed_in(app: &App, email: &str, role: &str) -> Session {
    let (s, v) = app.admin(Method::POST, "/admin/v1/staff", Some(json!({"email": email, "role": role}))).await;
    assert_eq!(s, 201, "{v}");
    let token = v["invitation_url"].as_str().and_then(|u| u.split("#invite=").nth(1)).expect("invitation token");
    let (s, a) = app.post("/admin/v1/invitations/accept", json!({"token": token, "password": PASSWORD})).await;
    assert_eq!(s, 200, "{a}");
    let resp = app
        .http
        .post(app.url("/admin/v1/session"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("sign in");
    assert_eq!(resp.status().as_u16(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    let v: Value = resp.json().await.expect("session json");
    Session { cookie, csrf: v["csrf_token"].as_str().expect("csrf").to_owned() }
}

async fn as_session(app: &App, s: &Session, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app.http.request(method, app.url(path)).header("cookie", &s.cookie).header("x-csrf-token", &s.csrf);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The first message of a relay session from an empty log: a well-formed sync message.
fn first_relay_message() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = ServerLogs::new();
    let (message, _) = logs
        .with(dir.path(), 1, None, |log| {
            log.client_step("issuer", SyncChannel::Relay, ClientTurn::Begin, common::sync::now_ms())
        })
        .expect("client step");
    message.expect("a first message")
}

/// `POST /v1/sync?event=E&channel=C` with `token` and `body`: the status.
async fn sync_status(app: &App, event: i64, channel: &str, token: &str, body: Vec<u8>) -> u16 {
    let url = app.url(&format!("/v1/sync?event={event}&channel={channel}"));
    let resp = app
        .http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .expect("sync");
    resp.status().as_u16()
}

#[tokio::test]
async fn hub_tokens_roles_scope_and_revocation() {
    let app = common::start().await;
    let event = app.event(10, 0).await;
    let other_event = app.event(10, 0).await;
    let path = format!("/admin/v1/events/{event}/hub-tokens");

    // Roles: the box office has no Door permission, the door supervisor has.
    let box_office = signed_in(&app, "box@example.org", "box_office").await;
    let door = signed_in(&app, "door@example.org", "door_supervisor").await;
    let (s, v) = as_session(&app, &box_office, Method::POST, &path, Some(json!({"name": "Hall hub"}))).await;
    assert_eq!(s, 403, "{v}");
    let (s, created) = as_session(&app, &door, Method::POST, &path, Some(json!({"name": "Hall hub"}))).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!((created["event"].as_i64(), created["name"].as_str()), (Some(event), Some("Hall hub")));
    let id = created["id"].as_str().expect("id").to_owned();
    let token = created["token"].as_str().expect("token shown once").to_owned();
    // No such event: 404, nothing created.
    let (s, _) =
        as_session(&app, &door, Method::POST, "/admin/v1/events/999999/hub-tokens", Some(json!({"name": "x"}))).await;
    assert_eq!(s, 404);

    // Stored hashed: the secret is nowhere in the table; the list shows no secret.
    let rows: Vec<(String, String, i64)> = sqlx::query_as("SELECT id, token_hash, event_id FROM hub_tokens")
        .fetch_all(&app.running.state.db.read)
        .await
        .expect("hub_tokens");
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].0.as_str(), rows[0].2), (id.as_str(), event));
    assert_ne!(rows[0].1, token);
    assert_eq!(rows[0].1.len(), 64, "SHA-256 hex");
    let (s, list) = as_session(&app, &door, Method::GET, &path, None).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["hub_tokens"].as_array().map(Vec::len), Some(1), "{list}");
    assert!(!list.to_string().contains(&token), "the list never shows the token");

    // The relay channel of its own event accepts it; everything else refuses it.
    let message = first_relay_message();
    let s = sync_status(&app, event, "relay", &token, message.clone()).await;
    assert!(s == 200 || s == 204, "a hub relays its event: {s}");
    assert_eq!(sync_status(&app, other_event, "relay", &token, message.clone()).await, 403, "another event");
    assert_eq!(sync_status(&app, event, "push", &token, message.clone()).await, 403, "a hub token only relays");
    assert_eq!(sync_status(&app, event, "pull", &token, message.clone()).await, 403, "a hub token only relays");
    let device = app.device_token(event).await;
    assert_eq!(sync_status(&app, event, "relay", &device, message.clone()).await, 403, "a device cannot relay");
    assert_eq!(sync_status(&app, event, "relay", "not-a-token", message.clone()).await, 401);
    let huge = vec![0u8; scanner_core::redemption::document::MAX_SYNC_MESSAGE_BYTES + 1];
    assert_eq!(sync_status(&app, event, "relay", &token, huge).await, 413, "size limit as for devices");
    assert_eq!(sync_status(&app, event, "relay", &token, vec![1u8; 64]).await, 400, "a damaged message");
    // It is no staff credential either.
    let r = app.http.get(app.url("/admin/v1/devices")).bearer_auth(&token).send().await.expect("admin");
    assert_eq!(r.status().as_u16(), 401);

    // Revocation: the box office may not, the door supervisor may; revoked → 401 at once.
    let revoke = format!("{path}/{id}/revoke");
    assert_eq!(as_session(&app, &box_office, Method::POST, &revoke, None).await.0, 403);
    let wrong_event = format!("/admin/v1/events/{other_event}/hub-tokens/{id}/revoke");
    assert_eq!(as_session(&app, &door, Method::POST, &wrong_event, None).await.0, 404, "not that event's token");
    assert_eq!(as_session(&app, &door, Method::POST, &revoke, None).await.0, 204);
    assert_eq!(sync_status(&app, event, "relay", &token, message.clone()).await, 401);
    assert_eq!(as_session(&app, &door, Method::POST, &revoke, None).await.0, 404, "already revoked");

    // Audited: one creation and one revocation, by the door supervisor.
    let (s, audit) = app.admin(Method::GET, "/admin/v1/audit", None).await;
    assert_eq!(s, 200, "{audit}");
    let entries: Vec<&Value> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["target"].as_str() == Some(&format!("hub_token:{id}")))
        .collect();
    let mut actions: Vec<&str> = entries.iter().filter_map(|e| e["action"].as_str()).collect();
    actions.sort_unstable();
    assert_eq!(actions, ["hub_token.create", "hub_token.revoke"], "{audit:#}");
    assert!(!audit.to_string().contains(&token), "the audit log never holds the token");
}

#[tokio::test]
async fn an_event_has_at_most_twenty_active_hub_tokens() {
    let app = common::start().await;
    let event = app.event(10, 0).await;
    let path = format!("/admin/v1/events/{event}/hub-tokens");
    for i in 0..20 {
        let (s, v) = app.admin(Method::POST, &path, Some(json!({"name": format!("hub {i}")}))).await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = app.admin(Method::POST, &path, Some(json!({"name": "one too many"}))).await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = app.admin(Method::POST, &path, Some(json!({"name": "x".repeat(101)}))).await;
    assert_eq!(s, 422, "a name longer than 100 bytes: {v}");
}

/// A log holding one batch of `records` admissions written by `device`, as that device writes it.
fn device_log(device: scanner_core::redemption::DeviceId, first: u8, records: u8) -> RedemptionDoc {
    let records: Vec<ScanRecord> = (first..first + records)
        .map(|n| ScanRecord {
            ticket: TicketRef([n; 12]),
            hlc: Hlc((common::sync::now_ms() - 60_000 + u64::from(n)) << 16),
            wall_time: (common::sync::now_ms() / 1000) as u32 - 60,
            gate: 0,
            kind: ScanKind::Entry,
            reentry: false,
            outcome: Outcome::Admitted,
            ticket_type: 0,
            decided_by_edge: false,
            addon: None,
        })
        .collect();
    let mut doc = RedemptionDoc::new_for_device(device);
    let batch = Batch { device_name: "door", gates: &["North".to_owned()], records: &records, overrides: &[], time: 0 };
    doc.append_batch(device, batch).expect("append");
    doc
}

#[tokio::test]
async fn a_hub_relay_cannot_bring_records_of_a_made_up_device() {
    let app = common::start().await;
    let event = app.event(10, 0).await;
    let (s, created) =
        app.admin(Method::POST, &format!("/admin/v1/events/{event}/hub-tokens"), Some(json!({"name": "hub"}))).await;
    assert_eq!(s, 201, "{created}");
    let hub_token = created["token"].as_str().expect("token").to_owned();
    // The hub holds 2 scans of a door device registered for the event, and 3 under an id no one created.
    let registered = device_id_for_token(&app.device_token(event).await);
    let made_up = scanner_core::redemption::DeviceId(0x2bad_0000_0000_0001);
    let mut hub = RedemptionDoc::new_relay();
    hub.merge(&device_log(registered, 1, 2)).expect("merge");
    hub.merge(&device_log(made_up, 10, 3)).expect("merge");

    let url = app.url(&format!("/v1/sync?event={event}&channel=relay"));
    let mut state = PeerState::new();
    let (mut refused, mut rounds) = (0u64, 0);
    while let Some(message) = hub.generate_sync_message(&mut state) {
        rounds += 1;
        assert!(rounds <= 30, "the relay session ends");
        let resp = app
            .http
            .post(&url)
            .bearer_auth(&hub_token)
            .header("content-type", "application/octet-stream")
            .body(message)
            .send()
            .await
            .expect("relay");
        let status = resp.status().as_u16();
        assert!(status == 200 || status == 204, "{status}");
        refused += resp
            .headers()
            .get(REFUSED_CHANGES_HEADER)
            .map(|v| v.to_str().expect("ascii").parse::<u64>().expect("a count"))
            .unwrap_or(0);
        let body = resp.bytes().await.expect("body");
        if status == 204 {
            break;
        }
        hub.receive_sync_message(&mut state, &body, Accept::relay(common::sync::now_ms())).expect("the issuer's reply");
    }
    assert_eq!(refused, 1, "the made-up device's one change is refused and counted");

    let report = common::sync::report(&app, event).await;
    assert_eq!((report["scans"].as_u64(), report["admitted"].as_u64()), (Some(2), Some(2)), "{report:#}");
    let devices: Vec<&str> =
        report["devices"].as_array().expect("devices").iter().filter_map(|d| d["device"].as_str()).collect();
    assert_eq!(devices, vec![registered.to_hex()], "{report:#}");
}
