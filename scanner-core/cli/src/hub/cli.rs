//! The `scanner hub` command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use scanner_core::redemption::server_log::ServerLogs;

use super::limit::DeviceLimit;
use super::server::Transport;
use super::state::{Hub, Trust};
use super::{hub_dir, load_config, load_trust};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HubArgs {
    #[command(subcommand)]
    action: Option<HubAction>,
    /// Serve this event (the one `scanner hub init` set the hub up for).
    #[arg(long)]
    event: Option<u32>,
    /// Address to serve on, e.g. 0.0.0.0:8088 (port 0: any free port; the URL is written to
    /// <data>/hub/listen and printed).
    #[arg(long, default_value = "0.0.0.0:8088")]
    listen: SocketAddr,
    /// Serve the PWA's files from this directory (web/scanner with its built pkg/), so phones can be
    /// set up from the hub alone.
    #[arg(long, value_name = "DIR")]
    web: Option<PathBuf>,
    /// Relay with the issuer this often, in seconds, whenever it is reachable (0: only on `scanner hub push`).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    upstream_every: u64,
    /// Serve HTTPS with this PEM certificate chain (end-entity first), e.g. the organizer's certificate
    /// for a name that resolves to the hub on the venue network.
    #[arg(long, value_name = "PEM", requires = "tls_key", conflicts_with = "self_signed")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate, made once and kept in <data>/hub/ (key 0600). Its
    /// SHA-256 is printed: give it to devices as `scanner init --hub https://HUB:PORT --hub-cert-sha256 HEX`.
    #[arg(long)]
    self_signed: bool,
    /// A name or IP address the self-signed certificate is for (repeatable; default: the --listen IP,
    /// unless unspecified, and "localhost"). Only used when the certificate is first made.
    #[arg(long, value_name = "NAME", requires = "self_signed")]
    tls_name: Vec<String>,
    /// Requests per second each door device may make, sustained (429 with Retry-After beyond; 0: no
    /// limit). The default is twice a door's busiest (see the hub's README section).
    #[arg(long, value_name = "PER_S", default_value_t = super::limit::DEFAULT_PER_S)]
    device_rate: f64,
    /// Requests a door device may make at once after a quiet spell.
    #[arg(long, value_name = "N", default_value_t = super::limit::DEFAULT_BURST)]
    device_burst: u32,
}

#[derive(Subcommand)]
enum HubAction {
    /// Set the hub up from the issuer: its own device token for the event (a setup link or
    /// --server/--token/--event), and a read-only edge token for the event's device list.
    Init {
        /// The hub's own device setup link (create a device named e.g. "hub" for the event).
        #[arg(long, value_name = "URL", conflicts_with_all = ["server", "token", "event", "keyring_sha256"])]
        setup: Option<String>,
        #[arg(long, requires_all = ["token", "event"])]
        server: Option<String>,
        #[arg(long)]
        token: Option<String>,
        #[arg(long)]
        event: Option<u32>,
        #[arg(long, value_name = "HEX")]
        keyring_sha256: Option<String>,
        /// A read-only edge token (admin API `/admin/v1/edge-tokens`): reads the event's device list.
        #[arg(long)]
        edge_token: String,
        /// A hub token for the event (admin API `/admin/v1/events/{id}/hub-tokens`): relay everything the
        /// hub holds to the issuer (`channel=relay`). Without it the hub pushes only its own decisions.
        #[arg(long)]
        relay_token: Option<String>,
        /// The hub's name in the log and in "already used" verdicts.
        #[arg(long, default_value = "hub")]
        name: String,
    },
    /// Relay with the issuer now: through the running hub if there is one, else directly.
    Push,
}

pub fn run(data: &Path, args: HubArgs) -> Result<ExitCode> {
    match args.action {
        Some(HubAction::Init { setup, server, token, event, keyring_sha256, edge_token, relay_token, name }) => {
            let options =
                super::InitOptions { setup, server, token, event, keyring_sha256, edge_token, relay_token, name };
            super::init(data, options)
        }
        Some(HubAction::Push) => push(data),
        None => {
            let mut hub = open(data)?;
            hub.limit = DeviceLimit::new(args.device_rate, args.device_burst);
            let event = args.event.context("give the event: scanner hub --event ID --listen ADDR")?;
            if event != hub.config.event {
                anyhow::bail!("this hub is set up for event {}, not {event}", hub.config.event);
            }
            let transport = match (args.tls_cert, args.tls_key, args.self_signed) {
                (Some(cert), Some(key), _) => Transport::Tls(crate::tls::load_identity(&cert, &key)?),
                (_, _, true) => {
                    let mut names = args.tls_name;
                    if names.is_empty() {
                        if !args.listen.ip().is_unspecified() {
                            names.push(args.listen.ip().to_string());
                        }
                        names.push("localhost".to_owned());
                    }
                    Transport::Tls(crate::tls::self_signed(&hub.dir, &names)?)
                }
                _ => Transport::Plain,
            };
            let every = Duration::from_secs(args.upstream_every);
            super::server::serve(hub, args.listen, transport, args.web, every)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The hub in `data`, with its trust material and log (not serving yet).
fn open(data: &Path) -> Result<Hub> {
    let dir = hub_dir(data);
    let config = load_config(&dir)?;
    let trust = Trust::parse(load_trust(&dir)?)?;
    let owner = config.device();
    let limit = DeviceLimit::new(super::limit::DEFAULT_PER_S, super::limit::DEFAULT_BURST);
    let hub = Hub { dir, config, owner, logs: ServerLogs::new(), trust: RwLock::new(Arc::new(trust)), limit };
    // Opened now so a damaged log stops the hub at start, not at the first device.
    hub.logs.with(&hub.redemptions_dir(), hub.config.event, Some(owner), |_| Ok(()))?;
    Ok(hub)
}

fn push(data: &Path) -> Result<ExitCode> {
    let dir = hub_dir(data);
    let config = load_config(&dir)?;
    // A running hub owns its log file: ask it. Only when none answers is the file relayed from here.
    if let Ok(url) = std::fs::read_to_string(dir.join("listen")) {
        let url = url.trim().replace("0.0.0.0", "127.0.0.1");
        // Written by a hub from before TLS: the bare address, plain http.
        let url = if url.contains("://") { url } else { format!("http://{url}") };
        // A hub serving TLS is asked through its own certificate's pin (the running hub wrote it).
        let pin = match std::fs::read_to_string(dir.join("listen-cert-sha256")) {
            Ok(hex) if url.starts_with("https://") => Some(scanner_core::setup::CertPin::parse(&hex)?),
            _ => None,
        };
        let agent = crate::tls::http_agent(Duration::from_secs(60), pin)?;
        let issuer = crate::Issuer::with_agent(&url, &config.token, agent);
        match issuer.post_empty(super::PUSH_PATH) {
            Ok(summary) => {
                println!("{summary}");
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) if format!("{e:#}").contains("cannot reach") => {}
            Err(e) => return Err(e),
        }
    }
    let hub = open(data)?;
    let summary = super::upstream::relay(&hub)?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(ExitCode::SUCCESS)
}
