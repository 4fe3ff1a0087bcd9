//! The transactional email outbox and its worker.
//!
//! [`enqueue`] writes the job row inside the transaction that issues the tickets, so a committed order
//! always has its email job and an aborted one never does. The worker sends due jobs with lettre (SMTP
//! with STARTTLS and AUTH when configured, otherwise .eml files in DATA_DIR/outbox), retries failures with
//! exponential backoff and jitter, and dead-letters a job after the configured number of attempts. Delivery
//! is at-least-once; every attempt of a job carries the same Message-ID so duplicates are recognisable.
//!
//! The same outbox carries the SMS with the order link ([`crate::sms`]): a job's `channel` says which.
//!
//! The worker gives way to buyers: it starts each job in a moment when no order is waiting for its answer
//! ([`crate::orders::queue::OrderQueue::quiet`]), or after [`YIELD_AT_MOST`] without one. A mail's work
//! (reading the order, rendering it, writing the job's row) competes with the orders for the processor and
//! the database, and a buyer waits for the order's answer but not for the mail. Measured with two
//! instances on one PostgreSQL at 1,200 orders/s, the outbox working at full pace during the spike about
//! doubled the orders' median and 99th percentile latency. Under ordinary load such moments come every
//! few milliseconds and mail keeps pace with orders; in a spike that leaves none, each instance still
//! sends at least five jobs a second and catches up when the spike passes.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rand::Rng;
use tokio::sync::watch;

use crate::config::Config;
use crate::db::Tx;
use crate::error::{Error, MailKind, Result};
use crate::orders::model::{load_order, order_link, OrderView};
use crate::pages::html::html_escape;
use crate::state::AppState;
use crate::util::now_ms;

/// Where mail goes.
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

