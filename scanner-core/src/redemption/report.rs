//! The organizer's report: admitted per gate and per hour, refusals by reason, overrides, and conflicts —
//! tickets let in more often than their policy allows, with every scan involved (device, gate, time).
//!
//! Computed from the union of all devices' records only, so any two logs holding the same scans give the
//! same report, whatever order they were merged in: a duplicate cannot hide behind a merge.
//!
//! Scans decided online (by the edge Worker or a venue hub, [`super::online`]) can appear twice: in the
//! deciding server's own part of the log and as the scanning device's mirror of the verdict it showed
//! (both flagged `decided_by_edge`). The two are the *same* decision, and they carry the same clock value:
//! the server sends its record's clock in the verdict and the device's mirror takes it
//! ([`crate::wire::VerdictBody::hlc`]). So an online-decided pass is a copy, counted once, exactly when an
//! earlier online-decided pass of the same ticket (and slot) has the same clock value and the same kind
//! (entry or exit). Order alone proves nothing: a hub cut off from the edge and the edge itself may both
//! admit one single-entry ticket, each deciding correctly on what it knows; those two decisions have
//! different clock values and are a conflict like any other double entry. A mirror whose server record is
//! not merged yet simply counts alone. Offline admissions are never collapsed, so a ticket admitted offline
//! somewhere and also online, or twice offline, is still a conflict.
//!
//! Two consequences of matching on the clock: a mirror that does not carry the server's clock (a server
//! that sent none) cannot be told from an independent admission and shows as a conflict with the
//! server's record — visible, never hidden; and two servers deciding the same ticket in the same
//! millisecond with nothing earlier to order after (equal clock values) would be taken for one decision.
//!
//! A supervisor's undo ([`Outcome::Undone`]) compensates every earlier pass of its ticket (and slot) in
//! that total order: those passes are listed under `undone` and counted nowhere else, and a later entry
//! does not conflict with them. Add-ons redeemed on their own (vouchers) are counted per add-on, apart
//! from admissions, and redeeming one twice is a conflict like a double entry.
//!
//! Money collected at the door is summed from the paid admissions ([`Outcome::PaidAtDoor`]) that count,
//! per gate and currency, with the amount each one recorded beside it in the log. A ticket paid for twice
//! (two scanners, offline) is a conflict, and both payments are in the totals: both were taken.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use super::document::DeviceLog;
use super::record::{format_utc, utc_hour, DecisionPath, DeviceId, Hlc, Outcome, ScanKind, TicketRef};
use crate::manifest::Money;

/// A pass (or an undo) in the report's total order: (ticket and slot, clock, device index, record index).
type Pass = ((TicketRef, Option<u8>), Hlc, usize, usize);

/// How the note of an admission after a search starts (see [`super::door`]).
pub const FOUND_BY_SEARCH: &str = "found by search";

/// One scan as shown in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportedScan {
    pub device: DeviceId,
    pub device_name: String,
    pub gate: String,
    pub wall_time: u32,
    /// `wall_time` as UTC text.
    pub at: String,
    pub hlc: Hlc,
    pub kind: ScanKind,
    /// Which path decided: the edge Worker (online) or the device by itself.
    pub path: DecisionPath,
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_reason: Option<String>,
}

/// A ticket let in more often than its policy allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// The ticket's reference in the log (the issuer maps it back to the ticket).
    pub ticket: TicketRef,
    pub reentry: bool,
    /// The entries that conflict, in clock order.
    pub scans: Vec<ReportedScan>,
    /// The add-on redeemed more than once (a voucher), or `None` for the ticket's own entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addon: Option<u8>,
}

/// One device's share of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceSummary {
    pub device: DeviceId,
    pub name: String,
    pub scans: u64,
    pub admitted: u64,
}

