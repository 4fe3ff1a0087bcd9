//! Deterministic generator of degraded camera frames for tests and benchmarks.
//!
//! Every frame is a grayscale image (640×480, or 1280×720 / 1920×1080 for the large-frame variants) of a
//! ticket QR code as a phone camera would see it: the code is printed on a paper card lying on a cluttered
//! table (or shown on a phone/monitor screen), the card is placed in 3-D in front of a pinhole camera, and the
//! image is formed by integrating the scene over each pixel's area (so small or rotated modules alias the way
//! they do on a real sensor, and a screen's pixel grid beats against the camera's into moiré). Lighting, lens
//! blur, motion blur and sensor noise are then applied in the order a camera applies them. The `no_code`
//! variant holds no code at all (text, noise, textures, tiles, clutter): a decoder must return nothing, fast.
//!
//! The generator is seeded and uses its own tiny PRNG, so the same seed gives bit-identical frames on every
//! platform and in every build; tests, the Rust benchmark and the Python peers (zxing-cpp, zbar) therefore
//! decode exactly the same pixels. Severity is graded within each variant from mild (`0.0`) to genuinely hard
//! (`1.0`) so that the corpus separates decoders instead of flattering one of them.

use qrcode::{Color, EcLevel, QrCode};

/// Width of every generated frame (a common camera preview size).
pub const FRAME_WIDTH: usize = 640;
/// Height of every generated frame.
pub const FRAME_HEIGHT: usize = 480;

/// Default seed used by the benchmark, so that runs on different days compare like with like.
pub const DEFAULT_SEED: u64 = 0x7443_4B31_5343_414E;

/// RFC 9285 base45 alphabet. Tickets are `"TK1:"` + base45, which the `qrcode` crate encodes in the
/// compact alphanumeric mode.
const BASE45_ALPHABET: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

/// Kind of degradation applied to a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// Well lit, in focus, nearly square to the camera.
    Clean,
    /// Defocus (gaussian) or motion (line) blur, from a fraction of a module up to about one module.
    Blur,
    /// Gaussian sensor noise plus salt-and-pepper (dead/hot pixels, dust).
    Noise,
    /// Arbitrary in-plane rotation over the full circle.
    Rotation,
    /// Card tilted away from the camera: keystone and foreshortening.
    Perspective,
    /// About 2 px per module: the ticket held far away.
    SmallModules,
    /// Dark gray on mid gray (glare, faded print, dim room) with uneven lighting.
    LowContrast,
    /// Several of the above at once, at moderate severity.
    Combined,
    /// Light-on-dark code (dark-mode wallets and apps), with rising rotation, tilt, blur and noise.
    Inverted,
    /// Mirror-image code (a code seen through glass or a front camera's mirrored preview), same degradations.
    Mirrored,
    /// The code photographed on a phone or monitor screen: its pixel grid and RGB subpixel stripes beat
    /// against the camera's sampling into moiré.
    ScreenMoire,
    /// Card tilted 50–66° away from the camera: strong keystone, the far side foreshortened to 2–3 px.
    SteepPerspective,
    /// Linear motion blur from half a module to two modules long (hand shake, a walking guest).
    MotionBlur,
    /// Frames without any code (printed text, sensor noise, table textures, tiles, clutter): the expected
    /// text is empty and a decoder must return nothing.
    NoCode,
    /// 1280×720 camera frame, code from about 3 to 9 px per module.
    Large720,
    /// 1920×1080 camera frame, code from about 4.5 to 13 px per module.
    Large1080,
}

impl Variant {
    /// All variants in report order.
    pub const ALL: [Variant; 16] = [
        Variant::Clean,
        Variant::Blur,
        Variant::Noise,
        Variant::Rotation,
        Variant::Perspective,
        Variant::SmallModules,
        Variant::LowContrast,
        Variant::Combined,
        Variant::Inverted,
        Variant::Mirrored,
        Variant::ScreenMoire,
        Variant::SteepPerspective,
        Variant::MotionBlur,
        Variant::NoCode,
        Variant::Large720,
        Variant::Large1080,
    ];

    /// The original degraded corpus (640×480 printed codes), whose totals stay comparable run over run.
    pub const BASE: [Variant; 8] = [
        Variant::Clean,
        Variant::Blur,
        Variant::Noise,
        Variant::Rotation,
        Variant::Perspective,
        Variant::SmallModules,
        Variant::LowContrast,
        Variant::Combined,
    ];

    /// Whether the variant belongs to [`Variant::BASE`].
    pub fn is_base(self) -> bool {
        Variant::BASE.contains(&self)
    }

    /// Whether frames of this variant hold a code (all but [`Variant::NoCode`]).
    pub fn has_code(self) -> bool {
        self != Variant::NoCode
    }

    /// Frame size (width, height) of this variant.
    pub fn frame_size(self) -> (usize, usize) {
        match self {
            Variant::Large720 => (1280, 720),
            Variant::Large1080 => (1920, 1080),
            _ => (FRAME_WIDTH, FRAME_HEIGHT),
        }
    }

