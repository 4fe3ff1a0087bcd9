// Shared harness of the browser tests: a real issuer process on a free loopback port with its own data
// directory, the system Chromium driven by playwright-core, screenshots, and the project's CLI binaries.
// Nothing here is mocked: tests talk HTTP to the same binary `scripts/run.sh` starts.
//
// Binaries come from $CARGO_TARGET_DIR/debug (scripts/web-test.sh builds them first); set
// TICKETS_PROFILE=release to use release builds instead.

import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const targetDir =
  process.env.CARGO_TARGET_DIR ?? join(process.env.TICKETS_CACHE ?? join(homedir(), '.cache', 'tickets'), 'target');
const profile = process.env.TICKETS_PROFILE ?? 'debug';
export const artifactsDir = process.env.TICKETS_ARTIFACTS ?? join(repoRoot, 'web', 'tests', 'artifacts');
export const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Absolute path of a workspace binary (`issuer`, `scanner`, ...) in the Cargo target directory. */
export function binPath(name) {
  const path = join(targetDir, profile, name);
  if (!existsSync(path)) {
    throw new Error(`${path} does not exist: build it first (scripts/web-test.sh does)`);
  }
  return path;
}

/**
 * Runs a command to completion. Resolves with {code, stdout, stderr}; never rejects on a non-zero exit
 * (tests assert exit codes themselves, e.g. `scanner verify` exits 1 for a refused ticket).
 */
/** A free loopback port (for a server whose address must be known before it starts). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export function run(command, args, { cwd, env, input } = {}) {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolveRun({ code, stdout, stderr }));
    if (input !== undefined) {
      // A command that exits without reading all its input must not fail the test with EPIPE.
      child.stdin.on('error', () => {});
      child.stdin.end(input);
    }
  });
}

/**
 * Starts `issuer serve` on 127.0.0.1 with a fresh data directory (the demo event seeded unless
 * `demo: false`) and waits until /healthz answers.
 *
 * Returns {url, adminToken, dataDir, process, log(), stop()}. `stop()` sends SIGTERM, waits for the exit
 * and removes the data directory (unless `keepData` or TICKETS_KEEP_DATA is set).
 *
 * `args` are extra `issuer serve` flags; `env` extra environment variables. The web files come from `webDir`,
 * else $TICKETS_WEB_DIR, else the repository's web/. `dataDir` and `bind` restart an issuer that was stopped
 * with `keepData` (same data, same address); a given `dataDir` is never removed.
 */
export async function startIssuer({ args = [], env = {}, demo = true, keepData = false, webDir, dataDir: reuse, bind } = {}) {
  const dataDir = reuse ?? mkdtempSync(join(tmpdir(), 'tickets-web-'));
  if (reuse) keepData = true;
  const serveArgs = [
    'serve',
    '--data-dir',
    dataDir,
    '--bind',
    bind ?? '127.0.0.1:0',
    '--web-dir',
    webDir ?? process.env.TICKETS_WEB_DIR ?? join(repoRoot, 'web'),
    ...(demo ? ['--demo'] : []),
    ...args,
  ];
  const child = spawn(binPath('issuer'), serveArgs, {
    env: { RUST_LOG: 'info,sqlx=warn', ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`issuer did not report its address in 60 s:\n${output}`)), 60_000);
    const onData = (d) => {
      output += d;
      // main.rs prints exactly one "listening on http://ADDR" line to stdout once the socket is bound.
      const m = /listening on (http:\/\/[^\s]+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d) => (output += d));
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`issuer exited (code ${code}, signal ${signal}) before listening:\n${output}`));
    });
  });
  await waitForHealthy(url);
  const adminToken = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  let stopped = false;
  return {
    url,
    adminToken,
    dataDir,
    process: child,
    /** Everything the issuer wrote to stdout and stderr so far (for failure messages). */
    log: () => output,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killTimer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killTimer);
      }
      if (!keepData && !process.env.TICKETS_KEEP_DATA) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function waitForHealthy(url) {
  const deadline = Date.now() + 30_000;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return;
      lastError = new Error(`/healthz answered ${res.status}`);
    } catch (e) {
      lastError = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`issuer at ${url} never became healthy: ${lastError}`);
}

