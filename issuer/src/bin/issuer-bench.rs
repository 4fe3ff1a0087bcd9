//! `issuer-bench`: durable orders per second and latency at a fixed offered load.
//!
//! Starts the `issuer` binary (next to this one) on a fresh data directory, measures its idle RSS, creates an
//! event whose capacity is smaller than the number of orders offered, then sends orders open-loop at a fixed
//! rate from a load generator on loopback (latency is measured from each request's scheduled time, so a
//! stalled server cannot hide queueing). Prints one JSON object. Every 201 is a committed (fsynced with the
//! default `--sqlite-synchronous full`) order with its tickets and email job.
//!
//! "Durable" and "oversold" are counted from the database after the issuer is killed with SIGKILL (so only
//! what reached the disk counts), not from the HTTP answers: the orders and tickets of the event, against
//! the capacity. `--database-url postgres://…` runs the issuer on PostgreSQL (an empty database) instead of
//! its SQLite file; with `--instances 2` two issuer processes share that database and the orders are sent
//! to them in turn (as a round-robin load balancer would), so the run also proves no oversell across
//! instances. The tickets sold are the ticket type's `reserved` count as stored, also read from the database.
//!
//! Before the kill it waits for the email outbox to send every order's mail and reports, from the job rows,
//! how many were sent during the load and how long each took from its order's commit: the outbox yields
//! to orders in a spike, and this is what that costs the mail.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    /// Offered load, orders per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Ticket capacity (default: the orders of all but the last 0.1 s of load, so the run also proves 0 oversold
    /// while nearly every offered order is one the server must commit).
    #[arg(long)]
    capacity: Option<u64>,
    /// The issuer's store (`--database-url`): an empty PostgreSQL database, or the default SQLite file in a
    /// fresh data directory.
    #[arg(long)]
    database_url: Option<String>,
    /// SQLite synchronous mode passed to the issuer.
    #[arg(long, default_value = "full")]
    sqlite_synchronous: String,
    /// The issuer's per-address order limit (`--order-rate-per-minute`). Every bench order comes from one
    /// loopback address, so the default 0 turns the limit off; give a rate to measure with it on.
    #[arg(long, default_value_t = 0)]
    order_rate_per_minute: u32,
    /// Issuer processes sharing the store (more than one needs `--database-url postgres://…`); the orders
    /// go to them in turn.
    #[arg(long, default_value_t = 1)]
    instances: usize,
}

/// Starts one issuer process serving on `port`.
fn spawn_issuer(
    exe: &std::path::Path,
    data_dir: &std::path::Path,
    port: u16,
    token: &str,
    args: &Args,
) -> anyhow::Result<Child> {
    Command::new(exe)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--admin-token", token])
        .args(["--sqlite-synchronous", &args.sqlite_synchronous])
        .args(["--order-rate-per-minute", &args.order_rate_per_minute.to_string()])
        .arg("--data-dir")
        .arg(data_dir)
        .args(args.database_url.iter().flat_map(|u| ["--database-url", u.as_str()]))
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the issuer")
}

