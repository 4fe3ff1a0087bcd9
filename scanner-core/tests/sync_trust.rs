//! Who may write what through sync: a device only its own records, a relay anything but the receiver's own
//! records, nobody a record stamped in the future, and no message more memory than its budget.

mod redemption_support;

use std::collections::BTreeSet;
use std::io::Write;

use automerge::sync;
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ReadDoc, ScalarValue, ROOT};
use redemption_support::*;
use scanner_core::error::{Error, LogKind, SyncKind};
use scanner_core::redemption::document::{serve_sync, Accept, Batch, MAX_CLOCK_SKEW_MS, MAX_INFLATED_SYNC_BYTES};
use scanner_core::redemption::{DeviceId, EventReport, Hlc, Outcome, RedemptionDoc, ScanKind, ScanRecord, SyncChannel};

const NOW_MS: u64 = NOW * 1000;

/// Sends a whole document's changes to a server as one session in the push channel, the way an attacker
/// holding `as_device`'s token can (honest devices push from a document of their own changes only).
/// Returns the round trips, or the first refusal.
fn push_everything(
    doc: &mut RedemptionDoc,
    server: &mut RedemptionDoc,
    as_device: DeviceId,
    now_ms: u64,
) -> scanner_core::Result<usize> {
    let (mut d_state, mut s_state) = (sync::State::new(), sync::State::new());
    for round in 0..50 {
        let Some(message) = doc.generate_sync_message(&mut d_state) else { return Ok(round) };
        let reply = serve_sync(server, &mut s_state, &message, Accept::device(as_device, now_ms), SyncChannel::Push)?;
        if let Some(reply) = reply.reply {
            doc.receive_sync_message(&mut d_state, &reply, Accept::relay(now_ms)).expect("the server's reply");
        } else {
            return Ok(round + 1);
        }
    }
    // The server keeps asking for what it dropped: an attacker's session just never completes.
    Ok(50)
}

/// An honest device's sync with a server: push its own records, then pull everyone's.
fn sync_device(
    doc: &mut RedemptionDoc,
    server: &mut RedemptionDoc,
    as_device: DeviceId,
    now_ms: u64,
) -> scanner_core::Result<usize> {
    let mut trips = 0;
    let (mut d_state, mut s_state) = (sync::State::new(), sync::State::new());
    while let Some(message) = doc.generate_push_message(&mut d_state).expect("push") {
        trips += 1;
        assert!(trips < 50, "push did not converge");
        let reply = serve_sync(server, &mut s_state, &message, Accept::device(as_device, now_ms), SyncChannel::Push)?;
        if let Some(reply) = reply.reply {
            doc.receive_push_reply(&mut d_state, &reply).expect("the server's reply");
        }
    }
    let (mut d_state, mut s_state) = (sync::State::new(), sync::State::new());
    while let Some(message) = doc.generate_sync_message(&mut d_state) {
        trips += 1;
        assert!(trips < 100, "pull did not converge");
        let reply = serve_sync(server, &mut s_state, &message, Accept::device(as_device, now_ms), SyncChannel::Pull)?;
        if let Some(reply) = reply.reply {
            doc.receive_sync_message(&mut d_state, &reply, Accept::relay(now_ms)).expect("the server's reply");
        }
    }
    Ok(trips)
}

fn records(range: std::ops::Range<u64>) -> Vec<ScanRecord> {
    range.map(|n| admit(n, NOW)).collect()
}

/// Device B's map, batch list and batch count in a raw automerge document.
fn batches_of(doc: &Automerge, device: DeviceId) -> (automerge::ObjId, usize) {
    let (_, map) = doc.get(ROOT, device.to_hex()).expect("get").expect("device map");
    let (_, batches) = doc.get(&map, "batches").expect("get").expect("batch list");
    let len = doc.length(&batches);
    (batches, len)
}

