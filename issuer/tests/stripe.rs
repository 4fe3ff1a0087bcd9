//! Stripe Checkout against a local fake of Stripe's API (a real HTTP server on a random port that checks
//! every request as Stripe documents it and records it): the checkout form and its `expires_at`, the
//! webhook with correctly and incorrectly signed events, refunds and disputes made at Stripe, cancelling a
//! pending order, a payment that arrives after the cancel, and refunds recorded before Stripe is called.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{eventually, FakeStripe};
use issuer::payments::stripe::sign;
use reqwest::Method;
use serde_json::{json, Value};

const KEY: &str = "sk_test_issue11_key";
const WHSEC: &str = "whsec_test_secret";
/// The catalog the tests create, and what Stripe must be asked for (computed here, not read back).
const TICKET_PRICE: i64 = 2_500;
const ADDON_PRICE: i64 = 700;

struct Shop {
    app: common::App,
    stripe: FakeStripe,
    event: i64,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// An issuer with Stripe configured against a fresh fake, and an event with one ticket type
/// ("Standard", 25.00 EUR) and one add-on ("Parking", 7.00 EUR).
async fn shop(capacity: i64, hold_seconds: u64) -> Shop {
    let stripe = FakeStripe::start(KEY).await;
    let api = stripe.url();
    let app = common::start_with(|c| {
        c.stripe_secret_key = Some(KEY.into());
        c.stripe_webhook_secret = Some(WHSEC.into());
        c.stripe_api_base = api;
        c.hold_seconds = hold_seconds;
    })
    .await;
    let (s, v) = app
        .admin(
            Method::POST,
            "/admin/v1/events",
            Some(json!({"name":"Stripe Night","venue":"Hall","starts_at":2_000_000_000i64,"ends_at":2_000_010_000i64,"timezone":"UTC"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let event = v["id"].as_i64().unwrap();
    let (s, v) = app
        .admin(
            Method::POST,
            &format!("/admin/v1/events/{event}/ticket-types"),
            Some(json!({"name":"Standard","price_cents":TICKET_PRICE,"currency":"EUR","capacity":capacity})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = app
        .admin(
            Method::POST,
            &format!("/admin/v1/events/{event}/addons"),
            Some(json!({"name":"Parking","price_cents":ADDON_PRICE,"capacity":1_000})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    Shop { app, stripe, event }
}

impl Shop {
    /// A Stripe order of `qty` Standard tickets, each with Parking.
    async fn buy(&self, qty: i64) -> (u16, Value) {
        self.app
            .post(
                "/v1/orders",
                json!({"event_id":self.event,"name":"Ada Payer","email":"ada@example.org",
                       "items":[{"ticket_type":0,"quantity":qty,"addons":[0]}],"payment":"stripe"}),
            )
            .await
    }

    async fn buy_ok(&self, qty: i64) -> (String, String) {
        let (s, order) = self.buy(qty).await;
        assert_eq!(s, 201, "{order}");
        let id = order["order_id"].as_str().unwrap().to_owned();
        let session = self.session_of(&id).await;
        (id, session)
    }

    async fn session_of(&self, order: &str) -> String {
        let (s,): (Option<String>,) = sqlx::query_as("SELECT payment_ref FROM orders WHERE id = $1")
            .bind(order)
            .fetch_one(&self.app.running.state.db.read)
            .await
            .unwrap();
        s.expect("the order has a checkout session")
    }

    fn webhook_url(&self) -> String {
        self.app.url("/v1/payments/stripe/webhook")
    }

    async fn deliver(&self, event: &Value) -> (u16, Value) {
        self.stripe.deliver(&self.webhook_url(), WHSEC, event).await
    }

    /// The customer pays the order's session; Stripe's `checkout.session.completed` arrives. Returns the
    /// payment intent.
    async fn pay(&self, session: &str) -> String {
        let event = self.stripe.pay(session);
        let (s, v) = self.deliver(&event).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["outcome"], "confirmed", "{v}");
        event["data"]["object"]["payment_intent"].as_str().unwrap().to_owned()
    }

    async fn status(&self, order: &str) -> String {
        let (s, v) = self.app.admin(Method::GET, &format!("/admin/v1/orders/{order}"), None).await;
        assert_eq!(s, 200, "{v}");
        v["status"].as_str().unwrap().to_owned()
    }

    async fn tickets(&self, order: &str) -> (i64, i64) {
        sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN revoked THEN 1 ELSE 0 END), 0) FROM tickets WHERE order_id = $1",
        )
        .bind(order)
        .fetch_one(&self.app.running.state.db.read)
        .await
        .unwrap()
    }

    async fn email_jobs(&self, order: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM email_jobs WHERE order_id = $1")
            .bind(order)
            .fetch_one(&self.app.running.state.db.read)
            .await
            .unwrap();
        n
    }

    /// (version, entries) of the published revocation list.
    async fn revocations(&self) -> (i64, i64) {
        let (s, v) = self.app.admin(Method::GET, "/admin/v1/revocations", None).await;
        assert_eq!(s, 200, "{v}");
        (v["version"].as_i64().unwrap(), v["entries"].as_i64().unwrap())
    }

    async fn refund_state(&self, order: &str) -> Value {
        self.app.admin(Method::GET, &format!("/admin/v1/orders/{order}"), None).await.1["refund"].clone()
    }
}

/// Every call the issuer makes carries the configured key, a form body and an idempotency key.
fn assert_well_formed(calls: &[common::StripeCall]) {
    for c in calls {
        assert_eq!(c.method, "POST", "{c:?}");
        assert_eq!(c.authorization.as_deref(), Some(format!("Bearer {KEY}").as_str()), "{c:?}");
        assert!(c.content_type.as_deref().unwrap_or("").starts_with("application/x-www-form-urlencoded"), "{c:?}");
        assert!(c.idempotency_key.as_deref().is_some_and(|k| !k.is_empty()), "{c:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_form_is_stripes_and_expires_at_stays_inside_the_window() {
    // The hold shorter than Stripe's minimum, the default, and longer than Stripe's maximum.
    for hold in [1u64, 900, 3 * 86_400] {
        let shop = shop(10, hold).await;
        let before = now();
        let (s, order) = shop.buy(2).await;
        let after = now();
        assert_eq!(s, 201, "{order}");
        let order_id = order["order_id"].as_str().unwrap();
        let expected_total = 2 * TICKET_PRICE + 2 * ADDON_PRICE;
        assert_eq!(order["total_cents"], expected_total);

        let calls = shop.stripe.calls_to("/v1/checkout/sessions");
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_well_formed(&calls);
        let call = &calls[0];
        assert_eq!(call.status, 200, "the fake accepted the session: {call:?}");
        assert_eq!(order["checkout_url"], format!("https://checkout.example/{}", shop.session_of(order_id).await));

        let expires: i64 = call.field("expires_at").unwrap().parse().unwrap();
        let margin = 60; // at least a minute clear of either end, whatever the hold
        assert!(expires >= before + 30 * 60 + margin, "hold {hold}: expires_at {expires} too soon (now {before})");
        assert!(expires <= after + 24 * 3600 - margin, "hold {hold}: expires_at {expires} too late (now {after})");

        let form: BTreeMap<&str, &str> = call.form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let order_url = order["order_url"].as_str().unwrap();
        let expected_exp = expires.to_string();
        let success = format!("{order_url}&paid=1");
        let cancel = format!("{order_url}&cancelled=1");
        let expected: BTreeMap<&str, &str> = [
            ("mode", "payment"),
            ("client_reference_id", order_id),
            ("metadata[order_id]", order_id),
            ("customer_email", "ada@example.org"),
            ("success_url", success.as_str()),
            ("cancel_url", cancel.as_str()),
            ("expires_at", expected_exp.as_str()),
            ("line_items[0][quantity]", "2"),
            ("line_items[0][price_data][currency]", "eur"),
            ("line_items[0][price_data][unit_amount]", "2500"),
            ("line_items[0][price_data][product_data][name]", "Standard"),
            ("line_items[1][quantity]", "2"),
            ("line_items[1][price_data][currency]", "eur"),
            ("line_items[1][price_data][unit_amount]", "700"),
            ("line_items[1][price_data][product_data][name]", "Parking"),
        ]
        .into_iter()
        .collect();
        assert_eq!(form, expected);
        let charged: i64 = (0..2)
            .map(|i| {
                let q: i64 = form[format!("line_items[{i}][quantity]").as_str()].parse().unwrap();
                let u: i64 = form[format!("line_items[{i}][price_data][unit_amount]").as_str()].parse().unwrap();
                q * u
            })
            .sum();
        assert_eq!(charged, expected_total, "Stripe is asked for exactly the catalog's prices");
        assert_eq!(shop.stripe.sessions()[0].amount_total, expected_total);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_answers_like_stripe() {
    let stripe = FakeStripe::start(KEY).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/checkout/sessions", stripe.url());
    let good = |exp: i64| {
        vec![
            ("mode", "payment".to_owned()),
            ("success_url", "https://shop.example/ok".to_owned()),
            ("expires_at", exp.to_string()),
            ("line_items[0][quantity]", "1".to_owned()),
            ("line_items[0][price_data][currency]", "eur".to_owned()),
            ("line_items[0][price_data][unit_amount]", "1000".to_owned()),
            ("line_items[0][price_data][product_data][name]", "GA".to_owned()),
        ]
    };
    let post = |key: Option<&str>, idem: Option<&str>, form: Vec<(&'static str, String)>| {
        let mut r = http.post(&url).form(&form);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        if let Some(i) = idem {
            r = r.header("Idempotency-Key", i);
        }
        r.send()
    };
    let t = now() + 3600;
    assert_eq!(post(None, Some("a"), good(t)).await.unwrap().status(), 401);
    assert_eq!(post(Some("sk_test_other"), Some("a"), good(t)).await.unwrap().status(), 401);
    assert_eq!(post(Some(KEY), None, good(t)).await.unwrap().status(), 400, "no Idempotency-Key");
    let json_body =
        http.post(&url).bearer_auth(KEY).header("Idempotency-Key", "j").json(&json!({"mode":"payment"})).send();
    assert_eq!(json_body.await.unwrap().status(), 400, "JSON instead of a form");
    assert_eq!(post(Some(KEY), Some("b"), good(now() + 600)).await.unwrap().status(), 400, "expires in 10 minutes");
    assert_eq!(post(Some(KEY), Some("c"), good(now() + 25 * 3600)).await.unwrap().status(), 400, "expires in 25 h");
    let mut unknown = good(t);
    unknown.push(("line_items[0][amount]", "5".into()));
    assert_eq!(post(Some(KEY), Some("d"), unknown).await.unwrap().status(), 400, "unknown parameter");
    let mut no_name = good(t);
    no_name.pop();
    assert_eq!(post(Some(KEY), Some("e"), no_name).await.unwrap().status(), 400, "line item without a name");

    // Idempotency: a retry gets the saved answer; other parameters under the same key are refused.
    let first: Value = post(Some(KEY), Some("k1"), good(t)).await.unwrap().json().await.unwrap();
    let again = post(Some(KEY), Some("k1"), good(t)).await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    let other = post(Some(KEY), Some("k1"), good(t + 1)).await.unwrap();
    assert_eq!(other.status(), 400);
    assert_eq!(other.json::<Value>().await.unwrap()["error"]["type"], "idempotency_error");
    assert_eq!(stripe.sessions().len(), 1, "one session for the key, however often it is sent");
    // Every call was recorded, the refused ones too.
    assert_eq!(stripe.calls().len(), 11);
    assert_eq!(stripe.calls()[0].status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_signature_good_bad_replayed() {
    let shop = shop(10, 900).await;
    let (order_id, session) = shop.buy_ok(2).await;
    let event = shop.stripe.pay(&session);
    let body = serde_json::to_vec(&event).unwrap();
    let post = |body: Vec<u8>, sig: Option<String>| {
        let mut req = shop.app.http.post(shop.webhook_url()).body(body);
        if let Some(s) = sig {
            req = req.header("Stripe-Signature", s);
        }
        async move {
            let r = req.send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let t = now();
    // Bad: no header, wrong secret, tampered body, stale timestamp, garbage.
    assert_eq!(post(body.clone(), None).await.0, 400);
    assert_eq!(post(body.clone(), Some(sign(&body, "whsec_wrong", t))).await.0, 400);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(post(tampered, Some(sign(&body, WHSEC, t))).await.0, 400);
    let (s, v) = post(body.clone(), Some(sign(&body, WHSEC, t - 3_600))).await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("tolerance"), "{v}");
    assert_eq!(post(body.clone(), Some("t=abc,v1=zz".into())).await.0, 400);
    assert_eq!(shop.tickets(&order_id).await.0, 0);

    // A wrong amount, correctly signed, issues nothing.
    let mut cheap = event.clone();
    cheap["id"] = json!("evt_cheap");
    cheap["data"]["object"]["amount_total"] = json!(1);
    assert_eq!(shop.deliver(&cheap).await.0, 409);
    assert_eq!(shop.tickets(&order_id).await.0, 0);

    // Good: tickets issued once; replays (same event, or a second paid event) change nothing.
    let (s, v) = shop.deliver(&event).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["outcome"], "confirmed");
    assert_eq!(shop.tickets(&order_id).await.0, 2);
    assert_eq!(shop.deliver(&event).await.1["outcome"], "duplicate");
    let mut again = event.clone();
    again["id"] = json!("evt_again");
    assert_eq!(shop.deliver(&again).await.1["outcome"], "already_settled");
    assert_eq!(shop.tickets(&order_id).await.0, 2);
    assert_eq!(shop.email_jobs(&order_id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_and_dispute_at_stripe_revoke_the_tickets_once() {
    let shop = shop(10, 900).await;
    let (refunded, session) = shop.buy_ok(2).await;
    let pi_refunded = shop.pay(&session).await;
    let (disputed, session) = shop.buy_ok(1).await;
    let pi_disputed = shop.pay(&session).await;
    let (v0, n0) = shop.revocations().await;

    // A partial refund in the dashboard leaves the tickets valid.
    let partial = {
        let mut e = shop.stripe.charge_refunded_event(&pi_refunded);
        e["data"]["object"]["refunded"] = json!(false);
        e["data"]["object"]["amount_refunded"] = json!(100);
        e
    };
    assert_eq!(shop.deliver(&partial).await.1["outcome"], "ignored_partial_refund");
    assert_eq!(shop.revocations().await, (v0, n0));

    // The organizer refunds in full in Stripe's dashboard: charge.refunded (data.object is the Charge).
    shop.stripe.refund_in_dashboard(&pi_refunded);
    let event = shop.stripe.charge_refunded_event(&pi_refunded);
    assert_eq!(event["data"]["object"]["object"], "charge");
    let (s, v) = shop.deliver(&event).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["outcome"], "refunded");
    assert_eq!(shop.status(&refunded).await, "refunded");
    assert_eq!(shop.tickets(&refunded).await, (2, 2), "both tickets revoked");
    assert_eq!(shop.revocations().await, (v0 + 1, n0 + 2), "a new revocation list version");
    // Replayed: nothing moves.
    assert_eq!(shop.deliver(&event).await.1["outcome"], "duplicate");
    assert_eq!(shop.revocations().await, (v0 + 1, n0 + 2));

    // The customer disputes the other payment: charge.dispute.created (data.object is the Dispute).
    let event = shop.stripe.dispute_created_event(&pi_disputed);
    assert_eq!(event["data"]["object"]["object"], "dispute");
    let (s, v) = shop.deliver(&event).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["outcome"], "disputed");
    assert_eq!(shop.status(&disputed).await, "disputed");
    assert_eq!(shop.tickets(&disputed).await, (1, 1));
    assert_eq!(shop.revocations().await, (v0 + 2, n0 + 3));
    assert_eq!(shop.deliver(&event).await.1["outcome"], "duplicate");
    assert_eq!(shop.revocations().await, (v0 + 2, n0 + 3));

    // The money already went back (or is with the bank): the issuer never asked Stripe for a refund.
    assert!(shop.stripe.calls_to("/v1/refunds").is_empty());
    assert_eq!(shop.stripe.refunds().len(), 1, "only the dashboard's");
    assert_eq!(shop.refund_state(&refunded).await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_expires_the_checkout_and_a_late_payment_is_refunded_not_confirmed() {
    let shop = shop(4, 900).await;
    // Cancelled before the customer paid: the session is expired at Stripe and cannot be paid.
    let (unpaid, session) = shop.buy_ok(2).await;
    let (s, v) = shop.app.admin(Method::POST, &format!("/admin/v1/orders/{unpaid}/cancel"), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "cancelled");
    assert_eq!(v["checkout_expired"], true);
    let expire_path = format!("/v1/checkout/sessions/{session}/expire");
    let calls = shop.stripe.calls_to(&expire_path);
    assert_eq!(calls.len(), 1, "{:?}", shop.stripe.calls());
    assert_well_formed(&calls);
    assert_eq!(calls[0].status, 200);
    assert_eq!(shop.stripe.session(&session).unwrap().status, "expired");

    // The customer paid a moment before the organizer cancelled; the webhook arrives after the cancel.
    let (late, session) = shop.buy_ok(2).await;
    let completed = shop.stripe.pay(&session);
    let pi = completed["data"]["object"]["payment_intent"].as_str().unwrap().to_owned();
    let (s, v) = shop.app.admin(Method::POST, &format!("/admin/v1/orders/{late}/cancel"), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["checkout_expired"], false, "Stripe refuses to expire a completed session");
    assert_eq!(shop.stripe.calls_to(&format!("/v1/checkout/sessions/{session}/expire"))[0].status, 400);
    let (_, ev) = shop.app.get_json(&format!("/v1/events/{}", shop.event)).await;
    assert_eq!(ev["ticket_types"][0]["available"], 4, "both cancelled orders gave their seats back");

    let (s, v) = shop.deliver(&completed).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["outcome"], "refund_pending");
    let done = eventually(Duration::from_secs(10), || async {
        (shop.refund_state(&late).await["status"] == "succeeded").then_some(())
    })
    .await;
    assert!(done.is_some(), "{}", shop.refund_state(&late).await);
    let calls = shop.stripe.calls_to("/v1/refunds");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_well_formed(&calls);
    assert_eq!(calls[0].form, vec![("payment_intent".to_owned(), pi.clone())]);
    let refunds = shop.stripe.refunds();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].payment_intent, pi);
    assert_eq!(refunds[0].amount, 2 * TICKET_PRICE + 2 * ADDON_PRICE, "the whole payment goes back");
    assert_eq!(shop.refund_state(&late).await["reason"], "late_payment");
    // Never re-confirmed: still cancelled, no ticket, no mail; the seats stay on sale.
    assert_eq!(shop.status(&late).await, "cancelled");
    assert_eq!(shop.tickets(&late).await.0, 0);
    assert_eq!(shop.email_jobs(&late).await, 0);
    let (_, ev) = shop.app.get_json(&format!("/v1/events/{}", shop.event)).await;
    assert_eq!(ev["ticket_types"][0]["available"], 4);
    // Stripe's retry of the same event, and our own refund coming back as charge.refunded: nothing more.
    assert_eq!(shop.deliver(&completed).await.1["outcome"], "duplicate");
    let back = shop.stripe.charge_refunded_event(&pi);
    assert_eq!(shop.deliver(&back).await.1["outcome"], "already_closed");
    assert_eq!(shop.stripe.calls_to("/v1/refunds").len(), 1);
    assert_eq!(shop.status(&late).await, "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_refund_is_recorded_as_pending_before_stripe_is_called() {
    let shop = shop(10, 900).await;
    let (order, session) = shop.buy_ok(2).await;
    let pi = shop.pay(&session).await;
    let (v0, _) = shop.revocations().await;
    shop.stripe.hang_next_refunds(1);
    let http = shop.app.http.clone();
    let url = shop.app.url(&format!("/admin/v1/orders/{order}/refund"));
    let token = shop.app.running.admin_token().to_owned();
    let request = tokio::spawn(async move {
        let r = http.post(url).bearer_auth(token).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    // Stripe has the call and has not answered yet: the database already says what is owed, and the
    // tickets are already revoked.
    let call = eventually(Duration::from_secs(10), || async { shop.stripe.calls_to("/v1/refunds").pop() })
        .await
        .expect("the refund reaches Stripe");
    let (status, key, intent): (String, String, String) =
        sqlx::query_as("SELECT status, idempotency_key, payment_intent FROM refunds WHERE order_id = $1")
            .bind(&order)
            .fetch_one(&shop.app.running.state.db.read)
            .await
            .unwrap();
    assert_eq!(status, "pending");
    assert_eq!(call.idempotency_key.as_deref(), Some(key.as_str()), "the stored key is the one sent");
    assert_eq!(intent, pi);
    assert_eq!(shop.status(&order).await, "refunded");
    assert_eq!(shop.tickets(&order).await, (2, 2));
    assert_eq!(shop.revocations().await.0, v0 + 1);

    shop.stripe.release();
    let (s, v) = request.await.unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["refund"]["status"], "succeeded", "{v}");
    assert_eq!(v["revocation_version"], v0 + 1);
    assert_eq!(shop.stripe.refunds().len(), 1);
    assert_eq!(shop.stripe.refunds()[0].amount, 2 * TICKET_PRICE + 2 * ADDON_PRICE);
    assert_eq!(call.form, vec![("payment_intent".to_owned(), pi)]);
    assert_well_formed(&shop.stripe.calls_to("/v1/refunds"));
    // A second click refunds nothing more.
    let (s, _) = shop.app.admin(Method::POST, &format!("/admin/v1/orders/{order}/refund"), None).await;
    assert_eq!(s, 409);
    assert_eq!(shop.stripe.calls_to("/v1/refunds").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_that_stripe_fails_is_retried_until_done_exactly_once() {
    let shop = shop(10, 900).await;
    let (order, session) = shop.buy_ok(1).await;
    let pi = shop.pay(&session).await;
    shop.stripe.fail_next_refunds(1);
    let (s, v) = shop.app.admin(Method::POST, &format!("/admin/v1/orders/{order}/refund"), None).await;
    assert_eq!(s, 200, "the tickets are revoked and the refund is owed: {v}");
    assert_eq!(v["status"], "refunded");
    assert_eq!(v["refund"]["status"], "pending", "{v}");
    assert!(v["refund"]["last_error"].as_str().unwrap().contains("500"), "{v}");
    let done = eventually(Duration::from_secs(15), || async {
        (shop.refund_state(&order).await["status"] == "succeeded").then_some(())
    })
    .await;
    assert!(done.is_some(), "the worker retries: {}", shop.refund_state(&order).await);
    let calls = shop.stripe.calls_to("/v1/refunds");
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), vec![500, 200]);
    assert_well_formed(&calls);
    // Stripe saves a 500 under its key and would replay it, so the retry after a 500 uses a new key.
    assert_ne!(calls[0].idempotency_key, calls[1].idempotency_key);
    let refunds = shop.stripe.refunds();
    assert_eq!(refunds.len(), 1, "exactly one refund at Stripe");
    assert_eq!(refunds[0].payment_intent, pi);
    assert_eq!(refunds[0].amount, TICKET_PRICE + ADDON_PRICE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_holds_expire_and_release_seats() {
    let shop = shop(3, 1).await;
    let (held, session) = shop.buy_ok(3).await;
    // All three seats are held: nobody else can buy.
    assert_eq!(shop.buy(1).await.0, 409);
    // After the hold, the sweeper releases them and expires the session at Stripe.
    let freed = eventually(Duration::from_secs(10), || async {
        let (_, ev) = shop.app.get_json(&format!("/v1/events/{}", shop.event)).await;
        (ev["ticket_types"][0]["available"] == 3).then_some(())
    })
    .await;
    assert!(freed.is_some(), "seats released after the hold");
    assert_eq!(shop.status(&held).await, "expired");
    // Someone else takes two; a late payment for the expired order cannot get three seats: flagged.
    shop.buy_ok(2).await;
    let expired = eventually(Duration::from_secs(10), || async {
        (shop.stripe.session(&session).unwrap().status == "expired").then_some(())
    })
    .await;
    assert!(expired.is_some(), "the sweeper expires the session at Stripe");
    // Paid at Stripe just before the expiry call reached it (the fake's session is already expired, so
    // the event is written out here in the shape of the fake's).
    let amount = shop.stripe.session(&session).unwrap().amount_total;
    let event = json!({"id": "evt_late", "object": "event", "created": now(), "livemode": false,
        "type": "checkout.session.completed", "data": {"object": {
        "id": session, "object": "checkout.session", "client_reference_id": held, "payment_status": "paid",
        "status": "complete", "amount_total": amount, "currency": "eur", "payment_intent": "pi_late"}}});
    let (s, v) = shop.deliver(&event).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["outcome"], "payment_conflict");
    assert_eq!(shop.tickets(&held).await.0, 0);
}
