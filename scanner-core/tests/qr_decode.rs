//! QR decoding: render → degrade → decode round trips, hostile inputs, and file decoding.

use std::path::PathBuf;

use proptest::prelude::*;
use scanner_core::error::{DecodeKind, Error};
use scanner_core::qr::corpus::{self, generate_frame, SplitMix64, Variant, FRAME_HEIGHT, FRAME_WIDTH};
use scanner_core::qr::decode::{decode_file, decode_image, decode_luma, decode_luma_detailed, Pass};

/// Mild severity: every variant's degradation is present but a good decoder must still read the frame.
const MILD: f32 = 0.1;

fn assert_round_trip(variant: Variant, seed: u64) {
    let frame = generate_frame(variant, 0, MILD, seed);
    assert_eq!(frame.luma.len(), FRAME_WIDTH * FRAME_HEIGHT);
    let decoded = decode_luma(frame.width, frame.height, &frame.luma);
    assert_eq!(decoded.as_deref(), Some(frame.expected.as_str()), "{} frame (seed {seed}) not read", variant.name());
}

#[test]
fn clean_round_trip() {
    assert_round_trip(Variant::Clean, 1);
}

#[test]
fn blur_round_trip() {
    assert_round_trip(Variant::Blur, 2);
}

#[test]
fn noise_round_trip() {
    assert_round_trip(Variant::Noise, 3);
}

#[test]
fn rotation_round_trip() {
    assert_round_trip(Variant::Rotation, 4);
}

#[test]
fn perspective_round_trip() {
    assert_round_trip(Variant::Perspective, 5);
}

#[test]
fn small_modules_round_trip() {
    assert_round_trip(Variant::SmallModules, 6);
}

#[test]
fn low_contrast_round_trip() {
    assert_round_trip(Variant::LowContrast, 7);
}

#[test]
fn combined_round_trip() {
    assert_round_trip(Variant::Combined, 8);
}

#[test]
fn dark_gray_on_gray_decodes() {
    // 20 luma levels of contrast: every 8×8 block looks "flat" to zxing's stock binariser, which reads nothing.
    let mut rng = SplitMix64::new(99);
    let text = corpus::ticket_text(&mut rng);
    let mut scene = corpus::Scene::clean(&mut rng);
    scene.paper = 120.0;
    scene.ink = 100.0;
    scene.noise_sigma = 1.0;
    let luma = corpus::render_text(&text, &scene, &mut rng);
    assert_eq!(decode_luma(FRAME_WIDTH, FRAME_HEIGHT, &luma), Some(text));
}

#[test]
fn clean_frames_are_read_by_the_first_pass() {
    // The common case must not fall through to the slower fallback passes.
    for seed in 40..43 {
        let frame = generate_frame(Variant::Clean, 0, 0.0, seed);
        let decoded = decode_luma_detailed(frame.width, frame.height, &frame.luma).expect("clean frame decodes");
        assert_eq!(decoded.text, frame.expected);
        assert_eq!(decoded.pass, Pass::Raw, "seed {seed}");
    }
}

