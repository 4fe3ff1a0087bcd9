//! CSV exports for spreadsheets, downloadable from the dashboard:
//!
//! - `GET /admin/v1/events/{id}/exports/orders.csv` — one row per order;
//! - `GET /admin/v1/events/{id}/exports/attendees.csv` — one row per ticket (holder, buyer, valid or not);
//! - `GET /admin/v1/events/{id}/exports/checkins.csv` — one row per pass the redemption report counts
//!   (entries, exits, add-ons redeemed), in clock order, with the ticket it was for, its gate, device and
//!   who decided. A ticket let in twice has two rows (the report's conflicts say which).
//!
//! Times are in the event's own time zone, named in the column header.
//!
//! Written with the `csv` crate (RFC 4180 quoting), UTF-8 with a byte order mark so that spreadsheet
//! programs read accents right, and with formula injection neutralised: a cell that starts with `=`, `+`,
//! `-`, `@`, a tab or a carriage return (a name like `=HYPERLINK(...)` typed into the order form) gets a
//! leading apostrophe, so a spreadsheet shows it as text instead of running it. Every download is recorded
//! in the audit log (personal data left the system).

use std::borrow::Cow;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use scanner_core::redemption::{Outcome, ScanKind, TicketRef};
use scanner_core::TicketId;

use crate::audit;
use crate::error::{Error, Result};
use crate::orders::model::OrderStatus;
use crate::staff::Staff;
use crate::state::AppState;

/// The UTF-8 byte order mark: tells spreadsheet programs the file is UTF-8.
pub const BOM: &str = "\u{feff}";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/events/{id}/exports/orders.csv", get(orders_csv))
        .route("/admin/v1/events/{id}/exports/attendees.csv", get(attendees_csv))
        .route("/admin/v1/events/{id}/exports/checkins.csv", get(checkins_csv))
}

/// A cell a spreadsheet shows as the text it is: one starting with a character that makes it a formula
/// (`=`, `+`, `-`, `@`) or that spreadsheets strip before looking for one (tab, carriage return) gets a
/// leading apostrophe (OWASP's advice on CSV injection).
pub fn safe_cell(value: &str) -> Cow<'_, str> {
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{value}")),
        _ => Cow::Borrowed(value),
    }
}

/// A CSV document: the BOM, the header and the rows, every cell through [`safe_cell`].
pub fn to_csv(header: &[&str], rows: &[Vec<String>]) -> Result<Vec<u8>> {
    let mut out = BOM.as_bytes().to_vec();
    {
        let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(&mut out);
        w.write_record(header).map_err(Error::internal)?;
        for row in rows {
            w.write_record(row.iter().map(|c| safe_cell(c).into_owned())).map_err(Error::internal)?;
        }
        w.flush().map_err(Error::internal)?;
    }
    Ok(out)
}

