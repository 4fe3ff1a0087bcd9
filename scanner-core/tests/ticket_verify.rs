//! Verification of tickets: every way a ticket can be wrong gets its own refusal, and nothing panics.

use base64::Engine as _;
use proptest::prelude::*;
use scanner_core::fixtures::TicketBuilder;
use scanner_core::qr::render::qr_version;
use scanner_core::ticket::{MAX_QR_TEXT_LEN, QR_PREFIX};
use scanner_core::verify::verify_signed;
use scanner_core::{
    base45, verify_text, EntryPolicy, IssuerKey, KeyId, Keyring, Refusal, RevocationHash, RevocationList, SignedTicket,
    Ticket, TicketId, VerifyContext,
};

const NOW: u64 = 1_750_000_000;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn key(n: u16) -> IssuerKey {
    IssuerKey::from_seed(KeyId(n), [n as u8; 32])
}

fn ring(keys: &[&IssuerKey]) -> Keyring {
    let mut ring = Keyring::new();
    for k in keys {
        ring.insert(k.public_entry(0, None)).unwrap();
    }
    ring
}

/// Ticket `id` for event 4242 naming key `kid` (type 2, add-ons 0 and 1), valid from an hour before `NOW`
/// to an hour after it if `windows`.
fn builder(id: [u8; 12], kid: u16, windows: bool) -> TicketBuilder {
    let t = TicketBuilder::new(TicketId(id), 4242).key(KeyId(kid)).ticket_type(2).addons(0b11);
    if windows {
        t.valid_from((NOW - 3600) as u32).valid_until((NOW + 3600) as u32)
    } else {
        t
    }
}

fn ticket(kid: u16, windows: bool) -> Ticket {
    builder([0xA5; 12], kid, windows).build()
}

fn ctx(ring: &Keyring) -> VerifyContext<'_> {
    VerifyContext { keyring: ring, revocations: None, event_id: 4242, now: NOW }
}

#[test]
fn round_trip_verifies() {
    let k = key(1);
    let ring = ring(&[&k]);
    for windows in [false, true] {
        let t = ticket(1, windows);
        let text = k.sign_ticket(&t).unwrap().to_qr_text();
        assert!(text.starts_with(QR_PREFIX));
        assert!(text.len() <= MAX_QR_TEXT_LEN);
        assert_eq!(verify_text(&text, &ctx(&ring)), Ok(t));
    }
}

#[test]
fn a_full_ticket_fits_qr_version_6_m() {
    let k = key(1);
    let t = builder([0xA5; 12], 1, true).event(u32::MAX).addons(u16::MAX).policy(EntryPolicy::ReEntry).build();
    let signed = k.sign_ticket(&t).unwrap();
    let version = qr_version(&signed.to_qr_text()).unwrap();
    assert!(version <= 6, "full ticket needs QR version {version}-M");
    // The same bytes in base64url (QR byte mode) need a larger code: this is why the format uses base45.
    let b64 = B64.encode(signed.to_bytes());
    assert!(qr_version(&format!("tk1:{b64}")).unwrap() > version);
}

#[test]
fn every_single_byte_mutation_is_refused() {
    let k = key(1);
    let ring = ring(&[&k]);
    let bytes = k.sign_ticket(&ticket(1, true)).unwrap().to_bytes();
    for i in 0..bytes.len() {
        for delta in [1u8, 0x80, 0xFF] {
            let mut m = bytes.clone();
            m[i] ^= delta;
            let text = format!("{QR_PREFIX}{}", base45::encode(&m));
            assert!(verify_text(&text, &ctx(&ring)).is_err(), "mutation at byte {i} accepted");
        }
    }
}

