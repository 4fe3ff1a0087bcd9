//! The hand-over between the order handlers and the group committer ([`super::commit`]): a validated,
//! priced order ([`OrderRow`]) goes into the queue, and the handler waits for the commit that made it
//! durable. Nothing here touches the store.

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// Orders that may wait for the committer before new ones are pushed back (the handlers then wait).
const QUEUE_DEPTH: usize = 4096;

/// One line of a validated order.
pub(crate) struct Line {
    pub(crate) ticket_type_id: i64,
    /// The ticket type's index within the event (what the ticket carries).
    pub(crate) type_index: i64,
    pub(crate) reentry: bool,
    pub(crate) type_name: String,
    pub(crate) quantity: i64,
    pub(crate) unit_cents: i64,
    pub(crate) addon_mask: i64,
    /// (name, price in minor units) of each add-on of the line.
    pub(crate) addon_lines: Vec<(String, i64)>,
    /// The validated names of the line's tickets (see [`super::model::clean_holder_names`]).
    pub(crate) holders: Vec<String>,
}

/// A validated, priced order ready to be written: what the group committer needs.
pub(crate) struct OrderRow {
    pub(crate) order_id: String,
    pub(crate) token_hash: String,
    pub(crate) name: String,
    pub(crate) email: String,
    /// The buyer's mobile number in E.164, for the SMS with the order link.
    pub(crate) phone: Option<String>,
    /// The buyer's language (`orders.locale`).
    pub(crate) locale: crate::i18n::Locale,
    pub(crate) event_id: i64,
    pub(crate) event_ends_at: i64,
    /// The payment method (`orders.payment_method`).
    pub(crate) method: &'static str,
    pub(crate) total: i64,
    pub(crate) currency: String,
    pub(crate) hold_expires_at: Option<i64>,
    pub(crate) created: i64,
    /// The order is confirmed at once (free / pay at door): its tickets and email job are written too.
    /// Otherwise it is written pending, holding its seats until `hold_expires_at`.
    pub(crate) settles: bool,
    pub(crate) lines: Vec<Line>,
    /// The event's cap of tickets per email address, checked by the committer in the order's transaction.
    pub(crate) email_cap: Option<i64>,
}

impl OrderRow {
    /// Whether reserving this order takes more than one conditional `UPDATE` (several lines or add-ons),
    /// so that a sold-out later reservation must roll back earlier ones.
    pub(crate) fn reserves_several(&self) -> bool {
        self.lines.len() > 1 || self.lines.iter().any(|l| l.addon_mask != 0)
    }

    /// The order's one line, if it has exactly one and no add-ons: an order the group committer can
    /// reserve together with others of its ticket type.
    pub(crate) fn only_line(&self) -> Option<&Line> {
        match self.lines.as_slice() {
            [line] if line.addon_mask == 0 => Some(line),
            _ => None,
        }
    }

    /// How many tickets the order contains.
    pub(crate) fn tickets(&self) -> i64 {
        self.lines.iter().map(|l| l.quantity).sum()
    }
}

pub(crate) struct Placement {
    pub(crate) row: OrderRow,
    /// Whether this order already went through a batch and was sold out, and holds were then expired.
    pub(crate) retried: bool,
    pub(crate) reply: oneshot::Sender<Result<OrderRow>>,
}

/// The handlers' side of the committer.
#[derive(Clone)]
pub struct OrderQueue {
    tx: mpsc::Sender<Placement>,
}

/// The committer's side, handed to [`super::commit::run`].
pub struct OrderQueueReceiver {
    pub(crate) rx: mpsc::Receiver<Placement>,
}

pub fn channel() -> (OrderQueue, OrderQueueReceiver) {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    (OrderQueue { tx }, OrderQueueReceiver { rx })
}

fn stopped() -> Error {
    Error::Internal("the order committer has stopped (server shutting down)".into())
}

impl OrderQueue {
    /// Writes `row` durably (returned back on success), or fails with the order's own error: `Conflict`
    /// when sold out, a database error when its transaction could not commit.
    pub(crate) async fn place(&self, row: OrderRow) -> Result<OrderRow> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Placement { row, retried: false, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}
