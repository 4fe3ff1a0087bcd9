//! Browser bindings over scanner-core for the offline PWA scanner (web/scanner/).
//!
//! Nothing here decides anything: every function forwards to scanner-core, which is the one source of
//! truth for the QR codec, the ticket format, verification and the redemption log. The bindings only
//! convert between Rust and JavaScript types (strings, byte arrays, JSON text) and keep the per-peer sync
//! states of one sync session in memory.
//!
//! The persistence contract is scanner-core's `redemption::device` module documentation: the page writes
//! what [`ScanResult`], [`FoldResult`] and [`SyncReceipt`] carry into IndexedDB and reads it back into a
//! [`Restore`]. Sequence numbers cross the boundary as `f64` (JavaScript numbers; exact below 2^53).

use std::collections::HashMap;

use scanner_core::redemption::decision::ScanInput;
use scanner_core::redemption::device::{decode_peer_state, encode_peer_state, SavedDevice};
use scanner_core::redemption::document::PeerState;
use scanner_core::redemption::online::RedeemRequest;
use scanner_core::redemption::{DecisionPath, Device, DeviceId, EdgeVerdict, ScanKind, ScanOutcome, Verdict};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);
}

/// Runs when the module is instantiated: a panic (a bug; the wasm build aborts on panic, so the instance is
/// unusable afterwards) is written to the console with its message and location before the trap, so the
/// page's "engine crashed" report can be traced to its cause.
#[wasm_bindgen(start)]
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| console_error(&format!("scanner-wasm panicked: {info}"))));
}

/// Decodes the QR code in a greyscale frame (one byte per pixel, row-major, `width * height` bytes) with
/// scanner-core's `qr::decode::decode_luma`, as the CLI does. Returns the code's text, or `undefined` if no
/// code was found (or the buffer does not match the dimensions).
#[wasm_bindgen(js_name = decodeLuma)]
pub fn decode_luma(width: u32, height: u32, luma: &[u8]) -> Option<String> {
    let (width, height) = (width as usize, height as usize);
    if width.checked_mul(height) != Some(luma.len()) {
        return None;
    }
    scanner_core::qr::decode::decode_luma(width, height, luma)
}

/// Parses and checks a scanner setup link (the whole URL or what follows `setup=`) with scanner-core's
/// `setup::SetupLink::parse`, exactly as `scanner init --setup` does: version, https (plain http only to
/// localhost), token, event and the keyring pin. Returns the checked payload as JSON
/// `{v, server, token, event, edge, device_name, keyring_sha256}`; throws the reason otherwise.
#[wasm_bindgen(js_name = parseSetupLink)]
pub fn parse_setup_link(link: &str) -> Result<String, JsError> {
    let link = scanner_core::setup::SetupLink::parse(link).map_err(js_error)?;
    serde_json::to_string(&link).map_err(js_error)
}

/// How long the page waits for the edge Worker before deciding offline (scanner-core's default, shared with
/// the CLI).
#[wasm_bindgen(js_name = edgeTimeoutMs)]
pub fn edge_timeout_ms() -> u32 {
    u32::try_from(scanner_core::redemption::online::DEFAULT_EDGE_TIMEOUT_MS).unwrap_or(u32::MAX)
}

