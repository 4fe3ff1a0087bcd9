//! The public HTTP API's request and response bodies, limits and errors — transport-independent.

use serde::{Deserialize, Serialize};

use scanner_core::redemption::{DecisionPath, Hlc, RefusalCode, Verdict};
use scanner_core::verify::Refusal;
use scanner_core::wire::{self, RedeemRequest, VerdictBody};

use crate::error::{RequestKind, Result};

/// Largest `/v1/redeem` body accepted (scanner-core's wire limit).
pub use scanner_core::wire::MAX_REDEEM_BODY;
/// Largest `/v1/sync` body accepted. Far below scanner-core's own 64 MiB cap: a device that has been offline
/// all day has ~50k scans ≈ 2 MiB of log; larger messages would also risk the Worker's memory limit.
pub const MAX_SYNC_BODY: usize = 16 * 1024 * 1024;
/// Longest gate or device name accepted (same cap as scanner-core's log: `MAX_TEXT_BYTES`).
pub const MAX_NAME_BYTES: usize = scanner_core::redemption::document::MAX_TEXT_BYTES;

/// The edge's own report endpoint (`GET ?event=ID[&format=text]`).
pub const REPORT_PATH: &str = "/v1/report";
/// The edge's health check.
pub const HEALTH_PATH: &str = "/v1/health";
/// What every path of the scanner set-up endpoints starts with.
const SCANNER_PREFIX: &str = "/v1/scanner/";

/// The public endpoints of the edge, by path (scanner-core's `wire` paths where the issuer serves the
/// same endpoint). Methods, tokens and queries are checked by each endpoint's handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Redeem,
    Sync,
    Report,
    Health,
    /// Set-up endpoints under `/v1/scanner/`, as `scanner init --server` fetches them from the issuer.
    Scanner(ScannerRoute),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScannerRoute {
    /// Public, as on the issuer.
    Keyring,
    Revocations,
    Manifest(u32),
    /// Any other path under `/v1/scanner/`: 404 once the token is checked (so a device learns a bad
    /// token as 401 wherever it asks).
    Unknown,
}

impl Route {
    pub fn of(path: &str) -> Option<Self> {
        Some(match path {
            wire::REDEEM_PATH => Route::Redeem,
            wire::SYNC_PATH => Route::Sync,
            REPORT_PATH => Route::Report,
            HEALTH_PATH => Route::Health,
            wire::KEYRING_PATH => Route::Scanner(ScannerRoute::Keyring),
            wire::REVOCATIONS_PATH => Route::Scanner(ScannerRoute::Revocations),
            p if p.starts_with(SCANNER_PREFIX) => {
                Route::Scanner(manifest_event(p).map_or(ScannerRoute::Unknown, ScannerRoute::Manifest))
            }
            _ => return None,
        })
    }
}

/// The event of a manifest path (`wire::manifest_path`), if `path` is one.
fn manifest_event(path: &str) -> Option<u32> {
    // "/v1/scanner/events/{e}/manifest": the event is the fifth segment.
    let event = path.split('/').nth(4)?.parse().ok()?;
    (wire::manifest_path(event) == path).then_some(event)
}

/// What the Worker sends a redemption shard: a request that passed validation and edge verification,
/// with the edge's clock. Internal (Worker → Durable Object) only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardRedeem {
    pub request: RedeemRequest,
    pub now_ms: u64,
}

/// Checks a declared `Content-Length` before the body is read, so oversized bodies are refused unread.
pub fn check_declared_length(content_length: Option<&str>, limit: usize) -> Result<()> {
    match content_length.map(|v| v.trim().parse::<u64>()) {
        Some(Ok(n)) if n > limit as u64 => Err(RequestKind::TooLarge(limit).into()),
        Some(Err(e)) => Err(RequestKind::ContentLength(e).into()),
        _ => Ok(()),
    }
}

/// Whether a `Content-Type` header names JSON (parameters such as `charset` are allowed).
pub fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether a `Content-Type` header allows a sync message body: `application/octet-stream`, or none (the
/// body is binary either way; other declared types are a client mistake worth reporting).
pub fn is_sync_body(content_type: Option<&str>) -> bool {
    match content_type.and_then(|ct| ct.split(';').next()).map(str::trim) {
        None | Some("") => true,
        Some(mime) => mime.eq_ignore_ascii_case("application/octet-stream"),
    }
}

/// The `event` query parameter of `/v1/sync` and `/v1/report` (the same parameter the issuer's sync
/// server takes, so `scanner sync` works against either).
pub fn event_param<'a>(mut pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Result<u32> {
    let value = pairs.find(|(k, _)| *k == "event").map(|(_, v)| v).ok_or(RequestKind::NoEvent)?;
    Ok(value.trim().parse().map_err(RequestKind::Event)?)
}

