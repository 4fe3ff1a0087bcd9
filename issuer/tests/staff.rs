//! Staff accounts over real HTTP against a real issuer and SQLite file: the role matrix, sessions (cookie
//! attributes, CSRF, expiry, logout), sign-in throttling, API tokens, invitations, the audit log and hostile
//! input. Expected values are written out here, not read back from the code under test.

mod common;

use common::App;
use reqwest::Method;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";

/// A signed-in browser: the session cookie and the CSRF token the sign-in answered with.
struct Session {
    cookie: String,
    csrf: String,
}

async fn send(
    app: &App,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = app.http.request(method, app.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), headers)
}

/// Creates an account with `role` through the admin token, accepts its invitation with [`PASSWORD`].
async fn account(app: &App, email: &str, role: &str) -> i64 {
    let (s, v) = app.admin(Method::POST, "/admin/v1/staff", Some(json!({"email": email, "role": role}))).await;
    assert_eq!(s, 201, "{v}");
    let url = v["invitation_url"].as_str().expect("invitation url");
    assert!(url.starts_with(&format!("{}/dashboard/#invite=", app.running.state.public_url)), "{url}");
    let token = url.split("#invite=").nth(1).expect("token");
    let (s, a) = app.post("/admin/v1/invitations/accept", json!({"token": token, "password": PASSWORD})).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["email"], json!(email));
    v["id"].as_i64().expect("id")
}

async fn login_raw(app: &App, email: &str, password: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    send(app, Method::POST, "/admin/v1/session", &[], Some(json!({"email": email, "password": password}))).await
}

async fn login(app: &App, email: &str) -> Session {
    let (s, v, h) = login_raw(app, email, PASSWORD).await;
    assert_eq!(s, 200, "{v}");
    let set = h.get("set-cookie").expect("set-cookie").to_str().expect("ascii");
    let cookie = set.split(';').next().expect("pair").to_owned();
    Session { cookie, csrf: v["csrf_token"].as_str().expect("csrf").to_owned() }
}

/// A request with the session cookie and its CSRF token.
async fn as_session(app: &App, s: &Session, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let (st, v, _) =
        send(app, method, path, &[("cookie", s.cookie.as_str()), ("x-csrf-token", s.csrf.as_str())], body).await;
    (st, v)
}

async fn audit(app: &App, query: &str) -> Vec<Value> {
    let (s, v) = app.admin(Method::GET, &format!("/admin/v1/audit?{query}"), None).await;
    assert_eq!(s, 200, "{v}");
    v["entries"].as_array().expect("entries").clone()
}

/// One representative request per permission; `fresh` makes names unique per call.
async fn try_permission(app: &App, s: &Session, permission: &str, fresh: usize) -> u16 {
    match permission {
        "catalog" => {
            let body = json!({"name": format!("Role test {fresh}"), "venue": "Hall", "starts_at": 2_000_000_000i64,
                              "ends_at": 2_000_010_000i64, "timezone": "Europe/Berlin"});
            as_session(app, s, Method::POST, "/admin/v1/events", Some(body)).await.0
        }
        "orders" => as_session(app, s, Method::GET, "/admin/v1/email-jobs", None).await.0,
        "door" => {
            let body = json!({"name": format!("edge {fresh}")});
            as_session(app, s, Method::POST, "/admin/v1/edge-tokens", Some(body)).await.0
        }
        "reports" => as_session(app, s, Method::GET, "/admin/v1/devices", None).await.0,
        "staff" => as_session(app, s, Method::GET, "/admin/v1/staff", None).await.0,
        other => panic!("unknown permission {other}"),
    }
}

