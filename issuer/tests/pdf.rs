//! PDF tickets, end to end with real parts: orders placed through the HTTP API, the PDF downloaded from the
//! link on the order page (or taken from the mail a real SMTP server received), rasterised by poppler's
//! `pdftoppm`, each page's QR code decoded with scanner-core's decoder and verified against the issuer's
//! public keyring (`GET /v1/keyring`); `pdfinfo` counts the pages and `pdftotext` reads the words. What is
//! expected comes from the order the test made (the API's QR texts, the database's ticket ids) and from
//! `date` with the system's time zone database, never from the PDF code.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{start_with, App};
use mail_parser::{MessageParser, MimeHeaders};
use scanner_core::{Keyring, VerifyContext};
use serde_json::{json, Value};
use smtp_support as smtp;

#[path = "common/smtp.rs"]
mod smtp_support;

/// Runs a poppler tool; a missing tool fails the test (scripts/test.sh installs poppler-utils).
fn poppler(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (install poppler-utils)"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The page count `pdfinfo` reads (it fails on a broken file).
fn page_count(pdf: &Path) -> usize {
    let info = String::from_utf8(poppler(Command::new("pdfinfo").arg(pdf))).unwrap();
    let line = info.lines().find(|l| l.starts_with("Pages:")).unwrap_or_else(|| panic!("no page count: {info}"));
    line["Pages:".len()..].trim().parse().unwrap()
}

/// Each page's text, as `pdftotext` extracts it (pages end with a form feed).
fn page_texts(pdf: &Path) -> Vec<String> {
    let text = String::from_utf8(poppler(Command::new("pdftotext").arg(pdf).arg("-"))).unwrap();
    let mut pages: Vec<String> = text.split('\u{c}').map(str::to_owned).collect();
    pages.pop(); // after the last form feed
    pages
}

/// What each page's QR code decodes to, the pages rasterised in grey at `dpi`.
fn page_qrs(pdf: &Path, dpi: u32) -> Vec<Option<String>> {
    let dir = tempfile::tempdir().unwrap();
    poppler(
        Command::new("pdftoppm").args(["-r", &dpi.to_string(), "-gray", "-png"]).arg(pdf).arg(dir.path().join("p")),
    );
    let mut pngs: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    // p-1.png … p-N.png, zero-padded to the same width, so the names sort in page order.
    pngs.sort();
    pngs.iter().map(|p| common::decode_qr_png(&std::fs::read(p).unwrap())).collect()
}

/// `secs` in Europe/Berlin as the ticket shows it, computed by `date` from the system's tz database.
fn berlin(secs: i64, format: &str) -> String {
    let out = Command::new("date")
        .env("TZ", "Europe/Berlin")
        .env("LC_ALL", "C")
        .args(["-d", &format!("@{secs}"), &format!("+{format}")])
        .output()
        .expect("date");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Words joined by single spaces, so a name the PDF wrapped over two lines still matches.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn public_keyring(app: &App) -> Keyring {
    let body = app.http.get(app.url("/v1/keyring")).send().await.unwrap().text().await.unwrap();
    Keyring::from_json(&body).expect("public keyring")
}

async fn order_with_holders(app: &App, event: i64, buyer: &str, holders: &[&str]) -> (u16, Value) {
    app.post(
        "/v1/orders",
        json!({"event_id":event,"name":buyer,"email":"buyer@example.org","payment":"free",
               "items":[{"ticket_type":0,"quantity":holders.len(),"addons":[0],"holders":holders}]}),
    )
    .await
}

/// The order's tickets as its API shows them to the customer: (seq, holder, QR text).
async fn api_tickets(app: &App, order: &Value) -> Vec<(i64, String, String)> {
    let (id, token) = (order["order_id"].as_str().unwrap(), order["token"].as_str().unwrap());
    let (s, view) = app.get_json(&format!("/v1/orders/{id}?token={token}")).await;
    assert_eq!(s, 200, "{view}");
    view["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["seq"].as_i64().unwrap(),
                t["holder_name"].as_str().unwrap().into(),
                t["qr_text"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// Checks that page i's QR is ticket i's QR text, and that it verifies as a ticket of `event` with the
/// order's ticket id (read from the database), ticket type 0 and add-on 0.
async fn assert_pages_verify(app: &App, event: i64, order_id: &str, qrs: &[Option<String>], expected: &[String]) {
    assert_eq!(qrs.len(), expected.len());
    let ring = public_keyring(app).await;
    let ctx = VerifyContext { keyring: &ring, revocations: None, event_id: event as u32, now: 2_000_000_000 };
    let ids: Vec<(String,)> = sqlx::query_as("SELECT ticket_id FROM tickets WHERE order_id = $1 ORDER BY seq")
        .bind(order_id)
        .fetch_all(&app.running.state.db.read)
        .await
        .unwrap();
    for (i, (qr, want)) in qrs.iter().zip(expected).enumerate() {
        let qr = qr.as_deref().unwrap_or_else(|| panic!("page {} has no readable QR code", i + 1));
        assert_eq!(qr, want, "page {} carries ticket {}", i + 1, i + 1);
        let ticket = scanner_core::verify_text(qr, &ctx).expect("the PDF's ticket verifies");
        assert_eq!(ticket.event_id, event as u32);
        assert_eq!(ticket.ticket_id.to_hex(), ids[i].0);
        assert_eq!((ticket.ticket_type, ticket.addons), (0, 1));
    }
}

async fn download(app: &App, path: &str) -> reqwest::Response {
    app.http.get(app.url(path)).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_page_pdf_has_one_verifying_page_per_ticket_with_the_event_details() {
    let app = common::start().await;
    // app.event(): "Test Night" at "Hall", 2_000_000_000 to 2_000_010_000, Europe/Berlin.
    let event = app.event(10, 0).await;
    let (s, order) = order_with_holders(&app, event, "Grace Hopper", &["Zoë Ångström-Müller", ""]).await;
    assert_eq!(s, 201, "{order}");
    let order_id = order["order_id"].as_str().unwrap().to_owned();
    let token = order["token"].as_str().unwrap();

    // The order page links to the PDF with the order's token.
    let page = download(&app, &format!("/orders/{order_id}?token={token}")).await.text().await.unwrap();
    let link = format!("/orders/{order_id}/tickets.pdf?token={token}");
    assert!(page.contains(&format!("href=\"{link}\"")), "{page}");
    let resp = download(&app, &link).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    assert_eq!(
        resp.headers()["content-disposition"].to_str().unwrap(),
        format!("attachment; filename=\"tickets-{order_id}.pdf\"")
    );
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let bytes = resp.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("tickets.pdf");
    std::fs::write(&pdf, &bytes).unwrap();

    assert_eq!(page_count(&pdf), 2, "one page per ticket");
    let tickets = api_tickets(&app, &order).await;
    let expected_qr: Vec<String> = tickets.iter().map(|t| t.2.clone()).collect();
    assert_pages_verify(&app, event, &order_id, &page_qrs(&pdf, 150), &expected_qr).await;
    // Large: the codes still read from a coarse 50 dpi rendering (an 80 mm code is ~157 px there).
    assert_pages_verify(&app, event, &order_id, &page_qrs(&pdf, 50), &expected_qr).await;

    // English (the order's language): `date` in the C locale writes the same day and month names.
    let when = format!(
        "{} \u{2013} {}",
        berlin(2_000_000_000, "%A, %-d %B %Y, %-I:%M %p %Z"),
        berlin(2_000_010_000, "%-I:%M %p %Z")
    );
    let texts = page_texts(&pdf);
    assert_eq!(texts.len(), 2);
    for (i, (text, holder)) in texts.iter().zip(["Zoë Ångström-Müller", "Grace Hopper"]).enumerate() {
        let text = words(text);
        for want in [
            format!("Ticket {} of 2", i + 1),
            "Test Night".to_owned(),
            "Hall".to_owned(),
            when.clone(),
            "Standard + Drink".to_owned(),
            format!("Holder: {holder}"),
            format!("Order: {order_id}"),
        ] {
            assert!(text.contains(&want), "page {} lacks {want:?}: {text}", i + 1);
        }
        assert_eq!(tickets[i].1, holder, "the API agrees on the holder");
    }
    app.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_neither_panic_nor_break_the_pdf() {
    let app = common::start().await;
    let event = app.event(10, 0).await;
    let long: String = "Zoë Ångström ".repeat(8).chars().take(100).collect::<String>().trim().to_owned();
    let hostile = [
        "<script>alert(1)</script>",
        "\u{5e9}\u{5dc}\u{5d5}\u{5dd} \u{5e2}\u{5d5}\u{5dc}\u{5dd}",
        "Party \u{1f389}",
        &long,
        "Overwritten Below",
    ];
    // A 300-character name is refused by the order API, not passed on to the PDF.
    let (s, refused) = order_with_holders(&app, event, "Buyer", &[&"x".repeat(300)]).await;
    assert_eq!(s, 422, "{refused}");
    let (s, order) = order_with_holders(&app, event, "\u{5d3}\u{5e0}\u{5d4} (\\) \u{1f600}", &hostile).await;
    assert_eq!(s, 201, "{order}");
    let order_id = order["order_id"].as_str().unwrap().to_owned();
    let token = order["token"].as_str().unwrap().to_owned();
    // A 300-character name with PDF string delimiters, a right-to-left override and emoji, as a name stored
    // by some other path than the order API would be: the PDF code gets no validated input for granted.
    let stored: String = "(\\) \u{202e}rtl \u{1f389} ".repeat(30).chars().take(300).collect();
    sqlx::query("UPDATE tickets SET holder_name = $1 WHERE order_id = $2 AND seq = 4")
        .bind(&stored)
        .bind(&order_id)
        .execute(&app.running.state.db.write)
        .await
        .unwrap();

    let resp = download(&app, &format!("/orders/{order_id}/tickets.pdf?token={token}")).await;
    assert_eq!(resp.status(), 200);
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("hostile.pdf");
    std::fs::write(&pdf, resp.bytes().await.unwrap()).unwrap();
    assert_eq!(page_count(&pdf), 5);
    let expected_qr: Vec<String> = api_tickets(&app, &order).await.into_iter().map(|t| t.2).collect();
    assert_pages_verify(&app, event, &order_id, &page_qrs(&pdf, 150), &expected_qr).await;
    let texts: Vec<String> = page_texts(&pdf).iter().map(|t| words(t)).collect();
    // Markup is text; characters outside WinAnsi (Latin-1) are printed as '?'.
    assert!(texts[0].contains("Holder: <script>alert(1)</script>"), "{}", texts[0]);
    assert!(texts[1].contains("Holder: ???? ????"), "{}", texts[1]);
    assert!(texts[2].contains("Holder: Party ?"), "{}", texts[2]);
    // The longest name the API takes (100 characters) is whole, wrapped at a space.
    assert!(texts[3].contains(&format!("Holder: {long}")), "{}", texts[3]);
    // The stored 300-character name is cut to three lines ending in "...", the page's other text intact.
    assert!(texts[4].contains("Holder: (\\) ?rtl ? (\\) ?rtl ?"), "{}", texts[4]);
    assert!(texts[4].contains("..."), "{}", texts[4]);
    assert!(texts[4].contains(&format!("Order: {order_id}")), "{}", texts[4]);
    app.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_orders_pdf_is_refused_and_a_cancelled_order_has_none() {
    let app = common::start().await;
    let event = app.event(10, 0).await;
    let (_, mine) = order_with_holders(&app, event, "Mine", &["Me"]).await;
    let (_, theirs) = order_with_holders(&app, event, "Theirs", &["Them"]).await;
    let (my_token, their_id) = (mine["token"].as_str().unwrap(), theirs["order_id"].as_str().unwrap());
    for path in [
        format!("/orders/{their_id}/tickets.pdf?token={my_token}"),
        format!("/orders/{their_id}/tickets.pdf"),
        format!("/orders/{their_id}/tickets.pdf?token=x"),
        format!("/orders/nonexistent/tickets.pdf?token={my_token}"),
    ] {
        let resp = download(&app, &path).await;
        assert_eq!(resp.status(), 404, "{path}");
        assert_ne!(resp.headers()["content-type"], "application/pdf");
    }
    let their_token = theirs["token"].as_str().unwrap();
    let own = format!("/orders/{their_id}/tickets.pdf?token={their_token}");
    assert_eq!(download(&app, &own).await.status(), 200);
    // Cancelled: every ticket revoked, so there is no PDF and the page offers none.
    let (s, v) = app.admin(reqwest::Method::POST, &format!("/admin/v1/orders/{their_id}/cancel"), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(download(&app, &own).await.status(), 404);
    let page = download(&app, &format!("/orders/{their_id}?token={their_token}")).await.text().await.unwrap();
    assert!(!page.contains("tickets.pdf"), "{page}");
    app.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_mail_carries_the_pdf_and_it_verifies() {
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
    let (s, order) = order_with_holders(&app, event, "Grace Hopper", &["Ada Lovelace", "Grace Hopper"]).await;
    assert_eq!(s, 201, "{order}");
    let order_id = order["order_id"].as_str().unwrap().to_owned();

    let raw =
        smtp::first_mail(&server.out, Duration::from_secs(30)).await.expect("the SMTP server received the ticket mail");
    let msg = MessageParser::default().parse(&raw).expect("mail parses");
    // The mail's own parts are still there: text, HTML and the two inline QR images.
    assert!(msg.body_text(0).expect("text part").contains(&format!("/orders/{order_id}?token=")));
    assert!(msg.body_html(0).expect("html part").contains("cid:"));
    let of_type = |ty: &str, sub: &str| {
        msg.parts
            .iter()
            .filter(|p| p.content_type().is_some_and(|ct| ct.ctype() == ty && ct.subtype() == Some(sub)))
            .collect::<Vec<_>>()
    };
    assert_eq!(of_type("image", "png").len(), 2);
    let pdfs = of_type("application", "pdf");
    assert_eq!(pdfs.len(), 1, "one PDF attachment");
    assert_eq!(pdfs[0].attachment_name(), Some(format!("tickets-{order_id}.pdf").as_str()));

    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("mailed.pdf");
    std::fs::write(&pdf, pdfs[0].contents()).unwrap();
    assert_eq!(page_count(&pdf), 2);
    let expected_qr: Vec<String> = api_tickets(&app, &order).await.into_iter().map(|t| t.2).collect();
    assert_pages_verify(&app, event, &order_id, &page_qrs(&pdf, 150), &expected_qr).await;
    let texts = page_texts(&pdf);
    assert!(words(&texts[0]).contains("Holder: Ada Lovelace"));
    assert!(words(&texts[1]).contains("Holder: Grace Hopper"));
    app.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_order_is_one_page_per_ticket_and_stays_small() {
    let app = common::start().await;
    let event = app.event(100, 0).await;
    // The most tickets one order may hold (MAX_TICKETS_PER_ORDER); one more is refused by the order API.
    let (s, order) = app.order(event, "Many Tickets", 20, "free").await;
    assert_eq!(s, 201, "{order}");
    let (s, refused) = app.order(event, "Too Many", 21, "free").await;
    assert_eq!(s, 422, "{refused}");
    let (id, token) = (order["order_id"].as_str().unwrap(), order["token"].as_str().unwrap());
    let bytes = download(&app, &format!("/orders/{id}/tickets.pdf?token={token}")).await.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("full.pdf");
    std::fs::write(&pdf, &bytes).unwrap();
    assert_eq!(page_count(&pdf), 20);
    // Compressed content streams: well under 10 KB a page, so the mail attachment stays small.
    assert!(bytes.len() < 20 * 10_000, "{} bytes", bytes.len());
    app.running.shutdown().await;
}
