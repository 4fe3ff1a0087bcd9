// Phone benchmark of the PWA scanner: the system Chromium in mobile emulation (412×915 CSS px,
// deviceScaleFactor 2.625, isMobile, hasTouch) with 4× CPU throttling (CDP
// `Emulation.setCPUThrottlingRate {rate: 4}`), a fake camera and a real issuer. Measures
//
//   cold_start_ms       a new browser process on a profile whose service worker, caches and IndexedDB are
//                       set up, offline: navigation start → the first verdict from the camera drawn on
//                       screen (the page's own clock, `data-shown-at` of the verdict panel);
//   frame_to_verdict_ms camera frame taken from the video → its verdict drawn (`data-frame-ms`): the
//                       camera plays tickets one at a time, each for 0.5 s between blank frames, so every
//                       verdict belongs to the first frame of its ticket.
//
// and prints one JSON object (bench/report.py reads it as bench/out/mobile.json; scripts/bench.sh runs it):
//
//   node web/tests/mobile-bench.mjs [--cold N] [--frames N]     # defaults: 5 cold starts, 30 frames
//
// Chromium applies the CPU throttling to the page's main thread only (it refuses the rate for worker
// targets), so the engine Worker (decode, verification, IndexedDB) runs at the machine's full speed; the
// JSON says so and gives the engine's own share of each verdict (`engine_ms`). Needs the issuer binary
// (TICKETS_PROFILE=release for release builds, as the bench uses) and the PWA's wasm (scripts/web-build.sh).
// web/tests/mobile.test.mjs runs the same flow once and checks the verdicts, not the times.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

import {
  blankLumaFrame,
  buyTicket,
  chromiumFlags,
  chromiumPath,
  collectPageErrors,
  createDevice,
  fakeCameraFlags,
  phoneEmulation,
  qrLumaFrame,
  startIssuer,
  throttleCpu,
  writeY4m,
} from './harness.mjs';

export const CPU_THROTTLING = 4;
const WAIT_MS = 60_000;

/**
 * Starts an issuer, buys the tickets and writes the two camera videos:
 *   `steady`: Ada Lovelace's ticket, always in view (setup and cold starts);
 *   `rotation`: four other tickets in turn, 0.5 s each with 0.5 s of blank paper between (2 frames/s),
 *               so a ticket comes back every 4 s, after the engine's 2.5 s repeat window.
 * Returns {issuer, work, device, tickets, steady, rotation, cleanup()}.
 */
export async function prepare() {
  const issuer = await startIssuer();
  const work = mkdtempSync(join(tmpdir(), 'tickets-mobile-'));
  try {
    const names = ['Ada Lovelace', 'Alan Turing', 'Grace Hopper', 'Edsger Dijkstra', 'Frances Allen'];
    const tickets = [];
    for (const name of names) tickets.push(await buyTicket(issuer, name));
    const device = await createDevice(issuer, 'Phone benchmark');
    const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumFlags });
    let frames;
    try {
      frames = [];
      for (const t of tickets) frames.push(await qrLumaFrame(browser, Buffer.from(await (await fetch(t.pngUrl)).arrayBuffer())));
    } finally {
      await browser.close();
    }
    const blank = blankLumaFrame();
    const steady = writeY4m(join(work, 'steady.y4m'), [frames[0]], 30);
    const rotation = writeY4m(join(work, 'rotation.y4m'), frames.slice(1).flatMap((f) => [f, blank]), 2);
    return {
      issuer,
      work,
      device,
      tickets,
      steady,
      rotation,
      async cleanup() {
        await issuer.stop();
        if (!process.env.TICKETS_KEEP_DATA) rmSync(work, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await issuer.stop();
    throw e;
  }
}

/**
 * A new Chromium process on `profileDir` (kept between launches: service worker, caches, IndexedDB), in
 * phone emulation, with the camera playing `y4m` and the page's CPU throttled. Every verdict the page draws
 * is collected in `window.__verdicts` (the verdict panel's data attributes). Returns {context, page, errors}.
 */
export async function launchPhone(profileDir, y4m, { offline = false } = {}) {
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: chromiumPath,
    headless: true,
    args: [...chromiumFlags, ...fakeCameraFlags(y4m)],
    ...phoneEmulation,
  });
  await context.addInitScript(() => {
    window.__verdicts = [];
    document.addEventListener('DOMContentLoaded', () => {
      const panel = document.getElementById('verdict');
      if (!panel) return;
      // `data-count` is written last, once the verdict's frame is drawn.
      new MutationObserver(() => {
        const n = Number(panel.dataset.count ?? 0);
        if (n > window.__verdicts.length) {
          window.__verdicts.push({
            ...panel.dataset,
            headline: document.getElementById('verdict-headline').textContent,
            who: document.getElementById('verdict-who').textContent,
            detail: document.getElementById('verdict-detail').textContent,
          });
        }
      }).observe(panel, { attributes: true, attributeFilter: ['data-count'] });
    });
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = collectPageErrors(page);
  // The main thread's speed before and after throttling (the same loop on the blank first page), to
  // report the slowdown Chromium actually applied.
  const unthrottledMs = Math.min(await busyLoopMs(page), await busyLoopMs(page));
  await throttleCpu(page, CPU_THROTTLING);
  if (offline) await context.setOffline(true);
  return { context, page, errors, unthrottledMs };
}

/** Waits until the page has drawn `n` verdicts; returns them all. */
export async function verdicts(page, n, errors = []) {
  try {
    await page.waitForFunction((want) => window.__verdicts?.length >= want, n, { timeout: WAIT_MS, polling: 100 });
  } catch (e) {
    const seen = await page.evaluate(() => window.__verdicts).catch(() => '?');
    const status = await page.textContent('#status-line').catch(() => '?');
    const notice = await page.textContent('#notice').catch(() => '?');
    throw new Error(`${n} verdicts never came: ${e.message}\nseen: ${JSON.stringify(seen)}\nstatus: ${status}\nnotice: ${notice}\n${errors.join('\n')}`);
  }
  return page.evaluate(() => window.__verdicts);
}

/** The time of a fixed busy loop on the page's main thread. */
async function busyLoopMs(page) {
  return page.evaluate(() => {
    const t = performance.now();
    let x = 0;
    for (let i = 0; i < 1e8; i++) x += i % 7;
    return x < 0 ? -1 : performance.now() - t;
  });
}

/** Setup from the dashboard's link under emulation: the camera's ticket is admitted, the service worker
 *  takes control. Returns the first verdict. */
export async function setupPhone(env, profileDir) {
  const { context, page, errors } = await launchPhone(profileDir, env.steady);
  try {
    await page.goto(env.device.setup_url);
    const [first] = await verdicts(page, 1, errors);
    await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: WAIT_MS });
    return { first, errors: [...errors] };
  } finally {
    await context.close();
  }
}

