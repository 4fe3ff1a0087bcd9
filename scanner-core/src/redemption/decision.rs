//! The scan decision: verification (signature, key window, event, validity window, revocation) and then
//! everything the log knows about the ticket (this device's scans and all it has merged).
//!
//! A ticket signed with "payment due at the door" (flag bit 3) that would admit on its first entry gets
//! [`Verdict::PaymentDue`] instead, with the amount from the attendee manifest: it does not admit. The
//! steward takes the money and confirms ([`decide_paid`], `Device::confirm_paid`), which admits and records
//! the amount collected (outcome [`Outcome::PaidAtDoor`]).
//!
//! This module decides; it does not record. The scanning [`super::device::Device`] turns the decision into a
//! [`ScanRecord`] that its storage (sled for the CLI, IndexedDB in the browser) writes durably before the
//! verdict reaches the steward.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::document::DeviceLog;
use super::record::{format_utc, DeviceId, Hlc, Outcome, RefusalCode, ScanKind, ScanRecord, TicketRef};
use crate::gates::{GateCheck, GateRules};
use crate::manifest::{open_entry, Manifest, ManifestEntry, Money};
use crate::ticket::{EntryPolicy, TicketId};
use crate::verify::{verify_signed, Refusal, VerifyContext};

/// Where holder names come from (the attendee manifest, or nothing).
pub trait HolderDirectory {
    /// The manifest entry of a ticket just scanned, if there is one.
    fn entry(&self, ticket_id: &TicketId) -> Option<ManifestEntry>;
}

/// The attendee manifest indexed for lookups at the door.
#[derive(Debug, Clone)]
pub struct ManifestDirectory {
    manifest: Manifest,
    index: HashMap<String, usize>,
}

impl ManifestDirectory {
    pub fn new(manifest: Manifest) -> Self {
        let index = manifest.index();
        Self { manifest, index }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}

impl HolderDirectory for ManifestDirectory {
    fn entry(&self, ticket_id: &TicketId) -> Option<ManifestEntry> {
        use base64::Engine as _;
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::manifest::lookup_hash(ticket_id));
        let sealed = self.manifest.entries.get(*self.index.get(&key)?)?;
        open_entry(self.manifest.event_id, ticket_id, sealed).ok()
    }
}

/// A scan that let a ticket through (or a supervisor's undo of such scans), as the index keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorScan {
    pub device: DeviceId,
    pub gate: u16,
    pub wall_time: u32,
    pub hlc: Hlc,
    pub kind: ScanKind,
    pub outcome: Outcome,
}

/// Everything the log knows that the decision needs: for each ticket (and each of its add-ons redeemed on
/// their own), the scans that let it through and the undos of them.
#[derive(Debug, Clone, Default)]
pub struct ScanIndex {
    by_ticket: HashMap<(TicketRef, Option<u8>), Vec<PriorScan>>,
    devices: HashMap<DeviceId, (String, Vec<String>)>,
    records: usize,
}

