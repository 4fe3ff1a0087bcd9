//! Reading QR codes out of camera frames and image files.

use std::borrow::Cow;
use std::collections::HashSet;

use rxing::common::{BitArray, BitMatrix, LineOrientation};
use rxing::qrcode::cpp_port::QrReader;
use rxing::{BarcodeFormat, Binarizer, BinaryBitmap, DecodeHints, ImmutableReader, Luma8Source, LuminanceSource};

/// Which stage of the pipeline produced a result (for benchmarks and diagnostics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pass {
    /// Local-mean binarisation of the raw frame, rxing's QR detector.
    Raw,
    /// Same, with the flat-block contrast limit lowered for dark-gray-on-gray codes.
    LowContrast,
    /// 2×2 box-downscaled frame: averages sensor noise away and halves aliasing-free resolution.
    Downscaled,
    /// 2× bilinear upscale: gives the detector's integer run-length logic room on ~2 px modules.
    Upscaled,
    /// 3×3 binomial smoothing at full resolution: noise reduction that keeps small modules.
    Smoothed,
    /// rqrr, an independent detector, as the last resort.
    Rqrr,
}

/// A decoded QR code and the pass that found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The text in the code.
    pub text: String,
    /// Stage of the pipeline that read it.
    pub pass: Pass,
}

/// Side of the square blocks the binariser computes statistics over. 8 px matches zxing's hybrid binariser:
/// small enough to follow uneven lighting, large enough that a block usually straddles a module edge.
const BLOCK: usize = 8;
const RAW_RANGE: u32 = 24;
const LOW_RANGE: u32 = 4;

