//! The door's scan policy, once for every scanner (the CLI natively, the PWA through wasm): who may do
//! what, whether to ask the edge Worker, and what to record — as a storage- and network-free step.
//!
//! 1. **plan** ([`Device::plan`]): the steward's or supervisor's request is checked against the device's
//!    role and decided offline first. The answer is final at once ([`ScanPlan::Decided`]) when
//!    - no edge is configured or the caller knows it is offline;
//!    - the action is a supervisor's own decision (override, undo) or a payment taken at the door;
//!    - the code is refused here (not a genuine ticket for this event, revoked, outside its validity, or
//!      not valid at this gate by the event's gate rules) — the edge would refuse it too;
//!    - this device's log already stops the ticket (it was admitted here, or a merged log shows it used):
//!      the edge may not have that scan yet and would admit the ticket a second time;
//!    - the ticket's latest record is this device's own undo (only this device knows it admits again).
//!
//!    Otherwise it returns the question for the edge ([`ScanPlan::AskEdge`]): the request body for
//!    `POST {edge}/v1/redeem` and the timeout.
//! 2. **ask**: the caller sends it (its own HTTP client and timer), and
//! 3. **finish** ([`Device::finish`]) with the reply or the failure: an edge verdict is recorded as the
//!    edge's (the device's mirror of it); no usable answer in time means the device decides offline and
//!    says why the edge was not used.
//!
//! Either way the outcome carries the write to persist before the verdict is shown (persistence contract
//! in [`super::device`]).
//!
//! Roles: a steward scans (entries, exits) and confirms payments at the door; a **supervisor** (unlocked
//! with a [`crate::supervisor::SupervisorPass`]) may also override a refusal, undo a check-in and admit an
//! attendee found by search. The supervisor's name is recorded beside each of those records.

use super::decision::{ScanInput, Verdict};
use super::device::{Decide, Device, DeviceKind, ScanOutcome};
use super::record::ScanKind;
use crate::wire::{EdgeVerdict, RedeemRequest, DEFAULT_EDGE_TIMEOUT_MS, REDEEM_PATH};

/// How often a door device syncs its log with a venue hub (the CLI's door loop and the PWA): the other
/// gates' scans reach a device deciding offline within about this long. Issue #18's goal is "already used"
/// at another gate in under 3 s.
pub const HUB_SYNC_INTERVAL_MS: u64 = 2_000;

/// The server a door device asks for online verdicts (step 2 of the plan), once for every scanner: the
/// CLI and the PWA (through wasm) choose with [`OnlineVerifier::choose`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnlineVerifier {
    /// A venue hub (`scanner hub`): decides for every gate of the venue, on the venue's own network.
    Hub(String),
    /// The edge Worker.
    Edge(String),
}

impl OnlineVerifier {
    /// With a venue hub configured, the hub and only the hub: it is on the venue's network when the
    /// internet is not, it already holds every gate's scans (the edge would not, while the venue is cut
    /// off), and asking the edge as well would cost the steward a second timeout whenever the internet is
    /// down — the usual case at a venue that needs a hub. The hub relays what it decided to the issuer,
    /// which relays it to the edge. Without a hub, the edge if there is one; otherwise none (decide
    /// offline).
    pub fn choose(hub: Option<&str>, edge: Option<&str>) -> Option<Self> {
        let set = |url: Option<&str>| url.map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned);
        match (set(hub), set(edge)) {
            (Some(hub), _) => Some(Self::Hub(hub)),
            (None, Some(edge)) => Some(Self::Edge(edge)),
            (None, None) => None,
        }
    }

    /// The server's base URL (its redemption endpoint is [`REDEEM_PATH`] below it).
    pub fn url(&self) -> &str {
        match self {
            Self::Hub(url) | Self::Edge(url) => url,
        }
    }

    /// `hub` or `edge`: what a scanner shows as who decided a scan online.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hub(_) => "hub",
            Self::Edge(_) => "edge",
        }
    }

    /// How often to sync the log with this server while scanning: a hub every [`HUB_SYNC_INTERVAL_MS`]
    /// (it is local and free, and the other gates' scans should reach this device within seconds); the
    /// edge is synced by the caller's own background cadence (its requests are billed), so `None`.
    pub fn sync_every_ms(&self) -> Option<u64> {
        match self {
            Self::Hub(_) => Some(HUB_SYNC_INTERVAL_MS),
            Self::Edge(_) => None,
        }
    }
}

