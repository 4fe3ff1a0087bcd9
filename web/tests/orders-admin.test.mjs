// The back office's order tools in real Chromium against a real issuer (demo event 1): a customer orders
// two named tickets through the order page; the organizer finds the order in the dashboard, refunds one
// ticket, renames the holder of the other and downloads the attendee list as CSV. At phone and laptop
// width, keyboard only where it matters, axe-core clean.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  repoRoot,
  startIssuer,
  launchBrowser,
  screenshot,
  adminFetch,
  collectPageErrors,
  accessibilityViolations,
  phoneEmulation,
} from './harness.mjs';

let issuer;
let browser;

before(async () => {
  issuer = await startIssuer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await issuer?.stop();
});

/** axe-core (WCAG 2.x A and AA) on the orders section only: the other sections have their own tests. */
async function sectionViolations(page) {
  await page.evaluate(readFileSync(join(repoRoot, 'web', 'tests', 'node_modules', 'axe-core', 'axe.min.js'), 'utf8'));
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document.getElementById('orders-admin'), {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    }),
  );
  return result.violations.map((v) => ({ id: v.id, help: v.help, targets: v.nodes.map((n) => n.target.join(' ')) }));
}

async function signIn(page) {
  await page.goto(`${issuer.url}/dashboard/`);
  await page.getByLabel('Admin token').fill(issuer.adminToken);
  await page.getByLabel('Admin token').press('Enter');
  await page.locator('#orders-admin').waitFor();
}

