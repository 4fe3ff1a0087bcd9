//! Orders, in the order they happen:
//!
//! 1. [`reserve`] — placing an order: the request validated and priced against the catalog, its seats held;
//! 2. [`queue`] and [`commit`] — the hand-over to the one committer task, which reserves and writes
//!    whatever orders have queued up in one transaction (and issues at once those that settle at once);
//! 3. [`issue`] — payment confirmed: tickets signed and stored, their email queued;
//! 4. [`refund`] — refunds and cancellations: tickets revoked, money owed back recorded.
//!
//! [`pdf`] renders an order's tickets as a PDF (the download here and the ticket mail's attachment);
//! [`wallet`] makes a ticket's Apple Wallet pass and its "Save to Google Wallet" link.
//!
//! [`model`] holds what every step shares: [`OrderStatus`], the request and answer types, the customer's
//! view of an order and its access token. This file holds the order API's routes.

pub mod commit;
pub mod issue;
pub mod model;
pub mod pdf;
pub mod queue;
pub mod refund;
pub mod reserve;
pub mod wallet;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

pub use model::{load_order, order_token, OrderStatus};
use model::{NewOrder, OrderCreated, OrderView, TicketView};

use crate::error::{Error, Result};
use crate::extract::{Json, Query};
use crate::state::AppState;

/// The order API. The customer's order page (`GET /orders/{id}`) is one of the [`crate::pages`].
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/orders", post(create_order))
        .route("/v1/orders/{id}", get(order_json))
        .route("/orders/{id}/tickets/{seq}/qr.png", get(ticket_png))
        .route("/orders/{id}/tickets.pdf", get(tickets_pdf))
        .route("/orders/{id}/tickets/{seq}/pass.pkpass", get(wallet::apple_pass))
        .route("/orders/{id}/tickets/{seq}/google-wallet", get(wallet::google_save))
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

async fn create_order(
    State(state): State<AppState>,
    Json(req): Json<NewOrder>,
) -> Result<(StatusCode, axum::Json<OrderCreated>)> {
    let created = reserve::place_order(&state, req).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

async fn order_json(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<axum::Json<OrderView>> {
    Ok(axum::Json(load_order(&state, &id, Some(&q.token)).await?))
}

async fn ticket_png(
    State(state): State<AppState>,
    Path((id, seq)): Path<(String, i64)>,
    Query(q): Query<TokenQuery>,
) -> Result<Response> {
    let order = load_order(&state, &id, Some(&q.token)).await?;
    let t = live_ticket(&order, seq)?;
    let png = scanner_core::qr::render::png(&t.qr_text, 8).map_err(Error::internal)?;
    Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "no-store")], png).into_response())
}

/// Ticket `seq` of `order` unless it is revoked (refunded, cancelled): else 404, as for a ticket that
/// does not exist.
fn live_ticket(order: &OrderView, seq: i64) -> Result<&TicketView> {
    order.tickets.iter().find(|t| t.seq == seq && !t.revoked).ok_or(Error::NotFound("ticket"))
}

/// Every valid ticket of the order as a PDF, one page each. The same access rule as the order page (the
/// order's token, else 404 revealing nothing); the order budget's rate limit covers it as every route here.
async fn tickets_pdf(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
) -> Result<Response> {
    let order = load_order(&state, &id, Some(&q.token)).await?;
    let pdf = pdf::tickets_pdf(&order)?;
    let disposition = format!("attachment; filename=\"{}\"", pdf::file_name(&order.id));
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            // The request URL holds the order's access token: a link in the PDF must not pass it on.
            (header::REFERRER_POLICY, "no-referrer".to_owned()),
        ],
        pdf,
    )
        .into_response())
}
