//! The wire protocol between scanners (the CLI and the PWA), the edge Worker and the issuer, defined once:
//! every endpoint path, every message body that is not part of the ticket format, the error body, bearer
//! parsing and constant-time comparison. The transport (HTTP client, server, timeouts) is each side's own.
//!
//! | endpoint | who | body / answer |
//! |---|---|---|
//! | `POST {edge}/v1/redeem` | device token | [`RedeemRequest`] → [`VerdictBody`] |
//! | `POST {issuer or edge}/v1/sync?event=E&channel=push\|pull\|relay` | device or relay token | automerge sync messages ([`sync_path`]) |
//! | `GET /v1/scanner/keyring` | device token | the keyring JSON ([`KEYRING_PATH`]) |
//! | `GET /v1/scanner/revocations?since=V` | device or edge token | a revocation delta ([`revocations_path`]) |
//! | `GET /v1/scanner/events/{e}/manifest` | device token | the sealed attendee manifest ([`manifest_path`]) |
//! | `GET /v1/scanner/events/{e}/gates` | device token | [`crate::gates::GateRules`] ([`gate_rules_path`]) |
//! | `GET /v1/scanner/events/{e}/search?q=` | device token + [`SUPERVISOR_PASS_HEADER`] | [`SearchResults`] ([`search_path`]) |
//! | `GET {issuer}/v1/edge/devices` | edge token | active device token hashes with their events ([`EDGE_DEVICES_PATH`]) |
//!
//! Every error answer, from the issuer and from the edge, is an [`ErrorBody`]:
//! `{"error": {"code": "...", "message": "..."}}`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::redemption::decision::Verdict;
use crate::redemption::document::{SyncChannel, MAX_TEXT_BYTES};
use crate::redemption::record::{DeviceId, Hlc, ScanKind, MAX_ADDON};
use crate::redemption::DecisionPath;

/// The edge's redemption endpoint, relative to its base URL.
pub const REDEEM_PATH: &str = "/v1/redeem";
/// The keyring, for devices.
pub const KEYRING_PATH: &str = "/v1/scanner/keyring";
/// The revocation list (served by the issuer and the edge; [`revocations_path`] adds `?since=`).
pub const REVOCATIONS_PATH: &str = "/v1/scanner/revocations";
/// The sync endpoint (served by the issuer and the edge; [`sync_path`] adds the query).
pub const SYNC_PATH: &str = "/v1/sync";
/// On a relay's sync answer: how many changes of that message were refused because the relay may not
/// carry their device ([`crate::redemption::Accept::writers`]); absent when none were.
pub const REFUSED_CHANGES_HEADER: &str = "x-refused-changes";
/// The issuer's list of active device token hashes, each with its event, for the edge (edge token).
pub const EDGE_DEVICES_PATH: &str = "/v1/edge/devices";
/// The header that carries a supervisor pass to the issuer.
pub const SUPERVISOR_PASS_HEADER: &str = "x-supervisor-pass";
/// How long a scanner waits for the edge before deciding offline. A steward notices a pause of about a
/// second; the edge answers in ~10 ms when reachable, so this only bounds the cost of a dead network.
pub const DEFAULT_EDGE_TIMEOUT_MS: u64 = 800;
/// Largest edge reply a scanner reads (a verdict is a few hundred bytes).
pub const MAX_EDGE_REPLY_BYTES: usize = 16 * 1024;
/// Largest `/v1/redeem` body a server accepts. A ticket's QR text is at most ~150 bytes
/// (`crate::ticket::MAX_QR_TEXT_LEN`); the rest is room for names, so anything larger is abuse.
pub const MAX_REDEEM_BODY: usize = 4 * 1024;
/// Most orders one search returns.
pub const MAX_SEARCH_RESULTS: usize = 20;
/// Shortest search text (characters): a search must narrow the attendee list, not dump it.
pub const MIN_QUERY_CHARS: usize = 3;
/// Longest search text (characters).
pub const MAX_QUERY_CHARS: usize = 100;

/// The path of a revocation update after version `since`.
pub fn revocations_path(since: u64) -> String {
    format!("{REVOCATIONS_PATH}?since={since}")
}

