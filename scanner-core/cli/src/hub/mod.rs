//! `scanner hub`: a venue hub. One laptop or single-board computer on the venue's own network runs a sync
//! server for one event, so devices at different gates learn of each other's scans within seconds with no
//! internet, and relays what it holds to the issuer once it can reach it.
//!
//! - `scanner hub init`: set up like a device (a scanner token for the event, e.g. from a setup link:
//!   keyring pinned, revocations, manifest, gate rules), plus the event's device list (token hashes), read
//!   with a read-only edge token.
//! - `scanner hub --event ID --listen ADDR`: serves `/v1/sync`, `/v1/redeem`, the set-up endpoints and
//!   the PWA's files ([`server`]); relays to the issuer every `--upstream-every` seconds ([`upstream`]).
//! - `scanner hub push`: relay now (through the running hub if there is one).
//!
//! ## Credentials, and why
//!
//! The hub holds two: its **own scanner token** for the event (a device like any other, named e.g. "hub"
//! in the admin API), and a **read-only edge token** for the device list. With its own token the hub
//! writes to the issuer only as itself: the issuer takes from it only records under the id bound to that
//! token (its online decisions), exactly as from any device, so a stolen or misbehaving hub cannot write
//! scans in another device's name upstream. It pulls everyone else's records like a device does. The
//! other devices' own records reach the issuer from the devices themselves, whenever they sync with it
//! (or from an exported log, `scanner export`); the report counts every scan once whichever way it came.
//! The edge token can only read the device list and the revocation list.
//!
//! With a **hub token** (`--relay-token`, admin API `POST /admin/v1/events/{id}/hub-tokens`, bound to the
//! one event) the hub instead relays upstream like a server (`channel=relay`, both ways): everything it
//! holds reaches the issuer, so a door device's scans that only the hub holds (a phone lost after the
//! event) are in the report too. The issuer trusts a hub token like the edge relay, for its event only;
//! that is the organizer's choice when it creates one (a hub is its own hardware).
//!
//! Locally, a device is accepted if the SHA-256 of its bearer token is in the event's device list, and it
//! writes only under the id bound to that token ([`scanner_core::token::device_id_for_token_hash`]).
//!
//! ## Files (in `<data>/hub/`)
//!
//! `hub.json` (0600: holds the tokens), `keyring.json`, `revocations.json`, `manifest.json`,
//! `gate-rules.json` (if the issuer has rules), `devices.json` (the event's token hashes), `listen` (the
//! address the running hub serves on), `redemptions/` ([`scanner_core::redemption::server_log`]).

/// The running hub's "relay with the issuer now" endpoint (`scanner hub push` calls it; the hub's own
/// token only).
pub const PUSH_PATH: &str = "/hub/v1/push";

pub mod cli;
pub mod client;
pub mod limit;
pub mod server;
pub mod state;
pub mod upstream;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use scanner_core::redemption::DeviceId;
use scanner_core::setup::{check_server_url, SetupLink};
use scanner_core::wire::{
    event_path, gate_rules_path, manifest_path, revocations_path, EDGE_DEVICES_PATH, KEYRING_PATH,
};
use scanner_core::{Keyring, RevocationList};
use serde::{Deserialize, Serialize};

use super::Issuer;

/// The hub's configuration (`hub.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HubConfig {
    /// The issuer's base URL.
    pub server: String,
    /// The hub's own scanner token for the event.
    pub token: String,
    /// The read-only edge token the device list is read with.
    pub edge_token: String,
    pub event: u32,
    /// The hub's name in the log and in "already used" verdicts.
    pub name: String,
    /// The keyring pin (SHA-256 hex) the keyring was checked against, if the setup gave one.
    #[serde(default)]
    pub keyring_sha256: Option<String>,
    /// A hub token for the event (admin API `/admin/v1/events/{id}/hub-tokens`): with it the hub relays
    /// everything it holds upstream (`channel=relay`); without it, it pushes only its own decisions.
    #[serde(default)]
    pub relay_token: Option<String>,
}

