//! The one error type of the issuer library and its mapping to HTTP responses.
//!
//! Every fallible function of the library returns [`Result<T>`](Result), whose error is [`Error`], as in
//! scanner-core (`scanner_core::error`): one enum, a variant per kind of failure, and for the parts whose
//! callers must tell cases apart a *kind*, defined here beside the one type (so this module depends on none of the parts that fail)
//! ([`StartKind`], [`KeyFileKind`], [`MailKind`], [`SmsKind`], [`RefundKind`], [`SignatureKind`], [`PaymentKind`]). One
//! type means `?` composes across the crate (starting the server loads keys, opens the store and the mail
//! transport in one function) and what can fail is listed in one place.
//!
//! Every handler returns `Result<_, Error>`; the status code and the JSON body (scanner-core's
//! [`ErrorBody`], `{"error": {"code": "...", "message": "..."}}`) are decided here and nowhere else. Internal details
//! (database errors, I/O, start-up, key files, mail, refunds) are logged and replaced by a generic message.
//!
//! No message of this type carries a secret: key files are named by path and a broken private key is
//! described without its content ([`KeyFileKind::BadPrivateKey`]), tokens and passwords are never part of
//! an error, and Stripe call failures carry neither the secret key nor the request URL.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use scanner_core::wire::ErrorBody;

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is syntactically broken (malformed JSON, bad query string).
    #[error("{0}")]
    BadRequest(String),
    /// A field's value is not acceptable.
    #[error("{field}: {message}")]
    Validation { field: &'static str, message: String },
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// A valid token used for something it does not allow (a device token for another event).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the current state (sold out, already refunded, ...).
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// A per-client budget is spent: 429 with `Retry-After` (whole seconds).
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: u64 },
    #[error("unsupported content type: send application/json")]
    UnsupportedMediaType,
    /// A webhook whose signature does not verify.
    #[error("webhook signature verification failed: {0}")]
    Signature(#[from] SignatureKind),
    /// The payment provider (Stripe) failed or is not configured. Boxed: an API answer is larger than
    /// the other variants, and this path is rare.
    #[error("payment provider error: {0}")]
    Payment(Box<PaymentKind>),
    /// A refund call did not succeed; the kind says what the refund worker does next.
    #[error(transparent)]
    Refund(#[from] RefundKind),
    /// A mail could not be built, or the mail transport could not be set up or send.
    #[error(transparent)]
    Mail(#[from] MailKind),
    /// An SMS could not be built or sent, or the SMS provider is not (fully) configured. Boxed: a provider's
    /// refusal carries its code, message and link.
    #[error(transparent)]
    Sms(Box<SmsKind>),
    /// A signing key or keyring file cannot be read, written or used (boxed: paths are large).
    #[error(transparent)]
    KeyFile(Box<KeyFileKind>),
    /// The server cannot start (boxed: rare, and its payloads are large).
    #[error(transparent)]
    Start(Box<StartKind>),
    #[error("{0}")]
    NotImplemented(&'static str),
    /// Another server this one talks to (the edge, in a relay session) failed or answered badly.
    #[error("{0}")]
    Upstream(String),
    /// Durable storage refused a write (disk full, I/O error): nothing of the request was kept.
    #[error("the server could not store this now (nothing was accepted); try again later")]
    Storage(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Error::Validation { field, message: message.into() }
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) | Error::Signature(_) => StatusCode::BAD_REQUEST,
            Error::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Payment(_) => StatusCode::BAD_GATEWAY,
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Storage(_) => StatusCode::INSUFFICIENT_STORAGE,
            Error::Upstream(_) => StatusCode::BAD_GATEWAY,
            Error::Database(_)
            | Error::Internal(_)
            | Error::Refund(_)
            | Error::Mail(_)
            | Error::Sms(_)
            | Error::KeyFile(_)
            | Error::Start(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Validation { .. } => "invalid_field",
            Error::Unauthorized => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::RateLimited { .. } => "rate_limited",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::Signature(_) => "bad_signature",
            Error::Payment(_) => "payment_provider",
            Error::NotImplemented(_) => "not_implemented",
            Error::Storage(_) => "storage_unavailable",
            Error::Upstream(_) => "upstream",
            Error::Database(_)
            | Error::Internal(_)
            | Error::Refund(_)
            | Error::Mail(_)
            | Error::Sms(_)
            | Error::KeyFile(_)
            | Error::Start(_) => "internal",
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Error::Database(e) => {
                tracing::error!(error = %e, "database error");
                "internal error; see the server log".to_owned()
            }
            Error::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                "internal error; see the server log".to_owned()
            }
            // Failures of the background workers and of start-up: a handler that meets one has nothing
            // to tell the client about it.
            Error::Refund(_) | Error::Mail(_) | Error::Sms(_) | Error::KeyFile(_) | Error::Start(_) => {
                tracing::error!(error = %self, "internal error");
                "internal error; see the server log".to_owned()
            }
            Error::Storage(e) => {
                tracing::error!(error = %e, "storage write failed");
                self.to_string()
            }
            Error::Payment(e) => {
                tracing::warn!(error = %e, "payment provider error");
                self.to_string()
            }
            other => other.to_string(),
        };
        // scanner-core's error body; a field error also names the field (`error.field`).
        let body = match &self {
            Error::Validation { field, .. } => ErrorBody::for_field(self.code(), field, message),
            _ => ErrorBody::new(self.code(), message),
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        if let Error::RateLimited { retry_after_secs, .. } = &self {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(*retry_after_secs));
        }
        resp
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<PaymentKind> for Error {
    fn from(kind: PaymentKind) -> Self {
        Error::Payment(Box::new(kind))
    }
}

impl From<SmsKind> for Error {
    fn from(kind: SmsKind) -> Self {
        Error::Sms(Box::new(kind))
    }
}

impl From<KeyFileKind> for Error {
    fn from(kind: KeyFileKind) -> Self {
        Error::KeyFile(Box::new(kind))
    }
}

impl From<StartKind> for Error {
    fn from(kind: StartKind) -> Self {
        Error::Start(Box::new(kind))
    }
}

/// lettre's SMTP failures (setting the transport up, sending) are the mail's (`?` on a lettre call).
impl From<lettre::transport::smtp::Error> for Error {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        Error::Mail(MailKind::Smtp(e))
    }
}

/// lettre's file transport failures are the mail's.
impl From<lettre::transport::file::Error> for Error {
    fn from(e: lettre::transport::file::Error) -> Self {
        Error::Mail(MailKind::File(e))
    }
}

/// What stops the server from starting ([`Error::Start`]); a key file that cannot be used is an
/// [`Error::KeyFile`] of its own.
#[derive(Debug, thiserror::Error)]
pub enum StartKind {
    #[error("data directory {path}: {source}")]
    DataDir { path: std::path::PathBuf, source: std::io::Error },
    /// The store cannot be opened, read or seeded.
    #[error("store: {0}")]
    Store(#[source] Error),
    /// Quoted, not a source: the CLI shows it once, on the same line.
    #[error("stored revocation list does not verify against the keyring: {0}")]
    Revocations(scanner_core::Error),
    #[error("listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// The mail transport cannot be set up (an [`Error::Mail`]); quoted on the same line, not a source.
    #[error("email transport: {0}")]
    Mail(Error),
    /// The SMS provider's settings are incomplete or malformed (an [`Error::Sms`]).
    #[error("SMS provider: {0}")]
    Sms(Error),
    /// The wallet settings are incomplete or malformed (a wallet file that cannot be used is an
    /// [`Error::KeyFile`]).
    #[error("wallet passes: {0}")]
    Wallet(String),
}

/// Why a signing key or keyring file cannot be read, written or used ([`Error::KeyFile`]). Messages name
/// files by path and never carry a key's bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileKind {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Key { path: PathBuf, source: scanner_core::Error },
    #[error("{0} already exists; refusing to overwrite a private key")]
    Exists(PathBuf),
    #[error("no private key file in {dir} matches an active key of the keyring {keyring}")]
    NoActiveKey { dir: PathBuf, keyring: PathBuf },
    #[error(
        "private signing key {path} cannot be used: {why}. Refusing to start rather than make a new key (that would \
         invalidate every ticket sold): restore the file, or make a new key on purpose with `issuer keys rotate`"
    )]
    BadPrivateKey { path: PathBuf, why: String },
    #[error("private signing key {path} is readable by group or others (mode {mode:o}): run `chmod 600` on it")]
    Permissions { path: PathBuf, mode: u32 },
    #[error(
        "private key files exist in {dir} but the keyring {keyring} has no keys: refusing to make a new key \
         (restore the keyring)"
    )]
    OrphanKeys { dir: PathBuf, keyring: PathBuf },
    #[error("the keyring {keyring} has no key valid now: run `issuer keys rotate`")]
    NoValidKey { keyring: PathBuf },
    /// A wallet certificate or key file (the Apple pass certificate, its key, Apple's WWDR certificate, a
    /// Google service-account key) that was read but cannot be used: `why` is OpenSSL's or the parser's
    /// reason, never the file's content.
    #[error("{what} {path} cannot be used: {why}")]
    Wallet { what: &'static str, path: PathBuf, why: String },
}