impl Mailer {
    pub fn from_config(config: &Config) -> Result<Self> {
        let Some(host) = &config.smtp_host else {
            let dir = config.data_dir.join("outbox");
            std::fs::create_dir_all(&dir).map_err(|e| MailKind::Config(format!("{}: {e}", dir.display())))?;
            return Ok(Mailer::File(AsyncFileTransport::<Tokio1Executor>::new(dir)));
        };
        let mut tls = TlsParameters::builder(host.clone());
        if let Some(ca) = &config.smtp_ca_file {
            let pem = std::fs::read(ca).map_err(|e| MailKind::Config(format!("{}: {e}", ca.display())))?;
            tls = tls.add_root_certificate(Certificate::from_pem(&pem)?);
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(config.smtp_port)
            .tls(Tls::Required(tls.build_rustls()?))
            .timeout(Some(Duration::from_secs(20)));
        if let (Some(user), Some(password)) = (&config.smtp_user, &config.smtp_password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Mailer::Smtp(builder.build()))
    }

    async fn send(&self, message: Message) -> Result<()> {
        match self {
            Mailer::Smtp(t) => t.send(message).await.map(|_| ()).map_err(Error::from),
            Mailer::File(t) => t.send(message).await.map(|_| ()).map_err(Error::from),
        }
    }
}

fn mail_domain(config: &Config) -> String {
    config.mail_from.parse::<Mailbox>().map(|m| m.email.domain().to_owned()).unwrap_or_else(|_| "localhost".to_owned())
}

/// Adds the ticket email job of `order_id` to the outbox, inside the caller's transaction.
pub async fn enqueue(tx: &mut Tx<'_>, state: &AppState, order_id: &str) -> Result<()> {
    enqueue_many(tx, state, &[order_id]).await
}

/// Adds the ticket email job of each of `order_ids` to the outbox, inside the caller's transaction: one
/// statement for a whole batch of orders (the group committer's), as few as the bind limit allows.
pub async fn enqueue_many(tx: &mut Tx<'_>, state: &AppState, order_ids: &[&str]) -> Result<()> {
    const COLS: usize = 7;
    let domain = mail_domain(&state.config);
    let t = now_ms();
    for chunk in order_ids.chunks(crate::db::MAX_BIND_PARAMS / COLS) {
        let sql = format!(
            "INSERT INTO email_jobs (order_id, kind, message_id, status, attempts, next_attempt_at, created_at)
             VALUES {} ON CONFLICT (message_id) DO NOTHING",
            crate::db::values_rows(chunk.len(), COLS)
        );
        let mut query = sqlx::query(&sql).persistent(crate::db::keep_prepared(chunk.len()));
        for order_id in chunk {
            let message_id = format!("<tickets.{order_id}@{domain}>");
            query = query.bind(*order_id).bind("tickets").bind(message_id).bind("pending").bind(0i64).bind(t).bind(t);
        }
        query.execute(&mut **tx).await?;
    }
    crate::sms::enqueue(tx, state, order_ids, "tickets", |id| format!("sms.tickets.{id}")).await
}

/// Adds another mail of `order_id`'s tickets to the outbox (an organizer's resend), inside `tx`: a job of
/// its own with a fresh Message-ID, so it is not taken for a duplicate of the first mail. An order with a
/// phone number gets its SMS again too.
pub async fn enqueue_resend(tx: &mut Tx<'_>, state: &AppState, order_id: &str) -> Result<()> {
    let unique = crate::util::random_token(9).replace(['-', '_'], "x");
    let message_id = format!("<resend.{order_id}.{unique}@{}>", mail_domain(&state.config));
    enqueue_job(tx, order_id, "resend", &message_id).await?;
    crate::sms::enqueue(tx, state, &[order_id], "resend", |id| format!("sms.resend.{id}.{unique}")).await
}

/// Adds a "your orders" mail (see [`crate::selfservice`]) for `order_id`'s customer address to the outbox.
pub async fn enqueue_lookup(tx: &mut Tx<'_>, state: &AppState, order_id: &str) -> Result<()> {
    let message_id =
        format!("<orders.{}@{}>", crate::util::random_token(12).replace(['-', '_'], "x"), mail_domain(&state.config));
    enqueue_job(tx, order_id, "lookup", &message_id).await
}

async fn enqueue_job(tx: &mut Tx<'_>, order_id: &str, kind: &str, message_id: &str) -> Result<()> {
    let t = now_ms();
    sqlx::query(
        "INSERT INTO email_jobs (order_id, kind, message_id, status, attempts, next_attempt_at, created_at)
         VALUES ($1, $2, $3, 'pending', 0, $4, $4)",
    )
    .bind(order_id)
    .bind(kind)
    .bind(message_id)
    .bind(t)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The ticket email: HTML + text, each ticket's QR inline as a PNG referenced by Content-ID, and the tickets
/// as a PDF attachment (one page each, see [`crate::orders::pdf`]). Subject, text, dates (in the event's
/// zone) and amounts are in the order's language.
pub fn build_message(
    config: &Config,
    public_url: &str,
    order: &OrderView,
    token_url: &str,
    message_id: &str,
) -> Result<Message> {
    let from: Mailbox = config.mail_from.parse().map_err(|e| MailKind::Message(format!("mail_from: {e}")))?;
    let to_addr = order.customer_email.parse().map_err(|e| MailKind::Message(format!("recipient: {e}")))?;
    let to = Mailbox::new(Some(order.customer_name.clone()), to_addr);
    // Each valid ticket's code, encoded once for both its inline image and its PDF page.
    let live = crate::orders::pdf::live_codes(order).map_err(|e| MailKind::Message(format!("tickets: {e}")))?;
    let event = &order.event;
    let locale = order.locale;
    let hello = locale.tr("email-hello", &[("name", order.customer_name.as_str().into())]);
    let confirmed = |event_name: String| {
        locale.tr(
            "email-confirmed",
            &[
                ("id", order.id.as_str().into()),
                ("event", event_name.into()),
                ("venue", event.venue.as_str().into()),
                ("total", locale.money(order.total_cents, &order.currency).into()),
            ],
        )
    };
    let when = locale.tr("email-when", &[("when", crate::orders::pdf::when(locale, order).into())]);
    let mut text = format!("{hello}\n\n{}\n{when}\n\n", confirmed(event.name.clone()));
    // The event's name in bold: the message is written with a placeholder, escaped, then the placeholder
    // replaced by the escaped name in <strong>.
    let confirmed_html = html_escape(&confirmed("\u{1}".to_owned())).replacen(
        '\u{1}',
        &format!("<strong>{}</strong>", html_escape(&event.name)),
        1,
    );
    let mut html = format!(
        "<!doctype html><html lang=\"{lang}\"><body style=\"font-family:sans-serif\"><p>{}</p><p>{confirmed_html}</p>\
<p>{}</p>",
        html_escape(&hello),
        html_escape(&when),
        lang = locale.tag(),
    );
    let mut related = MultiPart::related().build();
    let mut images = Vec::new();
    for (t, modules) in &live {
        let cid = format!("ticket-{}-{}", order.id, t.seq);
        let png = modules.png(6).map_err(|e| MailKind::Message(e.to_string()))?;
        text.push_str(&locale.tr(
            "email-ticket-line",
            &[
                ("n", (t.seq + 1).into()),
                ("type", t.ticket_type_name.as_str().into()),
                ("holder", t.holder_name.as_str().into()),
            ],
        ));
        text.push('\n');
        for (label, link) in crate::orders::wallet::ticket_links(config, locale, token_url, t.seq) {
            text.push_str(&format!("  {label}: {link}\n"));
        }
        let addons = if t.addons.is_empty() { String::new() } else { format!(" + {}", t.addons.join(", ")) };
        html.push_str(&format!(
            "<h3>{}{}</h3><p>{}</p><p><img src=\"cid:{}\" alt=\"{}\" width=\"240\" height=\"240\"></p>",
            html_escape(&locale.tr(
                "email-ticket-heading",
                &[("n", (t.seq + 1).into()), ("type", t.ticket_type_name.as_str().into())]
            )),
            html_escape(&addons),
            html_escape(&locale.tr("email-holder", &[("name", t.holder_name.as_str().into())])),
            html_escape(&cid),
            html_escape(&locale.text("email-qr-alt"))
        ));
        html.push_str(&crate::orders::wallet::ticket_links_html(config, locale, token_url, t.seq));
        images.push(
            Attachment::new_inline(cid)
                .body(png, ContentType::parse("image/png").map_err(|e| MailKind::Message(e.to_string()))?),
        );
    }
    text.push_str(&format!("\n{}\n", locale.tr("email-show-text", &[("url", token_url.into())])));
    html.push_str(&format!(
        "<p>{} <a href=\"{}\">{}</a>.</p><p style=\"color:#777\">{}</p></body></html>",
        html_escape(&locale.text("email-show")),
        html_escape(token_url),
        html_escape(&locale.text("email-view-online")),
        html_escape(public_url)
    ));
    related = related.singlepart(SinglePart::html(html));
    for img in images {
        related = related.singlepart(img);
    }
    // The same tickets as one PDF (a page each) for printing; the body above stays as it was, so a reader
    // that ignores attachments still has every QR code.
    let pdf = crate::orders::pdf::tickets_pdf_of(order, &live).map_err(|e| MailKind::Message(format!("PDF: {e}")))?;
    let pdf = Attachment::new(crate::orders::pdf::file_name(&order.id))
        .body(pdf, ContentType::parse("application/pdf").map_err(|e| MailKind::Message(e.to_string()))?);
    Message::builder()
        .from(from)
        .to(to)
        .subject(locale.tr("email-subject", &[("event", event.name.as_str().into())]))
        .message_id(Some(message_id.to_owned()))
        .multipart(
            MultiPart::mixed()
                .multipart(MultiPart::alternative().singlepart(SinglePart::plain(text)).multipart(related))
                .singlepart(pdf),
        )
        .map_err(|e| MailKind::Message(e.to_string()).into())
}

#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct EmailJob {
    pub id: i64,
    pub order_id: String,
    pub kind: String,
    /// `email` or `sms` ([`crate::sms::CHANNEL`]).
    pub channel: String,
    pub message_id: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// Orders listed in one mail (the newest).
pub const MAX_ORDERS_IN_MAIL: i64 = 50;

/// The "your orders" mail for the customer address of `order_id`: a link to each of the address's orders
/// (newest first), sent to that address only.
pub async fn build_lookup_message(state: &AppState, order_id: &str, message_id: &str) -> Result<Message> {
    let db = |e: sqlx::Error| Error::from(MailKind::Message(e.to_string()));
    // The language of the newest order (the one the request found): the customer's latest choice.
    let (email, name, stored_locale): (String, String, String) =
        sqlx::query_as("SELECT customer_email, customer_name, locale FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_one(&state.db.read)
            .await
            .map_err(db)?;
    let locale = crate::i18n::Locale::stored(&stored_locale);
    let orders: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT o.id, e.name, o.status, o.created_at FROM orders o JOIN events e ON e.id = o.event_id
         WHERE LOWER(o.customer_email) = LOWER($1) ORDER BY o.created_at DESC, o.id DESC LIMIT $2",
    )
    .bind(&email)
    .bind(MAX_ORDERS_IN_MAIL)
    .fetch_all(&state.db.read)
    .await
    .map_err(db)?;
    let from: Mailbox = state.config.mail_from.parse().map_err(|e| MailKind::Message(format!("mail_from: {e}")))?;
    let to = Mailbox::new(Some(name.clone()), email.parse().map_err(|e| MailKind::Message(format!("recipient: {e}")))?);
    let hello = locale.tr("email-hello", &[("name", name.as_str().into())]);
    let intro = locale.text("lookup-intro");
    let mut text = format!("{hello}\n\n{intro}\n\n");
    let mut html = format!(
        "<!doctype html><html lang=\"{}\"><body style=\"font-family:sans-serif\"><p>{}</p><p>{}</p><ul>",
        locale.tag(),
        html_escape(&hello),
        html_escape(&intro)
    );
    for (id, event, status, _) in &orders {
        let link = order_link(state, id);
        let line = locale.tr(
            "lookup-order",
            &[("event", event.as_str().into()), ("id", id.as_str().into()), ("status", status.as_str().into())],
        );
        text.push_str(&format!("- {line}: {link}\n"));
        html.push_str(&format!(
            "<li><a href=\"{}\">{}</a> {}</li>",
            html_escape(&link),
            html_escape(event),
            html_escape(line.strip_prefix(event.as_str()).unwrap_or(&line).trim_start())
        ));
    }
    let ignore = locale.text("lookup-ignore");
    text.push_str(&format!("\n{ignore}\n"));
    html.push_str(&format!("</ul><p style=\"color:#777\">{}</p></body></html>", html_escape(&ignore)));
    Message::builder()
        .from(from)
        .to(to)
        .subject(locale.text("lookup-subject"))
        .message_id(Some(message_id.to_owned()))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| MailKind::Message(e.to_string()).into())
}

/// Delay before attempt `attempts + 1`: base·2^(attempts−1), capped, with ±50% jitter.
pub fn backoff_ms(config: &Config, attempts: u32) -> i64 {
    let exp = config.email_backoff_ms.saturating_mul(1u64 << attempts.saturating_sub(1).min(30));
    let capped = exp.min(config.email_backoff_max_ms).max(1);
    let jittered = rand::thread_rng().gen_range(capped / 2..=capped + capped / 2);
    jittered as i64
}

/// Sends one job's mail: `sent`, or `skipped` when every ticket of the order is revoked. Any failure is
/// the job's `last_error` and is retried (see [`process_due`]).
async fn send_job(
    state: &AppState,
    mailer: &Mailer,
    sms: Option<&crate::sms::Twilio>,
    job: &EmailJob,
) -> Result<&'static str> {
    if job.channel == crate::sms::CHANNEL {
        return crate::sms::send_job(state, sms, &job.order_id).await;
    }
    if job.kind == "lookup" {
        let message = build_lookup_message(state, &job.order_id, &job.message_id).await?;
        mailer.send(message).await?;
        return Ok("sent");
    }
    let order = load_order(state, &job.order_id, None).await?;
    if order.tickets.iter().all(|t| t.revoked) {
        return Ok("skipped");
    }
    let token_url = order_link(state, &order.id);
    // Rendering (QR codes, PNGs, the PDF) is the mail's CPU work: at background priority, so that in a sales
    // spike it takes what the orders leave of the processor rather than delaying their answers.
    let (render_state, message_id) = (state.clone(), job.message_id.clone());
    let message = crate::background::run(move || {
        build_message(&render_state.config, &render_state.public_url, &order, &token_url, &message_id)
    })
    .await??;
    mailer.send(message).await?;
    Ok("sent")
}

