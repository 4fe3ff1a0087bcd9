// The verdict screen of the PWA scanner, readable at arm's length in sunlight, in the system Chromium under
// phone emulation (412×915) against a real issuer: each verdict fills the screen in its colour (green
// admit, red already used or refused, purple unpaid, blue exit) with a huge headline and holder name, plays
// its own tone (WebAudio) and vibration pattern, and returns to the camera on a tap or after a few seconds.
// "Paid — admit" and "Admit anyway" stay reachable on top of it. Sound and vibration never break a verdict:
// without an AudioContext, with a suspended one, or without navigator.vibrate the verdict still shows.
//
// AudioContext and navigator.vibrate are replaced before the page loads by recorders (an init script), so
// the test sees which oscillators started and which patterns were asked for. Screenshots of each verdict
// kind go to $TICKETS_ARTIFACTS (verdict-*.png).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  adminFetch,
  blankLumaFrame,
  buyTicket,
  collectPageErrors,
  createDevice,
  fakeCameraFlags,
  launchBrowser,
  phoneEmulation,
  screenshot,
  startIssuer,
  writeY4m,
  unlockSupervisor,
} from './harness.mjs';

const EVENT = 1; // the demo event `issuer serve --demo` seeds
const WAIT = { timeout: 30_000 };
const { width: W, height: H } = phoneEmulation.viewport;

let issuer;
let work;
let browser;
const tickets = {};

/** Records every oscillator started and every vibration asked for, in `window.__feedback`. `audio` is
 *  'running', 'suspended' (resume() is refused) or 'none' (no AudioContext at all); `vibrate: false`
 *  removes navigator.vibrate. */
function feedbackRecorder({ audio = 'running', vibrate = true } = {}) {
  /* eslint-disable no-undef */
  window.__feedback = { tones: [], vibrations: [], contexts: 0 };
  if (vibrate) {
    Object.defineProperty(Navigator.prototype, 'vibrate', {
      configurable: true,
      value(pattern) {
        window.__feedback.vibrations.push(pattern);
        return true;
      },
    });
  } else {
    delete Navigator.prototype.vibrate;
  }
  if (audio === 'none') {
    delete window.AudioContext;
    delete window.webkitAudioContext;
    return;
  }
  class RecordingAudioContext {
    constructor() {
      window.__feedback.contexts++;
      this.state = audio;
      this.currentTime = 0;
      this.destination = {};
    }
    resume() {
      return audio === 'running' ? Promise.resolve() : Promise.reject(new Error('not allowed to start'));
    }
    createOscillator() {
      const osc = {
        type: 'sine',
        frequency: { value: 0 },
        connect: (node) => node,
        start: () => window.__feedback.tones.push([osc.frequency.value, osc.type]),
        stop() {},
      };
      return osc;
    }
    createGain() {
      return { gain: { setValueAtTime() {}, exponentialRampToValueAtTime() {} }, connect: (node) => node };
    }
  }
  window.AudioContext = RecordingAudioContext;
  window.webkitAudioContext = RecordingAudioContext;
}

before(async () => {
  issuer = await startIssuer();
  work = mkdtempSync(join(tmpdir(), 'tickets-verdict-'));
  tickets.grace = await buyTicket(issuer, 'Grace Hopper');
  // A ticket type that may be paid at the door, ordered that way (as in pay-at-door.test.mjs).
  const created = await adminFetch(issuer, `/admin/v1/events/${EVENT}/ticket-types`, {
    method: 'POST',
    json: { name: 'Door VIP', price_cents: 4_900, currency: 'EUR', capacity: 10, at_door_allowed: true },
  });
  assert.equal(created.status, 201, await created.clone().text());
  const type = await created.json();
  tickets.hedy = await buyTicket(issuer, 'Hedy Lamarr', { ticketType: type.index, addons: [], payment: 'at_door' });
  tickets.mary = await buyTicket(issuer, 'Mary Jackson');
  browser = await launchBrowser({ args: fakeCameraFlags(writeY4m(join(work, 'blank.y4m'), [blankLumaFrame()])) });
});

after(async () => {
  await browser?.close();
  await issuer?.stop();
  if (work && !process.env.TICKETS_KEEP_DATA) rmSync(work, { recursive: true, force: true });
});

/** A phone-sized page set up as a new scanner device, with the feedback recorder installed. */
async function phonePage(deviceName, recorder) {
  const context = await browser.newContext(phoneEmulation);
  await context.addInitScript(feedbackRecorder, recorder);
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  const device = await createDevice(issuer, deviceName);
  await page.goto(device.setup_url);
  await page.waitForFunction(() => /^Online · /.test(document.getElementById('status-line').textContent), null, WAIT);
  return { context, page, errors };
}

async function typeCode(page, text) {
  await page.fill('#manual-code', text);
  await page.click('#manual-form button[type="submit"]');
}

