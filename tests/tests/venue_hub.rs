//! A venue with no internet: three `scanner` devices and a venue hub (`scanner hub`) on loopback, the
//! issuer out of reach behind a link the test cuts.
//!
//! Real parts only: the issuer (temporary SQLite file), the `scanner` binary for the hub and every device,
//! and a TCP link between them and the issuer that the test switches off (the venue's lost internet) and
//! on again (after the event).
//!
//! 1. Set-up while online: the hub (its own device token, pinned keyring, a read-only edge token for the
//!    device list) and three devices (North, South, West) that ask the hub first.
//! 2. Offline: North admits six tickets through the hub; South scans one of them: "already used" at
//!    North, decided live by the hub. West, cut off from the hub, admits two tickets on its own (one of them
//!    North's: a genuine duplicate the report must show), then syncs with the hub.
//! 3. North admits one more through the hub, and the hub is killed (SIGKILL) at once and restarted: South
//!    still gets "already used" for it, and after syncing with the restarted hub South refuses West's
//!    ticket offline: nothing the hub had answered for or taken in was lost.
//!    North's door loop, deciding on its own, syncs with the hub: South refuses its admission offline.
//! 4. The hub refuses strangers (401), a device naming another device (403) and oversized messages (413).
//! 5. The link comes back: the hub relays (`scanner hub push`), the devices sync with the issuer, and the
//!    issuer's report has exactly the admissions, duplicates and "already used" scans this test made, each
//!    counted once, whichever way it travelled. Relaying and syncing again changes nothing.

#[path = "../../issuer/tests/common/mod.rs"]
mod common;
mod hub_support;
#[allow(dead_code)] // the shared processes module: this test uses its report helpers only
mod support;

