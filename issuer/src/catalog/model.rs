//! The catalog's data: what the organizer sends, what buyers see (events, ticket types and add-ons with
//! availability), the validation of each field, and the cache of event structures that orders are priced
//! from. Nothing here touches the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::time::TimeInput;
use crate::error::{Error, Result};

/// A present field, with `null` told apart from absence: absent = `None`, `null` = `Some(None)`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `PATCH /admin/v1/events/{id}`: the organizer's settings of an event; absent fields stay as they are.
/// Times may be Unix seconds or local times in the event's zone (the new zone when `timezone` changes too).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub venue: Option<String>,
    #[serde(default)]
    pub starts_at: Option<TimeInput>,
    #[serde(default)]
    pub ends_at: Option<TimeInput>,
    #[serde(default)]
    pub timezone: Option<String>,
    /// `null` removes the cap.
    #[serde(default, deserialize_with = "present")]
    pub max_tickets_per_email: Option<Option<i64>>,
}

/// `PATCH /admin/v1/events/{id}/ticket-types/{index}`: absent fields stay as they are. The index never
/// changes, so tickets already issued keep naming this type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketTypeSettings {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub price_cents: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub capacity: Option<i64>,
    /// `null` opens the window on that side.
    #[serde(default, deserialize_with = "present")]
    pub sales_start: Option<Option<TimeInput>>,
    #[serde(default, deserialize_with = "present")]
    pub sales_end: Option<Option<TimeInput>>,
    #[serde(default)]
    pub reentry: Option<bool>,
    #[serde(default)]
    pub at_door_allowed: Option<bool>,
    #[serde(default)]
    pub hidden: Option<bool>,
    #[serde(default)]
    pub sales_stopped: Option<bool>,
    /// `null` takes the type out of its shared quota.
    #[serde(default, deserialize_with = "present")]
    pub quota_id: Option<Option<i64>>,
}

/// `PATCH /admin/v1/events/{id}/addons/{index}`: absent fields stay as they are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddonSettings {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub price_cents: Option<i64>,
    #[serde(default)]
    pub capacity: Option<i64>,
    #[serde(default)]
    pub hidden: Option<bool>,
    #[serde(default)]
    pub sales_stopped: Option<bool>,
}

/// `POST /admin/v1/events/{id}/quotas`: one capacity shared by the ticket types that join it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewQuota {
    pub name: String,
    pub capacity: i64,
}

