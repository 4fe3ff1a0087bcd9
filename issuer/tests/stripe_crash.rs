//! kill -9 of the issuer while Stripe is executing a refund whose answer never comes back: after a
//! restart on the same data directory the refund is retried with the same idempotency key and Stripe
//! ends up with exactly one refund.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually, FakeStripe};
use serde_json::{json, Value};

const TOKEN: &str = "stripe-crash-admin-token";
const KEY: &str = "sk_test_crash_key";
const WHSEC: &str = "whsec_crash";

fn spawn(data: &std::path::Path, port: u16, stripe: &str, db: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_issuer"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--admin-token", TOKEN])
        .arg("--data-dir")
        .arg(data)
        .args(db)
        .env_remove("DATABASE_URL")
        .env("STRIPE_SECRET_KEY", KEY)
        .env("STRIPE_WEBHOOK_SECRET", WHSEC)
        .env("STRIPE_API_BASE", stripe)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn issuer")
}

async fn admin(http: &reqwest::Client, base: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut req = http.request(method, format!("{base}{path}")).bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("admin request");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_stripe_refunds_ends_with_exactly_one_refund() {
    let stripe = FakeStripe::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = common::database_args(&common::fresh_database_url().await);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut child = spawn(&data, port, &stripe.url(), &db);
    common::wait_up(&http, &base).await;

    let ev = admin(&http, &base, reqwest::Method::POST, "/admin/v1/events",
        Some(json!({"name":"Crash","venue":"V","starts_at":2_000_000_000i64,"ends_at":2_000_010_000i64,"timezone":"UTC"}))).await;
    let event = ev["id"].as_i64().unwrap();
    admin(
        &http,
        &base,
        reqwest::Method::POST,
        &format!("/admin/v1/events/{event}/ticket-types"),
        Some(json!({"name":"GA","price_cents":4_200,"currency":"EUR","capacity":10})),
    )
    .await;
    let order: Value = http
        .post(format!("{base}/v1/orders"))
        .json(&json!({"event_id":event,"name":"Crash Payer","email":"crash@example.org","items":[{"ticket_type":0,"quantity":1}],"payment":"stripe"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_id = order["order_id"].as_str().expect("order id").to_owned();
    let session = stripe.sessions().pop().expect("a checkout session").id;
    let paid = stripe.pay(&session);
    let (s, v) = stripe.deliver(&format!("{base}/v1/payments/stripe/webhook"), WHSEC, &paid).await;
    assert_eq!((s, v["outcome"].as_str()), (200, Some("confirmed")), "{v}");
    let pi = paid["data"]["object"]["payment_intent"].as_str().unwrap().to_owned();

    // Stripe executes the refund but its answer never arrives; the issuer dies meanwhile.
    stripe.hang_next_refunds(1);
    let (h, b, id) = (http.clone(), base.clone(), order_id.clone());
    let refund = tokio::spawn(async move {
        let _ = h.post(format!("{b}/admin/v1/orders/{id}/refund")).bearer_auth(TOKEN).send().await;
    });
    let executed = eventually(Duration::from_secs(10), || async { (!stripe.refunds().is_empty()).then_some(()) }).await;
    assert!(executed.is_some(), "the refund reached Stripe");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let _ = refund.await;

    let mut child = spawn(&data, port, &stripe.url(), &db);
    common::wait_up(&http, &base).await;
    let done = eventually(Duration::from_secs(30), || {
        let (http, base, id) = (http.clone(), base.clone(), order_id.clone());
        async move {
            let v: Value = http
                .get(format!("{base}/admin/v1/orders/{id}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v["refund"]["status"] == "succeeded").then_some(v)
        }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let order = done.expect("after the restart the pending refund is retried to success");
    assert_eq!(order["status"], "refunded");

    let calls = stripe.calls_to("/v1/refunds");
    assert!(calls.len() >= 2, "{calls:?}");
    assert!(calls.iter().all(|c| c.idempotency_key == calls[0].idempotency_key), "one key across retries: {calls:?}");
    assert!(calls[1..].iter().all(|c| c.replayed), "the retries got Stripe's saved answer: {calls:?}");
    let refunds = stripe.refunds();
    assert_eq!(refunds.len(), 1, "exactly one refund at Stripe: {refunds:?}");
    assert_eq!((refunds[0].payment_intent.as_str(), refunds[0].amount), (pi.as_str(), 4_200));
}
