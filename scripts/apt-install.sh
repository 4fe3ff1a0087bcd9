#!/usr/bin/env bash
# Installs the named Debian packages that are not installed yet (as root, or through sudo). Idempotent:
# nothing is fetched when all are present.
#   scripts/apt-install.sh rustc-web cargo-web rust-web-src lld-22
set -euo pipefail
missing=()
for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -gt 0 ] || exit 0
echo "apt: installing ${missing[*]}" >&2
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
