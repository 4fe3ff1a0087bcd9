// End-to-end: /v1/redeem under workerd.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startEdge, redeem, post, device, fixtures, ORIGIN, BASE } from "./helpers.mjs";

let mf;
before(async () => {
  mf = await startEdge();
});
after(async () => {
  await mf?.dispose();
});

const good = (i) => fixtures.tickets.good[i];

test("admit, then a second scan says already used with when, gate and device", async () => {
  const first = await redeem(mf, { qr_text: good(0), device: device(0xa1), device_name: "Phone A", gate: "North" });
  assert.equal(first.status, 200);
  assert.equal(first.body.verdict, "admit");
  assert.equal(first.body.decided_by, "edge");
  assert.equal(first.body.gate, "North");
  assert.match(first.body.summary, /^ADMIT/);

  const second = await redeem(mf, { qr_text: good(0), device: device(0xb2), gate: "South" });
  assert.equal(second.status, 200);
  assert.equal(second.body.verdict, "already_used");
  assert.equal(second.body.gate, "North");
  assert.equal(second.body.device, device(0xa1));
  assert.equal(second.body.device_name, "Phone A");
  assert.equal(second.body.this_device, false);
  assert.equal(typeof second.body.wall_time, "number");
  assert.match(second.body.at, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
  assert.match(second.body.summary, /^ALREADY USED/);
});

test("100 concurrent redemptions of one ticket from different gates admit exactly once", async () => {
  const results = await Promise.all(
    Array.from({ length: 100 }, (_, i) =>
      redeem(mf, { qr_text: good(1), device: device(0x1000 + i), gate: `Gate ${i}` }),
    ),
  );
  for (const r of results) assert.equal(r.status, 200, r.text);
  const verdicts = results.map((r) => r.body.verdict);
  assert.equal(verdicts.filter((v) => v === "admit").length, 1);
  assert.equal(verdicts.filter((v) => v === "already_used").length, 99);
  // Every "already used" names the one gate that admitted.
  const winner = results.find((r) => r.body.verdict === "admit").body.gate;
  for (const r of results.filter((r) => r.body.verdict === "already_used")) assert.equal(r.body.gate, winner);
});

test("different tickets are independent", async () => {
  const a = await redeem(mf, { qr_text: good(2) });
  const b = await redeem(mf, { qr_text: good(3) });
  assert.equal(a.body.verdict, "admit");
  assert.equal(b.body.verdict, "admit");
});

test("re-entry ticket: entry, exit, entry again; entry while inside is already used", async () => {
  const q = fixtures.tickets.reentry;
  assert.equal((await redeem(mf, { qr_text: q })).body.verdict, "admit");
  assert.equal((await redeem(mf, { qr_text: q, gate: "East" })).body.verdict, "already_used");
  assert.equal((await redeem(mf, { qr_text: q, kind: "exit" })).body.verdict, "exit");
  assert.equal((await redeem(mf, { qr_text: q, gate: "West" })).body.verdict, "admit");
});

for (const [name, qr, code] of [
  ["forged", () => fixtures.tickets.forged, "bad_signature"],
  ["revoked", () => fixtures.tickets.revoked, "revoked"],
  ["wrong-event", () => fixtures.tickets.wrong_event, "wrong_event"],
  ["not a ticket", () => "https://example.com/not-a-ticket", "not_a_ticket"],
  ["damaged", () => good(4).slice(0, -3), "malformed"],
]) {
  test(`${name} ticket is refused with reason ${code}`, async () => {
    const r = await redeem(mf, { qr_text: qr() });
    assert.equal(r.status, 200);
    assert.equal(r.body.verdict, "refused");
    assert.equal(r.body.code, code);
    assert.match(r.body.summary, /^REFUSED: /);
    // A refusal records nothing: the same device can still be refused again the same way.
    assert.equal((await redeem(mf, { qr_text: qr() })).body.code, code);
  });
}

test("a ticket for another event is refused even though it is genuine and never admitted", async () => {
  const r = await redeem(mf, { qr_text: good(5), event: fixtures.event + 7 });
  assert.equal(r.body.verdict, "refused");
  assert.equal(r.body.code, "wrong_event");
  // ...and that refusal did not use the ticket up for its own event.
  assert.equal((await redeem(mf, { qr_text: good(5) })).body.verdict, "admit");
});

test("unauthenticated requests are refused with 401 JSON and record nothing", async () => {
  for (const token of [null, "wrong-token", ""]) {
    const r = await redeem(mf, { qr_text: good(6) }, { token });
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, "unauthorized");
  }
  const basic = await redeem(mf, { qr_text: good(6) }, { token: null, headers: { authorization: `Basic ${fixtures.token}` } });
  assert.equal(basic.status, 401);
  assert.equal((await redeem(mf, { qr_text: good(6) })).body.verdict, "admit");
});

test("malformed bodies are 400 JSON", async () => {
  const cases = [
    "not json",
    "{}",
    JSON.stringify({ qr_text: good(7), event: fixtures.event, device: "xyz", gate: "N" }),
    JSON.stringify({ qr_text: good(7), event: "x", device: device(1), gate: "N" }),
    JSON.stringify({ qr_text: good(7), event: fixtures.event, device: device(1), gate: "" }),
    JSON.stringify({ qr_text: good(7), event: fixtures.event, device: device(1), gate: "N", kind: "sideways" }),
  ];
  for (const body of cases) {
    const r = await post(mf, "/v1/redeem", body);
    assert.equal(r.status, 400, body);
    assert.equal(r.body.error.code, "bad_request");
    assert.equal(typeof r.body.error.message, "string");
  }
});

test("oversized bodies are 413 JSON, wrong content type 415, wrong method 405, unknown path 404", async () => {
  const big = JSON.stringify({ qr_text: "x".repeat(10_000), event: 1, device: device(1), gate: "N" });
  const r = await post(mf, "/v1/redeem", big);
  assert.equal(r.status, 413);
  assert.equal(r.body.error.code, "too_large");

  const text = await post(mf, "/v1/redeem", JSON.stringify({ qr_text: good(8) }), { headers: { "content-type": "text/plain" } });
  assert.equal(text.status, 415);
  assert.equal(text.body.error.code, "unsupported_media_type");

  const get = await mf.dispatchFetch(`${BASE}/v1/redeem`, { headers: { authorization: `Bearer ${fixtures.token}` } });
  assert.equal(get.status, 405);
  assert.equal((await get.json()).error.code, "method_not_allowed");

  const missing = await post(mf, "/v1/nothing", "{}");
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error.code, "not_found");
});

test("CORS: the PWA origin gets preflight and response headers, others do not", async () => {
  const pre = await mf.dispatchFetch(`${BASE}/v1/redeem`, {
    method: "OPTIONS",
    headers: { origin: ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), ORIGIN);
  assert.match(pre.headers.get("access-control-allow-headers"), /Authorization/);
  assert.match(pre.headers.get("access-control-allow-methods"), /POST/);

  const r = await redeem(mf, { qr_text: good(9) }, { headers: { origin: ORIGIN } });
  assert.equal(r.headers.get("access-control-allow-origin"), ORIGIN);
  const denied = await redeem(mf, { qr_text: good(9) }, { headers: { origin: "https://evil.example" } });
  assert.equal(denied.headers.get("access-control-allow-origin"), null);
  // Errors carry CORS headers too, so the PWA can read why it was refused.
  const unauth = await redeem(mf, { qr_text: good(9) }, { token: null, headers: { origin: ORIGIN } });
  assert.equal(unauth.status, 401);
  assert.equal(unauth.headers.get("access-control-allow-origin"), ORIGIN);
});