/// Takes up to 32 due jobs for this worker: one statement moves their `next_attempt_at` a lease ahead and
/// returns them. Several issuer instances on one PostgreSQL run a worker each; `FOR UPDATE SKIP LOCKED`
/// gives each job to exactly one of them (the others skip the rows it holds instead of waiting and then
/// taking them too), so each mail goes out once. SQLite has one writer: the statement alone is atomic (and
/// SQLite does not parse `FOR UPDATE`).
///
/// On PostgreSQL a taken job stays away from the other workers for `email_lease_ms` (60 s by default):
/// longer than one SMTP send can take, so only an attempt that never finished (its instance died) is taken
/// over, after the lease. On SQLite the one process is the only worker, so there is no lease: a job whose
/// send a crash interrupted is due again at once after the restart.
async fn lease_due(state: &AppState) -> Result<Vec<EmailJob>> {
    let lock = match state.db.backend {
        crate::db::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        crate::db::Backend::Sqlite => "",
    };
    let lease_ms = lease_ms(state);
    let now = now_ms();
    let mut jobs: Vec<EmailJob> = sqlx::query_as(&format!(
        "UPDATE email_jobs SET next_attempt_at = $1
         WHERE id IN (SELECT id FROM email_jobs WHERE status = 'pending' AND next_attempt_at <= $2
                      ORDER BY next_attempt_at, id LIMIT 32{lock})
         RETURNING id, order_id, kind, channel, message_id, status, attempts, next_attempt_at, last_error, created_at, sent_at"
    ))
    .bind(now + lease_ms)
    .bind(now)
    .fetch_all(&state.db.write)
    .await?;
    jobs.sort_by_key(|j| j.id);
    Ok(jobs)
}

