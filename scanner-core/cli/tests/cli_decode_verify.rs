//! The `scanner decode` and `scanner verify` commands, run as a steward's script would run them.

use std::process::Command;

use scanner_core::fixtures::{issuer, plain_ticket, qr, ticket_id, EVENT};
use scanner_core::qr::render;
use scanner_core::{RevocationHash, RevocationList};
use serde_json::Value;

const SCANNER: &str = env!("CARGO_BIN_EXE_scanner");

#[test]
fn decode_json_prints_one_line_per_image_in_order_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = issuer();
    let text = qr(&key, &plain_ticket(1, EVENT));
    let png = dir.path().join("ticket.png");
    std::fs::write(&png, render::png(&text, 6).unwrap()).unwrap();
    let blank = dir.path().join("blank.png");
    image::GrayImage::from_pixel(64, 64, image::Luma([255])).save(&blank).unwrap();
    let not_image = dir.path().join("notes.txt");
    std::fs::write(&not_image, "hello").unwrap();

    let out = Command::new(SCANNER).args(["decode", "--json"]).arg(&png).arg(&blank).arg(&not_image).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["file"], png.display().to_string());
    assert_eq!(lines[0]["text"], text);
    assert!(lines[0]["ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(lines[1]["text"], Value::Null);
    assert_eq!(lines[2]["text"], Value::Null);
    assert_eq!(lines[2]["file"], not_image.display().to_string());
}

#[test]
fn verify_prints_the_verdict_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (key, keyring) = issuer();
    let keyring_path = dir.path().join("keyring.json");
    std::fs::write(&keyring_path, keyring.to_json()).unwrap();
    let mut revocations = RevocationList::new();
    revocations.publish(&key, [RevocationHash::of(&ticket_id(2))]);
    let revocations_path = dir.path().join("revocations.json");
    std::fs::write(&revocations_path, revocations.to_json()).unwrap();

    let good = qr(&key, &plain_ticket(1, EVENT));
    let revoked = qr(&key, &plain_ticket(2, EVENT));
    let png = dir.path().join("good.png");
    std::fs::write(&png, render::png(&good, 6).unwrap()).unwrap();

    let verify = |args: &[&str]| {
        let out = Command::new(SCANNER)
            .arg("verify")
            .arg("--keyring")
            .arg(&keyring_path)
            .arg("--revocations")
            .arg(&revocations_path)
            .args(args)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };

    let (code, out) = verify(&["--event", &EVENT.to_string(), &good]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("VALID"), "{out}");
    let (code, out) = verify(&["--event", &EVENT.to_string(), "--image", png.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = verify(&["--event", &EVENT.to_string(), &revoked]);
    assert_eq!(code, Some(1));
    assert!(out.starts_with("REFUSED: Revoked"), "{out}");
    let (code, out) = verify(&["--event", &(EVENT + 1).to_string(), "--json", &good]);
    assert_eq!(code, Some(1));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["reason"], "wrong_event");
    let mut forged = good.clone();
    forged.replace_range(20..21, if &good[20..21] == "A" { "B" } else { "A" });
    let (code, out) = verify(&["--event", &EVENT.to_string(), &forged]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("REFUSED"), "{out}");

    // A missing keyring is an error (exit 2), not a refusal.
    let out = Command::new(SCANNER)
        .args(["verify", "--event", &EVENT.to_string(), "--keyring", "/nonexistent.json", &good])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read keyring"));

    // Without an event nothing is verified: any event's ticket would pass.
    let (code, out) = verify(&[&good]);
    assert_eq!(code, Some(2), "{out}");
    assert!(!out.contains("VALID"), "{out}");
}
