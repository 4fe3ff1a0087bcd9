//! Signing keys against the real server: a broken key file stops the start (no silent new key), and
//! `issuer keys rotate` hands over to a new key with an overlap window.

mod common;

use common::{start, App};
use reqwest::Method;
use scanner_core::error::{Error, RevocationKind};
use scanner_core::{
    IssuerKey, KeyId, Keyring, Refusal, RevocationHash, RevocationList, SignedTicket, TicketId, VerifyContext,
};

fn key_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// The QR texts of a new free order of `qty` tickets.
async fn buy(app: &App, event: i64, qty: i64) -> (String, Vec<String>) {
    let (s, order) = app.order(event, "Key Test", qty, "free").await;
    assert_eq!(s, 201, "{order}");
    let id = order["order_id"].as_str().unwrap().to_owned();
    let (s, view) = app.get_json(&format!("/v1/orders/{id}?token={}", order["token"].as_str().unwrap())).await;
    assert_eq!(s, 200, "{view}");
    let texts = view["tickets"].as_array().unwrap().iter().map(|t| t["qr_text"].as_str().unwrap().to_owned()).collect();
    (id, texts)
}

async fn text(app: &App, path: &str, token: &str) -> String {
    let resp = app.http.get(app.url(path)).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.unwrap()
}

fn kid(qr: &str) -> KeyId {
    SignedTicket::from_qr_text(qr).unwrap().ticket.key_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_key_file_stops_the_start_and_no_new_key_is_made() {
    let App { running, dir, .. } = start().await;
    let data = running.state.config.data_dir.clone();
    let database_url = running.state.config.database_url.clone();
    running.shutdown().await;
    let keys = data.join("keys");
    assert_eq!(key_files(&keys), ["issuer-key-1.json"]);
    let key_file = keys.join("issuer-key-1.json");
    let keyring_before = std::fs::read(data.join("keyring.json")).unwrap();

    for content in [&b"{\"format\":\"offline-tickets/private-key/v1\",\"kid\":1,\"seed\":\"AAAA\"}"[..], b"garbage"] {
        std::fs::write(&key_file, content).unwrap();
        let mut config = issuer::Config::for_data_dir(&data);
        config.database_url = database_url.clone();
        let err = match issuer::start(config).await {
            Ok(_) => panic!("the issuer started with a corrupt key file"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(&key_file.display().to_string()), "{err}");
        assert!(err.contains("Refusing to start"), "{err}");
        // No new key beside it, and the keyring untouched.
        assert_eq!(key_files(&keys), ["issuer-key-1.json"]);
        assert_eq!(std::fs::read(data.join("keyring.json")).unwrap(), keyring_before);
    }
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_old_tickets_and_lists_valid_through_the_overlap() {
    let app = start().await;
    let event = app.event(20, 0).await;
    let (_, old_tickets) = buy(&app, event, 1).await;
    let old_ticket = old_tickets[0].clone();
    assert_eq!(kid(&old_ticket), KeyId(1));
    // A revocation list version 1, signed by key 1 before the rotation.
    let (revoked_order, revoked_tickets) = buy(&app, event, 1).await;
    let (s, v) = app.admin(Method::POST, &format!("/admin/v1/orders/{revoked_order}/cancel"), None).await;
    assert_eq!(s, 200, "{v}");

    let App { running, dir, http } = app;
    let data = running.state.config.data_dir.clone();
    let mut config = issuer::Config::for_data_dir(&data);
    config.database_url = running.state.config.database_url.clone();
    running.shutdown().await;
    let now = issuer::util::now() as u64;
    let rotation = issuer::keys::rotate(&data.join("keyring.json"), &data.join("keys"), now, 3_600).unwrap();
    assert_eq!(rotation.new_key, KeyId(2));
    let app = App { running: issuer::start(config).await.unwrap(), dir, http };

    let ring =
        Keyring::from_json(&app.http.get(app.url("/v1/keyring")).send().await.unwrap().text().await.unwrap()).unwrap();
    assert_eq!(ring.get(KeyId(1)).unwrap().not_after, Some(now + 3_600));
    assert_eq!(ring.get(KeyId(2)).unwrap().not_before, now);

    // New tickets carry the new key id.
    let (_, new_tickets) = buy(&app, event, 1).await;
    let new_ticket = new_tickets[0].clone();
    assert_eq!(kid(&new_ticket), KeyId(2));

    // Old tickets verify until the overlap ends (the verify context's clock), new ones after it too.
    let ctx = |at: u64| VerifyContext { keyring: &ring, revocations: None, event_id: event as u32, now: at };
    assert!(scanner_core::verify_text(&old_ticket, &ctx(now + 1_800)).is_ok());
    assert!(scanner_core::verify_text(&old_ticket, &ctx(now + 3_600)).is_ok());
    assert_eq!(scanner_core::verify_text(&old_ticket, &ctx(now + 3_601)), Err(Refusal::KeyNotActive(KeyId(1))));
    assert!(scanner_core::verify_text(&new_ticket, &ctx(now + 3_601)).is_ok());

    // The list key 1 signed before the rotation verifies under the new keyring (signed inside its window).
    let token = app.device_token(event).await;
    let list = RevocationList::from_json(&text(&app, "/v1/scanner/revocations?since=0", &token).await, &ring).unwrap();
    assert_eq!(list.version(), 1);
    assert_eq!(list.signer().map(|(k, _)| k), Some(KeyId(1)));
    let with_list = VerifyContext { revocations: Some(&list), ..ctx(now + 60) };
    assert_eq!(scanner_core::verify_text(&revoked_tickets[0], &with_list), Err(Refusal::Revoked));

    // New lists are signed by the new key, and extend the same chain.
    let (second, _) = buy(&app, event, 1).await;
    let (s, v) = app.admin(Method::POST, &format!("/admin/v1/orders/{second}/cancel"), None).await;
    assert_eq!(s, 200, "{v}");
    let mut device = list.clone();
    let delta =
        scanner_core::RevocationDelta::from_json(&text(&app, "/v1/scanner/revocations?since=1", &token).await).unwrap();
    device.apply(&delta, &ring).unwrap();
    assert_eq!((device.version(), device.signer().map(|(k, _)| k)), (2, Some(KeyId(2))));

    // A list the old key signs inside its window verifies; after the window it is refused.
    let old_key =
        IssuerKey::from_private_json(&std::fs::read_to_string(data.join("keys").join("issuer-key-1.json")).unwrap())
            .unwrap();
    let mut inside = RevocationList::new();
    inside.publish_at(&old_key, now + 3_000, [RevocationHash::of(&TicketId([7; 12]))]);
    assert!(RevocationList::from_json(&inside.to_json(), &ring).is_ok());
    let mut outside = RevocationList::new();
    outside.publish_at(&old_key, now + 3_601, [RevocationHash::of(&TicketId([7; 12]))]);
    assert!(matches!(
        RevocationList::from_json(&outside.to_json(), &ring),
        Err(Error::Revocation(RevocationKind::KeyNotActive { kid: KeyId(1), .. }))
    ));
    app.running.shutdown().await;
}
