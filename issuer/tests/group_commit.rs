//! The group committer's run of common orders (one line, no add-ons), written together: each order is
//! still decided as if reserved alone in arrival order, and everything an order is made of is written.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

/// Seats for sale: far fewer than the 60 orders below ask for in all (150 tickets).
const CAPACITY: i64 = 30;

/// 60 buyers at once, asking for 1 to 4 tickets each, for 30 seats. Whatever batches the committer forms,
/// deciding the orders one after the other means: the seats sold are exactly the accepted orders' tickets
/// (never more than 30), and an order is refused only when it asks for more than was left when its turn
/// came — so for more than what is left at the end. Each accepted order has its tickets numbered 0..n,
/// its email job and its address key; a refused one has nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_orders_of_mixed_sizes_are_decided_one_after_the_other() {
    let app = Arc::new(common::start().await);
    let base = app.running.url().to_string();
    let event = common::process_event(&app.http, &base, app.running.admin_token(), "Batch", CAPACITY).await;
    let quantities: Vec<i64> = (0..60).map(|i| i % 4 + 1).collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(quantities.len()));
    let mut tasks = Vec::new();
    for (i, &qty) in quantities.iter().enumerate() {
        let (app, barrier) = (app.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"event_id":event,"name":format!("Buyer {i}"),"email":format!("buyer{i}@example.org"),
                              "items":[{"ticket_type":0,"quantity":qty}]});
            barrier.wait().await;
            app.post("/v1/orders", body).await
        }));
    }
    let mut accepted: BTreeMap<String, i64> = BTreeMap::new();
    let mut refused = Vec::new();
    for (task, &qty) in tasks.into_iter().zip(&quantities) {
        let (status, body) = task.await.unwrap();
        match status {
            201 => {
                accepted.insert(body["order_id"].as_str().unwrap().to_owned(), qty);
            }
            409 => {
                assert!(body.to_string().contains("sold out"), "{body}");
                refused.push(qty);
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    let sold: i64 = accepted.values().sum();
    assert!(sold <= CAPACITY, "{sold} tickets sold of {CAPACITY}");
    let left = CAPACITY - sold;
    assert!(refused.iter().all(|&q| q > left), "refused {refused:?} with {left} seats left");
    assert_eq!(accepted.len() + refused.len(), quantities.len());

    let db = &app.running.state.db.read;
    let (reserved,): (i64,) = sqlx::query_as("SELECT reserved FROM ticket_types WHERE event_id = $1")
        .bind(event)
        .fetch_one(db)
        .await
        .unwrap();
    assert_eq!(reserved, sold);
    // Per order: its tickets (count, lowest and highest seq), its email jobs, its address keys.
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT order_id, COUNT(*), MIN(seq), MAX(seq) FROM tickets WHERE event_id = $1 GROUP BY order_id",
    )
    .bind(event)
    .fetch_all(db)
    .await
    .unwrap();
    let tickets: BTreeMap<String, (i64, i64, i64)> = rows.into_iter().map(|(o, n, lo, hi)| (o, (n, lo, hi))).collect();
    let expected: BTreeMap<String, (i64, i64, i64)> =
        accepted.iter().map(|(o, &q)| (o.clone(), (q, 0, q - 1))).collect();
    assert_eq!(tickets, expected);
    let (orders,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders WHERE event_id = $1 AND status = 'confirmed'")
        .bind(event)
        .fetch_one(db)
        .await
        .unwrap();
    assert_eq!(orders, accepted.len() as i64);
    let (jobs,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM email_jobs j JOIN orders o ON o.id = j.order_id
         WHERE o.event_id = $1 AND j.kind = 'tickets' AND j.message_id = '<tickets.' || o.id || '@localhost>'",
    )
    .bind(event)
    .fetch_one(db)
    .await
    .unwrap();
    assert_eq!(jobs, accepted.len() as i64);
    let (keys,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM order_email_keys WHERE event_id = $1")
        .bind(event)
        .fetch_one(db)
        .await
        .unwrap();
    assert_eq!(keys, accepted.len() as i64);
}
