#!/usr/bin/env bash
# Builds the PWA scanner's wasm module and JS glue into web/scanner/pkg/ (git-ignored; idempotent):
#   1. web/scanner-wasm (bindings over scanner-core) for wasm32, with scripts/wasm-build.sh (rustup's wasm
#      target, or Debian rustc-web + build-std);
#   2. wasm-bindgen --target web, with the CLI at the Cargo.lock version (scripts/wasm-bindgen-cli.sh);
#   3. wasm-opt -Oz from npm's `binaryen` (pinned; installed once into $TICKETS_CACHE/tools/binaryen from
#      the npm registry). TICKETS_WASM_OPT=0 skips it; if it cannot be installed the module is left as built.
# Skips steps 2-3 when the module and tools are those of the last build. Prints the module's raw and gzip
# sizes as one JSON line on stdout.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${TICKETS_CACHE:-$HOME/.cache/tickets}"
out="$root/web/scanner/pkg"

bindgen=$("$root/scripts/wasm-bindgen-cli.sh")
(cd "$root" && "$root/scripts/wasm-build.sh" -p scanner-wasm --lib)
# wasm-build.sh picks one of two target dirs; take whichever artifact is newest.
wasm=$(ls -t "$cache"/target-wasm*/wasm32-unknown-unknown/release/scanner_wasm.wasm 2>/dev/null | head -1)
[ -n "$wasm" ] || { echo "web-build: no scanner_wasm.wasm was produced" >&2; exit 1; }

binaryen_version=132.0.0
wasm_opt="$cache/tools/binaryen/node_modules/.bin/wasm-opt"
use_opt=false
if [ "${TICKETS_WASM_OPT:-1}" != 0 ]; then
  if [ ! -x "$wasm_opt" ] || ! "$wasm_opt" --version 2>/dev/null | grep -q "version ${binaryen_version%%.*}"; then
    echo "web-build: installing binaryen $binaryen_version (npm) into $cache/tools/binaryen" >&2
    mkdir -p "$cache/tools/binaryen"
    npm install --prefix "$cache/tools/binaryen" --no-audit --no-fund --loglevel=error \
      "binaryen@$binaryen_version" >&2 || echo "web-build: binaryen unavailable; wasm-opt skipped" >&2
  fi
  if [ -x "$wasm_opt" ]; then use_opt=true; fi
fi
# Nothing to do when the module, the tools and the options are those of the last build (wasm-opt alone
# takes about a minute here).
stamp="$(sha256sum < "$wasm" | cut -d' ' -f1) $("$bindgen" --version) opt=$use_opt"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] && [ -f "$out/scanner_wasm_bg.wasm" ]; then
  echo "web-build: $out is up to date" >&2
else
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  "$bindgen" "$wasm" --target web --no-typescript --out-dir "$out.tmp" --out-name scanner_wasm
  if [ "$use_opt" = true ]; then
    # -Oz: the first load on a slow phone is what costs; measured here it also decodes faster than the
    # unoptimised module.
    "$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
      --enable-mutable-globals "$out.tmp/scanner_wasm_bg.wasm" -o "$out.tmp/scanner_wasm_bg.opt.wasm"
    mv "$out.tmp/scanner_wasm_bg.opt.wasm" "$out.tmp/scanner_wasm_bg.wasm"
  fi
  echo "$stamp" > "$out.tmp/.stamp"
  rm -rf "$out" && mv "$out.tmp" "$out"
fi
raw=$(stat -c %s "$out/scanner_wasm_bg.wasm")
gz=$(gzip -9 -c "$out/scanner_wasm_bg.wasm" | wc -c)
echo "web-build: $raw bytes of wasm ($gz gzip -9) in $out" >&2
printf '{"wasm_raw_bytes":%s,"wasm_gzip_bytes":%s,"wasm_opt":%s}\n' "$raw" "$gz" "$use_opt"