#[tokio::test]
async fn each_role_against_each_permission() {
    let app = common::start().await;
    // The table of the issue: owner everything; box office orders and reports; door supervisor door and
    // reports; viewer reports only. Success codes: 201 for the two creating requests, 200 for the reads.
    let ok = |p: &str| if p == "catalog" || p == "door" { 201 } else { 200 };
    let allowed: [(&str, &[&str]); 4] = [
        ("owner", &["catalog", "orders", "door", "reports", "staff"]),
        ("box_office", &["orders", "reports"]),
        ("door_supervisor", &["door", "reports"]),
        ("viewer", &["reports"]),
    ];
    let mut n = 0;
    for (role, perms) in allowed {
        let email = format!("{role}@example.org");
        account(&app, &email, role).await;
        let s = login(&app, &email).await;
        let (st, me) = as_session(&app, &s, Method::GET, "/admin/v1/session", None).await;
        assert_eq!(st, 200);
        assert_eq!(me["role"], json!(role));
        assert_eq!(me["permissions"], json!(perms), "{role}");
        for p in ["catalog", "orders", "door", "reports", "staff"] {
            n += 1;
            let status = try_permission(&app, &s, p, n).await;
            let expected = if perms.contains(&p) { ok(p) } else { 403 };
            assert_eq!(status, expected, "{role} → {p}");
        }
    }
    // Without any credentials: 401 everywhere.
    for path in ["/admin/v1/devices", "/admin/v1/staff", "/admin/v1/audit", "/admin/v1/session"] {
        assert_eq!(app.get_json(path).await.0, 401, "{path}");
    }
    app.running.shutdown().await;
}

#[tokio::test]
async fn cookie_writes_need_the_csrf_token() {
    let app = common::start().await;
    account(&app, "door@example.org", "door_supervisor").await;
    let s = login(&app, "door@example.org").await;
    let body = json!({"name": "edge"});
    let cookie = ("cookie", s.cookie.as_str());
    let (st, v, _) = send(&app, Method::POST, "/admin/v1/edge-tokens", &[cookie], Some(body.clone())).await;
    assert_eq!(st, 403, "no CSRF header: {v}");
    assert_eq!(v["error"]["code"], json!("forbidden"));
    let wrong = format!("{}x", s.csrf);
    let (st, _, _) =
        send(&app, Method::POST, "/admin/v1/edge-tokens", &[cookie, ("x-csrf-token", &wrong)], Some(body.clone()))
            .await;
    assert_eq!(st, 403, "wrong CSRF token");
    // Another session's token is wrong for this one.
    let other = login(&app, "door@example.org").await;
    let (st, _, _) = send(
        &app,
        Method::POST,
        "/admin/v1/edge-tokens",
        &[cookie, ("x-csrf-token", other.csrf.as_str())],
        Some(body.clone()),
    )
    .await;
    assert_eq!(st, 403, "another session's CSRF token");
    let (st, _, _) = send(&app, Method::DELETE, "/admin/v1/session", &[cookie], None).await;
    assert_eq!(st, 403, "a cross-site page cannot sign anyone out either");
    // Nothing was created by the refused requests.
    let (_, list) = app.admin(Method::GET, "/admin/v1/edge-tokens", None).await;
    assert_eq!(list["edge_tokens"].as_array().map(Vec::len), Some(0));
    // Reads need no CSRF token; the right token lets the write through.
    assert_eq!(send(&app, Method::GET, "/admin/v1/edge-tokens", &[cookie], None).await.0, 200);
    assert_eq!(as_session(&app, &s, Method::POST, "/admin/v1/edge-tokens", Some(body)).await.0, 201);
    app.running.shutdown().await;
}

