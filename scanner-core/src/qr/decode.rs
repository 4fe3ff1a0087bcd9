//! Reading QR codes out of camera frames and image files.

use rxing::common::cpp_essentials::ConcentricPattern;
use rxing::common::{BitArray, BitMatrix, DetectorRXingResult};
use rxing::qrcode::cpp_port::decoder::Decode;
use rxing::qrcode::cpp_port::detector::{FindFinderPatterns, FinderPatternSet, GenerateFinderPatternSets, SampleQR};

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
    /// Light-on-dark code: the binarisation of the inverted frame.
    Inverted,
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
fn binarize(width: usize, height: usize, luma: &[u8], min_range: u32) -> Option<Binarized> {
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

    // Noise-adaptive flat limit: in a noisy frame, blocks of plain paper or table have a range of several
    // noise sigmas, above the fixed limit, and their mean threshold turns them into speckle (slow to search
    // and full of false finder runs). The quietest quarter of the blocks is such background in any frame
    // (a code never fills three quarters of a frame's blocks); a block no busier than that is flat.
    let min_range = if min_range >= RAW_RANGE {
        let mut all: Vec<u8> = mins.iter().zip(&maxs).map(|(&lo, &hi)| hi - lo).collect();
        let quarter = all.len() / 4;
        let quiet = all.select_nth_unstable(quarter).1;
        min_range.max(u32::from(*quiet) * 3 / 2)
    } else {
        min_range
    };

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
    Some(Binarized { matrix, typical_range })
}

/// A binarised image and what the binariser learnt about the frame on the way.
struct Binarized {
    matrix: BitMatrix,
    /// Median luma range of the blocks with contrast: the frame's typical ink/paper contrast.
    typical_range: u32,
}

/// What one look at a binarised image found.
#[derive(Debug, Default)]
struct Scan {
    /// The code's text, if a code was read.
    text: Option<String>,
    /// Finder-pattern candidates (1:1:3:1:1 concentric squares) seen: the evidence that a code may be there.
    finders: usize,
    /// Plausible finder triples among them (rxing's geometry checks).
    sets: usize,
    /// The frame's typical contrast (see [`Binarized::typical_range`]).
    contrast: u32,
}

/// Finder-pattern sets tried per image: sets come sorted by plausibility, and a cluttered frame can yield
/// hundreds of implausible ones, each costing a sampling and a Reed–Solomon decode.
const MAX_SETS: usize = 12;

/// rxing's QR detector and decoder (the zxing-cpp algorithm) on a matrix we binarised ourselves: finder
/// patterns, the most plausible triples of them, grid sampling (which also reads mirrored codes: the
/// format information says so) and error-corrected decoding.
fn scan_matrix(matrix: &BitMatrix) -> Scan {
    let mut finders = FindFinderPatterns(matrix, false, 0);
    let count = finders.len();
    let read = |set: &FinderPatternSet| {
        let detected = SampleQR(matrix, set).ok()?;
        let decoded = Decode(detected.getBits()).ok()?;
        decoded.isValid().then(|| decoded.text().to_string())
    };
    let sets = GenerateFinderPatternSets(&mut finders);
    let mut text = sets.iter().take(MAX_SETS).find_map(read);
    if text.is_none() && sets.is_empty() && count >= 3 {
        text = relaxed_sets(&finders).iter().take(MAX_RELAXED_SETS).find_map(read);
    }
    Scan { text, finders: count, sets: sets.len(), ..Scan::default() }
}

/// Relaxed finder triples tried when rxing's own geometry checks found none.
const MAX_RELAXED_SETS: usize = 6;
/// Finder candidates (largest first) combined into relaxed triples.
const MAX_RELAXED_FINDERS: usize = 8;

