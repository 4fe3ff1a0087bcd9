// The scanner page: camera, verdict display, sound, manual entry and status. Everything that decides or
// stores runs in engine.js (a Worker with scanner-core compiled to wasm), so a slow phone keeps drawing the
// camera preview and reacting to taps while a frame is decoded.

/** Frames are decoded at most this often; slower phones get longer gaps (1.5 × the last decode time). */
const MIN_FRAME_GAP_MS = 120;
/** Frames are scaled down to this width before decoding: enough for a phone-screen or paper ticket and
 *  cheap to decode (the decoder's corpus and benchmarks use 640×480). */
const DECODE_WIDTH = 640;
/** The sync status turns amber when the last successful sync is older than this. */
const STALE_AFTER_MS = 10 * 60_000;

const $ = (id) => document.getElementById(id);
const ui = {
  notice: $('notice'),
  setupScreen: $('setup-screen'),
  setupForm: $('setup-form'),
  setupLink: $('setup-link'),
  scanScreen: $('scan-screen'),
  video: $('video'),
  cameraStart: $('camera-start'),
  cameraState: $('camera-state'),
  verdict: $('verdict'),
  headline: $('verdict-headline'),
  who: $('verdict-who'),
  amount: $('verdict-amount'),
  paidAdmit: $('paid-admit'),
  detail: $('verdict-detail'),
  path: $('verdict-path'),
  manualForm: $('manual-form'),
  overrideForm: $('override-form'),
  overrideReason: $('override-reason'),
  manualCode: $('manual-code'),
  settingsForm: $('settings-form'),
  gate: $('gate'),
  kind: $('kind'),
  eventName: $('event-name'),
  statusLine: $('status-line'),
  syncNow: $('sync-now'),
};

let state = null;
let engineReady = false;
let frameInFlight = false;
let nextFrameAt = 0;
let grabCanvas = null;
let audio = null;

// ---------------------------------------------------------------------------------------------------
// Setup link: `#setup=<base64url(JSON)>`. It carries the device token, so it is taken out of the address
// bar and the history entry before anything else happens.

