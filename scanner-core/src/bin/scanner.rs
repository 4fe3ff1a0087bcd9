//! `scanner`: the door-side command line. A thin shell over scanner-core.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use scanner_core::verify::verify_text;
use scanner_core::{Keyring, RevocationList, VerifyContext};
use serde_json::json;

#[derive(Parser)]
#[command(name = "scanner", version, about = "Verify and decode offline-first signed tickets")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

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
        /// Only admit tickets for this event id.
        #[arg(long)]
        event: Option<u32>,
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
    let img = image::open(path).with_context(|| format!("cannot read image {}", path.display()))?.to_luma8();
    Ok(scanner_core::qr::decode::decode_luma(img.width() as usize, img.height() as usize, img.as_raw()))
}

fn run(cli: Cli) -> Result<ExitCode> {
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
                (None, Some(path)) => decode_image(&path)?
                    .with_context(|| format!("no QR code found in {}", path.display()))?,
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
                (Err(r), true) => println!(
                    "{}",
                    json!({"valid": false, "reason": r.code(), "message": r.to_string()})
                ),
                (Err(r), false) => println!("REFUSED: {r}"),
            }
            Ok(if verdict.is_ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}