/// Finder-pattern triples for a steeply tilted code, which rxing's set generation rejects: the near finder
/// can be more than twice the size of the far one, the sides more than twice as long as each other and the
/// corner angle far from 90°. Accepts a size ratio up to 3.5, a side ratio up to 3 and a corner angle of
/// 35°–145°, most square-like first. Grid sampling and error correction still verify every candidate.
fn relaxed_sets(finders: &[ConcentricPattern]) -> Vec<FinderPatternSet> {
    let mut top: Vec<ConcentricPattern> = finders.to_vec();
    top.sort_by_key(|f| std::cmp::Reverse(f.size));
    top.truncate(MAX_RELAXED_FINDERS);
    let mut scored: Vec<(f64, FinderPatternSet)> = Vec::new();
    let dist2 = |a: &ConcentricPattern, b: &ConcentricPattern| {
        let (dx, dy) = (f64::from(a.p.x - b.p.x), f64::from(a.p.y - b.p.y));
        dx * dx + dy * dy
    };
    for i in 0..top.len() {
        for j in i + 1..top.len() {
            for k in j + 1..top.len() {
                let [mut a, mut b, mut c] = [top[i], top[j], top[k]];
                let (largest, smallest) = (a.size.max(b.size).max(c.size), a.size.min(b.size).min(c.size));
                if smallest <= 0 || f64::from(largest) > 3.5 * f64::from(smallest) {
                    continue;
                }
                // b becomes the corner (top-left): the vertex opposite the longest side.
                let (ab, bc, ac) = (dist2(&a, &b), dist2(&b, &c), dist2(&a, &c));
                if bc >= ab && bc >= ac {
                    std::mem::swap(&mut a, &mut b);
                } else if ab >= ac && ab >= bc {
                    std::mem::swap(&mut b, &mut c);
                }
                let (ab, bc, ac) = (dist2(&a, &b), dist2(&b, &c), dist2(&a, &c));
                if ab > 9.0 * bc || bc > 9.0 * ab || ab <= 0.0 || bc <= 0.0 {
                    continue;
                }
                // The sides must be a plausible number of modules long (a finder is 7 modules wide).
                let module = f64::from(a.size + b.size + c.size) / 21.0;
                let modules = (ab.sqrt() + bc.sqrt()) / (2.0 * module) + 7.0;
                if !(21.0 * 0.7..=177.0 * 1.5).contains(&modules) {
                    continue;
                }
                let cos = (ab + bc - ac) / (2.0 * ab.sqrt() * bc.sqrt());
                if !(-0.82..=0.82).contains(&cos) {
                    continue;
                }
                let cross = f64::from(c.p.x - b.p.x) * f64::from(a.p.y - b.p.y)
                    - f64::from(c.p.y - b.p.y) * f64::from(a.p.x - b.p.x);
                if cross < 0.0 {
                    std::mem::swap(&mut a, &mut c);
                }
                let (lab, lbc) = (ab.sqrt(), bc.sqrt());
                scored.push((cos.abs() + (lab - lbc).abs() / (lab + lbc), FinderPatternSet { bl: a, tl: b, tr: c }));
            }
        }
    }
    scored.sort_by(|x, y| x.0.total_cmp(&y.0));
    scored.into_iter().map(|(_, set)| set).collect()
}

