// The scanner page: camera, verdict display, sound, manual entry and status. Everything that decides or
// stores runs in engine.js (a Worker with scanner-core compiled to wasm), so a slow phone keeps drawing the
// camera preview and reacting to taps while a frame is decoded. Every string the steward reads comes from
// locales/<lang>.json through i18n.js.

import * as i18n from './i18n.js';
import { t as tr } from './i18n.js';

await i18n.init();

/** Frames are decoded at most this often; slower phones get longer gaps (1.5 × the last decode time). */
const MIN_FRAME_GAP_MS = 120;
/** Frames are scaled down to this width before decoding: enough for a phone-screen or paper ticket and
 *  cheap to decode (the decoder's corpus and benchmarks use 640×480). */
const DECODE_WIDTH = 640;
/** The sync status turns amber when the last successful sync is older than this. */
const STALE_AFTER_MS = 10 * 60_000;

const $ = (id) => document.getElementById(id);
const languageSelect = $('language');
languageSelect.value = i18n.lang;
languageSelect.addEventListener('change', () => i18n.choose(languageSelect.value));
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
  actions: $('verdict-actions'),
  undoForm: $('undo-form'),
  undoReason: $('undo-reason'),
  gateOptions: $('gate-options'),
  gateRule: $('gate-rule'),
  role: $('role'),
  supervisorPanel: $('supervisor-panel'),
  unlockForm: $('unlock-form'),
  supervisorPass: $('supervisor-pass'),
  unlockHint: $('unlock-hint'),
  unlockError: $('unlock-error'),
  lockRow: $('lock-row'),
  supervisorWho: $('supervisor-who'),
  lock: $('lock'),
  findPanel: $('find-panel'),
  findForm: $('find-form'),
  findQuery: $('find-query'),
  findStatus: $('find-status'),
  findResults: $('find-results'),
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
  if (!/#(?:.*&)?setup=/.test(link)) throw new Error(tr('setup.not_a_link'));
  return link;
}

function startSetup(setup) {
  showNotice(null);
  ui.statusLine.textContent = tr('setup.busy');
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
          showNotice(tr('setup.damaged'));
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
      showNotice(tr('setup.failed', { message: m.message }));
      render();
      break;
    case 'error':
      showNotice(m.message);
      break;
    case 'supervisor':
      onSupervisor(m.supervisor);
      break;
    case 'supervisorFailed':
      onUnlockFailed(m.message);
      break;
    case 'searchResults':
      onSearchResults(m.query, m.results);
      break;
    case 'searchFailed':
      onSearchFailed(m.query, m.message);
      break;
    case 'fatal':
      showNotice(m.message);
      ui.statusLine.textContent = tr('status.not_working');
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
  engine.onerror = (e) => showNotice(tr('engine.failed', { message: e.message ?? tr('engine.unknown_error') }));
}