/// Block-based local-mean binariser (the algorithm of zxing's `HybridBinarizer`), written for speed and
/// with the "this block is flat" contrast limit as a parameter.
///
/// zxing hard-codes that limit at 24 luma levels, which is why it reads nothing printed dark-gray-on-gray:
/// every block of such a code looks flat and is declared white. A lower limit reads those codes but turns
/// sensor noise on plain paper into speckle, so the pipeline uses 24 first and a low limit as a fallback.
///
/// Returns `None` when the frame is smaller than one block.
fn binarize(width: usize, height: usize, luma: &[u8], min_range: u32) -> Option<BitMatrix> {
    if width < BLOCK || height < BLOCK || width.checked_mul(height) != Some(luma.len()) {
        return None;
    }
    let bw = width.div_ceil(BLOCK);
    let bh = height.div_ceil(BLOCK);

    // 1. Per-block statistics. Column-wise sums/minima/maxima over a block row's eight rows are element-wise
    //    over whole rows, which the compiler vectorises; reducing eight columns per block is then cheap.
    let mut sums = vec![0u32; bw * bh];
    let mut mins = vec![u8::MAX; bw * bh];
    let mut maxs = vec![u8::MIN; bw * bh];
    let mut col_sum = vec![0u16; width];
    let mut col_min = vec![u8::MAX; width];
    let mut col_max = vec![u8::MIN; width];
    for by in 0..bh {
        // The last row/column of blocks is shifted back inside the frame instead of being partial.
        let y0 = (by * BLOCK).min(height - BLOCK);
        col_sum.fill(0);
        col_min.fill(u8::MAX);
        col_max.fill(u8::MIN);
        for row in luma[y0 * width..].chunks_exact(width).take(BLOCK) {
            for (((s, lo), hi), &p) in col_sum.iter_mut().zip(col_min.iter_mut()).zip(col_max.iter_mut()).zip(row) {
                *s += u16::from(p);
                *lo = (*lo).min(p);
                *hi = (*hi).max(p);
            }
        }
        for bx in 0..bw {
            let x0 = (bx * BLOCK).min(width - BLOCK);
            let i = by * bw + bx;
            sums[i] = col_sum[x0..x0 + BLOCK].iter().map(|&v| u32::from(v)).sum();
            mins[i] = col_min[x0..x0 + BLOCK].iter().copied().min().unwrap_or(0);
            maxs[i] = col_max[x0..x0 + BLOCK].iter().copied().max().unwrap_or(0);
        }
    }

    // Typical ink/paper contrast of the frame: the median range of the blocks that are not flat.
    let mut ranges: Vec<u8> =
        mins.iter().zip(&maxs).map(|(&lo, &hi)| hi - lo).filter(|&r| u32::from(r) > min_range).collect();
    let typical_range = if ranges.is_empty() {
        2 * min_range
    } else {
        let mid = ranges.len() / 2;
        u32::from(*ranges.select_nth_unstable(mid).1)
    };

    // 2. Per-block "black point": the mean of blocks with contrast. A flat block is most likely paper (the
    //    quiet zone, the card), so its black point is put half a typical contrast below its own level: its
    //    pixels stay white, and it pulls its neighbours' thresholds towards the real ink/paper midpoint.
    //    (zxing uses min/2 here, which is the midpoint only for black-on-white print: on dark-gray-on-gray it
    //    drags thresholds near the quiet zone below the ink and erases the finder patterns.) A flat block
    //    darker than its neighbours' black point is inside a large dark area and takes their black point.
    let mut black = vec![0u32; bw * bh];
    for by in 0..bh {
        for bx in 0..bw {
            let i = by * bw + bx;
            let (min, max) = (u32::from(mins[i]), u32::from(maxs[i]));
            let mut average = sums[i] / (BLOCK * BLOCK) as u32;
            if max - min <= min_range {
                average = min.saturating_sub(typical_range / 2);
                if by > 0 && bx > 0 {
                    let neighbours = (black[i - bw] + 2 * black[i - 1] + black[i - bw - 1]) / 4;
                    if min < neighbours {
                        average = neighbours;
                    }
                }
            }
            black[i] = average;
        }
    }

    // 3. Threshold of each block = mean black point of the 5×5 blocks around it, via a summed-area table.
    let sw = bw + 1;
    let mut sat = vec![0u32; sw * (bh + 1)];
    for by in 0..bh {
        let mut row_sum = 0;
        for bx in 0..bw {
            row_sum += black[by * bw + bx];
            sat[(by + 1) * sw + bx + 1] = sat[by * sw + bx + 1] + row_sum;
        }
    }
    let mut threshold = vec![0u8; bw * bh];
    for by in 0..bh {
        let (y0, y1) = (by.saturating_sub(2), (by + 3).min(bh));
        for bx in 0..bw {
            let (x0, x1) = (bx.saturating_sub(2), (bx + 3).min(bw));
            let total = sat[y1 * sw + x1] + sat[y0 * sw + x0] - sat[y0 * sw + x1] - sat[y1 * sw + x0];
            let count = ((y1 - y0) * (x1 - x0)) as u32;
            threshold[by * bw + bx] = (total / count).min(255) as u8;
        }
    }

    // 4. Threshold pixels, eight at a time against their block's threshold, packing 64 per word so rows go
    //    into the matrix in bulk.
    let mut matrix = BitMatrix::new(u32::try_from(width).ok()?, u32::try_from(height).ok()?).ok()?;
    let mut row_bits = BitArray::with_size(width);
    for (y, row) in luma.chunks_exact(width).enumerate() {
        let thresholds = &threshold[(y / BLOCK).min(bh - 1) * bw..][..bw];
        for (word_index, pixels) in row.chunks(64).enumerate() {
            let mut word = 0u64;
            for (k, chunk) in pixels.chunks(BLOCK).enumerate() {
                let t = thresholds[word_index * 64 / BLOCK + k];
                let mut byte = 0u64;
                for (bit, &p) in chunk.iter().enumerate() {
                    // zxing's rule: a pixel at or below the threshold is black.
                    byte |= u64::from(p <= t) << bit;
                }
                word |= byte << (k * BLOCK);
            }
            // rxing's bit words are `usize`: on a 32-bit target (wasm32) one 64-pixel word is two of them,
            // and a row's last word exists only as far as the row has pixels.
            for shift in (0..pixels.len()).step_by(usize::BITS as usize) {
                row_bits.setBulk(word_index * 64 + shift, (word >> shift) as usize);
            }
        }
        matrix.setRow(y as u32, &row_bits);
    }
    Some(matrix)
}

