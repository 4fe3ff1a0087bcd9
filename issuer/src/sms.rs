//! Tickets by SMS (issue #17): the buyer may give a mobile number, and the order's link (the order page
//! with its access token, as in the ticket mail) goes out by SMS through the same durable outbox as the
//! mail ([`crate::email`]): a job with `channel = 'sms'` in `email_jobs`, written in the transaction that
//! writes the mail job, leased, retried with the same backoff, dead-lettered and retried from the admin
//! outbox API like a mail.
//!
//! The provider is Twilio's Messages API: `POST {api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json`
//! with HTTP Basic auth (Account SID : auth token) and the form fields `To`, `From` (or
//! `MessagingServiceSid`) and `Body`; it answers 201 with the message (`sid`, `status`), or an error object
//! `{code, message, more_info, status}`. A 429, a 5xx or no answer is retried; any other 4xx (an invalid
//! `To`, a number that cannot take SMS, wrong credentials) is dead-lettered at once with Twilio's code and
//! message, since sending the same request again cannot succeed.
//!
//! Twilio's Messages API takes no idempotency key: delivery is at-least-once, like the mail's (a crash
//! between Twilio's answer and the outbox's update sends that SMS again after the restart).
//!
//! The SMS is in the order's language (`sms-tickets` in issuer/locales/*/email.ftl), as the mail is; the
//! form's label and message are `form-phone-label` and `form-error-phone` (pages.ftl). The JSON API's
//! validation messages are English, as every other field's.

use std::time::Duration;

use phonenumber::{Mode, Type};

use crate::config::Config;
use crate::db::Tx;
use crate::error::{Error, Result, SmsKind};
use crate::i18n::Locale;
use crate::orders::model::{load_order, order_link};
use crate::state::AppState;
use crate::util::now_ms;

/// The outbox channel of an SMS job (`email_jobs.channel`).
pub const CHANNEL: &str = "sms";

/// Twilio's limit of one message's `Body`, in characters (UTF-16 code units, as a message is encoded).
pub const MAX_BODY_CHARS: usize = 1600;

/// Longest phone number input accepted, in characters: the longest E.164 number has 15 digits, and
/// spaces, brackets and dashes seldom double that.
pub const MAX_PHONE_INPUT_CHARS: usize = 40;

/// Timeout of one call to the provider; far below the outbox lease (`--email-lease-ms`).
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether this server sends SMS: the order form then asks for a mobile number. The settings are checked
/// whole at start ([`Twilio::from_config`]), so an Account SID means a complete configuration.
pub fn offered(config: &Config) -> bool {
    config.twilio_account_sid.is_some()
}

/// Validates a buyer's mobile number and returns it in E.164 (`+491701234567`). Accepts the usual ways of
/// writing one with its country code (`+49 170 1234567`, `+1 (415) 555-0100`, `0049 170 1234567`); the
/// number must be valid for its country by libphonenumber's metadata and must not be a landline or a
/// service number, which cannot receive an SMS.
pub fn normalize_phone(input: &str) -> Result<String> {
    let invalid = |message: &str| Err(Error::validation("phone", message));
    let raw = input.trim();
    if raw.chars().count() > MAX_PHONE_INPUT_CHARS {
        return invalid("is too long");
    }
    // Only what people write in a phone number reaches the parser.
    if !raw.chars().all(|c| c.is_ascii_digit() || " +-()./".contains(c)) {
        return invalid(
            "may contain only digits, spaces and + - ( ) . /, with the country code first (+49 170 1234567)",
        );
    }
    let international = match raw.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => raw.to_owned(),
    };
    if !international.starts_with('+') {
        return invalid(
            "needs its country code: start with + and the country code (for example +49 170 1234567 or +1 415 555 0100)",
        );
    }
    let Ok(number) = phonenumber::parse(None, &international) else {
        return invalid("is not a phone number with a country code we know");
    };
    if !number.is_valid() {
        return invalid("is not a valid number for its country: check the digits and the country code");
    }
    match number.number_type(&phonenumber::metadata::DATABASE) {
        Type::Mobile | Type::FixedLineOrMobile | Type::PersonalNumber | Type::Voip => {
            Ok(number.format().mode(Mode::E164).to_string())
        }
        Type::FixedLine => {
            invalid("is a landline number, which cannot receive an SMS: give a mobile number with its country code")
        }
        _ => invalid("is not a mobile number (a service or special number cannot receive an SMS)"),
    }
}

