//! The order form: `GET /events/{id}` shows the ticket types and add-ons with live availability and the
//! form; `POST /events/{id}/order` (a plain form post) places the order through
//! [`crate::orders::reserve::place_order`], the same function as the JSON API, then answers 303 to the
//! order page (settled at once) or to the payment provider's checkout. On an error the form is shown again
//! with the customer's input and a message.
//!
//! Cross-site request forgery: the form carries a random token that must equal the `tickets_csrf` cookie
//! (double submit). The cookie is `SameSite=Lax` and `HttpOnly`, so another site can neither read it nor
//! make the browser send it with a cross-site POST; requests whose `Origin` names another host are refused
//! as well.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use scanner_core::wire::constant_time_eq;

use super::html::{html_escape, html_response, page, when_html};
use super::{remember_locale, request_locale, LangQuery};
use crate::catalog::{load_event, EventView};
use crate::error::{Error, Result};
use crate::extract::Query;
use crate::i18n::Locale;
use crate::orders::model::{NewItem, NewOrder, MAX_TICKETS_PER_ORDER};
use crate::orders::reserve::{at_door_refused_for, place_order};
use crate::state::AppState;
use crate::util::random_token;

const CSRF_COOKIE: &str = "tickets_csrf";
/// Longest raw quantity text echoed back into a re-rendered form.
const MAX_ECHOED_QUANTITY_CHARS: usize = 8;
/// Longest holder name kept from a form post (longer ones are refused by validation, with this much shown).
const MAX_ECHOED_NAME_CHARS: usize = 2 * crate::orders::model::MAX_HOLDER_NAME_CHARS;

/// What the customer typed, kept verbatim so a rejected form comes back as it was sent.
#[derive(Debug, Default)]
struct OrderForm {
    name: String,
    email: String,
    /// The mobile number for the SMS with the order link, as typed (bounded); the field is there only
    /// where this server sends SMS.
    phone: String,
    /// Raw quantity text per ticket type index.
    quantities: BTreeMap<i64, String>,
    /// Chosen add-on indices per ticket type index.
    addons: BTreeMap<i64, BTreeSet<i64>>,
    /// The names for the tickets of each ticket type, as typed: the form's text area (one name a line)
    /// or, with order.js, one field per ticket (`holder_{index}`, repeated, in order).
    holders: BTreeMap<i64, Vec<String>>,
    /// `online` or `at_door`.
    payment: String,
    csrf: String,
    /// The language the form was shown in (a hidden field), so the answer to the post speaks it too.
    lang: String,
}