#[tokio::test]
async fn session_cookie_attributes_expiry_and_logout() {
    let app = common::start().await;
    let id = account(&app, "viewer@example.org", "viewer").await;
    let (st, _, h) = login_raw(&app, "viewer@example.org", PASSWORD).await;
    assert_eq!(st, 200);
    let set = h.get("set-cookie").and_then(|v| v.to_str().ok()).expect("cookie").to_owned();
    let value = set.split(';').next().and_then(|p| p.split_once('=')).map(|(_, v)| v.to_owned()).expect("value");
    // 256 random bits, base64url without padding: 43 characters.
    assert_eq!(value.len(), 43, "{set}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/admin/", "Max-Age=43200"] {
        assert!(set.split("; ").any(|a| a == attr), "{attr} missing in {set}");
    }
    assert!(!set.contains("Secure"), "plain http: no Secure attribute ({set})");
    // The store holds the id's SHA-256 only.
    let (stored,): (String,) = sqlx::query_as("SELECT id_hash FROM staff_sessions WHERE account_id = $1")
        .bind(id)
        .fetch_one(&app.running.state.db.read)
        .await
        .unwrap();
    assert_ne!(stored, value);
    assert_eq!(stored.len(), 64);

    // Logout ends the session on the server, not only in the browser.
    let s = login(&app, "viewer@example.org").await;
    assert_eq!(as_session(&app, &s, Method::GET, "/admin/v1/devices", None).await.0, 200);
    let (st, _, h) =
        send(&app, Method::DELETE, "/admin/v1/session", &[("cookie", &s.cookie), ("x-csrf-token", &s.csrf)], None)
            .await;
    assert_eq!(st, 204);
    assert!(h.get("set-cookie").and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("Max-Age=0")));
    assert_eq!(as_session(&app, &s, Method::GET, "/admin/v1/devices", None).await.0, 401);

    // Past the absolute expiry, and past the idle limit: refused.
    let s = login(&app, "viewer@example.org").await;
    let db = &app.running.state.db.write;
    sqlx::query("UPDATE staff_sessions SET expires_at = 1").execute(db).await.unwrap();
    assert_eq!(as_session(&app, &s, Method::GET, "/admin/v1/devices", None).await.0, 401);
    let s = login(&app, "viewer@example.org").await;
    sqlx::query("UPDATE staff_sessions SET last_seen_at = last_seen_at - 2 * 3600").execute(db).await.unwrap();
    assert_eq!(as_session(&app, &s, Method::GET, "/admin/v1/devices", None).await.0, 401);

    // Disabling the account ends its sessions.
    let s = login(&app, "viewer@example.org").await;
    let (st, v) = app.admin(Method::PATCH, &format!("/admin/v1/staff/{id}"), Some(json!({"disabled": true}))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], json!("disabled"));
    assert_eq!(as_session(&app, &s, Method::GET, "/admin/v1/devices", None).await.0, 401);
    // ... and it cannot sign in again (the same answer as a wrong password).
    let (st, v, _) = login_raw(&app, "viewer@example.org", PASSWORD).await;
    assert_eq!((st, v["error"]["message"].clone()), (401, json!("wrong email or password")));

    // Garbage cookies are simply not a session.
    for c in ["tickets_staff_session=", "tickets_staff_session=AAAA", "tickets_staff_session=%00; a=b"] {
        let (st, _, _) = send(&app, Method::GET, "/admin/v1/devices", &[("cookie", c)], None).await;
        assert_eq!(st, 401, "{c:?}");
    }
    app.running.shutdown().await;
}

#[tokio::test]
async fn secure_cookie_over_https() {
    let app = common::start_with(|c| c.public_url = Some("https://tickets.example.org".into())).await;
    account(&app, "o@example.org", "owner").await;
    let (_, _, h) = login_raw(&app, "o@example.org", PASSWORD).await;
    let set = h.get("set-cookie").and_then(|v| v.to_str().ok()).expect("cookie");
    assert!(set.split("; ").any(|a| a == "Secure"), "{set}");
    app.running.shutdown().await;
}

#[tokio::test]
async fn sign_in_is_throttled_per_address_and_per_ip_with_the_same_answers() {
    let app = common::start().await;
    account(&app, "known@example.org", "box_office").await;
    // Five failures for a known address and five for an unknown one: every answer is the same 401.
    let mut answers = Vec::new();
    for _ in 0..5 {
        for email in ["known@example.org", "nobody@example.org"] {
            let (st, v, _) = login_raw(&app, email, "wrong password here").await;
            answers.push((st, v));
        }
    }
    let first = answers[0].clone();
    assert_eq!(first.0, 401);
    assert_eq!(first.1, json!({"error": {"code": "unauthorized", "message": "wrong email or password"}}));
    assert!(answers.iter().all(|a| *a == first), "{answers:?}");
    // The sixth attempt is refused without checking the password, even the right one; unknown alike.
    for email in ["known@example.org", "nobody@example.org"] {
        let (st, v, h) = login_raw(&app, email, PASSWORD).await;
        assert_eq!(st, 429, "{email}: {v}");
        let retry: u64 = h.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap();
        assert!((1..=15 * 60).contains(&retry), "{retry}");
    }
    // One audit row for the locked account, none per failure and none for the unknown address.
    let locked = audit(&app, "action=staff.login_locked").await;
    assert_eq!(locked.len(), 1, "{locked:?}");
    assert_eq!(locked[0]["actor_email"], json!("known@example.org"));
    assert!(audit(&app, "action=staff.login").await.is_empty());

    // Per IP: ten more failures on fresh addresses reach the IP's limit of twenty; then even a fresh
    // address with no failures of its own is refused from this IP.
    for i in 0..10 {
        let (st, _, _) = login_raw(&app, &format!("fresh{i}@example.org"), "wrong password here").await;
        assert_eq!(st, 401);
    }
    account(&app, "other@example.org", "viewer").await;
    let (st, _, _) = login_raw(&app, "other@example.org", PASSWORD).await;
    assert_eq!(st, 429, "the IP is locked");
    app.running.shutdown().await;
}

