//! Redemption sync with two issuer processes on one PostgreSQL database, as behind a load balancer: device
//! 1 syncs with instance A only, device 2 with instance B only. After syncing each device holds the
//! other's scans, and both instances report exactly the counts this test expects from the scans it made;
//! a ticket admitted on device 1 (synced through A) and then, offline, on device 2 (synced through B) is
//! one conflict on both instances' reports. An instance whose copy of the log predates the other's
//! compaction (chunks it had not read deleted in favour of one full save) loads the full save and serves on.
//!
//! PostgreSQL only (SQLite is one process on one file): the test is ignored in the SQLite pass, and the
//! PostgreSQL pass of scripts/test.sh runs it (`--include-ignored`).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::sync::{now_ms, scan};
use scanner_core::redemption::decision::Verdict;
use scanner_core::redemption::RedemptionLog;
use scanner_core::token::device_id_for_token;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "instances-sync-test-admin-token";

/// One issuer process on `data` and the PostgreSQL database `db`.
fn spawn_issuer(data: &std::path::Path, port: u16, db: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_issuer"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--admin-token", ADMIN_TOKEN])
        .args(["--database-url", db])
        .arg("--data-dir")
        .arg(data)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn issuer")
}

/// Kills the process when the test ends, passed or failed.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn admin(http: &reqwest::Client, base: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut req = http.request(method, format!("{base}{path}")).bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("admin request");
    let status = resp.status().as_u16();
    let value: Value = resp.json().await.unwrap_or(Value::Null);
    assert!((200..300).contains(&status), "{path} answered {status}: {value}");
    value
}

/// A device's log in `dir`, bound to a new device token of `event` created through `base`.
async fn device(
    http: &reqwest::Client,
    base: &str,
    dir: &std::path::Path,
    name: &str,
    event: i64,
) -> (RedemptionLog, String) {
    let v = admin(http, base, reqwest::Method::POST, "/admin/v1/devices", Some(json!({"name": name, "event": event})))
        .await;
    let token = v["token"].as_str().expect("device token").to_owned();
    let keyring = http.get(format!("{base}/v1/keyring")).send().await.unwrap().text().await.unwrap();
    let mut log = RedemptionLog::open_or_create_as(dir, name, Some(device_id_for_token(&token))).unwrap();
    log.set_keyring(&keyring).unwrap();
    log.set_event(event as u32).unwrap();
    (log, token)
}

/// One full sync of `log` with the instance at `base`.
async fn sync(http: &reqwest::Client, base: &str, log: RedemptionLog, event: i64, token: &str) -> RedemptionLog {
    let (url, http, token) = (format!("{base}/v1/sync?event={event}"), http.clone(), token.to_owned());
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut log = log;
        log.sync_with("issuer", (now_ms() / 1000) as i64, |channel, message| {
            handle.block_on(async {
                let resp = http
                    .post(format!("{url}&channel={}", channel.as_str()))
                    .bearer_auth(&token)
                    .header("content-type", "application/octet-stream")
                    .body(message.to_vec())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                match resp.status().as_u16() {
                    204 => Ok(None),
                    200 => Ok(Some(resp.bytes().await.map_err(|e| e.to_string())?.to_vec())),
                    s => Err(format!("sync answered {s}: {}", resp.text().await.unwrap_or_default())),
                }
            })
        })
        .expect("sync succeeds");
        log
    })
    .await
    .expect("sync thread")
}

async fn report(http: &reqwest::Client, base: &str, event: i64) -> Value {
    admin(http, base, reqwest::Method::GET, &format!("/admin/v1/events/{event}/redemptions"), None).await
}

/// Two issuer processes, A and B, on one fresh PostgreSQL database and one data directory, and an event
/// `name` with one free order of `tickets` tickets: the processes (killed when dropped), A's and B's base
/// URLs, a client, the event, its tickets' QR texts and the database URL.
struct TwoInstances {
    _processes: (Process, Process),
    _dir: tempfile::TempDir,
    a: String,
    b: String,
    http: reqwest::Client,
    event: i64,
    qr: Vec<String>,
    db_url: String,
}