    /// Stable snake_case name used in file names and JSON reports.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Clean => "clean",
            Variant::Blur => "blur",
            Variant::Noise => "noise",
            Variant::Rotation => "rotation",
            Variant::Perspective => "perspective",
            Variant::SmallModules => "small_modules",
            Variant::LowContrast => "low_contrast",
            Variant::Combined => "combined",
            Variant::Inverted => "inverted",
            Variant::Mirrored => "mirrored",
            Variant::ScreenMoire => "screen_moire",
            Variant::SteepPerspective => "steep_perspective",
            Variant::MotionBlur => "motion_blur",
            Variant::NoCode => "no_code",
            Variant::Large720 => "large_720p",
            Variant::Large1080 => "large_1080p",
        }
    }

    /// Inverse of [`Variant::name`].
    pub fn from_name(name: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// One generated camera frame and the text its QR code carries.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Degradation family.
    pub variant: Variant,
    /// Index of the frame within its variant.
    pub index: usize,
    /// 0.0 (mild) ..= 1.0 (hard).
    pub severity: f32,
    /// Frame width in pixels.
    pub width: usize,
    /// Frame height in pixels.
    pub height: usize,
    /// Row-major 8-bit luma, `width * height` bytes.
    pub luma: Vec<u8>,
    /// Text encoded in the QR code; a decoder must return exactly this. Empty for [`Variant::NoCode`]
    /// frames, which hold no code: a decoder must return nothing.
    pub expected: String,
}

impl Frame {
    /// File name used when the corpus is written to disk, e.g. `blur_007.png`.
    pub fn file_name(&self) -> String {
        format!("{}_{:03}.png", self.variant.name(), self.index)
    }
}

/// SplitMix64: tiny, fast, statistically good enough for test images, and identical on every platform
/// (which a dependency's PRNG does not promise across versions).
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        // 24 bits is exactly the f32 mantissa, so every value is representable and < 1.0.
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next_f32()
    }

    /// Uniform integer in `0..n` (`n > 0`; returns 0 for `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        // Multiply-shift instead of modulo: no bias worth caring about for test data, and no division.
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// Standard normal sample (Box–Muller).
    pub fn gaussian(&mut self) -> f32 {
        let u1 = self.next_f32().max(1e-7);
        let u2 = self.next_f32();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
}

/// A random ticket-shaped text: `"TK1:"` followed by the base45 encoding length of 87–95 random bytes
/// (135–147 characters in total), using random base45 characters.
pub fn ticket_text(rng: &mut SplitMix64) -> String {
    let bytes = 87 + rng.below(9);
    let chars = bytes / 2 * 3 + (bytes % 2) * 2;
    let mut text = String::with_capacity(4 + chars);
    text.push_str("TK1:");
    for _ in 0..chars {
        text.push(BASE45_ALPHABET[rng.below(BASE45_ALPHABET.len())] as char);
    }
    text
}

/// Everything that determines how one frame looks. Public so tests can build a specific situation.
#[derive(Clone, Debug)]
pub struct Scene {
    /// Size of one module in pixels at the centre of the code (before perspective).
    pub module_px: f32,
    /// In-plane rotation of the card, degrees.
    pub rotation_deg: f32,
    /// Tilt of the card away from the image plane, degrees (0 = facing the camera).
    pub tilt_deg: f32,
    /// Axis (within the card) about which the card is tilted, degrees.
    pub tilt_axis_deg: f32,
    /// Offset of the code centre from the frame centre, pixels.
    pub offset: (f32, f32),
    /// Luma of well-lit white paper at the frame centre (0–255).
    pub paper: f32,
    /// Luma of well-lit ink at the frame centre (0–255); `paper - ink` is the contrast.
    pub ink: f32,
    /// Illumination change across the frame (0 = even; 0.6 = one corner at 70 %, the opposite at 130 %).
    pub gradient: f32,
    /// Direction of the illumination fall-off, degrees.
    pub gradient_deg: f32,
    /// Sigma of the gaussian lens blur, pixels.
    pub blur_sigma: f32,
    /// Length of the linear motion blur, pixels (0 = none).
    pub motion_px: f32,
    /// Direction of the motion blur, degrees.
    pub motion_deg: f32,
    /// Sigma of additive gaussian sensor noise, luma levels.
    pub noise_sigma: f32,
    /// Fraction of pixels replaced by pure black or white.
    pub salt_pepper: f32,
    /// Frame size in pixels (width, height); the camera's field of view is the same at every size.
    pub frame: (usize, usize),
    /// Light modules on a dark background (dark-mode screens): the card's reflectance is inverted.
    pub inverted: bool,
    /// The code is a mirror image of itself (columns reversed).
    pub mirrored: bool,
    /// The code is shown on a screen with this pixel grid instead of printed on paper.
    pub screen: Option<Screen>,
}

/// A display's pixel grid, in the plane of the card (the screen).
#[derive(Clone, Debug)]
pub struct Screen {
    /// Screen pixels per QR module (an integer in practice: apps draw modules on whole pixels).
    pub px_per_module: f32,
    /// Dark gap between pixel rows, as a fraction of the pixel pitch.
    pub row_gap: f32,
    /// Dark gap around each R/G/B subpixel stripe, as a fraction of the stripe width.
    pub stripe_gap: f32,
    /// Side of the light-sensitive part of a camera pixel, as a fraction of the pixel pitch: a sensor that
    /// does not integrate over its whole pitch (small photodiodes, a Bayer mosaic's per-colour sampling)
    /// aliases a grid near its own pitch into broad bright and dark bands instead of averaging it away.
    pub aperture: f32,
}

