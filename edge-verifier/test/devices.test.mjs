// End-to-end under workerd: the Worker pulls the issuer's device list (each device token's hash with its
// event) with its read-only edge token, and checks every request's token against that list and the event
// the request is for. The issuer is a small HTTP server in this test that answers what the issuer answers
// (issuer/src/edge.rs `GET /v1/edge/devices`, issuer/src/scanner.rs `GET /v1/scanner/revocations`; the
// issuer's own HTTP test issuer/tests/device_scope.rs checks that it answers this shape).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { createHash } from "node:crypto";
import { startEdge, redeem, post, device, fixtures, BASE } from "./helpers.mjs";

const EDGE_TOKEN = "edge-token-for-the-worker";
const REFRESH_MS = 300;
const OTHER_EVENT = fixtures.event + 1;
const sha256 = (text) => createHash("sha256").update(text).digest("hex");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The issuer's two edge endpoints. `devices`: [{ token, event }] (active ones); `down`: answer 503. */
async function fakeIssuer() {
  const issuer = { devices: [], down: false, calls: [] };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://issuer");
    issuer.calls.push({ method: req.method, path: url.pathname, authorization: req.headers.authorization });
    const json = (status, body) => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(typeof body === "string" ? body : JSON.stringify(body));
    };
    if (issuer.down) return json(503, { error: { code: "internal", message: "down for the test" } });
    // The issuer accepts the edge token on exactly these two reads.
    if (req.headers.authorization !== `Bearer ${EDGE_TOKEN}`) {
      return json(401, { error: { code: "unauthorized", message: "missing or invalid bearer token" } });
    }
    if (req.method === "GET" && url.pathname === "/v1/edge/devices") {
      const devices = issuer.devices.map(({ token, event }) => ({ token_hash: sha256(token), event }));
      return json(200, { devices, generated_at: Math.floor(Date.now() / 1000) });
    }
    if (req.method === "GET" && url.pathname === "/v1/scanner/revocations") return json(200, fixtures.revocations);
    return json(404, { error: { code: "not_found", message: "no route" } });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  issuer.url = `http://127.0.0.1:${server.address().port}`;
  issuer.close = () => new Promise((resolve) => server.close(resolve));
  return issuer;
}

/** A Worker that knows no token by itself: every device comes from the issuer's list. */
async function edgeWithIssuer(issuer) {
  return startEdge({
    SCANNER_TOKEN_HASHES: "",
    ISSUER_URL: issuer.url,
    ISSUER_TOKEN: EDGE_TOKEN,
    REVOCATIONS_REFRESH_MS: String(REFRESH_MS),
  });
}

const cleanups = [];
after(async () => {
  for (const c of cleanups) await c();
});

async function setup() {
  const issuer = await fakeIssuer();
  const mf = await edgeWithIssuer(issuer);
  cleanups.push(() => mf.dispose(), () => issuer.close());
  return { issuer, mf };
}

async function get(mf, pathName, token) {
  const resp = await mf.dispatchFetch(BASE + pathName, { headers: { authorization: `Bearer ${token}` } });
  const text = await resp.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: resp.status, body, text };
}

function sync(mf, token, event) {
  return post(mf, `/v1/sync?event=${event}`, new Uint8Array([0x42, 0x42]), {
    token,
    headers: { "content-type": "application/octet-stream" },
  });
}

