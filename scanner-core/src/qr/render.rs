//! Rendering a ticket's QR text as SVG (web pages), PNG (email, files) and a module matrix (PDF).

use image::ImageEncoder;
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use thiserror::Error;

/// Error correction used for tickets: level M survives ~15% damage (a scratched screen, a crease in a
/// printout) while keeping the code at version 6 or below.
pub const TICKET_EC_LEVEL: EcLevel = EcLevel::M;

#[derive(Debug, Error)]
pub enum RenderKind {
    #[error("text does not fit in a QR code: {0}")]
    TooLong(qrcode::types::QrError),
    #[error("PNG encoding failed: {0}")]
    /// Boxed, as every image error here: image's error is large.
    Png(Box<image::ImageError>),
}

fn code(text: &str) -> Result<QrCode, RenderKind> {
    QrCode::with_error_correction_level(text.as_bytes(), TICKET_EC_LEVEL).map_err(RenderKind::TooLong)
}

/// The QR version (1–40) the text needs at [`TICKET_EC_LEVEL`].
pub fn qr_version(text: &str) -> crate::Result<i16> {
    match code(text)?.version() {
        qrcode::Version::Normal(v) | qrcode::Version::Micro(v) => Ok(v),
    }
}

/// An SVG document with a 4-module quiet zone, scaled by the page.
pub fn svg(text: &str) -> crate::Result<String> {
    Ok(code(text)?.render::<svg::Color<'_>>().quiet_zone(true).min_dimensions(256, 256).build())
}

/// A grayscale PNG with `module_px` pixels per module and a 4-module quiet zone.
pub fn png(text: &str, module_px: u32) -> crate::Result<Vec<u8>> {
    modules(text)?.png(module_px)
}

/// The code's module matrix, without quiet zone, for renderers that draw the modules themselves (the
/// issuer's PDF tickets draw each dark run as a vector rectangle, sharp at any zoom or print size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modules {
    /// Modules per side.
    pub width: usize,
    /// Row by row from the top, `true` = dark.
    pub dark: Vec<bool>,
}

/// Modules of light quiet zone around the matrix in the bitmaps ([`Modules::luma`], [`Modules::png`]).
const QUIET_ZONE: usize = 4;

impl Modules {
    /// Whether the module in column `x`, row `y` is dark (outside the matrix: light, as the quiet zone).
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.width && y < self.width && self.dark[y * self.width + x]
    }

    /// The code as a grayscale bitmap (dark modules 0, light 255) with `module_px` pixels per module
    /// (1–64) and a 4-module quiet zone. Drawn from the matrix, so a renderer that needs the code in
    /// several forms (the ticket mail: an inline PNG and a PDF page) encodes it once.
    pub fn luma(&self, module_px: u32) -> image::GrayImage {
        let px = module_px.clamp(1, 64) as usize;
        let side = (self.width + 2 * QUIET_ZONE) * px;
        let mut pixels = Vec::with_capacity(side * side);
        for y in 0..side {
            for x in 0..side {
                // Quiet-zone coordinates wrap to huge values, which `is_dark` reads as light.
                let (mx, my) = ((x / px).wrapping_sub(QUIET_ZONE), (y / px).wrapping_sub(QUIET_ZONE));
                pixels.push(if self.is_dark(mx, my) { 0 } else { 255 });
            }
        }
        let side = side as u32;
        image::GrayImage::from_raw(side, side, pixels).unwrap_or_else(|| image::GrayImage::new(side, side))
    }

    /// [`Self::luma`] as a PNG.
    pub fn png(&self, module_px: u32) -> crate::Result<Vec<u8>> {
        let img = self.luma(module_px);
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::L8)
            .map_err(|e| RenderKind::Png(Box::new(e)))?;
        Ok(out)
    }
}

/// The module matrix of `text` at [`TICKET_EC_LEVEL`]: the same code [`svg`] and [`png`] draw.
pub fn modules(text: &str) -> crate::Result<Modules> {
    let code = code(text)?;
    let width = code.width();
    let dark = code.to_colors().into_iter().map(|c| c == qrcode::Color::Dark).collect();
    Ok(Modules { width, dark })
}

/// The code as a grayscale bitmap (black modules = 0, white = 255), see [`Modules::luma`].
pub fn luma(text: &str, module_px: u32) -> crate::Result<image::GrayImage> {
    Ok(modules(text)?.luma(module_px))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    #[test]
    fn renders_svg_and_png() {
        let text = "TK1:ABC";
        let svg = svg(text).unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
        let png = png(text, 4).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_luma8();
        // Version 1 is 21 modules plus 2 × 4 quiet-zone modules, 4 px each.
        assert_eq!(img.width(), (21 + 8) * 4);
        assert_eq!(qr_version(text).unwrap(), 1);
    }

    #[test]
    fn modules_are_the_pixels_of_the_png() {
        let text = "TK1:ABC";
        let m = modules(text).unwrap();
        assert_eq!(m.width, 21, "version 1");
        let img = luma(text, 1).unwrap();
        for y in 0..m.width {
            for x in 0..m.width {
                // The bitmap has the 4-module quiet zone around the matrix.
                let black = img.get_pixel(x as u32 + 4, y as u32 + 4).0[0] == 0;
                assert_eq!(m.is_dark(x, y), black, "module {x},{y}");
            }
        }
        // Finder pattern corners are dark; outside the matrix is light.
        assert!(m.is_dark(0, 0) && m.is_dark(20, 0) && m.is_dark(0, 20));
        assert!(!m.is_dark(21, 0) && !m.is_dark(0, 21));
    }

    /// The matrix's own bitmap is pixel for pixel what the qrcode crate's renderer draws of the same code
    /// (quiet zone included), at several module sizes and versions.
    #[test]
    fn the_matrix_bitmap_is_the_qrcode_crates_rendering() {
        for text in ["TK1:ABC", &"TK1:".repeat(30)] {
            for px in [1, 3, 6] {
                let theirs =
                    code(text).unwrap().render::<Luma<u8>>().quiet_zone(true).module_dimensions(px, px).build();
                let ours = modules(text).unwrap().luma(px);
                assert_eq!(ours.dimensions(), theirs.dimensions(), "{text} at {px} px");
                assert!(ours.as_raw() == theirs.as_raw(), "{text} at {px} px: pixels differ");
            }
        }
    }

    #[test]
    fn too_long_is_an_error() {
        assert!(matches!(png(&"A".repeat(5000), 1), Err(crate::Error::Render(RenderKind::TooLong(_)))));
        assert!(matches!(modules(&"A".repeat(5000)), Err(crate::Error::Render(RenderKind::TooLong(_)))));
    }
}