/// Hands a matrix we binarised ourselves to rxing's readers.
struct Prebinarized<'a> {
    source: Luma8Source<'a>,
    matrix: BitMatrix,
    min_range: u32,
}

impl<'a> Binarizer for Prebinarized<'a> {
    type Source = Luma8Source<'a>;

    fn get_luminance_source(&self) -> &Self::Source {
        &self.source
    }

    fn get_black_row(&self, y: usize) -> rxing::common::Result<Cow<'_, BitArray>> {
        if y >= self.matrix.height() as usize {
            return Err(rxing::Exceptions::INDEX_OUT_OF_BOUNDS);
        }
        Ok(Cow::Owned(self.matrix.getRow(y as u32)))
    }

    fn get_black_row_from_matrix(&self, y: usize) -> rxing::common::Result<Cow<'_, BitArray>> {
        self.get_black_row(y)
    }

    fn get_black_matrix(&self) -> rxing::common::Result<&BitMatrix> {
        Ok(&self.matrix)
    }

    fn get_black_line(&self, l: usize, lt: LineOrientation) -> rxing::common::Result<Cow<'_, BitArray>> {
        match lt {
            LineOrientation::Row => self.get_black_row(l),
            LineOrientation::Column if l < self.matrix.width() as usize => Ok(Cow::Owned(self.matrix.getCol(l as u32))),
            LineOrientation::Column => Err(rxing::Exceptions::INDEX_OUT_OF_BOUNDS),
        }
    }

    fn create_binarizer(&self, source: Self::Source) -> Self {
        // Used by rxing for crops/rotations: binarise the new view with the same settings.
        let (w, h) = (source.get_width(), source.get_height());
        let pixels = source.get_matrix();
        let matrix = binarize(w, h, &pixels, self.min_range)
            .or_else(|| BitMatrix::new(w.max(1) as u32, h.max(1) as u32).ok())
            .unwrap_or_else(|| self.matrix.clone());
        Self { source, matrix, min_range: self.min_range }
    }

    fn get_width(&self) -> usize {
        self.matrix.width() as usize
    }

    fn get_height(&self) -> usize {
        self.matrix.height() as usize
    }
}

fn qr_hints() -> DecodeHints {
    // Only QR: skipping the Micro QR / rMQR searches saves time and avoids false positives on clutter.
    // TryHarder (scan every row for finder patterns) read no extra frame of the corpus that the cheaper
    // passes below miss, at several times the cost, so it is not used.
    let formats: HashSet<BarcodeFormat> = [BarcodeFormat::QR_CODE].into_iter().collect();
    DecodeHints { PossibleFormats: Some(formats), TryHarder: Some(false), ..Default::default() }
}

/// Binarises `luma` with our binariser and runs rxing's QR detector and decoder on it.
fn read_qr(width: usize, height: usize, luma: &[u8], min_range: u32) -> Option<String> {
    let matrix = binarize(width, height, luma, min_range)?;
    let source = Luma8Source::new_with_slice(luma, u32::try_from(width).ok()?, u32::try_from(height).ok()?).ok()?;
    let mut bitmap = BinaryBitmap::new(Prebinarized { source, matrix, min_range });
    QrReader.immutable_decode_with_hints(&mut bitmap, &qr_hints()).ok().map(|r| r.getText().to_string())
}

/// Averages 2×2 pixel blocks (odd trailing row/column dropped).
fn downscale2(width: usize, height: usize, luma: &[u8]) -> (usize, usize, Vec<u8>) {
    let (w, h) = (width / 2, height / 2);
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let top = &luma[2 * y * width..][..2 * w];
        let bottom = &luma[(2 * y + 1) * width..][..2 * w];
        out.extend(
            top.chunks_exact(2)
                .zip(bottom.chunks_exact(2))
                .map(|(t, b)| ((u16::from(t[0]) + u16::from(t[1]) + u16::from(b[0]) + u16::from(b[1]) + 2) / 4) as u8),
        );
    }
    (w, h, out)
}

