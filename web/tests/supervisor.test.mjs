// Supervisor mode at the door (issue #12) in the PWA scanner, in the system Chromium against a real issuer
// (demo event 1: ticket types "General admission" and "VIP", add-ons "Festival T-shirt" and "Parking"):
// - a steward has no "Admit anyway", undo or search controls, and an override sent anyway (the form forced
//   open, as a tampered page would) is refused by scanner-core;
// - the event's gate rules (set through the admin API before the device was set up) are offered in the gate
//   field, and a General admission ticket at "VIP entrance" is refused as wrong_gate, in red, with the sentence;
// - a supervisor pass made through the admin API unlocks "Supervisor: NAME until HH:MM"; the same pass with
//   one character changed is refused as forged;
// - a supervisor undoes an admission with a reason (the blue-grey CHECK-IN UNDONE screen) and the ticket
//   admits again; after "already used" both "Admit anyway" and "Undo check-in" are offered;
// - "Find attendee" finds an order by the buyer's name and "Admit" on its second, never scanned ticket admits
//   that very ticket (the first one still admits afterwards); offline the panel says search needs a
//   connection;
// - a pass typed into the manual box unlocks too; after "Lock" the supervisor controls are gone;
// - the issuer's report, after a sync, lists the undo with its reason and the admission found by search.
//
// There is no camera: every code is typed into the manual box. Screenshots of each screen go to
// $TICKETS_ARTIFACTS.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  accessibilityViolations,
  adminFetch,
  buyTicket,
  collectPageErrors,
  createDevice,
  launchBrowser,
  makeSupervisorPass,
  screenshot,
  startIssuer,
  issuerReport,
  waitForIssuerReport,
} from './harness.mjs';

const EVENT = 1;
const TIME_ZONE = 'Europe/Berlin'; // the demo event's
const WAIT = { timeout: 30_000 };
const SUPERVISOR = 'Ana Supervisor';
const UNDO_REASON = 'Scanned the wrong wristband';
const SEALED = 'Search needs a connection: the attendee list on this scanner is sealed.';

let issuer;
let browser;
let context;
let page;
let errors;
let pass;
const tickets = {};
/** Margaret Hamilton's order of two General admission tickets: the first with the T-shirt, the second without. */
let margaret;

