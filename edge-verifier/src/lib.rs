//! The edge verifier: a Cloudflare Worker that answers "admit?" for online scanners, exactly once per
//! ticket across all gates, and relays the redemption log so edge and offline scans converge.
//!
//! It is a thin shell over `scanner-core`: every format, signature, revocation, scan-decision and log
//! decision is made there. This crate only adds HTTP (parsing, limits, auth, CORS, JSON errors), sharding
//! onto Durable Objects, and storage layout.
//!
//! Everything here except `shell` is plain Rust, compiled and unit-tested natively: the HTTP API's bodies
//! and routes ([`api`]), device tokens ([`auth`]), the trust material and when to pull or rebuild it
//! ([`config`]), the revocation floor ([`revocations`]), a shard's decisions and storage ([`shard`],
//! [`history`]) and the log's ([`relay`]). The Workers runtime binding (crate `worker`) exists only in
//! the wasm32 build: `shell` (the fetch handler and the Durable Objects, one file each) does the I/O.
//!
//! Everything fallible returns the crate's one [`Error`] ([`error`]: which part refused, and how), which
//! is also the one place an error becomes an HTTP status and scanner-core's wire `ErrorBody`.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod history;
pub mod relay;
pub mod revocations;
pub mod shard;

#[cfg(target_arch = "wasm32")]
mod shell;

pub use error::{Error, Result};