/** One cold start: a new browser process, offline, the steady camera; returns its first verdict (with
 *  `shownAt`, ms since navigation start) and the measured main-thread slowdown. */
export async function coldStart(env, profileDir) {
  const { context, page, errors, unthrottledMs } = await launchPhone(profileDir, env.steady, { offline: true });
  try {
    await page.goto(new URL('/scanner/', env.issuer.url).href);
    const [first] = await verdicts(page, 1, errors);
    const slowdown = Math.min(await busyLoopMs(page), await busyLoopMs(page)) / unthrottledMs;
    return { first, slowdown, errors: [...errors] };
  } finally {
    await context.close();
  }
}

/** The rotation camera, offline: `n` camera verdicts after a first (warm-up) one. */
export async function frameRun(env, profileDir, n) {
  const { context, page, errors } = await launchPhone(profileDir, env.rotation, { offline: true });
  try {
    await page.goto(new URL('/scanner/', env.issuer.url).href);
    const all = await verdicts(page, n + 1, errors);
    return { all, measured: all.slice(1, n + 1), errors: [...errors] };
  } finally {
    await context.close();
  }
}

/** Median and nearest-rank p99 of `values`, rounded to 0.1 ms. */
export function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (v) => Math.round(v * 10) / 10;
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median: round(median), p99: round(at(0.99)), runs: sorted.length };
}

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

async function main() {
  const coldRuns = arg('--cold', 5);
  const frames = arg('--frames', 30);
  const env = await prepare();
  try {
    const profile = join(env.work, 'profile');
    console.error('mobile bench: setup (service worker install)');
    const setup = await setupPhone(env, profile);
    if (setup.first.verdict !== 'admit' || setup.first.who !== 'Ada Lovelace') {
      throw new Error(`setup did not admit Ada Lovelace: ${JSON.stringify(setup.first)}`);
    }
    const cold = [];
    const slowdowns = [];
    for (let i = 0; i < coldRuns; i++) {
      console.error(`mobile bench: cold start ${i + 1}/${coldRuns}`);
      const run = await coldStart(env, profile);
      if (run.first.source !== 'camera') throw new Error(`cold start verdict not from the camera: ${JSON.stringify(run.first)}`);
      cold.push(Number(run.first.shownAt));
      slowdowns.push(run.slowdown);
    }
    console.error(`mobile bench: ${frames} camera frames → verdicts`);
    const run = await frameRun(env, profile, frames);
    const frameMs = run.measured.map((v) => Number(v.frameMs));
    if (frameMs.some((v) => !Number.isFinite(v))) throw new Error(`a camera verdict without its frame time: ${JSON.stringify(run.measured)}`);
    const kinds = {};
    for (const v of run.measured) kinds[v.verdict] = (kinds[v.verdict] ?? 0) + 1;
    const result = {
      cold_start_ms: { ...stats(cold), values: cold },
      frame_to_verdict_ms: stats(frameMs),
      engine_ms: stats(run.measured.map((v) => Number(v.engineMs))),
      viewport: {
        width: phoneEmulation.viewport.width,
        height: phoneEmulation.viewport.height,
        deviceScaleFactor: phoneEmulation.deviceScaleFactor,
        isMobile: phoneEmulation.isMobile,
        hasTouch: phoneEmulation.hasTouch,
      },
      cpu_throttling: CPU_THROTTLING,
      cpu_throttling_scope:
        'page main thread only (CDP Emulation.setCPUThrottlingRate); the engine Worker (decode, verify, IndexedDB) runs unthrottled',
      main_thread_slowdown_measured: Math.round(stats(slowdowns).median * 100) / 100,
      frame_verdicts: kinds,
      method:
        'cold start: new Chromium process on a set-up profile (service worker, cache, IndexedDB), offline, navigation start → first camera verdict drawn; frame: video frame taken → its verdict drawn (rAF), one ticket in view at a time',
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await env.cleanup();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
