//! `scanner scan` of a ticket whose payment is due at the door: "UNPAID — collect 49.00 EUR" with exit code
//! 3 (not admitted, nothing passed), `--paid` admits and records the amount, a rescan is already used, and
//! `scanner report` shows the money collected at the door, as a table and as JSON.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use scanner_core::fixtures::*;
use scanner_core::manifest::{seal_entry, Manifest, ManifestEntry, Money};
use scanner_core::{EntryPolicy, Ticket};

const SCANNER: &str = env!("CARGO_BIN_EXE_scanner");

fn run(data: &Path, args: &[&str]) -> Output {
    Command::new(SCANNER).arg("--data").arg(data).args(args).output().expect("run scanner")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A device set up offline from files: keyring and a manifest holding `entries`.
fn device(dir: &Path, entries: &[(&Ticket, Option<Money>)]) -> PathBuf {
    let (_, ring) = issuer();
    let keyring = dir.join("keyring.json");
    std::fs::write(&keyring, ring.to_json()).expect("write keyring");
    let mut m = Manifest::new(EVENT, NOW);
    for (i, (t, due)) in entries.iter().enumerate() {
        let e =
            ManifestEntry { ticket_type: t.ticket_type, addons: t.addons, holder_name: "Ada".into(), due: due.clone() };
        m.entries.push(seal_entry(EVENT, &t.ticket_id, &e, [i as u8; 12]).expect("seal"));
    }
    let manifest = dir.join("manifest.json");
    std::fs::write(&manifest, m.to_json()).expect("write manifest");
    let data = dir.join("door");
    let event = EVENT.to_string();
    let out = run(
        &data,
        &[
            "init",
            "--name",
            "door",
            "--event",
            &event,
            "--keyring",
            keyring.to_str().expect("path"),
            "--manifest",
            manifest.to_str().expect("path"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    data
}

#[test]
fn unpaid_ticket_exits_3_with_the_amount_then_paid_admits_and_the_report_shows_the_money() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, _) = issuer();
    let due = Ticket { payment_due: true, ..ticket(1, EntryPolicy::SingleEntry, EVENT) };
    let unknown = Ticket { payment_due: true, ..ticket(2, EntryPolicy::SingleEntry, EVENT) };
    let data = device(dir.path(), &[(&due, Some(Money::new(4_900, "EUR").expect("money")))]);
    let (qr_due, qr_unknown) = (qr(&key, &due), qr(&key, &unknown));
    let now = NOW.to_string();

    let asked = run(&data, &["scan", &qr_due, "--gate", "North", "--now", &now]);
    assert_eq!(asked.status.code(), Some(3), "{}", text(&asked));
    let line = String::from_utf8_lossy(&asked.stdout);
    assert!(line.starts_with("UNPAID — collect 49.00 EUR — Ada"), "{line}");

    let json = run(&data, &["scan", &qr_due, "--gate", "North", "--now", &now, "--json"]);
    assert_eq!(json.status.code(), Some(3), "{}", text(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json line");
    assert_eq!(v["verdict"], "payment_due");
    assert_eq!(v["due"]["minor"], 4_900);
    assert_eq!(v["due"]["currency"], "EUR");
    assert_eq!(v["due"]["text"], "49.00 EUR");

    // --paid cannot be combined with an exit or an override.
    let bad = run(&data, &["scan", &qr_due, "--paid", "--exit"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));

    let paid = run(&data, &["scan", &qr_due, "--gate", "North", "--now", &now, "--paid", "--json"]);
    assert_eq!(paid.status.code(), Some(0), "{}", text(&paid));
    let v: serde_json::Value = serde_json::from_slice(&paid.stdout).expect("json line");
    assert_eq!(v["verdict"], "admit");
    assert_eq!(v["paid_at_door"], true);
    assert_eq!(v["collected"]["text"], "49.00 EUR");
    assert_eq!(v["path"], "offline");

    let rescan = run(&data, &["scan", &qr_due, "--gate", "South", "--now", &now]);
    assert_eq!(rescan.status.code(), Some(1), "{}", text(&rescan));
    assert!(String::from_utf8_lossy(&rescan.stdout).starts_with("ALREADY USED"), "{}", text(&rescan));

    // Not in this device's manifest: payment is still asked for, the amount is unknown.
    let asked = run(&data, &["scan", &qr_unknown, "--gate", "South", "--now", &now]);
    assert_eq!(asked.status.code(), Some(3), "{}", text(&asked));
    assert!(String::from_utf8_lossy(&asked.stdout).contains("amount not in this scanner's manifest"));
    let paid = run(&data, &["scan", &qr_unknown, "--gate", "South", "--now", &now, "--paid"]);
    assert_eq!(paid.status.code(), Some(0), "{}", text(&paid));
    assert!(String::from_utf8_lossy(&paid.stdout).contains("PAID AT THE DOOR"), "{}", text(&paid));

    let report = run(&data, &["report", "--json"]);
    assert!(report.status.success(), "{}", text(&report));
    let r: serde_json::Value = serde_json::from_slice(&report.stdout).expect("report json");
    assert_eq!(r["admitted"], 2);
    assert_eq!(r["paid_at_door"], 2);
    assert_eq!(r["paid_at_door_amount_unknown"], 1);
    assert_eq!(r["payment_requests"], 3);
    let eur = serde_json::json!({"minor": 4_900, "currency": "EUR", "text": "49.00 EUR"});
    assert_eq!(r["collected"], serde_json::json!([eur]));
    assert_eq!(r["collected_by_gate"], serde_json::json!({"North": [eur]}));
    let table = run(&data, &["report"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("Collected at the door: 2 paid admissions (1 without a recorded amount)"), "{table}");
    assert!(table.lines().any(|l| l.trim_start().starts_with("North") && l.ends_with("49.00 EUR")), "{table}");
}