#[tokio::test]
async fn a_successful_sign_in_clears_the_address_counter() {
    let app = common::start().await;
    account(&app, "a@example.org", "viewer").await;
    for _ in 0..4 {
        assert_eq!(login_raw(&app, "a@example.org", "wrong password here").await.0, 401);
    }
    login(&app, "a@example.org").await;
    for _ in 0..4 {
        assert_eq!(login_raw(&app, "a@example.org", "wrong password here").await.0, 401);
    }
    assert_eq!(login_raw(&app, "a@example.org", PASSWORD).await.0, 200, "four failures after a success");
    app.running.shutdown().await;
}

#[tokio::test]
async fn api_tokens_act_with_the_role_until_revoked() {
    let app = common::start().await;
    let id = account(&app, "box@example.org", "box_office").await;
    let s = login(&app, "box@example.org").await;
    let (st, t) =
        as_session(&app, &s, Method::POST, "/admin/v1/api-tokens", Some(json!({"name": "nightly export"}))).await;
    assert_eq!(st, 201, "{t}");
    let token = t["token"].as_str().expect("token").to_owned();
    let bearer = format!("Bearer {token}");
    let auth = ("authorization", bearer.as_str());
    // A bearer token needs no CSRF token; it has the account's role: orders yes, door no.
    assert_eq!(send(&app, Method::GET, "/admin/v1/email-jobs", &[auth], None).await.0, 200);
    let (st, _, _) = send(&app, Method::POST, "/admin/v1/edge-tokens", &[auth], Some(json!({"name": "x"}))).await;
    assert_eq!(st, 403);
    let (_, me, _) = send(&app, Method::GET, "/admin/v1/session", &[auth], None).await;
    assert_eq!((me["email"].clone(), me["role"].clone()), (json!("box@example.org"), json!("box_office")));
    // Stored hashed.
    let (stored,): (String,) = sqlx::query_as("SELECT token_hash FROM staff_api_tokens WHERE account_id = $1")
        .bind(id)
        .fetch_one(&app.running.state.db.read)
        .await
        .unwrap();
    assert_ne!(stored, token);
    // Someone else cannot revoke it (not found for them); its owner can.
    account(&app, "view@example.org", "viewer").await;
    let v = login(&app, "view@example.org").await;
    let path = format!("/admin/v1/api-tokens/{}/revoke", t["id"].as_str().unwrap());
    assert_eq!(as_session(&app, &v, Method::POST, &path, None).await.0, 404);
    assert_eq!(send(&app, Method::GET, "/admin/v1/email-jobs", &[auth], None).await.0, 200);
    assert_eq!(as_session(&app, &s, Method::POST, &path, None).await.0, 204);
    assert_eq!(send(&app, Method::GET, "/admin/v1/email-jobs", &[auth], None).await.0, 401);
    assert_eq!(as_session(&app, &s, Method::POST, &path, None).await.0, 404, "already revoked");
    let rows = audit(&app, "action=api_token.").await;
    let actions: Vec<&str> = rows.iter().filter_map(|r| r["action"].as_str()).collect();
    assert_eq!(actions, ["api_token.revoke", "api_token.create"]);
    assert_eq!(rows[0]["before"]["name"], json!("nightly export"));
    // The legacy admin token has no account, hence no tokens of its own.
    assert_eq!(app.admin(Method::POST, "/admin/v1/api-tokens", Some(json!({"name": "x"}))).await.0, 403);
    // A disabled account's tokens stop working.
    let (st, t2) = as_session(&app, &v, Method::POST, "/admin/v1/api-tokens", Some(json!({"name": "v"}))).await;
    assert_eq!(st, 201);
    let b2 = format!("Bearer {}", t2["token"].as_str().unwrap());
    assert_eq!(send(&app, Method::GET, "/admin/v1/devices", &[("authorization", &b2)], None).await.0, 200);
    let view_id = app.admin(Method::GET, "/admin/v1/staff", None).await.1["staff"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == json!("view@example.org"))
        .and_then(|a| a["id"].as_i64())
        .unwrap();
    app.admin(Method::PATCH, &format!("/admin/v1/staff/{view_id}"), Some(json!({"disabled": true}))).await;
    assert_eq!(send(&app, Method::GET, "/admin/v1/devices", &[("authorization", &b2)], None).await.0, 401);
    app.running.shutdown().await;
}

