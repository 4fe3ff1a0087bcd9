#!/usr/bin/env bash
# Browser tests of the web parts (order page, dashboard, PWA scanner) in the system Chromium:
#   cargo build (issuer, scanner CLI) → scripts/web-build.sh (if present) → npm ci (once) → node --test.
# Needs /usr/bin/chromium (apt package `chromium`); playwright-core only drives it (no browser download).
# Screenshots go to $TICKETS_ARTIFACTS (default web/tests/artifacts/).
#   scripts/web-test.sh                    # every web/tests/*.test.mjs
#   scripts/web-test.sh order.test.mjs     # just these files
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TICKETS_CACHE:-$HOME/.cache/tickets}/target}"
cd "$root"
cargo build -q -p issuer --bin issuer
cargo build -q -p scanner-cli --bin scanner
if [ -x scripts/web-build.sh ]; then
  scripts/web-build.sh
fi
scripts/npm-ci.sh web/tests
cd web/tests
# One test file at a time: each starts its own issuer and browser, and the machine has two cores.
# Arguments choose test files (relative to web/tests, e.g. order.test.mjs); default: all of them.
if [ $# -gt 0 ]; then files=("$@"); else files=(./*.test.mjs); fi
node --test --test-concurrency=1 "${files[@]}"
