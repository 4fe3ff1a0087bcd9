//! A local stand-in for Stripe's API (the real one cannot run here): a real HTTP server on a random port
//! that checks each request as Stripe's API reference documents it and answers like Stripe, records every
//! call for the tests to assert on, and builds and delivers webhook events in Stripe's documented shapes,
//! signed like Stripe signs them.
//!
//! Checked on every call: `Authorization: Bearer <the configured secret key>` (else 401),
//! `application/x-www-form-urlencoded` bodies with Stripe's bracket syntax (else 400), and an
//! `Idempotency-Key` on every POST. Stripe itself makes the key optional; the fake requires it because the
//! issuer promises to send one. Idempotency as Stripe's v1 API does it: the first answer to a key is
//! saved (errors and 500s included) and replayed to a retry with the same parameters; the same key with
//! other parameters is a 400 `idempotency_error`.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::form::parse_form;

/// One request the fake received, as it arrived.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub idempotency_key: Option<String>,
    /// The decoded form fields, in order.
    pub form: Vec<(String, String)>,
    /// The status the fake answered with.
    pub status: u16,
    /// Whether the answer was a replay of an earlier one with the same idempotency key.
    pub replayed: bool,
}

impl Call {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A Checkout Session as the fake keeps it.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    /// `open`, `complete` or `expired`.
    pub status: String,
    pub form: Vec<(String, String)>,
    pub amount_total: i64,
    pub currency: String,
    pub expires_at: i64,
    pub created: i64,
    pub payment_intent: Option<String>,
}

/// A refund the fake executed (one per distinct executed request, replays excluded).
#[derive(Debug, Clone)]
pub struct Refund {
    pub id: String,
    pub payment_intent: String,
    pub amount: i64,
    /// `None` for a refund made in the dashboard.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone)]
struct Charge {
    id: String,
    payment_intent: String,
    amount: i64,
    currency: String,
    amount_refunded: i64,
}

#[derive(Default)]
struct Books {
    calls: Vec<Call>,
    sessions: BTreeMap<String, Session>,
    charges: Vec<Charge>,
    refunds: Vec<Refund>,
    /// idempotency key → (method + path + form, saved status, saved body)
    saved: HashMap<String, (String, u16, Value)>,
    next: u64,
}

impl Books {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}_test_{:06}", self.next)
    }
}

struct Shared {
    secret_key: String,
    books: Mutex<Books>,
    /// The next N refund calls fail with a 500 after being recorded (nothing executed; the 500 is saved
    /// under the key, as Stripe does).
    fail_refunds: AtomicU32,
    /// The next N refund calls execute, then hold the answer back until [`FakeStripe::release`] (or
    /// forever, if the caller dies first): Stripe did the work, the caller never heard.
    hang_refunds: AtomicU32,
    release: tokio::sync::Notify,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeStripe {
    url: String,
    shared: Arc<Shared>,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn stripe_error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> (u16, Value) {
    let mut err = json!({"type": kind, "message": message});
    if let Some(code) = code {
        err["code"] = json!(code);
    }
    (status.as_u16(), json!({ "error": err }))
}

fn invalid(message: impl AsRef<str>) -> (u16, Value) {
    stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", Some("parameter_invalid"), message.as_ref())
}

impl FakeStripe {
    /// Starts a fake that accepts only `secret_key`.
    pub async fn start(secret_key: &str) -> FakeStripe {
        let shared = Arc::new(Shared {
            secret_key: secret_key.to_owned(),
            books: Mutex::default(),
            fail_refunds: AtomicU32::new(0),
            hang_refunds: AtomicU32::new(0),
            release: tokio::sync::Notify::new(),
        });
        let app = axum::Router::new()
            .route("/v1/checkout/sessions", axum::routing::post(create_session))
            .route("/v1/checkout/sessions/{id}/expire", axum::routing::post(expire_session))
            .route("/v1/refunds", axum::routing::post(create_refund))
            .fallback(unknown)
            .with_state(shared.clone());
        FakeStripe { url: super::serve_on_loopback(app, "the Stripe fake").await, shared }
    }

    /// The API base URL to configure the issuer with.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.shared.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every call received so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.books().calls.clone()
    }

    /// The calls to `path`.
    pub fn calls_to(&self, path: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.path == path).collect()
    }

