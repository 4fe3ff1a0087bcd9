// End-to-end: `scanner scan --edge URL` asks the edge Worker first (under workerd, listening on a local
// port) and decides offline by itself when the edge cannot answer in time.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startEdge, redeem, device, fixtures, scanner } from "./helpers.mjs";

const TIMEOUT_MS = 800;


const good = (i) => fixtures.tickets.good[i];
const dirs = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function edgeWithDevice(name) {
  const mf = await startEdge({}, { port: 0, kvNamespaces: ["CONFIG"] });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  await (await mf.getKVNamespace("CONFIG")).put(`manifest:${fixtures.event}`, fixtures.manifest);
  const dir = mkdtempSync(path.join(tmpdir(), "edge-first-device-"));
  dirs.push(dir);
  const init = await scanner([
    "--data", dir, "init", "--server", url, "--token", fixtures.token, "--event", String(fixtures.event), "--name", name,
  ]);
  assert.equal(init.code, 0, init.stderr);
  return { mf, url, dir };
}

async function edgeScan(dir, url, text, gate) {
  const r = await scanner([
    "--data", dir, "scan", "--json", "--edge", url, "--edge-timeout-ms", String(TIMEOUT_MS), "--gate", gate, text,
  ]);
  const line = r.stdout.trim().split("\n").pop();
  assert.ok(line, `no output: ${r.stderr}`);
  return { ...r, out: JSON.parse(line) };
}

test("edge up: the edge decides, and says a ticket admitted at another gate is already used", async () => {
  const { mf, url, dir } = await edgeWithDevice("Phone E");
  try {
    // Admitted online elsewhere; this device has never seen the ticket, so only the edge can refuse it.
    assert.equal((await redeem(mf, { qr_text: good(4), device: device(0xf1), gate: "Online North" })).body.verdict, "admit");
    const used = await edgeScan(dir, url, good(4), "East");
    assert.equal(used.out.path, "edge", JSON.stringify(used.out));
    assert.equal(used.out.verdict, "already_used");
    assert.equal(used.out.gate, "Online North");
    assert.notEqual(used.code, 0);

    const admit = await edgeScan(dir, url, good(5), "East");
    assert.equal(admit.out.path, "edge");
    assert.equal(admit.out.verdict, "admit");
    assert.equal(admit.code, 0);
    // The edge recorded it: presented again anywhere online, it is already used at East.
    const again = await redeem(mf, { qr_text: good(5), device: device(0xf2), gate: "South" });
    assert.equal(again.body.verdict, "already_used");
    assert.equal(again.body.gate, "East");
    // The device mirrored the edge's verdict: offline it refuses the ticket too.
    const offline = await scanner(["--data", dir, "scan", "--json", "--gate", "East", good(5)]);
    assert.equal(JSON.parse(offline.stdout.trim().split("\n").pop()).verdict, "already_used");
  } finally {
    await mf.dispose();
  }
});

test("edge stopped: the device decides offline, without waiting for a dead edge", async () => {
  const { mf, url, dir } = await edgeWithDevice("Phone F");
  await mf.dispose();
  const started = performance.now();
  const r = await edgeScan(dir, url, good(6), "West");
  const elapsed = performance.now() - started;
  assert.equal(r.out.path, "offline", JSON.stringify(r.out));
  assert.equal(r.out.verdict, "admit");
  assert.equal(r.code, 0);
  // Not a performance figure: a bound far above the timeout that only a hang (e.g. a client waiting for
  // its default 60 s) would cross.
  assert.ok(elapsed < TIMEOUT_MS + 10_000, `fallback took ${elapsed} ms`);
  const again = await edgeScan(dir, url, good(6), "West");
  assert.equal(again.out.path, "offline");
  assert.equal(again.out.verdict, "already_used");
});
