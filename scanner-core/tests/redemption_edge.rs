//! Edge-decided scans in the log: a device's mirror of an edge verdict and the edge's own record of the
//! same admission count once; real duplicates (offline + edge, offline twice) are still conflicts.

mod redemption_support;

use scanner_core::wire::VerdictBody;

use redemption_support::*;
use scanner_core::redemption::decision::ScanInput;
use scanner_core::redemption::document::Batch;
use scanner_core::redemption::store::RedemptionLog;
use scanner_core::redemption::{DecisionPath, Device};
use scanner_core::redemption::{
    DeviceId, EdgeVerdict, EventReport, Hlc, Outcome, RedemptionDoc, ScanKind, ScanRecord, TicketRef, Verdict,
};
use scanner_core::EntryPolicy;

const EDGE: DeviceId = DeviceId(0xed6e_0000_0000_0001);
const NOW_MS: u64 = NOW * 1000;

/// The edge's JSON for a verdict (scanner-core's wire body, as the edge writes it, with its record's clock).
fn edge_reply(verdict: &Verdict, hlc: Option<Hlc>) -> EdgeVerdict {
    let body = VerdictBody::new(verdict.clone(), DecisionPath::Edge, hlc).to_json();
    EdgeVerdict::from_reply(200, body.as_bytes()).unwrap()
}

/// The edge's own part of the log: its records of the admissions it decided.
fn edge_log(records: &[ScanRecord]) -> RedemptionDoc {
    let mut doc = RedemptionDoc::new_for_device(EDGE);
    let gates = vec!["North".to_owned()];
    let batch = Batch { device_name: "edge", gates: &gates, records, overrides: &[], time: 0 };
    doc.append_batch(EDGE, batch).unwrap();
    doc
}

fn edge_record(n: u64, hlc: Hlc, kind: ScanKind, reentry: bool) -> ScanRecord {
    ScanRecord {
        ticket: TicketRef::of(&ticket_id(n)),
        hlc,
        wall_time: (hlc.millis() / 1000) as u32,
        gate: 0,
        kind,
        reentry,
        outcome: Outcome::Admitted,
        ticket_type: (n % 3) as u8,
        decided_by_edge: true,
        addon: None,
    }
}

fn device(id: u64, name: &str) -> Device {
    let (_, ring) = issuer();
    let mut d = Device::new(DeviceId(id), name).unwrap();
    d.set_keyring(&ring.to_json()).unwrap();
    d.set_event(EVENT);
    d
}

fn saved(d: &mut Device) -> RedemptionDoc {
    d.fold(0).unwrap();
    d.doc().clone()
}

fn merged(docs: &[&RedemptionDoc]) -> EventReport {
    let mut out = RedemptionDoc::new_relay();
    for d in docs {
        out.merge(d).unwrap();
    }
    EventReport::from_logs(&out.device_logs().unwrap())
}

/// What the edge answers for a first scan: scanner-core's decision (the edge runs the same `decide_at`).
fn admit_verdict(text: &str) -> Verdict {
    let mut fresh = device(0xfeed, "edge-twin");
    fresh.scan(ScanInput { text, kind: ScanKind::Entry, override_reason: None }, "North", NOW_MS).unwrap().verdict
}

#[test]
fn mirror_and_edge_record_are_one_admission() {
    let (key, _) = issuer();
    let qr = qr(&key, &ticket(1, EntryPolicy::SingleEntry, EVENT));
    let edge_hlc = Hlc((NOW_MS - 20) << 16);
    let mut a = device(0xa, "door a");
    let verdict = admit_verdict(&qr);
    assert!(verdict.is_admit());
    let mirror = a.record_edge_verdict(&qr, ScanKind::Entry, "North", &edge_reply(&verdict, Some(edge_hlc)), NOW_MS);
    let mirror = mirror.unwrap();
    assert_eq!(mirror.path, DecisionPath::Edge);

    // The mirror alone (edge log not merged yet) counts once.
    let alone = a.report().unwrap();
    assert_eq!((alone.admitted, alone.decided_by_edge, alone.edge_copies), (1, 1, 0));
    assert!(alone.conflicts.is_empty());

    let a_doc = saved(&mut a);
    let e_doc = edge_log(&[edge_record(1, edge_hlc, ScanKind::Entry, false)]);
    let both = merged(&[&a_doc, &e_doc]);
    assert_eq!(both.admitted, 1, "{both:#?}");
    assert_eq!(both.decided_by_edge, 1);
    assert_eq!(both.edge_copies, 1);
    assert!(both.conflicts.is_empty(), "{:#?}", both.conflicts);
    assert_eq!(both.scans, 2);
    assert_eq!(both.admitted_by_gate.values().sum::<u64>(), 1);
    assert_eq!(both, merged(&[&e_doc, &a_doc]), "the same whatever the merge order");

    // An edge that did not send its clock: the mirror has the device's own, and nothing shows it is the
    // same decision as the edge's record, so the two are reported as a conflict (visible, not hidden).
    let mut b = device(0xb, "door b");
    b.record_edge_verdict(&qr, ScanKind::Entry, "North", &edge_reply(&verdict, None), NOW_MS + 900).unwrap();
    let b_doc = saved(&mut b);
    let r = merged(&[&b_doc, &e_doc]);
    assert_eq!((r.admitted, r.edge_copies, r.conflicts.len()), (2, 0, 1));
}