/// The report over a whole (merged) log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct EventReport {
    pub scans: u64,
    pub admitted: u64,
    pub exits: u64,
    pub already_used: u64,
    pub refused: u64,
    /// Of `admitted`, how many the edge Worker decided (online).
    pub decided_by_edge: u64,
    /// Extra copies of online-decided passes (the deciding server's record and a device's mirror of the
    /// same verdict, with the same clock value), counted once and left out of every other figure.
    pub edge_copies: u64,
    pub admitted_by_gate: BTreeMap<String, u64>,
    pub admitted_by_hour: BTreeMap<String, u64>,
    pub refused_by_reason: BTreeMap<String, u64>,
    pub conflicts: Vec<Conflict>,
    /// Admissions an operator forced over a refusal.
    pub overrides: Vec<ReportedScan>,
    pub devices: Vec<DeviceSummary>,
    /// Scans that asked for payment at the door (the ticket was not admitted by that scan).
    pub payment_requests: u64,
    /// Of `admitted`, how many were admitted after payment at the door.
    pub paid_at_door: u64,
    /// Of `paid_at_door`, how many recorded no amount (the scanner's manifest did not have it).
    pub paid_at_door_amount_unknown: u64,
    /// Money collected at the door per gate, one amount per currency (sorted by currency).
    pub collected_by_gate: BTreeMap<String, Vec<Money>>,
    /// Money collected at the door, all gates: one amount per currency (sorted by currency).
    pub collected: Vec<Money>,
    /// Supervisors' undos of check-ins, with their reasons.
    pub undos: Vec<ReportedScan>,
    /// The passes those undos compensated (no longer counted as admitted).
    pub undone: Vec<ReportedScan>,
    /// Add-ons redeemed on their own (vouchers), per add-on index.
    pub redeemed_addons: BTreeMap<u8, u64>,
    /// Admissions a supervisor made for an attendee found by search (no QR at the door).
    pub found_by_search: Vec<ReportedScan>,
}

/// One pass that counts in the report (an entry, an exit or an add-on redeemed), for the organizer's
/// check-in list: the ticket it was for and the scan. Copies of edge decisions and undone passes are not
/// check-ins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckIn {
    /// The ticket's reference in the log ([`TicketRef::NONE`] for a pass with no readable ticket).
    pub ticket: TicketRef,
    /// The add-on redeemed on its own, or `None` for the ticket's own entry or exit.
    pub addon: Option<u8>,
    pub scan: ReportedScan,
}

impl EventReport {
    /// Computes the report from every device's part of the log.
    pub fn from_logs(logs: &[DeviceLog]) -> Self {
        Self::build(logs, None)
    }

    /// The report and every pass it counted, in clock order (ties by device): the check-in list. Naming
    /// every pass costs more than the counting, so [`EventReport::from_logs`] does not.
    pub fn with_check_ins(logs: &[DeviceLog]) -> (Self, Vec<CheckIn>) {
        let mut check_ins = Vec::new();
        let report = Self::build(logs, Some(&mut check_ins));
        check_ins.sort_by_key(|c| (c.scan.hlc, c.scan.device));
        (report, check_ins)
    }