async function verdictNumber(page, count, errors) {
  try {
    await page.waitForFunction((n) => Number(document.getElementById('verdict').dataset.count ?? 0) >= n, count, WAIT);
  } catch (e) {
    await screenshot(page, `verdict-${count}-FAILED`).catch(() => {});
    throw new Error(`verdict ${count} never came: ${e.message}\n${errors.join('\n')}`);
  }
  return page.evaluate(() => {
    const v = document.getElementById('verdict');
    const box = v.getBoundingClientRect();
    const px = (id) => parseFloat(getComputedStyle(document.getElementById(id)).fontSize);
    const [r, g, b] = getComputedStyle(v).backgroundColor.match(/\d+/g).map(Number);
    return {
      verdict: v.dataset.verdict,
      count: Number(v.dataset.count),
      headline: document.getElementById('verdict-headline').textContent,
      who: document.getElementById('verdict-who').textContent,
      box: { x: box.x, y: box.y, width: box.width, height: box.height },
      headlinePx: px('verdict-headline'),
      whoPx: px('verdict-who'),
      rgb: { r, g, b },
      // What a tap in the middle of the screen would hit.
      centreIsVerdict: v.contains(document.elementFromPoint(innerWidth / 2, innerHeight / 2)),
      feedback: structuredClone(window.__feedback),
    };
  });
}

/** The verdict covers the whole 412×915 screen with huge type. */
function assertFullScreen(v) {
  for (const [key, want] of Object.entries({ x: 0, y: 0, width: W, height: H })) {
    assert.ok(Math.abs(v.box[key] - want) <= 1, `verdict box ${key} ${v.box[key]} ≈ ${want}: ${JSON.stringify(v.box)}`);
  }
  assert.ok(v.centreIsVerdict, 'the verdict is on top at the centre of the screen');
  assert.ok(v.headlinePx >= 40, `headline ${v.headlinePx}px ≥ 40px`);
}

/** Saves a screenshot once the verdict's flash animation has ended (its final colours). */
async function settledScreenshot(page, name) {
  await page.waitForFunction(() => document.getAnimations().every((a) => a.playState !== 'running'));
  await screenshot(page, name);
}

/** Whether the verdict screen is up (it covers the camera). */
function screenUp(page) {
  return page.evaluate(() => document.getElementById('verdict').classList.contains('verdict--screen'));
}