#[test]
fn hub_and_edge_admitting_the_same_ticket_are_a_conflict_and_their_mirrors_are_copies() {
    const HUB: DeviceId = DeviceId(0x40b0_0000_0000_0001);
    let (key, _) = issuer();
    let qr = qr(&key, &ticket(5, EntryPolicy::SingleEntry, EVENT));
    let verdict = admit_verdict(&qr);
    assert!(verdict.is_admit());
    // The hub (cut off from the edge) admits at door a; 300 ms later the edge admits the same ticket at
    // door b, which only reaches the edge. Each device mirrors the verdict it showed, with the clock value
    // the verdict carried.
    let hub_hlc = Hlc((NOW_MS + 100) << 16);
    let edge_hlc = Hlc((NOW_MS + 400) << 16);
    let mut a = device(0xa, "door a");
    a.record_edge_verdict(&qr, ScanKind::Entry, "North", &edge_reply(&verdict, Some(hub_hlc)), NOW_MS + 100).unwrap();
    let mut b = device(0xb, "door b");
    b.record_edge_verdict(&qr, ScanKind::Entry, "South", &edge_reply(&verdict, Some(edge_hlc)), NOW_MS + 400).unwrap();
    let (a_doc, b_doc) = (saved(&mut a), saved(&mut b));
    let mut hub_doc = RedemptionDoc::new_for_device(HUB);
    let gates = vec!["North".to_owned()];
    let hub_records = [edge_record(5, hub_hlc, ScanKind::Entry, false)];
    let batch = Batch { device_name: "hub", gates: &gates, records: &hub_records, overrides: &[], time: 0 };
    hub_doc.append_batch(HUB, batch).unwrap();
    let e_doc = edge_log(&[edge_record(5, edge_hlc, ScanKind::Entry, false)]);

    // The two servers' records alone: two admissions of a single-entry ticket, one conflict.
    let servers = merged(&[&hub_doc, &e_doc]);
    assert_eq!((servers.admitted, servers.edge_copies, servers.conflicts.len()), (2, 0, 1), "{servers:#?}");
    assert_eq!(servers.conflicts[0].scans.len(), 2);
    assert_eq!(servers.conflicts[0].scans[0].device, HUB);
    assert_eq!(servers.conflicts[0].scans[1].device, EDGE);

    // Everything merged: each mirror is a copy of its own server's record (counted once), the conflict
    // stays, with one scan per decision.
    let all = merged(&[&a_doc, &hub_doc, &b_doc, &e_doc]);
    assert_eq!((all.scans, all.admitted, all.decided_by_edge, all.edge_copies), (4, 2, 2, 2), "{all:#?}");
    assert_eq!(all.conflicts.len(), 1);
    let hlcs: Vec<Hlc> = all.conflicts[0].scans.iter().map(|s| s.hlc).collect();
    assert_eq!(hlcs, vec![hub_hlc, edge_hlc]);
    assert_eq!(all, merged(&[&e_doc, &b_doc, &hub_doc, &a_doc]), "the same whatever the merge order");

    // Only the mirrors merged (the servers' own parts not yet relayed): still two decisions, one conflict.
    let mirrors = merged(&[&a_doc, &b_doc]);
    assert_eq!((mirrors.admitted, mirrors.edge_copies, mirrors.conflicts.len()), (2, 0, 1));

    // One decision only (the hub's) and its mirror: one admission, one copy, no conflict.
    let one = merged(&[&a_doc, &hub_doc]);
    assert_eq!((one.admitted, one.edge_copies, one.conflicts.len()), (1, 1, 0));
}

