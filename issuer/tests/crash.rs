//! kill -9 of the issuer process during a load of orders: after a restart every committed order exists and
//! every committed order's email is eventually sent.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

const TOKEN: &str = "crash-test-admin-token";

/// The issuer process on `data` and `db` (`--database-url …` on PostgreSQL: the same database again after
/// the restart, so the restart finds what the killed process committed).
fn spawn(data: &std::path::Path, port: u16, db: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_issuer"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--admin-token", TOKEN, "--email-backoff-ms", "200"])
        // Eight workers on one loopback address: far over the per-address order limit on purpose.
        .args(["--order-rate-per-minute", "0"])
        .arg("--data-dir")
        .arg(data)
        .args(db)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn issuer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_load_loses_no_committed_order_or_email() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = common::database_args(&common::fresh_database_url().await);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut child = spawn(&data, port, &db);
    common::wait_up(&http, &base).await;
    let event = common::process_event(&http, &base, TOKEN, "Crash", 100_000).await;

    let committed: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..8 {
        let (http, base, committed) = (http.clone(), base.clone(), committed.clone());
        workers.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let body = json!({"event_id":event,"name":format!("W{w} #{i}"),"email":"load@example.org","items":[{"ticket_type":0,"quantity":1}]});
                match http.post(format!("{base}/v1/orders")).json(&body).send().await {
                    Ok(r) if r.status().as_u16() == 201 => {
                        if let Ok(v) = r.json::<Value>().await {
                            let id = v["order_id"].as_str().unwrap_or_default().to_owned();
                            let token = v["token"].as_str().unwrap_or_default().to_owned();
                            committed.lock().unwrap().push((id, token));
                        }
                    }
                    _ => return, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix.
    let _ = child.wait();
    for w in workers {
        let _ = w.await;
    }
    let committed = committed.lock().unwrap().clone();
    assert!(committed.len() > 20, "load ran before the kill ({} orders)", committed.len());

    let mut child = spawn(&data, port, &db);
    common::wait_up(&http, &base).await;
    for (id, token) in &committed {
        let r = http.get(format!("{base}/v1/orders/{id}?token={token}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "committed order {id} exists after restart");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["tickets"].as_array().unwrap().len(), 1);
    }
    let all_sent = common::eventually(Duration::from_secs(120), || {
        let (http, base, committed) = (http.clone(), base.clone(), committed.clone());
        async move {
            let v: Value = http
                .get(format!("{base}/admin/v1/email-jobs?status=sent&limit=100000"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let sent: std::collections::HashSet<String> =
                v["jobs"].as_array()?.iter().filter_map(|j| j["order_id"].as_str().map(str::to_owned)).collect();
            committed.iter().all(|(id, _)| sent.contains(id)).then_some(())
        }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(all_sent.is_some(), "every committed order's email is eventually sent");
    let eml = std::fs::read_dir(data.join("outbox")).unwrap().count();
    assert!(eml >= committed.len());
}
