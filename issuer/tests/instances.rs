//! Two issuer instances on one PostgreSQL database, as behind a load balancer: 200 buyers split over both
//! race for the last 50 seats and exactly 50 get one (counted in the database, not from the answers), the
//! two outbox workers send every order's mail exactly once between them, and refunds on both instances
//! make one line of revocation list versions that both serve.
//!
//! PostgreSQL only (SQLite is one process on one file): the test is ignored in the SQLite pass, and the
//! PostgreSQL pass of scripts/test.sh runs it (`--include-ignored`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::App;
use reqwest::Method;
use scanner_core::{Keyring, RevocationDelta, RevocationList, SignedTicket};

/// A second instance beside `a`: the same database and data directory (signing key, admin token, link
/// secret), as two processes of one deployment share them.
async fn second_instance(a: &App) -> App {
    let mut config = issuer::Config::for_data_dir(a.data_dir());
    config.database_url = a.running.state.config.database_url.clone();
    config.email_backoff_ms = 200;
    config.email_backoff_max_ms = 1_000;
    App { running: issuer::start(config).await.unwrap(), dir: tempfile::tempdir().unwrap(), http: a.http.clone() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs ISSUER_TEST_POSTGRES: run by the PostgreSQL pass of scripts/test.sh"]
async fn two_instances_sell_exactly_the_last_50_seats_and_mail_each_order_once() {
    assert!(common::test_postgres().is_some(), "this test needs ISSUER_TEST_POSTGRES (scripts/postgres.sh run …)");
    let a = common::start().await;
    // The second instance: the same database and data directory (signing key, admin token, link secret),
    // as two processes of one deployment share them.
    let mut config = issuer::Config::for_data_dir(a.data_dir());
    config.database_url = a.running.state.config.database_url.clone();
    config.email_backoff_ms = 200;
    config.email_backoff_max_ms = 1_000;
    let b =
        App { running: issuer::start(config).await.unwrap(), dir: tempfile::tempdir().unwrap(), http: a.http.clone() };
    let (a, b) = (Arc::new(a), Arc::new(b));

    let event = a.event(1_000, 0).await;
    // 950 sold first, half through each instance, so that exactly 50 remain.
    for i in 0..95 {
        let app = if i % 2 == 0 { &a } else { &b };
        let (s, v) = app.order(event, "Early", 10, "free").await;
        assert_eq!(s, 201, "{v}");
    }
    let mut tasks = Vec::new();
    for i in 0..200 {
        let app = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { app.order(event, &format!("Buyer {i}"), 1, "free").await.0 }));
    }
    let (mut ok, mut sold_out) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            201 => ok += 1,
            409 => sold_out += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, sold_out), (50, 150));

    // What the database holds: 95 × 10 + 50 tickets, the capacity and not one more.
    let db = &a.running.state.db.read;
    let count = |sql: &'static str| async move {
        let (n,): (i64,) = sqlx::query_as(sql).bind(event).fetch_one(db).await.unwrap();
        n
    };
    assert_eq!(count("SELECT COUNT(*) FROM tickets WHERE event_id = $1").await, 1_000);
    assert_eq!(count("SELECT COUNT(*) FROM orders WHERE event_id = $1 AND status = 'confirmed'").await, 145);
    assert_eq!(count("SELECT reserved FROM ticket_types WHERE event_id = $1").await, 1_000);

    // Both workers send; each of the 145 mails goes out once (.eml files in the shared data directory).
    let outbox = a.data_dir().join("outbox");
    let sent = common::eventually(Duration::from_secs(60), || {
        let db = db.clone();
        async move {
            let (pending,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM email_jobs WHERE status <> 'sent'").fetch_one(&db).await.ok()?;
            (pending == 0).then_some(())
        }
    })
    .await;
    assert!(sent.is_some(), "every mail is sent");
    let files = std::fs::read_dir(&outbox).unwrap().filter(|e| e.as_ref().is_ok_and(|e| e.path().is_file())).count();
    assert_eq!(files, 145, "one mail per order, none sent twice");
    let (attempts,): (i64,) =
        sqlx::query_as("SELECT CAST(SUM(attempts) AS BIGINT) FROM email_jobs").fetch_one(db).await.unwrap();
    assert_eq!(attempts, 145, "no job attempted twice");

    let (a, b) = (Arc::try_unwrap(a).ok().unwrap(), Arc::try_unwrap(b).ok().unwrap());
    b.running.shutdown().await;
    a.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs ISSUER_TEST_POSTGRES: run by the PostgreSQL pass of scripts/test.sh"]
async fn refunds_on_two_instances_make_one_line_of_list_versions_both_serve() {
    assert!(common::test_postgres().is_some(), "this test needs ISSUER_TEST_POSTGRES (scripts/postgres.sh run …)");
    let a = common::start().await;
    let b = second_instance(&a).await;
    let event = a.event(100, 0).await;
    // Four orders of one ticket each; their tickets' QR texts, read back through the order API.
    let mut orders = Vec::new();
    for i in 0..4 {
        let (s, v) = a.order(event, &format!("Guest {i}"), 1, "free").await;
        assert_eq!(s, 201, "{v}");
        let id = v["order_id"].as_str().unwrap().to_owned();
        let (_, view) = a.get_json(&format!("/v1/orders/{id}?token={}", v["token"].as_str().unwrap())).await;
        orders.push((id, view["tickets"][0]["qr_text"].as_str().unwrap().to_owned()));
    }
    // Refunds at the same moment, two through each instance.
    let mut tasks = Vec::new();
    let (a, b) = (Arc::new(a), Arc::new(b));
    for (i, (id, _)) in orders.iter().enumerate() {
        let app = if i % 2 == 0 { a.clone() } else { b.clone() };
        let path = format!("/admin/v1/orders/{id}/refund");
        tasks.push(tokio::spawn(async move { app.admin(Method::POST, &path, None).await }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert_eq!(s, 200, "{v}");
        versions.push(v["revocation_version"].as_u64().unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, [1, 2, 3, 4], "every refund published a version of its own");

    // Both instances serve version 4 with all four tickets on it.
    let ring =
        Keyring::from_json(&a.http.get(a.url("/v1/keyring")).send().await.unwrap().text().await.unwrap()).unwrap();
    for app in [&a, &b] {
        let device = app.device_token(event).await;
        let text = app
            .http
            .get(app.url("/v1/scanner/revocations?since=0"))
            .bearer_auth(&device)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut list = RevocationList::new();
        list.apply(&RevocationDelta::from_json(&text).unwrap(), &ring).unwrap();
        assert_eq!(list.version(), 4);
        for (_, qr) in &orders {
            let id = SignedTicket::from_qr_text(qr).unwrap().ticket.ticket_id;
            assert!(list.contains(&id), "a refunded ticket is missing from the list");
        }
    }
    let (a, b) = (Arc::try_unwrap(a).ok().unwrap(), Arc::try_unwrap(b).ok().unwrap());
    b.running.shutdown().await;
    a.running.shutdown().await;
}
