//! Configuration of `issuer serve`: every option is a flag and an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Synchronous {
    /// fsync the WAL on every commit: a committed order survives power loss.
    Full,
    /// fsync at checkpoints only: a committed order survives a crash of the process (kill -9), not
    /// necessarily a power loss.
    Normal,
}

/// `Debug` is written out below: it names every setting but never prints a secret.
#[derive(Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "ISSUER_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Data directory: SQLite database, signing keys, keyring, revocation list, outgoing mail (.eml).
    #[arg(long, env = "ISSUER_DATA_DIR", default_value = "issuer-data")]
    pub data_dir: PathBuf,

    /// Public keyring file to publish the signing key in (default: DATA_DIR/keyring.json).
    #[arg(long, env = "ISSUER_KEYRING")]
    pub keyring: Option<PathBuf>,

    /// Base URL customers reach this server at, used in email links (default: http://BIND).
    #[arg(long, env = "ISSUER_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Base URL of the edge verifier Worker that scanners should try first (put into scanner setup links).
    #[arg(long, env = "ISSUER_EDGE_URL")]
    pub edge_url: Option<String>,

    /// Relay token the edge accepts from this issuer (its SHA-256 is in the Worker's RELAY_TOKEN_HASHES).
    /// With it and --edge-url, the issuer syncs every event's redemption log with the edge's, both ways,
    /// every --edge-relay-seconds: devices hand each server only their own records, servers relay.
    #[arg(long, env = "ISSUER_EDGE_RELAY_TOKEN", hide_env_values = true)]
    pub edge_relay_token: Option<String>,

    /// Seconds between relay syncs with the edge (0: only on request, POST /admin/v1/events/{id}/edge-relay).
    #[arg(long, env = "ISSUER_EDGE_RELAY_SECONDS", default_value_t = 30)]
    pub edge_relay_seconds: u64,

    /// Bearer token for the admin API. If unset, one is generated on first start and written (0600) to
    /// DATA_DIR/admin-token.
    #[arg(long, env = "ISSUER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Seed a demo event (two ticket types, two add-ons) if the database has no events.
    #[arg(long, env = "ISSUER_DEMO")]
    pub demo: bool,

    /// How long an unpaid order holds its seats, in seconds.
    #[arg(long, env = "ISSUER_HOLD_SECONDS", default_value_t = 900)]
    pub hold_seconds: u64,

    /// The store: `sqlite://FILE` or `postgres://USER@HOST:PORT/DB` (several instances may share one
    /// PostgreSQL database). Default: the SQLite file DATA_DIR/issuer.sqlite3.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// SQLite durability of each commit (ignored for PostgreSQL: that is the server's `synchronous_commit`).
    #[arg(long, env = "ISSUER_SQLITE_SYNCHRONOUS", value_enum, default_value = "full")]
    pub sqlite_synchronous: Synchronous,

    /// Directory served as static files at / (the web order page), if it exists.
    #[arg(long, env = "ISSUER_WEB_DIR", default_value = "web")]
    pub web_dir: PathBuf,

    /// SMTP server host. Without it, mail is written as .eml files to DATA_DIR/outbox.
    #[arg(long, env = "ISSUER_SMTP_HOST")]
    pub smtp_host: Option<String>,

    /// SMTP port (submission with STARTTLS).
    #[arg(long, env = "ISSUER_SMTP_PORT", default_value_t = 587)]
    pub smtp_port: u16,

    /// SMTP user name (AUTH is used when user and password are set).
    #[arg(long, env = "ISSUER_SMTP_USER")]
    pub smtp_user: Option<String>,

    /// SMTP password.
    #[arg(long, env = "ISSUER_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<String>,

    /// Extra trusted CA certificate (PEM) for the SMTP server's STARTTLS certificate.
    #[arg(long, env = "ISSUER_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,

    /// Sender address of ticket mail.
    #[arg(long, env = "ISSUER_MAIL_FROM", default_value = "Tickets <tickets@localhost>")]
    pub mail_from: String,

    /// Attempts before an email job is dead-lettered.
    #[arg(long, env = "ISSUER_EMAIL_MAX_ATTEMPTS", default_value_t = 10)]
    pub email_max_attempts: u32,

    /// First retry delay in milliseconds; doubles each attempt (with jitter).
    #[arg(long, env = "ISSUER_EMAIL_BACKOFF_MS", default_value_t = 5_000)]
    pub email_backoff_ms: u64,

    /// Longest retry delay in milliseconds.
    #[arg(long, env = "ISSUER_EMAIL_BACKOFF_MAX_MS", default_value_t = 3_600_000)]
    pub email_backoff_max_ms: u64,

    /// PostgreSQL only: how long (milliseconds) a mail job one instance's worker took stays away from the
    /// other instances' workers. Longer than one SMTP send can take: only a job whose instance died is taken
    /// over, after this long. Tests of a killed instance set it short.
    #[arg(long, env = "ISSUER_EMAIL_LEASE_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub email_lease_ms: u64,

    /// Stripe secret API key; enables the Stripe Checkout payment provider.
    #[arg(long, env = "STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<String>,

    /// Stripe webhook signing secret (whsec_...).
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<String>,

    /// Stripe API base URL.
    #[arg(long, env = "STRIPE_API_BASE", default_value = "https://api.stripe.com")]
    pub stripe_api_base: String,

    /// Accepted age of a webhook signature timestamp, in seconds.
    #[arg(long, env = "STRIPE_WEBHOOK_TOLERANCE", default_value_t = 300)]
    pub stripe_webhook_tolerance: u64,

    /// Apple Wallet: the Pass Type ID of the organizer's pass certificate (`pass.org.example.tickets`). With
    /// --apple-team-id, --apple-pass-cert, --apple-pass-key and --apple-wwdr-cert, each ticket gets an "Add
    /// to Apple Wallet" link on the order page and in the mail; without them no pass is offered.
    #[arg(long, env = "ISSUER_APPLE_PASS_TYPE_ID")]
    pub apple_pass_type_id: Option<String>,

    /// Apple Wallet: the Team ID of the organizer's Apple developer account.
    #[arg(long, env = "ISSUER_APPLE_TEAM_ID")]
    pub apple_team_id: Option<String>,

    /// Apple Wallet: the pass certificate (PEM), read at start.
    #[arg(long, env = "ISSUER_APPLE_PASS_CERT")]
    pub apple_pass_cert: Option<PathBuf>,

    /// Apple Wallet: the pass certificate's private key (unencrypted PEM, mode 0600), read at start.
    #[arg(long, env = "ISSUER_APPLE_PASS_KEY")]
    pub apple_pass_key: Option<PathBuf>,

    /// Apple Wallet: Apple's WWDR intermediate certificate (PEM) that issued the pass certificate.
    #[arg(long, env = "ISSUER_APPLE_WWDR_CERT")]
    pub apple_wwdr_cert: Option<PathBuf>,

    /// Google Wallet: the issuer id from the Google Pay & Wallet console. With --google-wallet-key, each
    /// ticket gets a "Save to Google Wallet" link on the order page and in the mail.
    #[arg(long, env = "ISSUER_GOOGLE_WALLET_ISSUER_ID")]
    pub google_wallet_issuer_id: Option<String>,

    /// Google Wallet: the service account's key file (JSON with client_email and private_key, mode 0600),
    /// read at start.
    #[arg(long, env = "ISSUER_GOOGLE_WALLET_KEY")]
    pub google_wallet_key: Option<PathBuf>,

    /// The organizer's name on wallet passes (Apple's organizationName, Google's issuerName).
    #[arg(long, env = "ISSUER_WALLET_ORGANIZATION", default_value = "Tickets")]
    pub wallet_organization: String,

    /// Twilio Account SID (`AC` + 32 hex digits). With the auth token and a sender (--twilio-from or
    /// --twilio-messaging-service-sid) the order form asks for an optional mobile number and the ticket link
    /// also goes out by SMS, through the outbox; without them no SMS is offered or sent.
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    pub twilio_account_sid: Option<String>,

    /// Twilio auth token (a secret: give it in the environment, not on the command line).
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<String>,

    /// Sender of the SMS: a Twilio phone number in E.164 (+15017122661) or an alphanumeric sender ID.
    #[arg(long, env = "TWILIO_FROM")]
    pub twilio_from: Option<String>,

    /// Twilio Messaging Service SID (`MG…`), instead of --twilio-from: Twilio picks the sender.
    #[arg(long, env = "TWILIO_MESSAGING_SERVICE_SID")]
    pub twilio_messaging_service_sid: Option<String>,

    /// Twilio API base URL.
    #[arg(long, env = "TWILIO_API_BASE", default_value = "https://api.twilio.com")]
    pub twilio_api_base: String,

    /// Orders one client IP address may place per minute, sustained (JSON API and order form together;
    /// placing an order is the only public way to make this server send mail). 0 turns the limit off,
    /// e.g. for a load test from one address. Past the limit: 429 with Retry-After.
    #[arg(long, env = "ISSUER_ORDER_RATE_PER_MINUTE", default_value_t = 30)]
    pub order_rate_per_minute: u32,

    /// Orders one client IP address may place in a burst before the per-minute rate applies.
    #[arg(long, env = "ISSUER_ORDER_RATE_BURST", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub order_rate_burst: u32,

    /// Reverse proxies in front of this server (IP addresses, comma-separated), e.g. `127.0.0.1,::1` for a
    /// proxy on the same machine. Only for a request arriving from one of them is the client address taken
    /// from `X-Forwarded-For` (the right-most address that is not itself a trusted proxy); anyone else's
    /// header is ignored, so a client cannot pick its own address. Without this, behind a proxy every
    /// customer would share the proxy's per-address limits (the order budget, login and lost-ticket
    /// throttles).
    #[arg(long, env = "ISSUER_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Config {
    /// The defaults with `data_dir`, listening on a random loopback port: for tests and the bench. The
    /// order rate limit is off: tests drive hundreds of orders from the one loopback address (the tests of
    /// the limit turn it on).
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: Config,
        }
        let mut config = <Wrapper as clap::Parser>::parse_from(["issuer"]).config;
        config.data_dir = data_dir.into();
        // The SQLite file in data_dir, whatever DATABASE_URL says: a test or bench names its store itself.
        config.database_url = None;
        config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
        config.web_dir = PathBuf::from("/nonexistent");
        config.order_rate_per_minute = 0;
        config
    }

    pub fn keyring_path(&self) -> PathBuf {
        self.keyring.clone().unwrap_or_else(|| self.data_dir.join("keyring.json"))
    }
}

