//! The customer's language: English, German and French for the order pages, the ticket mail, the PDF
//! tickets, passes and text messages.
//!
//! Every string a customer reads is a message in `issuer/locales/{en,de,fr}/*.ftl` ([Project
//! Fluent](https://projectfluent.org) syntax: arguments, plurals and selectors written by the translator,
//! not by code), compiled into the binary with `include_str!`, so nothing is read at run time. The messages
//! are formatted with `fluent-bundle`, the projectfluent team's maintained reference implementation.
//!
//! Dates, times and money are formatted here from locale data that is also in the catalog (day and month
//! names, the order of the parts, separators and currency symbols): `Saturday, 5 December 2026, 7:30 PM`,
//! `Samstag, 5. Dezember 2026, 19:30`, `samedi 5 décembre 2026 à 19:30`; `€25.00`, `25,00 €`, `25,00 €`
//! (French with a narrow no-break space). Times are always shown in the event's own zone.
//!
//! Adding a message: add it to the same file in all three languages with the same arguments (the test
//! `every_message_exists_in_every_language_with_the_same_arguments` fails otherwise). Adding a file: list
//! it in [`RESOURCES`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};
use fluent_langneg::{negotiate_languages, NegotiationStrategy};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use unic_langid::LanguageIdentifier;

/// An argument of a message: a string or a number (numbers select plural forms).
pub use fluent_bundle::FluentValue as Arg;

/// A language this system speaks. English is the fallback for every other language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Locale {
    #[default]
    En,
    De,
    Fr,
}

/// The files of one name in `locales/en`, `locales/de` and `locales/fr` (the order of [`Locale::ALL`]).
macro_rules! ftl {
    ($file:literal) => {
        (
            $file,
            [
                include_str!(concat!("../locales/en/", $file)),
                include_str!(concat!("../locales/de/", $file)),
                include_str!(concat!("../locales/fr/", $file)),
            ],
        )
    };
}

/// Every message file. A part of the system with strings of its own adds its file here.
const RESOURCES: &[(&str, [&str; 3])] = &[ftl!("common.ftl"), ftl!("pages.ftl"), ftl!("email.ftl")];

/// At most this many language ranges of an `Accept-Language` header are looked at (the header is the
/// client's to make as long as the server's header limit allows).
const MAX_LANGUAGE_RANGES: usize = 16;

static BUNDLES: LazyLock<[FluentBundle<FluentResource>; 3]> = LazyLock::new(|| Locale::ALL.map(Locale::bundle));

impl Locale {
    /// Every language, English first.
    pub const ALL: [Locale; 3] = [Locale::En, Locale::De, Locale::Fr];