/** fetch() against the admin API with the issuer's bearer token; JSON bodies are encoded for you. */
export async function adminFetch(issuer, path, { method = 'GET', json, headers = {} } = {}) {
  const init = { method, headers: { authorization: `Bearer ${issuer.adminToken}`, ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers['content-type'] = 'application/json';
  }
  return fetch(`${issuer.url}${path}`, init);
}

/** Flags that work for headless Chromium on these machines (see /work/shared/wasm-toolchain.md). */
export const chromiumFlags = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Flags for a fake camera that plays `y4mFile` (a 1-frame Y4M loops) and grants the permission prompt.
 * Pass the result as `args` to launchBrowser.
 */
export function fakeCameraFlags(y4mFile) {
  return [
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    `--use-file-for-fake-video-capture=${y4mFile}`,
  ];
}

/** Launches the system Chromium headless with the working flags plus `args`. */
export async function launchBrowser({ args = [], headless = true } = {}) {
  if (!existsSync(chromiumPath)) {
    throw new Error(`${chromiumPath} is missing: apt-get install chromium (never npx playwright install)`);
  }
  return chromium.launch({ executablePath: chromiumPath, headless, args: [...chromiumFlags, ...args] });
}

/**
 * Saves a full-page screenshot as $TICKETS_ARTIFACTS/<name>.png (default web/tests/artifacts/, git-ignored)
 * and returns its path.
 */
export async function screenshot(page, name) {
  mkdirSync(artifactsDir, { recursive: true });
  const path = join(artifactsDir, `${name.replace(/[^A-Za-z0-9._-]/g, '_')}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * Collects uncaught page errors and console errors of `page` so a test can assert there were none
 * (a broken script must fail the test, not pass silently).
 */
export function collectPageErrors(page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  return errors;
}

/**
 * Runs axe-core (npm) in `page` against WCAG 2.x A and AA rules and returns the violations as
 * [{id, impact, help, targets}] (empty when the page passes). Needs JavaScript enabled in the page's context.
 */
export async function accessibilityViolations(page) {
  const source = readFileSync(join(repoRoot, 'web', 'tests', 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
  // Evaluated through the DevTools protocol, so the page's Content-Security-Policy does not block it.
  await page.evaluate(source);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }),
  );
  return result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    targets: v.nodes.map((n) => n.target.join(' ')),
  }));
}

/**
 * Chromium's mobile emulation of a mid-range Android phone (Pixel 7 class: 412×915 CSS px at 2.625 device
 * pixels per px, touch, mobile viewport rules). Spread into `browser.newContext()` or
 * `chromium.launchPersistentContext()` options.
 */
export const phoneEmulation = {
  viewport: { width: 412, height: 915 },
  screen: { width: 412, height: 915 },
  deviceScaleFactor: 2.625,
  isMobile: true,
  hasTouch: true,
  userAgent:
    'Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36',
};

/**
 * Slows `page`'s renderer main thread down `rate` times (DevTools' CPU throttling, CDP
 * `Emulation.setCPUThrottlingRate`). Chromium applies it to the page only: dedicated workers run at full
 * speed (it answers "only supported for pages, not workers" for a worker target). Returns the CDP session.
 */
export async function throttleCpu(page, rate) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Emulation.setCPUThrottlingRate', { rate });
  return cdp;
}

/** A 640×480 luma frame with nothing to read (white paper), for `writeY4m`. */
export function blankLumaFrame() {
  return Buffer.alloc(640 * 480, 235);
}

/**
 * The 640×480 luma frame (BT.601 studio swing, as Y4M carries it) of `png` (e.g. a ticket's QR image)
 * scaled into 400×400 and centred on white, as a phone camera sees a ticket held up to it. Drawn by
 * Chromium's own canvas in a page of `browser`.
 */
export async function qrLumaFrame(browser, png) {
  const page = await browser.newPage();
  try {
    const b64 = await page.evaluate(async (pngB64) => {
      const img = new Image();
      img.src = `data:image/png;base64,${pngB64}`;
      await img.decode();
      const canvas = document.createElement('canvas');
      canvas.width = 640;
      canvas.height = 480;
      const ctx = canvas.getContext('2d');
      ctx.fillStyle = '#fff';
      ctx.fillRect(0, 0, 640, 480);
      const scale = Math.min(400 / img.width, 400 / img.height);
      const w = Math.round(img.width * scale);
      const h = Math.round(img.height * scale);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(img, (640 - w) >> 1, (480 - h) >> 1, w, h);
      const rgba = ctx.getImageData(0, 0, 640, 480).data;
      const y = new Uint8Array(640 * 480);
      for (let i = 0; i < y.length; i++) {
        y[i] = Math.round(16 + (65.481 * rgba[4 * i] + 128.553 * rgba[4 * i + 1] + 24.966 * rgba[4 * i + 2]) / 255);
      }
      let s = '';
      for (let i = 0; i < y.length; i += 0x8000) s += String.fromCharCode(...y.subarray(i, i + 0x8000));
      return btoa(s);
    }, Buffer.from(png).toString('base64'));
    return Buffer.from(b64, 'base64');
  } finally {
    await page.close();
  }
}

/**
 * Writes a 640×480 Y4M video (4:2:0, grey chroma) of `lumaFrames` at `fps` frames per second for
 * `fakeCameraFlags` (Chromium plays it in a loop at that rate). Returns `file`.
 */
export function writeY4m(file, lumaFrames, fps = 30) {
  const chroma = Buffer.alloc(320 * 240 * 2, 128);
  const parts = [Buffer.from(`YUV4MPEG2 W640 H480 F${fps}:1 Ip A1:1 C420jpeg\n`)];
  for (const luma of lumaFrames) {
    if (luma.length !== 640 * 480) throw new Error(`a luma frame must be 640×480 bytes, not ${luma.length}`);
    parts.push(Buffer.from('FRAME\n'), luma, chroma);
  }
  writeFileSync(file, Buffer.concat(parts));
  return file;
}

/**
 * Orders one ticket for `name` through the public API (`payment: "free"` unless given; type 0 with add-on 0
 * of the demo event unless given) and returns {name, qrText, pngUrl}.
 */
export async function buyTicket(issuer, name, { event = 1, ticketType = 0, addons = [0], payment = 'free' } = {}) {
  const res = await fetch(`${issuer.url}/v1/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      event_id: event,
      name,
      email: `${name.split(' ')[0].toLowerCase()}@example.org`,
      items: [{ ticket_type: ticketType, quantity: 1, addons }],
      payment,
    }),
  });
  if (res.status !== 201) throw new Error(`order for ${name}: HTTP ${res.status} ${await res.text()}`);
  const order = await res.json();
  const view = await (await fetch(`${issuer.url}/v1/orders/${order.order_id}?token=${order.token}`)).json();
  const ticket = view.tickets[0];
  return {
    name,
    qrText: ticket.qr_text,
    pngUrl: `${issuer.url}/orders/${order.order_id}/tickets/${ticket.seq}/qr.png?token=${order.token}`,
  };
}

