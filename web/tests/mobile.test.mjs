// The phone benchmark's flow (mobile-bench.mjs) once, as a test of correctness under mobile emulation
// (412×915, deviceScaleFactor 2.625, isMobile, hasTouch) with 4× CPU throttling: setup from the dashboard's
// link admits the camera's ticket with the holder's name, a cold start offline from the service worker
// finds the same ticket already used, and tickets coming into view one at a time are each decided once,
// with the frame they came from named. Times are measured by `node web/tests/mobile-bench.mjs` and judged
// in the bench report, never here.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { phoneEmulation, screenshot } from './harness.mjs';
import { coldStart, frameRun, launchPhone, prepare, setupPhone, verdicts } from './mobile-bench.mjs';

let env;

before(async () => {
  env = await prepare();
});

after(async () => {
  await env?.cleanup();
});

/** Console and page errors, minus the network failures that being offline is supposed to cause. */
function unexpected(errors) {
  return errors.filter((e) => !/ERR_INTERNET_DISCONNECTED|Failed to fetch|Failed to load resource/.test(e));
}

test('under phone emulation and 4× CPU throttling: setup admits the holder, a cold start offline decides from the camera, each ticket coming into view is decided once', async () => {
  const profile = join(env.work, 'profile');

  const setup = await setupPhone(env, profile);
  assert.equal(setup.first.verdict, 'admit');
  assert.equal(setup.first.headline, 'ADMIT');
  assert.equal(setup.first.who, 'Ada Lovelace');
  assert.equal(setup.first.source, 'camera');
  assert.equal(setup.first.path, 'offline');
  assert.deepEqual(unexpected(setup.errors), []);

  // A new browser process, offline: the service worker starts the app, the camera's ticket is known.
  const cold = await coldStart(env, profile);
  assert.equal(cold.first.verdict, 'already_used');
  assert.equal(cold.first.source, 'camera');
  assert.match(cold.first.detail, /^Already used at Main entrance, .* \(this scanner\)$/);
  assert.ok(Number.isFinite(Number(cold.first.shownAt)), `shown-at is a time: ${JSON.stringify(cold.first)}`);
  assert.deepEqual(unexpected(cold.errors), []);

  // Four tickets in turn, each decided once as it comes into view: the warm-up verdict and the next three
  // admit the four holders (the rotation starts at any of them), then the first comes round again and is
  // already used.
  const run = await frameRun(env, profile, 4);
  const order = run.all.map((v) => [v.verdict, v.who]);
  assert.deepEqual(
    run.all.slice(0, 4).map((v) => v.who).sort(),
    ['Alan Turing', 'Edsger Dijkstra', 'Frances Allen', 'Grace Hopper'],
    JSON.stringify(order),
  );
  assert.deepEqual(run.all.slice(0, 4).map((v) => v.verdict), ['admit', 'admit', 'admit', 'admit'], JSON.stringify(order));
  assert.equal(run.all[4].verdict, 'already_used', JSON.stringify(order));
  for (const v of run.measured) {
    assert.equal(v.source, 'camera');
    assert.ok(Number.isFinite(Number(v.frameMs)) && Number(v.frameMs) >= 0, `frame time recorded: ${v.frameMs}`);
  }
  assert.deepEqual(unexpected(run.errors), []);
});

test('the verdict screen covers the emulated phone screen and the app is in mobile layout', async () => {
  const { context, page, errors } = await launchPhone(join(env.work, 'profile'), env.steady, { offline: true });
  try {
    await page.goto(new URL('/scanner/', env.issuer.url).href);
    await verdicts(page, 1, errors);
    const seen = await page.evaluate(() => ({
      width: innerWidth,
      height: innerHeight,
      dpr: devicePixelRatio,
      touch: navigator.maxTouchPoints > 0,
      box: document.getElementById('verdict').getBoundingClientRect().toJSON(),
    }));
    assert.equal(seen.width, phoneEmulation.viewport.width);
    assert.equal(seen.height, phoneEmulation.viewport.height);
    assert.equal(seen.dpr, phoneEmulation.deviceScaleFactor);
    assert.equal(seen.touch, true);
    assert.ok(Math.abs(seen.box.width - seen.width) <= 1 && Math.abs(seen.box.height - seen.height) <= 1, JSON.stringify(seen));
    await screenshot(page, 'mobile-01-cold-start-verdict');
    assert.deepEqual(unexpected(errors), []);
  } finally {
    await context.close();
  }
});
