//! The server-rendered pages, so that buying works without JavaScript, and their HTML helpers ([`html`]):
//!
//! - `GET /` lists the events on sale (here);
//! - `GET /events/{id}` and `POST /events/{id}/order`: the order form ([`order_form`]);
//! - `GET /orders/{id}?token=`: the customer's order with each ticket's QR code ([`order_page`]);
//! - `/static/site.css`, `/static/order.js` and `/dashboard/` are compiled into the binary, so the pages look
//!   and work the same whatever `--web-dir` points at.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use self::html::{html_escape, html_response, page, when_html};
use crate::catalog::load_event;
use crate::error::Result;
use crate::extract::Query;
use crate::i18n::Locale;
use crate::state::AppState;
use crate::util::now;

pub mod html;
pub mod order_form;
pub mod order_page;

const SITE_CSS: &str = include_str!("../../../web/static/site.css");
const ORDER_JS: &str = include_str!("../../../web/static/order.js");
const DASHBOARD_HTML: &str = include_str!("../../../web/dashboard/index.html");
const DASHBOARD_COMMON_JS: &str = include_str!("../../../web/dashboard/common.js");
const DASHBOARD_JS: &str = include_str!("../../../web/dashboard/dashboard.js");
const DASHBOARD_CATALOG_JS: &str = include_str!("../../../web/dashboard/catalog.js");
const DASHBOARD_ORDERS_JS: &str = include_str!("../../../web/dashboard/orders.js");
const DASHBOARD_CSS: &str = include_str!("../../../web/dashboard/dashboard.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(event_list))
        .route("/events/{id}", get(order_form::event_page))
        .route("/events/{id}/order", post(order_form::submit_order))
        .route("/orders/{id}", get(order_page::order_html))
        .route("/static/site.css", get(|| async { asset("text/css; charset=utf-8", SITE_CSS) }))
        .route("/static/order.js", get(|| async { asset("text/javascript; charset=utf-8", ORDER_JS) }))
        .route("/dashboard", get(|| async { Redirect::permanent("/dashboard/") }))
        .route("/dashboard/", get(dashboard_page))
        .route("/dashboard/common.js", get(|| async { asset("text/javascript; charset=utf-8", DASHBOARD_COMMON_JS) }))
        .route("/dashboard/dashboard.js", get(|| async { asset("text/javascript; charset=utf-8", DASHBOARD_JS) }))
        .route("/dashboard/catalog.js", get(|| async { asset("text/javascript; charset=utf-8", DASHBOARD_CATALOG_JS) }))
        .route("/dashboard/orders.js", get(|| async { asset("text/javascript; charset=utf-8", DASHBOARD_ORDERS_JS) }))
        .route("/dashboard/dashboard.css", get(|| async { asset("text/css; charset=utf-8", DASHBOARD_CSS) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    // Short cache: assets change with the binary and carry no version in their name.
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=300")], body).into_response()
}

// -------------------------------------------------------------------------------------------------------
// Language

/// The cookie that keeps the buyer's choice from the language switcher (not a secret; a year).
const LANG_COOKIE: &str = "tickets_lang";

/// The `lang` parameter of every customer page: the language switcher's links set it.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct LangQuery {
    #[serde(default)]
    pub(crate) lang: Option<String>,
}

/// The language of a page: an explicit choice (the `lang` parameter or form field, from the switcher) wins,
/// then the choice remembered in the cookie, then the browser's `Accept-Language`; English otherwise.
pub(crate) fn request_locale(headers: &HeaderMap, explicit: Option<&str>) -> Locale {
    explicit
        .and_then(Locale::from_tag)
        .or_else(|| order_form::cookie(headers, LANG_COOKIE).and_then(Locale::from_tag))
        .unwrap_or_else(|| {
            Locale::negotiate(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or(""))
        })
}

/// Keeps an explicit choice of language for the buyer's next pages.
pub(crate) fn remember_locale(resp: &mut Response, state: &AppState, explicit: Option<&str>) {
    let Some(locale) = explicit.and_then(Locale::from_tag) else { return };
    let secure = if state.public_url.starts_with("https://") { "; Secure" } else { "" };
    let cookie = format!("{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax{secure}", locale.tag());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

// -------------------------------------------------------------------------------------------------------
// Event list

async fn event_list(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<LangQuery>) -> Result<Response> {
    let locale = request_locale(&headers, q.lang.as_deref());
    let ids: Vec<(i64,)> = sqlx::query_as("SELECT id FROM events WHERE ends_at > $1 ORDER BY starts_at, id")
        .bind(now())
        .fetch_all(&state.db.read)
        .await?;
    let mut items = String::new();
    for (id,) in ids {
        let event = load_event(&state, id).await?;
        if !event.ticket_types.iter().any(|t| t.on_sale) {
            continue;
        }
        let available: i64 = event.ticket_types.iter().filter(|t| t.on_sale).map(|t| t.available.max(0)).sum();
        let status = if available == 0 {
            format!("<span class=\"soldout\">{}</span>", html_escape(&locale.text("sold-out")))
        } else {
            html_escape(&locale.tr("tickets-left", &[("count", available.into())]))
        };
        items.push_str(&format!(
            "<li class=\"card\"><h2><a href=\"/events/{id}\">{name}</a></h2><p class=\"meta\">{venue} · {when}</p>\
<p>{status}</p></li>",
            id = event.id,
            name = html_escape(&event.name),
            venue = html_escape(&event.venue),
            when = when_html(locale, event.starts_at, &event.timezone),
        ));
    }
    let title = html_escape(&locale.text("events-title"));
    let main = if items.is_empty() {
        format!("<h1>{title}</h1><p>{}</p>", html_escape(&locale.text("events-none")))
    } else {
        format!("<h1>{title}</h1><ul class=\"events\">{items}</ul>")
    };
    let mut resp = html_response(StatusCode::OK, page(locale, &title, &main, None, Some("/")));
    remember_locale(&mut resp, &state, q.lang.as_deref());
    Ok(resp)
}

async fn dashboard_page() -> Response {
    html_response(StatusCode::OK, DASHBOARD_HTML.to_owned())
}