function restartEngine(reason) {
  engine.terminate();
  restarts++;
  if (restarts > 5) {
    showNotice(tr('engine.keeps_failing', { reason }));
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
  return new Intl.DateTimeFormat(i18n.lang, opts).format(ms);
}

/** "4 s ago" under a minute (the hub syncs every 2 s: minutes would hide a stalled hub), else as `ago`. */
function secondsAgo(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? tr('ago.seconds', { s }) : ago(ms);
}

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 45) return tr('ago.now');
  const min = Math.round(s / 60);
  if (min < 60) return tr('ago.minutes', { min });
  const h = Math.round(min / 60);
  return h < 48 ? tr('ago.hours', { h }) : tr('ago.days', { days: Math.round(h / 24) });
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
      ? tr('status.event', { event: state.event })
      : '';
  if (document.activeElement !== ui.gate) ui.gate.value = state.gate;
  ui.kind.value = state.kind;

  const parts = [];
  const online = navigator.onLine;
  let tone = '';
  if (!configured) {
    parts.push(online ? tr('status.online') : tr('status.offline'));
    parts.push(tr('status.not_set_up'));
  } else {
    parts.push(online ? tr('status.online') : tr('status.offline'));
    if (state.syncing) parts.push(tr('status.syncing'));
    else if (state.lastSyncAt) parts.push(tr('status.synced', { ago: ago(state.lastSyncAt) }));
    else parts.push(tr('status.not_synced'));
    if (state.revocationsAt) parts.push(tr('status.revocations', { time: clock(state.revocationsAt) }));
    parts.push(tr(state.records === 1 ? 'status.scans_one' : 'status.scans', { n: state.records }));
    if (online && state.lastSyncError) parts.push(tr('status.sync_failed', { error: state.lastSyncError }));
    if (online && state.edge && !state.hub && state.edgeSyncError) parts.push(tr('status.edge_failed', { error: state.edgeSyncError }));
    if (state.hub) {
      // The venue hub is what keeps the gates in step when there is no internet: its state comes first
      // among the problems, and the steward sees at once when it stops answering.
      if (online && state.hubSyncError) parts.push(tr('status.hub_unreachable', { error: state.hubSyncError }));
      else if (state.hubSyncAt) parts.push(tr('status.hub_synced', { ago: secondsAgo(state.hubSyncAt) }));
      else parts.push(tr('status.hub_not_synced'));
    }
    if (!online) tone = 'offline';
    else if (state.hub && state.hubSyncError) tone = 'stale';
    else if (state.hub && state.hubSyncAt) tone = '';
    else if (!state.lastSyncAt || Date.now() - state.lastSyncAt > STALE_AFTER_MS || state.lastSyncError) tone = 'stale';
  }
  ui.statusLine.textContent = parts.join(' · ');
  ui.statusLine.className = `status__line${tone ? ` status__line--${tone}` : ''}`;
  ui.statusLine.dataset.online = String(online);
  ui.statusLine.dataset.synced = String(state.lastSyncAt ?? '');
  ui.statusLine.dataset.hubSynced = String(state.hubSyncAt ?? '');
  ui.statusLine.dataset.hubError = state.hubSyncError ?? '';
  renderDoor();
}

function typeName(index) {
  return state?.eventInfo?.ticket_types?.find((t) => t.index === index)?.name ?? tr('ticket_type', { index });
}

function addonName(index) {
  return state?.eventInfo?.addons?.find((a) => a.index === index)?.name ?? tr('addon', { index });
}

/** Refusals a steward may override for a genuine ticket (scanner-core decides; forgeries never pass). */
const OVERRIDABLE = new Set(['key_not_active', 'wrong_event', 'not_yet_valid', 'expired', 'revoked', 'wrong_gate']);
/** The code of the last refused scan, while the steward may still override it. */
let overridable = null;
/** The code of the last unpaid ticket, while the steward may still confirm its payment. */
let payable = null;
/** The code of the last admitted or already-used ticket, while a supervisor may still undo its check-in. */
let undoable = null;

