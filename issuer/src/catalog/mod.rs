//! The catalog: events, ticket types, add-ons and shared quotas. Admin endpoints create and edit them (each
//! write recorded in the audit log in its own transaction); public endpoints list what is on sale with live
//! availability.
//!
//! Each ticket type and add-on gets a stable per-event index, which is what a ticket carries
//! (`ticket_type: u8`, `addons: u16` bitmask): at most 256 ticket types and 16 add-ons per event. Rows are
//! never deleted and indexes never reused, so an issued ticket always names the type it was sold as; what
//! has sold is hidden or taken off sale instead. Edits that would change what an issued ticket means are
//! refused with 409: moving the event's end later (tickets carry a signed `valid_until` derived from it),
//! changing re-entry (signed into each ticket) or the currency of a type that has sold, and capacities
//! below what is already held or sold.
//!
//! Event times are stored as Unix seconds and shown in the event's own IANA zone ([`time`]).

pub mod changes;
pub mod model;
pub mod time;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::Router;
use serde_json::{json, Value};

pub use model::{email_key, EventView};
use model::{
    validate_capacity, validate_currency, validate_email_cap, validate_money, AddonSettings, AddonView, EventSettings,
    NewAddon, NewEvent, NewQuota, NewTicketType, QuotaSettings, QuotaView, TicketTypeSettings, TicketTypeView,
};
use time::{validate_timezone, zone_or_utc, TimeInput};

use crate::db::Conn;
use crate::error::{Error, Result};
use crate::extract::Json;
use crate::staff::{Permission, Staff};
use crate::state::AppState;
use crate::util::{clean_text, now};

pub const MAX_TICKET_TYPES: i64 = 256;
pub const MAX_ADDONS: i64 = 16;
/// Shared quotas per event: far more than any venue has areas, few enough to list on one screen.
pub const MAX_QUOTAS: i64 = 64;
/// Events per issuer: a bound on what one admin (or a runaway script) can make the public list carry.
pub const MAX_EVENTS: i64 = 10_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events", get(list_events))
        .route(scanner_core::wire::EVENT_ROUTE, get(get_event))
        .route("/admin/v1/events", post(create_event).get(admin_list_events))
        .route("/admin/v1/events/{id}", get(admin_get_event).patch(update_event))
        .route("/admin/v1/events/{id}/ticket-types", post(create_ticket_type))
        .route("/admin/v1/events/{id}/ticket-types/{index}", patch(update_ticket_type))
        .route("/admin/v1/events/{id}/addons", post(create_addon))
        .route("/admin/v1/events/{id}/addons/{index}", patch(update_addon))
        .route("/admin/v1/events/{id}/quotas", post(create_quota))
        .route("/admin/v1/events/{id}/quotas/{quota_id}", patch(update_quota))
}

// -------------------------------------------------------------------------------------------------------
// Who writes, and the audit trail

/// Who reads and edits the catalog: any staff member reads it (the admin views); writes need a role that
/// allows [`Permission::Catalog`] (owners; the legacy admin token acts as an owner), checked by [`may_edit`]
/// before anything is read or written.
type Editor = Staff;

