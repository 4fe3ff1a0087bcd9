// Shared harness of the browser tests: a real issuer process on a free loopback port with its own data
// directory, the system Chromium driven by playwright-core, screenshots, and the project's CLI binaries.
// Nothing here is mocked: tests talk HTTP to the same binary `scripts/run.sh` starts.
//
// Binaries come from $CARGO_TARGET_DIR/debug (scripts/web-test.sh builds them first); set
// TICKETS_PROFILE=release to use release builds instead.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const targetDir =
  process.env.CARGO_TARGET_DIR ?? join(process.env.TICKETS_CACHE ?? join(homedir(), '.cache', 'tickets'), 'target');
const profile = process.env.TICKETS_PROFILE ?? 'debug';
export const artifactsDir = process.env.TICKETS_ARTIFACTS ?? join(repoRoot, 'web', 'tests', 'artifacts');
export const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Absolute path of a workspace binary (`issuer`, `scanner`, ...) in the Cargo target directory. */
export function binPath(name) {
  const path = join(targetDir, profile, name);
  if (!existsSync(path)) {
    throw new Error(`${path} does not exist: build it first (scripts/web-test.sh does)`);
  }
  return path;
}

/**
 * Runs a command to completion. Resolves with {code, stdout, stderr}; never rejects on a non-zero exit
 * (tests assert exit codes themselves, e.g. `scanner verify` exits 1 for a refused ticket).
 */
export function run(command, args, { cwd, env, input } = {}) {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolveRun({ code, stdout, stderr }));
    if (input !== undefined) {
      // A command that exits without reading all its input must not fail the test with EPIPE.
      child.stdin.on('error', () => {});
      child.stdin.end(input);
    }
  });
}

/**
 * Starts `issuer serve` on 127.0.0.1 with a fresh data directory (the demo event seeded unless
 * `demo: false`) and waits until /healthz answers.
 *
 * Returns {url, adminToken, dataDir, process, log(), stop()}. `stop()` sends SIGTERM, waits for the exit
 * and removes the data directory (unless `keepData` or TICKETS_KEEP_DATA is set).
 *
 * `args` are extra `issuer serve` flags; `env` extra environment variables.
 */
export async function startIssuer({ args = [], env = {}, demo = true, keepData = false, webDir } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'tickets-web-'));
  const serveArgs = [
    'serve',
    '--data-dir',
    dataDir,
    '--bind',
    '127.0.0.1:0',
    '--web-dir',
    webDir ?? join(repoRoot, 'web'),
    ...(demo ? ['--demo'] : []),
    ...args,
  ];
  const child = spawn(binPath('issuer'), serveArgs, {
    env: { RUST_LOG: 'info,sqlx=warn', ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`issuer did not report its address in 60 s:\n${output}`)), 60_000);
    const onData = (d) => {
      output += d;
      // main.rs prints exactly one "listening on http://ADDR" line to stdout once the socket is bound.
      const m = /listening on (http:\/\/[^\s]+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d) => (output += d));
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`issuer exited (code ${code}, signal ${signal}) before listening:\n${output}`));
    });
  });
  await waitForHealthy(url);
  const adminToken = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  let stopped = false;
  return {
    url,
    adminToken,
    dataDir,
    process: child,
    /** Everything the issuer wrote to stdout and stderr so far (for failure messages). */
    log: () => output,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killTimer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killTimer);
      }
      if (!keepData && !process.env.TICKETS_KEEP_DATA) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function waitForHealthy(url) {
  const deadline = Date.now() + 30_000;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return;
      lastError = new Error(`/healthz answered ${res.status}`);
    } catch (e) {
      lastError = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`issuer at ${url} never became healthy: ${lastError}`);
}

/** fetch() against the admin API with the issuer's bearer token; JSON bodies are encoded for you. */
export async function adminFetch(issuer, path, { method = 'GET', json, headers = {} } = {}) {
  const init = { method, headers: { authorization: `Bearer ${issuer.adminToken}`, ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers['content-type'] = 'application/json';
  }
  return fetch(`${issuer.url}${path}`, init);
}

/** Flags that work for headless Chromium on these machines (see /work/shared/wasm-toolchain.md). */
export const chromiumFlags = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Flags for a fake camera that plays `y4mFile` (a 1-frame Y4M loops) and grants the permission prompt.
 * Pass the result as `args` to launchBrowser.
 */
export function fakeCameraFlags(y4mFile) {
  return [
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    `--use-file-for-fake-video-capture=${y4mFile}`,
  ];
}

/** Launches the system Chromium headless with the working flags plus `args`. */
export async function launchBrowser({ args = [], headless = true } = {}) {
  if (!existsSync(chromiumPath)) {
    throw new Error(`${chromiumPath} is missing: apt-get install chromium (never npx playwright install)`);
  }
  return chromium.launch({ executablePath: chromiumPath, headless, args: [...chromiumFlags, ...args] });
}

/**
 * Saves a full-page screenshot as $TICKETS_ARTIFACTS/<name>.png (default web/tests/artifacts/, git-ignored)
 * and returns its path.
 */
export async function screenshot(page, name) {
  mkdirSync(artifactsDir, { recursive: true });
  const path = join(artifactsDir, `${name.replace(/[^A-Za-z0-9._-]/g, '_')}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * Collects uncaught page errors and console errors of `page` so a test can assert there were none
 * (a broken script must fail the test, not pass silently).
 */
export function collectPageErrors(page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  return errors;
}

/**
 * Runs axe-core (npm) in `page` against WCAG 2.x A and AA rules and returns the violations as
 * [{id, impact, help, targets}] (empty when the page passes). Needs JavaScript enabled in the page's context.
 */
export async function accessibilityViolations(page) {
  const source = readFileSync(join(repoRoot, 'web', 'tests', 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
  // Evaluated through the DevTools protocol, so the page's Content-Security-Policy does not block it.
  await page.evaluate(source);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }),
  );
  return result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    targets: v.nodes.map((n) => n.target.join(' ')),
  }));
}
