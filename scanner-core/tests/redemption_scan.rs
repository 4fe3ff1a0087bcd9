//! The scan decision on the durable device log: verification offline, single entry, re-entry, overrides,
//! holder names, persistence across restarts, sync between stores.

mod redemption_support;

use redemption_support::*;
use scanner_core::error::{DeviceKind, Error};
use scanner_core::manifest::{seal_entry, Manifest, ManifestEntry};
use scanner_core::redemption::decision::{ScanInput, Verdict};
use scanner_core::redemption::store::RedemptionLog;
use scanner_core::redemption::{
    serve_sync, Accept, DeviceId, Outcome, RedemptionDoc, RefusalCode, ScanKind, SyncChannel,
};
use scanner_core::{EntryPolicy, RevocationHash, RevocationList};

fn new_log(dir: &std::path::Path, name: &str) -> (RedemptionLog, scanner_core::IssuerKey) {
    let (key, ring) = issuer();
    let mut log = RedemptionLog::open_or_create(dir, name).expect("create");
    log.set_keyring(&ring.to_json()).expect("keyring");
    log.set_event(EVENT).expect("event");
    (log, key)
}

fn entry(text: &str) -> ScanInput<'_> {
    ScanInput { text, kind: ScanKind::Entry, override_reason: None }
}

fn at(secs: u64) -> u64 {
    secs * 1000
}

#[test]
fn single_entry_admits_once_then_says_when_where_and_which_device() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, key) = new_log(dir.path(), "north-1");
    let text = qr(&key, &ticket(1, EntryPolicy::SingleEntry, EVENT));
    let first = log.scan(entry(&text), "North", at(NOW)).expect("scan");
    assert!(first.verdict.is_admit(), "{:?}", first.verdict);
    assert_eq!(first.record.outcome, Outcome::Admitted);
    let second = log.scan(entry(&text), "South", at(NOW + 90)).expect("scan");
    match second.verdict {
        Verdict::AlreadyUsed(used) => {
            assert_eq!(used.gate, "North");
            assert_eq!(used.wall_time, NOW as u32);
            assert_eq!(used.device, log.device());
            assert_eq!(used.device_name, "north-1");
            assert!(used.this_device);
        }
        other => panic!("expected already used, got {other:?}"),
    }
    assert_eq!(second.record.outcome, Outcome::AlreadyUsed);
    assert_eq!(log.record_count(), 2);
}

#[test]
fn revoked_wrong_event_and_out_of_window_tickets_are_refused_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, key) = new_log(dir.path(), "door");
    let mut issuer_list = RevocationList::new();
    issuer_list.publish(&key, [RevocationHash::of(&ticket_id(2))]);
    log.set_revocations(&issuer_list.to_json()).expect("revocations");

    let revoked = qr(&key, &ticket(2, EntryPolicy::SingleEntry, EVENT));
    let wrong_event = qr(&key, &ticket(3, EntryPolicy::SingleEntry, EVENT + 1));
    let mut late = ticket(4, EntryPolicy::SingleEntry, EVENT);
    late.valid_until = Some((NOW - 1) as u32);
    let late = qr(&key, &late);
    let mut early = ticket(5, EntryPolicy::SingleEntry, EVENT);
    early.valid_from = Some((NOW + 3600) as u32);
    let early = qr(&key, &early);
    let impostor = scanner_core::IssuerKey::from_seed(scanner_core::KeyId(1), [9; 32]);
    let forged = qr(&impostor, &ticket(6, EntryPolicy::SingleEntry, EVENT));

    for (text, code) in [
        (revoked.as_str(), RefusalCode::Revoked),
        (wrong_event.as_str(), RefusalCode::WrongEvent),
        (late.as_str(), RefusalCode::Expired),
        (early.as_str(), RefusalCode::NotYetValid),
        (forged.as_str(), RefusalCode::BadSignature),
        ("HTTPS://EXAMPLE.COM", RefusalCode::NotATicket),
        ("TK1:abc", RefusalCode::Malformed),
    ] {
        let scan = log.scan(entry(text), "main", at(NOW)).expect("scan");
        assert_eq!(scan.record.outcome, Outcome::Refused(code), "{text}");
        assert!(matches!(scan.verdict, Verdict::Refused { code: c, .. } if c == code));
    }
    // Refusals are recorded and reported by reason.
    let report = log.report(NOW as i64).expect("report");
    assert_eq!(report.refused, 7);
    assert_eq!(report.refused_by_reason.get("revoked"), Some(&1));
    assert_eq!(report.refused_by_reason.get("wrong_event"), Some(&1));
    assert_eq!(report.admitted, 0);
}

