//! Apple Wallet passes and Google Wallet links, end to end with real parts: a throwaway certificate
//! authority, a WWDR-like intermediate and a pass certificate made by the `openssl` command, an RSA
//! service-account key made by it too; orders placed through the HTTP API; the `.pkpass` downloaded from
//! the order page's link and unpacked by Python's `zipfile`, its manifest checked against `sha1sum`, its
//! detached signature verified by `openssl smime -verify` against the test CA alone (so the WWDR
//! certificate must travel in the signature); the Google JWT taken from the link's redirect and verified
//! by `openssl dgst -sha256 -verify` with the public key. Expected values come from the order the test made
//! (the API's QR texts, the database's ticket ids) and from `date` with the system's zone database.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use common::{start_with, App};
use issuer::Config;
use mail_parser::MessageParser;
use scanner_core::{Keyring, VerifyContext};
use serde_json::{json, Value};

#[path = "common/smtp.rs"]
mod smtp;

const PASS_TYPE_ID: &str = "pass.org.example.tickets";
const TEAM_ID: &str = "TEAM123456";
const ISSUER_ID: &str = "3388000000022195751";
const SERVICE_ACCOUNT: &str = "wallet-signer@tickets-test.iam.gserviceaccount.com";

/// Runs a command that must succeed; its stdout.
fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    run(Command::new("openssl").current_dir(dir).args(args))
}

