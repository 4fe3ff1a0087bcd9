//! Pay at the door: a ticket signed "payment due" (flag bit 3) asks for its amount (from the manifest)
//! instead of admitting; the steward's "paid" confirmation admits it and records the amount; the report
//! totals the money collected per gate and currency from the records alone.

mod redemption_support;

use std::collections::BTreeMap;

use redemption_support::*;
use scanner_core::manifest::{seal_entry, Manifest, ManifestEntry, Money};
use scanner_core::redemption::decision::{ScanInput, Verdict};
use scanner_core::redemption::store::RedemptionLog;
use scanner_core::redemption::{DoorAction, ScanPlan, ScanRequest};
use scanner_core::redemption::{EdgeVerdict, EventReport, Outcome, RedemptionDoc, RefusalCode, ScanKind};
use scanner_core::{base45, EntryPolicy, IssuerKey, SignedTicket, Ticket};

fn new_log(dir: &std::path::Path, name: &str) -> (RedemptionLog, IssuerKey) {
    let (key, ring) = issuer();
    let mut log = RedemptionLog::open_or_create(dir, name).expect("create");
    log.set_keyring(&ring.to_json()).expect("keyring");
    log.set_event(EVENT).expect("event");
    (log, key)
}

fn entry(text: &str) -> ScanInput<'_> {
    ScanInput { text, kind: ScanKind::Entry, override_reason: None }
}

fn unpaid(n: u64, policy: EntryPolicy) -> Ticket {
    Ticket { payment_due: true, ..ticket(n, policy, EVENT) }
}

/// A manifest with these tickets, each with its holder and amount due (if any).
fn manifest(entries: &[(&Ticket, &str, Option<Money>)]) -> String {
    let mut m = Manifest::new(EVENT, NOW);
    for (i, (t, name, due)) in entries.iter().enumerate() {
        let e = ManifestEntry {
            ticket_type: t.ticket_type,
            addons: t.addons,
            holder_name: (*name).into(),
            due: due.clone(),
        };
        m.entries.push(seal_entry(EVENT, &t.ticket_id, &e, [i as u8; 12]).expect("seal"));
    }
    m.to_json()
}

fn money(minor: u64, currency: &str) -> Money {
    Money::new(minor, currency).expect("valid amount")
}

fn at(secs: u64) -> u64 {
    secs * 1000
}

