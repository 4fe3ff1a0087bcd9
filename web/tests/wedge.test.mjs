// Hardware (keyboard-wedge) scanners in the PWA, in the system Chromium against a real issuer: a USB or
// Bluetooth barcode scanner types the QR text as keystrokes a few ms apart, then Enter. The page must scan
// that without a tap — with no field focused, or with the burst landing in the manual box or the gate
// field — exactly once, and must leave a person typing at human speed alone.
//
// The camera sees a blank page, so every verdict here comes from the keyboard. "N scans in log" in the
// status line is the device's own record count: it shows that each code was scanned exactly once.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  blankLumaFrame,
  buyTicket,
  collectPageErrors,
  createDevice,
  fakeCameraFlags,
  launchBrowser,
  screenshot,
  startIssuer,
  writeY4m,
} from './harness.mjs';

const WAIT = { timeout: 30_000 };
/** Keystrokes of a wedge scanner: 5 ms apart (real ones type 1–20 ms apart). */
const WEDGE = { delay: 5 };
/** A person typing quickly: 150 ms between keys. */
const HUMAN = { delay: 150 };

let issuer;
let work;
let browser;
let page;
let errors;
const tickets = {};

before(async () => {
  issuer = await startIssuer();
  work = mkdtempSync(join(tmpdir(), 'tickets-wedge-'));
  for (const [key, name] of [
    ['alan', 'Alan Turing'],
    ['barbara', 'Barbara Liskov'],
    ['claude', 'Claude Shannon'],
    ['dorothy', 'Dorothy Vaughan'],
  ]) {
    tickets[key] = await buyTicket(issuer, name);
  }
  const device = await createDevice(issuer, 'Wedge door phone');
  browser = await launchBrowser({ args: fakeCameraFlags(writeY4m(join(work, 'blank.y4m'), [blankLumaFrame()])) });
  page = await browser.newPage({ viewport: { width: 420, height: 900 } });
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
  if (work && !process.env.TICKETS_KEEP_DATA) rmSync(work, { recursive: true, force: true });
});

async function shown() {
  return page.evaluate(() => {
    const v = document.getElementById('verdict');
    return {
      verdict: v.dataset.verdict,
      source: v.dataset.source,
      count: Number(v.dataset.count ?? 0),
      headline: document.getElementById('verdict-headline').textContent,
      who: document.getElementById('verdict-who').textContent,
      detail: document.getElementById('verdict-detail').textContent,
    };
  });
}

/** Waits until the page has shown its `count`-th verdict and returns it. */
async function verdictNumber(count) {
  try {
    await page.waitForFunction((n) => Number(document.getElementById('verdict').dataset.count ?? 0) >= n, count, WAIT);
  } catch (e) {
    await screenshot(page, `wedge-verdict-${count}-FAILED`).catch(() => {});
    throw new Error(`verdict ${count} never came: ${e.message}\nshown: ${JSON.stringify(await shown())}\n${errors.join('\n')}`);
  }
  const v = await shown();
  assert.equal(v.count, count, `exactly one verdict more: ${JSON.stringify(v)}`);
  return v;
}

async function scansInLog(n) {
  await page.waitForFunction(
    (want) => new RegExp(`· ${want} scans? in log`).test(document.getElementById('status-line').textContent),
    n,
    WAIT,
  );
}

/** Nothing focused: the keys go to the page itself. */
async function blurAll() {
  await page.evaluate(() => document.activeElement?.blur());
  assert.equal(await page.evaluate(() => document.activeElement === document.body), true);
}

/** A code that cannot be a ticket, checked through the manual box: a verdict that marks a point in time
 *  (the engine answers in order, so anything sent before it has been answered when it shows). */
async function sentinel() {
  await page.fill('#manual-code', 'TK1:NOT A TICKET');
  await page.click('#manual-form button[type="submit"]');
}

