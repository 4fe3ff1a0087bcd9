//! An order's tickets as a PDF: one A4 page per valid ticket, each with the ticket's QR code drawn as
//! vector rectangles from scanner-core's module matrix (sharp at any zoom and on any printer), the event's
//! name, venue and local time in the event's own time zone, the ticket type and add-ons, the holder and the
//! order reference. Served from the order page (same access token) and attached to the ticket mail.
//!
//! Text is set in the standard Helvetica with WinAnsiEncoding, which every PDF reader has built in, so no
//! font is embedded and the file stays a few kilobytes a page. WinAnsi covers Latin-1 (English, German,
//! French, Spanish, …); any other character (Arabic, Hebrew, CJK, emoji) is printed as `?` rather than
//! breaking the file. The size is bounded by the order: one page per ticket, and an order holds at most
//! [`super::model::MAX_TICKETS_PER_ORDER`] tickets; every text field is cut to a few lines.

use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use scanner_core::qr::render::Modules;

use super::model::{OrderView, TicketView};
use crate::catalog::time::zone_or_utc;
use crate::error::{Error, Result};
use crate::i18n::Locale;

/// Points per millimetre (a PDF point is 1/72 inch).
const PT_PER_MM: f32 = 72.0 / 25.4;
/// A4 portrait, the paper most of the world prints on (a US Letter printer scales it by 97%).
const PAGE_WIDTH: f32 = 210.0 * PT_PER_MM;
const PAGE_HEIGHT: f32 = 297.0 * PT_PER_MM;
const MARGIN: f32 = 20.0 * PT_PER_MM;
/// The QR code's side including its 4-module quiet zone: 80 mm. Even at version 6 (41 modules + 8 quiet)
/// a module is 1.6 mm, well above what a phone camera at arm's length or a door scanner needs, and the
/// printed page survives a cheap printer's bleed.
pub const QR_SIDE_MM: f32 = 80.0;
/// The quiet zone around the code, in modules (as the PNG and SVG renderings have).
const QUIET_MODULES: usize = 4;
/// Longest line of text, in characters, per point of font size: Helvetica's average Latin letter is
/// about 0.5 em, so this keeps a line within the margins for ordinary text. Text is not measured glyph by
/// glyph (no font metrics are bundled): a line of only wide capitals (`WWW…`) may run into the right
/// margin, though never over the QR code or another field, since lines only stack downwards.
const CHARS_PER_LINE_AT_1PT: f32 = (PAGE_WIDTH - 2.0 * MARGIN) / 0.55;
/// Lines any one field may take; longer text is cut with "...".
const MAX_LINES: usize = 3;

/// The font resources' names in every page's content stream.
const REGULAR: Name<'static> = Name(b"F1");
const BOLD: Name<'static> = Name(b"F2");

/// The PDF of `order`'s valid (not revoked) tickets, one page each; `NotFound` when it has none (pending,
/// refunded or cancelled orders).
pub fn tickets_pdf(order: &OrderView) -> Result<Vec<u8>> {
    tickets_pdf_of(order, &live_codes(order)?)
}

/// `order`'s valid (not revoked) tickets, each with its QR code encoded; `NotFound` when it has none.
pub fn live_codes(order: &OrderView) -> Result<Vec<(&TicketView, Modules)>> {
    let live: Vec<(&TicketView, Modules)> = order
        .tickets
        .iter()
        .filter(|t| !t.revoked)
        .map(|t| Ok((t, scanner_core::qr::render::modules(&t.qr_text).map_err(Error::internal)?)))
        .collect::<Result<_>>()?;
    if live.is_empty() {
        return Err(Error::NotFound("ticket"));
    }
    Ok(live)
}