#[test]
fn a_device_token_cannot_write_into_another_devices_log() {
    let (a, b) = (DeviceId(0xa), DeviceId(0xb));
    let mut server = RedemptionDoc::new_relay();
    let mut genuine_b = device_doc(b, &[records(0..5)]);
    sync_device(&mut genuine_b, &mut server, b, NOW_MS).expect("b's own records");
    let before = server.record_set().expect("valid");
    assert_eq!(before.len(), 5);

    // Device A's token holder writes as B: appends a forged batch to B's list, exactly as B would.
    let mut forged = Automerge::load(&server.save()).expect("load").with_actor(ActorId::from(b.actor_bytes()));
    let (batches, len) = batches_of(&forged, b);
    let mut tx = forged.transaction();
    tx.insert(&batches, len, ScalarValue::Bytes(admit(999, NOW).encode().to_vec())).expect("insert");
    tx.commit();
    // ... and also starts a log for a device C that does not exist.
    let c = DeviceId(0xc);
    let mut forged_c = device_doc(c, &[records(500..503)]);
    let mut forged_doc = RedemptionDoc::load(&forged.save()).expect("structurally valid: B's actor wrote it");
    forged_doc.merge(&forged_c).expect("merge");
    push_everything(&mut forged_doc, &mut server, a, NOW_MS).expect("nothing of it is A's: dropped");
    assert_eq!(server.record_set().expect("valid"), before, "nothing forged reached the server");

    // B is not frozen: its genuine next batch (same sequence number the forger used) still arrives.
    genuine_b
        .append_batch(
            b,
            Batch { device_name: "b", gates: &["North".into()], records: &records(5..7), overrides: &[], time: 0 },
        )
        .expect("append");
    sync_device(&mut genuine_b, &mut server, b, NOW_MS).expect("b again");
    assert_eq!(server.device_record_count(b), 7);
    assert_eq!(server.device_record_count(c), 0);
    // The forged C log is refused even when "C" syncs it with A's token.
    push_everything(&mut forged_c, &mut server, a, NOW_MS).expect("dropped");
    // Nor can A slip anything in through its pull session: the server takes nothing there.
    let mut pushy = device_doc(a, &[records(700..705)]);
    let (mut d_state, mut s_state) = (sync::State::new(), sync::State::new());
    for _ in 0..10 {
        let Some(m) = pushy.generate_sync_message(&mut d_state) else { break };
        match serve_sync(&mut server, &mut s_state, &m, Accept::device(a, NOW_MS), SyncChannel::Pull).expect("served") {
            scanner_core::redemption::document::ServerReply { reply: Some(r), .. } => {
                pushy.receive_sync_message(&mut d_state, &r, Accept::relay(NOW_MS)).expect("reply");
            }
            _ => break,
        }
    }
    assert_eq!(server.device_record_count(a), 0, "a pull session writes nothing");
    assert_eq!(server.device_record_count(c), 0);
}

#[test]
fn a_device_carrying_other_devices_records_still_delivers_its_own() {
    // A syncs with server 1 (learning B's records), scans more, then syncs with server 2 that has never
    // seen B: server 2 gets all of A's records (their history is A's own) and none of B's.
    let (a, b) = (DeviceId(0xa), DeviceId(0xb));
    let mut one = RedemptionDoc::new_relay();
    let mut doc_b = device_doc(b, &[records(100..110)]);
    sync_device(&mut doc_b, &mut one, b, NOW_MS).expect("b");
    let mut doc_a = device_doc(a, &[records(0..3)]);
    sync_device(&mut doc_a, &mut one, a, NOW_MS).expect("a with server 1");
    assert_eq!(doc_a.device_record_count(b), 10, "a learned b's records");
    doc_a
        .append_batch(
            a,
            Batch { device_name: "a", gates: &["North".into()], records: &records(3..8), overrides: &[], time: 0 },
        )
        .expect("append after learning b's records");

    let mut two = RedemptionDoc::new_relay();
    let trips = sync_device(&mut doc_a, &mut two, a, NOW_MS).expect("a with server 2");
    assert!(trips < 10, "{trips} round trips");
    assert_eq!(two.device_record_count(a), 8);
    assert_eq!(two.device_record_count(b), 0);

    // Servers relay to each other: server 1 → server 2 brings B's records.
    let (mut s1, mut s2) = (sync::State::new(), sync::State::new());
    for _ in 0..20 {
        let m1 = one.generate_sync_message(&mut s1);
        if let Some(m) = &m1 {
            two.receive_sync_message(&mut s2, m, Accept::relay(NOW_MS)).expect("relay");
        }
        let m2 = two.generate_sync_message(&mut s2);
        if let Some(m) = &m2 {
            one.receive_sync_message(&mut s1, m, Accept::relay(NOW_MS)).expect("relay");
        }
        if m1.is_none() && m2.is_none() {
            break;
        }
    }
    assert_eq!(two.device_record_count(b), 10);
    assert_eq!(one.record_set().expect("valid"), two.record_set().expect("valid"));
}