impl OrderForm {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut form = OrderForm::default();
        for (key, value) in pairs {
            match key.as_str() {
                "name" => form.name = value,
                "email" => form.email = value,
                // Longer input is refused by validation; this much is shown again.
                "phone" => form.phone = value.chars().take(2 * crate::sms::MAX_PHONE_INPUT_CHARS).collect(),
                "payment" => form.payment = value,
                "csrf" => form.csrf = value,
                "lang" => form.lang = value,
                _ => {
                    if let Some(tt) = key.strip_prefix("qty_").and_then(|i| i.parse::<i64>().ok()) {
                        let raw: String = value.trim().chars().take(MAX_ECHOED_QUANTITY_CHARS).collect();
                        form.quantities.insert(tt, raw);
                    } else if let Some(tt) = key.strip_prefix("addons_").and_then(|i| i.parse::<i64>().ok()) {
                        if let Ok(addon) = value.parse::<i64>() {
                            form.addons.entry(tt).or_default().insert(addon);
                        }
                    } else if let Some(tt) = key.strip_prefix("holders_").and_then(|i| i.parse::<i64>().ok()) {
                        // The text area: one name a line (kept verbatim, bounded, for the re-rendered form).
                        let names = form.holders.entry(tt).or_default();
                        for line in value.lines().take(MAX_TICKETS_PER_ORDER as usize + 1) {
                            names.push(line.chars().take(MAX_ECHOED_NAME_CHARS).collect());
                        }
                    } else if let Some(tt) = key.strip_prefix("holder_").and_then(|i| i.parse::<i64>().ok()) {
                        let names = form.holders.entry(tt).or_default();
                        if names.len() <= MAX_TICKETS_PER_ORDER as usize {
                            names.push(value.chars().take(MAX_ECHOED_NAME_CHARS).collect());
                        }
                    }
                }
            }
        }
        form
    }

    /// The order lines: every ticket type with a quantity above zero. Problems are told in `locale`.
    fn items(&self, locale: Locale) -> Result<Vec<NewItem>, FormError> {
        let mut items = Vec::new();
        for (&tt, raw) in &self.quantities {
            if raw.is_empty() {
                continue;
            }
            let quantity = raw.parse::<i64>().map_err(|_| {
                FormError::field(
                    "quantity",
                    locale.tr("form-error-quantity-number", &[("max", MAX_TICKETS_PER_ORDER.into())]),
                )
            })?;
            if quantity < 0 {
                return Err(FormError::field("quantity", locale.text("form-error-quantity-negative")));
            }
            if quantity > 0 {
                let addons = self.addons.get(&tt).map(|a| a.iter().copied().collect()).unwrap_or_default();
                let mut holders = self.holders.get(&tt).cloned().unwrap_or_default();
                // Trailing blank lines of the text area name nobody.
                while holders.last().is_some_and(|n| n.trim().is_empty()) {
                    holders.pop();
                }
                if holders.len() as i64 > quantity {
                    return Err(FormError::field(
                        "holders",
                        locale.tr(
                            "form-error-holders-count",
                            &[("names", holders.len().into()), ("quantity", quantity.into())],
                        ),
                    ));
                }
                items.push(NewItem { ticket_type: tt, quantity, addons, holders });
            }
        }
        if items.is_empty() {
            return Err(FormError::field("quantity", locale.text("form-error-choose")));
        }
        Ok(items)
    }

    /// The total of the chosen tickets and add-ons at catalog prices, for display and to tell a free order
    /// from a paid one. `place_order` prices the order itself; this never decides what is charged.
    fn display_total(&self, event: &EventView) -> i64 {
        let mut total = 0i64;
        for tt in &event.ticket_types {
            let qty = self.quantities.get(&tt.index).and_then(|q| q.parse::<i64>().ok()).unwrap_or(0).clamp(0, 1000);
            let chosen = self.addons.get(&tt.index);
            let addons: i64 = event
                .addons
                .iter()
                .filter(|a| chosen.is_some_and(|c| c.contains(&a.index)))
                .map(|a| a.price_cents)
                .sum();
            total = total.saturating_add((tt.price_cents + addons).saturating_mul(qty));
        }
        total
    }
}

/// A message for the customer and the field it is about.
#[derive(Debug)]
struct FormError {
    status: StatusCode,
    /// The form field (one of `name`, `email`, `phone`, `quantity`, `addons`, `holders`, `payment`) or none.
    field: Option<&'static str>,
    message: String,
}

impl FormError {
    fn field(field: &'static str, message: impl Into<String>) -> Self {
        FormError { status: StatusCode::UNPROCESSABLE_ENTITY, field: Some(field), message: message.into() }
    }

    /// Turns an error of `place_order` into words a customer can act on, in `locale`: a message per field
    /// (the API's own message is English and stays in the API).
    /// `at_door_refused` names the chosen ticket types that cannot be paid at the door, so that refusal says
    /// which ones (as the page's script does before submitting).
    fn from_order_error(e: Error, locale: Locale, at_door_refused: &[&str]) -> Self {
        let status = e.status();
        match e {
            Error::Validation { field: "payment", .. } if !at_door_refused.is_empty() => {
                let message = locale.tr("form-error-at-door-refused", &[("types", at_door_refused.join(", ").into())]);
                FormError { status, field: Some("payment"), message }
            }
            Error::Validation { field, .. } => {
                let (field, message_id) = match field {
                    "name" => ("name", "form-error-name"),
                    "email" => ("email", "form-error-email"),
                    "phone" => ("phone", "form-error-phone"),
                    "addons" => ("addons", "form-error-addons"),
                    "holder_name" | "holders" => ("holders", "form-error-holders"),
                    "payment" => ("payment", "form-error-payment"),
                    _ => ("quantity", "form-error-tickets"),
                };
                let message = locale.tr(message_id, &[("max", MAX_TICKETS_PER_ORDER.into())]);
                FormError { status, field: Some(field), message }
            }
            Error::RateLimited { .. } => {
                FormError { status, field: Some("phone"), message: locale.text("form-error-phone-limit") }
            }
            Error::Conflict(_) => {
                FormError { status, field: Some("quantity"), message: locale.text("form-error-sold-out") }
            }
            Error::Payment(_) => {
                FormError { status, field: None, message: locale.text("form-error-payment-unreachable") }
            }
            Error::NotFound(_) => FormError { status, field: None, message: locale.text("form-error-not-found") },
            other => {
                tracing::error!(error = %other, "order form: placing the order failed");
                FormError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    field: None,
                    message: locale.text("form-error-internal"),
                }
            }
        }
    }
}

pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The CSRF token of this browser: the one in its cookie if well formed, else a fresh one.
fn csrf_token(headers: &HeaderMap) -> String {
    match cookie(headers, CSRF_COOKIE) {
        Some(t) if t.len() == 43 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {
            t.to_owned()
        }
        _ => random_token(32),
    }
}

fn set_csrf_cookie(resp: &mut Response, state: &AppState, token: &str) {
    let secure = if state.public_url.starts_with("https://") { "; Secure" } else { "" };
    if let Ok(v) = HeaderValue::from_str(&format!("{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax{secure}")) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Whether a form post comes from a page of this server: the `Origin` header, when the browser sends one,
/// must name this host (as the request's `Host`, or as the configured public URL when a proxy in front
/// rewrites `Host`), and the form's token must equal the cookie's.
fn same_origin_post(state: &AppState, headers: &HeaderMap, form_token: &str) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let same_host = !origin_host.is_empty() && origin_host.eq_ignore_ascii_case(host);
        if !same_host && !origin.eq_ignore_ascii_case(&state.public_url) {
            return false;
        }
    }
    match cookie(headers, CSRF_COOKIE) {
        Some(c) => !form_token.is_empty() && constant_time_eq(c.as_bytes(), form_token.as_bytes()),
        None => false,
    }
}

