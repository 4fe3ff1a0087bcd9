// The PWA with a venue hub (issue #18), in the system Chromium against the real issuer and the real
// `scanner hub`:
//
// 1. The issuer makes the tickets, a device for the hub and two phone devices whose setup links name the
//    hub (the dashboard's "Venue hub URL", here through the same admin API), and a CLI device set up from
//    its link (`scanner init --setup`, which takes the hub from the link).
// 2. `scanner hub` (set up with `scanner hub init` and a relay token) listens on loopback and serves the
//    PWA; then the issuer is stopped: from here on there is no internet.
// 3. Two phones (two browser contexts: separate storage) are set up from the hub alone and scan: a ticket
//    admitted at phone A is "already used" at phone B, live, and phone B says the venue hub checked it. A
//    third phone, set up from the issuer's own link before the internet went (the PWA from the issuer's
//    origin), asks the hub across origins (the hub's CORS answer) and admits a second ticket, which phone B
//    is then refused.
// 4. The hub is killed; phone A admits a ticket on its own ("Checked on this phone") and says the hub is
//    unreachable. The hub is restarted; phone A's scan reaches it within a few sync rounds (polled through
//    the CLI device's `scanner sync --hub`; no timing is asserted), and phone B is refused it, live.
// 5. The issuer is restarted (same data, same address), `scanner hub push` relays everything the hub holds,
//    and the issuer's report counts what this test did, each scan once.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  adminFetch,
  binPath,
  buyTicket,
  collectPageErrors,
  freePort,
  issuerReport,
  launchBrowser,
  repoRoot,
  run,
  screenshot,
  startIssuer,
} from './harness.mjs';

const EVENT = 1; // the demo event `issuer serve --demo` seeds
const WAIT = { timeout: 30_000 };

let issuer;
let issuerAddress;
let issuerDataDir;
let work;
let hubProcess;
let browser;
const errors = [];