impl ScanIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the index of a whole log.
    pub fn from_logs(logs: &[DeviceLog]) -> Self {
        let mut index = Self::new();
        for log in logs {
            index.set_device(log.device, &log.name, &log.gates);
            for r in &log.records {
                index.add(log.device, r);
            }
        }
        index
    }

    /// Sets a device's name and gate table (used to name gates and devices in verdicts).
    pub fn set_device(&mut self, device: DeviceId, name: &str, gates: &[String]) {
        self.devices.insert(device, (name.to_owned(), gates.to_vec()));
    }

    /// Adds one record.
    pub fn add(&mut self, device: DeviceId, record: &ScanRecord) {
        self.records += 1;
        if record.ticket.is_none() || !(record.outcome.passed() || record.outcome == Outcome::Undone) {
            return;
        }
        let scans = self.by_ticket.entry((record.ticket, record.addon)).or_default();
        let scan = PriorScan {
            device,
            gate: record.gate,
            wall_time: record.wall_time,
            hlc: record.hlc,
            kind: record.kind,
            outcome: record.outcome,
        };
        // Keep each ticket's scans in (clock, device) order: a total order every device agrees on.
        let at = scans.partition_point(|s| (s.hlc, s.device) <= (scan.hlc, scan.device));
        scans.insert(at, scan);
    }

    /// How many records were added.
    pub fn record_count(&self) -> usize {
        self.records
    }

    /// The scans that let this ticket through (and undos), oldest first.
    pub fn history(&self, ticket: &TicketRef) -> &[PriorScan] {
        self.history_of(ticket, None)
    }

    /// The same for the ticket itself (`None`) or one of its add-ons redeemed on its own.
    pub fn history_of(&self, ticket: &TicketRef, addon: Option<u8>) -> &[PriorScan] {
        self.by_ticket.get(&(*ticket, addon)).map_or(&[], Vec::as_slice)
    }

    /// The scans that still count: those after the latest undo.
    fn counting(&self, ticket: &TicketRef, addon: Option<u8>) -> &[PriorScan] {
        let history = self.history_of(ticket, addon);
        let start = history.iter().rposition(|s| s.outcome == Outcome::Undone).map_or(0, |i| i + 1);
        &history[start..]
    }

    pub fn device_name(&self, device: DeviceId) -> String {
        self.devices.get(&device).map(|(n, _)| n.clone()).unwrap_or_default()
    }

    pub fn gate_name(&self, device: DeviceId, gate: u16) -> String {
        self.devices
            .get(&device)
            .and_then(|(_, gates)| gates.get(usize::from(gate)).cloned())
            .unwrap_or_else(|| format!("#{gate}"))
    }

    /// The earlier scan that stops this ticket from entering now, if any: for single entry the first
    /// admission; for re-entry the latest scan if it was an entry (the holder is still inside).
    /// A supervisor's undo clears every scan before it.
    pub fn blocking_scan(&self, ticket: &TicketRef, policy: EntryPolicy) -> Option<&PriorScan> {
        self.blocking(ticket, None, policy)
    }

    /// [`Self::blocking_scan`] for the ticket itself or one of its add-ons (an add-on is redeemed once).
    pub fn blocking(&self, ticket: &TicketRef, addon: Option<u8>, policy: EntryPolicy) -> Option<&PriorScan> {
        let history = self.counting(ticket, addon);
        let policy = if addon.is_some() { EntryPolicy::SingleEntry } else { policy };
        match policy {
            EntryPolicy::SingleEntry => history.iter().find(|s| s.kind == ScanKind::Entry),
            EntryPolicy::ReEntry => history.last().filter(|s| s.kind == ScanKind::Entry),
        }
    }

    /// The latest record of the ticket (or add-on) is an undo made by `device`: only that device knows
    /// the ticket admits again until the undo has travelled by sync.
    pub fn undone_by(&self, ticket: &TicketRef, addon: Option<u8>, device: DeviceId) -> bool {
        self.history_of(ticket, addon).last().is_some_and(|s| s.outcome == Outcome::Undone && s.device == device)
    }
}

/// The ticket admits: what the steward sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission {
    /// The holder's name, if the manifest has the ticket.
    pub holder: Option<String>,
    pub ticket_type: u8,
    /// Indices of the add-ons the ticket includes.
    pub addons: Vec<u8>,
    pub policy: EntryPolicy,
    pub gate: String,
    /// Set when an operator admitted the ticket over a refusal.
    pub override_reason: Option<String>,
    /// What the operator overrode, if anything.
    pub overridden: Option<String>,
    /// The steward confirmed the holder paid at the door (the ticket's payment was due).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paid_at_door: bool,
    /// The amount collected at the door, when the manifest knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collected: Option<Money>,
    /// Set when this scan redeemed one add-on on its own (a voucher) instead of admitting the ticket:
    /// the add-on's index and name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeemed: Option<Redeemed>,
}

/// An add-on redeemed on its own at a gate whose rule redeems it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redeemed {
    pub addon: u8,
    pub name: String,
}

