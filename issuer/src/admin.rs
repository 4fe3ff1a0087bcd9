//! Admin API (staff, [`crate::staff`]): orders (view, refund, cancel: the `Orders` permission), the email
//! outbox (`Orders`) and scanner devices (with the setup link a phone opens to configure the PWA scanner:
//! `Door`; the list also `Reports`). Every write is audited in its own transaction.
//! Catalog administration lives in `catalog`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit;
use crate::error::{Error, Result};
use crate::extract::{Json, Query};
use crate::orders::model::{load_order, OrderStatus};
use crate::orders::refund;
use crate::staff::{Permission, Staff};
use crate::state::AppState;
use crate::util::{clean_text, hash_secret, now, random_id, random_token};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/orders/{id}", get(get_order))
        .route("/admin/v1/orders/{id}/refund", post(refund))
        .route("/admin/v1/orders/{id}/cancel", post(cancel))
        .route("/admin/v1/email-jobs", get(email_jobs))
        .route("/admin/v1/email-jobs/{id}/retry", post(retry_email))
        .route("/admin/v1/devices", post(create_device).get(list_devices))
        .route("/admin/v1/devices/{id}/revoke", post(revoke_device))
        .route("/admin/v1/revocations", get(revocation_info))
        .route("/admin/v1/store", get(store_info))
}

async fn get_order(staff: Staff, State(state): State<AppState>, Path(id): Path<String>) -> Result<axum::Json<Value>> {
    staff.require(Permission::Orders)?;
    let order = load_order(&state, &id, None).await?;
    let mut v = serde_json::to_value(&order).map_err(Error::internal)?;
    // The admin sees the order, not the bearer secrets of its tickets.
    if let Some(tickets) = v["tickets"].as_array_mut() {
        for t in tickets {
            t["qr_text"] = Value::Null;
        }
    }
    v["refund"] = json!(crate::payments::refunds::for_order(&state, &id).await?);
    Ok(axum::Json(v))
}

/// Refunds a paid order: its tickets are revoked and the refund recorded as pending in one transaction,
/// then Stripe is asked once here; if that fails or times out the refund worker retries (`refund.status`
/// says which). A pending order is cancelled instead (nothing was paid).
async fn refund(staff: Staff, State(state): State<AppState>, Path(id): Path<String>) -> Result<axum::Json<Value>> {
    staff.require(Permission::Orders)?;
    if let Some(cancelled) = refund::cancel_if_pending(&state, &id).await? {
        audit_pending_cancel(&state, &staff, &id, &cancelled).await?;
        return Ok(axum::Json(cancelled));
    }
    let (status, version) = refund::refund_or_cancel(&state, &staff, &id, OrderStatus::Refunded).await?;
    let refund = crate::payments::refunds::attempt_for_order(&state, &id).await?;
    Ok(axum::Json(json!({ "order_id": id, "status": status, "revocation_version": version, "refund": refund })))
}

/// Cancels an order: a pending one releases its seats and its Checkout session is expired; a confirmed
/// one has its tickets revoked (no money moves).
async fn cancel(staff: Staff, State(state): State<AppState>, Path(id): Path<String>) -> Result<axum::Json<Value>> {
    staff.require(Permission::Orders)?;
    if let Some(cancelled) = refund::cancel_if_pending(&state, &id).await? {
        audit_pending_cancel(&state, &staff, &id, &cancelled).await?;
        return Ok(axum::Json(cancelled));
    }
    let (status, version) = refund::refund_or_cancel(&state, &staff, &id, OrderStatus::Cancelled).await?;
    Ok(axum::Json(json!({ "order_id": id, "status": status, "revocation_version": version })))
}

/// The audit row of a pending order cancelled by an admin. The cancellation (releasing the held seats) is
/// committed by the hold logic's own transaction, so this row follows it in a second one: a crash between
/// the two would lose the row, not the cancellation.
async fn audit_pending_cancel(state: &AppState, staff: &Staff, id: &str, cancelled: &Value) -> Result<()> {
    let mut tx = state.db.write.begin().await?;
    let before = json!({ "status": OrderStatus::Pending });
    audit::record(&mut tx, staff, "order.cancel", &format!("order:{id}"), Some(before), Some(cancelled.clone()))
        .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Deserialize)]
struct JobFilter {
    status: Option<String>,
    limit: Option<i64>,
}

async fn email_jobs(
    staff: Staff,
    State(state): State<AppState>,
    Query(f): Query<JobFilter>,
) -> Result<axum::Json<Value>> {
    staff.require(Permission::Orders)?;
    let jobs = crate::email::list_jobs(&state, f.status.as_deref(), f.limit.unwrap_or(500)).await?;
    Ok(axum::Json(json!({ "jobs": jobs })))
}

