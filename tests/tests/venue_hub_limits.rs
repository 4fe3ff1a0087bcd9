//! The venue hub's per-device request limit (`scanner hub --device-rate --device-burst`): a device over
//! its budget gets 429 with `Retry-After` and nothing else, another device is still served, and the
//! `scanner` CLI falls back to deciding offline: at once for a single scan, and in the door loop without
//! even asking until the time the hub gave.
//!
//! Real parts: the issuer (temporary SQLite file), the `scanner` binary for the hub and both devices.
//! The hub's limit is set tiny here (burst 4, one request back every 20 s) so the test can reach it with
//! a handful of requests; its default sits far above a door (see hub/limit.rs).

#[path = "../../issuer/tests/common/mod.rs"]
mod common;
mod hub_support;

use std::io::Write;
use std::process::{Command, Stdio};

use hub_support::{scan, scanner, scanner_bin, start_hub};
use reqwest::Method;
use scanner_core::redemption::ScanKind;
use scanner_core::token::device_id_for_token;
use scanner_core::wire::{RedeemRequest, REDEEM_PATH};
use serde_json::{json, Value};

/// One `POST /v1/redeem` of a text that is no ticket, as `token`'s device: (status, Retry-After).
async fn redeem_status(http: &reqwest::Client, hub: &str, token: &str, event: i64) -> (u16, Option<u64>) {
    let body = RedeemRequest {
        qr_text: "not a ticket".into(),
        event: u32::try_from(event).expect("event id"),
        device: device_id_for_token(token),
        device_name: "x".into(),
        gate: "North".into(),
        kind: ScanKind::Entry,
        addon: None,
    }
    .to_json();
    let resp = http.post(format!("{hub}{REDEEM_PATH}")).bearer_auth(token).body(body).send().await.expect("hub");
    let retry = resp.headers().get("retry-after").map(|v| v.to_str().expect("ascii").parse().expect("seconds"));
    (resp.status().as_u16(), retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_over_its_budget_gets_429_and_the_cli_decides_offline() {
    let app = common::start().await;
    let work = tempfile::tempdir().expect("tempdir");
    let event = hub_support::event_now(&app, "Limits Night").await;
    let tickets = hub_support::guest_tickets(&app, event, 3).await;
    let devices = hub_support::devices(&app, event, &["Hub", "North", "South"]).await;
    let (s, v) = app.admin(Method::POST, "/admin/v1/edge-tokens", Some(json!({"name": "Venue hub"}))).await;
    assert_eq!(s, 201, "{v}");
    let edge_token = v["token"].as_str().expect("edge token").to_owned();
    let issuer = app.running.url().trim_end_matches('/').to_owned();
    let event_arg = event.to_string();

    let hub_data = work.path().join("hub");
    let (_, hub_setup) = &devices[0];
    let init = ["hub", "init", "--server", &issuer, "--token", &hub_setup.token, "--event", &event_arg];
    let pin = ["--keyring-sha256", &hub_setup.keyring_sha256, "--edge-token", &edge_token];
    scanner(&hub_data, &[&init[..], &pin[..]].concat(), &[0]);
    let limits = ["--upstream-every", "0", "--device-rate", "0.05", "--device-burst", "4"];
    let hub = start_hub(&hub_data, event, "127.0.0.1:0", &limits);
    let dir = |name: &str| work.path().join(name);
    for (name, setup) in &devices[1..] {
        let args = ["init", "--server", &issuer, "--token", &setup.token, "--event", &event_arg, "--name", name];
        let rest = ["--keyring-sha256", &setup.keyring_sha256, "--hub", &hub.url];
        scanner(&dir(name), &[&args[..], &rest[..]].concat(), &[0]);
    }
    let (north_token, south_token) = (&devices[1].1.token, &devices[2].1.token);

    // North spends its burst of 4: the fifth request at the latest is 429, with a Retry-After of at most
    // the 20 s one request takes to come back (0.05/s), at least 1.
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for _ in 0..5 {
        let answer = redeem_status(&http, &hub.url, north_token, event).await;
        answers.push(answer);
        if answer.0 == 429 {
            break;
        }
    }
    let (status, retry) = *answers.last().expect("answers");
    assert_eq!(status, 429, "{answers:?}");
    assert!(retry.is_some_and(|s| (1..=20).contains(&s)), "{answers:?}");
    assert!(answers[..answers.len() - 1].iter().all(|a| a == &(200, None)), "{answers:?}");
    // South has its own budget.
    assert_eq!(redeem_status(&http, &hub.url, south_token, event).await, (200, None));

    // A single scan at North: the hub says 429, the CLI decides offline and says why.
    let v = scan(&dir("North"), "North", &tickets[0], &[]);
    assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("admit"), Some("offline")), "{v}");
    assert!(v["edge_error"].as_str().is_some_and(|e| e.contains("429")), "{v}");

    // North's door loop: whichever meets the 429 first (its first sync or its first scan), from then on
    // its scans do not ask the hub until the time it gave: decided offline, "not asked".
    let mut child = Command::new(scanner_bin())
        .arg("--data")
        .arg(dir("North"))
        .args(["scan", "--stdin", "--json", "--gate", "North"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("door loop");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{}\n{}", tickets[1], tickets[2]).expect("write tickets");
    }
    let out = child.wait_with_output().expect("door loop output");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("verdict line {l:?}: {e}")))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for v in &lines {
        assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("admit"), Some("offline")), "{v}");
        assert!(v["edge_error"].as_str().is_some_and(|e| e.contains("429")), "{v}");
    }
    let second = lines[1]["edge_error"].as_str().unwrap_or_default();
    assert!(second.starts_with("not asked: the server asked to wait"), "{lines:?}");
    // South is still decided by the hub: North's admissions were never sent to it (429), so it admits.
    let v = scan(&dir("South"), "South", &tickets[1], &[]);
    assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("admit"), Some("edge")), "{v}");
    drop(hub);
}
