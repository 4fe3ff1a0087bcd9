//! The runtime's errors as the crate's [`Error`], so the shell writes `?` instead of mapping each one by
//! hand. A runtime failure is the edge's fault, never the client's: it is logged in full (the client only
//! sees `internal`, 500). Client mistakes (a body that cannot be read, a bad query) are mapped where they
//! happen, to their own [`RequestKind`](crate::error::RequestKind).

use std::fmt::Display;

use worker::console_error;
use worker::kv::KvError;
use worker::wasm_bindgen::JsValue;

use crate::error::Error;

impl From<worker::Error> for Error {
    fn from(e: worker::Error) -> Self {
        console_error!("runtime: {e}");
        Error::Internal
    }
}

impl From<JsValue> for Error {
    fn from(e: JsValue) -> Self {
        worker::Error::from(e).into()
    }
}

impl From<KvError> for Error {
    fn from(e: KvError) -> Self {
        worker::Error::from(e).into()
    }
}

/// JSON is read with `?` only from the edge's own messages (Worker ↔ Durable Objects, stored values): a
/// failure there is internal. Client bodies go through `api::parse_redeem` (400).
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        console_error!("internal message: {e}");
        Error::Internal
    }
}

/// A failure logged with what was being done, as an internal error.
pub(super) trait Logged<T> {
    fn logged(self, what: &str) -> Result<T, Error>;
}

impl<T, E: Display> Logged<T> for Result<T, E> {
    fn logged(self, what: &str) -> Result<T, Error> {
        self.map_err(|e| {
            console_error!("{what}: {e}");
            Error::Internal
        })
    }
}