test('each verdict fills the screen in its colour, with its own tone and vibration; a tap or a timeout returns to the camera', async () => {
  const { context, page, errors } = await phonePage('Sunlight phone');
  try {
    // The steward's first touch: browsers allow sound and vibration only after one.
    await page.tap('.bar__title');
    let n = 0;
    let fb = { tones: 0, vibrations: 0 };
    /** The tones and vibrations of the verdict just shown. */
    const newFeedback = (v) => {
      const out = { tones: v.feedback.tones.slice(fb.tones), vibrations: v.feedback.vibrations.slice(fb.vibrations) };
      fb = { tones: v.feedback.tones.length, vibrations: v.feedback.vibrations.length };
      return out;
    };

    // ADMIT: green, one high beep, one short buzz.
    await typeCode(page, tickets.grace.qrText);
    let v = await verdictNumber(page, ++n, errors);
    assert.equal(v.verdict, 'admit');
    assert.equal(v.who, 'Grace Hopper');
    assertFullScreen(v);
    assert.ok(v.whoPx >= 32, `holder name ${v.whoPx}px ≥ 32px`);
    assert.ok(v.rgb.g > v.rgb.r + 40 && v.rgb.g > v.rgb.b + 40, `admit is green: ${JSON.stringify(v.rgb)}`);
    assert.equal(v.feedback.contexts, 1);
    const admitFeedback = newFeedback(v);
    assert.deepEqual(admitFeedback, { tones: [[1320, 'sine']], vibrations: [[80]] });
    await settledScreenshot(page, 'verdict-01-admit');
    // A tap returns to the camera: the camera preview is what the centre of the top of the screen shows.
    await page.tap('#verdict');
    assert.equal(await screenUp(page), false);
    assert.equal(
      await page.evaluate(() => {
        const r = document.querySelector('.camera').getBoundingClientRect();
        return document.querySelector('.camera').contains(document.elementFromPoint(r.x + r.width / 2, r.y + 10));
      }),
      true,
    );

    // ALREADY USED: red, two square beeps, two buzzes; "Admit anyway" (a supervisor's) is reachable on top.
    await unlockSupervisor(page, issuer, 'Desk Supervisor');
    await typeCode(page, tickets.grace.qrText);
    v = await verdictNumber(page, ++n, errors);
    assert.equal(v.verdict, 'already_used');
    assert.equal(v.headline, 'ALREADY USED');
    assertFullScreen(v);
    assert.ok(v.rgb.r > v.rgb.g + 80 && v.rgb.r > v.rgb.b + 80, `already used is red: ${JSON.stringify(v.rgb)}`);
    const usedFeedback = newFeedback(v);
    assert.deepEqual(usedFeedback, { tones: [[660, 'square'], [660, 'square']], vibrations: [[120, 80, 120]] });
    assert.notDeepEqual(usedFeedback.tones, admitFeedback.tones);
    const overrideOnTop = await page.evaluate(() => {
      const b = document.querySelector('#override-form button');
      const r = b.getBoundingClientRect();
      return b === document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
    });
    assert.equal(overrideOnTop, true, '"Admit anyway" is on top of the verdict screen');
    await settledScreenshot(page, 'verdict-02-already-used');
    // Left alone, the verdict screen goes back to the camera by itself after a few seconds.
    await page.waitForFunction(() => !document.getElementById('verdict').classList.contains('verdict--screen'), null, {
      timeout: 15_000,
    });

    // REFUSED: red, a low buzz tone, one long vibration.
    await typeCode(page, 'TK1:NOT A TICKET');
    v = await verdictNumber(page, ++n, errors);
    assert.equal(v.verdict, 'refused');
    assert.equal(v.headline, 'REFUSED');
    assertFullScreen(v);
    assert.ok(v.rgb.r > v.rgb.g + 80 && v.rgb.r > v.rgb.b + 80, `refused is red: ${JSON.stringify(v.rgb)}`);
    const refusedFeedback = newFeedback(v);
    assert.deepEqual(refusedFeedback, { tones: [[220, 'sawtooth']], vibrations: [[400]] });
    assert.notDeepEqual(refusedFeedback.tones, admitFeedback.tones);
    await settledScreenshot(page, 'verdict-03-refused');

    // UNPAID: purple, the amount huge, "Paid — admit" on top of the verdict screen.
    await typeCode(page, tickets.hedy.qrText);
    v = await verdictNumber(page, ++n, errors);
    assert.equal(v.verdict, 'payment_due');
    assert.equal(v.headline, 'UNPAID');
    assert.equal(v.who, 'Hedy Lamarr');
    assertFullScreen(v);
    assert.ok(v.rgb.r > v.rgb.g + 40 && v.rgb.b > v.rgb.g + 40, `unpaid is purple: ${JSON.stringify(v.rgb)}`);
    assert.deepEqual(newFeedback(v), {
      tones: [[880, 'sine'], [1100, 'sine'], [880, 'sine']],
      vibrations: [[80, 60, 80, 60, 80]],
    });
    const amountPx = await page.evaluate(() => parseFloat(getComputedStyle(document.getElementById('verdict-amount')).fontSize));
    assert.ok(amountPx >= 40, `amount ${amountPx}px ≥ 40px`);
    const paidOnTop = await page.evaluate(() => {
      const b = document.getElementById('paid-admit');
      const r = b.getBoundingClientRect();
      return b === document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
    });
    assert.equal(paidOnTop, true, '"Paid — admit" is on top of the verdict screen');
    await settledScreenshot(page, 'verdict-04-unpaid');
    await page.tap('#paid-admit');
    v = await verdictNumber(page, ++n, errors);
    assert.equal(v.headline, 'ADMIT — PAID');
    assertFullScreen(v);
    assert.deepEqual(newFeedback(v), { tones: [[1320, 'sine']], vibrations: [[80]] });
    await settledScreenshot(page, 'verdict-05-paid-admit');

    // EXIT: the gate scans exits now.
    await page.selectOption('#kind', 'exit');
    await page.waitForFunction(() => document.getElementById('kind').value === 'exit');
    await typeCode(page, tickets.grace.qrText);
    v = await verdictNumber(page, ++n, errors);
    assert.equal(v.verdict, 'exit');
    assert.equal(v.headline, 'EXIT');
    assertFullScreen(v);
    assert.ok(v.rgb.b > v.rgb.r + 40 && v.rgb.b > v.rgb.g + 40, `exit is blue: ${JSON.stringify(v.rgb)}`);
    assert.deepEqual(newFeedback(v), { tones: [[1320, 'sine']], vibrations: [[80]] });
    await settledScreenshot(page, 'verdict-06-exit');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('no AudioContext, a suspended one, or no vibration: the verdict still shows, without errors', async () => {
  for (const [name, recorder] of [
    ['no-audio', { audio: 'none', vibrate: false }],
    ['suspended-audio', { audio: 'suspended', vibrate: true }],
  ]) {
    const { context, page, errors } = await phonePage(`Quiet phone (${name})`, recorder);
    try {
      await page.tap('.bar__title');
      await typeCode(page, tickets.mary.qrText);
      const v = await verdictNumber(page, 1, errors);
      assert.equal(v.verdict === 'admit' || v.verdict === 'already_used', true, `${name}: ${v.verdict}`);
      assertFullScreen(v);
      // Nothing played: there was no running context to play on.
      assert.deepEqual(v.feedback.tones, [], name);
      if (recorder.vibrate) assert.equal(v.feedback.vibrations.length, 1, name);
      assert.deepEqual(errors, [], name);
    } finally {
      await context.close();
    }
  }
});
