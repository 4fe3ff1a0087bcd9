//! A door device's side of a venue hub: where the hub is, and the door loop that syncs with it while
//! scanning (scanner-core's [`SyncSchedule`]: every few seconds, and at once after a scan the hub did not
//! decide), and backs off when the hub says it is asked too often (429, `Retry-After`).

use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use scanner_core::redemption::{RedemptionLog, SyncSchedule};
use scanner_core::setup::CertPin;

use crate::Issuer;

/// How often `scan --stdin` syncs with a venue hub by default (scanner-core's, the same as the PWA's).
pub const DEFAULT_HUB_SYNC_MS: u64 = scanner_core::redemption::HUB_SYNC_INTERVAL_MS;
/// A sync with the hub in the door loop gives up after this long: the door never waits on a dead hub.
const HUB_SYNC_TIMEOUT: Duration = Duration::from_secs(3);

fn hub_file(dir: &Path) -> std::path::PathBuf {
    dir.join("venue-hub")
}

fn hub_pin_file(dir: &Path) -> std::path::PathBuf {
    dir.join("venue-hub-cert-sha256")
}

/// The venue hub this device talks to, and the pin of its certificate if it has one.
#[derive(Debug, Clone)]
pub struct VenueHub {
    pub url: String,
    pub pin: Option<CertPin>,
}

impl VenueHub {
    /// An HTTP client for this hub: with a pin, it accepts the hub's certificate by its SHA-256 only.
    pub fn agent(&self, timeout: Duration) -> Result<ureq::Agent> {
        crate::tls::http_agent(timeout, self.pin)
    }
}

/// Stores the venue hub's URL (checked like every server URL: https, plain http only to this machine) and
/// its certificate pin (then the URL must be https; the hub's certificate is accepted by its SHA-256 only).
pub fn set_hub(dir: &Path, url: &str, pin: Option<&str>) -> Result<()> {
    match pin {
        Some(hex) => {
            let pin = CertPin::parse(hex)?;
            let url = scanner_core::setup::check_pinned_url(url)?;
            super::write_file(&hub_pin_file(dir), pin.to_hex().as_bytes(), false)?;
            super::write_file(&hub_file(dir), url.as_bytes(), false)
        }
        None => {
            let url = scanner_core::setup::check_server_url(url)?;
            // A new hub without a pin must not inherit the previous hub's pin.
            match std::fs::remove_file(hub_pin_file(dir)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).context("cannot remove the previous hub's certificate pin"),
            }
            super::write_file(&hub_file(dir), url.as_bytes(), false)
        }
    }
}

pub fn venue_hub(dir: &Path) -> Result<Option<VenueHub>> {
    let url = match std::fs::read_to_string(hub_file(dir)) {
        Ok(url) => url,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("cannot read the venue hub's address"),
    };
    let pin = match std::fs::read_to_string(hub_pin_file(dir)) {
        Ok(hex) => Some(CertPin::parse(&hex)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).context("cannot read the venue hub's certificate pin"),
    };
    let url = match pin {
        Some(_) => scanner_core::setup::check_pinned_url(url.trim())?,
        None => scanner_core::setup::check_server_url(url.trim())?,
    };
    Ok(Some(VenueHub { url, pin }))
}

/// One sync with the hub (push this device's scans, pull everyone's).
pub fn sync_once(log: &mut RedemptionLog, hub: &VenueHub, timeout: Duration) -> Result<usize> {
    let token = log.token()?.context("this scanner has no token for the hub")?;
    let issuer = Issuer::with_agent(&hub.url, &token, hub.agent(timeout)?);
    let event = log.event_id();
    let now = i64::try_from(crate::now_ms(None)? / 1000).unwrap_or(0);
    let summary = log.sync_with(&hub.url, now, |channel, message| {
        // The whole cause chain (e.g. a TLS pin mismatch under "cannot reach"), not only the outer line.
        issuer.sync(event, channel, message).map_err(|e| format!("{e:#}"))
    })?;
    Ok(summary.new_records)
}

/// Until when the server (in a door loop: the hub) asked this process not to call it (HTTP 429). One
/// process is one device, so the whole process waits: its scans decide on the device, its syncs wait.
static SERVER_WAIT_UNTIL: Mutex<Option<Instant>> = Mutex::new(None);

/// The server answered 429 with this `Retry-After`: no scan asks it and no sync calls it before then.
pub fn server_asked_to_wait(wait: Duration) {
    let until = Instant::now() + wait;
    let mut held = SERVER_WAIT_UNTIL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    *held = Some(held.map_or(until, |h| h.max(until)));
}

/// How much longer the server asked to wait, if it did and the time has not come.
pub fn server_waiting() -> Option<Duration> {
    let held = *SERVER_WAIT_UNTIL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    held.and_then(|until| until.checked_duration_since(Instant::now())).filter(|left| !left.is_zero())
}

/// A sync the server refused for now (HTTP 429): retry after this long.
#[derive(Debug)]
pub struct RetryLater(pub Duration);

impl std::fmt::Display for RetryLater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server asks to retry after {} s (HTTP 429)", self.0.as_secs())
    }
}

impl std::error::Error for RetryLater {}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The door loop (`scan --stdin`) with a hub: one ticket per line; syncs with the hub by scanner-core's
/// [`SyncSchedule`]: every `every`, and at once after a scan the hub did not decide (so another gate
/// learns of it within one of its own sync rounds), never while the hub asked to wait. `scan` returns the
/// exit code and whether the hub (or the edge) decided the scan.
pub fn door_loop(
    dir: &Path,
    log: &mut RedemptionLog,
    every: Duration,
    mut scan: impl FnMut(&mut RedemptionLog, &str) -> Result<(ExitCode, bool)>,
) -> Result<ExitCode> {
    let hub = venue_hub(dir)?.context("no venue hub configured")?;
    let (tx, rx) = mpsc::channel::<std::io::Result<String>>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut code = ExitCode::SUCCESS;
    let every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
    let mut schedule = SyncSchedule::new(every_ms, unix_ms());
    loop {
        let wait = Duration::from_millis(schedule.wait_ms(unix_ms()));
        match rx.recv_timeout(wait) {
            Ok(line) => {
                let line = line.context("cannot read standard input")?;
                if line.trim().is_empty() {
                    continue;
                }
                let (scanned, decided_by_server) = scan(log, &line)?;
                code = scanned;
                schedule.scanned(decided_by_server);
                if log.should_fold() {
                    log.fold_pending(i64::try_from(crate::now_ms(None)? / 1000).unwrap_or(0))?;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = unix_ms();
        if let Some(left) = server_waiting() {
            schedule.wait(now, u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
        }
        if schedule.due(now) {
            // A 429 is noted by the client itself (`server_asked_to_wait`) and held to on the next turn.
            if let Err(e) = sync_once(log, &hub, HUB_SYNC_TIMEOUT) {
                tracing::info!(error = %format!("{e:#}"), "hub sync failed; next try in {} ms", every.as_millis());
            }
            schedule.synced(unix_ms());
        }
    }
    // Last sync on the way out (best effort): the hub learns the final scans now, not at the next run.
    if let Err(e) = sync_once(log, &hub, HUB_SYNC_TIMEOUT) {
        eprintln!("note: the last scans were not synced with the hub: {e:#}");
    }
    Ok(code)
}
