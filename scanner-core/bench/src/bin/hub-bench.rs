//! `hub-bench`: the venue hub (`scanner hub`, the release binary) on loopback, set up from fixture files
//! with no issuer reachable. Prints one JSON object (scripts/hub-bench.sh → bench/out/hub.json):
//!
//! - `redeem`: online verdicts the hub sustains: `--clients` threads each redeeming distinct tickets over
//!   keep-alive connections for `--seconds`; every admission is appended and fsync'd before its answer.
//!   Redemptions per second, p50/p99 latency. The hub runs with its per-device request limit off
//!   (`--device-rate 0`): this measures the hub, and one client thread asks far faster than a door.
//! - `already_used_online_ms`: an admission at device A through the hub, then the same ticket at device B:
//!   B's "already used" comes from the hub in one round trip (p50/p99 of that round trip).
//! - `propagation`: devices deciding on their own (no verdict from the hub) that sync with it by the door
//!   loop's rule (scanner-core's `SyncSchedule`: every `--sync-ms`, 2 s by default, and at once after a
//!   scan the hub did not decide), with independent phases: the time from an admission at A until B's log
//!   holds it (B would then answer "already used"), over `--rounds` tickets.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use scanner_core::fixtures::{issuer, TicketBuilder, EVENT};
use scanner_core::redemption::decision::ScanInput;
use scanner_core::redemption::{DeviceId, RedemptionLog, ScanKind, SyncChannel, SyncSchedule, TicketRef};
use scanner_core::token::{device_id_for_token, token_hash_hex};
use scanner_core::wire::{sync_path, RedeemRequest, REDEEM_PATH};
use scanner_core::IssuerKey;
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// The `scanner` binary (release build).
    #[arg(long)]
    scanner: PathBuf,
    #[arg(long, default_value_t = 8)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 2000)]
    sync_ms: u64,
    #[arg(long, default_value_t = 10)]
    rounds: usize,
}

