//! Request extractors that turn every malformed input into an [`Error`] with a clear message.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// Largest request body accepted by JSON endpoints.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// `axum::Json` with rejections mapped to [`Error`].
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> Error {
    match r {
        JsonRejection::MissingJsonContentType(_) => Error::UnsupportedMediaType,
        JsonRejection::JsonDataError(e) => {
            Error::BadRequest(format!("JSON does not match the expected shape: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(e) => Error::BadRequest(format!("malformed JSON: {}", e.body_text())),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Error::PayloadTooLarge(MAX_BODY_BYTES)
        }
        other => Error::BadRequest(other.body_text()),
    }
}

/// `axum::extract::Query` with rejections mapped to [`Error`].
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(Error::BadRequest(format!("invalid query string: {}", e.body_text())))
            }
            Err(other) => Err(Error::BadRequest(other.body_text())),
        }
    }
}

/// Reads the bytes of a body with the size limit applied, mapping the overflow to 413.
pub async fn body_bytes(req: Request, limit: usize) -> Result<axum::body::Bytes, Error> {
    axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| Error::PayloadTooLarge(limit))
}
