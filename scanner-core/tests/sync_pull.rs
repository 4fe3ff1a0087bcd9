//! A device's pull session always ends holding everything its server holds, over any number of
//! sessions, whatever the bloom filter guesses, whatever reply was lost on the way, and whatever records
//! the device already has from elsewhere.
//!
//! The server keeps its peer state in memory between requests (the issuer and the venue hub do, and an
//! HTTP server cannot tell one device session from the next); the device starts each session from its
//! stored state, as every device shell does.

mod redemption_support;

use automerge::sync;
use redemption_support::*;
use scanner_core::redemption::document::{decode_peer_state, encode_peer_state, serve_sync, Accept, Batch};
use scanner_core::redemption::server_log::ServerLog;
use scanner_core::redemption::sync_log::{ClientTurn, SyncLog};
use scanner_core::redemption::{DeviceId, RedemptionDoc, ScanRecord, SyncChannel};

const NOW_MS: u64 = NOW * 1000;

/// A device's push session: its own records to the server (a fresh session on both sides).
fn push(device: &mut RedemptionDoc, server: &mut RedemptionDoc, id: DeviceId) {
    let (mut d_state, mut s_state) = (sync::State::new(), sync::State::new());
    for _ in 0..20 {
        let Some(message) = device.generate_push_message(&mut d_state).expect("push message") else { return };
        let served =
            serve_sync(server, &mut s_state, &message, Accept::device(id, NOW_MS), SyncChannel::Push).expect("push");
        if let Some(reply) = served.reply {
            device.receive_push_reply(&mut d_state, &reply).expect("push reply");
        }
    }
    panic!("push did not finish");
}

/// How a device's pull loop ends.
#[derive(Clone, Copy, PartialEq)]
enum Loop {
    /// As every device shell here does: also as soon as the device holds every head the server
    /// advertised (`Device::pull_complete`).
    StopsWhenComplete,
    /// As devices built before that rule do: only when automerge has nothing more to say.
    AutomergeOnly,
}

/// One pull session the way a device runs it (generate, send, take the reply, until the loop ends),
/// from the device's stored state `stored`. The server's state for this device is kept in memory across
/// sessions. `drop_reply` loses the server's n-th reply on the way. Returns the round trips and the
/// device's state to store.
fn pull(
    how: Loop,
    device: &mut RedemptionDoc,
    stored: &[u8],
    server: &mut RedemptionDoc,
    server_state: &mut sync::State,
    id: DeviceId,
    drop_reply: Option<usize>,
) -> (usize, Vec<u8>) {
    let mut state = if stored.is_empty() { sync::State::new() } else { decode_peer_state(stored).expect("state") };
    for round in 0..20 {
        let Some(message) = device.generate_sync_message(&mut state) else {
            return (round, encode_peer_state(&state));
        };
        let served =
            serve_sync(server, server_state, &message, Accept::device(id, NOW_MS), SyncChannel::Pull).expect("pull");
        if drop_reply == Some(round) {
            // The connection drops: the device's session ends without the reply.
            return (round + 1, encode_peer_state(&state));
        }
        if let Some(reply) = served.reply {
            device.receive_sync_message(&mut state, &reply, Accept::relay(NOW_MS)).expect("pull reply");
            if how == Loop::StopsWhenComplete && device.holds_heads_of(&state) {
                return (round + 1, encode_peer_state(&state));
            }
        }
    }
    panic!("pull did not finish in 20 round trips");
}

fn one_batch(device: DeviceId, first_ticket: u64) -> RedemptionDoc {
    device_doc(device, &[vec![admit(first_ticket, NOW)]])
}

/// Finds ticket numbers for which the south device's bloom filter (over its own one change) claims to
/// hold the north device's one change, which it does not: automerge's filter has a false-positive rate
/// of about 1 in 100. The search is deterministic (the changes' hashes depend on their content only).
fn false_positive_pair() -> (u64, RedemptionDoc, RedemptionDoc) {
    let (north_id, south_id) = (DeviceId(1), DeviceId(2));
    for k in 0..20_000u64 {
        let north = one_batch(north_id, 100_000 + k);
        let south = one_batch(south_id, k);
        let north_change = north.heads();
        assert_eq!(north_change.len(), 1);
        let first = south.generate_sync_message(&mut sync::State::new()).expect("first pull message");
        let first = sync::Message::decode(&first).expect("a sync message");
        let hidden = first.have.iter().any(|have| have.bloom.contains_hash(&north_change[0]));
        if hidden {
            return (k, north, south);
        }
    }
    panic!("no bloom-filter false positive in 20,000 tries: the filter changed, rewrite this search");
}