    /// The BCP 47 tag: `en`, `de`, `fr` (for `<html lang>`, the `lang` parameter, the store).
    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::De => "de",
            Locale::Fr => "fr",
        }
    }

    /// The language stored with an order (`orders.locale`); English for anything else.
    pub fn stored(tag: &str) -> Locale {
        Locale::from_tag(tag).unwrap_or_default()
    }

    fn index(self) -> usize {
        match self {
            Locale::En => 0,
            Locale::De => 1,
            Locale::Fr => 2,
        }
    }

    fn langid(self) -> LanguageIdentifier {
        self.tag().parse().unwrap_or_default()
    }

    /// The language of a tag such as `de`, `de-AT` or `FR-ch`; `None` for a language this system does not
    /// speak or a malformed tag.
    pub fn from_tag(tag: &str) -> Option<Locale> {
        if tag.len() > 35 {
            return None;
        }
        let id: LanguageIdentifier = tag.trim().parse().ok()?;
        Locale::ALL.into_iter().find(|l| id.language == l.langid().language)
    }

    /// The best language for an `Accept-Language` header: ranges by their `q` weight (ties in the order
    /// given; `q=0` means "not this one"), each matched by its language (`de-AT` is German), English when
    /// none matches.
    pub fn negotiate(accept_language: &str) -> Locale {
        let mut ranges: Vec<(u16, usize, LanguageIdentifier)> = Vec::new();
        for (order, range) in accept_language.split(',').take(MAX_LANGUAGE_RANGES).enumerate() {
            let mut fields = range.split(';');
            let Some(Ok(tag)) = fields.next().map(|t| t.trim().parse::<LanguageIdentifier>()) else {
                continue;
            };
            let mut weight = Some(1000);
            for param in fields {
                if let Some(q) = param.trim().strip_prefix("q=").or_else(|| param.trim().strip_prefix("Q=")) {
                    weight =
                        q.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)).map(|q| (q * 1000.0) as u16);
                }
            }
            match weight {
                Some(w) if w > 0 => ranges.push((w, order, tag)),
                _ => {}
            }
        }
        ranges.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let requested: Vec<LanguageIdentifier> = ranges.into_iter().map(|(_, _, tag)| tag).collect();
        let available = Locale::ALL.map(Locale::langid);
        let chosen = negotiate_languages(&requested, &available, Some(&available[0]), NegotiationStrategy::Lookup);
        chosen
            .first()
            .and_then(|id| Locale::ALL.into_iter().find(|l| l.langid().language == id.language))
            .unwrap_or_default()
    }

    fn bundle(self) -> FluentBundle<FluentResource> {
        let mut bundle = FluentBundle::new_concurrent(vec![self.langid()]);
        // The text goes into HTML, mail, PDF and SMS, never into a bidirectional UI: no invisible isolation
        // marks around arguments (the PDF's standard fonts have no glyph for them).
        bundle.set_use_isolating(false);
        for (file, sources) in RESOURCES {
            let resource = match FluentResource::try_new(sources[self.index()].to_owned()) {
                Ok(resource) => resource,
                Err((resource, errors)) => {
                    tracing::error!(locale = self.tag(), file, ?errors, "message file has syntax errors");
                    resource
                }
            };
            if let Err(errors) = bundle.add_resource(resource) {
                tracing::error!(locale = self.tag(), file, ?errors, "message file repeats a message");
            }
        }
        bundle
    }

    /// The message `id` with `args`. A message missing from the catalog shows as its id and is logged (the
    /// unit tests make sure none is missing).
    pub fn tr(self, id: &str, args: &[(&str, Arg<'_>)]) -> String {
        let bundle = &BUNDLES[self.index()];
        let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
            tracing::error!(locale = self.tag(), id, "message missing from the catalog");
            return id.to_owned();
        };
        let mut fluent_args = FluentArgs::with_capacity(args.len());
        for (name, value) in args {
            fluent_args.set(*name, value.clone());
        }
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
        if !errors.is_empty() {
            tracing::error!(locale = self.tag(), id, ?errors, "message formatted with errors");
        }
        text.into_owned()
    }

    /// The message `id`, which has no arguments.
    pub fn text(self, id: &str) -> String {
        self.tr(id, &[])
    }

    /// `Saturday, 5 December 2026` / `Samstag, 5. Dezember 2026` / `samedi 5 décembre 2026`: the day of
    /// `secs` in `tz`.
    pub fn date(self, secs: i64, tz: &TimeZone) -> String {
        let Some(z) = zoned(secs, tz) else { return String::new() };
        let weekday = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            [usize::try_from(z.weekday().to_monday_zero_offset()).unwrap_or(0).min(6)];
        let month = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
            [usize::try_from(z.month() - 1).unwrap_or(0).min(11)];
        self.tr(
            "format-date",
            &[
                ("weekday", self.tr("weekday", &[("day", weekday.into())]).into()),
                ("day", z.day().to_string().into()),
                ("month", self.tr("month", &[("month", month.into())]).into()),
                ("year", z.year().to_string().into()),
            ],
        )
    }

    /// `7:30 PM` / `19:30` / `19:30`: the wall-clock time of `secs` in `tz`.
    pub fn time(self, secs: i64, tz: &TimeZone) -> String {
        let Some(z) = zoned(secs, tz) else { return String::new() };
        let hour = z.hour();
        let hour12 = match hour % 12 {
            0 => 12,
            h => h,
        };
        self.tr(
            "format-time",
            &[
                ("hour", format!("{hour:02}").into()),
                ("hour12", hour12.to_string().into()),
                ("minute", format!("{:02}", z.minute()).into()),
                ("period", if hour < 12 { "am" } else { "pm" }.into()),
            ],
        )
    }

    /// [`Locale::date`] and [`Locale::time`] together: `Saturday, 5 December 2026, 7:30 PM`.
    pub fn date_time(self, secs: i64, tz: &TimeZone) -> String {
        if zoned(secs, tz).is_none() {
            return String::new();
        }
        self.tr("format-date-time", &[("date", self.date(secs, tz).into()), ("time", self.time(secs, tz).into())])
    }

    /// `€1,234.50` / `1.234,50 €` / `1 234,50 €`: an amount in minor units (two decimals) of `currency` (an
    /// ISO 4217 code; one without a symbol in the catalog shows as its code).
    pub fn money(self, cents: i64, currency: &str) -> String {
        let sign = if cents < 0 { "-" } else { "" };
        let cents = cents.unsigned_abs();
        let group = self.text("number-group-separator");
        let units = (cents / 100).to_string();
        let mut grouped = String::with_capacity(units.len() + units.len() / 3 * group.len());
        for (i, digit) in units.chars().enumerate() {
            if i > 0 && (units.len() - i).is_multiple_of(3) {
                grouped.push_str(&group);
            }
            grouped.push(digit);
        }
        let amount = format!("{grouped}{}{:02}", self.text("number-decimal-separator"), cents % 100);
        let symbol = self.tr("currency-symbol", &[("code", currency.into())]);
        let formatted = if symbol.is_empty() {
            self.tr("format-money-code", &[("amount", amount.into()), ("code", currency.into())])
        } else {
            self.tr("format-money", &[("amount", amount.into()), ("symbol", symbol.into())])
        };
        format!("{sign}{formatted}")
    }
}

