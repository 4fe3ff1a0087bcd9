//! The organizer's report: admitted per gate and per hour, refusals by reason, overrides, and conflicts —
//! tickets let in more often than their policy allows, with every scan involved (device, gate, time).
//!
//! Computed from the union of all devices' records only, so any two logs holding the same scans give the
//! same report, whatever order they were merged in: a duplicate cannot hide behind a merge.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use super::document::DeviceLog;
use super::record::{format_utc, utc_hour, DeviceId, Hlc, Outcome, ScanKind, TicketRef};

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
    pub admitted_by_gate: BTreeMap<String, u64>,
    pub admitted_by_hour: BTreeMap<String, u64>,
    pub refused_by_reason: BTreeMap<String, u64>,
    pub conflicts: Vec<Conflict>,
    /// Admissions an operator forced over a refusal.
    pub overrides: Vec<ReportedScan>,
    pub devices: Vec<DeviceSummary>,
}

impl EventReport {
    /// Computes the report from every device's part of the log.
    pub fn from_logs(logs: &[DeviceLog]) -> Self {
        let mut report = EventReport::default();
        // (ticket, clock, device index, record index) of every scan that let a ticket through.
        let mut passed: Vec<(TicketRef, Hlc, usize, usize)> = Vec::new();
        // Counted by number first, named once at the end (naming per record costs more than the rest).
        let mut by_gate: HashMap<(usize, u16), u64> = HashMap::new();
        let mut by_hour: HashMap<u32, u64> = HashMap::new();
        for (d, log) in logs.iter().enumerate() {
            let mut summary = DeviceSummary { device: log.device, name: log.name.clone(), scans: 0, admitted: 0 };
            for (i, r) in log.records.iter().enumerate() {
                summary.scans += 1;
                match (r.outcome, r.kind) {
                    (Outcome::Admitted | Outcome::AdmittedOverride, ScanKind::Entry) => {
                        report.admitted += 1;
                        summary.admitted += 1;
                        *by_gate.entry((d, r.gate)).or_default() += 1;
                        *by_hour.entry(r.wall_time / 3600).or_default() += 1;
                    }
                    (Outcome::Admitted | Outcome::AdmittedOverride, ScanKind::Exit) => report.exits += 1,
                    (Outcome::AlreadyUsed, _) => report.already_used += 1,
                    (Outcome::Refused(code), _) => {
                        report.refused += 1;
                        *report.refused_by_reason.entry(code.as_str().to_owned()).or_default() += 1;
                    }
                }
                if r.outcome == Outcome::AdmittedOverride {
                    report.overrides.push(reported(log, i));
                }
                if r.outcome.passed() && !r.ticket.is_none() {
                    passed.push((r.ticket, r.hlc, d, i));
                }
            }
            report.scans += summary.scans;
            report.devices.push(summary);
        }
        for ((d, gate), n) in by_gate {
            *report.admitted_by_gate.entry(logs[d].gate_name(gate)).or_default() += n;
        }
        for (hour, n) in by_hour {
            *report.admitted_by_hour.entry(utc_hour(u64::from(hour) * 3600)).or_default() += n;
        }
        report.overrides.sort_by_key(|s| (s.hlc, s.device));
        // A total order every merge agrees on: ticket, then clock, then device.
        passed.sort_unstable_by_key(|&(t, h, d, _)| (t, h, logs[d].device));
        for group in passed.chunk_by(|a, b| a.0 == b.0) {
            let reentry = group.iter().any(|&(_, _, d, i)| logs[d].records[i].reentry);
            let mut involved = BTreeSet::new();
            if reentry {
                // Entry while already inside (no exit in between) is a conflict with the entry before it.
                let mut inside: Option<usize> = None;
                for (n, &(_, _, d, i)) in group.iter().enumerate() {
                    match logs[d].records[i].kind {
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
                let entries: Vec<usize> = (0..group.len())
                    .filter(|&n| logs[group[n].2].records[group[n].3].kind == ScanKind::Entry)
                    .collect();
                if entries.len() > 1 {
                    involved.extend(entries);
                }
            }
            if !involved.is_empty() {
                report.conflicts.push(Conflict {
                    ticket: group[0].0,
                    reentry,
                    scans: involved.into_iter().map(|n| reported(&logs[group[n].2], group[n].3)).collect(),
                });
            }
        }
        report
    }

    /// The report as a readable table.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Scans: {}   admitted: {}   exits: {}   already used: {}   refused: {}   conflicts: {}   overrides: {}",
            self.scans,
            self.admitted,
            self.exits,
            self.already_used,
            self.refused,
            self.conflicts.len(),
            self.overrides.len()
        );
        let _ = writeln!(out, "\nAdmitted per gate");
        for (gate, n) in &self.admitted_by_gate {
            let _ = writeln!(out, "  {gate:<24} {n:>8}");
        }
        let _ = writeln!(out, "\nAdmitted per hour (UTC)");
        for (hour, n) in &self.admitted_by_hour {
            let _ = writeln!(out, "  {hour:<24} {n:>8}");
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
        if !self.overrides.is_empty() {
            let _ = writeln!(out, "\nOperator overrides: {}", self.overrides.len());
            for s in &self.overrides {
                let _ = writeln!(out, "  {}", scan_line(s));
            }
        }
        out
    }
}

fn scan_line(s: &ReportedScan) -> String {
    let device = if s.device_name.is_empty() { s.device.to_hex() } else { format!("{} ({})", s.device_name, s.device) };
    let over = s.override_reason.as_deref().map(|r| format!("  OVERRIDE: {r}")).unwrap_or_default();
    format!("{}  gate {:<12} device {device}{over}", s.at, s.gate)
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
        outcome: r.outcome,
        override_reason: log.overrides.get(&r.hlc).cloned(),
    }
}