    fn build(logs: &[DeviceLog], mut check_ins: Option<&mut Vec<CheckIn>>) -> Self {
        let mut report = EventReport::default();
        // (ticket and slot, clock, device index, record index) of every scan that let a ticket through,
        // and of every undo.
        let mut passed: Vec<Pass> = Vec::new();
        // Passes that count (copies of edge decisions left out), as (device index, record index).
        let mut counted: Vec<(usize, usize)> = Vec::new();
        for (d, log) in logs.iter().enumerate() {
            report.devices.push(DeviceSummary { device: log.device, name: log.name.clone(), scans: 0, admitted: 0 });
            for (i, r) in log.records.iter().enumerate() {
                match r.outcome {
                    Outcome::Admitted | Outcome::AdmittedOverride | Outcome::PaidAtDoor => {}
                    Outcome::PaymentDue => report.payment_requests += 1,
                    Outcome::AlreadyUsed => report.already_used += 1,
                    Outcome::Undone => {
                        report.undos.push(reported(log, i));
                        if !r.ticket.is_none() {
                            passed.push(((r.ticket, r.addon), r.hlc, d, i));
                        }
                    }
                    Outcome::Refused(code) => {
                        report.refused += 1;
                        *report.refused_by_reason.entry(code.as_str().to_owned()).or_default() += 1;
                    }
                }
                if r.outcome == Outcome::AdmittedOverride {
                    report.overrides.push(reported(log, i));
                }
                if r.outcome.passed() {
                    if r.ticket.is_none() {
                        counted.push((d, i));
                    } else {
                        passed.push(((r.ticket, r.addon), r.hlc, d, i));
                    }
                }
            }
            report.scans += log.records.len() as u64;
            report.devices[d].scans = log.records.len() as u64;
        }
        report.overrides.sort_by_key(|s| (s.hlc, s.device));
        report.undos.sort_by_key(|s| (s.hlc, s.device));
        // A total order every merge agrees on: ticket, then clock, then device.
        passed.sort_unstable_by_key(|&(t, h, d, _)| (t, h, logs[d].device));
        let record = |&(_, _, d, i): &Pass| &logs[d].records[i];
        let mut undone: Vec<(usize, usize)> = Vec::new();
        for group in passed.chunk_by(|a, b| a.0 == b.0) {
            // A voucher is redeemed once: like a single-entry ticket.
            let reentry = group[0].0 .1.is_none() && group.iter().any(|p| record(p).reentry);
            // The passes that count, in order: copies of an edge decision left out, and passes before an
            // undo compensated.
            let mut kept: Vec<usize> = Vec::with_capacity(group.len());
            // The clock value and kind of the latest online decision seen: a copy of one decision has the
            // same clock, so it sorts right beside it (the group is in clock order). Not reset by an undo:
            // a copy of an undone pass is still only a copy.
            let mut last_online: Option<(Hlc, ScanKind)> = None;
            for (n, p) in group.iter().enumerate() {
                let r = record(p);
                if r.outcome == Outcome::Undone {
                    undone.extend(kept.drain(..).map(|k| (group[k].2, group[k].3)));
                    continue;
                }
                if r.decided_by_edge {
                    if last_online == Some((r.hlc, r.kind)) {
                        report.edge_copies += 1;
                        continue;
                    }
                    last_online = Some((r.hlc, r.kind));
                }
                kept.push(n);
            }
            counted.extend(kept.iter().map(|&k| (group[k].2, group[k].3)));
            let mut involved = BTreeSet::new();
            if reentry {
                // Entry while already inside (no exit in between) is a conflict with the entry before it.
                let mut inside: Option<usize> = None;
                for &n in &kept {
                    match record(&group[n]).kind {
                        ScanKind::Entry => {
                            if let Some(prev) = inside {
                                involved.insert(prev);
                                involved.insert(n);
                            }
                            inside = Some(n);
                        }
                        ScanKind::Exit => inside = None,
                    }
                }
            } else {
                let entries: Vec<usize> =
                    kept.iter().copied().filter(|&n| record(&group[n]).kind == ScanKind::Entry).collect();
                if entries.len() > 1 {
                    involved.extend(entries);
                }
            }
            if !involved.is_empty() {
                report.conflicts.push(Conflict {
                    ticket: group[0].0 .0,
                    addon: group[0].0 .1,
                    reentry,
                    scans: involved.into_iter().map(|n| reported(&logs[group[n].2], group[n].3)).collect(),
                });
            }
        }
        // Counted by number first, named once at the end (naming per record costs more than the rest).
        let mut by_gate: HashMap<(usize, u16), u64> = HashMap::new();
        let mut by_hour: HashMap<u32, u64> = HashMap::new();
        let mut collected: HashMap<(usize, u16, String), u64> = HashMap::new();
        report.undone = undone.iter().map(|&(d, i)| reported(&logs[d], i)).collect();
        report.undone.sort_by_key(|s| (s.hlc, s.device));
        for (d, i) in counted {
            let r = &logs[d].records[i];
            if let Some(list) = check_ins.as_deref_mut() {
                list.push(CheckIn { ticket: r.ticket, addon: r.addon, scan: reported(&logs[d], i) });
            }
            if let Some(addon) = r.addon {
                *report.redeemed_addons.entry(addon).or_default() += 1;
                continue;
            }
            if r.kind == ScanKind::Entry
                && logs[d].overrides.get(&r.hlc).is_some_and(|n| n.starts_with(FOUND_BY_SEARCH))
                && r.outcome == Outcome::Admitted
            {
                report.found_by_search.push(reported(&logs[d], i));
            }
            if r.outcome == Outcome::PaidAtDoor {
                report.paid_at_door += 1;
                match logs[d].overrides.get(&r.hlc).and_then(|note| Money::from_note(note)) {
                    Some(money) => {
                        let sum = collected.entry((d, r.gate, money.currency)).or_default();
                        *sum = sum.saturating_add(money.minor);
                    }
                    None => report.paid_at_door_amount_unknown += 1,
                }
            }
            match r.kind {
                ScanKind::Entry => {
                    report.admitted += 1;
                    report.devices[d].admitted += 1;
                    if r.decided_by_edge {
                        report.decided_by_edge += 1;
                    }
                    *by_gate.entry((d, r.gate)).or_default() += 1;
                    *by_hour.entry(r.wall_time / 3600).or_default() += 1;
                }
                ScanKind::Exit => report.exits += 1,
            }
        }
        for ((d, gate), n) in by_gate {
            *report.admitted_by_gate.entry(logs[d].gate_name(gate)).or_default() += n;
        }
        for (hour, n) in by_hour {
            *report.admitted_by_hour.entry(utc_hour(u64::from(hour) * 3600)).or_default() += n;
        }
        let mut by_gate: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut total: BTreeMap<String, u64> = BTreeMap::new();
        for ((d, gate, currency), minor) in collected {
            let sum = by_gate.entry(logs[d].gate_name(gate)).or_default().entry(currency.clone()).or_default();
            *sum = sum.saturating_add(minor);
            let sum = total.entry(currency).or_default();
            *sum = sum.saturating_add(minor);
        }
        let amounts = |sums: BTreeMap<String, u64>| sums.into_iter().map(|(currency, minor)| Money { minor, currency });
        report.collected_by_gate = by_gate.into_iter().map(|(gate, sums)| (gate, amounts(sums).collect())).collect();
        report.collected = amounts(total).collect();
        report
    }