/// Binarises `luma` with our binariser and looks for a code in it. Never panics: a panic inside rxing is
/// caught and counts as nothing found (see [`attempt`]).
fn scan(width: usize, height: usize, luma: &[u8], min_range: u32) -> Scan {
    attempt(|| {
        let binarized = binarize(width, height, luma, min_range)?;
        Some(Scan { contrast: binarized.typical_range, ..scan_matrix(&binarized.matrix) })
    })
    .unwrap_or_default()
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

/// Frames of at least this many pixels (1280×720 and up) are searched at half resolution first: their
/// modules are usually several pixels wide, and a quarter of the pixels costs a quarter of the time.
const LARGE_PIXELS: usize = 800_000;
/// Frames above this many pixels skip the 2× upscale pass, which would otherwise allocate 4× the frame.
const MAX_UPSCALE_PIXELS: usize = LARGE_PIXELS;
/// Frames above this many pixels run rqrr on the half-resolution frame, as its cost grows quickly with size.
const MAX_RQRR_PIXELS: usize = LARGE_PIXELS;
/// A frame whose typical block contrast is below this many luma levels is low-contrast: the low
/// flat-block limit is tried on it when finder patterns were seen, and below [`VERY_LOW_CONTRAST`] always.
const LOW_CONTRAST: u32 = 40;
/// See [`LOW_CONTRAST`].
const VERY_LOW_CONTRAST: u32 = 30;

/// Runs one decoder attempt, turning a panic inside a third-party decoder into "not found": a steward's
/// scanner must keep scanning whatever the camera delivers. On targets built with `panic = "abort"`
/// (wasm32) this cannot catch anything and a panic inside rxing or rqrr ends the module: the browser
/// scanner runs decoding in a worker that it restarts and restores from storage when that happens.
fn attempt<T>(f: impl FnOnce() -> Option<T>) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok().flatten()
}

/// What the passes so far have seen of a possible code: the evidence that decides whether the slower
/// fallback passes are worth their time on this frame.
#[derive(Default)]
struct Evidence {
    /// Most finder-pattern candidates seen by one pass.
    finders: usize,
    /// Some pass found a plausible finder triple (a code was located but not read).
    located: bool,
}

impl Evidence {
    fn add(&mut self, scan: &Scan) {
        self.finders = self.finders.max(scan.finders);
        self.located |= scan.sets > 0;
    }

    /// Worth the expensive passes (upscaling, rqrr): a located code, or three finder candidates at once.
    fn strong(&self) -> bool {
        self.located || self.finders >= 3
    }
}