fn csv_response(filename: &str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

async fn record_export(state: &AppState, who: &Staff, what: &str, event: i64, rows: usize) -> Result<()> {
    let mut tx = state.db.write.begin().await?;
    audit::record(
        &mut tx,
        who,
        &format!("export.{what}"),
        &format!("event:{event}"),
        None,
        Some(json!({ "rows": rows })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

type OrderRow = (String, i64, OrderStatus, String, String, String, i64, String, i64, i64);

async fn orders_csv(who: Staff, State(state): State<AppState>, Path(event): Path<i64>) -> Result<Response> {
    who.require(crate::staff::Permission::Reports)?;
    let ev = crate::catalog::load_event(&state, event).await?;
    let tz = crate::catalog::time::zone_or_utc(&ev.timezone);
    let rows: Vec<OrderRow> = sqlx::query_as(
        "SELECT o.id, o.created_at, o.status, o.customer_name, o.customer_email, o.payment_method, o.total_cents,
                o.currency,
                (SELECT COUNT(*) FROM tickets t WHERE t.order_id = o.id),
                (SELECT COUNT(*) FROM tickets t WHERE t.order_id = o.id AND t.revoked = FALSE)
         FROM orders o WHERE o.event_id = $1 ORDER BY o.created_at, o.id",
    )
    .bind(event)
    .fetch_all(&state.db.read)
    .await?;
    let created_header = format!("created ({})", ev.timezone);
    let header = [
        "order",
        &created_header,
        "status",
        "buyer",
        "email",
        "payment",
        "total",
        "currency",
        "tickets",
        "valid tickets",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(id, created, status, name, email, method, total, currency, tickets, valid)| {
            vec![
                id.clone(),
                crate::catalog::time::spreadsheet(*created, &tz),
                status.to_string(),
                name.clone(),
                email.clone(),
                method.clone(),
                // The amount as a number (no currency sign), so that a spreadsheet can add it up.
                scanner_core::manifest::Money::format(total.unsigned_abs(), currency)
                    .trim_end_matches(currency.as_str())
                    .trim()
                    .to_owned(),
                currency.clone(),
                tickets.to_string(),
                valid.to_string(),
            ]
        })
        .collect();
    let body = to_csv(&header, &cells)?;
    record_export(&state, &who, "orders", event, cells.len()).await?;
    Ok(csv_response(&format!("event-{event}-orders.csv"), body))
}

type AttendeeRow = (String, i64, i64, i64, String, crate::db::Flag, String, String, OrderStatus);

async fn attendees_csv(who: Staff, State(state): State<AppState>, Path(event): Path<i64>) -> Result<Response> {
    who.require(crate::staff::Permission::Reports)?;
    let ev = crate::catalog::load_event(&state, event).await?;
    let rows: Vec<AttendeeRow> = sqlx::query_as(
        "SELECT t.order_id, t.seq, t.ticket_type, t.addon_mask, t.holder_name, CAST(t.revoked AS INTEGER), o.customer_name,
                o.customer_email, o.status
         FROM tickets t JOIN orders o ON o.id = t.order_id WHERE t.event_id = $1 ORDER BY o.created_at, t.order_id, t.seq",
    )
    .bind(event)
    .fetch_all(&state.db.read)
    .await?;
    let header = ["order", "ticket", "ticket type", "add-ons", "holder", "buyer", "buyer email", "valid"];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(order, seq, tt, mask, holder, revoked, buyer, email, status)| {
            let type_name = ev.ticket_types.iter().find(|t| t.index == *tt).map(|t| t.name.clone()).unwrap_or_default();
            let addons: Vec<&str> =
                ev.addons.iter().filter(|a| mask & (1 << a.index) != 0).map(|a| a.name.as_str()).collect();
            let valid = !revoked.0 && *status == OrderStatus::Confirmed;
            vec![
                order.clone(),
                (seq + 1).to_string(),
                type_name,
                addons.join(", "),
                holder.clone(),
                buyer.clone(),
                email.clone(),
                if valid { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    let body = to_csv(&header, &cells)?;
    record_export(&state, &who, "attendees", event, cells.len()).await?;
    Ok(csv_response(&format!("event-{event}-attendees.csv"), body))
}

type TicketRow = (String, String, i64, i64, String, String);

async fn checkins_csv(who: Staff, State(state): State<AppState>, Path(event): Path<i64>) -> Result<Response> {
    who.require(crate::staff::Permission::Reports)?;
    let ev = crate::catalog::load_event(&state, event).await?;
    let tz = crate::catalog::time::zone_or_utc(&ev.timezone);
    let log_event = u32::try_from(event).map_err(|_| Error::NotFound("event"))?;
    let (_, check_ins) = crate::sync::check_ins(&state, log_event).await?;
    // The log names tickets by a one-way reference (it travels between devices); the issuer, which knows
    // every ticket id, maps references back to tickets here.
    let tickets: Vec<TicketRow> = sqlx::query_as(
        "SELECT t.ticket_id, t.order_id, t.seq, t.ticket_type, t.holder_name, o.customer_name
         FROM tickets t JOIN orders o ON o.id = t.order_id WHERE t.event_id = $1",
    )
    .bind(event)
    .fetch_all(&state.db.read)
    .await?;
    let by_ref: std::collections::HashMap<TicketRef, &TicketRow> =
        tickets.iter().filter_map(|row| Some((TicketRef::of(&TicketId::from_hex(&row.0)?), row))).collect();
    let time_header = format!("time ({})", ev.timezone);
    let header = [
        time_header.as_str(),
        "gate",
        "device",
        "pass",
        "outcome",
        "decided by",
        "order",
        "ticket",
        "ticket type",
        "holder",
        "note",
    ];
    let cells: Vec<Vec<String>> = check_ins
        .iter()
        .map(|c| {
            let ticket = by_ref.get(&c.ticket);
            let type_name = ticket
                .and_then(|t| ev.ticket_types.iter().find(|tt| tt.index == t.3))
                .map(|tt| tt.name.clone())
                .unwrap_or_default();
            let pass = match (c.addon, c.scan.kind) {
                (Some(slot), _) => {
                    let name = ev.addons.iter().find(|a| a.index == i64::from(slot)).map(|a| a.name.as_str());
                    format!("add-on: {}", name.unwrap_or("?"))
                }
                (None, ScanKind::Entry) => "entry".to_owned(),
                (None, ScanKind::Exit) => "exit".to_owned(),
            };
            let outcome = match c.scan.outcome {
                Outcome::AdmittedOverride => "override",
                Outcome::PaidAtDoor => "paid at the door",
                _ => "admitted",
            };
            vec![
                crate::catalog::time::spreadsheet(i64::from(c.scan.wall_time), &tz),
                c.scan.gate.clone(),
                c.scan.device_name.clone(),
                pass,
                outcome.to_owned(),
                c.scan.path.as_str().to_owned(),
                ticket.map(|t| t.1.clone()).unwrap_or_else(|| "(unknown ticket)".to_owned()),
                ticket.map(|t| (t.2 + 1).to_string()).unwrap_or_default(),
                type_name,
                ticket.map(|t| if t.4.is_empty() { t.5.clone() } else { t.4.clone() }).unwrap_or_default(),
                c.scan.override_reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let body = to_csv(&header, &cells)?;
    record_export(&state, &who, "checkins", event, cells.len()).await?;
    Ok(csv_response(&format!("event-{event}-checkins.csv"), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_get_an_apostrophe() {
        for (cell, want) in [
            ("=1+1", "'=1+1"),
            ("+49 30 1234", "'+49 30 1234"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=x", "'\t=x"),
            ("\r=x", "'\r=x"),
            ("Ada", "Ada"),
            ("", ""),
            ("a=b", "a=b"),
        ] {
            assert_eq!(safe_cell(cell), want, "{cell:?}");
        }
    }

    #[test]
    fn csv_starts_with_a_bom_and_quotes() {
        let body = to_csv(&["a", "b"], &[vec!["x,y".into(), "=cmd".into()]]).unwrap();
        let text = String::from_utf8(body).unwrap();
        assert_eq!(text, "\u{feff}a,b\r\n\"x,y\",'=cmd\r\n");
    }
}
