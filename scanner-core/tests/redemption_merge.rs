//! Merge laws of the redemption log and duplicate detection across devices.

mod redemption_support;

use std::collections::BTreeSet;

use proptest::prelude::*;
use redemption_support::*;
use scanner_core::redemption::decision::ScanIndex;
use scanner_core::redemption::document::Batch;
use scanner_core::redemption::{
    DeviceId, EventReport, HybridClock, Outcome, RedemptionDoc, ScanKind, ScanRecord, TicketRef,
};
use scanner_core::EntryPolicy;

type RecordSet = BTreeSet<(DeviceId, [u8; 32])>;

fn set(doc: &RedemptionDoc) -> RecordSet {
    doc.record_set().expect("valid log")
}

fn report(doc: &RedemptionDoc) -> EventReport {
    EventReport::from_logs(&doc.device_logs().expect("valid log"))
}

fn merged(docs: &[&RedemptionDoc]) -> RedemptionDoc {
    let mut out = RedemptionDoc::new_relay();
    for d in docs {
        out.merge(d).expect("valid merge");
    }
    out
}

fn conflict_tickets(report: &EventReport) -> BTreeSet<TicketRef> {
    report.conflicts.iter().map(|c| c.ticket).collect()
}

/// One device's scans: (ticket number, passed?) in order, split into batches of `batch` records.
fn scenario() -> impl Strategy<Value = Vec<(Vec<(u64, bool)>, usize)>> {
    prop::collection::vec((prop::collection::vec((0u64..12, any::<bool>()), 0..12), 1usize..5), 2..5)
}

fn build(scenario: &[(Vec<(u64, bool)>, usize)]) -> Vec<RedemptionDoc> {
    scenario
        .iter()
        .enumerate()
        .map(|(d, (scans, batch))| {
            let records: Vec<ScanRecord> = scans
                .iter()
                .enumerate()
                .map(|(i, &(n, passed))| {
                    let outcome = if passed { Outcome::Admitted } else { Outcome::AlreadyUsed };
                    record(n, NOW + i as u64, ScanKind::Entry, outcome)
                })
                .collect();
            let batches: Vec<Vec<ScanRecord>> = records.chunks(*batch).map(<[_]>::to_vec).collect();
            device_doc(DeviceId(d as u64 + 1), &batches)
        })
        .collect()
}