/// Route of an event's sealed attendee manifest, as servers declare it (`{event}`: the event id);
/// [`manifest_path`] fills it in.
pub const MANIFEST_ROUTE: &str = "/v1/scanner/events/{event}/manifest";
/// Route of an event's gate rules; [`gate_rules_path`] fills it in.
pub const GATE_RULES_ROUTE: &str = "/v1/scanner/events/{event}/gates";
/// Route of an event's public description (name, venue, times, ticket types and add-ons by index): what a
/// scanner shows as a ticket's entitlements. [`event_path`] fills it in.
pub const EVENT_ROUTE: &str = "/v1/events/{event}";
/// Route of a supervisor's attendee search; [`search_path`] fills it in.
pub const SEARCH_ROUTE: &str = "/v1/scanner/events/{event}/search";

fn event_route(route: &str, event: u32) -> String {
    route.replace("{event}", &event.to_string())
}

/// The path of an event's sealed attendee manifest.
pub fn manifest_path(event: u32) -> String {
    event_route(MANIFEST_ROUTE, event)
}

/// The path of an event's gate rules.
pub fn gate_rules_path(event: u32) -> String {
    event_route(GATE_RULES_ROUTE, event)
}

/// The path of an event's public description.
pub fn event_path(event: u32) -> String {
    event_route(EVENT_ROUTE, event)
}

/// The path of a search, with the query percent-encoded.
pub fn search_path(event: u32, query: &str) -> String {
    format!("{}?q={}", event_route(SEARCH_ROUTE, event), percent_encode(query))
}

/// The path of one sync session's requests.
pub fn sync_path(event: Option<u32>, channel: SyncChannel) -> String {
    match event {
        Some(e) => format!("{SYNC_PATH}?event={e}&channel={}", channel.as_str()),
        None => format!("{SYNC_PATH}?channel={}", channel.as_str()),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// CORS preflight answer for the device endpoints (`Access-Control-Allow-Methods`): a PWA served from
/// another origin (the issuer's `/scanner/`) calls the edge and a venue hub.
pub const CORS_ALLOW_METHODS: &str = "POST, GET, OPTIONS";
/// `Access-Control-Allow-Headers` of that preflight: the bearer token and the body's type.
pub const CORS_ALLOW_HEADERS: &str = "Authorization, Content-Type, X-Device-Id";
/// `Access-Control-Max-Age` of that preflight, in seconds.
pub const CORS_MAX_AGE_SECS: u32 = 600;
/// `Access-Control-Expose-Headers` of every answer to an allowed origin: the headers a device reads
/// (how long a rate-limited device must wait; how many relayed changes were refused).
pub const CORS_EXPOSE_HEADERS: &str = "Retry-After, X-Refused-Changes";

/// CORS: the `Access-Control-Allow-Origin` value for a request's `Origin`, if that origin is allowed.
/// `allowed` is the configured list; `*` in it allows any origin (credentials are bearer tokens in a
/// header, never cookies, so a wildcard cannot leak them).
pub fn cors_origin<'a>(origin: Option<&'a str>, allowed: &[String]) -> Option<&'a str> {
    let origin = origin?;
    allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(origin)).then_some(origin)
}

/// The origin (`scheme://host[:port]`, as a browser sends it in `Origin`) of an http(s) URL: what comes
/// before the path. `None` for anything else.
pub fn url_origin(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find('/').map_or(url.len(), |i| url.len() - rest.len() + i);
    (!rest.is_empty() && !rest.starts_with('/')).then(|| &url[..end])
}

/// Constant-time equality of two byte strings of possibly different lengths (compares their SHA-256).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    digest_eq(&Sha256::digest(a).into(), &Sha256::digest(b).into())
}

/// Constant-time equality of two SHA-256 digests (e.g. token hashes): no hashing, for checking one
/// digest against a long list of them.
pub fn digest_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The error answer of every endpoint: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A stable machine-readable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    /// For a request field that is wrong (a 422): the field's name, so a form can mark it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self { error: ErrorDetail { code: code.to_owned(), message: message.into(), field: None } }
    }

    /// The error of a request field that is wrong (a 422), naming the field.
    pub fn for_field(code: &str, field: &str, message: impl Into<String>) -> Self {
        Self { error: ErrorDetail { code: code.to_owned(), message: message.into(), field: Some(field.to_owned()) } }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The error of an answer's body, if it is one.
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice(body).ok()
    }
}

