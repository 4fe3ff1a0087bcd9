//! A local stand-in for Twilio's Programmable Messaging API (the real one costs money and needs the
//! internet): a real HTTP server on a random port that checks each request as Twilio's API reference
//! documents "Create a Message", answers like Twilio, records every call for the tests to assert on, and
//! fails when a test scripts it to.
//!
//! Checked on every call, each refusal with Twilio's documented status, error code and JSON error shape
//! `{code, message, more_info, status}`:
//! - the path `/2010-04-01/Accounts/{AccountSid}/Messages.json` with the configured Account SID (else
//!   404, 20404);
//! - HTTP Basic auth `AccountSid:AuthToken` (else 401, 20003);
//! - an `application/x-www-form-urlencoded` body (else 400 with code 0: the fake's own refusal, Twilio
//!   documents no code for it);
//! - `To` in E.164 (`+` and 2 to 15 digits, the first not 0; else 400, 21211 "Invalid 'To' Phone Number"),
//!   exactly one of `From` and `MessagingServiceSid` (else 400, 21603 "'From' phone number is required"),
//!   `Body` present (else 400, 21602) and at most 1,600 characters (UTF-16 code units; else 400, 21617).
//!
//! A good request gets 201 with a Message resource (`sid` `SM…`, `status` `queued`, or `accepted` through
//! a Messaging Service), unless a scripted failure is due.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Value};

use super::form::parse_form;

/// One request the fake received, as it arrived.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The decoded form fields, in order.
    pub form: Vec<(String, String)>,
    /// The status the fake answered with.
    pub status: u16,
    /// The message SID of a 201.
    pub sid: Option<String>,
}

impl Call {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// An error answer a test scripts: the HTTP status and Twilio's error code and message.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: u16,
    pub code: i64,
    pub message: String,
}

impl Failure {
    pub fn new(status: u16, code: i64, message: &str) -> Self {
        Failure { status, code, message: message.to_owned() }
    }

    /// Twilio's answer to a server error.
    pub fn server_error() -> Self {
        Failure::new(500, 20500, "Internal Server Error")
    }

    /// Twilio's answer when the account sends faster than its limit.
    pub fn too_many_requests() -> Self {
        Failure::new(429, 20429, "Too Many Requests")
    }
}

#[derive(Default)]
struct Books {
    calls: Vec<Call>,
    /// Answers for the next well-formed requests, one each, in order.
    next_failures: VecDeque<Failure>,
    /// The answer to every well-formed request until cleared (after `next_failures`).
    failing: Option<Failure>,
    next_sid: u64,
}

