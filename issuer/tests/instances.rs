//! Two issuer instances on one PostgreSQL database, as behind a load balancer: 200 buyers split over both
//! race for the last 50 seats and exactly 50 get one (counted in the database, not from the answers), the
//! two outbox workers send every order's mail exactly once between them, and refunds on both instances
//! make one line of revocation list versions that both serve. Two issuer processes under load, one killed
//! with SIGKILL: every acknowledged order is confirmed with its ticket, no seat is oversold, and the survivor
//! mails every order once (the dead one's leased jobs after their lease; at most the one mail the dead one
//! was sending goes out twice). Only one instance sweeps
//! expired holds per round. A price changed on one instance is what the other charges at once (catalog
//! changes are a PostgreSQL notification every instance listens for), also after its listener reconnects.
//! Outbox workers that give way to waiting buyers, and so take longer over a batch than its lease, still
//! send each mail once.
//!
//! PostgreSQL only (SQLite is one process on one file): the test is ignored in the SQLite pass, and the
//! PostgreSQL pass of scripts/test.sh runs it (`--include-ignored`).

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::App;
use reqwest::Method;
use scanner_core::{Keyring, RevocationDelta, RevocationList, SignedTicket};
use serde_json::{json, Value};

/// A second instance beside `a`: the same database and data directory (signing key, admin token, link
/// secret), as two processes of one deployment share them.
async fn second_instance(a: &App) -> App {
    let mut config = issuer::Config::for_data_dir(a.data_dir());
    config.database_url = a.running.state.config.database_url.clone();
    config.email_backoff_ms = 200;
    config.email_backoff_max_ms = 1_000;
    config.email_lease_ms = a.running.state.config.email_lease_ms;
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
    assert_eq!(common::tally_orders(tasks).await, (50, 150));

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
    let pg = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&db_url(&a)).await.unwrap();
    assert!(all_mail_sent(&pg).await, "every mail is sent");
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

const PROCESS_ADMIN_TOKEN: &str = "instances-test-admin-token";
/// The mail lease of the processes under test: short, so the survivor takes over the dead instance's
/// leased jobs within the test (the default is 60 s).
const TEST_EMAIL_LEASE_MS: u64 = 2_000;

/// One issuer process on `data` and the PostgreSQL database `db`, as crash.rs starts one.
fn spawn_issuer(data: &std::path::Path, port: u16, db: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_issuer"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--admin-token", PROCESS_ADMIN_TOKEN])
        .args(["--email-backoff-ms", "200", "--email-lease-ms", &TEST_EMAIL_LEASE_MS.to_string()])
        // Eight buyers on one loopback address: far over the per-address order limit on purpose.
        .args(["--order-rate-per-minute", "0", "--database-url", db])
        .arg("--data-dir")
        .arg(data)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn issuer")
}

