//! scanner-core: the one source of truth for the ticket format and every decision made on it.
//!
//! The issuer signs tickets with it, the offline scanner and the browser (wasm32) verify with it, and the
//! edge Worker reuses it. It knows nothing of HTTP, SQL or the browser: file and terminal code lives behind
//! the `cli` feature so that the core builds for `wasm32-unknown-unknown`.
//!
//! The byte layout and signing rules are specified in `docs/ticket-format.md`.

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
