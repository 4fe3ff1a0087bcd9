//! Email through a real local SMTP server (aiosmtpd, STARTTLS + AUTH), parsed back.

mod common;

use std::time::Duration;

use common::{eventually, start_with};
use mail_parser::{MessageParser, MimeHeaders};
use scanner_core::{Keyring, VerifyContext};
use smtp_support as smtp;

#[path = "common/smtp.rs"]
mod smtp_support;

fn configure(c: &mut issuer::Config, port: u16, ca: &std::path::Path) {
    c.smtp_host = Some("127.0.0.1".into());
    c.smtp_port = port;
    c.smtp_user = Some(smtp::USER.into());
    c.smtp_password = Some(smtp::PASSWORD.into());
    c.smtp_ca_file = Some(ca.to_owned());
    c.mail_from = "Tickets <tickets@example.org>".into();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_mail_over_starttls_has_inline_qr_that_verifies() {
    let certs = tempfile::tempdir().unwrap();
    let server = smtp::start(certs.path(), 0);
    let app = start_with(|c| configure(c, server.port, &server.ca)).await;
    let event = app.event(10, 0).await;
    let (s, order) = app.order(event, "Grace <Hopper>", 2, "free").await;
    assert_eq!(s, 201, "{order}");
    let order_id = order["order_id"].as_str().unwrap().to_owned();

    let raw =
        smtp::first_mail(&server.out, Duration::from_secs(30)).await.expect("the SMTP server received the ticket mail");
    let msg = MessageParser::default().parse(&raw).expect("mail parses");
    assert_eq!(msg.message_id(), Some(format!("tickets.{order_id}@example.org").as_str()));
    assert!(msg.subject().unwrap().contains("Test Night"));
    let html = msg.body_html(0).expect("html part");
    let text = msg.body_text(0).expect("text part");
    assert!(html.contains("Grace &lt;Hopper&gt;"), "{html}");
    assert!(text.contains(&format!("/orders/{order_id}?token=")));
    // The order link in the mail works.
    let link = text.split_whitespace().find(|w| w.contains("/orders/")).unwrap();
    let r = app.http.get(link).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let ring = Keyring::from_json(&app.running.state.signer.keyring.to_json()).unwrap();
    let ctx = VerifyContext { keyring: &ring, revocations: None, event_id: event as u32, now: 2_000_000_000 };
    let mut verified = 0;
    for part in msg.parts.iter() {
        let is_png = part.content_type().is_some_and(|ct| ct.ctype() == "image" && ct.subtype() == Some("png"));
        if !is_png {
            continue;
        }
        let cid = part.content_id().expect("inline image has a Content-ID");
        assert!(html.contains(&format!("cid:{cid}")), "html references {cid}");
        let qr = common::decode_qr_png(part.contents()).expect("PNG decodes to a QR code");
        scanner_core::verify_text(&qr, &ctx).expect("the mailed ticket verifies");
        verified += 1;
    }
    assert_eq!(verified, 2);
    app.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_down_mail_is_retried_later_and_nothing_is_lost() {
    let certs = tempfile::tempdir().unwrap();
    smtp::make_certs(certs.path());
    let port = smtp::free_port();
    let ca = certs.path().join("ca.pem");
    let app = start_with(|c| configure(c, port, &ca)).await;
    let event = app.event(10, 0).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (s, o) = app.order(event, &format!("Buyer {i}"), 1, "free").await;
        assert_eq!(s, 201);
        ids.push(o["order_id"].as_str().unwrap().to_owned());
    }
    // Every job fails at least once while the server is down, and stays pending.
    let failed = eventually(Duration::from_secs(20), || async {
        let (_, v) = app.admin(reqwest::Method::GET, "/admin/v1/email-jobs", None).await;
        let jobs = v["jobs"].as_array()?.clone();
        (jobs.len() == 3 && jobs.iter().all(|j| j["attempts"].as_i64() >= Some(1) && j["status"] == "pending"))
            .then_some(jobs)
    })
    .await
    .expect("jobs failed and were rescheduled");
    assert!(failed.iter().all(|j| !j["last_error"].is_null()));

    let server = smtp::start(certs.path(), port);
    let out = server.out.clone();
    let all = eventually(Duration::from_secs(30), || {
        let out = out.clone();
        async move { (smtp::mails(&out).len() >= 3).then_some(()) }
    })
    .await;
    assert!(all.is_some(), "all three mails arrive once the server is up");
    let (_, v) = app.admin(reqwest::Method::GET, "/admin/v1/email-jobs?status=sent", None).await;
    assert_eq!(v["jobs"].as_array().unwrap().len(), 3);
    let mut seen: Vec<String> = smtp::mails(&out)
        .iter()
        .map(|p| MessageParser::default().parse(&std::fs::read(p).unwrap()).unwrap().message_id().unwrap().to_owned())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3);
    for id in &ids {
        assert!(seen.contains(&format!("tickets.{id}@example.org")));
    }
    app.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_mail_is_dead_lettered_and_visible_to_admin() {
    let certs = tempfile::tempdir().unwrap();
    smtp::make_certs(certs.path());
    let port = smtp::free_port();
    let ca = certs.path().join("ca.pem");
    let app = start_with(|c| {
        configure(c, port, &ca);
        c.email_max_attempts = 2;
    })
    .await;
    let event = app.event(10, 0).await;
    app.order(event, "Nobody", 1, "free").await;
    let dead = eventually(Duration::from_secs(20), || async {
        let (_, v) = app.admin(reqwest::Method::GET, "/admin/v1/email-jobs?status=dead", None).await;
        v["jobs"].as_array().filter(|j| j.len() == 1).cloned()
    })
    .await
    .expect("job dead-lettered");
    assert_eq!(dead[0]["attempts"], 2);
    // An admin can requeue it.
    let (s, _) = app.admin(reqwest::Method::POST, &format!("/admin/v1/email-jobs/{}/retry", dead[0]["id"]), None).await;
    assert_eq!(s, 204);
}