function showVerdict(m) {
  const v = m.verdict;
  overridable = v && (v.verdict === 'already_used' || (v.verdict === 'refused' && OVERRIDABLE.has(v.code))) ? m.text : null;
  // Admitting anyway and undoing are a supervisor's (scanner-core refuses them to a steward in any case).
  ui.overrideForm.hidden = !overridable || !supervisor();
  ui.overrideReason.value = '';
  undoable = v && (v.verdict === 'admit' || v.verdict === 'already_used') ? m.text : null;
  ui.undoForm.hidden = !undoable || !supervisor();
  ui.undoReason.value = '';
  payable = v && v.verdict === 'payment_due' ? m.text : null;
  ui.paidAdmit.hidden = !payable;
  let cls;
  let headline;
  let who = '';
  let detail = '';
  let amount = '';
  if (!v) {
    cls = 'error';
    headline = tr('verdict.not_recorded');
    detail = m.error;
  } else if (v.verdict === 'admit') {
    cls = 'admit';
    headline = v.overridden ? tr('verdict.admit_override') : tr('verdict.admit');
    who = v.holder ?? tr('verdict.no_name');
    const extras = v.addons.map(addonName);
    detail = [typeName(v.ticket_type), ...extras].join(' + ');
    if (v.overridden) detail += tr('verdict.overrode', { reason: v.overridden });
    if (v.paid_at_door) {
      headline = tr('verdict.admit_paid');
      detail += v.collected ? tr('verdict.paid_amount', { amount: v.collected.text }) : tr('verdict.paid');
    }
    if (v.redeemed) {
      // A gate that redeems an add-on (a voucher) redeemed it, once; the ticket itself was not admitted here.
      headline = tr('verdict.redeemed');
      detail = `${v.redeemed.name} — ${detail}`;
    }
    if (m.source === 'search') detail += tr('verdict.by_search');
  } else if (v.verdict === 'payment_due') {
    // scanner-core decided the ticket is unpaid and formatted the amount; the page only shows it.
    cls = 'due';
    headline = tr('verdict.unpaid');
    amount = v.due ? tr('verdict.collect', { amount: v.due.text }) : tr('verdict.collect_unknown');
    who = v.holder ?? tr('verdict.no_name');
    detail = [typeName(v.ticket_type), ...v.addons.map(addonName)].join(' + ');
  } else if (v.verdict === 'exit') {
    cls = 'exit';
    headline = tr('verdict.exit');
    detail = tr('verdict.exit_detail', { gate: v.gate });
  } else if (v.verdict === 'already_used') {
    cls = 'used';
    headline = tr('verdict.used');
    const device = v.this_device ? tr('device.this') : v.device_name || tr('device.other', { device: v.device });
    const at = { gate: v.gate, time: clock(v.wall_time * 1000), device };
    detail = tr('verdict.used_detail', at);
    if (v.redeemed) {
      headline = tr('verdict.already_redeemed');
      detail = tr('verdict.redeemed_detail', { name: v.redeemed.name, ...at });
    }
  } else if (v.verdict === 'undone') {
    // A supervisor's undo: the check-in no longer counts and the ticket admits again.
    cls = 'undone';
    headline = tr('verdict.undone');
    who = v.holder ?? tr('verdict.no_name');
    const u = v.undid;
    const device = u.this_device ? tr('device.this') : u.device_name || tr('device.other', { device: u.device });
    const what = u.redeemed ? tr('undo.what_redemption', { name: u.redeemed.name }) : tr('undo.what_entry');
    detail = tr('verdict.undone_detail', { what, gate: u.gate, time: clock(u.wall_time * 1000), device, reason: v.reason });
  } else {
    cls = 'refused';
    headline = tr('verdict.refused');
    detail = refusal(v);
  }
  ui.verdict.className = `verdict verdict--${cls}`;
  // Restart the flash animation so two verdicts in a row are visibly two.
  void ui.verdict.offsetWidth;
  ui.verdict.classList.add('verdict--fresh');
  ui.verdict.dataset.verdict = v ? v.verdict : 'error';
  ui.verdict.dataset.path = v?.path ?? '';
  ui.verdict.dataset.code = v?.code ?? '';
  ui.headline.textContent = headline;
  ui.who.textContent = who;
  ui.amount.textContent = amount;
  ui.detail.textContent = detail;
  ui.verdict.dataset.checkedBy = v ? (m.checkedBy ?? '') : '';
  ui.path.textContent = v ? checkedByText(v, m) : '';
  feedback(cls);
  openVerdictScreen(cls);
}

/** Why a ticket was refused, by scanner-core's code. scanner-core's own message is English and says more
 *  (which event, which gate rule), so English shows it; the other languages say what the code means. */
function refusal(v) {
  if (i18n.lang === 'en' || !v.code) return v.message;
  const key = `refusal.${v.code}`;
  const text = tr(key);
  return text === key ? v.message : text;
}

/** Who checked the ticket: the venue hub, the edge ("online") or this phone, and why not online. */
function checkedByText(v, m) {
  const by = m.checkedBy ?? (v.path === 'edge' ? 'edge' : 'phone');
  const text = tr(`checked.${by}`);
  const unavailable = state?.hub ? tr('checked.hub_unavailable') : tr('checked.edge_unavailable');
  return `${text}${m.edgeNote ? ` (${unavailable}: ${m.edgeNote})` : ''}`;
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
  updateActions();
  verdictScreenTimer = setTimeout(closeVerdictScreen, VERDICT_SCREEN_MS[cls] ?? VERDICT_SCREEN_DEFAULT_MS);
}

/** Whether actions are offered on the verdict just shown; on the verdict screen they are stacked at the
 *  bottom, and the verdict's text keeps clear of them. */
