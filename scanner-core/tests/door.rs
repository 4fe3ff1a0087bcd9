//! The door's scan policy (scanner-core `redemption::door`): roles, undo, gate rules and add-ons redeemed
//! on their own, and when the edge is asked — on the sans-IO `Device`, the same code the CLI and the PWA run.

mod redemption_support;

use redemption_support::*;
use scanner_core::error::{DeviceKind, Error};
use scanner_core::redemption::decision::Verdict;
use scanner_core::redemption::{
    Device, DeviceId, DoorAction, EdgeAnswer, Outcome, RefusalCode, ScanKind, ScanPlan, ScanRequest,
};
use scanner_core::supervisor::SupervisorPass;
use scanner_core::{EntryPolicy, IssuerKey, Ticket};

const MS: u64 = NOW * 1000;

fn device(id: u64, rules: Option<&str>) -> (Device, IssuerKey) {
    let (key, ring) = issuer();
    let mut d = Device::new(DeviceId(id), &format!("door-{id}")).expect("device");
    d.set_keyring(&ring.to_json()).expect("keyring");
    d.set_event(EVENT);
    if let Some(json) = rules {
        d.set_gate_rules(json).expect("rules");
    }
    (d, key)
}

fn pass(key: &IssuerKey, name: &str) -> String {
    SupervisorPass {
        event_id: EVENT,
        key_id: key.key_id(),
        issued_at: NOW as u32 - 60,
        not_after: NOW as u32 + 3600,
        name: name.into(),
    }
    .sign(key)
    .expect("sign")
}

fn request(text: &str, gate: &str, action: DoorAction) -> ScanRequest {
    ScanRequest { text: text.into(), kind: ScanKind::Entry, gate: gate.into(), action }
}

/// Plans offline (no edge) and returns the decided outcome's verdict and record outcome.
fn offline(
    d: &mut Device,
    text: &str,
    gate: &str,
    action: DoorAction,
    at: u64,
) -> scanner_core::Result<(Verdict, Outcome)> {
    match d.plan(request(text, gate, action), false, MS + at)? {
        ScanPlan::Decided(o) => Ok((o.verdict, o.record.outcome)),
        ScanPlan::AskEdge(q) => panic!("asked the edge with no edge configured: {q:?}"),
    }
}

fn typed(n: u64, ticket_type: u8, addons: u16) -> Ticket {
    Ticket { ticket_type, addons, ..ticket(n, EntryPolicy::SingleEntry, EVENT) }
}

#[test]
fn only_a_supervisor_overrides_undoes_or_admits_by_search() {
    let (mut d, key) = device(1, None);
    let text = qr(&key, &typed(1, 0, 0));
    assert!(offline(&mut d, &text, "North", DoorAction::Scan, 0).expect("scan").0.is_admit());
    for action in
        [DoorAction::Override("VIP list".into()), DoorAction::Undo("wrong person".into()), DoorAction::AdmitFound]
    {
        let err = offline(&mut d, &text, "North", action.clone(), 1).expect_err("steward");
        assert!(matches!(err, Error::Device(DeviceKind::SupervisorRequired(_))), "{action:?}: {err}");
    }
    assert_eq!(d.record_count(), 1, "a refused supervisor action records nothing");

    // A forged pass, or one for another event, does not unlock.
    let other = IssuerKey::from_seed(key.key_id(), [1; 32]);
    assert!(d.unlock_supervisor(&pass(&other, "Mallory"), NOW).is_err());
    assert_eq!(d.unlock_supervisor(&pass(&key, "Ana"), NOW).expect("unlock").name, "Ana");
    let (v, outcome) = offline(&mut d, &text, "North", DoorAction::Override("VIP list".into()), 2).expect("override");
    assert_eq!(outcome, Outcome::AdmittedOverride);
    assert!(matches!(v, Verdict::Admit(ref a) if a.override_reason.as_deref() == Some("VIP list")));
    let report = d.report().expect("report");
    assert_eq!(report.overrides[0].override_reason.as_deref(), Some("VIP list (supervisor Ana)"));

    // The pass expires: the device is a steward's again.
    assert!(d.supervisor(NOW + 3601).is_none());
    let err = d.plan(request(&text, "North", DoorAction::AdmitFound), false, (NOW + 3601) * 1000).expect_err("expired");
    assert!(matches!(err, Error::Device(DeviceKind::SupervisorRequired(_))));
    d.unlock_supervisor(&pass(&key, "Ana"), NOW).expect("unlock");
    d.lock_supervisor();
    assert!(d.supervisor(NOW).is_none());
}

