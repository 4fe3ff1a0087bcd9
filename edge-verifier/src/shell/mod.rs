//! The Workers runtime shell (wasm32 only): HTTP routing, bindings and Durable Object storage. Every
//! decision is delegated to the plain modules of this crate (tested natively) and, through them, to
//! scanner-core.
//!
//! One file per part:
//! - [`routes`]: the Worker's fetch handler — routing, device tokens, CORS, body limits;
//! - [`trust`]: the trust cache of an isolate — keyring, revocation list and device list, read from KV
//!   and the variables or pulled from the issuer;
//! - [`trust_store`]: the `TrustStore` Durable Object (the newest revocation list ever verified);
//! - [`shard_object`]: the `RedemptionShard` Durable Object (redemption state and its outbox);
//! - [`log_object`]: the `RedemptionLogObject` Durable Object (an event's redemption log, `/v1/sync`);
//! - [`calls`]: how the Worker and the objects call each other (one client function per request);
//! - [`http`]: what they share — variables, the clock, JSON answers, requests between objects;
//! - [`errors`]: conversions of the runtime's errors into the crate's [`Error`](crate::error::Error).
//!
//! Bindings (see wrangler.toml):
//! - `REDEMPTIONS`: Durable Object namespace of `RedemptionShard` (ticket redemption state, sharded by
//!   event and ticket reference);
//! - `REDEMPTION_LOG`: Durable Object namespace of `RedemptionLogObject` (one per event: the automerge
//!   redemption log that `/v1/sync` serves, and the edge's admissions in it);
//! - `TRUST`: Durable Object namespace of `TrustStore` (one object: the newest verified revocation list,
//!   so that no instance ever falls back to an older one);
//! - `CONFIG` (optional KV): keys `keyring` and `revocations`, which override the variables below, and
//!   `manifest:<event id>` (the issuer's attendee manifest, served to scanners at setup);
//! - variables `KEYRING_JSON`, `REVOCATIONS_JSON` (optional), `ALLOWED_ORIGINS`, `LOG_FORWARD_DELAY_MS`
//!   (optional), `REVOCATIONS_REFRESH_MS` (optional);
//! - secret `SCANNER_TOKEN_HASHES`: SHA-256 hex of each allowed scanner device token (`<hash>` for any
//!   event or `<hash>:<event>`), for deployments without an issuer; with `ISSUER_URL` (and the edge
//!   token `ISSUER_TOKEN`) the Worker pulls the issuer's device list, each token bound to its event,
//!   merged with these (see `config::DeviceTokens`); secret `RELAY_TOKEN_HASHES`: the sync servers that
//!   may relay (the issuer).
//!
//! Record flow: a shard decides a redemption and, in the same storage write, puts the record in its
//! outbox; an alarm drains the outbox into the event's log object (retried until acknowledged), so the
//! redeem path never waits for the log. Records devices sync into the log are relayed to the owning
//! shards before the sync reply goes out (and by an alarm if that fails), so a ticket admitted offline is
//! refused online as soon as the device has synced.

mod calls;
mod errors;
mod http;
mod log_object;
mod routes;
mod shard_object;
mod trust;
mod trust_store;
