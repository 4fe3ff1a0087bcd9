//! "Save to Google Wallet" links: `https://pay.google.com/gp/v/save/<JWT>`, the JWT signed RS256 with the
//! organizer's Google Cloud service-account key, in the shape of Google Wallet's JWT reference: `iss` the
//! service account's email, `aud` "google", `typ` "savetowallet", `iat`, `origins` (this issuer's public
//! URL) and a `payload` with the event's `eventTicketClasses` entry and the ticket's `eventTicketObjects`
//! entry inline, so nothing has to be created through Google's REST API first. The object's barcode is a
//! QR code of the ticket's QR text.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::sign::Signer;
use serde_json::{json, Value};

use super::content::{entitlement, iso_in_zone, ticket_id};
use super::keys::SaveLinkSigner;
use crate::error::{Error, Result};
use crate::orders::model::{OrderView, TicketView};

/// Google's save page; the JWT follows the last slash.
pub const SAVE_URL: &str = "https://pay.google.com/gp/v/save/";

impl SaveLinkSigner {
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
