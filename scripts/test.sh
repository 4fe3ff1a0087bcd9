#!/usr/bin/env bash
# The one test command (README: "Test it"). Installs what it needs idempotently, then runs every check:
# formatting, lints, the wasm32 builds (edge Worker, PWA scanner: scanner-core's core without files or
# clock), all Rust tests (including the whole-event end-to-end test; the issuer's once more on PostgreSQL),
# the Worker under workerd, the web parts in real Chromium with a fake camera, and a short fuzz run.
# Caches (Cargo target dirs, Python venv, installed tools) live under $HOME/.cache/tickets, outside the clone.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache="${TICKETS_CACHE:-$HOME/.cache/tickets}"
mkdir -p "$cache"
export CARGO_TARGET_DIR="$cache/target"
export TICKETS_PYTHON="$cache/venv/bin/python"
export CARGO_TERM_COLOR=never
step() { printf '\n==> %s\n' "$*"; }

step "system packages"
# wasm32 toolchain (Debian's rustc-web builds std for wasm from source; see ../shared/wasm-toolchain.md);
# chromium for the browser tests (driven by playwright-core; no browser download); poppler-utils
# (pdftoppm, pdftotext, pdfinfo) for the PDF ticket tests (issuer/tests/pdf.rs); libssl-dev and pkg-config for
# the issuer's `openssl` crate (wallet pass signatures, issuer/src/orders/wallet).
scripts/apt-install.sh rustc-web cargo-web rust-web-src lld-22 openssl libssl-dev pkg-config python3-venv chromium poppler-utils
echo "ok"

step "python test tools (venv in $cache/venv)"
[ -x "$TICKETS_PYTHON" ] || python3 -m venv "$cache/venv"
reqs=$(cat issuer/tests/requirements.txt 2>/dev/null | sort -u || true)
stamp="$cache/venv/.reqs"
if [ "$(cat "$stamp" 2>/dev/null)" != "$reqs" ]; then
  printf '%s\n' "$reqs" > "$cache/venv/requirements.txt"
  "$cache/venv/bin/pip" install -q --disable-pip-version-check -r "$cache/venv/requirements.txt"
  printf '%s' "$reqs" > "$stamp"
fi
echo "ok"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

logs="$cache/test-logs"
mkdir -p "$logs"

step "wasm32 builds: the edge Worker and the scanner PWA (scanner-core's core without files or clock)"
# Before the Rust tests: the end-to-end test runs the built Worker under workerd.
scripts/edge-build.sh
scripts/npm-ci.sh edge-verifier
scripts/web-build.sh

step "cargo test (workspace)"
cargo test --workspace 2>&1 | tee "$logs/cargo-test.log"

step "cargo test -p issuer again, on PostgreSQL (a throwaway cluster; SQLite-only tests are skipped by name)"
# Every issuer under test gets a fresh database of its own on the cluster (issuer/tests/common). Tests
# named sqlite_only_* (the SQLite backup) are not run here, so they are not counted twice; the
# PostgreSQL-only ones (two instances on one database, issuer/tests/instances.rs) are ignored in the
# SQLite pass and included here.
scripts/postgres.sh run cargo test -p issuer --test '*' -- --skip sqlite_only --include-ignored 2>&1 \
  | tee "$logs/cargo-test-postgres.log"

step "edge verifier under workerd (Miniflare)"
scripts/edge-test.sh 2>&1 | tee "$logs/edge-test.log"

step "web: order page, dashboard and PWA scanner in Chromium"
scripts/web-test.sh 2>&1 | tee "$logs/web-test.log"

step "fuzz the QR-text decoder (cargo fuzz, ${FUZZ_SECONDS:-20} s)"
if rustup run nightly rustc --version >/dev/null 2>&1; then
  tools="$cache/tools"
  if [ ! -x "$tools/bin/cargo-fuzz" ]; then
    cargo install --quiet --root "$tools" --locked cargo-fuzz
  fi
  (cd scanner-core/fuzz && PATH="$tools/bin:$PATH" cargo +nightly fuzz run decode_text \
     --target-dir "$cache/target-fuzz" -- -max_total_time="${FUZZ_SECONDS:-20}" -rss_limit_mb=2048 2>&1 | tail -n 3)
  # cargo fuzz exits non-zero on a crash, which set -o pipefail turns into a failure here.
else
  echo "fuzz: NOT RUN (no nightly toolchain on this machine; the fuzz target still builds with: cargo +nightly fuzz build)"
fi

step "all checks passed"
# One plain summary line over every test runner above (cargo's "test result" lines and node's "# pass").
passed=$( (grep -ho 'test result: ok\. [0-9]* passed' "$logs/cargo-test.log" "$logs/cargo-test-postgres.log" | grep -o '[0-9]*' ; \
           grep -ho '^# pass [0-9]*' "$logs/edge-test.log" "$logs/web-test.log" | grep -o '[0-9]*') \
         | awk '{s+=$1} END {print s+0}')
echo "tests: ${passed} passed, 0 failed"