/// Parses and validates a `/v1/redeem` body (scanner-core's wire `RedeemRequest::parse`; its length is
/// already checked against the declared length, and checked again there because a chunked body declares
/// none).
pub fn parse_redeem(body: &[u8]) -> Result<RedeemRequest> {
    Ok(RedeemRequest::parse(body).map_err(RequestKind::refused)?)
}

/// The verdict JSON (scanner-core's wire `VerdictBody`, decided by the edge), with the clock value of the
/// record the edge made for it, if any.
pub fn recorded_verdict_json(verdict: &Verdict, hlc: Option<Hlc>) -> String {
    VerdictBody::new(verdict.clone(), DecisionPath::Edge, hlc).to_json()
}

/// The verdict JSON for a verdict that recorded nothing.
pub fn verdict_json(verdict: &Verdict) -> String {
    recorded_verdict_json(verdict, None)
}

/// The refused verdict for a verification failure, exactly as scanner-core words it.
pub fn refused(refusal: &Refusal) -> Verdict {
    Verdict::Refused { code: RefusalCode::of(refusal), message: refusal.to_string() }
}

/// CORS: scanner-core's rule, the one a venue hub applies too (`ALLOWED_ORIGINS` is the list; `*` allows
/// any origin, since credentials are bearer tokens in a header, never cookies).
pub use scanner_core::wire::{
    cors_origin, CORS_ALLOW_HEADERS, CORS_ALLOW_METHODS, CORS_EXPOSE_HEADERS, CORS_MAX_AGE_SECS,
};