struct Shared {
    account_sid: String,
    auth_token: String,
    books: Mutex<Books>,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeTwilio {
    url: String,
    shared: Arc<Shared>,
}

fn error(status: u16, code: i64, message: &str) -> (u16, Value) {
    (
        status,
        json!({ "code": code, "message": message, "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
                "status": status }),
    )
}

/// E.164 as Twilio documents it for `To`: `+`, then up to 15 digits, the first not 0.
fn is_e164(number: &str) -> bool {
    number
        .strip_prefix('+')
        .is_some_and(|d| (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0'))
}

impl FakeTwilio {
    /// Starts a fake of the account `account_sid` that accepts only `auth_token`.
    pub async fn start(account_sid: &str, auth_token: &str) -> FakeTwilio {
        let shared = Arc::new(Shared {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            books: Mutex::default(),
        });
        let app = axum::Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", axum::routing::post(create_message))
            .fallback(unknown)
            .with_state(shared.clone());
        FakeTwilio { url: super::serve_on_loopback(app, "the Twilio fake").await, shared }
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

    /// The next well-formed requests get these answers, one each.
    pub fn fail_next(&self, failures: impl IntoIterator<Item = Failure>) {
        self.books().next_failures.extend(failures);
    }

    /// Every well-formed request gets `failure` until [`FakeTwilio::fix`].
    pub fn fail_always(&self, failure: Failure) {
        self.books().failing = Some(failure);
    }

    pub fn fix(&self) {
        let mut b = self.books();
        b.failing = None;
        b.next_failures.clear();
    }
}

async fn unknown(headers: HeaderMap, uri: axum::http::Uri, body: Bytes) -> Response {
    let _ = (headers, body);
    let (status, v) = error(404, 20404, &format!("The requested resource {} was not found", uri.path()));
    (StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND), axum::Json(v)).into_response()
}

async fn create_message(
    State(shared): State<Arc<Shared>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let authorization = header("authorization");
    let content_type = header("content-type");
    let form = parse_form(&body);
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", shared.account_sid, shared.auth_token))
    );
    let mut books = shared.books.lock().unwrap_or_else(|e| e.into_inner());
    let field = |name: &str| form.as_ref().and_then(|f| f.iter().find(|(k, _)| k == name)).map(|(_, v)| v.clone());
    let (status, answer, message_sid) = if sid != shared.account_sid {
        let (s, v) = error(
            404,
            20404,
            &format!("The requested resource /2010-04-01/Accounts/{sid}/Messages.json was not found"),
        );
        (s, v, None)
    } else if authorization.as_deref() != Some(expected_auth.as_str()) {
        let (s, v) = error(401, 20003, "Authenticate");
        (s, v, None)
    } else if !content_type.as_deref().is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
        || form.is_none()
    {
        let (s, v) = error(400, 0, "The request body is not application/x-www-form-urlencoded (fake Twilio)");
        (s, v, None)
    } else {
        let to = field("To");
        let from = field("From");
        let service = field("MessagingServiceSid");
        let text = field("Body");
        let checked = match (&to, &text) {
            (None, _) => Err(error(400, 21604, "A 'To' phone number is required.")),
            (Some(to), _) if !is_e164(to) => {
                Err(error(400, 21211, &format!("The 'To' number {to} is not a valid phone number.")))
            }
            _ if from.is_some() == service.is_some() => Err(error(400, 21603, "A 'From' phone number is required.")),
            (_, None) => Err(error(400, 21602, "Message body is required.")),
            (_, Some(t)) if t.encode_utf16().count() > 1600 => {
                Err(error(400, 21617, "The concatenated message body exceeds the 1600 character limit."))
            }
            _ => Ok(()),
        };
        let scripted = books.next_failures.pop_front().or_else(|| books.failing.clone());
        match (checked, scripted) {
            (Err((s, v)), _) => (s, v, None),
            (Ok(()), Some(f)) => {
                let (s, v) = error(f.status, f.code, &f.message);
                (s, v, None)
            }
            (Ok(()), None) => {
                books.next_sid += 1;
                let message_sid = format!("SM{:032x}", books.next_sid);
                let answer = json!({
                    "account_sid": shared.account_sid, "api_version": "2010-04-01", "body": text,
                    "date_created": "Tue, 01 Dec 2026 22:00:00 +0000", "date_sent": null, "date_updated": "Tue, 01 Dec 2026 22:00:00 +0000",
                    "direction": "outbound-api", "error_code": null, "error_message": null, "from": from,
                    "messaging_service_sid": service, "num_media": "0", "num_segments": "1", "price": null,
                    "price_unit": "USD", "sid": message_sid,
                    "status": if service.is_some() { "accepted" } else { "queued" }, "to": to,
                    "uri": format!("/2010-04-01/Accounts/{}/Messages/{message_sid}.json", shared.account_sid)
                });
                (201, answer, Some(message_sid))
            }
        }
    };
    books.calls.push(Call {
        path: format!("/2010-04-01/Accounts/{sid}/Messages.json"),
        authorization,
        content_type,
        form: form.unwrap_or_default(),
        status,
        sid: message_sid,
    });
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(answer)).into_response()
}
