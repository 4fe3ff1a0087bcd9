// The dashboard's catalog section in real Chromium against a real issuer: an organizer creates an event in
// New York time with two ticket types and an add-on through the forms, edits a price, and the buyer's pages
// then show the new price and the event's local times (not UTC). Also: a capacity below what sold is
// refused next to the field, a hidden type leaves the order form, a shared quota is made with the keyboard
// alone, and the section is axe-core clean (WCAG 2.1 AA; the whole page at laptop width, the catalog
// section at phone width) without sideways scrolling of the page.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startIssuer,
  launchBrowser,
  screenshot,
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

// 2027-03-14 20:00 in New York is EDT (daylight saving time started that morning): 2027-03-15 00:00 UTC.
// Computed independently with Python's zoneinfo.
const START_UNIX = 1_805_068_800;

async function signedIn(contextOptions) {
  // en-US: the dashboard formats amounts with the browser's locale ($25.00).
  const context = await browser.newContext({ locale: 'en-US', ...contextOptions });
  // The dashboard keeps the admin token for the tab in sessionStorage; put it there before the page runs.
  await context.addInitScript((token) => sessionStorage.setItem('tickets.adminToken', token), issuer.adminToken);
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  await page.goto(`${issuer.url}/dashboard/`);
  if (await page.locator('#login').isVisible()) {
    await page.getByLabel('Admin token', { exact: true }).fill(issuer.adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }
  await page.locator('#catalog').waitFor({ state: 'visible' });
  // The catalog has loaded the events (the demo event is one).
  await page.waitForFunction(() => document.getElementById('catalog-event').options.length > 1);
  return { context, page, errors };
}

/**
 * axe-core's WCAG 2.1 AA violations on elements of the catalog section (the rest of the page belongs to
 * other sections, which their own tests check).
 */
async function catalogViolations(page) {
  const all = await accessibilityViolations(page);
  const inCatalog = await page.evaluate(
    (lists) => lists.map((targets) => targets.filter((t) => document.querySelector(t)?.closest('#catalog'))),
    all.map((v) => v.targets),
  );
  return all.map((v, i) => ({ ...v, targets: inCatalog[i] })).filter((v) => v.targets.length > 0);
}

/** Page errors, but for the browser's own log line of the 409 the test provokes on purpose. */
function unexpected(errors) {
  return errors.filter((e) => !/status of 409 \(Conflict\)/.test(e));
}

async function expectStatus(page, text) {
  await page.waitForFunction((t) => document.getElementById('catalog-status').textContent === t, text);
}

test('create an event with two ticket types and an add-on, edit a price, see it on the buyer pages', async () => {
  const { context, page, errors } = await signedIn({ viewport: { width: 1100, height: 900 } });

  // The event, in New York time.
  await page.getByLabel('Event to edit', { exact: true }).selectOption({ label: 'New event' });
  await page.getByLabel('Event name', { exact: true }).fill('Harbour Nights');
  await page.getByLabel('Venue', { exact: true }).fill('Pier 4');
  await page.getByLabel('Time zone (IANA name, such as Europe/Berlin)', { exact: true }).fill('America/New_York');
  await page.getByLabel('Starts (local time at the event)', { exact: true }).fill('2027-03-14T20:00');
  await page.getByLabel('Ends (local time at the event)', { exact: true }).fill('2027-03-14T23:30');
  await page.getByRole('button', { name: 'Create event' }).click();
  await expectStatus(page, 'Created Harbour Nights. Add its ticket types below.');
  assert.equal(await page.locator('#event-when').textContent(), 'Sun 14 Mar 2027, 20:00 EDT – Sun 14 Mar 2027, 23:30 EDT (America/New_York)');
  // Focus moved to the first field of the ticket type form.
  assert.equal(await page.evaluate(() => document.activeElement.id), 'tt-name');

  // Two ticket types and an add-on.
  const addType = async (name, price, capacity, atDoor) => {
    await page.getByLabel('Ticket type name', { exact: true }).fill(name);
    await page.getByLabel('Price (0 for free)', { exact: true }).fill(price);
    await page.getByLabel('Currency (three letters, such as EUR)', { exact: true }).fill('USD');
    await page.getByLabel('Capacity (tickets)', { exact: true }).fill(String(capacity));
    await page.getByLabel('Pay at the door allowed', { exact: true }).setChecked(atDoor);
    await page.getByRole('button', { name: 'Add ticket type' }).click();
    await expectStatus(page, `Added ticket type ${name}.`);
  };
  await addType('Standard', '25.00', 100, true);
  await addType('Student', '12,50', 40, false);
  await page.getByLabel('Add-on name', { exact: true }).fill('Parking');
  await page.getByLabel('Add-on price (0 for free)', { exact: true }).fill('8');
  await page.getByLabel('Add-on capacity', { exact: true }).fill('20');
  await page.getByRole('button', { name: 'Add add-on' }).click();
  await expectStatus(page, 'Added add-on Parking.');
  const types = await page.locator('#ticket-types tbody tr').evaluateAll((rows) =>
    rows.map((r) => [...r.cells].slice(0, 7).map((c) => c.textContent)),
  );
  assert.deepEqual(types, [
    ['0', 'Standard', '$25.00', '100', '0', '100', 'On sale'],
    ['1', 'Student', '$12.50', '40', '0', '40', 'On sale'],
  ]);
  assert.deepEqual(
    await page.locator('#addons tbody tr').evaluateAll((rows) => rows.map((r) => [...r.cells].slice(0, 6).map((c) => c.textContent))),
    [['0', 'Parking', '$8.00', '20', '0', 'On sale']],
  );
  await screenshot(page, 'catalog-1-created');
  assert.deepEqual(await accessibilityViolations(page), [], 'catalog at laptop width (WCAG 2.1 AA, axe-core)');

  // The stored event, read through the public API: the local times were read in New York.
  const list = await (await fetch(`${issuer.url}/v1/events`)).json();
  const event = list.find((e) => e.name === 'Harbour Nights');
  assert.equal(event.starts_at, START_UNIX);
  assert.equal(event.ends_at, START_UNIX + 3.5 * 3600);
  assert.deepEqual(
    event.ticket_types.map((t) => [t.index, t.price_cents, t.currency, t.capacity]),
    [[0, 2500, 'USD', 100], [1, 1250, 'USD', 40]],
  );

  // Edit a price.
  await page.getByRole('button', { name: 'Edit Standard', exact: true }).click();
  assert.equal(await page.getByLabel('Price (0 for free)', { exact: true }).inputValue(), '25.00');
  await page.getByLabel('Price (0 for free)', { exact: true }).fill('30.00');
  await page.getByRole('button', { name: 'Save ticket type' }).click();
  await expectStatus(page, 'Saved ticket type Standard.');
  assert.equal(await page.locator('#ticket-types tbody tr').first().locator('td').nth(2).textContent(), '$30.00');

  // The order form shows the new price and the local start time.
  const buyer = await context.newPage();
  await buyer.goto(`${issuer.url}/events/${event.id}`);
  const form = await buyer.locator('main').textContent();
  assert.match(form, /\$30\.00/);
  assert.doesNotMatch(form, /\$25\.00/);
  assert.match(form, /Sunday, 14 March 2027, 8:00 PM EDT/);
  // An order at the new price; its page shows start and end in New York time.
  const created = await (
    await fetch(`${issuer.url}/v1/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        event_id: event.id,
        name: 'Grace Buyer',
        email: 'grace@example.org',
        items: [{ ticket_type: 0, quantity: 2, addons: [] }],
        payment: 'at_door',
      }),
    })
  ).json();
  assert.equal(created.total_cents, 6000, JSON.stringify(created));
  await buyer.goto(created.order_url);
  const orderPage = await buyer.locator('main').textContent();
  assert.match(orderPage, /Sunday, 14 March 2027, 8:00 PM EDT – 11:30 PM EDT/);
  assert.match(orderPage, /\$60\.00/);
  assert.doesNotMatch(orderPage, /UTC/);
  await screenshot(buyer, 'catalog-2-order-page');

  // Capacity below the 2 sold is refused next to the field, with the reason.
  await page.getByLabel('Event to edit', { exact: true }).selectOption({ label: 'New event' });
  await page.getByLabel('Event to edit', { exact: true }).selectOption({ label: 'Harbour Nights (Sun 14 Mar 2027, 20:00 EDT)' });
  await page.getByRole('button', { name: 'Edit Standard', exact: true }).click();
  await page.getByLabel('Capacity (tickets)', { exact: true }).fill('1');
  await page.getByRole('button', { name: 'Save ticket type' }).click();
  await page.locator('#tt-error').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#tt-error').textContent(), 'capacity cannot go below the 2 tickets of Standard already sold or held');
  await page.getByRole('button', { name: 'Cancel editing' }).first().click();

  // Hide Student: it leaves the order form; the organizer still sees it, marked hidden.
  await page.getByRole('button', { name: 'Hide Student', exact: true }).click();
  await expectStatus(page, 'Student is hidden from buyers.');
  assert.equal(await page.locator('#ticket-types tbody tr').nth(1).locator('td').nth(6).textContent(), 'Hidden');
  await buyer.goto(`${issuer.url}/events/${event.id}`);
  assert.doesNotMatch(await buyer.locator('main').textContent(), /Student/);

  // A shared quota, with the keyboard alone: type, Tab, type, Enter.
  await page.locator('#quota-name').focus();
  await page.keyboard.type('Floor');
  await page.keyboard.press('Tab');
  await page.keyboard.type('120');
  await page.keyboard.press('Enter');
  await expectStatus(page, 'Added quota Floor.');
  assert.deepEqual(
    await page.locator('#quotas tbody tr').evaluateAll((rows) => rows.map((r) => [...r.cells].slice(0, 4).map((c) => c.textContent))),
    [['Floor', '120', '0', '—']],
  );
  await screenshot(page, 'catalog-3-edited');
  assert.deepEqual(await accessibilityViolations(page), [], 'catalog after edits (WCAG 2.1 AA, axe-core)');
  assert.deepEqual(unexpected(errors), []);
  await context.close();
});

test('the catalog works at phone width without sideways scrolling', async () => {
  const { context, page, errors } = await signedIn({ ...phoneEmulation });
  await page.getByLabel('Event to edit', { exact: true }).selectOption({ label: 'Harbour Nights (Sun 14 Mar 2027, 20:00 EDT)' });
  await page.locator('#catalog-details').waitFor({ state: 'visible' });
  await page.locator('#catalog').scrollIntoViewIfNeeded();
  const widths = await page.evaluate(() => ({ page: document.documentElement.scrollWidth, view: window.innerWidth }));
  assert.ok(widths.page <= widths.view, `page is ${widths.page}px wide in a ${widths.view}px viewport`);
  await screenshot(page, 'catalog-4-phone');
  assert.deepEqual(await catalogViolations(page), [], 'catalog at phone width (WCAG 2.1 AA, axe-core)');
  assert.deepEqual(errors, []);
  await context.close();
});