/// Why a redeem request is refused (400).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestKind {
    #[error("body is not a redeem request: {0}")]
    Json(String),
    #[error("gate must be 1 to {MAX_TEXT_BYTES} bytes")]
    Gate,
    #[error("device_name must be at most {MAX_TEXT_BYTES} bytes")]
    DeviceName,
    #[error("addon must be 0 to 15")]
    Addon,
    #[error("an add-on is redeemed by an entry scan, not an exit")]
    AddonExit,
    #[error("body is larger than {MAX_REDEEM_BODY} bytes")]
    TooLarge,
}

fn entry() -> ScanKind {
    ScanKind::Entry
}

/// The `POST /v1/redeem` body: a scanner asks the edge to decide one scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    /// The text read from the QR code.
    pub qr_text: String,
    /// The event this scanner admits to. Tickets for other events are refused as `wrong_event`.
    pub event: u32,
    /// The scanning device's id, as it appears in the redemption log (16 lowercase hex digits).
    pub device: DeviceId,
    /// The device's name, shown in "already used" verdicts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device_name: String,
    pub gate: String,
    /// `entry` (default) or `exit`.
    #[serde(default = "entry")]
    pub kind: ScanKind,
    /// The add-on this entry redeems on its own (the scanner's gate rules say its gate redeems it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon: Option<u8>,
}

impl RedeemRequest {
    pub fn to_json(&self) -> String {
        // Serializing plain strings and integers cannot fail; the fallback keeps this panic-free.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses and checks a body (names trimmed and bounded, add-on on entries only).
    pub fn parse(body: &[u8]) -> crate::Result<Self> {
        if body.len() > MAX_REDEEM_BODY {
            return Err(RequestKind::TooLarge.into());
        }
        let mut req: Self = serde_json::from_slice(body).map_err(|e| RequestKind::Json(e.to_string()))?;
        req.gate = req.gate.trim().to_owned();
        req.device_name = req.device_name.trim().to_owned();
        if req.gate.is_empty() || req.gate.len() > MAX_TEXT_BYTES {
            return Err(RequestKind::Gate.into());
        }
        if req.device_name.len() > MAX_TEXT_BYTES {
            return Err(RequestKind::DeviceName.into());
        }
        match req.addon {
            Some(a) if a > MAX_ADDON => Err(RequestKind::Addon.into()),
            Some(_) if req.kind == ScanKind::Exit => Err(RequestKind::AddonExit.into()),
            _ => Ok(req),
        }
    }
}

/// A verdict as it travels: scanner-core's [`Verdict`] (tagged `verdict`), the steward's one line
/// (`summary`), which path decided (`decided_by`: `edge` or `offline`) and, for the edge's own record of
/// the scan, its clock value (`hlc`, a JSON number up to 2^64: parse it as a 64-bit integer) so that a
/// scanner's mirror record carries the same value and the report pairs the two exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictBody {
    #[serde(flatten)]
    pub verdict: Verdict,
    pub summary: String,
    pub decided_by: DecisionPath,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hlc: Option<Hlc>,
}

impl VerdictBody {
    pub fn new(verdict: Verdict, decided_by: DecisionPath, hlc: Option<Hlc>) -> Self {
        Self { summary: verdict.message(), verdict, decided_by, hlc }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why an edge reply cannot be used (the scanner then decides offline).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EdgeReplyKind {
    /// The edge answered with an error status (an [`ErrorBody`]).
    #[error("edge answered {status} ({code}): {message}")]
    Status { status: u16, code: String, message: String },
    #[error("edge reply is larger than {MAX_EDGE_REPLY_BYTES} bytes")]
    TooLarge,
    #[error("edge reply is not a verdict: {0}")]
    NotAVerdict(String),
    #[error("edge reply does not say it was decided by the edge")]
    NotDecidedByEdge,
    /// The verdict does not fit the scan (e.g. an exit verdict for an entry scan, or an admission of a
    /// text that is not a ticket).
    #[error("edge verdict does not match the scan: {0}")]
    Mismatch(&'static str),
}

/// A verdict decided by the edge Worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeVerdict {
    pub verdict: Verdict,
    /// The steward's one-line message, as the edge worded it.
    pub message: String,
    /// The edge's clock value of its own record of this scan, if it sent one.
    pub hlc: Option<Hlc>,
}

impl EdgeVerdict {
    /// Parses the edge's reply: its HTTP status and body.
    pub fn from_reply(status: u16, body: &[u8]) -> crate::Result<Self> {
        if body.len() > MAX_EDGE_REPLY_BYTES {
            return Err(EdgeReplyKind::TooLarge.into());
        }
        if status != 200 {
            let err = ErrorBody::parse(body).unwrap_or_else(|| ErrorBody::new("", ""));
            return Err(EdgeReplyKind::Status { status, code: err.error.code, message: err.error.message }.into());
        }
        let body: VerdictBody = serde_json::from_slice(body).map_err(|e| EdgeReplyKind::NotAVerdict(e.to_string()))?;
        if body.decided_by != DecisionPath::Edge {
            return Err(EdgeReplyKind::NotDecidedByEdge.into());
        }
        Ok(Self { verdict: body.verdict, message: body.summary, hlc: body.hlc.filter(|h| *h != Hlc::default()) })
    }
}

/// One ticket of an order found by search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundTicket {
    /// The ticket id, hex.
    pub ticket_id: String,
    pub holder: String,
    pub ticket_type: u8,
    pub ticket_type_name: String,
    pub addons: Vec<u8>,
    /// Refunded or cancelled (the scanner refuses it as revoked).
    pub revoked: bool,
    /// The ticket's QR text: the supervisor admits it through the ordinary scan decision.
    pub qr_text: String,
}

/// One order found by search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundOrder {
    pub order_id: String,
    pub buyer_name: String,
    pub email: String,
    /// The order's status ("paid", "pay_at_door", "refunded", ...).
    pub status: String,
    pub tickets: Vec<FoundTicket>,
}