use std::collections::BTreeSet;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use hub_support::{link_to, scan, scanner, scanner_bin, start_hub, web_dir};
use reqwest::Method;
use serde_json::{json, Value};
use support::{conflict_refs, ticket_ref_hex};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_venue_without_internet_refuses_duplicates_live_and_reports_exactly() {
    let app = common::start().await;
    let work = tempfile::tempdir().expect("tempdir");

    // --- the event and twelve tickets ---
    let event = hub_support::event_now(&app, "Harbour Night").await;
    let tickets = hub_support::guest_tickets(&app, event, 12).await;

    // --- set-up while online, through the venue's link ---
    let issuer_addr = app.running.url().trim_start_matches("http://").trim_end_matches('/').to_owned();
    let link = link_to(issuer_addr).await;
    let devices = hub_support::devices(&app, event, &["Hub", "North", "South", "West"]).await;
    let (s, v) = app.admin(Method::POST, "/admin/v1/edge-tokens", Some(json!({"name": "Venue hub"}))).await;
    assert_eq!(s, 201, "{v}");
    let edge_token = v["token"].as_str().expect("edge token").to_owned();

    let hub_data = work.path().join("hub");
    let (_, hub_setup) = &devices[0];
    let event_arg = event.to_string();
    let init_args = [
        "hub",
        "init",
        "--server",
        &link.url,
        "--token",
        &hub_setup.token,
        "--event",
        &event_arg,
        "--keyring-sha256",
        &hub_setup.keyring_sha256,
        "--edge-token",
        &edge_token,
    ];
    scanner(&hub_data, &init_args, &[0]);
    let mut hub = start_hub(
        &hub_data,
        event,
        "127.0.0.1:0",
        &["--upstream-every", "1", "--web", web_dir().to_str().expect("utf-8 path")],
    );
    let hub_url = hub.url.clone();

    let dir = |name: &str| work.path().join(name);
    for (name, setup) in &devices[1..] {
        let args = [
            "init",
            "--server",
            &link.url,
            "--token",
            &setup.token,
            "--event",
            &event_arg,
            "--keyring-sha256",
            &setup.keyring_sha256,
            "--name",
            name,
            "--hub",
            &hub_url,
        ];
        scanner(&dir(name), &args, &[0]);
    }
    let (north, south, west) = (dir("North"), dir("South"), dir("West"));

    // --- the internet goes away ---
    link.online.store(false, Ordering::SeqCst);
    assert!(reqwest::get(format!("{}/v1/scanner/keyring", link.url)).await.is_err(), "the issuer is out of reach");
    // A phone set up from the hub alone still shows ticket type and add-on names: the hub serves the
    // event's description it kept at `hub init` (the issuer's own answer, read here past the cut link).
    let from_issuer: serde_json::Value =
        reqwest::get(app.url(&format!("/v1/events/{event}"))).await.expect("issuer").json().await.expect("json");
    assert_eq!(from_issuer["name"], "Harbour Night", "{from_issuer}");
    let answer = reqwest::Client::new()
        .get(format!("{hub_url}/v1/events/{event}"))
        .header("Origin", link.url.trim_end_matches('/'))
        .send()
        .await
        .expect("hub");
    assert_eq!(answer.status(), 200);
    // A PWA on the issuer's origin may read how long a rate-limited device must wait.
    let exposed = answer.headers().get("access-control-expose-headers").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(exposed.to_ascii_lowercase().contains("retry-after"), "exposed: {exposed:?}");
    assert_eq!(answer.json::<serde_json::Value>().await.expect("json"), from_issuer);
    let other = reqwest::get(format!("{hub_url}/v1/events/{}", event + 1)).await.expect("hub");
    assert_eq!(other.status(), 403, "another event's description is not the hub's to give");

    // North admits six tickets; the hub decides each.
    for t in &tickets[..6] {
        let v = scan(&north, "North", t, &[]);
        assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("admit"), Some("edge")), "{v}");
    }
    // A duplicate at another gate is refused live, by the hub.
    let v = scan(&south, "South", &tickets[0], &[]);
    assert_eq!(v["verdict"], "already_used", "{v}");
    assert_eq!((v["gate"].as_str(), v["path"].as_str()), (Some("North"), Some("edge")), "{v}");
    // West cannot reach the hub for a moment and decides on its own: ticket 6 (new) and ticket 1 (North's:
    // a genuine duplicate nobody could stop), then it syncs with the hub.
    for t in [&tickets[6], &tickets[1]] {
        let v = scan(&west, "West", t, &["--no-edge"]);
        assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("admit"), Some("offline")), "{v}");
    }
    scanner(&west, &["sync", "--hub"], &[0]);

    // North admits ticket 7 and the hub is killed at once.
    let v = scan(&north, "North", &tickets[7], &[]);
    assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("admit"), Some("edge")), "{v}");
    // SIGKILL: no shutdown code runs.
    hub.child.kill().expect("kill -9 the hub");
    hub.child.wait().expect("hub exit");
    let listen = hub_url.trim_start_matches("http://").to_owned();
    drop(hub);
    let hub = start_hub(
        &hub_data,
        event,
        &listen,
        &["--upstream-every", "1", "--web", web_dir().to_str().expect("utf-8 path")],
    );
    // What the hub answered for before the kill, it still knows.
    let v = scan(&south, "South", &tickets[7], &[]);
    assert_eq!(
        (v["verdict"].as_str(), v["gate"].as_str(), v["path"].as_str()),
        (Some("already_used"), Some("North"), Some("edge")),
        "{v}"
    );
    // What West handed it before the kill too: South learns it by syncing and refuses offline.
    scanner(&south, &["sync", "--hub"], &[0]);
    let v = scan(&south, "South", &tickets[6], &["--no-edge"]);
    assert_eq!(
        (v["verdict"].as_str(), v["gate"].as_str(), v["path"].as_str()),
        (Some("already_used"), Some("West"), Some("offline")),
        "{v}"
    );

    // The door loop deciding on its own (`--no-edge`) still syncs with the hub (every 200 ms here, and on
    // the way out): South learns of North's admission through the hub alone and refuses offline.
    let mut door = Command::new(scanner_bin())
        .arg("--data")
        .arg(&north)
        .args(["scan", "--stdin", "--json", "--gate", "North", "--no-edge", "--hub-sync-ms", "200"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("door loop");
    let mut stdin = door.stdin.take().expect("door stdin");
    std::io::Write::write_all(&mut stdin, format!("{}\n", tickets[8]).as_bytes()).expect("write the ticket");
    drop(stdin);
    let out = door.wait_with_output().expect("door loop output");
    assert!(out.status.success(), "door loop: {}", String::from_utf8_lossy(&out.stdout));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one verdict line");
    assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("admit"), Some("offline")), "{v}");
    scanner(&south, &["sync", "--hub"], &[0]);
    let v = scan(&south, "South", &tickets[8], &["--no-edge"]);
    assert_eq!((v["verdict"].as_str(), v["gate"].as_str()), (Some("already_used"), Some("North")), "{v}");

    // --- what a phone needs to set up, from the hub alone: the PWA's files and the pinned keyring ---
    let http = reqwest::Client::new();
    let page = http.get(format!("{}/index.html", hub.url)).send().await.expect("hub");
    assert_eq!(page.status().as_u16(), 200);
    let served = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/scanner/index.html"))
        .expect("the PWA's page");
    assert_eq!(page.text().await.expect("page"), served, "the hub serves the PWA's files as they are");
    let keyring = http.get(format!("{}/v1/scanner/keyring", hub.url)).send().await.expect("hub");
    let keyring = keyring.text().await.expect("keyring");
    let pinned = scanner_core::Keyring::from_json_pinned(&keyring, &hub_setup.keyring_sha256);
    assert!(pinned.is_ok(), "the hub serves the keyring the setup link pins: {pinned:?}");

    // --- the hub refuses strangers, impersonation and oversized messages ---
    let sync_url = format!("{}/v1/sync?event={event}&channel=push", hub.url);
    let r = http.post(&sync_url).bearer_auth("not-a-device").body(vec![0u8; 10]).send().await.expect("hub");
    assert_eq!(r.status().as_u16(), 401);
    let (_, north_setup) = &devices[1];
    let (_, south_setup) = &devices[2];
    let south_id = scanner_core::token::device_id_for_token(&south_setup.token);
    let impersonation = json!({"qr_text": tickets[11], "event": event, "device": south_id, "gate": "North"});
    let r = http
        .post(format!("{}/v1/redeem", hub.url))
        .bearer_auth(&north_setup.token)
        .body(impersonation.to_string())
        .send()
        .await
        .expect("hub");
    assert_eq!(r.status().as_u16(), 403, "a device cannot ask in another device's name");
    let huge = vec![0u8; scanner_core::redemption::document::MAX_SYNC_MESSAGE_BYTES + 1];
    let r = http.post(&sync_url).bearer_auth(&north_setup.token).body(huge).send().await.expect("hub");
    assert_eq!(r.status().as_u16(), 413);
    let r = http.post(&sync_url).bearer_auth(&north_setup.token).body(vec![1u8; 64]).send().await.expect("hub");
    assert_eq!(r.status().as_u16(), 400, "a damaged message is refused");
    // The hub's own token is not a door device's: nobody writes as the hub.
    let r = http.post(&sync_url).bearer_auth(&hub_setup.token).body(vec![0u8; 10]).send().await.expect("hub");
    assert_eq!(r.status().as_u16(), 403);

    // --- the internet is back: the hub relays, the devices sync with the issuer ---
    link.online.store(true, Ordering::SeqCst);
    scanner(&hub_data, &["hub", "push"], &[0]);
    for d in [&north, &south, &west] {
        scanner(d, &["sync"], &[0]);
    }

    // What this test did: admitted tickets 0-8 once each, and ticket 1 a second time (West, offline): a
    // conflict. Four "already used" (South: 0 live, 7 live after the restart, 6 and 8 offline). The hub
    // decided seven admissions (0-5, 7); each is in the log twice (the hub's record and North's mirror).
    let expected_admitted = 9 + 1;
    let expected_conflicts: BTreeSet<String> = [ticket_ref_hex(&tickets[1])].into();
    let expected_already_used = 4;
    let hub_decided = 7;
    let expected_scans = 8 /* North */ + 4 /* South */ + 2 /* West */ + hub_decided /* the hub's own */;
    let report_path = format!("/admin/v1/events/{event}/redemptions");
    let check = |report: &Value| {
        assert_eq!(report["admitted"].as_u64(), Some(expected_admitted), "{report:#}");
        assert_eq!(conflict_refs(report), expected_conflicts, "{report:#}");
        assert_eq!(report["already_used"].as_u64(), Some(expected_already_used), "{report:#}");
        assert_eq!(report["decided_by_edge"].as_u64(), Some(hub_decided), "{report:#}");
        assert_eq!(report["edge_copies"].as_u64(), Some(hub_decided), "{report:#}");
        assert_eq!(report["scans"].as_u64(), Some(expected_scans), "{report:#}");
    };
    let (s, report) = app.admin(Method::GET, &report_path, None).await;
    assert_eq!(s, 200, "{report}");
    check(&report);

    // Again: nothing is counted twice however often the same scans travel.
    scanner(&hub_data, &["hub", "push"], &[0]);
    for d in [&north, &south, &west] {
        scanner(d, &["sync"], &[0]);
        scanner(d, &["sync", "--hub"], &[0]);
    }
    scanner(&hub_data, &["hub", "push"], &[0]);
    let (_, again) = app.admin(Method::GET, &report_path, None).await;
    check(&again);
    drop(hub);
}