/// Ground truth: the single-entry tickets let in more than once, over all devices.
fn injected_duplicates(scenario: &[(Vec<(u64, bool)>, usize)]) -> BTreeSet<TicketRef> {
    let mut counts = std::collections::BTreeMap::new();
    for (scans, _) in scenario {
        for &(n, passed) in scans {
            if passed {
                *counts.entry(n).or_insert(0) += 1;
            }
        }
    }
    counts.into_iter().filter(|&(_, c)| c > 1).map(|(n, _)| TicketRef::of(&ticket_id(n))).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The check-in list is every scan that let a ticket in, once, whichever way the logs were merged:
    /// (ticket, device) pairs as the scenario made them, nothing for the "already used" answers.
    #[test]
    fn check_ins_are_exactly_the_passes_made(s in scenario()) {
        let docs = build(&s);
        let mut expected: Vec<(TicketRef, DeviceId)> = Vec::new();
        for (d, (scans, _)) in s.iter().enumerate() {
            for &(n, passed) in scans {
                if passed {
                    expected.push((TicketRef::of(&ticket_id(n)), DeviceId(d as u64 + 1)));
                }
            }
        }
        expected.sort();
        let refs: Vec<&RedemptionDoc> = docs.iter().collect();
        let (_, check_ins) = EventReport::with_check_ins(&merged(&refs).device_logs().expect("valid log"));
        let mut got: Vec<(TicketRef, DeviceId)> = check_ins.iter().map(|c| (c.ticket, c.scan.device)).collect();
        prop_assert!(check_ins.windows(2).all(|w| (w[0].scan.hlc, w[0].scan.device) <= (w[1].scan.hlc, w[1].scan.device)));
        got.sort();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn merge_is_commutative_associative_and_idempotent(s in scenario()) {
        let docs = build(&s);
        let (a, b) = (&docs[0], &docs[1]);
        let c = docs.get(2).unwrap_or(&docs[0]);
        // Commutative.
        prop_assert_eq!(set(&merged(&[a, b])), set(&merged(&[b, a])));
        prop_assert_eq!(report(&merged(&[a, b])), report(&merged(&[b, a])));
        // Associative: (a ∪ b) ∪ c = a ∪ (b ∪ c).
        let ab = merged(&[a, b]);
        let bc = merged(&[b, c]);
        let left = merged(&[&ab, c]);
        let right = merged(&[a, &bc]);
        prop_assert_eq!(set(&left), set(&right));
        prop_assert_eq!(report(&left), report(&right));
        // Idempotent: a ∪ a = a, (a ∪ b) ∪ b = a ∪ b.
        prop_assert_eq!(set(&merged(&[a, a])), set(a));
        prop_assert_eq!(set(&merged(&[&ab, b])), set(&ab));
        prop_assert_eq!(set(&merged(&[&ab, &ab])), set(&ab));
        // Nothing is lost or invented: the union of the parts.
        let all: RecordSet = docs.iter().flat_map(set).collect();
        let docs_ref: Vec<&RedemptionDoc> = docs.iter().collect();
        prop_assert_eq!(set(&merged(&docs_ref)), all);
    }

    #[test]
    fn every_injected_duplicate_is_reported_whatever_the_merge_order(s in scenario(), seed in any::<u64>()) {
        let docs = build(&s);
        let expected = injected_duplicates(&s);
        // Merge in a seed-dependent order, and also by sync through a relay in reverse order.
        let mut order: Vec<usize> = (0..docs.len()).collect();
        let mut x = seed;
        for i in (1..order.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (x >> 33) as usize % (i + 1));
        }
        let shuffled: Vec<&RedemptionDoc> = order.iter().map(|&i| &docs[i]).collect();
        let by_merge = report(&merged(&shuffled));
        prop_assert_eq!(conflict_tickets(&by_merge), expected.clone());

        let mut relay = RedemptionDoc::new_relay();
        let mut devices = docs.clone();
        for d in devices.iter_mut().rev() {
            sync_with_relay(d, &mut relay);
        }
        let by_sync = report(&relay);
        prop_assert_eq!(conflict_tickets(&by_sync), expected);
        prop_assert_eq!(by_sync, by_merge);
        // Saved logs merged offline in any order give the same report too.
        let saved: Vec<Vec<u8>> = order.iter().rev().map(|&i| docs[i].save()).collect();
        let offline = RedemptionDoc::merge_saved(saved.iter().map(Vec::as_slice)).expect("valid logs");
        prop_assert_eq!(report(&offline), report(&relay));
    }
}

/// The measured pitfall of a map ticket → list of scans: two devices creating a ticket's entry
/// concurrently produce conflicting values under one key and a plain get() hides one. Here devices never
/// share a key, so all 500 concurrent duplicates surface, each with both records.
#[test]
fn concurrent_first_scans_of_the_same_tickets_are_all_reported() {
    let a_records: Vec<ScanRecord> = (0..500).map(|n| admit(n, NOW)).collect();
    let b_records: Vec<ScanRecord> = (0..500).map(|n| admit(n, NOW + 1)).collect();
    let mut a = device_doc(DeviceId(0xa), &[a_records]);
    let mut b = device_doc(DeviceId(0xb), &[b_records]);
    sync_docs(&mut a, &mut Default::default(), &mut b, &mut Default::default());
    for doc in [&a, &b] {
        let r = report(doc);
        assert_eq!(r.conflicts.len(), 500);
        for c in &r.conflicts {
            let devices: BTreeSet<DeviceId> = c.scans.iter().map(|s| s.device).collect();
            assert_eq!(devices, BTreeSet::from([DeviceId(0xa), DeviceId(0xb)]));
        }
    }
    assert_eq!(set(&a), set(&b));
}

#[test]
fn re_entry_tickets_conflict_only_when_entering_while_inside() {
    let re = |n, secs, kind| ScanRecord { reentry: true, ..record(n, secs, kind, Outcome::Admitted) };
    // Ticket 1: in, out, in — fine. Ticket 2: in on two devices with no exit between — conflict.
    let a = device_doc(DeviceId(1), &[vec![re(1, NOW, ScanKind::Entry), re(2, NOW, ScanKind::Entry)]]);
    let b = device_doc(
        DeviceId(2),
        &[vec![re(1, NOW + 10, ScanKind::Exit), re(1, NOW + 20, ScanKind::Entry), re(2, NOW + 5, ScanKind::Entry)]],
    );
    let r = report(&merged(&[&a, &b]));
    assert_eq!(conflict_tickets(&r), BTreeSet::from([TicketRef::of(&ticket_id(2))]));
    assert!(r.conflicts[0].reentry);
    assert_eq!(r.admitted, 4);
    assert_eq!(r.exits, 1);
}

