// The PWA scanner in the steward's language (issue #17), in the system Chromium against a real issuer: a
// phone whose browser prefers German gets the scanner in German; the switcher changes it to French and the
// choice survives a reload; verdicts and refusals (translated by scanner-core's refusal code) follow.
// Also: every message exists in every language with the same placeholders, every key the page uses exists,
// and every refusal code scanner-core has is translated.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { buyTicket, collectPageErrors, createDevice, launchBrowser, repoRoot, screenshot, startIssuer } from './harness.mjs';

const WAIT = { timeout: 30_000 };
const scannerFile = (...path) => readFileSync(join(repoRoot, 'web', 'scanner', ...path), 'utf8');
const catalog = (lang) => JSON.parse(scannerFile('locales', `${lang}.json`));

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

test('every scanner message is in English, German and French with the same placeholders', () => {
  const en = catalog('en');
  const placeholders = (text) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
  for (const lang of ['de', 'fr']) {
    const other = catalog(lang);
    assert.deepEqual(Object.keys(other).sort(), Object.keys(en).sort(), `${lang}: the same keys as English`);
    for (const key of Object.keys(en)) {
      assert.deepEqual(placeholders(other[key]), placeholders(en[key]), `${lang}: ${key}`);
      assert.notEqual(other[key], '', `${lang}: ${key} is empty`);
    }
  }
  // Every key the page and its script ask for exists.
  const used = [
    ...[...scannerFile('index.html').matchAll(/data-i18n(?:-placeholder|-label)?="([^"]+)"/g)].map((m) => m[1]),
    ...[...scannerFile('app.js').matchAll(/\btr\('([^']+)'/g)].map((m) => m[1]),
  ];
  assert.ok(used.length > 60, `found the keys in use (${used.length})`);
  for (const key of used) assert.ok(key in en, `${key} is used but not in locales/en.json`);
  // Every refusal code scanner-core gives (Refusal::code in scanner-core/src/verify.rs) has its words.
  const verify = readFileSync(join(repoRoot, 'scanner-core', 'src', 'verify.rs'), 'utf8');
  const codes = [...verify.matchAll(/Refusal::\w+(?:\(_\)| \{ \.\. \})? => "([a-z_]+)"/g)].map((m) => m[1]);
  assert.ok(codes.includes('bad_signature') && codes.includes('wrong_gate'), `refusal codes: ${codes}`);
  for (const code of codes) assert.ok(`refusal.${code}` in en, `refusal.${code} missing`);
});

/** What the page shows: its language, some static text and the verdict. */
function shown(page) {
  return page.evaluate(() => ({
    lang: document.documentElement.lang,
    switcher: document.getElementById('language').value,
    manualLabel: document.querySelector('label[for="manual-code"]').textContent,
    syncNow: document.getElementById('sync-now').textContent,
    headline: document.getElementById('verdict-headline').textContent,
    detail: document.getElementById('verdict-detail').textContent,
    status: document.getElementById('status-line').textContent,
  }));
}

async function typeCode(page, text, count) {
  await page.fill('#manual-code', text);
  await page.click('#manual-form button[type="submit"]');
  await page.waitForFunction((n) => Number(document.getElementById('verdict').dataset.count ?? 0) >= n, count, WAIT);
  // Back from the full-screen verdict, so the next code can be typed.
  await page.keyboard.press('Escape');
}

test('a German phone shows German; the switcher changes to French and it stays after a reload', async () => {
  const ticket = await buyTicket(issuer, 'Ada Lovelace');
  const device = await createDevice(issuer, 'Porte Nord');
  const context = await browser.newContext({ locale: 'de-DE', viewport: { width: 412, height: 915 } });
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  await page.goto(device.setup_url);
  // Set up once the status line stops saying "nicht eingerichtet" (not set up yet).
  await page.waitForFunction(
    () => /^Online · (synchronisiert|noch nicht synchronisiert)/.test(document.getElementById('status-line').textContent),
    null,
    WAIT,
  );

  let s = await shown(page);
  assert.equal(s.lang, 'de');
  assert.equal(s.switcher, 'de');
  assert.equal(s.manualLabel, 'Ticketcode');
  assert.equal(s.syncNow, 'Jetzt synchronisieren');
  assert.match(s.status, /^Online · (synchronisiert|noch nicht synchronisiert)/);
  assert.match(s.status, / Scans? im Protokoll/);
  await typeCode(page, 'NOT-A-TICKET', 1);
  s = await shown(page);
  assert.equal(s.headline, 'ABGELEHNT');
  assert.equal(s.detail, 'Kein Ticket: Dieser QR-Code ist keines unserer Tickets');
  await screenshot(page, 'scanner-i18n-1-de');

  // The switcher: French, and the page reloads in French.
  await Promise.all([page.waitForEvent('load'), page.selectOption('#language', 'fr')]);
  await page.waitForFunction(() => document.documentElement.lang === 'fr', null, WAIT);
  await page.waitForFunction(() => /^En ligne · /.test(document.getElementById('status-line').textContent), null, WAIT);
  s = await shown(page);
  assert.equal(s.switcher, 'fr');
  assert.equal(s.manualLabel, 'Code du billet');
  assert.equal(s.syncNow, 'Synchroniser');
  await typeCode(page, ticket.qrText, 1);
  s = await shown(page);
  assert.equal(s.headline, 'ENTRÉE');
  await typeCode(page, ticket.qrText, 2);
  s = await shown(page);
  assert.equal(s.headline, 'DÉJÀ UTILISÉ');
  assert.match(s.detail, /^Déjà utilisé à Main entrance, .* \(ce scanner\)$/);
  await screenshot(page, 'scanner-i18n-2-fr');

  // Kept on this phone: a reload (the browser still prefers German) stays French.
  await page.reload();
  await page.waitForFunction(() => /^En ligne · /.test(document.getElementById('status-line').textContent), null, WAIT);
  s = await shown(page);
  assert.equal(s.lang, 'fr');
  assert.equal(s.manualLabel, 'Code du billet');
  assert.deepEqual(errors, []);
  await context.close();
});

test('an English phone still gets English', async () => {
  const device = await createDevice(issuer, 'Gate E');
  const context = await browser.newContext({ locale: 'en-GB' });
  const page = await context.newPage();
  await page.goto(device.setup_url);
  await page.waitForFunction(() => /^Online · /.test(document.getElementById('status-line').textContent), null, WAIT);
  const s = await shown(page);
  assert.equal(s.lang, 'en');
  assert.equal(s.manualLabel, 'Ticket code');
  assert.equal(s.syncNow, 'Sync now');
  await context.close();
});
