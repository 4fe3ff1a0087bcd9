//! Group commit for orders: the one task that writes new orders.
//!
//! SQLite has one writer and, with `synchronous = FULL`, one fsync per transaction. Committing each order
//! in its own transaction caps durable orders per second at the disk's fsync rate, which is exactly the
//! ceiling a sales spike hits. Instead, every handler hands its validated order to one committer task,
//! which takes whatever has queued up (up to [`MAX_BATCH`]) and writes it in ONE transaction, so that a
//! sold-out or failing order rolls back alone while the others commit (see [`write_batch`]), and every
//! handler is answered only after the commit that made its order durable.
//!
//! Under light load a batch is a single order and nothing waits for company: latency stays one commit.
//! Under load the statements per batch matter as much as the fsync (each is a round trip to PostgreSQL):
//! a run of common orders (one line, no add-ons) is written by [`write_run`] with a few statements for the
//! whole run — ticket types' room read once, multi-row `INSERT`s, one reservation `UPDATE` per ticket type
//! — and each of its orders is still decided in arrival order exactly as one conditional `UPDATE` after
//! another would decide it. With several instances, the committers' transactions hold the ticket type's
//! row lock only from their reservation to their commit ([`Room::Unlocked`]); one that finds the room gone
//! there writes its batch again with the rows locked first ([`Room::Locked`]). Other orders are reserved
//! one by one with the conditional `UPDATE` of [`super::reserve`]. Either way no ticket type is oversold:
//! each reservation applies only where the room is there when the row is locked, and the store's `CHECK`s
//! refuse anything over capacity.
//!
//! The event's cap of tickets per email address is checked here too, inside the transaction that writes
//! the order ([`write_one`], [`write_run`]): the committer is the only writer of orders of this instance
//! and decides one order at a time, counting the earlier orders of the same batch, so two concurrent
//! orders for one address can never both pass a cap that only one of them fits under. With several
//! instances on one PostgreSQL there are several committers: the check first locks the event's row
//! ([`crate::db::lock_event`]), so theirs take turns too.

use tokio::sync::watch;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::issue::{insert_tickets, sign_and_store, sign_tickets, TicketLine};
use super::model::OrderStatus;
use super::queue::{Line, OrderQueueReceiver, OrderRow, Placement};
use super::reserve::{expire_holds, reserve, sold_out, Reservation};
use crate::db::{keep_prepared, values_rows, Tx, MAX_BIND_PARAMS};
use crate::error::{Error, Result};
use crate::state::AppState;

/// Most orders written by one transaction. Large enough to amortise the fsync, small enough that the
/// writer connection is never held for long.
pub const MAX_BATCH: usize = 128;

/// Runs the committer until shutdown. Orders already queued when shutdown arrives are still written.
pub async fn run(state: AppState, mut queue: OrderQueueReceiver, mut shutdown: watch::Receiver<bool>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let stopping = tokio::select! {
            biased;
            n = queue.rx.recv_many(&mut batch, MAX_BATCH) => {
                if n == 0 {
                    return;
                }
                false
            }
            _ = shutdown.wait_for(|stop| *stop) => true,
        };
        if stopping {
            queue.rx.close();
            while queue.rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                commit_batch(&state, std::mem::take(&mut batch)).await;
            }
            return;
        }
        commit_batch(&state, std::mem::take(&mut batch)).await;
    }
}