#[test]
fn re_entry_needs_an_exit_between_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, key) = new_log(dir.path(), "door");
    let text = qr(&key, &ticket(7, EntryPolicy::ReEntry, EVENT));
    assert!(log.scan(entry(&text), "main", at(NOW)).expect("scan").verdict.is_admit());
    assert!(matches!(log.scan(entry(&text), "main", at(NOW + 1)).expect("scan").verdict, Verdict::AlreadyUsed(_)));
    let exit = ScanInput { text: &text, kind: ScanKind::Exit, override_reason: None };
    assert!(matches!(log.scan(exit, "main", at(NOW + 2)).expect("scan").verdict, Verdict::Exit { .. }));
    assert!(log.scan(entry(&text), "main", at(NOW + 3)).expect("scan").verdict.is_admit());
    let report = log.report(NOW as i64).expect("report");
    assert_eq!((report.admitted, report.exits, report.already_used), (2, 1, 1));
    assert!(report.conflicts.is_empty());
}

#[test]
fn an_operator_override_admits_and_is_recorded_with_its_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, key) = new_log(dir.path(), "door");
    let text = qr(&key, &ticket(8, EntryPolicy::SingleEntry, EVENT));
    log.scan(entry(&text), "main", at(NOW)).expect("scan");
    let forced = ScanInput { text: &text, kind: ScanKind::Entry, override_reason: Some("phone died, ID checked") };
    let scan = log.scan(forced, "side", at(NOW + 5)).expect("scan");
    assert_eq!(scan.record.outcome, Outcome::AdmittedOverride);
    match &scan.verdict {
        Verdict::Admit(a) => {
            assert_eq!(a.override_reason.as_deref(), Some("phone died, ID checked"));
            assert!(a.overridden.as_deref().unwrap_or_default().contains("ALREADY USED"));
        }
        other => panic!("{other:?}"),
    }
    // A code that is not a genuine ticket is never admitted, override or not.
    let junk = ScanInput { text: "TK1:abc", kind: ScanKind::Entry, override_reason: Some("trust me") };
    assert!(matches!(log.scan(junk, "side", at(NOW + 6)).expect("scan").verdict, Verdict::Refused { .. }));
    // The reason survives folding, restart and the report.
    drop(log);
    let mut log = RedemptionLog::open(dir.path()).expect("reopen");
    let report = log.report(NOW as i64).expect("report");
    assert_eq!(report.overrides.len(), 1);
    assert_eq!(report.overrides[0].override_reason.as_deref(), Some("phone died, ID checked"));
    assert_eq!(report.conflicts.len(), 1);
}