/// Decodes the first QR code in a frame and reports which pass read it.
///
/// Passes run from cheapest/most common to most expensive, stopping at the first that reads a code, so a
/// clean frame costs one binarisation plus one detection. Every pass is an independent guess about what
/// is wrong with the frame; all of them verify the code's Reed–Solomon error correction, so a later pass
/// cannot turn a good frame into a wrong text.
///
/// The slow tail is bounded by evidence: a phone decodes every camera frame, and most frames hold no code.
/// After the cheap passes (full and half resolution, and the inverted half-resolution frame for
/// light-on-dark codes), the fallbacks run only as far as what was seen justifies: smoothing and the
/// inverted full-resolution frame once any finder pattern was seen, the low-contrast limit on low-contrast
/// frames, and upscaling and rqrr only once a code was located or three finder patterns were seen. A frame
/// without any of that is given up on after the cheap passes.
pub fn decode_luma_detailed(width: usize, height: usize, luma: &[u8]) -> Option<Decoded> {
    let pixels = width.checked_mul(height)?;
    if width == 0 || height == 0 || pixels != luma.len() {
        return None;
    }
    let large = pixels >= LARGE_PIXELS;
    let mut evidence = Evidence::default();
    macro_rules! try_pass {
        ($pass:expr, $scan:expr) => {{
            let scan: Scan = $scan;
            if let Some(text) = scan.text {
                return Some(Decoded { text, pass: $pass });
            }
            evidence.add(&scan);
            scan
        }};
    }

    // 1. The common case, a reasonably sharp frame with normal contrast, at full resolution; and the frame
    //    downscaled 2×2, which averages sensor noise and screen moiré away and is a quarter of the work.
    //    Large frames try the half-resolution frame first.
    let (w2, h2, half) = downscale2(width, height, luma);
    let raw = if large {
        try_pass!(Pass::Downscaled, scan(w2, h2, &half, RAW_RANGE));
        try_pass!(Pass::Raw, scan(width, height, luma, RAW_RANGE))
    } else {
        let raw = try_pass!(Pass::Raw, scan(width, height, luma, RAW_RANGE));
        try_pass!(Pass::Downscaled, scan(w2, h2, &half, RAW_RANGE));
        raw
    };
    // 2. Light-on-dark codes (dark-mode wallets): the inverted frame, binarised afresh so that its dark
    //    surround counts as the quiet zone; at half resolution always, at full resolution when the half
    //    found finder patterns.
    let half_inverted: Vec<u8> = half.iter().map(|&p| 255 - p).collect();
    let inverted = try_pass!(Pass::Inverted, scan(w2, h2, &half_inverted, RAW_RANGE));
    drop(half_inverted);
    if inverted.finders > 0 || evidence.located {
        let full_inverted: Vec<u8> = luma.iter().map(|&p| 255 - p).collect();
        try_pass!(Pass::Inverted, scan(width, height, &full_inverted, RAW_RANGE));
    }
    // 3. Sensor noise, screen moiré: smooth at full resolution, which keeps 2 px modules intact.
    let smooth = if evidence.finders > 0 || evidence.located {
        let smooth = smooth3(width, height, luma);
        try_pass!(Pass::Smoothed, scan(width, height, &smooth, RAW_RANGE));
        Some(smooth)
    } else {
        None
    };
    // 4. Dark gray on mid gray (glare, dim hall, faded print): trust small local contrast. Its finder
    //    candidates do not count as evidence (the low limit finds some in any texture), located codes do.
    if raw.contrast < VERY_LOW_CONTRAST || (raw.contrast < LOW_CONTRAST && evidence.finders > 0) {
        let low = scan(width, height, luma, LOW_RANGE);
        if let Some(text) = low.text {
            return Some(Decoded { text, pass: Pass::LowContrast });
        }
        evidence.located |= low.sets > 0;
    }
    if !evidence.strong() {
        return None;
    }
    // 5. A code was located (or nearly) but not read: the expensive passes.
    if let Some(smooth) = &smooth {
        try_pass!(Pass::Smoothed, scan(width, height, smooth, LOW_RANGE));
    }
    drop(smooth);
    if pixels <= MAX_UPSCALE_PIXELS {
        // Modules of about 2 px: give the detector's run-length logic more pixels per module.
        let (w4, h4, big) = upscale2(width, height, luma);
        for range in [RAW_RANGE, LOW_RANGE] {
            try_pass!(Pass::Upscaled, scan(w4, h4, &big, range));
        }
    }
    // 6. A different detector altogether (it reads strong perspective that rxing's sampling misses).
    let text = if pixels <= MAX_RQRR_PIXELS {
        attempt(|| read_rqrr(width, height, luma))
    } else if w2 >= BLOCK && h2 >= BLOCK {
        attempt(|| read_rqrr(w2, h2, &half))
    } else {
        None
    };
    text.map(|text| Decoded { text, pass: Pass::Rqrr })
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
#[cfg(feature = "files")]
#[derive(Debug, thiserror::Error)]
pub enum DecodeKind {
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
        source: Box<image::ImageError>,
    },
}