/// What the steward or supervisor asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoorAction {
    /// Scan a code (entry or exit).
    Scan,
    /// The holder of a payment-due ticket paid at the door: admit and record the amount.
    ConfirmPaid,
    /// Supervisor: admit although refused, for this reason.
    Override(String),
    /// Supervisor: undo the ticket's check-in, for this reason.
    Undo(String),
    /// Supervisor: admit a ticket found by searching the orders online (the holder has no QR with them).
    AdmitFound,
}

impl DoorAction {
    fn supervisor_only(&self) -> Option<&'static str> {
        match self {
            DoorAction::Scan | DoorAction::ConfirmPaid => None,
            DoorAction::Override(_) => Some("override a refusal"),
            DoorAction::Undo(_) => Some("undo a check-in"),
            DoorAction::AdmitFound => Some("admit an attendee found by search"),
        }
    }
}

/// One request at the door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRequest {
    /// The code's text (from the camera, a keyboard-wedge scanner, typing, or a search result).
    pub text: String,
    pub kind: ScanKind,
    pub gate: String,
    pub action: DoorAction,
}

/// The plan for a request.
#[derive(Debug)]
pub enum ScanPlan {
    /// Decided on this device: persist, then show.
    Decided(ScanOutcome),
    /// Ask the edge, then call [`Device::finish`] with its answer.
    AskEdge(EdgeQuestion),
}

/// What to send to the edge, and what [`Device::finish`] needs to complete the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeQuestion {
    /// The `POST {edge}/v1/redeem` JSON body.
    pub body: String,
    /// The edge's path, relative to its base URL.
    pub path: &'static str,
    /// How long to wait for the edge before deciding offline.
    pub timeout_ms: u64,
    request: ScanRequest,
    addon: Option<u8>,
    note: Option<String>,
}

/// What came back from the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeAnswer {
    /// An HTTP reply: status and body.
    Reply { status: u16, body: Vec<u8> },
    /// No reply in time, or no connection: why.
    Failed(String),
}

impl Device {
    /// Plans a request at the door (see the module documentation). `edge` says whether an edge is
    /// configured and the caller believes it is reachable. `now_ms` is the device's wall clock.
    pub fn plan(&mut self, request: ScanRequest, edge: bool, now_ms: u64) -> crate::Result<ScanPlan> {
        let supervisor = match request.action.supervisor_only() {
            Some(what) => Some(self.require_supervisor(now_ms, what)?),
            None => None,
        };
        let by = |what: &str| supervisor.as_ref().map(|name| format!("{what} (supervisor {name})"));
        let text = request.text.as_str();
        let gate = request.gate.as_str();
        let decision = match &request.action {
            DoorAction::Undo(reason) => {
                let mut decision = self.decide_now(Decide::Undo(text, reason), gate, now_ms)?;
                decision.note = by(reason.trim());
                return self.decided(decision, gate, now_ms, None);
            }
            DoorAction::ConfirmPaid => {
                let decision = self.decide_now(Decide::Paid(text), gate, now_ms)?;
                return self.decided(decision, gate, now_ms, None);
            }
            DoorAction::Override(reason) => {
                let input = ScanInput { text, kind: request.kind, override_reason: Some(reason) };
                let mut decision = self.decide_now(Decide::Scan(input), gate, now_ms)?;
                if decision.note.is_some() {
                    decision.note = by(reason.trim());
                }
                return self.decided(decision, gate, now_ms, None);
            }
            DoorAction::Scan | DoorAction::AdmitFound => {
                let input = ScanInput { text, kind: request.kind, override_reason: None };
                self.decide_now(Decide::Scan(input), gate, now_ms)?
            }
        };
        let note = by(super::report::FOUND_BY_SEARCH);
        let local_reason = if !edge {
            None
        } else {
            match &decision.verdict {
                Verdict::Refused { .. } => Some("refused on this device"),
                Verdict::AlreadyUsed(_) => Some("this device's log already shows the ticket used"),
                Verdict::Admit(_) if self.undone_here(&decision) => {
                    Some("this device undid the ticket's check-in and the edge may not know yet")
                }
                _ => {
                    let event = self.event_id().ok_or(DeviceKind::NoEvent)?;
                    let body = RedeemRequest {
                        qr_text: text.trim().to_owned(),
                        event,
                        device: self.device(),
                        device_name: self.name().to_owned(),
                        gate: gate.to_owned(),
                        kind: request.kind,
                        addon: decision.addon,
                    }
                    .to_json();
                    return Ok(ScanPlan::AskEdge(EdgeQuestion {
                        body,
                        path: REDEEM_PATH,
                        timeout_ms: DEFAULT_EDGE_TIMEOUT_MS,
                        addon: decision.addon,
                        request,
                        note,
                    }));
                }
            }
        };
        let mut decision = decision;
        if decision.verdict.is_admit() && decision.note.is_none() {
            decision.note = note;
        }
        self.decided(decision, gate, now_ms, local_reason.map(|r| format!("not asked: {r}")))
    }