function takeSetupFromUrl() {
  const m = /(?:^#|&)setup=([A-Za-z0-9_-]+=*)/.exec(location.hash);
  if (!m) return null;
  history.replaceState(null, '', location.pathname + location.search);
  return m[1];
}

/** What is sent to the engine: the link itself; scanner-core (in the engine) parses and checks it. */
function setupFromLink(link) {
  if (!/#(?:.*&)?setup=/.test(link)) throw new Error('This is not a scanner setup link.');
  return link;
}

function startSetup(setup) {
  showNotice(null);
  ui.statusLine.textContent = 'Setting up: downloading keys, revocations and the attendee list…';
  engine.postMessage({ type: 'setup', setup });
}

// ---------------------------------------------------------------------------------------------------
// Engine

function onEngineMessage(e) {
  const m = e.data;
  switch (m.type) {
    case 'ready':
      engineReady = true;
      if (pendingSetup) {
        const encoded = pendingSetup;
        pendingSetup = null;
        try {
          startSetup(encoded);
        } catch {
          showNotice('This setup link is damaged. Ask the organizer for a new one.');
        }
      }
      break;
    case 'crashed':
      // The wasm instance trapped (a bug, never expected on any input). Everything the engine knows is
      // in IndexedDB, so a fresh engine restores it; the scan in progress, if any, was not shown.
      restartEngine(m.message);
      break;
    case 'state':
      state = m.state;
      render();
      break;
    case 'frameDone':
      noteFrameDone(m);
      frameInFlight = false;
      ui.cameraState.dataset.decodeMs = m.ms.toFixed(1);
      nextFrameAt = performance.now() + Math.max(MIN_FRAME_GAP_MS, 1.5 * m.ms);
      break;
    case 'verdict':
      showVerdict(m);
      noteVerdictShown(m);
      break;
    case 'setupLink':
      try {
        startSetup(setupFromLink(m.link));
      } catch (err) {
        showNotice(err.message);
      }
      break;
    case 'setupDone':
      showNotice(null);
      break;
    case 'setupFailed':
      showNotice(`Setup failed: ${m.message}`);
      render();
      break;
    case 'error':
      showNotice(m.message);
      break;
    case 'fatal':
      showNotice(m.message);
      ui.statusLine.textContent = 'Not working';
      break;
    default:
      break;
  }
}

let pendingSetup = takeSetupFromUrl();
let engine = null;
let restarts = 0;

function createEngine() {
  engineReady = false;
  frameInFlight = false;
  engine = new Worker(new URL('./engine.js', import.meta.url), { type: 'module' });
  engine.onmessage = onEngineMessage;
  engine.onerror = (e) => showNotice(`The scanner engine failed: ${e.message ?? 'unknown error'}`);
}

function restartEngine(reason) {
  engine.terminate();
  restarts++;
  if (restarts > 5) {
    showNotice(`The scanner keeps failing (${reason}). Reload the page; use manual entry meanwhile.`);
    return;
  }
  createEngine();
}

createEngine();

function showNotice(text) {
  ui.notice.hidden = !text;
  ui.notice.textContent = text ?? '';
}

// ---------------------------------------------------------------------------------------------------
// Rendering

function timeZone() {
  const tz = state?.eventInfo?.timezone;
  try {
    if (tz) new Intl.DateTimeFormat(undefined, { timeZone: tz });
    return tz || undefined;
  } catch {
    return undefined;
  }
}

/** "19:02" (today, in the event's time zone) or "12 Jun, 19:02". */
function clock(ms) {
  const tz = timeZone();
  const sameDay =
    new Intl.DateTimeFormat('en-CA', { timeZone: tz }).format(ms) ===
    new Intl.DateTimeFormat('en-CA', { timeZone: tz }).format(Date.now());
  const opts = sameDay
    ? { hour: '2-digit', minute: '2-digit', timeZone: tz }
    : { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', timeZone: tz };
  return new Intl.DateTimeFormat(undefined, opts).format(ms);
}

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 45) return 'just now';
  const min = Math.round(s / 60);
  if (min < 60) return `${min} min ago`;
  const h = Math.round(min / 60);
  return h < 48 ? `${h} h ago` : `${Math.round(h / 24)} days ago`;
}

function render() {
  if (!state) return;
  const configured = state.configured;
  ui.setupScreen.hidden = configured;
  ui.manualForm.hidden = !configured;
  ui.settingsForm.hidden = !configured;
  ui.syncNow.disabled = !configured || state.syncing;
  ui.eventName.textContent = state.eventInfo
    ? `${state.eventInfo.name} · ${state.deviceName ?? ''}`
    : configured
      ? `Event ${state.event}`
      : '';
  if (document.activeElement !== ui.gate) ui.gate.value = state.gate;
  ui.kind.value = state.kind;

  const parts = [];
  const online = navigator.onLine;
  let tone = '';
  if (!configured) {
    parts.push(online ? 'Online' : 'Offline');
    parts.push('not set up');
  } else {
    parts.push(online ? 'Online' : 'Offline');
    if (state.syncing) parts.push('syncing…');
    else if (state.lastSyncAt) parts.push(`synced ${ago(state.lastSyncAt)}`);
    else parts.push('not synced yet');
    if (state.revocationsAt) parts.push(`revocations from ${clock(state.revocationsAt)}`);
    parts.push(`${state.records} scan${state.records === 1 ? '' : 's'} in log`);
    if (online && state.lastSyncError) parts.push(`last sync failed: ${state.lastSyncError}`);
    if (online && state.edge && state.edgeSyncError) parts.push(`edge sync failed: ${state.edgeSyncError}`);
    if (!online) tone = 'offline';
    else if (!state.lastSyncAt || Date.now() - state.lastSyncAt > STALE_AFTER_MS || state.lastSyncError) tone = 'stale';
  }
  ui.statusLine.textContent = parts.join(' · ');
  ui.statusLine.className = `status__line${tone ? ` status__line--${tone}` : ''}`;
  ui.statusLine.dataset.online = String(online);
  ui.statusLine.dataset.synced = String(state.lastSyncAt ?? '');
}

function typeName(index) {
  return state?.eventInfo?.ticket_types?.find((t) => t.index === index)?.name ?? `Ticket type ${index}`;
}

function addonName(index) {
  return state?.eventInfo?.addons?.find((a) => a.index === index)?.name ?? `Add-on ${index}`;
}

/** Refusals a steward may override for a genuine ticket (scanner-core decides; forgeries never pass). */
const OVERRIDABLE = new Set(['key_not_active', 'wrong_event', 'not_yet_valid', 'expired', 'revoked']);
/** The code of the last refused scan, while the steward may still override it. */
let overridable = null;
/** The code of the last unpaid ticket, while the steward may still confirm its payment. */
let payable = null;

function showVerdict(m) {
  const v = m.verdict;
  overridable = v && (v.verdict === 'already_used' || (v.verdict === 'refused' && OVERRIDABLE.has(v.code))) ? m.text : null;
  ui.overrideForm.hidden = !overridable;
  ui.overrideReason.value = '';
  payable = v && v.verdict === 'payment_due' ? m.text : null;
  ui.paidAdmit.hidden = !payable;
  let cls;
  let headline;
  let who = '';
  let detail = '';
  let amount = '';
  if (!v) {
    cls = 'error';
    headline = 'NOT RECORDED';
    detail = m.error;
  } else if (v.verdict === 'admit') {
    cls = 'admit';
    headline = v.overridden ? 'ADMIT (override)' : 'ADMIT';
    who = v.holder ?? 'Name not on the attendee list';
    const extras = v.addons.map(addonName);
    detail = [typeName(v.ticket_type), ...extras].join(' + ');
    if (v.overridden) detail += ` — overrode: ${v.overridden}`;
    if (v.paid_at_door) {
      headline = 'ADMIT — PAID';
      detail += v.collected ? ` — paid ${v.collected.text} at the door` : ' — paid at the door';
    }
  } else if (v.verdict === 'payment_due') {
    // scanner-core decided the ticket is unpaid and formatted the amount; the page only shows it.
    cls = 'due';
    headline = 'UNPAID';
    amount = v.due ? `Collect ${v.due.text}` : 'Collect payment (amount unknown)';
    who = v.holder ?? 'Name not on the attendee list';
    detail = [typeName(v.ticket_type), ...v.addons.map(addonName)].join(' + ');
  } else if (v.verdict === 'exit') {
    cls = 'exit';
    headline = 'EXIT';
    detail = `Exit recorded at ${v.gate}`;
  } else if (v.verdict === 'already_used') {
    cls = 'used';
    headline = 'ALREADY USED';
    const device = v.this_device ? 'this scanner' : v.device_name || `scanner ${v.device}`;
    detail = `Already used at ${v.gate}, ${clock(v.wall_time * 1000)} (${device})`;
  } else {
    cls = 'refused';
    headline = 'REFUSED';
    detail = v.message;
  }
  ui.verdict.className = `verdict verdict--${cls}`;
  // Restart the flash animation so two verdicts in a row are visibly two.
  void ui.verdict.offsetWidth;
  ui.verdict.classList.add('verdict--fresh');
  ui.verdict.dataset.verdict = v ? v.verdict : 'error';
  ui.verdict.dataset.path = v?.path ?? '';
  ui.headline.textContent = headline;
  ui.who.textContent = who;
  ui.amount.textContent = amount;
  ui.detail.textContent = detail;
  ui.path.textContent = v
    ? `${v.path === 'edge' ? 'Checked online' : 'Checked on this phone'}${m.edgeNote ? ` (online check unavailable: ${m.edgeNote})` : ''}`
    : '';
  feedback(cls);
  openVerdictScreen(cls);
}

// ---------------------------------------------------------------------------------------------------
// Verdict screen: a fresh verdict fills the whole screen in its colour with huge type, readable at arm's
// length in sunlight; a tap (or Escape, or a few seconds) returns to the camera, where the last verdict
// stays in the small panel. "Paid — admit" and "Admit anyway" stay reachable on top of it.

/** How long a verdict fills the screen before the camera view returns (an admit is the common case and
 *  should not hold up the queue; a refusal has a reason to read; an unpaid ticket has money to collect). */
const VERDICT_SCREEN_MS = { admit: 3000, exit: 3000, due: 8000 };
const VERDICT_SCREEN_DEFAULT_MS = 5000;
let verdictScreenTimer = null;

function openVerdictScreen(cls) {
  clearTimeout(verdictScreenTimer);
  ui.verdict.classList.add('verdict--screen');
  document.body.classList.add('verdict-open');
  document.body.classList.toggle('verdict-actions', !ui.paidAdmit.hidden || !ui.overrideForm.hidden);
  verdictScreenTimer = setTimeout(closeVerdictScreen, VERDICT_SCREEN_MS[cls] ?? VERDICT_SCREEN_DEFAULT_MS);
}

function closeVerdictScreen() {
  clearTimeout(verdictScreenTimer);
  verdictScreenTimer = null;
  ui.verdict.classList.remove('verdict--screen');
  document.body.classList.remove('verdict-open', 'verdict-actions');
}

ui.verdict.addEventListener('click', () => {
  if (ui.verdict.classList.contains('verdict--screen')) closeVerdictScreen();
});
addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && ui.verdict.classList.contains('verdict--screen')) closeVerdictScreen();
});
// Moving to a field (to type a code, change the gate) returns to the camera view; typing a reason for
// "Admit anyway" keeps the verdict up until it is sent.
document.addEventListener('focusin', (e) => {
  if (!ui.verdict.classList.contains('verdict--screen')) return;
  if (ui.overrideForm.contains(e.target) || ui.paidAdmit.contains(e.target)) clearTimeout(verdictScreenTimer);
  else if (!ui.verdict.contains(e.target)) closeVerdictScreen();
});