function updateActions() {
  const any = !ui.paidAdmit.hidden || !ui.overrideForm.hidden || !ui.undoForm.hidden;
  document.body.classList.toggle('verdict-actions', any);
  if (any && document.body.classList.contains('verdict-open')) {
    document.body.style.setProperty('--actions-height', `${ui.actions.offsetHeight}px`);
  }
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
  if (ui.actions.contains(e.target)) clearTimeout(verdictScreenTimer);
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
  undone: [[880, 0, 0.12, 'triangle'], [587, 0.16, 0.2, 'triangle']],
};
/** navigator.vibrate patterns (ms on, off, on…). */
const VIBRATION = {
  admit: [80],
  exit: [80],
  due: [80, 60, 80, 60, 80],
  used: [120, 80, 120],
  refused: [400],
  error: [400],
  undone: [60, 60, 200],
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
    ui.cameraState.textContent = tr('camera.none');
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { facingMode: { ideal: 'environment' }, width: { ideal: 1280 }, height: { ideal: 720 } },
    });
    ui.video.srcObject = stream;
    await ui.video.play();
    ui.cameraState.textContent = tr('camera.on');
    ui.cameraState.dataset.on = 'true';
    keepScreenOn();
  } catch (e) {
    ui.cameraState.textContent = tr('camera.unavailable', { error: e.name });
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

/** The keys of the burst so far ({key, at, before: the field's value before it}) and the text field it
 *  types into, if any. */
const wedge = { keys: [], field: null, last: null, lastAt: 0 };
/** Keys whose keydown was kept from the page: their keyup is kept too (a space on a focused button clicks it). */
const swallowedKeys = new Set();

function isTextField(el) {
  if (!el) return false;
  if (el.isContentEditable) return true;
  if (el.tagName === 'TEXTAREA') return !el.readOnly && !el.disabled;
  return el.tagName === 'INPUT' && /^(text|search|url|tel|email|password|number)$/.test(el.type) && !el.readOnly && !el.disabled;
}

/** `keys` if a scanner typed them (median gap under WEDGE_MAX_GAP_MS: a busy phone's odd slow gap
 *  inside a burst, e.g. at its first key, does not break it), else null. */
function wedgeBurst(keys) {
  if (keys.length < WEDGE_MIN_LENGTH) return null;
  const gaps = keys.slice(1).map((k, i) => k.at - keys[i].at).sort((x, y) => x - y);
  return gaps[gaps.length >> 1] < WEDGE_MAX_GAP_MS ? keys : null;
}

function swallow(e) {
  e.preventDefault();
  swallowedKeys.add(e.code || e.key);
}

function onWedgeKeydown(e) {
  if (e.isComposing || e.ctrlKey || e.metaKey || e.altKey) return;
  const now = performance.now();
  const last = wedge.keys.at(-1)?.at;
  const fresh = last === undefined || now - last > WEDGE_PAUSE_MS;
  if (e.key === 'Enter') {
    const burst = fresh ? null : wedgeBurst(wedge.keys);
    const field = wedge.field;
    wedge.keys = [];
    wedge.field = null;
    if (!burst) return;
    swallow(e);
    // Whatever the burst typed into a field goes away; the field's own form is not submitted.
    if (field && 'value' in field) field.value = burst[0].before;
    const text = burst.map((k) => k.key).join('').trim();
    if (text === wedge.last && now - wedge.lastAt < WEDGE_REPEAT_MS) return;
    wedge.last = text;
    wedge.lastAt = now;
    submitCode(text, 'keyboard');
    return;
  }
  if (e.key.length !== 1) return; // Shift (scanners press it for capitals), arrows, function keys
  if (fresh) {
    wedge.keys = [];
    wedge.field = isTextField(e.target) ? e.target : null;
  }
  const fast = !fresh && now - last < WEDGE_MAX_GAP_MS;
  wedge.keys.push({ key: e.key, at: now, before: wedge.field?.value ?? '' });
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
// Supervisor mode (issue #12). A supervisor pass (`SUP1:…`, made on the organizer's dashboard: typed or
// wedged into the pass field or the manual box, or its QR code shown to the camera) unlocks "Admit anyway",
// undoing a check-in and finding attendees without their QR code. scanner-core (in the engine) checks the
// pass offline and refuses these actions to a steward whatever this page shows; the page only offers them
// to a supervisor.

/** Search text shorter than this is not sent (the issuer's limit: a search narrows the list, never dumps it). */
const MIN_SEARCH_CHARS = 3;
const SEARCH_SEALED = tr('find.sealed');
/** The search whose answer the panel waits for. */
let searchAsked = null;
/** The supervisor pass form sent a pass and waits for the engine's answer. */
let unlockAsked = false;

/** The supervisor unlocked on this phone ({name, not_after}) while the pass is valid, or null (steward). */
function supervisor() {
  const s = state?.configured ? state.supervisor : null;
  return s && s.not_after * 1000 >= Date.now() ? s : null;
}

/** "19:02" (24-hour, in the event's time zone), or "12 Jun, 19:02" on another day. */
function untilClock(ms) {
  const tz = timeZone();
  const day = (t) => new Intl.DateTimeFormat('en-CA', { timeZone: tz }).format(t);
  const time = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: tz }).format(ms);
  if (day(ms) === day(Date.now())) return time;
  return `${new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'short', timeZone: tz }).format(ms)}, ${time}`;
}