    pub fn sessions(&self) -> Vec<Session> {
        self.books().sessions.values().cloned().collect()
    }

    pub fn session(&self, id: &str) -> Option<Session> {
        self.books().sessions.get(id).cloned()
    }

    /// Refunds executed so far (replayed answers are not new refunds).
    pub fn refunds(&self) -> Vec<Refund> {
        self.books().refunds.clone()
    }

    pub fn fail_next_refunds(&self, n: u32) {
        self.shared.fail_refunds.store(n, Ordering::SeqCst);
    }

    pub fn hang_next_refunds(&self, n: u32) {
        self.shared.hang_refunds.store(n, Ordering::SeqCst);
    }

    /// Lets every held-back refund answer go.
    pub fn release(&self) {
        self.shared.release.notify_waiters();
    }

    /// The customer pays the open session `id`: it completes with a new payment intent and charge.
    /// Returns the `checkout.session.completed` event Stripe sends for it.
    pub fn pay(&self, id: &str) -> Value {
        let mut b = self.books();
        let pi = b.id("pi");
        let ch = b.id("ch");
        let session = b.sessions.get_mut(id).expect("a session the fake created");
        assert_eq!(session.status, "open", "only an open session can be paid");
        session.status = "complete".into();
        session.payment_intent = Some(pi.clone());
        let session = session.clone();
        b.charges.push(Charge {
            id: ch,
            payment_intent: pi,
            amount: session.amount_total,
            currency: session.currency.clone(),
            amount_refunded: 0,
        });
        let object = session_object(&session);
        event(&mut b, "checkout.session.completed", object)
    }

    /// The organizer refunds `payment_intent` in full in Stripe's dashboard (no API call).
    pub fn refund_in_dashboard(&self, payment_intent: &str) {
        let mut b = self.books();
        let id = b.id("re");
        let charge = b.charges.iter_mut().find(|c| c.payment_intent == payment_intent).expect("a known payment");
        let amount = charge.amount - charge.amount_refunded;
        charge.amount_refunded = charge.amount;
        b.refunds.push(Refund { id, payment_intent: payment_intent.to_owned(), amount, idempotency_key: None });
    }

    /// The `charge.refunded` event for `payment_intent`'s charge as it stands now (data.object is the
    /// Charge; `refunded` is true only once the whole amount went back).
    pub fn charge_refunded_event(&self, payment_intent: &str) -> Value {
        let mut b = self.books();
        let c = b.charges.iter().find(|c| c.payment_intent == payment_intent).expect("a known payment").clone();
        let object = json!({
            "id": c.id, "object": "charge", "amount": c.amount, "amount_captured": c.amount,
            "amount_refunded": c.amount_refunded, "captured": true, "created": now(), "currency": c.currency,
            "disputed": false, "livemode": false, "metadata": {}, "paid": true, "payment_intent": c.payment_intent,
            "refunded": c.amount_refunded >= c.amount, "status": "succeeded"
        });
        event(&mut b, "charge.refunded", object)
    }

    /// The `charge.dispute.created` event for a dispute of `payment_intent`'s charge (data.object is the
    /// Dispute).
    pub fn dispute_created_event(&self, payment_intent: &str) -> Value {
        let mut b = self.books();
        let c = b.charges.iter().find(|c| c.payment_intent == payment_intent).expect("a known payment").clone();
        let dp = b.id("dp");
        let object = json!({
            "id": dp, "object": "dispute", "amount": c.amount, "balance_transactions": [], "charge": c.id,
            "created": now(), "currency": c.currency,
            "evidence_details": {"due_by": now() + 7 * 86_400, "has_evidence": false, "past_due": false, "submission_count": 0},
            "is_charge_refundable": false, "livemode": false, "metadata": {}, "payment_intent": c.payment_intent,
            "reason": "fraudulent", "status": "needs_response"
        });
        event(&mut b, "charge.dispute.created", object)
    }

