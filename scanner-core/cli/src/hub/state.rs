//! A running hub's state, shared by its HTTP server (`server.rs`) and its relay with the issuer
//! (`upstream.rs`): the event's log, the trust material it decides with, its configuration.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use scanner_core::redemption::server_log::ServerLogs;
use scanner_core::redemption::DeviceId;
use scanner_core::{Keyring, RevocationList};

use super::{HubConfig, TrustFiles};

/// The trust material the hub decides with, parsed once.
pub struct Trust {
    pub files: TrustFiles,
    pub keyring: Keyring,
    pub revocations: RevocationList,
    /// SHA-256 of the event's device tokens.
    pub devices: HashSet<[u8; 32]>,
}

impl Trust {
    pub fn parse(files: TrustFiles) -> Result<Self> {
        let keyring = Keyring::from_json(&files.keyring_json).context("keyring.json is invalid")?;
        let revocations =
            RevocationList::from_json(&files.revocations_json, &keyring).context("revocations.json is refused")?;
        let devices = files.devices.iter().filter_map(|h| scanner_core::token::parse_token_hash(h)).collect();
        Ok(Self { files, keyring, revocations, devices })
    }
}

/// A running hub.
pub struct Hub {
    pub dir: PathBuf,
    pub config: HubConfig,
    pub owner: DeviceId,
    pub logs: ServerLogs,
    pub trust: RwLock<Arc<Trust>>,
    /// Each door device's request budget ([`super::limit`]).
    pub limit: super::limit::DeviceLimit,
}

impl Hub {
    pub fn redemptions_dir(&self) -> PathBuf {
        self.dir.join("redemptions")
    }
}