/// The longest the worker waits for a moment without waiting buyers before it starts its next job anyway.
pub const YIELD_AT_MOST: Duration = Duration::from_millis(200);

/// Whether `job`, leased by this worker, should be given back rather than started: on PostgreSQL, when less
/// than half of its lease is left. Yielding to buyers ([`YIELD_AT_MOST`] per job) and slow sends can
/// stretch a batch of 32 past a short lease, and another instance's worker takes a job whose lease has
/// run out: starting it then could send its mail twice.
fn lease_running_out(state: &AppState, job: &EmailJob, now: i64) -> bool {
    let lease_ms = lease_ms(state);
    lease_ms > 0 && now > job.next_attempt_at.saturating_sub(lease_ms / 2)
}

/// How long a taken job stays away from other workers: `email_lease_ms` on PostgreSQL, none on SQLite (see
/// [`lease_due`]).
fn lease_ms(state: &AppState) -> i64 {
    match state.db.backend {
        // The setting is bounded to a day by the argument parser, so it fits an i64.
        crate::db::Backend::Postgres => i64::try_from(state.config.email_lease_ms).unwrap_or(i64::MAX / 2),
        crate::db::Backend::Sqlite => 0,
    }
}

/// Makes leased jobs this worker did not start due again at once (unless another worker took them since).
async fn release(state: &AppState, jobs: &[EmailJob]) -> Result<()> {
    for job in jobs {
        sqlx::query(
            "UPDATE email_jobs SET next_attempt_at = $1 WHERE id = $2 AND status = 'pending' AND next_attempt_at = $3",
        )
        .bind(now_ms())
        .bind(job.id)
        .bind(job.next_attempt_at)
        .execute(&state.db.write)
        .await?;
    }
    Ok(())
}

