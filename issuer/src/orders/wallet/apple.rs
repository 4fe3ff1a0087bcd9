//! Apple Wallet passes: one `.pkpass` per ticket, in the layout Apple's Wallet documentation gives — a zip
//! of `pass.json` (an `eventTicket` pass whose QR barcode message is the ticket's QR text), the icons,
//! `manifest.json` (the SHA-1 in hex of every other file) and `signature`, a detached PKCS#7 SignedData
//! over `manifest.json` made with the organizer's pass certificate and key, carrying Apple's WWDR
//! intermediate certificate. The size is bounded: one ticket, every text field taken from the stored
//! (validated, length-bounded) order and catalog.

use std::collections::BTreeMap;
use std::io::Write as _;

use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use serde_json::{json, Value};

use super::content::{entitlement, iso_in_zone, ticket_id};
use super::keys::PassSigner;
use crate::error::{Error, Result};
use crate::orders::model::{OrderView, TicketView};

/// The media type Apple documents for a pass.
pub const CONTENT_TYPE: &str = "application/vnd.apple.pkpass";

/// The pass icons (29×29 and 58×58 PNG, a plain ticket shape), committed in issuer/assets/wallet. Wallet
/// requires an icon; it shows it on the lock screen and in notifications.
const ICON: &[u8] = include_bytes!("../../../assets/wallet/icon.png");
const ICON_2X: &[u8] = include_bytes!("../../../assets/wallet/icon@2x.png");

impl PassSigner {
    /// The signed `.pkpass` of `ticket` (a live ticket of `order`).
    pub fn pkpass(&self, order: &OrderView, ticket: &TicketView) -> Result<Vec<u8>> {
        let pass_json = serde_json::to_vec_pretty(&self.pass_json(order, ticket)?).map_err(Error::internal)?;
        let files: [(&str, &[u8]); 3] = [("pass.json", &pass_json), ("icon.png", ICON), ("icon@2x.png", ICON_2X)];
        let manifest: BTreeMap<&str, String> =
            files.iter().map(|(name, bytes)| (*name, hex::encode(openssl::sha::sha1(bytes)))).collect();
        let manifest = serde_json::to_vec_pretty(&manifest).map_err(Error::internal)?;
        let signature = self.sign(&manifest)?;

        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in files.into_iter().chain([("manifest.json", &manifest[..]), ("signature", &signature[..])])
        {
            zip.start_file(name, options).map_err(Error::internal)?;
            zip.write_all(bytes).map_err(Error::internal)?;
        }
        Ok(zip.finish().map_err(Error::internal)?.into_inner())
    }

    /// The DER of a detached PKCS#7 SignedData over `manifest`: signed attributes (content type, signing
    /// time, message digest) by the pass certificate, which is included with the WWDR certificate. BINARY:
    /// the bytes are signed as they are, with no S/MIME newline translation.
    fn sign(&self, manifest: &[u8]) -> Result<Vec<u8>> {
        let mut chain = Stack::new().map_err(Error::internal)?;
        chain.push(self.wwdr.clone()).map_err(Error::internal)?;
        let flags = Pkcs7Flags::DETACHED | Pkcs7Flags::BINARY;
        let signed = Pkcs7::sign(&self.cert, &self.key, &chain, manifest, flags).map_err(Error::internal)?;
        signed.to_der().map_err(Error::internal)
    }

    /// `pass.json`, in the order's language: an event ticket with the event, venue and start (in the event's own time zone: Wallet
    /// is told to ignore the phone's), the ticket's type and add-ons and its holder, the order on the back,
    /// and the QR code. `sharingProhibited`: a copy of a ticket is the same ticket.
    fn pass_json(&self, order: &OrderView, ticket: &TicketView) -> Result<Value> {
        let event = &order.event;
        let l = order.locale;
        let mut back = vec![
            field("order", &l.text("wallet-order"), &order.id),
            field("when", &l.text("wallet-when"), &crate::orders::pdf::when(l, order)),
        ];
        if order.payment_method == "at_door" && order.total_cents > 0 {
            back.push(field("pay", &l.text("wallet-pay-at-door"), &l.money(order.total_cents, &order.currency)));
        }
        back.push(field("notice", &l.text("wallet-entry"), &l.text("wallet-notice")));
        Ok(json!({
            "formatVersion": 1,
            "passTypeIdentifier": self.identity.pass_type_id,
            "teamIdentifier": self.identity.team_id,
            "serialNumber": ticket_id(ticket)?,
            "organizationName": self.identity.organization,
            "description": l.tr("wallet-description", &[("event", event.name.as_str().into())]),
            "relevantDate": iso_in_zone(event.starts_at, &event.timezone),
            "expirationDate": iso_in_zone(event.ends_at, &event.timezone),
            "sharingProhibited": true,
            "eventTicket": {
                "primaryFields": [field("event", &l.text("wallet-event"), &event.name)],
                "secondaryFields": [
                    field("venue", &l.text("wallet-venue"), &event.venue),
                    {
                        "key": "starts",
                        "label": l.text("wallet-starts"),
                        "value": iso_in_zone(event.starts_at, &event.timezone),
                        "dateStyle": "PKDateStyleMedium",
                        "timeStyle": "PKDateStyleShort",
                        "ignoresTimeZone": true,
                    },
                ],
                "auxiliaryFields": [
                    field("ticket", &l.text("wallet-ticket"), &entitlement(ticket)),
                    field("holder", &l.text("wallet-holder"), &ticket.holder_name),
                ],
                "backFields": back,
            },
            "barcodes": [{
                "format": "PKBarcodeFormatQR",
                "message": ticket.qr_text,
                "messageEncoding": "iso-8859-1",
                "altText": l.tr("wallet-barcode-alt", &[("n", (ticket.seq + 1).into())]),
            }],
        }))
    }
}

/// A pass field: its key, label and text value.
fn field(key: &str, label: &str, value: &str) -> Value {
    json!({"key": key, "label": label, "value": value})
}

/// `ticket-N.pkpass`, N counted from 1 as the page counts tickets.
pub fn file_name(seq: i64) -> String {
    format!("ticket-{}.pkpass", seq + 1)
}