/// 20 devices scan 50k tickets offline; 1% of the tickets are also presented at a second device that has
/// not heard of the first admission (cross-device duplicates), and some are rescanned at the same device
/// (refused there: not conflicts). After every device syncs with the server, every device and the server
/// report exactly the injected duplicates: all of them, and nothing else.
#[test]
fn simulation_20_offline_devices_50k_tickets_1_percent_duplicates() {
    const DEVICES: u64 = 20;
    const TICKETS: u64 = 50_000;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Each device's queue of (ticket, second offset).
    let mut queues: Vec<Vec<(u64, u64)>> = vec![Vec::new(); DEVICES as usize];
    for n in 0..TICKETS {
        queues[(n % DEVICES) as usize].push((n, n / DEVICES));
    }
    let mut injected = BTreeSet::new();
    while injected.len() < (TICKETS / 100) as usize {
        let n = next() % TICKETS;
        if injected.insert(n) {
            let other = (n % DEVICES + 1 + next() % (DEVICES - 1)) % DEVICES;
            queues[other as usize].push((n, 3000 + next() % 1000));
        }
    }
    // Same-device rescans: refused by the device itself, so never conflicts.
    for (d, q) in queues.iter_mut().enumerate() {
        let n = d as u64;
        q.push((n, 4500));
    }

    let mut docs = Vec::new();
    for (d, queue) in queues.iter_mut().enumerate() {
        queue.sort_by_key(|&(_, t)| t);
        let device = DeviceId(0x1000 + d as u64);
        let mut doc = RedemptionDoc::new_for_device(device);
        let mut index = ScanIndex::new();
        let mut clock = HybridClock::new();
        let gates = vec![format!("gate-{}", d % 4)];
        let mut pending = Vec::new();
        for &(n, offset) in queue.iter() {
            let secs = NOW + offset;
            let ticket = TicketRef::of(&ticket_id(n));
            let outcome = match index.blocking_scan(&ticket, EntryPolicy::SingleEntry) {
                None => Outcome::Admitted,
                Some(_) => Outcome::AlreadyUsed,
            };
            let r = ScanRecord {
                ticket,
                hlc: clock.tick(secs * 1000),
                wall_time: secs as u32,
                gate: 0,
                kind: ScanKind::Entry,
                reentry: false,
                outcome,
                ticket_type: 0,
                decided_by_edge: false,
                addon: None,
            };
            index.add(device, &r);
            pending.push(r);
            if pending.len() == 256 {
                let batch = Batch { device_name: "door", gates: &gates, records: &pending, overrides: &[], time: 0 };
                doc.append_batch(device, batch).expect("append");
                pending.clear();
            }
        }
        let batch = Batch { device_name: "door", gates: &gates, records: &pending, overrides: &[], time: 0 };
        doc.append_batch(device, batch).expect("append");
        docs.push(doc);
    }

    let expected: BTreeSet<TicketRef> = injected.iter().map(|&n| TicketRef::of(&ticket_id(n))).collect();
    // Every device syncs with the server (uploading), then again (downloading what others sent).
    let mut server = RedemptionDoc::new_relay();
    let mut server_states: Vec<automerge::sync::State> = vec![Default::default(); docs.len()];
    let mut device_states: Vec<automerge::sync::State> = vec![Default::default(); docs.len()];
    for _ in 0..2 {
        for (i, doc) in docs.iter_mut().enumerate() {
            sync_docs(doc, &mut device_states[i], &mut server, &mut server_states[i]);
        }
    }
    let total = TICKETS as usize + injected.len() + DEVICES as usize;
    assert_eq!(server.record_count(), total);
    let server_report = report(&server);
    assert_eq!(conflict_tickets(&server_report), expected, "all injected duplicates reported, none invented");
    assert!(server_report.conflicts.iter().all(|c| c.scans.len() == 2));
    assert_eq!(server_report.already_used, DEVICES);
    assert_eq!(server_report.admitted, TICKETS + injected.len() as u64);
    for doc in [&docs[0], &docs[7], &docs[19]] {
        assert_eq!(doc.record_count(), total);
        assert_eq!(conflict_tickets(&report(doc)), expected);
    }
}
