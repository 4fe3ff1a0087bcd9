// Serves the built Worker under workerd on 127.0.0.1 until this process is stopped (SIGTERM/SIGINT) or
// its standard input closes. The Worker's variables come from the environment: KEYRING_JSON,
// REVOCATIONS_JSON, SCANNER_TOKEN_HASHES (required), ALLOWED_ORIGINS, LOG_FORWARD_DELAY_MS, ISSUER_URL,
// ISSUER_TOKEN, REVOCATIONS_REFRESH_MS, RELAY_TOKEN_HASHES (optional).
// EDGE_PORT chooses the port (default: a free one). Prints "READY http://127.0.0.1:PORT" once it serves.
//   node edge-verifier/local/serve.mjs
import { startWorker } from "./miniflare.mjs";

const names = [
  "KEYRING_JSON",
  "REVOCATIONS_JSON",
  "SCANNER_TOKEN_HASHES",
  "ALLOWED_ORIGINS",
  "LOG_FORWARD_DELAY_MS",
  "ISSUER_URL",
  "ISSUER_TOKEN",
  "REVOCATIONS_REFRESH_MS",
  "RELAY_TOKEN_HASHES",
];
const bindings = {};
for (const name of names) {
  if (process.env[name] !== undefined) bindings[name] = process.env[name];
}
for (const name of names.slice(0, 3)) {
  if (bindings[name] === undefined) {
    console.error(`serve: set ${name}`);
    process.exit(2);
  }
}
const mf = await startWorker(bindings, { port: Number(process.env.EDGE_PORT ?? 0) });
const url = await mf.ready;
console.log(`READY ${url.origin}`);
const stop = async () => {
  await mf.dispose();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();