// ---------------------------------------------------------------------------------------------------
// Sound and vibration: a steward often cannot look at the screen for every ticket. Neither may ever break
// a verdict: no AudioContext, a suspended one, or a browser without vibration just means silence.

/** [frequency Hz, start s, duration s, waveform]: one high beep admits, a low buzz refuses. */
const TONES = {
  admit: [[1320, 0, 0.15, 'sine']],
  exit: [[1320, 0, 0.15, 'sine']],
  due: [[880, 0, 0.12, 'sine'], [1100, 0.16, 0.12, 'sine'], [880, 0.32, 0.12, 'sine']],
  used: [[660, 0, 0.15, 'square'], [660, 0.22, 0.15, 'square']],
  refused: [[220, 0, 0.5, 'sawtooth']],
  error: [[220, 0, 0.5, 'sawtooth']],
};
/** navigator.vibrate patterns (ms on, off, on…). */
const VIBRATION = {
  admit: [80],
  exit: [80],
  due: [80, 60, 80, 60, 80],
  used: [120, 80, 120],
  refused: [400],
  error: [400],
};

function unlockAudio() {
  try {
    const Ctx = window.AudioContext ?? window.webkitAudioContext;
    if (!Ctx) return;
    audio ??= new Ctx();
    if (audio.state === 'suspended') Promise.resolve(audio.resume()).catch(() => {});
  } catch {
    // No sound on this device.
  }
}

