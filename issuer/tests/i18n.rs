//! Languages (issue #17) against a real server and store: the order form in the browser's language
//! (Accept-Language) or the one chosen with the switcher (`?lang=`, remembered in a cookie), its errors in
//! that language, and an order placed in German whose ticket mail (a real SMTP server, aiosmtpd) and PDF
//! (read back with poppler's `pdftotext`) are German, with the event's date in the event's time zone.
//!
//! Expected strings are written by hand: the test event starts at 2 000 000 000 = 2033-05-18 03:33:20 UTC
//! (`date -u -d @2000000000`), a Wednesday, 05:33 CEST in Berlin, and ends at 2 000 010 000 = 08:20 CEST.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{start, start_with, App};
use mail_parser::{MessageParser, MimeHeaders};
use reqwest::redirect::Policy;
use serde_json::json;
use smtp_support as smtp;

#[path = "common/smtp.rs"]
mod smtp_support;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// The order form as a browser with these request headers gets it: (status, Set-Cookie values, HTML).
async fn form(app: &App, event: i64, query: &str, headers: &[(&str, &str)]) -> (u16, Vec<String>, String) {
    let mut req = no_redirects().get(app.url(&format!("/events/{event}{query}")));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let cookies = resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    (status, cookies, resp.text().await.unwrap())
}