/// Bilinear 2× upscale (pixel centres preserved), so 2 px modules become 4 px ones.
fn upscale2(width: usize, height: usize, luma: &[u8]) -> (usize, usize, Vec<u8>) {
    let (w, h) = (width * 2, height * 2);
    let mut out = vec![0u8; w * h];
    for (oy, out_row) in out.chunks_exact_mut(w).enumerate() {
        // Output pixel centre oy + 0.5 maps to source coordinate oy / 2 - 0.25: weights 3/4 and 1/4.
        let (y0, y1) =
            if oy % 2 == 0 { (oy / 2, (oy / 2).saturating_sub(1)) } else { (oy / 2, (oy / 2 + 1).min(height - 1)) };
        let (r0, r1) = (&luma[y0 * width..][..width], &luma[y1 * width..][..width]);
        for (ox, o) in out_row.iter_mut().enumerate() {
            let (x0, x1) =
                if ox % 2 == 0 { (ox / 2, (ox / 2).saturating_sub(1)) } else { (ox / 2, (ox / 2 + 1).min(width - 1)) };
            let v = 9 * u32::from(r0[x0]) + 3 * u32::from(r0[x1]) + 3 * u32::from(r1[x0]) + u32::from(r1[x1]);
            *o = ((v + 8) / 16) as u8;
        }
    }
    (w, h, out)
}

/// 3×3 binomial ([1 2 1]ᵀ[1 2 1] / 16) smoothing with clamped edges.
fn smooth3(width: usize, height: usize, luma: &[u8]) -> Vec<u8> {
    let mut horizontal = vec![0u16; width * height];
    for (src, dst) in luma.chunks_exact(width).zip(horizontal.chunks_exact_mut(width)) {
        for x in 0..width {
            let (l, r) = (src[x.saturating_sub(1)], src[(x + 1).min(width - 1)]);
            dst[x] = u16::from(l) + 2 * u16::from(src[x]) + u16::from(r);
        }
    }
    let mut out = vec![0u8; width * height];
    for y in 0..height {
        let (up, mid, down) = (y.saturating_sub(1), y, (y + 1).min(height - 1));
        let (a, b, c) = (
            &horizontal[up * width..][..width],
            &horizontal[mid * width..][..width],
            &horizontal[down * width..][..width],
        );
        for (x, o) in out[y * width..][..width].iter_mut().enumerate() {
            *o = ((a[x] + 2 * b[x] + c[x] + 8) / 16) as u8;
        }
    }
    out
}

fn read_rqrr(width: usize, height: usize, luma: &[u8]) -> Option<String> {
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| luma[y * width + x]);
    img.detect_grids().into_iter().find_map(|grid| grid.decode().ok().map(|(_, text)| text))
}

/// Frames above this many pixels skip the 2× upscale pass, which would otherwise allocate 4× the frame.
const MAX_UPSCALE_PIXELS: usize = 1 << 20;
/// Frames above this many pixels skip rqrr, whose cost grows quickly with frame size.
const MAX_RQRR_PIXELS: usize = 1 << 22;

/// Runs one decoder attempt, turning a panic inside a third-party decoder into "not found": a steward's
/// scanner must keep scanning whatever the camera delivers. On targets built with `panic = "abort"`
/// (wasm32) this cannot catch anything and a panic inside rxing or rqrr ends the module: the browser
/// scanner runs decoding in a worker that it restarts and restores from storage when that happens.
fn attempt(f: impl FnOnce() -> Option<String>) -> Option<String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok().flatten()
}