function tone(freq, start, duration, type = 'sine') {
  const osc = audio.createOscillator();
  const gain = audio.createGain();
  osc.type = type;
  osc.frequency.value = freq;
  const t = audio.currentTime + start;
  gain.gain.setValueAtTime(0.0001, t);
  gain.gain.exponentialRampToValueAtTime(0.4, t + 0.01);
  gain.gain.exponentialRampToValueAtTime(0.0001, t + duration);
  osc.connect(gain).connect(audio.destination);
  osc.start(t);
  osc.stop(t + duration + 0.02);
}

function playTones(kind) {
  // The context exists once the steward touched the page or a hardware scanner typed (browsers refuse
  // sound before a user gesture).
  if (!audio) return;
  const play = () => {
    try {
      for (const t of TONES[kind] ?? TONES.refused) tone(...t);
    } catch {
      // Silence rather than a broken verdict.
    }
  };
  try {
    if (audio.state === 'running') play();
    else if (audio.state === 'suspended') {
      // A beep that comes late would belong to the wrong ticket: only if the context resumes at once.
      const asked = performance.now();
      Promise.resolve(audio.resume())
        .then(() => {
          if (audio.state === 'running' && performance.now() - asked < 300) play();
        })
        .catch(() => {});
    }
  } catch {
    // As above.
  }
}

