// Redemption latency under workerd (Miniflare, 127.0.0.1): distinct tickets redeemed one at a time, then
// at a fixed concurrency, measured from an HTTP client with keep-alive connections, as a phone talks to the
// edge (HTTP to workerd + Worker parse + Durable Object verify-decide-record). Miniflare's own
// `dispatchFetch` is not used for timing: it adds about 2 ms of in-process routing no phone ever pays. Then how long the edge's log takes to hold every admission (shards forward them
// from their outboxes after answering). Prints one JSON object. Not a test: run by scripts/edge-bench.sh.
import http from "node:http";
import { startEdge, device, fixtures, BASE } from "../test/helpers.mjs";

const concurrency = Number(process.env.EDGE_BENCH_CONCURRENCY ?? 16);
const tickets = fixtures.tickets.bench;
const warmup = 100;
const sequential = 400;

const mf = await startEdge({}, { port: 0 });
const edge = new URL((await mf.ready).toString());
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });

/** POST /v1/redeem over HTTP; resolves with the parsed verdict. */
function redeem(fields) {
  const body = JSON.stringify({ event: fixtures.event, kind: "entry", ...fields });
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: edge.hostname,
        port: edge.port,
        path: "/v1/redeem",
        method: "POST",
        agent,
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          authorization: `Bearer ${fixtures.token}`,
        },
      },
      (res) => {
        let text = "";
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => resolve(JSON.parse(text)));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** Redeems `todo` with `concurrency` clients; returns latency quantiles and throughput. */
async function run(todo, concurrency) {
  const latencies = [];
  let next = 0;
  let admitted = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      while (next < todo.length) {
        const qr = todo[next++];
        const t0 = performance.now();
        const r = await redeem({ qr_text: qr, device: device(100 + w), gate: `G${w}` });
        latencies.push(performance.now() - t0);
        if (r.verdict === "admit") admitted++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  return {
    redemptions: latencies.length,
    admitted,
    concurrency,
    p50_ms: +q(0.5).toFixed(2),
    p99_ms: +q(0.99).toFixed(2),
    throughput_per_s: Math.round(latencies.length / elapsed),
  };
}

/** Edge admissions in the event's log (GET /v1/report). */
async function loggedAdmissions() {
  const resp = await mf.dispatchFetch(`${BASE}/v1/report?event=${fixtures.event}`, {
    headers: { authorization: `Bearer ${fixtures.token}` },
  });
  const report = await resp.json();
  return report.devices?.find((d) => d.name === "edge")?.admitted ?? 0;
}

try {
  for (let i = 0; i < warmup; i++) await redeem({ qr_text: tickets[i], device: device(7), gate: "North" });
  const one = await run(tickets.slice(warmup, warmup + sequential), 1);
  const result = await run(tickets.slice(warmup + sequential), concurrency);
  const finished = performance.now();
  let logged = 0;
  while ((logged = await loggedAdmissions()) < tickets.length && performance.now() - finished < 60_000) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const log = { admissions: logged, expected: tickets.length, catch_up_ms: Math.round(performance.now() - finished) };
  console.log(JSON.stringify({ ...result, sequential: { p50_ms: one.p50_ms, p99_ms: one.p99_ms }, log }));
} finally {
  agent.destroy();
  await mf.dispose();
}
