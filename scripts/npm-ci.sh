#!/usr/bin/env bash
# `npm ci` in DIR, but only when its package-lock.json changed since the last install there (npm ci
# deletes node_modules every time, which costs minutes on repeat test runs).
#   scripts/npm-ci.sh edge-verifier
set -euo pipefail
cd "$1"
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s <(sha256sum < package-lock.json) node_modules/.lock-sha256 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  sha256sum < package-lock.json > node_modules/.lock-sha256
fi