/// Why a mail cannot be built or sent, or the transport set up ([`Error::Mail`]). The worker stores the
/// message as the job's `last_error` and retries every kind alike until the job is dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum MailKind {
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("file transport: {0}")]
    File(#[from] lettre::transport::file::Error),
    #[error("message: {0}")]
    Message(String),
    #[error("{0}")]
    Config(String),
}

/// Why an SMS could not be sent ([`Error::Sms`]), sorted by what the outbox worker does next: a job whose
/// error [`is_permanent`](SmsKind::is_permanent) is dead-lettered at once (sending the same request again
/// cannot succeed; an organizer retries it from the outbox once the cause is fixed), any other is retried
/// with the outbox's backoff. Messages carry neither the auth token (sent in a header) nor the request URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsKind {
    /// This server has no (complete) SMS provider settings.
    #[error("SMS is not configured: {0}")]
    NotConfigured(String),
    /// No usable answer (connection, timeout, unreadable body), a server error or 429: try again later.
    #[error("SMS provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the message for good (a 4xx other than 429), with its error code and message.
    #[error("SMS provider refused the message: HTTP {status}, error {code}: {message} ({more_info})")]
    Refused { status: u16, code: i64, message: String, more_info: String },
    /// The message cannot be built (no phone number on the order, body over the provider's limit).
    #[error("SMS message: {0}")]
    Message(String),
}

