//! The hand-over between the order handlers and the group committer ([`super::commit`]): a validated,
//! priced order ([`OrderRow`]) goes into the queue, and the handler waits for the commit that made it
//! durable. Nothing here touches the store.
//!
//! The queue also knows how many orders are between their hand-over and their answer, so that work nobody
//! is waiting on (the email outbox) can start in the moments when no buyer is waiting ([`OrderQueue::quiet`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};

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
    waiting: Arc<Waiting>,
}

/// The orders placed and not yet answered, and a wake-up for the moment there are none.
#[derive(Default)]
struct Waiting {
    orders: AtomicUsize,
    none: Notify,
}

/// One placed order counted in [`Waiting`] until it is answered, or its handler gives up on it.
struct Counted<'a>(&'a Waiting);

impl<'a> Counted<'a> {
    fn new(waiting: &'a Waiting) -> Self {
        waiting.orders.fetch_add(1, Ordering::SeqCst);
        Counted(waiting)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        if self.0.orders.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.none.notify_waiters();
        }
    }
}

/// The committer's side, handed to [`super::commit::run`].
pub struct OrderQueueReceiver {
    pub(crate) rx: mpsc::Receiver<Placement>,
}

pub fn channel() -> (OrderQueue, OrderQueueReceiver) {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    (OrderQueue { tx, waiting: Arc::default() }, OrderQueueReceiver { rx })
}

fn stopped() -> Error {
    Error::Internal("the order committer has stopped (server shutting down)".into())
}

impl OrderQueue {
    /// Writes `row` durably (returned back on success), or fails with the order's own error: `Conflict`
    /// when sold out, a database error when its transaction could not commit.
    pub(crate) async fn place(&self, row: OrderRow) -> Result<OrderRow> {
        let _counted = Counted::new(&self.waiting);
        let (reply, answer) = oneshot::channel();
        self.tx.send(Placement { row, retried: false, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Counts a buyer waiting for an answer until the guard is dropped, as [`Self::place`] does: for tests of
    /// what gives way to buyers.
    #[cfg(test)]
    pub(crate) fn buyer_waiting(&self) -> impl Drop + '_ {
        Counted::new(&self.waiting)
    }

    /// Waits until no placed order is waiting for its answer, but at most `at_most`; true if that moment
    /// came. Under light load it comes at once or within one commit. In a sales spike that keeps the
    /// committer busy it may not come at all, and the caller goes on after `at_most` anyway: that bound is
    /// the least pace its work keeps.
    pub async fn quiet(&self, at_most: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + at_most;
        loop {
            // Registered before the count is read, so an answer between the two still wakes this waiter.
            let none = self.waiting.none.notified();
            tokio::pin!(none);
            none.as_mut().enable();
            if self.waiting.orders.load(Ordering::SeqCst) == 0 {
                return true;
            }
            tokio::select! {
                _ = &mut none => {}
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn quiet_comes_at_once_without_orders_and_waits_for_the_last_answer() {
        let (queue, _rx) = channel();
        assert!(queue.quiet(Duration::from_secs(60)).await, "no order placed: quiet at once");

        // Two orders waiting; the wait ends when the second of them is answered, not before.
        let (first, second) = (Counted::new(&queue.waiting), Counted::new(&queue.waiting));
        let waiter = tokio::spawn({
            let queue = queue.clone();
            async move { queue.quiet(Duration::from_secs(60)).await }
        });
        drop(first);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "one order still waits for its answer");
        drop(second);
        assert!(waiter.await.unwrap(), "quiet came when the last order was answered");
        assert_eq!(queue.waiting.orders.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn quiet_gives_up_after_its_bound_while_an_order_waits() {
        let (queue, _rx) = channel();
        let _waiting = Counted::new(&queue.waiting);
        let started = std::time::Instant::now();
        assert!(!queue.quiet(Duration::from_millis(30)).await);
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[tokio::test]
    async fn an_order_whose_handler_gives_up_is_no_longer_counted() {
        let (queue, mut rx) = channel();
        // The handler's request is dropped (the buyer went away) while the committer holds the order.
        let placing = tokio::spawn({
            let queue = queue.clone();
            async move { queue.place(test_row()).await.map(|_| ()) }
        });
        let held = rx.rx.recv().await.expect("the committer got the order");
        assert_eq!(queue.waiting.orders.load(Ordering::SeqCst), 1);
        placing.abort();
        let _ = placing.await;
        assert!(queue.quiet(Duration::from_secs(60)).await);
        drop(held);
    }

    fn test_row() -> OrderRow {
        OrderRow {
            order_id: "o".into(),
            token_hash: "h".into(),
            name: "Ada".into(),
            email: "ada@example.org".into(),
            phone: None,
            locale: crate::i18n::Locale::En,
            event_id: 1,
            event_ends_at: 0,
            method: "free",
            total: 0,
            currency: "EUR".into(),
            hold_expires_at: None,
            created: 0,
            settles: true,
            lines: Vec::new(),
            email_cap: None,
        }
    }
}