test("a device token from the issuer's list works at its own event only (403 at another)", async () => {
  const { issuer, mf } = await setup();
  const otherDoor = "door-token-of-another-event";
  issuer.devices = [
    { token: fixtures.token, event: fixtures.event },
    { token: otherDoor, event: OTHER_EVENT },
  ];

  const ok = await redeem(mf, { qr_text: fixtures.tickets.good[0], device: device(0xd1) });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.body.verdict, "admit");

  // The other event's token at this event: refused before any ticket is looked at.
  const foreign = await redeem(mf, { qr_text: fixtures.tickets.good[1], device: device(0xd2) }, { token: otherDoor });
  assert.equal(foreign.status, 403, foreign.text);
  assert.equal(foreign.body.error.code, "forbidden");
  // This event's token asking as if it scanned the other event.
  const elsewhere = await redeem(mf, { qr_text: fixtures.tickets.good[1], event: OTHER_EVENT });
  assert.equal(elsewhere.status, 403, elsewhere.text);
  // The ticket was not touched by either: it is still admitted here.
  const still = await redeem(mf, { qr_text: fixtures.tickets.good[1], device: device(0xd3) });
  assert.equal(still.body.verdict, "admit", still.text);

  // Sync, report and manifest are scoped the same way.
  assert.equal((await sync(mf, otherDoor, fixtures.event)).status, 403);
  assert.equal((await sync(mf, fixtures.token, OTHER_EVENT)).status, 403);
  assert.notEqual((await sync(mf, fixtures.token, fixtures.event)).status, 403, "own event: past authentication");
  assert.equal((await get(mf, `/v1/report?event=${OTHER_EVENT}`, fixtures.token)).status, 403);
  assert.equal((await get(mf, `/v1/report?event=${fixtures.event}`, fixtures.token)).status, 200);
  assert.equal((await get(mf, `/v1/scanner/events/${OTHER_EVENT}/manifest`, fixtures.token)).status, 403);
  // The revocation list is not about one event: any listed device may read it, unless it names another.
  assert.equal((await get(mf, "/v1/scanner/revocations", otherDoor)).status, 200);
  assert.equal((await get(mf, `/v1/scanner/revocations?event=${fixtures.event}`, otherDoor)).status, 403);

  // An unknown token: 401, as before.
  assert.equal((await redeem(mf, { qr_text: fixtures.tickets.good[2] }, { token: "nobody" })).status, 401);

  // The Worker asked the issuer with its edge token, for the device list and the revocation list only.
  assert.ok(issuer.calls.some((c) => c.path === "/v1/edge/devices"), JSON.stringify(issuer.calls));
  for (const c of issuer.calls) {
    assert.equal(c.authorization, `Bearer ${EDGE_TOKEN}`);
    assert.equal(c.method, "GET");
    assert.ok(["/v1/edge/devices", "/v1/scanner/revocations"].includes(c.path), c.path);
  }
});

test("a device revoked at the issuer is refused after the next pull; an issuer outage keeps the last good list", async () => {
  const { issuer, mf } = await setup();
  const door = "door-token-revoked-later";
  issuer.devices = [{ token: door, event: fixtures.event }];
  const scan = (i) => redeem(mf, { qr_text: fixtures.tickets.good[i], device: device(0xe0 + i) }, { token: door });

  assert.equal((await scan(3)).status, 200);

  // The issuer goes down: the device keeps working on the list pulled before.
  issuer.down = true;
  await sleep(REFRESH_MS + 100);
  const during = await scan(4);
  assert.equal(during.status, 200, during.text);
  const pulls = issuer.calls.filter((c) => c.path === "/v1/edge/devices").length;
  assert.ok(pulls >= 2, `the Worker asked again while the issuer was down (${pulls} pulls)`);

  // Back up, with the device revoked: refused once the next pull has landed (at most one interval).
  issuer.down = false;
  issuer.devices = [];
  await sleep(REFRESH_MS + 100);
  const after = await scan(5);
  assert.equal(after.status, 401, after.text);
  assert.equal(after.body.error.code, "unauthorized");
  assert.equal((await sync(mf, door, fixtures.event)).status, 401);

  // Not pulled again within the interval: requests do not each call the issuer.
  const before = issuer.calls.length;
  for (let i = 0; i < 5; i++) await scan(5);
  assert.ok(issuer.calls.length - before <= 2, `${issuer.calls.length - before} calls for 5 requests`);
});
