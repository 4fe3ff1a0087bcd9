// Issue #15's "done when": in Chromium, an organizer logs in with a password, creates an event with two
// ticket types and an add-on, invites a box-office colleague (who sets a password from the invitation link
// and logs in), a buyer buys two tickets, the organizer edits a price, the colleague refunds one ticket of
// the two-ticket order and exports the attendee list, and the organizer sees each of those actions in the
// audit log, with who did it. Plus axe-core (WCAG 2.1 AA) on the sign-in, invitation, staff and audit
// screens at laptop and phone width, and the colleague's role shown in what the page offers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
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
let ownerPassword;

before(async () => {
  issuer = await startIssuer();
  browser = await launchBrowser();
  // scripts/run.sh's demo owner: `issuer serve --demo` writes its password (0600) beside the admin token.
  ownerPassword = readFileSync(join(issuer.dataDir, 'owner-password'), 'utf8').trim();
});

after(async () => {
  await browser?.close();
  await issuer?.stop();
});

const COLLEAGUE = 'box.office@example.org';
const COLLEAGUE_PASSWORD = 'a long box office password';

/** axe-core violations on elements inside `selectors` (the other sections have their own tests). */
async function violationsIn(page, selectors) {
  const all = await accessibilityViolations(page);
  const mine = await page.evaluate(
    ([lists, sel]) => lists.map((targets) => targets.filter((t) => document.querySelector(t)?.closest(sel))),
    [all.map((v) => v.targets), selectors],
  );
  return all.map((v, i) => ({ ...v, targets: mine[i] })).filter((v) => v.targets.length > 0);
}

async function logIn(page, email, password) {
  await page.goto(`${issuer.url}/dashboard/`);
  await page.locator('#login').waitFor({ state: 'visible' });
  await page.locator('#login-email').fill(email);
  await page.locator('#login-password').fill(password);
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
  await page.locator('#app').waitFor({ state: 'visible' });
  await page.locator('#whoami', { hasText: email }).waitFor();
}

/** Browser noise the flow causes on purpose: the first page load asks who is signed in (401). */
function unexpected(errors) {
  return errors.filter((e) => !/status of 401 \(Unauthorized\)/.test(e));
}

