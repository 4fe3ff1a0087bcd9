//! Offline redemption: the scan decision, the device-local redemption log, sync and the organizer's
//! report.
//!
//! - [`record`]: one scan as a fixed-size 32-byte record; ticket references, device ids, the hybrid clock.
//! - [`document`]: the automerge document every device, the sync server and the browser share; validated
//!   merge and sync.
//! - [`decision`]: what a scan answers (admit / already used / refused), from the verification and
//!   everything the log knows.
//! - [`report`]: admitted per gate and hour, refusals by reason, and conflicts (duplicates) across devices.
//! - `store` (feature `store`): the durable device log on sled.
//!
//! The core takes time as a parameter and touches no file or clock, so it builds for wasm32.

pub mod decision;
pub mod document;
pub mod record;
pub mod report;
#[cfg(feature = "store")]
pub mod store;

pub use decision::{HolderDirectory, ScanIndex, Verdict};
pub use document::{serve_sync, Batch, DeviceLog, LogError, RedemptionDoc, SyncError};
pub use record::{DeviceId, Hlc, HybridClock, Outcome, RefusalCode, ScanKind, ScanRecord, TicketRef};
pub use report::EventReport;
#[cfg(feature = "store")]
pub use store::RedemptionLog;