/// [`tickets_pdf`] of tickets whose codes are already encoded ([`live_codes`]): the ticket mail encodes
/// each code once for its inline image and for the PDF.
pub fn tickets_pdf_of(order: &OrderView, live: &[(&TicketView, Modules)]) -> Result<Vec<u8>> {
    if live.is_empty() {
        return Err(Error::NotFound("ticket"));
    }
    let catalog_id = Ref::new(1);
    let page_tree_id = Ref::new(2);
    let regular_id = Ref::new(3);
    let bold_id = Ref::new(4);
    let info_id = Ref::new(5);
    // Two objects per page (the page and its content stream) after the five above.
    let page_ids: Vec<Ref> = (0..live.len()).map(|i| Ref::new(6 + 2 * i as i32)).collect();

    let mut pdf = Pdf::new();
    pdf.catalog(catalog_id).pages(page_tree_id);
    pdf.pages(page_tree_id).kids(page_ids.iter().copied()).count(live.len() as i32);
    pdf.type1_font(regular_id).base_font(Name(b"Helvetica")).encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold_id).base_font(Name(b"Helvetica-Bold")).encoding_predefined(Name(b"WinAnsiEncoding"));
    // The document title is a Unicode text string, so it keeps the event's name whatever its script.
    let title = order.locale.tr("pdf-title", &[("event", order.event.name.as_str().into())]);
    pdf.document_info(info_id).title(TextStr(&title)).creator(TextStr("issuer"));

    let when = when(order.locale, order);
    let total = order.tickets.len();
    for ((ticket, modules), page_id) in live.iter().zip(&page_ids) {
        let content_id = Ref::new(page_id.get() + 1);
        let content = ticket_page(order, ticket, modules, &when, total);
        let mut page = pdf.page(*page_id);
        page.parent(page_tree_id).media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT)).contents(content_id);
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        fonts.pair(REGULAR, regular_id);
        fonts.pair(BOLD, bold_id);
        fonts.finish();
        resources.finish();
        page.finish();
        // Compressed: the QR's rectangles are hundreds of near-identical operators, so a page shrinks from
        // ~19 KB to a few, which keeps a full order's mail attachment small.
        pdf.stream(content_id, &miniz_oxide::deflate::compress_to_vec_zlib(&content, 6)).filter(Filter::FlateDecode);
    }
    Ok(pdf.finish())
}

/// `tickets-ORDER.pdf`, with anything but letters, digits, `-` and `_` left out of the order id, so the
/// name is safe in a Content-Disposition header and as a file name on every system.
pub fn file_name(order_id: &str) -> String {
    let id: String = order_id.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).collect();
    format!("tickets-{id}.pdf")
}

/// `Tuesday, 29 December 2026, 7:00 PM CET – 10:00 PM CET`: start and end in `locale` in the event's time
/// zone, as the order page shows them (the end with its date when it is on another local day). The ticket
/// mail says the same.
pub(crate) fn when(locale: Locale, order: &OrderView) -> String {
    let tz = zone_or_utc(&order.event.timezone);
    let (start, end) = (order.event.starts_at, order.event.ends_at);
    let zone = |secs: i64| {
        jiff::Timestamp::from_second(secs)
            .map(|t| t.to_zoned_datetime(tz.clone()).strftime("%Z").to_string())
            .unwrap_or_default()
    };
    let end_text = if locale.date(start, &tz) == locale.date(end, &tz) {
        locale.time(end, &tz)
    } else {
        locale.date_time(end, &tz)
    };
    format!("{} {} \u{2013} {end_text} {}", locale.date_time(start, &tz), zone(start), zone(end))
}

