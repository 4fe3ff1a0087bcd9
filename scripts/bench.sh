#!/usr/bin/env bash
# The one benchmark command (README: "Benchmarks"). Runs every bench of the project on release builds,
# keeps each raw JSON in bench/out/, and writes bench/results.json + bench/results.md (the table):
#   bench (scanner-core): ticket size/QR version, verify µs, sign+render ms, decode on the degraded corpus
#   bench/peers.py:       zxing-cpp and zbar (PyPI) on the same corpus, in the same run, for the ratio
#   bench-log:            scan pipeline p50/p99, bytes/scan synced, merge + report of 20 logs / 50k scans
#   issuer-bench:         durable orders/s, latency, oversold, idle and loaded RSS at a fixed offered load
#                         (1,200/s by default: above the 1,000/s goal, so meeting it is not an artefact of the offer);
#                         on SQLite (issuer.json), on PostgreSQL with one instance (issuer-postgres-run1..3.json)
#                         and with two instances on one database, the load split between them
#                         (issuer-postgres-2-run1..3.json): three runs each, alternating
#   edge-bench:           redemption p50/p99 under workerd at a fixed concurrency, Worker wasm size
#   hub-bench:            the venue hub: redemptions/s, "already used" round trip, admit → other device at 2 s sync
#   web-build + web/scanner-wasm/bench.mjs: the scanner PWA's wasm size, the decode corpus in Chromium
# Installs what it needs (Python venv packages) like the test command; run scripts/test.sh once first on a
# fresh machine for the apt packages and the wasm toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${TICKETS_CACHE:-$HOME/.cache/tickets}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
out=bench/out
mkdir -p "$out"
rm -f "$out"/*.json
cargo build --release -q -p scanner-bench -p issuer
echo "bench: scanner-core (ticket, decode corpus)" >&2
"$CARGO_TARGET_DIR/release/bench" --corpus-dir "$out/corpus" > "$out/scanner-core.json"
# zbar's shared library for pyzbar (the peer decoder beside zxing-cpp).
scripts/apt-install.sh libzbar0 >&2
venv="$cache/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q -r bench/requirements.txt
echo "bench: peers (zxing-cpp, zbar) on the same corpus" >&2
"$venv/bin/python" bench/peers.py "$out/corpus" > "$out/peers.json"
echo "bench: redemption log" >&2
"$CARGO_TARGET_DIR/release/bench-log" > "$out/redemption.json"
echo "bench: issuer" >&2
"$CARGO_TARGET_DIR/release/issuer-bench" --rate "${ISSUER_BENCH_RATE:-1200}" --seconds "${ISSUER_BENCH_SECONDS:-10}" \
  > "$out/issuer.json"
# PostgreSQL's tail on the shared 2 cores moves from run to run: three runs of each, every run a fresh
# throwaway cluster (the report shows each run and holds the goal to all of them).
rm -f "$out"/issuer-postgres*.json
for run in 1 2 3; do
  echo "bench: issuer on PostgreSQL, one instance (run $run of 3; a throwaway cluster with fsync on, scripts/postgres.sh)" >&2
  scripts/postgres.sh run sh -c 'exec "$0" --rate "$1" --seconds "$2" --database-url "$ISSUER_TEST_POSTGRES"' \
    "$CARGO_TARGET_DIR/release/issuer-bench" "${ISSUER_BENCH_RATE:-1200}" "${ISSUER_BENCH_SECONDS:-10}" \
    > "$out/issuer-postgres-run$run.json"
  echo "bench: issuer on PostgreSQL, two instances on one database, orders sent to them in turn (run $run of 3)" >&2
  scripts/postgres.sh run sh -c 'exec "$0" --rate "$1" --seconds "$2" --instances 2 --database-url "$ISSUER_TEST_POSTGRES"' \
    "$CARGO_TARGET_DIR/release/issuer-bench" "${ISSUER_BENCH_RATE:-1200}" "${ISSUER_BENCH_SECONDS:-10}" \
    > "$out/issuer-postgres-2-run$run.json"
done
echo "bench: edge" >&2
scripts/edge-bench.sh > "$out/edge.json"
echo "bench: venue hub" >&2
scripts/hub-bench.sh > "$out/hub.json"
echo "bench: scanner PWA wasm" >&2
scripts/web-build.sh > "$out/web.json"
echo "bench: the same decode corpus in Chromium through the PWA's wasm" >&2
scripts/npm-ci.sh web/tests >&2
node web/scanner-wasm/bench.mjs "$out/corpus" > "$out/web-decode.json"
echo "bench: the PWA on an emulated phone (cold start, camera frame → verdict)" >&2 && TICKETS_PROFILE=release node web/tests/mobile-bench.mjs > "$out/mobile.json"
python3 bench/report.py "$out" bench/results.json bench/results.md