/// The ticket is genuine and may enter, but its price is due at the door: collect it, then confirm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentDue {
    /// The amount to collect (ticket and add-ons), from the attendee manifest; `None` when this scanner's
    /// manifest has no entry for the ticket (then the steward must find the price elsewhere).
    pub due: Option<Money>,
    pub holder: Option<String>,
    pub ticket_type: u8,
    pub addons: Vec<u8>,
    pub policy: EntryPolicy,
    pub gate: String,
}

/// The ticket was let through before: when, where and by which device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlreadyUsed {
    pub wall_time: u32,
    /// `wall_time` as UTC text.
    pub at: String,
    pub gate: String,
    pub device: DeviceId,
    pub device_name: String,
    /// The earlier scan was made by this very device.
    pub this_device: bool,
    /// The add-on that was already redeemed, when the scan was at a gate that redeems one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeemed: Option<Redeemed>,
}

/// A supervisor undid a check-in: the ticket admits again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoneCheckIn {
    pub holder: Option<String>,
    pub ticket_type: u8,
    pub gate: String,
    /// The check-in that was undone (the latest one that counted).
    pub undid: AlreadyUsed,
    pub reason: String,
}

/// What a scan answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Admit(Admission),
    /// An exit scan: the holder is let out (re-entry tickets may come back in).
    Exit {
        gate: String,
    },
    AlreadyUsed(AlreadyUsed),
    Refused {
        code: RefusalCode,
        message: String,
    },
    /// Not admitted yet: payment is due at the door (see [`PaymentDue`]).
    PaymentDue(PaymentDue),
    /// A supervisor's undo of a check-in was recorded.
    Undone(UndoneCheckIn),
}

impl Verdict {
    /// One line for the steward.
    pub fn message(&self) -> String {
        match self {
            Verdict::Admit(a) => {
                let who = a.holder.as_deref().map(|h| format!(" — {h}")).unwrap_or_default();
                let over = a.override_reason.as_deref().map(|r| format!(" (OVERRIDE: {r})")).unwrap_or_default();
                let addons = if a.addons.is_empty() { String::new() } else { format!(", add-ons {:?}", a.addons) };
                let paid = match (&a.collected, a.paid_at_door) {
                    (Some(m), _) => format!(" (PAID AT THE DOOR: {m})"),
                    (None, true) => " (PAID AT THE DOOR)".to_owned(),
                    (None, false) => String::new(),
                };
                match &a.redeemed {
                    Some(r) => format!("REDEEMED {}{who} at gate {}{over}", r.name, a.gate),
                    None => format!("ADMIT{who}: ticket type {}{addons} at gate {}{over}{paid}", a.ticket_type, a.gate),
                }
            }
            Verdict::Undone(u) => {
                let who = u.holder.as_deref().map(|h| format!(" — {h}")).unwrap_or_default();
                format!(
                    "CHECK-IN UNDONE{who}: the entry at {} gate {} no longer counts ({}); the ticket admits again",
                    u.undid.at, u.undid.gate, u.reason
                )
            }
            Verdict::PaymentDue(p) => {
                let who = p.holder.as_deref().map(|h| format!(" — {h}")).unwrap_or_default();
                let amount = match &p.due {
                    Some(m) => format!("collect {m}"),
                    None => "collect payment (amount not in this scanner's manifest)".to_owned(),
                };
                format!("UNPAID — {amount}{who}: ticket type {} at gate {}; confirm when paid", p.ticket_type, p.gate)
            }
            Verdict::Exit { gate } => format!("EXIT recorded at gate {gate}"),
            Verdict::AlreadyUsed(u) => format!(
                "{} at {} gate {} on {}{}",
                u.redeemed.as_ref().map_or("ALREADY USED".to_owned(), |r| format!("ALREADY REDEEMED ({})", r.name)),
                u.at,
                u.gate,
                if u.device_name.is_empty() { u.device.to_hex() } else { u.device_name.clone() },
                if u.this_device { " (this device)" } else { "" }
            ),
            Verdict::Refused { message, .. } => format!("REFUSED: {message}"),
        }
    }

    pub fn is_admit(&self) -> bool {
        matches!(self, Verdict::Admit(_))
    }
}

