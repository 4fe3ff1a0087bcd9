//! Stripe Checkout against a local fake of Stripe's API (a real HTTP server on a random port), and the
//! webhook with correctly and incorrectly signed events; hold expiry of unpaid orders.

mod common;

use std::time::Duration;

use common::{eventually, fake_stripe, start_with};
use issuer::payments::stripe::sign;
use serde_json::{json, Value};

const WHSEC: &str = "whsec_test_secret";

fn paid_event(event_id: &str, order_id: &str, session: &str, amount: i64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": event_id, "type": "checkout.session.completed",
        "data": {"object": {"id": session, "object": "checkout.session", "client_reference_id": order_id,
            "payment_status": "paid", "amount_total": amount, "currency": "eur", "payment_intent": "pi_123"}}
    }))
    .unwrap()
}

async fn post_webhook(app: &common::App, body: &[u8], sig: Option<String>) -> (u16, Value) {
    let mut req = app.http.post(app.url("/v1/payments/stripe/webhook")).body(body.to_vec());
    if let Some(s) = sig {
        req = req.header("Stripe-Signature", s);
    }
    let r = req.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn ticket_count(app: &common::App, order: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tickets WHERE order_id = $1")
        .bind(order)
        .fetch_one(&app.running.state.db.read)
        .await
        .unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_signature_good_bad_replayed() {
    let api = fake_stripe().await;
    let app = start_with(|c| {
        c.stripe_secret_key = Some("sk_test_x".into());
        c.stripe_webhook_secret = Some(WHSEC.into());
        c.stripe_api_base = api;
    })
    .await;
    let event = app.event(10, 2_000).await;
    let (s, order) = app.order(event, "Payer", 2, "stripe").await;
    assert_eq!(s, 201, "{order}");
    assert_eq!(order["status"], "pending");
    assert!(order["checkout_url"].as_str().unwrap().starts_with("https://checkout.example/"));
    let order_id = order["order_id"].as_str().unwrap();
    let body = paid_event("evt_1", order_id, "cs_test_0", 4_000);
    let now = issuer::util::now();

    // Bad: no header, wrong secret, tampered body, stale timestamp, garbage.
    assert_eq!(post_webhook(&app, &body, None).await.0, 400);
    assert_eq!(post_webhook(&app, &body, Some(sign(&body, "whsec_wrong", now))).await.0, 400);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(post_webhook(&app, &tampered, Some(sign(&body, WHSEC, now))).await.0, 400);
    let (s, v) = post_webhook(&app, &body, Some(sign(&body, WHSEC, now - 3_600))).await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("tolerance"), "{v}");
    assert_eq!(post_webhook(&app, &body, Some("t=abc,v1=zz".into())).await.0, 400);
    assert_eq!(ticket_count(&app, order_id).await, 0);

    // A wrong amount, correctly signed, issues nothing.
    let cheap = paid_event("evt_cheap", order_id, "cs_test_0", 1);
    assert_eq!(post_webhook(&app, &cheap, Some(sign(&cheap, WHSEC, now))).await.0, 409);
    assert_eq!(ticket_count(&app, order_id).await, 0);

    // Good: tickets issued once; replays (same event, or a second paid event) change nothing.
    let (s, v) = post_webhook(&app, &body, Some(sign(&body, WHSEC, now))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["outcome"], "confirmed");
    assert_eq!(ticket_count(&app, order_id).await, 2);
    let (s, v) = post_webhook(&app, &body, Some(sign(&body, WHSEC, now + 1))).await;
    assert_eq!(s, 200);
    assert_eq!(v["outcome"], "duplicate");
    let again = paid_event("evt_2", order_id, "cs_test_0", 4_000);
    let (_, v) = post_webhook(&app, &again, Some(sign(&again, WHSEC, now))).await;
    assert_eq!(v["outcome"], "already_settled");
    assert_eq!(ticket_count(&app, order_id).await, 2);
    let (jobs,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM email_jobs WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(&app.running.state.db.read)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    // Refund goes through the provider and revokes.
    let (s, r) = app.admin(reqwest::Method::POST, &format!("/admin/v1/orders/{order_id}/refund"), None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["revocation_version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_holds_expire_and_release_seats() {
    let api = fake_stripe().await;
    let app = start_with(|c| {
        c.stripe_secret_key = Some("sk_test_x".into());
        c.stripe_webhook_secret = Some(WHSEC.into());
        c.stripe_api_base = api;
        c.hold_seconds = 1;
    })
    .await;
    let event = app.event(3, 1_000).await;
    let (s, held) = app.order(event, "Slow Payer", 3, "stripe").await;
    assert_eq!(s, 201, "{held}");
    // All three seats are held: nobody else can buy.
    let (s, _) = app.order(event, "Other", 1, "at_door").await;
    assert_eq!(s, 409);
    let (_, ev) = app.get_json(&format!("/v1/events/{event}")).await;
    assert_eq!(ev["ticket_types"][0]["available"], 0);
    // After the hold, the sweeper releases them.
    let freed = eventually(Duration::from_secs(10), || async {
        let (_, ev) = app.get_json(&format!("/v1/events/{event}")).await;
        (ev["ticket_types"][0]["available"] == 3).then_some(())
    })
    .await;
    assert!(freed.is_some(), "seats released after the hold");
    let order_id = held["order_id"].as_str().unwrap();
    let (_, view) = app.get_json(&format!("/v1/orders/{order_id}?token={}", held["token"].as_str().unwrap())).await;
    assert_eq!(view["status"], "expired");
    // Someone else buys two; a late payment for the expired order cannot get three seats: flagged.
    let (s, _) = app.order(event, "Other", 2, "at_door").await;
    assert_eq!(s, 201);
    let body = paid_event("evt_late", order_id, "cs_test_0", 3_000);
    let (s, v) = post_webhook(&app, &body, Some(sign(&body, WHSEC, issuer::util::now()))).await;
    assert_eq!(s, 200);
    assert_eq!(v["outcome"], "payment_conflict");
    assert_eq!(ticket_count(&app, order_id).await, 0);
}
