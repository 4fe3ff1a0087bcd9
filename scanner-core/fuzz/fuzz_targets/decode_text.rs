//! Fuzzes the QR-text decoder: any input must give a verdict without panicking, and whatever parses must
//! re-encode to exactly the same text (one encoding per ticket, so no tampered variant can pass as valid).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanner_core::{IssuerKey, KeyId, Keyring, SignedTicket, VerifyContext};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(signed) = SignedTicket::from_qr_text(&text) {
        assert_eq!(signed.to_qr_text(), text, "a parsed ticket must re-encode to its own text");
    }
    let key = IssuerKey::from_seed(KeyId(1), [7; 32]);
    let mut keyring = Keyring::new();
    let _ = keyring.insert(key.public_entry(0, None));
    let ctx = VerifyContext { keyring: &keyring, revocations: None, event_id: 1, now: 1_700_000_000 };
    let _ = scanner_core::verify_text(&text, &ctx);
    let _ = scanner_core::base45::decode(&text);
});