/// Which stage of scanner-core's decoding pipeline read the code in a frame (`Raw`, `LowContrast`,
/// `Smoothed`, `Downscaled`, `Upscaled`, `Rqrr`), or `undefined` if none did. For benchmarks and
/// diagnostics: a clean frame that needs more than `Raw` costs many times the decoding time.
#[wasm_bindgen(js_name = decodeLumaPass)]
pub fn decode_luma_pass(width: u32, height: u32, luma: &[u8]) -> Option<String> {
    let decoded = scanner_core::qr::decode::decode_luma_detailed(width as usize, height as usize, luma)?;
    Some(format!("{:?}", decoded.pass))
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

fn scan_kind(kind: &str) -> Result<ScanKind, JsError> {
    match kind {
        "entry" => Ok(ScanKind::Entry),
        "exit" => Ok(ScanKind::Exit),
        _ => Err(JsError::new("scan kind must be \"entry\" or \"exit\"")),
    }
}

/// JavaScript numbers for times and sequence numbers: negative, NaN or fractional values are refused
/// rather than silently truncated.
fn whole_number(value: f64, what: &str) -> Result<u64, JsError> {
    exact_u64(value).ok_or_else(|| JsError::new(&format!("{what} must be a non-negative whole number")))
}

/// The `u64` a JavaScript number stands for, if it is a whole number in `0..=2^53 - 1`.
fn exact_u64(value: f64) -> Option<u64> {
    const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;
    (value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= MAX_SAFE_INTEGER).then_some(value as u64)
}

/// The device's configuration as the page stores it (everything of `SavedDevice` but the log itself).
#[derive(Debug, Deserialize)]
struct SavedConfig {
    /// 16 lowercase hex digits.
    device: String,
    name: String,
    #[serde(default)]
    gates: Vec<String>,
    #[serde(default)]
    event_id: Option<u32>,
    #[serde(default)]
    keyring_json: Option<String>,
    #[serde(default)]
    revocations_json: Option<String>,
    #[serde(default)]
    manifest_json: Option<String>,
    #[serde(default)]
    folded_seq: u64,
}

/// What the page read back from storage, gathered piece by piece and then turned into a [`Scanner`].
#[wasm_bindgen]
pub struct Restore {
    saved: SavedDevice,
}

#[wasm_bindgen]
impl Restore {
    /// Starts from the stored configuration: JSON `{device, name, gates, event_id, keyring_json,
    /// revocations_json, manifest_json, folded_seq}`.
    #[wasm_bindgen(constructor)]
    pub fn new(config_json: &str) -> Result<Restore, JsError> {
        let c: SavedConfig = serde_json::from_str(config_json).map_err(js_error)?;
        let device = DeviceId::from_hex(&c.device).ok_or_else(|| JsError::new("device id is not 16 hex digits"))?;
        Ok(Restore {
            saved: SavedDevice {
                device,
                name: c.name,
                gates: c.gates,
                event_id: c.event_id,
                keyring_json: c.keyring_json,
                revocations_json: c.revocations_json,
                manifest_json: c.manifest_json,
                doc: Vec::new(),
                folded_seq: c.folded_seq,
                pending: Vec::new(),
            },
        })
    }

    /// Appends the next stored document chunk (in storage order).
    #[wasm_bindgen(js_name = addChunk)]
    pub fn add_chunk(&mut self, chunk: &[u8]) {
        self.saved.doc.extend_from_slice(chunk);
    }

    /// Adds one stored pending scan.
    #[wasm_bindgen(js_name = addPending)]
    pub fn add_pending(&mut self, seq: f64, bytes: &[u8]) -> Result<(), JsError> {
        self.saved.pending.push((whole_number(seq, "seq")?, bytes.to_vec()));
        Ok(())
    }
}

/// A scan decided and applied to the device. Persist `seq`/`pendingBytes` (and `gatesJson` if set) in one
/// durable transaction BEFORE showing `verdictJson`; if that fails, call [`Scanner::abandon_scan`].
#[wasm_bindgen]
pub struct ScanResult {
    verdict_json: String,
    seq: u64,
    pending_bytes: Vec<u8>,
    gates_json: Option<String>,
}

#[wasm_bindgen]
impl ScanResult {
    /// scanner-core's verdict (tagged `verdict`: `admit`, `exit`, `already_used`, `refused`, `payment_due`) plus
    /// `summary` (the steward's line, as the CLI prints it) and `path` (`edge` or `offline`).
    #[wasm_bindgen(getter, js_name = verdictJson)]
    pub fn verdict_json(&self) -> String {
        self.verdict_json.clone()
    }

    #[wasm_bindgen(getter)]
    pub fn seq(&self) -> f64 {
        self.seq as f64
    }

    #[wasm_bindgen(getter, js_name = pendingBytes)]
    pub fn pending_bytes(&self) -> Vec<u8> {
        self.pending_bytes.clone()
    }

    /// The new gate table as JSON, when this scan added a gate.
    #[wasm_bindgen(getter, js_name = gatesJson)]
    pub fn gates_json(&self) -> Option<String> {
        self.gates_json.clone()
    }
}

#[derive(Serialize)]
struct VerdictBody<'a> {
    #[serde(flatten)]
    verdict: &'a Verdict,
    /// The steward's one line, as the CLI prints it. Not `message`: a refusal's own `message` field (the
    /// reason) would collide with it in the flattened JSON.
    summary: String,
    path: DecisionPath,
}

