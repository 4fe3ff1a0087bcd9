//! The customer's order page, `GET /orders/{id}?token=`: the order's status, and each ticket's QR code
//! large enough to scan from a phone screen, with a PNG download link.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::{header, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::html::{html_escape, html_response, inline_svg, page, when_range_html};
use super::{remember_locale, request_locale};
use crate::config::Config;
use crate::error::Result;
use crate::extract::Query;
use crate::i18n::Locale;
use crate::orders::model::{load_order, OrderStatus, OrderView};
use crate::state::AppState;

/// The query of the customer's order page: the access token, and the flag the payment provider's return
/// links add.
#[derive(Debug, Deserialize)]
pub(super) struct OrderPageQuery {
    #[serde(default)]
    token: String,
    /// Back from a completed checkout (the webhook may not have arrived yet).
    #[serde(default)]
    paid: Option<String>,
    /// Back from a checkout the customer left.
    #[serde(default)]
    cancelled: Option<String>,
    /// The language chosen with the switcher.
    #[serde(default)]
    lang: Option<String>,
}

/// The customer's order page: status, and each ticket's QR large enough to scan from a phone screen. Every
/// customer-supplied string is escaped. `token` is the order's access token (for the PNG download links).
/// Everything the page says is in `locale`.
/// `config` says which wallet links each ticket offers.
fn render_order_html(locale: Locale, o: &OrderView, token: &str, query: &OrderPageQuery, config: &Config) -> String {
    let id = html_escape(&o.id);
    let token_q = html_escape(&urlencode_token(token));
    let money = |cents: i64| html_escape(&locale.money(cents, &o.currency));
    let notice = |id: &str, args: &[(&str, crate::i18n::Arg<'_>)]| {
        format!("<div class=\"notice\" role=\"status\"><p>{}</p></div>", locale.tr(id, args))
    };
    let alert = |id: &str, args: &[(&str, crate::i18n::Arg<'_>)]| {
        format!("<div class=\"error-summary\" role=\"alert\"><p>{}</p></div>", locale.tr(id, args))
    };
    let order_again = format!("/events/{}", o.event.id);
    let mut main = format!(
        "<h1>{event}</h1><p class=\"meta\">{venue} · {when}</p>",
        event = html_escape(&o.event.name),
        venue = html_escape(&o.event.venue),
        when = when_range_html(locale, o.event.starts_at, o.event.ends_at, &o.event.timezone)
    );
    // Messages ending in `-html` carry markup; every argument is escaped here.
    let status_line = match o.status {
        OrderStatus::Confirmed => notice("order-confirmed-html", &[("email", html_escape(&o.customer_email).into())]),
        OrderStatus::Pending if query.paid.is_some() => notice("order-paid-pending-html", &[]),
        OrderStatus::Pending if query.cancelled.is_some() => {
            alert("order-cancelled-checkout-html", &[("link", order_again.clone().into())])
        }
        OrderStatus::Pending => notice("order-pending", &[]),
        OrderStatus::Expired | OrderStatus::Cancelled => {
            alert("order-expired-html", &[("status", o.status.as_str().into()), ("link", order_again.clone().into())])
        }
        OrderStatus::Refunded => alert("order-refunded", &[]),
        other => {
            format!("<p>{}</p>", locale.tr("order-status-html", &[("status", html_escape(other.as_str()).into())]))
        }
    };
    main.push_str(&status_line);
    if o.payment_method == "at_door" && o.status == OrderStatus::Confirmed && o.total_cents > 0 {
        main.push_str(&format!(
            "<p><strong>{}</strong></p>",
            html_escape(
                &locale.tr("order-pay-at-door", &[("amount", locale.money(o.total_cents, &o.currency).into())])
            )
        ));
    }
    main.push_str(&format!(
        "<p>{}</p>",
        locale.tr(
            "order-summary-html",
            &[
                ("id", id.clone().into()),
                ("name", html_escape(&o.customer_name).into()),
                ("total", money(o.total_cents).into())
            ]
        )
    ));
    if o.tickets.iter().any(|t| !t.revoked) {
        main.push_str(&format!(
            "<p><a href=\"/orders/{id}/tickets.pdf?token={token_q}\" download=\"{file}\">{link}</a> {hint}</p>",
            file = html_escape(&crate::orders::pdf::file_name(&o.id)),
            link = html_escape(&locale.text("order-pdf-link")),
            hint = html_escape(&locale.text("order-pdf-hint")),
        ));
    }
    for t in &o.tickets {
        let addons =
            if t.addons.is_empty() { String::new() } else { format!(" + {}", html_escape(&t.addons.join(", "))) };
        let body = if t.revoked {
            format!("<p class=\"revoked\">{}</p>", html_escape(&locale.text("ticket-revoked")))
        } else {
            format!(
                "<div class=\"qr\" role=\"img\" aria-label=\"{label}\">{svg}</div>\
<p><a href=\"/orders/{id}/tickets/{seq}/qr.png?token={token_q}\" download=\"ticket-{n}.png\">{download}</a></p>{wallet}",
                n = t.seq + 1,
                seq = t.seq,
                label = html_escape(&locale.tr("ticket-qr-label", &[("n", (t.seq + 1).into())])),
                download = html_escape(&locale.tr("ticket-download", &[("n", (t.seq + 1).into())])),
                svg = inline_svg(&t.qr_text),
                wallet = crate::orders::wallet::ticket_links_html(
                    config,
                    locale,
                    &format!("/orders/{}?token={}", o.id, urlencode_token(token)),
                    t.seq
                ),
            )
        };
        main.push_str(&format!(
            "<section class=\"ticket\" data-seq=\"{seq}\"><h2>{heading}{addons}</h2><p>{holder}</p>{body}\
</section>\n",
            seq = t.seq,
            heading = html_escape(
                &locale
                    .tr("ticket-heading", &[("n", (t.seq + 1).into()), ("type", t.ticket_type_name.as_str().into())])
            ),
            holder = html_escape(&locale.tr("ticket-holder", &[("name", t.holder_name.as_str().into())])),
        ));
    }
    let here = format!("/orders/{}?token={}", o.id, urlencode_token(token));
    let title = html_escape(&locale.tr("order-title", &[("id", o.id.as_str().into())]));
    let mut html = page(locale, &title, &main, None, Some(&here));
    if o.status == OrderStatus::Pending && query.paid.is_some() {
        // Works without JavaScript: the browser reloads until the webhook has confirmed the order.
        html = html.replacen("<head>", "<head><meta http-equiv=\"refresh\" content=\"3\">", 1);
    }
    html
}

/// Order tokens are base64url already; anything else is percent-encoded so it stays one query value.
fn urlencode_token(token: &str) -> String {
    token
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub(super) async fn order_html(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<OrderPageQuery>,
) -> Result<Response> {
    let order = load_order(&state, &id, Some(&q.token)).await?;
    let locale = request_locale(&headers, q.lang.as_deref());
    let html = render_order_html(locale, &order, &q.token, &q, &state.config);
    let mut resp = html_response(StatusCode::OK, html);
    // The URL holds the order's access token: never send it to another site.
    resp.headers_mut().insert("referrer-policy", header::HeaderValue::from_static("no-referrer"));
    remember_locale(&mut resp, &state, q.lang.as_deref());
    Ok(resp)
}
