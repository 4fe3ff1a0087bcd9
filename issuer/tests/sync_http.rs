//! Redemption sync through the issuer over real HTTP: two offline scanner logs learn of each other's admits
//! through `/v1/sync`, and a ticket admitted on both before they synced is in the organizer's report.

mod common;

use scanner_core::redemption::decision::{ScanInput, Verdict};
use scanner_core::redemption::{RedemptionLog, ScanKind};
use serde_json::Value;

const NOW_MS: u64 = 1_900_000_000_000;

/// One sync of `log` with the issuer, over HTTP from a blocking thread (the store's transport is blocking).
async fn sync(app: &common::App, log: RedemptionLog, event: i64, token: &str) -> RedemptionLog {
    let url = app.url(&format!("/v1/sync?event={event}"));
    let http = app.http.clone();
    let token = token.to_owned();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut log = log;
        let summary = log.sync_with("issuer", (NOW_MS / 1000) as i64, |message| {
            handle.block_on(async {
                let resp = http
                    .post(&url)
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
        });
        summary.expect("sync succeeds");
        log
    })
    .await
    .expect("sync thread")
}

fn scan(log: &mut RedemptionLog, text: &str, gate: &str, at_ms: u64) -> Verdict {
    let input = ScanInput { text, kind: ScanKind::Entry, override_reason: None };
    log.scan(input, gate, at_ms).expect("scan is recorded").verdict
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_sync_through_the_issuer_and_the_duplicate_is_reported() {
    let app = common::start().await;
    let event = app.event(10, 0).await;
    let (_, order) = app.order(event, "Grace Hopper", 2, "free").await;
    let order_id = order["order_id"].as_str().expect("order id");
    let (_, view) = app.get_json(&format!("/v1/orders/{order_id}?token={}", order["token"].as_str().unwrap())).await;
    let qr: Vec<String> =
        view["tickets"].as_array().unwrap().iter().map(|t| t["qr_text"].as_str().unwrap().to_owned()).collect();
    let (_, keyring) = app.get_json("/v1/keyring").await;

    let dirs = tempfile::tempdir().unwrap();
    let token_a = app.device_token().await;
    let token_b = app.device_token().await;
    let mut logs = Vec::new();
    for name in ["north", "south"] {
        let mut log = RedemptionLog::open_or_create(&dirs.path().join(name), name).unwrap();
        log.set_keyring(&keyring.to_string()).unwrap();
        log.set_event(event as u32).unwrap();
        logs.push(log);
    }
    let mut south = logs.pop().unwrap();
    let mut north = logs.pop().unwrap();

    // Both devices are offline and admit ticket 0: a duplicate nobody can see yet.
    assert!(matches!(scan(&mut north, &qr[0], "North", NOW_MS), Verdict::Admit(_)));
    assert!(matches!(scan(&mut south, &qr[0], "South", NOW_MS + 1_000), Verdict::Admit(_)));
    // North also admits ticket 1, then both sync.
    assert!(matches!(scan(&mut north, &qr[1], "North", NOW_MS + 2_000), Verdict::Admit(_)));
    let north = sync(&app, north, event, &token_a).await;
    let mut south = sync(&app, south, event, &token_b).await;

    // South now knows ticket 1 was used at the North gate.
    match scan(&mut south, &qr[1], "South", NOW_MS + 3_000) {
        Verdict::AlreadyUsed(u) => assert_eq!(u.gate, "North"),
        other => panic!("expected already used, got {other:?}"),
    }
    let _north = sync(&app, north, event, &token_a).await;

    // The organizer's report on the issuer shows the duplicate with both devices.
    let (status, report): (u16, Value) =
        app.admin(reqwest::Method::GET, &format!("/admin/v1/events/{event}/redemptions"), None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["admitted"], 3, "{report}");
    let conflicts = report["conflicts"].as_array().expect("conflicts");
    assert_eq!(conflicts.len(), 1, "{report}");

    // A wrong token is refused and changes nothing.
    let resp = app
        .http
        .post(app.url(&format!("/v1/sync?event={event}")))
        .bearer_auth("not-a-device-token")
        .body(vec![0x42, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}