impl SmsKind {
    pub fn is_permanent(&self) -> bool {
        !matches!(self, SmsKind::Unavailable(_))
    }
}

/// Why a refund call did not succeed ([`Error::Refund`]), sorted by what the retry worker must do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundKind {
    /// No answer, or an answer that says "try again" (network error, timeout, 409 in-flight, 429): retry
    /// with the same idempotency key, which the provider may already have executed.
    #[error("{0}")]
    Retry(String),
    /// A server error the provider saved under the idempotency key (Stripe replays a 5xx for its key):
    /// retry with a fresh key. A second refund cannot go through because the payment is refunded in
    /// full, which the provider refuses twice ([`RefundKind::AlreadyRefunded`]).
    #[error("{0}")]
    RetryNewKey(String),
    /// Refused for good (bad request, unknown payment, disputed charge): a person has to look.
    #[error("{0}")]
    Permanent(String),
    /// The payment is already refunded in full: the money is back with the customer.
    #[error("the payment is already refunded")]
    AlreadyRefunded,
}

/// Why a webhook's `Stripe-Signature` is refused ([`Error::Signature`], an HTTP 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureKind {
    #[error("missing Stripe-Signature header")]
    Missing,
    #[error("Stripe-Signature header is malformed")]
    Malformed,
    #[error("timestamp outside the tolerance (replayed or clock skew)")]
    Timestamp,
    #[error("no v1 signature matches")]
    Mismatch,
}

/// How Stripe failed ([`Error::Payment`], an HTTP 502 for a customer). The refund call sorts these into
/// [`RefundKind`]s. Messages carry neither the secret key (sent in a header) nor the request URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentKind {
    /// This server has no Stripe secret key (or no longer has: a refund recorded while it had).
    #[error("Stripe is not configured")]
    NotConfigured,
    /// No usable answer (connection, timeout, unreadable body): the request may or may not have run.
    #[error("Stripe request failed: {0}")]
    Network(String),
    /// Stripe answered with an error object.
    #[error("Stripe answered {status}: {message}")]
    Api { status: u16, code: Option<String>, message: String },
    /// A successful answer to a checkout without the session's id or URL.
    #[error("Stripe's checkout session has no id or url")]
    NoCheckoutSession,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status, `error.code` and `error.message` a client gets for `err`.
    async fn answer(err: Error) -> (u16, String, String) {
        let resp = err.into_response();
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (status, v["error"]["code"].as_str().unwrap().to_owned(), v["error"]["message"].as_str().unwrap().to_owned())
    }

    /// The folded kinds answer as their former types did: a signature refusal is the client's 400 with
    /// its reason, a Stripe failure a 502 with Stripe's words, and start-up, key file, mail and refund
    /// failures (never a client's doing) a generic 500 that names no file.
    #[tokio::test]
    async fn each_kind_answers_with_its_status_and_message() {
        let generic = "internal error; see the server log";
        let cases: Vec<(Error, (u16, &str, &str))> = vec![
            (
                SignatureKind::Mismatch.into(),
                (400, "bad_signature", "webhook signature verification failed: no v1 signature matches"),
            ),
            (
                PaymentKind::Api { status: 500, code: None, message: "boom".into() }.into(),
                (502, "payment_provider", "payment provider error: Stripe answered 500: boom"),
            ),
            (
                PaymentKind::NotConfigured.into(),
                (502, "payment_provider", "payment provider error: Stripe is not configured"),
            ),
            (RefundKind::AlreadyRefunded.into(), (500, "internal", generic)),
            (MailKind::Message("recipient: invalid".into()).into(), (500, "internal", generic)),
            (SmsKind::Unavailable("HTTP 503".into()).into(), (500, "internal", generic)),
            (
                KeyFileKind::Permissions { path: "/srv/keys/issuer-key-1.json".into(), mode: 0o644 }.into(),
                (500, "internal", generic),
            ),
            (StartKind::Store(Error::NotFound("event")).into(), (500, "internal", generic)),
        ];
        for (err, (status, code, message)) in cases {
            let shown = err.to_string();
            assert_eq!(answer(err).await, (status, code.to_owned(), message.to_owned()), "{shown}");
        }
    }

    /// Every `Result` of the crate carries this type, so its size is paid on every call's return path:
    /// the large, rare payloads are boxed to keep it at the size the `sqlx::Error` variant needs.
    #[test]
    fn error_stays_as_small_as_its_database_variant() {
        let database = std::mem::size_of::<sqlx::Error>();
        assert!(std::mem::size_of::<Error>() <= database + 8, "{} bytes", std::mem::size_of::<Error>());
    }
}
