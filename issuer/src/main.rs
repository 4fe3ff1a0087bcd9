//! `issuer`: the command-line shell over the issuer library.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "issuer", version, about = "Ticket issuer: catalog, orders, payments, signed tickets, email outbox")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(Box<issuer::Config>),
    /// Back up a data directory (online: the issuer may keep running) into one tar file (mode 0600: it
    /// holds the signing keys). The database is copied with SQLite's online backup API; every file is
    /// listed with its SHA-256, which restore checks.
    Backup {
        /// The issuer's data directory (as given to `issuer serve --data-dir`).
        #[arg(long)]
        data: PathBuf,
        /// The archive to write (replaced atomically once complete).
        #[arg(long)]
        to: PathBuf,
        /// The issuer's store, as given to `issuer serve`: a PostgreSQL URL is refused (use pg_dump).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Restore a backup into a new (or empty) data directory, checking every file first.
    Restore {
        /// The archive written by `issuer backup`.
        #[arg(long)]
        from: PathBuf,
        /// The data directory to create; refused if it exists and is not empty.
        #[arg(long)]
        data: PathBuf,
        /// The issuer's store, as given to `issuer serve`: a PostgreSQL URL is refused (use pg_restore).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Create the first owner account (or a fresh invitation for an existing owner) and print the one-time
    /// link that sets its password. Works while the issuer runs (same SQLite file).
    CreateOwner {
        /// The owner's email address.
        email: String,
        /// The issuer's data directory (as given to `issuer serve --data-dir`).
        #[arg(long, env = "ISSUER_DATA_DIR", default_value = "issuer-data")]
        data_dir: PathBuf,
        /// The issuer's store (as `issuer serve --database-url`; default: the SQLite file in DATA_DIR).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Base URL the dashboard is reached at (as `issuer serve --public-url`).
        #[arg(long, env = "ISSUER_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
        public_url: String,
    },
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a signing key with the next free key id: the private key goes (0600) into OUT, the public
    /// half into the keyring file.
    Generate {
        #[arg(long, default_value = "keys/keyring.json")]
        keyring: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Rotate the signing key of an issuer data directory: a new key (next key id, private file 0600 in
    /// DATA/keys) joins the keyring, valid from now, and the current key stays valid for HOURS more, so
    /// tickets and revocation lists it signed keep verifying through the overlap. Restart the issuer to
    /// sign with the new key; then publish the new keyring to the edge and set scanners up again.
    Rotate {
        /// The issuer's data directory (as given to `issuer serve --data-dir`).
        #[arg(long)]
        data: PathBuf,
        /// The keyring file, if not DATA/keyring.json.
        #[arg(long)]
        keyring: Option<PathBuf>,
        /// How long the old key stays valid, in hours. Tickets it signed stop verifying after that: make
        /// it reach past the last event they are for.
        #[arg(long, default_value_t = 720)]
        overlap: u64,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Keys { command: KeysCommand::Generate { keyring, out } } => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
            let key = issuer::keys::generate(&keyring, &out, now)?;
            println!("generated key {} (private key in {})", key.key_id(), out.display());
            Ok(())
        }
        Command::Keys { command: KeysCommand::Rotate { data, keyring, overlap } } => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
            let keyring = keyring.unwrap_or_else(|| data.join("keyring.json"));
            let overlap_secs = overlap.checked_mul(3600).context("--overlap is too large")?;
            let r = issuer::keys::rotate(&keyring, &data.join("keys"), now, overlap_secs)?;
            let retired: Vec<String> = r.retired.iter().map(ToString::to_string).collect();
            println!(
                "new signing key {} (private key {}); key(s) [{}] valid until {} (Unix time, {overlap} h from now). \
                 Restart the issuer to sign with the new key, publish {} to the edge and set scanners up again.",
                r.new_key,
                r.private.display(),
                retired.join(", "),
                r.until,
                keyring.display()
            );
            Ok(())
        }
        Command::CreateOwner { email, data_dir, database_url, public_url } => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let link = rt.block_on(async {
                std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
                let db =
                    issuer::db::Db::open(database_url.as_deref(), &data_dir, issuer::config::Synchronous::Full).await?;
                let link = issuer::staff::invite::create_owner(&db, &public_url, &email).await;
                db.close().await;
                anyhow::Ok(link?)
            })?;
            println!("Owner {email}: open this link once, within 7 days, to set the password:\n{link}");
            Ok(())
        }
        Command::Backup { data, to, database_url } => {
            issuer::backup::require_sqlite(database_url.as_deref())?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
            let done = issuer::backup::backup(&data, &to, now)?;
            println!(
                "backed up {} files ({} bytes) from {} to {}",
                done.files,
                done.bytes,
                data.display(),
                to.display()
            );
            Ok(())
        }
        Command::Restore { from, data, database_url } => {
            issuer::backup::require_sqlite(database_url.as_deref())?;
            let done = issuer::backup::restore(&from, &data)?;
            println!(
                "restored {} files ({} bytes, backup taken at Unix time {}) into {}",
                done.files,
                done.bytes,
                done.created_at,
                data.display()
            );
            Ok(())
        }
        Command::Serve(config) => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(serve(*config))
        }
    }
}

async fn serve(config: issuer::Config) -> anyhow::Result<()> {
    let running = issuer::start(config).await.context("starting the issuer")?;
    println!("listening on {}", running.url());
    let stop = running.shutdown_handle();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    let _ = stop.send(true);
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    running.wait().await;
    Ok(())
}
