//! Tickets by SMS (issue #17) against a local fake of Twilio's Messages API that checks every request as
//! Twilio documents it (common/twilio_fake.rs): the order link goes out once per order with a phone
//! number, through the outbox (retried on 500/429, dead-lettered at once on a permanent refusal, retried
//! from the admin outbox API); invalid numbers are refused before anything is stored; no phone, no SMS;
//! the auth token never reaches the logs. Runs on SQLite and, with ISSUER_TEST_POSTGRES, on PostgreSQL.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use common::twilio_fake::{Failure, FakeTwilio};
use common::{eventually, start_with, App};
use reqwest::redirect::Policy;
use serde_json::{json, Value};

/// A well-formed Account SID (AC + 32 hex digits) and an auth token for the fake.
const SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "twilio-auth-token-7f3c9e1d";
const FROM: &str = "+15017122661";

async fn start_with_sms(twilio: &FakeTwilio) -> App {
    let api = twilio.url();
    start_with(move |c| {
        c.twilio_account_sid = Some(SID.into());
        c.twilio_auth_token = Some(AUTH_TOKEN.into());
        c.twilio_from = Some(FROM.into());
        c.twilio_api_base = api;
    })
    .await
}

/// A free order of one ticket through the JSON API, with `phone` if given.
async fn order(app: &App, event: i64, phone: Option<&str>) -> (u16, Value) {
    let mut body = json!({"event_id": event, "name": "Ada", "email": "ada@example.org",
                          "items": [{"ticket_type": 0, "quantity": 1}]});
    if let Some(p) = phone {
        body["phone"] = json!(p);
    }
    app.post("/v1/orders", body).await
}

/// The outbox jobs of `order_id` as the admin API lists them, oldest first.
async fn jobs_of(app: &App, order_id: &str) -> Vec<Value> {
    let (s, v) = app.admin(reqwest::Method::GET, "/admin/v1/email-jobs?limit=1000", None).await;
    assert_eq!(s, 200, "{v}");
    let mut jobs: Vec<Value> =
        v["jobs"].as_array().unwrap().iter().filter(|j| j["order_id"] == order_id).cloned().collect();
    jobs.sort_by_key(|j| j["id"].as_i64());
    jobs
}

/// Waits until `order_id`'s SMS job has `status`; returns the job.
async fn sms_job_with_status(app: &App, order_id: &str, status: &str) -> Value {
    let found = eventually(Duration::from_secs(30), || async {
        jobs_of(app, order_id).await.into_iter().find(|j| j["channel"] == "sms" && j["status"] == status)
    })
    .await;
    match found {
        Some(job) => job,
        None => panic!("no {status} SMS job for {order_id}: {:?}", jobs_of(app, order_id).await),
    }
}

/// The link at the end of an SMS body ("Your tickets for …: <link>").
fn link_in(body: &str) -> &str {
    body.rsplit(' ').next().unwrap()
}

#[tokio::test]
async fn an_order_with_a_phone_gets_exactly_one_sms_whose_link_opens_the_order() {
    let twilio = FakeTwilio::start(SID, AUTH_TOKEN).await;
    let app = start_with_sms(&twilio).await;
    let event = app.event(10, 0).await;
    let (s, created) = order(&app, event, Some("+49 170 1234567")).await;
    assert_eq!(s, 201, "{created}");
    let order_id = created["order_id"].as_str().unwrap();
    let job = sms_job_with_status(&app, order_id, "sent").await;
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["kind"], "tickets");

    let calls = twilio.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(call.status, 201);
    assert_eq!(call.path, format!("/2010-04-01/Accounts/{SID}/Messages.json"));
    // Basic auth of "SID:token", encoded here independently of the issuer's HTTP client.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{AUTH_TOKEN}"));
    assert_eq!(call.authorization.as_deref(), Some(format!("Basic {basic}").as_str()));
    assert_eq!(call.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    // "+49 170 1234567" in E.164, written out by hand.
    assert_eq!(call.field("To"), Some("+491701234567"));
    assert_eq!(call.field("From"), Some(FROM));
    assert_eq!(call.field("MessagingServiceSid"), None);
    let body = call.field("Body").unwrap();
    let order_url = created["order_url"].as_str().unwrap();
    assert_eq!(body, format!("Your tickets for Test Night: {order_url}"));

    // The link opens the order (its token is in it), with the ticket's QR code.
    let page = app.http.get(link_in(body)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(order_id), "{html}");
    assert!(html.contains("qr.png"), "{html}");
    // The same path without the token opens nothing.
    let bare = link_in(body).split('?').next().unwrap();
    assert_eq!(app.http.get(bare).send().await.unwrap().status(), 404);

    // Stored on the order in E.164; the mail went out beside the SMS.
    let (phone,): (Option<String>,) = sqlx::query_as("SELECT phone FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(&app.running.state.db.read)
        .await
        .unwrap();
    assert_eq!(phone.as_deref(), Some("+491701234567"));
    let jobs = jobs_of(&app, order_id).await;
    assert_eq!(jobs.iter().filter(|j| j["channel"] == "email").count(), 1, "{jobs:?}");
    assert_eq!(jobs.iter().filter(|j| j["channel"] == "sms").count(), 1, "{jobs:?}");

    // An organizer's resend sends the SMS again (and the mail), once each.
    let (s, v) = app.admin(reqwest::Method::POST, &format!("/admin/v1/orders/{order_id}/resend"), None).await;
    assert_eq!(s, 202, "{v}");
    let resent = eventually(Duration::from_secs(30), || async {
        let jobs = jobs_of(&app, order_id).await;
        jobs.iter().any(|j| j["channel"] == "sms" && j["kind"] == "resend" && j["status"] == "sent").then_some(jobs)
    })
    .await
    .expect("the resent SMS is sent");
    assert_eq!(resent.iter().filter(|j| j["channel"] == "sms").count(), 2, "{resent:?}");
    let calls = twilio.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[1].field("Body"), Some(body));
}

