//! A device's trust material cannot be rolled back, and a device without an event does not scan.

mod redemption_support;

use redemption_support::*;
use scanner_core::error::{DeviceKind, Error, RevocationKind};
use scanner_core::redemption::decision::ScanInput;
use scanner_core::redemption::{Device, DeviceId, ScanKind};
use scanner_core::{EntryPolicy, RevocationHash, RevocationList};

fn device() -> Device {
    let (_, ring) = issuer();
    let mut d = Device::new(DeviceId(0x1234), "door").expect("device");
    d.set_keyring(&ring.to_json()).expect("keyring");
    d
}

#[test]
fn a_device_without_an_event_refuses_to_scan() {
    let (key, _) = issuer();
    let mut d = device();
    let text = qr(&key, &ticket(1, EntryPolicy::SingleEntry, EVENT));
    let input = ScanInput { text: &text, kind: ScanKind::Entry, override_reason: None };
    assert!(matches!(d.scan(input, "North", NOW * 1000), Err(Error::Device(DeviceKind::NoEvent))));
    assert_eq!(d.record_count(), 0);
    d.set_event(EVENT + 1);
    let input = ScanInput { text: &text, kind: ScanKind::Entry, override_reason: None };
    let scan = d.scan(input, "North", NOW * 1000).expect("scan");
    assert!(!scan.verdict.is_admit(), "{:?}", scan.verdict);
}

#[test]
fn older_or_conflicting_revocation_lists_are_refused_and_the_held_one_stays() {
    let (key, _) = issuer();
    let mut issuer_list = RevocationList::new();
    issuer_list.publish_at(&key, NOW, [RevocationHash::of(&ticket_id(1))]);
    let v1 = issuer_list.to_json();
    let v1_list = issuer_list.clone();
    issuer_list.publish_at(&key, NOW + 10, [RevocationHash::of(&ticket_id(2))]);
    let v2 = issuer_list.to_json();

    let mut d = device();
    d.set_event(EVENT);
    d.set_revocations(&v2).expect("v2");
    assert_eq!(d.revocations_version(), 2);

    // The whole older list, and the older list as a delta: rollback.
    match d.set_revocations(&v1) {
        Err(Error::Revocation(RevocationKind::Rollback { have: 2, offered: 1 })) => {}
        other => panic!("expected a rollback refusal, got {other:?}"),
    }
    match d.apply_revocation_delta(&v1) {
        Err(Error::Revocation(RevocationKind::Rollback { have: 2, offered: 1 })) => {}
        other => panic!("expected a rollback refusal, got {other:?}"),
    }
    // The same version with other content (another v2 on top of the same v1): conflict.
    let mut fork = v1_list;
    fork.publish_at(&key, NOW + 20, [RevocationHash::of(&ticket_id(3))]);
    match d.set_revocations(&fork.to_json()) {
        Err(Error::Revocation(RevocationKind::Conflict { version: 2 })) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    match d.apply_revocation_delta(&fork.delta_since(1).to_json()) {
        Err(Error::Revocation(RevocationKind::Conflict { version: 2 })) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Nothing changed: ticket 2 is still revoked, ticket 3 is not.
    assert_eq!(d.revocations_version(), 2);
    let list = d.revocations().expect("list");
    assert!(list.contains(&ticket_id(2)) && !list.contains(&ticket_id(3)));
    // The same list again, and "nothing new", are fine; a newer one is taken.
    d.set_revocations(&v2).expect("same list");
    d.apply_revocation_delta(&issuer_list.delta_since(2).to_json()).expect("nothing new");
    issuer_list.publish_at(&key, NOW + 30, [RevocationHash::of(&ticket_id(4))]);
    d.apply_revocation_delta(&issuer_list.delta_since(2).to_json()).expect("v3");
    assert_eq!(d.revocations_version(), 3);
}