    fn decided(
        &mut self,
        decision: super::decision::Decision,
        gate: &str,
        now_ms: u64,
        edge_note: Option<String>,
    ) -> crate::Result<ScanPlan> {
        let mut outcome = self.apply_decision(decision, gate, now_ms)?;
        outcome.edge_note = edge_note;
        Ok(ScanPlan::Decided(outcome))
    }

    /// Completes a scan the plan sent to the edge, with the edge's answer (or why there was none): the
    /// edge's verdict when usable, otherwise this device's own decision, with the reason in `edge_note`.
    pub fn finish(&mut self, question: EdgeQuestion, answer: EdgeAnswer, now_ms: u64) -> crate::Result<ScanOutcome> {
        let r = &question.request;
        let failure = match answer {
            EdgeAnswer::Failed(why) => why,
            EdgeAnswer::Reply { status, body } => match EdgeVerdict::from_reply(status, &body) {
                Err(e) => e.to_string(),
                Ok(verdict) => {
                    match self.mirror_edge_verdict(
                        &r.text,
                        r.kind,
                        &r.gate,
                        &verdict,
                        question.addon,
                        question.note.clone(),
                        now_ms,
                    ) {
                        Ok(outcome) => return Ok(outcome),
                        Err(crate::Error::EdgeReply(e)) => e.to_string(),
                        Err(e) => return Err(e),
                    }
                }
            },
        };
        let input = ScanInput { text: &r.text, kind: r.kind, override_reason: None };
        let mut decision = self.decide_now(Decide::Scan(input), &r.gate, now_ms)?;
        if decision.verdict.is_admit() && decision.note.is_none() {
            decision.note = question.note.clone();
        }
        let mut outcome = self.apply_decision(decision, &r.gate, now_ms)?;
        outcome.edge_note = Some(failure);
        Ok(outcome)
    }
}

#[cfg(test)]
mod online_verifier_tests {
    use super::*;

    #[test]
    fn a_hub_is_asked_instead_of_the_edge() {
        let hub = "http://127.0.0.1:8088";
        let edge = "https://edge.example.org";
        assert_eq!(OnlineVerifier::choose(Some(hub), Some(edge)), Some(OnlineVerifier::Hub(hub.to_owned())));
        assert_eq!(OnlineVerifier::choose(Some(hub), None), Some(OnlineVerifier::Hub(hub.to_owned())));
        assert_eq!(OnlineVerifier::choose(None, Some(edge)), Some(OnlineVerifier::Edge(edge.to_owned())));
        assert_eq!(OnlineVerifier::choose(Some("  "), Some(edge)), Some(OnlineVerifier::Edge(edge.to_owned())));
        assert_eq!(OnlineVerifier::choose(None, Some("")), None);
        assert_eq!(OnlineVerifier::choose(None, None), None);
    }

    #[test]
    fn only_a_hub_is_synced_every_two_seconds() {
        assert_eq!(OnlineVerifier::Hub("h".into()).sync_every_ms(), Some(2_000));
        assert_eq!(OnlineVerifier::Edge("e".into()).sync_every_ms(), None);
        assert_eq!((OnlineVerifier::Hub("h".into()).kind(), OnlineVerifier::Edge("e".into()).url()), ("hub", "e"));
    }
}