impl Screen {
    /// Relative luma emitted at screen position (u, v) in modules by a white area: R, G and B stripes (each
    /// a third of a pixel, weighted by their share of luma) separated by dark gaps, with mean 1 over a pixel.
    fn factor(&self, u: f32, v: f32) -> f32 {
        let (su, sv) = (u * self.px_per_module, v * self.px_per_module);
        let (fu, fv) = (su - su.floor(), sv - sv.floor());
        if fv < self.row_gap {
            return 0.0;
        }
        let stripe = fu * 3.0;
        let within = stripe - stripe.floor();
        if within < self.stripe_gap {
            return 0.0;
        }
        // Rec. 601 luma weights of R, G, B, times 3 so that an even white averages 1 before the gaps.
        let weight = match stripe as usize {
            0 => 0.897,
            1 => 1.761,
            _ => 0.342,
        };
        weight / ((1.0 - self.row_gap) * (1.0 - self.stripe_gap))
    }
}

impl Scene {
    /// A well-lit, sharp, square-on scene with the camera's unavoidable baseline softness and noise.
    pub fn clean(rng: &mut SplitMix64) -> Scene {
        Scene {
            module_px: rng.range(3.5, 7.0),
            rotation_deg: rng.range(-4.0, 4.0),
            tilt_deg: rng.range(0.0, 5.0),
            tilt_axis_deg: rng.range(0.0, 360.0),
            offset: (rng.range(-60.0, 60.0), rng.range(-40.0, 40.0)),
            paper: rng.range(200.0, 235.0),
            ink: rng.range(20.0, 45.0),
            gradient: rng.range(0.0, 0.15),
            gradient_deg: rng.range(0.0, 360.0),
            // Even a focused phone lens spreads a point over about a pixel.
            blur_sigma: rng.range(0.4, 0.7),
            motion_px: 0.0,
            motion_deg: 0.0,
            noise_sigma: rng.range(1.5, 3.5),
            salt_pepper: 0.0,
            frame: (FRAME_WIDTH, FRAME_HEIGHT),
            inverted: false,
            mirrored: false,
            screen: None,
        }
    }

    /// Focal length in pixels: the same field of view at every frame size.
    fn focal_px(&self) -> f32 {
        FOCAL_PX * self.frame.0 as f32 / FRAME_WIDTH as f32
    }

    /// Everyday handling, graded: any rotation, a tilt up to 35°, a little blur and noise.
    fn apply_handling(&mut self, rng: &mut SplitMix64, severity: f32) {
        self.rotation_deg = rng.range(0.0, 360.0);
        self.tilt_deg = 35.0 * severity * rng.range(0.5, 1.0);
        self.tilt_axis_deg = rng.range(0.0, 360.0);
        self.blur_sigma = self.blur_sigma.max(self.module_px * 0.3 * severity * rng.range(0.5, 1.0));
        self.noise_sigma = self.noise_sigma.max(4.0 + 16.0 * severity * rng.range(0.5, 1.0));
    }

    fn apply_screen(&mut self, rng: &mut SplitMix64, severity: f32) {
        // A phone held up to the camera: the screen pixel is 0.75–1.35 camera pixels, where its grid beats
        // hardest against the sensor's; a sharper lens (less blur) and a smaller sensing aperture at higher
        // severity keep more of the grid, so the beat bands grow from faint to module-erasing.
        self.module_px = rng.range(3.5, 7.5);
        let screen_px = rng.range(0.75, 1.35);
        self.screen = Some(Screen {
            px_per_module: (self.module_px / screen_px).round().max(2.0),
            row_gap: 0.15 + 0.3 * severity * rng.range(0.7, 1.0),
            stripe_gap: 0.05 + 0.25 * severity * rng.range(0.7, 1.0),
            aperture: 1.0 - 0.6 * severity * rng.range(0.8, 1.0),
        });
        // Emissive: black pixels are black, white ones bright.
        self.paper = rng.range(120.0, 170.0);
        self.ink = rng.range(5.0, 25.0);
        self.blur_sigma = rng.range(0.3, 0.45) + 0.3 * (1.0 - severity);
        self.rotation_deg = rng.range(-15.0, 15.0);
        self.tilt_deg = rng.range(0.0, 25.0);
        self.tilt_axis_deg = rng.range(0.0, 360.0);
        self.gradient = rng.range(0.0, 0.3);
    }

    fn apply_steep_perspective(&mut self, rng: &mut SplitMix64, severity: f32) {
        // About 60°: the far side of the code is foreshortened to half and the keystone is strong.
        self.tilt_deg = 50.0 + 16.0 * severity * rng.range(0.85, 1.0);
        self.tilt_axis_deg = rng.range(0.0, 360.0);
        self.rotation_deg += rng.range(-25.0, 25.0);
        self.module_px = rng.range(5.0, 7.5);
        self.offset = (self.offset.0 * 0.5, self.offset.1 * 0.5);
    }

    fn apply_motion(&mut self, rng: &mut SplitMix64, severity: f32) {
        self.motion_px = self.module_px * (0.5 + 1.5 * severity * rng.range(0.85, 1.0));
        self.motion_deg = rng.range(0.0, 180.0);
        self.rotation_deg += rng.range(-30.0, 30.0);
    }

    fn apply_large(&mut self, rng: &mut SplitMix64, severity: f32, frame: (usize, usize)) {
        let scale = frame.0 as f32 / FRAME_WIDTH as f32;
        self.frame = frame;
        self.module_px = scale * rng.range(1.5, 4.4);
        self.offset = (self.offset.0 * scale, self.offset.1 * scale);
        self.rotation_deg = rng.range(0.0, 360.0);
        self.tilt_deg = 30.0 * severity * rng.range(0.5, 1.0);
        self.tilt_axis_deg = rng.range(0.0, 360.0);
        self.blur_sigma = self.blur_sigma.max(self.module_px * 0.25 * severity * rng.range(0.5, 1.0));
        self.noise_sigma = self.noise_sigma.max(2.0 + 10.0 * severity * rng.range(0.5, 1.0));
    }