impl HubConfig {
    /// The id the hub writes its own decisions as: the one bound to its token, as the issuer binds it.
    pub fn device(&self) -> DeviceId {
        scanner_core::token::device_id_for_token(&self.token)
    }
}

/// What the hub serves and decides with, as fetched from the issuer.
#[derive(Debug, Clone)]
pub struct TrustFiles {
    pub keyring_json: String,
    pub revocations_json: String,
    pub manifest_json: String,
    pub gate_rules_json: Option<String>,
    /// The event's public description (`GET /v1/events/{id}`): ticket type and add-on names for the
    /// verdict screen of a phone set up from the hub alone. `None` for a hub set up before it was kept.
    pub event_json: Option<String>,
    /// SHA-256 hex of the event's active device tokens.
    pub devices: BTreeSet<String>,
}

/// The hub's directory in a data directory.
pub fn hub_dir(data: &Path) -> PathBuf {
    data.join("hub")
}

fn read(dir: &Path, name: &str) -> Result<String> {
    let path = dir.join(name);
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {} (run `scanner hub init`)", path.display()))
}

pub fn load_config(dir: &Path) -> Result<HubConfig> {
    serde_json::from_str(&read(dir, "hub.json")?).context("hub.json is damaged")
}

pub fn load_trust(dir: &Path) -> Result<TrustFiles> {
    let devices: DeviceList = serde_json::from_str(&read(dir, "devices.json")?).context("devices.json is damaged")?;
    let gate_rules_path = dir.join("gate-rules.json");
    Ok(TrustFiles {
        keyring_json: read(dir, "keyring.json")?,
        revocations_json: read(dir, "revocations.json")?,
        manifest_json: read(dir, "manifest.json")?,
        gate_rules_json: gate_rules_path.exists().then(|| read(dir, "gate-rules.json")).transpose()?,
        event_json: dir.join("event.json").exists().then(|| read(dir, "event.json")).transpose()?,
        devices: devices.token_hashes.into_iter().collect(),
    })
}

/// `devices.json`: the event's device token hashes.
#[derive(Debug, Serialize, Deserialize)]
struct DeviceList {
    event: u32,
    token_hashes: Vec<String>,
}

/// The issuer's device list (`GET /v1/edge/devices`).
#[derive(Debug, Deserialize)]
struct EdgeDevices {
    devices: Vec<EdgeDevice>,
}

#[derive(Debug, Deserialize)]
struct EdgeDevice {
    token_hash: String,
    event: i64,
}