#[test]
fn an_undo_lets_the_ticket_in_again_and_the_report_shows_it() {
    let (mut a, key) = device(1, None);
    let (mut b, _) = device(2, None);
    let text = qr(&key, &typed(7, 0, 0));
    assert!(offline(&mut a, &text, "North", DoorAction::Scan, 0).expect("admit").0.is_admit());
    a.unlock_supervisor(&pass(&key, "Ana"), NOW).expect("unlock");
    // Nothing to undo for a ticket never admitted.
    let never = qr(&key, &typed(8, 0, 0));
    let err = offline(&mut a, &never, "North", DoorAction::Undo("mistake".into()), 1).expect_err("nothing");
    assert!(err.to_string().contains("nothing to undo"), "{err}");
    let (v, outcome) =
        offline(&mut a, &text, "North", DoorAction::Undo("scanned the wrong phone".into()), 2).expect("undo");
    assert_eq!(outcome, Outcome::Undone);
    assert!(matches!(v, Verdict::Undone(ref u) if u.reason == "scanned the wrong phone" && u.undid.gate == "North"));
    // The ticket admits again: once.
    assert!(offline(&mut a, &text, "South", DoorAction::Scan, 3).expect("again").0.is_admit());
    assert!(matches!(offline(&mut a, &text, "South", DoorAction::Scan, 4).expect("twice").0, Verdict::AlreadyUsed(_)));

    // Another device learns all of it by merging: it sees the ticket used (by the second admission).
    a.fold(NOW as i64).expect("fold");
    b.merge_saved(&a.save_full()).expect("merge");
    let (v, _) = offline(&mut b, &text, "East", DoorAction::Scan, 5).expect("scan at b");
    assert!(matches!(v, Verdict::AlreadyUsed(ref u) if u.gate == "South"), "{v:?}");

    let report = b.report().expect("report");
    assert_eq!(report.admitted, 1, "the undone admission no longer counts");
    assert!(report.conflicts.is_empty(), "an entry after an undo is not a duplicate: {:?}", report.conflicts);
    assert_eq!(report.undos.len(), 1);
    assert_eq!(report.undos[0].override_reason.as_deref(), Some("scanned the wrong phone (supervisor Ana)"));
    assert_eq!((report.undone.len(), report.undone[0].gate.as_str()), (1, "North"));
    assert_eq!(report.admitted_by_gate.get("South"), Some(&1));
    assert_eq!(report.admitted_by_gate.get("North"), None);
}

#[test]
fn a_ticket_this_device_undid_is_decided_here_not_by_the_edge() {
    let (mut d, key) = device(1, None);
    let text = qr(&key, &typed(9, 0, 0));
    let first = match d.plan(request(&text, "North", DoorAction::Scan), true, MS).expect("plan") {
        ScanPlan::AskEdge(q) => q,
        other => panic!("a fresh ticket goes to the edge first: {other:?}"),
    };
    // The edge is down: decided here, and it says why.
    let o = d.finish(first, EdgeAnswer::Failed("timeout".into()), MS).expect("finish");
    assert!(o.verdict.is_admit());
    assert_eq!(o.edge_note.as_deref(), Some("timeout"));
    d.unlock_supervisor(&pass(&key, "Ana"), NOW).expect("unlock");
    let undo = d.plan(request(&text, "North", DoorAction::Undo("test".into())), true, MS + 1).expect("undo");
    assert!(matches!(undo, ScanPlan::Decided(_)), "an undo is the supervisor's own decision");
    match d.plan(request(&text, "North", DoorAction::Scan), true, MS + 2).expect("plan") {
        ScanPlan::Decided(o) => {
            assert!(o.verdict.is_admit());
            assert!(o.edge_note.expect("note").contains("undid"));
        }
        other => panic!("the edge does not know of the undo yet: {other:?}"),
    }
}

const RULES: &str = r#"{"format":"offline-tickets/gate-rules/v1","event_id":77,
    "ticket_type_names":["Day pass","VIP"],"addon_names":["Drink voucher","T-shirt"],
    "gates":[{"gate":"VIP entrance","ticket_types":[1]},{"gate":"Bar","redeems_addon":0}]}"#;

