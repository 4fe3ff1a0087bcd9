//! Offline redemption: the scan decision, the device-local redemption log, sync and the organizer's
//! report.
//!
//! - [`record`]: one scan as a fixed-size 32-byte record; ticket references, device ids, the hybrid clock.
//! - [`document`]: the automerge document every device, the sync server and the browser share; validated
//!   merge and sync.
//! - [`decision`]: what a scan answers (admit / already used / refused), from the verification and
//!   everything the log knows.
//! - [`report`]: admitted per gate and hour, refusals by reason, and conflicts (duplicates) across devices.
//! - [`device`]: the scanning device as a pure state machine (decide, record, fold, sync, report) that
//!   tells its storage what to persist; the CLI stores it on sled, the browser on IndexedDB.
//! - [`online`]: the decision a server makes for every device that asks (the edge's shards, a venue hub).
//! - `sync_log` (feature `server-log`): a sync server's copy of an event's log without storage (what to
//!   take, what to answer, what to store first); `server_log`: the same in files (a venue hub). The
//!   issuer stores it in its database.
//! - `store` (feature `store`): the durable device log on sled, a thin wrapper over [`device::Device`].
//! - [`sync_schedule`]: when a door device syncs with its hub (every few seconds, and at once after a
//!   scan the hub did not decide).
//!
//! The core takes time as a parameter and touches no file or clock, so it builds for wasm32.

pub mod decision;
pub mod device;
pub mod document;
pub mod door;
pub mod online;
pub mod record;
pub mod report;
#[cfg(feature = "server-log")]
pub mod server_log;
#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "server-log")]
pub mod sync_log;
pub mod sync_schedule;

pub use crate::wire::EdgeVerdict;
pub use decision::{HolderDirectory, ScanIndex, Verdict};
pub use device::{Device, ScanOutcome};
pub use document::{serve_sync, Accept, Batch, DeviceLog, Peer, RedemptionDoc, SyncChannel};
pub use door::{DoorAction, EdgeAnswer, EdgeQuestion, OnlineVerifier, ScanPlan, ScanRequest, HUB_SYNC_INTERVAL_MS};
pub use record::{DecisionPath, DeviceId, Hlc, HybridClock, Outcome, RefusalCode, ScanKind, ScanRecord, TicketRef};
pub use report::{CheckIn, EventReport};
#[cfg(feature = "store")]
pub use store::RedemptionLog;
pub use sync_schedule::SyncSchedule;