#[test]
fn mirror_plus_offline_admission_elsewhere_is_a_conflict() {
    let (key, _) = issuer();
    let qr = qr(&key, &ticket(2, EntryPolicy::SingleEntry, EVENT));
    let edge_hlc = Hlc((NOW_MS + 5) << 16);
    let mut a = device(0xa, "door a");
    let verdict = admit_verdict(&qr);
    a.record_edge_verdict(&qr, ScanKind::Entry, "North", &edge_reply(&verdict, Some(edge_hlc)), NOW_MS + 5).unwrap();
    // Device c never heard of it and admits the same ticket offline.
    let mut c = device(0xc, "door c");
    let offline = c.scan(ScanInput { text: &qr, kind: ScanKind::Entry, override_reason: None }, "South", NOW_MS);
    let offline = offline.unwrap();
    assert!(offline.verdict.is_admit());
    assert_eq!(offline.path, DecisionPath::Offline);
    let (a_doc, c_doc) = (saved(&mut a), saved(&mut c));
    let e_doc = edge_log(&[edge_record(2, edge_hlc, ScanKind::Entry, false)]);

    for report in [merged(&[&a_doc, &c_doc]), merged(&[&a_doc, &c_doc, &e_doc]), merged(&[&e_doc, &c_doc])] {
        assert_eq!(report.conflicts.len(), 1, "{report:#?}");
        let paths: Vec<DecisionPath> = report.conflicts[0].scans.iter().map(|s| s.path).collect();
        assert_eq!(paths, vec![DecisionPath::Offline, DecisionPath::Edge]);
        assert_eq!(report.admitted, 2);
        assert_eq!(report.decided_by_edge, 1);
    }
    // Twice offline is a conflict as before.
    let mut d = device(0xd, "door d");
    d.scan(ScanInput { text: &qr, kind: ScanKind::Entry, override_reason: None }, "West", NOW_MS + 1).unwrap();
    let d_doc = saved(&mut d);
    let r = merged(&[&c_doc, &d_doc]);
    assert_eq!((r.conflicts.len(), r.conflicts[0].scans.len()), (1, 2));
}

#[test]
fn re_entry_through_the_edge_is_not_a_conflict_but_entering_offline_while_inside_is() {
    let t = |ms: u64| Hlc((NOW_MS + ms) << 16);
    let n = 3;
    // Edge: in at +0, out at +1000, in again at +2000. Device a mirrors each verdict with the edge's clock.
    let edge = [
        edge_record(n, t(0), ScanKind::Entry, true),
        edge_record(n, t(1000), ScanKind::Exit, true),
        edge_record(n, t(2000), ScanKind::Entry, true),
    ];
    let mirrors: Vec<ScanRecord> = edge.iter().map(|r| ScanRecord { gate: 0, ..*r }).collect();
    let e_doc = edge_log(&edge);
    let a_doc = device_doc(DeviceId(0xa), std::slice::from_ref(&mirrors));
    let r = merged(&[&a_doc, &e_doc]);
    assert_eq!((r.admitted, r.exits, r.edge_copies), (2, 1, 3), "{r:#?}");
    assert!(r.conflicts.is_empty(), "{:#?}", r.conflicts);

    // Online passes with other clock values are other decisions, not copies: an edge-decided entry 300 ms
    // after the edge's own entry, with no exit between, is entering while inside.
    let skewed: Vec<ScanRecord> = edge.iter().map(|r| ScanRecord { hlc: Hlc(r.hlc.0 + (300 << 16)), ..*r }).collect();
    let b_doc = device_doc(DeviceId(0xb), std::slice::from_ref(&skewed));
    let r = merged(&[&b_doc, &e_doc]);
    assert_eq!((r.admitted, r.exits, r.edge_copies), (4, 2, 0), "{r:#?}");
    assert_eq!(r.conflicts.len(), 1, "{r:#?}");

    // Offline entry at +500 while the holder is inside (entered via the edge at +0): a conflict.
    let offline = ScanRecord { reentry: true, ..record(n, 0, ScanKind::Entry, Outcome::Admitted) };
    let offline = ScanRecord { hlc: t(500), ..offline };
    let c_doc = device_doc(DeviceId(0xc), &[vec![offline]]);
    let r = merged(&[&a_doc, &e_doc, &c_doc]);
    assert_eq!(r.conflicts.len(), 1, "{r:#?}");
    assert_eq!(r.conflicts[0].scans.len(), 2);
}

