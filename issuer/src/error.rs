//! The one error type of the issuer and its mapping to HTTP responses.
//!
//! Every handler returns `Result<_, Error>`; the status code and the JSON body (scanner-core's
//! [`ErrorBody`], `{"error": {"code": "...", "message": "..."}}`) are decided here and nowhere else. Internal details
//! (database errors, I/O) are logged and replaced by a generic message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use scanner_core::wire::ErrorBody;

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
    Signature(&'static str),
    /// The payment provider failed or is not configured.
    #[error("payment provider error: {0}")]
    Payment(String),
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
            Error::Database(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
            Error::Database(_) | Error::Internal(_) => "internal",
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
