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

// Bad input is an error, never a panic: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::collections::HashMap;

use scanner_core::redemption::device::{decode_peer_state, encode_peer_state, SavedDevice};
use scanner_core::redemption::document::PeerState;
use scanner_core::redemption::{
    Device, DeviceId, DoorAction, EdgeAnswer, EdgeQuestion, ScanKind, ScanOutcome, ScanPlan, ScanRequest,
};
use scanner_core::wire::VerdictBody;
use serde::Deserialize;
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
/// localhost), token, event, the keyring pin, and the venue hub and its certificate pin if the link has
/// them. Returns the checked payload as JSON `{v, server, token, event, edge, device_name, keyring_sha256}`
/// plus `hub` and `hub_cert_sha256` when set; throws the reason otherwise.
#[wasm_bindgen(js_name = parseSetupLink)]
pub fn parse_setup_link(link: &str) -> Result<String, JsError> {
    let link = scanner_core::setup::SetupLink::parse(link).map_err(js_error)?;
    serde_json::to_string(&link).map_err(js_error)
}

/// The server to ask for online verdicts, by scanner-core's rule (`redemption::OnlineVerifier::choose`, the
/// same as `scanner scan`'s): with a venue hub, the hub only; else the edge; else none (`undefined`).
/// JSON `{kind: "hub" | "edge", url, sync_every_ms}`: `sync_every_ms` is how often to sync the log with
/// it while scanning (`null`: the page's own background cadence).
#[wasm_bindgen(js_name = onlineVerifier)]
pub fn online_verifier(hub: Option<String>, edge: Option<String>) -> Option<String> {
    let verifier = scanner_core::redemption::OnlineVerifier::choose(hub.as_deref(), edge.as_deref())?;
    let json = serde_json::json!({
        "kind": verifier.kind(),
        "url": verifier.url(),
        "sync_every_ms": verifier.sync_every_ms(),
    });
    Some(json.to_string())
}

/// When to sync the log with the venue hub while scanning: scanner-core's `redemption::SyncSchedule`, the
/// rule the CLI's door loop follows (every `every_ms`, at once after a scan the hub did not decide, never
/// while the hub asked to wait). Times are Unix milliseconds.
#[wasm_bindgen(js_name = SyncSchedule)]
pub struct HubSyncSchedule {
    inner: scanner_core::redemption::SyncSchedule,
}

#[wasm_bindgen(js_class = SyncSchedule)]
impl HubSyncSchedule {
    /// Every `every_ms`, the first round due at `now_ms`.
    #[wasm_bindgen(constructor)]
    pub fn new(every_ms: f64, now_ms: f64) -> Result<HubSyncSchedule, JsError> {
        let every = whole_number(every_ms, "every_ms")?;
        Ok(HubSyncSchedule {
            inner: scanner_core::redemption::SyncSchedule::new(every, whole_number(now_ms, "now_ms")?),
        })
    }

    /// A scan was recorded; `decided_by_server`: the hub decided it (and so holds it already).
    pub fn scanned(&mut self, decided_by_server: bool) {
        self.inner.scanned(decided_by_server);
    }

    /// Whether to sync now.
    pub fn due(&self, now_ms: f64) -> Result<bool, JsError> {
        Ok(self.inner.due(whole_number(now_ms, "now_ms")?))
    }

    /// Milliseconds until a sync is due (0: now).
    #[wasm_bindgen(js_name = waitMs)]
    pub fn wait_ms(&self, now_ms: f64) -> Result<f64, JsError> {
        Ok(self.inner.wait_ms(whole_number(now_ms, "now_ms")?) as f64)
    }

    /// A sync round starts at `now_ms`: what was recorded before it goes out with it.
    pub fn synced(&mut self, now_ms: f64) -> Result<(), JsError> {
        self.inner.synced(whole_number(now_ms, "now_ms")?);
        Ok(())
    }

    /// The hub answered 429 with `Retry-After` (milliseconds): nothing is sent to it before then.
    pub fn wait(&mut self, now_ms: f64, retry_after_ms: f64) -> Result<(), JsError> {
        self.inner.wait(whole_number(now_ms, "now_ms")?, whole_number(retry_after_ms, "retry_after_ms")?);
        Ok(())
    }

