#!/usr/bin/env bash
# The one run command (README: "Run it"): the issuer with its web pages on the embedded default store
# (a SQLite file in ./issuer-data), a demo event seeded, mail written as .eml files into ./issuer-data/outbox.
# First builds the PWA scanner's wasm into web/scanner/pkg (installing Debian's wasm toolchain and
# wasm-bindgen-cli once if they are missing). Extra arguments go to `issuer serve` (`--help` lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tickets/target}"
if ! command -v rustup >/dev/null 2>&1 || ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  scripts/apt-install.sh rustc-web cargo-web rust-web-src lld-22
fi
scripts/web-build.sh >/dev/null
exec cargo run --release -p issuer -- serve --demo --data-dir issuer-data "$@"
