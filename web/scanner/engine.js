// The scanner's engine, in a module Worker so the page stays responsive on a slow phone: it owns the wasm
// build of scanner-core (QR decoding, the scanning Device), the IndexedDB storage and every network call
// (setup, online-first redemption with a venue hub or the edge, log sync, revocation refresh). The page
// sends it camera frames and manual codes and shows what it answers.
//
// Every decision is scanner-core's. Each scan's record is written durably to IndexedDB before its verdict
// is posted to the page (scanner-core/src/redemption/device.rs, "Persistence contract").
//
// The device token never leaves this worker (the page only learns whether a scanner is set up).

import init, { decodeLuma, onlineVerifier, parseSetupLink, Restore, Scanner, SyncSchedule } from './pkg/scanner_wasm.js';
import { openStore } from './store.js';

/** The same code read again within this window is ignored (the window restarts at every read, so a
 *  ticket held in front of the camera is decided once, not every couple of seconds). */
const SUPPRESS_REPEAT_MS = 2500;
/** Background sync period while online. */
const SYNC_EVERY_MS = 30_000;
/** A sync soon after a scan, so the issuer and other gates learn of it quickly. */
const SYNC_AFTER_SCAN_MS = 2_000;
// The edge already holds what it decided (its shard hands admissions to the event's log), so a scan it
// decided does not need a sync with it right after: only scans decided here (offline fallbacks) do, and
// otherwise the edge log is synced every SYNC_EVERY_MS. Each edge sync is billed Worker and Durable
// Object requests (deploy/README.md counts them); this keeps a busy door from syncing every 2 s.
let edgeSyncWanted = false;
let lastEdgeSyncAt = 0;
/** Timeout of one setup or sync request. */
const REQUEST_TIMEOUT_MS = 15_000;
/** Timeout of one sync request to the edge: it answers in milliseconds when it is there at all, and a
 *  hanging edge must not hold back the next sync with the issuer. */
const EDGE_SYNC_TIMEOUT_MS = 3_000;
/** Timeout of one sync request to a venue hub: it is on the local network, and the next round comes
 *  every couple of seconds anyway. */
const HUB_SYNC_TIMEOUT_MS = 3_000;
/** With a venue hub the setup material comes from it; the event's names (which only the issuer serves)
 *  are asked of the issuer this briefly, so a venue with no internet is not held up. */
const EVENT_INFO_TIMEOUT_MS = 3_000;
/** A sync session that has not converged after this many round trips is abandoned (the CLI's limit). */
const MAX_SYNC_ROUNDS = 64;
/** Stored document chunks are replaced by one full save beyond this many. */
const COMPACT_AFTER_CHUNKS = 64;

let store = null;
let scanner = null;
/** {v, server, token, event, edge, device_name, keyring_sha256, hub?, hub_cert_sha256?} from the setup link,
 *  as scanner-core checked it. */
let setup = null;
/** The server asked for online verdicts, by scanner-core's rule (the same as the CLI's): {kind: 'hub' |
 *  'edge', url, sync_every_ms} or null. */
let verifier = null;
/** The supervisor pass that unlocked this device (as stored), for the online search's header. */
let supervisorPass = null;
/** The event as the issuer's catalog describes it (names of ticket types and add-ons, time zone). */
let eventInfo = null;
let gate = 'Main entrance';
let kind = 'entry';
let nextChunk = 0;
let chunkCount = 0;
let status = {
  lastSyncAt: null,
  lastSyncError: null,
  edgeSyncError: null,
  revocationsAt: null,
  hubSyncAt: null,
  hubSyncError: null,
};
let syncing = null;
let syncAgain = false;
let syncTimer = null;
const recentReads = new Map();
let scanChain = Promise.resolve();
let canvas = null;
let context2d = null;

function post(message, transfer) {
  self.postMessage(message, transfer ?? []);
}

function snapshot() {
  return {
    configured: Boolean(scanner && setup),
    deviceId: scanner?.deviceId ?? null,
    deviceName: scanner?.name ?? null,
    event: setup?.event ?? null,
    eventInfo,
    server: setup?.server ?? null,
    edge: setup?.edge ?? null,
    hub: verifier?.kind === 'hub' ? verifier.url : null,
    hubSyncing: Boolean(hubSyncing),
    gate,
    kind,
    records: scanner?.recordCount ?? 0,
    pending: scanner?.pendingCount ?? 0,
    revocationsVersion: scanner?.revocationsVersion ?? 0,
    supervisor: supervisorNow(),
    gateRules: scanner?.gateRulesJson ? JSON.parse(scanner.gateRulesJson) : null,
    online: navigator.onLine,
    syncing: Boolean(syncing),
    offscreenFrames: typeof OffscreenCanvas !== 'undefined',
    ...status,
  };
}

