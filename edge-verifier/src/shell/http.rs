//! What the Worker and its Durable Objects share: variables, the clock, JSON answers, and requests from
//! one object to another.

use worker::wasm_bindgen::JsValue;
use worker::{console_error, Date, Env, Headers, Method, Request, RequestInit, Response, Stub};

use scanner_core::redemption::SyncChannel;

use crate::api::event_param;
use crate::error::{ConfigKind, Error, RequestKind};

pub(super) fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// A variable or, if there is none by that name, a secret.
pub(super) fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string()).or_else(|| env.secret(name).ok().map(|v| v.to_string()))
}

pub(super) fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

fn json_response(body: String, status: u16) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    headers.set("Cache-Control", "no-store")?;
    Ok(Response::from_bytes(body.into_bytes())?.with_status(status).with_headers(headers))
}

pub(super) fn json_ok(body: String) -> Result<Response, Error> {
    Ok(json_response(body, 200)?)
}

/// The answer for an error: its status and scanner-core's wire `ErrorBody` (both decided by
/// [`Error::status`] and [`Error::body`]). A failure of the edge's own is logged here, so a Durable
/// Object's answer is in the log even when its caller only sees the status.
pub(super) fn error_response(e: &Error) -> worker::Result<Response> {
    if e.status() >= 500 {
        console_error!("edge error: {e}");
    }
    json_response(e.to_json(), e.status())
}

/// A Durable Object's answer: the response, or the error as JSON with its status.
pub(super) fn respond(result: Result<Response, Error>) -> worker::Result<Response> {
    match result {
        Ok(resp) => Ok(resp),
        Err(e) => error_response(&e),
    }
}

/// A response of type `content_type`.
pub(super) fn typed(resp: Response, content_type: &str) -> Result<Response, Error> {
    let headers = Headers::new();
    headers.set("Content-Type", content_type)?;
    Ok(resp.with_headers(headers))
}

/// The Durable Object `name` of namespace `binding`.
pub(super) fn stub(env: &Env, binding: &'static str, name: &str) -> Result<Stub, Error> {
    let stub = env.durable_object(binding).and_then(|ns| ns.id_from_name(name)?.get_stub());
    Ok(stub.map_err(|e| {
        console_error!("Durable Object {binding}/{name}: {e}");
        ConfigKind::MissingBinding(binding)
    })?)
}

/// A request from the Worker to a Durable Object (or to the issuer).
pub(super) fn internal_request(
    url: &str,
    method: Method,
    body: Option<JsValue>,
    headers: &[(&str, &str)],
) -> Result<Request, Error> {
    let h = Headers::new();
    for (name, value) in headers {
        h.set(name, value)?;
    }
    let mut init = RequestInit::new();
    init.with_method(method).with_body(body).with_headers(h);
    Ok(Request::new_with_init(url, &init)?)
}

/// A POST of a JSON message to a Durable Object.
pub(super) fn json_request(url: &str, body: &str) -> Result<Request, Error> {
    internal_request(url, Method::Post, Some(JsValue::from_str(body)), &[])
}

/// Sends an internal request and passes the answer (status, type, body) through unchanged.
pub(super) async fn pass_through(stub: &Stub, req: Request, what: &str) -> Result<Response, Error> {
    let mut resp = stub.fetch_with_request(req).await.map_err(|e| unavailable(what, e))?;
    let status = resp.status_code();
    let content_type = resp.headers().get("Content-Type").ok().flatten();
    let body = resp.bytes().await?;
    let headers = Headers::new();
    if let Some(ct) = content_type {
        headers.set("Content-Type", &ct)?;
    }
    headers.set("Cache-Control", "no-store")?;
    Ok(Response::from_bytes(body)?.with_status(status).with_headers(headers))
}

/// Sends an internal request that must be answered 200, and returns the answer.
pub(super) async fn send_ok(stub: &Stub, req: Request, what: &str) -> Result<Response, Error> {
    let resp = stub.fetch_with_request(req).await.map_err(|e| unavailable(what, e))?;
    if resp.status_code() != 200 {
        console_error!("{what} answered HTTP {}", resp.status_code());
        return Err(Error::Internal);
    }
    Ok(resp)
}

fn unavailable(what: &str, e: worker::Error) -> Error {
    console_error!("{what} unavailable: {e}");
    Error::Internal
}

/// The request's query parameters (400 if its URL cannot be read).
fn query(req: &Request) -> Result<Vec<(String, String)>, Error> {
    // The runtime parsed this URL to route the request; failing now is the client's URL, not the edge.
    let url = req.url().map_err(|e| {
        console_error!("request URL: {e}");
        RequestKind::Url
    })?;
    Ok(url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
}

/// The value of query parameter `name`, if given.
pub(super) fn query_value(req: &Request, name: &str) -> Result<Option<String>, Error> {
    Ok(query(req)?.into_iter().find(|(k, _)| k == name).map(|(_, v)| v))
}

/// Whether the query has `name=value`.
pub(super) fn query_flag(req: &Request, name: &str, value: &str) -> Result<bool, Error> {
    Ok(query(req)?.iter().any(|(k, v)| k == name && v == value))
}

/// The `event` query parameter (`api::event_param`).
pub(super) fn query_event(req: &Request) -> Result<u32, Error> {
    let pairs = query(req)?;
    event_param(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// The `channel` query parameter of a sync request: `push`, `pull` or `relay` (see `SyncChannel`).
pub(super) fn query_channel(req: &Request) -> Result<SyncChannel, Error> {
    query_value(req, "channel")?.as_deref().and_then(SyncChannel::parse).ok_or_else(|| RequestKind::NoChannel.into())
}