    fn apply_blur(&mut self, rng: &mut SplitMix64, severity: f32) {
        // Blur hurts in proportion to the module size, so scale it by the module size: from ~0.15 of a
        // module (barely visible) to ~0.75 of a module (neighbouring modules merge into gray).
        if rng.next_f32() < 0.6 {
            self.blur_sigma = self.blur_sigma.max(self.module_px * (0.15 + 0.6 * severity));
        } else {
            // Hand shake: a streak from half a module to ~2.5 modules long.
            self.motion_px = self.module_px * (0.5 + 2.0 * severity);
            self.motion_deg = rng.range(0.0, 180.0);
        }
    }

    fn apply_noise(&mut self, rng: &mut SplitMix64, severity: f32) {
        // Dim-light ISO noise from barely visible to sigma ~55 luma levels, plus dust/dead pixels.
        self.noise_sigma = self.noise_sigma.max(4.0 + 50.0 * severity * rng.range(0.8, 1.1));
        self.salt_pepper = 0.08 * severity * severity * rng.range(0.5, 1.0);
    }

    fn apply_rotation(&mut self, rng: &mut SplitMix64) {
        self.rotation_deg = rng.range(0.0, 360.0);
    }

    fn apply_perspective(&mut self, rng: &mut SplitMix64, severity: f32) {
        // Beyond ~65 degrees the far side is foreshortened below 2 px per module at typical distances.
        self.tilt_deg = 12.0 + 60.0 * severity * rng.range(0.85, 1.0);
        self.tilt_axis_deg = rng.range(0.0, 360.0);
        self.rotation_deg += rng.range(-20.0, 20.0);
        // Steward holds the phone close when the card is tilted, which strengthens the keystone.
        self.module_px = self.module_px.max(rng.range(4.5, 6.5));
    }

    fn apply_small_modules(&mut self, rng: &mut SplitMix64, severity: f32) {
        // 2 px per module is at the Nyquist limit: from 2.3 px (readable) down to 1.7 px (aliased).
        self.module_px = 2.3 - 0.6 * severity + rng.range(-0.05, 0.05);
        self.rotation_deg += rng.range(-10.0, 10.0) * (0.3 + severity);
    }

    fn apply_low_contrast(&mut self, rng: &mut SplitMix64, severity: f32) {
        // Dark gray on mid gray: glare on a phone screen or faded thermal print in a dim hall.
        let paper = rng.range(110.0, 165.0);
        let contrast = 70.0 - 55.0 * severity * rng.range(0.9, 1.0);
        self.paper = paper;
        self.ink = paper - contrast;
        self.gradient = 0.2 + 0.4 * severity * rng.range(0.7, 1.0);
        self.gradient_deg = rng.range(0.0, 360.0);
    }
}

/// Builds the scene for frame `index` of `variant` at `severity` (0.0 ..= 1.0).
pub fn scene_for(variant: Variant, severity: f32, rng: &mut SplitMix64) -> Scene {
    let severity = severity.clamp(0.0, 1.0);
    let mut scene = Scene::clean(rng);
    match variant {
        Variant::Clean => {}
        Variant::Blur => scene.apply_blur(rng, severity),
        Variant::Noise => scene.apply_noise(rng, severity),
        Variant::Rotation => scene.apply_rotation(rng),
        Variant::Perspective => scene.apply_perspective(rng, severity),
        Variant::SmallModules => scene.apply_small_modules(rng, severity),
        Variant::LowContrast => scene.apply_low_contrast(rng, severity),
        Variant::Combined => {
            // Two or three distinct degradations, each at a moderate share of the severity, plus rotation.
            scene.apply_rotation(rng);
            let mut pool = [0u8, 1, 2, 3, 4];
            let count = 2 + rng.below(2);
            for k in 0..count {
                let pick = k + rng.below(pool.len() - k);
                pool.swap(k, pick);
            }
            let chosen = &mut pool[..count];
            // Scale-changing degradations first: blur is defined relative to the module size, so it must see
            // the final module size (a 1.8-module blur on 2 px modules would be unreadable, not moderate).
            chosen.sort_unstable();
            for &degradation in chosen.iter() {
                let s = 0.15 + 0.55 * severity * rng.range(0.6, 1.0);
                match degradation {
                    0 => scene.apply_perspective(rng, s),
                    1 => scene.apply_small_modules(rng, s),
                    2 => scene.apply_low_contrast(rng, s),
                    3 => scene.apply_noise(rng, s),
                    _ => scene.apply_blur(rng, s),
                }
            }
        }
        Variant::Inverted => {
            scene.inverted = true;
            scene.apply_handling(rng, severity);
        }
        Variant::Mirrored => {
            scene.mirrored = true;
            scene.apply_handling(rng, severity);
        }
        Variant::ScreenMoire => scene.apply_screen(rng, severity),
        Variant::SteepPerspective => scene.apply_steep_perspective(rng, severity),
        Variant::MotionBlur => scene.apply_motion(rng, severity),
        // The scene of a frame without a code is drawn by `render_no_code`; only lighting and sensor apply.
        Variant::NoCode => {
            scene.apply_rotation(rng);
            scene.tilt_deg = rng.range(0.0, 40.0);
            scene.gradient = rng.range(0.0, 0.5);
            scene.blur_sigma = rng.range(0.4, 1.5);
            scene.noise_sigma = rng.range(2.0, 8.0);
        }
        Variant::Large720 => scene.apply_large(rng, severity, Variant::Large720.frame_size()),
        Variant::Large1080 => scene.apply_large(rng, severity, Variant::Large1080.frame_size()),
    }
    scene
}

