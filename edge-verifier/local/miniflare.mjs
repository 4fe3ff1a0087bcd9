// The built Worker (edge-verifier/build, from scripts/edge-build.sh) under the real workerd through
// Miniflare: the one place that knows how to load it. Used by the edge tests (test/helpers.mjs) and by
// local/serve.mjs, which the whole-event test and local runs start as a process.
import { fileURLToPath } from "node:url";
import path from "node:path";
import { Miniflare } from "miniflare";

const here = path.dirname(fileURLToPath(import.meta.url));
export const buildDir = process.env.EDGE_BUILD_DIR ?? path.join(here, "..", "build");

/**
 * Starts the Worker with these variables (KEYRING_JSON, REVOCATIONS_JSON, SCANNER_TOKEN_HASHES,
 * ALLOWED_ORIGINS, ...) and empty in-memory Durable Object storage. `options.buildDir` serves another copy
 * of the build; the other options go to Miniflare as they are (e.g. `port` to listen on, `kvNamespaces`).
 */
export async function startWorker(bindings, { buildDir: dir = buildDir, ...options } = {}) {
  const mf = new Miniflare({
    modules: true,
    scriptPath: path.join(dir, "worker.mjs"),
    modulesRoot: dir,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: "2025-06-01",
    cf: false,
    host: "127.0.0.1",
    durableObjects: {
      REDEMPTIONS: { className: "RedemptionShard", useSQLite: true },
      REDEMPTION_LOG: { className: "RedemptionLogObject", useSQLite: true },
      TRUST: { className: "TrustStore", useSQLite: true },
    },
    bindings,
    ...options,
  });
  await mf.ready;
  return mf;
}
