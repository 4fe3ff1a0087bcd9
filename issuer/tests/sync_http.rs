//! Redemption sync through the issuer over real HTTP: two offline scanner logs learn of each other's admits
//! through `/v1/sync`, and a ticket admitted on both before they synced is in the organizer's report.
//! Then the attacks: one device token writing another device's records, a record stamped in the future,
//! and a full disk (the deflate bomb has a test binary of its own: it measures the process's peak memory).

mod common;

use common::sync::{device_log, free_tickets, now_ms, report, scan, sync, try_sync};
use scanner_core::error::{DeviceKind, Error};
use scanner_core::redemption::decision::Verdict;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_sync_through_the_issuer_and_the_duplicate_is_reported() {
    let app = common::start().await;
    let event = app.event(10, 0).await;
    let qr = free_tickets(&app, event, 2).await;
    let now = now_ms();

    let dirs = tempfile::tempdir().unwrap();
    let token_a = app.device_token(event).await;
    let token_b = app.device_token(event).await;
    let mut north = device_log(&app, &dirs.path().join("north"), "north", event, &token_a).await;
    let mut south = device_log(&app, &dirs.path().join("south"), "south", event, &token_b).await;

    // Both devices are offline and admit ticket 0: a duplicate nobody can see yet.
    assert!(matches!(scan(&mut north, &qr[0], "North", now), Verdict::Admit(_)));
    assert!(matches!(scan(&mut south, &qr[0], "South", now + 1_000), Verdict::Admit(_)));
    // North also admits ticket 1, then both sync.
    assert!(matches!(scan(&mut north, &qr[1], "North", now + 2_000), Verdict::Admit(_)));
    let north = sync(&app, north, event, &token_a).await;
    let mut south = sync(&app, south, event, &token_b).await;

    // South now knows ticket 1 was used at the North gate.
    match scan(&mut south, &qr[1], "South", now + 3_000) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_device_token_cannot_write_another_devices_records() {
    let app = common::start().await;
    let event = app.event(10, 0).await;
    let qr = free_tickets(&app, event, 2).await;
    let dirs = tempfile::tempdir().unwrap();
    let (token_a, token_b) = (app.device_token(event).await, app.device_token(event).await);
    // The holder of A's token builds a log in B's name (B's id is public: it is in every report).
    let mut forged = device_log(&app, &dirs.path().join("forged"), "south", event, &token_b).await;
    assert!(matches!(scan(&mut forged, &qr[0], "South", now_ms()), Verdict::Admit(_)));
    let (_, result) = try_sync(&app, forged, event, &token_a).await;
    // The server drops every change and keeps asking for what it never got: the session cannot finish.
    assert!(matches!(result, Err(Error::Device(DeviceKind::SyncStalled(_)))), "{result:?}");
    assert_eq!(report(&app, event).await["admitted"], 0, "nothing forged was taken");

    // B's own device, with B's token, is not frozen by the forgery (same first sequence number).
    let mut genuine = device_log(&app, &dirs.path().join("genuine"), "south", event, &token_b).await;
    assert!(matches!(scan(&mut genuine, &qr[1], "South", now_ms()), Verdict::Admit(_)));
    let _ = sync(&app, genuine, event, &token_b).await;
    let r = report(&app, event).await;
    assert_eq!(r["admitted"], 1, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_stamped_an_hour_ahead_is_refused_and_changes_nothing() {
    let app = common::start().await;
    let event = app.event(10, 0).await;
    let qr = free_tickets(&app, event, 1).await;
    let dirs = tempfile::tempdir().unwrap();
    let token = app.device_token(event).await;
    let mut ahead = device_log(&app, &dirs.path().join("ahead"), "north", event, &token).await;
    assert!(matches!(scan(&mut ahead, &qr[0], "North", now_ms() + 3_600_000), Verdict::Admit(_)));
    let (_, result) = try_sync(&app, ahead, event, &token).await;
    match result {
        Err(Error::Device(DeviceKind::Transport(text))) => {
            assert!(text.contains("400") && text.contains("ahead of this clock"), "{text}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(report(&app, event).await["admitted"], 0);
}

/// A small tmpfs mounted for one test (needs root, as CI and the test command run).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> Self {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "this test mounts a small tmpfs to fill the disk: run it as root");
        SmallDisk(dir.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` until a write fails with "no space".
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0xa5u8; 4096];
    loop {
        match file.write_all(&block).and_then(|()| file.sync_data()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => return path, // ENOSPC
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
}

/// SQLite only: the store is the SQLite file on the small disk (a PostgreSQL store's disk is the server's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_only_a_full_disk_refuses_the_sync_and_loses_nothing_after_a_restart() {
    let mount = tempfile::tempdir().unwrap();
    let _disk = SmallDisk::mount(mount.path(), "24m");
    let data = mount.path().join("data");
    let app = common::start_with(|c| c.data_dir = data.clone()).await;
    let event = app.event(10, 0).await;
    let qr = free_tickets(&app, event, 2).await;
    let token = app.device_token(event).await;
    let dirs = tempfile::tempdir().unwrap(); // the device's own storage is elsewhere
    let mut log = device_log(&app, dirs.path(), "north", event, &token).await;
    assert!(matches!(scan(&mut log, &qr[0], "North", now_ms()), Verdict::Admit(_)));
    let mut log = sync(&app, log, event, &token).await;
    assert_eq!(report(&app, event).await["admitted"], 1);

    // The disk fills up; the next scans' sync is refused with 507 and the server keeps nothing of it.
    // (They are scanned at 100 gates with long, hard-to-compress names so that the change is larger
    // than the free tail of the store's last page, which a full tmpfs still lets a write use.)
    let filler = fill(mount.path());
    assert!(matches!(scan(&mut log, &qr[1], "North", now_ms()), Verdict::Admit(_)));
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for gate in 0..100 {
        let name: String = (0..150)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b"0123456789abcdefghijklmnopqrstuvwxyz"[(x % 36) as usize])
            })
            .collect();
        assert!(!scan(&mut log, &qr[1], &format!("{gate} {name}"), now_ms()).is_admit());
    }
    let (log, result) = try_sync(&app, log, event, &token).await;
    match &result {
        Err(Error::Device(DeviceKind::Transport(text))) => assert!(text.contains("507"), "{text}"),
        other => panic!("expected 507, got {other:?}"),
    }
    assert_eq!(report(&app, event).await["admitted"], 1, "no answer for what is not on disk");

    // Space again, a restart on the same data: the first record survived, the device sends the second.
    std::fs::remove_file(filler).unwrap();
    let database_url = app.running.state.config.database_url.clone();
    app.running.shutdown().await;
    let app = common::start_with(|c| {
        c.data_dir = data.clone();
        c.database_url = database_url;
    })
    .await;
    assert_eq!(report(&app, event).await["admitted"], 1, "what was answered is on disk");
    let _ = sync(&app, log, event, &token).await;
    assert_eq!(report(&app, event).await["admitted"], 2);
    app.running.shutdown().await;
}

/// The event's stored log pieces, in order.
async fn pieces(db: &sqlx::AnyPool, event: i64) -> Vec<(i64, Vec<u8>)> {
    sqlx::query_as("SELECT seq, bytes FROM sync_chunks WHERE event_id = $1 ORDER BY seq")
        .bind(event)
        .fetch_all(db)
        .await
        .unwrap()
}

/// An issuer upgraded from the file-backed log: the event's old `DATA_DIR/redemptions/event-<id>.log`
/// (written here by scanner-core's file storage, as the issuer did before) is imported into the database
/// on first use, once, and the log carries on from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_file_log_is_imported_into_the_database_once() {
    use scanner_core::redemption::server_log::ServerLog;
    use scanner_core::redemption::{DeviceId, Hlc, Outcome, ScanKind, ScanRecord, TicketRef};

    let app = common::start().await;
    let event = app.event(10, 0).await;
    let dir = app.data_dir().join("redemptions");
    let old_device = DeviceId(0x0123_4567_89ab_cdef);
    let record = |ticket: u8, at_ms: u64| ScanRecord {
        ticket: TicketRef([ticket; 12]),
        hlc: Hlc(at_ms << 16),
        wall_time: (at_ms / 1000) as u32,
        gate: 0,
        kind: ScanKind::Entry,
        reentry: false,
        outcome: Outcome::Admitted,
        ticket_type: 0,
        decided_by_edge: false,
        addon: None,
    };
    let now = now_ms();
    {
        let mut old = ServerLog::open(&dir, event as u32, Some(old_device)).unwrap();
        old.append_own("old gate", "West", record(1, now - 60_000), 0).unwrap();
        old.append_own("old gate", "West", record(2, now - 50_000), 0).unwrap();
    }
    let file = std::fs::read(dir.join(format!("event-{event}.log"))).unwrap();

    // The two admissions of the file are in the report, and the file is the event's first stored piece.
    let first = report(&app, event).await;
    assert_eq!(first["admitted"], 2, "{first}");
    assert_eq!(first["admitted_by_gate"]["West"], 2, "{first}");
    let db = &app.running.state.db.read;
    assert_eq!(pieces(db, event).await, [(1, file.clone())]);

    // A device syncs a new admission: stored after the imported piece.
    let qr = free_tickets(&app, event, 1).await;
    let token = app.device_token(event).await;
    let dirs = tempfile::tempdir().unwrap();
    let mut log = device_log(&app, dirs.path(), "north", event, &token).await;
    assert!(matches!(scan(&mut log, &qr[0], "North", now), Verdict::Admit(_)));
    let log = sync(&app, log, event, &token).await;
    assert_eq!(log.record_count(), 3, "the device got the imported admissions");
    assert_eq!(report(&app, event).await["admitted"], 3);
    let stored = pieces(db, event).await;
    assert_eq!(stored.len(), 2, "the import and the device's chunk");

    // A restart on the same data, the old file still there: nothing is imported again.
    let database_url = app.running.state.config.database_url.clone();
    let data = app.data_dir().to_path_buf();
    let _keep = app.dir;
    app.running.shutdown().await;
    let app = common::start_with(|c| {
        c.data_dir = data;
        c.database_url = database_url;
    })
    .await;
    assert_eq!(report(&app, event).await["admitted"], 3);
    assert_eq!(pieces(&app.running.state.db.read, event).await, stored);
    app.running.shutdown().await;
}

/// After `COMPACT_AFTER_CHUNKS` (256) stored chunks, the next exchange stores one full save that replaces
/// them all, in the same transaction; the log reads back whole, also after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_are_compacted_into_one_full_save() {
    let app = common::start().await;
    let event = app.event(10, 0).await;
    let qr = free_tickets(&app, event, 1).await;
    let token = app.device_token(event).await;
    let dirs = tempfile::tempdir().unwrap();
    let mut log = device_log(&app, dirs.path(), "north", event, &token).await;
    let now = now_ms();
    // 260 syncs, each bringing one new scan of the same ticket: one chunk each (the pull takes nothing).
    for i in 0..260u64 {
        let verdict = scan(&mut log, &qr[0], "North", now + i * 100);
        assert_eq!(verdict.is_admit(), i == 0);
        log = sync(&app, log, event, &token).await;
    }
    // Chunks 1..=256, then sync 257 stores the full save (seq 257) in their place, then three chunks.
    let seqs: Vec<i64> = pieces(&app.running.state.db.read, event).await.into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(seqs, [257, 258, 259, 260]);
    let expect = |report: Value| {
        assert_eq!(report["admitted"], 1, "{report}");
        assert_eq!(report["already_used"], 259, "{report}");
    };
    expect(report(&app, event).await);
    let (database_url, data) = (app.running.state.config.database_url.clone(), app.data_dir().to_path_buf());
    let _keep = app.dir;
    app.running.shutdown().await;
    let app = common::start_with(|c| {
        c.data_dir = data;
        c.database_url = database_url;
    })
    .await;
    expect(report(&app, event).await);
    app.running.shutdown().await;
}