    /// Whether the hub asked to wait and the time has not come (scans then decide without asking it).
    pub fn waiting(&self, now_ms: f64) -> Result<bool, JsError> {
        Ok(self.inner.waiting(whole_number(now_ms, "now_ms")?))
    }
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
    gate_rules_json: Option<String>,
    #[serde(default)]
    supervisor_pass: Option<String>,
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
    /// revocations_json, manifest_json, gate_rules_json, supervisor_pass, folded_seq}`.
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
                gate_rules_json: c.gate_rules_json,
                supervisor_pass: c.supervisor_pass,
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
    edge_note: Option<String>,
}

#[wasm_bindgen]
impl ScanResult {
    /// scanner-core's `wire::VerdictBody`: the verdict (tagged `verdict`: `admit`, `exit`, `already_used`,
    /// `refused`, `payment_due`, `undone`) plus `summary` (the steward's line, as the CLI prints it) and
    /// `decided_by` (`edge` or `offline`).
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

    /// Why the edge did not decide, when an edge is configured ("not asked: …", a timeout, an error).
    #[wasm_bindgen(getter, js_name = edgeNote)]
    pub fn edge_note(&self) -> Option<String> {
        self.edge_note.clone()
    }

    /// The new gate table as JSON, when this scan added a gate.
    #[wasm_bindgen(getter, js_name = gatesJson)]
    pub fn gates_json(&self) -> Option<String> {
        self.gates_json.clone()
    }
}

impl ScanResult {
    fn of(outcome: ScanOutcome) -> Result<Self, JsError> {
        let body = VerdictBody::new(outcome.verdict, outcome.path, None);
        Ok(ScanResult {
            verdict_json: serde_json::to_string(&body).map_err(js_error)?,
            seq: outcome.seq,
            pending_bytes: outcome.persist.bytes,
            gates_json: match outcome.persist.gates {
                Some(gates) => Some(serde_json::to_string(&gates).map_err(js_error)?),
                None => None,
            },
            edge_note: outcome.edge_note,
        })
    }
}

/// The plan for one request: exactly one of `decided` and `question` is set.
#[wasm_bindgen]
pub struct PlanResult {
    decided: Option<ScanResult>,
    question: Option<EdgeQuestionHandle>,
}

#[wasm_bindgen]
impl PlanResult {
    /// Decided on this device: persist, then show.
    #[wasm_bindgen(js_name = takeDecided)]
    pub fn take_decided(&mut self) -> Option<ScanResult> {
        self.decided.take()
    }

    /// Ask the edge, then [`Scanner::finish`].
    #[wasm_bindgen(js_name = takeQuestion)]
    pub fn take_question(&mut self) -> Option<EdgeQuestionHandle> {
        self.question.take()
    }
}

/// What to send the edge (`POST {edge}{path}` with `body`, waiting at most `timeoutMs`).
#[wasm_bindgen]
pub struct EdgeQuestionHandle {
    inner: EdgeQuestion,
}

#[wasm_bindgen]
impl EdgeQuestionHandle {
    #[wasm_bindgen(getter)]
    pub fn body(&self) -> String {
        self.inner.body.clone()
    }

    #[wasm_bindgen(getter)]
    pub fn path(&self) -> String {
        self.inner.path.to_owned()
    }

