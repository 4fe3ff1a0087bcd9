//! A redemption shard's state for one ticket and the check-and-record step, decided by scanner-core.
//!
//! The shard keeps, per ticket, every scan that let the ticket through (edge redemptions and offline
//! scans relayed from the log). To decide a new scan it rebuilds scanner-core's [`ScanIndex`] from that
//! history and calls [`decide`] — the same function an offline scanner uses — so "admit / already used /
//! refused" has exactly one implementation (`scanner_core::redemption::online`). The caller (the Durable Object) makes load → decide → store
//! atomic.

use serde::{Deserialize, Serialize};

use scanner_core::redemption::online::decide_online;
use scanner_core::redemption::record::{ScanRecord, RECORD_LEN};
use scanner_core::redemption::{DeviceId, Hlc, ScanIndex, TicketRef, Verdict};
use scanner_core::{Refusal, VerifyContext};

use scanner_core::wire::RedeemRequest;

use crate::error::{Result, StoredScanKind};

/// One scan that let a ticket through, as a shard stores it (JSON in Durable Object storage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredScan {
    /// The device that scanned (16 hex digits).
    pub device: String,
    #[serde(default)]
    pub device_name: String,
    /// The gate's name (the record's own gate index is not meaningful here).
    pub gate: String,
    /// The 32-byte scanner-core record, hex.
    pub record: String,
    /// Decided at the edge (true) or relayed from a device's offline log (false).
    #[serde(default)]
    pub edge: bool,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

impl StoredScan {
    pub fn new(device: DeviceId, device_name: &str, gate: &str, record: &ScanRecord, edge: bool) -> Self {
        Self {
            device: device.to_hex(),
            device_name: device_name.to_owned(),
            gate: gate.to_owned(),
            record: hex(&record.encode()),
            edge,
        }
    }

    pub fn device_id(&self) -> Result<DeviceId> {
        Ok(DeviceId::from_hex(&self.device).ok_or(StoredScanKind::Device)?)
    }

    pub fn scan_record(&self) -> Result<ScanRecord> {
        let bytes = unhex(&self.record).filter(|b| b.len() == RECORD_LEN).ok_or(StoredScanKind::NotHex)?;
        Ok(ScanRecord::decode(&bytes).map_err(StoredScanKind::Record)?)
    }
}

/// Everything a shard knows about one ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketHistory {
    pub scans: Vec<StoredScan>,
}

impl TicketHistory {
    /// scanner-core's index over this history. Each device gets a gate table of the gate names it used
    /// here, and records point into it, so verdicts name the right gate.
    pub fn index(&self) -> Result<ScanIndex> {
        let mut tables: Vec<(DeviceId, String, Vec<String>)> = Vec::new();
        let mut records = Vec::with_capacity(self.scans.len());
        for s in &self.scans {
            let device = s.device_id()?;
            let mut record = s.scan_record()?;
            let at = match tables.iter().position(|(d, _, _)| *d == device) {
                Some(at) => at,
                None => {
                    tables.push((device, s.device_name.clone(), Vec::new()));
                    tables.len() - 1
                }
            };
            let gates = &mut tables[at].2;
            let gate = gates.iter().position(|g| *g == s.gate).unwrap_or_else(|| {
                gates.push(s.gate.clone());
                gates.len() - 1
            });
            record.gate = u16::try_from(gate).unwrap_or(u16::MAX);
            records.push((device, record));
        }
        let mut index = ScanIndex::new();
        for (device, name, gates) in &tables {
            index.set_device(*device, name, gates);
        }
        for (device, record) in &records {
            index.add(*device, record);
        }
        Ok(index)
    }

    /// Adds a scan unless the history already has it (same device and record): relaying is idempotent.
    pub fn insert(&mut self, scan: StoredScan) -> bool {
        if self.scans.iter().any(|s| s.device == scan.device && s.record == scan.record) {
            return false;
        }
        self.scans.push(scan);
        true
    }

    /// The latest clock value in the history, so a new edge record sorts after everything seen.
    fn last_hlc(&self) -> Hlc {
        self.scans.iter().filter_map(|s| s.scan_record().ok()).map(|r| r.hlc).max().unwrap_or_default()
    }
}

/// The ticket a QR text names, for routing to its shard. Parsing only: verification is [`redeem`]'s.
pub fn ticket_of(qr_text: &str) -> Result<(TicketRef, u32), Refusal> {
    let signed = scanner_core::verify::read_ticket(qr_text.trim())?;
    Ok((TicketRef::of(&signed.ticket.ticket_id), signed.ticket.event_id))
}

/// The outcome of one check-and-record.
#[derive(Debug, Clone)]
pub struct Redemption {
    pub verdict: Verdict,
    /// The scan to store (in the history, and in the outbox for the log) if it let the ticket through.
    pub recorded: Option<StoredScan>,
    /// The recorded scan's clock value (sent back so the scanner's mirror record can carry it).
    pub hlc: Option<Hlc>,
}