/** One order with two lines for `name` (free: General admission is free, the T-shirt too). */
async function buyTwoTickets(name, email) {
  const res = await fetch(`${issuer.url}/v1/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      event_id: EVENT,
      name,
      email,
      items: [
        { ticket_type: 0, quantity: 1, addons: [0] },
        { ticket_type: 0, quantity: 1, addons: [] },
      ],
      payment: 'free',
    }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  const order = await res.json();
  const view = await (await fetch(`${issuer.url}/v1/orders/${order.order_id}?token=${order.token}`)).json();
  assert.equal(view.tickets.length, 2);
  return { orderId: order.order_id, email, first: view.tickets[0].qr_text, second: view.tickets[1].qr_text };
}

before(async () => {
  issuer = await startIssuer();
  // The gate rule comes before the device is set up: setup fetches the rules.
  const rules = await adminFetch(issuer, `/admin/v1/events/${EVENT}/gates`, {
    method: 'PUT',
    json: { gates: [{ gate: 'VIP entrance', ticket_types: [1] }] },
  });
  assert.equal(rules.status, 200, await rules.clone().text());
  for (const [key, name] of [
    ['ada', 'Ada Lovelace'],
    ['barbara', 'Barbara Liskov'],
    ['grace', 'Grace Hopper'],
  ]) {
    tickets[key] = await buyTicket(issuer, name);
  }
  margaret = await buyTwoTickets('Margaret Hamilton', 'margaret.hamilton@example.org');
  const device = await createDevice(issuer, 'Supervisor door phone');
  // No camera: every code is typed (the camera's decoding is scanner.test.mjs's and mobile.test.mjs's).
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 420, height: 900 } });
  page = await context.newPage();
  errors = collectPageErrors(page);
  await page.goto(device.setup_url);
  try {
    await page.waitForFunction(() => /^Online · .*0 scans in log/.test(document.getElementById('status-line').textContent), null, WAIT);
  } catch (e) {
    throw new Error(`the scanner was not set up: ${e.message}\nstatus: ${await page.textContent('#status-line')}\nnotice: ${await page.textContent('#notice')}`);
  }
});

after(async () => {
  await browser?.close();
  await issuer?.stop();
});

async function shown() {
  return page.evaluate(() => {
    const v = document.getElementById('verdict');
    return {
      verdict: v.dataset.verdict,
      code: v.dataset.code,
      source: v.dataset.source,
      count: Number(v.dataset.count ?? 0),
      headline: document.getElementById('verdict-headline').textContent,
      who: document.getElementById('verdict-who').textContent,
      detail: document.getElementById('verdict-detail').textContent,
      background: getComputedStyle(v).backgroundColor,
    };
  });
}

/** Waits until the page has shown its `count`-th verdict and returns it. */
async function verdictNumber(count) {
  try {
    await page.waitForFunction((n) => Number(document.getElementById('verdict').dataset.count ?? 0) >= n, count, WAIT);
  } catch (e) {
    await screenshot(page, `supervisor-verdict-${count}-FAILED`).catch(() => {});
    throw new Error(`verdict ${count} never came: ${e.message}\nshown: ${JSON.stringify(await shown())}\n${errors.join('\n')}`);
  }
  const v = await shown();
  assert.equal(v.count, count, `exactly one verdict more: ${JSON.stringify(v)}`);
  return v;
}

/** Types `code` into the manual box and returns the verdict it gets. */
async function check(code) {
  const before = (await shown()).count;
  await page.fill('#manual-code', code);
  await page.click('#manual-form button[type="submit"]');
  return verdictNumber(before + 1);
}

/** Back to the camera view (the verdict screen covers the page's controls). */
async function closeVerdictScreen() {
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !document.getElementById('verdict').classList.contains('verdict--screen'), null, WAIT);
}

async function role() {
  return page.evaluate(() => {
    const r = document.getElementById('role');
    return { text: r.textContent, role: r.dataset.role };
  });
}

/** Which supervisor-only controls a person can see. */
async function supervisorControls() {
  return {
    override: await page.isVisible('#override-form'),
    undo: await page.isVisible('#undo-form'),
    search: await page.isVisible('#find-panel'),
    lock: await page.isVisible('#lock'),
    unlock: await page.isVisible('#unlock-form'),
  };
}

/** "HH:MM" of `unixSeconds` in the event's time zone, or "D Mon, HH:MM" on another day than today there. */
function expectedUntil(unixSeconds) {
  const ms = unixSeconds * 1000;
  const day = (t) => new Intl.DateTimeFormat('en-CA', { timeZone: TIME_ZONE }).format(t);
  const time = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: TIME_ZONE }).format(ms);
  if (day(ms) === day(Date.now())) return time;
  return `${new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'short', timeZone: TIME_ZONE }).format(ms)}, ${time}`;
}

/** The supervisor pass with one character of its signature changed (the payload, and so the name, stays). */
function forgePass(text) {
  const i = text.length - 20;
  const c = text[i] === 'A' ? 'B' : 'A';
  return text.slice(0, i) + c + text.slice(i + 1);
}

/** Whether the element's centre is its own (nothing covers it, e.g. on top of the verdict screen). */
async function onTop(selector) {
  return page.evaluate((sel) => {
    const b = document.querySelector(sel);
    const r = b.getBoundingClientRect();
    return r.width > 0 && b === document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
  }, selector);
}

const report = () => issuerReport(issuer, EVENT);
const waitForReport = (predicate, what) => waitForIssuerReport(issuer, EVENT, predicate, what);

/** Console and page errors, minus the network failures that going offline is supposed to cause. */
function unexpected(list) {
  return list.filter((e) => !/ERR_INTERNET_DISCONNECTED|Failed to fetch|Failed to load resource/.test(e));
}

test('a steward has no supervisor controls, and an override sent anyway is refused', async () => {
  assert.deepEqual(await role(), { text: 'Steward', role: 'steward' });
  assert.deepEqual(await supervisorControls(), { override: false, undo: false, search: false, lock: false, unlock: true });

  const admit = await check(tickets.ada.qrText);
  assert.equal(admit.verdict, 'admit');
  assert.equal(admit.who, 'Ada Lovelace');
  assert.equal(await page.isVisible('#undo-form'), false, 'a steward cannot undo a check-in');

  const used = await check(tickets.ada.qrText);
  assert.equal(used.verdict, 'already_used');
  assert.equal(used.headline, 'ALREADY USED');
  assert.deepEqual(await supervisorControls(), { override: false, undo: false, search: false, lock: false, unlock: true });
  await screenshot(page, 'supervisor-01-steward-already-used');

  // A tampered page shows the override form anyway: scanner-core still refuses a steward's override.
  await closeVerdictScreen();
  const before = used.count;
  await page.evaluate(() => document.getElementById('override-form').removeAttribute('hidden'));
  await page.fill('#override-reason', 'my friend');
  await page.click('#override-form button[type="submit"]');
  const refused = await verdictNumber(before + 1);
  assert.equal(refused.verdict, 'error');
  assert.equal(refused.headline, 'NOT RECORDED');
  assert.match(refused.detail, /only a supervisor may override a refusal/);
  assert.equal(await page.isVisible('#override-form'), false);
  await screenshot(page, 'supervisor-02-steward-override-refused');
  // Nothing was admitted: the ticket is still used once.
  assert.equal((await check(tickets.ada.qrText)).verdict, 'already_used');
});

test('the gate field offers the event\'s gates; a General admission ticket at the VIP entrance is refused', async () => {
  await closeVerdictScreen();
  assert.deepEqual(await page.$$eval('#gate-options option', (os) => os.map((o) => o.value)), ['VIP entrance']);
  assert.equal(await page.getAttribute('#gate', 'list'), 'gate-options');
  await page.fill('#gate', 'VIP entrance');
  await page.locator('#gate').blur();
  await page.waitForFunction(() => document.getElementById('gate-rule').textContent === 'This gate admits VIP only.', null, WAIT);

  const v = await check(tickets.grace.qrText);
  assert.equal(v.verdict, 'refused');
  assert.equal(v.code, 'wrong_gate');
  assert.equal(v.headline, 'REFUSED');
  assert.equal(v.detail, 'Wrong gate: VIP entrance admits VIP only — this is a General admission');
  assert.equal(v.background, 'rgb(183, 28, 28)', 'red, as every refusal');
  assert.equal(await page.isVisible('#override-form'), false, 'a steward cannot admit anyway');
  await screenshot(page, 'supervisor-03-wrong-gate');

  // A free-text gate is still allowed; back to the main entrance, where Grace gets in.
  await closeVerdictScreen();
  await page.fill('#gate', 'Main entrance');
  await page.locator('#gate').blur();
  await page.waitForFunction(() => document.getElementById('gate-rule').textContent.startsWith('No rule for this gate'), null, WAIT);
  const again = await check(tickets.grace.qrText);
  assert.equal(again.verdict, 'admit');
  assert.equal(again.who, 'Grace Hopper');
});

test('a forged supervisor pass is refused; the real one unlocks supervisor mode', async () => {
  await closeVerdictScreen();
  pass = await makeSupervisorPass(issuer, SUPERVISOR, { hours: 2 });
  assert.equal(pass.name, SUPERVISOR);

  await page.fill('#supervisor-pass', forgePass(pass.pass));
  await page.click('#unlock-form button[type="submit"]');
  await page.locator('#unlock-error').waitFor({ state: 'visible', ...WAIT });
  assert.equal(
    await page.textContent('#unlock-error'),
    'Supervisor mode not unlocked: this supervisor pass is forged (bad signature)',
  );
  assert.deepEqual(await role(), { text: 'Steward', role: 'steward' });
  assert.equal(await page.isVisible('#find-panel'), false);
  await screenshot(page, 'supervisor-04-forged-pass');

  await page.fill('#supervisor-pass', pass.pass);
  await page.click('#unlock-form button[type="submit"]');
  await page.waitForFunction(() => document.getElementById('role').dataset.role === 'supervisor', null, WAIT);
  assert.deepEqual(await role(), { text: `Supervisor: ${SUPERVISOR} until ${expectedUntil(pass.not_after)}`, role: 'supervisor' });
  assert.equal(await page.isVisible('#unlock-error'), false);
  assert.equal(await page.inputValue('#supervisor-pass'), '', 'the pass does not stay in the field');
  const c = await supervisorControls();
  assert.equal(c.search, true);
  assert.equal(c.lock, true);
  assert.equal(c.unlock, false);
  // The longer role text wraps in the status bar: nothing is pushed off the side of a phone screen.
  assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), true);
  await screenshot(page, 'supervisor-05-unlocked');
});

test('a supervisor undoes a check-in for a reason, and the ticket admits again', async () => {
  const admit = await check(tickets.barbara.qrText);
  assert.equal(admit.verdict, 'admit');
  assert.equal(admit.who, 'Barbara Liskov');
  assert.equal(await page.isVisible('#undo-form'), true);
  assert.equal(await onTop('#undo-form button'), true, '"Undo check-in" is on top of the verdict screen');
  await screenshot(page, 'supervisor-06-admit-undo-offered');

  await page.fill('#undo-reason', UNDO_REASON);
  await page.click('#undo-form button[type="submit"]');
  const undone = await verdictNumber(admit.count + 1);
  assert.equal(undone.verdict, 'undone');
  assert.equal(undone.headline, 'CHECK-IN UNDONE');
  assert.equal(undone.who, 'Barbara Liskov');
  assert.match(undone.detail, /^Undid the entry at Main entrance, .* \(this scanner\)\. Reason: Scanned the wrong wristband\. The ticket admits again\.$/);
  assert.equal(undone.background, 'rgb(69, 90, 100)', 'blue-grey: neither admit green nor refusal red');
  assert.equal(await page.isVisible('#undo-form'), false);
  await screenshot(page, 'supervisor-07-undone');

  const again = await check(tickets.barbara.qrText);
  assert.equal(again.verdict, 'admit');
  assert.equal(again.headline, 'ADMIT');
  assert.equal(again.who, 'Barbara Liskov');

  // After "already used" a supervisor may admit anyway or undo; both stay reachable on the verdict screen.
  const used = await check(tickets.ada.qrText);
  assert.equal(used.verdict, 'already_used');
  assert.equal(await onTop('#override-form button'), true, '"Admit anyway" on top');
  assert.equal(await onTop('#undo-form button'), true, '"Undo check-in" on top');
  await screenshot(page, 'supervisor-08-already-used-actions');
});

test('a supervisor finds an attendee by name and admits the ticket chosen', async () => {
  await closeVerdictScreen();
  assert.equal(await page.isVisible('#find-panel'), true);
  await page.fill('#find-query', 'Ha');
  await page.click('#find-form button[type="submit"]');
  assert.equal(
    await page.textContent('#find-status'),
    'Type at least 3 characters of a name, an email address or an order id.',
  );
  assert.equal(await page.locator('#find-results li').count(), 0);

  await page.fill('#find-query', 'Hamilton');
  await page.click('#find-form button[type="submit"]');
  await page.waitForFunction(() => /found for/.test(document.getElementById('find-status').textContent), null, WAIT);
  assert.equal(await page.textContent('#find-status'), '1 order found for “Hamilton”.');
  const order = page.locator('#find-results > li.find__order');
  assert.equal(await order.count(), 1);
  assert.equal(await order.getAttribute('data-order-id'), margaret.orderId);
  assert.equal(await order.locator('.find__buyer').textContent(), 'Margaret Hamilton');
  assert.equal(await order.locator('.find__meta').textContent(), `margaret.hamilton@example.org · Paid · order ${margaret.orderId}`);
  assert.deepEqual(await order.locator('.find__holder').allTextContents(), [
    'Margaret Hamilton — General admission + Festival T-shirt',
    'Margaret Hamilton — General admission',
  ]);
  assert.equal(await order.locator('.find__revoked').count(), 0);
  await screenshot(page, 'supervisor-09-search-results');

  const before = (await shown()).count;
  await page.getByRole('button', { name: 'Admit Margaret Hamilton, General admission', exact: true }).click();
  const v = await verdictNumber(before + 1);
  assert.equal(v.verdict, 'admit');
  assert.equal(v.who, 'Margaret Hamilton');
  assert.equal(v.detail, 'General admission — found by search, no QR code');
  assert.equal(v.source, 'search');
  await screenshot(page, 'supervisor-10-found-admitted');

  // The button admitted the second ticket: it is used now, the first (with the T-shirt) never was.
  assert.equal((await check(margaret.second)).verdict, 'already_used');
  const first = await check(margaret.first);
  assert.equal(first.verdict, 'admit');
  assert.equal(first.detail, 'General admission + Festival T-shirt');

  await closeVerdictScreen();
  assert.deepEqual(await accessibilityViolations(page), []);
});

test('offline, search says it needs a connection', async () => {
  await closeVerdictScreen();
  await context.setOffline(true);
  try {
    await page.waitForFunction(() => document.getElementById('status-line').textContent.startsWith('Offline'), null, WAIT);
    assert.equal(await page.textContent('#find-status'), SEALED);
    await page.fill('#find-query', 'Hamilton');
    await page.click('#find-form button[type="submit"]');
    assert.equal(await page.textContent('#find-status'), SEALED);
    assert.equal(await page.locator('#find-results li').count(), 0);
    await screenshot(page, 'supervisor-11-search-offline');
  } finally {
    await context.setOffline(false);
  }
  await page.waitForFunction(() => document.getElementById('status-line').textContent.startsWith('Online'), null, WAIT);
  assert.equal(await page.textContent('#find-status'), '');
});

test('after "Lock" the supervisor controls are gone; a pass typed into the manual box unlocks again', async () => {
  await page.click('#lock');
  await page.waitForFunction(() => document.getElementById('role').dataset.role === 'steward', null, WAIT);
  assert.deepEqual(await role(), { text: 'Steward', role: 'steward' });
  assert.deepEqual(await supervisorControls(), { override: false, undo: false, search: false, lock: false, unlock: true });
  const used = await check(tickets.barbara.qrText);
  assert.equal(used.verdict, 'already_used');
  assert.deepEqual(await supervisorControls(), { override: false, undo: false, search: false, lock: false, unlock: true });
  await screenshot(page, 'supervisor-12-locked');

  await closeVerdictScreen();
  await page.fill('#manual-code', pass.pass);
  await page.click('#manual-form button[type="submit"]');
  await page.waitForFunction(() => document.getElementById('role').dataset.role === 'supervisor', null, WAIT);
  assert.equal((await role()).text, `Supervisor: ${SUPERVISOR} until ${expectedUntil(pass.not_after)}`);
  await page.click('#lock');
  await page.waitForFunction(() => document.getElementById('role').dataset.role === 'steward', null, WAIT);
  assert.equal(await page.isVisible('#find-panel'), false);
});

test('the issuer\'s report lists the undo with its reason and the admission found by search', async () => {
  await page.click('#sync-now');
  const r = await waitForReport(
    (x) => x.undos?.length === 1 && x.found_by_search?.length === 1,
    'the undo and the admission found by search',
  );
  assert.match(r.undos[0].override_reason ?? '', /Scanned the wrong wristband/);
  assert.match(r.undos[0].override_reason ?? '', /Ana Supervisor/, 'the supervisor is named beside the undo');
  assert.match(r.found_by_search[0].override_reason ?? '', /Ana Supervisor/);
  assert.equal(r.undone.length, 1);
  assert.equal(r.undone[0].gate, 'Main entrance');
  assert.equal(r.overrides.length, 0, 'the steward\'s override was never recorded');
  assert.deepEqual(unexpected(errors), []);
});