/// Writes one batch and answers every handler in it.
async fn commit_batch(state: &AppState, batch: Vec<Placement>) {
    let mut batch = batch;
    loop {
        let written = match write_batch(state, &batch, Room::Unlocked).await {
            // Another instance took room this batch counted on: the batch rolled back; now with the locks.
            Ok(None) => {
                tracing::debug!(orders = batch.len(), "room taken meanwhile: order batch written again with locks");
                write_batch(state, &batch, Room::Locked).await
            }
            other => other,
        };
        let results = match written {
            Ok(Some(results)) => results,
            Ok(None) => {
                tracing::error!(orders = batch.len(), "order batch with locked rows found no room it had read");
                batch.iter().map(|_| Err(Error::internal("order batch was not decided"))).collect()
            }
            Err(e) if batch.len() > 1 => {
                // One order's statement failed where no savepoint could isolate it, or the commit failed:
                // nothing of the batch is committed. Write each order alone so only the culprit fails.
                tracing::warn!(error = %e, orders = batch.len(), "order batch rolled back; writing its orders one by one");
                let mut results = Vec::with_capacity(batch.len());
                for p in &batch {
                    results.push(match write_batch(state, std::slice::from_ref(p), Room::Locked).await {
                        Ok(Some(mut one)) => one.pop().unwrap_or_else(|| Err(Error::internal("empty batch result"))),
                        Ok(None) => Err(Error::internal("order was not decided")),
                        Err(e) => Err(e),
                    });
                }
                results
            }
            Err(e) => {
                tracing::error!(error = %e, "order failed to commit");
                vec![Err(e)]
            }
        };
        let mut sold_out = Vec::new();
        for (p, result) in batch.into_iter().zip(results) {
            match result {
                Err(Error::Conflict(reason)) if !p.retried => sold_out.push((p, reason)),
                other => {
                    let _ = p.reply.send(other.map(|()| p.row));
                }
            }
        }
        if sold_out.is_empty() {
            return;
        }
        // Expired holds may not have been swept yet: release them, then try the sold-out orders once more.
        let released = match expire_holds(state).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "releasing expired holds failed");
                0
            }
        };
        if released == 0 {
            for (p, reason) in sold_out {
                let _ = p.reply.send(Err(Error::Conflict(reason)));
            }
            return;
        }
        batch = sold_out.into_iter().map(|(p, _)| Placement { retried: true, ..p }).collect();
    }
}

/// How a run of common orders ([`write_run`]) learns its ticket types' room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Room {
    /// Read without locking, and the reservation `UPDATE`s — which lock the rows — are the run's last
    /// statements, each applying only if the room is still there. The rows stay locked from there to the
    /// commit only, not through the run's inserts, so another instance's committer waits on this one for a
    /// statement and a commit instead of a whole batch. If another writer took the room meanwhile, nothing is
    /// kept: `write_batch` answers `None` and the batch is written again with [`Room::Locked`].
    Unlocked,
    /// Locked first and then read, as [`write_run`] describes: the room read stays true until the commit.
    Locked,
}

/// One transaction for the whole batch. The outer `Err` means nothing committed; `Ok(None)` that a run
/// read with [`Room::Unlocked`] found its room gone at its reservation, and nothing committed.
///
/// Consecutive single-line orders without add-ons (the common order) are written together by
/// [`write_run`]: a handful of statements for the whole run instead of ~5 round trips per order, which is
/// what bounds a batch's time on PostgreSQL. Any other order is written alone by [`write_one`], in turn, so
/// every order is still decided in the order it arrived.
///
/// An order that reserves several things (lines, add-ons) gets a savepoint, so that when a later
/// reservation is sold out the earlier ones roll back with it. A single-line order alone between such orders
/// reserves with one conditional `UPDATE` that either applies or changes nothing, so it needs no savepoint;
/// if one of its inserts (or a run's) fails, the whole batch fails and [`commit_batch`] writes its orders
/// one by one.
async fn write_batch(state: &AppState, batch: &[Placement], room: Room) -> Result<Option<Vec<Result<()>>>> {
    let mut tx = state.db.write.begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    let mut rest = batch;
    while let Some(p) = rest.first() {
        let run: Vec<(&OrderRow, &Line)> =
            rest.iter().map_while(|p| p.row.only_line().map(|line| (&p.row, line))).collect();
        if run.len() >= 2 {
            let Some(run_results) = write_run(&mut tx, state, &run, room).await? else {
                // Dropping the transaction rolls it back.
                return Ok(None);
            };
            results.extend(run_results);
            rest = &rest[run.len()..];
            continue;
        }
        rest = &rest[1..];
        if !p.row.reserves_several() && batch.len() > 1 {
            results.push(match write_one(&mut tx, state, &p.row).await? {
                None => Ok(()),
                Some(reason) => Err(Error::Conflict(reason)),
            });
            continue;
        }
        let mut order = sqlx::Acquire::begin(&mut *tx).await?;
        match write_one(&mut order, state, &p.row).await {
            Ok(None) => {
                order.commit().await?;
                results.push(Ok(()));
            }
            Ok(Some(reason)) => {
                order.rollback().await?;
                results.push(Err(Error::Conflict(reason)));
            }
            Err(e) => {
                order.rollback().await?;
                tracing::warn!(order = %p.row.order_id, error = %e, "order rolled back");
                results.push(Err(e));
            }
        }
    }
    tx.commit().await?;
    Ok(Some(results))
}

