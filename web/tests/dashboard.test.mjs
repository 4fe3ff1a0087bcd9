// The organizer dashboard in real Chromium against a real issuer. Two scanner devices (the real `scanner`
// CLI, each with its own durable log) admit tickets offline, one ticket at both gates, and sync through the
// issuer; the dashboard then shows the counts per gate, the refusal and the duplicate with both devices.
// A refund from the dashboard revokes the order's tickets (the revocation list version goes up), and
// "add a scanner device" gives a setup link in the documented format whose QR decodes to that link.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  startIssuer,
  launchBrowser,
  screenshot,
  binPath,
  run,
  adminFetch,
  collectPageErrors,
  accessibilityViolations,
} from './harness.mjs';

let issuer;
let browser;
let scratch;

before(async () => {
  issuer = await startIssuer();
  browser = await launchBrowser();
  scratch = mkdtempSync(join(tmpdir(), 'tickets-dashboard-test-'));
});

after(async () => {
  await browser?.close();
  await issuer?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

async function json(res, status) {
  const body = await res.json();
  assert.equal(res.status, status, JSON.stringify(body));
  return body;
}

/** A free order of `quantity` general admission tickets; returns {order_id, texts}. */
async function buy(name, quantity) {
  const created = await json(
    await fetch(`${issuer.url}/v1/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ event_id: 1, name, email: 'buyer@example.org', items: [{ ticket_type: 0, quantity }] }),
    }),
    201,
  );
  const order = await json(await fetch(`${issuer.url}/v1/orders/${created.order_id}?token=${created.token}`), 200);
  return { order_id: created.order_id, texts: order.tickets.map((t) => t.qr_text) };
}

/** A scanner device set up with the real CLI against the issuer. */
async function device(name) {
  const { token } = await json(
    await adminFetch(issuer, '/admin/v1/devices', { method: 'POST', json: { name, event: 1 } }),
    201,
  );
  const data = join(scratch, name.replace(/\W/g, '_'));
  const scanner = (...args) => run(binPath('scanner'), ['--data', data, ...args]);
  const init = await scanner('init', '--server', issuer.url, '--token', token, '--event', '1', '--name', name);
  assert.equal(init.code, 0, init.stderr);
  return scanner;
}

test('the dashboard shows synced admissions, the duplicate, refunds and device setup', async () => {
  const { texts } = await buy('Door Customer', 2);
  // A hostile customer name: the dashboard must show it as text, never run it.
  const hostile = '<img src=x onerror="window.pwned=1">Refund Me';
  const refundable = await buy(hostile, 1);
  const late = await buy('Late Arrival', 1);

  const north = await device('North scanner');
  const south = await device('South scanner');
  // Offline on both devices: ticket 0 enters at North and again at South (the duplicate nobody at the door
  // can see), ticket 1 enters at South, and a code that is no ticket is refused at North.
  for (const [scanner, text, gate, expected] of [
    [north, texts[0], 'North', 0],
    [south, texts[0], 'South', 0],
    [south, texts[1], 'South', 0],
    [north, 'TK1:NOT-A-REAL-TICKET', 'North', 1],
  ]) {
    const r = await scanner('scan', '--gate', gate, text);
    assert.equal(r.code, expected, `${gate}: ${r.stdout}${r.stderr}`);
  }
  for (const scanner of [north, south, north]) {
    const r = await scanner('sync');
    assert.equal(r.code, 0, r.stderr);
  }

  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  await page.goto(`${issuer.url}/dashboard/`);
  await screenshot(page, 'dashboard-1-sign-in');
  assert.deepEqual(await accessibilityViolations(page), [], 'sign-in (WCAG 2.1 AA, axe-core)');

  // A wrong token is refused with a message; the right one opens the dashboard.
  await page.getByLabel('Admin token').fill('wrong-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#login-error').waitFor({ state: 'visible' });
  assert.match(await page.locator('#login-error').textContent(), /not accepted/);
  await page.getByLabel('Admin token').fill(issuer.adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#app').waitFor({ state: 'visible' });
  await page.waitForFunction(() => document.getElementById('admitted').textContent === '3');

  assert.equal(await page.locator('#event-title').textContent(), 'Demo Festival');
  assert.equal(await page.locator('#capacity').textContent(), '550');
  assert.equal(await page.locator('#sold').textContent(), '4');
  assert.equal(await page.locator('#conflict-count').textContent(), '1');
  const gates = await page.locator('#gates tbody tr').allTextContents();
  assert.deepEqual(gates, ['North1', 'South2']);
  const refusals = await page.locator('#refusals tbody tr').allTextContents();
  assert.equal(refusals.length, 1);
  assert.match(refusals[0], /^[a-z_]+1$/);
  const conflict = await page.locator('#conflicts tbody').textContent();
  assert.match(conflict, /North scanner/);
  assert.match(conflict, /South scanner/);
  assert.equal(await page.locator('#conflicts tbody tr').count(), 2, 'both scans of the duplicate');
  assert.equal(await page.locator('#chart svg rect').count(), 1);
  assert.equal(await page.locator('#chart svg text.value').textContent(), '3');
  assert.ok((await page.locator('#orders tbody').textContent()).includes(hostile));
  assert.equal(await page.locator('#orders img').count(), 0);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  await screenshot(page, 'dashboard-2-live');
  assert.deepEqual(await accessibilityViolations(page), [], 'dashboard (WCAG 2.1 AA, axe-core)');

  // Live: a later admission synced by a scanner shows up without reloading the page (the dashboard polls).
  const lateScan = await north('scan', '--gate', 'North', late.texts[0]);
  assert.equal(lateScan.code, 0, lateScan.stdout + lateScan.stderr);
  assert.equal((await north('sync')).code, 0);
  await page.waitForFunction(() => document.getElementById('admitted').textContent === '4');
  assert.deepEqual(await page.locator('#gates tbody tr').allTextContents(), ['North2', 'South2']);

  // The token survives a reload of the tab (sessionStorage), so no second sign-in.
  await page.reload();
  await page.waitForFunction(() => document.getElementById('admitted').textContent === '4');

  // Refund: two clicks, then the order is refunded and the revocation list has a new version.
  const before = await json(await adminFetch(issuer, '/admin/v1/revocations'), 200);
  const refundButton = page.locator(`button[data-order="${refundable.order_id}"]`);
  await refundButton.click();
  await page.waitForFunction(
    (id) => document.querySelector(`button[data-order="${id}"]`)?.textContent.startsWith('Confirm'),
    refundable.order_id,
  );
  await screenshot(page, 'dashboard-3-confirm-refund');
  await page.locator(`button[data-order="${refundable.order_id}"]`).click();
  await page.locator('#message').waitFor({ state: 'visible' });
  assert.match(await page.locator('#message').textContent(), new RegExp(`${refundable.order_id} is refunded`));
  const after = await json(await adminFetch(issuer, '/admin/v1/revocations'), 200);
  assert.ok(after.version > before.version, `revocation version ${before.version} → ${after.version}`);
  const order = await json(await adminFetch(issuer, `/admin/v1/orders/${refundable.order_id}`), 200);
  assert.equal(order.status, 'refunded');
  await page.waitForFunction(
    (id) => [...document.querySelectorAll('#orders tbody tr')].some((tr) => tr.textContent.includes(id) && tr.textContent.includes('refunded')),
    refundable.order_id,
  );
  await screenshot(page, 'dashboard-4-refunded');

  // Add a scanner device: the setup link has the documented format, and its QR decodes to the link.
  await page.getByLabel('Device name (shown in reports)').fill('West gate phone');
  await page.getByRole('button', { name: 'Create setup link' }).click();
  await page.locator('#device-setup').waitFor({ state: 'visible' });
  const link = await page.locator('#setup-url').inputValue();
  const prefix = `${issuer.url}/scanner/#setup=`;
  assert.ok(link.startsWith(prefix), link);
  const setup = JSON.parse(Buffer.from(link.slice(prefix.length), 'base64url').toString('utf8'));
  assert.deepEqual(Object.keys(setup), ['v', 'server', 'token', 'event', 'edge', 'device_name', 'keyring_sha256']);
  assert.equal(setup.v, 2);
  assert.match(setup.keyring_sha256, /^[0-9a-f]{64}$/);
  assert.equal(setup.server, issuer.url);
  assert.equal(setup.event, 1);
  assert.equal(setup.edge, null);
  assert.equal(setup.device_name, 'West gate phone');
  // The token in the link is a working device token.
  const manifest = await fetch(`${issuer.url}/v1/scanner/revocations`, { headers: { authorization: `Bearer ${setup.token}` } });
  assert.equal(manifest.status, 200);
  const qrFile = join(scratch, 'setup-qr.png');
  await page.locator('#setup-qr').screenshot({ path: qrFile });
  const decoded = await run(binPath('scanner'), ['decode', '--json', qrFile]);
  assert.equal(JSON.parse(decoded.stdout.trim()).text, link);
  await screenshot(page, 'dashboard-5-device-setup');

  // Signing out forgets the token.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('#login').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('tickets.adminToken')), null);
  assert.deepEqual(
    errors.filter((e) => !e.includes('401')),
    [],
  );
  await context.close();
});