#[test]
fn every_truncation_is_refused() {
    let k = key(1);
    let ring = ring(&[&k]);
    let signed = k.sign_ticket(&ticket(1, true)).unwrap();
    let bytes = signed.to_bytes();
    for len in 0..bytes.len() {
        let text = format!("{QR_PREFIX}{}", base45::encode(&bytes[..len]));
        assert!(matches!(verify_text(&text, &ctx(&ring)), Err(Refusal::Malformed(_))), "len {len}");
    }
    let text = signed.to_qr_text();
    for len in 0..text.len() {
        assert!(verify_text(&text[..len], &ctx(&ring)).is_err(), "text len {len}");
    }
}

#[test]
fn garbage_huge_and_empty_inputs() {
    let ring = ring(&[&key(1)]);
    let c = ctx(&ring);
    assert_eq!(verify_text("", &c), Err(Refusal::NotATicket));
    assert_eq!(verify_text("https://example.com/", &c), Err(Refusal::NotATicket));
    assert!(matches!(verify_text("TK1:", &c), Err(Refusal::Malformed(_))));
    assert!(matches!(verify_text("TK1:abc", &c), Err(Refusal::Malformed(_))));
    assert!(matches!(verify_text(&"TK1:".repeat(1_000_000), &c), Err(Refusal::Malformed(_))));
    assert!(matches!(verify_text("TK1:ÄÖÜ\u{0}", &c), Err(Refusal::Malformed(_))));
}

#[test]
fn each_refusal_reason() {
    let k1 = key(1);
    let k2 = key(2);
    let only_k1 = ring(&[&k1]);

    // Unknown key: signed by a key the scanner does not have.
    let by_k2 = k2.sign_ticket(&ticket(2, false)).unwrap().to_qr_text();
    assert_eq!(verify_text(&by_k2, &ctx(&only_k1)), Err(Refusal::UnknownKey(KeyId(2))));

    // Bad signature: claims key 1 but was signed by key 2.
    let mut forged = k2.sign_ticket(&ticket(2, false)).unwrap();
    forged.ticket.key_id = KeyId(1);
    assert_eq!(verify_text(&forged.to_qr_text(), &ctx(&only_k1)), Err(Refusal::BadSignature));

    let good = k1.sign_ticket(&ticket(1, true)).unwrap();
    let text = good.to_qr_text();
    let mut c = ctx(&only_k1);
    c.event_id = 7;
    assert_eq!(verify_text(&text, &c), Err(Refusal::WrongEvent { ticket_event: 4242, expected: 7 }));

    let mut c = ctx(&only_k1);
    c.now = NOW - 3601;
    assert!(matches!(verify_text(&text, &c), Err(Refusal::NotYetValid { .. })));
    c.now = NOW + 3601;
    assert!(matches!(verify_text(&text, &c), Err(Refusal::Expired { .. })));
    c.now = NOW + 3600;
    assert!(verify_text(&text, &c).is_ok(), "window end is inclusive");

    let mut revs = RevocationList::new();
    revs.publish(&k1, [RevocationHash::of(&good.ticket.ticket_id)]);
    let mut c = ctx(&only_k1);
    c.revocations = Some(&revs);
    assert_eq!(verify_text(&text, &c), Err(Refusal::Revoked));
    let other = builder([1; 12], 1, true).sign(&k1);
    assert_eq!(verify_signed(&other, &c), Ok(()));

    // Every refusal has a distinct code and a steward message.
    let all = [
        Refusal::NotATicket,
        Refusal::Malformed("x".into()),
        Refusal::UnsupportedVersion(9),
        Refusal::UnknownKey(KeyId(1)),
        Refusal::BadSignature,
        Refusal::KeyNotActive(KeyId(1)),
        Refusal::WrongEvent { ticket_event: 1, expected: 2 },
        Refusal::NotYetValid { from: 1 },
        Refusal::Expired { until: 1 },
        Refusal::Revoked,
    ];
    let codes: std::collections::HashSet<_> = all.iter().map(Refusal::code).collect();
    assert_eq!(codes.len(), all.len());
    assert!(all.iter().all(|r| r.to_string().len() > 10));
}