#[tokio::test]
async fn admin_actions_are_audited_with_before_and_after() {
    let app = common::start().await;
    let event = app.event(10, 1000).await;
    let id = account(&app, "colleague@example.org", "viewer").await;
    let s = login(&app, "colleague@example.org").await;
    // Role change by the legacy admin token: before/after carry the roles.
    let (st, _) =
        app.admin(Method::PATCH, &format!("/admin/v1/staff/{id}"), Some(json!({"role": "door_supervisor"}))).await;
    assert_eq!(st, 200);
    // The role change ended the colleague's session (it carried the old role's trust).
    assert_eq!(as_session(&app, &s, Method::GET, "/admin/v1/devices", None).await.0, 401);
    let s = login(&app, "colleague@example.org").await;
    let (st, d) =
        as_session(&app, &s, Method::POST, "/admin/v1/devices", Some(json!({"name": "Gate 1", "event": event}))).await;
    assert_eq!(st, 201, "{d}");
    let dev = d["id"].as_str().unwrap().to_owned();
    assert_eq!(as_session(&app, &s, Method::POST, &format!("/admin/v1/devices/{dev}/revoke"), None).await.0, 204);
    // A refused change leaves no row.
    assert_eq!(as_session(&app, &s, Method::POST, &format!("/admin/v1/devices/{dev}/revoke"), None).await.0, 404);
    let gates = json!({"gates": [{"gate": "North", "ticket_types": [0]}]});
    let (st, g) = as_session(&app, &s, Method::PUT, &format!("/admin/v1/events/{event}/gates"), Some(gates)).await;
    assert_eq!(st, 200, "{g}");

    let update = audit(&app, "action=staff.update").await;
    assert_eq!(update.len(), 1);
    assert_eq!(update[0]["actor_email"], json!("admin-token"));
    assert_eq!(update[0]["actor_role"], json!("owner"));
    assert_eq!(update[0]["target"], json!(format!("staff:{id}")));
    assert_eq!(update[0]["before"]["role"], json!("viewer"));
    assert_eq!(update[0]["after"]["role"], json!("door_supervisor"));

    let devices = audit(&app, "action=device.").await;
    let summary: Vec<(String, String)> = devices
        .iter()
        .map(|r| (r["action"].as_str().unwrap().to_owned(), r["actor_email"].as_str().unwrap().to_owned()))
        .collect();
    let who = "colleague@example.org".to_owned();
    assert_eq!(summary, [("device.revoke".to_owned(), who.clone()), ("device.create".to_owned(), who.clone())]);
    assert_eq!(devices[1]["after"], json!({"id": dev, "name": "Gate 1", "event": event}));
    assert_eq!(devices[0]["before"]["revoked_at"], Value::Null);
    assert!(devices[0]["after"]["revoked_at"].is_i64());
    // The device token itself is never in the log.
    let token = d["token"].as_str().unwrap();
    let (_, all) = app.admin(Method::GET, "/admin/v1/audit?limit=500", None).await;
    assert!(!all.to_string().contains(token));

    let g = audit(&app, "action=gates.update").await;
    assert_eq!(g.len(), 1);
    assert_eq!(g[0]["before"], Value::Null, "no rules before");
    assert_eq!(g[0]["after"]["gates"][0]["gate"], json!("North"));
    assert_eq!(g[0]["target"], json!(format!("event:{event}")));

    // Sign-ins are audited; the filters narrow by actor and target.
    let logins = audit(&app, "action=staff.login&actor=COLLEAGUE").await;
    assert_eq!(logins.len(), 2, "two sign-ins of the colleague");
    assert_eq!(audit(&app, &format!("target=staff:{id}&action=staff.create")).await.len(), 1);
    assert!(audit(&app, "actor=nobody-at-all").await.is_empty());
    // Paging: before_id returns older rows only.
    let newest = audit(&app, "limit=1").await;
    let older = audit(&app, &format!("limit=500&before_id={}", newest[0]["id"])).await;
    assert!(older.iter().all(|r| r["id"].as_i64() < newest[0]["id"].as_i64()));
    assert_eq!(older.len() + 1, all["entries"].as_array().unwrap().len());
    // Only owners read the log.
    assert_eq!(as_session(&app, &s, Method::GET, "/admin/v1/audit", None).await.0, 403);
    app.running.shutdown().await;
}

