//! `scanner init`: an event is required, revocation lists never go back, and plain http to another
//! machine is refused before any request.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use scanner_core::fixtures::*;
use scanner_core::setup::{SetupLink, SETUP_VERSION};
use scanner_core::{EntryPolicy, RevocationHash, RevocationList};

const SCANNER: &str = env!("CARGO_BIN_EXE_scanner");

fn scanner(data: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(SCANNER).arg("--data").arg(data).args(args).output().expect("run scanner");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn init_without_an_event_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, ring) = issuer();
    let keyring = dir.path().join("keyring.json");
    std::fs::write(&keyring, ring.to_json()).expect("write");
    let data = dir.path().join("device");
    let (code, _, err) = scanner(&data, &["init", "--keyring", keyring.to_str().expect("utf-8")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("needs --event"), "{err}");
    assert!(!data.exists(), "nothing is set up");
}

#[test]
fn init_refuses_an_older_revocation_list_than_the_device_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, ring) = issuer();
    let keyring = dir.path().join("keyring.json");
    std::fs::write(&keyring, ring.to_json()).expect("write");
    let mut list = RevocationList::new();
    list.publish_at(&key, NOW, [RevocationHash::of(&ticket_id(1))]);
    let v1 = dir.path().join("v1.json");
    std::fs::write(&v1, list.to_json()).expect("write");
    list.publish_at(&key, NOW + 60, [RevocationHash::of(&ticket_id(2))]);
    let v2 = dir.path().join("v2.json");
    std::fs::write(&v2, list.to_json()).expect("write");

    let data = dir.path().join("device");
    let event = EVENT.to_string();
    let init = |revocations: &Path| {
        scanner(
            &data,
            &[
                "init",
                "--event",
                &event,
                "--keyring",
                keyring.to_str().expect("utf-8"),
                "--revocations",
                revocations.to_str().expect("utf-8"),
            ],
        )
    };
    let (code, out, err) = init(&v2);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("revocation list version 2"), "{out}");
    let (code, _, err) = init(&v1);
    assert_eq!(code, Some(2), "installing the older list must fail: {err}");
    assert!(err.contains("older than the version 2"), "{err}");

    // The device still holds version 2: ticket 2 is refused as revoked.
    let text = qr(&key, &ticket(2, EntryPolicy::SingleEntry, EVENT));
    let (code, out, _) = scanner(&data, &["scan", "--now", &NOW.to_string(), "--json", &text]);
    assert_eq!(code, Some(1), "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["code"], "revoked", "{out}");
}

/// A listener on this machine that a request would reach under a name the device must refuse.
fn trap() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    (listener, port)
}

fn assert_never_called(listener: &TcpListener) {
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok(_) => panic!("the device connected to a plain-http server"),
        Err(e) => panic!("accept: {e}"),
    }
}

#[test]
fn plain_http_to_another_host_is_refused_before_any_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("device");
    let (listener, port) = trap();
    // "localhost." resolves to this machine, but is not one of the names plain http is allowed for.
    let server = format!("http://localhost.:{port}");
    let (code, _, err) = scanner(&data, &["init", "--server", &server, "--token", "t", "--event", "1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("plain http"), "{err}");
    assert_never_called(&listener);

    // The same through a setup link, for the server, the edge and a venue hub.
    let link = |server: String, edge: Option<String>, hub: Option<String>| {
        let link = SetupLink {
            v: SETUP_VERSION,
            server,
            token: "t".into(),
            event: 1,
            edge,
            device_name: "door".into(),
            keyring_sha256: "00".repeat(32),
            hub,
            hub_cert_sha256: None,
        };
        link.to_url("https://tickets.example.org")
    };
    let elsewhere = || "https://127.0.0.1:1".to_owned();
    for url in [
        link(server.clone(), None, None),
        link(elsewhere(), Some(server.clone()), None),
        link(elsewhere(), None, Some(server.clone())),
    ] {
        let (code, _, err) = scanner(&data, &["init", "--setup", &url]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("plain http"), "{err}");
    }
    assert_never_called(&listener);
    assert!(!data.exists(), "nothing is set up");

    // A device set up offline is not talked into plain http later either: sync and scan overrides.
    let (_, ring) = issuer();
    let keyring = dir.path().join("keyring.json");
    std::fs::write(&keyring, ring.to_json()).expect("write");
    let event = EVENT.to_string();
    let (code, _, err) =
        scanner(&data, &["init", "--event", &event, "--keyring", keyring.to_str().expect("utf-8"), "--token", "t"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = scanner(&data, &["scan", "--edge", &server, "TK1:x"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("plain http"), "{err}");
    assert_never_called(&listener);
}