/// Writes a file atomically (temporary file, fsync, rename), `0600` when it holds secrets.
pub fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = secret;
    let mut file = options.open(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Fetches everything the hub serves and decides with from the issuer, checked (the keyring against its
/// pin, the revocation list against the keyring).
pub fn fetch_trust(config: &HubConfig) -> Result<TrustFiles> {
    let issuer = Issuer::new(&config.server, &config.token);
    let keyring_json = issuer.get_text(KEYRING_PATH)?;
    let keyring = match &config.keyring_sha256 {
        Some(pin) => Keyring::from_json_pinned(&keyring_json, pin).context("the server's keyring is refused")?,
        None => Keyring::from_json(&keyring_json).context("the server's keyring is invalid")?,
    };
    let revocations_json = issuer.get_text(&revocations_path(0))?;
    RevocationList::from_json(&revocations_json, &keyring).context("the server's revocation list is refused")?;
    let manifest_json = issuer.get_text(&manifest_path(config.event))?;
    scanner_core::manifest::Manifest::from_json(&manifest_json).context("the server's manifest is invalid")?;
    let gate_rules_json = issuer.get_optional_text(&gate_rules_path(config.event))?;
    let event_json = issuer.get_optional_text(&event_path(config.event))?;
    if let Some(json) = &event_json {
        serde_json::from_str::<serde_json::Value>(json).context("the server's event description is not JSON")?;
    }
    let devices = Issuer::new(&config.server, &config.edge_token)
        .get_text(EDGE_DEVICES_PATH)
        .context("cannot read the device list (is --edge-token an active edge token?)")?;
    let devices: EdgeDevices = serde_json::from_str(&devices).context("the server's device list is invalid")?;
    let devices = devices
        .devices
        .into_iter()
        .filter(|d| d.event == i64::from(config.event))
        .filter_map(|d| scanner_core::token::parse_token_hash(&d.token_hash).map(|_| d.token_hash.to_ascii_lowercase()))
        .collect();
    Ok(TrustFiles { keyring_json, revocations_json, manifest_json, gate_rules_json, event_json, devices })
}

pub fn store_trust(dir: &Path, config: &HubConfig, trust: &TrustFiles) -> Result<()> {
    write_file(&dir.join("keyring.json"), trust.keyring_json.as_bytes(), false)?;
    write_file(&dir.join("revocations.json"), trust.revocations_json.as_bytes(), false)?;
    write_file(&dir.join("manifest.json"), trust.manifest_json.as_bytes(), false)?;
    match &trust.gate_rules_json {
        Some(json) => write_file(&dir.join("gate-rules.json"), json.as_bytes(), false)?,
        None => {
            let _ = std::fs::remove_file(dir.join("gate-rules.json"));
        }
    }
    if let Some(json) = &trust.event_json {
        write_file(&dir.join("event.json"), json.as_bytes(), false)?;
    }
    let list = DeviceList { event: config.event, token_hashes: trust.devices.iter().cloned().collect() };
    write_file(&dir.join("devices.json"), serde_json::to_string_pretty(&list)?.as_bytes(), false)?;
    Ok(())
}

/// What `scanner hub init` was told.
pub struct InitOptions {
    pub setup: Option<String>,
    pub server: Option<String>,
    pub token: Option<String>,
    pub event: Option<u32>,
    pub keyring_sha256: Option<String>,
    pub edge_token: String,
    pub relay_token: Option<String>,
    pub name: String,
}

pub fn init(data: &Path, options: InitOptions) -> Result<ExitCode> {
    let InitOptions { setup, mut server, mut token, mut event, mut keyring_sha256, edge_token, relay_token, name } =
        options;
    if let Some(link) = setup {
        let link = SetupLink::parse(&link)?;
        server = Some(link.server);
        token = Some(link.token);
        event = Some(link.event);
        keyring_sha256 = Some(link.keyring_sha256);
    }
    let (Some(server), Some(token), Some(event)) = (server, token, event) else {
        anyhow::bail!("give --setup LINK (the hub's own device link), or --server URL --token T --event ID");
    };
    let server = check_server_url(&server)?;
    if let Some(pin) = &keyring_sha256 {
        scanner_core::keyring::parse_pin(pin).context("--keyring-sha256")?;
    } else {
        eprintln!(
            "warning: the keyring is not pinned (no --keyring-sha256): this hub trusts whatever keys {server} serves"
        );
    }
    let config = HubConfig { server, token, edge_token, event, name, keyring_sha256, relay_token };
    let dir = hub_dir(data);
    if let Ok(held) = load_config(&dir) {
        if held.event != event || held.device() != config.device() {
            anyhow::bail!(
                "{} holds the hub of event {} (device {}): use a new --data directory",
                dir.display(),
                held.event,
                held.device()
            );
        }
    }
    // Everything is fetched and checked before anything is written.
    let trust = fetch_trust(&config)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_file(&dir.join("hub.json"), serde_json::to_string_pretty(&config)?.as_bytes(), true)?;
    store_trust(&dir, &config, &trust)?;
    println!(
        "hub {} ({}) ready in {} for event {event}: {} devices may sync with it",
        config.device(),
        config.name,
        dir.display(),
        trust.devices.len()
    );
    Ok(ExitCode::SUCCESS)
}
