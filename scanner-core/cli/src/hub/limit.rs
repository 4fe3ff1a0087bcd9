//! The hub's per-device request limit: a token bucket per device id, refilled at `per_s` up to `burst`.
//! Every request a door device makes with its token takes one token; with none left the hub answers 429
//! with `Retry-After` (whole seconds until a token is back) and does nothing else.
//!
//! Why these defaults ([`DEFAULT_PER_S`], [`DEFAULT_BURST`]): a steward scans at most a few tickets a
//! second, each scan is one `POST /v1/redeem` (plus, when the device decided it itself, one immediate sync
//! of 2 to 4 round trips), and the door loop syncs every 2 s (2 to 4 round trips). A door at its busiest,
//! 3 scans/s all decided on the device, makes about 3 × (1 + 3) + 2 ≈ 14 requests/s; a normal one well
//! under 5. 30/s sustained with a burst of 90 (a device coming back after a pause, set-up downloads) sits
//! twice above that worst case, and still holds one runaway or stolen token to a small share of what the
//! hub sustains (hundreds of fsync'd decisions a second, scripts/hub-bench.sh).
//!
//! Memory: one bucket per device that passed authentication, so at most the event's device list.
//! Plain Rust, no clock of its own: the caller passes `Instant`s (tests pass made-up ones).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use scanner_core::redemption::DeviceId;

/// Requests per second a device may make, sustained.
pub const DEFAULT_PER_S: f64 = 30.0;
/// Requests a device may make at once after a quiet spell.
pub const DEFAULT_BURST: u32 = 90;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Per-device token buckets. `per_s` of 0 (or less) turns the limit off (the bench's throughput run).
#[derive(Debug)]
pub struct DeviceLimit {
    per_s: f64,
    burst: f64,
    buckets: Mutex<HashMap<DeviceId, Bucket>>,
}

impl DeviceLimit {
    pub fn new(per_s: f64, burst: u32) -> Self {
        Self { per_s, burst: f64::from(burst.max(1)), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one request from `device`'s bucket at `now`, or says how long until one is available
    /// (rounded up to whole seconds, at least 1: what `Retry-After` can say).
    pub fn take(&self, device: DeviceId, now: Instant) -> Result<(), Duration> {
        if self.per_s.is_nan() || self.per_s <= 0.0 {
            return Ok(());
        }
        // A poisoned lock only means another request panicked mid-update: the counts are still numbers.
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = buckets.entry(device).or_insert(Bucket { tokens: self.burst, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_s).min(self.burst);
        bucket.at = now.max(bucket.at);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let secs = ((1.0 - bucket.tokens) / self.per_s).ceil().max(1.0);
        Err(Duration::from_secs(secs.min(f64::from(u32::MAX)) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let limit = DeviceLimit::new(2.0, 3);
        let (a, b) = (DeviceId(1), DeviceId(2));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limit.take(a, t0), Ok(()));
        }
        // Empty: one token is back in 0.5 s, said as the whole second HTTP can say.
        assert_eq!(limit.take(a, t0), Err(Duration::from_secs(1)));
        // Another device has its own bucket.
        assert_eq!(limit.take(b, t0), Ok(()));
        // Half a second later one request (2/s), not two.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(limit.take(a, t1), Ok(()));
        assert!(limit.take(a, t1).is_err());
        // A long pause refills to the burst, no further.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limit.take(a, t2), Ok(()));
        }
        assert!(limit.take(a, t2).is_err());
    }

    #[test]
    fn retry_after_counts_whole_seconds_until_a_token() {
        let limit = DeviceLimit::new(0.1, 1);
        let t0 = Instant::now();
        assert_eq!(limit.take(DeviceId(7), t0), Ok(()));
        assert_eq!(limit.take(DeviceId(7), t0), Err(Duration::from_secs(10)));
        assert_eq!(limit.take(DeviceId(7), t0 + Duration::from_millis(2_500)), Err(Duration::from_secs(8)));
    }

    #[test]
    fn a_zero_rate_is_no_limit() {
        let limit = DeviceLimit::new(0.0, 1);
        let t0 = Instant::now();
        assert!((0..1000).all(|_| limit.take(DeviceId(3), t0).is_ok()));
    }
}
