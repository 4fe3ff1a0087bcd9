//! Sync: hostile and damaged messages are rejected and leave the log unchanged; resumed syncs are cheap.

mod redemption_support;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ObjType, ReadDoc, ScalarValue, ROOT};
use redemption_support::*;
use scanner_core::error::{Error, LogKind, SyncKind};
use scanner_core::redemption::document::{decode_peer_state, encode_peer_state, serve_sync};
use scanner_core::redemption::{DeviceId, RedemptionDoc, ScanRecord, SyncChannel};

/// Everything observable about a log and a sync state, to check that a rejection changed nothing.
fn snapshot(doc: &RedemptionDoc, state: &sync::State) -> (Vec<automerge::ChangeHash>, Vec<u8>, Vec<u8>, usize) {
    (doc.heads(), doc.save(), encode_peer_state(state), doc.record_count())
}

/// A server that already holds device 1's log, and device 2 with unsynced records; returns the
/// server, its state for device 2 after the handshake, and the message from device 2 carrying changes.
fn server_and_message() -> (RedemptionDoc, sync::State, Vec<u8>) {
    let mut server = RedemptionDoc::new_relay();
    let mut one = device_doc(DeviceId(1), &[(0..20).map(|n| admit(n, NOW)).collect()]);
    sync_with_relay(&mut one, &mut server);
    let mut two = device_doc(DeviceId(2), &[(100..140).map(|n| admit(n, NOW)).collect()]);
    let (mut s_state, mut d_state) = (sync::State::new(), sync::State::new());
    // Handshake: device says hello, server answers, then the device sends its changes.
    let hello = two.generate_sync_message(&mut d_state).expect("first message");
    server.receive_sync_message(&mut s_state, &hello, relay()).expect("hello");
    let answer = server.generate_sync_message(&mut s_state).expect("answer");
    two.receive_sync_message(&mut d_state, &answer, relay()).expect("answer");
    let with_changes = two.generate_sync_message(&mut d_state).expect("changes");
    (server, s_state, with_changes)
}

#[test]
fn the_genuine_message_is_accepted() {
    let (mut server, mut state, message) = server_and_message();
    let received = server.receive_sync_message(&mut state, &message, relay()).expect("genuine message");
    assert_eq!(received.new_records, 40);
    assert_eq!(server.record_count(), 60);
}

#[test]
fn truncated_messages_are_rejected_and_change_nothing() {
    let (mut server, mut state, message) = server_and_message();
    let before = snapshot(&server, &state);
    let mut rejected = 0;
    // The last few bytes are an optional trailer (capability flags) that old peers omit, so only
    // truncations that cut into the changes themselves must fail; every failure must change nothing.
    for len in 0..message.len() {
        let (mut s, mut st) = (server.clone(), state.clone());
        match s.receive_sync_message(&mut st, &message[..len], relay()) {
            Err(_) => {
                rejected += 1;
                assert_eq!(snapshot(&s, &st), before, "a rejected message changed the log (len {len})");
            }
            Ok(_) => assert!(len + 8 > message.len(), "truncated to {len} of {} bytes but accepted", message.len()),
        }
    }
    assert!(rejected + 8 >= message.len());
    // And the server still takes the whole message afterwards.
    server.receive_sync_message(&mut state, &message, relay()).expect("genuine message");
    assert_eq!(server.record_count(), 60);
}

#[test]
fn corrupted_and_random_messages_are_rejected_or_harmless() {
    let (server, state, message) = server_and_message();
    let before = snapshot(&server, &state);
    let legit = {
        let (mut s, mut st) = (server.clone(), state.clone());
        s.receive_sync_message(&mut st, &message, relay()).expect("genuine");
        s.record_set().expect("valid")
    };
    let mut x = 12345u64;
    for i in 0..400 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut bad = message.clone();
        let at = (x >> 20) as usize % bad.len();
        bad[at] ^= 1 << (i % 8);
        let (mut s, mut st) = (server.clone(), state.clone());
        match s.receive_sync_message(&mut st, &bad, relay()) {
            Err(_) => assert_eq!(snapshot(&s, &st), before),
            // A flip outside the changes (e.g. in the bloom filter) may still parse; it can never add a
            // record that the genuine message did not carry.
            Ok(_) => assert!(s.record_set().expect("still valid").is_subset(&legit)),
        }
    }
    for len in [0usize, 1, 2, 7, 64, 1000] {
        let garbage: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let (mut s, mut st) = (server.clone(), state.clone());
        assert!(s.receive_sync_message(&mut st, &garbage, relay()).is_err());
        assert_eq!(snapshot(&s, &st), before);
    }
    let (mut s, mut st) = (server.clone(), state.clone());
    let huge = vec![0x42u8; scanner_core::redemption::document::MAX_SYNC_MESSAGE_BYTES + 1];
    assert!(matches!(s.receive_sync_message(&mut st, &huge, relay()), Err(Error::Sync(SyncKind::TooLarge(_)))));
}

