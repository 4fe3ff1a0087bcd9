//! Benchmark: prints ONE JSON object on stdout. Each part of the system adds its own top-level section to
//! the map built in `main`, so results from different parts can be compared run over run.
//!
//! `cargo run --release -p scanner-bench --bin bench -- [--frames-per-variant N] [--corpus-dir DIR]`

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use scanner_core::qr::corpus::{self, Variant};
use scanner_core::qr::decode::{decode_luma, decode_luma_detailed};
use serde_json::{json, Map, Value};

#[derive(Parser, Debug)]
#[command(about = "Benchmarks scanner-core and prints one JSON object")]
struct Args {
    /// Degraded frames generated per corpus variant.
    #[arg(long, default_value_t = 30)]
    frames_per_variant: usize,
    /// Also write the corpus as PNG files plus expected.json here (for bench/peers.py).
    #[arg(long)]
    corpus_dir: Option<PathBuf>,
    /// Corpus seed; the default keeps runs comparable.
    #[arg(long, default_value_t = corpus::DEFAULT_SEED)]
    seed: u64,
    /// Print each frame that fails to decode on stderr.
    #[arg(long)]
    verbose: bool,
}

/// Median and 99th percentile (nearest rank) of `samples`, in milliseconds.
fn percentiles(samples: &mut [f64]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort_by(f64::total_cmp);
    let rank = |q: f64| samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    let median = if samples.len() % 2 == 1 {
        samples[samples.len() / 2]
    } else {
        (samples[samples.len() / 2 - 1] + samples[samples.len() / 2]) / 2.0
    };
    (median, rank(0.99))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Per-variant (or per-group) decode tally.
#[derive(Default)]
struct Tally {
    /// Frames whose outcome was right: the expected text, or nothing for a frame without a code.
    decoded: usize,
    /// Frames that returned a text other than the expected one (a misread, or a code "found" in a frame
    /// that has none).
    wrong: usize,
    times: Vec<f64>,
    passes: BTreeMap<String, usize>,
}

impl Tally {
    fn json(mut self) -> Value {
        let (median, p99) = percentiles(&mut self.times);
        json!({
            "frames": self.times.len(),
            "decoded": self.decoded,
            "wrong": self.wrong,
            "median_ms": round3(median),
            "p99_ms": round3(p99),
            "passes": self.passes,
        })
    }
}

/// Decodes every frame of the generated corpus, timing each decode separately.
///
/// `totals` covers the original degraded corpus ([`Variant::BASE`], comparable run over run);
/// `extended_totals` every frame that holds a code; the frames without a code are the `no_code` variant,
/// whose "decoded" counts frames given up on (nothing returned).
fn decode_section(args: &Args) -> anyhow::Result<Value> {
    let frames = corpus::generate(args.frames_per_variant, args.seed);
    if let Some(dir) = &args.corpus_dir {
        corpus::write_corpus(&frames, dir).with_context(|| format!("writing corpus to {}", dir.display()))?;
    }

    // Warm up caches and lazy statics so the first frame is not charged for them.
    if let Some(frame) = frames.first() {
        let _ = decode_luma(frame.width, frame.height, &frame.luma);
    }

    let mut per_variant: BTreeMap<Variant, Tally> = BTreeMap::new();
    let mut base = Tally::default();
    let mut extended = Tally::default();
    for frame in &frames {
        let start = Instant::now();
        let result = decode_luma_detailed(frame.width, frame.height, &frame.luma);
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        // A wrong text is a failure, not a partial success; a frame without a code must give nothing.
        let text = result.as_ref().map(|d| d.text.as_str());
        let ok = if frame.variant.has_code() { text == Some(frame.expected.as_str()) } else { text.is_none() };
        let wrong = !ok && text.is_some();
        if !ok && args.verbose {
            eprintln!("FAIL {} severity {:.2}: {:?}", frame.file_name(), frame.severity, text.map(str::len));
        }
        let pass = result.as_ref().map_or_else(|| "none".to_string(), |d| format!("{:?}", d.pass).to_lowercase());
        let group = if frame.variant.is_base() {
            Some(&mut base)
        } else if frame.variant.has_code() {
            Some(&mut extended)
        } else {
            None
        };
        for tally in std::iter::once(per_variant.entry(frame.variant).or_default()).chain(group) {
            tally.decoded += usize::from(ok);
            tally.wrong += usize::from(wrong);
            tally.times.push(ms);
            *tally.passes.entry(pass.clone()).or_default() += 1;
        }
    }

    let mut variants = Map::new();
    for (variant, tally) in per_variant {
        let (w, h) = variant.frame_size();
        let mut entry = tally.json();
        if let Value::Object(map) = &mut entry {
            map.insert("frame".to_string(), json!(format!("{w}x{h}")));
            map.insert("has_code".to_string(), json!(variant.has_code()));
            map.insert("base".to_string(), json!(variant.is_base()));
        }
        variants.insert(variant.name().to_string(), entry);
    }
    // Extended totals: every frame holding a code, the base corpus included.
    let mut all = Tally::default();
    for tally in [&base, &extended] {
        all.decoded += tally.decoded;
        all.wrong += tally.wrong;
        all.times.extend_from_slice(&tally.times);
        for (pass, n) in &tally.passes {
            *all.passes.entry(pass.clone()).or_default() += n;
        }
    }
    Ok(json!({
        "decoder": "scanner-core qr::decode::decode_luma",
        "frame": format!("{}x{} (large_720p 1280x720, large_1080p 1920x1080)", corpus::FRAME_WIDTH, corpus::FRAME_HEIGHT),
        "seed": args.seed,
        "variants": variants,
        "totals": base.json(),
        "extended_totals": all.json(),
    }))
}

/// Median of `f` over `n` runs, in microseconds.
fn median_us(n: usize, mut f: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    percentiles(&mut samples).0
}

/// The ticket format: how big its QR code is and how long signing, rendering and verifying take.
fn ticket_section() -> anyhow::Result<Value> {
    use scanner_core::fixtures::TicketBuilder;
    use scanner_core::qr::render;
    use scanner_core::{IssuerKey, KeyId, Keyring, TicketId, VerifyContext};

    let key = IssuerKey::from_seed(KeyId(1), [7; 32]);
    let mut keyring = Keyring::new();
    keyring.insert(key.public_entry(0, None))?;
    // Typical: one add-on, no validity window; largest: both window ends too (the only optional fields).
    let typical = TicketBuilder::new(TicketId::random(), 1234).ticket_type(1).addons(0b10);
    let largest = typical.clone().valid_from(1_700_000_000).valid_until(1_900_000_000).build();
    let typical = typical.build();
    let mut sizes = Map::new();
    for (name, t) in [("typical", &typical), ("largest", &largest)] {
        let text = key.sign_ticket(t)?.to_qr_text();
        sizes.insert(
            name.to_string(),
            json!({
                "bytes": key.sign_ticket(t)?.to_bytes().len(),
                "qr_text_len": text.len(),
                "qr_version": render::qr_version(&text)?,
                "ecc": "M",
            }),
        );
    }
    let text = key.sign_ticket(&typical)?.to_qr_text();
    let ctx = VerifyContext { keyring: &keyring, revocations: None, event_id: 1234, now: 1_800_000_000 };
    let verify_us = median_us(2000, || {
        let _ = std::hint::black_box(scanner_core::verify_text(std::hint::black_box(&text), &ctx));
    });
    let mut render_err = None;
    let encode_render_us = median_us(200, || {
        let result = key.sign_ticket(&typical).map(|s| s.to_qr_text()).map(|t| render::png(&t, 8));
        if let Ok(Err(e)) = result {
            render_err = Some(e);
        }
    });
    if let Some(e) = render_err {
        return Err(e.into());
    }
    Ok(json!({
        "sizes": sizes,
        "verify_us_median": round3(verify_us),
        "sign_encode_render_png_ms_median": round3(encode_render_us / 1000.0),
    }))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut report = Map::new();
    report.insert("ticket".to_string(), ticket_section()?);
    report.insert("decode".to_string(), decode_section(&args)?);
    println!("{}", serde_json::to_string_pretty(&Value::Object(report))?);
    Ok(())
}