#[test]
fn a_relay_cannot_write_under_the_receivers_own_id() {
    let edge = DeviceId(0xed);
    let mut edge_doc = device_doc(edge, &[records(0..2)]);
    // Someone holding a relay credential writes a record under the edge's id that the edge never made.
    let mut forged = device_doc(edge, &[records(0..2)]);
    forged
        .append_batch(
            edge,
            Batch { device_name: "edge", gates: &["North".into()], records: &records(50..51), overrides: &[], time: 0 },
        )
        .expect("append");
    let (mut f_state, mut e_state) = (sync::State::new(), sync::State::new());
    let mut refused = None;
    for _ in 0..10 {
        let Some(m) = forged.generate_sync_message(&mut f_state) else { break };
        match serve_sync(&mut edge_doc, &mut e_state, &m, Accept::relay(NOW_MS), SyncChannel::Push) {
            Ok(reply) => {
                if let Some(r) = reply.reply {
                    forged.receive_sync_message(&mut f_state, &r, Accept::relay(NOW_MS)).expect("reply");
                }
            }
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert!(matches!(refused, Some(Error::Sync(SyncKind::ForgedOwnActor(_)))), "{refused:?}");
    assert_eq!(edge_doc.record_count(), 2);
}

/// One relay session of `relay` (client) with `server`, the server holding the relay to `writers`.
/// Returns (round trips, changes refused), or the first refusal.
fn relay_session(
    relay: &mut RedemptionDoc,
    server: &mut RedemptionDoc,
    writers: &BTreeSet<DeviceId>,
) -> scanner_core::Result<(usize, usize)> {
    let (mut r_state, mut s_state) = (sync::State::new(), sync::State::new());
    let mut refused = 0;
    for round in 0..30 {
        let Some(m) = relay.generate_sync_message(&mut r_state) else { return Ok((round, refused)) };
        let reply = serve_sync(server, &mut s_state, &m, Accept::relay_of(writers, NOW_MS), SyncChannel::Relay)?;
        refused += reply.received.refused_changes;
        if let Some(r) = reply.reply {
            relay.receive_sync_message(&mut r_state, &r, Accept::relay(NOW_MS))?;
        }
    }
    panic!("the relay session did not finish in 30 round trips");
}

#[test]
fn a_relay_held_to_its_devices_cannot_write_under_made_up_ids() {
    let (listed, made_up) = (DeviceId(0xa), DeviceId(0x2bad));
    // A hub's log: a registered door device's 3 scans, and 2 under an id no one registered.
    let mut hub = RedemptionDoc::new_relay();
    let mut door = device_doc(listed, &[records(0..3)]);
    hub.merge(&door).expect("merge");
    hub.merge(&device_doc(made_up, &[records(10..12)])).expect("merge");
    let writers: BTreeSet<DeviceId> = [listed, DeviceId(0x40b)].into_iter().collect();
    let mut issuer = RedemptionDoc::new_relay();

    let (_, refused) = relay_session(&mut hub, &mut issuer, &writers).expect("relay");
    assert_eq!(refused, 1, "one change (the made-up device's one batch) refused");
    assert_eq!(issuer.device_record_count(listed), 3);
    assert_eq!(issuer.device_record_count(made_up), 0);
    assert_eq!(issuer.devices().collect::<Vec<_>>(), vec![listed]);
    let report = EventReport::from_logs(&issuer.device_logs().expect("logs"));
    assert_eq!((report.scans, report.admitted), (3, 3));

    // The next session offers the refused change again, is refused again and still ends; a listed
    // device's later scans keep arriving.
    let batch =
        Batch { device_name: "door", gates: &["gate-a".into()], records: &records(3..5), overrides: &[], time: 0 };
    door.append_batch(listed, batch).expect("append");
    hub.merge(&door).expect("merge");
    let (_, refused) = relay_session(&mut hub, &mut issuer, &writers).expect("relay");
    assert_eq!(refused, 1);
    assert_eq!((issuer.device_record_count(listed), issuer.device_record_count(made_up)), (5, 0));

    // Without a list (servers of one deployment), the same relay carries every device.
    let mut open = RedemptionDoc::new_relay();
    let (mut r_state, mut s_state) = (sync::State::new(), sync::State::new());
    for _ in 0..30 {
        let Some(m) = hub.generate_sync_message(&mut r_state) else { break };
        let reply = serve_sync(&mut open, &mut s_state, &m, Accept::relay(NOW_MS), SyncChannel::Relay).expect("relay");
        assert_eq!(reply.received.refused_changes, 0);
        if let Some(r) = reply.reply {
            hub.receive_sync_message(&mut r_state, &r, Accept::relay(NOW_MS)).expect("reply");
        }
    }
    assert_eq!(open.device_record_count(made_up), 2);
}

#[test]
fn records_stamped_in_the_future_are_refused_at_sync() {
    let device = DeviceId(0xf);
    let mut server = RedemptionDoc::new_relay();
    // Within the allowed skew: taken.
    let near = NOW_MS + MAX_CLOCK_SKEW_MS - 1000;
    let mut doc = RedemptionDoc::new_for_device(device);
    let at = |ms: u64, n: u64| {
        let mut r = admit(n, NOW);
        r.hlc = Hlc(ms << 16);
        r
    };
    doc.append_batch(
        device,
        Batch { device_name: "d", gates: &["North".into()], records: &[at(near, 1)], overrides: &[], time: 0 },
    )
    .expect("append");
    sync_device(&mut doc, &mut server, device, NOW_MS).expect("near future is fine");
    assert_eq!(server.record_count(), 1);

    // A forged exit an hour ahead (would make a re-entry ticket look outside forever): refused whole.
    let mut exit = at(NOW_MS + 3_600_000, 2);
    exit.kind = ScanKind::Exit;
    exit.outcome = Outcome::Admitted;
    doc.append_batch(
        device,
        Batch { device_name: "d", gates: &["North".into()], records: &[exit], overrides: &[], time: 0 },
    )
    .expect("append");
    let before = server.save();
    let err = sync_device(&mut doc, &mut server, device, NOW_MS).expect_err("refused");
    match err {
        Error::Sync(SyncKind::Rejected(LogKind::FutureRecord { device: d, ahead_ms })) => {
            assert_eq!(d, device);
            assert_eq!(ahead_ms, 3_600_000);
        }
        other => panic!("wrong refusal: {other:?}"),
    }
    assert_eq!(server.save(), before, "nothing of the message was kept");
    // The same record is fine once the receiver's clock has caught up.
    sync_device(&mut doc, &mut server, device, NOW_MS + 3_600_000).expect("no longer in the future");
    assert_eq!(server.record_count(), 2);
}

/// An automerge chunk header (checksum not checked before inflation) around `data`.
fn chunk(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, kind];
    let mut len = data.len() as u64;
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(data);
    out
}

/// A sync message (as automerge encodes it) whose only change chunk is `chunk`.
fn message_with(chunk: Vec<u8>) -> Vec<u8> {
    sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: sync::ChunkList::from(vec![chunk]),
        flags: None,
        version: sync::MessageVersion::V1,
    }
    .encode()
}