function vibrate(kind) {
  try {
    // Browsers refuse (and complain about) vibration before the steward has touched the page once.
    if (typeof navigator.vibrate === 'function' && navigator.userActivation?.hasBeenActive !== false) {
      navigator.vibrate(VIBRATION[kind] ?? VIBRATION.refused);
    }
  } catch {
    // No vibration on this device.
  }
}

function feedback(kind) {
  playTones(kind);
  vibrate(kind);
}

for (const event of ['pointerdown', 'keydown']) addEventListener(event, unlockAudio, { passive: true });

// ---------------------------------------------------------------------------------------------------
// Camera

async function startCamera() {
  ui.cameraStart.hidden = true;
  if (!navigator.mediaDevices?.getUserMedia) {
    ui.cameraState.textContent = 'No camera access in this browser: use manual entry.';
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { facingMode: { ideal: 'environment' }, width: { ideal: 1280 }, height: { ideal: 720 } },
    });
    ui.video.srcObject = stream;
    await ui.video.play();
    ui.cameraState.textContent = 'Camera on';
    ui.cameraState.dataset.on = 'true';
    keepScreenOn();
  } catch (e) {
    ui.cameraState.textContent = `Camera unavailable (${e.name}): use manual entry.`;
    ui.cameraStart.hidden = false;
  }
}

/** A steward's phone must not dim or lock between two tickets (where the browser allows it). */
async function keepScreenOn() {
  try {
    if (navigator.wakeLock && document.visibilityState === 'visible') await navigator.wakeLock.request('screen');
  } catch {
    // Refused (battery saver, no permission): the phone's own timeout applies.
  }
}
// A wake lock ends when the page is hidden; take it again on return.
document.addEventListener('visibilitychange', () => {
  if (ui.video.srcObject) keepScreenOn();
});

async function grabFrame() {
  const v = ui.video;
  const width = Math.min(DECODE_WIDTH, v.videoWidth);
  const height = Math.round((v.videoHeight * width) / v.videoWidth);
  if (state?.offscreenFrames && window.createImageBitmap) {
    // Scaling and pixel reading happen in the worker; the page only hands over the bitmap.
    const bitmap = await createImageBitmap(v, { resizeWidth: width, resizeHeight: height, resizeQuality: 'medium' });
    engine.postMessage({ type: 'frame', bitmap, capturedAt: frameGrabbedAt }, [bitmap]);
    return;
  }
  grabCanvas ??= document.createElement('canvas');
  grabCanvas.width = width;
  grabCanvas.height = height;
  const ctx = grabCanvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(v, 0, 0, width, height);
  const { data } = ctx.getImageData(0, 0, width, height);
  engine.postMessage({ type: 'frame', width, height, rgba: data.buffer, capturedAt: frameGrabbedAt }, [data.buffer]);
}

function pump() {
  const v = ui.video;
  const ready = engineReady && v.srcObject && v.readyState >= 2 && v.videoWidth > 0 && !document.hidden;
  if (ready && !frameInFlight && performance.now() >= nextFrameAt) {
    frameInFlight = true;
    frameGrabbedAt = performance.now();
    grabFrame().catch(() => {
      frameInFlight = false;
    });
  }
  setTimeout(pump, 40);
}