#[tokio::test]
async fn refunds_are_audited_in_their_transaction() {
    let app = common::start().await;
    let event = app.event(10, 0).await;
    let (st, order) = app.order(event, "Ada", 2, "free").await;
    assert!(st == 200 || st == 201, "{order}");
    let id = order["id"].as_str().or_else(|| order["order_id"].as_str()).expect("order id").to_owned();
    account(&app, "box@example.org", "box_office").await;
    let s = login(&app, "box@example.org").await;
    let (st, r) = as_session(&app, &s, Method::POST, &format!("/admin/v1/orders/{id}/refund"), None).await;
    assert_eq!(st, 200, "{r}");
    let rows = audit(&app, "action=order.refund").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["actor_email"], json!("box@example.org"));
    assert_eq!(rows[0]["target"], json!(format!("order:{id}")));
    assert_eq!(rows[0]["before"]["status"], json!("confirmed"));
    assert_eq!(rows[0]["after"]["status"], json!("refunded"));
    assert_eq!(rows[0]["after"]["revoked_tickets"].as_array().map(Vec::len), Some(2));
    // Refunding again is refused and writes nothing.
    assert_eq!(as_session(&app, &s, Method::POST, &format!("/admin/v1/orders/{id}/refund"), None).await.0, 409);
    assert_eq!(audit(&app, "action=order.refund").await.len(), 1);
    app.running.shutdown().await;
}

#[tokio::test]
async fn invitations_work_once_and_accounts_are_guarded() {
    let app = common::start().await;
    let (st, v) =
        app.admin(Method::POST, "/admin/v1/staff", Some(json!({"email": "New@Example.org", "role": "viewer"}))).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["email"], json!("new@example.org"), "stored lower-cased");
    assert_eq!(v["status"], json!("invited"));
    let token = v["invitation_url"].as_str().unwrap().split("#invite=").nth(1).unwrap().to_owned();
    // Before the invitation is accepted the account cannot sign in (the usual answer).
    assert_eq!(login_raw(&app, "new@example.org", PASSWORD).await.0, 401);
    // Too short a password is refused and does not use the invitation up.
    let (st, e) = app.post("/admin/v1/invitations/accept", json!({"token": token, "password": "short"})).await;
    assert_eq!((st, e["error"]["field"].clone()), (422, json!("password")));
    assert_eq!(app.post("/admin/v1/invitations/accept", json!({"token": token, "password": PASSWORD})).await.0, 200);
    assert_eq!(app.post("/admin/v1/invitations/accept", json!({"token": token, "password": PASSWORD})).await.0, 404);
    assert_eq!(
        app.post("/admin/v1/invitations/accept", json!({"token": "x".repeat(43), "password": PASSWORD})).await.0,
        404
    );
    // Mixed case at sign-in finds the account.
    assert_eq!(login_raw(&app, "NEW@example.ORG", PASSWORD).await.0, 200);
    // The same address twice: 409.
    assert_eq!(
        app.admin(Method::POST, "/admin/v1/staff", Some(json!({"email": "new@example.org", "role": "owner"}))).await.0,
        409
    );
    // A new link replaces the old one: the older unused link stops working.
    let id = v["id"].as_i64().unwrap();
    let (_, l1) = app.admin(Method::POST, &format!("/admin/v1/staff/{id}/invitation"), None).await;
    let (_, l2) = app.admin(Method::POST, &format!("/admin/v1/staff/{id}/invitation"), None).await;
    let t1 = l1["invitation_url"].as_str().unwrap().split("#invite=").nth(1).unwrap().to_owned();
    let t2 = l2["invitation_url"].as_str().unwrap().split("#invite=").nth(1).unwrap().to_owned();
    let other = "another long password";
    assert_eq!(app.post("/admin/v1/invitations/accept", json!({"token": t1, "password": other})).await.0, 404);
    assert_eq!(app.post("/admin/v1/invitations/accept", json!({"token": t2, "password": other})).await.0, 200);
    assert_eq!(login_raw(&app, "new@example.org", other).await.0, 200, "password reset by the new link");
    assert_eq!(login_raw(&app, "new@example.org", PASSWORD).await.0, 401);

    // The last owner can be neither demoted nor disabled.
    let owner = account(&app, "boss@example.org", "owner").await;
    let s = login(&app, "boss@example.org").await;
    let path = format!("/admin/v1/staff/{owner}");
    let (st, e) = as_session(&app, &s, Method::PATCH, &path, Some(json!({"role": "viewer"}))).await;
    assert_eq!(st, 409, "{e}");
    assert_eq!(as_session(&app, &s, Method::PATCH, &path, Some(json!({"disabled": true}))).await.0, 409);
    let (_, me) = as_session(&app, &s, Method::GET, "/admin/v1/session", None).await;
    assert_eq!(me["role"], json!("owner"), "nothing changed, session still valid");
    app.running.shutdown().await;
}

