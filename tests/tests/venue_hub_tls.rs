//! The venue hub over TLS with a self-signed certificate that devices pin (`scanner hub --self-signed`,
//! `scanner init --hub https://… --hub-cert-sha256 HEX`).
//!
//! Real parts only: the issuer (temporary SQLite file), the `scanner` binary for the hub and every device,
//! and `openssl` to read the certificate's fingerprint independently of the code under test.
//!
//! - The hub makes its certificate once (key file 0600), for the names given (a LAN-looking address among
//!   them), prints its SHA-256, and keeps it across restarts.
//! - North and South pin it: North admits through the hub, South gets a live "already used" from it.
//! - A device with a wrong pin is refused in the handshake, before any request: its sync fails with an
//!   error naming the mismatch, and the hub never learns its scan (South is admitted for that ticket).
//! - A device without a pin keeps the normal rules (webpki roots): the self-signed hub is refused.
//! - A pin on a plain http URL is refused at setup; plain http to the TLS port gets no HTTP answer, and
//!   the hub keeps serving.

#[path = "../../issuer/tests/common/mod.rs"]
mod common;
mod hub_support;

use std::path::Path;
use std::process::Command;

use hub_support::{run, scanner, HubProcess};
use reqwest::Method;
use scanner_core::setup::SetupLink;
use serde_json::json;

/// The self-signed hub, for a LAN-looking address it would be reached at on the venue Wi-Fi as well
/// (this test binds loopback).
fn start_hub_with(data: &Path, event: i64, listen: &str, tls: &[&str]) -> HubProcess {
    hub_support::start_hub(data, event, listen, &[&["--upstream-every", "0"], tls].concat())
}

fn start_tls_hub(data: &Path, event: i64, listen: &str) -> HubProcess {
    let tls =
        ["--self-signed", "--tls-name", "127.0.0.1", "--tls-name", "192.168.77.10", "--tls-name", "hub.venue.test"];
    start_hub_with(data, event, listen, &tls)
}

/// `openssl x509 -fingerprint -sha256` of a PEM file, as 64 lower-case hex digits.
fn openssl_fingerprint(pem: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().rsplit('=').next().expect("fingerprint").replace(':', "").to_ascii_lowercase()
}