/// One ticket's page content, top to bottom: ticket number, event, venue and time, the QR code centred,
/// then what the ticket is, whose it is and the order it belongs to.
fn ticket_page(order: &OrderView, ticket: &TicketView, modules: &Modules, when: &str, total: usize) -> Vec<u8> {
    let mut page = PageWriter { content: Content::new(), y: PAGE_HEIGHT - MARGIN };
    let locale = order.locale;
    page.lines(REGULAR, 11.0, &locale.tr("pdf-ticket-of", &[("n", (ticket.seq + 1).into()), ("total", total.into())]));
    page.gap(6.0);
    page.lines(BOLD, 22.0, &order.event.name);
    page.lines(REGULAR, 13.0, &order.event.venue);
    page.lines(REGULAR, 13.0, when);
    page.gap(18.0);
    let side = QR_SIDE_MM * PT_PER_MM;
    page.qr(modules, (PAGE_WIDTH - side) / 2.0, page.y - side, side);
    page.y -= side + 18.0;
    let addons = if ticket.addons.is_empty() { String::new() } else { format!(" + {}", ticket.addons.join(", ")) };
    page.lines(BOLD, 15.0, &format!("{}{}", ticket.ticket_type_name, addons));
    page.lines(REGULAR, 13.0, &locale.tr("pdf-holder", &[("name", ticket.holder_name.as_str().into())]));
    page.lines(REGULAR, 11.0, &locale.tr("pdf-order", &[("id", order.id.as_str().into())]));
    if order.payment_method == "at_door" && order.total_cents > 0 {
        let amount = locale.money(order.total_cents, &order.currency);
        page.lines(BOLD, 11.0, &locale.tr("pdf-pay-at-door", &[("amount", amount.into())]));
    }
    page.gap(12.0);
    page.lines(REGULAR, 10.0, &locale.text("pdf-instructions"));
    page.content.finish().to_vec()
}

/// A page's content stream with a cursor running down the page.
struct PageWriter {
    content: Content,
    /// The top of the next line, in points from the bottom of the page.
    y: f32,
}

impl PageWriter {
    /// `text` in `font` at `size`, wrapped to the margins and cut to [`MAX_LINES`] lines.
    fn lines(&mut self, font: Name<'_>, size: f32, text: &str) {
        let width = (CHARS_PER_LINE_AT_1PT / size) as usize;
        for line in wrap(text, width, MAX_LINES) {
            self.y -= size * 1.25;
            self.content.begin_text();
            self.content.set_font(font, size);
            self.content.next_line(MARGIN, self.y);
            self.content.show(Str(&win_ansi(&line)));
            self.content.end_text();
        }
    }

    fn gap(&mut self, points: f32) {
        self.y -= points;
    }

    /// The code with its quiet zone in the `side`-point square whose bottom-left corner is (`x`, `y`).
    /// Each horizontal run of dark modules is one rectangle: fewer operators than one per module, and no
    /// hairline seams where a viewer anti-aliases the edges of adjacent squares.
    fn qr(&mut self, modules: &Modules, x: f32, y: f32, side: f32) {
        let module = side / (modules.width + 2 * QUIET_MODULES) as f32;
        let origin_x = x + QUIET_MODULES as f32 * module;
        let top = y + side - QUIET_MODULES as f32 * module;
        self.content.set_fill_gray(0.0);
        for row in 0..modules.width {
            let mut col = 0;
            while col < modules.width {
                if !modules.is_dark(col, row) {
                    col += 1;
                    continue;
                }
                let start = col;
                while col < modules.width && modules.is_dark(col, row) {
                    col += 1;
                }
                let bottom = top - (row + 1) as f32 * module;
                self.content.rect(origin_x + start as f32 * module, bottom, (col - start) as f32 * module, module);
            }
        }
        self.content.fill_nonzero();
    }
}

/// `text` in at most `max_lines` lines of at most `width` characters, broken at spaces where there are any;
/// text beyond the last line is cut and marked with "...". Control characters become spaces.
fn wrap(text: &str, width: usize, max_lines: usize) -> Vec<String> {
    let width = width.max(8);
    let chars: Vec<char> = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut lines = Vec::new();
    let mut rest = &chars[..];
    while !rest.is_empty() && lines.len() < max_lines {
        if rest.len() <= width {
            lines.push(rest.iter().collect::<String>());
            rest = &[];
            break;
        }
        // Break after the last space within the line, or mid-word if there is none.
        let cut = rest[..=width].iter().rposition(|c| *c == ' ').filter(|&i| i > 0).unwrap_or(width);
        lines.push(rest[..cut].iter().collect::<String>().trim_end().to_owned());
        rest = &rest[cut..];
        while rest.first() == Some(&' ') {
            rest = &rest[1..];
        }
    }
    if !rest.is_empty() {
        if let Some(last) = lines.last_mut() {
            let kept: String = last.chars().take(width.saturating_sub(3)).collect();
            *last = format!("{kept}...");
        }
    }
    lines
}

