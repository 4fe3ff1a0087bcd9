//! The check-ins CSV: one row per pass the redemption report counts, mapped back to the ticket, in the
//! event's time zone, with formula cells neutralised. Expected rows come from what the test scanned.

mod common;

use common::sync::{device_log, free_tickets, now_ms, scan, sync};
use scanner_core::redemption::decision::Verdict;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkins_csv_lists_every_counted_pass_with_its_ticket() {
    let app = common::start().await;
    // app.event() makes an event in Europe/Berlin.
    let event = app.event(10, 0).await;
    let qr = free_tickets(&app, event, 2).await;
    let (_, order_list) = app.admin(reqwest::Method::GET, &format!("/admin/v1/orders?event={event}"), None).await;
    let order_id = order_list["orders"][0]["id"].as_str().expect("order id").to_owned();

    let dirs = tempfile::tempdir().unwrap();
    let token_a = app.device_token(event).await;
    let token_b = app.device_token(event).await;
    let mut north = device_log(&app, &dirs.path().join("north"), "north", event, &token_a).await;
    let mut south = device_log(&app, &dirs.path().join("south"), "=cmd|' /C calc'!A0", event, &token_b).await;
    // Whole seconds, so the expected local times are easy to compute apart from the system.
    let t0 = now_ms() / 1000 * 1000;
    // Ticket 1 at North; ticket 1 again at South while offline (a duplicate); ticket 2 refused nowhere but
    // scanned by nobody; a forged text refused at North (not a check-in).
    assert!(matches!(scan(&mut north, &qr[0], "North", t0), Verdict::Admit(_)));
    assert!(matches!(scan(&mut south, &qr[0], "South", t0 + 60_000), Verdict::Admit(_)));
    assert!(!matches!(scan(&mut north, "TK1:forged", "North", t0 + 120_000), Verdict::Admit(_)));
    let _north = sync(&app, north, event, &token_a).await;
    let _south = sync(&app, south, event, &token_b).await;

    let resp = app
        .http
        .get(app.url(&format!("/admin/v1/events/{event}/exports/checkins.csv")))
        .bearer_auth(app.running.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let body = resp.bytes().await.unwrap();
    assert!(body.starts_with("\u{feff}".as_bytes()), "UTF-8 byte order mark");
    let mut reader = csv::Reader::from_reader(&body[3..]);
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header[0], "time (Europe/Berlin)");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "two passes counted; the refusal is not a check-in: {rows:?}");

    // Berlin local time of t0, computed with the system's tz database (independent of the issuer's jiff).
    let local = |ms: u64| {
        let out = std::process::Command::new("date")
            .env("TZ", "Europe/Berlin")
            .args(["-d", &format!("@{}", ms / 1000), "+%Y-%m-%d %H:%M:%S"])
            .output()
            .expect("date");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let get = |row: &csv::StringRecord, col: &str| row[header.iter().position(|h| h == col).unwrap()].to_owned();
    assert_eq!(get(&rows[0], "time (Europe/Berlin)"), local(t0));
    assert_eq!(get(&rows[0], "gate"), "North");
    assert_eq!(get(&rows[0], "device"), "north");
    assert_eq!(get(&rows[1], "time (Europe/Berlin)"), local(t0 + 60_000));
    assert_eq!(get(&rows[1], "gate"), "South");
    // A hostile device name is text in the spreadsheet, not a formula.
    assert_eq!(get(&rows[1], "device"), "'=cmd|' /C calc'!A0");
    for row in &rows {
        assert_eq!(get(row, "pass"), "entry");
        assert_eq!(get(row, "outcome"), "admitted");
        assert_eq!(get(row, "decided by"), "offline");
        assert_eq!(get(row, "order"), order_id);
        assert_eq!(get(row, "ticket"), "1", "both passes were the order's first ticket");
        assert_eq!(get(row, "holder"), "Grace Hopper");
    }

    // Readers only: a device token cannot download it; an unknown event is 404.
    let denied = app
        .http
        .get(app.url(&format!("/admin/v1/events/{event}/exports/checkins.csv")))
        .bearer_auth(&token_a)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let (status, _) = app.admin(reqwest::Method::GET, "/admin/v1/events/999/exports/checkins.csv", None).await;
    assert_eq!(status, 404);
    // The download is in the audit log.
    let (_, audit) = app.admin(reqwest::Method::GET, "/admin/v1/audit?action=export.checkins", None).await;
    assert!(audit.to_string().contains("export.checkins"), "{audit}");
}