/// The certificate's subject alternative names, as openssl prints them.
fn openssl_names(pem: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(pem)
        .output()
        .expect("run openssl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_pin_the_hubs_self_signed_certificate_and_refuse_any_other() {
    let app = common::start().await;
    let work = tempfile::tempdir().expect("tempdir");

    let event = hub_support::event_now(&app, "Harbour Night").await;
    let tickets = hub_support::guest_tickets(&app, event, 3).await;

    let issuer = app.running.url().trim_end_matches('/').to_owned();
    let devices = hub_support::devices(&app, event, &["Hub", "North", "South", "Mallory", "Plain"]).await;
    let (s, v) = app.admin(Method::POST, "/admin/v1/edge-tokens", Some(json!({"name": "Venue hub"}))).await;
    assert_eq!(s, 201, "{v}");
    let edge_token = v["token"].as_str().expect("edge token").to_owned();

    let hub_data = work.path().join("hub");
    let hub_setup = &devices[0].1;
    let event_arg = event.to_string();
    scanner(
        &hub_data,
        &[
            "hub",
            "init",
            "--server",
            &issuer,
            "--token",
            &hub_setup.token,
            "--event",
            &event_arg,
            "--keyring-sha256",
            &hub_setup.keyring_sha256,
            "--edge-token",
            &edge_token,
        ],
        &[0],
    );
    let hub = start_tls_hub(&hub_data, event, "127.0.0.1:0");

    // --- the certificate: made once, key private, fingerprint as openssl computes it ---
    let cert_pem = hub_data.join("hub").join("tls-cert.pem");
    let key_pem = hub_data.join("hub").join("tls-key.pem");
    assert_eq!(hub.fingerprint, openssl_fingerprint(&cert_pem), "the printed fingerprint is the certificate's");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_pem).expect("key file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the private key is readable by its owner only");
    }
    let names = openssl_names(&cert_pem);
    for expected in ["IP Address:127.0.0.1", "IP Address:192.168.77.10", "DNS:hub.venue.test"] {
        assert!(names.contains(expected), "{expected} in {names}");
    }

    // --- devices ---
    let dir = |name: &str| work.path().join(name);
    let init = |name: &str, setup: &SetupLink, hub_args: &[&str]| {
        let mut args = vec![
            "init",
            "--server",
            &issuer,
            "--token",
            &setup.token,
            "--event",
            &event_arg,
            "--keyring-sha256",
            &setup.keyring_sha256,
            "--name",
            name,
        ];
        args.extend_from_slice(hub_args);
        run(&dir(name), &args)
    };
    // A pin needs https: refused at setup, nothing stored.
    let plain_url = hub.url.replacen("https://", "http://", 1);
    let out = init("North", &devices[1].1, &["--hub", &plain_url, "--hub-cert-sha256", &hub.fingerprint]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs an https:// URL"), "{out:?}");

    for (name, setup) in &devices[1..3] {
        let out = init(name, setup, &["--hub", &hub.url, "--hub-cert-sha256", &hub.fingerprint]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // Mallory's pin differs in its last digit: another certificate.
    let last = hub.fingerprint.chars().last().expect("digit");
    let wrong_pin = format!("{}{}", &hub.fingerprint[..63], if last == '0' { '1' } else { '0' });
    let out = init("Mallory", &devices[3].1, &["--hub", &hub.url, "--hub-cert-sha256", &wrong_pin]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = init("Plain", &devices[4].1, &["--hub", &hub.url]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (north, south, mallory, plain) = (dir("North"), dir("South"), dir("Mallory"), dir("Plain"));

    // --- the pinned devices: verdicts live through the hub over TLS ---
    let v = hub_support::scan(&north, "North", &tickets[0], &[]);
    assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("admit"), Some("edge")), "{v}");
    let v = hub_support::scan(&south, "South", &tickets[0], &[]);
    assert_eq!(
        (v["verdict"].as_str(), v["gate"].as_str(), v["path"].as_str()),
        (Some("already_used"), Some("North"), Some("edge")),
        "{v}"
    );
    scanner(&north, &["sync", "--hub"], &[0]);

    // --- the wrong pin: refused in the handshake, nothing sent ---
    let out = run(&mallory, &["sync", "--hub"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("does not match the pinned"), "the error names the mismatch: {err}");
    assert!(err.contains(&hub.fingerprint) && err.contains(&wrong_pin), "both fingerprints shown: {err}");
    // Its scan cannot reach the hub: decided offline on the device alone.
    let v = hub_support::scan(&mallory, "Mallory", &tickets[1], &[]);
    assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("admit"), Some("offline")), "{v}");
    let _ = run(&mallory, &["sync", "--hub"]);
    // The hub never learnt of it: South is admitted for that ticket by the hub.
    let v = hub_support::scan(&south, "South", &tickets[1], &[]);
    assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("admit"), Some("edge")), "{v}");

    // --- no pin: the normal rules (webpki roots) refuse a self-signed hub ---
    let out = run(&plain, &["sync", "--hub"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let v = hub_support::scan(&plain, "Plain", &tickets[2], &[]);
    assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("admit"), Some("offline")), "{v}");

    // --- plain http to the TLS port: no HTTP answer, and the hub keeps serving ---
    let http = reqwest::Client::new();
    let r = http.get(format!("{plain_url}/v1/scanner/keyring")).send().await;
    assert!(r.is_err(), "plain http gets no answer from the TLS port: {r:?}");
    let v = hub_support::scan(&south, "South", &tickets[2], &[]);
    assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("admit"), Some("edge")), "{v}");

    // --- the certificate is kept across restarts: the pins stay valid ---
    let listen = hub.url.trim_start_matches("https://").to_owned();
    drop(hub);
    let hub = start_tls_hub(&hub_data, event, &listen);
    assert_eq!(hub.fingerprint, openssl_fingerprint(&cert_pem));
    let v = hub_support::scan(&north, "North", &tickets[2], &[]);
    assert_eq!(
        (v["verdict"].as_str(), v["gate"].as_str(), v["path"].as_str()),
        (Some("already_used"), Some("South"), Some("edge")),
        "{v}"
    );
    // `scanner hub push` reaches the running TLS hub through its own pin.
    scanner(&hub_data, &["hub", "push"], &[0]);
    drop(hub);

    // --- the organizer's own certificate (made by openssl here, not by the code under test) ---
    let org_cert = work.path().join("org-cert.pem");
    let org_key = work.path().join("org-key.pem");
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=hub.venue.test", "-addext", "subjectAltName=DNS:hub.venue.test,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&org_key)
        .arg("-out")
        .arg(&org_cert)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl req: {}", String::from_utf8_lossy(&out.stderr));
    let org_args = ["--tls-cert", org_cert.to_str().expect("path"), "--tls-key", org_key.to_str().expect("path")];
    let hub = start_hub_with(&hub_data, event, &listen, &org_args);
    let org_pin = openssl_fingerprint(&org_cert);
    assert_eq!(hub.fingerprint, org_pin, "the hub prints the organizer certificate's fingerprint");
    assert_ne!(org_pin, openssl_fingerprint(&cert_pem));
    // North still pins the self-signed certificate: refused now.
    let out = run(&north, &["sync", "--hub"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match the pinned"), "{out:?}");
    // Pinned anew, it gets the hub's live verdict again: ticket 1, which only South's admission through the
    // hub used (North last synced before it).
    let out = init("North", &devices[1].1, &["--hub", &hub.url, "--hub-cert-sha256", &org_pin]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = hub_support::scan(&north, "North", &tickets[1], &[]);
    assert_eq!(
        (v["verdict"].as_str(), v["gate"].as_str(), v["path"].as_str()),
        (Some("already_used"), Some("South"), Some("edge")),
        "{v}"
    );
}
