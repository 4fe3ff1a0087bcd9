//! scanner-core: the one source of truth for the ticket format and every decision made on it.
//!
//! The issuer signs tickets with it, the offline scanner and the browser (wasm32) verify with it, and the
//! edge Worker reuses it. It knows nothing of HTTP, SQL or the browser: file and terminal code lives behind
//! the `cli` feature so that the core builds for `wasm32-unknown-unknown`.
//!
//! The byte layout and signing rules are specified in `docs/ticket-format.md`.
//!
//! # Errors
//!
//! The library has one error type, [`Error`], and every public fallible function returns [`Result<T>`].
//! One type lets `?` compose calls across parts (a device sets its keyring, revocation list and gate rules
//! and syncs in one function) and gives callers one thing to hold. To act on a case, match the part that
//! failed and then its kind, e.g. `Err(Error::Sync(SyncKind::TooLarge(_)))` for an oversized sync message
//! or `Err(Error::Device(DeviceKind::Transport(_)))` for a sync server that could not be reached; the
//! kinds are listed in [`error`]. Each error displays its kind's message unchanged: that is what stewards,
//! operators and HTTP error bodies show. The scan verdict ([`Refusal`]) is not an error: a ticket that
//! cannot be parsed becomes one in [`verify::read_ticket`].

// Bad input is an error, never a panic: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod base45;
pub mod error;
#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
pub mod gates;
pub mod keyring;
pub mod manifest;
pub mod qr;
pub mod redemption;
pub mod revocation;
pub mod setup;
pub mod supervisor;
pub mod ticket;
pub mod token;
pub mod verify;
pub mod wire;

pub use error::{Error, Result};
pub use keyring::{IssuerKey, Keyring, PublicKeyEntry};
pub use revocation::{RevocationDelta, RevocationHash, RevocationList};
pub use ticket::{EntryPolicy, KeyId, SignedTicket, Ticket, TicketId};
pub use verify::{verify_text, Refusal, VerifyContext};
