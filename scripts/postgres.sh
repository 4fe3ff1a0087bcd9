#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the issuer's tests and bench (Debian's postgresql package, installed
# idempotently): initdb in a new temporary directory, a free loopback port, the unix socket in that
# directory, trust authentication for loopback and the socket only, fsync on (the bench measures
# durability, so the server must not cheat on it).
#   scripts/postgres.sh start        → prints the cluster's directory (keep it for url/stop)
#   scripts/postgres.sh url DIR      → postgres://postgres@127.0.0.1:PORT/postgres
#   scripts/postgres.sh stop DIR     → stops the server and deletes DIR
#   scripts/postgres.sh run CMD...   → start, run CMD with ISSUER_TEST_POSTGRES set to the cluster's URL,
#                                      stop at exit (also on failure or Ctrl-C)
# Everything here runs as root and the server refuses to: initdb and the server run as the `postgres` user.
set -euo pipefail
cd "$(dirname "$0")/.."

as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] || { echo "postgres.sh: no /usr/lib/postgresql/*/bin after installing postgresql" >&2; exit 1; }
  echo "$d"
}

start() {
  scripts/apt-install.sh postgresql >&2
  local bin dir port
  bin=$(bindir)
  dir=$(mktemp -d /tmp/issuer-pg.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  # A port nobody listens on right now (the kernel picks it).
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  # Only the socket in this private directory and loopback TCP, both without password: a test cluster.
  cat >"$dir/data/pg_hba.conf" <<'EOF'
local all all              trust
host  all all 127.0.0.1/32 trust
EOF
  echo "$port" >"$dir/port"
  # The tests give every issuer its own database, and each issuer pools up to 16 connections.
  as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c max_connections=300 -c fsync=on -c synchronous_commit=on" \
    start >&2 || { cat "$dir/server.log" >&2; exit 1; }
  echo "$dir"
}

url() {
  local dir=${1:?usage: postgres.sh url DIR}
  echo "postgres://postgres@127.0.0.1:$(cat "$dir/port")/postgres"
}

stop() {
  local dir=${1:?usage: postgres.sh stop DIR}
  [ -d "$dir/data" ] || return 0
  as_postgres "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  url) url "${2:-}" ;;
  stop) stop "${2:-}" ;;
  run)
    shift
    dir=$(start)
    trap 'stop "$dir"' EXIT INT TERM
    ISSUER_TEST_POSTGRES=$(url "$dir") "$@"
    ;;
  *) echo "usage: scripts/postgres.sh start | url DIR | stop DIR | run CMD..." >&2; exit 2 ;;
esac