// ---------------------------------------------------------------------------------------------------
// Timing, for the phone benchmark (web/tests/mobile-bench.mjs) and anyone looking at a slow scanner: the
// verdict panel carries `data-count` (verdicts shown so far), `data-shown-at` (ms since the page started
// loading, when the frame showing the verdict was drawn) and, for camera reads, `data-frame-ms` (camera
// frame taken → verdict drawn).

/** When the frame now being decoded was taken from the video. */
let frameGrabbedAt = 0;
/** The last decoded frame had a code in it. */
let codeInView = false;
/** When the first frame of the code now in view was taken. */
let codeAppearedAt = null;
let verdictsShown = 0;

function noteFrameDone(m) {
  if (m.found && !codeInView) codeAppearedAt = frameGrabbedAt;
  codeInView = Boolean(m.found);
}

function noteVerdictShown(m) {
  verdictsShown++;
  // The engine names the frame a read came from if it echoes `capturedAt`; otherwise the read is the first
  // frame of the code now in view (exact while codes come into view one at a time).
  const frameAt = m.source === 'camera' ? (m.capturedAt ?? codeAppearedAt) : null;
  const source = verdictSource(m);
  const count = verdictsShown;
  requestAnimationFrame(() => {
    const shownAt = performance.now();
    if (count !== verdictsShown) return; // a newer verdict replaced this one before it was drawn
    ui.verdict.dataset.shownAt = shownAt.toFixed(1);
    ui.verdict.dataset.source = source ?? '';
    ui.verdict.dataset.frameMs = frameAt === null ? '' : (shownAt - frameAt).toFixed(1);
    ui.verdict.dataset.engineMs = m.ms === undefined ? '' : m.ms.toFixed(1);
    ui.verdict.dataset.count = String(count);
  });
}

// ---------------------------------------------------------------------------------------------------
// Codes typed rather than seen: the manual entry box and hardware scanners.

/** A code from the keyboard (the manual box or a hardware scanner): a setup link sets the scanner up, anything
 *  else is checked as a ticket (the engine records `source`). */
function submitCode(text, source) {
  if (!text) return;
  if (/#(?:.*&)?setup=/.test(text)) {
    try {
      startSetup(setupFromLink(text));
    } catch (err) {
      showNotice(err.message);
    }
    return;
  }
  typedSources.set(text, source);
  engine.postMessage({ type: 'manual', text, source });
}

/** What typed each code still waiting for its verdict (the engine answers typed codes as 'manual'). */
const typedSources = new Map();

function verdictSource(m) {
  if (m.source !== 'manual' || !typedSources.has(m.text)) return m.source;
  const source = typedSources.get(m.text);
  typedSources.delete(m.text);
  return source;
}

// A keyboard-wedge scanner (USB or Bluetooth) types the code as a burst of keystrokes a few ms apart, then
// Enter. Bursts are recognised by their speed, so nothing needs a tap first and a person typing into the
// gate name or the manual box (well over 50 ms between keys) is never interrupted. Where the burst landed
// in a text field, the field gets back what it held before and the burst is checked once, as a scan (the
// form the field belongs to is not submitted as well).

/** Keys of a scanner burst are this close together (median gap); people type far slower. */
const WEDGE_MAX_GAP_MS = 50;
/** A pause this long starts a new burst. */
const WEDGE_PAUSE_MS = 300;
/** Shorter bursts are ignored (no ticket or setup link is this short). */
const WEDGE_MIN_LENGTH = 8;
/** A scanner that fires twice at the same code does not make "already used" out of one admission (the
 *  engine's camera uses the same window). */
const WEDGE_REPEAT_MS = 2500;

const wedge = { text: '', times: [], field: null, before: '', last: null, lastAt: 0 };
/** Keys whose keydown was kept from the page: their keyup is kept too (a space on a focused button clicks it). */
const swallowedKeys = new Set();

function isTextField(el) {
  if (!el) return false;
  if (el.isContentEditable) return true;
  if (el.tagName === 'TEXTAREA') return !el.readOnly && !el.disabled;
  return el.tagName === 'INPUT' && /^(text|search|url|tel|email|password|number)$/.test(el.type) && !el.readOnly && !el.disabled;
}

