#!/usr/bin/env bash
# Builds the edge verifier Worker into edge-verifier/build/ (idempotent):
#   1. wasm-bindgen-cli at exactly the wasm-bindgen version in Cargo.lock (scripts/wasm-bindgen-cli.sh
#      installs it once; ~10 min on 2 cores);
#   2. the wasm32 module, with scripts/wasm-build.sh (rustup's wasm target, or Debian rustc-web + build-std);
#   3. wasm-bindgen --target module, plus a small ES module entry (worker.mjs) that wrangler/Miniflare load.
# Nothing is downloaded except crates from crates.io (worker-build would fetch tools from GitHub: not used).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${TICKETS_CACHE:-$HOME/.cache/tickets}"
out="$root/edge-verifier/build"

bindgen=$("$root/scripts/wasm-bindgen-cli.sh")
(cd "$root" && "$root/scripts/wasm-build.sh" -p edge-verifier --lib)
# wasm-build.sh picks one of two target dirs; take whichever artifact is newest.
wasm=$(ls -t "$cache"/target-wasm*/wasm32-unknown-unknown/release/edge_verifier.wasm 2>/dev/null | head -1)
[ -n "$wasm" ] || { echo "edge-build: no edge_verifier.wasm was produced" >&2; exit 1; }

rm -rf "$out.tmp" && mkdir -p "$out.tmp"
"$bindgen" "$wasm" --target module --out-dir "$out.tmp" --out-name index \
  --experimental-reset-state-function --force-enable-abort-handler
# workerd imports a wasm module as a plain ES module import, not a source-phase import.
sed -i 's/^import source /import /' "$out.tmp/index.js"
cat > "$out.tmp/worker.mjs" <<'JS'
// Entry point for wrangler / Miniflare: the Rust fetch handler behind a WorkerEntrypoint, and the
// Durable Object classes re-exported under the names wrangler.toml binds.
import { WorkerEntrypoint } from "cloudflare:workers";
import * as edge from "./index.js";

export { RedemptionShard, RedemptionLogObject, TrustStore } from "./index.js";

export default class extends WorkerEntrypoint {
  async fetch(request) {
    return edge.fetch(request, this.env, this.ctx);
  }
}
JS
rm -rf "$out" && mv "$out.tmp" "$out"
echo "edge-build: $(du -b "$out/index_bg.wasm" | cut -f1) bytes of wasm in $out" >&2