    #[wasm_bindgen(getter, js_name = timeoutMs)]
    pub fn timeout_ms(&self) -> f64 {
        self.inner.timeout_ms as f64
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
    complete: bool,
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

    /// The pull session is complete: this device holds everything the server has (stop sending).
    #[wasm_bindgen(getter)]
    pub fn complete(&self) -> bool {
        self.complete
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

    /// Plans one request at the door with scanner-core's scan policy (`redemption::door`): `kind` is
    /// `entry` or `exit`; `action` is `scan`, `paid` (the holder paid at the door), `override` (supervisor,
    /// with `reason`), `undo` (supervisor, with `reason`) or `found` (supervisor: admit a ticket found by
    /// search); `edge` says whether an edge is configured and the page is online. Either the request is
    /// decided here (`decided`: persist it, then show it) or the edge must be asked (`question`: send its
    /// body, then call [`Scanner::finish`]). Throws a steward-readable reason (e.g. "only a supervisor may
    /// undo a check-in") when nothing was recorded.
    #[allow(clippy::too_many_arguments)]
    pub fn plan(
        &mut self,
        text: &str,
        gate: &str,
        kind: &str,
        action: &str,
        reason: Option<String>,
        edge: bool,
        now_ms: f64,
    ) -> Result<PlanResult, JsError> {
        let reason = || reason.clone().unwrap_or_default();
        let action = match action {
            "scan" => DoorAction::Scan,
            "paid" => DoorAction::ConfirmPaid,
            "override" => DoorAction::Override(reason()),
            "undo" => DoorAction::Undo(reason()),
            "found" => DoorAction::AdmitFound,
            other => return Err(JsError::new(&format!("unknown action {other:?}"))),
        };
        let request = ScanRequest { text: text.to_owned(), kind: scan_kind(kind)?, gate: gate.to_owned(), action };
        match self.device.plan(request, edge, whole_number(now_ms, "now_ms")?).map_err(js_error)? {
            ScanPlan::Decided(outcome) => Ok(PlanResult { decided: Some(ScanResult::of(outcome)?), question: None }),
            ScanPlan::AskEdge(q) => Ok(PlanResult { decided: None, question: Some(EdgeQuestionHandle { inner: q }) }),
        }
    }

    /// Completes a request the plan sent to the edge: `status` and `body` of the edge's reply, or `error`
    /// (why there is none: a timeout, no connection). Persist the result, then show it; its `edgeNote`
    /// says why the edge's answer was not used, if it was not.
    pub fn finish(
        &mut self,
        question: EdgeQuestionHandle,
        status: Option<u16>,
        body: Option<Vec<u8>>,
        error: Option<String>,
        now_ms: f64,
    ) -> Result<ScanResult, JsError> {
        let answer = match (status, body, error) {
            (Some(status), Some(body), None) => EdgeAnswer::Reply { status, body },
            (_, _, Some(error)) => EdgeAnswer::Failed(error),
            _ => EdgeAnswer::Failed("no answer".to_owned()),
        };
        let outcome = self.device.finish(question.inner, answer, whole_number(now_ms, "now_ms")?).map_err(js_error)?;
        ScanResult::of(outcome)
    }

    /// Unlocks supervisor mode with a supervisor pass (`SUP1:...`, checked offline against the keyring and
    /// the event). Returns `{name, not_after}` as JSON; store the pass text to keep the mode across reloads.
    #[wasm_bindgen(js_name = unlockSupervisor)]
    pub fn unlock_supervisor(&mut self, pass: &str, now_secs: f64) -> Result<String, JsError> {
        let p = self.device.unlock_supervisor(pass, whole_number(now_secs, "now_secs")?).map_err(js_error)?;
        Ok(serde_json::json!({"name": p.name, "not_after": p.not_after}).to_string())
    }

    /// Back to steward mode (delete the stored pass).
    #[wasm_bindgen(js_name = lockSupervisor)]
    pub fn lock_supervisor(&mut self) {
        self.device.lock_supervisor();
    }

    /// `{name, not_after}` of the supervisor unlocked and still valid at `now_secs`, or `undefined`.
    pub fn supervisor(&self, now_secs: f64) -> Option<String> {
        let p = self.device.supervisor(exact_u64(now_secs)?)?;
        Some(serde_json::json!({"name": p.name, "not_after": p.not_after}).to_string())
    }

    /// Sets the event's gate rules (JSON from `/v1/scanner/events/{event}/gates`); store the same JSON.
    #[wasm_bindgen(js_name = setGateRules)]
    pub fn set_gate_rules(&mut self, json: &str) -> Result<(), JsError> {
        self.device.set_gate_rules(json).map_err(js_error)
    }

    /// The gate rules held (JSON), for the page's gate picker, or `undefined`.
    #[wasm_bindgen(getter, js_name = gateRulesJson)]
    pub fn gate_rules_json(&self) -> Option<String> {
        self.device.gate_rules().map(scanner_core::gates::GateRules::to_json)
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
            complete: self.device.pull_complete(state),
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