/// One scan to decide.
#[derive(Debug, Clone, Copy)]
pub struct ScanInput<'a> {
    pub text: &'a str,
    pub kind: ScanKind,
    /// Admit anyway, for this reason, if the ticket is authentic but refused (already used, expired,
    /// wrong event, revoked…). Never admits a code that is not a genuine ticket.
    pub override_reason: Option<&'a str>,
}

/// A decision, before it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub ticket: TicketRef,
    pub kind: ScanKind,
    pub outcome: Outcome,
    pub reentry: bool,
    pub ticket_type: u8,
    /// The text kept beside the record in the log: an override's or undo's reason, or a paid admission's
    /// amount ([`Money::to_note`]).
    pub note: Option<String>,
    /// The add-on this scan redeems on its own, if the gate redeems one.
    pub addon: Option<u8>,
}

impl Decision {
    /// The record to write, given the device's clock, wall time and gate index.
    pub fn record(&self, hlc: Hlc, wall_time: u32, gate: u16) -> ScanRecord {
        ScanRecord {
            ticket: self.ticket,
            hlc,
            wall_time,
            gate,
            kind: self.kind,
            reentry: self.reentry,
            outcome: self.outcome,
            ticket_type: self.ticket_type,
            decided_by_edge: false,
            addon: self.addon,
        }
    }
}

fn addon_list(addons: u16) -> Vec<u8> {
    (0..16u8).filter(|i| addons & (1 << i) != 0).collect()
}

/// Whether a refusal comes after the signature check, i.e. the ticket is genuine and an operator may
/// admit it anyway.
fn overridable(refusal: &Refusal) -> bool {
    matches!(
        refusal,
        Refusal::KeyNotActive(_)
            | Refusal::WrongGate(_)
            | Refusal::WrongEvent { .. }
            | Refusal::NotYetValid { .. }
            | Refusal::Expired { .. }
            | Refusal::Revoked
    )
}

/// Where a scan happens: the gate, and what the event's gate rules make of scans there.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub gate: &'a str,
    /// The event's gate rules, as the device holds them; `None`: every gate admits every ticket.
    pub rules: Option<&'a GateRules>,
    /// The add-on this scan redeems, when the caller was told (the edge, by the scanning device, which
    /// applied its rules); otherwise the rules decide.
    pub redeem: Option<u8>,
}

impl<'a> At<'a> {
    /// A gate with no rules.
    pub fn gate(gate: &'a str) -> Self {
        Self { gate, rules: None, redeem: None }
    }

    /// What the gate does with this scan of a (parsed) ticket.
    fn check(&self, kind: ScanKind, ticket_type: u8, addons: u16) -> GateCheck {
        if let Some(a) = self.redeem {
            return GateCheck::Redeem(a);
        }
        let Some(rules) = self.rules else {
            return GateCheck::Enter;
        };
        match kind {
            ScanKind::Entry => rules.check_entry(self.gate, ticket_type, addons),
            ScanKind::Exit => rules.check_exit(self.gate).map_or_else(GateCheck::Wrong, |()| GateCheck::Enter),
        }
    }

    fn redeemed(&self, addon: Option<u8>) -> Option<Redeemed> {
        let addon = addon?;
        let name = self.rules.map_or_else(|| format!("add-on {addon}"), |r| r.addon_label(addon));
        Some(Redeemed { addon, name })
    }
}

/// Decides one scan against the verification context and the log's index, at a gate with its rules (see
/// [`crate::gates`]; [`At::gate`] for none): a ticket the gate does not take is refused `wrong_gate`; at a
/// gate that redeems an add-on, the scan redeems it (once per ticket).
pub fn decide_at(
    input: ScanInput<'_>,
    ctx: &VerifyContext<'_>,
    index: &ScanIndex,
    holders: Option<&dyn HolderDirectory>,
    this_device: DeviceId,
    at: At<'_>,
) -> Decision {
    decide_scan(input, false, ctx, index, holders, this_device, at)
}

