//! `scanner`: the door-side command line. A thin shell over scanner-core.

mod hub;
mod tls;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use scanner_core::redemption::decision::Verdict;
use scanner_core::redemption::record::format_utc;
use scanner_core::redemption::store::RecordedScan;
use scanner_core::redemption::{DoorAction, EdgeAnswer, EdgeQuestion, OnlineVerifier, ScanPlan, ScanRequest};
use scanner_core::redemption::{RedemptionLog, ScanKind, SyncChannel};
use scanner_core::setup::CertPin;
use scanner_core::verify::verify_text;
use scanner_core::wire::{gate_rules_path, manifest_path, revocations_path, search_path, sync_path};
use scanner_core::wire::{SearchResults, KEYRING_PATH, REFUSED_CHANGES_HEADER, SUPERVISOR_PASS_HEADER};
use scanner_core::wire::{DEFAULT_EDGE_TIMEOUT_MS, MAX_EDGE_REPLY_BYTES, REDEEM_PATH};
use scanner_core::{Keyring, RevocationList, VerifyContext};
use serde_json::json;

#[derive(Parser)]
#[command(name = "scanner", version, about = "Verify and decode offline-first signed tickets")]
struct Cli {
    /// Directory of this device's redemption log (default: $SCANNER_DATA, else
    /// ~/.local/share/offline-tickets/scanner).
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// `scanner scan --help`: the output format, which scripts and tests rely on.
const SCAN_OUTPUT_HELP: &str = "\
Output (one line per scan, printed only after the scan is on disk):
  text:   the steward's verdict line, then two spaces and [edge] or [offline] (which path decided);
          why the edge was not used goes to standard error.
  --json: one JSON object per line with these keys:
    verdict     \"admit\" | \"exit\" | \"already_used\" | \"refused\" | \"payment_due\", plus that verdict's fields:
                admit: holder, ticket_type, addons, policy, gate, override_reason, overridden, and after
                  --paid: paid_at_door (true), collected ({minor, currency, text} or absent if unknown)
                payment_due: due ({minor, currency, text}, or null when the manifest lacks the ticket),
                  holder, ticket_type, addons, policy, gate
                exit: gate
                already_used: wall_time, at, gate, device, device_name, this_device
                refused: code (e.g. \"bad_signature\", \"revoked\"); the reason is in message
    message     the steward's one-line verdict (\"ADMIT ...\", \"REFUSED: <reason>\", ...)
    seq         the scan's sequence number in this device's log
    path        \"edge\" (the edge Worker decided) | \"offline\" (this device decided)
    edge_error  why the edge did not decide (\"timeout\", \"unreachable: ...\", \"edge answered 401 ...\",
                \"not asked: ...\"), or null when it did, no edge is configured or --override was given
    edge_ms     milliseconds spent waiting for the edge, or null when it was not asked
";

#[derive(Subcommand)]
enum Command {
    /// Decode the QR code in each image (PNG or JPEG). Exits 0 even when some images hold no code.
    Decode {
        /// One JSON object per line per image: {"file", "text", "ms"}.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Verify a ticket offline and print the verdict. Exit code 0 = valid, 1 = refused, 2 = error.
    Verify {
        /// Public keyring JSON (keys/keyring.json).
        #[arg(long)]
        keyring: PathBuf,
        /// Revocation list JSON as published by the issuer.
        #[arg(long)]
        revocations: Option<PathBuf>,
        /// The event to verify for (required: a ticket for any other event is wrong_event).
        #[arg(long)]
        event: u32,
        /// Check validity windows at this Unix time instead of now.
        #[arg(long)]
        now: Option<u64>,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
        /// Read the ticket from a QR code in this image instead of TEXT.
        #[arg(long, conflicts_with = "text")]
        image: Option<PathBuf>,
        /// The ticket's QR text.
        #[arg(required_unless_present = "image")]
        text: Option<String>,
    },
    /// Set up this device: fetch the keyring, revocation list and attendee manifest from the issuer
    /// (--setup LINK, or --server/--token), or take them from files for a fully offline setup (--keyring
    /// ...). The event is required. Servers must be https:// (plain http only to localhost).
    Init {
        /// The setup link from the organizer (`.../scanner/#setup=...`): server, token, event, edge, name,
        /// the keyring's SHA-256 (which the fetched keyring must match) and, if it names one, the venue hub
        /// and its certificate pin (as --hub/--hub-cert-sha256, which override them).
        #[arg(long, value_name = "URL", conflicts_with_all = ["server", "token", "event", "keyring", "keyring_sha256", "edge"])]
        setup: Option<String>,
        /// The issuer's base URL, e.g. https://tickets.example.org
        #[arg(long, requires = "token")]
        server: Option<String>,
        /// This device's scanner token (from the admin API); also sent to the edge Worker.
        #[arg(long)]
        token: Option<String>,
        /// The event this device admits to (required: tickets for other events are refused as wrong_event).
        #[arg(long)]
        event: Option<u32>,
        /// The SHA-256 (hex) of the keyring this device must get (the setup link's pin); any other keyring
        /// is refused.
        #[arg(long, value_name = "HEX")]
        keyring_sha256: Option<String>,
        /// A name for this device in reports (default: the host name).
        #[arg(long)]
        name: Option<String>,
        /// Public keyring JSON file (offline setup).
        #[arg(long, conflicts_with = "server")]
        keyring: Option<PathBuf>,
        /// Revocation list JSON file (offline setup).
        #[arg(long, conflicts_with = "server")]
        revocations: Option<PathBuf>,
        /// Attendee manifest JSON file (offline setup).
        #[arg(long, conflicts_with = "server")]
        manifest: Option<PathBuf>,
        /// The event's gate rules JSON file (offline setup; see docs/ticket-format.md §9).
        #[arg(long, conflicts_with = "server")]
        gate_rules: Option<PathBuf>,
        /// The edge Worker's base URL: `scan` asks it first while online (with this device's --token).
        #[arg(long, value_name = "URL")]
        edge: Option<String>,
        /// A venue hub's base URL (`scanner hub`): `scan` asks it first for verdicts (before any edge),
        /// and `scan --stdin` syncs with it every --hub-sync-ms; `sync --hub` syncs with it.
        #[arg(long, value_name = "URL")]
        hub: Option<String>,
        /// The hub's certificate SHA-256 (printed by `scanner hub --self-signed`): the hub is then
        /// reached over https and accepted by this fingerprint only.
        #[arg(long, value_name = "HEX", requires = "hub")]
        hub_cert_sha256: Option<String>,
    },
    /// Scan a ticket: decide, record durably, then print the verdict. Exit code 0 = admitted (or exit
    /// recorded), 1 = already used or refused, 2 = error, 3 = payment due at the door (not admitted:
    /// collect the amount shown, then scan again with --paid).
    ///
    /// With an edge Worker configured (`init --edge` or `--edge`), the scan is first sent to
    /// `POST {edge}/v1/redeem` with this device's token; if the edge answers within --edge-timeout-ms its
    /// verdict is shown and recorded in this device's log as decided by the edge. If it does not answer in
    /// time, cannot be reached, or answers with an error, this device decides offline by itself. The edge
    /// is not asked for an override (--override), nor for an entry this device's own log already shows
    /// used (the edge may not have that scan yet): those are decided offline.
    #[command(after_long_help = SCAN_OUTPUT_HELP)]
    Scan {
        /// Gate name recorded with the scan.
        #[arg(long, default_value = "main")]
        gate: String,
        /// This is an exit scan (re-entry tickets may come back in after one).
        #[arg(long)]
        exit: bool,
        /// Admit anyway, for this reason, if the ticket is genuine but refused; recorded as an override.
        #[arg(long = "override", value_name = "REASON")]
        override_reason: Option<String>,
        /// The holder of this unpaid ticket (exit code 3) has paid at the door: admit, and record the
        /// amount collected. Decided on this device (the edge is not asked).
        #[arg(long, conflicts_with_all = ["exit", "override_reason", "stdin"])]
        paid: bool,
        /// Decide at this Unix time instead of now.
        #[arg(long)]
        now: Option<u64>,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
        /// Read one ticket text per line from standard input until it ends (the door loop).
        #[arg(long, conflicts_with_all = ["text", "image"])]
        stdin: bool,
        /// Read the ticket from a QR code in this image instead of TEXT.
        #[arg(long, conflicts_with = "text")]
        image: Option<PathBuf>,
        /// The ticket's QR text.
        #[arg(required_unless_present_any = ["image", "stdin"])]
        text: Option<String>,
        /// Ask this edge Worker first (base URL), instead of the one stored by `init --edge`.
        #[arg(long, value_name = "URL", conflicts_with = "no_edge")]
        edge: Option<String>,
        /// Decide offline only, even if an edge Worker is configured.
        #[arg(long)]
        no_edge: bool,
        /// How long to wait for the edge before deciding offline, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = DEFAULT_EDGE_TIMEOUT_MS)]
        edge_timeout_ms: u64,
        /// With a venue hub configured, `--stdin` syncs with it this often (milliseconds; 0: never).
        #[arg(long, value_name = "MS", default_value_t = hub::client::DEFAULT_HUB_SYNC_MS)]
        hub_sync_ms: u64,
    },
    /// Exchange the redemption log with the sync server and refresh the revocation list.
    ///
    /// The server is the one stored by `init --server`, unless --server or --edge names another: the edge
    /// Worker speaks the same protocol, so a device can sync with both, in any order, any number of times.
    Sync {
        /// Sync with this server (base URL) instead, with this device's token.
        #[arg(long, value_name = "URL", conflicts_with = "edge")]
        server: Option<String>,
        /// Sync with the edge Worker stored by `init --edge`.
        #[arg(long, conflicts_with = "hub")]
        edge: bool,
        /// Sync with the venue hub stored by `init --hub`.
        #[arg(long)]
        hub: bool,
    },
    /// The organizer's report: admitted per gate and hour, conflicts (duplicates), refusals by reason.
    Report {
        #[arg(long)]
        json: bool,
        /// Also merge these exported logs (from `scanner export`) into the report, not into this log.
        #[arg(long)]
        merge: Vec<PathBuf>,
    },
    /// Write this device's whole redemption log to a file (for offline merging with `report --merge`).
    Export { out: PathBuf },
    /// A venue hub: a local sync and verdict server for one event (see `scanner hub init --help`).
    Hub(hub::cli::HubArgs),
    /// Supervisor mode: `unlock PASS` (a supervisor pass from the organizer's dashboard, checked offline),
    /// `lock`, `status`. Overrides, undos and admissions after a search need it.
    Supervisor {
        #[command(subcommand)]
        action: SupervisorAction,
    },
    /// Supervisor: undo a ticket's check-in (an append-only record; the ticket admits again). Decided
    /// on this device and synced like every scan. Exit code 0 = recorded, 2 = error (e.g. not checked in).
    Undo {
        /// The ticket's QR text.
        text: String,
        /// Why (recorded with the supervisor's name).
        #[arg(long)]
        reason: String,
        #[arg(long, default_value = "main")]
        gate: String,
        #[arg(long)]
        now: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Supervisor: search the event's orders online (buyer name, email, order id) for an attendee without
    /// their QR code; with --admit TICKET_ID, admit that ticket of the results (decided like a scan).
    /// Offline, the attendee list stays sealed: the search needs a connection to the issuer.
    Search {
        query: String,
        /// Admit this ticket (id from the results).
        #[arg(long, value_name = "TICKET_ID")]
        admit: Option<String>,
        #[arg(long, default_value = "main")]
        gate: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SupervisorAction {
    /// Unlock supervisor mode with a pass (`SUP1:...`).
    Unlock {
        pass: String,
        #[arg(long)]
        now: Option<u64>,
    },
    /// Back to steward mode.
    Lock,
    /// Who is unlocked, and until when.
    Status {
        #[arg(long)]
        now: Option<u64>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn decode_image(path: &Path) -> Result<Option<String>> {
    Ok(scanner_core::qr::decode::decode_file(path)?)
}

fn run(cli: Cli) -> Result<ExitCode> {
    let data = cli.data;
    match cli.command {
        Command::Decode { json, images } => {
            for path in images {
                let started = Instant::now();
                let result = decode_image(&path);
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let text = match result {
                    Ok(text) => text,
                    Err(e) => {
                        eprintln!("{}: {e:#}", path.display());
                        None
                    }
                };
                if json {
                    println!("{}", json!({"file": path.display().to_string(), "text": text, "ms": ms}));
                } else {
                    println!("{}: {}", path.display(), text.as_deref().unwrap_or("(no QR code found)"));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { keyring, revocations, event, now, json, image, text } => {
            let keyring_json = std::fs::read_to_string(&keyring)
                .with_context(|| format!("cannot read keyring {}", keyring.display()))?;
            let keyring = Keyring::from_json(&keyring_json).context("invalid keyring")?;
            let revocations = match revocations {
                Some(path) => {
                    let json = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read revocation list {}", path.display()))?;
                    Some(RevocationList::from_json(&json, &keyring).context("invalid revocation list")?)
                }
                None => None,
            };
            let text = match (text, image) {
                (Some(text), _) => text,
                (None, Some(path)) => {
                    decode_image(&path)?.with_context(|| format!("no QR code found in {}", path.display()))?
                }
                (None, None) => anyhow::bail!("give the ticket text or --image"),
            };
            let now = match now {
                Some(now) => now,
                None => SystemTime::now().duration_since(UNIX_EPOCH).context("system clock before 1970")?.as_secs(),
            };
            let ctx = VerifyContext { keyring: &keyring, revocations: revocations.as_ref(), event_id: event, now };
            let verdict = verify_text(text.trim(), &ctx);
            match (&verdict, json) {
                (Ok(t), true) => println!(
                    "{}",
                    json!({"valid": true, "event_id": t.event_id, "ticket_type": t.ticket_type,
                           "addons": t.addons, "policy": t.policy, "key_id": t.key_id,
                           "valid_from": t.valid_from, "valid_until": t.valid_until})
                ),
                (Ok(t), false) => println!(
                    "VALID: event {}, ticket type {}, add-ons {:#06x}, {:?}, signed by key {}",
                    t.event_id, t.ticket_type, t.addons, t.policy, t.key_id
                ),
                (Err(r), true) => println!("{}", json!({"valid": false, "reason": r.code(), "message": r.to_string()})),
                (Err(r), false) => println!("REFUSED: {r}"),
            }
            Ok(if verdict.is_ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Init {
            setup,
            server,
            token,
            event,
            keyring_sha256,
            name,
            keyring,
            revocations,
            manifest,
            gate_rules,
            edge,
            hub,
            hub_cert_sha256,
        } => {
            // The setup link's hub (and its certificate pin) go the same way as --hub/--hub-cert-sha256;
            // --hub on the command line wins over the link's.
            let (hub, hub_cert_sha256) = match (&setup, hub) {
                (Some(link), None) => {
                    let link = scanner_core::setup::SetupLink::parse(link)?;
                    (link.hub, link.hub_cert_sha256)
                }
                (_, hub) => (hub, hub_cert_sha256),
            };
            let files = SetupFiles { keyring, revocations, manifest, gate_rules };
            let options = InitOptions { setup, server, token, event, keyring_sha256, name, edge };
            let dir = data_dir(data)?;
            // Checked before anything is set up: a bad pin or URL changes nothing.
            if let Some(hex) = &hub_cert_sha256 {
                scanner_core::setup::CertPin::parse(hex)?;
            }
            if let Some(url) = &hub {
                match &hub_cert_sha256 {
                    Some(_) => scanner_core::setup::check_pinned_url(url)?,
                    None => scanner_core::setup::check_server_url(url)?,
                };
            }
            let code = init(&dir, options, files)?;
            if let Some(url) = hub {
                hub::client::set_hub(&dir, &url, hub_cert_sha256.as_deref())?;
            }
            Ok(code)
        }
        Command::Scan {
            gate,
            exit,
            override_reason,
            paid,
            now,
            json,
            stdin,
            image,
            text,
            edge,
            no_edge,
            edge_timeout_ms,
            hub_sync_ms,
        } => {
            let dir = data_dir(data)?;
            let mut log = open_log(&dir)?;
            let kind = if exit { ScanKind::Exit } else { ScanKind::Entry };
            // This command's explicit --edge overrides the configured choice (and the hub's sync loop).
            let venue_hub = if edge.is_none() { hub::client::venue_hub(&dir)? } else { None };
            let verifier = match (no_edge, edge) {
                (true, _) => None,
                (false, Some(url)) => Some(OnlineVerifier::Edge(url)),
                (false, None) => configured_verifier(venue_hub.as_ref(), &log)?,
            };
            let pin =
                venue_hub.as_ref().and_then(|h| h.pin).filter(|_| matches!(verifier, Some(OnlineVerifier::Hub(_))));
            let edge = verifier.map(|v| EdgeClient::new(&log, &v, pin, edge_timeout_ms)).transpose()?;
            let action = match (paid, override_reason) {
                (true, _) => DoorAction::ConfirmPaid,
                (false, Some(reason)) => DoorAction::Override(reason),
                (false, None) => DoorAction::Scan,
            };
            let options = ScanOptions { gate: &gate, kind, action, now, json, edge };
            if stdin && venue_hub.is_some() && hub_sync_ms > 0 {
                let every = Duration::from_millis(hub_sync_ms);
                return hub::client::door_loop(&dir, &mut log, every, |log, line| scan_at_door(log, line, &options));
            }
            if stdin {
                let mut code = ExitCode::SUCCESS;
                for line in std::io::stdin().lock().lines() {
                    let line = line.context("cannot read standard input")?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    code = scan_one(&mut log, &line, &options)?;
                    if log.should_fold() {
                        log.fold_pending(now_secs(now)?)?;
                    }
                }
                log.fold_pending(now_secs(now)?)?;
                return Ok(code);
            }
            let text = match (text, image) {
                (Some(text), _) => text,
                // Nothing readable is still a scan: it is recorded and refused.
                (None, Some(path)) => decode_image(&path)?.unwrap_or_default(),
                (None, None) => anyhow::bail!("give the ticket text, --image or --stdin"),
            };
            let code = scan_one(&mut log, &text, &options)?;
            if log.should_fold() {
                log.fold_pending(now_secs(now)?)?;
            }
            Ok(code)
        }
        Command::Sync { server, edge, hub } => {
            let dir = data_dir(data)?;
            let (server, pin) = match (server, hub) {
                (Some(url), _) => (Some(url), None),
                (None, true) => {
                    let hub = hub::client::venue_hub(&dir)?
                        .context("this scanner has no hub (run `scanner init --hub URL`)")?;
                    (Some(hub.url), hub.pin)
                }
                (None, false) => (None, None),
            };
            sync(&dir, server, pin, edge)
        }
        Command::Hub(args) => hub::cli::run(&data_dir(data)?, args),
        Command::Report { json, merge } => {
            let mut log = open_log(&data_dir(data)?)?;
            let now = now_secs(None)?;
            let report = if merge.is_empty() {
                log.report(now)?
            } else {
                let mut logs = vec![log.export(now)?];
                for path in &merge {
                    logs.push(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?);
                }
                let merged = scanner_core::redemption::RedemptionDoc::merge_saved(logs.iter().map(Vec::as_slice))
                    .context("cannot merge the logs")?;
                scanner_core::redemption::EventReport::from_logs(&merged.device_logs()?)
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_table());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Supervisor { action } => {
            let mut log = open_log(&data_dir(data)?)?;
            match action {
                SupervisorAction::Unlock { pass, now } => {
                    let (name, until) = log.unlock_supervisor(&pass, now_ms(now)? / 1000)?;
                    println!("supervisor mode: {name}, until {}", format_utc(u64::from(until)));
                }
                SupervisorAction::Lock => {
                    log.lock_supervisor()?;
                    println!("steward mode");
                }
                SupervisorAction::Status { now } => match log.scanner().supervisor(now_ms(now)? / 1000) {
                    Some(p) => println!("supervisor mode: {}, until {}", p.name, format_utc(u64::from(p.not_after))),
                    None => println!("steward mode"),
                },
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Undo { text, reason, gate, now, json } => {
            let mut log = open_log(&data_dir(data)?)?;
            let options = ScanOptions {
                gate: &gate,
                kind: ScanKind::Entry,
                action: DoorAction::Undo(reason),
                now,
                json,
                edge: None,
            };
            let code = scan_one(&mut log, &text, &options)?;
            log.fold_pending(now_secs(now)?)?;
            Ok(code)
        }
        Command::Search { query, admit, gate, json } => search(&data_dir(data)?, &query, admit.as_deref(), &gate, json),
        Command::Export { out } => {
            let mut log = open_log(&data_dir(data)?)?;
            let bytes = log.export(now_secs(None)?)?;
            std::fs::write(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!("{} records, {} bytes written to {}", log.record_count(), bytes.len(), out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn data_dir(arg: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = arg.or_else(|| std::env::var_os("SCANNER_DATA").map(PathBuf::from)) {
        return Ok(dir);
    }
    let home = std::env::var_os("HOME").context("set --data, $SCANNER_DATA or $HOME")?;
    Ok(PathBuf::from(home).join(".local/share/offline-tickets/scanner"))
}

fn open_log(dir: &Path) -> Result<RedemptionLog> {
    RedemptionLog::open(dir).with_context(|| format!("cannot open the redemption log in {}", dir.display()))
}

fn now_ms(now: Option<u64>) -> Result<u64> {
    match now {
        Some(secs) => Ok(secs.saturating_mul(1000)),
        None => {
            Ok(SystemTime::now().duration_since(UNIX_EPOCH).context("system clock before 1970")?.as_millis() as u64)
        }
    }
}

fn now_secs(now: Option<u64>) -> Result<i64> {
    Ok(i64::try_from(now_ms(now)? / 1000).unwrap_or(i64::MAX))
}

struct ScanOptions<'a> {
    gate: &'a str,
    kind: ScanKind,
    /// Scan, `--paid`, `--override REASON` (supervisor), `undo` (supervisor).
    action: DoorAction,
    now: Option<u64>,
    json: bool,
    edge: Option<EdgeClient>,
}

/// The server this device asks for online verdicts, as configured (`init --hub`, `init --edge`, or the
/// setup link's): scanner-core's choice, the same as the PWA's.
fn configured_verifier(hub: Option<&hub::client::VenueHub>, log: &RedemptionLog) -> Result<Option<OnlineVerifier>> {
    Ok(OnlineVerifier::choose(hub.map(|h| h.url.as_str()), log.edge()?.as_deref()))
}

/// The server a scan asks first (scanner-core's [`OnlineVerifier`]: a venue hub or the edge Worker).
struct EdgeClient {
    url: String,
    token: Option<String>,
    timeout: Duration,
    agent: ureq::Agent,
}

impl EdgeClient {
    /// A client for `verifier`. `pin`: a venue hub's certificate pin (the hub is then accepted by it only).
    fn new(log: &RedemptionLog, verifier: &OnlineVerifier, pin: Option<CertPin>, timeout_ms: u64) -> Result<Self> {
        // The same rule as at setup: https, plain http only to this machine.
        let url = scanner_core::setup::check_server_url(verifier.url())?;
        let timeout = Duration::from_millis(timeout_ms);
        // The timeout bounds the request thread too, so a blackholed edge leaves no thread behind for long.
        let agent = tls::http_agent(timeout, pin)?;
        Ok(Self { url: format!("{}{REDEEM_PATH}", url.trim_end_matches('/')), token: log.token()?, timeout, agent })
    }

    /// Asks the edge the plan's question. The deadline is kept by waiting on a channel, not only by the
    /// HTTP client's timeout, so a slow name lookup cannot hold the steward up either.
    fn ask(&self, question: &EdgeQuestion) -> EdgeAnswer {
        let (agent, url, token, body) =
            (self.agent.clone(), self.url.clone(), self.token.clone(), question.body.clone());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut request = agent.post(&url).header("Content-Type", "application/json");
            if let Some(token) = &token {
                request = request.header("Authorization", &format!("Bearer {token}"));
            }
            let reply = request.send(body.as_str()).map_err(|e| e.to_string()).and_then(|mut resp| {
                let status = resp.status().as_u16();
                if status == 429 {
                    // The hub's per-device limit: no question to it before the time it gave.
                    hub::client::server_asked_to_wait(retry_after(&resp));
                }
                let body = resp
                    .body_mut()
                    .with_config()
                    .limit(MAX_EDGE_REPLY_BYTES as u64)
                    .read_to_vec()
                    .map_err(|e| e.to_string())?;
                Ok((status, body))
            });
            // The receiver is gone if the scan already fell back: nothing to do then.
            let _ = tx.send(reply);
        });
        match rx.recv_timeout(self.timeout) {
            Ok(Ok((status, body))) => EdgeAnswer::Reply { status, body },
            Ok(Err(e)) if e.contains("timeout") || e.contains("Timeout") => EdgeAnswer::Failed("timeout".to_owned()),
            Ok(Err(e)) => EdgeAnswer::Failed(format!("unreachable: {e}")),
            Err(_) => EdgeAnswer::Failed("timeout".to_owned()),
        }
    }
}

/// One request at the door through scanner-core's scan policy (plan → ask the edge → finish), printed.
fn scan_one(log: &mut RedemptionLog, text: &str, options: &ScanOptions<'_>) -> Result<ExitCode> {
    Ok(scan_at_door(log, text, options)?.0)
}

/// [`scan_one`], also saying whether the server asked (hub or edge) decided the scan: then it holds it
/// already, otherwise the door loop sends it at once ([`scanner_core::redemption::SyncSchedule`]).
fn scan_at_door(log: &mut RedemptionLog, text: &str, options: &ScanOptions<'_>) -> Result<(ExitCode, bool)> {
    let now_ms = now_ms(options.now)?;
    let request = ScanRequest {
        text: text.to_owned(),
        kind: options.kind,
        gate: options.gate.to_owned(),
        action: options.action.clone(),
    };
    let mut edge_ms = None;
    let recorded = match log.plan(request, options.edge.is_some(), now_ms)? {
        ScanPlan::Decided(outcome) => outcome,
        ScanPlan::AskEdge(question) => {
            let started = Instant::now();
            let answer = match (&options.edge, hub::client::server_waiting()) {
                // It answered 429 a moment ago: decided here without asking, until the time it gave.
                (Some(_), Some(left)) => EdgeAnswer::Failed(format!(
                    "not asked: the server asked to wait {} s more (HTTP 429)",
                    left.as_secs_f64().ceil()
                )),
                (Some(edge), None) => edge.ask(&question),
                (None, _) => EdgeAnswer::Failed("no edge configured".to_owned()),
            };
            edge_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
            log.finish(question, answer, now_ms)?
        }
    };
    let decided_by_server = recorded.path == scanner_core::redemption::DecisionPath::Edge;
    Ok((print_outcome(&recorded, options.json, edge_ms)?, decided_by_server))
}

/// A 429 answer's `Retry-After` in seconds (at least 1; 1 when missing or not a number of seconds).
fn retry_after<B>(resp: &ureq::http::Response<B>) -> Duration {
    let secs = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1);
    // A hostile or broken server cannot park this device for days: at most ten minutes.
    Duration::from_secs(secs.clamp(1, 600))
}

/// Prints a recorded outcome (it is on disk: only now is the verdict shown) and returns the exit code.
fn print_outcome(recorded: &RecordedScan, json: bool, edge_ms: Option<f64>) -> Result<ExitCode> {
    let RecordedScan { verdict, seq, path, edge_note, .. } = recorded;
    let mut out = std::io::stdout().lock();
    if json {
        let mut value = serde_json::to_value(verdict)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("seq".into(), json!(seq));
            obj.insert("message".into(), json!(verdict.message()));
            obj.insert("path".into(), json!(path.as_str()));
            obj.insert("edge_error".into(), json!(edge_note));
            obj.insert("edge_ms".into(), json!(edge_ms));
        }
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "{}  [{}]", verdict.message(), path.as_str())?;
    }
    out.flush()?;
    if let Some(e) = edge_note {
        eprintln!("note: decided offline, the edge was not used: {e}");
    }
    Ok(match verdict {
        Verdict::Admit(_) | Verdict::Exit { .. } | Verdict::Undone(_) => ExitCode::SUCCESS,
        Verdict::AlreadyUsed(_) | Verdict::Refused { .. } => ExitCode::from(1),
        Verdict::PaymentDue(_) => ExitCode::from(3),
    })
}

/// The online attendee search (supervisors), and admitting a ticket found by it.
fn search(dir: &Path, query: &str, admit: Option<&str>, gate: &str, json: bool) -> Result<ExitCode> {
    let mut log = open_log(dir)?;
    let (server, token) = log.server()?.context(
        "this scanner has no issuer to search (the attendee list on the device is sealed: search needs a connection)",
    )?;
    let event = log.event_id().context("this scanner has no event")?;
    let pass = log
        .supervisor_pass()?
        .filter(|_| log.scanner().supervisor(now_ms(None).unwrap_or_default() / 1000).is_some())
        .context("only a supervisor may search: run `scanner supervisor unlock PASS` first")?;
    let issuer = Issuer::new(&scanner_core::setup::check_server_url(&server)?, &token);
    let body = issuer
        .get_text_with(&search_path(event, query), &[(SUPERVISOR_PASS_HEADER, &pass)])
        .context("search failed (it needs a connection to the issuer)")?;
    let results: SearchResults = serde_json::from_str(&body).context("the issuer's search answer is not valid")?;
    let Some(ticket_id) = admit else {
        if json {
            println!("{}", serde_json::to_string(&results)?);
        } else {
            for o in &results.orders {
                println!("order {}  {} <{}>  {}", o.order_id, o.buyer_name, o.email, o.status);
                for t in &o.tickets {
                    let revoked = if t.revoked { "  REVOKED" } else { "" };
                    println!("    ticket {}  {}  {}{revoked}", t.ticket_id, t.holder, t.ticket_type_name);
                }
            }
            if results.truncated {
                println!("(more orders match: search more precisely)");
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let found = results
        .orders
        .iter()
        .flat_map(|o| &o.tickets)
        .find(|t| t.ticket_id == ticket_id)
        .with_context(|| format!("ticket {ticket_id} is not among the results"))?;
    let venue_hub = hub::client::venue_hub(dir)?;
    let verifier = configured_verifier(venue_hub.as_ref(), &log)?;
    let pin = venue_hub.and_then(|h| h.pin).filter(|_| matches!(verifier, Some(OnlineVerifier::Hub(_))));
    let edge = verifier.map(|v| EdgeClient::new(&log, &v, pin, DEFAULT_EDGE_TIMEOUT_MS)).transpose()?;
    let options = ScanOptions { gate, kind: ScanKind::Entry, action: DoorAction::AdmitFound, now: None, json, edge };
    let code = scan_one(&mut log, &found.qr_text, &options)?;
    log.fold_pending(now_secs(None)?)?;
    Ok(code)
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_owned()).unwrap_or_else(|_| "scanner".to_owned())
}

/// A blocking HTTP client for the issuer.
struct Issuer {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Issuer {
    fn new(base: &str, token: &str) -> Self {
        Self::with_timeout(base, token, Duration::from_secs(60))
    }

    /// A client whose every request gives up after `timeout`.
    fn with_timeout(base: &str, token: &str, timeout: Duration) -> Self {
        let agent =
            ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build().into();
        Self::with_agent(base, token, agent)
    }

    /// A client over a given agent (e.g. a venue hub's, with its certificate pin).
    fn with_agent(base: &str, token: &str, agent: ureq::Agent) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), token: token.to_owned(), agent }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn check(&self, path: &str, status: u16) -> Result<()> {
        match status {
            200..=299 => Ok(()),
            401 | 403 => anyhow::bail!("{path}: the server refused this device's token (HTTP {status})"),
            _ => anyhow::bail!("{path}: HTTP {status}"),
        }
    }

    fn get_text(&self, path: &str) -> Result<String> {
        self.get_text_with(path, &[])
    }

    /// [`Self::get_text`], with `None` for a 404 (the server does not serve this).
    fn get_optional_text(&self, path: &str) -> Result<Option<String>> {
        let mut resp = self
            .agent
            .get(&self.url(path))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()
            .with_context(|| format!("cannot reach {}", self.url(path)))?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        self.check(path, status)?;
        Ok(Some(resp.body_mut().with_config().limit(256 << 20).read_to_string()?))
    }

    fn get_text_with(&self, path: &str, headers: &[(&str, &str)]) -> Result<String> {
        let mut request = self.agent.get(&self.url(path)).header("Authorization", &format!("Bearer {}", self.token));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut resp = request.call().with_context(|| format!("cannot reach {}", self.url(path)))?;
        let status = resp.status().as_u16();
        if !(200..=299).contains(&status) {
            let body = resp.body_mut().with_config().limit(64 << 10).read_to_string().unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    let m = v.pointer("/error/message").or_else(|| v.get("message"))?;
                    m.as_str().map(str::to_owned)
                })
                .unwrap_or_default();
            if !message.is_empty() {
                anyhow::bail!("{}: HTTP {status}: {message}", path.split('?').next().unwrap_or(path));
            }
            self.check(path, status)?;
        }
        Ok(resp.body_mut().with_config().limit(256 << 20).read_to_string()?)
    }

    /// POST with no body (a command, e.g. the hub's push); returns the answer's body.
    fn post_empty(&self, path: &str) -> Result<String> {
        let mut resp = self
            .agent
            .post(&self.url(path))
            .header("Authorization", &format!("Bearer {}", self.token))
            .send_empty()
            .with_context(|| format!("cannot reach {}", self.url(path)))?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().with_config().limit(1 << 20).read_to_string().unwrap_or_default();
        if !(200..=299).contains(&status) {
            anyhow::bail!("{path}: HTTP {status}: {body}");
        }
        Ok(body)
    }

    /// One sync round trip: POST the message, get the reply (204 = nothing to say).
    fn sync(&self, event: Option<u32>, channel: SyncChannel, message: &[u8]) -> Result<Option<Vec<u8>>> {
        let path = sync_path(event, channel);
        let mut resp = self
            .agent
            .post(&self.url(&path))
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "application/octet-stream")
            .send(message)
            .with_context(|| format!("cannot reach {}", self.url(&path)))?;
        let status = resp.status().as_u16();
        // A relay's changes under device ids the server does not know are refused there, not merged: say so.
        let refused = resp.headers().get(REFUSED_CHANGES_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("0");
        if refused != "0" {
            tracing::warn!(refused, server = %self.base, "the server refused changes of devices it does not know");
        }
        if status == 204 {
            return Ok(None);
        }
        if status == 501 {
            anyhow::bail!("the server does not support redemption sync yet (HTTP 501)");
        }
        if status == 429 {
            let wait = retry_after(&resp);
            hub::client::server_asked_to_wait(wait);
            return Err(hub::client::RetryLater(wait).into());
        }
        self.check(&path, status)?;
        let body = resp.body_mut().with_config().limit(64 << 20).read_to_vec()?;
        Ok(if body.is_empty() { None } else { Some(body) })
    }
}

/// Trust material from files, for a fully offline setup.
struct SetupFiles {
    keyring: Option<PathBuf>,
    revocations: Option<PathBuf>,
    manifest: Option<PathBuf>,
    gate_rules: Option<PathBuf>,
}

/// What `scanner init` was told, before the setup link (if any) is unpacked.
struct InitOptions {
    setup: Option<String>,
    server: Option<String>,
    token: Option<String>,
    event: Option<u32>,
    keyring_sha256: Option<String>,
    name: Option<String>,
    edge: Option<String>,
}

fn init(dir: &Path, options: InitOptions, files: SetupFiles) -> Result<ExitCode> {
    use scanner_core::setup::{check_server_url, SetupLink};
    let InitOptions { setup, mut server, mut token, mut event, mut keyring_sha256, mut name, mut edge } = options;
    if let Some(link) = setup {
        let link = SetupLink::parse(&link)?;
        server = Some(link.server);
        token = Some(link.token);
        event = Some(link.event);
        edge = link.edge;
        keyring_sha256 = Some(link.keyring_sha256);
        name = name.or(Some(link.device_name));
    }
    let SetupFiles { keyring, revocations, manifest, gate_rules } = files;
    let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()));
    let Some(event) = event else {
        anyhow::bail!(
            "scanner init needs --event ID (or --setup LINK): a scanner without an event cannot tell this \
             event's tickets from any other event's, so it refuses to start"
        );
    };
    if server.is_none() && keyring.is_none() {
        anyhow::bail!("give --setup LINK, --server URL --token T, or --keyring FILE for an offline setup");
    }
    // Checked before anything is fetched or written: what was checked is what is used.
    let server = server.map(|s| check_server_url(&s)).transpose()?;
    let edge = edge.map(|e| check_server_url(&e)).transpose()?;
    if let Some(pin) = &keyring_sha256 {
        scanner_core::keyring::parse_pin(pin).context("--keyring-sha256")?;
    }
    let check_keyring = |json: &str| -> Result<()> {
        match &keyring_sha256 {
            Some(pin) => {
                Keyring::from_json_pinned(json, pin)?;
            }
            None => {
                Keyring::from_json(json)?;
            }
        }
        Ok(())
    };
    // Everything is fetched (and the keyring checked against its pin) before the device is touched.
    let mut gate_rules_json = gate_rules.as_ref().map(read).transpose()?;
    let (keyring_json, revocations_json, manifest_json) = match (&server, &token) {
        (Some(server), Some(token)) => {
            if keyring_sha256.is_none() {
                eprintln!("warning: the keyring is not pinned (no --keyring-sha256): this device trusts whatever keys {server} serves");
            }
            let issuer = Issuer::new(server, token);
            let keyring_json = issuer.get_text(KEYRING_PATH)?;
            check_keyring(&keyring_json).context("the server's keyring is refused")?;
            let revocations_json = issuer.get_text(&revocations_path(0))?;
            let manifest_json = issuer.get_text(&manifest_path(event))?;
            // A server without gate rules (the edge Worker, which serves the rest of the setup) has none.
            gate_rules_json = issuer.get_optional_text(&gate_rules_path(event))?;
            if gate_rules_json.is_none() {
                eprintln!("note: {server} serves no gate rules: every gate admits every ticket of the event");
            }
            (Some(keyring_json), Some(revocations_json), Some(manifest_json))
        }
        (Some(_), None) => anyhow::bail!("--server needs --token"),
        (None, _) => {
            let keyring_json = keyring.as_ref().map(read).transpose()?;
            if let Some(json) = &keyring_json {
                check_keyring(json).context("invalid keyring")?;
            }
            (keyring_json, revocations.as_ref().map(read).transpose()?, manifest.as_ref().map(read).transpose()?)
        }
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // A device with a token writes under the id bound to it: sync servers take nothing else from it.
    let bound_id = token.as_deref().map(scanner_core::token::device_id_for_token);
    let mut log = RedemptionLog::open_or_create_as(dir, &name.unwrap_or_else(host_name), bound_id)?;
    if log.event_id().is_some_and(|held| held != event) && log.record_count() > 0 {
        anyhow::bail!(
            "this device holds {} scans of event {}: sync or export them and set up a new --data directory for event {event}",
            log.record_count(),
            log.event_id().unwrap_or_default()
        );
    }
    log.set_event(event)?;
    if let Some(json) = &keyring_json {
        log.set_keyring(json).context("invalid keyring")?;
    }
    if let Some(json) = &revocations_json {
        log.set_revocations(json).context("revocation list refused")?;
    }
    if let Some(json) = &manifest_json {
        log.set_manifest(json).context("invalid manifest")?;
    }
    if let Some(json) = &gate_rules_json {
        log.set_gate_rules(json).context("invalid gate rules")?;
    }
    match (&server, &token) {
        (Some(server), Some(token)) => log.set_server(server, token)?,
        // An offline setup may still be given a token, for the edge Worker.
        (None, Some(token)) => log.set_token(token)?,
        _ => {}
    }
    if let Some(edge) = &edge {
        log.set_edge(Some(edge))?;
    }
    println!(
        "device {} ({}) ready in {} for event {event}: {} keys, revocation list version {}, {} records in the log",
        log.device(),
        log.device_name(),
        dir.display(),
        log.keyring().map_or(0, |k| k.entries().count()),
        log.revocations_version(),
        log.record_count()
    );
    Ok(ExitCode::SUCCESS)
}

/// `pin`: the venue hub's certificate pin, when `server` is the hub.
fn sync(dir: &Path, server: Option<String>, pin: Option<CertPin>, edge: bool) -> Result<ExitCode> {
    let mut log = open_log(dir)?;
    let (stored, token) = log.server()?.context("this scanner has no server (run `scanner init --server`)")?;
    let server = match (server, edge) {
        (Some(url), _) => url,
        (None, true) => log.edge()?.context("this scanner has no edge (run `scanner init --edge URL`)")?,
        (None, false) => stored,
    };
    // The same rule as at setup: https, plain http only to this machine (checked before any request).
    let server = scanner_core::setup::check_server_url(&server)?;
    let issuer = match pin {
        Some(pin) => Issuer::with_agent(&server, &token, tls::http_agent(Duration::from_secs(60), Some(pin))?),
        None => Issuer::new(&server, &token),
    };
    let event = log.event_id();
    let started = Instant::now();
    let before = log.record_count();
    let mut sent = 0usize;
    let mut received = 0usize;
    let summary = log.sync_with(&server, now_secs(None)?, |channel, message| {
        sent += message.len();
        // The whole cause chain (e.g. a TLS pin mismatch under "cannot reach"), not only the outer line.
        let reply = issuer.sync(event, channel, message).map_err(|e| format!("{e:#}"));
        if let Ok(Some(r)) = &reply {
            received += r.len();
        }
        eprint!("\rsync: sent {:>9} B, received {:>9} B", sent, received);
        reply
    });
    eprintln!();
    let summary = summary?;
    let since = log.revocations_version();
    match issuer.get_text(&revocations_path(since)) {
        Ok(delta) => log.apply_revocation_delta(&delta).context("the server's revocation update is invalid")?,
        Err(e) => eprintln!("warning: revocation list not refreshed: {e:#}"),
    }
    // Gate rules come from the issuer only: a server that does not serve them (the edge) leaves them as
    // they are.
    if let (Some(event), false) = (event, edge) {
        match issuer.get_optional_text(&gate_rules_path(event)) {
            Ok(Some(json)) => log.set_gate_rules(&json).context("the server's gate rules are invalid")?,
            Ok(None) => {}
            Err(e) => eprintln!("warning: gate rules not refreshed: {e:#}"),
        }
    }
    println!(
        "synced with {server} in {:.1} s: {} round trips, {} B sent, {} B received, {} new records ({} → {}), \
         revocation list version {}",
        started.elapsed().as_secs_f64(),
        summary.round_trips,
        summary.bytes_sent,
        summary.bytes_received,
        summary.new_records,
        before,
        log.record_count(),
        log.revocations_version()
    );
    Ok(ExitCode::SUCCESS)
}
