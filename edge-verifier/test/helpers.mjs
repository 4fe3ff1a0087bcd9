// Shared setup for the edge verifier's end-to-end tests: runs the built Worker (edge-verifier/build, from
// scripts/edge-build.sh) under the real workerd through Miniflare, with fixtures written by the
// `edge-fixtures` example (real tickets signed by scanner-core).
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { buildDir, startWorker } from "../local/miniflare.mjs";

export { buildDir };
export const fixtures = JSON.parse(
  readFileSync(process.env.EDGE_FIXTURES ?? path.join(buildDir, "fixtures.json"), "utf8"),
);
export const ORIGIN = "https://scanner.example.org";
export const BASE = "http://edge.test";

/**
 * A fresh Worker with empty Durable Object storage (in memory), trusting the fixtures' keyring and token.
 * `options` go to Miniflare as they are (e.g. `port` to listen for the scanner CLI, `kvNamespaces`).
 */
export async function startEdge(extraBindings = {}, options = {}) {
  return startWorker(
    {
      KEYRING_JSON: fixtures.keyring,
      REVOCATIONS_JSON: fixtures.revocations,
      SCANNER_TOKEN_HASHES: fixtures.token_hash,
      ALLOWED_ORIGINS: ORIGIN,
      ...extraBindings,
    },
    options,
  );
}

let deviceCounter = 0;
/** A fresh 16-hex-digit device id. */
export function device(n = ++deviceCounter) {
  return n.toString(16).padStart(16, "0");
}

/** POST /v1/redeem; returns { status, body } with the parsed JSON body. */
export async function redeem(mf, fields, { token = fixtures.token, headers = {} } = {}) {
  const body = JSON.stringify({
    event: fixtures.event,
    device: device(1),
    gate: "North",
    kind: "entry",
    ...fields,
  });
  return post(mf, "/v1/redeem", body, { token, headers });
}

export async function post(mf, pathName, body, { token = fixtures.token, headers = {} } = {}) {
  const h = { "content-type": "application/json", ...headers };
  if (token !== null) h.authorization = `Bearer ${token}`;
  const resp = await mf.dispatchFetch(BASE + pathName, { method: "POST", headers: h, body });
  const text = await resp.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: resp.status, headers: resp.headers, body: json, text };
}

/** The `scanner` CLI that cargo built (scripts/edge-test.sh builds it; SCANNER_BIN overrides the path). */
export const SCANNER =
  process.env.SCANNER_BIN ??
  path.join(process.env.CARGO_TARGET_DIR ?? path.join(homedir(), ".cache", "tickets", "target"), "debug", "scanner");

/** Runs the scanner CLI; resolves with { code, stdout, stderr } whatever the exit code. */
export function scanner(args) {
  return new Promise((resolve) => {
    execFile(SCANNER, args, { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr });
    });
  });
}
