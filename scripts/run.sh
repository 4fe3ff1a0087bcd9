#!/usr/bin/env bash
# The one run command (README: "Run it"): the issuer with its web pages on the embedded default store
# (a SQLite file in ./issuer-data), a demo event seeded, mail written as .eml files into ./issuer-data/outbox.
# Extra arguments go to `issuer serve` (see `issuer serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tickets/target}"
exec cargo run --release -p issuer -- serve --demo --data-dir issuer-data "$@"