/// As its tag (`"de"`), in JSON answers.
impl serde::Serialize for Locale {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.tag())
    }
}

fn zoned(secs: i64, tz: &TimeZone) -> Option<jiff::ZonedDateTime> {
    Some(Timestamp::from_second(secs).ok()?.to_zoned_datetime(tz.clone()))
}

/// The variables each message (and attribute, as `id.attribute`) of one message file uses.
fn variables_by_message(source: &str) -> std::result::Result<BTreeMap<String, BTreeSet<String>>, String> {
    use fluent_syntax::ast::{Entry, Expression, InlineExpression, Pattern, PatternElement};

    fn inline(e: &InlineExpression<&str>, vars: &mut BTreeSet<String>) {
        match e {
            InlineExpression::VariableReference { id } => {
                vars.insert(id.name.to_owned());
            }
            InlineExpression::FunctionReference { arguments, .. } => {
                arguments.positional.iter().for_each(|a| inline(a, vars));
                arguments.named.iter().for_each(|a| inline(&a.value, vars));
            }
            InlineExpression::TermReference { arguments: Some(arguments), .. } => {
                arguments.positional.iter().for_each(|a| inline(a, vars));
                arguments.named.iter().for_each(|a| inline(&a.value, vars));
            }
            InlineExpression::Placeable { expression } => expr(expression, vars),
            _ => {}
        }
    }
    fn expr(e: &Expression<&str>, vars: &mut BTreeSet<String>) {
        match e {
            Expression::Select { selector, variants } => {
                inline(selector, vars);
                variants.iter().for_each(|v| pattern(&v.value, vars));
            }
            Expression::Inline(e) => inline(e, vars),
        }
    }
    fn pattern(p: &Pattern<&str>, vars: &mut BTreeSet<String>) {
        for element in &p.elements {
            if let PatternElement::Placeable { expression } = element {
                expr(expression, vars);
            }
        }
    }

    let resource = fluent_syntax::parser::parse(source).map_err(|(_, errors)| format!("{errors:?}"))?;
    let mut out = BTreeMap::new();
    for entry in &resource.body {
        let (id, value, attributes) = match entry {
            Entry::Message(m) => (m.id.name.to_owned(), m.value.as_ref(), &m.attributes),
            Entry::Term(t) => (format!("-{}", t.id.name), Some(&t.value), &t.attributes),
            Entry::Junk { content } => return Err(format!("unparsable: {content}")),
            _ => continue,
        };
        let mut vars = BTreeSet::new();
        if let Some(value) = value {
            pattern(value, &mut vars);
        }
        for attribute in attributes {
            let mut attribute_vars = BTreeSet::new();
            pattern(&attribute.value, &mut attribute_vars);
            out.insert(format!("{id}.{}", attribute.id.name), attribute_vars);
        }
        if out.insert(id.clone(), vars).is_some() {
            return Err(format!("{id} defined twice"));
        }
    }
    Ok(out)
}

