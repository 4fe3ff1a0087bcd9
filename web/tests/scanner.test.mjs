// The PWA scanner end to end, in the system Chromium with a fake camera, against a real issuer:
// set up from the dashboard's setup link → camera admits a ticket (holder name from the encrypted manifest)
// → the same ticket again is "already used" → a forged code typed in is refused with the reason → offline,
// a fresh browser process starts the scanner from its service worker and admits a second ticket from the
// camera → back online, the log syncs and the issuer's report counts both admissions.
//
// The first two tickets are bought through the order page (one with JavaScript off, one with it on) and
// their camera frames are screenshots of the QR on the confirmation page; the others' are the issuer's QR
// PNGs. Each is drawn on a 640×480 canvas in Chromium and written as a one-frame Y4M file (Chromium loops
// it). Screenshots of each screen go to $TICKETS_ARTIFACTS.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { pathToFileURL } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import {
  adminFetch,
  artifactsDir,
  binPath,
  chromiumFlags,
  chromiumPath,
  collectPageErrors,
  fakeCameraFlags,
  freePort,
  launchBrowser,
  repoRoot,
  run,
  screenshot,
  startIssuer,
  qrLumaFrame,
  unlockSupervisor,
  writeY4m,
  issuerReport,
  waitForIssuerReport,
} from './harness.mjs';

const EVENT = 1; // the demo event `issuer serve --demo` seeds
const GATE = 'Main entrance'; // the scanner's default gate name
const WAIT = { timeout: 30_000 };

let issuer;
let work;
const tickets = {};

