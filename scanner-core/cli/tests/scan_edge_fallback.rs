//! `scanner scan` with an edge Worker configured, when the edge cannot answer: the scan is decided offline
//! within the edge timeout (plus process slack) and says so. The edge-answers path is tested against the
//! real Worker under workerd (edge-verifier/test), not against a canned reply here.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scanner_core::fixtures::*;
use scanner_core::EntryPolicy;

const SCANNER: &str = env!("CARGO_BIN_EXE_scanner");
/// A hang guard, not a performance figure: without a working fallback a blackholed edge never answers.
const HANG_GUARD: Duration = Duration::from_secs(15);

fn run(data: &Path, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(SCANNER).arg("--data").arg(data).args(args).output().expect("run scanner");
    (out, started.elapsed())
}

/// A device set up offline (keyring file) for EVENT, with `edge` stored as its edge Worker.
fn device(dir: &Path, name: &str, edge: &str) -> PathBuf {
    device_with(dir, name, edge, &[])
}

fn device_with(dir: &Path, name: &str, edge: &str, extra: &[&str]) -> PathBuf {
    let (_, ring) = issuer();
    let keyring = dir.join("keyring.json");
    std::fs::write(&keyring, ring.to_json()).expect("write keyring");
    let data = dir.join(name);
    let event = EVENT.to_string();
    let mut args =
        vec!["init", "--name", name, "--event", &event, "--keyring", keyring.to_str().expect("path"), "--edge", edge];
    args.extend_from_slice(extra);
    let (out, _) = run(&data, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    data
}

fn json_line(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {} / {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

/// A port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A TCP server that accepts connections and never answers (a blackholed edge). Connections stay open
/// for the life of the test.
fn blackhole() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            held.lock().expect("lock").push(stream);
        }
    });
    port
}

#[test]
fn unreachable_edge_falls_back_to_the_offline_decision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = format!("http://127.0.0.1:{}", closed_port());
    let data = device(dir.path(), "door", &edge);
    let (key, _) = issuer();
    let text = qr(&key, &ticket(1, EntryPolicy::SingleEntry, EVENT));
    let now = NOW.to_string();

    let (out, elapsed) =
        run(&data, &["scan", "--gate", "North", "--now", &now, "--json", "--edge-timeout-ms", "500", &text]);
    let v = json_line(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["verdict"], "admit");
    assert_eq!(v["path"], "offline");
    assert!(v["edge_error"].as_str().expect("edge_error").starts_with("unreachable"), "{v}");
    assert!(v["edge_ms"].as_f64().expect("edge_ms") < 500.0 + 1.0, "a refused connection does not wait: {v}");
    assert!(elapsed < HANG_GUARD);
    eprintln!("closed port: decided offline in {:.0} ms (edge {:.1} ms)", elapsed.as_secs_f64() * 1e3, v["edge_ms"]);

    // The offline admission is in this device's log: a second scan is refused, again offline, in text.
    let (out, _) = run(&data, &["scan", "--gate", "South", "--now", &now, "--edge-timeout-ms", "500", &text]);
    assert_eq!(out.status.code(), Some(1));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.starts_with("ALREADY USED") && line.trim_end().ends_with("[offline]"), "{line}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("the edge was not used"));

    // The report shows who decided.
    let (out, _) = run(&data, &["report", "--json"]);
    let report = json_line(&out);
    assert_eq!((report["admitted"].as_u64(), report["decided_by_edge"].as_u64()), (Some(1), Some(0)));
    assert_eq!(report["already_used"], 1);
}