/// Tickets per email address that still count against an event's cap: those of orders holding or having
/// their seats ([`HELD_STATUSES`], bound as $3 to $5), not of expired, cancelled or refunded ones.
const HELD_BY_EMAIL: &str = "SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT)
     FROM order_email_keys k
     JOIN orders o ON o.id = k.order_id
     JOIN order_items i ON i.order_id = k.order_id
     WHERE k.event_id = $1 AND k.email_key = $2 AND o.status IN ($3, $4, $5)";
/// The statuses of orders whose tickets count against their address's cap.
const HELD_STATUSES: [OrderStatus; 3] = [OrderStatus::Pending, OrderStatus::Confirmed, OrderStatus::PaymentConflict];

/// The tickets `key` already holds of `event_id` (see [`HELD_BY_EMAIL`]).
async fn held_by_email(tx: &mut Tx<'_>, event_id: i64, key: &str) -> Result<i64> {
    let [a, b, c] = HELD_STATUSES;
    let (held,): (i64,) =
        sqlx::query_as(HELD_BY_EMAIL).bind(event_id).bind(key).bind(a).bind(b).bind(c).fetch_one(&mut **tx).await?;
    Ok(held)
}

/// Why an order that would take its address over the event's cap is refused.
fn over_cap(cap: i64, held: i64) -> String {
    format!(
        "ticket limit: this event allows at most {cap} tickets per email address and {held} are already ordered \
         with this one"
    )
}

/// Writes one order inside `tx` like [`write_order`], refusing it first (`Ok(Some(reason))`, nothing
/// written) when it would take its email address over the event's cap, and recording the address it
/// counts against. Writes nothing else before the cap check, so a refused order needs no rollback.
async fn write_one(tx: &mut Tx<'_>, state: &AppState, row: &OrderRow) -> Result<Option<String>> {
    let key = crate::catalog::email_key(&row.email);
    if let Some(cap) = row.email_cap {
        // Several issuer instances on one PostgreSQL each run a committer: the event's row lock makes
        // their checks of one event's cap take turns, so two orders cannot both fit under it.
        crate::db::lock_event(tx, row.event_id).await?;
        let held = held_by_email(tx, row.event_id, &key).await?;
        if held + row.tickets() > cap {
            return Ok(Some(over_cap(cap, held)));
        }
    }
    if let Some(sold_out) = write_order(tx, state, row).await? {
        return Ok(Some(sold_out));
    }
    insert_email_keys(tx, &[(row, key.as_str())]).await?;
    Ok(None)
}

