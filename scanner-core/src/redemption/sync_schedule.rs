//! When a door device syncs its log with the server it syncs with while scanning (a venue hub), once for
//! every scanner: the CLI's door loop uses it, and the PWA can through wasm.
//!
//! The rule: every `every_ms` (the periodic round, which brings the other gates' scans), and **at once**
//! after a scan the server did not decide. A scan the server decided is already in the server's log (it
//! recorded it before answering), so nothing is gained by sending it; a scan decided on this device (the
//! server unreachable, too slow, or not asked because this device's log already answered) is known to no
//! one else until this device sends it. Sending it at once instead of at the next periodic round takes the
//! worst case from an admission here to "already used" at another gate syncing every `every_ms` from two
//! intervals (this device's round, then the other's) down to one interval plus the round trips.
//!
//! A server that asks to wait (HTTP 429 with `Retry-After`) is not synced with, not even for a scan, until
//! then ([`SyncSchedule::wait`]): its per-device limit is far above what a door needs, so only a runaway
//! device meets it, and it must back off rather than retry at once.
//!
//! Pure: time is a parameter (Unix milliseconds), no clock or network here.

/// A door device's sync timing. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSchedule {
    every_ms: u64,
    /// The next periodic round.
    next_ms: u64,
    /// A scan this device decided is not yet sent.
    wanted: bool,
    /// The server asked not to be called before this.
    not_before_ms: u64,
}

impl SyncSchedule {
    /// A schedule syncing every `every_ms` (at least 1 ms), the first round due at `now_ms`.
    pub fn new(every_ms: u64, now_ms: u64) -> Self {
        Self { every_ms: every_ms.max(1), next_ms: now_ms, wanted: false, not_before_ms: 0 }
    }

    /// The periodic interval.
    pub fn every_ms(&self) -> u64 {
        self.every_ms
    }

    /// A scan was recorded: `decided_by_server` says whether the server decided it (and so holds it).
    pub fn scanned(&mut self, decided_by_server: bool) {
        self.wanted |= !decided_by_server;
    }

    /// Whether to sync now.
    pub fn due(&self, now_ms: u64) -> bool {
        now_ms >= self.not_before_ms && (self.wanted || now_ms >= self.next_ms)
    }

    /// How long until a sync is due (0: now). Waiting on input for at most this long never misses one.
    pub fn wait_ms(&self, now_ms: u64) -> u64 {
        let due_at = if self.wanted { now_ms } else { self.next_ms };
        due_at.max(self.not_before_ms).saturating_sub(now_ms)
    }

    /// A sync was made at `now_ms` (whether it succeeded or not: a failed one is tried again at the next
    /// round, not in a loop). Everything recorded before it was sent, or will be with the next round.
    pub fn synced(&mut self, now_ms: u64) {
        self.wanted = false;
        self.next_ms = now_ms.saturating_add(self.every_ms);
    }

    /// The server answered "too many requests, retry after `retry_after_ms`" at `now_ms`: nothing is sent
    /// to it before then. A scan still waiting to be sent stays wanted.
    pub fn wait(&mut self, now_ms: u64, retry_after_ms: u64) {
        self.not_before_ms = self.not_before_ms.max(now_ms.saturating_add(retry_after_ms));
    }

    /// Whether the server asked to wait and the time has not come (a scan then decides on the device
    /// without asking it).
    pub fn waiting(&self, now_ms: u64) -> bool {
        now_ms < self.not_before_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_rounds_every_interval() {
        let mut s = SyncSchedule::new(2_000, 10_000);
        assert!(s.due(10_000), "the first round at once");
        s.synced(10_000);
        assert!(!s.due(11_999));
        assert_eq!(s.wait_ms(11_000), 1_000);
        assert!(s.due(12_000));
        s.synced(12_050);
        assert_eq!(s.wait_ms(12_050), 2_000);
    }

    #[test]
    fn a_scan_the_server_did_not_decide_is_sent_at_once() {
        let mut s = SyncSchedule::new(2_000, 0);
        s.synced(0);
        s.scanned(true);
        assert!(!s.due(100), "the server holds what it decided");
        assert_eq!(s.wait_ms(100), 1_900);
        s.scanned(false);
        assert!(s.due(100));
        assert_eq!(s.wait_ms(100), 0);
        s.synced(150);
        assert!(!s.due(151), "sent: the next round is periodic again");
        assert_eq!(s.wait_ms(151), 1_999);
    }

    #[test]
    fn retry_after_holds_every_sync_back() {
        let mut s = SyncSchedule::new(2_000, 0);
        s.synced(0);
        s.wait(500, 3_000);
        s.scanned(false);
        assert!(s.waiting(500) && s.waiting(3_499) && !s.waiting(3_500));
        assert!(!s.due(2_000), "not even the periodic round");
        assert_eq!(s.wait_ms(2_000), 1_500);
        assert!(s.due(3_500), "then the waiting scan goes at once");
        // A shorter wait never shortens a longer one.
        s.wait(600, 10);
        assert!(s.waiting(3_000));
    }

    #[test]
    fn a_zero_interval_is_one_millisecond() {
        let mut s = SyncSchedule::new(0, 5);
        s.synced(5);
        assert_eq!(s.every_ms(), 1);
        assert!(s.due(6));
    }
}