/// Waits until the issuer at `base` answers its health check (at most 30 s).
async fn wait_healthy(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let up = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        if up.elapsed() > Duration::from_secs(30) {
            bail!("issuer at {base} did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The issuer processes under load, killed with SIGKILL when dropped — at the end of the run, so that
/// what the database holds afterwards is what was durable, and on any early error.
struct Issuers(Vec<Child>);

impl Drop for Issuers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let total = args.rate * args.seconds;
    let capacity = args.capacity.unwrap_or(total - (args.rate / 10).min(total / 2));
    let exe = std::env::current_exe()?.with_file_name("issuer");
    if !exe.exists() {
        bail!("{} not found: build it with `cargo build --release -p issuer`", exe.display());
    }
    if args.instances == 0 || (args.instances > 1 && args.database_url.is_none()) {
        bail!("--instances: 1, or several on one --database-url postgres://…");
    }
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    let token = "bench-admin-token";
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).timeout(Duration::from_secs(30)).build()?;
    let mut issuers = Issuers(Vec::with_capacity(args.instances));
    let mut bases = Vec::with_capacity(args.instances);
    // One after the other: the first creates the store's schema and keys, the others find them.
    for _ in 0..args.instances {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let base = format!("http://127.0.0.1:{port}");
        issuers.0.push(spawn_issuer(&exe, &data_dir, port, token, &args)?);
        wait_healthy(&http, &base).await?;
        bases.push(base);
    }
    let base = bases[0].clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss: Vec<Option<u64>> = issuers.0.iter().map(|c| rss_kib(c.id())).collect();
    // What a commit waits for, as the database reports it (not the flag we passed).
    let store: Value =
        http.get(format!("{base}/admin/v1/store")).bearer_auth(token).send().await?.error_for_status()?.json().await?;

    let ev: Value = http
        .post(format!("{base}/admin/v1/events"))
        .bearer_auth(token)
        .json(&json!({"name":"Bench","venue":"Loopback","starts_at":2_000_000_000i64,"ends_at":2_000_010_000i64,"timezone":"UTC"}))
        .send()
        .await?
        .json()
        .await?;
    let event = ev["id"].as_i64().context("event id")?;
    http.post(format!("{base}/admin/v1/events/{event}/ticket-types"))
        .bearer_auth(token)
        .json(&json!({"name":"GA","price_cents":0,"currency":"EUR","capacity":capacity}))
        .send()
        .await?
        .error_for_status()?;

    let interval = Duration::from_nanos(1_000_000_000 / args.rate.max(1));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let (http, base) = (http.clone(), bases[i as usize % bases.len()].clone());
        handles.push(tokio::spawn(async move {
            let body = json!({"event_id":event,"name":format!("Bench {i}"),"email":"bench@example.org","items":[{"ticket_type":0,"quantity":1}]});
            let status = match http.post(format!("{base}/v1/orders")).json(&body).send().await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            (status, scheduled.elapsed().as_secs_f64() * 1000.0, start.elapsed().as_secs_f64())
        }));
    }
    let (mut ok, mut sold_out, mut errors) = (0u64, 0u64, 0u64);
    let mut lat = Vec::with_capacity(total as usize);
    let mut ok_lat = Vec::new();
    // When the last committed order was answered: throughput is counted over the time orders were committed.
    let mut last_commit = 0f64;
    for h in handles {
        let (status, ms, done_at) = h.await?;
        lat.push(ms);
        match status {
            201 => {
                ok += 1;
                last_commit = last_commit.max(done_at);
                ok_lat.push(ms);
            }
            409 => sold_out += 1,
            _ => errors += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    ok_lat.sort_by(f64::total_cmp);
    let loaded_rss: Vec<Option<u64>> = issuers.0.iter().map(|c| rss_kib(c.id())).collect();
    let store_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}?mode=ro", data_dir.join("issuer.sqlite3").display()));
    // The outbox yields to orders during the spike: how far the mail lags, from the job rows.
    let mail = wait_for_mail(&store_url).await.context("reading the email outbox")?;
    drop(issuers); // SIGKILL: what the database holds now is what was durable.
    let rows = count_rows(&store_url, event).await.context("counting the orders in the database")?;
    let sold = rows.reserved;
    let mib = |k: &Option<u64>| k.map(|k| k as f64 / 1024.0);
    let out = json!({
        "offered_rate_per_s": args.rate,
        "seconds": args.seconds,
        "orders_offered": total,
        "capacity": capacity,
        "orders_committed": ok,
        "sold_out_409": sold_out,
        "errors": errors,
        "durable_orders_per_s": rows.orders as f64 / last_commit.max(1e-9),
        "instances": args.instances,
        "orders_in_db": rows.orders,
        "tickets_in_db": rows.tickets,
        "acknowledged_but_not_in_db": (ok as i64 - rows.orders).max(0),
        "oversold_in_db": (rows.tickets - capacity as i64).max(0),
        "elapsed_s": elapsed,
        "p50_ms": percentile(&lat, 0.50),
        "p99_ms": percentile(&lat, 0.99),
        "p99_ms_committed_only": percentile(&ok_lat, 0.99),
        "max_ms": lat.last().copied().unwrap_or(0.0),
        "tickets_sold": sold,
        "oversold": (ok as i64 - capacity as i64).max(0) + (sold - ok as i64).abs(),
        "idle_rss_mib": idle_rss.first().and_then(mib),
        "rss_after_load_mib": loaded_rss.first().and_then(mib),
        "idle_rss_mib_each": idle_rss.iter().map(mib).collect::<Vec<_>>(),
        "rss_after_load_mib_each": loaded_rss.iter().map(mib).collect::<Vec<_>>(),
        "store": store,
        "mail_jobs": mail.jobs,
        "mail_sent_during_load": mail.sent_during_load,
        "mail_drained_after_load_s": mail.drained_after_s,
        "mail_delay_p50_s": percentile(&mail.delays_s, 0.50),
        "mail_delay_p99_s": percentile(&mail.delays_s, 0.99),
        "mail_delay_max_s": mail.delays_s.last().copied(),
        "sqlite_synchronous": store["synchronous"].as_str(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// The email outbox after the load, as stored.
struct Mail {
    jobs: i64,
    /// Jobs already sent when the last order was answered.
    sent_during_load: i64,
    /// Seconds from the last answer until no job was pending any more; None if that took over [`MAIL_WAIT`].
    drained_after_s: Option<f64>,
    /// Each sent job's delay from its order's commit (the job's `created_at`) to its `sent_at`, sorted.
    delays_s: Vec<f64>,
}

/// The longest the bench waits for the outbox to send every mail of the run.
const MAIL_WAIT: Duration = Duration::from_secs(600);

/// Waits until no email job is pending (every order's mail sent), reading the store on a connection of its own.
async fn wait_for_mail(url: &str) -> anyhow::Result<Mail> {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let started = Instant::now();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
    let jobs = count("SELECT COUNT(*) FROM email_jobs").fetch_one(&mut conn).await?;
    let sent_during_load = count("SELECT COUNT(*) FROM email_jobs WHERE status = 'sent'").fetch_one(&mut conn).await?;
    let drained_after_s = loop {
        if count("SELECT COUNT(*) FROM email_jobs WHERE status = 'pending'").fetch_one(&mut conn).await? == 0 {
            break Some(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > MAIL_WAIT {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT created_at, sent_at FROM email_jobs WHERE status = 'sent' AND sent_at IS NOT NULL")
            .fetch_all(&mut conn)
            .await?;
    let mut delays_s: Vec<f64> = rows.iter().map(|(created, sent)| (sent - created) as f64 / 1000.0).collect();
    delays_s.sort_by(f64::total_cmp);
    let _ = conn.close().await;
    Ok(Mail { jobs, sent_during_load, drained_after_s, delays_s })
}

struct Rows {
    orders: i64,
    tickets: i64,
    /// The bench ticket type's `reserved` count: the tickets the store says it sold.
    reserved: i64,
}

/// The bench event's orders and tickets as stored, read on a connection of our own.
async fn count_rows(url: &str, event: i64) -> anyhow::Result<Rows> {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let (orders,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders WHERE event_id = $1 AND status = 'confirmed'")
        .bind(event)
        .fetch_one(&mut conn)
        .await?;
    let (tickets,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM tickets WHERE event_id = $1").bind(event).fetch_one(&mut conn).await?;
    let (reserved,): (i64,) = sqlx::query_as("SELECT reserved FROM ticket_types WHERE event_id = $1")
        .bind(event)
        .fetch_one(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(Rows { orders, tickets, reserved })
}
