//! Online redemption at the edge Worker: the request a scanner sends to `POST {edge}/v1/redeem` and the
//! verdict it gets back. Shared by the CLI and the browser scanner (through wasm) so that both speak the
//! edge's protocol the same way; the transport (HTTP client, timeout) is the caller's.
//!
//! A scanner that gets an [`EdgeVerdict`] in time shows it and records it in its own log with
//! [`super::device::Device::record_edge_verdict`]; otherwise it decides offline with
//! [`super::device::Device::scan`]. The edge's JSON is defined by `edge-verifier/src/api.rs`
//! (`RedeemRequest`, `VerdictBody`): scanner-core's [`Verdict`] tagged `verdict`, plus `message` and
//! `decided_by: "edge"`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::decision::Verdict;
use super::record::{DeviceId, Hlc, ScanKind};

/// The edge's redemption endpoint, relative to its base URL.
pub const EDGE_REDEEM_PATH: &str = "/v1/redeem";
/// How long a scanner waits for the edge before deciding offline. A steward notices a pause of about a
/// second; the edge answers in ~10 ms when reachable, so this only bounds the cost of a dead network.
pub const DEFAULT_EDGE_TIMEOUT_MS: u64 = 800;
/// Largest edge reply a scanner reads (a verdict is a few hundred bytes).
pub const MAX_EDGE_REPLY_BYTES: usize = 16 * 1024;

/// The `POST /v1/redeem` body (see `edge-verifier/src/api.rs`, `RedeemRequest`).
#[derive(Debug, Clone, Serialize)]
pub struct RedeemRequest<'a> {
    pub qr_text: &'a str,
    /// The event this scanner admits to.
    pub event: u32,
    /// The scanning device's id, as it appears in the redemption log.
    pub device: DeviceId,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub device_name: &'a str,
    pub gate: &'a str,
    pub kind: ScanKind,
    /// The add-on this entry redeems on its own (the scanner's gate rules say the gate redeems it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addon: Option<u8>,
}

impl RedeemRequest<'_> {
    pub fn to_json(&self) -> String {
        // Serializing plain strings and integers cannot fail; the fallback keeps this panic-free.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why an edge reply cannot be used (the scanner then decides offline).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EdgeReplyError {
    /// The edge answered with an error status (`{"error": code, "message": text}`).
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
    /// The edge's clock value of its own record of this scan, if the edge sends it. The device's mirror
    /// record then carries the same value, which lets the report pair the two exactly.
    pub hlc: Option<Hlc>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
}

impl EdgeVerdict {
    /// Parses the edge's reply: its HTTP status and body.
    pub fn from_reply(status: u16, body: &[u8]) -> Result<Self, EdgeReplyError> {
        if body.len() > MAX_EDGE_REPLY_BYTES {
            return Err(EdgeReplyError::TooLarge);
        }
        if status != 200 {
            let err: ErrorBody =
                serde_json::from_slice(body).unwrap_or(ErrorBody { error: String::new(), message: String::new() });
            return Err(EdgeReplyError::Status { status, code: err.error, message: err.message });
        }
        let not_a_verdict = |e: serde_json::Error| EdgeReplyError::NotAVerdict(e.to_string());
        let mut body: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(body).map_err(not_a_verdict)?;
        if body.remove("decided_by").as_ref().and_then(serde_json::Value::as_str) != Some("edge") {
            return Err(EdgeReplyError::NotDecidedByEdge);
        }
        let hlc = match body.remove("hlc") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(serde_json::from_value::<Hlc>(v).map_err(not_a_verdict)?),
        };
        // The edge flattens a `Verdict` next to its own `message` (the steward's line). A refusal also has
        // a `message` of its own (the reason), so the body holds that key twice and JSON keeps the last:
        // the steward's line, "REFUSED: <reason>". The reason is recovered from it.
        let message = body.get("message").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
        let mut verdict: Verdict = serde_json::from_value(serde_json::Value::Object(body)).map_err(not_a_verdict)?;
        if let Verdict::Refused { message: reason, .. } = &mut verdict {
            if let Some(stripped) = reason.strip_prefix("REFUSED: ") {
                *reason = stripped.to_owned();
            }
        }
        Ok(Self { verdict, message, hlc })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redemption::RefusalCode;

    #[test]
    fn request_json_matches_the_edge_api() {
        let req = RedeemRequest {
            qr_text: "TK1:X",
            event: 42,
            device: DeviceId(0xaa),
            device_name: "",
            gate: "North",
            kind: ScanKind::Entry,
            addon: None,
        };
        let v: serde_json::Value = serde_json::from_str(&req.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"qr_text": "TK1:X", "event": 42, "device": "00000000000000aa", "gate": "North",
                "kind": "entry"})
        );
    }

    #[test]
    fn edge_verdicts_parse() {
        let admit = br#"{"verdict":"admit","holder":null,"ticket_type":1,"addons":[0],"policy":"single_entry",
            "gate":"North","override_reason":null,"overridden":null,"message":"ADMIT","decided_by":"edge"}"#;
        let v = EdgeVerdict::from_reply(200, admit).unwrap();
        assert!(v.verdict.is_admit());
        assert_eq!(v.hlc, None);
        let used = br#"{"verdict":"already_used","wall_time":5,"at":"x","gate":"East","device":"00000000000000aa",
            "device_name":"p","this_device":false,"message":"ALREADY USED","decided_by":"edge","hlc":77}"#;
        let v = EdgeVerdict::from_reply(200, used).unwrap();
        assert!(matches!(v.verdict, Verdict::AlreadyUsed(ref u) if u.device == DeviceId(0xaa)));
        assert_eq!(v.hlc, Some(Hlc(77)));
        // As the edge sends it today: the reason and the steward's line under the same key.
        let refused =
            br#"{"verdict":"refused","code":"bad_signature","message":"Fake","message":"REFUSED: Fake","decided_by":"edge"}"#;
        let v = EdgeVerdict::from_reply(200, refused).unwrap();
        assert_eq!(v.verdict, Verdict::Refused { code: RefusalCode::BadSignature, message: "Fake".into() });
        assert_eq!(v.message, "REFUSED: Fake");
        assert_eq!(v.verdict.message(), v.message);
    }

    #[test]
    fn bad_edge_replies_are_errors() {
        let err = EdgeVerdict::from_reply(401, br#"{"error":"unauthorized","message":"no"}"#).unwrap_err();
        assert_eq!(err, EdgeReplyError::Status { status: 401, code: "unauthorized".into(), message: "no".into() });
        assert!(matches!(EdgeVerdict::from_reply(502, b"<html>"), Err(EdgeReplyError::Status { status: 502, .. })));
        assert_eq!(
            EdgeVerdict::from_reply(200, br#"{"verdict":"exit","gate":"N","message":"m"}"#),
            Err(EdgeReplyError::NotDecidedByEdge)
        );
        assert!(matches!(
            EdgeVerdict::from_reply(200, br#"{"verdict":"teleport","message":"m","decided_by":"edge"}"#),
            Err(EdgeReplyError::NotAVerdict(_))
        ));
        assert!(matches!(EdgeVerdict::from_reply(200, b"\xff\x00"), Err(EdgeReplyError::NotAVerdict(_))));
        assert_eq!(EdgeVerdict::from_reply(200, &vec![b' '; MAX_EDGE_REPLY_BYTES + 1]), Err(EdgeReplyError::TooLarge));
    }
}