#[test]
fn blackholed_edge_times_out_and_falls_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = format!("http://127.0.0.1:{}", blackhole());
    let data = device(dir.path(), "door", &edge);
    let (key, _) = issuer();
    let now = NOW.to_string();
    let good = qr(&key, &ticket(2, EntryPolicy::SingleEntry, EVENT));
    let wrong_event = qr(&key, &ticket(3, EntryPolicy::SingleEntry, EVENT + 1));

    let (out, elapsed) = run(&data, &["scan", "--now", &now, "--json", "--edge-timeout-ms", "300", &good]);
    let v = json_line(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("admit"), Some("offline")));
    assert_eq!(v["edge_error"], "timeout");
    assert!(v["edge_ms"].as_f64().expect("edge_ms") >= 300.0, "it waited for the edge first: {v}");
    assert!(elapsed < HANG_GUARD, "{elapsed:?}");
    eprintln!("blackhole: decided offline in {:.0} ms (edge {:.1} ms)", elapsed.as_secs_f64() * 1e3, v["edge_ms"]);

    // What this device refuses by itself (a ticket for another event) is answered at once: the edge
    // would refuse it too, so it is not asked.
    let (out, elapsed) = run(&data, &["scan", "--now", &now, "--json", "--edge-timeout-ms", "300", &wrong_event]);
    let v = json_line(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!((v["verdict"].as_str(), v["code"].as_str()), (Some("refused"), Some("wrong_event")));
    assert_eq!(v["path"], "offline");
    assert!(v["edge_ms"].is_null() && v["edge_error"].as_str().is_some_and(|e| e.starts_with("not asked")), "{v}");
    assert!(elapsed < HANG_GUARD, "{elapsed:?}");

    // A ticket this device's own log shows used is refused without asking the edge (which may not know).
    let (out, _) = run(&data, &["scan", "--now", &now, "--json", "--edge-timeout-ms", "300", &good]);
    let v = json_line(&out);
    assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("already_used"), Some("offline")));
    assert!(v["edge_error"].as_str().expect("edge_error").starts_with("not asked"), "{v}");
    assert!(v["edge_ms"].is_null());

    // --edge on the command line replaces the stored edge; --no-edge and --override never ask it.
    let other = format!("http://127.0.0.1:{}", closed_port());
    let fresh = qr(&key, &ticket(4, EntryPolicy::SingleEntry, EVENT));
    let (out, _) = run(&data, &["scan", "--now", &now, "--json", "--edge", &other, "--edge-timeout-ms", "300", &fresh]);
    assert!(json_line(&out)["edge_error"].as_str().expect("edge_error").starts_with("unreachable"));
    let (out, _) = run(&data, &["scan", "--now", &now, "--json", "--no-edge", &good]);
    let v = json_line(&out);
    assert_eq!(
        (v["verdict"].as_str(), v["edge_ms"].is_null(), v["edge_error"].is_null()),
        (Some("already_used"), true, true)
    );
    // An override is a supervisor's: a steward's is refused, and nothing is recorded.
    let (out, _) = run(&data, &["scan", "--now", &now, "--json", "--override", "VIP list", &good]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only a supervisor may override"), "{out:?}");
    let pass = scanner_core::supervisor::SupervisorPass {
        event_id: EVENT,
        key_id: key.key_id(),
        issued_at: NOW as u32 - 60,
        not_after: NOW as u32 + 3600,
        name: "Ana".into(),
    }
    .sign(&key)
    .expect("sign pass");
    let (out, _) = run(&data, &["supervisor", "unlock", "--now", &now, &pass]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("supervisor mode: Ana"));
    let (out, _) = run(&data, &["scan", "--now", &now, "--json", "--override", "VIP list", &good]);
    let v = json_line(&out);
    assert_eq!(v["override_reason"], "VIP list");
    assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("admit"), Some("offline")));
    assert!(v["edge_ms"].is_null(), "an override is decided locally: {v}");
}

/// A TCP server that reads one HTTP request, keeps it, and closes the connection without an answer.
fn request_catcher() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::Read;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then as many body bytes as Content-Length says.
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= length {
                        break;
                    }
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&request).into_owned());
        }
    });
    (port, rx)
}

#[test]
fn the_edge_gets_the_redeem_request_of_its_api_with_the_device_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, requests) = request_catcher();
    let edge = format!("http://127.0.0.1:{port}/");
    let data = device_with(dir.path(), "door 7", &edge, &["--token", "device-token-123"]);
    let (key, _) = issuer();
    let text = qr(&key, &ticket(5, EntryPolicy::ReEntry, EVENT));
    let (out, _) = run(&data, &["scan", "--exit", "--gate", "East", "--json", "--edge-timeout-ms", "2000", &text]);
    let v = json_line(&out);
    assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("exit"), Some("offline")), "{v}");

    let request = requests.recv_timeout(HANG_GUARD).expect("the edge was asked");
    let (head, body) = request.split_once("\r\n\r\n").expect("an HTTP request");
    assert!(head.starts_with("POST /v1/redeem HTTP/1.1"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("authorization: bearer device-token-123"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let body: serde_json::Value = serde_json::from_str(body).expect("JSON body");
    let device = body["device"].as_str().expect("device").to_owned();
    assert_eq!(device.len(), 16);
    assert_eq!(
        body,
        serde_json::json!({"qr_text": text, "event": EVENT, "device": device, "device_name": "door 7",
            "gate": "East", "kind": "exit"})
    );
}

#[test]
fn scan_help_documents_the_json_output() {
    let out = Command::new(SCANNER).args(["scan", "--help"]).output().expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    for key in
        ["--edge <URL>", "--edge-timeout-ms", "--no-edge", "path", "edge_error", "edge_ms", "[edge] or [offline]"]
    {
        assert!(help.contains(key), "scan --help lacks {key}:\n{help}");
    }
}