test('log in, build an event, invite box office, sell, reprice, refund one ticket, export, audit', async () => {
  const owner = await browser.newContext({ locale: 'en-US', viewport: { width: 1100, height: 900 } });
  const page = await owner.newPage();
  const errors = collectPageErrors(page);

  // A wrong password first: the same answer an unknown address gets, shown next to the form.
  await page.goto(`${issuer.url}/dashboard/`);
  await page.locator('#login-email').fill('owner@example.org');
  await page.locator('#login-password').fill('not the password');
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
  await page.locator('#password-error', { hasText: 'wrong email or password' }).waitFor();
  assert.deepEqual(await violationsIn(page, '#login, header'), [], 'sign-in screen (axe-core)');

  await logIn(page, 'owner@example.org', ownerPassword);
  assert.equal(await page.locator('#whoami').textContent(), 'owner@example.org (Owner)');
  // The session lives in an HttpOnly cookie: page scripts cannot read it.
  assert.equal(await page.evaluate(() => document.cookie), '');

  // ---- an event with two ticket types and an add-on (the catalog section) ----
  await page.getByLabel('Event to edit', { exact: true }).selectOption({ label: 'New event' });
  await page.getByLabel('Event name', { exact: true }).fill('Back Office Night');
  await page.getByLabel('Venue', { exact: true }).fill('Hall 9');
  await page.getByLabel('Time zone (IANA name, such as Europe/Berlin)', { exact: true }).fill('Europe/Berlin');
  await page.getByLabel('Starts (local time at the event)', { exact: true }).fill('2030-06-01T19:00');
  await page.getByLabel('Ends (local time at the event)', { exact: true }).fill('2030-06-01T23:00');
  await page.getByRole('button', { name: 'Create event' }).click();
  await page.locator('#catalog-status', { hasText: 'Created Back Office Night.' }).waitFor();
  for (const [name, price, capacity] of [['Standard', '20.00', 50], ['Reduced', '10.00', 20]]) {
    await page.getByLabel('Ticket type name', { exact: true }).fill(name);
    await page.getByLabel('Price (0 for free)', { exact: true }).fill(price);
    await page.getByLabel('Currency (three letters, such as EUR)', { exact: true }).fill('EUR');
    await page.getByLabel('Capacity (tickets)', { exact: true }).fill(String(capacity));
    await page.getByLabel('Pay at the door allowed', { exact: true }).setChecked(true);
    await page.getByRole('button', { name: 'Add ticket type' }).click();
    await page.locator('#catalog-status', { hasText: `Added ticket type ${name}.` }).waitFor();
  }
  await page.getByLabel('Add-on name', { exact: true }).fill('Cloakroom');
  await page.getByLabel('Add-on price (0 for free)', { exact: true }).fill('2');
  await page.getByLabel('Add-on capacity', { exact: true }).fill('30');
  await page.getByRole('button', { name: 'Add add-on' }).click();
  await page.locator('#catalog-status', { hasText: 'Added add-on Cloakroom.' }).waitFor();
  const events = await (await fetch(`${issuer.url}/v1/events`)).json();
  const event = events.find((e) => e.name === 'Back Office Night');
  assert.ok(event, 'the new event is on sale');
  assert.deepEqual(
    event.ticket_types.map((t) => [t.name, t.price_cents]),
    [['Standard', 2000], ['Reduced', 1000]],
  );

  // ---- invite a box-office colleague (the staff section) ----
  await page.locator('#staff-email').fill(COLLEAGUE);
  await page.getByLabel('Role', { exact: true }).selectOption({ label: 'Box office' });
  await page.getByRole('button', { name: 'Create invitation link' }).click();
  await page.locator('#staff-invite-result').waitFor({ state: 'visible' });
  const invitation = await page.getByLabel('Invitation link', { exact: true }).inputValue();
  assert.match(invitation, new RegExp(`^${issuer.url}/dashboard/#invite=[A-Za-z0-9_-]{43}$`));
  assert.deepEqual(
    await page.locator('#staff-table tbody tr').evaluateAll((rows) =>
      rows.map((r) => [r.cells[0].textContent, r.cells[1].querySelector('select').value, r.cells[2].textContent]),
    ),
    [['owner@example.org', 'owner', 'active'], [COLLEAGUE, 'box_office', 'invited']],
  );
  assert.deepEqual(await violationsIn(page, '#staff-admin, #api-tokens, #audit, header'), [], 'staff screens');
  await screenshot(page, 'backoffice-1-staff');

  const colleagueContext = await browser.newContext({ locale: 'en-US', viewport: { width: 1100, height: 900 } });
  const colleague = await colleagueContext.newPage();
  const colleagueErrors = collectPageErrors(colleague);
  await colleague.goto(invitation);
  await colleague.locator('#invite').waitFor({ state: 'visible' });
  assert.deepEqual(await violationsIn(colleague, '#invite'), [], 'invitation screen');
  await colleague.getByLabel('New password', { exact: true }).fill(COLLEAGUE_PASSWORD);
  await colleague.getByLabel('New password again', { exact: true }).fill(COLLEAGUE_PASSWORD);
  await colleague.getByRole('button', { name: 'Set password' }).click();
  await colleague.locator('#login-notice', { hasText: `Your password is set. Sign in as ${COLLEAGUE}.` }).waitFor();
  assert.equal(new URL(colleague.url()).hash, '', 'the used token left the address bar');
  await colleague.locator('#login-password').fill(COLLEAGUE_PASSWORD);
  await colleague.getByRole('button', { name: 'Log in', exact: true }).click();
  await colleague.locator('#whoami', { hasText: `${COLLEAGUE} (Box office)` }).waitFor();
  // Box office: orders yes; catalog, door, staff and audit not offered.
  assert.equal(await colleague.locator('#orders-admin').isVisible(), true);
  for (const id of ['#catalog', '#staff-admin', '#audit', '#device-form']) {
    assert.equal(await colleague.locator(id).isVisible(), false, `${id} hidden for box office`);
  }

  // ---- sell: a buyer orders two Standard tickets on the order form ----
  const shop = await owner.newPage();
  await shop.goto(`${issuer.url}/events/${event.id}`);
  await shop.getByLabel('Number of Standard tickets').fill('2');
  await shop.getByLabel('Name on the tickets').fill('Buyer Two');
  await shop.getByLabel(/^Email/).fill('buyer.two@example.org');
  await shop.getByRole('button', { name: 'Order tickets' }).click();
  await shop.waitForURL(/\/orders\/[^/?]+\?token=/);
  const orderId = new URL(shop.url()).pathname.split('/').pop();
  assert.equal(await shop.locator('.ticket').count(), 2);

  // ---- the owner edits a price ----
  await page.getByRole('button', { name: 'Edit Standard', exact: true }).click();
  await page.getByLabel('Price (0 for free)', { exact: true }).fill('25.00');
  await page.getByRole('button', { name: 'Save ticket type' }).click();
  await page.locator('#catalog-status', { hasText: 'Saved ticket type Standard.' }).waitFor();

  // ---- the colleague refunds one ticket of the two-ticket order and exports the attendees ----
  await colleague.reload();
  await colleague.locator('#whoami', { hasText: COLLEAGUE }).waitFor();
  await colleague.locator('#event-select').selectOption({ label: 'Back Office Night' });
  await colleague.getByLabel('Name, email or order number').fill(orderId);
  await colleague.getByRole('button', { name: 'Search orders' }).click();
  await colleague.getByRole('button', { name: `Open order ${orderId}` }).click();
  await colleague.locator('#order-detail').waitFor();
  await colleague.getByRole('button', { name: 'Refund ticket 2' }).click();
  await colleague.getByRole('button', { name: 'Confirm refund of ticket 2' }).click();
  await colleague.locator('#orders-status', { hasText: 'Ticket 2 of order' }).waitFor();
  assert.equal(await colleague.getByRole('button', { name: 'Refund ticket 1' }).count(), 1, 'ticket 1 stays valid');
  const [download] = await Promise.all([
    colleague.waitForEvent('download'),
    colleague.getByRole('button', { name: 'Download attendees (CSV)' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), `event-${event.id}-attendees.csv`);
  const csv = readFileSync(await download.path(), 'utf8');
  assert.match(csv, /Buyer Two/);

  // ---- the owner sees each action in the audit log, with who did it ----
  await page.getByRole('button', { name: 'Show', exact: true }).click();
  await page.locator('#audit-table tbody tr', { hasText: 'export.attendees' }).waitFor();
  const rows = await page.locator('#audit-table tbody tr').evaluateAll((trs) =>
    trs.map((r) => ({
      who: r.cells[1].firstChild.firstChild.textContent,
      action: r.cells[2].textContent,
      target: r.cells[3].textContent,
      change: r.cells[4].textContent,
    })),
  );
  const find = (action, who) => rows.filter((r) => r.action === action && r.who === who);
  const ownerEmail = 'owner@example.org';
  assert.equal(find('staff.login', ownerEmail).length, 1, JSON.stringify(rows));
  assert.equal(find('event.create', ownerEmail).length, 1);
  assert.equal(find('ticket_type.create', ownerEmail).length, 2);
  assert.equal(find('addon.create', ownerEmail).length, 1);
  assert.equal(find('staff.create', ownerEmail).length, 1);
  assert.equal(find('staff.password_set', COLLEAGUE).length, 1);
  assert.equal(find('staff.login', COLLEAGUE).length, 1);
  const reprice = find('ticket_type.update', ownerEmail);
  assert.equal(reprice.length, 1);
  assert.match(reprice[0].change, /before: .*"price_cents":2000/);
  assert.match(reprice[0].change, /after: .*"price_cents":2500/);
  const refund = find('order.refund_ticket', COLLEAGUE);
  assert.equal(refund.length, 1, JSON.stringify(rows));
  assert.match(refund[0].target, new RegExp(orderId));
  assert.equal(find('export.attendees', COLLEAGUE).length, 1);

  // The filter narrows to one kind of action.
  await page.getByLabel('Action (e.g. order.refund, or event. for all)').fill('ticket_type.');
  await page.getByRole('button', { name: 'Show', exact: true }).click();
  await page.waitForFunction(() => document.querySelectorAll('#audit-table tbody tr').length === 3);
  assert.deepEqual(await page.locator('#audit-table tbody tr td:nth-child(3)').allTextContents(), [
    'ticket_type.update',
    'ticket_type.create',
    'ticket_type.create',
  ]);
  assert.deepEqual(await violationsIn(page, '#staff-admin, #api-tokens, #audit, header'), [], 'audit screen');
  // The whole signed-in page, every section at once (catalog, orders, door, staff, audit): axe-core clean.
  assert.deepEqual(await accessibilityViolations(page), [], 'the whole dashboard at laptop width');
  await screenshot(page, 'backoffice-2-audit');

  // ---- phone width: the same screens, no sideways scrolling of the page ----
  const phone = await browser.newContext({ ...phoneEmulation, locale: 'en-US' });
  const small = await phone.newPage();
  await logIn(small, 'owner@example.org', ownerPassword);
  await small.locator('#audit').waitFor({ state: 'visible' });
  assert.deepEqual(await accessibilityViolations(small), [], 'the whole dashboard at phone width');
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page scrolls sideways by ${overflow}px at 412px`);
  await screenshot(small, 'backoffice-3-phone');

  // Signing out ends the session on the server: the old cookie no longer opens the API.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('#login').waitFor({ state: 'visible' });
  const status = await page.evaluate(async () => (await fetch('/admin/v1/session')).status);
  assert.equal(status, 401);

  assert.deepEqual(unexpected(errors), []);
  assert.deepEqual(unexpected(colleagueErrors), []);
  await phone.close();
  await colleagueContext.close();
  await owner.close();
});
