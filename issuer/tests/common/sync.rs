//! Helpers of the redemption-sync tests: device logs bound to their tokens, and sync over real HTTP.

use scanner_core::redemption::decision::{ScanInput, Verdict};
use scanner_core::redemption::{RedemptionLog, ScanKind};
use scanner_core::token::device_id_for_token;
use serde_json::Value;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// One sync of `log` with the issuer, over HTTP from a blocking thread (the store's transport is blocking).
pub async fn try_sync(
    app: &super::App,
    log: RedemptionLog,
    event: i64,
    token: &str,
) -> (RedemptionLog, scanner_core::Result<()>) {
    let url = app.url(&format!("/v1/sync?event={event}"));
    let http = app.http.clone();
    let token = token.to_owned();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut log = log;
        let summary = log.sync_with("issuer", (now_ms() / 1000) as i64, |channel, message| {
            let url = format!("{url}&channel={}", channel.as_str());
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
        (log, summary.map(|_| ()))
    })
    .await
    .expect("sync thread")
}

pub async fn sync(app: &super::App, log: RedemptionLog, event: i64, token: &str) -> RedemptionLog {
    let (log, result) = try_sync(app, log, event, token).await;
    result.expect("sync succeeds");
    log
}

/// A device log in `dir`, set up for `event` with the issuer's keyring, writing under `token`'s id.
pub async fn device_log(app: &super::App, dir: &std::path::Path, name: &str, event: i64, token: &str) -> RedemptionLog {
    let (_, keyring) = app.get_json("/v1/keyring").await;
    let mut log = RedemptionLog::open_or_create_as(dir, name, Some(device_id_for_token(token))).unwrap();
    log.set_keyring(&keyring.to_string()).unwrap();
    log.set_event(event as u32).unwrap();
    log
}

pub async fn free_tickets(app: &super::App, event: i64, n: i64) -> Vec<String> {
    let (_, order) = app.order(event, "Grace Hopper", n, "free").await;
    let order_id = order["order_id"].as_str().expect("order id");
    let (_, view) = app.get_json(&format!("/v1/orders/{order_id}?token={}", order["token"].as_str().unwrap())).await;
    view["tickets"].as_array().unwrap().iter().map(|t| t["qr_text"].as_str().unwrap().to_owned()).collect()
}

pub async fn report(app: &super::App, event: i64) -> Value {
    let (status, report): (u16, Value) =
        app.admin(reqwest::Method::GET, &format!("/admin/v1/events/{event}/redemptions"), None).await;
    assert_eq!(status, 200, "{report}");
    report
}

pub fn scan(log: &mut RedemptionLog, text: &str, gate: &str, at_ms: u64) -> Verdict {
    let input = ScanInput { text, kind: ScanKind::Entry, override_reason: None };
    log.scan(input, gate, at_ms).expect("scan is recorded").verdict
}
