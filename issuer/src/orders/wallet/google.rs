//! "Save to Google Wallet" links: `https://pay.google.com/gp/v/save/<JWT>`, the JWT signed RS256 with the
//! organizer's Google Cloud service-account key, in the shape of Google Wallet's JWT reference: `iss` the
//! service account's email, `aud` "google", `typ` "savetowallet", `iat`, `origins` (this issuer's public
//! URL) and a `payload` with the event's `eventTicketClasses` entry and the ticket's `eventTicketObjects`
//! entry inline, so nothing has to be created through Google's REST API first. The object's barcode is a
//! QR code of the ticket's QR text.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_private_file, entitlement, iso_in_zone, read_file, ticket_id, unusable};
use crate::error::{Error, Result, StartKind};
use crate::orders::model::{OrderView, TicketView};

/// Google's save page; the JWT follows the last slash.
pub const SAVE_URL: &str = "https://pay.google.com/gp/v/save/";

/// The two fields of a service-account key file (JSON, as the Google Cloud console downloads it) that
/// signing needs; the others are ignored.
#[derive(Deserialize)]
struct ServiceAccountKey {
    client_email: String,
    private_key: String,
}

/// Signs save links with the service account's key; read once at start-up.
pub struct SaveLinkSigner {
    issuer_id: String,
    client_email: String,
    key: PKey<Private>,
    organization: String,
}

impl SaveLinkSigner {
    /// Reads the service-account key file (only its owner may read it: it holds the private key) and
    /// checks the issuer id (Google's, all digits) and that the key is an RSA key (RS256).
    pub fn load(issuer_id: &str, key_path: &Path, organization: &str) -> Result<Self> {
        if issuer_id.is_empty() || !issuer_id.bytes().all(|b| b.is_ascii_digit()) || issuer_id.len() > 32 {
            return Err(StartKind::Wallet(
                "--google-wallet-issuer-id must be the issuer id the Google Pay & Wallet console shows (digits)"
                    .to_owned(),
            )
            .into());
        }
        const WHAT: &str = "Google Wallet service-account key (JSON)";
        check_private_file(key_path)?;
        // serde's message could quote a value of the file; only its position is reported.
        let account: ServiceAccountKey = serde_json::from_slice(&read_file(key_path)?).map_err(|e| {
            unusable(
                key_path,
                WHAT,
                format!("no client_email and private_key strings (line {}, column {})", e.line(), e.column()),
            )
        })?;
        if account.client_email.trim().is_empty() {
            return Err(unusable(key_path, WHAT, "client_email is empty"));
        }
        let key = PKey::private_key_from_pem(account.private_key.as_bytes())
            .map_err(|e| unusable(key_path, WHAT, format!("private_key: {e}")))?;
        if key.rsa().is_err() {
            return Err(unusable(key_path, WHAT, "private_key is not an RSA key (RS256 needs one)"));
        }
        Ok(SaveLinkSigner {
            issuer_id: issuer_id.to_owned(),
            client_email: account.client_email,
            key,
            organization: organization.to_owned(),
        })
    }

    /// The save link of `ticket` (a live ticket of `order`), issued at `now` (Unix seconds).
    pub fn save_url(&self, public_url: &str, order: &OrderView, ticket: &TicketView, now: i64) -> Result<String> {
        let header = json!({"alg": "RS256", "typ": "JWT"});
        let claims = json!({
            "iss": self.client_email,
            "aud": "google",
            "typ": "savetowallet",
            "iat": now,
            "origins": [public_url],
            "payload": {
                "eventTicketClasses": [self.event_class(order)],
                "eventTicketObjects": [self.ticket_object(order, ticket)?],
            },
        });
        let encode = |v: &Value| serde_json::to_vec(v).map(|bytes| URL_SAFE_NO_PAD.encode(bytes));
        let signing_input =
            format!("{}.{}", encode(&header).map_err(Error::internal)?, encode(&claims).map_err(Error::internal)?);
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key).map_err(Error::internal)?;
        signer.update(signing_input.as_bytes()).map_err(Error::internal)?;
        let signature = signer.sign_to_vec().map_err(Error::internal)?;
        Ok(format!("{SAVE_URL}{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// `<issuer id>.event-<event id>`: one class per event.
    fn class_id(&self, order: &OrderView) -> String {
        format!("{}.event-{}", self.issuer_id, order.event.id)
    }

    /// The event: name, venue and times in the event's own zone. Google requires a venue's address with its
    /// name; the catalog has one venue text, given as both.
    fn event_class(&self, order: &OrderView) -> Value {
        let event = &order.event;
        json!({
            "id": self.class_id(order),
            "issuerName": self.organization,
            "reviewStatus": "UNDER_REVIEW",
            "eventName": localized(order, &event.name),
            "venue": {"name": localized(order, &event.venue), "address": localized(order, &event.venue)},
            "dateTime": {
                "start": iso_in_zone(event.starts_at, &event.timezone),
                "end": iso_in_zone(event.ends_at, &event.timezone),
            },
        })
    }

    /// The ticket: `<issuer id>.<ticket id>`, its holder, type and add-ons, and its QR code.
    fn ticket_object(&self, order: &OrderView, ticket: &TicketView) -> Result<Value> {
        Ok(json!({
            "id": format!("{}.{}", self.issuer_id, ticket_id(ticket)?),
            "classId": self.class_id(order),
            "state": "ACTIVE",
            "ticketHolderName": ticket.holder_name,
            "ticketNumber": format!("{}-{}", order.id, ticket.seq + 1),
            "ticketType": localized(order, &entitlement(ticket)),
            "barcode": {"type": "QR_CODE", "value": ticket.qr_text},
        }))
    }
}

/// Google's LocalizedString with one text, tagged with the order's language (the catalog's texts are the
/// organizer's, in whatever language they wrote them; the order's is the best guess there is).
fn localized(order: &OrderView, value: &str) -> Value {
    json!({"defaultValue": {"language": order.locale.tag(), "value": value}})
}