/// Seed of one frame, derived so that adding frames to one variant does not change any other frame.
fn frame_seed(seed: u64, variant: Variant, index: usize) -> u64 {
    let mut rng = SplitMix64::new(seed ^ ((variant as u64 + 1) << 56) ^ (index as u64).wrapping_mul(0x9E37_79B9));
    rng.next_u64()
}

/// Generates `frames_per_variant` frames of every variant, severity rising linearly within each variant.
pub fn generate(frames_per_variant: usize, seed: u64) -> Vec<Frame> {
    let mut frames = Vec::with_capacity(frames_per_variant * Variant::ALL.len());
    for variant in Variant::ALL {
        for index in 0..frames_per_variant {
            let severity = if frames_per_variant > 1 { index as f32 / (frames_per_variant - 1) as f32 } else { 0.0 };
            frames.push(generate_frame(variant, index, severity, frame_seed(seed, variant, index)));
        }
    }
    frames
}

/// Generates one frame of `variant` at `severity` with a random ticket text (or, for
/// [`Variant::NoCode`], a scene without any code and an empty expected text).
pub fn generate_frame(variant: Variant, index: usize, severity: f32, seed: u64) -> Frame {
    let mut rng = SplitMix64::new(seed);
    let text = ticket_text(&mut rng);
    let scene = scene_for(variant, severity, &mut rng);
    let (luma, expected) = if variant.has_code() {
        (render_text(&text, &scene, &mut rng), text)
    } else {
        (render_no_code(index, &scene, &mut rng), String::new())
    };
    Frame {
        variant,
        index,
        severity: severity.clamp(0.0, 1.0),
        width: scene.frame.0,
        height: scene.frame.1,
        luma,
        expected,
    }
}

/// Renders `text` as an EC level M QR code into a degraded frame (of `scene.frame` size) described by `scene`.
///
/// The text must fit in a QR code; ticket texts always do. If it does not, the frame shows an empty card,
/// which a decoder must then fail to read.
pub fn render_text(text: &str, scene: &Scene, rng: &mut SplitMix64) -> Vec<u8> {
    let (mut modules, n) = match QrCode::with_error_correction_level(text, EcLevel::M) {
        Ok(code) => {
            let n = code.width();
            (code.into_colors().into_iter().map(|c| c == Color::Dark).collect::<Vec<_>>(), n)
        }
        Err(_) => (Vec::new(), 0),
    };
    if scene.mirrored {
        for row in modules.chunks_exact_mut(n.max(1)) {
            row.reverse();
        }
    }
    render_modules(&modules, n, scene, rng)
}

/// Kinds of scene without a code, cycled through by frame index.
const NO_CODE_KINDS: usize = 5;

/// Renders a frame that holds no code: `index % 5` picks printed text, heavy sensor noise, a table
/// texture with objects, a tiled/grid surface, or rectangles of random gray (posters, boxes).
fn render_no_code(index: usize, scene: &Scene, rng: &mut SplitMix64) -> Vec<u8> {
    // The "card" spans about 41 modules as a ticket would; every unit below is in modules.
    let n = 41;
    match index % NO_CODE_KINDS {
        0 => {
            // Lines of text-like glyphs: each glyph a random 3×5 bit pattern, words separated by spaces.
            let rows: Vec<Vec<(f32, f32, u16)>> = (0..24)
                .map(|_| {
                    let mut glyphs = Vec::new();
                    let mut x = -20.0;
                    while x < 60.0 {
                        let width = rng.range(0.9, 1.5);
                        glyphs.push((x, width, (rng.next_u64() & 0x7FFF) as u16));
                        x += width + if rng.next_f32() < 0.2 { rng.range(0.8, 2.0) } else { 0.3 };
                    }
                    glyphs
                })
                .collect();
            let base = rng.range(0.3, 0.6);
            render_scene(n, scene, rng, 0.5, |u, v| {
                let line = ((v + 30.0) / 3.0).floor();
                let within = (v + 30.0) - 3.0 * line;
                let Some(glyphs) = rows.get(line as usize).filter(|_| line >= 0.0) else { return base };
                if !(0.5..2.5).contains(&within) {
                    return 1.0;
                }
                let k = glyphs.partition_point(|g| g.0 <= u);
                let Some(&(x, width, bits)) = k.checked_sub(1).and_then(|k| glyphs.get(k)) else { return 1.0 };
                if u >= x + width {
                    return 1.0;
                }
                let (gx, gy) = (((u - x) / width * 3.0) as u32, ((within - 0.5) / 2.0 * 5.0) as u32);
                if bits >> (gy.min(4) * 3 + gx.min(2)) & 1 == 1 {
                    0.0
                } else {
                    1.0
                }
            })
        }
        1 => {
            // A dark, noisy scene: mid-gray with low-frequency blotches under very high sensor noise.
            let mut noisy = scene.clone();
            noisy.noise_sigma = rng.range(25.0, 60.0);
            noisy.salt_pepper = rng.range(0.0, 0.05);
            let (fa, fb) = (rng.range(0.05, 0.3), rng.range(0.05, 0.3));
            render_scene(n, &noisy, rng, 0.5, |u, v| 0.5 + 0.2 * (u * fa).sin() * (v * fb).cos())
        }
        2 => {
            let table = Table::new(rng, n as f32);
            render_scene(n, scene, rng, 0.5, |u, v| table.at(u, v))
        }
        3 => {
            // Tiles, a keyboard, a grid of windows: dark lines of random width on a regular lattice.
            let pitch = rng.range(1.0, 5.0);
            let line = rng.range(0.1, 0.5);
            let (dark, light) = (rng.range(0.0, 0.3), rng.range(0.6, 1.0));
            render_scene(n, scene, rng, 0.5, |u, v| {
                let (fu, fv) = ((u / pitch).rem_euclid(1.0), (v / pitch).rem_euclid(1.0));
                if fu < line || fv < line {
                    dark
                } else {
                    light
                }
            })
        }
        _ => {
            // Clutter: 60 overlapping rectangles of random gray, from fine print to posters.
            let rects: Vec<(f32, f32, f32, f32, f32)> = (0..60)
                .map(|_| {
                    let (w, h) = (rng.range(0.5, 20.0), rng.range(0.5, 20.0));
                    (rng.range(-40.0, 80.0), rng.range(-40.0, 80.0), w, h, rng.next_f32())
                })
                .collect();
            let base = rng.range(0.3, 0.8);
            render_scene(n, scene, rng, 0.5, |u, v| {
                rects
                    .iter()
                    .rev()
                    .find(|&&(x, y, w, h, _)| u >= x && u < x + w && v >= y && v < y + h)
                    .map_or(base, |r| r.4)
            })
        }
    }
}