/// Posts the order form as the browser that loaded `html` (its CSRF cookie and token, the hidden language).
async fn post_form(
    app: &App,
    event: i64,
    cookies: &[String],
    html: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let token = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let lang = html.split("name=\"lang\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let csrf_cookie = cookies.iter().find(|c| c.starts_with("tickets_csrf=")).unwrap();
    let mut form: Vec<(&str, &str)> = vec![("csrf", &token), ("lang", &lang)];
    form.extend_from_slice(fields);
    no_redirects()
        .post(app.url(&format!("/events/{event}/order")))
        .header("cookie", csrf_cookie.split(';').next().unwrap())
        .header("origin", app.running.url())
        .form(&form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_order_form_speaks_the_browsers_language_and_the_switcher_wins() {
    let app = start().await;
    let event = app.event(100, 2500).await;

    let (s, cookies, html) = form(&app, event, "", &[("accept-language", "de-AT,de;q=0.9,en;q=0.5")]).await;
    assert_eq!(s, 200);
    assert!(html.contains("<html lang=\"de\">"), "{html}");
    for german in [
        "Tickets bestellen",
        "Name auf den Tickets",
        "Anzahl Standard-Tickets",
        "noch 100",
        "Mittwoch, 18. Mai 2033, 05:33 CEST",
        "25,00\u{a0}€",
        "Zum Inhalt springen",
    ] {
        assert!(html.contains(german), "{german:?} missing: {html}");
    }
    assert!(!html.contains("Order tickets"), "{html}");
    // The switcher: plain links to the same event in the other languages.
    assert!(html.contains(&format!("href=\"/events/{event}?lang=fr\"")), "{html}");
    assert!(html.contains(&format!("href=\"/events/{event}?lang=en\"")), "{html}");
    // Negotiated, not chosen: nothing is remembered.
    assert!(!cookies.iter().any(|c| c.starts_with("tickets_lang=")), "{cookies:?}");

    // ?lang=fr wins over the header and is remembered.
    let (s, cookies, html) = form(&app, event, "?lang=fr", &[("accept-language", "de")]).await;
    assert_eq!(s, 200);
    assert!(html.contains("<html lang=\"fr\">"), "{html}");
    for french in ["Commander les billets", "mercredi 18 mai 2033 à 05:33 CEST", "25,00\u{202f}€", "100 restants"] {
        assert!(html.contains(french), "{french:?} missing: {html}");
    }
    let remembered = cookies.iter().find(|c| c.starts_with("tickets_lang=")).expect("the choice is remembered");
    assert!(remembered.starts_with("tickets_lang=fr;") && remembered.contains("SameSite=Lax"), "{remembered}");

    // The remembered choice wins over the header on the next page.
    let (_, _, html) = form(&app, event, "", &[("accept-language", "de"), ("cookie", "tickets_lang=fr")]).await;
    assert!(html.contains("<html lang=\"fr\">"), "{html}");

    // A language this system does not speak, or none at all: English.
    for header in [&[("accept-language", "es-ES, *;q=0.1")][..], &[]] {
        let (_, _, html) = form(&app, event, "", header).await;
        assert!(html.contains("<html lang=\"en\">"), "{html}");
        for english in ["Order tickets", "Wednesday, 18 May 2033, 5:33 AM CEST", "€25.00", "100 left"] {
            assert!(html.contains(english), "{english:?} missing: {html}");
        }
    }
    // An unknown ?lang= is ignored (not an error, not remembered).
    let (s, cookies, html) = form(&app, event, "?lang=xx", &[("accept-language", "de")]).await;
    assert_eq!(s, 200);
    assert!(html.contains("<html lang=\"de\">"), "{html}");
    assert!(!cookies.iter().any(|c| c.starts_with("tickets_lang=")), "{cookies:?}");
    app.running.shutdown().await;
}

#[tokio::test]
async fn a_refused_form_comes_back_in_its_language_and_orders_nothing() {
    let app = start().await;
    let event = app.event(100, 0).await;
    let (_, cookies, html) = form(&app, event, "", &[("accept-language", "fr-CA")]).await;
    assert!(html.contains("name=\"lang\" value=\"fr\""), "{html}");
    let resp = post_form(
        &app,
        event,
        &cookies,
        &html,
        &[("name", "Marie Curie"), ("email", "marie@nowhere"), ("qty_0", "1"), ("payment", "online")],
    )
    .await;
    assert_eq!(resp.status(), 422);
    let html = resp.text().await.unwrap();
    assert!(html.contains("<html lang=\"fr\">"), "{html}");
    assert!(html.contains("Votre commande pose un problème"), "{html}");
    assert!(html.contains("L’adresse e-mail n’est pas valide."), "{html}");
    assert!(html.contains("value=\"Marie Curie\""), "the input is kept: {html}");

    let resp = post_form(&app, event, &cookies, &html, &[("name", "Marie Curie"), ("email", "m@example.org")]).await;
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("Choisissez au moins un billet."));
    let (orders,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM orders").fetch_one(&app.running.state.db.read).await.unwrap();
    assert_eq!(orders, 0);
    app.running.shutdown().await;
}

/// Each page's text of a PDF as `pdftotext` reads it, with runs of white space as one space.
fn pdf_words(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tickets.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
        .unwrap_or_else(|e| panic!("cannot run pdftotext: {e} (install poppler-utils)"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_placed_in_german_gets_its_mail_and_pdf_in_german() {
    let certs = tempfile::tempdir().unwrap();
    let server = smtp::start(certs.path(), 0);
    let app = start_with(|c| {
        c.smtp_host = Some("127.0.0.1".into());
        c.smtp_port = server.port;
        c.smtp_user = Some(smtp::USER.into());
        c.smtp_password = Some(smtp::PASSWORD.into());
        c.smtp_ca_file = Some(server.ca.clone());
        c.mail_from = "Tickets <tickets@example.org>".into();
    })
    .await;
    let event = app.event(10, 0).await;

    let (_, cookies, html) = form(&app, event, "", &[("accept-language", "de-DE,de;q=0.9")]).await;
    let resp = post_form(
        &app,
        event,
        &cookies,
        &html,
        &[("name", "Jürgen Groß"), ("email", "juergen@example.org"), ("qty_0", "1"), ("payment", "online")],
    )
    .await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let order_id = location.trim_start_matches("/orders/").split('?').next().unwrap().to_owned();
    let (stored,): (String,) = sqlx::query_as("SELECT locale FROM orders WHERE id = $1")
        .bind(&order_id)
        .fetch_one(&app.running.state.db.read)
        .await
        .unwrap();
    assert_eq!(stored, "de");

    // The order page in the browser's language.
    let page =
        app.http.get(app.url(&location)).header("accept-language", "de").send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<html lang=\"de\">"), "{page}");
    assert!(page.contains("<strong>Ihre Bestellung ist bestätigt.</strong>"), "{page}");
    assert!(page.contains("Inhaber: Jürgen Groß"), "{page}");
    assert!(page.contains("Alle Tickets als PDF herunterladen"), "{page}");

    // The mail, sent later by the outbox worker, in the order's language.
    let raw =
        smtp::first_mail(&server.out, Duration::from_secs(30)).await.expect("the SMTP server received the ticket mail");
    let msg = MessageParser::default().parse(&raw).expect("mail parses");
    assert_eq!(msg.subject(), Some("Ihre Tickets für Test Night"));
    let text = msg.body_text(0).expect("text part");
    for german in [
        "Hallo Jürgen Groß,",
        &format!("Ihre Bestellung {order_id} für Test Night (Hall) ist bestätigt. Summe: 0,00\u{a0}€."),
        "Wann: Mittwoch, 18. Mai 2033, 05:33 CEST \u{2013} 08:20 CEST",
        "Ticket 1: Standard \u{2014} Jürgen Groß",
        "Zeigen Sie die QR-Codes am Einlass vor.",
    ] {
        assert!(text.contains(german), "{german:?} missing: {text}");
    }
    let html = msg.body_html(0).expect("html part");
    assert!(html.contains("<html lang=\"de\">") && html.contains("Inhaber: Jürgen Groß"), "{html}");

    // The PDF attached to it.
    let pdf = msg
        .parts
        .iter()
        .find(|p| p.content_type().is_some_and(|ct| ct.ctype() == "application" && ct.subtype() == Some("pdf")))
        .expect("a PDF attachment");
    let words = pdf_words(pdf.contents());
    for german in [
        "Ticket 1 von 1",
        "Mittwoch, 18. Mai 2033, 05:33 CEST \u{2013} 08:20 CEST",
        "Inhaber: Jürgen Groß",
        &format!("Bestellung: {order_id}"),
        "Zeigen Sie diesen Code am Einlass vor",
    ] {
        assert!(words.contains(german), "{german:?} missing: {words}");
    }

    // "Lost your tickets?" in the browser's language, and its mail in the order's.
    let lost = app
        .http
        .post(app.url("/lost-tickets"))
        .header("accept-language", "de")
        .form(&[("email", "juergen@example.org")])
        .send()
        .await
        .unwrap();
    assert_eq!(lost.status(), 200);
    let lost = lost.text().await.unwrap();
    assert!(lost.contains("<html lang=\"de\">") && lost.contains("<h1>Tickets verloren?</h1>"), "{lost}");
    assert!(lost.contains("Falls es Bestellungen mit dieser Adresse gibt"), "{lost}");
    let lookup = common::eventually(Duration::from_secs(30), || async {
        smtp::mails(&server.out).into_iter().map(|p| std::fs::read(p).unwrap()).find(|raw| {
            MessageParser::default().parse(raw).and_then(|m| m.subject().map(|s| s == "Ihre Bestellungen"))
                == Some(true)
        })
    })
    .await
    .expect("the lookup mail, in German");
    let msg = MessageParser::default().parse(&lookup).expect("mail parses");
    let text = msg.body_text(0).expect("text part");
    let link = format!("{}/orders/{order_id}?token=", app.running.state.public_url);
    for german in [
        "Hallo Jürgen Groß,".to_owned(),
        "Sie haben die Links zu Ihren Bestellungen angefordert.".to_owned(),
        format!("- Test Night (Bestellung {order_id}, bestätigt): {link}"),
    ] {
        assert!(text.contains(&german), "{german:?} missing: {text}");
    }
    app.running.shutdown().await;
}

#[tokio::test]
async fn the_api_takes_an_orders_language_and_defaults_to_english() {
    let app = start().await;
    let event = app.event(10, 0).await;
    let order = |locale: serde_json::Value| {
        json!({"event_id":event,"name":"Ada","email":"ada@example.org","payment":"free","locale":locale,
               "items":[{"ticket_type":0,"quantity":1,"addons":[]}]})
    };
    let mut stored = Vec::new();
    for locale in [json!("fr"), json!("de-CH"), json!("es"), json!(null)] {
        let (s, v) = app.post("/v1/orders", order(locale)).await;
        assert_eq!(s, 201, "{v}");
        let (tag,): (String,) = sqlx::query_as("SELECT locale FROM orders WHERE id = $1")
            .bind(v["order_id"].as_str().unwrap())
            .fetch_one(&app.running.state.db.read)
            .await
            .unwrap();
        stored.push(tag);
    }
    assert_eq!(stored, ["fr", "de", "en", "en"]);
    app.running.shutdown().await;
}
