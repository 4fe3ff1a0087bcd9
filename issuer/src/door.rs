//! At the door (issue 12): supervisor passes, gate rules per event and the supervisors' online attendee
//! search. The formats are scanner-core's ([`scanner_core::supervisor`], [`scanner_core::gates`],
//! [`scanner_core::wire`]); this module only makes, stores and serves them.
//!
//! - `POST /admin/v1/events/{id}/supervisor-passes` (admin) `{"name", "hours"}` → 201 with the signed pass
//!   (`SUP1:...`), its expiry and its QR code.
//! - `PUT` / `GET /admin/v1/events/{id}/gates` (admin): the event's gate rules. The organizer sends only
//!   `{"gates": [...]}`; the format, the event and the ticket type and add-on names come from the catalog.
//! - `GET /v1/scanner/events/{event}/gates` (device token of that event): the rules every scanner applies
//!   offline (no gates when none are set: every gate admits every ticket).
//! - `GET /v1/scanner/events/{event}/search?q=` (device token of that event **and** a supervisor pass in
//!   `x-supervisor-pass`): orders by buyer name, email, order id prefix or ticket holder name, with each
//!   ticket's QR text. Limited per device ([`crate::limits::SearchLimit`]); the query and the pass are never
//!   logged.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use scanner_core::gates::{GateRule, GateRules, GATE_RULES_FORMAT, MAX_GATE_NAME_BYTES, MAX_GATE_RULES_BYTES};
use scanner_core::supervisor::{SupervisorPass, MAX_NAME_BYTES};
use scanner_core::wire::{
    FoundOrder, FoundTicket, SearchResults, GATE_RULES_ROUTE, MAX_QUERY_CHARS, MAX_SEARCH_RESULTS, MIN_QUERY_CHARS,
    SEARCH_ROUTE, SUPERVISOR_PASS_HEADER,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit;
use crate::auth::ScannerDevice;
use crate::catalog::EventView;
use crate::error::{Error, Result};
use crate::extract::{Json, Query};
use crate::orders::model::OrderStatus;
use crate::staff::{Permission, Staff};
use crate::state::AppState;
use crate::util::{clean_text, now};

/// Lifetime of a supervisor pass when the organizer does not say.
pub const DEFAULT_PASS_HOURS: i64 = 12;
/// Longest lifetime of a supervisor pass, in hours (scanner-core's limit of 7 days).
pub const MAX_PASS_HOURS: i64 = (scanner_core::supervisor::MAX_PASS_SECONDS / 3600) as i64;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/events/{id}/supervisor-passes", post(create_pass))
        .route("/admin/v1/events/{id}/gates", get(admin_gates).put(put_gates))
        .route(GATE_RULES_ROUTE, get(device_gates))
        .route(SEARCH_ROUTE, get(search))
}

fn json_response(status: StatusCode, body: String, cache: &'static str) -> impl IntoResponse {
    (status, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, cache)], body)
}

fn event_u32(event_id: i64) -> Result<u32> {
    u32::try_from(event_id).map_err(|_| Error::NotFound("event"))
}

// ---------------------------------------------------------------------------------------------------------
// Supervisor passes.

/// The organizer's request. Both fields are read as any JSON value so that a missing name or hours of the
/// wrong type (`"8"`, `8.5`) is a 422 naming the field, like an out-of-range value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPass {
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    hours: Option<Value>,
}

