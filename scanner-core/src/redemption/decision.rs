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
use crate::manifest::{open_entry, Manifest, ManifestEntry, Money};
use crate::ticket::{EntryPolicy, SignedTicket, TicketId};
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

/// A scan that let a ticket through, as the index keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorScan {
    pub device: DeviceId,
    pub gate: u16,
    pub wall_time: u32,
    pub hlc: Hlc,
    pub kind: ScanKind,
    pub outcome: Outcome,
}

/// Everything the log knows that the decision needs: for each ticket, the scans that let it through.
#[derive(Debug, Clone, Default)]
pub struct ScanIndex {
    by_ticket: HashMap<TicketRef, Vec<PriorScan>>,
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
        if record.ticket.is_none() || !record.outcome.passed() {
            return;
        }
        let scans = self.by_ticket.entry(record.ticket).or_default();
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

    /// The scans that let this ticket through, oldest first.
    pub fn history(&self, ticket: &TicketRef) -> &[PriorScan] {
        self.by_ticket.get(ticket).map_or(&[], Vec::as_slice)
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
    pub fn blocking_scan(&self, ticket: &TicketRef, policy: EntryPolicy) -> Option<&PriorScan> {
        let history = self.history(ticket);
        match policy {
            EntryPolicy::SingleEntry => history.iter().find(|s| s.kind == ScanKind::Entry),
            EntryPolicy::ReEntry => history.last().filter(|s| s.kind == ScanKind::Entry),
        }
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
                format!("ADMIT{who}: ticket type {}{addons} at gate {}{over}{paid}", a.ticket_type, a.gate)
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
                "ALREADY USED at {} gate {} on {}{}",
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
    /// The text kept beside the record in the log: an override's reason, or a paid admission's amount
    /// ([`Money::to_note`]).
    pub note: Option<String>,
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
            | Refusal::WrongEvent { .. }
            | Refusal::NotYetValid { .. }
            | Refusal::Expired { .. }
            | Refusal::Revoked
    )
}

/// Decides one scan against the verification context and the log's index.
pub fn decide(
    input: ScanInput<'_>,
    ctx: &VerifyContext<'_>,
    index: &ScanIndex,
    holders: Option<&dyn HolderDirectory>,
    this_device: DeviceId,
    gate: &str,
) -> Decision {
    decide_scan(input, false, ctx, index, holders, this_device, gate)
}

/// Decides the steward's "paid" confirmation of an entry scan: exactly like [`decide`], except that a
/// ticket whose payment is due admits as [`Outcome::PaidAtDoor`] with the amount from the manifest (instead
/// of [`Verdict::PaymentDue`]). Any other ticket gets its ordinary verdict (e.g. already used, if another
/// scanner let it in meanwhile: then nothing was collected for it).
pub fn decide_paid(
    text: &str,
    ctx: &VerifyContext<'_>,
    index: &ScanIndex,
    holders: Option<&dyn HolderDirectory>,
    this_device: DeviceId,
    gate: &str,
) -> Decision {
    let input = ScanInput { text, kind: ScanKind::Entry, override_reason: None };
    decide_scan(input, true, ctx, index, holders, this_device, gate)
}

fn decide_scan(
    input: ScanInput<'_>,
    paid: bool,
    ctx: &VerifyContext<'_>,
    index: &ScanIndex,
    holders: Option<&dyn HolderDirectory>,
    this_device: DeviceId,
    gate: &str,
) -> Decision {
    let override_reason = input.override_reason.map(str::trim).filter(|r| !r.is_empty());
    let signed = match SignedTicket::from_qr_text(input.text.trim()) {
        Ok(signed) => signed,
        Err(refusal) => return refused(&refusal, TicketRef::NONE, input.kind, false, 0),
    };
    let t = &signed.ticket;
    let ticket = TicketRef::of(&t.ticket_id);
    let reentry = t.policy == EntryPolicy::ReEntry;
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
        }
    };
    let decision = |verdict: Verdict, outcome| {
        let note = match &verdict {
            Verdict::Admit(a) => a.override_reason.clone().or_else(|| a.collected.as_ref().map(Money::to_note)),
            _ => None,
        };
        Decision { verdict, ticket, kind: input.kind, outcome, reentry, ticket_type: t.ticket_type, note }
    };
    if let Err(refusal) = verify_signed(&signed, ctx) {
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
    match index.blocking_scan(&ticket, t.policy) {
        // Payment is due once, before the ticket's first entry; a re-entry after an exit is not charged again.
        None if t.payment_due && !index.history(&ticket).iter().any(|s| s.kind == ScanKind::Entry) => {
            let entry = holders.and_then(|h| h.entry(&t.ticket_id));
            let (holder, due) = entry.map_or((None, None), |e| (Some(e.holder_name), e.due));
            if paid {
                let admit = Admission {
                    holder,
                    ticket_type: t.ticket_type,
                    addons: addon_list(t.addons),
                    policy: t.policy,
                    gate: gate.to_owned(),
                    override_reason: None,
                    overridden: None,
                    paid_at_door: true,
                    collected: due,
                };
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
            let used = AlreadyUsed {
                wall_time: prior.wall_time,
                at: format_utc(u64::from(prior.wall_time)),
                gate: index.gate_name(prior.device, prior.gate),
                device: prior.device,
                device_name: index.device_name(prior.device),
                this_device: prior.device == this_device,
            };
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
    }
}