/// `PATCH /admin/v1/events/{id}/quotas/{quota_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSettings {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub capacity: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    pub name: String,
    pub venue: String,
    /// Unix seconds, or a local time (`2026-12-29T19:00`) in `timezone`.
    pub starts_at: TimeInput,
    pub ends_at: TimeInput,
    /// IANA time zone name, e.g. `Europe/Berlin`.
    pub timezone: String,
    /// Most tickets one email address may order for the event (see [`email_key`]); none: no cap.
    #[serde(default)]
    pub max_tickets_per_email: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTicketType {
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub capacity: i64,
    #[serde(default)]
    pub sales_start: Option<TimeInput>,
    #[serde(default)]
    pub sales_end: Option<TimeInput>,
    #[serde(default)]
    pub reentry: bool,
    /// Whether customers may choose to pay at the door for this type. Off unless the organizer turns it on:
    /// an at-door order is confirmed (and its tickets issued) before anyone has paid.
    #[serde(default)]
    pub at_door_allowed: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub sales_stopped: bool,
    /// The shared quota (of the same event) this type also counts against.
    #[serde(default)]
    pub quota_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAddon {
    pub name: String,
    pub price_cents: i64,
    pub capacity: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TicketTypeView {
    #[serde(skip)]
    pub id: i64,
    pub index: i64,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub capacity: i64,
    /// Tickets held or sold.
    pub reserved: i64,
    /// What can still be ordered: the type's own capacity left, or its quota's when that is smaller.
    pub available: i64,
    pub sales_start: Option<i64>,
    pub sales_end: Option<i64>,
    #[sqlx(try_from = "crate::db::Flag")]
    pub reentry: bool,
    #[sqlx(try_from = "crate::db::Flag")]
    pub at_door_allowed: bool,
    #[sqlx(try_from = "crate::db::Flag")]
    pub hidden: bool,
    #[sqlx(try_from = "crate::db::Flag")]
    pub sales_stopped: bool,
    pub quota_id: Option<i64>,
    #[sqlx(skip)]
    pub on_sale: bool,
    /// The sales window as `datetime-local` values in the event's zone (for the dashboard's forms).
    #[sqlx(skip)]
    pub sales_start_local: Option<String>,
    #[sqlx(skip)]
    pub sales_end_local: Option<String>,
}

impl TicketTypeView {
    /// Whether it can be ordered at Unix time `t`: listed, not stopped, and within its sales window.
    pub fn on_sale_at(&self, t: i64) -> bool {
        !self.hidden
            && !self.sales_stopped
            && self.sales_start.is_none_or(|s| t >= s)
            && self.sales_end.is_none_or(|e| t <= e)
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AddonView {
    #[serde(skip)]
    pub id: i64,
    pub index: i64,
    pub name: String,
    pub price_cents: i64,
    pub capacity: i64,
    pub reserved: i64,
    pub available: i64,
    #[sqlx(try_from = "crate::db::Flag")]
    pub hidden: bool,
    #[sqlx(try_from = "crate::db::Flag")]
    pub sales_stopped: bool,
}

impl AddonView {
    /// Whether it can be added to new orders.
    pub fn on_sale(&self) -> bool {
        !self.hidden && !self.sales_stopped
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct QuotaView {
    pub id: i64,
    pub name: String,
    pub capacity: i64,
    pub reserved: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EventView {
    pub id: i64,
    pub name: String,
    pub venue: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub timezone: String,
    pub max_tickets_per_email: Option<i64>,
    /// Start and end in the event's zone: `datetime-local` values and as people read them
    /// (`Tue 29 Dec 2026, 19:00 CET`).
    #[sqlx(skip)]
    pub starts_local: String,
    #[sqlx(skip)]
    pub ends_local: String,
    #[sqlx(skip)]
    pub starts_display: String,
    #[sqlx(skip)]
    pub ends_display: String,
    #[sqlx(skip)]
    pub ticket_types: Vec<TicketTypeView>,
    #[sqlx(skip)]
    pub addons: Vec<AddonView>,
    #[sqlx(skip)]
    pub quotas: Vec<QuotaView>,
}

impl EventView {
    /// What buyers see: hidden ticket types and add-ons, and add-ons taken off sale, left out. (Ticket
    /// types taken off sale stay, marked not on sale.)
    pub fn for_buyers(mut self) -> Self {
        self.ticket_types.retain(|t| !t.hidden);
        self.addons.retain(AddonView::on_sale);
        self
    }
}

pub(super) fn validate_currency(c: &str) -> Result<String> {
    if c.len() == 3 && c.chars().all(|c| c.is_ascii_alphabetic()) {
        Ok(c.to_ascii_uppercase())
    } else {
        Err(Error::validation("currency", "must be a three-letter ISO 4217 code such as EUR"))
    }
}

pub(super) fn validate_money(field: &'static str, cents: i64) -> Result<i64> {
    if (0..=100_000_000).contains(&cents) {
        Ok(cents)
    } else {
        Err(Error::validation(field, "must be between 0 and 100000000 (minor units)"))
    }
}

/// Most tickets per email address an organizer can set as the cap (more would be no cap at all).
pub const MAX_TICKETS_PER_EMAIL_CAP: i64 = 1_000_000;

pub(super) fn validate_email_cap(cap: Option<i64>) -> Result<Option<i64>> {
    match cap {
        Some(c) if !(1..=MAX_TICKETS_PER_EMAIL_CAP).contains(&c) => Err(Error::validation(
            "max_tickets_per_email",
            format!("must be between 1 and {MAX_TICKETS_PER_EMAIL_CAP}, or absent for no cap"),
        )),
        other => Ok(other),
    }
}

/// The address an order counts against for an event's ticket cap: lower case, without a `+tag` in the
/// local part, because `Ada+1@Example.org` reaches the same mailbox as `ada@example.org`. (Provider-specific
/// aliases such as dots in Gmail addresses are not folded: the cap is a brake on casual hoarding, not an
/// identity check.)
pub fn email_key(email: &str) -> String {
    let email = email.trim().to_lowercase();
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            let local = local.split_once('+').map_or(local, |(base, _)| base);
            // `+tag@x` has no base: keep it whole rather than fold every such address into one.
            if local.is_empty() {
                email
            } else {
                format!("{local}@{domain}")
            }
        }
        None => email,
    }
}

pub(super) fn validate_capacity(capacity: i64) -> Result<i64> {
    if (0..=10_000_000).contains(&capacity) {
        Ok(capacity)
    } else {
        Err(Error::validation("capacity", "must be between 0 and 10000000"))
    }
}

/// How long a cached event structure may be used for pricing before it is read again. Catalog writes clear
/// the cache of every instance at once ([`super::changes`]); this bounds staleness only while an instance's
/// listener for those changes is reconnecting.
const PRICING_CACHE_TTL: Duration = Duration::from_secs(2);

/// Events as needed to validate and price orders: names, prices, sales windows and indices, which change
/// rarely, while orders arrive by the thousand in a sales spike. Reading them from the cache saves three
/// queries per order. Availability in a cached view is stale and never used for a decision: capacity is
/// decided by the reservation `UPDATE` alone. Every catalog write clears the cache.
#[derive(Default)]
pub struct PricingCache {
    pub(super) generation: AtomicU64,
    events: RwLock<HashMap<i64, CachedEvent>>,
}

/// When it was read, the cache generation it was read in, and the event.
type CachedEvent = (Instant, u64, Arc<EventView>);

impl PricingCache {
    /// Forgets every cached event (after a catalog write).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut events) = self.events.write() {
            events.clear();
        }
    }

    pub(super) fn get(&self, id: i64) -> Option<Arc<EventView>> {
        let events = self.events.read().ok()?;
        let (at, generation, event) = events.get(&id)?;
        (at.elapsed() < PRICING_CACHE_TTL && *generation == self.generation.load(Ordering::SeqCst))
            .then(|| event.clone())
    }

    pub(super) fn put(&self, generation: u64, event: Arc<EventView>) {
        if let Ok(mut events) = self.events.write() {
            // A view read before a concurrent catalog write must not be cached after that write cleared it.
            if generation == self.generation.load(Ordering::SeqCst) {
                events.insert(event.id, (Instant::now(), generation, event));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::email_key;

    #[test]
    fn email_key_folds_case_and_plus_tags_only() {
        assert_eq!(email_key("Ada@Example.org"), "ada@example.org");
        assert_eq!(email_key("ada+tickets@example.org"), "ada@example.org");
        assert_eq!(email_key("ADA+1+2@EXAMPLE.ORG"), "ada@example.org");
        // Different mailboxes stay different; a bare `+tag` is not folded into one shared key.
        assert_eq!(email_key("a.da@example.org"), "a.da@example.org");
        assert_eq!(email_key("+x@example.org"), "+x@example.org");
        assert_ne!(email_key("ada@example.org"), email_key("ada@example.com"));
    }
}