/// Card layout in module units, relative to the top-left corner of the code.
struct Card {
    left: f32,
    top: f32,
    right: f32,
    bottom: f32,
    /// Printed "text lines" under the code: (top, bottom, right end) in module units.
    lines: Vec<(f32, f32, f32)>,
}

fn reflectance(modules: &[bool], n: usize, card: &Card, u: f32, v: f32, table: &Table) -> f32 {
    let nf = n as f32;
    if u >= 0.0 && v >= 0.0 && u < nf && v < nf {
        let (x, y) = (u as usize, v as usize);
        return if modules.get(y * n + x).copied().unwrap_or(false) { 0.0 } else { 1.0 };
    }
    if u >= card.left && u < card.right && v >= card.top && v < card.bottom {
        for &(top, bottom, end) in &card.lines {
            if v >= top && v < bottom && u >= 0.0 && u < end {
                return 0.0;
            }
        }
        return 1.0;
    }
    table.at(u, v)
}

/// The table the card lies on: wood-grain-like bands and a few dark objects, so that the decoder's
/// finder-pattern search sees edges and clutter outside the card as in a real frame.
struct Table {
    base: f32,
    freq: f32,
    phase: f32,
    blobs: Vec<(f32, f32, f32, f32, f32)>,
}

impl Table {
    fn new(rng: &mut SplitMix64, n: f32) -> Table {
        let blobs = (0..6)
            .map(|_| {
                let cx = rng.range(-3.0 * n, 4.0 * n);
                let cy = rng.range(-3.0 * n, 4.0 * n);
                (cx, cy, rng.range(3.0, 25.0), rng.range(3.0, 25.0), rng.range(0.0, 0.3))
            })
            .collect();
        Table { base: rng.range(0.35, 0.6), freq: rng.range(0.05, 0.3), phase: rng.range(0.0, 6.0), blobs }
    }

    fn at(&self, u: f32, v: f32) -> f32 {
        for &(cx, cy, w, h, r) in &self.blobs {
            if (u - cx).abs() < w && (v - cy).abs() < h {
                return r;
            }
        }
        self.base + 0.08 * (u * self.freq + 0.3 * (v * 0.11).sin() + self.phase).sin()
    }
}

/// 3×3 matrix helpers for the homography between card (module) coordinates and pixels.
type Mat3 = [[f32; 3]; 3];

fn mat_mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut r = [[0.0; 3]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    r
}

fn mat_inverse(m: &Mat3) -> Option<Mat3> {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if det.abs() < 1e-12 {
        return None;
    }
    let inv = 1.0 / det;
    Some([
        [
            (m[1][1] * m[2][2] - m[1][2] * m[2][1]) * inv,
            (m[0][2] * m[2][1] - m[0][1] * m[2][2]) * inv,
            (m[0][1] * m[1][2] - m[0][2] * m[1][1]) * inv,
        ],
        [
            (m[1][2] * m[2][0] - m[1][0] * m[2][2]) * inv,
            (m[0][0] * m[2][2] - m[0][2] * m[2][0]) * inv,
            (m[0][2] * m[1][0] - m[0][0] * m[1][2]) * inv,
        ],
        [
            (m[1][0] * m[2][1] - m[1][1] * m[2][0]) * inv,
            (m[0][1] * m[2][0] - m[0][0] * m[2][1]) * inv,
            (m[0][0] * m[1][1] - m[0][1] * m[1][0]) * inv,
        ],
    ])
}

fn rot_z(deg: f32) -> Mat3 {
    let (s, c) = deg.to_radians().sin_cos();
    [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
}

fn rot_x(deg: f32) -> Mat3 {
    let (s, c) = deg.to_radians().sin_cos();
    [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]]
}

