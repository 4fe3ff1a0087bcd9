//! A door device's side of a venue hub: where the hub is, and the door loop that syncs with it every few
//! seconds while scanning.

use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use scanner_core::redemption::RedemptionLog;

use crate::Issuer;

/// How often `scan --stdin` syncs with a venue hub by default.
pub const DEFAULT_HUB_SYNC_MS: u64 = 2_000;
/// A sync with the hub in the door loop gives up after this long: the door never waits on a dead hub.
const HUB_SYNC_TIMEOUT: Duration = Duration::from_secs(3);

fn hub_file(dir: &Path) -> std::path::PathBuf {
    dir.join("venue-hub")
}

/// Stores the venue hub's URL (checked like every server URL: https, plain http only to this machine).
pub fn set_hub(dir: &Path, url: &str) -> Result<()> {
    let url = scanner_core::setup::check_server_url(url)?;
    super::write_file(&hub_file(dir), url.as_bytes(), false)
}

pub fn hub_url(dir: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(hub_file(dir)) {
        Ok(url) => Ok(Some(scanner_core::setup::check_server_url(url.trim())?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context("cannot read the venue hub's address"),
    }
}

/// One sync with the hub (push this device's scans, pull everyone's).
pub fn sync_once(log: &mut RedemptionLog, url: &str, timeout: Duration) -> Result<usize> {
    let token = log.token()?.context("this scanner has no token for the hub")?;
    let issuer = Issuer::with_timeout(url, &token, timeout);
    let event = log.event_id();
    let now = i64::try_from(crate::now_ms(None)? / 1000).unwrap_or(0);
    let summary = log.sync_with(url, now, |channel, message| issuer.sync(event, channel, message))?;
    Ok(summary.new_records)
}

/// The door loop (`scan --stdin`) with a hub: one ticket per line, and a sync with the hub whenever
/// `every` has passed without one, so this device's offline decisions see the other gates' scans within
/// seconds even when the hub cannot be asked for a verdict.
pub fn door_loop(
    dir: &Path,
    log: &mut RedemptionLog,
    every: Duration,
    mut scan: impl FnMut(&mut RedemptionLog, &str) -> Result<ExitCode>,
) -> Result<ExitCode> {
    let url = hub_url(dir)?.context("no venue hub configured")?;
    let (tx, rx) = mpsc::channel::<std::io::Result<String>>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut code = ExitCode::SUCCESS;
    let mut next_sync = Instant::now();
    loop {
        let wait = next_sync.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(line) => {
                let line = line.context("cannot read standard input")?;
                if line.trim().is_empty() {
                    continue;
                }
                code = scan(log, &line)?;
                if log.should_fold() {
                    log.fold_pending(i64::try_from(crate::now_ms(None)? / 1000).unwrap_or(0))?;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = sync_once(log, &url, HUB_SYNC_TIMEOUT) {
                    tracing::info!(error = %format!("{e:#}"), "hub sync failed; next try in {} ms", every.as_millis());
                }
                next_sync = Instant::now() + every;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // Last sync on the way out (best effort): the hub learns the final scans now, not at the next run.
    if let Err(e) = sync_once(log, &url, HUB_SYNC_TIMEOUT) {
        eprintln!("note: the last scans were not synced with the hub: {e:#}");
    }
    Ok(code)
}
