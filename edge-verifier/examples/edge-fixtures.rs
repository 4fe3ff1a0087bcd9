//! Writes the test fixtures for the Worker's end-to-end tests: a keyring, a signed revocation list, real
//! signed tickets (good, revoked, forged, wrong event, re-entry), the good tickets' references in the
//! redemption log, an attendee manifest for them, and a scanner token with its hash.
//! Deterministic (fixed seeds), so the same fixtures come out on every machine. Tickets come from
//! scanner-core's shared ticket builder (`fixtures::TicketBuilder`); that is why this is an example target:
//! it gets the dev-dependency with the `test-support` feature, which the Worker's build never has.
//!
//! Usage: cargo run -p edge-verifier --example edge-fixtures -- OUT.json

use std::process::ExitCode;

use scanner_core::fixtures::TicketBuilder;
use scanner_core::manifest::{seal_entry, Manifest, ManifestEntry};
use scanner_core::redemption::TicketRef;
use scanner_core::{EntryPolicy, IssuerKey, KeyId, Keyring, RevocationHash, RevocationList, TicketId};

const EVENT: u32 = 4242;
/// Test-only token; its SHA-256 goes into the Worker's SCANNER_TOKEN_HASHES binding.
const TOKEN: &str = "edge-test-device-token";

fn ticket_id(id: u32) -> TicketId {
    let mut ticket_id = [0u8; 12];
    ticket_id[..4].copy_from_slice(b"edge");
    ticket_id[8..].copy_from_slice(&id.to_be_bytes());
    TicketId(ticket_id)
}

/// The QR text of ticket `id` (type 1, add-on 1) for `event`, signed by `key`.
fn ticket(key: &IssuerKey, id: u32, event: u32, policy: EntryPolicy) -> String {
    TicketBuilder::new(ticket_id(id), event).ticket_type(1).addons(0b10).policy(policy).qr(key)
}

fn run(out: &str) -> Result<(), String> {
    let issuer = IssuerKey::from_seed(KeyId(1), [0x11; 32]);
    // Same key id, different secret: what a forger without the issuer's key produces.
    let forger = IssuerKey::from_seed(KeyId(1), [0x22; 32]);
    let mut keyring = Keyring::new();
    keyring.insert(issuer.public_entry(0, None)).map_err(|e| e.to_string())?;

    let good: Vec<String> = (1..=20).map(|i| ticket(&issuer, i, EVENT, EntryPolicy::SingleEntry)).collect();
    // Distinct tickets for scripts/edge-bench.sh (each admitted once).
    let bench: Vec<String> = (10_000..12_000).map(|i| ticket(&issuer, i, EVENT, EntryPolicy::SingleEntry)).collect();
    let revoked_id = 900;
    let revoked = ticket(&issuer, revoked_id, EVENT, EntryPolicy::SingleEntry);
    let mut revocations = RevocationList::new();
    revocations.publish_at(&issuer, 1_750_000_000, [RevocationHash::of(&ticket_id(revoked_id))]);
    // The issuer's next version, which also revokes ticket 901: the edge tests' issuer serves it while the
    // configuration still pins version 1 (no rollback to it once version 2 was seen).
    let mut revocations_v2 = revocations.clone();
    revocations_v2.publish_at(&issuer, 1_750_000_100, [RevocationHash::of(&ticket_id(901))]);

    // Holder names for the good tickets, as the issuer would publish them. Fixed nonces keep the fixtures
    // deterministic; each entry has its own key (derived from its ticket id), so no key sees a nonce twice.
    let mut manifest = Manifest::new(EVENT, 1_750_000_000);
    for i in 1..=20u32 {
        let entry = ManifestEntry { ticket_type: 1, addons: 0b10, holder_name: format!("Holder {i}"), due: None };
        let mut nonce = [0u8; 12];
        nonce[8..].copy_from_slice(&i.to_be_bytes());
        manifest.entries.push(seal_entry(EVENT, &ticket_id(i), &entry, nonce).map_err(|e| e.to_string())?);
    }
    let good_refs: Vec<String> = (1..=20).map(|i| TicketRef::of(&ticket_id(i)).to_hex()).collect();

    let device_tokens: Vec<String> = (1..=8).map(|i| format!("{TOKEN}-{i}")).collect();
    let fixtures = serde_json::json!({
        "event": EVENT,
        "keyring": keyring.to_json(),
        "revocations": revocations.to_json(),
        "revocations_v2": revocations_v2.to_json(),
        "token": TOKEN,
        // One token per device: a device's records are taken only under the id bound to its token.
        "device_tokens": device_tokens,
        "token_hash": std::iter::once(TOKEN.to_owned())
            .chain(device_tokens.iter().cloned())
            .map(|t| edge_verifier::auth::token_hash_hex(&t))
            .collect::<Vec<_>>()
            .join(","),
        "manifest": manifest.to_json(),
        "good_refs": good_refs,
        "tickets": {
            "good": good,
            "reentry": ticket(&issuer, 500, EVENT, EntryPolicy::ReEntry),
            "revoked": revoked,
            "revoked_in_v2": ticket(&issuer, 901, EVENT, EntryPolicy::SingleEntry),
            "forged": ticket(&forger, 600, EVENT, EntryPolicy::SingleEntry),
            "wrong_event": ticket(&issuer, 700, EVENT + 1, EntryPolicy::SingleEntry),
            "bench": bench,
        },
    });
    let text = serde_json::to_string_pretty(&fixtures).map_err(|e| e.to_string())?;
    std::fs::write(out, text).map_err(|e| format!("cannot write {out}: {e}"))
}

fn main() -> ExitCode {
    let Some(out) = std::env::args().nth(1) else {
        eprintln!("usage: edge-fixtures OUT.json");
        return ExitCode::from(2);
    };
    match run(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edge-fixtures: {e}");
            ExitCode::FAILURE
        }
    }
}