#[test]
fn unpaid_ticket_asks_for_its_amount_then_admits_once_when_paid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, key) = new_log(dir.path(), "door");
    let t = unpaid(1, EntryPolicy::SingleEntry);
    log.set_manifest(&manifest(&[(&t, "Ada Lovelace", Some(money(4_900, "EUR")))])).expect("manifest");
    let text = qr(&key, &t);

    // Scanned: not admitted, the amount is shown, and the request is in the log (not a pass).
    for secs in [NOW, NOW + 5] {
        let asked = log.scan(entry(&text), "North", at(secs)).expect("scan");
        match &asked.verdict {
            Verdict::PaymentDue(p) => {
                assert_eq!(p.due, Some(money(4_900, "EUR")));
                assert_eq!(p.holder.as_deref(), Some("Ada Lovelace"));
                assert_eq!(p.gate, "North");
            }
            other => panic!("expected payment due, got {other:?}"),
        }
        assert!(!asked.verdict.is_admit());
        assert!(asked.verdict.message().starts_with("UNPAID — collect 49.00 EUR"), "{}", asked.verdict.message());
        assert_eq!(asked.record.outcome, Outcome::PaymentDue);
    }

    // Paid: admitted, and the record says so with the amount.
    let paid = log.confirm_paid(&text, "North", at(NOW + 30)).expect("confirm");
    match &paid.verdict {
        Verdict::Admit(a) => {
            assert!(a.paid_at_door);
            assert_eq!(a.collected, Some(money(4_900, "EUR")));
            assert_eq!(a.holder.as_deref(), Some("Ada Lovelace"));
        }
        other => panic!("expected admit, got {other:?}"),
    }
    assert!(paid.verdict.message().contains("PAID AT THE DOOR: 49.00 EUR"), "{}", paid.verdict.message());
    assert_eq!(paid.record.outcome, Outcome::PaidAtDoor);

    // Used like any ticket afterwards; a second "paid" collects nothing.
    let again = log.scan(entry(&text), "South", at(NOW + 60)).expect("scan");
    assert!(matches!(again.verdict, Verdict::AlreadyUsed(ref u) if u.gate == "North"), "{:?}", again.verdict);
    let paid_twice = log.confirm_paid(&text, "South", at(NOW + 61)).expect("confirm");
    assert!(matches!(paid_twice.verdict, Verdict::AlreadyUsed(_)), "{:?}", paid_twice.verdict);

    let report = log.report(NOW as i64).expect("report");
    assert_eq!(report.admitted, 1);
    assert_eq!(report.paid_at_door, 1);
    assert_eq!(report.payment_requests, 2);
    assert_eq!(report.collected, vec![money(4_900, "EUR")]);
    assert!(report.to_table().contains("49.00 EUR"), "{}", report.to_table());

    // The amount is in the log: it survives folding and a restart.
    log.fold_pending(NOW as i64).expect("fold");
    drop(log);
    let mut log = RedemptionLog::open(dir.path()).expect("reopen");
    let after = log.report(NOW as i64).expect("report");
    assert_eq!(after.collected_by_gate["North"], vec![money(4_900, "EUR")]);
    let rescan = log.scan(entry(&text), "North", at(NOW + 90)).expect("scan");
    assert!(matches!(rescan.verdict, Verdict::AlreadyUsed(_)), "{:?}", rescan.verdict);
}

#[test]
fn without_a_manifest_entry_payment_is_still_asked_for_with_the_amount_unknown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, key) = new_log(dir.path(), "door");
    let text = qr(&key, &unpaid(2, EntryPolicy::SingleEntry));
    let asked = log.scan(entry(&text), "North", at(NOW)).expect("scan");
    match &asked.verdict {
        Verdict::PaymentDue(p) => assert_eq!((p.due.as_ref(), p.holder.as_deref()), (None, None)),
        other => panic!("expected payment due, got {other:?}"),
    }
    assert!(asked.verdict.message().contains("amount not in this scanner's manifest"));
    let paid = log.confirm_paid(&text, "North", at(NOW + 1)).expect("confirm");
    assert!(matches!(&paid.verdict, Verdict::Admit(a) if a.paid_at_door && a.collected.is_none()));
    let report = log.report(NOW as i64).expect("report");
    assert_eq!((report.paid_at_door, report.paid_at_door_amount_unknown), (1, 1));
    assert!(report.collected.is_empty());
}

#[test]
fn only_the_signed_flag_makes_a_ticket_unpaid_and_it_cannot_be_stripped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, key) = new_log(dir.path(), "door");
    // A paid ticket with an amount in the manifest (say, a stale entry) is not asked to pay again.
    let paid_online = ticket(3, EntryPolicy::SingleEntry, EVENT);
    let due = unpaid(4, EntryPolicy::SingleEntry);
    log.set_manifest(&manifest(&[(&paid_online, "Paid Online", Some(money(100, "EUR"))), (&due, "Due", None)]))
        .expect("manifest");
    let scanned = log.scan(entry(&qr(&key, &paid_online)), "North", at(NOW)).expect("scan");
    assert_eq!(scanned.record.outcome, Outcome::Admitted, "{:?}", scanned.verdict);
    // "Paid" on a ticket that owes nothing admits it plainly: nothing is recorded as collected.
    let other = ticket(5, EntryPolicy::SingleEntry, EVENT);
    let confirmed = log.confirm_paid(&qr(&key, &other), "North", at(NOW)).expect("confirm");
    assert_eq!(confirmed.record.outcome, Outcome::Admitted);

    // Clearing flag bit 3 of an unpaid ticket breaks its signature.
    let signed = SignedTicket::from_qr_text(&qr(&key, &due)).expect("parse");
    let mut bytes = signed.to_bytes();
    bytes[1] &= !(1 << 3);
    let stripped = format!("TK1:{}", base45::encode(&bytes));
    let refused = log.scan(entry(&stripped), "North", at(NOW)).expect("scan");
    assert!(
        matches!(refused.verdict, Verdict::Refused { code: RefusalCode::BadSignature, .. }),
        "{:?}",
        refused.verdict
    );
    assert_eq!(log.report(NOW as i64).expect("report").paid_at_door, 0);
}

