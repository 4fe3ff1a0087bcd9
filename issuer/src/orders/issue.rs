//! Issuing: a confirmed order's tickets are signed with the issuer key, stored with their QR text, and the
//! confirmation email is queued, all in the transaction that confirms the order. Orders that settle at
//! once (free, pay at the door) are issued by the group committer ([`super::commit`]); online payments
//! by the payment webhook through [`confirm_paid`].

use scanner_core::{EntryPolicy, Ticket, TicketId};

use super::model::OrderStatus;
use super::reserve::re_reserve;
use crate::db::Tx;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::util::now;

/// Tickets admit until this long after the event's end.
const VALID_AFTER_END_SECS: i64 = 6 * 3600;

/// What one line of tickets is signed with.
pub(super) struct TicketLine {
    pub(super) quantity: i64,
    pub(super) addon_mask: i64,
    /// The ticket type's index within the event.
    pub(super) type_index: i64,
    pub(super) reentry: bool,
    /// Each ticket's price (type and add-ons) is due at the door: signed into the ticket (flag bit 3).
    pub(super) payment_due: bool,
    /// The names given for the line's tickets, in order; a missing or empty one is the buyer's.
    pub(super) holders: Vec<String>,
}

/// Signs and stores the tickets of an order and enqueues its confirmation email, inside `tx`.
async fn issue_tickets(tx: &mut Tx<'_>, state: &AppState, order_id: &str) -> Result<usize> {
    type Row = (i64, i64, i64, crate::db::Flag, i64, String, i64, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT i.quantity, i.addon_mask, t.idx, CAST(t.reentry AS INTEGER), e.ends_at, o.customer_name, o.event_id, i.holder_names
         FROM order_items i JOIN ticket_types t ON t.id = i.ticket_type_id JOIN orders o ON o.id = i.order_id
         JOIN events e ON e.id = o.event_id WHERE i.order_id = $1 ORDER BY i.id",
    )
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?;
    let Some((_, _, _, _, ends_at, holder, event_id, _)) = rows.first().cloned() else {
        return Err(Error::internal(format!("order {order_id} has no items")));
    };
    let lines: Vec<TicketLine> = rows
        .into_iter()
        // Orders issued here were paid online (or are free): nothing is due at the door.
        .map(|(quantity, addon_mask, type_index, reentry, _, _, _, names)| TicketLine {
            quantity,
            addon_mask,
            type_index,
            reentry: reentry.0,
            payment_due: false,
            // Written by the committer from validated names; unreadable JSON falls back to the buyer.
            holders: names.and_then(|n| serde_json::from_str(&n).ok()).unwrap_or_default(),
        })
        .collect();
    sign_and_store(tx, state, order_id, event_id, ends_at, &holder, &lines).await
}

/// Signs each ticket of `lines`, stores it, and enqueues the order's confirmation email, inside `tx`.
pub(super) async fn sign_and_store(
    tx: &mut Tx<'_>,
    state: &AppState,
    order_id: &str,
    event_id: i64,
    event_ends_at: i64,
    holder: &str,
    lines: &[TicketLine],
) -> Result<usize> {
    let tickets = sign_tickets(state, order_id, event_id, event_ends_at, holder, lines)?;
    insert_tickets(tx, &tickets).await?;
    crate::email::enqueue(tx, state, order_id).await?;
    Ok(tickets.len())
}

/// One signed ticket as its row in `tickets` is written.
pub(super) struct SignedTicket<'a> {
    ticket_id: String,
    order_id: &'a str,
    seq: i64,
    event_id: i64,
    type_index: i64,
    addon_mask: i64,
    holder: &'a str,
    key_id: i64,
    qr_text: String,
    created: i64,
}

/// Signs each ticket of an order's `lines` (numbered from 0 in line order); nothing is stored yet.
pub(super) fn sign_tickets<'a>(
    state: &AppState,
    order_id: &'a str,
    event_id: i64,
    event_ends_at: i64,
    holder: &'a str,
    lines: &'a [TicketLine],
) -> Result<Vec<SignedTicket<'a>>> {
    let key = &state.signer.key;
    let created = now();
    let mut tickets = Vec::with_capacity(lines.iter().map(|l| l.quantity.max(0) as usize).sum());
    for line in lines {
        for i in 0..line.quantity {
            let holder = match line.holders.get(i as usize) {
                Some(name) if !name.is_empty() => name.as_str(),
                _ => holder,
            };
            let ticket = Ticket {
                key_id: key.key_id(),
                event_id: u32::try_from(event_id).map_err(Error::internal)?,
                ticket_id: TicketId::random(),
                ticket_type: u8::try_from(line.type_index).map_err(Error::internal)?,
                addons: u16::try_from(line.addon_mask).map_err(Error::internal)?,
                policy: if line.reentry { EntryPolicy::ReEntry } else { EntryPolicy::SingleEntry },
                payment_due: line.payment_due,
                valid_from: None,
                valid_until: u32::try_from(event_ends_at + VALID_AFTER_END_SECS).ok(),
            };
            let signed = key.sign_ticket(&ticket).map_err(Error::internal)?;
            tickets.push(SignedTicket {
                ticket_id: ticket.ticket_id.to_hex(),
                order_id,
                seq: tickets.len() as i64,
                event_id,
                type_index: line.type_index,
                addon_mask: line.addon_mask,
                holder,
                key_id: i64::from(key.key_id().0),
                qr_text: signed.to_qr_text(),
                created,
            });
        }
    }
    Ok(tickets)
}