pub(super) async fn event_page(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Result<Response> {
    let event = load_event(&state, id).await?;
    let token = csrf_token(&headers);
    let locale = request_locale(&headers, q.lang.as_deref());
    let form = OrderForm { payment: "online".into(), ..OrderForm::default() };
    let html = render_event_page(&state, locale, &event, &form, &token, None);
    let mut resp = html_response(StatusCode::OK, html);
    set_csrf_cookie(&mut resp, &state, &token);
    remember_locale(&mut resp, &state, q.lang.as_deref());
    Ok(resp)
}

pub(super) async fn submit_order(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    form: std::result::Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response> {
    let event = load_event(&state, id).await?;
    let pairs = match form {
        Ok(Form(pairs)) => pairs,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(Error::PayloadTooLarge(crate::extract::MAX_BODY_BYTES))
        }
        Err(rejection) => return Err(Error::BadRequest(format!("not a form submission: {}", rejection.body_text()))),
    };
    let form = OrderForm::from_pairs(pairs);
    let token = csrf_token(&headers);
    let locale = request_locale(&headers, Some(form.lang.as_str()));
    let rerender = |event: &EventView, error: FormError| {
        let status = error.status;
        let html = render_event_page(&state, locale, event, &form, &token, Some(&error));
        let mut resp = html_response(status, html);
        set_csrf_cookie(&mut resp, &state, &token);
        resp
    };
    if !same_origin_post(&state, &headers, &form.csrf) {
        // A stale or missing cookie (or a post from another site): nothing is ordered. A real customer gets
        // the form back with a fresh token and only has to submit again.
        return Ok(rerender(
            &event,
            FormError { status: StatusCode::FORBIDDEN, field: None, message: locale.text("form-error-session") },
        ));
    }
    let items = match form.items(locale) {
        Ok(items) => items,
        Err(e) => return Ok(rerender(&event, e)),
    };
    // Pay at the door only means something for a paid order; a free one is always `free`. Whether the
    // organizer allows it for these tickets is place_order's decision (a 422 on `payment` otherwise).
    let paid = form.display_total(&event) > 0;
    let payment = (form.payment == "at_door" && paid).then(|| "at_door".to_owned());
    if paid && payment.is_none() && state.payments.stripe().is_none() {
        return Ok(rerender(&event, FormError::field("payment", locale.text("form-error-no-online-payment"))));
    }
    let at_door_refused: Vec<String> = match payment {
        Some(_) => at_door_refused_for(&event, &items).into_iter().map(str::to_owned).collect(),
        None => Vec::new(),
    };
    let request = NewOrder {
        event_id: id,
        name: form.name.clone(),
        email: form.email.clone(),
        locale: Some(locale.tag().to_owned()),
        items,
        payment,
        phone: Some(form.phone.clone()),
    };
    match place_order(&state, request).await {
        Ok(created) => {
            let target = match created.checkout_url {
                Some(url) => url,
                // Same origin, relative: the order page of this server whatever its public URL says.
                None => format!("/orders/{}?token={}", created.order_id, created.token),
            };
            Ok(Redirect::to(&target).into_response())
        }
        Err(e) => {
            // Show what is left now (the reason may be that another buyer just took the last seats).
            let fresh = load_event(&state, id).await.unwrap_or(event.clone());
            let refused: Vec<&str> = at_door_refused.iter().map(String::as_str).collect();
            Ok(rerender(&fresh, FormError::from_order_error(e, locale, &refused)))
        }
    }
}

/// The words order.js shows, in `locale`, as a JSON data block (not run as script; the CSP allows no inline
/// script). Placeholders stay `{name}` for the script to fill.
fn script_messages(locale: Locale) -> String {
    let keep = |name: &'static str| (name, crate::i18n::Arg::from(format!("{{{name}}}")));
    let messages = serde_json::json!({
        "at-door-blocked": locale.tr("js-at-door-blocked", &[keep("types")]),
        "fill-in": locale.text("js-fill-in"),
        "email-format": locale.text("js-email-format"),
        "at-most": locale.tr("js-at-most", &[keep("max")]),
        "negative": locale.text("form-error-quantity-negative"),
        "whole-number": locale.text("js-whole-number"),
        "choose": locale.text("form-error-choose"),
        "placing": locale.text("js-placing"),
        "submit": locale.text("form-submit"),
        "holder": locale.tr("js-holder", &[keep("type"), keep("n")]),
        "sold-out": locale.text("sold-out"),
        "addon-sold-out": locale.text("form-addon-sold-out"),
        "left": locale.tr("form-left", &[keep("count")]),
    });
    // `</` cannot end the block early.
    format!(
        "<script type=\"application/json\" id=\"order-messages\">{}</script>",
        messages.to_string().replace("</", "<\\/")
    )
}

fn render_event_page(
    state: &AppState,
    locale: Locale,
    event: &EventView,
    form: &OrderForm,
    csrf: &str,
    error: Option<&FormError>,
) -> String {
    let currency = event.ticket_types.first().map(|t| t.currency.as_str()).unwrap_or("EUR");
    let text = |id: &str| html_escape(&locale.text(id));
    let tr = |id: &str, args: &[(&str, crate::i18n::Arg<'_>)]| html_escape(&locale.tr(id, args));
    let money = |cents: i64, currency: &str| locale.money(cents, currency);
    let here = format!("/events/{}", event.id);
    let error_for = |field: &str| error.filter(|e| e.field == Some(field)).map(|e| e.message.as_str());
    let field_attrs = |field: &str| {
        if error_for(field).is_some() {
            format!(" aria-invalid=\"true\" aria-describedby=\"{field}-error\"")
        } else {
            String::new()
        }
    };
    let field_error = |field: &str| {
        error_for(field)
            .map(|m| format!("<p class=\"field-error\" id=\"{field}-error\">{}</p>", html_escape(m)))
            .unwrap_or_default()
    };

    let mut out = String::new();
    out.push_str(&format!(
        "<h1>{}</h1><p class=\"meta\">{} · {}</p>",
        html_escape(&event.name),
        html_escape(&event.venue),
        when_html(locale, event.starts_at, &event.timezone)
    ));
    if let Some(e) = error {
        // Focused on load (autofocus without script, and again by order.js) so a screen reader announces it.
        let target = match e.field {
            Some("name") => "#name",
            Some("email") => "#email",
            Some("phone") => "#phone",
            Some("payment") => "#payment",
            Some("holders") => "#holders",
            Some(_) => "#tickets",
            None => "#order-form",
        };
        out.push_str(&format!(
            "<div class=\"error-summary\" id=\"error-summary\" role=\"alert\" tabindex=\"-1\" autofocus>\
<h2>{problem}</h2><ul><li><a href=\"{target}\">{}</a></li></ul></div>",
            html_escape(&e.message),
            problem = text("form-problem"),
        ));
    }

    let on_sale: Vec<_> = event.ticket_types.iter().filter(|t| t.on_sale).collect();
    if on_sale.is_empty() {
        out.push_str(&format!("<p>{}</p>", text("form-not-on-sale")));
        return page(locale, &html_escape(&event.name), &out, None, Some(&here));
    }

    out.push_str(&format!(
        "<form method=\"post\" action=\"/events/{id}/order\" id=\"order-form\" data-event=\"{id}\" \
data-currency=\"{cur}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"lang\" value=\"{lang}\">",
        id = event.id,
        lang = locale.tag(),
        cur = html_escape(currency),
        csrf = html_escape(csrf)
    ));
    out.push_str(&format!(
        "<h2 id=\"tickets\" tabindex=\"-1\">{}</h2>{}",
        text("form-tickets"),
        field_error("quantity")
    ));
    for tt in &on_sale {
        let available = tt.available.max(0);
        let max = available.min(MAX_TICKETS_PER_ORDER);
        let qty = form.quantities.get(&tt.index).map(String::as_str).unwrap_or("0");
        let price =
            if tt.price_cents == 0 { text("form-free") } else { html_escape(&money(tt.price_cents, &tt.currency)) };
        let availability = if available == 0 {
            format!("<span class=\"soldout\">{}</span>", text("sold-out"))
        } else {
            tr("form-left", &[("count", available.into())])
        };
        out.push_str(&format!(
            "<fieldset class=\"ticket-type\" data-index=\"{idx}\" data-price=\"{cents}\" data-at-door=\"{door}\">\
<legend>{name}</legend><p><span class=\"price\">{price}</span> · <span class=\"availability\" \
data-ticket-type=\"{idx}\" aria-live=\"polite\">{availability}</span></p>\
<label for=\"qty_{idx}\">{quantity_label}</label>\
<input type=\"number\" id=\"qty_{idx}\" name=\"qty_{idx}\" inputmode=\"numeric\" min=\"0\" max=\"{max}\" \
value=\"{qty}\"{disabled}{invalid}>",
            idx = tt.index,
            cents = tt.price_cents,
            door = tt.at_door_allowed,
            name = html_escape(&tt.name),
            quantity_label = tr("form-quantity-label", &[("type", tt.name.as_str().into())]),
            disabled = if available == 0 { " disabled" } else { "" },
            invalid = field_attrs("quantity"),
            qty = html_escape(qty),
        ));
        // Hidden add-ons and those taken off sale are not offered (the order would be refused).
        if event.addons.iter().any(|a| a.on_sale()) {
            out.push_str(&format!("<p class=\"hint\">{}</p>", text("form-addons-hint")));
            for addon in event.addons.iter().filter(|a| a.on_sale()) {
                let checked = form.addons.get(&tt.index).is_some_and(|a| a.contains(&addon.index));
                let addon_price = if addon.price_cents == 0 {
                    text("form-addon-free")
                } else {
                    html_escape(&format!("+{}", money(addon.price_cents, currency)))
                };
                let left = addon.available.max(0);
                out.push_str(&format!(
                    "<label class=\"check\"><input type=\"checkbox\" name=\"addons_{tt}\" value=\"{a}\" \
data-price=\"{cents}\"{checked}{disabled}> {name} ({addon_price}) · <span class=\"availability\" \
data-addon=\"{a}\">{left_text}</span></label>",
                    tt = tt.index,
                    a = addon.index,
                    cents = addon.price_cents,
                    checked = if checked { " checked" } else { "" },
                    disabled = if left == 0 { " disabled" } else { "" },
                    name = html_escape(&addon.name),
                    left_text = if left == 0 {
                        text("form-addon-sold-out")
                    } else {
                        tr("form-left", &[("count", left.into())])
                    },
                ));
            }
        }
        out.push_str("</fieldset>");
    }

    out.push_str(&format!(
        "<h2>{details}</h2><label for=\"name\">{name_label}</label>{name_err}\
<input type=\"text\" id=\"name\" name=\"name\" autocomplete=\"name\" required maxlength=\"100\" value=\"{name}\"{name_attrs}>\
<label for=\"email\">{email_label}</label>{email_err}\
<input type=\"email\" id=\"email\" name=\"email\" autocomplete=\"email\" required maxlength=\"254\" value=\"{email}\"{email_attrs}>",
        details = text("form-your-details"),
        name_label = text("form-name-label"),
        email_label = text("form-email-label"),
        name = html_escape(&form.name),
        email = html_escape(&form.email),
        name_err = field_error("name"),
        email_err = field_error("email"),
        name_attrs = field_attrs("name"),
        email_attrs = field_attrs("email"),
    ));
    if crate::sms::offered(&state.config) {
        out.push_str(&format!(
            "<label for=\"phone\">{label}</label>{err}<input type=\"tel\" id=\"phone\" name=\"phone\" \
autocomplete=\"tel\" maxlength=\"{max}\" value=\"{phone}\"{attrs}>",
            label = html_escape(&locale.text("form-phone-label")),
            max = crate::sms::MAX_PHONE_INPUT_CHARS,
            phone = html_escape(&form.phone),
            err = field_error("phone"),
            attrs = field_attrs("phone"),
        ));
    }

    // A name per ticket, optional: without script one text area per ticket type (one name a line); order.js
    // turns each into one field per ticket as the quantities change. Every name is escaped here and
    // validated by place_order (bounded length, no control characters).
    out.push_str(&format!(
        "<fieldset id=\"holders\" tabindex=\"-1\"><legend>{}</legend><p class=\"hint\" id=\"holders-hint\">{}</p>{}",
        text("form-holders-legend"),
        text("form-holders-hint"),
        field_error("holders")
    ));
    for tt in &on_sale {
        let names = form.holders.get(&tt.index).map(|n| n.join("\n")).unwrap_or_default();
        out.push_str(&format!(
            "<div class=\"holder-names\" data-index=\"{idx}\" data-name=\"{name}\"><label for=\"holders_{idx}\">{label}</label><textarea id=\"holders_{idx}\" name=\"holders_{idx}\" rows=\"2\" \
{described}>{names}</textarea></div>",
            idx = tt.index,
            name = html_escape(&tt.name),
            label = tr("form-holders-label", &[("type", tt.name.as_str().into())]),
            described = if error_for("holders").is_some() {
                "aria-invalid=\"true\" aria-describedby=\"holders-error holders-hint\""
            } else {
                "aria-describedby=\"holders-hint\""
            },
            names = html_escape(&names),
        ));
    }
    out.push_str("</fieldset>");

    let any_priced = on_sale.iter().any(|t| t.price_cents > 0) || event.addons.iter().any(|a| a.price_cents > 0);
    if any_priced {
        let online = state.payments.stripe().is_some();
        // Pay at the door only where the organizer allows it; the server checks the order again
        // (catalog::check_at_door), whatever the form posts.
        let door_types: Vec<&str> = on_sale.iter().filter(|t| t.at_door_allowed).map(|t| t.name.as_str()).collect();
        let at_door = !door_types.is_empty();
        let at_door_checked = at_door && (!online || form.payment == "at_door");
        out.push_str(&format!(
            "<fieldset id=\"payment\" tabindex=\"-1\"><legend>{}</legend>{}",
            text("form-payment-legend"),
            field_error("payment")
        ));
        if !online && !at_door {
            out.push_str(&format!("<p class=\"hint\">{}</p>", text("form-payment-none")));
        }
        if online {
            out.push_str(&format!(
                "<label class=\"check\"><input type=\"radio\" id=\"payment-online\" name=\"payment\" value=\"online\"{}> {}</label>",
                if at_door_checked { "" } else { " checked" },
                text("form-pay-online")
            ));
        }
        if at_door {
            let label = if door_types.len() == on_sale.len() {
                text("form-pay-at-door")
            } else {
                tr("form-pay-at-door-only", &[("types", door_types.join(", ").into())])
            };
            out.push_str(&format!(
                "<label class=\"check\"><input type=\"radio\" id=\"payment-at-door\" name=\"payment\" \
value=\"at_door\"{}> {label}</label>",
                if at_door_checked { " checked" } else { "" }
            ));
        }
        out.push_str("</fieldset>");
    }

    let total = form.display_total(event);
    out.push_str(&format!(
        "<p class=\"total\">{total_label} <output id=\"total\" for=\"order-form\" aria-live=\"polite\">{total}</output></p>\
<button type=\"submit\">{submit}</button></form>\
<p class=\"hint\">{lost} <a href=\"/lost-tickets\">{lost_link}</a>.</p>",
        total_label = text("form-total"),
        total = html_escape(&money(total, currency)),
        submit = text("form-submit"),
        lost = text("form-lost-tickets"),
        lost_link = text("form-lost-tickets-link"),
    ));
    out.push_str(&script_messages(locale));
    page(locale, &html_escape(&event.name), &out, Some("/static/order.js"), Some(&here))
}