#[tokio::test]
async fn a_500_and_a_429_are_retried_and_the_sms_is_delivered_once() {
    let twilio = FakeTwilio::start(SID, AUTH_TOKEN).await;
    twilio.fail_next([Failure::server_error(), Failure::too_many_requests()]);
    let app = start_with_sms(&twilio).await;
    let event = app.event(10, 0).await;
    let (s, created) = order(&app, event, Some("+1 (415) 555-0100")).await;
    assert_eq!(s, 201, "{created}");
    let order_id = created["order_id"].as_str().unwrap();
    let job = sms_job_with_status(&app, order_id, "sent").await;
    assert_eq!(job["attempts"], 3, "{job}");

    let calls = twilio.calls();
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), [500, 429, 201], "{calls:?}");
    // The same message each time: "+1 (415) 555-0100" in E.164 is +14155550100.
    for c in &calls {
        assert_eq!(c.field("To"), Some("+14155550100"));
        assert_eq!(c.form, calls[2].form);
    }
    assert_eq!(calls.iter().filter(|c| c.sid.is_some()).count(), 1);
}

#[tokio::test]
async fn a_permanent_refusal_is_a_dead_letter_in_the_admin_outbox_and_its_retry_sends_it_once_fixed() {
    let twilio = FakeTwilio::start(SID, AUTH_TOKEN).await;
    twilio.fail_always(Failure::new(400, 21211, "The 'To' number +491701234567 is not a valid phone number."));
    let app = start_with_sms(&twilio).await;
    let event = app.event(10, 0).await;
    let (s, created) = order(&app, event, Some("+49 170 1234567")).await;
    assert_eq!(s, 201, "{created}");
    let order_id = created["order_id"].as_str().unwrap();

    // Dead at once: the same request cannot succeed, so it is not retried 10 times.
    let dead = sms_job_with_status(&app, order_id, "dead").await;
    assert_eq!(dead["attempts"], 1, "{dead}");
    let error = dead["last_error"].as_str().unwrap();
    assert!(error.contains("HTTP 400") && error.contains("21211"), "{error}");
    assert!(error.contains("https://www.twilio.com/docs/errors/21211"), "{error}");
    let (s, v) = app.admin(reqwest::Method::GET, "/admin/v1/email-jobs?status=dead", None).await;
    assert_eq!(s, 200, "{v}");
    let listed: Vec<&Value> = v["jobs"].as_array().unwrap().iter().filter(|j| j["order_id"] == order_id).collect();
    assert_eq!(listed.len(), 1, "{v}");
    assert_eq!(listed[0]["channel"], "sms");
    assert_eq!(twilio.calls().len(), 1);
    // The mail of the same order is not held up by the SMS.
    let mail = jobs_of(&app, order_id).await.into_iter().find(|j| j["channel"] == "email").unwrap();
    assert_ne!(mail["status"], "dead", "{mail}");

    // The organizer fixes the cause and retries the job from the outbox.
    twilio.fix();
    let id = dead["id"].as_i64().unwrap();
    let (s, v) = app.admin(reqwest::Method::POST, &format!("/admin/v1/email-jobs/{id}/retry"), None).await;
    assert_eq!(s, 204, "{v}");
    let sent = sms_job_with_status(&app, order_id, "sent").await;
    assert_eq!(sent["id"], id);
    let calls = twilio.calls();
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), [400, 201], "{calls:?}");
    assert_eq!(calls[1].field("To"), Some("+491701234567"));
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// Loads the event page as a browser does; returns the CSRF cookie, the form's token and the page.
async fn open_form(app: &App, event: i64) -> (String, String, String) {
    let resp = app.http.get(app.url(&format!("/events/{event}"))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let html = resp.text().await.unwrap();
    let token = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    (cookie, token, html)
}

async fn order_count(app: &App) -> i64 {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM orders").fetch_one(&app.running.state.db.read).await.unwrap();
    n
}

#[tokio::test]
async fn an_invalid_phone_on_the_form_is_a_422_with_a_message_and_orders_nothing() {
    let twilio = FakeTwilio::start(SID, AUTH_TOKEN).await;
    let app = start_with_sms(&twilio).await;
    let event = app.event(10, 0).await;
    let (cookie, token, html) = open_form(&app, event).await;
    assert!(html.contains("<input type=\"tel\" id=\"phone\" name=\"phone\""), "{html}");

    let post = |phone: &'static str| {
        let (cookie, token, url, origin) =
            (cookie.clone(), token.clone(), app.url(&format!("/events/{event}/order")), app.running.url());
        async move {
            no_redirects()
                .post(url)
                .header("cookie", cookie)
                .header("origin", origin)
                .form(&[
                    ("csrf", token.as_str()),
                    ("qty_0", "1"),
                    ("name", "Ada"),
                    ("email", "ada@example.org"),
                    ("phone", phone),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    // No country code; a Berlin landline; letters.
    for phone in ["0170 1234567", "+49 30 1234567", "+49 170 CALLME"] {
        let resp = post(phone).await;
        assert_eq!(resp.status(), 422, "{phone}");
        let html = resp.text().await.unwrap();
        // The message at the field says what to give, and the form comes back with what was typed, marked.
        let message = html.split("<p class=\"field-error\" id=\"phone-error\">").nth(1).unwrap_or_default();
        assert!(message.split("</p>").next().unwrap().contains("country code"), "{phone}: {html}");
        assert!(html.contains(&format!("value=\"{phone}\" aria-invalid=\"true\"")), "{phone}: {html}");
    }
    assert_eq!(order_count(&app).await, 0);

    // The JSON API says the same, naming the field.
    let (s, v) = order(&app, event, Some("12345")).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["field"], "phone", "{v}");
    assert_eq!(order_count(&app).await, 0);
    assert!(twilio.calls().is_empty());

    // A good number on the form: ordered, and the SMS goes to it.
    let resp = post("+44 7911 123456").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(order_count(&app).await, 1);
    let sent = eventually(Duration::from_secs(30), || async { twilio.calls().into_iter().find(|c| c.status == 201) })
        .await
        .expect("the SMS is sent");
    assert_eq!(sent.field("To"), Some("+447911123456"));
}

#[tokio::test]
async fn no_phone_no_sms_and_a_server_without_twilio_offers_none() {
    let twilio = FakeTwilio::start(SID, AUTH_TOKEN).await;
    let app = start_with_sms(&twilio).await;
    let event = app.event(10, 0).await;
    let (s, created) = order(&app, event, None).await;
    assert_eq!(s, 201, "{created}");
    let order_id = created["order_id"].as_str().unwrap().to_owned();
    // An empty field (the form's, left blank) is no phone either.
    let (s, blank) = order(&app, event, Some("  ")).await;
    assert_eq!(s, 201, "{blank}");
    for id in [order_id.as_str(), blank["order_id"].as_str().unwrap()] {
        let jobs = eventually(Duration::from_secs(30), || async {
            let jobs = jobs_of(&app, id).await;
            jobs.iter().any(|j| j["channel"] == "email" && j["status"] == "sent").then_some(jobs)
        })
        .await
        .expect("the mail is sent");
        assert!(jobs.iter().all(|j| j["channel"] == "email"), "{jobs:?}");
    }
    assert!(twilio.calls().is_empty(), "{:?}", twilio.calls());

    // Without Twilio settings: no phone field, and a phone number in the API is refused, not dropped.
    let plain = common::start().await;
    let event = plain.event(10, 0).await;
    let (_, _, html) = open_form(&plain, event).await;
    assert!(!html.contains("name=\"phone\""), "{html}");
    let (s, v) = order(&plain, event, Some("+49 170 1234567")).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["field"], "phone", "{v}");
    assert_eq!(order_count(&plain).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_token_never_appears_in_the_logs() {
    const ADMIN: &str = "sms-log-test-admin-token";
    let twilio = FakeTwilio::start(SID, AUTH_TOKEN).await;
    // One retried failure and one refusal: the paths that log the provider's answers.
    twilio.fail_next([Failure::server_error()]);
    let dir = tempfile::tempdir().unwrap();
    let db = common::database_args(&common::fresh_database_url().await);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let log_path = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_issuer"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--admin-token", ADMIN, "--email-backoff-ms", "200"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(&db)
        .env_remove("DATABASE_URL")
        .env("TWILIO_ACCOUNT_SID", SID)
        .env("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
        .env("TWILIO_FROM", FROM)
        .env("TWILIO_API_BASE", twilio.url())
        // Everything the issuer and its HTTP client log.
        .env("RUST_LOG", "debug,hyper=trace,reqwest=trace")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("spawn issuer");
    let http = reqwest::Client::new();
    common::wait_up(&http, &base).await;
    let event = common::process_event(&http, &base, ADMIN, "Log Night", 10).await;
    let place = |phone: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r = http
                .post(format!("{base}/v1/orders"))
                .json(&json!({"event_id": event, "name": "Ada", "email": "ada@example.org",
                              "items": [{"ticket_type": 0, "quantity": 1}], "phone": phone}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    };
    place("+49 170 1234567").await;
    eventually(Duration::from_secs(30), || async { twilio.calls().iter().any(|c| c.status == 201).then_some(()) })
        .await
        .expect("the SMS is sent after the 500");
    twilio.fail_always(Failure::new(400, 21211, "The 'To' number +491701234568 is not a valid phone number."));
    place("+49 170 1234568").await;
    eventually(Duration::from_secs(30), || async { twilio.calls().iter().any(|c| c.status == 400).then_some(()) })
        .await
        .expect("the second SMS is refused");
    // Give the worker the moment to log the refusal it just received.
    let logged = eventually(Duration::from_secs(30), || async {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        log.contains("dead-lettered").then_some(log)
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let log = logged.unwrap_or_else(|| std::fs::read_to_string(&log_path).unwrap_or_default());

    // The log is there and speaks of both sends (so this test can see a leak if there is one)...
    assert!(log.contains("SMS accepted by the provider"), "{log}");
    assert!(log.contains("21211"), "{log}");
    // ...but never the token, alone or inside the Basic credentials.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{AUTH_TOKEN}"));
    assert!(!log.contains(AUTH_TOKEN), "the auth token is in the log");
    assert!(!log.contains(&basic), "the Basic credentials are in the log");
}

/// SMS pumping: anyone who can order free tickets could make the organizer's Twilio account text one
/// number again and again. Five orders an hour per number get their SMS; the sixth, however the number
/// is written, is refused with 429 before anything is stored, and an order without a phone still goes.
#[tokio::test]
async fn a_sixth_order_within_the_hour_for_one_phone_number_is_refused_before_anything_is_stored() {
    let twilio = FakeTwilio::start(SID, AUTH_TOKEN).await;
    let app = start_with_sms(&twilio).await;
    let event = app.event(20, 0).await;
    for i in 0..5 {
        let (s, v) = order(&app, event, Some("+49 170 1234567")).await;
        assert_eq!(s, 201, "order {i}: {v}");
    }
    assert_eq!(order_count(&app).await, 5);
    let resp = app
        .http
        .post(app.url("/v1/orders"))
        .json(&json!({"event_id": event, "name": "Ada", "email": "ada@example.org", "phone": "+491701234567",
                      "items": [{"ticket_type": 0, "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "3600");
    assert_eq!(order_count(&app).await, 5, "the refused order stored nothing");
    // Another number, and no number at all, are not held up.
    let (s, v) = order(&app, event, Some("+44 7911 123456")).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = order(&app, event, None).await;
    assert_eq!(s, 201, "{v}");
    let sent = eventually(Duration::from_secs(30), || async { (twilio.calls().len() >= 6).then_some(()) }).await;
    assert!(sent.is_some(), "{:?}", twilio.calls());
    let to_first = twilio.calls().iter().filter(|c| c.field("To") == Some("+491701234567")).count();
    assert_eq!(to_first, 5);
}
