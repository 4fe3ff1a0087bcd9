// Pay at the door, end to end in the system Chromium against a real issuer: the organizer creates a ticket
// type that may be paid at the door (admin API, `at_door_allowed: true`), a customer orders it with an
// add-on and `payment: "at_door"`, the PWA scanner shows UNPAID with the amount to collect (from the
// encrypted manifest) and a "Paid — admit" button, the steward confirms, the same ticket is then already
// used, and after a sync the organizer's report and dashboard show the money collected at the door.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import {
  adminFetch,
  artifactsDir,
  chromiumFlags,
  chromiumPath,
  collectPageErrors,
  fakeCameraFlags,
  screenshot,
  startIssuer,
  issuerReport,
  waitForIssuerReport,
} from './harness.mjs';

const EVENT = 1; // the demo event `issuer serve --demo` seeds
const GATE = 'Main entrance'; // the scanner's default gate name
const PARKING = 1; // demo add-on 1: "Parking", 10.00 EUR
const WAIT = { timeout: 30_000 };

let issuer;
let work;

before(async () => {
  issuer = await startIssuer();
  work = mkdtempSync(join(tmpdir(), 'tickets-door-'));
  mkdirSync(artifactsDir, { recursive: true });
});

after(async () => {
  await issuer?.stop();
  if (work && !process.env.TICKETS_KEEP_DATA) rmSync(work, { recursive: true, force: true });
});

/** A camera that sees no code: one white 640×480 frame (the ticket is typed in, as a steward can). */
function blankCamera() {
  const file = join(work, 'blank.y4m');
  const luma = Buffer.alloc(640 * 480, 235);
  const chroma = Buffer.alloc(320 * 240 * 2, 128);
  writeFileSync(file, Buffer.concat([Buffer.from('YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C420jpeg\nFRAME\n'), luma, chroma]));
  return file;
}

const report = () => issuerReport(issuer, EVENT);
const waitForReport = (predicate, what) => waitForIssuerReport(issuer, EVENT, predicate, what);

async function shown(page) {
  return page.evaluate(() => ({
    verdict: document.getElementById('verdict').dataset.verdict,
    headline: document.getElementById('verdict-headline').textContent,
    amount: document.getElementById('verdict-amount').textContent,
    who: document.getElementById('verdict-who').textContent,
    detail: document.getElementById('verdict-detail').textContent,
  }));
}

async function waitForVerdict(page, kind, errors, shot) {
  try {
    await page.waitForSelector(`#verdict[data-verdict="${kind}"]`, WAIT);
  } catch (e) {
    await screenshot(page, `${shot}-FAILED`).catch(() => {});
    const v = await shown(page).catch(() => ({}));
    const notice = await page.textContent('#notice').catch(() => '?');
    throw new Error(`no ${kind} verdict: ${e.message}\nshown: ${JSON.stringify(v)}\nnotice: ${notice}\n${errors.join('\n')}`);
  }
}

async function typeCode(page, text) {
  await page.fill('#manual-code', text);
  await page.click('#manual-form button[type="submit"]');
}