impl ScanResult {
    fn of(outcome: ScanOutcome) -> Result<Self, JsError> {
        let body = VerdictBody { verdict: &outcome.verdict, summary: outcome.verdict.message(), path: outcome.path };
        Ok(ScanResult {
            verdict_json: serde_json::to_string(&body).map_err(js_error)?,
            seq: outcome.seq,
            pending_bytes: outcome.persist.bytes,
            gates_json: match outcome.persist.gates {
                Some(gates) => Some(serde_json::to_string(&gates).map_err(js_error)?),
                None => None,
            },
        })
    }
}

/// Pending scans folded into the document: append `chunk` as the next chunk and set `folded` to
/// `foldedSeq` (when defined) in one transaction, then delete pending entries up to it.
#[wasm_bindgen]
pub struct FoldResult {
    chunk: Vec<u8>,
    folded_seq: Option<u64>,
}

#[wasm_bindgen]
impl FoldResult {
    #[wasm_bindgen(getter)]
    pub fn chunk(&self) -> Vec<u8> {
        self.chunk.clone()
    }

    #[wasm_bindgen(getter, js_name = foldedSeq)]
    pub fn folded_seq(&self) -> Option<f64> {
        self.folded_seq.map(|s| s as f64)
    }
}

/// A peer's sync message received: append `chunk` (if not empty) and store `peerState` in one transaction.
#[wasm_bindgen]
pub struct SyncReceipt {
    chunk: Vec<u8>,
    peer_state: Vec<u8>,
    changed: bool,
    new_records: usize,
}

#[wasm_bindgen]
impl SyncReceipt {
    #[wasm_bindgen(getter)]
    pub fn chunk(&self) -> Vec<u8> {
        self.chunk.clone()
    }

    #[wasm_bindgen(getter, js_name = peerState)]
    pub fn peer_state(&self) -> Vec<u8> {
        self.peer_state.clone()
    }

    #[wasm_bindgen(getter)]
    pub fn changed(&self) -> bool {
        self.changed
    }

    #[wasm_bindgen(getter, js_name = newRecords)]
    pub fn new_records(&self) -> usize {
        self.new_records
    }
}

/// One scanning device: scanner-core's `Device`, plus the sync state of each peer in the current session.
#[wasm_bindgen]
pub struct Scanner {
    device: Device,
    peers: HashMap<String, PeerState>,
}

#[wasm_bindgen]
impl Scanner {
    /// The redemption-log id bound to a device token (16 hex digits): a device set up with a token must
    /// be created with it, since sync servers take from it only what it wrote under that id.
    #[wasm_bindgen(js_name = deviceIdForToken)]
    pub fn device_id_for_token(token: &str) -> String {
        scanner_core::token::device_id_for_token(token).to_hex()
    }

    /// A new device. `device_hex` is its id (16 hex digits, non-zero: [`Self::device_id_for_token`]);
    /// persist it with the name.
    pub fn create(device_hex: &str, name: &str) -> Result<Scanner, JsError> {
        let id = DeviceId::from_hex(device_hex).ok_or_else(|| JsError::new("device id is not 16 hex digits"))?;
        if id.0 == 0 {
            return Err(JsError::new("device id must not be zero"));
        }
        Ok(Scanner { device: Device::new(id, name).map_err(js_error)?, peers: HashMap::new() })
    }

    /// The device as storage kept it.
    pub fn restore(restore: Restore) -> Result<Scanner, JsError> {
        Ok(Scanner { device: Device::restore(restore.saved).map_err(js_error)?, peers: HashMap::new() })
    }