#[test]
fn a_change_the_devices_bloom_filter_claims_to_hold_still_reaches_it() {
    let (north_id, south_id) = (DeviceId(1), DeviceId(2));
    let (k, mut north, mut south) = false_positive_pair();
    eprintln!("false positive at k = {k}");
    let mut server = RedemptionDoc::new_relay();
    push(&mut north, &mut server, north_id);
    push(&mut south, &mut server, south_id);
    assert_eq!(server.device_record_count(north_id), 1);

    let (trips, _) =
        pull(Loop::StopsWhenComplete, &mut south, &[], &mut server, &mut sync::State::new(), south_id, None);
    assert_eq!(south.device_record_count(north_id), 1, "the north gate's admission reached the south device");
    // The server's heads (no changes: the filter hid them); the device's request for the change it lacks
    // by hash, answered with it.
    assert_eq!(trips, 2);
}

#[test]
fn a_pull_reply_lost_on_the_way_is_sent_again_in_the_next_session() {
    let (north_id, south_id) = (DeviceId(1), DeviceId(2));
    let mut server = RedemptionDoc::new_relay();
    let mut north = device_doc(north_id, &[(0..10).map(|n| admit(n, NOW)).collect()]);
    let mut south = one_batch(south_id, 500);
    push(&mut north, &mut server, north_id);
    push(&mut south, &mut server, south_id);

    let mut server_state = sync::State::new();
    // The first session's only reply (carrying north's records) never arrives.
    let (_, stored) = pull(Loop::StopsWhenComplete, &mut south, &[], &mut server, &mut server_state, south_id, Some(0));
    assert_eq!(south.device_record_count(north_id), 0);
    // The next session, from the device's stored state, against the server's state as it was left.
    let (trips, _) = pull(Loop::StopsWhenComplete, &mut south, &stored, &mut server, &mut server_state, south_id, None);
    assert_eq!(south.device_record_count(north_id), 10, "the lost records arrived in the next session");
    assert_eq!(trips, 1);
}

#[test]
fn a_device_holding_newer_records_than_its_server_gets_the_servers_and_its_sessions_stay_short() {
    let (north_id, south_id, x_id) = (DeviceId(1), DeviceId(2), DeviceId(3));
    let (mut server, mut edge) = (RedemptionDoc::new_relay(), RedemptionDoc::new_relay());
    let mut north = device_doc(north_id, &[(0..5).map(|n| admit(n, NOW)).collect()]);
    push(&mut north, &mut server, north_id);
    // Device X's first batch reaches both servers; its second only the edge.
    let mut x = one_batch(x_id, 700);
    push(&mut x, &mut server, x_id);
    sync_with_relay(&mut x, &mut edge);
    append(&mut x, x_id, 710..712);
    sync_with_relay(&mut x, &mut edge);
    // South syncs with the edge, so it holds a newer head of X's records than this server knows.
    let mut south = one_batch(south_id, 500);
    sync_with_relay(&mut south, &mut edge);
    push(&mut south, &mut server, south_id);
    assert_eq!((server.device_record_count(x_id), south.device_record_count(x_id)), (1, 3));

    // A device built before the completion rule ends when the server falls silent: after North's
    // records, its next message says it has synced up to the server's heads, and the server says no more
    // (though it cannot tell that X's second batch covers its first). Each quiet session is then one round
    // trip, though the two never reach the same heads; the same against a server that keeps no state
    // between requests (the edge decodes it from storage each time).
    for keeps_state in [true, false] {
        let mut old_device = south.clone();
        let mut server_state = sync::State::new();
        let mut session = |old_device: &mut RedemptionDoc, stored: &[u8]| {
            if !keeps_state {
                server_state = decode_peer_state(&encode_peer_state(&server_state)).expect("state");
            }
            pull(Loop::AutomergeOnly, old_device, stored, &mut server, &mut server_state, south_id, None)
        };
        let (trips, stored) = session(&mut old_device, &[]);
        assert_eq!((old_device.device_record_count(north_id), trips), (5, 2));
        for _ in 0..3 {
            let (trips, _) = session(&mut old_device, &stored);
            assert_eq!(trips, 1, "a quiet session");
        }
    }

    // A device of today holds every head the server advertised after the first reply.
    let mut server_state = sync::State::new();
    let (trips, stored) =
        pull(Loop::StopsWhenComplete, &mut south, &[], &mut server, &mut server_state, south_id, None);
    assert_eq!((south.device_record_count(north_id), trips), (5, 1));
    for _ in 0..3 {
        let (trips, _) =
            pull(Loop::StopsWhenComplete, &mut south, &stored, &mut server, &mut server_state, south_id, None);
        assert_eq!(trips, 1, "a quiet session");
    }
    // A device that got everything this server has, and more, from the edge alone: no changes to send,
    // and its heads do not show it holds X's first batch. The server tells its heads once; the device
    // holds them all.
    let west_id = DeviceId(4);
    sync_with_relay(&mut north.clone(), &mut edge);
    let mut west = one_batch(west_id, 800);
    sync_with_relay(&mut west, &mut edge);
    for (how, expected) in [(Loop::AutomergeOnly, 2), (Loop::StopsWhenComplete, 1)] {
        let mut west = west.clone();
        let mut server_state = sync::State::new();
        let (trips, _) = pull(how, &mut west, &[], &mut server, &mut server_state, west_id, None);
        assert_eq!(trips, expected);
    }

    // The server learns something new: the next session brings it.
    append(&mut north, north_id, 50..53);
    push(&mut north, &mut server, north_id);
    let (_, _) = pull(Loop::StopsWhenComplete, &mut south, &stored, &mut server, &mut server_state, south_id, None);
    assert_eq!(south.device_record_count(north_id), 8);
}