struct Hub {
    child: Child,
    url: String,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first device token number of the propagation rounds' door devices.
const FIRST_DOOR: usize = 1000;
const HUB_TOKEN: &str = "hub-bench-hub-token";
const EDGE_TOKEN: &str = "hub-bench-edge-token";

fn device_token(n: usize) -> String {
    format!("hub-bench-device-{n}")
}

/// The hub's files as `scanner hub init` writes them, from the fixtures' issuer.
fn set_up_hub(data: &Path, devices: usize, rounds: usize) -> Result<()> {
    let dir = data.join("hub");
    std::fs::create_dir_all(&dir)?;
    let (_, keyring) = issuer();
    let config = json!({"server": "http://127.0.0.1:9", "token": HUB_TOKEN, "edge_token": EDGE_TOKEN,
                        "event": EVENT, "name": "hub"});
    std::fs::write(dir.join("hub.json"), config.to_string())?;
    std::fs::write(dir.join("keyring.json"), keyring.to_json())?;
    std::fs::write(dir.join("revocations.json"), scanner_core::RevocationList::new().to_json())?;
    std::fs::write(dir.join("manifest.json"), scanner_core::manifest::Manifest::new(EVENT, 0).to_json())?;
    let doors = FIRST_DOOR..FIRST_DOOR + 2 * rounds;
    let mut hashes: Vec<String> = (0..devices).chain(doors).map(|n| token_hash_hex(&device_token(n))).collect();
    hashes.push(token_hash_hex(HUB_TOKEN));
    std::fs::write(dir.join("devices.json"), json!({"event": EVENT, "token_hashes": hashes}).to_string())?;
    Ok(())
}

fn start_hub(scanner: &Path, data: &Path) -> Result<Hub> {
    let mut child = Command::new(scanner)
        .arg("--data")
        .arg(data)
        .args(["hub", "--event", &EVENT.to_string(), "--listen", "127.0.0.1:0", "--upstream-every", "0"])
        .args(["--device-rate", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start the hub")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("hub stdout")?).read_line(&mut line)?;
    let url = line.trim().rsplit(' ').next().context("hub url")?.to_owned();
    Ok(Hub { child, url })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into()
}

fn qr(key: &IssuerKey, n: u64) -> String {
    TicketBuilder::numbered(n, EVENT).qr(key)
}

/// One redeem; returns the verdict tag and the round trip in ms.
fn redeem(agent: &ureq::Agent, url: &str, token: &str, device: DeviceId, text: &str) -> Result<(String, f64)> {
    let body = RedeemRequest {
        qr_text: text.to_owned(),
        event: EVENT,
        device,
        device_name: String::new(),
        gate: "North".into(),
        kind: ScanKind::Entry,
        addon: None,
    }
    .to_json();
    let started = Instant::now();
    let mut resp = agent
        .post(&format!("{url}{REDEEM_PATH}"))
        .header("Authorization", &format!("Bearer {token}"))
        .send(body.as_str())?;
    let text = resp.body_mut().read_to_string()?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| text.clone())?;
    Ok((v["verdict"].as_str().unwrap_or("?").to_owned(), ms))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    (sorted[i] * 100.0).round() / 100.0
}

fn redeem_throughput(hub: &Hub, clients: usize, seconds: u64) -> Result<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let url = hub.url.clone();
            std::thread::spawn(move || -> Result<(Vec<f64>, usize)> {
                // The fixtures' issuer key, one per thread (the key type is deliberately not `Clone`).
                let (key, _) = issuer();
                let agent = agent();
                let token = device_token(c);
                let device = device_id_for_token(&token);
                let mut latencies = Vec::new();
                let mut admitted = 0;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let ticket = 1_000_000 * (c as u64 + 1) + n;
                    n += 1;
                    let (verdict, ms) = redeem(&agent, &url, &token, device, &qr(&key, ticket))?;
                    admitted += usize::from(verdict == "admit");
                    latencies.push(ms);
                }
                Ok((latencies, admitted))
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut admitted = 0;
    for t in threads {
        let (l, a) = t.join().map_err(|_| anyhow::anyhow!("client thread panicked"))??;
        all.extend(l);
        admitted += a;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    Ok(json!({"clients": clients, "redemptions": all.len(), "admitted": admitted,
              "per_s": (all.len() as f64 / elapsed).round(), "p50_ms": percentile(&all, 0.5),
              "p99_ms": percentile(&all, 0.99)}))
}

fn already_used_online(hub: &Hub, key: &IssuerKey, rounds: usize) -> Result<serde_json::Value> {
    let agent = agent();
    let (a, b) = (device_token(0), device_token(1));
    let mut round_trips = Vec::new();
    for r in 0..rounds {
        // Far from the throughput clients' ticket numbers (1e6 × client + n).
        let text = qr(key, 100_000_000 + r as u64);
        let (first, _) = redeem(&agent, &hub.url, &a, device_id_for_token(&a), &text)?;
        let (second, ms) = redeem(&agent, &hub.url, &b, device_id_for_token(&b), &text)?;
        anyhow::ensure!(
            first == "admit" && second == "already_used",
            "expected admit then already_used: {first}, {second}"
        );
        round_trips.push(ms);
    }
    round_trips.sort_by(f64::total_cmp);
    Ok(json!({"rounds": rounds, "p50_ms": percentile(&round_trips, 0.5), "p99_ms": percentile(&round_trips, 0.99)}))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A door device deciding on its own (sled log, as the CLI keeps it) that syncs with the hub by the door
/// loop's schedule.
struct Door {
    log: RedemptionLog,
    token: String,
    schedule: SyncSchedule,
}

impl Door {
    fn new(dir: &Path, n: usize, every: Duration, phase: Duration) -> Result<Self> {
        let token = device_token(n);
        let mut log = RedemptionLog::open_or_create_as(dir, &format!("door {n}"), Some(device_id_for_token(&token)))?;
        log.set_keyring(&issuer().1.to_json())?;
        log.set_event(EVENT)?;
        let schedule = SyncSchedule::new(every.as_millis() as u64, now_ms() + phase.as_millis() as u64);
        Ok(Self { log, token, schedule })
    }

    /// Syncs if the schedule says so; returns whether it did.
    fn sync_if_due(&mut self, agent: &ureq::Agent, url: &str) -> Result<bool> {
        if !self.schedule.due(now_ms()) {
            return Ok(false);
        }
        self.sync(agent, url)?;
        self.schedule.synced(now_ms());
        Ok(true)
    }

    fn sync(&mut self, agent: &ureq::Agent, url: &str) -> Result<()> {
        let token = self.token.clone();
        let now = i64::try_from(now_ms() / 1000).unwrap_or(0);
        self.log.sync_with(url, now, |channel: SyncChannel, message: &[u8]| -> Result<Option<Vec<u8>>> {
            let mut resp = agent
                .post(&format!("{url}{}", sync_path(Some(EVENT), channel)))
                .header("Authorization", &format!("Bearer {token}"))
                .send(message)?;
            if resp.status().as_u16() == 204 {
                return Ok(None);
            }
            anyhow::ensure!(resp.status().as_u16() == 200, "sync answered {}", resp.status());
            Ok(Some(resp.body_mut().with_config().limit(64 << 20).read_to_vec()?))
        })?;
        Ok(())
    }
}

fn propagation(
    hub: &Hub,
    key: &IssuerKey,
    work: &Path,
    sync_every: Duration,
    rounds: usize,
) -> Result<serde_json::Value> {
    let agent = agent();
    // Independent phases, as two phones started at different times: B lags A by a different fraction of
    // the interval each round (spread evenly over the interval).
    let mut samples = Vec::new();
    for r in 0..rounds {
        let dir = work.join(format!("round-{r}"));
        let phase = sync_every.mul_f64((r as f64 + 0.5) / rounds as f64);
        // Fresh devices each round (a device id writes one log, ever): tokens after the throughput clients'.
        let mut a = Door::new(&dir.join("a"), FIRST_DOOR + 2 * r, sync_every, Duration::ZERO)?;
        let mut b = Door::new(&dir.join("b"), FIRST_DOOR + 2 * r + 1, sync_every, phase)?;
        // The admission happens at a uniformly spread moment of A's interval too.
        let admit_at = Instant::now() + sync_every.mul_f64(((r * 7) % rounds) as f64 / rounds as f64);
        let text = qr(key, 200_000_000 + r as u64);
        let ticket = TicketRef::of(&scanner_core::SignedTicket::from_qr_text(&text)?.ticket.ticket_id);
        let mut admitted: Option<Instant> = None;
        let deadline = Instant::now() + sync_every * 10;
        loop {
            let now = Instant::now();
            anyhow::ensure!(now < deadline, "B never learnt of A's admission");
            if admitted.is_none() && now >= admit_at {
                let input = ScanInput { text: &text, kind: ScanKind::Entry, override_reason: None };
                let scan = a.log.scan(input, "North", now_ms())?;
                anyhow::ensure!(scan.verdict.is_admit(), "A admits");
                // Decided on the device, not by the hub: the schedule sends it at once.
                a.schedule.scanned(false);
                admitted = Some(now);
            }
            a.sync_if_due(&agent, &hub.url)?;
            if b.sync_if_due(&agent, &hub.url)? {
                if let Some(t0) = admitted {
                    if !b.log.index().history(&ticket).is_empty() {
                        samples.push(t0.elapsed().as_secs_f64() * 1000.0);
                        break;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / samples.len().max(1) as f64;
    Ok(json!({"sync_ms": sync_every.as_millis() as u64, "rounds": rounds, "mean_ms": mean.round(),
              "p50_ms": percentile(&samples, 0.5), "max_ms": percentile(&samples, 1.0)}))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let work = std::env::temp_dir().join(format!("hub-bench-{}", std::process::id()));
    let data = work.join("hub-data");
    set_up_hub(&data, args.clients.max(4), args.rounds)?;
    let hub = start_hub(&args.scanner, &data)?;
    let (key, _) = issuer();
    let result = (|| -> Result<serde_json::Value> {
        let redeem = redeem_throughput(&hub, args.clients, args.seconds)?;
        let online = already_used_online(&hub, &key, args.rounds.max(20))?;
        let propagation = propagation(&hub, &key, &work, Duration::from_millis(args.sync_ms), args.rounds)?;
        Ok(json!({"redeem": redeem, "already_used_online_ms": online, "propagation": propagation}))
    })();
    drop(hub);
    let _ = std::fs::remove_dir_all(&work);
    println!("{}", result?);
    Ok(())
}
