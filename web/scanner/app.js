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
      frameInFlight = false;
      ui.cameraState.dataset.decodeMs = m.ms.toFixed(1);
      nextFrameAt = performance.now() + Math.max(MIN_FRAME_GAP_MS, 1.5 * m.ms);
      break;
    case 'verdict':
      showVerdict(m);
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
}

// ---------------------------------------------------------------------------------------------------
// Sound and vibration: a steward often cannot look at the screen for every ticket.

function unlockAudio() {
  const Ctx = window.AudioContext ?? window.webkitAudioContext;
  if (!Ctx) return;
  audio ??= new Ctx();
  if (audio.state === 'suspended') audio.resume().catch(() => {});
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

function feedback(kind) {
  if (audio && audio.state === 'running') {
    if (kind === 'admit' || kind === 'exit') tone(1320, 0, 0.15);
    else if (kind === 'due') {
      tone(880, 0, 0.12);
      tone(1100, 0.16, 0.12);
      tone(880, 0.32, 0.12);
    }
    else if (kind === 'used') {
      tone(660, 0, 0.15, 'square');
      tone(660, 0.22, 0.15, 'square');
    } else tone(220, 0, 0.5, 'sawtooth');
  }
  // Browsers refuse (and complain about) vibration before the steward has touched the page once.
  if (navigator.vibrate && navigator.userActivation?.hasBeenActive !== false) {
    const pattern = { admit: 80, exit: 80, used: [120, 80, 120], due: [80, 60, 80, 60, 80], refused: [400], error: [400] }[kind];
    navigator.vibrate(pattern);
  }
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
    engine.postMessage({ type: 'frame', bitmap }, [bitmap]);
    return;
  }
  grabCanvas ??= document.createElement('canvas');
  grabCanvas.width = width;
  grabCanvas.height = height;
  const ctx = grabCanvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(v, 0, 0, width, height);
  const { data } = ctx.getImageData(0, 0, width, height);
  engine.postMessage({ type: 'frame', width, height, rgba: data.buffer }, [data.buffer]);
}

function pump() {
  const v = ui.video;
  const ready = engineReady && v.srcObject && v.readyState >= 2 && v.videoWidth > 0 && !document.hidden;
  if (ready && !frameInFlight && performance.now() >= nextFrameAt) {
    frameInFlight = true;
    grabFrame().catch(() => {
      frameInFlight = false;
    });
  }
  setTimeout(pump, 40);
}

// ---------------------------------------------------------------------------------------------------
// Forms and events

ui.manualForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = ui.manualCode.value.trim();
  if (!text) return;
  engine.postMessage({ type: 'manual', text });
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
