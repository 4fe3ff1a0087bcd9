//! The hub's relay with the issuer, and fresh trust material (the revocation list and device list, so a
//! device revoked at the issuer is refused here too). Two modes:
//!
//! - with a hub token (`relay_token`): one relay session (`channel=relay`), both ways: everything the hub
//!   holds, every door device's records included, out; everything the issuer holds in;
//! - without: as a device, its own decisions out (push, as the device its token is bound to) and
//!   everyone's records that reached the issuer in (pull).

use std::sync::Arc;

use anyhow::{Context, Result};
use scanner_core::redemption::store::MAX_SYNC_ROUNDS;
use scanner_core::redemption::sync_log::ClientTurn;
use scanner_core::redemption::SyncChannel;
use serde::Serialize;

use super::state::{Hub, Trust};
use crate::Issuer;

/// What one relay did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RelaySummary {
    /// Round trips of the push session (the hub's own decisions).
    pub pushed_rounds: usize,
    /// Round trips of the pull session.
    pub pulled_rounds: usize,
    /// Round trips of the relay session (with a hub token; then there is no push or pull session).
    pub relayed_rounds: usize,
    /// Records the pull (or relay) brought that the hub did not hold.
    pub new_records: usize,
    /// The trust material was refreshed (false: the issuer did not answer for it; the old is kept).
    pub trust_refreshed: bool,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// One relay session with the issuer. Each message is stored before the next is sent, so an interrupted
/// relay resumes where it stopped.
pub fn relay(hub: &Hub) -> Result<RelaySummary> {
    let config = &hub.config;
    let (issuer, sessions): (Issuer, &[(SyncChannel, &str)]) = match &config.relay_token {
        Some(token) => (Issuer::new(&config.server, token), &[(SyncChannel::Relay, "upstream.relay")]),
        None => (
            Issuer::new(&config.server, &config.token),
            &[(SyncChannel::Push, "upstream.push"), (SyncChannel::Pull, "upstream.pull")],
        ),
    };
    let dir = hub.redemptions_dir();
    let mut summary = RelaySummary::default();
    for &(channel, peer_key) in sessions {
        let mut reply: Option<Vec<u8>> = None;
        let mut rounds = 0;
        while let Some(turn) = ClientTurn::after(rounds, reply.as_deref()) {
            let (message, received) = hub
                .logs
                .with(&dir, config.event, Some(hub.owner), |log| log.client_step(peer_key, channel, turn, now_ms()))?;
            summary.new_records += received.new_records;
            let Some(message) = message else { break };
            if rounds == MAX_SYNC_ROUNDS {
                anyhow::bail!(
                    "the relay's {} session did not finish in {MAX_SYNC_ROUNDS} round trips",
                    channel.as_str()
                );
            }
            rounds += 1;
            reply = issuer
                .sync(Some(config.event), channel, &message)
                .with_context(|| format!("{} to {}", channel.as_str(), config.server))?;
        }
        match channel {
            SyncChannel::Push => summary.pushed_rounds = rounds,
            SyncChannel::Pull => summary.pulled_rounds = rounds,
            SyncChannel::Relay => summary.relayed_rounds = rounds,
        }
    }
    match super::fetch_trust(config).and_then(|files| {
        super::store_trust(&hub.dir, config, &files)?;
        Trust::parse(files)
    }) {
        Ok(trust) => {
            if let Ok(mut held) = hub.trust.write() {
                *held = Arc::new(trust);
                summary.trust_refreshed = true;
            }
        }
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "trust material not refreshed; the old is kept"),
    }
    Ok(summary)
}
