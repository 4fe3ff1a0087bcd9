// The dashboard's "At the door" forms in real Chromium against a real issuer (demo event 1: ticket types
// "General admission" and "VIP", add-ons "Festival T-shirt" and "Parking"):
// - a supervisor pass made from the form shows its QR code, its text and its expiry; the text is a pass for
//   the name, event and hours typed in (decoded by the documented layout) and the issuer's attendee search
//   accepts it from a device of the event;
// - gate rules edited with the keyboard and mouse are saved, read back by a scanner device through
//   GET /v1/scanner/events/1/gates, and shown again after a reload.
// axe-core (WCAG 2.1 AA) runs on the page with both forms in use.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startIssuer, launchBrowser, screenshot, adminFetch, collectPageErrors, accessibilityViolations } from './harness.mjs';

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

async function json(res, status) {
  const body = await res.json();
  assert.equal(res.status, status, JSON.stringify(body));
  return body;
}

/** A scanner device token for event 1. */
async function deviceToken(name) {
  const d = await json(await adminFetch(issuer, '/admin/v1/devices', { method: 'POST', json: { name, event: 1 } }), 201);
  return d.token;
}

/**
 * The fields of a supervisor pass text, by scanner-core's documented layout (`SUP1:` + base64url of
 * version, event id, key id, issued at, not after, name length, name, then a 64-byte signature).
 */
function readPass(text) {
  assert.ok(text.startsWith('SUP1:'), text);
  const b = Buffer.from(text.slice(5), 'base64url');
  const n = b[15];
  assert.equal(b.length, 16 + n + 64, 'payload and signature');
  return {
    version: b[0],
    event: b.readUInt32BE(1),
    issuedAt: b.readUInt32BE(7),
    notAfter: b.readUInt32BE(11),
    name: b.subarray(16, 16 + n).toString('utf8'),
  };
}