function renderDoor() {
  const configured = Boolean(state?.configured);
  const sup = supervisor();
  const until = sup ? untilClock(sup.not_after * 1000) : '';
  ui.role.hidden = !configured;
  ui.role.textContent = sup ? tr('role.supervisor', { name: sup.name, until }) : tr('role.steward');
  ui.role.dataset.role = sup ? 'supervisor' : 'steward';
  ui.supervisorPanel.hidden = !configured;
  ui.supervisorPanel.classList.toggle('supervisor--on', Boolean(sup));
  ui.unlockForm.hidden = Boolean(sup);
  ui.unlockHint.hidden = Boolean(sup);
  ui.lockRow.hidden = !sup;
  ui.supervisorWho.textContent = sup ? tr('supervisor.who', { name: sup.name, until }) : '';
  ui.findPanel.hidden = !sup;
  if (!sup && (ui.findResults.childElementCount || ui.findQuery.value)) {
    // Attendees' names and emails do not stay on a steward's screen.
    ui.findResults.replaceChildren();
    ui.findQuery.value = '';
    setFindStatus('');
    searchAsked = null;
  }
  if (sup && !navigator.onLine) setFindStatus(SEARCH_SEALED, 'offline');
  else if (ui.findStatus.dataset.kind === 'offline') setFindStatus('');
  ui.overrideForm.hidden = !sup || !overridable;
  ui.undoForm.hidden = !sup || !undoable;
  updateActions();
  renderGates();
}

function onSupervisor(who) {
  const asked = unlockAsked;
  unlockAsked = false;
  showUnlockError(null);
  if (who) {
    ui.supervisorPass.value = '';
    // Unlocked from the camera or the manual box: the notice says so where the steward looks.
    if (!asked) showNotice(null);
  }
  render();
}

function onUnlockFailed(message) {
  const text = tr('supervisor.not_unlocked', { message });
  showUnlockError(text);
  // A pass shown to the camera or typed into the manual box: the panel may be off screen.
  if (!unlockAsked) showNotice(text);
  unlockAsked = false;
}

function showUnlockError(text) {
  ui.unlockError.hidden = !text;
  ui.unlockError.textContent = text ?? '';
}

// Gates: the event's rules (state.gateRules, from the issuer at setup and every sync) name gates the gate
// field offers; any other name is still allowed (it admits every ticket).

function renderGates() {
  const rules = state?.gateRules;
  const gates = rules?.gates ?? [];
  const key = JSON.stringify(gates.map((g) => g.gate));
  if (ui.gateOptions.dataset.key !== key) {
    ui.gateOptions.replaceChildren(
      ...gates.map((g) => {
        const option = document.createElement('option');
        option.value = g.gate;
        return option;
      }),
    );
    ui.gateOptions.dataset.key = key;
  }
  const rule = gates.find((g) => g.gate === state?.gate);
  ui.gateRule.hidden = !gates.length;
  ui.gateRule.textContent = rule
    ? describeRule(rule, rules)
    : gates.length
      ? tr('gate.no_rule', { gates: gates.map((g) => g.gate).join(', ') })
      : '';
}

function describeRule(rule, rules) {
  const type = (i) => rules.ticket_type_names?.[i] || typeName(i);
  const addon = (i) => rules.addon_names?.[i] || addonName(i);
  const parts = [];
  if (rule.ticket_types) parts.push(tr('gate.types_only', { types: rule.ticket_types.map(type).join(', ') }));
  if (rule.addons) parts.push(tr('gate.addons_only', { addons: rule.addons.map(addon).join(tr('gate.or')) }));
  if (rule.redeems_addon !== undefined && rule.redeems_addon !== null) {
    parts.push(tr('gate.redeems', { addon: addon(rule.redeems_addon) }));
  }
  return tr('gate.rule', { rule: parts.join('; ') || tr('gate.admits_all') });
}

