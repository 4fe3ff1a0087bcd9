#!/usr/bin/env bash
# Prints the path of a wasm-bindgen CLI at exactly the version of the `wasm-bindgen` crate in Cargo.lock,
# installing it once (from crates.io) into $TICKETS_CACHE/tools (default ~/.cache/tickets/tools).
# Shared by every build that runs wasm-bindgen (scripts/edge-build.sh, scripts/web-build.sh): the CLI and
# the crate must match exactly, or the generated JS glue does not fit the module.
# The first install takes ~10 min on 2 cores; nothing is downloaded except crates.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${TICKETS_CACHE:-$HOME/.cache/tickets}"
tools="$cache/tools"

version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$root/Cargo.lock")
[ -n "$version" ] || { echo "wasm-bindgen-cli: wasm-bindgen not found in Cargo.lock" >&2; exit 1; }
bindgen="$tools/wasm-bindgen-$version/bin/wasm-bindgen"
# An earlier install layout (tools/bin) is reused if it is the right version.
if [ ! -x "$bindgen" ] && [ -x "$tools/bin/wasm-bindgen" ] \
  && "$tools/bin/wasm-bindgen" --version 2>/dev/null | grep -q " $version\$"; then
  bindgen="$tools/bin/wasm-bindgen"
fi
if [ ! -x "$bindgen" ]; then
  echo "wasm-bindgen-cli: installing wasm-bindgen-cli $version into $tools (once; ~10 min)" >&2
  # Not --locked: the CLI's own lockfile pins crates this machine's registry mirror may not have.
  # Its output goes to stderr: stdout carries only the path.
  CARGO_TARGET_DIR="$cache/target-tools" cargo install "wasm-bindgen-cli@$version" \
    --root "$tools/wasm-bindgen-$version" --quiet >&2
fi
"$bindgen" --version | grep -q " $version\$" || { echo "wasm-bindgen-cli: $bindgen is not version $version" >&2; exit 1; }
echo "$bindgen"