#[test]
fn a_reentry_ticket_pays_once_not_at_every_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, key) = new_log(dir.path(), "door");
    let t = unpaid(6, EntryPolicy::ReEntry);
    log.set_manifest(&manifest(&[(&t, "Re Entry", Some(money(1_500, "EUR")))])).expect("manifest");
    let text = qr(&key, &t);
    // Exits never ask for money.
    let exit = ScanInput { text: &text, kind: ScanKind::Exit, override_reason: None };
    assert!(matches!(log.scan(entry(&text), "North", at(NOW)).expect("scan").verdict, Verdict::PaymentDue(_)));
    assert_eq!(log.confirm_paid(&text, "North", at(NOW + 1)).expect("paid").record.outcome, Outcome::PaidAtDoor);
    assert!(matches!(log.scan(exit, "North", at(NOW + 2)).expect("exit").verdict, Verdict::Exit { .. }));
    let back = log.scan(entry(&text), "North", at(NOW + 3)).expect("scan");
    assert_eq!(back.record.outcome, Outcome::Admitted, "{:?}", back.verdict);
    assert_eq!(log.report(NOW as i64).expect("report").collected, vec![money(1_500, "EUR")]);
}

#[test]
fn the_edge_asks_for_payment_and_the_device_adds_the_amount_from_its_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, key) = new_log(dir.path(), "door");
    let t = unpaid(7, EntryPolicy::SingleEntry);
    log.set_manifest(&manifest(&[(&t, "Edge Case", Some(money(2_000, "USD")))])).expect("manifest");
    let text = qr(&key, &t);
    // What the edge (no manifest) answers: payment due, amount unknown.
    let body = r#"{"verdict":"payment_due","due":null,"holder":null,"ticket_type":1,"addons":[],
        "policy":"single_entry","gate":"North","summary":"UNPAID","decided_by":"edge"}"#;
    let edge = EdgeVerdict::from_reply(200, body.as_bytes()).expect("edge verdict");
    let mirrored = log.record_edge_verdict(&text, ScanKind::Entry, "North", &edge, at(NOW)).expect("mirror");
    match &mirrored.verdict {
        Verdict::PaymentDue(p) => {
            assert_eq!(p.due, Some(money(2_000, "USD")));
            assert_eq!(p.holder.as_deref(), Some("Edge Case"));
        }
        other => panic!("expected payment due, got {other:?}"),
    }
    assert_eq!(mirrored.record.outcome, Outcome::PaymentDue);
    // Asking for payment is not a pass: the door policy would still ask the edge about this ticket.
    let request =
        ScanRequest { text: text.clone(), kind: ScanKind::Entry, gate: "North".into(), action: DoorAction::Scan };
    assert!(matches!(log.plan(request, true, at(NOW)).expect("plan"), ScanPlan::AskEdge(_)));
    assert_eq!(log.confirm_paid(&text, "North", at(NOW + 1)).expect("paid").record.outcome, Outcome::PaidAtDoor);
}

