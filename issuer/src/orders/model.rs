//! What an order is, shared by every step of the flow: its status, the customer's request and the answer
//! to it, the customer's view of an order and the order's access token.

use scanner_core::wire::constant_time_eq;
use serde::{Deserialize, Serialize};

use crate::catalog::{event_for_pricing, EventView};
use crate::error::{Error, Result};
use crate::i18n::Locale;
use crate::state::AppState;
use crate::util::hash_secret;

/// Most tickets one order may contain.
pub const MAX_TICKETS_PER_ORDER: i64 = 20;

/// An order's status, stored in `orders.status` and shown in the APIs as the same snake_case text.
///
/// `pending` (unpaid, seats held until `hold_expires_at`) → `confirmed` (paid, free or pay at the door:
/// tickets issued) → `refunded`, `cancelled` or `disputed` (tickets revoked). A pending order becomes
/// `expired` when its hold runs out or `cancelled` by the organizer; an expired order paid after its seats
/// were sold becomes `payment_conflict` (paid, no tickets: a refund is needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Expired,
    Cancelled,
    Refunded,
    Disputed,
    PaymentConflict,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Expired,
        OrderStatus::Cancelled,
        OrderStatus::Refunded,
        OrderStatus::Disputed,
        OrderStatus::PaymentConflict,
    ];

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Expired => "expired",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Disputed => "disputed",
            OrderStatus::PaymentConflict => "payment_conflict",
        }
    }

    /// Closed by the organizer or the payment provider after it was confirmed or held: its tickets, if it
    /// has any, are revoked.
    pub fn is_closed(self) -> bool {
        matches!(self, OrderStatus::Refunded | OrderStatus::Cancelled | OrderStatus::Disputed)
    }
}

