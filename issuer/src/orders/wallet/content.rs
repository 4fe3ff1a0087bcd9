//! What both wallets show of a ticket, worded once.

use crate::catalog::time::zone_or_utc;
use crate::error::{Error, Result};
use crate::orders::model::TicketView;

/// `2033-05-18T05:33:20+02:00`: `secs` in the event's time zone with its UTC offset, the W3C date form
/// both wallets take.
pub(super) fn iso_in_zone(secs: i64, timezone: &str) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_zoned_datetime(zone_or_utc(timezone)).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
        .unwrap_or_default()
}

/// `Standard + Drink, Parking`: the ticket type and its add-ons, as the PDF and the page name them.
pub(super) fn entitlement(ticket: &TicketView) -> String {
    if ticket.addons.is_empty() {
        ticket.ticket_type_name.clone()
    } else {
        format!("{} + {}", ticket.ticket_type_name, ticket.addons.join(", "))
    }
}

/// The ticket's id (the 96-bit id signed into it, in hex), read from its QR text: the pass's serial
/// number and the Google object's id.
pub(super) fn ticket_id(ticket: &TicketView) -> Result<String> {
    let signed = scanner_core::SignedTicket::from_qr_text(&ticket.qr_text).map_err(Error::internal)?;
    Ok(signed.ticket.ticket_id.to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_carry_the_event_zone_offset() {
        // 2_000_000_000 is 2033-05-18 03:33:20 UTC (`date -u -d @2000000000`); Berlin is UTC+2 in May.
        assert_eq!(iso_in_zone(2_000_000_000, "Europe/Berlin"), "2033-05-18T05:33:20+02:00");
        assert_eq!(iso_in_zone(2_000_000_000, "UTC"), "2033-05-18T03:33:20+00:00");
    }
}
