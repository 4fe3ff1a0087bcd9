// No rollback at the edge: the newest revocation list the Worker verified is kept in durable storage (the
// TrustStore Durable Object), so a fresh Worker instance that cannot reach the issuer keeps using it
// instead of the older list pinned in its configuration (REVOCATIONS_JSON = version 1 here).
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startEdge, redeem, device, fixtures, BASE } from "./helpers.mjs";

/** A stand-in issuer that serves `list` at /v1/scanner/revocations (and nothing else). */
function fakeIssuer(list) {
  const server = http.createServer((req, res) => {
    if (req.url.startsWith("/v1/scanner/revocations")) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(list);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

async function revocationsVersion(mf) {
  const resp = await mf.dispatchFetch(`${BASE}/v1/scanner/revocations?since=0`, {
    headers: { authorization: `Bearer ${fixtures.token}` },
  });
  assert.equal(resp.status, 200);
  return (await resp.json()).version;
}

test("a fresh instance with the issuer unreachable keeps the newest verified list, not the older pinned one", async () => {
  const persist = mkdtempSync(path.join(tmpdir(), "edge-trust-"));
  const issuer = await fakeIssuer(fixtures.revocations_v2);
  const issuerUrl = `http://127.0.0.1:${issuer.address().port}`;
  const bindings = { ISSUER_URL: issuerUrl, ISSUER_TOKEN: "edge-token" };
  try {
    // First instance: pulls version 2 from the issuer, which revokes the ticket.
    let mf = await startEdge(bindings, { durableObjectsPersist: persist });
    try {
      const r = await redeem(mf, { qr_text: fixtures.tickets.revoked_in_v2, device: device(0xf1) });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.code, "revoked", r.text);
    } finally {
      await mf.dispose();
    }
    // The issuer goes away. A fresh instance over the same durable storage, still configured with v1.
    await new Promise((resolve) => issuer.close(resolve));
    mf = await startEdge(bindings, { durableObjectsPersist: persist });
    try {
      const r = await redeem(mf, { qr_text: fixtures.tickets.revoked_in_v2, device: device(0xf2) });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.code, "revoked", `rolled back to the pinned list: ${r.text}`);
      // Devices set up from the edge get version 2 as well.
      assert.equal(await revocationsVersion(mf), 2);
    } finally {
      await mf.dispose();
    }
  } finally {
    issuer.close();
    rmSync(persist, { recursive: true, force: true });
  }
});

test("control: with no stored list and no issuer, the pinned version 1 is what there is", async () => {
  const mf = await startEdge({ ISSUER_URL: "http://127.0.0.1:9", ISSUER_TOKEN: "edge-token" });
  try {
    const r = await redeem(mf, { qr_text: fixtures.tickets.revoked_in_v2, device: device(0xf3) });
    assert.equal(r.body.verdict, "admit", r.text);
    assert.equal(await revocationsVersion(mf), 1);
  } finally {
    await mf.dispose();
  }
});