#[test]
fn corpus_is_deterministic_and_ticket_shaped() {
    let a = generate_frame(Variant::Combined, 3, 0.5, 42);
    let b = generate_frame(Variant::Combined, 3, 0.5, 42);
    assert_eq!(a.luma, b.luma);
    assert_eq!(a.expected, b.expected);
    let c = generate_frame(Variant::Combined, 3, 0.5, 43);
    assert_ne!(a.expected, c.expected);

    let mut rng = SplitMix64::new(7);
    for _ in 0..50 {
        let text = corpus::ticket_text(&mut rng);
        assert!(text.starts_with("TK1:"));
        assert!((135..=147).contains(&text.len()), "length {}", text.len());
        assert!(text[4..].bytes().all(|b| b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:".contains(&b)));
        // Alphanumeric mode at EC level M: ticket texts are version 6 codes.
        let code = qrcode::QrCode::with_error_correction_level(&text, qrcode::EcLevel::M).expect("fits");
        assert_eq!(code.version(), qrcode::Version::Normal(6));
    }
}

#[test]
fn corpus_covers_every_variant_with_graded_severity() {
    let frames = corpus::generate(3, 5);
    assert_eq!(frames.len(), 3 * Variant::ALL.len());
    for variant in Variant::ALL {
        let severities: Vec<f32> = frames.iter().filter(|f| f.variant == variant).map(|f| f.severity).collect();
        assert_eq!(severities, vec![0.0, 0.5, 1.0], "{}", variant.name());
        assert_eq!(Variant::from_name(variant.name()), Some(variant));
    }
}

#[test]
fn featureless_frames_decode_to_none() {
    let (w, h) = (FRAME_WIDTH, FRAME_HEIGHT);
    assert_eq!(decode_luma(w, h, &vec![0u8; w * h]), None);
    assert_eq!(decode_luma(w, h, &vec![255u8; w * h]), None);
    assert_eq!(decode_luma(w, h, &vec![128u8; w * h]), None);
    let mut rng = SplitMix64::new(11);
    let garbage: Vec<u8> = (0..w * h).map(|_| rng.next_u64() as u8).collect();
    assert_eq!(decode_luma(w, h, &garbage), None);
    // Black and white checkerboards and stripes: lots of edges, no code.
    let checker: Vec<u8> = (0..w * h).map(|i| if ((i % w) / 3 + (i / w) / 3) % 2 == 0 { 0 } else { 255 }).collect();
    assert_eq!(decode_luma(w, h, &checker), None);
}

#[test]
fn zero_sizes_and_mismatched_buffers_decode_to_none() {
    assert_eq!(decode_luma(0, 0, &[]), None);
    assert_eq!(decode_luma(0, 10, &[]), None);
    assert_eq!(decode_luma(10, 0, &[]), None);
    assert_eq!(decode_luma(0, 0, &[1, 2, 3]), None);
    assert_eq!(decode_luma(10, 10, &[0; 99]), None);
    assert_eq!(decode_luma(10, 10, &[0; 101]), None);
    // A valid frame with the wrong dimensions claimed must not be read (nor panic).
    let frame = generate_frame(Variant::Clean, 0, 0.0, 1);
    assert_eq!(decode_luma(frame.width + 1, frame.height, &frame.luma), None);
    assert_eq!(decode_luma(frame.height, frame.width, &frame.luma[..frame.luma.len() - 1]), None);
}

#[test]
fn tiny_and_huge_dimensions_decode_to_none() {
    for (w, h) in [(1, 1), (1, 7), (7, 1), (7, 7), (8, 8), (9, 3), (21, 21), (1, 5000), (5000, 1), (17, 300)] {
        assert_eq!(decode_luma(w, h, &vec![0x55; w * h]), None, "{w}x{h}");
    }
    // Products that overflow usize, or are absurd, with small buffers.
    assert_eq!(decode_luma(usize::MAX, 2, &[0; 16]), None);
    assert_eq!(decode_luma(usize::MAX, usize::MAX, &[]), None);
    assert_eq!(decode_luma(1 << 20, 1 << 20, &[0; 64]), None);
    assert_eq!(decode_luma(1 << 40, 1, &[]), None);
}

#[test]
fn decode_image_reads_rgb_images() {
    let frame = generate_frame(Variant::Clean, 0, 0.0, 21);
    let gray = image::GrayImage::from_raw(frame.width as u32, frame.height as u32, frame.luma.clone()).expect("size");
    let rgb = image::DynamicImage::ImageLuma8(gray).to_rgb8();
    assert_eq!(decode_image(&image::DynamicImage::ImageRgb8(rgb)).as_deref(), Some(frame.expected.as_str()));
}

/// A fresh directory under the system temp dir, unique per test and process.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scanner-core-qr-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

#[test]
fn decode_file_reads_png_and_jpeg() {
    let dir = temp_dir("png-jpeg");
    let frame = generate_frame(Variant::Clean, 0, 0.0, 31);
    let gray = image::GrayImage::from_raw(frame.width as u32, frame.height as u32, frame.luma.clone()).expect("size");

    let png = dir.join("ticket.png");
    gray.save_with_format(&png, image::ImageFormat::Png).expect("write png");
    assert_eq!(decode_file(&png).expect("png readable").as_deref(), Some(frame.expected.as_str()));

    // Saved without an extension: the format must be sniffed from the content.
    let jpeg = dir.join("ticket-photo");
    let file = std::fs::File::create(&jpeg).expect("create jpeg");
    image::codecs::jpeg::JpegEncoder::new_with_quality(file, 85).encode_image(&gray).expect("write jpeg");
    assert_eq!(decode_file(&jpeg).expect("jpeg readable").as_deref(), Some(frame.expected.as_str()));

    // A readable image without a code is Ok(None), not an error.
    let blank = dir.join("blank.png");
    image::GrayImage::from_pixel(64, 64, image::Luma([255])).save(&blank).expect("write blank");
    assert_eq!(decode_file(&blank).expect("blank readable"), None);

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn decode_file_rejects_non_images_and_missing_files() {
    let dir = temp_dir("non-image");
    let text = dir.join("notes.png");
    std::fs::write(&text, b"this is not an image, despite its name").expect("write");
    let err = decode_file(&text).expect_err("text file must not decode");
    assert!(matches!(err, Error::Decode(DecodeKind::Image { .. })), "{err:?}");
    assert!(err.to_string().contains("notes.png"), "message names the file: {err}");

    let truncated = dir.join("truncated.png");
    let frame = generate_frame(Variant::Clean, 0, 0.0, 32);
    let gray = image::GrayImage::from_raw(frame.width as u32, frame.height as u32, frame.luma).expect("size");
    gray.save(&truncated).expect("write png");
    let bytes = std::fs::read(&truncated).expect("read back");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).expect("truncate");
    assert!(matches!(decode_file(&truncated), Err(Error::Decode(DecodeKind::Image { .. }))));

    let missing = dir.join("missing.png");
    assert!(matches!(decode_file(&missing), Err(Error::Decode(DecodeKind::Io { .. }))));
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any dimensions with any buffer: no panic, and mismatched lengths are always None.
    #[test]
    fn random_buffers_never_panic(width in 0usize..160, height in 0usize..160, len in 0usize..30_000, seed: u64) {
        let mut rng = SplitMix64::new(seed);
        let buffer: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let result = decode_luma(width, height, &buffer);
        if width.checked_mul(height) != Some(len) {
            prop_assert_eq!(result, None);
        }
    }

    /// Correctly sized random frames, including structured ones (blocks of random gray): no panic.
    #[test]
    fn random_frames_never_panic(width in 1usize..200, height in 1usize..200, block in 1usize..12, seed: u64) {
        let mut rng = SplitMix64::new(seed);
        let cells: Vec<u8> = (0..width.div_ceil(block) * height.div_ceil(block)).map(|_| rng.next_u64() as u8).collect();
        let frame: Vec<u8> =
            (0..width * height).map(|i| cells[(i / width / block) * width.div_ceil(block) + (i % width) / block]).collect();
        let _ = decode_luma(width, height, &frame);
    }
}