test('a wedge scan with no field focused admits the ticket, once', async () => {
  await blurAll();
  await page.keyboard.type(tickets.alan.qrText, WEDGE);
  await page.keyboard.press('Enter');
  const v = await verdictNumber(1);
  assert.equal(v.verdict, 'admit');
  assert.equal(v.headline, 'ADMIT');
  assert.equal(v.who, 'Alan Turing');
  assert.equal(v.source, 'keyboard');
  await scansInLog(1);
  await screenshot(page, 'wedge-01-admit');
  // The keys went nowhere else: no field took them.
  assert.equal(await page.inputValue('#manual-code'), '');
  assert.equal(await page.inputValue('#gate'), 'Main entrance');
  // Checked once: the next verdict is the next thing sent.
  await sentinel();
  const s = await verdictNumber(2);
  assert.equal(s.verdict, 'refused');
  assert.equal(s.source, 'manual');
});

test('the same code typed at human speed with no field focused is not scanned', async () => {
  await blurAll();
  const before = (await shown()).count;
  await page.keyboard.type(tickets.barbara.qrText, HUMAN);
  await page.keyboard.press('Enter');
  // The engine answers in order: had the slow typing been sent, its verdict would come before this one.
  await sentinel();
  const v = await verdictNumber(before + 1);
  assert.equal(v.verdict, 'refused');
  assert.equal(v.source, 'manual');
  // Barbara's ticket was never scanned: the wedge admits it now, not "already used".
  await blurAll();
  await page.keyboard.type(tickets.barbara.qrText, WEDGE);
  await page.keyboard.press('Enter');
  const w = await verdictNumber(before + 2);
  assert.equal(w.verdict, 'admit');
  assert.equal(w.who, 'Barbara Liskov');
});

test('a wedge scan into the focused manual box is checked once and leaves the box as the person left it', async () => {
  const before = (await shown()).count;
  await page.focus('#manual-code');
  // Someone had started typing a code by hand, then picked up the scanner (a pause of more than 300 ms
  // starts a new burst).
  await page.keyboard.type('TK1', HUMAN);
  await new Promise((r) => setTimeout(r, 500));
  await page.keyboard.type(tickets.claude.qrText, WEDGE);
  await page.keyboard.press('Enter');
  const v = await verdictNumber(before + 1);
  assert.equal(v.verdict, 'admit');
  assert.equal(v.who, 'Claude Shannon');
  assert.equal(v.source, 'keyboard');
  assert.equal(await page.inputValue('#manual-code'), 'TK1');
  // Had the manual form been submitted as well, its verdict would come before the sentinel's.
  await sentinel();
  assert.equal((await verdictNumber(before + 2)).verdict, 'refused');
});

test('a wedge scan into the focused gate field scans the ticket and keeps the gate name', async () => {
  const before = (await shown()).count;
  await page.focus('#gate');
  await page.keyboard.type(tickets.dorothy.qrText, WEDGE);
  await page.keyboard.press('Enter');
  const v = await verdictNumber(before + 1);
  assert.equal(v.verdict, 'admit');
  assert.equal(v.who, 'Dorothy Vaughan');
  assert.equal(await page.inputValue('#gate'), 'Main entrance');
  // Leaving the field (which would send a changed gate to the engine) and the next scan (which makes the
  // page show the engine's gate again) keep it.
  await blurAll();
  await sentinel();
  await verdictNumber(before + 2);
  assert.equal(await page.inputValue('#gate'), 'Main entrance');
});

test('a person typing into the manual box keeps every key; Enter checks it through the form', async () => {
  const before = (await shown()).count;
  await page.focus('#manual-code');
  await page.keyboard.type('TK1:HELLO', HUMAN);
  assert.equal(await page.inputValue('#manual-code'), 'TK1:HELLO');
  await page.keyboard.press('Enter');
  const v = await verdictNumber(before + 1);
  assert.equal(v.verdict, 'refused');
  assert.equal(v.source, 'manual');
  assert.equal(await page.inputValue('#manual-code'), '');
  assert.deepEqual(errors, []);
});