/// Writes a run of single-line orders without add-ons inside `tx`, deciding each in turn exactly as
/// [`write_one`] would one after the other — refused over its address's cap, sold out when its ticket type
/// (or the type's quota) has less room left than it asks for, else written — with a few statements for the
/// whole run:
///
/// 1. the events of capped orders are locked (as [`write_one`] does) and each address's held tickets read
///    once;
/// 2. each ticket type's row is locked by a no-op `UPDATE … RETURNING` its room (the quota trigger locks
///    the quota's row with it, whose room is then read): no other committer — of this instance or another
///    on the same PostgreSQL — can move these counts until the transaction ends, so the room read stays
///    true while the run is decided in memory;
/// 3. one `UPDATE` per ticket type adds what the accepted orders took (the trigger moves the quota), and
///    multi-row `INSERT`s write the accepted orders, items, address keys, tickets and email jobs.
///
/// With [`Room::Unlocked`] (the first try of a run without capped orders), step 2 reads the room without a
/// lock and step 3's reservations come last, each conditional ([`reserve_if_room`]), so the ticket types'
/// rows are locked only from there to the commit; if one finds its room gone, the run answers `None` and
/// the caller rolls back and writes the batch again with the locks.
///
/// Rows are locked in the order [`write_one`] locks them (event, then ticket type, then quota), ticket
/// types by ascending id, so two committers cannot deadlock on them.
async fn write_run(
    tx: &mut Tx<'_>,
    state: &AppState,
    rows: &[(&OrderRow, &Line)],
    room: Room,
) -> Result<Option<Vec<Result<()>>>> {
    let keys: Vec<String> = rows.iter().map(|(r, _)| crate::catalog::email_key(&r.email)).collect();
    let capped_events: BTreeSet<i64> =
        rows.iter().filter(|(r, _)| r.email_cap.is_some()).map(|(r, _)| r.event_id).collect();
    // Capped orders lock their event's row first anyway, which already makes the committers take turns:
    // their ticket types are locked at once too, as before.
    let room = if capped_events.is_empty() { room } else { Room::Locked };
    for &event_id in &capped_events {
        crate::db::lock_event(tx, event_id).await?;
    }
    let mut held: HashMap<(i64, &str), i64> = HashMap::new();
    for ((row, _), key) in rows.iter().zip(&keys) {
        if row.email_cap.is_some() && !held.contains_key(&(row.event_id, key.as_str())) {
            let n = held_by_email(tx, row.event_id, key).await?;
            held.insert((row.event_id, key.as_str()), n);
        }
    }
    // Ticket type id → (room left, its quota).
    let mut types: BTreeMap<i64, (i64, Option<i64>)> =
        rows.iter().map(|(_, line)| (line.ticket_type_id, (0, None))).collect();
    let mut quotas: BTreeMap<i64, i64> = BTreeMap::new();
    for (&id, left) in types.iter_mut() {
        let read = match room {
            Room::Locked => {
                "UPDATE ticket_types SET reserved = reserved WHERE id = $1 RETURNING capacity - reserved, quota_id"
            }
            Room::Unlocked => "SELECT capacity - reserved, quota_id FROM ticket_types WHERE id = $1",
        };
        let found: Option<(i64, Option<i64>)> = sqlx::query_as(read).bind(id).fetch_optional(&mut **tx).await?;
        // A ticket type that is gone has no room: its orders are sold out, as `reserve` would find.
        *left = found.unwrap_or((0, None));
        if let Some(quota) = left.1 {
            if let std::collections::btree_map::Entry::Vacant(e) = quotas.entry(quota) {
                let (left,): (i64,) = sqlx::query_as("SELECT capacity - reserved FROM quotas WHERE id = $1")
                    .bind(quota)
                    .fetch_one(&mut **tx)
                    .await?;
                e.insert(left);
            }
        }
    }

    let mut results = Vec::with_capacity(rows.len());
    let mut accepted: Vec<(&OrderRow, &str)> = Vec::with_capacity(rows.len());
    let mut taken: BTreeMap<i64, i64> = BTreeMap::new();
    for (&(row, line), key) in rows.iter().zip(&keys) {
        let tickets = row.tickets();
        let held_now = held.get(&(row.event_id, key.as_str())).copied();
        if let (Some(cap), Some(h)) = (row.email_cap, held_now) {
            if h + tickets > cap {
                results.push(Err(Error::Conflict(over_cap(cap, h))));
                continue;
            }
        }
        let (type_room, quota) = types.get(&line.ticket_type_id).copied().unwrap_or((0, None));
        let quota_room = quota.and_then(|q| quotas.get(&q).copied());
        if line.quantity > type_room || quota_room.is_some_and(|left| line.quantity > left) {
            results.push(Err(Error::Conflict(sold_out(&line.type_name))));
            continue;
        }
        if let Some(t) = types.get_mut(&line.ticket_type_id) {
            t.0 -= line.quantity;
        }
        if let Some(left) = quota.and_then(|q| quotas.get_mut(&q)) {
            *left -= line.quantity;
        }
        if let Some(h) = held.get_mut(&(row.event_id, key.as_str())) {
            *h += tickets;
        }
        *taken.entry(line.ticket_type_id).or_default() += line.quantity;
        accepted.push((row, key.as_str()));
        results.push(Ok(()));
    }

    if room == Room::Locked {
        for (&id, &quantity) in &taken {
            sqlx::query("UPDATE ticket_types SET reserved = reserved + $1 WHERE id = $2")
                .bind(quantity)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
    }
    let written: Vec<&OrderRow> = accepted.iter().map(|(row, _)| *row).collect();
    insert_orders(tx, &written).await?;
    insert_items(tx, &written).await?;
    let settled: Vec<(&OrderRow, Vec<TicketLine>)> =
        written.iter().filter(|r| r.settles).map(|r| (*r, ticket_lines(r))).collect();
    let mut tickets = Vec::new();
    for (row, lines) in &settled {
        tickets.extend(sign_tickets(state, &row.order_id, row.event_id, row.event_ends_at, &row.name, lines)?);
    }
    insert_tickets(tx, &tickets).await?;
    let mailed: Vec<&str> = settled.iter().map(|(row, _)| row.order_id.as_str()).collect();
    if !mailed.is_empty() {
        crate::email::enqueue_many(tx, state, &mailed).await?;
    }
    insert_email_keys(tx, &accepted).await?;
    if room == Room::Unlocked && !reserve_if_room(tx, &taken).await? {
        return Ok(None);
    }
    Ok(Some(results))
}

/// The reservations of a run read with [`Room::Unlocked`], as its last statements: each ticket type takes
/// what its accepted orders asked for only if it still has that much room (its quota's `CHECK` refuses
/// the same for the quota). False when one did not, because another writer took the room since it was
/// read: the caller rolls back.
async fn reserve_if_room(tx: &mut Tx<'_>, taken: &BTreeMap<i64, i64>) -> Result<bool> {
    for (&id, &quantity) in taken {
        let reserved =
            sqlx::query("UPDATE ticket_types SET reserved = reserved + $1 WHERE id = $2 AND capacity - reserved >= $1")
                .bind(quantity)
                .bind(id)
                .execute(&mut **tx)
                .await;
        match reserved {
            Ok(done) if done.rows_affected() == 1 => {}
            Ok(_) => return Ok(false),
            Err(sqlx::Error::Database(e)) if e.kind() == sqlx::error::ErrorKind::CheckViolation => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// Writes one order inside `tx`: reserves every line (`Ok(Some(reason))` if sold out: the caller rolls
/// back), inserts the order and its items, and for an order that settles at once its tickets and email job.
async fn write_order(tx: &mut Tx<'_>, state: &AppState, row: &OrderRow) -> Result<Option<String>> {
    if let Some(sold_out) =
        reserve(tx, row.event_id, &row.lines.iter().map(Reservation::of_line).collect::<Vec<_>>()).await?
    {
        return Ok(Some(sold_out));
    }
    insert_orders(tx, &[row]).await?;
    insert_items(tx, &[row]).await?;
    if row.settles {
        // Everything the tickets need is in hand: no need to read back what was just written.
        sign_and_store(tx, state, &row.order_id, row.event_id, row.event_ends_at, &row.name, &ticket_lines(row))
            .await?;
    }
    Ok(None)
}

/// What the tickets of an order that settles at once are signed with.
fn ticket_lines(row: &OrderRow) -> Vec<TicketLine> {
    row.lines
        .iter()
        .map(|l| TicketLine {
            quantity: l.quantity,
            addon_mask: l.addon_mask,
            type_index: l.type_index,
            reentry: l.reentry,
            // Pay at the door: a ticket with a price is unpaid until the steward confirms payment.
            payment_due: row.method == "at_door" && unit_price(l) > 0,
            holders: l.holders.clone(),
        })
        .collect()
}

/// One ticket's price as charged: its type's and its add-ons' (a single ticket's refund gives back
/// exactly that).
fn unit_price(line: &Line) -> i64 {
    line.unit_cents + line.addon_lines.iter().map(|a| a.1).sum::<i64>()
}

/// Inserts `rows` into `orders`, as few multi-row statements as the bind limit allows.
async fn insert_orders(tx: &mut Tx<'_>, rows: &[&OrderRow]) -> Result<()> {
    const COLS: usize = 14;
    for chunk in rows.chunks(MAX_BIND_PARAMS / COLS) {
        let sql = format!(
            "INSERT INTO orders (id, event_id, token_hash, customer_name, customer_email, status, payment_method,
                                 total_cents, currency, hold_expires_at, created_at, updated_at, locale, phone)
             VALUES {}",
            values_rows(chunk.len(), COLS)
        );
        let mut query = sqlx::query(&sql).persistent(keep_prepared(chunk.len()));
        for row in chunk {
            let status = if row.settles { OrderStatus::Confirmed } else { OrderStatus::Pending };
            query = query
                .bind(&row.order_id)
                .bind(row.event_id)
                .bind(&row.token_hash)
                .bind(&row.name)
                .bind(&row.email)
                .bind(status)
                .bind(row.method)
                .bind(row.total)
                .bind(&row.currency)
                .bind(row.hold_expires_at)
                .bind(row.created)
                .bind(row.created)
                .bind(row.locale.tag())
                .bind(&row.phone);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Inserts the lines of `rows` into `order_items`, as few multi-row statements as the bind limit allows.
async fn insert_items(tx: &mut Tx<'_>, rows: &[&OrderRow]) -> Result<()> {
    const COLS: usize = 6;
    let mut items = Vec::new();
    for row in rows {
        for line in &row.lines {
            // The names only when some were given.
            let names = if line.holders.iter().any(|n| !n.is_empty()) {
                Some(serde_json::to_string(&line.holders).map_err(Error::internal)?)
            } else {
                None
            };
            items.push((row.order_id.as_str(), line, names));
        }
    }
    for chunk in items.chunks(MAX_BIND_PARAMS / COLS) {
        let sql = format!(
            "INSERT INTO order_items (order_id, ticket_type_id, quantity, addon_mask, holder_names, unit_cents)
             VALUES {}",
            values_rows(chunk.len(), COLS)
        );
        let mut query = sqlx::query(&sql).persistent(keep_prepared(chunk.len()));
        for (order_id, line, names) in chunk {
            query = query
                .bind(*order_id)
                .bind(line.ticket_type_id)
                .bind(line.quantity)
                .bind(line.addon_mask)
                .bind(names.as_deref())
                .bind(unit_price(line));
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Records the address (`email_key`) each order counts against for its event's cap.
async fn insert_email_keys(tx: &mut Tx<'_>, rows: &[(&OrderRow, &str)]) -> Result<()> {
    const COLS: usize = 3;
    for chunk in rows.chunks(MAX_BIND_PARAMS / COLS) {
        let sql = format!(
            "INSERT INTO order_email_keys (order_id, event_id, email_key) VALUES {}",
            values_rows(chunk.len(), COLS)
        );
        let mut query = sqlx::query(&sql).persistent(keep_prepared(chunk.len()));
        for (row, key) in chunk {
            query = query.bind(&row.order_id).bind(row.event_id).bind(*key);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}