/** A free order of one ticket (type 0, add-on 0: "Festival T-shirt") for `name`; returns its ticket. */
async function buyTicket(name) {
  const res = await fetch(`${issuer.url}/v1/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      event_id: EVENT,
      name,
      email: `${name.split(' ')[0].toLowerCase()}@example.org`,
      items: [{ ticket_type: 0, quantity: 1, addons: [0] }],
      payment: 'free',
    }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  const order = await res.json();
  const view = await (await fetch(`${issuer.url}/v1/orders/${order.order_id}?token=${order.token}`)).json();
  const ticket = view.tickets[0];
  return {
    name,
    qrText: ticket.qr_text,
    pngUrl: `${issuer.url}/orders/${order.order_id}/tickets/${ticket.seq}/qr.png?token=${order.token}`,
  };
}

/**
 * Buys one General admission ticket with the T-shirt through the order page — a real form post, with
 * JavaScript on or off — and returns it with its QR as the confirmation page shows it (a screenshot).
 */
async function buyThroughOrderPage(browser, name, javaScriptEnabled) {
  const context = await browser.newContext({ javaScriptEnabled });
  const page = await context.newPage();
  await page.goto(`${issuer.url}/events/${EVENT}`);
  await page.getByLabel('Number of General admission tickets').fill('1');
  await page.getByRole('checkbox', { name: /Festival T-shirt/ }).first().check();
  await page.getByLabel('Name on the tickets').fill(name);
  await page.getByLabel(/^Email/).fill(`${name.split(' ')[0].toLowerCase()}@example.org`);
  await page.getByRole('button', { name: 'Order tickets' }).click();
  await page.waitForURL(/\/orders\/ord_[0-9a-f]+\?token=/);
  const png = await page.locator('.ticket .qr').first().screenshot();
  const url = new URL(page.url());
  const view = await (await fetch(`${issuer.url}/v1${url.pathname}?token=${url.searchParams.get('token')}`)).json();
  await context.close();
  return { name, qrText: view.tickets[0].qr_text, png };
}

/**
 * Writes a 640×480 one-frame Y4M (4:2:0, grey chroma) showing the ticket's QR (the confirmation page's
 * screenshot, or the PNG at `pngUrl`) on white, as a phone camera would see a ticket held up to it. The
 * image is drawn by Chromium's own canvas.
 */
async function qrToY4m(browser, ticket, file) {
  const png = ticket.png ?? Buffer.from(await (await fetch(ticket.pngUrl)).arrayBuffer());
  return writeY4m(file, [await qrLumaFrame(browser, png)]);
}

/**
 * A code that parses as a ticket but whose signature does not match: one base45 digit inside the
 * signature of a real ticket is lowered by one (so the group stays valid base45). The real `scanner
 * verify` CLI confirms it is refused as a bad signature before the browser sees it.
 */
async function forge(qrText) {
  const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:';
  const prefix = 'TK1:';
  const body = qrText.slice(prefix.length);
  // The signature is the last 64 bytes ≈ the last 96 characters; stay well inside it, group-aligned.
  for (let at = Math.floor((body.length - 30) / 3) * 3; at > body.length - 90; at -= 3) {
    const digit = alphabet.indexOf(body[at]);
    if (digit <= 0) continue;
    const forged = prefix + body.slice(0, at) + alphabet[digit - 1] + body.slice(at + 1);
    const check = await run(binPath('scanner'), ['verify', '--event', String(EVENT), '--keyring', join(issuer.dataDir, 'keyring.json'), forged]);
    if (check.code === 1 && /signature/i.test(check.stdout + check.stderr)) return forged;
  }
  throw new Error('could not forge a bad-signature code');
}

const report = () => issuerReport(issuer, EVENT);
const waitForReport = (predicate, what) => waitForIssuerReport(issuer, EVENT, predicate, what);

/** A Chromium with a persistent profile (service worker, caches and IndexedDB survive a relaunch) and a
 *  fake camera playing `y4m`. */
function launchScanner(profileDir, y4m) {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: chromiumPath,
    headless: true,
    args: [...chromiumFlags, ...fakeCameraFlags(y4m)],
    viewport: { width: 420, height: 900 },
  });
}

/** Waits for the verdict panel to show `kind`; on failure saves a screenshot and says what the page showed. */
async function waitForVerdict(page, kind, errors, shot) {
  try {
    await page.waitForSelector(`#verdict[data-verdict="${kind}"]`, WAIT);
  } catch (e) {
    await screenshot(page, `${shot}-FAILED`).catch(() => {});
    const shown = await verdict(page).catch(() => ({}));
    const status = await page.textContent('#status-line').catch(() => '?');
    const notice = await page.textContent('#notice').catch(() => '?');
    throw new Error(
      `no ${kind} verdict: ${e.message}\nshown: ${JSON.stringify(shown)}\nstatus: ${status}\nnotice: ${notice}\n` +
        `errors: ${errors.join('\n')}`,
    );
  }
}

async function verdict(page) {
  return page.evaluate(() => ({
    verdict: document.getElementById('verdict').dataset.verdict,
    path: document.getElementById('verdict').dataset.path,
    headline: document.getElementById('verdict-headline').textContent,
    who: document.getElementById('verdict-who').textContent,
    detail: document.getElementById('verdict-detail').textContent,
  }));
}

/** Console and page errors, minus the network failures that going offline is supposed to cause. */
function unexpected(errors) {
  return errors.filter((e) => !/ERR_INTERNET_DISCONNECTED|Failed to fetch|Failed to load resource/.test(e));
}

before(async () => {
  issuer = await startIssuer();
  work = mkdtempSync(join(tmpdir(), 'tickets-scanner-'));
  mkdirSync(artifactsDir, { recursive: true });
  tickets.linus = await buyTicket('Linus Torvalds');
  tickets.katherine = await buyTicket('Katherine Johnson');
  const browser = await launchBrowser();
  try {
    // The customer's path: the order page without and with JavaScript, the QR from the confirmation page.
    tickets.ada = await buyThroughOrderPage(browser, 'Ada Lovelace', false);
    tickets.grace = await buyThroughOrderPage(browser, 'Grace Hopper', true);
    for (const [key, t] of Object.entries(tickets)) t.y4m = await qrToY4m(browser, t, join(work, `${key}.y4m`));
  } finally {
    await browser.close();
  }
});

after(async () => {
  await issuer?.stop();
  if (work && !process.env.TICKETS_KEEP_DATA) rmSync(work, { recursive: true, force: true });
});

