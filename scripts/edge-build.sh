#!/usr/bin/env bash
# Builds the edge verifier Worker into edge-verifier/build/ (idempotent):
#   1. wasm-bindgen-cli at exactly the wasm-bindgen version in Cargo.lock, installed once into
#      $TICKETS_CACHE/tools (default ~/.cache/tickets/tools; the first install takes ~10 min on 2 cores);
#   2. the wasm32 module, with scripts/wasm-build.sh (rustup's wasm target, or Debian rustc-web + build-std);
#   3. wasm-bindgen --target module, plus a small ES module entry (worker.mjs) that wrangler/Miniflare load.
# Nothing is downloaded except crates from crates.io (worker-build would fetch tools from GitHub: not used).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${TICKETS_CACHE:-$HOME/.cache/tickets}"
tools="$cache/tools"
out="$root/edge-verifier/build"

version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$root/Cargo.lock")
[ -n "$version" ] || { echo "edge-build: wasm-bindgen not found in Cargo.lock" >&2; exit 1; }
bindgen="$tools/wasm-bindgen-$version/bin/wasm-bindgen"
if [ ! -x "$bindgen" ]; then
  echo "edge-build: installing wasm-bindgen-cli $version into $tools (once; ~10 min)" >&2
  # Not --locked: the CLI's own lockfile pins crates this machine's registry mirror may not have.
  CARGO_TARGET_DIR="$cache/target-tools" cargo install "wasm-bindgen-cli@$version" \
    --root "$tools/wasm-bindgen-$version" --quiet
fi
# An earlier install layout (tools/bin) is reused if it is the right version.
if [ -x "$tools/bin/wasm-bindgen" ] && [ ! -x "$bindgen" ]; then bindgen="$tools/bin/wasm-bindgen"; fi
"$bindgen" --version | grep -q " $version\$" || { echo "edge-build: $bindgen is not version $version" >&2; exit 1; }

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

export { RedemptionShard, RedemptionLogObject } from "./index.js";

export default class extends WorkerEntrypoint {
  async fetch(request) {
    return edge.fetch(request, this.env, this.ctx);
  }
}
JS
rm -rf "$out" && mv "$out.tmp" "$out"
echo "edge-build: $(du -b "$out/index_bg.wasm" | cut -f1) bytes of wasm in $out" >&2
