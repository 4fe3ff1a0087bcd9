//! The customer's order page, `GET /orders/{id}?token=`: the order's status, and each ticket's QR code
//! large enough to scan from a phone screen, with a PNG download link.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::html::{html_escape, html_response, inline_svg, layout, money, when_range_html};
use crate::error::Result;
use crate::extract::Query;
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
}

/// The customer's order page: status, and each ticket's QR large enough to scan from a phone screen. Every
/// customer-supplied string is escaped. `token` is the order's access token (for the PNG download links).
fn render_order_html(o: &OrderView, token: &str, query: &OrderPageQuery) -> String {
    let id = html_escape(&o.id);
    let token_q = html_escape(&urlencode_token(token));
    let mut main = format!(
        "<h1>{event}</h1><p class=\"meta\">{venue} · {when}</p>",
        event = html_escape(&o.event.name),
        venue = html_escape(&o.event.venue),
        when = when_range_html(o.event.starts_at, o.event.ends_at, &o.event.timezone)
    );
    let status_line = match o.status {
        OrderStatus::Confirmed => format!(
            "<div class=\"notice\" role=\"status\"><p><strong>Your order is confirmed.</strong> Your tickets are on \
their way to <strong>{}</strong>. You can also show them from this page at the door.</p></div>",
            html_escape(&o.customer_email)
        ),
        OrderStatus::Pending if query.paid.is_some() => {
            "<div class=\"notice\" role=\"status\"><p><strong>Thank you!</strong> We are confirming your payment; \
this page refreshes by itself in a few seconds.</p></div>"
                .to_owned()
        }
        OrderStatus::Pending if query.cancelled.is_some() => format!(
            "<div class=\"error-summary\" role=\"alert\"><p>You left the payment page, so nothing was charged. Your \
tickets stay reserved for a short while: <a href=\"/events/{}\">order again</a>.</p></div>",
            o.event.id
        ),
        OrderStatus::Pending => {
            "<div class=\"notice\" role=\"status\"><p>This order is waiting for payment.</p></div>".to_owned()
        }
        OrderStatus::Expired | OrderStatus::Cancelled => format!(
            "<div class=\"error-summary\" role=\"alert\"><p>This order is <strong>{}</strong>: the reservation ran \
out before a payment arrived, and nothing was charged. <a href=\"/events/{}\">Order again</a>.</p></div>",
            html_escape(o.status.as_str()),
            o.event.id
        ),
        OrderStatus::Refunded => {
            "<div class=\"error-summary\" role=\"alert\"><p>This order was refunded; its tickets are no \
longer valid.</p></div>"
                .to_owned()
        }
        other => format!("<p>Status: <strong>{}</strong></p>", html_escape(other.as_str())),
    };
    main.push_str(&status_line);
    if o.payment_method == "at_door" && o.status == OrderStatus::Confirmed && o.total_cents > 0 {
        main.push_str(&format!(
            "<p><strong>Please pay {} at the door.</strong></p>",
            html_escape(&money(o.total_cents, &o.currency))
        ));
    }
    main.push_str(&format!(
        "<p>Order <code>{id}</code> for {name} · total {total}</p>",
        name = html_escape(&o.customer_name),
        total = html_escape(&money(o.total_cents, &o.currency))
    ));
    if o.tickets.iter().any(|t| !t.revoked) {
        main.push_str(&format!(
            "<p><a href=\"/orders/{id}/tickets.pdf?token={token_q}\" download=\"{file}\">Download all tickets as a \
PDF</a> (one page per ticket, for printing)</p>",
            file = html_escape(&crate::orders::pdf::file_name(&o.id))
        ));
    }
    for t in &o.tickets {
        let addons =
            if t.addons.is_empty() { String::new() } else { format!(" + {}", html_escape(&t.addons.join(", "))) };
        let body = if t.revoked {
            "<p class=\"revoked\">This ticket was revoked (refunded or cancelled).</p>".to_owned()
        } else {
            format!(
                "<div class=\"qr\" role=\"img\" aria-label=\"QR code of ticket {n}\">{svg}</div>\
<p><a href=\"/orders/{id}/tickets/{seq}/qr.png?token={token_q}\" download=\"ticket-{n}.png\">Download ticket {n} as \
an image</a></p>",
                n = t.seq + 1,
                seq = t.seq,
                svg = inline_svg(&t.qr_text)
            )
        };
        main.push_str(&format!(
            "<section class=\"ticket\" data-seq=\"{seq}\"><h2>Ticket {n} — {ty}{addons}</h2><p>Holder: {holder}</p>{body}\
</section>\n",
            seq = t.seq,
            n = t.seq + 1,
            ty = html_escape(&t.ticket_type_name),
            holder = html_escape(&t.holder_name),
        ));
    }
    let mut html = layout(&format!("Order {id}"), &main, None);
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
    Query(q): Query<OrderPageQuery>,
) -> Result<Response> {
    let order = load_order(&state, &id, Some(&q.token)).await?;
    let html = render_order_html(&order, &q.token, &q);
    let mut resp = html_response(StatusCode::OK, html);
    // The URL holds the order's access token: never send it to another site.
    resp.headers_mut().insert("referrer-policy", header::HeaderValue::from_static("no-referrer"));
    Ok(resp)
}