async fn create_pass(
    staff: Staff,
    State(state): State<AppState>,
    Path(event_id): Path<i64>,
    Json(req): Json<NewPass>,
) -> Result<(StatusCode, axum::Json<Value>)> {
    staff.require(Permission::Door)?;
    let event = event_u32(event_id)?;
    crate::catalog::load_event(&state, event_id).await?;
    let name = match &req.name {
        Some(Value::String(name)) => clean_text("name", name, MAX_NAME_BYTES)?,
        _ => return Err(Error::validation("name", "required: the supervisor's name (text)")),
    };
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::validation("name", format!("must be at most {MAX_NAME_BYTES} bytes (UTF-8)")));
    }
    let hours = match &req.hours {
        None | Some(Value::Null) => Some(DEFAULT_PASS_HOURS),
        Some(v) => v.as_i64(),
    };
    let Some(hours) = hours.filter(|h| (1..=MAX_PASS_HOURS).contains(h)) else {
        return Err(Error::validation("hours", format!("must be a whole number from 1 to {MAX_PASS_HOURS} (7 days)")));
    };
    let issued_at = u32::try_from(now()).map_err(Error::internal)?;
    let not_after = issued_at
        .checked_add(u32::try_from(hours * 3600).map_err(Error::internal)?)
        .ok_or_else(|| Error::internal("pass expiry after 2106"))?;
    let key = &state.signer.key;
    let pass = SupervisorPass { event_id: event, key_id: key.key_id(), issued_at, not_after, name: name.clone() };
    // The checks above are scanner-core's limits, so signing fails only on a server fault.
    let text = pass.sign(key).map_err(Error::internal)?;
    let svg = scanner_core::qr::render::svg(&text).map_err(Error::internal)?;
    // Who and for which event, never the pass itself (it unlocks supervisor mode until it expires). The
    // pass is stored nowhere else, so the audit row is its only trace: written before it is handed out.
    let mut tx = state.db.write.begin().await?;
    let after = json!({ "supervisor": name, "hours": hours, "issued_at": issued_at, "not_after": not_after,
                        "key_id": key.key_id().0 });
    audit::record(&mut tx, &staff, "supervisor_pass.create", &format!("event:{event_id}"), None, Some(after)).await?;
    tx.commit().await?;
    tracing::info!(event = event_id, supervisor = %name, hours, not_after, "supervisor pass made");
    let body = json!({
        "pass": text,
        "name": name,
        "event_id": event,
        "issued_at": issued_at,
        "not_after": not_after,
        "key_id": key.key_id().0,
        // The SVG as an element for inline use: without the XML declaration.
        "qr_svg": svg.find("<svg").map(|i| &svg[i..]).unwrap_or(&svg),
    });
    Ok((StatusCode::CREATED, axum::Json(body)))
}

// ---------------------------------------------------------------------------------------------------------
// Gate rules.

/// One gate as the organizer sends it (indices as plain numbers, so that an out-of-range one is a clear
/// 422 rather than a JSON shape error).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GateInput {
    gate: String,
    #[serde(default)]
    ticket_types: Option<Vec<i64>>,
    #[serde(default)]
    addons: Option<Vec<i64>>,
    #[serde(default)]
    redeems_addon: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatesInput {
    gates: Vec<GateInput>,
}

/// `text` cut to at most `max` bytes at a character boundary.
fn truncate_bytes(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// The event's rules with `gates`: format, event and the catalog's names by index filled in.
fn rules_for(event: &EventView, gates: Vec<GateRule>) -> Result<GateRules> {
    let names = |list: Vec<(i64, &str)>| -> Vec<String> {
        let len = list.iter().map(|(i, _)| usize::try_from(*i).unwrap_or(0) + 1).max().unwrap_or(0);
        let mut out: Vec<String> = (0..len).map(|i| format!("#{i}")).collect();
        for (i, name) in list {
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
                *slot = truncate_bytes(name, MAX_GATE_NAME_BYTES);
            }
        }
        out
    };
    Ok(GateRules {
        format: GATE_RULES_FORMAT.to_owned(),
        event_id: event_u32(event.id)?,
        ticket_type_names: names(event.ticket_types.iter().map(|t| (t.index, t.name.as_str())).collect()),
        addon_names: names(event.addons.iter().map(|a| (a.index, a.name.as_str())).collect()),
        gates,
    })
}