#[test]
fn the_holder_name_comes_from_the_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, key) = new_log(dir.path(), "door");
    let t = ticket(9, EntryPolicy::SingleEntry, EVENT);
    let mut manifest = Manifest::new(EVENT, NOW);
    let e =
        ManifestEntry { ticket_type: t.ticket_type, addons: t.addons, holder_name: "Grace Hopper".into(), due: None };
    manifest.entries.push(seal_entry(EVENT, &t.ticket_id, &e, [1; 12]).expect("seal"));
    log.set_manifest(&manifest.to_json()).expect("manifest");
    match log.scan(entry(&qr(&key, &t)), "main", at(NOW)).expect("scan").verdict {
        Verdict::Admit(a) => assert_eq!(a.holder.as_deref(), Some("Grace Hopper")),
        other => panic!("{other:?}"),
    }
    match log
        .scan(entry(&qr(&key, &ticket(10, EntryPolicy::SingleEntry, EVENT))), "main", at(NOW))
        .expect("scan")
        .verdict
    {
        Verdict::Admit(a) => assert_eq!(a.holder, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn scans_survive_restarts_folded_or_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, key) = new_log(dir.path(), "door");
    log.set_fold_every(10);
    let device = log.device();
    for n in 0..25 {
        log.scan(entry(&qr(&key, &ticket(n, EntryPolicy::SingleEntry, EVENT))), "main", at(NOW + n)).expect("scan");
        if log.should_fold() {
            log.fold_pending(NOW as i64).expect("fold");
        }
    }
    assert_eq!(log.pending_count(), 5);
    let last_hlc = log.index().history(&scanner_core::redemption::TicketRef::of(&ticket_id(24)))[0].hlc;
    drop(log);
    let mut log = RedemptionLog::open(dir.path()).expect("reopen");
    assert_eq!(log.device(), device);
    assert_eq!(log.record_count(), 25);
    assert_eq!(log.pending_count(), 5);
    // Everything is still known to the decision, and the clock moves on from where it was even if the
    // wall clock went back.
    let again = log.scan(entry(&qr(&key, &ticket(3, EntryPolicy::SingleEntry, EVENT))), "main", at(NOW - 3600));
    let again = again.expect("scan");
    assert!(matches!(again.verdict, Verdict::AlreadyUsed(_)));
    assert!(again.record.hlc > last_hlc);
    // Many folds trigger compaction; the log reads back the same.
    for i in 0..80 {
        log.scan(entry("junk"), "main", at(NOW + 100 + i)).expect("scan");
        log.fold_pending(NOW as i64).expect("fold");
    }
    let before = log.doc().record_set().expect("valid");
    drop(log);
    let log = RedemptionLog::open(dir.path()).expect("reopen");
    assert_eq!(log.doc().record_set().expect("valid"), before);
    assert_eq!(log.record_count(), 25 + 1 + 80);
    assert!(log.size_on_disk().expect("size") > 0);
}

#[test]
fn two_stores_learn_of_each_others_admits_through_the_server() {
    let (a_dir, b_dir) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let (mut a, key) = new_log(a_dir.path(), "north");
    let (mut b, _) = new_log(b_dir.path(), "south");
    let text = qr(&key, &ticket(11, EntryPolicy::SingleEntry, EVENT));
    assert!(a.scan(entry(&text), "North", at(NOW)).expect("scan").verdict.is_admit());

    let mut server = RedemptionDoc::new_relay();
    let mut server_states = std::collections::HashMap::new();
    let (a_id, b_id) = (a.device(), b.device());
    let mut via_server = |who: DeviceId,
                          server: &mut RedemptionDoc,
                          channel: SyncChannel,
                          msg: &[u8]|
     -> Result<Option<Vec<u8>>, String> {
        // A fresh server state from the stored bytes on every request, as an HTTP server would do.
        let stored: &mut Vec<u8> = server_states.entry((who, channel)).or_default();
        let mut state = if stored.is_empty() {
            automerge::sync::State::new()
        } else {
            scanner_core::redemption::document::decode_peer_state(stored).map_err(|e| e.to_string())?
        };
        let accept = Accept::device(who, (NOW + 60) * 1000);
        let reply = serve_sync(server, &mut state, msg, accept, channel).map_err(|e| e.to_string())?;
        *stored = scanner_core::redemption::document::encode_peer_state(&state);
        Ok(reply.reply)
    };
    let summary = a.sync_with("server", NOW as i64, |c, m| via_server(a_id, &mut server, c, m)).expect("sync a");
    assert!(summary.round_trips >= 1);
    assert_eq!(server.record_count(), 1);
    let summary = b.sync_with("server", NOW as i64, |c, m| via_server(b_id, &mut server, c, m)).expect("sync b");
    assert_eq!(summary.new_records, 1);
    match b.scan(entry(&text), "South", at(NOW + 30)).expect("scan").verdict {
        Verdict::AlreadyUsed(used) => {
            assert_eq!(used.gate, "North");
            assert_eq!(used.device_name, "north");
            assert!(!used.this_device);
        }
        other => panic!("{other:?}"),
    }
    // A failing transport is an error, and a retry works.
    let err = b.sync_with("server", NOW as i64, |_, _| Err::<Option<Vec<u8>>, _>("network down"));
    assert!(matches!(err, Err(Error::Device(DeviceKind::Transport(_)))));
    b.sync_with("server", NOW as i64, |c, m| via_server(b_id, &mut server, c, m)).expect("retry");
    a.sync_with("server", NOW as i64, |c, m| via_server(a_id, &mut server, c, m)).expect("sync a again");
    assert_eq!(a.record_count(), 2);
    assert_eq!(a.report(NOW as i64).expect("report").already_used, 1);
}