/// Focal length in pixels of a typical phone main camera at 640×480 (about 67° horizontal field of view).
const FOCAL_PX: f32 = 480.0;

/// Homography mapping pixel coordinates to card coordinates in modules (code top-left at (0, 0)).
fn pixel_to_card(n: usize, scene: &Scene) -> Option<Mat3> {
    let half = n as f32 / 2.0;
    // Card plane in camera space: rotate in plane, then tilt about an axis at `tilt_axis_deg`.
    let tilt = mat_mul(&rot_z(scene.tilt_axis_deg), &mat_mul(&rot_x(scene.tilt_deg), &rot_z(-scene.tilt_axis_deg)));
    let r = mat_mul(&tilt, &rot_z(scene.rotation_deg));
    // Distance such that one module at the centre spans `module_px` pixels.
    let focal = scene.focal_px();
    let depth = focal / scene.module_px.max(0.1);
    let tx = scene.offset.0 * depth / focal;
    let ty = scene.offset.1 * depth / focal;
    // Columns: card x axis, card y axis, translation (card point (u - half, v - half, 0)).
    let extrinsic: Mat3 = [
        [r[0][0], r[0][1], tx - half * (r[0][0] + r[0][1])],
        [r[1][0], r[1][1], ty - half * (r[1][0] + r[1][1])],
        [r[2][0], r[2][1], depth - half * (r[2][0] + r[2][1])],
    ];
    let (cx, cy) = (scene.frame.0 as f32 / 2.0, scene.frame.1 as f32 / 2.0);
    let k: Mat3 = [[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]];
    mat_inverse(&mat_mul(&k, &extrinsic))
}

/// Renders a module matrix (`n × n`, `true` = dark) into a degraded frame.
pub fn render_modules(modules: &[bool], n: usize, scene: &Scene, rng: &mut SplitMix64) -> Vec<u8> {
    let nf = n as f32;
    let card = Card {
        left: -4.0 - rng.range(1.0, 4.0),
        top: -4.0 - rng.range(1.0, 4.0),
        right: nf + 4.0 + rng.range(1.0, 6.0),
        bottom: nf + 14.0,
        lines: (0..3)
            .map(|i| {
                let top = nf + 5.0 + 3.0 * i as f32;
                (top, top + 1.2, rng.range(0.4, 1.0) * nf)
            })
            .collect(),
    };
    let table = Table::new(rng, nf);
    let on_card = |u: f32, v: f32| u >= card.left && u < card.right && v >= card.top && v < card.bottom;
    render_scene(n, scene, rng, table.base, |u, v| {
        let r = reflectance(modules, n, &card, u, v, &table);
        if !on_card(u, v) {
            return r;
        }
        let r = if scene.inverted { 1.0 - r } else { r };
        match &scene.screen {
            Some(screen) => r * screen.factor(u - card.left, v - card.top),
            None => r,
        }
    })
}

/// Forms the camera image of a scene whose reflectance at card coordinates (u, v) in modules is
/// `reflect(u, v)`, the card being `n` modules wide and placed as `scene` says.
///
/// `horizon` is the reflectance seen where a pixel's ray runs parallel to the card plane.
fn render_scene(
    n: usize,
    scene: &Scene,
    rng: &mut SplitMix64,
    horizon: f32,
    reflect: impl Fn(f32, f32) -> f32,
) -> Vec<u8> {
    let (w, h) = scene.frame;
    let homography = pixel_to_card(n, scene);

    // 1. Optics: integrate reflectance over each pixel with 4×4 supersampling (8×8 for a screen, whose
    //    subpixel stripes are finer than a camera pixel), which reproduces the partial coverage (gray edge
    //    pixels) and aliasing of a real sensor.
    let ss: usize = if scene.screen.is_some() { 8 } else { 4 };
    let aperture = scene.screen.as_ref().map_or(1.0, |s| s.aperture);
    // Sample offsets within a pixel: evenly spread over the pixel's light-sensitive centre.
    let offsets: Vec<f32> = (0..ss).map(|k| 0.5 + ((k as f32 + 0.5) / ss as f32 - 0.5) * aperture).collect();
    let mut img = vec![0.0f32; w * h];
    if let Some(m) = homography {
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for &dy in &offsets {
                    let py = y as f32 + dy;
                    for &dx in &offsets {
                        let px = x as f32 + dx;
                        let zw = m[2][0] * px + m[2][1] * py + m[2][2];
                        let r = if zw.abs() < 1e-9 {
                            horizon
                        } else {
                            let u = (m[0][0] * px + m[0][1] * py + m[0][2]) / zw;
                            let v = (m[1][0] * px + m[1][1] * py + m[1][2]) / zw;
                            reflect(u, v)
                        };
                        acc += r;
                    }
                }
                img[y * w + x] = acc / (ss * ss) as f32;
            }
        }
    }

    // 2. Lighting: luma = illumination × (ink + reflectance × (paper − ink)), with a linear fall-off across
    //    the frame. Scaling ink and paper by the same illumination is what makes uneven light hard: a dark
    //    module on the bright side can be lighter than paper on the dark side.
    let (gs, gc) = scene.gradient_deg.to_radians().sin_cos();
    let diag = ((w * w + h * h) as f32).sqrt() / 2.0;
    for y in 0..h {
        for x in 0..w {
            let d = ((x as f32 - w as f32 / 2.0) * gc + (y as f32 - h as f32 / 2.0) * gs) / diag;
            let light = 1.0 - 0.5 * scene.gradient * d.clamp(-1.0, 1.0);
            let p = &mut img[y * w + x];
            *p = light * (scene.ink + *p * (scene.paper - scene.ink));
        }
    }

    // 3. Lens and motion blur.
    if scene.blur_sigma > 0.05 {
        img = gaussian_blur(&img, w, h, scene.blur_sigma);
    }
    if scene.motion_px > 0.5 {
        img = motion_blur(&img, w, h, scene.motion_px, scene.motion_deg);
    }

    // 4. Sensor: additive gaussian noise, stuck pixels, 8-bit quantisation.
    img.iter()
        .map(|&p| {
            let mut v = p + scene.noise_sigma * rng.gaussian();
            if scene.salt_pepper > 0.0 && rng.next_f32() < scene.salt_pepper {
                v = if rng.next_f32() < 0.5 { 0.0 } else { 255.0 };
            }
            v.round().clamp(0.0, 255.0) as u8
        })
        .collect()
}

