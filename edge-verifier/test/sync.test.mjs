// End-to-end: the edge as a redemption-log sync server, with the real `scanner` CLI as the device.
// The Worker runs under workerd (Miniflare) listening on a local port; the CLI is the binary cargo built
// (scripts/edge-test.sh builds it; SCANNER_BIN overrides the path).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startEdge, redeem, device, fixtures, BASE, scanner } from "./helpers.mjs";

const good = (i) => fixtures.tickets.good[i];
const ref = (i) => fixtures.good_refs[i];

let mf;
let url;
const dirs = [];

before(async () => {
  mf = await startEdge({}, { port: 0, kvNamespaces: ["CONFIG"] });
  url = (await mf.ready).toString().replace(/\/$/, "");
  // The issuer publishes each event's attendee manifest to KV; `scanner init` fetches it from the edge.
  const kv = await mf.getKVNamespace("CONFIG");
  await kv.put(`manifest:${fixtures.event}`, fixtures.manifest);
});
after(async () => {
  await mf?.dispose();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A device set up against the edge (keyring, revocations and manifest come from the Worker). */
// Each device has its own token (the edge takes a device's records only under the id bound to it).
let devicesMade = 0;
async function newDevice(name) {
  const dir = mkdtempSync(path.join(tmpdir(), "edge-sync-device-"));
  dirs.push(dir);
  const token = fixtures.device_tokens[devicesMade++];
  const init = await scanner([
    "--data", dir, "init", "--server", url, "--token", token, "--event", String(fixtures.event), "--name", name,
  ]);
  assert.equal(init.code, 0, init.stderr);
  return dir;
}

async function scan(dir, text, gate) {
  const r = await scanner(["--data", dir, "scan", "--json", "--gate", gate, text]);
  return { ...r, verdict: JSON.parse(r.stdout.trim().split("\n").pop()) };
}

async function deviceReport(dir) {
  const r = await scanner(["--data", dir, "report", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

async function edgeReport({ token = fixtures.token } = {}) {
  const resp = await mf.dispatchFetch(`${BASE}/v1/report?event=${fixtures.event}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: resp.status, body: await resp.json() };
}

async function postSync(body, { token = fixtures.token, event = fixtures.event } = {}) {
  const headers = { "content-type": "application/octet-stream" };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const resp = await mf.dispatchFetch(`${BASE}/v1/sync?event=${event}&channel=push`, { method: "POST", headers, body });
  const text = await resp.text();
  return { status: resp.status, text };
}

/** The edge's own device in a report. */
const edgeDevice = (report) => report.devices.find((d) => d.name === "edge");

/** Waits (bounded) until the edge's admissions have reached its log: shards forward them asynchronously. */
async function edgeLogHas(admitted) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const { body } = await edgeReport();
    if ((edgeDevice(body)?.admitted ?? 0) >= admitted) return body;
    if (Date.now() > deadline) assert.fail(`the edge log never showed ${admitted} edge admissions: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const conflictOf = (report, ticketRef) => report.conflicts.find((c) => c.ticket === ticketRef);

test("offline scans sync with the edge: the duplicate shows on both sides, and offline admissions hold online", async () => {
  const phone = await newDevice("Phone A");

  // Online first: the edge admits ticket 0 at North.
  const online = await redeem(mf, { qr_text: good(0), device: device(0xe1), device_name: "Tablet", gate: "North" });
  assert.equal(online.body.verdict, "admit");

  // The phone is offline (has not synced): it admits ticket 0 again, and tickets 1 and 2.
  for (const i of [0, 1, 2]) {
    const r = await scan(phone, good(i), "East");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.verdict.verdict, "admit");
  }
  await edgeLogHas(1);

  const sync = await scanner(["--data", phone, "sync"]);
  assert.equal(sync.code, 0, sync.stderr);

  // The device now has the edge's record: its own report shows ticket 0 admitted twice.
  const mine = await deviceReport(phone);
  const dup = conflictOf(mine, ref(0));
  assert.ok(dup, `device report has no conflict for ticket 0: ${JSON.stringify(mine.conflicts)}`);
  assert.deepEqual(dup.scans.map((s) => s.gate).sort(), ["East", "North"]);
  assert.deepEqual(dup.scans.map((s) => s.device_name).sort(), ["Phone A", "edge"]);
  assert.equal(mine.conflicts.length, 1);

  // The edge's log has the phone's scans, and the same conflict.
  const { status, body: edge } = await edgeReport();
  assert.equal(status, 200);
  assert.equal(edge.admitted, 4);
  const edgeDup = conflictOf(edge, ref(0));
  assert.ok(edgeDup, `edge report has no conflict for ticket 0: ${JSON.stringify(edge.conflicts)}`);
  assert.deepEqual(edgeDup.scans.map((s) => s.device_name).sort(), ["Phone A", "edge"]);
  assert.equal(edge.devices.find((d) => d.name === "Phone A").admitted, 3);

  // Tickets admitted offline are now refused online as already used, naming the phone and its gate.
  for (const i of [1, 2]) {
    const r = await redeem(mf, { qr_text: good(i), device: device(0xe2), gate: "South" });
    assert.equal(r.body.verdict, "already_used", JSON.stringify(r.body));
    assert.equal(r.body.gate, "East");
    assert.equal(r.body.device_name, "Phone A");
  }
  // A ticket nobody scanned still admits.
  assert.equal((await redeem(mf, { qr_text: good(3), gate: "South" })).body.verdict, "admit");
});

test("a second device receives the first one's scans and the edge's through the edge", async () => {
  const first = await newDevice("Phone B");
  const second = await newDevice("Phone C");
  assert.equal((await scan(first, good(10), "West")).verdict.verdict, "admit");
  assert.equal((await scanner(["--data", first, "sync"])).code, 0);
  assert.equal((await scanner(["--data", second, "sync"])).code, 0);
  // Offline again: the second device refuses the ticket the first admitted.
  const r = await scan(second, good(10), "Gate 9");
  assert.equal(r.verdict.verdict, "already_used", JSON.stringify(r.verdict));
  assert.equal(r.verdict.gate, "West");
});

// Edge admissions made by the tests above (tickets 0 and 3): forwarded to the log asynchronously, so the
// "nothing stored" checks below first wait for them, or a late one would look like a change.
const EDGE_ADMISSIONS_SO_FAR = 2;

test("sync with a bad or missing token is 401 and stores nothing", async () => {
  await edgeLogHas(EDGE_ADMISSIONS_SO_FAR);
  const before = await edgeReport();
  for (const token of ["not-a-device-token", null]) {
    const r = await postSync(new Uint8Array([0x42, 1, 2, 3]), { token });
    assert.equal(r.status, 401);
    assert.equal(JSON.parse(r.text).error.code, "unauthorized");
  }
  assert.deepEqual((await edgeReport()).body, before.body);
});

test("hostile or garbage sync bodies are 400 and store nothing", async () => {
  await edgeLogHas(EDGE_ADMISSIONS_SO_FAR);
  const before = await edgeReport();
  const garbage = [
    new Uint8Array([0x42, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    new TextEncoder().encode("not an automerge sync message"),
    // A sync-message header with a change chunk that is not a valid change.
    new Uint8Array([0x42, 0, 0, 1, 8, 0x85, 0x6f, 0x4a, 0x83, 1, 2, 3, 4]),
  ];
  for (const body of garbage) {
    const r = await postSync(body);
    assert.equal(r.status, 400, r.text);
    assert.equal(JSON.parse(r.text).error.code, "bad_request");
  }
  const wrongType = await mf.dispatchFetch(`${BASE}/v1/sync?event=${fixtures.event}&channel=push`, {
    method: "POST",
    headers: { authorization: `Bearer ${fixtures.token}`, "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(wrongType.status, 415);
  assert.equal((await postSync(new Uint8Array([0x42]), { event: "x" })).status, 400);
  // Without a channel (push or pull), or with the relay channel and a device's token.
  const noChannel = await mf.dispatchFetch(`${BASE}/v1/sync?event=${fixtures.event}`, {
    method: "POST",
    headers: { authorization: `Bearer ${fixtures.token}`, "content-type": "application/octet-stream" },
    body: new Uint8Array([0x42, 0, 0, 0, 0]),
  });
  assert.equal(noChannel.status, 400);
  const relayAsDevice = await mf.dispatchFetch(`${BASE}/v1/sync?event=${fixtures.event}&channel=relay`, {
    method: "POST",
    headers: { authorization: `Bearer ${fixtures.token}`, "content-type": "application/octet-stream" },
    body: new Uint8Array([0x42, 0, 0, 0, 0]),
  });
  assert.equal(relayAsDevice.status, 401, "a device token is not a relay token");
  assert.deepEqual((await edgeReport()).body, before.body);
});

test("the report needs a device token and an event", async () => {
  assert.equal((await edgeReport({ token: "nope" })).status, 401);
  const resp = await mf.dispatchFetch(`${BASE}/v1/report`, { headers: { authorization: `Bearer ${fixtures.token}` } });
  assert.equal(resp.status, 400);
});