/// Splits a comma- or whitespace-separated configuration list.
pub fn split_list(value: &str) -> Vec<String> {
    value.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn body(json: serde_json::Value) -> Vec<u8> {
        json.to_string().into_bytes()
    }

    #[test]
    fn valid_redeem_request_parses() {
        let r = parse_redeem(&body(serde_json::json!({
            "qr_text": "TK1:ABC", "event": 42, "device": "00000000000000aa", "gate": " North ",
        })))
        .unwrap();
        assert_eq!(r.event, 42);
        assert_eq!(r.device, scanner_core::redemption::DeviceId(0xaa));
        assert_eq!(r.gate, "North");
        assert_eq!(r.kind, scanner_core::redemption::ScanKind::Entry);
        assert_eq!(r.device_name, "");
    }

    #[test]
    fn bad_redeem_requests_are_400_and_oversized_413() {
        let cases = [
            b"not json".to_vec(),
            body(serde_json::json!({"qr_text": "x", "event": 1, "device": "xyz", "gate": "g"})),
            body(serde_json::json!({"qr_text": "x", "event": 1, "device": "00000000000000AA", "gate": "g"})),
            body(serde_json::json!({"qr_text": "x", "event": 1, "device": "00000000000000aa", "gate": ""})),
            body(serde_json::json!({"qr_text": "x", "event": -1, "device": "00000000000000aa", "gate": "g"})),
            body(
                serde_json::json!({"qr_text": "x", "event": 1, "device": "00000000000000aa", "gate": "g", "kind": "x"}),
            ),
            body(
                serde_json::json!({"qr_text": "x", "event": 1, "device": "00000000000000aa", "gate": "g", "extra": 1}),
            ),
            body(serde_json::json!({"event": 1, "device": "00000000000000aa", "gate": "g"})),
        ];
        for c in cases {
            let err = parse_redeem(&c).unwrap_err();
            assert_eq!(err.status(), 400, "{}", String::from_utf8_lossy(&c));
        }
        let big = vec![b' '; MAX_REDEEM_BODY + 1];
        assert!(
            matches!(parse_redeem(&big), Err(Error::Request(RequestKind::TooLarge(limit))) if limit == MAX_REDEEM_BODY)
        );
        assert!(matches!(
            check_declared_length(Some("99999"), MAX_REDEEM_BODY),
            Err(Error::Request(RequestKind::TooLarge(limit))) if limit == MAX_REDEEM_BODY
        ));
        assert!(check_declared_length(Some("12"), MAX_REDEEM_BODY).is_ok());
        assert!(check_declared_length(None, MAX_REDEEM_BODY).is_ok());
        assert_eq!(check_declared_length(Some("x"), 1).unwrap_err().status(), 400);
    }

    #[test]
    fn error_json_has_code_and_message() {
        let v: serde_json::Value = serde_json::from_str(&Error::from(RequestKind::TooLarge(10)).to_json()).unwrap();
        assert_eq!(v["error"]["code"], "too_large");
        assert_eq!(v["error"]["message"], "body is larger than the 10 bytes allowed");
    }

    #[test]
    fn refusal_verdict_json_uses_scanner_core_code_and_message() {
        let v: serde_json::Value = serde_json::from_str(&verdict_json(&refused(&Refusal::BadSignature))).unwrap();
        assert_eq!(v["verdict"], "refused");
        assert_eq!(v["code"], "bad_signature");
        assert_eq!(v["decided_by"], "edge");
        assert!(v["summary"].as_str().unwrap().starts_with("REFUSED: Fake ticket"));
        assert!(v["message"].as_str().unwrap().starts_with("Fake ticket"), "the reason, apart from the summary");
        assert!(v.get("hlc").is_none());
        let exit = Verdict::Exit { gate: "North".into() };
        let v: serde_json::Value = serde_json::from_str(&recorded_verdict_json(&exit, Some(Hlc(u64::MAX)))).unwrap();
        assert_eq!(v["hlc"].as_u64(), Some(u64::MAX));
        assert_eq!(v["verdict"], "exit");
    }

    #[test]
    fn sync_query_and_content_type() {
        assert_eq!(event_param([("x", "1"), ("event", "42")].into_iter()).unwrap(), 42);
        for bad in [vec![], vec![("event", "-1")], vec![("event", "x")], vec![("event", "4294967296")]] {
            assert_eq!(event_param(bad.into_iter()).unwrap_err().status(), 400);
        }
        assert!(is_sync_body(None));
        assert!(is_sync_body(Some("application/octet-stream")));
        assert!(!is_sync_body(Some("application/json")));
    }

    #[test]
    fn routes_are_the_wire_paths() {
        use scanner_core::redemption::SyncChannel;
        assert_eq!(Route::of(wire::REDEEM_PATH), Some(Route::Redeem));
        assert_eq!(Route::of("/v1/redeem"), Some(Route::Redeem));
        assert_eq!(Route::of("/v1/sync"), Some(Route::Sync));
        assert!(wire::sync_path(Some(1), SyncChannel::Push).starts_with("/v1/sync?"));
        assert_eq!(Route::of("/v1/report"), Some(Route::Report));
        assert_eq!(Route::of("/v1/health"), Some(Route::Health));
        assert_eq!(Route::of("/v1/scanner/keyring"), Some(Route::Scanner(ScannerRoute::Keyring)));
        assert_eq!(Route::of("/v1/scanner/revocations"), Some(Route::Scanner(ScannerRoute::Revocations)));
        assert_eq!(Route::of(&wire::manifest_path(42)), Some(Route::Scanner(ScannerRoute::Manifest(42))));
        assert_eq!(
            Route::of("/v1/scanner/events/4294967295/manifest"),
            Some(Route::Scanner(ScannerRoute::Manifest(u32::MAX)))
        );
        for unknown in [
            "/v1/scanner/events/x/manifest",
            "/v1/scanner/events/4294967296/manifest",
            "/v1/scanner/events/42/manifest/more",
            "/v1/scanner/events/42/gates",
            "/v1/scanner/",
        ] {
            assert_eq!(Route::of(unknown), Some(Route::Scanner(ScannerRoute::Unknown)), "{unknown}");
        }
        for none in ["/", "/v1/redeem/", "/v1/keyring", "/v1/scanner", "/v1/sync/x"] {
            assert_eq!(Route::of(none), None, "{none}");
        }
    }

    #[test]
    fn cors_and_content_type() {
        let allowed = split_list("https://scan.example.org, http://127.0.0.1:8080");
        assert_eq!(cors_origin(Some("https://scan.example.org"), &allowed), Some("https://scan.example.org"));
        assert_eq!(cors_origin(Some("https://evil.example"), &allowed), None);
        assert_eq!(cors_origin(None, &allowed), None);
        assert_eq!(cors_origin(Some("https://x"), &["*".to_owned()]), Some("https://x"));
        assert!(is_json(Some("application/json; charset=utf-8")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(None));
    }
}
