//! `scanner init` against a real issuer: the setup link the issuer makes works, and a keyring that does not
//! match the pinned SHA-256 (a wrong `--keyring-sha256`, or a link whose pin was changed) is refused.

#[path = "../../issuer/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::start;
use scanner_core::setup::SetupLink;
use sha2::Digest as _;

/// The `scanner` binary next to this test's executable (target/<profile>/).
fn scanner_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let bin = exe.parent().and_then(Path::parent).expect("target dir").join("scanner");
    assert!(bin.exists(), "{} is missing: run `cargo build -p scanner-cli`", bin.display());
    bin
}

fn init(data: &Path, args: &[&str]) -> (Option<i32>, String) {
    // A blocking child process: run it off the async runtime's worker threads.
    let out = Command::new(scanner_bin()).arg("--data").arg(data).arg("init").args(args).output().expect("run scanner");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_setup_link_pins_the_keyring_the_issuer_serves() {
    let app = start().await;
    let event = app.event(10, 0).await;
    let (s, device) = app
        .admin(reqwest::Method::POST, "/admin/v1/devices", Some(serde_json::json!({"name": "North", "event": event})))
        .await;
    assert_eq!(s, 201, "{device}");
    let url = device["setup_url"].as_str().expect("setup_url").to_owned();
    let token = device["token"].as_str().expect("token").to_owned();
    let keyring = app.http.get(app.url("/v1/scanner/keyring")).send().await.unwrap().text().await.unwrap();
    // The pin is the plain SHA-256 of the bytes served (what `sha256sum` prints).
    let pin = scanner_core::keyring::to_hex(&sha2::Sha256::digest(keyring.as_bytes()));
    let link = SetupLink::parse(&url).expect("the issuer's link parses");
    assert_eq!(link.keyring_sha256, pin);
    assert_eq!(link.event, event as u32);

    let work = tempfile::tempdir().expect("tempdir");
    let server = app.running.url();
    let event_arg = event.to_string();
    let results = tokio::task::spawn_blocking({
        let work = work.path().to_owned();
        let (url, token, server, pin) = (url.clone(), token.clone(), server.clone(), pin.clone());
        move || {
            let wrong = "ab".repeat(32);
            let mut tampered = link.clone();
            tampered.keyring_sha256 = wrong.clone();
            [
                // The link as the issuer made it.
                init(&work.join("ok"), &["--setup", &url]),
                // The right pin by hand.
                init(
                    &work.join("ok-pin"),
                    &["--server", &server, "--token", &token, "--event", &event_arg, "--keyring-sha256", &pin],
                ),
                // A wrong pin by hand.
                init(
                    &work.join("wrong-pin"),
                    &["--server", &server, "--token", &token, "--event", &event_arg, "--keyring-sha256", &wrong],
                ),
                // A link whose pin was changed.
                init(&work.join("tampered"), &["--setup", &tampered.to_url(&server)]),
            ]
        }
    })
    .await
    .expect("scanner runs");
    let [ok, ok_pin, wrong_pin, tampered] = results;
    assert_eq!(ok.0, Some(0), "{}", ok.1);
    assert!(ok.1.contains(&format!("for event {event}")), "{}", ok.1);
    assert_eq!(ok_pin.0, Some(0), "{}", ok_pin.1);
    for (code, text) in [wrong_pin, tampered] {
        assert_eq!(code, Some(2), "{text}");
        assert!(text.contains("does not match the pinned SHA-256"), "{text}");
    }
    // Refused before anything was stored: no device was set up there.
    assert!(!work.path().join("wrong-pin").exists());
    assert!(!work.path().join("tampered").exists());
    app.running.shutdown().await;
}