/// Records a catalog change in the audit log inside the transaction that makes it, so that a change and
/// its record commit (or roll back) together.
async fn audit(
    tx: &mut Conn,
    who: &Editor,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<()> {
    crate::audit::record(tx, who, action, target, before, after).await
}

/// 403 unless `who` may edit the catalog.
fn may_edit(who: &Editor) -> Result<()> {
    who.require(Permission::Catalog)
}

// -------------------------------------------------------------------------------------------------------
// Reading

/// The event's structure for pricing an order, from the cache when fresh (see [`model::PricingCache`]).
/// Includes hidden and stopped types and add-ons, so that an order naming one is refused as not on sale.
pub async fn event_for_pricing(state: &AppState, id: i64) -> Result<Arc<EventView>> {
    if let Some(event) = state.pricing.get(id) {
        return Ok(event);
    }
    let generation = state.pricing.generation.load(Ordering::SeqCst);
    let event = Arc::new(load_event(state, id).await?);
    state.pricing.put(generation, event.clone());
    Ok(event)
}

/// The columns of a [`TicketTypeView`]; `available` is the smaller of what is left of the type's own
/// capacity and of its shared quota's. Boolean columns are read as `CAST(… AS INTEGER)` (see
/// [`crate::db::Flag`]): sqlx's Any driver refuses a SQLite column declared BOOLEAN.
const TICKET_TYPE_SELECT: &str = "SELECT tt.id, tt.idx AS \"index\", tt.name, tt.price_cents, tt.currency, tt.capacity,
        tt.reserved,
        CASE WHEN q.id IS NOT NULL AND q.capacity - q.reserved < tt.capacity - tt.reserved
             THEN q.capacity - q.reserved ELSE tt.capacity - tt.reserved END AS available,
        tt.sales_start, tt.sales_end, CAST(tt.reentry AS INTEGER) AS reentry,
        CAST(tt.at_door_allowed AS INTEGER) AS at_door_allowed, CAST(tt.hidden AS INTEGER) AS hidden,
        CAST(tt.sales_stopped AS INTEGER) AS sales_stopped, tt.quota_id
     FROM ticket_types tt LEFT JOIN quotas q ON q.id = tt.quota_id";
const ADDON_SELECT: &str = "SELECT id, idx AS \"index\", name, price_cents, capacity, reserved,
        capacity - reserved AS available, CAST(hidden AS INTEGER) AS hidden,
        CAST(sales_stopped AS INTEGER) AS sales_stopped FROM addons";
const QUOTA_SELECT: &str = "SELECT id, name, capacity, reserved FROM quotas";

/// Loads one event as buyers see it ([`EventView::for_buyers`]): hidden ticket types and add-ons, and
/// add-ons off sale, are left out.
pub async fn load_event_for_buyers(state: &AppState, id: i64) -> Result<EventView> {
    Ok(load_event(state, id).await?.for_buyers())
}

/// Loads one event with every ticket type, add-on and quota, hidden ones included (availability as of now):
/// what the organizer edits, what orders are priced against, and what issued tickets are named from.
/// Pages for buyers filter it ([`EventView::for_buyers`], or `on_sale`).
pub async fn load_event(state: &AppState, id: i64) -> Result<EventView> {
    let mut conn = state.db.read.acquire().await?;
    read_event(&mut conn, id).await
}

async fn read_event(conn: &mut Conn, id: i64) -> Result<EventView> {
    let mut event: EventView = sqlx::query_as(
        "SELECT id, name, venue, starts_at, ends_at, timezone, max_tickets_per_email FROM events WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound("event"))?;
    let tz = zone_or_utc(&event.timezone);
    event.starts_local = time::local_input(event.starts_at, &tz);
    event.ends_local = time::local_input(event.ends_at, &tz);
    event.starts_display = time::display(event.starts_at, &tz);
    event.ends_display = time::display(event.ends_at, &tz);
    let t = now();
    event.ticket_types = sqlx::query_as(&format!("{TICKET_TYPE_SELECT} WHERE tt.event_id = $1 ORDER BY tt.idx"))
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
    for tt in &mut event.ticket_types {
        tt.on_sale = tt.on_sale_at(t);
        tt.sales_start_local = tt.sales_start.map(|s| time::local_input(s, &tz));
        tt.sales_end_local = tt.sales_end.map(|s| time::local_input(s, &tz));
    }
    event.addons = sqlx::query_as(&format!("{ADDON_SELECT} WHERE event_id = $1 ORDER BY idx"))
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
    event.quotas = sqlx::query_as(&format!("{QUOTA_SELECT} WHERE event_id = $1 ORDER BY id"))
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
    Ok(event)
}

async fn event_ids(state: &AppState) -> Result<Vec<i64>> {
    let ids: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM events ORDER BY starts_at, id").fetch_all(&state.db.read).await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

async fn list_events(State(state): State<AppState>) -> Result<axum::Json<Vec<EventView>>> {
    let mut out = Vec::new();
    for id in event_ids(&state).await? {
        out.push(load_event_for_buyers(&state, id).await?);
    }
    Ok(axum::Json(out))
}

async fn get_event(State(state): State<AppState>, Path(id): Path<i64>) -> Result<axum::Json<EventView>> {
    Ok(axum::Json(load_event_for_buyers(&state, id).await?))
}

async fn admin_list_events(_: Editor, State(state): State<AppState>) -> Result<axum::Json<Vec<EventView>>> {
    let mut out = Vec::new();
    for id in event_ids(&state).await? {
        out.push(load_event(&state, id).await?);
    }
    Ok(axum::Json(out))
}

async fn admin_get_event(
    _: Editor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<EventView>> {
    Ok(axum::Json(load_event(&state, id).await?))
}

// -------------------------------------------------------------------------------------------------------
// Events

/// An event's stored fields, for the edit checks and the audit record.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
struct EventRow {
    name: String,
    venue: String,
    starts_at: i64,
    ends_at: i64,
    timezone: String,
    max_tickets_per_email: Option<i64>,
}

fn check_event_times(starts_at: i64, ends_at: i64) -> Result<()> {
    if ends_at < starts_at {
        return Err(Error::validation("ends_at", "must not be before starts_at"));
    }
    Ok(())
}

/// Validates and inserts an event inside `tx`; returns its id.
async fn insert_event_in(tx: &mut Conn, e: NewEvent) -> Result<(i64, EventRow)> {
    let name = clean_text("name", &e.name, 200)?;
    let venue = clean_text("venue", &e.venue, 200)?;
    let (timezone, tz) = validate_timezone(&e.timezone)?;
    let starts_at = e.starts_at.to_unix("starts_at", &tz)?;
    let ends_at = e.ends_at.to_unix("ends_at", &tz)?;
    check_event_times(starts_at, ends_at)?;
    let cap = validate_email_cap(e.max_tickets_per_email)?;
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events").fetch_one(&mut *tx).await?;
    if count >= MAX_EVENTS {
        return Err(Error::Conflict(format!("this issuer holds at most {MAX_EVENTS} events")));
    }
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO events (name, venue, starts_at, ends_at, timezone, created_at, max_tickets_per_email)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(&name)
    .bind(&venue)
    .bind(starts_at)
    .bind(ends_at)
    .bind(&timezone)
    .bind(now())
    .bind(cap)
    .fetch_one(&mut *tx)
    .await?;
    if id > i64::from(u32::MAX) {
        return Err(Error::Conflict("event ids are exhausted".into()));
    }
    Ok((id, EventRow { name, venue, starts_at, ends_at, timezone, max_tickets_per_email: cap }))
}

pub async fn insert_event(state: &AppState, e: NewEvent) -> Result<i64> {
    let mut tx = state.db.write.begin().await?;
    let (id, _) = insert_event_in(&mut tx, e).await?;
    tx.commit().await?;
    tracing::info!(event_id = id, "event created");
    Ok(id)
}

async fn create_event(
    who: Editor,
    State(state): State<AppState>,
    Json(body): Json<NewEvent>,
) -> Result<(StatusCode, axum::Json<Value>)> {
    may_edit(&who)?;
    let mut tx = state.db.write.begin().await?;
    let (id, row) = insert_event_in(&mut tx, body).await?;
    audit(&mut tx, &who, "event.create", &format!("event:{id}"), None, Some(json!(row))).await?;
    tx.commit().await?;
    tracing::info!(event_id = id, "event created");
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": id }))))
}

async fn event_row(tx: &mut Conn, id: i64) -> Result<EventRow> {
    sqlx::query_as("SELECT name, venue, starts_at, ends_at, timezone, max_tickets_per_email FROM events WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("event"))
}

async fn update_event(
    who: Editor,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Json(body): Json<EventSettings>,
) -> Result<axum::Json<EventView>> {
    may_edit(&who)?;
    let mut tx = state.db.write.begin().await?;
    let before = event_row(&mut tx, id).await?;
    let mut after = before.clone();
    if let Some(name) = &body.name {
        after.name = clean_text("name", name, 200)?;
    }
    if let Some(venue) = &body.venue {
        after.venue = clean_text("venue", venue, 200)?;
    }
    // Local times in the request are read in the zone the event will have after this edit.
    let tz = match &body.timezone {
        Some(name) => {
            let (canonical, tz) = validate_timezone(name)?;
            after.timezone = canonical;
            tz
        }
        None => zone_or_utc(&before.timezone),
    };
    if let Some(t) = &body.starts_at {
        after.starts_at = t.to_unix("starts_at", &tz)?;
    }
    if let Some(t) = &body.ends_at {
        after.ends_at = t.to_unix("ends_at", &tz)?;
    }
    check_event_times(after.starts_at, after.ends_at)?;
    if let Some(cap) = body.max_tickets_per_email {
        after.max_tickets_per_email = validate_email_cap(cap)?;
    }
    if after.ends_at > before.ends_at {
        let (issued,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM tickets WHERE event_id = $1").bind(id).fetch_one(&mut *tx).await?;
        if issued > 0 {
            return Err(Error::Conflict(format!(
                "the end cannot move later: the {issued} tickets already issued carry a signed validity that \
                 ends with the current end ({}); moving it earlier is allowed",
                time::display(before.ends_at, &zone_or_utc(&before.timezone))
            )));
        }
    }
    sqlx::query(
        "UPDATE events SET name = $1, venue = $2, starts_at = $3, ends_at = $4, timezone = $5,
                           max_tickets_per_email = $6 WHERE id = $7",
    )
    .bind(&after.name)
    .bind(&after.venue)
    .bind(after.starts_at)
    .bind(after.ends_at)
    .bind(&after.timezone)
    .bind(after.max_tickets_per_email)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    audit(&mut tx, &who, "event.update", &format!("event:{id}"), Some(json!(before)), Some(json!(after))).await?;
    let view = read_event(&mut tx, id).await?;
    changes::commit(tx, &state).await?;
    tracing::info!(event_id = id, "event changed");
    Ok(axum::Json(view))
}

// -------------------------------------------------------------------------------------------------------
// Ticket types

async fn require_event(tx: &mut Conn, event_id: i64) -> Result<()> {
    let found: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM events WHERE id = $1").bind(event_id).fetch_optional(&mut *tx).await?;
    found.map(|_| ()).ok_or(Error::NotFound("event"))
}

async fn event_zone(tx: &mut Conn, event_id: i64) -> Result<jiff::tz::TimeZone> {
    let (tz,): (String,) = sqlx::query_as("SELECT timezone FROM events WHERE id = $1")
        .bind(event_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("event"))?;
    Ok(zone_or_utc(&tz))
}

fn check_sales_window(start: Option<i64>, end: Option<i64>) -> Result<()> {
    if let (Some(s), Some(e)) = (start, end) {
        if e < s {
            return Err(Error::validation("sales_end", "must not be before sales_start"));
        }
    }
    Ok(())
}

fn window_time(field: &'static str, t: Option<&TimeInput>, tz: &jiff::tz::TimeZone) -> Result<Option<i64>> {
    t.map(|t| t.to_unix(field, tz)).transpose()
}

/// A quota of `event_id`, or a 422 on `quota_id`.
async fn quota_of_event(tx: &mut Conn, event_id: i64, quota_id: i64) -> Result<QuotaView> {
    sqlx::query_as(&format!("{QUOTA_SELECT} WHERE id = $1 AND event_id = $2"))
        .bind(quota_id)
        .bind(event_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::validation("quota_id", "is not a quota of this event"))
}

/// Moves `held` tickets of a type into `quota` (`None`: out of any), refusing (409) a quota without room
/// for them. Runs inside the edit's transaction, under the one writer, so no order reserves in between.
async fn move_into_quota(tx: &mut Conn, event_id: i64, from: Option<i64>, to: Option<i64>, held: i64) -> Result<()> {
    if from == to || held == 0 {
        if let Some(q) = to {
            quota_of_event(tx, event_id, q).await?;
        }
        return Ok(());
    }
    if let Some(q) = to {
        let quota = quota_of_event(tx, event_id, q).await?;
        let r = sqlx::query("UPDATE quotas SET reserved = reserved + $1 WHERE id = $2 AND reserved + $1 <= capacity")
            .bind(held)
            .bind(q)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Err(Error::Conflict(format!(
                "quota {} has {} places left, but this ticket type already has {held} tickets sold or held",
                quota.name,
                quota.capacity - quota.reserved
            )));
        }
    }
    if let Some(q) = from {
        sqlx::query("UPDATE quotas SET reserved = reserved - $1 WHERE id = $2")
            .bind(held)
            .bind(q)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

async fn insert_ticket_type_in(tx: &mut Conn, event_id: i64, t: NewTicketType) -> Result<i64> {
    let tz = event_zone(tx, event_id).await?;
    let name = clean_text("name", &t.name, 120)?;
    let currency = validate_currency(&t.currency)?;
    let price = validate_money("price_cents", t.price_cents)?;
    let capacity = validate_capacity(t.capacity)?;
    let sales_start = window_time("sales_start", t.sales_start.as_ref(), &tz)?;
    let sales_end = window_time("sales_end", t.sales_end.as_ref(), &tz)?;
    check_sales_window(sales_start, sales_end)?;
    if let Some(q) = t.quota_id {
        quota_of_event(tx, event_id, q).await?;
    }
    // Two concurrent additions would read the same next index (and one would fail on UNIQUE).
    crate::db::lock_event(tx, event_id).await?;
    let (next,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(idx) + 1, 0) FROM ticket_types WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(&mut *tx)
        .await?;
    if next >= MAX_TICKET_TYPES {
        return Err(Error::Conflict(format!("an event can have at most {MAX_TICKET_TYPES} ticket types")));
    }
    sqlx::query(
        "INSERT INTO ticket_types (event_id, idx, name, price_cents, currency, capacity, sales_start, sales_end, reentry,
                                   at_door_allowed, hidden, sales_stopped, quota_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(event_id)
    .bind(next)
    .bind(name)
    .bind(price)
    .bind(currency)
    .bind(capacity)
    .bind(sales_start)
    .bind(sales_end)
    .bind(t.reentry)
    .bind(t.at_door_allowed)
    .bind(t.hidden)
    .bind(t.sales_stopped)
    .bind(t.quota_id)
    .execute(&mut *tx)
    .await?;
    Ok(next)
}

pub async fn insert_ticket_type(state: &AppState, event_id: i64, t: NewTicketType) -> Result<i64> {
    let mut tx = state.db.write.begin().await?;
    let index = insert_ticket_type_in(&mut tx, event_id, t).await?;
    changes::commit(tx, state).await?;
    Ok(index)
}

async fn ticket_type_row(tx: &mut Conn, event_id: i64, index: i64) -> Result<TicketTypeView> {
    let mut row: TicketTypeView =
        sqlx::query_as(&format!("{TICKET_TYPE_SELECT} WHERE tt.event_id = $1 AND tt.idx = $2"))
            .bind(event_id)
            .bind(index)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound("ticket type"))?;
    row.on_sale = row.on_sale_at(now());
    Ok(row)
}

async fn create_ticket_type(
    who: Editor,
    State(state): State<AppState>,
    Path(event_id): Path<i64>,
    Json(body): Json<NewTicketType>,
) -> Result<(StatusCode, axum::Json<Value>)> {
    may_edit(&who)?;
    let mut tx = state.db.write.begin().await?;
    let index = insert_ticket_type_in(&mut tx, event_id, body).await?;
    let after = ticket_type_row(&mut tx, event_id, index).await?;
    let target = format!("event:{event_id}/ticket_type:{index}");
    audit(&mut tx, &who, "ticket_type.create", &target, None, Some(json!(after))).await?;
    changes::commit(tx, &state).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "event_id": event_id, "index": index }))))
}

/// Whether tickets of this type were sold or are held (then re-entry and currency are fixed).
async fn has_sold(tx: &mut Conn, event_id: i64, row: &TicketTypeView) -> Result<bool> {
    if row.reserved > 0 {
        return Ok(true);
    }
    let found: Option<(i64,)> =
        sqlx::query_as("SELECT 1 FROM tickets WHERE event_id = $1 AND ticket_type = $2 LIMIT 1")
            .bind(event_id)
            .bind(row.index)
            .fetch_optional(&mut *tx)
            .await?;
    Ok(found.is_some())
}

async fn update_ticket_type(
    who: Editor,
    State(state): State<AppState>,
    Path((event_id, index)): Path<(i64, i64)>,
    Json(body): Json<TicketTypeSettings>,
) -> Result<axum::Json<TicketTypeView>> {
    may_edit(&who)?;
    let mut tx = state.db.write.begin().await?;
    let tz = event_zone(&mut tx, event_id).await?;
    let before = ticket_type_row(&mut tx, event_id, index).await?;
    let mut after = before.clone();
    if let Some(name) = &body.name {
        after.name = clean_text("name", name, 120)?;
    }
    if let Some(price) = body.price_cents {
        after.price_cents = validate_money("price_cents", price)?;
    }
    if let Some(currency) = &body.currency {
        after.currency = validate_currency(currency)?;
    }
    if let Some(capacity) = body.capacity {
        after.capacity = validate_capacity(capacity)?;
    }
    if let Some(t) = &body.sales_start {
        after.sales_start = window_time("sales_start", t.as_ref(), &tz)?;
    }
    if let Some(t) = &body.sales_end {
        after.sales_end = window_time("sales_end", t.as_ref(), &tz)?;
    }
    check_sales_window(after.sales_start, after.sales_end)?;
    if let Some(v) = body.reentry {
        after.reentry = v;
    }
    if let Some(v) = body.at_door_allowed {
        after.at_door_allowed = v;
    }
    if let Some(v) = body.hidden {
        after.hidden = v;
    }
    if let Some(v) = body.sales_stopped {
        after.sales_stopped = v;
    }
    if let Some(q) = body.quota_id {
        after.quota_id = q;
    }
    if after.capacity < before.reserved {
        return Err(Error::Conflict(format!(
            "capacity cannot go below the {} tickets of {} already sold or held",
            before.reserved, before.name
        )));
    }
    let fixed_changed = after.reentry != before.reentry || after.currency != before.currency;
    if fixed_changed && has_sold(&mut tx, event_id, &before).await? {
        return Err(Error::Conflict(format!(
            "{} has sold tickets: re-entry is signed into each ticket and the currency is what they were paid in, \
             so neither can change; stop selling this type and create a new one instead",
            before.name
        )));
    }
    move_into_quota(&mut tx, event_id, before.quota_id, after.quota_id, before.reserved).await?;
    sqlx::query(
        "UPDATE ticket_types SET name = $1, price_cents = $2, currency = $3, capacity = $4, sales_start = $5,
                sales_end = $6, reentry = $7, at_door_allowed = $8, hidden = $9, sales_stopped = $10, quota_id = $11
         WHERE event_id = $12 AND idx = $13",
    )
    .bind(&after.name)
    .bind(after.price_cents)
    .bind(&after.currency)
    .bind(after.capacity)
    .bind(after.sales_start)
    .bind(after.sales_end)
    .bind(after.reentry)
    .bind(after.at_door_allowed)
    .bind(after.hidden)
    .bind(after.sales_stopped)
    .bind(after.quota_id)
    .bind(event_id)
    .bind(index)
    .execute(&mut *tx)
    .await?;
    let after = ticket_type_row(&mut tx, event_id, index).await?;
    let target = format!("event:{event_id}/ticket_type:{index}");
    audit(&mut tx, &who, "ticket_type.update", &target, Some(json!(before)), Some(json!(after))).await?;
    changes::commit(tx, &state).await?;
    tracing::info!(event_id, index, "ticket type changed");
    Ok(axum::Json(after))
}

// -------------------------------------------------------------------------------------------------------
// Add-ons

async fn insert_addon_in(tx: &mut Conn, event_id: i64, a: NewAddon) -> Result<i64> {
    require_event(tx, event_id).await?;
    let name = clean_text("name", &a.name, 120)?;
    let price = validate_money("price_cents", a.price_cents)?;
    let capacity = validate_capacity(a.capacity)?;
    crate::db::lock_event(tx, event_id).await?;
    let (next,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(idx) + 1, 0) FROM addons WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(&mut *tx)
        .await?;
    if next >= MAX_ADDONS {
        return Err(Error::Conflict(format!("an event can have at most {MAX_ADDONS} add-ons")));
    }
    sqlx::query("INSERT INTO addons (event_id, idx, name, price_cents, capacity) VALUES ($1, $2, $3, $4, $5)")
        .bind(event_id)
        .bind(next)
        .bind(name)
        .bind(price)
        .bind(capacity)
        .execute(&mut *tx)
        .await?;
    Ok(next)
}

pub async fn insert_addon(state: &AppState, event_id: i64, a: NewAddon) -> Result<i64> {
    let mut tx = state.db.write.begin().await?;
    let index = insert_addon_in(&mut tx, event_id, a).await?;
    changes::commit(tx, state).await?;
    Ok(index)
}

async fn addon_row(tx: &mut Conn, event_id: i64, index: i64) -> Result<AddonView> {
    sqlx::query_as(&format!("{ADDON_SELECT} WHERE event_id = $1 AND idx = $2"))
        .bind(event_id)
        .bind(index)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("add-on"))
}

async fn create_addon(
    who: Editor,
    State(state): State<AppState>,
    Path(event_id): Path<i64>,
    Json(body): Json<NewAddon>,
) -> Result<(StatusCode, axum::Json<Value>)> {
    may_edit(&who)?;
    let mut tx = state.db.write.begin().await?;
    let index = insert_addon_in(&mut tx, event_id, body).await?;
    let after = addon_row(&mut tx, event_id, index).await?;
    audit(&mut tx, &who, "addon.create", &format!("event:{event_id}/addon:{index}"), None, Some(json!(after))).await?;
    changes::commit(tx, &state).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "event_id": event_id, "index": index }))))
}

