//! The catalog: events, ticket types and add-ons. Admin endpoints create them; public endpoints list what
//! is on sale with live availability.
//!
//! Each ticket type and add-on gets a stable per-event index, which is what a ticket carries
//! (`ticket_type: u8`, `addons: u16` bitmask): at most 256 ticket types and 16 add-ons per event.

pub mod model;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::Router;

pub use model::{email_key, EventView};
use model::{
    validate_capacity, validate_currency, validate_email_cap, validate_money, validate_timezone, EventSettings,
    NewAddon, NewEvent, NewTicketType, TicketTypeSettings,
};

use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::extract::Json;
use crate::state::AppState;
use crate::util::{clean_text, now};

pub const MAX_TICKET_TYPES: i64 = 256;
pub const MAX_ADDONS: i64 = 16;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events", get(list_events))
        .route("/v1/events/{id}", get(get_event))
        .route("/admin/v1/events", post(create_event).get(admin_list_events))
        .route("/admin/v1/events/{id}", patch(update_event))
        .route("/admin/v1/events/{id}/ticket-types", post(create_ticket_type))
        .route("/admin/v1/events/{id}/ticket-types/{index}", patch(update_ticket_type))
        .route("/admin/v1/events/{id}/addons", post(create_addon))
}

/// The event's structure for pricing an order, from the cache when fresh (see [`PricingCache`]).
pub async fn event_for_pricing(state: &AppState, id: i64) -> Result<Arc<EventView>> {
    if let Some(event) = state.pricing.get(id) {
        return Ok(event);
    }
    let generation = state.pricing.generation.load(Ordering::SeqCst);
    let event = Arc::new(load_event(state, id).await?);
    state.pricing.put(generation, event.clone());
    Ok(event)
}

pub async fn insert_event(state: &AppState, e: NewEvent) -> Result<i64> {
    let name = clean_text("name", &e.name, 200)?;
    let venue = clean_text("venue", &e.venue, 200)?;
    let timezone = validate_timezone(&e.timezone)?;
    let cap = validate_email_cap(e.max_tickets_per_email)?;
    if e.ends_at < e.starts_at || e.starts_at < 0 || e.ends_at > i64::from(u32::MAX) - 86_400 {
        return Err(Error::validation("ends_at", "must be a Unix time not before starts_at (and before 2106)"));
    }
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO events (name, venue, starts_at, ends_at, timezone, created_at, max_tickets_per_email)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(name)
    .bind(venue)
    .bind(e.starts_at)
    .bind(e.ends_at)
    .bind(timezone)
    .bind(now())
    .bind(cap)
    .fetch_one(&state.db.write)
    .await?;
    if id > i64::from(u32::MAX) {
        return Err(Error::Conflict("event ids are exhausted".into()));
    }
    tracing::info!(event_id = id, "event created");
    Ok(id)
}

async fn event_exists(state: &AppState, id: i64) -> Result<()> {
    let found: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM events WHERE id = $1").bind(id).fetch_optional(&state.db.write).await?;
    found.map(|_| ()).ok_or(Error::NotFound("event"))
}

pub async fn insert_ticket_type(state: &AppState, event_id: i64, t: NewTicketType) -> Result<i64> {
    let name = clean_text("name", &t.name, 120)?;
    let currency = validate_currency(&t.currency)?;
    let price = validate_money("price_cents", t.price_cents)?;
    let capacity = validate_capacity(t.capacity)?;
    if let (Some(s), Some(e)) = (t.sales_start, t.sales_end) {
        if e < s {
            return Err(Error::validation("sales_end", "must not be before sales_start"));
        }
    }
    let mut tx = state.db.write.begin().await?;
    let found: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM events WHERE id = $1").bind(event_id).fetch_optional(&mut *tx).await?;
    found.ok_or(Error::NotFound("event"))?;
    let (next,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(idx) + 1, 0) FROM ticket_types WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(&mut *tx)
        .await?;
    if next >= MAX_TICKET_TYPES {
        return Err(Error::Conflict(format!("an event can have at most {MAX_TICKET_TYPES} ticket types")));
    }
    sqlx::query(
        "INSERT INTO ticket_types (event_id, idx, name, price_cents, currency, capacity, sales_start, sales_end, reentry,
                                   at_door_allowed)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(event_id)
    .bind(next)
    .bind(name)
    .bind(price)
    .bind(currency)
    .bind(capacity)
    .bind(t.sales_start)
    .bind(t.sales_end)
    .bind(t.reentry)
    .bind(t.at_door_allowed)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    state.pricing.invalidate();
    Ok(next)
}

pub async fn insert_addon(state: &AppState, event_id: i64, a: NewAddon) -> Result<i64> {
    let name = clean_text("name", &a.name, 120)?;
    let price = validate_money("price_cents", a.price_cents)?;
    let capacity = validate_capacity(a.capacity)?;
    let mut tx = state.db.write.begin().await?;
    let found: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM events WHERE id = $1").bind(event_id).fetch_optional(&mut *tx).await?;
    found.ok_or(Error::NotFound("event"))?;
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
    tx.commit().await?;
    state.pricing.invalidate();
    Ok(next)
}