test('an at-door ticket is UNPAID with its amount, "Paid — admit" records it, the report shows the cash', async () => {
  // The organizer offers a ticket type that may be paid at the door.
  const created = await adminFetch(issuer, `/admin/v1/events/${EVENT}/ticket-types`, {
    method: 'POST',
    json: { name: 'Door VIP', price_cents: 4_900, currency: 'EUR', capacity: 10, at_door_allowed: true },
  });
  assert.equal(created.status, 201, await created.clone().text());
  const type = await created.json();

  // A customer orders it with parking, to pay at the door: confirmed at once, ticket issued.
  const ordered = await fetch(`${issuer.url}/v1/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      event_id: EVENT,
      name: 'Hedy Lamarr',
      email: 'hedy@example.org',
      items: [{ ticket_type: type.index, quantity: 1, addons: [PARKING] }],
      payment: 'at_door',
    }),
  });
  assert.equal(ordered.status, 201, await ordered.clone().text());
  const order = await ordered.json();
  assert.equal(order.status, 'confirmed');
  assert.equal(order.total_cents, 5_900);
  const view = await (await fetch(`${issuer.url}/v1/orders/${order.order_id}?token=${order.token}`)).json();
  const qrText = view.tickets[0].qr_text;

  const device = await (
    await adminFetch(issuer, '/admin/v1/devices', { method: 'POST', json: { name: 'Box office phone', event: EVENT } })
  ).json();
  const context = await chromium.launchPersistentContext(join(work, 'profile'), {
    executablePath: chromiumPath,
    headless: true,
    args: [...chromiumFlags, ...fakeCameraFlags(blankCamera())],
    viewport: { width: 420, height: 900 },
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const errors = collectPageErrors(page);
    await page.goto(device.setup_url);
    await page.waitForFunction(() => /^Online · /.test(document.getElementById('status-line').textContent), WAIT);

    // 1. Scanned: UNPAID, the amount (ticket + parking) in large type, the holder, and the button.
    await typeCode(page, qrText);
    await waitForVerdict(page, 'payment_due', errors, 'door-unpaid');
    let v = await shown(page);
    assert.equal(v.headline, 'UNPAID');
    assert.equal(v.amount, 'Collect 59.00 EUR');
    assert.equal(v.who, 'Hedy Lamarr');
    assert.equal(v.detail, 'Door VIP + Parking');
    assert.equal(await page.isVisible('#paid-admit'), true);
    assert.equal(await page.isVisible('#override-form'), false);
    const fontPx = await page.evaluate(() => parseFloat(getComputedStyle(document.getElementById('verdict-amount')).fontSize));
    assert.ok(fontPx >= 32, `the amount is large (${fontPx}px)`);
    await screenshot(page, 'door-01-unpaid');

    // 2. The steward takes the money and confirms: admitted, paid.
    await page.getByRole('button', { name: 'Paid — admit' }).click();
    await waitForVerdict(page, 'admit', errors, 'door-paid');
    v = await shown(page);
    assert.equal(v.headline, 'ADMIT — PAID');
    assert.equal(v.who, 'Hedy Lamarr');
    assert.equal(v.detail, 'Door VIP + Parking — paid 59.00 EUR at the door');
    assert.equal(await page.isVisible('#paid-admit'), false);
    await screenshot(page, 'door-02-paid-admit');

    // 3. The same ticket again: already used, nothing more to collect.
    await typeCode(page, qrText);
    await waitForVerdict(page, 'already_used', errors, 'door-again');
    assert.equal(await page.isVisible('#paid-admit'), false);

    // 4. Synced: the organizer's report has the money, per gate and in total.
    await page.click('#sync-now');
    const r = await waitForReport((x) => x.paid_at_door === 1, 'the payment at the door');
    const eur = { minor: 5_900, currency: 'EUR', text: '59.00 EUR' };
    assert.deepEqual(r.collected, [eur]);
    assert.deepEqual(r.collected_by_gate, { [GATE]: [eur] });
    assert.equal(r.payment_requests, 1);
    assert.equal(r.admitted, 1);
    assert.equal(r.already_used, 1);
    assert.equal(r.conflicts.length, 0);

    // 5. …and so does the dashboard.
    const dashboard = await context.newPage();
    await dashboard.goto(`${issuer.url}/dashboard/`);
    await dashboard.getByLabel('Admin token').fill(issuer.adminToken);
    await dashboard.getByRole('button', { name: 'Sign in' }).click();
    await dashboard.waitForFunction(() => /59\.00 EUR/.test(document.getElementById('collected').textContent), WAIT);
    const rows = await dashboard.$$eval('#collected tbody tr', (trs) =>
      trs.map((tr) => [...tr.cells].map((td) => td.textContent)),
    );
    assert.deepEqual(rows, [
      [GATE, '59.00 EUR'],
      ['All gates', '59.00 EUR'],
    ]);
    assert.match(
      await dashboard.textContent('#collected-summary'),
      /^Tickets paid at the door: 1\. Payment requests scanned: 1\.$/,
    );
    await dashboard.locator('#collected').scrollIntoViewIfNeeded();
    await screenshot(dashboard, 'door-03-dashboard');
    await dashboard.close();
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
