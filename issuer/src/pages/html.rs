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

/// `2026-12-29 18:00 UTC` (the script shows it in the event's own time zone when it runs).
pub(crate) fn when_html(secs: i64, timezone: &str) -> String {
    let utc = scanner_core::redemption::record::format_utc(u64::try_from(secs).unwrap_or(0));
    // format_utc gives `YYYY-MM-DD HH:MM:SSZ`; people need minutes, machines the ISO form.
    let iso = utc.replacen(' ', "T", 1);
    let shown = utc.get(..16).unwrap_or(&utc);
    format!(
        "<time datetime=\"{}\" data-tz=\"{}\">{} UTC</time>",
        html_escape(&iso),
        html_escape(timezone),
        html_escape(shown)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(html_escape(r#"<b a="x">&'"#), "&lt;b a=&quot;x&quot;&gt;&amp;&#x27;");
    }
}