/** {name, not_after} of the supervisor unlocked on this device, or null (steward mode). */
function supervisorNow() {
  const json = scanner?.supervisor(Math.floor(Date.now() / 1000));
  return json ? JSON.parse(json) : null;
}

function publish() {
  post({ type: 'state', state: snapshot() });
}

// ---------------------------------------------------------------------------------------------------
// Storage

async function loadDevice() {
  const all = await store.readAll();
  const c = all.config;
  gate = c.gate ?? gate;
  kind = c.kind ?? kind;
  status = { ...status, ...(c.status ?? {}) };
  eventInfo = c.event ?? null;
  setup = c.setup ?? null;
  verifier = chooseVerifier(setup);
  supervisorPass = c.supervisorPass ?? null;
  scanner?.free();
  scanner = null;
  if (!c.device) return;
  const restore = new Restore(
    JSON.stringify({
      device: c.device.id,
      name: c.device.name,
      gates: c.gates ? JSON.parse(c.gates) : [],
      event_id: setup?.event ?? null,
      keyring_json: c.keyring ?? null,
      revocations_json: c.revocations ?? null,
      manifest_json: c.manifest ?? null,
      gate_rules_json: c.gateRules ?? null,
      supervisor_pass: c.supervisorPass ?? null,
      folded_seq: c.folded ?? 0,
    }),
  );
  for (const chunk of all.chunks) restore.addChunk(chunk);
  for (const [seq, bytes] of all.pending) restore.addPending(seq, bytes);
  scanner = Scanner.restore(restore);
  chunkCount = all.chunkKeys.length;
  nextChunk = chunkCount ? all.chunkKeys[chunkCount - 1] + 1 : 0;
  const folded = c.folded ?? 0;
  if (all.pending.some(([seq]) => seq <= folded)) {
    // A crash between a fold's write and the pending entries' removal leaves them behind: the contract
    // says to delete them.
    await store.write(['pending'], ({ pending }) => pending.delete(IDBKeyRange.upperBound(folded)));
  }
}

/** Folds pending scans into the document (when due, or always with `force`) and stores the chunk. */
async function fold(force) {
  if (!scanner || (!force && !scanner.shouldFold())) return;
  const result = scanner.fold(Math.floor(Date.now() / 1000));
  if (!result) return;
  const chunk = result.chunk;
  const folded = result.foldedSeq;
  result.free();
  const key = nextChunk++;
  try {
    await store.write(['chunks', 'config', 'pending'], (s) => {
      s.chunks.put(chunk, key);
      if (folded !== undefined) {
        s.config.put(folded, 'folded');
        s.pending.delete(IDBKeyRange.upperBound(folded));
      }
    });
  } catch (e) {
    // Memory and storage disagree now: storage is still consistent (the transaction did nothing), so
    // the device is rebuilt from it.
    await loadDevice();
    throw e;
  }
  chunkCount++;
  if (chunkCount > COMPACT_AFTER_CHUNKS) {
    const full = scanner.saveFull();
    const fullKey = nextChunk++;
    await store.write(['chunks'], (s) => {
      s.chunks.clear();
      s.chunks.put(full, fullKey);
    });
    chunkCount = 1;
  }
}

async function saveStatus() {
  await store.setConfig({ status }, { durable: false });
}

// ---------------------------------------------------------------------------------------------------
// Network

function withTimeout(ms) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  return { signal: controller.signal, done: () => clearTimeout(timer) };
}

async function request(url, init, timeoutMs = REQUEST_TIMEOUT_MS) {
  const t = withTimeout(timeoutMs);
  try {
    const response = await fetch(url, { ...init, signal: t.signal, cache: 'no-store' });
    const body = new Uint8Array(await response.arrayBuffer());
    return { status: response.status, body, retryAfter: response.headers.get('retry-after') };
  } catch (e) {
    throw new Error(e.name === 'AbortError' ? `${new URL(url).host} did not answer in time` : `cannot reach ${new URL(url).host}`);
  } finally {
    t.done();
  }
}

function httpError(what, res) {
  let detail = '';
  try {
    const j = JSON.parse(new TextDecoder().decode(res.body));
    detail = j?.error?.message ?? j?.message ?? '';
  } catch {
    // Not JSON: the status says enough.
  }
  if (res.status === 401 || res.status === 403) return new Error(`${what}: the server refused this scanner's token`);
  return new Error(`${what}: HTTP ${res.status}${detail ? ` (${detail})` : ''}`);
}