// Find attendee: the issuer's orders, searched online (the engine sends the pass with the device token).
// Offline nothing is searched: the attendee list on the phone is sealed (encrypted per ticket).

function setFindStatus(text, kind = '') {
  ui.findStatus.textContent = text;
  ui.findStatus.dataset.kind = kind;
  ui.findStatus.className = `find__status${kind ? ` find__status--${kind}` : ''}`;
}

function statusLabel(status) {
  if (status === 'paid') return tr('order.paid');
  if (status === 'pay_at_door') return tr('order.pay_at_door');
  const s = String(status ?? '').replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function orderItem(order) {
  const li = element('li', 'find__order');
  li.dataset.orderId = order.order_id;
  li.append(
    element('p', 'find__buyer', order.buyer_name),
    element('p', 'find__meta', `${order.email} · ${statusLabel(order.status)} · order ${order.order_id}`),
  );
  const tickets = element('ul', 'find__tickets');
  tickets.setAttribute('aria-label', tr('find.tickets_of', { name: order.buyer_name }));
  for (const t of order.tickets) {
    const row = element('li', 'find__ticket');
    row.dataset.ticketId = t.ticket_id;
    const what = [t.ticket_type_name || typeName(t.ticket_type), ...t.addons.map(addonName)].join(' + ');
    row.append(element('span', 'find__holder', `${t.holder} — ${what}`));
    if (t.revoked) row.append(element('span', 'find__revoked', tr('find.revoked')));
    const admit = element('button', 'find__admit', tr('find.admit'));
    admit.type = 'button';
    admit.setAttribute('aria-label', tr(t.revoked ? 'find.admit_label_revoked' : 'find.admit_label', { holder: t.holder, what }));
    admit.addEventListener('click', () => {
      if (!supervisor()) return;
      // Once per search: a second tap would only be "already used".
      admit.disabled = true;
      engine.postMessage({ type: 'found', text: t.qr_text });
    });
    row.append(admit);
    tickets.append(row);
  }
  li.append(tickets);
  return li;
}

function onSearchResults(query, results) {
  if (query !== searchAsked || !supervisor()) return;
  searchAsked = null;
  const orders = results?.orders ?? [];
  ui.findResults.replaceChildren(...orders.map(orderItem));
  if (!orders.length) setFindStatus(tr('find.nothing', { query }));
  else {
    const more = results.truncated ? ' More matched: search more precisely.' : '';
    setFindStatus(`${orders.length} order${orders.length === 1 ? '' : 's'} found for “${query}”.${more}`);
  }
}

function onSearchFailed(query, message) {
  if (query !== searchAsked) return;
  searchAsked = null;
  if (!navigator.onLine) setFindStatus(SEARCH_SEALED, 'offline');
  else setFindStatus(tr('find.failed', { message }), 'error');
}

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

ui.undoForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const reason = ui.undoReason.value.trim();
  if (!reason) {
    // Spaces only: a reason is required (scanner-core records it beside the undo).
    ui.undoReason.value = '';
    ui.undoReason.reportValidity();
    return;
  }
  if (!undoable) return;
  engine.postMessage({ type: 'undo', text: undoable, reason });
});

ui.unlockForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const pass = ui.supervisorPass.value.trim();
  if (!pass) return;
  showUnlockError(null);
  unlockAsked = true;
  engine.postMessage({ type: 'unlock', pass });
});

ui.lock.addEventListener('click', () => engine.postMessage({ type: 'lock' }));

ui.findForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const query = ui.findQuery.value.trim();
  if ([...query].length < MIN_SEARCH_CHARS) {
    setFindStatus(tr('find.too_short', { n: MIN_SEARCH_CHARS }), 'error');
    return;
  }
  ui.findResults.replaceChildren();
  if (!navigator.onLine) {
    setFindStatus(SEARCH_SEALED, 'offline');
    return;
  }
  searchAsked = query;
  setFindStatus(tr('find.searching', { query }), 'busy');
  engine.postMessage({ type: 'search', query });
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
    showNotice(tr('offline.unavailable', { message: e.message }));
  });
}

startCamera();
pump();