/// Decides the steward's "paid" confirmation of an entry scan: exactly like [`decide_at`], except that a
/// ticket whose payment is due admits as [`Outcome::PaidAtDoor`] with the amount from the manifest (instead
/// of [`Verdict::PaymentDue`]). Any other ticket gets its ordinary verdict (e.g. already used, if another
/// scanner let it in meanwhile: then nothing was collected for it).
pub fn decide_paid(
    text: &str,
    ctx: &VerifyContext<'_>,
    index: &ScanIndex,
    holders: Option<&dyn HolderDirectory>,
    this_device: DeviceId,
    at: At<'_>,
) -> Decision {
    let input = ScanInput { text, kind: ScanKind::Entry, override_reason: None };
    decide_scan(input, true, ctx, index, holders, this_device, at)
}

/// Why a supervisor's undo cannot be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UndoKind {
    #[error("nothing to undo: {0}")]
    NotGenuine(Refusal),
    #[error("nothing to undo: this log shows no check-in of this ticket that still counts")]
    NotCheckedIn,
    #[error("an undo needs a reason")]
    NoReason,
}

/// Decides a supervisor's undo of a ticket's check-in (at a gate that redeems an add-on: of that add-on's
/// redemption). The ticket must be genuine and checked in as far as this log knows; the undo record
/// compensates every earlier pass ([`Outcome::Undone`]), so the ticket admits again.
pub fn decide_undo(
    text: &str,
    reason: &str,
    ctx: &VerifyContext<'_>,
    index: &ScanIndex,
    holders: Option<&dyn HolderDirectory>,
    this_device: DeviceId,
    at: At<'_>,
) -> crate::Result<Decision> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(UndoKind::NoReason.into());
    }
    let signed = crate::verify::read_ticket(text.trim()).map_err(UndoKind::NotGenuine)?;
    let t = &signed.ticket;
    match verify_signed(&signed, ctx) {
        Ok(()) => {}
        // A check-in of a ticket revoked or expired since is still on record and may be undone.
        Err(refusal) if !overridable(&refusal) => return Err(UndoKind::NotGenuine(refusal).into()),
        Err(_) => {}
    }
    let ticket = TicketRef::of(&t.ticket_id);
    let addon = match at.check(ScanKind::Entry, t.ticket_type, t.addons) {
        GateCheck::Redeem(a) => Some(a),
        _ => None,
    };
    let prior = index.blocking(&ticket, addon, t.policy).ok_or(UndoKind::NotCheckedIn)?;
    let undid = already_used(index, prior, this_device, at.redeemed(addon));
    let holder = holders.and_then(|h| h.entry(&t.ticket_id)).map(|e| e.holder_name);
    let verdict = Verdict::Undone(UndoneCheckIn {
        holder,
        ticket_type: t.ticket_type,
        gate: at.gate.to_owned(),
        undid,
        reason: reason.to_owned(),
    });
    Ok(Decision {
        verdict,
        ticket,
        kind: ScanKind::Entry,
        outcome: Outcome::Undone,
        reentry: t.policy == EntryPolicy::ReEntry,
        ticket_type: t.ticket_type,
        note: Some(reason.to_owned()),
        addon,
    })
}

fn already_used(
    index: &ScanIndex,
    prior: &PriorScan,
    this_device: DeviceId,
    redeemed: Option<Redeemed>,
) -> AlreadyUsed {
    AlreadyUsed {
        wall_time: prior.wall_time,
        at: format_utc(u64::from(prior.wall_time)),
        gate: index.gate_name(prior.device, prior.gate),
        device: prior.device,
        device_name: index.device_name(prior.device),
        this_device: prior.device == this_device,
        redeemed,
    }
}