/// The Message-ID header of one .eml file, if it has one.
fn message_id_of(eml: &str) -> Option<String> {
    eml.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("message-id").then(|| value.trim().to_owned())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs ISSUER_TEST_POSTGRES: run by the PostgreSQL pass of scripts/test.sh"]
async fn kill_9_of_one_of_two_instances_under_load_loses_no_order_and_mails_each_once() {
    assert!(common::test_postgres().is_some(), "this test needs ISSUER_TEST_POSTGRES (scripts/postgres.sh run …)");
    const CAPACITY: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db_url = common::fresh_database_url().await.unwrap();
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (port_a, port_b) = (free_port(), free_port());
    let (base_a, base_b) = (format!("http://127.0.0.1:{port_a}"), format!("http://127.0.0.1:{port_b}"));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    // One after the other: the first creates the signing key and admin files in the shared data directory.
    let mut a = spawn_issuer(&data, port_a, &db_url);
    common::wait_up(&http, &base_a).await;
    let mut b = spawn_issuer(&data, port_b, &db_url);
    common::wait_up(&http, &base_b).await;

    let event = common::process_event(&http, &base_a, PROCESS_ADMIN_TOKEN, "Kill", CAPACITY as i64).await;

    // Eight buyers, four on each instance, ordering one ticket at a time until sold out (409) or their
    // instance is gone. The order ids each instance acknowledged with 201 are what must survive.
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let acked_count = Arc::new(AtomicUsize::new(0));
    let mut buyers = Vec::new();
    for w in 0..8 {
        let base = if w % 2 == 0 { base_a.clone() } else { base_b.clone() };
        let (http, acknowledged, acked_count) = (http.clone(), acknowledged.clone(), acked_count.clone());
        buyers.push(tokio::spawn(async move {
            for i in 0..CAPACITY {
                let body = json!({"event_id":event,"name":format!("W{w} #{i}"),"email":"load@example.org","items":[{"ticket_type":0,"quantity":1}]});
                let Ok(r) = http.post(format!("{base}/v1/orders")).json(&body).send().await else { return };
                match r.status().as_u16() {
                    201 => {
                        let Ok(v) = r.json::<Value>().await else { return };
                        let id = v["order_id"].as_str().expect("order id in a 201").to_owned();
                        acknowledged.lock().unwrap().push(id);
                        acked_count.fetch_add(1, Ordering::SeqCst);
                    }
                    409 => return, // sold out
                    other => panic!("unexpected status {other}"),
                }
            }
        }));
    }
    // kill -9 of B in the middle of the load: once a third of the seats are acknowledged.
    let mid = common::eventually(Duration::from_secs(60), || {
        let n = acked_count.load(Ordering::SeqCst);
        async move { (n >= CAPACITY / 3).then_some(()) }
    })
    .await;
    assert!(mid.is_some(), "the load reached a third of the seats");
    b.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix.
    let _ = b.wait();
    for t in buyers {
        t.await.unwrap();
    }
    let acknowledged: Vec<String> = acknowledged.lock().unwrap().clone();

    // The database, through a connection of the test's own.
    let db = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&db_url).await.unwrap();
    let confirmed: Vec<(String, i64)> = sqlx::query_as(
        "SELECT o.id, (SELECT COUNT(*) FROM tickets t WHERE t.order_id = o.id) FROM orders o
         WHERE o.event_id = $1 AND o.status = 'confirmed'",
    )
    .bind(event)
    .fetch_all(&db)
    .await
    .unwrap();
    let confirmed: HashMap<String, i64> = confirmed.into_iter().collect();
    for id in &acknowledged {
        assert_eq!(confirmed.get(id), Some(&1), "acknowledged order {id} is confirmed with its one ticket");
    }
    // The survivor's buyers ran on until sold out, so the event sold exactly its capacity: the
    // acknowledged orders plus any B committed but could not answer before it died — and not one seat more.
    let (tickets,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM tickets WHERE event_id = $1").bind(event).fetch_one(&db).await.unwrap();
    let (reserved,): (i64,) = sqlx::query_as("SELECT reserved FROM ticket_types WHERE event_id = $1")
        .bind(event)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(tickets, CAPACITY as i64, "sold out, not oversold");
    assert_eq!(reserved, CAPACITY as i64);
    assert_eq!(confirmed.len(), CAPACITY, "one ticket per order");
    assert!(
        acknowledged.len() <= CAPACITY && acknowledged.len() + 4 >= CAPACITY,
        "at most one lost answer per buyer on the killed instance"
    );

    // The survivor sends every job, B's leased ones once their lease ran out.
    let (leased_at_kill,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM email_jobs WHERE status = 'pending' AND attempts = 0 AND next_attempt_at > $1",
    )
    .bind(
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap(),
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let all_sent = all_mail_sent(&db).await;
    let _ = a.kill();
    let _ = a.wait();
    assert!(all_sent, "every mail job is sent");
    // Each confirmed order's ticket mail is in the file sink exactly once, and there is no other mail.
    let (mut per_message, mut torn) = (HashMap::<String, usize>::new(), 0usize);
    for entry in std::fs::read_dir(data.join("outbox")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "eml") {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            match message_id_of(&text) {
                Some(id) => *per_message.entry(id).or_default() += 1,
                // The file sink writes a mail in place: SIGKILL mid-write leaves a torn file.
                None => torn += 1,
            }
        }
    }
    let expected: HashSet<String> = confirmed.keys().map(|id| format!("<tickets.{id}@localhost>")).collect();
    let mailed: HashSet<String> = per_message.keys().cloned().collect();
    assert_eq!(mailed, expected, "a ticket mail for every confirmed order and no other mail");
    // Exactly once, but for one mail at most: a worker sends its leased jobs one after the other and
    // records each as sent right after its send, so the killed instance can leave at most the one job it
    // was sending half written (torn) or sent-but-not-recorded, which the survivor sends again after the
    // lease (the same Message-ID, so a mail client shows it once). Two workers taking the same jobs would
    // show here as many doubles.
    let doubled: Vec<_> = per_message.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.iter().all(|(_, n)| **n == 2), "mailed more than twice: {doubled:?}");
    assert!(
        doubled.len() + torn <= 1,
        "more than the dead instance's one in-flight mail repeated: {doubled:?}, {torn} torn"
    );
    eprintln!(
        "kill -9 test: {} acknowledged, {} confirmed, {leased_at_kill} jobs under a lease after the kill, {} mailed twice, {torn} torn",
        acknowledged.len(),
        confirmed.len(),
        doubled.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs ISSUER_TEST_POSTGRES: run by the PostgreSQL pass of scripts/test.sh"]
async fn a_hold_sweep_skips_its_round_while_another_instance_sweeps() {
    assert!(common::test_postgres().is_some(), "this test needs ISSUER_TEST_POSTGRES (scripts/postgres.sh run …)");
    let a = common::start().await;
    let b = second_instance(&a).await;
    // Another instance's sweep round, as the test's own transaction holding the sweep lock.
    let db = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&db_url(&a)).await.unwrap();
    let mut round = db.begin().await.unwrap();
    let (took,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
        .bind(issuer::orders::reserve::HOLD_SWEEP_LOCK_KEY)
        .fetch_one(&mut *round)
        .await
        .unwrap();
    assert!(took);
    for app in [&a, &b] {
        let swept = issuer::orders::reserve::sweep_holds_once(&app.running.state).await.unwrap();
        assert_eq!(swept, None, "a sweep ran beside another instance's round");
    }
    round.commit().await.unwrap();
    // With the round over, each instance sweeps (nothing is due: zero orders expired).
    for app in [&a, &b] {
        let swept = issuer::orders::reserve::sweep_holds_once(&app.running.state).await.unwrap();
        assert_eq!(swept, Some(0));
    }
    b.running.shutdown().await;
    a.running.shutdown().await;
}

/// What instance `app` charges for one ticket of `event` now (a pay-at-the-door order, so nothing settles).
async fn charged(app: &App, event: i64) -> i64 {
    let (s, v) = app.order(event, "Price check", 1, "at_door").await;
    assert_eq!(s, 201, "{v}");
    v["total_cents"].as_i64().expect("total_cents")
}

/// Polls `app`'s price for up to `within` and returns the first one that is `wanted`, or the last seen.
async fn charged_within(app: &App, event: i64, wanted: i64, within: Duration) -> i64 {
    let start = std::time::Instant::now();
    loop {
        let now = charged(app, event).await;
        if now == wanted || start.elapsed() >= within {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sessions listening for catalog changes in this test's database, as PostgreSQL lists them.
async fn listening_sessions(db: &sqlx::PgPool) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN %'",
    )
    .fetch_one(db)
    .await
    .unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs ISSUER_TEST_POSTGRES: run by the PostgreSQL pass of scripts/test.sh"]
async fn a_price_changed_on_one_instance_is_charged_by_the_other_at_once_even_after_its_listener_reconnects() {
    assert!(common::test_postgres().is_some(), "this test needs ISSUER_TEST_POSTGRES (scripts/postgres.sh run …)");
    let a = common::start().await;
    let b = second_instance(&a).await;
    let db = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&db_url(&a)).await.unwrap();
    // Each instance listens on its own connection.
    let both = common::eventually(Duration::from_secs(10), || {
        let db = db.clone();
        async move { (listening_sessions(&db).await == 2).then_some(()) }
    })
    .await;
    assert!(both.is_some(), "two listening sessions, found {}", listening_sessions(&db).await);

    let event = a.event(1_000, 1_000).await;
    // B prices an order now: its cache holds the event at 10.00 from here on (the cache keeps an event for
    // 2 s, so without the notification B would charge 10.00 for about that long after the change).
    assert_eq!(charged(&b, event).await, 1_000);
    let path = format!("/admin/v1/events/{event}/ticket-types/0");
    let (s, v) = a.admin(Method::PATCH, &path, Some(json!({"price_cents":1_500}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(charged_within(&b, event, 1_500, Duration::from_millis(1_000)).await, 1_500);

    // The listeners' connections are cut (a database restart, a network blip). Each instance listens again
    // on a new one, and changes committed after that reach it as before.
    let (cut,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                               WHERE datname = current_database() AND query ILIKE 'LISTEN %') t",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(cut, 2);
    let back = common::eventually(Duration::from_secs(10), || {
        let db = db.clone();
        async move { (listening_sessions(&db).await == 2).then_some(()) }
    })
    .await;
    assert!(back.is_some(), "both instances listen again, found {}", listening_sessions(&db).await);
    assert_eq!(charged(&b, event).await, 1_500);
    let (s, v) = a.admin(Method::PATCH, &path, Some(json!({"price_cents":2_000}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(charged_within(&b, event, 2_000, Duration::from_millis(1_000)).await, 2_000);
    // And the other way round: a change made on B reaches A.
    assert_eq!(charged(&a, event).await, 2_000);
    let (s, v) = b.admin(Method::PATCH, &path, Some(json!({"price_cents":2_500}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(charged_within(&a, event, 2_500, Duration::from_millis(1_000)).await, 2_500);

    b.running.shutdown().await;
    a.running.shutdown().await;
}

/// Sessions of this test's database waiting for a lock: a transaction of the issuer waiting for the test's.
async fn waiting_locks(db: &sqlx::PgPool) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(db)
    .await
    .unwrap();
    n
}

/// The PostgreSQL database `app` runs on.
fn db_url(app: &App) -> String {
    app.running.state.config.database_url.clone().expect("a PostgreSQL database")
}

/// The id of `event`'s one ticket type.
async fn ticket_type_of(db: &sqlx::PgPool, event: i64) -> i64 {
    let (id,): (i64,) =
        sqlx::query_as("SELECT id FROM ticket_types WHERE event_id = $1").bind(event).fetch_one(db).await.unwrap();
    id
}

/// A transaction of the test holding ticket type `id`'s row, as another instance's committer would.
async fn hold_row(db: &sqlx::PgPool, id: i64) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut hold = db.begin().await.unwrap();
    sqlx::query("UPDATE ticket_types SET reserved = reserved WHERE id = $1")
        .bind(id)
        .execute(&mut *hold)
        .await
        .unwrap();
    hold
}

/// Whether, within 10 s, at least `n` of the issuers' transactions wait for a lock.
async fn locks_awaited(db: &sqlx::PgPool, n: i64) -> bool {
    common::eventually(Duration::from_secs(10), || async move { (waiting_locks(db).await >= n).then_some(()) })
        .await
        .is_some()
}

/// Whether, within 60 s, every email job of the database is sent.
async fn all_mail_sent(db: &sqlx::PgPool) -> bool {
    common::eventually(Duration::from_secs(60), || async move {
        let (pending,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM email_jobs WHERE status <> 'sent'").fetch_one(db).await.ok()?;
        (pending == 0).then_some(())
    })
    .await
    .is_some()
}

/// A committer reads its ticket types' room without a lock and reserves last (what lets two instances'
/// committers overlap). Here another writer — the test's own transaction, as another instance would —
/// takes the room between the read and the reservation: the batch must be decided again, with the rows
/// locked, and sell only what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs ISSUER_TEST_POSTGRES: run by the PostgreSQL pass of scripts/test.sh"]
async fn an_order_batch_whose_room_is_taken_before_it_reserves_is_decided_again_and_sells_only_what_is_left() {
    assert!(common::test_postgres().is_some(), "this test needs ISSUER_TEST_POSTGRES (scripts/postgres.sh run …)");
    let a = Arc::new(common::start().await);
    let db = sqlx::postgres::PgPoolOptions::new().max_connections(3).connect(&db_url(&a)).await.unwrap();
    let (first, event) = (a.event(10, 0).await, a.event(10, 0).await);
    let (first_type, event_type) = (ticket_type_of(&db, first).await, ticket_type_of(&db, event).await);

    // The test holds both ticket types' rows. An order for `first` makes the committer wait on its row.
    let hold_first = hold_row(&db, first_type).await;
    let mut hold_event = hold_row(&db, event_type).await;
    let blocker = {
        let a = a.clone();
        tokio::spawn(async move { a.order(first, "Blocker", 1, "free").await.0 })
    };
    assert!(locks_awaited(&db, 1).await, "the committer waits for the test's row");
    // Three buyers of `event` queue up behind it: the committer takes them as one batch, one run.
    let buyers: Vec<_> = (0..3)
        .map(|i| {
            let a = a.clone();
            // One line without add-ons: the common order, which the committer writes as a run.
            let order = json!({"event_id": event, "name": format!("Buyer {i}"), "email": format!("buyer{i}@example.org"),
                "items": [{"ticket_type": 0, "quantity": 3}], "payment": "free"});
            tokio::spawn(async move { a.post("/v1/orders", order).await.0 })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Let the blocker through: the batch reads `event`'s room (10 seats: all three fit), writes its orders
    // and waits at its reservation for the test's other row.
    hold_first.commit().await.unwrap();
    assert_eq!(blocker.await.unwrap(), 201);
    assert!(locks_awaited(&db, 1).await, "the batch waits at its reservation");
    // Meanwhile "another instance" sells 6 of the 10 seats: 4 are left, room for one buyer of 3.
    sqlx::query("UPDATE ticket_types SET reserved = reserved + 6 WHERE id = $1")
        .bind(event_type)
        .execute(&mut *hold_event)
        .await
        .unwrap();
    hold_event.commit().await.unwrap();
    let mut statuses = Vec::new();
    for b in buyers {
        statuses.push(b.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [201, 409, 409]);
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(sql).bind(event).fetch_one(&db).await.unwrap();
            n
        }
    };
    assert_eq!(count("SELECT COUNT(*) FROM orders WHERE event_id = $1").await, 1);
    assert_eq!(count("SELECT COUNT(*) FROM tickets WHERE event_id = $1").await, 3);
    assert_eq!(count("SELECT reserved FROM ticket_types WHERE event_id = $1").await, 6 + 3);
    Arc::try_unwrap(a).ok().unwrap().running.shutdown().await;
}

/// Both instances' outbox workers give way to a waiting buyer (each committer waits on the test's row
/// lock), so each starts a job only every `YIELD_AT_MOST` (200 ms): a batch of the 20 resent mails below
/// takes longer than the 2 s lease, after which the other worker may take its jobs. A worker starts a job
/// only while half of its lease is left and gives the rest back, so each mail still goes out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs ISSUER_TEST_POSTGRES: run by the PostgreSQL pass of scripts/test.sh"]
async fn outbox_workers_giving_way_to_buyers_send_each_mail_once_though_a_batch_outlasts_its_lease() {
    assert!(common::test_postgres().is_some(), "this test needs ISSUER_TEST_POSTGRES (scripts/postgres.sh run …)");
    let a = Arc::new(common::start_with(|c| c.email_lease_ms = 2_000).await);
    let b = Arc::new(second_instance(&a).await);
    let db = sqlx::postgres::PgPoolOptions::new().max_connections(3).connect(&db_url(&a)).await.unwrap();
    // Ten orders, mailed while nobody waits.
    let sold = a.event(100, 0).await;
    let mut orders = Vec::new();
    for i in 0..10 {
        let (s, v) = a.order(sold, &format!("Early {i}"), 1, "free").await;
        assert_eq!(s, 201, "{v}");
        orders.push(v["order_id"].as_str().expect("order id").to_owned());
    }
    assert!(all_mail_sent(&db).await, "the ten order mails are sent");

    // A buyer waits on each instance: the test holds their ticket type's row.
    let blocked = a.event(10, 0).await;
    let hold = hold_row(&db, ticket_type_of(&db, blocked).await).await;
    let buyers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|app| tokio::spawn(async move { app.order(blocked, "Waiting", 1, "free").await.0 }))
        .collect();
    assert!(locks_awaited(&db, 2).await, "both committers wait for the test's row");

    // The organizer resends every order's mail twice, half through each instance: 20 jobs.
    let resent_from = issuer::util::now_ms();
    for round in 0..2 {
        for (i, order) in orders.iter().enumerate() {
            let app = if (i + round) % 2 == 0 { &a } else { &b };
            let (s, v) = app.admin(Method::POST, &format!("/admin/v1/orders/{order}/resend"), None).await;
            assert_eq!(s, 202, "{v}");
        }
    }
    assert!(all_mail_sent(&db).await, "every resent mail is sent while the buyers still wait");
    let (last_sent,): (i64,) =
        sqlx::query_as("SELECT MAX(sent_at) FROM email_jobs WHERE kind = 'resend'").fetch_one(&db).await.unwrap();
    // The workers did give way: two of them at one job per 200 ms need about 2 s for 20 jobs.
    assert!(
        last_sent - resent_from >= 1_500,
        "20 mails sent within {} ms: the workers did not give way",
        last_sent - resent_from
    );

    // Each of the 30 mails is in the file sink once, and no job was attempted twice.
    let outbox = a.data_dir().join("outbox");
    let mut ids = HashSet::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&outbox).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            files += 1;
            ids.insert(message_id_of(&std::fs::read_to_string(&path).unwrap()).expect("a Message-ID"));
        }
    }
    assert_eq!((files, ids.len()), (30, 30), "each mail once");
    let (attempts,): (i64,) =
        sqlx::query_as("SELECT CAST(SUM(attempts) AS BIGINT) FROM email_jobs").fetch_one(&db).await.unwrap();
    assert_eq!(attempts, 30, "no job attempted twice");

    hold.rollback().await.unwrap();
    for buyer in buyers {
        assert_eq!(buyer.await.unwrap(), 201);
    }
    Arc::try_unwrap(b).ok().unwrap().running.shutdown().await;
    Arc::try_unwrap(a).ok().unwrap().running.shutdown().await;
}
