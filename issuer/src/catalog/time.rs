//! Event times in the event's own IANA time zone: validating the zone name, reading the organizer's local
//! wall-clock times ("2026-12-29T19:00" in Europe/Berlin) and showing stored Unix times the same way on the
//! order pages and in the dashboard. The store keeps Unix seconds only; the zone is a property of the event.
//!
//! The time zone database is bundled into the binary (jiff's `tzdb-bundle-always`), so an event validates
//! and displays the same on every host whatever its `/usr/share/zoneinfo`.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Deserialize;

use crate::error::{Error, Result};

/// Latest time an event or a sales window may be at: ticket fields are 32-bit Unix times (before 2106).
pub const LATEST_UNIX: i64 = u32::MAX as i64 - 86_400;

/// The zone, or a 422 on `field`. Returns the canonical IANA name (`europe/berlin` → `Europe/Berlin`).
pub fn validate_timezone(name: &str) -> Result<(String, TimeZone)> {
    let bad = || Error::validation("timezone", "must be an IANA time zone name such as Europe/Berlin");
    let name = name.trim();
    // Bounded and plain before the lookup: the name is later written into HTML attributes and JSON.
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'))
    {
        return Err(bad());
    }
    let tz = TimeZone::get(name).map_err(|_| bad())?;
    let canonical = tz.iana_name().unwrap_or(name).to_owned();
    Ok((canonical, tz))
}

/// The zone of an event already stored. Events stored before zones were validated may name one this build
/// does not know: those are shown in UTC rather than failing the page.
pub fn zone_or_utc(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or(TimeZone::UTC)
}

/// A time as the organizer sends it: Unix seconds, or a local wall-clock time (`YYYY-MM-DDTHH:MM`, as an
/// HTML `datetime-local` input gives it) in the event's time zone.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TimeInput {
    Unix(i64),
    Local(String),
}

impl TimeInput {
    /// Unix seconds, or a 422 on `field`. A local time that falls into a daylight-saving gap is moved
    /// forward by the gap and one that occurs twice is the earlier one (RFC 5545 / Temporal "compatible").
    pub fn to_unix(&self, field: &'static str, tz: &TimeZone) -> Result<i64> {
        let secs = match self {
            TimeInput::Unix(secs) => *secs,
            TimeInput::Local(text) => {
                let bad = || Error::validation(field, "must be Unix seconds or a local time such as 2026-12-29T19:00");
                if text.len() > 32 {
                    return Err(bad());
                }
                let civil: DateTime = text.trim().parse().map_err(|_| bad())?;
                tz.to_ambiguous_zoned_datetime(civil).compatible().map_err(|_| bad())?.timestamp().as_second()
            }
        };
        if !(0..=LATEST_UNIX).contains(&secs) {
            return Err(Error::validation(field, "must be between 1970 and 2106"));
        }
        Ok(secs)
    }
}

fn zoned(secs: i64, tz: &TimeZone) -> Option<jiff::ZonedDateTime> {
    Some(Timestamp::from_second(secs).ok()?.to_zoned_datetime(tz.clone()))
}

/// `2026-12-29T19:00`: the value of a `datetime-local` input showing `secs` in `tz`.
pub fn local_input(secs: i64, tz: &TimeZone) -> String {
    zoned(secs, tz).map(|z| z.strftime("%Y-%m-%dT%H:%M").to_string()).unwrap_or_default()
}

/// `Tue 29 Dec 2026, 19:00 CET`: `secs` as people in `tz` read it.
pub fn display(secs: i64, tz: &TimeZone) -> String {
    zoned(secs, tz).map(|z| z.strftime("%a %-d %b %Y, %H:%M %Z").to_string()).unwrap_or_default()
}

/// `19:00 CET` when `end` falls on the same local day as `start`, else the whole [`display`] form.
pub fn display_end(start: i64, end: i64, tz: &TimeZone) -> String {
    match (zoned(start, tz), zoned(end, tz)) {
        (Some(s), Some(e)) if s.date() == e.date() => e.strftime("%H:%M %Z").to_string(),
        _ => display(end, tz),
    }
}

/// `2026-12-29 19:00:00`: `secs` in `tz` in the form every spreadsheet reads as a date and time (the CSV
/// exports; their header names the zone).
pub fn spreadsheet(secs: i64, tz: &TimeZone) -> String {
    zoned(secs, tz).map(|z| z.strftime("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

/// `2026-12-29T18:00:00Z`: the machine-readable form for `<time datetime>`.
pub fn iso_utc(secs: i64) -> String {
    Timestamp::from_second(secs).map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreadsheet_times_are_local() {
        // 1796140800 is 2026-12-01 16:00:00 UTC (`date -u -d @1796140800`); Berlin is UTC+1 in December.
        assert_eq!(spreadsheet(1_796_140_800, &TimeZone::UTC), "2026-12-01 16:00:00");
        let berlin = zone_or_utc("Europe/Berlin");
        assert_eq!(spreadsheet(1_796_140_800, &berlin), "2026-12-01 17:00:00");
        assert_eq!(spreadsheet(951_782_400, &TimeZone::UTC), "2000-02-29 00:00:00");
    }

    #[test]
    fn local_times_convert_in_the_events_zone() {
        let (name, berlin) = validate_timezone("europe/berlin").unwrap();
        assert_eq!(name, "Europe/Berlin");
        // 2026-12-29 19:00 in Berlin is CET (UTC+1): 18:00 UTC = 1798567200.
        let t = TimeInput::Local("2026-12-29T19:00".into()).to_unix("starts_at", &berlin).unwrap();
        assert_eq!(t, 1_798_567_200);
        assert_eq!(local_input(t, &berlin), "2026-12-29T19:00");
        assert_eq!(display(t, &berlin), "Tue 29 Dec 2026, 19:00 CET");
        assert_eq!(display_end(t, t + 3 * 3600, &berlin), "22:00 CET");
        assert_eq!(display_end(t, t + 8 * 3600, &berlin), "Wed 30 Dec 2026, 03:00 CET");
        assert_eq!(iso_utc(t), "2026-12-29T18:00:00Z");
        // Summer time: 2026-07-01 19:00 CEST = 17:00 UTC = 1782925200.
        let s = TimeInput::Local("2026-07-01T19:00".into()).to_unix("starts_at", &berlin).unwrap();
        assert_eq!(s, 1_782_925_200);
    }

    #[test]
    fn bad_zones_and_times_are_refused() {
        for bad in ["", "Mars/Olympus", "Europe/Berlin<script>", "../../etc/passwd", &"A".repeat(65)] {
            assert!(validate_timezone(bad).is_err(), "{bad}");
        }
        let utc = TimeZone::UTC;
        for bad in ["tomorrow", "2026-13-01T10:00", "", "2026-12-29T25:00"] {
            assert!(TimeInput::Local(bad.into()).to_unix("starts_at", &utc).is_err(), "{bad}");
        }
        assert!(TimeInput::Unix(-1).to_unix("starts_at", &utc).is_err());
        assert!(TimeInput::Unix(LATEST_UNIX + 1).to_unix("starts_at", &utc).is_err());
    }
}
