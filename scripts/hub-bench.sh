#!/usr/bin/env bash
# The venue hub's bench (`scanner hub` on loopback, release build): online redemptions per second the hub
# sustains (each admission fsync'd before its answer), the "already used" round trip at a second device,
# and the time from an admission at one device until another device's log holds it when both only sync
# with the hub every 2 s. Prints one JSON object (scripts/bench.sh keeps it as bench/out/hub.json).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${TICKETS_CACHE:-$HOME/.cache/tickets}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
cargo build --release -q -p scanner-cli -p scanner-bench --bin scanner --bin hub-bench
"$CARGO_TARGET_DIR/release/hub-bench" --scanner "$CARGO_TARGET_DIR/release/scanner" \
  --clients "${HUB_BENCH_CLIENTS:-8}" --seconds "${HUB_BENCH_SECONDS:-10}" --sync-ms "${HUB_BENCH_SYNC_MS:-2000}" \
  --rounds "${HUB_BENCH_ROUNDS:-10}"