// Stored as its text in either database (sqlx's derive has no `Any` form, hence the three impls).
impl sqlx::Type<sqlx::Any> for OrderStatus {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <&str as sqlx::Type<sqlx::Any>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Any> for OrderStatus {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> std::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&str as sqlx::Encode<sqlx::Any>>::encode(self.as_str(), buf)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Any> for OrderStatus {
    fn decode(
        value: <sqlx::Any as sqlx::Database>::ValueRef<'r>,
    ) -> std::result::Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<sqlx::Any>>::decode(value)?;
        OrderStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| format!("unknown order status {text:?}").into())
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /v1/orders` (and the order form, turned into one).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub event_id: i64,
    pub name: String,
    pub email: String,
    /// The buyer's language (`en`, `de` or `fr`; the order page's choice), which the mail, the PDF and
    /// everything sent later speak. Default and anything else: English.
    #[serde(default)]
    pub locale: Option<String>,
    pub items: Vec<NewItem>,
    /// `free`, `at_door` or `stripe`; default: `free` for a zero total, else `stripe`.
    #[serde(default)]
    pub payment: Option<String>,
    /// A mobile number with its country code, for an SMS with the order link (only where this server sends
    /// SMS, see [`crate::sms`]); stored in E.164. Empty means none.
    #[serde(default)]
    pub phone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// Index of the ticket type within the event.
    pub ticket_type: i64,
    pub quantity: i64,
    /// Indices of the add-ons each ticket of this line includes.
    #[serde(default)]
    pub addons: Vec<i64>,
    /// The name each ticket of this line carries, in order (at most `quantity`); a missing or empty one
    /// is the buyer's (`name`).
    #[serde(default)]
    pub holders: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct OrderCreated {
    pub order_id: String,
    /// The access token: shown once, stored only as a hash.
    pub token: String,
    pub status: OrderStatus,
    pub order_url: String,
    pub total_cents: i64,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkout_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_expires_at: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct TicketView {
    pub seq: i64,
    pub ticket_type: i64,
    pub ticket_type_name: String,
    pub addons: Vec<String>,
    pub holder_name: String,
    pub revoked: bool,
    pub qr_text: String,
}

#[derive(Debug, Serialize)]
pub struct OrderView {
    pub id: String,
    pub status: OrderStatus,
    pub event: EventView,
    pub customer_name: String,
    pub customer_email: String,
    pub total_cents: i64,
    pub currency: String,
    pub payment_method: String,
    pub hold_expires_at: Option<i64>,
    pub created_at: i64,
    pub tickets: Vec<TicketView>,
    /// The language the order was placed in.
    pub locale: Locale,
}

/// Loads an order for display. With `token`, the token must match (else: not found, revealing nothing).
pub async fn load_order(state: &AppState, id: &str, token: Option<&str>) -> Result<OrderView> {
    type Row = (OrderStatus, i64, String, String, String, String, i64, String, Option<i64>, i64, String, String);
    let row: Option<Row> = sqlx::query_as(
        "SELECT status, event_id, customer_name, customer_email, payment_method, token_hash, total_cents, currency,
                hold_expires_at, created_at, id, locale FROM orders WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&state.db.read)
    .await?;
    let (
        status,
        event_id,
        customer_name,
        customer_email,
        payment_method,
        token_hash,
        total_cents,
        currency,
        hold,
        created_at,
        id,
        locale,
    ) = row.ok_or(Error::NotFound("order"))?;
    if let Some(token) = token {
        if !constant_time_eq(hash_secret(token).as_bytes(), token_hash.as_bytes()) {
            return Err(Error::NotFound("order"));
        }
    }
    // The event from the pricing cache (every instance clears it on any catalog change, see
    // `catalog::changes`): an order shows and mails its event's names, venue and times, which that cache
    // holds, and the outbox renders one mail per order, so reading the event's four tables for each was
    // most of the database's work in a sales spike.
    let event = EventView::clone(&*event_for_pricing(state, event_id).await?);
    let rows: Vec<(i64, i64, i64, String, crate::db::Flag, String)> = sqlx::query_as(
        "SELECT seq, ticket_type, addon_mask, holder_name, CAST(revoked AS INTEGER), qr_text FROM tickets
         WHERE order_id = $1 ORDER BY seq",
    )
    .bind(&id)
    .fetch_all(&state.db.read)
    .await?;
    let tickets = rows
        .into_iter()
        .map(|(seq, tt, mask, holder_name, revoked, qr_text)| TicketView {
            seq,
            ticket_type: tt,
            ticket_type_name: event
                .ticket_types
                .iter()
                .find(|t| t.index == tt)
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            addons: event.addons.iter().filter(|a| mask & (1 << a.index) != 0).map(|a| a.name.clone()).collect(),
            holder_name,
            revoked: revoked.0,
            qr_text,
        })
        .collect();
    Ok(OrderView {
        id,
        status,
        event,
        customer_name,
        customer_email,
        total_cents,
        currency,
        payment_method,
        hold_expires_at: hold,
        created_at,
        tickets,
        locale: Locale::stored(&locale),
    })
}

/// Longest holder name (characters), as long as a buyer's name. Scanners show the first
/// `MAX_HOLDER_NAME_LEN / 4` characters (the manifest entry's byte bound at four bytes a character).
pub const MAX_HOLDER_NAME_CHARS: usize = 100;

/// Validates a ticket holder's name as a buyer's name is validated (trimmed, not empty, bounded, no control
/// or bidirectional-override characters). Every page escapes it when showing it.
pub fn clean_holder_name(value: &str) -> Result<String> {
    crate::util::clean_text("holder_name", value, MAX_HOLDER_NAME_CHARS)
}

/// The names given for the tickets of one order line: at most `quantity` of them, each valid or empty
/// (an empty one, or one not given, means the buyer's name). Stored as JSON in `order_items.holder_names`.
pub fn clean_holder_names(names: &[String], quantity: i64) -> Result<Vec<String>> {
    if names.len() as i64 > quantity {
        return Err(Error::validation("holders", "more names than tickets in the line"));
    }
    names.iter().map(|n| if n.trim().is_empty() { Ok(String::new()) } else { clean_holder_name(n) }).collect()
}

/// The access token of an order: HMAC-SHA256(link secret, order id), so the server can put the order link
/// in the email without storing the token (the database keeps only its hash).
pub fn order_token(state: &AppState, order_id: &str) -> String {
    use base64::Engine as _;
    use hmac::Mac;
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&state.link_secret).unwrap_or_else(|_| unreachable!());
    mac.update(b"order-token\0");
    mac.update(order_id.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..24])
}

/// The customer's order page URL, with its access token.
pub fn order_link(state: &AppState, order_id: &str) -> String {
    format!("{}/orders/{}?token={}", state.public_url, order_id, order_token(state, order_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_the_stored_strings() {
        let stored = ["pending", "confirmed", "expired", "cancelled", "refunded", "disputed", "payment_conflict"];
        for (status, text) in OrderStatus::ALL.into_iter().zip(stored) {
            assert_eq!(status.as_str(), text);
            assert_eq!(serde_json::to_value(status).unwrap(), serde_json::json!(text));
            assert_eq!(serde_json::from_value::<OrderStatus>(serde_json::json!(text)).unwrap(), status);
        }
    }

    #[tokio::test]
    async fn statuses_round_trip_through_sqlite_as_text() {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new().connect("sqlite::memory:").await.unwrap();
        for status in OrderStatus::ALL {
            let (text, back): (String, OrderStatus) =
                sqlx::query_as("SELECT CAST($1 AS TEXT), $1").bind(status).fetch_one(&pool).await.unwrap();
            assert_eq!(text, status.as_str());
            assert_eq!(back, status);
            let (decoded,): (OrderStatus,) =
                sqlx::query_as("SELECT $1").bind(status.as_str()).fetch_one(&pool).await.unwrap();
            assert_eq!(decoded, status);
        }
    }
}