/// Builds a raw automerge document from the server's log (bypassing all validation), lets `forge` change
/// it as actor `actor`, and syncs it to the server. Returns what the server said.
fn sync_forged(
    server: &mut RedemptionDoc,
    actor: &[u8],
    forge: impl FnOnce(&mut automerge::transaction::Transaction<'_>, &Automerge),
) -> scanner_core::Result<()> {
    let mut doc = Automerge::load(&server.save()).expect("load").with_actor(ActorId::from(actor));
    let snapshot_doc = doc.clone();
    let mut tx = doc.transaction();
    forge(&mut tx, &snapshot_doc);
    tx.commit();
    let (mut s_state, mut f_state) = (sync::State::new(), sync::State::new());
    for _ in 0..10 {
        let m = doc.generate_sync_message(&mut f_state);
        if let Some(m) = &m {
            server.receive_sync_message(&mut s_state, &m.clone().encode(), relay())?;
        }
        let r = server.generate_sync_message(&mut s_state);
        if let Some(r) = &r {
            doc.receive_sync_message(&mut f_state, sync::Message::decode(r).expect("decode")).expect("recv");
        }
        if m.is_none() && r.is_none() {
            break;
        }
    }
    Ok(())
}

fn device_objects(doc: &Automerge, device: DeviceId) -> (automerge::ObjId, automerge::ObjId) {
    let (_, map) = doc.get(ROOT, device.to_hex()).expect("get").expect("device map");
    let (_, batches) = doc.get(&map, "batches").expect("get").expect("batches");
    (map, batches)
}

fn server_with_one_device() -> RedemptionDoc {
    let mut server = RedemptionDoc::new_relay();
    let mut one = device_doc(DeviceId(1), &[(0..20).map(|n| admit(n, NOW)).collect(), vec![admit(50, NOW)]]);
    sync_with_relay(&mut one, &mut server);
    server
}

fn assert_rejected_unchanged(
    name: &str,
    actor: &[u8],
    forge: impl FnOnce(&mut automerge::transaction::Transaction<'_>, &Automerge),
    check: impl Fn(&LogKind) -> bool,
) {
    let mut server = server_with_one_device();
    let before = (server.heads(), server.record_set().expect("valid"));
    match sync_forged(&mut server, actor, forge) {
        Err(Error::Sync(SyncKind::Rejected(e))) => assert!(check(&e), "{name}: unexpected error {e}"),
        other => panic!("{name}: forged change was not rejected: {other:?}"),
    }
    assert_eq!((server.heads(), server.record_set().expect("valid")), before, "{name}: log changed");
}

#[test]
fn another_device_cannot_write_into_a_devices_log() {
    let forged = admit(999, NOW).encode().to_vec();
    assert_rejected_unchanged(
        "foreign batch",
        &DeviceId(2).actor_bytes(),
        |tx, doc| {
            let (_, batches) = device_objects(doc, DeviceId(1));
            tx.insert(&batches, 0, ScalarValue::Bytes(forged)).expect("insert");
        },
        |e| matches!(e, LogKind::ForeignWrite { .. }),
    );
}

#[test]
fn a_device_cannot_remove_or_rewrite_recorded_scans() {
    assert_rejected_unchanged(
        "delete own batch",
        &DeviceId(1).actor_bytes(),
        |tx, doc| {
            let (_, batches) = device_objects(doc, DeviceId(1));
            tx.delete(&batches, 0).expect("delete");
        },
        |e| matches!(e, LogKind::NotGrowOnly { .. }),
    );
    assert_rejected_unchanged(
        "overwrite own batch",
        &DeviceId(1).actor_bytes(),
        |tx, doc| {
            let (_, batches) = device_objects(doc, DeviceId(1));
            tx.put(&batches, 1, ScalarValue::Bytes(admit(7, NOW).encode().to_vec())).expect("put");
        },
        |e| matches!(e, LogKind::NotGrowOnly { .. }),
    );
    assert_rejected_unchanged(
        "delete a device",
        &DeviceId(1).actor_bytes(),
        |tx, _| tx.delete(ROOT, DeviceId(1).to_hex()).expect("delete"),
        |e| matches!(e, LogKind::NotGrowOnly { .. } | LogKind::ForeignWrite { .. }),
    );
    assert_rejected_unchanged(
        "replace a device map",
        &DeviceId(1).actor_bytes(),
        |tx, _| {
            tx.put_object(ROOT, DeviceId(1).to_hex(), ObjType::Map).expect("put");
        },
        |e| matches!(e, LogKind::NotGrowOnly { .. } | LogKind::Structure { .. }),
    );
}

#[test]
fn malformed_content_is_rejected() {
    assert_rejected_unchanged(
        "bad record bytes",
        &DeviceId(1).actor_bytes(),
        |tx, doc| {
            let (_, batches) = device_objects(doc, DeviceId(1));
            tx.insert(&batches, 2, ScalarValue::Bytes(vec![1u8; 31])).expect("insert");
        },
        |e| matches!(e, LogKind::Record { .. }),
    );
    assert_rejected_unchanged(
        "record with unknown outcome",
        &DeviceId(1).actor_bytes(),
        |tx, doc| {
            let (_, batches) = device_objects(doc, DeviceId(1));
            let mut bytes = admit(5, NOW).encode();
            bytes[28] = 9;
            tx.insert(&batches, 2, ScalarValue::Bytes(bytes.to_vec())).expect("insert");
        },
        |e| matches!(e, LogKind::Record { .. }),
    );
    assert_rejected_unchanged(
        "junk root key",
        &DeviceId(3).actor_bytes(),
        |tx, _| tx.put(ROOT, "owned", "yes").expect("put"),
        |e| matches!(e, LogKind::RootKey(_)),
    );
    assert_rejected_unchanged(
        "device map created by another actor",
        &DeviceId(3).actor_bytes(),
        |tx, _| {
            tx.put_object(ROOT, DeviceId(4).to_hex(), ObjType::Map).expect("put");
        },
        |e| matches!(e, LogKind::ForeignWrite { .. }),
    );
    assert_rejected_unchanged(
        "batch that is not bytes",
        &DeviceId(1).actor_bytes(),
        |tx, doc| {
            let (_, batches) = device_objects(doc, DeviceId(1));
            tx.insert(&batches, 2, "text").expect("insert");
        },
        |e| matches!(e, LogKind::Structure { .. }),
    );
}

#[test]
fn a_resumed_sync_only_exchanges_what_is_new() {
    let device = DeviceId(9);
    let mut doc = device_doc(
        device,
        &(0..20).map(|b| (b * 100..b * 100 + 100).map(|n| admit(n, NOW)).collect()).collect::<Vec<_>>(),
    );
    let mut server = RedemptionDoc::new_relay();
    let (mut d_state, mut s_state) = (sync::State::new(), sync::State::new());
    let (up, down) = sync_docs(&mut doc, &mut d_state, &mut server, &mut s_state);
    assert_eq!(server.record_count(), 2000);
    let first = up + down;
    // Both sides keep only the persisted part of their state (as across an app restart / new request).
    let mut d_state = decode_peer_state(&encode_peer_state(&d_state)).expect("state");
    let mut s_state = decode_peer_state(&encode_peer_state(&s_state)).expect("state");
    let new: Vec<ScanRecord> = (5000..5010).map(|n| admit(n, NOW + 60)).collect();
    let gates = vec!["gate-a".to_owned(), "gate-b".to_owned()];
    doc.append_batch(
        device,
        scanner_core::redemption::Batch {
            device_name: "door-9",
            gates: &gates,
            records: &new,
            overrides: &[],
            time: 0,
        },
    )
    .expect("append");
    let (up, down) = sync_docs(&mut doc, &mut d_state, &mut server, &mut s_state);
    assert_eq!(server.record_count(), 2010);
    eprintln!("first sync {first} B for 2000 records, resumed sync {} B for 10", up + down);
    assert!(up + down < 1200, "resumed sync cost {} bytes (first sync {first})", up + down);
    // 12 random bytes per record cannot be compressed away: the first sync really carried the log.
    assert!(first > 2000 * 12);
}

#[test]
fn an_interrupted_sync_resumes_and_loses_nothing() {
    let device = DeviceId(5);
    let mut doc = device_doc(device, &[(0..300).map(|n| admit(n, NOW)).collect()]);
    let mut server = RedemptionDoc::new_relay();
    let mut d_state = sync::State::new();
    let mut s_state = sync::State::new();
    // The connection drops after the device's first message reached the server.
    let hello = doc.generate_sync_message(&mut d_state).expect("hello");
    serve_sync(&mut server, &mut s_state, &hello, relay(), SyncChannel::Push).expect("served");
    // Retry from the persisted states.
    let mut d_state = decode_peer_state(&encode_peer_state(&d_state)).expect("state");
    let mut s_state = decode_peer_state(&encode_peer_state(&s_state)).expect("state");
    sync_docs(&mut doc, &mut d_state, &mut server, &mut s_state);
    assert_eq!(server.record_set().expect("valid"), doc.record_set().expect("valid"));
    assert_eq!(server.record_count(), 300);
}

#[test]
fn damaged_saved_logs_are_refused() {
    let doc = device_doc(DeviceId(1), &[(0..50).map(|n| admit(n, NOW)).collect()]);
    let saved = doc.save();
    for len in [0, 1, 10, saved.len() / 2, saved.len() - 1] {
        assert!(RedemptionDoc::load(&saved[..len]).is_err() || len == 0, "len {len}");
    }
    assert!(RedemptionDoc::merge_saved([&b"not a log"[..]]).is_err());
    assert!(decode_peer_state(b"\xff\xff").is_err());
}