async fn update_addon(
    who: Editor,
    State(state): State<AppState>,
    Path((event_id, index)): Path<(i64, i64)>,
    Json(body): Json<AddonSettings>,
) -> Result<axum::Json<AddonView>> {
    may_edit(&who)?;
    let mut tx = state.db.write.begin().await?;
    let before = addon_row(&mut tx, event_id, index).await?;
    let mut after = before.clone();
    if let Some(name) = &body.name {
        after.name = clean_text("name", name, 120)?;
    }
    if let Some(price) = body.price_cents {
        after.price_cents = validate_money("price_cents", price)?;
    }
    if let Some(capacity) = body.capacity {
        after.capacity = validate_capacity(capacity)?;
    }
    if let Some(v) = body.hidden {
        after.hidden = v;
    }
    if let Some(v) = body.sales_stopped {
        after.sales_stopped = v;
    }
    if after.capacity < before.reserved {
        return Err(Error::Conflict(format!(
            "capacity cannot go below the {} of {} already sold or held",
            before.reserved, before.name
        )));
    }
    sqlx::query(
        "UPDATE addons SET name = $1, price_cents = $2, capacity = $3, hidden = $4, sales_stopped = $5
         WHERE event_id = $6 AND idx = $7",
    )
    .bind(&after.name)
    .bind(after.price_cents)
    .bind(after.capacity)
    .bind(after.hidden)
    .bind(after.sales_stopped)
    .bind(event_id)
    .bind(index)
    .execute(&mut *tx)
    .await?;
    let after = addon_row(&mut tx, event_id, index).await?;
    let target = format!("event:{event_id}/addon:{index}");
    audit(&mut tx, &who, "addon.update", &target, Some(json!(before)), Some(json!(after))).await?;
    changes::commit(tx, &state).await?;
    Ok(axum::Json(after))
}

