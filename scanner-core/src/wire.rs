//! Messages between scanners and the issuer that are not part of the ticket format: the door's online
//! attendee search and the event's gate rules. Defined once here for the issuer (which serves them), the
//! CLI and the PWA (which ask).
//!
//! - `GET /v1/scanner/events/{event}/gates` (device token): the event's [`crate::gates::GateRules`] JSON.
//! - `GET /v1/scanner/events/{event}/search?q=TEXT` (device token **and** a supervisor pass in the
//!   [`SUPERVISOR_PASS_HEADER`] header, checked with [`crate::supervisor::SupervisorPass::verify`]):
//!   [`SearchResults`], orders whose buyer name, email, order id or a ticket's holder name matches.

use serde::{Deserialize, Serialize};

/// The header that carries a supervisor pass to the issuer.
pub const SUPERVISOR_PASS_HEADER: &str = "x-supervisor-pass";
/// Most orders one search returns.
pub const MAX_SEARCH_RESULTS: usize = 20;
/// Shortest search text (characters): a search must narrow the attendee list, not dump it.
pub const MIN_QUERY_CHARS: usize = 3;
/// Longest search text (characters).
pub const MAX_QUERY_CHARS: usize = 100;

/// The path of an event's gate rules.
pub fn gate_rules_path(event: u32) -> String {
    format!("/v1/scanner/events/{event}/gates")
}

/// The path of a search, with the query percent-encoded.
pub fn search_path(event: u32, query: &str) -> String {
    format!("/v1/scanner/events/{event}/search?q={}", percent_encode(query))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One ticket of an order found by search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundTicket {
    /// The ticket id, hex.
    pub ticket_id: String,
    pub holder: String,
    pub ticket_type: u8,
    pub ticket_type_name: String,
    pub addons: Vec<u8>,
    /// Refunded or cancelled (the scanner refuses it as revoked).
    pub revoked: bool,
    /// The ticket's QR text: the supervisor admits it through the ordinary scan decision.
    pub qr_text: String,
}

/// One order found by search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundOrder {
    pub order_id: String,
    pub buyer_name: String,
    pub email: String,
    /// The order's status ("paid", "pay_at_door", "refunded", ...).
    pub status: String,
    pub tickets: Vec<FoundTicket>,
}

/// The answer to a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResults {
    pub orders: Vec<FoundOrder>,
    /// More orders matched than [`MAX_SEARCH_RESULTS`]: the supervisor should search more precisely.
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_paths_are_encoded() {
        assert_eq!(search_path(7, "Zoë & co/x"), "/v1/scanner/events/7/search?q=Zo%C3%AB%20%26%20co%2Fx");
        assert_eq!(gate_rules_path(7), "/v1/scanner/events/7/gates");
    }
}
