//! The edge verifier's one error type, and the one place it becomes an HTTP answer.
//!
//! Every fallible function of this crate returns [`Result<T>`](Result), whose error is [`Error`]: which
//! part refused (the variant) and how (its kind), as scanner-core does (`scanner_core::error`). The shell
//! writes `?` everywhere; [`Error::status`], [`Error::code`] and [`Error::body`] turn whatever arrives at
//! the top of a handler into the status and scanner-core's wire [`ErrorBody`] — nothing else in the crate
//! decides a status, and nothing matches on a message.
//!
//! Who is at fault decides the answer: the client's mistakes ([`RequestKind`], [`AuthKind`]) are 4xx with
//! their own message; the operator's ([`ConfigKind`]) are 500 `misconfigured` with theirs (no secret is
//! in them: bad token-hash entries are shortened first); the edge's own failures (its stored data, its
//! runtime, the issuer's device list) are 500 `internal` and only say "internal error" — their detail is
//! for the log, never for the client.
//!
//! ```
//! use edge_verifier::auth::TokenSet;
//! use edge_verifier::error::{AuthKind, Error};
//!
//! let refused = TokenSet::default().authenticate(Some("Bearer unknown"), 7).unwrap_err();
//! assert!(matches!(refused, Error::Auth(AuthKind::Unknown)));
//! assert_eq!((refused.status(), refused.code()), (401, "unauthorized"));
//! assert_eq!(refused.to_json(), r#"{"error":{"code":"unauthorized","message":"missing or unknown scanner token"}}"#);
//! ```

use std::num::ParseIntError;

use scanner_core::error::{RequestKind as CoreRequestKind, SyncKind};
use scanner_core::redemption::document::MAX_SYNC_MESSAGE_BYTES;
use scanner_core::wire::{ErrorBody, MAX_REDEEM_BODY};

