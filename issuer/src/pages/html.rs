//! The HTML helpers every server-rendered page (and the confirmation email) shares: escaping, the page
//! frame, the security headers, money, times and inline QR codes.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::i18n::Locale;

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

/// The page frame in `locale`, with `<html lang>`. `switch_to` is the address of this page without a `lang`
/// parameter: the language switcher links to it with `lang=` added (plain links: no JavaScript needed, the
/// event or order stays the same). `title` and `main` must already be escaped HTML.
pub(crate) fn page(locale: Locale, title: &str, main: &str, script: Option<&str>, switch_to: Option<&str>) -> String {
    let script = script.map(|s| format!("<script src=\"{s}\" defer></script>")).unwrap_or_default();
    let switcher = switch_to.map(|here| language_switcher(locale, here)).unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
<link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/static/site.css\">{script}</head><body>\
<a class=\"skip\" href=\"#main\">{skip}</a>\
<header class=\"site-header\"><div><a href=\"/\">{site}</a></div>{switcher}</header>\
<main id=\"main\">{main}</main></body></html>\n",
        lang = locale.tag(),
        skip = html_escape(&locale.text("skip-to-content")),
        site = html_escape(&locale.text("site-name")),
    )
}

/// Links to this page in every language, each named in its own language; the current one is marked.
fn language_switcher(current: Locale, here: &str) -> String {
    let separator = if here.contains('?') { '&' } else { '?' };
    let mut links = String::new();
    for locale in Locale::ALL {
        let name = html_escape(&locale.text("language-self"));
        if locale == current {
            links.push_str(&format!("<li><a aria-current=\"true\" lang=\"{}\">{name}</a></li>", locale.tag()));
        } else {
            links.push_str(&format!(
                "<li><a href=\"{}\" hreflang=\"{tag}\" lang=\"{tag}\">{name}</a></li>",
                html_escape(&format!("{here}{separator}lang={}", locale.tag())),
                tag = locale.tag()
            ));
        }
    }
    format!(
        "<nav class=\"languages\" aria-label=\"{}\"><ul>{links}</ul></nav>",
        html_escape(&current.text("language-switcher"))
    )
}

/// `Tuesday, 29 December 2026, 7:00 PM CET`: a time in `locale` in the event's own zone, rendered by the
/// server so that it reads the same with or without JavaScript and whatever the buyer's device is set to.
pub(crate) fn when_html(locale: Locale, secs: i64, timezone: &str) -> String {
    let tz = crate::catalog::time::zone_or_utc(timezone);
    time_element(secs, &format!("{} {}", locale.date_time(secs, &tz), zone_abbreviation(secs, &tz)))
}

/// `Tuesday, 29 December 2026, 7:00 PM CET – 11:00 PM CET` (the end with its date when it is on another
/// local day).
pub(crate) fn when_range_html(locale: Locale, starts_at: i64, ends_at: i64, timezone: &str) -> String {
    let tz = crate::catalog::time::zone_or_utc(timezone);
    let same_day = locale.date(starts_at, &tz) == locale.date(ends_at, &tz);
    let end = if same_day { locale.time(ends_at, &tz) } else { locale.date_time(ends_at, &tz) };
    format!(
        "{} – {}",
        when_html(locale, starts_at, timezone),
        time_element(ends_at, &format!("{end} {}", zone_abbreviation(ends_at, &tz)))
    )
}

fn time_element(secs: i64, text: &str) -> String {
    format!("<time datetime=\"{}\">{}</time>", html_escape(&crate::catalog::time::iso_utc(secs)), html_escape(text))
}

/// `CET`, `EST`: the zone's abbreviation at `secs`, so that a buyer elsewhere knows whose clock it is.
fn zone_abbreviation(secs: i64, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_zoned_datetime(tz.clone()).strftime("%Z").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(html_escape(r#"<b a="x">&'"#), "&lt;b a=&quot;x&quot;&gt;&amp;&#x27;");
    }

    #[test]
    fn times_show_in_the_events_zone_in_the_buyers_language() {
        // 1798567200 = 2026-12-29 18:00 UTC (`date -u -d @1798567200`) = 19:00 in Berlin (CET) = 13:00 in New
        // York (EST), a Tuesday.
        assert_eq!(
            when_html(Locale::En, 1_798_567_200, "Europe/Berlin"),
            "<time datetime=\"2026-12-29T18:00:00Z\">Tuesday, 29 December 2026, 7:00 PM CET</time>"
        );
        assert!(when_html(Locale::De, 1_798_567_200, "America/New_York")
            .contains(">Dienstag, 29. Dezember 2026, 13:00 EST</time>"));
        assert!(when_range_html(Locale::Fr, 1_798_567_200, 1_798_567_200 + 4 * 3600, "Europe/Berlin").ends_with(
            ">mardi 29 décembre 2026 à 19:00 CET</time> – <time datetime=\"2026-12-29T22:00:00Z\">23:00 CET</time>"
        ));
        // Past midnight: the end shows its day.
        assert!(when_range_html(Locale::En, 1_798_567_200, 1_798_567_200 + 8 * 3600, "Europe/Berlin")
            .ends_with(">Wednesday, 30 December 2026, 3:00 AM CET</time>"));
    }

    #[test]
    fn pages_say_their_language_and_offer_the_others() {
        let html = page(Locale::De, "T", "<p>x</p>", None, Some("/events/3"));
        assert!(html.contains("<html lang=\"de\">"), "{html}");
        assert!(html.contains("<a href=\"/events/3?lang=fr\" hreflang=\"fr\" lang=\"fr\">Français</a>"), "{html}");
        assert!(html.contains("<a href=\"/events/3?lang=en\" hreflang=\"en\" lang=\"en\">English</a>"), "{html}");
        assert!(html.contains("<a aria-current=\"true\" lang=\"de\">Deutsch</a>"), "{html}");
        assert!(html.contains("Zum Inhalt springen"), "{html}");
        let order = page(Locale::En, "T", "", None, Some("/orders/ord_1?token=a-b"));
        assert!(order.contains("href=\"/orders/ord_1?token=a-b&amp;lang=de\""), "{order}");
    }
}
