//! Catalog editing over real HTTP against a real issuer on SQLite: events with local times in their own
//! zone, ticket type / add-on edits that never change what an issued ticket means (stable indexes, signed
//! fields untouched, capacity never below what is sold), hide and stop selling, shared quotas under a
//! buyer race (counted from the database rows), and hostile or oversized input.

mod common;

use std::sync::Arc;

use common::{start, App};
use reqwest::Method;
use serde_json::{json, Value};

// 2026-12-29 19:00 in Berlin (CET, UTC+1) is 18:00 UTC; in New York (EST, UTC−5) 13:00. Computed
// independently: `date -u -d '2026-12-29 18:00' +%s`.
const BERLIN_1900: i64 = 1_798_567_200;

async fn create_event(app: &App, body: Value) -> i64 {
    let (s, v) = app.admin(Method::POST, "/admin/v1/events", Some(body)).await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_i64().expect("event id")
}

async fn berlin_event(app: &App) -> i64 {
    create_event(
        app,
        json!({"name":"Winter Ball","venue":"Harbour Hall","starts_at":"2026-12-29T19:00","ends_at":"2026-12-29T23:30",
               "timezone":"Europe/Berlin"}),
    )
    .await
}

async fn add_type(app: &App, event: i64, body: Value) -> i64 {
    let (s, v) = app.admin(Method::POST, &format!("/admin/v1/events/{event}/ticket-types"), Some(body)).await;
    assert_eq!(s, 201, "{v}");
    v["index"].as_i64().expect("index")
}