/// Every setting, with secrets shown only as set or not: a `{:?}` of the configuration in a log line or a
/// panic message must not leak the admin or relay token, the SMTP password, the Stripe keys, or a
/// password inside the database URL.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn secret(value: &Option<String>) -> &'static str {
            if value.is_some() {
                "Some(<redacted>)"
            } else {
                "None"
            }
        }
        // scheme://user:password@host… → scheme://user:<redacted>@host…; anything else is shown as is.
        let database_url = self.database_url.as_deref().map(|url| match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let userinfo = &url[scheme + 3..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => format!("{}{user}:<redacted>{}", &url[..scheme + 3], &url[at..]),
                    None => url.to_owned(),
                }
            }
            _ => url.to_owned(),
        });
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field("keyring", &self.keyring)
            .field("public_url", &self.public_url)
            .field("edge_url", &self.edge_url)
            .field("edge_relay_token", &format_args!("{}", secret(&self.edge_relay_token)))
            .field("edge_relay_seconds", &self.edge_relay_seconds)
            .field("admin_token", &format_args!("{}", secret(&self.admin_token)))
            .field("demo", &self.demo)
            .field("hold_seconds", &self.hold_seconds)
            .field("database_url", &database_url)
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .field("web_dir", &self.web_dir)
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("smtp_user", &self.smtp_user)
            .field("smtp_password", &format_args!("{}", secret(&self.smtp_password)))
            .field("smtp_ca_file", &self.smtp_ca_file)
            .field("mail_from", &self.mail_from)
            .field("email_max_attempts", &self.email_max_attempts)
            .field("email_backoff_ms", &self.email_backoff_ms)
            .field("email_backoff_max_ms", &self.email_backoff_max_ms)
            .field("email_lease_ms", &self.email_lease_ms)
            .field("stripe_secret_key", &format_args!("{}", secret(&self.stripe_secret_key)))
            .field("stripe_webhook_secret", &format_args!("{}", secret(&self.stripe_webhook_secret)))
            .field("stripe_api_base", &self.stripe_api_base)
            .field("stripe_webhook_tolerance", &self.stripe_webhook_tolerance)
            .field("twilio_account_sid", &self.twilio_account_sid)
            .field("twilio_auth_token", &format_args!("{}", secret(&self.twilio_auth_token)))
            .field("twilio_from", &self.twilio_from)
            .field("twilio_messaging_service_sid", &self.twilio_messaging_service_sid)
            .field("twilio_api_base", &self.twilio_api_base)
            .field("apple_pass_type_id", &self.apple_pass_type_id)
            .field("apple_team_id", &self.apple_team_id)
            .field("apple_pass_cert", &self.apple_pass_cert)
            .field("apple_pass_key", &self.apple_pass_key)
            .field("apple_wwdr_cert", &self.apple_wwdr_cert)
            .field("google_wallet_issuer_id", &self.google_wallet_issuer_id)
            .field("google_wallet_key", &self.google_wallet_key)
            .field("wallet_organization", &self.wallet_organization)
            .field("order_rate_per_minute", &self.order_rate_per_minute)
            .field("order_rate_burst", &self.order_rate_burst)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_a_secret() {
        let mut config = Config::for_data_dir("/tmp/x");
        config.admin_token = Some("admin-SECRET-1".into());
        config.edge_relay_token = Some("relay-SECRET-2".into());
        config.smtp_user = Some("mailer".into());
        config.smtp_password = Some("smtp-SECRET-3".into());
        config.stripe_secret_key = Some("sk_test_SECRET-4".into());
        config.stripe_webhook_secret = Some("whsec_SECRET-5".into());
        config.database_url = Some("postgres://tickets:pg-SECRET-6@db.internal:5432/tickets".into());
        config.twilio_auth_token = Some("twilio-SECRET-7".into());
        let shown = format!("{config:?} {config:#?}");
        for secret in ["SECRET-1", "SECRET-2", "SECRET-3", "SECRET-4", "SECRET-5", "SECRET-6", "SECRET-7"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        // What is not secret is still there to debug with.
        assert!(shown.contains("postgres://tickets:<redacted>@db.internal:5432/tickets"), "{shown}");
        assert!(shown.contains("\"mailer\""), "{shown}");
        assert!(shown.contains("admin_token: Some(<redacted>)"), "{shown}");
        assert!(shown.contains("edge_url: None"), "{shown}");
        assert!(shown.contains("twilio_auth_token: Some(<redacted>)"), "{shown}");
    }
}
