//! The server-rendered pages, so that buying works without JavaScript, and their HTML helpers ([`html`]):
//!
//! - `GET /` lists the events on sale (here);
//! - `GET /events/{id}` and `POST /events/{id}/order`: the order form ([`order_form`]);
//! - `GET /orders/{id}?token=`: the customer's order with each ticket's QR code ([`order_page`]);
//! - `/static/site.css`, `/static/order.js` and `/dashboard/` are compiled into the binary, so the pages look
//!   and work the same whatever `--web-dir` points at.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use self::html::{html_escape, html_response, layout, when_html};
use crate::catalog::load_event;
use crate::error::Result;
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
// Event list

async fn event_list(State(state): State<AppState>) -> Result<Response> {
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
            "<span class=\"soldout\">Sold out</span>".to_owned()
        } else {
            format!("{available} tickets left")
        };
        items.push_str(&format!(
            "<li class=\"card\"><h2><a href=\"/events/{id}\">{name}</a></h2><p class=\"meta\">{venue} · {when}</p>\
<p>{status}</p></li>",
            id = event.id,
            name = html_escape(&event.name),
            venue = html_escape(&event.venue),
            when = when_html(event.starts_at, &event.timezone),
        ));
    }
    let main = if items.is_empty() {
        "<h1>Events</h1><p>No events are on sale right now.</p>".to_owned()
    } else {
        format!("<h1>Events</h1><ul class=\"events\">{items}</ul>")
    };
    Ok(html_response(StatusCode::OK, layout("Events", &main, None)))
}

async fn dashboard_page() -> Response {
    html_response(StatusCode::OK, DASHBOARD_HTML.to_owned())
}