// -------------------------------------------------------------------------------------------------------
// Shared quotas

async fn create_quota(
    who: Editor,
    State(state): State<AppState>,
    Path(event_id): Path<i64>,
    Json(body): Json<NewQuota>,
) -> Result<(StatusCode, axum::Json<QuotaView>)> {
    may_edit(&who)?;
    let name = clean_text("name", &body.name, 120)?;
    let capacity = validate_capacity(body.capacity)?;
    let mut tx = state.db.write.begin().await?;
    require_event(&mut tx, event_id).await?;
    let (count,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM quotas WHERE event_id = $1").bind(event_id).fetch_one(&mut *tx).await?;
    if count >= MAX_QUOTAS {
        return Err(Error::Conflict(format!("an event can have at most {MAX_QUOTAS} shared quotas")));
    }
    let quota: QuotaView = sqlx::query_as(
        "INSERT INTO quotas (event_id, name, capacity) VALUES ($1, $2, $3) RETURNING id, name, capacity, reserved",
    )
    .bind(event_id)
    .bind(name)
    .bind(capacity)
    .fetch_one(&mut *tx)
    .await?;
    let target = format!("event:{event_id}/quota:{}", quota.id);
    audit(&mut tx, &who, "quota.create", &target, None, Some(json!(quota))).await?;
    changes::commit(tx, &state).await?;
    Ok((StatusCode::CREATED, axum::Json(quota)))
}

async fn update_quota(
    who: Editor,
    State(state): State<AppState>,
    Path((event_id, quota_id)): Path<(i64, i64)>,
    Json(body): Json<QuotaSettings>,
) -> Result<axum::Json<QuotaView>> {
    may_edit(&who)?;
    let mut tx = state.db.write.begin().await?;
    let before: QuotaView = sqlx::query_as(&format!("{QUOTA_SELECT} WHERE id = $1 AND event_id = $2"))
        .bind(quota_id)
        .bind(event_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("quota"))?;
    let mut after = before.clone();
    if let Some(name) = &body.name {
        after.name = clean_text("name", name, 120)?;
    }
    if let Some(capacity) = body.capacity {
        after.capacity = validate_capacity(capacity)?;
    }
    if after.capacity < before.reserved {
        return Err(Error::Conflict(format!(
            "capacity cannot go below the {} tickets of quota {} already sold or held",
            before.reserved, before.name
        )));
    }
    sqlx::query("UPDATE quotas SET name = $1, capacity = $2 WHERE id = $3")
        .bind(&after.name)
        .bind(after.capacity)
        .bind(quota_id)
        .execute(&mut *tx)
        .await?;
    let target = format!("event:{event_id}/quota:{quota_id}");
    audit(&mut tx, &who, "quota.update", &target, Some(json!(before)), Some(json!(after))).await?;
    changes::commit(tx, &state).await?;
    Ok(axum::Json(after))
}

// -------------------------------------------------------------------------------------------------------
// Demo

/// The demo event's cap of tickets per email address.
pub const DEMO_MAX_TICKETS_PER_EMAIL: i64 = 10;

/// Seeds the demo event (two ticket types, two add-ons) unless the store already has events.
pub async fn seed_demo(state: &AppState) -> Result<()> {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events").fetch_one(&state.db.write).await?;
    if count > 0 {
        return Ok(());
    }
    let start = now() + 30 * 86_400;
    let id = insert_event(
        state,
        NewEvent {
            name: "Demo Festival".into(),
            venue: "Harbour Hall".into(),
            starts_at: TimeInput::Unix(start),
            ends_at: TimeInput::Unix(start + 8 * 3600),
            timezone: "Europe/Berlin".into(),
            // Enough for a family or a group of friends; stops one address from taking all 50 VIP seats.
            max_tickets_per_email: Some(DEMO_MAX_TICKETS_PER_EMAIL),
        },
    )
    .await?;
    for (name, price, capacity, reentry) in [("General admission", 0, 500, true), ("VIP", 4_900, 50, true)] {
        let t = NewTicketType {
            name: name.into(),
            price_cents: price,
            currency: "EUR".into(),
            capacity,
            sales_start: None,
            sales_end: None,
            reentry,
            // Pay at the door stays off: it would confirm paid VIP tickets (and General admission with the
            // paid parking add-on) before anyone paid. Organizers turn it on per ticket type.
            at_door_allowed: false,
            hidden: false,
            sales_stopped: false,
            quota_id: None,
        };
        insert_ticket_type(state, id, t).await?;
    }
    for (name, price, capacity) in [("Festival T-shirt", 0, 200), ("Parking", 1_000, 100)] {
        insert_addon(state, id, NewAddon { name: name.into(), price_cents: price, capacity }).await?;
    }
    tracing::info!(event_id = id, "seeded demo event");
    Ok(())
}