    /// Delivers `event` to `webhook_url` with a `Stripe-Signature` made with `whsec` at the current time.
    pub async fn deliver(&self, webhook_url: &str, whsec: &str, event: &Value) -> (u16, Value) {
        let body = serde_json::to_vec(event).expect("event JSON");
        let sig = issuer::payments::stripe::sign(&body, whsec, now());
        let r = reqwest::Client::new()
            .post(webhook_url)
            .header("Stripe-Signature", sig)
            .header("Content-Type", "application/json; charset=utf-8")
            .body(body)
            .send()
            .await
            .expect("deliver the webhook");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

fn session_object(s: &Session) -> Value {
    let field = |k: &str| s.form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let metadata: serde_json::Map<String, Value> = s
        .form
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[").and_then(|r| r.strip_suffix(']')).map(|m| (m.to_owned(), json!(v)))
        })
        .collect();
    json!({
        "id": s.id, "object": "checkout.session", "amount_subtotal": s.amount_total, "amount_total": s.amount_total,
        "cancel_url": field("cancel_url"), "client_reference_id": field("client_reference_id"), "created": s.created,
        "currency": s.currency, "customer_details": field("customer_email").map(|e| json!({"email": e})),
        "customer_email": field("customer_email"), "expires_at": s.expires_at, "livemode": false,
        "metadata": metadata, "mode": field("mode"), "payment_intent": s.payment_intent,
        "payment_status": if s.status == "complete" { "paid" } else { "unpaid" }, "status": s.status,
        "success_url": field("success_url"),
        "url": if s.status == "open" { Some(format!("https://checkout.example/{}", s.id)) } else { None }
    })
}

fn event(b: &mut Books, kind: &str, object: Value) -> Value {
    let id = b.id("evt");
    json!({
        "id": id, "object": "event", "api_version": "2024-06-20", "created": now(), "livemode": false,
        "pending_webhooks": 1, "request": {"id": null, "idempotency_key": null}, "type": kind,
        "data": {"object": object}
    })
}

/// The checks every request gets; `Err` is the answer Stripe would give.
fn check(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, (u16, Value)> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    match auth {
        None => {
            return Err(stripe_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                None,
                "You did not provide an API key.",
            ))
        }
        Some(a) if a != format!("Bearer {}", shared.secret_key) => {
            return Err(stripe_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                None,
                "Invalid API Key provided.",
            ))
        }
        Some(_) => {}
    }
    let ctype = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ctype.starts_with("application/x-www-form-urlencoded") {
        return Err(invalid(format!("Invalid request: expected application/x-www-form-urlencoded, got '{ctype}'")));
    }
    if headers.get("idempotency-key").and_then(|v| v.to_str().ok()).is_none_or(|k| k.is_empty() || k.len() > 255) {
        return Err(invalid("this fake requires an Idempotency-Key (1 to 255 characters) on every POST"));
    }
    parse_form(body).ok_or_else(|| invalid("Invalid request: the form body could not be decoded"))
}