/// The answer to a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResults {
    pub orders: Vec<FoundOrder>,
    /// More orders matched than [`MAX_SEARCH_RESULTS`]: the supervisor should search more precisely.
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redemption::RefusalCode;

    #[test]
    fn paths_are_built_and_encoded() {
        assert_eq!(search_path(7, "Zoë & co/x"), "/v1/scanner/events/7/search?q=Zo%C3%AB%20%26%20co%2Fx");
        assert_eq!(gate_rules_path(7), "/v1/scanner/events/7/gates");
        assert_eq!(manifest_path(4_294_967_295), "/v1/scanner/events/4294967295/manifest");
        assert_eq!(sync_path(Some(7), SyncChannel::Pull), "/v1/sync?event=7&channel=pull");
        assert_eq!(revocations_path(3), "/v1/scanner/revocations?since=3");
        assert_eq!(sync_path(None, SyncChannel::Relay), "/v1/sync?channel=relay");
    }

    #[test]
    fn bearer_and_constant_time_eq() {
        assert_eq!(bearer(Some("Bearer abc ")), Some("abc"));
        assert_eq!(bearer(Some("bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(digest_eq(&[7; 32], &[7; 32]));
        let mut other = [7; 32];
        other[31] = 6;
        assert!(!digest_eq(&[7; 32], &other));
    }

    #[test]
    fn redeem_requests_round_trip_and_are_checked() {
        let req = RedeemRequest {
            qr_text: "TK1:X".into(),
            event: 42,
            device: DeviceId(0xaa),
            device_name: String::new(),
            gate: "North".into(),
            kind: ScanKind::Entry,
            addon: None,
        };
        let v: serde_json::Value = serde_json::from_str(&req.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"qr_text": "TK1:X", "event": 42, "device": "00000000000000aa", "gate": "North",
                "kind": "entry"})
        );
        assert_eq!(RedeemRequest::parse(req.to_json().as_bytes()).ok(), Some(req));
        let bad = |json: serde_json::Value| match RedeemRequest::parse(json.to_string().as_bytes()) {
            Err(crate::Error::Request(kind)) => kind,
            other => panic!("expected a request error, got {other:?}"),
        };
        let base = serde_json::json!({"qr_text": "x", "event": 1, "device": "00000000000000aa", "gate": "N"});
        let with = |k: &str, v: serde_json::Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        assert_eq!(bad(with("gate", " ".into())), RequestKind::Gate);
        assert_eq!(bad(with("device_name", "x".repeat(MAX_TEXT_BYTES + 1).into())), RequestKind::DeviceName);
        assert_eq!(bad(with("addon", 16.into())), RequestKind::Addon);
        let mut exit = with("addon", 0.into());
        exit["kind"] = "exit".into();
        assert_eq!(bad(exit), RequestKind::AddonExit);
        assert!(matches!(bad(with("device", "AA".into())), RequestKind::Json(_)));
        assert!(matches!(bad(with("extra", 1.into())), RequestKind::Json(_)));
        assert!(matches!(
            RedeemRequest::parse(&vec![b' '; MAX_REDEEM_BODY + 1]),
            Err(crate::Error::Request(RequestKind::TooLarge))
        ));
    }

    #[test]
    fn edge_verdicts_round_trip() {
        let refused = Verdict::Refused { code: RefusalCode::BadSignature, message: "Fake".into() };
        let body = VerdictBody::new(refused.clone(), DecisionPath::Edge, None).to_json();
        let v = EdgeVerdict::from_reply(200, body.as_bytes()).unwrap();
        assert_eq!((v.verdict, v.message.as_str(), v.hlc), (refused, "REFUSED: Fake", None));
        let used = br#"{"verdict":"already_used","wall_time":5,"at":"x","gate":"East","device":"00000000000000aa",
            "device_name":"p","this_device":false,"summary":"ALREADY USED","decided_by":"edge","hlc":77}"#;
        let v = EdgeVerdict::from_reply(200, used).unwrap();
        assert!(matches!(v.verdict, Verdict::AlreadyUsed(ref u) if u.device == DeviceId(0xaa)));
        assert_eq!(v.hlc, Some(Hlc(77)));
    }

    #[test]
    fn bad_edge_replies_are_errors() {
        let Err(crate::Error::EdgeReply(err)) =
            EdgeVerdict::from_reply(401, ErrorBody::new("unauthorized", "no").to_json().as_bytes())
        else {
            panic!("a 401 is an edge reply error");
        };
        assert_eq!(err, EdgeReplyKind::Status { status: 401, code: "unauthorized".into(), message: "no".into() });
        assert!(matches!(
            EdgeVerdict::from_reply(502, b"<html>"),
            Err(crate::Error::EdgeReply(EdgeReplyKind::Status { status: 502, .. }))
        ));
        let offline = VerdictBody::new(Verdict::Exit { gate: "N".into() }, DecisionPath::Offline, None).to_json();
        assert!(matches!(
            EdgeVerdict::from_reply(200, offline.as_bytes()),
            Err(crate::Error::EdgeReply(EdgeReplyKind::NotDecidedByEdge))
        ));
        assert!(matches!(
            EdgeVerdict::from_reply(200, br#"{"verdict":"teleport","summary":"m","decided_by":"edge"}"#),
            Err(crate::Error::EdgeReply(EdgeReplyKind::NotAVerdict(_)))
        ));
        assert!(matches!(
            EdgeVerdict::from_reply(200, b"\xff\x00"),
            Err(crate::Error::EdgeReply(EdgeReplyKind::NotAVerdict(_)))
        ));
        assert!(matches!(
            EdgeVerdict::from_reply(200, &vec![b' '; MAX_EDGE_REPLY_BYTES + 1]),
            Err(crate::Error::EdgeReply(EdgeReplyKind::TooLarge))
        ));
    }
}

