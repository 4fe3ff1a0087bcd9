//! The server-rendered order pages against a real server and SQLite file: a plain form post (no
//! JavaScript) places an order and redirects to the order page with the QR codes; rejected forms come back
//! with the customer's input; customer strings are escaped; cross-site posts are refused; paid orders go
//! to the payment provider's checkout. Also the admin JSON the dashboard uses: the order list and the
//! scanner setup link.

mod common;

use sha2::Digest;

use base64::Engine as _;
use common::{start, start_with, App};
use reqwest::redirect::Policy;
use serde_json::json;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// What a browser holds after loading the event page: the CSRF cookie and the form's hidden token.
struct FormSession {
    cookie: String,
    token: String,
}

async fn open_form(app: &App, event: i64) -> (FormSession, String) {
    let resp = app.http.get(app.url(&format!("/events/{event}"))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let html = resp.text().await.unwrap();
    let token = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    assert_eq!(cookie, format!("tickets_csrf={token}"));
    (FormSession { cookie, token }, html)
}

async fn post_form(app: &App, event: i64, session: &FormSession, fields: &[(&str, &str)]) -> reqwest::Response {
    let mut form: Vec<(&str, &str)> = vec![("csrf", &session.token)];
    form.extend_from_slice(fields);
    no_redirects()
        .post(app.url(&format!("/events/{event}/order")))
        .header("cookie", &session.cookie)
        .header("origin", app.running.url())
        .form(&form)
        .send()
        .await
        .unwrap()
}

async fn order_count(app: &App) -> i64 {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM orders").fetch_one(&app.running.state.db.read).await.unwrap();
    n
}

#[tokio::test]
async fn form_post_without_javascript_redirects_to_the_order_page_with_scannable_tickets() {
    let app = start().await;
    let event = app.event(100, 0).await;
    let (session, html) = open_form(&app, event).await;
    assert!(html.contains("<form method=\"post\" action=\"/events/"), "{html}");
    assert!(html.contains("100 left"), "live availability: {html}");

    let resp = post_form(
        &app,
        event,
        &session,
        &[("qty_0", "2"), ("addons_0", "0"), ("name", "Ada Lovelace"), ("email", "ada@example.org")],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/orders/ord_") && location.contains("?token="), "{location}");

    let page = app.http.get(app.url(&location)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let page = page.text().await.unwrap();
    assert!(page.contains("on their way to <strong>ada@example.org</strong>"), "{page}");
    assert_eq!(page.matches("<svg").count(), 2, "one QR per ticket");

    // The QR the page shows is the ticket the database holds, and it decodes back (through the PNG route
    // the page links to) to that text.
    let order_id = location.trim_start_matches("/orders/").split('?').next().unwrap();
    let texts: Vec<(String,)> = sqlx::query_as("SELECT qr_text FROM tickets WHERE order_id = $1 ORDER BY seq")
        .bind(order_id)
        .fetch_all(&app.running.state.db.read)
        .await
        .unwrap();
    assert_eq!(texts.len(), 2);
    let png_link = page
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|link| link.starts_with("/orders/") && link.contains("/qr.png"))
        .unwrap();
    let png = app.http.get(app.url(&png_link.replace("&amp;", "&"))).send().await.unwrap();
    assert_eq!(png.status(), 200);
    let decoded = common::decode_qr_png(&png.bytes().await.unwrap()).expect("the ticket PNG decodes");
    assert_eq!(decoded, texts[0].0);
}

#[tokio::test]
async fn invalid_email_comes_back_with_the_input_kept_and_a_message() {
    let app = start().await;
    let event = app.event(100, 0).await;
    let (session, _) = open_form(&app, event).await;
    let resp =
        post_form(&app, event, &session, &[("qty_0", "3"), ("name", "Grace Hopper"), ("email", "grace@nowhere")]).await;
    assert_eq!(resp.status(), 422);
    let html = resp.text().await.unwrap();
    assert!(html.contains("id=\"error-summary\" role=\"alert\""), "{html}");
    assert!(html.contains("Email is not a valid email address."), "{html}");
    assert!(html.contains("value=\"Grace Hopper\""), "name kept: {html}");
    assert!(html.contains("value=\"grace@nowhere\" aria-invalid=\"true\""), "email kept and marked: {html}");
    assert!(html.contains("name=\"qty_0\" inputmode=\"numeric\" min=\"0\" max=\"20\" value=\"3\""), "{html}");
    assert_eq!(order_count(&app).await, 0);
}

#[tokio::test]
async fn sold_out_comes_back_with_the_input_kept() {
    let app = start().await;
    let event = app.event(1, 0).await;
    let (session, _) = open_form(&app, event).await;
    let resp =
        post_form(&app, event, &session, &[("qty_0", "2"), ("name", "Alan Turing"), ("email", "alan@example.org")])
            .await;
    assert_eq!(resp.status(), 409);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Sorry, sold out"), "{html}");
    assert!(html.contains("value=\"Alan Turing\"") && html.contains("value=\"alan@example.org\""), "{html}");
    assert!(html.contains("value=\"2\""), "{html}");
    assert_eq!(order_count(&app).await, 0);

    // No tickets chosen at all: a message, not an order.
    let resp =
        post_form(&app, event, &session, &[("qty_0", "0"), ("name", "Alan"), ("email", "alan@example.org")]).await;
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("Choose at least one ticket."));
    // Too many tickets for one order.
    let big = app.event(100, 0).await;
    let (session, _) = open_form(&app, big).await;
    let resp =
        post_form(&app, big, &session, &[("qty_0", "21"), ("name", "Alan"), ("email", "alan@example.org")]).await;
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("must be between 1 and 20"));
}