test('supervisor passes and gate rules from the dashboard', async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  await page.goto(`${issuer.url}/dashboard/`);
  await page.getByLabel('Admin token').fill(issuer.adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#app').waitFor({ state: 'visible' });
  await page.waitForFunction(() => document.getElementById('event-title').textContent === 'Demo Festival');
  // No rules yet: the editor says every gate admits every ticket.
  await page.locator('#gates-empty').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#gate-list fieldset.gate').count(), 0);

  // ---- supervisor pass -----------------------------------------------------------------------------------
  // An empty name is refused in the form, with the field marked.
  await page.getByRole('button', { name: 'Make supervisor pass' }).click();
  await page.locator('#pass-error').waitFor({ state: 'visible' });
  assert.equal(await page.getByLabel('Supervisor name (recorded with every supervisor action)').getAttribute('aria-invalid'), 'true');

  await page.getByLabel('Supervisor name (recorded with every supervisor action)').fill('Ana Supervisor');
  await page.getByLabel('Valid for (hours, 1 to 168)').fill('8');
  const askedAt = Math.floor(Date.now() / 1000);
  await page.getByRole('button', { name: 'Make supervisor pass' }).click();
  await page.locator('#pass-result').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#pass-error').isHidden(), true);
  assert.equal(await page.locator('#pass-title').textContent(), 'Supervisor pass for Ana Supervisor');
  assert.equal(await page.locator('#pass-qr svg').count(), 1, 'the QR code is shown');
  assert.equal(await page.getByRole('img', { name: 'QR code of the supervisor pass' }).count(), 1);
  const text = await page.getByLabel('Pass text (to type in if the camera cannot read the code)').inputValue();
  const pass = readPass(text);
  assert.deepEqual(
    { version: pass.version, event: pass.event, name: pass.name, lifetime: pass.notAfter - pass.issuedAt },
    { version: 1, event: 1, name: 'Ana Supervisor', lifetime: 8 * 3600 },
  );
  assert.ok(Math.abs(pass.issuedAt - askedAt) <= 60, `issued at ${pass.issuedAt}, asked at ${askedAt}`);
  // The expiry shown is the pass's own (in UTC next to the local time).
  const utc = new Date(pass.notAfter * 1000).toISOString().slice(0, 16).replace('T', ' ');
  assert.match(await page.locator('#pass-expiry').textContent(), new RegExp(`^Valid until .*\\(${utc} UTC\\)\\.$`));
  await screenshot(page, 'door-admin-1-pass');

  // The issuer accepts the pass on the supervisors' search from a device of event 1; without it, 403.
  const device = await deviceToken('Door phone');
  const searchUrl = `${issuer.url}/v1/scanner/events/1/search?q=nobody`;
  const withPass = await fetch(searchUrl, { headers: { authorization: `Bearer ${device}`, 'x-supervisor-pass': text } });
  assert.deepEqual(await json(withPass, 200), { orders: [], truncated: false });
  const withoutPass = await fetch(searchUrl, { headers: { authorization: `Bearer ${device}` } });
  assert.match((await json(withoutPass, 403)).error.message, /a supervisor pass is required/);

  // ---- gate rules ----------------------------------------------------------------------------------------
  // Keyboard: "Add a gate" with Enter adds a gate and puts the focus in its name.
  await page.getByRole('button', { name: 'Add a gate' }).focus();
  await page.keyboard.press('Enter');
  await page.keyboard.type('VIP entrance');
  const first = page.locator('#gate-list fieldset.gate').nth(0);
  assert.equal(await first.getByLabel('Gate name (as set on the scanners)').inputValue(), 'VIP entrance');
  assert.equal(await first.locator('legend').first().textContent(), 'Gate 1');
  await first.getByRole('group', { name: /ticket types/ }).getByLabel('VIP').check();

  await page.getByRole('button', { name: 'Add a gate' }).click();
  const second = page.locator('#gate-list fieldset.gate').nth(1);
  await second.getByLabel('Gate name (as set on the scanners)').fill('Bar');
  await second.getByLabel(/Redeems an add-on/).selectOption({ label: 'Yes: Festival T-shirt' });

  // A gate without a name is refused in the form; removing it leaves the two.
  await page.getByRole('button', { name: 'Add a gate' }).click();
  await page.getByRole('button', { name: 'Save gate rules' }).click();
  await page.locator('#gates-error').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#gates-error').textContent(), 'Gate 3 needs a name.');
  const third = page.locator('#gate-list fieldset.gate').nth(2);
  assert.equal(await third.getByLabel('Gate name (as set on the scanners)').getAttribute('aria-invalid'), 'true');
  await page.getByRole('button', { name: 'Remove gate without a name' }).click();
  assert.equal(await page.locator('#gate-list fieldset.gate').count(), 2);

  await page.getByRole('button', { name: 'Save gate rules' }).click();
  await page.waitForFunction(() => document.getElementById('message').textContent.startsWith('Gate rules saved (2 gates)'));
  assert.equal(await page.locator('#gates-error').isHidden(), true);
  await screenshot(page, 'door-admin-2-gates');
  assert.deepEqual(await accessibilityViolations(page), [], 'dashboard with the door forms (WCAG 2.1 AA, axe-core)');

  // A scanner of the event reads exactly these rules, with the catalog's names.
  const expected = {
    format: 'offline-tickets/gate-rules/v1',
    event_id: 1,
    ticket_type_names: ['General admission', 'VIP'],
    addon_names: ['Festival T-shirt', 'Parking'],
    gates: [
      { gate: 'VIP entrance', ticket_types: [1] },
      { gate: 'Bar', redeems_addon: 0 },
    ],
  };
  const rules = await fetch(`${issuer.url}/v1/scanner/events/1/gates`, { headers: { authorization: `Bearer ${device}` } });
  assert.deepEqual(await json(rules, 200), expected);

  // After a reload the editor shows the saved rules.
  await page.reload();
  await page.locator('#gate-list fieldset.gate').nth(1).waitFor();
  const gates = page.locator('#gate-list fieldset.gate');
  assert.equal(await gates.count(), 2);
  assert.equal(await gates.nth(0).getByLabel('Gate name (as set on the scanners)').inputValue(), 'VIP entrance');
  assert.equal(await gates.nth(0).getByRole('group', { name: /ticket types/ }).getByLabel('VIP').isChecked(), true);
  assert.equal(
    await gates.nth(0).getByRole('group', { name: /ticket types/ }).getByLabel('General admission').isChecked(),
    false,
  );
  assert.equal(await gates.nth(1).getByLabel('Gate name (as set on the scanners)').inputValue(), 'Bar');
  assert.equal(await gates.nth(1).getByLabel(/Redeems an add-on/).inputValue(), '0');
  assert.equal(await page.locator('#gates-empty').isHidden(), true);

  assert.deepEqual(
    errors.filter((e) => !e.includes('401')),
    [],
  );
  await context.close();
});