/// The SMS with the order's link, in `locale`. The event's name is shortened if the whole would be over
/// Twilio's limit; a link alone over the limit is an error.
pub fn ticket_message(locale: Locale, event_name: &str, link: &str) -> Result<String, SmsKind> {
    let text = |name: &str| locale.tr("sms-tickets", &[("event", name.into()), ("link", link.into())]);
    let units = |s: &str| s.encode_utf16().count();
    let mut message = text(event_name);
    if units(&message) > MAX_BODY_CHARS {
        let room = MAX_BODY_CHARS.saturating_sub(units(&text("…")));
        let mut name = String::new();
        for c in event_name.chars() {
            if units(&name) + c.len_utf16() > room {
                break;
            }
            name.push(c);
        }
        name.push('…');
        message = text(&name);
    }
    if units(&message) > MAX_BODY_CHARS {
        return Err(SmsKind::Message(format!("the order link alone is over {MAX_BODY_CHARS} characters")));
    }
    Ok(message)
}

/// Adds an SMS job of `kind` to the outbox for each of `order_ids` that has a phone number, inside the
/// caller's transaction (the one that writes the mail jobs of the same sending); nothing if this server does
/// not send SMS. `message_id` names each order's job: the outbox's unique key, so the same key again adds
/// nothing. One query finds the orders with a phone number, however many orders a batch has.
pub async fn enqueue(
    tx: &mut Tx<'_>,
    state: &AppState,
    order_ids: &[&str],
    kind: &str,
    message_id: impl Fn(&str) -> String,
) -> Result<()> {
    if !offered(&state.config) || order_ids.is_empty() {
        return Ok(());
    }
    let t = now_ms();
    // Well below either store's limit of bound parameters.
    for chunk in order_ids.chunks(500) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT id FROM orders WHERE phone IS NOT NULL AND id IN ({})", placeholders.join(", "));
        // Only the single-order form stays prepared: one statement per batch size would crowd the cache.
        let mut query = sqlx::query_as::<_, (String,)>(&sql).persistent(chunk.len() == 1);
        for id in chunk {
            query = query.bind(*id);
        }
        for (order_id,) in query.fetch_all(&mut **tx).await? {
            sqlx::query(
                "INSERT INTO email_jobs (order_id, kind, message_id, status, attempts, next_attempt_at, created_at, channel)
                 VALUES ($1, $2, $3, 'pending', 0, $4, $4, $5) ON CONFLICT (message_id) DO NOTHING",
            )
            .bind(&order_id)
            .bind(kind)
            .bind(message_id(&order_id))
            .bind(t)
            .bind(CHANNEL)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// Sends the SMS of one outbox job of `order_id`: `sent`, or `skipped` when every ticket of the order is
/// revoked (as the mail). Errors are [`Error::Sms`]; the worker dead-letters the permanent ones at once.
pub async fn send_job(state: &AppState, twilio: Option<&Twilio>, order_id: &str) -> Result<&'static str> {
    let twilio = twilio.ok_or_else(|| SmsKind::NotConfigured("no Twilio settings on this server".into()))?;
    let order = load_order(state, order_id, None).await?;
    if order.tickets.iter().all(|t| t.revoked) {
        return Ok("skipped");
    }
    let (phone,): (Option<String>,) =
        sqlx::query_as("SELECT phone FROM orders WHERE id = $1").bind(order_id).fetch_one(&state.db.read).await?;
    let phone = phone.ok_or_else(|| SmsKind::Message("the order has no phone number".into()))?;
    let body = ticket_message(order.locale, &order.event.name, &order_link(state, &order.id))?;
    let sid = twilio.send(&phone, &body).await?;
    tracing::info!(order = %order_id, sid = %sid, "SMS accepted by the provider");
    Ok("sent")
}

/// Who the SMS is from: a number or sender ID, or a Messaging Service that picks one.
#[derive(Debug, Clone)]
enum Sender {
    From(String),
    MessagingService(String),
}

/// A client of Twilio's Messages API.
pub struct Twilio {
    account_sid: String,
    auth_token: String,
    sender: Sender,
    api_base: String,
    http: reqwest::Client,
}

/// Never prints the auth token.
impl std::fmt::Debug for Twilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Twilio")
            .field("account_sid", &self.account_sid)
            .field("sender", &self.sender)
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

/// `prefix` followed by 32 hexadecimal digits: the shape of Twilio's SIDs (`AC…`, `MG…`).
fn is_sid(value: &str, prefix: &str) -> bool {
    value.len() == 34 && value.starts_with(prefix) && value[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// A sender Twilio accepts in `From`: an E.164 number, or an alphanumeric sender ID (1 to 11 letters,
/// digits and spaces, at least one letter).
fn is_sender(value: &str) -> bool {
    let e164 =
        value.strip_prefix('+').is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
    let alphanumeric = (1..=11).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && value.bytes().any(|b| b.is_ascii_alphabetic());
    e164 || alphanumeric
}

impl Twilio {
    /// The client, or `None` when no Twilio setting is given. Incomplete or malformed settings are an
    /// error, so that the server does not start believing it sends SMS when it cannot.
    pub fn from_config(config: &Config) -> Result<Option<Self>> {
        let bad = |m: &str| Err(SmsKind::NotConfigured(m.to_owned()).into());
        let (sid, token) = match (&config.twilio_account_sid, &config.twilio_auth_token) {
            (None, None) if config.twilio_from.is_none() && config.twilio_messaging_service_sid.is_none() => {
                return Ok(None)
            }
            (Some(sid), Some(token)) => (sid.trim(), token.trim()),
            _ => return bad("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are both needed to send SMS"),
        };
        if !is_sid(sid, "AC") {
            return bad("TWILIO_ACCOUNT_SID is not an Account SID (AC followed by 32 hexadecimal digits)");
        }
        if token.is_empty() {
            return bad("TWILIO_AUTH_TOKEN is empty");
        }
        let sender = match (&config.twilio_from, &config.twilio_messaging_service_sid) {
            (Some(from), None) if is_sender(from.trim()) => Sender::From(from.trim().to_owned()),
            (Some(_), None) => {
                return bad("TWILIO_FROM is neither an E.164 number (+15017122661) nor an alphanumeric sender ID")
            }
            (None, Some(service)) if is_sid(service.trim(), "MG") => {
                Sender::MessagingService(service.trim().to_owned())
            }
            (None, Some(_)) => return bad("TWILIO_MESSAGING_SERVICE_SID is not a Messaging Service SID (MG…)"),
            (Some(_), Some(_)) => return bad("give TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID, not both"),
            (None, None) => return bad("TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID is needed to send SMS"),
        };
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| SmsKind::NotConfigured(format!("HTTP client: {e}")))?;
        Ok(Some(Twilio {
            account_sid: sid.to_owned(),
            auth_token: token.to_owned(),
            sender,
            api_base: config.twilio_api_base.trim_end_matches('/').to_owned(),
            http,
        }))
    }

    /// Sends `body` to `to` (E.164) and returns the message's SID.
    pub async fn send(&self, to: &str, body: &str) -> std::result::Result<String, SmsKind> {
        let mut form = vec![("To", to), ("Body", body)];
        match &self.sender {
            Sender::From(from) => form.push(("From", from)),
            Sender::MessagingService(service) => form.push(("MessagingServiceSid", service)),
        }
        let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", self.api_base, self.account_sid);
        let resp = self
            .http
            .post(url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&form)
            .send()
            .await
            .map_err(|e| SmsKind::Unavailable(e.without_url().to_string()))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| SmsKind::Unavailable(e.without_url().to_string()))?;
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if status.is_success() {
            // Accepted: a missing SID is no reason to send the message again.
            return Ok(answer["sid"].as_str().unwrap_or("(no sid in the answer)").to_owned());
        }
        let message = match answer["message"].as_str() {
            Some(m) => m.to_owned(),
            None => text.chars().take(200).collect(),
        };
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(SmsKind::Unavailable(format!("HTTP {}: {message}", status.as_u16())));
        }
        Err(SmsKind::Refused {
            status: status.as_u16(),
            code: answer["code"].as_i64().unwrap_or(0),
            message,
            more_info: answer["more_info"].as_str().unwrap_or("").to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected E.164 forms written out by hand from the inputs (country code + national number, no
    /// trunk zero, no separators).
    #[test]
    fn usual_ways_of_writing_a_mobile_number_become_e164() {
        for (input, e164) in [
            ("+49 170 1234567", "+491701234567"),
            ("0049 170 1234567", "+491701234567"),
            ("+49 (0)170 1234567", "+491701234567"),
            ("+1 (415) 555-0100", "+14155550100"),
            ("  +44 7911 123456 ", "+447911123456"),
            ("+33 6 12 34 56 78", "+33612345678"),
        ] {
            assert_eq!(normalize_phone(input).unwrap_or_else(|e| panic!("{input}: {e}")), e164, "{input}");
        }
    }

    #[test]
    fn numbers_that_cannot_take_an_sms_are_refused_with_a_reason() {
        let message = |input: &str| match normalize_phone(input) {
            Err(Error::Validation { field: "phone", message }) => message,
            other => panic!("{input}: {other:?}"),
        };
        assert!(message("0170 1234567").contains("country code"));
        assert!(message("170 1234567").contains("country code"));
        assert!(message("+49 170 12345ab").contains("only digits"));
        assert!(message("+49 170 1234567; DROP").contains("only digits"));
        assert!(message(&"+4917012345678".repeat(4)).contains("too long"));
        // Too few digits for a German mobile number.
        assert!(message("+49 170 12").contains("not a valid number"));
        // A Berlin landline (030 …).
        assert!(message("+49 30 1234567").contains("landline"));
        assert!(message("+").contains("not a phone number"));
    }

    /// The parser sees only these characters; none of their combinations may panic it (an order request
    /// reaches it). A seeded random walk over short strings, most behind a real country code.
    #[test]
    fn no_string_of_the_accepted_characters_panics_the_parser() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let alphabet: Vec<char> = "+0123456789 ()-./".chars().collect();
        for _ in 0..3_000 {
            let len = rng.gen_range(0..=20);
            let tail: String = (0..len).map(|_| alphabet[rng.gen_range(0..alphabet.len())]).collect();
            for prefix in ["", "+", "00", "+1", "+49", "+44 ", "+33(0)"] {
                let _ = normalize_phone(&format!("{prefix}{tail}"));
            }
        }
    }

    #[test]
    fn the_message_stays_within_twilios_limit() {
        let link = "https://tickets.example.org/orders/ord_x?token=abc";
        assert_eq!(
            ticket_message(Locale::En, "Test Night", link).unwrap(),
            format!("Your tickets for Test Night: {link}")
        );
        assert_eq!(
            ticket_message(Locale::De, "Test Night", link).unwrap(),
            format!("Ihre Tickets für Test Night: {link}")
        );
        // 2,000 characters of name, one of them outside the BMP (two UTF-16 units).
        let long = format!("🎉{}", "x".repeat(1999));
        let m = ticket_message(Locale::En, &long, link).unwrap();
        assert!(m.encode_utf16().count() <= MAX_BODY_CHARS, "{}", m.encode_utf16().count());
        assert!(m.ends_with(link) && m.starts_with("Your tickets for 🎉xxx") && m.contains("…: "), "{m}");
        assert!(matches!(ticket_message(Locale::En, "x", &"a".repeat(1601)), Err(SmsKind::Message(_))));
    }

    #[test]
    fn settings_are_checked_whole() {
        let sid = format!("AC{}", "0a".repeat(16));
        let mut config = Config::for_data_dir("/tmp/x");
        assert!(Twilio::from_config(&config).unwrap().is_none());
        config.twilio_account_sid = Some(sid.clone());
        assert!(Twilio::from_config(&config).is_err(), "no token");
        config.twilio_auth_token = Some("secret-token".into());
        assert!(Twilio::from_config(&config).is_err(), "no sender");
        config.twilio_from = Some("+15017122661".into());
        let client = Twilio::from_config(&config).unwrap().unwrap();
        assert!(!format!("{client:?}").contains("secret-token"));
        config.twilio_messaging_service_sid = Some(format!("MG{}", "1".repeat(32)));
        assert!(Twilio::from_config(&config).is_err(), "both senders");
        config.twilio_from = None;
        assert!(Twilio::from_config(&config).unwrap().is_some());
        config.twilio_account_sid = Some("AC/../../x".into());
        assert!(Twilio::from_config(&config).is_err(), "not a SID");
    }
}