test('two named tickets ordered, found, one refunded, a holder renamed, attendees exported', async () => {
  // --- the customer, on a phone, without the organizer's help ---
  const customer = await browser.newContext(phoneEmulation);
  const shop = await customer.newPage();
  const shopErrors = collectPageErrors(shop);
  await shop.goto(`${issuer.url}/events/1`);
  await shop.getByLabel('Number of General admission tickets').fill('2');
  await shop.getByLabel('Name on the tickets').fill('Buyer Björk');
  await shop.getByLabel(/^Email/).fill('bjork@example.org');
  // With script, one field per ticket follows the quantity (the text area is the form without script).
  assert.equal(await shop.getByLabel('Names for the General admission tickets, one per line').isVisible(), false);
  await shop.getByLabel('Name on General admission ticket 1').fill('Ada Lovelace');
  await shop.getByLabel('Name on General admission ticket 2').fill('Grace <b>Hopper</b>');
  assert.equal(await shop.getByLabel('Name on General admission ticket 3').count(), 0);
  assert.deepEqual(await accessibilityViolations(shop), [], 'order page with the names (axe-core)');
  await screenshot(shop, 'orders-admin-1-named-tickets');
  await shop.getByRole('button', { name: 'Order tickets' }).click();
  await shop.waitForURL(/\/orders\/ord_[0-9a-f]+\?token=/);
  const orderId = /\/orders\/(ord_[0-9a-f]+)/.exec(shop.url())[1];
  const holders = await shop.locator('.ticket').allTextContents();
  assert.equal(holders.length, 2);
  assert.match(holders[0], /Ada Lovelace/);
  // The hostile-looking name is shown as the text it is.
  assert.match(holders[1], /Grace <b>Hopper<\/b>/);
  assert.deepEqual(shopErrors, []);
  await customer.close();

  // Without script the same names go in the text area, one a line; a blank line is the buyer's name.
  const plain = await browser.newContext({ javaScriptEnabled: false });
  const form = await plain.newPage();
  await form.goto(`${issuer.url}/events/1`);
  await form.getByLabel('Number of General admission tickets').fill('3');
  await form.getByLabel('Name on the tickets').fill('Plain Buyer');
  await form.getByLabel(/^Email/).fill('plain@example.org');
  await form.getByLabel('Names for the General admission tickets, one per line').fill('First Friend\n\nThird Friend');
  await form.getByRole('button', { name: 'Order tickets' }).click();
  await form.waitForURL(/\/orders\/ord_[0-9a-f]+\?token=/);
  const plainHolders = await form.locator('.ticket').allTextContents();
  assert.equal(plainHolders.length, 3);
  assert.match(plainHolders[0], /First Friend/);
  assert.match(plainHolders[1], /Plain Buyer/);
  assert.match(plainHolders[2], /Third Friend/);
  await plain.close();

  // --- the organizer, on a laptop ---
  const office = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await office.newPage();
  const errors = collectPageErrors(page);
  await signIn(page);
  // What the shell logs while signing in is the shell's (its own tests check it); from here on, the orders
  // section's requests must all succeed.
  errors.length = 0;
  await page.getByLabel('Name, email or order number').fill('björk');
  await page.getByLabel('Name, email or order number').press('Enter');
  await page.getByRole('button', { name: `Open order ${orderId}` }).click();
  await page.locator('#order-detail').waitFor();
  assert.equal(await page.locator('#order-detail-title').textContent(), `Order ${orderId}`);
  assert.equal(await page.getByLabel('Holder of ticket 1', { exact: true }).inputValue(), 'Ada Lovelace');
  assert.equal(await page.getByLabel('Holder of ticket 2', { exact: true }).inputValue(), 'Grace <b>Hopper</b>');
  assert.deepEqual(await sectionViolations(page), [], 'orders section with an order open (axe-core)');
  await screenshot(page, 'orders-admin-2-order-detail');

  // Refund ticket 2: two clicks (the second confirms), by keyboard.
  await page.getByRole('button', { name: 'Refund ticket 2' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: 'Confirm refund of ticket 2' }).press('Enter');
  await page.locator('#orders-status', { hasText: 'Ticket 2 of order' }).waitFor();
  await page.locator('#order-tickets tbody tr:nth-child(2)', { hasText: 'refunded or cancelled' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Refund ticket 1' }).count(), 1, 'ticket 1 stays valid');

  // Rename the holder of ticket 1.
  await page.getByLabel('Holder of ticket 1', { exact: true }).fill('Ada King');
  await page.getByRole('button', { name: 'Save holder of ticket 1' }).click();
  await page.locator('#orders-status', { hasText: 'now carries the name Ada King' }).waitFor();

  // What the server holds now (independently of the page): ticket 2 revoked, ticket 1 renamed.
  const detail = await (await adminFetch(issuer, `/admin/v1/orders/${orderId}/detail`)).json();
  assert.deepEqual(
    detail.tickets.map((t) => [t.holder_name, t.revoked]),
    [['Ada King', false], ['Grace <b>Hopper</b>', true]],
  );

  // The attendee list, as the browser downloads it.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download attendees (CSV)' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'event-1-attendees.csv');
  const csv = readFileSync(await download.path(), 'utf8');
  assert.ok(csv.startsWith('\uFEFF'), 'UTF-8 BOM');
  const lines = csv.slice(1).trim().split('\r\n');
  assert.equal(lines[0], 'order,ticket,ticket type,add-ons,holder,buyer,buyer email,valid');
  const ours = lines.filter((l) => l.startsWith(orderId));
  assert.deepEqual(ours, [
    `${orderId},1,General admission,,Ada King,Buyer Björk,bjork@example.org,yes`,
    `${orderId},2,General admission,,Grace <b>Hopper</b>,Buyer Björk,bjork@example.org,no`,
  ]);
  assert.deepEqual(errors, []);
  await office.close();

  // At phone width the section stays usable: no horizontal scrolling of the page itself.
  const phone = await browser.newContext(phoneEmulation);
  const small = await phone.newPage();
  await signIn(small);
  await small.getByLabel('Name, email or order number').fill(orderId);
  await small.getByRole('button', { name: 'Search orders' }).click();
  await small.getByRole('button', { name: `Open order ${orderId}` }).click();
  await small.locator('#order-detail').waitFor();
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `page is ${overflow}px wider than the phone screen`);
  assert.deepEqual(await sectionViolations(small), [], 'orders section at phone width (axe-core)');
  await screenshot(small, 'orders-admin-3-phone');
  await phone.close();
});
