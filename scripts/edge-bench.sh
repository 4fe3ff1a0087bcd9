#!/usr/bin/env bash
# Edge redemption benchmark under workerd (Miniflare on 127.0.0.1) and the Worker's wasm size.
# Prints one JSON object: {redemption: {p50_ms, p99_ms, ...}, wasm_bytes, wasm_gzip_bytes}.
# EDGE_BENCH_CONCURRENCY (default 16) sets the fixed concurrency.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TICKETS_CACHE:-$HOME/.cache/tickets}/target}"
"$root/scripts/edge-build.sh" >&2
cargo run -q -p edge-verifier --example edge-fixtures -- "$root/edge-verifier/build/fixtures.json"
cd "$root/edge-verifier"
"$root/scripts/npm-ci.sh" . >&2
wasm=build/index_bg.wasm
raw=$(wc -c < "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
redemption=$(WRANGLER_SEND_METRICS=false node bench/redeem-bench.mjs)
printf '{"redemption":%s,"wasm_bytes":%s,"wasm_gzip_bytes":%s}\n' "$redemption" "$raw" "$gz"
