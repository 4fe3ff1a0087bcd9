//! Behind a reverse proxy the order budget is per customer: the address a trusted proxy forwards in
//! `X-Forwarded-For` is the key, and nobody else's header is believed.

mod common;

use serde_json::json;

async fn order_from(app: &common::App, event: i64, forwarded_for: &str) -> u16 {
    app.http
        .post(app.url("/v1/orders"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"event_id":event,"name":"Ada","email":"ada@example.org","items":[{"ticket_type":0,"quantity":1}],"payment":"free"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_budget_follows_the_forwarded_address_only_from_a_trusted_proxy() {
    // The test client connects from 127.0.0.1: here that is the proxy.
    let app = common::start_with(|c| {
        c.order_rate_per_minute = 1;
        c.order_rate_burst = 1;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let event = app.event(100, 0).await;
    assert_eq!(order_from(&app, event, "203.0.113.1").await, 201);
    assert_eq!(order_from(&app, event, "203.0.113.1").await, 429, "the same customer's budget is spent");
    assert_eq!(order_from(&app, event, "203.0.113.2").await, 201, "another customer has their own budget");
    // A client prepending a made-up address does not get a fresh budget: the proxy's own entry counts.
    assert_eq!(order_from(&app, event, "198.51.100.9, 203.0.113.1").await, 429);

    // Without trusted proxies the header is ignored: every request is the peer 127.0.0.1.
    let plain = common::start_with(|c| {
        c.order_rate_per_minute = 1;
        c.order_rate_burst = 1;
    })
    .await;
    let event = plain.event(100, 0).await;
    assert_eq!(order_from(&plain, event, "203.0.113.1").await, 201);
    assert_eq!(order_from(&plain, event, "203.0.113.2").await, 429, "a client cannot choose its own address");
}