/// Decodes the first QR code in a frame and reports which pass read it.
///
/// Passes run from cheapest/most common to most expensive, stopping at the first that reads a code, so a
/// clean frame costs one binarisation plus one detection. Every pass is an independent guess about what
/// is wrong with the frame; all of them verify the code's Reed–Solomon error correction, so a later pass
/// cannot turn a good frame into a wrong text.
pub fn decode_luma_detailed(width: usize, height: usize, luma: &[u8]) -> Option<Decoded> {
    let pixels = width.checked_mul(height)?;
    if width == 0 || height == 0 || pixels != luma.len() {
        return None;
    }
    let found = |text: String, pass: Pass| Some(Decoded { text, pass });

    // 1. The common case: a reasonably sharp frame with normal contrast.
    if let Some(text) = attempt(|| read_qr(width, height, luma, RAW_RANGE)) {
        return found(text, Pass::Raw);
    }
    // 2. Dark gray on mid gray (glare, dim hall, faded print): trust small local contrast.
    if let Some(text) = attempt(|| read_qr(width, height, luma, LOW_RANGE)) {
        return found(text, Pass::LowContrast);
    }
    // 3. Sensor noise: smooth it out at full resolution, which keeps 2 px modules intact.
    let smooth = smooth3(width, height, luma);
    for range in [RAW_RANGE, LOW_RANGE] {
        if let Some(text) = attempt(|| read_qr(width, height, &smooth, range)) {
            return found(text, Pass::Smoothed);
        }
    }
    drop(smooth);
    // 4. Heavy noise on large modules: averaging 2×2 removes more noise than smoothing can.
    let (w2, h2, small) = downscale2(width, height, luma);
    if let Some(text) = attempt(|| read_qr(w2, h2, &small, RAW_RANGE)) {
        return found(text, Pass::Downscaled);
    }
    drop(small);
    // 5. Modules of about 2 px: give the detector's run-length logic more pixels per module.
    if pixels <= MAX_UPSCALE_PIXELS {
        let (w4, h4, big) = upscale2(width, height, luma);
        for range in [RAW_RANGE, LOW_RANGE] {
            if let Some(text) = attempt(|| read_qr(w4, h4, &big, range)) {
                return found(text, Pass::Upscaled);
            }
        }
    }
    // 6. A different detector altogether; slow, so last.
    if pixels <= MAX_RQRR_PIXELS {
        if let Some(text) = attempt(|| read_rqrr(width, height, luma)) {
            return found(text, Pass::Rqrr);
        }
    }
    None
}

/// Decodes the first QR code found in a raw 8-bit grayscale frame (row-major, `width * height` bytes).
///
/// Returns `None` when no code can be read, including when `luma.len() != width * height`.
pub fn decode_luma(width: usize, height: usize, luma: &[u8]) -> Option<String> {
    decode_luma_detailed(width, height, luma).map(|d| d.text)
}

/// Decodes the first QR code in an image of any pixel format (converted to 8-bit luma first).
pub fn decode_image(img: &image::DynamicImage) -> Option<String> {
    let luma = img.to_luma8();
    let (width, height) = (usize::try_from(luma.width()).ok()?, usize::try_from(luma.height()).ok()?);
    decode_luma(width, height, luma.as_raw())
}

/// Why an image file could not be decoded.
#[cfg(feature = "cli")]
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file could not be opened or read.
    #[error("cannot read image file {path}: {source}")]
    Io {
        /// File concerned.
        path: std::path::PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is not a PNG/JPEG image, or is corrupt.
    #[error("{path} is not a readable PNG or JPEG image: {source}")]
    Image {
        /// File concerned.
        path: std::path::PathBuf,
        /// Underlying error.
        source: image::ImageError,
    },
}

/// Loads a PNG or JPEG file (format sniffed from its content, not its name) and decodes the first QR code
/// in it. `Ok(None)` means the image was read but contains no readable code.
#[cfg(feature = "cli")]
pub fn decode_file(path: &std::path::Path) -> Result<Option<String>, DecodeError> {
    let reader = image::ImageReader::open(path)
        .map_err(|source| DecodeError::Io { path: path.to_path_buf(), source })?
        .with_guessed_format()
        .map_err(|source| DecodeError::Io { path: path.to_path_buf(), source })?;
    let img = reader.decode().map_err(|source| DecodeError::Image { path: path.to_path_buf(), source })?;
    Ok(decode_image(&img))
}