fn decide_scan(
    input: ScanInput<'_>,
    paid: bool,
    ctx: &VerifyContext<'_>,
    index: &ScanIndex,
    holders: Option<&dyn HolderDirectory>,
    this_device: DeviceId,
    at: At<'_>,
) -> Decision {
    let gate = at.gate;
    let override_reason = input.override_reason.map(str::trim).filter(|r| !r.is_empty());
    let signed = match crate::verify::read_ticket(input.text.trim()) {
        Ok(signed) => signed,
        Err(refusal) => return refused(&refusal, TicketRef::NONE, input.kind, false, 0),
    };
    let t = &signed.ticket;
    let ticket = TicketRef::of(&t.ticket_id);
    let reentry = t.policy == EntryPolicy::ReEntry;
    let check = at.check(input.kind, t.ticket_type, t.addons);
    let addon = match check {
        GateCheck::Redeem(a) => Some(a),
        _ => None,
    };
    let admission = |overridden: Option<String>| {
        let entry = holders.and_then(|h| h.entry(&t.ticket_id));
        Admission {
            holder: entry.map(|e| e.holder_name),
            ticket_type: t.ticket_type,
            addons: addon_list(t.addons),
            policy: t.policy,
            gate: gate.to_owned(),
            override_reason: overridden.as_ref().and(override_reason.map(str::to_owned)),
            overridden,
            paid_at_door: false,
            collected: None,
            redeemed: at.redeemed(addon),
        }
    };
    let decision = |verdict: Verdict, outcome| {
        let note = match &verdict {
            Verdict::Admit(a) => a.override_reason.clone().or_else(|| a.collected.as_ref().map(Money::to_note)),
            _ => None,
        };
        Decision { verdict, ticket, kind: input.kind, outcome, reentry, ticket_type: t.ticket_type, note, addon }
    };
    let verified = verify_signed(&signed, ctx).and_then(|()| match &check {
        GateCheck::Wrong(sentence) => Err(Refusal::WrongGate(sentence.clone())),
        _ => Ok(()),
    });
    if let Err(refusal) = verified {
        return match override_reason {
            Some(_) if overridable(&refusal) => {
                decision(Verdict::Admit(admission(Some(refusal.to_string()))), Outcome::AdmittedOverride)
            }
            _ => refused(&refusal, ticket, input.kind, reentry, t.ticket_type),
        };
    }
    if input.kind == ScanKind::Exit {
        return decision(Verdict::Exit { gate: gate.to_owned() }, Outcome::Admitted);
    }
    // Payment is due once, before the ticket's first entry (an undone entry was still paid for); a
    // re-entry after an exit is not charged again, nor is an add-on redeemed on its own.
    let payment_due = addon.is_none()
        && t.payment_due
        && !index.history(&ticket).iter().any(|s| s.kind == ScanKind::Entry && s.outcome.passed());
    match index.blocking(&ticket, addon, t.policy) {
        None if payment_due => {
            let entry = holders.and_then(|h| h.entry(&t.ticket_id));
            let (holder, due) = entry.map_or((None, None), |e| (Some(e.holder_name), e.due));
            if paid {
                let admit = Admission { holder, paid_at_door: true, collected: due, ..admission(None) };
                decision(Verdict::Admit(admit), Outcome::PaidAtDoor)
            } else {
                let due = PaymentDue {
                    due,
                    holder,
                    ticket_type: t.ticket_type,
                    addons: addon_list(t.addons),
                    policy: t.policy,
                    gate: gate.to_owned(),
                };
                decision(Verdict::PaymentDue(due), Outcome::PaymentDue)
            }
        }
        None => decision(Verdict::Admit(admission(None)), Outcome::Admitted),
        Some(prior) => {
            let used = already_used(index, prior, this_device, at.redeemed(addon));
            if override_reason.is_some() {
                let what = Verdict::AlreadyUsed(used).message();
                decision(Verdict::Admit(admission(Some(what))), Outcome::AdmittedOverride)
            } else {
                decision(Verdict::AlreadyUsed(used), Outcome::AlreadyUsed)
            }
        }
    }
}

fn refused(refusal: &Refusal, ticket: TicketRef, kind: ScanKind, reentry: bool, ticket_type: u8) -> Decision {
    let code = RefusalCode::of(refusal);
    Decision {
        verdict: Verdict::Refused { code, message: refusal.to_string() },
        ticket,
        kind,
        outcome: Outcome::Refused(code),
        reentry,
        ticket_type,
        note: None,
        addon: None,
    }
}