/// `text` in WinAnsiEncoding (Windows-1252), the encoding of the standard fonts: Latin-1 maps to itself,
/// the typographic extras of 0x80–0x9F (€, dashes, curly quotes, Œ, …) to their codes, anything else to
/// `?`. French writes a narrow no-break space before `€` and `:`; the standard fonts have none, so it is
/// printed as the (wider) no-break space.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' | '\u{a0}'..='\u{ff}' => c as u8,
            '\u{202f}' => 0xa0,
            _ => WIN_ANSI_EXTRAS.iter().find(|(u, _)| *u == c).map_or(b'?', |(_, b)| *b),
        })
        .collect()
}

/// The characters Windows-1252 places in 0x80–0x9F (where Latin-1 has control codes).
const WIN_ANSI_EXTRAS: [(char, u8); 27] = [
    ('\u{20ac}', 0x80),
    ('\u{201a}', 0x82),
    ('\u{0192}', 0x83),
    ('\u{201e}', 0x84),
    ('\u{2026}', 0x85),
    ('\u{2020}', 0x86),
    ('\u{2021}', 0x87),
    ('\u{02c6}', 0x88),
    ('\u{2030}', 0x89),
    ('\u{0160}', 0x8a),
    ('\u{2039}', 0x8b),
    ('\u{0152}', 0x8c),
    ('\u{017d}', 0x8e),
    ('\u{2018}', 0x91),
    ('\u{2019}', 0x92),
    ('\u{201c}', 0x93),
    ('\u{201d}', 0x94),
    ('\u{2022}', 0x95),
    ('\u{2013}', 0x96),
    ('\u{2014}', 0x97),
    ('\u{02dc}', 0x98),
    ('\u{2122}', 0x99),
    ('\u{0161}', 0x9a),
    ('\u{203a}', 0x9b),
    ('\u{0153}', 0x9c),
    ('\u{017e}', 0x9e),
    ('\u{0178}', 0x9f),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn win_ansi_keeps_latin1_and_marks_the_rest() {
        // Bytes from the Windows-1252 code chart.
        assert_eq!(win_ansi("Grüße, Señor Ça"), b"Gr\xfc\xdfe, Se\xf1or \xc7a");
        assert_eq!(win_ansi("5 \u{20ac} \u{2013} \u{201c}x\u{201d}"), b"5 \x80 \x96 \x93x\x94");
        assert_eq!(win_ansi("\u{05e9}\u{05dc}\u{05d5}\u{05dd} \u{1f389}"), b"???? ?");
        assert_eq!(win_ansi("a\u{7}b"), b"a?b");
        // German and French: äöüß éèàçô and the French narrow no-break space before the euro sign.
        assert_eq!(win_ansi("äöüß éèàçô 25,00\u{202f}€"), b"\xe4\xf6\xfc\xdf \xe9\xe8\xe0\xe7\xf4 25,00\xa0\x80");
    }

    #[test]
    fn wrap_breaks_at_spaces_and_cuts_to_the_line_count() {
        assert_eq!(wrap("short", 20, 3), vec!["short"]);
        assert_eq!(wrap("aaaa bbbb cccc", 10, 3), vec!["aaaa bbbb", "cccc"]);
        assert_eq!(wrap(&"x".repeat(25), 10, 3), vec!["x".repeat(10), "x".repeat(10), "x".repeat(5)]);
        let cut = wrap(&"y".repeat(300), 10, 2);
        assert_eq!(cut, vec!["y".repeat(10), format!("{}...", "y".repeat(7))]);
        assert_eq!(wrap("a\nb", 10, 3), vec!["a b"]);
    }

    #[test]
    fn file_names_keep_only_safe_characters() {
        assert_eq!(file_name("ord_AB-12"), "tickets-ord_AB-12.pdf");
        assert_eq!(file_name("a\"; x=../..\r\n"), "tickets-ax.pdf");
    }
}