/// Sends the due jobs of one lease once each, starting each when no buyer waits (see [`YIELD_AT_MOST`]).
/// Returns how many jobs were attempted; the first one always is.
pub async fn process_due(state: &AppState, mailer: &Mailer, sms: Option<&crate::sms::Twilio>) -> Result<usize> {
    let jobs = lease_due(state).await?;
    for (attempted, job) in jobs.iter().enumerate() {
        state.order_queue.quiet(YIELD_AT_MOST).await;
        if attempted > 0 && lease_running_out(state, job, now_ms()) {
            release(state, &jobs[attempted..]).await?;
            tracing::debug!(attempted, released = jobs.len() - attempted, "mail lease running out: rest given back");
            return Ok(attempted);
        }
        match send_job(state, mailer, sms, job).await {
            Ok(status) => {
                sqlx::query("UPDATE email_jobs SET status = $1, attempts = attempts + 1, sent_at = $2, last_error = NULL WHERE id = $3")
                    .bind(status)
                    .bind(now_ms())
                    .bind(job.id)
                    .execute(&state.db.write)
                    .await?;
                tracing::info!(job = job.id, order = %job.order_id, status, "email job done");
            }
            Err(err) => {
                let attempts = job.attempts + 1;
                // An SMS the provider refused for good is not sent again (an organizer retries it).
                let refused = matches!(&err, Error::Sms(kind) if kind.is_permanent());
                let dead = refused || attempts >= i64::from(state.config.email_max_attempts);
                let next = now_ms() + backoff_ms(&state.config, attempts as u32);
                let err: String = err.to_string().chars().take(500).collect();
                sqlx::query("UPDATE email_jobs SET status = $1, attempts = $2, next_attempt_at = $3, last_error = $4 WHERE id = $5")
                    .bind(if dead { "dead" } else { "pending" })
                    .bind(attempts)
                    .bind(next)
                    .bind(&err)
                    .bind(job.id)
                    .execute(&state.db.write)
                    .await?;
                if dead {
                    tracing::error!(job = job.id, order = %job.order_id, attempts, error = %err, "email job dead-lettered");
                } else {
                    tracing::warn!(job = job.id, order = %job.order_id, attempts, error = %err, "email send failed; will retry");
                }
            }
        }
    }
    Ok(jobs.len())
}

