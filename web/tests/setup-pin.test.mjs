// The PWA's setup link pins the keyring and refuses plain http to other machines: both checks are
// scanner-core's (through the wasm build), the same code as `scanner init --setup`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

import { adminFetch, collectPageErrors, launchBrowser, startIssuer } from './harness.mjs';

const EVENT = 1; // the demo event

let issuer;
before(async () => {
  issuer = await startIssuer();
});
after(async () => {
  await issuer?.stop();
});

async function newDevice() {
  const created = await adminFetch(issuer, '/admin/v1/devices', { method: 'POST', json: { name: 'Pin test', event: EVENT } });
  assert.equal(created.status, 201);
  return created.json();
}

function decode(link) {
  const [base, payload] = link.split('#setup=');
  return { base, setup: JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) };
}

function encode(base, setup) {
  return `${base}#setup=${Buffer.from(JSON.stringify(setup)).toString('base64url')}`;
}

async function noticeAfterSetup(link, requests) {
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext();
    // Any request to the foreign host is recorded (and answered, so nothing hangs).
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('http://tickets.example.test')) {
        requests.push(url);
        return route.fulfill({ status: 200, body: '{}' });
      }
      return route.continue();
    });
    const page = await context.newPage();
    collectPageErrors(page);
    await page.goto(link);
    await page.waitForFunction(() => /Setup failed/.test(document.getElementById('notice').textContent), null, {
      timeout: 30_000,
    });
    return await page.textContent('#notice');
  } finally {
    await browser.close();
  }
}

test('the dashboard link carries the SHA-256 of the keyring the issuer serves', async () => {
  const device = await newDevice();
  const { setup } = decode(device.setup_url);
  assert.equal(setup.v, 2);
  const keyring = await (await fetch(`${issuer.url}/v1/scanner/keyring`)).text();
  assert.equal(setup.keyring_sha256, createHash('sha256').update(keyring).digest('hex'));
});

test('a setup link whose keyring pin does not match is refused', async () => {
  const device = await newDevice();
  const { base, setup } = decode(device.setup_url);
  const notice = await noticeAfterSetup(encode(base, { ...setup, keyring_sha256: '0'.repeat(64) }), []);
  assert.match(notice, /does not match the pinned SHA-256/);
});

test('a setup link to a plain-http server on another machine is refused before any request', async () => {
  const device = await newDevice();
  const { base, setup } = decode(device.setup_url);
  const requests = [];
  const notice = await noticeAfterSetup(encode(base, { ...setup, server: 'http://tickets.example.test' }), requests);
  assert.match(notice, /plain http/);
  assert.deepEqual(requests, []);
});
