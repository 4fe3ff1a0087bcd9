//! A venue hub with a hub token relays everything it holds to the issuer (issue #18): the scans of door
//! devices that never sync with the issuer themselves (a phone lost or broken after the event) reach the
//! organizer's report through the hub alone.
//!
//! Real parts only: the issuer (temporary SQLite file), the `scanner` binary for the hub and both door
//! devices, and a TCP link the devices set up through and that the test then cuts for good, so the
//! devices cannot reach the issuer at all: whatever of theirs the report shows came through the hub.
//!
//! 1. Set-up: the hub (its own device token, a read-only edge token, and a hub token for the event from
//!    `POST /admin/v1/events/{id}/hub-tokens`, `--relay-token`), two door devices that ask the hub first.
//! 2. East admits three tickets through the hub; West admits two new tickets and one of East's on its own
//!    (a genuine duplicate), then asks the hub about another of East's ("already used", live); both sync
//!    with the hub only.
//! 3. Before the relay the issuer's report has nothing; after `scanner hub push` it has exactly what this
//!    test scanned; a second relay changes nothing.
//! 4. Trust boundary at the issuer: a hub token for another event is 403, the event's own device token
//!    on `channel=relay` is 403, the hub token on `channel=push` is 403.

#[path = "../../issuer/tests/common/mod.rs"]
mod common;
mod hub_support;
#[allow(dead_code)] // the shared processes module: this test uses its report helpers only
mod support;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use hub_support::{link_to, scan, scanner, start_hub, web_dir};
use reqwest::Method;
use serde_json::{json, Value};
use support::{conflict_refs, ticket_ref_hex};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_with_a_hub_token_relays_door_devices_scans_to_the_issuer() {
    let app = common::start().await;
    let work = tempfile::tempdir().expect("tempdir");

    // --- two events (the second only to hold a hub token of another event), eight tickets ---
    let event = hub_support::event_now(&app, "Dock Night").await;
    let other_event = hub_support::event_now(&app, "Other Night").await;
    let tickets = hub_support::guest_tickets(&app, event, 8).await;

    // --- set-up ---
    let issuer_url = app.running.url().trim_end_matches('/').to_owned();
    let link = link_to(issuer_url.trim_start_matches("http://").to_owned()).await;
    let devices = hub_support::devices(&app, event, &["Hub", "East", "West"]).await;
    let (s, v) = app.admin(Method::POST, "/admin/v1/edge-tokens", Some(json!({"name": "Venue hub"}))).await;
    assert_eq!(s, 201, "{v}");
    let edge_token = v["token"].as_str().expect("edge token").to_owned();
    let mut hub_tokens = Vec::new();
    for e in [event, other_event] {
        let (s, v) = app
            .admin(Method::POST, &format!("/admin/v1/events/{e}/hub-tokens"), Some(json!({"name": "Dock hub"})))
            .await;
        assert_eq!(s, 201, "{v}");
        hub_tokens.push(v["token"].as_str().expect("hub token").to_owned());
    }
    let (relay_token, other_event_hub_token) = (hub_tokens[0].clone(), hub_tokens[1].clone());

    let hub_data = work.path().join("hub");
    let (_, hub_setup) = &devices[0];
    let event_arg = event.to_string();
    let init_args = [
        "hub",
        "init",
        "--server",
        &issuer_url,
        "--token",
        &hub_setup.token,
        "--event",
        &event_arg,
        "--keyring-sha256",
        &hub_setup.keyring_sha256,
        "--edge-token",
        &edge_token,
        "--relay-token",
        &relay_token,
    ];
    scanner(&hub_data, &init_args, &[0]);
    let hub = start_hub(
        &hub_data,
        event,
        "127.0.0.1:0",
        &["--upstream-every", "0", "--web", web_dir().to_str().expect("utf-8 path")],
    );

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
            &hub.url,
        ];
        scanner(&dir(name), &args, &[0]);
    }
    let (east, west) = (dir("East"), dir("West"));
    // The door devices lose the issuer for good: from here on they only ever talk to the hub.
    link.online.store(false, Ordering::SeqCst);

    // --- the door ---
    for t in &tickets[..3] {
        let v = scan(&east, "East", t, &[]);
        assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("admit"), Some("edge")), "{v}");
    }
    for t in [&tickets[3], &tickets[4], &tickets[0]] {
        let v = scan(&west, "West", t, &["--no-edge"]);
        assert_eq!((v["verdict"].as_str(), v["path"].as_str()), (Some("admit"), Some("offline")), "{v}");
    }
    let v = scan(&west, "West", &tickets[1], &[]);
    assert_eq!((v["verdict"].as_str(), v["gate"].as_str()), (Some("already_used"), Some("East")), "{v}");
    for d in [&east, &west] {
        scanner(d, &["sync", "--hub"], &[0]);
    }

    // --- before the relay, the issuer holds none of it ---
    let report_path = format!("/admin/v1/events/{event}/redemptions");
    let (s, before) = app.admin(Method::GET, &report_path, None).await;
    assert_eq!(s, 200, "{before}");
    assert_eq!(before["scans"].as_u64(), Some(0), "{before:#}");

    // --- the hub relays ---
    scanner(&hub_data, &["hub", "push"], &[0]);
    // What this test scanned: tickets 0-4 admitted once each and ticket 0 a second time (West, offline):
    // six admissions, one conflict. One "already used" (West asked the hub about ticket 1). The hub decided
    // East's three admissions; each is in the log twice (the hub's record and East's mirror).
    let hub_decided = 3;
    let expected_admitted = 5 + 1;
    let expected_conflicts: BTreeSet<String> = [ticket_ref_hex(&tickets[0])].into();
    let expected_scans = 3 /* East */ + 4 /* West */ + hub_decided /* the hub's own */;
    let check = |report: &Value| {
        assert_eq!(report["admitted"].as_u64(), Some(expected_admitted), "{report:#}");
        assert_eq!(conflict_refs(report), expected_conflicts, "{report:#}");
        assert_eq!(report["already_used"].as_u64(), Some(1), "{report:#}");
        assert_eq!(report["decided_by_edge"].as_u64(), Some(hub_decided), "{report:#}");
        assert_eq!(report["edge_copies"].as_u64(), Some(hub_decided), "{report:#}");
        assert_eq!(report["scans"].as_u64(), Some(expected_scans), "{report:#}");
    };
    let (s, report) = app.admin(Method::GET, &report_path, None).await;
    assert_eq!(s, 200, "{report}");
    check(&report);
    // Relaying again changes nothing.
    scanner(&hub_data, &["hub", "push"], &[0]);
    let (_, again) = app.admin(Method::GET, &report_path, None).await;
    check(&again);

    // --- the issuer's trust boundary on the relay channel ---
    let http = reqwest::Client::new();
    let relay = |e: i64, channel: &str| format!("{issuer_url}/v1/sync?event={e}&channel={channel}");
    let status = |token: String, url: String| {
        let http = http.clone();
        async move { http.post(url).bearer_auth(token).body(vec![0u8; 8]).send().await.expect("issuer").status() }
    };
    assert_eq!(status(other_event_hub_token, relay(event, "relay")).await.as_u16(), 403, "another event's hub");
    let (_, east_setup) = &devices[1];
    assert_eq!(status(east_setup.token.clone(), relay(event, "relay")).await.as_u16(), 403, "a device cannot relay");
    assert_eq!(status(relay_token.clone(), relay(event, "push")).await.as_u16(), 403, "a hub token only relays");
    assert_eq!(status(relay_token, relay(other_event, "relay")).await.as_u16(), 403, "never for another event");
    // The report is unchanged by all of that.
    let (_, after) = app.admin(Method::GET, &report_path, None).await;
    check(&after);
    drop(hub);
}