/// Decides one redemption against the ticket's history with scanner-core's online decision (the one a
/// venue hub makes too). `now_ms` is the edge's clock (Unix milliseconds).
pub fn redeem(
    history: &TicketHistory,
    req: &RedeemRequest,
    ctx: &VerifyContext<'_>,
    now_ms: u64,
) -> Result<Redemption> {
    let index = history.index()?;
    let decision = decide_online(&index, req, ctx, now_ms, history.last_hlc());
    let hlc = decision.hlc();
    let recorded =
        decision.record.map(|record| StoredScan::new(req.device, &req.device_name, &req.gate, &record, true));
    Ok(Redemption { verdict: decision.verdict, recorded, hlc })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Trust;
    use scanner_core::fixtures::{issuer, plain_ticket, qr, ticket_id, EVENT};
    use scanner_core::redemption::{Outcome, RefusalCode, ScanKind};
    use scanner_core::{EntryPolicy, IssuerKey, KeyId, RevocationHash, RevocationList, Ticket};

    const NOW_MS: u64 = 1_750_000_000_000;

    fn setup() -> (IssuerKey, Trust) {
        let (key, keyring) = issuer();
        let mut revocations = RevocationList::new();
        revocations.publish(&key, [RevocationHash::of(&ticket_id(66))]);
        (key, Trust { keyring, revocations })
    }

    /// Ticket `id` of the fixtures' event, signed by `key` (a stranger's key makes a forgery).
    fn ticket(key: &IssuerKey, id: u8, policy: EntryPolicy) -> String {
        qr(key, &Ticket { policy, ..plain_ticket(u64::from(id), EVENT) })
    }

    fn req(qr: &str, device: u64, gate: &str, kind: ScanKind) -> RedeemRequest {
        RedeemRequest {
            qr_text: qr.to_owned(),
            event: EVENT,
            device: DeviceId(device),
            device_name: format!("dev{device}"),
            gate: gate.to_owned(),
            kind,
            addon: None,
        }
    }

    #[test]
    fn a_relayed_undo_lets_the_ticket_in_again_and_vouchers_are_redeemed_once() {
        let (key, trust) = setup();
        let qr = ticket(&key, 5, EntryPolicy::SingleEntry);
        let mut h = TicketHistory::default();
        assert!(run(&mut h, &trust, &req(&qr, 1, "North", ScanKind::Entry), NOW_MS).is_admit());
        assert!(matches!(
            run(&mut h, &trust, &req(&qr, 2, "South", ScanKind::Entry), NOW_MS + 1),
            Verdict::AlreadyUsed(_)
        ));
        // A supervisor's undo on device 3, relayed from the log like an offline scan.
        let undo = ScanRecord {
            ticket: TicketRef::of(&ticket_id(5)),
            hlc: Hlc((NOW_MS + 2) << 16),
            wall_time: (NOW_MS / 1000) as u32,
            gate: 0,
            kind: ScanKind::Entry,
            reentry: false,
            outcome: Outcome::Undone,
            ticket_type: 0,
            decided_by_edge: false,
            addon: None,
        };
        assert!(h.insert(StoredScan::new(DeviceId(3), "dev3", "North", &undo, false)));
        assert!(run(&mut h, &trust, &req(&qr, 2, "South", ScanKind::Entry), NOW_MS + 3).is_admit(), "admits again");
        assert!(matches!(
            run(&mut h, &trust, &req(&qr, 1, "North", ScanKind::Entry), NOW_MS + 4),
            Verdict::AlreadyUsed(_)
        ));

        // The bar's voucher (add-on 0): once, and apart from the ticket's entries.
        let voucher = RedeemRequest { addon: Some(0), gate: "Bar".into(), ..req(&qr, 1, "Bar", ScanKind::Entry) };
        match run(&mut h, &trust, &voucher, NOW_MS + 5) {
            Verdict::Admit(a) => assert_eq!(a.redeemed.map(|r| r.addon), Some(0)),
            other => panic!("{other:?}"),
        }
        match run(&mut h, &trust, &RedeemRequest { device: DeviceId(2), ..voucher }, NOW_MS + 6) {
            Verdict::AlreadyUsed(u) => assert_eq!((u.gate.as_str(), u.redeemed.map(|r| r.addon)), ("Bar", Some(0))),
            other => panic!("{other:?}"),
        }
    }

    /// Runs a redemption and stores what it records, like the Durable Object does.
    fn run(h: &mut TicketHistory, trust: &Trust, r: &RedeemRequest, now_ms: u64) -> Verdict {
        let out = redeem(h, r, &trust.context(r.event, now_ms / 1000), now_ms).unwrap();
        let recorded = out.recorded.as_ref().map(|s| s.scan_record().unwrap());
        assert_eq!(out.hlc, recorded.map(|r| r.hlc));
        assert!(recorded.is_none_or(|r| r.decided_by_edge));
        if let Some(s) = out.recorded {
            assert!(h.insert(s));
        }
        out.verdict
    }

    #[test]
    fn single_entry_admits_once_then_already_used_names_first_gate_and_device() {
        let (key, trust) = setup();
        let qr = ticket(&key, 1, EntryPolicy::SingleEntry);
        let mut h = TicketHistory::default();
        assert!(run(&mut h, &trust, &req(&qr, 1, "North", ScanKind::Entry), NOW_MS).is_admit());
        match run(&mut h, &trust, &req(&qr, 2, "South", ScanKind::Entry), NOW_MS + 5_000) {
            Verdict::AlreadyUsed(u) => {
                assert_eq!(u.gate, "North");
                assert_eq!(u.device, DeviceId(1));
                assert_eq!(u.device_name, "dev1");
                assert_eq!(u.wall_time, (NOW_MS / 1000) as u32);
                assert!(!u.this_device);
            }
            other => panic!("expected already used, got {other:?}"),
        }
        assert_eq!(h.scans.len(), 1);
    }

    #[test]
    fn reentry_ticket_admits_again_after_exit() {
        let (key, trust) = setup();
        let qr = ticket(&key, 2, EntryPolicy::ReEntry);
        let mut h = TicketHistory::default();
        assert!(run(&mut h, &trust, &req(&qr, 1, "A", ScanKind::Entry), NOW_MS).is_admit());
        assert!(matches!(run(&mut h, &trust, &req(&qr, 1, "A", ScanKind::Entry), NOW_MS), Verdict::AlreadyUsed(_)));
        assert!(matches!(run(&mut h, &trust, &req(&qr, 1, "A", ScanKind::Exit), NOW_MS), Verdict::Exit { .. }));
        assert!(run(&mut h, &trust, &req(&qr, 3, "B", ScanKind::Entry), NOW_MS).is_admit());
        // Records of one ticket are strictly ordered even within one millisecond.
        let hlcs: Vec<_> = h.scans.iter().map(|s| s.scan_record().unwrap().hlc).collect();
        assert!(hlcs.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn refusals_record_nothing() {
        let (key, trust) = setup();
        let mut h = TicketHistory::default();
        let revoked = ticket(&key, 66, EntryPolicy::SingleEntry);
        let forged = ticket(&IssuerKey::from_seed(KeyId(1), [8; 32]), 3, EntryPolicy::SingleEntry);
        for (qr, code) in [(revoked.as_str(), RefusalCode::Revoked), (forged.as_str(), RefusalCode::BadSignature)] {
            match run(&mut h, &trust, &req(qr, 1, "A", ScanKind::Entry), NOW_MS) {
                Verdict::Refused { code: c, .. } => assert_eq!(c, code),
                other => panic!("expected refusal, got {other:?}"),
            }
        }
        let mut wrong = req(&ticket(&key, 4, EntryPolicy::SingleEntry), 1, "A", ScanKind::Entry);
        wrong.event = 43;
        assert!(matches!(run(&mut h, &trust, &wrong, NOW_MS), Verdict::Refused { code: RefusalCode::WrongEvent, .. }));
        assert!(h.scans.is_empty());
    }

    #[test]
    fn relayed_offline_admission_blocks_edge_admission() {
        let (key, trust) = setup();
        let qr = ticket(&key, 5, EntryPolicy::SingleEntry);
        let (tref, event) = ticket_of(&qr).unwrap();
        assert_eq!(event, EVENT);
        let offline = ScanRecord {
            ticket: tref,
            hlc: Hlc(1 << 16),
            wall_time: 1_749_999_000,
            gate: 3,
            kind: scanner_core::redemption::ScanKind::Entry,
            reentry: false,
            outcome: Outcome::Admitted,
            ticket_type: 0,
            decided_by_edge: false,
            addon: None,
        };
        let mut h = TicketHistory::default();
        assert!(h.insert(StoredScan::new(DeviceId(9), "phone", "East", &offline, false)));
        assert!(!h.insert(StoredScan::new(DeviceId(9), "phone", "East", &offline, false)));
        match run(&mut h, &trust, &req(&qr, 1, "North", ScanKind::Entry), NOW_MS) {
            Verdict::AlreadyUsed(u) => {
                assert_eq!((u.gate.as_str(), u.device), ("East", DeviceId(9)));
            }
            other => panic!("expected already used, got {other:?}"),
        }
    }

    #[test]
    fn unparsable_text_is_refused_for_routing() {
        assert_eq!(ticket_of("hello"), Err(Refusal::NotATicket));
        assert!(matches!(ticket_of("TK1:%%%"), Err(Refusal::Malformed(_))));
    }
}