/// Loads one event with its ticket types and add-ons (availability as of now). Reads from the writer
/// connection when `fresh` is set, so the answer includes the very latest commits.
pub async fn load_event(state: &AppState, id: i64) -> Result<EventView> {
    let pool = &state.db.read;
    let mut event: EventView = sqlx::query_as(
        "SELECT id, name, venue, starts_at, ends_at, timezone, max_tickets_per_email FROM events WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound("event"))?;
    let t = now();
    event.ticket_types = sqlx::query_as(
        "SELECT id, idx AS \"index\", name, price_cents, currency, capacity, capacity - reserved AS available,
                sales_start, sales_end, reentry, at_door_allowed
         FROM ticket_types WHERE event_id = $1 ORDER BY idx",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    for tt in &mut event.ticket_types {
        tt.on_sale = tt.on_sale_at(t);
    }
    event.addons = sqlx::query_as(
        "SELECT id, idx AS \"index\", name, price_cents, capacity, capacity - reserved AS available
         FROM addons WHERE event_id = $1 ORDER BY idx",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(event)
}

async fn all_events(state: &AppState) -> Result<Vec<EventView>> {
    let ids: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM events ORDER BY starts_at, id").fetch_all(&state.db.read).await?;
    let mut out = Vec::with_capacity(ids.len());
    for (id,) in ids {
        out.push(load_event(state, id).await?);
    }
    Ok(out)
}

async fn list_events(State(state): State<AppState>) -> Result<axum::Json<Vec<EventView>>> {
    Ok(axum::Json(all_events(&state).await?))
}

async fn get_event(State(state): State<AppState>, Path(id): Path<i64>) -> Result<axum::Json<EventView>> {
    Ok(axum::Json(load_event(&state, id).await?))
}

async fn admin_list_events(_: Admin, State(state): State<AppState>) -> Result<axum::Json<Vec<EventView>>> {
    Ok(axum::Json(all_events(&state).await?))
}

async fn create_event(
    _: Admin,
    State(state): State<AppState>,
    Json(body): Json<NewEvent>,
) -> Result<(StatusCode, axum::Json<serde_json::Value>)> {
    let id = insert_event(&state, body).await?;
    Ok((StatusCode::CREATED, axum::Json(serde_json::json!({ "id": id }))))
}

async fn create_ticket_type(
    _: Admin,
    State(state): State<AppState>,
    Path(event_id): Path<i64>,
    Json(body): Json<NewTicketType>,
) -> Result<(StatusCode, axum::Json<serde_json::Value>)> {
    let index = insert_ticket_type(&state, event_id, body).await?;
    Ok((StatusCode::CREATED, axum::Json(serde_json::json!({ "event_id": event_id, "index": index }))))
}

async fn update_event(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Json(body): Json<EventSettings>,
) -> Result<axum::Json<EventView>> {
    event_exists(&state, id).await?;
    if let Some(cap) = body.max_tickets_per_email {
        let cap = validate_email_cap(cap)?;
        sqlx::query("UPDATE events SET max_tickets_per_email = $1 WHERE id = $2")
            .bind(cap)
            .bind(id)
            .execute(&state.db.write)
            .await?;
        state.pricing.invalidate();
        tracing::info!(event_id = id, ?cap, "ticket cap per email changed");
    }
    Ok(axum::Json(load_event(&state, id).await?))
}

async fn update_ticket_type(
    _: Admin,
    State(state): State<AppState>,
    Path((event_id, index)): Path<(i64, i64)>,
    Json(body): Json<TicketTypeSettings>,
) -> Result<axum::Json<serde_json::Value>> {
    let r = sqlx::query("UPDATE ticket_types SET at_door_allowed = $1 WHERE event_id = $2 AND idx = $3")
        .bind(body.at_door_allowed)
        .bind(event_id)
        .bind(index)
        .execute(&state.db.write)
        .await?;
    if r.rows_affected() != 1 {
        return Err(Error::NotFound("ticket type"));
    }
    state.pricing.invalidate();
    tracing::info!(event_id, index, at_door_allowed = body.at_door_allowed, "ticket type changed");
    Ok(axum::Json(serde_json::json!({ "event_id": event_id, "index": index, "at_door_allowed": body.at_door_allowed })))
}

async fn create_addon(
    _: Admin,
    State(state): State<AppState>,
    Path(event_id): Path<i64>,
    Json(body): Json<NewAddon>,
) -> Result<(StatusCode, axum::Json<serde_json::Value>)> {
    event_exists(&state, event_id).await?;
    let index = insert_addon(&state, event_id, body).await?;
    Ok((StatusCode::CREATED, axum::Json(serde_json::json!({ "event_id": event_id, "index": index }))))
}

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
            starts_at: start,
            ends_at: start + 8 * 3600,
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
        };
        insert_ticket_type(state, id, t).await?;
    }
    for (name, price, capacity) in [("Festival T-shirt", 0, 200), ("Parking", 1_000, 100)] {
        insert_addon(state, id, NewAddon { name: name.into(), price_cents: price, capacity }).await?;
    }
    tracing::info!(event_id = id, "seeded demo event");
    Ok(())
}
