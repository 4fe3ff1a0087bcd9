//! An online decision: one server decides a scan for every device that asks, against every scan it holds,
//! and keeps its own record of it. The edge's redemption shards and a venue hub both decide this way
//! (`POST /v1/redeem`, [`crate::wire::RedeemRequest`]), so the rule lives here once.
//!
//! The record is flagged `decided_by_edge` ("decided online"), like the mirror the asking device keeps of
//! the verdict, and carries the clock value sent back in the verdict ([`crate::wire::VerdictBody::hlc`]):
//! the report counts the server's record and the device's mirror as one scan.

use super::decision::{decide_at, At, ScanIndex, ScanInput};
use super::record::{Hlc, ScanRecord};
use super::Verdict;
use crate::verify::VerifyContext;
use crate::wire::RedeemRequest;

/// What an online decision answers, and what the deciding server records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineDecision {
    pub verdict: Verdict,
    /// The server's own record of the scan, if it let the ticket through (gate index 0: the server puts
    /// it in its own gate table). Store it durably before answering.
    pub record: Option<ScanRecord>,
}

impl OnlineDecision {
    /// The record's clock value, sent back so the device's mirror record carries it.
    pub fn hlc(&self) -> Option<Hlc> {
        self.record.map(|r| r.hlc)
    }
}

/// Decides one redemption request with scanner-core's scan decision against `index` (everything the
/// server knows of the ticket). `after` is the latest clock value the server holds for the ticket: the
/// new record sorts strictly after it, even if the server's clock lags a device's. `now_ms` is the
/// server's clock (Unix milliseconds).
pub fn decide_online(
    index: &ScanIndex,
    req: &RedeemRequest,
    ctx: &VerifyContext<'_>,
    now_ms: u64,
    after: Hlc,
) -> OnlineDecision {
    let input = ScanInput { text: &req.qr_text, kind: req.kind, override_reason: None };
    // The scanner applied its gate rules; the server only learns which add-on the gate redeems, if any.
    let at = At { gate: &req.gate, rules: None, redeem: req.addon };
    let decision = decide_at(input, ctx, index, None, req.device, at);
    let record = decision.outcome.passed().then(|| {
        let hlc = Hlc(((now_ms & 0xffff_ffff_ffff) << 16).max(after.0.saturating_add(1)));
        let wall = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
        let mut record = decision.record(hlc, wall, 0);
        // Flagged like the device's mirror of this verdict, so the report counts the two as one scan.
        record.decided_by_edge = true;
        record
    });
    OnlineDecision { verdict: decision.verdict, record }
}