fn chmod_600(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The files of a throwaway Apple signing chain: root CA → "WWDR" intermediate → pass certificate.
struct AppleFiles {
    ca: PathBuf,
    wwdr: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_apple_chain(dir: &Path) -> AppleFiles {
    std::fs::write(dir.join("ca.ext"), "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
        .unwrap();
    std::fs::write(dir.join("leaf.ext"), "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n")
        .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=Test Root CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
    );
    openssl(
        dir,
        &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "wwdr.key", "-out", "wwdr.csr", "-subj", "/CN=Test WWDR"],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "wwdr.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "wwdr.pem",
            "-days",
            "30",
            "-extfile",
            "ca.ext",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "pass.key",
            "-out",
            "pass.csr",
            "-subj",
            &format!("/UID={PASS_TYPE_ID}/CN=Pass Type ID: {PASS_TYPE_ID}/OU={TEAM_ID}/O=Test Org"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "pass.csr",
            "-CA",
            "wwdr.pem",
            "-CAkey",
            "wwdr.key",
            "-CAcreateserial",
            "-out",
            "pass.pem",
            "-days",
            "30",
            "-extfile",
            "leaf.ext",
        ],
    );
    chmod_600(&dir.join("pass.key"));
    AppleFiles {
        ca: dir.join("ca.pem"),
        wwdr: dir.join("wwdr.pem"),
        cert: dir.join("pass.pem"),
        key: dir.join("pass.key"),
    }
}

/// A service-account key file as the Google Cloud console downloads it (PKCS#8 RSA key), 0600; and the
/// public key's PEM file.
fn make_service_account(dir: &Path) -> (PathBuf, PathBuf) {
    openssl(dir, &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "google.key"]);
    openssl(dir, &["pkey", "-in", "google.key", "-pubout", "-out", "google.pub"]);
    let private_key = std::fs::read_to_string(dir.join("google.key")).unwrap();
    let json = json!({
        "type": "service_account",
        "project_id": "tickets-test",
        "private_key_id": "0123456789abcdef",
        "private_key": private_key,
        "client_email": SERVICE_ACCOUNT,
        "client_id": "100000000000000000001",
        "token_uri": "https://oauth2.googleapis.com/token",
    });
    let path = dir.join("service-account.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    chmod_600(&path);
    (path, dir.join("google.pub"))
}

fn configure_apple(c: &mut Config, files: &AppleFiles) {
    c.apple_pass_type_id = Some(PASS_TYPE_ID.into());
    c.apple_team_id = Some(TEAM_ID.into());
    c.apple_pass_cert = Some(files.cert.clone());
    c.apple_pass_key = Some(files.key.clone());
    c.apple_wwdr_cert = Some(files.wwdr.clone());
    c.wallet_organization = "Test Org".into();
}

fn configure_google(c: &mut Config, key_file: &Path) {
    c.google_wallet_issuer_id = Some(ISSUER_ID.into());
    c.google_wallet_key = Some(key_file.to_owned());
    c.wallet_organization = "Test Org".into();
}

/// An issuer with both wallets configured, from throwaway credentials in the returned directory (keep it
/// alive beside the app).
async fn app_with_both_wallets() -> (App, tempfile::TempDir) {
    let certs = tempfile::tempdir().unwrap();
    let files = make_apple_chain(certs.path());
    let (key_file, _) = make_service_account(certs.path());
    let app = start_with(|c| {
        configure_apple(c, &files);
        configure_google(c, &key_file);
    })
    .await;
    (app, certs)
}

/// `secs` in Europe/Berlin with its UTC offset, as `date` computes it.
fn berlin_iso(secs: i64) -> String {
    let out =
        run(Command::new("date").env("TZ", "Europe/Berlin").args(["-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%S%:z"]));
    String::from_utf8(out).unwrap().trim().to_owned()
}

async fn order_with_holders(app: &App, event: i64, buyer: &str, holders: &[&str]) -> Value {
    let (s, order) = app
        .post(
            "/v1/orders",
            json!({"event_id":event,"name":buyer,"email":"buyer@example.org","payment":"free",
                   "items":[{"ticket_type":0,"quantity":holders.len(),"addons":[0],"holders":holders}]}),
        )
        .await;
    assert_eq!(s, 201, "{order}");
    order
}

/// The order's tickets as the API shows them: (holder, QR text), and each one's id from the database.
async fn tickets(app: &App, order: &Value) -> Vec<(String, String, String)> {
    let (id, token) = (order["order_id"].as_str().unwrap(), order["token"].as_str().unwrap());
    let (s, view) = app.get_json(&format!("/v1/orders/{id}?token={token}")).await;
    assert_eq!(s, 200, "{view}");
    let ids: Vec<(String,)> = sqlx::query_as("SELECT ticket_id FROM tickets WHERE order_id = $1 ORDER BY seq")
        .bind(id)
        .fetch_all(&app.running.state.db.read)
        .await
        .unwrap();
    view["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .zip(ids)
        .map(|(t, (tid,))| (t["holder_name"].as_str().unwrap().into(), t["qr_text"].as_str().unwrap().into(), tid))
        .collect()
}

async fn keyring(app: &App) -> Keyring {
    let body = app.http.get(app.url("/v1/keyring")).send().await.unwrap().text().await.unwrap();
    Keyring::from_json(&body).expect("public keyring")
}

/// `qr` verifies against the issuer's public keyring as ticket `ticket_id` of `event`.
async fn assert_qr_verifies(app: &App, event: i64, qr: &str, ticket_id: &str) {
    let ring = keyring(app).await;
    let ctx = VerifyContext { keyring: &ring, revocations: None, event_id: event as u32, now: 2_000_000_000 };
    let ticket = scanner_core::verify_text(qr, &ctx).expect("the wallet's QR verifies");
    assert_eq!(ticket.ticket_id.to_hex(), ticket_id);
}

async fn page(app: &App, order: &Value) -> String {
    let (id, token) = (order["order_id"].as_str().unwrap(), order["token"].as_str().unwrap());
    app.http.get(app.url(&format!("/orders/{id}?token={token}"))).send().await.unwrap().text().await.unwrap()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Unpacks a .pkpass with Python's zipfile into `dir`; the names it holds.
fn unzip(pkpass: &Path, dir: &Path) -> Vec<String> {
    let script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\n\
                  z.extractall(sys.argv[2])\nprint('\\n'.join(sorted(z.namelist())))";
    let out = run(Command::new("python3").args(["-c", script]).arg(pkpass).arg(dir));
    String::from_utf8(out).unwrap().lines().map(str::to_owned).collect()
}

fn sha1sum(path: &Path) -> String {
    let out = String::from_utf8(run(Command::new("sha1sum").arg(path))).unwrap();
    out.split_whitespace().next().unwrap().to_owned()
}

/// `openssl smime -verify` of the detached signature over `content`, trusting only `ca`.
fn smime_verify(dir: &Path, content: &Path, ca: &Path) -> std::process::Output {
    Command::new("openssl")
        .current_dir(dir)
        .args(["smime", "-verify", "-binary", "-inform", "DER", "-in", "signature", "-content"])
        .arg(content)
        .arg("-CAfile")
        .arg(ca)
        .args(["-out", "/dev/null"])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apple_pass_is_signed_by_the_pass_certificate_and_carries_the_ticket() {
    let certs = tempfile::tempdir().unwrap();
    let files = make_apple_chain(certs.path());
    let app = start_with(|c| configure_apple(c, &files)).await;
    let event = app.event(10, 0).await;
    let order = order_with_holders(&app, event, "Grace Hopper", &["Zoë Ångström-Müller", ""]).await;
    let (id, token) = (order["order_id"].as_str().unwrap(), order["token"].as_str().unwrap());
    let tickets = tickets(&app, &order).await;

    let html = page(&app, &order).await;
    let link = format!("/orders/{id}/tickets/1/pass.pkpass?token={token}");
    assert!(html.contains(&format!("<a href=\"{link}\">Add to Apple Wallet</a>")), "{html}");
    assert!(!html.contains("google-wallet"), "Google is not configured: {html}");

    let resp = app.http.get(app.url(&link)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/vnd.apple.pkpass");
    assert_eq!(resp.headers()["content-disposition"], "attachment; filename=\"ticket-2.pkpass\"");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let dir = tempfile::tempdir().unwrap();
    let pkpass = dir.path().join("ticket.pkpass");
    std::fs::write(&pkpass, resp.bytes().await.unwrap()).unwrap();
    let out = dir.path().join("x");
    assert_eq!(unzip(&pkpass, &out), ["icon.png", "icon@2x.png", "manifest.json", "pass.json", "signature"]);

    // The manifest lists every other file with its SHA-1, as sha1sum computes it.
    let manifest: Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let expected: serde_json::Map<String, Value> = ["icon.png", "icon@2x.png", "pass.json"]
        .iter()
        .map(|name| (name.to_string(), Value::String(sha1sum(&out.join(name)))))
        .collect();
    assert_eq!(manifest, Value::Object(expected));

    // The signature verifies over manifest.json with only the root CA trusted: the WWDR intermediate is
    // in the signature, and the signer is the pass certificate.
    let verified = smime_verify(&out, Path::new("manifest.json"), &files.ca);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    let signers =
        String::from_utf8(openssl(&out, &["pkcs7", "-inform", "DER", "-in", "signature", "-print_certs"])).unwrap();
    assert!(signers.contains("CN = Test WWDR"), "{signers}");
    assert!(signers.contains(&format!("CN = Pass Type ID: {PASS_TYPE_ID}")), "{signers}");
    // A manifest changed by one byte no longer verifies.
    let mut tampered = std::fs::read(out.join("manifest.json")).unwrap();
    let at = tampered.iter().position(|b| b.is_ascii_hexdigit() && b.is_ascii_digit()).unwrap();
    tampered[at] = if tampered[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(out.join("tampered.json"), &tampered).unwrap();
    assert!(!smime_verify(&out, Path::new("tampered.json"), &files.ca).status.success());
    // Nor against a CA that did not issue the chain.
    let other = tempfile::tempdir().unwrap();
    openssl(
        other.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "k",
            "-out",
            "other.pem",
            "-days",
            "1",
            "-subj",
            "/CN=Other",
        ],
    );
    assert!(!smime_verify(&out, Path::new("manifest.json"), &other.path().join("other.pem")).status.success());

    // pass.json describes ticket 2 of this order.
    let pass: Value = serde_json::from_slice(&std::fs::read(out.join("pass.json")).unwrap()).unwrap();
    let (holder, qr, ticket_id) = &tickets[1];
    assert_eq!(holder, "Grace Hopper");
    assert_eq!(pass["formatVersion"], 1);
    assert_eq!(pass["passTypeIdentifier"], PASS_TYPE_ID);
    assert_eq!(pass["teamIdentifier"], TEAM_ID);
    assert_eq!(pass["serialNumber"], ticket_id.as_str());
    assert_eq!(pass["organizationName"], "Test Org");
    let fields = &pass["eventTicket"];
    assert_eq!(fields["primaryFields"][0]["value"], "Test Night");
    assert_eq!(fields["secondaryFields"][0]["value"], "Hall");
    assert_eq!(fields["secondaryFields"][1]["value"], berlin_iso(2_000_000_000));
    assert_eq!(fields["secondaryFields"][1]["ignoresTimeZone"], true);
    assert_eq!(fields["auxiliaryFields"][0]["value"], "Standard + Drink");
    assert_eq!(fields["auxiliaryFields"][1]["value"], "Grace Hopper");
    assert_eq!(pass["relevantDate"], berlin_iso(2_000_000_000));
    assert_eq!(pass["expirationDate"], berlin_iso(2_000_010_000));
    assert_eq!(fields["backFields"][0]["value"], id);
    let barcode = &pass["barcodes"][0];
    assert_eq!(barcode["format"], "PKBarcodeFormatQR");
    assert_eq!(barcode["messageEncoding"], "iso-8859-1");
    assert_eq!(barcode["message"], qr.as_str());
    assert_qr_verifies(&app, event, barcode["message"].as_str().unwrap(), ticket_id).await;
    app.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_link_is_an_rs256_jwt_of_the_ticket_that_the_public_key_verifies() {
    let keys = tempfile::tempdir().unwrap();
    let (key_file, public_key) = make_service_account(keys.path());
    let app = start_with(|c| configure_google(c, &key_file)).await;
    let event = app.event(10, 0).await;
    let order = order_with_holders(&app, event, "Ada Lovelace", &["Ada Lovelace"]).await;
    let (id, token) = (order["order_id"].as_str().unwrap(), order["token"].as_str().unwrap());
    let tickets = tickets(&app, &order).await;

    let html = page(&app, &order).await;
    let link = format!("/orders/{id}/tickets/0/google-wallet?token={token}");
    assert!(html.contains(&format!("<a href=\"{link}\">Save to Google Wallet</a>")), "{html}");
    assert!(!html.contains("pass.pkpass"), "Apple is not configured: {html}");
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let resp = no_redirects().get(app.url(&link)).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let jwt = location.strip_prefix("https://pay.google.com/gp/v/save/").unwrap_or_else(|| panic!("{location}"));
    // Google asks that a save link stay under 1,800 characters (some browsers cut longer URLs).
    assert!(location.len() < 1_800, "{} characters", location.len());
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");

    // RS256: an RSA PKCS#1 v1.5 signature with SHA-256 over "header.claims", checked by openssl.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let dir = keys.path();
    std::fs::write(dir.join("input"), format!("{}.{}", parts[0], parts[1])).unwrap();
    std::fs::write(dir.join("sig"), b64.decode(parts[2]).unwrap()).unwrap();
    let verify = |input: &str| {
        Command::new("openssl")
            .current_dir(dir)
            .args(["dgst", "-sha256", "-verify"])
            .arg(&public_key)
            .args(["-signature", "sig", input])
            .output()
            .unwrap()
    };
    let ok = verify("input");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "Verified OK");
    std::fs::write(dir.join("changed"), format!("{}.{}x", parts[0], parts[1])).unwrap();
    assert!(!verify("changed").status.success());

    let header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header, json!({"alg": "RS256", "typ": "JWT"}));
    let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["iss"], SERVICE_ACCOUNT);
    assert_eq!(claims["aud"], "google");
    assert_eq!(claims["typ"], "savetowallet");
    assert_eq!(claims["origins"], json!([app.running.url()]));
    let iat = claims["iat"].as_i64().unwrap();
    assert!(iat >= before && iat <= before + 60, "iat {iat}, request at {before}");
    let (holder, qr, ticket_id) = &tickets[0];
    let class_id = format!("{ISSUER_ID}.event-{event}");
    let object = &claims["payload"]["eventTicketObjects"][0];
    assert_eq!(object["id"], format!("{ISSUER_ID}.{ticket_id}"));
    assert_eq!(object["classId"], class_id.as_str());
    assert_eq!(object["state"], "ACTIVE");
    assert_eq!(object["ticketHolderName"], holder.as_str());
    assert_eq!(object["barcode"], json!({"type": "QR_CODE", "value": qr}));
    assert_eq!(object["ticketType"]["defaultValue"]["value"], "Standard + Drink");
    let class = &claims["payload"]["eventTicketClasses"][0];
    assert_eq!(class["id"], class_id.as_str());
    assert_eq!(class["issuerName"], "Test Org");
    assert_eq!(class["eventName"]["defaultValue"]["value"], "Test Night");
    assert_eq!(class["venue"]["name"]["defaultValue"]["value"], "Hall");
    assert_eq!(class["dateTime"]["start"], berlin_iso(2_000_000_000));
    assert_qr_verifies(&app, event, object["barcode"]["value"].as_str().unwrap(), ticket_id).await;
    app.running.shutdown().await;
}

/// The ticket mail (written by the file transport to DATA_DIR/outbox) once it is complete.
async fn ticket_mail(app: &App) -> (String, String) {
    let outbox = app.data_dir().join("outbox");
    common::eventually(Duration::from_secs(30), || async {
        let raw = smtp::first_mail(&outbox, Duration::from_millis(100)).await?;
        let msg = MessageParser::default().parse(&raw)?;
        let text = msg.body_text(0)?.into_owned();
        let html = msg.body_html(0)?.into_owned();
        text.contains("View your tickets any time").then_some((text, html))
    })
    .await
    .expect("the ticket mail is written")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mail_links_both_wallets_and_the_links_work() {
    let (app, _certs) = app_with_both_wallets().await;
    let event = app.event(10, 0).await;
    let order = order_with_holders(&app, event, "Grace Hopper", &["Grace Hopper"]).await;
    let (id, token) = (order["order_id"].as_str().unwrap(), order["token"].as_str().unwrap());
    let (text, html) = ticket_mail(&app).await;
    let apple = app.url(&format!("/orders/{id}/tickets/0/pass.pkpass?token={token}"));
    let google = app.url(&format!("/orders/{id}/tickets/0/google-wallet?token={token}"));
    assert!(text.contains(&format!("Add to Apple Wallet: {apple}")), "{text}");
    assert!(text.contains(&format!("Save to Google Wallet: {google}")), "{text}");
    assert!(html.contains(&format!("<a href=\"{apple}\">Add to Apple Wallet</a>")), "{html}");
    assert!(html.contains(&format!("<a href=\"{google}\">Save to Google Wallet</a>")), "{html}");
    let resp = app.http.get(&apple).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/vnd.apple.pkpass");
    let resp = no_redirects().get(&google).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert!(resp.headers()["location"].to_str().unwrap().starts_with("https://pay.google.com/gp/v/save/ey"));
    app.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_other_orders_and_revoked_tickets_get_404() {
    let (app, _certs) = app_with_both_wallets().await;
    let event = app.event(10, 0).await;
    let mine = order_with_holders(&app, event, "Mine", &["Me"]).await;
    let theirs = order_with_holders(&app, event, "Theirs", &["Them"]).await;
    let (my_id, my_token) = (mine["order_id"].as_str().unwrap(), mine["token"].as_str().unwrap());
    let (their_id, their_token) = (theirs["order_id"].as_str().unwrap(), theirs["token"].as_str().unwrap());
    for route in ["pass.pkpass", "google-wallet"] {
        for path in [
            format!("/orders/{their_id}/tickets/0/{route}?token={my_token}"),
            format!("/orders/{their_id}/tickets/0/{route}"),
            format!("/orders/{their_id}/tickets/0/{route}?token=x"),
            format!("/orders/{my_id}/tickets/1/{route}?token={my_token}"),
            format!("/orders/nonexistent/tickets/0/{route}?token={my_token}"),
        ] {
            let resp = no_redirects().get(app.url(&path)).send().await.unwrap();
            assert_eq!(resp.status(), 404, "{path}");
        }
        let own = format!("/orders/{their_id}/tickets/0/{route}?token={their_token}");
        assert!([200, 303].contains(&no_redirects().get(app.url(&own)).send().await.unwrap().status().as_u16()));
    }
    // Cancelled: its ticket is revoked, so neither wallet gets it and the page offers neither link.
    let (s, v) = app.admin(reqwest::Method::POST, &format!("/admin/v1/orders/{their_id}/cancel"), None).await;
    assert_eq!(s, 200, "{v}");
    for route in ["pass.pkpass", "google-wallet"] {
        let own = format!("/orders/{their_id}/tickets/0/{route}?token={their_token}");
        assert_eq!(no_redirects().get(app.url(&own)).send().await.unwrap().status(), 404, "{own}");
    }
    let html = page(&app, &theirs).await;
    assert!(!html.contains("pass.pkpass") && !html.contains("google-wallet"), "{html}");
    app.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configuration_no_link_is_offered_and_the_routes_are_404() {
    let app = common::start().await;
    let event = app.event(10, 0).await;
    let order = order_with_holders(&app, event, "Grace Hopper", &["Grace Hopper"]).await;
    let (id, token) = (order["order_id"].as_str().unwrap(), order["token"].as_str().unwrap());
    let html = page(&app, &order).await;
    assert!(html.contains("qr.png"), "the page shows the ticket: {html}");
    assert!(!html.contains("Wallet") && !html.contains("pass.pkpass") && !html.contains("google-wallet"), "{html}");
    let (text, mail_html) = ticket_mail(&app).await;
    assert!(!text.contains("Wallet") && !mail_html.contains("Wallet"), "{text}\n{mail_html}");
    for route in ["pass.pkpass", "google-wallet"] {
        let path = format!("/orders/{id}/tickets/0/{route}?token={token}");
        assert_eq!(no_redirects().get(app.url(&path)).send().await.unwrap().status(), 404, "{path}");
    }
    app.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_holder_names_are_escaped_in_html_and_json() {
    let (app, _certs) = app_with_both_wallets().await;
    let event = app.event(10, 0).await;
    let hostile = "\"/><script>alert(1)</script> \\ Zoë \u{1f389}";
    let order = order_with_holders(&app, event, "Buyer", &[hostile]).await;
    let (id, token) = (order["order_id"].as_str().unwrap(), order["token"].as_str().unwrap());
    let html = page(&app, &order).await;
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");

    let bytes =
        app.http.get(app.url(&format!("/orders/{id}/tickets/0/pass.pkpass?token={token}"))).send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pkpass = dir.path().join("t.pkpass");
    std::fs::write(&pkpass, bytes.bytes().await.unwrap()).unwrap();
    unzip(&pkpass, &dir.path().join("x"));
    let pass: Value = serde_json::from_slice(&std::fs::read(dir.path().join("x/pass.json")).unwrap()).unwrap();
    assert_eq!(pass["eventTicket"]["auxiliaryFields"][1]["value"], hostile);

    let resp = no_redirects()
        .get(app.url(&format!("/orders/{id}/tickets/0/google-wallet?token={token}")))
        .send()
        .await
        .unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let claims = location.rsplit('/').next().unwrap().split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    assert_eq!(claims["payload"]["eventTicketObjects"][0]["ticketHolderName"], hostile);
    app.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_wallet_settings_stop_the_start_naming_the_file() {
    let certs = tempfile::tempdir().unwrap();
    let files = make_apple_chain(certs.path());
    let (key_file, _) = make_service_account(certs.path());
    let start = |edit: Box<dyn FnOnce(&mut Config)>| {
        let data = tempfile::tempdir().unwrap();
        async move {
            let mut config = Config::for_data_dir(data.path().join("data"));
            config.database_url = common::fresh_database_url().await;
            edit(&mut config);
            issuer::start(config).await.err().map(|e| e.to_string())
        }
    };
    // Part of Apple's settings.
    let apple_cert = files.cert.clone();
    let err = start(Box::new(move |c| {
        c.apple_pass_type_id = Some(PASS_TYPE_ID.into());
        c.apple_pass_cert = Some(apple_cert);
    }))
    .await
    .expect("refused");
    assert!(err.contains("Apple Wallet needs all of"), "{err}");
    // The key of another certificate (the WWDR's).
    let (wwdr_key, f) = (certs.path().join("wwdr.key"), AppleFiles { ..files });
    chmod_600(&wwdr_key);
    let key = wwdr_key.clone();
    let err = start(Box::new(move |c| {
        configure_apple(c, &f);
        c.apple_pass_key = Some(key);
    }))
    .await
    .expect("refused");
    assert!(err.contains(&wwdr_key.display().to_string()) && err.contains("not the private key"), "{err}");
    // A service-account key others may read.
    let open = certs.path().join("open.json");
    std::fs::copy(&key_file, &open).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let path = open.clone();
    let err = start(Box::new(move |c| configure_google(c, &path))).await.expect("refused");
    assert!(err.contains(&open.display().to_string()) && err.contains("chmod 600"), "{err}");
    // A key file that is not a service-account key: named, its content not quoted.
    let broken = certs.path().join("broken.json");
    std::fs::write(&broken, "\"-----BEGIN PRIVATE KEY----- SECRET-MATERIAL\"").unwrap();
    chmod_600(&broken);
    let path = broken.clone();
    let err = start(Box::new(move |c| configure_google(c, &path))).await.expect("refused");
    assert!(err.contains(&broken.display().to_string()), "{err}");
    assert!(!err.contains("SECRET-MATERIAL"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_german_order_gets_a_german_pass_and_german_tagged_google_texts() {
    let (app, _certs) = app_with_both_wallets().await;
    let event = app.event(10, 0).await;
    let (s, order) = app
        .post(
            "/v1/orders",
            json!({"event_id":event,"name":"Grete","email":"grete@example.org","payment":"free","locale":"de",
                   "items":[{"ticket_type":0,"quantity":1,"addons":[0]}]}),
        )
        .await;
    assert_eq!(s, 201, "{order}");
    let (id, token) = (order["order_id"].as_str().unwrap(), order["token"].as_str().unwrap());
    // The page speaks the reader's language (Accept-Language), the pass the order's.
    let html = app
        .http
        .get(app.url(&format!("/orders/{id}?token={token}")))
        .header("accept-language", "de-DE")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(">Zu Apple Wallet hinzufügen</a>"), "{html}");
    assert!(html.contains(">In Google Wallet speichern</a>"), "{html}");

    let resp =
        app.http.get(app.url(&format!("/orders/{id}/tickets/0/pass.pkpass?token={token}"))).send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pkpass = dir.path().join("t.pkpass");
    std::fs::write(&pkpass, resp.bytes().await.unwrap()).unwrap();
    unzip(&pkpass, &dir.path().join("x"));
    let pass: Value = serde_json::from_slice(&std::fs::read(dir.path().join("x/pass.json")).unwrap()).unwrap();
    assert_eq!(pass["description"], "Ticket für Test Night");
    assert_eq!(pass["eventTicket"]["primaryFields"][0]["label"], "Veranstaltung");
    assert_eq!(pass["eventTicket"]["auxiliaryFields"][1]["label"], "Inhaber");

    let resp = no_redirects()
        .get(app.url(&format!("/orders/{id}/tickets/0/google-wallet?token={token}")))
        .send()
        .await
        .unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let claims = location.rsplit('/').next().unwrap().split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    let class = &claims["payload"]["eventTicketClasses"][0];
    assert_eq!(class["eventName"]["defaultValue"], json!({"language": "de", "value": "Test Night"}));
    app.running.shutdown().await;
}
