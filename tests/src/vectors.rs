//! Test vectors for the ticket format: fixed test-only keys, payload fields, the exact QR text, and negative
//! cases with the verdict every implementation must reach. Ed25519 signatures are deterministic, so the
//! same seeds always give the same bytes.

use scanner_core::fixtures::TicketBuilder;
use scanner_core::ticket::QR_PREFIX;
use scanner_core::{
    base45, EntryPolicy, IssuerKey, KeyId, Keyring, RevocationHash, RevocationList, SignedTicket, Ticket, TicketId,
};
use serde_json::{json, Value};

/// The scan time every vector is judged at.
pub const NOW: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
/// The event the scanner admits to.
pub const EVENT_ID: u32 = 20_260_101;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Keys {
    current: IssuerKey,
    retired: IssuerKey,
    stranger: IssuerKey,
}

fn keys() -> Keys {
    Keys {
        current: IssuerKey::from_seed(KeyId(2), [0x11; 32]),
        retired: IssuerKey::from_seed(KeyId(1), [0x22; 32]),
        // Not in the keyring: a forger's key.
        stranger: IssuerKey::from_seed(KeyId(9), [0x33; 32]),
    }
}

fn keyring(k: &Keys) -> Keyring {
    let mut ring = Keyring::new();
    // Key 1 was rotated out a day before the scan time; key 2 is current.
    let _ = ring.insert(k.retired.public_entry(1_735_689_600, Some(NOW - 86_400)));
    let _ = ring.insert(k.current.public_entry(NOW - 30 * 86_400, None));
    ring
}

/// Ticket `[id_byte; 12]` for the vectors' event: type 1, add-ons 0 and 2, single entry, no window. Signing
/// it ([`TicketBuilder::sign`]) names the signing key.
fn base_ticket(id_byte: u8) -> TicketBuilder {
    TicketBuilder::new(TicketId([id_byte; 12]), EVENT_ID).ticket_type(1).addons(0b0000_0000_0000_0101)
}

fn fields(t: &Ticket) -> Value {
    let mut fields = json!({
        "version": 1,
        "key_id": t.key_id.0,
        "event_id": t.event_id,
        "ticket_id_hex": t.ticket_id.to_hex(),
        "ticket_type": t.ticket_type,
        "addons": t.addons,
        "policy": t.policy,
        "valid_from": t.valid_from,
        "valid_until": t.valid_until,
    });
    // Only on tickets that carry flag bit 3, so the vectors from before it existed stay byte-identical.
    if t.payment_due {
        fields["payment_due"] = json!(true);
    }
    fields
}

fn signed_vector(name: &str, note: &str, signed: &SignedTicket, expected: Value) -> Value {
    json!({
        "name": name,
        "note": note,
        "fields": fields(&signed.ticket),
        "payload_hex": hex(&signed.ticket.to_bytes()),
        "signature_hex": hex(&signed.signature.to_bytes()),
        "qr_text": signed.to_qr_text(),
        "expected": expected,
    })
}

fn raw_vector(name: &str, note: &str, qr_text: String, reason: &str) -> Value {
    json!({ "name": name, "note": note, "qr_text": qr_text, "expected": {"valid": false, "reason": reason} })
}

fn refused(reason: &str) -> Value {
    json!({"valid": false, "reason": reason})
}

