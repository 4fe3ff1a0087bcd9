#!/usr/bin/env bash
# Builds a crate for wasm32-unknown-unknown with whichever toolchain this machine has:
#  - rustup with the wasm32 target installed (a developer laptop): plain `cargo build --target`;
#  - otherwise Debian's rustc-web, which builds the standard library from source (-Zbuild-std).
# Usage: scripts/wasm-build.sh CARGO_ARGS...   (e.g. -p scanner-core --lib --no-default-features)
set -euo pipefail
cache="${TICKETS_CACHE:-$HOME/.cache/tickets}"
export CARGO_TARGET_DIR="$cache/target-wasm"
# automerge's getrandom 0.3/0.4 need the browser backend selected explicitly on wasm32-unknown-unknown.
export RUSTFLAGS="${RUSTFLAGS:-} --cfg getrandom_backend=\"wasm_js\""

if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  exec cargo build --release --target wasm32-unknown-unknown "$@"
fi

if [ ! -x /usr/bin/cargo ] || [ ! -d /usr/lib/rustlib/src/rust/library ]; then
  echo "wasm-build: no wasm32 toolchain; install it with: apt-get install -y rustc-web cargo-web rust-web-src lld-22" >&2
  exit 1
fi
linker=$(command -v wasm-ld-22 || command -v wasm-ld || true)
[ -n "$linker" ] || { echo "wasm-build: wasm-ld not found (apt-get install -y lld-22)" >&2; exit 1; }
# Debian's toolchain has its own target dir: its artifacts must never mix with rustup's.
export CARGO_TARGET_DIR="$cache/target-wasm-debian"
PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$linker" \
  exec /usr/bin/cargo build --release --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort "$@"