/// Separable gaussian blur with clamped edges.
fn gaussian_blur(img: &[f32], w: usize, h: usize, sigma: f32) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius).map(|i| (-((i * i) as f32) / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let mut tmp = vec![0.0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (k, weight) in kernel.iter().enumerate() {
                let sx = (x as isize + k as isize - radius).clamp(0, w as isize - 1) as usize;
                acc += weight * img[y * w + sx];
            }
            tmp[y * w + x] = acc;
        }
    }
    let mut out = vec![0.0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (k, weight) in kernel.iter().enumerate() {
                let sy = (y as isize + k as isize - radius).clamp(0, h as isize - 1) as usize;
                acc += weight * tmp[sy * w + x];
            }
            out[y * w + x] = acc;
        }
    }
    out
}

/// Bilinear sample with clamped edges.
fn sample(img: &[f32], w: usize, h: usize, x: f32, y: f32) -> f32 {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x as usize, y as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let top = img[y0 * w + x0] * (1.0 - fx) + img[y0 * w + x1] * fx;
    let bottom = img[y1 * w + x0] * (1.0 - fx) + img[y1 * w + x1] * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Linear motion blur: average of the image along a segment of `length` pixels at `deg`.
fn motion_blur(img: &[f32], w: usize, h: usize, length: f32, deg: f32) -> Vec<f32> {
    let steps = length.ceil() as usize + 1;
    let (s, c) = deg.to_radians().sin_cos();
    let mut out = vec![0.0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for i in 0..steps {
                let t = (i as f32 / (steps - 1) as f32 - 0.5) * length;
                acc += sample(img, w, h, x as f32 + t * c, y as f32 + t * s);
            }
            out[y * w + x] = acc / steps as f32;
        }
    }
    out
}

/// Errors writing the corpus to disk.
#[cfg(feature = "files")]
#[derive(Debug, thiserror::Error)]
pub enum CorpusKind {
    /// Creating the directory or writing the manifest failed.
    #[error("cannot write corpus file {path}: {source}")]
    Io {
        /// File or directory concerned.
        path: std::path::PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Encoding a PNG failed.
    #[error("cannot write PNG {path}: {source}")]
    Image {
        /// File concerned.
        path: std::path::PathBuf,
        /// Underlying error.
        source: Box<image::ImageError>,
    },
    /// A frame's buffer does not match its dimensions (only possible for hand-built frames).
    #[error("frame {0} has a buffer that does not match its dimensions")]
    BadFrame(String),
}

/// Writes every frame as `<variant>_<index>.png` into `dir` (created if needed) plus an `expected.json`
/// manifest: `{"width", "height", "frames": [{"file", "variant", "index", "severity", "width", "height",
/// "has_code", "expected"}]}` (top-level width/height: the base corpus' frame size; each frame has its own),
/// so other decoders (the Python peers) can score themselves on exactly the same pixels. A frame with
/// `"has_code": false` (expected text empty) is read correctly when nothing is found.
#[cfg(feature = "files")]
pub fn write_corpus(frames: &[Frame], dir: &std::path::Path) -> crate::Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| CorpusKind::Io { path: dir.to_path_buf(), source })?;
    let mut manifest = Vec::with_capacity(frames.len());
    for frame in frames {
        let name = frame.file_name();
        let path = dir.join(&name);
        let (Ok(w), Ok(h)) = (u32::try_from(frame.width), u32::try_from(frame.height)) else {
            return Err(CorpusKind::BadFrame(name).into());
        };
        let img =
            image::GrayImage::from_raw(w, h, frame.luma.clone()).ok_or_else(|| CorpusKind::BadFrame(name.clone()))?;
        img.save_with_format(&path, image::ImageFormat::Png)
            .map_err(|source| CorpusKind::Image { path, source: Box::new(source) })?;
        manifest.push(serde_json::json!({
            "file": name,
            "variant": frame.variant.name(),
            "index": frame.index,
            "severity": frame.severity,
            "width": frame.width,
            "height": frame.height,
            "has_code": frame.variant.has_code(),
            "expected": frame.expected,
        }));
    }
    let doc = serde_json::json!({ "width": FRAME_WIDTH, "height": FRAME_HEIGHT, "frames": manifest });
    let path = dir.join("expected.json");
    let text =
        serde_json::to_string_pretty(&doc).map_err(|e| CorpusKind::Io { path: path.clone(), source: e.into() })?;
    std::fs::write(&path, text).map_err(|source| CorpusKind::Io { path, source }.into())
}