#[test]
fn key_rotation_windows() {
    let old = key(1);
    let new = key(2);
    let mut ring = Keyring::new();
    ring.insert(old.public_entry(0, Some(NOW + 100))).unwrap();
    ring.insert(new.public_entry(NOW - 100, None)).unwrap();
    // New tickets are signed with the newest active key...
    assert_eq!(ring.newest_active(NOW).unwrap().key_id, KeyId(2));
    // ...while old tickets verify until the old key's window ends.
    let old_ticket = old.sign_ticket(&ticket(1, false)).unwrap().to_qr_text();
    let new_ticket = new.sign_ticket(&ticket(2, false)).unwrap().to_qr_text();
    let mut c = ctx(&ring);
    assert!(verify_text(&old_ticket, &c).is_ok());
    assert!(verify_text(&new_ticket, &c).is_ok());
    c.now = NOW + 101;
    assert_eq!(verify_text(&old_ticket, &c), Err(Refusal::KeyNotActive(KeyId(1))));
    assert!(verify_text(&new_ticket, &c).is_ok());
    c.now = NOW - 101;
    assert_eq!(verify_text(&new_ticket, &c), Err(Refusal::KeyNotActive(KeyId(2))));
    // A key cannot sign a ticket that names another key.
    assert!(old.sign_ticket(&ticket(2, false)).is_err());
}

#[test]
fn a_revocation_signature_is_not_a_ticket_signature() {
    // Sign a revocation list, then try to pass its signature off as a ticket's: domain separation refuses.
    let k = key(1);
    let ring = ring(&[&k]);
    let mut revs = RevocationList::new();
    revs.publish(&k, []);
    let sig: [u8; 64] = B64.decode(revs.delta_since(0).signature.unwrap()).unwrap().try_into().unwrap();
    let reused = SignedTicket { ticket: ticket(1, false), signature: ed25519_dalek::Signature::from_bytes(&sig) };
    assert_eq!(verify_text(&reused.to_qr_text(), &ctx(&ring)), Err(Refusal::BadSignature));
}

fn arb_ticket() -> impl Strategy<Value = Ticket> {
    (
        any::<u32>(),
        any::<[u8; 12]>(),
        any::<u8>(),
        any::<u16>(),
        any::<bool>(),
        any::<Option<u32>>(),
        any::<Option<u32>>(),
    )
        .prop_map(|(event_id, id, ticket_type, addons, reentry, valid_from, valid_until)| {
            let mut t = TicketBuilder::new(TicketId(id), event_id)
                .key(KeyId(3))
                .ticket_type(ticket_type)
                .addons(addons)
                .policy(if reentry { EntryPolicy::ReEntry } else { EntryPolicy::SingleEntry });
            if let Some(from) = valid_from {
                t = t.valid_from(from);
            }
            if let Some(until) = valid_until {
                t = t.valid_until(until);
            }
            t.build()
        })
}

proptest! {
    #[test]
    fn any_ticket_round_trips_through_qr_text(t in arb_ticket()) {
        let k = key(3);
        let text = k.sign_ticket(&t).unwrap().to_qr_text();
        let parsed = SignedTicket::from_qr_text(&text).unwrap();
        prop_assert_eq!(&parsed.ticket, &t);
        prop_assert!(parsed.signature_is_valid(&k.verifying_key()));
        prop_assert!(qr_version(&text).unwrap() <= 6);
    }

    #[test]
    fn arbitrary_text_never_panics(s in ".{0,300}") {
        let ring = ring(&[&key(1)]);
        let _ = verify_text(&s, &ctx(&ring));
        let _ = verify_text(&format!("{QR_PREFIX}{s}"), &ctx(&ring));
    }

    #[test]
    fn arbitrary_bytes_never_verify(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        let ring = ring(&[&key(1)]);
        let text = format!("{QR_PREFIX}{}", base45::encode(&bytes));
        prop_assert!(verify_text(&text, &ctx(&ring)).is_err());
    }
}