async function getText(base, path, token, timeoutMs = REQUEST_TIMEOUT_MS) {
  const res = await request(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } }, timeoutMs);
  if (res.status !== 200) throw httpError(path.split('?')[0], res);
  return new TextDecoder().decode(res.body);
}

/** scanner-core's choice of the server to ask for verdicts (wasm `onlineVerifier`), for a setup. */
function chooseVerifier(s) {
  if (!s) return null;
  const json = onlineVerifier(s.hub ?? undefined, s.edge ?? undefined);
  return json ? JSON.parse(json) : null;
}

/** Why the venue hub did not answer, in words a steward can act on. A browser does not say why a
 *  connection failed; over https the likeliest cause is a certificate it does not trust, and a browser
 *  cannot pin one, so the hub needs a certificate the phone's browser trusts (the organizer's). */
function hubProblem(message) {
  if (verifier?.kind === 'hub' && verifier.url.startsWith('https:') && /^cannot reach/.test(message)) {
    return `${message} (if the hub is running, this browser may not trust its certificate: phones need a hub certificate their browser trusts, such as the organizer's; a fingerprint cannot be pinned in a browser)`;
  }
  return message;
}

// ---------------------------------------------------------------------------------------------------
// Setup

/** The setup link (or its `setup=` payload), parsed and checked by scanner-core (the same code as
 *  `scanner init --setup`): version, https (plain http only to localhost), token, event, keyring pin.
 *  Throws the reason, before any request is made. */
function checkSetup(link) {
  return JSON.parse(parseSetupLink(String(link ?? '')));
}

/** The keyring, manifest and gate rules for a setup, from `base` (the issuer, or a venue hub, which
 *  serves what it fetched from the issuer: the keyring is checked against the link's pin either way). */
async function fetchSetupMaterial(base, s) {
  const [keyring, manifest, gates] = await Promise.all([
    getText(base, '/v1/scanner/keyring', s.token),
    getText(base, `/v1/scanner/events/${s.event}/manifest`, s.token),
    request(`${base}/v1/scanner/events/${s.event}/gates`, { headers: { authorization: `Bearer ${s.token}` } }),
  ]);
  // A hub whose issuer had no gate rules has none to serve (404): every gate admits every ticket.
  if (gates.status !== 200 && gates.status !== 404) throw httpError('gates', gates);
  const gateRules = gates.status === 200 ? new TextDecoder().decode(gates.body) : null;
  return { base, keyring, manifest, gateRules };
}

async function doSetup(raw) {
  const s = checkSetup(raw);
  const chosen = chooseVerifier(s);
  const hub = chosen?.kind === 'hub' ? chosen.url : null;
  // With a venue hub, set up from it (it works with no internet); the issuer if the hub cannot be
  // reached (a phone set up before it gets to the venue).
  let material;
  if (hub) {
    try {
      material = await fetchSetupMaterial(hub, s);
    } catch (e) {
      try {
        material = await fetchSetupMaterial(s.server, s);
      } catch {
        throw new Error(`neither the venue hub nor the issuer answered: ${hubProblem(e.message)}`);
      }
    }
  } else {
    material = await fetchSetupMaterial(s.server, s);
  }
  const { keyring, manifest, gateRules } = material;
  // The names of ticket types and add-ons, and the time zone: from where the material came (a hub keeps
  // the issuer's copy), then the issuer; without them the page shows numbers and UTC-less times until a
  // later sync reaches the issuer.
  let eventJson = null;
  for (const base of hub ? [...new Set([material.base, s.server])] : [s.server]) {
    try {
      eventJson = await getText(base, `/v1/events/${s.event}`, s.token, hub ? EVENT_INFO_TIMEOUT_MS : REQUEST_TIMEOUT_MS);
      break;
    } catch (e) {
      if (!hub) throw e;
    }
  }
  if (scanner && setup && setup.event !== s.event && scanner.recordCount > 0) {
    throw new Error(
      `This scanner holds ${scanner.recordCount} scans of event ${setup.event}. Sync them, then reset the scanner before setting it up for event ${s.event}.`,
    );
  }
  // The device writes under the id bound to its token (sync servers take nothing else from it).
  const boundId = Scanner.deviceIdForToken(s.token);
  if (scanner && scanner.deviceId !== boundId && scanner.recordCount > 0) {
    throw new Error(
      `This scanner holds ${scanner.recordCount} scans made with another device token. Sync them, then reset the scanner before setting it up with a new token.`,
    );
  }
  const fresh = !scanner || scanner.deviceId !== boundId;
  const candidate = fresh ? Scanner.create(boundId, s.device_name) : scanner;
  try {
    candidate.setEvent(s.event);
    // Only the keyring the setup link pinned: whoever answers at the server cannot swap the keys.
    candidate.setKeyringPinned(keyring, s.keyring_sha256);
    const delta = await getText(material.base, `/v1/scanner/revocations?since=${candidate.revocationsVersion}`, s.token);
    const revocations = candidate.applyRevocationDelta(delta);
    candidate.setManifest(manifest);
    if (gateRules !== null) candidate.setGateRules(gateRules);
    const now = Date.now();
    status = { ...status, revocationsAt: now, lastSyncError: null, hubSyncError: null };
    eventInfo = eventJson ? JSON.parse(eventJson) : null;
    await store.setConfig({
      device: { id: candidate.deviceId, name: candidate.name },
      setup: s,
      keyring,
      revocations,
      manifest,
      gateRules,
      event: eventInfo,
      status,
    });
  } catch (e) {
    if (fresh) candidate.free();
    throw e;
  }
  if (scanner && scanner !== candidate) scanner.free();
  scanner = candidate;
  setup = s;
  verifier = chosen;
  publish();
  scheduleSync(0);
  startHubSync();
}