#[test]
fn the_report_totals_money_per_gate_and_currency_across_devices() {
    let (dir_a, dir_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let (mut a, key) = new_log(dir_a.path(), "door-a");
    let (mut b, _) = new_log(dir_b.path(), "door-b");
    // (ticket number, amount, currency, device, gate), paid at the door.
    let payments: [(u64, u64, &str, bool, &str); 6] = [
        (10, 4_900, "EUR", true, "North"),
        (11, 4_900, "EUR", true, "North"),
        (12, 1_250, "EUR", true, "South"),
        (13, 3_000, "JPY", false, "North"),
        (14, 999, "EUR", false, "West"),
        (15, 4_900, "EUR", false, "West"),
    ];
    let tickets: Vec<Ticket> = payments.iter().map(|p| unpaid(p.0, EntryPolicy::SingleEntry)).collect();
    let entries: Vec<(&Ticket, &str, Option<Money>)> =
        tickets.iter().zip(&payments).map(|(t, p)| (t, "Holder", Some(money(p.1, p.2)))).collect();
    let json = manifest(&entries);
    a.set_manifest(&json).expect("manifest");
    b.set_manifest(&json).expect("manifest");
    let mut expected_by_gate: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for (i, (t, p)) in tickets.iter().zip(&payments).enumerate() {
        let log = if p.3 { &mut a } else { &mut b };
        let text = qr(&key, t);
        let secs = NOW + i as u64;
        assert!(matches!(log.scan(entry(&text), p.4, at(secs)).expect("scan").verdict, Verdict::PaymentDue(_)));
        assert_eq!(log.confirm_paid(&text, p.4, at(secs)).expect("paid").record.outcome, Outcome::PaidAtDoor);
        *expected_by_gate.entry(p.4.to_owned()).or_default().entry(p.2.to_owned()).or_default() += p.1;
        *expected.entry(p.2.to_owned()).or_default() += p.1;
    }
    // One holder gets in twice, offline on both doors: a conflict, and both payments were taken.
    let twice = qr(&key, &tickets[0]);
    assert_eq!(b.confirm_paid(&twice, "West", at(NOW + 20)).expect("paid").record.outcome, Outcome::PaidAtDoor);
    *expected_by_gate.entry("West".to_owned()).or_default().entry("EUR".to_owned()).or_default() += payments[0].1;
    *expected.entry("EUR".to_owned()).or_default() += payments[0].1;
    // Ordinary admissions collect nothing.
    a.scan(entry(&qr(&key, &ticket(30, EntryPolicy::SingleEntry, EVENT))), "North", at(NOW)).expect("scan");

    let exports = [a.export(NOW as i64).expect("export"), b.export(NOW as i64).expect("export")];
    let merged = RedemptionDoc::merge_saved(exports.iter().map(Vec::as_slice)).expect("merge");
    let report = EventReport::from_logs(&merged.device_logs().expect("logs"));
    let amounts = |sums: &BTreeMap<String, u64>| sums.iter().map(|(c, m)| money(*m, c)).collect::<Vec<_>>();
    let expected_by_gate: BTreeMap<String, Vec<Money>> =
        expected_by_gate.iter().map(|(gate, sums)| (gate.clone(), amounts(sums))).collect();
    assert_eq!(report.collected_by_gate, expected_by_gate);
    assert_eq!(report.collected, amounts(&expected));
    assert_eq!(report.paid_at_door, payments.len() as u64 + 1);
    assert_eq!(report.admitted, payments.len() as u64 + 2);
    assert_eq!(report.conflicts.len(), 1);
    assert_eq!(report.payment_requests, payments.len() as u64);
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["collected"][0]["currency"], "EUR");
    assert_eq!(json["collected"][0]["minor"], expected["EUR"]);
    assert_eq!(json["collected"][1]["text"], "3000 JPY");
    assert_eq!(json["collected_by_gate"]["North"][1]["minor"], 3_000);
    let table = report.to_table();
    assert!(table.contains("3000 JPY") && table.contains(&Money::format(expected["EUR"], "EUR")), "{table}");
}
