//! A ticket in the customer's phone wallet: an Apple Wallet pass ([`apple`], a signed `.pkpass` per ticket)
//! and a "Save to Google Wallet" link ([`google`], an RS256-signed JWT of an event-ticket object). Both
//! carry the ticket's exact QR text, so the code a wallet shows is the code the order page, the mail and
//! the PDF show, and scanners verify it offline as any other.
//!
//! Each wallet is on only when the organizer configured it (Apple: pass type id, team id, pass certificate,
//! its private key and Apple's WWDR certificate; Google: issuer id and service-account key). The key
//! material is read and checked once at start-up ([`Wallet::from_config`], in [`keys`], the one part the
//! application state holds); a file that cannot be used
//! stops the start with an error naming the file, never its content. Without configuration neither the
//! order page nor the ticket mail offers the link, and the routes answer 404.
//!
//! The routes sit under the order page's URL and take its access token, exactly as the PDF and the QR
//! image do: a wrong token, another order's ticket or a revoked ticket (refund, cancellation) is a 404
//! revealing nothing. Both links lead to the issuer, which builds the pass or the JWT at the moment of the
//! click from the stored ticket: a link in an old mail to a ticket refunded since no longer saves it.

pub mod apple;
mod content;
pub mod google;
pub mod keys;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

pub use keys::{PassIdentity, Wallet};

use super::model::load_order;
use super::{live_ticket, TokenQuery};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::extract::Query;
use crate::i18n::Locale;
use crate::pages::html::html_escape;
use crate::state::AppState;

/// The wallet links of ticket `seq` of the order whose page is `order_url` (the order page's URL with its
/// access query, absolute in the mail, relative on the page): each wallet's label in `locale` and its link,
/// only for the wallets `config` turns on ([`Wallet::from_config`] refused to start with a partial one).
pub fn ticket_links(config: &Config, locale: Locale, order_url: &str, seq: i64) -> Vec<(String, String)> {
    let (page, query) = order_url.split_once('?').unwrap_or((order_url, ""));
    let mut links = Vec::new();
    if config.apple_pass_type_id.is_some() {
        links.push((locale.text("wallet-apple-link"), format!("{page}/tickets/{seq}/pass.pkpass?{query}")));
    }
    if config.google_wallet_issuer_id.is_some() {
        links.push((locale.text("wallet-google-link"), format!("{page}/tickets/{seq}/google-wallet?{query}")));
    }
    links
}

/// [`ticket_links`] as one HTML paragraph (empty when no wallet is on), every part escaped.
pub fn ticket_links_html(config: &Config, locale: Locale, order_url: &str, seq: i64) -> String {
    let links = ticket_links(config, locale, order_url, seq);
    if links.is_empty() {
        return String::new();
    }
    let anchors: Vec<String> = links
        .iter()
        .map(|(label, url)| format!("<a href=\"{}\">{}</a>", html_escape(url), html_escape(label)))
        .collect();
    format!("<p class=\"wallet\">{}</p>", anchors.join(" · "))
}

/// `GET /orders/{id}/tickets/{seq}/pass.pkpass?token=`: the ticket's signed Apple Wallet pass.
pub(super) async fn apple_pass(
    State(state): State<AppState>,
    Path((id, seq)): Path<(String, i64)>,
    Query(q): Query<TokenQuery>,
) -> Result<Response> {
    let signer = state.wallet.apple.as_ref().ok_or(Error::NotFound("page"))?;
    let order = load_order(&state, &id, Some(&q.token)).await?;
    let ticket = live_ticket(&order, seq)?;
    let pkpass = signer.pkpass(&order, ticket)?;
    let disposition = format!("attachment; filename=\"{}\"", apple::file_name(seq));
    Ok((
        [
            (header::CONTENT_TYPE, apple::CONTENT_TYPE.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::REFERRER_POLICY, "no-referrer".to_owned()),
        ],
        pkpass,
    )
        .into_response())
}

/// `GET /orders/{id}/tickets/{seq}/google-wallet?token=`: a 303 to Google's save page with the ticket's
/// signed JWT, made now from the stored ticket.
pub(super) async fn google_save(
    State(state): State<AppState>,
    Path((id, seq)): Path<(String, i64)>,
    Query(q): Query<TokenQuery>,
) -> Result<Response> {
    let signer = state.wallet.google.as_ref().ok_or(Error::NotFound("page"))?;
    let order = load_order(&state, &id, Some(&q.token)).await?;
    let ticket = live_ticket(&order, seq)?;
    let url = signer.save_url(&state.public_url, &order, ticket, crate::util::now())?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, url),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            // This request's URL holds the order's access token: Google's page must not receive it.
            (header::REFERRER_POLICY, "no-referrer".to_owned()),
        ],
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_follow_the_order_url_and_only_configured_wallets() {
        let mut config = Config::for_data_dir("/tmp/x");
        assert!(ticket_links(&config, Locale::En, "/orders/o1?token=abc", 0).is_empty());
        assert_eq!(ticket_links_html(&config, Locale::En, "/orders/o1?token=abc", 0), "");
        config.apple_pass_type_id = Some("pass.org.example".into());
        config.google_wallet_issuer_id = Some("3388000000012345678".into());
        assert_eq!(
            ticket_links(&config, Locale::De, "https://t.example/orders/o1?token=abc", 2),
            vec![
                (
                    "Zu Apple Wallet hinzufügen".to_owned(),
                    "https://t.example/orders/o1/tickets/2/pass.pkpass?token=abc".to_owned()
                ),
                (
                    "In Google Wallet speichern".to_owned(),
                    "https://t.example/orders/o1/tickets/2/google-wallet?token=abc".to_owned()
                ),
            ]
        );
        assert_eq!(
            ticket_links_html(&config, Locale::En, "/orders/o1?token=a&b", 0),
            "<p class=\"wallet\"><a href=\"/orders/o1/tickets/0/pass.pkpass?token=a&amp;b\">Add to Apple Wallet</a> · \
<a href=\"/orders/o1/tickets/0/google-wallet?token=a&amp;b\">Save to Google Wallet</a></p>"
        );
    }
}