async fn retry_email(staff: Staff, State(state): State<AppState>, Path(id): Path<i64>) -> Result<StatusCode> {
    staff.require(Permission::Orders)?;
    crate::email::retry_job(&state, id).await?;
    // Retrying a mail changes no order and no ticket: its row follows the retry in a second transaction.
    let mut tx = state.db.write.begin().await?;
    audit::record(&mut tx, &staff, "email.retry", &format!("email_job:{id}"), None, None).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDevice {
    name: String,
    /// The one event the device's token is valid for (required; `Option` only to say so clearly).
    #[serde(default)]
    event: Option<i64>,
    /// A venue hub (`scanner hub`) the device asks first and syncs with, carried in the setup link;
    /// checked by scanner-core's server rule (https, plain http only to the device itself).
    #[serde(default)]
    hub: Option<String>,
    /// The hub certificate's SHA-256 (`scanner hub --self-signed` prints it), for CLI devices; needs an
    /// https hub. Browsers cannot pin: phones need a hub certificate their browser trusts.
    #[serde(default)]
    hub_cert_sha256: Option<String>,
}

/// The venue hub a new device's link names: `(hub, its certificate pin)`, checked by the same rules the
/// device applies when it reads the link (scanner-core's `setup`), so the issuer never hands out a link
/// the device would refuse. Empty fields mean "no hub".
fn link_hub(hub: Option<&str>, pin: Option<&str>) -> Result<(Option<String>, Option<String>)> {
    fn present(v: Option<&str>) -> Option<&str> {
        v.map(str::trim).filter(|v| !v.is_empty())
    }
    let pin = present(pin)
        .map(|p| scanner_core::setup::CertPin::parse(p).map(|p| p.to_hex()))
        .transpose()
        .map_err(|e| Error::validation("hub_cert_sha256", e.to_string()))?;
    let hub = match (present(hub), &pin) {
        (Some(url), Some(_)) => Some(scanner_core::setup::check_pinned_url(url)),
        (Some(url), None) => Some(scanner_core::setup::check_server_url(url)),
        (None, Some(_)) => return Err(Error::validation("hub_cert_sha256", "a certificate pin needs a hub URL")),
        (None, None) => None,
    };
    let hub = hub.transpose().map_err(|e| Error::validation("hub", e.to_string()))?;
    Ok((hub, pin))
}

/// `{public_url}/scanner/#setup=<base64url(JSON)>` (scanner-core's [`scanner_core::setup::SetupLink`]):
/// opening it on a phone configures the PWA scanner, `scanner init --setup` the CLI. The token travels in
/// the fragment, which browsers never send to a server or put in a Referer; the keyring's SHA-256 pins
/// the keys the device will accept. `hub`: the venue hub and its certificate pin ([`link_hub`]).
fn setup_url(
    state: &AppState,
    token: &str,
    event: i64,
    device_name: &str,
    hub: (Option<String>, Option<String>),
) -> Result<String> {
    let link = scanner_core::setup::SetupLink {
        v: scanner_core::setup::SETUP_VERSION,
        server: state.public_url.clone(),
        token: token.to_owned(),
        event: u32::try_from(event).map_err(|_| Error::NotFound("event"))?,
        edge: state.config.edge_url.as_deref().map(|u| u.trim_end_matches('/').to_owned()),
        device_name: device_name.to_owned(),
        keyring_sha256: state.signer.keyring.sha256_hex(),
        hub: hub.0,
        hub_cert_sha256: hub.1,
    };
    Ok(link.to_url(&state.public_url))
}

async fn create_device(
    staff: Staff,
    State(state): State<AppState>,
    Json(d): Json<NewDevice>,
) -> Result<(StatusCode, axum::Json<Value>)> {
    staff.require(Permission::Door)?;
    let name = clean_text("name", &d.name, 100)?;
    // A device token is valid for one event only (every scanner endpoint and the edge check it).
    let event = d.event.ok_or_else(|| Error::validation("event", "required: the event this device scans for"))?;
    // Checked before anything is written: a hub the device would refuse creates no device.
    let hub = link_hub(d.hub.as_deref(), d.hub_cert_sha256.as_deref())?;
    crate::catalog::load_event(&state, event).await?;
    let id = random_id("dev");
    let token = random_token(32);
    let mut tx = state.db.write.begin().await?;
    sqlx::query("INSERT INTO devices (id, name, token_hash, created_at, event_id) VALUES ($1, $2, $3, $4, $5)")
        .bind(&id)
        .bind(&name)
        .bind(hash_secret(&token))
        .bind(now())
        .bind(event)
        .execute(&mut *tx)
        .await?;
    let mut after = json!({ "id": id, "name": name, "event": event });
    if let Some(url) = &hub.0 {
        // Which hub a device's link named (never the token) is part of what was decided.
        after["hub"] = json!(url);
    }
    audit::record(&mut tx, &staff, "device.create", &format!("device:{id}"), None, Some(after)).await?;
    tx.commit().await?;
    tracing::info!(device = %id, event, "scanner device registered");
    let mut body = json!({ "id": id, "name": name, "token": token, "event": event });
    let url = setup_url(&state, &token, event, &name, hub)?;
    let svg = scanner_core::qr::render::svg(&url).map_err(Error::internal)?;
    // The SVG as an element for inline use: without the XML declaration.
    body["setup_qr_svg"] = json!(svg.find("<svg").map(|i| &svg[i..]).unwrap_or(&svg));
    body["setup_url"] = json!(url);
    Ok((StatusCode::CREATED, axum::Json(body)))
}

/// id, name, event (None: from before event scoping), created_at, revoked_at.
type DeviceRow = (String, String, Option<i64>, i64, Option<i64>);

async fn list_devices(staff: Staff, State(state): State<AppState>) -> Result<axum::Json<Value>> {
    staff.require(Permission::Reports)?;
    let rows: Vec<DeviceRow> =
        sqlx::query_as("SELECT id, name, event_id, created_at, revoked_at FROM devices ORDER BY created_at")
            .fetch_all(&state.db.read)
            .await?;
    // `event` is null for devices created before tokens were bound to an event: they are refused.
    let devices: Vec<Value> = rows
        .into_iter()
        .map(|(id, name, event, created_at, revoked_at)| {
            json!({ "id": id, "name": name, "event": event, "created_at": created_at, "revoked_at": revoked_at })
        })
        .collect();
    Ok(axum::Json(json!({ "devices": devices })))
}

async fn revoke_device(staff: Staff, State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode> {
    staff.require(Permission::Door)?;
    let mut tx = state.db.write.begin().await?;
    let device: Option<(String, Option<i64>)> =
        sqlx::query_as("SELECT name, event_id FROM devices WHERE id = $1 AND revoked_at IS NULL")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?;
    let (name, event) = device.ok_or(Error::NotFound("active device"))?;
    let revoked_at = now();
    sqlx::query("UPDATE devices SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(revoked_at)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    let before = json!({ "id": id, "name": name, "event": event, "revoked_at": null });
    let after = json!({ "id": id, "name": name, "event": event, "revoked_at": revoked_at });
    audit::record(&mut tx, &staff, "device.revoke", &format!("device:{id}"), Some(before), Some(after)).await?;
    tx.commit().await?;
    tracing::info!(device = %id, "scanner device revoked");
    Ok(StatusCode::NO_CONTENT)
}

async fn revocation_info(staff: Staff, State(state): State<AppState>) -> Result<axum::Json<Value>> {
    staff.require(Permission::Reports)?;
    let list = state.revocations.lock().await;
    Ok(axum::Json(json!({ "version": list.version(), "entries": list.len() })))
}

/// `GET /admin/v1/store`: which database, and its durability settings as the database reports them.
async fn store_info(staff: Staff, State(state): State<AppState>) -> Result<axum::Json<Value>> {
    staff.require(Permission::Reports)?;
    Ok(axum::Json(state.db.durability().await?))
}

#[cfg(test)]
mod link_hub_tests {
    use super::*;

    // SHA-256 of "abc" (FIPS 180-2, appendix B.1).
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn field(e: Error) -> &'static str {
        match e {
            Error::Validation { field, .. } => field,
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn hubs_the_device_would_accept_go_into_the_link() {
        assert_eq!(link_hub(None, None).unwrap(), (None, None));
        assert_eq!(link_hub(Some(" "), Some("")).unwrap(), (None, None));
        assert_eq!(
            link_hub(Some("http://127.0.0.1:8088/"), None).unwrap(),
            (Some("http://127.0.0.1:8088".to_owned()), None)
        );
        assert_eq!(
            link_hub(Some("https://Hub.Example.org:8443"), Some(&ABC.to_ascii_uppercase())).unwrap(),
            (Some("https://hub.example.org:8443".to_owned()), Some(ABC.to_owned()))
        );
    }

    #[test]
    fn hubs_the_device_would_refuse_are_refused_by_field() {
        assert_eq!(field(link_hub(Some("http://192.168.1.20:8088"), None).unwrap_err()), "hub");
        assert_eq!(field(link_hub(Some("ftp://hub"), None).unwrap_err()), "hub");
        assert_eq!(field(link_hub(Some("http://127.0.0.1:8088"), Some(ABC)).unwrap_err()), "hub");
        assert_eq!(field(link_hub(Some("https://hub.example.org"), Some("abc")).unwrap_err()), "hub_cert_sha256");
        assert_eq!(field(link_hub(None, Some(ABC)).unwrap_err()), "hub_cert_sha256");
    }
}