#[test]
fn sled_log_records_edge_verdicts_durably() {
    let dir = tempfile::tempdir().unwrap();
    let (key, ring) = issuer();
    let qr = qr(&key, &ticket(4, EntryPolicy::SingleEntry, EVENT));
    let verdict = admit_verdict(&qr);
    let seq = {
        let mut log = RedemptionLog::open_or_create(dir.path(), "door").unwrap();
        log.set_keyring(&ring.to_json()).unwrap();
        log.set_event(EVENT).unwrap();
        log.set_edge(Some("http://127.0.0.1:1")).unwrap();
        let r = log.record_edge_verdict(&qr, ScanKind::Entry, "North", &edge_reply(&verdict, None), NOW_MS).unwrap();
        assert_eq!(r.path, DecisionPath::Edge);
        r.seq
    };
    let mut log = RedemptionLog::open(dir.path()).unwrap();
    assert_eq!(log.edge().unwrap().as_deref(), Some("http://127.0.0.1:1"));
    assert_eq!(log.pending_count(), 1);
    let again =
        log.scan(ScanInput { text: &qr, kind: ScanKind::Entry, override_reason: None }, "South", NOW_MS + 10).unwrap();
    assert!(matches!(again.verdict, Verdict::AlreadyUsed(ref u) if u.this_device && u.gate == "North"));
    assert_eq!(again.seq, seq + 1);
    let report = log.report(0).unwrap();
    assert_eq!((report.admitted, report.decided_by_edge, report.already_used), (1, 1, 1));
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// If a server (the edge, then a venue hub deciding on its own) admitted a ticket: whether the server's
    /// record is merged, and which device (if any) kept a mirror.
    type Online = Option<(bool, Option<usize>)>;

    fn online() -> impl Strategy<Value = Online> {
        prop::option::of((any::<bool>(), prop::option::of(0usize..3)))
    }

    /// Per ticket: how many devices admitted it offline (0..3), what the edge did and what the hub did.
    fn scenario() -> impl Strategy<Value = Vec<(usize, Online, Online)>> {
        prop::collection::vec((0usize..3, online(), online()), 1..30)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn edge_copies_never_hide_or_invent_a_duplicate(s in scenario(), order in any::<u64>()) {
            let mut devices: Vec<Vec<ScanRecord>> = vec![Vec::new(); 3];
            let mut edge = Vec::new();
            let mut hub = Vec::new();
            let mut expected_conflicts = BTreeSet::new();
            let mut expected_admitted = 0u64;
            for (n, (offline, edge_did, hub_did)) in s.iter().enumerate() {
                let n = n as u64;
                for (d, list) in devices.iter_mut().enumerate().take(*offline) {
                    list.push(record(n, 1000 + d as u64, ScanKind::Entry, Outcome::Admitted));
                }
                // Each server's decision counts once if any copy of it (its record, a mirror) is merged.
                let mut online_decisions = 0u64;
                for (server, did, offset_ms) in [(&mut edge, edge_did, 0), (&mut hub, hub_did, 7)] {
                    if let Some((merged, mirror)) = did {
                        let hlc = Hlc(((NOW + n) * 1000 + offset_ms) << 16);
                        if *merged {
                            server.push(edge_record(n, hlc, ScanKind::Entry, false));
                        }
                        if let Some(d) = mirror {
                            devices[*d].push(edge_record(n, hlc, ScanKind::Entry, false));
                        }
                        online_decisions += u64::from(*merged || mirror.is_some());
                    }
                }
                let admissions = *offline as u64 + online_decisions;
                expected_admitted += admissions;
                if admissions > 1 {
                    expected_conflicts.insert(TicketRef::of(&ticket_id(n)));
                }
            }
            let mut docs: Vec<RedemptionDoc> = devices
                .iter()
                .enumerate()
                .filter(|(_, r)| !r.is_empty())
                .map(|(d, r)| device_doc(DeviceId(d as u64 + 1), std::slice::from_ref(r)))
                .collect();
            if !edge.is_empty() {
                docs.push(edge_log(&edge));
            }
            if !hub.is_empty() {
                let hub_id = DeviceId(0x40b);
                let gates = vec!["North".to_owned()];
                let mut doc = RedemptionDoc::new_for_device(hub_id);
                let batch = Batch { device_name: "hub", gates: &gates, records: &hub, overrides: &[], time: 0 };
                doc.append_batch(hub_id, batch).unwrap();
                docs.push(doc);
            }
            let forward: Vec<&RedemptionDoc> = docs.iter().collect();
            let mut shuffled = forward.clone();
            shuffled.rotate_left((order as usize) % docs.len().max(1));
            shuffled.reverse();
            let report = merged(&forward);
            prop_assert_eq!(&report, &merged(&shuffled));
            prop_assert_eq!(report.admitted, expected_admitted);
            let found: BTreeSet<TicketRef> = report.conflicts.iter().map(|c| c.ticket).collect();
            prop_assert_eq!(found, expected_conflicts);
        }
    }
}
