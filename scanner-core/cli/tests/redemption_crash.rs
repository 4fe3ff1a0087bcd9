//! Crash durability: a scanner killed with SIGKILL right after it showed "admit" still has that scan
//! after restart.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use scanner_core::fixtures::*;
use scanner_core::redemption::store::RedemptionLog;
use scanner_core::redemption::TicketRef;
use scanner_core::EntryPolicy;

const SCANNER: &str = env!("CARGO_BIN_EXE_scanner");

#[test]
fn an_admit_survives_kill_9_right_after_it_was_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("log");
    let (key, ring) = issuer();
    let keyring = dir.path().join("keyring.json");
    std::fs::write(&keyring, ring.to_json()).expect("write keyring");
    let status = Command::new(SCANNER)
        .args(["--data", data.to_str().expect("utf-8 path"), "init", "--name", "door-1", "--event"])
        .arg(EVENT.to_string())
        .arg("--keyring")
        .arg(&keyring)
        .stdout(Stdio::null())
        .status()
        .expect("run scanner init");
    assert!(status.success());

    for round in 0..3u64 {
        // The door loop: one ticket per line, verdicts on stdout.
        let mut child = Command::new(SCANNER)
            .args(["--data", data.to_str().expect("utf-8 path"), "scan", "--stdin", "--gate", "North", "--now"])
            .arg(NOW.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn scanner");
        let mut stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut admitted = Vec::new();
        for i in 0..4 {
            let n = round * 10 + i;
            writeln!(stdin, "{}", qr(&key, &ticket(n, EntryPolicy::SingleEntry, EVENT))).expect("write");
            stdin.flush().expect("flush");
            let mut line = String::new();
            stdout.read_line(&mut line).expect("verdict");
            assert!(line.starts_with("ADMIT"), "{line}");
            admitted.push(n);
        }
        // Killed while waiting for the next ticket, right after the last admit was shown.
        child.kill().expect("kill -9");
        child.wait().expect("reap");

        let log = RedemptionLog::open(&data).expect("reopen after crash");
        assert_eq!(log.record_count() as u64, (round + 1) * 4);
        for n in admitted {
            assert_eq!(log.index().history(&TicketRef::of(&ticket_id(n))).len(), 1, "ticket {n} lost");
        }
    }

    // And the restarted scanner refuses the admitted ticket.
    let out = Command::new(SCANNER)
        .args(["--data", data.to_str().expect("utf-8 path"), "scan", "--gate", "South", "--now"])
        .arg((NOW + 60).to_string())
        .arg(qr(&key, &ticket(23, EntryPolicy::SingleEntry, EVENT)))
        .output()
        .expect("scan");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ALREADY USED"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn cli_report_and_export_merge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, ring) = issuer();
    let keyring = dir.path().join("keyring.json");
    std::fs::write(&keyring, ring.to_json()).expect("write keyring");
    let text = qr(&key, &ticket(1, EntryPolicy::SingleEntry, EVENT));
    let mut exports = Vec::new();
    for name in ["a", "b"] {
        let data = dir.path().join(name);
        let run =
            |args: &[&str]| Command::new(SCANNER).arg("--data").arg(&data).args(args).output().expect("run scanner");
        let event = EVENT.to_string();
        assert!(run(&["init", "--name", name, "--event", &event, "--keyring", keyring.to_str().expect("path")])
            .status
            .success());
        let out = run(&["scan", "--gate", name, "--now", &NOW.to_string(), "--json", &text]);
        assert_eq!(out.status.code(), Some(0));
        let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json verdict");
        assert_eq!(verdict["verdict"], "admit");
        let file = dir.path().join(format!("{name}.log"));
        assert!(run(&["export", file.to_str().expect("path")]).status.success());
        exports.push(file);
    }
    let out = Command::new(SCANNER)
        .arg("--data")
        .arg(dir.path().join("a"))
        .args(["report", "--json", "--merge"])
        .arg(&exports[1])
        .output()
        .expect("report");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["admitted"], 2);
    assert_eq!(report["conflicts"].as_array().map(Vec::len), Some(1));
    assert_eq!(report["conflicts"][0]["scans"].as_array().map(Vec::len), Some(2));
    let table = Command::new(SCANNER).arg("--data").arg(dir.path().join("b")).arg("report").output().expect("report");
    assert!(String::from_utf8_lossy(&table.stdout).contains("Admitted per gate"));
    // Not set up: a clear error and exit code 2.
    let out =
        Command::new(SCANNER).arg("--data").arg(dir.path().join("none")).args(["scan", "x"]).output().expect("scan");
    assert_eq!(out.status.code(), Some(2));
}