#[test]
fn gates_refuse_the_wrong_tickets_and_redeem_vouchers_once() {
    let (mut d, key) = device(1, Some(RULES));
    let day = qr(&key, &typed(1, 0, 0b01));
    let vip = qr(&key, &typed(2, 1, 0b10));
    let (v, outcome) = offline(&mut d, &day, "VIP entrance", DoorAction::Scan, 0).expect("scan");
    assert_eq!(outcome, Outcome::Refused(RefusalCode::WrongGate));
    assert_eq!(
        v,
        Verdict::Refused {
            code: RefusalCode::WrongGate,
            message: "Wrong gate: VIP entrance admits VIP only — this is a Day pass".into()
        }
    );
    assert!(offline(&mut d, &vip, "VIP entrance", DoorAction::Scan, 1).expect("vip").0.is_admit());
    // Any gate without a rule admits everyone.
    assert!(offline(&mut d, &day, "Main", DoorAction::Scan, 2).expect("main").0.is_admit());

    // The bar redeems the drink voucher on its own: not an entry, and once.
    let (v, outcome) = offline(&mut d, &day, "Bar", DoorAction::Scan, 3).expect("bar");
    assert_eq!(outcome, Outcome::Admitted);
    match &v {
        Verdict::Admit(a) => assert_eq!(a.redeemed.as_ref().map(|r| r.name.as_str()), Some("Drink voucher")),
        other => panic!("{other:?}"),
    }
    assert!(v.message().starts_with("REDEEMED Drink voucher"), "{}", v.message());
    let (v, _) = offline(&mut d, &day, "Bar", DoorAction::Scan, 4).expect("bar again");
    assert!(v.message().starts_with("ALREADY REDEEMED (Drink voucher)"), "{}", v.message());
    // A ticket without the voucher is refused at the bar.
    let (v, _) = offline(&mut d, &vip, "Bar", DoorAction::Scan, 5).expect("no voucher");
    assert!(matches!(v, Verdict::Refused { code: RefusalCode::WrongGate, .. }), "{v:?}");
    // The voucher did not use the ticket, nor the ticket the voucher.
    let report = d.report().expect("report");
    assert_eq!(report.admitted, 2);
    assert_eq!(report.redeemed_addons.get(&0), Some(&1));
    assert_eq!(report.refused_by_reason.get("wrong_gate"), Some(&2));

    // Two offline devices redeeming the same voucher: a conflict naming the add-on.
    let (mut other, _) = device(2, Some(RULES));
    assert!(offline(&mut other, &day, "Bar", DoorAction::Scan, 6).expect("other bar").0.is_admit());
    other.fold(NOW as i64).expect("fold");
    d.merge_saved(&other.save_full()).expect("merge");
    let report = d.report().expect("report");
    assert_eq!(report.conflicts.len(), 1);
    assert_eq!((report.conflicts[0].addon, report.conflicts[0].scans.len()), (Some(0), 2));
}

#[test]
fn the_edge_is_asked_with_the_add_on_the_gate_redeems() {
    let (mut d, key) = device(1, Some(RULES));
    let day = qr(&key, &typed(1, 0, 0b01));
    let q = match d.plan(request(&day, "Bar", DoorAction::Scan), true, MS).expect("plan") {
        ScanPlan::AskEdge(q) => q,
        other => panic!("{other:?}"),
    };
    let body: serde_json::Value = serde_json::from_str(&q.body).expect("json");
    assert_eq!(
        (body["addon"].as_u64(), body["gate"].as_str(), body["event"].as_u64()),
        (Some(0), Some("Bar"), Some(77))
    );
    // A wrong-gate ticket is refused on the device at once, never sent.
    let vip = qr(&key, &typed(2, 1, 0));
    match d.plan(request(&vip, "Bar", DoorAction::Scan), true, MS).expect("plan") {
        ScanPlan::Decided(o) => assert_eq!(o.record.outcome, Outcome::Refused(RefusalCode::WrongGate)),
        other => panic!("{other:?}"),
    }
    // An edge reply that is not a verdict: decided here, with the add-on still the bar's.
    let o = d.finish(q, EdgeAnswer::Reply { status: 502, body: b"<html>".to_vec() }, MS + 1).expect("finish");
    assert_eq!(o.record.addon, Some(0));
    assert!(o.edge_note.expect("note").contains("502"));
}

#[test]
fn gate_rules_for_another_event_are_refused() {
    let (mut d, _) = device(1, None);
    let err = d.set_gate_rules(&RULES.replace("77", "78")).expect_err("other event");
    assert!(matches!(err, Error::Device(DeviceKind::GateRulesEvent { rules: 78, device: 77 })));
}
