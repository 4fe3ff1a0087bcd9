//! The checked-in test vectors are exactly what the implementation produces, and every vector's verdict is
//! what scanner-core decides. A second implementation (browser, Worker) proves agreement by passing the same.

use scanner_core::verify::verify_text;
use scanner_core::{Keyring, RevocationList, SignedTicket, VerifyContext};
use serde_json::Value;

fn vectors_file() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/tickets.json")).expect("vectors file")
}

#[test]
fn checked_in_vectors_match_the_generator() {
    assert!(
        vectors_file() == tests::vectors::generate_json(),
        "tests/vectors/tickets.json is stale: run `cargo run -p tests --bin gen-vectors` and review the diff"
    );
}

#[test]
fn every_vector_gets_its_expected_verdict() {
    let v: Value = serde_json::from_str(&vectors_file()).unwrap();
    let keyring = Keyring::from_json(&v["keyring"].to_string()).unwrap();
    let revocations = RevocationList::from_json(&v["revocations"].to_string(), &keyring).unwrap();
    let ctx = VerifyContext {
        keyring: &keyring,
        revocations: Some(&revocations),
        event_id: v["event_id"].as_u64().unwrap() as u32,
        now: v["now"].as_u64().unwrap(),
    };
    let tickets = v["tickets"].as_array().unwrap();
    assert!(tickets.len() >= 15);
    let mut valid = 0;
    for t in tickets {
        let name = t["name"].as_str().unwrap();
        let text = t["qr_text"].as_str().unwrap();
        let verdict = verify_text(text, &ctx);
        let expected = &t["expected"];
        if expected["valid"].as_bool().unwrap() {
            assert!(verdict.is_ok(), "{name}: expected valid, got {verdict:?}");
            valid += 1;
        } else {
            let reason = expected["reason"].as_str().unwrap();
            assert_eq!(verdict.as_ref().err().map(|r| r.code()), Some(reason), "{name}");
        }
        // Where fields are given, the payload bytes are exactly their encoding.
        if let Some(payload) = t["payload_hex"].as_str() {
            let signed = SignedTicket::from_qr_text(text).unwrap();
            let hex: String = signed.ticket.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, payload, "{name}");
            assert_eq!(t["fields"]["ticket_id_hex"].as_str().unwrap(), signed.ticket.ticket_id.to_hex());
            assert_eq!(t["fields"]["event_id"].as_u64().unwrap(), u64::from(signed.ticket.event_id));
        }
    }
    assert_eq!(valid, 4);
    let unpaid = tickets.iter().find(|t| t["name"] == "unpaid_at_door").expect("unpaid vector");
    let signed = SignedTicket::from_qr_text(unpaid["qr_text"].as_str().unwrap()).unwrap();
    assert!(signed.ticket.payment_due);
    assert_eq!(unpaid["fields"]["payment_due"], true);
}