    #[wasm_bindgen(getter, js_name = deviceId)]
    pub fn device_id(&self) -> String {
        self.device.device().to_hex()
    }

    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.device.name().to_owned()
    }

    #[wasm_bindgen(getter, js_name = eventId)]
    pub fn event_id(&self) -> Option<u32> {
        self.device.event_id()
    }

    #[wasm_bindgen(getter, js_name = recordCount)]
    pub fn record_count(&self) -> usize {
        self.device.record_count()
    }

    #[wasm_bindgen(getter, js_name = pendingCount)]
    pub fn pending_count(&self) -> usize {
        self.device.pending().len()
    }

    #[wasm_bindgen(getter, js_name = revocationsVersion)]
    pub fn revocations_version(&self) -> f64 {
        self.device.revocations_version() as f64
    }

    #[wasm_bindgen(getter, js_name = hasKeyring)]
    pub fn has_keyring(&self) -> bool {
        self.device.keyring().is_some()
    }

    /// Sets the keyring (JSON as the issuer publishes it); store the same JSON.
    #[wasm_bindgen(js_name = setKeyring)]
    pub fn set_keyring(&mut self, json: &str) -> Result<(), JsError> {
        self.device.set_keyring(json).map_err(js_error)
    }

    /// Sets a fetched keyring only if it matches the setup link's pin (`keyring_sha256`, scanner-core's
    /// `Keyring::from_json_pinned`); throws and changes nothing otherwise.
    #[wasm_bindgen(js_name = setKeyringPinned)]
    pub fn set_keyring_pinned(&mut self, json: &str, pin_hex: &str) -> Result<(), JsError> {
        scanner_core::Keyring::from_json_pinned(json, pin_hex).map_err(js_error)?;
        self.device.set_keyring(json).map_err(js_error)
    }

    /// Applies a revocation delta (`/v1/scanner/revocations?since=N`) and returns the whole list's JSON to
    /// store.
    #[wasm_bindgen(js_name = applyRevocationDelta)]
    pub fn apply_revocation_delta(&mut self, json: &str) -> Result<String, JsError> {
        self.device.apply_revocation_delta(json).map_err(js_error)
    }

    /// Sets the attendee manifest (JSON as served); store the same JSON.
    #[wasm_bindgen(js_name = setManifest)]
    pub fn set_manifest(&mut self, json: &str) -> Result<(), JsError> {
        self.device.set_manifest(json).map_err(js_error)
    }

    #[wasm_bindgen(js_name = setEvent)]
    pub fn set_event(&mut self, event_id: u32) {
        self.device.set_event(event_id);
    }

    /// Decides a scan offline. `kind` is `entry` or `exit`; `now_ms` the wall clock in Unix milliseconds.
    pub fn scan(
        &mut self,
        text: &str,
        gate: &str,
        kind: &str,
        override_reason: Option<String>,
        now_ms: f64,
    ) -> Result<ScanResult, JsError> {
        let input = ScanInput { text, kind: scan_kind(kind)?, override_reason: override_reason.as_deref() };
        let outcome = self.device.scan(input, gate, whole_number(now_ms, "now_ms")?).map_err(js_error)?;
        ScanResult::of(outcome)
    }

    /// The steward confirms that the holder of an unpaid ticket (verdict `payment_due`) paid at the door:
    /// decided on this device (the edge is not asked) and, if still due, admitted with the amount recorded.
    #[wasm_bindgen(js_name = confirmPaid)]
    pub fn confirm_paid(&mut self, text: &str, gate: &str, now_ms: f64) -> Result<ScanResult, JsError> {
        let outcome = self.device.confirm_paid(text, gate, whole_number(now_ms, "now_ms")?).map_err(js_error)?;
        ScanResult::of(outcome)
    }

    /// The JSON body of `POST {edge}/v1/redeem` for this scan.
    #[wasm_bindgen(js_name = edgeRequestJson)]
    pub fn edge_request_json(&self, text: &str, gate: &str, kind: &str) -> Result<String, JsError> {
        let event = self.device.event_id().ok_or_else(|| JsError::new("this scanner has no event"))?;
        let req = RedeemRequest {
            qr_text: text,
            event,
            device: self.device.device(),
            device_name: self.device.name(),
            gate,
            kind: scan_kind(kind)?,
        };
        Ok(req.to_json())
    }

    /// Records the edge's answer (its HTTP status and body) as this scan's verdict. Throws if the answer
    /// is not a usable verdict for this scan: then decide offline with [`Scanner::scan`].
    #[wasm_bindgen(js_name = recordEdgeReply)]
    pub fn record_edge_reply(
        &mut self,
        text: &str,
        gate: &str,
        kind: &str,
        status: u16,
        body: &[u8],
        now_ms: f64,
    ) -> Result<ScanResult, JsError> {
        let edge = EdgeVerdict::from_reply(status, body).map_err(js_error)?;
        let outcome = self
            .device
            .record_edge_verdict(text, scan_kind(kind)?, gate, &edge, whole_number(now_ms, "now_ms")?)
            .map_err(js_error)?;
        ScanResult::of(outcome)
    }

    /// Forgets the latest scan when storage could not persist it. Returns whether `seq` was the latest.
    #[wasm_bindgen(js_name = abandonScan)]
    pub fn abandon_scan(&mut self, seq: f64) -> Result<bool, JsError> {
        self.device.abandon_scan(whole_number(seq, "seq")?).map_err(js_error)
    }

    #[wasm_bindgen(js_name = shouldFold)]
    pub fn should_fold(&self) -> bool {
        self.device.should_fold()
    }

    /// Folds pending scans into the document; `undefined` when there is nothing to fold.
    pub fn fold(&mut self, now_secs: f64) -> Result<Option<FoldResult>, JsError> {
        let now = i64::try_from(whole_number(now_secs, "now_secs")?).map_err(js_error)?;
        Ok(self.device.fold(now).map_err(js_error)?.map(|f| FoldResult { chunk: f.chunk, folded_seq: f.folded_seq }))
    }

    /// The whole document as one chunk, to replace every stored chunk (compaction).
    #[wasm_bindgen(js_name = saveFull)]
    pub fn save_full(&mut self) -> Vec<u8> {
        self.device.save_full()
    }

    /// Starts a sync session with `peer` from its stored sync state (empty: first sync). Every session
    /// starts from the stored state, so a session that broke off mid-way cannot leave it waiting forever.
    #[wasm_bindgen(js_name = beginSync)]
    pub fn begin_sync(&mut self, peer: &str, stored_state: &[u8]) {
        // A damaged stored state only costs a full exchange: start afresh rather than fail.
        let state = if stored_state.is_empty() { None } else { decode_peer_state(stored_state).ok() };
        self.peers.insert(peer.to_owned(), state.unwrap_or_default());
    }

    /// The next message to send `peer`, or `undefined` when the session has nothing more to say.
    #[wasm_bindgen(js_name = syncMessage)]
    pub fn sync_message(&mut self, peer: &str) -> Option<Vec<u8>> {
        let state = self.peers.entry(peer.to_owned()).or_default();
        self.device.generate_sync_message(state)
    }

    /// The next message of the push session with `peer` (this device's own records only), or `undefined`.
    #[wasm_bindgen(js_name = pushMessage)]
    pub fn push_message(&mut self, peer: &str) -> Result<Option<Vec<u8>>, JsError> {
        let state = self.peers.entry(peer.to_owned()).or_default();
        self.device.generate_push_message(state).map_err(js_error)
    }

    /// Receives `peer`'s reply in the push session (it only moves the session's state).
    #[wasm_bindgen(js_name = receivePushReply)]
    pub fn receive_push_reply(&mut self, peer: &str, message: &[u8]) -> Result<(), JsError> {
        let state = self.peers.entry(peer.to_owned()).or_default();
        self.device.receive_push_reply(state, message).map_err(js_error)
    }

    /// Receives `peer`'s reply in the pull session. Hostile messages are refused and change nothing.
    #[wasm_bindgen(js_name = receiveSync)]
    pub fn receive_sync(&mut self, peer: &str, message: &[u8], now_ms: f64) -> Result<SyncReceipt, JsError> {
        let state = self.peers.entry(peer.to_owned()).or_default();
        let now_ms = whole_number(now_ms, "now_ms")?;
        let receipt = self.device.receive_sync_message(state, message, now_ms).map_err(js_error)?;
        Ok(SyncReceipt {
            chunk: receipt.chunk,
            peer_state: encode_peer_state(state),
            changed: receipt.changed,
            new_records: receipt.new_records,
        })
    }

    /// The peer's sync state to store at the end of a session.
    #[wasm_bindgen(js_name = peerState)]
    pub fn peer_state(&self, peer: &str) -> Vec<u8> {
        self.peers.get(peer).map(encode_peer_state).unwrap_or_default()
    }

    /// The organizer's report over everything this device knows (scanner-core's `EventReport` as JSON).
    #[wasm_bindgen(js_name = reportJson)]
    pub fn report_json(&self) -> Result<String, JsError> {
        let report = self.device.report().map_err(js_error)?;
        serde_json::to_string(&report).map_err(js_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_whole_numbers_cross_the_boundary() {
        assert_eq!(exact_u64(5.0), Some(5));
        assert_eq!(exact_u64(9_007_199_254_740_991.0), Some(9_007_199_254_740_991));
        for bad in [-1.0, 1.5, f64::NAN, f64::INFINITY, 9_007_199_254_740_992.0] {
            assert_eq!(exact_u64(bad), None, "{bad}");
        }
    }
}