function wedgeBurst(times) {
  if (times.length < WEDGE_MIN_LENGTH) return false;
  const gaps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
  return gaps[gaps.length >> 1] < WEDGE_MAX_GAP_MS;
}

function swallow(e) {
  e.preventDefault();
  swallowedKeys.add(e.code || e.key);
}

function onWedgeKeydown(e) {
  if (e.isComposing || e.ctrlKey || e.metaKey || e.altKey) return;
  const now = performance.now();
  const last = wedge.times.at(-1);
  const fresh = last === undefined || now - last > WEDGE_PAUSE_MS;
  if (e.key === 'Enter') {
    const text = wedge.text.trim();
    const burst = !fresh && wedgeBurst(wedge.times);
    const field = wedge.field;
    const before = wedge.before;
    wedge.text = '';
    wedge.times = [];
    wedge.field = null;
    if (!burst) return;
    swallow(e);
    // Whatever the burst typed into a field goes away; the field's own form is not submitted.
    if (field && field.value !== before) field.value = before;
    if (text === wedge.last && now - wedge.lastAt < WEDGE_REPEAT_MS) return;
    wedge.last = text;
    wedge.lastAt = now;
    submitCode(text, 'keyboard');
    return;
  }
  if (e.key.length !== 1) return; // Shift (scanners press it for capitals), arrows, function keys
  if (fresh) {
    wedge.text = '';
    wedge.times = [];
    wedge.field = isTextField(e.target) ? e.target : null;
    wedge.before = wedge.field ? wedge.field.value : '';
  }
  const fast = !fresh && now - last < WEDGE_MAX_GAP_MS;
  wedge.text += e.key;
  wedge.times.push(now);
  // Outside a text field, keys of a burst must not act on the page: a space would press a focused button,
  // letters would pick options of a focused select.
  if (fast && !wedge.field) swallow(e);
}

function onWedgeKeyup(e) {
  if (swallowedKeys.delete(e.code || e.key)) e.preventDefault();
}

addEventListener('keydown', onWedgeKeydown, { capture: true });
addEventListener('keyup', onWedgeKeyup, { capture: true });

// ---------------------------------------------------------------------------------------------------
// Forms and events

ui.manualForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = ui.manualCode.value.trim();
  if (!text) return;
  submitCode(text, 'manual');
  ui.manualCode.value = '';
});

ui.paidAdmit.addEventListener('click', () => {
  if (!payable) return;
  // Once: a second tap must not ask the engine twice (it would answer "already used" anyway).
  const text = payable;
  payable = null;
  ui.paidAdmit.hidden = true;
  engine.postMessage({ type: 'paid', text });
});

ui.overrideForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const reason = ui.overrideReason.value.trim();
  if (!reason || !overridable) return;
  engine.postMessage({ type: 'override', text: overridable, reason });
});

ui.setupForm.addEventListener('submit', (e) => {
  e.preventDefault();
  try {
    startSetup(setupFromLink(ui.setupLink.value));
    ui.setupLink.value = '';
  } catch (err) {
    showNotice(err.message);
  }
});

ui.settingsForm.addEventListener('change', () => {
  engine.postMessage({ type: 'settings', gate: ui.gate.value, kind: ui.kind.value });
});
ui.settingsForm.addEventListener('submit', (e) => {
  e.preventDefault();
  engine.postMessage({ type: 'settings', gate: ui.gate.value, kind: ui.kind.value });
});

ui.syncNow.addEventListener('click', () => engine.postMessage({ type: 'sync' }));
ui.cameraStart.addEventListener('click', startCamera);

for (const event of ['online', 'offline']) {
  addEventListener(event, () => {
    engine.postMessage({ type: 'online' });
    render();
  });
}
// Keeps "synced 2 min ago" true while nothing else changes.
setInterval(render, 15_000);

if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('sw.js', { scope: './' }).catch((e) => {
    showNotice(`Offline mode unavailable: ${e.message}`);
  });
}

startCamera();
pump();