async fn next_due_in(state: &AppState) -> Result<Option<Duration>> {
    let row: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT MIN(next_attempt_at) FROM email_jobs WHERE status = 'pending'")
            .fetch_optional(&state.db.read)
            .await?;
    Ok(row.and_then(|(t,)| t).map(|t| Duration::from_millis((t - now_ms()).max(0) as u64)))
}

/// The outbox worker: runs until shutdown.
pub async fn run_worker(
    state: AppState,
    mailer: Mailer,
    sms: Option<crate::sms::Twilio>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let attempted = match process_due(&state, &mailer, sms.as_ref()).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "email outbox pass failed");
                0
            }
        };
        if attempted > 0 {
            continue;
        }
        let wait =
            next_due_in(&state).await.ok().flatten().unwrap_or(Duration::from_secs(5)).min(Duration::from_secs(5));
        tokio::select! {
            _ = state.mail_wakeup.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Admin view of the outbox.
pub async fn list_jobs(state: &AppState, status: Option<&str>, limit: i64) -> Result<Vec<EmailJob>> {
    let jobs = sqlx::query_as(
        "SELECT id, order_id, kind, channel, message_id, status, attempts, next_attempt_at, last_error, created_at, sent_at
         FROM email_jobs WHERE ($1 IS NULL OR status = $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(status)
    .bind(limit.clamp(1, 100_000))
    .fetch_all(&state.db.read)
    .await?;
    Ok(jobs)
}

/// Puts a (dead) job back in the queue.
pub async fn retry_job(state: &AppState, id: i64) -> Result<()> {
    let r = sqlx::query("UPDATE email_jobs SET status = 'pending', attempts = 0, next_attempt_at = $1 WHERE id = $2 AND status <> 'sent'")
        .bind(now_ms())
        .bind(id)
        .execute(&state.db.write)
        .await?;
    if r.rows_affected() == 0 {
        return Err(Error::NotFound("unsent email job"));
    }
    state.mail_wakeup.notify_one();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The mail rows of the test's orders, in order: (created_at, sent_at) once all `n` are sent.
    async fn sent_jobs(state: &AppState, n: usize) -> Vec<(i64, i64)> {
        for _ in 0..600 {
            let rows: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT created_at, sent_at FROM email_jobs WHERE status = 'sent' AND sent_at IS NOT NULL ORDER BY id",
            )
            .fetch_all(&state.db.read)
            .await
            .unwrap();
            if rows.len() >= n {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{n} mails were not sent within 30 s");
    }

    #[tokio::test]
    async fn the_outbox_gives_way_to_a_waiting_buyer_but_only_for_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let running = crate::app::start(Config::for_data_dir(dir.path().join("data"))).await.unwrap();
        let (state, http, base) = (&running.state, reqwest::Client::new(), running.url());
        let create = |path: String, body: Value| {
            let request = http.post(format!("{base}{path}")).bearer_auth(running.admin_token()).json(&body);
            async move {
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 201);
                response.json::<Value>().await.unwrap()
            }
        };
        let event = create("/admin/v1/events".into(), json!({"name":"Spike","venue":"Hall","starts_at":2_000_000_000i64,"ends_at":2_000_010_000i64,"timezone":"UTC"}))
            .await["id"]
            .as_i64()
            .unwrap();
        create(
            format!("/admin/v1/events/{event}/ticket-types"),
            json!({"name":"GA","price_cents":0,"currency":"EUR","capacity":10}),
        )
        .await;
        let order = |i: usize| {
            let body = json!({"event_id":event,"name":format!("Buyer {i}"),"email":"buyer@example.org","items":[{"ticket_type":0,"quantity":1}]});
            http.post(format!("{base}/v1/orders")).json(&body).send()
        };

        // A buyer waits for an answer the whole time (as in a spike that never leaves a quiet moment).
        let buyer = state.order_queue.buyer_waiting();
        for i in 0..3 {
            assert_eq!(order(i).await.unwrap().status(), 201);
        }
        let held = sent_jobs(state, 3).await;
        // Every mail still went out, each only after waiting the whole bound for a quiet moment: the first
        // that long after its order's commit, each next one that long after the one before.
        let bound = i64::try_from(YIELD_AT_MOST.as_millis()).unwrap();
        assert!(held[0].1 - held[0].0 >= bound, "first mail {} ms after its order", held[0].1 - held[0].0);
        for pair in held.windows(2) {
            // Milliseconds are truncated on both sides: one may be lost.
            assert!(pair[1].1 - pair[0].1 >= bound - 1, "mails {} ms apart", pair[1].1 - pair[0].1);
        }

        // No buyer waits any more: an answered order leaves none counted (the outbox's moment is there at
        // once), and its mail goes out.
        drop(buyer);
        assert_eq!(order(3).await.unwrap().status(), 201);
        assert!(state.order_queue.quiet(Duration::ZERO).await, "an answered order is still counted as waiting");
        assert_eq!(sent_jobs(state, 4).await.len(), 4);
        running.shutdown().await;
    }
}