test('setup link, camera admit, already used, forged code, offline start and admit, sync to the issuer', async () => {
  const created = await adminFetch(issuer, '/admin/v1/devices', {
    method: 'POST',
    json: { name: 'North door phone', event: EVENT },
  });
  assert.equal(created.status, 201);
  const device = await created.json();
  assert.match(device.setup_url, /\/scanner\/#setup=[A-Za-z0-9_-]+$/);

  const profile = join(work, 'profile');
  let context = await launchScanner(profile, tickets.ada.y4m);
  try {
    let page = context.pages()[0] ?? (await context.newPage());
    let errors = collectPageErrors(page);

    // 1. Setup link → the camera admits Ada's ticket, named from the encrypted manifest.
    await page.goto(device.setup_url);
    await waitForVerdict(page, 'admit', errors, 'scanner-admit');
    let v = await verdict(page);
    assert.equal(v.headline, 'ADMIT');
    assert.equal(v.who, 'Ada Lovelace');
    assert.equal(v.detail, 'General admission + Festival T-shirt');
    assert.equal(v.path, 'offline');
    assert.ok(!page.url().includes('setup='), `the token must leave the address bar: ${page.url()}`);
    assert.equal(await page.evaluate(() => location.hash), '');
    await screenshot(page, 'scanner-01-admit');

    // The service worker has the shell cached before we rely on it offline.
    await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
    // Installable: Chromium's own installability check finds nothing missing (manifest, icons, worker).
    const cdp = await context.newCDPSession(page);
    const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
    assert.deepEqual(installabilityErrors, []);
    await cdp.detach();
    // The background sync after the scan delivers it to the issuer.
    await waitForReport((r) => r.admitted === 1, 'the first admission');

    // 2. Scan again (reload: the device is restored from IndexedDB) → already used, where and when.
    await page.reload();
    await waitForVerdict(page, 'already_used', errors, 'scanner-already_used');
    v = await verdict(page);
    assert.equal(v.headline, 'ALREADY USED');
    assert.match(v.detail, new RegExp(`^Already used at ${GATE}, .*\\d\\d:\\d\\d.* \\(this scanner\\)$`));
    await screenshot(page, 'scanner-02-already-used');

    // A second tab must not run a second copy of the device on the same storage.
    const second = await context.newPage();
    await second.goto(new URL('/scanner/', issuer.url).href);
    await second.waitForFunction(() => /already open in another tab/.test(document.getElementById('notice').textContent));
    await second.close();
    assert.equal(await page.evaluate(() => navigator.serviceWorker.controller !== null), true);

    // 3. A forged code typed in → red, with the steward's reason.
    const forged = await forge(tickets.ada.qrText);
    await page.fill('#manual-code', forged);
    await page.click('#manual-form button[type="submit"]');
    await waitForVerdict(page, 'refused', errors, 'scanner-refused');
    v = await verdict(page);
    assert.equal(v.headline, 'REFUSED');
    assert.equal(v.detail, 'Fake ticket: the signature does not match');
    await screenshot(page, 'scanner-03-forged');
    assert.deepEqual(unexpected(errors), []);
    await context.close();

    // 4. Offline: a new browser process, no network at all, the camera now showing Grace's ticket.
    context = await launchScanner(profile, tickets.grace.y4m);
    await context.setOffline(true);
    page = context.pages()[0] ?? (await context.newPage());
    errors = collectPageErrors(page);
    await page.goto(new URL('/scanner/', issuer.url).href);
    await waitForVerdict(page, 'admit', errors, 'scanner-admit');
    v = await verdict(page);
    assert.equal(v.who, 'Grace Hopper');
    assert.equal(v.path, 'offline');
    assert.match(await page.textContent('#status-line'), /^Offline · /);
    await screenshot(page, 'scanner-04-offline-admit');
    // Nothing reached the issuer while offline.
    assert.equal((await report()).admitted, 1);

    // Typing Ada's ticket offline is still refused: the device's own log knows it.
    await page.fill('#manual-code', tickets.ada.qrText);
    await page.click('#manual-form button[type="submit"]');
    await waitForVerdict(page, 'already_used', errors, 'scanner-already_used');

    // 5. Back online → the log syncs by itself; the issuer counts both admissions and no conflict.
    await context.setOffline(false);
    const synced = await waitForReport((r) => r.admitted === 2, 'both admissions');
    assert.equal(synced.conflicts.length, 0);
    assert.equal(synced.already_used, 2);
    assert.equal(synced.refused_by_reason.bad_signature, 1);
    assert.deepEqual(synced.admitted_by_gate, { [GATE]: 2 });
    assert.deepEqual(
      synced.devices.map((d) => [d.name, d.admitted]),
      [['North door phone', 2]],
    );
    await page.waitForFunction(() => /^Online · synced /.test(document.getElementById('status-line').textContent));
    await screenshot(page, 'scanner-05-synced');
    // The organizer's dashboard counts both admissions.
    const dashboard = await context.newPage();
    await dashboard.goto(`${issuer.url}/dashboard/`);
    await dashboard.getByLabel('Admin token').fill(issuer.adminToken);
    await dashboard.getByRole('button', { name: 'Sign in' }).click();
    await dashboard.waitForFunction(() => document.getElementById('admitted').textContent === '2');
    await screenshot(dashboard, 'scanner-06-dashboard');
    await dashboard.close();
    const frameMs = await page.evaluate(() => document.getElementById('camera-state').dataset.decodeMs);
    console.log(JSON.stringify({ scanner_decode_ms_last_frame: Number(frameMs) }));
    assert.deepEqual(unexpected(errors), []);
  } finally {
    await context.close();
  }
});

/** A setup link exactly as the dashboard makes it (see issuer/src/admin.rs), with an edge URL of our own. */
async function setupLink(token, edge, deviceName) {
  const keyring = await (await fetch(`${issuer.url}/v1/scanner/keyring`)).text();
  const keyring_sha256 = createHash('sha256').update(keyring).digest('hex');
  const json = JSON.stringify({ v: 2, server: issuer.url, token, event: EVENT, edge, device_name: deviceName, keyring_sha256 });
  return `${issuer.url}/scanner/#setup=${Buffer.from(json).toString('base64url')}`;
}


const edgeBuildDir = join(repoRoot, 'edge-verifier', 'build');

/**
 * The edge Worker as built by scripts/edge-build.sh (which the test command runs first), under the real
 * workerd through the edge's own Miniflare setup, listening on `port`.
 */
async function startEdgeWorker(bindings, port) {
  assert.ok(existsSync(join(edgeBuildDir, 'worker.mjs')), 'edge Worker not built: run scripts/edge-build.sh');
  // A private copy: a rebuild of edge-verifier/build while the test runs must not pull files from under it.
  const buildDir = join(work, 'edge-build');
  if (!existsSync(buildDir)) cpSync(edgeBuildDir, buildDir, { recursive: true });
  const { startWorker } = await import(pathToFileURL(join(repoRoot, 'edge-verifier', 'local', 'miniflare.mjs')).href);
  return startWorker(bindings, { buildDir, port });
}

test(
  'edge first: the real Worker (workerd) decides online; when it is gone or hangs the phone decides offline',
  async () => {
    const created = await adminFetch(issuer, '/admin/v1/devices', {
      method: 'POST',
      json: { name: 'Edge door phone', event: EVENT },
    });
    assert.equal(created.status, 201);
    const { token } = await created.json();
    const keyring = await (await fetch(`${issuer.url}/v1/keyring`)).text();
    const revocations = await (
      await fetch(`${issuer.url}/v1/scanner/revocations?since=0`, { headers: { authorization: `Bearer ${token}` } })
    ).text();
    const port = await freePort();
    const edgeUrl = `http://127.0.0.1:${port}`;
    let mf = await startEdgeWorker(
      {
        KEYRING_JSON: keyring,
        REVOCATIONS_JSON: revocations,
        SCANNER_TOKEN_HASHES: createHash('sha256').update(token).digest('hex'),
        ALLOWED_ORIGINS: issuer.url,
      },
      port,
    );
    let blackhole;
    const browser = await launchBrowser({ args: fakeCameraFlags(tickets.linus.y4m) });
    try {
      const page = await browser.newPage({ viewport: { width: 420, height: 900 } });
      const errors = collectPageErrors(page);

      // Online with the edge up: the Worker decides (and records); the phone mirrors it in its own log
      // and names the holder from its local manifest (the edge holds no names).
      await page.goto(await setupLink(token, edgeUrl, 'Edge door phone'));
      await waitForVerdict(page, 'admit', errors, 'scanner-edge-admit');
      let v = await verdict(page);
      assert.equal(v.path, 'edge');
      assert.equal(v.who, 'Linus Torvalds');
      assert.equal(await page.textContent('#verdict-path'), 'Checked online');
      await screenshot(page, 'scanner-06-edge-admit');

      // The same ticket typed in again: this phone's own log (its mirror of the edge's admission) already
      // shows it used, so scanner-core's door policy answers on the phone at once, without asking the edge.
      await page.fill('#manual-code', tickets.linus.qrText);
      await page.click('#manual-form button[type="submit"]');
      await waitForVerdict(page, 'already_used', errors, 'scanner-edge-used');
      assert.equal((await verdict(page)).path, 'offline');
      assert.match(await page.textContent('#verdict-path'), /not asked: this device's log already shows the ticket used/);

      // The edge goes away (connection refused): the phone decides by itself, and its mirror of the
      // edge's admission is what makes it refuse the ticket.
      await mf.dispose();
      mf = null;
      await page.fill('#manual-code', tickets.linus.qrText);
      await page.click('#manual-form button[type="submit"]');
      await page.waitForFunction(() => document.getElementById('verdict').dataset.path === 'offline', null, WAIT);
      v = await verdict(page);
      assert.equal(v.verdict, 'already_used');
      assert.match(await page.textContent('#verdict-path'), /^Checked on this phone \(online check unavailable: /);

      // The edge hangs (accepts connections, never answers): after the edge timeout the phone decides. A
      // ticket nobody scanned yet (one this phone knows used is answered without asking the edge).
      const hedy = await buyTicket('Hedy Lamarr');
      blackhole = createServer(() => {});
      await new Promise((resolve) => blackhole.listen(port, '127.0.0.1', resolve));
      await page.fill('#manual-code', hedy.qrText);
      await page.click('#manual-form button[type="submit"]');
      await page.waitForFunction(
        () => /did not answer in time/.test(document.getElementById('verdict-path').textContent),
        null,
        WAIT,
      );
      v = await verdict(page);
      assert.equal(v.path, 'offline');
      await screenshot(page, 'scanner-07-edge-timeout');

      // Every one of those scans reaches the issuer's log, the edge-decided ones marked as such.
      await page.click('#sync-now');
      const r = await waitForReport(
        (x) => x.devices.some((d) => d.name === 'Edge door phone' && d.scans === 4),
        "the edge phone's 4 scans",
      );
      // One admission, decided by the edge (the edge's "already used" is not an admission).
      assert.equal(r.decided_by_edge, 1);
      assert.deepEqual(unexpected(errors), []);
    } finally {
      await browser.close();
      await mf?.dispose();
      blackhole?.close();
    }
  },
);

/** The pid of the Chromium browser process (not a renderer or helper) running on `profileDir`. */
async function browserPid(profileDir) {
  const ps = await run('ps', ['-eo', 'pid=,args=']);
  for (const line of ps.stdout.split('\n')) {
    const m = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (m && m[2].includes(`--user-data-dir=${profileDir}`) && !m[2].includes('--type=')) return Number(m[1]);
  }
  throw new Error(`no Chromium process for ${profileDir}:\n${ps.stdout}`);
}

test('a verdict on screen is on disk: Chromium killed (SIGKILL) right after ADMIT still knows the ticket', async () => {
  const created = await adminFetch(issuer, '/admin/v1/devices', {
    method: 'POST',
    json: { name: 'Kill test phone', event: EVENT },
  });
  const device = await created.json();
  const profile = join(work, 'profile-kill');
  let context = await launchScanner(profile, tickets.katherine.y4m);
  let page = context.pages()[0] ?? (await context.newPage());
  let errors = collectPageErrors(page);
  await page.goto(device.setup_url);
  await waitForVerdict(page, 'admit', errors, 'scanner-kill-admit');
  process.kill(await browserPid(profile), 'SIGKILL');
  await context.close().catch(() => {});
  // The scan had no time to be synced: only the phone's own storage can know it.
  const admittedHere = (r) => r.devices.find((d) => d.name === 'Kill test phone')?.admitted ?? 0;
  assert.equal(admittedHere(await report()), 0);

  context = await launchScanner(profile, tickets.katherine.y4m);
  try {
    await context.setOffline(true);
    page = context.pages()[0] ?? (await context.newPage());
    errors = collectPageErrors(page);
    await page.goto(new URL('/scanner/', issuer.url).href);
    await waitForVerdict(page, 'already_used', errors, 'scanner-kill-restart');
    assert.match((await verdict(page)).detail, /\(this scanner\)$/);
    await screenshot(page, 'scanner-08-after-kill');
    await context.setOffline(false);
    await page.click('#sync-now');
    const r = await waitForReport((x) => admittedHere(x) === 1, 'the admission made before the kill');
    assert.equal(r.conflicts.length, 0);

    // A supervisor admits the ticket anyway, for a reason: shown as an override and reported as one,
    // with the supervisor's name.
    assert.equal(await page.isVisible('#override-form'), false, 'a steward cannot override');
    await unlockSupervisor(page, issuer, 'Desk Supervisor');
    await page.fill('#manual-code', tickets.katherine.qrText);
    await page.click('#manual-form button[type="submit"]');
    await page.waitForFunction(() => document.getElementById('verdict').dataset.verdict === 'already_used', null, WAIT);
    assert.equal(await page.isVisible('#override-form'), true, 'a supervisor can override an already-used ticket');
    await page.fill('#override-reason', 'wristband torn, checked at the desk');
    await page.click('#override-form button[type=submit]');
    await page.waitForSelector('#verdict[data-verdict="admit"]', WAIT);
    assert.equal((await verdict(page)).headline, 'ADMIT (override)');
    assert.equal(await page.isVisible('#override-form'), false);
    await screenshot(page, 'scanner-09-override');
    await page.click('#sync-now');
    const o = await waitForReport(
      (x) => x.overrides.some((s) => s.override_reason === 'wristband torn, checked at the desk (supervisor Desk Supervisor)'),
      'the override in the organizer report',
    );
    assert.equal(o.overrides.length, 1);
  } finally {
    await context.close();
  }
});

// Guards the 32-bit build of the binariser (rxing's bit words are `usize`, 32 bits on wasm32): when it
// lost half of each 64-pixel word, the browser fell through to slower passes and read far fewer frames.
test(
  'the browser decoder reads a clean camera frame with its first, cheapest pass, as the native build does',
  async () => {
    const y4m = readFileSync(tickets.ada.y4m);
    const start = y4m.indexOf('FRAME\n') + 'FRAME\n'.length;
    const luma = y4m.subarray(start, start + 640 * 480).toString('base64');
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage();
      await page.goto(`${issuer.url}/healthz`);
      const read = await page.evaluate(async (b64) => {
        const wasm = await import('/scanner/pkg/scanner_wasm.js');
        await wasm.default({ module_or_path: '/scanner/pkg/scanner_wasm_bg.wasm' });
        const frame = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        return { text: wasm.decodeLuma(640, 480, frame), pass: wasm.decodeLumaPass(640, 480, frame) };
      }, luma);
      assert.equal(read.text, tickets.ada.qrText);
      assert.equal(read.pass, 'Raw');
    } finally {
      await browser.close();
    }
  },
);
