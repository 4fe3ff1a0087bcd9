// Redemption latency under workerd (Miniflare, 127.0.0.1): N distinct tickets redeemed at a fixed
// concurrency, measured from the client (HTTP to workerd + Worker verification + Durable Object
// check-and-record). Prints one JSON object. Not a test: run by scripts/edge-bench.sh.
import { startEdge, redeem, device, fixtures } from "../test/helpers.mjs";

const concurrency = Number(process.env.EDGE_BENCH_CONCURRENCY ?? 16);
const tickets = fixtures.tickets.bench;
const warmup = 100;

const mf = await startEdge();
try {
  for (let i = 0; i < warmup; i++) await redeem(mf, { qr_text: tickets[i], device: device(7) });
  const todo = tickets.slice(warmup);
  const latencies = [];
  let next = 0;
  let admitted = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      while (next < todo.length) {
        const qr = todo[next++];
        const t0 = performance.now();
        const r = await redeem(mf, { qr_text: qr, device: device(100 + w), gate: `G${w}` });
        latencies.push(performance.now() - t0);
        if (r.body?.verdict === "admit") admitted++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  console.log(
    JSON.stringify({
      redemptions: latencies.length,
      admitted,
      concurrency,
      p50_ms: +q(0.5).toFixed(2),
      p99_ms: +q(0.99).toFixed(2),
      throughput_per_s: Math.round(latencies.length / elapsed),
    }),
  );
} finally {
  await mf.dispose();
}