/// Checks the organizer's gates against the event's catalog and scanner-core's limits.
fn validate_gates(event: &EventView, input: GatesInput) -> Result<GateRules> {
    let mut gates = Vec::with_capacity(input.gates.len());
    for (n, g) in input.gates.into_iter().enumerate() {
        let gate = clean_text("gates", &g.gate, MAX_GATE_NAME_BYTES).map_err(|e| match e {
            Error::Validation { message, .. } => {
                Error::validation("gates", format!("gate {}: the name {message}", n + 1))
            }
            other => other,
        })?;
        let gate_label = gate.clone();
        let ticket_type = |i: i64| -> Result<u8> {
            event.ticket_types.iter().find(|t| t.index == i).and_then(|t| u8::try_from(t.index).ok()).ok_or_else(|| {
                Error::validation(
                    "gates",
                    format!("gate {gate_label:?} names ticket type {i}, which this event does not have"),
                )
            })
        };
        let addon = |i: i64| -> Result<u8> {
            event.addons.iter().find(|a| a.index == i).and_then(|a| u8::try_from(a.index).ok()).ok_or_else(|| {
                Error::validation(
                    "gates",
                    format!("gate {gate_label:?} names add-on {i}, which this event does not have"),
                )
            })
        };
        let ticket_types =
            g.ticket_types.map(|l| l.into_iter().map(ticket_type).collect::<Result<Vec<_>>>()).transpose()?;
        let addons = g.addons.map(|l| l.into_iter().map(addon).collect::<Result<Vec<_>>>()).transpose()?;
        let redeems_addon = g.redeems_addon.map(addon).transpose()?;
        gates.push(GateRule { gate, ticket_types, addons, redeems_addon });
    }
    let rules = rules_for(event, gates)?;
    rules.check().map_err(|e| Error::validation("gates", e.to_string()))?;
    if rules.to_json().len() > MAX_GATE_RULES_BYTES {
        return Err(Error::validation("gates", format!("the rules are larger than {MAX_GATE_RULES_BYTES} bytes")));
    }
    Ok(rules)
}

/// The event's gate rules: the stored gates with the catalog's current names, or no gates.
async fn load_rules(state: &AppState, event_id: i64) -> Result<GateRules> {
    let event = crate::catalog::load_event(state, event_id).await?;
    let row: Option<(String,)> = sqlx::query_as("SELECT rules_json FROM gate_rules WHERE event_id = $1")
        .bind(event_id)
        .fetch_optional(&state.db.read)
        .await?;
    let gates = match row {
        Some((json,)) => {
            GateRules::from_json(&json).map_err(|e| Error::internal(format!("stored gate rules: {e}")))?.gates
        }
        None => Vec::new(),
    };
    rules_for(&event, gates)
}

async fn put_gates(
    staff: Staff,
    State(state): State<AppState>,
    Path(event_id): Path<i64>,
    Json(input): Json<GatesInput>,
) -> Result<impl IntoResponse> {
    staff.require(Permission::Door)?;
    let event = crate::catalog::load_event(&state, event_id).await?;
    let rules = validate_gates(&event, input)?;
    let json = rules.to_json();
    let mut tx = state.db.write.begin().await?;
    let before: Option<(String,)> = sqlx::query_as("SELECT rules_json FROM gate_rules WHERE event_id = $1")
        .bind(event_id)
        .fetch_optional(&mut *tx)
        .await?;
    let before = before.and_then(|(b,)| serde_json::from_str::<Value>(&b).ok());
    sqlx::query(
        "INSERT INTO gate_rules (event_id, rules_json, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (event_id) DO UPDATE SET rules_json = excluded.rules_json, updated_at = excluded.updated_at",
    )
    .bind(event_id)
    .bind(&json)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    let after = serde_json::from_str::<Value>(&json).ok();
    audit::record(&mut tx, &staff, "gates.update", &format!("event:{event_id}"), before, after).await?;
    tx.commit().await?;
    tracing::info!(event = event_id, gates = rules.gates.len(), "gate rules saved");
    Ok(json_response(StatusCode::OK, json, "no-cache"))
}

async fn admin_gates(
    staff: Staff,
    State(state): State<AppState>,
    Path(event_id): Path<i64>,
) -> Result<impl IntoResponse> {
    staff.require(Permission::Reports)?;
    Ok(json_response(StatusCode::OK, load_rules(&state, event_id).await?.to_json(), "no-cache"))
}

