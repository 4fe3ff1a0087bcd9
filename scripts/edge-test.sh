#!/usr/bin/env bash
# Builds the edge verifier Worker and runs its end-to-end tests under workerd (Miniflare from npm):
#   scripts/edge-build.sh → edge-fixtures (real signed tickets) → the `scanner` CLI (the device in the sync
#   tests) → npm ci (once) → node --test.
# Native unit tests of the crate are part of `cargo test --workspace`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TICKETS_CACHE:-$HOME/.cache/tickets}/target}"
"$root/scripts/edge-build.sh"
cargo run -q -p edge-verifier --example edge-fixtures -- "$root/edge-verifier/build/fixtures.json"
cargo build -q -p scanner-cli --bin scanner
export SCANNER_BIN="$CARGO_TARGET_DIR/debug/scanner"
cd "$root/edge-verifier"
"$root/scripts/npm-ci.sh" .
WRANGLER_SEND_METRICS=false node --test test/*.test.mjs
