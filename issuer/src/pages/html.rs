//! The HTML helpers every server-rendered page (and the confirmation email) shares: escaping, the page
//! frame, the security headers, money, times and inline QR codes.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Escapes text for HTML element content and quoted attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// Formats minor units as `12.34 EUR`.
pub fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02} {}", cents / 100, cents % 100, currency)
}

pub(crate) fn inline_svg(text: &str) -> String {
    match scanner_core::qr::render::svg(text) {
        Ok(svg) => match svg.find("<svg") {
            Some(i) => svg[i..].to_owned(),
            None => String::new(),
        },
        Err(_) => String::new(),
    }
}

/// Security headers of every HTML page. Scripts and styles only from this origin; no framing.
pub(crate) fn html_response(status: StatusCode, html: String) -> Response {
    let mut resp = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; \
             base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    // Order pages carry their access token in the URL: never leak it to another site.
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    resp
}

/// The page frame shared by every customer page. `title` and `main` must already be escaped HTML.
pub(crate) fn layout(title: &str, main: &str, script: Option<&str>) -> String {
    let script = script.map(|s| format!("<script src=\"{s}\" defer></script>")).unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
<link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/static/site.css\">{script}</head><body>\
<a class=\"skip\" href=\"#main\">Skip to content</a>\
<header class=\"site-header\"><div><a href=\"/\">Tickets</a></div></header>\
<main id=\"main\">{main}</main></body></html>\n"
    )
}

/// `Tue 29 Dec 2026, 19:00 CET`: a time in the event's own zone, rendered by the server so that it reads
/// the same with or without JavaScript and whatever the buyer's device is set to.
pub(crate) fn when_html(secs: i64, timezone: &str) -> String {
    let tz = crate::catalog::time::zone_or_utc(timezone);
    format!(
        "<time datetime=\"{}\">{}</time>",
        html_escape(&crate::catalog::time::iso_utc(secs)),
        html_escape(&crate::catalog::time::display(secs, &tz))
    )
}

/// `Tue 29 Dec 2026, 19:00 CET – 23:00 CET` (the end with its date when it is on another local day).
pub(crate) fn when_range_html(starts_at: i64, ends_at: i64, timezone: &str) -> String {
    let tz = crate::catalog::time::zone_or_utc(timezone);
    format!(
        "{} – <time datetime=\"{}\">{}</time>",
        when_html(starts_at, timezone),
        html_escape(&crate::catalog::time::iso_utc(ends_at)),
        html_escape(&crate::catalog::time::display_end(starts_at, ends_at, &tz))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(html_escape(r#"<b a="x">&'"#), "&lt;b a=&quot;x&quot;&gt;&amp;&#x27;");
    }

    #[test]
    fn times_show_in_the_events_zone() {
        // 1798567200 = 2026-12-29 18:00 UTC = 19:00 in Berlin (CET) = 13:00 in New York (EST).
        assert_eq!(
            when_html(1_798_567_200, "Europe/Berlin"),
            "<time datetime=\"2026-12-29T18:00:00Z\">Tue 29 Dec 2026, 19:00 CET</time>"
        );
        assert!(when_html(1_798_567_200, "America/New_York").contains("Tue 29 Dec 2026, 13:00 EST"));
        assert!(
            when_range_html(1_798_567_200, 1_798_567_200 + 4 * 3600, "Europe/Berlin").ends_with(">23:00 CET</time>")
        );
    }
}
