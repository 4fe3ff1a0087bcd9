// The order page in real Chromium against a real issuer: buying with JavaScript disabled and enabled, the
// error path, and the ticket QR read off the confirmation page (an element screenshot, as a phone camera
// would see the screen) decoded by the real `scanner decode --json` and verified by `scanner verify`.

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
  collectPageErrors,
  adminFetch,
  accessibilityViolations,
} from './harness.mjs';

let issuer;
let browser;
let scratch;
const phone = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

before(async () => {
  issuer = await startIssuer();
  browser = await launchBrowser();
  scratch = mkdtempSync(join(tmpdir(), 'tickets-order-test-'));
});

after(async () => {
  await browser?.close();
  await issuer?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Screenshots the first ticket's QR on the page, decodes it with the scanner CLI and verifies it. */
async function scanFirstTicket(page, label) {
  const file = join(scratch, `${label}.png`);
  await page.locator('.ticket .qr').first().screenshot({ path: file });
  const decoded = await run(binPath('scanner'), ['decode', '--json', file]);
  assert.equal(decoded.code, 0, decoded.stderr);
  const line = JSON.parse(decoded.stdout.trim().split('\n')[0]);
  assert.ok(line.text?.startsWith('TK1:'), `QR decodes to a ticket: ${decoded.stdout}`);
  const verified = await run(binPath('scanner'), [
    'verify',
    '--keyring',
    join(issuer.dataDir, 'keyring.json'),
    '--event',
    '1',
    line.text,
  ]);
  assert.equal(verified.code, 0, `scanner verify accepts it: ${verified.stdout}${verified.stderr}`);
  return line.text;
}

test('buying free tickets with JavaScript disabled', async () => {
  const context = await browser.newContext({ ...phone, javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(`${issuer.url}/`);
  await screenshot(page, 'order-1-event-list');
  await page.getByRole('link', { name: 'Demo Festival' }).click();
  await page.waitForURL(/\/events\/1$/);
  assert.equal(await page.locator('[data-ticket-type="0"]').textContent(), '500 left');
  await screenshot(page, 'order-2-event-page-nojs');

  // A server-side rejection (this address passes the browser's own email check): the form comes back.
  await page.getByLabel('Number of General admission tickets').fill('2');
  await page.getByLabel('Name on the tickets').fill('Ada Lovelace');
  await page.getByLabel(/^Email/).fill('ada@localhost');
  await page.getByRole('button', { name: 'Order tickets' }).click();
  await page.waitForLoadState();
  const summary = page.locator('#error-summary');
  assert.match(await summary.textContent(), /Email is not a valid email address/);
  assert.equal(await page.getByLabel('Name on the tickets').inputValue(), 'Ada Lovelace');
  assert.equal(await page.getByLabel('Number of General admission tickets').inputValue(), '2');
  assert.equal(await page.getByLabel(/^Email/).getAttribute('aria-invalid'), 'true');
  await screenshot(page, 'order-3-error-nojs');

  await page.getByLabel(/^Email/).fill('ada@example.org');
  await page.getByRole('checkbox', { name: /Festival T-shirt/ }).first().check();
  await page.getByRole('button', { name: 'Order tickets' }).click();
  await page.waitForURL(/\/orders\/ord_[0-9a-f]+\?token=/);
  assert.match(await page.locator('.notice').textContent(), /on their way to ada@example\.org/);
  assert.equal(await page.locator('.ticket').count(), 2);
  assert.match(await page.locator('.ticket h2').first().textContent(), /General admission \+ Festival T-shirt/);
  // Large enough to scan from a phone: at least 300 CSS px wide on a 390 px screen.
  const box = await page.locator('.ticket .qr svg').first().boundingBox();
  assert.ok(box.width >= 300, `QR is ${box.width}px wide`);
  await screenshot(page, 'order-4-confirmation-nojs');
  await scanFirstTicket(page, 'nojs');
  await context.close();
});

test('buying with JavaScript: live total, inline validation, pay at the door', async () => {
  const context = await browser.newContext(phone);
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  // The demo leaves pay at the door off for paid types; the organizer allows it for VIP first.
  const allowed = await adminFetch(issuer, '/admin/v1/events/1/ticket-types/1', {
    method: 'PATCH',
    json: { at_door_allowed: true },
  });
  assert.equal(allowed.status, 200);
  await page.goto(`${issuer.url}/events/1`);
  // The availability reflects the two tickets sold in the other test (or none if it ran alone).
  assert.match(await page.locator('[data-ticket-type="0"]').textContent(), /^\d+ left$/);

  assert.deepEqual(await accessibilityViolations(page), [], 'event page (WCAG 2.1 AA, axe-core)');

  // Availability is refreshed in place: another buyer takes 3 VIP tickets, the page learns of it.
  const vipLeft = Number((await page.locator('[data-ticket-type="1"]').textContent()).split(' ')[0]);
  const other = await fetch(`${issuer.url}/v1/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      event_id: 1,
      name: 'Other Buyer',
      email: 'other@example.org',
      items: [{ ticket_type: 1, quantity: 3 }],
      payment: 'at_door',
    }),
  });
  assert.equal(other.status, 201);
  // The script refreshes when the tab becomes visible again (and every 20 s).
  await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
  await page.waitForFunction(
    (left) => document.querySelector('[data-ticket-type="1"]').textContent === `${left} left`,
    vipLeft - 3,
  );

  const total = page.locator('#total');
  assert.match(await total.textContent(), /0[.,]00/);
  // General admission with the paid parking cannot be paid at the door: the choice is disabled, with why.
  await page.getByLabel('Number of General admission tickets').fill('1');
  await page.locator('fieldset.ticket-type[data-index="0"]').getByRole('checkbox', { name: /Parking/ }).check();
  assert.ok(await page.locator('#payment-at-door').isDisabled());
  assert.match(await page.locator('#payment-at-door-hint').textContent(), /not offered for General admission/);
  await page.getByLabel('Number of General admission tickets').fill('0');
  assert.ok(await page.locator('#payment-at-door').isEnabled());
  assert.equal(await page.locator('#payment-at-door-hint').count(), 0);
  await page.getByLabel('Number of VIP tickets').fill('2');
  await page.locator('fieldset.ticket-type[data-index="1"]').getByRole('checkbox', { name: /Parking/ }).check();
  // 2 × (49.00 + 10.00) = 118.00, shown without a round trip.
  assert.match(await total.textContent(), /118[.,]00/);

  const email = page.getByLabel(/^Email/);
  await email.fill('not-an-address');
  await email.blur();
  assert.match(await page.locator('#email-live-error').textContent(), /email address/);
  assert.equal(await email.getAttribute('aria-invalid'), 'true');
  await screenshot(page, 'order-5-inline-validation-js');
  await email.fill('grace@example.org');
  await email.blur();
  assert.equal(await page.locator('#email-live-error').count(), 0);

  await page.getByLabel('Name on the tickets').fill('Grace Hopper');
  assert.ok(await page.getByLabel('Pay at the door').isChecked());
  await page.getByRole('button', { name: 'Order tickets' }).click();
  await page.waitForURL(/\/orders\/ord_/);
  assert.match(await page.locator('.notice').textContent(), /on their way to grace@example\.org/);
  assert.match(await page.locator('main').textContent(), /total €118\.00/);
  await screenshot(page, 'order-6-confirmation-js');
  assert.deepEqual(await accessibilityViolations(page), [], 'confirmation page (WCAG 2.1 AA, axe-core)');
  await scanFirstTicket(page, 'js');
  assert.deepEqual(errors, []);
  await context.close();
});

test('an oversized order is refused with the input kept; a sold-out type cannot be chosen', async () => {
  const context = await browser.newContext(phone);
  const page = await context.newPage();
  await page.goto(`${issuer.url}/events/1`);
  // More than one order may hold: the browser's max check is bypassed to reach the server's rule.
  await page.getByLabel('Number of General admission tickets').evaluate((el) => el.removeAttribute('max'));
  await page.getByLabel('Number of General admission tickets').fill('25');
  await page.getByLabel('Name on the tickets').fill('Too Many');
  await page.getByLabel(/^Email/).fill('many@example.org');
  await page.getByRole('button', { name: 'Order tickets' }).click();
  await page.waitForLoadState();
  const summary = page.locator('#error-summary');
  assert.match(await summary.textContent(), /must be between 1 and 20/);
  // The script moved focus to the summary.
  assert.ok(await summary.evaluate((el) => el === document.activeElement));
  assert.equal(await page.getByLabel('Name on the tickets').inputValue(), 'Too Many');
  assert.deepEqual(await accessibilityViolations(page), [], 'rejected form (WCAG 2.1 AA, axe-core)');
  await screenshot(page, 'order-7-too-many-js');

  // An event with one seat, sold: the page says so and the quantity cannot be chosen.
  let res = await adminFetch(issuer, '/admin/v1/events', {
    method: 'POST',
    json: { name: 'Tiny Gig', venue: 'Back Room', starts_at: 2_000_000_000, ends_at: 2_000_010_000, timezone: 'UTC' },
  });
  assert.equal(res.status, 201);
  const { id } = await res.json();
  res = await adminFetch(issuer, `/admin/v1/events/${id}/ticket-types`, {
    method: 'POST',
    json: { name: 'Seat', price_cents: 0, currency: 'EUR', capacity: 1 },
  });
  assert.equal(res.status, 201);
  res = await fetch(`${issuer.url}/v1/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ event_id: id, name: 'First', email: 'first@example.org', items: [{ ticket_type: 0, quantity: 1 }] }),
  });
  assert.equal(res.status, 201);
  await page.goto(`${issuer.url}/events/${id}`);
  assert.equal(await page.locator('[data-ticket-type="0"]').textContent(), 'Sold out');
  assert.ok(await page.getByLabel('Number of Seat tickets').isDisabled());
  await screenshot(page, 'order-8-sold-out');
  await context.close();
});

test('the whole order can be placed with the keyboard alone', async () => {
  const context = await browser.newContext({ viewport: { width: 1024, height: 800 } });
  const page = await context.newPage();
  await page.goto(`${issuer.url}/events/1`);
  /** Presses Tab until the element with `id` has focus (bounded: the form has fewer than 30 stops). */
  async function tabTo(id) {
    for (let i = 0; i < 30; i++) {
      await page.keyboard.press('Tab');
      if ((await page.evaluate(() => document.activeElement?.id)) === id) return;
    }
    assert.fail(`#${id} cannot be reached with Tab`);
  }
  await tabTo('qty_0');
  await page.keyboard.press('Control+A');
  await page.keyboard.type('1');
  await page.keyboard.press('Tab'); // the first add-on of this ticket type
  await page.keyboard.press('Space');
  assert.ok(await page.locator('input[name=addons_0][value="0"]').isChecked());
  await tabTo('name');
  await page.keyboard.type('Keyboard User');
  await page.keyboard.press('Tab');
  await page.keyboard.type('keys@example.org');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/orders\/ord_/);
  assert.match(await page.locator('.notice').textContent(), /on their way to keys@example\.org/);
  await context.close();
});