async fn device_gates(
    device: ScannerDevice,
    State(state): State<AppState>,
    Path(event_id): Path<i64>,
) -> Result<impl IntoResponse> {
    device.require_event(event_id)?;
    let rules = load_rules(&state, event_id).await?;
    tracing::info!(device = %device.id, event = event_id, gates = rules.gates.len(), "gate rules served");
    Ok(json_response(StatusCode::OK, rules.to_json(), "no-cache"))
}

// ---------------------------------------------------------------------------------------------------------
// Attendee search.

#[derive(Debug, Deserialize)]
struct SearchParams {
    #[serde(default)]
    q: Option<String>,
}

/// A `LIKE` pattern matching `text` anywhere (`%text%`) or at the start (`text%`), with the pattern
/// characters in it taken literally (escape `\`).
fn like_pattern(text: &str, anywhere: bool) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    if anywhere {
        pattern.push('%');
    }
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// ASCII letters in lower case, every other letter in upper case: what SQLite's ASCII-only `LOWER` leaves
/// of a name written with capital non-ASCII letters ("Élodie" → "Élodie", "ÖZ" → "Öz").
fn fold_ascii_lower_other_upper(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let folded: Vec<char> =
                if c.is_ascii() { vec![c.to_ascii_lowercase()] } else { c.to_uppercase().collect() };
            folded
        })
        .collect()
}

/// The supervisor pass of the request, checked for `event` now: 403 with the reason otherwise.
fn require_pass(state: &AppState, headers: &HeaderMap, event: u32) -> Result<SupervisorPass> {
    let Some(value) = headers.get(SUPERVISOR_PASS_HEADER) else {
        return Err(Error::Forbidden(format!(
            "a supervisor pass is required to search attendees (header {SUPERVISOR_PASS_HEADER}); ask the organizer \
             for one"
        )));
    };
    let text = value.to_str().map_err(|_| Error::Forbidden("this supervisor pass is damaged".into()))?;
    SupervisorPass::verify(text, &state.signer.keyring, event, now().max(0) as u64)
        .map_err(|e| Error::Forbidden(e.to_string()))
}

/// The status a supervisor sees: whether the order is paid, to be paid at the door, or why not.
fn door_status(status: OrderStatus, method: &str) -> String {
    match (status, method) {
        (OrderStatus::Confirmed, "at_door") => "pay_at_door".to_owned(),
        (OrderStatus::Confirmed, _) => "paid".to_owned(),
        (other, _) => other.as_str().to_owned(),
    }
}

/// id, buyer name, email, status, payment method.
type OrderRow = (String, String, String, OrderStatus, String);
/// ticket id, holder, ticket type, add-on mask, revoked, QR text.
type TicketRow = (String, String, i64, i64, crate::db::Flag, String);