    /// The report as a readable table.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Scans: {}   admitted: {} (by the edge: {})   exits: {}   already used: {}   refused: {}   conflicts: {}   \
             overrides: {}",
            self.scans,
            self.admitted,
            self.decided_by_edge,
            self.exits,
            self.already_used,
            self.refused,
            self.conflicts.len(),
            self.overrides.len()
        );
        if !self.redeemed_addons.is_empty() {
            let _ = writeln!(out, "\nAdd-ons redeemed on their own");
            for (addon, n) in &self.redeemed_addons {
                let _ = writeln!(out, "  add-on {addon:<17} {n:>8}");
            }
        }
        let _ = writeln!(out, "\nAdmitted per gate");
        for (gate, n) in &self.admitted_by_gate {
            let _ = writeln!(out, "  {gate:<24} {n:>8}");
        }
        let _ = writeln!(out, "\nAdmitted per hour (UTC)");
        for (hour, n) in &self.admitted_by_hour {
            let _ = writeln!(out, "  {hour:<24} {n:>8}");
        }
        if self.paid_at_door > 0 || self.payment_requests > 0 {
            let _ = writeln!(
                out,
                "\nCollected at the door: {} paid admissions ({} without a recorded amount), {} payment requests",
                self.paid_at_door, self.paid_at_door_amount_unknown, self.payment_requests
            );
            for (gate, sums) in &self.collected_by_gate {
                for money in sums {
                    let _ = writeln!(out, "  {gate:<24} {:>16}", money.to_string());
                }
            }
            for money in &self.collected {
                let _ = writeln!(out, "  {:<24} {:>16}", "total", money.to_string());
            }
        }
        if !self.refused_by_reason.is_empty() {
            let _ = writeln!(out, "\nRefused by reason");
            for (reason, n) in &self.refused_by_reason {
                let _ = writeln!(out, "  {reason:<24} {n:>8}");
            }
        }
        let _ = writeln!(out, "\nDevices");
        for d in &self.devices {
            let _ = writeln!(out, "  {} {:<20} scans {:>8}  admitted {:>8}", d.device, d.name, d.scans, d.admitted);
        }
        let _ = writeln!(out, "\nConflicts (tickets let in more often than allowed): {}", self.conflicts.len());
        for c in &self.conflicts {
            let _ = writeln!(out, "  ticket {}{}", c.ticket.to_hex(), if c.reentry { " (re-entry)" } else { "" });
            for s in &c.scans {
                let _ = writeln!(out, "      {}", scan_line(s));
            }
        }
        for (title, scans) in [
            ("Operator overrides", &self.overrides),
            ("Check-ins undone by a supervisor", &self.undos),
            ("Admissions those undos compensated", &self.undone),
            ("Admitted after a search (no QR at the door)", &self.found_by_search),
        ] {
            if !scans.is_empty() {
                let _ = writeln!(out, "\n{title}: {}", scans.len());
                for s in scans {
                    let _ = writeln!(out, "  {}", scan_line(s));
                }
            }
        }
        out
    }
}

fn scan_line(s: &ReportedScan) -> String {
    let device = if s.device_name.is_empty() { s.device.to_hex() } else { format!("{} ({})", s.device_name, s.device) };
    let label = if s.outcome == Outcome::Undone { "UNDO" } else { "OVERRIDE" };
    let over = s.override_reason.as_deref().map(|r| format!("  {label}: {r}")).unwrap_or_default();
    let path = if s.path == DecisionPath::Edge { "  (decided by the edge)" } else { "" };
    format!("{}  gate {:<12} device {device}{path}{over}", s.at, s.gate)
}

fn reported(log: &DeviceLog, i: usize) -> ReportedScan {
    let r = &log.records[i];
    ReportedScan {
        device: log.device,
        device_name: log.name.clone(),
        gate: log.gate_name(r.gate),
        wall_time: r.wall_time,
        at: format_utc(u64::from(r.wall_time)),
        hlc: r.hlc,
        kind: r.kind,
        path: DecisionPath::of(r),
        outcome: r.outcome,
        // Overrides and undos have a reason, an admission after a search its note; looked up by clock
        // value, which another record could share.
        override_reason: match r.outcome {
            Outcome::AdmittedOverride | Outcome::Undone | Outcome::Admitted => log.overrides.get(&r.hlc).cloned(),
            _ => None,
        },
    }
}
