//! "Lost your tickets?": a customer enters their email address and gets, by mail, the links to every
//! order placed with it.
//!
//! - `GET /lost-tickets` — the form (plain HTML, works without script);
//! - `POST /lost-tickets` (form field `email`) — always the same page, "if there are orders for this
//!   address, a mail with their links is on its way", whether or not the address has orders: the answer
//!   never tells who bought tickets. Both cases do the same work in the request (record the request for
//!   the rate limits, look for the address's newest order); only the one with orders adds an outbox job,
//!   and the mail itself is sent later by the outbox worker, so the answers also take about as long.
//!
//! Rate limits (429 with `Retry-After`): at most [`MAX_PER_ADDRESS_PER_HOUR`] requests an hour for one
//! address, and [`MAX_PER_IP_PER_HOUR`] from one client IP address. They are counted in the store
//! (`lookup_requests`, under keyed hashes of the address and the IP, kept one hour), alike for addresses
//! with and without orders, so the limit reveals nothing either. The mail goes only to the address the
//! orders were placed with, so asking for someone else's address sends nothing to the asker.

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use hmac::Mac;

use crate::error::{Error, Result};
use crate::extract::Query;
use crate::i18n::Locale;
use crate::limits::ClientIp;
use crate::pages::html::{html_escape, html_response, page as site_page};
use crate::pages::{remember_locale, request_locale, LangQuery};
use crate::state::AppState;
use crate::util::{clean_email, now};

/// Requests for one address per hour.
pub const MAX_PER_ADDRESS_PER_HOUR: i64 = 3;
/// Requests from one client IP address per hour.
pub const MAX_PER_IP_PER_HOUR: i64 = 10;
const WINDOW_SECS: i64 = 3600;

/// The one answer to every accepted request (a message id of `locales/*/pages.ftl`).
const SENT_MESSAGE: &str = "lost-sent";

pub fn router() -> Router<AppState> {
    Router::new().route("/lost-tickets", get(form_page).post(submit))
}

/// The page in `locale`; `message` is a message id and whether it is an error.
fn page(locale: Locale, status: StatusCode, email: &str, message: Option<(&str, bool)>) -> Response {
    let notice = match message {
        Some((id, true)) => format!("<div class=\"error-summary\" id=\"lookup-result\" role=\"alert\" tabindex=\"-1\" autofocus><p>{}</p></div>", html_escape(&locale.text(id))),
        Some((id, false)) => format!("<div class=\"notice\" id=\"lookup-result\" role=\"status\" tabindex=\"-1\" autofocus><p>{}</p></div>", html_escape(&locale.text(id))),
        None => String::new(),
    };
    let title = locale.text("lost-title");
    let main = format!(
        "<h1>{title}</h1>{notice}<p>{intro}</p><form method=\"post\" action=\"/lost-tickets\" id=\"lookup-form\">\
<input type=\"hidden\" name=\"lang\" value=\"{lang}\">\
<label for=\"lookup-email\">{label}</label><input type=\"email\" id=\"lookup-email\" name=\"email\" \
autocomplete=\"email\" required maxlength=\"254\" value=\"{email}\"><button type=\"submit\">{submit}</button></form>",
        title = html_escape(&title),
        intro = html_escape(&locale.text("lost-intro")),
        lang = locale.tag(),
        label = html_escape(&locale.text("lost-email-label")),
        email = html_escape(email),
        submit = html_escape(&locale.text("lost-submit")),
    );
    html_response(status, site_page(locale, &title, &main, None, Some("/lost-tickets")))
}

async fn form_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<LangQuery>) -> Response {
    let explicit = q.lang.as_deref();
    let mut resp = page(request_locale(&headers, explicit), StatusCode::OK, "", None);
    remember_locale(&mut resp, &state, explicit);
    resp
}

/// A keyed hash of a rate-limit key, so the table holds neither addresses nor IPs in clear.
fn key_hash(state: &AppState, kind: &str, value: &str) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&state.link_secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"lookup-limit\0");
    mac.update(kind.as_bytes());
    mac.update(b"\0");
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn too_many(locale: Locale, message_id: &str) -> Response {
    let mut resp = page(locale, StatusCode::TOO_MANY_REQUESTS, "", Some((message_id, true)));
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(WINDOW_SECS as u64));
    resp
}

async fn submit(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    form: std::result::Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response> {
    let pairs = match form {
        Ok(Form(pairs)) => pairs,
        Err(r) => return Err(Error::BadRequest(format!("not a form submission: {}", r.body_text()))),
    };
    let locale = request_locale(&headers, pairs.iter().find(|(k, _)| k == "lang").map(|(_, v)| v.as_str()));
    let raw: String =
        pairs.iter().find(|(k, _)| k == "email").map(|(_, v)| v.chars().take(300).collect()).unwrap_or_default();
    let email = match clean_email(&raw) {
        Ok(e) => e.to_lowercase(),
        Err(_) => {
            return Ok(page(locale, StatusCode::UNPROCESSABLE_ENTITY, &raw, Some(("lost-invalid-email", true))));
        }
    };
    let t = now();
    let ip_key = key_hash(&state, "ip", &client.to_string());
    let address_key = key_hash(&state, "email", &email);
    let mut tx = state.db.write.begin().await?;
    // Forget what the limits no longer look at, so the table stays as small as one hour of requests.
    sqlx::query("DELETE FROM lookup_requests WHERE created_at <= $1").bind(t - WINDOW_SECS).execute(&mut *tx).await?;
    let count = |key: String| {
        sqlx::query_as::<_, (i64,)>("SELECT COUNT(*) FROM lookup_requests WHERE key_hash = $1 AND created_at > $2")
            .bind(key)
            .bind(t - WINDOW_SECS)
    };
    let (from_ip,) = count(ip_key.clone()).fetch_one(&mut *tx).await?;
    if from_ip >= MAX_PER_IP_PER_HOUR {
        return Ok(too_many(locale, "lost-too-many-network"));
    }
    let (for_address,) = count(address_key.clone()).fetch_one(&mut *tx).await?;
    if for_address >= MAX_PER_ADDRESS_PER_HOUR {
        return Ok(too_many(locale, "lost-too-many-address"));
    }
    for key in [&ip_key, &address_key] {
        sqlx::query("INSERT INTO lookup_requests (key_hash, created_at) VALUES ($1, $2)")
            .bind(key)
            .bind(t)
            .execute(&mut *tx)
            .await?;
    }
    let newest: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM orders WHERE LOWER(customer_email) = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(&email)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((order_id,)) = &newest {
        crate::email::enqueue_lookup(&mut tx, &state, order_id).await?;
    }
    tx.commit().await?;
    if newest.is_some() {
        state.mail_wakeup.notify_one();
    }
    tracing::info!(found = newest.is_some(), "lost-tickets request");
    Ok(page(locale, StatusCode::OK, "", Some((SENT_MESSAGE, false))))
}