async fn search(
    device: ScannerDevice,
    State(state): State<AppState>,
    Path(event_id): Path<i64>,
    headers: HeaderMap,
    Query(params): Query<SearchParams>,
) -> Result<impl IntoResponse> {
    device.require_event(event_id)?;
    let event = event_u32(event_id)?;
    state.search_limit.check(&device.id)?;
    let pass = require_pass(&state, &headers, event)?;
    let q = params.q.as_deref().map(str::trim).unwrap_or_default();
    let chars = q.chars().count();
    if !(MIN_QUERY_CHARS..=MAX_QUERY_CHARS).contains(&chars) || q.chars().any(char::is_control) {
        return Err(Error::validation(
            "q",
            format!("search for {MIN_QUERY_CHARS} to {MAX_QUERY_CHARS} characters of a name, an email address or an order id"),
        ));
    }
    let catalog = crate::catalog::load_event(&state, event_id).await?;
    let lower = q.to_lowercase();
    let anywhere = like_pattern(&lower, true);
    let prefix = like_pattern(&lower, false);
    let upper_non_ascii = like_pattern(&fold_ascii_lower_other_upper(q), true);
    // LOWER(..) LIKE rather than ILIKE: the same statement works on SQLite and PostgreSQL. SQLite's LOWER
    // folds ASCII letters only, so "Élodie" stays "Élodie": the second pattern (ASCII lower, the rest
    // upper) finds it for "élodie" too. One more row than returned tells whether the list was cut.
    let rows: Vec<OrderRow> = sqlx::query_as(
        "SELECT o.id, o.customer_name, o.customer_email, o.status, o.payment_method FROM orders o
         WHERE o.event_id = $1
           AND (LOWER(o.customer_name) LIKE $2 ESCAPE '\\' OR LOWER(o.customer_name) LIKE $5 ESCAPE '\\'
                OR LOWER(o.customer_email) LIKE $2 ESCAPE '\\' OR LOWER(o.id) LIKE $3 ESCAPE '\\'
                OR EXISTS (SELECT 1 FROM tickets t WHERE t.order_id = o.id
                           AND (LOWER(t.holder_name) LIKE $2 ESCAPE '\\' OR LOWER(t.holder_name) LIKE $5 ESCAPE '\\')))
         ORDER BY o.created_at DESC, o.id DESC LIMIT $4",
    )
    .bind(event_id)
    .bind(&anywhere)
    .bind(&prefix)
    .bind(MAX_SEARCH_RESULTS as i64 + 1)
    .bind(&upper_non_ascii)
    .fetch_all(&state.db.read)
    .await?;
    let truncated = rows.len() > MAX_SEARCH_RESULTS;
    let mut orders = Vec::with_capacity(rows.len().min(MAX_SEARCH_RESULTS));
    for (order_id, buyer_name, email, status, method) in rows.into_iter().take(MAX_SEARCH_RESULTS) {
        let order_closed = status.is_closed();
        let tickets: Vec<TicketRow> = sqlx::query_as(
            "SELECT ticket_id, holder_name, ticket_type, addon_mask, CAST(revoked AS INTEGER), qr_text FROM tickets
             WHERE order_id = $1 ORDER BY seq",
        )
        .bind(&order_id)
        .fetch_all(&state.db.read)
        .await?;
        let tickets = tickets
            .into_iter()
            .map(|(ticket_id, holder, ticket_type, mask, revoked, qr_text)| {
                Ok(FoundTicket {
                    ticket_id,
                    holder,
                    ticket_type: u8::try_from(ticket_type).map_err(Error::internal)?,
                    ticket_type_name: catalog
                        .ticket_types
                        .iter()
                        .find(|t| t.index == ticket_type)
                        .map(|t| t.name.clone())
                        .unwrap_or_default(),
                    addons: (0u8..16).filter(|a| mask & (1 << a) != 0).collect(),
                    revoked: revoked.0 || order_closed,
                    qr_text,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        orders.push(FoundOrder { order_id, buyer_name, email, status: door_status(status, &method), tickets });
    }
    // Neither the query (personal data) nor the pass: who searched, under which pass name, how many found.
    tracing::info!(
        device = %device.id, event = event_id, supervisor = %pass.name, found = orders.len(), truncated,
        "attendee search"
    );
    let body = serde_json::to_string(&SearchResults { orders, truncated }).map_err(Error::internal)?;
    Ok(json_response(StatusCode::OK, body, "no-store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_pattern("a%b_c\\", true), "%a\\%b\\_c\\\\%");
        assert_eq!(like_pattern("ord_1", false), "ord\\_1%");
    }

    #[test]
    fn non_ascii_letters_fold_up_ascii_down() {
        assert_eq!(fold_ascii_lower_other_upper("élodie DURAND"), "Élodie durand");
        assert_eq!(fold_ascii_lower_other_upper("Zoë"), "zoË");
    }

    #[test]
    fn names_are_cut_at_a_character_boundary() {
        assert_eq!(truncate_bytes("aé", 2), "a");
        assert_eq!(truncate_bytes("abc", 10), "abc");
    }

    #[test]
    fn door_status_says_paid_or_pay_at_door() {
        assert_eq!(door_status(OrderStatus::Confirmed, "stripe"), "paid");
        assert_eq!(door_status(OrderStatus::Confirmed, "at_door"), "pay_at_door");
        assert_eq!(door_status(OrderStatus::Refunded, "stripe"), "refunded");
    }
}