/** Registers a scanner device for `event` (admin API) and returns it ({token, setup_url, …}). */
export async function createDevice(issuer, name, event = 1) {
  const res = await adminFetch(issuer, '/admin/v1/devices', { method: 'POST', json: { name, event } });
  if (res.status !== 201) throw new Error(`device ${name}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

/**
 * Makes a supervisor pass for `name` through the admin API (`POST /admin/v1/events/{event}/supervisor-passes`)
 * and returns the issuer's answer ({pass: "SUP1:…", name, not_after, …}).
 */
export async function makeSupervisorPass(issuer, name, { event = 1, hours = 2 } = {}) {
  const res = await adminFetch(issuer, `/admin/v1/events/${event}/supervisor-passes`, { method: 'POST', json: { name, hours } });
  if (res.status !== 201) throw new Error(`supervisor pass for ${name}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

/**
 * Unlocks supervisor mode on a set-up PWA scanner `page` with a fresh pass for `name` (typed into the
 * "Supervisor pass" field) and waits until the role indicator names the supervisor. Returns the pass.
 * Overrides ("Admit anyway"), undoing a check-in and the attendee search are a supervisor's.
 */
export async function unlockSupervisor(page, issuer, name, options) {
  const pass = await makeSupervisorPass(issuer, name, options);
  await page.keyboard.press('Escape'); // the verdict screen, if one is up, covers the form
  await page.fill('#supervisor-pass', pass.pass);
  await page.click('#unlock-form button[type="submit"]');
  await page.waitForFunction(
    (n) => document.getElementById('role').textContent.startsWith(`Supervisor: ${n} until `),
    name,
    { timeout: 30_000 },
  );
  return pass;
}

/** The issuer's redemption report of `event` (admin API). */
export async function issuerReport(issuer, event) {
  const res = await adminFetch(issuer, `/admin/v1/events/${event}/redemptions`);
  if (res.status !== 200) throw new Error(`redemption report: HTTP ${res.status}`);
  return res.json();
}

/** Polls the issuer's report of `event` until `predicate` holds (30 s at most); `what` names it on failure. */
export async function waitForIssuerReport(issuer, event, predicate, what) {
  const deadline = Date.now() + 30_000;
  let last;
  while (Date.now() < deadline) {
    last = await issuerReport(issuer, event);
    if (predicate(last)) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`issuer report never showed ${what}: ${JSON.stringify(last)}`);
}
