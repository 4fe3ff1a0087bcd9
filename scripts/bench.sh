#!/usr/bin/env bash
# Runs the project's benchmarks (release builds) and writes their JSON into bench/out/.
#   scanner-core: ticket size/QR version, verify µs, sign+render ms, decode on the degraded corpus
#   bench-log:    scan pipeline p50/p99, bytes/scan synced, merge + report of 20 logs / 50k scans
#   issuer-bench: durable orders/s and latency at a fixed offered load, idle RSS
#   edge-bench:   redemption latency under workerd, wasm size
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tickets/target}"
out=bench/out
mkdir -p "$out"
cargo build --release -q -p scanner-core --bins -p issuer
"$CARGO_TARGET_DIR/release/bench" --corpus-dir "$out/corpus" > "$out/scanner-core.json"
"$CARGO_TARGET_DIR/release/bench-log" > "$out/redemption.json"
"$CARGO_TARGET_DIR/release/issuer-bench" --rate "${ISSUER_BENCH_RATE:-1000}" --seconds 10 > "$out/issuer.json"
scripts/edge-bench.sh > "$out/edge.json"
if [ -x "$HOME/.cache/tickets/venv/bin/python" ]; then
  "$HOME/.cache/tickets/venv/bin/pip" install -q -r bench/requirements.txt
  "$HOME/.cache/tickets/venv/bin/python" bench/peers.py "$out/corpus" > "$out/peers.json"
fi
ls -l "$out"/*.json