/// Raw DEFLATE of `n` zero bytes: about n/1000 bytes that inflate to n.
pub fn deflate_zeros(n: usize) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let take = left.min(block.len());
        enc.write_all(&block[..take]).expect("deflate");
        left -= take;
    }
    enc.finish().expect("deflate")
}

#[test]
fn a_deflate_bomb_is_refused_before_it_inflates() {
    let bomb = deflate_zeros(1 << 30);
    assert!(bomb.len() < 2 << 20, "the bomb is small: {} bytes", bomb.len());
    let message = message_with(chunk(2, &bomb));
    let mut server = RedemptionDoc::new_relay();
    let mut state = sync::State::new();
    let err = server.receive_sync_message(&mut state, &message, Accept::device(DeviceId(1), NOW_MS)).unwrap_err();
    assert!(matches!(err, Error::Sync(SyncKind::Inflation)), "{err:?}");
    // Just under the budget the chunk is inflated and then refused for what it is (not a change).
    let small = message_with(chunk(2, &deflate_zeros(MAX_INFLATED_SYNC_BYTES / 2)));
    let err = server.receive_sync_message(&mut state, &small, Accept::device(DeviceId(1), NOW_MS)).unwrap_err();
    assert!(matches!(err, Error::Sync(SyncKind::Decode(_))), "{err:?}");
    assert_eq!(server.record_count(), 0);
}

#[test]
fn whole_documents_are_refused_in_sync_messages() {
    let doc = device_doc(DeviceId(3), &[records(0..4)]);
    let saved = doc.save();
    let message = message_with(saved);
    let mut server = RedemptionDoc::new_relay();
    let err = server.receive_sync_message(&mut sync::State::new(), &message, Accept::relay(NOW_MS)).unwrap_err();
    assert!(matches!(err, Error::Sync(SyncKind::ChunkKind(_))), "{err:?}");
    assert_eq!(server.record_count(), 0);
}