/// The messages that describe a locale's formats pick from arguments the code always passes (English shows
/// a 12-hour clock, German a 24-hour one): their variables must come from these lists.
const FORMAT_ARGUMENTS: &[(&str, &[&str])] = &[
    ("format-date", &["weekday", "day", "month", "year"]),
    ("format-time", &["hour", "hour12", "minute", "period"]),
    ("format-date-time", &["date", "time"]),
    ("format-money", &["amount", "symbol"]),
    ("format-money-code", &["amount", "code"]),
];

/// Every problem of the catalog: a file that does not parse, a message missing in a language, a message
/// whose arguments differ between languages. Empty when all is well.
pub fn catalog_problems() -> Vec<String> {
    let mut problems = Vec::new();
    for (file, sources) in RESOURCES {
        let mut parsed = Vec::new();
        for (locale, source) in Locale::ALL.iter().zip(sources) {
            match variables_by_message(source) {
                Ok(vars) => parsed.push((*locale, vars)),
                Err(e) => problems.push(format!("{}/{file}: {e}", locale.tag())),
            }
        }
        let ids: BTreeSet<&String> = parsed.iter().flat_map(|(_, vars)| vars.keys()).collect();
        for id in ids {
            let allowed = FORMAT_ARGUMENTS.iter().find(|(f, _)| f == id).map(|(_, a)| a);
            let mut reference: Option<&BTreeSet<String>> = None;
            for (locale, vars) in &parsed {
                let Some(these) = vars.get(id) else {
                    problems.push(format!("{}/{file}: {id} is missing", locale.tag()));
                    continue;
                };
                match allowed {
                    Some(allowed) => {
                        for v in these.iter().filter(|v| !allowed.contains(&v.as_str())) {
                            problems
                                .push(format!("{}/{file}: {id} uses ${v}, which the code does not pass", locale.tag()));
                        }
                    }
                    None => match reference {
                        None => reference = Some(these),
                        Some(r) if r != these => problems.push(format!(
                            "{}/{file}: {id} has the arguments {these:?}, the other languages {r:?}",
                            locale.tag()
                        )),
                        Some(_) => {}
                    },
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_exists_in_every_language_with_the_same_arguments() {
        assert_eq!(catalog_problems(), Vec::<String>::new());
    }

    #[test]
    fn every_message_formats_without_errors_in_every_language() {
        for locale in Locale::ALL {
            let bundle = &BUNDLES[locale.index()];
            for (_, sources) in RESOURCES {
                for (id, vars) in variables_by_message(sources[locale.index()]).unwrap() {
                    if id.starts_with('-') || id.contains('.') {
                        continue;
                    }
                    let message = bundle.get_message(&id).unwrap();
                    let mut args = FluentArgs::new();
                    for v in &vars {
                        args.set(v.clone(), 2);
                    }
                    let mut errors = Vec::new();
                    let _ = bundle.format_pattern(message.value().unwrap(), Some(&args), &mut errors);
                    assert!(errors.is_empty(), "{}: {id}: {errors:?}", locale.tag());
                }
            }
        }
    }

    #[test]
    fn a_missing_message_shows_its_id() {
        assert_eq!(Locale::De.text("no-such-message"), "no-such-message");
    }

    #[test]
    fn accept_language_picks_by_weight_and_falls_back_to_english() {
        let cases = [
            ("de", Locale::De),
            ("de-AT", Locale::De),
            ("de-CH,de;q=0.9,en;q=0.8", Locale::De),
            ("fr-CA", Locale::Fr),
            ("en-US,en;q=0.9", Locale::En),
            ("en-US;q=0.5, de;q=0.9", Locale::De),
            ("da, fr;q=0.7, de;q=0.8", Locale::De),
            ("da, en-GB;q=0.8, en;q=0.7", Locale::En),
            ("it, es;q=0.9", Locale::En),
            ("pt-BR", Locale::En),
            ("*", Locale::En),
            ("", Locale::En),
            ("de;q=0, fr;q=0.1", Locale::Fr),
            ("de;q=0", Locale::En),
            ("de;q=2, fr", Locale::Fr),
            ("de;q=abc, fr;q=0.2", Locale::Fr),
            ("FR-be", Locale::Fr),
            (";;;,,,q=1", Locale::En),
        ];
        for (header, expected) in cases {
            assert_eq!(Locale::negotiate(header), expected, "{header:?}");
        }
    }

    #[test]
    fn tags_name_languages() {
        assert_eq!(Locale::from_tag("de-AT"), Some(Locale::De));
        assert_eq!(Locale::from_tag("fr"), Some(Locale::Fr));
        assert_eq!(Locale::from_tag("EN"), Some(Locale::En));
        assert_eq!(Locale::from_tag("es"), None);
        assert_eq!(Locale::from_tag("<script>"), None);
        assert_eq!(Locale::from_tag(""), None);
    }

    #[test]
    fn dates_and_times_read_as_in_each_language() {
        // 1796495400 = 2026-12-05 18:30 UTC (`date -u -d @1796495400`): 19:30 in Berlin (CET, UTC+1), a
        // Saturday.
        let berlin = crate::catalog::time::zone_or_utc("Europe/Berlin");
        let t = 1_796_495_400;
        assert_eq!(Locale::En.date_time(t, &berlin), "Saturday, 5 December 2026, 7:30 PM");
        assert_eq!(Locale::De.date_time(t, &berlin), "Samstag, 5. Dezember 2026, 19:30");
        assert_eq!(Locale::Fr.date_time(t, &berlin), "samedi 5 décembre 2026 à 19:30");
        // The same instant in New York (EST, UTC−5) is 13:30 the same day; the morning and midnight.
        let new_york = crate::catalog::time::zone_or_utc("America/New_York");
        assert_eq!(Locale::En.time(t, &new_york), "1:30 PM");
        assert_eq!(Locale::De.time(t, &new_york), "13:30");
        // 2026-03-01 00:05 UTC (1772323500): a Sunday, midnight hour.
        let utc = TimeZone::UTC;
        assert_eq!(Locale::En.date_time(1_772_323_500, &utc), "Sunday, 1 March 2026, 12:05 AM");
        assert_eq!(Locale::De.date_time(1_772_323_500, &utc), "Sonntag, 1. März 2026, 00:05");
        assert_eq!(Locale::Fr.date_time(1_772_323_500, &utc), "dimanche 1 mars 2026 à 00:05");
        // 2026-08-17 09:05 UTC (1786957500): a Monday in August, a morning.
        assert_eq!(Locale::En.date_time(1_786_957_500, &utc), "Monday, 17 August 2026, 9:05 AM");
        assert_eq!(Locale::De.date_time(1_786_957_500, &utc), "Montag, 17. August 2026, 09:05");
        assert_eq!(Locale::Fr.date_time(1_786_957_500, &utc), "lundi 17 août 2026 à 09:05");
    }

    #[test]
    fn money_reads_as_in_each_language() {
        assert_eq!(Locale::En.money(2500, "EUR"), "€25.00");
        assert_eq!(Locale::De.money(2500, "EUR"), "25,00\u{a0}€");
        assert_eq!(Locale::Fr.money(2500, "EUR"), "25,00\u{202f}€");
        assert_eq!(Locale::En.money(123_456_789, "EUR"), "€1,234,567.89");
        assert_eq!(Locale::De.money(123_456_789, "EUR"), "1.234.567,89\u{a0}€");
        assert_eq!(Locale::Fr.money(123_456_789, "EUR"), "1\u{202f}234\u{202f}567,89\u{202f}€");
        assert_eq!(Locale::En.money(-505, "GBP"), "-£5.05");
        assert_eq!(Locale::En.money(0, "USD"), "$0.00");
        assert_eq!(Locale::De.money(100_000, "CHF"), "1.000,00\u{a0}CHF");
        assert_eq!(Locale::En.money(100_000, "CHF"), "CHF\u{a0}1,000.00");
    }
}