async function scannerCli(data, args, ok = [0]) {
  const r = await run(binPath('scanner'), ['--data', data, ...args]);
  assert.ok(ok.includes(r.code), `scanner ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** `scanner hub` on `listen`, once it says where it listens. */
async function startHub(data, listen) {
  const child = spawn(
    binPath('scanner'),
    ['--data', data, 'hub', '--event', String(EVENT), '--listen', listen, '--web', join(repoRoot, 'web', 'scanner'), '--upstream-every', '0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stderr.on('data', (d) => (output += d));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the hub did not start in 30 s:\n${output}`)), 30_000);
    child.stdout.on('data', (d) => {
      output += d;
      const m = /listening on (http:\/\/\S+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the hub exited (${code ?? signal}) before listening:\n${output}`));
    });
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return {
    url,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        // SIGKILL: no shutdown code runs; whatever the hub answered for is on its disk.
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

async function createDevice(name, hub) {
  const json = { name, event: EVENT };
  if (hub) json.hub = hub;
  const res = await adminFetch(issuer, '/admin/v1/devices', { method: 'POST', json });
  assert.equal(res.status, 201, await res.clone().text());
  return res.json();
}

/** The link's payload, decoded by hand (not by the code under test). */
function linkPayload(setupUrl) {
  return JSON.parse(Buffer.from(setupUrl.split('#setup=')[1], 'base64url').toString('utf8'));
}

/** A phone: its own browser context (own IndexedDB, service worker and cache), set up from `link`. */
async function phone(name, link, gate) {
  const context = await browser.newContext({ viewport: { width: 420, height: 900 } });
  const page = await context.newPage();
  const pageErrors = collectPageErrors(page);
  errors.push({ name, pageErrors });
  await page.goto(link);
  try {
    await page.waitForFunction(() => /0 scans in log/.test(document.getElementById('status-line').textContent), null, WAIT);
  } catch (e) {
    await screenshot(page, `hub-${name}-setup-FAILED`).catch(() => {});
    throw new Error(`${name} was not set up: ${e.message}\nstatus: ${await page.textContent('#status-line')}\nnotice: ${await page.textContent('#notice')}`);
  }
  await page.fill('#gate', gate);
  await page.dispatchEvent('#gate', 'change');
  await page.waitForFunction((g) => document.getElementById('gate').value === g, gate, WAIT);
  return { name, page, context };
}

async function shown(p) {
  return p.page.evaluate(() => {
    const v = document.getElementById('verdict');
    return {
      verdict: v.dataset.verdict,
      checkedBy: v.dataset.checkedBy,
      count: Number(v.dataset.count ?? 0),
      headline: document.getElementById('verdict-headline').textContent,
      detail: document.getElementById('verdict-detail').textContent,
      path: document.getElementById('verdict-path').textContent,
    };
  });
}

/** Types `code` into `p`'s manual box and returns the verdict the steward sees. */
async function check(p, code) {
  await p.page.keyboard.press('Escape'); // the verdict screen of the last scan covers the form
  const before = (await shown(p)).count;
  await p.page.fill('#manual-code', code);
  await p.page.click('#manual-form button[type="submit"]');
  try {
    await p.page.waitForFunction((n) => Number(document.getElementById('verdict').dataset.count ?? 0) > n, before, WAIT);
  } catch (e) {
    await screenshot(p.page, `hub-${p.name}-verdict-FAILED`).catch(() => {});
    throw new Error(`${p.name}: no verdict: ${e.message}\n${JSON.stringify(await shown(p))}`);
  }
  return shown(p);
}

let tickets;
let phoneLinks;
let phoneC;
let entitlement;
let hubData;
let hubListen;
let checker;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'tickets-hub-web-'));
  issuer = await startIssuer({ keepData: true });
  issuerAddress = issuer.url.replace('http://', '');
  issuerDataDir = issuer.dataDir;
  tickets = [];
  for (const name of ['Ada Lovelace', 'Barbara Liskov', 'Grace Hopper']) tickets.push(await buyTicket(issuer, name));

  const port = await freePort();
  hubListen = `127.0.0.1:${port}`;
  const hubUrl = `http://${hubListen}`;
  // Every device exists before the hub is set up: the hub accepts the device list it fetched then.
  const hubDevice = await createDevice('Venue hub');
  const phoneA = await createDevice('Phone A', hubUrl);
  const phoneB = await createDevice('Phone B', hubUrl);
  const phoneCDevice = await createDevice('Phone C', hubUrl);
  const checkerDevice = await createDevice('Checker', hubUrl);
  for (const d of [phoneA, phoneB, checkerDevice]) assert.equal(linkPayload(d.setup_url).hub, hubUrl);
  assert.equal(linkPayload(hubDevice.setup_url).hub, undefined, 'a link without a hub does not mention one');
  // The phones open the PWA from the hub (the issuer will be gone): the same link payload, the hub's page.
  phoneLinks = [phoneA, phoneB].map((d) => `${hubUrl}/#setup=${d.setup_url.split('#setup=')[1]}`);

  const edge = await adminFetch(issuer, '/admin/v1/edge-tokens', { method: 'POST', json: { name: 'Venue hub devices' } });
  assert.equal(edge.status, 201);
  const relay = await adminFetch(issuer, `/admin/v1/events/${EVENT}/hub-tokens`, { method: 'POST', json: { name: 'Venue hub' } });
  assert.equal(relay.status, 201);
  hubData = join(work, 'hub');
  await scannerCli(hubData, [
    'hub', 'init', '--setup', hubDevice.setup_url, '--edge-token', (await edge.json()).token,
    '--relay-token', (await relay.json()).token, '--name', 'Venue hub',
  ]);
  // The CLI device takes the hub from its link (no --hub): `sync --hub` below fails without it.
  checker = join(work, 'checker');
  await scannerCli(checker, ['init', '--setup', checkerDevice.setup_url]);

  hubProcess = await startHub(hubData, hubListen);
  assert.equal(hubProcess.url, hubUrl);

  // The hub's CORS answer (scanner-core's rule): the issuer's origin may call it, no other.
  const preflight = (origin) =>
    fetch(`${hubUrl}/v1/redeem`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
  const allowed = await preflight(issuer.url);
  assert.equal(allowed.headers.get('access-control-allow-origin'), issuer.url);
  assert.match(allowed.headers.get('access-control-allow-headers') ?? '', /Authorization/);
  assert.equal((await preflight('https://evil.example')).headers.get('access-control-allow-origin'), null);

  browser = await launchBrowser();
  // Phone C opens the issuer's own link while the internet is there (set up from the hub across origins).
  phoneC = await phone('phone-C', phoneCDevice.setup_url, 'West');
  // What the issuer says the tickets entitle to (ticket type 0 with add-on 0, as bought above).
  const described = await (await fetch(`${issuer.url}/v1/events/${EVENT}`)).json();
  entitlement = `${described.ticket_types.find((t) => t.index === 0).name} + ${described.addons.find((a) => a.index === 0).name}`;
  // No internet from here on.
  await issuer.stop();
});

after(async () => {
  await browser?.close();
  await hubProcess?.kill();
  await issuer?.stop();
  if (issuerDataDir) rmSync(issuerDataDir, { recursive: true, force: true });
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Polls the CLI device's view of the hub (`sync --hub`, then its report) until `ticketAdmittedAt` shows. */
async function waitUntilHubHolds(gate, admitted) {
  let last = null;
  for (let round = 0; round < 60; round++) {
    const synced = await run(binPath('scanner'), ['--data', checker, 'sync', '--hub']);
    if (synced.code === 0) {
      last = JSON.parse(await scannerCli(checker, ['report', '--json']));
      if ((last.admitted_by_gate?.[gate] ?? 0) >= admitted) return last;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`the hub never held ${admitted} admissions at ${gate}: ${JSON.stringify(last)}`);
}

test('two phones set up from the hub refuse a duplicate live, a scan decided offline reaches the restarted hub, and the issuer reports it all once', async () => {
  const a = await phone('phone-A', phoneLinks[0], 'North');
  const b = await phone('phone-B', phoneLinks[1], 'South');
  // Set up with no internet: the status line says the hub is in touch.
  await a.page.waitForFunction(() => /venue hub synced \d+ s ago/.test(document.getElementById('status-line').textContent), null, WAIT);

  // Phone B's sync rounds with the hub are held (not refused: a refused round would mark the hub down) from
  // before phone A's admission until phone B has checked the same ticket, so phone B cannot have that
  // admission in its own log yet: only the hub's live answer can refuse it.
  let releaseB;
  const bHeld = new Promise((resolve) => {
    releaseB = resolve;
  });
  await b.context.route('**/v1/sync**', async (route) => {
    await bHeld;
    await route.continue().catch(() => {}); // the page may have given up on it meanwhile
  });

  // Phone A admits Ada's ticket: the hub decided it.
  let v = await check(a, tickets[0].qrText);
  assert.equal(v.headline, 'ADMIT', JSON.stringify(v));
  assert.equal(v.path, 'Checked by the venue hub', JSON.stringify(v));
  // Set up from the hub alone, the phone still names what the ticket entitles to (the hub's copy of the
  // event's description), not "Ticket type 0".
  assert.equal(v.detail, entitlement, JSON.stringify(v));
  // Phone B is refused the same ticket at once, by the hub: no sync round was needed.
  v = await check(b, tickets[0].qrText);
  assert.equal(v.headline, 'ALREADY USED', JSON.stringify(v));
  assert.match(v.detail, /^Already used at North, /, JSON.stringify(v));
  assert.equal(v.checkedBy, 'hub');
  assert.equal(v.path, 'Checked by the venue hub', JSON.stringify(v));
  releaseB();
  await b.context.unroute('**/v1/sync**');
  // Phone C, whose PWA comes from the issuer's origin, asks the hub across origins: it admits Barbara's
  // ticket, which no device has seen yet, so only the hub can have decided it. (Ada's ticket would not do:
  // phone C's own sync round with the hub may already have brought phone A's admission, and then the phone
  // refuses it from its own log without asking.)
  v = await check(phoneC, tickets[1].qrText);
  assert.equal(v.headline, 'ADMIT', JSON.stringify(v));
  assert.equal(v.checkedBy, 'hub');
  assert.equal(v.path, 'Checked by the venue hub', JSON.stringify(v));
  await screenshot(phoneC.page, 'hub-phone-C-admit');
  // Phone B is refused Barbara's ticket: by the hub, or from its own log when its last sync round with the
  // hub already brought phone C's admission. Either way it names phone C's gate.
  v = await check(b, tickets[1].qrText);
  assert.equal(v.headline, 'ALREADY USED', JSON.stringify(v));
  assert.match(v.detail, /^Already used at West, /, JSON.stringify(v));
  assert.match(
    v.path,
    /^(Checked by the venue hub|Checked on this phone \(venue hub unavailable: not asked: this device's log already shows the ticket used\))$/,
    JSON.stringify(v),
  );

  // The hub dies. Phone A decides Grace's ticket on its own and says why.
  await hubProcess.kill();
  v = await check(a, tickets[2].qrText);
  assert.equal(v.headline, 'ADMIT', JSON.stringify(v));
  assert.equal(v.checkedBy, 'phone');
  assert.match(v.path, /^Checked on this phone \(venue hub unavailable: /, JSON.stringify(v));
  await a.page.waitForFunction(() => /venue hub unreachable: /.test(document.getElementById('status-line').textContent), null, WAIT);
  await screenshot(a.page, 'hub-phone-A-hub-down');

  // The hub comes back on the same address; phone A's own admission reaches it within a few sync rounds.
  hubProcess = await startHub(hubData, hubListen);
  const held = await waitUntilHubHolds('North', 2);
  assert.equal(held.admitted_by_gate.North, 2, JSON.stringify(held));
  // Phone B is refused Grace's ticket: the hub knows phone A's offline admission, and phone B may already
  // have it too from its own last sync round with the hub (then scanner-core's plan decides on the phone
  // without asking). Either way it came through the hub: phone B never talked to phone A.
  v = await check(b, tickets[2].qrText);
  assert.equal(v.headline, 'ALREADY USED', JSON.stringify(v));
  assert.match(v.detail, /^Already used at North, .*\(Phone A\)$/, JSON.stringify(v));
  assert.match(
    v.path,
    /^(Checked by the venue hub|Checked on this phone \(venue hub unavailable: not asked: this device's log already shows the ticket used\))$/,
    JSON.stringify(v),
  );
  await a.page.waitForFunction(() => /venue hub synced \d+ s ago/.test(document.getElementById('status-line').textContent), null, WAIT);
  // Phones B's and C's mirrors of their verdicts reach the hub before the relay (their next sync rounds).
  for (const p of [b, phoneC]) {
    const syncedAt = Number(await p.page.evaluate(() => document.getElementById('status-line').dataset.hubSynced));
    await p.page.waitForFunction((t) => Number(document.getElementById('status-line').dataset.hubSynced) > t, syncedAt, WAIT);
  }

  // The internet is back: the issuer again, on the same address and data; the hub relays what it holds.
  issuer = await startIssuer({ dataDir: issuerDataDir, bind: issuerAddress, demo: false });
  await scannerCli(hubData, ['hub', 'push']);
  // What this test did: three admissions (North: Ada by the hub, Grace on phone A; West: Barbara by the
  // hub), three "already used" (all on phone B: Ada, Barbara and Grace), no duplicate. The
  // hub's two admissions are in the log twice (its own record and the phone's mirror), one scan each.
  const hubDecided = 2;
  const report = await issuerReport(issuer, EVENT);
  assert.equal(report.admitted, 3, JSON.stringify(report));
  assert.deepEqual(report.admitted_by_gate, { North: 2, West: 1 }, JSON.stringify(report));
  assert.equal(report.already_used, 3, JSON.stringify(report));
  assert.deepEqual(report.conflicts, [], JSON.stringify(report));
  assert.equal(report.decided_by_edge, hubDecided, JSON.stringify(report));
  assert.equal(report.edge_copies, hubDecided, JSON.stringify(report));
  assert.equal(report.scans, 2 /* phone A */ + 3 /* phone B */ + 1 /* phone C */ + hubDecided, JSON.stringify(report));

  for (const { name, pageErrors } of errors) {
    // Chromium logs each refused connection (the stopped issuer, the killed hub) as a console error, and
    // the issuer, which does not allow the hub's origin, as a CORS refusal: nothing else may fail.
    const unexpected = pageErrors.filter((e) => !/Failed to load resource|ERR_CONNECTION_REFUSED|CORS policy/.test(e));
    assert.deepEqual(unexpected, [], `${name}: ${unexpected.join('\n')}`);
  }
});