#[tokio::test]
async fn hostile_customer_strings_are_escaped_everywhere() {
    let app = start().await;
    let event = app.event(100, 0).await;
    let hostile = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";
    let (session, _) = open_form(&app, event).await;

    // Re-rendered form (bad email): the name comes back escaped inside the value attribute.
    let resp = post_form(&app, event, &session, &[("qty_0", "1"), ("name", hostile), ("email", "x\"><b>@y")]).await;
    assert_eq!(resp.status(), 422);
    let html = resp.text().await.unwrap();
    assert!(!html.contains("<script>alert") && !html.contains("<img src=x") && !html.contains("<b>@y"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"),
        "{html}"
    );

    // Placed order: the holder name on the order page is escaped too.
    let resp = post_form(&app, event, &session, &[("qty_0", "1"), ("name", hostile), ("email", "h@example.org")]).await;
    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let page = app.http.get(app.url(&location)).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("<script>alert") && !page.contains("<img src=x"), "{page}");
    assert!(page.contains("Holder: &lt;script&gt;alert(1)&lt;/script&gt;"), "{page}");
}

#[tokio::test]
async fn cross_site_posts_place_no_order() {
    let app = start().await;
    let event = app.event(100, 0).await;
    let (session, _) = open_form(&app, event).await;
    let fields = [("csrf", session.token.as_str()), ("qty_0", "1"), ("name", "Eve"), ("email", "eve@example.org")];
    let url = app.url(&format!("/events/{event}/order"));

    // No cookie (a third-party page cannot make the browser send the SameSite cookie): refused.
    let r = no_redirects().post(&url).form(&fields).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Nothing was ordered"));
    // The cookie but a token that does not match it.
    let r = no_redirects()
        .post(&url)
        .header("cookie", &session.cookie)
        .form(&[("csrf", "forged"), ("qty_0", "1"), ("name", "Eve"), ("email", "eve@example.org")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Matching cookie and token, but posted from another origin.
    let r = no_redirects()
        .post(&url)
        .header("cookie", &session.cookie)
        .header("origin", "https://evil.example")
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(order_count(&app).await, 0);

    // The same post from the page itself goes through.
    let r = post_form(&app, event, &session, &fields[1..]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(order_count(&app).await, 1);
}

#[tokio::test]
async fn event_list_shows_events_on_sale() {
    let app = start().await;
    let event = app.event(5, 1500).await;
    let html = app.http.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(&format!("href=\"/events/{event}\">Test Night</a>")), "{html}");
    assert!(html.contains("5 tickets left"), "{html}");
    let css = app.http.get(app.url("/static/site.css")).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let js = app.http.get(app.url("/static/order.js")).send().await.unwrap();
    assert_eq!(js.status(), 200);
    // Unknown event: 404.
    assert_eq!(app.http.get(app.url("/events/999")).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn paid_order_redirects_to_the_checkout_and_pay_at_door_settles() {
    let stripe = common::fake_stripe().await;
    let app = start_with(|c| {
        c.stripe_secret_key = Some("sk_test_x".into());
        c.stripe_webhook_secret = Some("whsec_x".into());
        c.stripe_api_base = stripe;
        c.hold_seconds = 1;
    })
    .await;
    let event = app.event(10, 2500).await;
    let (session, html) = open_form(&app, event).await;
    assert!(html.contains("value=\"online\" checked"), "{html}");
    let resp = post_form(
        &app,
        event,
        &session,
        &[("qty_0", "1"), ("name", "Paying Customer"), ("email", "pay@example.org"), ("payment", "online")],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("https://checkout.example/cs_test_"), "{location}");
    let (status,): (String,) =
        sqlx::query_as("SELECT status FROM orders").fetch_one(&app.running.state.db.read).await.unwrap();
    assert_eq!(status, "pending");
    let (order_id, token): (String, String) = {
        let (id,): (String,) =
            sqlx::query_as("SELECT id FROM orders").fetch_one(&app.running.state.db.read).await.unwrap();
        let token = issuer::orders::order_token(&app.running.state, &id);
        (id, token)
    };
    let page = |flag: &'static str| {
        let url = app.url(&format!("/orders/{order_id}?token={token}{flag}"));
        let http = app.http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    // Back from the checkout before the webhook: the page reloads itself (no script needed).
    let html = page("&paid=1").await;
    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"3\">"), "{html}");
    assert!(page("&cancelled=1").await.contains("You left the payment page, so nothing was charged."));
    // The one-second hold runs out: the page says so and offers to order again.
    let expired = common::eventually(std::time::Duration::from_secs(10), || async {
        let html = page("").await;
        html.contains("This order is <strong>expired</strong>").then_some(html)
    })
    .await
    .expect("the hold expires");
    assert!(expired.contains(&format!("<a href=\"/events/{event}\">Order again</a>")), "{expired}");

    let resp = post_form(
        &app,
        event,
        &session,
        &[("qty_0", "1"), ("name", "Door Payer"), ("email", "door@example.org"), ("payment", "at_door")],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/orders/"), "{location}");
}

#[tokio::test]
async fn dashboard_admin_json_lists_orders_and_gives_device_setup_links() {
    let app = start_with(|c| {
        c.public_url = Some("https://tickets.example".into());
        c.edge_url = Some("https://edge.example/".into());
    })
    .await;
    let event = app.event(10, 0).await;
    let (s, created) = app.order(event, "Listed Buyer", 2, "free").await;
    assert_eq!(s, 201, "{created}");

    let (s, list) = app.admin(reqwest::Method::GET, &format!("/admin/v1/orders?event={event}"), None).await;
    assert_eq!(s, 200, "{list}");
    let orders = list["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["id"], created["order_id"]);
    assert_eq!(orders[0]["customer_name"], "Listed Buyer");
    assert_eq!(orders[0]["tickets"], 2);
    assert!(orders[0].get("qr_text").is_none() && orders[0].get("token").is_none());
    let (s, _) = app.admin(reqwest::Method::GET, "/admin/v1/orders?event=999", None).await;
    assert_eq!(s, 200);
    assert_eq!(app.http.get(app.url("/admin/v1/orders")).send().await.unwrap().status(), 401);

    let (s, dev) = app
        .admin(reqwest::Method::POST, "/admin/v1/devices", Some(json!({"name": "North gate", "event": event})))
        .await;
    assert_eq!(s, 201, "{dev}");
    let url = dev["setup_url"].as_str().unwrap();
    let encoded = url.strip_prefix("https://tickets.example/scanner/#setup=").expect(url);
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded).unwrap();
    // The link pins the keyring the device will fetch: the SHA-256 of exactly the bytes served.
    let served = app.http.get(app.url("/v1/scanner/keyring")).send().await.unwrap().bytes().await.unwrap();
    let pin: String = sha2::Sha256::digest(&served).iter().map(|b| format!("{b:02x}")).collect();
    let expected = format!(
        r#"{{"v":2,"server":"https://tickets.example","token":"{}","event":{event},"edge":"https://edge.example","device_name":"North gate","keyring_sha256":"{pin}"}}"#,
        dev["token"].as_str().unwrap()
    );
    assert_eq!(String::from_utf8(payload).unwrap(), expected);
    let svg = dev["setup_qr_svg"].as_str().unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    // A device is for one event: without one it is refused (422), as is an unknown event (404).
    let (s, dev) = app.admin(reqwest::Method::POST, "/admin/v1/devices", Some(json!({"name": "Spare"}))).await;
    assert_eq!(s, 422, "{dev}");
    assert_eq!(dev["error"]["field"], "event", "{dev}");
    let (s, _) = app.admin(reqwest::Method::POST, "/admin/v1/devices", Some(json!({"name": "X", "event": 999}))).await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_finds_orders_by_name_email_or_id_and_pages_through_them() {
    let app = start().await;
    let event = app.event(100, 0).await;
    let mut ids = Vec::new();
    for (name, email) in [
        ("Ada Lovelace", "ada@example.org"),
        ("Grace Hopper", "grace@navy.example"),
        ("Alan Turing", "alan@example.org"),
        ("100% Percent", "percent@example.org"),
        ("Under_Score", "under@example.org"),
    ] {
        let (s, v) = app
            .post(
                "/v1/orders",
                json!({"event_id": event, "name": name, "email": email, "items": [{"ticket_type": 0, "quantity": 1}]}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        ids.push(v["order_id"].as_str().unwrap().to_owned());
    }
    let find = |q: &str, extra: &str| {
        let path = format!("/admin/v1/orders?event={event}&q={}{extra}", urlencode(q));
        let app = &app;
        async move {
            let (s, v) = app.admin(reqwest::Method::GET, &path, None).await;
            assert_eq!(s, 200, "{v}");
            let names: Vec<String> = v["orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["customer_name"].as_str().unwrap().to_owned())
                .collect();
            (names, v["total"].as_i64().unwrap())
        }
    };
    // Part of a name, any case; part of an email; a whole order id.
    assert_eq!(find("hopper", "").await, (vec!["Grace Hopper".to_owned()], 1));
    assert_eq!(find("NAVY", "").await, (vec!["Grace Hopper".to_owned()], 1));
    assert_eq!(find(&ids[2], "").await, (vec!["Alan Turing".to_owned()], 1));
    // LIKE's own characters are taken literally.
    assert_eq!(find("%", "").await, (vec!["100% Percent".to_owned()], 1));
    assert_eq!(find("_", "").await, (vec!["Under_Score".to_owned()], 1));
    assert_eq!(find("nobody", "").await, (vec![], 0));
    // Paging: newest first, `total` counts every match.
    let (first, total) = find("example.org", "&limit=2").await;
    let (second, _) = find("example.org", "&limit=2&offset=2").await;
    assert_eq!(total, 4);
    assert_eq!(first.len(), 2);
    assert_eq!(second.len(), 2);
    assert!(first.iter().all(|n| !second.contains(n)), "{first:?} / {second:?}");
    // Bad input is a clear 4xx.
    for bad in ["&offset=-1", "&limit=0", "&limit=5000"] {
        let (s, v) = app.admin(reqwest::Method::GET, &format!("/admin/v1/orders?event={event}{bad}"), None).await;
        assert_eq!(s, 422, "{bad}: {v}");
    }
    let long = "x".repeat(101);
    let (s, _) = app.admin(reqwest::Method::GET, &format!("/admin/v1/orders?q={long}"), None).await;
    assert_eq!(s, 422);
}

/// Percent-encodes a query value (only what these tests send needs it).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