async fn admin_event(app: &App, event: i64) -> Value {
    let (s, v) = app.admin(Method::GET, &format!("/admin/v1/events/{event}"), None).await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn buy(app: &App, event: i64, ticket_type: i64, qty: i64, addons: Value) -> (u16, Value) {
    app.post(
        "/v1/orders",
        json!({"event_id":event,"name":"Ada Buyer","email":"ada@example.org",
               "items":[{"ticket_type":ticket_type,"quantity":qty,"addons":addons}],"payment":"free"}),
    )
    .await
}

async fn order_tickets(app: &App, order: &Value) -> Vec<Value> {
    let path = format!("/v1/orders/{}?token={}", order["order_id"].as_str().unwrap(), order["token"].as_str().unwrap());
    let (s, v) = app.get_json(&path).await;
    assert_eq!(s, 200, "{v}");
    v["tickets"].as_array().unwrap().clone()
}

#[tokio::test]
async fn events_take_local_times_in_their_zone_and_show_them_there() {
    let app = start().await;
    let event = berlin_event(&app).await;
    let v = admin_event(&app, event).await;
    assert_eq!(v["starts_at"], BERLIN_1900);
    assert_eq!(v["ends_at"], BERLIN_1900 + 4 * 3600 + 1800);
    assert_eq!(v["starts_local"], "2026-12-29T19:00");
    assert_eq!(v["starts_display"], "Tue 29 Dec 2026, 19:00 CET");

    // Another zone: the moment stays, its local reading changes.
    let (s, v) = app
        .admin(Method::PATCH, &format!("/admin/v1/events/{event}"), Some(json!({"timezone":"America/New_York"})))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["starts_at"], BERLIN_1900);
    assert_eq!(v["starts_display"], "Tue 29 Dec 2026, 13:00 EST");
    // Local times sent with a new zone are read in that zone.
    let (s, v) = app
        .admin(
            Method::PATCH,
            &format!("/admin/v1/events/{event}"),
            Some(json!({"timezone":"Asia/Tokyo","starts_at":"2026-12-30T03:00","ends_at":"2026-12-30T07:30",
                        "name":"Winter Ball (Tokyo)","venue":"Budokan"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["starts_at"], BERLIN_1900, "03:00 JST on the 30th is 18:00 UTC on the 29th");
    assert_eq!((v["name"].as_str(), v["venue"].as_str()), (Some("Winter Ball (Tokyo)"), Some("Budokan")));
    assert_eq!(v["timezone"], "Asia/Tokyo");

    // The customer's order page shows start and end in the event's zone, not UTC.
    let (s, v) =
        app.admin(Method::PATCH, &format!("/admin/v1/events/{event}"), Some(json!({"timezone":"Europe/Berlin"}))).await;
    assert_eq!(s, 200, "{v}");
    add_type(&app, event, json!({"name":"Standard","price_cents":0,"currency":"EUR","capacity":10})).await;
    let (s, order) = buy(&app, event, 0, 1, json!([])).await;
    assert_eq!(s, 201, "{order}");
    let html = app.http.get(order["order_url"].as_str().unwrap()).send().await.unwrap().text().await.unwrap();
    assert!(
        html.contains(
            ">Tuesday, 29 December 2026, 7:00 PM CET</time> – <time datetime=\"2026-12-29T22:30:00Z\">11:30 PM CET</time>"
        ),
        "{html}"
    );
    assert!(!html.contains("UTC"), "{html}");
    let form = app.http.get(app.url(&format!("/events/{event}"))).send().await.unwrap().text().await.unwrap();
    assert!(form.contains("Tuesday, 29 December 2026, 7:00 PM CET"), "{form}");

    // Tickets were issued, so the end cannot move later (their signed validity ends with it); earlier can.
    let (s, v) = app
        .admin(Method::PATCH, &format!("/admin/v1/events/{event}"), Some(json!({"ends_at":"2026-12-30T02:00"})))
        .await;
    assert_eq!(s, 409, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("1 tickets already issued"), "{v}");
    let (s, v) = app
        .admin(Method::PATCH, &format!("/admin/v1/events/{event}"), Some(json!({"ends_at":"2026-12-29T23:00"})))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ends_at"], BERLIN_1900 + 4 * 3600);
    app.running.shutdown().await;
}

#[tokio::test]
async fn edits_keep_indexes_and_issued_tickets_and_never_go_below_what_sold() {
    let app = start().await;
    let event = berlin_event(&app).await;
    let standard = add_type(
        &app,
        event,
        json!({"name":"Standard","price_cents":1000,"currency":"EUR","capacity":100,"at_door_allowed":true,"reentry":true}),
    )
    .await;
    let student =
        add_type(&app, event, json!({"name":"Student","price_cents":500,"currency":"EUR","capacity":50})).await;
    assert_eq!((standard, student), (0, 1));
    let (s, v) = app
        .admin(
            Method::POST,
            &format!("/admin/v1/events/{event}/addons"),
            Some(json!({"name":"Cloakroom","price_cents":200,"capacity":5})),
        )
        .await;
    assert_eq!((s, v["index"].as_i64()), (201, Some(0)), "{v}");

    // Sell 3 Standard with the add-on, paid at the door.
    let (s, order) = app
        .post(
            "/v1/orders",
            json!({"event_id":event,"name":"Ada","email":"ada@example.org",
                   "items":[{"ticket_type":0,"quantity":3,"addons":[0]}],"payment":"at_door"}),
        )
        .await;
    assert_eq!(s, 201, "{order}");
    assert_eq!(order["total_cents"], 3 * 1200);
    let issued = order_tickets(&app, &order).await;
    assert_eq!(issued.len(), 3);

    // A new price applies to new orders only; issued tickets (their signed QR text) are untouched.
    let path0 = format!("/admin/v1/events/{event}/ticket-types/0");
    let (s, v) = app.admin(Method::PATCH, &path0, Some(json!({"price_cents":1500,"name":"Standard entry"}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["index"].as_i64(), v["price_cents"].as_i64(), v["reserved"].as_i64()),
        (Some(0), Some(1500), Some(3))
    );
    let signed = |tickets: &[Value]| -> Vec<(Value, Value, Value)> {
        tickets.iter().map(|t| (t["seq"].clone(), t["ticket_type"].clone(), t["qr_text"].clone())).collect()
    };
    assert_eq!(signed(&order_tickets(&app, &order).await), signed(&issued));
    let (s, second) = app
        .post(
            "/v1/orders",
            json!({"event_id":event,"name":"Bo","email":"bo@example.org",
                   "items":[{"ticket_type":0,"quantity":1,"addons":[]}],"payment":"at_door"}),
        )
        .await;
    assert_eq!((s, second["total_cents"].as_i64()), (201, Some(1500)), "{second}");

    // Capacity below what is sold or held: 409 with the count; exactly at it is fine.
    let (s, v) = app.admin(Method::PATCH, &path0, Some(json!({"capacity":3}))).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["message"], "capacity cannot go below the 4 tickets of Standard entry already sold or held");
    let (s, v) = app.admin(Method::PATCH, &path0, Some(json!({"capacity":4}))).await;
    assert_eq!((s, v["available"].as_i64()), (200, Some(0)), "{v}");
    let addon_path = format!("/admin/v1/events/{event}/addons/0");
    let (s, v) = app.admin(Method::PATCH, &addon_path, Some(json!({"capacity":2}))).await;
    assert_eq!(s, 409, "{v}");
    // Re-entry is signed into every ticket and the currency is what they were paid in: fixed once sold.
    let (s, v) = app.admin(Method::PATCH, &path0, Some(json!({"reentry":false}))).await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = app.admin(Method::PATCH, &path0, Some(json!({"currency":"USD"}))).await;
    assert_eq!(s, 409, "{v}");
    // An unsold type may change both.
    let path1 = format!("/admin/v1/events/{event}/ticket-types/1");
    let (s, v) = app.admin(Method::PATCH, &path1, Some(json!({"currency":"chf","reentry":true}))).await;
    assert_eq!((s, v["currency"].as_str(), v["reentry"].as_bool()), (200, Some("CHF"), Some(true)), "{v}");

    // Hide Standard: gone from the public listing and not orderable; the organizer still sees it; issued
    // tickets still show its name.
    let (s, v) = app.admin(Method::PATCH, &path0, Some(json!({"hidden":true,"capacity":10}))).await;
    assert_eq!(s, 200, "{v}");
    let (_, public) = app.get_json(&format!("/v1/events/{event}")).await;
    let public_indexes: Vec<i64> =
        public["ticket_types"].as_array().unwrap().iter().map(|t| t["index"].as_i64().unwrap()).collect();
    assert_eq!(public_indexes, vec![1]);
    let (s, v) = buy(&app, event, 0, 1, json!([])).await;
    assert_eq!((s, v["error"]["field"].as_str()), (422, Some("ticket_type")), "{v}");
    assert_eq!(admin_event(&app, event).await["ticket_types"].as_array().unwrap().len(), 2);
    assert_eq!(order_tickets(&app, &order).await[0]["ticket_type_name"], "Standard entry");

    // Stop selling Student: listed, not on sale, not orderable; selling again works.
    let (s, v) = app.admin(Method::PATCH, &path1, Some(json!({"sales_stopped":true}))).await;
    assert_eq!(s, 200, "{v}");
    let (_, public) = app.get_json(&format!("/v1/events/{event}")).await;
    assert_eq!(public["ticket_types"][0]["on_sale"], false);
    let (s, _) = buy(&app, event, 1, 1, json!([])).await;
    assert_eq!(s, 422);
    let (s, _) = app.admin(Method::PATCH, &path1, Some(json!({"sales_stopped":false,"price_cents":0}))).await;
    assert_eq!(s, 200);
    let (s, v) = buy(&app, event, 1, 1, json!([])).await;
    assert_eq!(s, 201, "{v}");

    // An add-on taken off sale cannot be added to new orders.
    let (s, _) = app.admin(Method::PATCH, &addon_path, Some(json!({"sales_stopped":true}))).await;
    assert_eq!(s, 200);
    let (s, v) = buy(&app, event, 1, 1, json!([0])).await;
    assert_eq!((s, v["error"]["field"].as_str()), (422, Some("addons")), "{v}");
    let form = app.http.get(app.url(&format!("/events/{event}"))).send().await.unwrap().text().await.unwrap();
    assert!(form.contains("Student") && !form.contains("Cloakroom"), "{form}");

    // Indexes are never reused: the next type is 2 even though type 0 is hidden.
    assert_eq!(add_type(&app, event, json!({"name":"VIP","price_cents":0,"currency":"EUR","capacity":5})).await, 2);
    let (s, _) = app
        .admin(Method::PATCH, &format!("/admin/v1/events/{event}/ticket-types/7"), Some(json!({"hidden":true})))
        .await;
    assert_eq!(s, 404);

    // The stored rows agree: Standard holds the 4 sold, nothing was deleted.
    // (`hidden` as 0/1: the one spelling of a boolean both stores return through sqlx's Any driver.)
    let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(
        "SELECT idx, name, reserved, CAST(hidden AS INTEGER) FROM ticket_types WHERE event_id = $1 ORDER BY idx",
    )
    .bind(event)
    .fetch_all(&app.running.state.db.read)
    .await
    .unwrap();
    assert_eq!(rows, vec![(0, "Standard entry".into(), 4, 1), (1, "Student".into(), 1, 0), (2, "VIP".into(), 0, 0)]);
    app.running.shutdown().await;
}

/// 200 buyers race for a quota of 50 shared by two ticket types whose own capacities are far larger: exactly
/// 50 tickets exist afterwards, counted from the tickets table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_quota_is_never_oversold_by_a_race_of_200_buyers() {
    let app = Arc::new(start().await);
    let event = berlin_event(&app).await;
    let (s, quota) = app
        .admin(Method::POST, &format!("/admin/v1/events/{event}/quotas"), Some(json!({"name":"Floor","capacity":50})))
        .await;
    assert_eq!(s, 201, "{quota}");
    let quota_id = quota["id"].as_i64().unwrap();
    for name in ["Standard", "Student"] {
        add_type(
            &app,
            event,
            json!({"name":name,"price_cents":0,"currency":"EUR","capacity":1000,"quota_id":quota_id}),
        )
        .await;
    }
    // A third type outside the quota keeps selling when the floor is full.
    add_type(&app, event, json!({"name":"Balcony","price_cents":0,"currency":"EUR","capacity":10})).await;

    let mut tasks = Vec::new();
    for i in 0..200 {
        let app = app.clone();
        // Half the buyers take two tickets, so that a line can fail on the quota after its type had room.
        let (ticket_type, qty) = (i % 2, 1 + (i % 4) / 2);
        tasks.push(tokio::spawn(async move { (qty, buy(&app, event, ticket_type, qty, json!([])).await.0) }));
    }
    let mut sold = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            (qty, 201) => sold += qty,
            (_, 409) => refused += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(sold, 50, "refused {refused}");
    let db = &app.running.state.db.read;
    let (tickets,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM tickets WHERE event_id = $1").bind(event).fetch_one(db).await.unwrap();
    assert_eq!(tickets, 50);
    let (quota_reserved,): (i64,) =
        sqlx::query_as("SELECT reserved FROM quotas WHERE id = $1").bind(quota_id).fetch_one(db).await.unwrap();
    let (types_reserved,): (i64,) =
        sqlx::query_as("SELECT CAST(SUM(reserved) AS BIGINT) FROM ticket_types WHERE quota_id = $1")
            .bind(quota_id)
            .fetch_one(db)
            .await
            .unwrap();
    assert_eq!((quota_reserved, types_reserved), (50, 50));
    let (_, public) = app.get_json(&format!("/v1/events/{event}")).await;
    let available: Vec<i64> =
        public["ticket_types"].as_array().unwrap().iter().map(|t| t["available"].as_i64().unwrap()).collect();
    assert_eq!(available, vec![0, 0, 10]);
    let (s, v) = buy(&app, event, 2, 1, json!([])).await;
    assert_eq!(s, 201, "{v}");

    // The quota cannot shrink below what it holds, and a type with sales cannot join a quota without room.
    let quota_path = format!("/admin/v1/events/{event}/quotas/{quota_id}");
    let (s, v) = app.admin(Method::PATCH, &quota_path, Some(json!({"capacity":49}))).await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = app
        .admin(Method::PATCH, &format!("/admin/v1/events/{event}/ticket-types/2"), Some(json!({"quota_id":quota_id})))
        .await;
    assert_eq!(s, 409, "{v}");
    // Growing the quota lets the type in, with its sale counted in the quota.
    let (s, v) = app.admin(Method::PATCH, &quota_path, Some(json!({"capacity":60}))).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = app
        .admin(Method::PATCH, &format!("/admin/v1/events/{event}/ticket-types/2"), Some(json!({"quota_id":quota_id})))
        .await;
    assert_eq!(s, 200, "{v}");
    let (quota_reserved,): (i64,) =
        sqlx::query_as("SELECT reserved FROM quotas WHERE id = $1").bind(quota_id).fetch_one(db).await.unwrap();
    assert_eq!(quota_reserved, 51);
    let (s, v) = app
        .admin(Method::PATCH, &format!("/admin/v1/events/{event}/ticket-types/2"), Some(json!({"quota_id":null})))
        .await;
    assert_eq!(s, 200, "{v}");
    let (quota_reserved,): (i64,) =
        sqlx::query_as("SELECT reserved FROM quotas WHERE id = $1").bind(quota_id).fetch_one(db).await.unwrap();
    assert_eq!(quota_reserved, 50);

    // Cancelling one ticket of a floor order gives its place back to the quota as well (whatever path
    // releases a seat, the quota follows its type).
    let (order_id, seq): (String, i64) =
        sqlx::query_as("SELECT order_id, seq FROM tickets WHERE event_id = $1 AND ticket_type = 1 LIMIT 1")
            .bind(event)
            .fetch_one(db)
            .await
            .unwrap();
    let (s, v) = app.admin(Method::POST, &format!("/admin/v1/orders/{order_id}/tickets/{seq}/cancel"), None).await;
    assert_eq!(s, 200, "{v}");
    let (quota_reserved,): (i64,) =
        sqlx::query_as("SELECT reserved FROM quotas WHERE id = $1").bind(quota_id).fetch_one(db).await.unwrap();
    assert_eq!(quota_reserved, 49);
}

#[tokio::test]
async fn hostile_and_oversized_input_is_refused_with_the_field() {
    let app = start().await;
    let event = berlin_event(&app).await;
    let other = berlin_event(&app).await;
    let (s, other_quota) = app
        .admin(Method::POST, &format!("/admin/v1/events/{other}/quotas"), Some(json!({"name":"Pit","capacity":5})))
        .await;
    assert_eq!(s, 201);

    let base = json!({"name":"Gig","venue":"Hall","starts_at":"2026-12-29T19:00","ends_at":"2026-12-29T23:00","timezone":"Europe/Berlin"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, field) in [
        (with("timezone", json!("Mars/Olympus_Mons")), "timezone"),
        (with("timezone", json!("../../etc/passwd")), "timezone"),
        (with("timezone", json!("Europe/Berlin\"><script>")), "timezone"),
        (with("starts_at", json!("tomorrow evening")), "starts_at"),
        (with("starts_at", json!(-5)), "starts_at"),
        (with("ends_at", json!("2026-12-29T18:00")), "ends_at"),
        (with("name", json!("x".repeat(5_000))), "name"),
        (with("name", json!("   ")), "name"),
    ] {
        let (s, v) = app.admin(Method::POST, "/admin/v1/events", Some(body)).await;
        assert_eq!((s, v["error"]["field"].as_str()), (422, Some(field)), "{v}");
    }
    // Unknown fields are refused, not ignored.
    let (s, _) = app.admin(Method::POST, "/admin/v1/events", Some(with("colour", json!("red")))).await;
    assert_eq!(s, 400);
    let (s, _) =
        app.admin(Method::PATCH, &format!("/admin/v1/events/{event}"), Some(json!({"starts_at":0,"id":999}))).await;
    assert_eq!(s, 400);

    let tt = format!("/admin/v1/events/{event}/ticket-types");
    let good = json!({"name":"Standard","price_cents":100,"currency":"EUR","capacity":10});
    let with_tt = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    for (body, field) in [
        (with_tt("price_cents", json!(-1)), "price_cents"),
        (with_tt("price_cents", json!(100_000_001)), "price_cents"),
        (with_tt("capacity", json!(1_000_000_000_000i64)), "capacity"),
        (with_tt("currency", json!("EURO")), "currency"),
        (with_tt("sales_start", json!("2026-13-40T99:00")), "sales_start"),
        (with_tt("quota_id", other_quota["id"].clone()), "quota_id"),
    ] {
        let (s, v) = app.admin(Method::POST, &tt, Some(body)).await;
        assert_eq!((s, v["error"]["field"].as_str()), (422, Some(field)), "{v}");
    }
    let mut window = good.clone();
    window["sales_start"] = json!("2026-12-01T10:00");
    window["sales_end"] = json!("2026-11-01T10:00");
    let (s, v) = app.admin(Method::POST, &tt, Some(window)).await;
    assert_eq!((s, v["error"]["field"].as_str()), (422, Some("sales_end")), "{v}");
    // Nothing above was stored.
    assert_eq!(admin_event(&app, event).await["ticket_types"].as_array().unwrap().len(), 0);

    // A body over the 64 KiB limit is refused before it is parsed.
    let huge = json!({"name":"x".repeat(70_000),"venue":"Hall","starts_at":0,"ends_at":0,"timezone":"UTC"});
    let (s, _) = app.admin(Method::POST, "/admin/v1/events", Some(huge)).await;
    assert_eq!(s, 413);
    // Unknown event and unknown quota: 404; no token: 401, and nothing changes.
    let (s, _) = app.admin(Method::POST, "/admin/v1/events/424242/ticket-types", Some(good.clone())).await;
    assert_eq!(s, 404);
    let (s, _) =
        app.admin(Method::PATCH, &format!("/admin/v1/events/{event}/quotas/99999"), Some(json!({"capacity":1}))).await;
    assert_eq!(s, 404);
    let resp = app
        .http
        .patch(app.url(&format!("/admin/v1/events/{event}")))
        .json(&json!({"name":"Hijacked"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = app.http.post(app.url(&tt)).bearer_auth("not-the-token").json(&good).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(admin_event(&app, event).await["name"], "Winter Ball");
    app.running.shutdown().await;
}

/// A box-office colleague (signed in with a password: session cookie and CSRF token) may read the catalog
/// but not change it (403, nothing changes); the owner's edits are in the audit log with before and after.
#[tokio::test]
async fn only_catalog_roles_edit_and_every_edit_is_audited() {
    let app = start().await;
    let event = berlin_event(&app).await;
    add_type(&app, event, json!({"name":"Standard","price_cents":1000,"currency":"EUR","capacity":10})).await;
    let (s, v) = app
        .admin(Method::PATCH, &format!("/admin/v1/events/{event}/ticket-types/0"), Some(json!({"price_cents":1200})))
        .await;
    assert_eq!(s, 200, "{v}");

    // Invite a box-office colleague, who sets a password and signs in.
    let (s, invited) =
        app.admin(Method::POST, "/admin/v1/staff", Some(json!({"email":"box@example.org","role":"box_office"}))).await;
    assert_eq!(s, 201, "{invited}");
    let url = invited["invitation_url"].as_str().unwrap();
    let token = url.split_once("#invite=").unwrap().1;
    let password = "correct horse battery staple";
    let (s, v) = app.post("/admin/v1/invitations/accept", json!({"token":token,"password":password})).await;
    assert!(s == 200 || s == 201, "{s} {v}");
    let login = app
        .http
        .post(app.url("/admin/v1/session"))
        .json(&json!({"email":"box@example.org","password":password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 200);
    let cookie = login
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tickets_staff_session="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let session: Value = login.json().await.unwrap();
    let csrf = session["csrf_token"].as_str().unwrap().to_owned();
    let as_box_office = |method: Method, path: String, body: Option<Value>| {
        let mut req = app.http.request(method, app.url(&path)).header("cookie", &cookie).header("x-csrf-token", &csrf);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(as_box_office(Method::GET, format!("/admin/v1/events/{event}"), None).await, 200);
    for (method, path, body) in [
        (
            Method::POST,
            "/admin/v1/events".to_owned(),
            json!({"name":"X","venue":"Y","starts_at":0,"ends_at":0,"timezone":"UTC"}),
        ),
        (Method::PATCH, format!("/admin/v1/events/{event}"), json!({"name":"Renamed"})),
        (Method::PATCH, format!("/admin/v1/events/{event}/ticket-types/0"), json!({"price_cents":1})),
        (Method::POST, format!("/admin/v1/events/{event}/addons"), json!({"name":"A","price_cents":0,"capacity":1})),
        (Method::POST, format!("/admin/v1/events/{event}/quotas"), json!({"name":"Q","capacity":1})),
    ] {
        assert_eq!(as_box_office(method, path.clone(), Some(body)).await, 403, "{path}");
    }
    let v = admin_event(&app, event).await;
    assert_eq!((v["name"].as_str(), v["ticket_types"][0]["price_cents"].as_i64()), (Some("Winter Ball"), Some(1200)));
    assert_eq!(v["addons"].as_array().unwrap().len() + v["quotas"].as_array().unwrap().len(), 0);

    // The audit log holds the owner's writes, the price change with its before and after.
    let (s, log) = app.admin(Method::GET, "/admin/v1/audit?limit=50", None).await;
    assert_eq!(s, 200, "{log}");
    let entries = log["entries"].as_array().unwrap();
    let catalog: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| !e["action"].as_str().unwrap().starts_with("staff"))
        .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    let t0 = format!("event:{event}/ticket_type:0");
    let ev = format!("event:{event}");
    for expected in
        [("event.create", ev.as_str()), ("ticket_type.create", t0.as_str()), ("ticket_type.update", t0.as_str())]
    {
        assert!(catalog.contains(&expected), "{expected:?} missing from {catalog:?}");
    }
    let update = entries.iter().find(|e| e["action"] == "ticket_type.update").unwrap();
    assert_eq!(
        (update["before"]["price_cents"].as_i64(), update["after"]["price_cents"].as_i64()),
        (Some(1000), Some(1200))
    );
    assert_eq!(update["actor_email"], "admin-token");
    app.running.shutdown().await;
}