/// Loads a PNG or JPEG file (format sniffed from its content, not its name) and decodes the first QR code
/// in it. `Ok(None)` means the image was read but contains no readable code.
#[cfg(feature = "files")]
pub fn decode_file(path: &std::path::Path) -> crate::Result<Option<String>> {
    let reader = image::ImageReader::open(path)
        .map_err(|source| DecodeKind::Io { path: path.to_path_buf(), source })?
        .with_guessed_format()
        .map_err(|source| DecodeKind::Io { path: path.to_path_buf(), source })?;
    let img =
        reader.decode().map_err(|source| DecodeKind::Image { path: path.to_path_buf(), source: Box::new(source) })?;
    Ok(decode_image(&img))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qr::corpus::{generate_frame, Frame, Variant};

    /// Frames of `variant` at the given severities, seeds fixed so that the expected texts are the
    /// generator's (never read back from the decoder).
    fn frames(variant: Variant, severities: &[f32], seed: u64) -> Vec<Frame> {
        severities.iter().enumerate().map(|(i, &s)| generate_frame(variant, i, s, seed + i as u64)).collect()
    }

    fn read_count(frames: &[Frame]) -> usize {
        frames
            .iter()
            .filter(|f| decode_luma(f.width, f.height, &f.luma).as_deref() == Some(f.expected.as_str()))
            .count()
    }

    #[test]
    fn inverted_codes_decode() {
        let set = frames(Variant::Inverted, &[0.0, 0.3, 0.6], 1300);
        assert_eq!(read_count(&set), set.len(), "light-on-dark codes must be read");
        let first = &set[0];
        let decoded = decode_luma_detailed(first.width, first.height, &first.luma).expect("inverted frame decodes");
        assert_eq!(decoded.pass, Pass::Inverted);
    }

    #[test]
    fn mirrored_codes_decode() {
        let set = frames(Variant::Mirrored, &[0.0, 0.3, 0.6], 1310);
        assert_eq!(read_count(&set), set.len(), "mirror-image codes must be read");
    }

    #[test]
    fn screen_moire_steep_perspective_and_motion_blur_decode() {
        for variant in [Variant::ScreenMoire, Variant::SteepPerspective, Variant::MotionBlur] {
            let set = frames(variant, &[0.0, 0.25, 0.5], 1320);
            assert_eq!(read_count(&set), set.len(), "{} frames must be read", variant.name());
        }
    }

    #[test]
    fn large_frames_decode() {
        for variant in [Variant::Large720, Variant::Large1080] {
            let set = frames(variant, &[0.0, 0.5], 1330);
            assert_eq!((set[0].width, set[0].height), variant.frame_size());
            assert_eq!(read_count(&set), set.len(), "{} frames must be read", variant.name());
        }
    }

    #[test]
    fn frames_without_a_code_decode_to_none() {
        // Every kind of scene without a code: text, heavy noise, table texture, tiles, clutter.
        for frame in frames(Variant::NoCode, &[0.0, 0.25, 0.5, 0.75, 1.0, 0.0, 0.5, 1.0, 0.2, 0.8], 1340) {
            assert!(frame.expected.is_empty());
            assert_eq!(decode_luma(frame.width, frame.height, &frame.luma), None, "{}", frame.file_name());
        }
    }

    #[test]
    fn base_corpus_frames_still_decode() {
        // The adaptive flat-block limit must not cost the original variants their mild frames.
        for variant in Variant::BASE {
            let set = frames(variant, &[0.0, 0.2], 1350);
            assert_eq!(read_count(&set), set.len(), "{} frames must be read", variant.name());
        }
    }

    #[test]
    fn evidence_gates_the_expensive_passes() {
        let mut evidence = Evidence::default();
        assert!(!evidence.strong());
        evidence.add(&Scan { finders: 2, ..Scan::default() });
        assert!(!evidence.strong(), "two finder candidates are not enough for upscaling and rqrr");
        evidence.add(&Scan { finders: 1, sets: 1, ..Scan::default() });
        assert!(evidence.strong(), "a located code is");
        assert_eq!(evidence.finders, 2);
    }

    #[test]
    fn relaxed_sets_accept_a_steep_triple_and_orient_it() {
        let pattern = |x: f32, y: f32, size: i32| ConcentricPattern { p: rxing::Point { x, y }, size };
        // A code tilted about 60° about its vertical axis: the right side foreshortened to half, the far
        // finder much smaller than the near ones (rxing's own set generation rejects size ratios over 2).
        let finders = [pattern(100.0, 100.0, 35), pattern(100.0, 300.0, 35), pattern(200.0, 110.0, 14)];
        let sets = relaxed_sets(&finders);
        let set = sets.first().expect("one relaxed set");
        assert_eq!((set.tl.p.x, set.tl.p.y), (100.0, 100.0), "the corner is opposite the longest side");
        assert!(relaxed_sets(&finders[..2]).is_empty());
        // Three collinear candidates are no code.
        let line = [pattern(0.0, 0.0, 20), pattern(100.0, 0.0, 20), pattern(200.0, 0.0, 20)];
        assert!(relaxed_sets(&line).is_empty());
    }
}