/// Appends one batch of admissions of `tickets` to a device's log.
fn append(doc: &mut RedemptionDoc, device: DeviceId, tickets: std::ops::Range<u64>) {
    let gates = vec!["gate-a".to_owned(), "gate-b".to_owned()];
    let records: Vec<ScanRecord> = tickets.map(|n| admit(n, NOW + 60)).collect();
    let batch =
        Batch { device_name: &format!("door-{}", device.0), gates: &gates, records: &records, overrides: &[], time: 0 };
    doc.append_batch(device, batch).expect("append");
}

/// Runs one session of `channel` with `server` as a venue hub does (`ServerLog::client_step` from
/// `Begin` until it has nothing to say or the server falls silent), the server keeping its state for the
/// hub in memory.
fn hub_session(
    hub: &mut ServerLog,
    server: &mut RedemptionDoc,
    server_state: &mut sync::State,
    channel: SyncChannel,
    as_device: DeviceId,
) {
    let mut reply: Option<Vec<u8>> = None;
    for round in 0..20 {
        let Some(turn) = ClientTurn::after(round, reply.as_deref()) else { return };
        let (message, _) = hub.client_step(channel.as_str(), channel, turn, NOW_MS).expect("client step");
        let Some(message) = message else { return };
        let served =
            serve_sync(server, server_state, &message, Accept::device(as_device, NOW_MS), channel).expect("served");
        reply = served.reply;
    }
    panic!("the hub's {} session did not finish", channel.as_str());
}

#[test]
fn a_venue_hub_pulls_what_its_server_learned_since_its_last_session_though_nothing_changed_at_the_venue() {
    let (hub_id, north_id) = (DeviceId(7), DeviceId(1));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hub = ServerLog::open(dir.path(), 1, Some(hub_id)).expect("hub log");
    let mut server = RedemptionDoc::new_relay();
    let mut north = device_doc(north_id, &[(0..4).map(|n| admit(n, NOW)).collect()]);
    push(&mut north, &mut server, north_id);
    let (mut push_state, mut pull_state) = (sync::State::new(), sync::State::new());

    hub_session(&mut hub, &mut server, &mut push_state, SyncChannel::Push, hub_id);
    hub_session(&mut hub, &mut server, &mut pull_state, SyncChannel::Pull, hub_id);
    assert_eq!(hub.doc().device_record_count(north_id), 4);

    // The server learns more of north's scans; nothing happens at the hub's venue.
    append(&mut north, north_id, 10..13);
    push(&mut north, &mut server, north_id);
    hub_session(&mut hub, &mut server, &mut push_state, SyncChannel::Push, hub_id);
    hub_session(&mut hub, &mut server, &mut pull_state, SyncChannel::Pull, hub_id);
    assert_eq!(hub.doc().device_record_count(north_id), 7, "the hub's next pull brought the new scans");
}

#[test]
fn a_relay_client_hears_its_servers_news_though_it_has_none_of_its_own() {
    // The issuer relays with the edge as the client, keeping its state for the edge in memory between
    // sessions; only the edge learns anything between them.
    let north_id = DeviceId(1);
    let mut issuer = SyncLog::load(&[], 0, None).expect("issuer log");
    let mut edge = RedemptionDoc::new_relay();
    let mut north = device_doc(north_id, &[(0..2).map(|n| admit(n, NOW)).collect()]);
    push(&mut north, &mut edge, north_id);
    let (mut client_state, mut edge_state) = (sync::State::new(), sync::State::new());
    let mut session = |issuer: &mut SyncLog, edge: &mut RedemptionDoc| {
        let mut reply: Option<Vec<u8>> = None;
        for round in 0..20 {
            let Some(turn) = ClientTurn::after(round, reply.as_deref()) else { return };
            let step = issuer.client_step(&mut client_state, SyncChannel::Relay, turn, NOW_MS).expect("step");
            if let Some(write) = step.write {
                issuer.stored(write);
            }
            let Some(message) = step.message else { return };
            let served = serve_sync(edge, &mut edge_state, &message, Accept::relay(NOW_MS), SyncChannel::Relay);
            reply = served.expect("served").reply;
        }
        panic!("the relay session did not finish");
    };
    session(&mut issuer, &mut edge);
    assert_eq!(issuer.doc().device_record_count(north_id), 2);
    append(&mut north, north_id, 10..14);
    push(&mut north, &mut edge, north_id);
    session(&mut issuer, &mut edge);
    assert_eq!(issuer.doc().device_record_count(north_id), 6, "the edge's news reached the issuer");
}
