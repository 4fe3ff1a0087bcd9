#!/usr/bin/env bash
# The venue hub's bench (`scanner hub` on loopback, release build): online redemptions per second the hub
# sustains (each admission fsync'd before its answer; the hub's per-device request limit off for this
# run), the "already used" round trip at a second device, and the time from an admission at one device
# until another device's log holds it when both decide on their own and sync with the hub by the door
# loop's schedule (scanner-core's SyncSchedule: every 2 s, and at once after a scan the hub did not
# decide). Prints one JSON object (scripts/bench.sh keeps it as bench/out/hub.json).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${TICKETS_CACHE:-$HOME/.cache/tickets}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
cargo build --release -q -p scanner-cli -p scanner-bench --bin scanner --bin hub-bench
"$CARGO_TARGET_DIR/release/hub-bench" --scanner "$CARGO_TARGET_DIR/release/scanner" \
  --clients "${HUB_BENCH_CLIENTS:-8}" --seconds "${HUB_BENCH_SECONDS:-10}" --sync-ms "${HUB_BENCH_SYNC_MS:-2000}" \
  --rounds "${HUB_BENCH_ROUNDS:-10}"