async fn two_instances(name: &str, tickets: usize) -> TwoInstances {
    assert!(common::test_postgres().is_some(), "this test needs ISSUER_TEST_POSTGRES (scripts/postgres.sh run …)");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db_url = common::fresh_database_url().await.unwrap();
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (port_a, port_b) = (free_port(), free_port());
    let (a, b) = (format!("http://127.0.0.1:{port_a}"), format!("http://127.0.0.1:{port_b}"));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    // One after the other: the first creates the signing key and admin files in the shared data directory.
    let process_a = Process(spawn_issuer(&data, port_a, &db_url));
    common::wait_up(&http, &a).await;
    let process_b = Process(spawn_issuer(&data, port_b, &db_url));
    common::wait_up(&http, &b).await;

    let event = common::process_event(&http, &a, ADMIN_TOKEN, name, 10).await;
    let order = json!({"event_id": event, "name": "Ada", "email": "ada@example.org",
        "items": [{"ticket_type": 0, "quantity": tickets}], "payment": "free"});
    let order: Value = http.post(format!("{a}/v1/orders")).json(&order).send().await.unwrap().json().await.unwrap();
    let (id, token) = (order["order_id"].as_str().expect("order id"), order["token"].as_str().expect("order token"));
    let view: Value = http.get(format!("{a}/v1/orders/{id}?token={token}")).send().await.unwrap().json().await.unwrap();
    let qr: Vec<String> =
        view["tickets"].as_array().unwrap().iter().map(|t| t["qr_text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(qr.len(), tickets);
    TwoInstances { _processes: (process_a, process_b), _dir: dir, a, b, http, event, qr, db_url }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs ISSUER_TEST_POSTGRES: run by the PostgreSQL pass of scripts/test.sh"]
async fn devices_syncing_with_two_instances_see_each_others_scans_and_one_report() {
    let running = two_instances("Two doors", 4).await;
    let (a, b, http, event, qr) =
        (running.a.clone(), running.b.clone(), running.http.clone(), running.event, &running.qr);

    let dirs = tempfile::tempdir().unwrap();
    let (mut one, token_one) = device(&http, &a, &dirs.path().join("one"), "one", event).await;
    let (mut two, token_two) = device(&http, &b, &dirs.path().join("two"), "two", event).await;
    let now = now_ms();

    // Offline: device 1 admits tickets 0 and 1 at North, device 2 ticket 2 at South.
    assert!(scan(&mut one, &qr[0], "North", now).is_admit());
    assert!(scan(&mut one, &qr[1], "North", now + 1_000).is_admit());
    assert!(scan(&mut two, &qr[2], "South", now + 2_000).is_admit());
    // Device 1 syncs with A, device 2 with B, then device 1 with A again.
    let one = sync(&http, &a, one, event, &token_one).await;
    let mut two = sync(&http, &b, two, event, &token_two).await;
    let mut one = sync(&http, &a, one, event, &token_one).await;

    // Each device holds all three admissions: the other's as well as its own.
    assert_eq!((one.record_count(), two.record_count()), (3, 3));
    // Both instances report the same three admissions, no conflict.
    let (report_a, report_b) = (report(&http, &a, event).await, report(&http, &b, event).await);
    assert_eq!(report_a["admitted"], 3, "{report_a}");
    assert_eq!(report_a["conflicts"], json!([]), "{report_a}");
    assert_eq!(report_a, report_b, "both instances serve one log");
    // And each device refuses the other's ticket at the door, naming the other's gate.
    match scan(&mut one, &qr[2], "North", now + 3_000) {
        Verdict::AlreadyUsed(u) => assert_eq!(u.gate, "South"),
        other => panic!("expected already used, got {other:?}"),
    }
    match scan(&mut two, &qr[0], "South", now + 3_000) {
        Verdict::AlreadyUsed(u) => assert_eq!(u.gate, "North"),
        other => panic!("expected already used, got {other:?}"),
    }

    // Ticket 3: admitted on device 1, synced through A; device 2, offline, admits it too and syncs via B.
    assert!(scan(&mut one, &qr[3], "North", now + 4_000).is_admit());
    let _one = sync(&http, &a, one, event, &token_one).await;
    assert!(scan(&mut two, &qr[3], "South", now + 5_000).is_admit(), "device 2 has not synced since");
    let _two = sync(&http, &b, two, event, &token_two).await;

    let (report_a, report_b) = (report(&http, &a, event).await, report(&http, &b, event).await);
    // 3 + ticket 3 on each device; the two refusals are not admissions.
    assert_eq!(report_a["admitted"], 5, "{report_a}");
    assert_eq!(report_a["already_used"], 2, "{report_a}");
    let conflicts = report_a["conflicts"].as_array().expect("conflicts");
    assert_eq!(conflicts.len(), 1, "{report_a}");
    let gates: Vec<&str> =
        conflicts[0]["scans"].as_array().unwrap().iter().map(|s| s["gate"].as_str().unwrap()).collect();
    assert_eq!(gates, ["North", "South"], "{report_a}");
    let names: Vec<&str> =
        conflicts[0]["scans"].as_array().unwrap().iter().map(|s| s["device_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["one", "two"], "{report_a}");
    assert_eq!(report_a, report_b, "both instances serve one log");
}

/// Instance B serves device 2 once; then instance A serves device 1 for 260 exchanges, and the 257th
/// stores one full save in place of the 256 chunks before it (deleting the chunks B last read). B's next
/// exchange must notice that what it holds is behind a compaction and load the full save: device 2 then
/// receives every scan device 1 made, and both instances report the same log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs ISSUER_TEST_POSTGRES: run by the PostgreSQL pass of scripts/test.sh"]
async fn an_instance_catches_up_after_the_other_compacted_the_log_under_it() {
    let running = two_instances("Compaction", 3).await;
    let (a, b, http, event, qr) =
        (running.a.clone(), running.b.clone(), running.http.clone(), running.event, &running.qr);
    let db_url = &running.db_url;

    let dirs = tempfile::tempdir().unwrap();
    let (mut one, token_one) = device(&http, &a, &dirs.path().join("one"), "one", event).await;
    let (mut two, token_two) = device(&http, &b, &dirs.path().join("two"), "two", event).await;
    let now = now_ms();
    // B serves device 2's first scan: the log's first chunk, and B now holds the log as of it.
    assert!(scan(&mut two, &qr[1], "South", now).is_admit());
    two = sync(&http, &b, two, event, &token_two).await;
    // A serves device 1: 260 exchanges, each storing one chunk with one new scan of ticket 0.
    for i in 0..260u64 {
        assert_eq!(scan(&mut one, &qr[0], "North", now + 1_000 + i * 100).is_admit(), i == 0);
        one = sync(&http, &a, one, event, &token_one).await;
    }
    let db = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(db_url).await.unwrap();
    let seqs = |db: sqlx::PgPool| async move {
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT seq FROM sync_chunks WHERE event_id = $1 ORDER BY seq")
            .bind(event)
            .fetch_all(&db)
            .await
            .unwrap();
        rows.into_iter().map(|(s,)| s).collect::<Vec<i64>>()
    };
    // 261 exchanges stored something: B's chunk 1, A's 2..=256, the full save 257 in their place, 258..=261.
    assert_eq!(seqs(db.clone()).await, [257, 258, 259, 260, 261]);

    // Device 2 scans ticket 2 and syncs through B, whose copy ends at chunk 1, long deleted.
    assert!(scan(&mut two, &qr[2], "South", now + 60_000).is_admit());
    let two = sync(&http, &b, two, event, &token_two).await;
    let one = sync(&http, &a, one, event, &token_one).await;
    // Every scan on both devices: 1 + 260 + 1.
    assert_eq!((one.record_count(), two.record_count()), (262, 262));
    assert_eq!(seqs(db).await, [257, 258, 259, 260, 261, 262]);
    let (report_a, report_b) = (report(&http, &a, event).await, report(&http, &b, event).await);
    assert_eq!(report_a["admitted"], 3, "{report_a}");
    assert_eq!(report_a["already_used"], 259, "{report_a}");
    assert_eq!(report_a["conflicts"], json!([]), "{report_a}");
    assert_eq!(report_a, report_b, "both instances serve one log");
}