/// `Result` with the edge verifier's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can fail in the edge verifier: which part failed (the variant) and how (its kind).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An HTTP request refused as the client sent it (4xx).
    #[error(transparent)]
    Request(#[from] RequestKind),
    /// A device or relay token refused (401 unknown, 403 valid for another event).
    #[error(transparent)]
    Auth(#[from] AuthKind),
    /// The edge's configuration cannot be used (500 `misconfigured`).
    #[error("the edge is not configured: {0}")]
    Config(#[from] ConfigKind),
    /// The issuer's device list is refused; the last good one stays in use, so this is only logged.
    #[error(transparent)]
    DeviceList(#[from] DeviceListKind),
    /// A scan the edge stored (a shard's history, the outbox, the log's buffer) cannot be read.
    #[error(transparent)]
    StoredScan(#[from] StoredScanKind),
    /// scanner-core refused the edge's own data (its stored log, its own admissions): the edge's fault.
    /// What scanner-core refuses of a *client's* request is [`RequestKind::Refused`].
    #[error(transparent)]
    Core(#[from] scanner_core::Error),
    /// The runtime or storage failed; the shell logged the detail where it happened.
    #[error("internal error")]
    Internal,
}

/// Why a request is refused as the client sent it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestKind {
    #[error("no such endpoint")]
    NotFound,
    #[error("method not allowed here")]
    MethodNotAllowed,
    #[error("body must be {0}")]
    UnsupportedMediaType(&'static str),
    /// The limit that was exceeded, in bytes.
    #[error("body is larger than the {0} bytes allowed")]
    TooLarge(usize),
    #[error("invalid request: Content-Length is not a number")]
    ContentLength(#[source] ParseIntError),
    #[error("invalid request: the body could not be read")]
    UnreadableBody,
    #[error("invalid request: bad URL")]
    Url,
    #[error("invalid request: give the event: ?event=ID")]
    NoEvent,
    #[error("invalid request: event must be a number from 0 to 4294967295")]
    Event(#[source] ParseIntError),
    #[error("invalid request: give the sync channel: &channel=push or &channel=pull")]
    NoChannel,
    #[error("invalid request: since must be a number")]
    Since(#[source] ParseIntError),
    /// A message between the edge's own parts (Worker, Durable Objects) that does not parse: named, and
    /// its detail logged by the receiver.
    #[error("invalid request: {0}")]
    InternalMessage(&'static str),
    /// What the client sent (a redeem body, a sync message) refused by scanner-core, in its words.
    #[error("invalid request: {0}")]
    Refused(#[source] scanner_core::Error),
}

impl RequestKind {
    /// scanner-core's refusal of a client's request: a body or message over scanner-core's size limit is
    /// "too large" (413, naming the limit), anything else is invalid (400, in scanner-core's words).
    pub fn refused(e: scanner_core::Error) -> Self {
        match e {
            scanner_core::Error::Request(CoreRequestKind::TooLarge) => RequestKind::TooLarge(MAX_REDEEM_BODY),
            scanner_core::Error::Sync(SyncKind::TooLarge(_)) => RequestKind::TooLarge(MAX_SYNC_MESSAGE_BYTES),
            e => RequestKind::Refused(e),
        }
    }
}

/// Why a request's token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthKind {
    /// No token, or one the edge does not know (401).
    #[error("missing or unknown scanner token")]
    Unknown,
    /// A known device token used for an event it is not valid for (403).
    #[error("this device token is not valid for event {0}")]
    WrongEvent(u32),
}

/// Why the edge's configuration (variables, secrets, KV, bindings) cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigKind {
    #[error("no keyring configured (KV key `keyring` or variable KEYRING_JSON)")]
    NoKeyring,
    #[error("keyring: {0}")]
    Keyring(#[source] scanner_core::Error),
    #[error("keyring has no keys")]
    EmptyKeyring,
    /// The configured revocation list does not verify (never ignored: that would un-revoke tickets).
    #[error("revocation list: {0}")]
    Revocations(#[source] scanner_core::Error),
    /// The entries of `SCANNER_TOKEN_HASHES` that are not hashes, each shortened to its first characters.
    #[error("SCANNER_TOKEN_HASHES has entries that are not SHA-256 hex[:event]: {0:?}")]
    ScannerTokenHashes(Vec<String>),
    /// The entries of `RELAY_TOKEN_HASHES` that are not hashes (only counted in the message).
    #[error("RELAY_TOKEN_HASHES has {} entries that are not SHA-256 hex", .0.len())]
    RelayTokenHashes(Vec<String>),
    /// A Durable Object namespace binding (wrangler.toml) is missing.
    #[error("Durable Object binding {0} is missing")]
    MissingBinding(&'static str),
}

/// Why the issuer's device list (`GET /v1/edge/devices`) cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceListKind {
    #[error("device list is not the issuer's JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The index of the first entry whose `token_hash` is not 64 hex digits.
    #[error("device list entry {0} has a token_hash that is not 64 hex digits")]
    BadHash(usize),
    /// The limit, in bytes.
    #[error("device list is larger than {0} bytes")]
    TooLarge(usize),
}

/// Why a stored scan cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoredScanKind {
    #[error("stored scan has a bad device id")]
    Device,
    #[error("stored scan record is not valid: not 32 hex-encoded bytes")]
    NotHex,
    #[error("stored scan record is not valid: {0}")]
    Record(#[source] scanner_core::Error),
}

impl Error {
    /// The HTTP status of this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::Request(kind) => match kind {
                RequestKind::NotFound => 404,
                RequestKind::MethodNotAllowed => 405,
                RequestKind::UnsupportedMediaType(_) => 415,
                RequestKind::TooLarge(_) => 413,
                _ => 400,
            },
            Error::Auth(AuthKind::Unknown) => 401,
            Error::Auth(AuthKind::WrongEvent(_)) => 403,
            Error::Config(_) | Error::DeviceList(_) | Error::StoredScan(_) | Error::Core(_) | Error::Internal => 500,
        }
    }

    /// The stable machine-readable code of the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Request(kind) => match kind {
                RequestKind::NotFound => "not_found",
                RequestKind::MethodNotAllowed => "method_not_allowed",
                RequestKind::UnsupportedMediaType(_) => "unsupported_media_type",
                RequestKind::TooLarge(_) => "too_large",
                _ => "bad_request",
            },
            Error::Auth(AuthKind::Unknown) => "unauthorized",
            Error::Auth(AuthKind::WrongEvent(_)) => "forbidden",
            Error::Config(_) => "misconfigured",
            Error::DeviceList(_) | Error::StoredScan(_) | Error::Core(_) | Error::Internal => "internal",
        }
    }

    /// The error body (scanner-core's wire `ErrorBody`): the code and, for the client's and the
    /// operator's mistakes, what was wrong; the edge's own failures say only "internal error" (their
    /// detail, from `Display`, is for the log).
    pub fn body(&self) -> ErrorBody {
        let message = if self.is_the_edges_own() { Error::Internal.to_string() } else { self.to_string() };
        ErrorBody::new(self.code(), message)
    }

    /// A failure of the edge itself (500 `internal`), not of what the client or the operator gave it.
    fn is_the_edges_own(&self) -> bool {
        matches!(self, Error::DeviceList(_) | Error::StoredScan(_) | Error::Core(_) | Error::Internal)
    }

    /// [`Error::body`] as JSON: `{"error": {"code", "message"}}`.
    pub fn to_json(&self) -> String {
        self.body().to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanner_core::error::LogKind;

    /// (status, code, message) of the answer for `e`, read back from its JSON as a client would.
    fn answer(e: impl Into<Error>) -> (u16, String, String) {
        let e = e.into();
        let body = ErrorBody::parse(e.to_json().as_bytes()).expect("an error body");
        (e.status(), body.error.code, body.error.message)
    }

    fn owned(status: u16, code: &str, message: &str) -> (u16, String, String) {
        (status, code.to_owned(), message.to_owned())
    }

    #[test]
    fn every_part_answers_its_status_code_and_message() {
        let not_a_number = "x".parse::<u32>().unwrap_err();
        assert_eq!(answer(RequestKind::NotFound), owned(404, "not_found", "no such endpoint"));
        assert_eq!(answer(RequestKind::MethodNotAllowed), owned(405, "method_not_allowed", "method not allowed here"));
        assert_eq!(
            answer(RequestKind::UnsupportedMediaType("application/json")),
            owned(415, "unsupported_media_type", "body must be application/json")
        );
        assert_eq!(
            answer(RequestKind::TooLarge(10)),
            owned(413, "too_large", "body is larger than the 10 bytes allowed")
        );
        assert_eq!(
            answer(RequestKind::Since(not_a_number.clone())),
            owned(400, "bad_request", "invalid request: since must be a number")
        );
        assert_eq!(
            answer(RequestKind::Event(not_a_number)),
            owned(400, "bad_request", "invalid request: event must be a number from 0 to 4294967295")
        );
        assert_eq!(answer(AuthKind::Unknown), owned(401, "unauthorized", "missing or unknown scanner token"));
        assert_eq!(
            answer(AuthKind::WrongEvent(7)),
            owned(403, "forbidden", "this device token is not valid for event 7")
        );
        assert_eq!(
            answer(ConfigKind::MissingBinding("TRUST")),
            owned(500, "misconfigured", "the edge is not configured: Durable Object binding TRUST is missing")
        );
        assert_eq!(
            answer(ConfigKind::RelayTokenHashes(vec!["abcd…".into(), "0123…".into()])),
            owned(
                500,
                "misconfigured",
                "the edge is not configured: RELAY_TOKEN_HASHES has 2 entries that are not SHA-256 hex"
            )
        );
    }

    #[test]
    fn the_edges_own_failures_do_not_leak_their_detail() {
        let own = [
            Error::from(StoredScanKind::Device),
            Error::from(DeviceListKind::BadHash(3)),
            Error::from(scanner_core::Error::from(LogKind::TooManyGates)),
            Error::Internal,
        ];
        for e in own {
            assert_eq!(answer(e), owned(500, "internal", "internal error"));
        }
        // The detail stays available for the log.
        assert_eq!(
            Error::from(DeviceListKind::BadHash(3)).to_string(),
            "device list entry 3 has a token_hash that is not 64 hex digits"
        );
    }

    #[test]
    fn scanner_cores_refusal_of_a_client_request_is_400_or_413_with_the_limit() {
        let (status, code, message) = answer(RequestKind::refused(SyncKind::TooLarge(1).into()));
        assert_eq!((status, code.as_str()), (413, "too_large"));
        assert_eq!(message, format!("body is larger than the {MAX_SYNC_MESSAGE_BYTES} bytes allowed"));
        let (status, code, _) = answer(RequestKind::refused(CoreRequestKind::TooLarge.into()));
        assert_eq!((status, code.as_str()), (413, "too_large"));
        let gates = scanner_core::Error::from(LogKind::TooManyGates);
        let expected = format!("invalid request: {gates}");
        assert_eq!(answer(RequestKind::refused(gates)), (400, "bad_request".to_owned(), expected));
    }
}