/// Stores signed tickets (of one order or of a whole batch of orders) inside `tx`, as few multi-row
/// `INSERT`s as the bind limit allows: one round trip for a batch instead of one per ticket.
pub(super) async fn insert_tickets(tx: &mut Tx<'_>, tickets: &[SignedTicket<'_>]) -> Result<()> {
    const COLS: usize = 10;
    for chunk in tickets.chunks(crate::db::MAX_BIND_PARAMS / COLS) {
        let sql = format!(
            "INSERT INTO tickets (ticket_id, order_id, seq, event_id, ticket_type, addon_mask, holder_name, key_id, qr_text, created_at)
             VALUES {}",
            crate::db::values_rows(chunk.len(), COLS)
        );
        let mut query = sqlx::query(&sql).persistent(crate::db::keep_prepared(chunk.len()));
        for t in chunk {
            query = query
                .bind(&t.ticket_id)
                .bind(t.order_id)
                .bind(t.seq)
                .bind(t.event_id)
                .bind(t.type_index)
                .bind(t.addon_mask)
                .bind(t.holder)
                .bind(t.key_id)
                .bind(&t.qr_text)
                .bind(t.created);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// What a payment did to its order ([`confirm_paid`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paid {
    /// The order is confirmed and its tickets issued.
    Confirmed,
    /// The organizer had cancelled the order: the payment is owed back (a refund recorded as pending).
    RefundPending,
    /// The hold had expired and the seats are gone: paid, no tickets (`payment_conflict`).
    PaymentConflict,
}

impl Paid {
    /// The webhook's outcome word.
    pub fn as_str(self) -> &'static str {
        match self {
            Paid::Confirmed => OrderStatus::Confirmed.as_str(),
            Paid::RefundPending => "refund_pending",
            Paid::PaymentConflict => OrderStatus::PaymentConflict.as_str(),
        }
    }
}

/// Marks a paid order confirmed and issues its tickets, once. Used by payment webhooks.
/// Returns what the payment did, or `None` if the order was already settled (idempotent repeat).
pub async fn confirm_paid(state: &AppState, order_id: &str, payment_intent: Option<&str>) -> Result<Option<Paid>> {
    let mut tx = state.db.write.begin().await?;
    let row: Option<(OrderStatus, String, Option<String>)> =
        sqlx::query_as("SELECT status, payment_method, payment_intent FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?;
    let (status, method, paid_intent) = row.ok_or(Error::NotFound("order"))?;
    match status {
        OrderStatus::Pending => {}
        // Cancelled by the organizer before it was paid: the payment that still arrived goes back (a
        // refund recorded as pending, see payments::refunds); the order is never re-confirmed.
        OrderStatus::Cancelled => {
            let (None, Some(intent)) = (paid_intent, payment_intent) else { return Ok(None) };
            sqlx::query("UPDATE orders SET payment_intent = $1, updated_at = $2 WHERE id = $3")
                .bind(intent)
                .bind(now())
                .bind(order_id)
                .execute(&mut *tx)
                .await?;
            crate::payments::refunds::record(&mut tx, order_id, &method, intent, "late_payment").await?;
            tx.commit().await?;
            tracing::warn!(order = %order_id, "payment arrived for a cancelled order: refund recorded");
            return Ok(Some(Paid::RefundPending));
        }
        OrderStatus::Expired => {
            if !re_reserve(&mut tx, order_id).await? {
                drop(tx);
                let mut tx = state.db.write.begin().await?;
                sqlx::query("UPDATE orders SET status = $1, payment_intent = $2, updated_at = $3 WHERE id = $4")
                    .bind(OrderStatus::PaymentConflict)
                    .bind(payment_intent)
                    .bind(now())
                    .bind(order_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                tracing::warn!(order = %order_id, "paid after its hold expired and the seats are gone: refund needed");
                return Ok(Some(Paid::PaymentConflict));
            }
        }
        _ => return Ok(None),
    };
    sqlx::query(
        "UPDATE orders SET status = $1, payment_intent = $2, hold_expires_at = NULL, updated_at = $3 WHERE id = $4",
    )
    .bind(OrderStatus::Confirmed)
    .bind(payment_intent)
    .bind(now())
    .bind(order_id)
    .execute(&mut *tx)
    .await?;
    issue_tickets(&mut tx, state, order_id).await?;
    tx.commit().await?;
    state.mail_wakeup.notify_one();
    tracing::info!(order = %order_id, "payment confirmed; tickets issued");
    Ok(Some(Paid::Confirmed))
}