/// All vectors as one JSON document.
pub fn generate() -> Value {
    let k = keys();
    let ring = keyring(&k);
    let valid = json!({"valid": true});
    // Every vector ticket names the key that signs it (the forgery is made by editing afterwards).
    let basic = base_ticket(0x01).sign(&k.current);
    let windowed = base_ticket(0x02)
        .policy(EntryPolicy::ReEntry)
        .valid_from((NOW - 3_600) as u32)
        .valid_until((NOW + 3_600) as u32)
        .sign(&k.current);
    let full = base_ticket(0xFE)
        .ticket_type(255)
        .addons(u16::MAX)
        .policy(EntryPolicy::ReEntry)
        .valid_from(0)
        .valid_until(u32::MAX)
        .sign(&k.current);
    let revoked = base_ticket(0x03).sign(&k.current);
    let mut revocations = RevocationList::new();
    revocations.publish_at(&k.current, NOW, [RevocationHash::of(&revoked.ticket.ticket_id)]);

    let mut tampered = basic.to_bytes();
    tampered[10] ^= 0x01; // one bit of the ticket id
    let wrong_key_claim = {
        let mut s = base_ticket(0x04).sign(&k.stranger);
        s.ticket.key_id = KeyId(2);
        s
    };
    let mut version2 = basic.to_bytes();
    version2[0] = 2;
    let unpaid = base_ticket(0x0A).payment_due().sign(&k.current);
    let mut stripped = unpaid.to_bytes();
    stripped[1] &= !0x08; // clear "payment due at the door"
    let mut flag4 = basic.to_bytes();
    flag4[1] |= 0x10;

    let tickets = vec![
        signed_vector("basic", "single entry, no validity window", &basic, valid.clone()),
        signed_vector(
            "windowed_reentry",
            "re-entry allowed, valid one hour either side of NOW",
            &windowed,
            valid.clone(),
        ),
        signed_vector("largest", "every optional field present: the largest ticket", &full, valid),
        signed_vector("revoked", "its ticket id hash is in the revocation list", &revoked, refused("revoked")),
        signed_vector(
            "wrong_event",
            "valid ticket for another event",
            &base_ticket(0x05).event(EVENT_ID + 1).sign(&k.current),
            refused("wrong_event"),
        ),
        signed_vector(
            "not_yet_valid",
            "valid_from is after NOW",
            &base_ticket(0x06).valid_from((NOW + 60) as u32).sign(&k.current),
            refused("not_yet_valid"),
        ),
        signed_vector(
            "expired",
            "valid_until is before NOW",
            &base_ticket(0x07).valid_until((NOW - 60) as u32).sign(&k.current),
            refused("expired"),
        ),
        signed_vector(
            "retired_key",
            "signed by key 1, whose window ended before NOW",
            &base_ticket(0x08).sign(&k.retired),
            refused("key_not_active"),
        ),
        signed_vector(
            "unknown_key",
            "signed by key 9, which is not in the keyring",
            &base_ticket(0x09).sign(&k.stranger),
            refused("unknown_key"),
        ),
        signed_vector(
            "forged_signature",
            "claims key 2, signed by another key",
            &wrong_key_claim,
            refused("bad_signature"),
        ),
        raw_vector(
            "tampered_payload",
            "basic with one bit of the ticket id flipped",
            format!("{QR_PREFIX}{}", base45::encode(&tampered)),
            "bad_signature",
        ),
        raw_vector(
            "truncated",
            "basic without its last signature byte",
            format!("{QR_PREFIX}{}", base45::encode(&basic.to_bytes()[..basic.to_bytes().len() - 1])),
            "malformed",
        ),
        raw_vector(
            "future_version",
            "basic with format version byte 2",
            format!("{QR_PREFIX}{}", base45::encode(&version2)),
            "unsupported_version",
        ),
        raw_vector("bad_base45", "characters outside the base45 alphabet", "TK1:abc".into(), "malformed"),
        raw_vector("base45_out_of_range", "a base45 group above 65535", "TK1:GGW".into(), "malformed"),
        raw_vector("not_a_ticket", "a URL, not a ticket", "HTTPS://EXAMPLE.COM/".into(), "not_a_ticket"),
        raw_vector("empty", "empty text", String::new(), "not_a_ticket"),
        signed_vector(
            "unpaid_at_door",
            "flag bit 3: payment due at the door (valid; the scanner asks for the amount before admitting)",
            &unpaid,
            json!({"valid": true}),
        ),
        raw_vector(
            "payment_flag_stripped",
            "unpaid_at_door with flag bit 3 cleared",
            format!("{QR_PREFIX}{}", base45::encode(&stripped)),
            "bad_signature",
        ),
        raw_vector(
            "unknown_flag_bit_4",
            "basic with flag bit 4 set",
            format!("{QR_PREFIX}{}", base45::encode(&flag4)),
            "malformed",
        ),
    ];

    let key_json = |key: &IssuerKey, seed: u8| json!({"kid": key.key_id().0, "seed_hex": hex(&[seed; 32]), "public_key_hex": hex(key.verifying_key().as_bytes())});
    json!({
        "format": "offline-tickets/test-vectors/v1",
        "warning": "TEST-ONLY keys: these seeds are public. Never use them for real tickets.",
        "now": NOW,
        "event_id": EVENT_ID,
        "keys": [key_json(&k.retired, 0x22), key_json(&k.current, 0x11), key_json(&k.stranger, 0x33)],
        "keyring": serde_json::from_str::<Value>(&ring.to_json()).unwrap_or(Value::Null),
        "revocations": serde_json::from_str::<Value>(&revocations.to_json()).unwrap_or(Value::Null),
        "tickets": tickets,
    })
}

/// The vectors file's exact content.
pub fn generate_json() -> String {
    serde_json::to_string_pretty(&generate()).unwrap_or_default() + "\n"
}