/// Records the call and answers it, through the idempotency layer.
fn handle(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    run: impl FnOnce(&mut Books, &[(String, String)], &str) -> (u16, Value),
) -> (u16, Value, bool) {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut call = Call {
        method: method.to_string(),
        path: path.to_owned(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        idempotency_key: header("idempotency-key"),
        form: parse_form(body).unwrap_or_default(),
        status: 0,
        replayed: false,
    };
    let mut b = shared.books.lock().unwrap_or_else(|e| e.into_inner());
    let (status, answer, replayed) = match check(shared, headers, body) {
        Err((s, v)) => (s, v, false),
        Ok(form) => {
            let key = call.idempotency_key.clone().unwrap_or_default();
            let fingerprint = format!("{method} {path} {form:?}");
            match b.saved.get(&key).cloned() {
                Some((f, s, v)) if f == fingerprint => (s, v, true),
                Some(_) => {
                    let (s, v) = stripe_error(
                        StatusCode::BAD_REQUEST,
                        "idempotency_error",
                        None,
                        "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                    );
                    (s, v, false)
                }
                None => {
                    let (s, v) = run(&mut b, &form, &key);
                    b.saved.insert(key, (fingerprint, s, v.clone()));
                    (s, v, false)
                }
            }
        }
    };
    call.status = status;
    call.replayed = replayed;
    b.calls.push(call);
    (status, answer, replayed)
}

fn respond(status: u16, body: Value, replayed: bool) -> Response {
    let mut r =
        (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(body)).into_response();
    if replayed {
        r.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
    }
    r
}

fn int(form: &[(String, String)], name: &str) -> Result<Option<i64>, (u16, Value)> {
    match form.iter().find(|(k, _)| k == name) {
        None => Ok(None),
        Some((_, v)) => v.parse().map(Some).map_err(|_| invalid(format!("Invalid integer: {v} ({name})"))),
    }
}

/// `POST /v1/checkout/sessions`, with the parameters the issuer uses (anything else is an unknown
/// parameter, as Stripe says).
fn session_create(b: &mut Books, form: &[(String, String)]) -> Result<Value, (u16, Value)> {
    const TOP: [&str; 7] =
        ["mode", "client_reference_id", "customer_email", "success_url", "cancel_url", "expires_at", "ui_mode"];
    const LINE: [&str; 4] =
        ["[quantity]", "[price_data][currency]", "[price_data][unit_amount]", "[price_data][product_data][name]"];
    let mut lines: BTreeMap<usize, BTreeMap<&str, String>> = BTreeMap::new();
    for (k, v) in form {
        if TOP.contains(&k.as_str()) || (k.starts_with("metadata[") && k.ends_with(']') && k.len() > 10) {
            continue;
        }
        let parsed = k.strip_prefix("line_items[").and_then(|r| r.split_once(']')).and_then(|(i, rest)| {
            let i: usize = i.parse().ok()?;
            LINE.iter().find(|l| **l == rest).map(|l| (i, *l))
        });
        match parsed {
            Some((i, field)) => {
                lines.entry(i).or_default().insert(field, v.clone());
            }
            None => return Err(invalid(format!("Received unknown parameter: {k}"))),
        }
    }
    if form.iter().filter(|(k, _)| k == "mode").map(|(_, v)| v.as_str()).next() != Some("payment") {
        return Err(invalid("mode: this fake only creates sessions with mode=payment"));
    }
    if !form.iter().any(|(k, v)| k == "success_url" && v.starts_with("http")) {
        return Err(invalid("Missing required param: success_url."));
    }
    if lines.is_empty() || lines.keys().copied().ne(0..lines.len()) {
        return Err(invalid("line_items: must be a list indexed from 0"));
    }
    let mut amount_total = 0i64;
    let mut currency: Option<String> = None;
    for (i, l) in &lines {
        let q: i64 = l
            .get("[quantity]")
            .and_then(|v| v.parse().ok())
            .filter(|q| *q >= 1)
            .ok_or_else(|| invalid(format!("line_items[{i}][quantity]: a positive integer is required")))?;
        let unit: i64 =
            l.get("[price_data][unit_amount]").and_then(|v| v.parse().ok()).filter(|u| *u >= 0).ok_or_else(|| {
                invalid(format!("line_items[{i}][price_data][unit_amount]: a non-negative integer is required"))
            })?;
        let cur = l
            .get("[price_data][currency]")
            .filter(|c| c.len() == 3 && c.chars().all(|ch| ch.is_ascii_lowercase()))
            .ok_or_else(|| {
                invalid(format!("line_items[{i}][price_data][currency]: a lowercase ISO currency is required"))
            })?;
        if l.get("[price_data][product_data][name]").is_none_or(|n| n.is_empty()) {
            return Err(invalid(format!("Missing required param: line_items[{i}][price_data][product_data][name].")));
        }
        if currency.get_or_insert_with(|| cur.clone()) != cur {
            return Err(invalid("line_items: all line items must have the same currency"));
        }
        amount_total += unit * q;
    }
    let created = now();
    let expires_at = int(form, "expires_at")?.unwrap_or(created + 86_400);
    if expires_at < created + 30 * 60 || expires_at > created + 24 * 3600 {
        return Err(invalid(
            "expires_at: the Checkout Session must expire between 30 minutes and 24 hours after its creation",
        ));
    }
    let id = b.id("cs");
    let session = Session {
        id: id.clone(),
        status: "open".into(),
        form: form.to_vec(),
        amount_total,
        currency: currency.unwrap_or_default(),
        expires_at,
        created,
        payment_intent: None,
    };
    let object = session_object(&session);
    b.sessions.insert(id, session);
    Ok(object)
}

async fn create_session(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (s, v, r) =
        handle(&shared, &method, "/v1/checkout/sessions", &headers, &body, |b, form, _| {
            match session_create(b, form) {
                Ok(v) => (200, v),
                Err(e) => e,
            }
        });
    respond(s, v, r)
}

async fn expire_session(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v1/checkout/sessions/{id}/expire");
    let (s, v, r) = handle(&shared, &method, &path, &headers, &body, |b, form, _| {
        if let Some((k, _)) = form.first() {
            return invalid(format!("Received unknown parameter: {k}"));
        }
        match b.sessions.get_mut(&id) {
            None => stripe_error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                Some("resource_missing"),
                &format!("No such checkout.session: '{id}'"),
            ),
            Some(s) if s.status != "open" => invalid(format!(
                "Only Checkout Sessions with a status in [\"open\"] can be expired. This session has a status of \"{}\".",
                s.status
            )),
            Some(s) => {
                s.status = "expired".into();
                (200, session_object(s))
            }
        }
    });
    respond(s, v, r)
}

fn refund_create(b: &mut Books, form: &[(String, String)], key: &str) -> (u16, Value) {
    if let Some((k, _)) = form.iter().find(|(k, _)| !["payment_intent", "amount", "reason"].contains(&k.as_str())) {
        return invalid(format!("Received unknown parameter: {k}"));
    }
    let Some(pi) = form.iter().find(|(k, _)| k == "payment_intent").map(|(_, v)| v.clone()) else {
        return invalid("Missing required param: payment_intent (or charge).");
    };
    let amount = match int(form, "amount") {
        Ok(a) => a,
        Err(e) => return e,
    };
    let id = b.id("re");
    let Some(charge) = b.charges.iter_mut().find(|c| c.payment_intent == pi) else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such payment_intent: '{pi}'"),
        );
    };
    let left = charge.amount - charge.amount_refunded;
    if left <= 0 {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("charge_already_refunded"),
            &format!("Charge {} has already been refunded.", charge.id),
        );
    }
    let amount = amount.unwrap_or(left);
    if amount <= 0 || amount > left {
        return invalid(format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({left})"));
    }
    charge.amount_refunded += amount;
    let answer = json!({
        "id": id, "object": "refund", "amount": amount, "charge": charge.id, "created": now(),
        "currency": charge.currency, "metadata": {}, "payment_intent": pi, "reason": null, "status": "succeeded"
    });
    b.refunds.push(Refund { id, payment_intent: pi, amount, idempotency_key: Some(key.to_owned()) });
    (200, answer)
}

async fn create_refund(State(shared): State<Arc<Shared>>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    let fail = shared.fail_refunds.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let hang =
        !fail && shared.hang_refunds.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    // Registered before the work so that a release() in between is not missed.
    let released = shared.release.notified();
    let (s, v, r) = handle(&shared, &method, "/v1/refunds", &headers, &body, |b, form, key| {
        if fail {
            stripe_error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", None, "An unknown error occurred")
        } else {
            refund_create(b, form, key)
        }
    });
    if hang {
        released.await;
    }
    respond(s, v, r)
}

async fn unknown(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    shared.books.lock().unwrap_or_else(|e| e.into_inner()).calls.push(Call {
        method: method.to_string(),
        path: uri.path().to_owned(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        idempotency_key: header("idempotency-key"),
        form: parse_form(&body).unwrap_or_default(),
        status: 404,
        replayed: false,
    });
    let (s, v) = stripe_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        None,
        &format!("Unrecognized request URL ({method}: {}).", uri.path()),
    );
    respond(s, v, false)
}