#[cfg(test)]
mod cors_tests {
    use super::*;

    #[test]
    fn only_listed_origins_or_a_wildcard_pass() {
        let allowed = vec!["https://scan.example.org".to_owned(), "http://127.0.0.1:8080".to_owned()];
        assert_eq!(cors_origin(Some("https://scan.example.org"), &allowed), Some("https://scan.example.org"));
        assert_eq!(cors_origin(Some("HTTP://127.0.0.1:8080"), &allowed), Some("HTTP://127.0.0.1:8080"));
        assert_eq!(cors_origin(Some("https://evil.example"), &allowed), None);
        assert_eq!(cors_origin(Some("https://scan.example.org.evil.example"), &allowed), None);
        assert_eq!(cors_origin(None, &allowed), None);
        assert_eq!(cors_origin(Some("https://x"), &["*".to_owned()]), Some("https://x"));
    }

    #[test]
    fn a_urls_origin_is_what_precedes_its_path() {
        assert_eq!(url_origin("https://tickets.example.org/base/x"), Some("https://tickets.example.org"));
        assert_eq!(url_origin("http://127.0.0.1:8080"), Some("http://127.0.0.1:8080"));
        assert_eq!(url_origin("http://[::1]:9/"), Some("http://[::1]:9"));
        assert_eq!(url_origin("ftp://x"), None);
        assert_eq!(url_origin("https://"), None);
        assert_eq!(url_origin("https:///path"), None);
    }
}
