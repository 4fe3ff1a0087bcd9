//! `issuer backup` / `issuer restore`: a backup taken while orders keep arriving restores every order,
//! ticket and signing key (and, taken quiet, the redemption sync log); the restored issuer signs with the
//! same key; damaged, truncated and hostile archives are refused with nothing written.
//!
//! Expected values come from the original data directory read directly (SQLite rows through rusqlite,
//! key files as bytes), never from the backup code's own summary.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{start, start_with};
use scanner_core::{Keyring, VerifyContext};
use serde_json::json;

/// Every row of every table, as text, keyed by table name (rows sorted), read straight from SQLite.
fn dump(db: &Path) -> BTreeMap<String, Vec<String>> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = BTreeMap::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut cells = Vec::with_capacity(n);
                for i in 0..n {
                    let v: rusqlite::types::Value = r.get(i)?;
                    cells.push(format!("{v:?}"));
                }
                Ok(cells.join("|"))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        out.insert(table, rows);
    }
    out
}

fn file_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            out.insert(entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path()).unwrap());
        }
    }
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_only_backup_while_selling_restores_every_order_ticket_and_key() {
    let app = Arc::new(start().await);
    let event = app.event(10_000, 0).await;
    let mut before = Vec::new();
    for i in 0..20 {
        let (s, v) = app.order(event, &format!("Before {i}"), 2, "free").await;
        assert_eq!(s, 201, "{v}");
        before.push(v["order_id"].as_str().unwrap().to_owned());
    }

    // Orders keep arriving while the backup runs.
    let selling = Arc::new(AtomicBool::new(true));
    let seller = {
        let (app, selling) = (app.clone(), selling.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while selling.load(Ordering::Relaxed) {
                let (s, _) = app.order(event, &format!("During {n}"), 1, "free").await;
                assert_eq!(s, 201);
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let data = app.data_dir().to_path_buf();
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("issuer.tar");
    {
        let (data, archive) = (data.clone(), archive.clone());
        tokio::task::spawn_blocking(move || issuer::backup::backup(&data, &archive, 1_800_000_000))
            .await
            .unwrap()
            .expect("online backup");
    }
    selling.store(false, Ordering::Relaxed);
    let during = seller.await.unwrap();
    assert!(during > 0, "orders were placed during the backup");
    assert_eq!(mode(&archive), 0o600, "the archive holds private keys");

    let restored = work.path().join("restored");
    issuer::backup::restore(&archive, &restored).expect("restore");

    // The snapshot is consistent: every restored row is a row of the live database (which has only grown
    // since), every order placed before the backup is there, and every order has all its tickets.
    let live = dump(&data.join("issuer.sqlite3"));
    let back = dump(&restored.join("issuer.sqlite3"));
    assert!(back["orders"].len() >= before.len(), "orders restored: {}", back["orders"].len());
    assert_eq!(live.keys().collect::<Vec<_>>(), back.keys().collect::<Vec<_>>(), "same tables");
    for (table, rows) in &back {
        for row in rows {
            // Rows that change later (reserved counters, outbox attempts, order updated_at) may differ; the
            // records that are written once must match exactly.
            if ["tickets", "order_items", "events"].contains(&table.as_str()) {
                assert!(live[table].contains(row), "{table}: restored row not in the live database: {row}");
            }
        }
    }
    let conn = rusqlite::Connection::open_with_flags(
        restored.join("issuer.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    for id in &before {
        let (status, tickets): (String, i64) = conn
            .query_row(
                "SELECT status, (SELECT COUNT(*) FROM tickets t WHERE t.order_id = o.id) FROM orders o WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("order placed before the backup is restored");
        assert_eq!((status.as_str(), tickets), ("confirmed", 2), "order {id}");
    }
    let torn: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM orders o WHERE status = 'confirmed' AND (SELECT COUNT(*) FROM tickets t WHERE t.order_id = o.id) \
             <> (SELECT SUM(quantity) FROM order_items i WHERE i.order_id = o.id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(torn, 0, "no confirmed order is missing tickets in the snapshot");

    // Keys and secrets: byte for byte, private files 0600.
    assert_eq!(file_bytes(&data.join("keys")), file_bytes(&restored.join("keys")));
    assert!(!file_bytes(&data.join("keys")).is_empty());
    for name in file_bytes(&restored.join("keys")).keys() {
        assert_eq!(mode(&restored.join("keys").join(name)), 0o600, "{name}");
    }
    assert_eq!(
        std::fs::read(data.join("keyring.json")).unwrap(),
        std::fs::read(restored.join("keyring.json")).unwrap()
    );
    assert_eq!(std::fs::read(data.join("admin-token")).unwrap(), std::fs::read(restored.join("admin-token")).unwrap());

    // A door device syncs one admission: the redemption log is in the database, so backups hold it.
    let token = app.device_token(event).await;
    let qr = common::sync::free_tickets(&app, event, 1).await;
    let devices = tempfile::tempdir().unwrap();
    let mut door = common::sync::device_log(&app, devices.path(), "door", event, &token).await;
    assert!(common::sync::scan(&mut door, &qr[0], "Main", common::sync::now_ms()).is_admit());
    let _door = common::sync::sync(&app, door, event, &token).await;

    // Quiet now (no order arriving, every ticket mail sent): a second backup equals the live database
    // table for table, row for row.
    let live_db = data.join("issuer.sqlite3");
    let quiet_db = live_db.clone();
    common::eventually(std::time::Duration::from_secs(30), || {
        let db = quiet_db.clone();
        async move {
            let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
            let pending: i64 =
                conn.query_row("SELECT COUNT(*) FROM email_jobs WHERE status <> 'sent'", [], |r| r.get(0)).ok()?;
            (pending == 0).then_some(())
        }
    })
    .await
    .expect("every ticket mail is sent");
    let quiet = work.path().join("quiet.tar");
    issuer::backup::backup(&data, &quiet, 1_800_000_001).unwrap();
    let quiet_dir = work.path().join("quiet");
    issuer::backup::restore(&quiet, &quiet_dir).unwrap();
    let (live, back) = (dump(&live_db), dump(&quiet_dir.join("issuer.sqlite3")));
    for (table, rows) in &live {
        let missing: Vec<_> = rows.iter().filter(|r| !back[table].contains(r)).take(3).collect();
        assert!(
            missing.is_empty() && rows.len() == back[table].len(),
            "{table} differs after a quiet backup: {missing:?}"
        );
    }

    // An issuer started on the restored directory sells with the same signing key: its new ticket verifies
    // against the original issuer's keyring.
    let original_ring = app.http.get(app.url("/v1/keyring")).send().await.unwrap().text().await.unwrap();
    let original_ring = Keyring::from_json(&original_ring).unwrap();
    let second = start_with(|c| c.data_dir = quiet_dir.clone()).await;
    let (s, order) = second
        .post(
            "/v1/orders",
            json!({"event_id":event,"name":"After Restore","email":"r@example.org","items":[{"ticket_type":0,"quantity":1}],"payment":"free"}),
        )
        .await;
    assert_eq!(s, 201, "{order}");
    let (s, view) = second
        .get_json(&format!(
            "/v1/orders/{}?token={}",
            order["order_id"].as_str().unwrap(),
            order["token"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 200);
    let ctx = VerifyContext {
        keyring: &original_ring,
        revocations: None,
        event_id: event as u32,
        now: issuer::util::now() as u64,
    };
    scanner_core::verify_text(view["tickets"][0]["qr_text"].as_str().unwrap(), &ctx).expect("same signing key");
    // And the orders from before the backup are served by the restored issuer, and the door's admission.
    let (s, _) = second.get_json(&format!("/v1/events/{event}")).await;
    assert_eq!(s, 200);
    assert_eq!(common::sync::report(&second, event).await["admitted"], 1);
}

/// Writes a tar with the given (path, bytes) entries, without any checks (to build hostile archives).
fn raw_tar(path: &Path, entries: &[(&str, &[u8])]) {
    let mut out = Vec::new();
    for (name, data) in entries {
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        header[100..108].copy_from_slice(b"0000600\0");
        header[108..116].copy_from_slice(b"0000000\0");
        header[116..124].copy_from_slice(b"0000000\0");
        header[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        header[136..148].copy_from_slice(b"00000000000\0");
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    std::fs::write(path, out).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_only_damaged_truncated_and_hostile_archives_are_refused_with_nothing_written() {
    let app = start().await;
    let event = app.event(100, 0).await;
    assert_eq!(app.order(event, "Ada", 1, "free").await.0, 201);
    let work = tempfile::tempdir().unwrap();
    let good = work.path().join("good.tar");
    issuer::backup::backup(app.data_dir(), &good, 1_800_000_000).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    // One flipped byte inside the database's contents (found by SQLite's file header).
    let flipped = work.path().join("flipped.tar");
    let mut b = bytes.clone();
    let magic = b"SQLite format 3\0";
    let at = b.windows(magic.len()).position(|w| w == magic).expect("the database is in the archive") + 2000;
    b[at] ^= 0x5a;
    std::fs::write(&flipped, &b).unwrap();
    // Cut short.
    let truncated = work.path().join("truncated.tar");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    // A path that climbs out of the data directory, listed in a well-formed table of contents.
    let evil = work.path().join("evil.tar");
    let payload = b"owned";
    let toc = json!({"format":"offline-tickets/issuer-backup/v1","created_at":0,"files":[
        {"path":"../escaped","bytes":payload.len(),"sha256":hex::encode(<sha2::Sha256 as sha2::Digest>::digest(payload))}]});
    raw_tar(&evil, &[("BACKUP.json", toc.to_string().as_bytes()), ("../escaped", payload)]);
    // Not a backup at all.
    let junk = work.path().join("junk.tar");
    std::fs::write(&junk, b"this is not a tar file").unwrap();

    for archive in [&flipped, &truncated, &evil, &junk] {
        let target = work.path().join(format!("restore-{}", archive.file_stem().unwrap().to_string_lossy()));
        let err = issuer::backup::restore(archive, &target).expect_err("refused");
        assert!(err.to_string().contains("not a usable issuer backup"), "{archive:?}: {err}");
        assert!(!target.exists(), "{archive:?}: nothing restored");
    }
    assert!(!work.path().join("escaped").exists());
    let leftovers: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".issuer-restore-"))
        .collect();
    assert!(leftovers.is_empty(), "staging directories are cleaned up: {leftovers:?}");

    // A non-empty target is never overwritten.
    let busy = work.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep-me"), b"x").unwrap();
    let err = issuer::backup::restore(&good, &busy).expect_err("refused");
    assert!(err.to_string().contains("is not empty"), "{err}");
    assert_eq!(std::fs::read(busy.join("keep-me")).unwrap(), b"x");

    // An empty target directory is fine, and so is the good archive.
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    issuer::backup::restore(&good, &empty).expect("restore into an empty directory");
    assert_eq!(mode(&empty), 0o700);

    // A directory that is not an issuer's is refused by backup, and no archive appears.
    let nothing = work.path().join("nothing.tar");
    assert!(issuer::backup::backup(work.path(), &nothing, 0).is_err());
    assert!(!nothing.exists());
}

/// A PostgreSQL store is not copied by `issuer backup` (nor overwritten by `issuer restore`): both refuse
/// with a pointer to pg_dump / pg_restore and write nothing, whether the URL comes as a flag or from
/// DATABASE_URL. (No database is contacted: the refusal comes before anything is opened.)
#[test]
fn backup_and_restore_refuse_a_postgres_store_and_point_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let archive = dir.path().join("backup.tar");
    let url = "postgres://issuer@127.0.0.1:1/tickets";
    let run = |args: &[&str], env: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_issuer"));
        cmd.args(args).env_remove("DATABASE_URL");
        if let Some(u) = env {
            cmd.env("DATABASE_URL", u);
        }
        let out = cmd.output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (data_s, archive_s) = (data.to_str().unwrap(), archive.to_str().unwrap());
    for (ok, stderr) in [
        run(&["backup", "--data", data_s, "--to", archive_s, "--database-url", url], None),
        run(&["backup", "--data", data_s, "--to", archive_s], Some(url)),
    ] {
        assert!(!ok, "backup of a PostgreSQL store succeeded");
        assert!(stderr.contains("pg_dump"), "{stderr}");
        assert!(!stderr.contains("127.0.0.1:1"), "the URL is not echoed: {stderr}");
    }
    assert!(!archive.exists(), "nothing written");
    std::fs::write(&archive, b"not looked at").unwrap();
    let target = dir.path().join("restored");
    let (ok, stderr) =
        run(&["restore", "--from", archive_s, "--data", target.to_str().unwrap(), "--database-url", url], None);
    assert!(!ok);
    assert!(stderr.contains("pg_restore"), "{stderr}");
    assert!(!target.exists(), "nothing restored");
}
