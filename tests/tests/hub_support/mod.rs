//! What the venue-hub tests share: the real `scanner` binary (for the hub and every device), a cuttable
//! TCP link standing for the venue's internet, and the hub process.
#![allow(dead_code)] // each hub test uses its own part of it

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub fn scanner_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let bin = exe.parent().and_then(Path::parent).expect("target dir").join("scanner");
    assert!(bin.exists(), "{} is missing: run `cargo build -p scanner-cli`", bin.display());
    bin
}

/// The PWA's files, as the hub serves them with `--web`.
pub fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/scanner")
}

pub fn run(data: &Path, args: &[&str]) -> Output {
    Command::new(scanner_bin()).arg("--data").arg(data).args(args).output().expect("run scanner")
}

/// Runs `scanner --data DIR ARGS`; panics unless it exits with one of `ok`.
pub fn scanner(data: &Path, args: &[&str], ok: &[i32]) -> String {
    let out = run(data, args);
    let code = out.status.code().unwrap_or(-1);
    assert!(
        ok.contains(&code),
        "scanner {args:?} exited {code}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One scan on a device: its JSON verdict line.
pub fn scan(device: &Path, gate: &str, text: &str, extra: &[&str]) -> Value {
    let mut args = vec!["scan", "--json", "--gate", gate];
    args.extend_from_slice(extra);
    args.push(text);
    let out = scanner(device, &args, &[0, 1]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("verdict line {out:?}: {e}"))
}

/// The venue's internet: a TCP link to the issuer that forwards while on and refuses while off.
pub struct Link {
    pub url: String,
    pub online: Arc<AtomicBool>,
}

pub async fn link_to(target: String) -> Link {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind link");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let online = Arc::new(AtomicBool::new(true));
    let on = online.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if !on.load(Ordering::SeqCst) {
                drop(inbound); // no route: the connection is cut at once
                continue;
            }
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    Link { url, online }
}

/// The hub process (killed when dropped).
pub struct HubProcess {
    pub child: Child,
    pub url: String,
    /// The certificate fingerprint the hub printed (TLS only; empty for plain http).
    pub fingerprint: String,
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `scanner hub --event EVENT --listen LISTEN ARGS...`, once it says where it listens (and, over TLS, its
/// certificate's fingerprint).
pub fn start_hub(data: &Path, event: i64, listen: &str, args: &[&str]) -> HubProcess {
    let mut child = Command::new(scanner_bin())
        .arg("--data")
        .arg(data)
        .args(["hub", "--event", &event.to_string(), "--listen", listen])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the hub");
    let mut stdout = BufReader::new(child.stdout.take().expect("hub stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("hub's first line");
    let url = first.trim().rsplit(' ').next().expect("hub url").to_owned();
    let mut fingerprint = String::new();
    if url.starts_with("https://") {
        let mut second = String::new();
        stdout.read_line(&mut second).expect("hub's second line");
        assert!(second.starts_with("hub certificate SHA-256: "), "{second:?}");
        fingerprint = second.trim().rsplit(' ').next().expect("fingerprint").to_owned();
    }
    assert!(url.starts_with("http://127.0.0.1:") || url.starts_with("https://127.0.0.1:"), "listens: {first:?}");
    HubProcess { child, url, fingerprint }
}

/// A free event running now (it started an hour ago), named `name`: its id.
pub async fn event_now(app: &crate::common::App, name: &str) -> i64 {
    let t0 = now();
    let (s, v) = app
        .admin(
            reqwest::Method::POST,
            "/admin/v1/events",
            Some(serde_json::json!({"name": name, "venue": "Harbour Hall", "starts_at": t0 - 3600,
                        "ends_at": t0 + 6 * 3600, "timezone": "Europe/Berlin"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_i64().expect("event id")
}

/// A free "Guest list" ticket type for `event` and `n` one-ticket orders of it: the tickets' QR texts,
/// read from the issuer's database in the order they were issued.
pub async fn guest_tickets(app: &crate::common::App, event: i64, n: usize) -> Vec<String> {
    let (s, v) = app
        .admin(
            reqwest::Method::POST,
            &format!("/admin/v1/events/{event}/ticket-types"),
            Some(serde_json::json!({"name": "Guest list", "price_cents": 0, "currency": "EUR", "capacity": 20})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    for i in 0..n {
        let (s, v) = app
            .post(
                "/v1/orders",
                serde_json::json!({"event_id": event, "name": format!("Guest {i}"), "email": format!("guest{i}@example.org"),
                       "items": [{"ticket_type": 0, "quantity": 1}], "payment": "free"}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let rows: Vec<(String,)> = sqlx::query_as("SELECT qr_text FROM tickets WHERE event_id = $1 ORDER BY rowid")
        .bind(event)
        .fetch_all(&app.running.state.db.read)
        .await
        .expect("tickets");
    let tickets: Vec<String> = rows.into_iter().map(|(t,)| t).collect();
    assert_eq!(tickets.len(), n);
    tickets
}

/// One scanner device per name for `event`, each with its setup link.
pub async fn devices<'a>(
    app: &crate::common::App,
    event: i64,
    names: &[&'a str],
) -> Vec<(&'a str, scanner_core::setup::SetupLink)> {
    let mut out = Vec::new();
    for &name in names {
        let (s, v) = app
            .admin(reqwest::Method::POST, "/admin/v1/devices", Some(serde_json::json!({"name": name, "event": event})))
            .await;
        assert_eq!(s, 201, "{v}");
        let link =
            scanner_core::setup::SetupLink::parse(v["setup_url"].as_str().expect("setup_url")).expect("setup link");
        out.push((name, link));
    }
    out
}