#[tokio::test]
async fn hostile_input_gets_clear_errors() {
    let app = common::start().await;
    let huge = "p".repeat(2000);
    let cases: Vec<(Value, u16)> = vec![
        (json!({"email": "a@example.org", "password": huge}), 422),
        (json!({"email": "a\u{0}@example.org", "password": "x"}), 422),
        (json!({"email": "x".repeat(300), "password": "x"}), 422),
        (json!({"email": "", "password": "x"}), 422),
        (json!({"email": "a@example.org"}), 400),
        (json!({"email": "a@example.org", "password": "x", "admin": true}), 400),
        (json!(42), 400),
    ];
    for (body, expected) in cases {
        let (st, v, _) = send(&app, Method::POST, "/admin/v1/session", &[], Some(body.clone())).await;
        assert_eq!(st, expected, "{body} → {v}");
    }
    // Not JSON at all, and an oversized body.
    let r = app
        .http
        .post(app.url("/admin/v1/session"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = app
        .http
        .post(app.url("/admin/v1/session"))
        .header("content-type", "text/plain")
        .body("a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let big = json!({"email": "a@example.org", "password": "x".repeat(100_000)});
    let r = app.http.post(app.url("/admin/v1/session")).json(&big).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 413);

    for (body, expected) in [
        (json!({"email": "not an address", "role": "viewer"}), 422),
        (json!({"email": "a@example.org", "role": "root"}), 400),
        (json!({"email": "<script>@example.org", "role": "viewer"}), 422),
    ] {
        assert_eq!(app.admin(Method::POST, "/admin/v1/staff", Some(body.clone())).await.0, expected, "{body}");
    }
    assert_eq!(app.admin(Method::PATCH, "/admin/v1/staff/999", Some(json!({"role": "viewer"}))).await.0, 404);
    assert_eq!(app.admin(Method::PATCH, "/admin/v1/staff/1", Some(json!({}))).await.0, 400);
    assert_eq!(app.admin(Method::GET, "/admin/v1/audit?limit=100000", None).await.0, 422);
    assert_eq!(app.admin(Method::GET, "/admin/v1/audit?limit=abc", None).await.0, 400);
    assert_eq!(app.admin(Method::GET, "/admin/v1/audit?actor=%00", None).await.0, 422);
    // A pattern character in a filter is taken literally (no row has a % in its action).
    assert_eq!(app.admin(Method::GET, "/admin/v1/audit?action=%25", None).await.1["entries"], json!([]));
    let name = "n".repeat(101);
    account(&app, "t@example.org", "viewer").await;
    let s = login(&app, "t@example.org").await;
    assert_eq!(as_session(&app, &s, Method::POST, "/admin/v1/api-tokens", Some(json!({"name": name}))).await.0, 422);
    // Bearer garbage is a 401, not a crash.
    for h in ["Bearer ", "Bearer ~~~", "Basic abc", "Bearer x y"] {
        let (st, _, _) = send(&app, Method::GET, "/admin/v1/devices", &[("authorization", h)], None).await;
        assert_eq!(st, 401, "{h:?}");
    }
    app.running.shutdown().await;
}

#[tokio::test]
async fn demo_owner_password_is_written_0600() {
    let app = common::start_with(|c| c.demo = true).await;
    let path = app.data_dir().join("owner-password");
    let password = std::fs::read_to_string(&path).expect("owner-password written");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let (st, v, _) = login_raw(&app, "owner@example.org", password.trim()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["role"], json!("owner"));
    app.running.shutdown().await;
}