// ---------------------------------------------------------------------------------------------------
// Scanning

function isRepeat(text) {
  const now = Date.now();
  for (const [t, at] of recentReads) if (now - at > SUPPRESS_REPEAT_MS) recentReads.delete(t);
  const repeat = recentReads.has(text);
  recentReads.set(text, now);
  return repeat;
}

/** Sends the plan's question to the online verifier (the venue hub or the edge); the answer (or why there
 *  is none) goes back to scanner-core. */
async function askOnline(question, nowMs) {
  const body = question.body;
  const timeoutMs = question.timeoutMs;
  const url = `${verifier.url}${question.path}`;
  let reply = null;
  let error = null;
  if (verifier.kind === 'hub' && hubSchedule?.waiting(Date.now())) {
    // The hub asked this phone to wait (429): decided here without asking, until the time it gave.
    return scanner.finish(question, undefined, undefined, 'not asked: the venue hub asked to wait (HTTP 429)', nowMs);
  }
  try {
    reply = await request(
      url,
      { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${setup.token}` }, body },
      timeoutMs,
    );
  } catch (e) {
    error = hubProblem(e.message);
  }
  if (reply && verifier.kind === 'hub') noteHubRetryAfter(reply);
  return scanner.finish(question, reply?.status, reply?.body, error ?? undefined, nowMs);
}

/**
 * One request at the door through scanner-core's scan policy (plan → ask the edge → finish): `action` is
 * 'scan', 'paid', 'override', 'undo' or 'found'. Nothing here decides: the engine only carries the question
 * to the edge and the answer back, and persists what scanner-core returns before the page sees it.
 */
async function scanOnce(text, source, action = 'scan', reason = undefined, capturedAt = undefined) {
  if (!scanner || !setup) {
    post({ type: 'verdict', error: 'This scanner is not set up yet: open the setup link from the organizer.' });
    return;
  }
  const started = performance.now();
  let result;
  try {
    const plan = scanner.plan(text, gate, kind, action, reason, Boolean(verifier && navigator.onLine), Date.now());
    const decided = plan.takeDecided();
    const question = decided ? undefined : plan.takeQuestion();
    plan.free();
    result = decided ?? (await askOnline(question, Date.now()));
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) throw e;
    post({ type: 'verdict', error: `Cannot check this code: ${e.message}`, text, source });
    return;
  }
  const seq = result.seq;
  const pendingBytes = result.pendingBytes;
  const gatesJson = result.gatesJson;
  const edgeNote = result.edgeNote ?? null;
  const verdict = JSON.parse(result.verdictJson);
  // The page shows which path decided as `path` (scanner-core's wire name is `decided_by`), and who
  // checked it: the online verifier ('hub' or 'edge') or this phone.
  verdict.path = verdict.decided_by;
  const onlineDecided = verdict.decided_by === 'edge';
  const checkedBy = onlineDecided ? (verifier?.kind ?? 'edge') : 'phone';
  if (!onlineDecided) edgeSyncWanted = true;
  result.free();
  try {
    await store.write(['pending', 'config'], (s) => {
      s.pending.put(pendingBytes, seq);
      if (gatesJson !== undefined) s.config.put(gatesJson, 'gates');
    });
  } catch (e) {
    // Not on disk: the verdict must not be shown. Forget the scan (or rebuild from storage).
    if (!scanner.abandonScan(seq)) await loadDevice();
    post({ type: 'verdict', error: `This scan could not be saved (${e.message}). Scan the ticket again.` });
    return;
  }
  // The code goes back with its verdict so the steward can override a refusal of this very ticket.
  // A camera verdict names the frame it came from (`capturedAt`, as the page sent it) for frame → verdict timing.
  post({ type: 'verdict', verdict, text, source, edgeNote, checkedBy, capturedAt, ms: performance.now() - started });
  // The hub holds what it decided; a scan it did not decide (hub unreachable, or decided here by
  // scanner-core's plan) goes to it at once, so the other gates learn of it within a sync round.
  hubSchedule?.scanned(onlineDecided);
  publish();
  try {
    await fold(false);
  } catch (e) {
    status.lastSyncError = `storage: ${e.message}`;
  }
  armHubTimer();
  scheduleSync(SYNC_AFTER_SCAN_MS);
}

function enqueueScan(text, source, action = 'scan', reason = undefined, capturedAt = undefined) {
  const run = scanChain.then(() => scanOnce(text, source, action, reason, capturedAt));
  scanChain = run.catch(() => {});
  return run;
}

// ---------------------------------------------------------------------------------------------------
// Supervisor

async function unlockSupervisor(pass) {
  const who = JSON.parse(scanner.unlockSupervisor(String(pass ?? '').trim(), Math.floor(Date.now() / 1000)));
  supervisorPass = String(pass).trim();
  await store.setConfig({ supervisorPass });
  publish();
  return who;
}

async function lockSupervisor() {
  scanner?.lockSupervisor();
  supervisorPass = null;
  await store.setConfig({ supervisorPass: null });
  publish();
}

/** The online attendee search (supervisors only; the issuer checks the pass too). */
async function search(query) {
  if (!supervisorNow()) throw new Error('Only a supervisor may search: unlock supervisor mode first.');
  if (!navigator.onLine) throw new Error('Search needs a connection: the attendee list on this scanner is sealed.');
  const res = await request(`${setup.server}/v1/scanner/events/${setup.event}/search?q=${encodeURIComponent(query)}`, {
    headers: { authorization: `Bearer ${setup.token}`, 'x-supervisor-pass': supervisorPass ?? '' },
  });
  if (res.status !== 200) throw httpError('search', res);
  return JSON.parse(new TextDecoder().decode(res.body));
}

function frameLuma(message) {
  let width;
  let height;
  let rgba;
  if (message.bitmap) {
    ({ width, height } = message.bitmap);
    if (!canvas || canvas.width !== width || canvas.height !== height) {
      canvas = new OffscreenCanvas(width, height);
      context2d = canvas.getContext('2d', { willReadFrequently: true });
    }
    context2d.drawImage(message.bitmap, 0, 0);
    message.bitmap.close();
    rgba = context2d.getImageData(0, 0, width, height).data;
  } else {
    ({ width, height } = message);
    rgba = new Uint8ClampedArray(message.rgba);
  }
  const luma = new Uint8Array(width * height);
  for (let i = 0, j = 0; i < luma.length; i++, j += 4) {
    // ITU-R BT.601 weights in 8-bit fixed point.
    luma[i] = (77 * rgba[j] + 150 * rgba[j + 1] + 29 * rgba[j + 2]) >> 8;
  }
  return { width, height, luma };
}

function onFrame(message) {
  const started = performance.now();
  let text;
  try {
    const { width, height, luma } = frameLuma(message);
    text = decodeLuma(width, height, luma);
  } catch (e) {
    post({ type: 'frameDone', ms: performance.now() - started, error: e.message });
    if (e instanceof WebAssembly.RuntimeError) post({ type: 'crashed', message: e.message });
    return;
  }
  post({ type: 'frameDone', ms: performance.now() - started, found: Boolean(text) });
  if (!text) return;
  if (/#(?:.*&)?setup=/.test(text)) {
    // A setup QR from the organizer's dashboard, not a ticket.
    if (!isRepeat(text)) post({ type: 'setupLink', link: text });
    return;
  }
  // Until setup is done there is nothing to check a ticket against; the code stays unread, so it is
  // checked as soon as setup finishes.
  if (!scanner || !setup) return;
  if (text.startsWith('SUP1:')) {
    // A supervisor pass shown by the organizer's dashboard: unlocks supervisor mode (checked offline).
    if (!isRepeat(text)) handle({ type: 'unlock', pass: text }).catch(failed);
    return;
  }
  if (!isRepeat(text)) enqueueScan(text, 'camera', 'scan', undefined, message.capturedAt).catch(failed);
}

// ---------------------------------------------------------------------------------------------------
// Sync

// A sync with a server is two one-way sessions (scanner-core's SyncChannel): push this device's own
// records, then pull everyone's. The server takes nothing but the device's own records.
async function syncPeer(peer, url, timeoutMs = REQUEST_TIMEOUT_MS) {
  await pushTo(`${peer}#push`, `${url}&channel=push`, timeoutMs);
  return pullFrom(`${peer}#pull`, `${url}&channel=pull`, timeoutMs);
}

async function syncRequest(url, message, timeoutMs) {
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${setup.token}` },
    body: message,
  }, timeoutMs);
  if (verifier?.kind === 'hub' && url.startsWith(`${verifier.url}/`)) noteHubRetryAfter(res);
  if (res.status === 204 || (res.status === 200 && res.body.length === 0)) return null;
  if (res.status !== 200) throw httpError('sync', res);
  return res.body;
}

async function pushTo(peer, url, timeoutMs) {
  const stored = await store.get('peers', peer);
  scanner.beginSync(peer, stored ?? new Uint8Array(0));
  for (let round = 0; ; round++) {
    const message = scanner.pushMessage(peer);
    if (!message) break;
    if (round === MAX_SYNC_ROUNDS) throw new Error(`sync did not finish after ${MAX_SYNC_ROUNDS} round trips`);
    const reply = await syncRequest(url, message, timeoutMs);
    if (reply) scanner.receivePushReply(peer, reply);
  }
  const finalState = scanner.peerState(peer);
  await store.write(['peers'], (s) => s.peers.put(finalState, peer), { durable: false });
}

async function pullFrom(peer, url, timeoutMs) {
  const stored = await store.get('peers', peer);
  scanner.beginSync(peer, stored ?? new Uint8Array(0));
  let newRecords = 0;
  for (let round = 0; ; round++) {
    const message = scanner.syncMessage(peer);
    if (!message) break;
    if (round === MAX_SYNC_ROUNDS) throw new Error(`sync did not finish after ${MAX_SYNC_ROUNDS} round trips`);
    const reply = await syncRequest(url, message, timeoutMs);
    if (!reply) continue;
    const receipt = scanner.receiveSync(peer, reply, Date.now());
    const chunk = receipt.chunk;
    const peerState = receipt.peerState;
    const complete = receipt.complete;
    newRecords += receipt.newRecords;
    receipt.free();
    const key = chunk.length ? nextChunk++ : null;
    await store.write(['chunks', 'peers'], (s) => {
      if (key !== null) s.chunks.put(chunk, key);
      s.peers.put(peerState, peer);
    });
    if (key !== null) chunkCount++;
    // This device holds every head the server advertised: it has everything the server has.
    if (complete) break;
  }
  const finalState = scanner.peerState(peer);
  await store.write(['peers'], (s) => s.peers.put(finalState, peer), { durable: false });
  return newRecords;
}

async function refreshRevocations() {
  const delta = await getText(setup.server, `/v1/scanner/revocations?since=${scanner.revocationsVersion}`, setup.token);
  const list = scanner.applyRevocationDelta(delta);
  status.revocationsAt = Date.now();
  // The event's gate rules come with it: an organizer's change reaches the door at the next sync.
  const gateRules = await getText(setup.server, `/v1/scanner/events/${setup.event}/gates`, setup.token);
  scanner.setGateRules(gateRules);
  await store.setConfig({ revocations: list, gateRules, status });
}

// A venue hub is synced by scanner-core's `SyncSchedule` (the CLI's door loop follows the same rule):
// every `sync_every_ms` (2 s), at once after a scan the hub did not decide, never while the hub asked to
// wait (429). It runs on its own timer, independently of the issuer's round: with no internet the issuer's
// requests fail or time out, and that must never hold back the hub's.
let hubSyncing = null;
let hubTimer = null;
/** scanner-core's SyncSchedule (wasm) while the online verifier is a hub, else null. */
let hubSchedule = null;

/** (Re)starts the hub's schedule for the current verifier; the first round is due at once. */
function startHubSync() {
  hubSchedule?.free();
  hubSchedule = verifier?.kind === 'hub' && verifier.sync_every_ms ? new SyncSchedule(verifier.sync_every_ms, Date.now()) : null;
  armHubTimer();
}

/** Wakes up when the schedule says the next sync is due. */
function armHubTimer() {
  clearTimeout(hubTimer);
  hubTimer = null;
  if (!hubSchedule) return;
  hubTimer = setTimeout(hubTick, hubSchedule.waitMs(Date.now()));
}

async function hubTick() {
  hubTimer = null;
  if (hubSyncing) {
    // A round is running: the schedule is asked again when it ends.
    await hubSyncing;
  } else if (hubSchedule?.due(Date.now())) {
    if (navigator.onLine) await syncHub();
    // No network at all: this round is skipped (the 'online' event starts one).
    else hubSchedule.synced(Date.now());
  }
  armHubTimer();
}

/** A 429 from the hub: its `Retry-After` (seconds; 1 when missing, at most 10 min, as the CLI reads it). */
function noteHubRetryAfter(res) {
  if (res.status !== 429 || !hubSchedule) return;
  const secs = Number.parseInt(res.retryAfter ?? '', 10);
  const wait = Math.min(Math.max(Number.isFinite(secs) ? secs : 1, 1), 600);
  hubSchedule.wait(Date.now(), wait * 1000);
}

function syncHub() {
  if (hubSyncing) return hubSyncing;
  if (!scanner || !setup || !hubSchedule) return null;
  const hub = verifier.url;
  // What is recorded from now on goes out with the next round (a scan made during this one makes it due).
  hubSchedule.synced(Date.now());
  hubSyncing = (async () => {
    try {
      await fold(true);
      await syncPeer(`hub ${hub}`, `${hub}/v1/sync?event=${setup.event}`, HUB_SYNC_TIMEOUT_MS);
      status.hubSyncAt = Date.now();
      status.hubSyncError = null;
    } catch (e) {
      // Retried at the next round (not at once: a hub that is down must not be hammered); the scans
      // not yet acknowledged go out then.
      status.hubSyncError = hubProblem(e.message);
    } finally {
      hubSyncing = null;
      publish();
    }
  })();
  return hubSyncing;
}

/** One sync round: the issuer always, the edge when it is the online verifier and a sync with it is due
 *  (see `edgeSyncWanted`) or `everything`; with a venue hub the edge is not used (scanner-core's
 *  `OnlineVerifier`): the hub relays to the issuer, which relays to the edge. */
function syncNow(everything = false) {
  if (syncing) {
    // Scans made while a sync runs go out in one more round right after it.
    syncAgain = true;
    return syncing;
  }
  if (!scanner || !setup) return null;
  syncing = (async () => {
    publish();
    try {
      await fold(true);
      try {
        await syncPeer(`issuer ${setup.server}`, `${setup.server}/v1/sync?event=${setup.event}`);
        await refreshRevocations();
        if (!eventInfo) {
          // Set up from a venue hub with no internet: the event's names come once the issuer answers.
          eventInfo = JSON.parse(await getText(setup.server, `/v1/events/${setup.event}`, setup.token));
          await store.setConfig({ event: eventInfo });
        }
        status.lastSyncAt = Date.now();
        status.lastSyncError = null;
      } catch (e) {
        status.lastSyncError = e.message;
      }
      if (everything && verifier?.kind === 'hub') await syncHub();
      if (verifier?.kind === 'edge' && (everything || edgeSyncWanted || Date.now() - lastEdgeSyncAt >= SYNC_EVERY_MS)) {
        try {
          edgeSyncWanted = false;
          await syncPeer(`edge ${verifier.url}`, `${verifier.url}/v1/sync?event=${setup.event}`, EDGE_SYNC_TIMEOUT_MS);
          lastEdgeSyncAt = Date.now();
          status.edgeSyncError = null;
        } catch (e) {
          edgeSyncWanted = true;
          status.edgeSyncError = e.message;
        }
      }
      await saveStatus();
    } catch (e) {
      status.lastSyncError = e.message;
    } finally {
      syncing = null;
      publish();
      if (syncAgain && navigator.onLine) {
        syncAgain = false;
        syncNow();
      }
    }
  })();
  return syncing;
}

function scheduleSync(delayMs) {
  clearTimeout(syncTimer);
  syncTimer = setTimeout(() => {
    syncTimer = null;
    if (navigator.onLine) syncNow();
    scheduleSync(SYNC_EVERY_MS);
  }, delayMs);
}

// ---------------------------------------------------------------------------------------------------
// Messages from the page

async function handle(message) {
  switch (message.type) {
    case 'frame':
      onFrame(message);
      break;
    case 'manual':
      if (message.text.trim().startsWith('SUP1:')) {
        await handle({ type: 'unlock', pass: message.text.trim() });
        break;
      }
      // Typed on purpose: never suppressed as a repeat, but a camera read right after it is.
      isRepeat(message.text.trim());
      // The page says how the code was typed ('manual', or 'keyboard' for a keyboard-wedge scanner).
      await enqueueScan(message.text.trim(), message.source === 'keyboard' ? 'keyboard' : 'manual');
      break;
    case 'override':
      // The steward admits a refused (genuine) ticket anyway, for a reason recorded beside the scan;
      // scanner-core decides whether the refusal can be overridden at all (never for a forgery).
      if (typeof message.reason === 'string' && message.reason.trim()) {
        await enqueueScan(message.text.trim(), 'override', 'override', message.reason.trim().slice(0, 200));
      }
      break;
    case 'paid':
      // The steward took the money for an unpaid ticket: scanner-core admits it (if still due) and records
      // the amount; anything else (e.g. used meanwhile on another scanner) gets its ordinary verdict.
      if (typeof message.text === 'string' && message.text.trim()) {
        await enqueueScan(message.text.trim(), 'paid', 'paid');
      }
      break;
    case 'undo':
      // A supervisor undoes this ticket's check-in, for a reason (scanner-core refuses a steward's).
      if (typeof message.text === 'string' && typeof message.reason === 'string' && message.reason.trim()) {
        await enqueueScan(message.text.trim(), 'undo', 'undo', message.reason.trim().slice(0, 200));
      }
      break;
    case 'found':
      // A supervisor admits a ticket found by search (its QR text came from the issuer's answer).
      if (typeof message.text === 'string' && message.text.trim()) {
        await enqueueScan(message.text.trim(), 'search', 'found');
      }
      break;
    case 'unlock':
      try {
        post({ type: 'supervisor', supervisor: await unlockSupervisor(message.pass) });
      } catch (e) {
        post({ type: 'supervisorFailed', message: e.message });
      }
      break;
    case 'lock':
      await lockSupervisor();
      post({ type: 'supervisor', supervisor: null });
      break;
    case 'search':
      try {
        post({ type: 'searchResults', query: message.query, results: await search(String(message.query ?? '')) });
      } catch (e) {
        post({ type: 'searchFailed', query: message.query, message: e.message });
      }
      break;
    case 'setup':
      try {
        await doSetup(message.setup);
        post({ type: 'setupDone' });
      } catch (e) {
        post({ type: 'setupFailed', message: e.message });
      }
      break;
    case 'settings':
      if (typeof message.gate === 'string' && message.gate.trim()) gate = message.gate.trim().slice(0, 64);
      if (message.kind === 'entry' || message.kind === 'exit') kind = message.kind;
      await store.setConfig({ gate, kind }, { durable: false });
      publish();
      break;
    case 'sync':
      await syncNow(true);
      break;
    case 'online':
      publish();
      if (navigator.onLine) {
        scheduleSync(0);
        armHubTimer();
      }
      break;
    case 'report':
      post({ type: 'report', report: scanner ? JSON.parse(scanner.reportJson()) : null });
      break;
    default:
      break;
  }
}

function failed(err) {
  // A trapped wasm instance is unusable from now on: the page starts a fresh engine from storage.
  if (err instanceof WebAssembly.RuntimeError) post({ type: 'crashed', message: err.message });
  else post({ type: 'error', message: err?.message ?? String(err) });
}

/**
 * Holds the device lock for the life of this worker. Two open scanner tabs (or the installed app and a
 * browser tab) would otherwise both hand out the same pending sequence numbers and overwrite each other's
 * scans in IndexedDB. Resolves false if another tab holds it.
 */
function holdDeviceLock() {
  if (!navigator.locks) return Promise.resolve(true);
  return new Promise((resolve) => {
    navigator.locks.request('ticket-scanner-device', { ifAvailable: true }, (lock) => {
      resolve(Boolean(lock));
      // Never settles: the lock is released only when this worker ends.
      return lock ? new Promise(() => {}) : undefined;
    });
  });
}

async function start() {
  if (!(await holdDeviceLock())) {
    post({ type: 'fatal', message: 'The scanner is already open in another tab or window: use that one.' });
    return;
  }
  await init({ module_or_path: new URL('./pkg/scanner_wasm_bg.wasm', import.meta.url) });
  store = await openStore();
  await loadDevice();
  self.onmessage = (e) =>
    handle(e.data).catch(failed);
  post({ type: 'ready' });
  publish();
  if (scanner && setup) {
    scheduleSync(navigator.onLine ? 0 : SYNC_EVERY_MS);
    startHubSync();
  }
}

// Frames and commands that arrive while the wasm module loads wait for it.
const early = [];
self.onmessage = (e) => early.push(e.data);
start()
  .then(() => {
    for (const m of early.splice(0)) self.onmessage({ data: m });
  })
  .catch((e) => post({ type: 'fatal', message: `The scanner could not start: ${e?.message ?? e}` }));
